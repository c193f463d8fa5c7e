//! The Contacts page in a real browser (headless Chromium through chromedriver, W3C
//! WebDriver over HTTP, as in `pane_browser.rs`): at a 350 px side-pane width
//! nothing overflows sideways, a contact is selected and tracked with the
//! keyboard alone (Tab to the checkbox, Space, Tab to Track, Enter: a plain form
//! post, no script), and screenshots at 350 and 1280 px go to
//! target/pane-screenshots/.

mod browser_support;
mod contacts_util;
mod pane_util;

use browser_support::{spki_pin, Driver};
use contacts_util::*;
use pane_util::TestPane;

const TAB: &str = "\u{E004}";
const ENTER: &str = "\u{E007}";
const SPACE: &str = " ";
const SHIFT: &str = "\u{E008}";

#[tokio::test]
async fn contacts_page_in_a_browser_narrow_and_wide_keyboard_only() {
    let pane = TestPane::start().await;
    serve_admin(&pane).await;
    assert!(cli_import(&pane, ALICE, &book_vcf()).await.status.success());
    let mut c = pane.signed_in(ALICE).await;
    let quinn = id_of(&mut c, "quinn@new.example").await;
    let pin = spki_pin(&pane.cfg.cert_dir().join("localhost.pem"));
    let driver = Driver::start(&pin).await;
    let origin = pane.origin.clone();
    let token = crmproxy::pane::link::issue(&pane.cfg.data_dir, ALICE).unwrap();
    driver.size(350, 900).await;
    driver
        .goto(&format!("{origin}/signin/link?token={token}"))
        .await;
    driver.goto(&format!("{origin}/contacts?tab=mail")).await;
    driver
        .wait_until("document.querySelector('ul.contacts')")
        .await;
    let overflow = driver
        .script("return document.documentElement.scrollWidth - window.innerWidth")
        .await;
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "sideways overflow at 350 px: {overflow}"
    );
    driver.screenshot("contacts-350.png").await;

    // Keyboard only: from the search box, Tab down to Quinn's checkbox, Space ticks
    // it, Shift+Tab back up to Track, Enter submits the form.
    driver.script("document.getElementById('q').focus()").await;
    let mut found = false;
    for _ in 0..60 {
        driver.keys(&[TAB]).await;
        if driver.focused().await == format!("INPUT sel {quinn}") {
            found = true;
            break;
        }
    }
    assert!(found, "Quinn's checkbox is reachable with Tab");
    driver.keys(&[SPACE]).await;
    let checked = format!("document.getElementById('sel-{quinn}').checked");
    driver.wait_until(&checked).await;
    let mut on_track = false;
    for _ in 0..60 {
        driver.chord(&[SHIFT, TAB]).await;
        if driver.focused().await == "BUTTON action track" {
            on_track = true;
            break;
        }
    }
    assert!(
        on_track,
        "Shift+Tab goes back up to the toolbar's Track button"
    );
    driver.keys(&[ENTER]).await;
    driver
        .wait_until("document.querySelector('p.notice')")
        .await;
    let notice = driver
        .script("return document.querySelector('p.notice').innerText")
        .await;
    assert!(
        notice
            .as_str()
            .unwrap()
            .contains("tracked as a new CRM contact"),
        "{notice}"
    );
    assert_eq!(status_of(&mut c, "quinn@new.example").await.0, "tracked");
    driver.screenshot("contacts-tracked-350.png").await;

    driver.size(1280, 900).await;
    driver.goto(&format!("{origin}/contacts?tab=mail")).await;
    driver
        .wait_until("document.querySelector('ul.contacts')")
        .await;
    driver.screenshot("contacts-1280.png").await;
    driver.goto(&format!("{origin}/contacts?tab=crm")).await;
    driver
        .wait_until("document.querySelector('ul.contacts')")
        .await;
    driver.screenshot("contacts-crm-1280.png").await;
    driver.quit().await;
}
