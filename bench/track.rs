//! The tracking benchmark (SPEC section 11: "tracking ≥ 2,000 emails/s in bulk"),
//! not a test: `cargo bench --bench track`.
//!
//! A sled store in a temp dir with 10,000 contacts; N distinct messages (from
//! contacts, a third of them replies to earlier ones so correlation runs) tracked
//! one by one with `Engine::track` (every call durable: blob fsynced, one atomic
//! store write flushed), then in bulk with `Engine::track_batch`; and the cost of
//! `Engine::headers`, which the proxy calls per FETCH. Prints a markdown table.
//!
//! Environment: BENCH_EMAILS (default 5000), BENCH_CONTACTS (10000).

use std::sync::Arc;
use std::time::Instant;

use crmproxy::config::TrackingConfig;
use crmproxy::store::*;
use crmproxy::track::{Engine, TrackRequest, TrackSource};

fn env_num(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn message(i: usize, contacts: usize) -> Vec<u8> {
    let c = i * 7919 % contacts;
    let reply = if i % 3 == 2 {
        format!("In-Reply-To: <bench-{}@contoso.example>\r\n", i - 1)
    } else {
        String::new()
    };
    format!(
        "Message-ID: <bench-{i}@contoso.example>\r\nDate: Tue, 24 Nov 2026 09:15:00 +0000\r\n\
From: Contact {c} <contact{c}@fabrikam.example>\r\nTo: Alice <alice@contoso.example>\r\n\
Cc: contact{}@fabrikam.example\r\n{reply}Subject: Order {i}\r\nMIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\nHello Alice,\r\n{}\r\n",
        (c + 1) % contacts,
        "please confirm the order. ".repeat(20)
    )
    .into_bytes()
}

fn main() {
    let n = env_num("BENCH_EMAILS", 5000);
    let contacts = env_num("BENCH_CONTACTS", 10_000);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let alice = store
        .put_record(Record::User(SystemUser {
            id: UserId::new(),
            stamps: Stamps::default(),
            full_name: "Alice".into(),
            logins: vec![EmailAddress::parse("alice@contoso.example").unwrap()],
            imap_logins: Vec::new(),
            privileges: [Privilege::UseApp].into_iter().collect(),
            delegates: Default::default(),
            options: Default::default(),
        }))
        .unwrap();
    let records: Vec<Record> = (0..contacts)
        .map(|c| {
            Record::Contact(Contact {
                id: ContactId::new(),
                stamps: Stamps::default(),
                first_name: "Contact".into(),
                last_name: c.to_string(),
                full_name: String::new(),
                job_title: String::new(),
                department: String::new(),
                company: "Fabrikam".into(),
                account: None,
                emails: vec![EmailAddress::parse(&format!("contact{c}@fabrikam.example")).unwrap()],
                business_phone: String::new(),
                mobile_phone: String::new(),
                address: PostalAddress::default(),
                categories: Vec::new(),
            })
        })
        .collect();
    store.put_records_bulk(records, &mut |_| {}).unwrap();
    let engine = Engine::new(store.clone(), TrackingConfig::default()).unwrap();
    let actor = engine.actor("alice@contoso.example", "").unwrap();
    let _ = alice;

    let msgs: Vec<Vec<u8>> = (0..2 * n).map(|i| message(i, contacts)).collect();
    let (one_by_one, bulk) = msgs.split_at(n);

    let t0 = Instant::now();
    for m in one_by_one {
        engine
            .track(&actor, m, TrackRequest::new(TrackSource::Automatic))
            .unwrap();
    }
    let single = n as f64 / t0.elapsed().as_secs_f64();

    let t0 = Instant::now();
    let batch: Vec<&[u8]> = bulk.iter().map(|m| m.as_slice()).collect();
    let mut done = 0;
    for chunk in batch.chunks(500) {
        let results = engine
            .track_batch(&actor, chunk, &TrackRequest::new(TrackSource::Automatic))
            .unwrap();
        for r in results {
            r.unwrap();
            done += 1;
        }
    }
    let bulk_rate = done as f64 / t0.elapsed().as_secs_f64();

    let ids: Vec<MessageId> = (0..n)
        .map(|i| MessageId::parse(&format!("bench-{i}@contoso.example")).unwrap())
        .collect();
    let t0 = Instant::now();
    let rounds = 3;
    for _ in 0..rounds {
        for id in &ids {
            assert!(engine.headers(actor.owner_id(), id).unwrap().is_some());
        }
    }
    let per_header = t0.elapsed().as_secs_f64() * 1e6 / (rounds * n) as f64;

    println!("| measure | value |");
    println!("|---|---|");
    println!("| emails tracked one by one (each durable) | {single:.0} emails/s |");
    println!("| emails tracked in bulk (track_batch, 500 per batch) | {bulk_rate:.0} emails/s |");
    println!("| Engine::headers per call | {per_header:.1} µs |");
    println!("| contacts in the CRM | {contacts} |");
}
