//! Pending requests (asked for before the message was seen whole) completed by the
//! sync worker, retried and then failed; lookups by mailbox location; meeting
//! invitations as appointments (organizer rule, recurring through pending).

#[path = "track_support.rs"]
mod support;

use crmproxy::store::*;
use crmproxy::track::*;
use support::*;

fn loc(uid: u32) -> MessageLocation {
    MessageLocation {
        folder: "INBOX".into(),
        uid_validity: 1700000000,
        uid,
    }
}

#[test]
fn pending_then_completed_by_the_worker() {
    let w = World::new();
    let bob = w.bob_for_alice();
    let id = mid("thread-1@fabrikam.example");
    let req = TrackRequest::new(TrackSource::Keyword)
        .regarding(w.opportunity)
        .at(loc(42));
    let p = w.engine.request(&bob, &id, req).unwrap();
    assert_eq!(p.status, TrackStatus::Pending);
    assert_eq!(p.activity, None);
    assert_eq!((p.owner, p.requested_by), (w.alice, w.bob));
    assert_eq!(p.regarding, Some(w.opportunity));
    assert_eq!(w.engine.keywords_for(&p.status), Some("$CRM_Pending"));
    assert_eq!(w.engine.pending(w.alice, 10).unwrap(), vec![p.clone()]);
    assert_eq!(
        w.engine.tracking_at(w.alice, &loc(42)).unwrap(),
        Some(p.clone())
    );
    assert_eq!(w.engine.tracking_at(w.alice, &loc(43)).unwrap(), None);
    assert_eq!(w.engine.tracking_at(w.erin, &loc(42)).unwrap(), None);
    let h = w.engine.headers(w.alice, &id).unwrap().unwrap();
    assert_eq!(h.activity_id, None);

    // One failed attempt is counted, then the worker completes it.
    let p = w.engine.retry_later(&p, "upstream timed out").unwrap();
    assert_eq!((p.attempts, p.status.clone()), (1, TrackStatus::Pending));
    let t = w
        .engine
        .complete_pending(&p, &mail("thread-original.eml"))
        .unwrap();
    assert_eq!(t.record.status, TrackStatus::Tracked);
    assert_eq!(t.record.requested_by, w.bob, "the delegate asked");
    assert_eq!(t.record.requested_at, p.requested_at);
    assert_eq!(t.record.attempts, 1);
    assert_eq!(t.record.location, Some(loc(42)));
    assert_eq!(t.activity.regarding, Some(w.opportunity));
    assert_eq!(World::email(&t.activity).correlation, Correlation::Explicit);
    assert!(w.engine.pending(w.alice, 10).unwrap().is_empty());
    assert_eq!(
        w.engine
            .tracking_at(w.alice, &loc(42))
            .unwrap()
            .unwrap()
            .status,
        TrackStatus::Tracked
    );
}

#[test]
fn completing_with_the_wrong_message_changes_nothing() {
    let w = World::new();
    let p = w
        .engine
        .request(
            &w.alice(),
            &mid("thread-1@fabrikam.example"),
            TrackRequest::new(TrackSource::Pane),
        )
        .unwrap();
    let before = w.snapshot();
    let e = w
        .engine
        .complete_pending(&p, &mail("from-lead.eml"))
        .unwrap_err();
    assert!(matches!(e, TrackError::NotAMessage(_)), "{e}");
    assert_eq!(w.snapshot(), before);
}

#[test]
fn a_request_that_keeps_failing_is_marked_failed_with_the_reason() {
    let w = World::new();
    let mut p = w
        .engine
        .request(
            &w.alice(),
            &mid("gone@x.example"),
            TrackRequest::new(TrackSource::Keyword),
        )
        .unwrap();
    for n in 1..MAX_ATTEMPTS {
        p = w.engine.retry_later(&p, "message not found").unwrap();
        assert_eq!((p.attempts, p.status.clone()), (n, TrackStatus::Pending));
    }
    p = w.engine.retry_later(&p, "message not found").unwrap();
    assert_eq!(
        p.status,
        TrackStatus::Failed {
            reason: "message not found".into()
        }
    );
    assert!(w.engine.pending(w.alice, 10).unwrap().is_empty());
    assert_eq!(w.engine.keywords_for(&p.status), None);
    let h = w
        .engine
        .headers(w.alice, &mid("gone@x.example"))
        .unwrap()
        .unwrap();
    assert_eq!(h.activity_id, None);

    // fail() gives up at once; an empty reason still says something.
    let q = w
        .engine
        .request(
            &w.alice(),
            &mid("bad@x.example"),
            TrackRequest::new(TrackSource::Keyword),
        )
        .unwrap();
    let q = w.engine.fail(&q, " ").unwrap();
    assert!(matches!(q.status, TrackStatus::Failed { ref reason } if !reason.is_empty()));
    // Retrying something no longer asked for says so.
    w.engine.untrack(&w.alice(), &q.message_id).unwrap();
    assert!(matches!(
        w.engine.retry_later(&q, "x"),
        Err(TrackError::NotTracked { .. })
    ));
    // A failed message can be tracked by hand later.
    let t = w
        .engine
        .track(
            &w.alice(),
            &mail("from-lead.eml"),
            TrackRequest::new(TrackSource::Pane),
        )
        .unwrap();
    assert_eq!(t.record.status, TrackStatus::Tracked);
}

#[test]
fn a_request_for_a_message_tracked_elsewhere_waits_for_its_bytes_then_shares_it() {
    let w = World::new();
    let raw = mail("from-contact.eml");
    let t = w
        .engine
        .track(&w.erin(), &raw, TrackRequest::new(TrackSource::Pane))
        .unwrap();
    let id = World::email(&t.activity).message_id.clone();
    // The Message-ID alone (even seen in the mailbox) links nobody's activity.
    let r = w
        .engine
        .request(
            &w.alice(),
            &id,
            TrackRequest::new(TrackSource::Folder(FABRIKAM_FOLDER.into())).at(loc(7)),
        )
        .unwrap();
    assert_eq!((r.status.clone(), r.activity), (TrackStatus::Pending, None));
    // The same message read from the mailbox: the one activity, shared.
    let done = w.engine.complete_pending(&r, &raw).unwrap();
    assert_eq!(done.record.status, TrackStatus::Tracked);
    assert_eq!(done.record.activity, Some(t.activity.id));
    assert_eq!(done.record.regarding, Some(w.fabrikam));
    let a = w.store.activity(t.activity.id).unwrap().unwrap();
    assert_eq!(a.regarding, Some(w.fabrikam));
    assert_eq!(World::email(&a).correlation, Correlation::FolderMapping);
    assert_eq!(
        w.engine.tracking_at(w.alice, &loc(7)).unwrap(),
        Some(done.record)
    );
}

#[test]
fn a_moved_message_is_found_at_its_new_place_only() {
    let w = World::new();
    let raw = mail("from-contact.eml");
    w.engine
        .track(
            &w.alice(),
            &raw,
            TrackRequest::new(TrackSource::Keyword).at(loc(5)),
        )
        .unwrap();
    let moved = MessageLocation {
        folder: "Archive/2026".into(),
        uid_validity: 9,
        uid: 1,
    };
    w.engine
        .track(
            &w.alice(),
            &raw,
            TrackRequest::new(TrackSource::Keyword).at(moved.clone()),
        )
        .unwrap();
    assert_eq!(w.engine.tracking_at(w.alice, &loc(5)).unwrap(), None);
    assert!(w.engine.tracking_at(w.alice, &moved).unwrap().is_some());
    // Tracking again without a location keeps the known one.
    let t = w
        .engine
        .track(&w.alice(), &raw, TrackRequest::new(TrackSource::Pane))
        .unwrap();
    assert_eq!(t.record.location, Some(moved));
}

#[test]
fn a_meeting_request_from_the_organizer_becomes_an_appointment() {
    let w = World::new();
    let raw = mail("meeting-organizer.eml");
    let t = w
        .engine
        .track(
            &w.alice(),
            &raw,
            TrackRequest::new(TrackSource::Keyword).regarding(w.opportunity),
        )
        .unwrap();
    assert_eq!(t.record.status, TrackStatus::Tracked);
    let ap = t.appointment.clone().expect("an appointment");
    assert_eq!(ap.subject, "Licence review");
    assert_eq!(ap.owner, w.alice);
    assert_eq!(ap.regarding, Some(w.opportunity));
    let ActivityDetails::Appointment(d) = &ap.details else {
        panic!("not an appointment")
    };
    assert_eq!(d.start.to_rfc3339(), "2026-12-01T10:00:00+00:00");
    assert_eq!(d.end.to_rfc3339(), "2026-12-01T11:00:00+00:00");
    assert_eq!(d.location, "Room 4 / Teams");
    assert_eq!(d.uid.as_deref(), Some("meet-1@contoso.example"));
    assert_eq!(d.recurrence, None);
    let ics = w.store.blob(d.raw_invitation.as_ref().unwrap()).unwrap();
    let ics = String::from_utf8(ics).unwrap();
    assert!(ics.starts_with("BEGIN:VCALENDAR"), "{ics}");
    assert!(ics.contains("UID:meet-1@contoso.example"));
    let parties: Vec<_> = ap
        .parties
        .iter()
        .map(|p| (p.role, p.records.clone()))
        .collect();
    assert_eq!(
        parties,
        vec![
            (
                PartyRole::Organizer,
                vec![RecordRef::new(Kind::User, w.alice)]
            ),
            (
                PartyRole::RequiredAttendee,
                vec![RecordRef::new(Kind::User, w.alice)]
            ),
            (PartyRole::RequiredAttendee, vec![w.carol]),
            (PartyRole::OptionalAttendee, vec![w.lena]),
        ]
    );
    // The email activity is there too, and the appointment is in the records' timelines.
    assert_eq!(t.activity.kind(), Kind::Email);
    assert!(w
        .store
        .activities_of(w.lena.id, 10)
        .unwrap()
        .iter()
        .any(|a| a.id == ap.id));
    // Another mailbox tracking the same invitation shares the appointment (by UID).
    w.edit_settings(|s| s.track_appointments_from_non_organizer = true);
    let e = w
        .engine
        .track(&w.erin(), &raw, TrackRequest::new(TrackSource::Keyword))
        .unwrap();
    assert_eq!(e.appointment.unwrap().id, ap.id);
    assert_eq!(e.activity.id, t.activity.id);
    // Changing the email's regarding moves the appointment with it.
    let id = World::email(&t.activity).message_id.clone();
    w.engine
        .set_regarding(&w.alice(), &id, Some(w.carol), false)
        .unwrap();
    assert_eq!(
        w.store.activity(ap.id).unwrap().unwrap().regarding,
        Some(w.carol)
    );
    // Tracking it again regarding another record moves both too.
    let again = w
        .engine
        .track(
            &w.erin(),
            &raw,
            TrackRequest::new(TrackSource::Pane).regarding(w.lena),
        )
        .unwrap();
    assert_eq!(again.activity.regarding, Some(w.lena));
    assert_eq!(again.appointment.unwrap().regarding, Some(w.lena));
}

#[test]
fn a_non_organizer_is_refused_unless_the_organisation_allows_it() {
    let w = World::new();
    let raw = mail("meeting-attendee.eml");
    let before = w.snapshot();
    let e = w
        .engine
        .track(&w.alice(), &raw, TrackRequest::new(TrackSource::Keyword))
        .unwrap_err();
    assert!(
        matches!(e, TrackError::NotOrganizer { ref organizer } if organizer == "carol@fabrikam.example"),
        "{e}"
    );
    assert!(e.alert_text().contains("organizer"));
    assert_eq!(w.snapshot(), before);
    w.edit_settings(|s| s.track_appointments_from_non_organizer = true);
    let t = w
        .engine
        .track(&w.alice(), &raw, TrackRequest::new(TrackSource::Keyword))
        .unwrap();
    let ap = t.appointment.unwrap();
    assert_eq!(ap.parties[0].role, PartyRole::Organizer);
    assert_eq!(ap.parties[0].records, vec![w.carol]);
}

#[test]
fn a_recurring_meeting_is_pending_until_the_worker_completes_it() {
    let w = World::new();
    let raw = mail("meeting-recurring.eml");
    let t = w
        .engine
        .track(
            &w.alice(),
            &raw,
            TrackRequest::new(TrackSource::Keyword).at(loc(9)),
        )
        .unwrap();
    assert_eq!(t.record.status, TrackStatus::Pending);
    assert!(t.appointment.is_none());
    assert_eq!(t.headers.activity_id, Some(t.activity.id.to_string()));
    assert!(w
        .store
        .appointment_by_uid("meet-3@contoso.example")
        .unwrap()
        .is_none());
    let queue = w.engine.pending(w.alice, 10).unwrap();
    assert_eq!(queue, vec![t.record.clone()]);
    let done = w.engine.complete_pending(&queue[0], &raw).unwrap();
    assert_eq!(done.record.status, TrackStatus::Tracked);
    assert_eq!(done.activity.id, t.activity.id);
    let ap = done.appointment.unwrap();
    let ActivityDetails::Appointment(d) = &ap.details else {
        panic!("not an appointment")
    };
    assert_eq!(d.recurrence.as_deref(), Some("FREQ=WEEKLY;COUNT=10"));
    assert_eq!(
        w.store
            .appointment_by_uid("meet-3@contoso.example")
            .unwrap()
            .unwrap()
            .id,
        ap.id
    );
    assert!(w.engine.pending(w.alice, 10).unwrap().is_empty());
}
