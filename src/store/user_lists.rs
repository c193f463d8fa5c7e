//! Per-user lists of records for the pane (the guide's "Favorites and recently used
//! records"): favourites, starred on a record page, and the records a user viewed
//! last. One JSON row per (user, list) in the `user_lists` tree, changed in one
//! transaction. Lists are not links: a record in a list can still be deleted, and
//! reading a list leaves out records that are gone (the next change drops them).
//! Also the relationship assistant's snoozed cards: card key → until when.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::model::RecordRef;

/// How many recently viewed records a user's list keeps.
pub const RECENT_LIMIT: usize = 20;
/// How many favourites a user may have.
pub const FAVOURITES_LIMIT: usize = 100;
/// How many snoozed cards a user's list keeps (the ones ending last are kept).
pub const SNOOZED_LIMIT: usize = 200;
/// The longest card key accepted (a Message-ID may be long).
pub(crate) const CARD_KEY_MAX: usize = 1024;

/// Which of a user's lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserList {
    Favourites,
    Recent,
}

impl UserList {
    pub(crate) fn code(self) -> u8 {
        match self {
            UserList::Favourites => b'F',
            UserList::Recent => b'R',
        }
    }
}

/// One record in a list, with when it was starred or last viewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListEntry {
    pub record: RecordRef,
    pub at: DateTime<Utc>,
}

/// An assistant card the user put aside until `until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snoozed {
    pub card: String,
    pub until: DateTime<Utc>,
}
