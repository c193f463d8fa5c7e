//! The pane's security over real HTTPS: Host check (DNS rebinding), sign-in by one-time
//! link (used, expired, unknown), session cookie flags, redirects without a session,
//! Origin and CSRF checks on every state change, security headers, escaping.

mod pane_util;

use crmproxy::pane::link;
use pane_util::{TestPane, SESSION_COOKIE};

#[tokio::test]
async fn foreign_host_is_refused() {
    let pane = TestPane::start_with(|c| c.pane.extra_hosts = vec!["Pane.Test".into()]).await;
    let mut c = pane.client();
    let port = pane.port();
    for bad in [
        "evil.example".to_string(),
        format!("evil.example:{port}"),
        format!("localhost:{}", port.wrapping_add(1)),
        "localhost".to_string(),
        format!("localhost.evil.example:{port}"),
        format!("127.0.0.2:{port}"),
    ] {
        let r = c.send("GET", "/", &[("host", &bad)], vec![]).await;
        assert_eq!(r.status, 421, "Host {bad}: {}", r.text());
        assert!(r.text().contains("pane.extra_hosts"), "{}", r.text());
        let r = c
            .send("GET", "/manifest.xml", &[("host", &bad)], vec![])
            .await;
        assert_eq!(r.status, 421, "manifest via Host {bad}");
        let r = c
            .send("GET", "/api/session", &[("host", &bad)], vec![])
            .await;
        assert_eq!(r.status, 421);
        assert_eq!(r.json()["status"], 421);
    }
    for good in [
        format!("localhost:{port}"),
        format!("LOCALHOST:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
        format!("pane.test:{port}"),
    ] {
        let r = c.send("GET", "/", &[("host", &good)], vec![]).await;
        assert_eq!(r.status, 303, "Host {good}");
    }
}

#[tokio::test]
async fn without_a_session_pages_redirect_and_the_api_says_401() {
    let pane = TestPane::start().await;
    let mut c = pane.client();
    let r = c.get("/current?x=1").await;
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("location").unwrap(),
        "/signin?next=%2Fcurrent%3Fx%3D1"
    );
    let r = c.get("/events").await;
    assert_eq!(r.status, 303);
    let r = c.get("/api/session").await;
    assert_eq!(r.status, 401);
    let j = r.json();
    assert_eq!(j["status"], 401);
    assert!(j["error"].as_str().unwrap().contains("Not signed in"));
    // A made-up cookie is no session either.
    c.session = Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into());
    assert_eq!(c.get("/").await.status, 303);
}

#[tokio::test]
async fn one_time_link_signs_in_once_with_a_strict_cookie() {
    let pane = TestPane::start().await;
    let token = link::issue(&pane.cfg.data_dir, "alice@example.test").unwrap();
    let mut c = pane.client();
    let r = c.get(&format!("/signin/link?token={token}")).await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location").unwrap(), "/");
    let cookie = r
        .set_cookies()
        .into_iter()
        .find(|s| s.starts_with(SESSION_COOKIE))
        .expect("a session cookie");
    for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(
            cookie.split("; ").any(|p| p == flag),
            "{flag} missing: {cookie}"
        );
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
    let id = c.session.clone().unwrap();
    assert_eq!(id.len(), 43, "32 random bytes, base64url");

    let home = c.get("/").await;
    assert_eq!(home.status, 200);
    assert!(home.text().contains("alice@example.test"));
    assert!(home.text().contains("Sign out"));

    // The same link again, from another browser: refused, with a clear page.
    let mut other = pane.client();
    let again = other.get(&format!("/signin/link?token={token}")).await;
    assert_eq!(again.status, 403);
    assert!(
        again.text().contains("already been used"),
        "{}",
        again.text()
    );
    assert!(other.session.is_none());
}

#[tokio::test]
async fn expired_and_unknown_links_are_refused() {
    let pane = TestPane::start().await;
    let mut c = pane.client();
    let old = link::issue_with_lifetime(&pane.cfg.data_dir, "a@example.test", -5).unwrap();
    let r = c.get(&format!("/signin/link?token={old}")).await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains("expired"), "{}", r.text());
    for bad in ["nonsense", "", "..%2F..%2Fetc%2Fpasswd"] {
        let r = c.get(&format!("/signin/link?token={bad}")).await;
        assert_eq!(r.status, 403);
        assert!(r.text().contains("not valid"), "{}", r.text());
    }
    assert!(c.session.is_none());
    assert_eq!(c.get("/").await.status, 303);
}

#[tokio::test]
async fn state_changes_need_the_csrf_token_and_our_origin() {
    let pane = TestPane::start().await;
    let mut c = pane.signed_in("bob@example.test").await;
    let page = c.get("/message?id=m1@example.test").await;
    assert_eq!(page.status, 200);
    let csrf = page.csrf();
    let own = c.origin();
    let fields_no_token = [("message_id", "m1@example.test")];

    let r = c.post_form("/current", &fields_no_token).await;
    assert_eq!(r.status, 403, "no token");
    assert!(r.text().contains("security token"));
    let r = c
        .post_form(
            "/current",
            &[("message_id", "m1@example.test"), ("csrf", "wrong")],
        )
        .await;
    assert_eq!(r.status, 403, "wrong token");
    let with_token = [("message_id", "m1@example.test"), ("csrf", csrf.as_str())];
    for origin in [
        "https://evil.example",
        "null",
        "http://localhost",
        &own.replace("https", "http"),
    ] {
        let r = c
            .post_form_with("/current", &with_token, &[("origin", origin)])
            .await;
        assert_eq!(r.status, 403, "Origin {origin}");
        assert!(r.text().contains("did not come from the pane"));
    }
    let r = c.post_form_with("/current", &with_token, &[]).await;
    assert_eq!(r.status, 403, "neither Origin nor Referer");
    let r = c
        .post_form_with(
            "/current",
            &with_token,
            &[("referer", "https://evil.example/x")],
        )
        .await;
    assert_eq!(r.status, 403, "foreign Referer");
    assert!(
        pane.events.current("bob@example.test").is_none(),
        "nothing changed"
    );

    // The CSRF token also works as a header; the Referer stands in for a missing Origin.
    let referer = format!("{own}/message");
    let r = c
        .post_form_with(
            "/current",
            &fields_no_token,
            &[("referer", &referer), ("x-csrf-token", &csrf)],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let r = c.post_form("/current", &with_token).await;
    assert_eq!(r.status, 303);
    assert_eq!(
        pane.events.current("bob@example.test").unwrap().message_id,
        "m1@example.test"
    );
    assert!(c.get("/current").await.text().contains("m1@example.test"));

    // Another session's token is no good here.
    let mut other = pane.signed_in("bob@example.test").await;
    let r = other.post_form("/current", &with_token).await;
    assert_eq!(r.status, 403);

    // Sign-out is a state change too: without the token it does nothing.
    let r = c.post_form("/signout", &[]).await;
    assert_eq!(r.status, 403);
    assert_eq!(c.get("/").await.status, 200);
    let r = c.post_form("/signout", &[("csrf", &csrf)]).await;
    assert_eq!(r.status, 303);
    assert!(r.set_cookies().iter().any(|s| s.contains("Max-Age=0")));
}

#[tokio::test]
async fn a_signed_out_session_id_is_dead() {
    let pane = TestPane::start().await;
    let mut c = pane.signed_in("carol@example.test").await;
    let csrf = c.get("/").await.csrf();
    let id = c.session.clone().unwrap();
    assert_eq!(
        c.post_form("/signout", &[("csrf", &csrf)]).await.status,
        303
    );
    c.session = Some(id);
    let r = c.get("/").await;
    assert_eq!(r.status, 303, "replaying the old cookie after sign-out");
}

#[tokio::test]
async fn the_signin_form_is_csrf_protected_too() {
    let pane = TestPane::start().await;
    let mut c = pane.client();
    let form = c.get("/signin?next=%2F%2Fevil.example").await;
    assert_eq!(form.status, 200);
    assert!(
        c.session.is_some(),
        "an anonymous session carries the form's token"
    );
    assert!(
        !form.text().contains("evil.example"),
        "open redirect dropped"
    );
    for next in [
        "%2F%09%2Fevil.example",
        "%2F%0A%2Fevil.example",
        "https%3A%2F%2Fevil.example",
    ] {
        let mut other = pane.client();
        let f = other.get(&format!("/signin?next={next}")).await;
        assert_eq!(f.status, 200);
        assert!(f.text().contains("name=\"next\" value=\"/\""), "{next}");
    }
    let csrf = form.csrf();
    let fields = [("user", "a@example.test"), ("password", "x")];
    let r = c.post_form("/signin", &fields).await;
    assert_eq!(r.status, 403);
    let mut stranger = pane.client();
    let r = stranger
        .post_form(
            "/signin",
            &[
                ("user", "a@example.test"),
                ("password", "x"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(
        r.status, 403,
        "no session cookie: token alone is not enough"
    );
    let r = c
        .post_form(
            "/signin",
            &[("user", ""), ("password", ""), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("Enter your e-mail address and password"));
}

#[tokio::test]
async fn security_headers_everywhere() {
    let pane = TestPane::start().await;
    let mut c = pane.signed_in("alice@example.test").await;
    for path in [
        "/",
        "/current",
        "/signin",
        "/nowhere",
        "/api/nowhere",
        "/manifest.xml",
        "/assets/pane.css",
    ] {
        let r = c.get(path).await;
        let csp = r
            .header("content-security-policy")
            .unwrap_or_else(|| panic!("CSP on {path}"));
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(
            !csp.contains("http"),
            "no external origin outside Outlook: {csp}"
        );
        assert_eq!(
            r.header("x-content-type-options").as_deref(),
            Some("nosniff")
        );
        assert_eq!(r.header("x-frame-options").as_deref(), Some("DENY"));
    }
    for path in ["/", "/current", "/api/session"] {
        let r = c.get(path).await;
        assert_eq!(
            r.header("cache-control").as_deref(),
            Some("no-store"),
            "{path}"
        );
    }
    let page = c.get("/").await.text();
    assert!(
        !page.contains("appsforoffice"),
        "Office.js only inside Outlook"
    );
}

#[tokio::test]
async fn displayed_text_is_escaped() {
    let pane = TestPane::start().await;
    let mut c = pane.signed_in("alice@example.test").await;
    let mut ev = crmproxy::pane::MessageOpened::new("<x\"><script>alert(1)</script>@evil>");
    ev.subject = Some("<img src=x onerror=alert(2)>".into());
    ev.from = Some("\"Mallory\" <m@evil.example>".into());
    pane.events.publish_opened("alice@example.test", ev);
    for path in ["/", "/current"] {
        let t = c.get(path).await.text();
        assert!(!t.contains("<script>alert"), "{path}");
        assert!(!t.contains("<img src=x"), "{path}");
        assert!(t.contains("&lt;img src=x onerror=alert(2)&gt;"), "{path}");
    }
    let t = c.get("/message?id=%3Cb%3Ebold%3C%2Fb%3E").await.text();
    assert!(
        t.contains("&lt;b&gt;bold&lt;/b&gt;") || t.contains("b&gt;bold&lt;/b"),
        "{t}"
    );
    assert!(!t.contains("<b>bold</b>"));
}

#[tokio::test]
async fn outlook_mode_allows_office_js_only_there() {
    let pane = TestPane::start().await;
    let mut c = pane.signed_in("alice@example.test").await;
    let r = c.get("/?office=1").await;
    assert_eq!(r.status, 303);
    let office_cookie = r
        .set_cookies()
        .into_iter()
        .find(|s| s.starts_with("crmproxy-office=1"))
        .expect("office cookie");
    assert!(office_cookie.contains("Secure") && office_cookie.contains("SameSite=Strict"));
    let cookie = format!(
        "{}={}; crmproxy-office=1",
        SESSION_COOKIE,
        c.session.clone().unwrap()
    );
    let saved = c.session.take();
    let r = c.send("GET", "/", &[("cookie", &cookie)], vec![]).await;
    c.session = saved;
    assert_eq!(r.status, 200);
    assert!(r
        .text()
        .contains("https://appsforoffice.microsoft.com/lib/1/hosted/office.js"));
    let csp = r.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self' https://appsforoffice.microsoft.com;"),
        "{csp}"
    );
}

#[tokio::test]
async fn manifest_and_assets_are_served_locally() {
    let pane = TestPane::start().await;
    let mut c = pane.client();
    let m = c.get("/manifest.xml").await;
    assert_eq!(m.status, 200);
    assert!(m
        .header("content-type")
        .unwrap()
        .starts_with("application/xml"));
    let text = m.text();
    let source = format!(
        "<SourceLocation DefaultValue=\"https://localhost:{}/?office=1\"/>",
        pane.port()
    );
    assert!(text.contains(&source), "{text}");
    // Every icon the manifest names is served, as a PNG.
    for name in [
        "icon-16.png",
        "icon-32.png",
        "icon-64.png",
        "icon-80.png",
        "icon-128.png",
    ] {
        assert!(text.contains(&format!("https://localhost:{}/assets/{name}", pane.port())));
        let r = c.get(&format!("/assets/{name}")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type").as_deref(), Some("image/png"));
        assert!(r.body.starts_with(b"\x89PNG"));
    }
    let css = c.get("/assets/pane.css").await;
    assert_eq!(css.status, 200);
    assert!(css.header("content-type").unwrap().starts_with("text/css"));
    assert!(!css.text().contains("http://") && !css.text().contains("https://"));
    let js = c.get("/assets/pane.js").await;
    assert!(js
        .header("content-type")
        .unwrap()
        .starts_with("text/javascript"));
    assert_eq!(c.get("/assets/nothing.js").await.status, 404);
    assert_eq!(c.get("/assets/..%2Fmod.rs").await.status, 404);
}

#[tokio::test]
async fn status_notices_come_from_the_action_not_from_the_address() {
    use pane_util::demo::*;
    let pane = TestPane::start().await;
    let mut alice = pane.signed_in(ALICE).await;
    // A crafted link cannot put words in the pane.
    for path in [
        "/message?id=demo-0001%40mail.contoso.example&done=Your+session+expired%2C+sign+in+at+evil.example",
        "/contacts?done=Your+session+expired%2C+sign+in+at+evil.example",
    ] {
        let t = alice.get(path).await.text();
        assert!(!t.contains("evil.example"), "{path}: {t}");
    }
    // An action's own notice shows once, on the page it leads to.
    pane.events.publish_opened(
        ALICE,
        crmproxy::pane::MessageOpened::fetched(DEMO_MID, "INBOX", Some(1), 1),
    );
    let csrf = alice.get("/current").await.csrf();
    let r = alice
        .post_form("/untrack", &[("csrf", &csrf), ("message_id", DEMO_MID)])
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let at = r.header("location").unwrap();
    assert!(!at.contains("done"), "{at}");
    let t = alice.get(&at).await.text();
    assert!(t.contains("No longer tracked"), "{t}");
    let t = alice.get(&at).await.text();
    assert!(!t.contains("No longer tracked"), "shown once: {t}");
}
