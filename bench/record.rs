//! The record/replay benchmark (SPEC section 9), not a test: `cargo bench --bench record`.
//!
//! The proxy benchmark's bulk fetch (`UID FETCH 1:* BODY.PEEK[]` of a whole mailbox,
//! raw-socket client) through a release `crmproxy serve` without and with `[record]`,
//! rounds in rotated order, medians: the recording overhead (target ≤ 1.15 × the
//! unrecorded time) and the recording proxy's CPU time. Then the transcript's size
//! relative to the bytes relayed, and the same fetch served by `crmproxy replay`
//! from its transcript against direct Dovecot (messages/s). Prints a markdown table.
//!
//! Environment: BENCH_ROUNDS (default 5), BENCH_MAILBOX_MB (50).

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use common::proxy::crmproxy_bin;
use common::{dovecot, Proxy, ProxyOptions};
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::{env_num, loadavg, median, Client};

/// User and system CPU seconds of a process (/proc/PID/stat).
fn cpu_secs(pid: u32) -> [f64; 2] {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    // SAFETY: sysconf has no preconditions.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let ticks = |k: usize| f.get(k).and_then(|t| t.parse::<f64>().ok()).unwrap_or(0.0);
    [ticks(11) / tck, ticks(12) / tck]
}

/// Text mails of 2–40 KB and, one in eight, a ~250 KB attachment: about `total` bytes.
fn messages(total: usize) -> (Vec<Vec<u8>>, usize) {
    let mut out = Vec::new();
    let mut size = 0;
    while size < total {
        let n = out.len() + 1;
        let m = if n % 8 == 0 {
            let mut m = common::big_message(250_000);
            m.splice(0..0, format!("X-Bench: {n}\r\n").into_bytes());
            m
        } else {
            common::sample_message(n, 30 + (n * 37) % 500)
        };
        size += m.len();
        out.push(m);
    }
    let n = out.len();
    (out, n)
}

/// `crmproxy replay FILE --imap 127.0.0.1:0`: its address.
fn start_replay(file: &Path) -> (std::process::Child, SocketAddr) {
    let mut child = Command::new(crmproxy_bin())
        .arg("replay")
        .arg(file)
        .args(["--imap", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn crmproxy replay");
    let mut r = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while r.read_line(&mut line).is_ok_and(|n| n > 0) {
        if let Some(a) = line.strip_prefix("listening imap ") {
            let addr = a.trim().parse().unwrap();
            // Keep draining stderr so the child never blocks on it.
            std::thread::spawn(move || std::io::copy(&mut r, &mut std::io::sink()));
            return (child, addr);
        }
        line.clear();
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("replay did not start");
}

fn transcripts(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("record benchmark: run it with `cargo bench --bench record`");
        return;
    }
    let rounds = env_num("BENCH_ROUNDS", 5);
    let mailbox_mb = env_num("BENCH_MAILBOX_MB", 50);
    let load_before = loadavg();
    let dv = dovecot();
    let user = format!("bench-rec-{}", std::process::id());
    let (msgs, count) = messages(mailbox_mb * 1024 * 1024);
    eprintln!("bench: filling a {mailbox_mb} MB mailbox ({count} messages)");
    dv.fill_inbox(&user, msgs.into_iter());
    {
        let mut c = Client::login(dv.imap_addr(), &user);
        assert!(c.cmd("SELECT INBOX").0.contains(" OK"));
        c.bulk_fetch();
    }
    let rec_dir = tempfile::tempdir().unwrap();
    let plain = Proxy::start(dv);
    let recording = Proxy::start_with(
        dv,
        ProxyOptions {
            config_toml: Some(format!(
                "[record]\ndir = \"{}\"\n",
                rec_dir.path().display()
            )),
            ..Default::default()
        },
    );
    let paths = [
        ("direct", dv.imap_addr(), None),
        ("crmproxy", plain.imap, Some(plain.pid())),
        ("crmproxy --record", recording.imap, Some(recording.pid())),
    ];
    let mut secs: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
    let mut cpu = vec![[0f64; 2]; paths.len()];
    let mut bytes = 0usize;
    for round in 0..rounds {
        for k in 0..paths.len() {
            let i = (k + round) % paths.len();
            let before = paths[i].2.map(cpu_secs);
            let mut c = Client::login(paths[i].1, &user);
            assert!(c.cmd("EXAMINE INBOX").0.contains(" OK"));
            let (b, s) = c.bulk_fetch();
            c.cmd("LOGOUT");
            drop(c);
            std::thread::sleep(Duration::from_millis(50));
            if let (Some(pid), Some(b0)) = (paths[i].2, before) {
                let now = cpu_secs(pid);
                cpu[i][0] += now[0] - b0[0];
                cpu[i][1] += now[1] - b0[1];
            }
            bytes = b;
            secs[i].push(s);
        }
        eprintln!("bench: round {} of {rounds} done", round + 1);
    }
    let med: Vec<f64> = secs.iter_mut().map(|v| median(v)).collect();
    let files = transcripts(rec_dir.path());
    let transcript_bytes: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    let relayed = (bytes * rounds) as f64;

    // Replay: one recorded bulk fetch served again, a fresh replay per round.
    let one = files.last().expect("a transcript").clone();
    let mut replay_secs = Vec::new();
    for _ in 0..rounds {
        let (mut child, addr) = start_replay(&one);
        let mut c = Client::login(addr, &user);
        assert!(c.cmd("EXAMINE INBOX").0.contains(" OK"));
        let (b, s) = c.bulk_fetch();
        // The same bytes but for the tagged line's timing text (Dovecot's "(0.035 secs)").
        assert!(
            b.abs_diff(bytes) < 64,
            "the replay sends what was recorded: {b} vs {bytes}"
        );
        c.cmd("LOGOUT");
        drop(c);
        let _ = child.wait();
        replay_secs.push(s);
    }
    let replay_med = median(&mut replay_secs);

    let mb = bytes as f64 / 1e6;
    println!();
    println!("record/replay benchmark: bulk fetch of {mb:.0} MB ({count} messages, UID FETCH 1:* BODY.PEEK[]), {rounds} rounds, medians");
    println!("load average before: {load_before}; after: {}", loadavg());
    println!();
    println!("| measure | value | target |");
    println!("|---|---|---|");
    for (i, (name, _, _)) in paths.iter().enumerate() {
        println!(
            "| bulk fetch {name} | {:.2} s ({:.0} MB/s) | |",
            med[i],
            mb / med[i]
        );
    }
    println!(
        "| recording overhead (time, recorded / unrecorded) | {:.2} × | ≤ 1.15 × |",
        med[2] / med[1]
    );
    let per_gb = |c: [f64; 2]| {
        let gb = relayed / 1e9;
        format!(
            "{:.2} s (user {:.2} + system {:.2})",
            (c[0] + c[1]) / gb,
            c[0] / gb,
            c[1] / gb
        )
    };
    println!(
        "| relay CPU per GB, unrecorded / recorded | {} / {} | |",
        per_gb(cpu[1]),
        per_gb(cpu[2])
    );
    println!(
        "| transcript size / bytes relayed | {:.3} | |",
        transcript_bytes as f64 / relayed
    );
    println!(
        "| replay of the recorded fetch | {:.2} s ({:.0} messages/s) | |",
        replay_med,
        count as f64 / replay_med
    );
    println!(
        "| direct Dovecot, same fetch | {:.2} s ({:.0} messages/s) | |",
        med[0],
        count as f64 / med[0]
    );
}
