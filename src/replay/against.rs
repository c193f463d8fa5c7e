//! `crmproxy replay FILE --against HOST:PORT`: the transcript's client side played
//! against a live server (or proxy), each response compared with the recorded
//! one after the header's normalisations; the first difference is the result.
//! Redacted credentials are filled in from the user and password given.

use base64::Engine;
use tokio::io::{AsyncWriteExt, BufWriter, ReadHalf, WriteHalf};
use tokio::net::TcpStream;

use super::matcher::{normalise, show};
use super::script::{Part, Step};
use super::source::{LiteralReader, Loaded};
use super::ReplayError;
use crate::record::format::{Dir, Normalise};
use crate::wire::{Frame, Framer};
use sha2::{Digest, Sha256};

const MAX_LINE: usize = 1024 * 1024;
const CHUNK: usize = 256 * 1024;

/// Who to log in as where the transcript has redacted credentials.
#[derive(Clone)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

/// What a successful play did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Played {
    pub commands: usize,
    pub responses: usize,
}

/// A live response, its literals as (size, SHA-256).
enum LivePart {
    Line(Vec<u8>),
    Literal(u64, [u8; 32]),
}

struct Player<'a> {
    loaded: &'a Loaded,
    rules: Vec<Normalise>,
    creds: Option<Credentials>,
    framer: Framer<ReadHalf<TcpStream>>,
    out: BufWriter<WriteHalf<TcpStream>>,
    reader: LiteralReader,
}

/// Play `loaded` against `addr`; `Err(Departed)` names the first difference.
pub async fn play(
    loaded: &Loaded,
    addr: &str,
    creds: Option<Credentials>,
) -> Result<Played, ReplayError> {
    let rules = loaded
        .script
        .header
        .normalisations()
        .map_err(|e| ReplayError::Departed(format!("{}: {e}", loaded.path.display())))?;
    let tcp = TcpStream::connect(addr).await?;
    let _ = tcp.set_nodelay(true);
    let (r, w) = tokio::io::split(tcp);
    let mut p = Player {
        loaded,
        rules,
        creds,
        framer: Framer::new(r, MAX_LINE),
        out: BufWriter::with_capacity(CHUNK, w),
        reader: LiteralReader::new(&loaded.path),
    };
    let mut played = Played::default();
    for step in &loaded.script.steps {
        match step.dir {
            Dir::Client => {
                p.send(step).await?;
                played.commands += 1;
            }
            Dir::Server => {
                p.out.flush().await?;
                p.expect(step).await?;
                played.responses += 1;
            }
        }
    }
    p.out.flush().await?;
    Ok(played)
}

impl Player<'_> {
    async fn send(&mut self, step: &Step) -> Result<(), ReplayError> {
        if step.redacted {
            let line = self.unredact(step)?;
            self.out.write_all(&line).await?;
            return Ok(());
        }
        for part in &step.parts {
            match part {
                Part::Line(l) => self.out.write_all(l).await?,
                Part::Literal(lit) => {
                    if lit.sync {
                        self.out.flush().await?;
                        self.await_go_ahead(step).await?;
                    }
                    let mut pos = LiteralReader::start(Dir::Client, lit);
                    let mut buf = Vec::with_capacity(CHUNK);
                    loop {
                        buf.clear();
                        let more = self.reader.fill(&mut pos, &mut buf, CHUNK)?;
                        self.out.write_all(&buf).await?;
                        if !more {
                            break;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The command a redacted record stands for, with the given credentials.
    fn unredact(&self, step: &Step) -> Result<Vec<u8>, ReplayError> {
        let rec = step.first_line();
        let words: Vec<&[u8]> = rec.split(|b| *b == b' ').collect();
        let cmd = words
            .get(1)
            .map(|w| w.to_ascii_uppercase())
            .unwrap_or_default();
        if cmd == b"ID" {
            return Ok([words[0], b" ID NIL\r\n"].concat());
        }
        let c = self.creds.as_ref().ok_or_else(|| {
            self.differ(step.line_no, "the transcript has redacted credentials: pass --user (and the password in --password-env)")
        })?;
        let plain = || {
            base64::engine::general_purpose::STANDARD
                .encode(format!("\0{}\0{}", c.user, c.password))
                .into_bytes()
        };
        let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        let mut line = match (cmd.as_slice(), words.get(2)) {
            (b"LOGIN", _) => [
                words[0],
                b" LOGIN ",
                quote(&c.user).as_bytes(),
                b" ",
                quote(&c.password).as_bytes(),
            ]
            .concat(),
            (b"AUTHENTICATE", Some(m)) if m.eq_ignore_ascii_case(b"PLAIN") => {
                [words[0], b" AUTHENTICATE PLAIN ", &plain()].concat()
            }
            _ if rec.starts_with(b"[redacted SASL") => plain(),
            _ => {
                return Err(self.differ(
                    step.line_no,
                    "only LOGIN and AUTHENTICATE PLAIN can be replayed with --user",
                ))
            }
        };
        line.extend_from_slice(b"\r\n");
        Ok(line)
    }

    /// Read until the server's `+` for a sync literal.
    async fn await_go_ahead(&mut self, step: &Step) -> Result<(), ReplayError> {
        match self.read_response().await? {
            Some(parts) => match parts.first() {
                Some(LivePart::Line(l)) if l.starts_with(b"+") => Ok(()),
                Some(LivePart::Line(l)) => Err(self.differ(
                    step.line_no,
                    &format!(
                        "expected the go-ahead `+` for a literal\n  live: {}",
                        show(l)
                    ),
                )),
                _ => Err(self.differ(step.line_no, "expected `+`")),
            },
            None => Err(self.differ(step.line_no, "the server closed the connection")),
        }
    }

    async fn read_response(&mut self) -> Result<Option<Vec<LivePart>>, ReplayError> {
        let (line, mut literal) = match self.framer.next().await? {
            Some(Frame::Line { bytes, literal }) => (bytes.to_vec(), literal),
            Some(_) => return Err(ReplayError::Departed("a response line too long".into())),
            None => return Ok(None),
        };
        let mut parts = vec![LivePart::Line(line)];
        while let Some(lit) = literal {
            let mut h = Sha256::new();
            let mut remaining = lit.len;
            while remaining > 0 {
                match self.framer.next().await? {
                    Some(Frame::LiteralData {
                        bytes,
                        remaining: r,
                    }) => {
                        h.update(&bytes);
                        remaining = r;
                    }
                    _ => {
                        return Err(ReplayError::Departed(
                            "the server ended inside a literal".into(),
                        ))
                    }
                }
            }
            parts.push(LivePart::Literal(lit.len, h.finalize().into()));
            match self.framer.next().await? {
                Some(Frame::Line { bytes, literal: l }) => {
                    parts.push(LivePart::Line(bytes.to_vec()));
                    literal = l;
                }
                _ => {
                    return Err(ReplayError::Departed(
                        "the server ended inside a response".into(),
                    ))
                }
            }
        }
        Ok(Some(parts))
    }

    /// Read the live response and compare it with `step`.
    async fn expect(&mut self, step: &Step) -> Result<(), ReplayError> {
        let Some(live) = self.read_response().await? else {
            return Err(self.differ(
                step.line_no,
                &format!(
                    "the server closed the connection\n  recorded: {}",
                    show(step.first_line())
                ),
            ));
        };
        let bodies_redacted = self.loaded.script.header.bodies_redacted();
        for (k, rec) in step.parts.iter().enumerate() {
            let same = match (rec, live.get(k)) {
                (Part::Line(r), Some(LivePart::Line(l))) => {
                    normalise(r, &self.rules) == normalise(l, &self.rules)
                }
                (Part::Literal(r), Some(LivePart::Literal(len, digest))) => {
                    r.len == *len
                        && (bodies_redacted || self.reader.digest(Dir::Server, r)? == *digest)
                }
                _ => false,
            };
            if !same {
                let live_line = live.iter().find_map(|p| match p {
                    LivePart::Line(l) => Some(show(l)),
                    LivePart::Literal(..) => None,
                });
                return Err(self.differ(
                    step.line_no,
                    &format!(
                        "the response differs\n  recorded: {}\n  live:     {}",
                        show(step.first_line()),
                        live_line.unwrap_or_default()
                    ),
                ));
            }
        }
        if live.len() != step.parts.len() {
            return Err(self.differ(
                step.line_no,
                "the response has a different number of literals",
            ));
        }
        Ok(())
    }

    fn differ(&self, line_no: usize, what: &str) -> ReplayError {
        ReplayError::Departed(format!(
            "{} line {line_no}: {what}",
            self.loaded.path.display()
        ))
    }
}
