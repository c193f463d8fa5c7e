//! What a session knows about its upstream state: the selected mailbox, its
//! UIDVALIDITY and size, and message identities (sequence number ↔ UID ↔
//! Message-ID) learned from the responses that pass. Memory is bounded.

use std::collections::{HashMap, VecDeque};

/// Most sequence numbers whose UID is remembered per mailbox.
pub const MAX_TRACKED_SEQS: usize = 500_000;
/// Most Message-IDs remembered per mailbox (oldest forgotten first).
pub const MAX_MESSAGE_IDS: usize = 20_000;

/// The session's view of the upstream mailbox state.
#[derive(Debug, Default, Clone)]
pub struct SessionState {
    /// The mailbox selected (tagged OK seen).
    selected: Option<Mailbox>,
    /// A SELECT/EXAMINE sent but not yet answered: untagged data goes here.
    opening: Option<Mailbox>,
}

/// A selected (or being selected) mailbox.
#[derive(Debug, Clone)]
pub struct Mailbox {
    /// Name as the client sent it (modified UTF-7 where the client used it).
    pub name: String,
    pub read_only: bool,
    pub uid_validity: Option<u32>,
    pub exists: u32,
    /// Whether PERMANENTFLAGS has `\*` (new keywords can be stored upstream);
    /// `None` until the server said.
    pub keywords_allowed: Option<bool>,
    /// UID of each sequence number (index = seq − 1; 0 = not learned yet).
    uids: Vec<u32>,
    message_ids: HashMap<u32, Box<str>>,
    message_id_order: VecDeque<u32>,
}

impl Mailbox {
    fn new(name: String, read_only: bool) -> Self {
        Mailbox {
            name,
            read_only,
            uid_validity: None,
            exists: 0,
            keywords_allowed: None,
            uids: Vec::new(),
            message_ids: HashMap::new(),
            message_id_order: VecDeque::new(),
        }
    }

    /// UID of a sequence number, if learned.
    pub fn uid(&self, seq: u32) -> Option<u32> {
        let i = (seq as usize).checked_sub(1)?;
        self.uids.get(i).copied().filter(|&u| u != 0)
    }

    /// Sequence number of a UID, if learned.
    pub fn seq(&self, uid: u32) -> Option<u32> {
        if uid == 0 {
            return None;
        }
        self.uids
            .iter()
            .position(|&u| u == uid)
            .map(|i| i as u32 + 1)
    }

    /// Message-ID (without angle brackets removed) of a UID, if learned.
    pub fn message_id(&self, uid: u32) -> Option<&str> {
        self.message_ids.get(&uid).map(|s| &**s)
    }

    /// UID of a Message-ID, if learned.
    pub fn uid_of_message_id(&self, message_id: &str) -> Option<u32> {
        self.message_ids
            .iter()
            .find(|(_, m)| &***m == message_id)
            .map(|(u, _)| *u)
    }

    fn set_exists(&mut self, n: u32) {
        self.exists = n;
        self.uids.resize((n as usize).min(MAX_TRACKED_SEQS), 0);
    }

    fn expunge(&mut self, seq: u32) {
        let i = seq as usize - 1;
        if i < self.uids.len() {
            let uid = self.uids.remove(i);
            self.forget_message_id(uid);
        }
        self.exists = self.exists.saturating_sub(1);
    }

    fn vanished(&mut self, uids: &[(u32, u32)], earlier: bool) {
        let gone = |u: u32| uids.iter().any(|&(a, b)| a <= u && u <= b);
        let before = self.uids.len();
        self.uids.retain(|&u| u == 0 || !gone(u));
        if !earlier {
            let removed = (before - self.uids.len()) as u32;
            self.exists = self.exists.saturating_sub(removed);
        }
        let forget: Vec<u32> = self
            .message_ids
            .keys()
            .copied()
            .filter(|&u| gone(u))
            .collect();
        for u in forget {
            self.forget_message_id(u);
        }
    }

    fn learn(&mut self, seq: u32, uid: Option<u32>, message_id: Option<String>) {
        let idx = seq as usize - 1;
        let uid = match uid {
            Some(u) => {
                if idx < MAX_TRACKED_SEQS {
                    if idx >= self.uids.len() {
                        self.uids.resize(idx + 1, 0);
                        self.exists = self.exists.max(seq);
                    }
                    self.uids[idx] = u;
                }
                Some(u)
            }
            None => self.uid(seq),
        };
        if let (Some(uid), Some(mid)) = (uid, message_id) {
            if self.message_ids.insert(uid, mid.into()).is_none() {
                self.message_id_order.push_back(uid);
                while self.message_ids.len() > MAX_MESSAGE_IDS {
                    if let Some(old) = self.message_id_order.pop_front() {
                        self.message_ids.remove(&old);
                    }
                }
            }
        }
    }

    fn forget_message_id(&mut self, uid: u32) {
        if self.message_ids.remove(&uid).is_some() {
            self.message_id_order.retain(|&u| u != uid);
        }
    }
}

impl SessionState {
    /// The selected mailbox, once its SELECT/EXAMINE got a tagged OK.
    pub fn selected(&self) -> Option<&Mailbox> {
        self.selected.as_ref()
    }

    /// The mailbox untagged data currently refers to.
    fn current(&mut self) -> Option<&mut Mailbox> {
        self.opening.as_mut().or(self.selected.as_mut())
    }

    /// A SELECT/EXAMINE was sent: per RFC 9051 the old mailbox is deselected now.
    pub fn begin_select(&mut self, name: String, read_only: bool) {
        self.selected = None;
        self.opening = Some(Mailbox::new(name, read_only));
    }

    /// The SELECT/EXAMINE finished: OK selects, anything else leaves nothing selected.
    pub fn finish_select(&mut self, ok: bool) {
        let opened = self.opening.take();
        self.selected = if ok { opened } else { None };
    }

    /// CLOSE or UNSELECT succeeded.
    pub fn deselect(&mut self) {
        self.selected = None;
        self.opening = None;
    }

    pub fn on_uid_validity(&mut self, v: u32) {
        if let Some(m) = self.current() {
            m.uid_validity = Some(v);
        }
    }

    /// `* OK [PERMANENTFLAGS (…)]`: whether it held `\*`.
    pub fn on_permanent_flags(&mut self, keywords_allowed: bool) {
        if let Some(m) = self.current() {
            m.keywords_allowed = Some(keywords_allowed);
        }
    }

    pub fn on_exists(&mut self, n: u32) {
        if let Some(m) = self.current() {
            m.set_exists(n);
        }
    }

    pub fn on_expunge(&mut self, seq: u32) {
        if let Some(m) = self.current() {
            if seq > 0 {
                m.expunge(seq);
            }
        }
    }

    /// VANISHED (QRESYNC): inclusive UID ranges.
    pub fn on_vanished(&mut self, ranges: &[(u32, u32)], earlier: bool) {
        if let Some(m) = self.current() {
            m.vanished(ranges, earlier);
        }
    }

    /// A FETCH response told us a UID and/or Message-ID for a sequence number.
    pub fn on_fetch(&mut self, seq: u32, uid: Option<u32>, message_id: Option<String>) {
        if let Some(m) = self.current() {
            if seq > 0 {
                m.learn(seq, uid, message_id);
            }
        }
    }
}

/// The Message-ID field value of a header section (unfolded, trimmed). Looks
/// no further than the blank line that ends the header: a body (or a message
/// attached in it) is not this message's header.
pub fn message_id_from_header(header: &[u8]) -> Option<String> {
    let mut lines = header
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .peekable();
    while let Some(line) = lines.next() {
        if line.is_empty() {
            return None;
        }
        if line.len() >= 11 && line[..11].eq_ignore_ascii_case(b"message-id:") {
            let mut value = String::from_utf8_lossy(&line[11..]).into_owned();
            while let Some(next) = lines.peek() {
                if next.first().is_some_and(|&b| b == b' ' || b == b'\t') {
                    value.push_str(&String::from_utf8_lossy(next));
                    lines.next();
                } else {
                    break;
                }
            }
            let v = value.trim().to_string();
            return (!v.is_empty()).then_some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selected() -> SessionState {
        let mut s = SessionState::default();
        s.begin_select("INBOX".into(), false);
        s.on_exists(4);
        s.on_uid_validity(77);
        s.on_permanent_flags(false);
        s.finish_select(true);
        for (seq, uid) in [(1, 10), (2, 11), (3, 15), (4, 20)] {
            s.on_fetch(seq, Some(uid), Some(format!("<m{uid}@x>")));
        }
        s
    }

    #[test]
    fn select_and_learn() {
        let s = selected();
        let m = s.selected().unwrap();
        assert_eq!(
            (m.name.as_str(), m.uid_validity, m.exists),
            ("INBOX", Some(77), 4)
        );
        assert_eq!(m.keywords_allowed, Some(false));
        assert_eq!(m.uid(3), Some(15));
        assert_eq!(m.seq(20), Some(4));
        assert_eq!(m.message_id(11), Some("<m11@x>"));
        assert_eq!(m.uid_of_message_id("<m20@x>"), Some(20));
    }

    #[test]
    fn expunge_shifts_and_vanished_removes() {
        let mut s = selected();
        s.on_expunge(2);
        let m = s.selected().unwrap();
        assert_eq!((m.exists, m.uid(2), m.uid(3)), (3, Some(15), Some(20)));
        assert_eq!(m.message_id(11), None);
        s.on_vanished(&[(15, 16)], false);
        let m = s.selected().unwrap();
        assert_eq!(
            (m.exists, m.uid(1), m.uid(2), m.uid(3)),
            (2, Some(10), Some(20), None)
        );
        s.on_vanished(&[(10, 10)], true);
        let m = s.selected().unwrap();
        assert_eq!((m.exists, m.uid(1)), (2, Some(20)));
    }

    #[test]
    fn failed_select_and_close_deselect() {
        let mut s = selected();
        s.begin_select("Nope".into(), false);
        assert!(s.selected().is_none());
        s.finish_select(false);
        assert!(s.selected().is_none());
        let mut s = selected();
        s.deselect();
        assert!(s.selected().is_none());
    }

    #[test]
    fn header_message_id() {
        let h = b"Subject: x\r\nMessage-ID:\r\n <abc@d>\r\n\r\n";
        assert_eq!(message_id_from_header(h).unwrap(), "<abc@d>");
        assert_eq!(message_id_from_header(b"Subject: x\r\n\r\n"), None);
        // A forwarded message's Message-ID in the body is not this one's.
        let fwd = b"Subject: fwd\r\n\r\nMessage-ID: <inner@x>\r\n\r\nhi\r\n";
        assert_eq!(message_id_from_header(fwd), None);
        let folded = b"Message-ID:\r\n\t<a@b>\r\nSubject: y\r\n";
        assert_eq!(message_id_from_header(folded).unwrap(), "<a@b>");
    }
}
