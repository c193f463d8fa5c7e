//! Bulk tracking (`Engine::track_batch`): one atomic write for many messages,
//! later messages correlating with earlier ones of the same batch, duplicates,
//! a refused message left out while the others are written, and a refused actor
//! writing nothing.

#[path = "track_support.rs"]
mod support;

use crmproxy::store::*;
use crmproxy::track::*;
use support::*;

#[test]
fn a_batch_tracks_every_message_and_correlates_within_itself() {
    let w = World::new();
    w.edit_settings(|s| s.subject_tracking_token = true);
    let files = [
        "thread-original.eml",
        "thread-reply.eml",
        "thread-references.eml",
        "thread-index-only.eml",
        "token-original.eml",
        "token-reply.eml",
        "meeting-organizer.eml",
        "thread-original.eml",
    ];
    let raws: Vec<Vec<u8>> = files.iter().map(|f| mail(f)).collect();
    let refs: Vec<&[u8]> = raws.iter().map(|r| r.as_slice()).collect();
    let req = TrackRequest::new(TrackSource::Folder(FABRIKAM_FOLDER.into()));
    let out = w.engine.track_batch(&w.alice(), &refs, &req).unwrap();
    let t: Vec<Tracked> = out.into_iter().map(|r| r.unwrap()).collect();
    // The folder maps to Fabrikam: every email is regarding it by the folder.
    for x in &t {
        assert_eq!(
            x.activity.regarding,
            Some(w.fabrikam),
            "{}",
            x.activity.subject
        );
        assert_eq!(x.record.status, TrackStatus::Tracked);
        // What the batch returns is what the store holds.
        assert_eq!(
            w.store.activity(x.activity.id).unwrap().as_ref(),
            Some(&x.activity)
        );
        let blob = World::email(&x.activity).raw.clone().unwrap();
        assert!(!w.store.blob(&blob).unwrap().is_empty());
    }
    // The duplicate is the same activity, not a new one.
    assert!(t[0].created && !t[7].created);
    assert_eq!(t[0].activity.id, t[7].activity.id);
    assert!(t[6].appointment.is_some());
    assert_eq!(w.snapshot().0.len(), 8, "7 emails and 1 appointment");
    assert_eq!(w.snapshot().1.len(), 7);

    // Without a folder, correlation finds the batch's own earlier messages.
    let w = World::new();
    w.edit_settings(|s| s.subject_tracking_token = true);
    let req = TrackRequest::new(TrackSource::Automatic);
    let first = w
        .engine
        .track(
            &w.alice(),
            &mail("token-original.eml"),
            TrackRequest::new(TrackSource::Pane).regarding(w.lena),
        )
        .unwrap();
    let out = w.engine.track_batch(&w.alice(), &refs[..6], &req).unwrap();
    let t: Vec<Tracked> = out.into_iter().map(|r| r.unwrap()).collect();
    let corr = |i: usize| {
        let e = World::email(&t[i].activity);
        (e.correlation, e.correlated_with)
    };
    assert_eq!(corr(0), (Correlation::None, None));
    assert_eq!(corr(1), (Correlation::InReplyTo, Some(t[0].activity.id)));
    assert_eq!(corr(2), (Correlation::InReplyTo, Some(t[1].activity.id)));
    assert_eq!(corr(3), (Correlation::ThreadIndex, Some(t[1].activity.id)));
    assert_eq!(t[4].activity.id, first.activity.id);
    assert_eq!(
        corr(5),
        (Correlation::TrackingToken, Some(first.activity.id))
    );
    assert_eq!(t[5].activity.regarding, Some(w.lena));
}

#[test]
fn a_refused_message_is_left_out_and_the_rest_written() {
    let w = World::new();
    let raws = [
        mail("from-contact.eml"),
        mail("meeting-attendee.eml"),
        Vec::new(),
        mail("from-lead.eml"),
    ];
    let refs: Vec<&[u8]> = raws.iter().map(|r| r.as_slice()).collect();
    let out = w
        .engine
        .track_batch(
            &w.alice(),
            &refs,
            &TrackRequest::new(TrackSource::Automatic),
        )
        .unwrap();
    assert!(out[0].is_ok());
    assert!(matches!(out[1], Err(TrackError::NotOrganizer { .. })));
    assert!(matches!(out[2], Err(TrackError::NotAMessage(_))));
    assert!(out[3].is_ok());
    assert_eq!(w.snapshot().0.len(), 2);
    assert_eq!(w.snapshot().1.len(), 2);
}

#[test]
fn a_refused_actor_writes_nothing() {
    let w = World::new();
    let alice = w.alice();
    w.store
        .set_privilege(w.alice, Privilege::UseApp, false)
        .unwrap();
    let raws = [mail("from-contact.eml"), mail("from-lead.eml")];
    let refs: Vec<&[u8]> = raws.iter().map(|r| r.as_slice()).collect();
    let before = w.snapshot();
    let e = w
        .engine
        .track_batch(&alice, &refs, &TrackRequest::new(TrackSource::Automatic))
        .unwrap_err();
    assert!(matches!(e, TrackError::NoPrivilege { .. }), "{e}");
    assert_eq!(w.snapshot(), before);
    assert!(w
        .engine
        .track_batch(&w.erin(), &[], &TrackRequest::new(TrackSource::Automatic))
        .unwrap()
        .is_empty());
}
