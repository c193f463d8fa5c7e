//! The folders a worker watches, in groups, each group on a connection of its
//! own (IDLE on the group's first folder, the others looked at whenever it
//! wakes): new mail in an incoming folder goes through the automatic-tracking
//! rules, a reply in Sent to tracked email is tracked. With checkpoints (the
//! gateway) each folder resumes after the last UID judged, and a folder whose
//! UIDVALIDITY changed is judged again whole (tracking is idempotent by
//! Message-ID). Reconnects after failures with the plan's back-off; a login the
//! server refused waits for a new one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

use super::judge::{judge, save_checkpoint, Cursor};
use super::plan::{CredentialSource, FolderName, MailboxPlan, MailboxState, WatchedFolder};
use super::replace::replace_with_block;
use super::user::{blocking, bump, do_job, next_login, JobError};
use super::{Inner, Job, Uids};
use crate::imap_client::Credential;
use crate::imap_client::{ClientError, ImapClient, Search};
use crate::store::{MessageLocation, TrackStatus, UserId};
use crate::track::{TrackRequest, TrackSource};

/// A message in the owner's Sent folder: tracked (correlated) when it replies to
/// tracked email, then marked `$CRM_Tracked` where the folder allows keywords.
pub(super) async fn sent_message(
    inner: &Arc<Inner>,
    c: &mut ImapClient,
    actor: crate::track::Actor,
    login: &str,
    folder: &str,
    uid: u32,
) -> Result<(), JobError> {
    let cfg = inner.engine.config().clone();
    let uid_validity = c.select(folder).await?.uid_validity;
    let Some(raw) = c.fetch_raw(uid).await? else {
        return Ok(());
    };
    // Shared with the blocking task without a copy (a message may be large).
    let raw = Arc::new(raw);
    let (owner, r) = (actor.owner_id(), raw.clone());
    let engine = inner.engine.clone();
    let location = MessageLocation {
        folder: folder.to_string(),
        uid_validity,
        uid,
    };
    // Engine::on_sent takes no location: tracking it again with one (an
    // idempotent update) lets fetches find it by UID.
    let at = location.clone();
    let sent = blocking(move || {
        let Some(_) = engine.on_sent(&actor, &r)? else {
            return Ok(None);
        };
        let req = TrackRequest::new(TrackSource::Sent).at(location);
        engine.track(&actor, &r, req).map(Some)
    })
    .await?;
    if let Some(t) = sent {
        bump(inner);
        tracing::info!(uid, folder = %folder, activity = %t.activity.id, "sent reply tracked");
        if c.keywords_allowed {
            c.store_keywords(uid, &[&cfg.tracked_keyword], &[]).await?;
        }
        if t.record.status == TrackStatus::Tracked {
            replace_with_block(inner, c, owner, login, &at, &raw).await?;
        }
    }
    Ok(())
}

/// Watch one group of folders until shutdown (or until none of them exists).
pub(super) async fn watch(
    inner: Arc<Inner>,
    plan: Arc<MailboxPlan>,
    owner: UserId,
    group: Vec<WatchedFolder>,
    sweeps: bool,
) {
    let mut shutdown = inner.shutdown.clone();
    let mut refused: Option<Credential> = None;
    let mut failures = 0u32;
    loop {
        let newest = match &plan.credentials {
            CredentialSource::Sessions(first) => {
                inner.credential(&plan.key).unwrap_or_else(|| first.clone())
            }
            CredentialSource::Fixed(c) => c.clone(),
        };
        let pause;
        if let Some(cred) = next_login(newest, refused.as_ref()) {
            let r = watch_once(&inner, &plan, owner, &cred, &group, sweeps, &mut shutdown).await;
            match r {
                // Shut down, or nothing to watch (no Sent folder): done.
                Ok(()) => return,
                Err(JobError::Imap(e @ ClientError::LoginRefused(_))) => {
                    tracing::warn!(error = %e, "folder watch: login refused; waiting for a new one");
                    plan.status.error(format!("login refused: {e}"));
                    refused = Some(cred);
                    failures += 1;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "folder watch ended; reconnecting");
                    plan.status.error(e.to_string());
                    failures += 1;
                }
            }
            pause = plan.backoff.pause(failures.saturating_sub(1));
        } else if matches!(plan.credentials, CredentialSource::Fixed(_)) {
            // The gateway's own credential: tried again after the longest pause
            // (a server lockout is worse than a late retry).
            refused = None;
            pause = plan.backoff.max;
        } else {
            pause = plan.backoff.pause(0);
        }
        if *shutdown.borrow() {
            return;
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// Adds `n` to a status counter while it lives (connections, folders watched).
struct Counted<'a>(&'a AtomicU64, u64);

impl<'a> Counted<'a> {
    fn new(c: &'a AtomicU64, n: u64) -> Self {
        c.fetch_add(n, Ordering::Relaxed);
        Counted(c, n)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(self.1, Ordering::Relaxed);
    }
}

async fn watch_once(
    inner: &Arc<Inner>,
    plan: &Arc<MailboxPlan>,
    owner: UserId,
    credential: &Credential,
    group: &[WatchedFolder],
    sweeps: bool,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), JobError> {
    // One connection of the server's budget for as long as this one lives.
    let _permit = match &plan.budget {
        Some(b) => Some(
            b.clone()
                .acquire_owned()
                .await
                .map_err(|_| ClientError::Closed)?,
        ),
        None => None,
    };
    if plan.status.fields().state != MailboxState::Error {
        plan.status.set_state(MailboxState::Connecting);
    }
    let mut c = ImapClient::connect(&plan.connector, credential).await?;
    let _counted = Counted::new(&plan.status.connections, 1);
    let mut folders = Vec::new();
    for f in group {
        let name = match &f.name {
            FolderName::Named(n) => n.clone(),
            FolderName::Special(u) => {
                match c
                    .special_folder(*u, inner.engine.config().sent_folder.as_deref())
                    .await?
                {
                    Some(n) => n,
                    None => {
                        tracing::info!(folder = ?u, "no such folder to watch");
                        continue;
                    }
                }
            }
        };
        let (validity, modseq) = match c.select(&name).await {
            Ok(sel) => (sel.uid_validity, sel.highest_modseq),
            // A folder that is gone (or never was): the others are watched,
            // the mailbox shows the problem until it is set right.
            Err(ClientError::Refused { text, .. }) => {
                tracing::warn!(folder = %name, server_said = %text, "cannot watch the folder");
                let said = format!("cannot watch folder {name}: {text}");
                plan.status.folder_problem(&name, Some(said));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        plan.status.folder_problem(&name, None);
        let mut cursor = Cursor {
            name,
            role: f.role,
            validity,
            last: 0,
            modseq,
        };
        Box::pin(start_after(inner, plan, owner, &mut c, &mut cursor)).await?;
        folders.push(cursor);
    }
    if folders.is_empty() {
        return Ok(());
    }
    let _watching = Counted::new(&plan.status.folders_watched, folders.len() as u64);
    if folders.len() > 1 && plan.notify && c.has_capability("NOTIFY").await? {
        // The IDLE folder (the first) is the selected one; the others are told
        // of by NOTIFY STATUS, while IDLE runs and between commands alike.
        let others: Vec<&str> = folders[1..].iter().map(|f| f.name.as_str()).collect();
        match c.notify_new_mail(&others).await {
            Ok(()) => tracing::debug!(folders = folders.len(), "NOTIFY set"),
            Err(e @ (ClientError::Refused { .. } | ClientError::Unsendable(_))) => {
                tracing::info!(error = %e, "no NOTIFY; the other folders are looked at whenever IDLE ends");
            }
            Err(e) => return Err(e.into()),
        }
    }
    let interval = inner.sync_interval.max(std::time::Duration::from_secs(1));
    let mut next_sweep = tokio::time::Instant::now();
    loop {
        if sweeps && tokio::time::Instant::now() >= next_sweep {
            // Boxed, as is the catch-up below: an idle connection (IDLE is most
            // of its life) then holds a small future, not the largest of these.
            Box::pin(sweep_folders(inner, plan, owner, &mut c, &folders)).await?;
            next_sweep = tokio::time::Instant::now() + interval;
        }
        // The IDLE folder last: it stays selected, and mail that arrives after
        // its last search is announced when IDLE starts.
        for f in folders.iter_mut().rev() {
            if *shutdown.borrow() {
                return Ok(());
            }
            Box::pin(catch_up(inner, plan, owner, &mut c, f, shutdown)).await?;
        }
        if c.take_notified() {
            // NOTIFY told of mail in a folder while the others were looked at.
            continue;
        }
        plan.status.synced();
        tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            r = c.idle(plan.idle_for) => { r?; }
        }
    }
}

/// Where a folder's new mail starts (`f.last`): after its checkpoint's UID
/// (same UIDVALIDITY), at the start (a folder recreated: all of it again), else
/// after its newest message.
async fn start_after(
    inner: &Arc<Inner>,
    plan: &Arc<MailboxPlan>,
    owner: UserId,
    c: &mut ImapClient,
    f: &mut Cursor,
) -> Result<(), JobError> {
    if plan.checkpoints {
        let engine = inner.engine.clone();
        let (key, name) = (plan.key.clone(), f.name.clone());
        let cp = blocking(move || Ok(engine.store().checkpoint(owner, &key, &name)?)).await?;
        match cp {
            Some(cp) if cp.uid_validity == f.validity => {
                f.last = cp.last_uid;
                return Ok(());
            }
            Some(cp) => {
                tracing::warn!(
                    folder = %f.name,
                    old = cp.uid_validity,
                    new = f.validity,
                    "UIDVALIDITY changed: the folder is judged again by Message-ID"
                );
                f.last = 0;
                return Ok(());
            }
            None => {}
        }
    }
    f.last = c
        .uid_search(Search::All)
        .await?
        .into_iter()
        .max()
        .unwrap_or(0);
    if plan.checkpoints {
        save_checkpoint(inner, owner, f.checkpoint(owner, &plan.key)).await?;
    }
    Ok(())
}

/// Judge a folder's mail that arrived after its cursor.
async fn catch_up(
    inner: &Arc<Inner>,
    plan: &Arc<MailboxPlan>,
    owner: UserId,
    c: &mut ImapClient,
    f: &mut Cursor,
    shutdown: &watch::Receiver<bool>,
) -> Result<(), JobError> {
    let sel = c.select(&f.name).await?;
    f.modseq = sel.highest_modseq;
    let v = sel.uid_validity;
    if v != f.validity {
        f.validity = v;
        f.last = if plan.checkpoints {
            tracing::warn!(folder = %f.name, "UIDVALIDITY changed: the folder is judged again by Message-ID");
            0
        } else {
            c.uid_search(Search::All)
                .await?
                .into_iter()
                .max()
                .unwrap_or(0)
        };
    }
    // Until a search finds nothing new: mail arriving while the last batch was
    // judged is announced in answers this client does not read.
    loop {
        let mut new: Vec<u32> = c
            .uid_search(Search::UidsFrom(f.last + 1))
            .await?
            .into_iter()
            .filter(|&u| u > f.last)
            .collect();
        if new.is_empty() || *shutdown.borrow() {
            return Ok(());
        }
        new.sort_unstable();
        judge(inner, plan, owner, c, f, &new, shutdown).await?;
    }
}

/// Request keywords in every watched folder (set by a client that talked to
/// the server directly) and, for the group of INBOX, the mailbox's sweep.
async fn sweep_folders(
    inner: &Arc<Inner>,
    plan: &Arc<MailboxPlan>,
    owner: UserId,
    c: &mut ImapClient,
    folders: &[Cursor],
) -> Result<(), JobError> {
    let engine = inner.engine.clone();
    let actor = blocking(move || engine.actor_by_id(owner, owner)).await?;
    for f in folders {
        if f.name.eq_ignore_ascii_case("INBOX") {
            // Pending requests, INBOX requests and claims, as serve's worker does.
            super::sweep::sweep(inner, c, &plan.key, owner).await?;
            continue;
        }
        let job = Job::Track {
            actor: actor.clone(),
            folder: f.name.clone(),
            uids: Uids::Keyword(inner.engine.config().request_keyword.clone()),
            source: TrackSource::Keyword,
        };
        do_job(inner, c, &plan.key, job).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// The size of the future an async fn of five arguments returns.
    fn future_size<A, B, C, D, E, F: std::future::Future>(_: fn(A, B, C, D, E) -> F) -> usize {
        std::mem::size_of::<F>()
    }
    fn future_size3<A, B, C, F: std::future::Future>(_: fn(A, B, C) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// A gateway holds one `run` and two `watch` tasks per mailbox for as long
    /// as it runs, mostly idle: their futures must not carry the largest of
    /// their rare steps inline (catching up, sweeping, jobs were 12 KB each).
    #[test]
    fn a_mailbox_s_long_lived_futures_stay_small() {
        let watch = future_size(super::watch as fn(_, _, _, _, _) -> _);
        let run = future_size3(super::super::user::run as fn(_, _, _) -> _);
        assert!(watch < 6 * 1024, "watch future: {watch} bytes");
        assert!(run < 6 * 1024, "run future: {run} bytes");
    }
}
