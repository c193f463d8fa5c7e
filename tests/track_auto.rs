//! Automatic tracking of new INBOX mail per the user's option, what is never tracked
//! automatically (bulk, ignore lists, internal mail), and sent mail that replies
//! to tracked email.

#[path = "track_support.rs"]
mod support;

use crmproxy::message;
use crmproxy::store::*;
use crmproxy::track::*;
use support::*;

fn decide(w: &World, name: &str) -> AutoDecision {
    let facts = message::parse(&mail(name)).unwrap();
    w.engine.auto_decision(w.alice, &facts).unwrap()
}

fn track_original(w: &World) {
    w.engine
        .track(
            &w.alice(),
            &mail("thread-original.eml"),
            TrackRequest::new(TrackSource::Keyword),
        )
        .unwrap();
}

#[test]
fn each_auto_track_option_tracks_what_it_says() {
    let w = World::new();
    track_original(&w);
    use AutoDecision::Track;
    let skip = AutoDecision::Skip;
    // (option, [reply to tracked, from contact, from lead, from account, from unknown])
    let table = [
        (
            AutoTrack::Off,
            [
                skip(SkipReason::Off),
                skip(SkipReason::Off),
                skip(SkipReason::Off),
                skip(SkipReason::Off),
                skip(SkipReason::Off),
            ],
        ),
        (
            AutoTrack::RepliesToTracked,
            [
                Track,
                skip(SkipReason::NotAReplyToTracked),
                skip(SkipReason::NotAReplyToTracked),
                skip(SkipReason::NotAReplyToTracked),
                skip(SkipReason::NotAReplyToTracked),
            ],
        ),
        (
            AutoTrack::FromContactsLeadsAccounts,
            [
                Track,
                Track,
                Track,
                Track,
                skip(SkipReason::NotFromContactLeadAccount),
            ],
        ),
        (
            AutoTrack::FromAnyRecord,
            [Track, Track, Track, Track, skip(SkipReason::NotFromRecord)],
        ),
        (AutoTrack::All, [Track, Track, Track, Track, Track]),
    ];
    let files = [
        "thread-reply.eml",
        "from-contact.eml",
        "from-lead.eml",
        "from-account.eml",
        "from-unknown.eml",
    ];
    for (mode, expected) in table {
        w.set_auto_track(w.alice, mode, &[]);
        for (file, want) in files.iter().zip(expected) {
            assert_eq!(decide(&w, file), want, "{mode:?} {file}");
        }
    }
}

#[test]
fn mail_from_a_user_counts_as_a_record_but_not_as_a_contact() {
    let w = World::new();
    let raw = b"Message-ID: <u@x.example>\r\nFrom: erin@contoso.example\r\nTo: alice@contoso.example\r\nSubject: hi\r\n\r\nx\r\n";
    let facts = message::parse(raw).unwrap();
    w.set_auto_track(w.alice, AutoTrack::FromContactsLeadsAccounts, &[]);
    assert_eq!(
        w.engine.auto_decision(w.alice, &facts).unwrap(),
        AutoDecision::Skip(SkipReason::NotFromContactLeadAccount)
    );
    w.set_auto_track(w.alice, AutoTrack::FromAnyRecord, &[]);
    assert_eq!(
        w.engine.auto_decision(w.alice, &facts).unwrap(),
        AutoDecision::Track
    );
}

#[test]
fn bulk_ignored_and_internal_mail_is_never_tracked_automatically() {
    let w = World::new();
    w.set_auto_track(w.alice, AutoTrack::All, &[]);
    assert!(matches!(
        decide(&w, "newsletter.eml"),
        AutoDecision::Skip(SkipReason::Bulk(_))
    ));
    // The user's ignore list: an address, a domain.
    w.set_auto_track(
        w.alice,
        AutoTrack::All,
        &["carol@fabrikam.example", "northwind.example"],
    );
    assert_eq!(
        decide(&w, "from-contact.eml"),
        AutoDecision::Skip(SkipReason::Ignored("carol@fabrikam.example".into()))
    );
    assert_eq!(
        decide(&w, "from-lead.eml"),
        AutoDecision::Skip(SkipReason::Ignored("northwind.example".into()))
    );
    assert_eq!(decide(&w, "from-account.eml"), AutoDecision::Track);
    // The organisation's ignore list.
    w.edit_settings(|s| s.ignore = vec!["@adatum.example".into()]);
    assert_eq!(
        decide(&w, "from-account.eml"),
        AutoDecision::Skip(SkipReason::Ignored("@adatum.example".into()))
    );
    // Internal mail, when the organisation says so.
    let internal = b"Message-ID: <i@contoso.example>\r\nFrom: erin@contoso.example\r\n\
To: alice@contoso.example\r\nCc: bob@Contoso.Example\r\nSubject: lunch\r\n\r\nx\r\n";
    let facts = message::parse(internal).unwrap();
    assert_eq!(
        w.engine.auto_decision(w.alice, &facts).unwrap(),
        AutoDecision::Track
    );
    w.edit_settings(|s| {
        s.org_domains = vec!["contoso.example".into()];
        s.skip_internal_mail = true;
    });
    assert_eq!(
        w.engine.auto_decision(w.alice, &facts).unwrap(),
        AutoDecision::Skip(SkipReason::Internal)
    );
    // One outside party makes it external.
    assert_eq!(decide(&w, "from-unknown.eml"), AutoDecision::Track);
    // A user without use_app tracks nothing automatically.
    w.store
        .set_privilege(w.alice, Privilege::UseApp, false)
        .unwrap();
    assert_eq!(
        decide(&w, "from-unknown.eml"),
        AutoDecision::Skip(SkipReason::NoPrivilege)
    );
}

#[test]
fn what_a_user_tracks_by_hand_always_tracks() {
    let w = World::new();
    w.set_auto_track(w.alice, AutoTrack::Off, &["shop.example"]);
    let t = w
        .engine
        .track(
            &w.alice(),
            &mail("newsletter.eml"),
            TrackRequest::new(TrackSource::Keyword),
        )
        .unwrap();
    assert_eq!(t.record.status, TrackStatus::Tracked);
}

#[test]
fn new_inbox_mail_is_tracked_by_the_default_option_when_it_replies() {
    let w = World::new();
    assert_eq!(
        w.engine
            .on_new_inbox_mail(w.alice, &mail("from-contact.eml"), None)
            .unwrap(),
        None
    );
    w.engine
        .track(
            &w.alice(),
            &mail("thread-reply.eml"),
            TrackRequest::new(TrackSource::Keyword).regarding(w.opportunity),
        )
        .unwrap();
    let loc = MessageLocation {
        folder: "INBOX".into(),
        uid_validity: 3,
        uid: 77,
    };
    let t = w
        .engine
        .on_new_inbox_mail(w.alice, &mail("thread-references.eml"), Some(loc.clone()))
        .unwrap()
        .expect("a reply to tracked mail is tracked");
    assert_eq!(t.record.via.as_deref(), Some("automatic"));
    assert_eq!(t.activity.regarding, Some(w.opportunity));
    assert_eq!(t.record.location, Some(loc));
    // Seen again: already tracked here, left alone.
    assert!(w
        .engine
        .on_new_inbox_mail(w.alice, &mail("thread-references.eml"), None)
        .unwrap()
        .is_none());
}

#[test]
fn sent_replies_to_tracked_email_are_tracked_and_correlated() {
    let w = World::new();
    // Nothing tracked yet: the sent reply is left alone.
    assert!(w
        .engine
        .on_sent(&w.alice(), &mail("thread-reply.eml"))
        .unwrap()
        .is_none());
    let original = w
        .engine
        .track(
            &w.alice(),
            &mail("thread-original.eml"),
            TrackRequest::new(TrackSource::Keyword).regarding(w.fabrikam),
        )
        .unwrap();
    let t = w
        .engine
        .on_sent(&w.bob_for_alice(), &mail("thread-reply.eml"))
        .unwrap()
        .unwrap();
    let e = World::email(&t.activity);
    assert_eq!(e.direction, Direction::Outgoing);
    assert_eq!(e.correlation, Correlation::InReplyTo);
    assert_eq!(e.correlated_with, Some(original.activity.id));
    assert_eq!(t.activity.regarding, Some(w.fabrikam));
    assert_eq!(t.record.via.as_deref(), Some("sent"));
    assert_eq!(t.record.requested_by, w.bob);
    // Not twice; and not at all with automatic tracking off.
    assert!(w
        .engine
        .on_sent(&w.alice(), &mail("thread-reply.eml"))
        .unwrap()
        .is_none());
    w.set_auto_track(w.alice, AutoTrack::Off, &[]);
    assert!(w
        .engine
        .on_sent(&w.alice(), &mail("thread-references.eml"))
        .unwrap()
        .is_none());
}
