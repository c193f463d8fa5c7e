//! The transcript format, parsed and rendered as pure functions (no I/O).
//!
//! A transcript is UTF-8-safe text, one record per line, after a header of
//! `# key: value` lines. A record starts with its direction (`C` what the client
//! side sent the server, `S` what the server sent) and its kind:
//!
//! | kind | meaning |
//! |------|---------|
//! | `C: 0.012 a1 NOOP` | a protocol line at 0.012 s; CRLF implied |
//! | `S\| 0.013 …` | a piece of a line, nothing implied (bare LF, over-long lines) |
//! | `C! 0.020 a2 LOGIN [redacted]` | a client message replaced by redaction |
//! | `S= From: a@b` | a piece of the literal announced last; CRLF implied |
//! | `S~ tail` | a piece of a literal, nothing implied |
//! | `S{ 519` | a piece of a literal: the next 519 bytes of the file, as they were, then `\n` |
//!
//! Payload bytes are escaped (see `escape.rs`). A literal's size is the `{n}` at
//! the end of the line announcing it; its pieces follow as `=`/`~`/`{` records of
//! the same direction (records of the other direction may come between). A `{`
//! block holds text only (printable ASCII, TAB, CR, LF, UTF-8), so a transcript
//! stays text; it is how the recorder writes literals cheaply (no escaping, no
//! line splitting, written from the bytes read).

use super::escape::{escape_into, unescape_into};
use super::FormatError;

/// First line of every transcript.
pub const MAGIC: &str = "# crmproxy transcript 1";

/// Who sent the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Client,
    Server,
}

impl Dir {
    fn letter(self) -> u8 {
        match self {
            Dir::Client => b'C',
            Dir::Server => b'S',
        }
    }
}

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `:` a whole line, CRLF implied.
    Line,
    /// `|` a piece of a line, nothing implied.
    LinePiece,
    /// `!` a client message (line and its literals) replaced by redaction.
    Redacted,
    /// `=` literal bytes, CRLF implied.
    LiteralLine,
    /// `~` literal bytes, nothing implied.
    LiteralPiece,
    /// `{` literal bytes that follow the record's line in the file, counted
    /// (the payload is the count; see [`Record::block_len`]).
    Block,
}

impl Kind {
    fn mark(self) -> u8 {
        match self {
            Kind::Line => b':',
            Kind::LinePiece => b'|',
            Kind::Redacted => b'!',
            Kind::LiteralLine => b'=',
            Kind::LiteralPiece => b'~',
            Kind::Block => b'{',
        }
    }

    /// Records that start at a time (carry an offset).
    pub fn timed(self) -> bool {
        matches!(self, Kind::Line | Kind::LinePiece | Kind::Redacted)
    }

    /// Literal records whose bytes are in their own line (not [`Kind::Block`]).
    pub fn is_literal(self) -> bool {
        matches!(self, Kind::LiteralLine | Kind::LiteralPiece)
    }
}

/// One parsed record; `payload` is still escaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub dir: Dir,
    pub kind: Kind,
    /// Milliseconds since the connection started (timed kinds only).
    pub offset_ms: u64,
    pub payload: &'a [u8],
}

impl Record<'_> {
    /// The bytes the record stands for, CRLF included where implied (a block's
    /// bytes are not in its line: an error).
    pub fn bytes_into(&self, out: &mut Vec<u8>) -> Result<(), FormatError> {
        if self.kind == Kind::Block {
            return Err(FormatError::Record("a block's bytes follow its line"));
        }
        unescape_into(out, self.payload)?;
        if matches!(self.kind, Kind::Line | Kind::LiteralLine | Kind::Redacted) {
            out.extend_from_slice(b"\r\n");
        }
        Ok(())
    }

    pub fn bytes(&self) -> Result<Vec<u8>, FormatError> {
        let mut v = Vec::with_capacity(self.payload.len() + 2);
        self.bytes_into(&mut v)?;
        Ok(v)
    }

    /// How many bytes follow a [`Kind::Block`] record's line (a `\n` after them).
    pub fn block_len(&self) -> Result<u64, FormatError> {
        let bad = FormatError::Record("a block's count must be a number up to 1 MiB");
        if self.kind != Kind::Block
            || self.payload.is_empty()
            || self.payload.len() > 7
            || !self.payload.iter().all(u8::is_ascii_digit)
        {
            return Err(bad);
        }
        let n = self
            .payload
            .iter()
            .fold(0u64, |a, c| a * 10 + u64::from(c - b'0'));
        if n > BLOCK_LIMIT {
            return Err(bad);
        }
        Ok(n)
    }
}

/// Largest block a transcript may hold (the recorder writes at most
/// [`crate::record::tracker::BLOCK_MAX`]).
pub const BLOCK_LIMIT: u64 = 1024 * 1024;

/// Parse one transcript line (its `\n` removed). `None`: a comment or blank line.
pub fn parse_record(line: &[u8]) -> Result<Option<Record<'_>>, FormatError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() || line[0] == b'#' {
        return Ok(None);
    }
    let dir = match line[0] {
        b'C' => Dir::Client,
        b'S' => Dir::Server,
        _ => return Err(FormatError::Record("a record starts with C or S")),
    };
    let kind = match line.get(1) {
        Some(b':') => Kind::Line,
        Some(b'|') => Kind::LinePiece,
        Some(b'!') => Kind::Redacted,
        Some(b'=') => Kind::LiteralLine,
        Some(b'~') => Kind::LiteralPiece,
        Some(b'{') => Kind::Block,
        _ => return Err(FormatError::Record("unknown record kind")),
    };
    let rest = &line[2..];
    let rest = match rest.first() {
        None => rest,
        Some(b' ') => &rest[1..],
        Some(_) => return Err(FormatError::Record("a space must follow the record kind")),
    };
    if !kind.timed() {
        return Ok(Some(Record {
            dir,
            kind,
            offset_ms: 0,
            payload: rest,
        }));
    }
    let end = memchr::memchr(b' ', rest).unwrap_or(rest.len());
    let offset_ms = parse_offset(&rest[..end])?;
    let payload = rest.get(end + 1..).unwrap_or_default();
    Ok(Some(Record {
        dir,
        kind,
        offset_ms,
        payload,
    }))
}

/// `12.345` (seconds, three decimals) → 12345 ms.
fn parse_offset(t: &[u8]) -> Result<u64, FormatError> {
    let bad = FormatError::Record("offset must look like 12.345");
    let dot = memchr::memchr(b'.', t).ok_or_else(|| bad.clone())?;
    let (secs, ms) = (&t[..dot], &t[dot + 1..]);
    if secs.is_empty() || secs.len() > 12 || ms.len() != 3 {
        return Err(bad);
    }
    if !secs.iter().chain(ms).all(u8::is_ascii_digit) {
        return Err(bad);
    }
    let n = |d: &[u8]| d.iter().fold(0u64, |a, c| a * 10 + u64::from(c - b'0'));
    n(secs)
        .checked_mul(1000)
        .and_then(|s| s.checked_add(n(ms)))
        .ok_or(bad)
}

/// Render a record: `bytes` are raw (escaped here); for [`Kind::Line`] and
/// [`Kind::LiteralLine`] they exclude the implied CRLF.
pub fn render(out: &mut Vec<u8>, dir: Dir, kind: Kind, offset_ms: u64, bytes: &[u8]) {
    out.push(dir.letter());
    out.push(kind.mark());
    if kind.timed() {
        out.push(b' ');
        push_decimal(out, offset_ms / 1000);
        let ms = offset_ms % 1000;
        let digit = |d: u64| b'0' + (d % 10) as u8;
        out.extend_from_slice(&[b'.', digit(ms / 100), digit(ms / 10), digit(ms)]);
    }
    out.push(b' ');
    escape_into(out, bytes);
    out.push(b'\n');
}

/// The line of a [`Kind::Block`] record of `len` bytes (the bytes and a `\n`
/// are the caller's to write after it).
pub fn render_block_line(out: &mut Vec<u8>, dir: Dir, len: usize) {
    out.extend_from_slice(&[dir.letter(), Kind::Block.mark(), b' ']);
    push_decimal(out, len as u64);
    out.push(b'\n');
}

/// `n` in decimal, without allocating.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Render raw bytes of a line or literal piece as the right record kind: a
/// trailing CRLF becomes implied.
pub fn render_piece(out: &mut Vec<u8>, dir: Dir, literal: bool, offset_ms: u64, bytes: &[u8]) {
    let (whole, partial) = if literal {
        (Kind::LiteralLine, Kind::LiteralPiece)
    } else {
        (Kind::Line, Kind::LinePiece)
    };
    match bytes.strip_suffix(b"\r\n") {
        Some(b) => render(out, dir, whole, offset_ms, b),
        None => render(out, dir, partial, offset_ms, bytes),
    }
}

/// A normalisation `--against` applies to both sides before comparing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalise {
    /// Tags are compared through the recorded → live mapping (always on).
    Tag,
    /// Dates and times (INTERNALDATE, RFC 5322 dates) become `<date>`.
    Date,
    /// UIDVALIDITY values (and the first number of APPENDUID/COPYUID).
    UidValidity,
    /// HIGHESTMODSEQ and MODSEQ values.
    Modseq,
    /// The human text after a status response's code.
    Text,
    /// Capability lists (a proxy filters them: STARTTLS, COMPRESS, …).
    Capability,
}

impl Normalise {
    pub const ALL: [Normalise; 6] = [
        Normalise::Tag,
        Normalise::Date,
        Normalise::UidValidity,
        Normalise::Modseq,
        Normalise::Text,
        Normalise::Capability,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Normalise::Tag => "tag",
            Normalise::Date => "date",
            Normalise::UidValidity => "uidvalidity",
            Normalise::Modseq => "modseq",
            Normalise::Text => "text",
            Normalise::Capability => "capability",
        }
    }

    pub fn parse(s: &str) -> Option<Normalise> {
        Normalise::ALL.into_iter().find(|n| n.name() == s.trim())
    }
}

/// The header: `# key: value` lines, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    pub fields: Vec<(String, String)>,
}

impl Header {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The normalisations, in the order the header lists them.
    pub fn normalisations(&self) -> Result<Vec<Normalise>, FormatError> {
        self.fields
            .iter()
            .filter(|(k, _)| k == "normalise")
            .map(|(_, v)| Normalise::parse(v).ok_or(FormatError::Header("unknown normalisation")))
            .collect()
    }

    /// Whether the header says message bodies were replaced by filler.
    pub fn bodies_redacted(&self) -> bool {
        self.get("redacted")
            .is_some_and(|v| v.split(',').any(|p| p.trim() == "bodies"))
    }

    pub fn render(&self) -> String {
        let mut s = format!("{MAGIC}\n");
        for (k, v) in &self.fields {
            let v: String = v
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            s.push_str(&format!("# {k}: {v}\n"));
        }
        s
    }

    /// Add a header line from the transcript; the first line must be [`MAGIC`].
    pub fn parse_line(&mut self, line_no: usize, line: &[u8]) -> Result<(), FormatError> {
        let text = std::str::from_utf8(line).map_err(|_| FormatError::Header("not UTF-8"))?;
        let text = text.trim_end_matches('\r');
        if line_no == 1 {
            return if text == MAGIC {
                Ok(())
            } else {
                Err(FormatError::Header(
                    "not a crmproxy transcript (first line)",
                ))
            };
        }
        let body = text.strip_prefix('#').unwrap_or(text).trim();
        if let Some((k, v)) = body.split_once(": ") {
            if !k.is_empty() && !k.contains(' ') {
                self.fields.push((k.to_string(), v.trim().to_string()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let mut out = Vec::new();
        render(&mut out, Dir::Client, Kind::Line, 12_345, b"a1 NOOP");
        render_piece(&mut out, Dir::Server, true, 0, b"bin\0ary");
        render_piece(&mut out, Dir::Server, true, 0, b"From: a\r\n");
        render_piece(&mut out, Dir::Server, false, 7, b"* OK\n");
        render(
            &mut out,
            Dir::Client,
            Kind::Redacted,
            1,
            b"a2 LOGIN [redacted]",
        );
        render_block_line(&mut out, Dir::Server, 12);
        let text = String::from_utf8(out.clone()).unwrap();
        assert_eq!(
            text,
            "C: 12.345 a1 NOOP\nS~ bin\\x00ary\nS= From: a\nS| 0.007 * OK\\n\nC! 0.001 a2 LOGIN [redacted]\nS{ 12\n"
        );
        let recs: Vec<_> = out
            .split(|b| *b == b'\n')
            .filter_map(|l| parse_record(l).unwrap())
            .collect();
        assert_eq!(recs.len(), 6);
        assert_eq!(recs[5].kind, Kind::Block);
        assert_eq!(recs[5].block_len(), Ok(12));
        assert!(recs[5].bytes().is_err());
        assert_eq!(recs[0].offset_ms, 12_345);
        assert_eq!(recs[0].bytes().unwrap(), b"a1 NOOP\r\n");
        assert_eq!(recs[1].bytes().unwrap(), b"bin\0ary");
        assert_eq!(recs[2].bytes().unwrap(), b"From: a\r\n");
        assert_eq!(recs[3].bytes().unwrap(), b"* OK\n");
        assert_eq!(recs[4].kind, Kind::Redacted);
    }

    #[test]
    fn malformed_records_are_errors() {
        for bad in [
            &b"X: 0.000 a"[..],
            b"C? x",
            b"C:0.000 a",
            b"C: 12 a",
            b"C: 99999999999999.000 a",
            b"C: 1.0000 a",
            b"C{5",
        ] {
            assert!(
                parse_record(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        for bad in [&b"S{ "[..], b"S{ 12a", b"S{ 99999999", b"S{ 1048577"] {
            let rec = parse_record(bad).unwrap().unwrap();
            assert!(rec.block_len().is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(parse_record(b"# comment").unwrap(), None);
        assert_eq!(parse_record(b"").unwrap(), None);
    }

    #[test]
    fn header_round_trip() {
        let h = Header {
            fields: vec![
                ("client".into(), "127.0.0.1:1".into()),
                ("normalise".into(), "date".into()),
                ("normalise".into(), "tag".into()),
                ("redacted".into(), "credentials, bodies".into()),
            ],
        };
        let text = h.render();
        let mut back = Header::default();
        for (i, l) in text.lines().enumerate() {
            back.parse_line(i + 1, l.as_bytes()).unwrap();
        }
        assert_eq!(back, h);
        assert_eq!(
            back.normalisations().unwrap(),
            vec![Normalise::Date, Normalise::Tag]
        );
        assert!(back.bodies_redacted());
        assert!(Header::default()
            .parse_line(1, b"# something else")
            .is_err());
    }
}
