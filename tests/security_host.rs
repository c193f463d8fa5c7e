//! Security of `crmproxy serve` on a shared host, through the real binary against the
//! private Dovecot: the data directory is private under umask 000 and 022 (a second
//! Unix user, created here when running as root, cannot read blobs or the store), a
//! planted sign-in link file is refused, a self-signed upstream certificate
//! (`openssl req -x509`, CA:TRUE) works when pinned and `doctor` says what is wrong
//! when it is not, pane password guessing is limited (without reaching the
//! upstream), `pane-url` points at the pane that runs, connection limits answer
//! `* BYE` with the reason, and the admin socket survives failed accepts.

mod common;
mod pane_util;

use common::{dovecot, Proxy, ProxyOptions, RawImap, PASSWORD};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ALICE: &str = "alice@example.test";
/// The second local user of these tests (created when running as root).
const OTHER_USER: &str = "crmproxy-other";

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_crmproxy")
}

/// `crmproxy serve` started with `before_exec` run in the child (umask, limits).
struct Serve {
    child: Child,
    imap: SocketAddr,
    pane: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data: &Path, before_exec: impl Fn() + Send + Sync + 'static) -> Serve {
    let dv = dovecot();
    let mut cmd = Command::new(bin());
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(data)
        .args(["--upstream", &format!("127.0.0.1:{}", dv.imap_port)])
        .args(["--upstream-tls", "plain"])
        .args([
            "--imap",
            "127.0.0.1:0",
            "--imaps",
            "off",
            "--pane",
            "127.0.0.1:0",
        ])
        .env_remove("RUST_LOG")
        .env_remove("CRMPROXY_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    common::die_with_parent(&mut cmd, libc::SIGKILL);
    // SAFETY: the closure only makes async-signal-safe calls (umask, setrlimit).
    unsafe {
        cmd.pre_exec(move || {
            before_exec();
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn crmproxy serve");
    let stderr = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let err = child.stderr.take().unwrap();
    let buf = stderr.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            buf.lock().unwrap().push_str(&format!("{line}\n"));
            let _ = tx.send(line);
        }
    });
    let (mut imap, mut pane) = (None, None);
    while imap.is_none() || pane.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("serve did not start: {}", stderr.lock().unwrap()));
        if let Some(a) = line.strip_prefix("listening imap ") {
            imap = Some(a.trim().parse().unwrap());
        } else if let Some(a) = line.strip_prefix("listening pane ") {
            pane = Some(a.trim().parse().unwrap());
        }
    }
    Serve {
        child,
        imap: imap.unwrap(),
        pane: pane.unwrap(),
        stderr,
    }
}

fn crmproxy(data: &Path, args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("CRMPROXY_CONFIG")
        .output()
        .expect("run crmproxy")
}

fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn walk(p: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(p).unwrap().flatten() {
        out.push(e.path());
        if e.file_type().unwrap().is_dir() {
            walk(&e.path(), out);
        }
    }
}

/// The uid of the second local user: created when running as root, else None.
fn other_user() -> Option<u32> {
    let uid = |o: std::process::Output| -> Option<u32> {
        String::from_utf8_lossy(&o.stdout).trim().parse().ok()
    };
    let id = || Command::new("id").args(["-u", OTHER_USER]).output().ok();
    if let Some(u) = id().and_then(&uid) {
        return Some(u);
    }
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        return None;
    }
    let _ = Command::new("useradd")
        .args(["--no-create-home", "--shell", "/bin/sh", OTHER_USER])
        .output();
    id().and_then(&uid)
}

/// Run `program args` as the second user; whether it succeeded.
fn succeeds_as(uid: u32, program: &str, args: &[&Path]) -> bool {
    Command::new(program)
        .args(args)
        .uid(uid)
        .gid(uid)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn run_with_umask(mask: libc::mode_t) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = serve(&data, move || unsafe {
        libc::umask(mask);
    });
    // Track a message, so that blobs exist.
    let subject = format!("private under umask {mask:o}");
    let mut c = RawImap::login(s.imap, ALICE, PASSWORD);
    let msg = format!(
        "From: {ALICE}\r\nTo: buyer@contoso.example\r\nSubject: {subject}\r\n\
         Message-ID: <umask-{mask}-{}@example.test>\r\n\r\nHello.\r\n",
        std::process::id()
    );
    assert!(c.append("INBOX", msg.as_bytes()).ok());
    assert!(c.cmd("SELECT INBOX").ok());
    assert!(c.cmd("UID STORE 1:* +FLAGS ($CRM_Track)").ok());
    let blobs = data.join("store").join("blobs");
    wait_for("a blob", Duration::from_secs(60), || {
        let mut all = Vec::new();
        if blobs.exists() {
            walk(&blobs, &mut all);
        }
        all.iter().any(|p| p.is_file())
    });
    // Issue a link so that pane-tokens exists too.
    assert!(crmproxy(&data, &["pane-url", "--user", ALICE])
        .status
        .success());

    let mut all = vec![data.clone()];
    walk(&data, &mut all);
    for p in &all {
        let meta = std::fs::symlink_metadata(p).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            assert_eq!(mode, 0o700, "umask {mask:o}: {}", p.display());
        } else {
            assert_eq!(
                mode & 0o077,
                0,
                "umask {mask:o}: {} mode {mode:o}",
                p.display()
            );
            if meta.is_file() {
                assert_eq!(mode, 0o600, "umask {mask:o}: {}", p.display());
            }
        }
    }
    // Another local user reads neither a blob nor the store.
    if let Some(uid) = other_user() {
        // The temp dir's own parent must not be what stops them.
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let blob = all
            .iter()
            .find(|p| p.starts_with(&blobs) && p.is_file())
            .unwrap();
        assert!(
            !succeeds_as(uid, "cat", &[blob]),
            "{} readable",
            blob.display()
        );
        assert!(!succeeds_as(uid, "ls", &[&data.join("store")]));
        assert!(!succeeds_as(uid, "ls", &[&data]));
        assert!(
            succeeds_as(uid, "ls", &[tmp.path()]),
            "the check itself works"
        );
    } else {
        eprintln!("not root: no second Unix user to check with");
    }
}

#[test]
fn the_data_dir_is_private_under_umask_000_and_022() {
    run_with_umask(0o000);
    run_with_umask(0o022);
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn pane_client(data: &Path, pane: SocketAddr) -> pane_util::Client {
    pane_util::Client::new(
        pane,
        &data.join("certs").join("ca.pem"),
        format!("localhost:{}", pane.port()),
    )
}

fn link_token(url: &str) -> String {
    url.trim()
        .split("token=")
        .nth(1)
        .expect("a token in the link")
        .to_owned()
}

#[test]
fn pane_url_points_at_the_running_pane_and_planted_links_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().to_owned();
    let s = serve(&data, || {});
    let issue = || {
        let out = crmproxy(&data, &["pane-url", "--user", ALICE]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    // The configured pane address is the default 8443; serve runs elsewhere.
    let url = issue();
    let origin = format!("https://localhost:{}/signin/link?token=", s.pane.port());
    assert!(url.starts_with(&origin), "{url} is not on {origin}");

    let rt = rt();
    let token_file = |url: &str| {
        let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            link_token(url).as_bytes(),
        ));
        data.join("pane-tokens").join(format!("{hash}.json"))
    };
    let open = |url: &str| {
        let path = format!("/signin/link?token={}", link_token(url));
        rt.block_on(async { pane_client(&data, s.pane).get(&path).await })
    };
    // A link file others may write is refused.
    let writable = issue();
    let f = token_file(&writable);
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
    let r = open(&writable);
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("refused"), "{}", r.text());
    // A link file another user owns is refused.
    if let Some(uid) = other_user() {
        let planted = issue();
        std::os::unix::fs::chown(token_file(&planted), Some(uid), Some(uid)).unwrap();
        let r = open(&planted);
        assert_eq!(r.status, 403, "{}", r.text());
        assert!(r.text().contains("owned by user id"), "{}", r.text());
    }
    // The first, untouched link signs in (at the address pane-url printed).
    let r = open(&url);
    assert_eq!(r.status, 303, "{}", r.text());
}

/// A TCP relay to `to` that counts the connections it accepted.
fn counting_relay(to: SocketAddr) -> (SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let n = count.clone();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            n.fetch_add(1, Ordering::SeqCst);
            let Ok(up) = TcpStream::connect(to) else {
                continue;
            };
            let (mut c2, mut up2) = (c.try_clone().unwrap(), up.try_clone().unwrap());
            let (mut c, mut up) = (c, up);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c, &mut up);
                let _ = up.shutdown(std::net::Shutdown::Both);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut up2, &mut c2);
                let _ = c2.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    (addr, count)
}

#[test]
fn pane_password_guessing_is_limited_per_user_name_and_address() {
    let dv = dovecot();
    let (relay, upstream_connections) = counting_relay(dv.imap_addr());
    let p = Proxy::start_with(
        dv,
        ProxyOptions {
            upstream: Some(relay.to_string()),
            pane: true,
            ..Default::default()
        },
    );
    let pane = p.pane.unwrap();
    let rt = rt();
    let attempt = |user: &str, password: &str| {
        rt.block_on(async {
            let mut c = pane_client(&p.data_dir, pane);
            let csrf = c.get("/signin").await.csrf();
            let fields = [("user", user), ("password", password), ("csrf", &csrf)];
            c.post_form("/signin", &fields).await
        })
    };
    for _ in 0..crmproxy::pane::imap_login::MAX_FAILURES_PER_USER {
        assert_eq!(attempt(ALICE, "wrong").status, 401);
    }
    let before = upstream_connections.load(Ordering::SeqCst);
    // Now even the right password is refused, with a clear message, and not tried.
    let r = attempt(ALICE, PASSWORD);
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(
        r.text()
            .contains("too many failed sign-ins for this user name"),
        "{}",
        r.text()
    );
    assert!(r.text().contains("pane-url"), "{}", r.text());
    assert_eq!(upstream_connections.load(Ordering::SeqCst), before);
    // Other names from the same address, until the address is over its limit too.
    let per_user = crmproxy::pane::imap_login::MAX_FAILURES_PER_USER;
    for n in per_user..crmproxy::pane::imap_login::MAX_FAILURES_PER_CLIENT {
        assert_eq!(
            attempt(&format!("guess{n}@example.test"), "wrong").status,
            401
        );
    }
    let before = upstream_connections.load(Ordering::SeqCst);
    let r = attempt("bob@example.test", PASSWORD);
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.text().contains("from this address"), "{}", r.text());
    assert_eq!(upstream_connections.load(Ordering::SeqCst), before);
}

/// A client connection from a chosen loopback address; its first line.
fn connect_from(ip: [u8; 4], to: SocketAddr) -> (TcpStream, String) {
    let rt = rt();
    let s = rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(SocketAddr::from((ip, 0))).unwrap();
        sock.connect(to).await.unwrap()
    });
    let s = s.into_std().unwrap();
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut line = String::new();
    BufReader::new(s.try_clone().unwrap())
        .read_line(&mut line)
        .unwrap();
    (s, line)
}

#[test]
fn connections_over_the_limits_get_a_bye_that_says_why() {
    let p = Proxy::start_with(
        dovecot(),
        ProxyOptions {
            config_toml: Some(
                "[proxy]\nmax_connections = 3\nmax_connections_per_address = 2\n".into(),
            ),
            ..Default::default()
        },
    );
    let (a1, g) = connect_from([127, 0, 0, 1], p.imap);
    assert!(g.starts_with("* OK"), "{g}");
    let (_a2, g) = connect_from([127, 0, 0, 1], p.imap);
    assert!(g.starts_with("* OK"), "{g}");
    let (_, g) = connect_from([127, 0, 0, 1], p.imap);
    assert!(g.starts_with("* BYE"), "{g}");
    assert!(g.contains("max_connections_per_address = 2"), "{g}");
    let (_b1, g) = connect_from([127, 0, 0, 2], p.imap);
    assert!(g.starts_with("* OK"), "{g}");
    let (_, g) = connect_from([127, 0, 0, 3], p.imap);
    assert!(g.starts_with("* BYE"), "{g}");
    assert!(g.contains("proxy.max_connections = 3"), "{g}");
    // A closed connection frees its place.
    drop(a1);
    wait_for("a freed place", Duration::from_secs(30), || {
        connect_from([127, 0, 0, 3], p.imap).1.starts_with("* OK")
    });
}

#[test]
fn the_admin_socket_survives_running_out_of_file_descriptors() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().to_owned();
    let s = serve(&data, || unsafe {
        let lim = libc::rlimit {
            rlim_cur: 128,
            rlim_max: 128,
        };
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    });
    let sock = data.join("admin.sock");
    let mut held = Vec::new();
    for _ in 0..200 {
        if let Ok(c) = std::os::unix::net::UnixStream::connect(&sock) {
            held.push(c);
        }
    }
    let log = || s.stderr.lock().unwrap().clone();
    wait_for("a failed accept", Duration::from_secs(30), || {
        log().contains("accept failed")
    });
    drop(held);
    // Once the descriptors are back, the CLI reaches serve again.
    let mut out = None;
    wait_for("the admin socket", Duration::from_secs(30), || {
        let o = crmproxy(&data, &["user", "list", "--json"]);
        let ok = o.status.success();
        out = Some(o);
        ok
    });
    let text = String::from_utf8_lossy(&out.unwrap().stdout).into_owned();
    assert!(text.contains(ALICE), "{text}");
}

/// A self-signed certificate as `openssl req -x509` makes it (CA:TRUE) for localhost.
fn openssl_self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}-key.pem")),
    );
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
        ])
        .args(["-subj", "/CN=localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// A second private Dovecot like the harness's, serving `cert` on a new IMAPS port.
struct SelfSignedDovecot {
    child: Child,
    imaps_port: u16,
    cert: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for SelfSignedDovecot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn self_signed_dovecot() -> SelfSignedDovecot {
    let base = dovecot();
    let dir = tempfile::Builder::new()
        .prefix("crmproxy-selfsigned-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (cert, key) = openssl_self_signed(dir.path(), "server");
    let (imap_port, imaps_port) = (common::free_port(), common::free_port());
    let d = dir.path().display().to_string();
    let mut conf = String::new();
    for line in std::fs::read_to_string(&base.conf).unwrap().lines() {
        let l = line.trim_start();
        let line = if l.starts_with("ssl_cert =") {
            format!("ssl_cert = <{}", cert.display())
        } else if l.starts_with("ssl_key =") {
            format!("ssl_key = <{}", key.display())
        } else if l.starts_with("base_dir =") {
            format!("base_dir = {d}/run")
        } else if l.starts_with("state_dir =") {
            format!("state_dir = {d}/state")
        } else if l.starts_with("log_path =") {
            format!("log_path = {d}/dovecot.log")
        } else if l.starts_with("protocols =") {
            // IMAP only: the base's LMTP listener holds its port already.
            "protocols = imap".to_owned()
        } else if l == format!("port = {}", base.imap_port) {
            format!("    port = {imap_port}")
        } else if l == format!("port = {}", base.imaps_port) {
            format!("    port = {imaps_port}")
        } else {
            line.to_owned()
        };
        conf.push_str(&line);
        conf.push('\n');
    }
    for sub in ["run", "state"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    let conf_path = dir.path().join("dovecot.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let mut cmd = Command::new("/usr/sbin/dovecot");
    cmd.arg("-F")
        .arg("-c")
        .arg(&conf_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    common::die_with_parent(&mut cmd, libc::SIGTERM);
    let child = cmd.spawn().expect("start dovecot");
    let d = SelfSignedDovecot {
        child,
        imaps_port,
        cert,
        _dir: dir,
    };
    wait_for("the self-signed Dovecot", Duration::from_secs(20), || {
        TcpStream::connect(("127.0.0.1", imaps_port)).is_ok()
    });
    d
}

fn fingerprint(cert: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(cert)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let hex = text.trim().split('=').nth(1).unwrap().to_owned();
    format!("sha256:{hex}")
}

/// LOGIN through the proxy works (the proxy reached the upstream over TLS).
fn login_through(p: &Proxy) -> String {
    let mut c = RawImap::connect(p.imap).expect("connect to the proxy");
    if !c.greeting.starts_with("* OK") {
        return c.greeting.clone();
    }
    let r = c.cmd(&format!("LOGIN selfsigned {PASSWORD}"));
    r.tagged.clone()
}

fn doctor_tls_check(data: &Path) -> serde_json::Value {
    let out = crmproxy(data, &["doctor", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("doctor JSON: {}", String::from_utf8_lossy(&out.stdout)));
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "upstream TLS")
        .cloned()
        .unwrap_or_else(|| panic!("no upstream TLS check: {report}"))
}

/// A data dir whose config points at the self-signed Dovecot with `trust` added.
fn doctor_dir(parent: &Path, name: &str, port: u16, trust: &str) -> PathBuf {
    let data = parent.join(name);
    std::fs::create_dir_all(&data).unwrap();
    let toml =
        format!("[upstream]\nhost = \"localhost\"\nport = {port}\ntls = \"implicit\"\n{trust}\n");
    std::fs::write(data.join("crmproxy.toml"), toml).unwrap();
    data
}

#[test]
fn a_self_signed_upstream_certificate_works_pinned_and_doctor_says_what_is_wrong() {
    let dv = dovecot();
    let ss = self_signed_dovecot();
    let upstream = format!("localhost:{}", ss.imaps_port);
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&ss.cert)
        .output()
        .unwrap()
        .stdout;
    assert!(
        String::from_utf8_lossy(&text).contains("CA:TRUE"),
        "openssl made a CA certificate"
    );
    let tmp = tempfile::tempdir().unwrap();
    let fp = fingerprint(&ss.cert);
    let ca_trust = format!("ca_file = {:?}", ss.cert.display().to_string());
    let fp_trust = format!("fingerprint = \"{fp}\"");

    // ca_file (as --upstream-ca sets it) naming the server's own certificate, or
    // its fingerprint: the proxy logs in, and doctor is content.
    for trust in [&ca_trust, &fp_trust] {
        let p = Proxy::start_with(
            dv,
            ProxyOptions {
                upstream_mode: common::proxy::Upstream::Implicit,
                upstream: Some(upstream.clone()),
                without_upstream_ca: true,
                config_toml: Some(format!("[upstream]\n{trust}\n")),
                ..Default::default()
            },
        );
        let tagged = login_through(&p);
        assert!(tagged.contains(" OK"), "{trust}: {tagged}\n{}", p.stderr());
        let data = doctor_dir(tmp.path(), "pinned", ss.imaps_port, trust);
        let check = doctor_tls_check(&data);
        assert_eq!(check["status"], "ok", "{trust}: {check}");
    }

    // A ca_file that does not vouch for the server: doctor says so, shows the
    // server's fingerprint, and does not advise setting ca_file, which is set.
    let (other, _) = openssl_self_signed(tmp.path(), "other");
    let other_trust = format!("ca_file = {:?}", other.display().to_string());
    let data = doctor_dir(tmp.path(), "other", ss.imaps_port, &other_trust);
    let check = doctor_tls_check(&data);
    assert_eq!(check["status"], "fail", "{check}");
    let detail = check["detail"].as_str().unwrap();
    let fix = check["fix"].as_str().unwrap();
    assert!(
        detail.contains(&fp),
        "the server's fingerprint is shown: {check}"
    );
    assert!(
        detail.contains("CA:TRUE") && detail.contains("self-signed"),
        "{check}"
    );
    assert!(fix.contains("does not vouch"), "{check}");
    assert!(!fix.contains("set upstream.ca_file"), "{check}");
    assert!(
        fix.contains(&format!("upstream.fingerprint = \"{fp}\"")),
        "{check}"
    );
}

#[test]
fn the_crate_forbids_unsafe_code_and_ci_runs_clippy_and_fmt() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for f in ["src/lib.rs", "src/main.rs"] {
        let text = std::fs::read_to_string(root.join(f)).unwrap();
        assert!(text.contains("#![forbid(unsafe_code)]"), "{f}");
    }
    let ci = std::fs::read_to_string(root.join(".ci/run")).unwrap();
    let at = |s: &str| ci.find(s).unwrap_or_else(|| panic!(".ci/run lacks {s}"));
    assert!(at("cargo fmt") < at("exec bash tests/run"));
    assert!(at("clippy --all-targets") < at("exec bash tests/run"));
}
