//! A 50 MB message through crmproxy: appended (synchronising literal and LITERAL+) and
//! fetched back byte-exact, and a slow reader of a big FETCH; the proxy's memory stays
//! bounded (checked with /proc/<pid>/status, which is memory, not time). Tracking a
//! 30 MB message gives its memory back afterwards.

mod common;
mod tracking_support;

use common::{dovecot, unique_user, Proxy, RawImap, PASSWORD};
use std::io::Read;
use std::time::Duration;

const BIG: usize = 50 * 1024 * 1024;
/// Generous bound on the memory a 50 MB message may add to the proxy: far below the
/// message size, so a proxy that holds the message whole fails.
const MAX_EXTRA_KIB: u64 = 24 * 1024;

#[test]
fn fifty_mb_message_appended_and_fetched_byte_exact() {
    let dv = dovecot();
    let proxy = Proxy::start(dv);
    let user = unique_user("big");
    let msg = common::big_message(BIG);
    let mut c = RawImap::login(proxy.imap, &user, PASSWORD);
    assert!(c.cmd("SELECT INBOX").ok());
    let (_, hwm_before) = proxy.rss_kib();

    let r = c.append("INBOX", &msg);
    assert!(r.ok(), "APPEND: {}", r.tagged);
    // LITERAL+: the whole literal follows the command line without waiting.
    c.send(format!("a2 APPEND INBOX {{{}+}}\r\n", msg.len()).as_bytes());
    c.send(&msg);
    c.send(b"\r\n");
    let r = c.read_until_tagged("a2").unwrap();
    assert!(r.ok(), "APPEND LITERAL+: {}", r.tagged);

    assert!(
        c.fetch_body(1) == msg,
        "message 1 differs after the round trip"
    );
    // And the bytes stored upstream are the same, read directly from Dovecot.
    let mut d = RawImap::login(dv.imap_addr(), &user, PASSWORD);
    assert!(d.cmd("SELECT INBOX").ok());
    assert!(
        d.fetch_body(2) == msg,
        "message 2 (LITERAL+) differs upstream"
    );

    let (_, hwm_after) = proxy.rss_kib();
    assert!(
        hwm_after.saturating_sub(hwm_before) < MAX_EXTRA_KIB,
        "proxy peak RSS grew by {} KiB while 2 x 50 MB passed",
        hwm_after - hwm_before
    );
}

#[test]
fn slow_reader_of_a_big_fetch_keeps_proxy_memory_bounded() {
    let dv = dovecot();
    let user = unique_user("slow");
    dv.fill_inbox(&user, std::iter::once(common::big_message(BIG)));
    let proxy = Proxy::start(dv);
    let mut c = RawImap::login(proxy.imap, &user, PASSWORD);
    assert!(c.cmd("SELECT INBOX").ok());
    let (rss_before, _) = proxy.rss_kib();
    c.send(b"f1 UID FETCH 1 BODY.PEEK[]\r\n");
    // Do not read for a while: Dovecot sends as fast as it can; the proxy must apply
    // back-pressure instead of buffering the message.
    let mut peak = 0;
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(100));
        peak = peak.max(proxy.rss_kib().0);
    }
    // Then read slowly in small pieces for a while, sampling memory.
    let mut stream = c.stream().try_clone().unwrap();
    let mut buf = vec![0u8; 16 * 1024];
    let mut got = 0usize;
    for i in 0..200 {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0);
        got += n;
        if i % 20 == 0 {
            std::thread::sleep(Duration::from_millis(20));
            peak = peak.max(proxy.rss_kib().0);
        }
    }
    // Read the rest quickly up to the tagged OK.
    let mut rest = Vec::new();
    loop {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed before the tagged OK");
        rest.extend_from_slice(&buf[..n]);
        if rest.ends_with(b"\r\n")
            && rest[rest.len().saturating_sub(200)..]
                .windows(5)
                .any(|w| w == b"f1 OK")
        {
            break;
        }
        if rest.len() > 4 * 1024 * 1024 {
            got += rest.len();
            rest.drain(..rest.len() - 256);
        }
    }
    assert!(
        got + rest.len() > BIG,
        "fetched only {} bytes",
        got + rest.len()
    );
    assert!(
        peak.saturating_sub(rss_before) < MAX_EXTRA_KIB,
        "proxy RSS grew by {} KiB (from {rss_before} KiB) while a client read a 50 MB FETCH slowly",
        peak - rss_before
    );
}

#[test]
fn bulk_fetch_of_a_mailbox_is_byte_identical_to_direct() {
    let dv = dovecot();
    let user = unique_user("bulk");
    dv.fill_inbox(
        &user,
        (0..400).map(|n| {
            if n % 50 == 0 {
                common::big_message(300_000 + n)
            } else {
                common::sample_message(n, 5 + n % 120)
            }
        }),
    );
    let proxy = Proxy::start(dv);
    let mut answers = Vec::new();
    for addr in [dv.imap_addr(), proxy.imap] {
        let mut c = RawImap::login(addr, &user, PASSWORD);
        assert!(c.cmd("EXAMINE INBOX").ok());
        let r = c.cmd("UID FETCH 1:* (UID RFC822.SIZE FLAGS BODY.PEEK[])");
        assert!(r.ok(), "{}", r.tagged);
        let tagged_end = r.bytes.len() - r.tagged.len() - 2;
        answers.push(r.bytes[..tagged_end].to_vec());
    }
    assert!(answers[0].len() > 3_000_000, "{}", answers[0].len());
    assert!(
        answers[0] == answers[1],
        "the proxy changed bytes of a bulk FETCH"
    );
}

#[test]
fn binary_append_with_a_literal8_holding_nul_bytes_passes_through() {
    let dv = dovecot();
    let proxy = Proxy::start(dv);
    let mut msg =
        b"From: a@example.com\r\nSubject: binary\r\nContent-Type: application/octet-stream\r\n\
Content-Transfer-Encoding: binary\r\n\r\n"
            .to_vec();
    msg.extend((0..=255u8).cycle().take(70_000));
    msg.extend_from_slice(b"\r\n");
    let mut answers = Vec::new();
    for addr in [dv.imap_addr(), proxy.imap] {
        let user = unique_user("binary");
        let mut c = RawImap::login(addr, &user, PASSWORD);
        c.send(format!("b1 APPEND INBOX ~{{{}}}\r\n", msg.len()).as_bytes());
        let cont = c.read_line().unwrap();
        assert!(cont.starts_with('+'), "{addr}: {cont}");
        c.send(&msg);
        c.send(b"\r\n");
        let r = c.read_until_tagged("b1").unwrap();
        assert!(r.ok(), "{addr}: {}", r.tagged);
        assert!(c.cmd("SELECT INBOX").ok());
        let r = c.cmd("UID FETCH 1 (BINARY.PEEK[] BINARY.SIZE[])");
        assert!(r.ok(), "{addr}: {}", r.tagged);
        answers.push(r.bytes[..r.bytes.len() - r.tagged.len() - 2].to_vec());
    }
    assert!(answers[0].windows(msg.len()).any(|w| w == msg.as_slice()));
    assert!(
        answers[0] == answers[1],
        "BINARY FETCH differs through the proxy"
    );
}

/// What tracking a 30 MB message may leave behind in the proxy once it is done.
const MAX_KEPT_AFTER_TRACKING_KIB: u64 = 16 * 1024;

#[test]
fn tracking_a_30_mb_message_gives_its_memory_back() {
    use tracking_support::{message, wait_keyword, Env};
    let env = Env::start("");
    let (user, _) = env.user("big-track", true);
    let mut m = message("big-track@customer.example", "Thirty megabytes", "");
    let line = b"A line of the body of a long message, to make it thirty megabytes.\r\n";
    while m.len() < 30 * 1024 * 1024 {
        m.extend_from_slice(line);
    }
    let mut direct = env.direct(&user);
    assert!(direct.append("INBOX", &m).ok());
    let mut c = env.through_proxy(&user);
    assert!(c.cmd("SELECT INBOX").ok());
    let (rss_before, _) = env.proxy.rss_kib();
    let r = c.cmd("UID STORE 1 +FLAGS ($CRM_Track)");
    assert!(r.ok(), "{}", r.tagged);
    wait_keyword(&mut direct, "INBOX", 1, "$CRM_Tracked", true);
    let (_, hwm) = env.proxy.rss_kib();
    // The tracking worker held the message while it worked: afterwards the memory
    // goes back (the allocator returns freed pages within moments).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let settled = loop {
        let (rss, _) = env.proxy.rss_kib();
        if rss < rss_before + MAX_KEPT_AFTER_TRACKING_KIB {
            break rss;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "RSS before {rss_before} KiB, peak {hwm} KiB, still {rss} KiB 30 s after tracking"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!("RSS before {rss_before} KiB, peak {hwm} KiB, after {settled} KiB");
}
