//! Redaction of message content (`--redact-bodies`), as a pure state machine over
//! the pieces of a literal: headers and MIME structure (part headers, boundary
//! lines) stay, every other byte but CR and LF becomes filler, so the literal
//! keeps its size and its line count (FETCH sizes, BODYSTRUCTURE and partials
//! still match). Also: the user name a login names, for per-user recording.

use base64::Engine;

/// The byte that replaces message content.
pub const FILLER: u8 = b'x';
/// Most bytes of one header block kept to look for `boundary=`.
const HEADER_KEEP: usize = 64 * 1024;
/// Most boundaries remembered for one message.
const MAX_BOUNDARIES: usize = 64;

/// Where a literal's content starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// A whole message (BODY[], RFC822, APPEND): a header first.
    Message,
    /// Content only (BODY[TEXT], BODY[1], a partial from inside): all filler.
    Body,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    Body,
}

/// Redacts one literal, piece by piece (pieces end at LF, or anywhere when long).
#[derive(Debug)]
pub struct BodyRedactor {
    state: State,
    boundaries: Vec<Vec<u8>>,
    at_line_start: bool,
    header: Vec<u8>,
}

impl BodyRedactor {
    pub fn new(start: Start) -> Self {
        BodyRedactor {
            state: match start {
                Start::Message => State::Header,
                Start::Body => State::Body,
            },
            boundaries: Vec::new(),
            at_line_start: true,
            header: Vec::new(),
        }
    }

    /// Append the redacted form of `piece` (same length) to `out`.
    pub fn piece(&mut self, piece: &[u8], out: &mut Vec<u8>) {
        let line_start = self.at_line_start;
        self.at_line_start = piece.ends_with(b"\n");
        match self.state {
            State::Header => {
                out.extend_from_slice(piece);
                if line_start && (piece == b"\r\n" || piece == b"\n") {
                    self.header_done();
                } else if self.header.len() < HEADER_KEEP {
                    let room = HEADER_KEEP - self.header.len();
                    self.header
                        .extend_from_slice(&piece[..piece.len().min(room)]);
                }
            }
            State::Body => {
                if line_start {
                    if let Some(closing) = self.boundary(piece) {
                        out.extend_from_slice(piece);
                        if !closing {
                            self.state = State::Header;
                            self.header.clear();
                        }
                        return;
                    }
                }
                out.extend(
                    piece
                        .iter()
                        .map(|&b| if b == b'\r' || b == b'\n' { b } else { FILLER }),
                );
            }
        }
    }

    /// The end of a header block: learn its boundary; a `message/rfc822` part's
    /// body starts with the embedded message's header.
    fn header_done(&mut self) {
        let lower = self.header.to_ascii_lowercase();
        if let Some(b) = boundary_param(&self.header, &lower) {
            if self.boundaries.len() < MAX_BOUNDARIES && !b.is_empty() {
                self.boundaries.push(b);
            }
        }
        let nested = content_type(&lower).is_some_and(|ct| ct.starts_with(b"message/rfc822"));
        self.header.clear();
        self.state = if nested { State::Header } else { State::Body };
    }

    /// `Some(closing)` when the line is `--boundary` or `--boundary--`.
    fn boundary(&self, line: &[u8]) -> Option<bool> {
        let end = line
            .iter()
            .rposition(|b| !matches!(b, b'\r' | b'\n' | b' ' | b'\t'))
            .map_or(0, |i| i + 1);
        let rest = line[..end].strip_prefix(b"--")?;
        self.boundaries.iter().find_map(|b| {
            if rest == &b[..] {
                Some(false)
            } else if rest.len() == b.len() + 2 && rest.starts_with(b) && rest.ends_with(b"--") {
                Some(true)
            } else {
                None
            }
        })
    }
}

/// The value of the Content-Type field (lower-cased), if the header has one.
fn content_type(lower: &[u8]) -> Option<&[u8]> {
    let at = find(lower, b"content-type:")?;
    if at != 0 && lower[at - 1] != b'\n' {
        return None;
    }
    let v = &lower[at + 13..];
    let start = v.iter().position(|b| !b.is_ascii_whitespace())?;
    Some(&v[start..])
}

/// `boundary=` of the header's Content-Type (original case).
fn boundary_param(header: &[u8], lower: &[u8]) -> Option<Vec<u8>> {
    content_type(lower)?;
    let at = find(lower, b"boundary=")? + 9;
    let v = &header[at..];
    if let Some(q) = v.strip_prefix(b"\"") {
        let end = memchr::memchr(b'"', q)?;
        return Some(q[..end].to_vec());
    }
    let end = v
        .iter()
        .position(|b| matches!(b, b';' | b' ' | b'\t' | b'\r' | b'\n'))
        .unwrap_or(v.len());
    Some(v[..end].to_vec())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The user an `AUTHENTICATE` initial response (or SASL response) names.
pub fn sasl_user(mechanism: &[u8], response: &[u8]) -> Option<String> {
    let text = response.trim_ascii();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    let user = if mechanism.eq_ignore_ascii_case(b"PLAIN") {
        let mut parts = raw.split(|b| *b == 0);
        let authz = parts.next()?;
        let authc = parts.next()?;
        parts.next()?;
        if authz.is_empty() {
            authc.to_vec()
        } else {
            authz.to_vec()
        }
    } else if mechanism.eq_ignore_ascii_case(b"XOAUTH2") {
        let rest = raw.strip_prefix(b"user=")?;
        rest[..memchr::memchr(1, rest)?].to_vec()
    } else if mechanism.eq_ignore_ascii_case(b"OAUTHBEARER") {
        // gs2 header: n,a=user,
        let at = find(&raw, b"a=")? + 2;
        let rest = &raw[at..];
        rest[..memchr::memchr(b',', rest)?].to_vec()
    } else if mechanism.eq_ignore_ascii_case(b"LOGIN") {
        raw
    } else {
        return None;
    };
    String::from_utf8(user).ok()
}

/// The user of `tag LOGIN user …` (an atom or a quoted string; not a literal).
pub fn login_user(args: &[u8]) -> Option<String> {
    let args = args.trim_ascii_start();
    let user = if let Some(q) = args.strip_prefix(b"\"") {
        let mut out = Vec::new();
        let mut esc = false;
        for &b in q {
            match (esc, b) {
                (false, b'\\') => esc = true,
                (false, b'"') => return String::from_utf8(out).ok(),
                _ => {
                    out.push(b);
                    esc = false;
                }
            }
        }
        return None;
    } else {
        let end = args.iter().position(|b| *b == b' ').unwrap_or(args.len());
        &args[..end]
    };
    if user.is_empty() || user.starts_with(b"{") {
        return None;
    }
    String::from_utf8(user.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(start: Start, msg: &[u8]) -> Vec<u8> {
        let mut r = BodyRedactor::new(start);
        let mut out = Vec::new();
        for piece in msg.split_inclusive(|b| *b == b'\n') {
            r.piece(piece, &mut out);
        }
        out
    }

    #[test]
    fn headers_and_structure_stay_content_goes() {
        let msg = b"From: a@b\r\nContent-Type: multipart/mixed;\r\n boundary=\"XYZ\"\r\n\r\n\
preamble\r\n--XYZ\r\nContent-Type: text/plain\r\n\r\nsecret body\r\n--XYZ\r\n\
Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner secret\r\n--XYZ--\r\nepilogue";
        let out = redact(Start::Message, msg);
        assert_eq!(out.len(), msg.len());
        let text = String::from_utf8(out).unwrap();
        assert!(
            !text.contains("secret") && !text.contains("preamble"),
            "{text}"
        );
        for kept in [
            "From: a@b",
            "boundary=\"XYZ\"",
            "--XYZ\r\nContent-Type: text/plain",
            "Subject: inner",
            "--XYZ--",
        ] {
            assert!(text.contains(kept), "{kept} missing in {text}");
        }
        assert_eq!(
            text.matches("\r\n").count(),
            String::from_utf8_lossy(msg).matches("\r\n").count()
        );
    }

    #[test]
    fn body_sections_are_all_filler() {
        let out = redact(Start::Body, b"--XYZ\r\nhello\r\n");
        assert_eq!(out, b"xxxxx\r\nxxxxx\r\n");
    }

    #[test]
    fn users_from_logins() {
        assert_eq!(login_user(b"alice secret").as_deref(), Some("alice"));
        assert_eq!(login_user(b"\"a\\\"b c\" x").as_deref(), Some("a\"b c"));
        assert_eq!(login_user(b"{5}"), None);
        let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
        assert_eq!(
            sasl_user(b"PLAIN", b64(b"\0bob\0pw").as_bytes()).as_deref(),
            Some("bob")
        );
        assert_eq!(
            sasl_user(b"plain", b64(b"carol\0admin\0pw").as_bytes()).as_deref(),
            Some("carol")
        );
        assert_eq!(
            sasl_user(
                b"XOAUTH2",
                b64(b"user=dan@x\x01auth=Bearer t\x01\x01").as_bytes()
            )
            .as_deref(),
            Some("dan@x")
        );
        assert_eq!(
            sasl_user(
                b"OAUTHBEARER",
                b64(b"n,a=eve@x,\x01auth=Bearer t\x01\x01").as_bytes()
            )
            .as_deref(),
            Some("eve@x")
        );
        assert_eq!(sasl_user(b"PLAIN", b"!!"), None);
    }
}
