//! A message's bytes never change under its UID (SPEC section 3), checked with the
//! real clients people sync with: Python imaplib, curl, mbsync and offlineimap, each
//! through a real `crmproxy serve` (pane on) in front of the private Dovecot, as a
//! CRM user. Each client syncs the mailbox before anything is tracked; then messages
//! are tracked by keyword, by folder (a copy of one Message-ID in two folders) and
//! through the pane (opened by sequence number with imaplib, as most scripts do),
//! one of them over 64 KiB; one is untracked; every client syncs again; `serve`
//! restarts; every client syncs a third time. After each sync every byte each
//! client holds equals the server's copy, and the syncs agree with each other.
//! (NeoMutt is left out: its header and body caches cannot be read back reliably.)

mod common;
mod pane_util;
mod tracking_support;

use common::clients::{self, run_python, ClientTls};
use common::{dovecot, Proxy, ProxyOptions, RawImap, PASSWORD};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use tracking_support::*;

/// Folder → the messages in it (bytes, CRLF line ends), in a stable order.
type Mailbox = BTreeMap<String, Vec<Vec<u8>>>;

const FOLDERS: [&str; 2] = ["INBOX", "CRM/Track"];

/// What the server holds, read on a direct connection: folder → UID → bytes.
fn server_copy(direct: &mut RawImap) -> BTreeMap<String, BTreeMap<u32, Vec<u8>>> {
    let mut out = BTreeMap::new();
    for folder in FOLDERS {
        let r = direct.cmd(&format!("EXAMINE \"{folder}\""));
        assert!(r.ok(), "{}", r.tagged);
        let r = direct.cmd("UID SEARCH ALL");
        let uids: Vec<u32> = r
            .text()
            .lines()
            .find_map(|l| l.strip_prefix("* SEARCH"))
            .map(|l| {
                l.split_whitespace()
                    .filter_map(|n| n.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        let messages = uids
            .into_iter()
            .map(|uid| (uid, fetch(direct, uid, "BODY.PEEK[]").1))
            .collect();
        out.insert(folder.to_string(), messages);
    }
    out
}

fn as_mailbox(server: &BTreeMap<String, BTreeMap<u32, Vec<u8>>>) -> Mailbox {
    server
        .iter()
        .map(|(f, m)| {
            let mut v: Vec<Vec<u8>> = m.values().cloned().collect();
            v.sort();
            (f.clone(), v)
        })
        .collect()
}

/// The messages of a Maildir tree by folder, as fetched (`sep`: the client's
/// separator of folder levels on disk).
fn maildir(root: &Path, sep: char) -> Mailbox {
    let mut out: Mailbox = clients::maildir_contents(root)
        .into_iter()
        .map(|(folder, messages)| {
            let mut m: Vec<Vec<u8>> = messages.iter().map(|b| clients::as_fetched(b)).collect();
            m.sort();
            (folder.replace(sep, "/"), m)
        })
        .collect();
    out.retain(|f, _| FOLDERS.contains(&f.as_str()));
    out
}

fn describe(m: &Mailbox) -> String {
    m.iter()
        .map(|(f, v)| {
            let sizes: Vec<usize> = v.iter().map(Vec::len).collect();
            format!("{f}: {sizes:?}")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// One sync by every client through the proxy at `imap`; each client's copy must
/// be the server's. `work` keeps each client's local state between syncs.
fn sync_all(imap: SocketAddr, user: &str, work: &Path, direct: &mut RawImap, round: &str) {
    let server = server_copy(direct);
    let want = as_mailbox(&server);

    // imaplib, by sequence number; RFC822.SIZE checked against the bytes.
    let out = work.join(format!("imaplib-{round}"));
    let mut args = vec![out.to_str().unwrap()];
    args.extend(FOLDERS);
    let (ok, stdout, err) = run_python(
        "sync_mailbox.py",
        imap,
        ClientTls::Plain,
        None,
        user,
        PASSWORD,
        &args,
    );
    assert!(ok, "imaplib sync {round}: {stdout}{err}");
    for (folder, messages) in &server {
        for (uid, bytes) in messages {
            let got = std::fs::read(out.join(folder).join(format!("{uid}.eml"))).unwrap();
            assert!(&got == bytes, "imaplib {round}: {folder} UID {uid} differs");
        }
    }

    // curl, one message by UID at a time (curl's `UID FETCH n BODY[]`).
    for (folder, messages) in &server {
        let path_folder = folder.replace('/', "%2F");
        for (uid, bytes) in messages {
            let (ok, got, err) = clients::curl(
                imap,
                user,
                PASSWORD,
                &format!("/{path_folder};UID={uid}"),
                None,
            );
            assert!(ok, "curl {round} {folder} {uid}: {err}");
            assert!(&got == bytes, "curl {round}: {folder} UID {uid} differs");
        }
    }

    // mbsync and offlineimap: their Maildirs hold the server's messages.
    let md = work.join("mbsync-mail");
    let (ok, log) = clients::mbsync(work, imap, user, PASSWORD, &md);
    assert!(ok, "mbsync {round}: {log}");
    let got = maildir(&md, '/');
    assert!(
        got == want,
        "mbsync {round}: {} vs server {}",
        describe(&got),
        describe(&want)
    );
    let oi = work.join("offlineimap-mail");
    let (ok, log) = clients::offlineimap(work, imap, user, PASSWORD, &oi);
    assert!(ok, "offlineimap {round}: {log}");
    let got = maildir(&oi, '.');
    assert!(
        got == want,
        "offlineimap {round}: {} vs server {}",
        describe(&got),
        describe(&want)
    );
}

fn start(data: &Path) -> Proxy {
    Proxy::start_with(
        dovecot(),
        ProxyOptions {
            pane: true,
            data_dir: Some(data.to_path_buf()),
            config_toml: Some("[tracking]\nload_demo_on_first_run = false\n".into()),
            ..Default::default()
        },
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn every_client_holds_the_servers_bytes_through_tracking_untracking_and_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut proxy = start(data.path());
    let user = format!("{}@crm-test.example", common::unique_user("clients"));
    add_user(data.path(), &user, true);

    let by_keyword = message("cb-keyword@customer.example", "By keyword", "");
    let by_folder = message("cb-folder@customer.example", "By folder", "");
    let by_pane = message("cb-pane@customer.example", "By pane", "");
    let mut big = message("cb-big@customer.example", "Big one", "");
    for i in 0..1500 {
        big.extend_from_slice(
            format!("Line {i:05} of a long quotation, padded out.\r\n").as_bytes(),
        );
    }
    assert!(big.len() > 64 * 1024);
    let plain = message("cb-plain@customer.example", "Never tracked", "");
    let mut direct = RawImap::login(dovecot().imap_addr(), &user, PASSWORD);
    for m in [&by_keyword, &by_folder, &by_pane, &big, &plain] {
        assert!(direct.append("INBOX", m).ok());
    }

    tokio::task::block_in_place(|| {
        let mut c = RawImap::login(proxy.imap, &user, PASSWORD);
        // CRM/Track exists once a CRM user logged in.
        wait_for("CRM/Track", || {
            direct
                .cmd("STATUS \"CRM/Track\" (MESSAGES)")
                .ok()
                .then_some(())
        });
        sync_all(proxy.imap, &user, work.path(), &mut direct, "before");

        // Keyword (UIDs 1 and 4, the big one), folder (UID 2 copied: the same
        // Message-ID in INBOX and CRM/Track).
        assert!(c.cmd("SELECT INBOX").ok());
        assert!(c.cmd("UID STORE 1,4 +FLAGS.SILENT ($CRM_Track)").ok());
        let r = c.cmd("UID COPY 2 \"CRM/Track\"");
        assert!(r.ok(), "{}", r.tagged);
        // The mail client opens message 3 by its sequence number (imaplib).
        let (ok, out, err) = run_python(
            "open_and_flags.py",
            proxy.imap,
            ClientTls::Plain,
            None,
            &user,
            PASSWORD,
            &["open-number", "3"],
        );
        assert!(ok && out.starts_with("fetched "), "{out}{err}");
    });

    // The pane tracks the message the client has open.
    let pane_addr = proxy.pane.expect("pane");
    let mut pane = pane_util::Client::new(
        pane_addr,
        &proxy.ca_file(),
        format!("localhost:{}", pane_addr.port()),
    );
    let token = crmproxy::pane::link::issue(data.path(), &user).unwrap();
    let r = pane.get(&format!("/signin/link?token={token}")).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let r = pane
        .post_json(
            "/api/track",
            &serde_json::json!({ "message_id": "cb-pane@customer.example" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());

    tokio::task::block_in_place(|| {
        for uid in [1, 3, 4] {
            wait_keyword(&mut direct, "INBOX", uid, "$CRM_Tracked", true);
        }
        wait_keyword(&mut direct, "CRM/Track", 1, "$CRM_Tracked", true);
        for subject in ["By keyword", "By folder", "By pane", "Big one"] {
            assert!(email_titled(data.path(), subject), "{subject}");
        }
        // Untrack one.
        let mut c = RawImap::login(proxy.imap, &user, PASSWORD);
        assert!(c.cmd("SELECT INBOX").ok());
        assert!(c.cmd("UID STORE 1 -FLAGS.SILENT ($CRM_Tracked)").ok());
        let id = email_id(data.path(), "By keyword");
        wait_for("untracked", || {
            show(data.path(), &id)["tracking"]
                .as_array()
                .unwrap()
                .is_empty()
                .then_some(())
        });
        sync_all(proxy.imap, &user, work.path(), &mut direct, "tracked");
    });

    // A restart of serve: its caches go, its store stays.
    drop(proxy);
    proxy = start(data.path());
    tokio::task::block_in_place(|| {
        let mut c = RawImap::login(proxy.imap, &user, PASSWORD);
        assert!(c.cmd("NOOP").ok());
        sync_all(proxy.imap, &user, work.path(), &mut direct, "restarted");
        // And the server's bytes are what was appended: nothing was written.
        let server = server_copy(&mut direct);
        let inbox: Vec<&Vec<u8>> = server["INBOX"].values().collect();
        assert_eq!(inbox, [&by_keyword, &by_folder, &by_pane, &big, &plain]);
        assert_eq!(
            server["CRM/Track"].values().collect::<Vec<_>>(),
            [&by_folder]
        );
    });
}
