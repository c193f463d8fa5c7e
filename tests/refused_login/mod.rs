//! A sync worker whose login the server refuses (the password changed since the
//! session logged in) does not try it again: it waits for a newer login through
//! the proxy, so it never locks the account with retries. Its connections are
//! counted by a relay between it and the private Dovecot.

use crmproxy::config::{Config, UpstreamTls};
use crmproxy::events::PaneEvents;
use crmproxy::imap_client::connect::UpstreamConnector;
use crmproxy::store::{
    CrmStore, EmailAddress, Privilege, Record, SledStore, Stamps, SystemUser, UserId,
};
use crmproxy::sync::worker::Workers;
use crmproxy::track::Engine;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::{dovecot, unique_user};

/// How long the worker may take to make its first tries.
const PATIENCE: Duration = Duration::from_secs(60);
/// Its connections' first tries: the NOTIFY probe, INBOX's and Sent's
/// watches, and the job connection.
const FIRST_TRIES: usize = 4;

/// Relays loopback connections to `target`, counting them.
fn counting_relay(target: std::net::SocketAddr) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            seen.fetch_add(1, Ordering::SeqCst);
            let Ok(server) = TcpStream::connect(target) else {
                continue;
            };
            let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut &client, &mut &server);
                let _ = server.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut &s2, &mut &c2);
                let _ = c2.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (port, count)
}

#[test]
fn a_refused_login_is_not_tried_again_until_a_new_one_comes() {
    let dv = dovecot();
    let dir = tempfile::tempdir().unwrap();
    let (port, connections) = counting_relay(dv.imap_addr());
    let mut cfg = Config {
        data_dir: dir.path().to_owned(),
        ..Default::default()
    };
    cfg.upstream.host = "127.0.0.1".into();
    cfg.upstream.port = port;
    cfg.upstream.tls = UpstreamTls::Plain;
    let user = format!("{}@crm-test.example", unique_user("refused"));
    let sled = SledStore::open(dir.path().join("store")).unwrap();
    sled.put_record(Record::User(SystemUser {
        id: UserId::new(),
        stamps: Stamps::default(),
        full_name: user.clone(),
        logins: vec![EmailAddress::parse(&user).unwrap()],
        imap_logins: Vec::new(),
        privileges: [Privilege::UseApp].into_iter().collect(),
        delegates: Default::default(),
        options: Default::default(),
    }))
    .unwrap();
    let store: Arc<dyn CrmStore> = Arc::new(sled);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let first = rt.block_on(async {
        let engine = Arc::new(Engine::new(store, cfg.tracking.clone()).unwrap());
        let connector = UpstreamConnector::new(&cfg.upstream, 64 * 1024).unwrap();
        let workers = Workers::new(
            engine,
            connector,
            PaneEvents::new(),
            Duration::from_secs(3600),
            stop_rx,
        );
        workers.login(
            &user,
            crmproxy::proxy::Credential::Login {
                user: user.as_bytes().to_vec(),
                password: b"not the password any more".to_vec(),
            },
        );
        // Each of its connections tries once: the NOTIFY probe, the two watched
        // folders' (INBOX, Sent; started after the probe failed) and the jobs'.
        // Waited for, not slept on: the watches start only after the probe
        // failed, and a first try that comes after a fixed pause was taken
        // for a retry.
        let deadline = std::time::Instant::now() + PATIENCE;
        while connections.load(Ordering::SeqCst) < FIRST_TRIES {
            assert!(
                std::time::Instant::now() < deadline,
                "the worker tried {} of {FIRST_TRIES} connections",
                connections.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let first = connections.load(Ordering::SeqCst);
        // The worker pauses 5 s between attempts: two pauses would show a retry.
        tokio::time::sleep(Duration::from_secs(11)).await;
        first
    });
    assert_eq!(first, FIRST_TRIES, "one try per connection");
    assert_eq!(
        connections.load(Ordering::SeqCst),
        first,
        "the refused login was tried again"
    );
}
