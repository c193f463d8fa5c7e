//! New mail of a watched folder judged a batch at a time: the sizes of up to
//! [`BATCH_MESSAGES`] new UIDs, then the messages in batches of at most
//! [`BATCH_BYTES`] (one `UID FETCH BODY.PEEK[]` each), the rules and the
//! tracking of a whole batch in ONE store write, then one `UID STORE` per
//! keyword. A backlog costs a few round trips and one durable write per batch
//! instead of three of each per message.
//!
//! With checkpoints (the gateway) every batch's write carries the folder's
//! checkpoint: the last UID whose messages are wholly done (judged, written,
//! keyword set) before this batch. A crash after a batch's write and before its
//! keywords therefore judges that batch again at the next start, which tracks
//! nothing twice (by Message-ID) and sets the keywords it missed; the
//! checkpoint after the last batch is written once its keywords are set.

use std::sync::Arc;

use tokio::sync::watch;

use super::plan::{FolderRole, MailboxPlan, MailboxState, MailboxStatus};
use super::replace::replace_with_block;
use super::user::{blocking, bump, JobError};
use super::watches::sent_message;
use super::Inner;
use crate::imap_client::batch::size_batches;
use crate::imap_client::ImapClient;
use crate::store::{FolderCheckpoint, MailboxCheckpoint, MessageLocation, TrackStatus, UserId};
use crate::track::{AutoDecision, NewMail};

/// New UIDs whose sizes are asked at once, and the most messages in a batch.
const BATCH_MESSAGES: usize = 64;
/// The most message bytes a batch fetches (a larger message is a batch alone).
const BATCH_BYTES: u64 = 8 * 1024 * 1024;
/// Sent mail (judged a message at a time) is checkpointed every this many.
const SENT_CHECKPOINT_EVERY: usize = 64;

/// One folder of a group on its connection: where it stands.
pub(super) struct Cursor {
    pub(super) name: String,
    pub(super) role: FolderRole,
    pub(super) validity: u32,
    /// The last UID wholly done (judged, written, keyword set).
    pub(super) last: u32,
    /// HIGHESTMODSEQ at the last SELECT (CONDSTORE servers), kept in the checkpoint.
    pub(super) modseq: Option<u64>,
}

impl Cursor {
    /// The checkpoint of where this folder stands, for the mailbox `mailbox`.
    pub(super) fn checkpoint(&self, owner: UserId, mailbox: &str) -> MailboxCheckpoint {
        MailboxCheckpoint {
            owner,
            mailbox: mailbox.to_string(),
            folder: self.name.clone(),
            at: FolderCheckpoint {
                uid_validity: self.validity,
                last_uid: self.last,
                highest_modseq: self.modseq,
                updated: chrono::Utc::now(),
            },
        }
    }
}

/// Store a folder's checkpoint on its own (a folder's first look, the end of a
/// run of new mail).
pub(super) async fn save_checkpoint(
    inner: &Arc<Inner>,
    owner: UserId,
    checkpoint: MailboxCheckpoint,
) -> Result<(), JobError> {
    let engine = inner.engine.clone();
    let c = checkpoint;
    blocking(move || {
        Ok(engine
            .store()
            .put_checkpoint(owner, &c.mailbox, &c.folder, &c.at)?)
    })
    .await
}

/// Judge new UIDs (ascending) of a folder, storing the checkpoint as it goes.
pub(super) async fn judge(
    inner: &Arc<Inner>,
    plan: &Arc<MailboxPlan>,
    owner: UserId,
    c: &mut ImapClient,
    f: &mut Cursor,
    new: &[u32],
    shutdown: &watch::Receiver<bool>,
) -> Result<(), JobError> {
    plan.status.set_state(MailboxState::Syncing);
    plan.status.backlog(new.len() as u64);
    let stored = f.last;
    let mut done = 0usize;
    match f.role {
        FolderRole::Incoming => {
            for chunk in new.chunks(BATCH_MESSAGES) {
                // In-flight work finishes; the rest waits for the next start.
                if *shutdown.borrow() {
                    break;
                }
                let sized = c.fetch_sizes(chunk).await?;
                for batch in size_batches(&sized, BATCH_MESSAGES, BATCH_BYTES) {
                    incoming_batch(inner, plan, owner, c, f, &batch).await?;
                }
                // UIDs of the chunk that are gone meanwhile are done too.
                f.last = f.last.max(chunk.last().copied().unwrap_or(0));
                done += chunk.len();
                plan.status.backlog((new.len() - done) as u64);
            }
        }
        FolderRole::Sent => {
            let engine = inner.engine.clone();
            let actor = blocking(move || engine.actor_by_id(owner, owner)).await?;
            let mut since_saved = 0;
            for &uid in new {
                if *shutdown.borrow() {
                    break;
                }
                sent_message(inner, c, actor.clone(), &plan.key, &f.name, uid).await?;
                f.last = f.last.max(uid);
                done += 1;
                plan.status.backlog((new.len() - done) as u64);
                since_saved += 1;
                if plan.checkpoints && since_saved >= SENT_CHECKPOINT_EVERY {
                    save_checkpoint(inner, owner, f.checkpoint(owner, &plan.key)).await?;
                    since_saved = 0;
                }
            }
        }
    }
    if plan.checkpoints && f.last != stored {
        save_checkpoint(inner, owner, f.checkpoint(owner, &plan.key)).await?;
    }
    Ok(())
}

/// One batch of new mail in an incoming folder: fetched at once, judged and
/// tracked in one store write (with the checkpoint of what came before it),
/// then the keywords of what was tracked. Moves the cursor past the batch.
async fn incoming_batch(
    inner: &Arc<Inner>,
    plan: &Arc<MailboxPlan>,
    owner: UserId,
    c: &mut ImapClient,
    f: &mut Cursor,
    uids: &[u32],
) -> Result<(), JobError> {
    // Shared with the blocking task without a copy (messages may be large).
    let fetched = Arc::new(c.fetch_raw_many(uids).await?);
    let locations: Arc<Vec<MessageLocation>> = Arc::new(
        fetched
            .iter()
            .map(|(uid, _)| MessageLocation {
                folder: f.name.clone(),
                uid_validity: f.validity,
                uid: *uid,
            })
            .collect(),
    );
    let checkpoint = plan.checkpoints.then(|| f.checkpoint(owner, &plan.key));
    let engine = inner.engine.clone();
    let (m, at) = (fetched.clone(), locations.clone());
    let regarding = plan.folder_regarding.get(&f.name).copied();
    let rules = plan.rules.clone();
    let judged = blocking(move || {
        let mail: Vec<NewMail<'_>> = m
            .iter()
            .zip(at.iter())
            .map(|((_, raw), location)| NewMail {
                location: Some(location),
                raw,
            })
            .collect();
        engine.on_new_mail_batch(owner, &mail, &rules, regarding, checkpoint.as_ref())
    })
    .await?;

    let cfg = inner.engine.config().clone();
    let mut tracked_uids = Vec::new();
    let mut pending_uids = Vec::new();
    let mut replace = Vec::new();
    for (i, j) in judged.into_iter().enumerate() {
        let uid = fetched[i].0;
        match j {
            Ok((Some(t), _)) => {
                bump(inner);
                MailboxStatus::count(&plan.status.tracked);
                tracing::info!(uid, folder = %f.name, activity = %t.activity.id, "tracked automatically");
                if t.record.status == TrackStatus::Pending {
                    pending_uids.push(uid);
                } else {
                    tracked_uids.push(uid);
                    replace.push(i);
                }
            }
            Ok((None, AutoDecision::Track)) => {
                MailboxStatus::count(&plan.status.skipped);
                // Tracked here before (a batch judged again after a restart
                // that came before its keywords): the keyword is set now.
                if plan.checkpoints {
                    tracked_uids.push(uid);
                }
            }
            Ok((None, AutoDecision::Skip(why))) => {
                MailboxStatus::count(&plan.status.skipped);
                tracing::debug!(uid, folder = %f.name, reason = %why, "not tracked");
            }
            Err(e) => {
                MailboxStatus::count(&plan.status.failed);
                tracing::warn!(uid, folder = %f.name, error = %e, "automatic tracking failed");
            }
        }
    }
    if c.keywords_allowed {
        c.add_keywords_many(&tracked_uids, &[&cfg.tracked_keyword])
            .await?;
        c.add_keywords_many(&pending_uids, &[&cfg.pending_keyword])
            .await?;
    }
    for i in replace {
        replace_with_block(inner, c, owner, &plan.key, &locations[i], &fetched[i].1).await?;
    }
    f.last = f.last.max(uids.iter().copied().max().unwrap_or(0));
    Ok(())
}
