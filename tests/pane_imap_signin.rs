//! Sign-in to the pane with the mailbox's own credentials, checked against a real IMAP
//! server: a private Dovecot 2.3 started for this test (its own config, ports and
//! certificate from a test CA), over implicit TLS, STARTTLS and plain. Passwords with
//! quotes, backslashes, spaces (quoted string) and non-ASCII (literal) are tested, as
//! are wrong passwords, an unreachable server, an untrusted certificate, and that the
//! password never reaches the log.

mod pane_util;

use crmproxy::config::{Config, UpstreamTls};
use pane_util::TestPane;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

const ALICE: &str = "alice@example.test";
const ALICE_PW: &str = r#"pa"ss\w rd"#;
const BOB: &str = "bob@example.test";
const BOB_PW: &str = "pässwörd";
/// A mailbox whose CRM user lacks `use_app` (the demo's dave).
const DAVE: &str = "dave@example.test";
const DAVE_PW: &str = "dave-pw";
/// An IMAP user name that is not an address, given to the demo's alice.
const JSMITH: &str = "jsmith";
const JSMITH_PW: &str = "js-pw";

/// A private Dovecot on two loopback ports; killed (by its own pid) when dropped.
struct Dovecot {
    dir: tempfile::TempDir,
    child: Child,
    imap_port: u16,
    imaps_port: u16,
    ca: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn dovecot_binary() -> PathBuf {
    for p in ["/usr/sbin/dovecot", "/usr/local/sbin/dovecot"] {
        if std::path::Path::new(p).exists() {
            return p.into();
        }
    }
    panic!("dovecot is not installed: run tests/run, or apt-get install dovecot-imapd");
}

fn whoami() -> (String, String, bool) {
    let out = |args: &[&str]| {
        let o = Command::new("id").args(args).output().unwrap();
        String::from_utf8(o.stdout).unwrap().trim().to_owned()
    };
    let uid = out(&["-u"]);
    (out(&["-un"]), out(&["-gn"]), uid == "0")
}

impl Dovecot {
    fn start() -> Dovecot {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Dovecot's unprivileged processes must traverse the directory.
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::create_dir(d.join("mail")).unwrap();
            std::fs::set_permissions(d.join("mail"), std::fs::Permissions::from_mode(0o1777))
                .unwrap();
        }
        let (paths, _) = crmproxy::tls::ensure_certs_in(&d.join("certs"), 30).unwrap();
        let mut passwd = std::fs::File::create(d.join("passwd")).unwrap();
        writeln!(passwd, "{ALICE}:{{PLAIN}}{ALICE_PW}::::::").unwrap();
        writeln!(passwd, "{BOB}:{{PLAIN}}{BOB_PW}::::::").unwrap();
        writeln!(passwd, "{DAVE}:{{PLAIN}}{DAVE_PW}::::::").unwrap();
        writeln!(passwd, "{JSMITH}:{{PLAIN}}{JSMITH_PW}::::::").unwrap();
        let (user, group, root) = whoami();
        let (internal, login, mail_uid, mail_gid) = if root {
            (
                "dovecot",
                "dovenull",
                "nobody".to_string(),
                "nogroup".to_string(),
            )
        } else {
            ("", "", user.clone(), group.clone())
        };
        let (imap_port, imaps_port) = (free_port(), free_port());
        let users = if root {
            format!("default_internal_user = {internal}\ndefault_login_user = {login}\n")
        } else {
            format!("default_internal_user = {user}\ndefault_login_user = {user}\n")
        };
        let conf = format!(
            r#"base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
{users}ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = {d}/passwd
}}
userdb {{
  driver = static
  args = uid={mail_uid} gid={mail_gid} home={d}/mail/%u
}}
mail_location = maildir:~/Maildir
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
"#,
            d = d.display(),
            cert = paths.cert.display(),
            key = paths.key.display(),
        );
        std::fs::write(d.join("dovecot.conf"), conf).unwrap();
        let child = Command::new(dovecot_binary())
            .arg("-F")
            .arg("-c")
            .arg(d.join("dovecot.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dovecot starts");
        let mut dv = Dovecot {
            ca: paths.ca_cert.clone(),
            dir,
            child,
            imap_port,
            imaps_port,
        };
        for _ in 0..200 {
            let up = |p| std::net::TcpStream::connect(("127.0.0.1", p)).is_ok();
            if up(imap_port) && up(imaps_port) {
                return dv;
            }
            if let Ok(Some(status)) = dv.child.try_wait() {
                let log =
                    std::fs::read_to_string(dv.dir.path().join("dovecot.log")).unwrap_or_default();
                panic!("dovecot exited with {status}: {log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("dovecot did not open its ports");
    }

    /// Point `cfg.upstream` at this server in the given TLS mode.
    fn configure(&self, cfg: &mut Config, tls: UpstreamTls) {
        cfg.upstream.host = "localhost".into();
        cfg.upstream.tls = tls;
        cfg.upstream.port = match tls {
            UpstreamTls::Implicit => self.imaps_port,
            _ => self.imap_port,
        };
        cfg.upstream.ca_file = Some(self.ca.clone());
        cfg.upstream.connect_timeout_secs = 10;
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Everything the pane logs in this test binary.
fn captured_log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || LogWriter(writer.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        buf
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);
impl Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn pane_for(dv: &Dovecot, tls: UpstreamTls) -> TestPane {
    TestPane::start_with(|cfg| dv.configure(cfg, tls)).await
}

/// Open the form, post the credentials; returns the response and the client.
async fn sign_in(
    pane: &TestPane,
    user: &str,
    password: &str,
    next: &str,
) -> (pane_util::Resp, pane_util::Client) {
    let mut c = pane.client();
    let form = c.get(&format!("/signin?next={next}")).await;
    assert_eq!(form.status, 200);
    let csrf = form.csrf();
    let anonymous = c.session.clone();
    let r = c
        .post_form(
            "/signin",
            &[
                ("user", user),
                ("password", password),
                ("csrf", &csrf),
                ("next", next),
            ],
        )
        .await;
    if r.status == 303 {
        assert_ne!(c.session, anonymous, "the session id changes at sign-in");
    }
    (r, c)
}

#[tokio::test]
async fn mailbox_credentials_sign_in_over_every_upstream_tls_mode() {
    let log = captured_log();
    let dv = Dovecot::start();
    for mode in [
        UpstreamTls::Implicit,
        UpstreamTls::Starttls,
        UpstreamTls::Plain,
    ] {
        let pane = pane_for(&dv, mode).await;
        for (user, pw) in [(ALICE, ALICE_PW), (BOB, BOB_PW)] {
            let (r, mut c) = sign_in(&pane, user, pw, "/current").await;
            assert_eq!(r.status, 303, "{mode:?} {user}: {}", r.text());
            assert_eq!(r.header("location").as_deref(), Some("/current"));
            let page = c.get("/current").await;
            assert_eq!(page.status, 200);
            assert!(page.text().contains(user));
        }
        let (r, mut c) = sign_in(&pane, ALICE, "wrong password", "/").await;
        assert_eq!(r.status, 401, "{mode:?}");
        assert!(r
            .text()
            .contains("did not accept this e-mail address and password"));
        assert!(r.text().contains(ALICE), "the address is kept in the form");
        assert!(
            !r.text().contains("wrong password"),
            "the password is not echoed"
        );
        assert_eq!(c.get("/").await.status, 303, "still signed out");
        // The right mailbox password, but no `use_app` in the CRM: a clear refusal.
        let (r, mut c) = sign_in(&pane, DAVE, DAVE_PW, "/").await;
        assert_eq!(r.status, 403, "{mode:?}");
        assert!(r.text().contains("Use the app"), "{}", r.text());
        assert_eq!(c.get("/").await.status, 303, "still signed out");
    }
    let log = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    assert!(
        log.contains("signed in to the pane"),
        "the log is captured: {log}"
    );
    for secret in [ALICE_PW, BOB_PW, DAVE_PW, "wrong password"] {
        assert!(!log.contains(secret), "password in the log");
    }
}

#[tokio::test]
async fn unreachable_or_untrusted_upstream_is_a_clear_refusal() {
    let dv = Dovecot::start();
    // Nothing listens on this port.
    let closed = free_port();
    let pane = TestPane::start_with(|cfg| {
        dv.configure(cfg, UpstreamTls::Implicit);
        cfg.upstream.port = closed;
    })
    .await;
    let (r, mut c) = sign_in(&pane, ALICE, ALICE_PW, "/").await;
    assert_eq!(r.status, 502);
    assert!(
        r.text().contains("Could not check the password"),
        "{}",
        r.text()
    );
    assert!(
        r.text().contains("cannot reach the mail server"),
        "{}",
        r.text()
    );
    assert_eq!(c.get("/").await.status, 303);

    // The server's certificate is not from a CA we trust: no password is sent.
    let other_ca = tempfile::tempdir().unwrap();
    let (paths, _) = crmproxy::tls::ensure_certs_in(other_ca.path(), 30).unwrap();
    let pane = TestPane::start_with(|cfg| {
        dv.configure(cfg, UpstreamTls::Implicit);
        cfg.upstream.ca_file = Some(paths.ca_cert.clone());
    })
    .await;
    let (r, _) = sign_in(&pane, ALICE, ALICE_PW, "/").await;
    assert_eq!(r.status, 502);
    assert!(r.text().contains("TLS handshake failed"), "{}", r.text());
    let log = std::fs::read_to_string(dv.dir.path().join("dovecot.log")).unwrap_or_default();
    assert!(
        !log.contains("Login: user="),
        "no credentials reached the server: {log}"
    );
}

#[tokio::test]
async fn nul_in_a_password_is_refused_before_any_connection() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = pane_util::config_in(dir.path(), 0);
    cfg.upstream.port = free_port();
    let err = crmproxy::pane::imap_login::check_credentials(&cfg.upstream, ALICE, "a\0b")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("NUL"), "{err}");
}

/// Read IMAP lines (and literals) until the tagged response of `tag`.
fn imap_until(s: &mut std::io::BufReader<std::net::TcpStream>, tag: &str) -> String {
    use std::io::{BufRead, Read};
    let mut out = String::new();
    loop {
        let mut line = String::new();
        assert!(s.read_line(&mut line).unwrap() > 0, "closed: {out}");
        out.push_str(&line);
        if let Some(n) = line
            .trim_end()
            .strip_suffix('}')
            .and_then(|l| l.rsplit_once('{'))
            .and_then(|(_, n)| n.parse::<usize>().ok())
        {
            let mut buf = vec![0; n];
            s.read_exact(&mut buf).unwrap();
            out.push_str(&String::from_utf8_lossy(&buf));
            continue;
        }
        if line.starts_with(&format!("{tag} ")) {
            return out;
        }
    }
}

/// The messages of `folder` in `user`'s mailbox, read by another IMAP client.
fn drafts_of(dv: &Dovecot, user: &str, password: &str, folder: &str) -> String {
    use std::io::Write as _;
    let tcp = std::net::TcpStream::connect(("127.0.0.1", dv.imap_port)).unwrap();
    let mut w = tcp.try_clone().unwrap();
    let mut r = std::io::BufReader::new(tcp);
    let mut greeting = String::new();
    std::io::BufRead::read_line(&mut r, &mut greeting).unwrap();
    let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    write!(w, "a LOGIN {} {}\r\n", q(user), q(password)).unwrap();
    assert!(imap_until(&mut r, "a").contains("a OK"));
    write!(w, "b SELECT {}\r\n", q(folder)).unwrap();
    let sel = imap_until(&mut r, "b");
    if !sel.contains("b OK") {
        return String::new();
    }
    write!(w, "c UID FETCH 1:* (FLAGS BODY.PEEK[])\r\nd LOGOUT\r\n").unwrap();
    imap_until(&mut r, "c")
}

#[tokio::test]
async fn add_to_email_saves_the_filled_template_as_a_draft_tracked_regarding_the_record() {
    use crmproxy::pane::MessageOpened;
    use crmproxy::store::{MessageId, TrackStatus, UserId};
    const TEMPLATE: &str = "0193a1b2-c3d4-7017-8000-000000000017";
    const LITERATURE: &str = "0193a1b2-c3d4-701a-8000-00000000001a";
    let dv = Dovecot::start();
    let pane = pane_for(&dv, UpstreamTls::Implicit).await;
    let (r, mut alice) = sign_in(&pane, ALICE, ALICE_PW, "/").await;
    assert_eq!(r.status, 303, "{}", r.text());
    let mut ev = MessageOpened::new("demo-0001@mail.contoso.example");
    ev.from = Some("Nancy Davolio <nancy.davolio@contoso.example>".into());
    pane.events.publish_opened(ALICE, ev);

    let t = alice.get("/documents").await.text();
    assert!(t.contains(&format!("/compose?doc={TEMPLATE}")), "{t}");
    let page = alice.get(&format!("/compose?doc={TEMPLATE}")).await;
    let t = page.text();
    assert!(t.contains("Thank you for your time, Nancy"), "{t}");
    assert!(
        t.contains("Dear Nancy,") && t.contains("Alice Example"),
        "{t}"
    );
    assert!(!t.contains("{{"), "every placeholder filled: {t}");
    let csrf = page.csrf();
    let regarding = "opportunity:0193a1b2-c3d4-7010-8000-000000000010";
    assert!(t.contains(regarding), "{t}");
    let r = alice
        .post_form(
            "/compose",
            &[
                ("csrf", &csrf),
                ("to", "nancy.davolio@contoso.example"),
                ("subject", "Thank you for your time, Nancy"),
                ("body", "Dear Nancy,\nthank you.\nAlice Example"),
                ("regarding", regarding),
                ("literature", LITERATURE),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let t = r.text();
    assert!(
        t.contains("Draft saved in Drafts") && t.contains("Track pending"),
        "{t}"
    );
    let i = t.find("class=\"mono\">").unwrap() + 13;
    let mid = t[i..i + t[i..].find('<').unwrap()].to_owned();

    // Another IMAP client finds the draft, addressed and filled, with the brochure.
    let drafts = drafts_of(&dv, ALICE, ALICE_PW, "Drafts");
    assert!(drafts.contains("\\Draft"), "{drafts}");
    assert!(
        drafts.contains("To: <nancy.davolio@contoso.example>")
            || drafts.contains("To: nancy.davolio@contoso.example"),
        "{drafts}"
    );
    assert!(
        drafts.contains("Subject: Thank you for your time, Nancy"),
        "{drafts}"
    );
    assert!(drafts.contains("contoso-product-overview.txt"), "{drafts}");
    assert!(drafts.contains(&mid), "{drafts}");

    // A knowledge article goes into an email the same way: its text in the body.
    let article = "0193a1b2-c3d4-701c-8000-00000000001c";
    let page = alice.get(&format!("/compose?doc={article}")).await;
    let t = page.text();
    assert!(t.contains("Share → Export → PDF"), "{t}");
    let r = alice
        .post_form(
            "/compose",
            &[
                ("csrf", &page.csrf()),
                ("to", "nancy.davolio@contoso.example"),
                ("subject", "How to export a dashboard as PDF"),
                ("body", "Open the dashboard, choose Share, Export, PDF."),
                ("regarding", regarding),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let drafts = drafts_of(&dv, ALICE, ALICE_PW, "Drafts");
    assert!(
        drafts.contains("Subject: How to export a dashboard as PDF")
            && drafts.contains("Open the dashboard, choose Share, Export, PDF."),
        "{drafts}"
    );

    // The regarding is attached as a pending tracking request where the draft is.
    let alice_id =
        UserId::from_uuid(uuid::Uuid::parse_str("0193a1b2-c3d4-7001-8000-000000000001").unwrap());
    let rec = pane
        .store
        .tracking(alice_id, &MessageId::parse(&mid).unwrap())
        .unwrap()
        .expect("a tracking request");
    assert_eq!(rec.status, TrackStatus::Pending);
    assert_eq!(
        rec.regarding.map(|g| g.id.to_string()).as_deref(),
        Some("0193a1b2-c3d4-7010-8000-000000000010")
    );
    let loc = rec.location.expect("APPENDUID gave the place");
    assert_eq!(loc.folder, "Drafts");
    // The draft carries the tracking block for real, at the top of its header:
    // who asked, when, and the regarding asked for (no status: that is in keywords).
    let at = drafts
        .find("X-CRM-Tracked-By: alice@example.test\r\n")
        .expect("block in the draft");
    let block = &drafts[at..];
    assert!(block.contains("\r\nX-CRM-Tracked-At: 20"), "{drafts}");
    assert!(
        block.contains("\r\nX-CRM-Regarding: opportunity <0193a1b2-c3d4-7010-8000-000000000010>"),
        "{drafts}"
    );
    assert!(!drafts.contains("Track-Status"), "{drafts}");

    // Refused: a bad address, an over-long subject; nothing new in Drafts.
    let before = drafts_of(&dv, ALICE, ALICE_PW, "Drafts")
        .matches("FETCH (")
        .count();
    let long = "s".repeat(600);
    for fields in [
        vec![("to", "not an address"), ("subject", "x")],
        vec![("to", "a@b.example"), ("subject", long.as_str())],
        vec![
            ("to", "a@b.example"),
            ("subject", "x"),
            (
                "regarding",
                "email_template:0193a1b2-c3d4-7017-8000-000000000017",
            ),
        ],
    ] {
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend(fields);
        let r = alice.post_form("/compose", &all).await;
        assert_eq!(r.status, 400, "{all:?}: {}", r.text());
    }
    assert_eq!(
        drafts_of(&dv, ALICE, ALICE_PW, "Drafts")
            .matches("FETCH (")
            .count(),
        before
    );

    // Signed in by a one-time link: no password, a clear message, nothing saved.
    let mut bob = pane.signed_in(BOB).await;
    let page = bob.get(&format!("/compose?doc={TEMPLATE}")).await;
    assert!(page.text().contains("one-time link"), "{}", page.text());
    let csrf = page.csrf();
    let r = bob
        .post_form(
            "/compose",
            &[("csrf", &csrf), ("to", "a@b.example"), ("subject", "x")],
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("one-time link"));
    assert_eq!(drafts_of(&dv, BOB, BOB_PW, "Drafts"), "");
}

/// Run IMAP commands as `user` on the plain port and return everything read.
fn imap_run(dv: &Dovecot, user: &str, password: &str, commands: &[&str]) -> String {
    use std::io::Write as _;
    let tcp = std::net::TcpStream::connect(("127.0.0.1", dv.imap_port)).unwrap();
    let mut w = tcp.try_clone().unwrap();
    let mut r = std::io::BufReader::new(tcp);
    let mut greeting = String::new();
    std::io::BufRead::read_line(&mut r, &mut greeting).unwrap();
    let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    write!(w, "a LOGIN {} {}\r\n", q(user), q(password)).unwrap();
    let mut out = imap_until(&mut r, "a");
    for (i, c) in commands.iter().enumerate() {
        let tag = format!("c{i}");
        write!(w, "{tag} {c}\r\n").unwrap();
        out.push_str(&imap_until(&mut r, &tag));
    }
    let _ = write!(w, "z LOGOUT\r\n");
    out
}

#[tokio::test]
async fn set_regarding_in_the_pane_is_completed_by_the_sync_worker_and_seen_by_other_clients() {
    use crmproxy::pane::MessageOpened;
    use crmproxy::store::{MessageId, TrackStatus, UserId};
    let dv = Dovecot::start();
    let pane = pane_for(&dv, UpstreamTls::Implicit).await;
    // A message in Alice's INBOX, appended by another client.
    let raw = "From: Jane Doe <jane.doe@newco.example>\r\nTo: alice@example.test\r\n\
Subject: Seats for NewCo\r\nMessage-ID: <seats-1@newco.example>\r\n\
Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\nWe need 20 seats.\r\n";
    let out = imap_run(
        &dv,
        ALICE,
        ALICE_PW,
        &[
            &format!("APPEND INBOX {{{}+}}\r\n{raw}", raw.len()),
            "SELECT INBOX",
        ],
    );
    let validity: u32 = out
        .split("[UIDVALIDITY ")
        .nth(1)
        .and_then(|s| s.split(']').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    // The proxy saw Alice open it (folder, UIDVALIDITY, UID).
    let mut ev = MessageOpened::new("seats-1@newco.example");
    ev.from = Some("Jane Doe <jane.doe@newco.example>".into());
    ev.mailbox = Some("INBOX".into());
    ev.uid = Some(1);
    ev.uid_validity = Some(validity);
    pane.events.publish_opened(ALICE, ev);

    let mut alice = pane.signed_in(ALICE).await;
    let csrf = alice.get("/current").await.csrf();
    let r = alice
        .post_form(
            "/regarding",
            &[
                ("csrf", &csrf),
                ("message_id", "seats-1@newco.example"),
                ("regarding", "account:0193a1b2-c3d4-7005-8000-000000000005"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let alice_id =
        UserId::from_uuid(uuid::Uuid::parse_str("0193a1b2-c3d4-7001-8000-000000000001").unwrap());
    let mid = MessageId::parse("seats-1@newco.example").unwrap();
    assert_eq!(
        pane.store.tracking(alice_id, &mid).unwrap().unwrap().status,
        TrackStatus::Pending
    );

    // The sync worker (as `serve` runs it, with a short sweep interval) completes it.
    let engine = std::sync::Arc::new(
        crmproxy::track::Engine::new(pane.store.clone(), pane.cfg.tracking.clone()).unwrap(),
    );
    let connector =
        crmproxy::imap_client::connect::UpstreamConnector::new(&pane.cfg.upstream, 64 * 1024)
            .unwrap();
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let workers = crmproxy::sync::worker::Workers::new(
        engine,
        connector,
        pane.events.clone(),
        Duration::from_millis(200),
        stop_rx,
    );
    // An old password first (the worker cannot log in with it), then the new one
    // from a later session: the worker's next attempt uses the newest.
    for password in ["an-old-password", ALICE_PW] {
        workers.login(
            ALICE,
            crmproxy::proxy::Credential::Login {
                user: ALICE.as_bytes().to_vec(),
                password: password.as_bytes().to_vec(),
            },
        );
    }
    let mut tracked = false;
    for _ in 0..150 {
        let rec = pane.store.tracking(alice_id, &mid).unwrap().unwrap();
        if rec.status == TrackStatus::Tracked {
            tracked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(tracked, "the worker completed the pending request");
    let t = alice.get("/current").await.text();
    assert!(
        t.contains("Tracked regarding") && t.contains("Contoso Pharmaceuticals"),
        "{t}"
    );
    // Another IMAP client sees the tracked keyword.
    let mut flags = String::new();
    for _ in 0..50 {
        flags = imap_run(
            &dv,
            ALICE,
            ALICE_PW,
            &["SELECT INBOX", "UID FETCH 1 (FLAGS)"],
        );
        if flags.contains("$CRM_Tracked") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(flags.contains("$CRM_Tracked"), "{flags}");

    // Untrack in the pane: the tracking record goes.
    let r = alice
        .post_form(
            "/untrack",
            &[("csrf", &csrf), ("message_id", "seats-1@newco.example")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert!(pane.store.tracking(alice_id, &mid).unwrap().is_none());
}

/// A CRM user's IMAP user name that is not their address (`jsmith`) signs in to
/// the pane as that user; unknown names get the usual refusal.
#[tokio::test]
async fn an_imap_login_that_is_not_an_address_signs_in_as_its_crm_user() {
    let dv = Dovecot::start();
    let pane = pane_for(&dv, UpstreamTls::Plain).await;
    // Without the name in the CRM: the server accepts it, the CRM does not.
    let (r, _) = sign_in(&pane, JSMITH, JSMITH_PW, "/current").await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("not a CRM user"), "{}", r.text());
    let store = pane.store.clone();
    tokio::task::spawn_blocking(move || {
        let address = crmproxy::store::EmailAddress::parse(ALICE).unwrap();
        let mut alice = store.user_by_login(&address).unwrap().unwrap();
        alice.imap_logins.push(JSMITH.to_string());
        store
            .put_record(crmproxy::store::Record::User(alice))
            .unwrap();
    })
    .await
    .unwrap();
    let (r, mut c) = sign_in(&pane, JSMITH, JSMITH_PW, "/current").await;
    assert_eq!(r.status, 303, "{}", r.text());
    // The message alice's mailbox opened (its sessions publish under her
    // primary login) is the one jsmith's pane shows.
    let mut ev = crmproxy::pane::MessageOpened::new("<opened-by-jsmith@example.test>");
    ev.subject = Some("Opened as jsmith".into());
    pane.events.publish_opened(ALICE, ev);
    let page = c.get("/current").await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains("Opened as jsmith"), "{}", page.text());
}
