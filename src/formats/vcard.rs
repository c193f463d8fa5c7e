//! vCard 2.1 / 3.0 / 4.0 address books read with Stalwart's `calcard` (folded
//! lines, quoted-printable and base64 values in their CHARSET, item groups,
//! escapes) into contact rows. A file that is not UTF-8 is decoded first with
//! `encoding_rs`, in the charset it declares (else windows-1252, what Outlook
//! writes). Photos are left out; CATEGORIES are kept, and so are group cards
//! (KIND:group, Apple's X-ADDRESSBOOKSERVER-KIND): a group's name becomes a
//! category of each of its members.

use std::borrow::Cow;

use calcard::vcard::{
    VCard, VCardEntry, VCardKind, VCardParameterName, VCardParameterValue, VCardProperty,
    VCardType, VCardValue,
};
use calcard::{Entry, Parser};
use encoding_rs::{Encoding, UTF_16BE, UTF_16LE, WINDOWS_1252};

use super::import::{ImportError, Row, MAX_LINE_BYTES};
use crate::store::address::EmailAddress;
use crate::store::model::{Contact, ContactId, PostalAddress, Record, Stamps};

/// Does the file hold vCards (whatever its charset)?
pub fn is_vcard(bytes: &[u8]) -> bool {
    let text = decode(bytes);
    let head = text.trim_start_matches(['\u{feff}', ' ', '\t', '\r', '\n']);
    // By bytes: the 11th byte may fall inside a character (a fuzzer found it).
    head.as_bytes()
        .get(..11)
        .is_some_and(|b| b.eq_ignore_ascii_case(b"BEGIN:VCARD"))
}

/// The file as text: UTF-8 (or UTF-16 with its mark) as it is; otherwise the
/// first CHARSET the file declares, else windows-1252.
fn decode(bytes: &[u8]) -> Cow<'_, str> {
    if let Some((enc, bom)) = Encoding::for_bom(bytes) {
        if enc == UTF_16LE || enc == UTF_16BE {
            return enc.decode_without_bom_handling(&bytes[bom..]).0;
        }
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Cow::Borrowed(text);
    }
    let declared = declared_charset(bytes).and_then(|c| Encoding::for_label(c.as_bytes()));
    declared
        .unwrap_or(WINDOWS_1252)
        .decode_without_bom_handling(bytes)
        .0
}

/// The first `CHARSET=…` parameter's value.
fn declared_charset(bytes: &[u8]) -> Option<String> {
    let at = bytes
        .windows(8)
        .position(|w| w.eq_ignore_ascii_case(b"CHARSET="))?;
    let rest = &bytes[at + 8..];
    let end = rest
        .iter()
        .position(|b| matches!(b, b';' | b':' | b'\r' | b'\n'))
        .unwrap_or(rest.len());
    let v = std::str::from_utf8(&rest[..end]).ok()?;
    Some(v.trim_matches('"').to_string())
}

/// vCard 2.1 also writes the encoding bare (`TEL;QUOTED-PRINTABLE:`); calcard
/// reads `ENCODING=`: say it so on the lines that start a property.
fn normalize_bare_qp(text: &str) -> Cow<'_, str> {
    let needle = ";QUOTED-PRINTABLE";
    if !text.to_ascii_uppercase().contains(needle) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.split_inclusive('\n') {
        let head_end = line.find(':').unwrap_or(line.len());
        let upper = line[..head_end].to_ascii_uppercase();
        let bare = upper
            .match_indices(needle)
            .find(|(i, _)| !upper[..*i].ends_with("ENCODING="))
            .map(|(i, _)| i);
        match bare {
            Some(i) if !upper[..i].ends_with('=') => {
                out.push_str(&line[..i]);
                out.push_str(";ENCODING=QUOTED-PRINTABLE");
                out.push_str(&line[i + needle.len()..]);
            }
            _ => out.push_str(line),
        }
    }
    Cow::Owned(out)
}

/// Read every vCard in the file as a contact row. A truncated card, a line
/// outside a card, or an over-long line is an error for the whole file.
pub fn parse(bytes: &[u8]) -> Result<Vec<Row>, ImportError> {
    let text = decode(bytes);
    let mut starts = Vec::new();
    for (i, l) in text.split('\n').enumerate() {
        if l.len() > MAX_LINE_BYTES {
            return Err(ImportError::LineTooLong { line: i + 1 });
        }
        if l.trim_start_matches('\u{feff}')
            .get(..11)
            .is_some_and(|h| h.eq_ignore_ascii_case("BEGIN:VCARD"))
        {
            starts.push(i + 1);
        }
    }
    let text = normalize_bare_qp(&text);
    let mut parser = Parser::new(&text).strict();
    let mut cards = Vec::new();
    loop {
        let line = starts.get(cards.len()).copied().unwrap_or(0);
        match parser.entry() {
            Entry::VCard(card) => {
                if card.property(&VCardProperty::Begin).is_some() {
                    return Err(ImportError::Syntax {
                        line,
                        detail: "BEGIN inside the vCard that starts here (missing END:VCARD)"
                            .into(),
                    });
                }
                cards.push((line, card));
            }
            Entry::Eof => break,
            Entry::UnterminatedComponent(_) | Entry::UnexpectedComponentEnd { .. } => {
                return Err(match starts.get(cards.len() + 1) {
                    Some(next) => ImportError::Syntax {
                        line: *next,
                        detail: format!(
                            "BEGIN inside the vCard that starts on line {line} (missing END:VCARD)"
                        ),
                    },
                    None => ImportError::Truncated {
                        detail: format!("the vCard starting on line {line} has no END:VCARD"),
                    },
                })
            }
            Entry::InvalidLine(l) => {
                return Err(ImportError::Syntax {
                    line,
                    detail: format!(
                        "{:?} is not a vCard property, or is outside BEGIN:VCARD … END:VCARD",
                        l.chars().take(60).collect::<String>()
                    ),
                })
            }
            other => {
                return Err(ImportError::Syntax {
                    line,
                    detail: format!("not a vCard: {other:?}"),
                })
            }
        }
    }
    let groups = group_categories(&cards);
    Ok(cards
        .iter()
        .filter(|(_, c)| !is_group(c))
        .map(|(line, c)| contact_of(*line, c, &groups))
        .collect())
}

/// A group card, not a person.
fn is_group(c: &VCard) -> bool {
    c.entries.iter().any(|e| match &e.name {
        VCardProperty::Kind => {
            matches!(e.values.first(), Some(VCardValue::Kind(VCardKind::Group)))
                || text(e).eq_ignore_ascii_case("group")
        }
        VCardProperty::Other(n) => {
            n.eq_ignore_ascii_case("X-ADDRESSBOOKSERVER-KIND")
                && text(e).eq_ignore_ascii_case("group")
        }
        _ => false,
    })
}

/// (member key, group name) for each member of each group card: a member is
/// named by `urn:uuid:…` (matched to UID) or `mailto:…` (matched to EMAIL).
fn group_categories(cards: &[(usize, VCard)]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (_, c) in cards.iter().filter(|(_, c)| is_group(c)) {
        let name = c.property(&VCardProperty::Fn).map(text).unwrap_or_default();
        if name.is_empty() {
            continue;
        }
        for e in &c.entries {
            let member = match &e.name {
                VCardProperty::Member => true,
                VCardProperty::Other(n) => n.eq_ignore_ascii_case("X-ADDRESSBOOKSERVER-MEMBER"),
                _ => false,
            };
            if member {
                out.push((member_key(&text(e)), name.clone()));
            }
        }
    }
    out
}

fn member_key(v: &str) -> String {
    let v = v.trim();
    let v = v
        .strip_prefix("urn:uuid:")
        .or_else(|| v.strip_prefix("mailto:"))
        .unwrap_or(v);
    v.to_ascii_lowercase()
}

/// A property's value as text: its values joined, a structured part's items
/// joined with ", ".
fn text(e: &VCardEntry) -> String {
    e.values
        .iter()
        .filter_map(value_text)
        .collect::<Vec<_>>()
        .join(", ")
        .trim()
        .to_string()
}

fn value_text(v: &VCardValue) -> Option<String> {
    match v {
        VCardValue::Text(t) => Some(t.clone()),
        VCardValue::Component(parts) => Some(parts.join(", ")),
        VCardValue::Kind(k) => Some(format!("{k:?}")),
        _ => None,
    }
}

/// The `i`th part of a structured value (N, ORG, ADR).
fn part(e: &VCardEntry, i: usize) -> String {
    e.values
        .get(i)
        .and_then(value_text)
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn has_type(e: &VCardEntry, t: VCardType) -> bool {
    e.params.iter().any(|p| match (&p.name, &p.value) {
        (VCardParameterName::Type, VCardParameterValue::Type(x)) => *x == t,
        _ => false,
    })
}

/// PREF (4.0), TYPE=pref (3.0) or a bare PREF (2.1).
fn is_preferred(e: &VCardEntry) -> bool {
    e.params.iter().any(|p| match (&p.name, &p.value) {
        (VCardParameterName::Pref, _) => true,
        (VCardParameterName::Type, VCardParameterValue::Text(x)) => x.eq_ignore_ascii_case("pref"),
        (VCardParameterName::Other(n), _) => n.eq_ignore_ascii_case("pref"),
        _ => false,
    })
}

fn contact_of(start: usize, card: &VCard, groups: &[(String, String)]) -> Row {
    let mut c = Contact {
        id: ContactId::new(),
        stamps: Stamps::default(),
        first_name: String::new(),
        last_name: String::new(),
        full_name: String::new(),
        job_title: String::new(),
        department: String::new(),
        company: String::new(),
        account: None,
        emails: Vec::new(),
        business_phone: String::new(),
        mobile_phone: String::new(),
        address: PostalAddress::default(),
        categories: Vec::new(),
    };
    let mut problems = Vec::new();
    let mut adr_rank = 0;
    let mut categories: Vec<String> = Vec::new();
    for e in &card.entries {
        match &e.name {
            VCardProperty::Fn => c.full_name = text(e),
            VCardProperty::N => {
                c.last_name = part(e, 0);
                c.first_name = part(e, 1);
            }
            VCardProperty::Email => match EmailAddress::parse(&text(e)) {
                Ok(a) if is_preferred(e) => c.emails.insert(0, a),
                Ok(a) => c.emails.push(a),
                Err(err) => problems.push(err.to_string()),
            },
            VCardProperty::Tel => {
                let num = text(e);
                let num = num.strip_prefix("tel:").unwrap_or(&num).to_string();
                if has_type(e, VCardType::Cell) {
                    c.mobile_phone = num;
                } else if c.business_phone.is_empty() || has_type(e, VCardType::Work) {
                    c.business_phone = num;
                }
            }
            VCardProperty::Org => {
                c.company = part(e, 0);
                c.department = part(e, 1);
            }
            VCardProperty::Title => c.job_title = text(e),
            VCardProperty::Adr => {
                let rank = if has_type(e, VCardType::Work) {
                    3
                } else if is_preferred(e) {
                    2
                } else {
                    1
                };
                if rank > adr_rank {
                    adr_rank = rank;
                    let street = [part(e, 1), part(e, 2)]
                        .into_iter()
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                        .join(", ");
                    c.address = PostalAddress {
                        street,
                        city: part(e, 3),
                        state: part(e, 4),
                        postal_code: part(e, 5),
                        country: part(e, 6),
                    };
                }
            }
            VCardProperty::Categories => {
                categories.extend(e.values.iter().filter_map(value_text));
            }
            _ => {}
        }
    }
    let uid = card.uid().map(member_key);
    for (key, group) in groups {
        let is_member = uid.as_deref() == Some(key.as_str())
            || c.emails
                .iter()
                .any(|a| a.as_str().eq_ignore_ascii_case(key));
        if is_member {
            categories.push(group.clone());
        }
    }
    categories.retain(|c| !c.trim().is_empty());
    categories.dedup();
    c.categories = categories;
    let place = format!("vCard at line {start}");
    if !problems.is_empty() {
        return Row::Skip {
            place,
            reason: problems.join("; "),
        };
    }
    let mut record = Record::Contact(c);
    match crate::store::validate::record(&mut record) {
        Ok(()) => Row::Record { place, record },
        Err(e) => Row::Skip {
            place,
            reason: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &[u8]) -> Contact {
        match parse(text).unwrap().remove(0) {
            Row::Record {
                record: Record::Contact(c),
                ..
            } => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn folded_escaped_v3() {
        let c = one("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Zoë Müller\r\nN:Müller;Zoë;;;\r\nORG:Bücher\\, Stifte GmbH;Ver\r\n trieb\r\nEMAIL;TYPE=INTERNET,WORK:zoe@bücher.example\r\nTITLE:Head of Sales\r\nEND:VCARD\r\n".as_bytes());
        assert_eq!(c.full_name, "Zoë Müller");
        assert_eq!(c.company, "Bücher, Stifte GmbH");
        assert_eq!(c.department, "Vertrieb");
        assert_eq!(c.emails[0].domain(), "xn--bcher-kva.example");
    }

    #[test]
    fn quoted_printable_soft_breaks() {
        let c = one(b"BEGIN:VCARD\nVERSION:2.1\nN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:J=C3=B8rgensen;S=C3=B8ren\nFN;ENCODING=QUOTED-PRINTABLE;CHARSET=UTF-8:S=C3=B8ren J=C3=B8rg=\nensen\nTITLE;QUOTED-PRINTABLE:Chef d'=E9quipe\nEMAIL;PREF;INTERNET:soren@example.com\nEND:VCARD\n");
        assert_eq!(c.full_name, "Søren Jørgensen");
        assert_eq!(c.last_name, "Jørgensen");
        assert_eq!(c.job_title, "Chef d'équipe");
    }

    #[test]
    fn windows_1252_file() {
        let c = one(b"BEGIN:VCARD\r\nVERSION:2.1\r\nN:M\xfcller;J\xfcrgen\r\nFN:J\xfcrgen M\xfcller\r\nTITLE:\x93Chief\x94 \x96 \x80 budget\r\nEMAIL;INTERNET:jm@example.com\r\nEND:VCARD\r\n");
        assert_eq!(c.full_name, "Jürgen Müller");
        assert_eq!(c.job_title, "\u{201c}Chief\u{201d} \u{2013} € budget");
    }

    #[test]
    fn truncated_card_is_an_error() {
        let e = parse(b"BEGIN:VCARD\nVERSION:4.0\nFN:Half\n").unwrap_err();
        assert!(e.to_string().contains("no END:VCARD"), "{e}");
    }
}
