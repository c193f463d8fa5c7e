//! mbsync (isync) through the proxy with tracking, against the private Dovecot: a
//! message tracked by keyword through the proxy lands in mbsync's Maildir exactly
//! as the server has it, with its flags and the state keyword upstream; so does an
//! untracked one. "Exactly" as mbsync stores any message: with LF line ends and its
//! own `X-TUID:` header line, which are undone here. A copy that mbsync uploads
//! while its Message-ID is tracked goes up with the block written into it.

mod common;
mod tracking_support;

use common::clients::{self, as_fetched};
use common::PASSWORD;
use std::path::{Path, PathBuf};
use tracking_support::*;

/// The Maildir file (in cur/ or new/) whose contents hold `needle`.
fn maildir_file(folder: &Path, needle: &str) -> PathBuf {
    let mut found = Vec::new();
    for sub in ["cur", "new"] {
        for e in std::fs::read_dir(folder.join(sub)).unwrap().flatten() {
            let bytes = std::fs::read(e.path()).unwrap();
            if String::from_utf8_lossy(&bytes).contains(needle) {
                found.push(e.path());
            }
        }
    }
    assert_eq!(found.len(), 1, "files holding {needle}: {found:?}");
    found.remove(0)
}

/// The Maildir flag letters of a file name (`…:2,FS` → "FS").
fn maildir_flags(p: &Path) -> String {
    let name = p.file_name().unwrap().to_string_lossy().into_owned();
    name.rsplit_once(":2,")
        .map(|(_, f)| f.to_string())
        .unwrap_or_default()
}

#[test]
fn mbsync_through_the_proxy_gets_the_exact_original_of_tracked_mail() {
    let env = Env::start("");
    let (user, _) = env.user("mbsync", true);
    let tracked = message("mbsync-tracked@customer.example", "Sync me tracked", "");
    let plain = message("mbsync-plain@customer.example", "Sync me plain", "");
    let mut direct = env.direct(&user);
    assert!(direct.append("INBOX", &tracked).ok());
    assert!(direct.append("INBOX", &plain).ok());

    let mut c = env.through_proxy(&user);
    assert!(c.cmd("SELECT INBOX").ok());
    assert!(c.cmd("UID STORE 1 +FLAGS.SILENT ($CRM_Track)").ok());
    wait_keyword(&mut direct, "INBOX", 1, "$CRM_Tracked", true);
    assert!(c.cmd("UID STORE 1 +FLAGS.SILENT (\\Seen \\Flagged)").ok());
    assert!(c.cmd("UID STORE 2 +FLAGS.SILENT (\\Seen)").ok());
    let (_, view) = fetch(&mut c, 1, "BODY.PEEK[]");
    assert_eq!(view, tracked);

    let work = tempfile::tempdir().unwrap();
    let local = work.path().join("mail");
    let (ok, out) = clients::mbsync(work.path(), env.proxy.imap, &user, PASSWORD, &local);
    assert!(ok, "mbsync through the proxy: {out}");

    // The tracked message: the server's bytes, exactly.
    let f = maildir_file(&local.join("INBOX"), "mbsync-tracked@customer.example");
    let got = as_fetched(&std::fs::read(&f).unwrap());
    assert_eq!(got, tracked);
    assert_eq!(maildir_flags(&f), "FS", "{f:?}");
    // It is in the store.
    let shown = show(env.data(), &email_id(env.data(), "Sync me tracked"));
    assert!(!shown["tracking"].as_array().unwrap().is_empty(), "{shown}");

    // The untracked one is the server's copy, byte for byte.
    let f = maildir_file(&local.join("INBOX"), "mbsync-plain@customer.example");
    assert_eq!(as_fetched(&std::fs::read(&f).unwrap()), plain);
    assert_eq!(maildir_flags(&f), "S", "{f:?}");

    // A second sync changes nothing and fails nothing (sizes stayed consistent).
    let (ok, out) = clients::mbsync(work.path(), env.proxy.imap, &user, PASSWORD, &local);
    assert!(ok, "second mbsync: {out}");
    let f = maildir_file(&local.join("INBOX"), "mbsync-tracked@customer.example");
    assert_eq!(as_fetched(&std::fs::read(&f).unwrap()), view);
    // Flags flow back up through the proxy: answered locally, \Answered upstream.
    let answered = f.with_file_name(format!(
        "{}:2,FRS",
        f.file_name()
            .unwrap()
            .to_string_lossy()
            .rsplit_once(":2,")
            .unwrap()
            .0
    ));
    std::fs::rename(&f, &answered).unwrap();
    let (ok, out) = clients::mbsync(work.path(), env.proxy.imap, &user, PASSWORD, &local);
    assert!(ok, "third mbsync: {out}");
    let server = flags(&mut direct, "INBOX", 1);
    assert!(server.contains("\\Answered"), "{server}");
    assert!(server.contains("$CRM_Tracked"), "{server}");
    // Nothing was written into the server's message.
    assert_eq!(direct.fetch_body(1), tracked);
}

#[test]
fn mbsync_uploading_a_sent_copy_with_a_request_attached_writes_the_block() {
    let env = Env::start("");
    let (user, _) = env.user("mbsyncup", true);
    let sent = message("mbsync-sent@customer.example", "Sent with mbsync", "");
    let mut direct = env.direct(&user);
    assert!(direct.append("INBOX", &sent).ok());
    let mut c = env.through_proxy(&user);
    assert!(c.cmd("SELECT INBOX").ok());
    assert!(c.cmd("UID STORE 1 +FLAGS.SILENT ($CRM_Track)").ok());
    wait_keyword(&mut direct, "INBOX", 1, "$CRM_Tracked", true);

    // First sync makes the local folders; then a copy is put in the local Sent
    // folder (as a client that sent it would) and the next sync uploads it.
    let work = tempfile::tempdir().unwrap();
    let local = work.path().join("mail");
    let (ok, out) = clients::mbsync(work.path(), env.proxy.imap, &user, PASSWORD, &local);
    assert!(ok, "first mbsync: {out}");
    std::fs::write(local.join("Sent/new/1700000000.1.host:2,S"), &sent).unwrap();
    let (ok, out) = clients::mbsync(work.path(), env.proxy.imap, &user, PASSWORD, &local);
    assert!(ok, "upload through the proxy: {out}");

    // The server's copy starts with the block; the message follows (mbsync may
    // add its own X-TUID line to the header).
    assert!(direct.cmd("SELECT Sent").ok());
    let stored = direct.fetch_body(1);
    let block = block_of(&stored);
    let text = String::from_utf8_lossy(&stored).into_owned();
    assert!(
        text.starts_with(&format!("X-CRM-Tracked-By: {user}\r\n")),
        "{text}"
    );
    assert!(text[block.len()..].contains("Message-ID: <mbsync-sent@customer.example>"));
    assert!(text.ends_with("Dana\r\n"), "{text}");
    // Through the proxy, the server's bytes: one block.
    assert!(c.cmd("SELECT Sent").ok());
    let (_, view) = fetch(&mut c, 1, "BODY.PEEK[]");
    assert_eq!(view, stored);
}
