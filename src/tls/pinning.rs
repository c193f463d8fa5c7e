//! Trust in the upstream certificate beyond the CA chain: a certificate pinned by
//! being in `ca_file` itself, or by its SHA-256 (`upstream.fingerprint`), is accepted
//! as the server's own, whoever issued it. A self-signed certificate made with
//! `openssl req -x509` marks itself CA:TRUE, which webpki refuses as a server's
//! certificate (`CaUsedAsEndEntity`); pinned, it works. Everything else goes to the
//! usual webpki verification. The verifier also keeps the certificate the server
//! presented, so that `doctor` can say what is wrong with it.

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
