//! Regarding resolution in the order of SPEC section 5 (explicit, folder mapping,
//! In-Reply-To, References newest first, subject token, Thread-Index, none), set /
//! change / clear regarding, untrack, privileges and delegates (SPEC section 8).

#[path = "track_support.rs"]
mod support;

use crmproxy::store::*;
use crmproxy::track::*;
use support::*;

fn track(w: &World, name: &str, req: TrackRequest) -> Tracked {
    w.engine.track(&w.alice(), &mail(name), req).unwrap()
}

fn keyword() -> TrackRequest {
    TrackRequest::new(TrackSource::Keyword)
}

#[test]
fn replies_inherit_regarding_by_in_reply_to_then_references_then_thread_index() {
    let w = World::new();
    let original = track(
        &w,
        "thread-original.eml",
        keyword().regarding(w.opportunity),
    );
    let e = World::email(&original.activity);
    assert_eq!(original.activity.regarding, Some(w.opportunity));
    assert_eq!(e.correlation, Correlation::Explicit);
    assert_eq!(original.record.regarding, Some(w.opportunity));

    let reply = track(&w, "thread-reply.eml", keyword());
    let e = World::email(&reply.activity);
    assert_eq!(reply.activity.regarding, Some(w.opportunity));
    assert_eq!(e.correlation, Correlation::InReplyTo);
    assert_eq!(e.correlated_with, Some(original.activity.id));
    assert_eq!(e.in_reply_to, Some(mid("thread-1@fabrikam.example")));
    // A correlation is not something the user asked for.
    assert_eq!(reply.record.regarding, None);

    // In-Reply-To names an untracked message; References, newest first, find the reply.
    let refs = track(&w, "thread-references.eml", keyword());
    let e = World::email(&refs.activity);
    assert_eq!(e.correlation, Correlation::InReplyTo);
    assert_eq!(e.correlated_with, Some(reply.activity.id));
    assert_eq!(refs.activity.regarding, Some(w.opportunity));

    // Only Outlook's Thread-Index links this one: the closest ancestor is the reply.
    let ti = track(&w, "thread-index-only.eml", keyword());
    let e = World::email(&ti.activity);
    assert_eq!(e.correlation, Correlation::ThreadIndex);
    assert_eq!(e.correlated_with, Some(reply.activity.id));
    assert_eq!(ti.activity.regarding, Some(w.opportunity));
    let h = ti.headers.regarding.clone().unwrap();
    assert_eq!(h.2, "40 licences");
}

#[test]
fn an_explicit_regarding_beats_correlation_and_the_folder() {
    let w = World::new();
    track(
        &w,
        "thread-original.eml",
        keyword().regarding(w.opportunity),
    );
    let reply = track(&w, "thread-reply.eml", keyword().regarding(w.adatum));
    assert_eq!(reply.activity.regarding, Some(w.adatum));
    assert_eq!(
        World::email(&reply.activity).correlation,
        Correlation::Explicit
    );
    assert_eq!(World::email(&reply.activity).correlated_with, None);

    let req = TrackRequest::new(TrackSource::Folder(FABRIKAM_FOLDER.into()));
    let f = track(&w, "from-contact.eml", req.clone());
    assert_eq!(f.activity.regarding, Some(w.fabrikam));
    assert_eq!(
        World::email(&f.activity).correlation,
        Correlation::FolderMapping
    );
    assert_eq!(f.record.via.as_deref(), Some("folder:CRM/Fabrikam"));
    let f2 = track(&w, "from-lead.eml", req.regarding(w.lena));
    assert_eq!(f2.activity.regarding, Some(w.lena));

    // The folder beats correlation too.
    let raw = mail("thread-references.eml");
    let t = w
        .engine
        .track(
            &w.alice(),
            &raw,
            TrackRequest::new(TrackSource::Folder(FABRIKAM_FOLDER.into())),
        )
        .unwrap();
    assert_eq!(t.activity.regarding, Some(w.fabrikam));
    assert!(w.engine.is_tracking_folder(FABRIKAM_FOLDER).unwrap());
    assert!(w.engine.is_tracking_folder("CRM/Track").unwrap());
    assert!(!w.engine.is_tracking_folder("INBOX").unwrap());
}

#[test]
fn subject_tokens_correlate_only_when_enabled() {
    let w = World::new();
    track(&w, "token-original.eml", keyword().regarding(w.lena));
    let off = track(&w, "token-reply.eml", keyword());
    assert_eq!(World::email(&off.activity).correlation, Correlation::None);
    assert_eq!(off.activity.regarding, None);

    // The organisation's setting turns them on (as does `[tracking] subject_tracking_token`).
    let w = World::new();
    let original = track(&w, "token-original.eml", keyword().regarding(w.lena));
    w.edit_settings(|s| s.subject_tracking_token = true);
    let on = track(&w, "token-reply.eml", keyword());
    let e = World::email(&on.activity);
    assert_eq!(e.correlation, Correlation::TrackingToken);
    assert_eq!(e.correlated_with, Some(original.activity.id));
    assert_eq!(on.activity.regarding, Some(w.lena));

    let w = World::with_config(|c| c.subject_tracking_token = true);
    track(&w, "token-original.eml", keyword().regarding(w.lena));
    let on = track(&w, "token-reply.eml", keyword());
    assert_eq!(
        World::email(&on.activity).correlation,
        Correlation::TrackingToken
    );
}

#[test]
fn nothing_to_correlate_with_means_tracked_not_regarding() {
    let w = World::new();
    let t = track(&w, "from-unknown.eml", keyword());
    assert_eq!(t.activity.regarding, None);
    assert_eq!(World::email(&t.activity).correlation, Correlation::None);
    assert_eq!(t.headers.regarding, None);
    assert_eq!(t.activity.parties[0].name, "Søren Stränger");
    assert_eq!(t.activity.subject, "Grüße from from-unknown");
}

#[test]
fn set_change_and_clear_regarding_show_in_every_mailbox() {
    let w = World::new();
    let raw = mail("from-contact.eml");
    let t = w.engine.track(&w.alice(), &raw, keyword()).unwrap();
    w.engine.track(&w.erin(), &raw, keyword()).unwrap();
    let id = World::email(&t.activity).message_id.clone();

    let r = w
        .engine
        .set_regarding(&w.alice(), &id, Some(w.opportunity), false)
        .unwrap();
    assert_eq!(r.regarding, Some(w.opportunity));
    let a = w.store.activity(t.activity.id).unwrap().unwrap();
    assert_eq!(a.regarding, Some(w.opportunity));
    assert_eq!(World::email(&a).correlation, Correlation::Explicit);
    let h = w.engine.headers(w.erin, &id).unwrap().unwrap();
    assert_eq!(h.regarding.unwrap().2, "40 licences");

    w.engine
        .set_regarding(&w.erin(), &id, Some(w.carol), false)
        .unwrap();
    let h = w.engine.headers(w.alice, &id).unwrap().unwrap();
    assert_eq!(h.regarding.unwrap().2, "Carol Fabré");

    w.engine
        .set_regarding(&w.alice(), &id, None, false)
        .unwrap();
    let a = w.store.activity(t.activity.id).unwrap().unwrap();
    assert_eq!(a.regarding, None);
    assert_eq!(World::email(&a).correlation, Correlation::None);
    assert_eq!(
        w.engine.headers(w.alice, &id).unwrap().unwrap().regarding,
        None
    );
    // The record it pointed to may now be deleted: nothing links to it any more.
    assert!(w.store.delete_record(w.opportunity.id).is_ok());
}

#[test]
fn bad_regarding_choices_are_refused_and_change_nothing() {
    let w = World::new();
    let t = track(&w, "from-contact.eml", keyword());
    let id = World::email(&t.activity).message_id.clone();
    let before = w.snapshot();
    let user_ref = RecordRef::new(Kind::User, w.erin);
    let e = w
        .engine
        .set_regarding(&w.alice(), &id, Some(user_ref), false)
        .unwrap_err();
    assert!(
        matches!(e, TrackError::NotRegardable { kind: Kind::User }),
        "{e}"
    );
    let ghost = RecordRef {
        kind: Kind::Account,
        id: uuid::Uuid::now_v7(),
    };
    let e = w
        .engine
        .set_regarding(&w.alice(), &id, Some(ghost), false)
        .unwrap_err();
    assert!(matches!(e, TrackError::RegardingMissing { .. }), "{e}");
    // A contact id given as an account is missing, not silently accepted.
    let wrong_kind = RecordRef {
        kind: Kind::Account,
        id: w.carol.id,
    };
    assert!(w
        .engine
        .track(
            &w.alice(),
            &mail("from-lead.eml"),
            keyword().regarding(wrong_kind)
        )
        .is_err());
    let e = w
        .engine
        .set_regarding(&w.alice(), &mid("never@seen.example"), Some(w.carol), false)
        .unwrap_err();
    assert!(matches!(e, TrackError::NotTracked { .. }), "{e}");
    assert_eq!(w.snapshot(), before);
}

#[test]
fn untrack_ends_tracking_in_one_mailbox_and_keeps_the_activity() {
    let w = World::new();
    let raw = mail("thread-original.eml");
    let t = w.engine.track(&w.alice(), &raw, keyword()).unwrap();
    w.engine.track(&w.erin(), &raw, keyword()).unwrap();
    let id = World::email(&t.activity).message_id.clone();
    assert!(w.engine.untrack(&w.alice(), &id).unwrap());
    assert_eq!(w.engine.tracking(w.alice, &id).unwrap(), None);
    assert_eq!(w.engine.headers(w.alice, &id).unwrap(), None);
    assert!(w.engine.headers(w.erin, &id).unwrap().is_some());
    assert!(w.store.activity(t.activity.id).unwrap().is_some());
    assert!(!w.engine.untrack(&w.alice(), &id).unwrap());
    assert!(w.engine.untrack(&w.erin(), &id).unwrap());
    // Still in the CRM after the last mailbox stops tracking it.
    assert!(w.store.activity(t.activity.id).unwrap().is_some());
    assert_eq!(
        w.store.activity_by_message_id(&id).unwrap().unwrap().id,
        t.activity.id
    );
}

#[test]
fn unknown_users_missing_privilege_and_strangers_are_refused() {
    let w = World::new();
    let e = w
        .engine
        .actor("nobody@contoso.example", "nobody@contoso.example")
        .unwrap_err();
    assert!(matches!(e, TrackError::UnknownUser { .. }), "{e}");
    assert!(e.alert_text().contains("not a CRM user"));
    let e = w.engine.actor("not an address", "").unwrap_err();
    assert!(matches!(e, TrackError::UnknownUser { .. }), "{e}");
    let e = w
        .engine
        .actor("dave@contoso.example", "dave@contoso.example")
        .unwrap_err();
    assert!(matches!(e, TrackError::NoPrivilege { .. }), "{e}");
    assert!(e.alert_text().contains("use_app"), "{}", e.alert_text());
    // Erin is not Alice's delegate.
    let e = w
        .engine
        .actor("alice@contoso.example", "erin@contoso.example")
        .unwrap_err();
    assert!(matches!(e, TrackError::NotDelegate { .. }), "{e}");
    // The login is case-insensitive and the acting login may be left empty.
    let a = w.engine.actor("ALICE@contoso.example", "").unwrap();
    assert_eq!(a.owner_id(), w.alice);
    assert!(!a.is_delegate());
}

#[test]
fn a_privilege_revoked_mid_session_refuses_and_changes_nothing() {
    let w = World::new();
    let alice = w.alice();
    let bob = w.bob_for_alice();
    let t = w
        .engine
        .track(&alice, &mail("thread-original.eml"), keyword())
        .unwrap();
    let id = World::email(&t.activity).message_id.clone();
    w.store
        .set_privilege(w.alice, Privilege::UseApp, false)
        .unwrap();
    let before = w.snapshot();
    let raw = mail("from-contact.eml");
    let refusals = [
        w.engine.track(&alice, &raw, keyword()).unwrap_err(),
        w.engine.untrack(&alice, &id).unwrap_err(),
        w.engine
            .set_regarding(&alice, &id, Some(w.carol), false)
            .unwrap_err(),
        w.engine
            .request(&alice, &mid("later@x.example"), keyword())
            .unwrap_err(),
        // A delegate cannot act on the mailbox of an owner without the privilege.
        w.engine.track(&bob, &raw, keyword()).unwrap_err(),
    ];
    for e in refusals {
        assert!(matches!(e, TrackError::NoPrivilege { .. }), "{e}");
        assert!(e.is_refusal());
    }
    assert_eq!(w.snapshot(), before);
    // A delegate whose delegation was withdrawn is refused too.
    w.store
        .set_privilege(w.alice, Privilege::UseApp, true)
        .unwrap();
    w.store.set_delegate(w.alice, w.bob, false).unwrap();
    let e = w.engine.track(&bob, &raw, keyword()).unwrap_err();
    assert!(matches!(e, TrackError::NotDelegate { .. }), "{e}");
    assert_eq!(w.snapshot(), before);
}

#[test]
fn delegate_tracking_belongs_to_the_owner_and_records_the_delegate() {
    let w = World::new();
    let bob = w.bob_for_alice();
    assert!(bob.is_delegate());
    let t = w
        .engine
        .track(
            &bob,
            &mail("from-contact.eml"),
            keyword().regarding(w.fabrikam),
        )
        .unwrap();
    assert_eq!(t.activity.owner, w.alice);
    assert_eq!(t.record.owner, w.alice);
    assert_eq!(t.record.requested_by, w.bob);
    let id = World::email(&t.activity).message_id.clone();
    // Shows for both: it is the owner's mailbox that tracks it.
    assert!(w.engine.headers(w.alice, &id).unwrap().is_some());
    assert_eq!(w.engine.headers(w.bob, &id).unwrap(), None);
    // The owner changing regarding afterwards records the owner.
    let r = w
        .engine
        .set_regarding(&w.alice(), &id, Some(w.carol), false)
        .unwrap();
    assert_eq!(r.requested_by, w.alice);
}

#[test]
fn delegates_may_not_use_a_new_contact_nor_track_contacts() {
    let w = World::new();
    let bob = w.bob_for_alice();
    let before = w.snapshot();
    let mut req = keyword().regarding(w.carol);
    req.regarding_is_new_contact = true;
    let e = w
        .engine
        .track(&bob, &mail("from-unknown.eml"), req.clone())
        .unwrap_err();
    assert!(matches!(e, TrackError::DelegateNewContact), "{e}");
    let e = w
        .engine
        .request(&bob, &mid("x@y.example"), req.clone())
        .unwrap_err();
    assert!(matches!(e, TrackError::DelegateNewContact), "{e}");
    assert_eq!(w.snapshot(), before);
    // The owner may.
    let t = w
        .engine
        .track(&w.alice(), &mail("from-unknown.eml"), req)
        .unwrap();
    assert_eq!(t.activity.regarding, Some(w.carol));
    let id = World::email(&t.activity).message_id.clone();
    let e = w
        .engine
        .set_regarding(&bob, &id, Some(w.carol), true)
        .unwrap_err();
    assert!(matches!(e, TrackError::DelegateNewContact), "{e}");
    // An existing contact is fine for a delegate.
    w.engine
        .set_regarding(&bob, &id, Some(w.carol), false)
        .unwrap();
    // Contact tracking (the owner's address book) is the owner's alone.
    assert!(matches!(
        w.engine.check_may_track_contacts(&bob),
        Err(TrackError::DelegateContacts)
    ));
    assert!(w.engine.check_may_track_contacts(&w.alice()).is_ok());
}

#[test]
fn a_bad_folder_mapping_is_refused_when_the_engine_starts() {
    let w = World::new();
    for value in [
        "account",
        "planet:0190",
        "user:00000000-0000-0000-0000-000000000000",
    ] {
        let mut cfg = crmproxy::config::TrackingConfig::default();
        cfg.folder_regarding.insert("CRM/X".into(), value.into());
        let e = Engine::new(w.store.clone(), cfg).unwrap_err();
        assert!(
            matches!(e, TrackError::BadFolderMapping { .. }),
            "{value}: {e}"
        );
    }
    let mut cfg = crmproxy::config::TrackingConfig::default();
    cfg.folder_regarding
        .insert("CRM/X".into(), format!("contact:{}", w.fabrikam.id));
    let e = Engine::new(w.store.clone(), cfg).unwrap_err();
    assert!(
        e.to_string().contains("is of type account, not contact"),
        "{e}"
    );
}
