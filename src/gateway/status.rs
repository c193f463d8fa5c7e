//! `gateway status`: each mailbox's state, last sync, backlog, counts and last
//! error (like Dynamics' mailbox alerts), as the running gateway reports them
//! on its admin address (`/status`, JSON) and as the CLI prints them.

use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::sync::worker::plan::{MailboxState, MailboxStatus};

use super::config::MailboxConfig;

/// One mailbox, as `/status` gives it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MailboxReport {
    pub name: String,
    pub owner: String,
    pub server: String,
    pub state: MailboxState,
    pub last_sync: Option<DateTime<Utc>>,
    pub backlog: u64,
    pub last_error: Option<String>,
    pub tracked: u64,
    pub skipped: u64,
    pub failed: u64,
    pub connections: u64,
    pub folders_watched: u64,
}

impl MailboxReport {
    pub fn of(m: &MailboxConfig, s: &MailboxStatus) -> MailboxReport {
        let f = s.fields();
        MailboxReport {
            name: m.name().to_string(),
            owner: m.owner.clone(),
            server: m.server.clone(),
            state: f.state,
            last_sync: f.last_sync,
            backlog: f.backlog,
            last_error: f.last_error,
            tracked: s.tracked.load(Ordering::Relaxed),
            skipped: s.skipped.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
            connections: s.connections.load(Ordering::Relaxed),
            folders_watched: s.folders_watched.load(Ordering::Relaxed),
        }
    }
}

fn state_word(s: MailboxState) -> &'static str {
    match s {
        MailboxState::Starting => "starting",
        MailboxState::Connecting => "connecting",
        MailboxState::Idle => "ok",
        MailboxState::Syncing => "syncing",
        MailboxState::Error => "ERROR",
        MailboxState::Stopped => "stopped",
    }
}

/// The table `gateway status` prints, one line per mailbox, errors below.
pub fn render(reports: &[MailboxReport]) -> String {
    let mut out = format!(
        "{:<24} {:<10} {:<20} {:>7} {:>8} {:>8} {:>6}  {}\n",
        "MAILBOX", "STATE", "LAST SYNC", "BACKLOG", "TRACKED", "SKIPPED", "FAILED", "OWNER"
    );
    for r in reports {
        let last = r
            .last_sync
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_else(|| "never".into());
        out.push_str(&format!(
            "{:<24} {:<10} {:<20} {:>7} {:>8} {:>8} {:>6}  {}\n",
            r.name,
            state_word(r.state),
            last,
            r.backlog,
            r.tracked,
            r.skipped,
            r.failed,
            r.owner
        ));
    }
    for r in reports {
        if let Some(e) = &r.last_error {
            out.push_str(&format!("{}: {e}\n", r.name));
        }
    }
    out
}
