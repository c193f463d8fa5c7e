//! A private Dovecot (Debian's dovecot-imapd 2.3) for one test binary: its own
//! config, base_dir, state, log, Maildirs and TLS certificate in a temp dir, an IMAP
//! listener (STARTTLS offered) and an IMAPS listener on free loopback ports, and an
//! LMTP listener for delivery when dovecot-lmtpd is installed.
//!
//! Any user name logs in with [`PASSWORD`]; each test uses its own user name, so its
//! mailbox starts empty with INBOX, Drafts, Sent and Trash (SPECIAL-USE).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The one password the private Dovecot accepts, for every user name.
pub const PASSWORD: &str = "dv-Secret-9f3kQ2";

/// The password of every delegate ("master user") for SASL PLAIN with an authzid.
pub const MASTER_PASSWORD: &str = "dv-Delegate-4kR8";

/// Where the Dovecot binary is (Debian puts it in /usr/sbin, often not on PATH).
fn dovecot_bin() -> PathBuf {
    let sbin = PathBuf::from("/usr/sbin/dovecot");
    if sbin.exists() {
        sbin
    } else {
        PathBuf::from("dovecot")
    }
}

/// Dovecot's LMTP server (package dovecot-lmtpd), when installed.
const LMTP_BIN: &str = "/usr/lib/dovecot/lmtp";

fn doveadm_bin() -> PathBuf {
    let bin = PathBuf::from("/usr/bin/doveadm");
    if bin.exists() {
        bin
    } else {
        PathBuf::from("doveadm")
    }
}

/// A running private Dovecot.
pub struct Dovecot {
    /// Temp dir holding everything of this instance; removed at exit unless
    /// CRMPROXY_KEEP_DOVECOT is set (to read a failing test's dovecot.log).
    pub dir: PathBuf,
    pub imap_port: u16,
    pub imaps_port: u16,
    /// The CA that signed Dovecot's certificate (for `--upstream-ca`).
    pub ca_file: PathBuf,
    pub conf: PathBuf,
    pub pid: u32,
}

static DOVECOT: OnceLock<Dovecot> = OnceLock::new();

/// Dovecots configured otherwise (see [`dovecot_with`]), by their extra config.
static VARIANTS: OnceLock<std::sync::Mutex<Vec<(&'static str, &'static Dovecot)>>> =
    OnceLock::new();

/// A second private Dovecot whose config ends with `extra` (later settings win:
/// e.g. `imap_capability = …` without UIDPLUS, a quota, another namespace), started
/// on first use and stopped at exit like [`dovecot`].
pub fn dovecot_with(extra: &'static str) -> &'static Dovecot {
    let list = VARIANTS.get_or_init(Default::default);
    let mut list = list.lock().unwrap();
    if let Some((_, d)) = list.iter().find(|(e, _)| *e == extra) {
        return d;
    }
    let d: &'static Dovecot = Box::leak(Box::new(
        Dovecot::start(extra).unwrap_or_else(|e| panic!("{e}")),
    ));
    if list.is_empty() && DOVECOT.get().is_none() {
        // SAFETY: registering a plain extern "C" function.
        unsafe {
            libc::atexit(stop_at_exit);
        }
    }
    list.push((extra, d));
    d
}

/// The private Dovecot of this test binary, started on first use.
pub fn dovecot() -> &'static Dovecot {
    DOVECOT.get_or_init(|| {
        let d = Dovecot::start("").unwrap_or_else(|e| panic!("{e}"));
        if VARIANTS.get().is_none_or(|v| v.lock().unwrap().is_empty()) {
            // SAFETY: registering a plain extern "C" function.
            unsafe {
                libc::atexit(stop_at_exit);
            }
        }
        d
    })
}

/// Stop Dovecot and remove its directory when the test binary exits (the death
/// signal alone would stop it, but leave its Maildirs behind).
extern "C" fn stop_at_exit() {
    let variants: Vec<&Dovecot> = VARIANTS
        .get()
        .map(|v| {
            v.lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|(_, d)| *d)
                .collect()
        })
        .unwrap_or_default();
    for d in DOVECOT.get().into_iter().chain(variants) {
        // SAFETY: signalling the child we started.
        unsafe {
            libc::kill(d.pid as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while Path::new(&format!("/proc/{}", d.pid)).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if std::env::var_os("CRMPROXY_KEEP_DOVECOT").is_none() {
            let _ = std::fs::remove_dir_all(&d.dir);
        }
    }
}

impl Dovecot {
    fn start(extra: &str) -> Result<Dovecot, String> {
        let mut last_err = String::new();
        // A port taken between choosing and binding makes Dovecot fail: try again.
        for _ in 0..3 {
            match Self::start_once(extra) {
                Ok(d) => return Ok(d),
                Err(e) => last_err = e,
            }
        }
        Err(format!("cannot start the private Dovecot: {last_err}"))
    }

    fn start_once(extra: &str) -> Result<Dovecot, String> {
        // Under /tmp rather than $TMPDIR: Dovecot's unprivileged users must be able to
        // walk down to the Maildirs, and a private TMPDIR (e.g. under /root) forbids it.
        let base = if Path::new("/tmp").is_dir() {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let dir = tempfile::Builder::new()
            .prefix("crmproxy-dovecot-")
            .tempdir_in(base)
            .map_err(|e| e.to_string())?
            .keep();
        // Dovecot's unprivileged processes must be able to reach the Maildirs.
        set_mode(&dir, 0o755);
        for sub in ["run", "state", "mail"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(|e| e.to_string())?;
        }
        chown_to_dovecot(&dir.join("mail"))?;
        let (certs, _) = crmproxy::tls::ensure_certs_in(&dir.join("certs"), 1)
            .map_err(|e| format!("test certificate: {e}"))?;
        let imap_port = super::free_port();
        let imaps_port = super::free_port();
        let lmtp_port = Path::new(LMTP_BIN).exists().then(super::free_port);
        let conf = dir.join("dovecot.conf");
        let ports = Ports {
            imap: imap_port,
            imaps: imaps_port,
            lmtp: lmtp_port,
        };
        std::fs::write(
            &conf,
            config_text(&dir, &ports, &certs.cert, &certs.key) + extra,
        )
        .map_err(|e| e.to_string())?;

        let (tx, rx) = std::sync::mpsc::channel();
        let bin = dovecot_bin();
        let conf2 = conf.clone();
        // PR_SET_PDEATHSIG fires when the spawning *thread* ends, so spawn from a thread
        // that lives as long as the test process.
        std::thread::Builder::new()
            .name("dovecot-keeper".into())
            .spawn(move || {
                let mut cmd = Command::new(bin);
                cmd.arg("-F")
                    .arg("-c")
                    .arg(&conf2)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped());
                super::die_with_parent(&mut cmd, libc::SIGTERM);
                match cmd.spawn() {
                    Ok(mut child) => {
                        let _ = tx.send(Ok(child.id()));
                        let mut err = String::new();
                        if let Some(mut e) = child.stderr.take() {
                            use std::io::Read;
                            let _ = e.read_to_string(&mut err);
                        }
                        let status = child.wait();
                        if !err.is_empty() {
                            eprintln!("private dovecot exited ({status:?}): {err}");
                        }
                        // Keep the thread (and so the death signal's parent) alive.
                        loop {
                            std::thread::park();
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(format!(
                            "cannot run dovecot: {e} (apt-get install dovecot-imapd)"
                        )));
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        let pid = rx.recv().map_err(|e| e.to_string())??;
        let d = Dovecot {
            dir,
            imap_port,
            imaps_port,
            ca_file: certs.ca_cert,
            conf,
            pid,
        };
        d.wait_ready()?;
        Ok(d)
    }

    /// Wait until a LOGIN succeeds (the auth process starts after the listeners).
    fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut last = String::new();
        while Instant::now() < deadline {
            match self.try_login("harness-ready") {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
            if !Path::new(&format!("/proc/{}", self.pid)).exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "private Dovecot not ready: {last}; log:\n{}",
            std::fs::read_to_string(self.dir.join("dovecot.log")).unwrap_or_default()
        ))
    }

    fn try_login(&self, user: &str) -> Result<(), String> {
        let s = TcpStream::connect(self.imap_addr()).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok();
        let mut r = BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
        let mut w = s;
        let mut line = String::new();
        r.read_line(&mut line).map_err(|e| e.to_string())?;
        if line.contains("Waiting for authentication") {
            return Err("auth not ready".into());
        }
        write!(w, "a LOGIN {user} {PASSWORD}\r\nb LOGOUT\r\n").map_err(|e| e.to_string())?;
        loop {
            line.clear();
            if r.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
                return Err("closed".into());
            }
            if line.starts_with("a OK") {
                return Ok(());
            }
            if line.starts_with("a ") {
                return Err(line);
            }
        }
    }

    pub fn imap_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.imap_port))
    }

    pub fn imaps_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.imaps_port))
    }

    /// The LMTP listener's address, as the config it runs with says (there only
    /// when dovecot-lmtpd is installed; its process starts on the first
    /// connection, so it costs the start nothing). Panics, saying what to
    /// install, without it.
    pub fn lmtp_addr(&self) -> SocketAddr {
        let conf = std::fs::read_to_string(&self.conf).unwrap_or_default();
        let port = conf
            .split_once("inet_listener lmtp {")
            .and_then(|(_, rest)| rest.lines().find_map(|l| l.trim().strip_prefix("port = ")))
            .and_then(|p| p.trim().parse::<u16>().ok())
            .unwrap_or_else(|| {
                panic!("no LMTP: {LMTP_BIN} is missing (apt-get install dovecot-lmtpd)")
            });
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// The Maildir of `user` (exists once the user has logged in).
    pub fn maildir(&self, user: &str) -> PathBuf {
        self.dir.join("mail").join(user).join("Maildir")
    }

    /// Create `user`'s Maildir INBOX and drop `messages` into `new/` directly (fast
    /// filling for big mailboxes); Dovecot indexes them at the next SELECT.
    pub fn fill_inbox(&self, user: &str, messages: impl Iterator<Item = Vec<u8>>) {
        let md = self.maildir(user);
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(md.join(sub)).unwrap();
        }
        for (i, m) in messages.enumerate() {
            let name = format!(
                "{}.M{i}P{}.harness,S={}",
                1_700_000_000 + i,
                std::process::id(),
                m.len()
            );
            std::fs::write(md.join("new").join(name), m).unwrap();
        }
        chown_tree_to_dovecot(&self.dir.join("mail").join(user));
    }

    /// Disconnect every session of `user` (`doveadm kick`): the upstream drops.
    pub fn kick(&self, user: &str) {
        let out = Command::new(doveadm_bin())
            .arg("-c")
            .arg(&self.conf)
            .arg("kick")
            .arg(user)
            .output()
            .expect("run doveadm");
        assert!(
            out.status.success(),
            "doveadm kick: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// How many IMAP sessions `user` has open on this Dovecot (`doveadm who -1`).
    pub fn sessions(&self, user: &str) -> usize {
        let out = Command::new(doveadm_bin())
            .arg("-c")
            .arg(&self.conf)
            .args(["who", "-1", user])
            .output()
            .expect("run doveadm");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.split_whitespace().next() == Some(user))
            .count()
    }

    /// Wait (bounded) until `user` has no session left; returns the count then.
    pub fn wait_sessions_gone(&self, user: &str) -> usize {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let n = self.sessions(user);
            if n == 0 || Instant::now() > deadline {
                return n;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The Dovecot log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dovecot.log")).unwrap_or_default()
    }
}

/// The listeners' ports of one Dovecot.
struct Ports {
    imap: u16,
    imaps: u16,
    lmtp: Option<u16>,
}

fn config_text(dir: &Path, ports: &Ports, cert: &Path, key: &Path) -> String {
    let d = dir.display();
    let (imap_port, imaps_port) = (ports.imap, ports.imaps);
    // LMTP only when its binary is there: Dovecot refuses to start a protocol it
    // cannot run, and every other test needs no LMTP.
    let (protocols, lmtp) = match ports.lmtp {
        Some(port) => (
            "imap lmtp",
            format!(
                "service lmtp {{\n  inet_listener lmtp {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n}}\n"
            ),
        ),
        None => ("imap", String::new()),
    };
    let text = format!(
        r#"# Private Dovecot of the crmproxy test harness.
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = {protocols}
listen = 127.0.0.1
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = 1
mail_location = maildir:{d}/mail/%u/Maildir
mail_fsync = never
verbose_proctitle = yes
mail_max_userip_connections = 5000
default_process_limit = 5000
default_client_limit = 20000
# Delegates: SASL PLAIN with authzid = owner, authcid = any name, and MASTER_PASSWORD
# (or LOGIN "owner*delegate") logs in to the owner's mailbox.
auth_master_user_separator = *
passdb {{
  driver = static
  args = password={MASTER_PASSWORD}
  master = yes
  result_success = continue
}}
passdb {{
  driver = static
  args = password={PASSWORD}
}}
userdb {{
  driver = static
  # allow_all_users: LMTP may deliver to any user name, as IMAP may log in with any.
  args = uid=dovecot gid=dovecot home={d}/mail/%u allow_all_users=yes
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Drafts {{
    special_use = \Drafts
    auto = subscribe
  }}
  mailbox Sent {{
    special_use = \Sent
    auto = subscribe
  }}
  mailbox Trash {{
    special_use = \Trash
    auto = subscribe
  }}
}}
service imap-login {{
  inet_listener imap {{
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = {imaps_port}
    ssl = yes
  }}
  service_count = 0
  client_limit = 5000
  process_min_avail = 1
}}
# COMPRESS=DEFLATE is offered, so the tests can see the proxy remove it.
mail_plugins = zlib
protocol imap {{
  mail_plugins = zlib imap_zlib
}}
service imap {{
  process_limit = 5000
}}
# No anvil auth penalty: after a failed login Dovecot would delay every later login
# from 127.0.0.1 (up to 15 s), slowing unrelated tests that run at the same time.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"#,
        cert = cert.display(),
        key = key.display(),
    );
    text + &lmtp
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode));
}

fn dovecot_ids() -> Result<(u32, u32), String> {
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| e.to_string())?;
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() > 3 && f[0] == "dovecot" {
            return Ok((f[2].parse().unwrap_or(0), f[3].parse().unwrap_or(0)));
        }
    }
    Err("no `dovecot` user: install dovecot-imapd".into())
}

fn chown_to_dovecot(p: &Path) -> Result<(), String> {
    let (uid, gid) = dovecot_ids()?;
    std::os::unix::fs::chown(p, Some(uid), Some(gid))
        .map_err(|e| format!("chown {}: {e}", p.display()))
}

fn chown_tree_to_dovecot(p: &Path) {
    let _ = chown_to_dovecot(p);
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                chown_tree_to_dovecot(&path);
            } else {
                let _ = chown_to_dovecot(&path);
            }
        }
    }
}
