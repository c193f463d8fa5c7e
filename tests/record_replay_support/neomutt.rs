//! NeoMutt driven headless for the fixtures: `neomutt -n -F RC -e 'push …'` under
//! `script` (it wants a terminal) opens INBOX over plain IMAP, tags every
//! message, copies them into a local mbox and quits. The mbox is what NeoMutt
//! did: the messages it fetched, comparable with what the mailbox holds.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

/// Run NeoMutt against `addr` as `user`; (success, the mbox it wrote, its output).
pub fn neomutt(
    addr: SocketAddr,
    user: &str,
    password: &str,
    work: &Path,
) -> (bool, Vec<u8>, String) {
    let rc = work.join("neomuttrc");
    let mbox = work.join("copied.mbox");
    // No header or body cache (a second run must ask the same), no timed checks,
    // keepalives or IDLE (the session must not depend on how long it takes).
    std::fs::write(
        &rc,
        format!(
            "set imap_user = \"{user}\"\n\
             set imap_pass = \"{password}\"\n\
             set folder = \"imap://{ip}:{port}/\"\n\
             set spool_file = \"+INBOX\"\n\
             set header_cache = \"\"\n\
             set message_cache_dir = \"\"\n\
             set mbox_type = mbox\n\
             set confirm_create = no\n\
             set timeout = 3600\n\
             set mail_check = 3600\n\
             set imap_keepalive = 3600\n\
             set imap_idle = no\n\
             set imap_check_subscribed = no\n\
             set ssl_starttls = no\n\
             set ssl_force_tls = no\n\
             set quit = yes\n\
             set move = no\n",
            ip = addr.ip(),
            port = addr.port(),
        ),
    )
    .unwrap();
    let script = work.join("run-neomutt.sh");
    std::fs::write(
        &script,
        format!(
            "exec neomutt -n -F '{}' -e 'push \"<tag-pattern>~A<enter><tag-prefix><copy-message>{}<enter><quit>\"'\n",
            rc.display(),
            mbox.display()
        ),
    )
    .unwrap();
    let out = Command::new("timeout")
        .arg("60")
        .arg("script")
        .arg("-qec")
        .arg(format!("sh '{}'", script.display()))
        .arg("/dev/null")
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .output()
        .expect("run neomutt under script (apt-get install neomutt)");
    let screen = String::from_utf8_lossy(&out.stdout).into_owned();
    let copied = std::fs::read(&mbox).unwrap_or_default();
    (out.status.success() && !copied.is_empty(), copied, screen)
}

/// The messages of an mbox NeoMutt wrote, as the server's bytes with LF line
/// ends: the `From ` separator lines and the headers NeoMutt adds
/// (`Content-Length:`, `Lines:`, `Status:`, `X-Status:`) taken out.
pub fn mbox_messages(mbox: &[u8]) -> Vec<Vec<u8>> {
    let text = String::from_utf8_lossy(mbox);
    let mut messages: Vec<Vec<String>> = Vec::new();
    let mut previous_blank = true;
    for line in text.split_inclusive('\n') {
        if previous_blank && line.starts_with("From ") {
            messages.push(Vec::new());
        } else if let Some(m) = messages.last_mut() {
            m.push(line.to_string());
        }
        previous_blank = line == "\n";
    }
    messages
        .into_iter()
        .map(|mut lines| {
            // The blank line that separates a message from the next is mbox's.
            if lines.last().is_some_and(|l| l == "\n") {
                lines.pop();
            }
            let body_at = lines.iter().position(|l| l == "\n").unwrap_or(lines.len());
            let added = ["content-length:", "lines:", "status:", "x-status:"];
            lines
                .iter()
                .enumerate()
                .filter(|(i, l)| {
                    *i >= body_at || !added.iter().any(|a| l.to_ascii_lowercase().starts_with(a))
                })
                .flat_map(|(_, l)| l.as_bytes().to_vec())
                .collect()
        })
        .collect()
}

/// `bytes` with CRLF line ends made LF (as a local mbox keeps them).
pub fn lf(bytes: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(bytes)
        .replace("\r\n", "\n")
        .into_bytes()
}
