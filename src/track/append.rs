//! Tracking headers written for real (SPEC section 3): a message that a client
//! APPENDs while a tracking request is attached to it — a draft whose regarding
//! was set in the pane, the sent copy of such a draft, a message saved again —
//! gets the X-CRM-* block at the top of its header in the bytes the server
//! stores. "Attached" means the owner's mailbox has a pending or tracked record
//! for the message's Message-ID when the APPEND starts.
//!
//! The copy's block then stays as written; the proxy records where the copy is
//! and how long its block is ([`Engine::note_carried`]) and, on fetch, shows the
//! current block in its place rather than a second one above it.

use super::{Engine, TrackError};
use crate::message::headers::{header_end, TrackingHeaders};
use crate::store::{CarriedBlock, MessageId, MessageLocation, TrackStatus, UserId};

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

    /// The copy at `location` carries `block` (its APPEND was answered with
    /// this APPENDUID).
    pub fn note_carried(
        &self,
        owner: UserId,
        location: &MessageLocation,
        block: &CarriedBlock,
    ) -> Result<(), TrackError> {
        Ok(self.store.put_carried_block(owner, location, block)?)
    }

    /// The block the copy at `location` carries, if it carries one.
    pub fn carried_block(
        &self,
        owner: UserId,
        location: &MessageLocation,
    ) -> Result<Option<CarriedBlock>, TrackError> {
        Ok(self.store.carried_block(owner, location)?)
    }
}

/// The Message-ID of a message's header, as a tracking record keys it.
fn message_id_of_header(header: &[u8]) -> Option<MessageId> {
    let parsed = mail_parser::MessageParser::default().parse_headers(header)?;
    MessageId::parse(&format!("<{}>", parsed.message_id()?)).ok()
}

/// Does the message begin with an X-CRM-* line (a block written earlier)?
fn starts_with_block(head: &[u8]) -> bool {
    head.len() >= 6 && head[..6].eq_ignore_ascii_case(b"x-crm-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_block_is_recognised() {
        assert!(starts_with_block(b"X-CRM-Track-Status: pending\r\n"));
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
