//! The pane's static files, embedded in the binary: no external loads, ever.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::errors::Failure;

/// (name, content type, bytes)
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "pane.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/pane.css"),
    ),
    (
        "pane.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/pane.js"),
    ),
    (
        "icon.svg",
        "image/svg+xml",
        include_bytes!("assets/icon.svg"),
    ),
    (
        "icon-16.png",
        "image/png",
        include_bytes!("assets/icon-16.png"),
    ),
    (
        "icon-32.png",
        "image/png",
        include_bytes!("assets/icon-32.png"),
    ),
    (
        "icon-64.png",
        "image/png",
        include_bytes!("assets/icon-64.png"),
    ),
    (
        "icon-80.png",
        "image/png",
        include_bytes!("assets/icon-80.png"),
    ),
    (
        "icon-128.png",
        "image/png",
        include_bytes!("assets/icon-128.png"),
    ),
];

/// `GET /assets/{name}`.
pub async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, ctype, bytes)) => {
            let mut resp = (StatusCode::OK, *bytes).into_response();
            let h = resp.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
            // Revalidated often enough that an upgrade shows up soon, cached across pages.
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=300"),
            );
            resp
        }
        None => Failure::not_found().html(),
    }
}
