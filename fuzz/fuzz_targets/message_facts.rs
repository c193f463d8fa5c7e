//! What crmproxy reads from a message on arbitrary bytes: its facts (headers,
//! parties, calendar invitation, S/MIME structure and signatures), the content
//! digest, header lookups, Message-ID parsing, and the X-CRM-* block written on
//! top of a tracked copy (well-formed header lines that change nothing the
//! message's own header says).
//!
//! Input: the message; for the header block, fields cut from its start at 0xFF bytes.

#![no_main]

use crmproxy::message::headers::header_end;
use crmproxy::message::{calendar, facts, SmimeForm, TrackingHeaders};
use crmproxy::proxy::state::message_id_from_header;
use crmproxy::store::{content_digest, header_value, EmailAddress, MessageId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|raw: &[u8]| {
    if let Ok(f) = facts::parse(raw) {
        assert_eq!(f.size, raw.len());
        let _ = f.parties().count();
        let _ = f.subject_token();
        let _ = f.is_bulk();
    }
    let text = String::from_utf8_lossy(raw);
    if let Some(inv) = calendar::parse(&text) {
        let _ = (inv.is_request(), inv.is_recurring());
    }
    assert_eq!(content_digest(raw).len(), 64);
    let _ = header_value(raw, "message-id");
    let end = header_end(raw);
    if let Some(end) = end {
        assert!(end <= raw.len());
    }
    let mid = message_id_from_header(&raw[..end.unwrap_or(raw.len())]);
    if let Some(mid) = &mid {
        if let Ok(id) = MessageId::parse(mid) {
            let again = MessageId::parse(id.as_str()).expect("a parsed Message-ID parses again");
            assert_eq!(again.as_str(), id.as_str());
        }
    }
    for word in text.split_whitespace().take(20) {
        if let Ok(a) = EmailAddress::parse(word) {
            let again = EmailAddress::parse(a.as_str()).expect("a parsed address parses again");
            assert_eq!(again.as_str(), a.as_str());
        }
    }
    tracking_block(raw, mid);
});

fn tracking_block(raw: &[u8], mid: Option<String>) {
    let mut fields = raw.splitn(7, |&b| b == 0xFF);
    let mut next = || {
        fields
            .next()
            .map(|f| String::from_utf8_lossy(f).into_owned())
    };
    let (by, activity, kind, id, name, signer) = (next(), next(), next(), next(), next(), next());
    let form = [SmimeForm::Detached, SmimeForm::Opaque, SmimeForm::Encrypted][raw.len() % 3];
    let headers = TrackingHeaders {
        tracked_by: by,
        tracked_at: None,
        activity_id: activity,
        regarding: Some((
            kind.unwrap_or_default(),
            id.unwrap_or_default(),
            name.unwrap_or_default(),
        )),
        smime: Some((form.as_str(), signer, raw.len() % 2 == 0)),
    };
    let block = headers.render();
    assert!(block.is_ascii(), "non-ASCII header block");
    assert!(block.is_empty() || block.ends_with(b"\r\n"));
    let body = &block[..block.len().saturating_sub(2)];
    for line in body.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        assert!(!line.contains(&b'\r'), "bare CR in {block:?}");
        assert!(
            line.iter().any(|&b| b != b' ' && b != b'\t'),
            "a header line of nothing but white space: {block:?}"
        );
        if !line.starts_with(b" ") {
            assert!(line.starts_with(b"X-CRM-"), "{line:?}");
        }
    }
    // Put on top of a message, the block leaves its Message-ID as it was.
    if raw.first().is_some_and(u8::is_ascii_alphanumeric) {
        let mut copy = block.clone();
        copy.extend_from_slice(raw);
        let end = header_end(&copy).unwrap_or(copy.len());
        assert_eq!(message_id_from_header(&copy[..end]), mid, "{block:?}");
    }
}
