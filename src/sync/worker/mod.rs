//! The sync worker (SPEC section 5): per logged-in mailbox, a task with its own
//! upstream connection that completes what sessions ask for (fetch the message,
//! track it, set the state keywords), watches INBOX with IDLE for automatic
//! tracking, and sweeps pending requests every sync interval.
//!
//! Credentials: the worker keeps the credential the client logged in with, in
//! memory only (never logged, never written), to log in again on its own
//! connections. XOAUTH2/OAUTHBEARER tokens expire and cannot be refreshed by the
//! proxy, so those sessions get no worker: keyword and folder tracking needs a
//! LOGIN or AUTHENTICATE PLAIN session.

mod folders;
mod judge;
pub mod plan;
mod replace;
mod sweep;
mod user;
mod watches;

pub use crate::imap_client::{quoted, ClientError, ImapClient};

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use crate::events::{CleanupQueued, KeywordCleanup, MailboxSync, PaneEvents};
use crate::imap_client::connect::UpstreamConnector;
use crate::imap_client::folders::FolderLayout;
use crate::imap_client::Credential;
use crate::track::{Actor, Engine, TrackSource};

/// Which messages of a folder a job is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uids {
    /// Known UIDs.
    List(Vec<u32>),
    /// An IMAP UID set (`4:9,12`), expanded by the worker with UID SEARCH.
    Set(String),
    /// The messages carrying this keyword (`UID SEARCH KEYWORD`): a request set by
    /// sequence numbers the session had no UIDs for, or by a client that bypassed
    /// the proxy.
    Keyword(String),
}

/// Work for a mailbox's worker.
#[derive(Debug, Clone)]
pub enum Job {
    /// Track these messages (keyword set, copied into a tracking folder, appended).
    Track {
        actor: Actor,
        folder: String,
        uids: Uids,
        source: TrackSource,
    },
    /// A message the client saved in its Sent folder: tracked when it replies to
    /// tracked email (automatic tracking permitting).
    Sent {
        actor: Actor,
        folder: String,
        uid: u32,
    },
    /// End tracking of these messages (the tracked keyword was removed).
    Untrack {
        actor: Actor,
        folder: String,
        uids: Uids,
    },
    /// The pane untracked a message: take the state keywords off the server copy
    /// (the tracking record is gone already).
    ClearKeywords(KeywordCleanup),
    /// Complete this mailbox's pending requests now (the pane asked for one).
    SweepPending,
}

/// Jobs queued per mailbox before a caller is told the queue is full.
const QUEUE: usize = 1024;
/// Refusals kept per mailbox for its sessions to show (oldest dropped first).
const NOTICES: usize = 16;
/// Jobs kept per mailbox that has no worker yet (oldest dropped first).
const DEFERRED: usize = 1024;
/// How long a login's mailbox key is kept before the store is asked again.
const KEY_TTL: std::time::Duration = std::time::Duration::from_secs(300);
/// Logins whose keys are kept (expired ones go first when full).
const MAX_KEYS: usize = 10_000;

/// All mailboxes' workers. Cheap to clone.
#[derive(Clone)]
pub struct Workers {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub engine: Arc<Engine>,
    pub connector: UpstreamConnector,
    pub events: PaneEvents,
    pub sync_interval: Duration,
    pub shutdown: watch::Receiver<bool>,
    /// Bumped whenever tracking state changes: sessions drop their header caches.
    pub generation: AtomicU64,
    users: Mutex<HashMap<String, mpsc::Sender<Job>>>,
    /// Each mailbox's newest login (in memory only): a worker reconnecting after a
    /// password change uses the new one.
    credentials: Mutex<HashMap<String, Credential>>,
    /// Refusals of jobs (the engine's alert text) not yet shown, per mailbox.
    notices: Mutex<HashMap<String, VecDeque<String>>>,
    /// Jobs for mailboxes without a running worker, handed over when one starts
    /// (in memory: a restart of `serve` forgets them).
    deferred: Mutex<HashMap<String, VecDeque<Job>>>,
    /// Each login's mailbox key and when it was looked up (see [`Inner::key`]).
    keys: Mutex<HashMap<String, (String, std::time::Instant)>>,
    /// Each mailbox's folder layout, as its worker learned it (NAMESPACE).
    layouts: Mutex<HashMap<String, FolderLayout>>,
    /// What stands in the way of a mailbox's tracking until set right (a
    /// tracking folder the server refuses), shown by the pane on every page.
    problems: Mutex<HashMap<String, Vec<String>>>,
}

impl Inner {
    /// The key of `owner`'s mailbox: the CRM user's primary login when `owner`
    /// (an e-mail login or an IMAP user name such as `jsmith`) belongs to one,
    /// so that a session, the pane and the worker of one mailbox meet whatever
    /// name each signed in with; else the login itself. Asked on every command
    /// of a session, so the answer is kept ([`KEY_TTL`]); a login refreshes it.
    pub(crate) fn key(&self, owner: &str) -> String {
        let login = owner.trim().to_lowercase();
        {
            let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((key, at)) = keys.get(&login) {
                if at.elapsed() < KEY_TTL {
                    return key.clone();
                }
            }
        }
        self.refresh_key(&login)
    }

    /// Look `login`'s key up in the store and keep it.
    fn refresh_key(&self, login: &str) -> String {
        let key = match self.engine.store().user_by_mailbox_login(login) {
            Ok(Some(u)) => match u.logins.first() {
                Some(primary) => primary.to_string().to_lowercase(),
                None => login.to_string(),
            },
            // A store error: the login itself, not kept.
            Err(_) => return login.to_string(),
            Ok(None) => login.to_string(),
        };
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if keys.len() >= MAX_KEYS {
            keys.retain(|_, (_, at)| at.elapsed() < KEY_TTL);
        }
        keys.insert(login.to_string(), (key.clone(), std::time::Instant::now()));
        key
    }

    /// The newest credential a session of `owner` logged in with.
    pub(crate) fn credential(&self, owner: &str) -> Option<Credential> {
        let c = self.credentials.lock().unwrap_or_else(|e| e.into_inner());
        c.get(owner).cloned()
    }

    /// Jobs kept for `owner` while no worker ran (or its queue was full).
    pub(crate) fn take_deferred(&self, owner: &str) -> VecDeque<Job> {
        let mut d = self.deferred.lock().unwrap_or_else(|e| e.into_inner());
        d.remove(owner).unwrap_or_default()
    }

    /// `owner`'s worker learned the server's folder layout.
    pub(crate) fn learned_layout(&self, owner: &str, layout: FolderLayout) {
        let mut l = self.layouts.lock().unwrap_or_else(|e| e.into_inner());
        l.insert(owner.to_string(), layout);
    }

    /// Something that stands in the way of `owner`'s tracking (`None`: all is well
    /// again): kept until the worker finds otherwise, for the pane.
    pub(crate) fn set_problem(&self, owner: &str, text: Option<String>) {
        let mut p = self.problems.lock().unwrap_or_else(|e| e.into_inner());
        match text {
            Some(t) => {
                p.insert(self.key(owner), vec![t]);
            }
            None => {
                p.remove(&self.key(owner));
            }
        }
    }

    /// The engine refused a job of `owner`'s: a session of the owner shows `text`.
    pub(crate) fn notice(&self, owner: &str, text: String) {
        let mut n = self.notices.lock().unwrap_or_else(|e| e.into_inner());
        let q = n.entry(owner.to_string()).or_default();
        if q.len() >= NOTICES {
            q.pop_front();
        }
        q.push_back(text);
    }
}

impl Workers {
    pub fn new(
        engine: Arc<Engine>,
        connector: UpstreamConnector,
        events: PaneEvents,
        sync_interval: Duration,
        shutdown: watch::Receiver<bool>,
    ) -> Workers {
        Workers {
            inner: Arc::new(Inner {
                engine,
                connector,
                events,
                sync_interval,
                shutdown,
                generation: AtomicU64::new(0),
                users: Mutex::new(HashMap::new()),
                credentials: Mutex::new(HashMap::new()),
                notices: Mutex::new(HashMap::new()),
                deferred: Mutex::new(HashMap::new()),
                keys: Mutex::new(HashMap::new()),
                layouts: Mutex::new(HashMap::new()),
                problems: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.inner.engine
    }

    pub fn events(&self) -> &PaneEvents {
        &self.inner.events
    }

    /// The key `owner`'s mailbox is known by (see the pane's events).
    pub fn mailbox_key(&self, owner: &str) -> String {
        self.inner.key(owner)
    }

    /// The current tracking generation (changes after every tracking change).
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// A session of `owner` logged in with `credential`: start (or refresh) the
    /// owner's worker. The newest credential replaces an older one.
    pub fn login(&self, owner: &str, credential: Credential) {
        // A new login may follow a change of the user's names: ask the store.
        let key = self.inner.refresh_key(&owner.trim().to_lowercase());
        self.inner
            .credentials
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone(), credential.clone());
        let (tx, rx) = mpsc::channel(QUEUE);
        {
            let mut users = self.inner.users.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(old) = users.get(&key) {
                if !old.is_closed() {
                    return;
                }
            }
            users.insert(key.clone(), tx);
        }
        let plan = plan::MailboxPlan::for_session(
            &key,
            self.inner.connector.clone(),
            credential,
            self.inner.sync_interval,
        );
        let span = tracing::info_span!("sync worker", mailbox = %key);
        tokio::spawn(user::run(self.inner.clone(), Arc::new(plan), rx).instrument(span));
    }

    /// Start the worker of a mailbox the gateway watches (no sessions, no job
    /// queue): it runs until shutdown; the handle ends when it stopped.
    pub fn start_mailbox(&self, plan: Arc<plan::MailboxPlan>) -> tokio::task::JoinHandle<()> {
        // Nothing sends jobs to a gateway mailbox: the queue stays empty.
        let (_tx, rx) = mpsc::channel(1);
        let span = tracing::info_span!("mailbox", mailbox = %plan.key);
        tokio::spawn(user::run(self.inner.clone(), plan, rx).instrument(span))
    }

    /// The folder layout `owner`'s worker learned from the server, once it did.
    pub fn layout(&self, owner: &str) -> Option<FolderLayout> {
        let l = self.inner.layouts.lock().unwrap_or_else(|e| e.into_inner());
        l.get(&self.inner.key(owner)).cloned()
    }

    /// Refusals of `owner`'s jobs since the last call (the engine's alert texts),
    /// for a session to show; each is given to one session only.
    pub fn take_notices(&self, owner: &str) -> Vec<String> {
        let key = self.inner.key(owner);
        let mut n = self.inner.notices.lock().unwrap_or_else(|e| e.into_inner());
        n.remove(&key).map(Vec::from).unwrap_or_default()
    }

    /// Queue a job for `owner`'s worker. False when there is no worker (no
    /// replayable login) or its queue is full.
    pub fn submit(&self, owner: &str, job: Job) -> bool {
        let key = self.inner.key(owner);
        let users = self.inner.users.lock().unwrap_or_else(|e| e.into_inner());
        match users.get(&key) {
            Some(tx) => tx.try_send(job).is_ok(),
            None => false,
        }
    }

    /// Queue a job for `owner`'s worker, or keep it until a worker starts for
    /// `owner` (the next LOGIN/PLAIN session through the proxy).
    pub fn submit_or_defer(&self, owner: &str, job: Job) -> CleanupQueued {
        let key = self.inner.key(owner);
        let users = self.inner.users.lock().unwrap_or_else(|e| e.into_inner());
        let job = match users.get(&key) {
            Some(tx) if !tx.is_closed() => match tx.try_send(job) {
                Ok(()) => return CleanupQueued::Now,
                Err(mpsc::error::TrySendError::Full(j) | mpsc::error::TrySendError::Closed(j)) => j,
            },
            _ => job,
        };
        // The worker takes deferred jobs itself, before waiting for new ones.
        let mut deferred = self
            .inner
            .deferred
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let q = deferred.entry(key).or_default();
        if q.len() >= DEFERRED {
            q.pop_front();
        }
        q.push_back(job);
        CleanupQueued::WhenWorkerRuns
    }

    /// Tell sessions that tracking changed (they drop their header-block caches).
    pub fn bump_generation(&self) {
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
    }
}

impl MailboxSync for Workers {
    fn problems(&self, owner: &str) -> Vec<String> {
        let p = self
            .inner
            .problems
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        p.get(&self.inner.key(owner)).cloned().unwrap_or_default()
    }

    fn clear_tracking_keywords(&self, owner: &str, at: KeywordCleanup) -> CleanupQueued {
        self.submit_or_defer(owner, Job::ClearKeywords(at))
    }

    fn tracking_changed(&self) {
        self.bump_generation();
    }

    fn pending_requested(&self, owner: &str) -> CleanupQueued {
        self.submit_or_defer(owner, Job::SweepPending)
    }
}
