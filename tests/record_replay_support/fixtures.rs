//! The committed transcripts of `fixtures/sessions/`: how each was made, the
//! client that made it, and what that client must end up with.

use super::neomutt::{lf, mbox_messages, neomutt};
use super::tree;
use crate::common::clients::{as_fetched, curl, maildir_contents, mbsync, run_python, ClientTls};
use crate::common::*;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The committed transcripts, and how each was made (`regenerate.sh` re-records them).
pub const FIXTURES: &[(&str, &str)] = &[
    ("imaplib.transcript", "Python imaplib (tests/py/sync_mailbox.py) copying INBOX: EXAMINE, FETCH n (UID RFC822.SIZE RFC822) for each of 4 messages"),
    ("mbsync.transcript", "mbsync (isync) pulling a 5-message INBOX into an empty Maildir (tests/common/clients.rs mbsync config, AuthMechs LOGIN)"),
    ("curl.transcript", "curl fetching imap://HOST/INBOX;UID=2 from a 2-message INBOX (curl's AUTHENTICATE PLAIN with SASL-IR)"),
    ("neomutt.transcript", "NeoMutt opening a 3-message INBOX, tagging all and copying them into a local mbox, then quitting (tests/record_replay_support/neomutt.rs: neomutt -n -F RC -e 'push ...' under script, no caches)"),
];

/// How many messages the mailbox of each fixture holds.
pub fn fixture_count(name: &str) -> usize {
    match name {
        "imaplib.transcript" => 4,
        "mbsync.transcript" => 5,
        "curl.transcript" => 2,
        "neomutt.transcript" => 3,
        _ => unreachable!("{name}"),
    }
}

pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sessions")
}

pub fn fixture_messages(n: usize) -> Vec<Vec<u8>> {
    (1..=n).map(|i| sample_message(100 + i, 2 + i)).collect()
}

/// Run the client a fixture was made with against `addr`; its result, comparable.
pub fn fixture_client(name: &str, addr: SocketAddr, work: &Path) -> Vec<(String, Vec<u8>)> {
    let user = "fixture";
    match name {
        "imaplib.transcript" => {
            let out = work.join("out");
            let (ok, o, e) = run_python(
                "sync_mailbox.py",
                addr,
                ClientTls::Plain,
                None,
                user,
                PASSWORD,
                &[out.to_str().unwrap(), "INBOX"],
            );
            assert!(ok, "{o}{e}");
            tree(&out)
        }
        "mbsync.transcript" => {
            let (ok, log) = mbsync(work, addr, user, PASSWORD, &work.join("Maildir"));
            assert!(ok, "{log}");
            maildir_contents(&work.join("Maildir"))
                .into_iter()
                .flat_map(|(k, v)| v.into_iter().map(move |m| (k.clone(), as_fetched(&m))))
                .collect()
        }
        "curl.transcript" => {
            let (ok, body, err) = curl(addr, user, PASSWORD, "/INBOX;UID=2", None);
            assert!(ok, "{err}");
            vec![("UID=2".into(), body)]
        }
        "neomutt.transcript" => {
            let (ok, mbox, screen) = neomutt(addr, user, PASSWORD, work);
            assert!(ok, "neomutt failed; its screen:\n{screen}");
            mbox_messages(&mbox)
                .into_iter()
                .map(|m| ("INBOX".to_string(), m))
                .collect()
        }
        _ => unreachable!("{name}"),
    }
}

/// What each fixture's client must end up with (the messages it was made from).
pub fn fixture_expected(name: &str) -> Vec<(String, Vec<u8>)> {
    match name {
        "imaplib.transcript" => fixture_messages(4)
            .into_iter()
            .enumerate()
            .map(|(i, m)| (format!("INBOX/{}.eml", i + 1), m))
            .collect(),
        "mbsync.transcript" => {
            let mut v: Vec<_> = fixture_messages(5)
                .into_iter()
                .map(|m| ("INBOX".to_string(), m))
                .collect();
            v.sort();
            v
        }
        "curl.transcript" => vec![("UID=2".into(), fixture_messages(2).remove(1))],
        "neomutt.transcript" => fixture_messages(3)
            .iter()
            .map(|m| ("INBOX".to_string(), lf(m)))
            .collect(),
        _ => unreachable!("{name}"),
    }
}
