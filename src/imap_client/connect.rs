//! The connection to the real IMAP server: TCP connect with a timeout, then TLS
//! as configured (implicit, STARTTLS done here, or plain), and the greeting read.
//! The one way this program reaches a server: the proxy's sessions, the sync
//! worker, the gateway and the pane's sign-in all connect through it.

use bytes::Bytes;
use std::time::Duration;
use tokio::io::{split, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;

use super::{BoxedIo, ConnectError};
use crate::config::{UpstreamConfig, UpstreamTls};
use crate::wire::{response_start, Frame, Framer, ResponseStart};

/// How to reach the upstream: built once, used for every session.
#[derive(Clone)]
pub struct UpstreamConnector {
    host: String,
    port: u16,
    mode: UpstreamTls,
    timeout: Duration,
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )>,
    max_line: usize,
    /// Set when connections are recorded (`[record]`): each gets a transcript.
    recorder: Option<std::sync::Arc<crate::record::Recorder>>,
}

/// A connected upstream, greeting read.
pub struct Upstream {
    pub reader: Framer<ReadHalf<BoxedIo>>,
    pub writer: WriteHalf<BoxedIo>,
    /// The greeting line as received (after STARTTLS: the one before it, with its
    /// stale capability list removed).
    pub greeting: Bytes,
}

impl UpstreamConnector {
    pub fn new(up: &UpstreamConfig, max_line: usize) -> Result<Self, ConnectError> {
        let tls = match up.tls {
            UpstreamTls::Plain => None,
            UpstreamTls::Implicit | UpstreamTls::Starttls => Some((
                crate::tls::upstream_connector(up)?,
                crate::tls::upstream_server_name(up)?,
            )),
        };
        Ok(UpstreamConnector {
            host: up.host.clone(),
            port: up.port,
            mode: up.tls,
            timeout: Duration::from_secs(up.connect_timeout_secs.max(1)),
            tls,
            max_line,
            recorder: None,
        })
    }

    /// Record every connection made from now on with `recorder`.
    pub fn with_recorder(
        mut self,
        recorder: Option<std::sync::Arc<crate::record::Recorder>>,
    ) -> Self {
        self.recorder = recorder;
        self
    }

    /// `host:port` for messages.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Connect, do TLS, read the greeting; all within the connect timeout.
    pub async fn connect(&self) -> Result<Upstream, ConnectError> {
        self.connect_for("worker", None).await
    }

    /// [`UpstreamConnector::connect`] for a client's session (`label` and the
    /// client's address name its transcript, when recording).
    pub async fn connect_for(
        &self,
        label: &str,
        client: Option<std::net::SocketAddr>,
    ) -> Result<Upstream, ConnectError> {
        let transcript = self.recorder.as_ref().and_then(|r| {
            r.open(
                label,
                client.map(|c| c.to_string()).as_deref(),
                &self.address(),
            )
        });
        tokio::time::timeout(self.timeout, self.connect_inner(transcript))
            .await
            .map_err(|_| ConnectError::Upstream(format!("no answer within {:?}", self.timeout)))?
    }

    async fn connect_inner(
        &self,
        transcript: Option<std::sync::Arc<crate::record::Transcript>>,
    ) -> Result<Upstream, ConnectError> {
        // Recording copies the bytes after TLS; never wrapped when off.
        let tap = |io: BoxedIo| -> BoxedIo {
            match &transcript {
                Some(t) => Box::new(crate::record::RecordingIo::new(io, t.clone())),
                None => io,
            }
        };
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| ConnectError::Upstream(format!("cannot connect: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let tls_err =
            |e: std::io::Error| ConnectError::Upstream(format!("TLS handshake failed: {e}"));
        match (self.mode, &self.tls) {
            (UpstreamTls::Plain, _) | (_, None) => {
                let (mut reader, writer) = framed(tap(Box::new(tcp)), self.max_line);
                let greeting = read_greeting(&mut reader).await?;
                Ok(Upstream {
                    reader,
                    writer,
                    greeting,
                })
            }
            (UpstreamTls::Implicit, Some((conn, name))) => {
                let s = conn.connect(name.clone(), tcp).await.map_err(tls_err)?;
                let (mut reader, writer) = framed(tap(Box::new(s)), self.max_line);
                let greeting = read_greeting(&mut reader).await?;
                Ok(Upstream {
                    reader,
                    writer,
                    greeting,
                })
            }
            (UpstreamTls::Starttls, Some((conn, name))) => {
                let mut framer = Framer::new(tcp, self.max_line);
                let greeting = read_greeting(&mut framer).await?;
                framer.get_mut().write_all(b"CRMPX0 STARTTLS\r\n").await?;
                loop {
                    let line = match framer.next().await? {
                        Some(Frame::Line { bytes, .. }) => bytes,
                        _ => return Err(ConnectError::Upstream("bad answer to STARTTLS".into())),
                    };
                    if let ResponseStart::Tagged(b"CRMPX0") = response_start(&line) {
                        if !crate::wire::token::first_token(&line[7..]).eq_ignore_ascii_case(b"OK")
                        {
                            return Err(ConnectError::Upstream("server refused STARTTLS".into()));
                        }
                        break;
                    }
                }
                // Bytes sent before the handshake would be a plaintext injection.
                if framer.buffered() > 0 {
                    return Err(ConnectError::Upstream("data after STARTTLS answer".into()));
                }
                let (tcp, _) = framer.into_parts();
                let s = conn.connect(name.clone(), tcp).await.map_err(tls_err)?;
                let greeting = strip_capability_code(&greeting);
                // The STARTTLS exchange is the proxy's own: the transcript starts
                // with the greeting as the session sees it.
                if let Some(t) = &transcript {
                    t.server(&greeting);
                }
                let (reader, writer) = framed(tap(Box::new(s)), self.max_line);
                Ok(Upstream {
                    reader,
                    writer,
                    greeting,
                })
            }
        }
    }
}

fn framed(io: BoxedIo, max_line: usize) -> (Framer<ReadHalf<BoxedIo>>, WriteHalf<BoxedIo>) {
    let (r, w) = split(io);
    (Framer::new(r, max_line), w)
}

async fn read_greeting<R: tokio::io::AsyncRead + Unpin>(
    framer: &mut Framer<R>,
) -> Result<Bytes, ConnectError> {
    match framer.next().await? {
        Some(Frame::Line {
            bytes,
            literal: None,
        }) if bytes.first() == Some(&b'*') => {
            let upper = bytes.to_ascii_uppercase();
            if upper.starts_with(b"* BYE") {
                let text = String::from_utf8_lossy(&bytes[5..]).trim().to_string();
                return Err(ConnectError::Upstream(format!("server said BYE: {text}")));
            }
            Ok(bytes)
        }
        Some(_) => Err(ConnectError::Upstream("malformed greeting".into())),
        None => Err(ConnectError::Upstream("closed before its greeting".into())),
    }
}

/// `* OK [CAPABILITY …] text` → `* OK text`: capabilities before STARTTLS are stale.
fn strip_capability_code(greeting: &[u8]) -> Bytes {
    let upper = greeting.to_ascii_uppercase();
    for p in [&b"* OK [CAPABILITY "[..], b"* PREAUTH [CAPABILITY "] {
        if upper.starts_with(p) {
            if let Some(close) = memchr::memchr(b']', greeting) {
                let keep = p.len() - b"[CAPABILITY ".len();
                let mut out = greeting[..keep].to_vec();
                let rest = &greeting[close + 1..];
                out.extend_from_slice(rest.strip_prefix(b" ").unwrap_or(rest));
                return Bytes::from(out);
            }
        }
    }
    Bytes::copy_from_slice(greeting)
}

#[cfg(test)]
mod tests {
    #[test]
    fn stale_capabilities_are_stripped() {
        assert_eq!(
            &super::strip_capability_code(b"* OK [CAPABILITY IMAP4rev1 STARTTLS] Ready.\r\n")[..],
            b"* OK Ready.\r\n"
        );
        assert_eq!(
            &super::strip_capability_code(b"* OK Ready.\r\n")[..],
            b"* OK Ready.\r\n"
        );
    }
}
