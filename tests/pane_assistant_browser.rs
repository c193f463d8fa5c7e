//! The relationship assistant and the favourites star in a real browser (headless
//! Chromium through chromedriver, as in `pane_browser.rs`): at a 350 px side-pane
//! width the cards of the current message are shown in priority order without
//! spilling sideways, the star works as a plain form, and screenshots go to
//! target/pane-screenshots/assistant-*.png.

mod assistant_support;
mod pane_util;

use assistant_support::{seed, ALICE, CURRENT};
use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use pane_util::TestPane;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A minimal WebDriver session: just what these screenshots need.
struct Driver {
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

async fn http(port: u16, method: &str, path: &str, body: Option<Value>) -> Value {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("chromedriver is listening");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", format!("127.0.0.1:{port}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        )))
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

/// base64(SHA-256(SubjectPublicKeyInfo)) of the pane's certificate.
fn spki_pin(cert_pem: &std::path::Path) -> String {
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateDer::from_pem_file(cert_pem).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    base64::engine::general_purpose::STANDARD
        .encode(Sha256::digest(cert.tbs_certificate.subject_pki.raw))
}

impl Driver {
    async fn start(pin: &str) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
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
            "--no-first-run".into(),
            "--hide-scrollbars".into(),
            "--force-device-scale-factor=1".into(),
            format!("--user-data-dir={}", profile.path().display()),
            format!("--ignore-certificate-errors-spki-list={pin}"),
        ];
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": false,
            "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": args }
        }}});
        let v = http(port, "POST", "/session", Some(caps)).await;
        Driver {
            child,
            port,
            session: v["sessionId"].as_str().expect("a session").to_owned(),
            _profile: profile,
        }
    }

    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let p = format!("/session/{}{path}", self.session);
        http(self.port, method, &p, body).await
    }

    async fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url }))).await;
    }

    async fn script(&self, js: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": js, "args": [] })),
        )
        .await
    }

    async fn screenshot(&self, name: &str) {
        let v = self.cmd("GET", "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/pane-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), png).unwrap();
    }

    /// Wait until `js` returns true (a click's navigation may still be under way).
    async fn wait_until(&self, js: &str) {
        for _ in 0..300 {
            if self.script(js).await == Value::Bool(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("never true: {js}");
    }
}

#[tokio::test]
async fn cards_fit_a_narrow_pane_and_the_star_works_without_script() {
    let pane = TestPane::start().await;
    seed(pane.store.as_ref());
    let driver = Driver::start(&spki_pin(&pane.cfg.cert_dir().join("localhost.pem"))).await;
    let origin = pane.origin.clone();
    driver
        .cmd(
            "POST",
            "/window/rect",
            Some(json!({ "width": 350, "height": 1400 })),
        )
        .await;
    let token = crmproxy::pane::link::issue(&pane.cfg.data_dir, ALICE).unwrap();
    driver
        .goto(&format!("{origin}/signin/link?token={token}"))
        .await;

    let mut ev = crmproxy::pane::MessageOpened::new(CURRENT);
    ev.subject = Some("Kick-off notes".into());
    ev.from = Some("Rita Reply <rita@reply.example>".into());
    pane.events.publish_opened(ALICE, ev);
    driver.goto(&format!("{origin}/current")).await;
    let titles = driver
        .script(
            "return Array.from(document.querySelectorAll('.assistant .acard .atitle'))\
             .map(function (a) { return a.textContent; })",
        )
        .await;
    assert_eq!(
        titles,
        json!([
            "Call Uma back",
            "Northwind renewal",
            "Proposal questions",
            "Site visit with Uma",
            "Quinn Quiet"
        ])
    );
    // Nothing wider than the pane: no sideways scrolling at 350 px.
    let overflow = driver
        .script(
            "var w = document.documentElement.clientWidth; \
             return Array.from(document.querySelectorAll('.assistant, .assistant *'))\
             .filter(function (e) { return e.getBoundingClientRect().right > w + 1; }).length",
        )
        .await;
    assert_eq!(overflow, json!(0));
    driver
        .script("document.getElementById('h-assistant').scrollIntoView()")
        .await;
    driver.screenshot("assistant-current-350.png").await;

    // The star: a plain form post with the page's CSRF token, back to the record.
    let first_card = driver
        .script(
            "return document.querySelector('.assistant .acard[data-kind=\"closing-soon\"] a').href",
        )
        .await;
    driver.goto(first_card.as_str().unwrap()).await;
    driver
        .script("document.querySelector('form.star button').click()")
        .await;
    driver
        .wait_until(
            "return document.readyState === 'complete' && \
             !!document.querySelector('form.star button[aria-pressed=\"true\"]')",
        )
        .await;
    driver.screenshot("assistant-record-starred-350.png").await;
    driver.goto(&format!("{origin}/")).await;
    let favourites = driver
        .script("return document.querySelector('.favourites').innerText")
        .await;
    assert!(
        favourites.as_str().unwrap().contains("Northwind renewal"),
        "{favourites}"
    );
    driver.screenshot("assistant-home-350.png").await;
    let _ = http(
        driver.port,
        "DELETE",
        &format!("/session/{}", driver.session),
        None,
    )
    .await;
}
