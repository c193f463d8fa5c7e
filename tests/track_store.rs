//! The store additions the tracking engine relies on: the Thread-Index, token,
//! appointment-UID and location indexes survive an export/import round trip, and a
//! version 2 store (without them) is migrated to version 3 on open.

#[path = "track_support.rs"]
mod support;

use std::sync::Arc;

use crmproxy::store::sled::migrate::{stored_version, CURRENT_VERSION};
use crmproxy::store::*;
use crmproxy::track::*;
use support::*;

fn place() -> MessageLocation {
    MessageLocation {
        folder: "INBOX".into(),
        uid_validity: 11,
        uid: 12,
    }
}

fn fill(w: &World) -> (Activity, Activity) {
    w.edit_settings(|s| {
        s.track_appointments_from_non_organizer = true;
        s.subject_tracking_token = true;
    });
    let t = w
        .engine
        .track(
            &w.alice(),
            &mail("thread-original.eml"),
            TrackRequest::new(TrackSource::Keyword).at(place()),
        )
        .unwrap();
    w.engine
        .track(
            &w.alice(),
            &mail("token-original.eml"),
            TrackRequest::new(TrackSource::Pane),
        )
        .unwrap();
    let m = w
        .engine
        .track(
            &w.alice(),
            &mail("meeting-organizer.eml"),
            TrackRequest::new(TrackSource::Pane),
        )
        .unwrap();
    (t.activity, m.appointment.unwrap())
}

fn lookups_work(store: &dyn CrmStore, w: &World, email: &Activity, appt: &Activity) {
    let ti = World::email(email).thread_index.clone().unwrap();
    assert_eq!(
        store.emails_by_thread_index(&ti, 10).unwrap()[0].id,
        email.id
    );
    assert_eq!(
        store
            .email_by_tracking_token("CRM:0004711")
            .unwrap()
            .unwrap()
            .subject,
        "Your trial CRM:0004711"
    );
    assert!(store.email_by_tracking_token("CRM:471").unwrap().is_none());
    assert_eq!(
        store
            .appointment_by_uid("meet-1@contoso.example")
            .unwrap()
            .unwrap()
            .id,
        appt.id
    );
    assert_eq!(
        store
            .tracking_at(w.alice, &place())
            .unwrap()
            .unwrap()
            .activity,
        Some(email.id)
    );
}

fn the_lookup_indexes_survive_export_and_import(b: Backend) {
    let w = World::on(b);
    let (email, appt) = fill(&w);
    lookups_work(w.store.as_ref(), &w, &email, &appt);
    let bundle = w.store.export().unwrap();
    let json = serde_json::to_string(&bundle).unwrap();
    let back: ExportBundle = serde_json::from_str(&json).unwrap();
    let other = w.place.another();
    other.import_bundle(&back).unwrap();
    lookups_work(&*other, &w, &email, &appt);
    assert_eq!(other.export().unwrap(), bundle);
    // S/MIME metadata round-trips too.
    let w2 = World::on(b);
    let t = w2
        .engine
        .track(
            &w2.alice(),
            &fixture("smime/signed-opaque.eml"),
            TrackRequest::new(TrackSource::Cli),
        )
        .unwrap();
    let b = w2.store.export().unwrap();
    let back: ExportBundle = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
    let a = back
        .activities
        .iter()
        .find(|a| a.id == t.activity.id)
        .unwrap();
    assert_eq!(World::email(a).smime, World::email(&t.activity).smime);
}

#[test]
fn a_version_2_store_gets_the_new_indexes_on_open() {
    let w = World::new();
    let (email, appt) = fill(&w);
    let dir = w.place.dir.path().join("store");
    let World {
        store,
        engine,
        place: mut held,
        ..
    } = w;
    drop(engine);
    drop(store);
    held.close();
    {
        // Make it look like version 2: the new trees empty, the version 2.
        let db = ::sled::open(dir.join("db")).unwrap();
        for t in ["threads", "tokens", "appt_uids", "locations"] {
            db.open_tree(t).unwrap().clear().unwrap();
        }
        db.open_tree("meta")
            .unwrap()
            .insert("schema_version", &2u32.to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    let reopened = Arc::new(SledStore::open(&dir).unwrap());
    assert_eq!(stored_version(&reopened).unwrap(), Some(CURRENT_VERSION));
    assert_eq!(CURRENT_VERSION, 6);
    let ti = World::email(&email).thread_index.clone().unwrap();
    assert_eq!(
        reopened.emails_by_thread_index(&ti, 10).unwrap()[0].id,
        email.id
    );
    assert_eq!(
        reopened
            .appointment_by_uid("meet-1@contoso.example")
            .unwrap()
            .unwrap()
            .id,
        appt.id
    );
    assert!(reopened
        .email_by_tracking_token("CRM:0004711")
        .unwrap()
        .is_some());
    let owner = email.owner;
    assert!(reopened.tracking_at(owner, &place()).unwrap().is_some());
    drop(held);
}

fn put_tracked_is_all_or_nothing(b: Backend) {
    let w = World::on(b);
    let t = w
        .engine
        .track(
            &w.alice(),
            &mail("from-contact.eml"),
            TrackRequest::new(TrackSource::Pane),
        )
        .unwrap();
    let before = w.snapshot();
    // A valid activity change with a tracking record whose requester is no delegate.
    let mut a = t.activity.clone();
    a.subject = "changed".into();
    let mut r = t.record.clone();
    r.requested_by = w.erin;
    let e = w.store.put_tracked(vec![a], vec![r]).unwrap_err();
    assert!(e.to_string().contains("delegates"), "{e}");
    assert_eq!(w.snapshot(), before);
}

on_both_backends!(
    the_lookup_indexes_survive_export_and_import,
    put_tracked_is_all_or_nothing,
);
