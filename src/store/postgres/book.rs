//! Address books (a user's own mail contacts) and per-user lists (favourites,
//! recently viewed, snoozed cards) in PostgreSQL, with sled's rules: an address
//! belongs to one entry per book, a stale entry is refused, the lists keep their
//! limits. Pages walk an `order_key` with the same cursors as sled's.

use chrono::{DateTime, Utc};
use postgres::GenericClient;
use serde::Deserialize;
use uuid::Uuid;

use super::db::{json, Db};
use super::rows::{abort, exists, record, R};
use crate::store::activity::{Party, TrackStatus, TrackingRecord};
use crate::store::address::EmailAddress;
use crate::store::address_book::{AddressBookEntry, BookCounts, BookView, ContactLink, EntryId};
use crate::store::model::{Kind, Record, RecordRef, Stamps, UserId};
use crate::store::paging::{order_suffix, Page, PageRequest};
use crate::store::text::tokens;
use crate::store::user_lists::{
    ListEntry, Snoozed, UserList, FAVOURITES_LIMIT, RECENT_LIMIT, SNOOZED_LIMIT,
};
use crate::store::StoreError;

/// Longest snoozed-card key, as sled's.
const CARD_KEY_MAX: usize = 1024;
/// Rows read per step while a filtered page is gathered.
const STEP: i64 = 200;

fn view_code(v: BookView) -> i16 {
    match v {
        BookView::All => 0,
        BookView::Tracked => 1,
        BookView::Untracked => 2,
        BookView::Pending => 3,
    }
}

pub fn entry<C: GenericClient>(
    db: &mut Db<'_, C>,
    owner: UserId,
    id: EntryId,
) -> R<Option<AddressBookEntry>> {
    db.doc(
        "address-book entry",
        "SELECT doc FROM book WHERE owner = $1 AND id = $2",
        &[&owner.uuid(), &id.uuid()],
    )
}

pub fn by_email<C: GenericClient>(
    db: &mut Db<'_, C>,
    owner: UserId,
    a: &EmailAddress,
) -> R<Option<AddressBookEntry>> {
    db.doc(
        "address-book entry",
        "SELECT b.doc FROM book_emails e JOIN book b ON b.owner = e.owner AND b.id = e.entry
         WHERE e.owner = $1 AND e.addr_key = $2",
        &[&owner.uuid(), &a.key()],
    )
}

/// Create or replace an entry with its index rows.
pub fn write_entry<C: GenericClient>(db: &mut Db<'_, C>, e: &AddressBookEntry) -> R<()> {
    let (owner, id) = (e.owner.uuid(), e.id.uuid());
    db.exec(
        "DELETE FROM book_emails WHERE owner = $1 AND entry = $2",
        &[&owner, &id],
    )?;
    for a in &e.emails {
        let other = db.opt(
            "SELECT entry FROM book_emails WHERE owner = $1 AND addr_key = $2",
            &[&owner, &a.key()],
        )?;
        match other.map(|r| r.get::<_, Uuid>(0)) {
            Some(o) if o != id => {
                return abort(StoreError::Duplicate(format!(
                    "{a} is already in this address book"
                )))
            }
            Some(_) => {}
            None => {
                db.exec(
                    "INSERT INTO book_emails (owner, addr_key, entry) VALUES ($1, $2, $3)",
                    &[&owner, &a.key(), &id],
                )?;
            }
        }
    }
    db.exec(
        "INSERT INTO book (owner, id, view, order_key, doc) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (owner, id) DO UPDATE SET view = $3, order_key = $4, doc = $5",
        &[
            &owner,
            &id,
            &view_code(e.view()),
            &order_suffix(&e.full_name, id),
            &json(e),
        ],
    )?;
    Ok(())
}

/// Write an entry as given (an export being imported), telling whether it changed.
pub fn import_entry<C: GenericClient>(
    db: &mut Db<'_, C>,
    e: &AddressBookEntry,
) -> R<super::rows::Outcome> {
    use super::rows::Outcome;
    let outcome = match entry(db, e.owner, e.id)? {
        None => Outcome::Created,
        Some(old) if old == *e => return Ok(Outcome::Unchanged),
        Some(_) => Outcome::Updated,
    };
    write_entry(db, e)?;
    Ok(outcome)
}

/// Check what an entry points to: its owner, and the contact it is linked to.
pub fn check_entry<C: GenericClient>(db: &mut Db<'_, C>, e: &AddressBookEntry) -> R<()> {
    let what = format!("address-book entry {}", e.id);
    if !matches!(record(db, e.owner.uuid())?, Some(Record::User(_))) {
        return abort(StoreError::MissingLink {
            what,
            kind: Kind::User,
            id: e.owner.uuid(),
        });
    }
    if let ContactLink::Tracked { contact } = &e.link {
        if !matches!(record(db, contact.uuid())?, Some(Record::Contact(_))) {
            return abort(StoreError::MissingLink {
                what,
                kind: Kind::Contact,
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

/// Put every address of a tracked email into its owner's address book (inside
/// the tracking record's write), as sled's `note_seen` does.
pub fn note_seen<C: GenericClient>(db: &mut Db<'_, C>, t: &TrackingRecord) -> R<()> {
    if t.status != TrackStatus::Tracked {
        return Ok(());
    }
    let Some(aid) = t.activity else {
        return Ok(());
    };
    let Some(a) = db.doc::<PartiesOnly>(
        "activity",
        "SELECT doc FROM activities WHERE id = $1",
        &[&aid.uuid()],
    )?
    else {
        return Ok(());
    };
    let Some(Record::User(owner)) = record(db, t.owner.uuid())? else {
        return Ok(());
    };
    let now = Utc::now();
    for p in &a.parties {
        let Some(addr) = &p.address else { continue };
        if owner.logins.iter().any(|o| o.same_as(addr)) {
            continue;
        }
        if db
            .opt(
                "SELECT 1 FROM book_emails WHERE owner = $1 AND addr_key = $2",
                &[&t.owner.uuid(), &addr.key()],
            )?
            .is_some()
        {
            continue;
        }
        if let Some(e) = AddressBookEntry::seen_in_mail(t.owner, p, addr, now) {
            write_entry(db, &e)?;
        }
    }
    Ok(())
}

/// New entries (each with one address none of the book's has, see
/// [`AddressBookEntry::seen_in_mail`]) in two statements.
pub fn insert_new_entries<C: GenericClient>(
    db: &mut Db<'_, C>,
    entries: &[AddressBookEntry],
) -> R<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let owners: Vec<Uuid> = entries.iter().map(|e| e.owner.uuid()).collect();
    let ids: Vec<Uuid> = entries.iter().map(|e| e.id.uuid()).collect();
    let keys: Vec<&str> = entries
        .iter()
        .map(|e| e.emails.first().map_or("", |a| a.key()))
        .collect();
    let views: Vec<i16> = entries.iter().map(|e| view_code(e.view())).collect();
    let orders: Vec<Vec<u8>> = entries
        .iter()
        .map(|e| order_suffix(&e.full_name, e.id.uuid()))
        .collect();
    let docs: Vec<_> = entries.iter().map(json).collect();
    db.exec(
        "INSERT INTO book_emails (owner, addr_key, entry)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[])",
        &[&owners, &keys, &ids],
    )?;
    db.exec(
        "INSERT INTO book (owner, id, view, order_key, doc)
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::smallint[], $4::bytea[], $5::jsonb[])",
        &[&owners, &ids, &views, &orders, &docs],
    )?;
    Ok(())
}

pub fn counts<C: GenericClient>(db: &mut Db<'_, C>, owner: UserId) -> R<BookCounts> {
    let mut c = BookCounts::default();
    for row in db.query(
        "SELECT view, count(*) FROM book WHERE owner = $1 GROUP BY view",
        &[&owner.uuid()],
    )? {
        let n = row.get::<_, i64>(1) as usize;
        match row.get::<_, i16>(0) {
            1 => c.tracked = n,
            2 => c.untracked = n,
            3 => c.pending = n,
            _ => {}
        }
        c.all += n;
    }
    Ok(c)
}

/// A cursor as sled's lists give it out: the hex of a name key, 0, an id.
pub fn parse_cursor(c: &str) -> R<Vec<u8>> {
    hex::decode(c.trim())
        .ok()
        .filter(|b| b.len() >= 17 && b.len() <= 64 + 17)
        .ok_or_else(|| {
            StoreError::invalid(
                "page cursor",
                "it is not one this list gave out; start again from the first page",
            )
            .into()
        })
}

/// One step of rows in key order: after (or, `back`, before) `from`, at most
/// `STEP`, each with its key.
pub type Fetch<'f, T> = dyn FnMut(Option<&[u8]>, bool, i64) -> R<Vec<(Vec<u8>, T)>> + 'f;

/// A page in key order from rows `fetch` gives step by step, keeping those
/// `accept` takes: the same cursors and prev/next rules as sled's `page_of`.
pub fn page_of<T>(
    req: &PageRequest,
    fetch: &mut Fetch<'_, T>,
    accept: impl Fn(&T) -> bool,
) -> R<Page<T>> {
    let limit = req.limit();
    let back = req.before.is_some();
    let mut from = match (&req.before, &req.after) {
        (Some(c), _) | (None, Some(c)) => Some(parse_cursor(c)?),
        _ => None,
    };
    let mut got: Vec<(Vec<u8>, T)> = Vec::new();
    'outer: loop {
        let rows = fetch(from.as_deref(), back, STEP)?;
        let n = rows.len();
        for (k, t) in rows {
            from = Some(k.clone());
            if accept(&t) {
                got.push((k, t));
                if got.len() > limit {
                    break 'outer;
                }
            }
        }
        if (n as i64) < STEP {
            break;
        }
    }
    let more = got.len() > limit;
    got.truncate(limit);
    let cursor = |k: &[u8]| hex::encode(k);
    let (prev, next) = if back {
        got.reverse();
        (
            if more {
                got.first().map(|(k, _)| cursor(k))
            } else {
                None
            },
            got.last().map(|(k, _)| cursor(k)),
        )
    } else {
        (
            if req.after.is_some() {
                got.first().map(|(k, _)| cursor(k))
            } else {
                None
            },
            if more {
                got.last().map(|(k, _)| cursor(k))
            } else {
                None
            },
        )
    };
    Ok(Page {
        items: got.into_iter().map(|(_, t)| t).collect(),
        prev,
        next,
    })
}

/// A page of one view of `owner`'s book in name order; with `text`, matching entries.
pub fn page<C: GenericClient>(
    db: &mut Db<'_, C>,
    owner: UserId,
    view: BookView,
    text: &str,
    req: &PageRequest,
) -> R<Page<AddressBookEntry>> {
    let words = tokens(text);
    let o = owner.uuid();
    let v = view_code(view);
    let all = view == BookView::All;
    let mut fetch = |from: Option<&[u8]>,
                     back: bool,
                     n: i64|
     -> R<Vec<(Vec<u8>, AddressBookEntry)>> {
        let rows = match (from, back) {
            (None, _) => db.query(
                "SELECT order_key, doc FROM book WHERE owner = $1 AND ($2 OR view = $3)
                 ORDER BY order_key LIMIT $4",
                &[&o, &all, &v, &n],
            )?,
            (Some(k), false) => db.query(
                "SELECT order_key, doc FROM book WHERE owner = $1 AND ($2 OR view = $3) AND order_key > $5
                 ORDER BY order_key LIMIT $4",
                &[&o, &all, &v, &n, &k],
            )?,
            (Some(k), true) => db.query(
                "SELECT order_key, doc FROM book WHERE owner = $1 AND ($2 OR view = $3) AND order_key < $5
                 ORDER BY order_key DESC LIMIT $4",
                &[&o, &all, &v, &n, &k],
            )?,
        };
        rows.iter()
            .map(|r| Ok((r.get(0), super::db::decode("address-book entry", r, 1)?)))
            .collect()
    };
    page_of(req, &mut fetch, |e: &AddressBookEntry| {
        words.is_empty() || e.matches(&words)
    })
}

/// The checks and stamps of `CrmStore::address_book_write` for one entry.
pub fn write_checked<C: GenericClient>(
    db: &mut Db<'_, C>,
    owner: UserId,
    e: &AddressBookEntry,
    now: DateTime<Utc>,
) -> R<AddressBookEntry> {
    let mut e = e.clone();
    let old = entry(db, owner, e.id)?;
    // An entry read before another change to it was written is stale: writing it
    // would undo that change.
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
    e.stamps = Stamps {
        created: old.map(|o| o.stamps.created).unwrap_or(now),
        modified: now,
    };
    if let ContactLink::Tracked { contact } = &e.link {
        if !matches!(record(db, contact.uuid())?, Some(Record::Contact(_))) {
            return abort(StoreError::MissingLink {
                what: format!("address-book entry {}", e.id),
                kind: Kind::Contact,
                id: contact.uuid(),
            });
        }
    }
    write_entry(db, &e)?;
    Ok(e)
}

// --- per-user lists -----------------------------------------------------------

fn list_code(l: UserList) -> i8 {
    match l {
        UserList::Favourites => b'F' as i8,
        UserList::Recent => b'R' as i8,
    }
}
const SNOOZED: i8 = b'S' as i8;

fn read_list<C: GenericClient, T: serde::de::DeserializeOwned>(
    db: &mut Db<'_, C>,
    user: UserId,
    code: i8,
) -> R<Vec<T>> {
    Ok(db
        .doc(
            "user list",
            "SELECT doc FROM user_lists WHERE user_id = $1 AND list = $2",
            &[&user.uuid(), &code],
        )?
        .unwrap_or_default())
}

fn write_list<C: GenericClient, T: serde::Serialize>(
    db: &mut Db<'_, C>,
    user: UserId,
    code: i8,
    entries: &[T],
) -> R<()> {
    db.exec(
        "INSERT INTO user_lists (user_id, list, doc) VALUES ($1, $2, $3)
         ON CONFLICT (user_id, list) DO UPDATE SET doc = $3",
        &[&user.uuid(), &code, &json(&entries)],
    )?;
    Ok(())
}

fn need_user<C: GenericClient>(db: &mut Db<'_, C>, user: UserId) -> R<()> {
    if !matches!(record(db, user.uuid())?, Some(Record::User(_))) {
        return abort(StoreError::NotFound {
            kind: Some(Kind::User),
            id: user.uuid(),
        });
    }
    Ok(())
}

fn check_listed<C: GenericClient>(db: &mut Db<'_, C>, user: UserId, r: RecordRef) -> R<()> {
    need_user(db, user)?;
    if r.kind.is_activity() || !exists(db, r)? {
        return abort(StoreError::NotFound {
            kind: Some(r.kind),
            id: r.id,
        });
    }
    Ok(())
}

/// The entries whose record still exists.
fn live<C: GenericClient>(db: &mut Db<'_, C>, entries: Vec<ListEntry>) -> R<Vec<ListEntry>> {
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        if exists(db, e.record)? {
            out.push(e);
        }
    }
    Ok(out)
}

pub fn user_list<C: GenericClient>(
    db: &mut Db<'_, C>,
    user: UserId,
    list: UserList,
) -> R<Vec<ListEntry>> {
    let entries = read_list(db, user, list_code(list))?;
    live(db, entries)
}

pub fn set_favourite<C: GenericClient>(
    db: &mut Db<'_, C>,
    user: UserId,
    record: RecordRef,
    on: bool,
) -> R<bool> {
    let code = list_code(UserList::Favourites);
    let entries = read_list(db, user, code)?;
    let mut list = live(db, entries)?;
    let was = list.iter().any(|e| e.record.id == record.id);
    if on && !was {
        check_listed(db, user, record)?;
        if list.len() >= FAVOURITES_LIMIT {
            return abort(StoreError::invalid(
                "favourites",
                format!("at most {FAVOURITES_LIMIT} favourites; remove one first"),
            ));
        }
        list.insert(
            0,
            ListEntry {
                record,
                at: Utc::now(),
            },
        );
    } else if !on {
        list.retain(|e| e.record.id != record.id);
    }
    write_list(db, user, code, &list)?;
    Ok(was)
}

pub fn note_viewed<C: GenericClient>(db: &mut Db<'_, C>, user: UserId, record: RecordRef) -> R<()> {
    check_listed(db, user, record)?;
    let code = list_code(UserList::Recent);
    let entries = read_list(db, user, code)?;
    let mut list = live(db, entries)?;
    list.retain(|e| e.record.id != record.id);
    list.insert(
        0,
        ListEntry {
            record,
            at: Utc::now(),
        },
    );
    list.truncate(RECENT_LIMIT);
    write_list(db, user, code, &list)
}

pub fn snoozed<C: GenericClient>(db: &mut Db<'_, C>, user: UserId) -> R<Vec<Snoozed>> {
    let now = Utc::now();
    let mut list: Vec<Snoozed> = read_list(db, user, SNOOZED)?;
    list.retain(|s| s.until > now);
    Ok(list)
}

/// Checked before the transaction: a card key that cannot be one.
pub fn check_card(card: &str) -> crate::store::Result<&str> {
    let card = card.trim();
    if card.is_empty() || card.len() > CARD_KEY_MAX || card.chars().any(char::is_control) {
        return Err(StoreError::invalid(
            "snoozed card",
            "not a card of the assistant",
        ));
    }
    Ok(card)
}

pub fn snooze<C: GenericClient>(
    db: &mut Db<'_, C>,
    user: UserId,
    card: &str,
    until: DateTime<Utc>,
) -> R<()> {
    need_user(db, user)?;
    let mut list: Vec<Snoozed> = read_list(db, user, SNOOZED)?;
    let now = Utc::now();
    list.retain(|s| s.until > now && s.card != card);
    if until > now {
        list.push(Snoozed {
            card: card.to_owned(),
            until,
        });
    }
    list.sort_by_key(|s| std::cmp::Reverse(s.until));
    list.truncate(SNOOZED_LIMIT);
    write_list(db, user, SNOOZED, &list)
}
