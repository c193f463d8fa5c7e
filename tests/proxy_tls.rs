//! TLS on both sides: STARTTLS answered by the proxy, IMAPS, and the upstream
//! reached with implicit TLS or STARTTLS (verified against a test CA), or
//! refusing TLS (BYE UNAVAILABLE).

mod proxy_support;

use crmproxy::config::{Config, UpstreamTls};
use crmproxy::proxy::{NoopHook, ServerOptions};
use crmproxy::tls::{ensure_certs_in, server_config, CertPaths};
use proxy_support::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::sync::Arc;
use tokio_rustls::{TlsAcceptor, TlsConnector};

struct Pki {
    _dir: tempfile::TempDir,
    paths: CertPaths,
    server: Arc<rustls::ServerConfig>,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let (paths, _) = ensure_certs_in(dir.path(), 30).unwrap();
    let server = server_config(&paths).unwrap();
    Pki {
        _dir: dir,
        paths,
        server,
    }
}

fn client_connector(p: &Pki) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(&p.paths.ca_cert).unwrap())
        .unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    TlsConnector::from(Arc::new(cfg))
}

async fn tls_client(p: &Pki, s: Box<dyn Stream>) -> Peer {
    let name = ServerName::try_from("localhost").unwrap();
    Peer::new(client_connector(p).connect(name, s).await.unwrap())
}

#[tokio::test]
async fn client_starttls_is_done_by_the_proxy() {
    let p = pki();
    let upstream = FakeUpstream::start().await;
    let opts = ServerOptions {
        tls: Some(p.server.clone()),
        hook: Arc::new(NoopHook),
    };
    let mut cfg = config_for(upstream.addr);
    cfg.proxy.allow_plaintext_on_loopback = false;
    let proxy = start_proxy_with(cfg, opts).await;
    let mut c = Peer::connect(proxy.imap).await;
    let mut u = upstream.accept(GREETING).await;
    assert_eq!(
        c.line().await,
        "* OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR AUTH=PLAIN STARTTLS LOGINDISABLED] ready\r\n"
    );
    // Login refused in plain text.
    c.send("l LOGIN a b\r\n").await;
    assert!(c.line().await.starts_with("l NO [PRIVACYREQUIRED]"));
    c.send("s STARTTLS\r\n").await;
    assert_eq!(c.line().await, "s OK Begin TLS negotiation now\r\n");
    let mut c = tls_client(&p, c.into_stream()).await;
    c.send("a CAPABILITY\r\n").await;
    // STARTTLS never reached the upstream; LOGIN did not either.
    assert_eq!(u.line().await, "a CAPABILITY\r\n");
    u.send("* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\na OK\r\n")
        .await;
    assert_eq!(c.line().await, "* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n");
    assert_eq!(c.line().await, "a OK\r\n");
    c.send("b LOGIN alice pw\r\n").await;
    assert_eq!(u.line().await, "b LOGIN alice pw\r\n");
}

/// Dovecot answers a LOGIN with an untagged CAPABILITY before its tagged OK: that
/// list, like every later one, must not offer STARTTLS (valid only before login).
#[tokio::test]
async fn starttls_is_offered_only_before_login() {
    let p = pki();
    let upstream = FakeUpstream::start().await;
    let opts = ServerOptions {
        tls: Some(p.server.clone()),
        hook: Arc::new(NoopHook),
    };
    let proxy = start_proxy_with(config_for(upstream.addr), opts).await;
    let mut c = Peer::connect(proxy.imap).await;
    let mut u = upstream
        .accept("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n")
        .await;
    assert_eq!(
        c.line().await,
        "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN STARTTLS] hi\r\n"
    );
    c.send("l LOGIN alice pw\r\n").await;
    assert_eq!(u.line().await, "l LOGIN alice pw\r\n");
    u.send("* CAPABILITY IMAP4rev1 IDLE\r\nl OK [CAPABILITY IMAP4rev1 IDLE MOVE] in\r\n")
        .await;
    assert_eq!(c.line().await, "* CAPABILITY IMAP4rev1 IDLE\r\n");
    assert_eq!(
        c.line().await,
        "l OK [CAPABILITY IMAP4rev1 IDLE MOVE] in\r\n"
    );
    c.send("c CAPABILITY\r\n").await;
    assert_eq!(u.line().await, "c CAPABILITY\r\n");
    u.send("* CAPABILITY IMAP4rev1 IDLE\r\nc OK\r\n").await;
    assert_eq!(c.line().await, "* CAPABILITY IMAP4rev1 IDLE\r\n");
}

fn opts(p: Option<&Pki>) -> ServerOptions {
    ServerOptions {
        tls: p.map(|p| p.server.clone()),
        hook: Arc::new(NoopHook),
    }
}

fn tls_upstream_config(upstream: &FakeUpstream, p: &Pki, mode: UpstreamTls) -> Config {
    let mut cfg = config_for(upstream.addr);
    cfg.upstream.tls = mode;
    cfg.upstream.ca_file = Some(p.paths.ca_cert.clone());
    cfg.upstream.server_name = Some("localhost".into());
    cfg
}

#[tokio::test]
async fn imaps_listener_and_implicit_tls_upstream() {
    let p = pki();
    let upstream = FakeUpstream::start().await;
    let mut cfg = tls_upstream_config(&upstream, &p, UpstreamTls::Implicit);
    cfg.proxy.imaps = Some("127.0.0.1:0".parse().unwrap());
    let proxy = start_proxy_with(cfg, opts(Some(&p))).await;
    let client = async {
        let tcp = tokio::net::TcpStream::connect(proxy.imaps.unwrap())
            .await
            .unwrap();
        tls_client(&p, Box::new(tcp)).await
    };
    let server = async {
        let tcp = upstream.accept_tcp().await;
        let tls = TlsAcceptor::from(p.server.clone())
            .accept(tcp)
            .await
            .unwrap();
        let mut u = Peer::new(tls);
        u.send(GREETING).await;
        u
    };
    let (mut c, mut u) = tokio::join!(client, server);
    // Already TLS: no STARTTLS offered.
    assert_eq!(c.line().await, GREETING);
    c.send("s STARTTLS\r\nn NOOP\r\n").await;
    assert_eq!(c.line().await, "s BAD TLS is already active\r\n");
    assert_eq!(u.line().await, "n NOOP\r\n");
    u.send("n OK\r\n").await;
    assert_eq!(c.line().await, "n OK\r\n");
}

#[tokio::test]
async fn starttls_upstream_is_done_before_relaying_the_greeting() {
    let p = pki();
    let upstream = FakeUpstream::start().await;
    let cfg = tls_upstream_config(&upstream, &p, UpstreamTls::Starttls);
    let proxy = start_proxy_with(cfg, opts(None)).await;
    let client = Peer::connect(proxy.imap);
    let server = async {
        let mut plain = Peer::new(upstream.accept_tcp().await);
        plain
            .send("* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] hi\r\n")
            .await;
        assert_eq!(plain.line().await, "CRMPX0 STARTTLS\r\n");
        plain.send("CRMPX0 OK Begin TLS\r\n").await;
        let tls = TlsAcceptor::from(p.server.clone())
            .accept(plain.into_stream())
            .await
            .unwrap();
        Peer::new(tls)
    };
    let (mut c, mut u) = tokio::join!(client, server);
    // The pre-TLS capability list is stale: it is not relayed.
    assert_eq!(c.line().await, "* OK hi\r\n");
    c.send("a CAPABILITY\r\n").await;
    assert_eq!(u.line().await, "a CAPABILITY\r\n");
}

#[tokio::test]
async fn upstream_refusing_tls_gives_bye_unavailable() {
    let p = pki();
    let upstream = FakeUpstream::start().await;
    let cfg = tls_upstream_config(&upstream, &p, UpstreamTls::Implicit);
    let proxy = start_proxy_with(cfg, opts(None)).await;
    let client = Peer::connect(proxy.imap);
    // A plain-text server where TLS was expected.
    let server = upstream.accept(GREETING);
    let (mut c, _u) = tokio::join!(client, server);
    let bye = c.line().await;
    assert!(bye.starts_with("* BYE [UNAVAILABLE] "), "{bye}");
    assert!(c.closed().await);
}

#[tokio::test]
async fn untrusted_upstream_certificate_gives_bye_unavailable() {
    let p = pki();
    let other = pki();
    let upstream = FakeUpstream::start().await;
    // The proxy trusts `other`'s CA, the upstream presents `p`'s certificate.
    let cfg = tls_upstream_config(&upstream, &other, UpstreamTls::Implicit);
    let proxy = start_proxy_with(cfg, opts(None)).await;
    let client = Peer::connect(proxy.imap);
    let server = async {
        let tcp = upstream.accept_tcp().await;
        let _ = TlsAcceptor::from(p.server.clone()).accept(tcp).await;
    };
    let (mut c, _) = tokio::join!(client, server);
    let bye = c.line().await;
    assert!(bye.starts_with("* BYE [UNAVAILABLE] "), "{bye}");
}

#[tokio::test]
async fn plaintext_pipelined_after_starttls_is_never_relayed() {
    let p = pki();
    let upstream = FakeUpstream::start().await;
    let proxy = start_proxy_with(config_for(upstream.addr), opts(Some(&p))).await;
    let mut c = Peer::connect(proxy.imap).await;
    let mut u = upstream.accept(GREETING).await;
    c.line().await;
    // An injection attempt: a command hidden behind STARTTLS in the same packet.
    c.send("s STARTTLS\r\nx DELETE INBOX\r\n").await;
    assert_eq!(c.line().await, "s OK Begin TLS negotiation now\r\n");
    let name = ServerName::try_from("localhost").unwrap();
    if let Ok(tls) = client_connector(&p).connect(name, c.into_stream()).await {
        let mut c = Peer::new(tls);
        c.send("a NOOP\r\n").await;
        assert_eq!(u.line().await, "a NOOP\r\n");
    } else {
        // The proxy read the plaintext as a broken handshake: also refused.
        assert!(u.closed().await);
    }
}
