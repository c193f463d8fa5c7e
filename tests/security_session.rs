//! Holes an adversarial review found in the IMAP session and the sync worker
//! (issue 11), each through a real `crmproxy serve` and the private Dovecot:
//! - a tag reused by a pipelined second LOGIN made the proxy believe the wrong
//!   user: now a tag in flight gets `BAD` from the proxy, and the identity is the
//!   one the server answered for;
//! - a track request whose worker connection died under it (Dovecot restarted,
//!   here: every session kicked) was dropped: now it runs again on a fresh one;
//! - an APPEND literal count of 2^64 − 1 wrapped the proxy's arithmetic: now
//!   every count a peer sends is added with a check.

mod common;
mod tracking_support;

use common::RawImap;
use tracking_support::*;

#[test]
fn a_reused_tag_gets_bad_and_the_session_is_who_the_server_answered_for() {
    let env = Env::start("");
    let (bob, _) = env.user("bob", true);
    let (alice, _) = env.user("alice", true);
    let m = message("tag-reuse@customer.example", "Bob's own", "");
    let mut bob_direct = env.direct(&bob);
    assert!(bob_direct.append("INBOX", &m).ok());
    let mut alice_direct = env.direct(&alice);
    assert!(alice_direct.append("INBOX", &m).ok());

    let mut c = RawImap::connect(env.proxy.imap).unwrap();
    // Both LOGINs at once, with one tag: the second must never reach the server.
    c.send(
        format!(
            "x LOGIN {bob} {pw}\r\nx LOGIN {alice} wrong-password\r\n",
            pw = common::PASSWORD
        )
        .as_bytes(),
    );
    let mut answers = Vec::new();
    while answers.len() < 2 {
        let line = c.read_line().unwrap();
        if line.starts_with("x ") {
            answers.push(line);
        }
    }
    assert!(
        answers
            .iter()
            .any(|a| a.starts_with("x BAD") && a.contains("tag already in use")),
        "{answers:?}"
    );
    assert!(answers.iter().any(|a| a.starts_with("x OK")), "{answers:?}");

    // The session is Bob's: his tracking request acts on his mailbox, not Alice's.
    assert!(c.cmd("SELECT INBOX").ok());
    let r = c.cmd("UID STORE 1 +FLAGS ($CRM_Track)");
    assert!(r.ok(), "{}", r.tagged);
    wait_keyword(&mut bob_direct, "INBOX", 1, "$CRM_Tracked", true);
    let f = flags(&mut alice_direct, "INBOX", 1);
    assert!(!f.contains("$CRM_"), "Alice's mailbox was touched: {f}");
    let shown = show(env.data(), &email_id(env.data(), "Bob's own"));
    let owners: Vec<&str> = shown["tracking"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["owner"].as_str())
        .collect();
    assert_eq!(owners.len(), 1, "{shown}");

    // A tag is free again once its command is answered.
    assert!(c.cmd("NOOP").ok());
    c.send(b"y NOOP\r\n");
    assert!(c.read_until_tagged("y").unwrap().ok());
    c.send(b"y NOOP\r\n");
    assert!(c.read_until_tagged("y").unwrap().ok());
}

#[test]
fn a_track_request_whose_worker_connection_died_is_done_on_a_fresh_one() {
    let env = Env::start("");
    let (user, _) = env.user("restart", true);
    let m = message(
        "after-restart@customer.example",
        "Asked after a restart",
        "",
    );
    let mut direct = env.direct(&user);
    assert!(direct.cmd("CREATE Projects").ok());
    assert!(direct.append("Projects", &m).ok());
    // The worker connects at the first login through the proxy.
    let mut c = env.through_proxy(&user);
    assert!(c.cmd("NOOP").ok());
    wait_for("the sync worker's connections", || {
        (env.dv.sessions(&user) >= 3).then_some(())
    });
    // The server drops every session of the user (as a restart does).
    env.dv.kick(&user);
    // The client reconnects and asks, outside INBOX (no sweep looks there).
    let mut c = env.through_proxy(&user);
    assert!(c.cmd("SELECT Projects").ok());
    let r = c.cmd("UID STORE 1 +FLAGS.SILENT ($CRM_Track)");
    assert!(r.ok(), "{}", r.tagged);
    let mut direct = env.direct(&user);
    wait_keyword(&mut direct, "Projects", 1, "$CRM_Tracked", true);
    assert!(email_titled(env.data(), "Asked after a restart"));
}

#[test]
fn an_append_count_that_would_overflow_is_relayed_unchanged_and_nothing_breaks() {
    let env = Env::start("");
    let (user, _) = env.user("overflow", true);
    let m = message("overflow@customer.example", "Tracked then appended", "");
    let mut direct = env.direct(&user);
    assert!(direct.append("INBOX", &m).ok());
    let mut c = env.through_proxy(&user);
    assert!(c.cmd("SELECT INBOX").ok());
    assert!(c.cmd("UID STORE 1 +FLAGS.SILENT ($CRM_Track)").ok());
    wait_keyword(&mut direct, "INBOX", 1, "$CRM_Tracked", true);

    // A tracked Message-ID: the proxy would write the block into this APPEND,
    // but there is no room left in the count the client chose.
    let mut a = env.through_proxy(&user);
    a.send(b"a APPEND Sent {18446744073709551615+}\r\n");
    a.send(&m);
    // Whatever the server makes of it (Dovecot waits for the rest), the proxy
    // neither panics (a debug build checks every addition) nor shrinks the count,
    // and it serves on.
    a.set_read_timeout(Some(std::time::Duration::from_millis(500)));
    let _ = a.read_line();
    drop(a);
    let mut again = env.through_proxy(&user);
    assert!(again.cmd("NOOP").ok());
    let r = direct.cmd("STATUS Sent (MESSAGES)");
    assert!(r.text().contains("MESSAGES 0"), "{}", r.text());
    let log = env.proxy.stderr();
    assert!(!log.contains("panicked"), "{log}");
}
