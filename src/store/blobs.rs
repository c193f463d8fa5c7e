//! Content-addressed files beside sled: raw messages, invitations, sales
//! literature. A blob is named by the SHA-256 of its bytes, written to a temporary
//! name, fsynced, renamed into place, and its directory fsynced, so a blob that a
//! record points to is always whole. Directories are 0700 and blobs 0600: they are
//! other people's mail.

use crate::private_files;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A pointer to a blob: its SHA-256 (lower-case hex) and size.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BlobRef {
    pub sha256: String,
    pub size: u64,
}

impl BlobRef {
    pub fn of(bytes: &[u8]) -> BlobRef {
        BlobRef {
            sha256: hex::encode(Sha256::digest(bytes)),
            size: bytes.len() as u64,
        }
    }
    fn is_well_formed(&self) -> bool {
        self.sha256.len() == 64
            && self
                .sha256
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob {0} is not in the store")]
    Missing(String),
    #[error("blob {0} is damaged: its content does not match its name")]
    Damaged(String),
    #[error("{0:?} is not a blob name (64 lower-case hex digits)")]
    BadName(String),
    #[error("blob store I/O at {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// The directory of blobs: `<dir>/ab/abcdef…` (two-level fan-out).
#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BlobError + '_ {
    move |source| BlobError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl BlobStore {
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, BlobError> {
        let dir = dir.into();
        private_files::create_dir_all(&dir).map_err(io_err(&dir))?;
        Ok(BlobStore { dir })
    }

    fn path_of(&self, r: &BlobRef) -> Result<PathBuf, BlobError> {
        if !r.is_well_formed() {
            return Err(BlobError::BadName(r.sha256.clone()));
        }
        Ok(self.dir.join(&r.sha256[..2]).join(&r.sha256))
    }

    /// Store `bytes` durably and return their reference. Idempotent.
    pub fn put(&self, bytes: &[u8]) -> Result<BlobRef, BlobError> {
        let r = BlobRef::of(bytes);
        let path = self.path_of(&r)?;
        if path.exists() {
            return Ok(r);
        }
        let sub = path.parent().expect("blob path has a parent");
        private_files::create_dir_all(sub).map_err(io_err(sub))?;
        let tmp = sub.join(format!(".{}.{}.tmp", r.sha256, std::process::id()));
        {
            let mut f = private_files::create_file(&tmp).map_err(io_err(&tmp))?;
            f.write_all(bytes).map_err(io_err(&tmp))?;
            f.sync_all().map_err(io_err(&tmp))?;
        }
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        File::open(sub)
            .and_then(|d| d.sync_all())
            .map_err(io_err(sub))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&self.dir))?;
        Ok(r)
    }

    /// Store many blobs durably at once (a bulk import): every new blob is written
    /// to its temporary name, the temporary files are fsynced in parallel (so the
    /// file system can commit them together), renamed into place, and the touched
    /// directories fsynced. Same guarantee as [`BlobStore::put`] for each blob.
    pub fn put_many(&self, items: &[&[u8]]) -> Result<Vec<BlobRef>, BlobError> {
        let mut refs = Vec::with_capacity(items.len());
        let mut staged: Vec<(PathBuf, PathBuf)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for bytes in items {
            let r = BlobRef::of(bytes);
            let path = self.path_of(&r)?;
            refs.push(r.clone());
            if path.exists() || !seen.insert(r.sha256.clone()) {
                continue;
            }
            let sub = path.parent().expect("blob path has a parent");
            private_files::create_dir_all(sub).map_err(io_err(sub))?;
            let tmp = sub.join(format!(".{}.{}.tmp", r.sha256, std::process::id()));
            let mut f = private_files::create_file(&tmp).map_err(io_err(&tmp))?;
            f.write_all(bytes).map_err(io_err(&tmp))?;
            staged.push((tmp, path));
        }
        if staged.is_empty() {
            return Ok(refs);
        }
        let tmps: Vec<&Path> = staged.iter().map(|(t, _)| t.as_path()).collect();
        fsync_all(&tmps, false)?;
        for (tmp, path) in &staged {
            fs::rename(tmp, path).map_err(io_err(path))?;
        }
        let mut dirs: Vec<&Path> = staged
            .iter()
            .map(|(_, p)| p.parent().expect("blob path has a parent"))
            .collect();
        dirs.sort();
        dirs.dedup();
        dirs.push(&self.dir);
        fsync_all(&dirs, true)?;
        Ok(refs)
    }

    /// Read a blob back, checking it against its name.
    pub fn get(&self, r: &BlobRef) -> Result<Vec<u8>, BlobError> {
        let path = self.path_of(r)?;
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(BlobError::Missing(r.sha256.clone()))
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        if BlobRef::of(&bytes) != *r {
            return Err(BlobError::Damaged(r.sha256.clone()));
        }
        Ok(bytes)
    }

    pub fn contains(&self, r: &BlobRef) -> bool {
        self.path_of(r).map(|p| p.exists()).unwrap_or(false)
    }
}

/// fsync many files (or directories) from a few threads at once.
fn fsync_all(paths: &[&Path], dirs: bool) -> Result<(), BlobError> {
    const THREADS: usize = 16;
    let per = paths.len().div_ceil(THREADS).max(1);
    std::thread::scope(|s| {
        let jobs: Vec<_> = paths
            .chunks(per)
            .map(|chunk| {
                s.spawn(move || -> Result<(), BlobError> {
                    for p in chunk {
                        let f = if dirs {
                            File::open(p)
                        } else {
                            fs::OpenOptions::new().write(true).open(p)
                        };
                        f.and_then(|f| f.sync_all()).map_err(io_err(p))?;
                    }
                    Ok(())
                })
            })
            .collect();
        jobs.into_iter()
            .try_for_each(|j| j.join().expect("fsync thread panicked"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_and_damage_detection() {
        let d = tempfile::tempdir().unwrap();
        let s = BlobStore::open(d.path().join("blobs")).unwrap();
        let r = s.put(b"hello").unwrap();
        assert_eq!(
            r.sha256,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(s.put(b"hello").unwrap(), r);
        assert_eq!(s.get(&r).unwrap(), b"hello");
        std::fs::write(s.path_of(&r).unwrap(), b"HELLO").unwrap();
        assert!(matches!(s.get(&r), Err(BlobError::Damaged(_))));
        let missing = BlobRef::of(b"other");
        assert!(matches!(s.get(&missing), Err(BlobError::Missing(_))));
        let bad = BlobRef {
            sha256: "../../etc/passwd".into(),
            size: 1,
        };
        assert!(matches!(s.get(&bad), Err(BlobError::BadName(_))));
    }

    #[test]
    fn put_many_stores_each_once_and_returns_refs_in_order() {
        let d = tempfile::tempdir().unwrap();
        let s = BlobStore::open(d.path().join("blobs")).unwrap();
        let old = s.put(b"already").unwrap();
        let items: Vec<&[u8]> = vec![b"one", b"two", b"one", b"already"];
        let refs = s.put_many(&items).unwrap();
        assert_eq!(refs.len(), 4);
        assert_eq!(refs[0], refs[2]);
        assert_eq!(refs[3], old);
        for (r, b) in refs.iter().zip(&items) {
            assert_eq!(s.get(r).unwrap(), *b);
        }
        // No temporary file is left behind.
        let leftovers = walk(d.path())
            .into_iter()
            .filter(|p| p.ends_with(".tmp"))
            .count();
        assert_eq!(leftovers, 0);
        assert!(s.put_many(&[]).unwrap().is_empty());
    }

    fn walk(p: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for e in fs::read_dir(p).unwrap().flatten() {
            if e.path().is_dir() {
                out.extend(walk(&e.path()));
            } else {
                out.push(e.path().display().to_string());
            }
        }
        out
    }
}
