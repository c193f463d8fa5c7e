//! A structural scan of an untagged FETCH response for its `UID n` item, without
//! a full decode: quoted strings, nested lists and literal payloads are stepped
//! over, so a `UID` inside a flag list, a string or a message body never counts.
//! The response may be cut short (a first line that announces a literal whose
//! payload is streamed): then only what is there is looked at.

/// The UID item of a FETCH response (`* n FETCH (…)`), if it is in `response`.
pub fn fetch_uid(response: &[u8]) -> Option<u32> {
    let first_line_end = memchr::memchr(b'\n', response).unwrap_or(response.len());
    let open = memchr::memchr(b'(', &response[..first_line_end])?;
    let mut depth = 1usize;
    let mut i = open + 1;
    let mut token_start = i;
    // The previous item-level token, and whether it was exactly `UID`.
    let mut after_uid = false;
    // Inside an item's `[section]`. Only an item name opens one: elsewhere `[`
    // is an atom character (a flag, a header field name may hold it), and `]`
    // an astring character inside the section's field list.
    let mut in_section = false;
    while i < response.len() {
        let b = response[i];
        match b {
            b'"' => {
                i = skip_quoted(response, i + 1)?;
                after_uid = false;
                token_start = i;
                continue;
            }
            b'{' => {
                if let Some(after) = skip_literal(response, i) {
                    i = after;
                    after_uid = false;
                    token_start = i;
                    continue;
                }
            }
            b'[' if depth == 1 => {
                in_section = true;
                depth += 1;
                after_uid = false;
                token_start = i + 1;
            }
            b'(' => {
                depth += 1;
                after_uid = false;
                token_start = i + 1;
            }
            b']' if !(in_section && depth == 2) => {}
            b')' | b']' | b' ' | b'\r' | b'\n' => {
                if depth == 1 {
                    let token = &response[token_start..i];
                    if after_uid && !token.is_empty() {
                        return std::str::from_utf8(token).ok()?.parse().ok();
                    }
                    if !token.is_empty() {
                        after_uid = token.eq_ignore_ascii_case(b"UID");
                    }
                }
                if b == b')' || b == b']' {
                    in_section &= b == b')';
                    depth -= 1;
                    if depth == 0 {
                        return None;
                    }
                    after_uid = false;
                }
                token_start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Index just past the closing quote of a string whose contents start at `i`.
fn skip_quoted(s: &[u8], mut i: usize) -> Option<usize> {
    while i < s.len() {
        match s[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// `s[i]` is `{`: if a literal announcement `{n}` or `{n+}` ending its line
/// starts there, the index just past its payload (`None` when the payload is not
/// all there, which also ends the scan of a cut-short response).
fn skip_literal(s: &[u8], i: usize) -> Option<usize> {
    let digits = s[i + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let mut j = i + 1 + digits;
    if s.get(j) == Some(&b'+') {
        j += 1;
    }
    if s.get(j..j + 3) != Some(b"}\r\n") {
        return None;
    }
    let n: usize = std::str::from_utf8(&s[i + 1..i + 1 + digits])
        .ok()?
        .parse()
        .ok()?;
    let end = (j + 3).checked_add(n)?;
    // Past the end: step to the end so the scan stops there.
    Some(end.min(s.len()))
}

#[cfg(test)]
mod tests {
    use super::fetch_uid;

    #[test]
    fn uid_anywhere_at_item_level() {
        assert_eq!(
            fetch_uid(b"* 3 FETCH (UID 77 BODY[] {900000}\r\n"),
            Some(77)
        );
        assert_eq!(
            fetch_uid(b"* 3 FETCH (FLAGS (\\Seen) UID 8 BODY[] {9}\r\n"),
            Some(8)
        );
        assert_eq!(fetch_uid(b"* 3 FETCH (UID 12)\r\n"), Some(12));
        assert_eq!(fetch_uid(b"* 3 FETCH (uid 12)\r\n"), Some(12));
        // After a literal: its payload is stepped over.
        assert_eq!(
            fetch_uid(b"* 3 FETCH (BODY[] {9}\r\nUID 4 ) \r\n UID 9)\r\n"),
            Some(9)
        );
        assert_eq!(
            fetch_uid(b"* 3 FETCH (BODY[HEADER.FIELDS (UID)] {2}\r\n\r\n UID 5)\r\n"),
            Some(5)
        );
    }

    #[test]
    fn uid_look_alikes_do_not_count() {
        assert_eq!(fetch_uid(b"* 3 FETCH (X \"UID 5\" BODY[] {9}\r\n"), None);
        assert_eq!(fetch_uid(b"* 3 FETCH (FLAGS (UID 5))\r\n"), None);
        assert_eq!(fetch_uid(b"* 3 FETCH (X \"a\\\"UID 5\")\r\n"), None);
        // The payload of a literal (cut short or whole) is not looked into.
        assert_eq!(fetch_uid(b"* 3 FETCH (BODY[] {9}\r\nUID 4)\r\n"), None);
        assert_eq!(fetch_uid(b"* 3 FETCH (BODY[] {7}\r\n UID 4)\r\n"), None);
        assert_eq!(fetch_uid(b"* 3 FETCH (FLAGS ())\r\n"), None);
        assert_eq!(fetch_uid(b"* 3 FETCH (UID x)\r\n"), None);
        assert_eq!(fetch_uid(b"* 3 FETCH (UID"), None);
        assert_eq!(fetch_uid(b""), None);
    }

    /// Found by the `fetch_scan` fuzz target: a `[` in a header field name (an
    /// atom character) counted as a nesting level, so the UID after it was missed.
    #[test]
    fn brackets_in_atoms_do_not_nest() {
        let line = b"* 3 FETCH (BODY[HEADER.FIELDS (Uev1 'ITER/L-jAPPABILY r1 LITEP4rev1 LITERev1 LI[TER /LIMAP4rev1 LITER/L- ALQTEP4rev1 LITERev1 LIID)] {2}\r\n\r\n UID 5)\r\n";
        assert_eq!(fetch_uid(line), Some(5));
        assert_eq!(fetch_uid(b"* 3 FETCH (FLAGS (a[b) UID 6)\r\n"), Some(6));
        assert_eq!(
            fetch_uid(b"* 3 FETCH (BODY[HEADER.FIELDS (a]b)] {2}\r\n\r\n UID 7)\r\n"),
            Some(7)
        );
    }
}
