//! The pane's JSON API, live events (SSE) and lifecycle over real HTTPS: error shapes
//! and status codes, search → Set Regarding → the message's status as a script does
//! it, the per-user event channel, shutdown with open streams, and the
//! `crmproxy pane-url` command run as a separate process.

mod pane_util;

use http_body_util::BodyExt;
use pane_util::{config_in, TestPane};
use std::time::Duration;

async fn api_post(
    c: &mut pane_util::Client,
    path: &str,
    ctype: &str,
    body: &str,
    csrf: &str,
) -> pane_util::Resp {
    let origin = c.origin();
    c.send(
        "POST",
        path,
        &[
            ("content-type", ctype),
            ("origin", &origin),
            ("x-csrf-token", csrf),
        ],
        body.as_bytes().to_vec(),
    )
    .await
}

#[tokio::test]
async fn api_errors_are_json_with_the_right_status() {
    let pane = TestPane::start().await;
    let mut c = pane.signed_in("alice@example.test").await;
    let s = c.get("/api/session").await;
    assert_eq!(s.status, 200);
    assert_eq!(s.json()["user"], "alice@example.test");
    let csrf = s.json()["csrf_token"].as_str().unwrap().to_owned();

    let r = api_post(
        &mut c,
        "/api/current",
        "application/json",
        "{\"message_id\": ",
        &csrf,
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    let j = r.json();
    assert_eq!(j["status"], 400);
    assert!(
        j["error"].as_str().unwrap().contains("not valid JSON"),
        "{j}"
    );

    let r = api_post(
        &mut c,
        "/api/current",
        "application/json",
        "{\"subject\": \"x\"}",
        &csrf,
    )
    .await;
    assert_eq!(r.status, 400, "missing field");
    assert!(r.json()["error"].as_str().unwrap().contains("message_id"));

    let r = api_post(&mut c, "/api/current", "text/plain", "{}", &csrf).await;
    assert_eq!(r.status, 415);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("application/json"));

    let r = api_post(
        &mut c,
        "/api/current",
        "application/json",
        "{\"message_id\": \"a\\nb\"}",
        &csrf,
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("Message-ID"));

    let big = format!("{{\"message_id\": \"{}\"}}", "x".repeat(100_000));
    let r = api_post(&mut c, "/api/current", "application/json", &big, &csrf).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["status"], 413);

    let r = api_post(
        &mut c,
        "/api/current",
        "application/json",
        "{\"message_id\": \"a@b\"}",
        "bad",
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["status"], 403);

    let r = c.get("/api/nothing/here").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["status"], 404);
    let r = c.get("/api/current").await;
    assert_eq!(r.status, 405, "GET on a POST-only call");
    assert_eq!(r.json()["status"], 405);

    // Pages answer errors in HTML.
    let r = c.get("/no/such/page").await;
    assert_eq!(r.status, 404);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    let r = c.get("/message?id=").await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("Message-ID looks like"));

    let ok = api_post(
        &mut c,
        "/api/current",
        "application/json",
        "{\"message_id\": \"<ok@example.test>\", \"subject\": \"Quote\"}",
        &csrf,
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["current"]["message_id"], "ok@example.test");
    let cur = pane.events.current("alice@example.test").unwrap();
    assert_eq!(cur.subject.as_deref(), Some("Quote"));
}

/// Read an SSE stream until `needle` shows up (or the stream ends).
#[tokio::test]
async fn a_script_searches_sets_regarding_and_reads_the_message_back() {
    const DEMO_MID: &str = "demo-0001@mail.contoso.example";
    let pane = TestPane::start().await;
    let mut alice = pane.signed_in("alice@example.test").await;
    // Alice opened the demo message in her mail client (the proxy saw it).
    pane.events.publish_opened(
        "alice@example.test",
        crmproxy::pane::MessageOpened::fetched(DEMO_MID, "INBOX", Some(1), 1),
    );

    let r = alice.get("/api/search?q=fabrikam&type=account").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let hits = r.json()["hits"].as_array().unwrap().clone();
    assert!(!hits.is_empty(), "{}", r.text());
    assert!(hits.iter().all(|h| h["kind"] == "account"), "{}", r.text());
    let hit = &hits[0];
    assert!(hit["title"].as_str().unwrap().contains("Fabrikam"), "{hit}");

    let r = alice
        .post_json(
            "/api/regarding",
            &serde_json::json!({ "message_id": DEMO_MID, "regarding": hit["ref"] }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());

    let r = alice
        .get(&format!("/api/message?id={}", DEMO_MID.replace('@', "%40")))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let m = r.json();
    assert_eq!(m["tracking"]["status"], "tracked", "{m}");
    assert_eq!(m["tracking"]["regarding"]["ref"], hit["ref"], "{m}");
    assert_eq!(m["tracking"]["regarding"]["title"], hit["title"], "{m}");
    let people = m["people"].as_array().unwrap();
    assert!(
        people
            .iter()
            .any(|p| p["role"] == "From" && !p["records"].as_array().unwrap().is_empty()),
        "the sender is a CRM contact: {m}"
    );

    // Errors: JSON, with the right status; nothing asked, a bad type, no id.
    for (path, status) in [
        ("/api/search", 400),
        ("/api/search?type=spaceship", 400),
        ("/api/message", 400),
        ("/api/message?id=a%0D%0Ab%40x", 400),
    ] {
        let r = alice.get(path).await;
        assert_eq!(r.status, status, "{path}: {}", r.text());
        assert!(r.json()["error"].as_str().is_some(), "{path}: {}", r.text());
    }
    // A message nobody tracks: not tracked, no people from anyone's CRM.
    let r = alice.get("/api/message?id=nobody%40nowhere.example").await;
    assert_eq!(r.json()["tracking"]["status"], "not_tracked");
    assert!(r.json()["people"].as_array().unwrap().is_empty());
}

async fn read_until(body: &mut hyper::body::Incoming, needle: &str) -> String {
    let mut seen = String::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            seen.push_str(&String::from_utf8_lossy(&data));
            if seen.contains(needle) {
                break;
            }
        }
    }
    seen
}

#[tokio::test]
async fn live_events_reach_the_users_own_stream() {
    let pane = TestPane::start().await;
    let mut alice = pane.signed_in("alice@example.test").await;
    let mut bob = pane.signed_in("bob@example.test").await;
    let resp = alice.open("GET", "/events", &[], vec![]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut alice_body = resp.into_body();
    let mut bob_body = bob.open("GET", "/events", &[], vec![]).await.into_body();

    // Wait until both streams are subscribed before publishing.
    let hub = pane.events.clone();
    let mut delivered = 0;
    for _ in 0..200 {
        delivered = hub.publish_opened(
            "ALICE@example.test",
            crmproxy::pane::MessageOpened::new("<warmup@x>"),
        );
        if delivered == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(delivered, 1, "one live stream for alice");
    let mut ev = crmproxy::pane::MessageOpened::new("<live@example.test>");
    ev.subject = Some("Proposal".into());
    hub.publish_opened("alice@example.test", ev);
    let seen = read_until(&mut alice_body, "live@example.test").await;
    assert!(seen.contains("event: message-opened"), "{seen}");
    assert!(seen.contains("\"subject\":\"Proposal\""), "{seen}");

    // Bob's stream got nothing of Alice's: his next event is his own.
    hub.publish_opened(
        "bob@example.test",
        crmproxy::pane::MessageOpened::new("<bob1@x>"),
    );
    let seen_bob = read_until(&mut bob_body, "bob1@x").await;
    assert!(
        !seen_bob.contains("live@example.test") && !seen_bob.contains("warmup"),
        "{seen_bob}"
    );
}

#[tokio::test]
async fn signing_out_ends_the_live_stream() {
    let pane = TestPane::start().await;
    let mut c = pane.signed_in("alice@example.test").await;
    let csrf = c.get("/").await.csrf();
    let mut body = c.open("GET", "/events", &[], vec![]).await.into_body();
    assert_eq!(
        c.post_form("/signout", &[("csrf", &csrf)]).await.status,
        303
    );
    pane.events.publish_opened(
        "alice@example.test",
        crmproxy::pane::MessageOpened::new("<after@x>"),
    );
    let rest = tokio::time::timeout(Duration::from_secs(30), read_until(&mut body, "after@x"))
        .await
        .expect("the stream ends");
    assert!(!rest.contains("after@x"), "{rest}");
}

#[tokio::test]
async fn shutdown_stops_the_pane_even_with_open_streams() {
    let mut pane = TestPane::start().await;
    let mut c = pane.signed_in("alice@example.test").await;
    let mut body = c.open("GET", "/events", &[], vec![]).await.into_body();
    tokio::time::timeout(Duration::from_secs(30), pane.shutdown())
        .await
        .expect("the pane stops");
    let rest = tokio::time::timeout(Duration::from_secs(30), read_until(&mut body, "never"))
        .await
        .expect("the stream ends");
    assert!(!rest.contains("never"));
    assert!(
        tokio::net::TcpStream::connect(pane.addr).await.is_err(),
        "listener closed"
    );
}

#[tokio::test]
async fn starting_twice_on_one_port_is_a_clear_error() {
    let pane = TestPane::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_in(dir.path(), pane.port());
    let store = pane.store.clone();
    let err = crmproxy::pane::start(
        &cfg,
        Default::default(),
        store.clone(),
        std::future::pending(),
    )
    .await
    .err()
    .expect("port in use");
    assert!(
        err.to_string()
            .contains(&format!("cannot listen on 127.0.0.1:{}", pane.port())),
        "{err}"
    );
    let mut off = config_in(dir.path(), 0);
    off.pane.addr = None;
    let err = crmproxy::pane::start(&off, Default::default(), store, std::future::pending())
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("pane.addr"), "{err}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn pane_url_command_prints_a_working_one_time_link() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = dir.path().join("crmproxy.toml");
    std::fs::write(&conf, format!("[pane]\naddr = \"127.0.0.1:{port}\"\n")).unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_crmproxy"))
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["pane-url", "--user", "alice@example.test"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let prefix = format!("https://localhost:{port}/signin/link?token=");
    assert!(url.starts_with(&prefix), "{url}");
    let token = &url[prefix.len()..];
    // The token itself is nowhere on disk.
    for e in std::fs::read_dir(dir.path().join("pane-tokens")).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        assert!(!text.contains(token));
    }

    let bad = run(&["pane-url", "--user", "not an address"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not an e-mail address"));

    let cfg = config_in(dir.path(), port);
    let keep = tempfile::tempdir().unwrap();
    let pane = TestPane::start_cfg(keep, cfg).await;
    let mut c = pane.client();
    let r = c.get(&format!("/signin/link?token={token}")).await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert!(c.get("/").await.text().contains("alice@example.test"));
    let mut again = pane.client();
    assert_eq!(
        again
            .get(&format!("/signin/link?token={token}"))
            .await
            .status,
        403
    );
}
