//! The X-CRM-* block of each fetched message: looked up in the store (by
//! Message-ID, by place, or through the block a copy carries), cached for all
//! sessions of a mailbox until tracking changes, and spliced into whole-item
//! literals in place of the block the copy carries, if any.

use bytes::Bytes;
use std::collections::HashMap;

use super::fetch_item::{announced_item, filter_block, Item};
use super::{partial, TrackingHook};
use crate::proxy::hook::{HookContext, LiteralEdit};
use crate::store::{MessageId, MessageLocation, UserId};
use crate::wire::Literal;

/// Most header blocks cached (for all sessions).
const CACHE_MAX: usize = 65_536;

/// (owner, folder, UIDVALIDITY, UID) → rendered block and state keyword (None:
/// not tracked), and whether the Message-ID was known when it was looked up; and
/// the names of the regarding records those blocks show. Emptied when the
/// tracking generation changes.
#[derive(Default)]
pub(super) struct BlockCache {
    generation: u64,
    entries: HashMap<BlockKey, (Option<Tracked>, bool)>,
    titles: HashMap<uuid::Uuid, String>,
}

/// (owner, folder, UIDVALIDITY, UID).
type BlockKey = (UserId, String, u32, u32);

/// What a session shows of a tracked message (or of a copy that carries a
/// block written into it and is no longer tracked: an empty block in its place).
#[derive(Clone)]
pub(super) struct Tracked {
    /// The X-CRM-* header block (empty when the message is not tracked).
    pub block: Bytes,
    /// `$CRM_Tracked` or `$CRM_Pending`.
    pub keyword: Option<String>,
    /// Length of the block the stored copy carries for real (0: none), which
    /// `block` replaces.
    pub carried: u32,
}

impl Tracked {
    /// How much longer the message is as the client sees it.
    pub fn growth(&self) -> i64 {
        self.block.len() as i64 - i64::from(self.carried)
    }
}

impl TrackingHook {
    /// The block and state keyword of the message at (selected folder, `uid`).
    pub(super) fn tracked_at(&self, cx: &HookContext<'_>, uid: u32) -> Option<Tracked> {
        let mailbox = cx.state.selected()?;
        let validity = mailbox.uid_validity?;
        let owner = self.owner_id(cx)?;
        let key = (owner, mailbox.name.clone(), validity, uid);
        let generation = self.workers.generation();
        let knows_id = mailbox.message_id(uid).is_some();
        let cached = {
            let mut c = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
            if c.generation != generation {
                c.entries.clear();
                c.titles.clear();
                c.generation = generation;
            }
            c.entries.get(&key).cloned()
        };
        // A miss found before the Message-ID was learned is looked up again.
        if let Some((c, had_id)) = cached {
            if c.is_some() || had_id || !knows_id {
                return c;
            }
        }
        let engine = self.workers.engine();
        let loc = MessageLocation {
            folder: key.1.clone(),
            uid_validity: validity,
            uid,
        };
        // A copy that carries a block written into it names its Message-ID.
        let carried = engine
            .carried_block(owner, &loc)
            .ok()
            .flatten()
            .filter(|c| c.len <= partial::MAX_BLOCK);
        let by_id = mailbox
            .message_id(uid)
            .and_then(|m| MessageId::parse(m).ok())
            .or_else(|| carried.as_ref().map(|c| c.message_id.clone()))
            .and_then(|m| engine.tracking(owner, &m).ok().flatten());
        let knows_id = knows_id || carried.is_some();
        let carried = carried.map_or(0, |c| c.len);
        let record = by_id.or_else(|| engine.tracking_at(owner, &loc).ok().flatten());
        let shown = record.and_then(|r| {
            let keyword = engine.keywords_for(&r.status)?.to_string();
            let mut title = |id| self.regarding_title(id, generation);
            let block = Bytes::from(engine.headers_with(&r, None, &mut title).ok()?.render());
            Some((block, keyword))
        });
        let tracked = match shown {
            Some((block, keyword)) => Some(Tracked {
                block,
                keyword: Some(keyword),
                carried,
            }),
            None if carried > 0 => Some(Tracked {
                block: Bytes::new(),
                keyword: None,
                carried,
            }),
            None => None,
        };
        {
            let mut c = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
            // Filled under an older generation: not kept.
            if c.generation == generation {
                if c.entries.len() >= CACHE_MAX {
                    c.entries.clear();
                    c.titles.clear();
                }
                c.entries.insert(key, (tracked.clone(), knows_id));
            }
        }
        tracked
    }

    /// A regarding record's name, read once per tracking generation.
    fn regarding_title(
        &self,
        id: uuid::Uuid,
        generation: u64,
    ) -> Result<String, crate::track::TrackError> {
        let cached = {
            let c = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
            c.titles.get(&id).cloned()
        };
        if let Some(t) = cached {
            return Ok(t);
        }
        let title = self.workers.engine().record_title(id)?;
        let mut c = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        if c.generation == generation {
            c.titles.insert(id, title.clone());
        }
        Ok(title)
    }

    /// The edit of a whole-item literal (BODY[], RFC822, HEADER, HEADER.FIELDS):
    /// the block first, in place of the one the copy carries.
    pub(super) fn whole_edit(
        &self,
        cx: &HookContext<'_>,
        seq: u32,
        line: &[u8],
        literal: Literal,
    ) -> Option<LiteralEdit> {
        let item = announced_item(line)?;
        if let Item::HeaderFields(names) = &item {
            if !crate::message::headers::names_tracking_header(names.iter().map(String::as_str)) {
                return None;
            }
        }
        let uid = crate::wire::fetch_uid(line)
            .or_else(|| cx.state.selected().and_then(|m| m.uid(seq)))?;
        let tracked = self.tracked_at(cx, uid)?;
        let carried = u64::from(tracked.carried);
        let prefix = match item {
            Item::Whole | Item::Header if literal.len >= carried => tracked.block,
            // The server returns the fields the copy carries itself.
            Item::HeaderFields(_) if carried > 0 => return None,
            Item::HeaderFields(names) => {
                let b = filter_block(&tracked.block, &names);
                if b.is_empty() {
                    return None;
                }
                return Some(LiteralEdit {
                    prefix: Bytes::from(b),
                    skip: 0,
                    take: literal.len,
                    line: None,
                });
            }
            _ => return None,
        };
        if prefix.is_empty() && carried == 0 {
            return None;
        }
        Some(LiteralEdit {
            prefix,
            skip: carried,
            take: literal.len - carried,
            line: None,
        })
    }
}
