//! `tracking.write_headers = "replace"` (SPEC section 3): a message the sync worker
//! tracks is replaced by a copy with the X-CRM-* block on top. The copy is APPENDed
//! with the original's flags and INTERNALDATE; the original is expunged (by UID,
//! RFC 4315) only after APPENDUID confirms the copy. A failure at any step leaves
//! the original where it was, and a copy already made is removed again.
//!
//! The proxy never edits a message the server holds: this makes a new message
//! (a new UID), which clients fetch like any other.

use std::sync::Arc;

use super::client::{quoted, ClientError, ImapClient};
use super::user::JobError;
use super::Inner;
use crate::config::WriteHeaders;
use crate::store::{MessageId, MessageLocation, UserId};

/// What became of a tracked message in `replace` mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Replaced {
    /// `write_headers` is `appended`: nothing to do.
    Off,
    /// The copy with the block is at this UID; the original is gone.
    Copy { uid: u32 },
    /// Left as it is, and why.
    Left(&'static str),
}

/// Why this server cannot take `replace`, or `None` when it can.
fn refusal(capabilities: &[String]) -> Option<&'static str> {
    let has = |c: &str| capabilities.iter().any(|x| x == c);
    if has("X-GM-EXT-1") {
        // Gmail: an expunge removes a label, the message stays in All Mail: the
        // replacement would leave two copies.
        Some("the server is Gmail (X-GM-EXT-1), where an expunge does not delete a message")
    } else if !has("UIDPLUS") {
        Some("the server lacks UIDPLUS (APPENDUID and UID EXPUNGE)")
    } else {
        None
    }
}

/// Replace the tracked message at `at` (its folder selected on `c`; `raw` its bytes
/// as fetched) by a copy with the block on top, when the config asks for it.
pub(super) async fn replace_with_block(
    inner: &Arc<Inner>,
    c: &mut ImapClient,
    owner: UserId,
    login: &str,
    at: &MessageLocation,
    raw: &[u8],
) -> Result<Replaced, JobError> {
    let done = match replace(inner, c, owner, login, at, raw).await {
        // The server said no (a quota, a folder it will not append to): the
        // original stays, tracked; the user hears why. Anything else (the
        // connection) is the job's failure.
        Err(JobError::Imap(ClientError::Refused { command, text })) => {
            tracing::warn!(uid = at.uid, folder = %at.folder, command, text = %text, "no copy with the tracking block");
            inner.notice(
                login,
                format!("CRM: tracking headers were not written into a message in {}: the server refused {command}: {text}", at.folder),
            );
            Replaced::Left("the server refused")
        }
        other => other?,
    };
    if let Replaced::Left(why) = &done {
        tracing::debug!(uid = at.uid, folder = %at.folder, why, "tracked message left as it is");
    }
    Ok(done)
}

async fn replace(
    inner: &Arc<Inner>,
    c: &mut ImapClient,
    owner: UserId,
    login: &str,
    at: &MessageLocation,
    raw: &[u8],
) -> Result<Replaced, JobError> {
    if inner.engine.config().write_headers != WriteHeaders::Replace {
        return Ok(Replaced::Off);
    }
    if crate::track::starts_with_block(raw) {
        return Ok(Replaced::Left("it carries a block already"));
    }
    if let Some(why) = refusal(c.capabilities().await?) {
        if !c.replace_refusal_said {
            c.replace_refusal_said = true;
            tracing::warn!(reason = why, "tracking.write_headers = \"replace\" refused");
            inner.notice(
                login,
                format!("CRM: tracking headers are not written into messages: {why}"),
            );
        }
        return Ok(Replaced::Left(why));
    }
    let Some(message_id) = message_id_of(raw) else {
        return Ok(Replaced::Left("it has no Message-ID"));
    };
    let Some((flags, date)) = c.flags_and_date(at.uid).await? else {
        return Ok(Replaced::Left("it is gone"));
    };
    if flags.iter().any(|f| f.eq_ignore_ascii_case("\\Deleted")) {
        return Ok(Replaced::Left("it is marked for deletion"));
    }
    let engine = inner.engine.clone();
    let mid = message_id.clone();
    let block = tokio::task::spawn_blocking(move || engine.written_block(owner, &mid))
        .await
        .map_err(|e| JobError::Join(e.to_string()))??;
    let Some(block) = block else {
        return Ok(Replaced::Left("it is not tracked (yet)"));
    };
    let copy = [block.as_slice(), raw].concat();
    let Some(new_uid) = c.append(&at.folder, &flags, &date, &copy).await? else {
        return Ok(Replaced::Left("the server did not say where the copy is"));
    };
    drop(copy);
    if let Err(e) = expunge(c, at.uid).await {
        // The original stays; the copy goes again (best effort: it is a copy).
        let _ = c
            .ok(
                "UID STORE",
                &format!("UID STORE {} -FLAGS.SILENT (\\Deleted)", at.uid),
            )
            .await;
        let _ = expunge(c, new_uid).await;
        return Err(e.into());
    }
    let location = MessageLocation {
        uid: new_uid,
        ..at.clone()
    };
    let engine = inner.engine.clone();
    tokio::task::spawn_blocking(move || engine.relocate(owner, &message_id, location))
        .await
        .map_err(|e| JobError::Join(e.to_string()))??;
    tracing::info!(old = at.uid, new = new_uid, folder = %at.folder, "replaced by a copy with its tracking block");
    Ok(Replaced::Copy { uid: new_uid })
}

/// `\Deleted` on one message, then UID EXPUNGE of it alone.
async fn expunge(c: &mut ImapClient, uid: u32) -> Result<(), ClientError> {
    c.ok(
        "UID STORE",
        &format!("UID STORE {uid} +FLAGS.SILENT (\\Deleted)"),
    )
    .await?;
    c.ok("UID EXPUNGE", &format!("UID EXPUNGE {uid}")).await?;
    Ok(())
}

/// The Message-ID a tracking record keys a message by (see the engine).
fn message_id_of(raw: &[u8]) -> Option<MessageId> {
    let end = crate::message::headers::header_end(raw).unwrap_or(raw.len());
    let mid = crate::proxy::state::message_id_from_header(&raw[..end])?;
    MessageId::parse(&mid).ok()
}

impl ImapClient {
    /// The server's capabilities after login (asked once per connection).
    pub(super) async fn capabilities(&mut self) -> Result<&[String], ClientError> {
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

    /// FLAGS (without `\Recent`, which no client may set) and INTERNALDATE (as
    /// the server wrote it, quoted) of message `uid`, or `None` if it is gone.
    pub(super) async fn flags_and_date(
        &mut self,
        uid: u32,
    ) -> Result<Option<(Vec<String>, String)>, ClientError> {
        let r = self
            .ok(
                "UID FETCH",
                &format!("UID FETCH {uid} (UID FLAGS INTERNALDATE)"),
            )
            .await?;
        for u in &r.untagged {
            let text = String::from_utf8_lossy(&u.text);
            let (Some(flags), Some(date)) = (
                text.split("FLAGS (")
                    .nth(1)
                    .and_then(|f| f.split(')').next()),
                text.split("INTERNALDATE \"")
                    .nth(1)
                    .and_then(|d| d.split('"').next()),
            ) else {
                continue;
            };
            if !super::client::contains_uid(&u.text, uid) {
                continue;
            }
            let flags = flags
                .split_whitespace()
                .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
                .map(str::to_owned)
                .collect();
            return Ok(Some((flags, format!("\"{date}\""))));
        }
        Ok(None)
    }

    /// APPEND `message` to `folder` with `flags` and `date` (a quoted
    /// INTERNALDATE); the new UID from APPENDUID (`None` when the server gave none).
    pub(super) async fn append(
        &mut self,
        folder: &str,
        flags: &[String],
        date: &str,
        message: &[u8],
    ) -> Result<Option<u32>, ClientError> {
        use tokio::io::AsyncWriteExt;
        let tag = self.tag();
        let line = format!(
            "{tag} APPEND {} ({}) {date} {{{}}}\r\n",
            quoted(folder),
            flags.join(" "),
            message.len()
        );
        self.writer.write_all(line.as_bytes()).await?;
        self.writer.flush().await?;
        // The server may refuse before the literal (a quota it checks up front).
        loop {
            let (u, tagged) = self.read_response().await?;
            if u.text.starts_with(b"+") {
                break;
            }
            if tagged.as_deref() == Some(tag.as_str()) {
                return Err(ClientError::Refused {
                    command: "APPEND",
                    text: String::from_utf8_lossy(&u.text).trim_end().to_string(),
                });
            }
        }
        self.writer.write_all(message).await?;
        self.writer.write_all(b"\r\n").await?;
        self.writer.flush().await?;
        let r = self.read_reply(&tag).await?;
        if !r.ok {
            return Err(ClientError::Refused {
                command: "APPEND",
                text: r.status,
            });
        }
        // `TAG OK [APPENDUID <uidvalidity> <uid>] …`
        Ok(r.status
            .to_ascii_uppercase()
            .split("[APPENDUID ")
            .nth(1)
            .and_then(|rest| rest.split(']').next())
            .and_then(|v| v.split_whitespace().nth(1))
            .and_then(|uid| uid.parse().ok()))
    }
}

#[cfg(test)]
mod tests {
    use super::refusal;

    fn caps(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn replace_needs_uidplus_and_is_refused_on_gmail() {
        assert_eq!(refusal(&caps("IMAP4REV1 UIDPLUS IDLE")), None);
        assert!(refusal(&caps("IMAP4REV1 IDLE"))
            .unwrap()
            .contains("UIDPLUS"));
        assert!(refusal(&caps("IMAP4REV1 UIDPLUS X-GM-EXT-1"))
            .unwrap()
            .contains("Gmail"));
    }
}
