//! Helpers of the end-to-end tracking tests: a `crmproxy serve` with its own store
//! against the private Dovecot, CRM users added through the CLI (over the admin
//! socket while serve runs), and waiting for the sync worker.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::imap::{first_literal, RawImap};
use crate::common::{dovecot, unique_user, Dovecot, Proxy, ProxyOptions, PASSWORD};

/// Run `crmproxy --data-dir DATA args…`; panics unless it succeeds; returns stdout.
/// Whether the store has an email activity with exactly this subject (`crm search`).
pub fn email_titled(data: &Path, subject: &str) -> bool {
    let found: serde_json::Value =
        serde_json::from_str(&crm(data, &["search", subject, "--json"])).expect("search JSON");
    found
        .as_array()
        .expect("a list of hits")
        .iter()
        .any(|h| h["kind"] == "email" && h["title"] == subject)
}

pub fn crm(data: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_crmproxy"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("CRMPROXY_CONFIG")
        .output()
        .expect("run crmproxy");
    assert!(
        out.status.success(),
        "crmproxy {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Add a CRM user who signs in as `login`; returns the user's id.
pub fn add_user(data: &Path, login: &str, use_app: bool) -> String {
    let mut args = vec!["user", "add", login, "--login", login, "--json"];
    if use_app {
        args.extend(["--grant", "use_app"]);
    }
    let v: serde_json::Value = serde_json::from_str(&crm(data, &args)).expect("user json");
    v["id"].as_str().expect("user id").to_string()
}

/// A proxy (pane off) with tracking settings in `extra_toml`.
pub struct Env {
    pub dv: &'static Dovecot,
    pub proxy: Proxy,
}

impl Env {
    pub fn start(extra_toml: &str) -> Env {
        let dv = dovecot();
        let toml = format!("[tracking]\nload_demo_on_first_run = false\n{extra_toml}");
        let proxy = Proxy::start_with(
            dv,
            ProxyOptions {
                config_toml: Some(toml),
                ..Default::default()
            },
        );
        Env { dv, proxy }
    }

    /// A TOML that loads the demo CRM (for mapped folders regarding a demo record).
    pub fn start_raw(toml: &str) -> Env {
        let dv = dovecot();
        let proxy = Proxy::start_with(
            dv,
            ProxyOptions {
                config_toml: Some(toml.to_string()),
                ..Default::default()
            },
        );
        Env { dv, proxy }
    }

    pub fn data(&self) -> &Path {
        &self.proxy.data_dir
    }

    /// A new mailbox user (unique), in the CRM with or without use_app.
    pub fn user(&self, prefix: &str, use_app: bool) -> (String, String) {
        let login = format!("{}@crm-test.example", unique_user(prefix));
        let id = add_user(self.data(), &login, use_app);
        (login, id)
    }

    pub fn direct(&self, user: &str) -> RawImap {
        RawImap::login(self.dv.imap_addr(), user, PASSWORD)
    }

    pub fn through_proxy(&self, user: &str) -> RawImap {
        RawImap::login(self.proxy.imap, user, PASSWORD)
    }
}

/// Wait (polling) until `check` returns `Some`, or panic with `what`.
pub fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The FLAGS of a UID in `mailbox`, read on a direct (not proxied) connection.
pub fn flags(c: &mut RawImap, mailbox: &str, uid: u32) -> String {
    let r = c.cmd(&format!("EXAMINE \"{mailbox}\""));
    assert!(r.ok(), "{}", r.tagged);
    let r = c.cmd(&format!("UID FETCH {uid} (FLAGS)"));
    assert!(r.ok(), "{}", r.tagged);
    let t = r.text();
    t.split("FLAGS (")
        .nth(1)
        .and_then(|f| f.split(')').next())
        .unwrap_or_default()
        .to_string()
}

/// Wait until the message `uid` of `mailbox` carries (or lacks) `keyword`, seen directly.
pub fn wait_keyword(c: &mut RawImap, mailbox: &str, uid: u32, keyword: &str, present: bool) {
    wait_for(
        &format!("{keyword} present={present} on {mailbox} UID {uid}"),
        || {
            let f = flags(c, mailbox, uid);
            (f.split(' ').any(|k| k.eq_ignore_ascii_case(keyword)) == present).then_some(())
        },
    );
}

/// `UID FETCH uid (items)` through `c`; the response text and its first literal.
pub fn fetch(c: &mut RawImap, uid: u32, items: &str) -> (String, Vec<u8>) {
    let r = c.cmd(&format!("UID FETCH {uid} ({items})"));
    assert!(r.ok(), "{}", r.tagged);
    let lit = first_literal(&r.bytes).unwrap_or_default();
    (r.text(), lit)
}

/// The tracking block at the top of `fetched` (the X-CRM-* lines and continuations).
pub fn block_of(fetched: &[u8]) -> Vec<u8> {
    let mut end = 0;
    let mut in_block = false;
    for line in fetched.split_inclusive(|&b| b == b'\n') {
        let is_crm = line.len() > 6 && line[..6].eq_ignore_ascii_case(b"x-crm-");
        let cont = line.first().is_some_and(|&b| b == b' ' || b == b'\t');
        if is_crm || (in_block && cont) {
            in_block = true;
            end += line.len();
        } else {
            break;
        }
    }
    fetched[..end].to_vec()
}

/// The activity id named by a block.
pub fn activity_id(block: &[u8]) -> String {
    let t = String::from_utf8_lossy(block);
    t.lines()
        .find_map(|l| l.strip_prefix("X-CRM-Activity-Id: "))
        .expect("X-CRM-Activity-Id in the block")
        .trim()
        .to_string()
}

/// The RFC822.SIZE in a FETCH response text.
pub fn rfc822_size(text: &str) -> usize {
    text.split("RFC822.SIZE ")
        .nth(1)
        .and_then(|s| {
            s.split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|n| n.parse().ok())
        })
        .expect("RFC822.SIZE")
}

/// `crmproxy show ID --json` as JSON.
pub fn show(data: &Path, id: &str) -> serde_json::Value {
    serde_json::from_str(&crm(data, &["show", id, "--json"])).expect("show json")
}

/// A message with its own Message-ID, optional extra headers.
pub fn message(id: &str, subject: &str, extra: &str) -> Vec<u8> {
    format!(
        "From: Dana Sender <dana@customer.example>\r\n\
         To: Owner <owner@crm-test.example>\r\n\
         Subject: {subject}\r\n\
         Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n\
         Message-ID: <{id}>\r\n\
         {extra}\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         Hello,\r\nthe proposal is attached in spirit.\r\n-- \r\nDana\r\n"
    )
    .into_bytes()
}
