//! Tracking records through the `CrmStore` trait: one activity per Message-ID,
//! delegation checks, pending lists, untracking, and atomic track/track_batch.

mod store_support;

use crmproxy::store::*;
use store_support::*;

fn tracking_records_share_one_activity_and_check_delegation(b: Backend) {
    let s = TestStore::new(b);
    let alice = s
        .put_record(Record::User(user("Alice", "alice@example.test")))
        .unwrap();
    let bob = s
        .put_record(Record::User(user("Bob", "bob@example.test")))
        .unwrap();
    let carol = s
        .put_record(Record::User(user("Carol", "carol@example.test")))
        .unwrap();
    let (a, b, c) = (
        UserId::from_uuid(alice.id()),
        UserId::from_uuid(bob.id()),
        UserId::from_uuid(carol.id()),
    );
    let m = MessageId::parse("<shared@x.example>").unwrap();

    // Carol may not act for Alice until she is a delegate.
    let e = s
        .put_tracking(TrackingRecord::pending(a, m.clone(), c))
        .unwrap_err();
    assert!(e.to_string().contains("delegates"), "{e}");
    assert!(!s.may_act_for(c, a).unwrap());
    s.set_delegate(a, c, true).unwrap();
    assert!(s.may_act_for(c, a).unwrap());
    let first = TrackingRecord::pending(a, m.clone(), c);
    s.put_tracking(first.clone()).unwrap();
    let mut bobs = TrackingRecord::pending(b, m.clone(), b);
    bobs.requested_at = first.requested_at + chrono::Duration::seconds(1);
    s.put_tracking(bobs.clone()).unwrap();
    assert_eq!(
        s.pending_tracking(None, 10).unwrap(),
        vec![first.clone(), bobs.clone()]
    );
    // One mailbox's queue: another's older requests neither show nor use the limit.
    assert_eq!(s.pending_tracking(Some(b), 1).unwrap(), vec![bobs.clone()]);
    assert_eq!(
        s.pending_tracking(Some(a), 10).unwrap(),
        vec![first.clone()]
    );

    // Tracked needs an activity with the same Message-ID.
    let mut t = first.clone();
    t.status = TrackStatus::Tracked;
    assert!(matches!(
        s.put_tracking(t.clone()),
        Err(StoreError::Invalid { .. })
    ));
    let act = s
        .put_activity(email(a, "<shared@x.example>", "Shared", None, 3))
        .unwrap();
    let wrong = s
        .put_activity(email(a, "<other@x.example>", "Other", None, 3))
        .unwrap();
    t.activity = Some(wrong.id);
    assert!(s
        .put_tracking(t.clone())
        .unwrap_err()
        .to_string()
        .contains("not <shared@x.example>"));
    t.activity = Some(act.id);
    s.put_tracking(t.clone()).unwrap();
    let mut tb = bobs.clone();
    tb.status = TrackStatus::Tracked;
    tb.activity = Some(act.id);
    s.put_tracking(tb).unwrap();
    assert!(s.pending_tracking(None, 10).unwrap().is_empty());
    assert_eq!(s.activity_by_message_id(&m).unwrap().unwrap().id, act.id);
    assert_eq!(s.tracking_of_message(&m).unwrap().len(), 2);

    // The activity cannot be deleted while tracked; untracking keeps it.
    assert!(matches!(
        s.delete_activity(act.id),
        Err(StoreError::InUse { count: 2, .. })
    ));
    assert!(s.delete_tracking(a, &m).unwrap());
    assert!(!s.delete_tracking(a, &m).unwrap());
    assert!(s.tracking(a, &m).unwrap().is_none());
    assert!(s.activity(act.id).unwrap().is_some());

    // Failed needs a reason.
    let mut f = TrackingRecord::pending(a, MessageId::parse("f@x.example").unwrap(), a);
    f.status = TrackStatus::Failed { reason: " ".into() };
    assert!(s.put_tracking(f.clone()).is_err());
    f.status = TrackStatus::Failed {
        reason: "message vanished from INBOX".into(),
    };
    s.put_tracking(f).unwrap();
}

fn track_writes_activity_and_tracking_together_or_not_at_all(b: Backend) {
    let s = TestStore::new(b);
    let alice = UserId::from_uuid(
        s.put_record(Record::User(user("Alice", "alice@example.test")))
            .unwrap()
            .id(),
    );
    let mallory = UserId::from_uuid(
        s.put_record(Record::User(user("Mallory", "mallory@example.test")))
            .unwrap()
            .id(),
    );
    let m = MessageId::parse("<t1@x.example>").unwrap();
    let act = email(alice, "<t1@x.example>", "Tracked together", None, 2);
    let tracked = |by: UserId, a: &Activity, m: &MessageId| TrackingRecord {
        status: TrackStatus::Tracked,
        activity: Some(a.id),
        ..TrackingRecord::pending(alice, m.clone(), by)
    };
    // Mallory is not Alice's delegate: neither the activity nor the record is written.
    assert!(s
        .track(Some(act.clone()), tracked(mallory, &act, &m))
        .is_err());
    assert!(s.activity(act.id).unwrap().is_none());
    assert!(s.activity_by_message_id(&m).unwrap().is_none());
    let stored = s
        .track(Some(act.clone()), tracked(alice, &act, &m))
        .unwrap()
        .unwrap();
    assert_eq!(stored.subject, "Tracked together");
    assert_eq!(
        s.tracking(alice, &m).unwrap().unwrap().activity,
        Some(act.id)
    );

    // A batch with one bad item writes nothing.
    let good = email(alice, "<t2@x.example>", "Good", None, 3);
    let m2 = MessageId::parse("t2@x.example").unwrap();
    let dup = email(alice, "<t1@x.example>", "Duplicate Message-ID", None, 3);
    let e = s
        .track_batch(vec![
            (Some(good.clone()), tracked(alice, &good, &m2)),
            (Some(dup.clone()), tracked(alice, &dup, &m)),
        ])
        .unwrap_err();
    assert!(matches!(e, StoreError::Duplicate(_)), "{e}");
    assert!(s.activity(good.id).unwrap().is_none());
    s.track_batch(vec![(Some(good.clone()), tracked(alice, &good, &m2))])
        .unwrap();
    assert!(s.activity(good.id).unwrap().is_some());
    assert_eq!(
        s.search(&SearchQuery {
            text: "good".into(),
            kinds: vec![Kind::Email],
            limit: 0
        })
        .unwrap()[0]
            .id,
        good.id.uuid()
    );
}

fn header_facts_follow_the_activity_without_its_body(b: Backend) {
    let s = TestStore::new(b);
    let u = user("Owner", "owner@contoso.example");
    let owner = u.id;
    s.put_record(Record::User(u)).unwrap();
    let case = s
        .put_record(Record::Account(Account {
            id: AccountId::new(),
            stamps: Stamps::default(),
            name: "Contoso".into(),
            website: String::new(),
            phone: String::new(),
            emails: vec![],
            address: PostalAddress::default(),
            primary_contact: None,
        }))
        .unwrap();
    let mut a = email(owner, "<facts@contoso.example>", "Facts", None, 3);
    if let ActivityDetails::Email(e) = &mut a.details {
        e.body_text = "a long body ".repeat(500);
        e.smime = Some(SmimeMeta {
            signed: true,
            form: Some("multipart-signed".into()),
            signer: Some("signer@contoso.example".into()),
            verified: true,
            ..Default::default()
        });
    }
    let a = s.put_activity(a).unwrap();
    assert_eq!(s.header_facts(a.id).unwrap(), Some(HeaderFacts::from(&a)));

    // A new regarding shows at once; deleting the activity removes its facts.
    let mut changed = a.clone();
    changed.regarding = Some(case.as_ref());
    let changed = s.put_activity(changed).unwrap();
    let facts = s.header_facts(a.id).unwrap().unwrap();
    assert_eq!(facts.regarding, Some(case.as_ref()));
    assert_eq!(
        facts
            .details
            .smime
            .as_ref()
            .and_then(|m| m.signer.as_deref()),
        Some("signer@contoso.example")
    );
    assert_eq!(facts, HeaderFacts::from(&changed));
    s.delete_activity(a.id).unwrap();
    assert_eq!(s.header_facts(a.id).unwrap(), None);
}

/// The gateway's folder checkpoints: per owner, mailbox and folder, replaced on
/// write, listed per mailbox, and kept across a reopen.
fn folder_checkpoints_persist_per_mailbox_and_folder(b: Backend) {
    let mut s = TestStore::new(b);
    let alice = s
        .put_record(Record::User(user("Alice", "alice@example.test")))
        .unwrap();
    let a = UserId::from_uuid(alice.id());
    assert_eq!(s.checkpoint(a, "alice", "INBOX").unwrap(), None);
    let at = chrono::Utc::now();
    let cp = |v: u32, u: u32| FolderCheckpoint {
        uid_validity: v,
        last_uid: u,
        highest_modseq: (u > 5).then_some(u as u64 * 10),
        updated: at,
    };
    s.put_checkpoint(a, "alice", "INBOX", &cp(7, 3)).unwrap();
    s.put_checkpoint(a, "alice", "INBOX", &cp(7, 9)).unwrap();
    s.put_checkpoint(a, "alice", "Sent", &cp(8, 2)).unwrap();
    s.put_checkpoint(a, "alice-archive", "INBOX", &cp(1, 1))
        .unwrap();
    assert_eq!(s.checkpoint(a, "alice", "INBOX").unwrap(), Some(cp(7, 9)));
    s.reopen();
    assert_eq!(
        s.checkpoints(a, "alice").unwrap(),
        vec![
            ("INBOX".to_string(), cp(7, 9)),
            ("Sent".to_string(), cp(8, 2))
        ]
    );
    assert_eq!(
        s.checkpoint(a, "alice-archive", "INBOX").unwrap(),
        Some(cp(1, 1))
    );
}

/// A checkpoint written with tracked activities commits with them or not at all
/// (the gateway resumes exactly after what was written), and replaces the one
/// before like `put_checkpoint`.
fn a_checkpoint_commits_with_the_activities_it_covers(b: Backend) {
    let mut s = TestStore::new(b);
    let alice = UserId::from_uuid(
        s.put_record(Record::User(user("Alice", "alice@example.test")))
            .unwrap()
            .id(),
    );
    let mallory = UserId::from_uuid(
        s.put_record(Record::User(user("Mallory", "mallory@example.test")))
            .unwrap()
            .id(),
    );
    let at = |last: u32| MailboxCheckpoint {
        owner: alice,
        mailbox: "alice".into(),
        folder: "INBOX".into(),
        at: FolderCheckpoint {
            uid_validity: 9,
            last_uid: last,
            highest_modseq: None,
            updated: chrono::Utc::now(),
        },
    };
    let tracked = |by: UserId, a: &Activity, m: &MessageId| TrackingRecord {
        status: TrackStatus::Tracked,
        activity: Some(a.id),
        ..TrackingRecord::pending(alice, m.clone(), by)
    };
    let first = email(alice, "<c1@x.example>", "First", None, 2);
    let m1 = MessageId::parse("<c1@x.example>").unwrap();
    s.put_tracked_with_checkpoint(
        vec![first.clone()],
        vec![tracked(alice, &first, &m1)],
        &at(4),
    )
    .unwrap();
    assert_eq!(
        s.checkpoint(alice, "alice", "INBOX")
            .unwrap()
            .unwrap()
            .last_uid,
        4
    );
    assert!(s.activity(first.id).unwrap().is_some());

    // A refused tracking record (Mallory is no delegate): no activity, and the
    // checkpoint stays where it was.
    let second = email(alice, "<c2@x.example>", "Second", None, 3);
    let m2 = MessageId::parse("<c2@x.example>").unwrap();
    assert!(s
        .put_tracked_with_checkpoint(
            vec![second.clone()],
            vec![tracked(mallory, &second, &m2)],
            &at(8)
        )
        .is_err());
    assert!(s.activity(second.id).unwrap().is_none());
    assert_eq!(
        s.checkpoint(alice, "alice", "INBOX")
            .unwrap()
            .unwrap()
            .last_uid,
        4
    );

    // Nothing tracked in a batch: the checkpoint alone moves on, and stays.
    s.put_tracked_with_checkpoint(vec![], vec![], &at(12))
        .unwrap();
    s.reopen();
    let cp = s.checkpoint(alice, "alice", "INBOX").unwrap().unwrap();
    assert_eq!((cp.uid_validity, cp.last_uid), (9, 12));
    assert_eq!(
        s.tracking(alice, &m1).unwrap().unwrap().activity,
        Some(first.id)
    );
}

on_both_backends!(
    a_checkpoint_commits_with_the_activities_it_covers,
    folder_checkpoints_persist_per_mailbox_and_folder,
    tracking_records_share_one_activity_and_check_delegation,
    track_writes_activity_and_tracking_together_or_not_at_all,
    header_facts_follow_the_activity_without_its_body,
);
