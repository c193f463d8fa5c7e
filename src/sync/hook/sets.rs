//! IMAP sets and names as text: sequence sets, UID sets, mailbox names.

use imap_codec::imap_types::mailbox::Mailbox as ImapMailbox;
use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

use crate::wire::command_start;

pub fn mailbox_name(m: &ImapMailbox<'_>) -> String {
    match m {
        ImapMailbox::Inbox => "INBOX".into(),
        ImapMailbox::Other(o) => String::from_utf8_lossy(o.as_ref()).into_owned(),
    }
}

pub fn seq_text(v: &SeqOrUid) -> String {
    match v {
        SeqOrUid::Value(n) => n.get().to_string(),
        SeqOrUid::Asterisk => "*".into(),
    }
}

/// A sequence set as IMAP text (`1:4,7,9:*`).
pub fn set_text(set: &SequenceSet) -> String {
    set.0
        .as_ref()
        .iter()
        .map(|s| match s {
            Sequence::Single(v) => seq_text(v),
            Sequence::Range(a, b) => format!("{}:{}", seq_text(a), seq_text(b)),
        })
        .collect::<Vec<_>>()
        .join(",")
}

pub fn uid_set_text(set: &imap_codec::imap_types::extensions::uidplus::UidSet) -> String {
    use imap_codec::imap_types::extensions::uidplus::UidElement;
    set.0
        .as_ref()
        .iter()
        .map(|e| match e {
            UidElement::Single(v) => v.get().to_string(),
            UidElement::Range(a, b) => format!("{a}:{b}"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The sequence numbers of a set, in a mailbox of `exists` messages.
pub fn seqs(set: &SequenceSet, exists: u32) -> impl Iterator<Item = u32> + '_ {
    let v = move |x: &SeqOrUid| match x {
        SeqOrUid::Value(n) => n.get().min(exists.max(1)),
        SeqOrUid::Asterisk => exists,
    };
    set.0.as_ref().iter().flat_map(move |s| {
        let (a, b) = match s {
            Sequence::Single(x) => (v(x), v(x)),
            Sequence::Range(a, b) => (v(a).min(v(b)), v(a).max(v(b))),
        };
        (a..=b).filter(|&n| n > 0)
    })
}

/// `(tag, mailbox)` of an APPEND command's first line (mailbox as an atom or a
/// quoted string; `INBOX` in any case is INBOX). Tag and command are read as the
/// session reads them ([`command_start`]), so both agree on what the line is.
pub fn append_target(line: &[u8]) -> Option<(String, String)> {
    let (tag, name) = command_start(line)?;
    if !name.is("APPEND") {
        return None;
    }
    let text = std::str::from_utf8(line).ok()?;
    let text = text.trim_end_matches(['\r', '\n']);
    let tag = std::str::from_utf8(tag).ok()?;
    let rest = text
        .get(tag.len() + 1 + "APPEND".len()..)?
        .strip_prefix(' ')?;
    let name = if let Some(q) = rest.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = q.chars();
        loop {
            match chars.next()? {
                '\\' => out.push(chars.next()?),
                '"' => break,
                c => out.push(c),
            }
        }
        out
    } else {
        let atom = rest.split(' ').next()?;
        if atom.starts_with('{') || atom.starts_with('~') {
            return None;
        }
        atom.to_string()
    };
    let name = if name.eq_ignore_ascii_case("INBOX") {
        "INBOX".to_string()
    } else {
        name
    };
    Some((tag.to_string(), name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_targets() {
        assert_eq!(
            append_target(b"a1 APPEND \"CRM/Track\" (\\Seen) {5000000}\r\n"),
            Some(("a1".into(), "CRM/Track".into()))
        );
        assert_eq!(
            append_target(b"a2 append inbox {5}\r\n"),
            Some(("a2".into(), "INBOX".into()))
        );
        assert_eq!(
            append_target(b"a3 APPEND \"a\\\"b\" {5}\r\n"),
            Some(("a3".into(), "a\"b".into()))
        );
        assert_eq!(append_target(b"a4 APPEND {9}\r\n"), None);
        assert_eq!(append_target(b"a5 FETCH 1 BODY[]\r\n"), None);
    }

    /// Found by the `command` fuzz target: with a CR inside the first token, the
    /// APPEND parse and the session's command scan read different tags (here the
    /// scan reads an empty tag, so no command at all).
    #[test]
    fn append_target_reads_the_line_as_the_session_does() {
        assert_eq!(append_target(b"\r\nali{}4a7 APPEND APPE}\r\n\n"), None);
        assert_eq!(append_target(b"a\rb APPEND x {5}\r\n"), None);
        assert_eq!(
            append_target(b"a\rAPPEND x {5}\r\n"),
            Some(("a".into(), "x".into()))
        );
    }
}
