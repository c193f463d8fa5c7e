//! `crmproxy serve` as a child process for one test: temp data dir, listeners on port
//! 0, the "listening imap|imaps ADDR" lines parsed from stderr, killed on drop.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Dovecot;

/// How the proxy reaches the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    Plain,
    Implicit,
    Starttls,
}

/// What to start the proxy with.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    pub upstream_mode: Upstream,
    /// Upstream address; by default the private Dovecot's port for the mode.
    pub upstream: Option<String>,
    /// Data dir; by default a fresh temp dir.
    pub data_dir: Option<PathBuf>,
    /// Extra environment (e.g. RUST_LOG).
    pub env: Vec<(String, String)>,
    /// Skip waiting for listening lines (for start-up failures).
    pub expect_failure: bool,
    /// Written to `<data_dir>/crmproxy.toml` before the start, when set.
    pub config_toml: Option<String>,
    /// Do not pass `--upstream-ca`: only the system roots are trusted.
    pub without_upstream_ca: bool,
    /// Start the pane too (on a free loopback port; its address in `Proxy::pane`).
    pub pane: bool,
    /// More arguments for `crmproxy serve`.
    pub args: Vec<String>,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            upstream_mode: Upstream::Plain,
            upstream: None,
            data_dir: None,
            env: Vec::new(),
            expect_failure: false,
            without_upstream_ca: false,
            config_toml: None,
            pane: false,
            args: Vec::new(),
        }
    }
}

pub struct Proxy {
    child: Child,
    _tmp: Option<tempfile::TempDir>,
    pub data_dir: PathBuf,
    pub imap: SocketAddr,
    pub imaps: SocketAddr,
    /// The pane's address, when started with `ProxyOptions::pane`.
    pub pane: Option<SocketAddr>,
    stderr: Arc<Mutex<String>>,
}

pub fn crmproxy_bin() -> &'static str {
    env!("CARGO_BIN_EXE_crmproxy")
}

impl Proxy {
    /// Start the proxy against the private Dovecot in plain upstream mode.
    pub fn start(dv: &Dovecot) -> Proxy {
        Proxy::start_with(dv, ProxyOptions::default())
    }

    pub fn start_with(dv: &Dovecot, opts: ProxyOptions) -> Proxy {
        let (tmp, data_dir) = match &opts.data_dir {
            Some(d) => (None, d.clone()),
            None => {
                let t = tempfile::Builder::new()
                    .prefix("crmproxy-test-data-")
                    .tempdir()
                    .unwrap();
                let p = t.path().to_owned();
                (Some(t), p)
            }
        };
        if let Some(text) = &opts.config_toml {
            std::fs::write(data_dir.join("crmproxy.toml"), text).unwrap();
        }
        let (mode, default_up) = match opts.upstream_mode {
            Upstream::Plain => ("plain", format!("127.0.0.1:{}", dv.imap_port)),
            Upstream::Starttls => ("starttls", format!("localhost:{}", dv.imap_port)),
            Upstream::Implicit => ("implicit", format!("localhost:{}", dv.imaps_port)),
        };
        let upstream = opts.upstream.clone().unwrap_or(default_up);
        let mut cmd = Command::new(crmproxy_bin());
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--upstream")
            .arg(&upstream)
            .arg("--upstream-tls")
            .arg(mode)
            .args(["--imap", "127.0.0.1:0", "--imaps", "127.0.0.1:0", "--pane"])
            .arg(if opts.pane { "127.0.0.1:0" } else { "off" })
            .env_remove("RUST_LOG")
            .env_remove("CRMPROXY_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if !opts.without_upstream_ca {
            cmd.arg("--upstream-ca").arg(&dv.ca_file);
        }
        cmd.args(&opts.args);
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        super::die_with_parent(&mut cmd, libc::SIGKILL);
        let mut child = cmd.spawn().expect("spawn crmproxy serve");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        {
            let err = child.stderr.take().unwrap();
            let buf = stderr.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines() {
                    let Ok(line) = line else { break };
                    buf.lock().unwrap().push_str(&line);
                    buf.lock().unwrap().push('\n');
                    let _ = tx.send(line);
                }
            });
        }
        let mut imap = None;
        let mut imaps = None;
        let mut pane = None;
        let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
        if !opts.expect_failure {
            let deadline = Instant::now() + Duration::from_secs(30);
            while imap.is_none() || imaps.is_none() || (opts.pane && pane.is_none()) {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(line) => {
                        if let Some(a) = line.strip_prefix("listening imap ") {
                            imap = Some(a.trim().parse().expect("imap address"));
                        } else if let Some(a) = line.strip_prefix("listening imaps ") {
                            imaps = Some(a.trim().parse().expect("imaps address"));
                        } else if let Some(a) = line.strip_prefix("listening pane ") {
                            pane = Some(a.trim().parse().expect("pane address"));
                        }
                    }
                    Err(_) => {
                        let _ = child.kill();
                        panic!(
                            "crmproxy serve did not report its listeners; stderr:\n{}",
                            stderr.lock().unwrap()
                        );
                    }
                }
            }
        }
        Proxy {
            child,
            _tmp: tmp,
            data_dir,
            imap: imap.unwrap_or(unspecified),
            imaps: imaps.unwrap_or(unspecified),
            pane,
            stderr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the proxy wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The CA the proxy's client-side certificate chains to.
    pub fn ca_file(&self) -> PathBuf {
        self.data_dir.join("certs").join("ca.pem")
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Wait for the process to exit by itself.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Send SIGTERM and wait for the exit status.
    pub fn terminate(&mut self, within: Duration) -> Option<ExitStatus> {
        // SAFETY: signalling our own child by its pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        self.wait_exit(within)
    }

    /// Resident memory of the proxy in KiB (VmRSS), and the peak (VmHWM).
    pub fn rss_kib(&self) -> (u64, u64) {
        proc_status_kib(self.child.id())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// VmRSS and VmHWM of a process, in KiB.
pub fn proc_status_kib(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let get = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (get("VmRSS:"), get("VmHWM:"))
}

/// Run `crmproxy init --data-dir DIR` and return its output; panics when it fails.
pub fn run_init(data_dir: &Path, extra: &[&str]) -> std::process::Output {
    let out = Command::new(crmproxy_bin())
        .arg("init")
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .env_remove("CRMPROXY_CONFIG")
        .output()
        .expect("run crmproxy init");
    out
}
