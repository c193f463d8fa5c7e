//! Golden tests on real S/MIME messages made by openssl (fixtures/smime/make.sh):
//! the metadata read from each form, and a tampered copy that must not verify.

use crmproxy::message::{self, SignatureCheck, SmimeForm};
use std::path::PathBuf;

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/smime")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn alice_fingerprint() -> String {
    String::from_utf8(fixture("alice.sha256"))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn detached_signature_verifies_with_signer_metadata() {
    let f = message::parse(&fixture("signed-detached.eml")).unwrap();
    let s = f.smime.expect("S/MIME metadata");
    assert_eq!(s.form, SmimeForm::Detached);
    assert_eq!(s.signers.len(), 1, "{s:?}");
    assert_eq!(s.signers[0].check, SignatureCheck::Valid, "{s:?}");
    assert!(s.verified());
    assert_eq!(s.signers[0].digest_algorithm, "sha256");
    let cert = s.signers[0].certificate.as_ref().unwrap();
    assert_eq!(cert.email.as_deref(), Some("alice@contoso.example"));
    assert_eq!(cert.sha256, alice_fingerprint());
    assert!(cert.subject.contains("Alice Example"), "{}", cert.subject);
    assert!(
        cert.issuer.contains("Contoso Test S-MIME CA"),
        "{}",
        cert.issuer
    );
    assert!(cert.not_after > cert.not_before);
    assert_eq!(s.signer_email(), Some("alice@contoso.example"));
    assert_eq!(
        f.message_id.as_deref(),
        Some("smime-detached-1@contoso.example")
    );
    assert!(f.body_text.contains("12,400 EUR"));
    assert!(
        f.attachments.is_empty(),
        "the signature is not an attachment"
    );
}

#[test]
fn opaque_signature_verifies() {
    let f = message::parse(&fixture("signed-opaque.eml")).unwrap();
    let s = f.smime.expect("S/MIME metadata");
    assert_eq!(s.form, SmimeForm::Opaque);
    assert!(s.verified(), "{s:?}");
    assert_eq!(
        s.signers[0].certificate.as_ref().unwrap().sha256,
        alice_fingerprint()
    );
}

#[test]
fn encrypted_message_lists_its_recipient() {
    let f = message::parse(&fixture("encrypted.eml")).unwrap();
    let s = f.smime.expect("S/MIME metadata");
    assert_eq!(s.form, SmimeForm::Encrypted);
    assert!(s.signers.is_empty());
    assert!(!s.verified());
    assert_eq!(s.recipients.len(), 1);
    assert!(
        s.recipients[0].contains("Contoso Test S-MIME CA"),
        "{:?}",
        s.recipients
    );
    assert!(f.body_text.is_empty());
}

#[test]
fn tampered_body_does_not_verify() {
    let f = message::parse(&fixture("signed-detached-tampered.eml")).unwrap();
    let s = f.smime.expect("S/MIME metadata");
    assert!(!s.verified());
    assert!(
        matches!(&s.signers[0].check, SignatureCheck::Invalid(r) if r.contains("digest")),
        "{s:?}"
    );
}

#[test]
fn plain_mail_has_no_smime() {
    let f = message::parse(b"From: a@b.example\r\nSubject: x\r\n\r\nhi\r\n").unwrap();
    assert!(f.smime.is_none());
}

/// The promise of SPEC section 3: adding the tracking block at the top of the
/// top-level header keeps every signature valid, for our check and for openssl's.
#[test]
fn tracking_headers_on_top_keep_signatures_valid_for_openssl() {
    let block = message::TrackingHeaders {
        tracked_by: Some("alice@contoso.example".into()),
        tracked_at: Some(chrono::Utc::now()),
        activity_id: Some("0190c1d2-0000-7000-8000-000000000001".into()),
        regarding: Some((
            "account".into(),
            "0190c1d2-0000-7000-8000-0000000000aa".into(),
            "Contoso Ltd".into(),
        )),
        smime: Some((
            "multipart-signed",
            Some("alice@contoso.example".into()),
            true,
        )),
    }
    .render();
    let dir = tempfile::tempdir().unwrap();
    let ca = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/smime/ca.crt");
    for name in ["signed-detached.eml", "signed-opaque.eml"] {
        let original = fixture(name);
        let mut spliced = block.clone();
        spliced.extend_from_slice(&original);
        assert_eq!(&spliced[block.len()..], &original[..]);
        let f = message::parse(&spliced).unwrap();
        assert!(f.smime.as_ref().unwrap().verified(), "{name}");

        let path = dir.path().join(name);
        std::fs::write(&path, &spliced).unwrap();
        let out = std::process::Command::new("openssl")
            .args(["smime", "-verify", "-CAfile"])
            .arg(&ca)
            .arg("-in")
            .arg(&path)
            .args(["-out", "/dev/null"])
            .output()
            .expect("openssl must be installed (see .ci/run)");
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
