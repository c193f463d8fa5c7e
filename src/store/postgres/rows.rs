//! Writes of records, activities and tracking records with their index rows,
//! inside one transaction: the PostgreSQL twin of sled's `Tx`, with the same
//! rules and the same error messages (the conformance suite runs on both).
//!
//! An index row belongs to the row it was made from (`id`, or owner and
//! Message-ID for tracking), so a replace deletes them by that key and makes
//! them again from the new value.

use chrono::Utc;
use postgres::GenericClient;
use uuid::Uuid;

use super::db::{json, Db};
use super::PgError;
use crate::store::activity::{
    subject_token, thread_conversation, Activity, ActivityDetails, HeaderFacts, TrackStatus,
    TrackingRecord,
};
use crate::store::model::{Kind, Record, RecordRef, Stamps};
use crate::store::paging::order_suffix;
use crate::store::text::Document;
use crate::store::{validate, StoreError};

pub type R<T> = Result<T, PgError>;

/// `refs.source_kind` of a tracking record (kinds are 0‥13).
pub const TRACKING_SOURCE: i16 = 100;

/// Whether a write added, changed or left a row as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
}

pub fn abort<T>(e: StoreError) -> R<T> {
    Err(PgError::Store(e))
}

pub fn code(k: Kind) -> i16 {
    i16::from(k.code())
}

pub fn kind_of(c: i16) -> R<Kind> {
    u8::try_from(c)
        .ok()
        .and_then(Kind::from_code)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown kind code {c}")).into())
}

/// Milliseconds since the epoch: the resolution sled's time keys have.
pub fn ms(t: chrono::DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub fn record<C: GenericClient>(db: &mut Db<'_, C>, id: Uuid) -> R<Option<Record>> {
    db.doc("record", "SELECT doc FROM records WHERE id = $1", &[&id])
}

pub fn activity<C: GenericClient>(db: &mut Db<'_, C>, id: Uuid) -> R<Option<Activity>> {
    db.doc(
        "activity",
        "SELECT doc FROM activities WHERE id = $1",
        &[&id],
    )
}

pub fn tracking<C: GenericClient>(
    db: &mut Db<'_, C>,
    owner: Uuid,
    msgid: &str,
) -> R<Option<TrackingRecord>> {
    db.doc(
        "tracking",
        "SELECT doc FROM tracking WHERE owner = $1 AND message_id = $2",
        &[&owner, &msgid],
    )
}

pub fn exists<C: GenericClient>(db: &mut Db<'_, C>, r: RecordRef) -> R<bool> {
    let row = if r.kind.is_activity() {
        db.opt("SELECT kind FROM activities WHERE id = $1", &[&r.id])?
    } else {
        db.opt("SELECT kind FROM records WHERE id = $1", &[&r.id])?
    };
    Ok(row.is_some_and(|row| row.get::<_, i16>(0) == code(r.kind)))
}

pub fn refcount<C: GenericClient>(db: &mut Db<'_, C>, id: Uuid) -> R<u64> {
    let n: i64 = db
        .one("SELECT count(*) FROM refs WHERE target = $1", &[&id])?
        .get(0);
    Ok(n as u64)
}

fn add_refs<C: GenericClient>(
    db: &mut Db<'_, C>,
    targets: &[Uuid],
    kind: i16,
    source: Uuid,
    owner_msg: &str,
) -> R<()> {
    if !targets.is_empty() {
        db.exec(
            "INSERT INTO refs (target, source_kind, source, owner_msg) SELECT t, $2, $3, $4 FROM unnest($1::uuid[]) AS t",
            &[&targets, &kind, &source, &owner_msg],
        )?;
    }
    Ok(())
}

fn check_links<C: GenericClient>(db: &mut Db<'_, C>, what: &str, links: &[RecordRef]) -> R<()> {
    if links.is_empty() {
        return Ok(());
    }
    // One round trip for all of them: every id that exists, with its kind.
    let ids: Vec<Uuid> = links.iter().map(|l| l.id).collect();
    let found: Vec<(Uuid, i16)> = db
        .query(
            "SELECT id, kind FROM records WHERE id = ANY($1)
             UNION ALL SELECT id, kind FROM activities WHERE id = ANY($1)",
            &[&ids],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for l in links {
        if !found.contains(&(l.id, code(l.kind))) {
            return abort(StoreError::MissingLink {
                what: what.to_string(),
                kind: l.kind,
                id: l.id,
            });
        }
    }
    Ok(())
}

fn postings<C: GenericClient>(db: &mut Db<'_, C>, doc: &Document, kind: Kind, id: Uuid) -> R<()> {
    if doc.0.is_empty() {
        return Ok(());
    }
    let tokens: Vec<&str> = doc.0.keys().map(String::as_str).collect();
    let weights: Vec<i16> = doc.0.values().map(|w| i16::from(*w)).collect();
    db.exec(
        "INSERT INTO postings (token, id, kind, weight) SELECT t, $2, $3, w FROM unnest($1::text[], $4::smallint[]) AS u(t, w)",
        &[&tokens, &id, &code(kind), &weights],
    )?;
    Ok(())
}

/// Delete every index row made from the record `id`.
fn unindex_record<C: GenericClient>(db: &mut Db<'_, C>, id: Uuid) -> R<()> {
    db.exec("DELETE FROM emails WHERE id = $1", &[&id])?;
    db.exec("DELETE FROM logins WHERE user_id = $1", &[&id])?;
    db.exec("DELETE FROM uniques WHERE id = $1", &[&id])?;
    db.exec("DELETE FROM postings WHERE id = $1", &[&id])?;
    db.exec(
        "DELETE FROM refs WHERE source = $1 AND owner_msg = ''",
        &[&id],
    )?;
    Ok(())
}

fn index_record<C: GenericClient>(db: &mut Db<'_, C>, r: &Record) -> R<()> {
    let (id, kind) = (r.id(), r.kind());
    let keys: Vec<&str> = r.emails().iter().map(|e| e.key()).collect();
    if !keys.is_empty() {
        db.exec(
            "INSERT INTO emails (addr_key, id, kind) SELECT k, $2, $3 FROM unnest($1::text[]) AS k ON CONFLICT DO NOTHING",
            &[&keys, &id, &code(kind)],
        )?;
    }
    if let Record::User(u) = r {
        for (key, login) in u.login_keys() {
            let other = db.opt("SELECT user_id FROM logins WHERE addr_key = $1", &[&key])?;
            if let Some(other) = other.map(|row| row.get::<_, Uuid>(0)) {
                if other != id {
                    return abort(StoreError::Duplicate(format!(
                        "login {login} already belongs to user {other}"
                    )));
                }
                continue;
            }
            db.exec(
                "INSERT INTO logins (addr_key, user_id) VALUES ($1, $2)",
                &[&key, &id],
            )?;
        }
    }
    if let Record::Invoice(i) = r {
        let k = format!("invoice:{}", i.number.trim().to_lowercase());
        let other = db.opt("SELECT id FROM uniques WHERE key = $1", &[&k])?;
        match other.map(|row| row.get::<_, Uuid>(0)) {
            Some(o) if o != id => {
                return abort(StoreError::Duplicate(format!(
                    "invoice number {} is already used",
                    i.number
                )))
            }
            Some(_) => {}
            None => {
                db.exec("INSERT INTO uniques (key, id) VALUES ($1, $2)", &[&k, &id])?;
            }
        }
    }
    postings(db, &Document::of_record(r), kind, id)?;
    let targets: Vec<Uuid> = r.links().iter().map(|l| l.id).collect();
    add_refs(db, &targets, code(kind), id, "")
}

/// Create or replace a record with its index rows. `keep_stamps` keeps the
/// record's own stamps (import); otherwise they are set now.
pub fn write_record<C: GenericClient>(
    db: &mut Db<'_, C>,
    r: &Record,
    keep_stamps: bool,
    check: bool,
) -> R<(Record, Outcome)> {
    let mut r = r.clone();
    let id = r.id();
    let old = record(db, id)?;
    if let Some(o) = &old {
        if o.kind() != r.kind() {
            return abort(StoreError::invalid(
                r.kind().as_str(),
                format!("id {id} already belongs to a {}", o.kind()),
            ));
        }
    } else if db
        .opt("SELECT 1 FROM activities WHERE id = $1", &[&id])?
        .is_some()
    {
        return abort(StoreError::invalid(
            r.kind().as_str(),
            format!("id {id} already belongs to an activity"),
        ));
    }
    if !keep_stamps {
        let now = Utc::now();
        let created = old.as_ref().map(|o| o.stamps().created).unwrap_or(now);
        *r.stamps_mut() = Stamps {
            created,
            modified: now,
        };
    }
    let outcome = match &old {
        None => Outcome::Created,
        Some(o) if *o == r => return Ok((r, Outcome::Unchanged)),
        Some(_) => Outcome::Updated,
    };
    if old.is_some() {
        unindex_record(db, id)?;
    }
    index_record(db, &r)?;
    if check {
        check_record_links(db, &r)?;
    }
    db.exec(
        "INSERT INTO records (id, kind, order_key, doc) VALUES ($1, $2, $3, $4)
         ON CONFLICT (id) DO UPDATE SET kind = $2, order_key = $3, doc = $4",
        &[
            &id,
            &code(r.kind()),
            &order_suffix(&r.title(), id),
            &json(&r),
        ],
    )?;
    Ok((r, outcome))
}

pub fn check_record_links<C: GenericClient>(db: &mut Db<'_, C>, r: &Record) -> R<()> {
    check_links(db, &format!("{} {}", r.kind(), r.id()), &r.links())
}

pub fn delete_record<C: GenericClient>(db: &mut Db<'_, C>, id: Uuid) -> R<()> {
    let Some(old) = record(db, id)? else {
        return abort(StoreError::NotFound { kind: None, id });
    };
    let count = refcount(db, id)?;
    if count > 0 {
        return abort(StoreError::InUse {
            kind: old.kind(),
            id,
            count,
        });
    }
    unindex_record(db, id)?;
    db.exec("DELETE FROM records WHERE id = $1", &[&id])?;
    Ok(())
}

pub(super) fn activity_links(a: &Activity) -> Vec<RecordRef> {
    let mut links = a.timeline_records();
    if let ActivityDetails::Email(e) = &a.details {
        links.extend(e.correlated_with.map(|c| RecordRef::new(Kind::Email, c)));
    }
    links.sort();
    links.dedup();
    links
}

fn unindex_activity<C: GenericClient>(db: &mut Db<'_, C>, id: Uuid) -> R<()> {
    db.exec("DELETE FROM postings WHERE id = $1", &[&id])?;
    db.exec("DELETE FROM timeline WHERE activity = $1", &[&id])?;
    db.exec(
        "DELETE FROM refs WHERE source = $1 AND owner_msg = ''",
        &[&id],
    )?;
    Ok(())
}

fn index_activity<C: GenericClient>(db: &mut Db<'_, C>, a: &Activity) -> R<()> {
    let id = a.id.uuid();
    let doc = Document::of_activity(a);
    let tokens: Vec<&str> = doc.0.keys().map(String::as_str).collect();
    let weights: Vec<i16> = doc.0.values().map(|w| i16::from(*w)).collect();
    let records: Vec<Uuid> = a.timeline_records().iter().map(|r| r.id).collect();
    let targets: Vec<Uuid> = activity_links(a).iter().map(|l| l.id).collect();
    // Postings, timeline and links in one round trip (tracking writes many).
    db.exec(
        "WITH p AS (INSERT INTO postings (token, id, kind, weight)
                    SELECT t, $1, $2, w FROM unnest($3::text[], $4::smallint[]) AS u(t, w)),
              tl AS (INSERT INTO timeline (record, at_ms, activity)
                    SELECT r, $5, $1 FROM unnest($6::uuid[]) AS r ON CONFLICT DO NOTHING)
         INSERT INTO refs (target, source_kind, source, owner_msg)
         SELECT t, $2, $1, '' FROM unnest($7::uuid[]) AS t",
        &[
            &id,
            &code(a.kind()),
            &tokens,
            &weights,
            &ms(a.when()),
            &records,
            &targets,
        ],
    )?;
    Ok(())
}

/// The digest column: an email's content digest ('' when kept without its
/// original, one such per Message-ID); none for other kinds.
pub(super) fn digest_of(a: &Activity) -> Option<&str> {
    match &a.details {
        ActivityDetails::Email(e) => Some(e.content_digest.as_deref().unwrap_or("")),
        _ => None,
    }
}

pub fn write_activity<C: GenericClient>(
    db: &mut Db<'_, C>,
    a: &Activity,
    keep_stamps: bool,
    check: bool,
) -> R<(Activity, Outcome)> {
    let mut a = a.clone();
    let id = a.id.uuid();
    let old = activity(db, id)?;
    if old.is_none()
        && db
            .opt("SELECT 1 FROM records WHERE id = $1", &[&id])?
            .is_some()
    {
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
    let msgid = a.message_id().map(|m| m.as_str().to_owned());
    let digest = digest_of(&a);
    if let (Some(m), Some(d)) = (&msgid, digest) {
        let other = db.opt(
            "SELECT id FROM activities WHERE message_id = $1 AND digest = $2 AND id <> $3",
            &[m, &d, &id],
        )?;
        if let Some(other) = other.map(|r| r.get::<_, Uuid>(0)) {
            return abort(StoreError::Duplicate(format!(
                "Message-ID {m} with this content already belongs to activity {other}"
            )));
        }
    }
    if old.is_some() {
        unindex_activity(db, id)?;
    }
    index_activity(db, &a)?;
    if check {
        check_activity_links(db, &a)?;
    }
    let (thread, token, uid) = match &a.details {
        ActivityDetails::Email(e) => (
            e.thread_index.as_deref().map(thread_conversation),
            subject_token(&a.subject).map(str::to_owned),
            None,
        ),
        ActivityDetails::Appointment(ap) => (None, None, ap.uid.clone()),
        _ => (None, None, None),
    };
    db.exec(
        "INSERT INTO activities (id, kind, message_id, digest, created_ms, thread, token, appt_uid, facts, doc)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (id) DO UPDATE SET kind = $2, message_id = $3, digest = $4, created_ms = $5,
           thread = $6, token = $7, appt_uid = $8, facts = $9, doc = $10",
        &[
            &id,
            &code(a.kind()),
            &msgid,
            &digest,
            &ms(a.stamps.created),
            &thread,
            &token,
            &uid,
            &json(&HeaderFacts::from(&a)),
            &json(&a),
        ],
    )?;
    Ok((a, outcome))
}

pub fn check_activity_links<C: GenericClient>(db: &mut Db<'_, C>, a: &Activity) -> R<()> {
    let what = format!("{} {}", a.kind(), a.id);
    if let Some(r) = a.regarding {
        if !exists(db, r)? {
            return abort(StoreError::MissingLink {
                what: format!("the regarding of {what}"),
                kind: r.kind,
                id: r.id,
            });
        }
    }
    check_links(db, &what, &activity_links(a))
}

pub fn delete_activity<C: GenericClient>(db: &mut Db<'_, C>, id: Uuid) -> R<()> {
    let Some(old) = activity(db, id)? else {
        return abort(StoreError::NotFound { kind: None, id });
    };
    let count = refcount(db, id)?;
    if count > 0 {
        return abort(StoreError::InUse {
            kind: old.kind(),
            id,
            count,
        });
    }
    unindex_activity(db, id)?;
    db.exec("DELETE FROM activities WHERE id = $1", &[&id])?;
    Ok(())
}

pub(super) fn tracking_targets(t: &TrackingRecord) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = validate::tracking_links(t).iter().map(|r| r.id).collect();
    ids.extend(t.activity.map(|a| a.uuid()));
    ids
}

pub fn write_tracking<C: GenericClient>(
    db: &mut Db<'_, C>,
    t: &TrackingRecord,
    check: bool,
) -> R<Outcome> {
    let (owner, msgid) = (t.owner.uuid(), t.message_id.as_str());
    let old = tracking(db, owner, msgid)?;
    let outcome = match &old {
        None => Outcome::Created,
        Some(o) if o == t => return Ok(Outcome::Unchanged),
        Some(_) => Outcome::Updated,
    };
    if old.is_some() {
        db.exec(
            "DELETE FROM refs WHERE source = $1 AND owner_msg = $2",
            &[&owner, &msgid],
        )?;
    }
    add_refs(db, &tracking_targets(t), TRACKING_SOURCE, owner, msgid)?;
    if check {
        check_tracking(db, t)?;
    }
    let loc = t.location.as_ref();
    db.exec(
        "INSERT INTO tracking (owner, message_id, pending, requested_ms, loc_folder, loc_validity, loc_uid, written, doc)
         VALUES ($1, $2, $3, $4, $5, $6, $7, nextval('tracking_written'), $8)
         ON CONFLICT (owner, message_id) DO UPDATE SET pending = $3, requested_ms = $4, loc_folder = $5,
           loc_validity = $6, loc_uid = $7, written = nextval('tracking_written'), doc = $8",
        &[
            &owner,
            &msgid,
            &(t.status == TrackStatus::Pending),
            &ms(t.requested_at),
            &loc.map(|l| l.folder.as_str()),
            &loc.map(|l| i64::from(l.uid_validity)),
            &loc.map(|l| i64::from(l.uid)),
            &json(t),
        ],
    )?;
    // Its people join the owner's address book once, when it becomes tracked.
    let was_tracked = old
        .as_ref()
        .is_some_and(|o| o.status == t.status && o.activity == t.activity);
    if !was_tracked {
        super::book::note_seen(db, t)?;
    }
    Ok(outcome)
}

pub fn check_tracking<C: GenericClient>(db: &mut Db<'_, C>, t: &TrackingRecord) -> R<()> {
    validate::tracking_owner(t, record(db, t.owner.uuid())?.as_ref())?;
    check_links(
        db,
        &validate::tracking_what(t),
        &validate::tracking_links(t),
    )?;
    let activity = match t.activity {
        Some(aid) => activity(db, aid.uuid())?,
        None => None,
    };
    Ok(validate::tracking_activity(t, activity.as_ref())?)
}

pub fn delete_tracking<C: GenericClient>(db: &mut Db<'_, C>, owner: Uuid, msgid: &str) -> R<bool> {
    if tracking(db, owner, msgid)?.is_none() {
        return Ok(false);
    }
    db.exec(
        "DELETE FROM refs WHERE source = $1 AND owner_msg = $2",
        &[&owner, &msgid],
    )?;
    db.exec(
        "DELETE FROM tracking WHERE owner = $1 AND message_id = $2",
        &[&owner, &msgid],
    )?;
    Ok(true)
}

/// The settings row (absent: the defaults).
pub fn put_meta<C: GenericClient, T: serde::Serialize>(
    db: &mut Db<'_, C>,
    key: &str,
    v: &T,
) -> R<()> {
    db.exec(
        "INSERT INTO crm_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = $2",
        &[&key, &json(v)],
    )?;
    Ok(())
}
