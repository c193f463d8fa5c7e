//! S/MIME metadata of a message: its form (detached, opaque, encrypted), the signer
//! certificates, the digest algorithm, and whether each signature verifies over the
//! exact bytes the message carries. Read-only: nothing here changes a byte, and the
//! crypto is ring's (already in the build through rustls).
//!
//! "Verifies" means: the content digest matches the signed attributes and the
//! signature over them checks against the signer certificate's key. Trust in the
//! issuing CA is a separate question that this module does not answer.

use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::enveloped_data::{EnvelopedData, RecipientIdentifier, RecipientInfo};
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use mail_parser::{Message, MimeHeaders, PartType};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use x509_cert::Certificate;

const OID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const OID_ENVELOPED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.3");
const OID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const OID_EMAIL_ADDRESS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.1");
const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_RSA_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.5");
const OID_RSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const OID_RSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const OID_RSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const OID_ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// How the message is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmimeForm {
    /// `multipart/signed`: readable content plus a detached signature part.
    Detached,
    /// `application/pkcs7-mime; smime-type=signed-data`: content inside the signature.
    Opaque,
    /// `application/pkcs7-mime; smime-type=enveloped-data`.
    Encrypted,
}

impl SmimeForm {
    /// The word used in the `X-CRM-SMIME` header.
    pub fn as_str(self) -> &'static str {
        match self {
            SmimeForm::Detached => "multipart-signed",
            SmimeForm::Opaque => "opaque-signed",
            SmimeForm::Encrypted => "encrypted",
        }
    }
}

/// Outcome of checking one signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", content = "reason", rename_all = "lowercase")]
pub enum SignatureCheck {
    Valid,
    Invalid(String),
    /// Could not be checked (unsupported algorithm, missing certificate).
    Unchecked(String),
}

/// A certificate as the CRM records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertSummary {
    pub subject: String,
    pub issuer: String,
    /// Serial number, lower-case hex.
    pub serial: String,
    pub email: Option<String>,
    /// SHA-256 of the DER certificate, lower-case hex.
    pub sha256: String,
    /// Seconds since the Unix epoch.
    pub not_before: i64,
    pub not_after: i64,
}

/// One signer of a signed message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signer {
    /// The signer's certificate, when the message carries it.
    pub certificate: Option<CertSummary>,
    /// `sha1`, `sha256`, … or the OID when unknown.
    pub digest_algorithm: String,
    pub check: SignatureCheck,
}

/// The S/MIME metadata of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmimeInfo {
    pub form: SmimeForm,
    pub signers: Vec<Signer>,
    /// Every certificate the message carries (signer and chain).
    pub certificates: Vec<CertSummary>,
    /// For encrypted mail: the recipients' certificates as issuer + serial.
    pub recipients: Vec<String>,
    /// Set when the structure could not be read (the raw bytes are kept regardless).
    pub error: Option<String>,
}

impl SmimeInfo {
    /// True when there is at least one signer and every signature is valid.
    pub fn verified(&self) -> bool {
        !self.signers.is_empty()
            && self
                .signers
                .iter()
                .all(|s| s.check == SignatureCheck::Valid)
    }

    /// The first signer's e-mail address, for the tracking header.
    pub fn signer_email(&self) -> Option<&str> {
        self.signers
            .iter()
            .find_map(|s| s.certificate.as_ref()?.email.as_deref())
    }
}

/// S/MIME metadata of a parsed message, or `None` when it is not S/MIME at the top level.
pub fn analyze(msg: &Message<'_>) -> Option<SmimeInfo> {
    let root = msg.root_part();
    let ct = root.content_type()?;
    let ctype = ct.ctype().to_ascii_lowercase();
    let subtype = ct.subtype().unwrap_or("").to_ascii_lowercase();
    let raw = msg.raw_message();
    match (ctype.as_str(), subtype.as_str()) {
        ("multipart", "signed") => {
            let parts = root.sub_parts()?;
            let (signed, sig) = (msg.part(*parts.first()?)?, msg.part(*parts.get(1)?)?);
            let content = signed_entity(raw, signed.offset_header, signed.offset_end);
            Some(from_cms(SmimeForm::Detached, sig.contents(), Some(content)))
        }
        ("application", "pkcs7-mime") | ("application", "x-pkcs7-mime") => {
            let der = match &root.body {
                PartType::Binary(b) | PartType::InlineBinary(b) => b.as_ref(),
                _ => root.contents(),
            };
            let form = match ct.attribute("smime-type").map(str::to_ascii_lowercase) {
                Some(t) if t == "enveloped-data" || t == "authenveloped-data" => {
                    SmimeForm::Encrypted
                }
                Some(t) if t == "signed-data" => SmimeForm::Opaque,
                _ => match ContentInfo::from_der(der) {
                    Ok(ci) if ci.content_type == OID_ENVELOPED_DATA => SmimeForm::Encrypted,
                    _ => SmimeForm::Opaque,
                },
            };
            Some(from_cms(form, der, None))
        }
        _ => None,
    }
}

/// The bytes a detached signature covers: the first part's entity, headers included,
/// without the CRLF that belongs to the following boundary delimiter (RFC 5751 3.5).
fn signed_entity(raw: &[u8], start: u32, end: u32) -> &[u8] {
    let (start, end) = (start as usize, (end as usize).min(raw.len()));
    let mut entity = &raw[start.min(end)..end];
    if raw[end..].starts_with(b"\r\n--") || raw[end..].starts_with(b"--") {
        // mail-parser already ends the part before the delimiter's CRLF.
    } else if let Some(stripped) = entity.strip_suffix(b"\r\n") {
        entity = stripped;
    }
    entity
}

fn from_cms(form: SmimeForm, der: &[u8], detached_content: Option<&[u8]>) -> SmimeInfo {
    let mut info = SmimeInfo {
        form,
        signers: Vec::new(),
        certificates: Vec::new(),
        recipients: Vec::new(),
        error: None,
    };
    let ci = match ContentInfo::from_der(der) {
        Ok(ci) => ci,
        Err(e) => {
            info.error = Some(format!("not a CMS structure: {e}"));
            return info;
        }
    };
    if ci.content_type == OID_ENVELOPED_DATA {
        match ci.content.decode_as::<EnvelopedData>() {
            Ok(env) => info.recipients = recipients(&env),
            Err(e) => info.error = Some(format!("unreadable enveloped data: {e}")),
        }
        return info;
    }
    if ci.content_type != OID_SIGNED_DATA {
        info.error = Some(format!("unexpected CMS content type {}", ci.content_type));
        return info;
    }
    let sd = match ci.content.decode_as::<SignedData>() {
        Ok(sd) => sd,
        Err(e) => {
            info.error = Some(format!("unreadable signed data: {e}"));
            return info;
        }
    };
    let certs: Vec<Certificate> = sd
        .certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .filter_map(|c| match c {
            CertificateChoices::Certificate(c) => Some(c.clone()),
            CertificateChoices::Other(_) => None,
        })
        .collect();
    info.certificates = certs.iter().map(summarize).collect();
    let embedded;
    let content: Option<&[u8]> = match detached_content {
        Some(c) => Some(c),
        None => match sd
            .encap_content_info
            .econtent
            .as_ref()
            .map(|any| any.decode_as::<OctetString>())
        {
            Some(Ok(os)) => {
                embedded = os;
                Some(embedded.as_bytes())
            }
            _ => None,
        },
    };
    for si in sd.signer_infos.0.iter() {
        let cert = certs.iter().find(|c| signer_matches(si, c));
        let digest_algorithm = digest_name(&si.digest_alg.oid);
        let check = match (cert, content) {
            (_, None) => SignatureCheck::Unchecked("no signed content".into()),
            (None, _) => SignatureCheck::Unchecked("signer certificate not included".into()),
            (Some(cert), Some(content)) => check_signature(si, cert, content),
        };
        info.signers.push(Signer {
            certificate: cert.map(summarize),
            digest_algorithm,
            check,
        });
    }
    info
}

fn recipients(env: &EnvelopedData) -> Vec<String> {
    env.recip_infos
        .0
        .iter()
        .map(|ri| match ri {
            RecipientInfo::Ktri(k) => match &k.rid {
                RecipientIdentifier::IssuerAndSerialNumber(ias) => format!(
                    "{} serial {}",
                    ias.issuer,
                    hex::encode(ias.serial_number.as_bytes())
                ),
                RecipientIdentifier::SubjectKeyIdentifier(ski) => {
                    format!("key id {}", hex::encode(ski.0.as_bytes()))
                }
            },
            RecipientInfo::Kari(_) => "key agreement recipient".into(),
            RecipientInfo::Kekri(_) => "key-encryption-key recipient".into(),
            RecipientInfo::Pwri(_) => "password recipient".into(),
            RecipientInfo::Ori(_) => "other recipient".into(),
        })
        .collect()
}

fn signer_matches(si: &SignerInfo, cert: &Certificate) -> bool {
    match &si.sid {
        SignerIdentifier::IssuerAndSerialNumber(ias) => {
            ias.issuer == cert.tbs_certificate.issuer
                && ias.serial_number == cert.tbs_certificate.serial_number
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => cert
            .tbs_certificate
            .get::<x509_cert::ext::pkix::SubjectKeyIdentifier>()
            .ok()
            .flatten()
            .is_some_and(|(_, k)| k.0 == ski.0),
    }
}

fn digest_name(oid: &ObjectIdentifier) -> String {
    match oid.to_string().as_str() {
        "1.3.14.3.2.26" => "sha1".into(),
        "2.16.840.1.101.3.4.2.1" => "sha256".into(),
        "2.16.840.1.101.3.4.2.2" => "sha384".into(),
        "2.16.840.1.101.3.4.2.3" => "sha512".into(),
        other => other.into(),
    }
}

fn digest(name: &str, data: &[u8]) -> Option<Vec<u8>> {
    Some(match name {
        "sha1" => ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, data)
            .as_ref()
            .to_vec(),
        "sha256" => sha2::Sha256::digest(data).to_vec(),
        "sha384" => sha2::Sha384::digest(data).to_vec(),
        "sha512" => sha2::Sha512::digest(data).to_vec(),
        _ => return None,
    })
}

fn check_signature(si: &SignerInfo, cert: &Certificate, content: &[u8]) -> SignatureCheck {
    let dname = digest_name(&si.digest_alg.oid);
    let Some(content_digest) = digest(&dname, content) else {
        return SignatureCheck::Unchecked(format!("digest algorithm {dname} not supported"));
    };
    // With signed attributes the signature covers their DER (as a SET OF), and the
    // messageDigest attribute carries the content digest (RFC 5652 5.4).
    let signed_bytes = match &si.signed_attrs {
        Some(attrs) => {
            let md = attrs
                .iter()
                .find(|a| a.oid == OID_MESSAGE_DIGEST)
                .and_then(|a| a.values.iter().next())
                .and_then(|v| v.decode_as::<OctetString>().ok());
            match md {
                Some(md) if md.as_bytes() == content_digest.as_slice() => {}
                Some(_) => {
                    return SignatureCheck::Invalid(
                        "content does not match the signed digest".into(),
                    )
                }
                None => {
                    return SignatureCheck::Invalid("signed attributes lack messageDigest".into())
                }
            }
            match attrs.to_der() {
                Ok(der) => der,
                Err(e) => return SignatureCheck::Unchecked(format!("signed attributes: {e}")),
            }
        }
        None => content.to_vec(),
    };
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let key_bytes = spki.subject_public_key.raw_bytes();
    let sig_oid = si.signature_algorithm.oid;
    let alg: &dyn ring::signature::VerificationAlgorithm = if spki.algorithm.oid == OID_RSA {
        match (sig_oid, dname.as_str()) {
            (OID_RSA_SHA256, _) | (OID_RSA, "sha256") => {
                &ring::signature::RSA_PKCS1_2048_8192_SHA256
            }
            (OID_RSA_SHA384, _) | (OID_RSA, "sha384") => {
                &ring::signature::RSA_PKCS1_2048_8192_SHA384
            }
            (OID_RSA_SHA512, _) | (OID_RSA, "sha512") => {
                &ring::signature::RSA_PKCS1_2048_8192_SHA512
            }
            (OID_RSA_SHA1, _) | (OID_RSA, "sha1") => {
                &ring::signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY
            }
            _ => {
                return SignatureCheck::Unchecked(format!(
                    "signature algorithm {sig_oid} not supported"
                ))
            }
        }
    } else if spki.algorithm.oid == OID_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
        match (curve, sig_oid, dname.as_str()) {
            (Some(OID_P256), OID_ECDSA_SHA256, _) | (Some(OID_P256), _, "sha256") => {
                &ring::signature::ECDSA_P256_SHA256_ASN1
            }
            (Some(OID_P384), OID_ECDSA_SHA384, _) | (Some(OID_P384), _, "sha384") => {
                &ring::signature::ECDSA_P384_SHA384_ASN1
            }
            _ => {
                return SignatureCheck::Unchecked(format!(
                    "ECDSA with {sig_oid} on this curve not supported"
                ))
            }
        }
    } else {
        return SignatureCheck::Unchecked(format!("key type {} not supported", spki.algorithm.oid));
    };
    match ring::signature::UnparsedPublicKey::new(alg, key_bytes)
        .verify(&signed_bytes, si.signature.as_bytes())
    {
        Ok(()) => SignatureCheck::Valid,
        Err(_) => SignatureCheck::Invalid("signature does not match the signer's key".into()),
    }
}

fn summarize(cert: &Certificate) -> CertSummary {
    let tbs = &cert.tbs_certificate;
    let email = tbs
        .get::<x509_cert::ext::pkix::SubjectAltName>()
        .ok()
        .flatten()
        .and_then(|(_, san)| {
            san.0.iter().find_map(|n| match n {
                x509_cert::ext::pkix::name::GeneralName::Rfc822Name(m) => Some(m.to_string()),
                _ => None,
            })
        })
        .or_else(|| {
            tbs.subject
                .0
                .iter()
                .flat_map(|rdn| rdn.0.iter())
                .find_map(|atv| {
                    (atv.oid == OID_EMAIL_ADDRESS)
                        .then(|| {
                            der::asn1::Ia5StringRef::try_from(&atv.value)
                                .map(|s| s.to_string())
                                .ok()
                        })
                        .flatten()
                })
        });
    let der = cert.to_der().unwrap_or_default();
    CertSummary {
        subject: tbs.subject.to_string(),
        issuer: tbs.issuer.to_string(),
        serial: hex::encode(tbs.serial_number.as_bytes()),
        email,
        sha256: hex::encode(sha2::Sha256::digest(&der)),
        not_before: tbs.validity.not_before.to_unix_duration().as_secs() as i64,
        not_after: tbs.validity.not_after.to_unix_duration().as_secs() as i64,
    }
}
