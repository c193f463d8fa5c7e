//! vCard 2.1 / 3.0 / 4.0 reading, as address books write it: folded lines,
//! quoted-printable values (with soft line breaks), CHARSET parameters, item
//! groups (`item1.EMAIL`), escaped commas and semicolons. Produces contacts.

use super::address::EmailAddress;
use super::import::{ImportError, Row, MAX_LINE_BYTES};
use super::model::{Contact, ContactId, PostalAddress, Record, Stamps};

/// One property line, unfolded: `GROUP.NAME;PARAMS:VALUE`.
struct Prop {
    name: String,
    params: Vec<(String, String)>,
    value: String,
    line: usize,
}

impl Prop {
    fn has_type(&self, t: &str) -> bool {
        self.params.iter().any(|(k, v)| {
            (k == "TYPE"
                && v.split(',')
                    .any(|x| x.trim_matches('"').eq_ignore_ascii_case(t)))
                || (v.is_empty() && k.eq_ignore_ascii_case(t))
        })
    }
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn qp_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' && i + 2 < b.len() + 1 {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(v) = hex {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn decode_charset(
    bytes: Vec<u8>,
    charset: Option<&str>,
    line: usize,
) -> Result<String, ImportError> {
    match charset.map(|c| c.to_ascii_lowercase()) {
        Some(c) if c == "iso-8859-1" || c == "windows-1252" || c == "latin1" => {
            Ok(bytes.iter().map(|&b| b as char).collect())
        }
        _ => String::from_utf8(bytes).map_err(|_| ImportError::Encoding {
            line,
            detail: "a quoted-printable value is not UTF-8 and names no other CHARSET".into(),
        }),
    }
}

/// Split on `sep` where it is not escaped with a backslash, then unescape.
fn split_unescape(v: &str, sep: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('n') | Some('N') => parts.last_mut().unwrap().push('\n'),
                Some(o) => parts.last_mut().unwrap().push(o),
                None => {}
            },
            c if c == sep => parts.push(String::new()),
            c => parts.last_mut().unwrap().push(c),
        }
    }
    parts.into_iter().map(|p| p.trim().to_string()).collect()
}

fn parse_line(line: &str, n: usize) -> Result<Prop, ImportError> {
    let colon = line.find(':').ok_or_else(|| ImportError::Syntax {
        line: n,
        detail: format!("{:?} is not a vCard property (no ':')", short(line)),
    })?;
    let (head, value) = (&line[..colon], &line[colon + 1..]);
    let mut head_parts = head.split(';');
    let name = head_parts.next().unwrap_or("");
    let name = name.rsplit('.').next().unwrap_or(name).to_ascii_uppercase();
    let params = head_parts
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_uppercase(), v.trim().to_string()),
            None => (p.trim().to_ascii_uppercase(), String::new()),
        })
        .collect();
    Ok(Prop {
        name,
        params,
        value: value.to_string(),
        line: n,
    })
}

fn short(s: &str) -> String {
    s.chars().take(60).collect()
}

/// Unfold lines: a line starting with a space or tab continues the one before;
/// a quoted-printable value ending in `=` continues on the next line.
fn logical_lines(text: &str) -> Result<Vec<(usize, String)>, ImportError> {
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut qp_open = false;
    for (i, raw) in text.split('\n').enumerate() {
        let n = i + 1;
        if raw.len() > MAX_LINE_BYTES {
            return Err(ImportError::LineTooLong { line: n });
        }
        let l = raw.strip_suffix('\r').unwrap_or(raw);
        if qp_open {
            let last = out.last_mut().expect("qp continuation follows a line");
            last.1.pop(); // the soft-break '='
            last.1.push_str(l.trim_start());
            qp_open = last.1.ends_with('=');
            continue;
        }
        if (l.starts_with(' ') || l.starts_with('\t')) && !out.is_empty() {
            out.last_mut().unwrap().1.push_str(&l[1..]);
        } else if !l.trim().is_empty() {
            out.push((n, l.to_string()));
        }
        let last = &out
            .last()
            .map(|x| x.1.to_ascii_uppercase())
            .unwrap_or_default();
        qp_open = last.contains("QUOTED-PRINTABLE")
            && last.ends_with('=')
            && last.find(':').is_some_and(|c| c < last.len() - 1);
        if qp_open && out.last().map(|x| x.1.len()).unwrap_or(0) > MAX_LINE_BYTES {
            return Err(ImportError::LineTooLong { line: n });
        }
    }
    Ok(out)
}

fn value_of(p: &Prop) -> Result<String, ImportError> {
    let enc = p.param("ENCODING").map(|e| e.to_ascii_uppercase());
    let qp = enc.as_deref() == Some("QUOTED-PRINTABLE")
        || p.params
            .iter()
            .any(|(k, v)| v.is_empty() && k == "QUOTED-PRINTABLE");
    if qp {
        decode_charset(qp_decode(&p.value), p.param("CHARSET"), p.line)
    } else {
        Ok(p.value.clone())
    }
}

/// Read every vCard in `text` as a contact row. A truncated card, a line outside
/// a card, or an undecodable value is an error for the whole file.
pub fn parse(text: &str) -> Result<Vec<Row>, ImportError> {
    let mut rows = Vec::new();
    let mut card: Option<(usize, Vec<Prop>)> = None;
    for (n, line) in logical_lines(text)? {
        let prop = parse_line(&line, n)?;
        match (prop.name.as_str(), &mut card) {
            ("BEGIN", None) if prop.value.trim().eq_ignore_ascii_case("VCARD") => {
                card = Some((n, Vec::new()))
            }
            ("BEGIN", Some((start, _))) => {
                return Err(ImportError::Syntax {
                    line: n,
                    detail: format!(
                        "BEGIN inside the vCard that starts on line {start} (missing END:VCARD)"
                    ),
                })
            }
            ("END", Some(_)) if prop.value.trim().eq_ignore_ascii_case("VCARD") => {
                let (start, props) = card.take().expect("in a card");
                rows.push(contact_of(start, &props)?);
            }
            (_, Some((_, props))) => props.push(prop),
            (_, None) => {
                return Err(ImportError::Syntax {
                    line: n,
                    detail: format!("{:?} is outside BEGIN:VCARD … END:VCARD", short(&line)),
                })
            }
        }
    }
    if let Some((start, _)) = card {
        return Err(ImportError::Truncated {
            detail: format!("the vCard starting on line {start} has no END:VCARD"),
        });
    }
    Ok(rows)
}

fn contact_of(start: usize, props: &[Prop]) -> Result<Row, ImportError> {
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
    };
    let mut problems = Vec::new();
    let mut adr_rank = 0;
    for p in props {
        let v = value_of(p)?;
        match p.name.as_str() {
            "FN" => c.full_name = split_unescape(&v, '\u{0}').concat(),
            "N" => {
                let n = split_unescape(&v, ';');
                c.last_name = n.first().cloned().unwrap_or_default();
                c.first_name = n.get(1).cloned().unwrap_or_default();
            }
            "EMAIL" => {
                let raw = split_unescape(&v, '\u{0}').concat();
                match EmailAddress::parse(&raw) {
                    Ok(a) if p.has_type("pref") => c.emails.insert(0, a),
                    Ok(a) => c.emails.push(a),
                    Err(e) => problems.push(e.to_string()),
                }
            }
            "TEL" => {
                let num = split_unescape(&v, '\u{0}').concat();
                let num = num.strip_prefix("tel:").unwrap_or(&num).to_string();
                if p.has_type("cell") {
                    c.mobile_phone = num;
                } else if c.business_phone.is_empty() || p.has_type("work") {
                    c.business_phone = num;
                }
            }
            "ORG" => {
                let o = split_unescape(&v, ';');
                c.company = o.first().cloned().unwrap_or_default();
                c.department = o.get(1).cloned().unwrap_or_default();
            }
            "TITLE" => c.job_title = split_unescape(&v, '\u{0}').concat(),
            "ADR" => {
                let rank = if p.has_type("work") {
                    3
                } else if p.has_type("pref") {
                    2
                } else {
                    1
                };
                if rank > adr_rank {
                    adr_rank = rank;
                    let a = split_unescape(&v, ';');
                    let get = |i: usize| a.get(i).cloned().unwrap_or_default();
                    let street = [get(1), get(2)]
                        .into_iter()
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                        .join(", ");
                    c.address = PostalAddress {
                        street,
                        city: get(3),
                        state: get(4),
                        postal_code: get(5),
                        country: get(6),
                    };
                }
            }
            _ => {}
        }
    }
    let place = format!("vCard at line {start}");
    if !problems.is_empty() {
        return Ok(Row::Skip {
            place,
            reason: problems.join("; "),
        });
    }
    let mut record = Record::Contact(c);
    match super::validate::record(&mut record) {
        Ok(()) => Ok(Row::Record { place, record }),
        Err(e) => Ok(Row::Skip {
            place,
            reason: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Contact {
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
        let c = one("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Zoë Müller\r\nN:Müller;Zoë;;;\r\nORG:Bücher\\, Stifte GmbH;Ver\r\n trieb\r\nEMAIL;TYPE=INTERNET,WORK:zoe@bücher.example\r\nTITLE:Head of Sales\r\nEND:VCARD\r\n");
        assert_eq!(c.full_name, "Zoë Müller");
        assert_eq!(c.company, "Bücher, Stifte GmbH");
        assert_eq!(c.department, "Vertrieb");
        assert_eq!(c.emails[0].domain(), "xn--bcher-kva.example");
    }

    #[test]
    fn quoted_printable_soft_breaks() {
        let c = one("BEGIN:VCARD\nVERSION:2.1\nN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:J=C3=B8rgensen;S=C3=B8ren\nFN;ENCODING=QUOTED-PRINTABLE;CHARSET=UTF-8:S=C3=B8ren J=C3=B8rg=\nensen\nEMAIL;PREF;INTERNET:soren@example.com\nEND:VCARD\n");
        assert_eq!(c.full_name, "Søren Jørgensen");
        assert_eq!(c.last_name, "Jørgensen");
    }

    #[test]
    fn truncated_card_is_an_error() {
        let e = parse("BEGIN:VCARD\nVERSION:4.0\nFN:Half\n").unwrap_err();
        assert!(e.to_string().contains("no END:VCARD"), "{e}");
    }
}
