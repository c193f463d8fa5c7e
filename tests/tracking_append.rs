//! APPENDs with a tracking request attached, end to end through a real
//! `crmproxy serve` and the private Dovecot (SPEC section 3): the copy the server
//! stores carries the X-CRM-* block for real (another client connected straight
//! to Dovecot sees it), and a client of the proxy sees exactly the server's bytes,
//! in every FETCH form, also after copies, moves and untracking (the block holds
//! only facts that stay true; status lives in keywords). Synchronising and LITERAL+
//! APPENDs both; an APPEND without a request goes up byte for byte; an S/MIME
//! signed message still verifies after the block was written into it.

mod common;
mod tracking_support;

use common::imap::RawImap;
use std::path::{Path, PathBuf};
use tracking_support::*;

/// The UID of the newest message in `mailbox` (what an APPEND just added).
fn newest_uid(c: &mut RawImap, mailbox: &str) -> u32 {
    assert!(c.cmd(&format!("SELECT {mailbox}")).ok());
    let r = c.cmd("UID SEARCH ALL");
    r.text()
        .lines()
        .find(|l| l.starts_with("* SEARCH"))
        .and_then(|l| l.split(' ').filter_map(|n| n.trim().parse().ok()).max())
        .expect("a message in the mailbox")
}

/// Track `raw` (appended straight to INBOX) with the request keyword through
/// the proxy, so that its Message-ID has a tracking record in the user's mailbox.
fn track_in_inbox(env: &Env, user: &str, raw: &[u8]) {
    let mut direct = env.direct(user);
    assert!(direct.append("INBOX", raw).ok());
    let uid = newest_uid(&mut direct, "INBOX");
    let mut c = env.through_proxy(user);
    assert!(c.cmd("SELECT INBOX").ok());
    let r = c.cmd(&format!("UID STORE {uid} +FLAGS.SILENT ($CRM_Track)"));
    assert!(r.ok(), "{}", r.tagged);
    wait_keyword(&mut direct, "INBOX", uid, "$CRM_Tracked", true);
}

fn count(hay: &[u8], needle: &str) -> usize {
    hay.windows(needle.len())
        .filter(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
        .count()
}

#[test]
fn an_append_with_a_request_attached_carries_the_block_and_the_proxy_relays_it_as_stored() {
    let env = Env::start("");
    let (user, _) = env.user("append", true);
    let m = message("append-1@customer.example", "Quote for Contoso", "");
    track_in_inbox(&env, &user, &m);

    // The client saves a copy into Sent (a synchronising literal: the proxy reads
    // the header before the command goes up, so it gives the `+` itself).
    let mut c = env.through_proxy(&user);
    let r = c.append("Sent", &m);
    assert!(r.ok(), "{}", r.tagged);
    assert!(r.tagged.contains("APPENDUID"), "{}", r.tagged);

    // Stored for real: block at the top, then the exact original bytes. The block
    // says who tracked it, when, the activity: facts that stay true.
    let mut direct = env.direct(&user);
    let uid = newest_uid(&mut direct, "Sent");
    let stored = direct.fetch_body(uid);
    let block = block_of(&stored);
    let text = String::from_utf8_lossy(&block).into_owned();
    assert!(
        text.starts_with(&format!("X-CRM-Tracked-By: {user}\r\nX-CRM-Tracked-At: 20")),
        "{text}"
    );
    assert!(text.contains("X-CRM-Activity-Id: "), "{text}");
    assert!(!text.contains("Status"), "{text}");
    assert_eq!(&stored[block.len()..], &m[..]);
    assert_eq!(
        activity_id(&block),
        email_id(env.data(), "Quote for Contoso")
    );

    // Through the proxy: the server's bytes, one block, in every form.
    assert_eq!(count(&stored, "X-CRM-Activity-Id:"), 1);
    assert_same_bytes(&mut c, &mut direct, "Sent", uid);

    // Copied and moved through the proxy (archiving): the copies are the
    // server's bytes too.
    assert!(c.cmd("CREATE Archive").ok());
    let r = c.cmd(&format!("UID COPY {uid} Archive"));
    assert!(r.ok() && r.tagged.contains("COPYUID"), "{}", r.tagged);
    let r = c.cmd(&format!("UID MOVE {uid} Archive"));
    assert!(r.ok() && r.text().contains("COPYUID"), "{}", r.text());
    for archived in [1, 2] {
        assert_same_bytes(&mut c, &mut direct, "Archive", archived);
        let (_, copy) = fetch(&mut c, archived, "BODY.PEEK[]");
        assert_eq!(copy, stored, "archived copy {archived}");
    }

    // Untracked: keywords change, bytes do not (the written block stays as
    // written, through the proxy as on the server).
    let id = email_id(env.data(), "Quote for Contoso");
    assert!(c.cmd("SELECT INBOX").ok());
    let r = c.cmd("UID STORE 1 -FLAGS ($CRM_Tracked)");
    assert!(r.ok(), "{}", r.tagged);
    wait_for("untracked", || {
        show(env.data(), &id)["tracking"]
            .as_array()
            .unwrap()
            .is_empty()
            .then_some(())
    });
    assert_same_bytes(&mut c, &mut direct, "Archive", 2);
    let (_, copy) = fetch(&mut c, 2, "BODY.PEEK[]");
    assert_eq!(copy, stored);
}

#[test]
fn literal_plus_appends_and_appends_without_a_request() {
    let env = Env::start("");
    let (user, _) = env.user("appendplus", true);
    let tracked = message("append-plus@customer.example", "Tracked one", "");
    track_in_inbox(&env, &user, &tracked);
    let mut c = env.through_proxy(&user);
    let mut direct = env.direct(&user);

    // LITERAL+ (the client does not wait): the block goes up too.
    c.send(format!("p1 APPEND Drafts (\\Draft) {{{}+}}\r\n", tracked.len()).as_bytes());
    c.send(&tracked);
    c.send(b"\r\n");
    let r = c.read_until_tagged("p1").unwrap();
    assert!(r.ok(), "{}", r.tagged);
    let uid = newest_uid(&mut direct, "Drafts");
    let stored = direct.fetch_body(uid);
    let block = block_of(&stored);
    assert!(!block.is_empty(), "{}", String::from_utf8_lossy(&stored));
    assert_eq!(&stored[block.len()..], &tracked[..]);

    // No request attached: both kinds of APPEND go up byte for byte.
    let plain = message("append-plain@customer.example", "Nothing attached", "");
    let r = c.append("Drafts", &plain);
    assert!(r.ok(), "{}", r.tagged);
    let uid = newest_uid(&mut direct, "Drafts");
    assert_eq!(direct.fetch_body(uid), plain);
    let plain2 = message("append-plain2@customer.example", "Nothing either", "");
    c.send(format!("p2 APPEND Drafts {{{}+}}\r\n", plain2.len()).as_bytes());
    c.send(&plain2);
    c.send(b"\r\n");
    assert!(c.read_until_tagged("p2").unwrap().ok());
    let uid = newest_uid(&mut direct, "Drafts");
    assert_eq!(direct.fetch_body(uid), plain2);

    // CATENATE (RFC 4469): its first literal need not be the top of the message,
    // so it goes up untouched.
    c.send(format!("p3 APPEND Drafts CATENATE (TEXT {{{}+}}\r\n", tracked.len()).as_bytes());
    c.send(&tracked);
    c.send(b")\r\n");
    let r = c.read_until_tagged("p3").unwrap();
    assert!(r.ok(), "{}", r.tagged);
    let uid = newest_uid(&mut direct, "Drafts");
    assert_eq!(direct.fetch_body(uid), tracked);

    // A message that carries a block already goes up as it is (no second one).
    let r = c.append("Drafts", &stored);
    assert!(r.ok(), "{}", r.tagged);
    let uid = newest_uid(&mut direct, "Drafts");
    assert_eq!(direct.fetch_body(uid), stored);

    // An APPEND the server refuses: the tagged NO reaches the client, nothing
    // is stored, and the session goes on.
    let r = c.append("\"No such folder\"", &tracked);
    assert!(!r.ok(), "{}", r.tagged);
    assert!(r.tagged.contains("TRYCREATE"), "{}", r.tagged);
    assert!(c.cmd("NOOP").ok());
}

#[test]
fn python_imaplib_appends_a_sent_copy_that_carries_the_block() {
    let env = Env::start("");
    let (user, _) = env.user("appendpy", true);
    let m = message("append-py@customer.example", "Sent from imaplib", "");
    track_in_inbox(&env, &user, &m);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sent.eml");
    std::fs::write(&file, &m).unwrap();
    let (ok, out, err) = common::clients::run_python(
        "append.py",
        env.proxy.imap,
        common::clients::ClientTls::Plain,
        None,
        &user,
        common::PASSWORD,
        &["Sent", file.to_str().unwrap()],
    );
    assert!(ok && out.contains("APPENDUID"), "{out}{err}");
    let mut direct = env.direct(&user);
    let uid = newest_uid(&mut direct, "Sent");
    let stored = direct.fetch_body(uid);
    let block = block_of(&stored);
    assert!(
        String::from_utf8_lossy(&block).starts_with("X-CRM-Tracked-By: "),
        "{}",
        String::from_utf8_lossy(&stored)
    );
    assert_eq!(&stored[block.len()..], &m[..]);
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/smime")
        .join(name)
}

fn verifies(raw: &[u8]) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.eml");
    std::fs::write(&path, raw).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["smime", "-verify", "-CAfile"])
        .arg(fixture("ca.crt"))
        .arg("-in")
        .arg(&path)
        .args(["-out", "/dev/null"])
        .output()
        .expect("run openssl");
    out.status.success()
}

#[test]
fn a_signed_message_appended_with_its_block_still_verifies() {
    let env = Env::start("");
    let (user, _) = env.user("appendsmime", true);
    for name in ["signed-detached.eml", "signed-opaque.eml"] {
        let raw = std::fs::read(fixture(name)).unwrap();
        assert!(verifies(&raw), "{name} verifies as made");
        track_in_inbox(&env, &user, &raw);
        let mut c = env.through_proxy(&user);
        let r = c.append("Sent", &raw);
        assert!(r.ok(), "{}", r.tagged);
        let mut direct = env.direct(&user);
        let uid = newest_uid(&mut direct, "Sent");
        let stored = direct.fetch_body(uid);
        let block = block_of(&stored);
        let text = String::from_utf8_lossy(&block).into_owned();
        assert!(text.contains("X-CRM-SMIME: signed"), "{name}: {text}");
        assert_eq!(&stored[block.len()..], &raw[..], "{name}");
        assert!(verifies(&stored), "{name}: the stored copy verifies");
        assert!(c.cmd("SELECT Sent").ok());
        let (_, view) = fetch(&mut c, uid, "BODY.PEEK[]");
        assert_eq!(view, stored, "{name}");
        assert!(
            verifies(&view),
            "{name}: the copy through the proxy verifies"
        );
    }
}
