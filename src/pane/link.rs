//! One-time sign-in links. `crmproxy pane-url` (another process than `serve`) makes a
//! random token, prints it inside a link, and leaves only the token's SHA-256, the user
//! and the expiry in a 0600 file under `<data_dir>/pane-tokens/`. The pane consumes the
//! file once: an atomic rename marks it used, so two clicks cannot both sign in.
//! A link file (or directory) that someone else owns, or may write, is refused: it
//! could have been planted by another local user.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::session::random_token;

/// How long a link is valid.
pub const LINK_LIFETIME_SECS: i64 = 10 * 60;
/// Used and expired link files are deleted after this long (they only serve to say
/// "already used" rather than "unknown").
const TOMBSTONE_SECS: i64 = 24 * 3600;

/// Why a link did not sign anyone in.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LinkError {
    #[error("this sign-in link has already been used")]
    Used,
    #[error("this sign-in link has expired")]
    Expired,
    #[error("this sign-in link is not valid")]
    Unknown,
    #[error("this sign-in link is refused: its file {0}")]
    Untrusted(crate::private_files::Untrusted),
    #[error("cannot read or write sign-in links in {dir}: {reason}")]
    Io { dir: PathBuf, reason: String },
}

/// What the link file holds (never the token itself).
#[derive(Debug, Serialize, Deserialize)]
struct LinkFile {
    token_sha256: String,
    user: String,
    /// Unix seconds.
    expires_at: i64,
}

/// The directory of link files.
pub fn token_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("pane-tokens")
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn io_err(dir: &Path, e: impl std::fmt::Display) -> LinkError {
    LinkError::Io {
        dir: dir.to_owned(),
        reason: e.to_string(),
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Make a one-time token for `user`; returns the token (to put in the link, shown once).
pub fn issue(data_dir: &Path, user: &str) -> Result<String, LinkError> {
    issue_with_lifetime(data_dir, user, LINK_LIFETIME_SECS)
}

/// [`issue`] with an explicit lifetime in seconds (tests use a negative one).
pub fn issue_with_lifetime(
    data_dir: &Path,
    user: &str,
    lifetime_secs: i64,
) -> Result<String, LinkError> {
    let dir = token_dir(data_dir);
    create_private_dir(&dir)?;
    sweep(&dir);
    let token = random_token();
    let hash = token_hash(&token);
    let body = serde_json::to_vec(&LinkFile {
        token_sha256: hash.clone(),
        user: user.to_owned(),
        expires_at: now() + lifetime_secs,
    })
    .map_err(|e| io_err(&dir, e))?;
    let path = dir.join(format!("{hash}.json"));
    let mut f = open_private_new(&path).map_err(|e| io_err(&dir, e))?;
    f.write_all(&body)
        .and_then(|_| f.sync_all())
        .map_err(|e| io_err(&dir, e))?;
    Ok(token)
}

/// Consume a token: the user it signs in, or why not. Never succeeds twice.
pub fn consume(data_dir: &Path, token: &str) -> Result<String, LinkError> {
    // Only our own alphabet reaches the file system: no path tricks.
    if token.is_empty()
        || token.len() > 128
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(LinkError::Unknown);
    }
    let dir = token_dir(data_dir);
    match std::fs::symlink_metadata(&dir) {
        Ok(m) => trusted(&dir, &m, true)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(LinkError::Unknown),
        Err(e) => return Err(io_err(&dir, e)),
    }
    let hash = token_hash(token);
    let live = dir.join(format!("{hash}.json"));
    let used = dir.join(format!("{hash}.used"));
    // The rename is the single atomic step that decides who wins the token.
    match std::fs::rename(&live, &used) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(if used.exists() {
                LinkError::Used
            } else {
                LinkError::Unknown
            });
        }
        Err(e) => return Err(io_err(&dir, e)),
    }
    let meta = std::fs::symlink_metadata(&used).map_err(|e| io_err(&dir, e))?;
    trusted(&used, &meta, false)?;
    let text = std::fs::read(&used).map_err(|e| io_err(&dir, e))?;
    let file: LinkFile = serde_json::from_slice(&text).map_err(|_| LinkError::Unknown)?;
    if !super::session::constant_time_eq(&file.token_sha256, &hash) {
        return Err(LinkError::Unknown);
    }
    if file.expires_at <= now() {
        return Err(LinkError::Expired);
    }
    Ok(file.user)
}

fn trusted(path: &Path, meta: &std::fs::Metadata, dir: bool) -> Result<(), LinkError> {
    crate::private_files::check_trusted(meta, dir).map_err(|why| {
        tracing::warn!(path = %path.display(), "refused a sign-in link file: {why}");
        LinkError::Untrusted(why)
    })
}

/// Delete link files that expired (or were used) long ago.
fn sweep(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let cutoff = std::time::SystemTime::now()
        - std::time::Duration::from_secs((LINK_LIFETIME_SECS + TOMBSTONE_SECS) as u64);
    for e in entries.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t < cutoff);
        if old {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

fn create_private_dir(dir: &Path) -> Result<(), LinkError> {
    crate::private_files::create_dir_all(dir).map_err(|e| io_err(dir, e))
}

fn open_private_new(path: &Path) -> std::io::Result<std::fs::File> {
    crate::private_files::file_options()
        .create_new(true)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_works_once() {
        let d = tempfile::tempdir().unwrap();
        let t = issue(d.path(), "u@x").unwrap();
        assert_eq!(consume(d.path(), &t).unwrap(), "u@x");
        assert_eq!(consume(d.path(), &t), Err(LinkError::Used));
    }

    #[test]
    fn expired_unknown_and_malformed_links_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let t = issue_with_lifetime(d.path(), "u@x", -1).unwrap();
        assert_eq!(consume(d.path(), &t), Err(LinkError::Expired));
        assert_eq!(consume(d.path(), &random_token()), Err(LinkError::Unknown));
        assert_eq!(
            consume(d.path(), "../../etc/passwd"),
            Err(LinkError::Unknown)
        );
        assert_eq!(consume(d.path(), ""), Err(LinkError::Unknown));
    }

    #[cfg(unix)]
    #[test]
    fn a_link_file_others_may_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let t = issue(d.path(), "u@x").unwrap();
        let file = token_dir(d.path()).join(format!("{}.json", token_hash(&t)));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(matches!(
            consume(d.path(), &t),
            Err(LinkError::Untrusted(_))
        ));
    }

    #[cfg(unix)]
    #[test]
    fn the_file_is_private_and_holds_no_token() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let t = issue(d.path(), "u@x").unwrap();
        let dir = token_dir(d.path());
        let entry = std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap();
        let mode = entry.metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let text = std::fs::read_to_string(entry.path()).unwrap();
        assert!(!text.contains(&t));
        assert!(text.contains(&token_hash(&t)));
    }
}
