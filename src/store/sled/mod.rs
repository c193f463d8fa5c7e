//! [`SledStore`]: the embedded implementation of [`CrmStore`]. Each logical change
//! is one multi-tree sled transaction over the row and its index entries, and the
//! database is flushed before the call returns.

mod book;
mod checkpoints;
mod compact;
mod export;
pub(crate) mod index;
mod kind_index;
pub mod migrate;
mod paging;
mod search_index;
mod user_lists;

use sled::transaction::Transactional;
use sled::Tree;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};
use uuid::Uuid;

use crate::store::activity::{
    thread_conversation, Activity, ActivityId, HeaderFacts, MessageLocation, TrackingRecord,
};
use crate::store::address::{EmailAddress, MessageId};
use crate::store::address_book::{AddressBookEntry, BookCounts, BookView, EntryId};
use crate::store::blobs::{BlobRef, BlobStore};
use crate::store::error::StoreError;
use crate::store::export::ExportBundle;
use crate::store::model::{Kind, Privilege, Record, RecordRef, SystemUser, UserId};
use crate::store::paging::{Page, PageRequest};
use crate::store::settings::OrgSettings;
use crate::store::text;
use crate::store::user_lists::{ListEntry, Snoozed, UserList};
use crate::store::validate;
use crate::store::{CrmStore, ImportSummary, Result, SearchHit, SearchQuery};
use index::{self as ix, decode, Tx};
use search_index::MemIndex;

/// How long `open` waits for a lock that another process is releasing.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
/// sled's page cache. Its default (1 GB) let an idle `serve` over 100,000 contacts
/// sit at 400 MB; lookups touch a few pages each, and the search index is in memory.
const CACHE_BYTES: u64 = 32 * 1024 * 1024;
/// The search index snapshot, beside `db/` (see `search_index`).
const SEARCH_SNAPSHOT: &str = "search.idx";
/// Key in `meta`: the stamp of the search snapshot that is current. Removed before
/// the first write after the snapshot was read, and written again when the store
/// closes after saving a new one: a crash in between leaves no stamp, and the next
/// open rebuilds the index from the rows.
const SEARCH_STAMP: &[u8] = b"search_snapshot";

/// Records per transaction in a bulk write.
const BULK_CHUNK: usize = 2_000;

pub struct SledStore {
    db: sled::Db,
    trees: Vec<Tree>,
    blobs: BlobStore,
    dir: PathBuf,
    /// Held for each write from its transaction until its posting changes reach
    /// `search`, so the in-memory index follows commits in commit order.
    write_lock: Mutex<()>,
    /// Loaded (from the snapshot, or rebuilt) on first search or write.
    search: RwLock<Option<MemIndex>>,
    /// Does `meta` still hold the stamp of the snapshot the index was read from?
    /// Cleared by the first write; a closing store saves a new snapshot unless set.
    snapshot_current: AtomicBool,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore").field("dir", &self.dir).finish()
    }
}

impl SledStore {
    /// Open (creating if needed) the store in `dir`, migrating an older layout.
    /// A store held open by another process gives [`StoreError::Locked`].
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        // 0700: the store holds everyone's tracked mail (sled's own files follow the
        // process umask, which `cli::main` sets to 077).
        crate::private_files::create_dir_all(&dir)
            .map_err(|e| StoreError::Corrupt(format!("cannot create {}: {e}", dir.display())))?;
        let db_path = dir.join("db");
        // A process that just closed the store may hold sled's lock for a moment
        // (its flusher thread winds down), so a busy lock is retried briefly.
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        let db = loop {
            match sled::Config::new()
                .path(&db_path)
                .cache_capacity(CACHE_BYTES)
                .open()
            {
                Ok(db) => break db,
                Err(sled::Error::Io(io)) if io.to_string().contains("could not acquire lock") => {
                    if std::time::Instant::now() >= deadline {
                        return Err(StoreError::Locked {
                            path: dir.display().to_string(),
                            detail: "its database lock is held".into(),
                        });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(25));
                }
                Err(other) => return Err(other.into()),
            }
        };
        let trees = ix::TREES
            .iter()
            .map(|n| db.open_tree(n))
            .collect::<sled::Result<Vec<_>>>()?;
        let blobs = BlobStore::open(dir.join("blobs"))?;
        let store = SledStore {
            db,
            trees,
            blobs,
            dir,
            write_lock: Mutex::new(()),
            search: RwLock::new(None),
            snapshot_current: AtomicBool::new(false),
        };
        migrate::bring_up_to_date(&store)?;
        kind_index::ensure_indexes(&store)?;
        paging::ensure_indexes(&store)?;
        Ok(store)
    }

    pub(crate) fn has_blob(&self, b: &BlobRef) -> bool {
        self.blobs.contains(b)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub(crate) fn db(&self) -> &sled::Db {
        &self.db
    }
    pub(crate) fn tree(&self, i: usize) -> &Tree {
        &self.trees[i]
    }

    /// Run one atomic change and make it durable.
    pub(crate) fn write<A>(&self, f: impl Fn(&Tx) -> ix::TxResult<A>) -> Result<A> {
        // The index must be there to follow this change (see `search_index`).
        self.warm_search_index()?;
        let serial = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
        if self.snapshot_current.swap(false, Ordering::SeqCst) {
            // From now on the snapshot is behind: a crash must not find its stamp.
            self.tree(ix::META).remove(SEARCH_STAMP)?;
            self.db.flush()?;
        }
        let (out, changes) = self.trees.as_slice().transaction(|t| {
            let tx = Tx::new(t);
            let out = f(&tx)?;
            Ok((out, tx.into_changes()))
        })?;
        if let Some(index) = self
            .search
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            index.apply(&changes);
        }
        // Durable before returning, but flushed outside the lock: writers that
        // commit meanwhile share one flush (sled makes the log stable up to the
        // newest write), instead of waiting for one fsync each in turn.
        drop(serial);
        self.db.flush()?;
        Ok(out)
    }

    /// Activities, then tracking records, then a checkpoint entry (key, value),
    /// as one atomic, durable change.
    fn write_tracked(
        &self,
        activities: Vec<Activity>,
        tracking: Vec<TrackingRecord>,
        checkpoint: Option<(Vec<u8>, Vec<u8>)>,
    ) -> Result<(Vec<Activity>, Vec<TrackingRecord>)> {
        validate::tracked(&activities, &tracking)?;
        let stored = self.write(|tx| {
            let mut out = Vec::with_capacity(activities.len());
            for a in &activities {
                out.push(tx.write_activity(a, false, true)?.0);
            }
            for t in &tracking {
                tx.write_tracking(t, true)?;
            }
            if let Some((k, v)) = &checkpoint {
                tx.t(ix::CHECKPOINTS).insert(k.as_slice(), v.as_slice())?;
            }
            Ok(out)
        })?;
        Ok((stored, tracking))
    }

    /// Forget the in-memory search index and its snapshot (after the rows were
    /// rewritten by a migration): the next use rebuilds it.
    pub(crate) fn reset_search_index(&self) -> Result<()> {
        *self.search.write().unwrap_or_else(|e| e.into_inner()) = None;
        self.snapshot_current.store(false, Ordering::SeqCst);
        self.tree(ix::META).remove(SEARCH_STAMP)?;
        Ok(())
    }

    /// Load the in-memory search index now rather than on the first search
    /// (`serve` may call this in the background at start).
    pub fn warm_search_index(&self) -> Result<()> {
        if self
            .search
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
        {
            return Ok(());
        }
        // No write may commit between reading the tree and installing the copy.
        let _serial = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut slot = self.search.write().unwrap_or_else(|e| e.into_inner());
        if slot.is_some() {
            return Ok(());
        }
        let stamp = self.tree(ix::META).get(SEARCH_STAMP)?;
        let from_snapshot = stamp.and_then(|stamp| {
            let stamp: [u8; 16] = stamp.as_ref().try_into().ok()?;
            let bytes = std::fs::read(self.dir.join(SEARCH_SNAPSHOT)).ok()?;
            MemIndex::from_snapshot(&bytes, &stamp)
        });
        let current = from_snapshot.is_some();
        let index = match from_snapshot {
            Some(index) => index,
            None => {
                if !self.trees[ix::RECORDS].is_empty() {
                    tracing::info!(store = %self.dir.display(), "rebuilding the search index from the records");
                }
                MemIndex::rebuild(&self.trees[ix::RECORDS], &self.trees[ix::ACTIVITIES])?
            }
        };
        self.snapshot_current.store(current, Ordering::SeqCst);
        *slot = Some(index);
        Ok(())
    }

    /// Save the search index so the next open need not rebuild it: the snapshot
    /// file first (written whole, then renamed), its stamp in `meta` last. Nothing
    /// to do when the index was never loaded or the snapshot is current.
    pub fn save_search_index(&self) -> Result<()> {
        let _serial = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
        if self.snapshot_current.load(Ordering::SeqCst) {
            return Ok(());
        }
        let slot = self.search.read().unwrap_or_else(|e| e.into_inner());
        let Some(index) = slot.as_ref() else {
            return Ok(());
        };
        let stamp = *Uuid::new_v4().as_bytes();
        let bytes = index.snapshot(&stamp);
        crate::tls::write_atomic(&self.dir.join(SEARCH_SNAPSHOT), &bytes, 0o600)
            .map_err(|e| StoreError::Corrupt(format!("cannot save the search index: {e}")))?;
        self.tree(ix::META).insert(SEARCH_STAMP, &stamp)?;
        self.db.flush()?;
        self.snapshot_current.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Bytes on disk of the database and blobs (for benchmarks and `doctor`).
    pub fn size_on_disk(&self) -> Result<u64> {
        Ok(self.db.size_on_disk()? + dir_size(&self.dir.join("blobs")))
    }

    /// Per tree: its name, entries and the bytes of their keys and values (for
    /// the store benchmark: where the bytes on disk come from).
    pub fn tree_sizes(&self) -> Result<Vec<(&'static str, u64, u64)>> {
        let mut out = Vec::with_capacity(ix::TREES.len());
        for (name, tree) in ix::TREES.iter().zip(&self.trees) {
            let (mut n, mut bytes) = (0u64, 0u64);
            for item in tree.iter() {
                let (k, v) = item?;
                n = n.saturating_add(1);
                bytes = bytes.saturating_add((k.len() + v.len()) as u64);
            }
            out.push((*name, n, bytes));
        }
        Ok(out)
    }

    fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        tree: usize,
        what: &str,
        key: &[u8],
    ) -> Result<Option<T>> {
        match self.trees[tree].get(key)? {
            Some(v) => Ok(Some(decode(what, &v)?)),
            None => Ok(None),
        }
    }

    fn user(&self, id: UserId) -> Result<SystemUser> {
        match self.record(id.uuid())? {
            Some(Record::User(u)) => Ok(u),
            _ => Err(StoreError::NotFound {
                kind: Some(Kind::User),
                id: id.uuid(),
            }),
        }
    }

    /// Activities listed under `text 0 id` keys of one lookup tree, oldest first.
    fn activities_under(&self, tree: usize, text: &str, limit: usize) -> Result<Vec<Activity>> {
        let mut prefix = text.as_bytes().to_vec();
        prefix.push(0);
        let mut out = Vec::new();
        for item in self.trees[tree].scan_prefix(&prefix).take(limit) {
            let (k, _) = item?;
            let id = Uuid::from_slice(&k[prefix.len()..])
                .map_err(|_| StoreError::Corrupt("bad lookup index key".into()))?;
            out.extend(self.activity(ActivityId::from_uuid(id))?);
        }
        Ok(out)
    }

    fn title_of(&self, kind: Kind, id: Uuid) -> Result<String> {
        if kind.is_activity() {
            Ok(self
                .activity(ActivityId::from_uuid(id))?
                .map(|a| a.subject)
                .unwrap_or_default())
        } else {
            Ok(self.record(id)?.map(|r| r.title()).unwrap_or_default())
        }
    }
}

fn dir_size(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

impl Drop for SledStore {
    fn drop(&mut self) {
        if let Err(e) = self.save_search_index() {
            tracing::warn!(error = %e, "the search index will be rebuilt at the next start");
        }
    }
}

impl CrmStore for SledStore {
    fn warm_up(&self) -> Result<()> {
        self.warm_search_index()
    }

    fn close(&self) -> Result<()> {
        self.save_search_index()
    }

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
        self.get_json(ix::RECORDS, "record", id.as_bytes())
    }

    fn put_record(&self, mut record: Record) -> Result<Record> {
        validate::record(&mut record)?;
        self.write(|tx| tx.write_record(&record, false, true).map(|(r, _)| r))
    }

    fn delete_record(&self, id: Uuid) -> Result<()> {
        self.write(|tx| tx.delete_record(id))
    }

    fn records(&self, kind: Option<Kind>) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        for item in self.trees[ix::RECORDS].iter() {
            let (_, v) = item?;
            let r: Record = decode("record", &v)?;
            if kind.is_none_or(|k| k == r.kind()) {
                out.push(r);
            }
        }
        Ok(out)
    }

    fn is_empty(&self) -> Result<bool> {
        Ok(self.trees[ix::RECORDS].is_empty() && self.trees[ix::ACTIVITIES].is_empty())
    }

    fn count_records(&self, kind: Kind) -> Result<usize> {
        self.count_records_indexed(kind)
    }

    fn recent_records(&self, kind: Kind, n: usize) -> Result<Vec<Record>> {
        self.recent_records_indexed(kind, n)
    }

    fn linked_records(
        &self,
        target: Uuid,
        kind: Option<Kind>,
        limit: usize,
    ) -> Result<Vec<Record>> {
        self.linked_records_indexed(target, kind, limit)
    }

    fn user_list(&self, user: UserId, list: UserList) -> Result<Vec<ListEntry>> {
        self.user_list_rows(user, list)
    }

    fn set_favourite(&self, user: UserId, record: RecordRef, on: bool) -> Result<bool> {
        self.set_favourite_row(user, record, on)
    }

    fn note_viewed(&self, user: UserId, record: RecordRef) -> Result<()> {
        self.note_viewed_row(user, record)
    }

    fn snoozed(&self, user: UserId) -> Result<Vec<Snoozed>> {
        self.snoozed_rows(user)
    }

    fn snooze(&self, user: UserId, card: &str, until: chrono::DateTime<chrono::Utc>) -> Result<()> {
        self.snooze_row(user, card, until)
    }

    fn records_page(&self, kind: Kind, page: &PageRequest) -> Result<Page<Record>> {
        paging::records_page(self, kind, page)
    }

    fn address_book_entry(&self, owner: UserId, id: EntryId) -> Result<Option<AddressBookEntry>> {
        book::entry(self, owner, id)
    }

    fn address_book_by_email(
        &self,
        owner: UserId,
        address: &EmailAddress,
    ) -> Result<Option<AddressBookEntry>> {
        book::by_email(self, owner, address)
    }

    fn address_book_page(
        &self,
        owner: UserId,
        view: BookView,
        text: &str,
        page: &PageRequest,
    ) -> Result<Page<AddressBookEntry>> {
        book::page(self, owner, view, text, page)
    }

    fn address_book_counts(&self, owner: UserId) -> Result<BookCounts> {
        book::counts(self, owner)
    }

    fn address_book_write(
        &self,
        owner: UserId,
        records: Vec<Record>,
        entries: Vec<AddressBookEntry>,
    ) -> Result<Vec<AddressBookEntry>> {
        // Whoever changes an address book is its owner (delegates are refused
        // above), so a record it creates needs the owner's `create_records`.
        for r in &records {
            if self.record(r.id())?.is_none() {
                super::rights::require(self, owner, Privilege::CreateRecords)?;
                break;
            }
        }
        book::write(self, owner, records, entries)
    }

    fn activity(&self, id: ActivityId) -> Result<Option<Activity>> {
        self.get_json(ix::ACTIVITIES, "activity", id.uuid().as_bytes())
    }

    fn header_facts(&self, id: ActivityId) -> Result<Option<HeaderFacts>> {
        let key = id.uuid();
        match self.get_json(ix::FACTS, "header facts", key.as_bytes())? {
            Some(f) => Ok(Some(f)),
            None => self.get_json(ix::ACTIVITIES, "activity", key.as_bytes()),
        }
    }

    fn put_activity(&self, activity: Activity) -> Result<Activity> {
        validate::activity(&activity)?;
        self.write(|tx| tx.write_activity(&activity, false, true).map(|(a, _)| a))
    }

    fn delete_activity(&self, id: ActivityId) -> Result<()> {
        self.write(|tx| tx.delete_activity(id.uuid()))
    }

    fn activities_by_message_id(&self, message_id: &MessageId) -> Result<Vec<Activity>> {
        let mut prefix = message_id.as_str().as_bytes().to_vec();
        prefix.push(0);
        let mut out = Vec::new();
        for item in self.trees[ix::MSGIDS].scan_prefix(&prefix) {
            let (_, id) = item?;
            let id = Uuid::from_slice(&id)
                .map_err(|_| StoreError::Corrupt("bad id in Message-ID index".into()))?;
            out.extend(self.activity(ActivityId::from_uuid(id))?);
        }
        // Ids are UUIDv7: creation order, so the oldest first.
        out.sort_by_key(|a| (a.stamps.created, a.id.uuid()));
        Ok(out)
    }

    fn email_by_content(&self, message_id: &MessageId, digest: &str) -> Result<Option<Activity>> {
        let key = ix::msgid_key(message_id.as_str(), Some(digest), Uuid::nil());
        match self.trees[ix::MSGIDS].get(key)? {
            Some(id) => {
                let id = Uuid::from_slice(&id)
                    .map_err(|_| StoreError::Corrupt("bad id in Message-ID index".into()))?;
                self.activity(ActivityId::from_uuid(id))
            }
            None => Ok(None),
        }
    }

    fn activities_of(&self, record: Uuid, limit: usize) -> Result<Vec<Activity>> {
        let mut out = Vec::new();
        for item in self.trees[ix::TIMELINE]
            .scan_prefix(record.as_bytes())
            .take(limit)
        {
            let (k, _) = item?;
            let id = Uuid::from_slice(&k[k.len() - 16..])
                .map_err(|_| StoreError::Corrupt("bad timeline key".into()))?;
            out.extend(self.activity(ActivityId::from_uuid(id))?);
        }
        Ok(out)
    }

    fn tracking(&self, owner: UserId, message_id: &MessageId) -> Result<Option<TrackingRecord>> {
        self.get_json(
            ix::TRACKING,
            "tracking",
            &ix::tracking_key(owner.uuid(), message_id.as_str()),
        )
    }

    fn put_tracking(&self, record: TrackingRecord) -> Result<TrackingRecord> {
        validate::tracking(&record)?;
        self.write(|tx| tx.write_tracking(&record, true))?;
        Ok(record)
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
        let c = checkpoint;
        let entry = checkpoints::entry(c.owner, &c.mailbox, &c.folder, &c.at)?;
        self.write_tracked(activities, tracking, Some(entry))
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
        self.write(|tx| {
            let stored = match &activity {
                Some(a) => Some(tx.write_activity(a, false, true)?.0),
                None => None,
            };
            tx.write_tracking(&tracking, true)?;
            Ok(stored)
        })
    }

    fn track_batch(&self, items: Vec<(Option<Activity>, TrackingRecord)>) -> Result<()> {
        for (a, t) in &items {
            if let Some(a) = a {
                validate::activity(a)?;
            }
            validate::tracking(t)?;
        }
        self.write(|tx| {
            for (a, t) in &items {
                if let Some(a) = a {
                    tx.write_activity(a, false, true)?;
                }
                tx.write_tracking(t, true)?;
            }
            Ok(())
        })
    }

    fn delete_tracking(&self, owner: UserId, message_id: &MessageId) -> Result<bool> {
        self.write(|tx| tx.delete_tracking(owner.uuid(), message_id.as_str()))
    }

    fn pending_tracking(&self, only: Option<UserId>, limit: usize) -> Result<Vec<TrackingRecord>> {
        let mut out = Vec::new();
        // Keys only (time, owner, Message-ID): another mailbox's are skipped unread.
        for item in self.trees[ix::PENDING].iter() {
            if out.len() >= limit {
                break;
            }
            let (k, _) = item?;
            let owner = Uuid::from_slice(&k[8..24])
                .map_err(|_| StoreError::Corrupt("bad pending key".into()))?;
            if only.is_some_and(|o| o.uuid() != owner) {
                continue;
            }
            let msgid = std::str::from_utf8(&k[24..])
                .map_err(|_| StoreError::Corrupt("bad pending key".into()))?;
            out.extend(self.get_json::<TrackingRecord>(
                ix::TRACKING,
                "tracking",
                &ix::tracking_key(owner, msgid),
            )?);
        }
        Ok(out)
    }

    fn tracking_of_message(&self, message_id: &MessageId) -> Result<Vec<TrackingRecord>> {
        let mut prefix = message_id.as_str().as_bytes().to_vec();
        prefix.push(0);
        let mut out = Vec::new();
        for item in self.trees[ix::TRACK_MSG].scan_prefix(&prefix) {
            let (k, _) = item?;
            let owner = Uuid::from_slice(&k[prefix.len()..])
                .map_err(|_| StoreError::Corrupt("bad tracking index key".into()))?;
            out.extend(self.get_json::<TrackingRecord>(
                ix::TRACKING,
                "tracking",
                &ix::tracking_key(owner, message_id.as_str()),
            )?);
        }
        Ok(out)
    }

    fn tracking_at(
        &self,
        owner: UserId,
        location: &MessageLocation,
    ) -> Result<Option<TrackingRecord>> {
        let Some(msgid) =
            self.trees[ix::LOCATIONS].get(ix::location_key(owner.uuid(), location))?
        else {
            return Ok(None);
        };
        let msgid = std::str::from_utf8(&msgid)
            .map_err(|_| StoreError::Corrupt("bad location index entry".into()))?;
        let t: Option<TrackingRecord> = self.get_json(
            ix::TRACKING,
            "tracking",
            &ix::tracking_key(owner.uuid(), msgid),
        )?;
        // The index follows the rows; a record that moved elsewhere no longer answers.
        Ok(t.filter(|t| t.location.as_ref() == Some(location)))
    }

    fn emails_by_thread_index(&self, thread_index: &str, limit: usize) -> Result<Vec<Activity>> {
        self.activities_under(ix::THREADS, &thread_conversation(thread_index), limit)
    }

    fn email_by_tracking_token(&self, token: &str) -> Result<Option<Activity>> {
        Ok(self.activities_under(ix::TOKENS, token, 1)?.pop())
    }

    fn appointment_by_uid(&self, uid: &str) -> Result<Option<Activity>> {
        Ok(self.activities_under(ix::APPT_UIDS, uid, 1)?.pop())
    }

    fn appointments_by_uid(&self, uid: &str) -> Result<Vec<Activity>> {
        self.activities_under(ix::APPT_UIDS, uid, usize::MAX)
    }

    fn resolve_address(&self, address: &EmailAddress) -> Result<Vec<RecordRef>> {
        let mut prefix = address.key().as_bytes().to_vec();
        prefix.push(0);
        let mut out = Vec::new();
        for item in self.trees[ix::EMAILS].scan_prefix(&prefix) {
            let (k, v) = item?;
            let id = Uuid::from_slice(&k[prefix.len()..])
                .map_err(|_| StoreError::Corrupt("bad e-mail index key".into()))?;
            if let Some(kind) = v.first().and_then(|c| Kind::from_code(*c)) {
                out.push(RecordRef { kind, id });
            }
        }
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
        match self.trees[ix::LOGINS].get(login.key().as_bytes())? {
            Some(id) => {
                let id = Uuid::from_slice(&id)
                    .map_err(|_| StoreError::Corrupt("bad login index".into()))?;
                Ok(self.user(UserId::from_uuid(id)).ok())
            }
            None => Ok(None),
        }
    }

    fn search(&self, query: &SearchQuery) -> Result<Vec<SearchHit>> {
        let mut words = text::tokens(&query.text);
        words.sort();
        words.dedup();
        // Drop words that are prefixes of other words: "jo john" means "john".
        let all = words.clone();
        words.retain(|w| !all.iter().any(|o| o != w && o.starts_with(w.as_str())));
        if words.is_empty() {
            return Ok(Vec::new());
        }
        self.warm_search_index()?;
        let found = match self
            .search
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            Some(index) => index.search(&words, &query.kinds),
            None => return Err(StoreError::Corrupt("the search index did not load".into())),
        };
        let mut ranked = found;
        let best_first =
            |a: &(Uuid, Kind, u32), b: &(Uuid, Kind, u32)| b.2.cmp(&a.2).then(a.0.cmp(&b.0));
        let limit = if query.limit == 0 { 20 } else { query.limit };
        if ranked.len() > limit {
            ranked.select_nth_unstable_by(limit, best_first);
            ranked.truncate(limit);
        }
        ranked.sort_by(best_first);
        let mut hits = Vec::with_capacity(ranked.len());
        for (id, kind, score) in ranked {
            hits.push(SearchHit {
                kind,
                id,
                title: self.title_of(kind, id)?,
                score,
            });
        }
        // Equal scores: alphabetical, as a list would show them.
        hits.sort_by(|a, b| {
            b.score
                .cmp(&a.score)
                .then_with(|| text::fold(&a.title).cmp(&text::fold(&b.title)))
        });
        Ok(hits)
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
        self.write(|tx| {
            let Some(Record::User(mut u)) = tx.record(user.uuid())? else {
                return ix::abort(StoreError::NotFound {
                    kind: Some(Kind::User),
                    id: user.uuid(),
                });
            };
            if on {
                u.privileges.insert(privilege);
            } else {
                u.privileges.remove(&privilege);
            }
            let (r, _) = tx.write_record(&Record::User(u), false, true)?;
            match r {
                Record::User(u) => Ok(u),
                _ => unreachable!("a user stays a user"),
            }
        })
    }

    fn set_delegate(&self, owner: UserId, delegate: UserId, on: bool) -> Result<SystemUser> {
        if owner == delegate {
            return Err(StoreError::invalid(
                "delegate",
                "a user cannot be their own delegate",
            ));
        }
        self.write(|tx| {
            let Some(Record::User(mut u)) = tx.record(owner.uuid())? else {
                return ix::abort(StoreError::NotFound {
                    kind: Some(Kind::User),
                    id: owner.uuid(),
                });
            };
            if on {
                u.delegates.insert(delegate);
            } else {
                u.delegates.remove(&delegate);
            }
            let (r, _) = tx.write_record(&Record::User(u), false, true)?;
            match r {
                Record::User(u) => Ok(u),
                _ => unreachable!("a user stays a user"),
            }
        })
    }

    fn settings(&self) -> Result<OrgSettings> {
        Ok(self
            .get_json(ix::META, "settings", b"settings")?
            .unwrap_or_default())
    }

    fn put_settings(&self, settings: OrgSettings) -> Result<()> {
        validate::settings(&settings)?;
        self.write(|tx| tx.put_meta("settings", &settings))
    }

    fn put_blob(&self, bytes: &[u8]) -> Result<BlobRef> {
        Ok(self.blobs.put(bytes)?)
    }

    fn put_blobs(&self, blobs: &[&[u8]]) -> Result<Vec<BlobRef>> {
        Ok(self.blobs.put_many(blobs)?)
    }

    fn blob(&self, blob: &BlobRef) -> Result<Vec<u8>> {
        Ok(self.blobs.get(blob)?)
    }

    fn export(&self) -> Result<ExportBundle> {
        export::collect(self)
    }

    fn import_bundle(&self, bundle: &ExportBundle) -> Result<ImportSummary> {
        export::import(self, bundle)
    }

    fn put_records_bulk(
        &self,
        mut records: Vec<Record>,
        progress: &mut dyn FnMut(usize),
    ) -> Result<()> {
        for r in &mut records {
            validate::record(r)?;
        }
        let mut done = 0;
        for chunk in records.chunks(BULK_CHUNK) {
            self.write(|tx| {
                for r in chunk {
                    tx.write_record(r, true, true)?;
                }
                Ok(())
            })?;
            done += chunk.len();
            progress(done);
        }
        Ok(())
    }
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Db(e.to_string())
    }
}

impl From<sled::transaction::TransactionError<StoreError>> for StoreError {
    fn from(e: sled::transaction::TransactionError<StoreError>) -> Self {
        match e {
            sled::transaction::TransactionError::Abort(e) => e,
            sled::transaction::TransactionError::Storage(e) => e.into(),
        }
    }
}
