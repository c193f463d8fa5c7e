//! `crmproxy doctor --user LOGIN` (password on stdin): what tracking needs of a
//! mailbox on the server, signed in as its user: the folder layout (namespace
//! prefix and separator), the tracking folder under it (created as the proxy would
//! at login, or the server's refusal), the Sent and Drafts folders found, and
//! whether INBOX stores keywords (PERMANENTFLAGS).

use serde_json::json;

use super::Check;
use crate::config::Config;
use crate::imap_client::connect::UpstreamConnector;
use crate::imap_client::folders::SpecialUse;
use crate::proxy::Credential;
use crate::sync::worker::{ClientError, ImapClient};

impl Check {
    fn with_facts(mut self, facts: serde_json::Value) -> Check {
        self.facts = Some(facts);
        self
    }
}

/// A mailbox login for the checks. `Debug` shows no password.
pub struct MailboxLogin {
    pub user: String,
    password: String,
}

impl std::fmt::Debug for MailboxLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MailboxLogin({}, <redacted>)", self.user)
    }
}

impl MailboxLogin {
    /// `user` with the password on the first line of `input` (stdin: never on
    /// the command line, where other users of the machine see it).
    pub fn read(user: &str, input: impl std::io::BufRead) -> std::io::Result<MailboxLogin> {
        let mut line = String::new();
        let mut input = input;
        input.read_line(&mut line)?;
        Ok(MailboxLogin {
            user: user.to_owned(),
            password: line.trim_end_matches(['\r', '\n']).to_owned(),
        })
    }
}

/// Sign in as `login` and report the mailbox's folders and keyword support.
pub async fn check_mailbox(cfg: &Config, login: &MailboxLogin) -> Vec<Check> {
    let timeout = std::time::Duration::from_secs(cfg.upstream.connect_timeout_secs.max(1)) * 4;
    match tokio::time::timeout(timeout, checks(cfg, login)).await {
        Ok(Ok(checks)) => checks,
        Ok(Err(e)) => vec![Check::fail(
            "mailbox",
            format!("signed in as {}: {e}", login.user),
            "check the login and password, and the upstream checks above",
        )],
        Err(_) => vec![Check::fail(
            "mailbox",
            format!("the server did not answer in time for {}", login.user),
            "check the upstream checks above",
        )],
    }
}

async fn checks(cfg: &Config, login: &MailboxLogin) -> Result<Vec<Check>, ClientError> {
    let connector = UpstreamConnector::new(&cfg.upstream, cfg.proxy.max_line_bytes)
        .map_err(|e| ClientError::Connect(e.to_string()))?;
    let credential = Credential::Login {
        user: login.user.clone().into_bytes(),
        password: login.password.clone().into_bytes(),
    };
    let mut c = ImapClient::connect(&connector, &credential).await?;
    let layout = c.layout().await?;
    let track_folder = layout.to_server(&cfg.tracking.track_folder);
    let separator = layout.separator.map(String::from);
    let mut out = vec![Check::ok(
        "folder layout",
        format!(
            "personal namespace prefix {:?}, separator {}; the tracking folder {} is {:?} here",
            layout.prefix,
            separator
                .as_deref()
                .map_or("NIL".into(), |s| format!("{s:?}")),
            cfg.tracking.track_folder,
            track_folder
        ),
    )
    .with_facts(json!({
        "prefix": layout.prefix,
        "separator": separator,
        "track_folder": track_folder,
    }))];
    // What the proxy does at a CRM user's login: a refusal here is one there.
    out.push(match c.create(&track_folder).await {
        Ok(()) => Check::ok(
            "tracking folder",
            format!("{track_folder} exists (created if it was missing)"),
        ),
        Err(ClientError::Refused { text, .. }) => Check::fail(
            "tracking folder",
            format!("the server refuses to create {track_folder}: {text}"),
            "set tracking.track_folder to a folder name the server accepts (a path like \"CRM/Track\")",
        ),
        Err(e) => return Err(e),
    });
    for (kind, name, configured, setting) in [
        (
            SpecialUse::Sent,
            "sent folder",
            cfg.tracking.sent_folder.as_deref(),
            "tracking.sent_folder",
        ),
        (
            SpecialUse::Drafts,
            "drafts folder",
            cfg.tracking.drafts_folder.as_deref(),
            "tracking.drafts_folder",
        ),
    ] {
        let found = c.special_folder(kind, configured).await?;
        let how = if configured.is_some() {
            format!("set by {setting}")
        } else {
            "found on the server".to_owned()
        };
        out.push(
            match &found {
                Some(f) => Check::ok(name, format!("{f} ({how})")),
                None => Check::warn(
                    name,
                    format!(
                        "no folder marked {} and none of the usual names",
                        kind.attribute()
                    ),
                    format!("set {setting} to the folder's name (a path like \"Sent\")"),
                ),
            }
            .with_facts(json!({ "folder": found })),
        );
    }
    // Read-only first; a server that answers EXAMINE with empty PERMANENTFLAGS
    // (Dovecot: read-only means none) is asked by SELECT, which changes nothing
    // but \Recent (no STORE, no CLOSE: LOGOUT expunges nothing).
    c.examine("INBOX").await?;
    if !c.keywords_allowed {
        c.select("INBOX").await?;
    }
    let keywords = c.keywords_allowed;
    out.push(
        if keywords {
            Check::ok(
                "keywords",
                "INBOX's PERMANENTFLAGS include \\*: tracking keywords are stored on the server",
            )
        } else {
            Check::warn(
                "keywords",
                "INBOX's PERMANENTFLAGS lack \\*: the server does not store tracking keywords",
                "tracking still works; the proxy shows the state keywords from the CRM, but \
                 other clients and a second proxy do not see them",
            )
        }
        .with_facts(json!({ "keywords_stored": keywords })),
    );
    c.logout().await;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_the_first_stdin_line_and_never_shown() {
        let login = MailboxLogin::read("ana@example.org", &b"s3cret pass\r\nmore\n"[..]).unwrap();
        assert_eq!(login.password, "s3cret pass");
        let shown = format!("{login:?}");
        assert!(
            shown.contains("ana@example.org") && !shown.contains("s3cret"),
            "{shown}"
        );
    }
}
