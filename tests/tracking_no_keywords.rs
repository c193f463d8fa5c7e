//! A mailbox whose PERMANENTFLAGS lack `\*` (new keywords cannot be stored
//! upstream), with the real Dovecot. Dovecot announces `PERMANENTFLAGS ()` for a
//! mailbox opened with EXAMINE (a Maildir with 26 keywords still announces `\*`,
//! so that cannot be used). A message tracked through the proxy whose state
//! keyword was then taken off on the server: where the mailbox allows keywords the
//! proxy relays the server's FLAGS; where it does not, the FLAGS of the FETCH
//! responses it relays carry the state keyword, from the store.

mod common;
mod tracking_support;

use tracking_support::*;

/// The FLAGS in a FETCH response text.
fn flags_in(text: &str) -> Vec<String> {
    text.split("FLAGS (")
        .nth(1)
        .and_then(|f| f.split(')').next())
        .unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// A session through the proxy once its user's sync worker has done its first
/// sweep. That sweep takes requests set behind the proxy's back; one set through
/// the proxy while it runs is taken by the sweep and again by the proxy's job,
/// which sets the state keyword again after a test has removed it from the
/// server. So a request is set directly on a message of its own (the last, its
/// UID one past `direct`'s newest), which only the sweep takes: once it is
/// tracked, the sweep is over.
fn after_the_first_sweep(env: &Env, user: &str, direct: &mut common::RawImap) -> common::RawImap {
    let warm = message("nokw-warm@customer.example", "Taken by the sweep", "");
    assert!(direct.append("INBOX", &warm).ok());
    let r = direct.cmd("EXAMINE INBOX");
    let uid = r
        .text()
        .lines()
        .find_map(|l| {
            l.split("[UIDNEXT ")
                .nth(1)?
                .split(']')
                .next()?
                .parse::<u32>()
                .ok()
        })
        .expect("UIDNEXT")
        - 1;
    assert!(direct.cmd("SELECT INBOX").ok());
    assert!(direct
        .cmd(&format!("UID STORE {uid} +FLAGS.SILENT ($CRM_Track)"))
        .ok());
    let c = env.through_proxy(user);
    wait_keyword(direct, "INBOX", uid, "$CRM_Tracked", true);
    c
}

#[test]
fn state_keyword_is_added_to_relayed_flags_where_keywords_cannot_be_stored() {
    let env = Env::start("");
    let (user, _) = env.user("nokw", true);
    let mut direct = env.direct(&user);
    let other = message("nokw-other@customer.example", "Other", "");
    let m = message("nokw@customer.example", "No keywords here", "");
    assert!(direct.append("INBOX", &other).ok());
    assert!(direct.append("INBOX", &m).ok());
    let mut c = after_the_first_sweep(&env, &user, &mut direct);

    // Tracked by keyword through the proxy; then the server loses the keyword.
    assert!(c.cmd("SELECT INBOX").ok());
    assert!(c.cmd("UID STORE 2 +FLAGS.SILENT ($CRM_Track)").ok());
    wait_keyword(&mut direct, "INBOX", 2, "$CRM_Tracked", true);
    assert!(direct.cmd("SELECT INBOX").ok());
    assert!(direct.cmd("UID STORE 2 -FLAGS.SILENT ($CRM_Tracked)").ok());
    assert!(!flags(&mut direct, "INBOX", 2).contains("$CRM_Tracked"));

    // SELECT: keywords allowed (PERMANENTFLAGS has \*), so the server's FLAGS.
    let mut c = env.through_proxy(&user);
    let r = c.cmd("SELECT INBOX");
    assert!(r.ok() && r.text().contains("\\*)]"), "{}", r.text());
    let (text, _) = fetch(&mut c, 2, "UID FLAGS");
    assert!(!text.contains("$CRM_"), "{text}");

    // EXAMINE: PERMANENTFLAGS () — the proxy adds the state keyword from the store.
    let r = c.cmd("EXAMINE INBOX");
    assert!(r.ok(), "{}", r.tagged);
    let permanent = r
        .text()
        .lines()
        .find(|l| l.contains("[PERMANENTFLAGS"))
        .unwrap_or_default()
        .to_string();
    assert!(!permanent.contains("\\*"), "{}", r.text());
    let (text, _) = fetch(&mut c, 2, "UID FLAGS");
    assert_eq!(
        flags_in(&text)
            .iter()
            .filter(|f| *f == "$CRM_Tracked")
            .count(),
        1,
        "{text}"
    );
    assert!(
        !flags_in(&text).iter().any(|f| f == "$CRM_Pending"),
        "{text}"
    );
    // Next to BODY[] too, with the server's bytes and size.
    let (text, body) = fetch(&mut c, 2, "FLAGS RFC822.SIZE BODY.PEEK[]");
    assert!(
        flags_in(&text).iter().any(|f| f == "$CRM_Tracked"),
        "{text}"
    );
    assert_eq!(body, m);
    assert_eq!(rfc822_size(&text), m.len());
    // By sequence number: only the tracked message gets it.
    let r = c.cmd("FETCH 1:2 (UID FLAGS)");
    assert!(r.ok(), "{}", r.tagged);
    let t = r.text();
    let line1 = t.lines().find(|l| l.starts_with("* 1 FETCH")).unwrap();
    let line2 = t.lines().find(|l| l.starts_with("* 2 FETCH")).unwrap();
    assert!(line2.contains("$CRM_Tracked"), "{t}");
    assert!(!line1.contains("$CRM_"), "{t}");

    // A direct client still does not see it: nothing was stored on the server.
    assert!(!flags(&mut direct, "INBOX", 2).contains("$CRM_Tracked"));
    assert!(email_titled(env.data(), "No keywords here"));
}

#[test]
fn a_large_tracked_message_that_streams_gets_the_same_size_and_flags() {
    let env = Env::start("");
    let (user, _) = env.user("nokwbig", true);
    let mut direct = env.direct(&user);
    // Bigger than the response the proxy holds whole (64 KiB): it streams.
    let mut big = message("nokw-big@customer.example", "Large one", "");
    for i in 0..3000 {
        big.extend_from_slice(
            format!("Line {i} of a long message body, padded out.\r\n").as_bytes(),
        );
    }
    assert!(big.len() > 128 * 1024);
    assert!(direct.append("INBOX", &big).ok());
    let mut c = after_the_first_sweep(&env, &user, &mut direct);
    assert!(c.cmd("SELECT INBOX").ok());
    assert!(c.cmd("UID STORE 1 +FLAGS.SILENT ($CRM_Track)").ok());
    wait_keyword(&mut direct, "INBOX", 1, "$CRM_Tracked", true);

    let (text, body) = fetch(&mut c, 1, "UID FLAGS RFC822.SIZE BODY.PEEK[]");
    assert_eq!(body, big);
    assert_eq!(rfc822_size(&text), body.len(), "{}", &text[..200]);

    // Where keywords cannot be stored, FLAGS carry the state keyword here too.
    assert!(direct.cmd("SELECT INBOX").ok());
    assert!(direct.cmd("UID STORE 1 -FLAGS.SILENT ($CRM_Tracked)").ok());
    assert!(c.cmd("EXAMINE INBOX").ok());
    let (text, body) = fetch(&mut c, 1, "UID FLAGS RFC822.SIZE BODY.PEEK[]");
    let first_line = text.lines().next().unwrap_or_default();
    assert_eq!(
        flags_in(first_line)
            .iter()
            .filter(|f| *f == "$CRM_Tracked")
            .count(),
        1,
        "{first_line}"
    );
    assert_eq!(rfc822_size(&text), body.len(), "{first_line}");
}
