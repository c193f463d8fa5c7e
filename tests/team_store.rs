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
    // The listener LISTENs on its own connection, on its own thread: a change
    // committed before that is not heard.
    pg::postgres().wait_listeners(&url, "crm_changes", 1);
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

#[path = "team_store/bulk.rs"]
mod bulk;
#[path = "team_store/e2e.rs"]
mod e2e;
#[path = "team_store/race.rs"]
mod race;
