//! [`PgStore`]: the team's CRM in PostgreSQL (SPEC section 10), the second
//! implementation of [`CrmStore`](super::CrmStore) beside sled.
//!
//! Every logical change is one SERIALIZABLE transaction, retried when PostgreSQL
//! reports a serialization failure or a deadlock, so the rules checked inside it
//! (deletes refused while referenced, links that must exist, one activity per
//! message) hold across any number of processes; unique indexes back the
//! uniqueness rules up. Searching uses postings of tokens folded by the same code
//! as sled's ([`super::text`]): both backends find the same records with the same
//! scores, which the shared conformance suite checks.
//!
//! Files: `conn` (options, TLS, pool), `schema` (migrations), `db` (statements),
//! `rows` (writes of rows and their index rows), `track` (tracking writes in
//! bulk), `book` (address books and user lists), `store` (the trait).

mod book;
mod bulk;
mod checkpoints;
pub mod conn;
pub mod copy;
mod db;
pub mod notify;
mod rows;
pub mod schema;
mod search;
mod store;
mod track;

pub use conn::{is_url, redact, PgOptions};

use postgres::error::SqlState;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::error::StoreError;
use conn::Pool;
use db::Db;

/// Attempts of one change that keeps colliding with others before giving up.
const MAX_ATTEMPTS: u32 = 12;

/// What goes wrong inside the backend, before it becomes a [`StoreError`].
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error(transparent)]
    Pg(#[from] postgres::Error),
    #[error("the PostgreSQL CRM has schema version {found}, newer than this crmproxy understands ({supported}); upgrade crmproxy")]
    NewerSchema { found: u32, supported: u32 },
    #[error("{0}")]
    Config(String),
    /// A rule refused the change (rolled back, not retried).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl PgError {
    fn retryable(&self) -> bool {
        match self {
            PgError::Pg(e) => matches!(
                e.code(),
                Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE
                    || *c == SqlState::T_R_DEADLOCK_DETECTED
            ),
            _ => false,
        }
    }

    /// As the rest of crmproxy sees it.
    pub fn into_store(self, url: &str) -> StoreError {
        match self {
            PgError::Store(e) => e,
            PgError::NewerSchema { found, supported } => StoreError::NewerSchema {
                path: url.to_owned(),
                found,
                supported,
            },
            PgError::Pg(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                let what = e
                    .as_db_error()
                    .and_then(|d| d.detail().map(str::to_owned))
                    .unwrap_or_else(|| e.to_string());
                StoreError::Duplicate(what)
            }
            PgError::Pg(e) => backend(url, &e),
            PgError::Config(m) => StoreError::Invalid {
                what: "store configuration".into(),
                reason: m,
            },
        }
    }
}

/// A database failure, worded for the person who reads it.
fn backend(url: &str, e: &postgres::Error) -> StoreError {
    let why = match e.as_db_error() {
        Some(d) => format!("{}: {}", d.severity(), d.message()),
        None if e.is_closed() => "the connection was closed".to_owned(),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s.push_str(": ");
                s.push_str(&inner.to_string());
                src = inner.source();
            }
            s
        }
    };
    StoreError::Db(format!(
        "the PostgreSQL CRM at {} is unreachable or failed ({why}); check that the database is up, and run `crmproxy doctor`",
        redact(url)
    ))
}

/// The team's CRM in PostgreSQL.
pub struct PgStore {
    pool: Pool,
    url: String,
    /// Statements sent to the server through [`Db`] (see [`PgStore::statements_sent`]).
    sent: AtomicU64,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &redact(&self.url))
            .finish()
    }
}

impl PgStore {
    /// Connect, and create or migrate the schema (a newer one is refused).
    pub fn open(opts: &PgOptions) -> super::Result<PgStore> {
        let url = opts.url.clone();
        let pool = Pool::new(opts).map_err(|e| e.into_store(&url))?;
        let mut c = pool.connect().map_err(|e| e.into_store(&url))?;
        schema::migrate(&mut c).map_err(|e| e.into_store(&url))?;
        Ok(PgStore {
            pool,
            url,
            sent: AtomicU64::new(0),
        })
    }

    /// Round trips made for statements (prepared or run; `BEGIN`/`COMMIT` not
    /// counted) since the store was opened: how tests and benchmarks see that a
    /// bulk write stays set-based.
    pub fn statements_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Where it is, without a password.
    pub fn describe(&self) -> String {
        redact(&self.url)
    }

    /// Whether connections use TLS when the server offers it.
    pub fn uses_tls(&self) -> bool {
        self.pool.uses_tls()
    }

    /// Bytes the CRM's tables and indexes take (benchmarks, `doctor`).
    pub fn size_on_disk(&self) -> super::Result<u64> {
        self.read(|db| {
            let n: i64 = db
                .one("SELECT pg_database_size(current_database())", &[])?
                .get(0);
            Ok(n as u64)
        })
    }

    fn err(&self, e: PgError) -> StoreError {
        e.into_store(&self.url)
    }

    /// Run `f` as one SERIALIZABLE transaction, again when it collides with
    /// another process's, until it commits or a rule refuses it.
    pub(crate) fn write<T>(
        &self,
        mut f: impl FnMut(&mut Db<'_, postgres::Transaction<'_>>) -> Result<T, PgError>,
    ) -> super::Result<T> {
        self.write_now(&mut f)
    }

    fn write_now<T>(
        &self,
        f: &mut dyn FnMut(&mut Db<'_, postgres::Transaction<'_>>) -> Result<T, PgError>,
    ) -> super::Result<T> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let out: Result<T, PgError> = (|| {
                let mut conn = self.pool.get()?;
                let conn::Conn { client, cache } = &mut *conn;
                let mut tx = client
                    .build_transaction()
                    .isolation_level(postgres::IsolationLevel::Serializable)
                    .start()?;
                let v = f(&mut Db::new(&mut tx, cache, &self.sent))?;
                tx.commit()?;
                Ok(v)
            })();
            match out {
                Err(e) if e.retryable() && attempt < MAX_ATTEMPTS => {
                    // Back off a little, more each time, so colliders drift apart.
                    let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % 8;
                    std::thread::sleep(Duration::from_millis(u64::from(attempt) * 3 + jitter));
                }
                other => return other.map_err(|e| self.err(e)),
            }
        }
    }

    /// Run reads on one connection (each statement sees committed data).
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&mut Db<'_, postgres::Client>) -> Result<T, PgError>,
    ) -> super::Result<T> {
        (|| {
            let mut conn = self.pool.get()?;
            let conn::Conn { client, cache } = &mut *conn;
            f(&mut Db::new(client, cache, &self.sent))
        })()
        .map_err(|e| self.err(e))
    }
}
