//! Regarding resolution (SPEC section 5): explicit choice, then the tracking
//! folder's record, then correlation with an already tracked email (In-Reply-To,
//! then References newest first, then the subject's tracking token when enabled,
//! then Outlook's Thread-Index), else none. A correlated email inherits the
//! regarding record of the email it matched and points to it.

use crate::message::EmailFacts;
use crate::store::{
    subject_token, Activity, ActivityDetails, ActivityId, Correlation, Kind, MessageId,
    OrgSettings, RecordRef, UserId,
};

use super::ingest::BatchView;
use super::request::{Actor, TrackRequest, TrackSource};
use super::{Engine, TrackError};

/// Most emails of one Thread-Index conversation considered.
const THREAD_CANDIDATES: usize = 200;

/// How the regarding record of a message was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolution {
    pub regarding: Option<RecordRef>,
    pub correlation: Correlation,
    /// The tracked email this one was correlated with.
    pub correlated_with: Option<ActivityId>,
}

impl Resolution {
    pub const NONE: Resolution = Resolution {
        regarding: None,
        correlation: Correlation::None,
        correlated_with: None,
    };

    fn with(correlation: Correlation, parent: &Activity) -> Resolution {
        Resolution {
            regarding: parent.regarding,
            correlation,
            correlated_with: Some(parent.id),
        }
    }
}

impl Engine {
    /// Refuse a regarding record that cannot be one (kind, missing) or that the
    /// actor may not choose (a delegate and a contact created in the same action).
    pub fn check_regarding(
        &self,
        actor: &Actor,
        regarding: Option<RecordRef>,
        is_new_contact: bool,
    ) -> Result<(), TrackError> {
        let Some(r) = regarding else {
            return Ok(());
        };
        if !r.kind.can_be_regarding() {
            return Err(TrackError::NotRegardable { kind: r.kind });
        }
        match self.store.record(r.id)? {
            Some(rec) if rec.kind() == r.kind => {}
            _ => {
                return Err(TrackError::RegardingMissing {
                    kind: r.kind,
                    id: r.id,
                })
            }
        }
        if is_new_contact && actor.is_delegate() && r.kind == Kind::Contact {
            return Err(TrackError::DelegateNewContact);
        }
        Ok(())
    }

    /// The regarding record for a message (without an explicit one: the folder's,
    /// else correlation), in the order of SPEC section 5.
    pub fn resolve_regarding(
        &self,
        facts: &EmailFacts,
        message_id: &MessageId,
        req: &TrackRequest,
        settings: &OrgSettings,
    ) -> Result<Resolution, TrackError> {
        self.resolve_regarding_in(facts, message_id, req, settings, None, None)
    }

    /// [`Engine::resolve_regarding`], also seeing what a batch prepared before.
    /// `owner`: the mailbox tracking, whose own copy of a replied-to message wins
    /// over another message that reuses its Message-ID.
    pub(crate) fn resolve_regarding_in(
        &self,
        facts: &EmailFacts,
        message_id: &MessageId,
        req: &TrackRequest,
        settings: &OrgSettings,
        batch: Option<&BatchView>,
        owner: Option<UserId>,
    ) -> Result<Resolution, TrackError> {
        if let Some(r) = req.regarding {
            return Ok(Resolution {
                regarding: Some(r),
                correlation: Correlation::Explicit,
                correlated_with: None,
            });
        }
        let mapped = match &req.source {
            TrackSource::Folder(f) => self.folder_regarding(f),
            _ => None,
        };
        if let Some(r) = mapped.or(req.rule_regarding) {
            return Ok(Resolution {
                regarding: Some(r),
                correlation: Correlation::FolderMapping,
                correlated_with: None,
            });
        }
        self.correlate(facts, message_id, settings, batch, owner)
    }

    /// The tracked email a reply names: the one `owner` may read (their own copy),
    /// else the oldest with that Message-ID.
    fn replied_email(
        &self,
        owner: Option<UserId>,
        id: &MessageId,
    ) -> Result<Option<Activity>, TrackError> {
        let all = self.store.activities_by_message_id(id)?;
        if let Some(o) = owner {
            for a in &all {
                if crate::store::rights::may_read(self.store.as_ref(), o, a)? {
                    return Ok(Some(a.clone()));
                }
            }
        }
        Ok(all.into_iter().next())
    }

    /// Correlation with an already tracked email only.
    pub(crate) fn correlate(
        &self,
        facts: &EmailFacts,
        message_id: &MessageId,
        settings: &OrgSettings,
        batch: Option<&BatchView>,
        owner: Option<UserId>,
    ) -> Result<Resolution, TrackError> {
        let is_other_email = |a: &Activity| matches!(&a.details, ActivityDetails::Email(e) if e.message_id != *message_id);
        // In-Reply-To, then References from the newest (last) to the oldest.
        for id in facts
            .in_reply_to
            .iter()
            .chain(facts.references.iter().rev())
        {
            let Ok(id) = MessageId::parse(id) else {
                continue;
            };
            let found = match batch.and_then(|b| b.email(&id)) {
                Some(a) => Some(a.clone()),
                None => self.replied_email(owner, &id)?,
            };
            if let Some(a) = found {
                if is_other_email(&a) {
                    return Ok(Resolution::with(Correlation::InReplyTo, &a));
                }
            }
        }
        if self.cfg.subject_tracking_token || settings.subject_tracking_token {
            if let Some(tok) = subject_token(&facts.subject) {
                let found = match batch.and_then(|b| b.by_token(tok)) {
                    Some(a) => Some(a.clone()),
                    None => self.store.email_by_tracking_token(tok)?,
                };
                if let Some(a) = found {
                    if is_other_email(&a) {
                        return Ok(Resolution::with(Correlation::TrackingToken, &a));
                    }
                }
            }
        }
        if let Some(ti) = facts.thread_index.as_deref() {
            let ours = ti.trim();
            let mut candidates = self.store.emails_by_thread_index(ours, THREAD_CANDIDATES)?;
            if let Some(b) = batch {
                candidates.extend(b.by_thread(ours));
            }
            // The closest ancestor: an equal Thread-Index, else the longest one that
            // ours extends (each reply appends to its parent's), else the newest.
            let best = candidates
                .iter()
                .filter(|a| is_other_email(a))
                .max_by_key(|a| {
                    let theirs = match &a.details {
                        ActivityDetails::Email(e) => e.thread_index.as_deref().unwrap_or(""),
                        _ => "",
                    }
                    .trim();
                    let prefix_len = prefix_bytes(ours, theirs);
                    (prefix_len, a.when())
                });
            if let Some(a) = best {
                return Ok(Resolution::with(Correlation::ThreadIndex, a));
            }
        }
        Ok(Resolution::NONE)
    }
}

/// How much of `theirs` is an ancestor of `ours` (in decoded bytes; 0 when not).
fn prefix_bytes(ours: &str, theirs: &str) -> usize {
    use base64::Engine as _;
    let dec = |s: &str| base64::engine::general_purpose::STANDARD.decode(s).ok();
    match (dec(ours), dec(theirs)) {
        (Some(o), Some(t)) if o.starts_with(&t) => t.len(),
        _ if ours == theirs => ours.len(),
        _ => 0,
    }
}
