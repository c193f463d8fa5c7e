//! Checks a mailbox user's credentials against the upstream IMAP server: connect as
//! configured (implicit TLS, STARTTLS or plain), LOGIN with correctly quoted or literal
//! strings, and report OK or NO; and save a draft with the same sign-in (APPEND into
//! the Drafts folder). The password is never logged nor put in an error.
//!
//! Password guessing is limited per user name and per client address
//! ([`SigninLimits`]): once over the limit, sign-in is refused before anything is
//! sent upstream, so guesses neither reach the server nor earn the proxy's address
//! penalties that would hit every user.

use crate::config::{UpstreamConfig, UpstreamTls};
use crate::imap_client::folders::{find_special, FolderLayout, ListEntry, SpecialUse};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

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

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Check `user`/`password` with IMAP LOGIN on the upstream server.
pub async fn check_credentials(
    up: &UpstreamConfig,
    user: &str,
    password: &str,
) -> Result<(), LoginError> {
    with_session(up, user, password, |_conn, _server| {
        Box::pin(async { Ok(()) })
    })
    .await
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

/// Save `raw` as a draft (flags `\Draft \Seen`) in the user's Drafts folder: the
/// folder LIST marks `\Drafts` (SPECIAL-USE), else `Drafts` (created if missing).
pub async fn append_draft(
    up: &UpstreamConfig,
    drafts_folder: Option<&str>,
    user: &str,
    password: &str,
    raw: &[u8],
) -> Result<Appended, LoginError> {
    let raw = raw.to_vec();
    let configured = drafts_folder.map(str::to_owned);
    let out = std::sync::Arc::new(std::sync::Mutex::new(None));
    let slot = out.clone();
    with_session(up, user, password, move |conn, server| {
        Box::pin(async move {
            let protocol = |reason: String| LoginError::Protocol {
                server: server.to_owned(),
                reason,
            };
            let io = |e: std::io::Error| LoginError::Unreachable {
                server: server.to_owned(),
                reason: e.to_string(),
            };
            let folder = find_drafts(conn, configured.as_deref())
                .await
                .map_err(|e| match e {
                    Failed::Io(e) => io(e),
                    Failed::Protocol(reason) => protocol(reason),
                })?;
            let mut created = false;
            for tag in ["d2", "d4"] {
                let arg = astring(&folder).ok_or(LoginError::Unsendable)?;
                conn.get_mut()
                    .write_all(format!("{tag} APPEND ").as_bytes())
                    .await
                    .map_err(io)?;
                send_arg(conn, &arg).await.map_err(protocol)?;
                conn.get_mut()
                    .write_all(format!(" (\\Draft \\Seen) {{{}}}\r\n", raw.len()).as_bytes())
                    .await
                    .map_err(io)?;
                conn.get_mut().flush().await.map_err(io)?;
                // The server answers "+" (send the bytes) or refuses at once (tagged NO).
                let refused = loop {
                    let line = read_line(conn).await.map_err(protocol)?;
                    if line.starts_with('+') {
                        break None;
                    }
                    if let Some(rest) = line.strip_prefix(tag).and_then(|r| r.strip_prefix(' ')) {
                        let (status, text) = rest.split_once(' ').unwrap_or((rest, ""));
                        break Some((status.to_ascii_uppercase(), text.to_owned()));
                    }
                };
                let (status, text) = match refused {
                    Some(r) => r,
                    None => {
                        conn.get_mut().write_all(&raw).await.map_err(io)?;
                        conn.get_mut().write_all(b"\r\n").await.map_err(io)?;
                        conn.get_mut().flush().await.map_err(io)?;
                        let (_, status, text) = read_reply(conn, tag).await.map_err(protocol)?;
                        (status, text)
                    }
                };
                if status == "OK" {
                    let (uid_validity, uid) = appenduid(&text);
                    *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(Appended {
                        folder: folder.clone(),
                        uid_validity,
                        uid,
                    });
                    return Ok(());
                }
                if created || !text.to_ascii_uppercase().contains("[TRYCREATE]") {
                    return Err(protocol(format!(
                        "APPEND to {folder:?} answered {status} {text}"
                    )));
                }
                conn.get_mut().write_all(b"d3 CREATE ").await.map_err(io)?;
                send_arg(conn, &arg).await.map_err(protocol)?;
                conn.get_mut().write_all(b"\r\n").await.map_err(io)?;
                let _ = read_reply(conn, "d3").await.map_err(protocol)?;
                created = true;
            }
            Err(protocol("APPEND failed".into()))
        })
    })
    .await?;
    let saved = out.lock().unwrap_or_else(|e| e.into_inner()).take();
    saved.ok_or_else(|| LoginError::Protocol {
        server: format!("{}:{}", up.host, up.port),
        reason: "APPEND did not complete".into(),
    })
}

type Conn = BufReader<Box<dyn Stream>>;
type Work<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), LoginError>> + Send + 'a>>;

/// Connect, LOGIN, run `then` on the signed-in connection, LOGOUT.
async fn with_session<F>(
    up: &UpstreamConfig,
    user: &str,
    password: &str,
    then: F,
) -> Result<(), LoginError>
where
    F: for<'a> FnOnce(&'a mut Conn, &'a str) -> Work<'a> + Send,
{
    let server = format!("{}:{}", up.host, up.port);
    let user_arg = astring(user).ok_or(LoginError::Unsendable)?;
    let pass_arg = astring(password).ok_or(LoginError::Unsendable)?;
    let timeout = Duration::from_secs(up.connect_timeout_secs.max(1));
    let unreachable = |reason: String| LoginError::Unreachable {
        server: server.clone(),
        reason,
    };
    let protocol = |reason: String| LoginError::Protocol {
        server: server.clone(),
        reason,
    };
    let work = async {
        let tcp = TcpStream::connect((up.host.as_str(), up.port))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let mut conn: Conn = match up.tls {
            UpstreamTls::Implicit => {
                let tls = tls_wrap(up, tcp).await.map_err(unreachable)?;
                let mut c = BufReader::new(Box::new(tls) as Box<dyn Stream>);
                expect_greeting(&mut c).await.map_err(protocol)?;
                c
            }
            UpstreamTls::Plain => {
                let mut c = BufReader::new(Box::new(tcp) as Box<dyn Stream>);
                expect_greeting(&mut c).await.map_err(protocol)?;
                c
            }
            UpstreamTls::Starttls => {
                let mut plain = BufReader::new(tcp);
                expect_greeting(&mut plain).await.map_err(protocol)?;
                plain
                    .get_mut()
                    .write_all(b"s1 STARTTLS\r\n")
                    .await
                    .map_err(|e| unreachable(e.to_string()))?;
                let (status, text) = read_tagged(&mut plain, "s1").await.map_err(protocol)?;
                if status != "OK" {
                    return Err(protocol(format!("STARTTLS refused: {status} {text}")));
                }
                let tls = tls_wrap(up, plain.into_inner())
                    .await
                    .map_err(unreachable)?;
                // After STARTTLS there is no new greeting: LOGIN comes next.
                BufReader::new(Box::new(tls) as Box<dyn Stream>)
            }
        };
        login(&mut conn, &user_arg, &pass_arg, &server).await?;
        let result = then(&mut conn, &server).await;
        let _ = conn.get_mut().write_all(b"z9 LOGOUT\r\n").await;
        let _ = conn.get_mut().flush().await;
        result
    };
    match tokio::time::timeout(timeout * 4, work).await {
        Ok(r) => r,
        Err(_) => Err(unreachable(format!(
            "no answer within {} seconds",
            timeout.as_secs() * 4
        ))),
    }
}

/// Why finding the Drafts folder failed.
enum Failed {
    Io(std::io::Error),
    Protocol(String),
}

/// The Drafts folder's server name: `configured` (a logical path) mapped to the
/// server's namespace, else the folder marked `\Drafts` (any case), else a
/// well-known name, else `Drafts` under the namespace (created on TRYCREATE).
async fn find_drafts(conn: &mut Conn, configured: Option<&str>) -> Result<String, Failed> {
    let (untagged, status, _) = ask(conn, "d0", "NAMESPACE").await?;
    let namespace = untagged
        .iter()
        .filter(|_| status == "OK")
        .find_map(|l| FolderLayout::from_namespace_line(l));
    let layout = match namespace {
        Some(l) => l,
        None => {
            let (untagged, _, _) = ask(conn, "d1", "LIST \"\" \"\"").await?;
            let root = untagged.iter().find_map(|l| ListEntry::parse(l, None));
            FolderLayout::new("", root.map_or(Some('/'), |r| r.delimiter))
        }
    };
    if let Some(c) = configured {
        return Ok(layout.to_server(c));
    }
    let (untagged, status, text) = ask(conn, "d1", "LIST \"\" \"*\"").await?;
    if status != "OK" {
        return Err(Failed::Protocol(format!("LIST answered {status} {text}")));
    }
    // A name sent as a literal is not read here: such a folder is not taken.
    let entries: Vec<ListEntry> = untagged
        .iter()
        .filter_map(|l| ListEntry::parse(l, None))
        .filter(|e| !e.name.starts_with('{'))
        .collect();
    Ok(find_special(&entries, SpecialUse::Drafts, &layout)
        .unwrap_or_else(|| layout.to_server("Drafts")))
}

/// Send `command` under `tag`; its untagged lines, status and text.
async fn ask(
    conn: &mut Conn,
    tag: &str,
    command: &str,
) -> Result<(Vec<String>, String, String), Failed> {
    conn.get_mut()
        .write_all(format!("{tag} {command}\r\n").as_bytes())
        .await
        .map_err(Failed::Io)?;
    read_reply(conn, tag).await.map_err(Failed::Protocol)
}

/// `[APPENDUID 38505 3955] Append completed.` → (38505, 3955).
fn appenduid(text: &str) -> (Option<u32>, Option<u32>) {
    let upper = text.to_ascii_uppercase();
    let Some(i) = upper.find("[APPENDUID ") else {
        return (None, None);
    };
    let mut parts = text[i + 11..]
        .split(|c: char| c == ']' || c.is_whitespace())
        .filter(|s| !s.is_empty());
    let v = parts.next().and_then(|p| p.parse().ok());
    let u = parts.next().and_then(|p| p.parse().ok());
    (v, u)
}

/// Untagged lines, then the tagged status and text for `tag`.
async fn read_reply<S: AsyncRead + Unpin>(
    conn: &mut BufReader<S>,
    tag: &str,
) -> Result<(Vec<String>, String, String), String> {
    let mut untagged = Vec::new();
    loop {
        let line = read_line(conn).await?;
        if let Some(rest) = line.strip_prefix(tag).and_then(|r| r.strip_prefix(' ')) {
            let (status, text) = rest.split_once(' ').unwrap_or((rest, ""));
            return Ok((untagged, status.to_ascii_uppercase(), text.to_owned()));
        }
        if line.to_ascii_uppercase().starts_with("* BYE") {
            return Err(format!("server closed the connection: {line}"));
        }
        untagged.push(line);
    }
}

async fn tls_wrap(
    up: &UpstreamConfig,
    tcp: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let connector = crate::tls::upstream_connector(up).map_err(|e| e.to_string())?;
    let name = crate::tls::upstream_server_name(up).map_err(|e| e.to_string())?;
    connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake failed: {e}"))
}

async fn login<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut BufReader<S>,
    user: &Arg,
    pass: &Arg,
    server: &str,
) -> Result<(), LoginError> {
    let protocol = |reason: String| LoginError::Protocol {
        server: server.to_owned(),
        reason,
    };
    let io = |e: std::io::Error| LoginError::Unreachable {
        server: server.to_owned(),
        reason: e.to_string(),
    };
    conn.get_mut().write_all(b"l1 LOGIN ").await.map_err(io)?;
    send_arg(conn, user).await.map_err(protocol)?;
    conn.get_mut().write_all(b" ").await.map_err(io)?;
    send_arg(conn, pass).await.map_err(protocol)?;
    conn.get_mut().write_all(b"\r\n").await.map_err(io)?;
    conn.get_mut().flush().await.map_err(io)?;
    let (status, text) = read_tagged(conn, "l1").await.map_err(protocol)?;
    match status.as_str() {
        "OK" => Ok(()),
        "NO" => Err(LoginError::Rejected(strip_code(&text))),
        _ => Err(protocol(format!("LOGIN answered {status} {text}"))),
    }
}

/// `[AUTHENTICATIONFAILED] Authentication failed.` → `Authentication failed.`
fn strip_code(text: &str) -> String {
    let t = text.trim();
    match t.strip_prefix('[').and_then(|r| r.split_once(']')) {
        Some((_, rest)) => rest.trim().to_owned(),
        None => t.to_owned(),
    }
}

/// An IMAP astring ready to send: a quoted string, or a literal when quoting cannot
/// carry it (CR, LF, 8-bit). `None` for NUL, which IMAP cannot carry at all.
#[derive(Debug, PartialEq, Eq)]
enum Arg {
    Quoted(String),
    Literal(Vec<u8>),
}

fn astring(s: &str) -> Option<Arg> {
    let b = s.as_bytes();
    if b.contains(&0) {
        return None;
    }
    if b.iter().all(|&c| (0x20..0x7f).contains(&c)) {
        let mut q = String::with_capacity(s.len() + 2);
        q.push('"');
        for ch in s.chars() {
            if ch == '"' || ch == '\\' {
                q.push('\\');
            }
            q.push(ch);
        }
        q.push('"');
        Some(Arg::Quoted(q))
    } else {
        Some(Arg::Literal(b.to_vec()))
    }
}

async fn send_arg<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut BufReader<S>,
    arg: &Arg,
) -> Result<(), String> {
    match arg {
        Arg::Quoted(q) => conn
            .get_mut()
            .write_all(q.as_bytes())
            .await
            .map_err(|e| e.to_string()),
        Arg::Literal(bytes) => {
            // A synchronising literal: wait for the server's "+" before the bytes.
            let w = conn.get_mut();
            w.write_all(format!("{{{}}}\r\n", bytes.len()).as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            w.flush().await.map_err(|e| e.to_string())?;
            loop {
                let line = read_line(conn).await?;
                if line.starts_with('+') {
                    break;
                }
                if line.starts_with("l1 ") {
                    return Err(format!("literal refused: {line}"));
                }
            }
            conn.get_mut()
                .write_all(bytes)
                .await
                .map_err(|e| e.to_string())
        }
    }
}

async fn expect_greeting<S: AsyncRead + Unpin>(conn: &mut BufReader<S>) -> Result<(), String> {
    let line = read_line(conn).await?;
    let upper = line.to_ascii_uppercase();
    if upper.starts_with("* OK") {
        Ok(())
    } else if upper.starts_with("* PREAUTH") {
        Err("the server pre-authenticated the connection; cannot check a password".into())
    } else {
        Err(format!("greeting {line:?}"))
    }
}

/// Read lines until the tagged response for `tag`: (status, text).
async fn read_tagged<S: AsyncRead + Unpin>(
    conn: &mut BufReader<S>,
    tag: &str,
) -> Result<(String, String), String> {
    loop {
        let line = read_line(conn).await?;
        if let Some(rest) = line.strip_prefix(tag).and_then(|r| r.strip_prefix(' ')) {
            let (status, text) = rest.split_once(' ').unwrap_or((rest, ""));
            return Ok((status.to_ascii_uppercase(), text.to_owned()));
        }
        if line.to_ascii_uppercase().starts_with("* BYE") {
            return Err(format!("server closed the connection: {line}"));
        }
    }
}

/// One response line without CRLF; a literal announced at its end is skipped.
async fn read_line<S: AsyncRead + Unpin>(conn: &mut BufReader<S>) -> Result<String, String> {
    let mut buf = Vec::new();
    let n = tokio::io::AsyncReadExt::take(&mut *conn, MAX_LINE as u64)
        .read_until(b'\n', &mut buf)
        .await
        .map_err(|e| e.to_string())?;
    if n == 0 {
        return Err("the server closed the connection".into());
    }
    if !buf.ends_with(b"\n") {
        return Err("response line too long".into());
    }
    while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        buf.pop();
    }
    let line = String::from_utf8_lossy(&buf).into_owned();
    if let Some(len) = literal_len(&line) {
        let mut skip = vec![0u8; len.min(MAX_LINE)];
        tokio::io::AsyncReadExt::read_exact(conn, &mut skip)
            .await
            .map_err(|e| e.to_string())?;
        // The rest of the response continues on the next line.
        let _ = Box::pin(read_line(conn)).await?;
    }
    Ok(line)
}

fn literal_len(line: &str) -> Option<usize> {
    let inner = line.strip_suffix('}')?;
    let open = inner.rfind('{')?;
    inner[open + 1..].trim_end_matches('+').parse().ok()
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

    #[test]
    fn astrings_are_quoted_or_literal() {
        assert_eq!(astring("bob").unwrap(), Arg::Quoted("\"bob\"".into()));
        assert_eq!(
            astring(r#"a"b\c"#).unwrap(),
            Arg::Quoted(r#""a\"b\\c""#.into())
        );
        assert_eq!(
            astring("pä").unwrap(),
            Arg::Literal("pä".as_bytes().to_vec())
        );
        assert_eq!(astring("a\r\nb").unwrap(), Arg::Literal(b"a\r\nb".to_vec()));
        assert_eq!(astring("a\0b"), None);
    }

    #[test]
    fn appenduid_code() {
        assert_eq!(
            appenduid("[APPENDUID 38505 3955] Append completed."),
            (Some(38505), Some(3955))
        );
        assert_eq!(appenduid("Append completed."), (None, None));
    }

    #[test]
    fn literal_announcements_and_codes() {
        assert_eq!(literal_len("* 1 FETCH (BODY[] {12}"), Some(12));
        assert_eq!(literal_len("* OK {3+}"), Some(3));
        assert_eq!(literal_len("* OK done"), None);
        assert_eq!(
            strip_code("[AUTHENTICATIONFAILED] Authentication failed."),
            "Authentication failed."
        );
    }
}
