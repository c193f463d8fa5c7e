//! Properties: export → import → export is identical, and search finds every
//! record by each of its indexed fields.

use chrono::{TimeZone, Utc};
use crmproxy::store::text::tokens;
use crmproxy::store::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

#[path = "common/backend.rs"]
mod backend;
use backend::{Backend, TestStore};

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

fn build(store: &dyn CrmStore, people: &[Person], subjects: &[String]) -> Vec<Record> {
    let user = store
        .put_record(Record::User(SystemUser {
            id: UserId::new(),
            stamps: Stamps::default(),
            full_name: "Prop User".into(),
            logins: vec![EmailAddress::parse("prop@example.test").unwrap()],
            imap_logins: Vec::new(),
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

fn roundtrip(bk: Backend, people: &[Person], subjects: &[String]) -> Result<(), TestCaseError> {
    let a = TestStore::new(bk);
    build(&*a, people, subjects);
    let first = a.export().unwrap().to_json();

    let b = a.another();
    let parsed = ExportBundle::from_json(&first).unwrap();
    let sum = b.import_bundle(&parsed).unwrap();
    prop_assert_eq!(sum.updated, 0);
    let second = b.export().unwrap().to_json();
    prop_assert_eq!(&first, &second);
    // Importing again into the same store changes nothing.
    let again = b.import_bundle(&parsed).unwrap();
    prop_assert_eq!(again.created + again.updated, 0);
    prop_assert_eq!(b.export().unwrap().to_json(), first);
    Ok(())
}

/// Every hit (id, score) for `w`, sorted.
fn all(s: &dyn CrmStore, w: &str) -> Vec<(uuid::Uuid, u32)> {
    let mut v: Vec<_> = s
        .search(&SearchQuery {
            text: w.into(),
            kinds: vec![],
            limit: 10_000,
        })
        .unwrap()
        .into_iter()
        .map(|h| (h.id, h.score))
        .collect();
    v.sort();
    v
}

fn finds(bk: Backend, people: &[Person], subjects: &[String]) -> Result<(), TestCaseError> {
    let mut s = TestStore::new(bk);
    // Loaded before the writes: an in-memory index must follow each commit.
    s.warm_up().unwrap();
    let records = build(&*s, people, subjects);
    let find = |s: &dyn CrmStore, text: &str, kind: Kind| {
        s.search(&SearchQuery {
            text: text.into(),
            kinds: vec![kind],
            limit: 10_000,
        })
        .unwrap()
    };
    for r in &records {
        let fields: Vec<String> = match r {
            Record::Contact(c) => {
                let mut f = vec![
                    c.full_name.clone(),
                    c.first_name.clone(),
                    c.last_name.clone(),
                    c.job_title.clone(),
                    c.department.clone(),
                    c.company.clone(),
                    c.address.city.clone(),
                ];
                f.extend(c.emails.iter().map(|e| e.as_str().to_string()));
                f
            }
            Record::Account(a) => vec![a.name.clone(), a.address.city.clone()],
            Record::User(u) => vec![u.full_name.clone()],
            _ => vec![],
        };
        for f in fields.into_iter().filter(|f| !tokens(f).is_empty()) {
            let hits = find(&*s, &f, r.kind());
            prop_assert!(
                hits.iter().any(|h| h.id == r.id()),
                "{:?} not found by {:?}",
                r.title(),
                f
            );
            // A prefix of the field's first word finds it too.
            let first = tokens(&f).remove(0);
            let prefix: String = first.chars().take(2).collect();
            prop_assert!(
                find(&*s, &prefix, r.kind()).iter().any(|h| h.id == r.id()),
                "{:?} not found by prefix {:?}",
                r.title(),
                prefix
            );
        }
    }
    for subject in subjects.iter().filter(|t| !tokens(t).is_empty()) {
        prop_assert!(
            !find(&*s, subject, Kind::Email).is_empty(),
            "no email found by subject {:?}",
            subject
        );
    }
    // What followed the writes equals what a fresh open answers.
    let probes: Vec<String> = people
        .iter()
        .flat_map(|p| [p.first.clone(), p.company.clone()])
        .collect();
    let live: Vec<_> = probes.iter().map(|w| all(&*s, w)).collect();
    s.reopen();
    let loaded: Vec<_> = probes.iter().map(|w| all(&*s, w)).collect();
    prop_assert_eq!(live, loaded);
    Ok(())
}

/// The same CRM (sled's, exported, imported into PostgreSQL) answers every
/// search with the same records and the same scores on both backends.
fn same_answers(people: &[Person], subjects: &[String]) -> Result<(), TestCaseError> {
    let sled = TestStore::new(Backend::Sled);
    build(&*sled, people, subjects);
    let pg = TestStore::new(Backend::Postgres);
    pg.import_bundle(&sled.export().unwrap()).unwrap();
    let mut probes: Vec<String> = people
        .iter()
        .flat_map(|p| [p.first.clone(), p.last.clone(), p.company.clone()])
        .chain(subjects.iter().cloned())
        .collect();
    probes.extend(
        probes
            .clone()
            .iter()
            .map(|w| w.chars().take(2).collect::<String>()),
    );
    for w in &probes {
        prop_assert_eq!(all(&*sled, w), all(&*pg, w), "search {:?}", w);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn export_import_export_is_identical_on_sled(people in prop::collection::vec(person(), 0..8), subjects in prop::collection::vec(words(4), 0..4)) {
        roundtrip(Backend::Sled, &people, &subjects)?;
    }

    #[test]
    fn export_import_export_is_identical_on_postgres(people in prop::collection::vec(person(), 0..8), subjects in prop::collection::vec(words(4), 0..4)) {
        roundtrip(Backend::Postgres, &people, &subjects)?;
    }

    #[test]
    fn search_finds_each_record_by_each_indexed_field_on_sled(people in prop::collection::vec(person(), 1..8), subjects in prop::collection::vec(words(4), 0..3)) {
        finds(Backend::Sled, &people, &subjects)?;
    }

    #[test]
    fn search_finds_each_record_by_each_indexed_field_on_postgres(people in prop::collection::vec(person(), 1..8), subjects in prop::collection::vec(words(4), 0..3)) {
        finds(Backend::Postgres, &people, &subjects)?;
    }

    #[test]
    fn both_backends_give_the_same_search_answers(people in prop::collection::vec(person(), 1..8), subjects in prop::collection::vec(words(4), 0..3)) {
        same_answers(&people, &subjects)?;
    }
}
