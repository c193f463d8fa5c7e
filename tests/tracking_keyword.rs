//! Keyword tracking end to end, through a real `crmproxy serve` and the private
//! Dovecot: `$CRM_Track` set by UID and by sequence number tracks the message (an
//! activity in the store), other clients see `$CRM_Tracked`, and every FETCH form
//! through the proxy returns exactly the server's bytes before tracking, after it,
//! from a second session and after untracking (SPEC section 3: a message's bytes
//! never change under its UID). Removing `$CRM_Tracked` untracks; a client setting
//! `$CRM_Tracked` itself asks for tracking (state keywords never lie); a user
//! without use_app is refused before anything reaches the server. A request set by
//! sequence number in a session that has seen no UIDs (Python imaplib: SELECT,
//! STORE) and one set on the server behind the proxy's back are tracked too.

mod common;
mod tracking_support;

use tracking_support::*;

#[test]
fn keyword_tracking_never_changes_a_byte_the_client_fetches() {
    let env = Env::start("");
    let (user, _) = env.user("kw", true);
    let m1 = message("kw-one@customer.example", "Proposal one", "");
    let m2 = message("kw-two@customer.example", "Proposal two", "");
    let mut direct = env.direct(&user);
    assert!(direct.append("INBOX", &m1).ok());
    assert!(direct.append("INBOX", &m2).ok());

    let mut c = env.through_proxy(&user);
    // Before tracking: the server's bytes.
    assert_same_bytes(&mut c, &mut direct, "INBOX", 1);
    assert!(c.cmd("SELECT INBOX").ok());
    assert!(c.cmd("FETCH 1:* (UID)").ok());
    let r = c.cmd("UID STORE 1 +FLAGS ($CRM_Track)");
    assert!(r.ok(), "{}", r.tagged);
    let r = c.cmd("STORE 2 +FLAGS.SILENT ($CRM_Track)");
    assert!(r.ok(), "{}", r.tagged);

    // Other clients see the state keyword; the request keyword is gone.
    for uid in [1, 2] {
        wait_keyword(&mut direct, "INBOX", uid, "$CRM_Tracked", true);
        // The state keyword is added before the request keyword goes (two
        // STOREs: IMAP has no atomic swap), so wait for the second too.
        wait_keyword(&mut direct, "INBOX", uid, "$CRM_Track", false);
        let f = flags(&mut direct, "INBOX", uid);
        assert!(
            !f.split(' ')
                .any(|k| k == "$CRM_Track" || k == "$CRM_Pending"),
            "{f}"
        );
    }
    // After tracking, in every FETCH form, in this session and a new one: still
    // exactly the server's bytes, which are the bytes appended.
    for uid in [1, 2] {
        assert_same_bytes(&mut c, &mut direct, "INBOX", uid);
    }
    let mut second = env.through_proxy(&user);
    assert_same_bytes(&mut second, &mut direct, "INBOX", 1);
    assert_eq!(direct.fetch_body(1), m1);
    let (_, body) = fetch(&mut c, 1, "BODY.PEEK[]");
    assert_eq!(body, m1);

    // The activity is in the store, with its tracking record.
    let id = email_id(env.data(), "Proposal one");
    let shown = show(env.data(), &id);
    let s = shown.to_string();
    assert!(s.contains("kw-one@customer.example"), "{s}");
    assert!(!shown["tracking"].as_array().unwrap().is_empty(), "{s}");
    // The second one (asked for by sequence number) too.
    assert!(email_titled(env.data(), "Proposal two"));

    // Removing $CRM_Tracked untracks: the tracking record goes, keyword gone
    // everywhere, bytes as ever.
    assert!(c.cmd("SELECT INBOX").ok());
    let r = c.cmd("UID STORE 1 -FLAGS ($CRM_Tracked)");
    assert!(r.ok(), "{}", r.tagged);
    wait_for("the tracking record to go after untracking", || {
        show(env.data(), &id)["tracking"]
            .as_array()
            .unwrap()
            .is_empty()
            .then_some(())
    });
    // The activity stays in the CRM.
    assert!(show(env.data(), &id).to_string().contains("Proposal one"));
    assert_same_bytes(&mut c, &mut direct, "INBOX", 1);
    wait_keyword(&mut direct, "INBOX", 2, "$CRM_Tracked", true);
}

#[test]
fn a_client_setting_the_tracked_keyword_itself_gets_it_tracked_for_real() {
    let env = Env::start("");
    let (user, _) = env.user("claim", true);
    let (noapp, _) = env.user("claim-noapp", false);
    let m = message("claim-1@customer.example", "Claimed tracked", "");
    let mut direct = env.direct(&user);
    assert!(direct.append("INBOX", &m).ok());
    let mut c = env.through_proxy(&user);
    assert!(c.cmd("SELECT INBOX").ok());
    // A Thunderbird tag keyed `$crm_tracked` (lower case, as Thunderbird keeps keys).
    let r = c.cmd("UID STORE 1 +FLAGS ($crm_tracked)");
    assert!(r.ok(), "{}", r.tagged);
    wait_for("the claimed message to be tracked", || {
        email_titled(env.data(), "Claimed tracked").then_some(())
    });
    // Dovecot keeps a keyword in the case it was first set in.
    wait_for("the tracked keyword on the server", || {
        let f = flags(&mut direct, "INBOX", 1).to_ascii_lowercase();
        (f.contains("$crm_tracked") && !f.contains("$crm_pending")).then_some(())
    });

    // $CRM_Pending is the proxy's alone.
    let r = c.cmd("UID STORE 1 +FLAGS ($CRM_Pending)");
    assert!(r.tagged.contains("NO [ALERT]"), "{}", r.tagged);
    assert!(!flags(&mut direct, "INBOX", 1).contains("$CRM_Pending"));

    // Someone who may not track cannot claim it either: nothing reaches the server.
    let m2 = message("claim-2@customer.example", "Claimed by noapp", "");
    let mut d2 = env.direct(&noapp);
    assert!(d2.append("INBOX", &m2).ok());
    let mut c2 = env.through_proxy(&noapp);
    assert!(c2.cmd("SELECT INBOX").ok());
    let r = c2.cmd("UID STORE 1 +FLAGS ($CRM_Tracked)");
    assert!(r.tagged.contains("NO [ALERT]"), "{}", r.tagged);
    assert!(
        !String::from_utf8_lossy(&r.bytes).contains("FETCH"),
        "{}",
        r.text()
    );
    assert!(!flags(&mut d2, "INBOX", 1)
        .to_ascii_lowercase()
        .contains("$crm_tracked"));
    assert!(!email_titled(env.data(), "Claimed by noapp"));
}

#[test]
fn a_user_without_use_app_is_refused_and_nothing_changes() {
    let env = Env::start("");
    let (user, _) = env.user("noapp", false);
    let m = message("noapp@customer.example", "Not allowed", "");
    let mut direct = env.direct(&user);
    assert!(direct.append("INBOX", &m).ok());
    // A request left by a phone (talking to the server directly) stays as it is.
    assert!(direct.cmd("SELECT INBOX").ok());
    assert!(direct.cmd("UID STORE 1 +FLAGS ($CRM_Track)").ok());
    let mut c = env.through_proxy(&user);
    assert!(c.cmd("SELECT INBOX").ok());
    let r = c.cmd("UID STORE 1 +FLAGS ($CRM_Track \\Flagged)");
    assert!(!r.ok(), "{}", r.tagged);
    assert!(r.tagged.contains("NO [ALERT]"), "{}", r.tagged);
    assert!(r.tagged.contains("use_app"), "{}", r.tagged);
    // Refused before it went up: nothing relayed suggests it happened, and
    // nothing changed on the server (the phone's request keyword included).
    assert!(!r.text().contains("FETCH"), "{}", r.text());
    let f = flags(&mut direct, "INBOX", 1);
    assert!(f.split(' ').any(|k| k == "$CRM_Track"), "{f}");
    assert!(
        !f.contains("\\Flagged") && !f.contains("$CRM_Tracked"),
        "{f}"
    );
    let (_, body) = fetch(&mut c, 1, "BODY.PEEK[]");
    assert_eq!(body, m);
    assert!(!email_titled(env.data(), "Not allowed"));
    assert!(direct.cmd("UID STORE 1 -FLAGS ($CRM_Track)").ok());

    // By sequence number in a session that has seen no UIDs: refused just the same.
    assert!(direct.append("INBOX", &m).ok());
    let mut fresh = env.through_proxy(&user);
    assert!(fresh.cmd("SELECT INBOX").ok());
    let r = fresh.cmd("STORE 2 +FLAGS ($CRM_Track)");
    assert!(r.tagged.contains("NO [ALERT]"), "{}", r.tagged);
    assert!(!flags(&mut direct, "INBOX", 2).contains("$CRM_Track"));

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
fn a_tracked_keyword_set_behind_the_proxys_back_is_tracked_for_real() {
    let env = Env::start("");
    let (user, _) = env.user("behindclaim", true);
    let m = message("behind-claim@customer.example", "Claimed on a phone", "");
    let mut direct = env.direct(&user);
    assert!(direct.append("INBOX", &m).ok());
    // A client talking to the server directly claims "tracked".
    assert!(direct.cmd("SELECT INBOX").ok());
    assert!(direct.cmd("UID STORE 1 +FLAGS ($CRM_Tracked)").ok());
    // The user's next session through the proxy starts the worker, whose first
    // sweep makes the claim true.
    let mut c = env.through_proxy(&user);
    assert!(c.cmd("NOOP").ok());
    wait_for("the claimed message tracked", || {
        email_titled(env.data(), "Claimed on a phone").then_some(())
    });
    let id = email_id(env.data(), "Claimed on a phone");
    assert_eq!(show(env.data(), &id)["tracking"][0]["status"], "tracked");
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
    let id = email_id(env.data(), "Replace 2");
    wait_for("message 2 untracked", || {
        show(env.data(), &id)["tracking"]
            .as_array()
            .unwrap()
            .is_empty()
            .then_some(())
    });
    for uid in 1..=3 {
        let f = flags(&mut direct, "INBOX", uid);
        assert_eq!(f, "\\Seen", "UID {uid}");
    }
    // The activity stays in the CRM; only the mailbox's tracking went.
    assert!(email_titled(env.data(), "Replace 2"));
}

/// A CRM user whose IMAP user name is not their address (`jsmith` on a company
/// server): the proxy, the sync worker and `crmproxy user` know them by it, and
/// the name cannot be an address or another user's.
#[test]
fn an_imap_login_that_is_not_an_address_tracks_for_its_crm_user() {
    let env = Env::start("");
    let login = common::unique_user("jsmith").replace('@', "");
    let address = format!("{login}@crm-test.example");
    let v: serde_json::Value = serde_json::from_str(&crm(
        env.data(),
        &[
            "user", "add", "J Smith", "--login", &address, "--grant", "use_app", "--json",
        ],
    ))
    .unwrap();
    let id = v["id"].as_str().unwrap().to_string();
    crm(env.data(), &["user", "imap-login", &address, &login]);
    let listed = crm(env.data(), &["user", "list"]);
    assert!(listed.contains(&login), "{listed}");

    // Refused with a clear error, nothing changed: an address, or a taken name.
    let refused = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_crmproxy"))
            .arg("--data-dir")
            .arg(env.data())
            .args(args)
            .env_remove("CRMPROXY_CONFIG")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} was accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = refused(&["user", "imap-login", &address, "other@crm-test.example"]);
    assert!(e.contains("e-mail address"), "{e}");
    let (other, _) = env.user("other", true);
    let e = refused(&["user", "imap-login", &other, &login.to_uppercase()]);
    assert!(e.contains("already belongs"), "{e}");

    let mut direct = env.direct(&login);
    let m = message("jsmith@customer.example", "Signed in as jsmith", "");
    assert!(direct.append("INBOX", &m).ok());
    let mut c = env.through_proxy(&login);
    assert!(c.cmd("SELECT INBOX").ok());
    assert!(c.cmd("UID STORE 1 +FLAGS ($CRM_Track)").ok());
    wait_keyword(&mut direct, "INBOX", 1, "$CRM_Tracked", true);
    let activity = email_id(env.data(), "Signed in as jsmith");
    let shown = show(env.data(), &activity);
    assert_eq!(shown["tracking"][0]["owner"].as_str(), Some(id.as_str()));
}
