//! The gateway benchmark (issue 13), not a test: `cargo bench --bench gateway`.
//!
//! The private Dovecot of the test harness with BENCH_MAILBOXES (200) mailboxes,
//! a sled CRM with a user per mailbox and one contact, and a release
//! `crmproxy gateway` watching INBOX and Sent of each under the rule
//! `from_any_record` (so every message is judged: parsed, its sender resolved,
//! bulk and ignore lists checked). Measures:
//! - throughput: BENCH_PER_MAILBOX (50) messages dropped into every INBOX while
//!   the gateway was stopped (two in three from the contact, the rest from a
//!   stranger or bulk), then the time from its restart until every one was
//!   judged, and the gateway's CPU time per 1,000 messages;
//! - latency: BENCH_LATENCY (100) messages APPENDed one at a time, round robin
//!   over the mailboxes, each timed until `$CRM_Tracked` shows on it (IDLE;
//!   Dovecot falls back to polling every second past the machine's inotify limit);
//! - RSS per watched mailbox: the 200-mailbox gateway's RSS once every folder is
//!   watched (idle, before any mail) minus a 1-mailbox gateway's on the same
//!   store, per mailbox; the RSS after the backlog too (the store's cache and
//!   search index grow with what was tracked, which is the CRM's, not a
//!   mailbox's); connections per mailbox from `doveadm who`.
//!
//! Prints a markdown table.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::dovecot::dovecot_with;
use common::proxy::proc_status_kib;
use common::{Dovecot, RawImap, PASSWORD};
use crmproxy::store::*;
use support::{env_num, loadavg};

const CONTACT: &str = "dana@customer.example";

fn message(id: &str, kind: usize) -> Vec<u8> {
    let (from, extra) = match kind % 3 {
        0 | 1 => (CONTACT, ""),
        _ if kind.is_multiple_of(2) => ("stranger@else.example", ""),
        _ => (CONTACT, "List-Id: <news.customer.example>\r\n"),
    };
    format!(
        "From: Dana <{from}>\r\nTo: owner@gw.example\r\nSubject: Order {id}\r\n\
         Date: Tue, 24 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{id}>\r\n{extra}\
         MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nHello,\r\n{}\r\n",
        "please confirm the order. ".repeat(20)
    )
    .into_bytes()
}

fn fill_store(dir: &Path, owners: &[String]) {
    let store = SledStore::open(dir.join("store")).unwrap();
    for o in owners {
        store
            .put_record(Record::User(SystemUser {
                id: UserId::new(),
                stamps: Stamps::default(),
                full_name: o.clone(),
                logins: vec![EmailAddress::parse(o).unwrap()],
                imap_logins: Vec::new(),
                privileges: [Privilege::UseApp].into_iter().collect(),
                delegates: Default::default(),
                options: Default::default(),
            }))
            .unwrap();
    }
    let c = Contact {
        id: ContactId::new(),
        stamps: Stamps::default(),
        first_name: "Dana".into(),
        last_name: "Sender".into(),
        full_name: String::new(),
        job_title: String::new(),
        department: String::new(),
        company: String::new(),
        account: None,
        emails: vec![EmailAddress::parse(CONTACT).unwrap()],
        business_phone: String::new(),
        mobile_phone: String::new(),
        address: PostalAddress::default(),
        categories: Vec::new(),
    };
    store.put_record(Record::Contact(c)).unwrap();
    store.close().unwrap();
}

fn write_config(dir: &Path, dv: &Dovecot, admin: SocketAddr, owners: &[String]) -> PathBuf {
    let mut text = format!(
        "data_dir = \"{d}\"\n[store]\ndir = \"{d}/store\"\n[gateway]\nadmin = \"{admin}\"\n\
         auto_track = \"from_any_record\"\nignore = [\"spam.example\"]\n\
         [gateway.servers.dv]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"plain\"\n\n",
        dv.imap_port,
        d = dir.display()
    );
    for o in owners {
        text.push_str(&format!(
            "[[gateway.mailbox]]\nowner = \"{o}\"\nserver = \"dv\"\nlogin = \"{o}\"\npassword_env = \"BENCH_PW\"\n"
        ));
    }
    let p = dir.join(format!("gateway-{}.toml", owners.len()));
    std::fs::write(&p, text).unwrap();
    p
}

fn start(config: &Path) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_crmproxy"));
    cmd.arg("--config")
        .arg(config)
        .arg("gateway")
        .env("BENCH_PW", PASSWORD)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    common::die_with_parent(&mut cmd, libc::SIGKILL);
    cmd.spawn().unwrap()
}

fn stop(mut child: Child) {
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    child.wait().unwrap();
}

fn metric(admin: SocketAddr, name: &str) -> u64 {
    let Ok(mut s) = std::net::TcpStream::connect(admin) else {
        return 0;
    };
    let _ = write!(s, "GET /metrics HTTP/1.0\r\n\r\n");
    let mut t = String::new();
    let _ = s.read_to_string(&mut t);
    t.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn wait_metric(admin: SocketAddr, name: &str, at_least: u64) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while metric(admin, name) < at_least {
        assert!(Instant::now() < deadline, "{name} < {at_least}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// User and system CPU time of a process so far.
fn cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

fn main() {
    let n = env_num("BENCH_MAILBOXES", 200);
    let per = env_num("BENCH_PER_MAILBOX", 50);
    let samples = env_num("BENCH_LATENCY", 100);
    // Seconds to wait before an idle RSS is read: the allocator gives pages freed
    // by the start (400 logins, SELECTs, checkpoints) back after its decay time.
    let settle = env_num("BENCH_SETTLE", 12) as u64;
    // Dovecot tells an IDLE session of new mail through inotify; past
    // fs.inotify.max_user_instances (128 here, fewer than 400 IDLE sessions) it
    // falls back to looking every mailbox_idle_check_interval (30 s by default).
    let dv = dovecot_with("mailbox_idle_check_interval = 1 secs\n");
    let dir = tempfile::tempdir().unwrap();
    let owners: Vec<String> = (0..n)
        .map(|i| format!("{}@gw.example", common::unique_user(&format!("b{i}"))))
        .collect();
    fill_store(dir.path(), &owners);
    let admin = SocketAddr::from(([127, 0, 0, 1], common::free_port()));

    // RSS of a gateway watching one mailbox, the base of the per-mailbox figure.
    let one = write_config(dir.path(), dv, admin, &owners[..1]);
    let g = start(&one);
    wait_metric(admin, "crmproxy_gateway_folders_watched", 2);
    std::thread::sleep(Duration::from_secs(2 + settle));
    let (rss_one, _) = proc_status_kib(g.id());
    stop(g);

    // Every mailbox's starting point, then a backlog dropped in while stopped.
    let all = write_config(dir.path(), dv, admin, &owners);
    let g = start(&all);
    wait_metric(admin, "crmproxy_gateway_folders_watched", 2 * n as u64);
    std::thread::sleep(Duration::from_secs(2));
    let (rss_watching_2s, _) = proc_status_kib(g.id());
    std::thread::sleep(Duration::from_secs(settle));
    let (rss_watching, _) = proc_status_kib(g.id());
    eprintln!(
        "RSS watching: {rss_watching_2s} kB after 2 s, {rss_watching} kB after {settle} s more"
    );
    stop(g);
    for (i, o) in owners.iter().enumerate() {
        dv.fill_inbox(
            o,
            (0..per).map(|k| message(&format!("bl-{i}-{k}@gw.example"), k)),
        );
    }
    let total = (n * per) as u64;
    let t0 = Instant::now();
    let g = start(&all);
    let pid = g.id();
    let cpu0 = cpu(pid);
    let deadline = Instant::now() + Duration::from_secs(1800);
    while metric(admin, "crmproxy_gateway_tracked_total")
        + metric(admin, "crmproxy_gateway_skipped_total")
        < total
    {
        assert!(Instant::now() < deadline, "backlog not judged");
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = t0.elapsed();
    let cpu_used = cpu(pid) - cpu0;
    let tracked = metric(admin, "crmproxy_gateway_tracked_total");

    // Latency: one message at a time, round robin, until its keyword shows.
    let mut clients: Vec<RawImap> = owners
        .iter()
        .take(samples.min(n))
        .map(|o| {
            let mut c = RawImap::login(dv.imap_addr(), o, PASSWORD);
            assert!(c.cmd("SELECT INBOX").ok());
            c
        })
        .collect();
    let mut lat = Vec::with_capacity(samples);
    for s in 0..samples {
        let k = s % clients.len();
        let c = &mut clients[k];
        let m = message(&format!("lat-{s}@gw.example"), 0);
        let t = Instant::now();
        let r = c.append("INBOX", &m);
        assert!(r.ok(), "{}", r.tagged);
        let uid: u32 = r
            .tagged
            .split("APPENDUID ")
            .nth(1)
            .and_then(|r| r.split_whitespace().nth(1))
            .and_then(|u| u.trim_end_matches(']').parse().ok())
            .expect("APPENDUID");
        loop {
            if c.cmd(&format!("UID FETCH {uid} FLAGS"))
                .text()
                .contains("$CRM_Tracked")
            {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "message {s} not tracked"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        lat.push(t.elapsed());
    }
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    std::thread::sleep(Duration::from_secs(2));
    let (rss_all, rss_peak) = proc_status_kib(pid);
    let threads = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:").map(|n| n.trim().to_string()))
        .unwrap_or_default();
    // The benchmark's own latency clients are one session each of the first mailboxes.
    let sampled = 20.min(n);
    let conns: usize = owners
        .iter()
        .take(sampled)
        .map(|o| dv.sessions(o))
        .sum::<usize>()
        - sampled.min(clients.len());
    let per_mailbox_conn = conns as f64 / sampled as f64;
    stop(g);

    let rate = total as f64 / took.as_secs_f64();
    println!(
        "| gateway ({n} mailboxes, {} messages, load {}) | result | target |",
        total,
        loadavg()
    );
    println!("|---|---|---|");
    println!("| messages judged per second (backlog, rules) | {rate:.0}/s ({tracked} tracked) | ≥ 2,000/s |");
    println!(
        "| delivery → tracked, p50 / p99 (IDLE, {} samples) | {:.0} ms / {:.0} ms | p99 < 2 s |",
        lat.len(),
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3
    );
    println!(
        "| RSS per watched mailbox (all watched, idle, same store) | {:.0} KB ({} MB for {n}, {} MB for 1) | < 200 KB |",
        rss_watching.saturating_sub(rss_one) as f64 / (n - 1).max(1) as f64,
        rss_watching / 1024,
        rss_one / 1024
    );
    println!(
        "| RSS after the backlog and the latency run | {} MB (peak {} MB; {threads} threads) | — |",
        rss_all / 1024,
        rss_peak / 1024
    );
    println!("| connections per mailbox | {per_mailbox_conn:.1} | ≤ 2 |");
    println!(
        "| CPU per 1,000 messages | {:.0} ms | — |",
        cpu_used.as_secs_f64() * 1e3 * 1000.0 / total as f64
    );
}
