//! Every server's folder layout (issue 16), against a second private Dovecot laid
//! out like Courier: personal namespace `INBOX.`, separator `.`, no SPECIAL-USE.
//! Through a real `crmproxy serve`: the tracking folder `CRM/Track` is
//! `INBOX.CRM.Track` there (created at login, copies into it tracked), keyword
//! tracking works, the worker's Sent watch finds `INBOX.Sent` by its name, a
//! folder the server refuses to create is reported, the pane's draft lands in
//! `INBOX.Drafts`, and `doctor --user` names the layout, Sent and Drafts.

mod common;
mod pane_util;
mod tracking_support;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{Dovecot, PASSWORD};
use tracking_support::*;

/// Later settings win: the namespace `inbox` gets Courier's prefix and
/// separator, and its Sent, Drafts and Trash lose their SPECIAL-USE.
const COURIER_LIKE: &str = r"
namespace inbox {
  prefix = INBOX.
  separator = .
  mailbox Drafts {
    special_use =
  }
  mailbox Sent {
    special_use =
  }
  mailbox Trash {
    special_use =
  }
}
";

fn courier() -> &'static Dovecot {
    common::dovecot::dovecot_with(COURIER_LIKE)
}

#[test]
fn the_dovecot_variant_is_laid_out_like_courier() {
    let env = Env::start_on(courier(), "");
    let (user, _) = env.user("layout", false);
    let mut direct = env.direct(&user);
    let r = direct.cmd("NAMESPACE");
    assert!(r.text().contains(r#"(("INBOX." "."))"#), "{}", r.text());
    let r = direct.cmd("LIST \"\" \"*\"");
    assert!(r.text().contains("INBOX.Sent"), "{}", r.text());
    assert!(!r.text().contains("\\Sent"), "{}", r.text());
}

#[test]
fn copy_into_the_tracking_folder_under_the_namespace_tracks() {
    let env = Env::start_on(courier(), "");
    let (user, _) = env.user("nscopy", true);
    let m = message("ns-copy@customer.example", "Copied under INBOX.", "");
    let mut direct = env.direct(&user);
    assert!(direct.append("INBOX", &m).ok());
    let mut c = env.through_proxy(&user);
    wait_for("INBOX.CRM.Track created and subscribed at login", || {
        let r = direct.cmd("LSUB \"\" \"INBOX.CRM.Track\"");
        r.text().contains("* LSUB").then_some(())
    });
    assert!(c.cmd("SELECT INBOX").ok());
    let r = c.cmd("COPY 1 INBOX.CRM.Track");
    assert!(r.ok(), "{}", r.tagged);
    let uid = uid_of(&mut direct, "INBOX.CRM.Track", "ns-copy@customer.example").unwrap();
    wait_keyword(&mut direct, "INBOX.CRM.Track", uid, "$CRM_Tracked", true);
    let shown = show(env.data(), &email_id(env.data(), "Copied under INBOX.")).to_string();
    assert!(shown.contains("ns-copy@customer.example"), "{shown}");
}

#[test]
fn keyword_tracking_works_there() {
    let env = Env::start_on(courier(), "");
    let (user, _) = env.user("nskw", true);
    let m = message("ns-keyword@customer.example", "Flagged for the CRM", "");
    let mut direct = env.direct(&user);
    assert!(direct.append("INBOX", &m).ok());
    let mut c = env.through_proxy(&user);
    assert!(c.cmd("SELECT INBOX").ok());
    assert!(c.cmd("UID STORE 1 +FLAGS.SILENT ($CRM_Track)").ok());
    wait_keyword(&mut direct, "INBOX", 1, "$CRM_Tracked", true);
    assert!(email_titled(env.data(), "Flagged for the CRM"));
}

#[test]
fn a_reply_saved_in_inbox_sent_is_tracked_by_the_sent_watch() {
    let env = Env::start_on(courier(), "");
    let (user, _) = env.user("nssent", true);
    let original = message("ns-thread@customer.example", "Courier renewal", "");
    let mut direct = env.direct(&user);
    assert!(direct.append("INBOX", &original).ok());
    let mut c = env.through_proxy(&user);
    assert!(c.cmd("SELECT INBOX").ok());
    assert!(c.cmd("UID STORE 1 +FLAGS.SILENT ($CRM_Track)").ok());
    wait_keyword(&mut direct, "INBOX", 1, "$CRM_Tracked", true);

    let reply = format!(
        "From: Owner <{user}>\r\nTo: Erin <erin@customer.example>\r\n\
         Subject: Re: Courier renewal\r\nDate: Tue, 24 Nov 2026 11:30:00 +0000\r\n\
         Message-ID: <ns-reply@crm-test.example>\r\n\
         In-Reply-To: <ns-thread@customer.example>\r\n\r\nAgreed.\r\n"
    )
    .into_bytes();
    // Straight to the server: only the worker's watch of Sent can see it.
    assert!(direct.append("INBOX.Sent", &reply).ok());
    wait_keyword(&mut direct, "INBOX.Sent", 1, "$CRM_Tracked", true);
    let shown = show(env.data(), &email_id(env.data(), "Re: Courier renewal")).to_string();
    assert!(shown.contains("in_reply_to"), "{shown}");
}

#[test]
fn a_tracking_folder_the_server_refuses_is_reported_to_the_user() {
    // Dovecot refuses a level longer than 255 bytes.
    let long = "x".repeat(300);
    let env = Env::start_on(courier(), &format!("track_folder = \"CRM/{long}\"\n"));
    let (user, _) = env.user("nsrefuse", true);
    let mut c = env.through_proxy(&user);
    let said = wait_for("the refusal shown before a tagged answer", || {
        let r = c.cmd("NOOP");
        r.text().contains("[ALERT]").then(|| r.text())
    });
    assert!(said.contains(&format!("INBOX.CRM.{long}")), "{said}");
    assert!(said.contains("tracking.track_folder"), "{said}");
    let json = doctor_json(&env, &user);
    let refused = check(&json, "tracking folder");
    assert_eq!(refused["status"], "fail", "{json:#}");
    assert!(
        refused["detail"].as_str().unwrap().contains("too long"),
        "{json:#}"
    );
}

/// The pane says so on every page too, while the folder cannot be made.
#[tokio::test(flavor = "multi_thread")]
async fn the_pane_shows_a_refused_tracking_folder_on_every_page() {
    let long = "y".repeat(300);
    let proxy = common::Proxy::start_with(
        courier(),
        common::ProxyOptions {
            pane: true,
            config_toml: Some(format!(
                "[tracking]\nload_demo_on_first_run = false\ntrack_folder = \"CRM/{long}\"\n"
            )),
            ..Default::default()
        },
    );
    let user = format!("{}@crm-test.example", common::unique_user("nsbanner"));
    add_user(&proxy.data_dir, &user, true);
    // A session through the proxy starts the user's worker, which meets the refusal.
    tokio::task::block_in_place(|| {
        let mut c = common::RawImap::login(proxy.imap, &user, PASSWORD);
        wait_for("the refusal", || {
            c.cmd("NOOP").text().contains("[ALERT]").then_some(())
        });
    });
    let addr = proxy.pane.expect("pane");
    let mut pane =
        pane_util::Client::new(addr, &proxy.ca_file(), format!("localhost:{}", addr.port()));
    let token = crmproxy::pane::link::issue(&proxy.data_dir, &user).unwrap();
    assert_eq!(
        pane.get(&format!("/signin/link?token={token}"))
            .await
            .status,
        303
    );
    for page in ["/", "/current", "/search"] {
        let r = pane.get(page).await;
        assert_eq!(r.status, 200, "{page}");
        let text = r.text();
        assert!(
            text.contains("refused to create the tracking folder"),
            "{page}: {text}"
        );
    }
}

#[test]
fn a_pane_draft_lands_in_inbox_drafts() {
    let dv = courier();
    let env = Env::start_on(dv, "");
    let (user, _) = env.user("nsdraft", false);
    let up = crmproxy::config::UpstreamConfig {
        host: "127.0.0.1".into(),
        port: dv.imap_port,
        tls: crmproxy::config::UpstreamTls::Plain,
        ..Default::default()
    };
    let draft = message("ns-draft@crm-test.example", "Template for Nancy", "");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let saved = rt
        .block_on(crmproxy::pane::imap_login::append_draft(
            &up, None, &user, PASSWORD, &draft,
        ))
        .expect("draft saved");
    assert_eq!(saved.folder, "INBOX.Drafts");
    let mut direct = env.direct(&user);
    assert!(uid_of(&mut direct, "INBOX.Drafts", "ns-draft@crm-test.example").is_some());
}

/// `crmproxy doctor --json --user USER` against `env`'s Dovecot (password on stdin).
fn doctor_json(env: &Env, user: &str) -> serde_json::Value {
    let config = env.data().join("crmproxy.toml");
    let mut toml = std::fs::read_to_string(&config).unwrap();
    if !toml.contains("[upstream]") {
        toml.push_str(&format!(
            "[upstream]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"plain\"\n",
            env.dv.imap_port
        ));
        std::fs::write(&config, toml).unwrap();
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_crmproxy"))
        .arg("--data-dir")
        .arg(env.data())
        .args(["doctor", "--json", "--user", user])
        .env_remove("CRMPROXY_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let out = child.wait_with_output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor --json printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The doctor check called `name`.
fn check(json: &serde_json::Value, name: &str) -> serde_json::Value {
    json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check: {json:#}"))
        .clone()
}

#[test]
fn doctor_names_the_namespace_separator_sent_and_drafts() {
    let env = Env::start_on(courier(), "");
    let (user, _) = env.user("nsdoctor", false);
    let json = doctor_json(&env, &user);
    let check = |name: &str| check(&json, name);
    let layout = check("folder layout");
    assert_eq!(layout["facts"]["prefix"], "INBOX.", "{json:#}");
    assert_eq!(layout["facts"]["separator"], ".", "{json:#}");
    assert_eq!(
        layout["facts"]["track_folder"], "INBOX.CRM.Track",
        "{json:#}"
    );
    assert_eq!(
        check("sent folder")["facts"]["folder"],
        "INBOX.Sent",
        "{json:#}"
    );
    assert_eq!(
        check("drafts folder")["facts"]["folder"],
        "INBOX.Drafts",
        "{json:#}"
    );
    assert_eq!(
        check("keywords")["facts"]["keywords_stored"],
        true,
        "{json:#}"
    );
}

#[test]
fn configured_sent_and_drafts_folders_override_what_is_found() {
    let dv = courier();
    let env = Env::start_on(
        dv,
        "sent_folder = \"Gesendet\"\ndrafts_folder = \"Entwürfe\"\n",
    );
    let (user, _) = env.user("nsoverride", true);
    let mut direct = env.direct(&user);
    // Before the first login through the proxy: the Sent watch starts with it.
    assert!(direct.cmd("CREATE INBOX.Gesendet").ok());
    let original = message("ns-own-thread@customer.example", "Own Sent name", "");
    assert!(direct.append("INBOX", &original).ok());
    let mut c = env.through_proxy(&user);
    assert!(c.cmd("SELECT INBOX").ok());
    assert!(c.cmd("UID STORE 1 +FLAGS.SILENT ($CRM_Track)").ok());
    wait_keyword(&mut direct, "INBOX", 1, "$CRM_Tracked", true);
    let reply = format!(
        "From: Owner <{user}>\r\nTo: Erin <erin@customer.example>\r\n\
         Subject: Re: Own Sent name\r\nDate: Tue, 24 Nov 2026 11:30:00 +0000\r\n\
         Message-ID: <ns-own-reply@crm-test.example>\r\n\
         In-Reply-To: <ns-own-thread@customer.example>\r\n\r\nDone.\r\n"
    )
    .into_bytes();
    assert!(direct.append("INBOX.Gesendet", &reply).ok());
    wait_keyword(&mut direct, "INBOX.Gesendet", 1, "$CRM_Tracked", true);

    // The pane's drafts go to the configured folder, in modified UTF-7 on the wire.
    let up = crmproxy::config::UpstreamConfig {
        host: "127.0.0.1".into(),
        port: dv.imap_port,
        tls: crmproxy::config::UpstreamTls::Plain,
        ..Default::default()
    };
    let draft = message("ns-own-draft@crm-test.example", "Entwurf", "");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let saved = rt
        .block_on(crmproxy::pane::imap_login::append_draft(
            &up,
            Some("Entwürfe"),
            &user,
            PASSWORD,
            &draft,
        ))
        .expect("draft saved");
    assert_eq!(saved.folder, "INBOX.Entw&APw-rfe");
    assert!(uid_of(
        &mut direct,
        "INBOX.Entw&APw-rfe",
        "ns-own-draft@crm-test.example"
    )
    .is_some());
}
