//! Server-side sessions of the pane: random 256-bit ids in an HttpOnly, Secure,
//! SameSite=Strict cookie, each with its own CSRF token and expiry. A session starts
//! anonymous (so that the sign-in form itself carries a CSRF token) and gets a new id
//! when the user signs in, so that an id planted before sign-in is worthless after it.
//! A delegate's session may act for an owner's mailbox ([`SessionStore::act_for`]);
//! who signed in never changes within a session.

use axum::http;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Name of the session cookie. The `__Host-` prefix makes browsers insist on Secure,
/// Path=/ and no Domain, so no other host or path can set or shadow it.
pub const COOKIE_NAME: &str = "__Host-crmproxy-session";
/// A signed-in session ends after this long without a request...
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(2 * 3600);
/// ...and in any case this long after sign-in.
pub const ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(12 * 3600);
/// An anonymous session (an open sign-in form) lasts this long.
pub const ANONYMOUS_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// More sessions than this means something is creating them in a loop: drop the oldest.
const MAX_SESSIONS: usize = 10_000;

/// 32 random bytes, URL-safe base64: session ids, CSRF tokens, sign-in link tokens.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random generator failed");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Compare secrets without leaking where they differ through timing.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Who a session belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// Not signed in yet (a sign-in form is open).
    Anonymous,
    /// Signed in as this mailbox user (an e-mail address).
    User(String),
}

/// What a request learns about its session.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub principal: Principal,
    pub csrf_token: String,
    /// The owner's mailbox (login) this delegate's session acts for; `None`: the
    /// signed-in user's own mailbox. Checked against the grants on every request.
    pub acting_for: Option<String>,
}

impl Session {
    /// The signed-in user, if any.
    pub fn user(&self) -> Option<&str> {
        match &self.principal {
            Principal::User(u) => Some(u),
            Principal::Anonymous => None,
        }
    }
}

/// A mailbox password held for the session's life, in memory only: the pane needs it
/// to save drafts (IMAP APPEND). Never printed: `Debug` shows nothing of it.
#[derive(Clone)]
pub struct MailboxPassword(std::sync::Arc<str>);

impl MailboxPassword {
    pub fn new(p: &str) -> MailboxPassword {
        MailboxPassword(p.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for MailboxPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MailboxPassword(…)")
    }
}

struct Entry {
    principal: Principal,
    acting_for: Option<String>,
    /// Contacts this session created (quick create): new contacts that a delegate
    /// may not set as regarding.
    created_contacts: std::collections::HashSet<uuid::Uuid>,
    /// What the last action did, shown once on the page it redirects to (kept
    /// here, not in the address, so a crafted link cannot put words in the pane).
    notice: Option<String>,
    password: Option<MailboxPassword>,
    csrf_token: String,
    created: Instant,
    last_seen: Instant,
}

impl Entry {
    fn expired(&self, now: Instant) -> bool {
        match self.principal {
            Principal::Anonymous => now.duration_since(self.created) > ANONYMOUS_TIMEOUT,
            Principal::User(_) => {
                now.duration_since(self.last_seen) > IDLE_TIMEOUT
                    || now.duration_since(self.created) > ABSOLUTE_TIMEOUT
            }
        }
    }
}

/// All live sessions, in memory: a restart signs everyone out.
#[derive(Default)]
pub struct SessionStore {
    entries: Mutex<HashMap<String, Entry>>,
}

impl SessionStore {
    pub fn new() -> SessionStore {
        SessionStore::default()
    }

    /// Start a session for `principal`; returns it with its fresh id and CSRF token.
    pub fn create(&self, principal: Principal) -> Session {
        self.create_at(principal, Instant::now())
    }

    fn create_at(&self, principal: Principal, now: Instant) -> Session {
        let session = Session {
            id: random_token(),
            principal: principal.clone(),
            csrf_token: random_token(),
            acting_for: None,
        };
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_SESSIONS {
            entries.retain(|_, e| !e.expired(now));
            if entries.len() >= MAX_SESSIONS {
                // Anonymous sessions go first: they cost an attacker nothing to make.
                let victim = entries
                    .iter()
                    .min_by_key(|(_, e)| (matches!(e.principal, Principal::User(_)), e.last_seen))
                    .map(|(k, _)| k.clone());
                if let Some(k) = victim {
                    entries.remove(&k);
                }
            }
        }
        entries.insert(
            session.id.clone(),
            Entry {
                principal,
                acting_for: None,
                created_contacts: Default::default(),
                notice: None,
                password: None,
                csrf_token: session.csrf_token.clone(),
                created: now,
                last_seen: now,
            },
        );
        session
    }

    /// The live session with this id; touching it extends its idle timeout.
    pub fn get(&self, id: &str) -> Option<Session> {
        self.get_at(id, Instant::now())
    }

    fn get_at(&self, id: &str, now: Instant) -> Option<Session> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let entry = entries.get_mut(id)?;
        if entry.expired(now) {
            entries.remove(id);
            return None;
        }
        entry.last_seen = now;
        Some(Session {
            id: id.to_owned(),
            principal: entry.principal.clone(),
            csrf_token: entry.csrf_token.clone(),
            acting_for: entry.acting_for.clone(),
        })
    }

    /// Make a signed-in session act for `owner`'s mailbox (`None`: its own again).
    /// The caller has checked the grant. False when the session is gone.
    pub fn act_for(&self, id: &str, owner: Option<&str>) -> bool {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.get_mut(id) {
            Some(e) if matches!(e.principal, Principal::User(_)) => {
                e.acting_for = owner.map(str::to_owned);
                true
            }
            _ => false,
        }
    }

    /// Remember that this session created contact `id` (see [`Entry`]).
    pub fn remember_created_contact(&self, id: &str, contact: uuid::Uuid) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = entries.get_mut(id) {
            // Bounded: a session that created this many stops remembering more.
            if e.created_contacts.len() < 10_000 {
                e.created_contacts.insert(contact);
            }
        }
    }

    /// Whether this session created contact `contact`.
    pub fn created_contact(&self, id: &str, contact: uuid::Uuid) -> bool {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(id)
            .is_some_and(|e| e.created_contacts.contains(&contact))
    }

    /// Keep `text` to show once on this session's next page (see [`Entry`]).
    pub fn set_notice(&self, id: &str, text: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = entries.get_mut(id) {
            e.notice = Some(text.chars().take(300).collect());
        }
    }

    /// The notice kept for this session, taken (shown once).
    pub fn take_notice(&self, id: &str) -> Option<String> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get_mut(id).and_then(|e| e.notice.take())
    }

    /// End a session (sign-out, or replaced at sign-in).
    pub fn remove(&self, id: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.remove(id);
    }

    /// Sign `user` in: the old session (if any) ends, a new one with a new id starts.
    pub fn sign_in(&self, old_id: Option<&str>, user: &str) -> Session {
        if let Some(id) = old_id {
            self.remove(id);
        }
        self.create(Principal::User(user.to_owned()))
    }

    /// [`SessionStore::sign_in`] with the mailbox password checked at sign-in, kept
    /// (in memory) for saving drafts.
    pub fn sign_in_with_password(
        &self,
        old_id: Option<&str>,
        user: &str,
        password: &str,
    ) -> Session {
        let s = self.sign_in(old_id, user);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = entries.get_mut(&s.id) {
            e.password = Some(MailboxPassword::new(password));
        }
        s
    }

    /// The mailbox password of a live session signed in with one.
    pub fn password(&self, id: &str) -> Option<MailboxPassword> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(id)
            .filter(|e| !e.expired(Instant::now()))
            .and_then(|e| e.password.clone())
    }
}

/// The `Set-Cookie` value that gives the browser a session id.
pub fn set_cookie(id: &str) -> String {
    format!(
        "{COOKIE_NAME}={id}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={}",
        ABSOLUTE_TIMEOUT.as_secs()
    )
}

/// The `Set-Cookie` value that makes the browser forget the session.
pub fn clear_cookie() -> String {
    format!("{COOKIE_NAME}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The session id from a request's `Cookie` headers.
pub fn cookie_value<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bits_and_distinct() {
        let a = random_token();
        let b = random_token();
        assert_ne!(a, b);
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 32);
    }

    #[test]
    fn sign_in_rotates_the_id_and_the_csrf_token() {
        let store = SessionStore::new();
        let anon = store.create(Principal::Anonymous);
        let signed = store.sign_in(Some(&anon.id), "u@x");
        assert_ne!(anon.id, signed.id);
        assert_ne!(anon.csrf_token, signed.csrf_token);
        assert!(store.get(&anon.id).is_none());
        assert_eq!(store.get(&signed.id).unwrap().user(), Some("u@x"));
    }

    #[test]
    fn sessions_expire_when_idle_and_absolutely() {
        let store = SessionStore::new();
        let t0 = Instant::now();
        let s = store.create_at(Principal::User("u@x".into()), t0);
        let step = IDLE_TIMEOUT - Duration::from_secs(60);
        let mut t = t0;
        // Staying active keeps it alive, up to the absolute limit.
        while t + step < t0 + ABSOLUTE_TIMEOUT {
            t += step;
            assert!(store.get_at(&s.id, t).is_some());
        }
        assert!(store
            .get_at(&s.id, t0 + ABSOLUTE_TIMEOUT + Duration::from_secs(1))
            .is_none());
        let idle = store.create_at(Principal::User("u@x".into()), t0);
        assert!(store
            .get_at(&idle.id, t0 + IDLE_TIMEOUT + Duration::from_secs(1))
            .is_none());
        let anon = store.create_at(Principal::Anonymous, t0);
        assert!(store
            .get_at(&anon.id, t0 + ANONYMOUS_TIMEOUT + Duration::from_secs(1))
            .is_none());
    }

    #[test]
    fn a_session_acts_for_an_owner_and_back() {
        let store = SessionStore::new();
        let anon = store.create(Principal::Anonymous);
        assert!(
            !store.act_for(&anon.id, Some("o@x")),
            "anonymous sessions act for no one"
        );
        let s = store.sign_in(None, "d@x");
        assert!(store.act_for(&s.id, Some("o@x")));
        assert_eq!(store.get(&s.id).unwrap().acting_for.as_deref(), Some("o@x"));
        assert_eq!(store.get(&s.id).unwrap().user(), Some("d@x"));
        assert!(store.act_for(&s.id, None));
        assert_eq!(store.get(&s.id).unwrap().acting_for, None);
        let c = uuid::Uuid::now_v7();
        assert!(!store.created_contact(&s.id, c));
        store.remember_created_contact(&s.id, c);
        assert!(store.created_contact(&s.id, c));
    }

    #[test]
    fn the_store_is_bounded() {
        let store = SessionStore::new();
        let user = store.create(Principal::User("u@x".into()));
        for _ in 0..MAX_SESSIONS + 10 {
            store.create(Principal::Anonymous);
        }
        assert!(store.entries.lock().unwrap().len() <= MAX_SESSIONS);
        assert!(
            store.get(&user.id).is_some(),
            "signed-in sessions are kept first"
        );
    }

    #[test]
    fn cookie_flags_and_parsing() {
        let c = set_cookie("abc");
        for flag in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(c.contains(flag), "{c}");
        }
        let mut h = http::HeaderMap::new();
        h.append(
            http::header::COOKIE,
            "a=1; __Host-crmproxy-session=xyz".parse().unwrap(),
        );
        assert_eq!(cookie_value(&h, COOKIE_NAME), Some("xyz"));
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
    }
}
