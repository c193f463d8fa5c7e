//! The transcript file, written at explicit offsets: through the page cache,
//! and, for the whole pages of a chunk laid out for it (see `sink.rs`), direct
//! to the disk with `O_DIRECT` where the file system takes it (Linux). The page
//! cache's copy and its write-back cost more CPU than the relay itself.

use std::fs::File;
use std::io::IoSlice;
use std::path::Path;

/// The alignment of direct writes (file offset, length and memory): the page
/// size, at least 4096 (no common device's logical block is larger). Never
/// less than a page, so that no page of the page cache holds both bytes
/// written direct and bytes written through it (64 KB pages on some arm64).
pub fn align() -> usize {
    rustix::param::page_size().max(4096)
}

/// The transcript file, written at explicit offsets: through the page cache,
/// and (when the file system takes it) direct to the disk.
pub(super) struct Files {
    buffered: File,
    /// The same file opened with `O_DIRECT`; `None` where it cannot be.
    direct: Option<File>,
    /// The file's length: where the next bytes go.
    written: u64,
    /// Of which written direct (for the tests).
    direct_bytes: u64,
    /// Chunks that could have gone direct but for their layout (for the tests).
    misplaced: u64,
    /// Partial pages of chunks written direct, written through the page cache
    /// (for the tests).
    edges: u64,
}

/// What went direct, for the tests.
#[cfg(test)]
#[derive(Debug, Clone, Copy)]
pub(super) struct DirectStats {
    /// Direct writes are on (the file system takes them).
    pub on: bool,
    /// Bytes written direct.
    pub bytes: u64,
    /// Chunks of a page or more that were not laid out for their place.
    pub misplaced: u64,
    /// Partial pages at the ends of chunks written direct.
    pub edges: u64,
}

impl Files {
    /// `file` (at `path`), and the same file opened direct where it can be.
    pub(super) fn new(file: File, path: &Path) -> Files {
        let direct = open_direct(&file, path);
        Files {
            buffered: file,
            direct,
            written: 0,
            direct_bytes: 0,
            misplaced: 0,
            edges: 0,
        }
    }

    /// The file's length.
    pub(super) fn written(&self) -> u64 {
        self.written
    }

    #[cfg(test)]
    pub(super) fn stats(&self) -> DirectStats {
        DirectStats {
            on: self.direct.is_some(),
            bytes: self.direct_bytes,
            misplaced: self.misplaced,
            edges: self.edges,
        }
    }

    /// All of `parts` through the page cache, in as few `pwritev` calls as the
    /// kernel allows.
    pub(super) fn write_parts(&mut self, parts: &[&[u8]]) -> std::io::Result<()> {
        let mut slices: Vec<IoSlice<'_>> = parts
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| IoSlice::new(p))
            .collect();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            let n = retry(|| rustix::io::pwritev(&self.buffered, rest, self.written))?;
            self.written += n as u64;
            IoSlice::advance_slices(&mut rest, n);
        }
        Ok(())
    }

    /// A chunk: its whole pages direct when asked and it is placed for that,
    /// the rest through the page cache.
    pub(super) fn write_chunk(&mut self, data: &[u8], direct: bool) -> std::io::Result<()> {
        let align = align();
        let at = (self.written % align as u64) as usize;
        let head = (align - at) % align;
        let placed = data.as_ptr() as usize % align == at;
        let whole = data.len().saturating_sub(head) / align * align;
        self.misplaced += u64::from(!placed && whole > 0);
        if !direct || self.direct.is_none() || !placed || whole == 0 {
            return self.write_parts(&[data]);
        }
        let tail = data.len() - head - whole;
        self.edges += u64::from(head > 0) + u64::from(tail > 0);
        self.write_parts(&[&data[..head]])?;
        let mut middle = &data[head..head + whole];
        while !middle.is_empty() && middle.len().is_multiple_of(align) {
            let Some(direct) = &self.direct else { break };
            match retry(|| rustix::io::pwrite(direct, middle, self.written)) {
                Ok(n) => {
                    self.written += n as u64;
                    self.direct_bytes += n as u64;
                    middle = &middle[n..];
                }
                Err(e) => {
                    // Not for this file after all (EINVAL), or failing: the ordinary
                    // way from now on (which reports a real failure).
                    tracing::debug!("direct writes refused ({e}); writing through the page cache");
                    self.direct = None;
                }
            }
        }
        self.write_parts(&[middle, &data[head + whole..]])
    }
}

/// A write call again while it is interrupted; nothing written is an error.
fn retry(mut call: impl FnMut() -> rustix::io::Result<usize>) -> std::io::Result<usize> {
    loop {
        match call() {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => return Ok(n),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// `path` opened again with `O_DIRECT`, if it is still `file` and its file
/// system takes direct writes.
#[cfg(target_os = "linux")]
fn open_direct(file: &File, path: &Path) -> Option<File> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let direct = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
        .open(path)
        .ok()?;
    let (a, b) = (file.metadata().ok()?, direct.metadata().ok()?);
    (a.dev() == b.dev() && a.ino() == b.ino()).then_some(direct)
}

#[cfg(not(target_os = "linux"))]
fn open_direct(_: &File, _: &Path) -> Option<File> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A direct write the kernel refuses: that part, and all that follows,
    /// through the page cache.
    #[test]
    fn a_refused_direct_write_is_written_the_ordinary_way() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        let mut files = Files {
            buffered: File::create(&path).unwrap(),
            // Read-only: every write to it fails (as EINVAL would).
            direct: Some(File::open(&path).unwrap()),
            written: 0,
            direct_bytes: 0,
            misplaced: 0,
            edges: 0,
        };
        // Whole pages, laid out for offset 0.
        let buf = vec![b'x'; 7 * align()];
        let at = buf.as_ptr().align_offset(align());
        files
            .write_chunk(&buf[at..at + 5 * align() + 3], true)
            .unwrap();
        files.write_parts(&[b"end"]).unwrap();
        assert!(files.direct.is_none());
        assert_eq!(files.direct_bytes, 0);
        let mut want = vec![b'x'; 5 * align() + 3];
        want.extend_from_slice(b"end");
        assert!(std::fs::read(&path).unwrap() == want);
    }
}
