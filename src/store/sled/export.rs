//! The sled side of export and import of a whole bundle (see [`crate::store::export`]).

use super::book::{check_entry, import_entry};
use super::index as ix;
use super::index::Outcome;
use super::SledStore;
use crate::store::error::StoreError;
use crate::store::export::ExportBundle;
use crate::store::validate;
use crate::store::{CrmStore, ImportSummary, Result};

pub(crate) fn collect(store: &SledStore) -> Result<ExportBundle> {
    let mut b = ExportBundle {
        settings: store.settings()?,
        records: store.records(None)?,
        ..ExportBundle::default()
    };
    for item in store.tree(ix::ACTIVITIES).iter() {
        let (_, v) = item?;
        b.activities.push(ix::decode("activity", &v)?);
    }
    for item in store.tree(ix::TRACKING).iter() {
        let (_, v) = item?;
        b.tracking.push(ix::decode("tracking", &v)?);
    }
    for item in store.tree(ix::BOOK).iter() {
        let (_, v) = item?;
        b.address_books.push(ix::decode("address-book entry", &v)?);
    }
    b.fill_blobs(store)?;
    Ok(b)
}

/// Write a bundle as one transaction (see [`CrmStore::import_bundle`]).
pub(crate) fn import(store: &SledStore, bundle: &ExportBundle) -> Result<ImportSummary> {
    let records = validate::bundle(bundle)?;
    // Files first: a record never points to a blob that is not on disk.
    for (sha, data) in &bundle.blobs {
        let r = store.put_blob(data)?;
        if &r.sha256 != sha {
            return Err(StoreError::invalid(
                "export file",
                format!("file {sha} does not match its content"),
            ));
        }
    }
    for b in records
        .iter()
        .flat_map(|r| r.blobs())
        .chain(bundle.activities.iter().flat_map(|a| a.blobs()))
    {
        if !store.has_blob(b) {
            return Err(StoreError::invalid(
                "export file",
                format!("file {} is referred to but not included", b.sha256),
            ));
        }
    }
    let settings = bundle.settings.clone();
    store.write(|tx| {
        let mut s = ImportSummary::default();
        let mut count = |o: Outcome| match o {
            Outcome::Created => s.created += 1,
            Outcome::Updated => s.updated += 1,
            Outcome::Unchanged => s.unchanged += 1,
        };
        // Write everything, then check links, so rows may refer to each other
        // in any order (an account's primary contact and the contact's account).
        for r in &records {
            count(tx.write_record(r, true, false)?.1);
        }
        for a in &bundle.activities {
            count(tx.write_activity(a, true, false)?.1);
        }
        // Before the tracking records, which add the addresses they see.
        for e in &bundle.address_books {
            count(import_entry(tx, e)?);
        }
        for t in &bundle.tracking {
            count(tx.write_tracking(t, false)?);
        }
        for r in &records {
            tx.check_record_links(r)?;
        }
        for a in &bundle.activities {
            tx.check_activity_links(a)?;
        }
        for t in &bundle.tracking {
            tx.check_tracking(t)?;
        }
        for e in &bundle.address_books {
            check_entry(tx, e)?;
        }
        tx.put_meta("settings", &settings)?;
        Ok(s)
    })
}
