//! One mailbox's worker task: jobs from sessions on one connection, retried on a
//! fresh one when it fails; the sweeps (`sweep.rs`) at its start and every sync
//! interval; INBOX and the Sent folder watched with IDLE (`watches.rs`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

use super::plan::{CredentialSource, MailboxPlan, MailboxState};
use super::replace::replace_with_block;
use super::sweep::{sweep, sweep_pending};
use super::watches::{sent_message, watch};
use super::{Inner, Job, Uids};
use crate::events::KeywordCleanup;
use crate::imap_client::Credential;
use crate::imap_client::{ClientError, ImapClient, Search};
use crate::store::{MessageId, MessageLocation, TrackStatus};
use crate::track::{TrackError, TrackRequest};
use tracing::Instrument;

/// Pause before reconnecting after the upstream failed.
pub(super) const RECONNECT_PAUSE: Duration = Duration::from_secs(5);
/// How often a job is tried, each time on a fresh connection after the one it ran
/// on failed (the upstream restarted, the network dropped): the client was told OK.
const JOB_TRIES: u32 = 3;

/// The login to try next: the mailbox's newest credential, unless the server
/// refused exactly that one already (trying it again and again would only earn
/// the account a lockout; a session logging in anew brings a new one).
pub(super) fn next_login(newest: Credential, refused: Option<&Credential>) -> Option<Credential> {
    (refused != Some(&newest)).then_some(newest)
}

#[derive(Debug, thiserror::Error)]
pub(super) enum JobError {
    #[error(transparent)]
    Imap(#[from] ClientError),
    #[error(transparent)]
    Track(#[from] TrackError),
    #[error("tracking task failed: {0}")]
    Join(String),
}

pub(super) async fn run(inner: Arc<Inner>, plan: Arc<MailboxPlan>, mut jobs: mpsc::Receiver<Job>) {
    let owner = plan.key.clone();
    let credential = match &plan.credentials {
        CredentialSource::Sessions(c) | CredentialSource::Fixed(c) => c.clone(),
    };
    let engine = inner.engine.clone();
    let o = plan.owner.clone();
    let owner_id = match tokio::task::spawn_blocking(move || engine.actor(&o, &o)).await {
        Ok(Ok(actor)) => Ok(actor.owner_id()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    // A mailbox the CRM does not know (or whose user lacks use_app) has nothing to
    // track: no worker, and so no extra upstream connections. A later login
    // checks again (the user may have been added or granted meanwhile).
    let owner_id = match owner_id {
        Ok(id) => id,
        Err(e) => {
            tracing::debug!("no sync worker: the mailbox's user is not a CRM user with use_app");
            plan.status.error(format!("owner {}: {e}", plan.owner));
            return;
        }
    };
    let mut watchers = tokio::task::JoinSet::new();
    let mut groups = plan.watch_groups();
    if groups.len() > 1 && plan.notify && server_has_notify(&plan, &credential).await {
        groups = plan.one_watch_group();
    }
    for group in groups {
        // Without a job connection the watchers sweep, each its own folders'
        // request keywords (the group holding INBOX also the pending requests).
        let sweeps = !plan.job_connection;
        let w = watch(inner.clone(), plan.clone(), owner_id, group, sweeps);
        watchers.spawn(w.instrument(tracing::Span::current()));
    }
    if !plan.job_connection {
        while watchers.join_next().await.is_some() {}
        plan.status.set_state(MailboxState::Stopped);
        return;
    }
    watchers.detach_all();
    let mut conn: Option<ImapClient> = None;
    let mut shutdown = inner.shutdown.clone();
    // The first tick is immediate: a worker's first work is a sweep (requests
    // left on the server while no worker ran are picked up at login).
    let mut sweep_timer = tokio::time::interval(inner.sync_interval);
    // Jobs asked for while no worker ran (the pane's untracks): done first.
    let mut backlog = std::collections::VecDeque::new();
    // A job whose connection failed under it, and how often it was tried.
    let mut retry: Option<(Job, u32)> = None;
    let mut refused: Option<Credential> = None;
    // The layout learned and the tracking folder created, on the first connection.
    let mut folders_ready = false;
    loop {
        if conn.is_none() {
            let newest = inner
                .credential(&owner)
                .unwrap_or_else(|| credential.clone());
            let Some(login) = next_login(newest, refused.as_ref()) else {
                tokio::select! {
                    _ = shutdown.changed() => break,
                    _ = tokio::time::sleep(RECONNECT_PAUSE) => continue,
                }
            };
            match Box::pin(ImapClient::connect(&plan.connector, &login)).await {
                Ok(mut c) => {
                    if !folders_ready {
                        match Box::pin(super::folders::prepare(&inner, &mut c, &owner)).await {
                            Ok(()) => folders_ready = true,
                            Err(e) => {
                                tracing::warn!(error = %e, "folder set-up failed; tried again on the next connection")
                            }
                        }
                    }
                    conn = Some(c);
                    refused = None;
                }
                Err(e) => {
                    if matches!(e, ClientError::LoginRefused(_)) {
                        tracing::warn!(error = %e, "sync worker: the upstream refused the login; waiting for the next login through the proxy");
                        refused = Some(login);
                    } else {
                        tracing::warn!(error = %e, "sync worker cannot reach the upstream");
                    }
                    tokio::select! {
                        _ = shutdown.changed() => break,
                        _ = tokio::time::sleep(RECONNECT_PAUSE) => continue,
                    }
                }
            }
        }
        backlog.extend(inner.take_deferred(&owner));
        let (job, tries) = match retry.take() {
            Some((j, tries)) => (Some(j), tries),
            None => match backlog.pop_front() {
                Some(j) => (Some(j), 0),
                None => tokio::select! {
                    _ = shutdown.changed() => break,
                    j = jobs.recv() => match j { Some(j) => (Some(j), 0), None => break },
                    _ = sweep_timer.tick() => (None, 0),
                },
            },
        };
        let c = conn.as_mut().expect("connected above");
        // Boxed: the task's own future stays small while it waits (a gateway
        // keeps one such task per mailbox).
        let result = match &job {
            Some(job) => Box::pin(do_job(&inner, c, &owner, job.clone())).await,
            None => Box::pin(sweep(&inner, c, &owner, owner_id)).await,
        };
        if let Err(e) = result {
            if matches!(e, JobError::Imap(_)) {
                // The connection is gone or unusable: the job runs again on a
                // fresh one (jobs are idempotent: tracking twice finds one record).
                conn = None;
                match job {
                    Some(job) if tries + 1 < JOB_TRIES => {
                        tracing::info!(error = %e, "sync worker job failed; trying it again on a fresh connection");
                        retry = Some((job, tries + 1));
                        continue;
                    }
                    _ => {}
                }
            }
            tracing::warn!(error = %e, "sync worker job failed");
        }
    }
    if let Some(c) = conn {
        c.logout().await;
    }
}

/// Whether the mailbox's server has NOTIFY (RFC 5465), asked on a connection
/// of its own at the start; `false` when it cannot be asked (the watchers then
/// keep one connection per group, and say why they cannot connect).
async fn server_has_notify(plan: &MailboxPlan, credential: &Credential) -> bool {
    let _permit = match &plan.budget {
        Some(b) => match b.clone().acquire_owned().await {
            Ok(p) => Some(p),
            Err(_) => return false,
        },
        None => None,
    };
    let Ok(mut c) = ImapClient::connect(&plan.connector, credential).await else {
        return false;
    };
    let has = c.has_capability("NOTIFY").await.unwrap_or(false);
    c.logout().await;
    has
}

pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, TrackError> + Send + 'static,
) -> Result<T, JobError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| JobError::Join(e.to_string()))?
        .map_err(JobError::Track)
}

async fn expand(c: &mut ImapClient, uids: Uids) -> Result<Vec<u32>, ClientError> {
    match uids {
        Uids::List(l) => Ok(l),
        Uids::Set(s) => c.uid_search(Search::UidSet(&s)).await,
        Uids::Keyword(k) => c.uid_search(Search::Keyword(&k)).await,
    }
}

pub(super) fn bump(inner: &Inner) {
    inner.generation.fetch_add(1, Ordering::AcqRel);
}

pub(super) async fn do_job(
    inner: &Arc<Inner>,
    c: &mut ImapClient,
    owner: &str,
    job: Job,
) -> Result<(), JobError> {
    let cfg = inner.engine.config().clone();
    match job {
        Job::Track {
            actor,
            folder,
            uids,
            source,
        } => {
            let uid_validity = c.select(&folder).await?.uid_validity;
            let mut left_pending = false;
            for uid in expand(c, uids).await? {
                let kw = c.keywords_allowed;
                if kw {
                    c.store_keywords(uid, &[&cfg.pending_keyword], &[]).await?;
                }
                let Some(raw) = c.fetch_raw(uid).await? else {
                    continue;
                };
                // Shared with the blocking task without a copy (a message may be large).
                let raw = Arc::new(raw);
                let location = MessageLocation {
                    folder: folder.clone(),
                    uid_validity,
                    uid,
                };
                let engine = inner.engine.clone();
                let (a, req, r) = (
                    actor.clone(),
                    TrackRequest::new(source.clone()).at(location.clone()),
                    raw.clone(),
                );
                let result = blocking(move || engine.track(&a, &r, req)).await;
                bump(inner);
                match result {
                    Ok(t) => {
                        tracing::info!(uid, folder = %folder, activity = %t.activity.id, "tracked");
                        left_pending |= t.record.status == TrackStatus::Pending;
                        if kw {
                            let state = inner
                                .engine
                                .keywords_for(&t.record.status)
                                .unwrap_or(&cfg.tracked_keyword)
                                .to_string();
                            let mut remove = vec![cfg.request_keyword.as_str()];
                            if state != cfg.pending_keyword {
                                remove.push(&cfg.pending_keyword);
                            }
                            c.store_keywords(uid, &[&state], &remove).await?;
                        }
                        if t.record.status == TrackStatus::Tracked {
                            let owner_id = actor.owner_id();
                            replace_with_block(inner, c, owner_id, owner, &location, &raw).await?;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(uid, folder = %folder, error = %e, "cannot track");
                        let refused = match &e {
                            JobError::Track(t) if t.is_refusal() => Some(t.alert_text()),
                            _ => None,
                        };
                        if kw {
                            // Refused: nothing changes, the request keyword goes too.
                            let mut remove = vec![cfg.pending_keyword.as_str()];
                            if refused.is_some() {
                                remove.push(&cfg.request_keyword);
                            }
                            c.store_keywords(uid, &[], &remove).await?;
                        }
                        if let Some(text) = refused {
                            inner.notice(owner, text);
                        }
                    }
                }
            }
            // What went pending (a recurring meeting) is completed now, not at the
            // next interval: the worker is immediate (SPEC section 5).
            if left_pending {
                sweep_pending(inner, c, actor.owner_id(), owner).await?;
            }
        }
        Job::Sent { actor, folder, uid } => {
            sent_message(inner, c, actor, owner, &folder, uid).await?
        }
        Job::ClearKeywords(at) => clear_keywords(inner, c, &at).await?,
        Job::SweepPending => {
            let engine = inner.engine.clone();
            let o = owner.to_string();
            let owner_id = blocking(move || engine.actor(&o, &o)).await?.owner_id();
            sweep(inner, c, owner, owner_id).await?
        }
        Job::Untrack {
            actor,
            folder,
            uids,
        } => {
            let uid_validity = c.select(&folder).await?.uid_validity;
            for uid in expand(c, uids).await? {
                let location = MessageLocation {
                    folder: folder.clone(),
                    uid_validity,
                    uid,
                };
                let engine = inner.engine.clone();
                let owner = actor.owner_id();
                let mut mid = blocking(move || engine.tracking_at(owner, &location))
                    .await?
                    .map(|r| r.message_id);
                if mid.is_none() {
                    // Its Message-ID field only: a `STORE 1:* FLAGS (\Seen)` names
                    // every message, and most were never tracked.
                    let field = c.fetch_message_id_field(uid).await?;
                    mid = field
                        .as_deref()
                        .and_then(crate::proxy::state::message_id_from_header)
                        .and_then(|m| MessageId::parse(&m).ok());
                    if mid.is_none() && field.is_some() {
                        // None in the header: tracked under one made from the bytes.
                        if let Some(raw) = c.fetch_raw(uid).await? {
                            mid = message_id_of(&raw);
                        }
                    }
                }
                let Some(mid) = mid else { continue };
                let engine = inner.engine.clone();
                let a = actor.clone();
                let was = blocking(move || engine.untrack(&a, &mid)).await?;
                if !was {
                    continue;
                }
                bump(inner);
                tracing::info!(uid, folder = %folder, "untracked");
                if c.keywords_allowed {
                    c.store_keywords(
                        uid,
                        &[],
                        &[
                            &cfg.tracked_keyword,
                            &cfg.pending_keyword,
                            &cfg.request_keyword,
                        ],
                    )
                    .await?;
                }
            }
        }
    }
    Ok(())
}

/// The pane untracked a message: `UID STORE -FLAGS.SILENT ($CRM_Tracked $CRM_Pending)`
/// where it is. When the folder was recreated since (UIDVALIDITY changed) the message
/// is looked for by its Message-ID header in that folder.
async fn clear_keywords(
    inner: &Arc<Inner>,
    c: &mut ImapClient,
    at: &KeywordCleanup,
) -> Result<(), JobError> {
    let cfg = inner.engine.config().clone();
    let validity = c.select(&at.folder).await?.uid_validity;
    let uids = if validity == at.uid_validity {
        vec![at.uid]
    } else {
        let id = format!("<{}>", at.message_id);
        c.uid_search(Search::MessageId(&id)).await?
    };
    if !c.keywords_allowed {
        // The keywords were never set here (the proxy showed them in FLAGS instead).
        bump(inner);
        return Ok(());
    }
    // The request keyword too: left there, the next sweep would track it again.
    let all = [
        cfg.tracked_keyword.as_str(),
        cfg.pending_keyword.as_str(),
        cfg.request_keyword.as_str(),
    ];
    for uid in uids {
        c.store_keywords(uid, &[], &all).await?;
        tracing::info!(uid, folder = %at.folder, "tracking keywords removed after untrack");
    }
    bump(inner);
    Ok(())
}

/// The Message-ID of raw bytes as the engine keys it (a synthetic one without).
fn message_id_of(raw: &[u8]) -> Option<MessageId> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    match crate::proxy::state::message_id_from_header(&raw[..end]) {
        Some(m) => MessageId::parse(&m).ok(),
        None => Some(crate::track::synthetic_message_id(raw)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(password: &str) -> Credential {
        Credential::Login {
            user: b"alice@example.test".to_vec(),
            password: password.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_refused_credential_is_not_tried_again_until_a_new_one_comes() {
        assert_eq!(next_login(login("a"), None), Some(login("a")));
        assert_eq!(next_login(login("a"), Some(&login("a"))), None);
        assert_eq!(next_login(login("b"), Some(&login("a"))), Some(login("b")));
    }
}
