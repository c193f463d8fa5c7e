//! The worker's sweeps, at its start and every sync interval: pending requests
//! that say where their message is, request keywords left in INBOX by clients that
//! bypassed the proxy, and `$CRM_Tracked` claimed on mail the CRM never tracked.

use std::sync::Arc;

use super::replace::replace_with_block;
use super::user::{blocking, bump, do_job, JobError};
use super::{Inner, Job, Uids};
use crate::imap_client::{ImapClient, Search};
use crate::store::{MessageId, MessageLocation, TrackingRecord, UserId};
use crate::track::TrackSource;

/// The periodic sweep: pending requests, then requests left on the server.
pub(super) async fn sweep(
    inner: &Arc<Inner>,
    c: &mut ImapClient,
    owner: &str,
    owner_id: UserId,
) -> Result<(), JobError> {
    sweep_pending(inner, c, owner_id, owner).await?;
    sweep_requests(inner, c, owner).await?;
    sweep_claims(inner, c, owner, owner_id).await
}

/// `$CRM_Tracked` on INBOX messages the CRM never tracked (set by a client that
/// talked to the server directly): a claim the keyword may not make, so it is
/// taken as a request and tracked for real (state keywords never lie).
async fn sweep_claims(
    inner: &Arc<Inner>,
    c: &mut ImapClient,
    owner: &str,
    owner_id: UserId,
) -> Result<(), JobError> {
    let cfg = inner.engine.config().clone();
    let uid_validity = c.select("INBOX").await?.uid_validity;
    let mut claimed = Vec::new();
    for uid in c.uid_search(Search::Keyword(&cfg.tracked_keyword)).await? {
        let at = MessageLocation {
            folder: "INBOX".into(),
            uid_validity,
            uid,
        };
        let engine = inner.engine.clone();
        if blocking(move || engine.tracking_at(owner_id, &at))
            .await?
            .is_some()
        {
            continue;
        }
        let field = c.fetch_message_id_field(uid).await?;
        let mid = field
            .as_deref()
            .and_then(crate::proxy::state::message_id_from_header)
            .and_then(|m| MessageId::parse(&m).ok());
        if let Some(mid) = mid {
            let engine = inner.engine.clone();
            if blocking(move || engine.tracking(owner_id, &mid))
                .await?
                .is_some()
            {
                continue;
            }
        }
        claimed.push(uid);
    }
    if claimed.is_empty() {
        return Ok(());
    }
    tracing::info!(
        count = claimed.len(),
        "tracked keyword set behind the proxy's back: tracking for real"
    );
    let engine = inner.engine.clone();
    let o = owner.to_string();
    let actor = blocking(move || engine.actor(&o, &o)).await?;
    let job = Job::Track {
        actor,
        folder: "INBOX".into(),
        uids: Uids::List(claimed),
        source: TrackSource::Keyword,
    };
    Box::pin(do_job(inner, c, owner, job)).await
}

/// The request keyword on INBOX messages no job took (set by a client that
/// bypassed the proxy, or while no worker ran): tracked like any keyword request.
async fn sweep_requests(
    inner: &Arc<Inner>,
    c: &mut ImapClient,
    owner: &str,
) -> Result<(), JobError> {
    let engine = inner.engine.clone();
    let o = owner.to_string();
    let actor = blocking(move || engine.actor(&o, &o)).await?;
    let job = Job::Track {
        actor,
        folder: "INBOX".into(),
        uids: Uids::Keyword(inner.engine.config().request_keyword.clone()),
        source: TrackSource::Keyword,
    };
    Box::pin(do_job(inner, c, owner, job)).await
}

/// Complete this mailbox's pending requests that say where the message is.
pub(super) async fn sweep_pending(
    inner: &Arc<Inner>,
    c: &mut ImapClient,
    owner: UserId,
    login: &str,
) -> Result<(), JobError> {
    let engine = inner.engine.clone();
    let pending: Vec<TrackingRecord> = blocking(move || engine.pending(owner, 500))
        .await?
        .into_iter()
        .filter(|r| r.location.is_some())
        .collect();
    for record in pending {
        let loc = record.location.clone().expect("filtered");
        let validity = c.select(&loc.folder).await?.uid_validity;
        let engine = inner.engine.clone();
        if validity != loc.uid_validity {
            let r = record.clone();
            blocking(move || engine.fail(&r, "the folder was recreated (UIDVALIDITY changed)"))
                .await?;
            continue;
        }
        let raw = c.fetch_raw(loc.uid).await?.map(Arc::new);
        let r = record.clone();
        let result = match raw.clone() {
            Some(raw) => blocking(move || engine.complete_pending(&r, &raw).map(|_| ())).await,
            None => {
                blocking(move || {
                    engine
                        .fail(&r, "the message is no longer in its folder")
                        .map(|_| ())
                })
                .await
            }
        };
        bump(inner);
        if let Err(e) = result {
            let engine = inner.engine.clone();
            let reason = e.to_string();
            blocking(move || engine.retry_later(&record, &reason)).await?;
        } else if let Some(raw) = raw {
            if c.keywords_allowed {
                let cfg = inner.engine.config();
                c.store_keywords(
                    loc.uid,
                    &[&cfg.tracked_keyword],
                    &[&cfg.pending_keyword, &cfg.request_keyword],
                )
                .await?;
            }
            replace_with_block(inner, c, owner, login, &loc, &raw).await?;
        }
    }
    Ok(())
}
