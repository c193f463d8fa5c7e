//! The proxy benchmark (SPEC section 11), not a test: `cargo bench --bench proxy`.
//!
//! Starts the private Dovecot of the test harness, a release `crmproxy serve` and a
//! tuned byte relay (`socat -b 262144`), fills a ~100 MB mailbox straight into the
//! Maildir, then measures with a raw-socket client (no IMAP library in the way):
//! bulk-fetch throughput direct / socat / crmproxy, NOOP round-trip latency, the
//! proxy's peak RSS while a 50 MB message passes, and its RSS with 1,000 idle
//! logged-in connections. Prints a markdown table.
//!
//! Environment: BENCH_ROUNDS (default 5), BENCH_MAILBOX_MB (100), BENCH_IDLE (1000),
//! BENCH_NOOPS (3000).

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use common::proxy::proc_status_kib;
use common::{dovecot, Proxy};
use std::io::{BufRead, Write};

use std::time::Duration;
use support::{env_num, loadavg, median, start_socat, Client};

fn median_d(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The 10th percentile of sorted durations: less touched by other load on the machine.
fn p10(sorted: &[Duration]) -> Duration {
    sorted[sorted.len() / 10]
}

/// User + system CPU seconds of a process and its reaped children (/proc/PID/stat).
fn process_cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime is the 14th field overall.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = (11..15)
        .filter_map(|k| fields.get(k)?.parse::<f64>().ok())
        .sum();
    // SAFETY: sysconf has no preconditions.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / per_sec
}

/// Messages of realistic, varied sizes adding up to about `total` bytes.
fn mailbox(total: usize) -> impl Iterator<Item = Vec<u8>> {
    let mut made = 0usize;
    let mut n = 0usize;
    std::iter::from_fn(move || {
        if made >= total {
            return None;
        }
        n += 1;
        // Mostly small text mails, some with attachments: 1 in 10 is ~300 KB.
        let m = if n.is_multiple_of(10) {
            let mut m = common::big_message(200_000 + (n * 7919) % 200_000);
            m.splice(0..0, format!("X-Seq: {n}\r\n").into_bytes());
            m
        } else {
            common::sample_message(n, 20 + (n * 31) % 300)
        };
        made += m.len();
        Some(m)
    })
}

fn raise_fd_limit() {
    // SAFETY: plain getrlimit/setrlimit on this process.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        // Run by `cargo test --all-targets`: a benchmark is not a test.
        eprintln!("proxy benchmark: run it with `cargo bench --bench proxy`");
        return;
    }
    raise_fd_limit();
    let rounds = env_num("BENCH_ROUNDS", 5);
    let mailbox_mb = env_num("BENCH_MAILBOX_MB", 100);
    let idle_n = env_num("BENCH_IDLE", 1000);
    let noops = env_num("BENCH_NOOPS", 3000);

    let load_before = loadavg();
    let dv = dovecot();
    let user = format!("bench-{}", std::process::id());
    eprintln!("bench: filling a {mailbox_mb} MB mailbox");
    dv.fill_inbox(&user, mailbox(mailbox_mb * 1024 * 1024));
    {
        // Let Dovecot index the new messages before anything is timed.
        let mut c = Client::login(dv.imap_addr(), &user);
        let (r, _) = c.cmd("SELECT INBOX");
        assert!(r.contains(" OK"), "{r}");
        c.bulk_fetch();
    }
    let proxy = Proxy::start(dv);
    let (mut socat, socat_addr) = start_socat(dv.imap_addr());
    let paths = [
        ("direct", dv.imap_addr()),
        ("socat -b 262144", socat_addr),
        ("crmproxy", proxy.imap),
    ];

    // Throughput: each round fetches the whole mailbox on every path, order rotated.
    // The relays' CPU time is measured too: unlike wall-clock speed it hardly
    // depends on what else the machine is doing.
    let relay_pids = [None, Some(socat.id()), Some(proxy.pid())];
    let mut cpu_secs = vec![0f64; paths.len()];
    let mut speeds: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
    let mut bytes = 0;
    for round in 0..rounds {
        for k in 0..paths.len() {
            let i = (k + round) % paths.len();
            let cpu_before = relay_pids[i].map(process_cpu_secs);
            let mut c = Client::login(paths[i].1, &user);
            assert!(c.cmd("EXAMINE INBOX").0.contains(" OK"));
            let (b, secs) = c.bulk_fetch();
            drop(c);
            // socat forks a child per connection; its time counts once reaped.
            std::thread::sleep(Duration::from_millis(50));
            if let (Some(pid), Some(before)) = (relay_pids[i], cpu_before) {
                cpu_secs[i] += process_cpu_secs(pid) - before;
            }
            bytes = b;
            speeds[i].push(b as f64 / secs / 1e6);
        }
        eprintln!("bench: throughput round {} of {rounds} done", round + 1);
    }
    let med: Vec<f64> = speeds.iter_mut().map(|v| median(v)).collect();

    // Latency: NOOP round trips, interleaved so that machine noise hits both alike.
    let mut d = Client::login(dv.imap_addr(), &user);
    let mut s = Client::login(socat_addr, &user);
    let mut p = Client::login(proxy.imap, &user);
    let (mut ld, mut ls, mut lp) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..200 {
        d.noop_rtt();
        s.noop_rtt();
        p.noop_rtt();
    }
    for _ in 0..noops {
        ld.push(d.noop_rtt());
        ls.push(s.noop_rtt());
        lp.push(p.noop_rtt());
    }
    let (md, ms, mp) = (median_d(&mut ld), median_d(&mut ls), median_d(&mut lp));
    drop((d, s, p));

    // Memory while a 50 MB message passes, on a fresh proxy: append it, fetch it back.
    let big_user = format!("bench-big-{}", std::process::id());
    let fresh = Proxy::start(dv);
    let mut c = Client::login(fresh.imap, &big_user);
    assert!(c.cmd("SELECT INBOX").0.contains(" OK"));
    let (rss0, _) = proc_status_kib(fresh.pid());
    let big = common::big_message(50 * 1024 * 1024);
    c.s.write_all(format!("a1 APPEND INBOX {{{}+}}\r\n", big.len()).as_bytes())
        .unwrap();
    c.s.write_all(&big).unwrap();
    c.s.write_all(b"\r\n").unwrap();
    let mut line = String::new();
    while !line.starts_with("a1 ") {
        line.clear();
        c.r.read_line(&mut line).unwrap();
    }
    assert!(line.starts_with("a1 OK"), "{line}");
    let (b, _) = c.bulk_fetch();
    assert!(b > big.len());
    let (rss1, hwm1) = proc_status_kib(fresh.pid());
    drop(c);

    // RSS with many idle, logged-in connections (on the same fresh proxy).
    let (rss_idle0, _) = proc_status_kib(fresh.pid());
    let mut idle = Vec::with_capacity(idle_n);
    for i in 0..idle_n {
        let _ = i;
        idle.push(Client::login(fresh.imap, "bench-idle"));
    }
    std::thread::sleep(Duration::from_millis(500));
    let (rss_idle, _) = proc_status_kib(fresh.pid());
    drop(idle);

    let _ = socat.kill();
    let _ = socat.wait();

    let mb = bytes as f64 / 1e6;
    println!();
    println!(
        "crmproxy benchmark: bulk fetch of {mb:.0} MB (UID FETCH 1:* BODY.PEEK[]), {rounds} rounds, medians; {noops} NOOPs per path"
    );
    println!();
    println!("| measure | value | target |");
    println!("|---|---|---|");
    for (i, (name, _)) in paths.iter().enumerate() {
        println!("| bulk fetch {name} | {:.0} MB/s | |", med[i]);
    }
    println!("| crmproxy / socat | {:.2} × | ≥ 0.95 × |", med[2] / med[1]);
    let per_gb = |i: usize| cpu_secs[i] / (bytes as f64 * rounds as f64 / 1e9);
    println!(
        "| relay CPU time per GB relayed: socat / crmproxy | {:.2} / {:.2} s | |",
        per_gb(1),
        per_gb(2)
    );
    println!("| crmproxy / direct | {:.2} × | |", med[2] / med[0]);
    println!("| socat / direct | {:.2} × | (≈ 0.8 ×) |", med[1] / med[0]);
    println!(
        "| NOOP round trip direct / socat / crmproxy (median) | {} / {} / {} µs | |",
        md.as_micros(),
        ms.as_micros(),
        mp.as_micros()
    );
    println!(
        "| added latency crmproxy − direct (median) | {} µs | ≤ 50 µs |",
        mp.as_micros() as i128 - md.as_micros() as i128
    );
    println!(
        "| added latency crmproxy − socat (median) | {} µs | |",
        mp.as_micros() as i128 - ms.as_micros() as i128
    );
    println!(
        "| NOOP round trip p10 direct / socat / crmproxy | {} / {} / {} µs | |",
        p10(&ld).as_micros(),
        p10(&ls).as_micros(),
        p10(&lp).as_micros()
    );
    println!(
        "| crmproxy RSS before / after a 50 MB APPEND + FETCH (peak) | {} / {} ({}) KiB | |",
        rss0, rss1, hwm1
    );
    println!(
        "| extra peak RSS for a 50 MB message | {:.1} MB | < 4 MB |",
        hwm1.saturating_sub(rss0) as f64 / 1024.0
    );
    println!(
        "| machine load average (1/5/15 min) before / after | {load_before} / {} | (2 cores) |",
        loadavg()
    );
    println!(
        "| RSS with {idle_n} idle logged-in connections | {:.1} MB (was {:.1} MB with none) | < 150 MB |",
        rss_idle as f64 / 1024.0,
        rss_idle0 as f64 / 1024.0
    );
}
