//! The tracking engine (SPEC sections 3, 5 and 8): between the IMAP proxy (and the
//! pane, the CLI, the sync worker) and the CRM store.
//!
//! It turns a raw message into an email activity (and, for a meeting request, an
//! appointment activity), links the parties, finds the regarding record, and keeps
//! one tracking record per (owner mailbox, Message-ID). It is synchronous over
//! `Arc<dyn CrmStore>`: async callers use `tokio::task::spawn_blocking`.
//!
//! Typical use by the proxy:
//! ```no_run
//! # use std::sync::Arc;
//! # use crmproxy::track::*;
//! # fn demo(store: Arc<dyn crmproxy::store::CrmStore>, raw: &[u8]) -> Result<(), TrackError> {
//! let engine = Engine::new(store, crmproxy::config::TrackingConfig::default())?;
//! let actor = engine.actor("owner@contoso.example", "owner@contoso.example")?;
//! let tracked = engine.track(&actor, raw, TrackRequest::new(TrackSource::Keyword))?;
//! let block = tracked.headers.render(); // X-CRM-* lines for a new copy's header
//! # let _ = block; Ok(()) }
//! ```
//!
//! Rules worth knowing:
//! - **Message-ID**: the activity is keyed by it; a message without one gets a
//!   stable synthetic id, `<SHA-256 of the raw bytes, hex>@sha256.crmproxy.invalid`,
//!   so tracking the same bytes twice still finds one activity.
//! - **One activity per Message-ID** however many mailboxes track it; the first
//!   tracker's mailbox owns it; each mailbox has its own tracking record.
//! - **Nothing half-written**: everything is validated first, the raw message is
//!   stored (and flushed) as a blob, then activities and the tracking record are
//!   written in one atomic store change ([`CrmStore::put_tracked`]).
//! - **Automatic tracking** judges only new INBOX mail: the caller passes only
//!   INBOX mail to [`Engine::auto_decision`]. What a user tracks by hand always tracks.

mod append;
mod appointment;
mod auto;
mod email;
mod engine;
mod error;
mod ingest;
mod new_mail;
mod regarding;
mod request;
pub mod tz;

pub use append::{starts_with_block, AppendBlock};
pub use auto::MailboxRules;
pub use email::{message_id_lenient, synthetic_message_id};
pub use error::TrackError;
pub use new_mail::{Judged, NewMail};
pub use regarding::Resolution;
pub use request::{Actor, AutoDecision, SkipReason, TrackRequest, TrackSource, Tracked};

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::TrackingConfig;
use crate::store::{CrmStore, Privilege, Record, RecordRef, SystemUser, UserId};

/// How many times the sync worker retries a pending request before it is `failed`.
pub const MAX_ATTEMPTS: u32 = 5;

/// The tracking engine. Cheap to share (`Arc<Engine>`); holds no per-session state.
pub struct Engine {
    store: Arc<dyn CrmStore>,
    cfg: TrackingConfig,
    /// Folder → regarding record, from `TrackingConfig::folder_regarding`.
    folder_regarding: BTreeMap<String, RecordRef>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("folder_regarding", &self.folder_regarding)
            .finish()
    }
}

impl Engine {
    /// An engine over `store`. Checks the folder mappings of `cfg`
    /// (`"type:uuid"` naming an existing record that can be regarding).
    pub fn new(store: Arc<dyn CrmStore>, cfg: TrackingConfig) -> Result<Engine, TrackError> {
        let mut folder_regarding = BTreeMap::new();
        for (folder, value) in &cfg.folder_regarding {
            let bad = |reason: String| TrackError::BadFolderMapping {
                folder: folder.clone(),
                value: value.clone(),
                reason,
            };
            let r = parse_record_ref(value).map_err(bad)?;
            match store.record(r.id)? {
                Some(rec) if rec.kind() == r.kind && r.kind.can_be_regarding() => {}
                Some(rec) if rec.kind() != r.kind => {
                    return Err(bad(format!(
                        "{} is of type {}, not {}",
                        r.id,
                        rec.kind(),
                        r.kind
                    )))
                }
                Some(_) => return Err(bad(format!("a {} cannot be regarding", r.kind))),
                None => return Err(bad("no such record".into())),
            }
            folder_regarding.insert(folder.clone(), r);
        }
        Ok(Engine {
            store,
            cfg,
            folder_regarding,
        })
    }

    pub fn store(&self) -> &Arc<dyn CrmStore> {
        &self.store
    }
    pub fn config(&self) -> &TrackingConfig {
        &self.cfg
    }

    /// Resolve IMAP identities to CRM users: `owner_login` is the mailbox (the SASL
    /// authzid, or the login), `acting_login` who signed in (the authcid). Refused
    /// when either is unknown, lacks `use_app`, or the acting user is not the
    /// owner's delegate.
    pub fn actor(&self, owner_login: &str, acting_login: &str) -> Result<Actor, TrackError> {
        let owner = self.user_by_login(owner_login)?;
        let acting = if acting_login.trim().is_empty() || same_login(owner_login, acting_login) {
            owner.clone()
        } else {
            self.user_by_login(acting_login)?
        };
        check_actor(owner, acting)
    }

    /// [`Engine::actor`] by user ids (the sync worker, the pane).
    pub fn actor_by_id(&self, owner: UserId, acting: UserId) -> Result<Actor, TrackError> {
        let owner = self.user_by_id(owner)?;
        let acting = if acting == owner.id {
            owner.clone()
        } else {
            self.user_by_id(acting)?
        };
        check_actor(owner, acting)
    }

    /// The actor again, fresh from the store (privileges may have changed since
    /// the session signed in).
    pub(crate) fn refresh(&self, actor: &Actor) -> Result<Actor, TrackError> {
        self.actor_by_id(actor.owner.id, actor.acting.id)
    }

    /// May the pane offer tracking of the owner's contacts (address-book sync)?
    /// Delegates may not (SPEC section 8).
    pub fn check_may_track_contacts(&self, actor: &Actor) -> Result<(), TrackError> {
        if actor.is_delegate() {
            return Err(TrackError::DelegateContacts);
        }
        Ok(())
    }

    /// The keyword that shows a status (`tracked` or `pending`); none for `failed`.
    pub fn keywords_for(&self, status: &crate::store::TrackStatus) -> Option<&str> {
        use crate::store::TrackStatus;
        match status {
            TrackStatus::Tracked => Some(&self.cfg.tracked_keyword),
            TrackStatus::Pending => Some(&self.cfg.pending_keyword),
            TrackStatus::Failed { .. } => None,
        }
    }

    /// The keyword a client sets to ask for tracking.
    pub fn request_keyword(&self) -> &str {
        &self.cfg.request_keyword
    }

    /// Whether copying or moving into `folder` tracks (the tracking folder, a
    /// mapped folder, or one of the organisation's tracking folders).
    pub fn is_tracking_folder(&self, folder: &str) -> Result<bool, TrackError> {
        Ok(folder == self.cfg.track_folder
            || self.folder_regarding.contains_key(folder)
            || self
                .store
                .settings()?
                .tracking_folders
                .iter()
                .any(|f| f == folder))
    }

    /// The regarding record a tracking folder maps to, if any.
    pub fn folder_regarding(&self, folder: &str) -> Option<RecordRef> {
        self.folder_regarding.get(folder).copied()
    }

    fn user_by_login(&self, login: &str) -> Result<SystemUser, TrackError> {
        let unknown = || TrackError::UnknownUser {
            login: login.trim().to_string(),
        };
        self.store.user_by_mailbox_login(login)?.ok_or_else(unknown)
    }

    fn user_by_id(&self, id: UserId) -> Result<SystemUser, TrackError> {
        match self.store.record(id.uuid())? {
            Some(Record::User(u)) => Ok(u),
            _ => Err(TrackError::UnknownUser {
                login: format!("user {id}"),
            }),
        }
    }
}

fn same_login(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

fn check_actor(owner: SystemUser, acting: SystemUser) -> Result<Actor, TrackError> {
    let primary = |u: &SystemUser| {
        u.logins
            .first()
            .map(|l| l.to_string())
            .unwrap_or_else(|| u.full_name.clone())
    };
    if !acting.has(Privilege::UseApp) {
        return Err(TrackError::NoPrivilege {
            user: primary(&acting),
        });
    }
    if acting.id != owner.id {
        if !owner.delegates.contains(&acting.id) {
            return Err(TrackError::NotDelegate {
                acting: primary(&acting),
                owner: primary(&owner),
            });
        }
        if !owner.has(Privilege::UseApp) {
            return Err(TrackError::NoPrivilege {
                user: primary(&owner),
            });
        }
    }
    Ok(Actor { owner, acting })
}

/// Parse `type:uuid` (as in `folder_regarding` and `--regarding`).
pub fn parse_record_ref(s: &str) -> Result<RecordRef, String> {
    let (kind, id) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not TYPE:UUID (e.g. account:0190…)"))?;
    let kind: crate::store::Kind = kind.parse()?;
    let id = uuid::Uuid::parse_str(id.trim()).map_err(|e| format!("{id:?} is not a UUID: {e}"))?;
    Ok(RecordRef { kind, id })
}
