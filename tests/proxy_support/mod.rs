//! Test support for the proxy tests: a proxy running in-process on loopback, a
//! scripted fake upstream, and a line-oriented peer for both ends.

#![allow(dead_code)]

use crmproxy::config::{Config, UpstreamTls};
use crmproxy::proxy::{Hook, NoopHook, Server, ServerOptions};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Generous bound so that a broken proxy fails the test instead of hanging it.
pub const STEP: Duration = Duration::from_secs(10);

/// Any stream a test peer talks over (TCP or TLS).
pub trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

/// One end of a connection, read line by line or byte by byte.
pub struct Peer {
    pub io: BufReader<Box<dyn Stream>>,
}

impl Peer {
    pub fn new(s: impl Stream + 'static) -> Self {
        Peer {
            io: BufReader::new(Box::new(s)),
        }
    }

    /// The stream underneath, for a TLS upgrade (nothing may be buffered).
    pub fn into_stream(self) -> Box<dyn Stream> {
        assert!(self.io.buffer().is_empty(), "bytes buffered before TLS");
        self.io.into_inner()
    }

    pub async fn connect(addr: SocketAddr) -> Self {
        Peer::new(TcpStream::connect(addr).await.unwrap())
    }

    pub async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        let w = self.io.get_mut();
        w.write_all(bytes.as_ref()).await.unwrap();
        w.flush().await.unwrap();
    }

    /// The next line, CRLF included (empty at end of stream).
    pub async fn line(&mut self) -> String {
        let mut v = Vec::new();
        tokio::time::timeout(STEP, self.io.read_until(b'\n', &mut v))
            .await
            .expect("timed out waiting for a line")
            .unwrap();
        String::from_utf8(v).unwrap()
    }

    pub async fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0; n];
        tokio::time::timeout(STEP, self.io.read_exact(&mut v))
            .await
            .expect("timed out waiting for bytes")
            .unwrap();
        v
    }

    /// True when the peer closed (reads 0 bytes).
    pub async fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(
            tokio::time::timeout(STEP, self.io.read(&mut b)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

/// A fake upstream: accepts connections and hands them to the test.
pub struct FakeUpstream {
    pub listener: TcpListener,
    pub addr: SocketAddr,
}

impl FakeUpstream {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        FakeUpstream { listener, addr }
    }

    /// Accept the proxy's connection and send `greeting`.
    pub async fn accept(&self, greeting: &str) -> Peer {
        let mut p = Peer::new(self.accept_tcp().await);
        p.send(greeting).await;
        p
    }
}

impl FakeUpstream {
    pub async fn accept_tcp(&self) -> TcpStream {
        let (s, _) = tokio::time::timeout(STEP, self.listener.accept())
            .await
            .expect("proxy did not connect upstream")
            .unwrap();
        s
    }
}

/// A proxy running in-process; dropping `stop` (or sending) shuts it down.
pub struct RunningProxy {
    pub imap: SocketAddr,
    pub imaps: Option<SocketAddr>,
    pub stop: Option<oneshot::Sender<()>>,
    pub done: tokio::task::JoinHandle<()>,
}

impl RunningProxy {
    pub async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), self.done)
            .await
            .expect("proxy did not stop")
            .unwrap();
    }
}

pub fn config_for(upstream: SocketAddr) -> Config {
    let mut cfg = Config::default();
    cfg.proxy.imap = Some("127.0.0.1:0".parse().unwrap());
    cfg.proxy.imaps = None;
    cfg.pane.addr = None;
    cfg.upstream.host = upstream.ip().to_string();
    cfg.upstream.port = upstream.port();
    cfg.upstream.tls = UpstreamTls::Plain;
    cfg.upstream.connect_timeout_secs = 5;
    cfg.proxy.max_line_bytes = 1024;
    cfg
}

pub async fn start_proxy(cfg: Config, hook: Option<Arc<dyn Hook>>) -> RunningProxy {
    let opts = ServerOptions {
        tls: None,
        hook: hook.unwrap_or_else(|| Arc::new(NoopHook)),
    };
    start_proxy_with(cfg, opts).await
}

pub async fn start_proxy_with(cfg: Config, opts: ServerOptions) -> RunningProxy {
    let server = Server::bind(&cfg, opts).await.unwrap();
    let imap = server.imap_addr().unwrap();
    let imaps = server.imaps_addr();
    let (tx, rx) = oneshot::channel::<()>();
    let done = tokio::spawn(async move {
        server
            .run(async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    RunningProxy {
        imap,
        imaps,
        stop: Some(tx),
        done,
    }
}

/// Proxy + fake upstream + one connected client, greeting relayed.
pub struct Setup {
    pub proxy: RunningProxy,
    pub upstream: FakeUpstream,
    pub client: Peer,
    pub server: Peer,
    pub greeting: String,
}

pub const GREETING: &str = "* OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR AUTH=PLAIN] ready\r\n";

pub async fn setup(hook: Option<Arc<dyn Hook>>) -> Setup {
    let upstream = FakeUpstream::start().await;
    let proxy = start_proxy(config_for(upstream.addr), hook).await;
    let mut client = Peer::connect(proxy.imap).await;
    let server = upstream.accept(GREETING).await;
    let greeting = client.line().await;
    Setup {
        proxy,
        upstream,
        client,
        server,
        greeting,
    }
}
