//! What makes a message this message: the content digest that decides whether two
//! messages with one Message-ID are one email activity (SPEC section 4), and the
//! header reading it needs.

/// Header fields that say which message this is, hashed by [`content_digest`].
const IDENTIFYING_FIELDS: [&str; 11] = [
    "message-id",
    "from",
    "sender",
    "to",
    "cc",
    "date",
    "subject",
    "in-reply-to",
    "references",
    "content-type",
    "content-transfer-encoding",
];

/// The content digest of a raw message: SHA-256 over its identifying header fields
/// (unfolded, whitespace runs collapsed, in order) and its body bytes (line ends
/// made CRLF), lower-case hex.
///
/// Not a digest of the raw bytes: the same message differs from mailbox to mailbox
/// in its trace fields (`Received`, `Delivered-To`, `Return-Path`), a sent copy
/// carries `Bcc`, a copy written by the proxy carries the X-CRM-* block, and stores
/// turn CRLF into LF. A forger who reuses a Message-ID changes what this covers: the
/// text, the attachments, the sender, the date or the subject.
pub fn content_digest(raw: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let (head, body) = split_header(raw);
    let mut h = Sha256::new();
    for (name, value) in header_fields(head) {
        if IDENTIFYING_FIELDS.contains(&name.as_str()) {
            h.update(name.as_bytes());
            h.update(b":");
            h.update(&value);
            h.update(b"\n");
        }
    }
    h.update(b"\n");
    let mut prev = 0u8;
    for &b in body {
        if b == b'\n' && prev != b'\r' {
            h.update(b"\r");
        }
        h.update([b]);
        prev = b;
    }
    hex::encode(h.finalize())
}

/// The first `name` field (lower-case) of a raw message's header, unfolded, with
/// whitespace runs made one space.
pub fn header_value(raw: &[u8], name: &str) -> Option<String> {
    header_fields(split_header(raw).0)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| String::from_utf8_lossy(&v).into_owned())
}

/// The header section and the body of a raw message (split at the first empty line).
fn split_header(raw: &[u8]) -> (&[u8], &[u8]) {
    let mut at = 0;
    for line in raw.split_inclusive(|&b| b == b'\n') {
        at += line.len();
        if line == b"\n" || line == b"\r\n" {
            return (&raw[..at - line.len()], &raw[at..]);
        }
    }
    (raw, &[])
}

/// (lower-case name, unfolded value with whitespace runs made one space) per field.
fn header_fields(head: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for line in head.split_inclusive(|&b| b == b'\n') {
        if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            if let Some((_, v)) = out.last_mut() {
                v.push(b' ');
                v.extend_from_slice(line);
            }
        } else if let Some(colon) = line.iter().position(|&b| b == b':') {
            let name = String::from_utf8_lossy(&line[..colon])
                .trim()
                .to_ascii_lowercase();
            out.push((name, line[colon + 1..].to_vec()));
        }
    }
    for (_, v) in &mut out {
        let words: Vec<&[u8]> = v
            .split(|b| b.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
            .collect();
        *v = words.join(&b' ');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::content_digest;

    #[test]
    fn the_digest_ignores_delivery_and_line_ends_but_not_content() {
        let m =
            b"Message-ID: <a@x>\r\nFrom: a@x\r\nSubject: Quote\r\n  for you\r\n\r\nPrice 1.\r\n";
        let d = content_digest(m);
        let delivered = [b"Received: from mx\r\nDelivered-To: b@y\r\n".as_slice(), m].concat();
        assert_eq!(content_digest(&delivered), d);
        let lf = String::from_utf8_lossy(m).replace("\r\n", "\n");
        assert_eq!(content_digest(lf.as_bytes()), d);
        let text = String::from_utf8_lossy(m).replace("Price 1.", "Price 2.");
        assert_ne!(content_digest(text.as_bytes()), d);
        let sender = String::from_utf8_lossy(m).replace("From: a@x", "From: z@x");
        assert_ne!(content_digest(sender.as_bytes()), d);
    }
}
