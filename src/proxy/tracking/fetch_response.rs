//! A FETCH response as the client sees it: RFC822.SIZE counts the tracking block
//! and, where the mailbox cannot store keywords, FLAGS carry the state keyword from
//! the store (SPEC section 3). Small responses are decoded and changed item by
//! item; a response too big to hold has its first line (before the literal)
//! changed as text.

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

    /// The first line of a FETCH response that streams (too big to hold), up
    /// to its first literal: RFC822.SIZE and FLAGS there as [`Self::fetch_items`]
    /// makes them. `None`: unchanged.
    pub(super) fn streamed_line(
        &self,
        cx: &HookContext<'_>,
        seq: u32,
        line: &[u8],
    ) -> Option<Vec<u8>> {
        let mailbox = cx.state.selected();
        let uid = crate::wire::fetch_uid(line).or_else(|| mailbox.and_then(|m| m.uid(seq)))?;
        let tracked = self.tracked_at(cx, uid)?;
        let mut out = line.to_vec();
        if let Some((start, end)) = item_value(&out, b"RFC822.SIZE") {
            let n: i64 = std::str::from_utf8(&out[start..end]).ok()?.parse().ok()?;
            let size = (n + tracked.growth()).clamp(0, i64::from(u32::MAX));
            out.splice(start..end, size.to_string().into_bytes());
        }
        let keyword = tracked.keyword.as_deref();
        if let (true, Some(k)) = (
            mailbox.is_some_and(|m| m.keywords_allowed == Some(false)),
            keyword,
        ) {
            if let Some((start, end)) = item_value(&out, b"FLAGS") {
                let list = &out[start..end];
                let present = list
                    .strip_prefix(b"(")
                    .and_then(|l| l.strip_suffix(b")"))
                    .is_some_and(|l| {
                        l.split(|&b| b == b' ')
                            .any(|f| f.eq_ignore_ascii_case(k.as_bytes()))
                    });
                if !present && list.ends_with(b")") {
                    let at = end - 1;
                    let sep = if list.len() > 2 { " " } else { "" };
                    out.splice(at..at, format!("{sep}{k}").into_bytes());
                }
            }
        }
        (out != line).then_some(out)
    }
}

/// The byte range of the value of the top-level FETCH item `name` in the first
/// line of a FETCH response (`* 3 FETCH (UID 7 RFC822.SIZE 2048 BODY[] {2048}`):
/// a number, or a parenthesised list. Quoted strings and nested lists (an
/// ENVELOPE) are skipped, so a subject cannot be mistaken for an item.
fn item_value(line: &[u8], name: &[u8]) -> Option<(usize, usize)> {
    let open = memchr::memchr(b'(', line)?;
    let (mut depth, mut in_quote, mut escaped) = (1usize, false, false);
    let mut i = open + 1;
    while i < line.len() {
        let b = line[i];
        if in_quote {
            match (escaped, b) {
                (false, b'\\') => escaped = true,
                (false, b'"') => in_quote = false,
                _ => escaped = false,
            }
            i += 1;
            continue;
        }
        match b {
            b'"' => in_quote = true,
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            b'{' => return None,
            _ if depth == 1
                && matches!(line[i - 1], b'(' | b' ')
                && line.len() > i + name.len()
                && line[i..i + name.len()].eq_ignore_ascii_case(name)
                && line[i + name.len()] == b' ' =>
            {
                let start = i + name.len() + 1;
                let end = if line.get(start) == Some(&b'(') {
                    start + memchr::memchr(b')', &line[start..])? + 1
                } else {
                    start
                        + line[start..]
                            .iter()
                            .take_while(|b| b.is_ascii_digit())
                            .count()
                };
                return Some((start, end));
            }
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::item_value;

    fn value<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a str> {
        item_value(line, name).map(|(s, e)| std::str::from_utf8(&line[s..e]).unwrap())
    }

    #[test]
    fn items_are_found_outside_strings_and_nested_lists() {
        let line = b"* 3 FETCH (UID 7 ENVELOPE (\"x\" \"RFC822.SIZE 9\" NIL) FLAGS (\\Seen $X) RFC822.SIZE 2048 BODY[] {2048}\r\n";
        assert_eq!(value(line, b"RFC822.SIZE"), Some("2048"));
        assert_eq!(value(line, b"FLAGS"), Some("(\\Seen $X)"));
        assert_eq!(value(line, b"UID"), Some("7"));
        assert_eq!(
            value(b"* 1 FETCH (FLAGS () BODY[] {5}\r\n", b"FLAGS"),
            Some("()")
        );
        // After the first literal nothing is looked at.
        assert_eq!(value(b"* 1 FETCH (BODY[] {5}\r\n", b"RFC822.SIZE"), None);
    }
}
