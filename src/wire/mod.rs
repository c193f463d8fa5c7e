//! IMAP wire framing: streaming, structural, generic over `AsyncRead`; plus the
//! few byte-level helpers the proxy needs (first-token classification,
//! capability filtering). Knows nothing of sessions.

pub mod caps;
pub mod fetch_scan;
pub mod framer;
pub mod token;

pub use caps::{filter_capabilities, literal_capabilities, CapabilityPolicy, NonSyncLiterals};
pub use fetch_scan::fetch_uid;
pub use framer::{
    parse_literal_announcement, set_literal_len, Frame, Framer, Literal, LITERAL_CHUNK,
};
pub use token::{command_start, response_start, with_literal_len, CommandName, ResponseStart};
