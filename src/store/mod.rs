//! The CRM store: records, activities, tracking records, indexes, import/export.
//!
//! [`CrmStore`] is the interface the tracking engine, the pane and the CLI use. This
//! module holds the model, the trait, validation and the rules that are not a storage
//! detail; the backends sit under it: [`sled`] (embedded, the default for one person)
//! implements it on an embedded sled database plus a directory of content-addressed
//! blobs. File formats (vCard, CSV, JSON import) are `crate::formats`'s, the admin
//! socket is `crate::admin`'s.

pub mod activity;
pub mod address;
pub mod address_book;
pub mod blobs;
pub mod book_actions;
pub mod book_import;
pub mod demo;
mod digest;
pub mod error;
pub mod export;
pub mod forward;
pub mod ids;
pub mod kind;
pub mod model;
pub mod paging;
pub mod postgres;
pub mod rights;
pub mod settings;
pub mod sled;
pub mod text;
pub mod user_lists;
pub(crate) mod validate;

pub use self::sled::SledStore;
pub use activity::*;
pub use address::{AddressError, EmailAddress, MessageId};
pub use address_book::{AddressBookEntry, BookCounts, BookView, ContactLink, EntryId, EntrySource};
pub use blobs::{BlobRef, BlobStore};
pub use digest::{content_digest, header_value};
pub use error::StoreError;
pub use export::ExportBundle;
pub use forward::Offloaded;
pub use ids::Id;
pub use model::*;
pub use paging::{Page, PageRequest};
pub use postgres::{PgOptions, PgStore};
pub use settings::{AutoTrack, OrgSettings, UserOptions};
pub use user_lists::{ListEntry, Snoozed, UserList};

use uuid::Uuid;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A full-text search request.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SearchQuery {
    /// Words; each must match a word of the record (as a prefix), accents and case ignored.
    pub text: String,
    /// Only these kinds; empty means every kind.
    #[serde(default)]
    pub kinds: Vec<Kind>,
    /// At most this many hits (0: the default of 20).
    #[serde(default)]
    pub limit: usize,
}

/// One search result, best first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SearchHit {
    pub kind: Kind,
    pub id: Uuid,
    pub title: String,
    pub score: u32,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImportSummary {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// (where, why) for each item left out.
    pub skipped: Vec<(String, String)>,
}

/// The CRM as the rest of crmproxy sees it. Every write is atomic and durable
/// when it returns; every write validates and returns [`StoreError`] with a
/// message fit for a user. Methods are blocking: call them from
/// `tokio::task::spawn_blocking` (or `block_in_place`) in async code.
pub trait CrmStore: Send + Sync {
    /// Load caches (the search index) now rather than on first use; `serve`
    /// calls this once at start, in the background.
    fn warm_up(&self) -> Result<()> {
        Ok(())
    }
    /// Save what the store keeps in memory (sled: the search index) so that the
    /// next start is quick. `serve` and the CLI call it when they are done; a
    /// store that is never closed only starts slower next time.
    fn close(&self) -> Result<()> {
        Ok(())
    }

    // --- records ---------------------------------------------------------------
    /// A record by id.
    fn record(&self, id: Uuid) -> Result<Option<Record>>;
    /// Create (new id) or replace (existing id) a record; stamps `created`/`modified`.
    /// Returns the record as stored.
    fn put_record(&self, record: Record) -> Result<Record>;
    /// Delete a record; refused with [`StoreError::InUse`] while anything links to it.
    fn delete_record(&self, id: Uuid) -> Result<()>;
    /// All records of one kind (or all), in id (creation) order.
    fn records(&self, kind: Option<Kind>) -> Result<Vec<Record>>;
    /// Is there no record at all?
    fn is_empty(&self) -> Result<bool>;
    /// How many records of `kind` there are.
    fn count_records(&self, kind: Kind) -> Result<usize> {
        Ok(self.records(Some(kind))?.len())
    }
    /// The newest `n` records of `kind` (by id, i.e. creation), newest first.
    fn recent_records(&self, kind: Kind, n: usize) -> Result<Vec<Record>> {
        let mut all = self.records(Some(kind))?;
        all.reverse();
        all.truncate(n);
        Ok(all)
    }
    /// Records (of `kind`, or any) that link to `target` (an account's contacts,
    /// opportunities, cases), in id order, at most `limit`.
    fn linked_records(
        &self,
        target: Uuid,
        kind: Option<Kind>,
        limit: usize,
    ) -> Result<Vec<Record>> {
        let mut out = self.records(kind)?;
        out.retain(|r| r.links().iter().any(|l| l.id == target));
        out.truncate(limit);
        Ok(out)
    }
    /// One page of the records of a kind, in name order (case and accents ignored).
    fn records_page(&self, kind: Kind, page: &PageRequest) -> Result<Page<Record>>;

    // --- address books (a user's own "mail contacts", see [`address_book`]) ------
    fn address_book_entry(&self, owner: UserId, id: EntryId) -> Result<Option<AddressBookEntry>>;
    /// The entry of `owner`'s address book with this e-mail address.
    fn address_book_by_email(
        &self,
        owner: UserId,
        address: &EmailAddress,
    ) -> Result<Option<AddressBookEntry>>;
    /// One page of a view of `owner`'s address book in name order; a non-empty
    /// `text` keeps the entries whose name, company, department or address match it.
    fn address_book_page(
        &self,
        owner: UserId,
        view: BookView,
        text: &str,
        page: &PageRequest,
    ) -> Result<Page<AddressBookEntry>>;
    fn address_book_counts(&self, owner: UserId) -> Result<BookCounts>;
    /// Write CRM records (created or replaced) and entries of `owner`'s address book
    /// as one atomic change: Track creates a contact and links the entry together.
    /// An address belongs to one entry per address book ([`StoreError::Duplicate`]);
    /// an existing entry must carry the `modified` stamp it has in the store (it
    /// was read, then changed), else it is refused as stale ([`StoreError::Invalid`]).
    fn address_book_write(
        &self,
        owner: UserId,
        records: Vec<Record>,
        entries: Vec<AddressBookEntry>,
    ) -> Result<Vec<AddressBookEntry>>;

    // --- activities ------------------------------------------------------------
    fn activity(&self, id: ActivityId) -> Result<Option<Activity>>;
    /// What the X-CRM-* header block of an activity needs, without its body.
    fn header_facts(&self, id: ActivityId) -> Result<Option<HeaderFacts>> {
        Ok(self.activity(id)?.as_ref().map(HeaderFacts::from))
    }
    /// Create or replace an activity. An email activity's (Message-ID, content
    /// digest) is unique: a second activity for the same message is refused
    /// ([`StoreError::Duplicate`]); another message with that Message-ID is not.
    fn put_activity(&self, activity: Activity) -> Result<Activity>;
    /// Delete an activity; refused while a mailbox tracks it or an email correlates to it.
    fn delete_activity(&self, id: ActivityId) -> Result<()>;
    /// The oldest (email or appointment) activity for a Message-ID. Several
    /// messages may share one: see [`CrmStore::activities_by_message_id`].
    fn activity_by_message_id(&self, message_id: &MessageId) -> Result<Option<Activity>> {
        Ok(self
            .activities_by_message_id(message_id)?
            .into_iter()
            .next())
    }
    /// Every activity for a Message-ID, oldest first (different messages that
    /// share it, see [`content_digest`]).
    fn activities_by_message_id(&self, message_id: &MessageId) -> Result<Vec<Activity>>;
    /// The email activity of exactly this message: its Message-ID and its
    /// [`content_digest`].
    fn email_by_content(&self, message_id: &MessageId, digest: &str) -> Result<Option<Activity>>;
    /// A record's activities (as regarding, party or owner), newest first.
    fn activities_of(&self, record: Uuid, limit: usize) -> Result<Vec<Activity>>;

    // --- tracking --------------------------------------------------------------
    fn tracking(&self, owner: UserId, message_id: &MessageId) -> Result<Option<TrackingRecord>>;
    /// Create or replace the tracking record of (owner, Message-ID). Checks that the
    /// requester is the owner or one of the owner's delegates, and that a tracked
    /// record points to an existing activity with that Message-ID.
    fn put_tracking(&self, record: TrackingRecord) -> Result<TrackingRecord>;
    /// Track in one atomic change: create or update the activity (if given) and
    /// put the mailbox's tracking record. Returns the activity as stored.
    fn track(
        &self,
        activity: Option<Activity>,
        tracking: TrackingRecord,
    ) -> Result<Option<Activity>>;
    /// Many [`track`](CrmStore::track)s as one atomic, durable change (bulk
    /// tracking, e.g. a gateway's backlog): all are written or none. The caller
    /// picks the batch size (a few hundred is plenty).
    fn track_batch(&self, items: Vec<(Option<Activity>, TrackingRecord)>) -> Result<()>;
    /// Write activities, then tracking records, as ONE atomic change (the tracking
    /// engine's write: an email, its appointment and a mailbox's tracking record
    /// together, so a failure leaves nothing half-written). Each row is validated
    /// and checked as by `put_activity` / `put_tracking`. Returns them as stored.
    fn put_tracked(
        &self,
        activities: Vec<Activity>,
        tracking: Vec<TrackingRecord>,
    ) -> Result<(Vec<Activity>, Vec<TrackingRecord>)>;
    /// [`put_tracked`](CrmStore::put_tracked) and a folder's checkpoint in ONE
    /// atomic change (the gateway: a restart resumes exactly after what was
    /// written, never before or after it).
    fn put_tracked_with_checkpoint(
        &self,
        activities: Vec<Activity>,
        tracking: Vec<TrackingRecord>,
        checkpoint: &MailboxCheckpoint,
    ) -> Result<(Vec<Activity>, Vec<TrackingRecord>)>;
    /// Untrack in one mailbox; the activity stays. Returns whether there was one.
    fn delete_tracking(&self, owner: UserId, message_id: &MessageId) -> Result<bool>;
    /// Pending requests, oldest request first: every mailbox's, or `owner`'s only.
    fn pending_tracking(&self, owner: Option<UserId>, limit: usize) -> Result<Vec<TrackingRecord>>;
    /// Every mailbox's tracking record for one Message-ID.
    fn tracking_of_message(&self, message_id: &MessageId) -> Result<Vec<TrackingRecord>>;
    /// The tracking record of the message at this place in `owner`'s mailbox
    /// (folder, UIDVALIDITY, UID), for clients that fetch a body before the proxy
    /// has seen its Message-ID.
    fn tracking_at(
        &self,
        owner: UserId,
        location: &MessageLocation,
    ) -> Result<Option<TrackingRecord>>;

    // --- correlation lookups (tracking engine) ---------------------------------
    /// Email activities in the same Outlook Thread-Index conversation (see
    /// [`thread_conversation`]), oldest first, at most `limit`.
    fn emails_by_thread_index(&self, thread_index: &str, limit: usize) -> Result<Vec<Activity>>;
    /// The oldest email activity whose subject carries this `CRM:` + digits token.
    fn email_by_tracking_token(&self, token: &str) -> Result<Option<Activity>>;
    /// The (oldest) appointment activity made from the meeting with this iCalendar UID.
    fn appointment_by_uid(&self, uid: &str) -> Result<Option<Activity>>;
    /// Every appointment made from a meeting with this UID, oldest first (a UID
    /// reused in another invitation, by someone else, makes another appointment).
    fn appointments_by_uid(&self, uid: &str) -> Result<Vec<Activity>>;

    // --- lookups ---------------------------------------------------------------
    /// Records with this e-mail address, ordered user, contact, account, lead.
    fn resolve_address(&self, address: &EmailAddress) -> Result<Vec<RecordRef>>;
    /// The user who signs in with this address.
    fn user_by_login(&self, login: &EmailAddress) -> Result<Option<SystemUser>>;
    /// The user who signs in to the mail server as `login`: an e-mail login,
    /// or an IMAP user name that is not an address (`jsmith`). Users are few,
    /// so the second reads the user list.
    fn user_by_mailbox_login(&self, login: &str) -> Result<Option<SystemUser>> {
        let login = login.trim();
        if let Ok(address) = EmailAddress::parse(login) {
            return self.user_by_login(&address);
        }
        if model::imap_login_problem(login).is_some() {
            return Ok(None);
        }
        Ok(self
            .users()?
            .into_iter()
            .find(|u| u.imap_logins.iter().any(|l| l.eq_ignore_ascii_case(login))))
    }
    fn search(&self, query: &SearchQuery) -> Result<Vec<SearchHit>>;

    // --- users -----------------------------------------------------------------
    fn users(&self) -> Result<Vec<SystemUser>>;
    /// Grant (`on`) or revoke a privilege; returns the user as stored.
    fn set_privilege(&self, user: UserId, privilege: Privilege, on: bool) -> Result<SystemUser>;
    /// Allow (`on`) or stop `delegate` acting on `owner`'s mailbox.
    fn set_delegate(&self, owner: UserId, delegate: UserId, on: bool) -> Result<SystemUser>;
    /// May `actor` act on `owner`'s mailbox (it is the owner or a delegate with `use_app`)?
    fn may_act_for(&self, actor: UserId, owner: UserId) -> Result<bool> {
        let Some(Record::User(o)) = self.record(owner.uuid())? else {
            return Ok(false);
        };
        let Some(Record::User(a)) = self.record(actor.uuid())? else {
            return Ok(false);
        };
        Ok(a.has(Privilege::UseApp) && (actor == owner || o.delegates.contains(&actor)))
    }

    // --- per-user lists (favourites, recently viewed) ---------------------------
    /// A user's list, newest first, without records deleted since.
    fn user_list(&self, user: UserId, list: UserList) -> Result<Vec<ListEntry>>;
    /// Star (`on`) or unstar a record for `user`; returns whether it was a favourite.
    /// Starring a record that does not exist is [`StoreError::NotFound`]; at most
    /// [`user_lists::FAVOURITES_LIMIT`] favourites.
    fn set_favourite(&self, user: UserId, record: RecordRef, on: bool) -> Result<bool>;
    /// Put a record first in `user`'s recently viewed list (at most
    /// [`user_lists::RECENT_LIMIT`] kept).
    fn note_viewed(&self, user: UserId, record: RecordRef) -> Result<()>;
    /// The relationship assistant's cards `user` put aside and that are still asleep.
    fn snoozed(&self, user: UserId) -> Result<Vec<Snoozed>>;
    /// Put the card with this key aside until `until` (a past time wakes it).
    fn snooze(&self, user: UserId, card: &str, until: chrono::DateTime<chrono::Utc>) -> Result<()>;

    // --- settings --------------------------------------------------------------
    fn settings(&self) -> Result<OrgSettings>;
    fn put_settings(&self, settings: OrgSettings) -> Result<()>;

    // --- files -----------------------------------------------------------------
    /// Store bytes durably as a blob (before writing the record that points to it).
    fn put_blob(&self, bytes: &[u8]) -> Result<BlobRef>;
    fn blob(&self, blob: &BlobRef) -> Result<Vec<u8>>;
    /// Store many blobs durably at once (bulk tracking); refs in the given order.
    fn put_blobs(&self, blobs: &[&[u8]]) -> Result<Vec<BlobRef>> {
        blobs.iter().map(|b| self.put_blob(b)).collect()
    }

    // --- gateway checkpoints ---------------------------------------------------
    /// Where tracking of `folder` in `owner`'s mailbox `mailbox` (the gateway's
    /// name for it) left off.
    fn checkpoint(
        &self,
        owner: UserId,
        mailbox: &str,
        folder: &str,
    ) -> Result<Option<FolderCheckpoint>>;
    /// Store a folder's checkpoint durably (replacing the one before).
    fn put_checkpoint(
        &self,
        owner: UserId,
        mailbox: &str,
        folder: &str,
        checkpoint: &FolderCheckpoint,
    ) -> Result<()>;
    /// Every folder checkpoint of `mailbox`, by folder name.
    fn checkpoints(&self, owner: UserId, mailbox: &str) -> Result<Vec<(String, FolderCheckpoint)>>;

    // --- bulk ------------------------------------------------------------------
    /// Everything, in a stable order (see [`ExportBundle`]).
    fn export(&self) -> Result<ExportBundle>;
    /// Write a whole bundle as one atomic change: records and activities are
    /// matched by id (created, updated, or unchanged), stamps kept as given.
    fn import_bundle(&self, bundle: &ExportBundle) -> Result<ImportSummary>;
    /// Write many new or changed records (an address-book import) in atomic
    /// chunks, keeping stamps as given. `progress` is called with the count written.
    fn put_records_bulk(&self, records: Vec<Record>, progress: &mut dyn FnMut(usize))
        -> Result<()>;
}
