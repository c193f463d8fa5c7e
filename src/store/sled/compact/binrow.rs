//! A compact binary form of a row's JSON value (schema v6): the same value tree,
//! with object keys and common strings as one-byte numbers into [`DICT`], UUIDs as
//! their 16 bytes, timestamps as seconds and nanoseconds, lower-case hex as its
//! bytes, and lengths as varints. A contact's row goes from ≈ 400 to ≈ 190 bytes.
//!
//! It is lossless at the JSON value level (a string is given a short form only
//! when that form turns back into the very same string), so a row decodes through
//! `serde_json::Value` with the model's own serde rules. A binary row starts with
//! [`TAG`], which no JSON text starts with: rows written as JSON before v6 read as
//! they were.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Number, Value};
use uuid::Uuid;

/// First byte of a binary row (JSON starts with `{`, `[`, `"`, a digit, a letter
/// or white space).
pub(crate) const TAG: u8 = 0x01;

/// Keys and common string values. Stored rows refer to entries by position, so
/// this list may only grow at its end.
#[rustfmt::skip]
const DICT: &[&str] = &[
    // Common to rows.
    "type", "id", "created", "modified", "owner", "name", "emails", "address", "status",
    "kind", "title", "description", "subject", "body", "regarding",
    // Records.
    "first_name", "last_name", "full_name", "job_title", "department", "company", "account",
    "business_phone", "mobile_phone", "categories", "phone", "website", "primary_contact",
    "street", "city", "state", "postal_code", "country", "topic", "contact",
    "estimated_close", "estimated_value", "minor", "currency", "customer", "number",
    "amount", "due", "logins", "imap_logins", "privileges", "delegates", "options",
    "for_kind", "files", "content_type", "blob", "sha256", "size", "keywords",
    // Activities, header facts, tracking.
    "parties", "details", "role", "records", "message_id", "date", "direction", "body_text",
    "in_reply_to", "references", "thread_index", "attachments", "raw", "content_digest",
    "smime", "correlation", "correlated_with", "start", "end", "location", "uid",
    "recurrence", "raw_invitation", "sequence", "cancelled", "timing", "occurrences",
    "original", "at", "phone_number", "duration_minutes", "activity", "requested_by",
    "requested_at", "updated_at", "attempts", "folder", "uid_validity", "via", "reason",
    "signed", "encrypted", "signer", "signing_time", "form", "certificates",
    "digest_algorithm", "verified", "problem", "issuer", "serial", "email", "not_before",
    "not_after",
    // Address-book entries.
    "source", "link", "candidates",
    // Values: kinds, roles, states.
    "user", "lead", "opportunity", "case", "invoice", "email_template", "sales_literature",
    "knowledge_article", "appointment", "phone_call", "task", "sender", "to", "cc", "bcc",
    "organizer", "required_attendee", "optional_attendee", "participant", "incoming",
    "outgoing", "none", "tracking_token", "folder_mapping", "explicit", "pending",
    "tracked", "failed", "untracked", "imported", "seen_in_mail", "open", "completed",
    "canceled", "new", "INBOX",
];

/// Value tags.
const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const UINT: u8 = 3;
const NEG: u8 = 4;
const FLOAT: u8 = 5;
const STR: u8 = 6;
const DICT_STR: u8 = 7;
const UUID: u8 = 8;
const TIME: u8 = 9;
const HEX: u8 = 10;
const ARRAY: u8 = 11;
const OBJECT: u8 = 12;

/// Nesting deeper than this is refused when decoding (rows are a few levels deep).
const MAX_DEPTH: usize = 64;

fn dict_index(s: &str) -> Option<usize> {
    use std::collections::HashMap;
    use std::sync::OnceLock;
    static INDEX: OnceLock<HashMap<&'static str, usize>> = OnceLock::new();
    INDEX
        .get_or_init(|| DICT.iter().enumerate().map(|(i, s)| (*s, i)).collect())
        .get(s)
        .copied()
}

/// `v` in the binary form, after [`TAG`].
pub(crate) fn encode(v: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.push(TAG);
    put_value(&mut out, v);
    out
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.push(NULL),
        Value::Bool(false) => out.push(FALSE),
        Value::Bool(true) => out.push(TRUE),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                out.push(UINT);
                put_varint(out, u);
            } else if let Some(i) = n.as_i64() {
                // Negative here (a non-negative i64 is also a u64).
                out.push(NEG);
                put_varint(out, !(i as u64));
            } else {
                out.push(FLOAT);
                out.extend_from_slice(&n.as_f64().unwrap_or(0.0).to_le_bytes());
            }
        }
        Value::String(s) => put_str(out, s),
        Value::Array(items) => {
            out.push(ARRAY);
            put_varint(out, items.len() as u64);
            items.iter().for_each(|i| put_value(out, i));
        }
        Value::Object(members) => {
            out.push(OBJECT);
            put_varint(out, members.len() as u64);
            for (k, m) in members {
                match dict_index(k) {
                    Some(i) => put_varint(out, i as u64 + 1),
                    None => {
                        put_varint(out, 0);
                        put_bytes(out, k.as_bytes());
                    }
                }
                put_value(out, m);
            }
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    if let Some(i) = dict_index(s) {
        out.push(DICT_STR);
        put_varint(out, i as u64);
    } else if let Some(u) = as_uuid(s) {
        out.push(UUID);
        out.extend_from_slice(u.as_bytes());
    } else if let Some(t) = as_time(s) {
        out.push(TIME);
        put_varint(out, zigzag(t.timestamp()));
        put_varint(out, u64::from(t.timestamp_subsec_nanos()));
    } else if let Some(b) = as_hex(s) {
        out.push(HEX);
        put_bytes(out, &b);
    } else {
        out.push(STR);
        put_bytes(out, s.as_bytes());
    }
}

/// A UUID written exactly as `Uuid`'s serde writes it.
fn as_uuid(s: &str) -> Option<Uuid> {
    if s.len() != 36 {
        return None;
    }
    let u = Uuid::try_parse(s).ok()?;
    (u.hyphenated().encode_lower(&mut Uuid::encode_buffer()) == s).then_some(u)
}

fn format_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// A timestamp written exactly as chrono's serde writes a `DateTime<Utc>`.
fn as_time(s: &str) -> Option<DateTime<Utc>> {
    if !(20..=30).contains(&s.len()) || !s.ends_with('Z') {
        return None;
    }
    let t = DateTime::parse_from_rfc3339(s).ok()?.with_timezone(&Utc);
    (format_time(&t) == s).then_some(t)
}

/// Lower-case hex of 8 bytes or more (digests, blob names).
fn as_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() < 16 || !s.len().is_multiple_of(2) || s.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    hex::decode(s).ok()
}

fn zigzag(i: i64) -> u64 {
    ((i << 1) ^ (i >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// Why a binary row did not decode.
#[derive(Debug, thiserror::Error)]
#[error("binary row: {0}")]
pub(crate) struct BadRow(&'static str);

/// The value of a binary row (`bytes` starts with [`TAG`]).
pub(crate) fn decode(bytes: &[u8]) -> Result<Value, BadRow> {
    let mut r = Reader { bytes, at: 1 };
    if bytes.first() != Some(&TAG) {
        return Err(BadRow("no tag"));
    }
    let v = r.value(0)?;
    if r.at != bytes.len() {
        return Err(BadRow("bytes after the value"));
    }
    Ok(v)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, BadRow> {
        let b = *self.bytes.get(self.at).ok_or(BadRow("cut short"))?;
        self.at += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], BadRow> {
        let end = self.at.checked_add(n).ok_or(BadRow("cut short"))?;
        let b = self.bytes.get(self.at..end).ok_or(BadRow("cut short"))?;
        self.at = end;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, BadRow> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7F) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(BadRow("varint too long"))
    }

    /// A count or length, bounded by the bytes left (each item takes one or more).
    fn len(&mut self) -> Result<usize, BadRow> {
        let n = self.varint()?;
        usize::try_from(n)
            .ok()
            .filter(|n| *n <= self.bytes.len() - self.at)
            .ok_or(BadRow("length past the end"))
    }

    fn string(&mut self) -> Result<String, BadRow> {
        let n = self.len()?;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| BadRow("not UTF-8"))
    }

    fn dict(&mut self, i: u64) -> Result<String, BadRow> {
        usize::try_from(i)
            .ok()
            .and_then(|i| DICT.get(i))
            .map(|s| (*s).to_owned())
            .ok_or(BadRow("unknown dictionary entry"))
    }

    fn value(&mut self, depth: usize) -> Result<Value, BadRow> {
        if depth > MAX_DEPTH {
            return Err(BadRow("nested too deep"));
        }
        Ok(match self.byte()? {
            NULL => Value::Null,
            FALSE => Value::Bool(false),
            TRUE => Value::Bool(true),
            UINT => Value::Number(self.varint()?.into()),
            NEG => Value::Number((!self.varint()? as i64).into()),
            FLOAT => {
                let b: [u8; 8] = self.take(8)?.try_into().map_err(|_| BadRow("float"))?;
                Value::Number(Number::from_f64(f64::from_le_bytes(b)).ok_or(BadRow("float"))?)
            }
            STR => Value::String(self.string()?),
            DICT_STR => {
                let i = self.varint()?;
                Value::String(self.dict(i)?)
            }
            UUID => {
                let b = self.take(16)?;
                Value::String(Uuid::from_slice(b).map_err(|_| BadRow("uuid"))?.to_string())
            }
            TIME => {
                let secs = unzigzag(self.varint()?);
                let nanos = u32::try_from(self.varint()?).map_err(|_| BadRow("time"))?;
                let t = DateTime::from_timestamp(secs, nanos).ok_or(BadRow("time"))?;
                Value::String(format_time(&t))
            }
            HEX => {
                let n = self.len()?;
                Value::String(hex::encode(self.take(n)?))
            }
            ARRAY => {
                let n = self.len()?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Value::Array(items)
            }
            OBJECT => {
                let n = self.len()?;
                let mut members = Map::new();
                for _ in 0..n {
                    let key = match self.varint()? {
                        0 => self.string()?,
                        i => self.dict(i - 1)?,
                    };
                    let v = self.value(depth + 1)?;
                    members.insert(key, v);
                }
                Value::Object(members)
            }
            _ => return Err(BadRow("unknown value tag")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_come_back_exactly() {
        let v = json!({
            "type": "contact", "id": "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
            "created": "2026-12-06T06:27:06.123456789Z",
            "modified": "2026-12-06T06:27:06Z",
            "odd_time": "2026-12-06T06:27:06.100Z",
            "not_a_time": "2026-12-06T06:27:06.1Z",
            "upper_uuid": "0193A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B",
            "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "odd_hex": "abc", "upper_hex": "9F86D081884C7D659A2F",
            "first_name": "Zoë", "n": 0, "big": u64::MAX, "neg": -5, "min": i64::MIN,
            "f": 1.5, "yes": true, "no": false, "nothing": null,
            "emails": ["a@b.example"], "nested": {"deep": [[], {}, [1, "INBOX"]]},
            "": "empty key", "unknown key with ünïcode": "",
            "before_1970": "1969-07-20T20:17:40Z",
        });
        let bytes = encode(&v);
        assert_eq!(bytes[0], TAG);
        assert_eq!(decode(&bytes).unwrap(), v);
        // Much shorter than its JSON.
        let contact = json!({
            "type": "contact", "id": "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
            "created": "2026-12-06T06:27:06.123456789Z",
            "modified": "2026-12-06T06:27:06.123456789Z",
            "first_name": "Ada", "last_name": "Abbott", "company": "Contoso 1",
        });
        let json_len = serde_json::to_vec(&contact).unwrap().len();
        assert!(encode(&contact).len() * 2 < json_len, "{json_len}");
    }

    #[test]
    fn damaged_rows_are_refused_not_panicked_on() {
        let v = json!({"type": "contact", "emails": ["a@b.example"], "n": 300});
        let bytes = encode(&v);
        for cut in 1..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
        assert!(decode(&[TAG, 99]).is_err());
        assert!(decode(&[TAG, DICT_STR, 0xFF, 0x7F]).is_err());
        // A count far past the end allocates nothing.
        assert!(decode(&[TAG, ARRAY, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]).is_err());
        let mut deep = vec![TAG];
        deep.extend(std::iter::repeat_n([ARRAY, 1], 1000).flatten());
        deep.push(NULL);
        assert!(decode(&deep).is_err());
        assert!(decode(b"{}").is_err());
    }

    #[test]
    fn the_dictionary_keeps_its_order() {
        // Stored rows name entries by position: appending is fine, nothing else.
        assert_eq!(DICT[0], "type");
        assert_eq!(DICT[15], "first_name");
        assert_eq!(DICT[147], "INBOX");
        assert_eq!(
            DICT.len(),
            DICT.iter().collect::<std::collections::HashSet<_>>().len()
        );
        let pinned = encode(&json!({"type": "contact", "city": "INBOX", "x": 1}));
        assert_eq!(
            pinned,
            [TAG, OBJECT, 3, 30, DICT_STR, 147, 1, 1, DICT_STR, 34, 0, 1, b'x', UINT, 1]
        );
    }
}
