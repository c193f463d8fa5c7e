//! Meeting invitations (iTIP REQUEST, fixtures/mail/meeting-*.eml) tracked by the
//! keyword through a real `crmproxy serve` and the private Dovecot: the organizer's
//! invitation becomes an appointment with its attendees; a non-organizer is refused
//! with the engine's text in a `NO [ALERT]` (untagged, as the refusal comes from the
//! sync worker after the STORE was answered) and nothing changes, unless the
//! organisation allows tracking appointments from non-organizers.

mod common;
mod tracking_support;

use common::imap::RawImap;
use crmproxy::store::{CrmStore, SledStore};
use std::path::Path;
use tracking_support::*;

fn fixture(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/mail")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A CRM user signing in as `login` and also known as `extra` (e.g. the address
/// the invitation names as organizer).
fn add_user_also(data: &Path, login: &str, extra: &[&str]) {
    let mut args = vec!["user", "add", login, "--login", login, "--grant", "use_app"];
    for e in extra {
        args.extend(["--login", e]);
    }
    crm(data, &args);
}

/// Append `raw` to INBOX, ask for tracking through the proxy; the proxied session.
fn ask_to_track(env: &Env, user: &str, raw: &[u8]) -> (RawImap, RawImap) {
    let mut direct = env.direct(user);
    assert!(direct.append("INBOX", raw).ok());
    let mut c = env.through_proxy(user);
    assert!(c.cmd("SELECT INBOX").ok());
    let r = c.cmd("UID STORE 1 +FLAGS.SILENT ($CRM_Track)");
    assert!(r.ok(), "{}", r.tagged);
    (direct, c)
}

/// The appointment the store holds for "Licence review", as `show --json`.
fn appointment(data: &Path) -> Option<serde_json::Value> {
    let found: serde_json::Value =
        serde_json::from_str(&crm(data, &["search", "Licence review", "--json"])).ok()?;
    let hits = found.as_array().cloned().or_else(|| {
        found
            .get("hits")
            .or_else(|| found.get("results"))
            .and_then(|h| h.as_array().cloned())
    })?;
    hits.iter().find_map(|h| {
        let shown = show(data, h.get("id")?.as_str()?);
        (shown["activity"]["details"]["type"] == "appointment").then_some(shown)
    })
}

/// (address, role) of each party of a shown activity.
fn parties(shown: &serde_json::Value) -> Vec<(String, String)> {
    shown["activity"]["parties"]
        .as_array()
        .expect("parties")
        .iter()
        .map(|p| {
            (
                p["address"].as_str().unwrap_or_default().to_string(),
                p["role"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn has_party(shown: &serde_json::Value, address: &str, role: &str) -> bool {
    parties(shown)
        .iter()
        .any(|(a, r)| a == address && r == role)
}

#[test]
fn the_organizer_tracks_an_invitation_as_an_appointment_with_attendees() {
    let env = Env::start("");
    let login = format!("{}@crm-test.example", common::unique_user("organizer"));
    add_user_also(env.data(), &login, &["alice@contoso.example"]);
    let raw = fixture("meeting-organizer.eml");
    let (mut direct, mut c) = ask_to_track(&env, &login, &raw);
    wait_keyword(&mut direct, "INBOX", 1, "$CRM_Tracked", true);

    let (_, body) = fetch(&mut c, 1, "BODY.PEEK[]");
    assert_eq!(body, raw);
    let shown = appointment(env.data()).expect("an appointment for the invitation");
    assert!(
        email_titled(env.data(), "Invitation: Licence review"),
        "and the email"
    );
    let details = &shown["activity"]["details"];
    assert_eq!(details["uid"], "meet-1@contoso.example", "{shown}");
    assert_eq!(details["location"], "Room 4 / Teams", "{shown}");
    assert_eq!(details["start"], "2026-12-01T10:00:00Z", "{shown}");
    assert!(
        has_party(&shown, "alice@contoso.example", "organizer"),
        "{shown}"
    );
    assert!(
        has_party(&shown, "alice@contoso.example", "required_attendee"),
        "{shown}"
    );
    assert!(
        has_party(&shown, "carol@fabrikam.example", "required_attendee"),
        "{shown}"
    );
    assert!(
        has_party(&shown, "lena@northwind.example", "optional_attendee"),
        "{shown}"
    );
    // No refusal was shown.
    let r = c.cmd("NOOP");
    assert!(!r.text().contains("[ALERT]"), "{}", r.text());
}

#[test]
fn a_non_organizer_is_refused_with_the_engines_text_and_nothing_changes() {
    let env = Env::start("");
    let (login, _) = env.user("attendee", true);
    let raw = fixture("meeting-attendee.eml");
    let (mut direct, mut c) = ask_to_track(&env, &login, &raw);
    // The refusal comes as `* NO [ALERT] …` before a later command's tagged answer.
    let alert = wait_for("the refusal on the proxied session", || {
        let r = c.cmd("NOOP");
        assert!(r.ok(), "{}", r.tagged);
        r.text()
            .lines()
            .find(|l| l.starts_with("* NO [ALERT] "))
            .map(str::to_string)
    });
    assert!(
        alert.contains("CRM: only the organizer (carol@fabrikam.example) may track this meeting"),
        "{alert}"
    );
    // Shown once.
    let r = c.cmd("NOOP");
    assert!(!r.text().contains("[ALERT]"), "{}", r.text());
    // Nothing changes: the request keyword is taken off, no state keyword, no
    // block, nothing in the store.
    wait_keyword(&mut direct, "INBOX", 1, "$CRM_Track", false);
    let f = flags(&mut direct, "INBOX", 1);
    assert!(!f.contains("$CRM_"), "{f}");
    let (_, body) = fetch(&mut c, 1, "BODY.PEEK[]");
    assert_eq!(body, raw);
    assert!(appointment(env.data()).is_none());
    assert!(!email_titled(env.data(), "Invitation: Licence review"));
}

#[test]
fn the_org_setting_lets_a_non_organizer_track_an_invitation() {
    let data = tempfile::tempdir().unwrap();
    {
        let store = SledStore::open(data.path().join("store")).unwrap();
        let mut s = store.settings().unwrap();
        s.track_appointments_from_non_organizer = true;
        store.put_settings(s).unwrap();
    }
    let dv = common::dovecot();
    let proxy = common::Proxy::start_with(
        dv,
        common::ProxyOptions {
            data_dir: Some(data.path().to_path_buf()),
            config_toml: Some("[tracking]\nload_demo_on_first_run = false\n".into()),
            ..Default::default()
        },
    );
    let env = Env { dv, proxy };
    let (login, _) = env.user("allowed", true);
    let raw = fixture("meeting-attendee.eml");
    let (mut direct, mut c) = ask_to_track(&env, &login, &raw);
    wait_keyword(&mut direct, "INBOX", 1, "$CRM_Tracked", true);
    let shown = appointment(env.data()).expect("an appointment for the invitation");
    assert_eq!(
        shown["activity"]["details"]["uid"], "meet-2@fabrikam.example",
        "{shown}"
    );
    assert!(
        has_party(&shown, "carol@fabrikam.example", "organizer"),
        "{shown}"
    );
    assert!(
        has_party(&shown, "lena@northwind.example", "optional_attendee"),
        "{shown}"
    );
    let r = c.cmd("NOOP");
    assert!(!r.text().contains("[ALERT]"), "{}", r.text());
}

#[test]
fn a_recurring_invitation_goes_through_pending_and_is_completed_at_once() {
    // The default sweep interval (15 minutes) is far longer than this test may take:
    // the worker completes what went pending in the same job.
    let env = Env::start("");
    let login = format!("{}@crm-test.example", common::unique_user("recurring"));
    add_user_also(env.data(), &login, &["alice@contoso.example"]);
    // A first request, so that the worker's start-up sweep is behind it.
    let plain = message("before-recurring@customer.example", "Before", "");
    let (mut direct, mut c) = ask_to_track(&env, &login, &plain);
    wait_keyword(&mut direct, "INBOX", 1, "$CRM_Tracked", true);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let raw = fixture("meeting-recurring.eml");
    assert!(direct.append("INBOX", &raw).ok());
    assert!(c.cmd("NOOP").ok());
    let r = c.cmd("UID STORE 2 +FLAGS.SILENT ($CRM_Track)");
    assert!(r.ok(), "{}", r.tagged);
    wait_keyword(&mut direct, "INBOX", 2, "$CRM_Tracked", true);
    // The state keyword is added before the pending one goes (two STOREs: IMAP
    // has no atomic swap), so wait for the second too.
    wait_keyword(&mut direct, "INBOX", 2, "$CRM_Pending", false);
    let f = flags(&mut direct, "INBOX", 2);
    assert!(!f.contains("$CRM_Pending"), "{f}");
    let shown = appointment(env.data()).expect("an appointment for the recurring meeting");
    let details = &shown["activity"]["details"];
    assert_eq!(details["recurrence"], "FREQ=WEEKLY;COUNT=10", "{shown}");
}
