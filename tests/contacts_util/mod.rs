//! Shared by the Contacts page's tests (`pane_contacts`, `pane_contacts_api`): an
//! address book to import, the admin socket and the real CLI, form and JSON posts
//! with the session's CSRF token, and look-ups of mail contacts through the API.
#![allow(dead_code)]

use crate::pane_util::{Client, Resp, TestPane};
use crmproxy::store::Record;
use serde_json::Value;

pub const NANCY: &str = "0193a1b2-c3d4-7008-8000-000000000008";
pub const CONTOSO: &str = "0193a1b2-c3d4-7005-8000-000000000005";
pub const ADVENTURE_WORKS: &str = "0193a1b2-c3d4-7007-8000-000000000007";
pub const ALICE: &str = "alice@example.test";

pub fn card(name: &str, email: &str, extra: &str) -> String {
    let (first, last) = name.rsplit_once(' ').unwrap_or(("", name));
    format!(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:{name}\r\nN:{last};{first};;;\r\nEMAIL;TYPE=WORK:{email}\r\n{extra}END:VCARD\r\n"
    )
}

pub fn book_vcf() -> String {
    [
        card("Nancy Davolio", "nancy.davolio@contoso.example", ""),
        card("Pat Twin", "twin@shared.example", "ORG:Twin Corp\r\n"),
        card(
            "Quinn Newman",
            "quinn@new.example",
            "ORG:Adventure Works Cycles;Zyxology\r\nTITLE:Buyer\r\nTEL;TYPE=WORK:+1 425 555 0100\r\n\
             ADR;TYPE=WORK:;;1 Bike Lane;Quahogton;WA;98052;USA\r\n",
        ),
        card("<b>Bold</b> Hacker", "bold@evil.example", ""),
        card("Rita Solo", "rita@solo.example", ""),
    ]
    .concat()
}

/// Serve the admin socket as `serve` does, so the CLI reaches the store through it.
pub async fn serve_admin(pane: &TestPane) {
    let path = crmproxy::admin::socket_path(&pane.cfg.data_dir);
    let listener = crmproxy::admin::bind(&path).unwrap();
    tokio::spawn(crmproxy::admin::serve_listener(
        pane.store.clone(),
        listener,
    ));
}

/// Run the real binary: `crmproxy --data-dir DIR import --address-book USER FILE`.
pub async fn cli_import(pane: &TestPane, user: &str, vcf: &str) -> std::process::Output {
    let file = pane.dir.path().join("book.vcf");
    std::fs::write(&file, vcf).unwrap();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_crmproxy"))
        .arg("--data-dir")
        .arg(pane.dir.path())
        .args(["import", "--address-book", user])
        .arg(&file)
        .output()
        .await
        .unwrap()
}

pub async fn csrf(c: &mut Client) -> String {
    c.get("/api/session").await.json()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub async fn form(c: &mut Client, path: &str, fields: &[(&str, &str)]) -> Resp {
    let token = csrf(c).await;
    let mut all = vec![("csrf", token.as_str())];
    all.extend_from_slice(fields);
    c.post_form(path, &all).await
}

pub async fn api(c: &mut Client, path: &str, body: Value) -> Resp {
    let token = csrf(c).await;
    let origin = c.origin();
    c.send(
        "POST",
        path,
        &[
            ("content-type", "application/json"),
            ("origin", &origin),
            ("x-csrf-token", &token),
        ],
        body.to_string().into_bytes(),
    )
    .await
}

/// Alice's mail contacts as the API lists them (every page).
pub async fn mail_items(c: &mut Client) -> Vec<Value> {
    let mut out = Vec::new();
    let mut path = "/api/contacts?tab=mail".to_owned();
    loop {
        let r = c.get(&path).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let j = r.json();
        out.extend(j["items"].as_array().unwrap().iter().cloned());
        match j["next"].as_str() {
            Some(n) => path = format!("/api/contacts?tab=mail&after={n}"),
            None => return out,
        }
    }
}

pub fn item<'a>(items: &'a [Value], email: &str) -> &'a Value {
    items
        .iter()
        .find(|i| i["entry"]["emails"][0] == email)
        .unwrap_or_else(|| panic!("{email} not in {items:?}"))
}

pub async fn id_of(c: &mut Client, email: &str) -> String {
    let items = mail_items(c).await;
    item(&items, email)["entry"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub async fn status_of(c: &mut Client, email: &str) -> (String, Option<String>) {
    let items = mail_items(c).await;
    let i = item(&items, email);
    (
        i["status"].as_str().unwrap().to_owned(),
        i["contact"].as_str().map(str::to_owned),
    )
}

/// Follow a redirect after a form post and return the page.
pub async fn follow(c: &mut Client, r: &Resp) -> String {
    assert_eq!(r.status, 303, "{}", r.text());
    let to = r.header("location").unwrap();
    let page = c.get(&to).await;
    assert_eq!(page.status, 200, "{to}: {}", page.text());
    page.text()
}

pub async fn twin_contacts(pane: &TestPane) -> Vec<String> {
    let mut ids = Vec::new();
    for last in ["One", "Two"] {
        let c: crmproxy::store::Contact = serde_json::from_value(serde_json::json!({
            "id": uuid::Uuid::now_v7(), "created": chrono::Utc::now(), "modified": chrono::Utc::now(),
            "first_name": "Pat", "last_name": last, "emails": ["twin@shared.example"],
        }))
        .unwrap();
        ids.push(
            pane.store
                .put_record(Record::Contact(c))
                .unwrap()
                .id()
                .to_string(),
        );
    }
    ids
}
