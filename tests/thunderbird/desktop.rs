//! A real Thunderbird on a private X server for the tests: Xvfb (no TCP listener),
//! a profile made here with one IMAP account pointed at the proxy, xdotool for the
//! keyboard, ImageMagick's `import` for screenshots. Every child dies with the test
//! (PR_SET_PDEATHSIG) and is killed on drop; Thunderbird's HOME is a temp dir.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::die_with_parent;

/// The programs the Thunderbird test needs that are not on this machine.
pub fn missing_tools() -> Vec<&'static str> {
    ["thunderbird", "Xvfb", "xdotool", "import"]
        .into_iter()
        .filter(|t| {
            Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .stdout(Stdio::null())
                .status()
                .map(|s| !s.success())
                .unwrap_or(true)
        })
        .collect()
}

/// Poll `check` every 200 ms until it gives `Some`, for at most `within`.
pub fn poll<T>(within: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// A private X server.
pub struct Xvfb {
    child: Child,
    pub display: String,
}

impl Xvfb {
    pub fn start() -> Xvfb {
        // The first display number with neither a socket nor a lock file.
        let n = (90..200)
            .find(|n| {
                !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                    && !Path::new(&format!("/tmp/.X{n}-lock")).exists()
            })
            .expect("a free X display number");
        let display = format!(":{n}");
        let mut cmd = Command::new("Xvfb");
        cmd.args([&display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        die_with_parent(&mut cmd, libc::SIGKILL);
        let child = cmd.spawn().expect("spawn Xvfb");
        let socket = PathBuf::from(format!("/tmp/.X11-unix/X{n}"));
        poll(Duration::from_secs(20), || socket.exists().then_some(()))
            .expect("Xvfb did not start within 20 s");
        Xvfb { child, display }
    }

    /// Run xdotool on this display; its stdout when it succeeds.
    pub fn xdotool(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("xdotool")
            .args(args)
            .env("DISPLAY", &self.display)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The first visible window whose title matches `regex`, waiting up to `within`.
    pub fn wait_window(&self, regex: &str, within: Duration) -> Option<String> {
        poll(within, || {
            self.xdotool(&["search", "--onlyvisible", "--name", regex])
                .and_then(|o| o.lines().next().map(str::to_owned))
        })
    }

    /// Titles of the visible windows (for failure messages).
    pub fn window_titles(&self) -> Vec<String> {
        let ids = self
            .xdotool(&["search", "--onlyvisible", "--name", "."])
            .unwrap_or_default();
        ids.lines()
            .filter_map(|id| self.xdotool(&["getwindowname", id]))
            .map(|t| t.trim().to_string())
            .collect()
    }

    /// Focus window `id` and send it `keys` (xdotool key names).
    pub fn keys(&self, id: &str, keys: &[&str]) {
        let _ = self.xdotool(&["windowactivate", "--sync", id]);
        let _ = self.xdotool(&["windowfocus", "--sync", id]);
        let mut args = vec!["key", "--clearmodifiers", "--delay", "120"];
        args.extend_from_slice(keys);
        self.xdotool(&args)
            .unwrap_or_else(|| panic!("xdotool key {keys:?} failed"));
    }

    /// Type `text` into window `id`.
    pub fn type_text(&self, id: &str, text: &str) {
        let _ = self.xdotool(&["windowactivate", "--sync", id]);
        self.xdotool(&["type", "--delay", "40", text])
            .expect("xdotool type failed");
    }

    /// The whole screen as a PNG at `path`.
    pub fn screenshot(&self, path: &Path) {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        let ok = Command::new("import")
            .args(["-display", &self.display, "-window", "root"])
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "import could not take a screenshot to {}",
            path.display()
        );
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// Preferences of a fresh profile: one IMAP account on the proxy's plain port
/// (no STARTTLS, cleartext password, fine on loopback), Local Folders, and no
/// first-run dialog, start page or network use beyond loopback.
pub fn profile_prefs(login: &str, imap: SocketAddr) -> String {
    let host = imap.ip().to_string();
    let port = imap.port();
    let prefs: Vec<(&str, String)> = vec![
        (
            "mail.accountmanager.accounts",
            "\"account1,account2\"".into(),
        ),
        ("mail.accountmanager.defaultaccount", "\"account1\"".into()),
        (
            "mail.accountmanager.localfoldersserver",
            "\"server2\"".into(),
        ),
        ("mail.account.account1.identities", "\"id1\"".into()),
        ("mail.account.account1.server", "\"server1\"".into()),
        ("mail.account.account2.server", "\"server2\"".into()),
        ("mail.account.lastKey", "2".into()),
        ("mail.identity.id1.fullName", "\"Sales Person\"".into()),
        ("mail.identity.id1.useremail", format!("\"{login}\"")),
        ("mail.identity.id1.valid", "true".into()),
        ("mail.server.server1.type", "\"imap\"".into()),
        ("mail.server.server1.hostname", format!("\"{host}\"")),
        ("mail.server.server1.realhostname", format!("\"{host}\"")),
        ("mail.server.server1.port", port.to_string()),
        ("mail.server.server1.socketType", "0".into()),
        ("mail.server.server1.authMethod", "3".into()),
        ("mail.server.server1.userName", format!("\"{login}\"")),
        ("mail.server.server1.realuserName", format!("\"{login}\"")),
        ("mail.server.server1.name", "\"CRM test\"".into()),
        (
            "mail.server.server1.directory-rel",
            format!("\"[ProfD]ImapMail/{host}\""),
        ),
        ("mail.server.server1.login_at_startup", "true".into()),
        ("mail.server.server1.check_new_mail", "true".into()),
        (
            "mail.server.server1.autosync_offline_stores",
            "false".into(),
        ),
        ("mail.server.server2.type", "\"none\"".into()),
        ("mail.server.server2.hostname", "\"Local Folders\"".into()),
        ("mail.server.server2.name", "\"Local Folders\"".into()),
        ("mail.server.server2.userName", "\"nobody\"".into()),
        (
            "mail.server.server2.directory-rel",
            "\"[ProfD]Mail/Local Folders\"".into(),
        ),
        ("mail.shell.checkDefaultClient", "false".into()),
        ("mailnews.start_page.enabled", "false".into()),
        ("mail.provider.suppress_dialog_on_startup", "true".into()),
        ("mail.spotlight.firstRunDone", "true".into()),
        ("mail.rights.version", "1".into()),
        ("mail.biff.play_sound", "false".into()),
        ("mail.biff.show_alert", "false".into()),
        ("app.donation.eoy.version.viewed", "999".into()),
        ("mail.inappnotifications.enabled", "false".into()),
        ("datareporting.policy.dataSubmissionEnabled", "false".into()),
        (
            "datareporting.policy.dataSubmissionPolicyBypassNotification",
            "true".into(),
        ),
        ("datareporting.healthreport.uploadEnabled", "false".into()),
        ("toolkit.telemetry.reportingpolicy.firstRun", "false".into()),
        ("app.update.auto", "false".into()),
        ("extensions.update.enabled", "false".into()),
        ("extensions.getAddons.cache.enabled", "false".into()),
        ("network.captive-portal-service.enabled", "false".into()),
        ("network.connectivity-service.enabled", "false".into()),
        ("mailnews.auto_config.fetchFromISP.enabled", "false".into()),
        ("services.settings.server", "\"http://127.0.0.1:9/\"".into()),
        ("browser.region.network.url", "\"\"".into()),
        ("ui.prefersReducedMotion", "1".into()),
    ];
    let mut s = String::from("// Made by tests/thunderbird.rs.\n");
    for (name, value) in prefs {
        s.push_str(&format!("user_pref(\"{name}\", {value});\n"));
    }
    s
}

/// Thunderbird running with `profile` on `x`'s display.
pub struct Thunderbird {
    child: Child,
}

impl Thunderbird {
    pub fn start(x: &Xvfb, profile: &Path, home: &Path, log: &Path) -> Thunderbird {
        let log = std::fs::File::create(log).expect("create the Thunderbird log");
        let mut cmd = Command::new("thunderbird");
        cmd.arg("--profile")
            .arg(profile)
            .arg("--no-remote")
            .env("DISPLAY", &x.display)
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .env("MOZ_CRASHREPORTER_DISABLE", "1")
            .env_remove("WAYLAND_DISPLAY")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        die_with_parent(&mut cmd, libc::SIGKILL);
        Thunderbird {
            child: cmd.spawn().expect("spawn thunderbird"),
        }
    }

    /// Whether it has exited, waiting up to `within`.
    pub fn wait_exit(&mut self, within: Duration) -> bool {
        poll(within, || self.child.try_wait().ok().flatten()).is_some()
    }
}

impl Drop for Thunderbird {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}
