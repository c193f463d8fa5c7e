//! The hook point: how a layer above the proxy (the tracking engine) sees and
//! adjusts a session's traffic. The session calls the hook with every decoded
//! client command and server response. It never sees or changes the bytes of a
//! message (SPEC section 3). [`NoopHook`] does nothing.
//!
//! Hooks run inline on the session's task while it holds the session state:
//! they must be quick and must not block (hand slow work to another task).

use bytes::Bytes;
use imap_codec::imap_types::command::Command;
use imap_codec::imap_types::response::Response;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;

use super::identity::Identity;
use super::state::SessionState;
pub use crate::imap_client::Credential;

/// Tag prefix of commands a hook sends upstream; their tagged answers are not
/// relayed to the client but given to [`Hook::on_own_response`].
pub const OWN_TAG_PREFIX: &str = "CRMPX";

/// What a hook sees of the session at each call.
pub struct HookContext<'a> {
    pub session_id: u64,
    /// The session's owner, once its LOGIN/AUTHENTICATE got a tagged OK.
    pub identity: Option<&'a Identity>,
    pub state: &'a SessionState,
    /// Send commands of the hook's own upstream.
    pub upstream: &'a UpstreamHandle,
}

/// The calls a session makes. Every method has a do-nothing default.
pub trait Hook: Send + Sync + 'static {
    /// A complete client command, decoded from its exact bytes, just before its
    /// last line goes upstream (STORE keywords, COPY/MOVE targets, APPEND, …).
    /// Commands that do not decode are relayed without this call.
    fn on_command(&self, _cx: &HookContext<'_>, _command: &Command<'_>) {}

    /// A client command too big to decode (an APPEND whose literal streamed
    /// through) went upstream; `first_line` is its first line (e.g.
    /// `a APPEND "CRM/Track" (\Seen) {5000000}`), with the tag.
    fn on_streamed_command(&self, _cx: &HookContext<'_>, _first_line: &[u8]) {}

    /// Commands (without tag and CRLF) to send upstream just before a one-line
    /// client command, pipelined ahead of it (e.g. CREATE the folder a COPY goes
    /// into). Their tagged answers go to [`Hook::on_own_response`]. Ignored for
    /// commands with literals (their first lines are gone already).
    fn commands_before(&self, _cx: &HookContext<'_>, _command: &Command<'_>) -> Vec<String> {
        Vec::new()
    }

    /// Whether this session's untagged FETCH responses are to be decoded and
    /// given to [`Hook::on_response`]. When not, the session relays them as
    /// they are and learns only their UID by a light scan (a decode checks
    /// every byte of every literal: a tenth of the proxy's time in a folder sync).
    fn reads_fetch_responses(&self, _cx: &HookContext<'_>) -> bool {
        false
    }

    /// A complete server response (held whole because it is small), after the
    /// session updated its state. Return a replacement to relay instead (it is
    /// re-encoded); `None` relays the original bytes. Large FETCH responses that
    /// are streamed are not seen here, and FETCH responses are seen only while
    /// [`Hook::reads_fetch_responses`] says so.
    fn on_response(
        &self,
        _cx: &HookContext<'_>,
        _response: &Response<'_>,
    ) -> Option<Response<'static>> {
        None
    }

    /// A FETCH response for message `seq` is too big to hold and streams: a
    /// replacement for its first line (up to and including its first literal's
    /// announcement), for items before the literal that [`Hook::on_response`]
    /// would have changed (FLAGS). The literal's count and bytes are never changed.
    fn streamed_fetch_line(
        &self,
        _cx: &HookContext<'_>,
        _seq: u32,
        _line: &[u8],
    ) -> Option<Vec<u8>> {
        None
    }

    /// A replacement (CRLF-ended) for a one-line client command, sent upstream
    /// instead of it (e.g. a NOOP for a command the hook refuses). `None` relays
    /// the client's bytes.
    fn rewrite_command(&self, _cx: &HookContext<'_>, _command: &Command<'_>) -> Option<Vec<u8>> {
        None
    }

    /// A refusal text for this APPEND (`first_line`: its first line, with the tag),
    /// checked before anything goes upstream: the session answers `NO [ALERT] text`
    /// itself and the message is never stored (its literal is not asked for, or is
    /// read and dropped).
    fn refuse_append(&self, _cx: &HookContext<'_>, _first_line: &[u8]) -> Option<String> {
        None
    }

    /// Should the session read the start of this APPEND's message (`first_line`:
    /// its first line, with the tag) before the command goes upstream, to ask
    /// [`Hook::append_prefix`]? For a synchronising literal that means the proxy
    /// gives the client its `+` itself, which it does only where the upstream
    /// announced LITERAL+ (the server would have accepted the literal unasked).
    fn wants_append_head(&self, _cx: &HookContext<'_>, _first_line: &[u8]) -> bool {
        false
    }

    /// Bytes to put before the first byte of an APPENDed message (lines added at
    /// the top of its header); the session raises the literal's count. `head`: the
    /// message's first bytes, through the end of its header when it fits. At most
    /// `room` bytes may be added (LITERAL-, APPENDLIMIT): a longer prefix must not
    /// be returned (the session would drop it).
    fn append_prefix(
        &self,
        _cx: &HookContext<'_>,
        _first_line: &[u8],
        _head: &[u8],
        _room: u64,
    ) -> Option<Bytes> {
        None
    }

    /// Texts to show the user, each sent as an untagged `* NO [ALERT] text` just
    /// before the next tagged answer relayed to the client (a refusal that came
    /// after the command that asked was answered, e.g. from the sync worker).
    fn notices(&self, _cx: &HookContext<'_>) -> Vec<String> {
        Vec::new()
    }

    /// The tagged answer to a command sent with [`UpstreamHandle::send_command`].
    fn on_own_response(&self, _cx: &HookContext<'_>, _tag: &str, _response: &[u8]) {}

    /// A login succeeded (`cx.identity` is set) with `credential`, which a hook may
    /// keep in memory to open its own upstream connection as the same user. It must
    /// never be logged or written anywhere. `None`: a mechanism the proxy cannot
    /// replay (XOAUTH2, OAUTHBEARER, SCRAM, …).
    fn on_login(&self, _cx: &HookContext<'_>, _credential: Option<&Credential>) {}

    /// The session ended; per-session data of the hook can go.
    fn on_session_end(&self, _session_id: u64) {}
}

/// The hook that does nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopHook;

impl Hook for NoopHook {}

/// Queue of the hook's own commands for the upstream. Bounded: a full queue is
/// an error for the caller, never unbounded memory.
#[derive(Debug, Clone)]
pub struct UpstreamHandle {
    tx: mpsc::Sender<Bytes>,
    next: std::sync::Arc<AtomicU64>,
}

/// The queue of own commands is full or the session has ended.
#[derive(Debug, thiserror::Error)]
#[error("cannot queue a command for the upstream: {0}")]
pub struct SendError(&'static str);

impl UpstreamHandle {
    pub(crate) fn new(capacity: usize) -> (Self, mpsc::Receiver<Bytes>) {
        let (tx, rx) = mpsc::channel(capacity);
        let next = std::sync::Arc::new(AtomicU64::new(1));
        (UpstreamHandle { tx, next }, rx)
    }

    /// `command` with the next own tag and CRLF, for sending at once (`None`
    /// when it is not one line).
    pub(crate) fn tagged(&self, command: &str) -> Option<Bytes> {
        if command.contains(['\r', '\n']) {
            return None;
        }
        let tag = format!(
            "{OWN_TAG_PREFIX}{}",
            self.next.fetch_add(1, Ordering::Relaxed)
        );
        Some(Bytes::from(format!("{tag} {command}\r\n")))
    }

    /// Send `command` (without tag or CRLF, e.g. `UID STORE 5 +FLAGS ($X)`) between
    /// two client commands. Returns the tag it will carry.
    pub fn send_command(&self, command: &str) -> Result<String, SendError> {
        if command.contains(['\r', '\n']) {
            return Err(SendError("the command must be one line"));
        }
        let tag = format!(
            "{OWN_TAG_PREFIX}{}",
            self.next.fetch_add(1, Ordering::Relaxed)
        );
        let bytes = Bytes::from(format!("{tag} {command}\r\n"));
        self.tx.try_send(bytes).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SendError("queue full"),
            mpsc::error::TrySendError::Closed(_) => SendError("session ended"),
        })?;
        Ok(tag)
    }
}
