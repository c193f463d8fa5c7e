//! Comparing live messages with recorded ones (pure): tags through a recorded →
//! live map, redacted credentials as wildcards, and the normalisations a
//! transcript's header lists for `--against`.

use std::collections::HashMap;

use super::script::Step;
use crate::record::format::Normalise;
use crate::wire::token::first_token;

/// Recorded tag → the live tag that took its place.
#[derive(Debug, Default, Clone)]
pub struct TagMap(HashMap<Vec<u8>, Vec<u8>>);

impl TagMap {
    /// `line` with its tag replaced by the mapped one (if it has a mapped tag).
    pub fn remap(&self, line: &[u8]) -> Vec<u8> {
        let tag = first_token(line);
        match self.0.get(tag) {
            Some(live) => {
                let mut out = live.clone();
                out.extend_from_slice(&line[tag.len()..]);
                out
            }
            None => line.to_vec(),
        }
    }
}

/// Whether a live client message's first line is the one `step` recorded; on a
/// match the tags are mapped. `Err` says what differs.
pub fn first_line_matches(step: &Step, live: &[u8], tags: &mut TagMap) -> Result<(), String> {
    let live = live.strip_suffix(b"\r\n").unwrap_or(live);
    let recorded = step.first_line();
    if step.redacted {
        // `[redacted SASL response]`: any line; else tag + command (+ mechanism).
        if recorded.starts_with(b"[") {
            return Ok(());
        }
        let words: Vec<&[u8]> = recorded.split(|b| *b == b' ').collect();
        let fixed = words.len().saturating_sub(2); // the tag and `[redacted]` are not compared
        let live_words: Vec<&[u8]> = live.split(|b| *b == b' ').collect();
        let same = live_words.len() > fixed
            && words[1..=fixed]
                .iter()
                .zip(&live_words[1..=fixed])
                .all(|(a, b)| a.eq_ignore_ascii_case(b));
        if !same {
            return Err("a different command".into());
        }
        tags.0.insert(words[0].to_vec(), live_words[0].to_vec());
        return Ok(());
    }
    match step.tag() {
        Some(tag) => {
            let live_tag = first_token(live);
            if recorded[tag.len()..] != live[live_tag.len()..] {
                return Err("a different command".into());
            }
            tags.0.insert(tag.to_vec(), live_tag.to_vec());
            Ok(())
        }
        None if recorded == live => Ok(()),
        None => Err("a different line".into()),
    }
}

/// A message line for people: escaped, without its line ending, cut at 200 characters.
pub fn show(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\r\n").unwrap_or(line);
    let mut out = Vec::new();
    crate::record::escape::escape_into(&mut out, &line[..line.len().min(200)]);
    let mut s = String::from_utf8_lossy(&out).into_owned();
    if line.len() > 200 {
        s.push('…');
    }
    s
}

/// Apply `rules`, in order, to a server line.
pub fn normalise(line: &[u8], rules: &[Normalise]) -> Vec<u8> {
    let mut out = line.to_vec();
    for r in rules {
        out = match r {
            Normalise::Tag => out,
            Normalise::Date => replace_dates(&out),
            Normalise::UidValidity => {
                let o = number_after(&out, b"UIDVALIDITY ");
                let o = number_after(&o, b"APPENDUID ");
                number_after(&o, b"COPYUID ")
            }
            Normalise::Modseq => {
                let o = number_after(&out, b"HIGHESTMODSEQ ");
                number_after(&o, b"MODSEQ (")
            }
            Normalise::Text => drop_status_text(&out),
            Normalise::Capability => match crate::wire::caps::capability_span(&out) {
                Some((start, end)) => [&out[..start], b"<capabilities>", &out[end..]].concat(),
                None => out,
            },
        };
    }
    out
}

/// `KEY <digits>` → `KEY <n>` wherever KEY occurs (case-insensitive).
fn number_after(line: &[u8], key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        if line.len() - i >= key.len() && line[i..i + key.len()].eq_ignore_ascii_case(key) {
            out.extend_from_slice(&line[i..i + key.len()]);
            i += key.len();
            let digits = line[i..].iter().take_while(|b| b.is_ascii_digit()).count();
            if digits > 0 {
                out.extend_from_slice(b"<n>");
                i += digits;
            }
        } else {
            out.push(line[i]);
            i += 1;
        }
    }
    out
}

/// `tag OK [CODE] text` → `tag OK [CODE]` (also NO, BAD, BYE, PREAUTH, untagged).
fn drop_status_text(line: &[u8]) -> Vec<u8> {
    let tag = first_token(line);
    let rest = line.get(tag.len() + 1..).unwrap_or_default();
    let word = first_token(rest);
    let is_status = [&b"OK"[..], b"NO", b"BAD", b"BYE", b"PREAUTH"]
        .iter()
        .any(|w| word.eq_ignore_ascii_case(w));
    if !is_status || tag == b"+" {
        return line.to_vec();
    }
    let after = tag.len() + 1 + word.len();
    let keep = if line.get(after + 1) == Some(&b'[') {
        match memchr::memchr(b']', &line[after..]) {
            Some(close) => after + close + 1,
            None => line.len(),
        }
    } else {
        after
    };
    let mut out = line[..keep.min(line.len())].to_vec();
    if line.ends_with(b"\r\n") && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Dates and times → `<date>`: `5-Dec-2026 21:40:00 +0000` (INTERNALDATE) and
/// `Sat, 5 Dec 2026 21:40:00 +0000` (RFC 5322, day name optional).
fn replace_dates(line: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        let boundary = i == 0 || !line[i - 1].is_ascii_alphanumeric();
        match boundary.then(|| date_len(&line[i..])).flatten() {
            Some(n) => {
                out.extend_from_slice(b"<date>");
                i += n;
            }
            None => {
                out.push(line[i]);
                i += 1;
            }
        }
    }
    out
}

/// Length of a date at the start of `s`: day, sep, month, sep, year, time, zone.
fn date_len(s: &[u8]) -> Option<usize> {
    let digits = |s: &[u8], at: usize, min: usize, max: usize| {
        let n = s
            .get(at..)?
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        (min..=max).contains(&n).then_some(n)
    };
    let mut i = digits(s, 0, 1, 2)?;
    let sep = *s.get(i)?;
    if sep != b'-' && sep != b' ' {
        return None;
    }
    i += 1;
    if !s.get(i..i + 3)?.iter().all(u8::is_ascii_alphabetic) || s.get(i + 3) != Some(&sep) {
        return None;
    }
    i += 4;
    i += digits(s, i, 4, 4)?;
    if s.get(i) != Some(&b' ') {
        return None;
    }
    i += 1;
    for k in 0..3 {
        i += digits(s, i, 2, 2)?;
        if k < 2 {
            if s.get(i) != Some(&b':') {
                return None;
            }
            i += 1;
        }
    }
    if s.get(i) == Some(&b' ')
        && matches!(s.get(i + 1), Some(b'+' | b'-'))
        && digits(s, i + 2, 4, 4).is_some()
    {
        i += 6;
    }
    Some(i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::script::index;

    fn steps(t: &str) -> Vec<Step> {
        index(format!("# crmproxy transcript 1\n{t}").as_bytes())
            .unwrap()
            .steps
    }

    #[test]
    fn tags_map_and_wildcards() {
        let s = steps("C: 0.000 a1 SELECT INBOX\nC! 0.000 a2 LOGIN [redacted]\nC! 0.000 a3 AUTHENTICATE PLAIN [redacted]\nC! 0.000 [redacted SASL response]\nC: 0.000 DONE\n");
        let mut tags = TagMap::default();
        first_line_matches(&s[0], b"X7 SELECT INBOX\r\n", &mut tags).unwrap();
        assert!(first_line_matches(&s[0], b"X7 SELECT Junk\r\n", &mut tags).is_err());
        first_line_matches(&s[1], b"X8 login bob pw\r\n", &mut tags).unwrap();
        first_line_matches(&s[1], b"X8 LOGIN {3}\r\n", &mut tags).unwrap();
        assert!(first_line_matches(&s[1], b"X8 NOOP\r\n", &mut tags).is_err());
        first_line_matches(&s[2], b"X9 AUTHENTICATE PLAIN AGJvYgBwdw==\r\n", &mut tags).unwrap();
        assert!(first_line_matches(&s[2], b"X9 AUTHENTICATE XOAUTH2 abc\r\n", &mut tags).is_err());
        first_line_matches(&s[3], b"AGJvYgBwdw==\r\n", &mut tags).unwrap();
        first_line_matches(&s[4], b"DONE\r\n", &mut tags).unwrap();
        assert_eq!(tags.remap(b"a1 OK done\r\n"), b"X7 OK done\r\n");
        assert_eq!(tags.remap(b"a3 OK done\r\n"), b"X9 OK done\r\n");
        assert_eq!(tags.remap(b"* OK hi\r\n"), b"* OK hi\r\n");
    }

    #[test]
    fn normalisations() {
        let all = Normalise::ALL;
        let n = |l: &str| String::from_utf8(normalise(l.as_bytes(), &all)).unwrap();
        assert_eq!(
            n("a1 OK [READ-WRITE] Select completed (0.001 + 0.000 secs).\r\n"),
            "a1 OK [READ-WRITE]\r\n"
        );
        assert_eq!(
            n("* OK [UIDVALIDITY 1733433600] UIDs valid\r\n"),
            "* OK [UIDVALIDITY <n>]\r\n"
        );
        assert_eq!(
            n("a2 OK [APPENDUID 17 4] Append completed.\r\n"),
            "a2 OK [APPENDUID <n> 4]\r\n"
        );
        assert_eq!(
            n("* 1 FETCH (INTERNALDATE \"05-Dec-2026 21:40:00 +0000\" MODSEQ (12))\r\n"),
            "* 1 FETCH (INTERNALDATE \"<date>\" MODSEQ (<n>))\r\n"
        );
        assert_eq!(
            n("* 1 FETCH (ENVELOPE (\"Mon, 23 Nov 2026 10:00:00 +0000\" NIL))\r\n"),
            "* 1 FETCH (ENVELOPE (\"Mon, <date>\" NIL))\r\n"
        );
        assert_eq!(n("* 3 EXISTS\r\n"), "* 3 EXISTS\r\n");
        assert_eq!(
            n("* OK [CAPABILITY IMAP4rev1 STARTTLS IDLE] Dovecot ready.\r\n"),
            "* OK [CAPABILITY <capabilities>]\r\n"
        );
        assert_eq!(
            n("* CAPABILITY IMAP4rev1 IDLE\r\n"),
            "* CAPABILITY <capabilities>\r\n"
        );
        assert_eq!(normalise(b"a1 OK text\r\n", &[]), b"a1 OK text\r\n");
    }
}
