//! A headless Chromium driven through chromedriver (W3C WebDriver spoken directly over
//! HTTP), for tests that run the pane in a real browser. The browser trusts only the
//! pane's own certificate key (`--ignore-certificate-errors-spki-list`, honoured with
//! a fresh `--user-data-dir`). Screenshots go to target/pane-screenshots/.
//! (The same small client as tests/pane_browser.rs, shared here for new tests.)
#![allow(dead_code)]

use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Driver {
    child: Child,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn http(port: u16, method: &str, path: &str, body: Option<Value>) -> Value {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("chromedriver is listening");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let bytes = body.map(|b| b.to_string()).unwrap_or_default();
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", format!("127.0.0.1:{port}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(bytes)))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    assert!(
        status.is_success(),
        "WebDriver {method} {path}: {status} {v}"
    );
    v["value"].clone()
}

/// base64(SHA-256(SubjectPublicKeyInfo)) of the first certificate in a PEM file.
pub fn spki_pin(cert_pem: &std::path::Path) -> String {
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateDer::from_pem_file(cert_pem).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let spki = cert.tbs_certificate.subject_pki.raw;
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(spki))
}

impl Driver {
    pub async fn start(pin: &str) -> Driver {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is installed (apt-get install chromium chromium-driver)");
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--no-first-run".into(),
            "--hide-scrollbars".into(),
            "--force-device-scale-factor=1".into(),
            format!("--user-data-dir={}", profile.path().display()),
            format!("--ignore-certificate-errors-spki-list={pin}"),
        ];
        let caps = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "acceptInsecureCerts": false,
                "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": args },
                "goog:loggingPrefs": { "browser": "ALL" }
            }}
        });
        let mut d = Driver {
            child,
            port,
            session: String::new(),
            _profile: profile,
        };
        let v = http(port, "POST", "/session", Some(caps)).await;
        d.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_owned();
        d
    }

    pub async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let p = format!("/session/{}{path}", self.session);
        http(self.port, method, &p, body).await
    }

    pub async fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url }))).await;
    }

    pub async fn url(&self) -> String {
        self.cmd("GET", "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Wait (polling) until the page's URL satisfies `ok`: a click's navigation may
    /// still be under way when the click command returns.
    pub async fn wait_for_url(&self, ok: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        for _ in 0..300 {
            last = self.url().await;
            if ok(&last) && self.script("return document.readyState").await == "complete" {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the page never reached the expected URL; last: {last}");
    }

    pub async fn size(&self, width: u32, height: u32) {
        self.cmd(
            "POST",
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        )
        .await;
    }

    pub async fn find(&self, css: &str) -> String {
        let v = self
            .cmd(
                "POST",
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("find {css}: {v}"))
            .to_owned()
    }

    pub async fn text(&self, css: &str) -> String {
        let e = self.find(css).await;
        let v = self.cmd("GET", &format!("/element/{e}/text"), None).await;
        v.as_str().unwrap().to_owned()
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.cmd(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    pub async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.cmd("POST", &format!("/element/{e}/click"), Some(json!({})))
            .await;
    }

    pub async fn script(&self, js: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": js, "args": [] })),
        )
        .await
    }

    /// Wait (polling) until the page's `css` element contains `needle`.
    pub async fn wait_for_text(&self, css: &str, needle: &str) -> String {
        let mut last = String::new();
        for _ in 0..300 {
            let js = format!(
                "var e = document.querySelector({}); return e ? e.innerText : '';",
                serde_json::to_string(css).unwrap()
            );
            last = self.script(&js).await.as_str().unwrap_or("").to_owned();
            if last.contains(needle) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{css} never showed {needle:?}; last: {last:?}");
    }

    pub async fn screenshot(&self, name: &str) {
        let v = self.cmd("GET", "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/pane-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), png).unwrap();
    }

    /// The browser console: CSP violations and script errors show up here.
    pub async fn console(&self) -> Vec<String> {
        let v = self
            .cmd("POST", "/se/log", Some(json!({ "type": "browser" })))
            .await;
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|e| format!("{} {}", e["level"], e["message"]))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub async fn quit(&self) {
        let _ = http(
            self.port,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        )
        .await;
    }

    /// Press and release keys one after another (WebDriver key codes, e.g. Tab
    /// `\u{E004}`).
    pub async fn keys(&self, keys: &[&str]) {
        let mut actions = Vec::new();
        for k in keys {
            actions.push(json!({ "type": "keyDown", "value": k }));
            actions.push(json!({ "type": "keyUp", "value": k }));
        }
        let body = json!({ "actions": [{ "type": "key", "id": "kb", "actions": actions }] });
        self.cmd("POST", "/actions", Some(body)).await;
    }

    /// Press keys together (e.g. Shift+Tab).
    pub async fn chord(&self, keys: &[&str]) {
        let mut actions: Vec<Value> = keys
            .iter()
            .map(|k| json!({ "type": "keyDown", "value": k }))
            .collect();
        actions.extend(
            keys.iter()
                .rev()
                .map(|k| json!({ "type": "keyUp", "value": k })),
        );
        let body = json!({ "actions": [{ "type": "key", "id": "kb", "actions": actions }] });
        self.cmd("POST", "/actions", Some(body)).await;
    }

    /// The focused element as `TAG name value`.
    pub async fn focused(&self) -> String {
        let js = "var e = document.activeElement; return e.tagName + ' ' + (e.name || '') + ' ' + (e.value || '');";
        self.script(js).await.as_str().unwrap_or("").to_owned()
    }

    /// Have every page this session loads from now on note when its live
    /// connection (`EventSource`, pane.js) is open, in `window.__crmLiveOpen`:
    /// the pane subscribes it before it answers, so a change made after that
    /// reaches the page. See [`Driver::wait_live_open`].
    pub async fn note_live_open(&self) {
        let js = "(function () { var E = window.EventSource; if (!E) { return; } \
                  window.EventSource = function (url, opts) { var s = new E(url, opts); \
                  s.addEventListener('open', function () { window.__crmLiveOpen = true; }); \
                  return s; }; window.EventSource.prototype = E.prototype; })();";
        let v = self
            .cmd(
                "POST",
                "/goog/cdp/execute",
                Some(json!({
                    "cmd": "Page.addScriptToEvaluateOnNewDocument",
                    "params": { "source": js }
                })),
            )
            .await;
        assert!(v.get("identifier").is_some(), "{v}");
    }

    /// Wait until the page's live connection is open (after [`Driver::note_live_open`]).
    pub async fn wait_live_open(&self) {
        self.wait_until("window.__crmLiveOpen === true").await;
    }

    /// Wait (15 s at most) until the JavaScript expression is truthy.
    pub async fn wait_until(&self, condition: &str) {
        for _ in 0..300 {
            if self.script(&format!("return !!({condition})")).await == true {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("never true: {condition}");
    }
}
