//! Properties: export → import → export is identical, and search finds every
//! record by each of its indexed fields.

use chrono::{TimeZone, Utc};
use crmproxy::store::text::tokens;
use crmproxy::store::*;
use proptest::prelude::*;

fn word() -> impl Strategy<Value = String> {
    "[a-zA-Zàéöüß][a-zà-öø-ÿß]{0,8}"
}

fn words(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(word(), 1..=max).prop_map(|w| w.join(" "))
}

fn local() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9.]{0,8}[a-z0-9]".prop_filter("no double dots", |s| !s.contains(".."))
}

#[derive(Debug, Clone)]
struct Person {
    first: String,
    last: String,
    title: String,
    dept: String,
    company: String,
    city: String,
    email: String,
    with_account: bool,
}

fn person() -> impl Strategy<Value = Person> {
    (
        word(),
        word(),
        words(3),
        words(2),
        words(3),
        words(2),
        local(),
        prop::sample::select(vec!["example.com", "bücher.example", "Example.TEST"]),
        any::<bool>(),
    )
        .prop_map(
            |(first, last, title, dept, company, city, l, dom, with_account)| Person {
                first,
                last,
                title,
                dept,
                company,
                city,
                email: format!("{l}@{dom}"),
                with_account,
            },
        )
}

fn build(store: &SledStore, people: &[Person], subjects: &[String]) -> Vec<Record> {
    let user = store
        .put_record(Record::User(SystemUser {
            id: UserId::new(),
            stamps: Stamps::default(),
            full_name: "Prop User".into(),
            logins: vec![EmailAddress::parse("prop@example.test").unwrap()],
            privileges: [Privilege::UseApp].into_iter().collect(),
            delegates: Default::default(),
            options: Default::default(),
        }))
        .unwrap();
    let mut out = vec![user.clone()];
    for (i, p) in people.iter().enumerate() {
        let account = if p.with_account {
            let a = store
                .put_record(Record::Account(Account {
                    id: AccountId::new(),
                    stamps: Stamps::default(),
                    name: p.company.clone(),
                    website: String::new(),
                    phone: String::new(),
                    emails: vec![],
                    address: PostalAddress {
                        city: p.city.clone(),
                        ..Default::default()
                    },
                    primary_contact: None,
                }))
                .unwrap();
            out.push(a.clone());
            Some(AccountId::from_uuid(a.id()))
        } else {
            None
        };
        let c = store
            .put_record(Record::Contact(Contact {
                id: ContactId::new(),
                stamps: Stamps::default(),
                first_name: p.first.clone(),
                last_name: p.last.clone(),
                full_name: String::new(),
                job_title: p.title.clone(),
                department: p.dept.clone(),
                company: p.company.clone(),
                account,
                emails: vec![EmailAddress::parse(&format!("{i}{}", p.email)).unwrap()],
                business_phone: String::new(),
                mobile_phone: String::new(),
                address: PostalAddress {
                    city: p.city.clone(),
                    ..Default::default()
                },
                categories: Vec::new(),
            }))
            .unwrap();
        out.push(c);
    }
    for (i, s) in subjects.iter().enumerate() {
        let raw = store
            .put_blob(format!("Subject: {s}\r\n\r\nbody {i}").as_bytes())
            .unwrap();
        let a = store
            .put_activity(Activity {
                id: ActivityId::new(),
                stamps: Stamps::default(),
                owner: UserId::from_uuid(user.id()),
                subject: s.clone(),
                regarding: out
                    .get(1)
                    .filter(|r| r.kind().can_be_regarding())
                    .map(|r| r.as_ref()),
                parties: vec![],
                details: ActivityDetails::Email(EmailActivity {
                    content_digest: None,
                    message_id: MessageId::parse(&format!("<p{i}@example.test>")).unwrap(),
                    date: Utc
                        .with_ymd_and_hms(2026, 1, 1 + i as u32 % 28, 0, 0, 0)
                        .unwrap(),
                    direction: Direction::Outgoing,
                    body_text: String::new(),
                    in_reply_to: None,
                    references: vec![],
                    thread_index: None,
                    attachments: vec![],
                    raw: Some(raw),
                    smime: None,
                    correlation: Correlation::None,
                    correlated_with: None,
                }),
            })
            .unwrap();
        store
            .put_tracking(TrackingRecord {
                status: TrackStatus::Tracked,
                activity: Some(a.id),
                ..TrackingRecord::pending(
                    a.owner,
                    MessageId::parse(&format!("<p{i}@example.test>")).unwrap(),
                    a.owner,
                )
            })
            .unwrap();
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn export_import_export_is_identical(people in prop::collection::vec(person(), 0..8), subjects in prop::collection::vec(words(4), 0..4)) {
        let d1 = tempfile::tempdir().unwrap();
        let a = SledStore::open(d1.path()).unwrap();
        build(&a, &people, &subjects);
        let first = a.export().unwrap().to_json();

        let d2 = tempfile::tempdir().unwrap();
        let b = SledStore::open(d2.path()).unwrap();
        let parsed = ExportBundle::from_json(&first).unwrap();
        let sum = b.import_bundle(&parsed).unwrap();
        prop_assert_eq!(sum.updated, 0);
        let second = b.export().unwrap().to_json();
        prop_assert_eq!(&first, &second);
        // Importing again into the same store changes nothing.
        let again = b.import_bundle(&parsed).unwrap();
        prop_assert_eq!(again.created + again.updated, 0);
        prop_assert_eq!(b.export().unwrap().to_json(), first);
    }

    #[test]
    fn search_finds_each_record_by_each_indexed_field(people in prop::collection::vec(person(), 1..8), subjects in prop::collection::vec(words(4), 0..3)) {
        let d = tempfile::tempdir().unwrap();
        let s = SledStore::open(d.path()).unwrap();
        // Loaded before the writes: the in-memory index must follow each commit.
        s.warm_search_index().unwrap();
        let records = build(&s, &people, &subjects);
        let find = |text: &str, kind: Kind| s.search(&SearchQuery { text: text.into(), kinds: vec![kind], limit: 10_000 }).unwrap();
        for r in &records {
            let fields: Vec<String> = match r {
                Record::Contact(c) => {
                    let mut f = vec![c.full_name.clone(), c.first_name.clone(), c.last_name.clone(), c.job_title.clone(), c.department.clone(), c.company.clone(), c.address.city.clone()];
                    f.extend(c.emails.iter().map(|e| e.as_str().to_string()));
                    f
                }
                Record::Account(a) => vec![a.name.clone(), a.address.city.clone()],
                Record::User(u) => vec![u.full_name.clone()],
                _ => vec![],
            };
            for f in fields.into_iter().filter(|f| !tokens(f).is_empty()) {
                let hits = find(&f, r.kind());
                prop_assert!(hits.iter().any(|h| h.id == r.id()), "{:?} not found by {:?}", r.title(), f);
                // A prefix of the field's first word finds it too.
                let first = tokens(&f).remove(0);
                let prefix: String = first.chars().take(2).collect();
                prop_assert!(find(&prefix, r.kind()).iter().any(|h| h.id == r.id()), "{:?} not found by prefix {:?}", r.title(), prefix);
            }
        }
        for subject in subjects.iter().filter(|t| !tokens(t).is_empty()) {
            prop_assert!(!find(subject, Kind::Email).is_empty(), "no email found by subject {:?}", subject);
        }
        // The copy that followed the writes equals one loaded from disk.
        let all = |s: &SledStore, w: &str| {
            let mut v: Vec<_> = s.search(&SearchQuery { text: w.into(), kinds: vec![], limit: 10_000 }).unwrap().into_iter().map(|h| (h.id, h.score)).collect();
            v.sort();
            v
        };
        let probes: Vec<String> = people.iter().flat_map(|p| [p.first.clone(), p.company.clone()]).collect();
        let live: Vec<_> = probes.iter().map(|w| all(&s, w)).collect();
        drop(s);
        let reopened = SledStore::open(d.path()).unwrap();
        let loaded: Vec<_> = probes.iter().map(|w| all(&reopened, w)).collect();
        prop_assert_eq!(live, loaded);
    }
}
