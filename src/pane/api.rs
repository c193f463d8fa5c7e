//! The pane's JSON API under `/api/`: who is signed in, and "this message is open"
//! from the Outlook add-in script. Errors are `{ "error": "...", "status": N }`.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use serde::Deserialize;
use serde_json::json;

use super::errors::{ApiFailure, Failure};
use super::handlers::{set_current_from_api, SignedIn};
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

/// Anything else under `/api/`.
pub async fn not_found() -> ApiFailure {
    ApiFailure(Failure::new(StatusCode::NOT_FOUND, "No such API call."))
}
