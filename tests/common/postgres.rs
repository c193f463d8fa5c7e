//! A private PostgreSQL 15 (Debian's `postgresql`) for one test binary, like the
//! private Dovecot: `initdb --no-sync` into a temp dir, a server on a free
//! loopback port (and a socket in that dir) with `fsync=off`, stopped and removed
//! when the test binary exits. Each test takes a fresh database ([`fresh_db`]).
//!
//! PostgreSQL refuses to run as root: when the tests run as root, initdb and the
//! server run as the `postgres` user (the `uid`/`gid` of the child, which is what
//! `runuser -u postgres --` would do, without a wrapper process between).
//!
//! Self-contained (no `super::`), so a store test includes it alone:
//! `#[path = "common/postgres.rs"] mod postgres;`.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Where Debian puts the server programs.
pub const BIN: &str = "/usr/lib/postgresql/15/bin";
/// The password of [`TEAM_ROLE`], a role that must log in with it (SCRAM).
pub const TEAM_PASSWORD: &str = "pg-Team-7fK2q9";
pub const TEAM_ROLE: &str = "crm_team";

pub struct Postgres {
    pub dir: PathBuf,
    pub port: u16,
    pub pid: u32,
    admin: Mutex<postgres::Client>,
}

static PG: OnceLock<Postgres> = OnceLock::new();

/// The private PostgreSQL of this test binary, started on first use.
pub fn postgres() -> &'static Postgres {
    PG.get_or_init(|| {
        let pg = Postgres::start().unwrap_or_else(|e| panic!("{e}"));
        // SAFETY: registering a plain extern "C" function.
        unsafe {
            libc::atexit(stop_at_exit);
        }
        pg
    })
}

/// A new, empty database and the URL of it (superuser, no password, loopback).
pub fn fresh_db() -> String {
    postgres().fresh_db()
}

extern "C" fn stop_at_exit() {
    if let Some(pg) = PG.get() {
        pg.stop();
    }
}

/// The uid and gid of the `postgres` user when we are root (else none: run as we are).
fn run_as() -> Result<Option<(u32, u32)>, String> {
    if rustix_is_root() {
        let id = |flag: &str| -> Result<u32, String> {
            let out = Command::new("id")
                .args([flag, "postgres"])
                .output()
                .map_err(|e| format!("id: {e}"))?;
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .map_err(|_| "no `postgres` user: apt-get install postgresql".to_string())
        };
        Ok(Some((id("-u")?, id("-g")?)))
    } else {
        Ok(None)
    }
}

fn rustix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn command(program: &str, who: Option<(u32, u32)>) -> Command {
    let mut cmd = Command::new(Path::new(BIN).join(program));
    if let Some((uid, gid)) = who {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot find a free loopback port")
}

impl Postgres {
    fn start() -> Result<Postgres, String> {
        if !Path::new(BIN).join("postgres").exists() {
            return Err(format!(
                "no PostgreSQL 15 in {BIN}: apt-get install postgresql postgresql-contrib"
            ));
        }
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = PathBuf::from(format!(
            "/tmp/crmproxy-pg-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let who = run_as()?;
        if let Some((uid, gid)) = who {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
        }
        let data = dir.join("data");
        let out = command("initdb", who)
            .args([
                "--no-sync",
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "-D",
            ])
            .arg(&data)
            .stdout(Stdio::null())
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        // The superuser without a password; every other role with its password.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\n\
             host all postgres 127.0.0.1/32 trust\n\
             host all all 127.0.0.1/32 scram-sha-256\n",
        )
        .map_err(|e| e.to_string())?;
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port();
            match Self::serve(&dir, &data, port, who) {
                Ok(pg) => return Ok(pg),
                Err(e) => last = e,
            }
        }
        Err(format!("cannot start the private PostgreSQL: {last}"))
    }

    fn serve(
        dir: &Path,
        data: &Path,
        port: u16,
        who: Option<(u32, u32)>,
    ) -> Result<Postgres, String> {
        let log = std::fs::File::create(dir.join("postgres.log")).map_err(|e| e.to_string())?;
        if let Some((uid, gid)) = who {
            let _ = std::os::unix::fs::chown(dir.join("postgres.log"), Some(uid), Some(gid));
        }
        let mut cmd = command("postgres", who);
        cmd.arg("-D")
            .arg(data)
            .args(["-p", &port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", dir.display()))
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=300"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        // SAFETY: prctl is async-signal-safe; it runs after the uid change (which
        // would otherwise clear it), so the server dies with this test process.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        // The death signal follows the spawning thread: spawn from one that stays.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("postgres-keeper".into())
            .spawn(move || {
                match cmd.spawn() {
                    Ok(mut child) => {
                        let _ = tx.send(Ok(child.id()));
                        let _ = child.wait();
                    }
                    Err(e) => {
                        let _ = tx.send(Err(format!("cannot run postgres: {e}")));
                    }
                }
                loop {
                    std::thread::park();
                }
            })
            .map_err(|e| e.to_string())?;
        let pid = rx.recv().map_err(|e| e.to_string())??;
        let url = format!("host=127.0.0.1 port={port} user=postgres dbname=postgres");
        let deadline = Instant::now() + Duration::from_secs(30);
        let admin = loop {
            match postgres::Client::connect(&url, postgres::NoTls) {
                Ok(c) => break c,
                Err(e) => {
                    if Instant::now() > deadline || !Path::new(&format!("/proc/{pid}")).exists() {
                        let log =
                            std::fs::read_to_string(dir.join("postgres.log")).unwrap_or_default();
                        return Err(format!("postgres did not come up: {e}\n{log}"));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        };
        let mut pg = Postgres {
            dir: dir.to_owned(),
            port,
            pid,
            admin: Mutex::new(admin),
        };
        pg.admin
            .get_mut()
            .unwrap()
            .batch_execute(&format!(
                "CREATE ROLE {TEAM_ROLE} LOGIN PASSWORD '{TEAM_PASSWORD}'"
            ))
            .map_err(|e| e.to_string())?;
        Ok(pg)
    }

    /// A new database; the URL connects as the superuser.
    pub fn fresh_db(&self) -> String {
        let name = self.create_db();
        format!(
            "postgres://postgres@127.0.0.1:{}/{name}?sslmode=disable",
            self.port
        )
    }

    /// A new database owned by [`TEAM_ROLE`]; its URL has no password in it.
    pub fn team_db(&self) -> String {
        let name = self.create_db();
        self.admin
            .lock()
            .unwrap()
            .batch_execute(&format!("ALTER DATABASE {name} OWNER TO {TEAM_ROLE}"))
            .unwrap();
        format!(
            "postgres://{TEAM_ROLE}@127.0.0.1:{}/{name}?sslmode=disable",
            self.port
        )
    }

    fn create_db(&self) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "t{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        self.admin
            .lock()
            .unwrap()
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        name
    }

    /// Sessions on the database of `url` waiting for notifications on
    /// `channel`: their last statement, done, was `LISTEN channel`.
    pub fn listeners(&self, url: &str, channel: &str) -> i64 {
        let db = url
            .rsplit('/')
            .next()
            .and_then(|d| d.split('?').next())
            .unwrap_or_default();
        self.admin
            .lock()
            .unwrap()
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = $1 AND state = 'idle' AND query = $2",
                &[&db, &format!("LISTEN {channel}")],
            )
            .unwrap()
            .get(0)
    }

    /// Wait until `count` sessions listen on `channel` in the database of `url`
    /// (a LISTEN is asynchronous to whoever starts the listener: a change
    /// committed before it misses it).
    pub fn wait_listeners(&self, url: &str, channel: &str, count: i64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let n = self.listeners(url, channel);
            if n >= count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{n} of {count} sessions listen on {channel}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Run SQL as the superuser in the maintenance database.
    pub fn admin_sql(&self, sql: &str) -> Result<(), postgres::Error> {
        self.admin.lock().unwrap().batch_execute(sql)
    }

    fn stop(&self) {
        // SAFETY: signalling the child we started (SIGQUIT: immediate shutdown).
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGQUIT);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Path::new(&format!("/proc/{}", self.pid)).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if std::env::var_os("CRMPROXY_KEEP_POSTGRES").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
