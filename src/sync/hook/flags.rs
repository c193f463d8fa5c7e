//! State keywords in FLAGS where the mailbox cannot store them (SPEC section 3):
//! where PERMANENTFLAGS lacks `\*`, the FLAGS a client fetches carry
//! `$CRM_Tracked` or `$CRM_Pending` from the store. Only FLAGS change, never a
//! byte of a message. Small responses are changed item by item; a response too big
//! to hold has its first line (before the literal) changed as text.

use std::collections::HashMap;

use imap_codec::imap_types::core::Atom;
use imap_codec::imap_types::fetch::MessageDataItem;
use imap_codec::imap_types::flag::{Flag, FlagFetch};
use imap_codec::imap_types::IntoStatic;

use super::TrackingHook;
use crate::proxy::hook::HookContext;
use crate::store::{MessageId, MessageLocation, UserId};

/// Most state keywords cached (for all sessions).
const CACHE_MAX: usize = 65_536;

/// (owner, folder, UIDVALIDITY, UID) → the message's state keyword (None: not
/// tracked), and whether its Message-ID was known when it was looked up. Emptied
/// when the tracking generation changes.
#[derive(Default)]
pub(super) struct KeywordCache {
    generation: u64,
    entries: HashMap<PlaceKey, (Option<String>, bool)>,
}

/// (owner, folder, UIDVALIDITY, UID).
type PlaceKey = (UserId, String, u32, u32);

impl TrackingHook {
    /// Whether this session's selected mailbox shows state keywords from the store.
    pub(super) fn flags_from_store(cx: &HookContext<'_>) -> bool {
        cx.state
            .selected()
            .is_some_and(|m| m.keywords_allowed == Some(false))
    }

    /// The state keyword of the message at (selected folder, `uid`).
    fn state_keyword(&self, cx: &HookContext<'_>, uid: u32) -> Option<String> {
        let mailbox = cx.state.selected()?;
        let validity = mailbox.uid_validity?;
        let owner = self.owner_id(cx)?;
        let key = (owner, mailbox.name.clone(), validity, uid);
        let generation = self.workers.generation();
        let knows_id = mailbox.message_id(uid).is_some();
        let cached = {
            let mut c = self.keywords.lock().unwrap_or_else(|e| e.into_inner());
            if c.generation != generation {
                c.entries.clear();
                c.generation = generation;
            }
            c.entries.get(&key).cloned()
        };
        // A miss found before the Message-ID was learned is looked up again.
        if let Some((k, had_id)) = cached {
            if k.is_some() || had_id || !knows_id {
                return k;
            }
        }
        let engine = self.workers.engine();
        let by_id = mailbox
            .message_id(uid)
            .and_then(|m| MessageId::parse(m).ok())
            .and_then(|m| engine.tracking(owner, &m).ok().flatten());
        let location = MessageLocation {
            folder: key.1.clone(),
            uid_validity: validity,
            uid,
        };
        let record = by_id.or_else(|| engine.tracking_at(owner, &location).ok().flatten());
        let keyword = record.and_then(|r| engine.keywords_for(&r.status).map(str::to_owned));
        let mut c = self.keywords.lock().unwrap_or_else(|e| e.into_inner());
        // Filled under an older generation: not kept.
        if c.generation == generation {
            if c.entries.len() >= CACHE_MAX {
                c.entries.clear();
            }
            c.entries.insert(key, (keyword.clone(), knows_id));
        }
        keyword
    }

    /// A FETCH response's items with the state keyword added to FLAGS, where the
    /// mailbox cannot store keywords. `None`: unchanged.
    pub(super) fn fetch_items(
        &self,
        cx: &HookContext<'_>,
        seq: u32,
        items: &[MessageDataItem<'_>],
    ) -> Option<Vec<MessageDataItem<'static>>> {
        if !Self::flags_from_store(cx)
            || !items.iter().any(|i| matches!(i, MessageDataItem::Flags(_)))
        {
            return None;
        }
        let uid = items
            .iter()
            .find_map(|i| match i {
                MessageDataItem::Uid(u) => Some(u.get()),
                _ => None,
            })
            .or_else(|| cx.state.selected().and_then(|m| m.uid(seq)))?;
        let keyword = Atom::try_from(self.state_keyword(cx, uid)?).ok()?;
        Some(
            items
                .iter()
                .map(|i| match i {
                    MessageDataItem::Flags(flags) => {
                        let mut flags: Vec<FlagFetch<'static>> =
                            flags.iter().cloned().map(IntoStatic::into_static).collect();
                        let present = flags.iter().any(|f| {
                            matches!(f, FlagFetch::Flag(Flag::Keyword(a))
                                if a.as_ref().eq_ignore_ascii_case(keyword.as_ref()))
                        });
                        if !present {
                            flags.push(FlagFetch::Flag(Flag::Keyword(keyword.clone())));
                        }
                        MessageDataItem::Flags(flags)
                    }
                    other => other.clone().into_static(),
                })
                .collect(),
        )
    }

    /// The first line of a FETCH response that streams (too big to hold), up to
    /// its first literal: FLAGS there as [`Self::fetch_items`] makes them. `None`:
    /// unchanged.
    pub(super) fn streamed_line(
        &self,
        cx: &HookContext<'_>,
        seq: u32,
        line: &[u8],
    ) -> Option<Vec<u8>> {
        if !Self::flags_from_store(cx) {
            return None;
        }
        let mailbox = cx.state.selected();
        let uid = crate::wire::fetch_uid(line).or_else(|| mailbox.and_then(|m| m.uid(seq)))?;
        let k = self.state_keyword(cx, uid)?;
        let (start, end) = item_value(line, b"FLAGS")?;
        let list = &line[start..end];
        let present = list
            .strip_prefix(b"(")
            .and_then(|l| l.strip_suffix(b")"))
            .is_some_and(|l| {
                l.split(|&b| b == b' ')
                    .any(|f| f.eq_ignore_ascii_case(k.as_bytes()))
            });
        if present || !list.ends_with(b")") {
            return None;
        }
        let mut out = line.to_vec();
        let at = end - 1;
        let sep = if list.len() > 2 { " " } else { "" };
        out.splice(at..at, format!("{sep}{k}").into_bytes());
        Some(out)
    }
}

/// The byte range of the value of the top-level FETCH item `name` in the first
/// line of a FETCH response (`* 3 FETCH (UID 7 RFC822.SIZE 2048 BODY[] {2048}`):
/// a number, or a parenthesised list. Quoted strings and nested lists (an
/// ENVELOPE) are skipped, so a subject cannot be mistaken for an item.
pub fn item_value(line: &[u8], name: &[u8]) -> Option<(usize, usize)> {
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
