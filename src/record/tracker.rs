//! From raw bytes to transcript records: each direction is split into lines and
//! literal pieces, as the IMAP framing says, and secrets are redacted on the way
//! (a pure state machine: bytes in, transcript text out).
//!
//! Redaction: a client's `LOGIN` and `AUTHENTICATE` with an initial response
//! become a `C!` record naming only tag and command (mechanism); so does every
//! SASL response line and, when asked, `ID`. Nothing of a redacted command
//! (literals included) reaches the transcript, nor the server's `+` that asked
//! for its literals. With `redact_bodies`, message literals (FETCH BODY[…],
//! RFC822…, APPEND) go through [`BodyRedactor`].
//!
//! Literal bytes kept as they are become `{` blocks when they are text (see
//! [`copy_text_prefix`]): no per-line records, no escaping, one pass that
//! checks and copies.

use super::escape::copy_text_prefix;
use super::format::{render, render_block_line, render_piece, Dir, Kind};
use super::redact::{login_user, sasl_user, BodyRedactor, Start};
use crate::wire::token::first_token;
use crate::wire::{parse_literal_announcement, response_start, ResponseStart};

/// Longest line piece held before it is written (longer lines are split).
pub const LINE_MAX: usize = 64 * 1024;
/// Longest literal piece written as one record.
pub const PIECE_MAX: usize = 4096;
/// Bytes kept of an over-long line to find its literal announcement.
const TAIL_KEEP: usize = 32;
/// Largest `{` block written (a longer run of text is several).
pub const BLOCK_MAX: usize = 64 * 1024;
/// A run of text shorter than this that stops before a binary byte is written
/// escaped with its line instead (no block for a few bytes).
const BLOCK_MIN: usize = 256;

/// What to redact besides credentials (always).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Redaction {
    pub bodies: bool,
    pub id: bool,
}

enum LitMode {
    Keep,
    Filler(BodyRedactor),
    Drop,
}

struct Side {
    dir: Dir,
    line: Vec<u8>,
    /// The current line has pieces written already (it is over-long).
    long: bool,
    tail: Vec<u8>,
    lit_remaining: u64,
    lit_mode: LitMode,
    piece: Vec<u8>,
}

impl Side {
    fn new(dir: Dir) -> Self {
        Side {
            dir,
            line: Vec::new(),
            long: false,
            tail: Vec::new(),
            lit_remaining: 0,
            lit_mode: LitMode::Keep,
            piece: Vec::new(),
        }
    }
}

/// The client message in progress.
#[derive(Default)]
struct Command {
    /// More of it follows (a literal was announced at the end of its last line).
    open: bool,
    /// Redacted: nothing more of it is written.
    dropping: bool,
    append: bool,
    literals: u32,
}

/// Both directions of one connection.
pub struct Tracker {
    redaction: Redaction,
    client: Side,
    server: Side,
    cmd: Command,
    /// An AUTHENTICATE in progress: its tag and mechanism.
    sasl: Option<(Vec<u8>, Vec<u8>)>,
    /// The user the connection logged in as (LOGIN or SASL), once seen.
    pub user: Option<String>,
    scratch: Vec<u8>,
    /// The server's response in progress goes on after a literal.
    server_open: bool,
    /// The server's last response is not untagged (tagged, or a `+`).
    server_tagged: bool,
}

impl Tracker {
    pub fn new(redaction: Redaction) -> Self {
        Tracker {
            redaction,
            client: Side::new(Dir::Client),
            server: Side::new(Dir::Server),
            cmd: Command::default(),
            sasl: None,
            user: None,
            scratch: Vec::new(),
            server_open: false,
            server_tagged: false,
        }
    }

    /// Whether what the server sent so far ends with a whole tagged response or
    /// a `+`: the client may act on it (its command is answered, or it may go on).
    pub fn server_answered(&self) -> bool {
        let s = &self.server;
        self.server_tagged && !self.server_open && s.lit_remaining == 0 && s.line.is_empty()
    }

    /// Bytes the client side sent, at `ms`: records appended to `out`.
    pub fn client(&mut self, ms: u64, bytes: &[u8], out: &mut Vec<u8>) {
        self.feed(Dir::Client, ms, bytes, out)
    }

    /// Bytes the server sent, at `ms`.
    pub fn server(&mut self, ms: u64, bytes: &[u8], out: &mut Vec<u8>) {
        self.feed(Dir::Server, ms, bytes, out)
    }

    fn side(&mut self, dir: Dir) -> &mut Side {
        match dir {
            Dir::Client => &mut self.client,
            Dir::Server => &mut self.server,
        }
    }

    fn feed(&mut self, dir: Dir, ms: u64, input: &[u8], out: &mut Vec<u8>) {
        let mut bytes = input;
        while !bytes.is_empty() {
            let side = self.side(dir);
            if side.lit_remaining > 0 {
                let n = (bytes.len() as u64).min(side.lit_remaining) as usize;
                self.literal_bytes(dir, &bytes[..n], out);
                bytes = &bytes[n..];
                continue;
            }
            let (take, complete) = match memchr::memchr(b'\n', bytes) {
                Some(i) => (i + 1, true),
                None => (bytes.len(), false),
            };
            side.line.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if complete {
                let line = std::mem::take(&mut self.side(dir).line);
                self.line_done(dir, ms, &line, out);
                let side = self.side(dir);
                side.line = line;
                side.line.clear();
            } else if side.line.len() >= LINE_MAX {
                let part = std::mem::take(&mut side.line);
                self.line_part(dir, ms, &part, out);
                self.side(dir).line = part;
                self.side(dir).line.clear();
            }
        }
    }

    /// A piece of an over-long line (not its end).
    fn line_part(&mut self, dir: Dir, ms: u64, part: &[u8], out: &mut Vec<u8>) {
        let first = !self.side(dir).long;
        if first {
            self.line_start(dir, ms, part, out);
        }
        let side = self.side(dir);
        side.long = true;
        side.tail
            .extend_from_slice(&part[part.len().saturating_sub(TAIL_KEEP)..]);
        let cut = side.tail.len().saturating_sub(TAIL_KEEP);
        side.tail.drain(..cut);
        if !(dir == Dir::Client && self.cmd.dropping) {
            render(out, dir, Kind::LinePiece, ms, part);
        }
    }

    fn line_done(&mut self, dir: Dir, ms: u64, line: &[u8], out: &mut Vec<u8>) {
        let side = self.side(dir);
        let literal = if side.long {
            let mut t = std::mem::take(&mut side.tail);
            t.extend_from_slice(&line[line.len().saturating_sub(TAIL_KEEP)..]);
            parse_literal_announcement(&t)
        } else {
            parse_literal_announcement(line)
        };
        let was_long = std::mem::replace(&mut side.long, false);
        if dir == Dir::Server {
            // An over-long line's start is gone: taken as an answer (written at once).
            if !self.server_open {
                self.server_tagged = was_long || !line.starts_with(b"*");
            }
            self.server_open = literal.is_some();
        }
        let skip = if was_long {
            dir == Dir::Client && self.cmd.dropping
        } else {
            !self.line_start(dir, ms, line, out)
        };
        if !skip {
            render_piece(out, dir, false, ms, line);
        }
        let mode = match (dir, literal) {
            (_, None) => None,
            (Dir::Client, Some(_)) if self.cmd.dropping => Some(LitMode::Drop),
            (Dir::Client, Some(_)) => {
                self.cmd.literals = self.cmd.literals.saturating_add(1);
                let mailbox_literal = self.cmd.literals == 1 && is_append_mailbox_literal(line);
                Some(
                    if self.redaction.bodies && self.cmd.append && !mailbox_literal {
                        LitMode::Filler(BodyRedactor::new(Start::Message))
                    } else {
                        LitMode::Keep
                    },
                )
            }
            (Dir::Server, Some(_)) => Some(
                match self.redaction.bodies.then(|| fetch_content(line)).flatten() {
                    Some(start) => LitMode::Filler(BodyRedactor::new(start)),
                    None => LitMode::Keep,
                },
            ),
        };
        if dir == Dir::Client {
            self.cmd.open = literal.is_some();
            if !self.cmd.open {
                self.cmd = Command::default();
            }
        }
        let side = self.side(dir);
        if let (Some(lit), Some(mode)) = (literal, mode) {
            side.lit_remaining = lit.len;
            side.lit_mode = mode;
        }
    }

    /// The start of a line (whole, or the first piece of a long one): redaction
    /// decisions. Returns whether the line itself is to be written.
    fn line_start(&mut self, dir: Dir, ms: u64, line: &[u8], out: &mut Vec<u8>) -> bool {
        match dir {
            Dir::Server => {
                if let ResponseStart::Tagged(tag) = response_start(line) {
                    if self.sasl.as_ref().is_some_and(|(t, _)| t == tag) {
                        self.sasl = None;
                    }
                } else if line.starts_with(b"+") && self.cmd.open && self.cmd.dropping {
                    // The go-ahead for a redacted command's literal.
                    return false;
                }
                true
            }
            Dir::Client if self.cmd.open => !self.cmd.dropping,
            Dir::Client => {
                if let Some((_, mech)) = &self.sasl {
                    if self.user.is_none() {
                        self.user = sasl_user(mech, line);
                    }
                    self.redacted(ms, b"[redacted SASL response]", out);
                    return false;
                }
                let tag = first_token(line);
                let rest = line.get(tag.len() + 1..).unwrap_or_default();
                let name = first_token(rest);
                let args = rest.get(name.len() + 1..).unwrap_or_default();
                let upper = name.to_ascii_uppercase();
                match upper.as_slice() {
                    b"LOGIN" => {
                        self.user = self.user.take().or_else(|| login_user(args));
                        self.redacted_command(ms, tag, b"LOGIN", out);
                        false
                    }
                    b"AUTHENTICATE" => {
                        let mech = first_token(args).to_vec();
                        let ir = args.get(mech.len() + 1..).unwrap_or_default().trim_ascii();
                        self.sasl = Some((tag.to_vec(), mech.clone()));
                        if ir.is_empty() {
                            return true;
                        }
                        if self.user.is_none() {
                            self.user = sasl_user(&mech, ir);
                        }
                        let mut what = b"AUTHENTICATE ".to_vec();
                        what.extend_from_slice(&mech);
                        self.redacted_command(ms, tag, &what, out);
                        false
                    }
                    b"ID" if self.redaction.id => {
                        self.redacted_command(ms, tag, b"ID", out);
                        false
                    }
                    b"APPEND" => {
                        self.cmd.append = true;
                        true
                    }
                    _ => true,
                }
            }
        }
    }

    fn redacted_command(&mut self, ms: u64, tag: &[u8], what: &[u8], out: &mut Vec<u8>) {
        let mut text = tag.to_vec();
        text.push(b' ');
        text.extend_from_slice(what);
        text.extend_from_slice(b" [redacted]");
        self.redacted(ms, &text, out);
    }

    fn redacted(&mut self, ms: u64, text: &[u8], out: &mut Vec<u8>) {
        self.cmd.dropping = true;
        render(out, Dir::Client, Kind::Redacted, ms, text);
    }

    /// Literal bytes.
    fn literal_bytes(&mut self, dir: Dir, mut bytes: &[u8], out: &mut Vec<u8>) {
        while !bytes.is_empty() {
            let side = self.side(dir);
            if side.piece.is_empty() && matches!(side.lit_mode, LitMode::Keep) {
                // Text, as literals mostly are: the block's line for all of it,
                // then its bytes, checked as they are copied.
                let run = bytes.len().min(BLOCK_MAX);
                let mark = out.len();
                render_block_line(out, dir, run);
                let n = copy_text_prefix(&bytes[..run], out);
                if n < run {
                    out.truncate(mark);
                    if n >= BLOCK_MIN {
                        render_block_line(out, dir, n);
                        out.extend_from_slice(&bytes[..n]);
                    }
                }
                if n == run || n >= BLOCK_MIN {
                    side.lit_remaining -= n as u64;
                    out.push(b'\n');
                    bytes = &bytes[n..];
                    continue;
                }
            }
            let room = PIECE_MAX - side.piece.len();
            let (take, ends) = match memchr::memchr(b'\n', &bytes[..bytes.len().min(room)]) {
                Some(i) => (i + 1, true),
                None => {
                    let t = bytes.len().min(room);
                    (t, t == room)
                }
            };
            side.lit_remaining -= take as u64;
            let done = ends || side.lit_remaining == 0;
            if side.piece.is_empty() && done {
                // A whole piece in what was read: written from there, no copy.
                self.piece_done(dir, Some(&bytes[..take]), out);
            } else {
                side.piece.extend_from_slice(&bytes[..take]);
                if done {
                    self.piece_done(dir, None, out);
                }
            }
            bytes = &bytes[take..];
        }
    }

    /// Write a literal piece: `piece`, or (when `None`) the one held.
    fn piece_done(&mut self, dir: Dir, piece: Option<&[u8]>, out: &mut Vec<u8>) {
        let side = match dir {
            Dir::Client => &mut self.client,
            Dir::Server => &mut self.server,
        };
        let bytes = piece.unwrap_or(&side.piece);
        match &mut side.lit_mode {
            LitMode::Keep => render_piece(out, side.dir, true, 0, bytes),
            LitMode::Filler(r) => {
                self.scratch.clear();
                r.piece(bytes, &mut self.scratch);
                render_piece(out, side.dir, true, 0, &self.scratch);
            }
            LitMode::Drop => {}
        }
        side.piece.clear();
    }
}

/// `tag APPEND {n}`: the mailbox name is the literal.
fn is_append_mailbox_literal(line: &[u8]) -> bool {
    let tag = first_token(line);
    let rest = line.get(tag.len() + 1..).unwrap_or_default();
    let name = first_token(rest);
    name.eq_ignore_ascii_case(b"APPEND")
        && rest
            .get(name.len() + 1..)
            .is_some_and(|a| a.starts_with(b"{"))
}

/// For a server line announcing a literal: where the literal's content starts
/// when it is message content (`None`: headers or other data, kept).
fn fetch_content(line: &[u8]) -> Option<Start> {
    let body = line.strip_suffix(b"\r\n").unwrap_or(line);
    let open = memchr::memrchr(b'{', body)?;
    let before = body[..open].strip_suffix(b"~").unwrap_or(&body[..open]);
    let item = before.trim_ascii_end();
    let start = item
        .iter()
        .rposition(|b| *b == b' ' || *b == b'(')
        .map_or(0, |i| i + 1);
    // `BODY[HEADER.FIELDS (A B)]` has spaces: start from the item's name instead.
    let upper = item.to_ascii_uppercase();
    let named = ["BODY[", "BINARY[", "RFC822"]
        .iter()
        .filter_map(|n| find_last(&upper, n.as_bytes()))
        .max();
    let name_at = named.unwrap_or(start);
    let item = &upper[name_at..];
    let (section, partial) = if let Some(sec) = item.iter().position(|b| *b == b'[') {
        let close = item.iter().rposition(|b| *b == b']')?;
        let partial = item.get(close + 1..).unwrap_or_default();
        (item.get(sec + 1..close)?.to_vec(), partial.to_vec())
    } else {
        match item {
            b"RFC822" => (Vec::new(), Vec::new()),
            b"RFC822.TEXT" => (b"TEXT".to_vec(), Vec::new()),
            _ => return None,
        }
    };
    let from_start = partial.is_empty() || partial == b"<0>";
    let section = section.as_slice();
    if section.is_empty() {
        return Some(if from_start {
            Start::Message
        } else {
            Start::Body
        });
    }
    if section.ends_with(b"TEXT") || section.iter().all(|b| b.is_ascii_digit() || *b == b'.') {
        return Some(Start::Body);
    }
    None
}

fn find_last(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

#[cfg(test)]
#[path = "tracker_tests.rs"]
mod tests;
