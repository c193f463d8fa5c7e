//! The file side of a transcript: whole records, written in order, either by
//! the relay itself or, while a burst of literal bytes goes on, by a task of
//! the blocking pool so that the kernel's file writes overlap the relaying.
//!
//! What is handed over is a chunk of whole records (a copy: the read buffer is
//! the relay's), so a proxy killed at any moment leaves a transcript that parses
//! up to its last whole chunk. At most [`QUEUE_MAX`] bytes wait to be written;
//! past that the relay waits for the writer (bounded memory, backpressure into
//! the relay, which then reads nothing more from the server).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{IoSlice, Write};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Records gathered before they are handed to the writer: large, because each
/// hand-over may wake a thread (a futex call and a task switch each way, which
/// cost more than the write itself at 256 KB).
pub const CHUNK: usize = 1024 * 1024;
/// Bytes handed over and not yet written, at most (then the relay waits).
pub const QUEUE_MAX: usize = 4 * CHUNK;
/// Emptied chunks kept for reuse (no fresh pages per chunk).
const SPARE_MAX: usize = 3;
/// Chunks written in one `writev` at most.
const BATCH_MAX: usize = 64;

pub struct Sink {
    state: Mutex<State>,
    /// Signalled when the writer wrote a batch or stopped.
    progress: Condvar,
}

struct State {
    /// `None` once closed or failed, and while the writer holds it.
    file: Option<File>,
    path: PathBuf,
    open: bool,
    queue: VecDeque<Vec<u8>>,
    queued: usize,
    /// A writer task runs (it holds the file).
    writing: bool,
    spare: Vec<Vec<u8>>,
    /// `write`/`writev` calls made, for the tests.
    writes: u64,
    /// Threads waiting on `progress` (a notification nobody waits for is a
    /// system call for nothing).
    waiting: usize,
}

impl Sink {
    pub fn new(file: File, path: PathBuf) -> Arc<Sink> {
        Arc::new(Sink {
            state: Mutex::new(State {
                file: Some(file),
                path,
                open: true,
                queue: VecDeque::new(),
                queued: 0,
                writing: false,
                spare: Vec::new(),
                writes: 0,
                waiting: 0,
            }),
            progress: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Still recording (not closed, not failed).
    pub fn is_open(&self) -> bool {
        self.lock().open
    }

    /// An empty buffer for a chunk (a reused one when there is one).
    pub fn buffer(&self) -> Vec<u8> {
        self.lock()
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(CHUNK + CHUNK / 4))
    }

    /// Hand `chunk` (whole records) to the writer; waits while more than
    /// [`QUEUE_MAX`] bytes are waiting.
    pub fn queue(self: &Arc<Self>, chunk: Vec<u8>) {
        if chunk.is_empty() {
            return;
        }
        let mut s = self.lock();
        if !s.open {
            return;
        }
        s.queued += chunk.len();
        s.queue.push_back(chunk);
        if !s.writing {
            s.writing = true;
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    let job = Drain(Some(self.clone()));
                    drop(rt.spawn_blocking(move || drop(job)));
                }
                Err(_) => {
                    // No runtime to lend a thread: write here.
                    drop(s);
                    return self.drain();
                }
            }
        }
        while s.writing && s.queued > QUEUE_MAX {
            s = self.wait(s);
        }
    }

    /// Wait for the writer's progress.
    fn wait<'a>(&self, mut s: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        s.waiting += 1;
        let mut s = self.progress.wait(s).unwrap_or_else(|e| e.into_inner());
        s.waiting -= 1;
        s
    }

    /// Tell those waiting that the writer moved on.
    fn notify(&self, s: &State) {
        if s.waiting > 0 {
            self.progress.notify_all();
        }
    }

    /// Write `text` with `parts` here and now, after what was handed over
    /// (waiting for the writer to finish it).
    pub fn write_now(&self, parts: &[&[u8]]) {
        let mut s = self.settled();
        if !s.open {
            return;
        }
        let Some(file) = s.file.as_mut() else { return };
        let result = write_all_vectored(file, parts);
        s.writes += 1;
        if let Err(e) = result {
            s.fail(e);
        }
    }

    /// A burst is over: its spare buffers are not kept by an idle connection.
    pub fn release(&self) {
        self.lock().spare = Vec::new();
    }

    /// Whether nothing is waiting or being written (a write now would not wait).
    pub fn is_idle(&self) -> bool {
        !self.lock().writing
    }

    /// Wait until everything handed over is written.
    pub fn settle(&self) {
        drop(self.settled());
    }

    /// The state once everything handed over is written.
    fn settled(&self) -> MutexGuard<'_, State> {
        let mut s = self.lock();
        while s.writing {
            s = self.wait(s);
        }
        s
    }

    /// Stop recording once everything handed over is written; `remove` deletes the file.
    pub fn close(&self, remove: bool) {
        let mut s = self.settled();
        s.open = false;
        s.file = None;
        s.queue.clear();
        if remove {
            let _ = std::fs::remove_file(&s.path);
        }
    }

    /// The transcript's file.
    pub fn path(&self) -> PathBuf {
        self.lock().path.clone()
    }

    /// Bytes held in spare buffers.
    #[cfg(test)]
    pub fn spare_capacity(&self) -> usize {
        self.lock().spare.iter().map(Vec::capacity).sum()
    }

    /// `write`/`writev` calls so far.
    pub fn writes(&self) -> u64 {
        self.lock().writes
    }

    /// The writer: everything queued, in order, a batch per `writev`.
    fn drain(&self) {
        let mut s = self.lock();
        loop {
            let file = match (s.queue.is_empty(), s.file.take()) {
                (false, Some(f)) => f,
                (_, file) => {
                    s.file = file;
                    s.queue.clear();
                    s.queued = 0;
                    s.writing = false;
                    self.notify(&s);
                    return;
                }
            };
            let n = s.queue.len().min(BATCH_MAX);
            let batch: Vec<Vec<u8>> = s.queue.drain(..n).collect();
            drop(s);
            let mut file = file;
            let parts: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
            let result = write_all_vectored(&mut file, &parts);
            s = self.lock();
            s.writes += 1;
            s.queued -= batch.iter().map(Vec::len).sum::<usize>();
            for mut b in batch {
                if s.spare.len() < SPARE_MAX && b.capacity() <= 2 * CHUNK {
                    b.clear();
                    s.spare.push(b);
                }
            }
            match result {
                Ok(()) if s.open => s.file = Some(file),
                Ok(()) => {}
                Err(e) => s.fail(e),
            }
            self.notify(&s);
        }
    }
}

/// The writer's job: it drains when dropped, so a job the runtime drops
/// without running it (shutting down) still writes and never leaves the relay
/// waiting.
struct Drain(Option<Arc<Sink>>);

impl Drop for Drain {
    fn drop(&mut self) {
        if let Some(sink) = self.0.take() {
            sink.drain();
        }
    }
}

impl State {
    fn fail(&mut self, e: std::io::Error) {
        tracing::warn!(path = %self.path.display(), "recording stopped: {e}");
        self.open = false;
        self.file = None;
    }
}

/// All of `parts`, in as few `writev` calls as the kernel allows.
fn write_all_vectored(file: &mut File, parts: &[&[u8]]) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = parts
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| IoSlice::new(p))
        .collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match file.write_vectored(rest) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink() -> (tempfile::TempDir, PathBuf, Arc<Sink>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        let file = File::create(&path).unwrap();
        let s = Sink::new(file, path.clone());
        (dir, path, s)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn chunks_and_direct_writes_land_in_order() {
        let (_d, path, s) = sink();
        let mut want = Vec::new();
        for i in 0..40u8 {
            let mut c = s.buffer();
            c.extend(std::iter::repeat_n(b'a' + i % 26, 100_000));
            want.extend_from_slice(&c);
            s.queue(c);
            if i % 10 == 9 {
                s.write_now(&[b"line\n", b"more\n"]);
                want.extend_from_slice(b"line\nmore\n");
            }
        }
        s.close(false);
        assert_eq!(std::fs::read(&path).unwrap(), want);
        // Handed over after closing: dropped, nothing written.
        s.queue(b"late".to_vec());
        s.write_now(&[b"late"]);
        assert_eq!(std::fs::read(&path).unwrap().len(), want.len());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn what_waits_to_be_written_is_bounded() {
        let (_d, _p, s) = sink();
        let mut peak = 0;
        for _ in 0..200 {
            s.queue(vec![b'x'; CHUNK]);
            peak = peak.max(s.lock().queued);
        }
        assert!(peak <= QUEUE_MAX + CHUNK, "{peak} bytes waited");
        s.close(false);
    }

    #[test]
    fn without_a_runtime_it_writes_in_place() {
        let (_d, path, s) = sink();
        s.queue(b"abc".to_vec());
        assert!(s.is_idle());
        assert_eq!(std::fs::read(&path).unwrap(), b"abc");
        s.close(true);
        assert!(!path.exists());
    }
}
