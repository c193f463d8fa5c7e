//! The engine's operations besides tracking a whole message (see `ingest`):
//! request (pending), complete / retry / fail a
//! pending request, untrack, set regarding, the header block the proxy shows, and
//! the sync worker's entry points for sent and automatically tracked mail.

use chrono::Utc;

use crate::message::{self, EmailFacts, SmimeForm, TrackingHeaders};
use crate::store::{
    Activity, ActivityDetails, Correlation, HeaderFacts, Kind, MessageId, MessageLocation,
    TrackStatus, TrackingRecord, UserId,
};

use super::email;
use super::ingest::merge_resolution;
use super::regarding::Resolution;
use super::request::{Actor, TrackRequest, TrackSource, Tracked};
use super::{Engine, TrackError, MAX_ATTEMPTS};

impl Engine {
    /// Ask for tracking of a message that the caller has not seen whole (a keyword
    /// set on a UID, set regarding while composing): a `Pending` tracking record that
    /// the sync worker completes with [`Engine::complete_pending`]. When the
    /// Message-ID is tracked already (by any mailbox) it is tracked at once.
    pub fn request(
        &self,
        actor: &Actor,
        message_id: &MessageId,
        req: TrackRequest,
    ) -> Result<TrackingRecord, TrackError> {
        let actor = self.refresh(actor)?;
        self.check_regarding(&actor, req.regarding, req.regarding_is_new_contact)?;
        let asked = req.regarding.or(match &req.source {
            TrackSource::Folder(f) => self.folder_regarding(f),
            _ => None,
        });
        let correlation = if req.regarding.is_some() {
            Correlation::Explicit
        } else {
            Correlation::FolderMapping
        };
        let old = self.store.tracking(actor.owner.id, message_id)?;
        let now = Utc::now();
        let mut writes = Vec::new();
        // An activity the CRM already has is linked at once only when the request
        // says where the message is in this mailbox (the proxy saw it there) AND the
        // activity is this mailbox's own (or already linked to it). A Message-ID,
        // seen or typed, proves nothing about the content: anybody can APPEND a
        // message reusing someone else's. Any other request waits, pending, until
        // the sync worker reads the message and tracks it by its content.
        let known = match &req.location {
            Some(_) => self.own_email(&actor, old.as_ref(), message_id)?,
            None => None,
        };
        let mut record = match known {
            Some(a) if a.kind() == Kind::Email => {
                let mut updated = a.clone();
                if asked.is_some() {
                    merge_resolution(
                        &mut updated,
                        &Resolution {
                            regarding: asked,
                            correlation,
                            correlated_with: None,
                        },
                    );
                }
                if updated != a {
                    writes.push(updated);
                }
                TrackingRecord {
                    status: TrackStatus::Tracked,
                    activity: Some(a.id),
                    ..TrackingRecord::pending(actor.owner.id, message_id.clone(), actor.acting.id)
                }
            }
            _ => match &old {
                // Asking again keeps the place in the queue and the attempts made.
                Some(o) if o.status == TrackStatus::Pending => o.clone(),
                _ => TrackingRecord::pending(actor.owner.id, message_id.clone(), actor.acting.id),
            },
        };
        record.requested_by = actor.acting.id;
        record.regarding = asked.or(record.regarding);
        record.updated_at = Some(now);
        record.location = req
            .location
            .clone()
            .or_else(|| old.as_ref().and_then(|o| o.location.clone()));
        record.via = Some(req.source.as_via());
        let (_, mut records) = self.store.put_tracked(writes, vec![record])?;
        Ok(records.pop().expect("one tracking record written"))
    }

    /// Complete a pending request with the message's raw bytes (the sync worker
    /// fetched them): tracks it as the user who asked, with the regarding asked for.
    /// On an error the record is left as it was; call [`Engine::retry_later`].
    pub fn complete_pending(
        &self,
        record: &TrackingRecord,
        raw: &[u8],
    ) -> Result<Tracked, TrackError> {
        let actor = self.actor_by_id(record.owner, record.requested_by)?;
        let source = TrackSource::from_via(record.via.as_deref().unwrap_or("pane"));
        // A folder request re-resolves through the folder; anything else asked is explicit.
        let regarding = match &source {
            TrackSource::Folder(f) if record.regarding == self.folder_regarding(f) => None,
            _ => record.regarding,
        };
        let mut req = TrackRequest::new(source);
        req.regarding = regarding;
        req.location = record.location.clone();
        self.track_message(&actor, raw, &req, Some(record))
    }

    /// The email activity with this Message-ID that the owner's mailbox may link
    /// without reading the message again: the one its tracking record links, else
    /// one the owner's own mailbox tracked first.
    fn own_email(
        &self,
        actor: &Actor,
        old: Option<&TrackingRecord>,
        message_id: &MessageId,
    ) -> Result<Option<Activity>, TrackError> {
        if let Some(id) = old.and_then(|o| o.activity) {
            if let Some(a) = self.store.activity(id)? {
                return Ok(Some(a));
            }
        }
        Ok(self
            .store
            .activities_by_message_id(message_id)?
            .into_iter()
            .find(|a| a.owner == actor.owner.id))
    }

    /// Count a failed attempt at a pending request; after [`MAX_ATTEMPTS`] it is
    /// `failed` with `reason` (shown in the pane). Returns the record as stored.
    pub fn retry_later(
        &self,
        record: &TrackingRecord,
        reason: &str,
    ) -> Result<TrackingRecord, TrackError> {
        let mut current = self.current(record)?;
        current.attempts += 1;
        current.updated_at = Some(Utc::now());
        if current.attempts >= MAX_ATTEMPTS {
            current.status = TrackStatus::Failed {
                reason: reason_text(reason),
            };
        }
        Ok(self.store.put_tracking(current)?)
    }

    /// Give up on a pending request now, with a reason.
    pub fn fail(
        &self,
        record: &TrackingRecord,
        reason: &str,
    ) -> Result<TrackingRecord, TrackError> {
        let mut current = self.current(record)?;
        current.status = TrackStatus::Failed {
            reason: reason_text(reason),
        };
        current.updated_at = Some(Utc::now());
        Ok(self.store.put_tracking(current)?)
    }

    fn current(&self, record: &TrackingRecord) -> Result<TrackingRecord, TrackError> {
        self.store
            .tracking(record.owner, &record.message_id)?
            .ok_or_else(|| TrackError::NotTracked {
                message_id: record.message_id.to_string(),
            })
    }

    /// `owner`'s pending requests, oldest first (its sync worker's queue).
    pub fn pending(&self, owner: UserId, limit: usize) -> Result<Vec<TrackingRecord>, TrackError> {
        Ok(self.store.pending_tracking(Some(owner), limit)?)
    }

    /// End the tracking of a message in the owner's mailbox. The activity stays in
    /// the CRM. Returns whether it was tracked (or pending) there.
    pub fn untrack(&self, actor: &Actor, message_id: &MessageId) -> Result<bool, TrackError> {
        let actor = self.refresh(actor)?;
        Ok(self.store.delete_tracking(actor.owner.id, message_id)?)
    }

    /// Set, change (`Some`) or clear (`None`) the regarding record of a message
    /// tracked (or pending) in the owner's mailbox. The activity is shared, so every
    /// mailbox that tracks it sees the change. `is_new_contact`: the record is a
    /// contact created in the same action (refused to delegates).
    pub fn set_regarding(
        &self,
        actor: &Actor,
        message_id: &MessageId,
        regarding: Option<crate::store::RecordRef>,
        is_new_contact: bool,
    ) -> Result<TrackingRecord, TrackError> {
        let actor = self.refresh(actor)?;
        self.check_regarding(&actor, regarding, is_new_contact)?;
        let mut record = self
            .store
            .tracking(actor.owner.id, message_id)?
            .ok_or_else(|| TrackError::NotTracked {
                message_id: message_id.to_string(),
            })?;
        let mut writes = Vec::new();
        if let Some(aid) = record.activity {
            if let Some(a) = self.store.activity(aid)? {
                let mut updated = a.clone();
                updated.regarding = regarding;
                if let ActivityDetails::Email(e) = &mut updated.details {
                    e.correlation = if regarding.is_some() {
                        Correlation::Explicit
                    } else {
                        Correlation::None
                    };
                    if regarding.is_some() {
                        e.correlated_with = None;
                    }
                }
                if updated != a {
                    writes.push(updated);
                }
                // The meeting's appointment follows its invitation email.
                if let Some(appt) = self.appointment_of(&a)? {
                    if appt.regarding != regarding {
                        let mut appt = appt;
                        appt.regarding = regarding;
                        writes.push(appt);
                    }
                }
            }
        }
        record.regarding = regarding;
        record.requested_by = actor.acting.id;
        record.updated_at = Some(Utc::now());
        let (_, mut records) = self.store.put_tracked(writes, vec![record])?;
        Ok(records.pop().expect("one tracking record written"))
    }

    /// The appointment made from an email's meeting invitation, if any (read from
    /// the email's raw bytes: the invitation's UID names the appointment).
    fn appointment_of(&self, email: &Activity) -> Result<Option<Activity>, TrackError> {
        let ActivityDetails::Email(e) = &email.details else {
            return Ok(None);
        };
        let Some(blob) = &e.raw else {
            return Ok(None);
        };
        let raw = self.store.blob(blob)?;
        let uid = message::parse(&raw)
            .ok()
            .and_then(|f| f.invitation)
            .and_then(|i| i.uid);
        match uid {
            Some(uid) => self.meeting_appointment(email.owner, &uid, email.owner),
            None => Ok(None),
        }
    }

    /// This mailbox's tracking record of a message.
    pub fn tracking(
        &self,
        owner: UserId,
        message_id: &MessageId,
    ) -> Result<Option<TrackingRecord>, TrackError> {
        Ok(self.store.tracking(owner, message_id)?)
    }

    /// The tracking record of the message at a place in the owner's mailbox, for a
    /// client that fetches a body before the proxy saw its Message-ID.
    pub fn tracking_at(
        &self,
        owner: UserId,
        location: &MessageLocation,
    ) -> Result<Option<TrackingRecord>, TrackError> {
        Ok(self.store.tracking_at(owner, location)?)
    }

    /// The X-CRM-* header block for a message in `owner`'s mailbox, or `None` when
    /// it is not tracked there.
    pub fn headers(
        &self,
        owner: UserId,
        message_id: &MessageId,
    ) -> Result<Option<TrackingHeaders>, TrackError> {
        match self.store.tracking(owner, message_id)? {
            Some(t) => Ok(Some(self.headers_for(&t, None)?)),
            None => Ok(None),
        }
    }

    /// The header block of a tracking record (`activity`, when the caller has it).
    pub fn headers_for(
        &self,
        record: &TrackingRecord,
        activity: Option<&Activity>,
    ) -> Result<TrackingHeaders, TrackError> {
        self.headers_with(record, activity, &mut |id| self.record_title(id))
    }

    /// The display name of a record ("" when it is gone).
    pub fn record_title(&self, id: uuid::Uuid) -> Result<String, TrackError> {
        Ok(self
            .store
            .record(id)?
            .map(|x| x.title())
            .unwrap_or_default())
    }

    /// [`Engine::headers_for`] with the regarding record's name from `title`.
    pub fn headers_with(
        &self,
        record: &TrackingRecord,
        activity: Option<&Activity>,
        title: &mut dyn FnMut(uuid::Uuid) -> Result<String, TrackError>,
    ) -> Result<TrackingHeaders, TrackError> {
        // Only facts that stay true: who asked and when, not the status.
        let tracked_by = match self.store.record(record.requested_by.uuid())? {
            Some(crate::store::Record::User(u)) => u.logins.first().map(|l| l.to_string()),
            _ => None,
        };
        let facts = match (activity, record.activity) {
            (Some(a), _) => Some(HeaderFacts::from(a)),
            (None, Some(id)) => self.store.header_facts(id)?,
            (None, None) => None,
        };
        let mut headers = TrackingHeaders {
            tracked_by,
            tracked_at: Some(record.requested_at),
            activity_id: record.activity.map(|a| a.to_string()),
            regarding: None,
            smime: None,
        };
        // A request not complete yet shows the regarding it asks for.
        let regarding = match &facts {
            Some(f) => f.regarding,
            None => record.regarding,
        };
        if let Some(r) = regarding {
            let name = title(r.id)?;
            headers.regarding = Some((r.kind.to_string(), r.id.to_string(), name));
        }
        if let Some(f) = facts {
            if let Some(s) = &f.details.smime {
                let form = match s.form.as_deref() {
                    Some("opaque-signed") => SmimeForm::Opaque,
                    Some("encrypted") => SmimeForm::Encrypted,
                    _ if s.encrypted => SmimeForm::Encrypted,
                    _ => SmimeForm::Detached,
                };
                headers.smime = Some((form.as_str(), s.signer.clone(), s.verified));
            }
        }
        Ok(headers)
    }

    /// A message that appeared in the owner's Sent folder: tracked (correlated)
    /// when it replies to tracked email, unless automatic tracking is off or it is
    /// tracked in this mailbox already. `None` when left alone.
    pub fn on_sent(&self, actor: &Actor, raw: &[u8]) -> Result<Option<Tracked>, TrackError> {
        let actor = self.refresh(actor)?;
        if actor.owner.options.auto_track == crate::store::AutoTrack::Off {
            return Ok(None);
        }
        let facts = message::parse(raw).map_err(|e| TrackError::NotAMessage(e.to_string()))?;
        if !self.replies_to_tracked(&facts)? || self.tracked_here(&actor, &facts, raw)? {
            return Ok(None);
        }
        self.track(&actor, raw, TrackRequest::new(TrackSource::Sent))
            .map(Some)
    }

    /// Whether this message is tracked (not pending) in the actor's mailbox.
    pub(super) fn tracked_here(
        &self,
        actor: &Actor,
        facts: &EmailFacts,
        raw: &[u8],
    ) -> Result<bool, TrackError> {
        let id = email::message_id_of(facts, raw);
        Ok(self
            .store
            .tracking(actor.owner.id, &id)?
            .is_some_and(|t| t.status == TrackStatus::Tracked))
    }
}

fn reason_text(reason: &str) -> String {
    let r = reason.trim();
    if r.is_empty() {
        "gave up after repeated failures".into()
    } else {
        r.chars().take(500).collect()
    }
}
