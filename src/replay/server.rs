//! `crmproxy replay FILE… --imap ADDR`: transcripts served as a fake upstream.
//!
//! Each connection is matched to a transcript not yet played: every transcript
//! still consistent with what the client sent so far is a candidate, and the
//! first of them answers; a transcript is taken once only one candidate is left
//! (so a proxy's session and its sync worker's connections find their own).
//! Client messages are matched in order, tags remapped, redacted credentials
//! accepted as wildcards; the server's messages go out as recorded once the
//! client messages they answer have arrived. The client's sync literals get a
//! `+` (the recorded one). A client that departs from the recording gets `BAD`
//! naming the expected command, and the replay ends with an error.

use std::sync::{Arc, Mutex};
use tokio::io::{AsyncWriteExt, BufWriter, ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::matcher::{first_line_matches, show, TagMap};
use super::script::{Part, Step};
use super::source::{LiteralReader, Loaded};
use super::ReplayError;
use crate::record::format::Dir;
use crate::wire::{Frame, Framer};
use sha2::{Digest, Sha256};

const MAX_LINE: usize = 1024 * 1024;
const CHUNK: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    Free,
    Taken(u64),
    Done,
}

struct Pool {
    scripts: Vec<Loaded>,
    claims: Mutex<Vec<Claim>>,
}

enum Event {
    Done,
    Departed(String),
}

/// Serve `scripts` on `listener` until every one has been played through
/// (`Ok`) or a client departed from its recording (`Err(Departed)`).
pub async fn serve(listener: TcpListener, scripts: Vec<Loaded>) -> Result<(), ReplayError> {
    let n = scripts.len();
    let pool = Arc::new(Pool {
        claims: Mutex::new(vec![Claim::Free; n]),
        scripts,
    });
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut next_id = 0u64;
    let mut done = 0usize;
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(Event::Done) => {
                    done += 1;
                    if done == n {
                        return Ok(());
                    }
                }
                Some(Event::Departed(why)) => return Err(ReplayError::Departed(why)),
                None => return Ok(()),
            },
            acc = listener.accept() => {
                let (tcp, _) = acc?;
                let _ = tcp.set_nodelay(true);
                next_id += 1;
                let (pool, tx, id) = (pool.clone(), tx.clone(), next_id);
                tokio::spawn(async move {
                    let ev = match connection(tcp, &pool, id).await {
                        Ok(()) => Event::Done,
                        Err(why) => Event::Departed(why),
                    };
                    let _ = tx.send(ev);
                });
            }
        }
    }
}

/// Where one candidate transcript has got to on a connection.
struct Cursor {
    idx: usize,
    next_c: usize,
    next_s: usize,
    received: usize,
    tags: TagMap,
    reader: LiteralReader,
}

impl Cursor {
    fn new(pool: &Pool, idx: usize) -> Cursor {
        let mut c = Cursor {
            idx,
            next_c: 0,
            next_s: 0,
            received: 0,
            tags: TagMap::default(),
            reader: LiteralReader::new(&pool.scripts[idx].path),
        };
        c.next_c = c.find(pool, 0, Dir::Client);
        c.next_s = c.find(pool, 0, Dir::Server);
        c
    }

    fn steps<'p>(&self, pool: &'p Pool) -> &'p [Step] {
        &pool.scripts[self.idx].script.steps
    }

    fn find(&self, pool: &Pool, from: usize, dir: Dir) -> usize {
        let steps = self.steps(pool);
        (from..steps.len())
            .find(|i| steps[*i].dir == dir)
            .unwrap_or(steps.len())
    }

    /// The next server step that may go out now.
    fn ready_server(&self, pool: &Pool) -> Option<usize> {
        let st = self.steps(pool).get(self.next_s)?;
        (st.needs <= self.received).then_some(self.next_s)
    }

    fn client_step<'p>(&self, pool: &'p Pool) -> Option<&'p Step> {
        self.steps(pool).get(self.next_c)
    }
}

struct Conn<'p> {
    pool: &'p Pool,
    id: u64,
    framer: Framer<ReadHalf<TcpStream>>,
    out: BufWriter<WriteHalf<TcpStream>>,
    cands: Vec<Cursor>,
}

/// Play one connection; `Err` says how the client departed.
async fn connection(tcp: TcpStream, pool: &Pool, id: u64) -> Result<(), String> {
    let (r, w) = tokio::io::split(tcp);
    let free: Vec<usize> = {
        let claims = pool.claims.lock().unwrap_or_else(|e| e.into_inner());
        (0..claims.len())
            .filter(|i| claims[*i] == Claim::Free)
            .collect()
    };
    let mut c = Conn {
        pool,
        id,
        framer: Framer::new(r, MAX_LINE),
        out: BufWriter::with_capacity(CHUNK, w),
        cands: free.into_iter().map(|i| Cursor::new(pool, i)).collect(),
    };
    if c.cands.is_empty() {
        let _ = c
            .out
            .write_all(b"* BYE [UNAVAILABLE] crmproxy replay: no recorded connection left\r\n")
            .await;
        let _ = c.out.flush().await;
        return Err(format!(
            "connection {id}: no recorded connection is left for it"
        ));
    }
    let result = c.run().await;
    let _ = c.out.flush().await;
    let _ = c.out.shutdown().await;
    result
}

impl Conn<'_> {
    async fn run(&mut self) -> Result<(), String> {
        loop {
            self.drop_taken();
            if self.cands.is_empty() {
                return Err(format!(
                    "connection {}: its transcript was taken by another connection",
                    self.id
                ));
            }
            self.send_ready().await?;
            let leader = &self.cands[0];
            if leader.client_step(self.pool).is_none() {
                // The recording has no more client messages: all sent, done.
                self.claim(true);
                return Ok(());
            }
            self.out.flush().await.map_err(|e| self.io_err(e))?;
            self.client_message().await?;
            if self.cands.len() == 1 {
                self.claim(false);
            }
        }
    }

    fn drop_taken(&mut self) {
        let claims = self.pool.claims.lock().unwrap_or_else(|e| e.into_inner());
        let id = self.id;
        self.cands
            .retain(|c| matches!(claims[c.idx], Claim::Free) || claims[c.idx] == Claim::Taken(id));
    }

    fn claim(&self, done: bool) {
        let mut claims = self.pool.claims.lock().unwrap_or_else(|e| e.into_inner());
        let i = self.cands[0].idx;
        claims[i] = if done {
            Claim::Done
        } else {
            Claim::Taken(self.id)
        };
    }

    fn io_err(&self, e: std::io::Error) -> String {
        format!("connection {}: {e}", self.id)
    }

    /// Send the leader's server steps that may go; the others keep pace.
    async fn send_ready(&mut self) -> Result<(), String> {
        for c in self.cands.iter_mut().skip(1) {
            while let Some(s) = c.ready_server(self.pool) {
                c.next_s = c.find(self.pool, s + 1, Dir::Server);
            }
        }
        while let Some(s) = self.cands[0].ready_server(self.pool) {
            let pool = self.pool;
            let step = &self.cands[0].steps(pool)[s];
            for (k, part) in step.parts.iter().enumerate() {
                match part {
                    Part::Line(l) if k == 0 => {
                        let l = self.cands[0].tags.remap(l);
                        self.out.write_all(&l).await
                    }
                    Part::Line(l) => self.out.write_all(l).await,
                    Part::Literal(lit) => {
                        let mut pos = LiteralReader::start(Dir::Server, lit);
                        let mut buf = Vec::with_capacity(CHUNK);
                        loop {
                            buf.clear();
                            let more = self.cands[0]
                                .reader
                                .fill(&mut pos, &mut buf, CHUNK)
                                .map_err(|e| e.to_string())?;
                            self.out.write_all(&buf).await.map_err(|e| self.io_err(e))?;
                            if !more {
                                break;
                            }
                        }
                        Ok(())
                    }
                }
                .map_err(|e| self.io_err(e))?;
            }
            let c = &mut self.cands[0];
            c.next_s = c.find(pool, s + 1, Dir::Server);
        }
        Ok(())
    }

    /// Read one client message and keep the candidates it matches.
    async fn client_message(&mut self) -> Result<(), String> {
        let (first, mut literal) = match self.framer.next().await {
            Ok(Some(Frame::Line { bytes, literal })) => (bytes.to_vec(), literal),
            Ok(Some(_)) => return self.depart(b"(a line too long)").await,
            Ok(None) => return self.depart(b"(the client closed the connection)").await,
            Err(e) => return Err(self.io_err(e)),
        };
        let pool = self.pool;
        let before = self.cands.len();
        let matched = self.keep_matching(|c, pool| {
            let step = c.client_step(pool);
            step.is_some_and(|s| first_line_matches(s, &first, &mut c.tags).is_ok())
        });
        if !matched {
            return self.depart_from(before, &first).await;
        }
        let mut part = 1usize;
        let mut syncs = 0usize;
        while let Some(lit) = literal {
            if lit.sync {
                let hs = self.cands[0]
                    .client_step(pool)
                    .and_then(|s| s.handshakes.get(syncs).cloned())
                    .unwrap_or_else(|| b"+ Ready for literal data\r\n".to_vec());
                syncs += 1;
                self.out.write_all(&hs).await.map_err(|e| self.io_err(e))?;
                self.out.flush().await.map_err(|e| self.io_err(e))?;
            }
            let mut h = Sha256::new();
            let mut remaining = lit.len;
            while remaining > 0 {
                match self.framer.next().await {
                    Ok(Some(Frame::LiteralData {
                        bytes,
                        remaining: r,
                    })) => {
                        h.update(&bytes);
                        remaining = r;
                    }
                    Ok(_) => return self.depart(b"(the client ended inside a literal)").await,
                    Err(e) => return Err(self.io_err(e)),
                }
            }
            let digest: [u8; 32] = h.finalize().into();
            let line = match self.framer.next().await {
                Ok(Some(Frame::Line { bytes, literal: l })) => {
                    literal = l;
                    bytes.to_vec()
                }
                Ok(_) => return self.depart(b"(the client ended inside a command)").await,
                Err(e) => return Err(self.io_err(e)),
            };
            let matched = self.keep_matching(|c, pool| {
                let step = c.client_step(pool).expect("matched before");
                if step.redacted {
                    return true;
                }
                let same_lit = match step.parts.get(part) {
                    Some(Part::Literal(r)) if r.len == lit.len => {
                        pool.scripts[c.idx].script.header.bodies_redacted()
                            || c.reader.digest(Dir::Client, r).is_ok_and(|d| d == digest)
                    }
                    _ => false,
                };
                same_lit && matches!(step.parts.get(part + 1), Some(Part::Line(l)) if *l == line)
            });
            if !matched {
                return self.depart_from(before, &first).await;
            }
            part += 2;
        }
        let matched = self.keep_matching(|c, pool| {
            let step = c.client_step(pool).expect("matched before");
            step.redacted || step.parts.len() == part
        });
        if !matched {
            return self.depart_from(before, &first).await;
        }
        for c in &mut self.cands {
            c.received += 1;
            c.next_c = c.find(pool, c.next_c + 1, Dir::Client);
        }
        Ok(())
    }

    /// Keep the candidates `f` accepts; when it accepts none, keep them all
    /// (the leader says what was expected) and return `false`.
    fn keep_matching(&mut self, mut f: impl FnMut(&mut Cursor, &Pool) -> bool) -> bool {
        let pool = self.pool;
        let keep: Vec<bool> = self.cands.iter_mut().map(|c| f(c, pool)).collect();
        if !keep.contains(&true) {
            return false;
        }
        let mut k = keep.into_iter();
        self.cands.retain(|_| k.next().unwrap_or(false));
        true
    }

    async fn depart(&mut self, live: &[u8]) -> Result<(), String> {
        let n = self.cands.len();
        self.depart_from(n, live).await
    }

    /// The client sent `live` where the leader expected something else: `BAD`
    /// to the client, the story for stderr.
    async fn depart_from(&mut self, _candidates: usize, live: &[u8]) -> Result<(), String> {
        let pool = self.pool;
        let c = &self.cands[0];
        let script = &pool.scripts[c.idx];
        let (expected, line_no) = match c.client_step(pool) {
            Some(s) => (show(s.first_line()), s.line_no),
            None => ("(the end of the recording)".to_string(), 0),
        };
        let tag = crate::wire::token::first_token(live);
        let tag = if crate::wire::token::is_valid_tag(tag) && live.contains(&b' ') {
            String::from_utf8_lossy(tag).into_owned()
        } else {
            "*".to_string()
        };
        let bad = format!(
            "{tag} BAD [CLIENTBUG] crmproxy replay: expected {expected} (transcript line {line_no})\r\n"
        );
        let _ = self.out.write_all(bad.as_bytes()).await;
        let _ = self.out.flush().await;
        let nearest = nearest(&script.script.steps, live)
            .map(|s| {
                format!(
                    "\n  nearest recorded line {}: {}",
                    s.line_no,
                    show(s.first_line())
                )
            })
            .unwrap_or_default();
        Err(format!(
            "{}: the client departed from the recording\n  expected (line {line_no}): {expected}\n  got: {}{nearest}",
            script.path.display(),
            show(live),
        ))
    }
}

/// The recorded client message most like `live` (longest common start after the tag).
fn nearest<'s>(steps: &'s [Step], live: &[u8]) -> Option<&'s Step> {
    let after_tag = |l: &'s [u8]| -> &'s [u8] {
        let t = crate::wire::token::first_token(l);
        l.get(t.len() + 1..).unwrap_or(l)
    };
    let live_rest = {
        let t = crate::wire::token::first_token(live);
        live.get(t.len() + 1..).unwrap_or(live)
    };
    steps
        .iter()
        .filter(|s| s.dir == Dir::Client)
        .max_by_key(|s| {
            after_tag(s.first_line())
                .iter()
                .zip(live_rest)
                .take_while(|(a, b)| a.eq_ignore_ascii_case(b))
                .count()
        })
}
