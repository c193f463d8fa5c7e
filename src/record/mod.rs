//! Recording (SPEC section 9): each upstream connection written as a transcript
//! a person can read and diff, secrets redacted, bodies optionally replaced by
//! same-length filler. The format and the redaction are pure (`format`,
//! `escape`, `tracker`, `redact`); `writer` wraps streams, `sink` queues what
//! is written and `file` writes it.
//! `crate::replay` reads transcripts back.

pub mod escape;
mod file;
pub mod format;
pub mod redact;
pub mod sink;
pub mod tracker;
pub mod writer;

pub use format::{parse_record, Dir, Header, Kind, Normalise, Record};
pub use tracker::{Redaction, Tracker};
pub use writer::{RecordSettings, Recorder, RecordingIo, Transcript};

/// A transcript that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("bad escape: {0}")]
    Escape(&'static str),
    #[error("bad record: {0}")]
    Record(&'static str),
    #[error("bad header: {0}")]
    Header(&'static str),
}

/// Recording cannot start.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot create the record directory {dir}: {source}")]
    Dir {
        dir: std::path::PathBuf,
        source: std::io::Error,
    },
}
