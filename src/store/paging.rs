//! Paging through long lists without loading them: a page of records of one kind
//! in name order, for lists that must stay fast with 100,000 contacts (the pane's
//! Contacts page, SPEC section 10); counts per kind are `kind_index`'s.
//!
//! A derived tree (see `sled_index`): `kind_order` holds `kind code, name key,
//! 0, id → ()` for every record, kept in step by `Tx::index_record`. A store
//! written before it existed is indexed once on open ([`ensure_indexes`]); a
//! marker in `meta` records that.
//!
//! A page is addressed by an opaque cursor (the hex of the key after the list's
//! prefix), so the next page costs the same however deep it is.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::StoreError;
use super::model::{Kind, Record};
use super::sled_index::{self as ix, decode, Tx, TxResult};
use super::sled_store::SledStore;
use super::text::fold;
use super::Result;

/// Longest name prefix (bytes) a sort key keeps; names equal up to here sort by id.
const NAME_KEY_BYTES: usize = 64;
/// The default and largest page sizes.
pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 500;
/// Marker in `meta`: the paging trees are built.
const MARKER: &[u8] = b"index:kind_order";
const CHUNK: usize = 1_000;

/// Which page of a list: the first, the one after a cursor, or the one before.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRequest {
    #[serde(default)]
    pub after: Option<String>,
    #[serde(default)]
    pub before: Option<String>,
    /// Items per page; 0 means [`DEFAULT_PAGE`], more than [`MAX_PAGE`] is cut.
    #[serde(default)]
    pub limit: usize,
}

impl PageRequest {
    pub fn first(limit: usize) -> Self {
        PageRequest {
            limit,
            ..Default::default()
        }
    }
    pub fn limit(&self) -> usize {
        match self.limit {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        }
    }
}

/// One page and the cursors of its neighbours (absent at either end).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub prev: Option<String>,
    pub next: Option<String>,
}

/// The sort key of a name: folded (case and accents ignored), cut at a char boundary.
pub(crate) fn name_key(name: &str) -> Vec<u8> {
    let f = fold(name.trim());
    let mut end = f.len().min(NAME_KEY_BYTES);
    while !f.is_char_boundary(end) {
        end -= 1;
    }
    f.as_bytes()[..end]
        .iter()
        .map(|b| if *b == 0 { 1 } else { *b })
        .collect()
}

/// `name key 0 id`: what follows a list's prefix in an ordered index.
pub(crate) fn order_suffix(name: &str, id: Uuid) -> Vec<u8> {
    [&name_key(name)[..], &[0], id.as_bytes()].concat()
}

fn kind_order_key(kind: Kind, title: &str, id: Uuid) -> Vec<u8> {
    [&[kind.code()][..], &order_suffix(title, id)].concat()
}

/// The id at the end of an ordered index key.
pub(crate) fn id_at_end(key: &[u8]) -> Result<Uuid> {
    key.len()
        .checked_sub(16)
        .and_then(|i| Uuid::from_slice(&key[i..]).ok())
        .ok_or_else(|| StoreError::Corrupt("bad ordered index key".into()))
}

fn parse_cursor(c: &str) -> Result<Vec<u8>> {
    let bytes = hex::decode(c.trim())
        .ok()
        .filter(|b| b.len() >= 17 && b.len() <= NAME_KEY_BYTES + 17)
        .ok_or_else(|| {
            StoreError::invalid(
                "page cursor",
                "it is not one this list gave out; start again from the first page",
            )
        })?;
    Ok(bytes)
}

/// A page of `tree` under `prefix`, in key order. `accept` turns a key into an
/// item, or skips it (`None`: a filter); it is called only until the page fills.
pub(crate) fn page_of<T>(
    tree: &sled::Tree,
    prefix: &[u8],
    req: &PageRequest,
    mut accept: impl FnMut(&[u8]) -> Result<Option<T>>,
) -> Result<Page<T>> {
    let limit = req.limit();
    let cursor = |k: &[u8]| hex::encode(&k[prefix.len()..]);
    let mut got: Vec<(Vec<u8>, T)> = Vec::new();
    if let Some(before) = &req.before {
        let end = [prefix, &parse_cursor(before)?].concat();
        for item in tree.range(prefix.to_vec()..end).rev() {
            let (k, _) = item?;
            if let Some(t) = accept(&k)? {
                got.push((k.to_vec(), t));
                if got.len() > limit {
                    break;
                }
            }
        }
        let more_before = got.len() > limit;
        got.truncate(limit);
        got.reverse();
        let prev = more_before.then(|| cursor(&got[0].0));
        let next = got.last().map(|(k, _)| cursor(k));
        return Ok(Page {
            items: got.into_iter().map(|(_, t)| t).collect(),
            prev,
            next,
        });
    }
    let iter = match &req.after {
        Some(after) => {
            let start = [prefix, &parse_cursor(after)?].concat();
            tree.range((std::ops::Bound::Excluded(start), std::ops::Bound::Unbounded))
        }
        None => tree.range(prefix.to_vec()..),
    };
    for item in iter {
        let (k, _) = item?;
        if !k.starts_with(prefix) {
            break;
        }
        if let Some(t) = accept(&k)? {
            got.push((k.to_vec(), t));
            if got.len() > limit {
                break;
            }
        }
    }
    let more_after = got.len() > limit;
    got.truncate(limit);
    let next = if more_after {
        got.last().map(|(k, _)| cursor(k))
    } else {
        None
    };
    let prev = if req.after.is_some() {
        got.first().map(|(k, _)| cursor(k))
    } else {
        None
    };
    Ok(Page {
        items: got.into_iter().map(|(_, t)| t).collect(),
        prev,
        next,
    })
}

/// Keep `kind_order` in step with one record (inside its write).
pub(crate) fn index_kind_order(tx: &Tx, r: &Record, add: bool) -> TxResult<()> {
    let key = kind_order_key(r.kind(), &r.title(), r.id());
    if add {
        tx.t(ix::KIND_ORDER).insert(key, &[])?;
    } else {
        tx.t(ix::KIND_ORDER).remove(key)?;
    }
    Ok(())
}

/// A page of records of one kind in name order.
pub(crate) fn records_page(
    store: &SledStore,
    kind: Kind,
    req: &PageRequest,
) -> Result<Page<Record>> {
    let prefix = [kind.code()];
    page_of(store.tree(ix::KIND_ORDER), &prefix, req, |k| {
        store_record(store, id_at_end(k)?)
    })
}

fn store_record(store: &SledStore, id: Uuid) -> Result<Option<Record>> {
    match store.tree(ix::RECORDS).get(id.as_bytes())? {
        Some(v) => Ok(Some(decode("record", &v)?)),
        None => Ok(None),
    }
}

/// Build the paging trees of a store written before they existed (once; then a
/// marker says they are there), and what other derived trees of this feature need.
pub(crate) fn ensure_indexes(store: &SledStore) -> Result<()> {
    if store.tree(ix::META).get(MARKER)?.is_some() {
        return Ok(());
    }
    if !store.tree(ix::RECORDS).is_empty() {
        tracing::info!("building the CRM store's per-kind name index");
        store.tree(ix::KIND_ORDER).clear()?;
        let rows: Vec<sled::IVec> = store
            .tree(ix::RECORDS)
            .iter()
            .values()
            .collect::<sled::Result<_>>()?;
        for chunk in rows.chunks(CHUNK) {
            let recs: Vec<Record> = chunk
                .iter()
                .map(|v| decode("record", v))
                .collect::<Result<_>>()?;
            store.write(|tx| recs.iter().try_for_each(|r| index_kind_order(tx, r, true)))?;
        }
    }
    super::sled_book::backfill_seen(store)?;
    store.tree(ix::META).insert(MARKER, &[1])?;
    store.db().flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_keys_fold_and_stay_bounded() {
        assert_eq!(name_key("  Zoë Müller "), b"zoe muller".to_vec());
        let long = name_key(&"é".repeat(200));
        assert!(long.len() <= NAME_KEY_BYTES);
        assert!(std::str::from_utf8(&long).is_ok());
        assert!(name_key("a\0b").iter().all(|b| *b != 0));
    }

    #[test]
    fn pages_walk_forward_and_back() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let t = db.open_tree("t").unwrap();
        let ids: Vec<Uuid> = (0..7).map(|_| Uuid::now_v7()).collect();
        for (i, id) in ids.iter().enumerate() {
            t.insert(
                [&b"P"[..], &order_suffix(&format!("n{i}"), *id)].concat(),
                &[],
            )
            .unwrap();
        }
        // Another list's keys around ours must never show.
        t.insert(b"O-zzz", &[]).unwrap();
        t.insert(b"Q-aaa", &[]).unwrap();
        let get = |req: &PageRequest| page_of(&t, b"P", req, |k| Ok(Some(id_at_end(k)?))).unwrap();
        let p1 = get(&PageRequest::first(3));
        assert_eq!(p1.items, ids[0..3]);
        assert!(p1.prev.is_none());
        let p2 = get(&PageRequest {
            after: p1.next.clone(),
            limit: 3,
            ..Default::default()
        });
        assert_eq!(p2.items, ids[3..6]);
        let p3 = get(&PageRequest {
            after: p2.next.clone(),
            limit: 3,
            ..Default::default()
        });
        assert_eq!(p3.items, ids[6..7]);
        assert!(p3.next.is_none());
        let back = get(&PageRequest {
            before: p3.prev.clone(),
            limit: 3,
            ..Default::default()
        });
        assert_eq!(back.items, ids[3..6]);
        let first = get(&PageRequest {
            before: back.prev.clone(),
            limit: 3,
            ..Default::default()
        });
        assert_eq!(first.items, ids[0..3]);
        assert!(first.prev.is_none(), "nothing before the first page");
        // A filter skips keys; the page still fills.
        let odd = page_of(&t, b"P", &PageRequest::first(2), |k| {
            let id = id_at_end(k)?;
            Ok((ids.iter().position(|x| *x == id).unwrap() % 2 == 1).then_some(id))
        })
        .unwrap();
        assert_eq!(odd.items, vec![ids[1], ids[3]]);
        // A forged cursor is refused with a clear error.
        let bad = page_of(
            &t,
            b"P",
            &PageRequest {
                after: Some("zz".into()),
                ..Default::default()
            },
            |_| Ok(Some(())),
        );
        assert!(bad.unwrap_err().to_string().contains("first page"));
    }
}
