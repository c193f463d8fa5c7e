//! A small FETCH response (held whole) as the client sees it: RFC822.SIZE counts
//! the tracking block and, where the mailbox cannot store keywords, FLAGS carry the
//! state keyword from the store (SPEC section 3).

use imap_codec::imap_types::core::Atom;
use imap_codec::imap_types::fetch::MessageDataItem;
use imap_codec::imap_types::flag::{Flag, FlagFetch};
use imap_codec::imap_types::IntoStatic;

use super::TrackingHook;
use crate::proxy::hook::HookContext;

impl TrackingHook {
    /// A FETCH response's items as the client sees them: RFC822.SIZE counts the
    /// block and, where the mailbox cannot store keywords (PERMANENTFLAGS lacks
    /// `\*`), FLAGS carry the state keyword from the store. `None`: unchanged.
    pub(super) fn fetch_items(
        &self,
        cx: &HookContext<'_>,
        seq: u32,
        items: &[MessageDataItem<'_>],
    ) -> Option<Vec<MessageDataItem<'static>>> {
        let has_size = items
            .iter()
            .any(|i| matches!(i, MessageDataItem::Rfc822Size(_)));
        let mailbox = cx.state.selected();
        let flags_from_store = mailbox.is_some_and(|m| m.keywords_allowed == Some(false))
            && items.iter().any(|i| matches!(i, MessageDataItem::Flags(_)));
        if !has_size && !flags_from_store {
            return None;
        }
        let uid = items
            .iter()
            .find_map(|i| match i {
                MessageDataItem::Uid(u) => Some(u.get()),
                _ => None,
            })
            .or_else(|| mailbox.and_then(|m| m.uid(seq)))?;
        let tracked = self.tracked_at(cx, uid)?;
        let keyword = tracked
            .keyword
            .as_ref()
            .and_then(|k| Atom::try_from(k.clone()).ok());
        Some(
            items
                .iter()
                .map(|i| match i {
                    MessageDataItem::Rfc822Size(n) => {
                        let size = (i64::from(*n) + tracked.growth()).clamp(0, i64::from(u32::MAX));
                        MessageDataItem::Rfc822Size(size as u32)
                    }
                    MessageDataItem::Flags(flags) if flags_from_store => {
                        let mut flags: Vec<FlagFetch<'static>> =
                            flags.iter().cloned().map(IntoStatic::into_static).collect();
                        if let Some(k) = &keyword {
                            let present = flags.iter().any(|f| {
                                matches!(f, FlagFetch::Flag(Flag::Keyword(a))
                                    if a.as_ref().eq_ignore_ascii_case(k.as_ref()))
                            });
                            if !present {
                                flags.push(FlagFetch::Flag(Flag::Keyword(k.clone())));
                            }
                        }
                        MessageDataItem::Flags(flags)
                    }
                    other => other.clone().into_static(),
                })
                .collect(),
        )
    }
}
