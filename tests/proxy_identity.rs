//! Identity, session state and the hook, seen through a recording hook while
//! a scripted upstream answers.

mod proxy_support;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use crmproxy::proxy::{Hook, HookContext, Identity};
use imap_codec::imap_types::command::Command;
use imap_codec::imap_types::core::{NString, Vec1};
use imap_codec::imap_types::fetch::MessageDataItem;
use imap_codec::imap_types::response::{Data, Response};
use imap_codec::imap_types::IntoStatic;
use proxy_support::*;
use std::sync::{Arc, Mutex};

/// What the hook saw at a response.
#[derive(Debug, Clone, Default)]
struct Seen {
    identity: Option<Identity>,
    selected: Option<(String, Option<u32>, u32)>,
    uid_of_seq: Vec<Option<u32>>,
    message_id_of_uid_7: Option<String>,
}

#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<Seen>>,
    commands: Mutex<Vec<String>>,
    /// Text the hook tries to put before every BODY[] it sees (it must not stick).
    prefix: Option<&'static str>,
    reads_fetch: bool,
}

impl Recorder {
    fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap_or_default()
    }
}

impl Hook for Recorder {
    fn on_command(&self, _cx: &HookContext<'_>, command: &Command<'_>) {
        self.commands
            .lock()
            .unwrap()
            .push(command.body.name().to_string());
    }

    fn reads_fetch_responses(&self, _cx: &HookContext<'_>) -> bool {
        self.reads_fetch
    }

    fn on_response(&self, cx: &HookContext<'_>, r: &Response<'_>) -> Option<Response<'static>> {
        let sel = cx.state.selected();
        self.seen.lock().unwrap().push(Seen {
            identity: cx.identity.cloned(),
            selected: sel.map(|m| (m.name.clone(), m.uid_validity, m.exists)),
            uid_of_seq: (1..=4).map(|s| sel.and_then(|m| m.uid(s))).collect(),
            message_id_of_uid_7: sel.and_then(|m| m.message_id(7)).map(String::from),
        });
        let prefix = self.prefix?;
        // A hook that tries to edit a message: prefix every BODY[] it sees.
        let Response::Data(Data::Fetch { seq, items }) = r else {
            return None;
        };
        let items: Vec<MessageDataItem<'static>> = items
            .as_ref()
            .iter()
            .map(|i| match i {
                MessageDataItem::BodyExt {
                    section,
                    origin,
                    data,
                } => {
                    let old = data
                        .0
                        .as_ref()
                        .map(|d| d.as_ref().to_vec())
                        .unwrap_or_default();
                    MessageDataItem::BodyExt {
                        section: section.clone().map(IntoStatic::into_static),
                        origin: *origin,
                        data: NString::try_from([prefix.as_bytes(), &old].concat()).unwrap(),
                    }
                }
                other => other.clone().into_static(),
            })
            .collect();
        Some(Response::Data(Data::Fetch {
            seq: *seq,
            items: Vec1::try_from(items).ok()?,
        }))
    }
}

async fn with_recorder(prefix: Option<&'static str>) -> (Setup, Arc<Recorder>) {
    let rec = Arc::new(Recorder {
        prefix,
        reads_fetch: true,
        ..Default::default()
    });
    let s = setup(Some(rec.clone() as Arc<dyn Hook>)).await;
    (s, rec)
}

/// Send a command, let the upstream answer, check the client got the answer.
async fn exchange(s: &mut Setup, cmd: &str, answer: &str) {
    s.client.send(cmd).await;
    for _ in 0..cmd.matches("\r\n").count() {
        s.server.line().await;
    }
    s.server.send(answer).await;
    for _ in 0..answer.matches("\r\n").count() {
        s.client.line().await;
    }
}

fn user(u: &str, delegate: Option<&str>) -> Option<(String, Option<String>)> {
    Some((u.to_string(), delegate.map(String::from)))
}

fn who(seen: &Seen) -> Option<(String, Option<String>)> {
    seen.identity
        .as_ref()
        .map(|i| (i.user.clone(), i.delegate.clone()))
}

#[tokio::test]
async fn login_sets_identity_only_on_ok() {
    let (mut s, rec) = with_recorder(None).await;
    exchange(
        &mut s,
        "a LOGIN alice wrong\r\n",
        "a NO [AUTHENTICATIONFAILED] no\r\n",
    )
    .await;
    exchange(&mut s, "b NOOP\r\n", "b OK\r\n").await;
    assert_eq!(who(&rec.last()), None);
    exchange(
        &mut s,
        "c LOGIN \"alice\" \"right\"\r\n",
        "c OK welcome\r\n",
    )
    .await;
    exchange(&mut s, "d NOOP\r\n", "d OK\r\n").await;
    assert_eq!(who(&rec.last()), user("alice", None));
    assert!(rec.commands.lock().unwrap().contains(&"LOGIN".to_string()));
}

#[tokio::test]
async fn login_with_literals() {
    let (mut s, rec) = with_recorder(None).await;
    s.client.send("a LOGIN {5}\r\n").await;
    assert_eq!(s.server.line().await, "a LOGIN {5}\r\n");
    s.server.send("+ ok\r\n").await;
    assert_eq!(s.client.line().await, "+ ok\r\n");
    s.client.send("carol {2+}\r\npw\r\n").await;
    assert_eq!(s.server.bytes(5).await, b"carol");
    assert_eq!(s.server.line().await, " {2+}\r\n");
    assert_eq!(s.server.bytes(2).await, b"pw");
    assert_eq!(s.server.line().await, "\r\n");
    s.server.send("a OK in\r\n").await;
    s.client.line().await;
    exchange(&mut s, "b NOOP\r\n", "b OK\r\n").await;
    assert_eq!(who(&rec.last()), user("carol", None));
}

#[tokio::test]
async fn authenticate_plain_without_initial_response_and_with_authzid() {
    let (mut s, rec) = with_recorder(None).await;
    s.client.send("a AUTHENTICATE PLAIN\r\n").await;
    assert_eq!(s.server.line().await, "a AUTHENTICATE PLAIN\r\n");
    s.server.send("+ \r\n").await;
    assert_eq!(s.client.line().await, "+ \r\n");
    let resp = format!("{}\r\n", B64.encode(b"boss@x\0assistant@x\0secret"));
    s.client.send(&resp).await;
    assert_eq!(s.server.line().await, resp);
    s.server.send("a OK authenticated\r\n").await;
    assert_eq!(s.client.line().await, "a OK authenticated\r\n");
    exchange(&mut s, "b NOOP\r\n", "b OK\r\n").await;
    assert_eq!(who(&rec.last()), user("boss@x", Some("assistant@x")));
}

#[tokio::test]
async fn authenticate_plain_sasl_ir_and_oauth() {
    for (line, expected) in [
        (
            format!("a AUTHENTICATE PLAIN {}\r\n", B64.encode(b"\0dave\0pw")),
            "dave",
        ),
        (
            format!(
                "a AUTHENTICATE XOAUTH2 {}\r\n",
                B64.encode(b"user=erin@x\x01auth=Bearer tok\x01\x01")
            ),
            "erin@x",
        ),
        (
            format!(
                "a AUTHENTICATE OAUTHBEARER {}\r\n",
                B64.encode(b"n,a=frank@x,\x01auth=Bearer tok\x01\x01")
            ),
            "frank@x",
        ),
    ] {
        let (mut s, rec) = with_recorder(None).await;
        exchange(&mut s, &line, "a NO denied\r\n").await;
        exchange(&mut s, "b NOOP\r\n", "b OK\r\n").await;
        assert_eq!(who(&rec.last()), None, "identity after NO");
        exchange(&mut s, &line.replacen("a ", "c ", 1), "c OK yes\r\n").await;
        exchange(&mut s, "d NOOP\r\n", "d OK\r\n").await;
        assert_eq!(who(&rec.last()), user(expected, None));
    }
}

#[tokio::test]
async fn state_follows_select_fetch_expunge_vanished_close() {
    let (mut s, rec) = with_recorder(None).await;
    exchange(
        &mut s,
        "s SELECT INBOX\r\n",
        "* 3 EXISTS\r\n* OK [UIDVALIDITY 42] v\r\ns OK [READ-WRITE] done\r\n",
    )
    .await;
    exchange(
        &mut s,
        "f FETCH 1:3 (UID ENVELOPE)\r\n",
        "* 1 FETCH (UID 5)\r\n\
         * 2 FETCH (UID 7 ENVELOPE (NIL \"s\" NIL NIL NIL NIL NIL NIL NIL \"<seven@x>\"))\r\n\
         * 3 FETCH (UID 9)\r\nf OK\r\n",
    )
    .await;
    exchange(&mut s, "n NOOP\r\n", "n OK\r\n").await;
    let seen = rec.last();
    assert_eq!(seen.selected, Some(("INBOX".into(), Some(42), 3)));
    assert_eq!(seen.uid_of_seq, vec![Some(5), Some(7), Some(9), None]);
    assert_eq!(seen.message_id_of_uid_7.as_deref(), Some("<seven@x>"));
    exchange(&mut s, "e EXPUNGE\r\n", "* 1 EXPUNGE\r\ne OK\r\n").await;
    exchange(&mut s, "n NOOP\r\n", "n OK\r\n").await;
    assert_eq!(rec.last().uid_of_seq, vec![Some(7), Some(9), None, None]);
    exchange(&mut s, "n NOOP\r\n", "* VANISHED 9\r\nn OK\r\n").await;
    exchange(&mut s, "n NOOP\r\n", "n OK\r\n").await;
    let seen = rec.last();
    assert_eq!(seen.uid_of_seq, vec![Some(7), None, None, None]);
    assert_eq!(seen.selected.unwrap().2, 1);
    // Message-ID from a BODY[HEADER.FIELDS (MESSAGE-ID)] literal.
    exchange(
        &mut s,
        "h FETCH 1 (BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])\r\n",
        "* 1 FETCH (UID 7 BODY[HEADER.FIELDS (MESSAGE-ID)] {23}\r\nMessage-ID: <new@x>\r\n\r\n)\r\nh OK\r\n",
    )
    .await;
    exchange(&mut s, "n NOOP\r\n", "n OK\r\n").await;
    assert_eq!(rec.last().message_id_of_uid_7.as_deref(), Some("<new@x>"));
    exchange(&mut s, "c CLOSE\r\n", "c OK closed\r\n").await;
    exchange(&mut s, "n NOOP\r\n", "n OK\r\n").await;
    assert_eq!(rec.last().selected, None);
    // A failed SELECT leaves nothing selected.
    exchange(&mut s, "s SELECT INBOX\r\n", "* 1 EXISTS\r\ns OK\r\n").await;
    exchange(&mut s, "t SELECT Nope\r\n", "t NO no such mailbox\r\n").await;
    exchange(&mut s, "n NOOP\r\n", "n OK\r\n").await;
    assert_eq!(rec.last().selected, None);
}

#[tokio::test]
async fn fetch_responses_nobody_reads_are_relayed_as_they_are_and_still_map_uids() {
    let rec = Arc::new(Recorder::default());
    let mut s = setup(Some(rec.clone() as Arc<dyn Hook>)).await;
    exchange(
        &mut s,
        "s SELECT INBOX\r\n",
        "* 3 EXISTS\r\n* OK [UIDVALIDITY 42] v\r\ns OK [READ-WRITE] done\r\n",
    )
    .await;
    let seen_before = rec.seen.lock().unwrap().len();
    // The UID after a literal, a look-alike inside the literal and in a flag list.
    let answer = "* 1 FETCH (FLAGS (UID 4) BODY[] {22}\r\nMessage-ID: <a@x>\r\n\r\n UID 5)\r\n\
                  * 2 FETCH (UID 7 BODY[HEADER.FIELDS (MESSAGE-ID)] {19}\r\nMessage-ID: <b@x>\r\n)\r\n\
                  * 3 FETCH (FLAGS (\\Seen))\r\nf OK done\r\n";
    s.client.send("f FETCH 1:3 (FLAGS BODY[])\r\n").await;
    s.server.line().await;
    s.server.send(answer).await;
    let mut got = String::new();
    while !got.ends_with("f OK done\r\n") {
        got.push_str(&s.client.line().await);
    }
    assert_eq!(got, answer, "relayed byte for byte");
    assert_eq!(
        rec.seen.lock().unwrap().len(),
        seen_before + 1,
        "only the tagged OK reached on_response"
    );
    exchange(&mut s, "n NOOP\r\n", "n OK done\r\n").await;
    let seen = rec.last();
    assert_eq!(seen.uid_of_seq, vec![Some(5), Some(7), None, None]);
    assert_eq!(seen.message_id_of_uid_7, None, "not read, not learned");
}

#[tokio::test]
async fn a_hook_cannot_change_a_fetched_message() {
    let (mut s, _rec) = with_recorder(Some("X-CRM: 1\r\n")).await;
    s.client.send("f FETCH 1 BODY[]\r\n").await;
    s.server.line().await;
    s.server
        .send("* 1 FETCH (UID 3 BODY[] {8}\r\nSubject:)\r\nf OK\r\n")
        .await;
    // The server's bytes, not the hook's: the literal and its count as sent.
    assert_eq!(s.client.line().await, "* 1 FETCH (UID 3 BODY[] {8}\r\n");
    assert_eq!(s.client.bytes(8).await, b"Subject:");
    assert_eq!(s.client.line().await, ")\r\n");
    assert_eq!(s.client.line().await, "f OK\r\n");
    // A big (streamed) body is never offered to the hook at all.
    s.client.send("g FETCH 2 BODY[]\r\n").await;
    s.server.line().await;
    let body = vec![b'b'; 300_000];
    s.server
        .send(format!("* 2 FETCH (BODY[] {{{}}}\r\n", body.len()))
        .await;
    s.server.send(&body).await;
    s.server.send(")\r\ng OK\r\n").await;
    assert_eq!(s.client.line().await, "* 2 FETCH (BODY[] {300000}\r\n");
    let got = s.client.bytes(300_000).await;
    assert!(got[..] == body[..]);
    assert_eq!(s.client.line().await, ")\r\n");
}

/// Sends its own NOOP upstream when the client says `NOOP` with tag `trigger`.
#[derive(Default)]
struct OwnCommands {
    answers: Mutex<Vec<(String, String)>>,
}

impl Hook for OwnCommands {
    fn on_command(&self, cx: &HookContext<'_>, command: &Command<'_>) {
        if command.tag.inner() == "trigger" {
            cx.upstream.send_command("NOOP").unwrap();
        }
    }

    fn on_own_response(&self, _cx: &HookContext<'_>, tag: &str, response: &[u8]) {
        self.answers
            .lock()
            .unwrap()
            .push((tag.into(), String::from_utf8_lossy(response).into()));
    }
}

#[tokio::test]
async fn hook_commands_go_upstream_and_their_answers_stay_in_the_proxy() {
    let hook = Arc::new(OwnCommands::default());
    let mut s = setup(Some(hook.clone() as Arc<dyn Hook>)).await;
    s.client.send("trigger NOOP\r\n").await;
    assert_eq!(s.server.line().await, "trigger NOOP\r\n");
    assert_eq!(s.server.line().await, "CRMPX1 NOOP\r\n");
    s.server
        .send("trigger OK\r\n* 5 EXISTS\r\nCRMPX1 OK own done\r\n")
        .await;
    assert_eq!(s.client.line().await, "trigger OK\r\n");
    assert_eq!(s.client.line().await, "* 5 EXISTS\r\n");
    s.client.send("u NOOP\r\n").await;
    assert_eq!(s.server.line().await, "u NOOP\r\n");
    s.server.send("u OK\r\n").await;
    // The own command's tagged answer never reached the client.
    assert_eq!(s.client.line().await, "u OK\r\n");
    assert_eq!(
        hook.answers.lock().unwrap().clone(),
        vec![("CRMPX1".to_string(), "CRMPX1 OK own done\r\n".to_string())]
    );
}

#[tokio::test]
async fn over_long_sasl_response_cancels_the_exchange_without_echoing_it() {
    let (mut s, rec) = with_recorder(None).await;
    s.client.send("a AUTHENTICATE XOAUTH2\r\n").await;
    assert_eq!(s.server.line().await, "a AUTHENTICATE XOAUTH2\r\n");
    s.server.send("+ \r\n").await;
    assert_eq!(s.client.line().await, "+ \r\n");
    let token = format!("{}\r\n", "QUJD".repeat(600));
    s.client.send(&token).await;
    assert_eq!(s.server.line().await, "*\r\n");
    s.server.send("a BAD authentication cancelled\r\n").await;
    assert_eq!(s.client.line().await, "a BAD authentication cancelled\r\n");
    exchange(&mut s, "b NOOP\r\n", "b OK\r\n").await;
    assert_eq!(who(&rec.last()), None);
}
