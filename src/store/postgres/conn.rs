//! Connections to the team's PostgreSQL: the options (URL, password from an
//! environment variable or a 0600 file, CA file), TLS verified like the upstream
//! IMAP server's (rustls with the system roots or a CA file), a small pool, and a
//! per-connection cache of prepared statements.
//!
//! The `postgres` crate is blocking: each client drives its connection on a
//! small runtime of its own, which is what `CrmStore`'s blocking methods need
//! (they run on `spawn_blocking` threads or in the plain CLI).

use postgres::config::{Host, SslMode};
use postgres::{Client, NoTls, Statement};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::PgError;

/// Idle connections kept per store (a proxy runs a few blocking calls at once).
const MAX_IDLE: usize = 8;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the CRM database is and how to reach it.
#[derive(Clone, Default)]
pub struct PgOptions {
    /// `postgres://user@host:port/db?sslmode=…` (a password in it is allowed but
    /// better kept out: see the other fields).
    pub url: String,
    /// Read the password from this environment variable when set.
    pub password_env: Option<String>,
    /// Else read it from this file, which must be private (0600).
    pub password_file: Option<PathBuf>,
    /// Trust this PEM CA for the server's certificate, besides the system roots.
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for PgOptions {
    // Never print a password that sits in the URL.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOptions")
            .field("url", &redact(&self.url))
            .field("password_env", &self.password_env)
            .field("password_file", &self.password_file)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// The URL with any password replaced, fit for logs and messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (auth, tail) = match rest.find('@') {
        Some(i) if !rest[..i].contains('/') => (&rest[..i], &rest[i..]),
        _ => return url.to_owned(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***{tail}"),
        None => url.to_owned(),
    }
}

/// Is this a `postgres://` or `postgresql://` URL (rather than a sled directory)?
pub fn is_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

impl PgOptions {
    pub fn new(url: impl Into<String>) -> Self {
        PgOptions {
            url: url.into(),
            ..Default::default()
        }
    }

    /// The driver's configuration with the password filled in.
    pub fn config(&self) -> Result<postgres::Config, PgError> {
        let mut cfg: postgres::Config = self
            .url
            .parse()
            .map_err(|e| PgError::Config(format!("store URL {}: {e}", redact(&self.url))))?;
        if let Some(var) = &self.password_env {
            if let Ok(p) = std::env::var(var) {
                cfg.password(p.trim_end_matches(['\r', '\n']));
            }
        }
        if cfg.get_password().is_none() {
            if let Some(path) = &self.password_file {
                cfg.password(read_password_file(path)?);
            }
        }
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(CONNECT_TIMEOUT);
        }
        if cfg.get_application_name().is_none() {
            cfg.application_name("crmproxy");
        }
        cfg.keepalives(true)
            .keepalives_idle(Duration::from_secs(30));
        Ok(cfg)
    }

    /// Where it points, for messages (no password).
    pub fn describe(&self) -> String {
        redact(&self.url)
    }
}

fn read_password_file(path: &Path) -> Result<String, PgError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path)
            .map_err(|e| PgError::Config(format!("store password file {}: {e}", path.display())))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(PgError::Config(format!(
                "store password file {} is readable by others; run chmod 600 {}",
                path.display(),
                path.display()
            )));
        }
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| PgError::Config(format!("store password file {}: {e}", path.display())))?;
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}

/// The rustls client configuration: system roots plus the CA file.
fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, PgError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| PgError::Config(format!("store CA file {}: {e}", path.display())))?;
        for c in certs {
            roots
                .add(c)
                .map_err(|e| PgError::Config(format!("store CA file {}: {e}", path.display())))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PgError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A connection and the statements prepared on it.
pub struct Conn {
    pub client: Client,
    pub cache: HashMap<&'static str, Statement>,
}

/// Opens connections and keeps a few idle ones.
pub struct Pool {
    cfg: postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    idle: Mutex<Vec<Conn>>,
}

impl Pool {
    pub fn new(opts: &PgOptions) -> Result<Pool, PgError> {
        let cfg = opts.config()?;
        // Over a Unix socket TLS means nothing; `sslmode=disable` turns it off.
        let unix_only = cfg.get_hosts().iter().all(|h| !matches!(h, Host::Tcp(_)));
        let tls = if cfg.get_ssl_mode() == SslMode::Disable || unix_only {
            None
        } else {
            Some(tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(
                opts.ca_file.as_deref(),
            )?))
        };
        Ok(Pool {
            cfg,
            tls,
            idle: Mutex::new(Vec::new()),
        })
    }

    pub fn connect(&self) -> Result<Client, PgError> {
        let mut c = match &self.tls {
            Some(tls) => self.cfg.connect(tls.clone())?,
            None => self.cfg.connect(NoTls)?,
        };
        // Every query here is a short lookup or write: JIT compiling one (a search
        // over common words crosses the default cost threshold) costs far more
        // than it saves.
        c.batch_execute("SET jit = off")?;
        Ok(c)
    }

    /// Does this pool speak TLS when the server offers it?
    pub fn uses_tls(&self) -> bool {
        self.tls.is_some()
    }

    pub fn get(&self) -> Result<Pooled<'_>, PgError> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match idle {
            Some(c) if !c.client.is_closed() => c,
            _ => Conn {
                client: self.connect()?,
                cache: HashMap::new(),
            },
        };
        Ok(Pooled {
            pool: self,
            conn: Some(conn),
        })
    }
}

/// A connection on loan; back to the pool when dropped (unless it broke).
pub struct Pooled<'a> {
    pool: &'a Pool,
    conn: Option<Conn>,
}

impl std::ops::Deref for Pooled<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn.as_ref().expect("present until dropped")
    }
}

impl std::ops::DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("present until dropped")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            if c.client.is_closed() {
                return;
            }
            let mut idle = self.pool.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < MAX_IDLE {
                idle.push(c);
            }
        }
    }
}
