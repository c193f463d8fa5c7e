//! The gateway's per-folder checkpoints in the embedded store: a tree of their
//! own, keyed by owner, mailbox and folder, flushed before a write returns.

use crate::store::activity::FolderCheckpoint;
use crate::store::error::StoreError;
use crate::store::model::UserId;
use crate::store::Result;

use super::SledStore;

/// The tree holding checkpoints (opened on first use; older stores lack it).
const TREE: &str = "gateway_checkpoints";

/// `owner uuid (16 bytes) | mailbox | 0 | folder`: a mailbox name holds no NUL.
fn key(owner: UserId, mailbox: &str, folder: &str) -> Vec<u8> {
    let mut k = prefix(owner, mailbox);
    k.extend_from_slice(folder.as_bytes());
    k
}

fn prefix(owner: UserId, mailbox: &str) -> Vec<u8> {
    let mut k = owner.uuid().as_bytes().to_vec();
    k.extend_from_slice(mailbox.as_bytes());
    k.push(0);
    k
}

fn bad(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(format!("folder checkpoint: {e}"))
}

impl SledStore {
    fn checkpoint_tree(&self) -> Result<sled::Tree> {
        Ok(self.db().open_tree(TREE)?)
    }

    pub(super) fn read_checkpoint(
        &self,
        owner: UserId,
        mailbox: &str,
        folder: &str,
    ) -> Result<Option<FolderCheckpoint>> {
        match self.checkpoint_tree()?.get(key(owner, mailbox, folder))? {
            Some(v) => Ok(Some(serde_json::from_slice(&v).map_err(bad)?)),
            None => Ok(None),
        }
    }

    pub(super) fn write_checkpoint(
        &self,
        owner: UserId,
        mailbox: &str,
        folder: &str,
        cp: &FolderCheckpoint,
    ) -> Result<()> {
        if mailbox.contains('\0') {
            return Err(StoreError::Invalid {
                what: "mailbox name".into(),
                reason: "it may not hold NUL".into(),
            });
        }
        let v = serde_json::to_vec(cp).map_err(bad)?;
        let tree = self.checkpoint_tree()?;
        tree.insert(key(owner, mailbox, folder), v)?;
        tree.flush()?;
        Ok(())
    }

    pub(super) fn read_checkpoints(
        &self,
        owner: UserId,
        mailbox: &str,
    ) -> Result<Vec<(String, FolderCheckpoint)>> {
        let p = prefix(owner, mailbox);
        let mut out = Vec::new();
        for kv in self.checkpoint_tree()?.scan_prefix(&p) {
            let (k, v) = kv?;
            let folder = String::from_utf8_lossy(&k[p.len()..]).into_owned();
            out.push((folder, serde_json::from_slice(&v).map_err(bad)?));
        }
        Ok(out)
    }
}
