//! Helpers of `tests/record_replay.rs`: `crmproxy replay` as a child process,
//! recording proxies and proxies in front of a replay, stopping a private Dovecot,
//! the secret search every transcript goes through, and the committed fixtures.
#![allow(dead_code)]

pub mod fixtures;
mod flags;
mod killed;
pub mod neomutt;
pub mod thunderbird;

use crate::common::dovecot::MASTER_PASSWORD;
use crate::common::proxy::{crmproxy_bin, proc_status_kib};
use crate::common::*;
use base64::Engine;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `crmproxy replay FILE… --imap 127.0.0.1:0` as a child process.
pub struct Replay {
    child: Child,
    pub addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Replay {
    pub fn start(files: &[PathBuf]) -> Replay {
        assert!(!files.is_empty(), "nothing to replay");
        let mut cmd = Command::new(crmproxy_bin());
        cmd.arg("replay")
            .args(files)
            .args(["--imap", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        die_with_parent(&mut cmd, libc::SIGKILL);
        let mut child = cmd.spawn().expect("spawn crmproxy replay");
        let stderr = Arc::new(Mutex::new(String::new()));
        let reader = BufReader::new(child.stderr.take().unwrap());
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in reader.lines().map_while(Result::ok) {
                let mut all = sink.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
        // The first line names the listener.
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = loop {
            let said = stderr.lock().unwrap().clone();
            if let Some(rest) = said.split("listening imap ").nth(1) {
                break rest.lines().next().unwrap().trim().parse().unwrap();
            }
            assert!(Instant::now() < deadline, "replay did not start: {said}");
            std::thread::sleep(Duration::from_millis(20));
        };
        Replay {
            child,
            addr,
            stderr,
        }
    }

    pub fn wait(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                // Let the stderr reader catch up.
                std::thread::sleep(Duration::from_millis(100));
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn peak_rss_kib(&self) -> u64 {
        proc_status_kib(self.child.id()).1
    }
}

impl Drop for Replay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The transcripts in `dir`, in the order they were opened.
pub fn transcripts(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == "transcript"));
    v.sort();
    v
}

/// The transcripts of client sessions only (no sync worker connections).
pub fn sessions(dir: &Path) -> Vec<PathBuf> {
    let mut v = transcripts(dir);
    v.retain(|p| p.to_string_lossy().ends_with("-session.transcript"));
    v
}

/// A recording proxy in front of `dv`: `[record]` with `extra` settings.
pub fn recording_proxy(dv: &Dovecot, dir: &Path, extra: &str) -> Proxy {
    Proxy::start_with(
        dv,
        ProxyOptions {
            config_toml: Some(format!(
                "[tracking]\nload_demo_on_first_run = false\n[record]\ndir = \"{}\"\n{extra}",
                dir.display()
            )),
            ..Default::default()
        },
    )
}

/// A proxy whose upstream is a replay (plain IMAP, no certificate needed).
pub fn proxy_to(dv: &Dovecot, upstream: SocketAddr, toml: &str) -> Proxy {
    Proxy::start_with(
        dv,
        ProxyOptions {
            upstream: Some(upstream.to_string()),
            without_upstream_ca: true,
            config_toml: Some(format!(
                "[tracking]\nload_demo_on_first_run = false\n{toml}"
            )),
            ..Default::default()
        },
    )
}

/// Stop a private Dovecot for good (the replays after it must not need it).
pub fn stop(dv: &Dovecot) {
    // SAFETY: signalling the Dovecot this test binary started.
    unsafe {
        libc::kill(dv.pid as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{}", dv.pid)).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        std::net::TcpStream::connect(dv.imap_addr()).is_err(),
        "Dovecot still answers"
    );
}

/// No Dovecot at all: the address of a port nobody listens on, for replays of
/// the committed fixtures.
pub fn no_dovecot() -> Dovecot {
    Dovecot {
        dir: std::env::temp_dir(),
        imap_port: free_port(),
        imaps_port: free_port(),
        ca_file: PathBuf::from("/nonexistent"),
        conf: PathBuf::from("/nonexistent"),
        pid: 0,
    }
}

/// Every form a password used here could take in a transcript: as it is, and
/// base64 at each alignment (SASL PLAIN, XOAUTH2), must appear in none.
pub fn assert_no_secrets(dir: &Path) {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut needles: Vec<String> = Vec::new();
    for pw in [PASSWORD, MASTER_PASSWORD, OAUTH_TOKEN] {
        needles.push(pw.to_string());
        for k in 0..3 {
            let mut v = vec![b'\0'; k];
            v.extend_from_slice(pw.as_bytes());
            let e = b64(&v);
            let from = k.div_ceil(3) * 4;
            needles.push(e[from..e.len() - 4].to_string());
        }
    }
    let files = transcripts(dir);
    assert!(!files.is_empty(), "no transcript in {}", dir.display());
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for n in &needles {
            assert!(
                !text.contains(n.as_str()),
                "{} contains a secret ({n})",
                f.display()
            );
        }
    }
}

pub const OAUTH_TOKEN: &str = "ya29.oauth-Token-7Hq";

/// Messages of the recorded mailboxes.
pub fn messages(n: usize) -> Vec<Vec<u8>> {
    (1..=n).map(|i| sample_message(i, 3 + i)).collect()
}

pub fn fill(dv: &Dovecot, user: &str, msgs: &[Vec<u8>]) {
    let mut d = RawImap::login(dv.imap_addr(), user, PASSWORD);
    for m in msgs {
        assert!(d.append("INBOX", m).ok());
    }
}

pub fn tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(prefix).tempdir().unwrap()
}

/// Files of an imaplib sync (folder/uid.eml → bytes).
pub fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for e in walk(dir) {
        out.push((
            e.strip_prefix(dir).unwrap().display().to_string(),
            std::fs::read(&e).unwrap(),
        ));
    }
    out.sort();
    out
}

pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            v.extend(walk(&p));
        } else {
            v.push(p);
        }
    }
    v
}

pub fn replay_finishes(r: &mut Replay) {
    let status = r.wait(Duration::from_secs(30)).unwrap_or_else(|| {
        panic!("replay did not finish: {}", r.stderr());
    });
    assert!(status.success(), "replay failed: {}", r.stderr());
}

/// A multipart message: text, and an attachment whose content must not be recorded.
pub fn multipart(n: usize) -> Vec<u8> {
    format!(
        "From: Alice Example <alice@example.com>\r\nTo: bob@example.org\r\n\
Subject: Contract draft {n}\r\nMessage-ID: <mp-{n}@example.com>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b-{n}-xyz\"\r\n\r\nThis is a MIME message.\r\n\
--b-{n}-xyz\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nConfidential terms number {n}: \
the price is 4711 euros.\r\n--b-{n}-xyz\r\nContent-Type: application/pdf; name=\"terms.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\nU2VjcmV0UGRmQ29udGVudHM=\r\n--b-{n}-xyz--\r\n"
    )
    .into_bytes()
}

/// The untagged part of each response to `commands`, per command.
pub fn session(addr: SocketAddr, user: &str, commands: &[&str]) -> Vec<Vec<u8>> {
    let mut c = RawImap::login(addr, user, PASSWORD);
    let out = commands
        .iter()
        .map(|cmd| {
            let r = c.cmd(cmd);
            assert!(r.ok(), "{cmd}: {}", r.tagged);
            r.bytes
        })
        .collect();
    c.cmd("LOGOUT");
    out
}
