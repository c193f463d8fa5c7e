//! Tracking beside the proxy (SPEC sections 3 and 5): the [`hook`] the proxy
//! calls with each session's traffic (keywords, folders, opened messages), and
//! the per-mailbox sync [`worker`] that completes what the hook asks for on its
//! own connection, watches folders with IDLE and sweeps. The proxy knows nothing
//! of this module; this module calls the tracking engine (`crate::track`).

pub mod hook;
pub mod worker;

pub use hook::TrackingHook;
pub use worker::{Job, Uids, Workers};
