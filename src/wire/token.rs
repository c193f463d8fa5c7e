//! Cheap structural look at the first line of a message: its tag and command
//! name (client side) or its kind (server side), without a full decode.

/// What a server line starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseStart<'a> {
    /// `+ …`: a command continuation request.
    Continuation,
    /// `* …`: untagged data or status.
    Untagged,
    /// `<tag> …`: the completion of the command with this tag.
    Tagged(&'a [u8]),
}

/// Classify a server line by its first token.
pub fn response_start(line: &[u8]) -> ResponseStart<'_> {
    match line.first() {
        Some(b'+') => ResponseStart::Continuation,
        Some(b'*') => ResponseStart::Untagged,
        _ => ResponseStart::Tagged(first_token(line)),
    }
}

/// The bytes up to the first space or line ending.
pub fn first_token(line: &[u8]) -> &[u8] {
    let end = line
        .iter()
        .position(|&b| b == b' ' || b == b'\r' || b == b'\n')
        .unwrap_or(line.len());
    &line[..end]
}

/// Tag and upper-cased command name of a client line (`a UID FETCH` → `UID`).
pub fn command_start(line: &[u8]) -> Option<(&[u8], CommandName)> {
    let tag = first_token(line);
    if tag.is_empty() {
        return None;
    }
    let rest = line.get(tag.len() + 1..)?;
    let name = first_token(rest);
    if name.is_empty() {
        return None;
    }
    Some((tag, CommandName::new(name)))
}

/// A command name, upper-cased, kept inline (names are short).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CommandName {
    buf: [u8; 16],
    len: u8,
}

impl CommandName {
    fn new(name: &[u8]) -> Self {
        let mut buf = [0u8; 16];
        let len = name.len().min(16);
        for (d, s) in buf.iter_mut().zip(&name[..len]) {
            *d = s.to_ascii_uppercase();
        }
        CommandName {
            buf,
            len: len as u8,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }

    pub fn is(&self, upper: &str) -> bool {
        self.as_bytes() == upper.as_bytes()
    }
}

impl std::fmt::Debug for CommandName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// Whether `tag` may be echoed back in a proxy-made answer (atom characters, no `+`).
pub fn is_valid_tag(tag: &[u8]) -> bool {
    !tag.is_empty()
        && tag.len() <= 64
        && tag
            .iter()
            .all(|&b| (0x21..0x7f).contains(&b) && !b"(){ %*\"\\]+".contains(&b))
}

/// `line` (ending in a literal announcement `{n}`, `{n+}` or `~{n}`, then CRLF)
/// with the announcement changed to a non-synchronising `{len+}`. `None` when
/// the line does not end in one, as the framer
/// ([`parse_literal_announcement`](super::parse_literal_announcement)) reads it.
pub fn with_literal_len(line: &[u8], len: u64) -> Option<Vec<u8>> {
    if !line.ends_with(b"\n") {
        return None;
    }
    super::parse_literal_announcement(line)?;
    let open = memchr::memrchr(b'{', line)?;
    let mut out = Vec::with_capacity(line.len() + 8);
    out.extend_from_slice(&line[..open]);
    out.extend_from_slice(format!("{{{len}+}}\r\n").as_bytes());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify() {
        assert_eq!(response_start(b"+ idling\r\n"), ResponseStart::Continuation);
        assert_eq!(response_start(b"* 3 EXISTS\r\n"), ResponseStart::Untagged);
        assert_eq!(
            response_start(b"a1 OK done\r\n"),
            ResponseStart::Tagged(b"a1")
        );
        let (tag, name) = command_start(b"x7 uid fetch 1 (FLAGS)\r\n").unwrap();
        assert_eq!(tag, b"x7");
        assert!(name.is("UID"));
        assert!(command_start(b"DONE\r\n").is_none());
        assert!(is_valid_tag(b"A001"));
        assert!(!is_valid_tag(b"a+b"));
    }

    #[test]
    fn literal_announcements_are_rewritten() {
        let w = |l: &[u8], n| with_literal_len(l, n).map(|v| String::from_utf8(v).unwrap());
        assert_eq!(
            w(b"a1 APPEND Sent (\\Seen) {120}\r\n", 301).as_deref(),
            Some("a1 APPEND Sent (\\Seen) {301+}\r\n")
        );
        assert_eq!(
            w(b"a2 APPEND Drafts ~{5+}\r\n", 9).as_deref(),
            Some("a2 APPEND Drafts ~{9+}\r\n")
        );
        assert_eq!(w(b"a3 NOOP\r\n", 1), None);
        assert_eq!(w(b"a4 APPEND x {}\r\n", 1), None);
        assert_eq!(w(b"a5 APPEND x {1a}\r\n", 1), None);
    }

    /// Found by the `command` fuzz target: a count the framer does not take as a
    /// literal (more than 20 digits, or beyond a u64) was rewritten as one.
    #[test]
    fn only_literals_the_framer_sees_are_rewritten() {
        let w = |l: &[u8]| with_literal_len(l, 1);
        assert_eq!(w(b"a APPEND x {123456789012345678901}\r\n"), None);
        assert_eq!(w(b"a APPEND x {99999999999999999999+}\r\n"), None);
        assert_eq!(w(b"a APPEND x {5}\r\r\n"), None);
    }
}
