//! A session run directly on in-memory pipes (no sockets). `SessionParams` is
//! built by hand, so the idle timeout can be short here (the config never
//! allows less than 30 minutes).

use crmproxy::imap_client::connect::Upstream;
use crmproxy::proxy::session::{self, SessionParams};
use crmproxy::proxy::{BoxedIo, NoopHook};
use crmproxy::wire::Framer;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{duplex, split, AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};

const IDLE: Duration = Duration::from_millis(300);

fn start() -> (
    BufReader<DuplexStream>,
    BufReader<DuplexStream>,
    tokio::sync::watch::Sender<bool>,
) {
    let (client, proxy_client_side) = duplex(64 * 1024);
    let (proxy_upstream_side, server) = duplex(64 * 1024);
    let (r, w) = split(Box::new(proxy_upstream_side) as BoxedIo);
    let upstream = Upstream {
        reader: Framer::new(r, 64 * 1024),
        writer: w,
        greeting: bytes::Bytes::from_static(b"* OK ready\r\n"),
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let params = SessionParams {
        id: 1,
        max_line: 64 * 1024,
        message_cap: 64 * 1024,
        idle_timeout: IDLE,
        client_tls: false,
        starttls: None,
        plaintext_login: true,
        hook: Arc::new(NoopHook),
        shutdown: stop_rx,
    };
    tokio::spawn(session::run(Box::new(proxy_client_side), upstream, params));
    (BufReader::new(client), BufReader::new(server), stop_tx)
}

async fn line(r: &mut BufReader<DuplexStream>) -> String {
    let mut s = String::new();
    r.read_line(&mut s).await.unwrap();
    s
}

#[tokio::test]
async fn silent_client_is_closed_after_the_idle_timeout() {
    let (mut client, mut server, _stop) = start();
    assert_eq!(line(&mut client).await, "* OK ready\r\n");
    let start = tokio::time::Instant::now();
    client.get_mut().write_all(b"n NOOP\r\n").await.unwrap();
    assert_eq!(line(&mut server).await, "n NOOP\r\n");
    // Server traffic (IDLE updates) is not client activity.
    server
        .get_mut()
        .write_all(b"n OK\r\n* 3 EXISTS\r\n")
        .await
        .unwrap();
    assert_eq!(line(&mut client).await, "n OK\r\n");
    assert_eq!(line(&mut client).await, "* 3 EXISTS\r\n");
    assert_eq!(line(&mut client).await, "* BYE idle timeout\r\n");
    // Timers never fire early: the session lived at least the timeout.
    assert!(start.elapsed() >= IDLE);
    assert_eq!(line(&mut client).await, "");
}

#[tokio::test]
async fn shutdown_signal_reaches_a_session_on_pipes() {
    let (mut client, _server, stop) = start();
    assert_eq!(line(&mut client).await, "* OK ready\r\n");
    stop.send(true).unwrap();
    assert!(line(&mut client).await.starts_with("* BYE [UNAVAILABLE]"));
}
