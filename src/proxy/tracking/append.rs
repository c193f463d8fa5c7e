//! APPENDs with a tracking request attached (SPEC section 3): the message goes up
//! with the X-CRM-* block at the top of its header, and once the server answers
//! with APPENDUID the copy's place and block length are recorded, so that fetches
//! through the proxy show the current block in place of the written one.

use bytes::Bytes;
use imap_codec::imap_types::response::Code;

use super::sets::append_target;
use super::TrackingHook;
use crate::proxy::hook::HookContext;
use crate::store::{CarriedBlock, MessageLocation};

/// An APPEND whose message went up with a block written into it.
#[derive(Debug)]
pub(super) struct Carrying {
    folder: String,
    block: CarriedBlock,
}

impl TrackingHook {
    /// Only the sessions of CRM users read ahead of their APPENDs.
    pub(super) fn wants_head(&self, cx: &HookContext<'_>, first_line: &[u8]) -> bool {
        append_target(first_line).is_some() && self.owner_id(cx).is_some()
    }

    pub(super) fn prefix_for_append(
        &self,
        cx: &HookContext<'_>,
        first_line: &[u8],
        head: &[u8],
    ) -> Option<Bytes> {
        let (tag, folder) = append_target(first_line)?;
        let owner = self.owner_id(cx)?;
        let block = match self.workers.engine().append_block(owner, head) {
            Ok(b) => b?,
            Err(e) => {
                tracing::warn!(error = %e, "tracking block for an APPEND: left out");
                return None;
            }
        };
        let len = u32::try_from(block.bytes.len()).ok()?;
        tracing::debug!(message_id = %block.message_id, folder = %folder, "APPEND carries its tracking block");
        let bytes = Bytes::from(block.bytes.clone());
        self.with_session(cx.session_id, |s| {
            let block = CarriedBlock {
                len,
                message_id: block.message_id.clone(),
            };
            s.carrying.insert(tag, Carrying { folder, block });
        });
        Some(bytes)
    }

    /// The tagged answer to an APPEND: where its copy is, if it carries a block.
    /// Recorded before the answer reaches the client, so that its next FETCH of
    /// the new UID already finds it.
    pub(super) fn appended(&self, cx: &HookContext<'_>, tag: &str, code: Option<&Code<'_>>) {
        let Some(carrying) = self.with_session(cx.session_id, |s| s.carrying.remove(tag)) else {
            return;
        };
        let (Some(Code::AppendUid { uid_validity, uid }), Some(owner)) = (code, self.owner_id(cx))
        else {
            return;
        };
        let location = MessageLocation {
            folder: carrying.folder,
            uid_validity: uid_validity.get(),
            uid: uid.get(),
        };
        match self
            .workers
            .engine()
            .note_carried(owner, &location, &carrying.block)
        {
            Ok(()) => self.workers.tracking_changed(),
            Err(e) => tracing::warn!(error = %e, "could not record the block an APPEND carries"),
        }
    }
}
