//! The pane's read-only CRM pages over real HTTPS, on a real store holding the demo CRM:
//! the `use_app` privilege at sign-in and on every request, the home dashboard, search
//! with the type filter, a record with its links and activities, contacts, documents.

mod pane_util;

use crmproxy::store::{Kind, Privilege, Record, UserId};
use pane_util::TestPane;
use uuid::Uuid;

const CONTOSO: &str = "0193a1b2-c3d4-7005-8000-000000000005";
const NANCY: &str = "0193a1b2-c3d4-7008-8000-000000000008";
const ALICE_ID: &str = "0193a1b2-c3d4-7001-8000-000000000001";

#[tokio::test]
async fn only_crm_users_with_use_app_get_in() {
    let pane = TestPane::start().await;
    for (user, expect) in [
        (
            "dave@example.test",
            "does not have the &quot;Use the app&quot; privilege",
        ),
        ("stranger@example.test", "is not a CRM user"),
    ] {
        let token = crmproxy::pane::link::issue(&pane.cfg.data_dir, user).unwrap();
        let mut c = pane.client();
        let r = c.get(&format!("/signin/link?token={token}")).await;
        assert_eq!(r.status, 403, "{user}");
        assert!(r.text().contains(expect), "{user}: {}", r.text());
        assert!(c.session.is_none(), "no session for {user}");
    }

    // Revoking the privilege takes effect on the next request, pages and API alike.
    let mut c = pane.signed_in("bob@example.test").await;
    assert_eq!(c.get("/").await.status, 200);
    let bob = UserId::from_uuid(Uuid::parse_str("0193a1b2-c3d4-7002-8000-000000000002").unwrap());
    pane.store
        .set_privilege(bob, Privilege::UseApp, false)
        .unwrap();
    let r = c.get("/").await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("Use the app"));
    let r = c.get("/api/session").await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["status"], 403);
    pane.store
        .set_privilege(bob, Privilege::UseApp, true)
        .unwrap();
    assert_eq!(c.get("/").await.status, 200);
}

#[tokio::test]
async fn home_shows_counts_and_recent_records() {
    let pane = TestPane::start().await;
    let mut c = pane.signed_in("alice@example.test").await;
    let t = c.get("/").await.text();
    let contacts = pane.store.records(Some(Kind::Contact)).unwrap().len();
    assert!(contacts > 0);
    assert!(
        t.contains(&format!("<span class=\"n\">{contacts}</span> Contacts")),
        "{t}"
    );
    assert!(t.contains("href=\"/search?type=opportunity\""));
    assert!(t.contains("Recent records"));
    // The most recently changed record is listed first among the recent ones.
    let mut all: Vec<Record> = pane.store.records(None).unwrap();
    all.retain(|r| r.kind().can_be_regarding());
    all.sort_by_key(|r| std::cmp::Reverse(r.stamps().modified));
    assert!(t.contains(&format!("/record/{}", all[0].id())));
}

#[tokio::test]
async fn search_filters_by_type() {
    let pane = TestPane::start().await;
    let mut c = pane.signed_in("alice@example.test").await;
    let all = c.get("/search?q=contoso").await;
    assert_eq!(all.status, 200);
    let t = all.text();
    assert!(
        t.contains(&format!("/record/{CONTOSO}")),
        "the account: {t}"
    );
    assert!(
        t.contains("Contoso — 150 analytics seats"),
        "the opportunity"
    );

    let only = c.get("/search?q=contoso&type=opportunity").await.text();
    assert!(only.contains("Contoso — 150 analytics seats"));
    assert!(
        !only.contains(&format!("/record/{CONTOSO}")),
        "accounts filtered out"
    );
    assert!(
        only.contains("<option value=\"opportunity\" selected>"),
        "the filter stays chosen"
    );

    // Accents and case do not matter.
    let t = c.get("/search?q=zoe%20MULLER").await.text();
    assert!(t.contains("Zoë Müller"), "{t}");
    let t = c.get("/search?q=nothing-like-this").await.text();
    assert!(t.contains("No record matches"));
    let t = c.get("/search?type=invoice").await.text();
    assert!(t.contains("INV-2026-0042") && t.contains("INV-2026-0043"));
    assert!(!t.contains("Contoso Pharmaceuticals"));

    let r = c.get("/search?q=x&type=spaceship").await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("Unknown record type"));
    let r = c.get("/search?q=x&type=user").await;
    assert_eq!(r.status, 400, "users are not in the search list");
}

#[tokio::test]
async fn a_record_shows_its_fields_links_and_activities() {
    let pane = TestPane::start().await;
    let mut c = pane.signed_in("alice@example.test").await;
    let r = c.get(&format!("/record/{NANCY}")).await;
    assert_eq!(r.status, 200);
    let t = r.text();
    // The page reloads when the record changes (data-live-record, pane.js).
    assert!(
        t.contains(&format!(
            "<h1 data-live-record=\"{NANCY}\">Nancy Davolio</h1>"
        )),
        "{t}"
    );
    assert!(t.contains("nancy.davolio@contoso.example"));
    // Her account is a link.
    if let Some(Record::Contact(n)) = pane.store.record(Uuid::parse_str(NANCY).unwrap()).unwrap() {
        if let Some(acc) = n.account {
            assert!(t.contains(&format!("/record/{}", acc.uuid())));
        }
    }
    let acts = pane
        .store
        .activities_of(Uuid::parse_str(NANCY).unwrap(), 20)
        .unwrap();
    if acts.is_empty() {
        assert!(t.contains("No activity yet"));
    } else {
        assert!(t.contains(&acts[0].subject.replace('&', "&amp;")), "{t}");
    }
    let user = c.get(&format!("/record/{ALICE_ID}")).await;
    assert_eq!(user.status, 200);
    assert!(user.text().contains("Alice Example"));

    let r = c.get(&format!("/record/{}", Uuid::now_v7())).await;
    assert_eq!(r.status, 404);
    assert!(r.text().contains("no record with this id"));
    let r = c.get("/record/not-a-uuid").await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn contacts_and_documents_list_the_store() {
    let pane = TestPane::start().await;
    let mut c = pane.signed_in("carol@example.test").await;
    let t = c.get("/contacts").await.text();
    for name in [
        "Nancy Davolio",
        "Janet Leverling",
        "José Álvarez",
        "Søren Jørgensen",
    ] {
        assert!(t.contains(name), "{name}");
    }
    assert!(!t.contains("Kenji Watanabe"), "leads are not contacts");
    let t = c.get("/contacts?q=fabrikam").await.text();
    assert!(
        t.contains("Zoë Müller") && !t.contains("Nancy Davolio"),
        "{t}"
    );

    let t = c.get("/documents").await.text();
    for title in [
        "Follow-up after a meeting",
        "Contoso Cloud Analytics brochure",
        "How to export a dashboard as PDF",
    ] {
        assert!(t.contains(title), "{title}");
    }
}

#[tokio::test]
async fn the_message_pages_show_track_status_and_people() {
    use crmproxy::pane::MessageOpened;
    use crmproxy::store::{MessageId, TrackingRecord};
    let pane = TestPane::start().await;

    // Alice tracked demo-0001 regarding the Contoso opportunity.
    let mut alice = pane.signed_in("alice@example.test").await;
    let mut ev = MessageOpened::fetched("<demo-0001@mail.contoso.example>", "INBOX", Some(1), 1);
    ev.from = Some("Nancy Davolio <nancy.davolio@contoso.example>".into());
    pane.events.publish_opened("alice@example.test", ev);
    let t = alice.get("/current").await.text();
    assert!(t.contains("Tracked regarding"), "{t}");
    assert!(t.contains("/record/0193a1b2-c3d4-7010-8000-000000000010"));
    assert!(
        t.contains(&format!("/record/{NANCY}")),
        "the sender is a contact"
    );
    assert!(t.contains("CRM user"), "alice, a recipient, is a CRM user");

    // Bob names the same message by hand: nothing shows it is in his mailbox, so the
    // CRM's activity (its people, its regarding) stays hidden.
    let mut bob = pane.signed_in("bob@example.test").await;
    let t = bob
        .get("/message?id=demo-0001%40mail.contoso.example")
        .await
        .text();
    assert!(
        t.contains("Not tracked") && !t.contains("Tracked regarding"),
        "{t}"
    );
    assert!(
        !t.contains("Nancy Davolio") && !t.contains("Contoso"),
        "{t}"
    );
    // Once the proxy saw it in Bob's mailbox, its people are known there too: from
    // the header of his copy (the CRM's activity is Alice's, and a Message-ID in a
    // mailbox proves nothing about the content).
    let mut seen = MessageOpened::fetched("demo-0001@mail.contoso.example", "INBOX", Some(7), 3);
    seen.from = Some("Nancy Davolio <nancy.davolio@contoso.example>".into());
    pane.events.publish_opened("bob@example.test", seen);
    let t = bob
        .get("/message?id=demo-0001%40mail.contoso.example")
        .await
        .text();
    assert!(
        t.contains("Not tracked") && t.contains("Nancy Davolio"),
        "{t}"
    );

    // A pending request in Bob's mailbox.
    let bob_id =
        UserId::from_uuid(Uuid::parse_str("0193a1b2-c3d4-7002-8000-000000000002").unwrap());
    let mid = MessageId::parse("pending-1@fabrikam.example").unwrap();
    pane.store
        .put_tracking(TrackingRecord::pending(bob_id, mid, bob_id))
        .unwrap();
    let mut ev = MessageOpened::fetched("pending-1@fabrikam.example", "INBOX", Some(1), 1);
    ev.from = Some("Zoë Müller <zoe.mueller@fabrikam.example>".into());
    pane.events.publish_opened("bob@example.test", ev);
    let t = bob.get("/current").await.text();
    assert!(t.contains("Track pending"), "{t}");
    assert!(t.contains("Zoë Müller") && t.contains(">Contact<"), "{t}");

    // A stranger's message: not tracked, sender unknown.
    let mut ev = MessageOpened::fetched("x1@elsewhere.example", "INBOX", Some(1), 1);
    ev.from = Some("Someone <someone@elsewhere.example>".into());
    pane.events.publish_opened("bob@example.test", ev);
    let t = bob.get("/current").await.text();
    assert!(t.contains("Not tracked") && t.contains("Unknown"), "{t}");
}

#[tokio::test]
async fn quick_create_finds_the_customer_by_name_or_from_its_page() {
    let pane = TestPane::start().await;
    let mut alice = pane.signed_in("alice@example.test").await;
    // The account's page offers a new opportunity and case for it.
    let t = alice.get(&format!("/record/{CONTOSO}")).await.text();
    let link = format!("link=account%3A{CONTOSO}");
    assert!(
        t.contains(&format!("/create?kind=opportunity&amp;{link}")),
        "{t}"
    );
    assert!(t.contains(&format!("/create?kind=case&amp;{link}")), "{t}");
    let csrf = alice.get("/create").await.csrf();
    let create = |kind: &'static str, name: &'static str, customer: &'static str| {
        vec![("kind", kind), ("name", name), ("link", customer)]
    };
    let created = |r: pane_util::Resp| {
        assert_eq!(r.status, 303, "{}", r.text());
        let at = r.header("location").unwrap();
        Uuid::parse_str(at.trim_start_matches("/record/")).unwrap()
    };

    // An opportunity for an account named in full, a case for a contact.
    let mut f = create("opportunity", "Fleet renewal", "contoso pharmaceuticals");
    f.push(("csrf", &csrf));
    let id = created(alice.post_form("/create", &f).await);
    match pane.store.record(id).unwrap() {
        Some(Record::Opportunity(o)) => {
            assert_eq!(o.account.map(|a| a.to_string()).as_deref(), Some(CONTOSO))
        }
        other => panic!("{other:?}"),
    }
    let mut f = create("case", "Login fails", "Nancy Davolio");
    f.push(("csrf", &csrf));
    let id = created(alice.post_form("/create", &f).await);
    match pane.store.record(id).unwrap() {
        Some(Record::Case(c)) => assert_eq!(c.customer.id.to_string(), NANCY),
        other => panic!("{other:?}"),
    }

    // Nobody by that name, or several: a clear error and nothing stored.
    for name in ["Tailspin North", "Tailspin South"] {
        let mut f = create("account", name, "");
        f.push(("csrf", &csrf));
        created(alice.post_form("/create", &f).await);
    }
    let before = pane.store.records(Some(Kind::Opportunity)).unwrap().len();
    for (customer, says) in [
        ("Nobody Incorporated", "No account is called"),
        ("Tailspin", "Several match"),
    ] {
        let mut f = create("opportunity", "Should not exist", customer);
        f.push(("csrf", &csrf));
        let r = alice.post_form("/create", &f).await;
        assert_eq!(r.status, 400, "{customer}: {}", r.text());
        assert!(r.text().contains(says), "{customer}: {}", r.text());
    }
    assert_eq!(
        pane.store.records(Some(Kind::Opportunity)).unwrap().len(),
        before
    );
}

#[tokio::test]
async fn documents_are_searched_by_title() {
    let pane = TestPane::start().await;
    let mut alice = pane.signed_in("alice@example.test").await;
    let all = alice.get("/documents").await.text();
    assert!(all.contains("Contoso Cloud Analytics brochure"), "{all}");
    assert!(all.contains("Support plans"), "{all}");
    let t = alice.get("/documents?q=BROCHURE").await.text();
    assert!(t.contains("Contoso Cloud Analytics brochure"), "{t}");
    assert!(
        !t.contains("Support plans") && t.contains("None match."),
        "{t}"
    );
    let t = alice.get("/documents?q=%3Cscript%3E").await.text();
    assert!(
        t.contains("&lt;script&gt;") && !t.contains("<script>"),
        "{t}"
    );
}
