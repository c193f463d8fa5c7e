//! The Thunderbird fixture: a real Thunderbird (the desktop harness of
//! `tests/thunderbird/`, under Xvfb) doing its first sync of a small INBOX
//! through a recording `crmproxy serve`; and what the committed transcript must
//! show of that mailbox, so that a transcript edited by hand is caught even
//! though its replay plays both sides from the same file.

use super::fixtures::{fixture_dir, fixture_messages};
use super::{fill, recording_proxy, sessions, tempdir};
use crate::common::dovecot::dovecot_with;
use crate::common::PASSWORD;
use std::process::{Command, Stdio};
use std::time::Duration;

#[path = "../thunderbird/desktop.rs"]
mod desktop;
use desktop::{poll, profile_prefs, Thunderbird, Xvfb};

pub const THUNDERBIRD: &str = "thunderbird.transcript";
pub const THUNDERBIRD_NOTE: &str = "Thunderbird's first sync of a 3-message INBOX: a fresh profile (tests/thunderbird/desktop.rs profile_prefs, one cached connection, no offline download) under Xvfb, the password typed at its prompt, quit with ctrl+q once it idles in INBOX (tests/record_replay_support/thunderbird.rs)";
/// Messages in the fixture's INBOX.
pub const THUNDERBIRD_COUNT: usize = 3;

/// Thunderbird, Xvfb and xdotool, where any of them is not installed.
pub fn thunderbird_missing() -> Vec<&'static str> {
    ["thunderbird", "Xvfb", "xdotool"]
        .into_iter()
        .filter(|t| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect()
}

/// Record the fixture anew (`regenerate.sh thunderbird.transcript`).
pub fn record_thunderbird() {
    let missing = thunderbird_missing();
    assert!(
        missing.is_empty(),
        "{} not installed (apt-get install thunderbird xvfb xdotool)",
        missing.join(", ")
    );
    let dv = dovecot_with("# fixture thunderbird\n");
    fill(dv, "fixture", &fixture_messages(THUNDERBIRD_COUNT));
    let rec = tempdir("rr-fx-rec-");
    let proxy = recording_proxy(dv, rec.path(), "");

    let home = tempdir("rr-fx-tb-");
    let profile = home.path().join("profile");
    std::fs::create_dir_all(&profile).unwrap();
    // One connection (one transcript, commands in one order), headers only.
    let prefs = profile_prefs("fixture", proxy.imap)
        + "user_pref(\"mail.server.server1.max_cached_connections\", 1);\n\
           user_pref(\"mail.server.server1.offline_download\", false);\n";
    std::fs::write(profile.join("user.js"), prefs).unwrap();
    let x = Xvfb::start();
    let log = home.path().join("thunderbird.log");
    let mut tb = Thunderbird::start(&x, &profile, home.path(), &log);
    let said = || std::fs::read_to_string(&log).unwrap_or_default();

    let prompt = x
        .wait_window("[Pp]assword", Duration::from_secs(120))
        .unwrap_or_else(|| panic!("no password prompt: {:?}\n{}", x.window_titles(), said()));
    x.type_text(&prompt, PASSWORD);
    x.keys(&prompt, &["Return"]);
    let main = x
        .wait_window("Inbox", Duration::from_secs(120))
        .unwrap_or_else(|| panic!("no Inbox window: {:?}\n{}", x.window_titles(), said()));
    // Synced once it idles in INBOX with every message's headers fetched.
    let synced = poll(Duration::from_secs(180), || {
        let files = sessions(rec.path());
        let text = files
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap_or_default())
            .collect::<String>();
        (text.contains(" IDLE\n") && shows_the_mailbox(&text).is_ok()).then_some(())
    });
    assert!(synced.is_some(), "Thunderbird did not sync:\n{}", said());
    x.keys(&main, &["ctrl+q"]);
    assert!(
        tb.wait_exit(Duration::from_secs(60)),
        "Thunderbird did not quit"
    );
    drop(proxy);

    let files = sessions(rec.path());
    assert_eq!(files.len(), 1, "one connection: {files:?}");
    let text = std::fs::read_to_string(&files[0]).unwrap();
    shows_the_mailbox(&text).unwrap();
    let (magic, rest) = text.split_once('\n').unwrap();
    std::fs::write(
        fixture_dir().join(THUNDERBIRD),
        format!("{magic}\n# note: {THUNDERBIRD_NOTE}\n{rest}"),
    )
    .unwrap();
}

/// What Thunderbird's first sync must have fetched of the fixture's INBOX: each
/// message's size (`RFC822.SIZE`) and its Subject and Message-ID headers.
pub fn shows_the_mailbox(transcript: &str) -> Result<(), String> {
    for (i, m) in fixture_messages(THUNDERBIRD_COUNT).iter().enumerate() {
        let n = 101 + i;
        for want in [
            format!("RFC822.SIZE {}", m.len()),
            format!("Subject: Quarterly numbers {n}"),
            format!("Message-ID: <msg-{n}@example.com>"),
        ] {
            if !transcript.contains(&want) {
                return Err(format!("the transcript lacks `{want}`"));
            }
        }
    }
    Ok(())
}
