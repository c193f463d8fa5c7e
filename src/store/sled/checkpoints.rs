//! The gateway's per-folder checkpoints in the embedded store: a tree of their
//! own (one of the transaction set, so a checkpoint can commit with the
//! activities it covers), keyed by owner, mailbox and folder, flushed before a
//! write returns.

use crate::store::activity::FolderCheckpoint;
use crate::store::error::StoreError;
use crate::store::model::UserId;
use crate::store::Result;

use super::SledStore;

/// `owner uuid (16 bytes) | mailbox | 0 | folder`: a mailbox name holds no NUL.
pub(super) fn key(owner: UserId, mailbox: &str, folder: &str) -> Vec<u8> {
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

/// The key and value of a checkpoint to write, checked.
pub(super) fn entry(
    owner: UserId,
    mailbox: &str,
    folder: &str,
    cp: &FolderCheckpoint,
) -> Result<(Vec<u8>, Vec<u8>)> {
    if mailbox.contains('\0') {
        return Err(StoreError::Invalid {
            what: "mailbox name".into(),
            reason: "it may not hold NUL".into(),
        });
    }
    Ok((
        key(owner, mailbox, folder),
        serde_json::to_vec(cp).map_err(bad)?,
    ))
}

impl SledStore {
    fn checkpoint_tree(&self) -> &sled::Tree {
        self.tree(super::ix::CHECKPOINTS)
    }

    pub(super) fn read_checkpoint(
        &self,
        owner: UserId,
        mailbox: &str,
        folder: &str,
    ) -> Result<Option<FolderCheckpoint>> {
        match self.checkpoint_tree().get(key(owner, mailbox, folder))? {
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
        let (k, v) = entry(owner, mailbox, folder, cp)?;
        let tree = self.checkpoint_tree();
        tree.insert(k, v)?;
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
        for kv in self.checkpoint_tree().scan_prefix(&p) {
            let (k, v) = kv?;
            let folder = String::from_utf8_lossy(&k[p.len()..]).into_owned();
            out.push((folder, serde_json::from_slice(&v).map_err(bad)?));
        }
        Ok(out)
    }
}
