//! Fifty mailboxes with different rules, two more whose credentials are wrong:
//! mail delivered while the gateway runs is tracked as each mailbox's rules say
//! and nothing else is; nothing is marked `\Seen`; the broken mailboxes show in
//! `gateway status`, `/healthz` and `/metrics` while the others go on.

use crmproxy::store::*;
use crmproxy::track::{Engine, TrackRequest, TrackSource};

use super::common::{dovecot, RawImap, PASSWORD};
use super::harness::*;

const MAILBOXES: usize = 50;

/// What each group of mailboxes is configured with (`i % 5`).
fn rules_of(i: usize, account: RecordRef) -> String {
    match i % 5 {
        0 => "auto_track = \"all\"".into(),
        1 => "auto_track = \"from_any_record\"".into(),
        2 => "auto_track = \"off\"".into(),
        3 => {
            "auto_track = \"all\"\nheaders_only = true\nignore = [\"stranger@else.example\"]".into()
        }
        _ => format!(
            "auto_track = \"all\"\nwatch = [\"INBOX\", \"Sent\", \"Projects\"]\n\
             folder_regarding = {{ \"Projects\" = \"account:{}\" }}",
            account.id
        ),
    }
}

#[test]
fn fifty_mailboxes_track_by_their_rules_and_nothing_else() {
    let dv = dovecot();
    let owners: Vec<String> = (0..MAILBOXES).map(|i| owner(&format!("r{i}"))).collect();
    let hand = owner("hand");
    // Broken: a wrong password, and a password file others may read.
    let wrong = owner("wrong");
    let open = owner("open");
    let mut all = owners.clone();
    all.extend([hand.clone(), wrong.clone(), open.clone()]);
    let setup = Setup::new(&all, None);

    // A message someone tracked by hand regarding Fabrikam, before it reaches
    // the mapped folders (which map to Contoso).
    let hand_msg = |i: usize| {
        message(
            &format!("hand-{i}@gw.example"),
            &format!("Dana <{CONTACT}>"),
            "Chosen by hand",
            "",
        )
    };
    {
        let store: std::sync::Arc<dyn CrmStore> = setup.store().into();
        let engine = Engine::new(store.clone(), Default::default()).unwrap();
        let actor = engine.actor(&hand, &hand).unwrap();
        for i in (0..MAILBOXES).filter(|i| i % 5 == 4) {
            let req = TrackRequest::new(TrackSource::Pane).regarding(setup.other_account);
            engine.track(&actor, &hand_msg(i), req).unwrap();
        }
        store.close().unwrap();
    }
    for (i, o) in owners.iter().enumerate().filter(|(i, _)| i % 5 == 4) {
        let _ = i;
        let mut c = super::common::RawImap::login(dv.imap_addr(), o, super::common::PASSWORD);
        assert!(c.cmd("CREATE Projects").ok());
    }

    let mut boxes: String = owners
        .iter()
        .enumerate()
        .map(|(i, o)| mailbox(o, &rules_of(i, setup.account)))
        .collect();
    boxes.push_str(&format!(
        "[[gateway.mailbox]]\nname = \"wrong\"\nowner = \"{wrong}\"\nserver = \"dv\"\nlogin = \"{wrong}\"\n\
         password_command = \"echo not-the-password\"\n\n\
         [[gateway.mailbox]]\nname = \"open\"\nowner = \"{open}\"\nserver = \"dv\"\nlogin = \"{open}\"\n\
         password_file = \"{}\"\n",
        setup.password_file("open.pass", 0o644).display()
    ));
    let admin = admin_addr();
    let config = setup.config(dv, admin, "ignore = [\"spam.example\"]", &boxes);
    let gw = Gateway::start(&config, admin, &[]);
    // INBOX and Sent everywhere, Projects in a fifth of them.
    gw.wait_metric(
        "crmproxy_gateway_folders_watched",
        (MAILBOXES * 2 + MAILBOXES / 5) as u64,
    );

    for (i, o) in owners.iter().enumerate() {
        let mut c = super::common::RawImap::login(dv.imap_addr(), o, super::common::PASSWORD);
        let from_contact = message(
            &format!("a-{i}@gw.example"),
            &format!("Dana <{CONTACT}>"),
            "Order",
            "",
        );
        let stranger = message(
            &format!("b-{i}@gw.example"),
            "stranger@else.example",
            "Hello",
            "",
        );
        let bulk = message(
            &format!("c-{i}@gw.example"),
            CONTACT,
            "Newsletter",
            "List-Id: <news.customer.example>\r\n",
        );
        let ignored = message(
            &format!("d-{i}@gw.example"),
            "promo@spam.example",
            "Offer",
            "",
        );
        for m in [&from_contact, &stranger, &bulk, &ignored] {
            assert!(c.append("INBOX", m).ok());
        }
        if i % 5 == 4 {
            let mapped = message(
                &format!("mapped-{i}@gw.example"),
                "x@else.example",
                "Project news",
                "",
            );
            assert!(c.append("Projects", &mapped).ok());
            assert!(c.append("Projects", &hand_msg(i)).ok());
        }
    }
    // Every message judged: 80 tracked, 140 left alone.
    gw.wait_metric("crmproxy_gateway_skipped_total", 140);
    gw.wait_metric("crmproxy_gateway_tracked_total", 80);
    assert_eq!(gw.metric("crmproxy_gateway_tracked_total"), 80);

    // The broken mailboxes show, the others are fine once each is caught up.
    let line_in = |status: &str, name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} not in:\n{status}"))
            .to_string()
    };
    let status = gw.wait_status(|s| owners.iter().all(|o| line_in(s, o).contains(" ok ")));
    let line = |name: &str| line_in(&status, name);
    assert!(line("wrong ").contains("ERROR"), "{status}");
    assert!(line("open ").contains("ERROR"), "{status}");
    assert!(status.contains("wrong: login refused"), "{status}");
    assert!(
        status.contains("open: credential: the password file") && status.contains("chmod 600"),
        "{status}"
    );
    let (code, _) = gw.get("/healthz");
    assert_eq!(code, 200);
    let (_, metrics) = gw.get("/metrics");
    assert!(
        metrics.contains("crmproxy_gateway_mailbox_up{mailbox=\"wrong\"} 0"),
        "{metrics}"
    );
    assert!(metrics.contains(&format!(
        "crmproxy_gateway_mailbox_up{{mailbox=\"{}\"}} 1",
        owners[0]
    )));
    // At most two connections per mailbox (INBOX and Sent; Projects shares one).
    for o in &owners {
        assert!(dv.sessions(o) <= 2, "{o}: {} sessions", dv.sessions(o));
    }

    // What the mailboxes show: the tracked keyword exactly where the rules
    // said, nothing else, and never \Seen.
    for (i, o) in owners.iter().enumerate() {
        let expect: &[u32] = match i % 5 {
            0 | 4 => &[1, 2],
            1 | 3 => &[1],
            _ => &[],
        };
        for (uid, flags) in flags_by_imaplib(dv, o, "INBOX") {
            assert!(!flags.contains("\\Seen"), "{o} {uid}: {flags}");
            let tracked = expect.contains(&uid);
            assert_eq!(
                flags.trim() == "$CRM_Tracked",
                tracked,
                "{o} uid {uid}: {flags:?}"
            );
        }
        if i % 5 == 4 {
            for (uid, flags) in flags_by_imaplib(dv, o, "Projects") {
                assert_eq!(flags.trim(), "$CRM_Tracked", "{o} Projects {uid}");
            }
        }
    }
    let (st, log) = gw.terminate();
    assert!(st.success(), "{st}:\n{log}");

    let store = setup.store();
    for (i, o) in owners.iter().enumerate() {
        let a = tracked(store.as_ref(), o, &format!("a-{i}@gw.example"));
        assert_eq!(a.is_some(), i % 5 != 2, "{o}");
        if i % 5 == 3 {
            // Headers only: no body, the stored original cut after the header.
            let (_, act) = a.clone().unwrap();
            let ActivityDetails::Email(e) = &act.details else {
                panic!()
            };
            assert!(e.body_text.is_empty(), "{:?}", e.body_text);
            let raw = store.blob(e.raw.as_ref().unwrap()).unwrap();
            assert!(raw.ends_with(b"\r\n\r\n") && !raw.windows(4).any(|w| w == b"body"));
        }
        if i % 5 == 0 {
            let (_, act) = a.clone().unwrap();
            let ActivityDetails::Email(e) = &act.details else {
                panic!()
            };
            assert!(e.body_text.contains("The body of"), "{:?}", e.body_text);
        }
        if i % 5 == 4 {
            let (t, act) = tracked(store.as_ref(), o, &format!("mapped-{i}@gw.example")).unwrap();
            assert_eq!(act.regarding, Some(setup.account));
            assert_eq!(t.via.as_deref(), Some("automatic"));
            let (_, act) = tracked(store.as_ref(), o, &format!("hand-{i}@gw.example")).unwrap();
            assert_eq!(
                act.regarding,
                Some(setup.other_account),
                "a hand-set regarding stays"
            );
        }
        for never in ["c", "d"] {
            assert!(tracked(store.as_ref(), o, &format!("{never}-{i}@gw.example")).is_none());
        }
    }
}

/// A request keyword set by a client that talks to the server directly is swept
/// in every watched folder, not only INBOX, whatever the automatic level; an
/// unmarked message beside it stays untracked.
#[test]
fn request_keywords_are_swept_in_every_watched_folder() {
    let dv = dovecot();
    let o = owner("sweep");
    let setup = Setup::new(std::slice::from_ref(&o), None);
    let mut c = RawImap::login(dv.imap_addr(), &o, PASSWORD);
    assert!(c.cmd("CREATE Projects").ok());
    for n in 0..2 {
        let raw = message(
            &format!("sweep-{n}@gw.example"),
            "x@else.example",
            "Swept",
            "",
        );
        assert!(c.append("Projects", &raw).ok());
    }
    assert!(c.cmd("SELECT Projects").ok());
    assert!(c.cmd("UID STORE 1 +FLAGS ($CRM_Track)").ok());
    let admin = admin_addr();
    let config = setup.config(
        dv,
        admin,
        "",
        &mailbox(
            &o,
            "auto_track = \"off\"\nwatch = [\"INBOX\", \"Projects\"]",
        ),
    );
    let gw = Gateway::start(&config, admin, &[]);
    wait_tracked(dv, &o, "Projects", 1);
    gw.wait_metric("crmproxy_gateway_folders_watched", 2);
    let (st, log) = gw.terminate();
    assert!(st.success(), "{log}");
    let flags = flags_by_imaplib(dv, &o, "Projects");
    assert_eq!(flags.len(), 2, "{flags:?}");
    assert_eq!(flags[0].1.trim(), "$CRM_Tracked", "{flags:?}");
    assert_eq!(flags[1].1.trim(), "", "the unmarked one: {flags:?}");
    let store = setup.store();
    assert!(tracked(&*store, &o, "sweep-0@gw.example").is_some());
    assert!(tracked(&*store, &o, "sweep-1@gw.example").is_none());
}
