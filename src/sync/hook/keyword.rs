//! Keyword requests in client STOREs (SPEC section 3, "Keyword"): `$CRM_Track` added
//! asks for tracking, and so does `$CRM_Tracked` (state keywords never lie: a
//! client claiming "tracked" gets it tracked for real); `$CRM_Tracked` removed (or
//! all flags replaced without it) untracks. Both become jobs for the mailbox's sync
//! worker. `$CRM_Pending` is the proxy's alone: a client adding it is refused. A
//! request by sequence numbers the session has no UIDs for waits for the STORE's OK
//! and is then found by its keyword. A refused STORE never goes up (the server
//! gets a NOOP), so nothing changes on any message.

use imap_codec::imap_types::flag::{Flag, StoreType};
use imap_codec::imap_types::sequence::SequenceSet;

use super::sets::{seqs, set_text};
use super::{TagAction, TrackingHook};
use crate::proxy::hook::HookContext;
use crate::sync::worker::{Job, Uids};
use crate::track::TrackSource;

impl TrackingHook {
    pub(super) fn keyword_store(
        &self,
        cx: &HookContext<'_>,
        tag: &str,
        set: &SequenceSet,
        uid: bool,
        kind: &StoreType,
        flags: &[Flag<'_>],
    ) {
        let Some(identity) = cx.identity else { return };
        let engine = self.workers.engine();
        let cfg = engine.config();
        let has = |k: &str| {
            flags
                .iter()
                .any(|f| matches!(f, Flag::Keyword(a) if a.as_ref().eq_ignore_ascii_case(k)))
        };
        let adds = matches!(kind, StoreType::Add | StoreType::Replace);
        let track = adds && (has(&cfg.request_keyword) || has(&cfg.tracked_keyword));
        let untrack = (matches!(kind, StoreType::Remove) && has(&cfg.tracked_keyword))
            || (matches!(kind, StoreType::Replace)
                && !has(&cfg.tracked_keyword)
                && !has(&cfg.request_keyword));
        if matches!(kind, StoreType::Add) && has(&cfg.pending_keyword) {
            let text = format!("CRM: {} is set by crmproxy only", cfg.pending_keyword);
            self.with_session(cx.session_id, |s| {
                s.actions.insert(tag.to_string(), TagAction::Refuse(text))
            });
            return;
        }
        if !track && !untrack {
            return;
        }
        let Some(mailbox) = cx.state.selected() else {
            return;
        };
        // By sequence number: the UIDs this session saw. Any unseen and a request
        // is found on the server by its keyword once the STORE is done.
        let mut by_keyword = false;
        let uids = if uid {
            Uids::Set(set_text(set))
        } else {
            let mut known = Vec::new();
            for seq in seqs(set, mailbox.exists) {
                match mailbox.uid(seq) {
                    Some(u) => known.push(u),
                    None => by_keyword = track,
                }
            }
            match by_keyword {
                true => Uids::Keyword(cfg.request_keyword.clone()),
                false => Uids::List(known),
            }
        };
        let actor = match self.actor(identity) {
            Ok(a) => a,
            Err(text) => {
                if track {
                    // Refused before it goes up (see `rewrite_command`).
                    self.with_session(cx.session_id, |s| {
                        s.actions.insert(tag.to_string(), TagAction::Refuse(text))
                    });
                }
                return;
            }
        };
        let folder = mailbox.name.clone();
        let job = if track {
            Job::Track {
                actor,
                folder,
                uids,
                source: TrackSource::Keyword,
            }
        } else {
            // A replace without the tracked keyword also untracks, but only
            // messages that are tracked: the worker finds none for the others.
            Job::Untrack {
                actor,
                folder,
                uids,
            }
        };
        if by_keyword {
            self.with_session(cx.session_id, |s| {
                s.actions
                    .insert(tag.to_string(), TagAction::SubmitWhenDone(job))
            });
            return;
        }
        if !self.workers.submit(&identity.user, job) {
            self.with_session(cx.session_id, |s| {
                s.actions.insert(
                    tag.to_string(),
                    TagAction::Refuse(
                        "CRM: tracking needs a LOGIN or AUTHENTICATE PLAIN session (or the queue is full); try again"
                            .into(),
                    ),
                )
            });
        }
    }
}
