//! Reading a transcript file: indexing it line by line (never whole in memory),
//! and a literal's bytes back from the file range its step points at.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::script::{index_from, IndexError, LiteralRef, Script, MAX_LINE};
use super::ReplayError;
use crate::record::format::{parse_record, Dir, Kind};
use sha2::{Digest, Sha256};

/// A transcript indexed from its file.
pub struct Loaded {
    pub path: PathBuf,
    pub script: Script,
}

/// Index the transcript at `path`.
pub fn load(path: &Path) -> Result<Loaded, ReplayError> {
    let read_err = |cause| ReplayError::Read {
        path: path.to_owned(),
        cause,
    };
    let r = BufReader::with_capacity(256 * 1024, File::open(path).map_err(read_err)?);
    let script = index_from(r).map_err(|e| match e {
        IndexError::Read(cause) => read_err(cause),
        IndexError::Script(cause) => ReplayError::Script {
            path: path.to_owned(),
            cause,
        },
    })?;
    if let Some(line) = script.torn {
        tracing::warn!(
            "{}: line {line}: the last record is cut short (the recording proxy stopped \
             while writing it); replaying the records before it",
            path.display()
        );
    }
    Ok(Loaded {
        path: path.to_owned(),
        script,
    })
}

fn cut_short(path: &Path) -> ReplayError {
    ReplayError::Departed(format!(
        "{}: changed while replaying: a block cut short",
        path.display()
    ))
}

/// Where reading a literal has got to.
pub struct Pos {
    dir: Dir,
    at: u64,
    end: u64,
}

/// Reads literal bytes of one transcript.
pub struct LiteralReader {
    path: PathBuf,
    file: Option<BufReader<File>>,
    /// Where the file is positioned (no seek needed to go on from there).
    file_at: u64,
    line: Vec<u8>,
}

impl LiteralReader {
    pub fn new(path: &Path) -> Self {
        LiteralReader {
            path: path.to_owned(),
            file: None,
            file_at: u64::MAX,
            line: Vec::new(),
        }
    }

    /// The start of `lit`, sent by `dir`.
    pub fn start(dir: Dir, lit: &LiteralRef) -> Pos {
        Pos {
            dir,
            at: lit.start,
            end: if lit.len == 0 { lit.start } else { lit.end },
        }
    }

    /// Append the literal's next bytes to `out` until it holds `limit` bytes or the
    /// literal ends; `false` once it has ended.
    pub fn fill(
        &mut self,
        pos: &mut Pos,
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<bool, ReplayError> {
        let path = self.path.clone();
        let read_err = |cause| ReplayError::Read {
            path: path.clone(),
            cause,
        };
        if self.file.is_none() {
            self.file = Some(BufReader::with_capacity(
                256 * 1024,
                File::open(&self.path).map_err(read_err)?,
            ));
        }
        let file = self.file.as_mut().expect("opened above");
        if pos.at < pos.end && self.file_at != pos.at {
            file.seek(SeekFrom::Start(pos.at)).map_err(read_err)?;
            self.file_at = pos.at;
        }
        while pos.at < pos.end && out.len() < limit {
            self.line.clear();
            let n = file
                .by_ref()
                .take(MAX_LINE as u64 + 2)
                .read_until(b'\n', &mut self.line)
                .map_err(read_err)?;
            if n == 0 {
                pos.at = pos.end;
                break;
            }
            pos.at += n as u64;
            self.file_at = pos.at;
            let body = self.line.strip_suffix(b"\n").unwrap_or(&self.line);
            let changed = |e: crate::record::FormatError| {
                ReplayError::Departed(format!(
                    "{}: changed while replaying: {e}",
                    self.path.display()
                ))
            };
            let Some(rec) = parse_record(body).map_err(changed)? else {
                continue;
            };
            if rec.kind == Kind::Block {
                // Its bytes follow the line: this side's are read, the other's skipped.
                let n = rec.block_len().map_err(changed)?;
                if rec.dir == pos.dir {
                    let got = file.by_ref().take(n).read_to_end(out).map_err(read_err)?;
                    if got as u64 != n {
                        return Err(cut_short(&self.path));
                    }
                } else {
                    let n = i64::try_from(n).map_err(|_| cut_short(&self.path))?;
                    file.seek_relative(n).map_err(read_err)?;
                }
                let mut end = [0u8];
                file.read_exact(&mut end).map_err(read_err)?;
                if end[0] != b'\n' {
                    return Err(cut_short(&self.path));
                }
                pos.at += n + 1;
                self.file_at = pos.at;
            } else if rec.dir == pos.dir && rec.kind.is_literal() {
                rec.bytes_into(out).map_err(changed)?;
            }
        }
        Ok(pos.at < pos.end)
    }

    /// SHA-256 of a literal's bytes.
    pub fn digest(&mut self, dir: Dir, lit: &LiteralRef) -> Result<[u8; 32], ReplayError> {
        let mut h = Sha256::new();
        let mut pos = Self::start(dir, lit);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let more = self.fill(&mut pos, &mut buf, 256 * 1024)?;
            h.update(&buf);
            if !more {
                break;
            }
        }
        Ok(h.finalize().into())
    }
}
