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
    email_hit(data, subject).is_some()
}

/// The search hit of the email activity titled exactly `subject`.
fn email_hit(data: &Path, subject: &str) -> Option<serde_json::Value> {
    let found: serde_json::Value =
        serde_json::from_str(&crm(data, &["search", subject, "--json"])).expect("search JSON");
    found
        .as_array()
        .expect("a list of hits")
        .iter()
        .find(|h| h["kind"] == "email" && h["title"] == subject)
        .cloned()
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
        Env::start_on(dovecot(), extra_toml)
    }

    /// [`Env::start`] in front of another Dovecot (see `dovecot_with`).
    pub fn start_on(dv: &'static Dovecot, extra_toml: &str) -> Env {
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

/// The UID of the message with `message_id` in `mailbox` (the lowest, when there
/// are copies), seen on `direct` after a fresh EXAMINE.
pub fn uid_of(direct: &mut RawImap, mailbox: &str, message_id: &str) -> Option<u32> {
    assert!(direct.cmd(&format!("EXAMINE \"{mailbox}\"")).ok());
    let r = direct.cmd(&format!("UID SEARCH HEADER Message-ID \"{message_id}\""));
    r.text()
        .lines()
        .find_map(|l| l.strip_prefix("* SEARCH "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.trim().parse().ok())
}

/// The FLAGS of a UID in `mailbox`, read on a direct (not proxied) connection.
pub fn flags(c: &mut RawImap, mailbox: &str, uid: u32) -> String {
    let r = c.cmd(&format!("EXAMINE \"{mailbox}\""));
    assert!(r.ok(), "{}", r.tagged);
    let r = c.cmd(&format!("UID FETCH {uid} (FLAGS)"));
    assert!(r.ok(), "{}", r.tagged);
    // The line of this UID: the answer may also carry a `* FLAGS (…)` (a new
    // keyword in the mailbox) and FETCHes of other messages whose flags
    // another session (the sync worker) changed since the EXAMINE.
    let t = r.text();
    t.lines()
        .filter(|l| l.starts_with("* ") && l.contains(" FETCH ("))
        .find(|l| {
            let words: Vec<&str> = l.split([' ', '(', ')']).filter(|w| !w.is_empty()).collect();
            words
                .windows(2)
                .any(|w| w[0].eq_ignore_ascii_case("UID") && w[1] == uid.to_string())
        })
        .and_then(|l| l.split("FLAGS (").nth(1))
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

/// The tracking block at the top of `fetched` (the X-CRM-* lines and continuations):
/// written into a message for real (an APPEND with a request attached, or the
/// `replace` mode); the proxy never adds one on the fly.
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

/// The activity id named by a written block.
pub fn activity_id(block: &[u8]) -> String {
    let t = String::from_utf8_lossy(block);
    t.lines()
        .find_map(|l| l.strip_prefix("X-CRM-Activity-Id: "))
        .expect("X-CRM-Activity-Id in the block")
        .trim()
        .to_string()
}

/// The id of the email activity titled exactly `subject` (`crm search`).
pub fn email_id(data: &Path, subject: &str) -> String {
    email_hit(data, subject)
        .and_then(|h| h["id"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("no email titled {subject:?}"))
}

/// Every FETCH form a client may use to read a message, partials included.
pub const FETCH_FORMS: &[&str] = &[
    "BODY.PEEK[]",
    "RFC822",
    "BINARY.PEEK[]",
    "BODY.PEEK[HEADER]",
    "RFC822.HEADER",
    "RFC822.TEXT",
    "BODY.PEEK[TEXT]",
    "BODY.PEEK[1]",
    "BODY.PEEK[1.MIME]",
    "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID SUBJECT X-CRM-ACTIVITY-ID X-CRM-TRACKED-BY)]",
    "BODY.PEEK[HEADER.FIELDS.NOT (SUBJECT)]",
    "BODY.PEEK[]<0.100>",
    "BODY.PEEK[]<64.4096>",
    "BODY.PEEK[HEADER]<5.60>",
    "BINARY.SIZE[]",
    "RFC822.SIZE",
    "ENVELOPE",
    "BODYSTRUCTURE",
    "INTERNALDATE",
    "UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)] BODY.PEEK[]",
];

/// `UID FETCH uid (form)` for every form of [`FETCH_FORMS`] in `mailbox` (opened
/// read-only, so no fetch sets `\Seen`): the untagged response bytes of each.
pub fn fetch_every_form(c: &mut RawImap, mailbox: &str, uid: u32) -> Vec<(String, Vec<u8>)> {
    let r = c.cmd(&format!("EXAMINE \"{mailbox}\""));
    assert!(r.ok(), "{}", r.tagged);
    FETCH_FORMS
        .iter()
        .map(|form| {
            let r = c.cmd(&format!("UID FETCH {uid} ({form})"));
            assert!(r.ok(), "{form}: {}", r.tagged);
            // The tagged line (and its CRLF) is the tag's, not the message's.
            let tagged_at = r.bytes.len() - r.tagged.len() - 2;
            (form.to_string(), r.bytes[..tagged_at].to_vec())
        })
        .collect()
}

/// Every FETCH form of `uid` through `proxied` is byte for byte what `direct` (a
/// connection to the server itself) gets.
pub fn assert_same_bytes(proxied: &mut RawImap, direct: &mut RawImap, mailbox: &str, uid: u32) {
    let got = fetch_every_form(proxied, mailbox, uid);
    let want = fetch_every_form(direct, mailbox, uid);
    for ((form, g), (_, w)) in got.iter().zip(&want) {
        assert!(
            g == w,
            "{mailbox} UID {uid} {form}: the proxy returned\n{}\nthe server\n{}",
            String::from_utf8_lossy(g),
            String::from_utf8_lossy(w)
        );
    }
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
