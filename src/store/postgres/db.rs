//! Statements on a client or a transaction, prepared once per connection (a
//! plain `query(&str)` would cost a second round trip to prepare it each time),
//! and JSON documents in and out of `jsonb` columns.

use postgres::types::{Json, ToSql};
use postgres::{GenericClient, Row, Statement};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use super::PgError;
use crate::store::StoreError;

/// A client or a transaction with its connection's statement cache, counting
/// the round trips it makes (statements prepared or run) in the store's counter.
pub struct Db<'a, C: GenericClient> {
    c: &'a mut C,
    cache: &'a mut HashMap<&'static str, Statement>,
    sent: &'a AtomicU64,
}

pub type P<'a> = &'a (dyn ToSql + Sync);

impl<'a, C: GenericClient> Db<'a, C> {
    pub fn new(
        c: &'a mut C,
        cache: &'a mut HashMap<&'static str, Statement>,
        sent: &'a AtomicU64,
    ) -> Self {
        Db { c, cache, sent }
    }

    /// The prepared statement for `sql`; counts the round trip it is about to
    /// make (and the one preparing it, the first time on this connection).
    fn stmt(&mut self, sql: &'static str) -> Result<Statement, PgError> {
        self.sent.fetch_add(1, Ordering::Relaxed);
        if let Some(s) = self.cache.get(sql) {
            return Ok(s.clone());
        }
        self.sent.fetch_add(1, Ordering::Relaxed);
        let s = self.c.prepare(sql)?;
        self.cache.insert(sql, s.clone());
        Ok(s)
    }

    pub fn query(&mut self, sql: &'static str, params: &[P<'_>]) -> Result<Vec<Row>, PgError> {
        let s = self.stmt(sql)?;
        Ok(self.c.query(&s, params)?)
    }

    pub fn opt(&mut self, sql: &'static str, params: &[P<'_>]) -> Result<Option<Row>, PgError> {
        let s = self.stmt(sql)?;
        Ok(self.c.query_opt(&s, params)?)
    }

    pub fn one(&mut self, sql: &'static str, params: &[P<'_>]) -> Result<Row, PgError> {
        let s = self.stmt(sql)?;
        Ok(self.c.query_one(&s, params)?)
    }

    pub fn exec(&mut self, sql: &'static str, params: &[P<'_>]) -> Result<u64, PgError> {
        let s = self.stmt(sql)?;
        Ok(self.c.execute(&s, params)?)
    }

    /// The JSON document in column `col` of the one row, if any.
    pub fn doc<T: serde::de::DeserializeOwned>(
        &mut self,
        what: &str,
        sql: &'static str,
        params: &[P<'_>],
    ) -> Result<Option<T>, PgError> {
        match self.opt(sql, params)? {
            Some(row) => Ok(Some(decode(what, &row, 0)?)),
            None => Ok(None),
        }
    }

    /// The JSON documents in the first column of every row.
    pub fn docs<T: serde::de::DeserializeOwned>(
        &mut self,
        what: &str,
        sql: &'static str,
        params: &[P<'_>],
    ) -> Result<Vec<T>, PgError> {
        self.query(sql, params)?
            .iter()
            .map(|r| decode(what, r, 0))
            .collect()
    }
}

/// A `jsonb` column decoded; a row that does not decode is damage, not a crash.
pub fn decode<T: serde::de::DeserializeOwned>(
    what: &str,
    row: &Row,
    col: usize,
) -> Result<T, PgError> {
    let v: Json<serde_json::Value> = row.try_get(col)?;
    serde_json::from_value(v.0)
        .map_err(|e| StoreError::Corrupt(format!("{what} row does not decode: {e}")).into())
}

/// A value as a `jsonb` parameter.
pub fn json<T: serde::Serialize>(v: &T) -> Json<serde_json::Value> {
    Json(serde_json::to_value(v).expect("store rows serialise"))
}
