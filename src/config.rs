//! Configuration: the TOML file, its defaults, and the command-line overrides.
//!
//! Every setting has a default so that `crmproxy serve` runs with no file at all;
//! `config/crmproxy.example.toml` documents each one and must stay in step with
//! this module (a unit test parses it).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Errors while reading or checking a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("invalid setting {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// How the proxy talks TLS to the upstream IMAP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamTls {
    /// TLS from the first byte (IMAPS, usually port 993).
    Implicit,
    /// Plain connection upgraded with STARTTLS before anything else is sent.
    Starttls,
    /// No TLS at all: only sensible for a server on this machine.
    Plain,
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the store and the certificates live.
    pub data_dir: PathBuf,
    pub proxy: ProxyConfig,
    pub upstream: UpstreamConfig,
    pub tls: TlsConfig,
    pub pane: PaneConfig,
    pub tracking: TrackingConfig,
    pub store: StoreConfig,
    pub record: RecordConfig,
    /// The headless gateway's servers, mailboxes and rules (`crmproxy gateway`).
    pub gateway: crate::gateway::GatewayConfig,
}

/// Where the CRM lives: the embedded sled store in the data directory (the
/// default), or a team's PostgreSQL database (`url`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `postgres://user@host:port/database?sslmode=require`; empty: the sled store
    /// in `<data_dir>/store`. Keep the password out of it (see below).
    pub url: Option<String>,
    /// The embedded store's directory when not `<data_dir>/store`.
    pub dir: Option<PathBuf>,
    /// The database password is read from this environment variable when it is set.
    pub password_env: String,
    /// Else from this file, which must be readable by its owner only (0600).
    pub password_file: Option<PathBuf>,
    /// Extra PEM CA trusted for the database server's certificate, besides the system roots.
    pub ca_file: Option<PathBuf>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: None,
            dir: None,
            password_env: "CRMPROXY_STORE_PASSWORD".into(),
            password_file: None,
            ca_file: None,
        }
    }
}

/// The store a configuration names.
#[derive(Debug, Clone)]
pub enum StoreLocation {
    Sled(PathBuf),
    Postgres(crate::store::PgOptions),
}

/// Recording upstream connections as transcripts (SPEC section 9).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordConfig {
    /// Write one transcript per upstream connection here. Unset: nothing is recorded.
    /// Relative paths are taken from `data_dir`.
    pub dir: Option<PathBuf>,
    /// Replace message bodies and attachments by same-length filler.
    pub redact_bodies: bool,
    /// Leave out the client's ID command (its fields may carry addresses).
    pub redact_id: bool,
    /// Record only connections that log in as one of these users (empty: every one).
    pub users: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyConfig {
    /// Listener for IMAP with STARTTLS (and plain, where allowed). Empty: off.
    pub imap: Option<SocketAddr>,
    /// Listener for IMAPS (implicit TLS). Empty: off.
    pub imaps: Option<SocketAddr>,
    /// Allow LOGIN/AUTHENTICATE without TLS on the IMAP listener when the client
    /// connects from a loopback address. Off means LOGINDISABLED until STARTTLS.
    pub allow_plaintext_on_loopback: bool,
    /// Longest line (without literals) the proxy parses, in bytes. Longer client
    /// lines get a BAD; longer server lines are streamed through unparsed.
    pub max_line_bytes: usize,
    /// Largest header section the proxy buffers when it rewrites one.
    pub max_header_bytes: usize,
    /// Seconds of silence from the client before the proxy closes the session.
    /// RFC 9051 asks for at least 30 minutes; lower values are raised to that.
    pub idle_timeout_secs: u64,
    /// Most client connections served at once; more are answered `* BYE` and closed.
    pub max_connections: usize,
    /// Most client connections at once from one client address (all local mail
    /// clients share 127.0.0.1, so keep this generous).
    pub max_connections_per_address: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Host name (or address) of the real IMAP server.
    pub host: String,
    pub port: u16,
    pub tls: UpstreamTls,
    /// Extra PEM CA bundle trusted for the upstream certificate, besides the system roots.
    pub ca_file: Option<PathBuf>,
    /// Name checked against the upstream certificate; defaults to `host`.
    pub server_name: Option<String>,
    /// Pin the upstream's own certificate by its SHA-256 (`"sha256:AB:CD:…"`, colons
    /// optional): that certificate is accepted whoever issued it (e.g. self-signed),
    /// and no other. `crmproxy doctor` prints the server's fingerprint.
    pub fingerprint: Option<String>,
    /// Accept any upstream certificate. Dangerous: logged loudly at every start.
    pub insecure_skip_verify: bool,
    /// Seconds allowed for the TCP connect and TLS handshake to the upstream.
    pub connect_timeout_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Directory holding the local CA and the localhost certificate (made by `init`).
    /// Relative paths are taken from `data_dir`.
    pub cert_dir: PathBuf,
    /// Renew the localhost certificate when fewer than this many days are left.
    pub renew_before_days: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaneConfig {
    /// HTTPS listener of the pane. Empty: off.
    pub addr: Option<SocketAddr>,
    /// Extra host names (besides loopback names) the pane answers to.
    pub extra_hosts: Vec<String>,
    /// Relationship assistant: appointments, calls and tasks due within this many days.
    pub upcoming_within_days: u32,
    /// Relationship assistant: a contact or lead with no activity for this many days.
    pub quiet_after_days: u32,
    /// Relationship assistant: opportunities closing within this many days.
    pub closing_within_days: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrackingConfig {
    /// Keyword a client sets to ask for tracking.
    pub request_keyword: String,
    /// Keyword the proxy sets once a message is tracked.
    pub tracked_keyword: String,
    /// Keyword the proxy sets while a request is pending.
    pub pending_keyword: String,
    /// Copying, moving or appending into this folder tracks the message.
    pub track_folder: String,
    /// More tracking folders, each tracking regarding a record: folder → "type:uuid".
    pub folder_regarding: BTreeMap<String, String>,
    /// The Sent folder (a logical path like `Sent`), where the server marks none
    /// with SPECIAL-USE or marks the wrong one; unset: found on the server.
    pub sent_folder: Option<String>,
    /// The Drafts folder the pane saves drafts to; unset: found on the server.
    pub drafts_folder: Option<String>,
    /// Minutes between sweeps of the sync worker.
    pub sync_interval_minutes: u64,
    /// Recognise a `CRM:` + digits tracking token in subjects.
    pub subject_tracking_token: bool,
    /// Load the demo CRM from fixtures on the first run, when the store is empty.
    pub load_demo_on_first_run: bool,
    /// Where the X-CRM-* block is written for real (SPEC section 3).
    pub write_headers: WriteHeaders,
}

/// Which messages get the X-CRM-* block written into them. The proxy never edits
/// a message the server holds: a block is only ever in a new message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteHeaders {
    /// Only messages a client APPENDs through the proxy while a tracking request
    /// is attached (a draft whose regarding was set in the pane, its sent copy).
    #[default]
    Appended,
    /// Also every message the sync worker tracks: replaced by a copy with the
    /// block on top (APPEND, then the original expunged once APPENDUID confirms
    /// the copy). Needs UIDPLUS and a server where expunge deletes (not Gmail).
    Replace,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: default_data_dir(),
            proxy: ProxyConfig::default(),
            upstream: UpstreamConfig::default(),
            tls: TlsConfig::default(),
            pane: PaneConfig::default(),
            tracking: TrackingConfig::default(),
            store: StoreConfig::default(),
            record: RecordConfig::default(),
            gateway: crate::gateway::GatewayConfig::default(),
        }
    }
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            imap: Some(SocketAddr::from(([127, 0, 0, 1], 1143))),
            imaps: Some(SocketAddr::from(([127, 0, 0, 1], 1993))),
            allow_plaintext_on_loopback: true,
            max_line_bytes: 64 * 1024,
            max_header_bytes: 1024 * 1024,
            idle_timeout_secs: 31 * 60,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_address: DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
        }
    }
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            host: "localhost".into(),
            port: 993,
            tls: UpstreamTls::Implicit,
            ca_file: None,
            server_name: None,
            fingerprint: None,
            insecure_skip_verify: false,
            connect_timeout_secs: 15,
        }
    }
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert_dir: PathBuf::from("certs"),
            renew_before_days: 30,
        }
    }
}

impl Default for PaneConfig {
    fn default() -> Self {
        PaneConfig {
            addr: Some(SocketAddr::from(([127, 0, 0, 1], 8443))),
            extra_hosts: Vec::new(),
            upcoming_within_days: 7,
            quiet_after_days: 30,
            closing_within_days: 14,
        }
    }
}

impl Default for TrackingConfig {
    fn default() -> Self {
        TrackingConfig {
            request_keyword: "$CRM_Track".into(),
            tracked_keyword: "$CRM_Tracked".into(),
            pending_keyword: "$CRM_Pending".into(),
            track_folder: "CRM/Track".into(),
            folder_regarding: BTreeMap::new(),
            sent_folder: None,
            drafts_folder: None,
            sync_interval_minutes: 15,
            subject_tracking_token: false,
            load_demo_on_first_run: true,
            write_headers: WriteHeaders::Appended,
        }
    }
}

/// Default of `proxy.max_connections`: well above what mail clients open (a few per
/// account and folder), well below what exhausts memory or file descriptors.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1000;
/// Default of `proxy.max_connections_per_address`.
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 500;

/// `$XDG_DATA_HOME/crmproxy`, else `~/.local/share/crmproxy`, else `./crmproxy-data`.
pub fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("crmproxy");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(h).join(".local/share/crmproxy");
    }
    PathBuf::from("crmproxy-data")
}

/// The default config file location: `<data_dir>/crmproxy.toml`.
pub fn default_config_path(data_dir: &Path) -> PathBuf {
    data_dir.join("crmproxy.toml")
}

impl Config {
    /// Parse a config from TOML text; `path` only names it in errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(e),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Read a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_owned(),
            source: e,
        })?;
        Self::from_toml(&text, path)
    }

    /// Check values that serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = self.store.url.as_deref().filter(|u| !u.trim().is_empty()) {
            if !crate::store::postgres::is_url(url.trim()) {
                return Err(ConfigError::Invalid {
                    key: "store.url",
                    reason: format!(
                        "{} is not a postgres:// URL (leave it out for the embedded store)",
                        crate::store::postgres::redact(url)
                    ),
                });
            }
        }
        if self.upstream.host.trim().is_empty() {
            return Err(ConfigError::Invalid {
                key: "upstream.host",
                reason: "must not be empty".into(),
            });
        }
        if self.upstream.port == 0 {
            return Err(ConfigError::Invalid {
                key: "upstream.port",
                reason: "must be between 1 and 65535".into(),
            });
        }
        for (key, days) in [
            ("pane.upcoming_within_days", self.pane.upcoming_within_days),
            ("pane.quiet_after_days", self.pane.quiet_after_days),
            ("pane.closing_within_days", self.pane.closing_within_days),
        ] {
            if !(1..=3650).contains(&days) {
                return Err(ConfigError::Invalid {
                    key,
                    reason: "must be between 1 and 3650 days".into(),
                });
            }
        }
        if let Some(fp) = &self.upstream.fingerprint {
            parse_fingerprint(fp).map_err(|reason| ConfigError::Invalid {
                key: "upstream.fingerprint",
                reason,
            })?;
        }
        if self
            .record
            .dir
            .as_ref()
            .is_some_and(|d| d.as_os_str().is_empty())
        {
            return Err(ConfigError::Invalid {
                key: "record.dir",
                reason: "must name a directory (leave it out to record nothing)".into(),
            });
        }
        if self.proxy.max_line_bytes < 1024 {
            return Err(ConfigError::Invalid {
                key: "proxy.max_line_bytes",
                reason: "must be at least 1024".into(),
            });
        }
        if self.proxy.max_header_bytes < 1024 {
            return Err(ConfigError::Invalid {
                key: "proxy.max_header_bytes",
                reason: "must be at least 1024".into(),
            });
        }
        for (key, n) in [
            ("proxy.max_connections", self.proxy.max_connections),
            (
                "proxy.max_connections_per_address",
                self.proxy.max_connections_per_address,
            ),
        ] {
            if n == 0 {
                return Err(ConfigError::Invalid {
                    key,
                    reason: "must be at least 1".into(),
                });
            }
        }
        for kw in [
            &self.tracking.request_keyword,
            &self.tracking.tracked_keyword,
            &self.tracking.pending_keyword,
        ] {
            if kw.is_empty() || !kw.bytes().all(is_atom_char) {
                return Err(ConfigError::Invalid {
                    key: "tracking keywords",
                    reason: format!("{kw:?} is not an IMAP keyword (atom characters only)"),
                });
            }
        }
        Ok(())
    }

    /// The certificate directory, resolved against `data_dir`.
    pub fn cert_dir(&self) -> PathBuf {
        if self.tls.cert_dir.is_absolute() {
            self.tls.cert_dir.clone()
        } else {
            self.data_dir.join(&self.tls.cert_dir)
        }
    }

    /// What `[record]` asks for: `None` when recording is off.
    pub fn record_settings(&self) -> Option<crate::record::RecordSettings> {
        let dir = self.record.dir.as_ref()?;
        Some(crate::record::RecordSettings {
            dir: if dir.is_absolute() {
                dir.clone()
            } else {
                self.data_dir.join(dir)
            },
            redaction: crate::record::Redaction {
                bodies: self.record.redact_bodies,
                id: self.record.redact_id,
            },
            users: self.record.users.clone(),
        })
    }

    /// The store directory inside `data_dir`.
    pub fn store_dir(&self) -> PathBuf {
        match &self.store.dir {
            Some(d) => d.clone(),
            None => self.data_dir.join("store"),
        }
    }

    /// The configured store: `[store] url`, else the sled directory.
    pub fn store_location(&self) -> StoreLocation {
        match self
            .store
            .url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
        {
            Some(url) => StoreLocation::Postgres(crate::store::PgOptions {
                url: url.to_owned(),
                password_env: Some(self.store.password_env.clone()),
                password_file: self.store.password_file.clone(),
                ca_file: self.store.ca_file.clone(),
            }),
            None => StoreLocation::Sled(self.store_dir()),
        }
    }

    /// Session idle timeout, never below the 30 minutes of RFC 9051.
    pub fn idle_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.proxy.idle_timeout_secs.max(30 * 60))
    }
}

/// The 32 bytes of a `sha256:…` certificate fingerprint (hex, colons optional).
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], String> {
    let t = text.trim();
    let hex_part = t
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case("sha256:"))
        .map(|_| &t[7..])
        .ok_or_else(|| format!("{text:?} must start with \"sha256:\""))?;
    let digits: String = hex_part.chars().filter(|c| *c != ':').collect();
    let bytes = hex::decode(&digits)
        .map_err(|_| format!("{text:?}: expected 64 hex digits after \"sha256:\""))?;
    <[u8; 32]>::try_from(bytes)
        .map_err(|_| format!("{text:?}: expected 64 hex digits after \"sha256:\""))
}

/// IMAP `ATOM-CHAR`: any CHAR except atom-specials.
fn is_atom_char(b: u8) -> bool {
    (0x21..0x7f).contains(&b) && !b"(){ %*\"\\]".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_loopback() {
        let c = Config::default();
        c.validate().unwrap();
        assert!(c.proxy.imap.unwrap().ip().is_loopback());
        assert!(c.proxy.imaps.unwrap().ip().is_loopback());
        assert!(c.pane.addr.unwrap().ip().is_loopback());
    }

    #[test]
    fn example_file_parses_and_matches_defaults() {
        let text = include_str!("../config/crmproxy.example.toml");
        let c = Config::from_toml(text, Path::new("example")).unwrap();
        let d = Config::default();
        assert_eq!(c.proxy.imap, d.proxy.imap);
        assert_eq!(c.upstream.tls, d.upstream.tls);
        assert_eq!(c.tracking.request_keyword, d.tracking.request_keyword);
        assert_eq!(c.proxy.max_connections, d.proxy.max_connections);
        assert_eq!(
            c.proxy.max_connections_per_address,
            d.proxy.max_connections_per_address
        );
        assert_eq!(c.upstream.fingerprint, d.upstream.fingerprint);
    }

    #[test]
    fn unknown_key_is_an_error() {
        let err = Config::from_toml("[proxy]\nimapp = \"127.0.0.1:1\"\n", Path::new("x"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("imapp"), "{err}");
    }

    #[test]
    fn bad_keyword_is_an_error() {
        let err = Config::from_toml("[tracking]\nrequest_keyword = \"a b\"\n", Path::new("x"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("keyword"), "{err}");
    }

    #[test]
    fn fingerprints_and_connection_limits_are_checked() {
        let fp = format!("sha256:{}", ["ab"; 32].join(":"));
        assert_eq!(parse_fingerprint(&fp).unwrap(), [0xab; 32]);
        assert_eq!(
            parse_fingerprint(&format!("SHA256:{}", "0".repeat(64))).unwrap(),
            [0; 32]
        );
        assert!(parse_fingerprint("ab:cd").is_err());
        assert!(parse_fingerprint("sha256:abcd").is_err());
        let err = Config::from_toml("[proxy]\nmax_connections = 0\n", Path::new("x"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("proxy.max_connections"), "{err}");
    }

    #[test]
    fn record_section_is_the_setting() {
        let c = Config::from_toml(
            "data_dir = \"/d\"\n[record]\ndir = \"rec\"\nredact_bodies = true\nusers = [\"alice\"]\n",
            Path::new("x"),
        )
        .unwrap();
        let r = c.record_settings().unwrap();
        assert_eq!(r.dir, Path::new("/d/rec"));
        assert!(r.redaction.bodies && !r.redaction.id);
        assert_eq!(r.users, vec!["alice".to_string()]);
        assert!(Config::default().record_settings().is_none());
        // The old reserved key is gone: a config naming it is an error, not ignored.
        let err = Config::from_toml("[proxy]\nrecord_dir = \"/tmp/rec\"\n", Path::new("x"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("record_dir"), "{err}");
        let example = include_str!("../config/crmproxy.example.toml");
        assert!(
            example.contains("[record]"),
            "the example documents [record]"
        );
        let err = Config::from_toml("[record]\ndir = \"\"\n", Path::new("x"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("record.dir"), "{err}");
    }

    #[test]
    fn idle_timeout_never_below_thirty_minutes() {
        let mut c = Config::default();
        c.proxy.idle_timeout_secs = 5;
        assert_eq!(c.idle_timeout().as_secs(), 1800);
    }
}
