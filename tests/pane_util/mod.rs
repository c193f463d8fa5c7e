//! Test support for the pane tests: a pane started in-process on a loopback port with a
//! fresh data directory, and a small HTTPS client (hyper over rustls, trusting only the
//! pane's own test CA) that lets each test set any header it wants.
#![allow(dead_code)]

pub mod demo;

use crmproxy::config::Config;
use crmproxy::pane::{PaneEvents, RunningPane};
use crmproxy::store::{CrmStore, SledStore};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;

pub struct TestPane {
    pub dir: tempfile::TempDir,
    pub cfg: Config,
    pub events: PaneEvents,
    pub store: Arc<dyn CrmStore>,
    pub addr: SocketAddr,
    pub origin: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    running: Option<RunningPane>,
}

/// A config whose data lives in `dir`, with the pane on `port` (0: any).
pub fn config_in(dir: &std::path::Path, port: u16) -> Config {
    let mut cfg = Config {
        data_dir: dir.to_owned(),
        ..Config::default()
    };
    cfg.pane.addr = Some(SocketAddr::from(([127, 0, 0, 1], port)));
    cfg
}

/// The store under `cfg`'s data dir, with the demo CRM (users alice, bob, carol with
/// `use_app`; dave without).
pub fn open_demo_store(cfg: &Config) -> Arc<dyn CrmStore> {
    let store = SledStore::open(cfg.store_dir()).expect("the store opens");
    crmproxy::store::demo::load_if_empty(&store).expect("the demo loads");
    Arc::new(store)
}

impl TestPane {
    pub async fn start() -> TestPane {
        Self::start_with(|_| {}).await
    }

    /// Start with a config changed by `edit` (data dir and port already set).
    pub async fn start_with(edit: impl FnOnce(&mut Config)) -> TestPane {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config_in(dir.path(), 0);
        edit(&mut cfg);
        Self::start_cfg(dir, cfg).await
    }

    pub async fn start_cfg(dir: tempfile::TempDir, cfg: Config) -> TestPane {
        let events = PaneEvents::new();
        let store = open_demo_store(&cfg);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let running = crmproxy::pane::start(&cfg, events.clone(), store.clone(), async move {
            let _ = rx.await;
        })
        .await
        .expect("the pane starts");
        TestPane {
            addr: running.local_addr,
            origin: running.origin.clone(),
            dir,
            cfg,
            events,
            store,
            stop: Some(tx),
            running: Some(running),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `localhost:PORT`, the Host a browser sends.
    pub fn host(&self) -> String {
        format!("localhost:{}", self.port())
    }

    pub fn client(&self) -> Client {
        Client::new(self.addr, &self.cfg.cert_dir().join("ca.pem"), self.host())
    }

    /// Ask the pane to stop and wait until it has.
    pub async fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(r) = self.running.take() {
            r.wait().await;
        }
    }

    /// A signed-in client, through a one-time link.
    pub async fn signed_in(&self, user: &str) -> Client {
        let mut c = self.client();
        let token = crmproxy::pane::link::issue(&self.cfg.data_dir, user).unwrap();
        let r = c.get(&format!("/signin/link?token={token}")).await;
        assert_eq!(r.status, 303, "{}", r.text());
        assert!(c.session.is_some());
        c
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    /// The `csrf` hidden field of the first form on the page.
    pub fn csrf(&self) -> String {
        let t = self.text();
        let i = t.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
        t[i..i + t[i..].find('"').unwrap()].to_owned()
    }
}

/// One HTTPS request per connection; remembers the session cookie like a browser.
pub struct Client {
    addr: SocketAddr,
    tls: tokio_rustls::TlsConnector,
    pub host: String,
    pub session: Option<String>,
}

pub const SESSION_COOKIE: &str = "__Host-crmproxy-session";

impl Client {
    pub fn new(addr: SocketAddr, ca: &std::path::Path, host: String) -> Client {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(ca).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Client {
            addr,
            tls: tokio_rustls::TlsConnector::from(Arc::new(cfg)),
            host,
            session: None,
        }
    }

    pub fn origin(&self) -> String {
        format!("https://{}", self.host)
    }

    /// A JSON POST as a script or the add-in sends it: the session's CSRF token
    /// (from `/api/session`) in its header, a same-origin Origin.
    pub async fn post_json(&mut self, path: &str, body: &serde_json::Value) -> Resp {
        let csrf = self.get("/api/session").await.json()["csrf_token"]
            .as_str()
            .expect("signed in")
            .to_owned();
        let origin = self.origin();
        let headers = [
            ("content-type", "application/json"),
            ("x-csrf-token", csrf.as_str()),
            ("origin", origin.as_str()),
        ];
        self.send("POST", path, &headers, serde_json::to_vec(body).unwrap())
            .await
    }

    pub async fn get(&mut self, path: &str) -> Resp {
        self.send("GET", path, &[], Vec::new()).await
    }

    /// A same-origin form POST, as the pane's own pages send it.
    pub async fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Resp {
        let origin = self.origin();
        self.post_form_with(path, fields, &[("origin", &origin)])
            .await
    }

    pub async fn post_form_with(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Resp {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let mut h = vec![("content-type", "application/x-www-form-urlencoded")];
        h.extend_from_slice(headers);
        self.send("POST", path, &h, body.into_bytes()).await
    }

    /// Connect and send the request head; returns the response with a streaming body.
    pub async fn open(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> hyper::Response<hyper::body::Incoming> {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let tls = self.tls.connect(name, tcp).await.expect("TLS to the pane");
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .unwrap();
        tokio::spawn(conn);
        let mut req = hyper::Request::builder().method(method).uri(path);
        let has_host = headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host"));
        if !has_host {
            req = req.header("host", &self.host);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(s) = &self.session {
            req = req.header("cookie", format!("{SESSION_COOKIE}={s}"));
        }
        let req = req.body(Full::new(Bytes::from(body))).unwrap();
        let resp = sender.send_request(req).await.unwrap();
        for c in resp.headers().get_all("set-cookie") {
            let c = c.to_str().unwrap();
            if let Some(rest) = c.strip_prefix(&format!("{SESSION_COOKIE}=")) {
                let v = rest.split(';').next().unwrap();
                self.session = (!v.is_empty()).then(|| v.to_owned());
            }
        }
        resp
    }

    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Resp {
        let resp = self.open(method, path, headers, body).await;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.unwrap().to_bytes().to_vec();
        Resp {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        }
    }
}
