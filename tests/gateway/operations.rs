//! Operating the gateway: `gateway test` (a dry run that changes nothing),
//! a refused credentials file, SIGHUP re-reading the mailbox list, JSON logs,
//! and two gateways beside each other on one PostgreSQL CRM.

use crmproxy::store::*;

use super::common::dovecot;
use super::harness::*;

#[test]
fn gateway_test_dry_runs_the_rules_and_changes_nothing() {
    let dv = dovecot();
    let o = owner("dry");
    let open = owner("dry-open");
    let setup = Setup::new(&[o.clone(), open.clone()], None);
    deliver(
        dv,
        &o,
        "INBOX",
        &message(
            "dry-1@gw.example",
            &format!("Dana <{CONTACT}>"),
            "Order",
            "",
        ),
    );
    deliver(
        dv,
        &o,
        "INBOX",
        &message(
            "dry-2@gw.example",
            CONTACT,
            "News",
            "List-Id: <news.customer.example>\r\n",
        ),
    );
    deliver(
        dv,
        &o,
        "INBOX",
        &message("dry-3@gw.example", "stranger@else.example", "Hi", ""),
    );
    let boxes = format!(
        "{}[[gateway.mailbox]]\nname = \"open\"\nowner = \"{open}\"\nserver = \"dv\"\nlogin = \"{open}\"\npassword_file = \"{}\"\n",
        mailbox(&o, "auto_track = \"from_any_record\""),
        setup.password_file("open.pass", 0o644).display()
    );
    let config = setup.config(dv, admin_addr(), "", &boxes);
    let out = crmproxy(&config)
        .args(["gateway", "test", &o, "--last", "5"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "login: ok",
        "IDLE yes",
        "CONDSTORE yes",
        "folders: ",
        "watch INBOX (rules): the last 3 of 3 messages",
        &format!("uid 1 from {CONTACT} \"Order\": TRACK (auto_track FromAnyRecord)"),
        "uid 2 from dana@customer.example \"News\": skip (bulk mail (List-Id",
        "uid 3 from stranger@else.example \"Hi\": skip (the sender is not a CRM record",
        "watch Sent (replies to tracked email): the last 0 of 0 messages",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
    // Nothing changed: no keyword, no \Seen, nothing in the CRM.
    for (uid, f) in flags_by_imaplib(dv, &o, "INBOX") {
        assert_eq!(f.trim(), "", "uid {uid}");
    }
    assert!(tracked(setup.store().as_ref(), &o, "dry-1@gw.example").is_none());

    // A credentials file others may read is refused, clearly.
    let out = crmproxy(&config)
        .args(["gateway", "test", "open"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("may be read by others (mode 0644)") && err.contains("chmod 600"),
        "{err}"
    );
    let out = crmproxy(&config)
        .args(["gateway", "test", "nobody"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn sighup_rereads_the_mailbox_list_and_logs_can_be_json() {
    let dv = dovecot();
    let (first, second) = (owner("hup1"), owner("hup2"));
    let setup = Setup::new(&[first.clone(), second.clone()], None);
    let admin = admin_addr();
    let config = setup.config(dv, admin, "auto_track = \"all\"", &mailbox(&first, ""));
    let gw = Gateway::start(&config, admin, &["--log-format", "json"]);
    gw.wait_metric("crmproxy_gateway_folders_watched", 2);
    let both = format!("{}{}", mailbox(&first, ""), mailbox(&second, ""));
    setup.config(dv, admin, "auto_track = \"all\"", &both);
    gw.signal(libc::SIGHUP);
    gw.wait_metric("crmproxy_gateway_folders_watched", 4);
    deliver(
        dv,
        &second,
        "INBOX",
        &message("hup@gw.example", "x@else.example", "After HUP", ""),
    );
    wait_tracked(dv, &second, "INBOX", 1);
    let (ok, status) = gw.status();
    assert!(ok && status.contains(&second), "{status}");

    // Removing a mailbox stops it (its connections close).
    setup.config(dv, admin, "auto_track = \"all\"", &mailbox(&second, ""));
    gw.signal(libc::SIGHUP);
    assert_eq!(dv.wait_sessions_gone(&first), 0);
    let (st, log) = gw.terminate();
    assert!(st.success(), "{log}");
    // Every log line (but the plain start/stop lines) is a JSON object.
    let json: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        json.iter().any(|v| v["message"] == "config re-read"),
        "{log}"
    );
    assert!(
        json.iter()
            .any(|v| v["message"] == "tracked automatically"
                && v["spans"].to_string().contains(&second)),
        "{log}"
    );
    for l in log.lines().filter(|l| !l.starts_with('{')) {
        assert!(
            l.starts_with("listening admin") || l.starts_with("gateway "),
            "{l}"
        );
    }
}

#[test]
fn two_gateways_on_one_postgresql_crm_make_one_activity_per_message() {
    let dv = dovecot();
    let o = owner("pg");
    let url = super::store_support::backend::pg::fresh_db();
    let setup = Setup::new(std::slice::from_ref(&o), Some(url));
    let (a1, a2) = (admin_addr(), admin_addr());
    let config1 = setup.config(dv, a1, "auto_track = \"all\"", &mailbox(&o, ""));
    let g1 = Gateway::start(&config1, a1, &[]);
    let copy = setup.dir.path().join("second.toml");
    std::fs::copy(&config1, &copy).unwrap();
    let text = std::fs::read_to_string(&copy)
        .unwrap()
        .replace(&a1.to_string(), &a2.to_string());
    std::fs::write(&copy, text).unwrap();
    let g2 = Gateway::start(&copy, a2, &[]);
    g1.wait_metric("crmproxy_gateway_folders_watched", 2);
    g2.wait_metric("crmproxy_gateway_folders_watched", 2);
    const N: usize = 20;
    for n in 0..N {
        deliver(
            dv,
            &o,
            "INBOX",
            &message(&format!("pg-{n}@gw.example"), CONTACT, "Both", ""),
        );
    }
    // Each gateway judged every message (tracked, or found tracked already).
    for g in [&g1, &g2] {
        let deadline = std::time::Instant::now() + PATIENCE;
        while g.metric("crmproxy_gateway_tracked_total")
            + g.metric("crmproxy_gateway_skipped_total")
            < N as u64
        {
            assert!(std::time::Instant::now() < deadline, "{}", g.stderr());
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    assert_eq!(
        g1.metric("crmproxy_gateway_failed_total") + g2.metric("crmproxy_gateway_failed_total"),
        0
    );
    for g in [g1, g2] {
        let (st, log) = g.terminate();
        assert!(st.success(), "{log}");
    }
    let store = setup.store();
    for n in 0..N {
        let mid = MessageId::parse(&format!("pg-{n}@gw.example")).unwrap();
        assert_eq!(
            store.activities_by_message_id(&mid).unwrap().len(),
            1,
            "{mid}"
        );
        assert!(tracked(store.as_ref(), &o, mid.as_str()).is_some());
    }
    for (uid, f) in flags_by_imaplib(dv, &o, "INBOX") {
        assert_eq!(f.trim(), "$CRM_Tracked", "uid {uid}");
    }
}

#[test]
fn a_vanished_folder_shows_in_error_while_the_rest_is_watched() {
    let dv = dovecot();
    let o = owner("gone");
    let setup = Setup::new(std::slice::from_ref(&o), None);
    let admin = admin_addr();
    let rules = "auto_track = \"all\"\nwatch = [\"INBOX\", \"Sent\", \"Gone\"]";
    let config = setup.config(dv, admin, "", &mailbox(&o, rules));
    let gw = Gateway::start(&config, admin, &[]);
    gw.wait_metric("crmproxy_gateway_folders_watched", 2);
    deliver(
        dv,
        &o,
        "INBOX",
        &message("gone-1@gw.example", "x@else.example", "Still", ""),
    );
    wait_tracked(dv, &o, "INBOX", 1);
    let (ok, status) = gw.status();
    assert!(ok, "{status}");
    assert!(status.lines().nth(1).unwrap().contains("ERROR"), "{status}");
    assert!(status.contains("cannot watch folder Gone"), "{status}");
    let (st, log) = gw.terminate();
    assert!(st.success(), "{log}");
}
