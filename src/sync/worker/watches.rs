//! The folders a worker watches with IDLE, each on a connection of its own: new
//! INBOX mail goes to automatic tracking, a reply in Sent to tracked email is
//! tracked. Reconnects after failures; a login the server refused waits for a new one.

use std::time::Duration;

use std::sync::Arc;

use super::replace::replace_with_block;
use super::user::{blocking, JobError};
use super::user::{bump, next_login, RECONNECT_PAUSE};
use super::Inner;
use crate::imap_client::folders::SpecialUse;
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

/// The folders a worker watches with IDLE.
#[derive(Debug, Clone, Copy)]
pub(super) enum Watched {
    /// New mail is judged by the user's automatic-tracking option.
    Inbox,
    /// Replies saved by any client (or by the server) that answer tracked email.
    Sent,
}

pub(super) async fn watch(
    inner: Arc<Inner>,
    owner: UserId,
    login: String,
    credential: Credential,
    what: Watched,
) {
    let mut shutdown = inner.shutdown.clone();
    let mut refused = None;
    loop {
        let newest = inner
            .credential(&login)
            .unwrap_or_else(|| credential.clone());
        if let Some(cred) = next_login(newest, refused.as_ref()) {
            let r = tokio::select! {
                _ = shutdown.changed() => return,
                r = watch_once(&inner, owner, &login, &cred, what) => r,
            };
            match r {
                // Nothing to watch (no Sent folder): done.
                Ok(()) => return,
                Err(JobError::Imap(
                    e @ ClientError::Refused {
                        command: "LOGIN", ..
                    },
                )) => {
                    tracing::warn!(error = %e, folder = ?what, "folder watch: login refused; waiting for a new one");
                    refused = Some(cred);
                }
                Err(e) => {
                    tracing::warn!(error = %e, folder = ?what, "folder watch ended; reconnecting")
                }
            }
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(RECONNECT_PAUSE) => {}
        }
    }
}

async fn watch_once(
    inner: &Arc<Inner>,
    owner: UserId,
    login: &str,
    credential: &Credential,
    what: Watched,
) -> Result<(), JobError> {
    let mut c = ImapClient::connect(&inner.connector, credential).await?;
    let folder = match what {
        Watched::Inbox => "INBOX".to_string(),
        Watched::Sent => match c
            .special_folder(
                SpecialUse::Sent,
                inner.engine.config().sent_folder.as_deref(),
            )
            .await?
        {
            Some(f) => f,
            None => {
                tracing::info!("no Sent folder to watch");
                return Ok(());
            }
        },
    };
    let mut validity = c.select(&folder).await?.uid_validity;
    let mut last = c
        .uid_search(Search::All)
        .await?
        .into_iter()
        .max()
        .unwrap_or(0);
    let idle_for = inner
        .sync_interval
        .min(Duration::from_secs(29 * 60))
        .max(Duration::from_secs(1));
    loop {
        c.idle(idle_for).await?;
        let v = c.select(&folder).await?.uid_validity;
        if v != validity {
            validity = v;
            last = c
                .uid_search(Search::All)
                .await?
                .into_iter()
                .max()
                .unwrap_or(0);
            continue;
        }
        let mut new: Vec<u32> = c
            .uid_search(Search::UidsFrom(last + 1))
            .await?
            .into_iter()
            .filter(|&u| u > last)
            .collect();
        new.sort_unstable();
        for uid in new {
            last = last.max(uid);
            match what {
                Watched::Inbox => inbox_message(inner, &mut c, owner, login, validity, uid).await?,
                Watched::Sent => {
                    let engine = inner.engine.clone();
                    let actor = blocking(move || engine.actor_by_id(owner, owner)).await?;
                    sent_message(inner, &mut c, actor, login, &folder, uid).await?;
                    // sent_message selected the folder again: still the same one.
                }
            }
        }
    }
}

/// New INBOX mail: tracked when the owner's automatic-tracking option says so.
async fn inbox_message(
    inner: &Arc<Inner>,
    c: &mut ImapClient,
    owner: UserId,
    login: &str,
    validity: u32,
    uid: u32,
) -> Result<(), JobError> {
    let Some(raw) = c.fetch_raw(uid).await? else {
        return Ok(());
    };
    // Shared with the blocking task without a copy (a message may be large).
    let raw = Arc::new(raw);
    let engine = inner.engine.clone();
    let location = MessageLocation {
        folder: "INBOX".into(),
        uid_validity: validity,
        uid,
    };
    let (at, r) = (location.clone(), raw.clone());
    match blocking(move || engine.on_new_inbox_mail(owner, &r, Some(location))).await {
        Ok(Some(t)) => {
            bump(inner);
            tracing::info!(uid, activity = %t.activity.id, "tracked automatically");
            if c.keywords_allowed {
                let cfg = inner.engine.config();
                let kw = if t.record.status == TrackStatus::Pending {
                    &cfg.pending_keyword
                } else {
                    &cfg.tracked_keyword
                };
                c.store_keywords(uid, &[kw], &[]).await?;
            }
            if t.record.status == TrackStatus::Tracked {
                replace_with_block(inner, c, owner, login, &at, &raw).await?;
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(uid, error = %e, "automatic tracking failed"),
    }
    Ok(())
}
