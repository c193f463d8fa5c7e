//! The relationship assistant and the favourites star in a real browser (headless
//! Chromium through chromedriver, as in `pane_browser.rs`): at a 350 px side-pane
//! width the cards of the current message are shown in priority order without
//! spilling sideways, the star works as a plain form, and screenshots go to
//! target/pane-screenshots/assistant-*.png.

mod assistant_support;
mod browser_support;
mod pane_util;

use assistant_support::{seed, ALICE, CURRENT};
use browser_support::{spki_pin, Driver};
use pane_util::TestPane;
use serde_json::json;

#[tokio::test]
async fn cards_fit_a_narrow_pane_and_the_star_works_without_script() {
    let pane = TestPane::start().await;
    seed(pane.store.as_ref());
    let driver = Driver::start(&spki_pin(&pane.cfg.cert_dir().join("localhost.pem"))).await;
    let origin = pane.origin.clone();
    driver
        .cmd(
            "POST",
            "/window/rect",
            Some(json!({ "width": 350, "height": 1400 })),
        )
        .await;
    let token = crmproxy::pane::link::issue(&pane.cfg.data_dir, ALICE).unwrap();
    driver
        .goto(&format!("{origin}/signin/link?token={token}"))
        .await;

    let mut ev = crmproxy::pane::MessageOpened::new(CURRENT);
    ev.subject = Some("Kick-off notes".into());
    ev.from = Some("Rita Reply <rita@reply.example>".into());
    pane.events.publish_opened(ALICE, ev);
    driver.goto(&format!("{origin}/current")).await;
    let titles = driver
        .script(
            "return Array.from(document.querySelectorAll('.assistant .acard .atitle'))\
             .map(function (a) { return a.textContent; })",
        )
        .await;
    assert_eq!(
        titles,
        json!([
            "Call Uma back",
            "Northwind renewal",
            "Proposal questions",
            "Site visit with Uma",
            "Quinn Quiet"
        ])
    );
    // Nothing wider than the pane: no sideways scrolling at 350 px.
    let overflow = driver
        .script(
            "var w = document.documentElement.clientWidth; \
             return Array.from(document.querySelectorAll('.assistant, .assistant *'))\
             .filter(function (e) { return e.getBoundingClientRect().right > w + 1; }).length",
        )
        .await;
    assert_eq!(overflow, json!(0));
    driver
        .script("document.getElementById('h-assistant').scrollIntoView()")
        .await;
    driver.screenshot("assistant-current-350.png").await;

    // The star: a plain form post with the page's CSRF token, back to the record.
    let first_card = driver
        .script(
            "return document.querySelector('.assistant .acard[data-kind=\"closing-soon\"] a').href",
        )
        .await;
    driver.goto(first_card.as_str().unwrap()).await;
    driver
        .script("document.querySelector('form.star button').click()")
        .await;
    driver
        .wait_until(
            "document.readyState === 'complete' && \
             document.querySelector('form.star button[aria-pressed=\"true\"]')",
        )
        .await;
    driver.screenshot("assistant-record-starred-350.png").await;
    driver.goto(&format!("{origin}/")).await;
    let favourites = driver
        .script("return document.querySelector('.favourites').innerText")
        .await;
    assert!(
        favourites.as_str().unwrap().contains("Northwind renewal"),
        "{favourites}"
    );
    driver.screenshot("assistant-home-350.png").await;
    driver.quit().await;
}
