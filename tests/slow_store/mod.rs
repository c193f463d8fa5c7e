//! A store call that hangs (a slow disk, a database far away) holds up only the
//! session that made it (issue 12, item 7). The proxy runs in process, on a
//! two-worker runtime, in front of the private Dovecot, with the store `serve`
//! builds (`store::forward::for_serve`) around a store whose calls can be held at
//! a gate: two CRM sessions block in the store while a third keeps working.
//! Without the offloading, the two blocked calls take both workers and the third
//! session's NOOP never gets its answer.

use crmproxy::config::{Config, UpstreamTls};
use crmproxy::events::PaneEvents;
use crmproxy::imap_client::connect::UpstreamConnector;
use crmproxy::proxy::{Server, ServerOptions};
use crmproxy::store::{
    CrmStore, EmailAddress, Privilege, Record, SledStore, Stamps, SystemUser, UserId,
};
use crmproxy::sync::worker::Workers;
use crmproxy::sync::TrackingHook;
use crmproxy::track::Engine;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::common::{dovecot, unique_user, RawImap, PASSWORD};

/// Holds every store call while armed; counts the calls it holds.
#[derive(Default)]
struct Gate {
    armed: Mutex<bool>,
    opened: Condvar,
    held: AtomicUsize,
}

impl Gate {
    fn pass(&self) {
        let mut armed = self.armed.lock().unwrap();
        if *armed {
            self.held.fetch_add(1, Ordering::SeqCst);
            while *armed {
                armed = self.opened.wait(armed).unwrap();
            }
        }
    }
    fn arm(&self) {
        *self.armed.lock().unwrap() = true;
    }
    fn open(&self) {
        *self.armed.lock().unwrap() = false;
        self.opened.notify_all();
    }
    fn wait_held(&self, n: usize) {
        for _ in 0..600 {
            if self.held.load(Ordering::SeqCst) >= n {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the store never saw {n} calls at the gate");
    }
}

/// Opens the gate when the test ends, failed or not: a held call would otherwise
/// keep the runtime (and the test) from ever finishing.
struct OpenOnDrop(Arc<Gate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

struct GatedStore {
    inner: SledStore,
    gate: Arc<Gate>,
}

impl GatedStore {
    fn around<T>(&self, f: impl FnOnce() -> T) -> T {
        self.gate.pass();
        f()
    }
}

impl CrmStore for GatedStore {
    crmproxy::forward_crm_store!(inner);
}

fn crm_user(store: &dyn CrmStore, login: &str) {
    let u = SystemUser {
        id: UserId::new(),
        stamps: Stamps::default(),
        full_name: login.into(),
        logins: vec![EmailAddress::parse(login).unwrap()],
        imap_logins: Vec::new(),
        privileges: [Privilege::UseApp].into_iter().collect(),
        delegates: Default::default(),
        options: Default::default(),
    };
    store.put_record(Record::User(u)).unwrap();
}

fn config(dir: &Path, upstream_port: u16) -> Config {
    let mut cfg = Config {
        data_dir: dir.to_owned(),
        ..Default::default()
    };
    cfg.proxy.imap = Some("127.0.0.1:0".parse().unwrap());
    cfg.proxy.imaps = None;
    cfg.upstream.host = "127.0.0.1".into();
    cfg.upstream.port = upstream_port;
    cfg.upstream.tls = UpstreamTls::Plain;
    cfg
}

#[test]
fn a_store_call_that_hangs_holds_up_only_its_own_session() {
    let dv = dovecot();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), dv.imap_port);
    let alice = format!("{}@crm-test.example", unique_user("gate-a"));
    let bob = format!("{}@crm-test.example", unique_user("gate-b"));
    let gate = Arc::new(Gate::default());
    let sled = SledStore::open(dir.path().join("store")).unwrap();
    crm_user(&sled, &alice);
    crm_user(&sled, &bob);
    let store = crmproxy::store::forward::for_serve(GatedStore {
        inner: sled,
        gate: gate.clone(),
    });
    for user in [&alice, &bob] {
        let mut direct = RawImap::login(dv.imap_addr(), user, PASSWORD);
        assert!(direct
            .append(
                "INBOX",
                &crate::tracking_support::message(&format!("gate-{user}"), "Gate", "")
            )
            .ok());
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let addr = rt.block_on(async {
        let engine = Arc::new(Engine::new(store, cfg.tracking.clone()).unwrap());
        let connector = UpstreamConnector::new(&cfg.upstream, cfg.proxy.max_line_bytes).unwrap();
        let workers = Workers::new(
            engine,
            connector,
            PaneEvents::new(),
            Duration::from_secs(3600),
            stop_rx.clone(),
        );
        let opts = ServerOptions {
            tls: None,
            hook: Arc::new(TrackingHook::new(workers)),
        };
        let server = Server::bind(&cfg, opts).await.unwrap();
        let addr = server.imap_addr().unwrap();
        let mut stop = stop_rx.clone();
        tokio::spawn(server.run(async move {
            let _ = stop.wait_for(|s| *s).await;
        }));
        addr
    });

    let session = |user: &str| {
        let mut c = RawImap::login(addr, user, PASSWORD);
        c.set_read_timeout(Some(Duration::from_secs(30)));
        assert!(c.cmd("SELECT INBOX").ok());
        assert!(c.cmd("FETCH 1 (FLAGS)").ok());
        c
    };
    let mut held = vec![session(&alice), session(&alice)];
    let mut other = session(&bob);

    // Each alice session asks to track: the hook reads her user from the store,
    // and the gate holds that read.
    gate.arm();
    let _open_at_the_end = OpenOnDrop(gate.clone());
    let blocked: Vec<_> = held
        .drain(..)
        .map(|mut c| {
            std::thread::spawn(move || {
                let r = c.cmd("STORE 1 +FLAGS ($CRM_Track)");
                (r.ok(), r.text())
            })
        })
        .collect();
    gate.wait_held(2);

    // Bob's session goes on meanwhile: nothing he asks needs the store.
    let noop = other.cmd("NOOP");
    assert!(noop.ok(), "{}", noop.text());
    let fetch = other.cmd("FETCH 1 (FLAGS UID)");
    assert!(fetch.ok(), "{}", fetch.text());
    assert!(
        gate.held.load(Ordering::SeqCst) >= 2 && *gate.armed.lock().unwrap(),
        "alice's calls were still held while bob's commands were answered"
    );

    gate.open();
    for t in blocked {
        let (ok, text) = t.join().unwrap();
        assert!(ok, "alice's STORE after the store answered: {text}");
    }
    let _ = stop_tx.send(true);
    rt.shutdown_timeout(Duration::from_secs(5));
}
