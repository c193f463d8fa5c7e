//! Text folding and tokenising for full-text search, and the searchable fields of
//! each record and activity with their weights.

use std::collections::BTreeMap;
use unicode_normalization::UnicodeNormalization;

use super::activity::{Activity, ActivityDetails};
use super::model::{PostalAddress, Record};

/// Longest token kept, in bytes; longer ones are cut (at a char boundary).
pub const MAX_TOKEN_BYTES: usize = 48;

/// How much a match in a field counts.
pub mod weight {
    pub const NAME: u8 = 10;
    pub const SUBJECT: u8 = 8;
    pub const COMPANY: u8 = 6;
    pub const TOPIC: u8 = 6;
    pub const TITLE: u8 = 5;
    pub const DEPARTMENT: u8 = 4;
    pub const EMAIL: u8 = 3;
    pub const ADDRESS: u8 = 3;
    pub const OTHER: u8 = 2;
}

/// Lower-case, decompose, drop combining marks: "Zoë Müller" → "zoe muller".
pub fn fold(s: &str) -> String {
    s.nfkd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'ß' => 's',
            'æ' => 'a',
            'ø' => 'o',
            'đ' => 'd',
            'ł' => 'l',
            _ => c,
        })
        .collect()
}

/// Split folded text into alphanumeric tokens.
pub fn tokens(s: &str) -> Vec<String> {
    fold(s)
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(|t| {
            let mut end = t.len().min(MAX_TOKEN_BYTES);
            while !t.is_char_boundary(end) {
                end -= 1;
            }
            t[..end].to_string()
        })
        .collect()
}

/// Token → best weight for one document.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Document(pub BTreeMap<String, u8>);

impl Document {
    fn add(&mut self, text: &str, w: u8) {
        for t in tokens(text) {
            let e = self.0.entry(t).or_insert(0);
            *e = (*e).max(w);
        }
    }
    fn add_address(&mut self, a: &PostalAddress) {
        for part in [&a.street, &a.city, &a.state, &a.postal_code, &a.country] {
            self.add(part, weight::ADDRESS);
        }
    }

    /// The searchable fields of a record.
    pub fn of_record(r: &Record) -> Document {
        use weight::*;
        let mut d = Document::default();
        for e in r.emails() {
            d.add(e.as_str(), EMAIL);
        }
        match r {
            Record::Account(a) => {
                d.add(&a.name, NAME);
                d.add(&a.website, OTHER);
                d.add_address(&a.address);
            }
            Record::Contact(c) => {
                d.add(&c.full_name, NAME);
                d.add(&c.first_name, NAME);
                d.add(&c.last_name, NAME);
                d.add(&c.company, COMPANY);
                d.add(&c.job_title, TITLE);
                d.add(&c.department, DEPARTMENT);
                d.add_address(&c.address);
            }
            Record::Lead(l) => {
                d.add(&l.full_name, NAME);
                d.add(&l.first_name, NAME);
                d.add(&l.last_name, NAME);
                d.add(&l.company, COMPANY);
                d.add(&l.topic, TOPIC);
                d.add(&l.job_title, TITLE);
                d.add_address(&l.address);
            }
            Record::Opportunity(o) => d.add(&o.name, NAME),
            Record::Case(c) => d.add(&c.title, NAME),
            Record::Invoice(i) => d.add(&i.number, NAME),
            Record::User(u) => d.add(&u.full_name, NAME),
            Record::EmailTemplate(t) => {
                d.add(&t.title, NAME);
                d.add(&t.subject, SUBJECT);
            }
            Record::SalesLiterature(s) => {
                d.add(&s.name, NAME);
                d.add(&s.description, OTHER);
                for f in &s.files {
                    d.add(&f.name, OTHER);
                }
            }
            Record::KnowledgeArticle(k) => {
                d.add(&k.title, NAME);
                for kw in &k.keywords {
                    d.add(kw, TOPIC);
                }
            }
        }
        d
    }

    /// The searchable fields of an activity: its subject and its parties' names.
    pub fn of_activity(a: &Activity) -> Document {
        let mut d = Document::default();
        d.add(&a.subject, weight::SUBJECT);
        for p in &a.parties {
            d.add(&p.name, weight::OTHER);
        }
        if let ActivityDetails::Appointment(ap) = &a.details {
            d.add(&ap.location, weight::ADDRESS);
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accents_and_case_fold() {
        assert_eq!(fold("Zoë MÜLLER Straße"), "zoe muller strase");
        assert_eq!(
            tokens("Jean-François O'Neil, Ltd."),
            ["jean", "francois", "o", "neil", "ltd"]
        );
    }

    #[test]
    fn long_tokens_are_cut_on_char_boundaries() {
        let t = tokens(&"é".repeat(100));
        assert_eq!(t.len(), 1);
        assert!(t[0].len() <= MAX_TOKEN_BYTES);
    }
}
