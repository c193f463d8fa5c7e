//! Writing transcripts: a [`Recorder`] per proxy (directory, redaction, users),
//! a [`Transcript`] per upstream connection, and [`RecordingIo`], the stream
//! wrapper that copies every byte read and written into the transcript. A
//! connection that is not recorded is never wrapped (no cost when off).
//!
//! Records are made straight into a chunk laid out for the file (one copy of
//! each byte relayed, checked as it is copied). A server read that answers the
//! client (ends a tagged response or a `+`) is written before the client can
//! see it, so a killed proxy leaves a transcript with every answer its clients
//! got. The reads of a burst in between (untagged responses, literals: a bulk
//! fetch) fill chunks that the sink's writer writes while the relay goes on
//! (see `sink.rs`), each ending on a page boundary of the file: the rest of
//! its last page starts the next chunk. So a proxy killed mid-burst may leave
//! a last record cut short, which replay leaves out (`replay/script.rs`).

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::format::{Header, Normalise};
use super::sink::{Chunk, Sink, CHUNK};
use super::tracker::{Redaction, Tracker};
use super::RecordError;
use crate::imap_client::BoxedIo;

/// What to record, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSettings {
    pub dir: PathBuf,
    pub redaction: Redaction,
    /// Record only connections that log in as one of these users (empty: all).
    pub users: Vec<String>,
}

/// Opens one transcript per connection in the record directory.
pub struct Recorder {
    settings: RecordSettings,
    run: String,
    next: AtomicU64,
}

impl Recorder {
    /// Create the directory (private to the user) and the recorder.
    pub fn new(settings: RecordSettings) -> Result<Arc<Recorder>, RecordError> {
        crate::private_files::create_dir_all(&settings.dir).map_err(|source| RecordError::Dir {
            dir: settings.dir.clone(),
            source,
        })?;
        let run = format!(
            "{}-p{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
            std::process::id()
        );
        Ok(Arc::new(Recorder {
            settings,
            run,
            next: AtomicU64::new(1),
        }))
    }

    /// The recorder of these settings in this process: the proxy's sessions and
    /// the sync workers' connections share one (one numbering of the files).
    pub fn shared(settings: RecordSettings) -> Result<Arc<Recorder>, RecordError> {
        static ALL: Mutex<Vec<std::sync::Weak<Recorder>>> = Mutex::new(Vec::new());
        let mut all = ALL.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|w| w.strong_count() > 0);
        if let Some(r) = all
            .iter()
            .filter_map(|w| w.upgrade())
            .find(|r| r.settings == settings)
        {
            return Ok(r);
        }
        let r = Recorder::new(settings)?;
        all.push(Arc::downgrade(&r));
        Ok(r)
    }

    pub fn dir(&self) -> &Path {
        &self.settings.dir
    }

    /// A new transcript for a connection; `None` (logged) when the file cannot be made.
    pub fn open(&self, label: &str, client: Option<&str>, server: &str) -> Option<Arc<Transcript>> {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let path = self
            .settings
            .dir
            .join(format!("{}-{seq:05}-{label}.transcript", self.run));
        let file = match crate::private_files::file_options()
            .create_new(true)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(path = %path.display(), "cannot record this connection: {e}");
                return None;
            }
        };
        let r = &self.settings.redaction;
        let mut redacted = vec!["credentials"];
        if r.bodies {
            redacted.push("bodies");
        }
        if r.id {
            redacted.push("id");
        }
        let mut fields = vec![
            (
                "crmproxy".to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            ),
            ("connection".to_string(), label.to_string()),
            ("client".to_string(), client.unwrap_or("-").to_string()),
            ("server".to_string(), server.to_string()),
            (
                "started".to_string(),
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            ),
            ("redacted".to_string(), redacted.join(", ")),
        ];
        for n in Normalise::ALL {
            fields.push(("normalise".to_string(), n.name().to_string()));
        }
        Some(Arc::new(Transcript {
            inner: Mutex::new(Inner {
                sink: Sink::new(file, path),
                header: Some(Header { fields }),
                greeting: Vec::new(),
                tracker: Tracker::new(self.settings.redaction),
                start: Instant::now(),
                early: Vec::new(),
                chunk: Chunk::default(),
                users: self.settings.users.clone(),
            }),
        }))
    }
}

/// One connection's transcript file.
pub struct Transcript {
    inner: Mutex<Inner>,
}

struct Inner {
    /// Where the records go; closed once failed, or dropped for its user.
    sink: Arc<Sink>,
    /// Written once the greeting is known (its capabilities go in it).
    header: Option<Header>,
    greeting: Vec<u8>,
    tracker: Tracker,
    start: Instant,
    /// Records made before the header is written.
    early: Vec<u8>,
    /// Records not yet written, laid out for where they go in the file.
    chunk: Chunk,
    users: Vec<String>,
}

impl Transcript {
    /// Bytes written to the server.
    pub fn client(&self, bytes: &[u8]) {
        let mut i = lock(&self.inner);
        let Some(ms) = i.elapsed_ms() else { return };
        i.feed(|tracker, out| tracker.client(ms, bytes, out));
        i.after_feed();
        if i.chunk.len() >= CHUNK {
            i.hand_over(true);
        }
    }

    /// Bytes read from the server. A read that ends a tagged response or a `+`
    /// is on disk before the client sees it (written by the relay, after
    /// whatever the sink's writer still had): a proxy killed after an answer
    /// leaves a transcript that has it. Other reads (a burst of untagged
    /// responses and literals) are gathered and written by the sink's writer
    /// while the relay goes on.
    pub fn server(&self, bytes: &[u8]) {
        let mut i = lock(&self.inner);
        let Some(ms) = i.elapsed_ms() else { return };
        if i.header.is_some() && i.greeting.len() < 4096 {
            let end = memchr::memchr(b'\n', bytes).map_or(bytes.len(), |n| n + 1);
            i.greeting.extend_from_slice(&bytes[..end]);
        }
        i.feed(|tracker, out| tracker.server(ms, bytes, out));
        i.after_feed();
        if i.tracker.server_answered() {
            i.write_out();
            // A burst's buffers are not kept by a connection that waits.
            i.sink.release();
        } else if i.chunk.len() >= CHUNK {
            i.hand_over(true);
        }
    }

    /// Nothing more to read for now: what is gathered goes to the writer (in
    /// a burst, the relay reading faster than the server sends, but for the
    /// part of a page it ends in, which goes with what comes next).
    pub fn idle(&self) {
        let mut i = lock(&self.inner);
        if !i.chunk.is_empty() {
            let burst = i.chunk.len() >= BURST_MIN;
            i.hand_over(burst);
        }
    }

    /// Push what is buffered to the file: here when nothing is being written,
    /// else after what is (without waiting for it).
    pub fn flush(&self) {
        let mut i = lock(&self.inner);
        if i.sink.is_idle() {
            i.write_out();
        } else if !i.chunk.is_empty() {
            i.hand_over(false);
        }
    }

    /// Everything recorded so far written, whatever it waits for (the end of
    /// the stream).
    pub fn finish(&self) {
        lock(&self.inner).write_out();
    }

    #[cfg(test)]
    fn writes(&self) -> u64 {
        lock(&self.inner).sink.writes()
    }
}

impl Inner {
    /// Milliseconds since the connection started; `None` once not recording.
    fn elapsed_ms(&self) -> Option<u64> {
        if !self.sink.is_open() {
            return None;
        }
        Some(self.start.elapsed().as_millis().min(u128::from(u64::MAX)) as u64)
    }

    /// Run the tracker with the buffer its records go to: the chunk, or before
    /// the header is written, `early`.
    fn feed(&mut self, f: impl FnOnce(&mut Tracker, &mut Vec<u8>)) {
        if self.header.is_none() && self.chunk.capacity() == 0 {
            self.chunk = self.sink.buffer();
        }
        let Inner {
            tracker,
            early,
            chunk,
            header,
            ..
        } = self;
        match header {
            Some(_) => f(tracker, early),
            None => f(tracker, chunk.records()),
        }
    }

    fn after_feed(&mut self) {
        if !self.users.is_empty() {
            if let Some(u) = &self.tracker.user {
                if !self.users.iter().any(|w| w.eq_ignore_ascii_case(u)) {
                    self.discard();
                    return;
                }
            }
        }
        if self.header.is_some() {
            if !self.greeting.ends_with(b"\n") && self.greeting.len() < 4096 {
                return;
            }
            let mut h = self.header.take().unwrap_or_default();
            if let Some(caps) = capabilities(&self.greeting) {
                h.fields.insert(5, ("capabilities".into(), caps));
            }
            self.sink.write_now(&[h.render().as_bytes()]);
            // What came before goes after it, in a chunk laid out for that.
            self.chunk = self.sink.buffer();
            self.chunk
                .extend_from_slice(&std::mem::take(&mut self.early));
        }
    }

    /// The chunk to the writer; in a burst (`keep_partial_page`) but for the
    /// part of a page it ends in: that goes first in the next chunk, so the
    /// chunks of a burst are whole pages that go to the disk in one direct
    /// write each (the page cache only at a burst's ends). A chunk within one
    /// page goes whole.
    fn hand_over(&mut self, keep_partial_page: bool) {
        let mut chunk = std::mem::take(&mut self.chunk);
        let tail = chunk.partial_tail();
        if !keep_partial_page || tail == 0 || tail == chunk.len() {
            return self.sink.queue(chunk);
        }
        let carried = chunk.split_tail(tail);
        self.sink.queue(chunk);
        self.chunk = self.sink.buffer();
        self.chunk.extend_from_slice(&carried);
    }

    /// Write the records held (once the header is out), here and now.
    fn write_out(&mut self) {
        if self.header.is_some() {
            return;
        }
        let chunk = std::mem::take(&mut self.chunk);
        if !chunk.is_empty() {
            self.sink.write_now(&[chunk.as_slice()]);
        }
        self.sink.recycle(chunk);
    }

    /// Not a user to record: the file goes.
    fn discard(&mut self) {
        self.sink.close(true);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if !self.users.is_empty() && self.tracker.user.is_none() {
            return self.discard();
        }
        if self.header.is_some() {
            // Never greeted: write what there is.
            self.greeting.push(b'\n');
            self.after_feed();
        }
        self.write_out();
        self.sink.close(false);
    }
}

/// `IMAP4rev1 …` from a greeting's `[CAPABILITY …]` code.
fn capabilities(greeting: &[u8]) -> Option<String> {
    let upper = greeting.to_ascii_uppercase();
    let at = upper.windows(12).position(|w| w == b"[CAPABILITY ")? + 12;
    let end = at + memchr::memchr(b']', &greeting[at..])?;
    Some(String::from_utf8_lossy(&greeting[at..end]).into_owned())
}

fn lock(m: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Gathered records, handed over when the relay runs dry, that make a burst
/// (see [`Inner::hand_over`]); less, such as an untagged response while a
/// client idles, goes to the file whole.
const BURST_MIN: usize = 64 * 1024;

/// A stream whose bytes, both ways, also go to a transcript.
pub struct RecordingIo {
    io: BoxedIo,
    transcript: Arc<Transcript>,
}

impl RecordingIo {
    pub fn new(io: BoxedIo, transcript: Arc<Transcript>) -> Self {
        RecordingIo { io, transcript }
    }
}

impl AsyncRead for RecordingIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &r {
            let new = &buf.filled()[before..];
            if new.is_empty() {
                self.transcript.finish();
            } else {
                self.transcript.server(new);
            }
        } else if r.is_pending() {
            self.transcript.idle();
        }
        r
    }
}

impl AsyncWrite for RecordingIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            self.transcript.client(&buf[..*n]);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.transcript.flush();
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.transcript.flush();
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorder() -> (tempfile::TempDir, Arc<Recorder>) {
        let dir = tempfile::tempdir().unwrap();
        let r = Recorder::new(RecordSettings {
            dir: dir.path().join("rec"),
            redaction: Redaction::default(),
            users: Vec::new(),
        })
        .unwrap();
        (dir, r)
    }

    /// The bytes of a transcript's `{` blocks, in order.
    fn blocks(text: &str) -> Vec<u8> {
        let mut literal = Vec::new();
        let mut rest = text.as_bytes();
        while let Some(at) = memchr::memmem::find(rest, b"S{ ") {
            let end = at + memchr::memchr(b'\n', &rest[at..]).unwrap();
            let n: usize = std::str::from_utf8(&rest[at + 3..end])
                .unwrap()
                .parse()
                .unwrap();
            literal.extend_from_slice(&rest[end + 1..end + 1 + n]);
            rest = &rest[end + 1 + n..];
        }
        literal
    }

    fn text(t: &Transcript) -> String {
        let path = lock(&t.inner).sink.path();
        String::from_utf8(std::fs::read(path).unwrap()).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_is_written_in_chunks_and_an_answer_at_once() {
        let (_d, r) = recorder();
        let t = r
            .open("session", Some("127.0.0.1:1"), "127.0.0.1:2")
            .unwrap();
        t.server(b"* OK [CAPABILITY IMAP4rev1] ready\r\n");
        t.client(b"a1 UID FETCH 1 BODY.PEEK[]\r\n");
        t.flush();
        let size = 8 * 1024 * 1024;
        t.server(format!("* 1 FETCH (UID 1 BODY[] {{{size}}}\r\n").as_bytes());
        let line = b"Line of a big message, text only, as most mail is.....\r\n";
        let body: Vec<u8> = line.iter().copied().cycle().take(size).collect();
        let before = t.writes();
        // 64 KB reads, as the relay makes them during a burst.
        for read in body.chunks(64 * 1024) {
            t.server(read);
        }
        t.server(b")\r\n");
        let burst = t.writes() - before;
        assert!(
            burst <= (size / CHUNK) as u64,
            "{burst} writes for the burst"
        );
        // The burst's chunks were laid out for their place in the file (the
        // writer, behind, may still have written them through the page cache).
        let misplaced = lock(&t.inner).sink.direct().misplaced;
        assert_eq!(misplaced, 0, "chunks not laid out for the file");
        // The answer: on disk when `server` returns, with all that came before.
        t.server(b"a1 OK Fetch completed.\r\n");
        let got = text(&t);
        let last = got.lines().last().unwrap();
        assert!(last.ends_with(" a1 OK Fetch completed."), "{last}");
        // The blocks hold the literal, whole and in order.
        let literal = blocks(&got);
        assert!(literal == body, "{} of {size} literal bytes", literal.len());
        // Waiting for the next command, the connection keeps no burst buffers.
        let i = lock(&t.inner);
        assert_eq!(i.chunk.capacity() + i.sink.spare_capacity(), 0);
    }

    /// The chunks of a burst, handed over whenever the relay runs dry, are
    /// whole pages: one direct write each, none of their bytes through the
    /// page cache but a first partial page; and the file holds the burst.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_goes_to_the_disk_in_whole_pages() {
        let (_d, r) = recorder();
        let t = r.open("session", None, "127.0.0.1:2").unwrap();
        t.server(b"* OK [CAPABILITY IMAP4rev1] ready\r\n");
        t.client(b"a1 UID FETCH 1 BODY.PEEK[]\r\n");
        t.flush();
        let size = 6 * 1024 * 1024 + 5;
        t.server(format!("* 1 FETCH (UID 1 BODY[] {{{size}}}\r\n").as_bytes());
        let body: Vec<u8> = (0..size).map(|i| b'a' + (i % 23) as u8).collect();
        let sink = lock(&t.inner).sink.clone();
        for (n, read) in body.chunks(65_537).enumerate() {
            t.server(read);
            if n % 3 == 2 {
                t.idle();
            }
            // The writer keeps up, as the disk does when it is fast enough.
            sink.settle();
        }
        let stats = sink.direct();
        t.server(b")\r\na1 OK done\r\n");
        let got = text(&t);
        assert!(
            got.ends_with(" a1 OK done\n"),
            "{}",
            &got[got.len() - 100..]
        );
        assert!(blocks(&got) == body, "the literal differs");
        if !stats.on {
            return eprintln!("this file system takes no direct writes: not tested here");
        }
        assert!(stats.edges <= 1, "{stats:?}");
        assert_eq!(stats.misplaced, 0, "{stats:?}");
        assert!(stats.bytes as usize >= size - 3 * 65_537, "{stats:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn untagged_responses_reach_the_file_once_the_relay_is_idle() {
        let (_d, r) = recorder();
        let t = r.open("session", None, "127.0.0.1:2").unwrap();
        t.server(b"* OK ready\r\n");
        t.client(b"a1 IDLE\r\n");
        t.server(b"+ idling\r\n");
        t.server(b"* 3 EXISTS\r\n");
        t.idle();
        // Handed to the writer, not held until the next answer.
        lock(&t.inner).sink.settle();
        let got = text(&t);
        assert!(got.ends_with("* 3 EXISTS\n"), "{got}");
        // Also one that crosses a page boundary of the file.
        let page = crate::record::file::align() as u64;
        let size = |t: &Transcript| std::fs::metadata(lock(&t.inner).sink.path()).unwrap().len();
        let before = size(&t);
        t.server(b"a1 OK x\r\n");
        let record = size(&t) - before - 1;
        let to_boundary = page - size(&t) % page + page;
        let fill = "x".repeat((to_boundary - record - 4) as usize);
        t.server(format!("a2 OK {fill}\r\n").as_bytes());
        assert_eq!(page - size(&t) % page, 4, "placed before a page boundary");
        t.server(b"* 4 EXISTS\r\n");
        t.idle();
        lock(&t.inner).sink.settle();
        let got = text(&t);
        assert!(got.ends_with("* 4 EXISTS\n"), "{}", &got[got.len() - 50..]);
    }
}
