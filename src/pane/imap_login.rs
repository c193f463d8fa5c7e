//! Checks a mailbox user's credentials against the upstream IMAP server: connect as
//! configured (implicit TLS, STARTTLS or plain), LOGIN with correctly quoted or literal
//! strings, and report OK or NO. The password is never logged nor put in an error.

use crate::config::{UpstreamConfig, UpstreamTls};
use std::time::Duration;
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
        let mut conn: BufReader<Box<dyn Stream>> = match up.tls {
            UpstreamTls::Implicit => {
                let tls = tls_wrap(up, tcp).await.map_err(unreachable)?;
                BufReader::new(Box::new(tls) as Box<dyn Stream>)
            }
            UpstreamTls::Plain => BufReader::new(Box::new(tcp) as Box<dyn Stream>),
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
                let mut conn = BufReader::new(Box::new(tls) as Box<dyn Stream>);
                return login(&mut conn, &user_arg, &pass_arg, &server).await;
            }
        };
        expect_greeting(&mut conn).await.map_err(protocol)?;
        login(&mut conn, &user_arg, &pass_arg, &server).await
    };
    match tokio::time::timeout(timeout * 2, work).await {
        Ok(r) => r,
        Err(_) => Err(unreachable(format!(
            "no answer within {} seconds",
            timeout.as_secs() * 2
        ))),
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
    let _ = conn.get_mut().write_all(b"l2 LOGOUT\r\n").await;
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
