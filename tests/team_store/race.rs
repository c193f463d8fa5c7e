//! End to end, under pressure: two proxies tracking one message at the same
//! moment, and `kill -9` of a proxy while it tracks.

use super::*;
use crate::common::{dovecot, unique_user, Proxy, ProxyOptions, RawImap, PASSWORD};
use crate::tracking_support::{add_user, crm, message, wait_keyword};

fn proxy_on(url: &str) -> Proxy {
    Proxy::start_with(
        dovecot(),
        ProxyOptions {
            config_toml: Some(format!(
                "[tracking]\nload_demo_on_first_run = false\n[store]\nurl = \"{url}\"\n"
            )),
            ..Default::default()
        },
    )
}

/// Email activities with this Message-ID, read straight from the database.
fn activities(url: &str, message_id: &str) -> usize {
    open(url)
        .activities_by_message_id(&MessageId::parse(message_id).unwrap())
        .unwrap()
        .len()
}

/// alice (through one proxy) and bob (through another) both hold the same
/// message and ask to track it at the same moment: one activity, two
/// tracking records.
#[test]
fn both_proxies_tracking_one_message_at_once_make_one_activity() {
    let url = pg::fresh_db();
    let (a, b) = (proxy_on(&url), proxy_on(&url));
    let alice = format!("{}@crm-test.example", unique_user("ra"));
    let bob = format!("{}@crm-test.example", unique_user("rb"));
    add_user(&a.data_dir, &alice, true);
    add_user(&a.data_dir, &bob, true);
    for round in 0..3 {
        let id = format!("{}@race.example", unique_user("race"));
        let m = message(&id, &format!("Race {round}"), "");
        let barrier = Arc::new(Barrier::new(2));
        let threads: Vec<_> = [(alice.clone(), a.imap), (bob.clone(), b.imap)]
            .into_iter()
            .map(|(user, addr)| {
                let (m, barrier) = (m.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let mut direct = RawImap::login(dovecot().imap_addr(), &user, PASSWORD);
                    assert!(direct.append("INBOX", &m).ok());
                    let uid = round + 1;
                    let mut c = RawImap::login(addr, &user, PASSWORD);
                    assert!(c.cmd("SELECT INBOX").ok());
                    barrier.wait();
                    let r = c.cmd(&format!("UID STORE {uid} +FLAGS ($CRM_Track)"));
                    assert!(r.ok(), "{}", r.tagged);
                    wait_keyword(&mut direct, "INBOX", uid, "$CRM_Tracked", true);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(activities(&url, &id), 1, "round {round}");
        let tracked = open(&url)
            .tracking_of_message(&MessageId::parse(&id).unwrap())
            .unwrap();
        assert_eq!(tracked.len(), 2, "round {round}");
        assert_eq!(tracked[0].activity, tracked[1].activity);
    }
    let _ = crm;
}

/// `kill -9` of a proxy while it tracks: every message it marked tracked on
/// the server (its acknowledgement) has its activity in the database.
#[test]
fn kill_9_while_tracking_loses_nothing_acknowledged() {
    let url = pg::fresh_db();
    let mut a = proxy_on(&url);
    let user = format!("{}@crm-test.example", unique_user("k9"));
    add_user(&a.data_dir, &user, true);
    let mut direct = RawImap::login(dovecot().imap_addr(), &user, PASSWORD);
    let n = 40;
    let ids: Vec<String> = (0..n)
        .map(|i| format!("{}-{i}@kill.example", unique_user("k")))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        assert!(direct
            .append("INBOX", &message(id, &format!("Kill {i}"), ""))
            .ok());
    }
    let mut c = RawImap::login(a.imap, &user, PASSWORD);
    assert!(c.cmd("SELECT INBOX").ok());
    let r = c.cmd(&format!("UID STORE 1:{n} +FLAGS ($CRM_Track)"));
    assert!(r.ok(), "{}", r.tagged);
    // Let part of it happen, then kill the proxy without warning.
    wait_keyword(&mut direct, "INBOX", 1, "$CRM_Tracked", true);
    // SAFETY: signalling the child process this test started.
    unsafe {
        libc::kill(a.pid() as libc::pid_t, libc::SIGKILL);
    }
    let _ = a.wait_exit(std::time::Duration::from_secs(5));
    let mut acknowledged = 0;
    for (i, id) in ids.iter().enumerate() {
        let flags = crate::tracking_support::flags(&mut direct, "INBOX", i as u32 + 1);
        if flags.split(' ').any(|k| k == "$CRM_Tracked") {
            acknowledged += 1;
            assert_eq!(
                activities(&url, id),
                1,
                "{id} was marked tracked but is lost"
            );
        }
    }
    assert!(acknowledged >= 1);
}
