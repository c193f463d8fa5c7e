//! The admin protocol as `serve` runs it: request lines read within their size
//! limits from an arbitrary byte stream (through a buffer of arbitrary size), each
//! parsed and carried out against a real store (sled in a temporary directory,
//! with the demo data), each answer serialised. Nothing panics, and every line
//! gets one answer that the CLI can read.
//!
//! Input: byte 0 picks the read buffer's size; the rest is what the socket receives.

#![no_main]

use crmproxy::admin::{read_request, respond, AdminResponse};
use crmproxy::store::{demo, SledStore};
use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;
use std::future::Future;
use std::task::{Context, Poll, Waker};

/// A store in a temporary directory, replaced after this many requests so that
/// it does not grow without bound.
const STORE_REQUESTS: u32 = 5_000;

struct TestStore {
    store: SledStore,
    used: u32,
    _dir: tempfile::TempDir,
}

thread_local! {
    static STORE: RefCell<Option<TestStore>> = const { RefCell::new(None) };
}

fn with_store<T>(f: impl FnOnce(&SledStore) -> T) -> T {
    STORE.with(|s| {
        let mut s = s.borrow_mut();
        if s.as_ref().is_none_or(|t| t.used >= STORE_REQUESTS) {
            *s = None; // the old store closes before the new one opens
            let dir = tempfile::tempdir().expect("temporary directory");
            let store = SledStore::open(dir.path().join("store")).expect("store opens");
            demo::load_if_empty(&store).expect("demo data loads");
            *s = Some(TestStore {
                store,
                used: 0,
                _dir: dir,
            });
        }
        let t = s.as_mut().expect("store");
        t.used += 1;
        f(&t.store)
    })
}

/// Run a future that never waits (its reader is in memory).
fn ready<F: Future>(fut: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match std::pin::pin!(fut).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("an in-memory read waited"),
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&cap, stream)) = input.split_first() else {
        return;
    };
    let mut rd = tokio::io::BufReader::with_capacity(cap as usize + 1, stream);
    let mut consumed_lines = 0usize;
    loop {
        let read = ready(read_request(&mut rd)).expect("reading memory does not fail");
        let Some(read) = read else {
            break;
        };
        consumed_lines += 1;
        assert!(consumed_lines <= stream.len(), "more requests than bytes");
        let resp = match read {
            Err(why) => AdminResponse::Error {
                message: why,
                user_error: true,
            },
            Ok(line) => match String::from_utf8(line) {
                Ok(line) => with_store(|store| respond(store, &line)),
                Err(_) => continue,
            },
        };
        let out = serde_json::to_vec(&resp).expect("response serialises");
        assert!(!out.contains(&b'\n'), "an answer is one line");
        let _: AdminResponse = serde_json::from_slice(&out).expect("the CLI reads the answer");
    }
});
