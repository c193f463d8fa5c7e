//! The pane's request guards, applied to every route: the Host check against DNS
//! rebinding, the session lookup, the Origin and CSRF checks on every state-changing
//! request, the security headers, and error bodies (HTML for pages, JSON for `/api/*`)
//! for responses that would otherwise have none.
//!
//! Framing: every response says `frame-ancestors 'none'` and `X-Frame-Options: DENY`.
//! Classic Outlook on Windows shows an add-in's task pane as the top-level document
//! of its own web view, not in a frame, so it needs no exception. Outlook on the web
//! (and the new Outlook) would frame the pane from outlook.office.com; there the
//! browser would not send a SameSite=Strict cookie to a cross-site frame anyway (and
//! blocks third-party cookies), so allowing those ancestors would only open the door
//! to clickjacking without making the pane work. Supporting them needs a different
//! session carrier (a partitioned cookie or a token in the URL) and is left for later.
//!
//! Office.js is loaded from Microsoft's CDN only when the pane was opened by Outlook
//! (`?office=1` from the manifest sets the `crmproxy-office` cookie); only then does
//! the CSP allow that one script origin. Otherwise the CSP allows 'self' only.

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::errors::Failure;
use super::session::{self, constant_time_eq, Session};
use super::AppState;

/// Largest request body accepted (forms and JSON are small).
pub const MAX_BODY: usize = 64 * 1024;
/// Name of the CSRF form field and header.
pub const CSRF_FIELD: &str = "csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Cookie set when the pane is opened as an Outlook add-in (`?office=1`).
pub const OFFICE_COOKIE: &str = "crmproxy-office";
/// Where Office.js comes from; allowed by the CSP only inside Outlook.
pub const OFFICE_JS_ORIGIN: &str = "https://appsforoffice.microsoft.com";

/// The session of this request, if its cookie names a live one (set by [`sessions`]).
#[derive(Clone, Debug)]
pub struct CurrentSession(pub Option<Session>);

/// Whether the request targets the JSON API (errors are then JSON).
pub fn is_api(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

/// The host names (with port) this pane answers to.
pub fn allowed_hosts(port: u16, extra: &[String]) -> Vec<String> {
    let mut names: Vec<String> = ["localhost", "127.0.0.1", "[::1]"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    names.extend(extra.iter().map(|h| h.trim().to_ascii_lowercase()));
    let mut hosts: Vec<String> = names.iter().map(|n| format!("{n}:{port}")).collect();
    if port == 443 {
        hosts.extend(names);
    }
    hosts
}

/// Refuse requests whose Host is not one of ours: a page on evil.example whose name
/// was re-pointed at 127.0.0.1 then reaches nothing.
pub(crate) async fn check_host(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| h.to_ascii_lowercase());
    match host {
        Some(h) if app.allowed_hosts.contains(&h) => next.run(req).await,
        _ => Failure::new(
            StatusCode::MISDIRECTED_REQUEST,
            "This pane answers only to its own local address (such as https://localhost). \
             To reach it under another name, add that name to pane.extra_hosts.",
        )
        .respond(is_api(req.uri().path())),
    }
}

/// Look up the session cookie and put a [`CurrentSession`] into the request.
pub(crate) async fn sessions(
    State(app): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let session = session::cookie_value(req.headers(), session::COOKIE_NAME)
        .and_then(|id| app.sessions.get(id));
    req.extensions_mut().insert(CurrentSession(session));
    next.run(req).await
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The Origin (or, without one, the Referer's origin) must be this pane's own.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let own = format!("https://{}", host.to_ascii_lowercase());
    if let Some(origin) = headers.get(header::ORIGIN) {
        return origin.to_str().is_ok_and(|o| o.to_ascii_lowercase() == own);
    }
    headers
        .get(header::REFERER)
        .and_then(|r| r.to_str().ok())
        .is_some_and(|r| {
            let r = r.to_ascii_lowercase();
            r == own || r.starts_with(&format!("{own}/"))
        })
}

/// Every state-changing request needs our Origin and the session's CSRF token, in the
/// `x-csrf-token` header or the `csrf` form field.
pub async fn check_csrf(req: Request, next: Next) -> Response {
    if is_safe(req.method()) {
        return next.run(req).await;
    }
    let api = is_api(req.uri().path());
    if !same_origin(req.headers()) {
        return Failure::new(
            StatusCode::FORBIDDEN,
            "Refused: this request did not come from the pane's own pages.",
        )
        .respond(api);
    }
    let Some(CurrentSession(Some(session))) = req.extensions().get::<CurrentSession>().cloned()
    else {
        return Failure::new(
            StatusCode::FORBIDDEN,
            "Your session has expired. Reload the page and try again.",
        )
        .respond(api);
    };
    let header_token = req
        .headers()
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (req, token) = match header_token {
        Some(t) => (req, Some(t)),
        None => {
            let is_form = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
            if !is_form {
                (req, None)
            } else {
                let (parts, body) = req.into_parts();
                let bytes = match to_bytes(body, MAX_BODY).await {
                    Ok(b) => b,
                    Err(_) => {
                        return Failure::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "The form is too large.",
                        )
                        .respond(api)
                    }
                };
                let token = form_urlencoded::parse(&bytes)
                    .find(|(k, _)| k == CSRF_FIELD)
                    .map(|(_, v)| v.into_owned());
                (Request::from_parts(parts, Body::from(bytes)), token)
            }
        }
    };
    match token {
        Some(t) if constant_time_eq(&t, &session.csrf_token) => next.run(req).await,
        _ => Failure::new(
            StatusCode::FORBIDDEN,
            "Refused: the form's security token is missing or out of date. Reload the page and try again.",
        )
        .respond(api),
    }
}

/// Security headers on every response, and an error body where a handler left none.
pub async fn headers(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let office = session::cookie_value(req.headers(), OFFICE_COOKIE) == Some("1");
    let mut resp = next.run(req).await;
    let status = resp.status();
    if (status.is_client_error() || status.is_server_error())
        && !resp.headers().contains_key(header::CONTENT_TYPE)
    {
        let msg = status.canonical_reason().unwrap_or("Error");
        resp = Failure::new(status, msg).respond(is_api(&path));
    }
    let h = resp.headers_mut();
    let script_src = if office {
        format!("'self' {OFFICE_JS_ORIGIN}")
    } else {
        "'self'".to_owned()
    };
    let csp = format!(
        "default-src 'none'; script-src {script_src}; style-src 'self'; img-src 'self'; \
         connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    let fixed: [(&str, &str); 5] = [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "same-origin"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
    ];
    for (k, v) in fixed {
        h.insert(k, HeaderValue::from_static(v));
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_carry_the_port() {
        let hosts = allowed_hosts(8443, &["Pane.Example".into()]);
        assert!(hosts.contains(&"localhost:8443".to_string()));
        assert!(hosts.contains(&"[::1]:8443".to_string()));
        assert!(hosts.contains(&"pane.example:8443".to_string()));
        assert!(!hosts.contains(&"localhost".to_string()));
        assert!(allowed_hosts(443, &[]).contains(&"localhost".to_string()));
    }

    #[test]
    fn origin_or_referer_must_match_host() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "localhost:8443".parse().unwrap());
        assert!(!same_origin(&h));
        h.insert(header::REFERER, "https://localhost:8443/x".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(
            header::REFERER,
            "https://localhost:84430/x".parse().unwrap(),
        );
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, "https://localhost:8443".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "null".parse().unwrap());
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, "http://localhost:8443".parse().unwrap());
        assert!(!same_origin(&h));
    }
}
