//! The gateway tests' harness: a CRM store filled through the library (users,
//! a contact, an account), a config file naming mailboxes on the private
//! Dovecot, a `crmproxy gateway` child (its stderr in a file), its admin
//! endpoints, `gateway status`/`gateway test`, and the mailboxes' flags read
//! with Python's imaplib.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crmproxy::store::*;

use super::common::{self, Dovecot, RawImap, PASSWORD};
use super::store_support::{account, addr, contact, user};

/// How long anything the gateway should do may take before a test fails.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A contact every store has: mail from them is "from a record".
pub const CONTACT: &str = "dana@customer.example";

/// One test's CRM, config and mailboxes.
pub struct Setup {
    pub dir: tempfile::TempDir,
    /// PostgreSQL URL, when the store is there (else sled in `dir/store`).
    pub url: Option<String>,
    pub account: RecordRef,
    pub other_account: RecordRef,
}

impl Setup {
    /// A store with a user per owner login (use_app), the contact and two accounts.
    pub fn new(owners: &[String], url: Option<String>) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let store: Box<dyn CrmStore> = match &url {
            Some(u) => Box::new(PgStore::open(&PgOptions::new(u)).unwrap()),
            None => Box::new(SledStore::open(dir.path().join("store")).unwrap()),
        };
        for o in owners {
            store.put_record(Record::User(user(o, o))).unwrap();
        }
        store
            .put_record(Record::Contact(contact("Dana", "Sender", CONTACT)))
            .unwrap();
        let a = store
            .put_record(Record::Account(account("Contoso")))
            .unwrap();
        let b = store
            .put_record(Record::Account(account("Fabrikam")))
            .unwrap();
        let r = |rec: &Record| RecordRef {
            kind: rec.kind(),
            id: rec.id(),
        };
        let (account, other_account) = (r(&a), r(&b));
        store.close().unwrap();
        drop(store);
        Setup {
            dir,
            url,
            account,
            other_account,
        }
    }

    pub fn store(&self) -> Box<dyn CrmStore> {
        match &self.url {
            Some(u) => Box::new(PgStore::open(&PgOptions::new(u)).unwrap()),
            None => Box::new(SledStore::open(self.dir.path().join("store")).unwrap()),
        }
    }

    /// A private password file (mode as given) holding the Dovecot password.
    pub fn password_file(&self, name: &str, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.dir.path().join(name);
        std::fs::write(&p, format!("{PASSWORD}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    /// Write the config: `[gateway]` settings plus `mailboxes` (TOML text of
    /// `[[gateway.mailbox]]` tables) against `dv`. Returns its path.
    pub fn config(
        &self,
        dv: &Dovecot,
        admin: SocketAddr,
        gateway: &str,
        mailboxes: &str,
    ) -> PathBuf {
        let d = self.dir.path().display();
        let store = match &self.url {
            Some(u) => format!("url = \"{u}\""),
            None => format!("dir = \"{d}/store\""),
        };
        let text = format!(
            "data_dir = \"{d}\"\n[store]\n{store}\n[gateway]\nadmin = \"{admin}\"\n\
             backoff_first_secs = 1\nbackoff_max_secs = 2\n{gateway}\n\
             [gateway.servers.dv]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"plain\"\n\n{mailboxes}",
            dv.imap_port
        );
        let p = self.dir.path().join("gateway.toml");
        std::fs::write(&p, text).unwrap();
        p
    }
}

/// A `[[gateway.mailbox]]` table for Dovecot user `login` (password from `$var`).
pub fn mailbox(login: &str, rules: &str) -> String {
    format!(
        "[[gateway.mailbox]]\nowner = \"{login}\"\nserver = \"dv\"\nlogin = \"{login}\"\n\
         password_env = \"GW_TEST_PASSWORD\"\n{rules}\n"
    )
}

/// An owner login (an e-mail address, so that it is also the CRM login).
pub fn owner(prefix: &str) -> String {
    format!("{}@gw.example", common::unique_user(prefix))
}

/// A message with this Message-ID, sender and subject (CRLF, small).
pub fn message(id: &str, from: &str, subject: &str, extra: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: someone@gw.example\r\nSubject: {subject}\r\n\
         Date: Tue, 24 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{id}>\r\n{extra}\
         MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nThe body of {id}.\r\n"
    )
    .into_bytes()
}

/// A running `crmproxy gateway`.
pub struct Gateway {
    pub child: Child,
    pub config: PathBuf,
    pub admin: SocketAddr,
    pub log: PathBuf,
}

pub fn crmproxy(config: &Path) -> Command {
    let mut c = Command::new(common::proxy::crmproxy_bin());
    c.arg("--config")
        .arg(config)
        .env("GW_TEST_PASSWORD", PASSWORD)
        // GW_LOG=debug shows what the gateway did, when a test needs looking into.
        .env("RUST_LOG", std::env::var("GW_LOG").unwrap_or("info".into()));
    c
}

impl Gateway {
    /// Start it (extra arguments before the subcommand) and wait for its admin endpoints.
    pub fn start(config: &Path, admin: SocketAddr, extra: &[&str]) -> Gateway {
        let log = config.with_extension(format!("log.{}", common::unique_user("g")));
        let mut cmd = crmproxy(config);
        cmd.args(extra)
            .arg("gateway")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        common::die_with_parent(&mut cmd, libc::SIGKILL);
        let child = cmd.spawn().expect("run crmproxy gateway");
        let mut g = Gateway {
            child,
            config: config.to_path_buf(),
            admin,
            log,
        };
        let deadline = Instant::now() + PATIENCE;
        while !g.stderr().contains("listening admin") {
            if let Ok(Some(st)) = g.child.try_wait() {
                panic!("gateway exited ({st}):\n{}", g.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "gateway did not start:\n{}",
                g.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        g
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, sig);
        }
    }

    /// SIGTERM, then its exit status (bounded wait).
    pub fn terminate(mut self) -> (std::process::ExitStatus, String) {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return (st, self.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "gateway did not stop:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// kill -9, reaped.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// GET on the admin address: (status code, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.admin, path)
    }

    /// A metric's value summed over its series.
    pub fn metric(&self, name: &str) -> u64 {
        let (_, body) = self.get("/metrics");
        body.lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    /// Wait until the metric reaches `at_least`.
    pub fn wait_metric(&self, name: &str, at_least: u64) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let v = self.metric(name);
            if v >= at_least {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name} stayed at {v} (< {at_least}):\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait until it has judged `count` messages: tracked, found tracked
    /// already, or skipped.
    pub fn wait_judged(&self, count: u64) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let judged = self.metric("crmproxy_gateway_tracked_total")
                + self.metric("crmproxy_gateway_skipped_total");
            if judged >= count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "judged {judged} of {count}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `crmproxy gateway status`: (success, stdout).
    pub fn status(&self) -> (bool, String) {
        let out = crmproxy(&self.config)
            .args(["gateway", "status"])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// Wait until `gateway status` succeeds and its table satisfies `settled`;
    /// returns that table. A mailbox's counts move before its state does (the
    /// keywords are stored and the folder is caught up after a message is
    /// counted), so a test that reads states waits for them here.
    pub fn wait_status(&self, settled: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let (ok, status) = self.status();
            if ok && settled(&status) {
                return status;
            }
            assert!(Instant::now() < deadline, "{status}\n{}", self.stderr());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut t = String::new();
    s.read_to_string(&mut t).unwrap();
    let code = t
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = t
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or("")
        .to_string();
    (code, body)
}

/// Every message's flags in `folder` of `user`, by UID, read with Python's imaplib
/// (EXAMINE: reading them changes nothing).
pub fn flags_by_imaplib(dv: &Dovecot, user: &str, folder: &str) -> Vec<(u32, String)> {
    let script = r#"
import imaplib, os, re, sys
c = imaplib.IMAP4(sys.argv[1], int(sys.argv[2]))
c.login(sys.argv[3], os.environ["IMAP_PASSWORD"])
typ, _ = c.select(sys.argv[4], readonly=True)
assert typ == "OK", typ
typ, data = c.uid("FETCH", "1:*", "(FLAGS)")
for d in data:
    if not d:
        continue
    t = d.decode() if isinstance(d, bytes) else d[0].decode()
    m = re.search(r"UID (\d+)", t)
    f = re.search(r"FLAGS \(([^)]*)\)", t)
    if m and f:
        print(m.group(1), f.group(1))
c.logout()
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg("127.0.0.1")
        .arg(dv.imap_port.to_string())
        .arg(user)
        .arg(folder)
        .env("IMAP_PASSWORD", PASSWORD)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (u, f) = l.split_once(' ').unwrap_or((l, ""));
            // \Recent is the server's session flag, not the user's.
            let f = f
                .split_whitespace()
                .filter(|x| *x != "\\Recent")
                .collect::<Vec<_>>();
            Some((u.parse().ok()?, f.join(" ")))
        })
        .collect()
}

/// Wait until `user`'s `folder` has `uids` marked `$CRM_Tracked` (a direct client).
pub fn wait_tracked(dv: &Dovecot, user: &str, folder: &str, count: usize) {
    let mut c = RawImap::login(dv.imap_addr(), user, PASSWORD);
    let deadline = Instant::now() + PATIENCE;
    loop {
        assert!(c.cmd(&format!("EXAMINE {folder}")).ok());
        let r = c.cmd("UID SEARCH KEYWORD $CRM_Tracked");
        let n = r
            .text()
            .lines()
            .find(|l| l.starts_with("* SEARCH"))
            .map(|l| l.split_whitespace().count() - 2)
            .unwrap_or(0);
        if n >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{user} {folder}: {n} of {count} tracked"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Deliver `raw` into `user`'s `folder` with a direct APPEND.
pub fn deliver(dv: &Dovecot, user: &str, folder: &str, raw: &[u8]) {
    let mut c = RawImap::login(dv.imap_addr(), user, PASSWORD);
    let r = c.append(folder, raw);
    assert!(r.ok(), "APPEND: {}", r.tagged);
}

/// The owner's tracking record of a Message-ID, and its activity.
pub fn tracked(
    store: &dyn CrmStore,
    owner: &str,
    message_id: &str,
) -> Option<(TrackingRecord, Activity)> {
    let u = store.user_by_login(&addr(owner)).unwrap().unwrap();
    let mid = MessageId::parse(message_id).unwrap();
    let t = store.tracking(u.id, &mid).unwrap()?;
    let a = store.activity(t.activity?).unwrap()?;
    Some((t, a))
}

/// A free loopback address for the admin endpoints.
pub fn admin_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], common::free_port()))
}
