//! The gateway's per-folder checkpoints in PostgreSQL (table
//! `gateway_checkpoints`, migration v4): one row per owner, mailbox and folder.

use uuid::Uuid;

use postgres::GenericClient;

use super::db::{decode, json, Db};
use super::PgError;
use super::PgStore;
use crate::store::activity::FolderCheckpoint;
use crate::store::model::UserId;
use crate::store::Result;

impl PgStore {
    pub(super) fn read_checkpoint(
        &self,
        owner: UserId,
        mailbox: &str,
        folder: &str,
    ) -> Result<Option<FolderCheckpoint>> {
        let id: Uuid = owner.uuid();
        self.read(|db| {
            db.doc(
                "folder checkpoint",
                "SELECT doc FROM gateway_checkpoints WHERE owner = $1 AND mailbox = $2 AND folder = $3",
                &[&id, &mailbox, &folder],
            )
        })
    }

    pub(super) fn write_checkpoint(
        &self,
        owner: UserId,
        mailbox: &str,
        folder: &str,
        cp: &FolderCheckpoint,
    ) -> Result<()> {
        self.write(|db| upsert(db, owner, mailbox, folder, cp))
    }

    pub(super) fn read_checkpoints(
        &self,
        owner: UserId,
        mailbox: &str,
    ) -> Result<Vec<(String, FolderCheckpoint)>> {
        let id: Uuid = owner.uuid();
        self.read(|db| {
            db.query(
                "SELECT folder, doc FROM gateway_checkpoints WHERE owner = $1 AND mailbox = $2 ORDER BY folder",
                &[&id, &mailbox],
            )?
            .iter()
            .map(|r| Ok((r.try_get::<_, String>(0)?, decode("folder checkpoint", r, 1)?)))
            .collect()
        })
    }
}

/// Write a checkpoint inside the caller's transaction (alone, or with the
/// activities it covers).
pub(super) fn upsert<C: GenericClient>(
    db: &mut Db<'_, C>,
    owner: UserId,
    mailbox: &str,
    folder: &str,
    cp: &FolderCheckpoint,
) -> Result<(), PgError> {
    let id: Uuid = owner.uuid();
    let doc = json(cp);
    db.exec(
        "INSERT INTO gateway_checkpoints (owner, mailbox, folder, doc) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (owner, mailbox, folder) DO UPDATE SET doc = $4",
        &[&id, &mailbox, &folder, &doc],
    )
    .map(|_| ())
}
