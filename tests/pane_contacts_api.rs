//! The Contacts page's refusals and JSON API over real HTTPS: bad and unknown ids,
//! over-long names, a missing CSRF token or a foreign origin, another user's
//! contacts, a delegate acting for the owner (nothing changes in each case), and
//! `/api/contacts/*`.

mod contacts_util;
mod pane_util;

use contacts_util::*;
use crmproxy::store::Kind;
use pane_util::TestPane;

#[tokio::test]
async fn bad_input_is_refused_and_nothing_changes() {
    let pane = TestPane::start().await;
    serve_admin(&pane).await;
    assert!(cli_import(&pane, ALICE, &book_vcf()).await.status.success());
    let mut c = pane.signed_in(ALICE).await;
    let rita = id_of(&mut c, "rita@solo.example").await;
    let contacts = pane.store.count_records(Kind::Contact).unwrap();
    let accounts = pane.store.count_records(Kind::Account).unwrap();

    // No CSRF token, or another origin: refused, nothing tracked.
    let r = c
        .post_form("/contacts", &[("action", "track"), ("sel", &rita)])
        .await;
    assert_eq!(r.status, 403);
    let token = csrf(&mut c).await;
    let r = c
        .post_form_with(
            "/contacts",
            &[("csrf", &token), ("action", "track"), ("sel", &rita)],
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(r.status, 403);
    let r = c
        .send(
            "POST",
            "/api/contacts/track",
            &[
                ("content-type", "application/json"),
                ("origin", &c.origin()),
            ],
            format!("{{\"ids\":[\"{rita}\"]}}").into_bytes(),
        )
        .await;
    assert_eq!((r.status, r.json()["status"].as_u64()), (403, Some(403)));
    assert_eq!(status_of(&mut c, "rita@solo.example").await.0, "untracked");

    // Unknown and malformed ids; an unknown one among known ones changes nothing.
    let unknown = uuid::Uuid::now_v7().to_string();
    let r = form(
        &mut c,
        "/contacts",
        &[("action", "track"), ("sel", &rita), ("sel", &unknown)],
    )
    .await;
    assert_eq!(r.status, 404);
    assert!(
        r.text().contains("no contact") && r.text().contains("reload the page"),
        "{}",
        r.text()
    );
    let r = form(
        &mut c,
        "/contacts",
        &[("action", "track"), ("sel", "not-an-id")],
    )
    .await;
    assert_eq!(r.status, 400);
    let r = form(&mut c, "/contacts", &[("action", "track")]).await;
    assert_eq!(r.status, 400);
    let r = form(
        &mut c,
        "/contacts",
        &[("action", "explode"), ("sel", &rita)],
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        c.get(&format!("/contacts/choose?entry={unknown}"))
            .await
            .status,
        404
    );
    let r = form(
        &mut c,
        "/contacts/link",
        &[("sel", &rita), ("account", &unknown)],
    )
    .await;
    assert_eq!(r.status, 404);

    // Over-long or multi-line new account names; both an account and a new one.
    let long = "A".repeat(201);
    for name in [long.as_str(), "two\nlines", "   "] {
        let r = form(
            &mut c,
            "/contacts/link",
            &[("sel", &rita), ("new_account", name)],
        )
        .await;
        assert_eq!(r.status, 400, "{name:?}: {}", r.text());
    }
    let r = form(
        &mut c,
        "/contacts/link",
        &[("sel", &rita), ("account", CONTOSO), ("new_account", "X")],
    )
    .await;
    assert_eq!(r.status, 400);

    // Another user's contacts: Carol (alice's delegate) cannot reach alice's
    // entries through her own mailbox (acting for alice's, she is refused: the
    // last test here).
    let mut carol = pane.signed_in("carol@example.test").await;
    let r = form(
        &mut carol,
        "/contacts",
        &[("action", "track"), ("sel", &rita)],
    )
    .await;
    assert_eq!(r.status, 404);
    let r = carol.get(&format!("/contacts/invite.ics?sel={rita}")).await;
    assert_eq!(r.status, 404);
    let t = carol.get("/contacts?tab=mail").await.text();
    assert!(!t.contains("Rita Solo") && t.contains("Your address book is empty"));

    assert_eq!(status_of(&mut c, "rita@solo.example").await.0, "untracked");
    assert_eq!(pane.store.count_records(Kind::Contact).unwrap(), contacts);
    assert_eq!(pane.store.count_records(Kind::Account).unwrap(), accounts);
}

#[tokio::test]
async fn the_json_api() {
    let pane = TestPane::start().await;
    serve_admin(&pane).await;
    let twins = twin_contacts(&pane).await;
    assert!(cli_import(&pane, ALICE, &book_vcf()).await.status.success());
    let mut c = pane.signed_in(ALICE).await;
    let quinn = id_of(&mut c, "quinn@new.example").await;
    let twin = id_of(&mut c, "twin@shared.example").await;

    let r = api(
        &mut c,
        "/api/contacts/track",
        serde_json::json!({ "ids": [quinn, twin] }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(
        (
            j["report"]["created"].as_u64(),
            j["report"]["pending"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert!(j["message"].as_str().unwrap().contains("pending"));
    let r = api(
        &mut c,
        "/api/contacts/choose",
        serde_json::json!({ "id": twin, "contact": twins[0] }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        status_of(&mut c, "twin@shared.example").await.1.as_deref(),
        Some(twins[0].as_str())
    );
    let r = api(
        &mut c,
        "/api/contacts/link",
        serde_json::json!({ "ids": [quinn], "new_account": "Api Account" }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["report"]["new_account"].is_string());
    let r = api(
        &mut c,
        "/api/contacts/untrack",
        serde_json::json!({ "ids": [quinn, twin] }),
    )
    .await;
    assert_eq!(r.json()["report"]["untracked"].as_u64(), Some(2));

    // Errors: JSON with the status.
    let unknown = uuid::Uuid::now_v7().to_string();
    for (path, body, status) in [
        (
            "/api/contacts/track",
            serde_json::json!({ "ids": [unknown] }),
            404,
        ),
        ("/api/contacts/track", serde_json::json!({ "ids": [] }), 400),
        (
            "/api/contacts/track",
            serde_json::json!({ "ids": ["x"] }),
            400,
        ),
        ("/api/contacts/track", serde_json::json!({ "oops": 1 }), 400),
        (
            "/api/contacts/link",
            serde_json::json!({ "ids": [quinn], "new_account": "B".repeat(300) }),
            400,
        ),
        (
            "/api/contacts/choose",
            serde_json::json!({ "id": twin, "contact": NANCY }),
            400,
        ),
    ] {
        let r = api(&mut c, path, body.clone()).await;
        assert_eq!(r.status, status, "{path} {body}: {}", r.text());
        assert_eq!(r.json()["status"].as_u64(), Some(status as u64));
        assert!(!r.json()["error"].as_str().unwrap().is_empty());
    }

    // Lists and mailto.
    let j = c.get("/api/contacts?tab=crm&q=newman").await.json();
    assert_eq!(j["items"][0]["name"], "Quinn Newman");
    let j = c.get("/api/contacts?tab=mail&view=untracked").await.json();
    assert!(j["counts"]["all"].as_u64().unwrap() >= 5);
    assert!(j["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["status"] == "untracked"));
    let j = c
        .get(&format!("/api/contacts/mailto?sel={quinn}&crm={NANCY}"))
        .await
        .json();
    assert_eq!(
        j["mailto"],
        "mailto:quinn@new.example,nancy.davolio@contoso.example"
    );
    let r = c.get("/api/contacts/mailto").await;
    assert_eq!((r.status, r.json()["status"].as_u64()), (400, Some(400)));
}

#[tokio::test]
async fn a_delegate_acting_for_the_owner_may_not_track_the_owners_contacts() {
    let pane = TestPane::start().await;
    serve_admin(&pane).await;
    assert!(cli_import(&pane, ALICE, &book_vcf()).await.status.success());
    let mut alice = pane.signed_in(ALICE).await;
    let quinn = id_of(&mut alice, "quinn@new.example").await;
    let contacts = pane.store.count_records(Kind::Contact).unwrap();

    // Carol (alice's delegate in the demo CRM) switches to alice's mailbox.
    let mut carol = pane.signed_in("carol@example.test").await;
    let token = carol.get("/mailbox").await.csrf();
    let r = carol
        .post_form("/mailbox", &[("csrf", &token), ("owner", ALICE)])
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let page = carol.get("/contacts?tab=mail").await.text();
    assert!(
        page.contains("Quinn Newman"),
        "the delegate sees the owner's contacts"
    );

    for action in ["track", "link"] {
        let r = form(
            &mut carol,
            "/contacts",
            &[
                ("action", action),
                ("back", "/contacts?tab=mail"),
                ("sel", &quinn),
            ],
        )
        .await;
        let refused = r.status == 403
            || (r.status == 303 && follow(&mut carol, &r).await.contains("A delegate cannot"));
        assert!(refused, "{action}: {} {}", r.status, r.text());
    }
    let r = api(
        &mut carol,
        "/api/contacts/track",
        serde_json::json!({ "ids": [quinn] }),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("delegate"), "{}", r.text());
    assert_eq!(
        status_of(&mut alice, "quinn@new.example").await.0,
        "untracked"
    );
    assert_eq!(pane.store.count_records(Kind::Contact).unwrap(), contacts);
}
