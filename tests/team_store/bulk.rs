//! Tracking in bulk on PostgreSQL: a batch costs a handful of statements however
//! many emails it holds, and leaves the same rows as the same writes made one at
//! a time through `put_activity` / `put_tracking` (the per-row path).

use super::*;
use crate::store_support::addr;

const EMAILS: usize = 120;

/// alice, bob (alice's delegate) and a contact per sender, the same ids in
/// every store they are put in.
struct People {
    alice: SystemUser,
    bob: SystemUser,
    contacts: Vec<Contact>,
}

fn people() -> People {
    let mut alice = user("Alice Example", "alice@t.example");
    let bob = user("Bob Example", "bob@t.example");
    alice.delegates.insert(bob.id);
    let contacts = (0..EMAILS / 2)
        .map(|i| {
            contact(
                "Client",
                &format!("Number{i}"),
                &format!("client{i}@c.example"),
            )
        })
        .collect();
    People {
        alice,
        bob,
        contacts,
    }
}

fn fresh(p: &People) -> PgStore {
    let s = open(&pg::fresh_db());
    s.put_record(Record::User(p.bob.clone())).unwrap();
    s.put_record(Record::User(p.alice.clone())).unwrap();
    for c in &p.contacts {
        s.put_record(Record::Contact(c.clone())).unwrap();
    }
    s
}

/// Email `i` from a contact (two emails each), to alice and a stranger whose
/// address goes into alice's book, tracked by alice or by bob for her.
fn tracked(p: &People, i: usize, round: u32, id: ActivityId) -> (Activity, TrackingRecord) {
    let c = &p.contacts[i / 2];
    let owner = p.alice.id;
    let mut a = email(
        owner,
        &format!("bulk{i}@t.example"),
        &format!("Quote {i} round {round}"),
        Some(RecordRef::new(Kind::Contact, c.id)),
        1 + round,
    );
    a.id = id;
    a.parties = vec![
        Party {
            role: PartyRole::Sender,
            address: Some(c.emails[0].clone()),
            name: format!("Client Number{}", i / 2),
            records: vec![RecordRef::new(Kind::Contact, c.id)],
        },
        Party {
            role: PartyRole::To,
            address: Some(addr(&format!("stranger{}@s.example", i % 7))),
            name: format!("Stranger {}", i % 7),
            records: vec![],
        },
    ];
    if let ActivityDetails::Email(e) = &mut a.details {
        e.content_digest = Some(format!("digest-{i}"));
    }
    let by = if i.is_multiple_of(3) { p.bob.id } else { owner };
    let t = TrackingRecord {
        status: TrackStatus::Tracked,
        activity: Some(a.id),
        regarding: (round > 0).then(|| RecordRef::new(Kind::Contact, c.id)),
        ..TrackingRecord::pending(owner, a.message_id().unwrap().clone(), by)
    };
    (a, t)
}

/// What a user sees of the tracked emails, stamps left out.
fn seen(s: &PgStore, p: &People, items: &[(Activity, TrackingRecord)]) -> Vec<String> {
    let mut out = Vec::new();
    for (a, t) in items {
        let mut stored = s.activity(a.id).unwrap().expect("stored");
        let epoch = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
        (stored.stamps.created, stored.stamps.modified) = (epoch, epoch);
        out.push(format!("{stored:?}"));
        out.push(format!("{:?}", s.tracking(t.owner, &t.message_id).unwrap()));
    }
    for c in &p.contacts {
        let ids: Vec<_> = s
            .activities_of(c.id.uuid(), 50)
            .unwrap()
            .iter()
            .map(|a| a.id)
            .collect();
        out.push(format!("{ids:?}"));
        // Deletes are refused while tracking records and activities point to it.
        out.push(format!(
            "{:?}",
            s.delete_record(c.id.uuid()).map_err(|e| e.to_string())
        ));
    }
    out.push(format!("{:?}", s.address_book_counts(p.alice.id).unwrap()));
    let page = s
        .address_book_page(
            p.alice.id,
            BookView::All,
            "",
            &PageRequest {
                limit: 100,
                ..Default::default()
            },
        )
        .unwrap();
    let mut book: Vec<String> = page
        .items
        .iter()
        .map(|e| format!("{} {:?}", e.full_name, e.emails))
        .collect();
    book.sort();
    out.extend(book);
    let hits = s
        .search(&SearchQuery {
            text: "quote round".into(),
            kinds: vec![],
            limit: 500,
        })
        .unwrap();
    out.push(format!(
        "{:?}",
        hits.iter().map(|h| (h.id, h.score)).collect::<Vec<_>>()
    ));
    out.push(format!("{:?}", s.pending_tracking(None, 10).unwrap()));
    out
}

#[test]
fn a_tracking_batch_takes_a_few_statements_and_writes_what_one_at_a_time_would() {
    let p = people();
    let (one, bulk) = (fresh(&p), fresh(&p));
    // Round 0 creates; round 1 changes every email and tracking record (index
    // rows replaced, the book left as it is).
    let ids: Vec<ActivityId> = (0..EMAILS).map(|_| ActivityId::new()).collect();
    for round in 0..2 {
        let items: Vec<_> = (0..EMAILS).map(|i| tracked(&p, i, round, ids[i])).collect();
        let before = one.statements_sent();
        for (a, t) in &items {
            one.put_activity(a.clone()).unwrap();
            one.put_tracking(t.clone()).unwrap();
        }
        // The per-row path (what `track_batch` ran for each email before).
        let per_row = one.statements_sent() - before;
        assert!(per_row >= 10 * EMAILS as u64, "{per_row}");
        let before = bulk.statements_sent();
        bulk.track_batch(
            items
                .iter()
                .map(|(a, t)| (Some(a.clone()), t.clone()))
                .collect(),
        )
        .unwrap();
        let sent = bulk.statements_sent() - before;
        // About a dozen statements, each prepared once on a new connection; one
        // at a time it was about 15 per email.
        assert!(
            sent <= 40,
            "round {round}: {sent} statements for {EMAILS} emails"
        );
        assert_eq!(
            seen(&one, &p, &items),
            seen(&bulk, &p, &items),
            "round {round}"
        );
    }
}

#[test]
fn a_batch_is_checked_in_order_and_written_whole_or_not_at_all() {
    let p = people();
    let s = fresh(&p);
    let (first, t1) = tracked(&p, 0, 0, ActivityId::new());
    // The same message again under another id: one activity per Message-ID and
    // content, also inside one batch.
    let (again, t2) = tracked(&p, 0, 0, ActivityId::new());
    let err = s
        .track_batch(vec![(Some(first.clone()), t1.clone()), (Some(again), t2)])
        .unwrap_err();
    assert!(matches!(err, StoreError::Duplicate(_)), "{err}");
    assert!(s.activity(first.id).unwrap().is_none(), "nothing written");
    // A later tracking record may point to an activity written earlier in the
    // batch; one pointing to a missing activity is refused.
    let (a3, t3) = tracked(&p, 2, 0, ActivityId::new());
    let (_, mut t4) = tracked(&p, 4, 0, ActivityId::new());
    t4.activity = Some(a3.id);
    let err = s
        .track_batch(vec![(Some(a3.clone()), t3.clone()), (None, t4)])
        .unwrap_err();
    assert!(err.to_string().contains("is for Message-ID"), "{err}");
    let (a5, mut t5) = tracked(&p, 5, 0, ActivityId::new());
    t5.activity = Some(ActivityId::new());
    let err = s.track_batch(vec![(Some(a5), t5)]).unwrap_err();
    assert!(matches!(err, StoreError::MissingLink { .. }), "{err}");
    s.track_batch(vec![(Some(first.clone()), t1)]).unwrap();
    assert!(s.activity(first.id).unwrap().is_some());
}
