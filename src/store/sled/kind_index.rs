//! Per-kind indexes, so that pages stay fast with 100,000 records: how many
//! records of a kind there are, the newest of a kind, and the records that link to
//! one (an account's contacts and opportunities). Two derived trees, kept in
//! step with every record write by [`index_record`] (called from `index`):
//!
//! - `by_kind`   `0xFF`, kind code → u64 count (big-endian). Until v6 it also held
//!   kind code, id → () for every record (a fifth of the store's entries, and
//!   sled keeps ≈ 120 bytes of its own per entry); `kind_order` has one entry per
//!   record too, so its membership drives the counts now, and v5 → v6 removes
//!   those entries once ([`drop_members`]).
//! - `backlinks` target id, source kind code, source id → ()
//!
//! Stores made before these trees existed get them built once on open
//! ([`ensure_indexes`]); a full index rebuild (migration) rebuilds them too.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use uuid::Uuid;

use super::index::{self as ix, decode, Tx, TxResult};
use super::Result;
use super::SledStore;
use crate::store::model::{Kind, Record};

/// First byte of a count key in `by_kind` (kind codes are small).
const COUNT_TAG: u8 = 0xFF;
/// Set in `meta` once `by_kind` and `backlinks` hold every record.
const BUILT_KEY: &[u8] = b"paging_indexes";
const BUILD_CHUNK: usize = 2_000;
/// Reading a key of `kind_order` costs about a tenth of decoding a row.
const ROW_COST: usize = 10;

fn count_key(kind: Kind) -> [u8; 2] {
    [COUNT_TAG, kind.code()]
}

fn backlink_key(target: Uuid, source: Kind, id: Uuid) -> Vec<u8> {
    [target.as_bytes(), &[source.code()][..], id.as_bytes()].concat()
}

fn read_count(v: Option<sled::IVec>) -> u64 {
    v.and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

/// Add (or remove) a record's entries in `backlinks`, and count it in (or out)
/// when its membership of `kind_order` changed (`joined_or_left`), so a replace
/// (remove old, add new) in one transaction leaves the count as it was.
pub(crate) fn index_record(tx: &Tx, r: &Record, add: bool, joined_or_left: bool) -> TxResult<()> {
    let kind = r.kind();
    if joined_or_left {
        let tree = tx.t(ix::BY_KIND);
        let n = read_count(tree.get(count_key(kind))?);
        let n = if add { n + 1 } else { n.saturating_sub(1) };
        tree.insert(count_key(kind).to_vec(), &n.to_be_bytes())?;
    }
    index_backlinks(tx, r, add)
}

fn index_backlinks(tx: &Tx, r: &Record, add: bool) -> TxResult<()> {
    for l in r.links() {
        let k = backlink_key(l.id, r.kind(), r.id());
        if add {
            tx.t(ix::BACKLINKS).insert(k, &[])?;
        } else {
            tx.t(ix::BACKLINKS).remove(k)?;
        }
    }
    Ok(())
}

/// Build the counts and `backlinks` from the rows once, for a store written
/// before they existed. Restartable: the marker is written last.
pub(crate) fn ensure_indexes(store: &SledStore) -> Result<()> {
    let meta = store.tree(ix::META);
    if meta.contains_key(BUILT_KEY)? {
        return Ok(());
    }
    if !store.tree(ix::RECORDS).is_empty() {
        tracing::info!("building the CRM store's per-kind and link indexes");
        store.tree(ix::BY_KIND).clear()?;
        store.tree(ix::BACKLINKS).clear()?;
        let rows = store
            .tree(ix::RECORDS)
            .iter()
            .values()
            .collect::<sled::Result<Vec<_>>>()?;
        let mut counts: HashMap<Kind, u64> = HashMap::new();
        for chunk in rows.chunks(BUILD_CHUNK) {
            let recs: Vec<Record> = chunk
                .iter()
                .map(|v| decode("record", v))
                .collect::<Result<_>>()?;
            for r in &recs {
                *counts.entry(r.kind()).or_default() += 1;
            }
            store.write(|tx| recs.iter().try_for_each(|r| index_backlinks(tx, r, true)))?;
        }
        for (kind, n) in counts {
            store
                .tree(ix::BY_KIND)
                .insert(count_key(kind), &n.to_be_bytes())?;
        }
    }
    meta.insert(BUILT_KEY, &[1])?;
    store.db().flush()?;
    Ok(())
}

/// v5 → v6: remove the per-record entries of `by_kind`, keeping its counts.
/// Idempotent, so a migration cut short starts again safely.
pub(crate) fn drop_members(store: &SledStore) -> Result<()> {
    let tree = store.tree(ix::BY_KIND);
    let mut batch = sled::Batch::default();
    let mut n = 0usize;
    for key in tree.iter().keys() {
        let key = key?;
        if key.first() != Some(&COUNT_TAG) {
            batch.remove(key);
            n += 1;
            if n.is_multiple_of(BUILD_CHUNK) {
                tree.apply_batch(std::mem::take(&mut batch))?;
            }
        }
    }
    tree.apply_batch(batch)?;
    store.db().flush()?;
    Ok(())
}

impl SledStore {
    /// How many records of `kind` there are (one key read).
    pub fn count_records_indexed(&self, kind: Kind) -> Result<usize> {
        let n = read_count(self.tree(ix::BY_KIND).get(count_key(kind))?);
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// The newest `n` records of `kind`, newest first (by id: creation order).
    /// Reading the kind's keys in `kind_order` (count keys) and keeping the `n`
    /// highest ids always works; when the counts say the kind is common enough,
    /// walking `records` from the newest end first is cheaper (≈ n · all / count
    /// rows if the kinds are mixed), but only for as many rows as the keys would
    /// cost: kinds imported in turn are not mixed, and then the keys answer.
    pub fn recent_records_indexed(&self, kind: Kind, n: usize) -> Result<Vec<Record>> {
        let count = self.count_records_indexed(kind)?;
        if count == 0 || n == 0 {
            return Ok(Vec::new());
        }
        let mut all = 0usize;
        for item in self.tree(ix::BY_KIND).scan_prefix([COUNT_TAG]) {
            let (_, v) = item?;
            all = all.saturating_add(usize::try_from(read_count(Some(v))).unwrap_or(usize::MAX));
        }
        let budget = count / ROW_COST;
        if n.saturating_mul(all) / count <= budget {
            let mut out = Vec::with_capacity(n.min(256));
            for item in self.tree(ix::RECORDS).iter().values().rev().take(budget) {
                let r: Record = decode("record", &item?)?;
                if r.kind() == kind {
                    out.push(r);
                    if out.len() == n {
                        return Ok(out);
                    }
                }
            }
        }
        // The n highest ids of the kind, in a min-heap.
        let mut newest: BinaryHeap<Reverse<Uuid>> = BinaryHeap::with_capacity(n.min(4096) + 1);
        for key in self.tree(ix::KIND_ORDER).scan_prefix([kind.code()]).keys() {
            let id = super::paging::id_at_end(&key?)?;
            if newest.len() < n {
                newest.push(Reverse(id));
            } else if newest.peek().is_some_and(|Reverse(low)| id > *low) {
                newest.pop();
                newest.push(Reverse(id));
            }
        }
        let mut ids: Vec<Uuid> = newest.into_iter().map(|Reverse(id)| id).collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.extend(self.record_row(id)?);
        }
        Ok(out)
    }

    /// Records (of `kind`, or any) that link to `target`, in id order, at most `limit`.
    pub fn linked_records_indexed(
        &self,
        target: Uuid,
        kind: Option<Kind>,
        limit: usize,
    ) -> Result<Vec<Record>> {
        let mut prefix = target.as_bytes().to_vec();
        prefix.extend(kind.map(|k| k.code()));
        let mut out = Vec::new();
        for item in self.tree(ix::BACKLINKS).scan_prefix(&prefix) {
            if out.len() >= limit {
                break;
            }
            let (k, _) = item?;
            let id = Uuid::from_slice(&k[17..])
                .map_err(|_| super::StoreError::Corrupt("bad backlinks key".into()))?;
            out.extend(self.record_row(id)?);
        }
        Ok(out)
    }

    fn record_row(&self, id: Uuid) -> Result<Option<Record>> {
        match self.tree(ix::RECORDS).get(id.as_bytes())? {
            Some(v) => Ok(Some(decode("record", &v)?)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::store::model::{Account, AccountId, Contact, ContactId, Stamps};
    use crate::store::CrmStore;

    pub(in crate::store::sled) fn account(name: &str) -> Record {
        Record::Account(Account {
            id: AccountId::new(),
            stamps: Stamps::default(),
            name: name.into(),
            website: String::new(),
            phone: String::new(),
            emails: vec![],
            address: Default::default(),
            primary_contact: None,
        })
    }

    pub(in crate::store::sled) fn contact(name: &str, account: Option<AccountId>) -> Record {
        Record::Contact(Contact {
            id: ContactId::new(),
            stamps: Stamps::default(),
            first_name: name.into(),
            last_name: String::new(),
            full_name: String::new(),
            job_title: String::new(),
            department: String::new(),
            company: String::new(),
            account,
            emails: vec![],
            business_phone: String::new(),
            mobile_phone: String::new(),
            address: Default::default(),
            categories: Vec::new(),
        })
    }

    #[test]
    fn counts_newest_and_backlinks_follow_writes() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        let acc = s.put_record(account("Contoso")).unwrap();
        let acc_id = AccountId::from_uuid(acc.id());
        let mut ids = Vec::new();
        for i in 0..5 {
            let c = s
                .put_record(contact(&format!("c{i}"), Some(acc_id)))
                .unwrap();
            ids.push(c.id());
        }
        assert_eq!(s.count_records(Kind::Contact).unwrap(), 5);
        assert_eq!(s.count_records(Kind::Account).unwrap(), 1);
        assert_eq!(s.count_records(Kind::Lead).unwrap(), 0);
        let newest: Vec<Uuid> = s
            .recent_records(Kind::Contact, 2)
            .unwrap()
            .iter()
            .map(|r| r.id())
            .collect();
        assert_eq!(newest, vec![ids[4], ids[3]]);
        assert_eq!(
            s.linked_records(acc.id(), Some(Kind::Contact), 10)
                .unwrap()
                .len(),
            5
        );
        assert!(s
            .linked_records(acc.id(), Some(Kind::Opportunity), 10)
            .unwrap()
            .is_empty());

        // A replace keeps the count; unlinking and deleting update both indexes.
        let Some(Record::Contact(mut c0)) = s.record(ids[0]).unwrap() else {
            panic!()
        };
        c0.account = None;
        s.put_record(Record::Contact(c0)).unwrap();
        assert_eq!(s.count_records(Kind::Contact).unwrap(), 5);
        assert_eq!(s.linked_records(acc.id(), None, 10).unwrap().len(), 4);
        s.delete_record(ids[0]).unwrap();
        assert_eq!(s.count_records(Kind::Contact).unwrap(), 4);

        // Built again from the rows when missing (a store from before the trees).
        s.tree(ix::META).remove(BUILT_KEY).unwrap();
        s.tree(ix::BY_KIND).clear().unwrap();
        s.tree(ix::BACKLINKS).clear().unwrap();
        drop(s);
        let s = SledStore::open(dir.path()).unwrap();
        assert_eq!(s.count_records(Kind::Contact).unwrap(), 4);
        assert_eq!(s.linked_records(acc.id(), None, 10).unwrap().len(), 4);
        assert_eq!(s.recent_records(Kind::Contact, 1).unwrap()[0].id(), ids[4]);
        // And by a full rebuild.
        crate::store::sled::migrate::rebuild_indexes(&s).unwrap();
        assert_eq!(s.count_records(Kind::Contact).unwrap(), 4);
        assert_eq!(s.linked_records(acc.id(), None, 10).unwrap().len(), 4);
    }

    #[test]
    fn the_newest_come_the_same_by_either_path() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(dir.path()).unwrap();
        let mut ids: Vec<Uuid> = (0..12)
            .map(|i| s.put_record(contact(&format!("c{i}"), None)).unwrap().id())
            .collect();
        let acc = s.put_record(account("Contoso")).unwrap();
        let newest = |kind, n| -> Vec<Uuid> {
            s.recent_records(kind, n)
                .unwrap()
                .iter()
                .map(Record::id)
                .collect()
        };
        // 1 of 12 contacts among 13 records: walking `records` for one row (the
        // account: not enough), then the keys of `kind_order`.
        assert_eq!(newest(Kind::Contact, 1), [ids[11]]);
        // Now the newest row is a contact: the walk answers.
        ids.push(s.put_record(contact("c12", None)).unwrap().id());
        ids.reverse();
        assert_eq!(newest(Kind::Contact, 1), ids[..1]);
        // 3 of them: the keys of `kind_order` (≈ 3 rows to walk, against 13 keys).
        assert_eq!(newest(Kind::Contact, 3), ids[..3]);
        assert_eq!(newest(Kind::Contact, 50), ids);
        assert_eq!(newest(Kind::Account, 5), [acc.id()]);
        assert!(newest(Kind::Lead, 5).is_empty());
        assert!(newest(Kind::Contact, 0).is_empty());
    }
}
