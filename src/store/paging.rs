//! Paging through long lists without loading them: a page of records of one kind
//! in name order, for lists that must stay fast with 100,000 contacts (the pane's
//! Contacts page, SPEC section 10); counts per kind are `kind_index`'s.
//!
//! A derived tree (see `sled::index`): `kind_order` holds `kind code, name key,
//! 0, id → ()` for every record, kept in step by `Tx::index_record`. A store
//! written before it existed is indexed once on open ([`ensure_indexes`]); a
//! marker in `meta` records that.
//!
//! A page is addressed by an opaque cursor (the hex of the key after the list's
//! prefix), so the next page costs the same however deep it is.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::text::fold;

/// Longest name prefix (bytes) a sort key keeps; names equal up to here sort by id.
pub(crate) const NAME_KEY_BYTES: usize = 64;
/// The default and largest page sizes.
pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 500;

/// Which page of a list: the first, the one after a cursor, or the one before.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRequest {
    #[serde(default)]
    pub after: Option<String>,
    #[serde(default)]
    pub before: Option<String>,
    /// Items per page; 0 means [`DEFAULT_PAGE`], more than [`MAX_PAGE`] is cut.
    #[serde(default)]
    pub limit: usize,
}

impl PageRequest {
    pub fn first(limit: usize) -> Self {
        PageRequest {
            limit,
            ..Default::default()
        }
    }
    pub fn limit(&self) -> usize {
        match self.limit {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        }
    }
}

/// One page and the cursors of its neighbours (absent at either end).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub prev: Option<String>,
    pub next: Option<String>,
}

/// The sort key of a name: folded (case and accents ignored), cut at a char boundary.
pub(crate) fn name_key(name: &str) -> Vec<u8> {
    let f = fold(name.trim());
    let mut end = f.len().min(NAME_KEY_BYTES);
    while !f.is_char_boundary(end) {
        end -= 1;
    }
    f.as_bytes()[..end]
        .iter()
        .map(|b| if *b == 0 { 1 } else { *b })
        .collect()
}

/// `name key 0 id`: what follows a list's prefix in an ordered index.
pub(crate) fn order_suffix(name: &str, id: Uuid) -> Vec<u8> {
    [&name_key(name)[..], &[0], id.as_bytes()].concat()
}
