//! The file side of a transcript: records, written in order, either by
//! the relay itself or, while a burst of literal bytes goes on, by a task of
//! the blocking pool so that the kernel's file writes overlap the relaying.
//!
//! What is handed over is a chunk of records (a copy: the read buffer is the
//! relay's), so a proxy killed at any moment leaves a transcript that replays
//! up to the last record of its last chunk written. At most [`QUEUE_MAX`]
//! bytes wait to be written; past that the relay waits for the writer (bounded
//! memory, backpressure into the relay, which then reads nothing more from the
//! server).
//!
//! The writer sends a chunk's whole pages to the disk with `O_DIRECT` where the
//! file system allows it (Linux): the page cache's copy and its write-back cost
//! more CPU than the relay itself, and on a machine with few cores that CPU is
//! the relay's. A [`Chunk`] is laid out in memory at the offset modulo [`align`]
//! that its bytes take in the file, so its whole pages go to the disk from where
//! the relay put them; partial pages at its ends (a burst's first and last)
//! and everything written by the relay itself go through the page cache. Any
//! file, any layout: a write the kernel refuses direct is written the ordinary
//! way. And only while the disk keeps up: with more than half of [`QUEUE_MAX`]
//! waiting, chunks go through the page cache (CPU, where the disk would keep
//! the relay waiting).

use std::collections::VecDeque;
use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::file::{align, Files};

/// Records gathered before they are handed to the writer: large, because each
/// hand-over may wake a thread (a futex call and a task switch each way, which
/// cost more than the write itself at 256 KB).
pub const CHUNK: usize = 1024 * 1024;
/// Bytes handed over and not yet written, at most (then the relay waits).
pub const QUEUE_MAX: usize = 4 * CHUNK;
/// Emptied chunks kept for reuse (no fresh pages per chunk).
const SPARE_MAX: usize = 3;
/// Whole records for the writer, placed in memory at the offset modulo
/// [`align`] they take in the file (see the module's text).
#[derive(Default)]
pub struct Chunk {
    buf: Vec<u8>,
    /// Where the records start in `buf` (before: padding).
    start: usize,
}

impl Chunk {
    /// An empty chunk whose bytes go at `offset` in the file.
    fn placed(mut buf: Vec<u8>, offset: u64) -> Chunk {
        buf.clear();
        let align = align();
        if buf.capacity() < chunk_capacity() {
            buf = Vec::with_capacity(chunk_capacity());
        }
        let aligned = buf.as_ptr().align_offset(align).min(align);
        let start = aligned + (offset % align as u64) as usize;
        buf.resize(start, 0);
        Chunk { buf, start }
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    pub fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held, padding included (0: no buffer yet).
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// How many bytes at the end lie past the chunk's last page boundary in
    /// the file; all of them when the chunk does not cross one.
    pub fn partial_tail(&self) -> usize {
        let tail = (self.buf.as_ptr() as usize + self.buf.len()) % align();
        if self.buf.len() - tail <= self.start {
            return self.len();
        }
        tail
    }

    /// The last `n` bytes, cut off.
    pub fn split_tail(&mut self, n: usize) -> Vec<u8> {
        self.buf.split_off(self.buf.len() - n)
    }

    /// The buffer to append records to. Only append: what it holds is laid out.
    pub fn records(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }
}

/// A chunk's buffer: [`CHUNK`], the last read that crosses it, and the padding.
fn chunk_capacity() -> usize {
    CHUNK + CHUNK / 4 + 2 * align()
}

pub struct Sink {
    state: Mutex<State>,
    /// Signalled when the writer wrote a batch or stopped.
    progress: Condvar,
}

struct State {
    /// `None` once closed or failed, and while the writer holds it.
    file: Option<Files>,
    path: PathBuf,
    open: bool,
    /// The file's length once everything handed over is written: where the
    /// next chunk goes.
    end: u64,
    queue: VecDeque<Chunk>,
    queued: usize,
    /// A writer task runs (it holds the file).
    writing: bool,
    spare: Vec<Vec<u8>>,
    /// Chunks and immediate writes written, for the tests.
    writes: u64,
    /// Threads waiting on `progress` (a notification nobody waits for is a
    /// system call for nothing).
    waiting: usize,
}

impl Sink {
    pub fn new(file: File, path: PathBuf) -> Arc<Sink> {
        Arc::new(Sink {
            state: Mutex::new(State {
                file: Some(Files::new(file, &path)),
                path,
                open: true,
                end: 0,
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

    /// An empty chunk for what goes next in the file (a reused buffer when
    /// there is one). Nothing may be written between this and handing the
    /// chunk over (or writing it with [`Sink::write_now`]).
    pub fn buffer(&self) -> Chunk {
        let mut s = self.lock();
        let buf = s.spare.pop().unwrap_or_default();
        Chunk::placed(buf, s.end)
    }

    /// A chunk no longer needed: its buffer is kept for the next.
    pub fn recycle(&self, chunk: Chunk) {
        let mut s = self.lock();
        s.keep(chunk.buf);
    }

    /// Hand `chunk` (whole records) to the writer; waits while more than
    /// [`QUEUE_MAX`] bytes are waiting.
    pub fn queue(self: &Arc<Self>, chunk: Chunk) {
        if chunk.is_empty() {
            return self.recycle(chunk);
        }
        let mut s = self.lock();
        if !s.open {
            return;
        }
        s.queued += chunk.len();
        s.end += chunk.len() as u64;
        s.queue.push_back(chunk);
        if !s.writing {
            s.writing = true;
            // Unlocked: a runtime shutting down drops the job at once, here,
            // and the job then drains on this thread.
            drop(s);
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    let job = Drain(Some(self.clone()));
                    drop(rt.spawn_blocking(move || drop(job)));
                }
                // No runtime to lend a thread: write here.
                Err(_) => return self.drain(),
            }
            s = self.lock();
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
        let result = file.write_parts(parts);
        s.end = file.written();
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

    /// What went direct, once everything handed over is written.
    #[cfg(test)]
    pub(super) fn direct(&self) -> super::file::DirectStats {
        let s = self.settled();
        s.file.as_ref().map(Files::stats).expect("recording")
    }

    /// Chunks and immediate writes written so far.
    pub fn writes(&self) -> u64 {
        self.lock().writes
    }

    /// The writer: everything queued, in order.
    fn drain(&self) {
        let mut s = self.lock();
        loop {
            let (file, chunk) = match (s.file.take(), s.queue.pop_front()) {
                (Some(f), Some(c)) => (f, c),
                (file, _) => {
                    s.file = file;
                    s.queue.clear();
                    s.queued = 0;
                    s.writing = false;
                    self.notify(&s);
                    return;
                }
            };
            // Direct while the disk keeps up; behind, through the page cache,
            // which costs CPU but never keeps the relay waiting for the disk.
            let direct = s.queued <= QUEUE_MAX / 2;
            drop(s);
            let mut file = file;
            let result = file.write_chunk(chunk.as_slice(), direct);
            s = self.lock();
            s.writes += 1;
            s.queued -= chunk.len();
            s.keep(chunk.buf);
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
    /// Keep an emptied chunk's buffer for reuse, a few at most.
    fn keep(&mut self, buf: Vec<u8>) {
        if self.spare.len() < SPARE_MAX && (chunk_capacity()..=2 * CHUNK).contains(&buf.capacity())
        {
            self.spare.push(buf);
        }
    }

    fn fail(&mut self, e: std::io::Error) {
        tracing::warn!(path = %self.path.display(), "recording stopped: {e}");
        self.open = false;
        self.file = None;
    }
}

#[cfg(test)]
#[path = "sink_tests.rs"]
mod tests;
