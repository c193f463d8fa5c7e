//! The client connection: log in with a [`Credential`], send commands built as
//! imap-codec types (so a mailbox name, keyword or password can never break the
//! command line: the encoder picks atom, quoted string or literal, and this
//! module waits for the server's `+` before a synchronising literal), and read
//! each response whole through the framer (sizes checked before anything is
//! buffered) before imap-codec decodes it. A response imap-codec cannot decode
//! (a server quirk) is kept as raw bytes, never dropped.

use bytes::Bytes;
use imap_codec::encode::{Encoder, Fragment};
use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::core::Tag;
use imap_codec::imap_types::response::{Code, Response, Status, StatusBody, StatusKind, Tagged};
use imap_codec::imap_types::IntoStatic;
use imap_codec::{decode::Decoder, CommandCodec, ResponseCodec};
use std::ops::Range;
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};

use super::connect::UpstreamConnector;
use super::folders::FolderLayout;
use super::{BoxedIo, Credential};
use crate::wire::{Frame, Framer};

/// Why a client command failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("upstream connection: {0}")]
    Connect(String),
    #[error("upstream I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("upstream closed the connection")]
    Closed,
    #[error("upstream refused {command}: {text}")]
    Refused { command: &'static str, text: String },
    /// The server refused the login itself (NO to LOGIN/AUTHENTICATE).
    #[error("the server refused the login{}", if .0.is_empty() { String::new() } else { format!(" ({})", .0) })]
    LoginRefused(String),
    /// A value this program would send cannot be said in IMAP (a NUL byte).
    #[error("cannot send {0} to the server: not representable in IMAP")]
    Unsendable(&'static str),
    #[error("upstream sent a literal larger than the client accepts ({0} bytes)")]
    TooBig(u64),
    #[error("upstream answered {command} unexpectedly: {text}")]
    Protocol { command: &'static str, text: String },
}

/// Largest literal the client accepts (a message fetched for tracking).
pub const MAX_MESSAGE_BYTES: u64 = 256 * 1024 * 1024;

/// One server response, whole: its bytes (lines and literals in order) and
/// where its literals are in them.
#[derive(Debug, Default)]
pub struct RawResponse {
    pub bytes: Vec<u8>,
    pub literals: Vec<Range<usize>>,
}

impl RawResponse {
    /// The response decoded by imap-codec; `None` for what it cannot read.
    pub fn decode(&self) -> Option<Response<'_>> {
        match ResponseCodec::default().decode(&self.bytes) {
            Ok(([], r)) => Some(r),
            _ => None,
        }
    }

    /// The first line, lossily, without its line ending (for messages and
    /// the few responses imap-codec does not read: XLIST, quirks).
    pub fn first_line(&self) -> String {
        let end = self.literals.first().map_or(self.bytes.len(), |r| r.start);
        String::from_utf8_lossy(&self.bytes[..end])
            .trim_end()
            .to_string()
    }

    /// The response's lines with each literal replaced by `{n}`: what the
    /// folder-list parser reads.
    pub fn text(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes.len().min(4096));
        let mut at = 0;
        for r in &self.literals {
            out.extend_from_slice(&self.bytes[at..r.start]);
            at = r.end;
        }
        out.extend_from_slice(&self.bytes[at..]);
        out
    }

    /// A literal's bytes.
    pub fn literal(&self, i: usize) -> Option<&[u8]> {
        self.literals.get(i).map(|r| &self.bytes[r.clone()])
    }

    /// Take literal `i` out, consuming the response (no copy when the literal
    /// ends the data: the common `BODY[] {n}` then `)`).
    pub fn into_literal(mut self, i: usize) -> Option<Vec<u8>> {
        let r = self.literals.get(i)?.clone();
        self.bytes.truncate(r.end);
        self.bytes.drain(..r.start);
        Some(self.bytes)
    }

    fn tag(&self) -> Option<&[u8]> {
        let t = crate::wire::token::first_token(&self.bytes);
        (!t.is_empty() && t != b"*" && t != b"+").then_some(t)
    }

    /// Whether this is the tagged answer to `tag`.
    pub(super) fn is_tagged(&self, tag: &str) -> bool {
        self.tag() == Some(tag.as_bytes())
    }

    /// `* STATUS …`: with NOTIFY, news of a folder that is not selected.
    pub(super) fn is_status(&self) -> bool {
        self.bytes.len() >= 9 && self.bytes[..9].eq_ignore_ascii_case(b"* STATUS ")
    }

    pub(super) fn is_continuation(&self) -> bool {
        self.bytes.first() == Some(&b'+')
    }
}

/// A command's answer: the untagged responses that came before the tagged one.
#[derive(Debug, Default)]
pub struct Reply {
    pub untagged: Vec<RawResponse>,
    pub ok: bool,
    /// The tagged line, for error messages.
    pub status: String,
    /// The tagged response's code (`[APPENDUID …]`, `[TRYCREATE]`, …).
    pub code: Option<Code<'static>>,
}

impl Reply {
    /// The tagged text without tag, status and code (`Authentication failed.`).
    pub fn text(&self) -> String {
        let mut words = self.status.splitn(3, ' ');
        let rest = words.nth(2).unwrap_or("").trim();
        match rest.strip_prefix('[').and_then(|r| r.split_once(']')) {
            Some((_, t)) => t.trim().to_string(),
            None => rest.to_string(),
        }
    }
}

pub struct ImapClient {
    reader: Framer<ReadHalf<BoxedIo>>,
    writer: WriteHalf<BoxedIo>,
    next: u32,
    /// The server's greeting line.
    pub greeting: Bytes,
    /// PERMANENTFLAGS of the selected mailbox allows new keywords (`\*`).
    pub keywords_allowed: bool,
    /// The server's capabilities after login (upper case), once asked for.
    pub(super) capabilities: Option<Vec<String>>,
    /// Whether this connection told the user that `replace` cannot work here.
    pub replace_refusal_said: bool,
    /// The server's folder layout, once asked for.
    pub(super) layout: Option<FolderLayout>,
    /// A NOTIFY `STATUS` (new mail in a folder not selected) came in a reply
    /// since [`ImapClient::take_notified`] was last asked.
    pub(super) notified: bool,
}

impl ImapClient {
    /// Connect (TLS as configured) and log in with `credential`.
    pub async fn connect(
        connector: &UpstreamConnector,
        credential: &Credential,
    ) -> Result<ImapClient, ClientError> {
        let mut c = ImapClient::connect_only(connector).await?;
        c.login(credential).await?;
        Ok(c)
    }

    /// Connect and read the greeting, not logged in yet.
    pub async fn connect_only(connector: &UpstreamConnector) -> Result<ImapClient, ClientError> {
        let up = connector
            .connect()
            .await
            .map_err(|e| ClientError::Connect(e.to_string()))?;
        Ok(ImapClient {
            reader: up.reader,
            writer: up.writer,
            next: 1,
            greeting: up.greeting,
            keywords_allowed: false,
            capabilities: None,
            replace_refusal_said: false,
            layout: None,
            notified: false,
        })
    }

    /// A client over an already connected stream whose greeting was read (tests
    /// drive one against a scripted server).
    #[cfg(test)]
    pub(crate) fn over(io: BoxedIo, greeting: &[u8]) -> ImapClient {
        let (r, w) = tokio::io::split(io);
        ImapClient {
            reader: Framer::new(r, 64 * 1024),
            writer: w,
            next: 1,
            greeting: Bytes::copy_from_slice(greeting),
            keywords_allowed: false,
            capabilities: None,
            replace_refusal_said: false,
            layout: None,
            notified: false,
        }
    }

    /// Whether the server pre-authenticated the connection (`* PREAUTH`).
    pub fn preauthenticated(&self) -> bool {
        self.greeting.len() >= 9 && self.greeting[..9].eq_ignore_ascii_case(b"* PREAUTH")
    }

    /// LOGIN, or AUTHENTICATE PLAIN with the client's initial response.
    pub async fn login(&mut self, credential: &Credential) -> Result<(), ClientError> {
        let reply = match credential {
            Credential::Login { user, password } => {
                if user.contains(&0) || password.contains(&0) {
                    return Err(ClientError::Unsendable("the user name or password"));
                }
                let body = CommandBody::login(user.as_slice(), password.as_slice())
                    .map_err(|_| ClientError::Unsendable("the user name or password"))?;
                self.run(body).await?
            }
            Credential::SaslPlain { response_base64 } => {
                // Checked base64 so that a stray byte cannot end the line early.
                use base64::Engine as _;
                if base64::engine::general_purpose::STANDARD
                    .decode(response_base64)
                    .is_err()
                {
                    return Err(ClientError::Unsendable(
                        "a SASL response that is not base64",
                    ));
                }
                let body =
                    CommandBody::authenticate(imap_codec::imap_types::auth::AuthMechanism::Plain);
                let tag = self.send(body).await?;
                let mut sent = false;
                loop {
                    let r = self.read_response().await?;
                    if r.is_continuation() {
                        // One response; a second challenge is cancelled (`*`).
                        let mut line = if sent {
                            b"*".to_vec()
                        } else {
                            response_base64.clone()
                        };
                        sent = true;
                        line.extend_from_slice(b"\r\n");
                        self.writer.write_all(&line).await?;
                        self.writer.flush().await?;
                        continue;
                    }
                    if r.tag() == Some(tag.as_bytes()) {
                        break finish(r, Vec::new());
                    }
                }
            }
        };
        if reply.ok {
            self.capabilities = match reply.code {
                Some(Code::Capability(caps)) => Some(
                    caps.as_ref()
                        .iter()
                        .map(|c| c.to_string().to_ascii_uppercase())
                        .collect(),
                ),
                _ => None,
            };
            Ok(())
        } else {
            Err(ClientError::LoginRefused(reply.text()))
        }
    }

    fn tag(&mut self) -> String {
        let t = format!("W{}", self.next);
        self.next = self.next.wrapping_add(1);
        t
    }

    /// Send `body` under a new tag; literals wait for the server's `+`.
    pub(super) async fn send(&mut self, body: CommandBody<'_>) -> Result<String, ClientError> {
        let tag = self.tag();
        let name = body.name();
        let command = Command {
            tag: Tag::try_from(tag.as_str()).map_err(|_| ClientError::Unsendable("a tag"))?,
            body,
        };
        for fragment in CommandCodec::default().encode(&command) {
            match fragment {
                Fragment::Line { data } => {
                    self.writer.write_all(&data).await?;
                }
                Fragment::Literal { data, mode } => {
                    if mode == imap_codec::imap_types::core::LiteralMode::Sync {
                        self.writer.flush().await?;
                        if let Some(refusal) = self.wait_continuation(&tag).await? {
                            return Err(ClientError::Refused {
                                command: name,
                                text: refusal.first_line(),
                            });
                        }
                    }
                    self.writer.write_all(&data).await?;
                }
            }
        }
        self.writer.flush().await?;
        Ok(tag)
    }

    /// Send `body` and read its answer, whatever the status.
    pub async fn run(&mut self, body: CommandBody<'_>) -> Result<Reply, ClientError> {
        let tag = self.send(body).await?;
        self.read_reply(&tag).await
    }

    /// [`ImapClient::run`], a NO or BAD being an error.
    pub async fn ok(
        &mut self,
        name: &'static str,
        body: CommandBody<'_>,
    ) -> Result<Reply, ClientError> {
        let r = self.run(body).await?;
        if !r.ok {
            return Err(ClientError::Refused {
                command: name,
                text: r.status.clone(),
            });
        }
        Ok(r)
    }

    /// A command imap-codec has no type for (XLIST): `line` is a whole
    /// command without tag and CRLF, made of constants only.
    pub(super) async fn run_line(&mut self, line: &str) -> Result<Reply, ClientError> {
        let tag = self.tag();
        self.writer
            .write_all(format!("{tag} {line}\r\n").as_bytes())
            .await?;
        self.writer.flush().await?;
        self.read_reply(&tag).await
    }

    /// Send a continuation line (`DONE` after IDLE).
    pub(super) async fn send_raw_line(&mut self, line: &[u8]) -> Result<(), ClientError> {
        self.writer.write_all(line).await?;
        self.writer.flush().await?;
        Ok(())
    }

    /// Wait for `+` (`None`) or the tagged answer (a refusal).
    pub(super) async fn wait_continuation(
        &mut self,
        tag: &str,
    ) -> Result<Option<RawResponse>, ClientError> {
        loop {
            let r = self.read_response().await?;
            if r.is_continuation() {
                return Ok(None);
            }
            if r.tag() == Some(tag.as_bytes()) {
                return Ok(Some(r));
            }
        }
    }

    /// Read one response whole. Literals are checked against
    /// [`MAX_MESSAGE_BYTES`] before anything of them is buffered.
    pub(super) async fn read_response(&mut self) -> Result<RawResponse, ClientError> {
        let mut r = RawResponse::default();
        let mut literal = match self.reader.next().await? {
            Some(Frame::Line { bytes, literal }) => {
                r.bytes.extend_from_slice(&bytes);
                literal
            }
            _ => return Err(ClientError::Closed),
        };
        while let Some(lit) = literal {
            // One literal at most MAX_MESSAGE_BYTES, a whole response twice that.
            let total = (r.bytes.len() as u64).checked_add(lit.len);
            if lit.len > MAX_MESSAGE_BYTES
                || total.is_none_or(|t| t > MAX_MESSAGE_BYTES.saturating_mul(2))
            {
                return Err(ClientError::TooBig(lit.len));
            }
            r.bytes
                .reserve(usize::try_from(lit.len).map_err(|_| ClientError::TooBig(lit.len))?);
            let start = r.bytes.len();
            let mut remaining = lit.len;
            while remaining > 0 {
                match self.reader.next().await? {
                    Some(Frame::LiteralData {
                        bytes,
                        remaining: left,
                    }) => {
                        r.bytes.extend_from_slice(&bytes);
                        remaining = left;
                    }
                    _ => return Err(ClientError::Closed),
                }
            }
            r.literals.push(start..r.bytes.len());
            literal = match self.reader.next().await? {
                Some(Frame::Line { bytes, literal }) => {
                    r.bytes.extend_from_slice(&bytes);
                    literal
                }
                _ => return Err(ClientError::Closed),
            };
        }
        Ok(r)
    }

    /// Read untagged responses until `tag`'s tagged one.
    pub(super) async fn read_reply(&mut self, tag: &str) -> Result<Reply, ClientError> {
        let mut untagged = Vec::new();
        loop {
            let r = self.read_response().await?;
            if r.tag() == Some(tag.as_bytes()) {
                return Ok(finish(r, untagged));
            }
            if r.bytes.len() >= 5 && r.bytes[..5].eq_ignore_ascii_case(b"* BYE") {
                return Err(ClientError::Closed);
            }
            self.notified |= r.is_status();
            untagged.push(r);
        }
    }

    pub async fn logout(mut self) {
        let _ = self.run(CommandBody::Logout).await;
    }
}

/// The reply of a tagged response `r` (OK, NO or BAD with its code).
pub(super) fn finish(r: RawResponse, untagged: Vec<RawResponse>) -> Reply {
    let status = r.first_line();
    let (ok, code) = match r.decode() {
        Some(Response::Status(Status::Tagged(Tagged {
            body: StatusBody { kind, code, .. },
            ..
        }))) => (kind == StatusKind::Ok, code.map(|c| c.into_static())),
        // Not decodable: read the status word.
        _ => (
            status
                .split(' ')
                .nth(1)
                .is_some_and(|s| s.eq_ignore_ascii_case("OK")),
            None,
        ),
    };
    Reply {
        untagged,
        ok,
        status,
        code,
    }
}

/// An IMAP quoted string, for the proxy's own command lines (the sessions'
/// hook writes them as text).
pub fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(bytes: &[u8], literals: Vec<Range<usize>>) -> RawResponse {
        RawResponse {
            bytes: bytes.to_vec(),
            literals,
        }
    }

    #[test]
    fn a_literal_is_taken_out_without_the_lines_around_it() {
        let r = raw(
            b"* 3 FETCH (UID 7 BODY[] {5}\r\nhello)\r\n",
            std::iter::once(29..34).collect(),
        );
        assert_eq!(r.literal(0), Some(&b"hello"[..]));
        assert_eq!(r.text(), b"* 3 FETCH (UID 7 BODY[] {5}\r\n)\r\n");
        assert!(r.decode().is_some());
        assert_eq!(r.into_literal(0).unwrap(), b"hello");
    }

    #[test]
    fn a_tagged_reply_keeps_its_code_and_text() {
        let r = finish(
            raw(
                b"W3 OK [APPENDUID 38505 3955] Append completed.\r\n",
                vec![],
            ),
            vec![],
        );
        assert!(r.ok);
        assert!(matches!(r.code, Some(Code::AppendUid { .. })));
        assert_eq!(r.text(), "Append completed.");
        let no = finish(
            raw(
                b"W1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n",
                vec![],
            ),
            vec![],
        );
        assert!(!no.ok);
        assert_eq!(no.text(), "Authentication failed.");
    }

    #[test]
    fn quoting() {
        assert_eq!(quoted("CRM/Tr\"ack"), "\"CRM/Tr\\\"ack\"");
    }
}
