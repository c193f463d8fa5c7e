//! CSV address books and CRM exports: the header row says which column is what
//! (Thunderbird's "Primary Email", Outlook's "E-mail Address" and "Business
//! Street", or plain "Email", "Company", "Account Name", "Topic"), and whether
//! the rows are contacts, accounts or leads.

use std::collections::HashMap;

use super::import::{ImportError, ImportKind, Parsed, Row};
use crate::store::address::EmailAddress;
use crate::store::model::*;
use crate::store::text::fold;

/// Header name → the field it fills ("E-mail 2 Address" → "email2address").
fn norm_header(h: &str) -> String {
    h.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

struct Columns(HashMap<String, usize>);

/// A list cell ("Clients;VIP" in Outlook, "Clients, VIP" in Thunderbird).
fn list(cell: &str) -> Vec<String> {
    cell.split([';', ','])
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

impl Columns {
    fn get<'r>(&self, row: &'r csv::StringRecord, names: &[&str]) -> &'r str {
        names
            .iter()
            .filter_map(|n| self.0.get(*n))
            .filter_map(|i| row.get(*i))
            .map(str::trim)
            .find(|v| !v.is_empty())
            .unwrap_or("")
    }
    fn all<'r>(&self, row: &'r csv::StringRecord, names: &[&str]) -> Vec<&'r str> {
        names
            .iter()
            .filter_map(|n| self.0.get(*n))
            .filter_map(|i| row.get(*i))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect()
    }
    fn has(&self, n: &str) -> bool {
        self.0.contains_key(n)
    }
}

const EMAILS: &[&str] = &[
    "primaryemail",
    "emailaddress",
    "email",
    "email1",
    "email1address",
    "emailaddress1",
    "workemail",
    "secondaryemail",
    "email2address",
    "email2",
    "emailaddress2",
    "email3address",
    "email3",
    "homeemail",
    "emailaddresses",
];

fn address(c: &Columns, row: &csv::StringRecord) -> PostalAddress {
    let pick = |work: &[&str], home: &[&str]| {
        let w = c.get(row, work);
        if w.is_empty() {
            c.get(row, home).to_string()
        } else {
            w.to_string()
        }
    };
    let street1 = pick(
        &[
            "businessstreet",
            "workaddress",
            "street",
            "address",
            "address1",
            "addressline1",
            "addressstreet",
        ],
        &["homestreet", "homeaddress"],
    );
    let street2 = pick(
        &[
            "businessstreet2",
            "workaddress2",
            "address2",
            "addressline2",
        ],
        &["homestreet2", "homeaddress2"],
    );
    PostalAddress {
        street: [street1, street2]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(", "),
        city: pick(
            &["businesscity", "workcity", "city", "addresscity"],
            &["homecity"],
        ),
        state: pick(
            &[
                "businessstate",
                "workstate",
                "state",
                "region",
                "stateprovince",
                "addressstate",
            ],
            &["homestate"],
        ),
        postal_code: pick(
            &[
                "businesspostalcode",
                "workzipcode",
                "zipcode",
                "postalcode",
                "zip",
                "addresspostalcode",
            ],
            &["homezipcode", "homepostalcode"],
        ),
        country: pick(
            &[
                "businesscountryregion",
                "workcountry",
                "country",
                "countryregion",
                "addresscountry",
            ],
            &["homecountry", "homecountryregion"],
        ),
    }
}

pub(crate) fn parse(text: &str, kind: Option<ImportKind>) -> Result<Parsed, ImportError> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = rdr
        .headers()
        .map_err(|e| ImportError::Syntax {
            line: 1,
            detail: format!("the CSV header row cannot be read: {e}"),
        })?
        .clone();
    let mut named: Vec<(String, usize)> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| (norm_header(h), i))
        .collect();
    named.reverse(); // the first column of a name wins
    let cols = Columns(named.into_iter().collect());
    let kind = match kind {
        Some(k) => k,
        None if cols.has("topic") || cols.has("leadstatus") => ImportKind::Leads,
        None if cols.has("accountname") || (cols.has("website") && !cols.has("firstname") && !cols.has("lastname")) => ImportKind::Accounts,
        None if EMAILS.iter().any(|e| cols.has(e)) || cols.has("firstname") || cols.has("lastname") || cols.has("displayname") => ImportKind::Contacts,
        None => {
            return Err(ImportError::Unknown(format!(
                "no known column in the header row ({}); expected e.g. \"First Name\", \"E-mail Address\", \"Account Name\" or \"Topic\", or pass --kind",
                headers.iter().take(6).collect::<Vec<_>>().join(", ")
            )))
        }
    };
    // Outlook's "Title" is Mr./Ms.; it is a job title only in CSVs without Outlook's columns.
    let title_cols: &[&str] = if cols.has("jobtitle") || cols.has("middlename") {
        &["jobtitle"]
    } else {
        &["title"]
    };
    let mut rows = Vec::new();
    let records: Vec<csv::StringRecord> =
        rdr.records()
            .collect::<Result<_, _>>()
            .map_err(|e| ImportError::Syntax {
                line: e.position().map(|p| p.line() as usize).unwrap_or(0),
                detail: e.to_string(),
            })?;
    let count = records.len();
    for (i, rec) in records.into_iter().enumerate() {
        let line = rec.position().map(|p| p.line() as usize).unwrap_or(i + 2);
        let place = format!("line {line}");
        if rec.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        if rec.len() != headers.len() {
            if i + 1 == count && rec.len() < headers.len() {
                return Err(ImportError::Truncated {
                    detail: format!(
                        "the last row (line {line}) has {} of the {} columns",
                        rec.len(),
                        headers.len()
                    ),
                });
            }
            return Err(ImportError::Syntax {
                line,
                detail: format!(
                    "the row has {} fields but the header has {}",
                    rec.len(),
                    headers.len()
                ),
            });
        }
        let mut warnings = Vec::new();
        let mut emails = Vec::new();
        for raw in cols.all(&rec, EMAILS) {
            for part in raw
                .split([';', ','])
                .map(str::trim)
                .filter(|s| !s.is_empty())
            {
                match EmailAddress::parse(part) {
                    Ok(a) if !emails.iter().any(|b: &EmailAddress| b.same_as(&a)) => emails.push(a),
                    Ok(_) => {}
                    Err(e) => warnings.push(e.to_string()),
                }
            }
        }
        let first = cols.get(&rec, &["firstname", "givenname"]).to_string();
        let last = cols
            .get(&rec, &["lastname", "surname", "familyname"])
            .to_string();
        let full = cols
            .get(
                &rec,
                &["displayname", "fullname", "name", "contactname", "leadname"],
            )
            .to_string();
        let company = cols
            .get(
                &rec,
                &[
                    "company",
                    "organization",
                    "organisation",
                    "companyname",
                    "accountname",
                ],
            )
            .to_string();
        let record = match kind {
            ImportKind::Contacts | ImportKind::Json => Record::Contact(Contact {
                id: ContactId::new(),
                stamps: Stamps::default(),
                first_name: first,
                last_name: last,
                full_name: full,
                job_title: cols.get(&rec, title_cols).to_string(),
                department: cols.get(&rec, &["department"]).to_string(),
                company,
                account: None,
                emails,
                business_phone: cols
                    .get(
                        &rec,
                        &[
                            "businessphone",
                            "workphone",
                            "phone",
                            "telephone",
                            "phonenumber",
                            "primaryphone",
                        ],
                    )
                    .to_string(),
                mobile_phone: cols
                    .get(
                        &rec,
                        &["mobilephone", "mobilenumber", "mobile", "cellphone"],
                    )
                    .to_string(),
                address: address(&cols, &rec),
                categories: list(cols.get(&rec, &["categories"])),
            }),
            ImportKind::Accounts => {
                let name = cols
                    .get(
                        &rec,
                        &[
                            "accountname",
                            "name",
                            "company",
                            "companyname",
                            "organization",
                        ],
                    )
                    .to_string();
                Record::Account(Account {
                    id: AccountId::new(),
                    stamps: Stamps::default(),
                    name,
                    website: cols
                        .get(&rec, &["website", "webpage1", "webpage", "url"])
                        .to_string(),
                    phone: cols
                        .get(
                            &rec,
                            &[
                                "mainphone",
                                "phone",
                                "telephone",
                                "businessphone",
                                "phonenumber",
                            ],
                        )
                        .to_string(),
                    emails,
                    address: address(&cols, &rec),
                    primary_contact: None,
                })
            }
            ImportKind::Leads => Record::Lead(Lead {
                id: LeadId::new(),
                stamps: Stamps::default(),
                first_name: first,
                last_name: last,
                full_name: full,
                company,
                topic: cols.get(&rec, &["topic", "subject"]).to_string(),
                job_title: cols.get(&rec, title_cols).to_string(),
                emails,
                phone: cols
                    .get(
                        &rec,
                        &["phone", "businessphone", "mobilephone", "telephone"],
                    )
                    .to_string(),
                address: address(&cols, &rec),
                status: match fold(cols.get(&rec, &["status", "leadstatus"])).as_str() {
                    "contacted" => LeadStatus::Contacted,
                    "qualified" => LeadStatus::Qualified,
                    "disqualified" => LeadStatus::Disqualified,
                    _ => LeadStatus::New,
                },
            }),
        };
        let mut check = record.clone();
        // A row with a broken address is left out whole: a contact without the
        // address it was imported for would silently fail to match mail.
        match crate::store::validate::record(&mut check) {
            Ok(()) if warnings.is_empty() => rows.push(Row::Record {
                place,
                record: check,
            }),
            Ok(()) => rows.push(Row::Skip {
                place,
                reason: warnings.join("; "),
            }),
            Err(e) => rows.push(Row::Skip {
                place,
                reason: e.to_string(),
            }),
        }
    }
    Ok(Parsed::Rows { kind, rows })
}
