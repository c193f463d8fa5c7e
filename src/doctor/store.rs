//! `doctor`'s checks of the CRM store: for a team's PostgreSQL, that it answers
//! (with the password from where the config says), whether the connection is
//! encrypted, the server version, the schema version against this binary's,
//! and whether this role may create the schema; for the embedded store, where
//! it is and whether a `serve` holds it.

use super::Check;
use crate::config::{Config, StoreLocation};
use crate::store::postgres::schema::{self, CURRENT_VERSION};
use crate::store::postgres::{redact, PgError, PgOptions};
use crate::store::{SledStore, StoreError};

/// Oldest server the schema is written for (unnest with several arrays,
/// `starts_with`, and so on).
const MIN_SERVER: i32 = 120000;

pub fn check_store(cfg: &Config) -> Vec<Check> {
    match cfg.store_location() {
        StoreLocation::Sled(dir) => vec![sled(&dir)],
        StoreLocation::Postgres(opts) => postgres(&opts),
    }
}

fn sled(dir: &std::path::Path) -> Check {
    if !dir.join("db").exists() {
        return Check::ok(
            "store",
            format!("embedded, at {} (made at the first start)", dir.display()),
        );
    }
    match SledStore::open(dir) {
        Ok(_) => Check::ok("store", format!("embedded, at {}", dir.display())),
        Err(StoreError::Locked { .. }) => Check::ok(
            "store",
            format!("embedded, at {}, in use by a running crmproxy", dir.display()),
        ),
        Err(e) => Check::fail(
            "store",
            format!("the embedded store at {} does not open: {e}", dir.display()),
            "see the error; restore the store directory from a backup, or move it away to start afresh",
        ),
    }
}

fn is_local(url: &str) -> bool {
    url.parse::<postgres::Config>().is_ok_and(|c| {
        c.get_hosts().iter().all(|h| match h {
            postgres::config::Host::Tcp(name) => {
                name == "localhost"
                    || name
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
            _ => true,
        })
    })
}

fn postgres(opts: &PgOptions) -> Vec<Check> {
    let at = redact(&opts.url);
    let found = match schema::inspect(opts) {
        Ok(i) => i,
        Err(PgError::Config(m)) => {
            return vec![Check::fail(
                "store",
                format!("PostgreSQL at {at}: {m}"),
                "fix [store] in the config (url, password_env, password_file, ca_file)",
            )]
        }
        Err(e) => {
            let why = match e.into_store(&opts.url) {
                StoreError::Db(m) => m,
                other => other.to_string(),
            };
            let fix = if why.contains("password") {
                format!(
                    "give the password in ${} or in [store] password_file (chmod 600)",
                    opts.password_env
                        .as_deref()
                        .unwrap_or("CRMPROXY_STORE_PASSWORD")
                )
            } else if why.contains("certificate") || why.contains("tls") || why.contains("TLS") {
                "the server's certificate did not verify: put its CA in [store] ca_file".into()
            } else {
                "check that the database server is up and [store] url names it (host, port, database)".into()
            };
            return vec![Check::fail("store", why, fix)];
        }
    };
    let mut out = vec![Check::ok(
        "store",
        format!(
            "PostgreSQL {} at {at} (database {}, role {})",
            found.server_version, found.database, found.user
        ),
    )];
    out.push(if found.tls {
        Check::ok("store TLS", "encrypted; the server's certificate verified")
    } else if is_local(&opts.url) {
        Check::ok("store TLS", "not encrypted (loopback or a local socket)")
    } else {
        Check::fail(
            "store TLS",
            format!("the connection to {at} is not encrypted: passwords and mail cross the network in clear"),
            "enable ssl on the server and add sslmode=require to [store] url",
        )
    });
    if found.server_version_num < MIN_SERVER {
        out.push(Check::fail(
            "store server",
            format!("PostgreSQL {} is too old", found.server_version),
            "use PostgreSQL 12 or newer",
        ));
    }
    out.push(match found.schema {
        Some(v) if v == CURRENT_VERSION => Check::ok(
            "store schema",
            format!("version {v}, as this crmproxy writes"),
        ),
        Some(v) if v > CURRENT_VERSION => Check::fail(
            "store schema",
            format!("version {v}, newer than this crmproxy understands ({CURRENT_VERSION})"),
            "upgrade crmproxy on this machine (another one already migrated the team's CRM)",
        ),
        found_v if !found.can_create => Check::fail(
            "store schema",
            match found_v {
                Some(v) => format!(
                    "version {v}, older than {CURRENT_VERSION}, and role {} may not create tables",
                    found.user
                ),
                None => format!(
                    "no crmproxy schema yet, and role {} may not create tables",
                    found.user
                ),
            },
            format!(
                "GRANT CREATE ON DATABASE {} TO {}, or run the first start as the database owner",
                found.database, found.user
            ),
        ),
        Some(v) => Check::warn(
            "store schema",
            format!("version {v}, older than {CURRENT_VERSION}"),
            "the next `crmproxy serve` (or any command) migrates it; back the database up first",
        ),
        None => Check::warn(
            "store schema",
            "no crmproxy schema yet",
            "the first `crmproxy serve` (or any command) creates it",
        ),
    });
    out.push(Check::ok(
        "store extensions",
        "none needed: search folds accents and case in crmproxy and keeps its own postings",
    ));
    out
}
