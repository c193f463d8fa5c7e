//! The proxy: listeners, per-connection sessions, session state, identity, and
//! the hook point for a layer above it (the CRM's tracking, in `crate::sync`).
//! It reaches the server through `crate::imap_client::connect` and knows
//! nothing of the CRM.
//!
//! Start it in-process with [`Server::bind`] (binds the listeners; port 0 is
//! fine, read the real ones with [`Server::imap_addr`]/[`Server::imaps_addr`])
//! then [`Server::run`] with any future as the shutdown signal. The tracking
//! layer plugs in through [`Hook`] (see `hook.rs`), passed in [`ServerOptions`].

pub mod hook;
pub mod identity;
mod server;
pub mod session;
pub mod state;

pub use hook::{Credential, Hook, HookContext, NoopHook, UpstreamHandle};
pub use identity::Identity;
pub use server::{Server, ServerOptions};
pub use state::SessionState;

pub use crate::imap_client::{AsyncStream, BoxedIo};

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

impl From<crate::imap_client::ConnectError> for ProxyError {
    fn from(e: crate::imap_client::ConnectError) -> Self {
        use crate::imap_client::ConnectError as C;
        match e {
            C::Upstream(s) => ProxyError::Upstream(s),
            C::Tls(t) => ProxyError::Tls(t),
            C::Io(io) => ProxyError::Io(io),
        }
    }
}
