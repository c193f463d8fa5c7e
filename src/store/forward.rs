//! Forwarding every [`CrmStore`] method to an inner store through a wrapper's
//! `around` method, for stores that wrap another: [`Offloaded`] (store calls that do
//! not hold up a runtime's other tasks) and the tests' stores that delay or hold calls.
//! One macro, so that a method added to the trait cannot be forgotten in a wrapper
//! (the default methods are forwarded too: a backend may override them).

pub use super::*;
pub use chrono::{DateTime, Utc};
pub use uuid::Uuid;

/// A store that runs each call of its inner store on the calling thread, but tells
/// tokio first (`block_in_place`) when that thread is a worker of a multi-thread
/// runtime: the worker's other tasks (other IMAP sessions, the pane) move to another
/// thread while this call waits for the disk or the database. Outside a runtime,
/// on a blocking thread or on a current-thread runtime the call just runs.
pub struct Offloaded<S> {
    inner: S,
}

impl<S: CrmStore> Offloaded<S> {
    pub fn new(inner: S) -> Offloaded<S> {
        Offloaded { inner }
    }

    fn around<T>(&self, f: impl FnOnce() -> T) -> T {
        use tokio::runtime::{Handle, RuntimeFlavor};
        match Handle::try_current() {
            Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(f)
            }
            _ => f(),
        }
    }
}

/// The store as `serve` shares it between IMAP sessions, the pane and the sync
/// workers: every call [`Offloaded`].
pub fn for_serve<S: CrmStore + 'static>(store: S) -> std::sync::Arc<dyn CrmStore> {
    std::sync::Arc::new(Offloaded::new(store))
}

impl<S: CrmStore> CrmStore for Offloaded<S> {
    crate::forward_crm_store!(inner);
}

/// The body of `impl CrmStore for Wrapper`: every method calls
/// `self.around(|| self.<inner>.method(args))`. The wrapper defines
/// `fn around<T>(&self, f: impl FnOnce() -> T) -> T`.
#[doc(hidden)]
#[macro_export]
macro_rules! forward_crm_store {
    ($inner:ident) => {
        fn warm_up(&self) -> $crate::store::forward::Result<()> {
            self.around(|| self.$inner.warm_up())
        }
        fn close(&self) -> $crate::store::forward::Result<()> {
            self.around(|| self.$inner.close())
        }
        fn record(
            &self,
            id: $crate::store::forward::Uuid,
        ) -> $crate::store::forward::Result<Option<$crate::store::forward::Record>> {
            self.around(|| self.$inner.record(id))
        }
        fn put_record(
            &self,
            record: $crate::store::forward::Record,
        ) -> $crate::store::forward::Result<$crate::store::forward::Record> {
            self.around(|| self.$inner.put_record(record))
        }
        fn delete_record(
            &self,
            id: $crate::store::forward::Uuid,
        ) -> $crate::store::forward::Result<()> {
            self.around(|| self.$inner.delete_record(id))
        }
        fn records(
            &self,
            kind: Option<$crate::store::forward::Kind>,
        ) -> $crate::store::forward::Result<Vec<$crate::store::forward::Record>> {
            self.around(|| self.$inner.records(kind))
        }
        fn is_empty(&self) -> $crate::store::forward::Result<bool> {
            self.around(|| self.$inner.is_empty())
        }
        fn count_records(
            &self,
            kind: $crate::store::forward::Kind,
        ) -> $crate::store::forward::Result<usize> {
            self.around(|| self.$inner.count_records(kind))
        }
        fn recent_records(
            &self,
            kind: $crate::store::forward::Kind,
            n: usize,
        ) -> $crate::store::forward::Result<Vec<$crate::store::forward::Record>> {
            self.around(|| self.$inner.recent_records(kind, n))
        }
        fn linked_records(
            &self,
            target: $crate::store::forward::Uuid,
            kind: Option<$crate::store::forward::Kind>,
            limit: usize,
        ) -> $crate::store::forward::Result<Vec<$crate::store::forward::Record>> {
            self.around(|| self.$inner.linked_records(target, kind, limit))
        }
        fn records_page(
            &self,
            kind: $crate::store::forward::Kind,
            page: &$crate::store::forward::PageRequest,
        ) -> $crate::store::forward::Result<
            $crate::store::forward::Page<$crate::store::forward::Record>,
        > {
            self.around(|| self.$inner.records_page(kind, page))
        }
        fn address_book_entry(
            &self,
            owner: $crate::store::forward::UserId,
            id: $crate::store::forward::EntryId,
        ) -> $crate::store::forward::Result<Option<$crate::store::forward::AddressBookEntry>> {
            self.around(|| self.$inner.address_book_entry(owner, id))
        }
        fn address_book_by_email(
            &self,
            owner: $crate::store::forward::UserId,
            address: &$crate::store::forward::EmailAddress,
        ) -> $crate::store::forward::Result<Option<$crate::store::forward::AddressBookEntry>> {
            self.around(|| self.$inner.address_book_by_email(owner, address))
        }
        fn address_book_page(
            &self,
            owner: $crate::store::forward::UserId,
            view: $crate::store::forward::BookView,
            text: &str,
            page: &$crate::store::forward::PageRequest,
        ) -> $crate::store::forward::Result<
            $crate::store::forward::Page<$crate::store::forward::AddressBookEntry>,
        > {
            self.around(|| self.$inner.address_book_page(owner, view, text, page))
        }
        fn address_book_counts(
            &self,
            owner: $crate::store::forward::UserId,
        ) -> $crate::store::forward::Result<$crate::store::forward::BookCounts> {
            self.around(|| self.$inner.address_book_counts(owner))
        }
        fn address_book_write(
            &self,
            owner: $crate::store::forward::UserId,
            records: Vec<$crate::store::forward::Record>,
            entries: Vec<$crate::store::forward::AddressBookEntry>,
        ) -> $crate::store::forward::Result<Vec<$crate::store::forward::AddressBookEntry>> {
            self.around(|| self.$inner.address_book_write(owner, records, entries))
        }
        fn activity(
            &self,
            id: $crate::store::forward::ActivityId,
        ) -> $crate::store::forward::Result<Option<$crate::store::forward::Activity>> {
            self.around(|| self.$inner.activity(id))
        }
        fn header_facts(
            &self,
            id: $crate::store::forward::ActivityId,
        ) -> $crate::store::forward::Result<Option<$crate::store::forward::HeaderFacts>> {
            self.around(|| self.$inner.header_facts(id))
        }
        fn put_activity(
            &self,
            activity: $crate::store::forward::Activity,
        ) -> $crate::store::forward::Result<$crate::store::forward::Activity> {
            self.around(|| self.$inner.put_activity(activity))
        }
        fn delete_activity(
            &self,
            id: $crate::store::forward::ActivityId,
        ) -> $crate::store::forward::Result<()> {
            self.around(|| self.$inner.delete_activity(id))
        }
        fn activity_by_message_id(
            &self,
            message_id: &$crate::store::forward::MessageId,
        ) -> $crate::store::forward::Result<Option<$crate::store::forward::Activity>> {
            self.around(|| self.$inner.activity_by_message_id(message_id))
        }
        fn activities_by_message_id(
            &self,
            message_id: &$crate::store::forward::MessageId,
        ) -> $crate::store::forward::Result<Vec<$crate::store::forward::Activity>> {
            self.around(|| self.$inner.activities_by_message_id(message_id))
        }
        fn email_by_content(
            &self,
            message_id: &$crate::store::forward::MessageId,
            digest: &str,
        ) -> $crate::store::forward::Result<Option<$crate::store::forward::Activity>> {
            self.around(|| self.$inner.email_by_content(message_id, digest))
        }
        fn activities_of(
            &self,
            record: $crate::store::forward::Uuid,
            limit: usize,
        ) -> $crate::store::forward::Result<Vec<$crate::store::forward::Activity>> {
            self.around(|| self.$inner.activities_of(record, limit))
        }
        fn tracking(
            &self,
            owner: $crate::store::forward::UserId,
            message_id: &$crate::store::forward::MessageId,
        ) -> $crate::store::forward::Result<Option<$crate::store::forward::TrackingRecord>> {
            self.around(|| self.$inner.tracking(owner, message_id))
        }
        fn put_tracking(
            &self,
            record: $crate::store::forward::TrackingRecord,
        ) -> $crate::store::forward::Result<$crate::store::forward::TrackingRecord> {
            self.around(|| self.$inner.put_tracking(record))
        }
        fn track(
            &self,
            activity: Option<$crate::store::forward::Activity>,
            tracking: $crate::store::forward::TrackingRecord,
        ) -> $crate::store::forward::Result<Option<$crate::store::forward::Activity>> {
            self.around(|| self.$inner.track(activity, tracking))
        }
        fn track_batch(
            &self,
            items: Vec<(
                Option<$crate::store::forward::Activity>,
                $crate::store::forward::TrackingRecord,
            )>,
        ) -> $crate::store::forward::Result<()> {
            self.around(|| self.$inner.track_batch(items))
        }
        fn checkpoint(
            &self,
            owner: $crate::store::forward::UserId,
            mailbox: &str,
            folder: &str,
        ) -> $crate::store::forward::Result<Option<$crate::store::forward::FolderCheckpoint>> {
            self.around(|| self.$inner.checkpoint(owner, mailbox, folder))
        }
        fn put_checkpoint(
            &self,
            owner: $crate::store::forward::UserId,
            mailbox: &str,
            folder: &str,
            checkpoint: &$crate::store::forward::FolderCheckpoint,
        ) -> $crate::store::forward::Result<()> {
            self.around(|| {
                self.$inner
                    .put_checkpoint(owner, mailbox, folder, checkpoint)
            })
        }
        fn checkpoints(
            &self,
            owner: $crate::store::forward::UserId,
            mailbox: &str,
        ) -> $crate::store::forward::Result<Vec<(String, $crate::store::forward::FolderCheckpoint)>>
        {
            self.around(|| self.$inner.checkpoints(owner, mailbox))
        }
        fn put_tracked(
            &self,
            activities: Vec<$crate::store::forward::Activity>,
            tracking: Vec<$crate::store::forward::TrackingRecord>,
        ) -> $crate::store::forward::Result<(
            Vec<$crate::store::forward::Activity>,
            Vec<$crate::store::forward::TrackingRecord>,
        )> {
            self.around(|| self.$inner.put_tracked(activities, tracking))
        }
        fn put_tracked_with_checkpoint(
            &self,
            activities: Vec<$crate::store::forward::Activity>,
            tracking: Vec<$crate::store::forward::TrackingRecord>,
            checkpoint: &$crate::store::forward::MailboxCheckpoint,
        ) -> $crate::store::forward::Result<(
            Vec<$crate::store::forward::Activity>,
            Vec<$crate::store::forward::TrackingRecord>,
        )> {
            self.around(|| {
                self.$inner
                    .put_tracked_with_checkpoint(activities, tracking, checkpoint)
            })
        }
        fn delete_tracking(
            &self,
            owner: $crate::store::forward::UserId,
            message_id: &$crate::store::forward::MessageId,
        ) -> $crate::store::forward::Result<bool> {
            self.around(|| self.$inner.delete_tracking(owner, message_id))
        }
        fn pending_tracking(
            &self,
            owner: Option<$crate::store::forward::UserId>,
            limit: usize,
        ) -> $crate::store::forward::Result<Vec<$crate::store::forward::TrackingRecord>> {
            self.around(|| self.$inner.pending_tracking(owner, limit))
        }
        fn tracking_of_message(
            &self,
            message_id: &$crate::store::forward::MessageId,
        ) -> $crate::store::forward::Result<Vec<$crate::store::forward::TrackingRecord>> {
            self.around(|| self.$inner.tracking_of_message(message_id))
        }
        fn tracking_at(
            &self,
            owner: $crate::store::forward::UserId,
            location: &$crate::store::forward::MessageLocation,
        ) -> $crate::store::forward::Result<Option<$crate::store::forward::TrackingRecord>> {
            self.around(|| self.$inner.tracking_at(owner, location))
        }
        fn emails_by_thread_index(
            &self,
            thread_index: &str,
            limit: usize,
        ) -> $crate::store::forward::Result<Vec<$crate::store::forward::Activity>> {
            self.around(|| self.$inner.emails_by_thread_index(thread_index, limit))
        }
        fn email_by_tracking_token(
            &self,
            token: &str,
        ) -> $crate::store::forward::Result<Option<$crate::store::forward::Activity>> {
            self.around(|| self.$inner.email_by_tracking_token(token))
        }
        fn appointment_by_uid(
            &self,
            uid: &str,
        ) -> $crate::store::forward::Result<Option<$crate::store::forward::Activity>> {
            self.around(|| self.$inner.appointment_by_uid(uid))
        }
        fn appointments_by_uid(
            &self,
            uid: &str,
        ) -> $crate::store::forward::Result<Vec<$crate::store::forward::Activity>> {
            self.around(|| self.$inner.appointments_by_uid(uid))
        }
        fn resolve_address(
            &self,
            address: &$crate::store::forward::EmailAddress,
        ) -> $crate::store::forward::Result<Vec<$crate::store::forward::RecordRef>> {
            self.around(|| self.$inner.resolve_address(address))
        }
        fn user_by_login(
            &self,
            login: &$crate::store::forward::EmailAddress,
        ) -> $crate::store::forward::Result<Option<$crate::store::forward::SystemUser>> {
            self.around(|| self.$inner.user_by_login(login))
        }
        fn user_by_mailbox_login(
            &self,
            login: &str,
        ) -> $crate::store::forward::Result<Option<$crate::store::forward::SystemUser>> {
            self.around(|| self.$inner.user_by_mailbox_login(login))
        }
        fn search(
            &self,
            query: &$crate::store::forward::SearchQuery,
        ) -> $crate::store::forward::Result<Vec<$crate::store::forward::SearchHit>> {
            self.around(|| self.$inner.search(query))
        }
        fn users(&self) -> $crate::store::forward::Result<Vec<$crate::store::forward::SystemUser>> {
            self.around(|| self.$inner.users())
        }
        fn set_privilege(
            &self,
            user: $crate::store::forward::UserId,
            privilege: $crate::store::forward::Privilege,
            on: bool,
        ) -> $crate::store::forward::Result<$crate::store::forward::SystemUser> {
            self.around(|| self.$inner.set_privilege(user, privilege, on))
        }
        fn set_delegate(
            &self,
            owner: $crate::store::forward::UserId,
            delegate: $crate::store::forward::UserId,
            on: bool,
        ) -> $crate::store::forward::Result<$crate::store::forward::SystemUser> {
            self.around(|| self.$inner.set_delegate(owner, delegate, on))
        }
        fn may_act_for(
            &self,
            actor: $crate::store::forward::UserId,
            owner: $crate::store::forward::UserId,
        ) -> $crate::store::forward::Result<bool> {
            self.around(|| self.$inner.may_act_for(actor, owner))
        }
        fn user_list(
            &self,
            user: $crate::store::forward::UserId,
            list: $crate::store::forward::UserList,
        ) -> $crate::store::forward::Result<Vec<$crate::store::forward::ListEntry>> {
            self.around(|| self.$inner.user_list(user, list))
        }
        fn set_favourite(
            &self,
            user: $crate::store::forward::UserId,
            record: $crate::store::forward::RecordRef,
            on: bool,
        ) -> $crate::store::forward::Result<bool> {
            self.around(|| self.$inner.set_favourite(user, record, on))
        }
        fn note_viewed(
            &self,
            user: $crate::store::forward::UserId,
            record: $crate::store::forward::RecordRef,
        ) -> $crate::store::forward::Result<()> {
            self.around(|| self.$inner.note_viewed(user, record))
        }
        fn snoozed(
            &self,
            user: $crate::store::forward::UserId,
        ) -> $crate::store::forward::Result<Vec<$crate::store::forward::Snoozed>> {
            self.around(|| self.$inner.snoozed(user))
        }
        fn snooze(
            &self,
            user: $crate::store::forward::UserId,
            card: &str,
            until: $crate::store::forward::DateTime<$crate::store::forward::Utc>,
        ) -> $crate::store::forward::Result<()> {
            self.around(|| self.$inner.snooze(user, card, until))
        }
        fn settings(&self) -> $crate::store::forward::Result<$crate::store::forward::OrgSettings> {
            self.around(|| self.$inner.settings())
        }
        fn put_settings(
            &self,
            settings: $crate::store::forward::OrgSettings,
        ) -> $crate::store::forward::Result<()> {
            self.around(|| self.$inner.put_settings(settings))
        }
        fn put_blob(
            &self,
            bytes: &[u8],
        ) -> $crate::store::forward::Result<$crate::store::forward::BlobRef> {
            self.around(|| self.$inner.put_blob(bytes))
        }
        fn blob(
            &self,
            blob: &$crate::store::forward::BlobRef,
        ) -> $crate::store::forward::Result<Vec<u8>> {
            self.around(|| self.$inner.blob(blob))
        }
        fn put_blobs(
            &self,
            blobs: &[&[u8]],
        ) -> $crate::store::forward::Result<Vec<$crate::store::forward::BlobRef>> {
            self.around(|| self.$inner.put_blobs(blobs))
        }
        fn export(&self) -> $crate::store::forward::Result<$crate::store::forward::ExportBundle> {
            self.around(|| self.$inner.export())
        }
        fn import_bundle(
            &self,
            bundle: &$crate::store::forward::ExportBundle,
        ) -> $crate::store::forward::Result<$crate::store::forward::ImportSummary> {
            self.around(|| self.$inner.import_bundle(bundle))
        }
        fn put_records_bulk(
            &self,
            records: Vec<$crate::store::forward::Record>,
            progress: &mut dyn FnMut(usize),
        ) -> $crate::store::forward::Result<()> {
            self.around(|| self.$inner.put_records_bulk(records, progress))
        }
    };
}
