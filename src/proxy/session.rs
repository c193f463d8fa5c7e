//! One client session: the two directions relayed concurrently on one task,
//! with back-pressure (every write is awaited; nothing queues without bound).
//!
//! Client → upstream: commands are forwarded as they arrive, line by line and
//! literal chunk by chunk. After a line ending in a synchronising literal
//! `{n}` the client side waits until the upstream answers with `+` (payload
//! follows) or with that command's tag (literal cancelled); the proxy never
//! sends `+` itself. STARTTLS and COMPRESS are answered locally.
//!
//! Upstream → client: small responses are held whole, so they can be decoded
//! (state, identity, hook) and filtered (capabilities); a response with a
//! literal too big for `message_cap` is streamed through as it arrives.

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

use super::hook::{Hook, HookContext, UpstreamHandle, OWN_TAG_PREFIX};
use super::identity::{self, Identity, LoginAttempt, Mechanism};
use super::state::{message_id_from_header, SessionState};
use super::upstream::Upstream;
use super::BoxedIo;
use crate::wire::token::{first_token, is_valid_tag};
use crate::wire::{
    command_start, filter_capabilities, response_start, CapabilityPolicy, Frame, Framer,
    ResponseStart,
};

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
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
    /// A client sync literal waiting for the upstream's `+` (true) or tagged answer (false).
    literal_wait: Option<(Box<[u8]>, oneshot::Sender<bool>)>,
    /// AUTHENTICATE in progress: its tag, and the mechanism if the identity is
    /// still to be read from the next client line.
    sasl: Option<(Box<[u8]>, Option<Mechanism>)>,
    identity: Option<Identity>,
    state: SessionState,
    client_tls: bool,
    /// LOGIN/AUTHENTICATE succeeded (or PREAUTH): STARTTLS is no longer offered.
    authenticated: bool,
    saw_bye: bool,
}

struct Ctx {
    p: SessionParams,
    shared: Mutex<Shared>,
    client_w: tokio::sync::Mutex<Option<WriteHalf<BoxedIo>>>,
    handle: UpstreamHandle,
}

enum ClientEnd {
    Eof,
    Said(&'static str),
}

/// Ends of the upstream direction: `true` when at a message boundary.
struct UpstreamEnded {
    at_boundary: bool,
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
        client_w: tokio::sync::Mutex::new(Some(client_w)),
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
            if end.at_boundary && !saw_bye {
                let _ = cx.write_client(b"* BYE upstream server closed the connection\r\n").await;
            }
            tracing::info!("upstream ended the session");
        }
    }
    let writer = cx.client_w.lock().await.take();
    if let Some(mut w) = writer {
        let _ = w.shutdown().await;
    }
}

impl Ctx {
    fn policy(&self) -> CapabilityPolicy {
        let (tls, authenticated) = {
            let sh = lock(&self.shared);
            (sh.client_tls, sh.authenticated)
        };
        CapabilityPolicy {
            offer_starttls: !tls && !authenticated && self.p.starttls.is_some(),
            login_disabled: !tls && !self.p.plaintext_login,
        }
    }

    fn filter_caps(&self, msg: &[u8]) -> Option<Vec<u8>> {
        filter_capabilities(msg, self.policy())
    }

    async fn write_client(&self, bytes: &[u8]) -> io::Result<()> {
        let mut g = self.client_w.lock().await;
        let w = g
            .as_mut()
            .ok_or_else(|| io::Error::other("client closed"))?;
        w.write_all(bytes).await?;
        w.flush().await
    }

    fn with_hook<T>(&self, f: impl FnOnce(&dyn Hook, &HookContext<'_>, &mut Shared) -> T) -> T {
        let mut sh = lock(&self.shared);
        let sh = &mut *sh;
        let snapshot_identity = sh.identity.clone();
        let state = std::mem::take(&mut sh.state);
        let hcx = HookContext {
            session_id: self.p.id,
            identity: snapshot_identity.as_ref(),
            state: &state,
            upstream: &self.handle,
        };
        let out = f(&*self.p.hook, &hcx, sh);
        sh.state = state;
        out
    }

    // ---------------------------------------------------------------- client → upstream

    async fn client_to_upstream(
        &self,
        mut framer: Framer<ReadHalf<BoxedIo>>,
        mut up: WriteHalf<BoxedIo>,
        mut own_rx: mpsc::Receiver<Bytes>,
    ) -> io::Result<ClientEnd> {
        let mut shutdown = self.p.shutdown.clone();
        loop {
            let frame = tokio::select! {
                biased;
                _ = shutdown.changed() => {
                    let _ = self.write_client(b"* BYE [UNAVAILABLE] crmproxy is shutting down\r\n").await;
                    return Ok(ClientEnd::Said("proxy shutting down"));
                }
                Some(cmd) = own_rx.recv() => {
                    up.write_all(&cmd).await?;
                    up.flush().await?;
                    continue;
                }
                r = tokio::time::timeout(self.p.idle_timeout, framer.next()) => match r {
                    Err(_) => {
                        let _ = self.write_client(b"* BYE idle timeout\r\n").await;
                        return Ok(ClientEnd::Said("idle timeout"));
                    }
                    Ok(Ok(None)) => {
                        let _ = up.shutdown().await;
                        return Ok(ClientEnd::Eof);
                    }
                    Ok(r) => r?.expect("checked above"),
                }
            };
            match frame {
                Frame::Line { bytes, literal } => {
                    let start = command_start(&bytes);
                    let local = match start {
                        Some((tag, name)) if self.sasl_active().is_none() => {
                            if name.is("STARTTLS") {
                                Some(Local::StartTls(tag.to_vec()))
                            } else if name.is("COMPRESS") {
                                Some(Local::Answer(
                                    tag.to_vec(),
                                    "NO COMPRESS is not available through crmproxy",
                                ))
                            } else if (name.is("LOGIN") || name.is("AUTHENTICATE"))
                                && !self.plain_login_ok()
                            {
                                Some(Local::Answer(
                                    tag.to_vec(),
                                    "NO [PRIVACYREQUIRED] use STARTTLS first",
                                ))
                            } else {
                                None
                            }
                        }
                        _ => None,
                    };
                    match local {
                        None => {
                            self.forward_command(&mut framer, &mut up, bytes, literal)
                                .await?
                        }
                        Some(Local::Answer(tag, text)) => {
                            if literal.is_some_and(|l| !l.sync) {
                                discard_rest(&mut framer, literal).await?;
                            }
                            framer.cancel_literal();
                            self.answer(&tag, text).await?;
                        }
                        Some(Local::StartTls(tag)) => {
                            framer = self.start_tls(framer, &tag).await?;
                        }
                    }
                }
                Frame::LongLinePart(first) => {
                    let tag = first_token(&first);
                    let tag = if is_valid_tag(tag) {
                        tag.to_vec()
                    } else {
                        b"*".to_vec()
                    };
                    let lit = loop {
                        match framer.next().await? {
                            Some(Frame::LongLineEnd { literal, .. }) => break literal,
                            Some(_) => continue,
                            None => return Ok(ClientEnd::Eof),
                        }
                    };
                    if lit.is_some_and(|l| !l.sync) {
                        discard_rest(&mut framer, lit).await?;
                    }
                    framer.cancel_literal();
                    self.answer(&tag, "BAD command line too long").await?;
                }
                // Payload the client sent although its literal was refused: not a command.
                Frame::LiteralData { .. } | Frame::LongLineEnd { .. } => {}
            }
        }
    }

    fn sasl_active(&self) -> Option<Box<[u8]>> {
        lock(&self.shared).sasl.as_ref().map(|(t, _)| t.clone())
    }

    fn plain_login_ok(&self) -> bool {
        self.p.plaintext_login || lock(&self.shared).client_tls
    }

    async fn answer(&self, tag: &[u8], text: &str) -> io::Result<()> {
        let mut line = Vec::with_capacity(tag.len() + text.len() + 3);
        line.extend_from_slice(tag);
        line.push(b' ');
        line.extend_from_slice(text.as_bytes());
        line.extend_from_slice(b"\r\n");
        self.write_client(&line).await
    }

    async fn start_tls(
        &self,
        framer: Framer<ReadHalf<BoxedIo>>,
        tag: &[u8],
    ) -> io::Result<Framer<ReadHalf<BoxedIo>>> {
        let tls_active = lock(&self.shared).client_tls;
        let acceptor = match (&self.p.starttls, tls_active) {
            (Some(a), false) => a.clone(),
            (_, true) => {
                self.answer(tag, "BAD TLS is already active").await?;
                return Ok(framer);
            }
            (None, false) => {
                self.answer(tag, "BAD STARTTLS is not available").await?;
                return Ok(framer);
            }
        };
        let mut w = self.client_w.lock().await;
        let mut writer = w.take().ok_or_else(|| io::Error::other("client closed"))?;
        let mut ok = tag.to_vec();
        ok.extend_from_slice(b" OK Begin TLS negotiation now\r\n");
        writer.write_all(&ok).await?;
        writer.flush().await?;
        // Plaintext pipelined after STARTTLS is refused: it is dropped unread.
        let (reader, _pipelined) = framer.into_parts();
        let io = reader.unsplit(writer);
        let tls = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(io))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        let (r, wr) = split(Box::new(tls) as BoxedIo);
        *w = Some(wr);
        lock(&self.shared).client_tls = true;
        tracing::debug!("client upgraded to TLS");
        Ok(Framer::new(r, self.p.max_line))
    }

    /// Forward one client message: its lines and literals, waiting for the
    /// upstream's go-ahead before each synchronising literal.
    async fn forward_command(
        &self,
        framer: &mut Framer<ReadHalf<BoxedIo>>,
        up: &mut WriteHalf<BoxedIo>,
        first: Bytes,
        first_literal: Option<crate::wire::Literal>,
    ) -> io::Result<()> {
        let sasl = {
            let mut sh = lock(&self.shared);
            sh.sasl
                .as_mut()
                .map(|(tag, mech)| (tag.clone(), mech.take()))
        };
        if let Some((tag, mech)) = sasl {
            // A SASL response line: relayed, never decoded as a command, never logged.
            if let Some(id) = mech.and_then(|m| identity::from_sasl_line(m, &first)) {
                lock(&self.shared)
                    .pending
                    .insert(tag, Pending::Login(LoginAttempt::Known(id)));
            }
            if first_literal.is_none() {
                up.write_all(&first).await?;
                return up.flush().await;
            }
        }
        let tag: Box<[u8]> = first_token(&first).into();
        let cap = self.p.message_cap;
        let mut copy: Option<Vec<u8>> = Some(first.to_vec());
        let mut line = first;
        let mut literal = first_literal;
        loop {
            let Some(lit) = literal else {
                if let Some(msg) = copy.as_deref() {
                    self.command_complete(msg);
                }
                up.write_all(&line).await?;
                return up.flush().await;
            };
            if lit.sync {
                let (tx, rx) = oneshot::channel();
                lock(&self.shared).literal_wait = Some((tag.clone(), tx));
                up.write_all(&line).await?;
                up.flush().await?;
                match rx.await {
                    Ok(true) => {}
                    Ok(false) => {
                        framer.cancel_literal();
                        return Ok(());
                    }
                    Err(_) => return Err(io::Error::other("upstream ended")),
                }
            } else {
                up.write_all(&line).await?;
            }
            let mut remaining = lit.len;
            while remaining > 0 {
                match framer.next().await? {
                    Some(Frame::LiteralData {
                        bytes,
                        remaining: r,
                    }) => {
                        if let Some(c) = copy.as_mut() {
                            if c.len() + bytes.len() <= cap {
                                c.extend_from_slice(&bytes);
                            } else {
                                copy = None;
                            }
                        }
                        up.write_all(&bytes).await?;
                        remaining = r;
                    }
                    _ => return Err(io::ErrorKind::UnexpectedEof.into()),
                }
            }
            match framer.next().await? {
                Some(Frame::Line { bytes, literal: l }) => {
                    if let Some(c) = copy.as_mut() {
                        c.extend_from_slice(&bytes);
                    }
                    line = bytes;
                    literal = l;
                }
                Some(Frame::LongLinePart(_)) => {
                    // Too long to relay: end the command so the upstream rejects it.
                    let lit = loop {
                        match framer.next().await? {
                            Some(Frame::LongLineEnd { literal, .. }) => break literal,
                            Some(_) => continue,
                            None => return Err(io::ErrorKind::UnexpectedEof.into()),
                        }
                    };
                    if lit.is_some_and(|l| !l.sync) {
                        discard_rest(framer, lit).await?;
                    }
                    framer.cancel_literal();
                    up.write_all(b"\r\n").await?;
                    return up.flush().await;
                }
                _ => return Err(io::ErrorKind::UnexpectedEof.into()),
            }
        }
    }

    /// A whole client command is known: decode it (when it decodes) for the
    /// session state, identity and hook, before its last line goes upstream.
    fn command_complete(&self, msg: &[u8]) {
        let Ok((rest, cmd)) = CommandCodec::default().decode(msg) else {
            tracing::debug!(command = %identity::redact_client_message(msg, false, 120), "relayed undecoded");
            return;
        };
        if !rest.is_empty() {
            return;
        }
        tracing::debug!(command = %identity::redact_client_message(msg, false, 120), "command");
        let tag: Box<[u8]> = cmd.tag.inner().as_bytes().into();
        self.with_hook(|hook, hcx, _| hook.on_command(hcx, &cmd));
        let mut sh = lock(&self.shared);
        let pending = match &cmd.body {
            CommandBody::Login { .. } | CommandBody::Authenticate { .. } => {
                let attempt = identity::login_attempt(&cmd).unwrap_or(LoginAttempt::Opaque);
                if matches!(cmd.body, CommandBody::Authenticate { .. }) {
                    let awaiting = match attempt {
                        LoginAttempt::AwaitingResponse(m) => Some(m),
                        _ => None,
                    };
                    sh.sasl = Some((tag.clone(), awaiting));
                }
                Some(Pending::Login(attempt))
            }
            CommandBody::Select { mailbox, .. } => {
                sh.state.begin_select(mailbox_name(mailbox), false);
                Some(Pending::Select)
            }
            CommandBody::Examine { mailbox, .. } => {
                sh.state.begin_select(mailbox_name(mailbox), true);
                Some(Pending::Select)
            }
            CommandBody::Close | CommandBody::Unselect => Some(Pending::Deselect),
            _ => None,
        };
        if let Some(p) = pending {
            sh.pending.insert(tag, p);
        }
    }

    // ---------------------------------------------------------------- upstream → client

    async fn upstream_to_client(&self, mut framer: Framer<ReadHalf<BoxedIo>>) -> UpstreamEnded {
        loop {
            let first = match framer.next().await {
                Ok(Some(f)) => f,
                Ok(None) | Err(_) => return UpstreamEnded { at_boundary: true },
            };
            match self.relay_response(&mut framer, first).await {
                Ok(()) => {}
                Err(Relay::Upstream) => return UpstreamEnded { at_boundary: false },
                Err(Relay::UpstreamAtBoundary) => return UpstreamEnded { at_boundary: true },
                Err(Relay::Client) => {
                    // The client is gone: stop reading; the client side ends the session.
                    std::future::pending::<()>().await;
                }
            }
        }
    }

    async fn relay_response(
        &self,
        framer: &mut Framer<ReadHalf<BoxedIo>>,
        first: Frame,
    ) -> Result<(), Relay> {
        let (line, mut literal) = match first {
            Frame::Line { bytes, literal } => (bytes, literal),
            Frame::LongLinePart(b) => {
                return self
                    .stream_rest(framer, Vec::from(&b[..]), None, true)
                    .await
            }
            // Cannot happen at a message boundary; relay rather than drop.
            Frame::LongLineEnd { bytes, .. } | Frame::LiteralData { bytes, .. } => {
                return self.write_client(&bytes).await.map_err(|_| Relay::Client);
            }
        };
        if literal.is_none() {
            return self.response_complete(line.to_vec()).await;
        }
        let fetch_seq = fetch_seq(&line);
        let mut msg = line.to_vec();
        let mut line_start = 0;
        while let Some(lit) = literal {
            let mut lit_len = lit.len;
            let prefix = fetch_seq.and_then(|seq| {
                self.with_hook(|h, hcx, _| {
                    h.fetch_literal_prefix(hcx, seq, &msg[line_start..], lit)
                })
            });
            if let Some(p) = &prefix {
                lit_len += p.len() as u64;
                if let Some(new) = crate::wire::set_literal_len(&msg[line_start..], lit_len) {
                    msg.truncate(line_start);
                    msg.extend_from_slice(&new);
                }
            }
            if msg.len() as u64 + lit_len > self.p.message_cap as u64 {
                return self
                    .stream_rest(framer, msg, Some((lit, prefix)), false)
                    .await;
            }
            if let Some(p) = prefix {
                msg.extend_from_slice(&p);
            }
            read_literal(framer, lit.len, |b| msg.extend_from_slice(b)).await?;
            match framer.next().await {
                Ok(Some(Frame::Line { bytes, literal: l })) => {
                    line_start = msg.len();
                    msg.extend_from_slice(&bytes);
                    literal = l;
                }
                Ok(Some(Frame::LongLinePart(b))) => {
                    msg.extend_from_slice(&b);
                    return self.stream_rest(framer, msg, None, true).await;
                }
                _ => return Err(Relay::UpstreamAtBoundary),
            }
        }
        self.response_complete(msg).await
    }

    /// Stream the rest of a response that is too big to hold: `head` first,
    /// then (if given) the literal just announced, then whatever follows.
    async fn stream_rest(
        &self,
        framer: &mut Framer<ReadHalf<BoxedIo>>,
        head: Vec<u8>,
        mut literal: Option<(crate::wire::Literal, Option<Bytes>)>,
        mut in_long_line: bool,
    ) -> Result<(), Relay> {
        let mut g = self.client_w.lock().await;
        let w = g.as_mut().ok_or(Relay::Client)?;
        w.write_all(&head).await.map_err(|_| Relay::Client)?;
        loop {
            if in_long_line {
                loop {
                    match framer.next().await {
                        Ok(Some(Frame::LongLinePart(b))) => {
                            w.write_all(&b).await.map_err(|_| Relay::Client)?
                        }
                        Ok(Some(Frame::LongLineEnd { bytes, literal: l })) => {
                            w.write_all(&bytes).await.map_err(|_| Relay::Client)?;
                            literal = l.map(|l| (l, None));
                            break;
                        }
                        _ => return Err(Relay::Upstream),
                    }
                }
                in_long_line = false;
            }
            let Some((lit, prefix)) = literal.take() else {
                return w.flush().await.map_err(|_| Relay::Client);
            };
            if let Some(p) = prefix {
                w.write_all(&p).await.map_err(|_| Relay::Client)?;
            }
            let mut remaining = lit.len;
            while remaining > 0 {
                match framer.next().await {
                    Ok(Some(Frame::LiteralData {
                        bytes,
                        remaining: r,
                    })) => {
                        w.write_all(&bytes).await.map_err(|_| Relay::Client)?;
                        remaining = r;
                    }
                    _ => return Err(Relay::Upstream),
                }
            }
            match framer.next().await {
                Ok(Some(Frame::Line { bytes, literal: l })) => {
                    w.write_all(&bytes).await.map_err(|_| Relay::Client)?;
                    literal = l.map(|l| (l, None));
                }
                Ok(Some(Frame::LongLinePart(b))) => {
                    w.write_all(&b).await.map_err(|_| Relay::Client)?;
                    in_long_line = true;
                }
                _ => return Err(Relay::Upstream),
            }
        }
    }

    /// A whole (small) response: coordinate, learn, filter, hook, relay.
    async fn response_complete(&self, msg: Vec<u8>) -> Result<(), Relay> {
        let mut swallow = false;
        match response_start(&msg) {
            ResponseStart::Continuation => {
                if let Some((_, tx)) = lock(&self.shared).literal_wait.take() {
                    let _ = tx.send(true);
                }
            }
            ResponseStart::Tagged(tag) => {
                let ok = first_token(msg.get(tag.len() + 1..).unwrap_or_default())
                    .eq_ignore_ascii_case(b"OK");
                self.tagged_complete(tag, ok);
                if tag.starts_with(OWN_TAG_PREFIX.as_bytes()) {
                    swallow = true;
                    let t = String::from_utf8_lossy(tag).into_owned();
                    self.with_hook(|h, hcx, _| h.on_own_response(hcx, &t, &msg));
                }
            }
            ResponseStart::Untagged => {}
        }
        // After the tagged answer is applied: a LOGIN's OK [CAPABILITY …] drops STARTTLS.
        let mut out = self.filter_caps(&msg);
        if !matches!(response_start(&msg), ResponseStart::Continuation) {
            if let Ok((rest, resp)) = ResponseCodec::default().decode(&msg) {
                if rest.is_empty() {
                    self.learn(&resp);
                    if !swallow {
                        if let Some(new) = self.with_hook(|h, hcx, _| h.on_response(hcx, &resp)) {
                            let bytes = ResponseCodec::default().encode(&new).dump();
                            out = Some(self.filter_caps(&bytes).unwrap_or(bytes));
                        }
                    }
                }
            } else if msg.len() >= 5 && msg[..5].eq_ignore_ascii_case(b"* BYE") {
                lock(&self.shared).saw_bye = true;
            }
        }
        if swallow {
            return Ok(());
        }
        self.write_client(out.as_deref().unwrap_or(&msg))
            .await
            .map_err(|_| Relay::Client)
    }

    fn tagged_complete(&self, tag: &[u8], ok: bool) {
        let mut sh = lock(&self.shared);
        if sh.literal_wait.as_ref().is_some_and(|(t, _)| &**t == tag) {
            if let Some((_, tx)) = sh.literal_wait.take() {
                let _ = tx.send(false);
            }
        }
        if sh.sasl.as_ref().is_some_and(|(t, _)| &**t == tag) {
            sh.sasl = None;
        }
        match sh.pending.remove(tag) {
            Some(Pending::Login(attempt)) if ok => {
                sh.authenticated = true;
                if let LoginAttempt::Known(id) = attempt {
                    tracing::info!(user = %id.user, delegate = ?id.delegate, "logged in");
                    sh.identity = Some(id);
                }
            }
            Some(Pending::Select) => sh.state.finish_select(ok),
            Some(Pending::Deselect) if ok => sh.state.deselect(),
            _ => {}
        }
    }

    fn learn(&self, resp: &Response<'_>) {
        let mut sh = lock(&self.shared);
        let st = &mut sh.state;
        match resp {
            Response::Data(Data::Exists(n)) => st.on_exists(*n),
            Response::Data(Data::Expunge(seq)) => st.on_expunge(seq.get()),
            Response::Data(Data::Vanished {
                earlier,
                known_uids,
            }) => {
                let ranges: Vec<(u32, u32)> = known_uids
                    .0
                    .as_ref()
                    .iter()
                    .map(|s| match s {
                        Sequence::Single(v) => (seq_value(v), seq_value(v)),
                        Sequence::Range(a, b) => {
                            let (a, b) = (seq_value(a), seq_value(b));
                            (a.min(b), a.max(b))
                        }
                    })
                    .collect();
                st.on_vanished(&ranges, *earlier);
            }
            Response::Data(Data::Fetch { seq, items }) => {
                let mut uid = None;
                let mut mid = None;
                for item in items.as_ref() {
                    match item {
                        MessageDataItem::Uid(u) => uid = Some(u.get()),
                        MessageDataItem::Envelope(env) => {
                            if let Some(m) = env.message_id.0.as_ref() {
                                mid = Some(String::from_utf8_lossy(m.as_ref()).into_owned());
                            }
                        }
                        MessageDataItem::BodyExt { data, .. } if mid.is_none() => {
                            if let Some(d) = data.0.as_ref() {
                                mid = message_id_from_header(d.as_ref());
                            }
                        }
                        _ => {}
                    }
                }
                st.on_fetch(seq.get(), uid, mid);
            }
            Response::Status(Status::Untagged(body)) => {
                if let Some(Code::UidValidity(v)) = &body.code {
                    st.on_uid_validity(v.get());
                }
            }
            Response::Status(Status::Bye(_)) => sh.saw_bye = true,
            _ => {}
        }
    }
}

enum Local {
    StartTls(Vec<u8>),
    Answer(Vec<u8>, &'static str),
}

/// Why relaying a response stopped.
enum Relay {
    /// The upstream ended inside a message.
    Upstream,
    /// The upstream ended, nothing partial was sent to the client.
    UpstreamAtBoundary,
    /// Writing to the client failed.
    Client,
}

fn seq_value(v: &SeqOrUid) -> u32 {
    match v {
        SeqOrUid::Value(n) => n.get(),
        SeqOrUid::Asterisk => u32::MAX,
    }
}

fn mailbox_name(m: &ImapMailbox<'_>) -> String {
    match m {
        ImapMailbox::Inbox => "INBOX".into(),
        ImapMailbox::Other(o) => String::from_utf8_lossy(o.as_ref()).into_owned(),
    }
}

/// `* <n> FETCH …` → n.
fn fetch_seq(line: &[u8]) -> Option<u32> {
    let rest = line.strip_prefix(b"* ")?;
    let n = first_token(rest);
    let after = rest.get(n.len() + 1..)?;
    if !first_token(after).eq_ignore_ascii_case(b"FETCH") {
        return None;
    }
    std::str::from_utf8(n).ok()?.parse().ok()
}

async fn read_literal(
    framer: &mut Framer<ReadHalf<BoxedIo>>,
    len: u64,
    mut sink: impl FnMut(&[u8]),
) -> Result<(), Relay> {
    let mut remaining = len;
    while remaining > 0 {
        match framer.next().await {
            Ok(Some(Frame::LiteralData {
                bytes,
                remaining: r,
            })) => {
                sink(&bytes);
                remaining = r;
            }
            _ => return Err(Relay::UpstreamAtBoundary),
        }
    }
    Ok(())
}

/// Skip the rest of a refused client message whose last line announced `literal`
/// (non-synchronising literals keep coming; a sync one stops the client).
async fn discard_rest(
    framer: &mut Framer<ReadHalf<BoxedIo>>,
    mut literal: Option<crate::wire::Literal>,
) -> io::Result<()> {
    while let Some(lit) = literal.filter(|l| !l.sync) {
        let mut remaining = lit.len;
        while remaining > 0 {
            match framer.next().await? {
                Some(Frame::LiteralData { remaining: r, .. }) => remaining = r,
                _ => return Err(io::ErrorKind::UnexpectedEof.into()),
            }
        }
        literal = loop {
            match framer.next().await? {
                Some(Frame::Line { literal, .. }) | Some(Frame::LongLineEnd { literal, .. }) => {
                    break literal
                }
                Some(_) => continue,
                None => return Err(io::ErrorKind::UnexpectedEof.into()),
            }
        };
    }
    Ok(())
}
