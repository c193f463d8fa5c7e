//! `CrmStore` for [`PgStore`]: validation first (the same functions sled uses),
//! then one transaction per change through `rows` and `book`, and reads that
//! answer from indexes (e-mail keys, postings, timeline, Message-ID). The bulk
//! methods are in `bulk`.

use chrono::Utc;
use uuid::Uuid;

use super::book;
use super::db::{decode, Db};
use super::rows::{self, code, kind_of, R};
use super::track::{self, Op};
use super::PgStore;
use crate::store::activity::{
    thread_conversation, Activity, ActivityId, HeaderFacts, MessageLocation, TrackingRecord,
};
use crate::store::address::{EmailAddress, MessageId};
use crate::store::address_book::{AddressBookEntry, BookCounts, BookView, EntryId};
use crate::store::blobs::{BlobError, BlobRef};
use crate::store::export::ExportBundle;
use crate::store::model::{Kind, Privilege, Record, RecordRef, SystemUser, UserId};
use crate::store::paging::{Page, PageRequest};
use crate::store::settings::OrgSettings;
use crate::store::user_lists::{ListEntry, Snoozed, UserList};
use crate::store::StoreError;
use crate::store::{validate, CrmStore, ImportSummary, Result, SearchHit, SearchQuery};

fn user_of(r: Option<Record>, id: UserId) -> R<SystemUser> {
    match r {
        Some(Record::User(u)) => Ok(u),
        _ => rows::abort(StoreError::NotFound {
            kind: Some(Kind::User),
            id: id.uuid(),
        }),
    }
}

/// Grant or revoke, add or remove a delegate: read, change, write the user.
fn change_user(
    db: &mut Db<'_, postgres::Transaction<'_>>,
    id: UserId,
    f: &dyn Fn(&mut SystemUser),
) -> R<SystemUser> {
    let mut u = user_of(rows::record(db, id.uuid())?, id)?;
    f(&mut u);
    match rows::write_record(db, &Record::User(u), false, true)?.0 {
        Record::User(u) => Ok(u),
        _ => unreachable!("a user stays a user"),
    }
}

impl PgStore {
    fn activities_where(&self, sql: &'static str, key: &str, limit: i64) -> Result<Vec<Activity>> {
        self.read(|db| db.docs("activity", sql, &[&key, &limit]))
    }

    /// Activities, then tracking records, then a checkpoint, in one transaction.
    fn write_tracked(
        &self,
        activities: Vec<Activity>,
        tracking: Vec<TrackingRecord>,
        checkpoint: Option<&crate::store::MailboxCheckpoint>,
    ) -> Result<(Vec<Activity>, Vec<TrackingRecord>)> {
        validate::tracked(&activities, &tracking)?;
        let ops: Vec<Op<'_>> = activities
            .iter()
            .map(Op::Activity)
            .chain(tracking.iter().map(Op::Tracking))
            .collect();
        let stored = self.write(|db| {
            let stored = track::write(db, &ops)?;
            if let Some(c) = checkpoint {
                super::checkpoints::upsert(db, c.owner, &c.mailbox, &c.folder, &c.at)?;
            }
            Ok(stored)
        })?;
        Ok((stored, tracking))
    }
}

impl CrmStore for PgStore {
    fn checkpoint(
        &self,
        owner: UserId,
        mailbox: &str,
        folder: &str,
    ) -> Result<Option<crate::store::FolderCheckpoint>> {
        self.read_checkpoint(owner, mailbox, folder)
    }

    fn put_checkpoint(
        &self,
        owner: UserId,
        mailbox: &str,
        folder: &str,
        checkpoint: &crate::store::FolderCheckpoint,
    ) -> Result<()> {
        self.write_checkpoint(owner, mailbox, folder, checkpoint)
    }

    fn checkpoints(
        &self,
        owner: UserId,
        mailbox: &str,
    ) -> Result<Vec<(String, crate::store::FolderCheckpoint)>> {
        self.read_checkpoints(owner, mailbox)
    }

    fn record(&self, id: Uuid) -> Result<Option<Record>> {
        self.read(|db| rows::record(db, id))
    }

    fn put_record(&self, mut record: Record) -> Result<Record> {
        validate::record(&mut record)?;
        self.write(|db| rows::write_record(db, &record, false, true).map(|(r, _)| r))
    }

    fn delete_record(&self, id: Uuid) -> Result<()> {
        self.write(|db| rows::delete_record(db, id))
    }

    fn records(&self, kind: Option<Kind>) -> Result<Vec<Record>> {
        self.read(|db| match kind {
            Some(k) => db.docs(
                "record",
                "SELECT doc FROM records WHERE kind = $1 ORDER BY id",
                &[&code(k)],
            ),
            None => db.docs("record", "SELECT doc FROM records ORDER BY id", &[]),
        })
    }

    fn is_empty(&self) -> Result<bool> {
        self.read(|db| {
            Ok(db
                .opt(
                    "SELECT 1 WHERE EXISTS (SELECT 1 FROM records) OR EXISTS (SELECT 1 FROM activities)",
                    &[],
                )?
                .is_none())
        })
    }

    fn count_records(&self, kind: Kind) -> Result<usize> {
        self.read(|db| {
            let n: i64 = db
                .one(
                    "SELECT count(*) FROM records WHERE kind = $1",
                    &[&code(kind)],
                )?
                .get(0);
            Ok(n as usize)
        })
    }

    fn recent_records(&self, kind: Kind, n: usize) -> Result<Vec<Record>> {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        self.read(|db| {
            db.docs(
                "record",
                "SELECT doc FROM records WHERE kind = $1 ORDER BY id DESC LIMIT $2",
                &[&code(kind), &n],
            )
        })
    }

    fn linked_records(
        &self,
        target: Uuid,
        kind: Option<Kind>,
        limit: usize,
    ) -> Result<Vec<Record>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // Record kinds only (activities and tracking records link too).
        let (lo, hi) = match kind {
            Some(k) => (code(k), code(k)),
            None => (0, code(Kind::KnowledgeArticle)),
        };
        self.read(|db| {
            db.docs(
                "record",
                "SELECT r.doc FROM (SELECT DISTINCT source_kind, source FROM refs
                   WHERE target = $1 AND source_kind BETWEEN $2 AND $3 AND owner_msg = '') l
                 JOIN records r ON r.id = l.source ORDER BY l.source_kind, l.source LIMIT $4",
                &[&target, &lo, &hi, &limit],
            )
        })
    }

    fn records_page(&self, kind: Kind, page: &PageRequest) -> Result<Page<Record>> {
        let k = code(kind);
        self.read(|db| {
            let mut fetch = |from: Option<&[u8]>, back: bool, n: i64| -> R<Vec<(Vec<u8>, Record)>> {
                let found = match (from, back) {
                    (None, _) => db.query(
                        "SELECT order_key, doc FROM records WHERE kind = $1 ORDER BY order_key LIMIT $2",
                        &[&k, &n],
                    )?,
                    (Some(c), false) => db.query(
                        "SELECT order_key, doc FROM records WHERE kind = $1 AND order_key > $3 ORDER BY order_key LIMIT $2",
                        &[&k, &n, &c],
                    )?,
                    (Some(c), true) => db.query(
                        "SELECT order_key, doc FROM records WHERE kind = $1 AND order_key < $3 ORDER BY order_key DESC LIMIT $2",
                        &[&k, &n, &c],
                    )?,
                };
                found
                    .iter()
                    .map(|r| Ok((r.get(0), decode("record", r, 1)?)))
                    .collect()
            };
            book::page_of(page, &mut fetch, |_| true)
        })
    }

    fn address_book_entry(&self, owner: UserId, id: EntryId) -> Result<Option<AddressBookEntry>> {
        self.read(|db| book::entry(db, owner, id))
    }

    fn address_book_by_email(
        &self,
        owner: UserId,
        address: &EmailAddress,
    ) -> Result<Option<AddressBookEntry>> {
        self.read(|db| book::by_email(db, owner, address))
    }

    fn address_book_page(
        &self,
        owner: UserId,
        view: BookView,
        text: &str,
        page: &PageRequest,
    ) -> Result<Page<AddressBookEntry>> {
        self.read(|db| book::page(db, owner, view, text, page))
    }

    fn address_book_counts(&self, owner: UserId) -> Result<BookCounts> {
        self.read(|db| book::counts(db, owner))
    }

    fn address_book_write(
        &self,
        owner: UserId,
        mut records: Vec<Record>,
        mut entries: Vec<AddressBookEntry>,
    ) -> Result<Vec<AddressBookEntry>> {
        // Whoever changes an address book is its owner, so a record it creates
        // needs the owner's `create_records`.
        for r in &records {
            if self.record(r.id())?.is_none() {
                crate::store::rights::require(self, owner, Privilege::CreateRecords)?;
                break;
            }
        }
        for r in &mut records {
            validate::record(r)?;
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
        self.write(|db| {
            user_of(rows::record(db, owner.uuid())?, owner)?;
            for r in &records {
                rows::write_record(db, r, false, true)?;
            }
            entries
                .iter()
                .map(|e| book::write_checked(db, owner, e, now))
                .collect()
        })
    }

    fn activity(&self, id: ActivityId) -> Result<Option<Activity>> {
        self.read(|db| rows::activity(db, id.uuid()))
    }

    fn header_facts(&self, id: ActivityId) -> Result<Option<HeaderFacts>> {
        self.read(|db| {
            db.doc(
                "header facts",
                "SELECT facts FROM activities WHERE id = $1",
                &[&id.uuid()],
            )
        })
    }

    fn put_activity(&self, activity: Activity) -> Result<Activity> {
        validate::activity(&activity)?;
        self.write(|db| rows::write_activity(db, &activity, false, true).map(|(a, _)| a))
    }

    fn delete_activity(&self, id: ActivityId) -> Result<()> {
        self.write(|db| rows::delete_activity(db, id.uuid()))
    }

    fn activities_by_message_id(&self, message_id: &MessageId) -> Result<Vec<Activity>> {
        let mut out: Vec<Activity> = self.read(|db| {
            db.docs(
                "activity",
                "SELECT doc FROM activities WHERE message_id = $1",
                &[&message_id.as_str()],
            )
        })?;
        out.sort_by_key(|a| (a.stamps.created, a.id.uuid()));
        Ok(out)
    }

    fn email_by_content(&self, message_id: &MessageId, digest: &str) -> Result<Option<Activity>> {
        self.read(|db| {
            db.doc(
                "activity",
                "SELECT doc FROM activities WHERE message_id = $1 AND digest = $2",
                &[&message_id.as_str(), &digest],
            )
        })
    }

    fn activities_of(&self, record: Uuid, limit: usize) -> Result<Vec<Activity>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|db| {
            db.docs(
                "activity",
                "SELECT a.doc FROM timeline t JOIN activities a ON a.id = t.activity
                 WHERE t.record = $1 ORDER BY t.at_ms DESC, t.activity LIMIT $2",
                &[&record, &limit],
            )
        })
    }

    fn tracking(&self, owner: UserId, message_id: &MessageId) -> Result<Option<TrackingRecord>> {
        self.read(|db| rows::tracking(db, owner.uuid(), message_id.as_str()))
    }

    fn put_tracking(&self, record: TrackingRecord) -> Result<TrackingRecord> {
        validate::tracking(&record)?;
        self.write(|db| rows::write_tracking(db, &record, true))?;
        Ok(record)
    }

    fn track(
        &self,
        activity: Option<Activity>,
        tracking: TrackingRecord,
    ) -> Result<Option<Activity>> {
        if let Some(a) = &activity {
            validate::activity(a)?;
        }
        validate::tracking(&tracking)?;
        let mut ops: Vec<Op<'_>> = activity.iter().map(Op::Activity).collect();
        ops.push(Op::Tracking(&tracking));
        let stored = self.write(|db| track::write(db, &ops))?;
        Ok(stored.into_iter().next())
    }

    fn track_batch(&self, items: Vec<(Option<Activity>, TrackingRecord)>) -> Result<()> {
        for (a, t) in &items {
            if let Some(a) = a {
                validate::activity(a)?;
            }
            validate::tracking(t)?;
        }
        let ops: Vec<Op<'_>> = items
            .iter()
            .flat_map(|(a, t)| a.iter().map(Op::Activity).chain([Op::Tracking(t)]))
            .collect();
        self.write(|db| track::write(db, &ops))?;
        Ok(())
    }

    fn put_tracked(
        &self,
        activities: Vec<Activity>,
        tracking: Vec<TrackingRecord>,
    ) -> Result<(Vec<Activity>, Vec<TrackingRecord>)> {
        self.write_tracked(activities, tracking, None)
    }

    fn put_tracked_with_checkpoint(
        &self,
        activities: Vec<Activity>,
        tracking: Vec<TrackingRecord>,
        checkpoint: &crate::store::MailboxCheckpoint,
    ) -> Result<(Vec<Activity>, Vec<TrackingRecord>)> {
        self.write_tracked(activities, tracking, Some(checkpoint))
    }

    fn delete_tracking(&self, owner: UserId, message_id: &MessageId) -> Result<bool> {
        self.write(|db| rows::delete_tracking(db, owner.uuid(), message_id.as_str()))
    }

    fn pending_tracking(&self, owner: Option<UserId>, limit: usize) -> Result<Vec<TrackingRecord>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let owner = owner.map(|o| o.uuid());
        self.read(|db| {
            db.docs(
                "tracking",
                "SELECT doc FROM tracking WHERE pending AND ($1::uuid IS NULL OR owner = $1)
                 ORDER BY requested_ms, owner, message_id LIMIT $2",
                &[&owner, &limit],
            )
        })
    }

    fn tracking_of_message(&self, message_id: &MessageId) -> Result<Vec<TrackingRecord>> {
        self.read(|db| {
            db.docs(
                "tracking",
                "SELECT doc FROM tracking WHERE message_id = $1 ORDER BY owner",
                &[&message_id.as_str()],
            )
        })
    }

    fn tracking_at(
        &self,
        owner: UserId,
        location: &MessageLocation,
    ) -> Result<Option<TrackingRecord>> {
        self.read(|db| {
            db.doc(
                "tracking",
                "SELECT doc FROM tracking WHERE owner = $1 AND loc_folder = $2 AND loc_validity = $3
                   AND loc_uid = $4 ORDER BY written DESC LIMIT 1",
                &[
                    &owner.uuid(),
                    &location.folder,
                    &i64::from(location.uid_validity),
                    &i64::from(location.uid),
                ],
            )
        })
    }

    fn emails_by_thread_index(&self, thread_index: &str, limit: usize) -> Result<Vec<Activity>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.activities_where(
            "SELECT doc FROM activities WHERE thread = $1 ORDER BY id LIMIT $2",
            &thread_conversation(thread_index),
            limit,
        )
    }

    fn email_by_tracking_token(&self, token: &str) -> Result<Option<Activity>> {
        Ok(self
            .activities_where(
                "SELECT doc FROM activities WHERE token = $1 ORDER BY id LIMIT $2",
                token,
                1,
            )?
            .pop())
    }

    fn appointment_by_uid(&self, uid: &str) -> Result<Option<Activity>> {
        Ok(self
            .activities_where(
                "SELECT doc FROM activities WHERE appt_uid = $1 ORDER BY id LIMIT $2",
                uid,
                1,
            )?
            .pop())
    }

    fn appointments_by_uid(&self, uid: &str) -> Result<Vec<Activity>> {
        self.activities_where(
            "SELECT doc FROM activities WHERE appt_uid = $1 ORDER BY id LIMIT $2",
            uid,
            i64::MAX,
        )
    }

    fn resolve_address(&self, address: &EmailAddress) -> Result<Vec<RecordRef>> {
        let mut out = self.read(|db| {
            db.query(
                "SELECT kind, id FROM emails WHERE addr_key = $1",
                &[&address.key()],
            )?
            .iter()
            .map(|r| {
                Ok(RecordRef {
                    kind: kind_of(r.get(0))?,
                    id: r.get(1),
                })
            })
            .collect::<R<Vec<_>>>()
        })?;
        let rank = |k: Kind| match k {
            Kind::User => 0,
            Kind::Contact => 1,
            Kind::Account => 2,
            Kind::Lead => 3,
            _ => 4,
        };
        out.sort_by_key(|r| (rank(r.kind), r.id));
        Ok(out)
    }

    fn user_by_login(&self, login: &EmailAddress) -> Result<Option<SystemUser>> {
        let r: Option<Record> = self.read(|db| {
            db.doc(
                "record",
                "SELECT r.doc FROM logins l JOIN records r ON r.id = l.user_id WHERE l.addr_key = $1",
                &[&login.key()],
            )
        })?;
        Ok(match r {
            Some(Record::User(u)) => Some(u),
            _ => None,
        })
    }

    fn search(&self, query: &SearchQuery) -> Result<Vec<SearchHit>> {
        super::search::search(self, query)
    }

    fn users(&self) -> Result<Vec<SystemUser>> {
        Ok(self
            .records(Some(Kind::User))?
            .into_iter()
            .filter_map(|r| match r {
                Record::User(u) => Some(u),
                _ => None,
            })
            .collect())
    }

    fn set_privilege(&self, user: UserId, privilege: Privilege, on: bool) -> Result<SystemUser> {
        self.write(|db| {
            change_user(db, user, &|u| {
                if on {
                    u.privileges.insert(privilege);
                } else {
                    u.privileges.remove(&privilege);
                }
            })
        })
    }

    fn set_delegate(&self, owner: UserId, delegate: UserId, on: bool) -> Result<SystemUser> {
        if owner == delegate {
            return Err(StoreError::invalid(
                "delegate",
                "a user cannot be their own delegate",
            ));
        }
        self.write(|db| {
            change_user(db, owner, &|u| {
                if on {
                    u.delegates.insert(delegate);
                } else {
                    u.delegates.remove(&delegate);
                }
            })
        })
    }

    fn user_list(&self, user: UserId, list: UserList) -> Result<Vec<ListEntry>> {
        self.read(|db| book::user_list(db, user, list))
    }

    fn set_favourite(&self, user: UserId, record: RecordRef, on: bool) -> Result<bool> {
        self.write(|db| book::set_favourite(db, user, record, on))
    }

    fn note_viewed(&self, user: UserId, record: RecordRef) -> Result<()> {
        self.write(|db| book::note_viewed(db, user, record))
    }

    fn snoozed(&self, user: UserId) -> Result<Vec<Snoozed>> {
        self.read(|db| book::snoozed(db, user))
    }

    fn snooze(&self, user: UserId, card: &str, until: chrono::DateTime<Utc>) -> Result<()> {
        let card = book::check_card(card)?;
        self.write(|db| book::snooze(db, user, card, until))
    }

    fn settings(&self) -> Result<OrgSettings> {
        Ok(self
            .read(|db| {
                db.doc(
                    "settings",
                    "SELECT value FROM crm_meta WHERE key = 'settings'",
                    &[],
                )
            })?
            .unwrap_or_default())
    }

    fn put_settings(&self, settings: OrgSettings) -> Result<()> {
        validate::settings(&settings)?;
        self.write(|db| rows::put_meta(db, "settings", &settings))
    }

    fn put_blob(&self, bytes: &[u8]) -> Result<BlobRef> {
        let r = BlobRef::of(bytes);
        let size = r.size as i64;
        self.write(|db| {
            db.exec(
                "INSERT INTO blobs (sha256, size, data) VALUES ($1, $2, $3) ON CONFLICT (sha256) DO NOTHING",
                &[&r.sha256, &size, &bytes],
            )
        })?;
        Ok(r)
    }

    fn blob(&self, blob: &BlobRef) -> Result<Vec<u8>> {
        let data: Option<Vec<u8>> = self.read(|db| {
            Ok(db
                .opt("SELECT data FROM blobs WHERE sha256 = $1", &[&blob.sha256])?
                .map(|r| r.get(0)))
        })?;
        let data = data.ok_or_else(|| BlobError::Missing(blob.sha256.clone()))?;
        if BlobRef::of(&data).sha256 != blob.sha256 {
            return Err(BlobError::Damaged(blob.sha256.clone()).into());
        }
        Ok(data)
    }

    fn export(&self) -> Result<ExportBundle> {
        self.export_all()
    }

    fn import_bundle(&self, bundle: &ExportBundle) -> Result<ImportSummary> {
        self.import_all(bundle)
    }

    fn put_records_bulk(
        &self,
        records: Vec<Record>,
        progress: &mut dyn FnMut(usize),
    ) -> Result<()> {
        self.put_records_chunked(records, progress)
    }
}
