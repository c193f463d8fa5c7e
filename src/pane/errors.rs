//! Errors as users see them: an HTML page for the browser, `{ "error", "status" }`
//! JSON for `/api/*`, always with the right status code. Texts are escaped by maud.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use serde::Serialize;

use super::pages;

/// A refusal or failure with the text shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub status: StatusCode,
    pub message: String,
}

#[derive(Serialize)]
struct ApiError<'a> {
    error: &'a str,
    status: u16,
}

impl Failure {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
        }
    }

    pub fn not_found() -> Failure {
        Failure::new(StatusCode::NOT_FOUND, "There is nothing at this address.")
    }

    /// JSON for the API, an HTML page otherwise.
    pub fn respond(self, api: bool) -> Response {
        if api {
            self.json()
        } else {
            self.html()
        }
    }

    pub fn json(self) -> Response {
        let body = Json(ApiError {
            error: &self.message,
            status: self.status.as_u16(),
        });
        (self.status, body).into_response()
    }

    pub fn html(self) -> Response {
        (self.status, pages::error_page(self.status, &self.message)).into_response()
    }
}

/// A failure inside an `/api/*` handler: answered as JSON.
#[derive(Debug)]
pub struct ApiFailure(pub Failure);

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        self.0.json()
    }
}

/// A failure inside a page handler: answered as an HTML page.
#[derive(Debug)]
pub struct PageFailure(pub Failure);

impl IntoResponse for PageFailure {
    fn into_response(self) -> Response {
        self.0.html()
    }
}
