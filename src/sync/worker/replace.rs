//! `tracking.write_headers = "replace"` (SPEC section 3): a message the sync worker
//! tracks is replaced by a copy with the X-CRM-* block on top. The copy is APPENDed
//! with the original's flags and INTERNALDATE; the original is expunged (by UID,
//! RFC 4315) only after APPENDUID confirms the copy. A failure at any step leaves
//! the original where it was, and a copy already made is removed again.
//!
//! The proxy never edits a message the server holds: this makes a new message
//! (a new UID), which clients fetch like any other.

use std::sync::Arc;

use super::user::JobError;
use super::Inner;
use crate::config::WriteHeaders;
use crate::imap_client::append::{AppendUid, FlagsAndDate};
use crate::imap_client::{ClientError, ImapClient};
use crate::store::{MessageId, MessageLocation, UserId};
use imap_codec::imap_types::flag::{Flag, StoreType};

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
    let Some(FlagsAndDate { flags, date }) = c.flags_and_date(at.uid).await? else {
        return Ok(Replaced::Left("it is gone"));
    };
    if flags.contains(&Flag::Deleted) {
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
    let new_uid = match c.append(&at.folder, flags, date, &copy).await? {
        Ok(Some(AppendUid { uid, .. })) => uid,
        Ok(None) => return Ok(Replaced::Left("the server did not say where the copy is")),
        Err(refused) => {
            return Err(ClientError::Refused {
                command: "APPEND",
                text: refused.status,
            }
            .into())
        }
    };
    drop(copy);
    if let Err(e) = c.expunge_uid(at.uid).await {
        // The original stays; the copy goes again (best effort: it is a copy).
        let _ = c
            .store_flags(at.uid, StoreType::Remove, vec![Flag::Deleted])
            .await;
        let _ = c.expunge_uid(new_uid).await;
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

/// The Message-ID a tracking record keys a message by (see the engine).
fn message_id_of(raw: &[u8]) -> Option<MessageId> {
    let end = crate::message::headers::header_end(raw).unwrap_or(raw.len());
    let mid = crate::proxy::state::message_id_from_header(&raw[..end])?;
    MessageId::parse(&mid).ok()
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
