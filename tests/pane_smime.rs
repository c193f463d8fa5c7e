//! "View email in CRM" for S/MIME mail: the S/MIME metadata the CRM recorded (form,
//! signer, digest, certificates, whether the signature verifies) shown on the page,
//! and the original download byte for byte (it still verifies with openssl). The
//! fixtures are the openssl-made messages of fixtures/smime.

mod pane_util;

use crmproxy::pane::MessageOpened;
use crmproxy::track::{Engine, TrackRequest, TrackSource};
use pane_util::TestPane;
use std::path::{Path, PathBuf};

const ALICE: &str = "alice@example.test";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/smime")
        .join(name)
}

fn verifies(raw: &[u8]) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.eml");
    std::fs::write(&path, raw).unwrap();
    std::process::Command::new("openssl")
        .args(["smime", "-verify", "-CAfile"])
        .arg(fixture("ca.crt"))
        .arg("-in")
        .arg(&path)
        .args(["-out", "/dev/null"])
        .output()
        .expect("run openssl")
        .status
        .success()
}

/// Track `raw` in Alice's mailbox; the activity's id.
fn track(pane: &TestPane, raw: &[u8]) -> String {
    let engine = Engine::new(pane.store.clone(), pane.cfg.tracking.clone()).unwrap();
    let actor = engine.actor(ALICE, ALICE).unwrap();
    let t = engine
        .track(&actor, raw, TrackRequest::new(TrackSource::Cli))
        .unwrap();
    t.activity.id.to_string()
}

#[tokio::test]
async fn the_email_in_crm_page_shows_what_the_signature_says() {
    let pane = TestPane::start().await;
    let signed = std::fs::read(fixture("signed-detached.eml")).unwrap();
    // The tampered copy under its own Message-ID (the header is not signed).
    let tampered =
        String::from_utf8(std::fs::read(fixture("signed-detached-tampered.eml")).unwrap())
            .unwrap()
            .replacen("smime-detached-1@", "smime-tampered-1@", 1)
            .into_bytes();
    let good = track(&pane, &signed);
    let bad = track(&pane, &tampered);
    let mut alice = pane.signed_in(ALICE).await;
    pane.events.publish_opened(
        ALICE,
        MessageOpened::fetched("smime-detached-1@contoso.example", "INBOX", Some(1), 1),
    );

    let t = alice.get(&format!("/activity/{good}")).await.text();
    let sha = std::fs::read_to_string(fixture("alice.sha256")).unwrap();
    for want in [
        "S/MIME",
        "multipart-signed",
        "alice@contoso.example",
        "sha256",
        "Verifies over the bytes kept",
        sha.trim(),
    ] {
        assert!(t.contains(want), "{want}: {t}");
    }
    // The original, as kept, still verifies.
    let r = alice.get(&format!("/activity/{good}/raw")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, signed);
    assert!(verifies(&r.body));

    let t = alice.get(&format!("/activity/{bad}")).await.text();
    assert!(t.contains("Does not verify"), "{t}");
    assert!(!t.contains("Verifies over the bytes kept"), "{t}");
}
