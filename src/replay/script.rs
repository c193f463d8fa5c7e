//! A transcript indexed for replay (pure: lines in, steps out): every message of
//! either side as one step, in the recorded order. Literal bytes are not held:
//! a step keeps where its literal's pieces are in the file (bounded memory for
//! any message size). A transcript is untrusted input: sizes are checked.

use crate::record::format::{parse_record, Dir, Header, Kind};
use crate::record::FormatError;
use crate::wire::parse_literal_announcement;
use crate::wire::token::{first_token, is_valid_tag};
use std::io::{BufRead, Read};

/// Longest line of a transcript, and longest protocol line assembled from pieces.
pub const MAX_LINE: usize = 1024 * 1024;

/// Why a transcript cannot be replayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptError {
    #[error("line {line}: {cause}")]
    Format { line: usize, cause: FormatError },
    #[error("line {line}: {what}")]
    Structure { line: usize, what: &'static str },
}

/// A literal of a step: its size and where its pieces are in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiteralRef {
    pub len: u64,
    pub sync: bool,
    /// File byte range holding its pieces (pieces of the other side may be between).
    pub start: u64,
    pub end: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// A protocol line, line ending included.
    Line(Vec<u8>),
    Literal(LiteralRef),
}

/// One message of one side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub dir: Dir,
    /// Transcript line of its first record.
    pub line_no: usize,
    pub offset_ms: u64,
    pub parts: Vec<Part>,
    /// A client message replaced by redaction (`C!`): its first part is the note.
    pub redacted: bool,
    /// Client steps: the server's `+` lines that asked for its literals.
    pub handshakes: Vec<Vec<u8>>,
    /// Server steps: how many client steps must have arrived before it is sent.
    pub needs: usize,
}

impl Step {
    /// The first line, for messages (without its line ending).
    pub fn first_line(&self) -> &[u8] {
        match self.parts.first() {
            Some(Part::Line(l)) => l.strip_suffix(b"\r\n").unwrap_or(l),
            _ => b"",
        }
    }

    /// The tag of a client command or a tagged server response.
    pub fn tag(&self) -> Option<&[u8]> {
        let line = self.first_line();
        let t = first_token(line);
        (is_valid_tag(t) && line.len() > t.len() && !self.is_continuation()).then_some(t)
    }

    /// A client line that is no command: `DONE`, a SASL response.
    pub fn is_continuation(&self) -> bool {
        let line = self.first_line();
        self.dir == Dir::Client
            && (line.starts_with(b"[") || !line.contains(&b' ') || !is_valid_tag(first_token(line)))
    }
}

/// A whole transcript, indexed.
#[derive(Debug, Clone, Default)]
pub struct Script {
    pub header: Header,
    pub steps: Vec<Step>,
    /// The transcript's line where its last record was cut short (a recording
    /// proxy killed while writing it): the records before it are the script.
    pub torn: Option<usize>,
}

#[derive(Debug, Clone, Copy)]
enum Expect {
    /// A line: a new message, or (when a message is open) its next line.
    Line,
    /// Literal bytes still to come.
    Literal(u64),
}

/// Builds a [`Script`] from the transcript's lines.
pub struct Indexer {
    script: Script,
    line_no: usize,
    in_header: bool,
    /// Per side (client, server): the open step, what comes next, a line in pieces.
    open: [Option<usize>; 2],
    expect: [Expect; 2],
    pending: [Vec<u8>; 2],
    pending_start: [(usize, u64); 2],
    client_steps: usize,
    /// The last line was a `{` block's: its bytes (and a `\n`) come next in
    /// the file, for the caller to skip ([`Indexer::take_block`]).
    block: Option<u64>,
    /// What the last block changed: its step's last literal's file range before it.
    before_block: Option<(usize, u64, u64)>,
}

impl Default for Indexer {
    fn default() -> Self {
        Indexer {
            script: Script::default(),
            line_no: 0,
            in_header: true,
            open: [None, None],
            expect: [Expect::Line, Expect::Line],
            pending: [Vec::new(), Vec::new()],
            pending_start: [(0, 0), (0, 0)],
            client_steps: 0,
            block: None,
            before_block: None,
        }
    }
}

fn side(d: Dir) -> usize {
    match d {
        Dir::Client => 0,
        Dir::Server => 1,
    }
}

impl Indexer {
    /// Take the next transcript line (`\n` removed), which starts at byte
    /// `offset` of the file and is `len` bytes long there (its `\n` included).
    pub fn line(&mut self, offset: u64, len: u64, line: &[u8]) -> Result<(), ScriptError> {
        self.line_no += 1;
        let n = self.line_no;
        let structure = |what| ScriptError::Structure { line: n, what };
        if line.len() > MAX_LINE {
            return Err(structure("transcript line too long"));
        }
        if self.in_header {
            if n == 1 || line.starts_with(b"#") {
                return self
                    .script
                    .header
                    .parse_line(n, line)
                    .map_err(|cause| ScriptError::Format { line: n, cause });
            }
            self.in_header = false;
        }
        let Some(rec) =
            parse_record(line).map_err(|cause| ScriptError::Format { line: n, cause })?
        else {
            return Ok(());
        };
        let s = side(rec.dir);
        if rec.kind == Kind::Block {
            let count = rec
                .block_len()
                .map_err(|cause| ScriptError::Format { line: n, cause })?;
            self.block = Some(count);
            self.before_block =
                self.open[s].and_then(|step| match self.script.steps[step].parts.last() {
                    Some(Part::Literal(l)) => Some((step, l.start, l.end)),
                    _ => None,
                });
            // The block's bytes and its `\n` belong to the record's file range.
            return self.literal_bytes(rec.dir, count, offset, len + count + 1);
        }
        let bytes = rec
            .bytes()
            .map_err(|cause| ScriptError::Format { line: n, cause })?;
        match (rec.kind, self.expect[s]) {
            (Kind::Redacted, _) if rec.dir == Dir::Server => {
                Err(structure("a server record marked redacted"))
            }
            (Kind::Redacted, _) if self.open[s].is_some() || !self.pending[s].is_empty() => {
                Err(structure("a redacted record inside a client message"))
            }
            (Kind::Redacted, _) => {
                self.new_step(rec.dir, n, rec.offset_ms, bytes, true);
                Ok(())
            }
            (Kind::Line | Kind::LinePiece, Expect::Literal(_)) => Err(structure(
                "a line record where literal bytes were announced",
            )),
            (Kind::Line | Kind::LinePiece, Expect::Line) => {
                if self.pending[s].is_empty() {
                    self.pending_start[s] = (n, rec.offset_ms);
                }
                if self.pending[s].len() + bytes.len() > MAX_LINE {
                    return Err(structure("protocol line too long"));
                }
                self.pending[s].extend_from_slice(&bytes);
                if self.pending[s].ends_with(b"\n") {
                    let line = std::mem::take(&mut self.pending[s]);
                    self.line_done(rec.dir, line);
                }
                Ok(())
            }
            (Kind::LiteralLine | Kind::LiteralPiece | Kind::Block, _) => {
                self.literal_bytes(rec.dir, bytes.len() as u64, offset, len)
            }
        }
    }

    /// `count` bytes of the literal `dir` announced, in the file at
    /// `offset..offset + span`.
    fn literal_bytes(
        &mut self,
        dir: Dir,
        count: u64,
        offset: u64,
        span: u64,
    ) -> Result<(), ScriptError> {
        let s = side(dir);
        let structure = |what| ScriptError::Structure {
            line: self.line_no,
            what,
        };
        let Expect::Literal(remaining) = self.expect[s] else {
            return Err(structure("literal bytes that no line announced"));
        };
        let left = remaining
            .checked_sub(count)
            .ok_or_else(|| structure("literal longer than announced"))?;
        let step = self.open[s].ok_or_else(|| structure("literal outside a message"))?;
        let end = offset
            .checked_add(span)
            .ok_or_else(|| structure("transcript too long"))?;
        if let Some(Part::Literal(l)) = self.script.steps[step].parts.last_mut() {
            if l.start == 0 && l.end == 0 {
                l.start = offset;
            }
            l.end = end;
        }
        self.expect[s] = if left == 0 {
            Expect::Line
        } else {
            Expect::Literal(left)
        };
        Ok(())
    }

    /// After a `{` block's line: how many bytes of the file are its content
    /// (the caller skips them and the `\n` after them, then calls
    /// [`Indexer::skipped`] with the lines they held).
    pub fn take_block(&mut self) -> Option<u64> {
        self.block.take()
    }

    /// The file ended inside the record at `line_no` (inside its line, or
    /// `in_block`, inside the block it announced): a record cut short, which
    /// the script leaves out (a recording proxy killed mid-write leaves a
    /// transcript that replays up to there).
    pub fn torn(&mut self, line_no: usize, in_block: bool) {
        if in_block {
            if let Some((step, start, end)) = self.before_block.take() {
                if let Some(Part::Literal(l)) = self.script.steps[step].parts.last_mut() {
                    (l.start, l.end) = (start, end);
                }
            }
        }
        self.script.torn = Some(line_no);
    }

    /// The current line of the transcript.
    pub fn line_no(&self) -> usize {
        self.line_no
    }

    /// `lines` transcript lines went by inside a block (line numbers stay
    /// those of the file).
    pub fn skipped(&mut self, lines: usize) {
        self.line_no = self.line_no.saturating_add(lines);
    }

    /// An error at the current line.
    pub fn error(&self, what: &'static str) -> ScriptError {
        ScriptError::Structure {
            line: self.line_no,
            what,
        }
    }

    fn new_step(
        &mut self,
        dir: Dir,
        line_no: usize,
        offset_ms: u64,
        first: Vec<u8>,
        redacted: bool,
    ) -> usize {
        let needs = self.client_steps;
        if dir == Dir::Client {
            self.client_steps += 1;
        }
        self.script.steps.push(Step {
            dir,
            line_no,
            offset_ms,
            parts: vec![Part::Line(first)],
            redacted,
            handshakes: Vec::new(),
            needs,
        });
        self.script.steps.len() - 1
    }

    fn line_done(&mut self, dir: Dir, line: Vec<u8>) {
        let s = side(dir);
        let literal = parse_literal_announcement(&line);
        // A server `+` while a client message waits for a sync literal: its go-ahead.
        if dir == Dir::Server && self.open[s].is_none() && line.starts_with(b"+") {
            if let Some(c) = self.open[side(Dir::Client)] {
                let step = &mut self.script.steps[c];
                let waiting = matches!(self.expect[0], Expect::Literal(_))
                    && matches!(step.parts.last(), Some(Part::Literal(l)) if l.sync && l.start == 0 && l.end == 0);
                if waiting {
                    step.handshakes.push(line);
                    return;
                }
            }
        }
        let step = match self.open[s] {
            Some(i) => {
                self.script.steps[i].parts.push(Part::Line(line));
                i
            }
            None => {
                let (n, ms) = self.pending_start[s];
                self.new_step(dir, n, ms, line, false)
            }
        };
        match literal {
            Some(l) => {
                self.script.steps[step]
                    .parts
                    .push(Part::Literal(LiteralRef {
                        len: l.len,
                        sync: l.sync,
                        start: 0,
                        end: 0,
                    }));
                self.open[s] = Some(step);
                self.expect[s] = if l.len == 0 {
                    Expect::Line
                } else {
                    Expect::Literal(l.len)
                };
            }
            None => self.open[s] = None,
        }
    }

    /// The script; a transcript may end inside a message (a connection cut off).
    pub fn finish(mut self) -> Script {
        relax_for_pipelining(&mut self.script.steps);
        self.script
    }
}

/// A server response need not wait for client commands recorded before it that
/// it does not answer (a client pipelining less than when recorded would wait
/// for it forever): it waits for the last client step of the command whose
/// tagged response comes next.
fn relax_for_pipelining(steps: &mut [Step]) {
    // Owner command (tag) of each client step, by client ordinal.
    let mut owners: Vec<Option<Vec<u8>>> = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    for st in steps.iter().filter(|s| s.dir == Dir::Client) {
        if let Some(t) = st.tag() {
            current = Some(t.to_vec());
        }
        owners.push(current.clone());
    }
    let mut next_tag: Option<Vec<u8>> = None;
    for st in steps.iter_mut().rev().filter(|s| s.dir == Dir::Server) {
        if let Some(t) = st.tag() {
            if st.first_line().first() != Some(&b'+') {
                next_tag = Some(t.to_vec());
            }
        }
        let Some(tag) = &next_tag else { continue };
        let last_of_command = owners[..st.needs.min(owners.len())]
            .iter()
            .rposition(|o| o.as_deref() == Some(tag.as_slice()));
        if let Some(i) = last_of_command {
            st.needs = st.needs.min(i + 1);
        }
    }
}

/// Index a whole transcript held in memory (tests, small files).
pub fn index(text: &[u8]) -> Result<Script, ScriptError> {
    index_from(text).map_err(|e| match e {
        IndexError::Script(e) => e,
        IndexError::Read(_) => unreachable!("reading from memory"),
    })
}

/// Indexing a transcript from a reader failed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(transparent)]
    Script(#[from] ScriptError),
    #[error("{0}")]
    Read(#[from] std::io::Error),
}

/// Index a transcript read line by line (never whole in memory; blocks skipped).
pub fn index_from(mut r: impl std::io::BufRead) -> Result<Script, IndexError> {
    let mut ix = Indexer::default();
    let mut offset = 0u64;
    let mut line = Vec::new();
    let mut skip = vec![0u8; 64 * 1024];
    loop {
        line.clear();
        let n = (&mut r)
            .take(MAX_LINE as u64 + 2)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        let Some(body) = line.strip_suffix(b"\n") else {
            if line.len() > MAX_LINE {
                ix.line(offset, n as u64, &line)?;
            }
            // The file ends inside this line.
            ix.torn(ix.line_no() + 1, false);
            break;
        };
        ix.line(offset, n as u64, body)?;
        offset += n as u64;
        if let Some(mut left) = ix.take_block() {
            let block_line = ix.line_no();
            let mut lines = 0;
            while left > 0 {
                let want = skip.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                let got = r.read(&mut skip[..want])?;
                if got == 0 {
                    break;
                }
                lines += memchr::memchr_iter(b'\n', &skip[..got]).count();
                left -= got as u64;
                offset += got as u64;
            }
            let mut end = [0u8];
            let ended = left == 0 && r.read(&mut end)? == 1;
            if !ended {
                // The file ends inside the block.
                ix.torn(block_line, true);
                break;
            }
            if end[0] != b'\n' {
                return Err(ix.error("a block must end with a line break").into());
            }
            offset += 1;
            ix.skipped(lines + 1);
        }
    }
    Ok(ix.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "# crmproxy transcript 1\n# normalise: tag\n\
S: 0.000 * OK ready\n\
C: 0.001 a1 APPEND INBOX {5}\n\
S: 0.002 + go ahead\n\
C= abc\n\
C: 0.003 \n\
C: 0.004 a2 NOOP\n\
C: 0.004 a3 NOOP\n\
S: 0.005 a1 OK [APPENDUID 1 2] done\n\
S: 0.005 * 1 FETCH (BODY[] {3}\n\
S~ xyz\n\
S: 0.005 )\n\
S: 0.006 a2 OK\n\
C! 0.007 a4 LOGIN [redacted]\n\
S: 0.007 a3 OK\n\
C: 0.008 a5 IDLE\n\
S: 0.009 + idling\n\
C: 0.010 DONE\n\
S: 0.011 a5 OK\n";

    #[test]
    fn steps_in_order_with_literals_and_handshakes() {
        let s = index(T.as_bytes()).unwrap();
        assert_eq!(s.header.get("normalise"), Some("tag"));
        let dirs: String = s
            .steps
            .iter()
            .map(|s| if s.dir == Dir::Client { 'C' } else { 'S' })
            .collect();
        assert_eq!(dirs, "SCCCSSSCSCSCS");
        let append = &s.steps[1];
        assert_eq!(append.handshakes, vec![b"+ go ahead\r\n".to_vec()]);
        assert_eq!(append.parts.len(), 3);
        let Part::Literal(l) = &append.parts[1] else {
            panic!()
        };
        assert_eq!((l.len, l.sync), (5, true));
        assert_eq!(&T.as_bytes()[l.start as usize..l.end as usize], b"C= abc\n");
        assert!(s.steps[7].redacted);
        assert_eq!(s.steps[7].tag(), Some(&b"a4"[..]));
        assert!(s.steps[11].is_continuation());
        // `a1 OK` needs only a1; the FETCH before `a2 OK` needs a2; `+ idling` the IDLE.
        let needs: Vec<usize> = s
            .steps
            .iter()
            .filter(|s| s.dir == Dir::Server)
            .map(|s| s.needs)
            .collect();
        assert_eq!(needs, vec![0, 1, 2, 2, 3, 5, 6]);
    }

    #[test]
    fn blocks_are_literal_pieces_in_the_file() {
        let t = "# crmproxy transcript 1\n\
S: 0.000 * 1 FETCH (BODY[] {11}\n\
S{ 4\nab\r\n\n\
C: 0.001 a2 NOOP\n\
S= cd\n\
S{ 3\nefg\n\
S: 0.002 )\n\
S: 0.003 a1 OK\n";
        let s = index(t.as_bytes()).unwrap();
        let dirs: Vec<(Dir, usize)> = s.steps.iter().map(|s| (s.dir, s.line_no)).collect();
        // Line numbers count the lines inside blocks (those of the file).
        assert_eq!(
            dirs,
            vec![(Dir::Server, 2), (Dir::Client, 6), (Dir::Server, 11)]
        );
        let Part::Literal(l) = &s.steps[0].parts[1] else {
            panic!()
        };
        assert_eq!(l.len, 11);
        assert_eq!(
            &t.as_bytes()[l.start as usize..l.end as usize],
            b"S{ 4\nab\r\n\nC: 0.001 a2 NOOP\nS= cd\nS{ 3\nefg\n"
        );
        for bad in [
            "# crmproxy transcript 1\nS: 0.000 * 1 FETCH (BODY[] {2}\nS{ 3\nefg\n",
            "# crmproxy transcript 1\nS: 0.000 * 1 FETCH (BODY[] {9}\nS{ 2\nab!",
            "# crmproxy transcript 1\nS{ 2\nab\n",
        ] {
            assert!(index(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    /// A transcript cut anywhere (a recording proxy killed mid-write) indexes
    /// as the records before the cut; only a cut between records is whole.
    #[test]
    fn a_transcript_cut_anywhere_is_its_records_before_the_cut() {
        let t = "# crmproxy transcript 1\n\
S: 0.000 * OK ready\n\
C: 0.001 a1 UID FETCH 1:2 BODY.PEEK[]\n\
S: 0.002 * 1 FETCH (UID 1 BODY[] {12}\n\
S{ 12\nHello\nworld!\n\
S: 0.002 )\n\
S: 0.002 * 2 FETCH (UID 2 BODY[] {10}\n\
S{ 4\nabcd\n\
S~ ef\n\
S{ 4\nghij\n\
S: 0.003 )\n\
S: 0.003 a1 OK done\n";
        let full = index(t.as_bytes()).unwrap();
        assert_eq!(full.torn, None);
        // Where records end: after each line, or after a block's bytes and `\n`.
        let mut whole = vec![0];
        let mut at = 0;
        while at < t.len() {
            let end = at + t[at..].find('\n').unwrap() + 1;
            let line = &t[at..end - 1];
            at = match line.strip_prefix("S{ ") {
                Some(n) => end + n.parse::<usize>().unwrap() + 1,
                None => end,
            };
            whole.push(at);
        }
        let header = t.find('\n').unwrap() + 1;
        for cut in header..=t.len() {
            let part = index(&t.as_bytes()[..cut]).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
            assert_eq!(part.torn.is_none(), whole.contains(&cut), "cut at {cut}");
            assert!(part.steps.len() <= full.steps.len(), "cut at {cut}");
            for (i, step) in part.steps.iter().enumerate() {
                assert_eq!(
                    step.first_line(),
                    full.steps[i].first_line(),
                    "cut at {cut}"
                );
                for (p, q) in step.parts.iter().zip(&full.steps[i].parts) {
                    // A literal's pieces that are in the file are whole records.
                    if let (Part::Literal(p), Part::Literal(q)) = (p, q) {
                        assert!(p.end as usize <= cut && p.end <= q.end, "cut at {cut}");
                        assert!(p.start == q.start || p.start == p.end, "cut at {cut}");
                    }
                }
            }
        }
        // A cut inside the first block of the second message (file line 10,
        // lines inside blocks counted): none of its literal is in the script.
        let cut = t.find("S{ 4").unwrap() + 7;
        let part = index(&t.as_bytes()[..cut]).unwrap();
        assert_eq!(part.torn, Some(10));
        let Part::Literal(l) = &part.steps[3].parts[1] else {
            panic!("{:?}", part.steps[3])
        };
        assert_eq!((l.start, l.end), (0, 0), "no piece of it is whole");
    }

    #[test]
    fn untrusted_sizes_are_checked() {
        let bad = [
            "# crmproxy transcript 1\nS: 0.000 * 1 FETCH (BODY[] {2}\nS~ xyz\n",
            "# crmproxy transcript 1\nS~ xyz\n",
            "# crmproxy transcript 1\nC: 0.000 a1 LOGIN {3}\nC! 0.000 a2 LOGIN [redacted]\n",
            "# crmproxy transcript 1\nS! 0.000 x\n",
            "# something else\n",
        ];
        for t in bad {
            assert!(index(t.as_bytes()).is_err(), "{t}");
        }
    }
}
