//! A streaming, structural IMAP framer: splits a byte stream into lines (CRLF
//! included) and literal payload chunks, generic over any `AsyncRead`.
//!
//! It never buffers a literal whole: payload comes out in chunks of at most
//! [`LITERAL_CHUNK`] bytes. Lines longer than `max_line_bytes` come out as
//! [`Frame::LongLinePart`]s followed by a [`Frame::LongLineEnd`], so a caller can
//! stream them through (server side) or refuse them (client side).

use bytes::{Bytes, BytesMut};
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest literal payload chunk handed out at once: bounds memory per stream
/// while keeping syscalls few enough to match a plain relay on bulk FETCH.
pub const LITERAL_CHUNK: usize = 256 * 1024;
/// How much is asked of the reader at a time while looking for the end of a line
/// (and the most an idle stream keeps buffered).
const LINE_READ: usize = 4 * 1024;
/// Bytes of an over-long line kept to find a literal announcement at its end
/// (`~{` + 20 digits + `+}` fits).
const TAIL_KEEP: usize = 32;

/// A literal announced at the end of a line: `{n}`, `{n+}`, `~{n}` (or `~{n+}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Literal {
    /// Payload length in bytes.
    pub len: u64,
    /// `{n}`: the sender waits for a `+` continuation before sending the payload.
    /// `{n+}` (LITERAL+/LITERAL-) is non-synchronising.
    pub sync: bool,
    /// `~{n}`: a BINARY literal (may hold NUL bytes).
    pub binary: bool,
}

/// One piece of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete line of at most `max_line_bytes`, line ending included, with
    /// the literal announced at its end, if any.
    Line {
        bytes: Bytes,
        literal: Option<Literal>,
    },
    /// A piece of a line longer than `max_line_bytes` (not its end).
    LongLinePart(Bytes),
    /// The last piece of an over-long line, line ending included.
    LongLineEnd {
        bytes: Bytes,
        literal: Option<Literal>,
    },
    /// Literal payload; `remaining` bytes of this literal follow after it.
    LiteralData { bytes: Bytes, remaining: u64 },
}

/// The framer: owns the reader and a small buffer that grows only as needed.
#[derive(Debug)]
pub struct Framer<R> {
    reader: R,
    buf: BytesMut,
    max_line: usize,
    /// Bytes of the buffer already searched for `\n` without success.
    scanned: usize,
    /// Payload bytes of the current literal still to come.
    literal_remaining: u64,
    /// Inside an over-long line; `tail` holds its last bytes so far.
    long_line: bool,
    tail: Vec<u8>,
    /// Bytes asked of the next read at least: doubles (up to [`LITERAL_CHUNK`])
    /// while reads come back full, as in a burst of many small responses, and
    /// falls back to [`LINE_READ`] after a short one.
    read_ahead: usize,
}

impl<R: AsyncRead + Unpin> Framer<R> {
    pub fn new(reader: R, max_line_bytes: usize) -> Self {
        Framer {
            reader,
            buf: BytesMut::new(),
            max_line: max_line_bytes.max(16),
            scanned: 0,
            literal_remaining: 0,
            long_line: false,
            tail: Vec::new(),
            read_ahead: LINE_READ,
        }
    }

    /// The next frame; `Ok(None)` on a clean end of stream (between lines).
    /// An end of stream inside a line or literal is `UnexpectedEof`.
    /// Cancel-safe: dropping the future loses no data.
    pub async fn next(&mut self) -> io::Result<Option<Frame>> {
        loop {
            if let Some(frame) = self.next_buffered() {
                return Ok(Some(frame));
            }
            let want = if self.literal_remaining > 0 {
                self.literal_remaining.min(LITERAL_CHUNK as u64) as usize
            } else {
                LINE_READ
            };
            if self.literal_remaining == 0
                && self.read_ahead == LINE_READ
                && self.buf.is_empty()
                && self.buf.capacity() > 4 * LINE_READ
            {
                // A burst is over and a line is awaited: give the burst's buffer back.
                self.buf = BytesMut::new();
            }
            self.buf.reserve(want.max(self.read_ahead));
            let offered = self.buf.capacity() - self.buf.len();
            let n = self.reader.read_buf(&mut self.buf).await?;
            self.read_ahead = if n == offered {
                (self.read_ahead * 2).min(LITERAL_CHUNK)
            } else {
                LINE_READ
            };
            if n == 0 {
                if self.buf.is_empty() && self.literal_remaining == 0 && !self.long_line {
                    return Ok(None);
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "stream ended inside a line or literal",
                ));
            }
        }
    }

    /// A frame from what is already buffered, if one is complete.
    fn next_buffered(&mut self) -> Option<Frame> {
        if self.literal_remaining > 0 {
            if self.buf.is_empty() {
                return None;
            }
            let n = (self.buf.len() as u64)
                .min(self.literal_remaining)
                .min(LITERAL_CHUNK as u64) as usize;
            self.literal_remaining -= n as u64;
            return Some(Frame::LiteralData {
                bytes: self.buf.split_to(n).freeze(),
                remaining: self.literal_remaining,
            });
        }
        match memchr::memchr(b'\n', &self.buf[self.scanned..]) {
            Some(i) => {
                let end = self.scanned + i + 1;
                self.scanned = 0;
                if !self.long_line && end > self.max_line {
                    // The whole over-long line arrived at once: hand out its start.
                    self.long_line = true;
                    return Some(self.long_part(self.max_line));
                }
                let bytes = self.buf.split_to(end).freeze();
                if self.long_line {
                    self.long_line = false;
                    let literal = {
                        let mut t = std::mem::take(&mut self.tail);
                        t.extend_from_slice(&bytes[bytes.len().saturating_sub(TAIL_KEEP)..]);
                        parse_literal_announcement(&t)
                    };
                    self.literal_remaining = literal.map_or(0, |l| l.len);
                    Some(Frame::LongLineEnd { bytes, literal })
                } else {
                    let literal = parse_literal_announcement(&bytes);
                    self.literal_remaining = literal.map_or(0, |l| l.len);
                    Some(Frame::Line { bytes, literal })
                }
            }
            None => {
                self.scanned = self.buf.len();
                if self.long_line && !self.buf.is_empty() {
                    Some(self.long_part(self.buf.len()))
                } else if self.buf.len() >= self.max_line {
                    self.long_line = true;
                    Some(self.long_part(self.buf.len()))
                } else {
                    None
                }
            }
        }
    }

    fn long_part(&mut self, n: usize) -> Frame {
        let bytes = self.buf.split_to(n).freeze();
        self.scanned = self.scanned.saturating_sub(n);
        self.tail
            .extend_from_slice(&bytes[bytes.len().saturating_sub(TAIL_KEEP)..]);
        let cut = self.tail.len().saturating_sub(TAIL_KEEP);
        self.tail.drain(..cut);
        Frame::LongLinePart(bytes)
    }

    /// The peer refused the sync literal just announced (tagged answer instead of
    /// `+`): what follows is a new line, not payload.
    pub fn cancel_literal(&mut self) {
        self.literal_remaining = 0;
    }

    /// Payload bytes of the current literal still expected.
    pub fn literal_remaining(&self) -> u64 {
        self.literal_remaining
    }

    /// Whether [`Framer::next`] would return without reading: a whole frame is
    /// buffered. (A relay flushes what it holds before it waits on a read.)
    pub fn frame_ready(&self) -> bool {
        if self.literal_remaining > 0 || self.long_line {
            return !self.buf.is_empty();
        }
        self.buf.len() >= self.max_line
            || memchr::memchr(b'\n', &self.buf[self.scanned..]).is_some()
    }

    /// Bytes received but not yet handed out.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Drop everything received but not handed out (plaintext pipelined after STARTTLS).
    pub fn discard_buffered(&mut self) {
        self.buf.clear();
        self.scanned = 0;
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.reader
    }

    /// The reader back, and any bytes received but not handed out.
    pub fn into_parts(self) -> (R, BytesMut) {
        (self.reader, self.buf)
    }
}

/// The literal announced at the end of `line` (line ending optional), if any.
pub fn parse_literal_announcement(line: &[u8]) -> Option<Literal> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut rest = line.strip_suffix(b"}")?;
    let sync = match rest.strip_suffix(b"+") {
        Some(r) => {
            rest = r;
            false
        }
        None => true,
    };
    let open = memchr::memrchr(b'{', rest)?;
    let digits = &rest[open + 1..];
    if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let len: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    let binary = open > 0 && rest[open - 1] == b'~';
    Some(Literal { len, sync, binary })
}

/// Rewrite the literal count at the end of `line` to `new_len`, keeping its kind.
/// `None` when [`parse_literal_announcement`] finds no literal there.
pub fn set_literal_len(line: &[u8], new_len: u64) -> Option<Vec<u8>> {
    let lit = parse_literal_announcement(line)?;
    // The line ending exactly as the announcement's parse strips it.
    let body = line.strip_suffix(b"\n").unwrap_or(line);
    let body = body.strip_suffix(b"\r").unwrap_or(body);
    let close = body.len() - if lit.sync { 1 } else { 2 };
    let open = memchr::memrchr(b'{', &body[..close])?;
    let mut out = Vec::with_capacity(line.len() + 4);
    out.extend_from_slice(&body[..=open]);
    out.extend_from_slice(new_len.to_string().as_bytes());
    out.extend_from_slice(&line[close..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements() {
        let l = |len, sync, binary| Some(Literal { len, sync, binary });
        assert_eq!(
            parse_literal_announcement(b"a APPEND x {5}\r\n"),
            l(5, true, false)
        );
        assert_eq!(
            parse_literal_announcement(b"a APPEND x {5+}\r\n"),
            l(5, false, false)
        );
        assert_eq!(
            parse_literal_announcement(b"a APPEND x ~{7}\r\n"),
            l(7, true, true)
        );
        assert_eq!(
            parse_literal_announcement(b"* 1 FETCH (BODY[] {0}\r\n"),
            l(0, true, false)
        );
        assert_eq!(
            parse_literal_announcement(b"a SEARCH SUBJECT \"{5}\"\r\n"),
            None
        );
        assert_eq!(parse_literal_announcement(b"a NOOP {}\r\n"), None);
        assert_eq!(parse_literal_announcement(b"a NOOP {x5}\r\n"), None);
        assert_eq!(parse_literal_announcement(b"a NOOP\r\n"), None);
    }

    #[test]
    fn rewrite_count() {
        assert_eq!(
            set_literal_len(b"* 1 FETCH (BODY[] {5}\r\n", 12).unwrap(),
            b"* 1 FETCH (BODY[] {12}\r\n"
        );
        assert_eq!(set_literal_len(b"x ~{5+}\r\n", 7).unwrap(), b"x ~{7+}\r\n");
        assert!(set_literal_len(b"x\r\n", 7).is_none());
    }

    /// Found by the `command` fuzz target: a line the framer sees no literal in
    /// (`}` then a stray CR before the line ending) was rewritten as if it had one.
    #[test]
    fn rewrite_only_what_the_framer_sees() {
        assert_eq!(parse_literal_announcement(b"a APPEND x {5}\r\r\n"), None);
        assert_eq!(set_literal_len(b"a APPEND x {5}\r\r\n", 7), None);
        assert_eq!(
            set_literal_len(b"a APPEND x {5}\r", 7).unwrap(),
            b"a APPEND x {7}\r"
        );
    }
}
