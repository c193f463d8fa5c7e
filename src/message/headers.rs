//! The tracking header block written once, for real, at the top of a new copy of a
//! tracked message's top-level header (SPEC section 3). It holds only facts that
//! stay true (who tracked it and when, the activity, the regarding set then, S/MIME
//! facts): status changes travel in keywords. Values are ASCII; a record name that
//! is not is written as an RFC 2047 encoded-word. Only whole lines are produced,
//! each ending in CRLF, so that putting them before the first header line changes
//! no other byte.

use base64::Engine;

/// What the block says. Built by the tracking engine from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackingHeaders {
    /// The login address of whoever asked for tracking (owner or delegate).
    pub tracked_by: Option<String>,
    /// When tracking was asked for.
    pub tracked_at: Option<chrono::DateTime<chrono::Utc>>,
    pub activity_id: Option<String>,
    /// Record type, id and display name.
    pub regarding: Option<(String, String, String)>,
    /// S/MIME summary: form word, signer address, verified.
    pub smime: Option<(&'static str, Option<String>, bool)>,
}

impl TrackingHeaders {
    /// The header lines, CRLF-terminated, in the order of SPEC section 3.
    pub fn render(&self) -> Vec<u8> {
        let mut out = String::with_capacity(256);
        if let Some(by) = &self.tracked_by {
            push_field(&mut out, "X-CRM-Tracked-By", &ascii_token(by));
        }
        if let Some(at) = &self.tracked_at {
            let at = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            push_field(&mut out, "X-CRM-Tracked-At", &at);
        }
        if let Some(id) = &self.activity_id {
            push_field(&mut out, "X-CRM-Activity-Id", &ascii_token(id));
        }
        if let Some((kind, id, name)) = &self.regarding {
            let value = format!(
                "{} <{}> {}",
                ascii_token(kind),
                ascii_token(id),
                phrase(name)
            );
            push_field(&mut out, "X-CRM-Regarding", &value);
        }
        if let Some((form, signer, verified)) = &self.smime {
            let kind = if *form == "encrypted" {
                "encrypted"
            } else {
                "signed"
            };
            let mut value = format!("{kind}; form={form}");
            if let Some(s) = signer {
                value.push_str(&format!("; signer={}", quoted(&ascii_token(s))));
            }
            if kind == "signed" {
                value.push_str(if *verified {
                    "; verified=yes"
                } else {
                    "; verified=no"
                });
            }
            push_field(&mut out, "X-CRM-SMIME", &value);
        }
        out.into_bytes()
    }
}

/// Appends `Name: value` CRLF, folding at spaces so no line exceeds 78 characters
/// where it can. Never before an empty word (a run of spaces): a folded line of
/// nothing but white space may end the header for a reader (RFC 5322 3.2.2).
fn push_field(out: &mut String, name: &str, value: &str) {
    let mut line_len = name.len() + 2;
    out.push_str(name);
    out.push_str(": ");
    let mut first = true;
    for word in value.split(' ') {
        if !first {
            if line_len + 1 + word.len() > 78 && !word.is_empty() {
                out.push_str("\r\n ");
                line_len = 1;
            } else {
                out.push(' ');
                line_len += 1;
            }
        }
        out.push_str(word);
        line_len += word.len();
        first = false;
    }
    out.push_str("\r\n");
}

/// Keeps printable ASCII without spaces; anything else becomes `_` (ids and addresses
/// the engine produces are ASCII already; this only guards the header syntax).
fn ascii_token(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn quoted(s: &str) -> String {
    format!("\"{s}\"")
}

/// A display name: quoted when ASCII, an RFC 2047 encoded-word otherwise (an
/// encoded-word may not stand inside quotes).
fn phrase(name: &str) -> String {
    let clean: String = name.chars().filter(|c| !c.is_control()).collect();
    if clean.is_ascii() {
        let escaped = clean.replace('\\', "\\\\").replace('"', "\\\"");
        format!("\"{escaped}\"")
    } else {
        let b64 = base64::engine::general_purpose::STANDARD.encode(clean.as_bytes());
        format!("=?UTF-8?B?{b64}?=")
    }
}

/// Where the header ends (the index after its blank line), if `head` holds it all.
pub fn header_end(head: &[u8]) -> Option<usize> {
    if head.starts_with(b"\r\n") {
        return Some(2);
    }
    if head.starts_with(b"\n") {
        return Some(1);
    }
    memchr::memmem::find(head, b"\r\n\r\n")
        .map(|i| i + 4)
        .or_else(|| memchr::memmem::find(head, b"\n\n").map(|i| i + 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_end_is_after_the_blank_line() {
        assert_eq!(header_end(b"A: b\r\n\r\nbody"), Some(8));
        assert_eq!(header_end(b"A: b\n\nbody"), Some(6));
        assert_eq!(header_end(b"\r\nbody"), Some(2));
        assert_eq!(header_end(b"A: b\r\nC: d"), None);
    }

    fn sample() -> TrackingHeaders {
        TrackingHeaders {
            tracked_by: Some("alice@example.test".into()),
            tracked_at: Some("2026-12-01T09:30:00Z".parse().unwrap()),
            activity_id: Some("0190c1d2-0000-7000-8000-000000000001".into()),
            regarding: Some((
                "account".into(),
                "0190c1d2-0000-7000-8000-0000000000aa".into(),
                "Contoso Ltd".into(),
            )),
            smime: Some(("multipart-signed", Some("a@contoso.example".into()), true)),
        }
    }

    /// Found by the `message_facts` fuzz target: a record name with a run of
    /// spaces folded into header lines of nothing but spaces.
    #[test]
    fn no_line_of_only_white_space() {
        let name = format!(
            "ple>\r\nTo: iclea@contoso.e\u{0}ample\r\nSubject: Black Friday offers\r\n\
             List-Id: Shop offers e: TueU\u{4}\u{3}4 Nov 2026 09:15:00 +0000\r\n\
             F: Shop{}News <news@shop.example>\r\nTo: iclea@contoso.e\u{0}ampl",
            " ".repeat(100)
        );
        let mut h = sample();
        h.regarding = Some((String::new(), "~p.exam".into(), name));
        let block = h.render();
        let text = std::str::from_utf8(&block).unwrap();
        for line in text.strip_suffix("\r\n").unwrap().split("\r\n") {
            assert!(line.trim() != "", "white-space line in {text:?}");
        }
    }

    #[test]
    fn renders_the_spec_block() {
        let text = String::from_utf8(sample().render()).unwrap();
        assert_eq!(
            text,
            "X-CRM-Tracked-By: alice@example.test\r\n\
X-CRM-Tracked-At: 2026-12-01T09:30:00Z\r\n\
X-CRM-Activity-Id: 0190c1d2-0000-7000-8000-000000000001\r\n\
X-CRM-Regarding: account <0190c1d2-0000-7000-8000-0000000000aa> \"Contoso Ltd\"\r\n\
X-CRM-SMIME: signed; form=multipart-signed; signer=\"a@contoso.example\";\r\n verified=yes\r\n"
        );
    }

    #[test]
    fn output_is_ascii_lines_under_79_and_parses_back() {
        let mut h = sample();
        h.regarding.as_mut().unwrap().2 = "Société Générale \"Paris\" — 東京".into();
        let bytes = h.render();
        assert!(bytes.is_ascii());
        for line in bytes.split(|b| *b == b'\n') {
            assert!(line.len() <= 79, "{}", String::from_utf8_lossy(line));
        }
        let mut raw = bytes.clone();
        raw.extend_from_slice(b"Subject: x\r\n\r\nbody\r\n");
        let msg = mail_parser::MessageParser::default().parse(&raw).unwrap();
        let reg = msg.header_raw("X-CRM-Regarding").unwrap();
        assert!(reg.contains("=?UTF-8?B?"), "{reg}");
        assert_eq!(msg.subject(), Some("x"));
    }

    #[test]
    fn quotes_and_backslashes_are_escaped() {
        let mut h = sample();
        h.regarding.as_mut().unwrap().2 = r#"A "B" \ C"#.into();
        let text = String::from_utf8(h.render()).unwrap();
        assert!(text.contains(r#""A \"B\" \\ C""#), "{text}");
    }
}
