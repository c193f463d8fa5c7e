//! TLS for both sides: the local CA and localhost certificate (made and renewed with
//! rcgen), the rustls server config for the client-facing listeners, and the rustls
//! connector for the upstream server (system roots, an extra CA file whose own
//! certificates are also accepted as pinned, a pinned SHA-256 fingerprint (see
//! [`pinning`]), or — only when explicitly configured — no verification at all).

pub mod pinning;

use crate::config::{Config, UpstreamConfig};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How long the local CA is valid: users trust it once, so make it last.
const CA_VALIDITY_DAYS: i64 = 3650;
/// How long a localhost certificate is valid; it is renewed automatically.
const LEAF_VALIDITY_DAYS: i64 = 365;

/// Errors while making, loading or using certificates.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {what} {path}: {reason}")]
    Pem {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("invalid upstream server name {0:?}")]
    ServerName(String),
    #[error("no trusted CA certificates: the system store is empty and no ca_file is set")]
    NoRoots,
    #[error("invalid upstream.fingerprint: {0}")]
    Fingerprint(String),
    #[error("cannot set up certificate verification: {0}")]
    Verifier(String),
}

/// Where the local CA and the localhost certificate live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPaths {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertPaths {
    /// The fixed file names inside a certificate directory (see `certs/README.md`).
    pub fn in_dir(dir: &Path) -> CertPaths {
        CertPaths {
            ca_cert: dir.join("ca.pem"),
            ca_key: dir.join("ca-key.pem"),
            cert: dir.join("localhost.pem"),
            key: dir.join("localhost-key.pem"),
        }
    }
}

/// What `ensure_certs_in` did, so that `init` can tell the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertAction {
    /// A new CA and a new localhost certificate were made.
    CreatedCa,
    /// The CA was kept; the localhost certificate was missing, expiring or unreadable.
    RenewedLeaf,
    /// Both were present and valid for long enough.
    Kept,
}

/// Create the CA and localhost certificate under the configured cert dir if missing;
/// renew the localhost certificate when it expires within `renew_before_days`.
pub fn ensure_certs(cfg: &Config) -> Result<CertPaths, TlsError> {
    let (paths, action) = ensure_certs_in(&cfg.cert_dir(), cfg.tls.renew_before_days)?;
    match action {
        CertAction::CreatedCa => {
            tracing::info!(ca = %paths.ca_cert.display(), "created a local CA and localhost certificate")
        }
        CertAction::RenewedLeaf => {
            tracing::info!(cert = %paths.cert.display(), "renewed the localhost certificate")
        }
        CertAction::Kept => {}
    }
    if let Ok(left) = time_to_expiry(&paths.ca_cert) {
        if left < Duration::from_secs(86_400 * u64::from(cfg.tls.renew_before_days)) {
            tracing::warn!(ca = %paths.ca_cert.display(), "the local CA expires soon: run `crmproxy init --force` and trust the new CA");
        }
    }
    Ok(paths)
}

/// The work of [`ensure_certs`] on an explicit directory.
pub fn ensure_certs_in(
    dir: &Path,
    renew_before_days: u32,
) -> Result<(CertPaths, CertAction), TlsError> {
    let paths = CertPaths::in_dir(dir);
    crate::private_files::create_dir_all(dir)
        .map_err(|e| io_err("cannot create certificate dir", dir, e))?;
    let margin = Duration::from_secs(86_400 * u64::from(renew_before_days));

    let ca_usable = paths.ca_cert.exists()
        && paths.ca_key.exists()
        && time_to_expiry(&paths.ca_cert).is_ok_and(|left| left > Duration::ZERO);
    let (ca_pem, ca_key_pem, action) = if ca_usable {
        let leaf_ok = paths.cert.exists()
            && paths.key.exists()
            && time_to_expiry(&paths.cert).is_ok_and(|left| left > margin);
        if leaf_ok {
            return Ok((paths, CertAction::Kept));
        }
        let ca_pem = read_text(&paths.ca_cert, "CA certificate")?;
        let ca_key_pem = read_text(&paths.ca_key, "CA key")?;
        (ca_pem, ca_key_pem, CertAction::RenewedLeaf)
    } else {
        let (ca_pem, ca_key_pem) = generate_ca()?;
        write_atomic(&paths.ca_key, ca_key_pem.as_bytes(), 0o600)?;
        write_atomic(&paths.ca_cert, ca_pem.as_bytes(), 0o600)?;
        (ca_pem, ca_key_pem, CertAction::CreatedCa)
    };

    let ca_key = KeyPair::from_pem(&ca_key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)?;
    let (leaf_pem, leaf_key_pem) = generate_leaf(&issuer, LEAF_VALIDITY_DAYS)?;
    write_atomic(&paths.key, leaf_key_pem.as_bytes(), 0o600)?;
    write_atomic(&paths.cert, leaf_pem.as_bytes(), 0o600)?;
    Ok((paths, action))
}

fn generate_ca() -> Result<(String, String), TlsError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    // A per-install suffix so that two machines' CAs are never confused in a trust store.
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    dn.push(DnType::CommonName, format!("crmproxy local CA {suffix}"));
    dn.push(DnType::OrganizationName, "crmproxy");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(CA_VALIDITY_DAYS);
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn generate_leaf(
    issuer: &Issuer<'_, KeyPair>,
    validity_days: i64,
) -> Result<(String, String), TlsError> {
    let mut params =
        CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into(), "::1".into()])?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "localhost");
    dn.push(DnType::OrganizationName, "crmproxy");
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(validity_days);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Time left before the first certificate in a PEM file expires (zero when expired).
pub fn time_to_expiry(cert_pem: &Path) -> Result<Duration, TlsError> {
    let der = CertificateDer::from_pem_file(cert_pem).map_err(|e| TlsError::Pem {
        what: "certificate",
        path: cert_pem.to_owned(),
        reason: e.to_string(),
    })?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| TlsError::Pem {
        what: "certificate",
        path: cert_pem.to_owned(),
        reason: e.to_string(),
    })?;
    let not_after = cert.validity().not_after.timestamp();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Ok(Duration::from_secs(
        not_after.saturating_sub(now).max(0) as u64
    ))
}

/// The rustls server config for the client-facing listeners.
pub fn server_config(paths: &CertPaths) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = CertificateDer::pem_file_iter(&paths.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Pem {
            what: "certificate",
            path: paths.cert.clone(),
            reason: e.to_string(),
        })?;
    let key = PrivateKeyDer::from_pem_file(&paths.key).map_err(|e| TlsError::Pem {
        what: "private key",
        path: paths.key.clone(),
        reason: e.to_string(),
    })?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(Arc::new(config))
}

/// The connector for the upstream server, verifying as configured.
pub fn upstream_connector(up: &UpstreamConfig) -> Result<tokio_rustls::TlsConnector, TlsError> {
    connector(up, None)
}

/// [`upstream_connector`] that also leaves the certificate the server presents in
/// the returned slot (for `doctor` to describe).
pub fn upstream_connector_observed(
    up: &UpstreamConfig,
) -> Result<(tokio_rustls::TlsConnector, pinning::PresentedCert), TlsError> {
    let slot = pinning::PresentedCert::default();
    Ok((connector(up, Some(slot.clone()))?, slot))
}

fn connector(
    up: &UpstreamConfig,
    presented: Option<pinning::PresentedCert>,
) -> Result<tokio_rustls::TlsConnector, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?;
    let config = if up.insecure_skip_verify {
        tracing::warn!(
            upstream = %up.host,
            "upstream.insecure_skip_verify is ON: the upstream certificate is NOT checked; \
             anyone on the path can read the mailbox password"
        );
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider())))
            .with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier(up, presented)?))
            .with_no_client_auth()
    };
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// The name the upstream certificate must carry: `server_name`, else `host`.
pub fn upstream_server_name(up: &UpstreamConfig) -> Result<ServerName<'static>, TlsError> {
    let name = up.server_name.as_deref().unwrap_or(&up.host);
    ServerName::try_from(name.to_owned()).map_err(|_| TlsError::ServerName(name.to_owned()))
}

/// The verifier for the configured trust: a fingerprint pins exactly one
/// certificate; otherwise the CA chain, plus ca_file's own certificates as pins.
fn verifier(
    up: &UpstreamConfig,
    presented: Option<pinning::PresentedCert>,
) -> Result<pinning::PinningVerifier, TlsError> {
    let fingerprint = up
        .fingerprint
        .as_deref()
        .map(crate::config::parse_fingerprint)
        .transpose()
        .map_err(TlsError::Fingerprint)?;
    let (webpki, pinned) = if fingerprint.is_some() {
        (None, Vec::new())
    } else {
        let pinned = match up.ca_file.as_deref() {
            Some(path) => ca_file_certs(path)?,
            None => Vec::new(),
        };
        let webpki = match root_store(up.ca_file.as_deref()) {
            Ok(roots) => Some(
                rustls::client::WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider(),
                )
                .build()
                .map_err(|e| TlsError::Verifier(e.to_string()))?,
            ),
            // Only pinned certificates: enough.
            Err(TlsError::NoRoots) if !pinned.is_empty() => None,
            Err(e) => return Err(e),
        };
        (webpki, pinned)
    };
    Ok(pinning::PinningVerifier {
        webpki,
        pinned,
        fingerprint,
        provider: provider(),
        presented,
    })
}

/// The certificates of a PEM file (at least one).
fn ca_file_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Pem {
            what: "upstream CA file",
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what: "upstream CA file",
            path: path.to_owned(),
            reason: "no certificate in it".into(),
        });
    }
    Ok(certs)
}

fn root_store(ca_file: Option<&Path>) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::debug!(error = %e, "skipping part of the system certificate store");
    }
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        for c in ca_file_certs(path)? {
            // A certificate that cannot be a trust anchor may still be pinned.
            if let Err(e) = roots.add(c) {
                tracing::debug!(ca_file = %path.display(), error = %e, "not usable as a CA");
            }
        }
    }
    if roots.is_empty() {
        return Err(TlsError::NoRoots);
    }
    Ok(roots)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Verifier used only with `insecure_skip_verify`: checks signatures, not identity.
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn read_text(path: &Path, what: &'static str) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|e| TlsError::Io {
        what: match what {
            "CA key" => "cannot read CA key",
            _ => "cannot read CA certificate",
        },
        path: path.to_owned(),
        source: e,
    })
}

fn io_err(what: &'static str, path: &Path, source: std::io::Error) -> TlsError {
    TlsError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// Write a file under a temporary name with `mode`, fsync it, and rename it into place,
/// so that a crash never leaves a half-written key, and a key is never world-readable.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, mode);
    #[cfg(not(unix))]
    let _ = mode; // no Unix modes here: the data directory's ACL protects the file
    let mut f = o.open(&tmp).map_err(|e| io_err("cannot write", &tmp, e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| io_err("cannot write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_err("cannot rename into", path, e))?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn creates_ca_and_leaf_with_private_keys_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (paths, action) = ensure_certs_in(dir.path(), 30).unwrap();
        assert_eq!(action, CertAction::CreatedCa);
        for key in [&paths.ca_key, &paths.key] {
            let mode = std::fs::metadata(key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", key.display());
        }
        let left = time_to_expiry(&paths.cert).unwrap();
        assert!(left > Duration::from_secs(86_400 * 300));
        server_config(&paths).unwrap();
        // A second run keeps everything.
        let (_, again) = ensure_certs_in(dir.path(), 30).unwrap();
        assert_eq!(again, CertAction::Kept);
    }

    #[test]
    fn renews_an_expiring_leaf_and_keeps_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let (paths, _) = ensure_certs_in(dir.path(), 30).unwrap();
        let ca_before = std::fs::read(&paths.ca_cert).unwrap();
        // Replace the leaf with one that expires in 5 days.
        let ca_key = KeyPair::from_pem(&std::fs::read_to_string(&paths.ca_key).unwrap()).unwrap();
        let issuer =
            Issuer::from_ca_cert_pem(&String::from_utf8(ca_before.clone()).unwrap(), ca_key)
                .unwrap();
        let (leaf, key) = generate_leaf(&issuer, 5).unwrap();
        write_atomic(&paths.cert, leaf.as_bytes(), 0o644).unwrap();
        write_atomic(&paths.key, key.as_bytes(), 0o600).unwrap();
        assert!(time_to_expiry(&paths.cert).unwrap() < Duration::from_secs(86_400 * 6));

        let (_, action) = ensure_certs_in(dir.path(), 30).unwrap();
        assert_eq!(action, CertAction::RenewedLeaf);
        assert_eq!(std::fs::read(&paths.ca_cert).unwrap(), ca_before);
        assert!(time_to_expiry(&paths.cert).unwrap() > Duration::from_secs(86_400 * 300));
    }

    #[tokio::test]
    async fn leaf_verifies_against_the_ca_over_a_real_handshake() {
        let dir = tempfile::tempdir().unwrap();
        let (paths, _) = ensure_certs_in(dir.path(), 30).unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(server_config(&paths).unwrap());
        let up = UpstreamConfig {
            host: "localhost".into(),
            ca_file: Some(paths.ca_cert.clone()),
            ..UpstreamConfig::default()
        };
        let connector = upstream_connector(&up).unwrap();
        let (a, b) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(async move { acceptor.accept(b).await.map(|_| ()) });
        let name = upstream_server_name(&up).unwrap();
        let _client = connector.connect(name, a).await.expect("client handshake");
        server.await.unwrap().expect("server handshake");
    }

    #[tokio::test]
    async fn unknown_ca_is_rejected_unless_verification_is_off() {
        let dir = tempfile::tempdir().unwrap();
        let (paths, _) = ensure_certs_in(dir.path(), 30).unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(server_config(&paths).unwrap());
        for insecure in [false, true] {
            let up = UpstreamConfig {
                host: "localhost".into(),
                insecure_skip_verify: insecure,
                ..UpstreamConfig::default()
            };
            // Without the CA file this only has the system roots, which lack our CA.
            let Ok(connector) = upstream_connector(&up) else {
                continue; // no system roots on this machine: nothing to compare
            };
            let (a, b) = tokio::io::duplex(64 * 1024);
            let acc = acceptor.clone();
            let server = tokio::spawn(async move { acc.accept(b).await.map(|_| ()) });
            let res = connector
                .connect(upstream_server_name(&up).unwrap(), a)
                .await;
            assert_eq!(res.is_ok(), insecure, "insecure={insecure}");
            let _ = server.await;
        }
    }

    #[test]
    fn bad_ca_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("ca.pem");
        std::fs::write(&f, "not a certificate").unwrap();
        let up = UpstreamConfig {
            ca_file: Some(f),
            ..UpstreamConfig::default()
        };
        let Err(err) = upstream_connector(&up) else {
            panic!("a file without a certificate was accepted");
        };
        let err = err.to_string();
        assert!(err.contains("upstream CA file"), "{err}");
    }
}
