//! PostgreSQL's search of broad words (one letter, a digit, three-letter
//! prefixes: hundreds of ties at every score) answers exactly as sled's, with
//! and without a kinds filter and at limits that cut through a tie, through
//! updates, deletes and bulk tracking, and after the migration that builds the
//! index it reads in a database an older crmproxy filled; and a tie with the
//! stopping bound is not taken for the best while smaller ids are unread.

mod store_support;

use crmproxy::store::*;
use store_support::*;
use uuid::Uuid;

/// Picks words by a linear congruential sequence: the same corpus on every run.
struct Picker(u64);
impl Picker {
    fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        v[((self.0 >> 33) % v.len() as u64) as usize]
    }
}

/// Few words, many of them one letter or sharing a first letter, in fields of
/// different weights: most records reach "o", "b" or "5", most scores tie.
const NAMES: &[&str] = &["O", "Ola", "Omar", "Bo", "B", "Oslo", "Obi", "Bauer", "Ob"];
const LAST: &[&str] = &["O'Brien", "Bauer", "Brien", "Ob", "Osborne", "Bob", "5"];
const COMPANY: &[&str] = &["Margie's Travel 5", "O & B", "Bob's 55", "Oslo Boats", ""];
const CITY: &[&str] = &["Oslo", "Bonn", "Ob", "", "555"];

fn corpus(s: &dyn CrmStore, other: &dyn CrmStore) {
    let mut rng = Picker(0x2545_f491_4f6c_dd1d);
    let owner = user("O B Owner", "owner@example.com");
    let owner_id = owner.id;
    let r = Record::User(owner);
    s.put_record(r.clone()).unwrap();
    other.put_record(r).unwrap();
    for i in 0..240 {
        let r = if i % 5 == 4 {
            let mut a = account(&format!("{} {}", rng.pick(COMPANY), rng.pick(NAMES)));
            a.address.city = rng.pick(CITY).into();
            Record::Account(a)
        } else {
            let mut c = contact(
                rng.pick(NAMES),
                rng.pick(LAST),
                &format!("o{i}@b{}.example", i % 7),
            );
            c.company = rng.pick(COMPANY).into();
            c.job_title = rng.pick(&["Boss", "Operator", "", "B"]).into();
            c.address.city = rng.pick(CITY).into();
            Record::Contact(c)
        };
        s.put_record(r.clone()).unwrap();
        other.put_record(r).unwrap();
    }
    for i in 0..30 {
        let subject = format!("{} {} {}", rng.pick(NAMES), rng.pick(LAST), i % 3);
        let a = email(owner_id, &format!("<m{i}@o.example>"), &subject, None, 1);
        s.put_activity(a.clone()).unwrap();
        other.put_activity(a).unwrap();
    }
}

const QUERIES: &[&str] = &[
    "o",
    "b",
    "5",
    "o b",
    "b o",
    "O'B",
    "o b 5",
    "ob",
    "obr",
    "bau o",
    "s",
    "m",
    "o x",
    "x",
    "o5",
    "ola b",
    "5 55",
    "bo b o",
    "oslo b",
    "obrien 5",
    "margie s",
    "bauer",
    "osl",
    "oslo bo",
    "brien o",
    "margie travel 5",
    "omar bauer",
    "bob o b 5",
];

fn hits(s: &dyn CrmStore, text: &str, kinds: &[Kind], limit: usize) -> Vec<(Uuid, Kind, u32)> {
    s.search(&SearchQuery {
        text: text.into(),
        kinds: kinds.to_vec(),
        limit,
    })
    .unwrap()
    .into_iter()
    .map(|h| (h.id, h.kind, h.score))
    .collect()
}

fn same_answers(sled: &dyn CrmStore, pg: &dyn CrmStore) {
    let kinds: [&[Kind]; 4] = [
        &[],
        &[Kind::Contact],
        &[Kind::Account, Kind::Email],
        &[Kind::Lead],
    ];
    for q in QUERIES {
        for k in kinds {
            for limit in [1, 3, 20, 57, 10_000] {
                assert_eq!(
                    hits(pg, q, k, limit),
                    hits(sled, q, k, limit),
                    "{q:?} kinds {k:?} limit {limit}"
                );
            }
        }
    }
}

/// Does the database have the index one-letter words are read from?
fn has_initial_index(url: &str) -> bool {
    let mut c = ::postgres::Client::connect(url, ::postgres::NoTls).unwrap();
    c.query_one("SELECT to_regclass('postings_initial') IS NOT NULL", &[])
        .unwrap()
        .get(0)
}

#[test]
fn broad_words_answer_as_on_sled_through_writes_and_the_migration() {
    let sled = TestStore::new(Backend::Sled);
    let mut pg = TestStore::new(Backend::Postgres);
    corpus(&*sled, &*pg);
    let url = pg.url.clone().unwrap();
    assert!(has_initial_index(&url));
    same_answers(&*sled, &*pg);

    // Updates (other words), deletes, and a tracking batch replacing emails.
    let all = sled.records(Some(Kind::Contact)).unwrap();
    for (n, r) in all.iter().enumerate().take(60) {
        match (n % 3, r) {
            (0, Record::Contact(c)) => {
                let mut c = c.clone();
                c.last_name = "Boyle".into();
                c.first_name = if n % 2 == 0 { "Orla" } else { "B" }.into();
                sled.put_record(Record::Contact(c.clone())).unwrap();
                pg.put_record(Record::Contact(c)).unwrap();
            }
            (1, r) => {
                sled.delete_record(r.id()).unwrap();
                pg.delete_record(r.id()).unwrap();
            }
            _ => {}
        }
    }
    // A tracking batch: new emails, one of them replacing an email's subject.
    let owner = UserId::from_uuid(sled.records(Some(Kind::User)).unwrap()[0].id());
    let mut batch = Vec::new();
    for i in 0..40 {
        let msg = format!("<t{i}@o.example>");
        let a = email(owner, &msg, &format!("O b {} Bo", i % 4), None, 2);
        let t = TrackingRecord {
            status: TrackStatus::Tracked,
            activity: Some(a.id),
            ..TrackingRecord::pending(owner, MessageId::parse(&msg).unwrap(), owner)
        };
        batch.push((Some(a), t));
    }
    for s in [&*sled, &*pg] {
        s.track_batch(batch.clone()).unwrap();
    }
    for (a, _) in batch.iter_mut().take(10) {
        if let Some(a) = a {
            a.subject = "Oslo".into();
        }
    }
    for s in [&*sled, &*pg] {
        s.track_batch(batch[..10].to_vec()).unwrap();
    }
    same_answers(&*sled, &*pg);

    // A database an older crmproxy (schema v5, no `postings_initial`) filled:
    // opening it builds the index from the postings; the answers stay the same.
    let mut c = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
    c.batch_execute("DROP INDEX postings_initial; UPDATE crm_schema SET version = 5")
        .unwrap();
    drop(c);
    assert!(!has_initial_index(&url));
    pg.reopen();
    assert!(has_initial_index(&url));
    same_answers(&*sled, &*pg);
}

/// The one-letter search's stop on a tie: after the first read of "o" and "b"
/// (64 postings each) the best full match seen ties the bound, yet rows of the
/// same score with smaller ids are still unread. `K` scores 52 (first name "O"
/// 42, title "Boss" 10) with the largest id; `U` rows score 52 too ("O B" in the
/// company, 26 + 26) with smaller ids, past the 64 rows of "O" and of "B" alone
/// that fill each list's first read; the best is the first `U`, not `K`.
#[test]
fn a_tie_with_the_bound_waits_for_the_smaller_ids_unread() {
    let sled = TestStore::new(Backend::Sled);
    let pg = TestStore::new(Backend::Postgres);
    let mut n = 0u128;
    let mut person = |first: &str, title: &str, company: &str| {
        n += 1;
        let mut c = contact(first, "Quist", "");
        c.id = ContactId::from_uuid(Uuid::from_u128(n << 64));
        c.job_title = title.into();
        c.company = company.into();
        let r = Record::Contact(c);
        sled.put_record(r.clone()).unwrap();
        pg.put_record(r).unwrap();
    };
    for _ in 0..70 {
        person("Zed", "", "O");
    }
    for _ in 0..70 {
        person("Zed", "", "B");
    }
    for _ in 0..5 {
        person("Zed", "", "O B");
    }
    person("O", "Boss", "");
    for limit in [1, 2, 5, 6, 20] {
        let want = hits(&*sled, "o b", &[], limit);
        assert_eq!(want[0].2, 52);
        assert_eq!(hits(&*pg, "o b", &[], limit), want, "limit {limit}");
    }
}
