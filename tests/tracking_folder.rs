//! Folder tracking end to end: COPY, MOVE, UID COPY/MOVE and APPEND into
//! `CRM/Track` (created and subscribed at a CRM user's login, so that even an APPEND
//! as the first command finds it; created again by a COPY/MOVE if it went) and into a
//! folder mapped to a record, through a real `crmproxy serve` and the private Dovecot.
//! Pipelined MOVEs match each untagged COPYUID to its own command.

mod common;
mod tracking_support;

use common::imap::RawImap;
use tracking_support::*;

const CONTOSO: &str = "0193a1b2-c3d4-7005-8000-000000000005";

/// The UID of the message with `message_id` in `mailbox`, seen directly.
fn uid_in(direct: &mut RawImap, mailbox: &str, message_id: &str) -> u32 {
    uid_of(direct, mailbox, message_id).unwrap_or_else(|| panic!("{message_id} not in {mailbox}"))
}

#[test]
fn copy_move_and_append_into_the_tracking_folder_track() {
    let env = Env::start("");
    let (user, _) = env.user("fold", true);
    let m1 = message("fold-copy@customer.example", "Copied in", "");
    let m2 = message("fold-move@customer.example", "Moved in", "");
    let m3 = message("fold-append@customer.example", "Appended in", "");
    let mut direct = env.direct(&user);
    assert!(direct.append("INBOX", &m1).ok());
    assert!(direct.append("INBOX", &m2).ok());

    let mut c = env.through_proxy(&user);
    assert!(c.cmd("SELECT INBOX").ok());
    // Deleted after the login created it: the COPY creates it again.
    wait_for("CRM/Track created at login", || {
        let r = direct.cmd("LSUB \"\" \"CRM/Track\"");
        r.text().contains("* LSUB").then_some(())
    });
    assert!(direct.cmd("DELETE CRM/Track").ok());
    let r = c.cmd("COPY 1 CRM/Track");
    assert!(r.ok(), "{}", r.tagged);
    let r = c.cmd("UID MOVE 2 \"CRM/Track\"");
    assert!(r.ok(), "{}", r.tagged);
    let r = c.append("CRM/Track", &m3);
    assert!(r.ok(), "{}", r.tagged);
    // Bigger than what the proxy decodes whole: its literal streams through.
    let mut m4 = message("fold-big@customer.example", "Big appended", "");
    for i in 0..6000 {
        m4.extend_from_slice(
            format!("Attachment-like line {i:05} xxxxxxxxxxxxxxxxxxxxxxxx\r\n").as_bytes(),
        );
    }
    assert!(m4.len() > 300 * 1024);
    let r = c.append("CRM/Track", &m4);
    assert!(r.ok(), "{}", r.tagged);

    for (id, original) in [
        ("fold-copy@customer.example", &m1),
        ("fold-move@customer.example", &m2),
        ("fold-append@customer.example", &m3),
        ("fold-big@customer.example", &m4),
    ] {
        let uid = uid_in(&mut direct, "CRM/Track", id);
        wait_keyword(&mut direct, "CRM/Track", uid, "$CRM_Tracked", true);
        // Tracked, and the message stays where the user put it, as it was.
        assert!(c.cmd("SELECT CRM/Track").ok());
        let (_, body) = fetch(&mut c, uid, "BODY.PEEK[]");
        assert_eq!(&body[..], &original[..], "{id}");
        let subject = String::from_utf8_lossy(original)
            .lines()
            .find_map(|l| l.strip_prefix("Subject: ").map(str::to_owned))
            .unwrap();
        let shown = show(env.data(), &email_id(env.data(), &subject)).to_string();
        assert!(shown.contains(id), "{shown}");
        assert!(shown.contains("folder:CRM/Track"), "{shown}");
    }
    // The big one streamed through: still exactly the server's bytes.
    let big = uid_in(&mut direct, "CRM/Track", "fold-big@customer.example");
    assert_same_bytes(&mut c, &mut direct, "CRM/Track", big);
    // The copy left in INBOX is the same message (one activity per Message-ID),
    // and still the server's bytes.
    assert_same_bytes(&mut c, &mut direct, "INBOX", 1);
}

#[test]
fn a_mapped_folder_tracks_regarding_its_record() {
    let env = Env::start_raw(&format!(
        "[tracking]\nload_demo_on_first_run = true\n\n[tracking.folder_regarding]\n\"Clients/Contoso\" = \"account:{CONTOSO}\"\n"
    ));
    let (user, _) = env.user("mapped", true);
    let m = message("mapped@customer.example", "For Contoso", "");
    let mut direct = env.direct(&user);
    assert!(direct.append("INBOX", &m).ok());
    assert!(direct.cmd("CREATE Clients/Contoso").ok());
    let mut c = env.through_proxy(&user);
    assert!(c.cmd("SELECT INBOX").ok());
    let r = c.cmd("UID COPY 1 Clients/Contoso");
    assert!(r.ok(), "{}", r.tagged);
    let uid = uid_in(&mut direct, "Clients/Contoso", "mapped@customer.example");
    wait_keyword(&mut direct, "Clients/Contoso", uid, "$CRM_Tracked", true);
    let shown = show(env.data(), &email_id(env.data(), "For Contoso"));
    assert_eq!(shown["activity"]["regarding"]["id"], CONTOSO, "{shown}");
    let shown = show(env.data(), CONTOSO).to_string();
    assert!(shown.contains("mapped@customer.example"), "{shown}");
}

#[test]
fn an_append_as_the_first_command_finds_the_tracking_folder() {
    let env = Env::start("");
    let (user, _) = env.user("firstappend", true);
    let m = message("first-append@customer.example", "Appended first", "");
    let mut c = env.through_proxy(&user);
    let r = c.append("CRM/Track", &m);
    assert!(r.ok(), "{}", r.tagged);
    let mut direct = env.direct(&user);
    let uid = uid_in(&mut direct, "CRM/Track", "first-append@customer.example");
    wait_keyword(&mut direct, "CRM/Track", uid, "$CRM_Tracked", true);
    assert!(email_titled(env.data(), "Appended first"));
}

#[test]
fn pipelined_moves_each_get_their_own_copyuid() {
    let env = Env::start("");
    let (user, _) = env.user("pipemove", true);
    let one = message("pipe-one@customer.example", "Pipelined one", "");
    let two = message("pipe-two@customer.example", "Pipelined two", "");
    let mut direct = env.direct(&user);
    assert!(direct.append("INBOX", &one).ok());
    assert!(direct.append("INBOX", &two).ok());
    assert!(direct.cmd("CREATE Elsewhere").ok());
    // So that the two COPYUIDs name different UIDs.
    let filler = message("pipe-filler@customer.example", "Filler", "");
    assert!(direct.append("Elsewhere", &filler).ok());
    let mut c = env.through_proxy(&user);
    assert!(c.cmd("SELECT INBOX").ok());
    // Both at once: the first MOVE's untagged COPYUID arrives while the second,
    // the one into the tracking folder, is also waiting for its answer.
    c.send(b"m1 UID MOVE 1 Elsewhere\r\nm2 UID MOVE 2 CRM/Track\r\n");
    assert!(c.read_until_tagged("m1").unwrap().ok());
    assert!(c.read_until_tagged("m2").unwrap().ok());
    let uid = uid_in(&mut direct, "CRM/Track", "pipe-two@customer.example");
    wait_keyword(&mut direct, "CRM/Track", uid, "$CRM_Tracked", true);
    assert!(email_titled(env.data(), "Pipelined two"));
    assert!(!email_titled(env.data(), "Pipelined one"));
    let elsewhere = uid_in(&mut direct, "Elsewhere", "pipe-one@customer.example");
    let f = flags(&mut direct, "Elsewhere", elsewhere);
    assert!(!f.contains("$CRM_"), "{f}");
}

#[test]
fn a_user_without_use_app_is_refused_and_nothing_moves_or_is_stored() {
    let env = Env::start("");
    let (user, _) = env.user("foldnoapp", false);
    let m = message("fold-noapp@customer.example", "Not to be moved", "");
    let mut direct = env.direct(&user);
    assert!(direct.append("INBOX", &m).ok());
    assert!(direct.cmd("CREATE CRM/Track").ok());
    let mut c = env.through_proxy(&user);
    assert!(c.cmd("SELECT INBOX").ok());
    for command in [
        "COPY 1 CRM/Track",
        "UID MOVE 1 CRM/Track",
        "MOVE 1 CRM/Track",
    ] {
        let r = c.cmd(command);
        assert!(
            r.tagged.contains("NO [ALERT]") && r.tagged.contains("use_app"),
            "{command}: {}",
            r.tagged
        );
    }
    // APPEND: synchronising (no `+` is given, the NO comes at once) and
    // non-synchronising (the literal is read and dropped); nothing is stored.
    c.send(b"s1 APPEND CRM/Track {20}\r\n");
    let r = c.read_until_tagged("s1").unwrap();
    assert!(
        r.tagged.contains("NO [ALERT]") && r.tagged.contains("use_app"),
        "{}",
        r.tagged
    );
    c.send(format!("s2 APPEND CRM/Track (\\Seen) {{{}+}}\r\n", m.len()).as_bytes());
    c.send(&m);
    c.send(b"\r\n");
    let r = c.read_until_tagged("s2").unwrap();
    assert!(r.tagged.contains("NO [ALERT]"), "{}", r.tagged);
    // Still in INBOX, and nothing in the tracking folder.
    assert_eq!(
        uid_in(&mut direct, "INBOX", "fold-noapp@customer.example"),
        1
    );
    let r = direct.cmd("STATUS CRM/Track (MESSAGES)");
    assert!(r.text().contains("MESSAGES 0"), "{}", r.text());
    assert!(!email_titled(env.data(), "Not to be moved"));
    // The session goes on.
    assert!(c.cmd("NOOP").ok());
}
