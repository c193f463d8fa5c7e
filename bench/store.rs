//! Store benchmark (SPEC section 11): with N generated contacts (default 100,000;
//! `CRMPROXY_BENCH_CONTACTS` to change), measure the bulk import rate (the CLI's
//! import path), e-mail lookup and search latency (p50/p99), tracking writes,
//! store size on disk, RSS and the time to the first answer after a start, on
//! sled and on PostgreSQL (`CRMPROXY_BENCH_BACKEND=sled|postgres|both`, default
//! both; PostgreSQL is a private server started like the tests', or
//! `CRMPROXY_BENCH_PG_URL`). Prints a markdown table per backend.
//!
//! Run: `cargo bench --bench store`

use chrono::Utc;
use crmproxy::formats::import::{apply_rows, Row};
use crmproxy::store::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "../tests/common/postgres.rs"]
mod pg;

/// One backend under test: how to open it (again) and what it takes on disk.
enum Place {
    Sled(tempfile::TempDir),
    Postgres(String),
}

impl Place {
    fn name(&self) -> &'static str {
        match self {
            Place::Sled(_) => "sled",
            Place::Postgres(_) => "PostgreSQL (loopback)",
        }
    }
    /// The store, and the same store typed when it is PostgreSQL (to count its
    /// statements).
    fn open(&self) -> (Arc<dyn CrmStore>, Option<Arc<PgStore>>) {
        match self {
            Place::Sled(d) => (Arc::new(SledStore::open(d.path()).unwrap()), None),
            Place::Postgres(url) => {
                let pg = Arc::new(PgStore::open(&PgOptions::new(url)).unwrap());
                (pg.clone(), Some(pg))
            }
        }
    }
    /// Bytes on disk (the store must be closed: sled opens once), and for sled
    /// where they come from: the search snapshot beside the database, and each
    /// tree's live keys and values (what sled's log holds beyond them is its own
    /// overhead and not yet reclaimed space).
    fn size(&self) -> (u64, String) {
        match self {
            Place::Sled(d) => {
                let s = SledStore::open(d.path()).unwrap();
                let snapshot =
                    std::fs::metadata(d.path().join("search.idx")).map_or(0, |m| m.len());
                let mut trees = s.tree_sizes().unwrap();
                trees.sort_by_key(|t| std::cmp::Reverse(t.2));
                let live: u64 = trees.iter().map(|t| t.2).sum();
                let top: Vec<String> = trees
                    .iter()
                    .take(6)
                    .map(|(name, n, b)| format!("{name} {n} / {:.1}", *b as f64 / MIB))
                    .collect();
                let detail = format!(
                    "search snapshot {:.1} MiB (not counted above); live keys + values {:.1} MiB: {}",
                    snapshot as f64 / MIB,
                    live as f64 / MIB,
                    top.join(", ")
                );
                (s.size_on_disk().unwrap(), detail)
            }
            Place::Postgres(url) => (
                PgStore::open(&PgOptions::new(url))
                    .unwrap()
                    .size_on_disk()
                    .unwrap(),
                String::new(),
            ),
        }
    }
}

/// Proportional set size of the private PostgreSQL's processes, in KiB (shared
/// buffers counted once).
fn server_pss_kib(postmaster: u32) -> u64 {
    let mut pids = vec![postmaster];
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(postmaster) {
            pids.push(pid);
        }
    }
    pids.iter()
        .map(|p| {
            std::fs::read_to_string(format!("/proc/{p}/smaps_rollup"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("Pss:"))
                        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
                })
                .unwrap_or(0)
        })
        .sum()
}

const FIRST: &[&str] = &[
    "Ada", "Alan", "Anna", "Björn", "Carla", "Chen", "Dario", "Elena", "Émile", "Fatima", "Felix",
    "Grace", "Hana", "Igor", "Ines", "Jamal", "José", "Julia", "Kenji", "Lena", "Luca", "Maria",
    "Mei", "Nadia", "Omar", "Paula", "Priya", "Rafael", "Sara", "Søren", "Tomás", "Uma", "Victor",
    "Wei", "Yara", "Zoë",
];
const LAST: &[&str] = &[
    "Abbott",
    "Álvarez",
    "Bauer",
    "Chen",
    "Dubois",
    "Eriksen",
    "Fischer",
    "García",
    "Hoffmann",
    "Ito",
    "Jensen",
    "Kowalski",
    "Lefèvre",
    "Müller",
    "Nakamura",
    "Novak",
    "Okafor",
    "Petrov",
    "Quinn",
    "Rossi",
    "Schmidt",
    "Silva",
    "Tanaka",
    "Umarov",
    "Virtanen",
    "Weber",
    "Xu",
    "Yilmaz",
    "Zimmermann",
    "O'Brien",
    "Nguyen",
    "Kim",
];
const COMPANY: &[&str] = &[
    "Contoso",
    "Fabrikam",
    "Northwind",
    "Adventure Works",
    "Litware",
    "Tailspin",
    "Wingtip",
    "Proseware",
    "Woodgrove",
    "Lucerne",
    "Alpine Ski",
    "Coho Winery",
    "Fourth Coffee",
    "Humongous",
    "Margie's Travel",
    "Trey Research",
];
const TITLE: &[&str] = &[
    "Purchasing Manager",
    "CFO",
    "IT Director",
    "Sales Representative",
    "Engineer",
    "Head of Logistics",
    "Analyst",
    "CEO",
];
const DEPT: &[&str] = &[
    "Procurement",
    "Finance",
    "IT",
    "Sales",
    "Operations",
    "Logistik",
    "Marketing",
    "Legal",
];
const CITY: &[&str] = &[
    "Redmond",
    "München",
    "London",
    "Paris",
    "Tokyo",
    "São Paulo",
    "Zürich",
    "Kraków",
    "Oslo",
    "Austin",
];

/// A small deterministic generator (no dependency needed).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[(self.next() % v.len() as u64) as usize]
    }
}

fn contact(rng: &mut Rng, i: usize) -> Contact {
    let first = rng.pick(FIRST);
    let last = rng.pick(LAST);
    let company = format!("{} {}", rng.pick(COMPANY), i % 997);
    Contact {
        id: ContactId::new(),
        stamps: Stamps::default(),
        first_name: first.into(),
        last_name: last.into(),
        full_name: String::new(),
        job_title: rng.pick(TITLE).into(),
        department: rng.pick(DEPT).into(),
        company,
        account: None,
        emails: vec![
            EmailAddress::parse(&format!("contact{i}@company{}.example", i % 997)).unwrap(),
        ],
        business_phone: format!("+1 555 {:07}", i),
        mobile_phone: String::new(),
        address: PostalAddress {
            city: rng.pick(CITY).into(),
            ..Default::default()
        },
        categories: Vec::new(),
    }
}

const MIB: f64 = 1024.0 * 1024.0;

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn micros(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let n: usize = std::env::var("CRMPROXY_BENCH_CONTACTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let which = std::env::var("CRMPROXY_BENCH_BACKEND").unwrap_or_else(|_| "both".into());
    if which == "sled" || which == "both" {
        bench(n, Place::Sled(tempfile::tempdir().unwrap()), None);
    }
    if which == "postgres" || which == "both" {
        match std::env::var("CRMPROXY_BENCH_PG_URL") {
            Ok(url) => bench(n, Place::Postgres(url), None),
            Err(_) => {
                let server = pg::postgres();
                bench(n, Place::Postgres(server.fresh_db()), Some(server.pid));
            }
        }
    }
}

fn bench(n: usize, place: Place, server: Option<u32>) {
    let rss_before = rss_kib("VmRSS:");
    let (store, _) = place.open();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);

    // Bulk import through the CLI's import path (matching by address, then writing).
    let rows: Vec<Row> = (0..n)
        .map(|i| Row::Record {
            place: format!("line {}", i + 2),
            record: Record::Contact(contact(&mut rng, i)),
        })
        .collect();
    // `CRMPROXY_BENCH_REUSE=1` with `CRMPROXY_BENCH_PG_URL`: a database that an
    // earlier run filled is measured again without importing (a 1,000,000-contact
    // import takes a quarter of an hour); the rows are still generated, so the
    // searches below are the same.
    let reuse = std::env::var("CRMPROXY_BENCH_REUSE").is_ok_and(|v| v == "1")
        && store.count_records(Kind::Contact).unwrap() >= n;
    let t = Instant::now();
    if !reuse {
        let summary = apply_rows(store.as_ref(), rows, &mut |_, _| {}).unwrap();
        assert_eq!(summary.created, n);
    }
    let import_secs = t.elapsed().as_secs_f64();
    // PostgreSQL: what autovacuum does within a minute of a bulk import (sets the
    // visibility map, so index-only scans skip the table; fresh statistics). The
    // measures below are of a CRM in use, not of one still being vacuumed.
    let vacuum_secs = match &place {
        Place::Postgres(url) => {
            let t = Instant::now();
            let mut c = ::postgres::Client::connect(url, ::postgres::NoTls).unwrap();
            c.batch_execute("VACUUM (ANALYZE)").unwrap();
            Some(t.elapsed().as_secs_f64())
        }
        Place::Sled(_) => None,
    };

    // E-mail lookup: known addresses in random order, some unknown, mixed case.
    let mut lookups = Vec::new();
    for k in 0..20_000 {
        let i = (rng.next() % n as u64) as usize;
        let a = if k % 10 == 0 {
            format!("nobody{i}@company{}.example", i % 997)
        } else {
            format!("Contact{i}@COMPANY{}.example", i % 997)
        };
        let a = EmailAddress::parse(&a).unwrap();
        let t = Instant::now();
        let r = store.resolve_address(&a).unwrap();
        lookups.push(t.elapsed());
        assert_eq!(r.len(), usize::from(k % 10 != 0));
    }

    // A start: open again, then the first search (sled loads its search index
    // on first use, or when `serve` warms it).
    let reopen = Instant::now();
    drop(store);
    let (store, pg) = place.open();
    let open_secs = reopen.elapsed().as_secs_f64();
    let t = Instant::now();
    store
        .search(&SearchQuery {
            text: "müller".into(),
            kinds: vec![],
            limit: 20,
        })
        .unwrap();
    let warm_secs = t.elapsed().as_secs_f64();

    // Search: what a user types in the pane's search box.
    let mut searches = Vec::new();
    let mut prefix_searches = Vec::new();
    for k in 0..2_000 {
        let q = match k % 4 {
            0 => format!("{} {}", rng.pick(FIRST), rng.pick(LAST)),
            1 => format!("{} {}", rng.pick(LAST), rng.pick(COMPANY)),
            2 => format!("{} {}", rng.pick(COMPANY), (rng.next() % 997)),
            _ => rng.pick(LAST).chars().take(3).collect::<String>(),
        };
        let t = Instant::now();
        let hits = store
            .search(&SearchQuery {
                text: q.clone(),
                kinds: vec![],
                limit: 20,
            })
            .unwrap();
        let e = t.elapsed();
        if k % 4 == 3 {
            prefix_searches.push(e)
        } else {
            searches.push(e)
        }
        assert!(!hits.is_empty() || k % 4 != 3, "no hit for {q:?}");
    }

    // Tracking writes: one email activity and its tracking record, each durable.
    // Unique per run: a reused database has the earlier runs' user and emails.
    let run = Utc::now().timestamp_millis();
    let owner = store
        .put_record(Record::User(SystemUser {
            id: UserId::new(),
            stamps: Stamps::default(),
            full_name: "Bench User".into(),
            logins: vec![EmailAddress::parse(&format!("bench{run}@example.test")).unwrap()],
            imap_logins: Vec::new(),
            privileges: [Privilege::UseApp].into_iter().collect(),
            delegates: Default::default(),
            options: Default::default(),
        }))
        .unwrap();
    let owner = UserId::from_uuid(owner.id());
    let email = |i: usize, store: &dyn CrmStore| {
        let m = MessageId::parse(&format!("bench{i}.{run}@example.test")).unwrap();
        let who = store
            .resolve_address(
                &EmailAddress::parse(&format!("contact{i}@company{}.example", i % 997)).unwrap(),
            )
            .unwrap();
        let a = Activity {
            id: ActivityId::new(),
            stamps: Stamps::default(),
            owner,
            subject: format!("Quote {i}"),
            regarding: who.first().copied(),
            parties: vec![Party {
                role: PartyRole::Sender,
                address: None,
                name: String::new(),
                records: who,
            }],
            details: ActivityDetails::Email(EmailActivity {
                content_digest: None,
                message_id: m.clone(),
                date: Utc::now(),
                direction: Direction::Incoming,
                body_text: "Hello".into(),
                in_reply_to: None,
                references: vec![],
                thread_index: None,
                attachments: vec![],
                raw: None,
                smime: None,
                correlation: Correlation::None,
                correlated_with: None,
            }),
        };
        let t = TrackingRecord {
            status: TrackStatus::Tracked,
            activity: Some(a.id),
            ..TrackingRecord::pending(owner, m, owner)
        };
        (Some(a), t)
    };
    let tracked = 1_000;
    let t = Instant::now();
    for i in 0..tracked {
        let (a, tr) = email(i, store.as_ref());
        store.track(a, tr).unwrap();
    }
    let track_rate = tracked as f64 / t.elapsed().as_secs_f64();
    let batches = 20;
    let sent_before = pg.as_ref().map(|p| p.statements_sent());
    let t = Instant::now();
    for b in 0..batches {
        let items = (0..500)
            .map(|k| email(tracked + b * 500 + k, store.as_ref()))
            .collect();
        store.track_batch(items).unwrap();
    }
    let batch_rate = (batches * 500) as f64 / t.elapsed().as_secs_f64();
    // Statements per email tracked in bulk (each `resolve_address` of the loop
    // above is one of them).
    let per_email = sent_before
        .zip(pg.as_ref().map(|p| p.statements_sent()))
        .map(|(b, a)| (a - b) as f64 / (batches * 500) as f64);
    drop(pg);

    let rss_client = rss_kib("VmRSS:");
    drop(store);
    let (size, size_detail) = place.size();
    println!();
    println!(
        "| store benchmark, {} ({n} contacts) | result | target |",
        place.name()
    );
    println!("|---|---|---|");
    println!(
        "| bulk import (CLI path, matching + writing) | {} | |",
        if reuse {
            "(reused an earlier run's database)".to_string()
        } else {
            format!(
                "{:.0} contacts/s ({import_secs:.1} s)",
                n as f64 / import_secs
            )
        }
    );
    println!(
        "| a start: open the store / then the first search answers | {open_secs:.2} s / {warm_secs:.2} s | first answer < 1 s |"
    );
    println!(
        "| e-mail lookup p50 / p99 | {} / {} | p99 < 1 ms |",
        micros(percentile(&mut lookups, 0.5)),
        micros(percentile(&mut lookups, 0.99))
    );
    println!(
        "| search (words) p50 / p99 | {} / {} | < 20 ms |",
        micros(percentile(&mut searches, 0.5)),
        micros(percentile(&mut searches, 0.99))
    );
    println!(
        "| search (3-letter prefix) p50 / p99 | {} / {} | < 20 ms |",
        micros(percentile(&mut prefix_searches, 0.5)),
        micros(percentile(&mut prefix_searches, 0.99))
    );
    println!("| track one email at a time (`track`: activity + tracking record, one flush) | {track_rate:.0} emails/s | |");
    println!("| track in bulk (`track_batch` of 500) | {batch_rate:.0} emails/s | ≥ 2,000/s |");
    if let Some(per_email) = per_email {
        println!(
            "| statements per email tracked in bulk (with its address lookup) | {per_email:.2} | |"
        );
    }
    if let Some(v) = vacuum_secs {
        println!("| VACUUM ANALYZE after the import (autovacuum's work, before the measures) | {v:.1} s | |");
    }
    println!("| store size on disk | {:.1} MiB | |", size as f64 / MIB);
    if !size_detail.is_empty() {
        println!("| where it goes (tree: entries / MiB) | {size_detail} | |");
    }
    println!(
        "| RSS of this process: added by the store / peak | {:.0} / {:.0} MiB | |",
        rss_client.saturating_sub(rss_before) as f64 / 1024.0,
        rss_kib("VmHWM:") as f64 / 1024.0
    );
    println!(
        "| load average at the end (1 / 5 / 15 min) | {} | |",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" / ")
    );
    if let Some(pid) = server {
        println!(
            "| PostgreSQL server processes (PSS) | {:.0} MiB | |",
            server_pss_kib(pid) as f64 / 1024.0
        );
    }
}
