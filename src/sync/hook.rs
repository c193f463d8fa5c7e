//! The tracking hook (SPEC section 3): what the proxy does for tracking inside a
//! session. Keyword and folder requests seen in client commands become jobs for
//! the mailbox's sync worker (which fetches, tracks and sets keywords on its own
//! connection). FETCH responses pass as the server sent them: a message's bytes
//! never change under its UID (SPEC section 3). A CRM user's single-message
//! fetches are read for the pane's "message opened" event.
//!
//! Hooks run inline on the session: only point reads of the store happen here
//! (the owner, a tracking record by location or Message-ID), cached until the
//! worker reports a tracking change. Everything else runs on tasks.

use bytes::Bytes;
use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::core::Vec1;
use imap_codec::imap_types::fetch::{MessageDataItem, Section};
use imap_codec::imap_types::response::{Code, Data, Response, Status, StatusKind};
use imap_codec::imap_types::sequence::SequenceSet;
use imap_codec::imap_types::IntoStatic;
use std::collections::HashMap;
use std::sync::Mutex;

use super::worker::{Job, Uids, Workers};
use crate::events::MessageOpened;
use crate::proxy::hook::{Credential, Hook, HookContext};
use crate::proxy::identity::{Identity, Mechanism};
use crate::store::UserId;
use crate::track::{Actor, TrackSource};

mod append;
#[doc(hidden)] // public for the fuzz targets (fuzz/)
pub mod flags;
mod folders;
mod keyword;
mod opened;
#[doc(hidden)] // public for the fuzz targets (fuzz/)
pub mod sets;
use flags::KeywordCache;
use opened::{header_summary, message_id_of_item};
use sets::{mailbox_name, uid_set_text};

/// The hook `serve` installs.
pub struct TrackingHook {
    workers: Workers,
    sessions: Mutex<HashMap<u64, SessionData>>,
    /// State keywords shown in FLAGS where a mailbox cannot store them; shared by
    /// the sessions of every mailbox.
    keywords: Mutex<KeywordCache>,
}

/// How long a session's user, once found not to be a CRM user, is taken as such.
const NOT_A_USER_RECHECK: std::time::Duration = std::time::Duration::from_secs(60);

/// What a client command asked for, applied when its tagged answer comes.
#[derive(Debug)]
enum TagAction {
    /// Refused: the tagged answer becomes `NO [ALERT] text`.
    Refuse(String),
    /// A COPY/MOVE into a tracking folder (server name; `logical`: the config's
    /// name): track the copies (COPYUID).
    IntoFolder {
        actor: Actor,
        folder: String,
        logical: String,
    },
    /// An APPEND into a tracking folder: track it (APPENDUID).
    Append {
        actor: Actor,
        folder: String,
        logical: String,
    },
    /// An APPEND into the Sent folder: a reply to tracked email tracks.
    Sent { actor: Actor, folder: String },
    /// Once the command is done, hand this job to the mailbox's worker (a STORE
    /// by sequence numbers the session has no UIDs for: the worker finds the
    /// messages by the request keyword, which must be on the server first).
    SubmitWhenDone(Job),
}

#[derive(Default)]
struct SessionData {
    owner: Option<UserId>,
    /// When the session's user was last found not to be a CRM user: looked up
    /// again after [`NOT_A_USER_RECHECK`] (a user may be added meanwhile).
    not_a_user_since: Option<std::time::Instant>,
    /// FETCH commands (by tag) naming more than one message, in flight: a
    /// client syncing a folder is not opening a message.
    bulk_fetches: Vec<String>,
    /// FETCH commands (by tag) naming one message, in flight: their responses
    /// are read for the "message opened" event.
    single_fetches: Vec<String>,
    /// FETCH commands (by tag) asking for FLAGS, in flight.
    flag_fetches: Vec<String>,
    actions: HashMap<String, TagAction>,
    /// Folders the server's LIST marked `\Sent` (SPECIAL-USE).
    sent_folders: Vec<String>,
    /// MOVE commands (by tag) waiting for their untagged COPYUID.
    moves: Vec<String>,
}

impl TrackingHook {
    pub fn new(workers: Workers) -> TrackingHook {
        TrackingHook {
            workers,
            sessions: Mutex::new(HashMap::new()),
            keywords: Mutex::new(KeywordCache::default()),
        }
    }

    fn with_session<T>(&self, id: u64, f: impl FnOnce(&mut SessionData) -> T) -> T {
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        f(s.entry(id).or_default())
    }

    /// Owner and acting login of a session.
    fn logins(identity: &Identity) -> (String, String) {
        let owner = identity.user.clone();
        let acting = identity.delegate.clone().unwrap_or_else(|| owner.clone());
        (owner, acting)
    }

    /// The actor of the session, or the refusal text.
    fn actor(&self, identity: &Identity) -> Result<Actor, String> {
        let (owner, acting) = Self::logins(identity);
        self.workers
            .engine()
            .actor(&owner, &acting)
            .map_err(|e| e.alert_text())
    }

    /// The session's CRM user. Called for every fetched message, so a session of
    /// someone who is not a CRM user does not read the store each time.
    fn owner_id(&self, cx: &HookContext<'_>) -> Option<UserId> {
        let identity = cx.identity?;
        let (cached, recently_absent) = self.with_session(cx.session_id, |s| {
            let recent = s
                .not_a_user_since
                .is_some_and(|t| t.elapsed() < NOT_A_USER_RECHECK);
            (s.owner, recent)
        });
        if cached.is_some() || recently_absent {
            return cached;
        }
        let found = self
            .workers
            .engine()
            .store()
            .user_by_mailbox_login(&identity.user)
            .ok()
            .flatten()
            .map(|u| u.id);
        self.with_session(cx.session_id, |s| {
            s.owner = found;
            s.not_a_user_since = found.is_none().then(std::time::Instant::now);
        });
        found
    }

    fn copy_or_append_into(&self, cx: &HookContext<'_>, tag: &str, folder: String, append: bool) {
        let Some(identity) = cx.identity else { return };
        if append && self.is_sent_folder(cx, &folder) {
            // Automatic: a user without use_app is not refused, just not tracked.
            if let Ok(actor) = self.actor(identity) {
                let action = TagAction::Sent { actor, folder };
                self.with_session(cx.session_id, |s| s.actions.insert(tag.to_string(), action));
            }
            return;
        }
        let Some(logical) = self.tracking_folder_name(cx, &folder) else {
            return;
        };
        let action = match self.actor(identity) {
            Err(text) => TagAction::Refuse(text),
            Ok(actor) if append => TagAction::Append {
                actor,
                folder,
                logical,
            },
            Ok(actor) => TagAction::IntoFolder {
                actor,
                folder,
                logical,
            },
        };
        self.with_session(cx.session_id, |s| s.actions.insert(tag.to_string(), action));
    }

    /// Whether copying (or, `append`, appending) into `folder` asks for tracking: a
    /// tracking folder, and for an APPEND not the Sent folder (judged automatically).
    fn tracks_into(&self, cx: &HookContext<'_>, folder: &str, append: bool) -> bool {
        !(append && self.is_sent_folder(cx, folder))
            && self.tracking_folder_name(cx, folder).is_some()
    }

    /// A COPYUID/APPENDUID: the copies in a tracking folder are tracked.
    fn folder_copied(&self, cx: &HookContext<'_>, tag: Option<&str>, code: &Code<'_>) {
        let Some(identity) = cx.identity else { return };
        let action = self.with_session(cx.session_id, |s| {
            let key = match tag {
                Some(t) => s.actions.contains_key(t).then(|| t.to_string()),
                // MOVE: the COPYUID comes untagged, before the MOVE's tagged OK
                // (which may come after the next MOVE's COPYUID: Dovecot answers
                // pipelined MOVEs so); each COPYUID answers the oldest MOVE not
                // answered yet.
                None => (!s.moves.is_empty()).then(|| s.moves.remove(0)),
            }?;
            match s.actions.get(&key) {
                Some(
                    TagAction::IntoFolder { .. }
                    | TagAction::Append { .. }
                    | TagAction::Sent { .. },
                ) => s.actions.remove(&key),
                _ => None,
            }
        });
        if let (Some(TagAction::Sent { actor, folder }), Code::AppendUid { uid, .. }) =
            (&action, code)
        {
            let job = Job::Sent {
                actor: actor.clone(),
                folder: folder.clone(),
                uid: uid.get(),
            };
            if !self.workers.submit(&identity.user, job) {
                tracing::warn!("no sync worker for this session: the sent message is not judged");
            }
            return;
        }
        let (actor, folder, logical) = match action {
            Some(
                TagAction::IntoFolder {
                    actor,
                    folder,
                    logical,
                }
                | TagAction::Append {
                    actor,
                    folder,
                    logical,
                },
            ) => (actor, folder, logical),
            _ => return,
        };
        let uids = match code {
            Code::CopyUid { destination, .. } => Uids::Set(uid_set_text(destination)),
            Code::AppendUid { uid, .. } => Uids::List(vec![uid.get()]),
            _ => return,
        };
        let job = Job::Track {
            actor,
            source: TrackSource::Folder(logical),
            folder,
            uids,
        };
        if !self.workers.submit(&identity.user, job) {
            tracing::warn!("no sync worker for this session: the copy is not tracked");
        }
    }

    /// A whole body fetched: tell the pane which message the user opened.
    fn publish_opened(&self, cx: &HookContext<'_>, seq: u32, items: &[MessageDataItem<'_>]) {
        let Some(identity) = cx.identity else { return };
        // Only a CRM user has a pane, and a FETCH of many messages (a sync) does
        // not open one.
        if self.owner_id(cx).is_none()
            || self.with_session(cx.session_id, |s| !s.bulk_fetches.is_empty())
        {
            return;
        }
        // The body or a part of it (a client that fetches MIME parts on demand
        // shows the message from BODY[1]); a header alone opens nothing.
        let opened = items.iter().any(|i| {
            matches!(
                i,
                MessageDataItem::BodyExt {
                    section: None | Some(Section::Text(_) | Section::Part(_)),
                    origin: None,
                    ..
                } | MessageDataItem::Rfc822(_)
                    | MessageDataItem::Rfc822Text(_)
                    | MessageDataItem::Binary { .. }
            )
        });
        if !opened {
            return;
        }
        let Some(mailbox) = cx.state.selected() else {
            return;
        };
        let uid = items
            .iter()
            .find_map(|i| match i {
                MessageDataItem::Uid(u) => Some(u.get()),
                _ => None,
            })
            .or_else(|| mailbox.uid(seq));
        let Some(uid) = uid else { return };
        // The header in this response says it, when the session has not learned it.
        let mid = match mailbox.message_id(uid) {
            Some(m) => m.to_owned(),
            None => match items.iter().find_map(message_id_of_item) {
                Some(m) => m,
                None => return,
            },
        };
        let mut ev = MessageOpened::fetched(&mid, &mailbox.name, mailbox.uid_validity, uid);
        if let Some(h) = items.iter().find_map(header_summary) {
            (ev.subject, ev.from, ev.to, ev.cc) = (h.subject, h.from, h.to, h.cc);
        }
        let mailbox = self.workers.mailbox_key(&identity.user);
        self.workers.events().publish_opened(&mailbox, ev);
    }
}

impl Hook for TrackingHook {
    fn on_command(&self, cx: &HookContext<'_>, command: &Command<'_>) {
        let tag = command.tag.inner();
        match &command.body {
            CommandBody::Store {
                sequence_set,
                kind,
                flags,
                uid,
                ..
            } => self.keyword_store(cx, tag, sequence_set, *uid, kind, flags),
            CommandBody::Fetch {
                sequence_set,
                macro_or_item_names,
                ..
            } => {
                let one = names_one(sequence_set);
                let flags = asks_flags(macro_or_item_names);
                self.with_session(cx.session_id, |s| {
                    let mut lists = vec![if one {
                        &mut s.single_fetches
                    } else {
                        &mut s.bulk_fetches
                    }];
                    if flags {
                        lists.push(&mut s.flag_fetches);
                    }
                    for list in lists {
                        if list.len() >= 64 {
                            list.remove(0);
                        }
                        list.push(tag.to_string())
                    }
                });
            }
            CommandBody::Copy { mailbox, .. } | CommandBody::Move { mailbox, .. } => {
                if matches!(command.body, CommandBody::Move { .. }) {
                    self.move_started(cx, tag);
                }
                self.copy_or_append_into(cx, tag, mailbox_name(mailbox), false)
            }
            CommandBody::Append { mailbox, .. } => {
                self.copy_or_append_into(cx, tag, mailbox_name(mailbox), true)
            }
            _ => {}
        }
    }

    fn on_streamed_command(&self, cx: &HookContext<'_>, first_line: &[u8]) {
        if let Some((tag, folder)) = sets::append_target(first_line) {
            self.copy_or_append_into(cx, &tag, folder, true);
        }
    }

    fn commands_before(&self, cx: &HookContext<'_>, command: &Command<'_>) -> Vec<String> {
        // The tracking folder is created on first use (an existing one answers NO,
        // which nobody sees).
        let (CommandBody::Copy { mailbox, .. } | CommandBody::Move { mailbox, .. }) = &command.body
        else {
            return Vec::new();
        };
        let folder = mailbox_name(mailbox);
        let tracked = self.tracking_folder_on_server(cx);
        let asked = self.with_session(cx.session_id, |s| {
            matches!(
                s.actions.get(command.tag.inner()),
                Some(TagAction::IntoFolder { .. })
            )
        });
        if cx.identity.is_some() && asked && folder == tracked {
            vec![format!("CREATE {}", crate::imap_client::quoted(&tracked))]
        } else {
            Vec::new()
        }
    }

    /// Read only what the pane needs: a CRM user's fetch of one message (which
    /// may open it) while no folder sync runs, and FLAGS where the mailbox cannot
    /// store state keywords. Everything else is relayed undecoded.
    fn reads_fetch_responses(&self, cx: &HookContext<'_>) -> bool {
        let (opening, flags_wanted) = self.with_session(cx.session_id, |s| {
            let no_fetch = s.single_fetches.is_empty() && s.bulk_fetches.is_empty();
            (
                !s.single_fetches.is_empty() && s.bulk_fetches.is_empty(),
                // A FETCH asking for FLAGS, or none at all (flag updates the
                // server sends unasked, a STORE's answer).
                !s.flag_fetches.is_empty() || no_fetch,
            )
        });
        (opening || (flags_wanted && Self::flags_from_store(cx))) && self.owner_id(cx).is_some()
    }

    fn on_response(
        &self,
        cx: &HookContext<'_>,
        response: &Response<'_>,
    ) -> Option<Response<'static>> {
        match response {
            Response::Status(Status::Tagged(t)) => {
                let tag = t.tag.inner().to_string();
                if let Some(code) = &t.body.code {
                    self.folder_copied(cx, Some(&tag), code);
                }
                self.with_session(cx.session_id, |s| {
                    s.moves.retain(|t| *t != tag);
                    s.bulk_fetches.retain(|t| *t != tag);
                    s.single_fetches.retain(|t| *t != tag);
                    s.flag_fetches.retain(|t| *t != tag);
                });
                let action = self.with_session(cx.session_id, |s| s.actions.remove(&tag));
                match action {
                    Some(TagAction::Refuse(text)) => {
                        return Status::no(Some(t.tag.clone()), Some(Code::Alert), text)
                            .ok()
                            .map(|s| Response::Status(s).into_static());
                    }
                    Some(TagAction::SubmitWhenDone(job)) if t.body.kind == StatusKind::Ok => {
                        if let Some(identity) = cx.identity {
                            if !self.workers.submit(&identity.user, job) {
                                tracing::warn!("no sync worker for this session: the request waits on the server");
                            }
                        }
                    }
                    _ => {}
                }
                None
            }
            Response::Status(Status::Untagged(b)) => {
                if let Some(code @ Code::CopyUid { .. }) = &b.code {
                    self.folder_copied(cx, None, code);
                }
                None
            }
            Response::Data(Data::List { items, mailbox, .. }) => {
                if items
                    .iter()
                    .any(|a| a.to_string().eq_ignore_ascii_case("\\Sent"))
                {
                    let name = mailbox_name(mailbox);
                    self.with_session(cx.session_id, |s| {
                        if !s.sent_folders.contains(&name) {
                            s.sent_folders.push(name);
                        }
                    });
                }
                None
            }
            Response::Data(Data::Fetch { seq, items }) => {
                self.publish_opened(cx, seq.get(), items.as_ref());
                let new = self.fetch_items(cx, seq.get(), items.as_ref())?;
                Some(Response::Data(Data::Fetch {
                    seq: *seq,
                    items: Vec1::try_from(new).ok()?,
                }))
            }
            _ => None,
        }
    }

    fn refuse_append(&self, cx: &HookContext<'_>, first_line: &[u8]) -> Option<String> {
        self.append_refusal(cx, first_line)
    }

    fn wants_append_head(&self, cx: &HookContext<'_>, first_line: &[u8]) -> bool {
        self.wants_head(cx, first_line)
    }

    fn append_prefix(
        &self,
        cx: &HookContext<'_>,
        first_line: &[u8],
        head: &[u8],
        room: u64,
    ) -> Option<Bytes> {
        self.prefix_for_append(cx, first_line, head, room)
    }

    fn streamed_fetch_line(&self, cx: &HookContext<'_>, seq: u32, line: &[u8]) -> Option<Vec<u8>> {
        self.streamed_line(cx, seq, line)
    }

    fn rewrite_command(&self, cx: &HookContext<'_>, command: &Command<'_>) -> Option<Vec<u8>> {
        // A refused request (a COPY/MOVE into a tracking folder, a STORE of a
        // tracking keyword) must change nothing: the server gets a NOOP under its
        // tag, whose OK becomes the refusal.
        let tag = command.tag.inner();
        let refused = self.with_session(cx.session_id, |s| {
            matches!(s.actions.get(tag), Some(TagAction::Refuse(_)))
        });
        if refused {
            return Some(format!("{tag} NOOP\r\n").into_bytes());
        }
        self.fetch_with_uid(cx, command)
    }

    fn notices(&self, cx: &HookContext<'_>) -> Vec<String> {
        match cx.identity {
            Some(identity) => self.workers.take_notices(&identity.user),
            None => Vec::new(),
        }
    }

    fn on_login(&self, cx: &HookContext<'_>, credential: Option<&Credential>) {
        let Some(identity) = cx.identity else { return };
        if self.actor(identity).is_ok() {
            // The tracking folder exists (and shows in clients that list only
            // subscribed folders) from a CRM user's first session: an APPEND into
            // it, or a drag onto it, needs it there. An existing one answers NO,
            // which nobody sees; the worker creates it again once it learned the
            // server's layout, and reports a refusal.
            let folder = crate::imap_client::quoted(&self.tracking_folder_on_server(cx));
            for command in [format!("CREATE {folder}"), format!("SUBSCRIBE {folder}")] {
                let _ = cx.upstream.send_command(&command);
            }
        }
        match (credential, identity.mechanism) {
            (Some(c), Mechanism::Login | Mechanism::Plain) => {
                self.workers.login(&identity.user, c.clone())
            }
            _ => tracing::info!(
                "no sync worker for this session: its login cannot be replayed (OAuth token or unknown mechanism)"
            ),
        }
    }

    fn on_session_end(&self, session_id: u64) {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&session_id);
    }
}

/// Does a FETCH ask for FLAGS (by name, or in the ALL, FAST and FULL macros)?
fn asks_flags(names: &imap_codec::imap_types::fetch::MacroOrMessageDataItemNames<'_>) -> bool {
    use imap_codec::imap_types::fetch::{MacroOrMessageDataItemNames, MessageDataItemName};
    match names {
        MacroOrMessageDataItemNames::Macro(_) => true,
        MacroOrMessageDataItemNames::MessageDataItemNames(n) => {
            n.contains(&MessageDataItemName::Flags)
        }
    }
}

/// Does a sequence set name exactly one message (`7`, not `1:*` or `3,5`)?
pub(super) fn names_one(set: &SequenceSet) -> bool {
    use imap_codec::imap_types::sequence::{SeqOrUid, Sequence};
    matches!(set.0.as_ref(), [Sequence::Single(SeqOrUid::Value(_))])
}
