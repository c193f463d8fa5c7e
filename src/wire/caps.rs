//! Capability filtering on the wire: wherever the server lists capabilities
//! (greeting `[CAPABILITY …]`, `* CAPABILITY …`, tagged/untagged OK `[CAPABILITY …]`)
//! the proxy removes what cannot cross it and sets STARTTLS/LOGINDISABLED for
//! the client's side of the connection. Everything else stays, in order.

/// The client side's TLS situation, which decides STARTTLS and LOGINDISABLED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapabilityPolicy {
    /// Offer STARTTLS (client on a plain connection to a listener that can upgrade).
    pub offer_starttls: bool,
    /// Announce LOGINDISABLED (client on plain text where login is not allowed).
    pub login_disabled: bool,
}

/// Whether a capability atom must never reach the client.
fn always_removed(cap: &[u8]) -> bool {
    let upper = cap.to_ascii_uppercase();
    upper.starts_with(b"COMPRESS=")
        || (upper.starts_with(b"AUTH=") && upper.ends_with(b"-PLUS"))
        || upper == b"STARTTLS"
        || upper == b"LOGINDISABLED"
}

/// Filter the capability list in `line`, if it holds one. `None`: unchanged
/// (forward the original bytes).
pub fn filter_capabilities(line: &[u8], policy: CapabilityPolicy) -> Option<Vec<u8>> {
    let (start, end) = capability_span(line)?;
    let list = &line[start..end];
    let mut out_caps: Vec<&[u8]> = atoms(list).filter(|c| !always_removed(c)).collect();
    if policy.offer_starttls {
        out_caps.push(b"STARTTLS");
    }
    if policy.login_disabled {
        out_caps.push(b"LOGINDISABLED");
    }
    let joined = out_caps.join(&b' ');
    if joined == list {
        return None;
    }
    let mut out = Vec::with_capacity(line.len() + 24);
    out.extend_from_slice(&line[..start]);
    out.extend_from_slice(&joined);
    out.extend_from_slice(&line[end..]);
    Some(out)
}

/// Which client literals the server takes without a `+` first (RFC 7888).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NonSyncLiterals {
    /// Neither LITERAL+ nor LITERAL-: every literal waits for `+`.
    #[default]
    None,
    /// LITERAL-: up to 4096 bytes.
    UpTo4096,
    /// LITERAL+: any size.
    Any,
}

impl NonSyncLiterals {
    /// May a non-synchronising literal of `len` bytes be sent?
    pub fn allows(self, len: u64) -> bool {
        match self {
            NonSyncLiterals::None => false,
            NonSyncLiterals::UpTo4096 => len <= 4096,
            NonSyncLiterals::Any => true,
        }
    }
}

/// What a server's capability list says about literals: non-synchronising
/// literals and the APPENDLIMIT, if `line` holds a capability list.
pub fn literal_capabilities(line: &[u8]) -> Option<(NonSyncLiterals, Option<u64>)> {
    let (start, end) = capability_span(line)?;
    let mut non_sync = NonSyncLiterals::None;
    let mut limit = None;
    for cap in atoms(&line[start..end]) {
        if cap.eq_ignore_ascii_case(b"LITERAL+") {
            non_sync = NonSyncLiterals::Any;
        } else if cap.eq_ignore_ascii_case(b"LITERAL-") && non_sync == NonSyncLiterals::None {
            non_sync = NonSyncLiterals::UpTo4096;
        } else if starts_with_ci(cap, b"APPENDLIMIT=") {
            limit = std::str::from_utf8(&cap[12..])
                .ok()
                .and_then(|n| n.parse().ok());
        }
    }
    Some((non_sync, limit))
}

/// The atoms of a capability list. A CR is never part of one (atoms hold no
/// control characters): it separates, so `LOGINDISABLED\r` is `LOGINDISABLED`.
fn atoms(list: &[u8]) -> impl Iterator<Item = &[u8]> {
    list.split(|&b| b == b' ' || b == b'\r')
        .filter(|a| !a.is_empty())
}

/// Byte range of the capability atoms in `line` (after `CAPABILITY `), if any.
/// Spaces and stray CRs after the last atom are not part of it: they stay as the
/// server sent them, and a CR never becomes part of the line ending.
pub(crate) fn capability_span(line: &[u8]) -> Option<(usize, usize)> {
    let (start, mut end) = capability_list(line)?;
    while end > start && matches!(line[end - 1], b' ' | b'\r') {
        end -= 1;
    }
    Some((start, end))
}

/// Byte range from after `CAPABILITY ` to the end of the list, if `line` holds one.
fn capability_list(line: &[u8]) -> Option<(usize, usize)> {
    let body_end = line.len()
        - if line.ends_with(b"\r\n") {
            2
        } else if line.ends_with(b"\n") {
            1
        } else {
            0
        };
    let tag_end = memchr::memchr(b' ', line)?;
    let rest = &line[tag_end + 1..body_end];
    if starts_with_ci(rest, b"CAPABILITY ") && &line[..tag_end] == b"*" {
        let start = tag_end + 1 + b"CAPABILITY ".len();
        return Some((start, body_end));
    }
    for status in [&b"OK ["[..], b"PREAUTH [", b"BYE ["] {
        if starts_with_ci(rest, status) && starts_with_ci(&rest[status.len()..], b"CAPABILITY ") {
            let start = tag_end + 1 + status.len() + b"CAPABILITY ".len();
            let close = memchr::memchr(b']', &line[start..body_end])?;
            return Some((start, start + close));
        }
    }
    None
}

fn starts_with_ci(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: CapabilityPolicy = CapabilityPolicy {
        offer_starttls: true,
        login_disabled: false,
    };
    const TLS: CapabilityPolicy = CapabilityPolicy {
        offer_starttls: false,
        login_disabled: false,
    };

    fn f(line: &str, p: CapabilityPolicy) -> String {
        String::from_utf8(filter_capabilities(line.as_bytes(), p).unwrap_or(line.into())).unwrap()
    }

    #[test]
    fn greeting_untagged_and_tagged() {
        assert_eq!(
            f("* OK [CAPABILITY IMAP4rev1 SASL-IR STARTTLS AUTH=PLAIN AUTH=SCRAM-SHA-256-PLUS COMPRESS=DEFLATE ID] ready\r\n", TLS),
            "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN ID] ready\r\n"
        );
        assert_eq!(
            f(
                "* CAPABILITY IMAP4rev1 compress=deflate IDLE X-UNKNOWN\r\n",
                PLAIN
            ),
            "* CAPABILITY IMAP4rev1 IDLE X-UNKNOWN STARTTLS\r\n"
        );
        assert_eq!(
            f(
                "a1 OK [CAPABILITY IMAP4rev1 LOGINDISABLED IDLE] Logged in\r\n",
                CapabilityPolicy {
                    offer_starttls: true,
                    login_disabled: true
                }
            ),
            "a1 OK [CAPABILITY IMAP4rev1 IDLE STARTTLS LOGINDISABLED] Logged in\r\n"
        );
    }

    #[test]
    fn literal_capabilities_are_read() {
        assert_eq!(
            literal_capabilities(b"* CAPABILITY IMAP4rev1 literal+ APPENDLIMIT=35651584\r\n"),
            Some((NonSyncLiterals::Any, Some(35_651_584)))
        );
        assert_eq!(
            literal_capabilities(b"* OK [CAPABILITY IMAP4rev1 LITERAL-] hi\r\n"),
            Some((NonSyncLiterals::UpTo4096, None))
        );
        assert_eq!(
            literal_capabilities(b"a OK [CAPABILITY IMAP4rev1] in\r\n"),
            Some((NonSyncLiterals::None, None))
        );
        assert_eq!(literal_capabilities(b"* OK [UIDVALIDITY 3] x\r\n"), None);
        assert!(NonSyncLiterals::UpTo4096.allows(4096) && !NonSyncLiterals::UpTo4096.allows(4097));
        assert!(!NonSyncLiterals::None.allows(1) && NonSyncLiterals::Any.allows(u64::MAX));
    }

    #[test]
    fn unchanged_lines_are_not_rewritten() {
        assert!(filter_capabilities(b"* CAPABILITY IMAP4rev1 IDLE\r\n", TLS).is_none());
        assert!(filter_capabilities(b"* OK [UIDVALIDITY 3] x\r\n", TLS).is_none());
        assert!(filter_capabilities(b"* 1 FETCH (FLAGS ())\r\n", TLS).is_none());
        assert!(filter_capabilities(b"a OK CAPABILITY completed\r\n", TLS).is_none());
        assert!(filter_capabilities(b"* CAPABILITY IMAP4rev1 STARTTLS\r\n", PLAIN).is_none());
    }

    /// Found by the `fetch_scan` fuzz target: after a stray CR before the line
    /// ending, filtering made the CR part of the line ending, so a second pass
    /// changed the line again (and the client got a line the server never sent).
    #[test]
    fn filtering_twice_changes_nothing_more() {
        let mut line = b"* CAPABILITY I\xff\xff\0\0\0\0\tMIMAP3r".to_vec();
        line.extend([0xff; 81]);
        line.extend_from_slice(b"3r- APPE\x94D65TCHV* 2 FETCEH \r \n");
        for p in [PLAIN, TLS] {
            let once = filter_capabilities(&line, p).unwrap_or(line.clone());
            assert_eq!(filter_capabilities(&once, p), None);
            assert!(once.ends_with(b" \r \n"));
        }
        assert_eq!(
            filter_capabilities(b"* CAPABILITY IMAP4rev1 STARTTLS \r\n", TLS).unwrap(),
            b"* CAPABILITY IMAP4rev1 \r\n"
        );
        // A CR glued to an atom: filtering once made `LOGINDISABLED\r` the last
        // atom, whose CR a second pass took for the line ending.
        let line = b"* CAPABILITY *Y \x06\0\0\0\0\0\0\0gIN-- APPENDLIMIT=\"\r STARTTLS LOGINDISABLED\r COMPRESS=DECOM\r\n";
        for p in [PLAIN, TLS] {
            let once = filter_capabilities(line, p).unwrap();
            assert_eq!(filter_capabilities(&once, p), None);
            assert!(!once.windows(13).any(|w| w == b"LOGINDISABLED"));
        }
    }
}
