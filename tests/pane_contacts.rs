//! The pane's Contacts page over real HTTPS, on a real store with the demo CRM: an
//! address book imported with the real `crmproxy import --address-book` (through
//! the admin socket, as while `serve` runs), statuses, Track (link, create,
//! pending then choose), Untrack, Link to an existing or a new account, Email and
//! Appointment, search by each field, the filter views, and pages. Refusals and
//! the JSON API are in `pane_contacts_api.rs`.

mod contacts_util;
mod pane_util;

use contacts_util::*;
use crmproxy::store::{book_import, Kind, Record};
use pane_util::TestPane;

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
    let rows = match crmproxy::formats::import::parse(vcf.as_bytes(), None).unwrap() {
        crmproxy::formats::import::Parsed::Rows { rows, .. } => rows,
        _ => panic!(),
    };
    book_import::import_rows(pane.store.as_ref(), alice.id, rows).unwrap();
    let total = pane.store.count_records(Kind::Contact).unwrap();
    let mut c = pane.signed_in(ALICE).await;

    // Browsing (cursors), searching the CRM (offsets), the address book (cursors).
    for (tab, marker) in [
        ("crm", "name=\"crm\""),
        ("crm&q=row", "name=\"crm\""),
        ("mail", "name=\"sel\""),
    ] {
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
        } else if tab == "crm&q=row" {
            120
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
    let r = c.get("/contacts?tab=crm&q=row&from=-1").await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("first page"));
}
