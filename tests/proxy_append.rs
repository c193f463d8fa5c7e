//! The session's read-ahead of an APPEND (a hook adding lines at the top of the
//! message), on in-memory pipes with a scripted upstream: the capabilities that
//! decide it (LITERAL+, LITERAL-, APPENDLIMIT) cannot be chosen on the real
//! Dovecot, whose end-to-end tests are in tests/tracking_append.rs.

use bytes::Bytes;
use crmproxy::imap_client::connect::Upstream;
use crmproxy::proxy::hook::{Hook, HookContext};
use crmproxy::proxy::session::{self, SessionParams};
use crmproxy::proxy::BoxedIo;
use crmproxy::wire::Framer;
use std::sync::{Arc, Mutex};
use tokio::io::DuplexStream;
use tokio::io::{duplex, split, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const MESSAGE: &[u8] = b"Subject: hi\r\n\r\nbody\r\n";

/// Adds `prefix` to every APPEND when it fits, and notes the room it was given.
struct Prefixer {
    prefix: &'static [u8],
    rooms: Mutex<Vec<u64>>,
}

impl Hook for Prefixer {
    fn wants_append_head(&self, _cx: &HookContext<'_>, _first_line: &[u8]) -> bool {
        true
    }
    fn append_prefix(
        &self,
        _cx: &HookContext<'_>,
        _first_line: &[u8],
        head: &[u8],
        room: u64,
    ) -> Option<Bytes> {
        assert!(
            head.starts_with(b"Subject: hi\r\n\r\n"),
            "the header was read"
        );
        self.rooms.lock().unwrap().push(room);
        (self.prefix.len() as u64 <= room).then(|| Bytes::from_static(self.prefix))
    }
}

struct Pipes {
    client: BufReader<DuplexStream>,
    server: BufReader<DuplexStream>,
    hook: Arc<Prefixer>,
    /// The session's shutdown signal, held for the test's length.
    _stop: tokio::sync::watch::Sender<bool>,
}

/// A logged-in session whose upstream announced `caps`.
async fn start(caps: &str, prefix: &'static [u8]) -> Pipes {
    let (client, proxy_client_side) = duplex(64 * 1024);
    let (proxy_upstream_side, server) = duplex(64 * 1024);
    let (r, w) = split(Box::new(proxy_upstream_side) as BoxedIo);
    let greeting = format!("* OK [CAPABILITY IMAP4rev1 {caps}] ready\r\n");
    let upstream = Upstream {
        reader: Framer::new(r, 64 * 1024),
        writer: w,
        greeting: Bytes::from(greeting.into_bytes()),
    };
    let hook = Arc::new(Prefixer {
        prefix,
        rooms: Mutex::new(Vec::new()),
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let params = SessionParams {
        id: 1,
        max_line: 64 * 1024,
        message_cap: 64 * 1024,
        idle_timeout: std::time::Duration::from_secs(30),
        client_tls: false,
        starttls: None,
        plaintext_login: true,
        hook: hook.clone(),
        shutdown: stop_rx,
    };
    tokio::spawn(session::run(Box::new(proxy_client_side), upstream, params));
    let mut p = Pipes {
        client: BufReader::new(client),
        server: BufReader::new(server),
        hook,
        _stop: stop_tx,
    };
    assert!(line(&mut p.client).await.starts_with("* OK"));
    p.client
        .get_mut()
        .write_all(b"l LOGIN u p\r\n")
        .await
        .unwrap();
    assert_eq!(line(&mut p.server).await, "l LOGIN u p\r\n");
    p.server.get_mut().write_all(b"l OK in\r\n").await.unwrap();
    assert_eq!(line(&mut p.client).await, "l OK in\r\n");
    p
}

async fn line(r: &mut BufReader<DuplexStream>) -> String {
    let mut s = String::new();
    r.read_line(&mut s).await.unwrap();
    s
}

async fn bytes(r: &mut BufReader<DuplexStream>, n: usize) -> Vec<u8> {
    let mut v = vec![0; n];
    r.read_exact(&mut v).await.unwrap();
    v
}

#[tokio::test]
async fn with_literal_plus_the_proxy_gives_the_go_ahead_and_adds_the_prefix() {
    let mut p = start("LITERAL+", b"X-A: 1\r\n").await;
    let n = MESSAGE.len();
    p.client
        .get_mut()
        .write_all(format!("a APPEND Sent {{{n}}}\r\n").as_bytes())
        .await
        .unwrap();
    // The proxy's own `+`: the upstream has seen nothing yet.
    assert!(line(&mut p.client).await.starts_with("+ "));
    p.client.get_mut().write_all(MESSAGE).await.unwrap();
    p.client.get_mut().write_all(b"\r\n").await.unwrap();
    assert_eq!(
        line(&mut p.server).await,
        format!("a APPEND Sent {{{}+}}\r\n", n + 8)
    );
    assert_eq!(
        bytes(&mut p.server, n + 10).await,
        [b"X-A: 1\r\n", MESSAGE, b"\r\n"].concat()
    );
    // No LITERAL- or APPENDLIMIT: the room is what keeps the count a u64.
    assert_eq!(*p.hook.rooms.lock().unwrap(), vec![u64::MAX - n as u64]);
    p.server
        .get_mut()
        .write_all(b"a OK appended\r\n")
        .await
        .unwrap();
    assert_eq!(line(&mut p.client).await, "a OK appended\r\n");
}

#[tokio::test]
async fn appendlimit_bounds_the_prefix() {
    let n = MESSAGE.len();
    // Room for 8 more bytes: the prefix goes up.
    let limit = n + 8;
    let mut p = start(&format!("LITERAL+ APPENDLIMIT={limit}"), b"X-A: 1\r\n").await;
    let w = p.client.get_mut();
    w.write_all(format!("a APPEND Sent {{{n}+}}\r\n").as_bytes())
        .await
        .unwrap();
    w.write_all(MESSAGE).await.unwrap();
    w.write_all(b"\r\n").await.unwrap();
    assert_eq!(
        line(&mut p.server).await,
        format!("a APPEND Sent {{{limit}+}}\r\n")
    );
    assert_eq!(
        bytes(&mut p.server, limit + 2).await,
        [b"X-A: 1\r\n", MESSAGE, b"\r\n"].concat()
    );

    // Room for 7: the message goes up as the client sent it.
    let mut p = start(&format!("LITERAL+ APPENDLIMIT={}", n + 7), b"X-A: 1\r\n").await;
    let w = p.client.get_mut();
    w.write_all(format!("b APPEND Sent {{{n}}}\r\n").as_bytes())
        .await
        .unwrap();
    assert!(line(&mut p.client).await.starts_with("+ "));
    p.client.get_mut().write_all(MESSAGE).await.unwrap();
    p.client.get_mut().write_all(b"\r\n").await.unwrap();
    assert_eq!(
        line(&mut p.server).await,
        format!("b APPEND Sent {{{n}+}}\r\n")
    );
    assert_eq!(
        bytes(&mut p.server, n + 2).await,
        [MESSAGE, b"\r\n"].concat()
    );
    assert_eq!(*p.hook.rooms.lock().unwrap(), vec![7]);
}

#[tokio::test]
async fn literal_minus_and_no_literal_plus_leave_synchronising_appends_alone() {
    let n = MESSAGE.len();
    for caps in ["LITERAL-", ""] {
        let mut p = start(caps, b"X-A: 1\r\n").await;
        p.client
            .get_mut()
            .write_all(format!("a APPEND Sent {{{n}}}\r\n").as_bytes())
            .await
            .unwrap();
        // Relayed as sent; the go-ahead is the server's.
        assert_eq!(
            line(&mut p.server).await,
            format!("a APPEND Sent {{{n}}}\r\n")
        );
        p.server.get_mut().write_all(b"+ go\r\n").await.unwrap();
        assert_eq!(line(&mut p.client).await, "+ go\r\n");
        p.client.get_mut().write_all(MESSAGE).await.unwrap();
        p.client.get_mut().write_all(b"\r\n").await.unwrap();
        assert_eq!(
            bytes(&mut p.server, n + 2).await,
            [MESSAGE, b"\r\n"].concat()
        );
        assert!(
            p.hook.rooms.lock().unwrap().is_empty(),
            "{caps}: no read-ahead"
        );
    }

    // LITERAL- with a non-synchronising literal: 4096 bytes in all, so a prefix
    // that would pass that is left out.
    let big: &'static [u8] = Box::leak(vec![b'x'; 4090].into_boxed_slice());
    let mut p = start("LITERAL-", big).await;
    let w = p.client.get_mut();
    w.write_all(format!("c APPEND Sent {{{n}+}}\r\n").as_bytes())
        .await
        .unwrap();
    w.write_all(MESSAGE).await.unwrap();
    w.write_all(b"\r\n").await.unwrap();
    assert_eq!(
        line(&mut p.server).await,
        format!("c APPEND Sent {{{n}+}}\r\n")
    );
    assert_eq!(
        bytes(&mut p.server, n + 2).await,
        [MESSAGE, b"\r\n"].concat()
    );
    assert_eq!(*p.hook.rooms.lock().unwrap(), vec![4096 - n as u64]);
}
