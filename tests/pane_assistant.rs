//! The relationship assistant, favourites and recent records over real HTTPS, on a real
//! store (the demo CRM plus records and activities at known times relative to now):
//! the cards of a message's people, sorted by priority, and none of unrelated people;
//! Home's cards for the user; the star on a record page (CSRF required, per user); the
//! recent records list (order, bound, deleted records); the JSON calls for the same.

mod assistant_support;
mod pane_util;

use assistant_support::{account, seed, ALICE, CURRENT};
use crmproxy::pane::MessageOpened;
use pane_util::{Client, TestPane};
use uuid::Uuid;

/// The assistant section of a page.
fn assistant_section(page: &str) -> String {
    let start = page
        .find("<section class=\"card assistant\"")
        .unwrap_or_else(|| panic!("no assistant section: {page}"));
    let end = start + page[start..].find("</section>").unwrap();
    page[start..end].to_owned()
}

fn position(section: &str, title: &str) -> usize {
    section
        .find(title)
        .unwrap_or_else(|| panic!("no card {title:?} in {section}"))
}

async fn open_current(pane: &TestPane, c: &mut Client) -> String {
    let mut ev = MessageOpened::new(CURRENT);
    ev.from = Some("Rita Reply <rita@reply.example>".into());
    pane.events.publish_opened(ALICE, ev);
    let r = c.get("/current").await;
    assert_eq!(r.status, 200);
    r.text()
}

#[tokio::test]
async fn the_current_message_shows_its_peoples_cards_by_priority() {
    let pane = TestPane::start().await;
    seed(pane.store.as_ref());
    let mut c = pane.signed_in(ALICE).await;
    let page = open_current(&pane, &mut c).await;
    let cards = assistant_section(&page);
    // Urgent (task in 5 h, then the renewal in 2 days), High (reply), Normal, Low.
    let order = [
        "Call Uma back",
        "Northwind renewal",
        "Proposal questions",
        "Site visit with Uma",
        "Quinn Quiet",
    ];
    let at: Vec<usize> = order.iter().map(|t| position(&cards, t)).collect();
    assert!(
        at.windows(2).all(|w| w[0] < w[1]),
        "{order:?} at {at:?}: {cards}"
    );
    assert!(
        cards.contains("Rita Reply wrote 3 days ago; no reply from you yet"),
        "{cards}"
    );
    assert!(
        cards.contains("No activity with Quinn Quiet for 100 days"),
        "{cards}"
    );
    assert!(cards.contains("Estimated to close in 2 days"), "{cards}");
    assert!(cards.contains("data-kind=\"waiting-reply\""));
    // Each card links to its record or message.
    assert!(
        cards.contains("href=\"/message?id=%3Cq-1%40northwind.example%3E\""),
        "{cards}"
    );
    // Nothing of unrelated people, answered mail, closed or far deals, busy people.
    for absent in [
        "Ned",
        "Faraway",
        "Answered already",
        "Northwind lost deal",
        "Northwind next year",
        "Kick-off notes",
        "Uma Upcoming</a>",
        "Rita Reply</a>",
    ] {
        assert!(!cards.contains(absent), "{absent:?} in {cards}");
    }
    // The section sits after the people, as the guide's pane shows insights below them.
    assert!(page.find("id=\"h-people\"").unwrap() < page.find("id=\"h-assistant\"").unwrap());

    // The same as JSON.
    let j = c
        .get(&format!(
            "/api/assistant?id={}",
            form_urlencoded::byte_serialize(CURRENT.as_bytes()).collect::<String>()
        ))
        .await
        .json();
    let titles: Vec<&str> = j["cards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, order);
    assert_eq!(j["cards"][0]["kind"], "upcoming");
    assert_eq!(j["cards"][0]["priority"], "urgent");
    assert_eq!(j["cards"][2]["kind"], "waiting_reply");
    assert_eq!(j["cards"][4]["kind"], "quiet");
    assert!(j["cards"][4]["href"]
        .as_str()
        .unwrap()
        .starts_with("/record/"));
    let r = c.get("/api/assistant?id=%0A").await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("Message-ID"));
}

#[tokio::test]
async fn home_shows_the_users_own_cards_and_no_one_elses() {
    let pane = TestPane::start().await;
    seed(pane.store.as_ref());
    let mut c = pane.signed_in(ALICE).await;
    let home = c.get("/").await.text();
    let cards = assistant_section(&home);
    for title in [
        "Ned needs an answer",
        "Lunch with Ned",
        "Faraway deal",
        "Proposal questions",
    ] {
        position(&cards, title);
    }
    let j = c.get("/api/assistant").await.json();
    assert!(j["cards"].as_array().unwrap().len() <= 10);
    assert!(j.to_string().contains("Ned needs an answer"));

    // Bob's assistant knows nothing of Alice's mail.
    let mut bob = pane.signed_in("bob@example.test").await;
    let home = bob.get("/").await.text();
    let cards = assistant_section(&home);
    assert!(
        !cards.contains("Ned needs an answer") && !cards.contains("Proposal questions"),
        "{cards}"
    );
    assert!(!bob
        .get("/api/assistant")
        .await
        .text()
        .contains("Proposal questions"));
}

async fn api_post(c: &mut Client, path: &str, body: &str, csrf: Option<&str>) -> pane_util::Resp {
    let origin = c.origin();
    let mut h = vec![
        ("content-type", "application/json"),
        ("origin", origin.as_str()),
    ];
    if let Some(t) = csrf {
        h.push(("x-csrf-token", t));
    }
    c.send("POST", path, &h, body.as_bytes().to_vec()).await
}

fn list_ids(j: &serde_json::Value, list: &str) -> Vec<String> {
    j[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn favourites_are_starred_with_csrf_and_stay_per_user() {
    let pane = TestPane::start().await;
    let s = pane.store.as_ref();
    let acc = account(s, "Starred Widgets").uuid().to_string();
    let mut c = pane.signed_in(ALICE).await;
    let page = c.get(&format!("/record/{acc}")).await;
    assert!(
        page.text().contains("☆ Add to favourites"),
        "{}",
        page.text()
    );
    let csrf = page.csrf();

    // Without the CSRF token nothing changes.
    let r = c
        .post_form("/favourite", &[("record", &acc), ("on", "1")])
        .await;
    assert_eq!(r.status, 403);
    assert!(list_ids(&c.get("/api/lists").await.json(), "favourites").is_empty());

    let r = c
        .post_form(
            "/favourite",
            &[("csrf", &csrf), ("record", &acc), ("on", "1")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location").unwrap(), format!("/record/{acc}"));
    assert!(c
        .get(&format!("/record/{acc}"))
        .await
        .text()
        .contains("★ Remove from favourites"));
    let home = c.get("/").await.text();
    let fav = &home[home.find("id=\"h-favourites\"").unwrap()..];
    let fav = &fav[..fav.find("</section>").unwrap()];
    assert!(
        fav.contains("Starred Widgets") && fav.contains(&format!("/record/{acc}")),
        "{fav}"
    );
    let search = c.get("/search").await.text();
    assert!(search.contains("id=\"h-favourites\"") && search.contains("Starred Widgets"));

    // Bob has his own (empty) list and cannot see Alice's.
    let mut bob = pane.signed_in("bob@example.test").await;
    assert!(list_ids(&bob.get("/api/lists").await.json(), "favourites").is_empty());
    assert!(bob
        .get(&format!("/record/{acc}"))
        .await
        .text()
        .contains("☆ Add to favourites"));

    // Unstar by form, star again by JSON (which needs the token too).
    let r = c
        .post_form(
            "/favourite",
            &[("csrf", &csrf), ("record", &acc), ("on", "0")],
        )
        .await;
    assert_eq!(r.status, 303);
    assert!(list_ids(&c.get("/api/lists").await.json(), "favourites").is_empty());
    let body = format!("{{\"record\": \"{acc}\", \"on\": true}}");
    assert_eq!(
        api_post(&mut c, "/api/favourites", &body, None)
            .await
            .status,
        403
    );
    let api_csrf = c.get("/api/session").await.json()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = api_post(&mut c, "/api/favourites", &body, Some(&api_csrf)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(list_ids(&r.json(), "favourites"), vec![acc.clone()]);
    assert_eq!(r.json()["favourites"][0]["title"], "Starred Widgets");

    // Unknown records and bad values are refused, nothing changes.
    let gone = Uuid::now_v7().to_string();
    let r = c
        .post_form(
            "/favourite",
            &[("csrf", &csrf), ("record", &gone), ("on", "1")],
        )
        .await;
    assert_eq!(r.status, 404);
    let r = c
        .post_form(
            "/favourite",
            &[("csrf", &csrf), ("record", &acc), ("on", "maybe")],
        )
        .await;
    assert_eq!(r.status, 400);
    let body = format!("{{\"record\": \"{gone}\", \"on\": true}}");
    let r = api_post(&mut c, "/api/favourites", &body, Some(&api_csrf)).await;
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].as_str().unwrap().contains("no record"));
    assert_eq!(
        list_ids(&c.get("/api/lists").await.json(), "favourites"),
        vec![acc.clone()]
    );

    // A favourite that is deleted later drops out; the pages still work.
    pane.store
        .delete_record(Uuid::parse_str(&acc).unwrap())
        .unwrap();
    assert!(list_ids(&c.get("/api/lists").await.json(), "favourites").is_empty());
    let home = c.get("/").await;
    assert_eq!(home.status, 200);
    assert!(!home.text().contains("Starred Widgets"));
}

#[tokio::test]
async fn recent_records_are_newest_first_bounded_and_survive_deletes() {
    let pane = TestPane::start().await;
    let s = pane.store.as_ref();
    let ids: Vec<String> = (0..23)
        .map(|i| account(s, &format!("Viewed {i:02}")).uuid().to_string())
        .collect();
    let mut c = pane.signed_in(ALICE).await;
    for id in &ids {
        assert_eq!(c.get(&format!("/record/{id}")).await.status, 200);
    }
    c.get(&format!("/record/{}", ids[10])).await;
    let recent = list_ids(&c.get("/api/lists").await.json(), "recent");
    let mut expect: Vec<String> = ids
        .iter()
        .rev()
        .filter(|i| **i != ids[10])
        .cloned()
        .collect();
    expect.insert(0, ids[10].clone());
    expect.truncate(20);
    assert_eq!(recent, expect);

    let home = c.get("/").await.text();
    let sec = &home[home.find("id=\"h-recent-records\"").unwrap()..];
    let sec = &sec[..sec.find("</section>").unwrap()];
    assert!(
        sec.find("Viewed 10").unwrap() < sec.find("Viewed 22").unwrap(),
        "{sec}"
    );
    assert!(!sec.contains("Viewed 02"), "the oldest fell off: {sec}");

    // Bob's recent records are his own.
    let mut bob = pane.signed_in("bob@example.test").await;
    assert!(list_ids(&bob.get("/api/lists").await.json(), "recent").is_empty());

    // A viewed record deleted later drops out of the list and the pages.
    pane.store
        .delete_record(Uuid::parse_str(&ids[10]).unwrap())
        .unwrap();
    let recent = list_ids(&c.get("/api/lists").await.json(), "recent");
    assert_eq!(recent, expect[1..].to_vec());
    for page in ["/", "/search"] {
        let r = c.get(page).await;
        assert_eq!(r.status, 200);
        assert!(!r.text().contains("Viewed 10"), "{page}");
    }
    let r = c.get(&format!("/record/{}", ids[10])).await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn the_assistant_follows_its_settings() {
    // Quiet only after 200 days, appointments only within a day, deals within a day.
    let pane = TestPane::start_with(|c| {
        c.pane.quiet_after_days = 200;
        c.pane.upcoming_within_days = 1;
        c.pane.closing_within_days = 1;
    })
    .await;
    seed(pane.store.as_ref());
    let mut c = pane.signed_in(ALICE).await;
    let cards = assistant_section(&open_current(&pane, &mut c).await);
    position(&cards, "Call Uma back");
    position(&cards, "Proposal questions");
    for absent in ["Quinn Quiet", "Site visit with Uma", "Northwind renewal"] {
        assert!(!cards.contains(absent), "{absent:?} in {cards}");
    }

    // Out-of-range values are refused when the config is read, naming the key.
    for bad in ["quiet_after_days = 0", "closing_within_days = 4000"] {
        let err = crmproxy::config::Config::from_toml(
            &format!("[pane]\n{bad}\n"),
            std::path::Path::new("crmproxy.toml"),
        )
        .unwrap_err()
        .to_string();
        let key = bad.split(' ').next().unwrap();
        assert!(
            err.contains(key) && err.contains("between 1 and 3650"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn a_snoozed_card_stays_away_for_its_user_only() {
    let pane = TestPane::start().await;
    seed(pane.store.as_ref());
    let mut c = pane.signed_in(ALICE).await;
    let page = open_current(&pane, &mut c).await;
    let csrf = {
        let at = page
            .find("name=\"card\"")
            .expect("snooze forms on the cards");
        let before = &page[..at];
        let i = before.rfind("name=\"csrf\" value=\"").unwrap() + 19;
        before[i..i + before[i..].find('"').unwrap()].to_owned()
    };
    let mid = form_urlencoded::byte_serialize(CURRENT.as_bytes()).collect::<String>();
    let cards = c.get(&format!("/api/assistant?id={mid}")).await.json()["cards"].clone();
    let key = |title: &str| {
        cards
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["title"] == title)
            .unwrap()["key"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let reply = key("Proposal questions");
    assert_eq!(reply, "reply:<q-1@northwind.example>");
    let quiet = key("Quinn Quiet");

    // Without the CSRF token, or with a bad length or key: refused, nothing changes.
    let origin = c.origin();
    let referer = format!("{origin}/current");
    let headers = [("origin", origin.as_str()), ("referer", referer.as_str())];
    let r = c
        .post_form_with(
            "/assistant/snooze",
            &[("card", &reply), ("days", "7")],
            &headers,
        )
        .await;
    assert_eq!(r.status, 403);
    for (card, days, why) in [
        (reply.as_str(), "0", "1 to 30 days"),
        (reply.as_str(), "31", "1 to 30 days"),
        ("bogus", "1", "not a card"),
    ] {
        let r = c
            .post_form_with(
                "/assistant/snooze",
                &[("csrf", &csrf), ("card", card), ("days", days)],
                &headers,
            )
            .await;
        assert_eq!(r.status, 400, "{card} {days}");
        assert!(r.text().contains(why), "{}", r.text());
    }
    assert!(assistant_section(&c.get("/current").await.text()).contains("Proposal questions"));

    // Snoozed: gone from this message and from Home, back to the page it was on.
    let r = c
        .post_form_with(
            "/assistant/snooze",
            &[("csrf", &csrf), ("card", &reply), ("days", "7")],
            &headers,
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location").unwrap(), "/current");
    let cards = assistant_section(&c.get("/current").await.text());
    assert!(!cards.contains("Proposal questions"), "{cards}");
    position(&cards, "Call Uma back");
    position(&cards, "Quinn Quiet");
    assert!(!assistant_section(&c.get("/").await.text()).contains("Proposal questions"));

    // By JSON, with the API's token.
    let api_csrf = c.get("/api/session").await.json()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = format!("{{\"card\": \"{quiet}\", \"days\": 1}}");
    let r = api_post(&mut c, "/api/assistant/snooze", &body, Some(&api_csrf)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let j = c.get(&format!("/api/assistant?id={mid}")).await.json();
    assert!(!j.to_string().contains("Quinn Quiet"), "{j}");
    let r = api_post(
        &mut c,
        "/api/assistant/snooze",
        &format!("{{\"card\": \"{quiet}\", \"days\": 99}}"),
        Some(&api_csrf),
    )
    .await;
    assert_eq!(r.status, 400);

    // Another user's assistant is not affected by Alice's snoozing.
    pane.store
        .snooze(
            assistant_support::alice(),
            "closing:whatever",
            chrono::Utc::now() + chrono::Duration::days(1),
        )
        .unwrap();
    let bob = crmproxy::store::UserId::from_uuid(
        Uuid::parse_str("0193a1b2-c3d4-7002-8000-000000000002").unwrap(),
    );
    assert!(pane.store.snoozed(bob).unwrap().is_empty());
    assert_eq!(
        pane.store
            .snoozed(assistant_support::alice())
            .unwrap()
            .len(),
        3
    );
}
