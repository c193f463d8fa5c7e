//! Schema versions and migration on open.
//!
//! - v1: contacts and leads had one `email` string; there was no full-text index
//!   (`text`) and no per-record timeline (`timeline`).
//! - v2: `emails` lists; every derived index present.
//! - v3: new derived indexes `threads`, `tokens`, `appt_uids`, `locations`
//!   (tracking engine lookups); rows unchanged, so v2 → v3 rebuilds the indexes.
//! - v4: one email activity per *message*, not per Message-ID: email
//!   rows get `content_digest` (computed from their original, when kept) and
//!   `msgids` is keyed by Message-ID and digest; v3 → v4 fills the digests, then
//!   rebuilds the indexes.
//! - v5: the full-text postings leave sled (see `search_index`: they are
//!   rebuilt from the rows in memory and saved as a snapshot file); v4 → v5 empties
//!   the `text` tree.
//! - v6 (current): rows are written in a binary form (see `compact`; JSON rows
//!   still read, so none is rewritten) and `by_kind` keeps only its counts (see
//!   `kind_index`); v5 → v6 removes its per-record entries. The version bump
//!   keeps an older crmproxy from opening a store whose rows it cannot read.
//!
//! A migration is restartable: rows are converted in place (idempotently), every
//! derived index is rebuilt from the rows, and only then is the new version
//! written and flushed. A crash half-way leaves version 1, and the next open
//! starts again.

use serde_json::Value;

use super::index::{self as ix, decode};
use super::Result;
use super::SledStore;
use crate::store::error::StoreError;

pub const CURRENT_VERSION: u32 = 6;
const VERSION_KEY: &[u8] = b"schema_version";
/// Trees that hold nothing but what can be rebuilt from the rows.
const DERIVED: [usize; 18] = [
    ix::EMAILS,
    ix::LOGINS,
    ix::TEXT,
    ix::TIMELINE,
    ix::MSGIDS,
    ix::TRACK_MSG,
    ix::PENDING,
    ix::REFCOUNT,
    ix::UNIQUE,
    ix::THREADS,
    ix::TOKENS,
    ix::APPT_UIDS,
    ix::LOCATIONS,
    ix::BY_KIND,
    ix::BACKLINKS,
    ix::KIND_ORDER,
    ix::BOOK_ORDER,
    ix::BOOK_EMAILS,
];
const REINDEX_CHUNK: usize = 1_000;

/// The version stored, if any.
pub fn stored_version(store: &SledStore) -> Result<Option<u32>> {
    match store.tree(ix::META).get(VERSION_KEY)? {
        Some(v) => {
            let b: [u8; 4] = v
                .as_ref()
                .try_into()
                .map_err(|_| StoreError::Corrupt("schema version is malformed".into()))?;
            Ok(Some(u32::from_be_bytes(b)))
        }
        None => Ok(None),
    }
}

pub(crate) fn set_version(store: &SledStore, v: u32) -> Result<()> {
    store.tree(ix::META).insert(VERSION_KEY, &v.to_be_bytes())?;
    store.db().flush()?;
    Ok(())
}

pub(crate) fn bring_up_to_date(store: &SledStore) -> Result<()> {
    let found = match stored_version(store)? {
        Some(v) => v,
        None if store.tree(ix::RECORDS).is_empty() && store.tree(ix::ACTIVITIES).is_empty() => {
            return set_version(store, CURRENT_VERSION);
        }
        // Rows without a version: the first layout.
        None => 1,
    };
    if found > CURRENT_VERSION {
        return Err(StoreError::NewerSchema {
            path: store.dir().display().to_string(),
            found,
            supported: CURRENT_VERSION,
        });
    }
    if found < 2 {
        tracing::info!(from = found, to = 2, "migrating the CRM store");
        v1_to_v2_rows(store)?;
    }
    if found < 4 {
        tracing::info!(
            from = found,
            to = 4,
            "computing the content digests of emails"
        );
        v3_to_v4_rows(store)?;
    }
    if found == 4 || found == 5 {
        if found == 4 {
            tracing::info!(
                from = 4,
                to = 5,
                "moving the search index out of the database"
            );
            store.tree(ix::TEXT).clear()?;
        }
        tracing::info!(
            from = 5,
            to = 6,
            "dropping the per-record entries of the kind index"
        );
        super::kind_index::drop_members(store)?;
        return set_version(store, CURRENT_VERSION);
    }
    if found < CURRENT_VERSION {
        // v2 → v3 adds derived indexes only; rebuilding covers every step.
        tracing::info!(
            from = found,
            to = CURRENT_VERSION,
            "rebuilding the CRM store's indexes"
        );
        rebuild_indexes(store)?;
        set_version(store, CURRENT_VERSION)?;
    }
    Ok(())
}

/// v1 → v2: `email: "a@b"` becomes `emails: ["a@b"]` on contacts and leads.
fn v1_to_v2_rows(store: &SledStore) -> Result<()> {
    let tree = store.tree(ix::RECORDS);
    for item in tree.iter() {
        let (k, v) = item?;
        let mut row: Value = serde_json::from_slice(&v)
            .map_err(|e| StoreError::Corrupt(format!("v1 record: {e}")))?;
        let Some(obj) = row.as_object_mut() else {
            return Err(StoreError::Corrupt("v1 record is not an object".into()));
        };
        let Some(email) = obj.remove("email") else {
            continue;
        };
        let mut emails = match obj.remove("emails") {
            Some(Value::Array(a)) => a,
            _ => Vec::new(),
        };
        if let Value::String(s) = &email {
            if !s.trim().is_empty() && !emails.contains(&email) {
                if super::EmailAddress::parse(s).is_ok() {
                    emails.insert(0, email.clone());
                } else {
                    tracing::warn!(address = %s, "dropping an invalid e-mail address while migrating");
                }
            }
        }
        obj.insert("emails".into(), Value::Array(emails));
        tree.insert(k, serde_json::to_vec(&row).expect("json"))?;
    }
    store.db().flush()?;
    Ok(())
}

/// v3 → v4: each email activity that keeps its original gets its content digest
/// (one without keeps none, and so is never merged with another message).
fn v3_to_v4_rows(store: &SledStore) -> Result<()> {
    let tree = store.tree(ix::ACTIVITIES);
    for item in tree.iter() {
        let (k, v) = item?;
        let mut a: super::Activity = decode("activity", &v)?;
        let crate::store::ActivityDetails::Email(e) = &mut a.details else {
            continue;
        };
        let Some(blob) = e.raw.as_ref().filter(|_| e.content_digest.is_none()) else {
            continue;
        };
        let raw = match super::CrmStore::blob(store, blob) {
            Ok(raw) => raw,
            Err(err) => {
                tracing::warn!(activity = %a.id, error = %err, "an email's original is unreadable; it keeps no content digest");
                continue;
            }
        };
        e.content_digest = Some(crate::store::content_digest(&raw));
        tree.insert(k, serde_json::to_vec(&a).expect("json"))?;
    }
    store.db().flush()?;
    Ok(())
}

/// Clear and rebuild every derived index from the rows.
pub fn rebuild_indexes(store: &SledStore) -> Result<()> {
    for t in DERIVED {
        store.tree(t).clear()?;
    }
    store.reset_search_index()?;
    let rows = |tree: usize| -> Result<Vec<sled::IVec>> {
        store
            .tree(tree)
            .iter()
            .values()
            .collect::<sled::Result<Vec<_>>>()
            .map_err(Into::into)
    };
    for chunk in rows(ix::RECORDS)?.chunks(REINDEX_CHUNK) {
        let recs: Vec<super::Record> = chunk
            .iter()
            .map(|v| decode("record", v))
            .collect::<Result<_>>()?;
        store.write(|tx| recs.iter().try_for_each(|r| tx.index_record(r, true)))?;
    }
    for chunk in rows(ix::ACTIVITIES)?.chunks(REINDEX_CHUNK) {
        let acts: Vec<super::Activity> = chunk
            .iter()
            .map(|v| decode("activity", v))
            .collect::<Result<_>>()?;
        store.write(|tx| acts.iter().try_for_each(|a| tx.index_activity(a, true)))?;
    }
    for chunk in rows(ix::TRACKING)?.chunks(REINDEX_CHUNK) {
        let ts: Vec<super::TrackingRecord> = chunk
            .iter()
            .map(|v| decode("tracking", v))
            .collect::<Result<_>>()?;
        store.write(|tx| ts.iter().try_for_each(|t| tx.index_tracking(t, true)))?;
    }
    super::book::reindex(store)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::model::{AccountId, Kind, Record};
    use crate::store::sled::kind_index::tests::{account, contact};
    use crate::store::{CrmStore, SearchQuery};

    /// A store as v5 left it: JSON rows, and `by_kind` with an entry per record
    /// (kind code, id) beside its counts.
    #[test]
    fn a_v5_store_loses_its_per_record_kind_entries_once_and_keeps_its_rows() {
        let d = tempfile::tempdir().unwrap();
        let mut contacts = Vec::new();
        {
            let s = SledStore::open(d.path()).unwrap();
            let acc = s.put_record(account("Contoso")).unwrap();
            let acc_id = AccountId::from_uuid(acc.id());
            for last in ["Abbott", "Bauer", "Chen"] {
                contacts.push(s.put_record(contact(last, Some(acc_id))).unwrap());
            }
            for r in contacts.iter().chain([&acc]) {
                let id = r.id();
                s.tree(ix::RECORDS)
                    .insert(id.as_bytes(), serde_json::to_vec(r).unwrap())
                    .unwrap();
                s.tree(ix::BY_KIND)
                    .insert([&[r.kind().code()][..], id.as_bytes()].concat(), &[])
                    .unwrap();
            }
            set_version(&s, 5).unwrap();
        }
        let s = SledStore::open(d.path()).unwrap();
        assert_eq!(stored_version(&s).unwrap(), Some(CURRENT_VERSION));
        let kinds = s.tree(ix::BY_KIND);
        assert_eq!(kinds.len(), 2, "only the two counts are left");
        assert!(kinds.iter().keys().all(|k| k.unwrap()[0] == 0xFF));
        assert_eq!(s.count_records(Kind::Contact).unwrap(), 3);
        assert_eq!(s.count_records(Kind::Account).unwrap(), 1);
        // The JSON rows are read as they are, not rewritten.
        let first = &contacts[0];
        let raw = s.tree(ix::RECORDS).get(first.id().as_bytes()).unwrap();
        assert_eq!(raw.unwrap()[0], b'{');
        assert_eq!(s.record(first.id()).unwrap().as_ref(), Some(first));
        let newest: Vec<_> = s
            .recent_records(Kind::Contact, 2)
            .unwrap()
            .iter()
            .map(Record::id)
            .collect();
        assert_eq!(newest, [contacts[2].id(), contacts[1].id()]);
        let hits = s
            .search(&SearchQuery {
                text: "bauer".into(),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(hits[0].id, contacts[1].id());
        // Writes after the migration keep the counts right.
        s.delete_record(first.id()).unwrap();
        let mut renamed = contacts[1].clone();
        if let Record::Contact(c) = &mut renamed {
            c.first_name = "Zimmermann".into();
        }
        s.put_record(renamed).unwrap();
        assert_eq!(s.count_records(Kind::Contact).unwrap(), 2);
        drop(s);
        // Once: the next open finds nothing to do.
        let s = SledStore::open(d.path()).unwrap();
        assert_eq!(s.count_records(Kind::Contact).unwrap(), 2);
        assert_eq!(s.tree(ix::BY_KIND).len(), 2);
    }
}
