//! Tracking headers written for real (SPEC section 3): a message that a client
//! APPENDs while a tracking request is attached to it — a draft whose regarding
//! was set in the pane, the sent copy of such a draft, a message saved again —
//! gets the X-CRM-* block at the top of its header in the bytes the server
//! stores. "Attached" means the owner's mailbox has a pending or tracked record
//! for the message's Message-ID when the APPEND starts.
//!
//! The copy's block then stays as written: it holds only facts that stay true.

use super::{Engine, TrackError};
use crate::message::headers::{header_end, TrackingHeaders};
use crate::store::{MessageId, MessageLocation, TrackStatus, UserId};

/// The block to write into an APPENDed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendBlock {
    pub message_id: MessageId,
    /// CRLF-terminated X-CRM-* lines, to go before the first header line.
    pub bytes: Vec<u8>,
}

impl Engine {
    /// The block for a message about to be APPENDed to `owner`'s mailbox, judged
    /// from its header (`head`: the message's first bytes, through the blank line
    /// that ends the header when it is there). `None`: no request is attached, or
    /// the message has no Message-ID to attach one to, or it carries a block
    /// already (written by us before: it goes up as it is).
    pub fn append_block(
        &self,
        owner: UserId,
        head: &[u8],
    ) -> Result<Option<AppendBlock>, TrackError> {
        if starts_with_block(head) {
            return Ok(None);
        }
        let header = &head[..header_end(head).unwrap_or(head.len())];
        let Some(message_id) = message_id_of_header(header) else {
            return Ok(None);
        };
        let Some(record) = self.store.tracking(owner, &message_id)? else {
            return Ok(None);
        };
        if matches!(record.status, TrackStatus::Failed { .. }) {
            return Ok(None);
        }
        let headers: TrackingHeaders = self.headers_for(&record, None)?;
        Ok(Some(AppendBlock {
            message_id,
            bytes: headers.render(),
        }))
    }

    /// The block to write on top of a copy of the tracked message `message_id` in
    /// `owner`'s mailbox (the `replace` mode, SPEC section 3). `None` when it is
    /// not tracked there (or not yet: a pending request gets its block once done).
    pub fn written_block(
        &self,
        owner: UserId,
        message_id: &MessageId,
    ) -> Result<Option<Vec<u8>>, TrackError> {
        let Some(record) = self.store.tracking(owner, message_id)? else {
            return Ok(None);
        };
        if record.status != TrackStatus::Tracked {
            return Ok(None);
        }
        Ok(Some(self.headers_for(&record, None)?.render()))
    }

    /// The tracked message now lives at `location` (its copy replaced it), so that
    /// the pane and the sync worker find it there.
    pub fn relocate(
        &self,
        owner: UserId,
        message_id: &MessageId,
        location: MessageLocation,
    ) -> Result<(), TrackError> {
        if let Some(mut record) = self.store.tracking(owner, message_id)? {
            record.location = Some(location);
            self.store.put_tracking(record)?;
        }
        Ok(())
    }
}

/// The Message-ID of a message's header, as a tracking record keys it.
fn message_id_of_header(header: &[u8]) -> Option<MessageId> {
    let parsed = mail_parser::MessageParser::default().parse_headers(header)?;
    MessageId::parse(&format!("<{}>", parsed.message_id()?)).ok()
}

/// Does the message begin with an X-CRM-* line (a block written earlier)?
pub fn starts_with_block(head: &[u8]) -> bool {
    head.len() >= 6 && head[..6].eq_ignore_ascii_case(b"x-crm-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_block_is_recognised() {
        assert!(starts_with_block(b"X-CRM-Tracked-By: a@b.example\r\n"));
        assert!(starts_with_block(b"x-crm-activity-id: 1\r\n"));
        assert!(!starts_with_block(b"From: a@b\r\n"));
        assert!(!starts_with_block(b"X-CR"));
    }

    #[test]
    fn the_message_id_comes_from_the_header() {
        let h = b"From: a@b.example\r\nMessage-ID:\r\n <x.1@b.example>\r\n\r\n";
        assert_eq!(
            message_id_of_header(h),
            Some(MessageId::parse("<x.1@b.example>").unwrap())
        );
        assert_eq!(message_id_of_header(b"From: a@b.example\r\n\r\n"), None);
    }
}
