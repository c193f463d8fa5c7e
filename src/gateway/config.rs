//! The gateway's part of the config file (`[gateway]`, `[gateway.servers.NAME]`,
//! `[[gateway.mailbox]]`): the servers, the mailboxes with their owner and
//! credential, and the rules — org-wide defaults that each mailbox may override.
//! See `config/gateway.example.toml`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::UpstreamConfig;
use crate::store::AutoTrack;

/// Connections one mailbox may hold, unless its config says otherwise.
pub const CONNECTIONS_PER_MAILBOX: usize = 2;
/// Connections the gateway holds to one server at most, unless configured.
pub const CONNECTIONS_PER_SERVER: usize = 400;
/// The loopback address of `/healthz`, `/metrics` and `/status`.
pub const ADMIN_ADDRESS: &str = "127.0.0.1:9465";

/// `[gateway]`. (Tables with flattened rules cannot deny unknown keys in serde;
/// the keys that matter are checked by [`GatewayConfig::validate`].)
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct GatewayConfig {
    /// `host:port` (loopback only) of the admin endpoints, or `off`.
    pub admin: String,
    /// The default for every mailbox's connections (at most).
    pub connections_per_mailbox: usize,
    /// The default budget of connections to one server.
    pub connections_per_server: usize,
    /// First and longest pause between reconnects (doubling, with jitter).
    pub backoff_first_secs: u64,
    pub backoff_max_secs: u64,
    /// How long one IDLE lasts before every watched folder is looked at again.
    pub idle_secs: u64,
    /// Use NOTIFY (RFC 5465) where the server has it: one connection watches
    /// every folder of a mailbox. `false` keeps IDLE per connection.
    pub notify: bool,
    /// Org-wide rules; each mailbox may override them.
    #[serde(flatten)]
    pub rules: RulesConfig,
    /// The servers mailboxes name, by name (each as `[upstream]` describes one).
    pub servers: BTreeMap<String, UpstreamConfig>,
    /// A server's own connection budget, by server name (default:
    /// `connections_per_server`).
    pub server_connections: BTreeMap<String, usize>,
    #[serde(rename = "mailbox")]
    pub mailboxes: Vec<MailboxConfig>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            admin: ADMIN_ADDRESS.into(),
            connections_per_mailbox: CONNECTIONS_PER_MAILBOX,
            connections_per_server: CONNECTIONS_PER_SERVER,
            backoff_first_secs: 1,
            backoff_max_secs: 300,
            idle_secs: 25 * 60,
            notify: true,
            rules: RulesConfig::default(),
            servers: BTreeMap::new(),
            server_connections: BTreeMap::new(),
            mailboxes: Vec::new(),
        }
    }
}

/// Rules, at org level (`[gateway]`) or a mailbox's (`[[gateway.mailbox]]`):
/// what is left out is inherited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RulesConfig {
    /// `off`, `replies_to_tracked`, `from_contacts_leads_accounts`,
    /// `from_any_record`, `all`; left out: each user's own option in the CRM.
    pub auto_track: Option<AutoTrack>,
    /// Folders watched (server names; `Sent` is the server's Sent folder,
    /// found by its special use). Default: INBOX and Sent.
    pub watch: Option<Vec<String>>,
    /// Addresses and whole domains never tracked automatically. A mailbox's
    /// list is added to the org's.
    pub ignore: Vec<String>,
    /// Keep the header only of what is tracked (no body, no attachments).
    pub headers_only: Option<bool>,
    /// Folder → `type:uuid` of the record its new mail is regarding (never
    /// replacing a regarding chosen by hand). A mailbox's entries win.
    pub folder_regarding: BTreeMap<String, String>,
}

/// `[[gateway.mailbox]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MailboxConfig {
    /// The mailbox's name in `gateway status` and `gateway test` (default: login).
    #[serde(default)]
    pub name: Option<String>,
    /// The CRM user whose mailbox it is (their login e-mail).
    pub owner: String,
    /// A name of `[gateway.servers]`.
    pub server: String,
    /// The IMAP login (need not be an e-mail address).
    pub login: String,
    /// Where the password comes from: exactly one of these.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub password_env: Option<String>,
    /// Run through `sh -c`; its first line of output is the password.
    #[serde(default)]
    pub password_command: Option<String>,
    #[serde(default)]
    pub connections: Option<usize>,
    #[serde(default, flatten)]
    pub rules: RulesConfig,
}

impl MailboxConfig {
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.login)
    }
}

/// What is wrong with a gateway config.
#[derive(Debug, thiserror::Error)]
pub enum GatewayConfigError {
    #[error("no [[gateway.mailbox]] in the config: nothing to watch")]
    NoMailboxes,
    #[error("mailbox {0} appears twice (give each a unique name)")]
    Duplicate(String),
    #[error("mailbox {mailbox}: no server {server} in [gateway.servers]")]
    UnknownServer { mailbox: String, server: String },
    #[error("mailbox {0}: give exactly one of password_file, password_env, password_command")]
    Password(String),
    #[error("gateway.admin {0}: the admin address must be a loopback host:port (or \"off\")")]
    Admin(String),
    #[error("mailbox {mailbox}: {reason}")]
    Mailbox { mailbox: String, reason: String },
}

impl GatewayConfig {
    /// Check what serde cannot.
    pub fn validate(&self) -> Result<(), GatewayConfigError> {
        if self.mailboxes.is_empty() {
            return Err(GatewayConfigError::NoMailboxes);
        }
        if self.admin_address()?.is_none() && self.admin.trim() != "off" {
            return Err(GatewayConfigError::Admin(self.admin.clone()));
        }
        let mut seen = std::collections::BTreeSet::new();
        for m in &self.mailboxes {
            if !seen.insert(m.name().to_ascii_lowercase()) {
                return Err(GatewayConfigError::Duplicate(m.name().into()));
            }
            if !self.servers.contains_key(&m.server) {
                return Err(GatewayConfigError::UnknownServer {
                    mailbox: m.name().into(),
                    server: m.server.clone(),
                });
            }
            let sources = [
                m.password_file.is_some(),
                m.password_env.is_some(),
                m.password_command.is_some(),
            ];
            if sources.iter().filter(|s| **s).count() != 1 {
                return Err(GatewayConfigError::Password(m.name().into()));
            }
            if m.connections == Some(0) {
                return Err(GatewayConfigError::Mailbox {
                    mailbox: m.name().into(),
                    reason: "connections must be at least 1".into(),
                });
            }
        }
        Ok(())
    }

    /// The admin address, `None` when off. Only loopback addresses are accepted.
    pub fn admin_address(&self) -> Result<Option<std::net::SocketAddr>, GatewayConfigError> {
        let a = self.admin.trim();
        if a == "off" {
            return Ok(None);
        }
        let bad = || GatewayConfigError::Admin(a.to_string());
        let addr = a
            .replace("localhost", "127.0.0.1")
            .parse::<std::net::SocketAddr>()
            .map_err(|_| bad())?;
        if !addr.ip().is_loopback() {
            return Err(bad());
        }
        Ok(Some(addr))
    }

    /// A mailbox by its name (case-insensitive).
    pub fn mailbox(&self, name: &str) -> Option<&MailboxConfig> {
        self.mailboxes
            .iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }

    /// The rules of `m`: its own, else the org's.
    pub fn rules_of(&self, m: &MailboxConfig) -> RulesConfig {
        let org = &self.rules;
        let own = &m.rules;
        let mut folder_regarding = org.folder_regarding.clone();
        folder_regarding.extend(own.folder_regarding.clone());
        RulesConfig {
            auto_track: own.auto_track.or(org.auto_track),
            watch: own.watch.clone().or_else(|| org.watch.clone()),
            ignore: org.ignore.iter().chain(&own.ignore).cloned().collect(),
            headers_only: own.headers_only.or(org.headers_only),
            folder_regarding,
        }
    }

    /// The connection budget of server `name`.
    pub fn budget_of(&self, name: &str) -> usize {
        (self.server_connections.get(name).copied())
            .unwrap_or(self.connections_per_server)
            .max(1)
    }

    /// How many connections `m` may hold.
    pub fn connections_of(&self, m: &MailboxConfig) -> usize {
        m.connections.unwrap_or(self.connections_per_mailbox).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> GatewayConfig {
        #[derive(Deserialize)]
        struct F {
            gateway: GatewayConfig,
        }
        toml::from_str::<F>(text).unwrap().gateway
    }

    const BASE: &str = r#"
[gateway]
auto_track = "from_any_record"
ignore = ["news.example"]
folder_regarding = { "Projects/A" = "account:0193a1b2-c3d4-7005-8000-000000000005" }
[gateway.servers.main]
host = "127.0.0.1"
port = 143
tls = "plain"
[[gateway.mailbox]]
owner = "alice@example.test"
server = "main"
login = "alice"
password_env = "ALICE_PW"
auto_track = "all"
ignore = ["boss@example.test"]
headers_only = true
[[gateway.mailbox]]
name = "bob"
owner = "bob@example.test"
server = "main"
login = "bob"
password_file = "/etc/crmproxy/bob.pass"
watch = ["INBOX"]
"#;

    #[test]
    fn mailbox_rules_override_and_extend_the_org_defaults() {
        let g = parse(BASE);
        g.validate().unwrap();
        let alice = g.mailbox("ALICE").unwrap();
        let r = g.rules_of(alice);
        assert_eq!(r.auto_track, Some(AutoTrack::All));
        assert_eq!(r.ignore, vec!["news.example", "boss@example.test"]);
        assert_eq!(r.headers_only, Some(true));
        assert_eq!(r.watch, None);
        assert_eq!(r.folder_regarding.len(), 1);
        let bob = g.rules_of(g.mailbox("bob").unwrap());
        assert_eq!(bob.auto_track, Some(AutoTrack::FromAnyRecord));
        assert_eq!(bob.watch, Some(vec!["INBOX".to_string()]));
        assert_eq!(g.connections_of(alice), CONNECTIONS_PER_MAILBOX);
    }

    #[test]
    fn the_example_config_parses_and_validates() {
        let text = include_str!("../../config/gateway.example.toml");
        let cfg =
            crate::config::Config::from_toml(text, std::path::Path::new("gateway.example.toml"))
                .unwrap();
        cfg.gateway.validate().unwrap();
        assert_eq!(cfg.gateway.mailboxes.len(), 2);
        assert_eq!(cfg.gateway.budget_of("company"), 200);
        let sales = cfg.gateway.rules_of(cfg.gateway.mailbox("sales").unwrap());
        assert_eq!(sales.auto_track, Some(AutoTrack::All));
        assert_eq!(sales.ignore.len(), 3);
    }

    #[test]
    fn mistakes_are_named() {
        let two = BASE.replace(
            "password_file = \"/etc/crmproxy/bob.pass\"",
            "password_file = \"/x\"\npassword_env = \"Y\"",
        );
        assert!(
            matches!(parse(&two).validate(), Err(GatewayConfigError::Password(m)) if m == "bob")
        );
        let srv = BASE.replace(
            "server = \"main\"\nlogin = \"bob\"",
            "server = \"other\"\nlogin = \"bob\"",
        );
        assert!(matches!(
            parse(&srv).validate(),
            Err(GatewayConfigError::UnknownServer { .. })
        ));
        let mut g = parse(BASE);
        g.admin = "0.0.0.0:9465".into();
        assert!(matches!(g.validate(), Err(GatewayConfigError::Admin(_))));
    }
}
