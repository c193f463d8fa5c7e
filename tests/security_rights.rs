//! CRM rights through the real `crmproxy serve` (proxy, sync worker and pane in one
//! process) in front of the private Dovecot, with users added by the CLI over the
//! admin socket (SPEC sections 4 and 8; issue 11 items 1, 2, 5 and 10):
//! - a Message-ID reused in a forged message that another user APPENDs and tracks
//!   opens none of the original's text or bytes, whoever tracked first; the two
//!   messages are two activities, and an identical copy in a third mailbox shares
//!   the one activity with both owners' rights;
//! - a private email's subject does not show on its owner's user record to others;
//! - every privilege is enforced where it is needed, at once when it changes;
//! - a Message-ID with `"` or `>` can be acted on in the pane.

mod common;
mod pane_util;
mod tracking_support;

use common::clients::{run_python, ClientTls};
use common::{dovecot, unique_user, Proxy, ProxyOptions, RawImap, PASSWORD};
use pane_util::Client;
use tracking_support::{crm, wait_keyword};

/// A serve with its pane and no demo CRM, in a fresh data dir.
fn serve() -> Proxy {
    Proxy::start_with(
        dovecot(),
        ProxyOptions {
            config_toml: Some("[tracking]\nload_demo_on_first_run = false\n".into()),
            pane: true,
            ..Default::default()
        },
    )
}

/// A new mailbox user in the CRM with these privileges; (login, user id).
fn new_user(p: &Proxy, prefix: &str, privileges: &[&str]) -> (String, String) {
    let login = format!("{}@crm-test.example", unique_user(prefix));
    let mut args = vec!["user", "add", &login, "--login", &login, "--json"];
    for g in privileges {
        args.extend(["--grant", g]);
    }
    let v: serde_json::Value = serde_json::from_str(&crm(&p.data_dir, &args)).unwrap();
    (login, v["id"].as_str().unwrap().to_owned())
}

async fn sign_in(p: &Proxy, login: &str) -> Client {
    let addr = p.pane.expect("the pane listens");
    let mut c = Client::new(addr, &p.ca_file(), format!("localhost:{}", addr.port()));
    let token = crmproxy::pane::link::issue(&p.data_dir, login).unwrap();
    let r = c.get(&format!("/signin/link?token={token}")).await;
    assert_eq!(r.status, 303, "{}", r.text());
    c
}

/// `tracking_support::message` with its own body text.
fn mail(mid: &str, subject: &str, body: &str) -> Vec<u8> {
    let m = String::from_utf8(tracking_support::message(mid, subject, "")).unwrap();
    let head = &m[..m.find("\r\n\r\n").unwrap() + 4];
    format!("{head}{body}\r\n").into_bytes()
}

/// APPEND `raw` to `login`'s INBOX through the proxy with Python's imaplib.
fn append_through_proxy(p: &Proxy, login: &str, raw: &[u8]) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), raw).unwrap();
    let path = file.path().to_str().unwrap().to_owned();
    let (ok, out, err) = run_python(
        "append.py",
        p.imap,
        ClientTls::Plain,
        None,
        login,
        PASSWORD,
        &["INBOX", &path],
    );
    assert!(ok, "append: {out} {err}");
}

/// Open INBOX UID `uid` through the proxy (the pane's current message) and ask for
/// tracking with the keyword; wait until a direct client sees `$CRM_Tracked`.
fn track_by_keyword(p: &Proxy, login: &str, uid: u32) {
    let mut through = RawImap::login(p.imap, login, PASSWORD);
    assert!(through.cmd("SELECT INBOX").ok());
    let (_, body) = tracking_support::fetch(&mut through, uid, "BODY[]");
    assert!(!body.is_empty());
    let r = through.cmd(&format!("UID STORE {uid} +FLAGS ($CRM_Track)"));
    assert!(r.ok(), "{}", r.tagged);
    let mut direct = RawImap::login(dovecot().imap_addr(), login, PASSWORD);
    wait_keyword(&mut direct, "INBOX", uid, "$CRM_Tracked", true);
    through.cmd("LOGOUT");
}

/// The "View email in CRM" link of the current message: its activity id.
async fn current_activity(c: &mut Client) -> String {
    let t = c.get("/current").await.text();
    let at = t
        .find("/activity/")
        .unwrap_or_else(|| panic!("no activity: {t}"));
    t[at + "/activity/".len()..]
        .chars()
        .take_while(|ch| ch.is_ascii_hexdigit() || *ch == '-')
        .collect()
}

/// What `c` gets for the activity's page and its original (status, text).
async fn open_activity(c: &mut Client, id: &str) -> [(u16, String); 2] {
    let page = c.get(&format!("/activity/{id}")).await;
    let raw = c.get(&format!("/activity/{id}/raw")).await;
    [
        (page.status, page.text()),
        (raw.status, String::from_utf8_lossy(&raw.body).into_owned()),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reused_message_id_opens_nobodys_mail_and_never_merges_two_messages() {
    let p = serve();
    let dv = dovecot();
    let (alice, alice_id) = new_user(&p, "alice", &["use_app"]);
    let (bob, _) = new_user(&p, "bob", &["use_app"]);
    let (carol, _) = new_user(&p, "carol", &["use_app"]);
    let first = format!("{}@customer.example", unique_user("quote"));
    let second = format!("{}@customer.example", unique_user("invoice"));
    let real = mail(&first, "Fleet quote", "Our real price is 4711 EUR.");
    let real_2 = mail(&second, "Invoice 88", "Please pay to IBAN DE11 REAL.");
    dv.fill_inbox(&alice, [real.clone(), real_2.clone()].into_iter());

    // 1. Alice tracks first; Bob APPENDs a message with her Message-ID and tracks it.
    tokio::task::block_in_place(|| {
        track_by_keyword(&p, &alice, 1);
        append_through_proxy(&p, &bob, &mail(&first, "Fleet quote", "FORGED one."));
        track_by_keyword(&p, &bob, 1);
    });
    let mut a = sign_in(&p, &alice).await;
    let mut b = sign_in(&p, &bob).await;
    let alice_act = current_activity(&mut a).await;
    let bob_act = current_activity(&mut b).await;
    assert_ne!(alice_act, bob_act, "two messages, two activities");
    for (status, text) in open_activity(&mut b, &alice_act).await {
        assert_eq!(status, 404, "{text}");
        assert!(!text.contains("4711"), "{text}");
    }
    let [(status, text), (raw_status, raw)] = open_activity(&mut b, &bob_act).await;
    assert_eq!((status, raw_status), (200, 200));
    assert!(
        text.contains("FORGED one") && !text.contains("4711"),
        "{text}"
    );
    assert!(raw.contains("FORGED one"), "{raw}");
    let [(_, text), (_, raw)] = open_activity(&mut a, &alice_act).await;
    assert!(text.contains("4711") && !text.contains("FORGED"), "{text}");
    assert!(raw.contains("4711"), "{raw}");

    // 2. Bob tracks a forgery first; Alice's real message is still hers.
    tokio::task::block_in_place(|| {
        append_through_proxy(
            &p,
            &bob,
            &mail(&second, "Invoice 88", "Pay to IBAN FORGED2."),
        );
        track_by_keyword(&p, &bob, 2);
        track_by_keyword(&p, &alice, 2);
    });
    let alice_act_2 = current_activity(&mut a).await;
    let bob_act_2 = current_activity(&mut b).await;
    assert_ne!(alice_act_2, bob_act_2);
    let [(status, text), (_, raw)] = open_activity(&mut a, &alice_act_2).await;
    assert_eq!(status, 200);
    assert!(
        text.contains("DE11 REAL") && !text.contains("FORGED2"),
        "{text}"
    );
    assert!(raw.contains("DE11 REAL"), "{raw}");
    for (status, _) in open_activity(&mut b, &alice_act_2).await {
        assert_eq!(status, 404);
    }
    for (status, _) in open_activity(&mut a, &bob_act_2).await {
        assert_eq!(status, 404, "nor the other way round");
    }

    // 3. An identical copy delivered to Carol (with her own trace header) is the
    // same message: one activity, which both Alice and Carol may read.
    let mut copy = b"Delivered-To: carol@crm-test.example\r\n".to_vec();
    copy.extend_from_slice(&real);
    dv.fill_inbox(&carol, std::iter::once(copy));
    tokio::task::block_in_place(|| track_by_keyword(&p, &carol, 1));
    let mut c = sign_in(&p, &carol).await;
    assert_eq!(current_activity(&mut c).await, alice_act, "merged");
    for mut who in [a, c] {
        let [(status, text), (raw_status, _)] = open_activity(&mut who, &alice_act).await;
        assert_eq!((status, raw_status), (200, 200));
        assert!(text.contains("4711"), "{text}");
    }

    // Item 10: a private email's subject does not show on Alice's user record to Bob.
    let t = b.get(&format!("/record/{alice_id}")).await.text();
    assert!(t.contains("Activities"), "{t}");
    assert!(
        !t.contains("Fleet quote") && !t.contains("Invoice 88"),
        "{t}"
    );
}

/// How many records of `kind` named with `word` the CRM has (`crmproxy search`).
fn records_named(p: &Proxy, word: &str, kind: &str) -> usize {
    let hits: serde_json::Value =
        serde_json::from_str(&crm(&p.data_dir, &["search", word, "--json"])).unwrap();
    hits.as_array()
        .unwrap()
        .iter()
        .filter(|h| h["kind"] == kind)
        .count()
}

/// SPEC section 4: `use_app` opens the pane at all, `create_records` creates
/// accounts, contacts, leads, opportunities and cases wherever the pane can (quick
/// create, `POST /api/records`, "+ Add as contact / lead", tracking a mail contact);
/// `delete_records` and `admin` stand for neither (no pane route deletes records
/// or manages users: those are the operator's CLI). A change applies at once.
#[tokio::test(flavor = "multi_thread")]
async fn each_privilege_is_enforced_where_records_are_made_and_at_once() {
    let p = serve();
    let dv = dovecot();
    let (pat, _) = new_user(&p, "pat", &["use_app", "delete_records", "admin"]);
    let mid = format!("{}@newco.example", unique_user("stranger"));
    let stranger = "Nina Newman <nina.newman@newco.example>";
    let m = String::from_utf8(mail(&mid, "Hello from Newco", "Hi.")).unwrap();
    let m = m.replace("Dana Sender <dana@customer.example>", stranger);
    dv.fill_inbox(&pat, std::iter::once(m.into_bytes()));
    tokio::task::block_in_place(|| track_by_keyword(&p, &pat, 1));
    let mut c = sign_in(&p, &pat).await;
    let csrf = c.get("/current").await.csrf();

    // Without create_records: every way to create a record is refused, clearly.
    let refused = |r: &pane_util::Resp, what: &str| {
        assert_eq!(r.status, 403, "{what}: {}", r.text());
        assert!(r.text().contains("Create records"), "{what}: {}", r.text());
    };
    refused(&c.get("/create?kind=account").await, "quick create form");
    let r = c
        .post_form(
            "/create",
            &[("csrf", &csrf), ("kind", "account"), ("name", "Acme Forms")],
        )
        .await;
    refused(&r, "quick create");
    let r = c
        .post_json(
            "/api/records",
            &serde_json::json!({ "kind": "account", "name": "Acme Api" }),
        )
        .await;
    refused(&r, "POST /api/records");
    let q = format!("/people/new?id={mid}&address=nina.newman%40newco.example&kind=lead");
    refused(&c.get(&q).await, "add as lead form");
    for kind in ["contact", "lead"] {
        let r = c
            .post_form(
                "/people/new",
                &[
                    ("csrf", &csrf),
                    ("message_id", &mid),
                    ("address", "nina.newman@newco.example"),
                    ("kind", kind),
                    ("first_name", "Nina"),
                    ("last_name", "Newman"),
                    ("topic", "Newco"),
                ],
            )
            .await;
        refused(&r, kind);
        let r = c
            .post_json(
                "/api/people",
                &serde_json::json!({ "message_id": mid, "address": "nina.newman@newco.example",
                    "kind": kind, "first_name": "Nina", "last_name": "Newman" }),
            )
            .await;
        refused(&r, kind);
    }
    let book = c.get("/api/contacts").await.json();
    let entry = book["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["entry"].to_string().contains("nina.newman@newco.example"))
        .unwrap_or_else(|| panic!("the sender is in the mail contacts: {book}"))["entry"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = c
        .post_json(
            "/api/contacts/track",
            &serde_json::json!({ "ids": [entry.clone()] }),
        )
        .await;
    refused(&r, "track a mail contact");
    assert_eq!(records_named(&p, "Acme", "account"), 0);
    assert_eq!(records_named(&p, "Newman", "contact"), 0);
    assert_eq!(records_named(&p, "Newman", "lead"), 0);

    // Granted: the same requests create (no new sign-in needed).
    crm(&p.data_dir, &["user", "grant", &pat, "create_records"]);
    let r = c
        .post_json(
            "/api/records",
            &serde_json::json!({ "kind": "account", "name": "Acme Api" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = c
        .post_json(
            "/api/contacts/track",
            &serde_json::json!({ "ids": [entry] }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(records_named(&p, "Acme", "account"), 1);
    assert_eq!(records_named(&p, "Newman", "contact"), 1);

    // use_app revoked: the next request is refused, in the pane and the API.
    crm(&p.data_dir, &["user", "revoke", &pat, "use_app"]);
    for path in ["/current", "/api/session"] {
        let r = c.get(path).await;
        assert_eq!(r.status, 403, "{path}: {}", r.text());
        assert!(r.text().contains("Use the app"), "{}", r.text());
    }
}

/// Item 10: a Message-ID with `"` or `>` in it is tracked through IMAP, and the
/// pane acts on it like on any other (Untrack here), not with a 400.
#[tokio::test(flavor = "multi_thread")]
async fn a_message_id_with_quotes_or_brackets_can_be_acted_on_in_the_pane() {
    let p = serve();
    let dv = dovecot();
    let (login, _) = new_user(&p, "odd", &["use_app"]);
    let odd = [
        format!("{}\"quoted\"@customer.example", unique_user("q")),
        format!("{}>angle@customer.example", unique_user("a")),
        format!("\"{} with space\"@customer.example", unique_user("s")),
    ];
    dv.fill_inbox(
        &login,
        odd.iter().map(|id| mail(id, "Odd Message-ID", "Odd.")),
    );
    for (i, _) in odd.iter().enumerate() {
        let uid = i as u32 + 1;
        tokio::task::block_in_place(|| track_by_keyword(&p, &login, uid));
        let mut c = sign_in(&p, &login).await;
        let page = c.get("/current").await;
        let t = page.text();
        assert!(t.contains("Tracked"), "{t}");
        let shown = t
            .split("name=\"message_id\" value=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or_else(|| panic!("an Untrack form: {t}"))
            .replace("&quot;", "\"")
            .replace("&gt;", ">")
            .replace("&lt;", "<")
            .replace("&amp;", "&");
        let r = c
            .post_form(
                "/untrack",
                &[("csrf", &page.csrf()), ("message_id", &shown)],
            )
            .await;
        assert_eq!(r.status, 303, "{shown}: {}", r.text());
        tokio::task::block_in_place(|| {
            let mut direct = RawImap::login(dovecot().imap_addr(), &login, PASSWORD);
            wait_keyword(&mut direct, "INBOX", uid, "$CRM_Tracked", false);
        });
    }
}

/// A store written before content digests (schema 3: Message-ID → activity)
/// opens, gets its emails' digests from their originals, and then shares an
/// email only with an identical copy.
#[test]
fn a_version_3_store_is_migrated_to_one_activity_per_message() {
    use crmproxy::store::sled::migrate::{stored_version, CURRENT_VERSION};
    use crmproxy::store::{ActivityDetails, CrmStore, SledStore};
    use crmproxy::track::{Engine, TrackRequest, TrackSource};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let real = mail("old-1@customer.example", "Old quote", "Price 4711.");
    let (old_id, mut row) = {
        let engine = engine_with_users(
            dir.path(),
            &["ann@crm-test.example", "ben@crm-test.example"],
        );
        let ann = engine.actor("ann@crm-test.example", "").unwrap();
        let t = engine
            .track(&ann, &real, TrackRequest::new(TrackSource::Cli))
            .unwrap();
        (t.activity.id, serde_json::to_value(&t.activity).unwrap())
    };
    {
        // Make it look like version 3: a JSON row without the digest, the old
        // index key.
        let db = sled::open(dir.path().join("db")).unwrap();
        let acts = db.open_tree("activities").unwrap();
        let key = old_id.uuid();
        assert!(row["details"]["content_digest"].is_string());
        row["details"]
            .as_object_mut()
            .unwrap()
            .remove("content_digest");
        acts.insert(key.as_bytes(), serde_json::to_vec(&row).unwrap())
            .unwrap();
        let msgids = db.open_tree("msgids").unwrap();
        msgids.clear().unwrap();
        msgids
            .insert("old-1@customer.example", key.as_bytes())
            .unwrap();
        db.open_tree("meta")
            .unwrap()
            .insert("schema_version", &3u32.to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    let sled = Arc::new(SledStore::open(dir.path()).unwrap());
    assert_eq!(stored_version(&sled).unwrap(), Some(CURRENT_VERSION));
    let store: Arc<dyn CrmStore> = sled;
    let a = store.activity(old_id).unwrap().unwrap();
    let ActivityDetails::Email(e) = &a.details else {
        panic!("an email")
    };
    assert_eq!(
        e.content_digest.as_deref(),
        Some(crmproxy::store::content_digest(&real).as_str())
    );
    let engine = Engine::new(store.clone(), Default::default()).unwrap();
    let ben = engine.actor("ben@crm-test.example", "").unwrap();
    let same = engine
        .track(&ben, &real, TrackRequest::new(TrackSource::Cli))
        .unwrap();
    assert_eq!(same.activity.id, old_id, "an identical copy shares it");
    let forged = mail("old-1@customer.example", "Old quote", "FORGED.");
    let other = engine
        .track(&ben, &forged, TrackRequest::new(TrackSource::Cli))
        .unwrap();
    assert_ne!(
        other.activity.id, old_id,
        "another message is another activity"
    );
    let all = store
        .activities_by_message_id(
            &crmproxy::store::MessageId::parse("old-1@customer.example").unwrap(),
        )
        .unwrap();
    assert_eq!(all.len(), 2);
}

/// An engine over a new store in `dir` with these users (`use_app` each).
fn engine_with_users(dir: &std::path::Path, logins: &[&str]) -> crmproxy::track::Engine {
    use crmproxy::store::{
        CrmStore, EmailAddress, Privilege, Record, SledStore, SystemUser, UserId,
    };
    let store: std::sync::Arc<dyn CrmStore> = std::sync::Arc::new(SledStore::open(dir).unwrap());
    for login in logins {
        store
            .put_record(Record::User(SystemUser {
                id: UserId::new(),
                stamps: Default::default(),
                full_name: login.to_string(),
                logins: vec![EmailAddress::parse(login).unwrap()],
                imap_logins: Vec::new(),
                privileges: [Privilege::UseApp].into_iter().collect(),
                delegates: Default::default(),
                options: Default::default(),
            }))
            .unwrap();
    }
    crmproxy::track::Engine::new(store, Default::default()).unwrap()
}

/// A reply correlates with the replying mailbox's own copy of the message it
/// answers, not with another message that reuses its Message-ID (a forger's,
/// filed regarding a record of the forger's choice).
#[test]
fn a_reply_correlates_with_its_own_mailboxs_message_not_a_forgery() {
    use crmproxy::store::{Account, ActivityDetails, Kind, Record, RecordRef};
    use crmproxy::track::{TrackRequest, TrackSource};
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with_users(dir.path(), &["amy@crm-test.example", "bo@crm-test.example"]);
    let store = engine.store().clone();
    let acc: Account = serde_json::from_value(serde_json::json!({
        "id": crmproxy::store::AccountId::new(), "name": "Forger's pick",
        "created": "2026-11-01T09:00:00Z", "modified": "2026-11-01T09:00:00Z"
    }))
    .unwrap();
    let acc = store.put_record(Record::Account(acc)).unwrap();
    let amy = engine.actor("amy@crm-test.example", "").unwrap();
    let bo = engine.actor("bo@crm-test.example", "").unwrap();
    let forged = mail("thread-1@customer.example", "Terms", "FORGED terms.");
    engine
        .track(
            &bo,
            &forged,
            TrackRequest::new(TrackSource::Cli).regarding(RecordRef {
                kind: Kind::Account,
                id: acc.id(),
            }),
        )
        .unwrap();
    let real = engine
        .track(
            &amy,
            &mail("thread-1@customer.example", "Terms", "Real terms."),
            TrackRequest::new(TrackSource::Cli),
        )
        .unwrap();
    let reply = String::from_utf8(mail("reply-1@crm-test.example", "Re: Terms", "Agreed."))
        .unwrap()
        .replacen(
            "\r\n\r\n",
            "\r\nIn-Reply-To: <thread-1@customer.example>\r\n\r\n",
            1,
        );
    let t = engine
        .track(&amy, reply.as_bytes(), TrackRequest::new(TrackSource::Cli))
        .unwrap();
    let ActivityDetails::Email(e) = &t.activity.details else {
        panic!("an email")
    };
    assert_eq!(e.correlated_with, Some(real.activity.id));
    assert_eq!(t.activity.regarding, None, "not the forger's pick");
}

/// An email imported from an export made before content digests is found again
/// by its original's content: an identical copy shares it, another message not.
#[test]
fn an_email_imported_without_a_digest_is_found_by_its_content() {
    use crmproxy::store::{ActivityDetails, CrmStore, Privilege, SledStore};
    use crmproxy::track::{Engine, TrackRequest, TrackSource};
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with_users(
        dir.path(),
        &["eve@crm-test.example", "fay@crm-test.example"],
    );
    let real = mail("exported-1@customer.example", "Exported", "Price 99.");
    let eve = engine.actor("eve@crm-test.example", "").unwrap();
    let id = engine
        .track(&eve, &real, TrackRequest::new(TrackSource::Cli))
        .unwrap()
        .activity
        .id;
    let mut bundle = engine.store().export().unwrap();
    for a in &mut bundle.activities {
        if let ActivityDetails::Email(e) = &mut a.details {
            e.content_digest = None;
        }
    }
    let other = tempfile::tempdir().unwrap();
    let store: std::sync::Arc<dyn CrmStore> =
        std::sync::Arc::new(SledStore::open(other.path()).unwrap());
    store.import_bundle(&bundle).unwrap();
    let fay = store
        .users()
        .unwrap()
        .into_iter()
        .find(|u| u.full_name.starts_with("fay"))
        .unwrap();
    assert!(fay.has(Privilege::UseApp));
    let engine = Engine::new(store.clone(), Default::default()).unwrap();
    let fay = engine.actor_by_id(fay.id, fay.id).unwrap();
    let same = engine
        .track(&fay, &real, TrackRequest::new(TrackSource::Cli))
        .unwrap();
    assert_eq!(same.activity.id, id, "the same message");
    assert_eq!(
        same.activity.content_digest(),
        Some(crmproxy::store::content_digest(&real).as_str())
    );
    let forged = mail("exported-1@customer.example", "Exported", "FORGED.");
    let other = engine
        .track(&fay, &forged, TrackRequest::new(TrackSource::Cli))
        .unwrap();
    assert_ne!(other.activity.id, id);
}

/// A meeting invitation with its own Message-ID, UID, organizer and room.
fn invitation(mid: &str, uid: &str, organizer: &str, room: &str) -> Vec<u8> {
    format!(
        "Message-ID: <{mid}>\r\nDate: Tue, 24 Nov 2026 09:15:00 +0000\r\n\
         From: <{organizer}>\r\nTo: team@customer.example\r\nSubject: Pricing review\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/calendar; charset=utf-8; method=REQUEST\r\n\r\n\
         BEGIN:VCALENDAR\r\nPRODID:-//crmproxy tests//EN\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\n\
         BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20261124T091500Z\r\nDTSTART:20261202T100000Z\r\n\
         DTEND:20261202T110000Z\r\nSUMMARY:Pricing review\r\nLOCATION:{room}\r\n\
         ORGANIZER:mailto:{organizer}\r\nATTENDEE:mailto:team@customer.example\r\n\
         END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    .into_bytes()
}

/// A meeting's UID reused in another invitation makes another appointment: the
/// forger's regarding never reaches the real one, and an identical copy shares it.
#[test]
fn a_reused_meeting_uid_never_changes_another_mailboxs_appointment() {
    use crmproxy::store::{Account, ActivityDetails, Kind, Record, RecordRef};
    use crmproxy::track::{TrackRequest, TrackSource};
    let dir = tempfile::tempdir().unwrap();
    let logins = [
        "amy@crm-test.example",
        "bo@crm-test.example",
        "cy@crm-test.example",
    ];
    let engine = engine_with_users(dir.path(), &logins);
    let store = engine.store().clone();
    let mut settings = store.settings().unwrap();
    settings.track_appointments_from_non_organizer = true;
    store.put_settings(settings).unwrap();
    let acc: Account = serde_json::from_value(serde_json::json!({
        "id": crmproxy::store::AccountId::new(), "name": "Forger's pick",
        "created": "2026-11-01T09:00:00Z", "modified": "2026-11-01T09:00:00Z"
    }))
    .unwrap();
    let pick = RecordRef {
        kind: Kind::Account,
        id: store.put_record(Record::Account(acc)).unwrap().id(),
    };
    let [amy, bo, cy] = logins.map(|l| engine.actor(l, "").unwrap());
    let room = |a: &crmproxy::store::Activity| match &a.details {
        ActivityDetails::Appointment(x) => x.location.clone(),
        _ => panic!("an appointment"),
    };
    let forged = invitation(
        "f-1@x.example",
        "meet-9@x.example",
        logins[1],
        "Forged room",
    );
    let b = engine
        .track(
            &bo,
            &forged,
            TrackRequest::new(TrackSource::Cli).regarding(pick),
        )
        .unwrap();
    let real = invitation("r-1@x.example", "meet-9@x.example", logins[0], "Real room");
    let a = engine
        .track(&amy, &real, TrackRequest::new(TrackSource::Cli))
        .unwrap();
    let (a_appt, b_appt) = (a.appointment.unwrap(), b.appointment.unwrap());
    assert_ne!(a_appt.id, b_appt.id);
    assert_eq!(room(&a_appt), "Real room");
    assert_eq!(a_appt.regarding, None);
    let c = engine
        .track(&cy, &real, TrackRequest::new(TrackSource::Cli))
        .unwrap();
    assert_eq!(
        c.appointment.unwrap().id,
        a_appt.id,
        "an identical copy shares it"
    );
    // Bo's set regarding on his own email moves his appointment only.
    let forged_id = crmproxy::store::MessageId::parse("f-1@x.example").unwrap();
    engine
        .set_regarding(&bo, &forged_id, Some(pick), false)
        .unwrap();
    assert_eq!(store.activity(a_appt.id).unwrap().unwrap().regarding, None);
}
