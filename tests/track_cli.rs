//! `crmproxy track FILE.eml` and `crmproxy untrack MESSAGE-ID` as the real binary
//! against a temporary data directory with users added by `crmproxy user add`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn cmd(data: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_crmproxy"));
    c.arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("CRMPROXY_CONFIG")
        .env("RUST_LOG", "warn");
    c
}

fn run(data: &Path, args: &[&str]) -> Output {
    cmd(data, args).output().unwrap()
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

fn refused(data: &Path, args: &[&str], code: i32, says: &str) {
    let o = run(data, args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
    assert!(err.contains(says), "{args:?}: {err}");
}

fn mail(name: &str) -> String {
    fixture_path(&format!("mail/{name}"))
}

fn fixture_path(rel: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
        .display()
        .to_string()
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

/// Users alice (owner), bob (her delegate), erin (not), dave (no use_app); contact Carol.
fn crm() -> (tempfile::TempDir, Value) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let add = |name: &str, login: &str, grant: bool| {
        let mut args = vec!["user", "add", name, "--login", login, "--json"];
        if grant {
            args.extend(["--grant", "use_app"]);
        }
        json(&ok(p, &args))
    };
    let alice = add("Alice Example", "alice@contoso.example", true);
    add("Bob Delegate", "bob@contoso.example", true);
    add("Erin Other", "erin@contoso.example", true);
    add("Dave NoApp", "dave@contoso.example", false);
    ok(
        p,
        &[
            "user",
            "delegate",
            "alice@contoso.example",
            "bob@contoso.example",
        ],
    );
    let csv = p.join("contacts.csv");
    std::fs::write(
        &csv,
        "First Name,Last Name,Display Name,Primary Email\nCarol,Fabré,Carol Fabré,carol@fabrikam.example\n",
    )
    .unwrap();
    ok(p, &["import", csv.to_str().unwrap(), "--kind", "contacts"]);
    (d, alice)
}

fn export(p: &Path) -> Value {
    let mut v = json(&ok(p, &["export"]));
    // Only the CRM's content matters for "nothing changed".
    v.as_object_mut().unwrap().remove("exported_at");
    v
}

#[test]
fn track_and_untrack_from_the_command_line() {
    let (d, alice) = crm();
    let p = d.path();
    // The owner is found among the message's parties.
    let t = json(&ok(p, &["track", &mail("thread-original.eml"), "--json"]));
    assert_eq!(t["status"], "tracked");
    assert_eq!(t["created"], true);
    assert_eq!(t["owner"], alice["id"]);
    assert_eq!(t["message_id"], "thread-1@fabrikam.example");
    assert!(t["headers"]
        .as_str()
        .unwrap()
        .starts_with("X-CRM-Tracked-By: "));
    let shown = json(&ok(p, &["show", t["activity"].as_str().unwrap(), "--json"]));
    assert_eq!(shown["activity"]["subject"], "Quote for 40 licences");
    assert_eq!(shown["tracking"][0]["status"], "tracked");

    // Again: the same activity.
    let again = json(&ok(p, &["track", &mail("thread-original.eml"), "--json"]));
    assert_eq!(
        (again["created"].clone(), again["activity"].clone()),
        (Value::Bool(false), t["activity"].clone())
    );

    // A reply correlates; text output says what happened.
    let text = ok(
        p,
        &[
            "track",
            &mail("thread-reply.eml"),
            "--owner",
            "alice@contoso.example",
        ],
    );
    assert!(
        text.starts_with(
            "tracked <thread-2@contoso.example> in the mailbox of alice@contoso.example"
        ),
        "{text}"
    );

    // Regarding a contact found by search, from standard input, by the delegate.
    let hits = json(&ok(p, &["search", "carol", "--json"]));
    let carol = hits[0]["id"].as_str().unwrap().to_string();
    let mut child = cmd(
        p,
        &[
            "track",
            "-",
            "--owner",
            "alice@contoso.example",
            "--as",
            "bob@contoso.example",
            "--regarding",
            &format!("contact:{carol}"),
            "--json",
        ],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&std::fs::read(mail("from-unknown.eml")).unwrap())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t2 = json(&String::from_utf8(o.stdout).unwrap());
    assert_eq!(t2["regarding"]["name"], "Carol Fabré");
    assert_eq!(t2["regarding"]["type"], "contact");
    assert_eq!(t2["correlation"], "explicit");
    assert_ne!(t2["requested_by"], alice["id"]);
    assert_eq!(t2["owner"], alice["id"]);

    // Untrack: the activity stays.
    let out = ok(
        p,
        &[
            "untrack",
            "<thread-1@fabrikam.example>",
            "--owner",
            "alice@contoso.example",
        ],
    );
    assert!(out.contains("the activity stays"), "{out}");
    ok(p, &["show", t["activity"].as_str().unwrap()]);
    refused(
        p,
        &[
            "untrack",
            "thread-1@fabrikam.example",
            "--owner",
            "alice@contoso.example",
        ],
        1,
        "is not tracked",
    );
}

#[test]
fn refusals_have_clear_messages_exit_codes_and_change_nothing() {
    let (d, _) = crm();
    let p = d.path();
    ok(p, &["track", &mail("thread-original.eml")]);
    let before = export(p);
    let orig = mail("from-contact.eml");
    refused(
        p,
        &[
            "track",
            &orig,
            "--owner",
            "alice@contoso.example",
            "--as",
            "erin@contoso.example",
        ],
        1,
        "not a delegate",
    );
    refused(
        p,
        &["track", &orig, "--owner", "dave@contoso.example"],
        1,
        "use_app",
    );
    refused(
        p,
        &["track", &orig, "--owner", "nobody@contoso.example"],
        1,
        "not a CRM user",
    );
    refused(
        p,
        &[
            "track",
            &orig,
            "--owner",
            "alice@contoso.example",
            "--regarding",
            "planet:1",
        ],
        1,
        "--regarding",
    );
    refused(
        p,
        &[
            "track",
            &orig,
            "--owner",
            "alice@contoso.example",
            "--regarding",
            "account:0190c1d2-0000-7000-8000-000000000001",
        ],
        1,
        "does not exist",
    );
    refused(
        p,
        &["track", "/nonexistent/x.eml"],
        1,
        "reading the message",
    );
    refused(
        p,
        &[
            "untrack",
            "thread-1@fabrikam.example",
            "--owner",
            "alice@contoso.example",
            "--as",
            "erin@contoso.example",
        ],
        1,
        "not a delegate",
    );
    refused(
        p,
        &["untrack", "has space@x", "--owner", "alice@contoso.example"],
        1,
        "Message-ID",
    );
    assert_eq!(export(p), before);
}

#[test]
fn the_owner_must_be_named_when_the_message_does_not_say() {
    let (d, _) = crm();
    let p = d.path();
    let nobody = p.join("nobody.eml");
    std::fs::write(
        &nobody,
        "Message-ID: <n@x.example>\r\nFrom: a@shop.example\r\nTo: b@shop.example\r\nSubject: x\r\n\r\nx\r\n",
    )
    .unwrap();
    refused(
        p,
        &["track", nobody.to_str().unwrap()],
        1,
        "no CRM user sent or received",
    );
    // Two CRM users in one message.
    let two = p.join("two.eml");
    std::fs::write(
        &two,
        "Message-ID: <two@x.example>\r\nFrom: alice@contoso.example\r\nTo: erin@contoso.example\r\nSubject: x\r\n\r\nx\r\n",
    )
    .unwrap();
    refused(p, &["track", two.to_str().unwrap()], 1, "several CRM users");
    ok(
        p,
        &[
            "track",
            two.to_str().unwrap(),
            "--owner",
            "erin@contoso.example",
        ],
    );
}

#[test]
fn a_store_held_by_another_process_is_reported_as_unavailable() {
    let (d, _) = crm();
    let p = d.path();
    let held = crmproxy::store::SledStore::open(p.join("store")).unwrap();
    let o = run(p, &["track", &mail("thread-original.eml")]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("stop `crmproxy serve`"), "{err}");
    drop(held);
}
