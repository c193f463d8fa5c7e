//! The tracking fetch benchmark (SPEC section 11), not a test:
//! `cargo bench --bench tracking_fetch`.
//!
//! Fills the INBOX of a CRM user and of a user the CRM does not know with the same
//! 10,000 realistic messages (straight into the Maildirs of the test harness's
//! private Dovecot), tracks every message of the CRM user in a fresh store (one
//! `Engine::track` each, with its location, before `serve` opens the store), then
//! measures `UID FETCH 1:* BODY.PEEK[]` through a release `crmproxy serve` for both
//! users, through `socat -b 262144`, and directly. Every path must return the same
//! bytes (the proxy never edits a message). A new session per fetch; medians.
//!
//! Then the cost of `tracking.write_headers = "replace"`: BENCH_REPLACE messages
//! (default 300) of another CRM user asked for with one keyword STORE through the
//! proxy, timed until the sync worker has tracked them all, once in `appended` mode
//! and once in `replace` mode (copy APPENDed, original expunged).
//!
//! Environment: BENCH_MESSAGES (default 10000), BENCH_ROUNDS (5), BENCH_REPLACE (300).

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use common::{dovecot, Proxy, ProxyOptions};
use crmproxy::config::TrackingConfig;
use crmproxy::store::{MessageLocation, SledStore};
use crmproxy::track::{Engine, TrackRequest, TrackSource};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use support::{env_num, loadavg, median, start_socat, Client};

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// Realistic mail: varied senders, threads (In-Reply-To), sizes from 1 to ~40 KB.
fn message(n: usize) -> Vec<u8> {
    let mut m = common::sample_message(n, 10 + (n * 37) % 600);
    let from = format!(
        "From: Contact {} <contact{}@fabrikam.example>\r\n",
        n % 97,
        n % 97
    );
    m.splice(0..0, from.into_bytes());
    if n % 3 == 1 {
        let reply = format!("In-Reply-To: <msg-{}@example.com>\r\n", n - 1);
        m.splice(0..0, reply.into_bytes());
    }
    m
}

/// UID → Message-ID of every message in the selected mailbox.
fn uids_by_message_id(c: &mut Client) -> HashMap<String, u32> {
    let (t, lits) = c.cmd("UID FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])");
    assert!(t.contains(" OK"), "{t}");
    lits.into_iter()
        .filter_map(|(line, lit)| {
            let uid = line
                .split("UID ")
                .nth(1)?
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()?;
            let text = String::from_utf8_lossy(&lit).into_owned();
            let mid = text.split_once(':')?.1.trim().to_string();
            Some((mid, uid))
        })
        .collect()
}

/// UIDVALIDITY of `mailbox` (STATUS).
fn uid_validity(c: &mut Client, mailbox: &str) -> u32 {
    c.s.write_all(format!("v STATUS {mailbox} (UIDVALIDITY)\r\n").as_bytes())
        .unwrap();
    let mut found = None;
    let mut line = String::new();
    loop {
        line.clear();
        c.r.read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "connection closed");
        if let Some(v) = line.split("UIDVALIDITY ").nth(1) {
            found = v
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|n| n.parse().ok());
        }
        if line.starts_with("v ") {
            return found.expect("UIDVALIDITY in STATUS");
        }
    }
}

fn crm(data: &Path, args: &[&str]) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crmproxy"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("CRMPROXY_CONFIG")
        .output()
        .expect("run crmproxy");
    assert!(
        out.status.success(),
        "crmproxy {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Seconds until the worker tracked `count` messages asked for with one keyword
/// STORE through a proxy in `mode` (a fresh store and user each time).
fn time_keyword_tracking(dv: &'static common::Dovecot, count: usize, mode: &str) -> f64 {
    let user = format!("bench-{mode}-{}@crm-test.example", std::process::id());
    dv.fill_inbox(&user, (1..=count).map(message));
    let data = tempfile::tempdir().unwrap();
    std::fs::write(
        data.path().join("crmproxy.toml"),
        format!("[tracking]\nload_demo_on_first_run = false\nwrite_headers = \"{mode}\"\n"),
    )
    .unwrap();
    crm(
        data.path(),
        &[
            "user", "add", "Bench", "--login", &user, "--grant", "use_app",
        ],
    );
    let proxy = Proxy::start_with(
        dv,
        ProxyOptions {
            data_dir: Some(data.path().to_path_buf()),
            ..Default::default()
        },
    );
    let mut c = Client::login(proxy.imap, &user);
    assert!(c.cmd("SELECT INBOX").0.contains(" OK"));
    let t0 = Instant::now();
    assert!(c
        .cmd("UID STORE 1:* +FLAGS.SILENT ($CRM_Track)")
        .0
        .contains(" OK"));
    // Done when every message carries $CRM_Tracked and, in replace mode, the
    // originals are gone (the copies carry the block).
    let mut d = Client::login(dv.imap_addr(), &user);
    loop {
        assert!(d.cmd("EXAMINE INBOX").0.contains(" OK"));
        let tracked = d.search_count("KEYWORD $CRM_Tracked");
        let all = d.search_count("ALL");
        if tracked == count && all == count {
            break;
        }
        assert!(
            t0.elapsed().as_secs() < 600,
            "tracking {count} in {mode} mode took too long"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    t0.elapsed().as_secs_f64()
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("tracking fetch benchmark: run it with `cargo bench --bench tracking_fetch`");
        return;
    }
    let count = env_num("BENCH_MESSAGES", 10_000);
    let rounds = env_num("BENCH_ROUNDS", 5);
    let replace_count = env_num("BENCH_REPLACE", 300);
    let load_before = loadavg();
    let dv = dovecot();
    let user = format!("bench-track-{}@crm-test.example", std::process::id());
    let stranger = format!("bench-other-{}@crm-test.example", std::process::id());
    let messages: Vec<Vec<u8>> = (1..=count).map(message).collect();
    eprintln!("bench: filling two INBOXes with {count} messages");
    dv.fill_inbox(&user, messages.iter().cloned());
    dv.fill_inbox(&stranger, messages.iter().cloned());

    // Where each message landed in INBOX.
    let mut d = Client::login(dv.imap_addr(), &user);
    assert!(d.cmd("SELECT INBOX").0.contains(" OK"));
    let uids = uids_by_message_id(&mut d);
    assert_eq!(uids.len(), count, "every message has a UID");
    let validity = uid_validity(&mut d, "INBOX");
    drop(d);

    // Track all of INBOX in a fresh store, before serve opens it.
    let data = tempfile::tempdir().unwrap();
    std::fs::write(
        data.path().join("crmproxy.toml"),
        "[tracking]\nload_demo_on_first_run = false\n",
    )
    .unwrap();
    crm(
        data.path(),
        &[
            "user", "add", "Bench", "--login", &user, "--grant", "use_app",
        ],
    );
    let t0 = Instant::now();
    {
        let store = Arc::new(SledStore::open(data.path().join("store")).unwrap());
        let engine = Engine::new(store, TrackingConfig::default()).unwrap();
        let actor = engine.actor(&user, &user).unwrap();
        for (n, raw) in messages.iter().enumerate() {
            let mid = format!("<msg-{}@example.com>", n + 1);
            let location = MessageLocation {
                folder: "INBOX".into(),
                uid_validity: validity,
                uid: uids[&mid],
            };
            engine
                .track(
                    &actor,
                    raw,
                    TrackRequest::new(TrackSource::Keyword).at(location),
                )
                .unwrap();
        }
    }
    let track_secs = t0.elapsed().as_secs_f64();
    eprintln!("bench: tracked {count} messages in {track_secs:.1} s");

    let proxy = Proxy::start_with(
        dv,
        ProxyOptions {
            data_dir: Some(data.path().to_path_buf()),
            ..Default::default()
        },
    );
    // Let Dovecot index both mailboxes before anything is timed.
    for who in [&user, &stranger] {
        let mut c = Client::login(dv.imap_addr(), who);
        assert!(c.cmd("EXAMINE INBOX").0.contains(" OK"));
        c.bulk_fetch();
    }
    let (mut socat, socat_addr) = start_socat(dv.imap_addr());

    let paths = [
        (
            "crmproxy, CRM user (every message tracked)",
            proxy.imap,
            &user,
        ),
        ("crmproxy, user unknown to the CRM", proxy.imap, &stranger),
        ("socat -b 262144, CRM user", socat_addr, &user),
        ("direct, CRM user", dv.imap_addr(), &user),
    ];
    let mut secs: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
    let mut bytes = vec![0usize; paths.len()];
    for round in 0..rounds {
        for k in 0..paths.len() {
            let i = (k + round) % paths.len();
            let (_, addr, who) = paths[i];
            // A new session each time.
            let mut c = Client::login(addr, who);
            assert!(c.cmd("EXAMINE INBOX").0.contains(" OK"));
            let (b, s) = c.bulk_fetch();
            bytes[i] = b;
            secs[i].push(s);
        }
        eprintln!("bench: round {} of {rounds} done", round + 1);
    }
    let _ = socat.kill();
    let _ = socat.wait();
    drop(proxy);
    let med: Vec<f64> = secs.iter_mut().map(|v| median(v)).collect();
    // Every path relayed the same bytes: nothing was added to tracked messages.
    assert!(
        bytes.iter().all(|&b| b == bytes[3]),
        "paths returned different byte counts: {bytes:?}"
    );
    eprintln!("bench: replace mode, {replace_count} messages each way");
    let appended = time_keyword_tracking(dv, replace_count, "appended");
    let replaced = time_keyword_tracking(dv, replace_count, "replace");

    println!();
    println!(
        "tracking fetch benchmark: {count} messages ({:.1} MB), UID FETCH 1:* BODY.PEEK[], {rounds} rounds, medians, a new session per fetch",
        bytes[3] as f64 / 1e6
    );
    println!();
    println!("| measure | value | target |");
    println!("|---|---|---|");
    for (i, (name, _, _)) in paths.iter().enumerate() {
        println!(
            "| {name} | {:.0} ms ({:.1} MB, {:.0} msg/s) | |",
            med[i] * 1e3,
            bytes[i] as f64 / 1e6,
            count as f64 / med[i]
        );
    }
    println!(
        "| crmproxy ÷ socat, CRM user (speed) | {:.2} × | ≥ 0.95 × |",
        med[2] / med[0]
    );
    println!(
        "| crmproxy ÷ socat, user unknown to the CRM (speed) | {:.2} × | ≥ 0.95 × |",
        med[2] / med[1]
    );
    println!(
        "| crmproxy ÷ direct, CRM user (speed) | {:.2} × | |",
        med[3] / med[0]
    );
    println!(
        "| tracking the {count} messages beforehand (Engine::track each, with location) | {:.1} s ({:.0} msg/s) | |",
        track_secs,
        count as f64 / track_secs
    );
    println!(
        "| {replace_count} keyword requests, worker done: appended / replace | {:.1} s / {:.1} s | |",
        appended, replaced
    );
    println!(
        "| replace mode's cost per tracked message | {:.1} ms | |",
        (replaced - appended) * 1e3 / replace_count as f64
    );
    println!(
        "| machine load average (1/5/15 min) before / after | {load_before} / {} | (2 cores) |",
        loadavg()
    );
}
