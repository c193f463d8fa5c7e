//! Tracking header blocks written into messages for real. A message that a client
//! APPENDs while a tracking request is attached carries the X-CRM-* block at the
//! top of its header (SPEC section 3); this records where such a copy is and how
//! long its block is, so that a fetch through the proxy replaces that block with
//! the current one instead of adding a second above it.
//!
//! Kept in a tree of its own, keyed like `locations`, apart from the tracking
//! record: it describes a copy's bytes, which stay as written even after the
//! message is untracked.

use super::activity::MessageLocation;
use super::address::MessageId;
use super::error::StoreError;
use super::model::UserId;
use super::sled_index::location_key;
use super::sled_store::SledStore;
use super::Result;

const TREE: &str = "carried_blocks";

/// A copy that carries a tracking block for real.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarriedBlock {
    /// Bytes of the block at the top of the copy.
    pub len: u32,
    /// The Message-ID it was written for (the copy's place may be all a client
    /// fetching it has told the proxy).
    pub message_id: MessageId,
}

impl SledStore {
    pub(crate) fn carried_block_at(
        &self,
        owner: UserId,
        location: &MessageLocation,
    ) -> Result<Option<CarriedBlock>> {
        let tree = self.db().open_tree(TREE)?;
        let Some(v) = tree.get(location_key(owner.uuid(), location))? else {
            return Ok(None);
        };
        let bad = || StoreError::Corrupt("bad carried-block entry".into());
        let (len, id) = v.split_at_checked(4).ok_or_else(bad)?;
        let len = u32::from_be_bytes(len.try_into().map_err(|_| bad())?);
        let id = std::str::from_utf8(id).map_err(|_| bad())?;
        let message_id = MessageId::parse(id).map_err(|_| bad())?;
        Ok(Some(CarriedBlock { len, message_id }))
    }

    pub(crate) fn put_carried_block_at(
        &self,
        owner: UserId,
        location: &MessageLocation,
        block: &CarriedBlock,
    ) -> Result<()> {
        let tree = self.db().open_tree(TREE)?;
        let mut value = block.len.to_be_bytes().to_vec();
        value.extend_from_slice(block.message_id.as_str().as_bytes());
        tree.insert(location_key(owner.uuid(), location), value)?;
        tree.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::CrmStore;

    #[test]
    fn a_carried_block_is_found_at_its_place_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let owner = UserId::new();
        let here = MessageLocation {
            folder: "Sent".into(),
            uid_validity: 7,
            uid: 42,
        };
        let elsewhere = MessageLocation {
            uid: 43,
            ..here.clone()
        };
        let block = CarriedBlock {
            len: 181,
            message_id: MessageId::parse("<a.1@b.example>").unwrap(),
        };
        assert_eq!(store.carried_block(owner, &here).unwrap(), None);
        store.put_carried_block(owner, &here, &block).unwrap();
        assert_eq!(
            store.carried_block(owner, &here).unwrap(),
            Some(block.clone())
        );
        assert_eq!(store.carried_block(owner, &elsewhere).unwrap(), None);
        assert_eq!(store.carried_block(UserId::new(), &here).unwrap(), None);
        drop(store);
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.carried_block(owner, &here).unwrap(), Some(block));
    }
}
