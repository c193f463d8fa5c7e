//! The sled layout (one tree per concern) and the transactional writes that keep
//! each row and its index entries in step: every change to a row goes through
//! these functions inside one multi-tree transaction.
//!
//! Trees and keys (`id` = 16 UUID bytes, `0` = a NUL separator):
//! - `records`   id → record;  `activities` id → activity (rows: see `compact`)
//! - `emails`    address key 0 id → kind code      (address → records)
//! - `logins`    address key → user id              (unique among users)
//! - `text`      unused since v5 (full-text postings moved to `search_index`)
//! - `timeline`  record id, !time (8), activity id → ()   (newest first)
//! - `msgids`    Message-ID 0 `d:`content digest → email activity id (one activity
//!   per message; the empty digest for an email kept without its original), or
//!   Message-ID 0 `i:`activity id → activity id (an appointment) (v4)
//! - `tracking`  owner id, Message-ID → JSON tracking record
//! - `track_msg` Message-ID 0 owner id → ()
//! - `pending`   time (8), owner id, Message-ID → () (oldest request first)
//! - `refcount`  id → u64: how many rows link to this one (deletes are refused above 0)
//! - `unique`    "invoice:" number → id
//! - `meta`      "schema_version" → u32, "settings" → JSON
//! - `threads`   Thread-Index conversation key 0 activity id → ()   (v3)
//! - `tokens`    subject tracking token 0 activity id → ()          (v3)
//! - `appt_uids` iCalendar UID 0 appointment id → ()                 (v3)
//! - `locations` owner id, folder 0, UIDVALIDITY (4), UID (4) → Message-ID (v3)
//! - `by_kind`, `backlinks`: records per kind (counts), who links to whom (`kind_index`)
//! - `user_lists` user id, list code → JSON entries (see `user_lists`; not derived)
//! - `facts`     activity id → JSON header facts (regarding, S/MIME): what a fetch
//!   of a tracked message reads, without the activity's body text (absent for
//!   activities written before it existed: read from `activities` then)
//! - `kind_order` kind code, name key 0 id → ()  (records in name order, see `paging`)
//! - `book` owner id, entry id → address-book entry (a row); `book_order` owner id, view,
//!   name key 0 entry id → (); `book_emails` owner id, address key → entry id
//!   (see `address_book`)

use chrono::{DateTime, Utc};
use sled::transaction::{
    ConflictableTransactionError, ConflictableTransactionResult, TransactionalTree,
};
use uuid::Uuid;

use super::compact::compact;
use super::search_index::PostingChange;
use crate::store::activity::{
    subject_token, thread_conversation, Activity, ActivityDetails, HeaderFacts, MessageLocation,
    TrackStatus, TrackingRecord,
};
use crate::store::error::StoreError;
use crate::store::model::{Kind, Record, RecordRef};
use crate::store::text::Document;
use crate::store::validate;
use std::cell::RefCell;

/// The `msgids` key of an activity (see the module's list of trees).
pub(crate) fn msgid_key(message_id: &str, digest: Option<&str>, id: Uuid) -> Vec<u8> {
    let mut k = message_id.as_bytes().to_vec();
    k.push(0);
    match digest {
        Some(d) => {
            k.extend_from_slice(b"d:");
            k.extend_from_slice(d.as_bytes());
        }
        None => {
            k.extend_from_slice(b"i:");
            k.extend_from_slice(id.as_bytes());
        }
    }
    k
}

pub(crate) const TREES: [&str; 26] = [
    "records",
    "activities",
    "emails",
    "logins",
    "text",
    "timeline",
    "msgids",
    "tracking",
    "track_msg",
    "pending",
    "refcount",
    "unique",
    "meta",
    "threads",
    "tokens",
    "appt_uids",
    "locations",
    "by_kind",
    "backlinks",
    "user_lists",
    "facts",
    "kind_order",
    "book",
    "book_order",
    "book_emails",
    // The gateway's folder checkpoints (see `checkpoints`): in the transaction
    // set, so a checkpoint commits with the activities it covers.
    "gateway_checkpoints",
];
pub(crate) const RECORDS: usize = 0;
pub(crate) const ACTIVITIES: usize = 1;
pub(crate) const EMAILS: usize = 2;
pub(crate) const LOGINS: usize = 3;
pub(crate) const TEXT: usize = 4;
pub(crate) const TIMELINE: usize = 5;
pub(crate) const MSGIDS: usize = 6;
pub(crate) const TRACKING: usize = 7;
pub(crate) const TRACK_MSG: usize = 8;
pub(crate) const PENDING: usize = 9;
pub(crate) const REFCOUNT: usize = 10;
pub(crate) const UNIQUE: usize = 11;
pub(crate) const META: usize = 12;
pub(crate) const THREADS: usize = 13;
pub(crate) const TOKENS: usize = 14;
pub(crate) const APPT_UIDS: usize = 15;
pub(crate) const LOCATIONS: usize = 16;
pub(crate) const BY_KIND: usize = 17;
pub(crate) const BACKLINKS: usize = 18;
pub(crate) const USER_LISTS: usize = 19;
pub(crate) const FACTS: usize = 20;
pub(crate) const KIND_ORDER: usize = 21;
pub(crate) const BOOK: usize = 22;
pub(crate) const BOOK_ORDER: usize = 23;
pub(crate) const BOOK_EMAILS: usize = 24;
pub(crate) const CHECKPOINTS: usize = 25;

pub(crate) type TxResult<T> = ConflictableTransactionResult<T, StoreError>;

pub(crate) fn abort<T>(e: StoreError) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(e))
}

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("store rows serialise")
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    what: &str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    super::compact::read(bytes)
        .map_err(|e| StoreError::Corrupt(format!("{what} row does not decode: {e}")))
}

/// Big-endian key bytes that sort like the time.
pub(crate) fn time_key(t: DateTime<Utc>) -> [u8; 8] {
    ((t.timestamp_millis() as u64) ^ (1 << 63)).to_be_bytes()
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

pub(crate) fn email_key(addr_key: &str, id: Uuid) -> Vec<u8> {
    cat(&[addr_key.as_bytes(), &[0], id.as_bytes()])
}
pub(crate) fn tracking_key(owner: Uuid, msgid: &str) -> Vec<u8> {
    cat(&[owner.as_bytes(), msgid.as_bytes()])
}
fn timeline_key(record: Uuid, when: DateTime<Utc>, activity: Uuid) -> Vec<u8> {
    let inv: Vec<u8> = time_key(when).iter().map(|b| !b).collect();
    cat(&[record.as_bytes(), &inv, activity.as_bytes()])
}
fn pending_key(t: &TrackingRecord) -> Vec<u8> {
    cat(&[
        &time_key(t.requested_at),
        t.owner.uuid().as_bytes(),
        t.message_id.as_str().as_bytes(),
    ])
}
/// `text 0 id`: the key shape of the `threads`, `tokens` and `appt_uids` trees.
pub(crate) fn text_id_key(text: &str, id: Uuid) -> Vec<u8> {
    cat(&[text.as_bytes(), &[0], id.as_bytes()])
}
pub(crate) fn location_key(owner: Uuid, loc: &MessageLocation) -> Vec<u8> {
    cat(&[
        owner.as_bytes(),
        loc.folder.as_bytes(),
        &[0],
        &loc.uid_validity.to_be_bytes(),
        &loc.uid.to_be_bytes(),
    ])
}
fn track_msg_key(t: &TrackingRecord) -> Vec<u8> {
    cat(&[
        t.message_id.as_str().as_bytes(),
        &[0],
        t.owner.uuid().as_bytes(),
    ])
}

/// Whether a write added, changed or left a row as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Created,
    Updated,
    Unchanged,
}

/// The trees of one transaction, in `TREES` order, and the posting changes it
/// made (applied to the in-memory search index once the transaction commits).
pub(crate) struct Tx<'a> {
    trees: &'a [TransactionalTree],
    changes: RefCell<Vec<PostingChange>>,
}

impl<'a> Tx<'a> {
    pub fn new(trees: &'a [TransactionalTree]) -> Self {
        Tx {
            trees,
            changes: RefCell::new(Vec::new()),
        }
    }

    pub fn into_changes(self) -> Vec<PostingChange> {
        self.changes.into_inner()
    }

    pub(crate) fn t(&self, i: usize) -> &TransactionalTree {
        &self.trees[i]
    }

    pub fn record(&self, id: Uuid) -> TxResult<Option<Record>> {
        match self.t(RECORDS).get(id.as_bytes())? {
            Some(v) => Ok(Some(decode("record", &v).or_else(abort)?)),
            None => Ok(None),
        }
    }

    pub fn activity(&self, id: Uuid) -> TxResult<Option<Activity>> {
        match self.t(ACTIVITIES).get(id.as_bytes())? {
            Some(v) => Ok(Some(decode("activity", &v).or_else(abort)?)),
            None => Ok(None),
        }
    }

    pub fn exists(&self, r: RecordRef) -> TxResult<bool> {
        if r.kind.is_activity() {
            Ok(self.activity(r.id)?.is_some_and(|a| a.kind() == r.kind))
        } else {
            Ok(self.record(r.id)?.is_some_and(|x| x.kind() == r.kind))
        }
    }

    pub fn refcount(&self, id: Uuid) -> TxResult<u64> {
        Ok(self
            .t(REFCOUNT)
            .get(id.as_bytes())?
            .map(|v| u64::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 8])))
            .unwrap_or(0))
    }

    fn adjust_ref(&self, id: Uuid, add: bool) -> TxResult<()> {
        let n = self.refcount(id)?;
        let n = if add { n + 1 } else { n.saturating_sub(1) };
        if n == 0 {
            self.t(REFCOUNT).remove(id.as_bytes())?;
        } else {
            self.t(REFCOUNT).insert(id.as_bytes(), &n.to_be_bytes())?;
        }
        Ok(())
    }

    fn check_links(&self, what: &str, links: &[RecordRef]) -> TxResult<()> {
        for l in links {
            if !self.exists(*l)? {
                return abort(StoreError::MissingLink {
                    what: what.to_string(),
                    kind: l.kind,
                    id: l.id,
                });
            }
        }
        Ok(())
    }

    fn postings(&self, doc: &Document, kind: Kind, id: Uuid, add: bool) -> TxResult<()> {
        let mut changes = self.changes.borrow_mut();
        for (token, w) in &doc.0 {
            changes.push(PostingChange {
                token: token.clone(),
                id,
                kind,
                weight: *w,
                add,
            });
        }
        Ok(())
    }

    pub(crate) fn index_record(&self, r: &Record, add: bool) -> TxResult<()> {
        let id = r.id();
        for e in r.emails() {
            let k = email_key(e.key(), id);
            if add {
                self.t(EMAILS).insert(k, &[r.kind().code()])?;
            } else {
                self.t(EMAILS).remove(k)?;
            }
        }
        if let Record::User(u) = r {
            for (key, login) in u.login_keys() {
                if add {
                    if let Some(other) = self.t(LOGINS).insert(key.as_bytes(), id.as_bytes())? {
                        if other.as_ref() != id.as_bytes() {
                            let other = Uuid::from_slice(&other).unwrap_or_default();
                            return abort(StoreError::Duplicate(format!(
                                "login {login} already belongs to user {other}"
                            )));
                        }
                    }
                } else {
                    self.t(LOGINS).remove(key.as_bytes())?;
                }
            }
        }
        if let Record::Invoice(i) = r {
            let k = format!("invoice:{}", i.number.trim().to_lowercase());
            if add {
                if let Some(other) = self.t(UNIQUE).insert(k.as_bytes(), id.as_bytes())? {
                    if other.as_ref() != id.as_bytes() {
                        return abort(StoreError::Duplicate(format!(
                            "invoice number {} is already used",
                            i.number
                        )));
                    }
                }
            } else {
                self.t(UNIQUE).remove(k.as_bytes())?;
            }
        }
        self.postings(&Document::of_record(r), r.kind(), id, add)?;
        let joined_or_left = super::paging::index_kind_order(self, r, add)?;
        for l in r.links() {
            self.adjust_ref(l.id, add)?;
        }
        super::kind_index::index_record(self, r, add, joined_or_left)
    }

    /// Create or replace a record with its index entries. `keep_stamps` keeps the
    /// record's own stamps (import); otherwise they are set now.
    pub fn write_record(
        &self,
        r: &Record,
        keep_stamps: bool,
        check_links: bool,
    ) -> TxResult<(Record, Outcome)> {
        let mut r = r.clone();
        let old = self.record(r.id())?;
        if let Some(o) = &old {
            if o.kind() != r.kind() {
                return abort(StoreError::invalid(
                    r.kind().as_str(),
                    format!("id {} already belongs to a {}", r.id(), o.kind()),
                ));
            }
        } else if self.t(ACTIVITIES).get(r.id().as_bytes())?.is_some() {
            return abort(StoreError::invalid(
                r.kind().as_str(),
                format!("id {} already belongs to an activity", r.id()),
            ));
        }
        if !keep_stamps {
            let now = Utc::now();
            let created = old.as_ref().map(|o| o.stamps().created).unwrap_or(now);
            *r.stamps_mut() = crate::store::model::Stamps {
                created,
                modified: now,
            };
        }
        let outcome = match &old {
            None => Outcome::Created,
            Some(o) if *o == r => return Ok((r, Outcome::Unchanged)),
            Some(_) => Outcome::Updated,
        };
        if let Some(o) = &old {
            self.index_record(o, false)?;
        }
        self.index_record(&r, true)?;
        if check_links {
            self.check_record_links(&r)?;
        }
        self.t(RECORDS).insert(r.id().as_bytes(), compact(&r))?;
        Ok((r, outcome))
    }

    pub fn check_record_links(&self, r: &Record) -> TxResult<()> {
        self.check_links(&format!("{} {}", r.kind(), r.id()), &r.links())
    }

    pub fn delete_record(&self, id: Uuid) -> TxResult<()> {
        let Some(old) = self.record(id)? else {
            return abort(StoreError::NotFound { kind: None, id });
        };
        let count = self.refcount(id)?;
        if count > 0 {
            return abort(StoreError::InUse {
                kind: old.kind(),
                id,
                count,
            });
        }
        self.index_record(&old, false)?;
        self.t(RECORDS).remove(id.as_bytes())?;
        Ok(())
    }

    fn activity_links(a: &Activity) -> Vec<RecordRef> {
        let mut links = a.timeline_records();
        if let ActivityDetails::Email(e) = &a.details {
            links.extend(e.correlated_with.map(|c| RecordRef::new(Kind::Email, c)));
        }
        links.sort();
        links.dedup();
        links
    }

    pub(crate) fn index_activity(&self, a: &Activity, add: bool) -> TxResult<()> {
        let id = a.id.uuid();
        if let Some(m) = a.message_id() {
            // An email kept without its original has the empty digest: one such
            // email per Message-ID, as before digests existed.
            let digest = match &a.details {
                ActivityDetails::Email(e) => Some(e.content_digest.as_deref().unwrap_or("")),
                _ => None,
            };
            let key = msgid_key(m.as_str(), digest, id);
            if add {
                if let Some(other) = self.t(MSGIDS).insert(key, id.as_bytes())? {
                    if other.as_ref() != id.as_bytes() {
                        let other = Uuid::from_slice(&other).unwrap_or_default();
                        return abort(StoreError::Duplicate(format!(
                            "Message-ID {m} with this content already belongs to activity {other}"
                        )));
                    }
                }
            } else {
                self.t(MSGIDS).remove(key)?;
            }
        }
        let mut lookups: Vec<(usize, Vec<u8>)> = Vec::new();
        match &a.details {
            ActivityDetails::Email(e) => {
                if let Some(ti) = &e.thread_index {
                    lookups.push((THREADS, text_id_key(&thread_conversation(ti), id)));
                }
                if let Some(tok) = subject_token(&a.subject) {
                    lookups.push((TOKENS, text_id_key(tok, id)));
                }
            }
            ActivityDetails::Appointment(ap) => {
                if let Some(uid) = &ap.uid {
                    lookups.push((APPT_UIDS, text_id_key(uid, id)));
                }
            }
            _ => {}
        }
        for (tree, key) in lookups {
            if add {
                self.t(tree).insert(key, &[])?;
            } else {
                self.t(tree).remove(key)?;
            }
        }
        self.postings(&Document::of_activity(a), a.kind(), id, add)?;
        let when = a.when();
        for r in a.timeline_records() {
            let k = timeline_key(r.id, when, id);
            if add {
                self.t(TIMELINE).insert(k, &[])?;
            } else {
                self.t(TIMELINE).remove(k)?;
            }
        }
        for l in Self::activity_links(a) {
            self.adjust_ref(l.id, add)?;
        }
        Ok(())
    }

    pub fn write_activity(
        &self,
        a: &Activity,
        keep_stamps: bool,
        check_links: bool,
    ) -> TxResult<(Activity, Outcome)> {
        let mut a = a.clone();
        let id = a.id.uuid();
        let old = self.activity(id)?;
        if old.is_none() && self.t(RECORDS).get(id.as_bytes())?.is_some() {
            return abort(StoreError::invalid(
                a.kind().as_str(),
                format!("id {id} already belongs to a record"),
            ));
        }
        if !keep_stamps {
            let now = Utc::now();
            a.stamps.created = old.as_ref().map(|o| o.stamps.created).unwrap_or(now);
            a.stamps.modified = now;
        }
        let outcome = match &old {
            None => Outcome::Created,
            Some(o) if *o == a => return Ok((a, Outcome::Unchanged)),
            Some(_) => Outcome::Updated,
        };
        if let Some(o) = &old {
            self.index_activity(o, false)?;
        }
        self.index_activity(&a, true)?;
        if check_links {
            self.check_activity_links(&a)?;
        }
        self.t(ACTIVITIES).insert(id.as_bytes(), compact(&a))?;
        self.t(FACTS)
            .insert(id.as_bytes(), compact(&HeaderFacts::from(&a)))?;
        Ok((a, outcome))
    }

    pub fn check_activity_links(&self, a: &Activity) -> TxResult<()> {
        let what = format!("{} {}", a.kind(), a.id);
        if let Some(r) = a.regarding {
            if !self.exists(r)? {
                return abort(StoreError::MissingLink {
                    what: format!("the regarding of {what}"),
                    kind: r.kind,
                    id: r.id,
                });
            }
        }
        self.check_links(&what, &Self::activity_links(a))
    }

    pub fn delete_activity(&self, id: Uuid) -> TxResult<()> {
        let Some(old) = self.activity(id)? else {
            return abort(StoreError::NotFound { kind: None, id });
        };
        let count = self.refcount(id)?;
        if count > 0 {
            return abort(StoreError::InUse {
                kind: old.kind(),
                id,
                count,
            });
        }
        self.index_activity(&old, false)?;
        self.t(ACTIVITIES).remove(id.as_bytes())?;
        self.t(FACTS).remove(id.as_bytes())?;
        Ok(())
    }

    pub fn tracking(&self, owner: Uuid, msgid: &str) -> TxResult<Option<TrackingRecord>> {
        match self.t(TRACKING).get(tracking_key(owner, msgid))? {
            Some(v) => Ok(Some(decode("tracking", &v).or_else(abort)?)),
            None => Ok(None),
        }
    }

    pub(crate) fn index_tracking(&self, t: &TrackingRecord, add: bool) -> TxResult<()> {
        let links = validate::tracking_links(t);
        for l in &links {
            self.adjust_ref(l.id, add)?;
        }
        if let Some(a) = t.activity {
            self.adjust_ref(a.uuid(), add)?;
        }
        if add {
            self.t(TRACK_MSG).insert(track_msg_key(t), &[])?;
        } else {
            self.t(TRACK_MSG).remove(track_msg_key(t))?;
        }
        if let Some(loc) = &t.location {
            let k = location_key(t.owner.uuid(), loc);
            if add {
                self.t(LOCATIONS)
                    .insert(k, t.message_id.as_str().as_bytes())?;
            } else if self.t(LOCATIONS).get(&k)?.as_deref()
                == Some(t.message_id.as_str().as_bytes())
            {
                self.t(LOCATIONS).remove(k)?;
            }
        }
        if t.status == TrackStatus::Pending {
            if add {
                self.t(PENDING).insert(pending_key(t), &[])?;
            } else {
                self.t(PENDING).remove(pending_key(t))?;
            }
        }
        Ok(())
    }

    pub fn write_tracking(&self, t: &TrackingRecord, check_links: bool) -> TxResult<Outcome> {
        let key = tracking_key(t.owner.uuid(), t.message_id.as_str());
        let old = self.tracking(t.owner.uuid(), t.message_id.as_str())?;
        let outcome = match &old {
            None => Outcome::Created,
            Some(o) if o == t => return Ok(Outcome::Unchanged),
            Some(_) => Outcome::Updated,
        };
        if let Some(o) = &old {
            self.index_tracking(o, false)?;
        }
        self.index_tracking(t, true)?;
        if check_links {
            self.check_tracking(t)?;
        }
        self.t(TRACKING).insert(key, compact(t))?;
        // Its people join the owner's address book once, when it becomes tracked.
        let was_tracked = old
            .as_ref()
            .is_some_and(|o| o.status == t.status && o.activity == t.activity);
        if !was_tracked {
            super::book::note_seen(self, t)?;
        }
        Ok(outcome)
    }

    pub fn check_tracking(&self, t: &TrackingRecord) -> TxResult<()> {
        validate::tracking_owner(t, self.record(t.owner.uuid())?.as_ref()).or_else(abort)?;
        self.check_links(&validate::tracking_what(t), &validate::tracking_links(t))?;
        let activity = match t.activity {
            Some(aid) => self.activity(aid.uuid())?,
            None => None,
        };
        validate::tracking_activity(t, activity.as_ref()).or_else(abort)
    }

    pub fn delete_tracking(&self, owner: Uuid, msgid: &str) -> TxResult<bool> {
        let Some(old) = self.tracking(owner, msgid)? else {
            return Ok(false);
        };
        self.index_tracking(&old, false)?;
        self.t(TRACKING).remove(tracking_key(owner, msgid))?;
        Ok(true)
    }

    pub fn put_meta<T: serde::Serialize>(&self, key: &str, v: &T) -> TxResult<()> {
        self.t(META).insert(key.as_bytes(), json(v))?;
        Ok(())
    }
}
