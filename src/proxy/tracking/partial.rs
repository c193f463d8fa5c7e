//! Partial fetches (`BODY[]<origin.count>`) of tracked messages: the client's range
//! refers to the message as it sees it (tracking block + original), so the proxy
//! asks the server for a range starting up to [`MAX_BLOCK`] bytes earlier and
//! serves the asked range from the block and the original bytes (streamed).

use bytes::Bytes;
use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::fetch::Section;

use super::fetch_item::with_origin;
use super::TrackingHook;
use crate::proxy::hook::{HookContext, LiteralEdit};
use crate::wire::Literal;

/// How far before a partial fetch's origin the proxy fetches, so that a tracked
/// message's range can be served from the original bytes; blocks longer than this
/// are not shown on partial fetches.
pub const MAX_BLOCK: u32 = 8192;

/// One partial item of a client FETCH as asked (`origin`, `count`) and as sent
/// upstream (`sent_origin`, with `count + origin - sent_origin`).
#[derive(Debug, Clone)]
pub(super) struct Partial {
    key: String,
    origin: u32,
    count: u32,
    sent_origin: u32,
}

impl TrackingHook {
    /// The client's FETCH with its partial header-including items widened, or
    /// `None` when it has none (or the session is not a CRM user's).
    pub(super) fn widen_partials(
        &self,
        cx: &HookContext<'_>,
        command: &Command<'_>,
    ) -> Option<Vec<u8>> {
        use imap_codec::encode::Encoder;
        use imap_codec::imap_types::fetch::{MacroOrMessageDataItemNames, MessageDataItemName};
        let CommandBody::Fetch {
            macro_or_item_names: MacroOrMessageDataItemNames::MessageDataItemNames(names),
            ..
        } = &command.body
        else {
            return None;
        };
        cx.state.selected()?;
        self.owner_id(cx)?;
        let mut partials = Vec::new();
        let mut new_names = names.clone();
        for name in new_names.iter_mut() {
            let (key, partial) = match name {
                MessageDataItemName::BodyExt {
                    section: None,
                    partial,
                    ..
                } => ("BODY[]", partial),
                MessageDataItemName::BodyExt {
                    section: Some(Section::Header(None)),
                    partial,
                    ..
                } => ("BODY[HEADER]", partial),
                MessageDataItemName::Binary {
                    section, partial, ..
                } if section.is_empty() => ("BINARY[]", partial),
                _ => continue,
            };
            let Some((origin, count)) = *partial else {
                continue;
            };
            // Up to MAX_BLOCK before (the block shown) and after (the block the
            // copy carries, which the shown one replaces).
            let sent_origin = origin.saturating_sub(MAX_BLOCK);
            let wider = count
                .get()
                .saturating_add(origin - sent_origin)
                .saturating_add(MAX_BLOCK);
            *partial = Some((sent_origin, std::num::NonZeroU32::new(wider)?));
            partials.push(Partial {
                key: key.to_string(),
                origin,
                count: count.get(),
                sent_origin,
            });
        }
        if partials.is_empty() {
            return None;
        }
        let mut new = command.clone();
        if let CommandBody::Fetch {
            macro_or_item_names,
            ..
        } = &mut new.body
        {
            *macro_or_item_names = MacroOrMessageDataItemNames::MessageDataItemNames(new_names);
        }
        let bytes = imap_codec::CommandCodec::default().encode(&new).dump();
        let tag = command.tag.inner().to_string();
        self.with_session(cx.session_id, |s| {
            if s.partials.len() >= 64 {
                s.partials.remove(0);
            }
            s.partials.push((tag, partials))
        });
        Some(bytes)
    }

    /// A partial item the proxy widened: serve `origin..origin + count` of the
    /// message as the client sees it (block + original) from what came.
    pub(super) fn partial_edit(
        &self,
        cx: &HookContext<'_>,
        seq: u32,
        line: &[u8],
        literal: Literal,
        key: &str,
        sent_origin: u32,
    ) -> Option<LiteralEdit> {
        let asked = self.with_session(cx.session_id, |s| {
            s.partials
                .iter()
                .flat_map(|(_, p)| p.iter())
                .find(|p| p.key == key && p.sent_origin == sent_origin)
                .cloned()
        })?;
        let uid =
            crate::wire::fetch_uid(line).or_else(|| cx.state.selected().and_then(|m| m.uid(seq)));
        let tracked = uid.and_then(|u| self.tracked_at(cx, u));
        let carried = tracked.as_ref().map_or(0, |t| u64::from(t.carried));
        let block = tracked
            .map(|t| t.block)
            .filter(|b| b.len() as u64 <= u64::from(MAX_BLOCK));
        let (s, c) = (u64::from(asked.origin), u64::from(asked.count));
        let b = block.as_ref().map_or(0, |b| b.len() as u64);
        // Bytes of the block inside the range, then original bytes from `o` on
        // (past the block the copy carries, if it carries one).
        let prefix = match &block {
            Some(bl) => bl.slice((s.min(b) as usize)..((s + c).min(b) as usize)),
            None => Bytes::new(),
        };
        let o = s.saturating_sub(b) + carried;
        let skip = o - u64::from(sent_origin);
        let take = (c - prefix.len() as u64).min(literal.len.saturating_sub(skip));
        Some(LiteralEdit {
            prefix,
            skip,
            take,
            line: with_origin(line, sent_origin, asked.origin),
        })
    }
}
