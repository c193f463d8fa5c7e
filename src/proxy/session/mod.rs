//! One client session: the two directions relayed concurrently on one task,
//! with back-pressure (every write is awaited; nothing queues without bound).
//!
//! Client → upstream: commands are forwarded as they arrive, line by line and
//! literal chunk by chunk. After a line ending in a synchronising literal
//! `{n}` the client side waits until the upstream answers with `+` (payload
//! follows) or with that command's tag (literal cancelled). The proxy sends `+`
//! itself only for an APPEND whose message the hook must see before it goes up
//! (a tracking block to add), and only to an upstream that announced LITERAL+,
//! which would have taken the literal unasked. STARTTLS and COMPRESS are
//! answered locally.
//!
//! Upstream → client: small responses are held whole, so they can be decoded
//! (state, identity, hook) and filtered (capabilities); a response with a
//! literal too big for `message_cap` is streamed through as it arrives.

mod client_writer;
mod from_client;
mod from_upstream;

use client_writer::ClientWriter;

use bytes::Bytes;
use imap_codec::decode::Decoder;
use imap_codec::encode::Encoder;
use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::fetch::MessageDataItem;
use imap_codec::imap_types::mailbox::Mailbox as ImapMailbox;
use imap_codec::imap_types::response::{Code, Data, Response, Status};
use imap_codec::imap_types::sequence::{SeqOrUid, Sequence};
use imap_codec::{CommandCodec, ResponseCodec};
use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{split, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_rustls::TlsAcceptor;

use super::hook::{Credential, Hook, HookContext, UpstreamHandle, OWN_TAG_PREFIX};
use super::identity::{self, Identity, LoginAttempt, Mechanism};
use super::state::{message_id_from_header, SessionState};
use super::BoxedIo;
use crate::imap_client::Upstream;
use crate::wire::token::{first_token, is_valid_tag};
use crate::wire::{
    command_start, filter_capabilities, literal_capabilities, response_start, with_literal_len,
    CapabilityPolicy, Frame, Framer, NonSyncLiterals, ResponseStart,
};

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Most client commands in flight (sent upstream, not answered) in one session;
/// a client pipelining more gets `BAD` for the excess.
const MAX_COMMANDS_IN_FLIGHT: usize = 10_000;
/// After the client closed, how long the upstream may take to finish its answers.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a session needs besides its two connections.
#[derive(Clone)]
pub struct SessionParams {
    pub id: u64,
    pub max_line: usize,
    /// Largest server response held whole (and so decoded); bigger ones stream.
    pub message_cap: usize,
    pub idle_timeout: Duration,
    pub client_tls: bool,
    /// Present when the client may upgrade with STARTTLS.
    pub starttls: Option<TlsAcceptor>,
    /// LOGIN/AUTHENTICATE allowed while the client connection is plain text.
    pub plaintext_login: bool,
    pub hook: Arc<dyn Hook>,
    pub shutdown: watch::Receiver<bool>,
}

/// What the upstream's answer will tell us about a command.
enum Pending {
    Login(LoginAttempt),
    Select,
    Deselect,
}

#[derive(Default)]
struct Shared {
    pending: HashMap<Box<[u8]>, Pending>,
    /// Tags of the client's commands sent upstream and not answered yet: a second
    /// command with one of them gets `BAD` from the proxy (per-command state, the
    /// login's identity among it, follows the command the server answers).
    in_flight: std::collections::HashSet<Box<[u8]>>,
    /// A client sync literal waiting for the upstream's `+` (true) or tagged answer (false).
    literal_wait: Option<(Box<[u8]>, oneshot::Sender<bool>)>,
    /// AUTHENTICATE in progress: its tag, and the mechanism if the identity is
    /// still to be read from the next client line.
    sasl: Option<(Box<[u8]>, Option<Mechanism>)>,
    identity: Option<Identity>,
    /// What a login in flight authenticates with (by tag), for [`Hook::on_login`].
    credentials: HashMap<Box<[u8]>, Credential>,
    /// Tag of an IDLE in progress (until its tagged answer).
    idle: Option<Box<[u8]>>,
    state: SessionState,
    client_tls: bool,
    /// LOGIN/AUTHENTICATE succeeded (or PREAUTH): STARTTLS is no longer offered.
    authenticated: bool,
    saw_bye: bool,
    /// From the upstream's latest capability list.
    upstream_literals: NonSyncLiterals,
    upstream_append_limit: Option<u64>,
}

struct Ctx {
    p: SessionParams,
    shared: Mutex<Shared>,
    client_w: tokio::sync::Mutex<Option<ClientWriter>>,
    handle: UpstreamHandle,
}

enum ClientEnd {
    Eof,
    Said(&'static str),
}

/// Ends of the upstream direction: `true` when at a message boundary.
enum UpstreamEnd {
    /// The upstream closed; `at_boundary`: nothing partial was sent to the client.
    Closed { at_boundary: bool },
    /// Writing to the client failed.
    ClientGone,
}

fn lock(m: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Relay a session until either side ends. The greeting has not been sent yet.
pub async fn run(client: BoxedIo, upstream: Upstream, p: SessionParams) {
    let (client_r, client_w) = split(client);
    let (handle, own_rx) = UpstreamHandle::new(8);
    let cx = Ctx {
        shared: Mutex::new(Shared {
            client_tls: p.client_tls,
            ..Default::default()
        }),
        p,
        client_w: tokio::sync::Mutex::new(Some(ClientWriter::new(client_w))),
        handle,
    };
    if upstream.greeting.len() > 10 && upstream.greeting[..10].eq_ignore_ascii_case(b"* PREAUTH ") {
        lock(&cx.shared).authenticated = true;
    }
    let greeting = cx.filter_caps(&upstream.greeting);
    let greeting = greeting.as_deref().unwrap_or(&upstream.greeting);
    if cx.write_client(greeting).await.is_err() {
        return;
    }
    // Both directions live in this block: leaving it drops them, and with them any
    // lock on the client writer that a direction held mid-literal when the other
    // side ended (else the lock below would wait forever).
    {
        let client_dir = cx.client_to_upstream(
            Framer::new(client_r, cx.p.max_line),
            upstream.writer,
            own_rx,
        );
        let upstream_dir = cx.upstream_to_client(upstream.reader);
        tokio::pin!(client_dir, upstream_dir);
        tokio::select! {
            end = &mut client_dir => {
                match end {
                    Ok(ClientEnd::Eof) => {
                        let _ = tokio::time::timeout(DRAIN_TIMEOUT, &mut upstream_dir).await;
                    }
                    Ok(ClientEnd::Said(why)) => tracing::info!("session ended: {why}"),
                    Err(e) => tracing::info!("client connection ended: {e}"),
                }
            }
            end = &mut upstream_dir => {
                let saw_bye = lock(&cx.shared).saw_bye;
                match end {
                    UpstreamEnd::Closed { at_boundary } => {
                        if at_boundary && !saw_bye {
                            let _ = cx.write_client(b"* BYE upstream server closed the connection\r\n").await;
                        }
                        tracing::info!("upstream ended the session");
                    }
                    UpstreamEnd::ClientGone => tracing::info!("client connection lost"),
                }
            }
        }
    }
    let writer = cx.client_w.lock().await.take();
    if let Some(mut w) = writer {
        let _ = w.shutdown().await;
    }
    cx.p.hook.on_session_end(cx.p.id);
}

impl Ctx {
    fn policy(&self) -> CapabilityPolicy {
        let (tls, authenticating) = {
            let sh = lock(&self.shared);
            // Dovecot sends an untagged CAPABILITY before a LOGIN's tagged OK: once a
            // login is under way, STARTTLS (valid only before it) is not offered.
            let login_in_flight =
                sh.sasl.is_some() || sh.pending.values().any(|p| matches!(p, Pending::Login(_)));
            (sh.client_tls, sh.authenticated || login_in_flight)
        };
        CapabilityPolicy {
            offer_starttls: !tls && !authenticating && self.p.starttls.is_some(),
            login_disabled: !tls && !self.p.plaintext_login,
        }
    }

    fn filter_caps(&self, msg: &[u8]) -> Option<Vec<u8>> {
        if let Some((literals, limit)) = literal_capabilities(msg) {
            let mut sh = lock(&self.shared);
            sh.upstream_literals = literals;
            sh.upstream_append_limit = limit;
        }
        filter_capabilities(msg, self.policy())
    }

    /// Send `bytes` to the client now (after anything queued before).
    async fn write_client(&self, bytes: &[u8]) -> io::Result<()> {
        let mut g = self.client_w.lock().await;
        let w = g
            .as_mut()
            .ok_or_else(|| io::Error::other("client closed"))?;
        w.queue(bytes).await?;
        w.flush().await
    }

    /// Queue `bytes` for the client; they leave with the next flush (or sooner).
    async fn queue_client(&self, bytes: &[u8]) -> io::Result<()> {
        let mut g = self.client_w.lock().await;
        let w = g
            .as_mut()
            .ok_or_else(|| io::Error::other("client closed"))?;
        w.queue(bytes).await
    }

    /// Send what is queued for the client.
    async fn flush_client(&self) -> io::Result<()> {
        match self.client_w.lock().await.as_mut() {
            Some(w) => w.flush().await,
            None => Err(io::Error::other("client closed")),
        }
    }

    /// Call the hook with a view of the session (state lock held: hooks are quick).
    fn with_hook<T>(&self, f: impl FnOnce(&dyn Hook, &HookContext<'_>) -> T) -> T {
        let sh = lock(&self.shared);
        let hcx = HookContext {
            session_id: self.p.id,
            identity: sh.identity.as_ref(),
            state: &sh.state,
            upstream: &self.handle,
        };
        f(&*self.p.hook, &hcx)
    }
}
