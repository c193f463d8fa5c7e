//! Tracking whole messages, one ([`Engine::track`]) or many at once
//! ([`Engine::track_batch`]). Each message is first *prepared* — parsed, checked,
//! its activities and tracking record built, reading the store only — and then
//! *committed*: its blobs stored durably, then every row in one atomic store
//! write. A batch commits all its messages in one write (one flush, blobs synced
//! together), and its later messages see its earlier ones (same Message-ID,
//! replies, tokens, Thread-Index, meeting UID) as if they were already stored.

use std::borrow::Cow;
use std::collections::HashMap;

use chrono::Utc;

use crate::message;
use crate::store::{
    content_digest, subject_token, thread_conversation, Activity, ActivityDetails, BlobRef,
    Correlation, MailboxCheckpoint, MessageId, OrgSettings, TrackStatus, TrackingRecord,
};

use super::appointment::{self, meeting_request};
use super::email::{self, PartyResolver};
use super::regarding::Resolution;
use super::request::{Actor, TrackRequest, Tracked};
use super::{Engine, TrackError};

/// One message ready to be written.
pub(crate) struct Prepared<'r> {
    email: Activity,
    appointment: Option<Activity>,
    /// New or changed activities, in write order.
    writes: Vec<Activity>,
    record: TrackingRecord,
    created: bool,
    /// Bytes to store as blobs before any row points to them.
    blobs: Vec<Cow<'r, [u8]>>,
}

/// What a batch has prepared so far; consulted before the store, since it is newer.
#[derive(Default)]
pub(crate) struct BatchView {
    /// The latest email of each Message-ID (for correlation).
    emails: HashMap<MessageId, Activity>,
    /// Each message's email: (Message-ID, content digest).
    messages: HashMap<(MessageId, String), Activity>,
    tokens: HashMap<String, MessageId>,
    threads: HashMap<String, Vec<MessageId>>,
    appointments: HashMap<String, Activity>,
}

impl BatchView {
    pub(crate) fn email(&self, id: &MessageId) -> Option<&Activity> {
        self.emails.get(id)
    }
    pub(crate) fn by_token(&self, token: &str) -> Option<&Activity> {
        self.tokens.get(token).and_then(|m| self.emails.get(m))
    }
    pub(crate) fn by_thread(&self, thread_index: &str) -> Vec<Activity> {
        self.threads
            .get(&thread_conversation(thread_index))
            .into_iter()
            .flatten()
            .filter_map(|m| self.emails.get(m).cloned())
            .collect()
    }
    fn add(&mut self, p: &Prepared<'_>) {
        if let ActivityDetails::Email(e) = &p.email.details {
            let id = e.message_id.clone();
            if let Some(tok) = subject_token(&p.email.subject) {
                self.tokens.entry(tok.to_string()).or_insert(id.clone());
            }
            if let Some(ti) = &e.thread_index {
                let list = self.threads.entry(thread_conversation(ti)).or_default();
                if !list.contains(&id) {
                    list.push(id.clone());
                }
            }
            if let Some(d) = &e.content_digest {
                self.messages
                    .insert((id.clone(), d.clone()), p.email.clone());
            }
            self.emails.insert(id, p.email.clone());
        }
        if let Some(a) = &p.appointment {
            if let ActivityDetails::Appointment(d) = &a.details {
                if let Some(uid) = &d.uid {
                    self.appointments.insert(uid.clone(), a.clone());
                }
            }
        }
    }
}

impl Engine {
    /// Track a whole message in the actor's owner's mailbox: find or create the
    /// email activity (and the appointment of a meeting request), link parties
    /// and regarding, and write this mailbox's tracking record. Idempotent: tracking
    /// the same message again changes only what the request changes. A recurring
    /// meeting's tracking record stays `Pending` until [`Engine::complete_pending`].
    pub fn track(
        &self,
        actor: &Actor,
        raw: &[u8],
        req: TrackRequest,
    ) -> Result<Tracked, TrackError> {
        self.track_message(actor, raw, &req, None)
    }

    /// [`Engine::track`], or completing the pending `completing` record.
    pub(crate) fn track_message(
        &self,
        actor: &Actor,
        raw: &[u8],
        req: &TrackRequest,
        completing: Option<&TrackingRecord>,
    ) -> Result<Tracked, TrackError> {
        let actor = self.refresh(actor)?;
        let settings = self.store.settings()?;
        let mut attempt = 0;
        let (email, appointment, created, stored, mut records) = loop {
            attempt += 1;
            let p = self.prepare(&actor, raw, req, completing, &settings, None)?;
            // The raw bytes first, flushed, so no row ever points to a missing blob.
            for b in &p.blobs {
                self.store.put_blob(b)?;
            }
            let Prepared {
                email,
                appointment,
                writes,
                record,
                created,
                ..
            } = p;
            match self.store.put_tracked(writes, vec![record]) {
                Ok((stored, records)) => break (email, appointment, created, stored, records),
                // Another process (a proxy on the same team store) wrote this
                // message's activity since `prepare` looked: prepare again, which
                // now links that one.
                Err(crate::store::StoreError::Duplicate(_)) if attempt < 3 => continue,
                Err(e) => return Err(e.into()),
            }
        };
        let record = records.pop().expect("one tracking record written");
        let latest = |a: Activity| {
            stored
                .iter()
                .rev()
                .find(|s| s.id == a.id)
                .cloned()
                .unwrap_or(a)
        };
        let email = latest(email);
        let appointment = appointment.map(latest);
        let headers = self.headers_for(&record, Some(&email))?;
        Ok(Tracked {
            activity: email,
            appointment,
            record,
            created,
            headers,
        })
    }

    /// Track many whole messages in one mailbox (an import, a gateway's first
    /// sweep), each as [`Engine::track`] would, in one atomic write. The outer
    /// error is for the whole batch (the actor is refused, the store failed: then
    /// nothing of the batch is written); the inner results are per message (a
    /// message refused is left out, the others are written).
    pub fn track_batch(
        &self,
        actor: &Actor,
        raws: &[&[u8]],
        req: &TrackRequest,
    ) -> Result<Vec<Result<Tracked, TrackError>>, TrackError> {
        self.check_regarding(actor, req.regarding, req.regarding_is_new_contact)?;
        let items: Vec<(&[u8], &TrackRequest)> = raws.iter().map(|r| (*r, req)).collect();
        self.track_each(actor, &items, None)
    }

    /// [`Engine::track_batch`] with a request per message (each at its own
    /// place in the mailbox) and, when given, a folder checkpoint written in
    /// the same atomic change (the gateway's batches).
    pub fn track_each(
        &self,
        actor: &Actor,
        items: &[(&[u8], &TrackRequest)],
        checkpoint: Option<&MailboxCheckpoint>,
    ) -> Result<Vec<Result<Tracked, TrackError>>, TrackError> {
        let actor = self.refresh(actor)?;
        let settings = self.store.settings()?;
        let mut attempt = 0;
        let (prepared, stored) = loop {
            attempt += 1;
            let mut view = BatchView::default();
            let mut prepared = Vec::with_capacity(items.len());
            for (raw, req) in items {
                let p = self.prepare(&actor, raw, req, None, &settings, Some(&view));
                if let Ok(p) = &p {
                    view.add(p);
                }
                prepared.push(p);
            }
            // A store that failed while a message was prepared fails the whole
            // batch (nothing written): only refusals leave a message out.
            if let Some(i) = prepared
                .iter()
                .position(|p| p.as_ref().is_err_and(|e| !e.is_refusal()))
            {
                return Err(prepared.swap_remove(i).err().expect("an error"));
            }
            let blobs: Vec<&[u8]> = prepared
                .iter()
                .flatten()
                .flat_map(|p| p.blobs.iter().map(|b| b.as_ref()))
                .collect();
            self.store.put_blobs(&blobs)?;
            let mut writes = Vec::new();
            let mut records = Vec::new();
            for p in prepared.iter_mut().flatten() {
                writes.append(&mut p.writes);
                records.push(p.record.clone());
            }
            let written = match checkpoint {
                Some(c) => self.store.put_tracked_with_checkpoint(writes, records, c),
                None if records.is_empty() => Ok((Vec::new(), Vec::new())),
                None => self.store.put_tracked(writes, records),
            };
            match written {
                Ok((stored, _)) => break (prepared, stored),
                // Another process (a proxy or gateway on the same team store)
                // wrote one of these messages' activities since `prepare`
                // looked: prepare again, which now links that one.
                Err(crate::store::StoreError::Duplicate(_)) if attempt < 3 => continue,
                Err(e) => return Err(e.into()),
            }
        };
        // The last version of each activity written is the one stored.
        let mut latest: HashMap<_, Activity> = HashMap::with_capacity(stored.len());
        for a in stored {
            latest.insert(a.id, a);
        }
        let pick = |a: Activity| latest.get(&a.id).cloned().unwrap_or(a);
        Ok(prepared
            .into_iter()
            .map(|p| {
                let p = p?;
                let email = pick(p.email);
                let headers = self.headers_for(&p.record, Some(&email))?;
                Ok(Tracked {
                    activity: email,
                    appointment: p.appointment.map(pick),
                    record: p.record,
                    created: p.created,
                    headers,
                })
            })
            .collect())
    }

    /// Parse, check and build everything one message needs; writes nothing.
    fn prepare<'r>(
        &self,
        actor: &Actor,
        raw: &'r [u8],
        req: &TrackRequest,
        completing: Option<&TrackingRecord>,
        settings: &OrgSettings,
        batch: Option<&BatchView>,
    ) -> Result<Prepared<'r>, TrackError> {
        self.check_regarding(actor, req.regarding, req.regarding_is_new_contact)?;
        let facts = message::parse(raw).map_err(|e| TrackError::NotAMessage(e.to_string()))?;
        let message_id = email::message_id_of(&facts, raw);
        if let Some(c) = completing {
            if c.message_id != message_id {
                return Err(TrackError::NotAMessage(format!(
                    "the message found has Message-ID {message_id}, not {}",
                    c.message_id
                )));
            }
        }
        let meeting = meeting_request(&facts);
        if let Some(inv) = meeting {
            appointment::check_organizer(&actor.owner, inv, &facts, settings)?;
        }
        let digest = content_digest(raw);
        let existing =
            match batch.and_then(|b| b.messages.get(&(message_id.clone(), digest.clone()))) {
                Some(a) => Some(a.clone()),
                None => self.existing_email(actor, &message_id, &digest)?,
            };
        let resolution = self.resolve_regarding_in(
            &facts,
            &message_id,
            req,
            settings,
            batch,
            Some(actor.owner.id),
        )?;
        let mut resolver =
            PartyResolver::new(self.store.as_ref(), settings.resolve_ambiguous_to_all);

        let mut blobs: Vec<Cow<'r, [u8]>> = Vec::new();
        let mut writes: Vec<Activity> = Vec::new();
        let created = existing.is_none();
        // A rule's regarding never replaces one a person chose.
        let kept_by_hand = req.regarding.is_none()
            && req.rule_regarding.is_some()
            && existing.as_ref().is_some_and(|a| {
                matches!(&a.details, ActivityDetails::Email(e) if e.correlation == Correlation::Explicit)
            });
        // Privacy mode keeps the header only (through its blank line).
        let kept: &'r [u8] = if req.headers_only {
            header_of(raw)
        } else {
            raw
        };
        let email = match existing {
            None => {
                blobs.push(Cow::Borrowed(kept));
                let parties = email::email_parties(&facts, &mut resolver)?;
                let mut a = email::new_email_activity(
                    &actor.owner,
                    &facts,
                    message_id.clone(),
                    BlobRef::of(kept),
                    parties,
                    &resolution,
                );
                if let ActivityDetails::Email(e) = &mut a.details {
                    e.content_digest = Some(digest);
                    if req.headers_only {
                        e.body_text.clear();
                        e.attachments.clear();
                        e.smime = None;
                    }
                }
                writes.push(a.clone());
                a
            }
            Some(old) => {
                let mut a = old.clone();
                if !kept_by_hand {
                    merge_resolution(&mut a, &resolution);
                }
                if let ActivityDetails::Email(e) = &mut a.details {
                    if e.raw.is_none() {
                        blobs.push(Cow::Borrowed(kept));
                        e.raw = Some(BlobRef::of(kept));
                    }
                    e.content_digest.get_or_insert(digest);
                }
                if a != old {
                    writes.push(a.clone());
                }
                a
            }
        };

        let mut status = TrackStatus::Tracked;
        let mut appointment = None;
        if let Some(inv) = meeting {
            if inv.is_recurring() && completing.is_none() {
                // A recurring meeting goes through pending (SPEC section 5).
                status = TrackStatus::Pending;
            } else {
                let found = match &inv.uid {
                    Some(uid) => match batch.and_then(|b| b.appointments.get(uid)) {
                        Some(a) => Some(a.clone()),
                        None => self.meeting_appointment(actor.owner.id, uid, email.owner)?,
                    },
                    None => None,
                };
                let appt = match found {
                    Some(mut a) => {
                        // A later SEQUENCE, one occurrence or a cancellation updates it.
                        let ics = appointment::invitation_bytes(raw);
                        let blob = ics.as_deref().map(BlobRef::of);
                        let mut changed =
                            appointment::apply_update(&mut a, inv, &facts, blob, &mut resolver)?;
                        if changed {
                            blobs.extend(ics.map(Cow::Owned));
                        }
                        // Chosen regarding applies; a correlated one only fills a gap.
                        let chosen = matches!(
                            resolution.correlation,
                            Correlation::Explicit | Correlation::FolderMapping
                        );
                        if a.regarding != email.regarding
                            && (chosen || a.regarding.is_none())
                            && email.regarding.is_some()
                        {
                            a.regarding = email.regarding;
                            changed = true;
                        }
                        if changed {
                            writes.push(a.clone());
                        }
                        a
                    }
                    None => {
                        let ics = appointment::invitation_bytes(raw);
                        let blob = ics.as_deref().map(BlobRef::of);
                        let a = appointment::new_appointment(
                            &actor.owner,
                            inv,
                            &facts,
                            email.regarding,
                            blob,
                            &mut resolver,
                        )?;
                        blobs.extend(ics.map(Cow::Owned));
                        writes.push(a.clone());
                        a
                    }
                };
                appointment = Some(appt);
            }
        }

        let asked = match resolution.correlation {
            Correlation::Explicit | Correlation::FolderMapping if !kept_by_hand => {
                resolution.regarding
            }
            _ => None,
        };
        let old_location = match &req.location {
            Some(_) => None,
            None => self
                .store
                .tracking(actor.owner.id, &message_id)?
                .and_then(|o| o.location),
        };
        let now = Utc::now();
        let record = TrackingRecord {
            owner: actor.owner.id,
            message_id,
            status,
            activity: Some(email.id),
            regarding: asked.or(completing.and_then(|c| c.regarding)),
            requested_by: actor.acting.id,
            requested_at: completing.map(|c| c.requested_at).unwrap_or(now),
            updated_at: Some(now),
            attempts: completing.map(|c| c.attempts).unwrap_or(0),
            location: req.location.clone().or(old_location),
            via: Some(req.source.as_via()),
        };
        Ok(Prepared {
            email,
            appointment,
            writes,
            record,
            created,
            blobs,
        })
    }
}

impl Engine {
    /// The appointment of meeting `uid` that a mailbox tracking an invitation email
    /// (owned by `email_owner`) shares: the one made with that email's first
    /// tracking, else one `owner` may read. Anybody can send an invitation reusing
    /// a meeting's UID: that makes another appointment, never changes this one.
    pub(crate) fn meeting_appointment(
        &self,
        owner: crate::store::UserId,
        uid: &str,
        email_owner: crate::store::UserId,
    ) -> Result<Option<Activity>, TrackError> {
        for a in self.store.appointments_by_uid(uid)? {
            if a.owner == email_owner
                || crate::store::rights::may_read(self.store.as_ref(), owner, &a)?
            {
                return Ok(Some(a));
            }
        }
        Ok(None)
    }

    /// The email activity of this very message (same Message-ID, same content
    /// digest), which a mailbox holding it shares. An email stored without a digest
    /// (imported from an export made before digests) is this message when its
    /// original has this digest, or, kept without an original, when it is the
    /// owner's own. Another message that reuses the Message-ID is never it: merging
    /// would show one sender's text to the other (SPEC section 4).
    fn existing_email(
        &self,
        actor: &Actor,
        message_id: &MessageId,
        digest: &str,
    ) -> Result<Option<Activity>, TrackError> {
        if let Some(a) = self.store.email_by_content(message_id, digest)? {
            return Ok(Some(a));
        }
        for a in self.store.activities_by_message_id(message_id)? {
            let ActivityDetails::Email(e) = &a.details else {
                continue;
            };
            if e.content_digest.is_some() {
                continue;
            }
            let same = match &e.raw {
                Some(blob) => content_digest(&self.store.blob(blob)?) == digest,
                None => a.owner == actor.owner.id,
            };
            if same {
                return Ok(Some(a));
            }
        }
        Ok(None)
    }
}

/// A message's header, through the blank line that ends it (all of it without one).
fn header_of(raw: &[u8]) -> &[u8] {
    &raw[..crate::message::headers::header_end(raw).unwrap_or(raw.len())]
}

/// Apply a new resolution to an existing (shared) email activity: an explicit or
/// folder regarding replaces the current one; a correlation only fills an
/// activity that has no regarding yet.
pub(crate) fn merge_resolution(a: &mut Activity, r: &Resolution) {
    let ActivityDetails::Email(e) = &mut a.details else {
        return;
    };
    match r.correlation {
        Correlation::Explicit | Correlation::FolderMapping => {
            a.regarding = r.regarding;
            e.correlation = r.correlation;
            e.correlated_with = None;
        }
        Correlation::None => {}
        _ => {
            if a.regarding.is_none() && e.correlation == Correlation::None {
                a.regarding = r.regarding;
                e.correlation = r.correlation;
                e.correlated_with = r.correlated_with;
            }
        }
    }
}
