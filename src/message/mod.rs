//! Reading and rewriting messages: the facts the CRM keeps about an email (parties,
//! threading ids, body text, attachments, bulk markers, calendar invitations, S/MIME),
//! and the tracking header block that the proxy adds at the top of the top-level header.
//! Parsing is mail-parser's, zero-copy over the raw bytes; nothing here changes them.

pub mod calendar;
pub mod facts;
pub mod headers;
pub mod smime;

pub use facts::{parse, Attachment, BulkMarker, EmailFacts, Mailbox};
pub use headers::TrackingHeaders;
pub use smime::{SignatureCheck, SmimeForm, SmimeInfo};
