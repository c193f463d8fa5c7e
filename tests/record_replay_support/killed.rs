//! A recording proxy killed (SIGKILL) in the middle of a bulk fetch: its
//! transcript still replays, up to where it was written, perhaps inside a
//! record (a chunk ends on a page boundary), and so does one cut anywhere.

use super::*;
use std::io::Read;

/// The untagged responses of `UID FETCH 1:* BODY.PEEK[]` straight from Dovecot.
fn fetched_directly(dv: &Dovecot, user: &str) -> Vec<u8> {
    let mut d = RawImap::login(dv.imap_addr(), user, PASSWORD);
    assert!(d.cmd("EXAMINE INBOX").ok());
    let r = d.cmd("UID FETCH 1:* BODY.PEEK[]");
    assert!(r.ok(), "{}", r.tagged);
    r.bytes
}

/// Everything a replay of `file` sends for the recorded fetch, to the end.
fn replayed_fetch(file: &Path, user: &str) -> (Vec<u8>, String) {
    let replay = Replay::start(&[file.to_path_buf()]);
    let mut c = RawImap::login(replay.addr, user, PASSWORD);
    assert!(c.cmd("EXAMINE INBOX").ok());
    // Nothing more is buffered: the replay sends the fetch after this.
    c.send(b"t3 UID FETCH 1:* BODY.PEEK[]\r\n");
    let mut got = Vec::new();
    let _ = c.stream().read_to_end(&mut got);
    (got, replay.stderr())
}

#[test]
fn a_proxy_killed_mid_fetch_leaves_a_transcript_that_replays_up_to_there() {
    let dv = dovecot();
    let user = unique_user("rr-kill");
    let msgs: Vec<Vec<u8>> = (0..48).map(|_| big_message(256 * 1024)).collect();
    fill(dv, &user, &msgs);
    let all = fetched_directly(dv, &user);
    let rec = tempdir("rr-kill-");
    let proxy = recording_proxy(dv, rec.path(), "");
    let mut c = RawImap::login(proxy.imap, &user, PASSWORD);
    assert!(c.cmd("EXAMINE INBOX").ok());
    c.send(b"t3 UID FETCH 1:* BODY.PEEK[]\r\n");
    let mut live = Vec::new();
    while live.len() < 8 * 1024 * 1024 {
        c.read_response_line(&mut live).unwrap();
    }
    // SAFETY: kill(2) with our own child's pid touches no memory.
    assert_eq!(
        unsafe { libc::kill(proxy.pid() as libc::pid_t, libc::SIGKILL) },
        0
    );
    drop(c);
    drop(proxy);
    assert!(
        all.starts_with(&live),
        "the live fetch differs from Dovecot's"
    );

    let files = sessions(rec.path());
    assert_eq!(files.len(), 1, "{files:?}");
    let written = std::fs::read(&files[0]).unwrap();
    // A copy cut inside the last block (a record torn).
    let last_block = memchr::memmem::rfind(&written, b"\nS{ ").expect("a block");
    let cut = rec.path().join("cut.transcript");
    std::fs::write(&cut, &written[..last_block + 20]).unwrap();
    for file in [&files[0], &cut] {
        let (got, stderr) = replayed_fetch(file, &user);
        let at = memchr::memmem::find(&got, b"* 1 FETCH")
            .unwrap_or_else(|| panic!("{}: no fetch replayed: {stderr}", file.display()));
        let fetch = &got[at..];
        assert!(
            fetch.len() >= 1024 * 1024,
            "{}: only {} bytes of the fetch replayed: {stderr}",
            file.display(),
            fetch.len()
        );
        assert!(
            all.starts_with(fetch),
            "{}: the replayed fetch is not what Dovecot sent",
            file.display()
        );
        eprintln!(
            "{}: {} bytes replayed of the fetch, {} seen live, {} in all",
            file.display(),
            fetch.len(),
            live.len(),
            all.len()
        );
        if file == &cut {
            assert!(stderr.contains("cut short"), "{stderr}");
        }
    }
}
