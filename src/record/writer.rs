//! Writing transcripts: a [`Recorder`] per proxy (directory, redaction, users),
//! a [`Transcript`] per upstream connection, and [`RecordingIo`], the stream
//! wrapper that copies every byte read and written into the transcript. A
//! connection that is not recorded is never wrapped (no cost when off).
//!
//! What the server sent is written before the client can see it (one `writev`
//! per read: the records, with the literal text they hold taken from the read
//! buffer itself, see [`Splice`]), so a killed proxy leaves a complete transcript.

use std::fs::File;
use std::io::{IoSlice, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::format::{Header, Normalise};
use super::tracker::{Redaction, Splice, Tracker};
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
                file: Some(file),
                path,
                header: Some(Header { fields }),
                greeting: Vec::new(),
                tracker: Tracker::new(self.settings.redaction),
                start: Instant::now(),
                out: Vec::new(),
                splices: Vec::new(),
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
    /// `None` once closed, failed, or dropped for its user. Written in one call
    /// per flush from `out` (no second buffer).
    file: Option<File>,
    path: PathBuf,
    /// Written once the greeting is known (its capabilities go in it).
    header: Option<Header>,
    greeting: Vec<u8>,
    tracker: Tracker,
    start: Instant,
    out: Vec<u8>,
    /// Blocks of the server read being recorded, to write from its buffer.
    splices: Vec<Splice>,
    users: Vec<String>,
}

impl Transcript {
    /// Bytes written to the server.
    pub fn client(&self, bytes: &[u8]) {
        let mut i = lock(&self.inner);
        let Some(ms) = i.elapsed_ms() else { return };
        let Inner { tracker, out, .. } = &mut *i;
        tracker.client(ms, bytes, out);
        i.after_feed();
        if i.out.len() >= OUT_MAX {
            i.write_out(&[]);
        }
    }

    /// Bytes read from the server. Whatever the server said is on disk before
    /// the client sees it (one `writev` per read, the blocks from the read
    /// buffer): a proxy killed after a response leaves a transcript that has it.
    pub fn server(&self, bytes: &[u8]) {
        let mut i = lock(&self.inner);
        let Some(ms) = i.elapsed_ms() else { return };
        if i.header.is_some() && i.greeting.len() < 4096 {
            let end = memchr::memchr(b'\n', bytes).map_or(bytes.len(), |n| n + 1);
            i.greeting.extend_from_slice(&bytes[..end]);
        }
        let Inner {
            tracker,
            out,
            splices,
            header,
            ..
        } = &mut *i;
        if header.is_none() {
            tracker.server_in_place(ms, bytes, out, splices);
        } else {
            // Nothing is written before the header: copy.
            tracker.server(ms, bytes, out);
        }
        i.after_feed();
        i.write_out(bytes);
    }

    /// Push what is buffered to the file.
    pub fn flush(&self) {
        lock(&self.inner).write_out(&[]);
    }
}

impl Inner {
    /// Milliseconds since the connection started; `None` once not recording.
    fn elapsed_ms(&self) -> Option<u64> {
        self.file.as_ref()?;
        Some(self.start.elapsed().as_millis().min(u128::from(u64::MAX)) as u64)
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
            self.write(h.render().as_bytes());
        }
    }

    /// Write the records held (once the header is out), with the blocks
    /// [`Inner::splices`] place from `input`, the server read just fed.
    fn write_out(&mut self, input: &[u8]) {
        if self.header.is_some() || (self.out.is_empty() && self.splices.is_empty()) {
            self.splices.clear();
            return;
        }
        let Inner {
            file, out, splices, ..
        } = self;
        let result = match file.as_mut() {
            Some(f) => write_spliced(f, out, splices, input),
            None => Ok(()),
        };
        out.clear();
        splices.clear();
        if out.capacity() > 4 * OUT_MAX {
            *out = Vec::new();
        }
        if let Err(e) = result {
            self.fail(e);
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        if let Some(f) = self.file.as_mut() {
            if let Err(e) = f.write_all(bytes) {
                self.fail(e);
            }
        }
    }

    fn fail(&mut self, e: std::io::Error) {
        tracing::warn!(path = %self.path.display(), "recording stopped: {e}");
        self.file = None;
    }

    /// Not a user to record: the file goes.
    fn discard(&mut self) {
        self.file = None;
        let _ = std::fs::remove_file(&self.path);
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
        self.write_out(&[]);
        self.file = None;
    }
}

/// `text` with `input[from..to]` of each splice inserted at its place, written
/// in as few `writev` calls as the kernel allows.
fn write_spliced(
    file: &mut File,
    text: &[u8],
    splices: &[Splice],
    input: &[u8],
) -> std::io::Result<()> {
    let mut parts: Vec<IoSlice<'_>> = Vec::with_capacity(2 * splices.len() + 1);
    let mut from = 0;
    for s in splices {
        let content = input
            .get(s.from..s.to)
            .ok_or_else(|| std::io::Error::other("a block outside the read it came from"))?;
        parts.push(IoSlice::new(&text[from..s.at]));
        parts.push(IoSlice::new(content));
        from = s.at;
    }
    parts.push(IoSlice::new(&text[from..]));
    parts.retain(|p| !p.is_empty());
    let mut rest = &mut parts[..];
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

/// Records held before they are written (a flush writes them sooner).
const OUT_MAX: usize = 256 * 1024;

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
                self.transcript.flush();
            } else {
                self.transcript.server(new);
            }
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
