//! Reading address books and other CRMs' files: CSV (Thunderbird's and Outlook's
//! exports, or any CSV with recognisable headers) for contacts, accounts and
//! leads; vCard for contacts; crmproxy's own JSON export. Parsing needs no store
//! (the CLI parses, then hands rows to the store directly or over the admin
//! socket); [`apply_rows`] matches rows to existing records and writes them.

use chrono::Utc;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

use crate::store::address::EmailAddress;
use crate::store::export::ExportBundle;
use crate::store::model::*;
use crate::store::text::fold;
use crate::store::{CrmStore, ImportSummary, Result};

/// Longest line accepted in an import file.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Why a file cannot be imported at all (nothing is written).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the file is not UTF-8 ({detail}); save it as UTF-8 (in Outlook and Thunderbird: export as CSV (UTF-8) or vCard) and try again")]
    Encoding { line: usize, detail: String },
    #[error(
        "line {line} is longer than {} bytes; this is not an address book",
        MAX_LINE_BYTES
    )]
    LineTooLong { line: usize },
    #[error("line {line}: {detail}")]
    Syntax { line: usize, detail: String },
    #[error("the file ends too early: {detail}")]
    Truncated { detail: String },
    #[error("cannot tell what the file holds: {0}")]
    Unknown(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// What the rows of a CSV file are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ImportKind {
    Contacts,
    Accounts,
    Leads,
    /// crmproxy's JSON export.
    Json,
}

/// One row of an address book: a record to write, or the reason it is left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)] // nearly every row is a record; boxing would only add allocations
pub enum Row {
    Record { place: String, record: Record },
    Skip { place: String, reason: String },
}

/// A parsed file, ready for the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Parsed {
    Bundle(Box<ExportBundle>),
    Rows { kind: ImportKind, rows: Vec<Row> },
}

fn check_text(bytes: &[u8]) -> Result<&str, ImportError> {
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return Err(ImportError::Encoding {
            line: 1,
            detail: "it is UTF-16".into(),
        });
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        let line = bytes[..at].iter().filter(|b| **b == b'\n').count() + 1;
        ImportError::Encoding {
            line,
            detail: format!(
                "invalid byte 0x{:02X} on line {line}; perhaps Windows-1252 or Latin-1",
                bytes[at]
            ),
        }
    })?;
    for (i, l) in text.split('\n').enumerate() {
        if l.len() > MAX_LINE_BYTES {
            return Err(ImportError::LineTooLong { line: i + 1 });
        }
    }
    Ok(text)
}

/// Parse a file. `kind` forces how CSV rows are read; otherwise it is detected
/// from the content (JSON, vCard) and the CSV headers.
pub fn parse(bytes: &[u8], kind: Option<ImportKind>) -> Result<Parsed, ImportError> {
    // A vCard declares its charset: read before the UTF-8 check.
    if kind != Some(ImportKind::Json) && super::vcard::is_vcard(bytes) {
        if matches!(kind, Some(ImportKind::Accounts | ImportKind::Leads)) {
            return Err(ImportError::Unknown(
                "a vCard file holds contacts; drop --kind or use --kind contacts".into(),
            ));
        }
        return Ok(Parsed::Rows {
            kind: ImportKind::Contacts,
            rows: super::vcard::parse(bytes)?,
        });
    }
    let text = check_text(bytes)?;
    let head = text.trim_start();
    if kind == Some(ImportKind::Json) || (kind.is_none() && head.starts_with('{')) {
        return Ok(Parsed::Bundle(Box::new(ExportBundle::from_json(text)?)));
    }
    if head.is_empty() {
        return Err(ImportError::Unknown("the file is empty".into()));
    }
    super::csv_rows::parse(text, kind)
}

/// How a row finds the existing record it updates.
fn match_key(r: &Record) -> Option<String> {
    match r {
        Record::Account(a) => Some(format!("a:{}", fold(a.name.trim()))),
        Record::Lead(l) if l.emails.is_empty() => {
            Some(format!("l:{}|{}", fold(&l.full_name), fold(&l.company)))
        }
        _ => None,
    }
}

/// Overlay a row's non-empty fields onto an existing record of the same kind.
fn merge(existing: &Record, row: &Record) -> Record {
    fn set(dst: &mut String, src: &str) {
        if !src.trim().is_empty() {
            *dst = src.to_string();
        }
    }
    fn addr(dst: &mut PostalAddress, src: &PostalAddress) {
        if !src.is_empty() {
            *dst = src.clone();
        }
    }
    fn emails(dst: &mut Vec<EmailAddress>, src: &[EmailAddress]) {
        for e in src {
            if !dst.iter().any(|d| d.same_as(e)) {
                dst.push(e.clone());
            }
        }
    }
    let mut out = existing.clone();
    match (&mut out, row) {
        (Record::Contact(d), Record::Contact(s)) => {
            set(&mut d.first_name, &s.first_name);
            set(&mut d.last_name, &s.last_name);
            set(&mut d.full_name, &s.full_name);
            set(&mut d.job_title, &s.job_title);
            set(&mut d.department, &s.department);
            set(&mut d.company, &s.company);
            set(&mut d.business_phone, &s.business_phone);
            set(&mut d.mobile_phone, &s.mobile_phone);
            addr(&mut d.address, &s.address);
            emails(&mut d.emails, &s.emails);
        }
        (Record::Account(d), Record::Account(s)) => {
            set(&mut d.website, &s.website);
            set(&mut d.phone, &s.phone);
            addr(&mut d.address, &s.address);
            emails(&mut d.emails, &s.emails);
        }
        (Record::Lead(d), Record::Lead(s)) => {
            set(&mut d.first_name, &s.first_name);
            set(&mut d.last_name, &s.last_name);
            set(&mut d.full_name, &s.full_name);
            set(&mut d.company, &s.company);
            set(&mut d.topic, &s.topic);
            set(&mut d.job_title, &s.job_title);
            set(&mut d.phone, &s.phone);
            addr(&mut d.address, &s.address);
            emails(&mut d.emails, &s.emails);
            if s.status != LeadStatus::New {
                d.status = s.status;
            }
        }
        _ => {}
    }
    out
}

/// Match rows to existing records (contacts and leads by e-mail address, accounts
/// by name, leads without address by name and company), link contacts to the
/// account named as their company, and write everything.
pub fn apply_rows(
    store: &dyn CrmStore,
    rows: Vec<Row>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ImportSummary> {
    let mut summary = ImportSummary::default();
    let mut by_name: HashMap<String, Record> = HashMap::new();
    let mut account_ids: HashMap<String, AccountId> = HashMap::new();
    for r in store
        .records(Some(Kind::Account))?
        .into_iter()
        .chain(store.records(Some(Kind::Lead))?)
    {
        if let Record::Account(a) = &r {
            account_ids.insert(fold(a.name.trim()), a.id);
        }
        if let Some(k) = match_key(&r) {
            by_name.insert(k, r);
        }
    }
    let mut seen_in_file: HashMap<String, String> = HashMap::new();
    let mut written: HashSet<uuid::Uuid> = HashSet::new();
    let mut out: Vec<Record> = Vec::new();
    let now = Utc::now();
    for row in rows {
        let (place, mut record) = match row {
            Row::Skip { place, reason } => {
                summary.skipped.push((place, reason));
                continue;
            }
            Row::Record { place, record, .. } => (place, record),
        };
        // The same person twice in one file: keep the first.
        let keys: Vec<String> = record
            .emails()
            .iter()
            .map(|e| e.key().to_string())
            .chain(match_key(&record))
            .collect();
        if let Some(first) = keys.iter().find_map(|k| seen_in_file.get(k)) {
            summary
                .skipped
                .push((place, format!("same person as {first}")));
            continue;
        }
        for k in &keys {
            seen_in_file.insert(k.clone(), place.clone());
        }
        if let Record::Contact(c) = &mut record {
            if c.account.is_none() {
                c.account = account_ids.get(&fold(c.company.trim())).copied();
            }
        }
        let mut existing = None;
        for e in record.emails() {
            if let Some(r) = store
                .resolve_address(e)?
                .into_iter()
                .find(|r| r.kind == record.kind())
            {
                existing = store.record(r.id)?;
                break;
            }
        }
        if existing.is_none() {
            existing = match_key(&record).and_then(|k| by_name.get(&k).cloned());
        }
        let record = match existing {
            Some(old) if written.contains(&old.id()) => {
                summary.skipped.push((
                    place,
                    "updates a record that an earlier row already updated".into(),
                ));
                continue;
            }
            Some(old) => {
                let mut merged = merge(&old, &record);
                if merged == old {
                    summary.unchanged += 1;
                    continue;
                }
                summary.updated += 1;
                merged.stamps_mut().modified = now;
                merged
            }
            None => {
                summary.created += 1;
                *record.stamps_mut() = Stamps {
                    created: now,
                    modified: now,
                };
                record
            }
        };
        written.insert(record.id());
        out.push(record);
    }
    let total = out.len();
    store.put_records_bulk(out, &mut |done| progress(done, total))?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `import` fuzz target: a file whose 11th byte is inside a
    /// character panicked while its kind was detected.
    #[test]
    fn detection_cut_inside_a_character() {
        let csv = "First LI@\u{4f8b}\u{3048}.\u{30c6}\u{30b9}Name,Last Name,Primary Email\n\
                   Ann,Lee,ann@example.test\n";
        assert!(parse(csv.as_bytes(), None).is_ok());
        assert!(matches!(
            parse("BEGIN:VCAR\u{e9}\n".as_bytes(), None),
            Err(ImportError::Syntax { .. } | ImportError::Unknown(_))
        ));
    }
}
