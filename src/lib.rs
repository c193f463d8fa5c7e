//! crmproxy: a local IMAP proxy that brings CRM email tracking to any IMAP client.
//!
//! Dependencies point one way: `cli` → `proxy` → (tracking engine) → `store`;
//! `wire` is the IMAP framing that `proxy` uses, and knows nothing of sessions.

#![forbid(unsafe_code)]

pub mod admin;
pub mod cli;
pub mod config;
pub mod doctor;
pub mod events;
pub mod formats;
pub mod imap_client;
pub mod message;
pub mod pane;
pub mod private_files;
pub mod proxy;
pub mod record;
pub mod replay;
pub mod store;
pub mod sync;
pub mod tls;
pub mod track;
pub mod wire;
