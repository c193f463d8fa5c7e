//! What other processes changed, as PostgreSQL tells it: the schema's triggers
//! `NOTIFY crm_changes` with a small JSON payload at each commit, and [`listen`]
//! holds one connection that LISTENs and hands each change on (reconnecting
//! after the database went away), so that a pane shows what the CLI, another
//! proxy or a gateway just wrote.

use postgres::fallible_iterator::FallibleIterator;
use serde::Deserialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use uuid::Uuid;

use super::{conn::Pool, PgError, PgOptions};

/// One change another (or this) process committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A record was written or deleted, or an activity filed on its timeline.
    Record(Uuid),
    /// A mailbox's tracking record of a message was written or deleted.
    Tracking { owner: Uuid, message_id: String },
}

#[derive(Deserialize)]
struct Payload {
    record: Option<Uuid>,
    owner: Option<Uuid>,
    message_id: Option<String>,
}

fn parse(payload: &str) -> Option<Change> {
    let p: Payload = serde_json::from_str(payload).ok()?;
    match (p.record, p.owner, p.message_id) {
        (Some(id), _, _) => Some(Change::Record(id)),
        (None, Some(owner), Some(message_id)) => Some(Change::Tracking { owner, message_id }),
        _ => None,
    }
}

/// Listen until `stop` is set, calling `on` for each change (blocking: run it on
/// a thread of its own). A lost connection is retried every few seconds, and said
/// once in the log.
pub fn listen(opts: &PgOptions, stop: &AtomicBool, on: &mut dyn FnMut(Change)) {
    let mut failing = false;
    while !stop.load(Ordering::Relaxed) {
        match listen_once(opts, stop, on) {
            Ok(()) => return,
            Err(e) => {
                if !failing {
                    tracing::warn!(store = %opts.describe(), error = %e,
                        "live changes from the team's CRM stopped; retrying");
                }
                failing = true;
                for _ in 0..30 {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
}

fn listen_once(
    opts: &PgOptions,
    stop: &AtomicBool,
    on: &mut dyn FnMut(Change),
) -> Result<(), PgError> {
    let mut client = Pool::new(opts)?.connect()?;
    client.batch_execute("LISTEN crm_changes")?;
    tracing::debug!(store = %opts.describe(), "listening for changes to the team's CRM");
    while !stop.load(Ordering::Relaxed) {
        {
            let mut n = client.notifications();
            let mut it = n.timeout_iter(Duration::from_millis(500));
            while let Some(note) = it.next()? {
                if let Some(c) = parse(note.payload()) {
                    on(c);
                }
            }
        }
        if client.is_closed() {
            return Err(PgError::Config("the connection closed".into()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_parse() {
        let id = Uuid::now_v7();
        assert_eq!(
            parse(&format!("{{\"record\":\"{id}\"}}")),
            Some(Change::Record(id))
        );
        assert_eq!(
            parse(&format!("{{\"owner\":\"{id}\",\"message_id\":\"a@b\"}}")),
            Some(Change::Tracking {
                owner: id,
                message_id: "a@b".into()
            })
        );
        assert_eq!(parse("{}"), None);
        assert_eq!(parse("not json"), None);
    }
}
