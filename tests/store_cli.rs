//! The real `crmproxy` binary against temporary data directories: user, import,
//! export, search, show; exit codes; and the admin-socket path while another
//! process holds the store.

use crmproxy::admin;
use crmproxy::store::{CrmStore, EmailAddress, Privilege, SledStore};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

fn run(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_crmproxy"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("CRMPROXY_CONFIG")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn ok(data: &Path, args: &[&str]) -> String {
    let o = run(data, args);
    assert!(
        o.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/import")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn users_privileges_and_delegates() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    ok(
        p,
        &[
            "user",
            "add",
            "Alice Example",
            "--login",
            "alice@example.test",
            "--grant",
            "use_app",
        ],
    );
    ok(
        p,
        &[
            "user",
            "add",
            "Carol Assistant",
            "--login",
            "carol@example.test",
        ],
    );
    ok(
        p,
        &[
            "user",
            "grant",
            "carol@example.test",
            "use_app",
            "create_records",
        ],
    );
    ok(
        p,
        &["user", "revoke", "carol@example.test", "create_records"],
    );
    ok(
        p,
        &[
            "user",
            "delegate",
            "alice@example.test",
            "carol@example.test",
        ],
    );
    let list: serde_json::Value =
        serde_json::from_str(&ok(p, &["user", "list", "--json"])).unwrap();
    let users = list.as_array().unwrap();
    assert_eq!(users.len(), 2);
    let carol = users
        .iter()
        .find(|u| u["full_name"] == "Carol Assistant")
        .unwrap();
    let alice = users
        .iter()
        .find(|u| u["full_name"] == "Alice Example")
        .unwrap();
    assert_eq!(carol["privileges"], serde_json::json!(["use_app"]));
    assert_eq!(alice["delegates"], serde_json::json!([carol["id"]]));
    let text = ok(p, &["user", "list"]);
    assert!(
        text.contains("alice@example.test") && text.contains("delegates="),
        "{text}"
    );

    // Errors: duplicate login, unknown user, bad address, unknown privilege.
    let o = run(
        p,
        &[
            "user",
            "add",
            "Alice Again",
            "--login",
            "ALICE@example.test",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("already belongs"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = run(p, &["user", "grant", "nobody@example.test", "use_app"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no user signs in as"));
    let o = run(p, &["user", "add", "X", "--login", "not-an-address"]);
    assert_eq!(o.status.code(), Some(2), "clap rejects the argument");
    assert!(String::from_utf8_lossy(&o.stderr).contains("no @"));
    let o = run(p, &["user", "grant", "alice@example.test", "superuser"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown privilege"));
    let o = run(
        p,
        &[
            "user",
            "delegate",
            "alice@example.test",
            "alice@example.test",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn import_search_show_export_round_trip() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let out = ok(p, &["import", &fixture("accounts.csv")]);
    assert!(out.starts_with("created 3, updated 0"), "{out}");
    let out = ok(p, &["import", &fixture("thunderbird.csv")]);
    assert!(
        out.contains("created 3")
            && out.contains("skipped 1")
            && out.contains("not an e-mail address"),
        "{out}"
    );
    let out = ok(p, &["import", &fixture("thunderbird.csv"), "--json"]);
    let sum: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(sum["unchanged"], 3);
    ok(p, &["import", &fixture("leads.csv"), "--kind", "leads"]);

    let hits: serde_json::Value =
        serde_json::from_str(&ok(p, &["search", "zoe mull", "--json"])).unwrap();
    assert_eq!(hits[0]["title"], "Zoë Müller");
    let id = hits[0]["id"].as_str().unwrap().to_string();
    let text = ok(p, &["search", "fabrikam", "--type", "account"]);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("Fabrikam Möbel GmbH"));
    let shown = ok(p, &["show", &id]);
    assert!(shown.contains("job_title: Geschäftsführerin"), "{shown}");
    let o = run(p, &["show", "0193a1b2-0000-7000-8000-000000000000"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no record or activity"));
    let o = run(p, &["search", "x", "--type", "planet"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown record type"));

    let file = p.join("export.json");
    ok(p, &["export", "--out", file.to_str().unwrap()]);
    let first = std::fs::read_to_string(&file).unwrap();
    assert_eq!(ok(p, &["export"]), first, "stdout and --out agree");
    let d2 = tempfile::tempdir().unwrap();
    let out = ok(d2.path(), &["import", file.to_str().unwrap()]);
    assert!(out.contains("created"), "{out}");
    assert_eq!(
        ok(d2.path(), &["export"]),
        first,
        "export → import → export is identical"
    );
}

#[test]
fn bad_files_exit_1_and_change_nothing() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    ok(p, &["import", &fixture("outlook.csv")]);
    let before = ok(p, &["export"]);
    for bad in [
        "bad/truncated.vcf",
        "bad/latin1.csv",
        "bad/truncated.csv",
        "bad/utf16.csv",
    ] {
        let o = run(p, &["import", &fixture(bad)]);
        assert_eq!(o.status.code(), Some(1), "{bad}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("cannot be imported (nothing was changed)"),
            "{bad}: {err}"
        );
    }
    let o = run(p, &["import", "/nonexistent/file.csv"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot read"));
    assert_eq!(ok(p, &["export"]), before);
}

/// A CSV of `n` generated contacts (`First{i}`, `Last{i}`, `person{i}@example.com`)
/// written into `dir`.
fn contacts_csv(dir: &Path, n: usize) -> std::path::PathBuf {
    let file = dir.join("contacts.csv");
    let mut csv = String::from("First Name,Last Name,E-mail Address,Company\n");
    for i in 0..n {
        csv.push_str(&format!(
            "First{i},Last{i},person{i}@example.com,Company {}\n",
            i % 50
        ));
    }
    std::fs::write(&file, csv).unwrap();
    file
}

#[test]
fn a_large_import_reports_its_count() {
    let d = tempfile::tempdir().unwrap();
    let file = contacts_csv(d.path(), 3000);
    let out = ok(d.path(), &["import", file.to_str().unwrap()]);
    assert!(out.starts_with("created 3000,"), "{out}");
    let hits: serde_json::Value =
        serde_json::from_str(&ok(d.path(), &["search", "last2999", "--json"])).unwrap();
    assert_eq!(hits.as_array().unwrap().len(), 1);
}

/// `crmproxy export | head -c 1`, `crmproxy search … | head -c 1`: the reader
/// goes away, and the command stops quietly as a command killed by SIGPIPE
/// would (no panic, no error message).
#[test]
fn output_into_a_closed_pipe_stops_quietly() {
    use std::io::Read;
    let d = tempfile::tempdir().unwrap();
    let file = contacts_csv(d.path(), 2000);
    ok(d.path(), &["import", file.to_str().unwrap()]);
    for args in [&["export"][..], &["search", "first", "--limit", "2000"]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_crmproxy"))
            .arg("--data-dir")
            .arg(d.path())
            .args(args)
            .env_remove("CRMPROXY_CONFIG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 1];
        child.stdout.take().unwrap().read_exact(&mut first).unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr, "", "{args:?}");
        assert_eq!(out.status.code(), Some(141), "{args:?}");
    }
}

/// With the store held by this process (as `serve` holds it), the CLI goes
/// through the admin socket; without the socket it says why it cannot work.
#[test]
fn commands_go_through_the_admin_socket_while_the_store_is_held() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let store: Arc<SledStore> = Arc::new(SledStore::open(p.join("store")).unwrap());

    // Held, no socket: exit 3 and a reason.
    let o = run(p, &["user", "list"]);
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("held by another process") && err.contains("admin.sock"),
        "{err}"
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    let sock = admin::socket_path(p);
    let listener = rt.block_on(async { admin::bind(&sock) }).unwrap();
    let dyn_store: Arc<dyn CrmStore> = store.clone();
    rt.spawn(admin::serve_listener(dyn_store, listener));

    ok(
        p,
        &[
            "user",
            "add",
            "Alice Example",
            "--login",
            "alice@example.test",
            "--grant",
            "use_app",
        ],
    );
    ok(
        p,
        &[
            "user",
            "add",
            "Carol Assistant",
            "--login",
            "carol@example.test",
        ],
    );
    ok(
        p,
        &[
            "user",
            "delegate",
            "alice@example.test",
            "carol@example.test",
        ],
    );
    let out = ok(p, &["import", &fixture("contacts-v3.vcf")]);
    assert!(out.starts_with("created 2"), "{out}");
    assert!(ok(p, &["search", "davolio"]).contains("Nancy Davolio"));
    let export = ok(p, &["export"]);
    assert!(export.contains("Zoë Müller"));
    // Errors keep their exit code through the socket.
    let o = run(p, &["user", "grant", "nobody@example.test", "use_app"]);
    assert_eq!(o.status.code(), Some(1));
    let o = run(p, &["import", &fixture("bad/truncated.vcf")]);
    assert_eq!(o.status.code(), Some(1));

    // The writes are in the store this process holds.
    let alice = store
        .user_by_login(&EmailAddress::parse("alice@example.test").unwrap())
        .unwrap()
        .unwrap();
    let carol = store
        .user_by_login(&EmailAddress::parse("carol@example.test").unwrap())
        .unwrap()
        .unwrap();
    assert!(alice.has(Privilege::UseApp));
    assert!(alice.delegates.contains(&carol.id));

    // A malformed request gets an error line, and the connection stays usable.
    {
        use std::io::{BufRead, BufReader, Write};
        let mut conn = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        conn.write_all(b"{\"op\": \"drop_tables\"}\n{\"op\": \"ping\"}\n")
            .unwrap();
        let mut lines = BufReader::new(conn).lines();
        let first: serde_json::Value =
            serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        assert!(
            first["error"]["message"]
                .as_str()
                .unwrap()
                .contains("bad admin request"),
            "{first}"
        );
        let second: serde_json::Value =
            serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        assert_eq!(second["ok"], "pong");
    }

    // A second server on the same socket is refused; the first keeps serving.
    let e = rt.block_on(async { admin::bind(&sock) }).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
    assert!(ok(p, &["user", "list"]).contains("Carol"));
    drop(rt);
}

#[test]
fn a_stale_socket_is_replaced() {
    let d = tempfile::tempdir().unwrap();
    let sock = admin::socket_path(d.path());
    std::fs::write(&sock, b"").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async { admin::bind(&sock) })
        .expect("a dead socket file is replaced");
}
