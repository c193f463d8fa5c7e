//! `crmproxy serve --record DIR --redact-bodies --redact-id`: the command-line
//! flags themselves (the other tests set `[record]` in the config file).

use super::*;

#[test]
fn serve_record_flags_record_with_bodies_and_id_redacted() {
    let dv = dovecot();
    let user = unique_user("rr-flags");
    let m = sample_message(7, 20);
    fill(dv, &user, std::slice::from_ref(&m));
    let rec = tempdir("rr-flags-");
    let dir = rec.path().join("transcripts");
    let proxy = Proxy::start_with(
        dv,
        ProxyOptions {
            args: vec![
                "--record".into(),
                dir.display().to_string(),
                "--redact-bodies".into(),
                "--redact-id".into(),
            ],
            ..Default::default()
        },
    );
    let mut c = RawImap::login(proxy.imap, &user, PASSWORD);
    let id = c.cmd("ID (\"name\" \"flags-test\" \"contact\" \"dana@customer.example\")");
    assert!(id.ok(), "{}", id.tagged);
    assert!(c.cmd("EXAMINE INBOX").ok());
    let r = c.cmd("UID FETCH 1 BODY.PEEK[]");
    // The client gets the server's bytes; only the transcript is redacted.
    assert_eq!(crate::common::imap::first_literal(&r.bytes).unwrap(), m);
    c.cmd("LOGOUT");
    drop(c);
    drop(proxy);
    assert_no_secrets(&dir);
    let files = sessions(&dir);
    assert_eq!(files.len(), 1, "{files:?}");
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(text.contains("Subject: Quarterly numbers 7"), "{text}");
    assert!(text.contains(&format!("{{{}}}", m.len())), "{text}");
    assert!(!text.contains("the figures for the quarter"), "{text}");
    assert!(!text.contains("dana@customer.example"), "{text}");

    // A redaction flag without a place to record: a clear error, nothing started.
    let data = tempdir("rr-flags-data-");
    let out = Command::new(crmproxy_bin())
        .args(["serve", "--data-dir"])
        .arg(data.path())
        .arg("--redact-bodies")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("--redact-bodies and --redact-id need --record DIR"),
        "{err}"
    );
}
