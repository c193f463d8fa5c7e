//! The pane's Contacts page over real HTTPS, on a real store with the demo CRM: an
//! address book imported with the real `crmproxy import --address-book` (through
//! the admin socket, as while `serve` runs), statuses, Track (link, create,
//! pending then choose), Untrack, Link to an existing or a new account, Email and
//! Appointment, search by each field, the filter views, pages, the refusals (bad
//! ids, long names, no CSRF token, another user's contacts), and the JSON API.

mod pane_util;

use crmproxy::store::{address_book, Kind, Record};
use pane_util::{Client, Resp, TestPane};
use serde_json::Value;

const NANCY: &str = "0193a1b2-c3d4-7008-8000-000000000008";
const CONTOSO: &str = "0193a1b2-c3d4-7005-8000-000000000005";
const ADVENTURE_WORKS: &str = "0193a1b2-c3d4-7007-8000-000000000007";
const ALICE: &str = "alice@example.test";

fn card(name: &str, email: &str, extra: &str) -> String {
    let (first, last) = name.rsplit_once(' ').unwrap_or(("", name));
    format!(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:{name}\r\nN:{last};{first};;;\r\nEMAIL;TYPE=WORK:{email}\r\n{extra}END:VCARD\r\n"
    )
}

fn book_vcf() -> String {
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
async fn serve_admin(pane: &TestPane) {
    let path = crmproxy::store::admin::socket_path(&pane.cfg.data_dir);
    let listener = crmproxy::store::admin::bind(&path).unwrap();
    tokio::spawn(crmproxy::store::admin::serve_listener(
        pane.store.clone(),
        listener,
    ));
}

/// Run the real binary: `crmproxy --data-dir DIR import --address-book USER FILE`.
async fn cli_import(pane: &TestPane, user: &str, vcf: &str) -> std::process::Output {
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

async fn csrf(c: &mut Client) -> String {
    c.get("/api/session").await.json()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn form(c: &mut Client, path: &str, fields: &[(&str, &str)]) -> Resp {
    let token = csrf(c).await;
    let mut all = vec![("csrf", token.as_str())];
    all.extend_from_slice(fields);
    c.post_form(path, &all).await
}

async fn api(c: &mut Client, path: &str, body: Value) -> Resp {
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
async fn mail_items(c: &mut Client) -> Vec<Value> {
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

fn item<'a>(items: &'a [Value], email: &str) -> &'a Value {
    items
        .iter()
        .find(|i| i["entry"]["emails"][0] == email)
        .unwrap_or_else(|| panic!("{email} not in {items:?}"))
}

async fn id_of(c: &mut Client, email: &str) -> String {
    let items = mail_items(c).await;
    item(&items, email)["entry"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn status_of(c: &mut Client, email: &str) -> (String, Option<String>) {
    let items = mail_items(c).await;
    let i = item(&items, email);
    (
        i["status"].as_str().unwrap().to_owned(),
        i["contact"].as_str().map(str::to_owned),
    )
}

/// Follow a redirect after a form post and return the page.
async fn follow(c: &mut Client, r: &Resp) -> String {
    assert_eq!(r.status, 303, "{}", r.text());
    let to = r.header("location").unwrap();
    let page = c.get(&to).await;
    assert_eq!(page.status, 200, "{to}: {}", page.text());
    page.text()
}

async fn twin_contacts(pane: &TestPane) -> Vec<String> {
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

#[tokio::test]
async fn import_list_track_choose_untrack_link() {
    let pane = TestPane::start().await;
    serve_admin(&pane).await;
    let twins = twin_contacts(&pane).await;
    let out = cli_import(&pane, ALICE, &book_vcf()).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("created") && stdout.contains("skipped 0"),
        "{stdout}"
    );
    // An unknown user is refused with a clear error and exit code 1.
    let bad = cli_import(&pane, "nobody@example.test", &book_vcf()).await;
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("no user signs in as nobody@example.test")
    );

    let mut c = pane.signed_in(ALICE).await;
    let page = c.get("/contacts").await;
    assert_eq!(page.status, 200);
    let t = page.text();
    assert!(
        t.contains("aria-current=\"page\">Mail contacts"),
        "the address book opens first"
    );
    for name in ["Nancy Davolio", "Pat Twin", "Quinn Newman", "Rita Solo"] {
        assert!(t.contains(name), "{name}");
    }
    assert!(
        t.contains("&lt;b&gt;Bold&lt;/b&gt; Hacker") && !t.contains("<b>Bold</b>"),
        "escaped"
    );
    assert!(t.contains("mailto:quinn@new.example") && t.contains("tel:+14255550100"));
    assert_eq!(status_of(&mut c, "quinn@new.example").await.0, "untracked");

    // Track three: one links, one creates a contact, one is ambiguous.
    let nancy = id_of(&mut c, "nancy.davolio@contoso.example").await;
    let quinn = id_of(&mut c, "quinn@new.example").await;
    let twin = id_of(&mut c, "twin@shared.example").await;
    let contacts = pane.store.count_records(Kind::Contact).unwrap();
    let r = form(
        &mut c,
        "/contacts",
        &[
            ("action", "track"),
            ("back", "/contacts?tab=mail"),
            ("sel", &nancy),
            ("sel", &quinn),
            ("sel", &twin),
        ],
    )
    .await;
    let t = follow(&mut c, &r).await;
    assert!(
        t.contains("1 contact tracked (linked")
            && t.contains("1 contact tracked as a new CRM contact")
            && t.contains("1 contact pending"),
        "{t}"
    );
    assert_eq!(
        status_of(&mut c, "nancy.davolio@contoso.example").await,
        ("tracked".into(), Some(NANCY.into()))
    );
    let (st, quinn_contact) = status_of(&mut c, "quinn@new.example").await;
    assert_eq!(st, "tracked");
    assert_eq!(
        pane.store.count_records(Kind::Contact).unwrap(),
        contacts + 1
    );
    let Some(Record::Contact(q)) = pane
        .store
        .record(quinn_contact.unwrap().parse().unwrap())
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (
            q.job_title.as_str(),
            q.department.as_str(),
            q.business_phone.as_str()
        ),
        ("Buyer", "Zyxology", "+1 425 555 0100")
    );
    assert_eq!(q.address.city, "Quahogton");
    assert_eq!(
        q.account.map(|a| a.to_string()).as_deref(),
        Some(ADVENTURE_WORKS)
    );
    assert_eq!(status_of(&mut c, "twin@shared.example").await.0, "pending");
    let t = c.get("/contacts?tab=mail&view=pending").await.text();
    assert!(
        t.contains("Pat Twin") && !t.contains("Quinn Newman") && t.contains("Pending</span>"),
        "{t}"
    );
    assert!(t.contains(&format!("/contacts/choose?entry={twin}")));

    // Choose: the page lists both twins; a non-candidate is refused; a candidate is taken.
    let t = c
        .get(&format!("/contacts/choose?entry={twin}"))
        .await
        .text();
    assert!(t.contains(&twins[0]) && t.contains(&twins[1]), "{t}");
    let r = form(
        &mut c,
        "/contacts/choose",
        &[("entry", &twin), ("contact", NANCY)],
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(status_of(&mut c, "twin@shared.example").await.0, "pending");
    let r = form(
        &mut c,
        "/contacts/choose",
        &[("entry", &twin), ("contact", &twins[1])],
    )
    .await;
    follow(&mut c, &r).await;
    assert_eq!(
        status_of(&mut c, "twin@shared.example").await,
        ("tracked".into(), Some(twins[1].clone()))
    );

    // Untrack: unlinked; the CRM contact stays.
    let r = form(
        &mut c,
        "/contacts",
        &[("action", "untrack"), ("sel", &quinn)],
    )
    .await;
    assert!(follow(&mut c, &r).await.contains("1 contact untracked"));
    assert_eq!(
        status_of(&mut c, "quinn@new.example").await,
        ("untracked".into(), None)
    );
    assert_eq!(
        pane.store.count_records(Kind::Contact).unwrap(),
        contacts + 1
    );

    // Link Rita (untracked) to Contoso: tracked first, then linked.
    let rita = id_of(&mut c, "rita@solo.example").await;
    let r = form(&mut c, "/contacts", &[("action", "link"), ("sel", &rita)]).await;
    assert_eq!(r.status, 303);
    let picker = r.header("location").unwrap();
    assert!(picker.starts_with("/contacts/link?sel="));
    let t = c.get(&format!("{picker}&q=contoso")).await.text();
    assert!(t.contains(CONTOSO) && t.contains("Rita Solo"), "{t}");
    let r = form(
        &mut c,
        "/contacts/link",
        &[("sel", &rita), ("account", CONTOSO)],
    )
    .await;
    assert!(follow(&mut c, &r)
        .await
        .contains("1 CRM contact linked to the account"));
    let (st, rita_contact) = status_of(&mut c, "rita@solo.example").await;
    assert_eq!(st, "tracked");
    let rita_contact: uuid::Uuid = rita_contact.unwrap().parse().unwrap();
    let account_of = |id| match pane.store.record(id).unwrap() {
        Some(Record::Contact(c)) => c.account.map(|a| a.uuid()),
        _ => panic!(),
    };
    assert_eq!(
        account_of(rita_contact).map(|a| a.to_string()).as_deref(),
        Some(CONTOSO)
    );
    // … and then to a new account, made by name.
    let accounts = pane.store.count_records(Kind::Account).unwrap();
    let r = form(
        &mut c,
        "/contacts/link",
        &[("sel", &rita), ("new_account", "Solo Ventures")],
    )
    .await;
    follow(&mut c, &r).await;
    assert_eq!(
        pane.store.count_records(Kind::Account).unwrap(),
        accounts + 1
    );
    let new = account_of(rita_contact).unwrap();
    assert_eq!(
        pane.store.record(new).unwrap().unwrap().title(),
        "Solo Ventures"
    );
    let t = c.get("/contacts?tab=mail&q=rita").await.text();
    assert!(
        t.contains("Solo Ventures") && t.contains(&format!("/record/{new}")),
        "the row shows the account"
    );

    // Email and Appointment for a selection across both tabs' kinds.
    let r = form(
        &mut c,
        "/contacts",
        &[
            ("action", "email"),
            ("sel", &nancy),
            ("sel", &quinn),
            ("crm", &twins[0]),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(
        r.text()
            .contains("mailto:nancy.davolio@contoso.example,quinn@new.example,twin@shared.example"),
        "{}",
        r.text()
    );
    let r = form(
        &mut c,
        "/contacts",
        &[("action", "appointment"), ("sel", &nancy), ("sel", &quinn)],
    )
    .await;
    let t = r.text();
    assert!(
        t.contains(&format!(
            "/activities/new?kind=appointment&amp;regarding=contact:{NANCY}"
        )),
        "{t}"
    );
    let ics = c
        .get(&format!("/contacts/invite.ics?sel={nancy}&sel={quinn}"))
        .await;
    assert_eq!(ics.status, 200);
    assert!(ics
        .header("content-type")
        .unwrap()
        .starts_with("text/calendar"));
    let body = ics.text();
    assert!(
        body.contains("ATTENDEE;CN=\"Quinn Newman\"")
            && body.contains("mailto:nancy.davolio@contoso.example")
    );
    assert!(
        body.contains("ORGANIZER:mailto:alice@example.test")
            && body.contains("\r\nEND:VCALENDAR\r\n")
    );
}

#[tokio::test]
async fn search_fields_and_filter_views() {
    let pane = TestPane::start().await;
    serve_admin(&pane).await;
    let out = cli_import(&pane, ALICE, &book_vcf()).await;
    assert!(out.status.success());
    let mut c = pane.signed_in(ALICE).await;
    let quinn = id_of(&mut c, "quinn@new.example").await;
    let r = form(&mut c, "/contacts", &[("action", "track"), ("sel", &quinn)]).await;
    follow(&mut c, &r).await;
    // Mail contacts: full name, company, department, business address; not e-mail or title.
    for (q, hit) in [
        ("newman", true),
        ("adventure", true),
        ("zyxology", true),
        ("quahogton bike", true),
        ("new.example", false),
        ("buyer", false),
    ] {
        let t = c
            .get(&format!("/contacts?tab=mail&q={}", q.replace(' ', "+")))
            .await
            .text();
        assert_eq!(t.contains("Quinn Newman"), hit, "mail q={q}");
        assert!(!t.contains("Rita Solo"), "mail q={q}");
    }
    // CRM contacts: full name, title, department, business address (and company); not e-mail.
    for (q, hit) in [
        ("newman", true),
        ("buyer", true),
        ("zyxology", true),
        ("quahogton", true),
        ("quinn@new.example", false),
    ] {
        let t = c.get(&format!("/contacts?tab=crm&q={q}")).await.text();
        assert_eq!(t.contains("Quinn Newman"), hit, "crm q={q}");
        assert!(!t.contains("Nancy Davolio"), "crm q={q}");
    }
    // Views: tracked, untracked, all; an unknown view or tab is refused.
    let t = c.get("/contacts?tab=mail&view=tracked").await.text();
    assert!(t.contains("Quinn Newman") && !t.contains("Rita Solo"));
    let t = c.get("/contacts?tab=mail&view=untracked").await.text();
    assert!(!t.contains("Quinn Newman") && t.contains("Rita Solo"));
    let t = c.get("/contacts?tab=mail&view=all").await.text();
    assert!(t.contains("Quinn Newman") && t.contains("Rita Solo"));
    assert!(
        t.contains("<option value=\"tracked\">Tracked contacts (1)</option>"),
        "{t}"
    );
    assert_eq!(c.get("/contacts?view=everything").await.status, 400);
    assert_eq!(c.get("/contacts?tab=outlook").await.status, 400);
}

#[tokio::test]
async fn lists_are_paged() {
    let pane = TestPane::start().await;
    let alice = pane
        .store
        .user_by_login(&ALICE.parse().unwrap())
        .unwrap()
        .unwrap();
    // 120 CRM contacts and 120 mail contacts.
    let mut vcf = String::new();
    let mut records = Vec::new();
    for i in 0..120 {
        vcf.push_str(&card(
            &format!("Page Person{i:03}"),
            &format!("p{i}@pages.example"),
            "",
        ));
        let c: crmproxy::store::Contact = serde_json::from_value(serde_json::json!({
            "id": uuid::Uuid::now_v7(), "created": chrono::Utc::now(), "modified": chrono::Utc::now(),
            "first_name": "Crm", "last_name": format!("Row{i:03}"),
        }))
        .unwrap();
        records.push(Record::Contact(c));
    }
    pane.store.put_records_bulk(records, &mut |_| {}).unwrap();
    let rows = match crmproxy::store::import::parse(vcf.as_bytes(), None).unwrap() {
        crmproxy::store::import::Parsed::Rows { rows, .. } => rows,
        _ => panic!(),
    };
    address_book::import_rows(pane.store.as_ref(), alice.id, rows).unwrap();
    let total = pane.store.count_records(Kind::Contact).unwrap();
    let mut c = pane.signed_in(ALICE).await;

    for (tab, marker) in [("crm", "name=\"crm\""), ("mail", "name=\"sel\"")] {
        let mut seen = std::collections::BTreeSet::new();
        let mut path = format!("/contacts?tab={tab}");
        let mut pages = Vec::new();
        loop {
            let t = c.get(&path).await.text();
            let rows = t.matches(marker).count();
            assert!(rows <= 50 && rows > 0, "{tab}: {rows} rows");
            for part in t.split("type=\"checkbox\"").skip(1) {
                let v = part
                    .split("value=\"")
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap()
                    .to_owned();
                assert!(seen.insert(v), "{tab}: a contact shown twice");
            }
            pages.push(path.clone());
            let Some(i) = t.find("rel=\"next\"") else {
                break;
            };
            let href = t[..i]
                .rsplit("href=\"")
                .next()
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            path = href.replace("&amp;", "&");
        }
        // The demo's tracked mail put its people in alice's address book too.
        let want = if tab == "crm" {
            total
        } else {
            pane.store.address_book_counts(alice.id).unwrap().all
        };
        assert!(want >= 120);
        assert_eq!(seen.len(), want, "{tab}: every contact once");
        assert_eq!(pages.len(), want.div_ceil(50), "{tab}: pages");
        // Back from the last page: a previous link to the page before.
        let last = c.get(pages.last().unwrap()).await.text();
        let i = last.find("rel=\"prev\"").expect("a previous link");
        let href = last[..i]
            .rsplit("href=\"")
            .next()
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .replace("&amp;", "&");
        let prev = c.get(&href).await.text();
        assert_eq!(prev.matches(marker).count(), 50);
    }
    let t = c.get("/contacts?tab=crm").await.text();
    assert!(t.contains(&format!("{total} CRM contacts")), "the count");
    // A forged cursor is the user's mistake, not a server error.
    let r = c.get("/contacts?tab=crm&after=zz").await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(c.get("/api/contacts?tab=mail&before=00").await.status, 400);
}

#[tokio::test]
async fn bad_input_is_refused_and_nothing_changes() {
    let pane = TestPane::start().await;
    serve_admin(&pane).await;
    assert!(cli_import(&pane, ALICE, &book_vcf()).await.status.success());
    let mut c = pane.signed_in(ALICE).await;
    let rita = id_of(&mut c, "rita@solo.example").await;
    let contacts = pane.store.count_records(Kind::Contact).unwrap();
    let accounts = pane.store.count_records(Kind::Account).unwrap();

    // No CSRF token, or another origin: refused, nothing tracked.
    let r = c
        .post_form("/contacts", &[("action", "track"), ("sel", &rita)])
        .await;
    assert_eq!(r.status, 403);
    let token = csrf(&mut c).await;
    let r = c
        .post_form_with(
            "/contacts",
            &[("csrf", &token), ("action", "track"), ("sel", &rita)],
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(r.status, 403);
    let r = c
        .send(
            "POST",
            "/api/contacts/track",
            &[
                ("content-type", "application/json"),
                ("origin", &c.origin()),
            ],
            format!("{{\"ids\":[\"{rita}\"]}}").into_bytes(),
        )
        .await;
    assert_eq!((r.status, r.json()["status"].as_u64()), (403, Some(403)));
    assert_eq!(status_of(&mut c, "rita@solo.example").await.0, "untracked");

    // Unknown and malformed ids; an unknown one among known ones changes nothing.
    let unknown = uuid::Uuid::now_v7().to_string();
    let r = form(
        &mut c,
        "/contacts",
        &[("action", "track"), ("sel", &rita), ("sel", &unknown)],
    )
    .await;
    assert_eq!(r.status, 404);
    assert!(
        r.text().contains("no contact") && r.text().contains("reload the page"),
        "{}",
        r.text()
    );
    let r = form(
        &mut c,
        "/contacts",
        &[("action", "track"), ("sel", "not-an-id")],
    )
    .await;
    assert_eq!(r.status, 400);
    let r = form(&mut c, "/contacts", &[("action", "track")]).await;
    assert_eq!(r.status, 400);
    let r = form(
        &mut c,
        "/contacts",
        &[("action", "explode"), ("sel", &rita)],
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        c.get(&format!("/contacts/choose?entry={unknown}"))
            .await
            .status,
        404
    );
    let r = form(
        &mut c,
        "/contacts/link",
        &[("sel", &rita), ("account", &unknown)],
    )
    .await;
    assert_eq!(r.status, 404);

    // Over-long or multi-line new account names; both an account and a new one.
    let long = "A".repeat(201);
    for name in [long.as_str(), "two\nlines", "   "] {
        let r = form(
            &mut c,
            "/contacts/link",
            &[("sel", &rita), ("new_account", name)],
        )
        .await;
        assert_eq!(r.status, 400, "{name:?}: {}", r.text());
    }
    let r = form(
        &mut c,
        "/contacts/link",
        &[("sel", &rita), ("account", CONTOSO), ("new_account", "X")],
    )
    .await;
    assert_eq!(r.status, 400);

    // Another user's contacts: Carol (alice's delegate) cannot reach alice's
    // entries through her own session; delegate sign-in to alice's pane is
    // refused by `book_actions::check_actor` (tests/store_address_book.rs).
    let mut carol = pane.signed_in("carol@example.test").await;
    let r = form(
        &mut carol,
        "/contacts",
        &[("action", "track"), ("sel", &rita)],
    )
    .await;
    assert_eq!(r.status, 404);
    let r = carol.get(&format!("/contacts/invite.ics?sel={rita}")).await;
    assert_eq!(r.status, 404);
    let t = carol.get("/contacts?tab=mail").await.text();
    assert!(!t.contains("Rita Solo") && t.contains("Your address book is empty"));

    assert_eq!(status_of(&mut c, "rita@solo.example").await.0, "untracked");
    assert_eq!(pane.store.count_records(Kind::Contact).unwrap(), contacts);
    assert_eq!(pane.store.count_records(Kind::Account).unwrap(), accounts);
}

#[tokio::test]
async fn the_json_api() {
    let pane = TestPane::start().await;
    serve_admin(&pane).await;
    let twins = twin_contacts(&pane).await;
    assert!(cli_import(&pane, ALICE, &book_vcf()).await.status.success());
    let mut c = pane.signed_in(ALICE).await;
    let quinn = id_of(&mut c, "quinn@new.example").await;
    let twin = id_of(&mut c, "twin@shared.example").await;

    let r = api(
        &mut c,
        "/api/contacts/track",
        serde_json::json!({ "ids": [quinn, twin] }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(
        (
            j["report"]["created"].as_u64(),
            j["report"]["pending"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert!(j["message"].as_str().unwrap().contains("pending"));
    let r = api(
        &mut c,
        "/api/contacts/choose",
        serde_json::json!({ "id": twin, "contact": twins[0] }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        status_of(&mut c, "twin@shared.example").await.1.as_deref(),
        Some(twins[0].as_str())
    );
    let r = api(
        &mut c,
        "/api/contacts/link",
        serde_json::json!({ "ids": [quinn], "new_account": "Api Account" }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["report"]["new_account"].is_string());
    let r = api(
        &mut c,
        "/api/contacts/untrack",
        serde_json::json!({ "ids": [quinn, twin] }),
    )
    .await;
    assert_eq!(r.json()["report"]["untracked"].as_u64(), Some(2));

    // Errors: JSON with the status.
    let unknown = uuid::Uuid::now_v7().to_string();
    for (path, body, status) in [
        (
            "/api/contacts/track",
            serde_json::json!({ "ids": [unknown] }),
            404,
        ),
        ("/api/contacts/track", serde_json::json!({ "ids": [] }), 400),
        (
            "/api/contacts/track",
            serde_json::json!({ "ids": ["x"] }),
            400,
        ),
        ("/api/contacts/track", serde_json::json!({ "oops": 1 }), 400),
        (
            "/api/contacts/link",
            serde_json::json!({ "ids": [quinn], "new_account": "B".repeat(300) }),
            400,
        ),
        (
            "/api/contacts/choose",
            serde_json::json!({ "id": twin, "contact": NANCY }),
            400,
        ),
    ] {
        let r = api(&mut c, path, body.clone()).await;
        assert_eq!(r.status, status, "{path} {body}: {}", r.text());
        assert_eq!(r.json()["status"].as_u64(), Some(status as u64));
        assert!(!r.json()["error"].as_str().unwrap().is_empty());
    }

    // Lists and mailto.
    let j = c.get("/api/contacts?tab=crm&q=newman").await.json();
    assert_eq!(j["items"][0]["name"], "Quinn Newman");
    let j = c.get("/api/contacts?tab=mail&view=untracked").await.json();
    assert!(j["counts"]["all"].as_u64().unwrap() >= 5);
    assert!(j["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["status"] == "untracked"));
    let j = c
        .get(&format!("/api/contacts/mailto?sel={quinn}&crm={NANCY}"))
        .await
        .json();
    assert_eq!(
        j["mailto"],
        "mailto:quinn@new.example,nancy.davolio@contoso.example"
    );
    let r = c.get("/api/contacts/mailto").await;
    assert_eq!((r.status, r.json()["status"].as_u64()), (400, Some(400)));
}
