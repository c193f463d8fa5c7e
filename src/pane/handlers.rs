//! Route handlers of the pane's pages: sign-in (password and one-time link), sign-out,
//! home, current message (with its live SSE stream), and message by Message-ID.

use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

use super::errors::{Failure, PageFailure};
use super::events::{normalize_message_id, MessageOpened};
use super::guard::{is_api, CurrentSession, OFFICE_COOKIE};
use super::pages::{self, Chrome};
use super::session::{self, Principal, Session};
use super::{crm, delegation, imap_login, link, message_view, track_actions, AppState};
use crate::store::{Privilege, SystemUser};

/// A request from a signed-in user. Without one, pages redirect to the sign-in form and
/// the API answers 401.
///
/// Every page is for one mailbox: the signed-in user's own, or, for a delegate who
/// switched to it, the mailbox of an owner who granted them delegate access. `user`
/// and `crm_user` are that mailbox (what the pages show); `signed_in` and `acting`
/// are who signed in (whose actions are recorded, SPEC section 8).
pub struct SignedIn {
    /// The mailbox's primary login (an e-mail address): the key its events,
    /// worker and sessions share.
    pub user: String,
    /// The name the mailbox signs in to the mail server with (`jsmith`, or the
    /// address itself).
    pub imap_login: String,
    /// The CRM user this mailbox belongs to (with `use_app`).
    pub crm_user: SystemUser,
    /// The login that signed in (equal to `user` unless acting for an owner).
    pub signed_in: String,
    /// The CRM user who signed in (with `use_app`; a delegate of `crm_user` when
    /// they differ).
    pub acting: SystemUser,
    pub session: Session,
    /// The page runs inside Outlook (see [`OFFICE_COOKIE`]).
    pub office: bool,
    /// What stands in the way of tracking in this mailbox (from the sync worker).
    pub problems: Vec<String>,
}

impl SignedIn {
    pub fn chrome(&self) -> Chrome<'_> {
        Chrome {
            user: &self.signed_in,
            csrf: &self.session.csrf_token,
            office: self.office,
            acting_for: self.is_delegate().then(|| pages::ActingFor {
                owner_name: &self.crm_user.full_name,
                owner_login: &self.user,
            }),
            problems: &self.problems,
        }
    }

    /// Refused (403, saying what to ask for) unless the user who signed in holds
    /// `privilege` (SPEC section 4; a delegate's own privileges count, not the
    /// owner's). The store checks again where it writes (`store::rights::require`).
    pub fn require(&self, privilege: Privilege) -> Result<(), Failure> {
        if self.acting.has(privilege) {
            return Ok(());
        }
        Err(crm::store_failure(crate::store::StoreError::NotPermitted {
            user: self.signed_in.clone(),
            privilege: privilege.as_str(),
        }))
    }

    /// A delegate acting for an owner's mailbox (not their own).
    pub fn is_delegate(&self) -> bool {
        self.acting.id != self.crm_user.id
    }
}

/// The CRM user behind a mailbox address, if they may use the pane (`use_app`).
pub async fn check_crm_user(app: &AppState, email: &str) -> Result<SystemUser, Failure> {
    let refused = |msg: String| Failure::new(StatusCode::FORBIDDEN, msg);
    // A mailbox login: an e-mail address, or an IMAP user name (`jsmith`).
    let login = email.trim().to_string();
    let user = crm::with_store(app, move |s| s.user_by_mailbox_login(&login)).await?;
    match user {
        None => Err(refused(format!(
            "{email} is not a CRM user. Ask your administrator to add you \
             (crmproxy user add)."
        ))),
        Some(u) if !u.has(Privilege::UseApp) => Err(refused(format!(
            "{email} does not have the \"Use the app\" privilege. Ask your administrator \
             to grant it (crmproxy user grant)."
        ))),
        Some(u) => Ok(u),
    }
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let session = parts
            .extensions
            .get::<CurrentSession>()
            .and_then(|c| c.0.clone());
        let office = session::cookie_value(&parts.headers, OFFICE_COOKIE) == Some("1");
        let api = is_api(parts.uri.path());
        match session {
            Some(s) if s.user().is_some() => {
                let signed_in = s.user().unwrap_or_default().to_owned();
                // Checked on every request, so a revoked privilege takes effect at once.
                let acting = match check_crm_user(app, &signed_in).await {
                    Ok(u) => u,
                    Err(f) => return Err(f.respond(api)),
                };
                let (imap_login, crm_user) = match &s.acting_for {
                    None => (signed_in.clone(), acting.clone()),
                    // The grant too: a revoked one ends the delegation at once.
                    Some(owner) => match delegation::check_grant(app, &acting, owner).await {
                        Ok(o) => (owner.clone(), o),
                        Err(f) => {
                            app.sessions.act_for(&s.id, None);
                            tracing::info!(user = %signed_in, owner = %owner, "delegate access ended: {}", f.message);
                            let f = Failure::new(
                                f.status,
                                format!("{} You are back in your own mailbox.", f.message),
                            );
                            return Err(f.respond(api));
                        }
                    },
                };
                // Sessions, the worker and the pane meet under the mailbox's
                // primary login, whatever IMAP user name (`jsmith`) each used.
                let user = match crm_user.logins.first() {
                    Some(primary) => primary.to_string(),
                    None => imap_login.clone(),
                };
                let problems = app
                    .sync
                    .as_ref()
                    .map(|sync| sync.problems(&user))
                    .unwrap_or_default();
                Ok(SignedIn {
                    user,
                    imap_login,
                    crm_user,
                    signed_in,
                    acting,
                    session: s,
                    office,
                    problems,
                })
            }
            _ if api => Err(Failure::new(
                StatusCode::UNAUTHORIZED,
                "Not signed in: open the pane and sign in first.",
            )
            .json()),
            _ => {
                let next = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/");
                let target = format!(
                    "/signin?next={}",
                    form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
                );
                Err(Redirect::to(&target).into_response())
            }
        }
    }
}

/// Only a path on this pane may follow sign-in: never `//evil.example` or a full URL.
/// Browsers drop tabs and newlines from URLs (`/\t/evil.example` becomes
/// `//evil.example`), so any control character or space refuses the target too.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && n.len() <= 2048
                && !n.chars().any(|c| c.is_control() || c.is_whitespace()) =>
        {
            n.to_owned()
        }
        _ => "/".to_owned(),
    }
}

fn with_cookie(resp: impl IntoResponse, cookie: String) -> Response {
    let mut resp = resp.into_response();
    if let Ok(v) = cookie.parse() {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

#[derive(Deserialize)]
pub struct HomeQuery {
    /// `?office=1`: opened by Outlook through the add-in manifest.
    office: Option<String>,
}

pub async fn home(
    State(app): State<AppState>,
    Query(q): Query<HomeQuery>,
    user: SignedIn,
) -> Response {
    let recent = app.events.recent(&user.user);
    let dashboard = match crm::dashboard(&app, &user).await {
        Ok(d) => d,
        Err(f) => return f.html(),
    };
    if q.office.as_deref() == Some("1") && !user.office {
        // Remember that this browser is Outlook's, then render with Office.js.
        let cookie = format!("{OFFICE_COOKIE}=1; Path=/; Secure; SameSite=Strict");
        return with_cookie(Redirect::to("/"), cookie);
    }
    pages::home(&user.chrome(), &recent, crm::dashboard_cards(&dashboard)).into_response()
}

#[derive(Deserialize)]
pub struct SigninQuery {
    next: Option<String>,
    office: Option<String>,
}

/// The sign-in form. It gets an anonymous session so that its POST carries a CSRF token.
pub async fn signin_form(
    State(app): State<AppState>,
    Query(q): Query<SigninQuery>,
    current: axum::Extension<CurrentSession>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    let mut cookies = Vec::new();
    if q.office.as_deref() == Some("1") {
        cookies.push(format!(
            "{OFFICE_COOKIE}=1; Path=/; Secure; SameSite=Strict"
        ));
    }
    let session = match &current.0 .0 {
        Some(s) if s.user().is_some() => return Redirect::to(&next).into_response(),
        Some(s) => s.clone(),
        None => {
            let s = app.sessions.create(Principal::Anonymous);
            cookies.push(session::set_cookie(&s.id));
            s
        }
    };
    let mut resp = pages::signin(&session.csrf_token, &next, "", None).into_response();
    for c in cookies {
        if let Ok(v) = c.parse() {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

#[derive(Deserialize)]
pub struct SigninForm {
    user: String,
    password: String,
    next: Option<String>,
}

/// Check the mailbox credentials against the upstream IMAP server.
pub async fn signin_submit(
    State(app): State<AppState>,
    current: axum::Extension<CurrentSession>,
    client: Option<axum::Extension<imap_login::ClientAddr>>,
    Form(form): Form<SigninForm>,
) -> Response {
    // The CSRF guard already required a session, so there is one here.
    let Some(session) = current.0 .0.clone() else {
        return Failure::new(StatusCode::FORBIDDEN, "Your session has expired.").html();
    };
    let user = form.user.trim().to_owned();
    let next = safe_next(form.next.as_deref());
    let refuse = |status: StatusCode, msg: &str| {
        (
            status,
            pages::signin(&session.csrf_token, &next, &user, Some(msg)),
        )
            .into_response()
    };
    if user.is_empty() || form.password.is_empty() {
        return refuse(
            StatusCode::BAD_REQUEST,
            "Enter your e-mail address and password.",
        );
    }
    let client = client.map(|c| c.0 .0);
    let limits = &app.signin_limits;
    let up = &app.config.upstream;
    match imap_login::check_credentials_limited(limits, up, &user, client, &form.password).await {
        Ok(()) => {
            if let Err(f) = check_crm_user(&app, &user).await {
                tracing::info!(user = %user, "pane sign-in refused: {}", f.message);
                return refuse(f.status, &f.message);
            }
            tracing::info!(user = %user, "signed in to the pane with mailbox credentials");
            let new = app
                .sessions
                .sign_in_with_password(Some(&session.id), &user, &form.password);
            with_cookie(Redirect::to(&next), session::set_cookie(&new.id))
        }
        Err(imap_login::LoginError::Rejected(_)) => {
            tracing::info!(user = %user, "pane sign-in refused by the mail server");
            refuse(
                StatusCode::UNAUTHORIZED,
                "The mail server did not accept this e-mail address and password.",
            )
        }
        Err(e @ imap_login::LoginError::Limited { .. }) => {
            tracing::warn!(user = %user, ?client, "pane sign-in refused: {e}");
            refuse(StatusCode::TOO_MANY_REQUESTS, &e.to_string())
        }
        Err(e @ imap_login::LoginError::Unsendable) => {
            refuse(StatusCode::BAD_REQUEST, &e.to_string())
        }
        Err(e) => {
            tracing::warn!(user = %user, error = %e, "pane sign-in could not check credentials");
            refuse(
                StatusCode::BAD_GATEWAY,
                &format!("Could not check the password: {e}. Try again, or use a one-time link."),
            )
        }
    }
}

#[derive(Deserialize)]
pub struct LinkQuery {
    token: Option<String>,
}

/// `GET /signin/link?token=…`: the one-time link printed by `crmproxy pane-url`.
pub async fn signin_link(
    State(app): State<AppState>,
    Query(q): Query<LinkQuery>,
    current: axum::Extension<CurrentSession>,
) -> Response {
    let token = q.token.unwrap_or_default();
    let data_dir = app.config.data_dir.clone();
    let outcome = tokio::task::spawn_blocking(move || link::consume(&data_dir, &token)).await;
    match outcome {
        Ok(Ok(user)) => {
            if let Err(f) = check_crm_user(&app, &user).await {
                tracing::info!(user = %user, "pane sign-in refused: {}", f.message);
                return f.html();
            }
            tracing::info!(user = %user, "signed in to the pane with a one-time link");
            let old = current.0 .0.as_ref().map(|s| s.id.as_str());
            let new = app.sessions.sign_in(old, &user);
            with_cookie(Redirect::to("/"), session::set_cookie(&new.id))
        }
        Ok(Err(link::LinkError::Io { dir, reason })) => {
            tracing::error!(dir = %dir.display(), %reason, "cannot read sign-in links");
            Failure::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The pane cannot read its sign-in links; see the server log.",
            )
            .html()
        }
        Ok(Err(e)) => (StatusCode::FORBIDDEN, pages::link_refused(&e.to_string())).into_response(),
        Err(_) => Failure::new(StatusCode::INTERNAL_SERVER_ERROR, "Sign-in failed.").html(),
    }
}

pub async fn signout(
    State(app): State<AppState>,
    current: axum::Extension<CurrentSession>,
) -> Response {
    if let Some(s) = &current.0 .0 {
        app.sessions.remove(&s.id);
    }
    with_cookie(Redirect::to("/signin"), session::clear_cookie())
}

pub async fn current(State(app): State<AppState>, user: SignedIn) -> Result<Response, PageFailure> {
    let current = app.events.current(&user.user);
    let panels = match &current {
        Some(m) => {
            let mut crm = message_view::lookup(&app, &user.crm_user, m)
                .await
                .map_err(PageFailure)?;
            crm.refusal = track_actions::meeting_refusal(&app, &user, &m.message_id)
                .await
                .map_err(PageFailure)?;
            Some(message_view::panels(&crm, &user.session.csrf_token, None))
        }
        None => None,
    };
    Ok(pages::current(&user.chrome(), current.as_ref(), panels).into_response())
}

#[derive(Deserialize)]
pub struct CurrentForm {
    message_id: String,
}

pub(crate) fn valid_message_id(raw: &str) -> Result<String, Failure> {
    let id = normalize_message_id(raw);
    if id.is_empty() || id.len() > 998 || id.chars().any(|c| c.is_control()) {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "A Message-ID looks like abc123@example.com (at most 998 characters, one line).",
        ));
    }
    Ok(id)
}

/// `POST /current`: make a message the current one (the no-JavaScript twin of the
/// Outlook add-in's `POST /api/current`).
pub async fn set_current(
    State(app): State<AppState>,
    user: SignedIn,
    Form(form): Form<CurrentForm>,
) -> Result<Response, PageFailure> {
    let id = valid_message_id(&form.message_id).map_err(PageFailure)?;
    let event = app
        .events
        .find(&user.user, &id)
        .map(|m| MessageOpened {
            opened_at: chrono::Utc::now(),
            ..m
        })
        .unwrap_or_else(|| MessageOpened::new(&id));
    app.events.publish_opened(&user.user, event);
    Ok(Redirect::to("/current").into_response())
}

pub(crate) fn set_current_from_api(
    app: &AppState,
    user: &str,
    raw_id: &str,
    subject: Option<String>,
    from: Option<String>,
) -> Result<MessageOpened, Failure> {
    let id = valid_message_id(raw_id)?;
    let known = app.events.find(user, &id);
    let event = MessageOpened {
        subject: subject.or_else(|| known.as_ref().and_then(|k| k.subject.clone())),
        from: from.or_else(|| known.as_ref().and_then(|k| k.from.clone())),
        mailbox: known.as_ref().and_then(|k| k.mailbox.clone()),
        uid: known.as_ref().and_then(|k| k.uid),
        uid_validity: known.as_ref().and_then(|k| k.uid_validity),
        ..MessageOpened::new(&id)
    };
    app.events.publish_opened(user, event.clone());
    Ok(event)
}

#[derive(Deserialize)]
pub struct MessageQuery {
    id: Option<String>,
}

pub async fn message(
    State(app): State<AppState>,
    Query(q): Query<MessageQuery>,
    user: SignedIn,
) -> Result<Response, PageFailure> {
    let id = valid_message_id(q.id.as_deref().unwrap_or("")).map_err(PageFailure)?;
    let found = app.events.find(&user.user, &id);
    let probe = found.clone().unwrap_or_else(|| MessageOpened::new(&id));
    let mut crm = message_view::lookup(&app, &user.crm_user, &probe)
        .await
        .map_err(PageFailure)?;
    crm.refusal = track_actions::meeting_refusal(&app, &user, &id)
        .await
        .map_err(PageFailure)?;
    let done = app.sessions.take_notice(&user.session.id);
    let panels = message_view::panels(&crm, &user.session.csrf_token, done.as_deref());
    Ok(pages::message(&user.chrome(), &id, found.as_ref(), panels).into_response())
}

/// `GET /events`: the signed-in user's live events as Server-Sent Events. The stream
/// ends when the session ends or the pane shuts down.
pub async fn events(
    State(app): State<AppState>,
    user: SignedIn,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = app.events.subscribe(&user.user);
    let shutdown = app.shutdown.clone();
    let watch = StreamOwner {
        session_id: user.session.id.clone(),
        acting_for: user.session.acting_for.clone(),
        acting: user.acting.clone(),
    };
    let state = (rx, shutdown, app, watch);
    let stream = stream::unfold(state, |(mut rx, mut shutdown, app, watch)| async move {
        loop {
            if *shutdown.borrow() {
                return None;
            }
            let ev = tokio::select! {
                r = rx.recv() => r,
                _ = shutdown.changed() => return None,
            };
            // Signed out, switched mailbox, or lost the grant since the stream
            // started: stop before anything of the mailbox is sent.
            if !watch.still_allowed(&app).await {
                return None;
            }
            match ev {
                Ok(ev) => {
                    let data = serde_json::to_string(&ev).unwrap_or_default();
                    let name = ev.name();
                    let out = Event::default().event(name).data(data);
                    return Some((Ok(out), (rx, shutdown, app, watch)));
                }
                // Missed events: the page reloads on the next one anyway.
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// Whose live stream this is: checked again before each event is sent.
struct StreamOwner {
    session_id: String,
    acting_for: Option<String>,
    acting: SystemUser,
}

impl StreamOwner {
    async fn still_allowed(&self, app: &AppState) -> bool {
        let Some(s) = app.sessions.get(&self.session_id) else {
            return false;
        };
        if s.acting_for != self.acting_for {
            return false;
        }
        match &self.acting_for {
            None => true,
            Some(owner) => delegation::check_grant(app, &self.acting, owner)
                .await
                .is_ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_local_paths_follow_sign_in() {
        assert_eq!(safe_next(Some("/current?x=1")), "/current?x=1");
        for bad in [
            "//evil.example",
            "https://evil.example/",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/ /x",
            "evil",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
