//! The cases issue 13 names beyond the big rules test: a gateway and a user's
//! `serve` proxy tracking the same mail on one PostgreSQL CRM make one activity;
//! bulk and automatic mail (Auto-Submitted, Precedence, List-*, auto-replies) is
//! skipped on the gateway path while ordinary mail from the same sender is not;
//! mail delivered over LMTP is tracked by the rules; a mailbox added by SIGHUP
//! judges only mail that arrives after it starts watching.

use std::time::{Duration, Instant};

use crmproxy::store::*;

use super::common::{dovecot, lmtp, Proxy, ProxyOptions, RawImap, PASSWORD};
use super::harness::*;

/// Wait until every message of `user`'s `folder` has exactly the flags `want`
/// (the request keyword goes a moment after the state keyword comes).
fn wait_flags_exactly(dv: &super::common::Dovecot, user: &str, folder: &str, want: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let flags = flags_by_imaplib(dv, user, folder);
        if flags.iter().all(|(_, f)| f.trim() == want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{user} {folder}: {flags:?}, want all {want:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The owner's tracking record of `message_id` is tracked, and its Message-ID
/// has exactly one activity in the CRM.
fn assert_one_activity(store: &dyn CrmStore, owner: &str, message_id: &str) -> TrackingRecord {
    let mid = MessageId::parse(message_id).unwrap();
    let n = store.activities_by_message_id(&mid).unwrap().len();
    assert_eq!(n, 1, "{message_id}: {n} activities");
    let (t, a) = tracked(store, owner, message_id)
        .unwrap_or_else(|| panic!("{message_id}: no tracking record with an activity"));
    assert_eq!(t.status, TrackStatus::Tracked, "{message_id}: {t:?}");
    assert_eq!(t.activity, Some(a.id));
    t
}

/// A user's proxy tracks by keyword what the gateway tracks by its rules, on
/// one PostgreSQL CRM: first mail the proxy tracked while the gateway was
/// stopped (the gateway, back, judges it after its checkpoint and must find it
/// tracked), then mail both reach at once. One activity per Message-ID, the
/// mailbox's tracking record tracked, no `\Seen`.
#[test]
fn a_gateway_and_a_proxy_tracking_the_same_mail_on_one_postgresql_crm_make_one_activity() {
    const EACH: usize = 8;
    let dv = dovecot();
    let o = owner("gwproxy");
    let url = super::store_support::backend::pg::fresh_db();
    let setup = Setup::new(std::slice::from_ref(&o), Some(url.clone()));
    let admin = admin_addr();
    let config = setup.config(dv, admin, "auto_track = \"all\"", &mailbox(&o, ""));
    // A first start sets the checkpoints: what arrives later is the gateway's.
    let gw = Gateway::start(&config, admin, &[]);
    gw.wait_metric("crmproxy_gateway_folders_watched", 2);
    let (st, log) = gw.terminate();
    assert!(st.success(), "{log}");

    let proxy = Proxy::start_with(
        dv,
        ProxyOptions {
            config_toml: Some(format!(
                "[tracking]\nload_demo_on_first_run = false\n[store]\nurl = \"{url}\"\n"
            )),
            ..Default::default()
        },
    );
    let mut through = RawImap::login(proxy.imap, &o, PASSWORD);
    assert!(through.cmd("SELECT INBOX").ok());
    let mut direct = RawImap::login(dv.imap_addr(), &o, PASSWORD);
    let mut uid = 0;
    let mut deliver_and_ask = |id: &str| {
        let raw = message(id, "x@else.example", "Both ways", "");
        assert!(direct.append("INBOX", &raw).ok());
        uid += 1;
        // The proxy's session learns of the new message, then the user asks.
        assert!(through.cmd("NOOP").ok());
        let r = through.cmd(&format!("UID STORE {uid} +FLAGS ($CRM_Track)"));
        assert!(r.ok(), "{}", r.tagged);
    };
    let before: Vec<String> = (0..EACH).map(|n| format!("gp-a{n}@gw.example")).collect();
    for id in &before {
        deliver_and_ask(id);
    }
    wait_tracked(dv, &o, "INBOX", EACH);

    // The gateway back: it judges the proxy's mail, then races the proxy.
    let gw = Gateway::start(&config, admin, &[]);
    gw.wait_judged(EACH as u64);
    let during: Vec<String> = (0..EACH).map(|n| format!("gp-b{n}@gw.example")).collect();
    for id in &during {
        deliver_and_ask(id);
    }
    gw.wait_judged(2 * EACH as u64);
    wait_flags_exactly(dv, &o, "INBOX", "$CRM_Tracked");
    assert_eq!(
        gw.metric("crmproxy_gateway_failed_total"),
        0,
        "{}",
        gw.stderr()
    );
    let (st, log) = gw.terminate();
    assert!(st.success(), "{log}");
    drop(proxy);

    let store = setup.store();
    for id in &before {
        let t = assert_one_activity(store.as_ref(), &o, id);
        // The proxy made it; the gateway found it tracked and left it so.
        assert_eq!(t.via.as_deref(), Some("keyword"), "{id}: {t:?}");
    }
    for id in &during {
        assert_one_activity(store.as_ref(), &o, id);
    }
    assert_eq!(flags_by_imaplib(dv, &o, "INBOX").len(), 2 * EACH);
}

/// Bulk and automatic mail, each kind from the contact a mailbox tracking "all"
/// would otherwise track: skipped on the gateway's path; ordinary mail from the
/// same sender (and `Auto-Submitted: no`, which says it is not automatic) is
/// tracked. `gateway test` names each skip's reason.
#[test]
fn bulk_and_automatic_mail_is_skipped_while_ordinary_mail_from_the_sender_is_tracked() {
    let dv = dovecot();
    let o = owner("bulk");
    let setup = Setup::new(std::slice::from_ref(&o), None);
    let admin = admin_addr();
    let config = setup.config(dv, admin, "", &mailbox(&o, "auto_track = \"all\""));
    let gw = Gateway::start(&config, admin, &[]);
    gw.wait_metric("crmproxy_gateway_folders_watched", 2);

    // (header, why `gateway test` says it is skipped); None: tracked.
    let cases: &[(&str, Option<&str>)] = &[
        ("", None),
        ("Auto-Submitted: no\r\n", None),
        (
            "Auto-Submitted: auto-replied\r\n",
            Some("Auto-Submitted: auto-replied"),
        ),
        (
            "Auto-Submitted: auto-generated\r\n",
            Some("Auto-Submitted: auto-generated"),
        ),
        ("Precedence: bulk\r\n", Some("Precedence: bulk")),
        ("Precedence: list\r\n", Some("Precedence: list")),
        ("Precedence: junk\r\n", Some("Precedence: junk")),
        (
            "List-Unsubscribe: <mailto:leave@customer.example>\r\n",
            Some("List-Unsubscribe"),
        ),
        (
            "List-Id: Customer news <news.customer.example>\r\n",
            Some("List-Id"),
        ),
        // Vacation programs that predate RFC 3834's Auto-Submitted.
        ("X-Autoreply: yes\r\n", Some("X-Autoreply: yes")),
        ("X-Autorespond: vacation\r\n", Some("X-Autorespond")),
        ("Precedence: auto_reply\r\n", Some("Precedence: auto_reply")),
        // Any RFC 2369 list header marks list mail, not only List-Id.
        (
            "List-Post: <mailto:team@lists.customer.example>\r\n",
            Some("List-Post"),
        ),
    ];
    let from = format!("Dana <{CONTACT}>");
    for (n, (header, _)) in cases.iter().enumerate() {
        let raw = message(&format!("auto-{n}@gw.example"), &from, "Re: Order", header);
        deliver(dv, &o, "INBOX", &raw);
    }
    let tracked_count = cases.iter().filter(|(_, why)| why.is_none()).count();
    gw.wait_judged(cases.len() as u64);
    assert_eq!(
        gw.metric("crmproxy_gateway_tracked_total"),
        tracked_count as u64,
        "{}",
        gw.stderr()
    );
    let (st, log) = gw.terminate();
    assert!(st.success(), "{log}");

    let flags = flags_by_imaplib(dv, &o, "INBOX");
    assert_eq!(flags.len(), cases.len(), "{flags:?}");
    let store = setup.store();
    for ((uid, f), (n, (header, why))) in flags.iter().zip(cases.iter().enumerate()) {
        let want = if why.is_none() { "$CRM_Tracked" } else { "" };
        assert_eq!(f.trim(), want, "uid {uid} with {header:?}");
        let mid = format!("auto-{n}@gw.example");
        assert_eq!(
            tracked(store.as_ref(), &o, &mid).is_some(),
            why.is_none(),
            "{header:?}"
        );
    }

    // The dry run says why, message by message (it opens the store itself).
    drop(store);
    let out = crmproxy(&config)
        .args(["gateway", "test", &o, "--last", "20"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (n, (header, why)) in cases.iter().enumerate() {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("uid {} ", n + 1)))
            .unwrap_or_else(|| panic!("uid {} not in:\n{text}", n + 1));
        match why {
            None => assert!(line.contains(": TRACK"), "{header:?}: {line}"),
            Some(why) => assert!(
                line.contains("skip (bulk mail (") && line.contains(why),
                "{header:?}: {line}"
            ),
        }
    }
}

/// Mail delivered over LMTP (as a mail server delivers it) while the gateway
/// runs is tracked as the mailbox's rules say and nothing else is; its bytes
/// arrive whole (a body line that starts with a dot went through dot-stuffing).
#[test]
fn mail_delivered_over_lmtp_is_tracked_by_the_rules() {
    let dv = dovecot();
    let o = owner("lmtp");
    let setup = Setup::new(std::slice::from_ref(&o), None);
    let admin = admin_addr();
    let rules = "auto_track = \"all\"\nignore = [\"spam.example\"]";
    let config = setup.config(dv, admin, "", &mailbox(&o, rules));
    let gw = Gateway::start(&config, admin, &[]);
    gw.wait_metric("crmproxy_gateway_folders_watched", 2);

    let dotted = "From: Dana <dana@customer.example>\r\nTo: someone@gw.example\r\n\
                  Subject: Dotted\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\n\
                  Message-ID: <lmtp-dots@gw.example>\r\n\r\nFirst line.\r\n\
                  .A line that starts with a dot.\r\n..and one with two.\r\n";
    let mails: Vec<(Vec<u8>, bool)> = vec![
        (dotted.as_bytes().to_vec(), true),
        (
            message(
                "lmtp-1@gw.example",
                &format!("Dana <{CONTACT}>"),
                "Order",
                "",
            ),
            true,
        ),
        (
            message("lmtp-2@gw.example", "stranger@else.example", "Hello", ""),
            true,
        ),
        (
            message(
                "lmtp-3@gw.example",
                CONTACT,
                "News",
                "List-Id: <news.customer.example>\r\n",
            ),
            false,
        ),
        (
            message("lmtp-4@gw.example", "promo@spam.example", "Offer", ""),
            false,
        ),
    ];
    for (raw, _) in &mails {
        lmtp::deliver(dv.lmtp_addr(), "mta@else.example", &o, raw)
            .unwrap_or_else(|e| panic!("LMTP: {e}\n{}", dv.log()));
    }
    gw.wait_judged(mails.len() as u64);
    let (st, log) = gw.terminate();
    assert!(st.success(), "{log}");

    let flags = flags_by_imaplib(dv, &o, "INBOX");
    assert_eq!(flags.len(), mails.len(), "{flags:?}");
    for ((uid, f), (_, want)) in flags.iter().zip(&mails) {
        assert_eq!(f.trim() == "$CRM_Tracked", *want, "uid {uid}: {f:?}");
        assert!(!f.contains("\\Seen"), "uid {uid}: {f:?}");
    }
    let store = setup.store();
    for (id, want) in [
        ("lmtp-1@gw.example", true),
        ("lmtp-2@gw.example", true),
        ("lmtp-3@gw.example", false),
        ("lmtp-4@gw.example", false),
    ] {
        assert_eq!(tracked(store.as_ref(), &o, id).is_some(), want, "{id}");
    }
    let (_, act) = tracked(store.as_ref(), &o, "lmtp-dots@gw.example").unwrap();
    let ActivityDetails::Email(e) = &act.details else {
        panic!("{act:?}")
    };
    let raw = store.blob(e.raw.as_ref().unwrap()).unwrap();
    let body = &dotted.as_bytes()[dotted.find("\r\n\r\n").unwrap()..];
    assert!(raw.ends_with(body), "{}", String::from_utf8_lossy(&raw));
}

/// A mailbox added to a running gateway (SIGHUP) starts where its mail is: what
/// was there before is history, left alone; what arrives after is judged.
#[test]
fn a_mailbox_added_by_sighup_judges_only_mail_that_arrives_after_it_starts_watching() {
    let dv = dovecot();
    let (first, added) = (owner("first1"), owner("first2"));
    let setup = Setup::new(&[first.clone(), added.clone()], None);
    for n in 0..2 {
        let raw = message(
            &format!("old-{n}@gw.example"),
            &format!("Dana <{CONTACT}>"),
            "From before",
            "",
        );
        deliver(dv, &added, "INBOX", &raw);
    }
    let admin = admin_addr();
    let config = setup.config(dv, admin, "auto_track = \"all\"", &mailbox(&first, ""));
    let gw = Gateway::start(&config, admin, &[]);
    gw.wait_metric("crmproxy_gateway_folders_watched", 2);
    let both = format!("{}{}", mailbox(&first, ""), mailbox(&added, ""));
    setup.config(dv, admin, "auto_track = \"all\"", &both);
    gw.signal(libc::SIGHUP);
    gw.wait_metric("crmproxy_gateway_folders_watched", 4);
    let raw = message(
        "new-0@gw.example",
        &format!("Dana <{CONTACT}>"),
        "After",
        "",
    );
    deliver(dv, &added, "INBOX", &raw);
    wait_tracked(dv, &added, "INBOX", 1);
    // SIGTERM finishes what is in flight: whatever it judged is written.
    let (st, log) = gw.terminate();
    assert!(st.success(), "{log}");

    let flags = flags_by_imaplib(dv, &added, "INBOX");
    let want = [(1, ""), (2, ""), (3, "$CRM_Tracked")];
    assert_eq!(flags.len(), want.len(), "{flags:?}");
    for ((uid, f), (want_uid, want_flags)) in flags.iter().zip(want) {
        assert_eq!((*uid, f.trim()), (want_uid, want_flags), "{flags:?}");
    }
    let store = setup.store();
    assert!(tracked(store.as_ref(), &added, "new-0@gw.example").is_some());
    for n in 0..2 {
        let id = format!("old-{n}@gw.example");
        assert!(tracked(store.as_ref(), &added, &id).is_none(), "{id}");
    }
}

/// With NOTIFY (Dovecot has it) one connection watches a mailbox's three
/// folders and hears of new mail in each: mail in a folder that is not the one
/// IDLE runs on is judged at once, not when the 10-minute IDLE ends. With
/// `notify = false` the folders are split over two connections again.
#[test]
fn with_notify_one_connection_watches_every_folder_and_hears_of_each() {
    let dv = dovecot();
    let o = owner("notify");
    let setup = Setup::new(std::slice::from_ref(&o), None);
    let mut c = RawImap::login(dv.imap_addr(), &o, PASSWORD);
    assert!(c.cmd("CREATE Projects").ok());
    let rules = "auto_track = \"all\"\nwatch = [\"INBOX\", \"Projects\", \"Archive\"]";
    assert!(c.cmd("CREATE Archive").ok());
    let admin = admin_addr();
    let config = setup.config(dv, admin, "idle_secs = 600", &mailbox(&o, rules));
    let gw = Gateway::start(&config, admin, &[]);
    gw.wait_metric("crmproxy_gateway_folders_watched", 3);
    assert_eq!(gw.metric("crmproxy_gateway_connections"), 1);
    for (n, folder) in ["Projects", "Archive", "INBOX"].iter().enumerate() {
        let raw = message(&format!("notify-{n}@gw.example"), CONTACT, "Notified", "");
        assert!(c.append(folder, &raw).ok());
        wait_tracked(dv, &o, folder, 1);
    }
    let sessions = dv.sessions(&o);
    let (st, log) = gw.terminate();
    assert!(st.success(), "{log}");
    // The gateway's one connection and this test's.
    assert_eq!(sessions, 2, "{log}");
    let store = setup.store();
    for n in 0..3 {
        assert_one_activity(&*store, &o, &format!("notify-{n}@gw.example"));
    }
    drop(store);

    let config = setup.config(
        dv,
        admin,
        "idle_secs = 600\nnotify = false",
        &mailbox(&o, rules),
    );
    let gw = Gateway::start(&config, admin, &[]);
    gw.wait_metric("crmproxy_gateway_folders_watched", 3);
    gw.wait_metric("crmproxy_gateway_connections", 2);
    let (st, log) = gw.terminate();
    assert!(st.success(), "{log}");
}
