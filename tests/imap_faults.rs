//! Faults a user can hit, through crmproxy against the private Dovecot: bad client
//! input, clients vanishing mid-literal, upstream down / refusing TLS / dropping the
//! session, wrong passwords, SIGTERM, and secrets in the logs.

mod common;

use base64::Engine;
use common::proxy::{ProxyOptions, Upstream};
use common::{dovecot, unique_user, Proxy, RawImap, PASSWORD};
use std::io::{Read, Write};
use std::time::Duration;

/// Read lines until one satisfies `pred`; None on EOF/timeout.
fn read_until(c: &mut RawImap, pred: impl Fn(&str) -> bool) -> Option<String> {
    loop {
        match c.read_line() {
            Ok(l) if pred(&l) => return Some(l),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

/// The proxy still serves a fresh session.
fn assert_serves(proxy: &Proxy) {
    let mut c = RawImap::login(proxy.imap, &unique_user("still-up"), PASSWORD);
    assert!(c.cmd("SELECT INBOX").ok());
    assert!(c.cmd("LOGOUT").ok());
}

/// The client is told, with a BYE that has a reason, that the session cannot go on;
/// then the connection closes.
fn assert_clear_bye(addr: std::net::SocketAddr) -> String {
    let mut c = RawImap::connect(addr).expect("the proxy accepts the connection");
    c.set_read_timeout(Some(Duration::from_secs(30)));
    let bye = if c.greeting.starts_with("* BYE") {
        c.greeting.clone()
    } else {
        c.send(format!("a1 LOGIN {} {PASSWORD}\r\n", unique_user("bye")).as_bytes());
        read_until(&mut c, |l| l.starts_with("* BYE") || l.starts_with("a1 "))
            .expect("an answer before the connection closes")
    };
    assert!(bye.starts_with("* BYE "), "expected a BYE, got {bye:?}");
    assert!(
        bye.trim_end().len() > "* BYE ".len() + 5,
        "BYE without a reason: {bye:?}"
    );
    // After the BYE the proxy closes the connection.
    let mut rest = Vec::new();
    let _ = c.stream().try_clone().unwrap().read_to_end(&mut rest);
    bye
}

#[test]
fn garbage_and_overlong_lines_get_bad_and_the_session_goes_on() {
    let dv = dovecot();
    let proxy = Proxy::start(dv);
    let user = unique_user("garbage");
    let mut c = RawImap::login(proxy.imap, &user, PASSWORD);
    c.send(b"garbage\r\n");
    let l = read_until(&mut c, |l| l.contains("BAD")).expect("BAD for garbage");
    assert!(
        l.starts_with("garbage BAD") || l.starts_with("* BAD"),
        "{l}"
    );
    c.send(b"\x01\x02\xff not imap at all\r\n");
    read_until(&mut c, |l| l.contains("BAD")).expect("BAD for binary garbage");
    assert!(c.cmd("NOOP").ok(), "session lost after garbage");

    // A line far over max_line_bytes (64 KiB by default).
    let mut long = b"t900 NOOP ".to_vec();
    long.resize(300 * 1024, b'x');
    long.extend_from_slice(b"\r\n");
    c.send(&long);
    let l = read_until(&mut c, |l| l.contains("BAD")).expect("BAD for an over-long line");
    assert!(l.starts_with("t900 BAD") || l.starts_with("* BAD"), "{l}");
    assert!(c.cmd("NOOP").ok(), "session lost after an over-long line");
    assert!(c.cmd("SELECT INBOX").ok());
}

#[test]
fn client_vanishing_mid_literal_leaves_proxy_up_and_nothing_appended() {
    let dv = dovecot();
    let proxy = Proxy::start(dv);
    let user = unique_user("midliteral");
    {
        let mut c = RawImap::login(proxy.imap, &user, PASSWORD);
        c.send(b"a9 APPEND INBOX {100000}\r\n");
        let cont = c.read_line().unwrap();
        assert!(cont.starts_with('+'), "{cont}");
        c.send(&common::sample_message(1, 100)[..3000]);
        // Dropped here: the connection closes with 97 000 bytes of literal missing.
    }
    assert_eq!(
        dv.wait_sessions_gone(&user),
        0,
        "the upstream session outlived its client"
    );
    let mut c = RawImap::login(proxy.imap, &user, PASSWORD);
    assert!(c.cmd("NOOP").ok());
    // The same with LITERAL+ (no continuation to wait for).
    {
        let mut c2 = RawImap::login(proxy.imap, &user, PASSWORD);
        c2.send(b"a9 APPEND INBOX {100000+}\r\n");
        c2.send(&common::sample_message(2, 100)[..2000]);
    }
    assert_serves(&proxy);
    std::thread::sleep(Duration::from_millis(200));
    let r = c.cmd("STATUS INBOX (MESSAGES)");
    assert!(r.text().contains("MESSAGES 0"), "{}", r.text());
}

#[test]
fn client_vanishing_mid_fetch_leaves_proxy_up() {
    let dv = dovecot();
    let user = unique_user("midfetch");
    dv.fill_inbox(
        &user,
        std::iter::once(common::big_message(20 * 1024 * 1024)),
    );
    let mut proxy = Proxy::start(dv);
    // The proxy may notice the vanished client on either direction first (a reset on
    // read, or a failed write): try a few times so that both orders are exercised.
    for attempt in 0..8 {
        {
            let mut c = RawImap::login(proxy.imap, &user, PASSWORD);
            assert!(c.cmd("SELECT INBOX").ok());
            c.send(b"f1 UID FETCH 1 BODY.PEEK[]\r\n");
            let mut some = [0u8; 64 * 1024];
            let n = c.stream().try_clone().unwrap().read(&mut some).unwrap();
            assert!(n > 0);
            assert_eq!(dv.sessions(&user), 1);
            // Dropped with ~20 MB of the answer still to come.
        }
        assert!(proxy.alive());
        assert_eq!(
            dv.wait_sessions_gone(&user),
            0,
            "attempt {attempt}: the upstream session outlived its client"
        );
    }
    assert_serves(&proxy);
}

#[test]
fn many_concurrent_sessions_all_complete() {
    let dv = dovecot();
    let proxy = Proxy::start(dv);
    let addr = proxy.imap;
    let workers: Vec<_> = (0..16)
        .map(|i| {
            std::thread::spawn(move || {
                let user = unique_user(&format!("concurrent{i}"));
                let mut c = RawImap::login(addr, &user, PASSWORD);
                for n in 0..10 {
                    let m = common::sample_message(n, 10 + i);
                    assert!(c.append("INBOX", &m).ok());
                }
                assert!(c.cmd("SELECT INBOX").ok());
                for uid in 1..=10u32 {
                    assert_eq!(
                        c.fetch_body(uid),
                        common::sample_message(uid as usize - 1, 10 + i)
                    );
                }
                assert!(c.cmd("LOGOUT").ok());
            })
        })
        .collect();
    for w in workers {
        w.join().expect("a session failed");
    }
}

#[test]
fn upstream_down_gives_a_clear_bye() {
    let dv = dovecot();
    let closed = common::free_port();
    let proxy = Proxy::start_with(
        dv,
        ProxyOptions {
            upstream: Some(format!("127.0.0.1:{closed}")),
            ..Default::default()
        },
    );
    assert_clear_bye(proxy.imap);
    let mut proxy = proxy;
    assert!(proxy.alive(), "the proxy died when the upstream was down");
}

#[test]
fn upstream_refusing_tls_gives_a_clear_bye() {
    let dv = dovecot();
    // Implicit TLS spoken to Dovecot's plain port.
    let proxy = Proxy::start_with(
        dv,
        ProxyOptions {
            upstream_mode: Upstream::Implicit,
            upstream: Some(format!("localhost:{}", dv.imap_port)),
            ..Default::default()
        },
    );
    assert_clear_bye(proxy.imap);
    // A certificate that does not verify (no --upstream-ca: Dovecot's CA is unknown).
    let proxy = Proxy::start_with(
        dv,
        ProxyOptions {
            upstream_mode: Upstream::Implicit,
            without_upstream_ca: true,
            ..Default::default()
        },
    );
    assert_clear_bye(proxy.imap);
    // STARTTLS to the IMAPS port (the server waits for a TLS hello, never greets).
    let proxy = Proxy::start_with(
        dv,
        ProxyOptions {
            upstream_mode: Upstream::Starttls,
            upstream: Some(format!("localhost:{}", dv.imaps_port)),
            // The server never greets: the proxy gives up after the connect timeout.
            config_toml: Some("[upstream]\nconnect_timeout_secs = 2\n".into()),
            ..Default::default()
        },
    );
    assert_clear_bye(proxy.imap);
}

#[test]
fn upstream_dropping_mid_session_reaches_the_client_and_proxy_stays_up() {
    let dv = dovecot();
    let mut proxy = Proxy::start(dv);
    let user = unique_user("kicked");
    let mut c = RawImap::login(proxy.imap, &user, PASSWORD);
    assert!(c.cmd("SELECT INBOX").ok());
    c.send(b"i1 IDLE\r\n");
    assert!(c.read_line().unwrap().starts_with('+'));
    dv.kick(&user);
    c.set_read_timeout(Some(Duration::from_secs(30)));
    // Dovecot says BYE and closes; the client must see the BYE (or at least the close),
    // never hang.
    let mut seen = String::new();
    while let Ok(l) = c.read_line() {
        seen.push_str(&l);
    }
    assert!(
        seen.contains("* BYE"),
        "client did not get the upstream's BYE: {seen:?}"
    );
    assert!(proxy.alive());
    assert_serves(&proxy);
}

#[test]
fn wrong_password_no_passes_through_and_session_goes_on() {
    let dv = dovecot();
    let proxy = Proxy::start(dv);
    let user = unique_user("wrongpw");
    let mut direct = RawImap::connect(dv.imap_addr()).unwrap();
    let mut proxied = RawImap::connect(proxy.imap).unwrap();
    let d = direct.cmd(&format!("LOGIN {user} not-the-password"));
    let p = proxied.cmd(&format!("LOGIN {user} not-the-password"));
    assert!(
        d.tagged.contains("NO [AUTHENTICATIONFAILED]"),
        "{}",
        d.tagged
    );
    assert_eq!(d.tagged, p.tagged);
    // AUTHENTICATE PLAIN with a wrong password too.
    let creds = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0nope"));
    let p = proxied.cmd(&format!("AUTHENTICATE PLAIN {creds}"));
    assert!(p.tagged.contains("NO"), "{}", p.tagged);
    // The right password then works on the same connection.
    let p = proxied.cmd(&format!("LOGIN {user} {PASSWORD}"));
    assert!(p.ok(), "{}", p.tagged);
    assert!(proxied.cmd("SELECT INBOX").ok());
}

#[test]
fn delegate_login_with_authzid_reaches_the_owners_mailbox() {
    let dv = dovecot();
    let proxy = Proxy::start(dv);
    let owner = unique_user("owner");
    let delegate = unique_user("delegate");
    let creds = base64::engine::general_purpose::STANDARD.encode(format!(
        "{owner}\0{delegate}\0{}",
        common::dovecot::MASTER_PASSWORD
    ));
    // SASL-IR.
    let mut c = RawImap::connect(proxy.imap).unwrap();
    let r = c.cmd(&format!("AUTHENTICATE PLAIN {creds}"));
    assert!(r.ok(), "{}", r.tagged);
    assert!(c.append("INBOX", &common::sample_message(42, 3)).ok());
    // Without SASL-IR: the credentials follow the server's continuation.
    let mut c = RawImap::connect(proxy.imap).unwrap();
    c.send(b"a1 AUTHENTICATE PLAIN\r\n");
    assert!(c.read_line().unwrap().starts_with('+'));
    c.send(format!("{creds}\r\n").as_bytes());
    assert!(read_until(&mut c, |l| l.starts_with("a1 "))
        .unwrap()
        .starts_with("a1 OK"));
    // The message is in the owner's mailbox.
    let mut d = RawImap::login(dv.imap_addr(), &owner, PASSWORD);
    assert!(d.cmd("SELECT INBOX").ok());
    assert_eq!(d.fetch_body(1), common::sample_message(42, 3));
    // The proxy knows who is who (owner and delegate), without the password.
    let log = proxy.stderr();
    let line = log
        .lines()
        .find(|l| l.contains("logged in") && l.contains(&owner))
        .unwrap_or_else(|| panic!("no login of {owner} in the log:\n{log}"));
    assert!(line.contains(&delegate), "delegate not recognised: {line}");
    assert!(!log.contains(common::dovecot::MASTER_PASSWORD));
}

#[test]
fn append_to_a_missing_mailbox_gets_the_servers_no_not_a_proxy_continuation() {
    let dv = dovecot();
    let proxy = Proxy::start(dv);
    let mut c = RawImap::login(proxy.imap, &unique_user("trycreate"), PASSWORD);
    c.send(b"a1 APPEND NoSuchBox {10}\r\n");
    let l = c.read_line().unwrap();
    assert!(
        l.starts_with("a1 NO [TRYCREATE]"),
        "expected the server's NO, got {l:?}"
    );
    assert!(c.cmd("NOOP").ok());
}

#[test]
fn sigterm_exits_gracefully_with_code_zero() {
    let dv = dovecot();
    let mut proxy = Proxy::start(dv);
    let mut idle = RawImap::login(proxy.imap, &unique_user("term"), PASSWORD);
    assert!(idle.cmd("SELECT INBOX").ok());
    let status = proxy
        .terminate(Duration::from_secs(60))
        .expect("crmproxy did not exit after SIGTERM");
    assert_eq!(status.code(), Some(0), "stderr:\n{}", proxy.stderr());
    // The idle client was told with a BYE and disconnected; it does not hang.
    idle.set_read_timeout(Some(Duration::from_secs(10)));
    let mut rest = Vec::new();
    let r = idle.stream().try_clone().unwrap().read_to_end(&mut rest);
    assert!(r.is_ok(), "client not disconnected: {r:?}");
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.contains("* BYE"), "idle client got no BYE: {rest:?}");
}

#[test]
fn password_never_reaches_the_trace_log() {
    let dv = dovecot();
    let mut proxy = Proxy::start_with(
        dv,
        ProxyOptions {
            env: vec![("RUST_LOG".into(), "trace".into())],
            ..Default::default()
        },
    );
    let user = unique_user("secret");
    // LOGIN with an atom, a quoted string and a literal password.
    let mut c = RawImap::login(proxy.imap, &user, PASSWORD);
    assert!(c.cmd("LOGOUT").ok());
    let mut c = RawImap::connect(proxy.imap).unwrap();
    assert!(c.cmd(&format!("LOGIN \"{user}\" \"{PASSWORD}\"")).ok());
    assert!(c.cmd("LOGOUT").ok());
    let mut c = RawImap::connect(proxy.imap).unwrap();
    c.send(format!("l1 LOGIN {user} {{{}}}\r\n", PASSWORD.len()).as_bytes());
    assert!(c.read_line().unwrap().starts_with('+'));
    c.send(format!("{PASSWORD}\r\n").as_bytes());
    assert!(read_until(&mut c, |l| l.starts_with("l1 "))
        .unwrap()
        .starts_with("l1 OK"));
    // AUTHENTICATE PLAIN with SASL-IR, and without (continuation).
    let plain = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{PASSWORD}"));
    let mut c = RawImap::connect(proxy.imap).unwrap();
    assert!(c.cmd(&format!("AUTHENTICATE PLAIN {plain}")).ok());
    let mut c = RawImap::connect(proxy.imap).unwrap();
    c.send(b"p1 AUTHENTICATE PLAIN\r\n");
    assert!(c.read_line().unwrap().starts_with('+'));
    c.send(format!("{plain}\r\n").as_bytes());
    assert!(read_until(&mut c, |l| l.starts_with("p1 "))
        .unwrap()
        .starts_with("p1 OK"));
    drop(c);
    let _ = proxy.terminate(Duration::from_secs(30));
    let log = proxy.stderr();
    assert!(log.len() > 200, "trace log suspiciously empty:\n{log}");
    assert!(
        log.contains(&user) || log.contains("LOGIN") || log.contains("session"),
        "nothing logged about the sessions:\n{log}"
    );
    for secret in [PASSWORD.to_string(), plain.clone()] {
        assert!(
            !log.contains(&secret),
            "a secret appears in the log:\n{log}"
        );
    }
    // Nor in the data dir (store, recordings).
    let mut found = Vec::new();
    scan_for(&proxy.data_dir, PASSWORD.as_bytes(), &mut found);
    assert!(found.is_empty(), "password written to {found:?}");
    let _ = std::io::stdout().flush();
}

fn scan_for(dir: &std::path::Path, needle: &[u8], found: &mut Vec<std::path::PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            scan_for(&p, needle, found);
        } else if let Ok(bytes) = std::fs::read(&p) {
            if bytes.windows(needle.len()).any(|w| w == needle) {
                found.push(p);
            }
        }
    }
}
