//! Where folders are on a server: the config names folders by logical paths
//! (`CRM/Track`, `/` between levels), mapped to the server's personal namespace
//! prefix and hierarchy separator (RFC 2342 NAMESPACE, else LIST's delimiter):
//! `CRM/Track` is `INBOX.CRM.Track` on Courier and `CRM/Track` on Dovecot. Sent and
//! Drafts are found by SPECIAL-USE (or XLIST) attributes in any letter case, else by
//! well-known names. Pure: callers send the commands and hand the answers in here.

use base64::engine::general_purpose::{GeneralPurpose, NO_PAD};
use base64::Engine as _;
use serde::Serialize;

/// The separator of logical folder paths in the config.
const LOGICAL_SEPARATOR: char = '/';

/// A server's personal namespace: names of the user's folders start with
/// `prefix` (e.g. `INBOX.`) and use `separator` between levels (`None`: a flat
/// namespace, RFC 3501 NIL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FolderLayout {
    pub prefix: String,
    pub separator: Option<char>,
}

impl Default for FolderLayout {
    /// Dovecot's and most servers': no prefix, `/`.
    fn default() -> Self {
        FolderLayout {
            prefix: String::new(),
            separator: Some(LOGICAL_SEPARATOR),
        }
    }
}

impl FolderLayout {
    pub fn new(prefix: &str, separator: Option<char>) -> FolderLayout {
        FolderLayout {
            prefix: prefix.to_owned(),
            separator,
        }
    }

    /// The layouts servers commonly have (Dovecot's first), for reading a
    /// folder name before the server's own is known.
    pub fn usual() -> Vec<FolderLayout> {
        vec![
            FolderLayout::default(),
            FolderLayout::new("INBOX.", Some('.')),
            FolderLayout::new("INBOX/", Some('/')),
        ]
    }

    /// The server's name of a logical folder path. A name that carries the
    /// prefix already (`INBOX.CRM.Track` set by hand) is kept as it is.
    pub fn to_server(&self, logical: &str) -> String {
        if logical.eq_ignore_ascii_case("INBOX") {
            return "INBOX".into();
        }
        let mapped = match self.separator {
            Some(sep) => logical.replace(LOGICAL_SEPARATOR, &sep.to_string()),
            None => logical.to_owned(),
        };
        // The config is UTF-8; the wire wants modified UTF-7, unless the name is
        // written in it already (`Entw&APw-rfe`).
        let mapped = if mapped.is_ascii() && decode_mutf7(&mapped).is_some() {
            mapped
        } else {
            encode_mutf7(&mapped)
        };
        if self.prefix.is_empty() || strip_prefix(&mapped, &self.prefix).is_some() {
            mapped
        } else {
            format!("{}{mapped}", self.prefix)
        }
    }

    /// The logical path of a server's folder name; `None` for a folder outside
    /// the personal namespace or one with no logical name (a `/` inside a level).
    pub fn to_logical(&self, server: &str) -> Option<String> {
        if server.eq_ignore_ascii_case("INBOX") {
            return Some("INBOX".into());
        }
        let rest = strip_prefix(server, &self.prefix)?;
        if rest.is_empty() {
            return None;
        }
        let rest = &decode_mutf7(rest)?;
        match self.separator {
            Some(LOGICAL_SEPARATOR) | None => Some(rest.to_owned()),
            Some(_) if rest.contains(LOGICAL_SEPARATOR) => None,
            Some(sep) => Some(rest.replace(sep, &LOGICAL_SEPARATOR.to_string())),
        }
    }

    /// Whether a server's folder name is the folder a logical path names.
    pub fn names(&self, server: &str, logical: &str) -> bool {
        let mapped = self.to_server(logical);
        if mapped.eq_ignore_ascii_case("INBOX") {
            return server.eq_ignore_ascii_case("INBOX");
        }
        server == mapped || server == logical
    }

    /// The first personal namespace of a `* NAMESPACE` line; `None` when the line
    /// is no NAMESPACE response or names no personal namespace (`NIL`).
    pub fn from_namespace_line(line: &str) -> Option<FolderLayout> {
        let rest = strip_word(line.trim_start().strip_prefix('*')?, "NAMESPACE")?;
        let rest = rest.trim_start().strip_prefix("((")?;
        let (prefix, rest) = string_or_nil(rest)?;
        let (separator, _) = string_or_nil(rest)?;
        Some(FolderLayout {
            prefix: prefix.unwrap_or_default(),
            separator: separator.and_then(|s| s.chars().next()),
        })
    }
}

/// Modified BASE64 of RFC 3501 section 5.1.3 (`,` for `/`, no padding).
const MUTF7: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::IMAP_MUTF7, NO_PAD);

/// A folder name in modified UTF-7 (RFC 3501 section 5.1.3).
pub fn encode_mutf7(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if !pending.is_empty() {
            let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
            out.push('&');
            out.push_str(&MUTF7.encode(bytes));
            out.push('-');
            pending.clear();
        }
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut pending, &mut out);
            out.push(c);
            if c == '&' {
                out.push('-');
            }
        } else {
            pending.extend(c.encode_utf16(&mut [0; 2]).iter());
        }
    }
    flush(&mut pending, &mut out);
    out
}

/// A modified UTF-7 folder name decoded; `None` when it is not valid.
pub fn decode_mutf7(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let (encoded, after) = rest[at + 1..].split_once('-')?;
        if encoded.is_empty() {
            out.push('&');
        } else {
            let bytes = MUTF7.decode(encoded).ok()?;
            if bytes.len() % 2 != 0 {
                return None;
            }
            let units = bytes.chunks(2).map(|b| u16::from_be_bytes([b[0], b[1]]));
            out.push_str(
                &char::decode_utf16(units)
                    .collect::<Result<String, _>>()
                    .ok()?,
            );
        }
        rest = after;
    }
    out.push_str(rest);
    out.chars().all(|c| !c.is_control()).then_some(out)
}

/// `name` without `prefix` (the `INBOX` part of a prefix in any letter case).
fn strip_prefix<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    if prefix.len() >= 5 && prefix[..5].eq_ignore_ascii_case("INBOX") {
        let head = name.get(..prefix.len())?;
        return (head[..5].eq_ignore_ascii_case("INBOX") && head[5..] == prefix[5..])
            .then(|| &name[prefix.len()..]);
    }
    name.strip_prefix(prefix)
}

/// `s` after the word `word` (any letter case) and a space.
fn strip_word<'a>(s: &'a str, word: &str) -> Option<&'a str> {
    let s = s.trim_start();
    let head = s.get(..word.len())?;
    head.eq_ignore_ascii_case(word)
        .then(|| &s[word.len()..])
        .filter(|r| r.starts_with(' '))
}

/// A quoted string, an atom or NIL at the start of `s` (after spaces), and the rest.
fn string_or_nil(s: &str) -> Option<(Option<String>, &str)> {
    let s = s.trim_start();
    if let Some(body) = s.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => out.push(chars.next()?.1),
                '"' => return Some((Some(out), &body[i + 1..])),
                _ => out.push(c),
            }
        }
        return None;
    }
    let end = s
        .find(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .unwrap_or(s.len());
    let word = &s[..end];
    if word.is_empty() {
        return None;
    }
    let value = (!word.eq_ignore_ascii_case("NIL")).then(|| word.to_owned());
    Some((value, &s[end..]))
}

/// One `* LIST` (or `* XLIST`) line: attributes, delimiter and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    pub attributes: Vec<String>,
    pub delimiter: Option<char>,
    pub name: String,
}

impl ListEntry {
    /// Parse a LIST/XLIST line; `literal`: the name when it came as a literal.
    pub fn parse(line: &str, literal: Option<&[u8]>) -> Option<ListEntry> {
        let rest = line.trim_start().strip_prefix('*')?;
        let rest = strip_word(rest, "LIST").or_else(|| strip_word(rest, "XLIST"))?;
        let rest = rest.trim_start().strip_prefix('(')?;
        let (attrs, rest) = rest.split_once(')')?;
        let (delimiter, rest) = string_or_nil(rest)?;
        let name = match literal {
            Some(l) => String::from_utf8_lossy(l).into_owned(),
            None => string_or_nil(rest)?.0?,
        };
        Some(ListEntry {
            attributes: attrs.split_whitespace().map(str::to_owned).collect(),
            delimiter: delimiter.and_then(|d| d.chars().next()),
            name,
        })
    }

    fn has_attribute(&self, attribute: &str) -> bool {
        self.attributes
            .iter()
            .any(|a| a.eq_ignore_ascii_case(attribute))
    }
}

/// The special folders tracking and the pane need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecialUse {
    Sent,
    Drafts,
}

impl SpecialUse {
    /// The RFC 6154 (and XLIST) attribute.
    pub fn attribute(self) -> &'static str {
        match self {
            SpecialUse::Sent => "\\Sent",
            SpecialUse::Drafts => "\\Drafts",
        }
    }

    /// Names servers give the folder where they mark none, as logical paths
    /// (tried under the namespace and as they are), most common first.
    pub fn well_known_names(self) -> &'static [&'static str] {
        match self {
            SpecialUse::Sent => &["Sent", "Sent Items", "Sent Messages", "[Gmail]/Sent Mail"],
            SpecialUse::Drafts => &["Drafts", "Draft", "[Gmail]/Drafts"],
        }
    }

    /// Whether a server folder name is one of the well-known names (any case).
    pub fn is_well_known(self, server: &str, layout: &FolderLayout) -> bool {
        self.well_known_names()
            .iter()
            .any(|known| names_known(server, known, layout))
    }
}

/// Whether `server` is the well-known logical name `known`: under the namespace,
/// as it is, or one level below INBOX (any letter case).
fn names_known(server: &str, known: &str, layout: &FolderLayout) -> bool {
    let mapped = layout.to_server(known);
    let below_inbox = layout
        .separator
        .is_some_and(|sep| server.eq_ignore_ascii_case(&format!("INBOX{sep}{mapped}")));
    server.eq_ignore_ascii_case(&mapped) || server.eq_ignore_ascii_case(known) || below_inbox
}

/// The folder of `kind` among a LIST's entries: the one marked with its
/// attribute (any case), else the first well-known name that exists.
pub fn find_special(
    entries: &[ListEntry],
    kind: SpecialUse,
    layout: &FolderLayout,
) -> Option<String> {
    if let Some(e) = entries.iter().find(|e| e.has_attribute(kind.attribute())) {
        return Some(e.name.clone());
    }
    let selectable = || {
        entries
            .iter()
            .filter(|e| !e.has_attribute("\\Noselect") && !e.has_attribute("\\NonExistent"))
    };
    kind.well_known_names().iter().find_map(|known| {
        selectable()
            .find(|e| names_known(&e.name, known, layout))
            .map(|e| e.name.clone())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn courier() -> FolderLayout {
        FolderLayout::new("INBOX.", Some('.'))
    }

    #[test]
    fn logical_paths_map_to_each_layout_and_back() {
        let dovecot = FolderLayout::default();
        assert_eq!(courier().to_server("CRM/Track"), "INBOX.CRM.Track");
        assert_eq!(dovecot.to_server("CRM/Track"), "CRM/Track");
        assert_eq!(
            courier().to_logical("INBOX.CRM.Track").as_deref(),
            Some("CRM/Track")
        );
        assert_eq!(
            dovecot.to_logical("CRM/Track").as_deref(),
            Some("CRM/Track")
        );
        // INBOX itself, in any case, on every layout.
        for l in [courier(), dovecot.clone(), FolderLayout::new("", None)] {
            assert_eq!(l.to_server("inbox"), "INBOX");
            assert_eq!(l.to_logical("Inbox").as_deref(), Some("INBOX"));
        }
        // Set by hand with the prefix: kept.
        assert_eq!(courier().to_server("INBOX.CRM.Track"), "INBOX.CRM.Track");
        assert_eq!(courier().to_server("inbox.Sent"), "inbox.Sent");
        // Outside the namespace, or a `/` inside a level: no logical name.
        assert_eq!(courier().to_logical("Shared.x"), None);
        assert_eq!(courier().to_logical("INBOX.a/b"), None);
        assert_eq!(courier().to_logical("INBOX."), None);
        // A flat namespace (NIL separator) keeps the path as one name.
        let flat = FolderLayout::new("", None);
        assert_eq!(flat.to_server("CRM/Track"), "CRM/Track");
        assert_eq!(flat.to_logical("CRM/Track").as_deref(), Some("CRM/Track"));
        // `/` with a prefix.
        let slash = FolderLayout::new("INBOX/", Some('/'));
        assert_eq!(slash.to_server("CRM/Track"), "INBOX/CRM/Track");
        assert_eq!(
            slash.to_logical("INBOX/CRM/Track").as_deref(),
            Some("CRM/Track")
        );
        assert!(courier().names("INBOX.CRM.Track", "CRM/Track"));
        assert!(!courier().names("CRM.Track", "CRM/Track"));
    }

    #[test]
    fn names_go_to_the_wire_in_modified_utf7() {
        assert_eq!(encode_mutf7("Entwürfe"), "Entw&APw-rfe");
        assert_eq!(encode_mutf7("R&D"), "R&-D");
        assert_eq!(encode_mutf7("台北"), "&U,BTFw-");
        assert_eq!(decode_mutf7("Entw&APw-rfe").as_deref(), Some("Entwürfe"));
        assert_eq!(decode_mutf7("&U,BTFw-").as_deref(), Some("台北"));
        assert_eq!(decode_mutf7("R&-D").as_deref(), Some("R&D"));
        assert_eq!(decode_mutf7("R&D"), None);
        let l = courier();
        assert_eq!(l.to_server("Kunden/Entwürfe"), "INBOX.Kunden.Entw&APw-rfe");
        assert_eq!(
            l.to_server("Kunden/Entw&APw-rfe"),
            "INBOX.Kunden.Entw&APw-rfe"
        );
        assert_eq!(l.to_server("R&D"), "INBOX.R&-D");
        assert_eq!(
            l.to_logical("INBOX.Kunden.Entw&APw-rfe").as_deref(),
            Some("Kunden/Entwürfe")
        );
        assert_eq!(l.to_logical("INBOX.R&D"), None);
    }

    #[test]
    fn namespace_lines() {
        let l = FolderLayout::from_namespace_line(
            r##"* NAMESPACE (("INBOX." ".")) NIL (("#shared." "."))"##,
        );
        assert_eq!(l, Some(courier()));
        let l = FolderLayout::from_namespace_line(
            r##"* namespace (("" "/")("#mh/" "/" "X-PARAM" ("a"))) NIL NIL"##,
        );
        assert_eq!(l, Some(FolderLayout::default()));
        let l = FolderLayout::from_namespace_line(r#"* NAMESPACE (("" NIL)) NIL NIL"#);
        assert_eq!(l, Some(FolderLayout::new("", None)));
        let l = FolderLayout::from_namespace_line(r#"* NAMESPACE (("a\"b/" "\\")) NIL NIL"#);
        assert_eq!(l, Some(FolderLayout::new("a\"b/", Some('\\'))));
        assert_eq!(
            FolderLayout::from_namespace_line("* NAMESPACE NIL NIL NIL"),
            None
        );
        assert_eq!(FolderLayout::from_namespace_line("* NAMESPACES x"), None);
    }

    #[test]
    fn list_lines() {
        let e =
            ListEntry::parse(r#"* LIST (\HasNoChildren \Sent) "/" "Sent Items""#, None).unwrap();
        assert_eq!((e.name.as_str(), e.delimiter), ("Sent Items", Some('/')));
        let e = ListEntry::parse(r#"* XLIST (\sent) "." INBOX.Sent"#, None).unwrap();
        assert_eq!((e.name.as_str(), e.delimiter), ("INBOX.Sent", Some('.')));
        let e = ListEntry::parse(r#"* LIST () NIL {3}"#, Some(b"A b")).unwrap();
        assert_eq!((e.name.as_str(), e.delimiter), ("A b", None));
        let e = ListEntry::parse(r#"* LIST (\Noselect) "\\" """#, None).unwrap();
        assert_eq!((e.name.as_str(), e.delimiter), ("", Some('\\')));
        assert_eq!(ListEntry::parse("* LSUB () \"/\" x", None), None);
    }

    fn entries(lines: &[&str]) -> Vec<ListEntry> {
        lines
            .iter()
            .filter_map(|l| ListEntry::parse(l, None))
            .collect()
    }

    #[test]
    fn sent_and_drafts_by_attribute_any_case_else_by_name() {
        let cyrus = entries(&[
            r#"* LIST (\HasNoChildren) "." INBOX"#,
            r#"* LIST (\sent) "." "INBOX.Gesendet""#,
            r#"* LIST (\HasNoChildren \DRAFTS) "." INBOX.Entw"#,
        ]);
        let sent = find_special(&cyrus, SpecialUse::Sent, &courier());
        assert_eq!(sent.as_deref(), Some("INBOX.Gesendet"));
        assert_eq!(
            find_special(&cyrus, SpecialUse::Drafts, &courier()).as_deref(),
            Some("INBOX.Entw")
        );
        let plain = entries(&[
            r#"* LIST () "." INBOX"#,
            r#"* LIST () "." INBOX.Drafts"#,
            r#"* LIST () "." "INBOX.Sent Items""#,
        ]);
        assert_eq!(
            find_special(&plain, SpecialUse::Sent, &courier()).as_deref(),
            Some("INBOX.Sent Items")
        );
        assert_eq!(
            find_special(&plain, SpecialUse::Drafts, &courier()).as_deref(),
            Some("INBOX.Drafts")
        );
        let gmail = entries(&[
            r#"* LIST (\HasChildren \Noselect) "/" "[Gmail]""#,
            r#"* LIST () "/" "[Gmail]/Sent Mail""#,
        ]);
        assert_eq!(
            find_special(&gmail, SpecialUse::Sent, &FolderLayout::default()).as_deref(),
            Some("[Gmail]/Sent Mail")
        );
        // Without the prefix on a prefixed server, and with it on an unprefixed one.
        let bare = entries(&[r#"* LIST () "." Sent"#]);
        assert_eq!(
            find_special(&bare, SpecialUse::Sent, &courier()).as_deref(),
            Some("Sent")
        );
        let under_inbox = entries(&[r#"* LIST () "/" "INBOX/Sent Messages""#]);
        assert_eq!(
            find_special(&under_inbox, SpecialUse::Sent, &FolderLayout::default()).as_deref(),
            Some("INBOX/Sent Messages")
        );
        assert_eq!(
            find_special(&under_inbox, SpecialUse::Drafts, &FolderLayout::default()),
            None
        );
        assert!(SpecialUse::Sent.is_well_known("inbox.sent", &courier()));
        assert!(!SpecialUse::Sent.is_well_known("INBOX.Sentinel", &courier()));
    }
}
