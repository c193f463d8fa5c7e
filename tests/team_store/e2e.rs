//! End to end: real `serve` processes on one PostgreSQL and the private Dovecot:
//! a keyword tracked through alice's proxy reaches bob's pane (curl, Chromium), a CLI
//! grant reaches both proxies, a database that goes away.

use super::*;
use crate::common::{dovecot, unique_user, Proxy, ProxyOptions};
use crate::tracking_support::{add_user, crm, message, wait_for, wait_keyword};
use std::io::BufRead;
use std::process::Stdio;

/// A `serve` on the team's CRM at `url` (pane on when asked).
fn proxy_on(url: &str, pane: bool) -> Proxy {
    Proxy::start_with(
        dovecot(),
        ProxyOptions {
            config_toml: Some(format!(
                "[tracking]\nload_demo_on_first_run = false\n[store]\nurl = \"{url}\"\n"
            )),
            pane,
            ..Default::default()
        },
    )
}

fn login(prefix: &str) -> String {
    format!("{}@crm-test.example", unique_user(prefix))
}

/// `curl` against a proxy's pane, with a cookie jar in its data dir.
fn curl(p: &Proxy) -> Command {
    let mut c = Command::new("curl");
    c.arg("-sS")
        .arg("--cacert")
        .arg(p.ca_file())
        .arg("-b")
        .arg(p.data_dir.join("jar"))
        .arg("-c")
        .arg(p.data_dir.join("jar"));
    c
}

fn pane_base(p: &Proxy) -> String {
    format!("https://localhost:{}", p.pane.expect("pane on").port())
}

/// Sign `user` in to `p`'s pane with a one-time link.
fn sign_in(p: &Proxy, user: &str) {
    let link = crm(&p.data_dir, &["pane-url", "--user", user]);
    let link = link.trim().replace(
        &format!("https://localhost:{}", p.pane.unwrap().port()),
        &pane_base(p),
    );
    let o = curl(p)
        .arg("-o")
        .arg("/dev/null")
        .arg(&link)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// The pane's live events, line by line, from a `curl -N` child; returns once
/// the stream is open (its response head came: the pane subscribes before it
/// answers), so that no change made after this is missed.
fn events(p: &Proxy) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut child = curl(p)
        .arg("-N")
        .arg("-i")
        .arg(format!("{}/events", pane_base(p)))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = std::time::Instant::now() + PATIENCE;
    let mut head = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.trim().is_empty() => break,
            Ok(l) => head.push(l),
            Err(e) => panic!("/events did not answer ({e}): {head:?}"),
        }
    }
    assert!(
        head.first().is_some_and(|l| l.contains(" 200")),
        "/events: {head:?}"
    );
    (child, rx)
}

/// How long what the proxies do may take before a test fails.
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// alice's proxy tracks a message by keyword; bob's pane (alice's delegate),
/// on another proxy, hears that carol's record changed and its page shows the
/// activity.
/// Two proxies on one team CRM: alice's (no pane) and bob's (pane on), bob
/// alice's delegate (her mail is private: regarding nothing), contact carol.
struct Team {
    a: Proxy,
    b: Proxy,
    alice: String,
    bob: String,
    carol: String,
}

fn team() -> Team {
    let url = pg::fresh_db();
    let a = proxy_on(&url, false);
    let b = proxy_on(&url, true);
    // Each proxy hears the other's changes once its listener runs (it starts
    // beside the listeners the proxy reports, not before them).
    pg::postgres().wait_listeners(&url, "crm_changes", 2);
    let (alice, bob) = (login("alice"), login("bob"));
    add_user(&a.data_dir, &alice, true);
    add_user(&b.data_dir, &bob, true);
    crm(&b.data_dir, &["user", "delegate", &alice, &bob]);
    let csv = a.data_dir.join("carol.csv");
    std::fs::write(
        &csv,
        "First Name,Last Name,Display Name,Primary Email\nCarol,Fabré,Carol Fabré,carol@fabrikam.example\n",
    )
    .unwrap();
    crm(
        &a.data_dir,
        &["import", csv.to_str().unwrap(), "--kind", "contacts"],
    );
    let hits = json(&crm(&b.data_dir, &["search", "carol", "--json"]));
    let carol = hits[0]["id"].as_str().unwrap().to_owned();
    Team {
        a,
        b,
        alice,
        bob,
        carol,
    }
}

impl Team {
    /// A message from carol, tracked by keyword through alice's proxy.
    fn alice_tracks(&self, subject: &str) {
        let m = message(
            &format!("{}@fabrikam.example", unique_user("team")),
            subject,
            "",
        );
        let m = String::from_utf8(m).unwrap().replacen(
            "From: ",
            "From: Carol Fabre <carol@fabrikam.example>\r\nX-Old-From: ",
            1,
        );
        let mut direct = RawImapOf::direct(&self.alice);
        assert!(direct.append("INBOX", m.as_bytes()).ok());
        let mut c =
            crate::common::RawImap::login(self.a.imap, &self.alice, crate::common::PASSWORD);
        assert!(c.cmd("SELECT INBOX").ok());
        assert!(c.cmd("UID STORE 1 +FLAGS ($CRM_Track)").ok());
        wait_keyword(&mut direct, "INBOX", 1, "$CRM_Tracked", true);
    }
}

/// alice's proxy tracks a message by keyword; bob's pane (alice's delegate),
/// on another proxy, hears that carol's record changed and its page shows the
/// activity.
#[test]
fn a_message_alices_proxy_tracks_shows_on_bobs_pane() {
    let t = team();
    let b = &t.b;
    sign_in(b, &t.bob);
    let page = |id: &str| {
        let o = curl(b)
            .arg(format!("{}/record/{id}", pane_base(b)))
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let before = page(&t.carol);
    assert!(before.contains("Carol Fabré"), "{before}");
    assert!(!before.contains("Team quote"), "{before}");
    let (mut sse, lines) = events(b);
    t.alice_tracks("Team quote");

    // bob's pane hears it live, from the other process.
    let deadline = std::time::Instant::now() + PATIENCE;
    let mut heard = false;
    while std::time::Instant::now() < deadline && !heard {
        if let Ok(l) = lines.recv_timeout(std::time::Duration::from_millis(200)) {
            heard = l.starts_with("data:") && l.contains("crm-changed") && l.contains(&t.carol);
        }
    }
    let _ = sse.kill();
    let _ = sse.wait();
    assert!(heard, "bob's pane never heard of carol's new activity");
    let after = page(&t.carol);
    assert!(after.contains("Team quote"), "{after}");
}

/// The same in Chromium: bob's open record page reloads by itself when
/// alice's proxy files an activity on it.
#[tokio::test(flavor = "multi_thread")]
async fn bobs_record_page_in_chromium_shows_alices_activity_by_itself() {
    use crate::browser_support::{spki_pin, Driver};
    let t = tokio::task::spawn_blocking(team).await.unwrap();
    let link = crm(&t.b.data_dir, &["pane-url", "--user", &t.bob]);
    let pin = spki_pin(&t.b.data_dir.join("certs").join("localhost.pem"));
    let driver = Driver::start(&pin).await;
    driver.note_live_open().await;
    driver.goto(link.trim()).await;
    driver
        .goto(&format!("{}/record/{}", pane_base(&t.b), t.carol))
        .await;
    driver.wait_for_text("main", "No activity yet").await;
    // The page's live connection open before the change (a change made before
    // it is not heard).
    driver.wait_live_open().await;
    let t = tokio::task::spawn_blocking(move || {
        t.alice_tracks("Chromium quote");
        t
    })
    .await
    .unwrap();
    let text = driver.wait_for_text("main", "Chromium quote").await;
    assert!(text.contains("Carol Fabré"), "{text}");
    driver.quit().await;
    drop(t);
}

/// A direct session to the private Dovecot.
struct RawImapOf;
impl RawImapOf {
    fn direct(user: &str) -> crate::common::RawImap {
        crate::common::RawImap::login(dovecot().imap_addr(), user, crate::common::PASSWORD)
    }
}

/// A grant made with the CLI while both proxies run takes effect on both.
#[test]
fn a_cli_grant_while_both_proxies_run_takes_effect_on_both() {
    let url = pg::fresh_db();
    let a = proxy_on(&url, false);
    let b = proxy_on(&url, false);
    let dana = login("dana");
    add_user(&a.data_dir, &dana, false);
    let track_on = |p: &Proxy, n: u32| {
        let m = message(
            &format!("{}@grant.example", unique_user("g")),
            &format!("Grant test {n}"),
            "",
        );
        let mut direct = RawImapOf::direct(&dana);
        assert!(direct.append("INBOX", &m).ok());
        let mut c = crate::common::RawImap::login(p.imap, &dana, crate::common::PASSWORD);
        assert!(c.cmd("SELECT INBOX").ok());
        let r = c.cmd(&format!("UID STORE {n} +FLAGS ($CRM_Track)"));
        (r, direct)
    };
    // Without use_app: refused on both.
    let (r, _) = track_on(&a, 1);
    assert!(!r.ok(), "{}", r.tagged);
    let (r, _) = track_on(&b, 2);
    assert!(!r.ok(), "{}", r.tagged);
    // Granted by the CLI (a third process) while both run.
    let o = run(&a.data_dir, &url, &["user", "grant", &dana, "use_app"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for (p, uid) in [(&a, 3), (&b, 4)] {
        let (r, mut direct) = track_on(p, uid);
        assert!(r.ok(), "{}", r.tagged);
        wait_keyword(&mut direct, "INBOX", uid, "$CRM_Tracked", true);
    }
}

/// The database goes away: tracking fails with a clear error, and the IMAP
/// sessions keep passing mail through.
#[test]
fn a_database_that_goes_away_gets_a_clear_error_and_mail_still_flows() {
    let url = pg::fresh_db();
    let a = proxy_on(&url, false);
    let erin = login("erin");
    add_user(&a.data_dir, &erin, true);
    let m1 = message(&format!("{}@gone.example", unique_user("g")), "Before", "");
    let mut direct = RawImapOf::direct(&erin);
    assert!(direct.append("INBOX", &m1).ok());
    let mut c = crate::common::RawImap::login(a.imap, &erin, crate::common::PASSWORD);
    assert!(c.cmd("SELECT INBOX").ok());

    // No new connections to it, and the ones it has are cut.
    let db = url
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    pg::postgres()
        .admin_sql(&format!(
            "ALTER DATABASE {db} ALLOW_CONNECTIONS false;
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}';"
        ))
        .unwrap();
    // Mail still flows through the proxy.
    let r = c.cmd("UID FETCH 1 (BODY.PEEK[])");
    assert!(r.ok(), "{}", r.tagged);
    let m2 = message(&format!("{}@gone.example", unique_user("g")), "During", "");
    assert!(c.append("INBOX", &m2).ok());
    let mut fresh = crate::common::RawImap::login(a.imap, &erin, crate::common::PASSWORD);
    assert!(fresh.cmd("SELECT INBOX").ok());
    assert!(fresh.cmd("UID FETCH 2 (BODY.PEEK[])").ok());
    // Tracking says why it cannot, and the proxy's log names the database.
    let r = c.cmd("UID STORE 1 +FLAGS ($CRM_Track)");
    let said = format!("{} {}", r.tagged, a.stderr());
    assert!(said.contains("PostgreSQL CRM"), "{said}");
    let o = run(&a.data_dir, &url, &["search", "x"]);
    assert_eq!(o.status.code(), Some(3));
    pg::postgres()
        .admin_sql(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true"))
        .unwrap();
    // Back: tracking works again.
    wait_for("tracking after the database came back", || {
        let r = c.cmd("UID STORE 2 +FLAGS ($CRM_Track)");
        r.ok().then_some(())
    });
    wait_keyword(&mut direct, "INBOX", 2, "$CRM_Tracked", true);
}
