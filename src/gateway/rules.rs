//! A configured mailbox made into the sync worker's [`MailboxPlan`]: its rules
//! (org defaults overridden per mailbox), watched folders, folder → regarding
//! mappings checked against the CRM, its credential, connections and back-off.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::imap_client::folders::SpecialUse;
use crate::imap_client::UpstreamConnector;
use crate::store::RecordRef;
use crate::sync::worker::plan::{
    Backoff, CredentialSource, FolderName, FolderRole, MailboxPlan, MailboxStatus, WatchedFolder,
};
use crate::track::{parse_record_ref, Engine, MailboxRules};

use super::config::{GatewayConfig, MailboxConfig, RulesConfig};
use super::credentials::credential_of;

/// The folders watched when the config names none.
pub const DEFAULT_WATCH: [&str; 2] = ["INBOX", "Sent"];

/// The engine's rules of a mailbox.
pub fn mailbox_rules(r: &RulesConfig) -> MailboxRules {
    MailboxRules {
        auto_track: r.auto_track,
        ignore: r.ignore.clone(),
        headers_only: r.headers_only.unwrap_or(false),
    }
}

/// The watched folders: `Sent` (any case) is the server's Sent folder (found by
/// its special use) and tracks replies; every other folder goes through the rules.
pub fn watched(r: &RulesConfig) -> Vec<WatchedFolder> {
    let names: Vec<String> = match &r.watch {
        Some(w) => w.clone(),
        None => DEFAULT_WATCH.iter().map(|s| s.to_string()).collect(),
    };
    names
        .into_iter()
        .map(|n| {
            if n.eq_ignore_ascii_case("sent") {
                WatchedFolder {
                    name: FolderName::Special(SpecialUse::Sent),
                    role: FolderRole::Sent,
                }
            } else if n.eq_ignore_ascii_case("inbox") {
                WatchedFolder {
                    name: FolderName::Named("INBOX".into()),
                    role: FolderRole::Incoming,
                }
            } else {
                WatchedFolder {
                    name: FolderName::Named(n),
                    role: FolderRole::Incoming,
                }
            }
        })
        .collect()
}

/// Folder → record, each naming an existing record that can be regarding.
pub fn folder_regarding(
    engine: &Engine,
    r: &RulesConfig,
) -> Result<BTreeMap<String, RecordRef>, String> {
    let mut out = BTreeMap::new();
    for (folder, value) in &r.folder_regarding {
        let bad = |why: String| format!("folder_regarding {folder} = {value}: {why}");
        let rec = parse_record_ref(value).map_err(bad)?;
        match engine.store().record(rec.id) {
            Ok(Some(found)) if found.kind() == rec.kind && rec.kind.can_be_regarding() => {}
            Ok(Some(_)) => {
                return Err(bad("not a record of that type that can be regarding".into()))
            }
            Ok(None) => return Err(bad("no such record".into())),
            Err(e) => return Err(bad(e.to_string())),
        }
        out.insert(folder.clone(), rec);
    }
    Ok(out)
}

/// The worker's plan for mailbox `m`. `Err`: why it cannot start (shown in
/// `gateway status`; the other mailboxes go on).
pub fn plan_for(
    engine: &Engine,
    g: &GatewayConfig,
    m: &MailboxConfig,
    connector: UpstreamConnector,
    budget: Arc<Semaphore>,
    status: Arc<MailboxStatus>,
) -> Result<MailboxPlan, String> {
    let rules = g.rules_of(m);
    let credential = credential_of(m).map_err(|e| format!("credential: {e}"))?;
    Ok(MailboxPlan {
        key: m.name().to_string(),
        owner: m.owner.clone(),
        connector,
        credentials: CredentialSource::Fixed(credential),
        folders: watched(&rules),
        rules: mailbox_rules(&rules),
        folder_regarding: folder_regarding(engine, &rules)?,
        checkpoints: true,
        max_connections: g.connections_of(m),
        budget: Some(budget),
        backoff: Backoff {
            first: Duration::from_secs(g.backoff_first_secs.max(1)),
            max: Duration::from_secs(g.backoff_max_secs.max(g.backoff_first_secs).max(1)),
        },
        job_connection: false,
        idle_for: Duration::from_secs(g.idle_secs.clamp(1, 29 * 60)),
        notify: g.notify,
        status,
    })
}
