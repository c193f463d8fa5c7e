//! What one mailbox's worker is told (issue 13: the gateway's mailbox task and
//! `serve`'s sync worker are one code path): where its server is, where its login
//! comes from (a session's, or the gateway's credential), which folders it
//! watches and under which rules, whether it keeps checkpoints, how many
//! connections it may hold, how it backs off, and where it reports its state.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;

use crate::imap_client::connect::UpstreamConnector;
use crate::imap_client::folders::SpecialUse;
use crate::imap_client::Credential;
use crate::store::RecordRef;
use crate::track::MailboxRules;

/// Where a worker's login comes from.
#[derive(Debug, Clone)]
pub enum CredentialSource {
    /// The newest login of a session through the proxy (this one until another
    /// comes); a refused one is not tried again until a session brings a new one.
    Sessions(Credential),
    /// The gateway's credential for this mailbox; a refused one is tried again
    /// after the longest back-off (or when the gateway re-reads its config).
    Fixed(Credential),
}

/// How a watched folder is named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FolderName {
    /// As the server names it (`INBOX`, `Projects/Contoso`).
    Named(String),
    /// The folder the server marks with this special use (found by LIST).
    Special(SpecialUse),
}

/// What new mail in a watched folder goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FolderRole {
    /// The automatic-tracking rules (INBOX, and any folder a gateway watches).
    Incoming,
    /// Replies saved in Sent that answer tracked email.
    Sent,
}

/// One folder a worker watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedFolder {
    pub name: FolderName,
    pub role: FolderRole,
}

/// Exponential back-off with jitter between reconnects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The pause before attempt `n` (0 = the first retry): `first · 2ⁿ`, capped
    /// at `max`, then a random half of it taken off (so that many mailboxes of
    /// one server that failed together do not come back together).
    pub fn pause(&self, n: u32) -> Duration {
        let full = self
            .first
            .saturating_mul(1u32.checked_shl(n.min(16)).unwrap_or(u32::MAX))
            .min(self.max);
        if self.first == self.max {
            return full;
        }
        let jitter = random_fraction();
        full.mul_f64(0.5 + 0.5 * jitter)
    }
}

/// A number in [0, 1) from the standard library's randomly keyed hasher.
fn random_fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Where a mailbox's worker stands, for `gateway status`, `/metrics` and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailboxState {
    Starting,
    Connecting,
    /// Caught up, waiting in IDLE.
    Idle,
    /// Working through new mail.
    Syncing,
    /// The last attempt failed; retrying after a back-off.
    Error,
    Stopped,
}

/// One mailbox's live status, written by its worker, read by the gateway.
#[derive(Debug)]
pub struct MailboxStatus {
    inner: Mutex<StatusFields>,
    /// Folder → what is wrong with it.
    problems: Mutex<BTreeMap<String, String>>,
    pub tracked: AtomicU64,
    pub skipped: AtomicU64,
    pub failed: AtomicU64,
    pub connections: AtomicU64,
    /// Folders whose starting point is known and that are being watched.
    pub folders_watched: AtomicU64,
}

/// A copy of a status's fields.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StatusFields {
    pub state: MailboxState,
    pub last_sync: Option<DateTime<Utc>>,
    /// Messages found new and not judged yet.
    pub backlog: u64,
    pub last_error: Option<String>,
    /// What stays wrong while the rest works (a watched folder that is gone):
    /// the mailbox shows in error until it is set right.
    #[serde(default)]
    pub problem: Option<String>,
}

impl Default for MailboxStatus {
    fn default() -> Self {
        MailboxStatus {
            inner: Mutex::new(StatusFields {
                state: MailboxState::Starting,
                last_sync: None,
                backlog: 0,
                last_error: None,
                problem: None,
            }),
            problems: Mutex::new(BTreeMap::new()),
            tracked: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            folders_watched: AtomicU64::new(0),
        }
    }
}

impl MailboxStatus {
    fn with(&self, f: impl FnOnce(&mut StatusFields)) {
        f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()))
    }
    pub fn fields(&self) -> StatusFields {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    /// While a folder stays wrong the mailbox shows in error, whatever the
    /// rest is doing: an administrator reading the status must see it.
    pub fn set_state(&self, state: MailboxState) {
        self.with(|s| {
            s.state = match (&s.problem, state) {
                (Some(_), MailboxState::Stopped) | (None, _) => state,
                (Some(_), _) => MailboxState::Error,
            }
        })
    }
    /// Something failed: the error is kept until the next successful sync.
    pub fn error(&self, text: String) {
        self.with(|s| {
            s.state = MailboxState::Error;
            s.last_error = Some(text);
        })
    }
    pub fn backlog(&self, n: u64) {
        self.with(|s| s.backlog = n)
    }
    /// What stays wrong with one folder while the rest works (`None`: set right).
    pub fn folder_problem(&self, folder: &str, text: Option<String>) {
        let mut p = self.problems.lock().unwrap_or_else(|e| e.into_inner());
        match text {
            Some(t) => p.insert(folder.to_string(), t),
            None => p.remove(folder),
        };
        let all = (!p.is_empty()).then(|| p.values().cloned().collect::<Vec<_>>().join("; "));
        drop(p);
        self.with(|s| {
            if all.is_some() && s.state != MailboxState::Stopped {
                s.state = MailboxState::Error;
            }
            s.problem = all
        })
    }
    /// A folder was caught up.
    pub fn synced(&self) {
        self.with(|s| {
            s.last_sync = Some(Utc::now());
            s.backlog = 0;
            s.last_error = s.problem.clone();
            if s.state != MailboxState::Stopped {
                s.state = match s.problem {
                    Some(_) => MailboxState::Error,
                    None => MailboxState::Idle,
                };
            }
        })
    }
    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// One mailbox's worker, as `serve` (per logged-in user) or the gateway (per
/// configured mailbox) starts it.
pub struct MailboxPlan {
    /// The mailbox's name among the workers (serve: the owner's login; the
    /// gateway: the name in its config), also the checkpoints' key.
    pub key: String,
    /// The CRM user whose mailbox it is (their login e-mail).
    pub owner: String,
    pub connector: UpstreamConnector,
    pub credentials: CredentialSource,
    pub folders: Vec<WatchedFolder>,
    pub rules: MailboxRules,
    /// Folder (as watched) → the record its new mail is regarding.
    pub folder_regarding: BTreeMap<String, RecordRef>,
    /// Resume each folder after its stored checkpoint (the gateway) instead of
    /// starting at the newest message (serve, whose proxy sees what clients do).
    pub checkpoints: bool,
    /// At most this many connections (the job connection, if any, counts).
    pub max_connections: usize,
    /// A connection of the whole server's budget is held for each connection.
    pub budget: Option<Arc<Semaphore>>,
    pub backoff: Backoff,
    /// Keep a connection for jobs from sessions and the pane (serve). Without
    /// it (the gateway) the watchers also sweep, and nothing else is created on
    /// the server (no tracking folder).
    pub job_connection: bool,
    /// How long one IDLE lasts before the folders are looked at again.
    pub idle_for: Duration,
    /// Where the server has NOTIFY (RFC 5465), watch every folder on one
    /// connection told of new mail in all of them.
    pub notify: bool,
    pub status: Arc<MailboxStatus>,
}

impl MailboxPlan {
    /// `serve`'s worker for a user who logged in through the proxy: INBOX and
    /// Sent, the user's own options, a job connection, no checkpoints.
    pub fn for_session(
        owner: &str,
        connector: UpstreamConnector,
        credential: Credential,
        sync_interval: Duration,
    ) -> MailboxPlan {
        MailboxPlan {
            key: owner.to_string(),
            owner: owner.to_string(),
            connector,
            credentials: CredentialSource::Sessions(credential),
            folders: default_folders(),
            rules: MailboxRules::default(),
            folder_regarding: BTreeMap::new(),
            checkpoints: false,
            max_connections: usize::MAX,
            budget: None,
            backoff: Backoff {
                first: super::user::RECONNECT_PAUSE,
                max: super::user::RECONNECT_PAUSE,
            },
            job_connection: true,
            idle_for: sync_interval
                .min(Duration::from_secs(29 * 60))
                .max(Duration::from_secs(1)),
            notify: true,
            status: Arc::new(MailboxStatus::default()),
        }
    }

    /// The folders split between the watch connections this mailbox may open:
    /// each group is watched on one connection (IDLE on its first folder).
    pub fn watch_groups(&self) -> Vec<Vec<WatchedFolder>> {
        self.watch_groups_within(self.max_connections)
    }

    /// The folders all on one connection (the server has NOTIFY).
    pub fn one_watch_group(&self) -> Vec<Vec<WatchedFolder>> {
        self.watch_groups_within(usize::from(self.job_connection) + 1)
    }

    fn watch_groups_within(&self, max_connections: usize) -> Vec<Vec<WatchedFolder>> {
        let spare = max_connections
            .saturating_sub(usize::from(self.job_connection))
            .max(1);
        let n = self.folders.len().min(spare).max(1);
        let mut groups = vec![Vec::new(); n];
        for (i, f) in self.folders.iter().enumerate() {
            groups[i % n].push(f.clone());
        }
        groups.retain(|g| !g.is_empty());
        groups
    }
}

/// INBOX (rules) and the Sent folder (replies): what a worker watches by default.
pub fn default_folders() -> Vec<WatchedFolder> {
    vec![
        WatchedFolder {
            name: FolderName::Named("INBOX".into()),
            role: FolderRole::Incoming,
        },
        WatchedFolder {
            name: FolderName::Special(SpecialUse::Sent),
            role: FolderRole::Sent,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_up_to_its_cap_with_jitter_below() {
        let b = Backoff {
            first: Duration::from_secs(1),
            max: Duration::from_secs(60),
        };
        for n in 0..20 {
            let full = Duration::from_secs(1u64 << n.min(6)).min(Duration::from_secs(60));
            let p = b.pause(n);
            assert!(p <= full && p >= full / 2, "{n}: {p:?} vs {full:?}");
        }
        let fixed = Backoff {
            first: Duration::from_secs(5),
            max: Duration::from_secs(5),
        };
        assert_eq!(fixed.pause(7), Duration::from_secs(5));
    }

    #[test]
    fn a_folder_s_problem_keeps_the_mailbox_in_error_while_the_rest_syncs() {
        let status = MailboxStatus::default();
        status.folder_problem("Gone", Some("cannot watch folder Gone".into()));
        assert_eq!(status.fields().state, MailboxState::Error);
        status.set_state(MailboxState::Syncing);
        assert_eq!(status.fields().state, MailboxState::Error);
        status.synced();
        assert_eq!(status.fields().state, MailboxState::Error);
        status.set_state(MailboxState::Stopped);
        assert_eq!(status.fields().state, MailboxState::Stopped);
        status.folder_problem("Gone", None);
        status.set_state(MailboxState::Syncing);
        assert_eq!(status.fields().state, MailboxState::Syncing);
        status.synced();
        assert_eq!(status.fields().state, MailboxState::Idle);
    }
}
