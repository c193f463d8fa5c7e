//! Byte escaping for transcripts: printable ASCII stays as it is, `\` becomes
//! `\\`, CR, LF and TAB become `\r`, `\n`, `\t`, every other byte `\xHH`. Pure
//! functions; a transcript is untrusted input, so unescaping checks every escape.
//! [`copy_text_prefix`] copies as much of a literal as can be written unescaped
//! instead (a `{` block: text a person can read as it is).

use super::FormatError;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Append the escaped form of `bytes` to `out`.
pub fn escape_into(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes
        .iter()
        .all(|&b| (0x20..0x7f).contains(&b) && b != b'\\')
    {
        // The common case (a text line): one copy.
        out.extend_from_slice(bytes);
        return;
    }
    let mut plain_from = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if (0x20..0x7f).contains(&b) && b != b'\\' {
            continue;
        }
        out.extend_from_slice(&bytes[plain_from..i]);
        plain_from = i + 1;
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX[(b >> 4) as usize],
                HEX[(b & 15) as usize],
            ]),
        }
    }
    out.extend_from_slice(&bytes[plain_from..]);
}

/// Append to `out` the leading bytes of `bytes` that are text a `{` block may
/// hold as they are (printable ASCII, TAB, CR, LF and valid UTF-8; no other
/// control byte, no DEL), and return how many. This runs over every literal
/// byte a recording proxy relays, so it checks and copies in one pass, a cache-
/// sized piece at a time (the piece is copied from the cache it was just read
/// into), 32 bytes at a time without branches (the compiler vectorises it).
pub fn copy_text_prefix(bytes: &[u8], out: &mut Vec<u8>) -> usize {
    const PIECE: usize = 512;
    let start = out.len();
    out.reserve(bytes.len());
    let mut eight_bit = false;
    for piece in bytes.chunks(PIECE) {
        let n = text_prefix(piece, &mut eight_bit);
        out.extend_from_slice(&piece[..n]);
        if n < piece.len() {
            break;
        }
    }
    if eight_bit {
        if let Err(e) = std::str::from_utf8(&out[start..]) {
            out.truncate(start + e.valid_up_to());
        }
    }
    out.len() - start
}

/// How many leading bytes of `bytes` hold no control byte (UTF-8 unchecked;
/// `eight_bit` is set when one of them has its high bit).
fn text_prefix(bytes: &[u8], eight_bit: &mut bool) -> usize {
    const LANES: usize = 32;
    let control = |b: u8| (b < 0x20 && b != b'\t' && b != b'\r' && b != b'\n') | (b == 0x7f);
    for (k, lane) in bytes.chunks(LANES).enumerate() {
        let (mut bad, mut high) = (false, false);
        for &b in lane {
            bad |= control(b);
            high |= b >= 0x80;
        }
        if bad {
            let at = lane.iter().position(|&b| control(b)).unwrap_or(0);
            *eight_bit |= lane[..at].iter().any(|&b| b >= 0x80);
            return k * LANES + at;
        }
        *eight_bit |= high;
    }
    bytes.len()
}

/// The bytes an escaped text stands for, appended to `out`.
pub fn unescape_into(out: &mut Vec<u8>, text: &[u8]) -> Result<(), FormatError> {
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        if b != b'\\' {
            if !(0x20..0x7f).contains(&b) {
                return Err(FormatError::Escape("a raw control or non-ASCII byte"));
            }
            out.push(b);
            i += 1;
            continue;
        }
        match text.get(i + 1) {
            Some(b'\\') => out.push(b'\\'),
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'x') => {
                let hi = text.get(i + 2).and_then(|c| hex_value(*c));
                let lo = text.get(i + 3).and_then(|c| hex_value(*c));
                match (hi, lo) {
                    (Some(h), Some(l)) => out.push(h << 4 | l),
                    _ => return Err(FormatError::Escape("\\x needs two hex digits")),
                }
                i += 2;
            }
            _ => return Err(FormatError::Escape("unknown escape")),
        }
        i += 2;
    }
    Ok(())
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(b: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        escape_into(&mut v, b);
        v
    }

    #[test]
    fn round_trip_every_byte() {
        let all: Vec<u8> = (0..=255u8).collect();
        let e = esc(&all);
        assert!(e.iter().all(|b| (0x20..0x7f).contains(b)));
        let mut back = Vec::new();
        unescape_into(&mut back, &e).unwrap();
        assert_eq!(back, all);
        assert_eq!(esc(b"a\\b\r\n\0\xff"), b"a\\\\b\\r\\n\\x00\\xff");
    }

    /// The text prefix, copied after what `out` held.
    fn text_of(bytes: &[u8]) -> usize {
        let mut out = b"before".to_vec();
        let n = copy_text_prefix(bytes, &mut out);
        assert_eq!(&out[..6], b"before");
        assert_eq!(&out[6..], &bytes[..n]);
        n
    }

    #[test]
    fn the_text_prefix_stops_at_binary() {
        assert_eq!(text_of(b""), 0);
        assert_eq!(text_of(b"From: a\r\n\tb\\c\r\n"), 15);
        let mut long = vec![b'a'; 100];
        long[70] = 0;
        assert_eq!(text_of(&long), 70);
        long[70] = 0x7f;
        assert_eq!(text_of(&long), 70);
        long[70] = 0x1b;
        assert_eq!(text_of(&long), 70);
        // UTF-8 is text; a character cut by the end of a read is not (yet).
        assert_eq!(text_of("grüße\r\n".as_bytes()), 9);
        assert_eq!(text_of(&"grüße".as_bytes()[..3]), 2);
        assert_eq!(text_of(b"ab\xffcd"), 2);
        let mut mixed = "ü".repeat(40).into_bytes();
        mixed.push(0);
        assert_eq!(text_of(&mixed), 80);
        // Across pieces: a control byte or a bad sequence far in, or none.
        let mut big = "text, and grüße\r\n".repeat(300).into_bytes();
        assert_eq!(text_of(&big), big.len());
        big[4000] = 0x08;
        assert_eq!(text_of(&big), 4000);
        big[4000] = b'x';
        big[2999] = 0xc3;
        big[3000] = b'x';
        assert_eq!(text_of(&big), 2999);
        // A high byte after the control byte is not text that was copied.
        let mut after = vec![b'a'; 600];
        after[513] = 0;
        after[520] = 0xff;
        assert_eq!(text_of(&after), 513);
    }

    #[test]
    fn bad_escapes_are_errors() {
        for bad in [&b"\\"[..], b"\\x4", b"\\xzz", b"\\q", b"a\x01b"] {
            assert!(unescape_into(&mut Vec::new(), bad).is_err(), "{bad:?}");
        }
    }
}
