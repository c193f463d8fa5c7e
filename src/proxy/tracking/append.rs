//! APPENDs with a tracking request attached (SPEC section 3): the message goes up
//! with the X-CRM-* block at the top of its header, and once the server answers
//! with APPENDUID the copy's place and block length are recorded, so that fetches
//! through the proxy show the current block in place of the written one. Copies
//! made through the proxy (COPY, MOVE: COPYUID) are recorded the same way.

use bytes::Bytes;
use imap_codec::imap_types::response::Code;

use super::sets::{append_target, uid_set_values};
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
    /// Only the sessions of CRM users read ahead of their APPENDs, and only of a
    /// plain one: with CATENATE (RFC 4469) the first literal need not be the top
    /// of the message.
    /// An APPEND into a tracking folder by someone who may not track: refused
    /// before it goes up (so nothing is stored).
    pub(super) fn append_refusal(&self, cx: &HookContext<'_>, first_line: &[u8]) -> Option<String> {
        let identity = cx.identity?;
        let (_, folder) = append_target(first_line)?;
        if !self.tracks_into(cx, &folder, true) {
            return None;
        }
        self.actor(identity).err()
    }

    pub(super) fn wants_head(&self, cx: &HookContext<'_>, first_line: &[u8]) -> bool {
        append_target(first_line).is_some()
            && !is_catenate(first_line)
            && self.owner_id(cx).is_some()
    }

    pub(super) fn prefix_for_append(
        &self,
        cx: &HookContext<'_>,
        first_line: &[u8],
        head: &[u8],
        room: u64,
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
        // Too long for what the server takes: the message goes up as it is, and
        // nothing is recorded as carried.
        if block.bytes.len() as u64 > room {
            return None;
        }
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
            Ok(()) => self.workers.bump_generation(),
            Err(e) => tracing::warn!(error = %e, "could not record the block an APPEND carries"),
        }
    }

    /// A COPY or MOVE (by tag) to `folder`: remembered until its COPYUID.
    pub(super) fn copy_started(
        &self,
        cx: &HookContext<'_>,
        tag: &str,
        folder: String,
        is_move: bool,
    ) {
        if self.owner_id(cx).is_none() {
            return;
        }
        self.with_session(cx.session_id, |s| {
            if s.copies.len() >= 64 {
                s.copies.remove(0);
            }
            s.copies.push((tag.to_string(), folder, is_move));
        });
    }

    /// A COPYUID (tagged for COPY, untagged before a MOVE's tagged OK): the
    /// copies of messages that carry a block carry it too. Looked up and written
    /// inline for a few, on a blocking task for many; header caches are dropped
    /// when it is done.
    pub(super) fn copied(&self, cx: &HookContext<'_>, tag: Option<&str>, code: &Code<'_>) {
        let Code::CopyUid {
            uid_validity,
            source,
            destination,
        } = code
        else {
            return;
        };
        let Some(folder) = self.with_session(cx.session_id, |s| {
            let at = match tag {
                Some(t) => s.copies.iter().position(|(ct, _, _)| ct == t),
                None => s.copies.iter().position(|(_, _, is_move)| *is_move),
            }?;
            Some(s.copies.remove(at).1)
        }) else {
            return;
        };
        let (Some(owner), Some(from)) = (self.owner_id(cx), cx.state.selected()) else {
            return;
        };
        let Some(from_validity) = from.uid_validity else {
            return;
        };
        let from_folder = from.name.clone();
        let to_validity = uid_validity.get();
        let pairs: Vec<(u32, u32)> = uid_set_values(source)
            .zip(uid_set_values(destination))
            .take(MAX_COPIES)
            .collect();
        let engine = self.workers.engine().clone();
        let workers = self.workers.clone();
        let small = pairs.len() <= INLINE_COPIES;
        let work = move || {
            let mut noted = 0usize;
            for (src, dst) in pairs {
                let at = |folder: &str, uid_validity, uid| MessageLocation {
                    folder: folder.to_string(),
                    uid_validity,
                    uid,
                };
                let block = match engine.carried_block(owner, &at(&from_folder, from_validity, src))
                {
                    Ok(Some(b)) => b,
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "reading a carried block");
                        return;
                    }
                };
                if let Err(e) = engine.note_carried(owner, &at(&folder, to_validity, dst), &block) {
                    tracing::warn!(error = %e, "recording a copy's carried block");
                    return;
                }
                noted += 1;
            }
            if noted > 0 {
                workers.bump_generation();
            }
        };
        // A few copies (a message archived) are done before the client hears the
        // answer, so that its next fetch finds them; a bulk copy on a blocking task.
        if small {
            work();
        } else {
            tokio::task::spawn_blocking(work);
        }
    }
}

/// Does an APPEND's first line build its message with CATENATE?
fn is_catenate(first_line: &[u8]) -> bool {
    first_line
        .windows(b"CATENATE".len())
        .any(|w| w.eq_ignore_ascii_case(b"CATENATE"))
}

/// Most COPYUID pairs looked at for carried blocks.
const MAX_COPIES: usize = 100_000;
/// Up to this many pairs are looked at inline (point reads), more on a task.
const INLINE_COPIES: usize = 64;

#[cfg(test)]
mod tests {
    use super::is_catenate;

    #[test]
    fn catenate_appends_are_recognised() {
        assert!(is_catenate(b"a APPEND Drafts CATENATE (TEXT {120}\r\n"));
        assert!(is_catenate(
            b"a APPEND Drafts (\\Draft) catenate (URL \"/x\" TEXT {5}\r\n"
        ));
        assert!(!is_catenate(b"a APPEND Drafts (\\Draft) {120}\r\n"));
    }
}
