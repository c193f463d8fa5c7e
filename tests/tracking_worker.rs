//! The sync worker and sessions end to end: automatic tracking of a reply arriving
//! in INBOX (IDLE), a delegate's session (SASL PLAIN with authzid), and S/MIME
//! messages whose signatures still verify on what the client receives through the
//! proxy and on the stored raw copy.

mod common;
mod refused_login;
mod slow_store;
mod tracking_support;

use base64::Engine as _;
use sha2::Digest;
use std::path::{Path, PathBuf};
use tracking_support::*;

#[test]
fn a_reply_to_a_tracked_email_arriving_in_inbox_is_tracked_automatically() {
    let env = Env::start("");
    let (user, _) = env.user("reply", true);
    let original = message("thread-start@customer.example", "Offer for 2027", "");
    let mut direct = env.direct(&user);
    assert!(direct.append("INBOX", &original).ok());
    let mut c = env.through_proxy(&user);
    assert!(c.cmd("SELECT INBOX").ok());
    assert!(c.cmd("UID STORE 1 +FLAGS.SILENT ($CRM_Track)").ok());
    wait_keyword(&mut direct, "INBOX", 1, "$CRM_Tracked", true);

    // Delivered while the client is connected (here: appended directly upstream).
    let reply = message(
        "thread-reply@customer.example",
        "Re: Offer for 2027",
        "In-Reply-To: <thread-start@customer.example>\r\n",
    );
    let unrelated = message("unrelated@customer.example", "Lunch?", "");
    assert!(direct.append("INBOX", &unrelated).ok());
    assert!(direct.append("INBOX", &reply).ok());
    wait_keyword(&mut direct, "INBOX", 3, "$CRM_Tracked", true);

    assert!(c.cmd("NOOP").ok());
    let (_, body) = fetch(&mut c, 3, "BODY.PEEK[]");
    assert_eq!(body, reply);
    let shown = show(env.data(), &email_id(env.data(), "Re: Offer for 2027")).to_string();
    assert!(shown.contains("in_reply_to"), "{shown}");
    assert!(shown.contains("automatic"), "{shown}");
    // Mail that replies to nothing tracked is left alone (default option).
    let f = flags(&mut direct, "INBOX", 2);
    assert!(!f.contains("$CRM_Tracked"), "{f}");
    let (_, body) = fetch(&mut c, 2, "BODY.PEEK[]");
    assert_eq!(body, unrelated);
}

#[test]
fn a_reply_the_client_saves_in_sent_is_tracked() {
    let env = Env::start("");
    let (user, _) = env.user("sent", true);
    let original = message("sent-thread@customer.example", "Question about pricing", "");
    let mut direct = env.direct(&user);
    assert!(direct.append("INBOX", &original).ok());
    let mut c = env.through_proxy(&user);
    assert!(c.cmd("LIST \"\" \"*\"").ok());
    assert!(c.cmd("SELECT INBOX").ok());
    assert!(c.cmd("UID STORE 1 +FLAGS.SILENT ($CRM_Track)").ok());
    wait_keyword(&mut direct, "INBOX", 1, "$CRM_Tracked", true);

    let reply = format!(
        "From: Owner <{user}>\r\nTo: Dana Sender <dana@customer.example>\r\n\
         Subject: Re: Question about pricing\r\nDate: Tue, 24 Nov 2026 11:00:00 +0000\r\n\
         Message-ID: <sent-reply@crm-test.example>\r\n\
         In-Reply-To: <sent-thread@customer.example>\r\n\r\nHere are the prices.\r\n"
    )
    .into_bytes();
    let other = message("sent-other@crm-test.example", "Unrelated note", "");
    assert!(c.append("Sent", &other).ok());
    assert!(c.append("Sent", &reply).ok());
    wait_keyword(&mut direct, "Sent", 2, "$CRM_Tracked", true);
    assert!(c.cmd("SELECT Sent").ok());
    let (_, body) = fetch(&mut c, 2, "BODY.PEEK[]");
    assert_eq!(body, reply);
    let shown = show(
        env.data(),
        &email_id(env.data(), "Re: Question about pricing"),
    )
    .to_string();
    assert!(
        shown.contains("in_reply_to") && shown.contains("\"sent\""),
        "{shown}"
    );
    let f = flags(&mut direct, "Sent", 1);
    assert!(!f.contains("$CRM_Tracked"), "{f}");
}

/// A reply that reaches Sent without passing through the proxy (saved by another
/// device, or by the server itself) is found by the worker's IDLE on Sent.
#[test]
fn a_reply_saved_in_sent_elsewhere_is_tracked_by_the_sent_watch() {
    let env = Env::start("");
    let (user, _) = env.user("sentwatch", true);
    let original = message("watch-thread@customer.example", "Renewal terms", "");
    let mut direct = env.direct(&user);
    assert!(direct.append("INBOX", &original).ok());
    let mut c = env.through_proxy(&user);
    assert!(c.cmd("SELECT INBOX").ok());
    assert!(c.cmd("UID STORE 1 +FLAGS.SILENT ($CRM_Track)").ok());
    wait_keyword(&mut direct, "INBOX", 1, "$CRM_Tracked", true);

    let reply = format!(
        "From: Owner <{user}>\r\nTo: Erin <erin@customer.example>\r\n\
         Subject: Re: Renewal terms\r\nDate: Tue, 24 Nov 2026 11:30:00 +0000\r\n\
         Message-ID: <watch-reply@crm-test.example>\r\n\
         In-Reply-To: <watch-thread@customer.example>\r\n\r\nAgreed.\r\n"
    )
    .into_bytes();
    // Straight to the server: the proxy never sees this APPEND.
    assert!(direct.append("Sent", &reply).ok());
    wait_keyword(&mut direct, "Sent", 1, "$CRM_Tracked", true);
    assert!(c.cmd("SELECT Sent").ok());
    let (_, body) = fetch(&mut c, 1, "BODY.PEEK[]");
    assert_eq!(body, reply);
    let shown = show(env.data(), &email_id(env.data(), "Re: Renewal terms")).to_string();
    assert!(shown.contains("in_reply_to"), "{shown}");
}

#[test]
fn a_delegate_tracks_for_the_owner_and_is_recorded_as_the_actor() {
    let env = Env::start("");
    let (owner, owner_id) = env.user("owner", true);
    let (delegate, delegate_id) = env.user("assistant", true);
    crm(env.data(), &["user", "delegate", &owner, &delegate]);
    let m = message("delegated@customer.example", "For the boss", "");
    let mut direct = env.direct(&owner);
    assert!(direct.append("INBOX", &m).ok());

    let mut c = common::RawImap::connect(env.proxy.imap).unwrap();
    let ir = base64::engine::general_purpose::STANDARD.encode(format!(
        "{owner}\0{delegate}\0{}",
        common::dovecot::MASTER_PASSWORD
    ));
    let r = c.cmd(&format!("AUTHENTICATE PLAIN {ir}"));
    assert!(r.ok(), "{}", r.tagged);
    assert!(c.cmd("SELECT INBOX").ok());
    assert!(c.cmd("UID STORE 1 +FLAGS ($CRM_Track)").ok());
    wait_keyword(&mut direct, "INBOX", 1, "$CRM_Tracked", true);

    let (_, body) = fetch(&mut c, 1, "BODY.PEEK[]");
    assert_eq!(body, m);
    let shown = show(env.data(), &email_id(env.data(), "For the boss"));
    let tracking = shown["tracking"].as_array().unwrap();
    assert_eq!(tracking.len(), 1, "{shown}");
    assert_eq!(
        tracking[0]["owner"].as_str(),
        Some(owner_id.as_str()),
        "{shown}"
    );
    assert_eq!(
        tracking[0]["requested_by"].as_str(),
        Some(delegate_id.as_str()),
        "{shown}"
    );

    // The owner's own session sees it tracked as well.
    let mut o = env.through_proxy(&owner);
    assert!(o.cmd("SELECT INBOX").ok());
    let f = flags(&mut o, "INBOX", 1);
    assert!(f.contains("$CRM_Tracked"), "{f}");

    // Someone who is not the owner's delegate is refused.
    let (stranger, _) = env.user("notdelegate", true);
    let mut s = common::RawImap::connect(env.proxy.imap).unwrap();
    let ir = base64::engine::general_purpose::STANDARD.encode(format!(
        "{owner}\0{stranger}\0{}",
        common::dovecot::MASTER_PASSWORD
    ));
    assert!(s.cmd(&format!("AUTHENTICATE PLAIN {ir}")).ok());
    assert!(s.cmd("SELECT INBOX").ok());
    let r = s.cmd("UID STORE 1 +FLAGS ($CRM_Track)");
    assert!(
        r.tagged.contains("NO [ALERT]") && r.tagged.contains("not a delegate"),
        "{}",
        r.tagged
    );
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/smime")
        .join(name)
}

fn verify(path: &Path) -> std::process::Output {
    std::process::Command::new("openssl")
        .args(["smime", "-verify", "-CAfile"])
        .arg(fixture("ca.crt"))
        .arg("-in")
        .arg(path)
        .args(["-out", "/dev/null"])
        .output()
        .expect("run openssl")
}

/// The stored raw copy: a content-addressed file named by its SHA-256.
fn stored_blob(data: &Path, raw: &[u8]) -> PathBuf {
    let name = hex(&sha2::Sha256::digest(raw));
    fn walk(dir: &Path, name: &str) -> Option<PathBuf> {
        for e in std::fs::read_dir(dir).ok()?.flatten() {
            let p = e.path();
            if p.is_dir() {
                if let Some(f) = walk(&p, name) {
                    return Some(f);
                }
            } else if p.file_name().is_some_and(|n| n == name) {
                return Some(p);
            }
        }
        None
    }
    walk(data, &name).expect("the raw message stored as a blob")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn smime_messages_keep_verifying_through_the_proxy_and_in_the_store() {
    let env = Env::start("");
    let (user, _) = env.user("smime", true);
    let mut direct = env.direct(&user);
    let names = ["signed-detached.eml", "signed-opaque.eml", "encrypted.eml"];
    for n in names {
        let bytes = std::fs::read(fixture(n)).unwrap();
        assert!(direct.append("INBOX", &bytes).ok());
    }
    let mut c = env.through_proxy(&user);
    assert!(c.cmd("SELECT INBOX").ok());
    assert!(c.cmd("UID STORE 1:3 +FLAGS.SILENT ($CRM_Track)").ok());
    let dir = tempfile::tempdir().unwrap();
    for (i, n) in names.iter().enumerate() {
        let uid = i as u32 + 1;
        wait_keyword(&mut direct, "INBOX", uid, "$CRM_Tracked", true);
        // What the server holds, as any client gets it directly, and through the proxy.
        let original = direct.fetch_body(uid);
        let (_, body) = fetch(&mut c, uid, "BODY.PEEK[]");
        assert_eq!(body, original, "{n}: bytes changed");
        let blob = stored_blob(env.data(), &original);
        assert_eq!(std::fs::read(&blob).unwrap(), original, "{n}");
        if n.starts_with("signed") {
            let fetched = dir.path().join(n);
            std::fs::write(&fetched, &body).unwrap();
            for p in [&fetched, &blob] {
                let out = verify(p);
                assert!(
                    out.status.success(),
                    "{n}: openssl smime -verify {}: {}",
                    p.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
    // The tampered fixture does not verify: the check above can fail.
    let out = verify(&fixture("signed-detached-tampered.eml"));
    assert!(!out.status.success());
}

/// `tracking.write_headers = "replace"`.
const REPLACE: &str = "write_headers = \"replace\"\n";

/// FLAGS and INTERNALDATE of a UID, seen directly.
fn flags_and_date(direct: &mut common::RawImap, uid: u32) -> (Vec<String>, String) {
    let (text, _) = fetch(direct, uid, "FLAGS INTERNALDATE");
    let mut flags: Vec<String> = text
        .split("FLAGS (")
        .nth(1)
        .and_then(|f| f.split(')').next())
        .unwrap_or_default()
        .split_whitespace()
        .filter(|f| *f != "\\Recent")
        .map(str::to_owned)
        .collect();
    flags.sort();
    let date = text
        .split("INTERNALDATE \"")
        .nth(1)
        .and_then(|d| d.split('"').next())
        .unwrap_or_default()
        .to_string();
    (flags, date)
}

#[test]
fn replace_mode_writes_the_block_into_a_new_copy_that_keeps_flags_date_and_signatures() {
    let env = Env::start(REPLACE);
    let (user, _) = env.user("replace", true);
    let mut direct = env.direct(&user);
    let names = ["signed-detached.eml", "signed-opaque.eml", "encrypted.eml"];
    let mut originals = Vec::new();
    for n in names {
        let bytes = std::fs::read(fixture(n)).unwrap();
        // Flags and a date of its own, which the copy must keep.
        let r = direct.cmd_with_literal(
            "APPEND INBOX (\\Flagged $Customer) \"01-Feb-2026 08:15:00 +0100\"",
            &bytes,
        );
        assert!(r.ok(), "{}", r.tagged);
        originals.push(bytes);
    }
    let mid_of = |raw: &[u8]| -> String {
        let text = String::from_utf8_lossy(raw).into_owned();
        text.lines()
            .find_map(|l| {
                l.strip_prefix("Message-ID: ")
                    .or_else(|| l.strip_prefix("Message-Id: "))
            })
            .expect("a Message-ID")
            .trim()
            .to_string()
    };
    // The instant the server keeps (Maildir keeps no zone).
    assert!(direct.cmd("EXAMINE INBOX").ok());
    let (_, appended_at) = flags_and_date(&mut direct, 1);
    let mut c = env.through_proxy(&user);
    assert!(c.cmd("SELECT INBOX").ok());
    assert!(c.cmd("UID STORE 1:3 +FLAGS.SILENT ($CRM_Track)").ok());
    let dir = tempfile::tempdir().unwrap();
    let mut copies = Vec::new();
    for (i, (n, original)) in names.iter().zip(&originals).enumerate() {
        let old_uid = i as u32 + 1;
        let mid = mid_of(original);
        // The copy replaces the original: a new UID, the old one gone.
        let uid = wait_for(&format!("{n} replaced"), || {
            uid_of(&mut direct, "INBOX", &mid).filter(|&u| u > 3)
        });
        assert!(uid > old_uid);
        let stored = direct.fetch_body(uid);
        let block = block_of(&stored);
        // The tracking record follows the copy. The worker APPENDs the copy,
        // then expunges the original, then moves the record: the copy shows
        // before the other two are done, so wait for the last of them.
        let id = activity_id(&block);
        wait_for(&format!("{n}: the tracking record at the copy"), || {
            (show(env.data(), &id)["tracking"][0]["location"]["uid"] == uid).then_some(())
        });
        // A fresh EXAMINE: expunges by another session show at a new selection.
        // Searched for by its UID: any answer may also carry an untagged FETCH
        // of another message, whose flags the worker is changing meanwhile.
        assert!(direct.cmd("EXAMINE INBOX").ok());
        let r = direct.cmd(&format!("UID SEARCH UID {old_uid}"));
        let found: Vec<String> = r
            .text()
            .lines()
            .filter_map(|l| l.strip_prefix("* SEARCH"))
            .flat_map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
            .collect();
        assert!(
            r.ok() && found.is_empty(),
            "{n}: the original is gone: {}",
            r.text()
        );
        let text = String::from_utf8_lossy(&block).replace("\r\n ", " ");
        assert!(
            text.starts_with(&format!("X-CRM-Tracked-By: {user}\r\n")),
            "{n}: {text}"
        );
        assert!(text.contains("X-CRM-SMIME: "), "{n}: {text}");
        assert_eq!(
            &stored[block.len()..],
            &original[..],
            "{n}: only a block on top"
        );
        assert!(direct.cmd("EXAMINE INBOX").ok());
        let (flags, date) = flags_and_date(&mut direct, uid);
        assert_eq!(
            flags,
            ["$CRM_Tracked", "$Customer", "\\Flagged"],
            "{n}: flags kept"
        );
        assert_eq!(date, appended_at, "{n}: INTERNALDATE kept");
        // The activity keeps the original.
        let blob = stored_blob(env.data(), original);
        assert_eq!(std::fs::read(&blob).unwrap(), *original, "{n}");
        if n.starts_with("signed") {
            assert!(text.contains("verified=yes"), "{n}: {text}");
            let copy = dir.path().join(n);
            std::fs::write(&copy, &stored).unwrap();
            let out = verify(&copy);
            assert!(
                out.status.success(),
                "{n}: openssl smime -verify on the server's copy: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        } else {
            assert!(text.contains("X-CRM-SMIME: encrypted"), "{n}: {text}");
        }
        copies.push(uid);
    }
    // Through the proxy: the server's bytes of each new UID, compared once the
    // worker is done with all three (while it still sets keywords on one, the
    // two sessions may see its flag update in different answers).
    for uid in copies {
        assert_same_bytes(&mut c, &mut direct, "INBOX", uid);
    }
}

/// The server without UIDPLUS (no APPENDUID, no UID EXPUNGE), and one that says
/// it is Gmail (an expunge removes a label only).
const NO_UIDPLUS: &str = "imap_capability = IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE NAMESPACE CHILDREN SPECIAL-USE MOVE\n";
const GMAIL: &str = "imap_capability = +X-GM-EXT-1\n";

#[test]
fn replace_mode_is_refused_with_a_reason_where_it_cannot_be_safe() {
    for (server, reason) in [(NO_UIDPLUS, "UIDPLUS"), (GMAIL, "Gmail")] {
        let env = Env::start_on(common::dovecot::dovecot_with(server), REPLACE);
        let (user, _) = env.user("replace-refused", true);
        let m = message("replace-refused@customer.example", "Stays as it is", "");
        let mut direct = env.direct(&user);
        assert!(direct.append("INBOX", &m).ok());
        let mut c = env.through_proxy(&user);
        assert!(c.cmd("SELECT INBOX").ok());
        assert!(c.cmd("UID STORE 1 +FLAGS.SILENT ($CRM_Track)").ok());
        wait_keyword(&mut direct, "INBOX", 1, "$CRM_Tracked", true);
        // Tracked, and the message is the original at its UID.
        assert!(email_titled(env.data(), "Stays as it is"));
        // The user is told why (an ALERT before the next answer).
        let notice = wait_for("the refusal notice", || {
            let r = c.cmd("NOOP");
            let t = r.text();
            t.contains("[ALERT] CRM: tracking headers").then_some(t)
        });
        assert!(notice.contains(reason), "{notice}");
        assert_eq!(direct.fetch_body(1), m);
        assert_eq!(
            uid_of(&mut direct, "INBOX", "replace-refused@customer.example"),
            Some(1)
        );
    }
}

/// A quota the original fits in and its copy does not: the copy's APPEND fails.
const SMALL_QUOTA: &str = "mail_plugins = $mail_plugins quota\n\
protocol imap {\n  mail_plugins = zlib imap_zlib quota\n}\n\
plugin {\n  quota = count:User quota\n  quota_rule = *:storage=40K\n  quota_vsizes = yes\n}\n";

#[test]
fn a_failed_copy_leaves_the_original_in_place() {
    let env = Env::start_on(common::dovecot::dovecot_with(SMALL_QUOTA), REPLACE);
    let (user, _) = env.user("replace-quota", true);
    let mut m = message("replace-quota@customer.example", "Too big to copy", "");
    while m.len() < 30 * 1024 {
        m.extend_from_slice(b"Padding line of the message body, forty-odd bytes.\r\n");
    }
    let mut direct = env.direct(&user);
    let r = direct.append("INBOX", &m);
    assert!(r.ok(), "{}", r.tagged);
    let mut c = env.through_proxy(&user);
    assert!(c.cmd("SELECT INBOX").ok());
    assert!(c.cmd("UID STORE 1 +FLAGS.SILENT ($CRM_Track)").ok());
    wait_keyword(&mut direct, "INBOX", 1, "$CRM_Tracked", true);
    let notice = wait_for("the failure notice", || {
        let r = c.cmd("NOOP");
        let t = r.text();
        t.contains("[ALERT] CRM: tracking headers").then_some(t)
    });
    assert!(notice.to_ascii_uppercase().contains("QUOTA"), "{notice}");
    // The original is where it was, unchanged and not marked deleted; no copy.
    assert!(direct.cmd("EXAMINE INBOX").ok());
    assert_eq!(direct.fetch_body(1), m);
    let (flags, _) = flags_and_date(&mut direct, 1);
    assert!(!flags.iter().any(|f| f == "\\Deleted"), "{flags:?}");
    let r = direct.cmd("UID SEARCH ALL");
    assert!(r.text().contains("* SEARCH 1\r\n"), "{}", r.text());
    assert!(email_titled(env.data(), "Too big to copy"));
}
