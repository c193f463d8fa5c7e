//! Listeners and connection handling: the IMAP listener (STARTTLS answered by
//! the proxy) and the IMAPS listener (implicit TLS); for each connection, the
//! upstream connection and then the session. Connections over the configured
//! limits (in total, per client address) get a `* BYE` saying which limit, and are
//! closed before anything reaches the upstream. Graceful shutdown: stop accepting,
//! tell idle sessions BYE, wait a bounded time.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;

use super::hook::{Hook, NoopHook};
use super::session::{self, SessionParams};
use super::{BoxedIo, ProxyError};
use crate::config::Config;
use crate::imap_client::UpstreamConnector;

/// How long sessions get to finish after a shutdown request.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
const CLIENT_TLS_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a refused IMAPS client gets to finish TLS and read its BYE.
const REFUSAL_TLS_TIMEOUT: Duration = Duration::from_secs(5);

/// Open client connections, in total and per client address.
struct ConnectionLimits {
    max_total: usize,
    max_per_address: usize,
    open: Mutex<OpenConnections>,
}

#[derive(Default)]
struct OpenConnections {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// One admitted connection; counted until dropped.
struct Admitted {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl ConnectionLimits {
    fn new(cfg: &Config) -> Arc<ConnectionLimits> {
        Arc::new(ConnectionLimits {
            max_total: cfg.proxy.max_connections,
            max_per_address: cfg.proxy.max_connections_per_address,
            open: Mutex::new(OpenConnections::default()),
        })
    }

    /// Count a new connection from `ip`, or the BYE line that refuses it.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, String> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.total >= self.max_total {
            return Err(format!(
                "* BYE [UNAVAILABLE] Too many connections to crmproxy (proxy.max_connections = {}); try again later\r\n",
                self.max_total
            ));
        }
        let from_ip = open.by_address.entry(ip).or_insert(0);
        if *from_ip >= self.max_per_address {
            return Err(format!(
                "* BYE [UNAVAILABLE] Too many connections from {ip} (proxy.max_connections_per_address = {}); close some or try again later\r\n",
                self.max_per_address
            ));
        }
        *from_ip += 1;
        open.total += 1;
        Ok(Admitted {
            limits: self.clone(),
            ip,
        })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_address.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.by_address.remove(&self.ip);
            }
        }
    }
}

/// What the proxy needs besides the config.
pub struct ServerOptions {
    /// TLS for the client side (IMAPS and STARTTLS); without it the IMAPS
    /// listener must be off and STARTTLS is not offered.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub hook: Arc<dyn Hook>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            tls: None,
            hook: Arc::new(NoopHook),
        }
    }
}

/// A bound, not yet running proxy.
pub struct Server {
    imap: Option<TcpListener>,
    imaps: Option<TcpListener>,
    acceptor: Option<TlsAcceptor>,
    connector: Arc<UpstreamConnector>,
    cfg: Config,
    hook: Arc<dyn Hook>,
}

impl Server {
    /// Bind the configured listeners (port 0 picks a free port) and prepare the
    /// upstream connector. Nothing is accepted until [`Server::run`].
    pub async fn bind(cfg: &Config, opts: ServerOptions) -> Result<Server, ProxyError> {
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| ProxyError::Bind { addr, source })
        };
        if cfg.proxy.imaps.is_some() && opts.tls.is_none() {
            return Err(ProxyError::Config(
                "the IMAPS listener needs a TLS certificate".into(),
            ));
        }
        let imap = match cfg.proxy.imap {
            Some(a) => Some(bind(a).await?),
            None => None,
        };
        let imaps = match cfg.proxy.imaps {
            Some(a) => Some(bind(a).await?),
            None => None,
        };
        // `[record]` (or `serve --record`): every upstream connection is recorded.
        let recorder = match cfg.record_settings() {
            Some(s) => Some(
                crate::record::Recorder::shared(s)
                    .map_err(|e| ProxyError::Config(e.to_string()))?,
            ),
            None => None,
        };
        if cfg.upstream.insecure_skip_verify {
            tracing::warn!(
                "upstream certificate verification is OFF (insecure_skip_verify): anyone on the path can read your mail and password"
            );
        }
        Ok(Server {
            imap,
            imaps,
            acceptor: opts.tls.map(TlsAcceptor::from),
            connector: Arc::new(
                UpstreamConnector::new(&cfg.upstream, cfg.proxy.max_line_bytes)?
                    .with_recorder(recorder),
            ),
            cfg: cfg.clone(),
            hook: opts.hook,
        })
    }

    /// Address of the IMAP (STARTTLS) listener, when on.
    pub fn imap_addr(&self) -> Option<SocketAddr> {
        self.imap.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Address of the IMAPS listener, when on.
    pub fn imaps_addr(&self) -> Option<SocketAddr> {
        self.imaps.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Accept and serve connections until `shutdown` completes; then stop
    /// accepting, send BYE to sessions between commands, and wait up to
    /// [`SHUTDOWN_GRACE`] for them to end.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ProxyError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut sessions = JoinSet::new();
        let next_id = AtomicU64::new(1);
        let limits = ConnectionLimits::new(&self.cfg);
        tokio::pin!(shutdown);
        loop {
            let (tcp, peer, implicit) = tokio::select! {
                _ = &mut shutdown => break,
                Some(done) = sessions.join_next(), if !sessions.is_empty() => {
                    if let Err(e) = done {
                        if e.is_panic() {
                            tracing::error!("a session panicked: {e}");
                        }
                    }
                    continue;
                }
                r = accept(&self.imap) => { let (t, p) = r?; (t, p, false) }
                r = accept(&self.imaps) => { let (t, p) = r?; (t, p, true) }
            };
            let admitted = match limits.admit(peer.ip()) {
                Ok(a) => a,
                Err(bye) => {
                    tracing::warn!(%peer, "refused a connection: {}", bye.trim_end());
                    let tls = if implicit {
                        self.acceptor.clone()
                    } else {
                        None
                    };
                    refuse(tcp, tls, bye);
                    continue;
                }
            };
            let id = next_id.fetch_add(1, Ordering::Relaxed);
            let params = SessionParams {
                id,
                max_line: self.cfg.proxy.max_line_bytes,
                message_cap: self.cfg.proxy.max_line_bytes.max(64 * 1024),
                idle_timeout: self.cfg.idle_timeout(),
                client_tls: implicit,
                starttls: if implicit {
                    None
                } else {
                    self.acceptor.clone()
                },
                plaintext_login: self.cfg.proxy.allow_plaintext_on_loopback
                    && peer.ip().is_loopback(),
                hook: self.hook.clone(),
                shutdown: stop_rx.clone(),
            };
            let acceptor = if implicit {
                self.acceptor.clone()
            } else {
                None
            };
            let connector = self.connector.clone();
            let span = tracing::info_span!("session", id, %peer);
            let session = async move {
                let _counted = admitted;
                handle(tcp, peer, acceptor, connector, params).await
            };
            sessions.spawn(session.instrument(span));
        }
        drop(self.imap);
        drop(self.imaps);
        let _ = stop_tx.send(true);
        let open = sessions.len();
        if open > 0 {
            tracing::info!("shutting down: waiting for {open} session(s)");
        }
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while sessions.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                "closing {} session(s) that did not end in time",
                sessions.len()
            );
            sessions.abort_all();
        }
        Ok(())
    }
}

/// Accept on a listener that may be off (then never ready). Transient accept
/// errors (e.g. too many open files) are logged and retried.
async fn accept(l: &Option<TcpListener>) -> Result<(TcpStream, SocketAddr), ProxyError> {
    let Some(l) = l else {
        return std::future::pending().await;
    };
    loop {
        match l.accept().await {
            Ok(x) => return Ok(x),
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Say `bye` and close, without a session or an upstream connection. A plain
/// connection gets it at once (a fresh socket takes a short line without waiting);
/// an IMAPS one after a short TLS handshake.
fn refuse(tcp: TcpStream, tls: Option<TlsAcceptor>, bye: String) {
    match tls {
        None => {
            let _ = tcp.try_write(bye.as_bytes());
        }
        Some(acc) => {
            tokio::spawn(async move {
                if let Ok(Ok(mut s)) =
                    tokio::time::timeout(REFUSAL_TLS_TIMEOUT, acc.accept(tcp)).await
                {
                    let _ = s.write_all(bye.as_bytes()).await;
                    let _ = s.shutdown().await;
                }
            });
        }
    }
}

async fn handle(
    tcp: TcpStream,
    peer: SocketAddr,
    implicit_tls: Option<TlsAcceptor>,
    connector: Arc<UpstreamConnector>,
    params: SessionParams,
) {
    let _ = tcp.set_nodelay(true);
    tracing::debug!("connected");
    let mut client: BoxedIo = match implicit_tls {
        None => Box::new(tcp),
        Some(acc) => match tokio::time::timeout(CLIENT_TLS_TIMEOUT, acc.accept(tcp)).await {
            Ok(Ok(s)) => Box::new(s),
            Ok(Err(e)) => return tracing::info!("client TLS handshake failed: {e}"),
            Err(_) => return tracing::info!("client TLS handshake timed out"),
        },
    };
    let upstream = match connector.connect_for("session", Some(peer)).await {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(upstream = %connector.address(), "{e}");
            let bye = format!("* BYE [UNAVAILABLE] {e}\r\n").replace(['\r', '\n'], " ");
            let bye = format!("{}\r\n", bye.trim_end());
            let _ = client.write_all(bye.as_bytes()).await;
            let _ = client.shutdown().await;
            return;
        }
    };
    session::run(client, upstream, params).await;
    tracing::debug!("closed");
}
