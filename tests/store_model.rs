//! The sled store through the `CrmStore` trait: validation, links and deletes,
//! address resolution, search ranking, timelines, tracking, settings, blobs,
//! reopening, and the v1 → v2 migration.

mod store_support;

use crmproxy::store::*;
use store_support::*;
use uuid::Uuid;

fn writes_are_stamped_and_read_back(b: Backend) {
    let s = TestStore::new(b);
    let c = s
        .put_record(Record::Contact(contact(
            "Ada",
            "Lovelace",
            "ada@example.com",
        )))
        .unwrap();
    assert_eq!(c.title(), "Ada Lovelace");
    let back = s.record(c.id()).unwrap().unwrap();
    assert_eq!(back, c);
    let created = c.stamps().created;
    std::thread::sleep(std::time::Duration::from_millis(5));
    let Record::Contact(mut c2) = back else {
        panic!()
    };
    c2.job_title = "Analyst".into();
    let c2 = s.put_record(Record::Contact(c2)).unwrap();
    assert_eq!(c2.stamps().created, created);
    assert!(c2.stamps().modified > created);
}

#[test]
fn a_bad_address_is_refused_with_its_reason() {
    let e = serde_json::from_str::<EmailAddress>("\"not-an-address\"").unwrap_err();
    assert!(e.to_string().contains("no @"), "{e}");
}

fn links_must_exist_and_linked_records_cannot_be_deleted(b: Backend) {
    let s = TestStore::new(b);
    let mut c = contact("Nancy", "Davolio", "nancy@contoso.example");
    c.account = Some(AccountId::new());
    let e = s.put_record(Record::Contact(c.clone())).unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::MissingLink {
                kind: Kind::Account,
                ..
            }
        ),
        "{e}"
    );
    assert!(s.record(c.id.uuid()).unwrap().is_none(), "nothing written");

    let a = s.put_record(Record::Account(account("Contoso"))).unwrap();
    c.account = Some(AccountId::from_uuid(a.id()));
    let c = s.put_record(Record::Contact(c)).unwrap();
    let e = s.delete_record(a.id()).unwrap_err();
    assert!(matches!(e, StoreError::InUse { count: 1, .. }), "{e}");
    assert!(e.to_string().contains("cannot be deleted"));
    s.delete_record(c.id()).unwrap();
    s.delete_record(a.id()).unwrap();
    assert!(s.is_empty().unwrap());
    assert!(matches!(
        s.delete_record(a.id()),
        Err(StoreError::NotFound { .. })
    ));
}

fn regarding_must_exist_and_keeps_its_record_alive(b: Backend) {
    let s = TestStore::new(b);
    let u = s
        .put_record(Record::User(user("Alice", "alice@example.test")))
        .unwrap();
    let uid = UserId::from_uuid(u.id());
    let ghost = RecordRef {
        kind: Kind::Opportunity,
        id: Uuid::now_v7(),
    };
    let e = s
        .put_activity(email(uid, "<m1@x.example>", "Hi", Some(ghost), 1))
        .unwrap_err();
    assert!(e.to_string().contains("regarding"), "{e}");
    assert!(s
        .activity_by_message_id(&MessageId::parse("m1@x.example").unwrap())
        .unwrap()
        .is_none());

    let a = s.put_record(Record::Account(account("Fabrikam"))).unwrap();
    let act = s
        .put_activity(email(uid, "<m1@x.example>", "Hi", Some(a.as_ref()), 1))
        .unwrap();
    assert!(matches!(
        s.delete_record(a.id()),
        Err(StoreError::InUse { .. })
    ));
    // An activity cannot be regarding a user or a template.
    let bad = email(uid, "<m2@x.example>", "Hi", Some(u.as_ref()), 1);
    assert!(matches!(
        s.put_activity(bad),
        Err(StoreError::Invalid { .. })
    ));
    s.delete_activity(act.id).unwrap();
    s.delete_record(a.id()).unwrap();
}

fn duplicates_are_refused(b: Backend) {
    let s = TestStore::new(b);
    let u = s
        .put_record(Record::User(user("Alice", "alice@example.test")))
        .unwrap();
    let e = s
        .put_record(Record::User(user("Other Alice", "ALICE@example.test")))
        .unwrap_err();
    assert!(matches!(e, StoreError::Duplicate(_)), "{e}");
    let uid = UserId::from_uuid(u.id());
    s.put_activity(email(uid, "<same@x.example>", "One", None, 1))
        .unwrap();
    let e = s
        .put_activity(email(uid, "<same@x.example>", "Two", None, 2))
        .unwrap_err();
    assert!(e.to_string().contains("Message-ID"), "{e}");
    let acc = s.put_record(Record::Account(account("Contoso"))).unwrap();
    let inv = |n: &str| Invoice {
        id: InvoiceId::new(),
        stamps: Stamps::default(),
        number: n.into(),
        customer: acc.as_ref(),
        amount: Money {
            minor: 100,
            currency: "EUR".into(),
        },
        due: None,
        status: InvoiceStatus::Active,
    };
    s.put_record(Record::Invoice(inv("INV-1"))).unwrap();
    assert!(matches!(
        s.put_record(Record::Invoice(inv("inv-1"))),
        Err(StoreError::Duplicate(_))
    ));
}

fn addresses_resolve_case_and_idn_insensitively_in_order(b: Backend) {
    let s = TestStore::new(b);
    let mut a = account("Bücher AG");
    a.emails = vec![addr("info@bücher.example")];
    let a = s.put_record(Record::Account(a)).unwrap();
    let c = s
        .put_record(Record::Contact(contact(
            "Zoë",
            "Müller",
            "Info@Bücher.Example",
        )))
        .unwrap();
    let u = s
        .put_record(Record::User(user(
            "Info Desk",
            "info@xn--bcher-kva.example",
        )))
        .unwrap();
    let got = s
        .resolve_address(&addr("INFO@xn--bcher-kva.EXAMPLE"))
        .unwrap();
    assert_eq!(got, vec![u.as_ref(), c.as_ref(), a.as_ref()]);
    assert!(s
        .resolve_address(&addr("nobody@bücher.example"))
        .unwrap()
        .is_empty());
    // Changing the address moves the index entry.
    let Record::Contact(mut cc) = c.clone() else {
        panic!()
    };
    cc.emails = vec![addr("zoe@bücher.example")];
    s.put_record(Record::Contact(cc)).unwrap();
    assert_eq!(
        s.resolve_address(&addr("info@bücher.example")).unwrap(),
        vec![u.as_ref(), a.as_ref()]
    );
    assert_eq!(
        s.user_by_login(&addr("INFO@bücher.example"))
            .unwrap()
            .unwrap()
            .id
            .uuid(),
        u.id()
    );
}

fn search_folds_accents_matches_prefixes_filters_and_ranks(b: Backend) {
    let s = TestStore::new(b);
    let mut zoe = contact("Zoë", "Müller", "");
    zoe.job_title = "Geschäftsführerin".into();
    zoe.company = "Fabrikam".into();
    let zoe = s.put_record(Record::Contact(zoe)).unwrap();
    let mut other = contact("Max", "Mustermann", "");
    other.company = "Müller Logistics".into();
    let other = s.put_record(Record::Contact(other)).unwrap();
    let fab = s
        .put_record(Record::Account(account("Fabrikam Möbel")))
        .unwrap();

    let q = |t: &str, kinds: Vec<Kind>| {
        s.search(&SearchQuery {
            text: t.into(),
            kinds,
            limit: 0,
        })
        .unwrap()
    };
    // Name beats company for the same word.
    let hits = q("muller", vec![]);
    assert_eq!(
        hits.iter().map(|h| h.id).collect::<Vec<_>>(),
        vec![zoe.id(), other.id()]
    );
    // Prefixes and accents.
    assert_eq!(q("ZOE MÜL", vec![])[0].id, zoe.id());
    assert_eq!(q("geschaftsf", vec![])[0].id, zoe.id());
    // Every word must match.
    assert!(q("zoe mustermann", vec![]).is_empty());
    // Type filter.
    let only_accounts = q("fabrikam", vec![Kind::Account]);
    assert_eq!(only_accounts.len(), 1);
    assert_eq!(only_accounts[0].id, fab.id());
    assert_eq!(q("fabrikam", vec![]).len(), 2);
    // The account's own name ranks above a contact's company.
    assert_eq!(q("fabrikam", vec![])[0].id, fab.id());
    assert!(q("   ", vec![]).is_empty());
    // Deleted records leave the index.
    s.delete_record(other.id()).unwrap();
    assert_eq!(q("muller", vec![]).len(), 1);
}

/// A rare word with a common one: only records with both, scored like every
/// other search (PostgreSQL checks the rare word's few candidates against the
/// common word one by one); a common word alone keeps the best by score, then
/// id, up to the limit.
fn search_starts_from_the_rarest_word_and_keeps_the_best_by_score_then_id(b: Backend) {
    let s = TestStore::new(b);
    let mut all = Vec::new();
    for i in 0..42 {
        let mut c = contact("Anna", &format!("Person{i}"), "");
        c.company = "Contoso".into();
        if i % 20 == 3 {
            c.job_title = "Zebrafish Keeper".into();
        }
        all.push(s.put_record(Record::Contact(c)).unwrap().id());
    }
    let mut lone = contact("Zebra", "Alone", "");
    lone.company = "Fabrikam".into();
    let lone = s.put_record(Record::Contact(lone)).unwrap().id();
    let q = |t: &str, limit: usize| {
        s.search(&SearchQuery {
            text: t.into(),
            kinds: vec![],
            limit,
        })
        .unwrap()
    };
    let ids = |hits: &[SearchHit]| {
        let mut v: Vec<_> = hits.iter().map(|h| h.id).collect();
        v.sort();
        v
    };
    let mut zebras = vec![all[3], all[23]];
    zebras.sort();
    assert_eq!(ids(&q("zebra contoso", 0)), zebras);
    assert_eq!(ids(&q("contoso zebrafish", 0)), zebras);
    // An exact word scores above a prefix of a longer one.
    let both = q("zebra", 0);
    assert_eq!(both[0].id, lone);
    assert!(both[0].score > both[1].score);
    assert!(q("zebra nothing", 0).is_empty());
    // Equal scores: the smallest ids make the cut, shown by title.
    let mut smallest = all.clone();
    smallest.sort();
    smallest.truncate(5);
    assert_eq!(ids(&q("contoso", 5)), smallest);
    assert_eq!(q("anna contoso", 50).len(), 42);
}

fn timelines_are_newest_first_and_follow_changes(b: Backend) {
    let s = TestStore::new(b);
    let u = s
        .put_record(Record::User(user("Alice", "alice@example.test")))
        .unwrap();
    let uid = UserId::from_uuid(u.id());
    let a = s.put_record(Record::Account(account("Contoso"))).unwrap();
    let b = s.put_record(Record::Account(account("Northwind"))).unwrap();
    let old = s
        .put_activity(email(uid, "<1@x.example>", "old", Some(a.as_ref()), 1))
        .unwrap();
    let new = s
        .put_activity(email(uid, "<2@x.example>", "new", Some(a.as_ref()), 9))
        .unwrap();
    let mid = s
        .put_activity(email(uid, "<3@x.example>", "mid", Some(a.as_ref()), 5))
        .unwrap();
    let subjects = |id| {
        s.activities_of(id, 10)
            .unwrap()
            .into_iter()
            .map(|x| x.subject)
            .collect::<Vec<_>>()
    };
    assert_eq!(subjects(a.id()), ["new", "mid", "old"]);
    assert_eq!(subjects(u.id()), ["new", "mid", "old"]);
    let mut moved = mid.clone();
    moved.regarding = Some(b.as_ref());
    s.put_activity(moved).unwrap();
    assert_eq!(subjects(a.id()), ["new", "old"]);
    assert_eq!(subjects(b.id()), ["mid"]);
    assert_eq!(s.activities_of(a.id(), 1).unwrap()[0].id, new.id);
    let _ = old;
}

fn privileges_settings_and_blobs(b: Backend) {
    let s = TestStore::new(b);
    let u = s
        .put_record(Record::User(user("Dave", "dave@example.test")))
        .unwrap();
    let id = UserId::from_uuid(u.id());
    assert!(s.may_act_for(id, id).unwrap());
    let u = s.set_privilege(id, Privilege::UseApp, false).unwrap();
    assert!(!u.has(Privilege::UseApp));
    assert!(!s.may_act_for(id, id).unwrap());
    assert!(s.set_delegate(id, id, true).is_err());

    assert_eq!(s.settings().unwrap(), OrgSettings::default());
    let mut st = OrgSettings {
        track_appointments_from_non_organizer: true,
        org_domains: vec!["example.test".into()],
        ..Default::default()
    };
    s.put_settings(st.clone()).unwrap();
    assert_eq!(s.settings().unwrap(), st);
    st.sync_interval_minutes = 0;
    assert!(s.put_settings(st).is_err());

    let r = s.put_blob(b"%PDF-1.4 brochure").unwrap();
    assert_eq!(s.blob(&r).unwrap(), b"%PDF-1.4 brochure");
}

fn everything_survives_reopening(b: Backend) {
    let mut s = TestStore::new(b);
    let id = s
        .put_record(Record::Contact(contact(
            "Kept",
            "Person",
            "kept@example.com",
        )))
        .unwrap()
        .id();
    s.reopen();
    assert_eq!(s.record(id).unwrap().unwrap().title(), "Kept Person");
    assert_eq!(
        s.search(&SearchQuery {
            text: "kept".into(),
            ..Default::default()
        })
        .unwrap()
        .len(),
        1
    );
}

#[test]
fn a_second_open_reports_the_lock() {
    let d = tempfile::tempdir().unwrap();
    let _s = SledStore::open(d.path()).unwrap();
    let e = SledStore::open(d.path()).unwrap_err();
    assert!(matches!(e, StoreError::Locked { .. }), "{e}");
    assert!(e.to_string().contains("in use by another crmproxy process"));
}

/// Write a v1 store by hand (single `email` field, no derived indexes) and open it.
#[test]
fn a_v1_store_is_migrated_on_open() {
    let d = tempfile::tempdir().unwrap();
    let id = Uuid::now_v7();
    {
        let db = ::sled::open(d.path().join("db")).unwrap();
        db.open_tree("meta")
            .unwrap()
            .insert("schema_version", &1u32.to_be_bytes())
            .unwrap();
        let row = serde_json::json!({
            "type": "contact", "id": id, "created": "2025-01-01T00:00:00Z", "modified": "2025-01-01T00:00:00Z",
            "first_name": "Old", "last_name": "Timer", "full_name": "Old Timer", "email": "old.timer@example.com"
        });
        db.open_tree("records")
            .unwrap()
            .insert(id.as_bytes(), serde_json::to_vec(&row).unwrap())
            .unwrap();
        db.flush().unwrap();
    }
    let s = SledStore::open(d.path()).unwrap();
    assert_eq!(
        crmproxy::store::sled::migrate::stored_version(&s).unwrap(),
        Some(crmproxy::store::sled::migrate::CURRENT_VERSION)
    );
    let Some(Record::Contact(c)) = s.record(id).unwrap() else {
        panic!("contact lost")
    };
    assert_eq!(c.emails, vec![addr("old.timer@example.com")]);
    assert_eq!(
        s.resolve_address(&addr("OLD.TIMER@example.com"))
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        s.search(&SearchQuery {
            text: "timer".into(),
            ..Default::default()
        })
        .unwrap()[0]
            .id,
        id
    );
}

#[test]
fn a_newer_store_is_refused() {
    let d = tempfile::tempdir().unwrap();
    {
        let db = ::sled::open(d.path().join("db")).unwrap();
        db.open_tree("meta")
            .unwrap()
            .insert("schema_version", &99u32.to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    let e = SledStore::open(d.path()).unwrap_err();
    assert!(
        matches!(e, StoreError::NewerSchema { found: 99, .. }),
        "{e}"
    );
}

fn demo_loads_once_and_is_consistent(b: Backend) {
    let s = TestStore::new(b);
    let summary = demo::load_if_empty(&*s).unwrap().expect("loaded");
    assert!(summary.created > 20);
    assert!(demo::load_if_empty(&*s).unwrap().is_none());
    let alice = s
        .user_by_login(&addr("alice@example.test"))
        .unwrap()
        .unwrap();
    let carol = s
        .user_by_login(&addr("carol@example.test"))
        .unwrap()
        .unwrap();
    let dave = s
        .user_by_login(&addr("dave@example.test"))
        .unwrap()
        .unwrap();
    assert!(s.may_act_for(carol.id, alice.id).unwrap());
    assert!(!s.may_act_for(dave.id, dave.id).unwrap());
    let lit = s.records(Some(Kind::SalesLiterature)).unwrap();
    for r in &lit {
        let Record::SalesLiterature(l) = r else {
            panic!()
        };
        for f in &l.files {
            assert_eq!(s.blob(&f.blob).unwrap().len() as u64, f.blob.size);
        }
    }
    let hits = s
        .search(&SearchQuery {
            text: "zoe".into(),
            kinds: vec![Kind::Contact],
            limit: 5,
        })
        .unwrap();
    assert_eq!(hits[0].title, "Zoë Müller");
    let m = MessageId::parse("demo-0001@mail.contoso.example").unwrap();
    assert!(s.activity_by_message_id(&m).unwrap().is_some());
    assert_eq!(
        s.tracking(alice.id, &m).unwrap().unwrap().requested_by,
        carol.id
    );
}

on_both_backends!(
    everything_survives_reopening,
    writes_are_stamped_and_read_back,
    links_must_exist_and_linked_records_cannot_be_deleted,
    regarding_must_exist_and_keeps_its_record_alive,
    duplicates_are_refused,
    addresses_resolve_case_and_idn_insensitively_in_order,
    search_folds_accents_matches_prefixes_filters_and_ranks,
    search_starts_from_the_rarest_word_and_keeps_the_best_by_score_then_id,
    timelines_are_newest_first_and_follow_changes,
    privileges_settings_and_blobs,
    demo_loads_once_and_is_consistent,
);
