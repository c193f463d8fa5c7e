//! The pane's JSON API under `/api/`: who is signed in, "this message is open" from
//! the Outlook add-in script, what the CRM knows of a message, and search (the rest
//! sits beside each page's handlers). Errors are `{ "error": "...", "status": N }`.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use serde::Deserialize;
use serde_json::json;

use super::crm::{parse_kind, search_hits, SearchParams};
use super::errors::{ApiFailure, Failure};
use super::handlers::{set_current_from_api, valid_message_id, SignedIn};
use super::message_view::{self, TrackView};
use super::AppState;

/// `GET /api/session`: the signed-in user and the CSRF token for `x-csrf-token`.
pub async fn session(user: SignedIn) -> Response {
    Json(json!({ "user": user.user, "csrf_token": user.session.csrf_token })).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenedItem {
    /// The item's Internet Message-ID (Office.js `internetMessageId`).
    pub message_id: String,
    pub subject: Option<String>,
    pub from: Option<String>,
}

/// Turn axum's JSON rejection into our error shape with a clear message.
pub(crate) fn bad_json(rej: JsonRejection) -> ApiFailure {
    let status = match rej {
        JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        JsonRejection::BytesRejection(_) => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    let msg = match &rej {
        JsonRejection::MissingJsonContentType(_) => {
            "Send JSON with Content-Type: application/json.".to_owned()
        }
        other => format!(
            "The request body is not valid JSON for this call: {}",
            other.body_text()
        ),
    };
    ApiFailure(Failure::new(status, msg))
}

/// `POST /api/current`: the Outlook add-in reports the item the user selected.
pub async fn set_current(
    State(app): State<AppState>,
    user: SignedIn,
    body: Result<Json<OpenedItem>, JsonRejection>,
) -> Result<Response, ApiFailure> {
    let Json(item) = body.map_err(bad_json)?;
    let event = set_current_from_api(&app, &user.user, &item.message_id, item.subject, item.from)
        .map_err(ApiFailure)?;
    Ok((StatusCode::OK, Json(json!({ "current": event }))).into_response())
}

#[derive(Debug, Deserialize)]
pub struct MessageParams {
    id: Option<String>,
}

/// `GET /api/message?id=…`: the message's track status in this mailbox, its
/// regarding record and its people with what they are in the CRM (the message
/// page's panels, as data).
pub async fn message(
    State(app): State<AppState>,
    Query(p): Query<MessageParams>,
    user: SignedIn,
) -> Result<Response, ApiFailure> {
    let id = valid_message_id(p.id.as_deref().unwrap_or("")).map_err(ApiFailure)?;
    let (probe, crm) = message_view::lookup_id(&app, &user, &id)
        .await
        .map_err(ApiFailure)?;
    let (status, regarding, reason) = match &crm.track {
        TrackView::NotTracked => ("not_tracked", None, None),
        TrackView::Pending => ("pending", None, None),
        TrackView::Tracked => ("tracked", None, None),
        TrackView::TrackedRegarding(r, title) => (
            "tracked",
            Some(json!({ "ref": format!("{}:{}", r.kind, r.id), "title": title })),
            None,
        ),
        TrackView::Failed(reason) => ("failed", None, Some(reason.clone())),
    };
    let people: Vec<_> = crm
        .people
        .iter()
        .map(|p| {
            let records: Vec<_> = p
                .records
                .iter()
                .map(|(r, title)| json!({ "ref": format!("{}:{}", r.kind, r.id), "title": title }))
                .collect();
            json!({ "role": p.role, "name": p.name, "address": p.address, "records": records })
        })
        .collect();
    Ok(Json(json!({
        "message_id": crm.message_id,
        "subject": probe.subject,
        "tracking": {
            "status": status,
            "reason": reason,
            "regarding": regarding,
            "activity": crm.activity.map(|a| a.to_string()),
        },
        "people": people,
    }))
    .into_response())
}

/// `GET /api/search?q=…&type=…`: records by name (of one type, or of every type
/// that search covers); a type alone lists its newest records.
pub async fn search(
    State(app): State<AppState>,
    Query(p): Query<SearchParams>,
    _user: SignedIn,
) -> Result<Response, ApiFailure> {
    let kind = parse_kind(p.kind.as_deref()).map_err(ApiFailure)?;
    let q = p.q.unwrap_or_default();
    if q.chars().count() > 200 {
        return Err(ApiFailure(Failure::new(
            StatusCode::BAD_REQUEST,
            "Search for at most 200 characters.",
        )));
    }
    let hits = search_hits(&app, &q, kind).await.map_err(ApiFailure)?;
    let Some(hits) = hits else {
        return Err(ApiFailure(Failure::new(
            StatusCode::BAD_REQUEST,
            "Give q (words to search for), type (a record type), or both.",
        )));
    };
    let hits: Vec<_> = hits
        .into_iter()
        .map(|(k, id, title)| {
            json!({ "ref": format!("{k}:{id}"), "kind": k.as_str(), "id": id, "title": title })
        })
        .collect();
    Ok(Json(json!({ "hits": hits })).into_response())
}

/// Anything else under `/api/`.
pub async fn not_found() -> ApiFailure {
    ApiFailure(Failure::new(StatusCode::NOT_FOUND, "No such API call."))
}
