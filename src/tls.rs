//! TLS for both sides: the local CA and localhost certificate (made and renewed with
//! rcgen), the rustls server config for the client-facing listeners, and the rustls
//! connector for the upstream server (system roots, an extra CA file, or — only when
//! explicitly configured — no verification).

use crate::config::{Config, UpstreamConfig};
use std::path::PathBuf;
use std::sync::Arc;

/// Errors while making, loading or using certificates.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

/// Where the local CA and the localhost certificate live.
#[derive(Debug, Clone)]
pub struct CertPaths {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Create the CA and localhost certificate if missing; renew the leaf when it
/// expires within `renew_before_days`. Keys are written with mode 0600.
pub fn ensure_certs(_cfg: &Config) -> Result<CertPaths, TlsError> {
    todo!("tls work")
}

/// The rustls server config for the client-facing listeners.
pub fn server_config(_paths: &CertPaths) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    todo!("tls work")
}

/// The connector for the upstream server, verifying as configured.
pub fn upstream_connector(_up: &UpstreamConfig) -> Result<tokio_rustls::TlsConnector, TlsError> {
    todo!("tls work")
}
