//! The pane end to end through the real `crmproxy serve` (proxy, sync worker, pane in
//! one process, demo CRM) in front of the private Dovecot, with real clients only:
//! headless Chromium signs in to the pane; Python's imaplib opens a message through
//! the proxy and the pane follows by itself (nothing here publishes the "opened"
//! event); Set Regarding through search tracks it and a direct imaplib client (straight
//! to Dovecot) sees `$CRM_Tracked`; "+ Add as contact" for the unknown sender; Untrack,
//! and the direct client no longer sees the keyword; a delegate follows the owner's
//! mailbox; a password sign-in adds an email template as a draft, found in Drafts by
//! a direct IMAP client. Screenshots at 350 and 1280 px wide go to
//! target/pane-screenshots/.

mod browser_support;
mod common;
mod tracking_support;

use base64::Engine as _;
use browser_support::{spki_pin, Driver};
use common::clients::{run_python, ClientTls};
use common::{dovecot, Proxy, ProxyOptions, PASSWORD};
use std::net::SocketAddr;
use tracking_support::{message, wait_for};

const ALICE: &str = "alice@example.test";
const CAROL: &str = "carol@example.test";
const MID: &str = "e2e-proposal@customer.example";
const DELEGATED_MID: &str = "e2e-contract@customer.example";

/// `open UID` or `flags UID` with imaplib (tests/py/open_and_flags.py) at `addr`.
fn imaplib(addr: SocketAddr, action: &str, uid: u32) -> String {
    let uid = uid.to_string();
    let (ok, out, err) = run_python(
        "open_and_flags.py",
        addr,
        ClientTls::Plain,
        None,
        ALICE,
        PASSWORD,
        &[action, &uid],
    );
    assert!(ok, "imaplib {action}: {err}");
    out
}

/// The keywords a direct imaplib client sees on INBOX UID 1.
fn direct_flags() -> Vec<String> {
    imaplib(dovecot().imap_addr(), "flags", 1)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn wait_direct_keyword(present: bool) {
    wait_for(
        &format!("$CRM_Tracked present={present}, seen directly"),
        || {
            let has = direct_flags().iter().any(|f| f == "$CRM_Tracked");
            (has == present).then_some(())
        },
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pane_follows_the_mail_client_tracks_adds_a_contact_and_untracks_upstream() {
    let dv = dovecot();
    dv.fill_inbox(
        ALICE,
        std::iter::once(message(
            MID,
            "Proposal for the new fleet",
            "Cc: Nancy Davolio <nancy.davolio@contoso.example>\r\n",
        )),
    );
    let p = Proxy::start_with(
        dv,
        ProxyOptions {
            pane: true,
            ..Default::default()
        },
    );
    let pane = p.pane.expect("the pane listens");
    let origin = format!("https://localhost:{}", pane.port());
    let pin = spki_pin(&p.data_dir.join("certs").join("localhost.pem"));
    let driver = Driver::start(&pin).await;
    driver.size(350, 900).await;

    // Sign in with a one-time link; nothing opened yet.
    let token = crmproxy::pane::link::issue(&p.data_dir, ALICE).unwrap();
    driver
        .goto(&format!("{origin}/signin/link?token={token}"))
        .await;
    driver.wait_for_url(|u| u.ends_with('/')).await;
    driver.goto(&format!("{origin}/current")).await;
    driver.wait_for_text("main", "No message opened yet").await;

    // A client syncing the folder (a FETCH of every message) opens nothing.
    tokio::task::block_in_place(|| {
        let mut sync = common::RawImap::login(p.imap, ALICE, PASSWORD);
        assert!(sync.cmd("SELECT INBOX").ok());
        let r = sync.cmd("UID FETCH 1:* (UID BODY.PEEK[])");
        assert!(r.ok() && r.text().contains(MID), "{}", r.tagged);
    });
    driver.goto(&format!("{origin}/current")).await;
    driver.wait_for_text("main", "No message opened yet").await;

    // The mail client opens the message through the proxy: the pane follows (SSE).
    let out = tokio::task::block_in_place(|| imaplib(p.imap, "open", 1));
    assert!(out.starts_with("fetched "), "{out}");
    let main = driver.wait_for_text("main", MID).await;
    assert!(
        main.contains("Not tracked") && main.contains("Proposal for the new fleet"),
        "{main}"
    );
    // Sender and recipients with what they are in the CRM (Nancy is a contact).
    for who in [
        "dana@customer.example",
        "owner@crm-test.example",
        "Nancy Davolio",
    ] {
        assert!(main.contains(who), "{who}: {main}");
    }
    assert!(main.contains("Contact"), "{main}");
    assert!(
        !tokio::task::block_in_place(direct_flags).contains(&"$CRM_Tracked".to_string()),
        "not tracked yet"
    );
    driver.screenshot("e2e-current-350.png").await;
    driver.size(1280, 900).await;
    driver.screenshot("e2e-current-1280.png").await;
    driver.size(350, 900).await;

    // Set Regarding through search: accounts, Contoso.
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
    driver.screenshot("e2e-set-regarding-350.png").await;
    driver.click("ul.pick form button").await;
    driver.wait_for_url(|u| u.contains("/message?id=")).await;
    driver.wait_for_text("main", "Regarding set.").await;

    // The sync worker fetches it and marks it upstream: a direct client sees it.
    tokio::task::block_in_place(|| wait_direct_keyword(true));
    driver.goto(&format!("{origin}/current")).await;
    let main = driver.wait_for_text("main", "Tracked regarding").await;
    assert!(main.contains("Contoso Pharmaceuticals"), "{main}");
    driver.screenshot("e2e-tracked-350.png").await;
    driver.size(1280, 900).await;
    driver.screenshot("e2e-tracked-1280.png").await;
    driver.size(350, 900).await;

    // "+ Add as contact" for the unknown sender: tracked regarding the new contact.
    driver
        .click("a.add[href*='kind=contact'][href*='dana%40customer.example']")
        .await;
    driver.wait_for_url(|u| u.contains("/people/new")).await;
    assert_eq!(
        driver
            .script("return document.querySelector('#last_name').value")
            .await,
        "Sender"
    );
    driver.screenshot("e2e-add-contact-350.png").await;
    driver.click("main form button.primary").await;
    let main = driver.wait_for_text("main", "Contact created").await;
    assert!(main.contains("Tracked regarding"), "{main}");
    assert!(main.contains("Dana Sender"), "{main}");

    // Untrack: the tracking record goes, and so does the keyword on the server.
    driver.click("form[action='/untrack'] button").await;
    let main = driver.wait_for_text("main", "No longer tracked").await;
    assert!(
        main.contains("being removed from the message on the mail server"),
        "{main}"
    );
    tokio::task::block_in_place(|| wait_direct_keyword(false));
    driver.screenshot("e2e-untracked-350.png").await;
    driver.size(1280, 900).await;
    driver.screenshot("e2e-untracked-1280.png").await;

    // Carol, Alice's delegate, opens another message of Alice's mailbox in her mail
    // client (SASL PLAIN with authzid = alice) and follows it in her pane, acting
    // for Alice's mailbox.
    tokio::task::block_in_place(|| {
        let dv = dovecot();
        let mut direct = common::RawImap::login(dv.imap_addr(), ALICE, PASSWORD);
        let m = message(DELEGATED_MID, "Contract draft for Alice", "");
        assert!(direct.append("INBOX", &m).ok());
    });
    driver.click("form.signout button").await;
    driver.wait_for_url(|u| u.contains("/signin")).await;
    let token = crmproxy::pane::link::issue(&p.data_dir, CAROL).unwrap();
    driver
        .goto(&format!("{origin}/signin/link?token={token}"))
        .await;
    driver.wait_for_url(|u| u.ends_with('/')).await;
    driver.goto(&format!("{origin}/mailbox")).await;
    driver
        .click(&format!(
            "form input[name='owner'][value='{ALICE}'] ~ button"
        ))
        .await;
    driver.wait_for_url(|u| u.ends_with('/')).await;
    driver.goto(&format!("{origin}/current")).await;
    driver.wait_for_text("body", "You are acting for").await;
    let mut delegate = tokio::task::block_in_place(|| {
        let mut c = common::RawImap::connect(p.imap).unwrap();
        let ir = base64::engine::general_purpose::STANDARD.encode(format!(
            "{ALICE}\0{CAROL}\0{}",
            common::dovecot::MASTER_PASSWORD
        ));
        let r = c.cmd(&format!("AUTHENTICATE PLAIN {ir}"));
        assert!(r.ok(), "{}", r.tagged);
        assert!(c.cmd("SELECT INBOX").ok());
        // As a client fetching MIME parts on demand: the header and the first part.
        let r = c.cmd("UID FETCH 2 (BODY.PEEK[HEADER] BODY[1])");
        assert!(r.ok(), "{}", r.tagged);
        c
    });
    let main = driver
        .wait_for_text("main", "Contract draft for Alice")
        .await;
    assert!(main.contains(DELEGATED_MID), "{main}");
    let banner = driver.text("div.banner.delegate").await;
    assert!(
        banner.contains("You are acting for Alice") && banner.contains("recorded as yours"),
        "{banner}"
    );
    driver.size(350, 900).await;
    driver.screenshot("e2e-delegate-350.png").await;
    driver.size(1280, 900).await;
    driver.screenshot("e2e-delegate-1280.png").await;
    tokio::task::block_in_place(|| delegate.cmd("LOGOUT"));

    // Alice signs in with her mailbox password (checked against Dovecot) and adds an
    // email template to an email: the draft, addressed to the current message's
    // sender, is in her Drafts folder for any IMAP client.
    driver.click("form.signout button").await;
    driver.wait_for_url(|u| u.contains("/signin")).await;
    driver.goto(&format!("{origin}/signin")).await;
    driver.type_into("#user", ALICE).await;
    driver.type_into("#password", PASSWORD).await;
    driver.click("form[action='/signin'] button.primary").await;
    driver.wait_for_url(|u| u.ends_with('/')).await;
    driver.goto(&format!("{origin}/documents")).await;
    driver
        .click("a[href='/compose?doc=0193a1b2-c3d4-7017-8000-000000000017']")
        .await;
    driver.wait_for_url(|u| u.contains("/compose?doc=")).await;
    assert_eq!(
        driver
            .script("return document.querySelector('#to').value")
            .await,
        "dana@customer.example"
    );
    driver.click("main form button.primary").await;
    driver.wait_for_text("main", "Draft saved in Drafts").await;
    let drafts = tokio::task::block_in_place(|| {
        let mut direct = common::RawImap::login(dovecot().imap_addr(), ALICE, PASSWORD);
        assert!(direct.cmd("SELECT Drafts").ok());
        direct.cmd("UID FETCH 1:* (FLAGS BODY.PEEK[])").text()
    });
    assert!(drafts.contains("\\Draft"), "{drafts}");
    assert!(
        drafts.contains("Subject: Thank you for your time, Dana"),
        "{drafts}"
    );
    assert!(drafts.contains("dana@customer.example"), "{drafts}");

    // No CSP violation or script error on the way.
    let console = driver.console().await;
    let problems: Vec<_> = console
        .iter()
        .filter(|m| m.contains("SEVERE") || m.contains("Content Security Policy"))
        .collect();
    assert!(problems.is_empty(), "browser console: {problems:?}");
    driver.quit().await;
    drop(driver);

    // The CRM (asked through serve's admin socket) has the new contact.
    let found = tracking_support::crm(&p.data_dir, &["search", "Dana Sender", "--type", "contact"]);
    assert!(
        found.contains("Dana"),
        "the new contact is in the CRM: {found}"
    );
}
