//! New mail in a watched folder (the sync worker's INBOX, the gateway's
//! folders): each message judged by the automatic-tracking rules under the
//! mailbox's own [`MailboxRules`], and what the rules track written in one
//! atomic change per batch, with the folder's checkpoint when one is given (a
//! restart resumes exactly after what was written). One message is a batch of
//! one: the worker and the gateway share this path.

use crate::message;
use crate::store::{MailboxCheckpoint, MessageLocation, RecordRef, UserId};

use super::auto::MailboxRules;
use super::request::{Actor, AutoDecision, TrackRequest, TrackSource, Tracked};
use super::{Engine, TrackError};

/// One new message: where it is and its bytes.
#[derive(Debug, Clone, Copy)]
pub struct NewMail<'r> {
    pub location: Option<&'r MessageLocation>,
    pub raw: &'r [u8],
}

/// What became of one new message: tracked now (`Some`), or left alone with the
/// rules' decision (`None` with `Track`: tracked in this mailbox before).
pub type Judged = Result<(Option<Tracked>, AutoDecision), TrackError>;

impl Engine {
    /// New INBOX mail: tracked when [`Engine::auto_decision`] says so (and not
    /// tracked in this mailbox already). The caller passes only new INBOX mail.
    pub fn on_new_inbox_mail(
        &self,
        owner: UserId,
        raw: &[u8],
        location: Option<MessageLocation>,
    ) -> Result<Option<Tracked>, TrackError> {
        self.on_new_mail(owner, raw, location, &MailboxRules::default(), None)
            .map(|(t, _)| t)
    }

    /// New mail in a watched folder, judged by the owner's options under the
    /// mailbox's `rules`; `folder_regarding` is the folder's mapping (never
    /// replacing a regarding chosen by hand). The decision comes back too.
    pub fn on_new_mail(
        &self,
        owner: UserId,
        raw: &[u8],
        location: Option<MessageLocation>,
        rules: &MailboxRules,
        folder_regarding: Option<RecordRef>,
    ) -> Result<(Option<Tracked>, AutoDecision), TrackError> {
        let mail = [NewMail {
            location: location.as_ref(),
            raw,
        }];
        let mut judged = self.on_new_mail_batch(owner, &mail, rules, folder_regarding, None)?;
        judged.pop().expect("one message judged")
    }

    /// [`Engine::on_new_mail`] for many messages of one folder, written in one
    /// atomic change together with `checkpoint` (when given; written even when
    /// nothing is tracked). The outer error is the whole batch's (the owner is
    /// unknown, the store failed): then nothing is written, the checkpoint
    /// neither. Refusals are per message.
    pub fn on_new_mail_batch(
        &self,
        owner: UserId,
        mail: &[NewMail<'_>],
        rules: &MailboxRules,
        folder_regarding: Option<RecordRef>,
        checkpoint: Option<&MailboxCheckpoint>,
    ) -> Result<Vec<Judged>, TrackError> {
        let actor = self.actor_by_id(owner, owner)?;
        let mut judged: Vec<Option<Judged>> = Vec::with_capacity(mail.len());
        let mut to_track: Vec<(usize, TrackRequest)> = Vec::new();
        for (i, m) in mail.iter().enumerate() {
            match self.judge_new_mail(&actor, m, rules) {
                Ok(Some(decision)) => judged.push(Some(Ok((None, decision)))),
                Ok(None) => {
                    let mut req = TrackRequest::new(TrackSource::Automatic);
                    req.location = m.location.cloned();
                    req.rule_regarding = folder_regarding;
                    req.headers_only = rules.headers_only;
                    to_track.push((i, req));
                    judged.push(None);
                }
                Err(e) if e.is_refusal() => judged.push(Some(Err(e))),
                Err(e) => return Err(e),
            }
        }
        if to_track.is_empty() && checkpoint.is_none() {
            return Ok(judged.into_iter().flatten().collect());
        }
        let items: Vec<(&[u8], &TrackRequest)> =
            to_track.iter().map(|(i, r)| (mail[*i].raw, r)).collect();
        let tracked = self.track_each(&actor, &items, checkpoint)?;
        for ((i, _), t) in to_track.iter().zip(tracked) {
            judged[*i] = Some(t.map(|t| (Some(t), AutoDecision::Track)));
        }
        Ok(judged
            .into_iter()
            .map(|j| j.expect("every message judged"))
            .collect())
    }

    /// The rules' decision for a message that is left alone, or `None` when it
    /// is to be tracked now (the rules say so and it is not tracked here yet).
    fn judge_new_mail(
        &self,
        actor: &Actor,
        m: &NewMail<'_>,
        rules: &MailboxRules,
    ) -> Result<Option<AutoDecision>, TrackError> {
        let facts = message::parse(m.raw).map_err(|e| TrackError::NotAMessage(e.to_string()))?;
        let decision = self.auto_decision_with(actor.owner.id, &facts, rules)?;
        if decision != AutoDecision::Track || self.tracked_here(actor, &facts, m.raw)? {
            return Ok(Some(decision));
        }
        Ok(None)
    }
}
