//! The commands tracking needs on a logged-in connection, each built from
//! imap-codec types and answered with typed values: CAPABILITY, SELECT/EXAMINE
//! (UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, whether keywords may be set), CREATE,
//! UID SEARCH, UID FETCH of a message or its Message-ID field (always
//! `BODY.PEEK`: the client never sets `\Seen`), UID STORE of keywords, UID
//! EXPUNGE, IDLE, and the folder layout (NAMESPACE, LIST, special-use folders).

use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::core::{AString, Atom, Vec1};
use imap_codec::imap_types::fetch::{
    MacroOrMessageDataItemNames, MessageDataItem, MessageDataItemName, Section,
};
use imap_codec::imap_types::flag::{Flag, FlagPerm, StoreResponse, StoreType};
use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::imap_types::response::{Code, Data, Response, Status};
use imap_codec::imap_types::search::SearchKey;
use imap_codec::imap_types::sequence::SequenceSet;
use std::num::NonZeroU32;

use super::client::{ClientError, ImapClient, RawResponse};
use super::folders::{find_special, FolderLayout, ListEntry, SpecialUse};

/// What SELECT or EXAMINE told of a mailbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Selected {
    pub uid_validity: u32,
    /// The UID the next message will get (0: the server did not say).
    pub uid_next: u32,
    pub exists: u32,
    /// CONDSTORE's HIGHESTMODSEQ, when the server has it.
    pub highest_modseq: Option<u64>,
    /// PERMANENTFLAGS allows new keywords (`\*`).
    pub keywords_allowed: bool,
}

/// Which messages a UID SEARCH asks for.
#[derive(Debug, Clone, Copy)]
pub enum Search<'a> {
    All,
    /// UIDs from this one on (`UID n:*`; the last message answers even when
    /// all are older, as IMAP says: filter on the caller's side).
    UidsFrom(u32),
    /// An IMAP UID set as a client wrote it (`4:9,12`); refused if malformed.
    UidSet(&'a str),
    /// Messages carrying a keyword.
    Keyword(&'a str),
    /// Messages whose Message-ID header contains this text.
    MessageId(&'a str),
}

fn mailbox(name: &str) -> Result<Mailbox<'_>, ClientError> {
    Mailbox::try_from(name).map_err(|_| ClientError::Unsendable("a mailbox name"))
}

fn keyword(k: &str) -> Result<Flag<'_>, ClientError> {
    Flag::try_from(k).map_err(|_| ClientError::Unsendable("a keyword"))
}

fn uid(uid: u32) -> Result<SequenceSet, ClientError> {
    let n = NonZeroU32::new(uid).ok_or(ClientError::Unsendable("UID 0"))?;
    Ok(SequenceSet::from(n))
}

impl ImapClient {
    /// The server's capabilities after login (asked once per connection).
    pub async fn capabilities(&mut self) -> Result<&[String], ClientError> {
        if self.capabilities.is_none() {
            let r = self.ok("CAPABILITY", CommandBody::Capability).await?;
            let mut caps = Vec::new();
            for u in &r.untagged {
                if let Some(Response::Data(Data::Capability(c))) = u.decode() {
                    caps.extend(
                        c.as_ref()
                            .iter()
                            .map(|c| c.to_string().to_ascii_uppercase()),
                    );
                }
            }
            self.capabilities = Some(caps);
        }
        Ok(self.capabilities.as_deref().unwrap_or_default())
    }

    /// Whether the server announced `cap` (upper case).
    pub async fn has_capability(&mut self, cap: &str) -> Result<bool, ClientError> {
        Ok(self.capabilities().await?.iter().any(|c| c == cap))
    }

    /// SELECT a mailbox.
    pub async fn select(&mut self, name: &str) -> Result<Selected, ClientError> {
        let body = CommandBody::select(mailbox(name)?)
            .map_err(|_| ClientError::Unsendable("a mailbox name"))?;
        self.open("SELECT", body).await
    }

    /// EXAMINE a mailbox (read-only SELECT).
    pub async fn examine(&mut self, name: &str) -> Result<Selected, ClientError> {
        let body = CommandBody::examine(mailbox(name)?)
            .map_err(|_| ClientError::Unsendable("a mailbox name"))?;
        self.open("EXAMINE", body).await
    }

    async fn open(
        &mut self,
        how: &'static str,
        body: CommandBody<'_>,
    ) -> Result<Selected, ClientError> {
        let r = self.ok(how, body).await?;
        let mut s = Selected::default();
        for u in &r.untagged {
            match u.decode() {
                Some(Response::Status(Status::Untagged(b))) => {
                    if let Some(code) = b.code {
                        learn(&mut s, &code);
                    }
                }
                Some(Response::Data(Data::Exists(n))) => s.exists = n,
                _ => {}
            }
        }
        if let Some(code) = &r.code {
            learn(&mut s, code);
        }
        self.keywords_allowed = s.keywords_allowed;
        Ok(s)
    }

    /// CREATE a mailbox; one that exists already is fine.
    pub async fn create(&mut self, name: &str) -> Result<(), ClientError> {
        let body = CommandBody::create(mailbox(name)?)
            .map_err(|_| ClientError::Unsendable("a mailbox name"))?;
        let r = self.run(body).await?;
        if r.ok || r.status.to_ascii_uppercase().contains("[ALREADYEXISTS]") {
            return Ok(());
        }
        let list =
            CommandBody::list("", name).map_err(|_| ClientError::Unsendable("a mailbox name"))?;
        let l = self.ok("LIST", list).await?;
        if l.untagged
            .iter()
            .any(|u| matches!(u.decode(), Some(Response::Data(Data::List { .. }))))
        {
            return Ok(());
        }
        Err(ClientError::Refused {
            command: "CREATE",
            text: r.status,
        })
    }

    /// SUBSCRIBE to a mailbox (so that clients show a folder this program made).
    pub async fn subscribe(&mut self, name: &str) -> Result<(), ClientError> {
        let body = CommandBody::subscribe(mailbox(name)?)
            .map_err(|_| ClientError::Unsendable("a mailbox name"))?;
        self.ok("SUBSCRIBE", body).await?;
        Ok(())
    }

    /// The server's folder layout (NAMESPACE, else the root's delimiter).
    pub async fn layout(&mut self) -> Result<FolderLayout, ClientError> {
        if let Some(l) = &self.layout {
            return Ok(l.clone());
        }
        let r = self.run(CommandBody::Namespace).await?;
        let mut layout = r
            .untagged
            .iter()
            .filter(|_| r.ok)
            .find_map(|u| FolderLayout::from_namespace_line(&u.first_line()));
        if layout.is_none() {
            let list =
                CommandBody::list("", "").map_err(|_| ClientError::Unsendable("a mailbox name"))?;
            let l = self.ok("LIST", list).await?;
            layout = l
                .untagged
                .iter()
                .find_map(|u| ListEntry::parse(&u.first_line(), None))
                .map(|root| FolderLayout::new("", root.delimiter));
        }
        let layout = layout.unwrap_or_default();
        self.layout = Some(layout.clone());
        Ok(layout)
    }

    /// The server name of a special-use folder: `configured` (a logical path)
    /// mapped to the server's namespace, else the folder LIST (or XLIST) marks.
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
        let r = if has("XLIST") && !has("SPECIAL-USE") {
            // imap-codec has no XLIST: a constant line, read as text.
            let r = self.run_line("XLIST \"\" \"*\"").await?;
            if !r.ok {
                return Err(ClientError::Refused {
                    command: "XLIST",
                    text: r.status,
                });
            }
            r
        } else {
            let list = CommandBody::list("", "*")
                .map_err(|_| ClientError::Unsendable("a mailbox name"))?;
            self.ok("LIST", list).await?
        };
        let entries: Vec<ListEntry> = r
            .untagged
            .iter()
            .filter_map(|u| ListEntry::parse(&String::from_utf8_lossy(&u.text()), u.literal(0)))
            .collect();
        Ok(find_special(&entries, kind, &layout))
    }

    /// Every folder the server lists (`LIST "" "*"`), for `gateway test`.
    pub async fn list_folders(&mut self) -> Result<Vec<ListEntry>, ClientError> {
        let list =
            CommandBody::list("", "*").map_err(|_| ClientError::Unsendable("a mailbox name"))?;
        let r = self.ok("LIST", list).await?;
        Ok(r.untagged
            .iter()
            .filter_map(|u| ListEntry::parse(&String::from_utf8_lossy(&u.text()), u.literal(0)))
            .collect())
    }

    /// UID SEARCH; the UIDs found.
    pub async fn uid_search(&mut self, what: Search<'_>) -> Result<Vec<u32>, ClientError> {
        let key = match what {
            Search::All => SearchKey::All,
            Search::UidsFrom(from) => {
                let from = from.max(1);
                SearchKey::Uid(
                    SequenceSet::try_from(format!("{from}:*").as_str())
                        .map_err(|_| ClientError::Unsendable("a UID range"))?,
                )
            }
            Search::UidSet(set) => SearchKey::Uid(
                SequenceSet::try_from(set).map_err(|_| ClientError::Unsendable("a UID set"))?,
            ),
            Search::Keyword(k) => SearchKey::Keyword(
                Atom::try_from(k).map_err(|_| ClientError::Unsendable("a keyword"))?,
            ),
            Search::MessageId(id) => SearchKey::Header(
                AString::try_from("Message-ID").map_err(|_| ClientError::Unsendable("a header"))?,
                AString::try_from(id).map_err(|_| ClientError::Unsendable("a Message-ID"))?,
            ),
        };
        let r = self
            .ok(
                "UID SEARCH",
                CommandBody::search(None, Vec1::from(key), true),
            )
            .await?;
        let mut uids = Vec::new();
        for u in &r.untagged {
            match u.decode() {
                Some(Response::Data(Data::Search(found, ..))) => {
                    uids.extend(found.iter().map(|n| n.get()))
                }
                // `* SEARCH` with trailing space and other quirks: read the numbers.
                _ => {
                    let line = u.first_line();
                    if let Some(rest) = line.strip_prefix("* SEARCH") {
                        uids.extend(
                            rest.split_whitespace()
                                .filter_map(|n| n.parse::<u32>().ok()),
                        );
                    }
                }
            }
        }
        Ok(uids)
    }

    /// The whole message `uid` (BODY.PEEK[]), or `None` if it is gone.
    pub async fn fetch_raw(&mut self, uid: u32) -> Result<Option<Vec<u8>>, ClientError> {
        self.fetch_section(uid, None).await
    }

    /// The Message-ID header field of message `uid`, or `None` if it is gone.
    pub async fn fetch_message_id_field(
        &mut self,
        uid: u32,
    ) -> Result<Option<Vec<u8>>, ClientError> {
        let fields = Vec1::from(AString::try_from("MESSAGE-ID").expect("an atom"));
        self.fetch_section(uid, Some(Section::HeaderFields(None, fields)))
            .await
    }

    async fn fetch_section(
        &mut self,
        uid_wanted: u32,
        section: Option<Section<'static>>,
    ) -> Result<Option<Vec<u8>>, ClientError> {
        let items = MacroOrMessageDataItemNames::MessageDataItemNames(vec![
            MessageDataItemName::Uid,
            MessageDataItemName::BodyExt {
                section,
                partial: None,
                peek: true,
            },
        ]);
        let body = CommandBody::fetch(uid(uid_wanted)?, items, true)
            .map_err(|_| ClientError::Unsendable("a UID"))?;
        let r = self.ok("UID FETCH", body).await?;
        for u in r.untagged {
            if fetch_uid(&u) == Some(uid_wanted) && !u.literals.is_empty() {
                return Ok(u.into_literal(0));
            }
        }
        Ok(None)
    }

    /// Add and remove keywords of message `uid` (`.SILENT`: no FETCH back).
    pub async fn store_keywords(
        &mut self,
        uid_of: u32,
        add: &[&str],
        remove: &[&str],
    ) -> Result<(), ClientError> {
        for (kind, list) in [(StoreType::Add, add), (StoreType::Remove, remove)] {
            if list.is_empty() {
                continue;
            }
            self.store_flags(
                uid_of,
                kind,
                list.iter().map(|k| keyword(k)).collect::<Result<_, _>>()?,
            )
            .await?;
        }
        Ok(())
    }

    /// UID STORE of any flags (system flags included).
    pub async fn store_flags(
        &mut self,
        uid_of: u32,
        kind: StoreType,
        flags: Vec<Flag<'_>>,
    ) -> Result<(), ClientError> {
        let body = CommandBody::store(uid(uid_of)?, kind, StoreResponse::Silent, flags, true)
            .map_err(|_| ClientError::Unsendable("a UID"))?;
        self.ok("UID STORE", body).await?;
        Ok(())
    }

    /// `\Deleted` on message `uid` alone, then UID EXPUNGE of it alone (UIDPLUS).
    pub async fn expunge_uid(&mut self, uid_of: u32) -> Result<(), ClientError> {
        self.store_flags(uid_of, StoreType::Add, vec![Flag::Deleted])
            .await?;
        let body = CommandBody::ExpungeUid {
            sequence_set: uid(uid_of)?,
        };
        self.ok("UID EXPUNGE", body).await?;
        Ok(())
    }

    /// NOTIFY (RFC 5465): from now on the server tells of new and expunged
    /// mail in the selected folder and in `others` (as `STATUS`), also while
    /// no IDLE runs ([`ImapClient::take_notified`]). Refused (`Unsendable`) for
    /// a folder name that is not printable ASCII (IMAP's modified UTF-7 names
    /// are); the caller then keeps plain IDLE.
    pub async fn notify_new_mail(&mut self, others: &[&str]) -> Result<(), ClientError> {
        let mut line = String::from("NOTIFY SET (selected (MessageNew MessageExpunge))");
        if !others.is_empty() {
            // RFC 5465: `mailboxes` takes one name or a parenthesised list.
            line.push_str(" (mailboxes (");
            for (i, name) in others.iter().enumerate() {
                if name.is_empty() || !name.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                    return Err(ClientError::Unsendable("a folder name for NOTIFY"));
                }
                if i > 0 {
                    line.push(' ');
                }
                line.push_str(&super::quoted(name));
            }
            line.push_str(") (MessageNew MessageExpunge))");
        }
        let r = self.run_line(&line).await?;
        if !r.ok {
            return Err(ClientError::Refused {
                command: "NOTIFY",
                text: r.text(),
            });
        }
        Ok(())
    }

    /// Whether a NOTIFY `STATUS` (new mail in a folder not selected) came since
    /// the last time this was asked.
    pub fn take_notified(&mut self) -> bool {
        std::mem::take(&mut self.notified)
    }

    /// IDLE for at most `wait`; true when the server announced new mail
    /// (EXISTS, or with NOTIFY a `STATUS` of another folder) — a recent,
    /// expunge or flag change only ends the wait at its end.
    pub async fn idle(&mut self, wait: std::time::Duration) -> Result<bool, ClientError> {
        let tag = self.send(CommandBody::Idle).await?;
        // An EXISTS the server sends before its `+` (mail that arrived since the
        // last command) counts too: the wait then ends at once.
        let mut exists = false;
        loop {
            let r = self.read_response().await?;
            if r.is_continuation() {
                break;
            }
            if r.is_tagged(&tag) {
                return Err(ClientError::Refused {
                    command: "IDLE",
                    text: r.first_line(),
                });
            }
            exists |= is_exists(&r) || r.is_status();
        }
        if !exists {
            let deadline = tokio::time::Instant::now() + wait;
            while let Ok(r) = tokio::time::timeout_at(deadline, self.read_response()).await {
                let r = r?;
                if is_exists(&r) || r.is_status() {
                    exists = true;
                    break;
                }
            }
        }
        self.send_raw_line(b"DONE\r\n").await?;
        self.read_reply(&tag).await?;
        Ok(exists)
    }
}

/// Whether a response is `* n EXISTS`.
fn is_exists(r: &RawResponse) -> bool {
    matches!(r.decode(), Some(Response::Data(Data::Exists(_))))
}

/// What a response code of SELECT tells.
fn learn(s: &mut Selected, code: &Code<'_>) {
    match code {
        Code::UidValidity(v) => s.uid_validity = v.get(),
        Code::UidNext(v) => s.uid_next = v.get(),
        Code::HighestModSeq(v) => s.highest_modseq = Some(v.get()),
        Code::NoModSeq => s.highest_modseq = None,
        Code::PermanentFlags(flags) => {
            s.keywords_allowed = flags.iter().any(|f| matches!(f, FlagPerm::Asterisk));
        }
        _ => {}
    }
}

/// The UID of a FETCH response.
pub(super) fn fetch_uid(u: &RawResponse) -> Option<u32> {
    match u.decode()? {
        Response::Data(Data::Fetch { items, .. }) => items.as_ref().iter().find_map(|i| match i {
            MessageDataItem::Uid(n) => Some(n.get()),
            _ => None,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    /// A server that answers IDLE with an EXISTS before its `+`: mail that came
    /// in since the last command. The client must not wait out its IDLE for it.
    #[tokio::test]
    async fn an_exists_before_the_idle_continuation_ends_the_wait() {
        let (client_io, server_io) = tokio::io::duplex(4096);
        let server = tokio::spawn(async move {
            let (r, mut w) = tokio::io::split(server_io);
            let mut lines = BufReader::new(r).lines();
            assert_eq!(lines.next_line().await.unwrap().unwrap(), "W1 IDLE");
            w.write_all(b"* 5 EXISTS\r\n+ idling\r\n").await.unwrap();
            assert_eq!(lines.next_line().await.unwrap().unwrap(), "DONE");
            w.write_all(b"W1 OK IDLE done\r\n").await.unwrap();
        });
        let mut c = ImapClient::over(Box::new(client_io), b"* OK ready\r\n");
        let hour = std::time::Duration::from_secs(3600);
        // The guard only turns a hang into a failure; it measures nothing.
        let got = tokio::time::timeout(std::time::Duration::from_secs(30), c.idle(hour))
            .await
            .expect("IDLE waited although mail had come")
            .unwrap();
        assert!(got);
        server.await.unwrap();
    }

    #[test]
    fn the_uid_of_a_fetch_response() {
        let r = RawResponse {
            bytes: b"* 3 FETCH (UID 71 BODY[] {2}\r\nhi)\r\n".to_vec(),
            literals: std::iter::once(29..31).collect(),
        };
        assert_eq!(fetch_uid(&r), Some(71));
        let not = RawResponse {
            bytes: b"* 3 EXISTS\r\n".to_vec(),
            literals: vec![],
        };
        assert_eq!(fetch_uid(&not), None);
    }
}
