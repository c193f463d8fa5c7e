//! The conformance suite's two backends: each store test is written once over
//! `&dyn CrmStore` and run on sled and on the private PostgreSQL by
//! [`on_both_backends!`], which makes `on_sled::NAME` and `on_postgres::NAME`.
//!
//! Included with `#[path]` (it includes the PostgreSQL harness beside it).
#![allow(dead_code)]

#[path = "postgres.rs"]
pub mod pg;

use crmproxy::store::{CrmStore, PgOptions, PgStore, SledStore};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sled,
    Postgres,
}

/// A store of one backend in a place of its own (a temp dir, a fresh database).
pub struct TestStore {
    pub backend: Backend,
    store: Option<Arc<dyn CrmStore>>,
    /// The sled directory lives inside; other files of a test may too.
    pub dir: tempfile::TempDir,
    /// The database of a PostgreSQL store.
    pub url: Option<String>,
}

impl TestStore {
    pub fn new(backend: Backend) -> TestStore {
        let dir = tempfile::tempdir().unwrap();
        let url = (backend == Backend::Postgres).then(pg::fresh_db);
        let store = Some(open(backend, &dir, url.as_deref()));
        TestStore {
            backend,
            store,
            dir,
            url,
        }
    }

    /// Close the store (every other handle must be gone), keeping its place.
    pub fn close(&mut self) {
        let dead = self.store.take().expect("open");
        assert_eq!(Arc::strong_count(&dead), 1, "someone else holds the store");
    }

    /// Close the store and open it again where it is.
    pub fn reopen(&mut self) {
        // sled allows one open database per directory: close it first.
        self.close();
        self.store = Some(open(self.backend, &self.dir, self.url.as_deref()));
    }

    /// The store, shared (an engine holds one).
    pub fn arc(&self) -> Arc<dyn CrmStore> {
        self.store.clone().expect("open")
    }

    /// Another empty store on the same backend (an import's target).
    pub fn another(&self) -> TestStore {
        TestStore::new(self.backend)
    }
}

impl std::ops::Deref for TestStore {
    type Target = dyn CrmStore;
    fn deref(&self) -> &(dyn CrmStore + 'static) {
        self.store.as_deref().expect("open")
    }
}

fn open(backend: Backend, dir: &tempfile::TempDir, url: Option<&str>) -> Arc<dyn CrmStore> {
    match backend {
        Backend::Sled => Arc::new(SledStore::open(dir.path().join("store")).unwrap()),
        Backend::Postgres => {
            Arc::new(PgStore::open(&PgOptions::new(url.expect("a database URL"))).unwrap())
        }
    }
}

/// `on_both_backends!(a, b, …)`: for each `fn a(b: Backend)` of the file, a test
/// `on_sled::a` and a test `on_postgres::a`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_sled {
            $(#[test]
            fn $name() {
                super::$name(super::Backend::Sled)
            })*
        }
        mod on_postgres {
            $(#[test]
            fn $name() {
                super::$name(super::Backend::Postgres)
            })*
        }
    };
}
