//! APPENDs through the proxy (SPEC section 3): one into a tracking folder by
//! someone who may not track is refused before it goes up; one with a tracking
//! request attached goes up with the X-CRM-* block written at the top of its
//! header, for real and once (the message is new anyway). MOVE commands are
//! remembered until their COPYUID.

use bytes::Bytes;

use super::sets::append_target;
use super::TrackingHook;
use crate::proxy::hook::HookContext;

impl TrackingHook {
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

    /// Only the sessions of CRM users read ahead of their APPENDs, and only of a
    /// plain one: with CATENATE (RFC 4469) the first literal need not be the top
    /// of the message.
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
        let (_, folder) = append_target(first_line)?;
        let owner = self.owner_id(cx)?;
        let block = match self.workers.engine().append_block(owner, head) {
            Ok(b) => b?,
            Err(e) => {
                tracing::warn!(error = %e, "tracking block for an APPEND: left out");
                return None;
            }
        };
        // Too long for what the server takes: the message goes up as it is.
        if block.bytes.len() as u64 > room {
            return None;
        }
        tracing::debug!(message_id = %block.message_id, folder = %folder, "APPEND carries its tracking block");
        Some(Bytes::from(block.bytes))
    }

    /// A MOVE (by tag): remembered until its answer, because its COPYUID comes
    /// untagged, before the tagged OK (RFC 6851).
    pub(super) fn move_started(&self, cx: &HookContext<'_>, tag: &str) {
        if self.owner_id(cx).is_none() {
            return;
        }
        self.with_session(cx.session_id, |s| {
            if s.moves.len() >= 64 {
                s.moves.remove(0);
            }
            s.moves.push(tag.to_string());
        });
    }
}

/// Does an APPEND's first line build its message with CATENATE?
fn is_catenate(first_line: &[u8]) -> bool {
    first_line
        .windows(b"CATENATE".len())
        .any(|w| w.eq_ignore_ascii_case(b"CATENATE"))
}

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
