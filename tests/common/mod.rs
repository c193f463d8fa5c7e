//! Test harness shared by the real-server integration tests: a private Dovecot per
//! test binary, a `crmproxy serve` child per test, a raw IMAP client that reads exact
//! bytes, an LMTP client for delivery, and runners for the Python, curl and mbsync
//! clients.
//!
//! Every program listens on loopback only; every child process dies with the test
//! process (PR_SET_PDEATHSIG), so `cargo test` leaves nothing running.

#![allow(dead_code, unused_imports)]

pub mod clients;
pub mod dovecot;
pub mod imap;
pub mod lmtp;
pub mod proxy;

pub use dovecot::{dovecot, Dovecot, PASSWORD};
pub use imap::RawImap;
pub use proxy::{Proxy, ProxyOptions};

use std::sync::atomic::{AtomicU32, Ordering};

/// A user name nobody else in this test process uses, so each test has its own mailbox.
pub fn unique_user(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// A free loopback TCP port (bound, then released: good enough for a child to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot find a free loopback port")
}

/// Make `cmd` receive `signal` when the thread that spawns it exits.
pub fn die_with_parent(cmd: &mut std::process::Command, signal: libc::c_int) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A realistic small message with CRLF line ends; `n` makes it unique.
pub fn sample_message(n: usize, body_lines: usize) -> Vec<u8> {
    let mut m = format!(
        "From: Alice Example <alice@example.com>\r\n\
         To: Bob Example <bob@example.org>\r\n\
         Cc: carol@example.net\r\n\
         Subject: Quarterly numbers {n}\r\n\
         Date: Mon, 23 Nov 2026 10:{:02}:00 +0000\r\n\
         Message-ID: <msg-{n}@example.com>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n",
        n % 60
    )
    .into_bytes();
    for i in 0..body_lines {
        m.extend_from_slice(
            format!("Line {i} of message {n}: the figures for the quarter look fine.\r\n")
                .as_bytes(),
        );
    }
    m
}

/// A large message of about `size` bytes: headers, then base64-looking lines made
/// quickly from a counter (not compressible to nothing, not random either).
pub fn big_message(size: usize) -> Vec<u8> {
    let mut m = b"From: big@example.com\r\nTo: bob@example.org\r\nSubject: big attachment\r\n\
Message-ID: <big@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n\
Content-Transfer-Encoding: base64\r\n\r\n"
        .to_vec();
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut x: u32 = 0x1234_5678;
    while m.len() + 78 <= size {
        for _ in 0..76 {
            // xorshift: cheap, deterministic.
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            m.push(ALPHABET[(x & 63) as usize]);
        }
        m.extend_from_slice(b"\r\n");
    }
    m
}
