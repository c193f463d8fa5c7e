//! The store's errors, each worded for the person who caused it.

use uuid::Uuid;

use super::address::AddressError;
use super::blobs::BlobError;
use super::model::Kind;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid {what}: {reason}")]
    Invalid { what: String, reason: String },
    #[error(transparent)]
    Address(#[from] AddressError),
    #[error("no {} with id {id}", kind.map(|k| k.as_str()).unwrap_or("record or activity"))]
    NotFound { kind: Option<Kind>, id: Uuid },
    #[error("{what} points to {kind} {id}, which does not exist")]
    MissingLink { what: String, kind: Kind, id: Uuid },
    #[error("duplicate: {0}")]
    Duplicate(String),
    #[error("{kind} {id} cannot be deleted: {count} other record(s), activit(ies) or tracking record(s) refer to it; remove or relink them first")]
    InUse { kind: Kind, id: Uuid, count: u64 },
    #[error("the store at {path} is in use by another crmproxy process ({detail})")]
    Locked { path: String, detail: String },
    #[error("the store at {path} has schema version {found}, newer than this crmproxy understands ({supported}); upgrade crmproxy")]
    NewerSchema {
        path: String,
        found: u32,
        supported: u32,
    },
    #[error("{user} does not have the \"{privilege}\" privilege; ask your administrator to grant it (crmproxy user grant {user} {privilege})")]
    NotPermitted {
        user: String,
        privilege: &'static str,
    },
    #[error("the store is damaged: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error("store database error: {0}")]
    Db(String),
}

impl StoreError {
    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        StoreError::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }
}
