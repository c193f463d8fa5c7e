//! Exactly once whatever happens: the gateway killed with SIGKILL in the middle
//! of a stream and started again tracks every message once and marks none
//! `\Seen`; Dovecot stopped and started under it: it reconnects and misses nothing.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crmproxy::store::*;

use super::common::dovecot::dovecot_with;
use super::common::{self, dovecot, RawImap, PASSWORD};
use super::harness::*;

const STREAM: usize = 40;

#[test]
fn kill_9_mid_stream_then_a_restart_tracks_each_message_exactly_once_and_none_seen() {
    let dv = dovecot();
    let owners: Vec<String> = (0..3).map(|i| owner(&format!("k{i}"))).collect();
    let setup = Setup::new(&owners, None);
    let boxes: String = owners
        .iter()
        .map(|o| mailbox(o, "auto_track = \"all\""))
        .collect();
    let admin = admin_addr();
    let config = setup.config(dv, admin, "", &boxes);
    let gw = Gateway::start(&config, admin, &[]);
    gw.wait_metric("crmproxy_gateway_folders_watched", 6);

    // A stream of mail into every mailbox, from another thread.
    let (addr, stream_owners) = (dv.imap_addr(), owners.clone());
    let delivering = std::thread::spawn(move || {
        let mut clients: Vec<RawImap> = stream_owners
            .iter()
            .map(|o| RawImap::login(addr, o, PASSWORD))
            .collect();
        for n in 0..STREAM {
            for (i, c) in clients.iter_mut().enumerate() {
                let m = message(
                    &format!("s{n}-{i}@gw.example"),
                    "x@else.example",
                    &format!("Stream {n}"),
                    "",
                );
                assert!(c.append("INBOX", &m).ok());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    // Killed once it is busy.
    gw.wait_metric("crmproxy_gateway_tracked_total", 10);
    gw.kill9();
    delivering.join().unwrap();

    let gw = Gateway::start(&config, admin, &[]);
    for o in &owners {
        wait_tracked(dv, o, "INBOX", STREAM);
    }
    let (st, log) = gw.terminate();
    assert!(st.success(), "{log}");

    let store = setup.store();
    for (i, o) in owners.iter().enumerate() {
        let flags = flags_by_imaplib(dv, o, "INBOX");
        assert_eq!(flags.len(), STREAM);
        for (uid, f) in &flags {
            assert_eq!(f.trim(), "$CRM_Tracked", "{o} uid {uid}");
        }
        for n in 0..STREAM {
            let mid = MessageId::parse(&format!("s{n}-{i}@gw.example")).unwrap();
            assert_eq!(
                store.activities_by_message_id(&mid).unwrap().len(),
                1,
                "{mid}"
            );
            assert!(tracked(store.as_ref(), o, mid.as_str()).is_some());
        }
        let u = store
            .user_by_login(&store_support_addr(o))
            .unwrap()
            .unwrap();
        let cps = store.checkpoints(u.id, o).unwrap();
        let inbox = cps
            .iter()
            .find(|(f, _)| f == "INBOX")
            .expect("INBOX checkpoint");
        assert_eq!(inbox.1.last_uid, STREAM as u32);
    }
}

fn store_support_addr(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}

/// Start Dovecot again on its config (same ports), as a child of this test
/// (which kills and reaps it at its end).
#[allow(clippy::zombie_processes)]
fn start_dovecot_again(
    conf: &std::path::Path,
    dv_addr: std::net::SocketAddr,
) -> std::process::Child {
    let bin = if std::path::Path::new("/usr/sbin/dovecot").exists() {
        "/usr/sbin/dovecot"
    } else {
        "dovecot"
    };
    let mut cmd = Command::new(bin);
    cmd.arg("-F")
        .arg("-c")
        .arg(conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    common::die_with_parent(&mut cmd, libc::SIGTERM);
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(mut c) = RawImap::connect(dv_addr) {
            if !c.greeting.contains("Waiting") && c.cmd(&format!("LOGIN ready {PASSWORD}")).ok() {
                return child;
            }
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("Dovecot did not come back");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn dovecot_stopped_and_started_under_it_it_reconnects_and_misses_nothing() {
    // A Dovecot of its own: this test stops it.
    let dv = dovecot_with("\n# the gateway's restart test\n");
    let o = owner("dvrestart");
    let setup = Setup::new(std::slice::from_ref(&o), None);
    let admin = admin_addr();
    let config = setup.config(dv, admin, "", &mailbox(&o, "auto_track = \"all\""));
    let gw = Gateway::start(&config, admin, &[]);
    gw.wait_metric("crmproxy_gateway_folders_watched", 2);
    for n in 0..3 {
        deliver(
            dv,
            &o,
            "INBOX",
            &message(
                &format!("before-{n}@gw.example"),
                "x@else.example",
                "Before",
                "",
            ),
        );
    }
    wait_tracked(dv, &o, "INBOX", 3);

    // Stop it: the gateway's connections drop, the mailbox shows the error.
    // SAFETY: signalling the Dovecot this test binary started.
    unsafe {
        libc::kill(dv.pid as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + PATIENCE;
    while std::path::Path::new(&format!("/proc/{}", dv.pid)).exists() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    let deadline = Instant::now() + PATIENCE;
    while gw.metric(&format!("crmproxy_gateway_mailbox_up{{mailbox=\"{o}\"}}")) != 0 {
        assert!(Instant::now() < deadline, "{}", gw.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut again = start_dovecot_again(&dv.conf, dv.imap_addr());
    // Delivered as soon as it is back, maybe before the gateway reconnects.
    for n in 0..3 {
        deliver(
            dv,
            &o,
            "INBOX",
            &message(
                &format!("after-{n}@gw.example"),
                "x@else.example",
                "After",
                "",
            ),
        );
    }
    wait_tracked(dv, &o, "INBOX", 6);
    // Every connection comes back (the Sent one may still be in its back-off
    // when INBOX's has tracked everything).
    gw.wait_status(|s| s.contains(" ok "));
    let (st, log) = gw.terminate();
    assert!(st.success(), "{log}");
    for (uid, f) in flags_by_imaplib(dv, &o, "INBOX") {
        assert_eq!(f.trim(), "$CRM_Tracked", "uid {uid}");
    }
    let _ = again.kill();
    let _ = again.wait();
}

/// A folder whose UIDVALIDITY changed (deleted and made again, its mail put
/// back) is judged again by Message-ID: what was tracked is not tracked twice,
/// its keyword comes back, and new mail in it is tracked.
#[test]
fn a_changed_uidvalidity_is_judged_again_without_duplicates() {
    let dv = dovecot();
    let o = owner("uidvalidity");
    let setup = Setup::new(std::slice::from_ref(&o), None);
    let mut c = RawImap::login(dv.imap_addr(), &o, PASSWORD);
    assert!(c.cmd("CREATE Projects").ok());
    let raws: Vec<Vec<u8>> = (0..3)
        .map(|n| {
            message(
                &format!("uv-{n}@gw.example"),
                "x@else.example",
                "Validity",
                "",
            )
        })
        .collect();
    let rules = "auto_track = \"all\"\nwatch = [\"INBOX\", \"Projects\"]";
    let admin = admin_addr();
    let config = setup.config(dv, admin, "", &mailbox(&o, rules));
    let gw = Gateway::start(&config, admin, &[]);
    // Mail from before its first start is history; what arrives now is judged.
    gw.wait_metric("crmproxy_gateway_folders_watched", 2);
    for raw in &raws[..2] {
        assert!(c.append("Projects", raw).ok());
    }
    wait_tracked(dv, &o, "Projects", 2);
    let (st, log) = gw.terminate();
    assert!(st.success(), "{log}");

    // The folder made again: a new UIDVALIDITY, the two old messages and a new one.
    assert!(c.cmd("DELETE Projects").ok());
    assert!(c.cmd("CREATE Projects").ok());
    for raw in &raws {
        assert!(c.append("Projects", raw).ok());
    }
    let admin = admin_addr();
    let config = setup.config(dv, admin, "", &mailbox(&o, rules));
    let gw = Gateway::start(&config, admin, &[]);
    wait_tracked(dv, &o, "Projects", 3);
    let (st, log) = gw.terminate();
    assert!(st.success(), "{log}");
    let store = setup.store();
    for n in 0..3 {
        let mid = MessageId::parse(&format!("uv-{n}@gw.example")).unwrap();
        assert_eq!(
            store.activities_by_message_id(&mid).unwrap().len(),
            1,
            "uv-{n}"
        );
    }
}
