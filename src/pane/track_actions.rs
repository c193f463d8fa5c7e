//! The tracking panel's actions (SPEC section 6, the guide's "Track", "Set Regarding",
//! "Change Regarding", "Untrack"), as no-JavaScript form posts and as `/api/*` JSON
//! calls, all through the tracking engine. (The search page that picks the record
//! for Set Regarding is `regarding_search`.)
//!
//! A user acts only on the mailbox of the session (their own, or as a delegate an
//! owner's who granted it; the engine records the delegate as the actor), and only
//! on a message that is current or recent in that mailbox or tracked there: a
//! guessed Message-ID that is none of these is refused and nothing changes. Only a
//! message the proxy saw fetched from the mailbox (folder and UID known) counts as
//! held by it: one made current by hand or by an add-in (`POST /current`) may be
//! anybody's mail, so tracking it only asks (pending) and never links the CRM's
//! activity, text and all, to this mailbox. Tracking a message the CRM has not seen whole asks the engine
//! for a pending request, which the sync worker completes by fetching the message
//! (it knows where from the folder, UIDVALIDITY and UID the proxy saw).
//!
//! Untrack also takes `$CRM_Tracked`/`$CRM_Pending` off the server copy: the pane
//! hands that to the mailbox's sync worker (which holds the credentials), or, when
//! no worker runs for the mailbox, leaves it for the worker's next start and says so.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use serde_json::json;

use super::crm::{kind_label, with_store};
use super::errors::{ApiFailure, Failure, PageFailure};
use super::handlers::{valid_message_id, SignedIn};
use super::AppState;
use crate::events::{CleanupQueued, KeywordCleanup};
use crate::store::{Kind, MessageId, MessageLocation, RecordRef, TrackStatus, TrackingRecord};
use crate::track::{parse_record_ref, Actor, TrackError, TrackRequest, TrackSource};

/// The record types an email can be regarding, in the guide's order.
pub const REGARDING_KINDS: [Kind; 6] = [
    Kind::Account,
    Kind::Contact,
    Kind::Lead,
    Kind::Opportunity,
    Kind::Case,
    Kind::Invoice,
];

/// What a user asked of the tracking panel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackAction {
    Track,
    /// Set or change (`Some`) or clear (`None`) the regarding record; tracks the
    /// message first when it is not tracked yet.
    Regarding(Option<RecordRef>),
    /// Track regarding a record created in the same action ("Add as contact / lead");
    /// a delegate is refused a new contact as regarding.
    RegardingNew(RecordRef),
    Untrack,
}

/// The outcome, for a message on the page and the API's answer.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub message: String,
    pub record: Option<TrackingRecord>,
    /// After Untrack: what happens to the keywords on the server copy.
    pub server_copy: Option<ServerCopy>,
}

/// What becomes of the tracking keywords on the server copy after Untrack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerCopy {
    /// The mailbox's sync worker is removing them now.
    Removing,
    /// No sync worker runs for the mailbox: removed when one next starts.
    WhenWorkerRuns,
    /// The proxy never saw where the message is in the mailbox.
    LocationUnknown,
    /// The pane runs without the proxy.
    NoProxy,
}

impl ServerCopy {
    fn as_str(self) -> &'static str {
        match self {
            ServerCopy::Removing => "removing",
            ServerCopy::WhenWorkerRuns => "pending_worker",
            ServerCopy::LocationUnknown => "location_unknown",
            ServerCopy::NoProxy => "no_proxy",
        }
    }

    fn sentence(self) -> &'static str {
        match self {
            ServerCopy::Removing => {
                "The tracked keyword is being removed from the message on the mail server."
            }
            ServerCopy::WhenWorkerRuns => {
                "No sync worker runs for this mailbox right now (no mail client has signed \
                 in through the proxy since it started), so the message on the mail server \
                 keeps its tracked keyword until one does; it is removed then."
            }
            ServerCopy::LocationUnknown => {
                "The proxy has not seen where this message is in the mailbox, so the message \
                 on the mail server keeps its tracked keyword: remove the tag in your mail client."
            }
            ServerCopy::NoProxy => {
                "This pane runs without the proxy: the message on the mail server keeps its \
                 tracked keyword."
            }
        }
    }
}

/// A tracking error as the user sees it (nothing was written).
pub fn track_failure(e: TrackError) -> Failure {
    let status = match &e {
        TrackError::Store(_) => {
            tracing::error!(error = %e, "the pane's tracking action failed in the store");
            return Failure::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The CRM store failed; nothing was changed. See the server log.",
            );
        }
        TrackError::UnknownUser { .. }
        | TrackError::NoPrivilege { .. }
        | TrackError::NotDelegate { .. }
        | TrackError::DelegateNewContact
        | TrackError::DelegateContacts
        | TrackError::NotOrganizer { .. } => StatusCode::FORBIDDEN,
        TrackError::NotTracked { .. } => StatusCode::CONFLICT,
        TrackError::RegardingMissing { .. } => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    };
    let text = e.to_string();
    let mut chars = text.chars();
    let first: String = chars
        .next()
        .map(|c| c.to_uppercase().collect())
        .unwrap_or_default();
    Failure::new(status, format!("{first}{}.", chars.as_str()))
}

fn not_yours() -> Failure {
    Failure::new(
        StatusCode::NOT_FOUND,
        "This message is not one you opened through the proxy, nor is it tracked in \
         your mailbox. Open it in your mail client (through crmproxy) first.",
    )
}

/// Check, before anything is written, that the user may act on message `raw_id`
/// (see the module comment). Returns the normalized Message-ID.
pub async fn check_message(
    app: &AppState,
    user: &SignedIn,
    raw_id: &str,
) -> Result<MessageId, Failure> {
    let mid = parse_mid(raw_id)?;
    if app.events.find(&user.user, mid.as_str()).is_some() {
        return Ok(mid);
    }
    let owner = user.crm_user.id;
    let m = mid.clone();
    let tracked = with_store(app, move |s| s.tracking(owner, &m)).await?;
    match tracked {
        Some(_) => Ok(mid),
        None => Err(not_yours()),
    }
}

pub(crate) fn parse_mid(raw: &str) -> Result<MessageId, Failure> {
    let id = valid_message_id(raw)?;
    crate::track::message_id_lenient(&id).map_err(|_| {
        Failure::new(
            StatusCode::BAD_REQUEST,
            "A Message-ID looks like abc123@example.com (at most 998 characters, one line).",
        )
    })
}

/// `""` (clear) or `type:uuid` of a record that can be regarding.
pub fn parse_regarding(raw: Option<&str>) -> Result<Option<RecordRef>, Failure> {
    let raw = raw.map(str::trim).unwrap_or("");
    if raw.is_empty() {
        return Ok(None);
    }
    if raw.len() > 100 {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "A regarding record is TYPE:UUID, e.g. account:0190….",
        ));
    }
    let r = parse_record_ref(raw).map_err(|e| Failure::new(StatusCode::BAD_REQUEST, e))?;
    if !r.kind.can_be_regarding() {
        return Err(track_failure(TrackError::NotRegardable { kind: r.kind }));
    }
    Ok(Some(r))
}

/// The pane's actor: who signed in, acting on the session's mailbox (their own, or
/// an owner's as a delegate). Checked again by the engine on every action.
fn actor(app: &AppState, user: &SignedIn) -> Result<Actor, Failure> {
    app.engine
        .actor_by_id(user.crm_user.id, user.acting.id)
        .map_err(track_failure)
}

/// Why this mailbox may not track message `mid` (a meeting invitation it did not
/// organise, where the organisation does not allow that), for the tracking panel's
/// banner. `None` when nothing stands in the way.
pub async fn meeting_refusal(
    app: &AppState,
    user: &SignedIn,
    mid: &str,
) -> Result<Option<String>, Failure> {
    let Ok(mid) = crate::track::message_id_lenient(mid) else {
        return Ok(None);
    };
    let engine = app.engine.clone();
    let owner = user.crm_user.id;
    let checked = tokio::task::spawn_blocking(move || engine.check_meeting_organizer(owner, &mid))
        .await
        .map_err(|_| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, "The check failed."))?;
    match checked {
        Ok(()) => Ok(None),
        Err(e) if e.is_refusal() => Ok(Some(track_failure(e).message)),
        Err(e) => Err(track_failure(e)),
    }
}

/// Run `action` on message `raw_id` for the signed-in user.
pub async fn perform(
    app: &AppState,
    user: &SignedIn,
    raw_id: &str,
    action: TrackAction,
) -> Result<Outcome, Failure> {
    let mid = parse_mid(raw_id)?;
    let mid_text = mid.as_str().to_owned();
    let actor = actor(app, user)?;
    let seen = app.events.find(&user.user, mid.as_str());
    // Only the proxy's own sighting says where the message is (see the module comment).
    let location = seen.as_ref().filter(|m| m.seen_in_mailbox()).and_then(|m| {
        match (&m.mailbox, m.uid, m.uid_validity) {
            (Some(folder), Some(uid), Some(uid_validity)) => Some(MessageLocation {
                folder: folder.clone(),
                uid_validity,
                uid,
            }),
            _ => None,
        }
    });
    let engine = app.engine.clone();
    let seen = seen.is_some();
    // A contact this session quick-created counts as new: a delegate may not pick it.
    let picked_new_contact = match &action {
        TrackAction::Regarding(Some(r)) => {
            r.kind == Kind::Contact && app.sessions.created_contact(&user.session.id, r.id)
        }
        _ => false,
    };
    let res = tokio::task::spawn_blocking(
        move || -> Result<(Outcome, Option<MessageLocation>), Failure> {
            let tracked = engine
                .tracking(actor.owner_id(), &mid)
                .map_err(track_failure)?;
            if tracked.is_none() && !seen {
                return Err(not_yours());
            }
            if tracked.is_none() && !matches!(action, TrackAction::Untrack) {
                // Refused before anything is asked (the panel showed it as a banner).
                engine
                    .check_meeting_organizer(actor.owner_id(), &mid)
                    .map_err(track_failure)?;
            }
            let untrack_at = tracked
                .as_ref()
                .and_then(|t| t.location.clone())
                .or_else(|| location.clone());
            let request = |regarding: Option<RecordRef>, is_new_contact: bool| {
                let mut req = TrackRequest::new(TrackSource::Pane);
                req.regarding = regarding;
                req.regarding_is_new_contact = is_new_contact;
                req.location = location.clone();
                engine.request(&actor, &mid, req).map_err(track_failure)
            };
            match action {
                TrackAction::Track => {
                    let r = request(None, false)?;
                    Ok((
                        Outcome {
                            message: status_sentence(&r),
                            record: Some(r),
                            server_copy: None,
                        },
                        None,
                    ))
                }
                TrackAction::Regarding(regarding) => {
                    let r = match tracked {
                        Some(_) => engine
                            .set_regarding(&actor, &mid, regarding, picked_new_contact)
                            .map_err(track_failure)?,
                        None => request(regarding, picked_new_contact)?,
                    };
                    let message = match regarding {
                        Some(_) => "Regarding set. ".to_owned() + &status_sentence(&r),
                        None => "Regarding cleared.".to_owned(),
                    };
                    Ok((
                        Outcome {
                            message,
                            record: Some(r),
                            server_copy: None,
                        },
                        None,
                    ))
                }
                TrackAction::RegardingNew(r) => {
                    let is_new_contact = r.kind == Kind::Contact;
                    let rec = match tracked {
                        Some(_) => engine
                            .set_regarding(&actor, &mid, Some(r), is_new_contact)
                            .map_err(track_failure)?,
                        None => request(Some(r), is_new_contact)?,
                    };
                    Ok((
                        Outcome {
                            message: format!(
                                "{} created; the email is tracked regarding it. {}",
                                kind_label(r.kind),
                                status_sentence(&rec)
                            ),
                            record: Some(rec),
                            server_copy: None,
                        },
                        None,
                    ))
                }
                TrackAction::Untrack => {
                    if engine.untrack(&actor, &mid).map_err(track_failure)? {
                        Ok((
                            Outcome {
                                message:
                                    "No longer tracked in this mailbox. The email stays in the CRM."
                                        .into(),
                                record: None,
                                server_copy: Some(ServerCopy::LocationUnknown),
                            },
                            untrack_at,
                        ))
                    } else {
                        Err(track_failure(TrackError::NotTracked {
                            message_id: mid.to_string(),
                        }))
                    }
                }
            }
        },
    )
    .await;
    let (mut outcome, untracked_at) = res.unwrap_or_else(|_| {
        Err(Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The tracking action failed.",
        ))
    })?;
    if let Some(sync) = &app.sync {
        // Proxied sessions show the new state in their next fetch.
        sync.tracking_changed();
        let waiting = outcome
            .record
            .as_ref()
            .is_some_and(|r| r.status == TrackStatus::Pending && r.location.is_some());
        if waiting {
            // The worker fetches and tracks it now, not at its next sweep.
            sync.pending_requested(&user.user);
        }
    }
    if outcome.server_copy.is_some() {
        let copy = match (&app.sync, untracked_at) {
            (None, _) => ServerCopy::NoProxy,
            (Some(_), None) => ServerCopy::LocationUnknown,
            (Some(sync), Some(at)) => {
                let cleanup = KeywordCleanup {
                    message_id: mid_text,
                    folder: at.folder,
                    uid_validity: at.uid_validity,
                    uid: at.uid,
                };
                match sync.clear_tracking_keywords(&user.user, cleanup) {
                    CleanupQueued::Now => ServerCopy::Removing,
                    CleanupQueued::WhenWorkerRuns => ServerCopy::WhenWorkerRuns,
                }
            }
        };
        outcome.server_copy = Some(copy);
        outcome.message = format!("{} {}", outcome.message, copy.sentence());
    }
    Ok(outcome)
}

fn status_sentence(r: &TrackingRecord) -> String {
    match &r.status {
        TrackStatus::Tracked => "Tracked.".into(),
        TrackStatus::Pending if r.location.is_some() => {
            "Track pending: the proxy completes it when it next reads the message.".into()
        }
        TrackStatus::Pending => "Track pending. The proxy has not seen where this message is \
             in your mailbox: open it in your mail client (through the proxy) so that it can \
             complete the tracking."
            .into(),
        TrackStatus::Failed { reason } => format!("Tracking failed: {reason}"),
    }
}

pub(crate) fn record_json(r: &Option<TrackingRecord>) -> serde_json::Value {
    match r {
        None => json!({ "status": "not_tracked" }),
        Some(r) => {
            let (status, reason) = match &r.status {
                TrackStatus::Tracked => ("tracked", None),
                TrackStatus::Pending => ("pending", None),
                TrackStatus::Failed { reason } => ("failed", Some(reason.clone())),
            };
            json!({
                "status": status,
                "reason": reason,
                "activity": r.activity.map(|a| a.to_string()),
                "regarding": r.regarding.map(|g| format!("{}:{}", g.kind, g.id)),
            })
        }
    }
}

/// Form fields of the panel's buttons.
#[derive(Deserialize)]
pub struct ActionForm {
    message_id: String,
    regarding: Option<String>,
}

/// Back to the message's page, which shows `note` once.
pub(crate) fn back_to(app: &AppState, user: &SignedIn, mid: &str, note: &str) -> Response {
    app.sessions.set_notice(&user.session.id, note);
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("id", mid)
        .finish();
    Redirect::to(&format!("/message?{q}")).into_response()
}

pub async fn track_form(
    State(app): State<AppState>,
    user: SignedIn,
    Form(f): Form<ActionForm>,
) -> Result<Response, PageFailure> {
    let o = perform(&app, &user, &f.message_id, TrackAction::Track)
        .await
        .map_err(PageFailure)?;
    Ok(back_to(&app, &user, &f.message_id, &o.message))
}

pub async fn regarding_form(
    State(app): State<AppState>,
    user: SignedIn,
    Form(f): Form<ActionForm>,
) -> Result<Response, PageFailure> {
    let r = parse_regarding(f.regarding.as_deref()).map_err(PageFailure)?;
    let o = perform(&app, &user, &f.message_id, TrackAction::Regarding(r))
        .await
        .map_err(PageFailure)?;
    Ok(back_to(&app, &user, &f.message_id, &o.message))
}

pub async fn untrack_form(
    State(app): State<AppState>,
    user: SignedIn,
    Form(f): Form<ActionForm>,
) -> Result<Response, PageFailure> {
    let o = perform(&app, &user, &f.message_id, TrackAction::Untrack)
        .await
        .map_err(PageFailure)?;
    Ok(back_to(&app, &user, &f.message_id, &o.message))
}

/// JSON body of `/api/track`, `/api/regarding`, `/api/untrack`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    message_id: String,
    #[serde(default)]
    regarding: Option<String>,
}

async fn api_action(
    app: AppState,
    user: SignedIn,
    body: Result<Json<ActionBody>, JsonRejection>,
    make: impl FnOnce(&ActionBody) -> Result<TrackAction, Failure>,
) -> Result<Response, ApiFailure> {
    let Json(b) = body.map_err(super::api::bad_json)?;
    let action = make(&b).map_err(ApiFailure)?;
    let o = perform(&app, &user, &b.message_id, action)
        .await
        .map_err(ApiFailure)?;
    let mut body = json!({ "message": o.message, "tracking": record_json(&o.record) });
    if let Some(c) = o.server_copy {
        body["server_keywords"] = json!(c.as_str());
    }
    Ok(Json(body).into_response())
}

pub async fn api_track(
    State(app): State<AppState>,
    user: SignedIn,
    body: Result<Json<ActionBody>, JsonRejection>,
) -> Result<Response, ApiFailure> {
    api_action(app, user, body, |_| Ok(TrackAction::Track)).await
}

pub async fn api_regarding(
    State(app): State<AppState>,
    user: SignedIn,
    body: Result<Json<ActionBody>, JsonRejection>,
) -> Result<Response, ApiFailure> {
    api_action(app, user, body, |b| {
        parse_regarding(b.regarding.as_deref()).map(TrackAction::Regarding)
    })
    .await
}

pub async fn api_untrack(
    State(app): State<AppState>,
    user: SignedIn,
    body: Result<Json<ActionBody>, JsonRejection>,
) -> Result<Response, ApiFailure> {
    api_action(app, user, body, |_| Ok(TrackAction::Untrack)).await
}
