//! Upstream → client: small responses held whole (decoded, learned from,
//! filtered, offered to the hook), big ones streamed; upstream loss detection.

use super::*;
use imap_codec::imap_types::flag::FlagPerm;

impl Ctx {
    // ---------------------------------------------------------------- upstream → client

    pub(super) async fn upstream_to_client(
        &self,
        mut framer: Framer<ReadHalf<BoxedIo>>,
    ) -> UpstreamEnd {
        loop {
            if self.flush_before_read(framer.frame_ready()).await.is_err() {
                return UpstreamEnd::ClientGone;
            }
            let first = match framer.next().await {
                Ok(Some(f)) => f,
                Ok(None) | Err(_) => return UpstreamEnd::Closed { at_boundary: true },
            };
            match self.relay_response(&mut framer, first).await {
                Ok(()) => {}
                Err(Relay::Upstream) => return UpstreamEnd::Closed { at_boundary: false },
                Err(Relay::UpstreamAtBoundary) => return UpstreamEnd::Closed { at_boundary: true },
                Err(Relay::Client) => return UpstreamEnd::ClientGone,
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
                // Too long to parse, but its start still says what it answers.
                match response_start(&b) {
                    ResponseStart::Continuation => self.continuation_seen(),
                    ResponseStart::Tagged(tag) => {
                        let rest = b.get(tag.len() + 1..).unwrap_or_default();
                        let _ = self
                            .tagged_complete(tag, first_token(rest).eq_ignore_ascii_case(b"OK"));
                    }
                    ResponseStart::Untagged => {}
                }
                return self
                    .stream_rest(framer, Vec::from(&b[..]), None, true)
                    .await;
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
        let mut first_line = true;
        while let Some(lit) = literal {
            // Message bytes are never edited (SPEC section 3): a literal goes to the
            // client as the server sent it, held whole only while the response fits
            // under the cap (to be decoded), else streamed.
            let held = (msg.len() as u64).checked_add(lit.len);
            if held.is_none_or(|n| n > self.p.message_cap as u64) {
                // Too big to decode whole: still learn the UID from the first line.
                if let (Some(seq), Some(uid)) = (fetch_seq, crate::wire::fetch_uid(&msg)) {
                    lock(&self.shared).state.on_fetch(seq, Some(uid), None);
                }
                // Items before the first literal (FLAGS) as the hook shows them;
                // later lines stream as they come.
                if let Some(seq) = fetch_seq.filter(|_| first_line) {
                    if let Some(new) =
                        self.with_hook(|h, hcx| h.streamed_fetch_line(hcx, seq, &msg))
                    {
                        msg = new;
                    }
                }
                return self.stream_rest(framer, msg, Some(lit), false).await;
            }
            self.flush_before_read(framer.frame_ready()).await?;
            read_literal(framer, lit.len, |b| msg.extend_from_slice(b)).await?;
            first_line = false;
            self.flush_before_read(framer.frame_ready()).await?;
            match framer.next().await {
                Ok(Some(Frame::Line { bytes, literal: l })) => {
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
        mut literal: Option<crate::wire::Literal>,
        mut in_long_line: bool,
    ) -> Result<(), Relay> {
        let mut g = self.client_w.lock().await;
        let w = g.as_mut().ok_or(Relay::Client)?;
        w.queue(&head).await.map_err(|_| Relay::Client)?;
        loop {
            if in_long_line {
                loop {
                    flush_before_read(w, framer.frame_ready()).await?;
                    match framer.next().await {
                        Ok(Some(Frame::LongLinePart(b))) => {
                            w.queue(&b).await.map_err(|_| Relay::Client)?
                        }
                        Ok(Some(Frame::LongLineEnd { bytes, literal: l })) => {
                            w.queue(&bytes).await.map_err(|_| Relay::Client)?;
                            literal = l;
                            break;
                        }
                        _ => return Err(Relay::Upstream),
                    }
                }
                in_long_line = false;
            }
            let Some(lit) = literal.take() else {
                return Ok(());
            };
            let mut remaining = lit.len;
            while remaining > 0 {
                flush_before_read(w, framer.frame_ready()).await?;
                match framer.next().await {
                    Ok(Some(Frame::LiteralData {
                        bytes,
                        remaining: r,
                    })) => {
                        w.queue(&bytes).await.map_err(|_| Relay::Client)?;
                        remaining = r;
                    }
                    _ => return Err(Relay::Upstream),
                }
            }
            flush_before_read(w, framer.frame_ready()).await?;
            match framer.next().await {
                Ok(Some(Frame::Line { bytes, literal: l })) => {
                    w.queue(&bytes).await.map_err(|_| Relay::Client)?;
                    literal = l;
                }
                Ok(Some(Frame::LongLinePart(b))) => {
                    w.queue(&b).await.map_err(|_| Relay::Client)?;
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
            ResponseStart::Continuation => self.continuation_seen(),
            ResponseStart::Tagged(tag) => {
                let ok = first_token(msg.get(tag.len() + 1..).unwrap_or_default())
                    .eq_ignore_ascii_case(b"OK");
                if let Some(credential) = self.tagged_complete(tag, ok) {
                    self.with_hook(|h, hcx| h.on_login(hcx, credential.as_ref()));
                }
                if tag.starts_with(OWN_TAG_PREFIX.as_bytes()) {
                    swallow = true;
                    let t = String::from_utf8_lossy(tag).into_owned();
                    self.with_hook(|h, hcx| h.on_own_response(hcx, &t, &msg));
                }
            }
            ResponseStart::Untagged => {}
        }
        // After the tagged answer is applied: a LOGIN's OK [CAPABILITY …] drops STARTTLS.
        let mut out = self.filter_caps(&msg);
        let fetch_unread =
            fetch_seq(&msg).filter(|_| !self.with_hook(|h, hcx| h.reads_fetch_responses(hcx)));
        if let Some(seq) = fetch_unread {
            // Nobody reads it: relay as is, keep only the seq → UID map current.
            lock(&self.shared)
                .state
                .on_fetch(seq, crate::wire::fetch_uid(&msg), None);
        } else if !matches!(response_start(&msg), ResponseStart::Continuation) {
            if let Ok((rest, resp)) = ResponseCodec::default().decode(&msg) {
                if rest.is_empty() {
                    self.learn(&resp);
                    if !swallow {
                        let new = self
                            .with_hook(|h, hcx| h.on_response(hcx, &resp))
                            .filter(|new| keeps_message_data(&resp, new));
                        if let Some(new) = new {
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
        if matches!(response_start(&msg), ResponseStart::Tagged(_)) {
            let notices = self.with_hook(|h, hcx| h.notices(hcx));
            if !notices.is_empty() {
                let mut with = Vec::new();
                for text in notices {
                    let line: String = text
                        .chars()
                        .map(|c| if c.is_control() { ' ' } else { c })
                        .collect();
                    with.extend_from_slice(format!("* NO [ALERT] {line}\r\n").as_bytes());
                }
                with.extend_from_slice(out.as_deref().unwrap_or(&msg));
                out = Some(with);
            }
        }
        self.queue_client(out.as_deref().unwrap_or(&msg))
            .await
            .map_err(|_| Relay::Client)
    }

    /// [`flush_before_read`] for when the client writer is not held.
    async fn flush_before_read(&self, frame_ready: bool) -> Result<(), Relay> {
        if frame_ready {
            return Ok(());
        }
        self.flush_client().await.map_err(|_| Relay::Client)
    }

    /// A `+` from the upstream: a waiting sync literal may go.
    fn continuation_seen(&self) {
        if let Some((_, tx)) = lock(&self.shared).literal_wait.take() {
            let _ = tx.send(true);
        }
    }

    /// Apply a tagged answer. `Some` when it completed a login: the credential
    /// to give [`Hook::on_login`] (called by the caller, without the lock).
    fn tagged_complete(&self, tag: &[u8], ok: bool) -> Option<Option<Credential>> {
        let mut sh = lock(&self.shared);
        sh.in_flight.remove(tag);
        let credential = sh.credentials.remove(tag);
        if sh.idle.as_ref().is_some_and(|t| &**t == tag) {
            sh.idle = None;
        }
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
                    return Some(credential);
                }
                return Some(None);
            }
            Some(Pending::Select) => sh.state.finish_select(ok),
            Some(Pending::Deselect) if ok => sh.state.deselect(),
            _ => {}
        }
        None
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
            Response::Status(Status::Untagged(body)) => match &body.code {
                Some(Code::UidValidity(v)) => st.on_uid_validity(v.get()),
                Some(Code::PermanentFlags(flags)) => {
                    st.on_permanent_flags(flags.iter().any(|f| matches!(f, FlagPerm::Asterisk)))
                }
                _ => {}
            },
            Response::Status(Status::Bye(_)) => sh.saw_bye = true,
            _ => {}
        }
    }
}

/// Whether a hook's replacement of `original` keeps every FETCH item but FLAGS
/// as the server sent it: a message's bytes, sizes and structure never change
/// under its UID (SPEC section 3), whatever a hook returns. A replacement that
/// would change them is dropped (and the original relayed).
fn keeps_message_data(original: &Response<'_>, new: &Response<'_>) -> bool {
    let (
        Response::Data(Data::Fetch { seq, items }),
        Response::Data(Data::Fetch {
            seq: new_seq,
            items: new_items,
        }),
    ) = (original, new)
    else {
        // Not a FETCH response: only a FETCH response carries message data.
        return !matches!(original, Response::Data(Data::Fetch { .. }))
            && !matches!(new, Response::Data(Data::Fetch { .. }));
    };
    let not_flags = |i: &&MessageDataItem<'_>| !matches!(i, MessageDataItem::Flags(_));
    let same = seq == new_seq
        && items
            .as_ref()
            .iter()
            .filter(not_flags)
            .eq(new_items.as_ref().iter().filter(not_flags));
    if !same {
        tracing::error!("a hook tried to change a message's data in a FETCH response: relayed as the server sent it");
    }
    same
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

/// Flush what is queued for the client unless the next frame is already here:
/// nothing waits in the queue while the relay waits on the upstream.
/// `frame_ready`: [`Framer::frame_ready`] of the upstream framer.
async fn flush_before_read(w: &mut ClientWriter, frame_ready: bool) -> Result<(), Relay> {
    if frame_ready {
        return Ok(());
    }
    w.flush().await.map_err(|_| Relay::Client)
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
