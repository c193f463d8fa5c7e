//! The sled side of paging (see [`crate::store::paging`]): pages over an ordered
//! tree, the `kind_order` index of records by kind and name, and its one-time build.

/// Marker in `meta`: the paging trees are built.
const MARKER: &[u8] = b"index:kind_order";
const CHUNK: usize = 1_000;

use super::index::{self as ix, decode, Tx, TxResult};
use super::SledStore;
use crate::store::error::StoreError;
use crate::store::model::{Kind, Record};
use crate::store::paging::{order_suffix, Page, PageRequest, NAME_KEY_BYTES};
use crate::store::Result;
use uuid::Uuid;

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

/// Keep `kind_order` in step with one record (inside its write). Whether the
/// record joined (or left) the index: what the per-kind counts follow.
pub(crate) fn index_kind_order(tx: &Tx, r: &Record, add: bool) -> TxResult<bool> {
    let key = kind_order_key(r.kind(), &r.title(), r.id());
    Ok(if add {
        tx.t(ix::KIND_ORDER).insert(key, &[])?.is_none()
    } else {
        tx.t(ix::KIND_ORDER).remove(key)?.is_some()
    })
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
            store.write(|tx| {
                recs.iter()
                    .try_for_each(|r| index_kind_order(tx, r, true).map(drop))
            })?;
        }
    }
    super::book::backfill_seen(store)?;
    store.tree(ix::META).insert(MARKER, &[1])?;
    store.db().flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::paging::name_key;

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
