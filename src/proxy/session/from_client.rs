//! Client → upstream: commands relayed as they arrive, sync literals held until
//! the upstream's go-ahead, STARTTLS/COMPRESS/over-long lines answered locally.

use super::*;

impl Ctx {
    // ---------------------------------------------------------------- client → upstream

    pub(super) async fn client_to_upstream(
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
                Some(cmd) = own_rx.recv(), if self.own_commands_allowed() => {
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
                            if let Some(refusal) = self.claim_tag(tag) {
                                Some(Local::TagRefused(tag.to_vec(), refusal))
                            } else if name.is("STARTTLS") {
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
                        Some(Local::TagRefused(tag, text)) => {
                            // The command holding the tag keeps it.
                            if literal.is_some_and(|l| !l.sync) {
                                discard_rest(&mut framer, literal).await?;
                            }
                            framer.cancel_literal();
                            self.write_answer(&tag, text).await?;
                        }
                        Some(Local::StartTls(tag)) => {
                            framer = self.start_tls(framer, &tag).await?;
                        }
                    }
                }
                Frame::LongLinePart(_) if self.sasl_active().is_some() => {
                    // A SASL response too long to relay: cancel the exchange
                    // upstream (RFC 9051 `*`), whose tagged answer the client gets.
                    loop {
                        match self.next_in_message(&mut framer).await? {
                            Some(Frame::LongLineEnd { .. }) => break,
                            Some(_) => continue,
                            None => return Ok(ClientEnd::Eof),
                        }
                    }
                    framer.cancel_literal();
                    up.write_all(b"*\r\n").await?;
                    up.flush().await?;
                }
                Frame::LongLinePart(first) => {
                    let tag = first_token(&first);
                    let tag = if is_valid_tag(tag) {
                        tag.to_vec()
                    } else {
                        b"*".to_vec()
                    };
                    let lit = loop {
                        match self.next_in_message(&mut framer).await? {
                            Some(Frame::LongLineEnd { literal, .. }) => break literal,
                            Some(_) => continue,
                            None => return Ok(ClientEnd::Eof),
                        }
                    };
                    if lit.is_some_and(|l| !l.sync) {
                        discard_rest(&mut framer, lit).await?;
                    }
                    framer.cancel_literal();
                    // Never sent up, never claimed its tag: the tag stays as it was.
                    self.write_answer(&tag, "BAD command line too long").await?;
                }
                // Payload the client sent although its literal was refused: not a command.
                Frame::LiteralData { .. } | Frame::LongLineEnd { .. } => {}
            }
        }
    }

    /// Note `tag` as in flight, or say why the command may not go up: its tag is
    /// in flight already (the server would answer both under one tag, and the
    /// proxy could not tell which answer is whose), or too many commands are.
    fn claim_tag(&self, tag: &[u8]) -> Option<&'static str> {
        if !is_valid_tag(tag) {
            return None;
        }
        let mut sh = lock(&self.shared);
        if sh.in_flight.contains(tag) {
            return Some("BAD tag already in use by a command in progress");
        }
        if sh.in_flight.len() >= MAX_COMMANDS_IN_FLIGHT {
            return Some("BAD too many commands in progress");
        }
        sh.in_flight.insert(tag.into());
        None
    }

    /// The hook's own commands go upstream only between client commands, never
    /// inside IDLE or an AUTHENTICATE exchange.
    fn own_commands_allowed(&self) -> bool {
        let sh = lock(&self.shared);
        sh.idle.is_none() && sh.sasl.is_none() && sh.literal_wait.is_none()
    }

    /// The next frame inside a client message: a client that stalls there for
    /// the idle timeout ends its session (nothing else can proceed meanwhile).
    async fn next_in_message(
        &self,
        framer: &mut Framer<ReadHalf<BoxedIo>>,
    ) -> io::Result<Option<Frame>> {
        tokio::time::timeout(self.p.idle_timeout, framer.next())
            .await
            .map_err(|_| {
                io::Error::new(io::ErrorKind::TimedOut, "client stalled inside a command")
            })?
    }

    fn sasl_active(&self) -> Option<Box<[u8]>> {
        lock(&self.shared).sasl.as_ref().map(|(t, _)| t.clone())
    }

    fn plain_login_ok(&self) -> bool {
        self.p.plaintext_login || lock(&self.shared).client_tls
    }

    /// Answer a command the proxy took on itself (it never went upstream): its
    /// tag is free again.
    async fn answer(&self, tag: &[u8], text: &str) -> io::Result<()> {
        lock(&self.shared).in_flight.remove(tag);
        self.write_answer(tag, text).await
    }

    async fn write_answer(&self, tag: &[u8], text: &str) -> io::Result<()> {
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
        let mut writer = w
            .take()
            .ok_or_else(|| io::Error::other("client closed"))?
            .into_inner()
            .await?;
        lock(&self.shared).in_flight.remove(tag);
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
        *w = Some(ClientWriter::new(wr));
        lock(&self.shared).client_tls = true;
        tracing::debug!("client upgraded to TLS");
        Ok(Framer::new(r, self.p.max_line))
    }

    /// Answer a command with literals `NO [ALERT] text` without sending it upstream:
    /// a synchronising literal is never asked for; non-synchronising ones (the
    /// client sends them unasked) are read and dropped up to the command's end.
    async fn refuse_command(
        &self,
        framer: &mut Framer<ReadHalf<BoxedIo>>,
        tag: &[u8],
        first: crate::wire::Literal,
        text: &str,
    ) -> io::Result<()> {
        let text: String = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let mut literal = Some(first);
        while let Some(lit) = literal.take() {
            if lit.sync {
                framer.cancel_literal();
                break;
            }
            let mut remaining = lit.len;
            while remaining > 0 {
                match self.next_in_message(framer).await? {
                    Some(Frame::LiteralData { remaining: r, .. }) => remaining = r,
                    _ => return Err(io::Error::other("client ended inside a literal")),
                }
            }
            // What follows the literal: the command's end, or another literal.
            loop {
                match self.next_in_message(framer).await? {
                    Some(Frame::Line { literal: l, .. }) => {
                        literal = l;
                        break;
                    }
                    Some(Frame::LongLinePart(_)) => continue,
                    Some(Frame::LongLineEnd { literal: l, .. }) => {
                        literal = l;
                        break;
                    }
                    _ => return Err(io::Error::other("client ended inside a command")),
                }
            }
        }
        self.answer(tag, &format!("NO [ALERT] {text}")).await
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
                let mut sh = lock(&self.shared);
                if id.mechanism == Mechanism::Plain {
                    let text = first.strip_suffix(b"\n").unwrap_or(&first);
                    let text = text.strip_suffix(b"\r").unwrap_or(text);
                    sh.credentials.insert(
                        tag.clone(),
                        Credential::SaslPlain {
                            response_base64: text.to_vec(),
                        },
                    );
                }
                sh.pending
                    .insert(tag, Pending::Login(LoginAttempt::Known(id)));
            }
            if first_literal.is_none() {
                up.write_all(&first).await?;
                return up.flush().await;
            }
        }
        let tag: Box<[u8]> = first_token(&first).into();
        if let Some(lit) = first_literal {
            if let Some(text) = self.with_hook(|h, hcx| h.refuse_append(hcx, &first)) {
                return self.refuse_command(framer, &tag, lit, &text).await;
            }
        }
        let first_line = first.clone();
        let cap = self.p.message_cap;
        let mut copy: Option<Vec<u8>> = Some(first.to_vec());
        let mut ahead = match first_literal {
            Some(lit) => self.append_read_ahead(framer, &first, lit).await?,
            None => None,
        };
        let mut line = first;
        let mut literal = first_literal;
        loop {
            let Some(lit) = literal else {
                let mut replaced = None;
                if let Some(msg) = copy.as_deref() {
                    let (before, rewrite) = self.command_complete(msg);
                    // Only a one-line command can still be preceded or replaced.
                    if msg.len() == line.len() {
                        for c in before {
                            up.write_all(&c).await?;
                        }
                        replaced = rewrite;
                    }
                } else {
                    self.with_hook(|hook, hcx| hook.on_streamed_command(hcx, &first_line));
                }
                up.write_all(replaced.as_deref().unwrap_or(&line)).await?;
                return up.flush().await;
            };
            let mut remaining = lit.len;
            if let Some(a) = ahead.take() {
                // The command goes up now, with the hook's prefix before the
                // message bytes read ahead; the rest streams as usual.
                up.write_all(&a.line).await?;
                up.write_all(&a.prefix).await?;
                up.write_all(&a.head).await?;
                if let Some(c) = copy.as_mut() {
                    c.extend_from_slice(&a.head);
                }
                remaining = a.remaining;
            } else if lit.sync {
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
            while remaining > 0 {
                match self.next_in_message(framer).await? {
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
            match self.next_in_message(framer).await? {
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
                        match self.next_in_message(framer).await? {
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

    /// An APPEND of a session whose hook wants to see the message first: read
    /// its start (through the end of the header, at most [`APPEND_HEAD_MAX`]
    /// bytes more than one chunk) before the command goes up, and ask the hook
    /// for a prefix. A synchronising literal gets the proxy's own `+` and goes
    /// up non-synchronising, which needs an upstream with LITERAL+ (and within
    /// its APPENDLIMIT); otherwise the APPEND is relayed as it is.
    async fn append_read_ahead(
        &self,
        framer: &mut Framer<ReadHalf<BoxedIo>>,
        first: &Bytes,
        lit: crate::wire::Literal,
    ) -> io::Result<Option<ReadAhead>> {
        if !command_start(first).is_some_and(|(_, name)| name.is("APPEND")) {
            return Ok(None);
        }
        let (literals, limit) = {
            let sh = lock(&self.shared);
            (sh.upstream_literals, sh.upstream_append_limit)
        };
        if lit.sync && (literals != NonSyncLiterals::Any || limit.is_some_and(|l| lit.len > l)) {
            return Ok(None);
        }
        let wanted = self
            .with_hook(|hook, hcx| hcx.identity.is_some() && hook.wants_append_head(hcx, first));
        if !wanted {
            return Ok(None);
        }
        if lit.sync {
            self.write_client(b"+ Ready for literal data\r\n").await?;
        }
        let mut head = Vec::new();
        let mut remaining = lit.len;
        while remaining > 0
            && head.len() < APPEND_HEAD_MAX
            && crate::message::headers::header_end(&head).is_none()
        {
            match self.next_in_message(framer).await? {
                Some(Frame::LiteralData {
                    bytes,
                    remaining: r,
                }) => {
                    head.extend_from_slice(&bytes);
                    remaining = r;
                }
                _ => return Err(io::ErrorKind::UnexpectedEof.into()),
            }
        }
        // How many bytes the literal may grow: LITERAL- allows 4096 in all,
        // APPENDLIMIT caps the message, and the count must stay a u64 (the client
        // chose it: `{18446744073709551615+}` leaves no room at all).
        let room = match literals {
            NonSyncLiterals::UpTo4096 => 4096u64.saturating_sub(lit.len),
            _ => u64::MAX,
        }
        .min(limit.map_or(u64::MAX, |l| l.saturating_sub(lit.len)))
        .min(u64::MAX - lit.len);
        let prefix = self
            .with_hook(|hook, hcx| hook.append_prefix(hcx, first, &head, room))
            .filter(|p| p.len() as u64 <= room)
            .unwrap_or_default();
        let total = lit
            .len
            .checked_add(prefix.len() as u64)
            .ok_or_else(|| io::Error::other("literal count overflows"))?;
        let line = if lit.sync || !prefix.is_empty() {
            with_literal_len(first, total)
                .ok_or_else(|| io::Error::other("literal announcement"))?
        } else {
            first.to_vec()
        };
        Ok(Some(ReadAhead {
            line,
            prefix,
            head,
            remaining,
        }))
    }

    /// A whole client command is known: decode it (when it decodes) for the
    /// session state, identity and hook, before its last line goes upstream.
    /// Returns the hook's own commands (tagged, CRLF-ended) to send before it,
    /// and the hook's replacement of it.
    fn command_complete(&self, msg: &[u8]) -> (Vec<Bytes>, Option<Vec<u8>>) {
        let Ok((rest, cmd)) = CommandCodec::default().decode(msg) else {
            tracing::debug!(command = %identity::redact_client_message(msg, false, 120), "relayed undecoded");
            return (Vec::new(), None);
        };
        if !rest.is_empty() {
            return (Vec::new(), None);
        }
        tracing::debug!(command = %identity::redact_client_message(msg, false, 120), "command");
        let tag: Box<[u8]> = cmd.tag.inner().as_bytes().into();
        let (before, rewrite) = self.with_hook(|hook, hcx| {
            hook.on_command(hcx, &cmd);
            let before: Vec<Bytes> = hook
                .commands_before(hcx, &cmd)
                .iter()
                .filter_map(|c| self.handle.tagged(c))
                .collect();
            (before, hook.rewrite_command(hcx, &cmd))
        });
        let mut sh = lock(&self.shared);
        if let Some(c) = credential_of(&cmd) {
            sh.credentials.insert(tag.clone(), c);
        }
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
            CommandBody::Idle => {
                sh.idle = Some(tag.clone());
                None
            }
            _ => None,
        };
        if let Some(p) = pending {
            sh.pending.insert(tag, p);
        }
        (before, rewrite)
    }
}

/// The replayable credential of a LOGIN or AUTHENTICATE PLAIN with initial response.
fn credential_of(cmd: &imap_codec::imap_types::command::Command<'_>) -> Option<Credential> {
    use base64::Engine;
    use imap_codec::imap_types::auth::AuthMechanism;
    match &cmd.body {
        CommandBody::Login { username, password } => Some(Credential::Login {
            user: username.as_ref().to_vec(),
            password: password.declassify().as_ref().to_vec(),
        }),
        CommandBody::Authenticate {
            mechanism: AuthMechanism::Plain,
            initial_response: Some(ir),
        } => Some(Credential::SaslPlain {
            response_base64: base64::engine::general_purpose::STANDARD
                .encode(ir.declassify())
                .into_bytes(),
        }),
        _ => None,
    }
}

/// The most of an APPENDed message read ahead beyond the chunk that holds the
/// end of its header.
const APPEND_HEAD_MAX: usize = 64 * 1024;

/// An APPEND's start, read before its command went up.
struct ReadAhead {
    /// The first line to send (its literal count raised, non-synchronising).
    line: Vec<u8>,
    /// The hook's bytes, sent before the message.
    prefix: Bytes,
    /// The message bytes read so far.
    head: Vec<u8>,
    /// Message bytes still to come.
    remaining: u64,
}

enum Local {
    StartTls(Vec<u8>),
    /// Answered by the proxy, never sent up.
    Answer(Vec<u8>, &'static str),
    /// A tag in flight already (or too many commands in flight): refused, and the
    /// command that holds the tag keeps it.
    TagRefused(Vec<u8>, &'static str),
}

fn mailbox_name(m: &ImapMailbox<'_>) -> String {
    match m {
        ImapMailbox::Inbox => "INBOX".into(),
        ImapMailbox::Other(o) => String::from_utf8_lossy(o.as_ref()).into_owned(),
    }
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
