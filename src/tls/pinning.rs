//! Trust in the upstream certificate beyond the CA chain: a certificate pinned by
//! being in `ca_file` itself, or by its SHA-256 (`upstream.fingerprint`), is accepted
//! as the server's own, whoever issued it. A self-signed certificate made with
//! `openssl req -x509` marks itself CA:TRUE, which webpki refuses as a server's
//! certificate (`CaUsedAsEndEntity`); pinned, it works. Everything else goes to the
//! usual webpki verification. The verifier also keeps the certificate the server
//! presented, so that `doctor` can say what is wrong with it.

use crate::config::UpstreamConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};

/// Where a verifier leaves the end-entity certificate the server presented.
pub type PresentedCert = Arc<Mutex<Option<CertificateDer<'static>>>>;

/// `sha256:AB:CD:…`, as `upstream.fingerprint` takes it and `openssl` prints it.
pub fn fingerprint_of(cert: &[u8]) -> String {
    let hex: Vec<String> = Sha256::digest(cert)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    format!("sha256:{}", hex.join(":"))
}

#[derive(Debug)]
pub(super) struct PinningVerifier {
    /// The CA-chain check (system roots and ca_file); none when a fingerprint pins.
    pub webpki: Option<Arc<WebPkiServerVerifier>>,
    /// Certificates of ca_file, accepted as they are when the server presents one.
    pub pinned: Vec<CertificateDer<'static>>,
    /// `upstream.fingerprint`: only the certificate with this SHA-256 is accepted.
    pub fingerprint: Option<[u8; 32]>,
    pub provider: Arc<rustls::crypto::CryptoProvider>,
    pub presented: Option<PresentedCert>,
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(slot) = &self.presented {
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(end_entity.clone().into_owned());
        }
        if let Some(want) = &self.fingerprint {
            let got: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
            return if &got == want {
                Ok(ServerCertVerified::assertion())
            } else {
                Err(rustls::Error::General(format!(
                    "the server's certificate has fingerprint {}, not the one in upstream.fingerprint",
                    fingerprint_of(end_entity)
                )))
            };
        }
        if self
            .pinned
            .iter()
            .any(|p| p.as_ref() == end_entity.as_ref())
        {
            // The exact certificate the user chose; its key still has to sign the
            // handshake (checked below), so only its owner gets here.
            return Ok(ServerCertVerified::assertion());
        }
        match &self.webpki {
            Some(v) => {
                v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => Err(rustls::Error::General("no trusted certificates".into())),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What a certificate says, for telling the user what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    pub subject: String,
    pub issuer: String,
    /// DNS names and IP addresses it is for (the subject's CN when it has none).
    pub names: Vec<String>,
    pub is_ca: bool,
    pub expired: bool,
    pub not_after: String,
    pub fingerprint: String,
}

impl CertFacts {
    pub fn of(der: &[u8]) -> Option<CertFacts> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let mut names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for n in &san.value.general_names {
                match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => names.push(d.to_string()),
                    x509_parser::extensions::GeneralName::IPAddress(ip) => {
                        let addr = match ip.len() {
                            4 => <[u8; 4]>::try_from(*ip).ok().map(std::net::IpAddr::from),
                            16 => <[u8; 16]>::try_from(*ip).ok().map(std::net::IpAddr::from),
                            _ => None,
                        };
                        names.extend(addr.map(|a| a.to_string()));
                    }
                    _ => {}
                }
            }
        }
        if names.is_empty() {
            names.extend(
                cert.subject()
                    .iter_common_name()
                    .filter_map(|cn| cn.as_str().ok().map(str::to_owned)),
            );
        }
        let is_ca = cert
            .basic_constraints()
            .ok()
            .flatten()
            .is_some_and(|bc| bc.value.ca);
        Some(CertFacts {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            names,
            is_ca,
            expired: !cert.validity().is_valid(),
            not_after: cert.validity().not_after.to_string(),
            fingerprint: fingerprint_of(der),
        })
    }

    /// What the certificate is, and what to change so that it is trusted, given the
    /// trust configured in `up` (never advising a setting that is already made).
    pub fn explain_distrust(&self, up: &UpstreamConfig) -> (String, String) {
        let name = up.server_name.as_deref().unwrap_or(&up.host);
        let about = format!(
            "The server presents a certificate for {} ({}), issued by {}{}, \
             valid until {}, fingerprint {}",
            self.names.join(", "),
            self.subject,
            if self.self_signed() {
                "itself (self-signed)"
            } else {
                self.issuer.as_str()
            },
            if self.is_ca { ", marked CA:TRUE" } else { "" },
            self.not_after,
            self.fingerprint,
        );
        let pin = format!(
            "upstream.fingerprint = \"{}\" (after comparing it with the fingerprint on the \
             server: openssl x509 -noout -fingerprint -sha256 -in CERT)",
            self.fingerprint
        );
        let fix = if let Some(fp) = &up.fingerprint {
            format!(
                "upstream.fingerprint is {fp}, but the server's certificate is {}: if the server's \
                 certificate was renewed, check the new one with its administrator and set {pin}",
                self.fingerprint
            )
        } else if self.expired {
            format!(
                "the server's certificate expired ({}): renew it on the server",
                self.not_after
            )
        } else if !self.is_for(name) {
            format!(
                "the certificate is for {}, not {name}: set upstream.server_name to one of those \
                 names (or connect to the host name it was made for)",
                self.names.join(", ")
            )
        } else if let Some(ca) = &up.ca_file {
            format!(
                "upstream.ca_file {} is set but does not vouch for this certificate (it holds neither \
                 this certificate nor the CA that issued it): put the server's own certificate or its \
                 issuing CA into that file, or pin it with {pin}",
                ca.display()
            )
        } else {
            format!(
                "the system's trusted CAs do not vouch for this certificate: set upstream.ca_file \
                 to the server's own certificate or its issuing CA (`serve --upstream-ca FILE`), \
                 or pin it with {pin}"
            )
        };
        (about, fix)
    }

    pub fn self_signed(&self) -> bool {
        self.subject == self.issuer
    }

    /// Whether the certificate is for `name` (exactly, or by a `*.` wildcard).
    pub fn is_for(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.names.iter().any(|n| {
            let n = n.to_ascii_lowercase();
            match n.strip_prefix("*.") {
                Some(base) => name
                    .split_once('.')
                    .is_some_and(|(head, rest)| !head.is_empty() && rest == base),
                None => n == name,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    use rustls::pki_types::pem::PemObject;

    /// A self-signed certificate for localhost that marks itself CA:TRUE, as
    /// `openssl req -x509` makes one: (certificate PEM, key PEM).
    fn self_signed_ca_for_localhost() -> (String, String) {
        let mut params = CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    async fn handshake(server: (&str, &str), up: &UpstreamConfig) -> Result<(), String> {
        let chain = vec![CertificateDer::from_pem_slice(server.0.as_bytes()).unwrap()];
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(server.1.as_bytes()).unwrap();
        let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let connector = super::super::upstream_connector(up).map_err(|e| e.to_string())?;
        let (a, b) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(async move { acceptor.accept(b).await.map(|_| ()) });
        let name = super::super::upstream_server_name(up).unwrap();
        let r = connector.connect(name, a).await.map(|_| ());
        let _ = server.await;
        r.map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn a_self_signed_ca_certificate_works_pinned_by_file_or_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed_ca_for_localhost();
        let file = dir.path().join("server.pem");
        std::fs::write(&file, &cert).unwrap();
        let der = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        let facts = CertFacts::of(&der).unwrap();
        assert!(facts.is_ca && facts.self_signed() && facts.is_for("LOCALHOST"));
        let base = UpstreamConfig {
            host: "localhost".into(),
            ..UpstreamConfig::default()
        };
        let by_file = UpstreamConfig {
            ca_file: Some(file.clone()),
            ..base.clone()
        };
        handshake((&cert, &key), &by_file).await.unwrap();
        let by_fingerprint = UpstreamConfig {
            fingerprint: Some(fingerprint_of(&der)),
            ..base.clone()
        };
        handshake((&cert, &key), &by_fingerprint).await.unwrap();
        // Another certificate's pin does not let this one in.
        let (other, _) = self_signed_ca_for_localhost();
        let other_der = CertificateDer::from_pem_slice(other.as_bytes()).unwrap();
        let wrong = UpstreamConfig {
            fingerprint: Some(fingerprint_of(&other_der)),
            ..base.clone()
        };
        let e = handshake((&cert, &key), &wrong).await.unwrap_err();
        assert!(e.contains(&facts.fingerprint), "{e}");
        let (_, fix) = facts.explain_distrust(&wrong);
        assert!(fix.contains("renewed"), "{fix}");
    }

    #[test]
    fn names_match_exactly_or_by_one_wildcard_label() {
        let facts = CertFacts {
            subject: "CN=x".into(),
            issuer: "CN=y".into(),
            names: vec!["*.example.com".into(), "mail.example.org".into()],
            is_ca: false,
            expired: false,
            not_after: String::new(),
            fingerprint: String::new(),
        };
        assert!(facts.is_for("imap.example.com") && facts.is_for("mail.example.org."));
        assert!(!facts.is_for("example.com") && !facts.is_for("a.b.example.com"));
        let up = UpstreamConfig {
            host: "imap.example.net".into(),
            ..UpstreamConfig::default()
        };
        assert!(facts.explain_distrust(&up).1.contains("server_name"));
    }
}
