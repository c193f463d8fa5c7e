//! Where a gateway mailbox's password comes from: a file readable by its owner
//! only (a file others may read is refused, as ssh refuses a private key), an
//! environment variable, or a command whose first output line is the password
//! (mbsync's `PassCmd`). Passwords never appear in logs or errors.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::imap_client::Credential;

use super::config::MailboxConfig;

/// How long a password command may run.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest password accepted (a file holding something else is a mistake).
pub const MAX_PASSWORD_BYTES: usize = 4096;

/// Why a mailbox has no password.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("cannot read the password file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the password file {path} may be read by others (mode {mode:04o}): refused; run chmod 600 {path}")]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("the environment variable {0} is not set")]
    NoEnv(String),
    #[error("the password command failed: {0}")]
    Command(String),
    #[error("the password is empty")]
    Empty,
    #[error("the password is longer than {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
}

/// The credential of a mailbox, read now.
pub fn credential_of(m: &MailboxConfig) -> Result<Credential, CredentialError> {
    let password = if let Some(path) = &m.password_file {
        from_file(path)?
    } else if let Some(var) = &m.password_env {
        std::env::var_os(var)
            .map(std::os::unix::ffi::OsStringExt::into_vec)
            .ok_or_else(|| CredentialError::NoEnv(var.clone()))?
    } else if let Some(cmd) = &m.password_command {
        from_command(cmd)?
    } else {
        return Err(CredentialError::Empty);
    };
    let password = first_line(password);
    if password.is_empty() {
        return Err(CredentialError::Empty);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(CredentialError::TooLong);
    }
    Ok(Credential::Login {
        user: m.login.as_bytes().to_vec(),
        password,
    })
}

fn from_file(path: &Path) -> Result<Vec<u8>, CredentialError> {
    use std::os::unix::fs::PermissionsExt;
    let read = |source| CredentialError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read)?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(CredentialError::TooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    std::fs::read(path).map_err(read)
}

fn from_command(cmd: &str) -> Result<Vec<u8>, CredentialError> {
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| CredentialError::Command(e.to_string()))?;
    let deadline = std::time::Instant::now() + COMMAND_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(CredentialError::Command(format!(
                    "still running after {} s",
                    COMMAND_TIMEOUT.as_secs()
                )));
            }
            Err(e) => return Err(CredentialError::Command(e.to_string())),
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| CredentialError::Command(e.to_string()))?;
    if !out.status.success() {
        // Its stderr may say why; its stdout might be a password and is not shown.
        let why = String::from_utf8_lossy(&out.stderr);
        let why = why.lines().next().unwrap_or("").trim();
        return Err(CredentialError::Command(format!("{} {why}", out.status)));
    }
    Ok(out.stdout)
}

/// The first line, without its line end.
fn first_line(mut v: Vec<u8>) -> Vec<u8> {
    if let Some(i) = v.iter().position(|&b| b == b'\n') {
        v.truncate(i);
    }
    if v.last() == Some(&b'\r') {
        v.pop();
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mailbox() -> MailboxConfig {
        MailboxConfig {
            name: None,
            owner: "a@example.test".into(),
            server: "s".into(),
            login: "a".into(),
            password_file: None,
            password_env: None,
            password_command: None,
            connections: None,
            rules: Default::default(),
        }
    }

    fn password(c: Credential) -> Vec<u8> {
        match c {
            Credential::Login { password, .. } => password,
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_private_file_gives_its_first_line_and_an_open_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "s3cret\r\nignored\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut m = mailbox();
        m.password_file = Some(f.clone());
        assert_eq!(password(credential_of(&m).unwrap()), b"s3cret");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = credential_of(&m).unwrap_err().to_string();
        assert!(e.contains("0644") && e.contains("chmod 600"), "{e}");
        assert!(!e.contains("s3cret"));
    }

    #[test]
    fn a_command_and_its_failure() {
        let mut m = mailbox();
        m.password_command = Some("printf 'from-cmd\\n'".into());
        assert_eq!(password(credential_of(&m).unwrap()), b"from-cmd");
        m.password_command = Some("echo nope >&2; exit 3".into());
        let e = credential_of(&m).unwrap_err().to_string();
        assert!(e.contains("nope"), "{e}");
        m.password_command = None;
        m.password_env = Some("CRMPROXY_TEST_SURELY_UNSET_VAR".into());
        assert!(matches!(credential_of(&m), Err(CredentialError::NoEnv(_))));
    }
}
