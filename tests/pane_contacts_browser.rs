//! The Contacts page in a real browser (headless Chromium through chromedriver, W3C
//! WebDriver over HTTP, as in `pane_browser.rs`): at a 350 px side-pane width
//! nothing overflows sideways, a contact is selected and tracked with the
//! keyboard alone (Tab to the checkbox, Space, Tab to Track, Enter: a plain form
//! post, no script), and screenshots at 350 and 1280 px go to
//! target/pane-screenshots/.

mod contacts_util;
mod pane_util;

use base64::Engine;
use contacts_util::*;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use pane_util::TestPane;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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
        let mut d = Driver {
            child,
            port,
            session: String::new(),
            _profile: profile,
        };
        let v = http(port, "POST", "/session", Some(caps)).await;
        d.session = v["sessionId"].as_str().expect("a session").to_owned();
        d
    }

    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let p = format!("/session/{}{path}", self.session);
        http(self.port, method, &p, body).await
    }

    async fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url }))).await;
    }

    async fn size(&self, width: u32, height: u32) {
        let rect = json!({ "width": width, "height": height });
        self.cmd("POST", "/window/rect", Some(rect)).await;
    }

    async fn script(&self, js: &str) -> Value {
        let body = json!({ "script": js, "args": [] });
        self.cmd("POST", "/execute/sync", Some(body)).await
    }

    /// Type keys into whatever has the focus (W3C key actions).
    async fn keys(&self, keys: &[&str]) {
        let mut actions = Vec::new();
        for k in keys {
            actions.push(json!({ "type": "keyDown", "value": k }));
            actions.push(json!({ "type": "keyUp", "value": k }));
        }
        let body = json!({ "actions": [{ "type": "key", "id": "kb", "actions": actions }] });
        self.cmd("POST", "/actions", Some(body)).await;
    }

    /// Press keys together (e.g. Shift+Tab).
    async fn chord(&self, keys: &[&str]) {
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

    async fn focused(&self) -> String {
        let js = "var e = document.activeElement; return e.tagName + ' ' + (e.name || '') + ' ' + (e.value || '');";
        self.script(js).await.as_str().unwrap_or("").to_owned()
    }

    async fn wait_for(&self, js_condition: &str) {
        for _ in 0..300 {
            if self.script(&format!("return !!({js_condition})")).await == true {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("never true: {js_condition}");
    }

    async fn screenshot(&self, name: &str) {
        let v = self.cmd("GET", "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        let dir =
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/pane-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), png).unwrap();
    }

    async fn quit(&self) {
        let _ = http(
            self.port,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        )
        .await;
    }
}

const TAB: &str = "\u{E004}";
const ENTER: &str = "\u{E007}";
const SPACE: &str = " ";
const SHIFT: &str = "\u{E008}";

#[tokio::test]
async fn contacts_page_in_a_browser_narrow_and_wide_keyboard_only() {
    let pane = TestPane::start().await;
    serve_admin(&pane).await;
    assert!(cli_import(&pane, ALICE, &book_vcf()).await.status.success());
    let mut c = pane.signed_in(ALICE).await;
    let quinn = id_of(&mut c, "quinn@new.example").await;
    let pin = spki_pin(&pane.cfg.cert_dir().join("localhost.pem"));
    let driver = Driver::start(&pin).await;
    let origin = pane.origin.clone();
    let token = crmproxy::pane::link::issue(&pane.cfg.data_dir, ALICE).unwrap();
    driver.size(350, 900).await;
    driver
        .goto(&format!("{origin}/signin/link?token={token}"))
        .await;
    driver.goto(&format!("{origin}/contacts?tab=mail")).await;
    driver
        .wait_for("document.querySelector('ul.contacts')")
        .await;
    let overflow = driver
        .script("return document.documentElement.scrollWidth - window.innerWidth")
        .await;
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "sideways overflow at 350 px: {overflow}"
    );
    driver.screenshot("contacts-350.png").await;

    // Keyboard only: from the search box, Tab down to Quinn's checkbox, Space ticks
    // it, Shift+Tab back up to Track, Enter submits the form.
    driver.script("document.getElementById('q').focus()").await;
    let mut found = false;
    for _ in 0..60 {
        driver.keys(&[TAB]).await;
        if driver.focused().await == format!("INPUT sel {quinn}") {
            found = true;
            break;
        }
    }
    assert!(found, "Quinn's checkbox is reachable with Tab");
    driver.keys(&[SPACE]).await;
    let checked = format!("document.getElementById('sel-{quinn}').checked");
    driver.wait_for(&checked).await;
    let mut on_track = false;
    for _ in 0..60 {
        driver.chord(&[SHIFT, TAB]).await;
        if driver.focused().await == "BUTTON action track" {
            on_track = true;
            break;
        }
    }
    assert!(
        on_track,
        "Shift+Tab goes back up to the toolbar's Track button"
    );
    driver.keys(&[ENTER]).await;
    driver.wait_for("document.querySelector('p.notice')").await;
    let notice = driver
        .script("return document.querySelector('p.notice').innerText")
        .await;
    assert!(
        notice
            .as_str()
            .unwrap()
            .contains("tracked as a new CRM contact"),
        "{notice}"
    );
    assert_eq!(status_of(&mut c, "quinn@new.example").await.0, "tracked");
    driver.screenshot("contacts-tracked-350.png").await;

    driver.size(1280, 900).await;
    driver.goto(&format!("{origin}/contacts?tab=mail")).await;
    driver
        .wait_for("document.querySelector('ul.contacts')")
        .await;
    driver.screenshot("contacts-1280.png").await;
    driver.goto(&format!("{origin}/contacts?tab=crm")).await;
    driver
        .wait_for("document.querySelector('ul.contacts')")
        .await;
    driver.screenshot("contacts-crm-1280.png").await;
    driver.quit().await;
}
