//! The hub of "message opened" events between the proxy and the pane: one broadcast
//! channel per mailbox, fed by the proxy when a session fetches a whole message (and by
//! the pane itself, from Outlook or a form), read by the pane's SSE endpoint. Each
//! mailbox's channel also remembers the most recent messages, so that a page rendered
//! after the event still shows them. It lives outside both so that neither depends on
//! the other: `serve` makes one hub and hands it to each.
//!
//! Channels are per mailbox (the owner's login): a delegate's session logged in to the
//! owner's mailbox (SASL PLAIN authzid = owner) publishes for the owner, and a
//! delegate's pane acting for that owner reads the owner's channel.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// How many opened messages each user's history keeps.
pub const RECENT_MESSAGES: usize = 20;
/// Events buffered per subscriber before a slow one starts missing some.
const CHANNEL_CAPACITY: usize = 64;

/// A message the user opened in a mail client (its body was fetched on their session),
/// or selected in Outlook through the add-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageOpened {
    /// The Message-ID header, without angle brackets.
    pub message_id: String,
    pub subject: Option<String>,
    pub from: Option<String>,
    /// To and Cc recipients (`Name <address>`), when the proxy saw the header.
    #[serde(default)]
    pub to: Vec<String>,
    #[serde(default)]
    pub cc: Vec<String>,
    /// The IMAP folder and UID, when the proxy saw the fetch.
    pub mailbox: Option<String>,
    pub uid: Option<u32>,
    /// The folder's UIDVALIDITY, when the proxy knew it: with `mailbox` and `uid` it
    /// lets a pending tracking request say where the sync worker finds the message.
    #[serde(default)]
    pub uid_validity: Option<u32>,
    pub opened_at: DateTime<Utc>,
}

impl MessageOpened {
    /// An event with only a Message-ID (angle brackets and spaces removed), opened now.
    pub fn new(message_id: &str) -> MessageOpened {
        MessageOpened {
            message_id: normalize_message_id(message_id),
            subject: None,
            from: None,
            to: Vec::new(),
            cc: Vec::new(),
            mailbox: None,
            uid: None,
            uid_validity: None,
            opened_at: Utc::now(),
        }
    }

    /// What the proxy publishes when a client fetches a message's body: where in
    /// the mailbox it saw it.
    pub fn fetched(message_id: &str, folder: &str, uid_validity: Option<u32>, uid: u32) -> Self {
        MessageOpened {
            mailbox: Some(folder.to_owned()),
            uid: Some(uid),
            uid_validity,
            ..MessageOpened::new(message_id)
        }
    }

    /// Whether the proxy saw this message in the mailbox (folder and UID known):
    /// proof that the mailbox holds it. A Message-ID someone typed into the pane or
    /// an add-in sent proves nothing, and may name anybody's mail.
    pub fn seen_in_mailbox(&self) -> bool {
        self.mailbox.is_some() && self.uid.is_some()
    }
}

/// Something in the CRM changed (in this process or another one on the same
/// team store): ids only, so a page showing one of them reloads and reads it
/// with the viewer's rights.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrmChanged {
    /// Records written or deleted, or with an activity newly on their timeline.
    #[serde(default)]
    pub records: Vec<uuid::Uuid>,
    /// Messages whose tracking in this mailbox changed (without angle brackets).
    #[serde(default)]
    pub message_ids: Vec<String>,
}

/// What the pane's live connections receive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum PaneEvent {
    MessageOpened(MessageOpened),
    CrmChanged(CrmChanged),
}

impl PaneEvent {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            PaneEvent::MessageOpened(_) => "message-opened",
            PaneEvent::CrmChanged(_) => "crm-changed",
        }
    }
}

/// `<abc@example.com>` and ` abc@example.com ` are the same Message-ID.
pub fn normalize_message_id(raw: &str) -> String {
    let t = raw.trim();
    let t = t.strip_prefix('<').unwrap_or(t);
    let t = t.strip_suffix('>').unwrap_or(t);
    t.trim().to_owned()
}

/// User names are e-mail addresses; case does not distinguish two users.
pub fn user_key(user: &str) -> String {
    user.trim().to_lowercase()
}

struct UserChannel {
    sender: broadcast::Sender<PaneEvent>,
    recent: VecDeque<MessageOpened>,
}

impl UserChannel {
    fn new() -> UserChannel {
        UserChannel {
            sender: broadcast::channel(CHANNEL_CAPACITY).0,
            recent: VecDeque::with_capacity(RECENT_MESSAGES),
        }
    }
}

/// The hub of per-user channels. Cheap to clone; all clones share the channels.
#[derive(Clone, Default)]
pub struct PaneEvents {
    users: Arc<Mutex<HashMap<String, UserChannel>>>,
}

impl std::fmt::Debug for PaneEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaneEvents").finish_non_exhaustive()
    }
}

impl PaneEvents {
    pub fn new() -> PaneEvents {
        PaneEvents::default()
    }

    /// Record that `user` opened a message and tell every live pane of that user.
    /// Opening the same message again moves it to the front of the history.
    /// Returns how many live connections received it.
    pub fn publish_opened(&self, user: &str, event: MessageOpened) -> usize {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        let ch = users.entry(user_key(user)).or_insert_with(UserChannel::new);
        ch.recent.retain(|m| m.message_id != event.message_id);
        if ch.recent.len() == RECENT_MESSAGES {
            ch.recent.pop_back();
        }
        ch.recent.push_front(event.clone());
        // No receiver is not an error: the pane may simply be closed.
        ch.sender.send(PaneEvent::MessageOpened(event)).unwrap_or(0)
    }

    /// Tell `user`'s live panes (every user's, for `None`: records are shared)
    /// that something in the CRM changed. Returns how many connections got it.
    pub fn publish_change(&self, user: Option<&str>, change: CrmChanged) -> usize {
        let users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        let event = PaneEvent::CrmChanged(change);
        match user {
            Some(u) => users
                .get(&user_key(u))
                .map(|ch| ch.sender.send(event).unwrap_or(0))
                .unwrap_or(0),
            None => users
                .values()
                .map(|ch| ch.sender.send(event.clone()).unwrap_or(0))
                .sum(),
        }
    }

    /// A receiver of `user`'s future events.
    pub fn subscribe(&self, user: &str) -> broadcast::Receiver<PaneEvent> {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        users
            .entry(user_key(user))
            .or_insert_with(UserChannel::new)
            .sender
            .subscribe()
    }

    /// The message `user` opened last.
    pub fn current(&self, user: &str) -> Option<MessageOpened> {
        let users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        users.get(&user_key(user))?.recent.front().cloned()
    }

    /// `user`'s recently opened messages, newest first.
    pub fn recent(&self, user: &str) -> Vec<MessageOpened> {
        let users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        users
            .get(&user_key(user))
            .map(|c| c.recent.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// A message from `user`'s history by Message-ID.
    pub fn find(&self, user: &str, message_id: &str) -> Option<MessageOpened> {
        let id = normalize_message_id(message_id);
        let users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        users
            .get(&user_key(user))?
            .recent
            .iter()
            .find(|m| m.message_id == id)
            .cloned()
    }
}

/// Where an untracked message is in the owner's mailbox, for removing its tracking
/// keywords from the server copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeywordCleanup {
    /// The Message-ID (without angle brackets): found again by it when the folder's
    /// UIDVALIDITY changed since.
    pub message_id: String,
    pub folder: String,
    pub uid_validity: u32,
    pub uid: u32,
}

/// What became of a [`KeywordCleanup`] handed to the mailbox's sync worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanupQueued {
    /// A running worker took it: the keywords go within moments.
    Now,
    /// No worker runs for this mailbox (no mail client logged in through the proxy
    /// since `serve` started): kept, and done when its worker next starts.
    WhenWorkerRuns,
}

/// What the pane asks of the proxy's sync workers (implemented by
/// `sync::worker::Workers`): the pane changes tracking in the store, the workers
/// hold the mailbox credentials that change the server copy.
pub trait MailboxSync: Send + Sync {
    /// What stands in the way of tracking in `owner`'s mailbox (e.g. a tracking
    /// folder the server refuses), for the pane to show on every page.
    fn problems(&self, _owner: &str) -> Vec<String> {
        Vec::new()
    }
    /// Remove `$CRM_Tracked` and `$CRM_Pending` from a message of `owner`'s mailbox.
    fn clear_tracking_keywords(&self, owner: &str, at: KeywordCleanup) -> CleanupQueued;
    /// Tracking changed outside the workers: proxied sessions re-read header blocks.
    fn tracking_changed(&self);
    /// A pending request with a known place was made for `owner`'s mailbox: complete
    /// it now rather than at the next sweep (or when the worker next starts).
    fn pending_requested(&self, owner: &str) -> CleanupQueued;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_reach_only_their_user() {
        let hub = PaneEvents::new();
        let mut alice = hub.subscribe("Alice@Example.com");
        let mut bob = hub.subscribe("bob@example.com");
        let n = hub.publish_opened("alice@example.com", MessageOpened::new("<m1@x>"));
        assert_eq!(n, 1);
        let PaneEvent::MessageOpened(got) = alice.recv().await.unwrap() else {
            panic!("not a message-opened event")
        };
        assert_eq!(got.message_id, "m1@x");
        assert!(bob.try_recv().is_err());
        assert_eq!(hub.current("ALICE@example.com").unwrap().message_id, "m1@x");
        assert!(hub.current("bob@example.com").is_none());
    }

    #[test]
    fn history_is_newest_first_without_duplicates_and_bounded() {
        let hub = PaneEvents::new();
        for i in 0..RECENT_MESSAGES + 5 {
            hub.publish_opened("u@x", MessageOpened::new(&format!("m{i}@x")));
        }
        hub.publish_opened("u@x", MessageOpened::new("m10@x"));
        let recent = hub.recent("u@x");
        assert_eq!(recent.len(), RECENT_MESSAGES);
        assert_eq!(recent[0].message_id, "m10@x");
        assert_eq!(recent.iter().filter(|m| m.message_id == "m10@x").count(), 1);
        assert!(hub.find("u@x", "<m24@x>").is_some());
        assert!(hub.find("u@x", "m0@x").is_none());
    }

    #[tokio::test]
    async fn changes_reach_their_mailbox_or_everyone() {
        let hub = PaneEvents::new();
        let mut alice = hub.subscribe("alice@x");
        let mut bob = hub.subscribe("bob@x");
        let mine = CrmChanged {
            message_ids: vec!["m@x".into()],
            ..Default::default()
        };
        assert_eq!(hub.publish_change(Some("ALICE@x"), mine.clone()), 1);
        assert_eq!(alice.recv().await.unwrap(), PaneEvent::CrmChanged(mine));
        assert!(bob.try_recv().is_err());
        let shared = CrmChanged {
            records: vec![uuid::Uuid::nil()],
            ..Default::default()
        };
        assert_eq!(hub.publish_change(None, shared.clone()), 2);
        assert_eq!(bob.recv().await.unwrap().name(), "crm-changed");
        assert_eq!(hub.publish_change(Some("nobody@x"), shared), 0);
    }

    #[test]
    fn publishing_without_listeners_is_fine() {
        let hub = PaneEvents::new();
        assert_eq!(hub.publish_opened("u@x", MessageOpened::new("a@b")), 0);
        assert_eq!(hub.recent("u@x").len(), 1);
    }
}
