//! The sled side of the address-book methods of `CrmStore` (see
//! [`super::address_book`] for the model and the index keys): reading entries
//! and pages of a view, the counts, the atomic write of records and entries,
//! and the one-time rebuild and backfill of an older store.

use chrono::Utc;
use uuid::Uuid;

use super::activity::TrackingRecord;
use super::address::EmailAddress;
use super::address_book::*;
use super::error::StoreError;
use super::model::{Record, Stamps, UserId};
use super::paging::{id_at_end, page_of, Page, PageRequest};
use super::sled_index::{self as ix, abort, decode};
use super::sled_store::SledStore;
use super::text::tokens;
use super::Result;

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
