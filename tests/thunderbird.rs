//! What a salesperson sees in a mail client (issue 17), through a real `crmproxy
//! serve` and the private Dovecot: a real Thunderbird under Xvfb, set up with
//! `crmproxy setup thunderbird`, tags a message "Track in CRM" from the keyboard and
//! ends up showing "Tracked in CRM" (skipped, saying so, where Thunderbird, Xvfb,
//! xdotool or ImageMagick are not installed); and a client without keywords
//! (Outlook's IMAP) tracks by moving into `CRM/Track`, the message staying there.

mod common;
mod tracking_support;

#[path = "thunderbird/desktop.rs"]
mod desktop;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::clients::{run_python, ClientTls};
use common::PASSWORD;
use desktop::{missing_tools, poll, profile_prefs, Thunderbird, Xvfb};
use tracking_support::*;

#[test]
fn a_message_moved_into_the_tracking_folder_without_keywords_is_tracked_and_stays() {
    let env = Env::start("");
    let (user, _) = env.user("moveonly", true);
    let mut direct = env.direct(&user);
    for how in ["move", "copy-expunge"] {
        let id = format!("{how}-only@customer.example");
        let subject = format!("Moved by a client without keywords ({how})");
        let m = message(&id, &subject, "");
        assert!(direct.append("INBOX", &m).ok());
        let (ok, out, err) = run_python(
            "../thunderbird/move_only.py",
            env.proxy.imap,
            ClientTls::Plain,
            None,
            &user,
            PASSWORD,
            &["--how", how, "INBOX", "CRM/Track"],
        );
        assert!(ok, "{how}: {out}{err}");

        let uid = uid_of(&mut direct, "CRM/Track", &id).expect("moved into CRM/Track");
        wait_keyword(&mut direct, "CRM/Track", uid, "$CRM_Tracked", true);
        assert!(email_titled(env.data(), &subject), "{how}");
        // Where the user put it, as it was: same UID, same bytes, not back in INBOX.
        assert_eq!(uid_of(&mut direct, "CRM/Track", &id), Some(uid), "{how}");
        assert!(direct.cmd("EXAMINE CRM/Track").ok());
        assert_eq!(direct.fetch_body(uid), m, "{how}");
        assert_eq!(uid_of(&mut direct, "INBOX", &id), None, "{how}");
        let f = flags(&mut direct, "CRM/Track", uid);
        assert!(
            !f.to_ascii_lowercase().contains("$crm_track "),
            "{how}: {f}"
        );
    }
}

/// Where the screenshots of this binary go (copied by hand to tests/screenshots/).
fn screenshot_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/thunderbird-screenshots")
        .join(name)
}

/// Whether Thunderbird's own store for the folder (Mork text) names `keyword`.
fn msf_has_keyword(msf: &Path, keyword: &str) -> bool {
    let text = std::fs::read(msf).unwrap_or_default();
    // Mork escapes `$` in values as `\$` (or `$24`). Mork appends changes, so an
    // earlier value may still be in the file: only presence is checked here.
    let text = String::from_utf8_lossy(&text)
        .to_ascii_lowercase()
        .replace("\\$", "$")
        .replace("$24", "$");
    let keyword = keyword.to_ascii_lowercase();
    text.match_indices(&keyword).any(|(at, _)| {
        !text[at + keyword.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

#[test]
fn thunderbird_tags_a_message_for_tracking_and_shows_it_tracked() {
    let missing = missing_tools();
    if !missing.is_empty() {
        eprintln!(
            "skipped: {} not installed (apt-get install thunderbird xvfb xdotool imagemagick)",
            missing.join(", ")
        );
        return;
    }
    let env = Env::start("");
    let (user, _) = env.user("tbird", true);
    let mut direct = env.direct(&user);
    let id = "thunderbird-tag@customer.example";
    let m = message(id, "Proposal for the Thunderbird test", "");
    assert!(direct.append("INBOX", &m).ok());

    // A profile with the account, then the tags from `crmproxy setup thunderbird`.
    let home = tempfile::Builder::new()
        .prefix("crmproxy-tb-home-")
        .tempdir()
        .unwrap();
    let profile = home.path().join("profile");
    std::fs::create_dir_all(&profile).unwrap();
    std::fs::write(
        profile.join("user.js"),
        profile_prefs(&user, env.proxy.imap),
    )
    .unwrap();
    let setup = |profile: &Path| {
        Command::new(env!("CARGO_BIN_EXE_crmproxy"))
            .arg("--data-dir")
            .arg(env.data())
            .args(["setup", "thunderbird", "--profile"])
            .arg(profile)
            .env_remove("CRMPROXY_CONFIG")
            .output()
            .expect("run crmproxy setup thunderbird")
    };
    let out = setup(&profile);
    assert!(out.status.success(), "{out:?}");
    let user_js = std::fs::read_to_string(profile.join("user.js")).unwrap();
    assert!(user_js.contains("user_pref(\"mail.server.server1.type\", \"imap\");"));
    assert!(user_js.contains("user_pref(\"mailnews.tags.$crm_track.tag\", \"Track in CRM\");"));

    let x = Xvfb::start();
    let log = home.path().join("thunderbird.log");
    let mut tb = Thunderbird::start(&x, &profile, home.path(), &log);
    let fail = |what: &str| -> ! {
        x.screenshot(&screenshot_path("thunderbird-failure.png"));
        panic!(
            "{what}; windows {:?}; Thunderbird said:\n{}",
            x.window_titles(),
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    };

    // While it runs, setup refuses to write, and says why.
    let running = poll(Duration::from_secs(60), || {
        profile.join(".parentlock").exists().then_some(())
    });
    if running.is_none() {
        fail("Thunderbird did not lock its profile within 60 s");
    }
    let out = setup(&profile);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains("Thunderbird is running"),
        "{said}"
    );

    // It asks for the password (none is stored): type it.
    let Some(prompt) = x.wait_window("[Pp]assword", Duration::from_secs(90)) else {
        fail("no password prompt within 90 s")
    };
    x.type_text(&prompt, PASSWORD);
    x.keys(&prompt, &["Return"]);

    // The Inbox is shown; `n` selects the first unread message, `6` is the sixth
    // tag: "Track in CRM", right after the five built-in ones.
    let Some(main) = x.wait_window("Inbox", Duration::from_secs(90)) else {
        fail("no Inbox window within 90 s")
    };
    // Shown means read: `\Seen` on the server says the message is selected (the
    // list may still be loading at the first `n`; a second one then selects it).
    let uid = uid_of(&mut direct, "INBOX", id).expect("the message in INBOX");
    let mut opened = |x: &Xvfb| {
        x.keys(&main, &["n"]);
        poll(Duration::from_secs(15), || {
            flags(&mut direct, "INBOX", uid)
                .contains("\\Seen")
                .then_some(())
        })
    };
    if opened(&x).or_else(|| opened(&x)).is_none() {
        fail("the message was not opened (no \\Seen) after pressing n twice");
    }
    x.keys(&main, &["6"]);

    // On the server: tracked, and the request keyword gone.
    let tracked = poll(Duration::from_secs(60), || {
        let f = flags(&mut direct, "INBOX", uid).to_ascii_lowercase();
        let words: Vec<&str> = f.split(' ').collect();
        (words.contains(&"$crm_tracked") && !words.contains(&"$crm_track")).then_some(())
    });
    if tracked.is_none() {
        fail(&format!(
            "not tracked on the server: FLAGS ({})",
            flags(&mut direct, "INBOX", uid)
        ));
    }
    assert!(email_titled(
        env.data(),
        "Proposal for the Thunderbird test"
    ));

    // Thunderbird learns the new keywords (IDLE, or Get Messages), shows the tag,
    // and keeps it in its own store (written out when it quits).
    for _ in 0..3 {
        x.keys(&main, &["F5"]);
        std::thread::sleep(Duration::from_secs(2));
    }
    x.screenshot(&screenshot_path("thunderbird-tracked.png"));
    x.keys(&main, &["ctrl+q"]);
    if !tb.wait_exit(Duration::from_secs(30)) {
        fail("Thunderbird did not quit within 30 s");
    }
    // Run again once it has quit: nothing to change.
    let before = std::fs::read_to_string(profile.join("user.js")).unwrap();
    let out = setup(&profile);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("already has"),
        "{out:?}"
    );
    assert_eq!(
        std::fs::read_to_string(profile.join("user.js")).unwrap(),
        before
    );
    let msf = profile.join("ImapMail/127.0.0.1/INBOX.msf");
    assert!(
        msf_has_keyword(&msf, "$CRM_Tracked"),
        "{} does not name $crm_tracked:\n{}",
        msf.display(),
        String::from_utf8_lossy(&std::fs::read(&msf).unwrap_or_default())
    );
    drop(x);
}
