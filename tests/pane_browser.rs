//! The pane in a real browser: headless Chromium driven through chromedriver (W3C
//! WebDriver, spoken here directly over HTTP). The browser trusts only the pane's own
//! certificate key (`--ignore-certificate-errors-spki-list`, honoured with a fresh
//! `--user-data-dir`). It opens a one-time link, lands signed in, follows a live
//! "message opened" event, submits forms (the CSRF path), signs out, and saves
//! screenshots at 350 px and full width into target/pane-screenshots/.

mod browser_support;
mod pane_util;

use browser_support::{spki_pin, Driver};
use crmproxy::store::UserId;
use pane_util::TestPane;
use std::time::Duration;

fn demo_message() -> crmproxy::pane::MessageOpened {
    let mut m = crmproxy::pane::MessageOpened::new("<demo-0001@mail.contoso.example>");
    m.subject = Some("Re: Seats for the analytics roll-out".into());
    m.from = Some("Nancy Davolio <nancy.davolio@contoso.example>".into());
    m.mailbox = Some("INBOX".into());
    m.uid = Some(4212);
    m
}

/// A stand-in for Office.js with the surface pane.js uses, then pane.js loaded again.
fn office_stub(message_id: &str) -> String {
    format!(
        r#"window.Office = {{
  EventType: {{ ItemChanged: "olkItemSelectedChanged" }},
  context: {{ mailbox: {{
    item: {{ internetMessageId: "<{message_id}>", subject: "Pricing question",
             from: {{ emailAddress: "nancy.davolio@contoso.example" }} }},
    addHandlerAsync: function (type, handler) {{ window.__crmItemChanged = handler; }}
  }} }},
  onReady: function (callback) {{ callback({{ host: "Outlook" }}); }}
}};
var s = document.createElement("script");
s.src = "/assets/pane.js";
document.head.appendChild(s);"#
    )
}

#[tokio::test]
async fn browser_signs_in_follows_live_events_and_submits_forms() {
    let pane = TestPane::start().await;
    let user = "alice@example.test";
    let pin = spki_pin(&pane.cfg.cert_dir().join("localhost.pem"));
    let driver = Driver::start(&pin).await;
    let origin = pane.origin.clone();

    // Some history so the home page has content.
    for (id, subject, from) in [
        (
            "q3-review@contoso.example",
            "Q3 review: pricing for 250 seats",
            "Jim Glynn <jim@contoso.example>",
        ),
        (
            "intro@fabrikam.example",
            "Introduction: Fabrikam purchasing",
            "Nancy Anderson <nancy@fabrikam.example>",
        ),
    ] {
        let mut ev = crmproxy::pane::MessageOpened::new(id);
        ev.subject = Some(subject.into());
        ev.from = Some(from.into());
        ev.mailbox = Some("INBOX".into());
        ev.uid = Some(4211);
        pane.events.publish_opened(user, ev);
    }

    // Narrow, like a mail client's side pane. Without a session: the sign-in form.
    driver.size(350, 900).await;
    driver.goto(&format!("{origin}/")).await;
    assert!(driver.url().await.contains("/signin?next=%2F"));
    assert_eq!(driver.text("h1").await, "Sign in");
    driver.screenshot("signin-350.png").await;

    // The one-time link signs in and lands on Home.
    let token = crmproxy::pane::link::issue(&pane.cfg.data_dir, user).unwrap();
    driver
        .goto(&format!("{origin}/signin/link?token={token}"))
        .await;
    assert_eq!(driver.url().await, format!("{origin}/"));
    assert_eq!(driver.text("h1").await, "Home");
    assert_eq!(driver.text("header .user").await, user);
    assert!(driver.text("main").await.contains("Q3 review"));
    assert_eq!(
        driver.script("return document.cookie").await,
        "",
        "HttpOnly cookie"
    );
    driver.screenshot("home-350.png").await;

    // The link is spent: a second visit shows the refusal page.
    driver
        .goto(&format!("{origin}/signin/link?token={token}"))
        .await;
    assert!(driver.text("main").await.contains("already been used"));

    // Current message follows the mail client live (SSE + pane.js under the CSP).
    driver.goto(&format!("{origin}/current")).await;
    assert!(driver.text("main").await.contains("Introduction: Fabrikam"));
    // Give the page's EventSource time to connect, then publish until it is delivered.
    let live = demo_message();
    let mut delivered = 0;
    for _ in 0..200 {
        delivered = pane.events.publish_opened(user, live.clone());
        if delivered > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(delivered > 0, "the page opened a live stream");
    let shown = driver
        .wait_for_text(
            "[data-live=current]",
            "Re: Seats for the analytics roll-out",
        )
        .await;
    assert!(shown.contains("demo-0001@mail.contoso.example"));
    // Its CRM side: tracked regarding the opportunity, the sender a contact.
    driver.script("location.reload()").await;
    driver.wait_for_text("main", "Tracked regarding").await;
    let main = driver.text("main").await;
    assert!(main.contains("Contoso — 150 analytics seats"), "{main}");
    assert!(main.contains("Nancy Davolio"), "{main}");
    driver.screenshot("current-350.png").await;

    // A form with the CSRF token: look a message up, then make it current (POST).
    driver.goto(&format!("{origin}/")).await;
    driver
        .type_into("#mid", "order-42@adventure-works.example")
        .await;
    driver.click("form[action='/message'] button").await;
    driver
        .wait_for_url(|u| u.contains("/message?id=order-42%40adventure-works.example"))
        .await;
    driver.screenshot("message-350.png").await;
    driver.click("form[action='/current'] button").await;
    let current = format!("{origin}/current");
    driver.wait_for_url(|u| u == current).await;
    assert!(driver
        .text("main")
        .await
        .contains("order-42@adventure-works.example"));
    assert_eq!(
        pane.events.current(user).unwrap().message_id,
        "order-42@adventure-works.example"
    );

    // Search with the type filter (a GET form), then open a record.
    driver.click("nav.menu a[href='/search']").await;
    driver.wait_for_url(|u| u.ends_with("/search")).await;
    driver.type_into("#q", "contoso").await;
    driver.click("#type option[value='opportunity']").await;
    driver.click("form.search button").await;
    driver
        .wait_for_url(|u| u.contains("/search?q=contoso&type=opportunity"))
        .await;
    let results = driver.text("main").await;
    assert!(
        results.contains("Contoso — 150 analytics seats"),
        "{results}"
    );
    assert!(!results.contains("Contoso Pharmaceuticals"), "{results}");
    driver.screenshot("search-350.png").await;
    driver.goto(&format!("{origin}/search?q=contoso")).await;
    driver.click("main ul.list a").await;
    driver.wait_for_url(|u| u.contains("/record/")).await;
    let record_url = driver.url().await;
    driver.screenshot("record-350.png").await;

    // Outlook: with Office.js present, pane.js follows the selected item. Office.js only
    // loads inside Outlook, so a stand-in with the same surface is put on the page.
    driver.goto(&format!("{origin}/search")).await;
    driver
        .script(&office_stub("office-item-1@contoso.example"))
        .await;
    driver
        .wait_for_url(|u| u.contains("/message?id=office-item-1%40contoso.example"))
        .await;
    assert!(driver.text("main").await.contains("Pricing question"));
    let cur = pane.events.current(user).unwrap();
    assert_eq!(cur.message_id, "office-item-1@contoso.example");
    assert_eq!(cur.from.as_deref(), Some("nancy.davolio@contoso.example"));
    // The same item again (another page of the pane): the user is not pulled back.
    driver.goto(&format!("{origin}/search")).await;
    driver
        .script(&office_stub("office-item-1@contoso.example"))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(driver.url().await.ends_with("/search"));
    // Outlook selects another item: the pane follows.
    driver
        .script(
            "window.Office.context.mailbox.item = { internetMessageId: '<office-item-2@contoso.example>', \
             subject: 'Second', from: null }; window.__crmItemChanged();",
        )
        .await;
    driver
        .wait_for_url(|u| u.contains("/message?id=office-item-2%40contoso.example"))
        .await;

    // Full width, on the tracked demo message.
    pane.events.publish_opened(user, demo_message());
    driver.size(1280, 900).await;
    driver.goto(&format!("{origin}/")).await;
    driver.screenshot("home-1280.png").await;
    driver.goto(&format!("{origin}/current")).await;
    driver.screenshot("current-1280.png").await;
    driver.goto(&format!("{origin}/search?q=contoso")).await;
    driver.screenshot("search-1280.png").await;
    driver.goto(&record_url).await;
    driver.screenshot("record-1280.png").await;

    // Keyboard: on a fresh page the first Tab lands on the skip link, and Enter on
    // it goes to the content.
    driver.goto(&format!("{origin}/current")).await;
    driver.keys(&["\u{E004}"]).await;
    let first = driver
        .script("var e = document.activeElement; return e.tagName + ' ' + e.getAttribute('href')")
        .await;
    assert_eq!(first, "A #main");
    driver.keys(&["\u{E007}"]).await;
    driver.wait_until("location.hash === '#main'").await;

    // At a side pane's 350 px no page scrolls sideways.
    driver.size(350, 900).await;
    for page in [
        "/",
        "/current",
        "/search?q=contoso",
        "/documents",
        record_url.as_str(),
    ] {
        let url = if page.starts_with("http") {
            page.to_owned()
        } else {
            format!("{origin}{page}")
        };
        driver.goto(&url).await;
        let overflow = driver
            .script("return document.documentElement.scrollWidth - window.innerWidth")
            .await;
        assert!(
            overflow.as_i64().unwrap() <= 0,
            "{page}: sideways overflow at 350 px: {overflow}"
        );
    }

    let console = driver.console().await;
    let problems: Vec<_> = console
        .iter()
        .filter(|m| m.contains("SEVERE") || m.contains("Content Security Policy"))
        // The spent link's 403 above is expected.
        .filter(|m| !(m.contains("/signin/link?token=") && m.contains("403")))
        .collect();
    assert!(problems.is_empty(), "browser console: {problems:?}");

    // Sign out (a POST with the token) and the pane is closed again.
    driver.click("form.signout button").await;
    let signin = format!("{origin}/signin");
    driver.wait_for_url(|u| u.starts_with(&signin)).await;
    driver.goto(&format!("{origin}/current")).await;
    assert!(driver.url().await.contains("/signin?next=%2Fcurrent"));
    driver.quit().await;
}

#[tokio::test]
async fn browser_sets_regarding_through_search_untracks_and_adds_a_contact() {
    let pane = TestPane::start().await;
    let user = "alice@example.test";
    let pin = spki_pin(&pane.cfg.cert_dir().join("localhost.pem"));
    let driver = Driver::start(&pin).await;
    let origin = pane.origin.clone();
    driver.size(350, 900).await;
    let token = crmproxy::pane::link::issue(&pane.cfg.data_dir, user).unwrap();
    driver
        .goto(&format!("{origin}/signin/link?token={token}"))
        .await;
    pane.events.publish_opened(user, demo_message());

    // Change Regarding: search accounts, pick Contoso Pharmaceuticals.
    driver.goto(&format!("{origin}/current")).await;
    driver.wait_for_text("main", "Tracked regarding").await;
    driver.screenshot("tracking-panel-350.png").await;
    driver
        .click("div.actions a.button[href^='/regarding']")
        .await;
    driver.wait_for_url(|u| u.contains("/regarding?id=")).await;
    driver.type_into("#q", "contoso").await;
    driver.click("#type option[value='account']").await;
    driver.click("form.search button").await;
    driver.wait_for_url(|u| u.contains("type=account")).await;
    let results = driver.text("main").await;
    assert!(results.contains("Contoso Pharmaceuticals"), "{results}");
    assert!(
        !results.contains("150 analytics seats"),
        "type filter: {results}"
    );
    driver.screenshot("set-regarding-350.png").await;
    driver.click("ul.pick form button").await;
    driver.wait_for_url(|u| u.contains("/message?id=")).await;
    let main = driver.wait_for_text("main", "Regarding set.").await;
    assert!(main.contains("Contoso Pharmaceuticals"), "{main}");
    let alice =
        UserId::from_uuid(uuid::Uuid::parse_str("0193a1b2-c3d4-7001-8000-000000000001").unwrap());
    let mid = crmproxy::store::MessageId::parse("demo-0001@mail.contoso.example").unwrap();
    let rec = pane.store.tracking(alice, &mid).unwrap().unwrap();
    assert_eq!(
        rec.regarding.map(|r| r.id.to_string()).as_deref(),
        Some("0193a1b2-c3d4-7005-8000-000000000005")
    );
    driver.screenshot("regarding-set-350.png").await;

    // View email in CRM.
    driver
        .click("div.actions a.button[href^='/activity/']")
        .await;
    driver.wait_for_text("main", "Email in CRM").await;
    driver.screenshot("email-in-crm-350.png").await;
    driver.script("history.back()").await;
    driver.wait_for_url(|u| u.contains("/message?id=")).await;

    // Untrack.
    driver.click("form[action='/untrack'] button").await;
    driver.wait_for_text("main", "No longer tracked").await;
    assert!(pane.store.tracking(alice, &mid).unwrap().is_none());

    // "+ Add as contact" for an unknown sender.
    let mut ev = crmproxy::pane::MessageOpened::new("hello@newco.example");
    ev.subject = Some("Hello from NewCo".into());
    ev.from = Some("Jane Doe <jane.doe@newco.example>".into());
    pane.events.publish_opened(user, ev);
    driver.goto(&format!("{origin}/current")).await;
    driver.wait_for_text("main", "Add as contact").await;
    driver.click("a.add[href*='kind=contact']").await;
    driver.wait_for_url(|u| u.contains("/people/new")).await;
    assert_eq!(
        driver
            .script("return document.querySelector('#last_name').value")
            .await,
        "Doe"
    );
    driver.screenshot("add-contact-350.png").await;
    driver.click("main form button.primary").await;
    let main = driver.wait_for_text("main", "Contact created").await;
    assert!(
        main.contains("Tracked regarding") || main.contains("Track pending"),
        "{main}"
    );
    driver.screenshot("contact-added-350.png").await;

    // Quick create and Add to email (a link sign-in: no mailbox password) render.
    driver.goto(&format!("{origin}/create")).await;
    driver.screenshot("quick-create-350.png").await;
    driver
        .goto(&format!(
            "{origin}/compose?doc=0193a1b2-c3d4-7017-8000-000000000017"
        ))
        .await;
    assert!(driver.text("main").await.contains("one-time link"));
    driver.screenshot("add-to-email-350.png").await;
    let console = driver.console().await;
    let problems: Vec<_> = console
        .iter()
        .filter(|m| m.contains("SEVERE") || m.contains("Content Security Policy"))
        .collect();
    assert!(problems.is_empty(), "browser console: {problems:?}");
    driver.quit().await;
}
