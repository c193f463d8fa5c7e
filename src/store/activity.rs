//! Activities (email, appointment, phone call, task) with owner, regarding and
//! parties; and tracking records: (owner mailbox, Message-ID) → activity.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::address::{EmailAddress, MessageId};
use super::blobs::BlobRef;
use super::ids::Id;
use super::model::{Kind, RecordRef, Stamps, UserId};

pub type ActivityId = Id<Activity>;

/// The part a person plays in an activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartyRole {
    Sender,
    To,
    Cc,
    Bcc,
    Organizer,
    RequiredAttendee,
    OptionalAttendee,
    /// The other side of a phone call or the person a task concerns.
    Participant,
}

/// One person in an activity: the address as seen, and the records it resolved to
/// (system user, contact, account, lead; possibly several, possibly none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Party {
    pub role: PartyRole,
    #[serde(default)]
    pub address: Option<EmailAddress>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub records: Vec<RecordRef>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    #[default]
    Incoming,
    Outgoing,
}

/// How a tracked email found its regarding record (SPEC section 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Correlation {
    InReplyTo,
    TrackingToken,
    ThreadIndex,
    FolderMapping,
    Explicit,
    #[default]
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentMeta {
    pub name: String,
    pub content_type: String,
    pub size: u64,
}

/// What the message says about S/MIME (no cryptography is done by the store; the
/// tracking engine fills this from `message::SmimeInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SmimeMeta {
    pub signed: bool,
    pub encrypted: bool,
    /// The first signer's e-mail address.
    pub signer: Option<String>,
    pub signing_time: Option<DateTime<Utc>>,
    /// `multipart-signed`, `opaque-signed` or `encrypted`.
    pub form: Option<String>,
    /// Every certificate the message carries (signers first).
    pub certificates: Vec<CertificateMeta>,
    /// Digest algorithm of the (first) signature: `sha256`, `sha1`, … or an OID.
    pub digest_algorithm: Option<String>,
    /// Every signature verifies over the exact bytes kept (CA trust not judged).
    pub verified: bool,
    /// Why a signature did not verify, or why the structure could not be read.
    pub problem: Option<String>,
}

/// One certificate of a signed message, as the CRM records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateMeta {
    pub subject: String,
    pub issuer: String,
    /// Serial number, lower-case hex.
    pub serial: String,
    #[serde(default)]
    pub email: Option<String>,
    /// SHA-256 of the DER certificate, lower-case hex.
    pub sha256: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmailActivity {
    pub message_id: MessageId,
    pub date: DateTime<Utc>,
    #[serde(default)]
    pub direction: Direction,
    #[serde(default)]
    pub body_text: String,
    #[serde(default)]
    pub in_reply_to: Option<MessageId>,
    #[serde(default)]
    pub references: Vec<MessageId>,
    #[serde(default)]
    pub thread_index: Option<String>,
    #[serde(default)]
    pub attachments: Vec<AttachmentMeta>,
    /// The whole message as received, in the blob store.
    #[serde(default)]
    pub raw: Option<BlobRef>,
    /// What makes this message this message ([`super::content_digest`]): two
    /// messages with one Message-ID are one activity only when their digests are
    /// equal. `None` for an activity kept without its original (an import).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_digest: Option<String>,
    #[serde(default)]
    pub smime: Option<SmimeMeta>,
    #[serde(default)]
    pub correlation: Correlation,
    /// The tracked email this one was correlated with.
    #[serde(default)]
    pub correlated_with: Option<ActivityId>,
}

/// The conversation part of an Outlook Thread-Index: its first 22 bytes (a
/// FILETIME and a GUID; each reply appends 5 bytes), as hex. A value that does
/// not decode is used as written. Emails with the same key are one thread.
pub fn thread_conversation(thread_index: &str) -> String {
    use base64::Engine;
    let t = thread_index.trim();
    match base64::engine::general_purpose::STANDARD.decode(t) {
        Ok(bytes) if bytes.len() >= 22 => hex::encode(&bytes[..22]),
        _ => t.to_string(),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppointmentActivity {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    #[serde(default)]
    pub location: String,
    /// iCalendar UID of the invitation.
    #[serde(default)]
    pub uid: Option<String>,
    /// The RRULE of a recurring meeting.
    #[serde(default)]
    pub recurrence: Option<String>,
    #[serde(default)]
    pub raw_invitation: Option<BlobRef>,
    #[serde(default)]
    pub message_id: Option<MessageId>,
    /// What the invitation's updates and cancellations changed, how its times
    /// read, and a recurring meeting's occurrences.
    #[serde(flatten, default)]
    pub calendar: CalendarState,
}

/// How an appointment's times read: instants (shown in the reader's zone), or
/// wall-clock times and dates that mean the same in every zone (kept as if UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Timing {
    #[default]
    Zoned,
    Floating,
    AllDay,
}

/// One meeting of a recurring series, its exceptions applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Occurrence {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The start the series' rule gave it (its RECURRENCE-ID when moved).
    pub original: DateTime<Utc>,
}

/// The iCalendar state of an appointment made from an invitation.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CalendarState {
    /// SEQUENCE of the invitation last applied (a lower one is stale).
    pub sequence: u32,
    pub cancelled: bool,
    pub timing: Timing,
    /// A recurring meeting's occurrences, bounded; empty for a single meeting.
    pub occurrences: Vec<Occurrence>,
}

impl AppointmentActivity {
    /// Each meeting as (start, end): the occurrences of a series, else the one.
    pub fn meetings(&self) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        if self.calendar.occurrences.is_empty() {
            vec![(self.start, self.end)]
        } else {
            self.calendar
                .occurrences
                .iter()
                .map(|o| (o.start, o.end))
                .collect()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhoneCallActivity {
    pub at: DateTime<Utc>,
    #[serde(default)]
    pub direction: Direction,
    #[serde(default)]
    pub phone_number: String,
    #[serde(default)]
    pub duration_minutes: u32,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    #[default]
    Open,
    Completed,
    Canceled,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskActivity {
    #[serde(default)]
    pub due: Option<DateTime<Utc>>,
    #[serde(default)]
    pub state: TaskState,
    #[serde(default)]
    pub description: String,
}

/// The kind-specific part of an activity.
// An email is the common case and is handled one at a time: boxing it would cost
// an allocation per activity read for no gain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ActivityDetails {
    Email(EmailActivity),
    Appointment(AppointmentActivity),
    PhoneCall(PhoneCallActivity),
    Task(TaskActivity),
}

/// Something that happened, owned by a CRM user, maybe regarding one record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    pub id: ActivityId,
    #[serde(flatten)]
    pub stamps: Stamps,
    pub owner: UserId,
    pub subject: String,
    #[serde(default)]
    pub regarding: Option<RecordRef>,
    #[serde(default)]
    pub parties: Vec<Party>,
    pub details: ActivityDetails,
}

/// The parts of an activity the X-CRM-* header block shows (regarding, S/MIME),
/// read from a stored activity without the rest: the proxy reads this for every
/// tracked message a client fetches, and the body text need not be decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderFacts {
    #[serde(default)]
    pub regarding: Option<RecordRef>,
    #[serde(default)]
    pub details: HeaderFactsDetails,
}

/// See [`HeaderFacts`]: only an e-mail's details have `smime`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderFactsDetails {
    #[serde(default)]
    pub smime: Option<SmimeMeta>,
}

impl From<&Activity> for HeaderFacts {
    fn from(a: &Activity) -> HeaderFacts {
        let smime = match &a.details {
            ActivityDetails::Email(e) => e.smime.clone(),
            _ => None,
        };
        HeaderFacts {
            regarding: a.regarding,
            details: HeaderFactsDetails { smime },
        }
    }
}

impl Activity {
    pub fn kind(&self) -> Kind {
        match self.details {
            ActivityDetails::Email(_) => Kind::Email,
            ActivityDetails::Appointment(_) => Kind::Appointment,
            ActivityDetails::PhoneCall(_) => Kind::PhoneCall,
            ActivityDetails::Task(_) => Kind::Task,
        }
    }
    pub fn as_ref(&self) -> RecordRef {
        RecordRef::new(self.kind(), self.id)
    }
    /// The time the activity is filed under in a record's timeline.
    pub fn when(&self) -> DateTime<Utc> {
        match &self.details {
            ActivityDetails::Email(e) => e.date,
            ActivityDetails::Appointment(a) => a.start,
            ActivityDetails::PhoneCall(p) => p.at,
            ActivityDetails::Task(t) => t.due.unwrap_or(self.stamps.created),
        }
    }
    /// An email's content digest (see [`super::content_digest`]).
    pub fn content_digest(&self) -> Option<&str> {
        match &self.details {
            ActivityDetails::Email(e) => e.content_digest.as_deref(),
            _ => None,
        }
    }
    /// The Message-ID that identifies this activity across mailboxes, if any.
    pub fn message_id(&self) -> Option<&MessageId> {
        match &self.details {
            ActivityDetails::Email(e) => Some(&e.message_id),
            ActivityDetails::Appointment(a) => a.message_id.as_ref(),
            _ => None,
        }
    }
    /// The records whose timelines show this activity: regarding, the owner, and
    /// every record a party resolved to.
    pub fn timeline_records(&self) -> Vec<RecordRef> {
        let mut out: Vec<RecordRef> = self.regarding.iter().copied().collect();
        out.push(RecordRef::new(Kind::User, self.owner));
        out.extend(self.parties.iter().flat_map(|p| p.records.iter().copied()));
        out.sort();
        out.dedup();
        out
    }
    pub fn blobs(&self) -> Vec<&BlobRef> {
        match &self.details {
            ActivityDetails::Email(e) => e.raw.iter().collect(),
            ActivityDetails::Appointment(a) => a.raw_invitation.iter().collect(),
            _ => Vec::new(),
        }
    }
}

/// Where a tracking request stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TrackStatus {
    /// Asked for, not complete yet (the sync worker completes it).
    Pending,
    /// The activity exists.
    Tracked,
    /// Given up after retries.
    Failed { reason: String },
}

/// Where the sync worker can find the message again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageLocation {
    pub folder: String,
    pub uid_validity: u32,
    pub uid: u32,
}

/// One mailbox's tracking of one message. Many mailboxes may track the same
/// message; they all point to its one activity. Two different messages with one
/// Message-ID are two activities (see [`super::content_digest`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackingRecord {
    /// The user whose mailbox holds the message.
    pub owner: UserId,
    pub message_id: MessageId,
    #[serde(flatten)]
    pub status: TrackStatus,
    /// Set once tracked; may be set while pending when the activity exists already.
    #[serde(default)]
    pub activity: Option<ActivityId>,
    /// Regarding asked for (applied when the pending request completes).
    #[serde(default)]
    pub regarding: Option<RecordRef>,
    /// The owner, or one of the owner's delegates.
    pub requested_by: UserId,
    pub requested_at: DateTime<Utc>,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub location: Option<MessageLocation>,
    /// How the request came (`keyword`, `folder:NAME`, `append`, `pane`, `cli`,
    /// `automatic`, `sent`), for the pane and for completing a pending request.
    #[serde(default)]
    pub via: Option<String>,
}

impl TrackingRecord {
    /// A new pending request made now.
    pub fn pending(owner: UserId, message_id: MessageId, requested_by: UserId) -> Self {
        TrackingRecord {
            owner,
            message_id,
            status: TrackStatus::Pending,
            activity: None,
            regarding: None,
            requested_by,
            requested_at: Utc::now(),
            updated_at: None,
            attempts: 0,
            location: None,
            via: None,
        }
    }
}

/// The first `CRM:` + digits tracking token in a subject (SPEC section 5).
pub fn subject_token(subject: &str) -> Option<&str> {
    let at = subject.find("CRM:")?;
    let rest = &subject[at..];
    let digits = rest[4..].bytes().take_while(u8::is_ascii_digit).count();
    (digits > 0).then(|| &rest[..4 + digits])
}

/// Where a gateway's tracking of one watched folder left off (issue 13): the
/// folder's UIDVALIDITY, the highest UID judged by the rules, and its
/// HIGHESTMODSEQ when the server has CONDSTORE. A restart resumes after
/// `last_uid`; another UIDVALIDITY means the folder was recreated and is scanned
/// again (tracking is idempotent by Message-ID, so nothing is tracked twice).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderCheckpoint {
    pub uid_validity: u32,
    pub last_uid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub highest_modseq: Option<u64>,
    pub updated: DateTime<Utc>,
}

/// A folder checkpoint with the place it belongs to: written in the same atomic
/// change as the activities it covers
/// ([`put_tracked_with_checkpoint`](crate::store::CrmStore::put_tracked_with_checkpoint)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxCheckpoint {
    pub owner: crate::store::UserId,
    /// The gateway's name for the mailbox.
    pub mailbox: String,
    pub folder: String,
    pub at: FolderCheckpoint,
}
