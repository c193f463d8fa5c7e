//! The sync worker's own small IMAP client: one upstream connection (same TLS
//! mode as the proxy's), logged in with the session's credential, doing the few
//! commands tracking needs (SELECT, UID SEARCH, UID FETCH BODY.PEEK[], UID STORE,
//! CREATE, IDLE). Literals are read by their announced length through the
//! proxy's framer; a fetched message is held whole because the engine needs it.

use base64::Engine as _;
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};

use super::connect::UpstreamConnector;
use super::BoxedIo;
use crate::imap_client::folders::{find_special, FolderLayout, ListEntry, SpecialUse};
use crate::imap_client::Credential;
use crate::wire::{Frame, Framer};

/// Why a worker command failed.
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
    #[error("upstream sent a literal larger than the worker accepts ({0} bytes)")]
    TooBig(u64),
}

/// Largest message the worker fetches for tracking.
pub const MAX_MESSAGE_BYTES: u64 = 256 * 1024 * 1024;

/// One untagged response: its lines (literals replaced by their length) and literals.
#[derive(Debug, Default)]
pub struct Untagged {
    pub text: Vec<u8>,
    pub literals: Vec<Vec<u8>>,
}

/// A command's answer.
#[derive(Debug, Default)]
pub struct Reply {
    pub untagged: Vec<Untagged>,
    pub ok: bool,
    /// The tagged line, for error messages.
    pub status: String,
}

pub struct ImapClient {
    reader: Framer<ReadHalf<BoxedIo>>,
    pub(crate) writer: WriteHalf<BoxedIo>,
    next: u32,
    /// PERMANENTFLAGS of the selected mailbox allows new keywords (`\*`).
    pub keywords_allowed: bool,
    /// The server's capabilities after login (upper case), once asked for.
    pub(crate) capabilities: Option<Vec<String>>,
    /// Whether this connection told the user that `replace` cannot work here.
    pub(crate) replace_refusal_said: bool,
    /// The server's folder layout, once asked for.
    layout: Option<FolderLayout>,
}

/// An IMAP quoted string (mailbox names, keywords are atoms).
pub fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

impl ImapClient {
    /// Connect and log in as the session did.
    pub async fn connect(
        connector: &UpstreamConnector,
        credential: &Credential,
    ) -> Result<ImapClient, ClientError> {
        let up = connector
            .connect()
            .await
            .map_err(|e| ClientError::Connect(e.to_string()))?;
        let mut c = ImapClient {
            reader: up.reader,
            writer: up.writer,
            next: 1,
            keywords_allowed: false,
            capabilities: None,
            replace_refusal_said: false,
            layout: None,
        };
        let reply = match credential {
            Credential::Login { user, password } => {
                c.command_with_literals("LOGIN", &[b"LOGIN ", user, b" ", password])
                    .await?
            }
            Credential::SaslPlain { response_base64 } => {
                // Checked base64 so that a stray byte cannot end the line early.
                if base64::engine::general_purpose::STANDARD
                    .decode(response_base64)
                    .is_err()
                {
                    return Err(ClientError::Refused {
                        command: "AUTHENTICATE",
                        text: "stored SASL response is not base64".into(),
                    });
                }
                let tag = c.tag();
                c.writer
                    .write_all(format!("{tag} AUTHENTICATE PLAIN\r\n").as_bytes())
                    .await?;
                c.writer.flush().await?;
                c.wait_continuation(&tag).await?;
                let mut line = response_base64.clone();
                line.extend_from_slice(b"\r\n");
                c.writer.write_all(&line).await?;
                c.writer.flush().await?;
                c.read_reply(&tag).await?
            }
        };
        if !reply.ok {
            return Err(ClientError::Refused {
                command: "LOGIN",
                text: "the upstream refused the session's credential".into(),
            });
        }
        Ok(c)
    }

    pub(crate) fn tag(&mut self) -> String {
        let t = format!("W{}", self.next);
        self.next += 1;
        t
    }

    /// Send `parts` where every part after the first, odd-indexed one is sent as a
    /// synchronising literal (user names and passwords of any bytes).
    async fn command_with_literals(
        &mut self,
        name: &'static str,
        parts: &[&[u8]],
    ) -> Result<Reply, ClientError> {
        let tag = self.tag();
        let mut pending: Vec<u8> = format!("{tag} ").into_bytes();
        for (i, part) in parts.iter().enumerate() {
            if i % 2 == 0 {
                pending.extend_from_slice(part);
            } else {
                pending.extend_from_slice(format!("{{{}}}\r\n", part.len()).as_bytes());
                self.writer.write_all(&pending).await?;
                self.writer.flush().await?;
                if !self.wait_continuation(&tag).await? {
                    return Err(ClientError::Refused {
                        command: name,
                        text: "literal refused".into(),
                    });
                }
                pending = part.to_vec();
            }
        }
        pending.extend_from_slice(b"\r\n");
        self.writer.write_all(&pending).await?;
        self.writer.flush().await?;
        self.read_reply(&tag).await
    }

    /// Wait for `+` (true) or the tagged answer (false).
    pub(crate) async fn wait_continuation(&mut self, tag: &str) -> Result<bool, ClientError> {
        loop {
            let (u, tagged) = self.read_response().await?;
            if u.text.starts_with(b"+") {
                return Ok(true);
            }
            if tagged.as_deref() == Some(tag) {
                return Ok(false);
            }
        }
    }

    /// Read one response; `Some(tag)` when tagged.
    pub(crate) async fn read_response(
        &mut self,
    ) -> Result<(Untagged, Option<String>), ClientError> {
        let mut u = Untagged::default();
        let mut literal = match self.reader.next().await? {
            Some(Frame::Line { bytes, literal }) => {
                u.text.extend_from_slice(&bytes);
                literal
            }
            Some(_) => return Err(ClientError::Closed),
            None => return Err(ClientError::Closed),
        };
        while let Some(lit) = literal {
            if lit.len > MAX_MESSAGE_BYTES {
                return Err(ClientError::TooBig(lit.len));
            }
            let mut data = Vec::with_capacity(lit.len as usize);
            let mut remaining = lit.len;
            while remaining > 0 {
                match self.reader.next().await? {
                    Some(Frame::LiteralData {
                        bytes,
                        remaining: r,
                    }) => {
                        data.extend_from_slice(&bytes);
                        remaining = r;
                    }
                    _ => return Err(ClientError::Closed),
                }
            }
            u.literals.push(data);
            literal = match self.reader.next().await? {
                Some(Frame::Line { bytes, literal }) => {
                    u.text.extend_from_slice(&bytes);
                    literal
                }
                _ => return Err(ClientError::Closed),
            };
        }
        let tag = crate::wire::token::first_token(&u.text);
        let tagged = (!tag.is_empty() && tag != b"*" && tag != b"+")
            .then(|| String::from_utf8_lossy(tag).into_owned());
        Ok((u, tagged))
    }

    pub(crate) async fn read_reply(&mut self, tag: &str) -> Result<Reply, ClientError> {
        let mut reply = Reply::default();
        loop {
            let (u, tagged) = self.read_response().await?;
            if tagged.as_deref() == Some(tag) {
                let line = String::from_utf8_lossy(&u.text).trim_end().to_string();
                reply.ok = line
                    .split(' ')
                    .nth(1)
                    .is_some_and(|s| s.eq_ignore_ascii_case("OK"));
                reply.status = line;
                return Ok(reply);
            }
            reply.untagged.push(u);
        }
    }

    /// Run one command line (without tag and CRLF).
    pub async fn command(&mut self, line: &str) -> Result<Reply, ClientError> {
        let tag = self.tag();
        self.writer
            .write_all(format!("{tag} {line}\r\n").as_bytes())
            .await?;
        self.writer.flush().await?;
        self.read_reply(&tag).await
    }

    pub(crate) async fn ok(
        &mut self,
        name: &'static str,
        line: &str,
    ) -> Result<Reply, ClientError> {
        let r = self.command(line).await?;
        if !r.ok {
            return Err(ClientError::Refused {
                command: name,
                text: r.status.clone(),
            });
        }
        Ok(r)
    }

    /// The server's capabilities after login (asked once per connection).
    pub async fn capabilities(&mut self) -> Result<&[String], ClientError> {
        if self.capabilities.is_none() {
            let r = self.ok("CAPABILITY", "CAPABILITY").await?;
            let caps = r
                .untagged
                .iter()
                .filter_map(|u| u.text.strip_prefix(b"* CAPABILITY "))
                .flat_map(|rest| {
                    String::from_utf8_lossy(rest)
                        .split_whitespace()
                        .map(str::to_ascii_uppercase)
                        .collect::<Vec<_>>()
                })
                .collect();
            self.capabilities = Some(caps);
        }
        Ok(self.capabilities.as_deref().unwrap_or_default())
    }

    /// SELECT a mailbox; returns its UIDVALIDITY.
    pub async fn select(&mut self, mailbox: &str) -> Result<u32, ClientError> {
        self.open("SELECT", mailbox).await
    }

    /// EXAMINE a mailbox (read-only SELECT); returns its UIDVALIDITY.
    pub async fn examine(&mut self, mailbox: &str) -> Result<u32, ClientError> {
        self.open("EXAMINE", mailbox).await
    }

    async fn open(&mut self, how: &'static str, mailbox: &str) -> Result<u32, ClientError> {
        let r = self.ok(how, &format!("{how} {}", quoted(mailbox))).await?;
        let mut validity = 0;
        self.keywords_allowed = false;
        for u in &r.untagged {
            let t = String::from_utf8_lossy(&u.text);
            if let Some(v) = t.split("[UIDVALIDITY ").nth(1) {
                validity = v
                    .split(']')
                    .next()
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or(0);
            }
            if t.contains("[PERMANENTFLAGS") && t.contains("\\*") {
                self.keywords_allowed = true;
            }
        }
        Ok(validity)
    }

    /// Create a mailbox; one that exists already is fine.
    pub async fn create(&mut self, mailbox: &str) -> Result<(), ClientError> {
        let r = self.command(&format!("CREATE {}", quoted(mailbox))).await?;
        if r.ok || r.status.to_ascii_uppercase().contains("ALREADYEXISTS") {
            return Ok(());
        }
        // Servers without the ALREADYEXISTS code: a LIST tells.
        let l = self
            .ok("LIST", &format!("LIST \"\" {}", quoted(mailbox)))
            .await?;
        if l.untagged.iter().any(|u| u.text.starts_with(b"* LIST")) {
            return Ok(());
        }
        Err(ClientError::Refused {
            command: "CREATE",
            text: r.status,
        })
    }

    /// The server's folder layout: its first personal namespace (NAMESPACE),
    /// else no prefix and the delimiter `LIST "" ""` answers. Asked once.
    pub async fn layout(&mut self) -> Result<FolderLayout, ClientError> {
        if let Some(l) = &self.layout {
            return Ok(l.clone());
        }
        let r = self.command("NAMESPACE").await?;
        let mut layout = r
            .untagged
            .iter()
            .filter(|_| r.ok)
            .find_map(|u| FolderLayout::from_namespace_line(&String::from_utf8_lossy(&u.text)));
        if layout.is_none() {
            let l = self.ok("LIST", "LIST \"\" \"\"").await?;
            layout = l
                .untagged
                .iter()
                .find_map(|u| ListEntry::parse(&String::from_utf8_lossy(&u.text), None))
                .map(|root| FolderLayout::new("", root.delimiter));
        }
        let layout = layout.unwrap_or_default();
        self.layout = Some(layout.clone());
        Ok(layout)
    }

    /// The server name of the folder of `kind`: `configured` (a logical path)
    /// when set; else the folder marked so (SPECIAL-USE, or XLIST where the server
    /// has only that), else one with a well-known name; `None` when none exists.
    pub async fn special_folder(
        &mut self,
        kind: SpecialUse,
        configured: Option<&str>,
    ) -> Result<Option<String>, ClientError> {
        let layout = self.layout().await?;
        if let Some(c) = configured {
            return Ok(Some(layout.to_server(c)));
        }
        let caps = self.capabilities().await?;
        let has = |c: &str| caps.iter().any(|x| x == c);
        let list = if has("XLIST") && !has("SPECIAL-USE") {
            "XLIST \"\" \"*\""
        } else {
            "LIST \"\" \"*\""
        };
        let r = self.ok("LIST", list).await?;
        let entries: Vec<ListEntry> = r
            .untagged
            .iter()
            .filter_map(|u| {
                let name = u.literals.first().map(Vec::as_slice);
                ListEntry::parse(&String::from_utf8_lossy(&u.text), name)
            })
            .collect();
        Ok(find_special(&entries, kind, &layout))
    }

    /// UIDs of the selected mailbox matching a search (e.g. `UID 4:9`, `ALL`).
    pub async fn uid_search(&mut self, criteria: &str) -> Result<Vec<u32>, ClientError> {
        let r = self
            .ok("UID SEARCH", &format!("UID SEARCH {criteria}"))
            .await?;
        let mut uids = Vec::new();
        for u in &r.untagged {
            if let Some(rest) = u.text.strip_prefix(b"* SEARCH") {
                uids.extend(
                    String::from_utf8_lossy(rest)
                        .split_whitespace()
                        .filter_map(|n| n.parse::<u32>().ok()),
                );
            }
        }
        Ok(uids)
    }

    /// The whole message with this UID (not marked \Seen), or `None` if gone.
    pub async fn fetch_raw(&mut self, uid: u32) -> Result<Option<Vec<u8>>, ClientError> {
        self.fetch_section(uid, "BODY.PEEK[]").await
    }

    /// Only the Message-ID field of message `uid` (as a header section), or `None`.
    pub async fn fetch_message_id_field(
        &mut self,
        uid: u32,
    ) -> Result<Option<Vec<u8>>, ClientError> {
        self.fetch_section(uid, "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]")
            .await
    }

    async fn fetch_section(
        &mut self,
        uid: u32,
        section: &str,
    ) -> Result<Option<Vec<u8>>, ClientError> {
        let r = self
            .ok("UID FETCH", &format!("UID FETCH {uid} (UID {section})"))
            .await?;
        for mut u in r.untagged {
            let is_fetch = String::from_utf8_lossy(&u.text)
                .split_whitespace()
                .nth(2)
                .is_some_and(|w| w.eq_ignore_ascii_case("FETCH"));
            if is_fetch && !u.literals.is_empty() && contains_uid(&u.text, uid) {
                return Ok(Some(u.literals.swap_remove(0)));
            }
        }
        Ok(None)
    }

    /// Add and remove keywords on one message, silently.
    pub async fn store_keywords(
        &mut self,
        uid: u32,
        add: &[&str],
        remove: &[&str],
    ) -> Result<(), ClientError> {
        if !add.is_empty() {
            self.ok(
                "UID STORE",
                &format!("UID STORE {uid} +FLAGS.SILENT ({})", add.join(" ")),
            )
            .await?;
        }
        if !remove.is_empty() {
            self.ok(
                "UID STORE",
                &format!("UID STORE {uid} -FLAGS.SILENT ({})", remove.join(" ")),
            )
            .await?;
        }
        Ok(())
    }

    /// IDLE until the server reports something or `wait` passes; returns whether
    /// new messages may have arrived (an EXISTS was seen).
    pub async fn idle(&mut self, wait: std::time::Duration) -> Result<bool, ClientError> {
        let tag = self.tag();
        self.writer
            .write_all(format!("{tag} IDLE\r\n").as_bytes())
            .await?;
        self.writer.flush().await?;
        // An EXISTS the server sends before its `+` (mail that arrived since the
        // last command) counts too: IDLE then ends at once.
        let mut exists = false;
        loop {
            let (u, tagged) = self.read_response().await?;
            if u.text.starts_with(b"+") {
                break;
            }
            if tagged.as_deref() == Some(tag.as_str()) {
                return Err(ClientError::Refused {
                    command: "IDLE",
                    text: "IDLE refused".into(),
                });
            }
            exists |= is_exists(&u.text);
        }
        let wait = if exists {
            std::time::Duration::ZERO
        } else {
            wait
        };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.read_response()).await {
                Err(_) => break,
                Ok(r) => {
                    let (u, _) = r?;
                    if is_exists(&u.text) {
                        exists = true;
                        break;
                    }
                }
            }
        }
        self.writer.write_all(b"DONE\r\n").await?;
        self.writer.flush().await?;
        self.read_reply(&tag).await?;
        Ok(exists)
    }

    pub async fn logout(mut self) {
        let _ = self.command("LOGOUT").await;
    }
}

/// Whether an untagged response is `* N EXISTS`.
fn is_exists(text: &[u8]) -> bool {
    String::from_utf8_lossy(text)
        .to_ascii_uppercase()
        .contains(" EXISTS")
}

/// Whether a FETCH response's text names `UID uid`.
pub(crate) fn contains_uid(text: &[u8], uid: u32) -> bool {
    let t = String::from_utf8_lossy(text).to_ascii_uppercase();
    let words: Vec<&str> = t
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .collect();
    words
        .windows(2)
        .any(|w| w[0] == "UID" && w[1] == uid.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_in_fetch_text() {
        assert!(contains_uid(b"* 3 FETCH (UID 7 BODY[] {12}\r\n)\r\n", 7));
        assert!(!contains_uid(b"* 3 FETCH (UID 71 BODY[] {12}\r\n)\r\n", 7));
        assert_eq!(quoted("CRM/Tr\"ack"), "\"CRM/Tr\\\"ack\"");
    }
}
