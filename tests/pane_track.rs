//! The tracking panel's actions over real HTTPS on a real store with the demo CRM:
//! Track, Set Regarding (search with a type filter), Change Regarding, Untrack, add
//! a person or an activity, as forms and as JSON. Who may act on which message is
//! in pane_track_access.rs.

mod pane_util;

use crmproxy::pane::MessageOpened;
use crmproxy::store::{Kind, TrackStatus};
use pane_util::demo::*;
use pane_util::TestPane;
use uuid::Uuid;

#[tokio::test]
async fn change_regarding_untrack_and_track_again_through_forms() {
    let pane = TestPane::start().await;
    let mut alice = pane.signed_in(ALICE).await;
    pane.events.publish_opened(
        ALICE,
        MessageOpened::fetched(&format!("<{DEMO_MID}>"), "INBOX", Some(1), 1),
    );

    // The panel offers the guide's buttons for a tracked message.
    let page = alice.get("/current").await;
    let t = page.text();
    assert!(
        t.contains("Change Regarding") && t.contains(">Untrack<"),
        "{t}"
    );
    assert!(t.contains("View email in CRM"), "{t}");
    let csrf = page.csrf();

    // Set Regarding: search accounts only, then pick Contoso.
    let t = alice
        .get("/regarding?id=demo-0001%40mail.contoso.example&q=contoso&type=account")
        .await
        .text();
    let pick = format!("account:{CONTOSO}");
    assert!(t.contains(&pick), "{t}");
    assert!(
        !t.contains("value=\"contact:"),
        "the type filter holds: {t}"
    );
    let r = alice
        .post_form(
            "/regarding",
            &[
                ("csrf", &csrf),
                ("message_id", DEMO_MID),
                ("regarding", &pick),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let rec = pane
        .store
        .tracking(uid(ALICE_ID), &mid(DEMO_MID))
        .unwrap()
        .unwrap();
    assert_eq!(
        rec.regarding.map(|g| (g.kind, g.id.to_string())),
        Some((Kind::Account, CONTOSO.into()))
    );
    let act = pane.store.activity(rec.activity.unwrap()).unwrap().unwrap();
    assert_eq!(
        act.regarding.map(|g| g.id.to_string()),
        Some(CONTOSO.into())
    );
    let t = alice.get(&r.header("location").unwrap()).await.text();
    assert!(
        t.contains("Regarding set.") && t.contains("Contoso Pharmaceuticals"),
        "{t}"
    );

    // Untrack: the tracking record goes, the activity stays.
    let r = alice
        .post_form("/untrack", &[("csrf", &csrf), ("message_id", DEMO_MID)])
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert!(pane
        .store
        .tracking(uid(ALICE_ID), &mid(DEMO_MID))
        .unwrap()
        .is_none());
    assert!(pane.store.activity(act.id).unwrap().is_some());
    let t = alice.get("/current").await.text();
    assert!(t.contains("Not tracked") && t.contains(">Track<"), "{t}");

    // Untrack again: refused clearly.
    let r = alice
        .post_form("/untrack", &[("csrf", &csrf), ("message_id", DEMO_MID)])
        .await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(
        r.text().contains("not tracked in this mailbox"),
        "{}",
        r.text()
    );

    // Track: the CRM has the email already, so it is tracked at once.
    let r = alice
        .post_form("/track", &[("csrf", &csrf), ("message_id", DEMO_MID)])
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let rec = pane
        .store
        .tracking(uid(ALICE_ID), &mid(DEMO_MID))
        .unwrap()
        .unwrap();
    assert_eq!(rec.status, TrackStatus::Tracked);
    assert_eq!(rec.activity, Some(act.id));
}

#[tokio::test]
async fn a_message_the_crm_has_not_seen_becomes_a_pending_request_with_its_place() {
    let pane = TestPane::start().await;
    let mut bob = pane.signed_in(BOB).await;
    let mut ev = MessageOpened::fetched("new-1@fabrikam.example", "INBOX", Some(1), 1);
    ev.mailbox = Some("INBOX".into());
    ev.uid = Some(7);
    ev.uid_validity = Some(1234);
    pane.events.publish_opened(BOB, ev);
    let csrf = bob.get("/current").await.csrf();
    let r = bob
        .post_form(
            "/regarding",
            &[
                ("csrf", &csrf),
                ("message_id", "<new-1@fabrikam.example>"),
                ("regarding", &format!("account:{CONTOSO}")),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let rec = pane
        .store
        .tracking(uid(BOB_ID), &mid("new-1@fabrikam.example"))
        .unwrap()
        .unwrap();
    assert_eq!(rec.status, TrackStatus::Pending);
    assert_eq!(rec.via.as_deref(), Some("pane"));
    let loc = rec.location.clone().unwrap();
    assert_eq!(
        (loc.folder.as_str(), loc.uid_validity, loc.uid),
        ("INBOX", 1234, 7)
    );
    assert_eq!(
        rec.regarding.map(|g| g.id.to_string()),
        Some(CONTOSO.into())
    );
    let t = bob.get("/current").await.text();
    assert!(
        t.contains("Track pending") && t.contains(">Untrack<"),
        "{t}"
    );

    // A failed request shows its reason and offers Track again.
    pane.store
        .put_tracking(crmproxy::store::TrackingRecord {
            status: TrackStatus::Failed {
                reason: "the message is no longer in its folder".into(),
            },
            ..rec
        })
        .unwrap();
    let t = bob.get("/current").await.text();
    assert!(
        t.contains("Tracking failed") && t.contains("no longer in its folder"),
        "{t}"
    );
    assert!(t.contains(">Track<"), "{t}");
}

#[tokio::test]
async fn the_json_api_tracks_sets_regarding_and_untracks() {
    let pane = TestPane::start().await;
    let mut alice = pane.signed_in(ALICE).await;
    let csrf = alice.get("/api/session").await.json()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let origin = alice.origin();
    let headers = [
        ("content-type", "application/json"),
        ("x-csrf-token", csrf.as_str()),
        ("origin", origin.as_str()),
    ];
    let post =
        |path: &'static str, body: serde_json::Value| (path, serde_json::to_vec(&body).unwrap());
    pane.events
        .publish_opened(ALICE, MessageOpened::fetched(DEMO_MID, "INBOX", Some(1), 1));

    let (p, b) = post(
        "/api/regarding",
        serde_json::json!({ "message_id": DEMO_MID, "regarding": format!("account:{CONTOSO}") }),
    );
    let r = alice.send("POST", p, &headers, b).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(j["tracking"]["status"], "tracked");
    assert_eq!(j["tracking"]["regarding"], format!("account:{CONTOSO}"));

    // Clearing the regarding.
    let (p, b) = post(
        "/api/regarding",
        serde_json::json!({ "message_id": DEMO_MID, "regarding": "" }),
    );
    let r = alice.send("POST", p, &headers, b).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["tracking"]["regarding"].is_null());

    // A record type that cannot be regarding, an unknown record, junk: refused, unchanged.
    for (bad, status) in [
        (format!("email_template:{CONTOSO}"), 400),
        (
            "account:0193a1b2-c3d4-7fff-8000-00000000ffff".to_owned(),
            404,
        ),
        ("account:not-a-uuid".to_owned(), 400),
        ("x".repeat(5000), 400),
    ] {
        let (p, b) = post(
            "/api/regarding",
            serde_json::json!({ "message_id": DEMO_MID, "regarding": bad }),
        );
        let r = alice.send("POST", p, &headers, b).await;
        assert_eq!(r.status, status, "{bad:.40}: {}", r.text());
        assert!(r.json()["error"].as_str().unwrap().len() < 400);
    }
    let rec = pane
        .store
        .tracking(uid(ALICE_ID), &mid(DEMO_MID))
        .unwrap()
        .unwrap();
    assert!(rec.regarding.is_none(), "nothing changed by refused calls");

    let (p, b) = post(
        "/api/untrack",
        serde_json::json!({ "message_id": DEMO_MID }),
    );
    let r = alice.send("POST", p, &headers, b).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["tracking"]["status"], "not_tracked");
    let (p, b) = post("/api/track", serde_json::json!({ "message_id": DEMO_MID }));
    let r = alice.send("POST", p, &headers, b).await;
    assert_eq!(r.json()["tracking"]["status"], "tracked", "{}", r.text());

    // Without the CSRF header: refused.
    let r = alice
        .send(
            "POST",
            "/api/untrack",
            &[
                ("content-type", "application/json"),
                ("origin", origin.as_str()),
            ],
            serde_json::to_vec(&serde_json::json!({ "message_id": DEMO_MID })).unwrap(),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(pane
        .store
        .tracking(uid(ALICE_ID), &mid(DEMO_MID))
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn add_an_unknown_sender_as_contact_or_lead_and_track_regarding_it() {
    use crmproxy::store::{EmailAddress, Record};
    let pane = TestPane::start().await;
    let mut bob = pane.signed_in(BOB).await;
    let mut ev = MessageOpened::fetched("intro-1@newco.example", "INBOX", Some(1), 1);
    ev.from = Some("Jane <b>Doe</b> <jane.doe@newco.example>".into());
    pane.events.publish_opened(BOB, ev);
    let page = bob.get("/current").await;
    let t = page.text();
    assert!(
        t.contains("+ Add as contact") && t.contains("+ Add as lead"),
        "{t}"
    );
    assert!(!t.contains("<b>Doe</b>"), "the name is escaped: {t}");
    let csrf = page.csrf();
    let form = bob
        .get("/people/new?id=intro-1%40newco.example&address=jane.doe%40newco.example&kind=contact")
        .await;
    assert_eq!(form.status, 200, "{}", form.text());
    assert!(form.text().contains("value=\"jane.doe@newco.example\""));

    // Over-long and multi-line names, an address not on the message, junk kind: refused.
    let long = "x".repeat(300);
    for (fields, status) in [
        (
            vec![
                ("last_name", long.as_str()),
                ("address", "jane.doe@newco.example"),
            ],
            400,
        ),
        (
            vec![("last_name", "a\nb"), ("address", "jane.doe@newco.example")],
            400,
        ),
        (
            vec![("last_name", "Doe"), ("address", "other@newco.example")],
            400,
        ),
        (
            vec![
                ("last_name", "Doe"),
                ("address", "jane.doe@newco.example"),
                ("kind", "account"),
            ],
            400,
        ),
        (
            vec![("last_name", ""), ("address", "jane.doe@newco.example")],
            400,
        ),
    ] {
        let mut all = vec![
            ("csrf", csrf.as_str()),
            ("message_id", "intro-1@newco.example"),
        ];
        all.extend(fields);
        let r = bob.post_form("/people/new", &all).await;
        assert_eq!(r.status, status, "{all:?}: {}", r.text());
    }
    let jane = EmailAddress::parse("jane.doe@newco.example").unwrap();
    assert!(
        pane.store.resolve_address(&jane).unwrap().is_empty(),
        "nothing created"
    );

    // A message Bob never opened: refused before anything is created.
    let r = bob
        .post_form(
            "/people/new",
            &[
                ("csrf", &csrf),
                ("message_id", DEMO_MID),
                ("address", "jane.doe@newco.example"),
                ("last_name", "Doe"),
            ],
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text());

    let r = bob
        .post_form(
            "/people/new",
            &[
                ("csrf", &csrf),
                ("message_id", "intro-1@newco.example"),
                ("address", "jane.doe@newco.example"),
                ("kind", "contact"),
                ("first_name", "Jane <script>x</script>"),
                ("last_name", "Doe"),
                ("company", "NewCo"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let refs = pane.store.resolve_address(&jane).unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].kind, Kind::Contact);
    let Some(Record::Contact(c)) = pane.store.record(refs[0].id).unwrap() else {
        panic!("a contact")
    };
    assert_eq!(c.last_name, "Doe");
    let rec = pane
        .store
        .tracking(uid(BOB_ID), &mid("intro-1@newco.example"))
        .unwrap()
        .unwrap();
    assert_eq!(rec.regarding, Some(refs[0]));
    let t = bob.get(&r.header("location").unwrap()).await.text();
    assert!(t.contains("Contact created"), "{t}");
    assert!(!t.contains("<script>x"), "{t}");

    // Known now: no "+" for Jane; adding again is refused.
    let r = bob
        .post_form(
            "/people/new",
            &[
                ("csrf", &csrf),
                ("message_id", "intro-1@newco.example"),
                ("address", "jane.doe@newco.example"),
                ("last_name", "Doe"),
            ],
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text());

    // The JSON twin creates a lead.
    let mut ev = MessageOpened::fetched("intro-2@newco.example", "INBOX", Some(1), 1);
    ev.from = Some("Max Lead <max@newco.example>".into());
    pane.events.publish_opened(BOB, ev);
    let api_csrf = bob.get("/api/session").await.json()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let origin = bob.origin();
    let body = serde_json::json!({
        "message_id": "intro-2@newco.example", "address": "max@newco.example",
        "kind": "lead", "first_name": "Max", "last_name": "Lead", "topic": "Seats"
    });
    let r = bob
        .send(
            "POST",
            "/api/people",
            &[
                ("content-type", "application/json"),
                ("x-csrf-token", &api_csrf),
                ("origin", &origin),
            ],
            serde_json::to_vec(&body).unwrap(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["tracking"]["regarding"]
        .as_str()
        .unwrap()
        .starts_with("lead:"));
}

#[tokio::test]
async fn add_activity_regarding_the_linked_record_and_quick_create() {
    use crmproxy::store::{ActivityDetails, Record};
    const OPPORTUNITY: &str = "0193a1b2-c3d4-7010-8000-000000000010";
    let pane = TestPane::start().await;
    let mut alice = pane.signed_in(ALICE).await;
    pane.events
        .publish_opened(ALICE, MessageOpened::fetched(DEMO_MID, "INBOX", Some(1), 1));
    let t = alice.get("/current").await.text();
    let add = format!("/activities/new?regarding=opportunity:{OPPORTUNITY}");
    assert!(t.contains(&add) && t.contains("Add activity"), "{t}");
    let page = alice.get(&add).await;
    assert_eq!(page.status, 200, "{}", page.text());
    let csrf = page.csrf();
    let regarding = format!("opportunity:{OPPORTUNITY}");
    let r = alice
        .post_form(
            "/activities/new",
            &[
                ("csrf", &csrf),
                ("regarding", &regarding),
                ("kind", "phone_call"),
                ("subject", "Call <b>Nancy</b> back"),
                ("when", "2026-11-25T09:30"),
                ("phone_number", "+1 555 0100"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let acts = pane
        .store
        .activities_of(Uuid::parse_str(OPPORTUNITY).unwrap(), 50)
        .unwrap();
    let call = acts
        .iter()
        .find(|a| a.subject == "Call <b>Nancy</b> back")
        .expect("the call");
    assert!(matches!(call.details, ActivityDetails::PhoneCall(_)));
    assert_eq!(call.owner, uid(ALICE_ID));
    let t = alice.get(&r.header("location").unwrap()).await.text();
    assert!(
        t.contains("Call &lt;b&gt;Nancy&lt;/b&gt; back"),
        "escaped on the record: {t}"
    );

    // Refused: no subject, unknown kind, bad time, over-long subject, a deleted record.
    let long = "s".repeat(500);
    let missing = "opportunity:0193a1b2-c3d4-7fff-8000-00000000ffff".to_string();
    for (fields, status) in [
        (
            vec![
                ("regarding", regarding.as_str()),
                ("kind", "task"),
                ("subject", ""),
            ],
            400,
        ),
        (
            vec![
                ("regarding", regarding.as_str()),
                ("kind", "fax"),
                ("subject", "x"),
            ],
            400,
        ),
        (
            vec![
                ("regarding", regarding.as_str()),
                ("kind", "appointment"),
                ("subject", "x"),
                ("when", "tomorrow"),
            ],
            400,
        ),
        (
            vec![
                ("regarding", regarding.as_str()),
                ("kind", "task"),
                ("subject", long.as_str()),
            ],
            400,
        ),
        (
            vec![
                ("regarding", missing.as_str()),
                ("kind", "task"),
                ("subject", "x"),
            ],
            404,
        ),
    ] {
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend(fields);
        let r = alice.post_form("/activities/new", &all).await;
        assert_eq!(r.status, status, "{all:?}: {}", r.text());
    }
    let after = pane
        .store
        .activities_of(Uuid::parse_str(OPPORTUNITY).unwrap(), 50)
        .unwrap();
    assert_eq!(after.len(), acts.len(), "nothing added by refused posts");

    // Quick create: an account, then a case for it.
    let r = alice
        .post_form(
            "/create",
            &[
                ("csrf", &csrf),
                ("kind", "account"),
                ("name", "Northwind <Traders>"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let loc = r.header("location").unwrap();
    let id = Uuid::parse_str(loc.trim_start_matches("/record/")).unwrap();
    let Some(Record::Account(a)) = pane.store.record(id).unwrap() else {
        panic!("an account")
    };
    assert_eq!(a.name, "Northwind <Traders>");
    let t = alice.get(&loc).await.text();
    assert!(t.contains("Northwind &lt;Traders&gt;"), "{t}");
    let link = format!("account:{id}");
    let r = alice
        .post_form(
            "/create",
            &[
                ("csrf", &csrf),
                ("kind", "case"),
                ("name", "Broken login"),
                ("link", &link),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    // A case without a customer, an unknown kind: refused.
    for fields in [
        vec![("kind", "case"), ("name", "No customer")],
        vec![("kind", "invoice"), ("name", "x")],
        vec![
            ("kind", "contact"),
            ("last_name", "X"),
            ("email", "not an address"),
        ],
    ] {
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend(fields);
        assert_eq!(
            alice.post_form("/create", &all).await.status,
            400,
            "{all:?}"
        );
    }
    // The JSON twins.
    let api_csrf = alice.get("/api/session").await.json()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let origin = alice.origin();
    let h = [
        ("content-type", "application/json"),
        ("x-csrf-token", api_csrf.as_str()),
        ("origin", origin.as_str()),
    ];
    let r = alice
        .send(
            "POST",
            "/api/records",
            &h,
            serde_json::to_vec(
                &serde_json::json!({"kind": "lead", "last_name": "Lee", "topic": "Seats"}),
            )
            .unwrap(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["record"].as_str().unwrap().starts_with("lead:"));
    let r = alice
        .send("POST", "/api/activities", &h, serde_json::to_vec(&serde_json::json!({"kind": "task", "regarding": regarding, "subject": "Send the quote"})).unwrap())
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["kind"], "task");
}

#[tokio::test]
async fn a_pending_request_without_a_known_place_says_how_to_complete_it() {
    let pane = TestPane::start().await;
    let mut bob = pane.signed_in(BOB).await;
    // Selected in Outlook (the add-in): no folder or UID known.
    pane.events
        .publish_opened(BOB, MessageOpened::new("outlook-only@fabrikam.example"));
    let csrf = bob.get("/current").await.csrf();
    let r = bob
        .post_form(
            "/track",
            &[
                ("csrf", &csrf),
                ("message_id", "outlook-only@fabrikam.example"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let t = bob.get(&r.header("location").unwrap()).await.text();
    assert!(t.contains("open it in your mail client"), "{t}");
    let rec = pane
        .store
        .tracking(uid(BOB_ID), &mid("outlook-only@fabrikam.example"))
        .unwrap()
        .unwrap();
    assert_eq!((rec.status, rec.location), (TrackStatus::Pending, None));
}
