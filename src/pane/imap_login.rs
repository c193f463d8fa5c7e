//! Checks a mailbox user's credentials against the upstream IMAP server through the
//! one IMAP client (`crate::imap_client`: implicit TLS, STARTTLS or plain; LOGIN with
//! its strings quoted or sent as literals by imap-codec), and saves a draft with the
//! same sign-in (APPEND into the Drafts folder). The password is never logged nor put
//! in an error.
//!
//! Password guessing is limited per user name and per client address
//! ([`SigninLimits`]): once over the limit, sign-in is refused before anything is
//! sent upstream, so guesses neither reach the server nor earn the proxy's address
//! penalties that would hit every user.

use crate::config::UpstreamConfig;
use crate::imap_client::folders::SpecialUse;
use crate::imap_client::{ClientError, Credential, ImapClient, UpstreamConnector};
use imap_codec::imap_types::flag::Flag;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Longest response line read while signing in.
const MAX_LINE: usize = 64 * 1024;

/// Why a credential check did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The server said NO to LOGIN: wrong user name or password.
    #[error("the mail server refused this user name and password{}", reason_suffix(.0))]
    Rejected(String),
    #[error("the user name or password contains characters IMAP cannot carry (NUL)")]
    Unsendable,
    #[error("cannot reach the mail server {server}: {reason}")]
    Unreachable { server: String, reason: String },
    #[error("the mail server {server} answered unexpectedly: {reason}")]
    Protocol { server: String, reason: String },
    /// Too many recent failures: nothing was sent to the server.
    #[error(
        "too many failed sign-ins {scope}: try again in about {minutes} minute(s), \
         or sign in with a one-time link from `crmproxy pane-url`"
    )]
    Limited { scope: &'static str, minutes: u64 },
}

/// Failed password sign-ins allowed per user name within [`FAILURE_WINDOW`].
pub const MAX_FAILURES_PER_USER: usize = 5;
/// Failed password sign-ins allowed per client address within [`FAILURE_WINDOW`]
/// (several user names may be tried from one address, but not hundreds).
pub const MAX_FAILURES_PER_CLIENT: usize = 20;
/// How long a failure counts against the limits.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The address a pane request came from (set per connection by the pane).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// Recent failed sign-ins, per user name and per client address.
#[derive(Debug, Default)]
pub struct SigninLimits {
    failures: Mutex<Failures>,
}

#[derive(Debug, Default)]
struct Failures {
    by_user: HashMap<String, VecDeque<Instant>>,
    by_client: HashMap<IpAddr, VecDeque<Instant>>,
}

/// Drop failures older than the window; how long until the oldest left expires.
fn recent(times: &mut VecDeque<Instant>, now: Instant) -> Option<Duration> {
    while times
        .front()
        .is_some_and(|t| now.duration_since(*t) >= FAILURE_WINDOW)
    {
        times.pop_front();
    }
    times
        .front()
        .map(|t| FAILURE_WINDOW.saturating_sub(now.duration_since(*t)))
}

fn user_key(user: &str) -> String {
    user.trim().to_lowercase()
}

impl SigninLimits {
    /// Refuse when `user` or `client` has used up its failures.
    pub fn check(&self, user: &str, client: Option<IpAddr>) -> Result<(), LoginError> {
        let now = Instant::now();
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let limited = |times: Option<&mut VecDeque<Instant>>, max: usize| {
            let times = times?;
            let wait = recent(times, now)?;
            (times.len() >= max).then_some(wait)
        };
        let over = limited(f.by_user.get_mut(&user_key(user)), MAX_FAILURES_PER_USER)
            .map(|w| ("for this user name", w))
            .or_else(|| {
                let times = client.and_then(|c| f.by_client.get_mut(&c));
                limited(times, MAX_FAILURES_PER_CLIENT).map(|w| ("from this address", w))
            });
        match over {
            Some((scope, wait)) => Err(LoginError::Limited {
                scope,
                minutes: wait.as_secs().div_ceil(60).max(1),
            }),
            None => Ok(()),
        }
    }

    /// Count a refused password.
    pub fn failed(&self, user: &str, client: Option<IpAddr>) {
        let now = Instant::now();
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        // Forget keys whose failures all expired, so the maps stay small.
        f.by_user.retain(|_, t| recent(t, now).is_some());
        f.by_client.retain(|_, t| recent(t, now).is_some());
        f.by_user.entry(user_key(user)).or_default().push_back(now);
        if let Some(c) = client {
            f.by_client.entry(c).or_default().push_back(now);
        }
    }

    /// A correct password clears the user name's failures (not the address's).
    pub fn succeeded(&self, user: &str) {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        f.by_user.remove(&user_key(user));
    }
}

fn reason_suffix(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(" ({text})")
    }
}

/// Check `user`/`password` with IMAP LOGIN on the upstream server.
pub async fn check_credentials(
    up: &UpstreamConfig,
    user: &str,
    password: &str,
) -> Result<(), LoginError> {
    let c = signed_in(up, user, password).await?;
    c.logout().await;
    Ok(())
}

/// [`check_credentials`] within `limits`: refused without contacting the server
/// while `user` or `client` is over its limit; a refused password counts.
pub async fn check_credentials_limited(
    limits: &SigninLimits,
    up: &UpstreamConfig,
    user: &str,
    client: Option<IpAddr>,
    password: &str,
) -> Result<(), LoginError> {
    limits.check(user, client)?;
    let result = check_credentials(up, user, password).await;
    match &result {
        Ok(()) => limits.succeeded(user),
        Err(LoginError::Rejected(_)) => limits.failed(user, client),
        Err(_) => {}
    }
    result
}

/// Where a draft was saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub folder: String,
    /// From the server's `APPENDUID` (UIDPLUS), when it sent one.
    pub uid_validity: Option<u32>,
    pub uid: Option<u32>,
}

/// Save `raw` as a draft (flags `\Draft \Seen`) in the user's Drafts folder:
/// `drafts_folder` (a logical path) if configured, else the folder LIST marks
/// `\Drafts` (SPECIAL-USE or XLIST), else `Drafts` (created if missing).
pub async fn append_draft(
    up: &UpstreamConfig,
    drafts_folder: Option<&str>,
    user: &str,
    password: &str,
    raw: &[u8],
) -> Result<Appended, LoginError> {
    let server = server_of(up);
    let mut c = signed_in(up, user, password).await?;
    let work = async {
        let folder = match c.special_folder(SpecialUse::Drafts, drafts_folder).await? {
            Some(f) => f,
            None => c.layout().await?.to_server("Drafts"),
        };
        let mut created = false;
        loop {
            let flags = vec![Flag::Draft, Flag::Seen];
            match c.append(&folder, flags, None, raw).await? {
                Ok(at) => {
                    return Ok(Appended {
                        folder,
                        uid_validity: at.map(|a| a.uid_validity),
                        uid: at.map(|a| a.uid),
                    })
                }
                Err(refused)
                    if !created && refused.status.to_ascii_uppercase().contains("[TRYCREATE]") =>
                {
                    c.create(&folder).await?;
                    created = true;
                }
                Err(refused) => {
                    return Err(ClientError::Refused {
                        command: "APPEND",
                        text: format!("APPEND to {folder:?} answered {}", refused.status),
                    })
                }
            }
        }
    };
    let result = tokio::time::timeout(session_timeout(up), work).await;
    let result = match result {
        Ok(r) => r.map_err(|e| login_error(&server, e)),
        Err(_) => Err(too_slow(up)),
    };
    c.logout().await;
    result
}

fn server_of(up: &UpstreamConfig) -> String {
    format!("{}:{}", up.host, up.port)
}

fn session_timeout(up: &UpstreamConfig) -> Duration {
    Duration::from_secs(up.connect_timeout_secs.max(1)) * 4
}

fn too_slow(up: &UpstreamConfig) -> LoginError {
    LoginError::Unreachable {
        server: server_of(up),
        reason: format!("no answer within {} seconds", session_timeout(up).as_secs()),
    }
}

/// A client error as the pane says it.
fn login_error(server: &str, e: ClientError) -> LoginError {
    let server = server.to_owned();
    match e {
        ClientError::LoginRefused(text) => LoginError::Rejected(text),
        ClientError::Unsendable(_) => LoginError::Unsendable,
        ClientError::Connect(reason) => LoginError::Unreachable { server, reason },
        ClientError::Io(e) => LoginError::Unreachable {
            server,
            reason: e.to_string(),
        },
        other => LoginError::Protocol {
            server,
            reason: other.to_string(),
        },
    }
}

/// Connect as configured (implicit TLS, STARTTLS or plain) and LOGIN; the
/// whole within four connect timeouts. A NUL in the user name or password is
/// refused before anything is sent.
async fn signed_in(
    up: &UpstreamConfig,
    user: &str,
    password: &str,
) -> Result<ImapClient, LoginError> {
    if user.contains('\0') || password.contains('\0') {
        return Err(LoginError::Unsendable);
    }
    let server = server_of(up);
    let connector = UpstreamConnector::new(up, MAX_LINE).map_err(|e| LoginError::Unreachable {
        server: server.clone(),
        reason: e.to_string(),
    })?;
    let credential = Credential::Login {
        user: user.as_bytes().to_vec(),
        password: password.as_bytes().to_vec(),
    };
    let work = async {
        let mut c = ImapClient::connect_only(&connector).await?;
        if c.preauthenticated() {
            return Err(ClientError::Protocol {
                command: "LOGIN",
                text: "the server pre-authenticated the connection; cannot check a password".into(),
            });
        }
        c.login(&credential).await?;
        Ok(c)
    };
    match tokio::time::timeout(session_timeout(up), work).await {
        Ok(r) => r.map_err(|e| login_error(&server, e)),
        Err(_) => Err(too_slow(up)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_limit_the_user_name_and_the_address() {
        let limits = SigninLimits::default();
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        for _ in 0..MAX_FAILURES_PER_USER {
            limits.check("Alice@x", Some(a)).unwrap();
            limits.failed("Alice@x", Some(a));
        }
        let e = limits.check("alice@x ", Some(b)).unwrap_err().to_string();
        assert!(e.contains("for this user name"), "{e}");
        limits.check("bob@x", Some(b)).unwrap();
        for n in MAX_FAILURES_PER_USER..MAX_FAILURES_PER_CLIENT {
            limits.failed(&format!("u{n}@x"), Some(a));
        }
        let e = limits.check("bob@x", Some(a)).unwrap_err().to_string();
        assert!(e.contains("from this address"), "{e}");
        limits.check("bob@x", Some(b)).unwrap();
        limits.succeeded("alice@x");
        limits.check("alice@x", Some(b)).unwrap();
    }
}
