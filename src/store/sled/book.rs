//! The sled side of the address-book methods of `CrmStore` (see
//! [`super::address_book`] for the model and the index keys): reading entries
//! and pages of a view, the counts, the atomic write of records and entries,
//! and the one-time rebuild and backfill of an older store.

use chrono::Utc;
use uuid::Uuid;

use super::index::{self as ix, abort, decode, Outcome, Tx, TxResult};
use super::paging::{id_at_end, page_of};
use super::Result;
use super::SledStore;
use crate::store::activity::TrackingRecord;
use crate::store::activity::{Party, TrackStatus};
use crate::store::address::EmailAddress;
use crate::store::address_book::COUNTS;
use crate::store::address_book::*;
use crate::store::error::StoreError;
use crate::store::model::{Record, Stamps, UserId};
use crate::store::paging::order_suffix;
use crate::store::paging::{Page, PageRequest};
use crate::store::text::tokens;
use serde::Deserialize;

/// Rows per atomic write when reindexing or backfilling.
const CHUNK: usize = 1_000;

pub(crate) fn entry(
    store: &SledStore,
    owner: UserId,
    id: EntryId,
) -> Result<Option<AddressBookEntry>> {
    match store.tree(ix::BOOK).get(book_key(owner, id))? {
        Some(v) => Ok(Some(decode("address-book entry", &v)?)),
        None => Ok(None),
    }
}

pub(crate) fn by_email(
    store: &SledStore,
    owner: UserId,
    address: &EmailAddress,
) -> Result<Option<AddressBookEntry>> {
    match store.tree(ix::BOOK_EMAILS).get(email_key(owner, address))? {
        Some(v) => {
            let id = Uuid::from_slice(&v)
                .map_err(|_| StoreError::Corrupt("bad address-book e-mail index".into()))?;
            entry(store, owner, EntryId::from_uuid(id))
        }
        None => Ok(None),
    }
}

/// A page of one view in name order; with `text`, only entries matching it.
pub(crate) fn page(
    store: &SledStore,
    owner: UserId,
    view: BookView,
    text: &str,
    req: &PageRequest,
) -> Result<Page<AddressBookEntry>> {
    let prefix = [owner.uuid().as_bytes(), &[view.byte()][..]].concat();
    let words = tokens(text);
    page_of(store.tree(ix::BOOK_ORDER), &prefix, req, |k| {
        let id = EntryId::from_uuid(id_at_end(k)?);
        Ok(entry(store, owner, id)?.filter(|e| words.is_empty() || e.matches(&words)))
    })
}

pub(crate) fn counts(store: &SledStore, owner: UserId) -> Result<BookCounts> {
    let n = |v: BookView| -> Result<usize> {
        Ok(store
            .tree(ix::BOOK_ORDER)
            .get(count_key(owner, v))?
            .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0) as usize)
    };
    Ok(BookCounts {
        all: n(BookView::All)?,
        tracked: n(BookView::Tracked)?,
        untracked: n(BookView::Untracked)?,
        pending: n(BookView::Pending)?,
    })
}

/// Write CRM records and address-book entries of `owner` as one atomic change.
pub(crate) fn write(
    store: &SledStore,
    owner: UserId,
    mut records: Vec<Record>,
    mut entries: Vec<AddressBookEntry>,
) -> Result<Vec<AddressBookEntry>> {
    for r in &mut records {
        super::validate::record(r)?;
    }
    for e in &mut entries {
        if e.owner != owner {
            return Err(StoreError::invalid(
                "address-book entry",
                "it belongs to another user's address book",
            ));
        }
        e.validate()?;
    }
    let now = Utc::now();
    store.write(|tx| {
        match tx.record(owner.uuid())? {
            Some(Record::User(_)) => {}
            _ => {
                return abort(StoreError::NotFound {
                    kind: Some(super::Kind::User),
                    id: owner.uuid(),
                })
            }
        }
        for r in &records {
            tx.write_record(r, false, true)?;
        }
        let mut out = Vec::with_capacity(entries.len());
        for e in &entries {
            let mut e = e.clone();
            let old = tx_entry(tx, owner, e.id)?;
            // An entry read before another change to it was written is stale:
            // writing it would undo that change.
            if old
                .as_ref()
                .is_some_and(|o| o.stamps.modified != e.stamps.modified)
            {
                return abort(StoreError::invalid(
                    "address-book entry",
                    format!(
                        "{} changed meanwhile (in another window?); reload and try again",
                        e.full_name
                    ),
                ));
            }
            let created = old.map(|o| o.stamps.created);
            e.stamps = Stamps {
                created: created.unwrap_or(now),
                modified: now,
            };
            if let ContactLink::Tracked { contact } = &e.link {
                if !matches!(tx.record(contact.uuid())?, Some(Record::Contact(_))) {
                    return abort(StoreError::MissingLink {
                        what: format!("address-book entry {}", e.id),
                        kind: super::Kind::Contact,
                        id: contact.uuid(),
                    });
                }
            }
            write_entry(tx, &e)?;
            out.push(e);
        }
        Ok(out)
    })
}

/// Rebuild `book_order` and `book_emails` from the entries (after they were cleared).
pub(crate) fn reindex(store: &SledStore) -> Result<()> {
    let rows: Vec<sled::IVec> = store
        .tree(ix::BOOK)
        .iter()
        .values()
        .collect::<sled::Result<_>>()?;
    for chunk in rows.chunks(CHUNK) {
        let es: Vec<AddressBookEntry> = chunk
            .iter()
            .map(|v| decode("address-book entry", v))
            .collect::<Result<_>>()?;
        store.write(|tx| es.iter().try_for_each(|e| index_entry(tx, e, true)))?;
    }
    Ok(())
}

/// Put the addresses of mail tracked before address books existed into them.
pub(crate) fn backfill_seen(store: &SledStore) -> Result<()> {
    let rows: Vec<sled::IVec> = store
        .tree(ix::TRACKING)
        .iter()
        .values()
        .collect::<sled::Result<_>>()?;
    for chunk in rows.chunks(CHUNK) {
        let ts: Vec<TrackingRecord> = chunk
            .iter()
            .map(|v| decode("tracking", v))
            .collect::<Result<_>>()?;
        store.write(|tx| ts.iter().try_for_each(|t| note_seen(tx, t)))?;
    }
    Ok(())
}

pub(crate) fn book_key(owner: UserId, id: EntryId) -> Vec<u8> {
    [&owner.uuid().as_bytes()[..], id.uuid().as_bytes()].concat()
}
pub(crate) fn order_key(e: &AddressBookEntry, view: BookView) -> Vec<u8> {
    [
        e.owner.uuid().as_bytes(),
        &[view.byte()][..],
        &order_suffix(&e.full_name, e.id.uuid()),
    ]
    .concat()
}
/// The count of a view: `owner, 0xFF, view byte` (outside every view's range).
pub(crate) fn count_key(owner: UserId, view: BookView) -> Vec<u8> {
    [&owner.uuid().as_bytes()[..], &[COUNTS, view.byte()]].concat()
}
pub(crate) fn email_key(owner: UserId, a: &EmailAddress) -> Vec<u8> {
    [owner.uuid().as_bytes(), a.key().as_bytes()].concat()
}

pub(crate) fn tx_entry(tx: &Tx, owner: UserId, id: EntryId) -> TxResult<Option<AddressBookEntry>> {
    match tx.t(ix::BOOK).get(book_key(owner, id))? {
        Some(v) => Ok(Some(decode("address-book entry", &v).or_else(abort)?)),
        None => Ok(None),
    }
}

/// Add or remove an entry's index keys.
pub(crate) fn index_entry(tx: &Tx, e: &AddressBookEntry, add: bool) -> TxResult<()> {
    for view in [BookView::All, e.view()] {
        let counter = count_key(e.owner, view);
        let n = tx
            .t(ix::BOOK_ORDER)
            .get(&counter)?
            .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0);
        if add {
            tx.t(ix::BOOK_ORDER).insert(order_key(e, view), &[])?;
            tx.t(ix::BOOK_ORDER)
                .insert(counter, &(n + 1).to_be_bytes())?;
        } else {
            tx.t(ix::BOOK_ORDER).remove(order_key(e, view))?;
            tx.t(ix::BOOK_ORDER)
                .insert(counter, &n.saturating_sub(1).to_be_bytes())?;
        }
    }
    for a in &e.emails {
        let k = email_key(e.owner, a);
        if add {
            if let Some(other) = tx.t(ix::BOOK_EMAILS).insert(k, e.id.uuid().as_bytes())? {
                if other.as_ref() != e.id.uuid().as_bytes() {
                    return abort(StoreError::Duplicate(format!(
                        "{a} is already in this address book"
                    )));
                }
            }
        } else {
            tx.t(ix::BOOK_EMAILS).remove(k)?;
        }
    }
    Ok(())
}

/// Create or replace an entry with its index keys (inside a write).
pub(crate) fn write_entry(tx: &Tx, e: &AddressBookEntry) -> TxResult<()> {
    if let Some(old) = tx_entry(tx, e.owner, e.id)? {
        index_entry(tx, &old, false)?;
    }
    index_entry(tx, e, true)?;
    tx.t(ix::BOOK)
        .insert(book_key(e.owner, e.id), super::compact::compact(e))?;
    Ok(())
}

/// Write an entry as given (an export being imported), telling whether it changed.
pub(crate) fn import_entry(tx: &Tx, e: &AddressBookEntry) -> TxResult<Outcome> {
    let outcome = match tx_entry(tx, e.owner, e.id)? {
        None => Outcome::Created,
        Some(old) if old == *e => return Ok(Outcome::Unchanged),
        Some(_) => Outcome::Updated,
    };
    write_entry(tx, e)?;
    Ok(outcome)
}

/// Check what an entry points to: its owner, and the contact it is linked to.
pub(crate) fn check_entry(tx: &Tx, e: &AddressBookEntry) -> TxResult<()> {
    let what = format!("address-book entry {}", e.id);
    if !matches!(tx.record(e.owner.uuid())?, Some(Record::User(_))) {
        return abort(StoreError::MissingLink {
            what,
            kind: super::Kind::User,
            id: e.owner.uuid(),
        });
    }
    if let ContactLink::Tracked { contact } = &e.link {
        if !matches!(tx.record(contact.uuid())?, Some(Record::Contact(_))) {
            return abort(StoreError::MissingLink {
                what,
                kind: super::Kind::Contact,
                id: contact.uuid(),
            });
        }
    }
    Ok(())
}

#[derive(Deserialize)]
struct PartiesOnly {
    #[serde(default)]
    parties: Vec<Party>,
}

#[derive(Deserialize)]
struct LoginsOnly {
    #[serde(default)]
    logins: Vec<EmailAddress>,
}

/// Put every address of a tracked email into its owner's address book (inside the
/// tracking record's write). The owner's own addresses are left out; an address
/// already in the book is left as it is.
pub(crate) fn note_seen(tx: &Tx, t: &TrackingRecord) -> TxResult<()> {
    if t.status != TrackStatus::Tracked {
        return Ok(());
    }
    let Some(aid) = t.activity else {
        return Ok(());
    };
    // Only the parties and the owner's logins are read: decoding the whole
    // activity (its body text) for each tracked email would cost more.
    let Some(raw) = tx.t(ix::ACTIVITIES).get(aid.uuid().as_bytes())? else {
        return Ok(());
    };
    let activity: PartiesOnly = decode("activity", &raw).or_else(abort)?;
    let Some(raw) = tx.t(ix::RECORDS).get(t.owner.uuid().as_bytes())? else {
        return Ok(());
    };
    let own = decode::<LoginsOnly>("user", &raw).or_else(abort)?.logins;
    let now = Utc::now();
    for p in &activity.parties {
        let Some(addr) = &p.address else { continue };
        if own.iter().any(|o| o.same_as(addr)) {
            continue;
        }
        if tx
            .t(ix::BOOK_EMAILS)
            .get(email_key(t.owner, addr))?
            .is_some()
        {
            continue;
        }
        if let Some(e) = AddressBookEntry::seen_in_mail(t.owner, p, addr, now) {
            write_entry(tx, &e)?;
        }
    }
    Ok(())
}
