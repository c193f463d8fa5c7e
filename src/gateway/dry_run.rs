//! `crmproxy gateway test MAILBOX`: log in as the gateway would, list the
//! folders, say whether the server has IDLE, CONDSTORE, QRESYNC and NOTIFY, and
//! run the mailbox's rules over the last N messages of each watched folder,
//! printing what would be tracked and why. Read-only: folders are EXAMINEd and
//! messages fetched with BODY.PEEK, so nothing changes on the server or in the CRM.

use std::fmt::Write;

use crate::imap_client::{ImapClient, UpstreamConnector};
use crate::store::UserId;
use crate::sync::worker::plan::{FolderName, FolderRole};
use crate::track::{AutoDecision, Engine};

use super::config::{GatewayConfig, MailboxConfig};
use super::credentials::credential_of;
use super::rules::{folder_regarding, mailbox_rules, watched};

/// Why the dry run could not go on (printed, exit code 1 or 3).
#[derive(Debug, thiserror::Error)]
pub enum DryRunError {
    #[error("{0}")]
    Setup(String),
    #[error("{0}")]
    Server(String),
}

/// Run the dry run; the report is returned whole (the CLI prints it).
pub async fn dry_run(
    engine: &Engine,
    g: &GatewayConfig,
    m: &MailboxConfig,
    connector: &UpstreamConnector,
    last: usize,
) -> Result<String, DryRunError> {
    let mut out = String::new();
    let rules_cfg = g.rules_of(m);
    let rules = mailbox_rules(&rules_cfg);
    let mapping = folder_regarding(engine, &rules_cfg).map_err(DryRunError::Setup)?;
    let _ = writeln!(
        out,
        "mailbox {} (owner {}) on {} as {}",
        m.name(),
        m.owner,
        connector.address(),
        m.login
    );
    let credential =
        credential_of(m).map_err(|e| DryRunError::Setup(format!("credential: {e}")))?;
    let owner = {
        let o = m.owner.clone();
        engine
            .actor(&o, &o)
            .map_err(|e| DryRunError::Setup(format!("owner {}: {e}", m.owner)))?
            .owner_id()
    };
    let mut c = ImapClient::connect(connector, &credential)
        .await
        .map_err(|e| DryRunError::Server(format!("login failed: {e}")))?;
    let _ = writeln!(out, "login: ok");
    let server = |e: crate::imap_client::ClientError| DryRunError::Server(e.to_string());
    let caps = c.capabilities().await.map_err(server)?.to_vec();
    let has = |x: &str| {
        if caps.iter().any(|c| c == x) {
            "yes"
        } else {
            "no"
        }
    };
    let _ = writeln!(
        out,
        "capabilities: IDLE {}, CONDSTORE {}, QRESYNC {}, NOTIFY {}",
        has("IDLE"),
        has("CONDSTORE"),
        has("QRESYNC"),
        has("NOTIFY")
    );
    let folders: Vec<String> = c
        .list_folders()
        .await
        .map_err(server)?
        .into_iter()
        .map(|e| e.name)
        .collect();
    let _ = writeln!(out, "folders: {}", folders.join(", "));
    let level = match rules.auto_track {
        Some(l) => format!("{l:?}"),
        None => "the owner's own option".into(),
    };
    let _ = writeln!(
        out,
        "rules: auto_track {level}, ignore [{}], headers_only {}",
        rules.ignore.join(", "),
        if rules.headers_only { "yes" } else { "no" }
    );
    for f in watched(&rules_cfg) {
        let name = match &f.name {
            FolderName::Named(n) => n.clone(),
            FolderName::Special(u) => {
                match c
                    .special_folder(*u, engine.config().sent_folder.as_deref())
                    .await
                    .map_err(server)?
                {
                    Some(n) => n,
                    None => {
                        let _ = writeln!(out, "watch {u:?}: no such folder");
                        continue;
                    }
                }
            }
        };
        if let Err(e) = c.examine(&name).await {
            let _ = writeln!(out, "watch {name}: cannot open it: {e}");
            continue;
        }
        let uids = c
            .uid_search(crate::imap_client::Search::All)
            .await
            .map_err(server)?;
        let from = uids.len().saturating_sub(last);
        let role = match f.role {
            FolderRole::Incoming => "rules",
            FolderRole::Sent => "replies to tracked email",
        };
        let regarding = mapping
            .get(&name)
            .map(|r| format!(", regarding {}:{}", r.kind, r.id))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "watch {name} ({role}{regarding}): the last {} of {} messages",
            uids.len() - from,
            uids.len()
        );
        for &uid in &uids[from..] {
            let Some(raw) = c.fetch_raw(uid).await.map_err(server)? else {
                continue;
            };
            let _ = writeln!(out, "  {}", judge(engine, owner, &rules, f.role, uid, &raw));
        }
    }
    c.logout().await;
    Ok(out)
}

/// One message's line: what would happen and why.
fn judge(
    engine: &Engine,
    owner: UserId,
    rules: &crate::track::MailboxRules,
    role: FolderRole,
    uid: u32,
    raw: &[u8],
) -> String {
    let facts = match crate::message::parse(raw) {
        Ok(f) => f,
        Err(e) => return format!("uid {uid}: skip (not a message: {e})"),
    };
    let who = facts
        .from
        .as_ref()
        .map(|m| m.address.clone())
        .unwrap_or_else(|| "?".into());
    let what = format!("uid {uid} from {who} \"{}\"", facts.subject);
    let verdict = match role {
        FolderRole::Incoming => match engine.auto_decision_with(owner, &facts, rules) {
            Ok(AutoDecision::Track) => {
                let level = rules
                    .auto_track
                    .map(|l| format!("{l:?}"))
                    .unwrap_or_else(|| "the owner's option".into());
                format!("TRACK (auto_track {level})")
            }
            Ok(AutoDecision::Skip(why)) => format!("skip ({why})"),
            Err(e) => format!("error ({e})"),
        },
        FolderRole::Sent => match engine.replies_to_tracked(&facts) {
            Ok(true) => "TRACK (replies to tracked email)".into(),
            Ok(false) => "skip (not a reply to tracked email)".into(),
            Err(e) => format!("error ({e})"),
        },
    };
    format!("{what}: {verdict}")
}
