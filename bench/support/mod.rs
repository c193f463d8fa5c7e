//! What the benchmarks share: a minimal IMAP client on a raw socket (no IMAP
//! library in the way), medians, the machine's load average.
#![allow(dead_code)]

use super::common::{self, PASSWORD};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn env_num(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A minimal IMAP client on a raw socket with a large read buffer.
pub struct Client {
    pub s: TcpStream,
    pub r: BufReader<TcpStream>,
    n: u32,
}

impl Client {
    pub fn login(addr: SocketAddr, user: &str) -> Client {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_nodelay(true).unwrap();
        let mut c = Client {
            r: BufReader::with_capacity(1 << 20, s.try_clone().unwrap()),
            s,
            n: 0,
        };
        let mut g = String::new();
        c.r.read_line(&mut g).unwrap();
        assert!(g.starts_with("* OK"), "greeting from {addr}: {g}");
        let (t, _) = c.cmd(&format!("LOGIN {user} {PASSWORD}"));
        assert!(t.contains(" OK"), "login via {addr}: {t}");
        c
    }

    /// Send a command; read to its tag. Returns the tagged line and, per
    /// untagged line that announced a literal, (line, literal).
    pub fn cmd(&mut self, command: &str) -> (String, Vec<(String, Vec<u8>)>) {
        self.n += 1;
        let tag = format!("b{}", self.n);
        self.s
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .unwrap();
        let mut literals = Vec::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            self.r.read_until(b'\n', &mut line).unwrap();
            assert!(!line.is_empty(), "connection closed");
            if let Some(n) = common::imap::literal_len(&line) {
                let mut lit = vec![0u8; n];
                self.r.read_exact(&mut lit).unwrap();
                literals.push((String::from_utf8_lossy(&line).into_owned(), lit));
                continue;
            }
            if line.starts_with(tag.as_bytes()) {
                return (String::from_utf8_lossy(&line).into_owned(), literals);
            }
        }
    }

    /// How many UIDs a `UID SEARCH criteria` finds.
    pub fn search_count(&mut self, criteria: &str) -> usize {
        self.n += 1;
        let tag = format!("b{}", self.n);
        self.s
            .write_all(format!("{tag} UID SEARCH {criteria}\r\n").as_bytes())
            .unwrap();
        let mut found = 0;
        let mut line = String::new();
        loop {
            line.clear();
            self.r.read_line(&mut line).unwrap();
            assert!(!line.is_empty(), "connection closed");
            if let Some(rest) = line.strip_prefix("* SEARCH") {
                found += rest.split_whitespace().count();
            }
            if line.starts_with(&tag) {
                assert!(line.contains(" OK"), "{line}");
                return found;
            }
        }
    }

    /// `UID FETCH 1:* BODY.PEEK[]`, reading raw bytes until the tagged OK.
    /// Returns (bytes received, seconds).
    pub fn bulk_fetch(&mut self) -> (usize, f64) {
        self.n += 1;
        let tag = format!("b{}", self.n);
        let end = format!("\r\n{tag} OK");
        let start = Instant::now();
        self.s
            .write_all(format!("{tag} UID FETCH 1:* BODY.PEEK[]\r\n").as_bytes())
            .unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0usize;
        let mut tail: Vec<u8> = Vec::new();
        loop {
            let n = self.r.read(&mut buf).unwrap();
            assert!(n > 0, "closed during bulk fetch");
            total += n;
            tail.extend_from_slice(&buf[n.saturating_sub(4096)..n]);
            if tail.len() > 8192 {
                tail.drain(..tail.len() - 4096);
            }
            if tail.ends_with(b"\r\n") && tail.windows(end.len()).any(|w| w == end.as_bytes()) {
                return (total, start.elapsed().as_secs_f64());
            }
        }
    }
    /// Round-trip time of one NOOP.
    pub fn noop_rtt(&mut self) -> Duration {
        let t = Instant::now();
        let (r, _) = self.cmd("NOOP");
        let d = t.elapsed();
        assert!(r.contains(" OK"));
        d
    }
}

pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// `socat -b 262144` relaying a free loopback port to `to`.
pub fn start_socat(to: SocketAddr) -> (Child, SocketAddr) {
    let port = common::free_port();
    let mut cmd = Command::new("socat");
    cmd.arg("-b")
        .arg("262144")
        .arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"))
        .arg(format!("TCP:{to}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    common::die_with_parent(&mut cmd, libc::SIGTERM);
    let mut child = cmd.spawn().expect("run socat (apt-get install socat)");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut up = false;
    for _ in 0..100 {
        up = TcpStream::connect(addr).is_ok();
        if up {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if !up {
        let _ = child.kill();
        let _ = child.wait();
        panic!("socat did not start");
    }
    (child, addr)
}
