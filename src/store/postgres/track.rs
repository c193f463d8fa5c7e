//! Tracking writes in bulk (`track`, `track_batch`, `put_tracked`): the rows a
//! batch touches are read up front in a few set-based queries, the rules of
//! `rows::write_activity` and `rows::write_tracking` (same checks, same order,
//! same messages) are applied to the batch's writes one after the other in
//! memory, and then every table gets one statement for the whole batch (arrays
//! unnested). A batch of 500 emails costs about a dozen round trips instead of
//! ~15 per email; it is still one SERIALIZABLE transaction, and the unique
//! indexes still hold across processes (one activity per Message-ID and digest).

use chrono::Utc;
use postgres::GenericClient;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

use super::book::insert_new_entries;
use super::db::{decode, json, Db};
use super::rows::{
    abort, activity_links, code, digest_of, ms, tracking_targets, R, TRACKING_SOURCE,
};
use crate::store::activity::{
    subject_token, thread_conversation, Activity, ActivityDetails, HeaderFacts, TrackStatus,
    TrackingRecord,
};
use crate::store::address_book::AddressBookEntry;
use crate::store::model::{Record, RecordRef};
use crate::store::text::Document;
use crate::store::{validate, StoreError};

/// One write of a tracking batch, in the order the caller gave them.
pub enum Op<'a> {
    Activity(&'a Activity),
    Tracking(&'a TrackingRecord),
}

/// A tracking record's key: owner and Message-ID.
type Key = (Uuid, String);

/// What the batch read up front, kept up to date as its writes are applied.
#[derive(Default)]
struct View {
    /// Every id the batch links to or writes that exists: (kind code, is a record).
    ids: HashMap<Uuid, (i16, bool)>,
    /// The activities the batch writes or points tracking records to, as they stand.
    activities: HashMap<Uuid, Activity>,
    /// (Message-ID, digest) → the email holding it.
    messages: HashMap<(String, String), Uuid>,
    tracking: HashMap<Key, TrackingRecord>,
    /// Owners of the batch's tracking records.
    owners: HashMap<Uuid, Record>,
    /// (owner, address key) already in an address book.
    book: HashSet<(Uuid, String)>,
}

impl View {
    /// Does `r` exist as that kind (`rows::exists`)?
    fn exists(&self, r: RecordRef) -> bool {
        self.ids.get(&r.id) == Some(&(code(r.kind), !r.kind.is_activity()))
    }

    /// `rows::check_links` on the view.
    fn check_links(&self, what: &str, links: &[RecordRef]) -> R<()> {
        for l in links {
            if self.ids.get(&l.id).map(|k| k.0) != Some(code(l.kind)) {
                return abort(StoreError::MissingLink {
                    what: what.to_string(),
                    kind: l.kind,
                    id: l.id,
                });
            }
        }
        Ok(())
    }
}

/// Apply `ops` in order with the per-row functions' rules; the activities as
/// stored, one per activity write.
pub fn write<C: GenericClient>(db: &mut Db<'_, C>, ops: &[Op<'_>]) -> R<Vec<Activity>> {
    let mut view = read_view(db, ops)?;
    let stored_activities: HashSet<Uuid> = view.activities.keys().copied().collect();
    let stored_tracking: HashSet<Key> = view.tracking.keys().cloned().collect();
    let mut out = Vec::new();
    // Ids and keys changed, in the order of their first change.
    let mut changed_activities: Vec<Uuid> = Vec::new();
    let mut changed_tracking: Vec<Key> = Vec::new();
    let mut entries: Vec<AddressBookEntry> = Vec::new();
    for op in ops {
        match op {
            Op::Activity(a) => {
                let (a, changed) = apply_activity(&mut view, a)?;
                if changed && !changed_activities.contains(&a.id.uuid()) {
                    changed_activities.push(a.id.uuid());
                }
                out.push(a);
            }
            Op::Tracking(t) => {
                if apply_tracking(&mut view, t, &mut entries)? {
                    let key = (t.owner.uuid(), t.message_id.as_str().to_owned());
                    if !changed_tracking.contains(&key) {
                        changed_tracking.push(key);
                    }
                }
            }
        }
    }
    let replaced: Vec<Uuid> = changed_activities
        .iter()
        .filter(|id| stored_activities.contains(id))
        .copied()
        .collect();
    let replaced_tracking: Vec<&Key> = changed_tracking
        .iter()
        .filter(|k| stored_tracking.contains(k))
        .collect();
    let finals: Vec<&Activity> = changed_activities
        .iter()
        .filter_map(|id| view.activities.get(id))
        .collect();
    let tracks: Vec<&TrackingRecord> = changed_tracking
        .iter()
        .filter_map(|k| view.tracking.get(k))
        .collect();
    unindex(db, &replaced, &replaced_tracking)?;
    insert_activities(db, &finals)?;
    insert_refs(db, &finals, &tracks)?;
    insert_tracking(db, &tracks)?;
    insert_new_entries(db, &entries)?;
    Ok(out)
}

/// Everything the checks need, in six queries at most.
fn read_view<C: GenericClient>(db: &mut Db<'_, C>, ops: &[Op<'_>]) -> R<View> {
    let mut ids: Vec<Uuid> = Vec::new();
    let mut activity_ids: Vec<Uuid> = Vec::new();
    let mut owners: Vec<Uuid> = Vec::new();
    let mut message_ids: Vec<&str> = Vec::new();
    let (mut key_owners, mut key_msgs): (Vec<Uuid>, Vec<&str>) = (Vec::new(), Vec::new());
    for op in ops {
        match op {
            Op::Activity(a) => {
                activity_ids.push(a.id.uuid());
                ids.extend(a.regarding.map(|r| r.id));
                ids.extend(activity_links(a).iter().map(|l| l.id));
                message_ids.extend(a.message_id().map(|m| m.as_str()));
            }
            Op::Tracking(t) => {
                owners.push(t.owner.uuid());
                ids.extend(tracking_targets(t));
                activity_ids.extend(t.activity.map(|a| a.uuid()));
                key_owners.push(t.owner.uuid());
                key_msgs.push(t.message_id.as_str());
            }
        }
    }
    ids.extend(&activity_ids);
    for v in [&mut ids, &mut activity_ids, &mut owners] {
        v.sort();
        v.dedup();
    }
    message_ids.sort();
    message_ids.dedup();

    let mut view = View::default();
    for row in db.query(
        "SELECT id, kind, true FROM records WHERE id = ANY($1)
         UNION ALL SELECT id, kind, false FROM activities WHERE id = ANY($1)",
        &[&ids],
    )? {
        view.ids.insert(row.get(0), (row.get(1), row.get(2)));
    }
    if !activity_ids.is_empty() {
        for row in db.query(
            "SELECT doc FROM activities WHERE id = ANY($1)",
            &[&activity_ids],
        )? {
            let a: Activity = decode("activity", &row, 0)?;
            view.activities.insert(a.id.uuid(), a);
        }
    }
    if !owners.is_empty() {
        for row in db.query("SELECT id, doc FROM records WHERE id = ANY($1)", &[&owners])? {
            view.owners
                .insert(row.get(0), decode::<Record>("record", &row, 1)?);
        }
    }
    if !message_ids.is_empty() {
        for row in db.query(
            "SELECT message_id, digest, id FROM activities
             WHERE message_id = ANY($1) AND digest IS NOT NULL",
            &[&message_ids],
        )? {
            view.messages
                .insert((row.get(0), row.get(1)), row.get::<_, Uuid>(2));
        }
    }
    if !key_owners.is_empty() {
        for row in db.query(
            "SELECT t.doc FROM tracking t
             JOIN unnest($1::uuid[], $2::text[]) AS k(o, m) ON t.owner = k.o AND t.message_id = k.m",
            &[&key_owners, &key_msgs],
        )? {
            let t: TrackingRecord = decode("tracking", &row, 0)?;
            view.tracking
                .insert((t.owner.uuid(), t.message_id.as_str().to_owned()), t);
        }
    }
    // Addresses a tracked email may add to its owner's book: every party of
    // every version of the activities the batch's tracking records point to.
    let mut written: HashMap<Uuid, Vec<&Activity>> = HashMap::new();
    for op in ops {
        if let Op::Activity(a) = op {
            written.entry(a.id.uuid()).or_default().push(a);
        }
    }
    let (mut b_owners, mut b_keys): (Vec<Uuid>, Vec<&str>) = (Vec::new(), Vec::new());
    for op in ops {
        let Op::Tracking(t) = op else { continue };
        let Some(aid) = t.activity else { continue };
        let versions = written
            .get(&aid.uuid())
            .into_iter()
            .flatten()
            .copied()
            .chain(view.activities.get(&aid.uuid()));
        for a in versions {
            for addr in a.parties.iter().filter_map(|p| p.address.as_ref()) {
                b_owners.push(t.owner.uuid());
                b_keys.push(addr.key());
            }
        }
    }
    if !b_owners.is_empty() {
        for row in db.query(
            "SELECT b.owner, b.addr_key FROM book_emails b
             JOIN unnest($1::uuid[], $2::text[]) AS k(o, a) ON b.owner = k.o AND b.addr_key = k.a",
            &[&b_owners, &b_keys],
        )? {
            view.book.insert((row.get(0), row.get(1)));
        }
    }
    Ok(view)
}

/// `rows::write_activity` (stamps set now, links checked) on the view: the
/// activity as stored, and whether it changed.
fn apply_activity(view: &mut View, a: &Activity) -> R<(Activity, bool)> {
    let mut a = a.clone();
    let id = a.id.uuid();
    let old = view.activities.get(&id);
    if old.is_none() && view.ids.get(&id).is_some_and(|k| k.1) {
        return abort(StoreError::invalid(
            a.kind().as_str(),
            format!("id {id} already belongs to a record"),
        ));
    }
    let now = Utc::now();
    a.stamps.created = old.map(|o| o.stamps.created).unwrap_or(now);
    a.stamps.modified = now;
    if old == Some(&a) {
        return Ok((a, false));
    }
    let message = match (a.message_id(), digest_of(&a)) {
        (Some(m), Some(d)) => Some((m.as_str().to_owned(), d.to_owned())),
        _ => None,
    };
    if let Some(key) = &message {
        if let Some(other) = view.messages.get(key).filter(|o| **o != id) {
            return abort(StoreError::Duplicate(format!(
                "Message-ID {} with this content already belongs to activity {other}",
                key.0
            )));
        }
    }
    let what = format!("{} {}", a.kind(), a.id);
    if let Some(r) = a.regarding {
        if !view.exists(r) {
            return abort(StoreError::MissingLink {
                what: format!("the regarding of {what}"),
                kind: r.kind,
                id: r.id,
            });
        }
    }
    view.check_links(&what, &activity_links(&a))?;
    if let Some(old_key) = old.and_then(|o| match (o.message_id(), digest_of(o)) {
        (Some(m), Some(d)) => Some((m.as_str().to_owned(), d.to_owned())),
        _ => None,
    }) {
        if view.messages.get(&old_key) == Some(&id) {
            view.messages.remove(&old_key);
        }
    }
    if let Some(key) = message {
        view.messages.insert(key, id);
    }
    view.ids.insert(id, (code(a.kind()), false));
    view.activities.insert(id, a.clone());
    Ok((a, true))
}

/// `rows::write_tracking` (checked) on the view, with `book::note_seen`'s new
/// address-book entries added to `entries`; whether it changed.
fn apply_tracking(
    view: &mut View,
    t: &TrackingRecord,
    entries: &mut Vec<AddressBookEntry>,
) -> R<bool> {
    let key = (t.owner.uuid(), t.message_id.as_str().to_owned());
    let old = view.tracking.get(&key);
    if old == Some(t) {
        return Ok(false);
    }
    let was_tracked = old.is_some_and(|o| o.status == t.status && o.activity == t.activity);
    check(view, t)?;
    view.tracking.insert(key, t.clone());
    if was_tracked || t.status != TrackStatus::Tracked {
        return Ok(true);
    }
    let (Some(aid), Some(Record::User(owner))) = (t.activity, view.owners.get(&t.owner.uuid()))
    else {
        return Ok(true);
    };
    let Some(a) = view.activities.get(&aid.uuid()) else {
        return Ok(true);
    };
    let now = Utc::now();
    for p in &a.parties {
        let Some(addr) = &p.address else { continue };
        if owner.logins.iter().any(|o| o.same_as(addr)) {
            continue;
        }
        let in_book = (t.owner.uuid(), addr.key().to_owned());
        if view.book.contains(&in_book) {
            continue;
        }
        if let Some(e) = AddressBookEntry::seen_in_mail(t.owner, p, addr, now) {
            view.book.insert(in_book);
            entries.push(e);
        }
    }
    Ok(true)
}

/// `rows::check_tracking` on the view.
fn check(view: &View, t: &TrackingRecord) -> R<()> {
    validate::tracking_owner(t, view.owners.get(&t.owner.uuid()))?;
    view.check_links(&validate::tracking_what(t), &validate::tracking_links(t))?;
    let activity = t.activity.and_then(|a| view.activities.get(&a.uuid()));
    Ok(validate::tracking_activity(t, activity)?)
}

/// Remove the index rows of stored activities and tracking records the batch
/// replaces (they are made again from the new versions).
fn unindex<C: GenericClient>(db: &mut Db<'_, C>, activities: &[Uuid], tracking: &[&Key]) -> R<()> {
    if !activities.is_empty() {
        db.exec("DELETE FROM postings WHERE id = ANY($1)", &[&activities])?;
        db.exec(
            "DELETE FROM timeline WHERE activity = ANY($1)",
            &[&activities],
        )?;
        db.exec(
            "DELETE FROM refs WHERE source = ANY($1) AND owner_msg = ''",
            &[&activities],
        )?;
    }
    if !tracking.is_empty() {
        let owners: Vec<Uuid> = tracking.iter().map(|k| k.0).collect();
        let msgs: Vec<&str> = tracking.iter().map(|k| k.1.as_str()).collect();
        db.exec(
            "DELETE FROM refs r USING unnest($1::uuid[], $2::text[]) AS k(o, m)
             WHERE r.source = k.o AND r.owner_msg = k.m",
            &[&owners, &msgs],
        )?;
    }
    Ok(())
}

/// The activities' rows, postings and timeline entries.
fn insert_activities<C: GenericClient>(db: &mut Db<'_, C>, acts: &[&Activity]) -> R<()> {
    if acts.is_empty() {
        return Ok(());
    }
    let (mut p_tokens, mut p_ids, mut p_kinds, mut p_weights) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut t_records, mut t_at, mut t_acts) = (Vec::new(), Vec::new(), Vec::new());
    let n = acts.len();
    let mut ids = Vec::with_capacity(n);
    let mut kinds = Vec::with_capacity(n);
    let mut msgids: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut digests: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut created = Vec::with_capacity(n);
    let mut threads: Vec<Option<String>> = Vec::with_capacity(n);
    let mut tokens: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut uids: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut facts = Vec::with_capacity(n);
    let mut docs = Vec::with_capacity(n);
    for a in acts {
        let id = a.id.uuid();
        let kind = code(a.kind());
        for (token, weight) in Document::of_activity(a).0 {
            p_tokens.push(token);
            p_ids.push(id);
            p_kinds.push(kind);
            p_weights.push(i16::from(weight));
        }
        for r in a.timeline_records() {
            t_records.push(r.id);
            t_at.push(ms(a.when()));
            t_acts.push(id);
        }
        let (thread, token, uid) = match &a.details {
            ActivityDetails::Email(e) => (
                e.thread_index.as_deref().map(thread_conversation),
                subject_token(&a.subject),
                None,
            ),
            ActivityDetails::Appointment(ap) => (None, None, ap.uid.as_deref()),
            _ => (None, None, None),
        };
        ids.push(id);
        kinds.push(kind);
        msgids.push(a.message_id().map(|m| m.as_str()));
        digests.push(digest_of(a));
        created.push(ms(a.stamps.created));
        threads.push(thread);
        tokens.push(token);
        uids.push(uid);
        facts.push(json(&HeaderFacts::from(*a)));
        docs.push(json(*a));
    }
    db.exec(
        "INSERT INTO activities (id, kind, message_id, digest, created_ms, thread, token, appt_uid, facts, doc)
         SELECT * FROM unnest($1::uuid[], $2::smallint[], $3::text[], $4::text[], $5::bigint[],
                              $6::text[], $7::text[], $8::text[], $9::jsonb[], $10::jsonb[])
         ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, message_id = EXCLUDED.message_id,
           digest = EXCLUDED.digest, created_ms = EXCLUDED.created_ms, thread = EXCLUDED.thread,
           token = EXCLUDED.token, appt_uid = EXCLUDED.appt_uid, facts = EXCLUDED.facts,
           doc = EXCLUDED.doc",
        &[
            &ids, &kinds, &msgids, &digests, &created, &threads, &tokens, &uids, &facts, &docs,
        ],
    )?;
    if !p_ids.is_empty() {
        db.exec(
            "INSERT INTO postings (token, id, kind, weight)
             SELECT * FROM unnest($1::text[], $2::uuid[], $3::smallint[], $4::smallint[])",
            &[&p_tokens, &p_ids, &p_kinds, &p_weights],
        )?;
    }
    if !t_acts.is_empty() {
        db.exec(
            "INSERT INTO timeline (record, at_ms, activity)
             SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::uuid[]) ON CONFLICT DO NOTHING",
            &[&t_records, &t_at, &t_acts],
        )?;
    }
    Ok(())
}

/// What the activities and tracking records point to (`refs`), in one statement.
fn insert_refs<C: GenericClient>(
    db: &mut Db<'_, C>,
    acts: &[&Activity],
    tracks: &[&TrackingRecord],
) -> R<()> {
    let (mut targets, mut kinds, mut sources, mut msgs) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::<&str>::new());
    for a in acts {
        for l in activity_links(a) {
            targets.push(l.id);
            kinds.push(code(a.kind()));
            sources.push(a.id.uuid());
            msgs.push("");
        }
    }
    for t in tracks {
        for target in tracking_targets(t) {
            targets.push(target);
            kinds.push(TRACKING_SOURCE);
            sources.push(t.owner.uuid());
            msgs.push(t.message_id.as_str());
        }
    }
    if !targets.is_empty() {
        db.exec(
            "INSERT INTO refs (target, source_kind, source, owner_msg)
             SELECT * FROM unnest($1::uuid[], $2::smallint[], $3::uuid[], $4::text[])",
            &[&targets, &kinds, &sources, &msgs],
        )?;
    }
    Ok(())
}

/// The tracking records' rows, each with a new `written` number in batch order.
fn insert_tracking<C: GenericClient>(db: &mut Db<'_, C>, tracks: &[&TrackingRecord]) -> R<()> {
    if tracks.is_empty() {
        return Ok(());
    }
    let owners: Vec<Uuid> = tracks.iter().map(|t| t.owner.uuid()).collect();
    let msgs: Vec<&str> = tracks.iter().map(|t| t.message_id.as_str()).collect();
    let pending: Vec<bool> = tracks
        .iter()
        .map(|t| t.status == TrackStatus::Pending)
        .collect();
    let requested: Vec<i64> = tracks.iter().map(|t| ms(t.requested_at)).collect();
    let folders: Vec<Option<&str>> = tracks
        .iter()
        .map(|t| t.location.as_ref().map(|l| l.folder.as_str()))
        .collect();
    let validity: Vec<Option<i64>> = tracks
        .iter()
        .map(|t| t.location.as_ref().map(|l| i64::from(l.uid_validity)))
        .collect();
    let uids: Vec<Option<i64>> = tracks
        .iter()
        .map(|t| t.location.as_ref().map(|l| i64::from(l.uid)))
        .collect();
    let docs: Vec<_> = tracks.iter().map(|t| json(*t)).collect();
    db.exec(
        "INSERT INTO tracking (owner, message_id, pending, requested_ms, loc_folder, loc_validity, loc_uid, written, doc)
         SELECT o, m, p, r, f, v, u, nextval('tracking_written'), d
         FROM unnest($1::uuid[], $2::text[], $3::bool[], $4::bigint[], $5::text[], $6::bigint[],
                     $7::bigint[], $8::jsonb[]) WITH ORDINALITY AS k(o, m, p, r, f, v, u, d, i)
         ORDER BY i
         ON CONFLICT (owner, message_id) DO UPDATE SET pending = EXCLUDED.pending,
           requested_ms = EXCLUDED.requested_ms, loc_folder = EXCLUDED.loc_folder,
           loc_validity = EXCLUDED.loc_validity, loc_uid = EXCLUDED.loc_uid,
           written = EXCLUDED.written, doc = EXCLUDED.doc",
        &[
            &owners, &msgs, &pending, &requested, &folders, &validity, &uids, &docs,
        ],
    )?;
    Ok(())
}
