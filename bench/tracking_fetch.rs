//! The tracking fetch benchmark (SPEC section 11), not a test:
//! `cargo bench --bench tracking_fetch`.
//!
//! Fills a mailbox of the test harness's private Dovecot with 10,000 realistic
//! messages (straight into the Maildir), copies them into a second mailbox, tracks
//! every message of INBOX in a fresh store (one `Engine::track` each, with its
//! location, before `serve` opens the store), then starts a release
//! `crmproxy serve` on that store and measures `UID FETCH 1:* BODY.PEEK[]` through
//! the proxy for the tracked mailbox (every message gets its X-CRM-* block from the
//! store) against the untracked copy, and directly. Prints a markdown table. Each
//! fetch is a new session; the first round is cold (the proxy's block cache, shared
//! by a mailbox's sessions, is empty), later rounds find the blocks cached.
//!
//! Environment: BENCH_MESSAGES (default 10000), BENCH_ROUNDS (5).

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use common::{dovecot, Proxy, ProxyOptions};
use crmproxy::config::TrackingConfig;
use crmproxy::store::{MessageLocation, SledStore};
use crmproxy::track::{Engine, TrackRequest, TrackSource};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use support::{env_num, loadavg, median, Client};

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

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("tracking fetch benchmark: run it with `cargo bench --bench tracking_fetch`");
        return;
    }
    let count = env_num("BENCH_MESSAGES", 10_000);
    let rounds = env_num("BENCH_ROUNDS", 5);
    let load_before = loadavg();
    let dv = dovecot();
    let user = format!("bench-track-{}@crm-test.example", std::process::id());
    let messages: Vec<Vec<u8>> = (1..=count).map(message).collect();
    eprintln!("bench: filling INBOX with {count} messages");
    dv.fill_inbox(&user, messages.iter().cloned());

    // The untracked copy, and where each message landed in INBOX.
    let mut d = Client::login(dv.imap_addr(), &user);
    assert!(d.cmd("SELECT INBOX").0.contains(" OK"));
    let uids = uids_by_message_id(&mut d);
    assert_eq!(uids.len(), count, "every message has a UID");
    assert!(d.cmd("CREATE Untracked").0.contains(" OK"));
    assert!(d.cmd("UID COPY 1:* Untracked").0.contains(" OK"));
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
    for mailbox in ["INBOX", "Untracked"] {
        let mut c = Client::login(dv.imap_addr(), &user);
        assert!(c.cmd(&format!("EXAMINE {mailbox}")).0.contains(" OK"));
        c.bulk_fetch();
    }

    let paths = [
        ("crmproxy, tracked (INBOX)", proxy.imap, "INBOX"),
        ("crmproxy, untracked copy", proxy.imap, "Untracked"),
        ("direct, INBOX", dv.imap_addr(), "INBOX"),
        ("direct, untracked copy", dv.imap_addr(), "Untracked"),
    ];
    let mut secs: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
    let mut bytes = vec![0usize; paths.len()];
    for round in 0..rounds {
        for k in 0..paths.len() {
            let i = (k + round) % paths.len();
            let (_, addr, mailbox) = paths[i];
            // A new session each time: no header cache carried over.
            let mut c = Client::login(addr, &user);
            assert!(c.cmd(&format!("EXAMINE {mailbox}")).0.contains(" OK"));
            let (b, s) = c.bulk_fetch();
            bytes[i] = b;
            secs[i].push(s);
        }
        eprintln!("bench: round {} of {rounds} done", round + 1);
    }
    // Round 1 is the cold one: no session of the proxy had read the store yet.
    let first: Vec<f64> = secs.iter().map(|v| v[0]).collect();
    let med: Vec<f64> = secs.iter_mut().map(|v| median(v)).collect();
    // The tracked fetch really carried the blocks.
    assert!(
        bytes[0] > bytes[1] + count * 60,
        "tracked fetch has no blocks: {} vs {} bytes",
        bytes[0],
        bytes[1]
    );

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
        "| tracked / untracked through crmproxy (time) | {:.2} × | ≤ 1.2 × |",
        med[0] / med[1]
    );
    println!(
        "| same, first fetch (cold: blocks read from the store) | {:.2} × ({:.0} vs {:.0} ms) | |",
        first[0] / first[1],
        first[0] * 1e3,
        first[1] * 1e3
    );
    println!(
        "| crmproxy untracked / direct (time) | {:.2} × | |",
        med[1] / med[3]
    );
    println!(
        "| tracking the {count} messages (Engine::track each, with location) | {:.1} s ({:.0} msg/s) | |",
        track_secs,
        count as f64 / track_secs
    );
    println!(
        "| machine load average (1/5/15 min) before / after | {load_before} / {} | (2 cores) |",
        loadavg()
    );
}
