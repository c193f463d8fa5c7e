//! Importing a user's own address book (vCard, CSV contacts, as parsed by
//! `formats::import`) into their mail contacts: entries are matched by e-mail
//! address, so importing again updates rather than duplicates, and an address
//! first seen in tracked mail becomes the imported entry.

use super::address_book::{AddressBookEntry, EntrySource};
use super::model::{Record, UserId};
use super::{CrmStore, ImportSummary, Result};
use crate::formats::import::Row;

/// Entries per atomic write in an import.
const IMPORT_CHUNK: usize = 1_000;

/// Import parsed address-book rows (vCard, CSV contacts) into `owner`'s address
/// book: a row whose address is already there updates that entry's non-empty
/// fields (its tracking status stays), any other row adds an untracked entry.
pub fn import_rows(store: &dyn CrmStore, owner: UserId, rows: Vec<Row>) -> Result<ImportSummary> {
    let mut summary = ImportSummary::default();
    let mut out: Vec<AddressBookEntry> = Vec::new();
    let mut seen: std::collections::HashMap<String, String> = Default::default();
    for row in rows {
        let (place, record) = match row {
            Row::Skip { place, reason } => {
                summary.skipped.push((place, reason));
                continue;
            }
            Row::Record { place, record } => (place, record),
        };
        let Record::Contact(c) = record else {
            summary
                .skipped
                .push((place, "not a contact; an address book holds people".into()));
            continue;
        };
        let keys: Vec<String> = c.emails.iter().map(|e| e.key().to_owned()).collect();
        if let Some(first) = keys.iter().find_map(|k| seen.get(k)) {
            summary
                .skipped
                .push((place, format!("same person as {first}")));
            continue;
        }
        for k in keys {
            seen.insert(k, place.clone());
        }
        let mut new = AddressBookEntry::from_contact(owner, c, EntrySource::Imported);
        if let Err(e) = new.validate() {
            summary.skipped.push((place, e.to_string()));
            continue;
        }
        // The entry that already holds one of the row's addresses; an address held
        // by yet another entry stays with that one.
        let mut existing: Option<AddressBookEntry> = None;
        let mut own = Vec::new();
        for a in std::mem::take(&mut new.emails) {
            match store.address_book_by_email(owner, &a)? {
                None => own.push(a),
                Some(e) if existing.is_none() => {
                    existing = Some(e);
                    own.push(a);
                }
                Some(e) if existing.as_ref().is_some_and(|x| x.id == e.id) => own.push(a),
                Some(_) => {}
            }
        }
        new.emails = own;
        match existing {
            None => {
                summary.created += 1;
                out.push(new);
            }
            Some(old) => {
                let merged = merge(&old, &new);
                if merged == old {
                    summary.unchanged += 1;
                } else {
                    summary.updated += 1;
                    out.push(merged);
                }
            }
        }
    }
    for chunk in out.chunks(IMPORT_CHUNK) {
        store.address_book_write(owner, Vec::new(), chunk.to_vec())?;
    }
    Ok(summary)
}

/// `old` with `new`'s non-empty fields and any address it lacks; status and source kept
/// (a seen address found in the imported book becomes an imported entry).
fn merge(old: &AddressBookEntry, new: &AddressBookEntry) -> AddressBookEntry {
    let mut m = old.clone();
    let set = |d: &mut String, s: &str| {
        if !s.trim().is_empty() {
            *d = s.to_owned();
        }
    };
    set(&mut m.first_name, &new.first_name);
    set(&mut m.last_name, &new.last_name);
    set(&mut m.full_name, &new.full_name);
    set(&mut m.company, &new.company);
    set(&mut m.job_title, &new.job_title);
    set(&mut m.department, &new.department);
    set(&mut m.business_phone, &new.business_phone);
    set(&mut m.mobile_phone, &new.mobile_phone);
    if !new.address.is_empty() {
        m.address = new.address.clone();
    }
    for c in &new.categories {
        if !m.categories.contains(c) {
            m.categories.push(c.clone());
        }
    }
    for e in &new.emails {
        if !m.emails.iter().any(|x| x.same_as(e)) {
            m.emails.push(e.clone());
        }
    }
    m.source = EntrySource::Imported;
    m
}
