//! Real clients through crmproxy against the private Dovecot, each compared with the
//! same work done directly against Dovecot: Python imaplib (full session, both
//! client-side TLS modes, all three upstream modes), curl, and mbsync.

mod common;

use common::clients::{self, ClientTls};
use common::proxy::{run_init, ProxyOptions, Upstream};
use common::{dovecot, unique_user, Proxy, PASSWORD};
use std::collections::BTreeSet;

/// Run the imaplib session; panic with its output when it fails.
fn session(
    addr: std::net::SocketAddr,
    tls: ClientTls,
    ca: Option<&std::path::Path>,
    user: &str,
) -> String {
    let (ok, out, err) = clients::run_python("session.py", addr, tls, ca, user, PASSWORD, &[]);
    assert!(
        ok,
        "session.py failed against {addr}:\n{out}\n{err}\ndovecot log tail:\n{}",
        tail(&dovecot().log())
    );
    out
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// `[CAPABILITY …] ` response codes removed from every line.
fn strip_capability_code(t: &str) -> String {
    let mut out = String::new();
    for line in t.lines() {
        let mut line = line.to_string();
        while let Some(start) = line.find("[CAPABILITY ") {
            let end = line[start..]
                .find("] ")
                .map_or(line.len(), |e| start + e + 2);
            line.replace_range(start..end, "");
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// mbsync marks messages it uploads with a random `X-TUID:` header line (to find them
/// again); it is not part of what is compared.
fn strip_tuid(m: &[u8]) -> Vec<u8> {
    let text = m.split_inclusive(|&b| b == b'\n');
    text.filter(|l| !l.starts_with(b"X-TUID: "))
        .flatten()
        .copied()
        .collect()
}

/// Equal texts, or a panic showing the first differing line.
fn assert_same_text(a: &str, b: &str, what: &str) {
    if a == b {
        return;
    }
    let (al, bl): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let i = al
        .iter()
        .zip(&bl)
        .position(|(x, y)| x != y)
        .unwrap_or(al.len().min(bl.len()));
    let cut = |s: Option<&&str>| {
        s.map(|s| s.chars().take(1500).collect::<String>())
            .unwrap_or_default()
    };
    panic!(
        "{what}: first difference at line {}:\n direct: {}\nproxied: {}",
        i + 1,
        cut(al.get(i)),
        cut(bl.get(i))
    );
}

/// Split a transcript into (capability lines, everything else).
fn split_caps(t: &str) -> (Vec<(String, BTreeSet<String>)>, String) {
    let mut caps = Vec::new();
    let mut rest = String::new();
    for line in t.lines() {
        if let Some(c) = line.strip_prefix("CAPS ") {
            let (label, list) = c.split_once(": ").unwrap();
            caps.push((
                label.to_string(),
                list.split(' ').map(str::to_string).collect(),
            ));
        } else if line.starts_with("CAPABILITY: ") {
            // The raw CAPABILITY reply is compared through the CAPS lines.
        } else {
            rest.push_str(line);
            rest.push('\n');
        }
    }
    (caps, rest)
}

/// The session through the proxy equals the direct one, except the capability
/// differences the proxy is meant to make (none for Dovecot's default set: it offers
/// no COMPRESS and no -PLUS mechanism, and STARTTLS stays while TLS is not up).
fn assert_same_session(direct: &str, proxied: &str, client_tls: ClientTls) {
    let (dcaps, drest) = split_caps(direct);
    let (pcaps, prest) = split_caps(proxied);
    assert_same_text(&drest, &prest, "transcripts differ");
    assert_eq!(dcaps.len(), pcaps.len());
    for ((label, d), (_, p)) in dcaps.iter().zip(&pcaps) {
        let mut expected = d.clone();
        expected.retain(|c| !c.starts_with("COMPRESS=") && !c.ends_with("-PLUS"));
        if client_tls != ClientTls::Plain {
            // The client's TLS is up: the proxy must not offer STARTTLS again.
            expected.remove("STARTTLS");
            expected.remove("LOGINDISABLED");
        }
        let added: Vec<_> = p.difference(&expected).collect();
        let removed: Vec<_> = expected.difference(p).collect();
        assert!(
            added.is_empty() && removed.is_empty(),
            "capabilities {label}: the proxy added {added:?} and removed {removed:?}"
        );
    }
}

#[test]
fn imaplib_session_through_proxy_equals_direct() {
    let dv = dovecot();
    let direct = session(
        dv.imap_addr(),
        ClientTls::Plain,
        None,
        &unique_user("py-direct"),
    );
    let proxy = Proxy::start(dv);
    let proxied = session(
        proxy.imap,
        ClientTls::Plain,
        None,
        &unique_user("py-proxied"),
    );
    assert!(direct.contains("IDLE lines"), "{direct}");
    // Dovecot offers COMPRESS=DEFLATE after login; the proxy must not (it would have to
    // inflate and deflate itself to keep seeing the traffic).
    let post_login = |t: &str| {
        split_caps(t)
            .0
            .into_iter()
            .find(|(label, _)| label == "post-login")
            .unwrap()
            .1
    };
    assert!(post_login(&direct).contains("COMPRESS=DEFLATE"), "{direct}");
    assert!(
        !post_login(&proxied).contains("COMPRESS=DEFLATE"),
        "{proxied}"
    );
    assert_same_session(&direct, &proxied, ClientTls::Plain);
}

#[test]
fn imaplib_over_imaps_and_starttls_with_the_ca_from_init() {
    let dv = dovecot();
    let data = tempfile::tempdir().unwrap();
    let out = run_init(data.path(), &[]);
    assert!(
        out.status.success(),
        "init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let proxy = Proxy::start_with(
        dv,
        ProxyOptions {
            data_dir: Some(data.path().to_owned()),
            ..Default::default()
        },
    );
    let ca = data.path().join("certs/ca.pem");
    assert_eq!(proxy.ca_file(), ca);
    let direct = session(
        dv.imap_addr(),
        ClientTls::Plain,
        None,
        &unique_user("tls-direct"),
    );
    let imaps = session(
        proxy.imaps,
        ClientTls::Imaps,
        Some(&ca),
        &unique_user("tls-imaps"),
    );
    assert_same_session(&direct, &imaps, ClientTls::Imaps);
    let starttls = session(
        proxy.imap,
        ClientTls::Starttls,
        Some(&ca),
        &unique_user("tls-starttls"),
    );
    let (_, rest) = split_caps(&starttls);
    assert!(rest.starts_with("STARTTLS: "), "{starttls}");
    let rest = rest.split_once('\n').unwrap().1;
    assert_same_text(&split_caps(&direct).1, rest, "STARTTLS session differs");

    // A client that does not trust the CA is refused by its own TLS check.
    let (ok, out, _) = clients::run_python(
        "session.py",
        proxy.imaps,
        ClientTls::Imaps,
        None,
        &unique_user("tls-untrusted"),
        PASSWORD,
        &["--short"],
    );
    assert!(!ok && out.contains("CERTIFICATE_VERIFY_FAILED"), "{out}");
}

#[test]
fn all_three_upstream_modes_give_the_same_session() {
    let dv = dovecot();
    let direct = session(
        dv.imap_addr(),
        ClientTls::Plain,
        None,
        &unique_user("mode-direct"),
    );
    for mode in [Upstream::Plain, Upstream::Implicit, Upstream::Starttls] {
        let proxy = Proxy::start_with(
            dv,
            ProxyOptions {
                upstream_mode: mode,
                ..Default::default()
            },
        );
        let proxied = session(proxy.imap, ClientTls::Plain, None, &unique_user("mode"));
        let (_, mut drest) = split_caps(&direct);
        let (_, mut prest) = split_caps(&proxied);
        if mode == Upstream::Starttls {
            // Dovecot leaves `[CAPABILITY …]` out of the LOGIN OK only for clients that
            // asked CAPABILITY before STARTTLS; after the proxy's upstream STARTTLS it is
            // always there. That is the server's doing, not the proxy's.
            drest = strip_capability_code(&drest);
            prest = strip_capability_code(&prest);
        }
        assert_same_text(
            &drest,
            &prest,
            &format!("upstream mode {mode:?}: transcripts differ"),
        );
    }
}

#[test]
fn curl_lists_and_fetches_through_proxy() {
    let dv = dovecot();
    let user = unique_user("curl");
    let msg = common::sample_message(7, 30);
    let mut c = common::RawImap::login(dv.imap_addr(), &user, PASSWORD);
    assert!(c.append("INBOX", &msg).ok());
    let proxy = Proxy::start(dv);

    let (ok, direct_list, err) = clients::curl(dv.imap_addr(), &user, PASSWORD, "/", None);
    assert!(ok, "{err}");
    let (ok, list, err) = clients::curl(proxy.imap, &user, PASSWORD, "/", None);
    assert!(ok, "{err}");
    assert_eq!(direct_list, list);
    assert!(String::from_utf8_lossy(&list).contains("INBOX"));

    let (ok, body, err) = clients::curl(proxy.imap, &user, PASSWORD, "/INBOX;UID=1", None);
    assert!(ok, "{err}");
    assert_eq!(body, msg, "curl fetched different bytes");

    let (ok, search, err) = clients::curl(
        proxy.imap,
        &user,
        PASSWORD,
        "/INBOX",
        Some("SEARCH SUBJECT Quarterly"),
    );
    assert!(ok, "{err}");
    assert!(
        String::from_utf8_lossy(&search).contains("SEARCH 1"),
        "{}",
        String::from_utf8_lossy(&search)
    );
}

#[test]
fn mbsync_syncs_a_mailbox_both_ways_like_direct() {
    let dv = dovecot();
    let work = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(dv);
    let mut results = Vec::new();
    for (label, addr) in [("direct", dv.imap_addr()), ("proxied", proxy.imap)] {
        let user = unique_user(&format!("mbsync-{label}"));
        // Server side: 20 messages in INBOX, 3 in Sent.
        let mut c = common::RawImap::login(dv.imap_addr(), &user, PASSWORD);
        for n in 0..20 {
            assert!(c.append("INBOX", &common::sample_message(n, 10 + n)).ok());
        }
        for n in 100..103 {
            assert!(c.append("Sent", &common::sample_message(n, 5)).ok());
        }
        let local = work.path().join(label).join("mail");
        // Pull everything down.
        let (ok, out) = clients::mbsync(&work.path().join(label), addr, &user, PASSWORD, &local);
        assert!(ok, "mbsync {label} pull: {out}");
        // Local side: two new messages, one in INBOX and one in a new folder; push up.
        std::fs::write(
            local.join("INBOX/new/1800000000.local1.host"),
            common::sample_message(500, 8),
        )
        .unwrap();
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(local.join("Projects").join(sub)).unwrap();
        }
        std::fs::write(
            local.join("Projects/new/1800000001.local2.host"),
            common::sample_message(501, 3),
        )
        .unwrap();
        let (ok, out) = clients::mbsync(&work.path().join(label), addr, &user, PASSWORD, &local);
        assert!(ok, "mbsync {label} push: {out}");
        // The server now has them: fetch them back directly.
        let r = c.cmd("SELECT Projects");
        assert!(
            r.ok(),
            "{label}: Projects not created upstream: {}",
            r.tagged
        );
        let pushed = strip_tuid(&c.fetch_body(1));
        assert_same_text(
            &String::from_utf8_lossy(&pushed),
            &String::from_utf8_lossy(&common::sample_message(501, 3)),
            &format!("{label}: the message mbsync pushed"),
        );
        let r = c.cmd("STATUS INBOX (MESSAGES)");
        assert!(r.text().contains("MESSAGES 21"), "{label}: {}", r.text());
        let mut contents = clients::maildir_contents(&local);
        for msgs in contents.values_mut() {
            for m in msgs.iter_mut() {
                *m = strip_tuid(m);
            }
            msgs.sort();
        }
        results.push(contents);
    }
    assert_eq!(
        results[0].keys().collect::<Vec<_>>(),
        results[1].keys().collect::<Vec<_>>()
    );
    assert_eq!(
        results[0], results[1],
        "Maildirs differ between direct and proxied sync"
    );
    assert_eq!(results[0]["INBOX"].len(), 21);
}

#[test]
fn pipelined_commands_get_the_same_answers_as_direct() {
    let dv = dovecot();
    let proxy = Proxy::start(dv);
    let mut answers = Vec::new();
    for addr in [dv.imap_addr(), proxy.imap] {
        let user = unique_user("pipeline");
        let mut c = common::RawImap::login(addr, &user, PASSWORD);
        let m1 = common::sample_message(1, 20);
        let m2 = common::sample_message(2, 5);
        // One write holding many commands, two LITERAL+ APPENDs among them, as
        // pipelining clients send them.
        let mut batch = Vec::new();
        batch.extend_from_slice(format!("p1 APPEND INBOX {{{}+}}\r\n", m1.len()).as_bytes());
        batch.extend_from_slice(&m1);
        batch.extend_from_slice(b"\r\n");
        batch.extend_from_slice(
            format!("p2 APPEND INBOX (\\Seen) {{{}+}}\r\n", m2.len()).as_bytes(),
        );
        batch.extend_from_slice(&m2);
        batch.extend_from_slice(b"\r\n");
        batch.extend_from_slice(
            b"p3 SELECT INBOX\r\np4 UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n\
p5 UID STORE 1 +FLAGS (\\Answered)\r\np6 NOOP\r\np7 UID SEARCH UNSEEN\r\np8 UID FETCH 2 BODY.PEEK[TEXT]<0.50>\r\n",
        );
        c.send(&batch);
        let r = c.read_until_tagged("p8").unwrap();
        let text = r
            .text()
            .lines()
            .map(|l| {
                let l = l.split(" (").next().unwrap_or(l);
                if l.contains("APPENDUID") || l.contains("UIDVALIDITY") || l.contains("secs)") {
                    l.split(" [").next().unwrap().to_string()
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        answers.push((text, r.bytes.len()));
    }
    assert_same_text(&answers[0].0, &answers[1].0, "pipelined answers differ");
}

#[test]
fn plaintext_login_disabled_until_starttls_when_configured() {
    let dv = dovecot();
    let data = tempfile::tempdir().unwrap();
    let proxy = Proxy::start_with(
        dv,
        ProxyOptions {
            data_dir: Some(data.path().to_owned()),
            config_toml: Some("[proxy]\nallow_plaintext_on_loopback = false\n".into()),
            ..Default::default()
        },
    );
    let user = unique_user("logindisabled");
    let mut c = common::RawImap::connect(proxy.imap).unwrap();
    let caps = c.cmd("CAPABILITY").text();
    assert!(
        caps.contains("LOGINDISABLED") && caps.contains("STARTTLS"),
        "{caps}"
    );
    let r = c.cmd(&format!("LOGIN {user} {PASSWORD}"));
    assert!(!r.ok(), "LOGIN accepted in plain text: {}", r.tagged);
    // After STARTTLS the same client logs in.
    let ca = proxy.ca_file();
    let (ok, out, err) = clients::run_python(
        "session.py",
        proxy.imap,
        ClientTls::Starttls,
        Some(&ca),
        &user,
        PASSWORD,
        &["--short"],
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("LOGIN: [b'OK'"), "{out}");
    let pre = out
        .lines()
        .find(|l| l.starts_with("CAPS pre-login"))
        .unwrap();
    assert!(
        !pre.contains("LOGINDISABLED") && !pre.contains("STARTTLS"),
        "{pre}"
    );
}
