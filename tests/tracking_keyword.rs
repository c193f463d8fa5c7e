//! Keyword tracking end to end, through a real `crmproxy serve` and the private
//! Dovecot: `$CRM_Track` set by UID and by sequence number tracks the message (an
//! activity in the store), other clients see `$CRM_Tracked`, fetches through the
//! proxy show the X-CRM-* block above the exact original bytes with consistent
//! sizes (BODY[], RFC822, BINARY[], headers), removing `$CRM_Tracked` untracks,
//! and a user without use_app is refused. A request set by sequence number in a
//! session that has seen no UIDs (Python imaplib: SELECT, STORE) and one set on the
//! server behind the proxy's back are tracked too.

mod common;
mod tracking_support;

use tracking_support::*;

#[test]
fn keyword_by_uid_and_by_sequence_number_tracks_and_shows_headers() {
    let env = Env::start("");
    let (user, _) = env.user("kw", true);
    let m1 = message("kw-one@customer.example", "Proposal one", "");
    let m2 = message("kw-two@customer.example", "Proposal two", "");
    let mut direct = env.direct(&user);
    assert!(direct.append("INBOX", &m1).ok());
    assert!(direct.append("INBOX", &m2).ok());

    let mut c = env.through_proxy(&user);
    assert!(c.cmd("SELECT INBOX").ok());
    assert!(c.cmd("FETCH 1:* (UID)").ok());
    let r = c.cmd("UID STORE 1 +FLAGS ($CRM_Track)");
    assert!(r.ok(), "{}", r.tagged);
    let r = c.cmd("STORE 2 +FLAGS.SILENT ($CRM_Track)");
    assert!(r.ok(), "{}", r.tagged);

    // Other clients see the state keyword; the request keyword is gone.
    for uid in [1, 2] {
        wait_keyword(&mut direct, "INBOX", uid, "$CRM_Tracked", true);
        let f = flags(&mut direct, "INBOX", uid);
        assert!(!f.contains("$CRM_Track "), "{f}");
        assert!(
            !f.split(' ')
                .any(|k| k == "$CRM_Track" || k == "$CRM_Pending"),
            "{f}"
        );
    }

    // BODY[]: block + exact original bytes; RFC822.SIZE counts the block.
    let (text, body) = fetch(&mut c, 1, "UID RFC822.SIZE BODY.PEEK[]");
    let block = block_of(&body);
    let block_text = String::from_utf8_lossy(&block).into_owned();
    assert!(
        block_text.starts_with("X-CRM-Track-Status: tracked\r\n"),
        "{block_text}"
    );
    assert_eq!(&body[block.len()..], &m1[..]);
    assert_eq!(rfc822_size(&text), m1.len() + block.len());

    // The activity is in the store, with its tracking record.
    let shown = show(env.data(), &activity_id(&block));
    let s = shown.to_string();
    assert!(s.contains("Proposal one"), "{s}");
    assert!(s.contains("kw-one@customer.example"), "{s}");
    assert!(!shown["tracking"].as_array().unwrap().is_empty(), "{s}");

    // The second one (asked for by sequence number) too.
    let (_, body2) = fetch(&mut c, 2, "BODY.PEEK[]");
    let b2 = block_of(&body2);
    assert!(!b2.is_empty());
    assert_eq!(&body2[b2.len()..], &m2[..]);

    // RFC822, BODY[HEADER], RFC822.HEADER start with the block.
    let (_, rfc822) = fetch(&mut c, 1, "RFC822");
    assert_eq!(rfc822, body);
    // BINARY[] (RFC 3516) of a 7-bit message is the message itself: block included.
    let (_, binary) = fetch(&mut c, 1, "BINARY.PEEK[]");
    assert_eq!(binary, body);
    let header_end = m1.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let (_, header) = fetch(&mut c, 1, "BODY.PEEK[HEADER]");
    assert_eq!(header, [&block[..], &m1[..header_end]].concat());
    let (_, header) = fetch(&mut c, 1, "RFC822.HEADER");
    assert_eq!(header, [&block[..], &m1[..header_end]].concat());

    // HEADER.FIELDS shows only the named tracking fields; TEXT is untouched, so
    // HEADER + TEXT reassemble block + original.
    let (_, fields) = fetch(
        &mut c,
        1,
        "BODY.PEEK[HEADER.FIELDS (Subject X-CRM-Track-Status)]",
    );
    let f = String::from_utf8_lossy(&fields);
    assert!(
        f.starts_with("X-CRM-Track-Status: tracked\r\nSubject: Proposal one\r\n"),
        "{f}"
    );
    assert!(!f.contains("X-CRM-Activity-Id"), "{f}");
    let (_, fields) = fetch(&mut c, 1, "BODY.PEEK[HEADER.FIELDS (Subject)]");
    assert_eq!(fields, b"Subject: Proposal one\r\n\r\n");
    let (_, text_part) = fetch(&mut c, 1, "BODY.PEEK[TEXT]");
    assert_eq!([&header[..], &text_part[..]].concat(), body);

    // A direct fetch has no block: nothing was written into the message.
    assert_eq!(direct.fetch_body(1), m1);

    // Removing $CRM_Tracked untracks: no block any more, keyword gone everywhere.
    let r = c.cmd("UID STORE 1 -FLAGS ($CRM_Tracked)");
    assert!(r.ok(), "{}", r.tagged);
    wait_for("the block to disappear after untracking", || {
        let (_, b) = fetch(&mut c, 1, "BODY.PEEK[]");
        (b == m1).then_some(())
    });
    let shown = show(env.data(), &activity_id(&block));
    assert!(shown["tracking"].as_array().unwrap().is_empty(), "{shown}");
    // The activity stays in the CRM.
    assert!(shown.to_string().contains("Proposal one"));
    // Message 2 is still tracked.
    let (_, again) = fetch(&mut c, 2, "BODY.PEEK[]");
    assert_eq!(again, body2);
}

#[test]
fn a_user_without_use_app_is_refused_and_nothing_changes() {
    let env = Env::start("");
    let (user, _) = env.user("noapp", false);
    let m = message("noapp@customer.example", "Not allowed", "");
    let mut direct = env.direct(&user);
    assert!(direct.append("INBOX", &m).ok());
    let mut c = env.through_proxy(&user);
    assert!(c.cmd("SELECT INBOX").ok());
    let r = c.cmd("UID STORE 1 +FLAGS ($CRM_Track)");
    assert!(!r.ok(), "{}", r.tagged);
    assert!(r.tagged.contains("NO [ALERT]"), "{}", r.tagged);
    assert!(r.tagged.contains("use_app"), "{}", r.tagged);
    // The request keyword is taken off again; nothing is tracked.
    wait_keyword(&mut direct, "INBOX", 1, "$CRM_Track", false);
    let f = flags(&mut direct, "INBOX", 1);
    assert!(!f.contains("$CRM_Tracked"), "{f}");
    let (_, body) = fetch(&mut c, 1, "BODY.PEEK[]");
    assert_eq!(body, m);
    assert!(!email_titled(env.data(), "Not allowed"));

    // By sequence number in a session that has seen no UIDs: refused just the same.
    assert!(direct.append("INBOX", &m).ok());
    let mut fresh = env.through_proxy(&user);
    assert!(fresh.cmd("SELECT INBOX").ok());
    let r = fresh.cmd("STORE 2 +FLAGS ($CRM_Track)");
    assert!(r.tagged.contains("NO [ALERT]"), "{}", r.tagged);
    wait_keyword(&mut direct, "INBOX", 2, "$CRM_Track", false);

    // Someone who is not a CRM user at all gets a clear refusal too.
    let stranger = format!("{}@crm-test.example", common::unique_user("stranger"));
    let mut s = env.through_proxy(&stranger);
    let mut d = env.direct(&stranger);
    assert!(d.append("INBOX", &m).ok());
    assert!(s.cmd("SELECT INBOX").ok());
    let r = s.cmd("UID STORE 1 +FLAGS ($CRM_Track)");
    assert!(
        r.tagged.contains("NO [ALERT]") && r.tagged.contains("not a CRM user"),
        "{}",
        r.tagged
    );
}

#[test]
fn partial_fetches_slice_the_message_as_the_client_sees_it() {
    let env = Env::start("");
    let (user, _) = env.user("partial", true);
    let mut big = message("partial@customer.example", "Long one", "");
    for i in 0..400 {
        big.extend_from_slice(format!("Body line {i} with some words in it.\r\n").as_bytes());
    }
    let plain = message("partial-untracked@customer.example", "Untracked", "");
    let mut direct = env.direct(&user);
    assert!(direct.append("INBOX", &big).ok());
    assert!(direct.append("INBOX", &plain).ok());
    let mut c = env.through_proxy(&user);
    assert!(c.cmd("SELECT INBOX").ok());
    assert!(c.cmd("UID STORE 1 +FLAGS.SILENT ($CRM_Track)").ok());
    wait_keyword(&mut direct, "INBOX", 1, "$CRM_Tracked", true);

    let (_, view) = fetch(&mut c, 1, "BODY.PEEK[]");
    let b = block_of(&view).len();
    assert!(b > 0);
    assert_eq!(&view[b..], &big[..]);
    let ranges = [
        (0, 100),
        (0, b),
        (10, b),
        (b - 1, 2),
        (b, 50),
        (b + 3000, 700),
        (view.len() - 10, 100),
        (view.len() + 5, 10),
        (9000, 1000),
    ];
    for (s, n) in ranges {
        let (text, got) = fetch(&mut c, 1, &format!("UID BODY.PEEK[]<{s}.{n}>"));
        let want = &view[s.min(view.len())..(s + n).min(view.len())];
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(want),
            "range <{s}.{n}>"
        );
        if !want.is_empty() {
            assert!(text.contains(&format!("BODY[]<{s}>")), "<{s}.{n}>: {text}");
        }
    }
    // Chunks (as Thunderbird fetches) reassemble the whole view.
    let mut joined = Vec::new();
    let mut s = 0;
    while s < view.len() {
        let (_, got) = fetch(&mut c, 1, &format!("BODY.PEEK[]<{s}.4096>"));
        assert!(!got.is_empty());
        joined.extend_from_slice(&got);
        s += 4096;
    }
    assert_eq!(joined, view);
    // The header section's partial fetch too.
    let (_, header) = fetch(&mut c, 1, "BODY.PEEK[HEADER]");
    let (_, got) = fetch(&mut c, 1, "BODY.PEEK[HEADER]<5.60>");
    assert_eq!(got, header[5..65]);

    // An untracked message's partial fetch is what the server gives directly.
    for (s, n) in [(0, 100), (50, 30), (9000, 10)] {
        let item = format!("BODY.PEEK[]<{s}.{n}>");
        let (_, got) = fetch(&mut c, 2, &item);
        let (_, want) = fetch(&mut direct, 2, &item);
        assert_eq!(got, want, "<{s}.{n}>");
    }
}

#[test]
fn imaplib_requests_by_sequence_number_in_a_session_that_saw_no_uids() {
    let env = Env::start("");
    let (user, _) = env.user("seq", true);
    let mut direct = env.direct(&user);
    for n in 1..=3 {
        let m = message(
            &format!("seq-{n}@customer.example"),
            &format!("Seq {n}"),
            "",
        );
        assert!(direct.append("INBOX", &m).ok());
    }
    let (ok, out, err) = common::clients::run_python(
        "store_flags.py",
        env.proxy.imap,
        common::clients::ClientTls::Plain,
        None,
        &user,
        common::PASSWORD,
        &["INBOX", "2:3", "($CRM_Track)"],
    );
    assert!(ok && out.starts_with("OK"), "{out}{err}");
    for uid in [2, 3] {
        wait_keyword(&mut direct, "INBOX", uid, "$CRM_Tracked", true);
        wait_keyword(&mut direct, "INBOX", uid, "$CRM_Track", false);
    }
    let f = flags(&mut direct, "INBOX", 1);
    assert!(
        !f.contains("$CRM_Track"),
        "message 1 was not asked for: {f}"
    );
    for (n, tracked) in [(1, false), (2, true), (3, true)] {
        assert_eq!(
            email_titled(env.data(), &format!("Seq {n}")),
            tracked,
            "Seq {n}"
        );
    }
}

#[test]
fn a_request_set_behind_the_proxys_back_is_tracked_at_the_next_login() {
    let env = Env::start("");
    let (user, _) = env.user("behind", true);
    let m = message("behind-1@customer.example", "Set on a phone", "");
    let mut direct = env.direct(&user);
    assert!(direct.append("INBOX", &m).ok());
    // A client talking to the server directly (a phone) asks for tracking.
    assert!(direct.cmd("SELECT INBOX").ok());
    assert!(direct.cmd("UID STORE 1 +FLAGS ($CRM_Track)").ok());
    // The user's next session through the proxy starts the sync worker, whose
    // first sweep finds the request.
    let mut c = env.through_proxy(&user);
    assert!(c.cmd("NOOP").ok());
    wait_keyword(&mut direct, "INBOX", 1, "$CRM_Tracked", true);
    wait_keyword(&mut direct, "INBOX", 1, "$CRM_Track", false);
    assert!(email_titled(env.data(), "Set on a phone"));
}

#[test]
fn replacing_all_flags_untracks_only_what_was_tracked() {
    let env = Env::start("");
    let (user, _) = env.user("replace", true);
    let mut direct = env.direct(&user);
    for n in 1..=3 {
        let m = message(
            &format!("replace-{n}@customer.example"),
            &format!("Replace {n}"),
            "",
        );
        assert!(direct.append("INBOX", &m).ok());
    }
    let mut c = env.through_proxy(&user);
    assert!(c.cmd("SELECT INBOX").ok());
    assert!(c.cmd("UID STORE 2 +FLAGS ($CRM_Track)").ok());
    wait_keyword(&mut direct, "INBOX", 2, "$CRM_Tracked", true);
    // A client that sets every message's flags outright (no $CRM_Tracked).
    assert!(c.cmd("UID STORE 1:* FLAGS (\\Seen)").ok());
    wait_for("message 2 untracked", || {
        let (_, body) = fetch(&mut c, 2, "BODY.PEEK[HEADER]");
        (!String::from_utf8_lossy(&body).contains("X-CRM-Track-Status")).then_some(())
    });
    for uid in 1..=3 {
        let f = flags(&mut direct, "INBOX", uid);
        assert_eq!(f, "\\Seen", "UID {uid}");
    }
    // The activity stays in the CRM; only the mailbox's tracking went.
    assert!(email_titled(env.data(), "Replace 2"));
}
