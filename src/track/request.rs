//! What a caller asks of the engine ([`TrackRequest`], [`TrackSource`]), who asks
//! ([`Actor`]) and what it gets back ([`Tracked`], [`AutoDecision`]).

use serde::{Deserialize, Serialize};

use crate::message::TrackingHeaders;
use crate::store::{Activity, MessageLocation, RecordRef, SystemUser, TrackingRecord, UserId};

/// How a tracking request came in (recorded in `TrackingRecord::via`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "folder", rename_all = "snake_case")]
pub enum TrackSource {
    /// The client set the request keyword (`$CRM_Track`).
    Keyword,
    /// Copied or moved into a tracking folder (its name as the client uses it).
    Folder(String),
    /// Appended by the client with a tracking request attached (draft, sent copy).
    Append,
    /// A button of the pane.
    Pane,
    /// `crmproxy track FILE.eml`.
    Cli,
    /// Automatic tracking of new INBOX mail (see [`super::Engine::auto_decision`]).
    Automatic,
    /// A message in Sent that replies to tracked email (see [`super::Engine::on_sent`]).
    Sent,
}

impl TrackSource {
    /// The `via` text kept on the tracking record.
    pub fn as_via(&self) -> String {
        match self {
            TrackSource::Keyword => "keyword".into(),
            TrackSource::Folder(f) => format!("folder:{f}"),
            TrackSource::Append => "append".into(),
            TrackSource::Pane => "pane".into(),
            TrackSource::Cli => "cli".into(),
            TrackSource::Automatic => "automatic".into(),
            TrackSource::Sent => "sent".into(),
        }
    }

    /// Read a `via` text back (unknown texts count as [`TrackSource::Pane`]).
    pub fn from_via(via: &str) -> TrackSource {
        match via {
            "keyword" => TrackSource::Keyword,
            "append" => TrackSource::Append,
            "cli" => TrackSource::Cli,
            "automatic" => TrackSource::Automatic,
            "sent" => TrackSource::Sent,
            v => match v.strip_prefix("folder:") {
                Some(f) => TrackSource::Folder(f.to_string()),
                None => TrackSource::Pane,
            },
        }
    }
}

/// One request to track a message (or to set its regarding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackRequest {
    pub source: TrackSource,
    /// Regarding chosen by the user; beats every other rule of SPEC section 5.
    pub regarding: Option<RecordRef>,
    /// Where the message is in the owner's mailbox (for `tracking_at` and the sync worker).
    pub location: Option<MessageLocation>,
    /// The regarding record is a contact created in this same action ("add as
    /// contact" from an unknown sender); delegates are refused it.
    pub regarding_is_new_contact: bool,
    /// A rule's regarding (a gateway's folder mapping): resolved like a folder
    /// mapping, but never replacing a regarding a person chose for the message.
    pub rule_regarding: Option<RecordRef>,
    /// Privacy mode: keep the message's header only (no body text, no
    /// attachments, the stored original cut after the header).
    pub headers_only: bool,
}

impl TrackRequest {
    /// A request from `source` with nothing else set.
    pub fn new(source: TrackSource) -> Self {
        TrackRequest {
            source,
            regarding: None,
            location: None,
            regarding_is_new_contact: false,
            rule_regarding: None,
            headers_only: false,
        }
    }
    pub fn regarding(mut self, r: RecordRef) -> Self {
        self.regarding = Some(r);
        self
    }
    pub fn at(mut self, location: MessageLocation) -> Self {
        self.location = Some(location);
        self
    }
}

/// Who acts on which mailbox: the owner (authzid, or the login) and the user who
/// signed in (authcid), resolved to CRM users by [`super::Engine::actor`]. Both
/// have `use_app`, and the acting user is the owner or one of their delegates.
#[derive(Debug, Clone, PartialEq)]
pub struct Actor {
    pub(crate) owner: SystemUser,
    pub(crate) acting: SystemUser,
}

impl Actor {
    pub fn owner(&self) -> &SystemUser {
        &self.owner
    }
    pub fn acting(&self) -> &SystemUser {
        &self.acting
    }
    pub fn owner_id(&self) -> UserId {
        self.owner.id
    }
    pub fn acting_id(&self) -> UserId {
        self.acting.id
    }
    /// The acting user is a delegate, not the owner.
    pub fn is_delegate(&self) -> bool {
        self.owner.id != self.acting.id
    }
}

/// The result of tracking one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Tracked {
    /// The email activity (one per Message-ID, shared by every mailbox).
    pub activity: Activity,
    /// The appointment activity, for a meeting request (absent while a recurring
    /// meeting is pending).
    pub appointment: Option<Activity>,
    /// This mailbox's tracking record (`Tracked`, or `Pending` for a recurring
    /// meeting whose appointment the sync worker completes).
    pub record: TrackingRecord,
    /// Whether this call created the email activity (false: found by Message-ID).
    pub created: bool,
    /// What the proxy shows at the top of the message.
    pub headers: TrackingHeaders,
}

/// Whether new INBOX mail is tracked automatically, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutoDecision {
    Track,
    Skip(SkipReason),
}

/// Why automatic tracking left a message alone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkipReason {
    #[error("automatic tracking is off for this user")]
    Off,
    #[error("the user may not use the CRM app")]
    NoPrivilege,
    #[error("bulk mail ({0})")]
    Bulk(String),
    #[error("{0} is on an ignore list")]
    Ignored(String),
    #[error("every party is inside the organisation")]
    Internal,
    #[error("not a reply to tracked email")]
    NotAReplyToTracked,
    #[error("the sender is not a contact, lead or account")]
    NotFromContactLeadAccount,
    #[error("the sender is not a CRM record with an e-mail address")]
    NotFromRecord,
}
