//! Delegates in the pane (SPEC section 8, the guide's "Use delegate access"), the
//! non-organizer banner ("Track appointments from another person"), and Untrack
//! taking `$CRM_Tracked` off the server copy. The first tests run the pane in-process
//! over the demo CRM (carol is alice's delegate; bob is nobody's); the last ones run
//! the real `crmproxy serve` with its pane in front of the private Dovecot and check
//! the keywords with a direct, unproxied IMAP client.

mod common;
mod pane_util;
mod tracking_support;

use crmproxy::pane::MessageOpened;
use crmproxy::store::{Kind, MessageId, Record, TrackStatus, UserId};
use crmproxy::track::{Engine, TrackRequest, TrackSource};
use pane_util::{Client, TestPane};
use std::time::Duration;
use tracking_support::{message, wait_keyword};
use uuid::Uuid;

const ALICE: &str = "alice@example.test";
const BOB: &str = "bob@example.test";
const CAROL: &str = "carol@example.test";
const ALICE_ID: &str = "0193a1b2-c3d4-7001-8000-000000000001";
const CAROL_ID: &str = "0193a1b2-c3d4-7003-8000-000000000003";
const CONTOSO: &str = "0193a1b2-c3d4-7005-8000-000000000005";
const DEMO_MID: &str = "demo-0001@mail.contoso.example";

fn uid(s: &str) -> UserId {
    UserId::from_uuid(Uuid::parse_str(s).unwrap())
}

fn mid(s: &str) -> MessageId {
    MessageId::parse(s).unwrap()
}

/// Switch a signed-in client to `owner`'s mailbox (empty: back to its own).
async fn switch(c: &mut Client, owner: &str) -> pane_util::Resp {
    let csrf = c.get("/mailbox").await.csrf();
    c.post_form("/mailbox", &[("csrf", &csrf), ("owner", owner)])
        .await
}

fn contacts(pane: &TestPane) -> usize {
    pane.store.records(Some(Kind::Contact)).unwrap().len()
}

#[tokio::test]
async fn a_delegate_acts_for_the_owner_with_a_banner_and_is_recorded_as_the_actor() {
    let pane = TestPane::start().await;
    let mut carol = pane.signed_in(CAROL).await;

    // Her own mailbox first: no banner; the mailbox page offers Alice's.
    let t = carol.get("/").await.text();
    assert!(!t.contains("You are acting for"), "{t}");
    let t = carol.get("/mailbox").await.text();
    assert!(t.contains("Alice") && t.contains(ALICE), "{t}");

    // Alice's mailbox: the proxy saw a message opened there (a delegate's session
    // with authzid = alice publishes for alice's mailbox).
    let mut ev = MessageOpened::fetched(DEMO_MID, "INBOX", Some(1), 1);
    ev.subject = Some("Owner's message".into());
    pane.events.publish_opened(ALICE, ev);
    let r = switch(&mut carol, ALICE).await;
    assert_eq!(r.status, 303, "{}", r.text());
    for page in ["/", "/current", "/search", "/contacts"] {
        let t = carol.get(page).await.text();
        assert!(
            t.contains("You are acting for") && t.contains("mailbox (") && t.contains(ALICE),
            "{page}: {t}"
        );
    }
    let t = carol.get("/current").await.text();
    assert!(
        t.contains("Owner&#39;s message") || t.contains("Owner's message"),
        "{t}"
    );

    // Untrack as the owner, so the delegate can track it again.
    let mut alice = pane.signed_in(ALICE).await;
    let csrf = alice.get("/current").await.csrf();
    let r = alice
        .post_form("/untrack", &[("csrf", &csrf), ("message_id", DEMO_MID)])
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert!(pane
        .store
        .tracking(uid(ALICE_ID), &mid(DEMO_MID))
        .unwrap()
        .is_none());

    // Carol tracks it regarding Contoso, for Alice.
    let csrf = carol.get("/current").await.csrf();
    let r = carol
        .post_form(
            "/regarding",
            &[
                ("csrf", &csrf),
                ("message_id", DEMO_MID),
                ("regarding", &format!("account:{CONTOSO}")),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let rec = pane
        .store
        .tracking(uid(ALICE_ID), &mid(DEMO_MID))
        .unwrap()
        .expect("tracked in the owner's mailbox");
    assert_eq!(rec.status, TrackStatus::Tracked);
    assert_eq!(
        rec.requested_by,
        uid(CAROL_ID),
        "recorded as the delegate's"
    );
    assert!(
        pane.store
            .tracking(uid(CAROL_ID), &mid(DEMO_MID))
            .unwrap()
            .is_none(),
        "not in the delegate's own mailbox"
    );

    // Both see it tracked regarding Contoso.
    for c in [&mut alice, &mut carol] {
        let t = c.get("/current").await.text();
        assert!(
            t.contains("Tracked regarding") && t.contains("Contoso Pharmaceuticals"),
            "{t}"
        );
    }
    // Drafts go to one's own mailbox only (the pane holds the delegate's password).
    let r = carol
        .post_form(
            "/compose",
            &[
                ("csrf", &csrf),
                ("to", "x@customer.example"),
                ("subject", "Hi"),
            ],
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("own mailbox only"), "{}", r.text());

    // Alice sees no banner; back in her own mailbox, Carol neither.
    assert!(!alice.get("/").await.text().contains("You are acting for"));
    let r = switch(&mut carol, "").await;
    assert_eq!(r.status, 303);
    let t = carol.get("/current").await.text();
    assert!(!t.contains("You are acting for"), "{t}");
    assert!(!t.contains("Owner&#39;s message") && !t.contains("Owner's message"));
}

#[tokio::test]
async fn a_delegate_cannot_set_regarding_to_a_new_contact() {
    let pane = TestPane::start().await;
    let mut carol = pane.signed_in(CAROL).await;
    let new_mid = "from-a-stranger@newco.example";
    let mut ev = MessageOpened::fetched(new_mid, "INBOX", Some(1), 1);
    ev.from = Some("Nina Newman <nina@newco.example>".into());
    ev.mailbox = Some("INBOX".into());
    ev.uid = Some(3);
    ev.uid_validity = Some(77);
    pane.events.publish_opened(ALICE, ev);
    assert_eq!(switch(&mut carol, ALICE).await.status, 303);
    let before = contacts(&pane);

    // "+ Add as contact": refused at the form and at the submit, nothing created.
    let r = carol
        .get("/people/new?id=from-a-stranger%40newco.example&address=nina%40newco.example&kind=contact")
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        r.text()
            .contains("delegate cannot set regarding to a contact"),
        "{}",
        r.text()
    );
    let csrf = carol.get("/current").await.csrf();
    let r = carol
        .post_form(
            "/people/new",
            &[
                ("csrf", &csrf),
                ("message_id", new_mid),
                ("address", "nina@newco.example"),
                ("kind", "contact"),
                ("first_name", "Nina"),
                ("last_name", "Newman"),
            ],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(contacts(&pane), before, "no contact was created");
    assert!(pane
        .store
        .tracking(uid(ALICE_ID), &mid(new_mid))
        .unwrap()
        .is_none());

    // Quick create a contact, then set it as regarding: refused, nothing tracked.
    let r = carol
        .post_form(
            "/create",
            &[
                ("csrf", &csrf),
                ("kind", "contact"),
                ("first_name", "Nina"),
                ("last_name", "Newman"),
                ("email", "nina@newco.example"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let created = r.header("location").unwrap();
    let contact_id = created.trim_start_matches("/record/").to_owned();
    let r = carol
        .post_form(
            "/regarding",
            &[
                ("csrf", &csrf),
                ("message_id", new_mid),
                ("regarding", &format!("contact:{contact_id}")),
            ],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        r.text().contains("delegate cannot set regarding"),
        "{}",
        r.text()
    );
    assert!(pane
        .store
        .tracking(uid(ALICE_ID), &mid(new_mid))
        .unwrap()
        .is_none());

    // An existing contact is fine for a delegate, and so is the owner's new one.
    let existing = pane
        .store
        .records(Some(Kind::Contact))
        .unwrap()
        .into_iter()
        .find(|r| r.id().to_string() != contact_id)
        .unwrap();
    let r = carol
        .post_form(
            "/regarding",
            &[
                ("csrf", &csrf),
                ("message_id", new_mid),
                ("regarding", &format!("contact:{}", existing.id())),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let rec = pane
        .store
        .tracking(uid(ALICE_ID), &mid(new_mid))
        .unwrap()
        .unwrap();
    assert_eq!(rec.status, TrackStatus::Pending);
    assert_eq!(rec.requested_by, uid(CAROL_ID));
    assert!(matches!(
        pane.store.record(existing.id()).unwrap(),
        Some(Record::Contact(_))
    ));
}

#[tokio::test]
async fn another_mailbox_without_a_grant_is_refused_and_nothing_is_shown() {
    let pane = TestPane::start().await;
    let mut ev = MessageOpened::fetched("secret-1@contoso.example", "INBOX", Some(1), 1);
    ev.subject = Some("Alice's secret plans".into());
    pane.events.publish_opened(ALICE, ev);
    let mut bob = pane.signed_in(BOB).await;
    let t = bob.get("/mailbox").await.text();
    assert!(t.contains("Nobody has made you a delegate"), "{t}");
    for owner in [ALICE, "nobody@example.test", "not an address"] {
        let r = switch(&mut bob, owner).await;
        assert_eq!(r.status, 403, "{owner}: {}", r.text());
        assert!(r.text().contains("not a delegate"), "{}", r.text());
        assert!(!r.text().contains("secret plans"));
    }
    // Still his own mailbox: no banner, none of Alice's messages.
    for page in ["/", "/current"] {
        let t = bob.get(page).await.text();
        assert!(
            !t.contains("You are acting for") && !t.contains("secret plans"),
            "{t}"
        );
    }
    // Without the CSRF token the switch is refused before anything is checked.
    let r = bob.post_form("/mailbox", &[("owner", ALICE)]).await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn a_revoked_grant_is_refused_on_the_next_request() {
    let pane = TestPane::start().await;
    let mut ev = MessageOpened::fetched("later-1@contoso.example", "INBOX", Some(1), 1);
    ev.subject = Some("After the grant ended".into());
    pane.events.publish_opened(ALICE, ev);
    let mut carol = pane.signed_in(CAROL).await;
    assert_eq!(switch(&mut carol, ALICE).await.status, 303);
    assert!(carol
        .get("/current")
        .await
        .text()
        .contains("After the grant ended"));

    // Her live stream of Alice's mailbox works while the grant holds...
    let mut live = carol.open("GET", "/events", &[], vec![]).await.into_body();
    let mut delivered = 0;
    for _ in 0..200 {
        delivered = pane.events.publish_opened(
            ALICE,
            MessageOpened::fetched("<warmup@x>", "INBOX", Some(1), 1),
        );
        if delivered == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(delivered, 1, "one live stream for alice's mailbox");
    assert!(read_until(&mut live, "warmup@x").await.contains("warmup@x"));

    pane.store
        .set_delegate(uid(ALICE_ID), uid(CAROL_ID), false)
        .unwrap();
    // ...and ends, without the next event, once it is revoked.
    pane.events.publish_opened(
        ALICE,
        MessageOpened::fetched("<after-revoke@x>", "INBOX", Some(1), 1),
    );
    let rest = tokio::time::timeout(
        Duration::from_secs(30),
        read_until(&mut live, "after-revoke@x"),
    )
    .await
    .expect("the stream ends");
    assert!(!rest.contains("after-revoke"), "{rest}");

    let r = carol.get("/current").await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        r.text().contains("not a delegate") && r.text().contains("back in your own mailbox"),
        "{}",
        r.text()
    );
    assert!(!r.text().contains("After the grant ended"));
    let r = carol.send("GET", "/api/session", &[], Vec::new()).await;
    assert_eq!(r.status, 200, "her own mailbox again: {}", r.text());
    let t = carol.get("/current").await.text();
    assert!(!t.contains("You are acting for") && !t.contains("After the grant ended"));
    // And switching again is refused.
    assert_eq!(switch(&mut carol, ALICE).await.status, 403);
}

/// Everything a live stream sends until `needle` appears or the stream ends.
async fn read_until(body: &mut hyper::body::Incoming, needle: &str) -> String {
    use http_body_util::BodyExt;
    let mut seen = String::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            seen.push_str(&String::from_utf8_lossy(&data));
            if seen.contains(needle) {
                break;
            }
        }
    }
    seen
}

/// A meeting request organised by `organizer`, with `attendee` invited.
fn invitation(id: &str, organizer: &str, attendee: &str) -> Vec<u8> {
    format!(
        "Message-ID: <{id}>\r\n\
         Date: Tue, 24 Nov 2026 09:15:00 +0000\r\n\
         From: <{organizer}>\r\n\
         To: {attendee}\r\n\
         Subject: Invitation: Pricing review\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/calendar; charset=utf-8; method=REQUEST\r\n\
         \r\n\
         BEGIN:VCALENDAR\r\n\
         PRODID:-//crmproxy tests//EN\r\n\
         VERSION:2.0\r\n\
         METHOD:REQUEST\r\n\
         BEGIN:VEVENT\r\n\
         UID:{id}\r\n\
         DTSTAMP:20261124T091500Z\r\n\
         DTSTART:20261202T100000Z\r\n\
         DTEND:20261202T110000Z\r\n\
         SUMMARY:Pricing review\r\n\
         ORGANIZER;CN=Organizer:mailto:{organizer}\r\n\
         ATTENDEE;ROLE=REQ-PARTICIPANT:mailto:{attendee}\r\n\
         END:VEVENT\r\n\
         END:VCALENDAR\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn a_non_organizer_sees_the_banner_and_track_is_refused() {
    let pane = TestPane::start().await;
    // Bob organised the meeting and tracked it: the CRM holds the invitation.
    let engine = Engine::new(pane.store.clone(), Default::default()).unwrap();
    let id = "pricing-review@example.test";
    let bob = engine.actor(BOB, BOB).unwrap();
    engine
        .track(
            &bob,
            &invitation(id, BOB, ALICE),
            TrackRequest::new(TrackSource::Cli),
        )
        .unwrap();

    let mut alice = pane.signed_in(ALICE).await;
    pane.events
        .publish_opened(ALICE, MessageOpened::fetched(id, "INBOX", Some(1), 1));
    let page = alice.get("/current").await;
    let t = page.text();
    assert!(
        t.contains("banner refusal") && t.contains("Only the organizer (bob@example.test)"),
        "{t}"
    );
    assert!(!t.contains(">Track<"), "Track is not offered: {t}");
    let csrf = page.csrf();
    let r = alice
        .post_form("/track", &[("csrf", &csrf), ("message_id", id)])
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("Only the organizer"), "{}", r.text());
    let r = alice
        .post_form(
            "/regarding",
            &[
                ("csrf", &csrf),
                ("message_id", id),
                ("regarding", &format!("account:{CONTOSO}")),
            ],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(pane
        .store
        .tracking(uid(ALICE_ID), &mid(id))
        .unwrap()
        .is_none());

    // The organizer sees no banner.
    let mut bob_pane = pane.signed_in(BOB).await;
    pane.events
        .publish_opened(BOB, MessageOpened::fetched(id, "INBOX", Some(1), 1));
    assert!(!bob_pane
        .get("/current")
        .await
        .text()
        .contains("banner refusal"));

    // Once the organisation allows it, the banner goes and Track works.
    let mut settings = pane.store.settings().unwrap();
    settings.track_appointments_from_non_organizer = true;
    pane.store.put_settings(settings).unwrap();
    let t = alice.get("/current").await.text();
    assert!(
        !t.contains("banner refusal") && t.contains(">Track<"),
        "{t}"
    );
    let r = alice
        .post_form("/track", &[("csrf", &csrf), ("message_id", id)])
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert!(pane
        .store
        .tracking(uid(ALICE_ID), &mid(id))
        .unwrap()
        .is_some());
}

// --- Untrack against the real server, through `crmproxy serve` -------------------

mod served {
    use super::*;
    use common::{dovecot, Proxy, ProxyOptions};
    use tracking_support::{add_user, fetch};

    /// A serve with its pane, the demo CRM off, in `data` (a fresh dir when `None`).
    pub fn serve(data: Option<&std::path::Path>) -> Proxy {
        Proxy::start_with(
            dovecot(),
            ProxyOptions {
                config_toml: Some("[tracking]\nload_demo_on_first_run = false\n".into()),
                data_dir: data.map(|d| d.to_owned()),
                pane: true,
                ..Default::default()
            },
        )
    }

    pub fn pane_client(p: &Proxy) -> Client {
        let addr = p.pane.expect("the pane listens");
        Client::new(addr, &p.ca_file(), format!("localhost:{}", addr.port()))
    }

    pub async fn sign_in(p: &Proxy, user: &str) -> Client {
        let mut c = pane_client(p);
        let token = crmproxy::pane::link::issue(&p.data_dir, user).unwrap();
        let r = c.get(&format!("/signin/link?token={token}")).await;
        assert_eq!(r.status, 303, "{}", r.text());
        c
    }

    /// A mailbox user in the CRM with use_app, one message in INBOX tracked through
    /// the proxy (keyword request), `$CRM_Tracked` seen directly. Returns the login.
    pub fn tracked_message(p: &Proxy, prefix: &str, id: &str) -> String {
        let dv = dovecot();
        let login = format!("{}@crm-test.example", common::unique_user(prefix));
        add_user(&p.data_dir, &login, true);
        dv.fill_inbox(&login, std::iter::once(message(id, "Keyword test", "")));
        let mut through = common::RawImap::login(p.imap, &login, common::PASSWORD);
        assert!(through.cmd("SELECT INBOX").ok());
        // Opened in the mail client: the pane's current message, with its place.
        let (_, body) = fetch(&mut through, 1, "BODY[]");
        assert!(!body.is_empty());
        let r = through.cmd("UID STORE 1 +FLAGS ($CRM_Track)");
        assert!(r.ok(), "{}", r.tagged);
        let mut direct = common::RawImap::login(dv.imap_addr(), &login, common::PASSWORD);
        wait_keyword(&mut direct, "INBOX", 1, "$CRM_Tracked", true);
        wait_keyword(&mut direct, "INBOX", 1, "$CRM_Track", false);
        through.cmd("LOGOUT");
        login
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn untrack_in_the_pane_removes_the_keyword_on_the_server() {
    let p = served::serve(None);
    let id = "untrack-upstream@customer.example";
    let login = tokio::task::block_in_place(|| served::tracked_message(&p, "untrack", id));
    let mut c = served::sign_in(&p, &login).await;
    let page = c.get("/current").await;
    assert!(page.text().contains(id), "{}", page.text());
    let r = c
        .post_form("/untrack", &[("csrf", &page.csrf()), ("message_id", id)])
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let t = c.get(&r.header("location").unwrap()).await.text();
    assert!(
        t.contains("being removed from the message on the mail server"),
        "{t}"
    );
    tokio::task::block_in_place(|| {
        let mut direct =
            common::RawImap::login(common::dovecot().imap_addr(), &login, common::PASSWORD);
        wait_keyword(&mut direct, "INBOX", 1, "$CRM_Tracked", false);
        let f = tracking_support::flags(&mut direct, "INBOX", 1);
        assert!(
            !f.contains("$CRM_Pending") && !f.contains("$CRM_Track"),
            "{f}"
        );
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_running_worker_untrack_says_so_and_the_worker_finishes_it_later() {
    let data = tempfile::tempdir().unwrap();
    let id = "untrack-later@customer.example";
    // Tracked in a first run of serve.
    let login = {
        let mut p = served::serve(Some(data.path()));
        let login = tokio::task::block_in_place(|| served::tracked_message(&p, "later", id));
        p.terminate(Duration::from_secs(10)).expect("serve stops");
        login
    };
    // A new serve: no mail client has logged in through it, so no worker runs.
    let p = served::serve(Some(data.path()));
    let mut c = served::sign_in(&p, &login).await;
    let csrf = c.get("/api/session").await.json()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let origin = c.origin();
    let r = c
        .send(
            "POST",
            "/api/untrack",
            &[
                ("content-type", "application/json"),
                ("x-csrf-token", &csrf),
                ("origin", &origin),
            ],
            serde_json::to_vec(&serde_json::json!({ "message_id": id })).unwrap(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(j["tracking"]["status"], "not_tracked");
    assert_eq!(j["server_keywords"], "pending_worker", "{j}");
    assert!(
        j["message"]
            .as_str()
            .unwrap()
            .contains("No sync worker runs"),
        "{j}"
    );
    tokio::task::block_in_place(|| {
        let dv = common::dovecot();
        let mut direct = common::RawImap::login(dv.imap_addr(), &login, common::PASSWORD);
        assert!(
            tracking_support::flags(&mut direct, "INBOX", 1).contains("$CRM_Tracked"),
            "still on the server copy while no worker runs"
        );
        // A request keyword left on it (a phone asked again) goes with the untrack,
        // else the worker's first sweep would track the message again.
        assert!(direct.cmd("SELECT INBOX").ok());
        assert!(direct.cmd("UID STORE 1 +FLAGS ($CRM_Track)").ok());
        // The mail client logs in through the proxy: the worker starts and finishes it.
        let mut through = common::RawImap::login(p.imap, &login, common::PASSWORD);
        assert!(through.cmd("NOOP").ok());
        wait_keyword(&mut direct, "INBOX", 1, "$CRM_Tracked", false);
        let until = std::time::Instant::now() + Duration::from_secs(2);
        while std::time::Instant::now() < until {
            let f = tracking_support::flags(&mut direct, "INBOX", 1);
            assert!(!f.contains("$CRM_"), "untracked stays untracked: {f}");
            std::thread::sleep(Duration::from_millis(200));
        }
        through.cmd("LOGOUT");
    });
}
