//! The proxy: listeners, per-connection sessions, upstream connections, session
//! state, identity, and the hook point for the tracking layer.
//!
//! Start it in-process with [`Server::bind`] (binds the listeners; port 0 is
//! fine, read the real ones with [`Server::imap_addr`]/[`Server::imaps_addr`])
//! then [`Server::run`] with any future as the shutdown signal. The tracking
//! layer plugs in through [`Hook`] (see `hook.rs`), passed in [`ServerOptions`].

pub mod folders;
pub mod hook;
pub mod identity;
mod server;
pub mod session;
pub mod state;
pub mod tracking;
pub mod upstream;
pub mod worker;

pub use hook::{Credential, Hook, HookContext, NoopHook, UpstreamHandle};
pub use identity::Identity;
pub use server::{Server, ServerOptions};
pub use state::SessionState;
pub use tracking::TrackingHook;

use tokio::io::{AsyncRead, AsyncWrite};

/// Any byte stream a session runs on (TCP, TLS over TCP, an in-memory pipe).
pub trait AsyncStream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> AsyncStream for T {}

/// A boxed stream, so that plain and TLS connections share one session type.
pub type BoxedIo = Box<dyn AsyncStream>;

/// Errors of the proxy library.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("upstream server: {0}")]
    Upstream(String),
    #[error("proxy configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
