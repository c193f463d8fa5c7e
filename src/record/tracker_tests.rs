//! Tests of `tracker.rs`: bytes in, the records and redactions expected out.

use super::*;

/// The records of `steps`, each fed in reads of `cut` bytes.
fn run_cut(redaction: Redaction, steps: &[(Dir, &[u8])], cut: usize) -> String {
    let mut t = Tracker::new(redaction);
    let mut out = Vec::new();
    for (dir, bytes) in steps {
        for read in bytes.chunks(cut) {
            match dir {
                Dir::Client => t.client(0, read, &mut out),
                Dir::Server => t.server(0, read, &mut out),
            }
        }
    }
    String::from_utf8(out).unwrap()
}

fn run(redaction: Redaction, steps: &[(Dir, &[u8])]) -> String {
    run_cut(redaction, steps, usize::MAX)
}

/// What a transcript's records stand for, per direction (client, server).
fn decode(text: &str) -> [Vec<u8>; 2] {
    let mut got = [Vec::new(), Vec::new()];
    let mut rest = text.as_bytes();
    while !rest.is_empty() {
        let end = memchr::memchr(b'\n', rest).unwrap();
        let rec = crate::record::parse_record(&rest[..end]).unwrap().unwrap();
        rest = &rest[end + 1..];
        let side = &mut got[usize::from(rec.dir == Dir::Server)];
        if rec.kind == Kind::Block {
            let n = rec.block_len().unwrap() as usize;
            side.extend_from_slice(&rest[..n]);
            assert_eq!(rest[n], b'\n');
            rest = &rest[n + 1..];
        } else {
            rec.bytes_into(side).unwrap();
        }
    }
    got
}

const C: Dir = Dir::Client;
const S: Dir = Dir::Server;

#[test]
fn credentials_never_reach_the_transcript() {
    // Byte by byte: redaction must not depend on how reads are cut.
    let text = run_cut(
        Redaction::default(),
        &[
            (S, b"* OK ready\r\n"),
            (C, b"a1 LOGIN {5}\r\n"),
            (S, b"+ go\r\n"),
            (C, b"alice {9}\r\n"),
            (S, b"+ go\r\n"),
            (C, b"pw-Secret\r\n"),
            (S, b"a1 NO bad\r\n"),
            (C, b"a2 LOGIN alice \"pw-Secret\"\r\n"),
            (S, b"a2 NO bad\r\n"),
            (C, b"a3 AUTHENTICATE PLAIN AGFsaWNlAHB3LVNlY3JldA==\r\n"),
            (S, b"a3 NO bad\r\n"),
            (C, b"a4 AUTHENTICATE XOAUTH2\r\n"),
            (S, b"+ \r\n"),
            (C, b"dXNlcj1hbGljZQFhdXRoPUJlYXJlciBwdy1TZWNyZXQBAQ==\r\n"),
            (S, b"+ eyJzdGF0dXMiOiI0MDEifQ==\r\n"),
            (C, b"\r\n"),
            (S, b"a4 NO bad\r\n"),
            (C, b"a5 NOOP\r\n"),
        ],
        1,
    );
    assert!(
        !text.contains("pw-Secret") && !text.contains("cHctU2VjcmV0"),
        "{text}"
    );
    assert!(
        !text.contains("alice") && !text.contains("AGFsaWNl"),
        "{text}"
    );
    assert_eq!(text.matches("+ go").count(), 0, "{text}");
    for want in [
        "C! 0.000 a1 LOGIN [redacted]\nS: 0.000 a1 NO bad",
        "C! 0.000 a3 AUTHENTICATE PLAIN [redacted]",
        "C: 0.000 a4 AUTHENTICATE XOAUTH2\nS: 0.000 + \nC! 0.000 [redacted SASL response]\nS: 0.000 + eyJ",
        "S: 0.000 a4 NO bad\nC: 0.000 a5 NOOP\n",
    ] {
        assert!(text.contains(want), "{want:?} not in\n{text}");
    }
}

#[test]
fn literals_split_into_pieces() {
    let text = run(
        Redaction::default(),
        &[
            (C, b"a1 APPEND INBOX {12+}\r\nab\r\ncd\0\r\nefg\r\n"),
            (S, b"* 1 FETCH (BODY[] {3}\r\nxyz)\r\n"),
        ],
    );
    // Text as `{` blocks (the last three bytes), binary lines escaped.
    assert_eq!(
        text,
        "C: 0.000 a1 APPEND INBOX {12+}\nC= ab\nC= cd\\x00\nC{ 3\nefg\nC: 0.000 \n\
S: 0.000 * 1 FETCH (BODY[] {3}\nS{ 3\nxyz\nS: 0.000 )\n"
    );
}

#[test]
fn any_cut_of_the_reads_stands_for_the_same_bytes() {
    let mut body = Vec::new();
    for i in 0..200 {
        body.extend_from_slice(format!("Line {i}: grüße \\ {{x}}\r\n").as_bytes());
        if i % 50 == 7 {
            body.extend_from_slice(b"bin\0\x1b\xff\r\n");
        }
    }
    let mut server = format!("* 1 FETCH (BODY[] {{{}}}\r\n", body.len()).into_bytes();
    server.extend_from_slice(&body);
    server.extend_from_slice(b")\r\na1 OK done\r\n");
    let mut client = format!("a2 APPEND INBOX {{{}+}}\r\n", body.len()).into_bytes();
    client.extend_from_slice(&body);
    client.extend_from_slice(b"\r\n");
    let steps: [(Dir, &[u8]); 2] = [(S, &server), (C, &client)];
    for cut in [1, 2, 3, 7, 100, 4096, 70_000, usize::MAX] {
        let text = run_cut(Redaction::default(), &steps, cut);
        let [c, s] = decode(&text);
        assert_eq!((c, s), (client.clone(), server.clone()), "cut {cut}");
        assert!(!text.contains('\0') && !text.contains('\x1b'), "cut {cut}");
    }
    // Read whole, the text lines are one block each side of every binary line.
    let text = run(Redaction::default(), &steps);
    assert!(text.contains("S{ "), "{text}");
    assert!(text.contains("S= bin\\x00\\x1b\\xff\n"), "{text}");
}

#[test]
fn bodies_redacted_sizes_kept() {
    let msg = b"Subject: hi\r\n\r\nsecret words\r\n";
    let mut fetch = format!("* 1 FETCH (UID 4 BODY[] {{{}}}\r\n", msg.len()).into_bytes();
    fetch.extend_from_slice(msg);
    fetch.extend_from_slice(b" BODY[HEADER.FIELDS (SUBJECT)] {13}\r\nSubject: hi\r\n)\r\n");
    let text = run(
        Redaction {
            bodies: true,
            id: true,
        },
        &[(S, &fetch), (C, b"a1 ID (\"name\" \"me@example.com\")\r\n")],
    );
    assert!(
        !text.contains("secret") && !text.contains("me@example"),
        "{text}"
    );
    assert!(text.contains("S= xxxxxxxxxxxx\n"), "{text}");
    assert!(text.contains("S= Subject: hi\nS= \nS= xxx"), "{text}");
    assert!(
        text.contains("S: 0.000  BODY[HEADER.FIELDS (SUBJECT)] {13}\nS{ 13\nSubject: hi\r\n\n"),
        "{text}"
    );
    assert!(text.contains("C! 0.000 a1 ID [redacted]"), "{text}");
}

#[test]
fn fetch_items_classified() {
    let c = |l: &[u8]| fetch_content(l);
    assert_eq!(c(b"* 1 FETCH (BODY[] {5}\r\n"), Some(Start::Message));
    assert_eq!(c(b"* 1 FETCH (UID 3 RFC822 {5}\r\n"), Some(Start::Message));
    assert_eq!(c(b"* 1 FETCH (BODY[]<0> {5}\r\n"), Some(Start::Message));
    assert_eq!(c(b"* 1 FETCH (BODY[]<100> {5}\r\n"), Some(Start::Body));
    assert_eq!(c(b"* 1 FETCH (BODY[TEXT] {5}\r\n"), Some(Start::Body));
    assert_eq!(c(b"* 1 FETCH (BINARY[1.2] ~{5}\r\n"), Some(Start::Body));
    assert_eq!(c(b"* 1 FETCH (BODY[HEADER] {5}\r\n"), None);
    assert_eq!(c(b"* 1 FETCH (BODY[1.MIME] {5}\r\n"), None);
    assert_eq!(c(b"* 1 FETCH (BODY[HEADER.FIELDS (TO FROM)] {5}\r\n"), None);
    assert_eq!(c(b"* 1 FETCH (ENVELOPE (NIL {5}\r\n"), None);
    assert_eq!(c(b"* LIST () \"/\" {5}\r\n"), None);
}

#[test]
fn a_server_read_is_an_answer_only_at_the_end_of_a_tagged_response_or_a_plus() {
    let mut t = Tracker::new(Redaction::default());
    let mut out = Vec::new();
    let mut after = |t: &mut Tracker, bytes: &[u8]| {
        t.server(0, bytes, &mut out);
        t.server_answered()
    };
    assert!(!after(&mut t, b"* OK ready\r\n"));
    assert!(after(&mut t, b"a1 OK done\r\n"));
    assert!(!after(&mut t, b"* 1 FETCH (BODY[] {10}\r\n"));
    assert!(!after(&mut t, b"0123456789"));
    // The line after a literal goes on with the untagged response.
    assert!(!after(&mut t, b")\r\n"));
    assert!(!after(&mut t, b"a2 OK do"));
    assert!(after(&mut t, b"ne\r\n"));
    assert!(after(&mut t, b"+ idling\r\n"));
    assert!(!after(&mut t, b"* 2 EXISTS\r\n"));
    assert!(after(&mut t, b"* 3 EXISTS\r\na3 OK done\r\n"));
}
