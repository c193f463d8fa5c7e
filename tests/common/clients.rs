//! Real mail clients driven by the tests: Python's imaplib (scripts in tests/py/),
//! curl's IMAP, and mbsync (isync).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Client-side connection security.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientTls {
    Plain,
    Imaps,
    Starttls,
}

impl ClientTls {
    fn arg(self) -> &'static str {
        match self {
            ClientTls::Plain => "plain",
            ClientTls::Imaps => "imaps",
            ClientTls::Starttls => "starttls",
        }
    }
}

pub fn py_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/py")
        .join(name)
}

/// Run a Python client script; returns (success, stdout, stderr).
pub fn run_python(
    script: &str,
    addr: SocketAddr,
    tls: ClientTls,
    cafile: Option<&Path>,
    user: &str,
    password: &str,
    extra: &[&str],
) -> (bool, String, String) {
    let mut cmd = Command::new("python3");
    cmd.arg(py_script(script))
        .args(["--host", &addr.ip().to_string()])
        .args(["--port", &addr.port().to_string()])
        .args(["--tls", tls.arg()])
        .args(["--user", user])
        .env("IMAP_PASSWORD", password)
        .args(extra);
    if let Some(ca) = cafile {
        cmd.arg("--cafile").arg(ca);
    }
    let out = cmd.output().expect("run python3");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// curl against an IMAP URL (`path` like `/INBOX;UID=1` or `/`), with optional request.
pub fn curl(
    addr: SocketAddr,
    user: &str,
    password: &str,
    path: &str,
    request: Option<&str>,
) -> (bool, Vec<u8>, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["--silent", "--show-error", "--max-time", "60"])
        .arg("--user")
        .arg(format!("{user}:{password}"))
        .arg(format!("imap://{}:{}{}", addr.ip(), addr.port(), path));
    if let Some(r) = request {
        cmd.args(["--request", r]);
    }
    let out = cmd.output().expect("run curl");
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Sync the IMAP account both ways with a local Maildir tree using mbsync; returns
/// (success, output).
pub fn mbsync(
    work: &Path,
    addr: SocketAddr,
    user: &str,
    password: &str,
    maildir: &Path,
) -> (bool, String) {
    std::fs::create_dir_all(maildir).unwrap();
    let state = work.join("mbsync-state");
    std::fs::create_dir_all(&state).unwrap();
    let rc = work.join("mbsyncrc");
    std::fs::write(
        &rc,
        format!(
            "IMAPAccount test\n\
             Host {ip}\n\
             Port {port}\n\
             User {user}\n\
             Pass {password}\n\
             SSLType None\n\
             AuthMechs LOGIN\n\
             \n\
             IMAPStore remote\n\
             Account test\n\
             \n\
             MaildirStore local\n\
             Path {md}/\n\
             Inbox {md}/INBOX\n\
             SubFolders Verbatim\n\
             \n\
             Channel test\n\
             Far :remote:\n\
             Near :local:\n\
             Patterns *\n\
             Create Both\n\
             Expunge Both\n\
             SyncState {state}/\n",
            ip = addr.ip(),
            port = addr.port(),
            md = maildir.display(),
            state = state.display(),
        ),
    )
    .unwrap();
    let mut cmd = Command::new("mbsync");
    cmd.arg("-c").arg(&rc).arg("-a");
    run_sync_client(cmd, "mbsync (apt-get install isync)")
}

/// Run a sync client; (success, stdout and stderr).
fn run_sync_client(mut cmd: Command, what: &str) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {what}: {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A message a sync client stored, as the bytes it fetched: the client's own header
/// lines dropped (mbsync's `X-TUID:`, offlineimap's `X-OfflineIMAP:`), LF line ends
/// back to CRLF.
pub fn as_fetched(stored: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in stored.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b"X-TUID: ") || line.starts_with(b"X-OfflineIMAP: ") {
            continue;
        }
        match line.strip_suffix(b"\n") {
            Some(l) => {
                out.extend_from_slice(l.strip_suffix(b"\r").unwrap_or(l));
                out.extend_from_slice(b"\r\n");
            }
            None => out.extend_from_slice(line),
        }
    }
    out
}

/// The message contents of a Maildir tree: folder → sorted message bodies (file names
/// and flags differ between syncs; contents must not).
pub fn maildir_contents(root: &Path) -> std::collections::BTreeMap<String, Vec<Vec<u8>>> {
    let mut out = std::collections::BTreeMap::new();
    walk(root, root, &mut out);
    for v in out.values_mut() {
        v.sort();
    }
    out
}

fn walk(root: &Path, dir: &Path, out: &mut std::collections::BTreeMap<String, Vec<Vec<u8>>>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if !p.is_dir() {
            continue;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "cur" || name == "new" {
            let folder = dir
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let entry = out.entry(folder).or_default();
            for m in std::fs::read_dir(&p).unwrap().flatten() {
                entry.push(std::fs::read(m.path()).unwrap());
            }
        } else if name != "tmp" {
            walk(root, &p, out);
        }
    }
}

/// Sync the IMAP account into a local Maildir tree with offlineimap (plain IMAP,
/// no STARTTLS); returns (success, output). Folders are stored with `.` between
/// levels (offlineimap's Maildir default).
pub fn offlineimap(
    work: &Path,
    addr: SocketAddr,
    user: &str,
    password: &str,
    maildir: &Path,
) -> (bool, String) {
    std::fs::create_dir_all(maildir).unwrap();
    let meta = work.join("offlineimap-meta");
    let rc = work.join("offlineimaprc");
    std::fs::write(
        &rc,
        format!(
            "[general]\n\
             accounts = test\n\
             metadata = {meta}\n\
             ui = basic\n\
             \n\
             [Account test]\n\
             localrepository = local\n\
             remoterepository = remote\n\
             \n\
             [Repository local]\n\
             type = Maildir\n\
             localfolders = {md}\n\
             \n\
             [Repository remote]\n\
             type = IMAP\n\
             remotehost = {ip}\n\
             remoteport = {port}\n\
             remoteuser = {user}\n\
             remotepass = {password}\n\
             ssl = no\n\
             starttls = no\n\
             maxconnections = 1\n",
            meta = meta.display(),
            md = maildir.display(),
            ip = addr.ip(),
            port = addr.port(),
        ),
    )
    .unwrap();
    let mut cmd = Command::new("offlineimap");
    cmd.arg("-c").arg(&rc).arg("-o");
    run_sync_client(cmd, "offlineimap (apt-get install offlineimap3)")
}
