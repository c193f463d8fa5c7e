//! Who may act on, and read, which message in the pane, over real HTTPS on a real
//! store with the demo CRM: another user's message, unknown and malformed ids, a
//! missing CSRF token and script in search text are refused with nothing changed; a
//! Message-ID made current by hand proves nothing; "View email in CRM" and the
//! original download are for the mailboxes that track the message.

mod pane_util;

use crmproxy::pane::MessageOpened;
use crmproxy::store::TrackStatus;
use pane_util::demo::*;
use pane_util::TestPane;

#[tokio::test]
async fn another_users_message_and_unknown_ids_are_refused_and_nothing_changes() {
    let pane = TestPane::start().await;
    let mut bob = pane.signed_in(BOB).await;
    let csrf = bob.get("/current").await.csrf();
    let before = pane.store.tracking(uid(ALICE_ID), &mid(DEMO_MID)).unwrap();
    assert!(before.is_some());

    // Bob never opened Alice's message: he may not track it (and so read it) nor untrack it.
    for path in ["/track", "/untrack"] {
        let r = bob
            .post_form(path, &[("csrf", &csrf), ("message_id", DEMO_MID)])
            .await;
        assert_eq!(r.status, 404, "{path}: {}", r.text());
    }
    let r = bob
        .post_form(
            "/regarding",
            &[
                ("csrf", &csrf),
                ("message_id", DEMO_MID),
                ("regarding", &format!("account:{CONTOSO}")),
            ],
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(pane
        .store
        .tracking(uid(BOB_ID), &mid(DEMO_MID))
        .unwrap()
        .is_none());
    assert_eq!(
        pane.store.tracking(uid(ALICE_ID), &mid(DEMO_MID)).unwrap(),
        before
    );

    // Unknown and malformed ids, over-long ids.
    let long = format!("{}@x.example", "a".repeat(2000));
    for id in ["nobody@nowhere.example", "", "a\r\nb@x", long.as_str()] {
        let r = bob
            .post_form("/track", &[("csrf", &csrf), ("message_id", id)])
            .await;
        assert!(matches!(r.status, 400 | 404), "{id:.30}: {}", r.status);
        assert!(!r.text().contains("\r\nb@x"), "not echoed raw");
    }

    // Without CSRF: refused before anything runs.
    let r = bob
        .post_form("/track", &[("message_id", "x@y.example")])
        .await;
    assert_eq!(r.status, 403);

    // A script in the search text comes back escaped.
    let t = bob
        .get("/regarding?id=x%40y.example&q=%3Cscript%3Ealert(1)%3C%2Fscript%3E")
        .await
        .text();
    assert!(
        !t.contains("<script>alert(1)") && t.contains("&lt;script&gt;"),
        "{t}"
    );
    let r = bob
        .get("/regarding?id=x%40y.example&q=a&type=email_template")
        .await;
    assert_eq!(r.status, 400);
}

/// A Message-ID made current by hand (or by an add-in) proves nothing: Bob names
/// Alice's tracked email, "tracks" it and sets its regarding, and still can read
/// neither the activity nor the original, and Alice's activity does not change.
#[tokio::test]
async fn naming_someone_elses_message_as_current_opens_nothing() {
    let pane = TestPane::start().await;
    let act = pane
        .store
        .activity_by_message_id(&mid(DEMO_MID))
        .unwrap()
        .expect("the demo email is in the CRM");
    assert_eq!(act.owner, uid(ALICE_ID));
    let mut bob = pane.signed_in(BOB).await;
    let csrf = bob.get("/current").await.csrf();
    let r = bob
        .post_form("/current", &[("csrf", &csrf), ("message_id", DEMO_MID)])
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let t = bob.get("/current").await.text();
    assert!(t.contains("Not tracked"), "{t}");
    assert!(
        !t.contains("Nancy Davolio"),
        "the activity's people stay hidden: {t}"
    );

    // Track through the form, then through the JSON API as an add-in would.
    let r = bob
        .post_form("/track", &[("csrf", &csrf), ("message_id", DEMO_MID)])
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    for (path, body) in [
        (
            "/api/current",
            serde_json::json!({ "message_id": DEMO_MID }),
        ),
        ("/api/track", serde_json::json!({ "message_id": DEMO_MID })),
        (
            "/api/regarding",
            serde_json::json!({ "message_id": DEMO_MID, "regarding": format!("account:{CONTOSO}") }),
        ),
    ] {
        let r = bob.post_json(path, &body).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_ne!(r.json()["tracking"]["status"], "tracked", "{path}");
    }
    // Bob's mailbox only asked: pending, linked to nothing, nowhere to fetch it from.
    let rec = pane
        .store
        .tracking(uid(BOB_ID), &mid(DEMO_MID))
        .unwrap()
        .expect("a request");
    assert_eq!(
        (rec.status, rec.activity, rec.location),
        (TrackStatus::Pending, None, None)
    );
    let id = act.id.to_string();
    for path in [format!("/activity/{id}"), format!("/activity/{id}/raw")] {
        let r = bob.get(&path).await;
        assert_eq!(r.status, 404, "{path}");
    }
    assert_eq!(pane.store.activity(act.id).unwrap(), Some(act));
}

#[tokio::test]
async fn view_email_in_crm_shows_the_activity_and_downloads_the_original_for_its_mailbox_only() {
    use crmproxy::track::{Engine, TrackRequest, TrackSource};
    let pane = TestPane::start().await;
    let raw = b"From: Nancy Davolio <nancy.davolio@contoso.example>\r\n\
To: alice@example.test\r\nSubject: Quote <script>alert(1)</script>\r\n\
Message-ID: <viewed-1@contoso.example>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\
\r\nHello Alice,\r\nthe quote is attached.\r\n";
    let engine = Engine::new(pane.store.clone(), pane.cfg.tracking.clone()).unwrap();
    let actor = engine.actor(ALICE, ALICE).unwrap();
    let tracked = engine
        .track(&actor, raw, TrackRequest::new(TrackSource::Cli))
        .unwrap();
    let id = tracked.activity.id.to_string();

    let mut alice = pane.signed_in(ALICE).await;
    pane.events.publish_opened(
        ALICE,
        MessageOpened::fetched("viewed-1@contoso.example", "INBOX", Some(1), 1),
    );
    let t = alice.get("/current").await.text();
    assert!(
        t.contains(&format!("/activity/{id}")),
        "View email in CRM: {t}"
    );
    let t = alice.get(&format!("/activity/{id}")).await.text();
    assert!(
        t.contains("Email in CRM") && t.contains("the quote is attached"),
        "{t}"
    );
    assert!(
        t.contains("&lt;script&gt;") && !t.contains("<script>alert"),
        "escaped: {t}"
    );
    assert!(t.contains("Not signed or encrypted"), "{t}");
    let r = alice.get(&format!("/activity/{id}/raw")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type").as_deref(), Some("message/rfc822"));
    assert!(r
        .header("content-disposition")
        .unwrap()
        .starts_with("attachment;"));
    assert_eq!(r.body, raw.to_vec());

    // Bob's mailbox does not track it: neither the page nor the bytes.
    let mut bob = pane.signed_in(BOB).await;
    for path in [format!("/activity/{id}"), format!("/activity/{id}/raw")] {
        let r = bob.get(&path).await;
        assert_eq!(r.status, 404, "{path}");
        assert!(!r.text().contains("the quote is attached"));
    }
    for junk in [
        "/activity/not-an-id",
        "/activity/0193a1b2-c3d4-7fff-8000-00000000ffff/raw",
    ] {
        assert_eq!(alice.get(junk).await.status, 404, "{junk}");
    }
}
