//! The pane: a small HTTPS web app on loopback that shows, for the message the user has
//! open, who the people are and what it is linked to (SPEC section 6).
//!
//! `serve` starts it in-process with [`start`]; the proxy (and later the tracking
//! engine) tells it which message a user opened through [`PaneEvents::publish_opened`].
//! Security lives in [`guard`] (Host, Origin, CSRF, headers) and [`session`];
//! sign-in by one-time link in [`link`], by mailbox password in [`imap_login`].

mod activity_view;
mod api;
mod assets;
mod assistant;
mod compose;
mod contact_actions;
mod contact_pickers;
mod contacts;
mod contacts_api;
mod contacts_list;
mod create_actions;
mod crm;
mod delegation;
mod errors;
mod favourites;
pub mod guard;
mod handlers;
pub mod imap_login;
mod insights;
pub mod link;
pub mod manifest;
mod message_view;
mod pages;
mod people_actions;
mod regarding_search;
pub mod session;
mod track_actions;

/// The types the handlers deserialize request bodies and queries into, for the
/// fuzz targets (fuzz/).
#[doc(hidden)]
pub mod bodies {
    pub use super::api::{MessageParams, OpenedItem};
    pub use super::compose::{ComposeParams, DraftFields};
    pub use super::contact_pickers::ChooseParams;
    pub use super::contacts::ListParams;
    pub use super::contacts_api::ApiBody;
    pub use super::create_actions::{
        ActivityFields, CreateParams, NewParams as NewRecordParams, RecordFields,
    };
    pub use super::crm::{DocumentsParams, SearchParams};
    pub use super::delegation::SwitchForm;
    pub use super::favourites::{FavouriteBody, FavouriteForm};
    pub use super::handlers::{
        CurrentForm, HomeQuery, LinkQuery, MessageQuery, SigninForm, SigninQuery,
    };
    pub use super::insights::{AssistantQuery, SnoozeBody, SnoozeForm};
    pub use super::people_actions::{NewParams as NewPersonParams, PersonFields};
    pub use super::regarding_search::PickParams;
    pub use super::track_actions::{parse_regarding, ActionBody, ActionForm};
}

/// The event hub lives in [`crate::events`] (shared with the proxy); re-exported here
/// for the pane's modules and for existing callers.
pub use crate::events;
pub use crate::events::{MailboxSync, MessageOpened, PaneEvent, PaneEvents};

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::net::SocketAddr;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::Config;
use crate::store::CrmStore;
use errors::Failure;
use session::SessionStore;

/// How long a client may take for the TLS handshake and for a request's headers.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections get to finish after shutdown is asked for.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the pane could not start.
#[derive(Debug, thiserror::Error)]
pub enum PaneError {
    #[error("the pane is turned off (pane.addr is not set)")]
    Disabled,
    #[error("pane certificate: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot listen on {addr} for the pane: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("tracking settings: {0}")]
    Tracking(#[from] crate::track::TrackError),
    #[error("sign-in link: {0}")]
    Link(#[from] link::LinkError),
}

/// Shared state of the pane's handlers.
pub(crate) struct AppInner {
    pub config: Config,
    pub sessions: SessionStore,
    pub events: PaneEvents,
    pub store: Arc<dyn CrmStore>,
    /// The tracking engine over `store` (`serve` shares its one engine with the proxy).
    pub engine: Arc<crate::track::Engine>,
    /// The proxy's sync workers, to change the server copy of a message (none when
    /// the pane runs without the proxy, as in some tests).
    pub sync: Option<Arc<dyn MailboxSync>>,
    pub allowed_hosts: Vec<String>,
    /// `https://localhost:PORT`: what the manifest and the CLI's links point at.
    pub origin: String,
    /// Turns true when the pane shuts down (ends live streams).
    pub shutdown: watch::Receiver<bool>,
    /// Failed password sign-ins per user name and client address.
    pub signin_limits: imap_login::SigninLimits,
}

#[derive(Clone)]
pub(crate) struct AppState(Arc<AppInner>);

impl Deref for AppState {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

/// The canonical origin of a pane listening on `port`.
pub fn origin_for_port(port: u16) -> String {
    format!("https://localhost:{port}")
}

/// Issue a one-time sign-in link for `user` (what `crmproxy pane-url` prints).
/// The link points at `cfg.pane.addr`'s port; it works once, for 10 minutes.
pub fn issue_signin_link(cfg: &Config, user: &str) -> Result<String, PaneError> {
    let addr = cfg.pane.addr.ok_or(PaneError::Disabled)?;
    let token = link::issue(&cfg.data_dir, user)?;
    Ok(format!(
        "{}/signin/link?token={token}",
        origin_for_port(addr.port())
    ))
}

/// A running pane.
pub struct RunningPane {
    /// The address actually bound (useful with port 0).
    pub local_addr: SocketAddr,
    /// `https://localhost:PORT`.
    pub origin: String,
    task: tokio::task::JoinHandle<()>,
}

impl RunningPane {
    /// Wait until the pane has shut down (after the shutdown future completed).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// What the pane works with besides its config: the event hub, the tracking engine
/// (over the CRM store), and the proxy's sync workers when there is a proxy.
pub struct PaneParts {
    pub events: PaneEvents,
    pub engine: Arc<crate::track::Engine>,
    pub sync: Option<Arc<dyn MailboxSync>>,
}

/// Start the pane on `cfg.pane.addr` (certificates from `cfg`, made if missing), serving
/// `events` and the CRM in `store` with an engine of its own and no sync workers,
/// until `shutdown` completes. Returns once the listener is bound. `serve` uses
/// [`start_with`] to share its engine and workers.
pub async fn start(
    cfg: &Config,
    events: PaneEvents,
    store: Arc<dyn CrmStore>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<RunningPane, PaneError> {
    let engine = Arc::new(crate::track::Engine::new(store, cfg.tracking.clone())?);
    let parts = PaneParts {
        events,
        engine,
        sync: None,
    };
    start_with(cfg, parts, shutdown).await
}

/// Start the pane with the given parts (see [`start`]).
pub async fn start_with(
    cfg: &Config,
    parts: PaneParts,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<RunningPane, PaneError> {
    let addr = cfg.pane.addr.ok_or(PaneError::Disabled)?;
    let paths = crate::tls::ensure_certs(cfg)?;
    let tls = tokio_rustls::TlsAcceptor::from(with_http1_alpn(crate::tls::server_config(&paths)?));
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| PaneError::Bind { addr, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| PaneError::Bind { addr, source })?;
    if !local_addr.ip().is_loopback() {
        tracing::warn!(%local_addr, "the pane listens on a non-loopback address");
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let origin = origin_for_port(local_addr.port());
    let state = AppState(Arc::new(AppInner {
        config: cfg.clone(),
        sessions: SessionStore::new(),
        events: parts.events,
        store: parts.engine.store().clone(),
        engine: parts.engine,
        sync: parts.sync,
        allowed_hosts: guard::allowed_hosts(local_addr.port(), &cfg.pane.extra_hosts),
        origin: origin.clone(),
        shutdown: stop_rx.clone(),
        signin_limits: Default::default(),
    }));
    let app = router(state);
    tracing::info!(%origin, "pane listening");
    let task = tokio::spawn(accept_loop(listener, tls, app, stop_rx));
    Ok(RunningPane {
        local_addr,
        origin,
        task,
    })
}

/// The pane speaks HTTP/1.1 only; say so in ALPN so browsers do not try h2.
fn with_http1_alpn(cfg: Arc<rustls::ServerConfig>) -> Arc<rustls::ServerConfig> {
    let mut cfg = (*cfg).clone();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(cfg)
}

async fn accept_loop(
    listener: TcpListener,
    tls: tokio_rustls::TlsAcceptor,
    app: Router,
    mut stop: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => break,
        };
        // Reap finished connections so the set does not grow forever.
        while conns.try_join_next().is_some() {}
        let (tcp, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "pane accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let tls = tls.clone();
        let app = app.clone();
        let mut stop = stop.clone();
        conns.spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "pane TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let service = TowerToHyperService::new(app);
            // Each request carries its client's address (sign-in limits).
            let client = imap_login::ClientAddr(peer.ip());
            let service = hyper::service::service_fn(move |mut req| {
                req.extensions_mut().insert(client);
                hyper::service::Service::call(&service, req)
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HANDSHAKE_TIMEOUT);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r { tracing::debug!(%peer, error = %e, "pane connection ended"); }
                }
                _ = async { let _ = stop.wait_for(|s| *s).await; } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(DRAIN_TIMEOUT, conn.as_mut()).await;
                }
            }
        });
    }
    drop(listener);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        conns.abort_all();
    }
    tracing::info!("pane stopped");
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(handlers::home))
        .route(
            "/signin",
            get(handlers::signin_form).post(handlers::signin_submit),
        )
        .route("/signin/link", get(handlers::signin_link))
        .route("/signout", post(handlers::signout))
        .route(
            "/mailbox",
            get(delegation::mailbox_page).post(delegation::mailbox_switch),
        )
        .route(
            "/current",
            get(handlers::current).post(handlers::set_current),
        )
        .route("/message", get(handlers::message))
        .route("/search", get(crm::search))
        .route(
            "/contacts",
            get(contacts::contacts).post(contact_actions::act),
        )
        .route(
            "/contacts/link",
            get(contact_pickers::link_form).post(contact_pickers::link_submit),
        )
        .route(
            "/contacts/choose",
            get(contact_pickers::choose_form).post(contact_pickers::choose_submit),
        )
        .route("/contacts/invite.ics", get(contact_actions::invite))
        .route("/api/contacts", get(contacts_api::api_list))
        .route("/api/contacts/track", post(contacts_api::api_track))
        .route("/api/contacts/untrack", post(contacts_api::api_untrack))
        .route("/api/contacts/link", post(contacts_api::api_link))
        .route("/api/contacts/choose", post(contacts_api::api_choose))
        .route("/api/contacts/mailto", get(contacts_api::api_mailto))
        .route("/documents", get(crm::documents))
        .route("/record/{id}", get(crm::record))
        .route("/favourite", post(favourites::favourite_form))
        .route("/api/favourites", post(favourites::api_favourite))
        .route("/api/lists", get(favourites::api_lists))
        .route("/api/assistant", get(insights::api_assistant))
        .route("/assistant/snooze", post(insights::snooze_form))
        .route("/api/assistant/snooze", post(insights::api_snooze))
        .route("/activity/{id}", get(activity_view::activity))
        .route("/activity/{id}/raw", get(activity_view::raw))
        .route("/track", post(track_actions::track_form))
        .route(
            "/regarding",
            get(regarding_search::pick_regarding).post(track_actions::regarding_form),
        )
        .route(
            "/people/new",
            get(people_actions::new_form).post(people_actions::new_submit),
        )
        .route("/api/people", post(people_actions::api_new))
        .route(
            "/activities/new",
            get(create_actions::activity_form).post(create_actions::activity_submit),
        )
        .route(
            "/create",
            get(create_actions::create_form).post(create_actions::create_submit),
        )
        .route("/api/activities", post(create_actions::api_activity))
        .route("/api/records", post(create_actions::api_create))
        .route(
            "/compose",
            get(compose::compose_form).post(compose::compose_submit),
        )
        .route("/api/drafts", post(compose::api_draft))
        .route("/untrack", post(track_actions::untrack_form))
        .route("/events", get(handlers::events))
        .route("/api/session", get(api::session))
        .route("/api/current", post(api::set_current))
        .route("/api/message", get(api::message))
        .route("/api/search", get(api::search))
        .route("/api/track", post(track_actions::api_track))
        .route("/api/regarding", post(track_actions::api_regarding))
        .route("/api/untrack", post(track_actions::api_untrack))
        .route("/api", any(api::not_found))
        .route("/api/{*rest}", any(api::not_found))
        .route("/manifest.xml", get(manifest_xml))
        .route("/assets/{name}", get(assets::asset))
        .fallback(|| async { Failure::not_found().html() })
        .layer(DefaultBodyLimit::max(guard::MAX_BODY))
        .layer(from_fn(guard::check_csrf))
        .layer(from_fn_with_state(state.clone(), guard::sessions))
        .layer(from_fn_with_state(state.clone(), guard::check_host))
        .layer(from_fn(guard::headers))
        .with_state(state)
}

async fn manifest_xml(axum::extract::State(app): axum::extract::State<AppState>) -> Response {
    let mut resp = manifest::manifest(&app.origin).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml; charset=utf-8"),
    );
    resp
}

/// Where `pane-url` writes its link files (for messages).
pub fn token_dir(cfg: &Config) -> PathBuf {
    link::token_dir(&cfg.data_dir)
}
