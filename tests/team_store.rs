//! One CRM for a team in PostgreSQL (issue 12): the real `crmproxy` binary's
//! commands straight against the database while another process has it open,
//! `store copy` from a personal sled store (exact, idempotent), the password from
//! an environment variable or a private file and never shown, two processes
//! tracking the same message at the same moment, `doctor`, live changes between
//! processes; and end to end, two `serve` processes on one PostgreSQL and the
//! private Dovecot (see `e2e` below).

mod browser_support;
mod common;
mod store_support;
mod tracking_support;

use crmproxy::store::*;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Barrier};
use store_support::{contact, email, pg, user};

fn crmproxy(data: &Path, store: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_crmproxy"));
    c.arg("--data-dir")
        .arg(data)
        .arg("--store")
        .arg(store)
        .args(args)
        .env_remove("CRMPROXY_CONFIG")
        .env_remove("CRMPROXY_STORE")
        .env_remove("CRMPROXY_STORE_PASSWORD")
        .env("RUST_LOG", "warn");
    c
}

fn run(data: &Path, store: &str, args: &[&str]) -> Output {
    crmproxy(data, store, args).output().unwrap()
}

fn ok(data: &Path, store: &str, args: &[&str]) -> String {
    let o = run(data, store, args);
    assert!(
        o.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

fn mail(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/mail")
        .join(name)
        .display()
        .to_string()
}

fn open(url: &str) -> PgStore {
    PgStore::open(&PgOptions::new(url)).unwrap()
}

#[test]
fn every_command_works_on_postgres_while_another_process_has_it_open() {
    let url = pg::fresh_db();
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    // Another process (a `serve`) holds the CRM open the whole time.
    let held = open(&url);
    let alice = json(&ok(
        p,
        &url,
        &[
            "user",
            "add",
            "Alice Example",
            "--login",
            "alice@contoso.example",
            "--json",
        ],
    ));
    ok(
        p,
        &url,
        &[
            "user",
            "add",
            "Bob Delegate",
            "--login",
            "bob@contoso.example",
        ],
    );
    let bob = held
        .user_by_login(&EmailAddress::parse("bob@contoso.example").unwrap())
        .unwrap()
        .expect("the other process sees bob at once");
    ok(
        p,
        &url,
        &["user", "grant", "alice@contoso.example", "use_app"],
    );
    ok(
        p,
        &url,
        &[
            "user",
            "delegate",
            "alice@contoso.example",
            "bob@contoso.example",
        ],
    );
    let a = held
        .user_by_login(&EmailAddress::parse("alice@contoso.example").unwrap())
        .unwrap()
        .unwrap();
    assert!(
        a.has(Privilege::UseApp),
        "the grant reached the other process"
    );
    assert!(a.delegates.contains(&bob.id));
    assert_eq!(alice["id"].as_str().unwrap(), a.id.to_string());

    let csv = p.join("contacts.csv");
    std::fs::write(
        &csv,
        "First Name,Last Name,Display Name,Primary Email\nCarol,Fabré,Carol Fabré,carol@fabrikam.example\n",
    )
    .unwrap();
    ok(
        p,
        &url,
        &["import", csv.to_str().unwrap(), "--kind", "contacts"],
    );
    let hits = json(&ok(p, &url, &["search", "fabre", "--json"]));
    assert_eq!(hits[0]["title"], "Carol Fabré");
    assert_eq!(
        held.resolve_address(&EmailAddress::parse("CAROL@fabrikam.example").unwrap())
            .unwrap()
            .len(),
        1
    );

    let t = json(&ok(
        p,
        &url,
        &["track", &mail("thread-original.eml"), "--json"],
    ));
    assert_eq!(t["status"], "tracked");
    let activity = t["activity"].as_str().unwrap().to_string();
    let shown = json(&ok(p, &url, &["show", &activity, "--json"]));
    assert_eq!(shown["activity"]["subject"], "Quote for 40 licences");
    let mid = MessageId::parse("thread-1@fabrikam.example").unwrap();
    assert_eq!(held.tracking_of_message(&mid).unwrap().len(), 1);
    ok(
        p,
        &url,
        &[
            "untrack",
            "thread-1@fabrikam.example",
            "--owner",
            "alice@contoso.example",
        ],
    );
    assert!(held.tracking_of_message(&mid).unwrap().is_empty());
    assert!(
        held.activity_by_message_id(&mid).unwrap().is_some(),
        "the activity stays"
    );
    let exported = json(&ok(p, &url, &["export"]));
    assert_eq!(exported["records"].as_array().unwrap().len(), 3);
}

#[test]
fn store_copy_is_exact_and_running_it_again_changes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("personal");
    {
        let sled = SledStore::open(&dir).unwrap();
        demo::load_if_empty(&sled).unwrap().expect("demo loaded");
    }
    let source = SledStore::open(&dir).unwrap().export().unwrap();
    let url = pg::fresh_db();
    let copy = |json_out: bool| {
        let mut args = vec![
            "store",
            "copy",
            "--from",
            dir.to_str().unwrap(),
            "--to",
            &url,
        ];
        if json_out {
            args.push("--json");
        }
        // --store names where the proxy's own CRM is; `copy` takes both ends as flags.
        ok(d.path(), &url, &args)
    };
    let first = json(&copy(true));
    let n = source.records.len() as u64;
    assert_eq!(first["records"]["created"].as_u64(), Some(n));
    assert_eq!(first["differing"], 0);
    assert_eq!(open(&url).export().unwrap(), source, "an exact copy");
    let again = json(&copy(true));
    assert_eq!(again["records"]["created"], 0);
    assert_eq!(again["records"]["updated"], 0);
    assert_eq!(
        again["activities"]["unchanged"].as_u64(),
        Some(source.activities.len() as u64)
    );
    assert_eq!(again["tracking"]["created"], 0);
    let text = copy(false);
    assert!(text.contains("every row read back identical"), "{text}");
    assert_eq!(open(&url).export().unwrap(), source);
}

#[test]
fn the_password_comes_from_the_environment_or_a_private_file_and_is_never_shown() {
    let url = pg::postgres().team_db();
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    // Without it: a clear error that names the store but not any password.
    let o = run(p, &url, &["search", "x"]);
    assert_eq!(o.status.code(), Some(3), "unavailable");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("PostgreSQL CRM at postgres://crm_team@127.0.0.1"),
        "{err}"
    );
    assert!(err.contains("password"), "{err}");

    // From the environment variable.
    let o = crmproxy(p, &url, &["search", "x", "--json"])
        .env("CRMPROXY_STORE_PASSWORD", pg::TEAM_PASSWORD)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // From a file: refused while others may read it, used once it is 0600.
    use std::os::unix::fs::PermissionsExt;
    let file = p.join("store-password");
    std::fs::write(&file, format!("{}\n", pg::TEAM_PASSWORD)).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let conf = p.join("crmproxy.toml");
    std::fs::write(
        &conf,
        format!(
            "[store]\nurl = \"{url}\"\npassword_file = \"{}\"\n",
            file.display()
        ),
    )
    .unwrap();
    let with_file = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_crmproxy"))
            .arg("--data-dir")
            .arg(p)
            .arg("--config")
            .arg(&conf)
            .args(args)
            .env_remove("CRMPROXY_STORE")
            .env_remove("CRMPROXY_STORE_PASSWORD")
            .output()
            .unwrap()
    };
    let o = with_file(&["search", "x"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("chmod 600"), "{err}");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = with_file(&["search", "x", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // A password written into the URL is never echoed back.
    let bad = url.replace("crm_team@", "crm_team:wrong-Secret-123@");
    let o = run(p, &bad, &["search", "x"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(!err.contains("wrong-Secret-123"), "{err}");
    assert!(err.contains("crm_team:***@"), "{err}");
}

/// Two processes (two stores, two connection pools) track the same message at
/// the same moment, each as the tracking engine does: look for the message's
/// activity, else write a new one with the tracking record; a refusal as a
/// duplicate means the other won, so look again. One activity, two records.
#[test]
fn two_processes_tracking_one_message_at_once_make_one_activity() {
    let url = pg::fresh_db();
    let setup = open(&url);
    let users: Vec<uuid::Uuid> = alice_and_bob(&setup).iter().map(|u| u.uuid()).collect();
    for round in 0..20 {
        let mid = MessageId::parse(&format!("race-{round}@t.example")).unwrap();
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = users
            .iter()
            .map(|u| {
                let owner = UserId::from_uuid(*u);
                let (url, mid, barrier) = (url.clone(), mid.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let store = open(&url);
                    barrier.wait();
                    loop {
                        let existing = store.email_by_content(&mid, "digest-1").unwrap();
                        let (writes, aid) = match existing {
                            Some(a) => (vec![], a.id),
                            None => {
                                let mut a = email(owner, mid.as_str(), "Race", None, 1);
                                if let ActivityDetails::Email(e) = &mut a.details {
                                    e.content_digest = Some("digest-1".into());
                                }
                                let id = a.id;
                                (vec![a], id)
                            }
                        };
                        let t = TrackingRecord {
                            status: TrackStatus::Tracked,
                            activity: Some(aid),
                            ..TrackingRecord::pending(owner, mid.clone(), owner)
                        };
                        match store.put_tracked(writes, vec![t]) {
                            Ok(_) => return,
                            Err(StoreError::Duplicate(_)) => continue,
                            Err(e) => panic!("{e}"),
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(
            setup.activities_by_message_id(&mid).unwrap().len(),
            1,
            "round {round}"
        );
        let tracked = setup.tracking_of_message(&mid).unwrap();
        assert_eq!(tracked.len(), 2);
        assert_eq!(tracked[0].activity, tracked[1].activity);
    }
}

/// Users alice@t.example and bob@t.example (with `use_app`).
fn alice_and_bob(s: &dyn CrmStore) -> Vec<UserId> {
    ["alice@t.example", "bob@t.example"]
        .iter()
        .map(|login| {
            let u = user(login, login);
            let id = u.id;
            s.put_record(Record::User(u)).unwrap();
            id
        })
        .collect()
}

/// The store checks of `doctor --json`, by name.
fn doctor_store(p: &Path, url: &str) -> Vec<(String, String, String)> {
    let o = run(p, url, &["doctor", "--json"]);
    let v = json(&String::from_utf8_lossy(&o.stdout));
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"].as_str().unwrap().starts_with("store"))
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
                format!("{} {}", c["detail"], c["fix"]),
            )
        })
        .collect()
}

#[test]
fn doctor_checks_the_connection_tls_and_schema_and_a_newer_schema_is_refused() {
    let url = pg::fresh_db();
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let checks = doctor_store(p, &url);
    let status = |name: &str| {
        checks
            .iter()
            .find(|c| c.0 == name)
            .map(|c| (c.1.clone(), c.2.clone()))
            .unwrap_or_else(|| panic!("no {name} check in {checks:?}"))
    };
    assert_eq!(status("store").0, "ok", "{checks:?}");
    assert!(status("store").1.contains("PostgreSQL 15"), "{checks:?}");
    assert_eq!(status("store TLS").0, "ok");
    assert!(status("store TLS").1.contains("loopback"));
    let (st, text) = status("store schema");
    assert_eq!(st, "warn");
    assert!(text.contains("no crmproxy schema yet"), "{text}");

    drop(open(&url));
    let checks = doctor_store(p, &url);
    let schema = checks.iter().find(|c| c.0 == "store schema").unwrap();
    assert_eq!(schema.1, "ok", "{checks:?}");

    // Another, newer crmproxy migrated the team's CRM.
    let mut c = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
    c.batch_execute("UPDATE crm_schema SET version = 99")
        .unwrap();
    let e = PgStore::open(&PgOptions::new(&url)).unwrap_err();
    assert!(
        matches!(e, StoreError::NewerSchema { found: 99, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("upgrade crmproxy"), "{e}");
    let checks = doctor_store(p, &url);
    let schema = checks.iter().find(|c| c.0 == "store schema").unwrap();
    assert_eq!(schema.1, "fail", "{checks:?}");
    assert!(schema.2.contains("newer than this crmproxy"), "{checks:?}");

    // A server that is not there: a clear failure, and what to check.
    let gone = format!(
        "postgres://postgres@127.0.0.1:{}/x?sslmode=disable",
        pg::free_port()
    );
    let checks = doctor_store(p, &gone);
    assert_eq!(checks[0].1, "fail", "{checks:?}");
    assert!(checks[0].2.contains("database server is up"), "{checks:?}");
}

struct CountSync(std::sync::atomic::AtomicUsize);

/// Whether a change `want` takes arrives within 10 s.
fn wait(
    rx: &mut tokio::sync::broadcast::Receiver<crmproxy::events::PaneEvent>,
    want: impl Fn(&crmproxy::events::CrmChanged) -> bool,
) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        match rx.try_recv() {
            Ok(crmproxy::events::PaneEvent::CrmChanged(c)) if want(&c) => return true,
            Ok(_) => {}
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
    false
}

impl crmproxy::events::MailboxSync for CountSync {
    fn clear_tracking_keywords(
        &self,
        _owner: &str,
        _at: crmproxy::events::KeywordCleanup,
    ) -> crmproxy::events::CleanupQueued {
        crmproxy::events::CleanupQueued::Now
    }
    fn tracking_changed(&self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    fn pending_requested(&self, _owner: &str) -> crmproxy::events::CleanupQueued {
        crmproxy::events::CleanupQueued::Now
    }
}

/// What another process commits reaches this one's panes: a record to every
/// pane, a mailbox's tracking to that mailbox's only, and the sync workers hear
/// of tracking changes.
#[test]
fn changes_by_another_process_reach_the_right_panes() {
    use crmproxy::events::{PaneEvent, PaneEvents};
    let url = pg::fresh_db();
    let here: Arc<dyn CrmStore> = Arc::new(open(&url));
    let events = PaneEvents::new();
    let sync = Arc::new(CountSync(Default::default()));
    let mut alice_pane = events.subscribe("alice@t.example");
    let mut bob_pane = events.subscribe("bob@t.example");
    let _bridge = crmproxy::cli::store::bridge_changes(
        PgOptions::new(&url),
        here.clone(),
        events.clone(),
        sync.clone(),
    );
    // The other process.
    let there = open(&url);
    let alice = alice_and_bob(&there)[0];
    // Let the listener start (it LISTENs on its own connection).
    std::thread::sleep(std::time::Duration::from_millis(500));
    let mut c = contact("Carol", "Fabré", "");
    c.job_title = "Buyer".into();
    let carol = there.put_record(Record::Contact(c)).unwrap().id();
    let got = wait(&mut bob_pane, |c| c.records.contains(&carol));
    assert!(got, "bob's pane heard of the new contact");

    // Alice's mailbox tracks a message: her pane hears it, bob's does not.
    let mid = MessageId::parse("live-1@t.example").unwrap();
    there
        .put_tracking(TrackingRecord::pending(alice, mid.clone(), alice))
        .unwrap();
    let got = wait(&mut alice_pane, |c| {
        c.message_ids.contains(&"live-1@t.example".to_string())
    });
    assert!(got, "alice's pane heard of her tracking");
    std::thread::sleep(std::time::Duration::from_millis(300));
    while let Ok(ev) = bob_pane.try_recv() {
        if let PaneEvent::CrmChanged(c) = ev {
            assert!(
                c.message_ids.is_empty(),
                "bob heard of alice's mailbox: {c:?}"
            );
        }
    }
    assert!(sync.0.load(std::sync::atomic::Ordering::SeqCst) >= 1);
}

/// End to end: real `serve` processes on one PostgreSQL and the private Dovecot.
mod e2e {
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

    /// The pane's live events, line by line, from a `curl -N` child.
    fn events(p: &Proxy) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
        let mut child = curl(p)
            .arg("-N")
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
        (child, rx)
    }

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
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
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
        driver.goto(link.trim()).await;
        driver
            .goto(&format!("{}/record/{}", pane_base(&t.b), t.carol))
            .await;
        driver.wait_for_text("main", "No activity yet").await;
        // Let the page's live connection open before the change.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
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
}

mod e2e_race {
    use super::*;
    use crate::common::{dovecot, unique_user, Proxy, ProxyOptions, RawImap, PASSWORD};
    use crate::tracking_support::{add_user, crm, message, wait_keyword};

    fn proxy_on(url: &str) -> Proxy {
        Proxy::start_with(
            dovecot(),
            ProxyOptions {
                config_toml: Some(format!(
                    "[tracking]\nload_demo_on_first_run = false\n[store]\nurl = \"{url}\"\n"
                )),
                ..Default::default()
            },
        )
    }

    /// Email activities with this Message-ID, read straight from the database.
    fn activities(url: &str, message_id: &str) -> usize {
        open(url)
            .activities_by_message_id(&MessageId::parse(message_id).unwrap())
            .unwrap()
            .len()
    }

    /// alice (through one proxy) and bob (through another) both hold the same
    /// message and ask to track it at the same moment: one activity, two
    /// tracking records.
    #[test]
    fn both_proxies_tracking_one_message_at_once_make_one_activity() {
        let url = pg::fresh_db();
        let (a, b) = (proxy_on(&url), proxy_on(&url));
        let alice = format!("{}@crm-test.example", unique_user("ra"));
        let bob = format!("{}@crm-test.example", unique_user("rb"));
        add_user(&a.data_dir, &alice, true);
        add_user(&a.data_dir, &bob, true);
        for round in 0..3 {
            let id = format!("{}@race.example", unique_user("race"));
            let m = message(&id, &format!("Race {round}"), "");
            let barrier = Arc::new(Barrier::new(2));
            let threads: Vec<_> = [(alice.clone(), a.imap), (bob.clone(), b.imap)]
                .into_iter()
                .map(|(user, addr)| {
                    let (m, barrier) = (m.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        let mut direct = RawImap::login(dovecot().imap_addr(), &user, PASSWORD);
                        assert!(direct.append("INBOX", &m).ok());
                        let uid = round + 1;
                        let mut c = RawImap::login(addr, &user, PASSWORD);
                        assert!(c.cmd("SELECT INBOX").ok());
                        barrier.wait();
                        let r = c.cmd(&format!("UID STORE {uid} +FLAGS ($CRM_Track)"));
                        assert!(r.ok(), "{}", r.tagged);
                        wait_keyword(&mut direct, "INBOX", uid, "$CRM_Tracked", true);
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(activities(&url, &id), 1, "round {round}");
            let tracked = open(&url)
                .tracking_of_message(&MessageId::parse(&id).unwrap())
                .unwrap();
            assert_eq!(tracked.len(), 2, "round {round}");
            assert_eq!(tracked[0].activity, tracked[1].activity);
        }
        let _ = crm;
    }

    /// `kill -9` of a proxy while it tracks: every message it marked tracked on
    /// the server (its acknowledgement) has its activity in the database.
    #[test]
    fn kill_9_while_tracking_loses_nothing_acknowledged() {
        let url = pg::fresh_db();
        let mut a = proxy_on(&url);
        let user = format!("{}@crm-test.example", unique_user("k9"));
        add_user(&a.data_dir, &user, true);
        let mut direct = RawImap::login(dovecot().imap_addr(), &user, PASSWORD);
        let n = 40;
        let ids: Vec<String> = (0..n)
            .map(|i| format!("{}-{i}@kill.example", unique_user("k")))
            .collect();
        for (i, id) in ids.iter().enumerate() {
            assert!(direct
                .append("INBOX", &message(id, &format!("Kill {i}"), ""))
                .ok());
        }
        let mut c = RawImap::login(a.imap, &user, PASSWORD);
        assert!(c.cmd("SELECT INBOX").ok());
        let r = c.cmd(&format!("UID STORE 1:{n} +FLAGS ($CRM_Track)"));
        assert!(r.ok(), "{}", r.tagged);
        // Let part of it happen, then kill the proxy without warning.
        wait_keyword(&mut direct, "INBOX", 1, "$CRM_Tracked", true);
        // SAFETY: signalling the child process this test started.
        unsafe {
            libc::kill(a.pid() as libc::pid_t, libc::SIGKILL);
        }
        let _ = a.wait_exit(std::time::Duration::from_secs(5));
        let mut acknowledged = 0;
        for (i, id) in ids.iter().enumerate() {
            let flags = crate::tracking_support::flags(&mut direct, "INBOX", i as u32 + 1);
            if flags.split(' ').any(|k| k == "$CRM_Tracked") {
                acknowledged += 1;
                assert_eq!(
                    activities(&url, id),
                    1,
                    "{id} was marked tracked but is lost"
                );
            }
        }
        assert!(acknowledged >= 1);
    }
}
