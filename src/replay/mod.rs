//! Replay (SPEC section 9): transcripts served as a fake upstream to a live
//! client (`server`), or played as the client against a live server (`against`).
//! `script` indexes a transcript (pure), `matcher` compares messages (pure),
//! `source` reads a literal's bytes back from the file.

pub mod against;
pub mod matcher;
pub mod script;
pub mod server;
pub mod source;

pub use script::{index, Indexer, Part, Script, ScriptError, Step};

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    // The cause is in the message (not a `source`): printed once.
    #[error("{path}: {cause}")]
    Script {
        path: std::path::PathBuf,
        cause: ScriptError,
    },
    #[error("{path}: {cause}")]
    Read {
        path: std::path::PathBuf,
        cause: std::io::Error,
    },
    /// The live side departed from the recording.
    #[error("{0}")]
    Departed(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
