//! Tracking a message: every field of the email activity, the raw bytes kept byte
//! for byte (S/MIME verifies on the stored copy), parties with roles resolved in the
//! order user, contact, account, lead, direction, one activity per Message-ID, the
//! synthetic Message-ID, and the header block.

#[path = "track_support.rs"]
mod support;

use crmproxy::store::*;
use crmproxy::track::*;
use support::*;

#[test]
fn tracking_makes_an_email_activity_with_every_field() {
    let w = World::new();
    let raw = mail("thread-original.eml");
    let t = w
        .engine
        .track(&w.alice(), &raw, TrackRequest::new(TrackSource::Keyword))
        .unwrap();
    assert!(t.created);
    let a = &t.activity;
    assert_eq!(a.owner, w.alice);
    assert_eq!(a.subject, "Quote for 40 licences");
    assert_eq!(a.regarding, None);
    let e = World::email(a);
    assert_eq!(e.message_id, mid("thread-1@fabrikam.example"));
    assert_eq!(e.date.to_rfc3339(), "2026-11-24T09:15:00+00:00");
    assert_eq!(e.direction, Direction::Incoming);
    assert!(
        e.body_text.contains("please send a quote"),
        "{}",
        e.body_text
    );
    assert_eq!(e.in_reply_to, None);
    assert!(e.thread_index.is_some());
    assert_eq!(e.correlation, Correlation::None);
    assert!(e.smime.is_none());
    // Raw bytes kept byte for byte.
    let blob = e.raw.as_ref().unwrap();
    assert_eq!(w.store.blob(blob).unwrap(), raw);
    // Parties: sender (contact, non-ASCII name), to (user), cc (account).
    let roles: Vec<_> = a
        .parties
        .iter()
        .map(|p| (p.role, p.name.as_str(), p.records.clone()))
        .collect();
    assert_eq!(
        roles,
        vec![
            (PartyRole::Sender, "Carol Fabré", vec![w.carol]),
            (
                PartyRole::To,
                "Alice Example",
                vec![RecordRef::new(Kind::User, w.alice)]
            ),
            (PartyRole::Cc, "", vec![w.adatum]),
        ]
    );
    // The tracking record.
    let r = &t.record;
    assert_eq!(r.owner, w.alice);
    assert_eq!(r.requested_by, w.alice);
    assert_eq!(r.status, TrackStatus::Tracked);
    assert_eq!(r.activity, Some(a.id));
    assert_eq!(r.via.as_deref(), Some("keyword"));
    // Stored as returned, and shown in the contact's timeline.
    assert_eq!(w.store.activity(a.id).unwrap().as_ref(), Some(a));
    assert_eq!(
        w.store.tracking(w.alice, &e.message_id).unwrap().as_ref(),
        Some(r)
    );
    assert_eq!(w.store.activities_of(w.carol.id, 10).unwrap()[0].id, a.id);
    // Headers: status and activity id.
    // Only facts that stay true: who asked for tracking and when, no status.
    assert_eq!(
        t.headers.tracked_by.as_deref(),
        Some("alice@contoso.example")
    );
    assert_eq!(t.headers.tracked_at, Some(t.record.requested_at));
    assert_eq!(t.headers.activity_id, Some(a.id.to_string()));
    assert_eq!(
        w.engine.headers(w.alice, &e.message_id).unwrap(),
        Some(t.headers.clone())
    );
    assert_eq!(w.engine.headers(w.erin, &e.message_id).unwrap(), None);
    assert_eq!(w.engine.keywords_for(&r.status), Some("$CRM_Tracked"));
}

#[test]
fn mail_from_the_owner_is_outgoing() {
    let w = World::new();
    let t = w
        .engine
        .track(
            &w.alice(),
            &mail("thread-reply.eml"),
            TrackRequest::new(TrackSource::Pane),
        )
        .unwrap();
    assert_eq!(World::email(&t.activity).direction, Direction::Outgoing);
    // The same message tracked by its recipient's mailbox keeps the first owner's view.
    let t2 = w
        .engine
        .track(
            &w.erin(),
            &mail("from-contact.eml"),
            TrackRequest::new(TrackSource::Pane),
        )
        .unwrap();
    assert_eq!(World::email(&t2.activity).direction, Direction::Incoming);
}

#[test]
fn one_activity_per_message_id_for_every_mailbox() {
    let w = World::new();
    let raw = mail("thread-original.eml");
    let a = w
        .engine
        .track(&w.alice(), &raw, TrackRequest::new(TrackSource::Keyword))
        .unwrap();
    let e = w
        .engine
        .track(
            &w.erin(),
            &raw,
            TrackRequest::new(TrackSource::Folder("CRM/Track".into())),
        )
        .unwrap();
    assert!(a.created);
    assert!(!e.created);
    assert_eq!(a.activity.id, e.activity.id);
    assert_eq!(
        e.activity.owner, w.alice,
        "the first tracker's mailbox owns it"
    );
    let all = w
        .store
        .tracking_of_message(&mid("thread-1@fabrikam.example"))
        .unwrap();
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|t| t.activity == Some(a.activity.id)));
    assert_eq!(w.snapshot().0.len(), 1);
    // Tracking again in the same mailbox is idempotent.
    let again = w
        .engine
        .track(&w.alice(), &raw, TrackRequest::new(TrackSource::Keyword))
        .unwrap();
    assert_eq!(again.activity, a.activity);
    assert_eq!(w.snapshot().0.len(), 1);
    assert_eq!(w.snapshot().1.len(), 2);
}

#[test]
fn parties_resolve_user_contact_account_lead_or_not_at_all() {
    let w = World::new();
    let raw = b"Message-ID: <multi@x.example>\r\nFrom: Multi <multi@shared.example>\r\n\
To: lena@northwind.example, stranger@unknown.example\r\nBcc: carol@fabrikam.example\r\n\
Subject: who is who\r\n\r\nx\r\n";
    let t = w
        .engine
        .track(&w.alice(), raw, TrackRequest::new(TrackSource::Cli))
        .unwrap();
    let p = &t.activity.parties;
    assert_eq!(p[0].role, PartyRole::Sender);
    assert_eq!(
        p[0].records,
        vec![
            RecordRef::new(Kind::User, w.frank),
            w.multi_contact,
            w.multi_account,
            w.multi_lead
        ]
    );
    assert_eq!(
        (p[1].role, p[1].records.clone()),
        (PartyRole::To, vec![w.lena])
    );
    assert_eq!((p[2].role, p[2].records.clone()), (PartyRole::To, vec![]));
    assert_eq!(p[2].address, Some(addr("stranger@unknown.example")));
    assert_eq!(
        (p[3].role, p[3].records.clone()),
        (PartyRole::Bcc, vec![w.carol])
    );

    // With ambiguous addresses left unresolved, the multi-match sender has none.
    w.edit_settings(|s| s.resolve_ambiguous_to_all = false);
    let raw2 = b"Message-ID: <multi-2@x.example>\r\nFrom: multi@shared.example\r\n\
To: lena@northwind.example\r\nSubject: again\r\n\r\nx\r\n";
    let t = w
        .engine
        .track(&w.alice(), raw2, TrackRequest::new(TrackSource::Cli))
        .unwrap();
    assert!(t.activity.parties[0].records.is_empty());
    assert_eq!(t.activity.parties[1].records, vec![w.lena]);
}

#[test]
fn a_message_without_message_id_gets_a_stable_synthetic_one() {
    let w = World::new();
    let raw = mail("no-message-id.eml");
    let t = w
        .engine
        .track(&w.alice(), &raw, TrackRequest::new(TrackSource::Cli))
        .unwrap();
    let id = &World::email(&t.activity).message_id;
    assert_eq!(*id, synthetic_message_id(&raw));
    let t2 = w
        .engine
        .track(&w.erin(), &raw, TrackRequest::new(TrackSource::Cli))
        .unwrap();
    assert_eq!(t2.activity.id, t.activity.id);
    assert!(w.engine.headers(w.erin, id).unwrap().is_some());
}

#[test]
fn garbage_is_refused_and_nothing_is_written() {
    let w = World::new();
    let before = w.snapshot();
    let e = w
        .engine
        .track(&w.alice(), b"", TrackRequest::new(TrackSource::Cli))
        .unwrap_err();
    assert!(matches!(e, TrackError::NotAMessage(_)), "{e}");
    assert!(e.is_refusal());
    assert_eq!(w.snapshot(), before);
}

fn openssl_verifies(path: &std::path::Path) -> bool {
    let ca = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/smime/ca.crt");
    std::process::Command::new("openssl")
        .args(["smime", "-verify", "-CAfile"])
        .arg(&ca)
        .arg("-in")
        .arg(path)
        .args(["-out", "/dev/null"])
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs")
        .success()
}

#[test]
fn smime_messages_are_kept_byte_for_byte_and_still_verify() {
    let alice_sha = String::from_utf8(fixture("smime/alice.sha256")).unwrap();
    let alice_sha = alice_sha.trim();
    for (file, form, verifies) in [
        ("smime/signed-detached.eml", "multipart-signed", true),
        ("smime/signed-opaque.eml", "opaque-signed", true),
        (
            "smime/signed-detached-tampered.eml",
            "multipart-signed",
            false,
        ),
        ("smime/encrypted.eml", "encrypted", false),
    ] {
        // A store each: the tampered copy has the genuine message's Message-ID, and
        // one Message-ID is one activity (the first copy seen is the one kept).
        let w = World::new();
        let raw = fixture(file);
        let t = w
            .engine
            .track(&w.alice(), &raw, TrackRequest::new(TrackSource::Keyword))
            .unwrap();
        let e = World::email(&t.activity);
        let stored = w.store.blob(e.raw.as_ref().unwrap()).unwrap();
        assert!(stored == raw, "{file}: stored bytes differ");
        let copy = w.dir.path().join("copy.eml");
        std::fs::write(&copy, &stored).unwrap();
        if form != "encrypted" {
            assert_eq!(openssl_verifies(&copy), verifies, "{file}");
        }
        let s = e
            .smime
            .as_ref()
            .unwrap_or_else(|| panic!("{file}: no S/MIME metadata"));
        assert_eq!(s.form.as_deref(), Some(form), "{file}");
        assert_eq!(s.encrypted, form == "encrypted");
        assert_eq!(s.signed, form != "encrypted");
        assert_eq!(s.verified, verifies, "{file}: {:?}", s.problem);
        if form == "encrypted" {
            assert!(s.certificates.is_empty());
            assert!(e.body_text.is_empty(), "no plaintext of encrypted mail");
            continue;
        }
        assert_eq!(s.signer.as_deref(), Some("alice@contoso.example"));
        assert_eq!(s.digest_algorithm.as_deref(), Some("sha256"));
        let c = &s.certificates[0];
        assert_eq!(c.sha256, alice_sha, "{file}: signer first");
        assert!(c.subject.contains("Alice Example"), "{}", c.subject);
        assert!(c.issuer.contains("Contoso Test S-MIME CA"), "{}", c.issuer);
        assert_eq!(c.email.as_deref(), Some("alice@contoso.example"));
        assert!(!c.serial.is_empty());
        assert!(c.not_before < c.not_after);
        if !verifies {
            assert!(s.problem.is_some());
        }
        let h = t.headers.smime.clone().unwrap();
        assert_eq!(h.0, form);
        assert_eq!(h.2, verifies);
        let text = String::from_utf8(t.headers.render()).unwrap();
        assert!(text.contains("X-CRM-SMIME: signed; form="), "{text}");
    }
}

#[test]
fn headers_name_the_regarding_record_in_ascii() {
    let w = World::new();
    let t = w
        .engine
        .track(
            &w.alice(),
            &mail("from-lead.eml"),
            TrackRequest::new(TrackSource::Pane).regarding(w.lena),
        )
        .unwrap();
    let (kind, id, name) = t.headers.regarding.clone().unwrap();
    assert_eq!((kind.as_str(), id), ("lead", w.lena.id.to_string()));
    assert_eq!(name, "Léna Nørd");
    let block = t.headers.render();
    assert!(block.is_ascii());
    let text = String::from_utf8(block).unwrap();
    assert!(text.starts_with("X-CRM-Tracked-By: "), "{text}");
    assert!(!text.contains("Status"), "{text}");
    assert!(text.contains("X-CRM-Regarding: lead <"), "{text}");
    assert!(text.contains("=?UTF-8?B?"), "{text}");
}
