//! The IMAP client side of this program: how it reaches the real server
//! ([`connect`]: TCP, TLS or STARTTLS, greeting), logs in with a user's
//! [`Credential`], and runs the few commands tracking needs ([`client`]); and
//! what it learns of a server's folders ([`folders`]).
//!
//! It knows nothing of the CRM: the proxy relays sessions over its connections,
//! the sync worker and the gateway track through its [`ImapClient`], the pane
//! checks passwords with it.

pub mod append;
pub mod batch;
pub mod client;
pub mod connect;
mod credential;
pub mod folders;
mod mailbox;

pub use client::{quoted, ClientError, ImapClient, RawResponse, Reply, MAX_MESSAGE_BYTES};
pub use connect::{Upstream, UpstreamConnector};
pub use credential::Credential;
pub use mailbox::{Search, Selected};

use tokio::io::{AsyncRead, AsyncWrite};

/// Any byte stream a connection runs on (TCP, TLS over TCP, an in-memory pipe).
pub trait AsyncStream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> AsyncStream for T {}

/// A boxed stream, so that plain and TLS connections share one type.
pub type BoxedIo = Box<dyn AsyncStream>;

/// Why a connection to the server could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("upstream server: {0}")]
    Upstream(String),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
