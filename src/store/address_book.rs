//! A user's own address book ("mail contacts", SPEC section 6 and the guide's
//! "Track Outlook contacts"): entries imported from the user's vCard/CSV address
//! book, plus every address seen in mail tracked in the user's mailbox. Each entry
//! is untracked, tracked (linked to a CRM contact), or pending (Track found several
//! CRM contacts with its address, and the user must choose one).
//!
//! Seen addresses are written when tracking happens (inside the same transaction
//! as the tracking record, see `Tx::write_tracking`), not derived on read: deriving
//! would read every tracked email of the mailbox on every page view, and could not
//! be paged or filtered without doing so. Writing costs a few key look-ups per
//! tracked email; reading a page costs one index range.
//!
//! The sled side of the `CrmStore` methods is in `sled::book`. Trees (see `sled::index`): `book` owner, entry id → the entry (a compact row, see `sled::compact`); `book_order` owner,
//! view byte, name key 0 entry id → () (each entry is listed under "all" and under
//! its status, so every filter view is a plain range in name order) and owner,
//! 0xFF, view byte → u64 (each view's count, one read); `book_emails` owner,
//! address key → entry id (an address belongs to one entry per owner).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::activity::Party;
use super::address::EmailAddress;
use super::error::StoreError;
use super::ids::Id;
use super::model::{join_name, Contact, ContactId, PostalAddress, Stamps, UserId};
use super::text::tokens;
use super::Result;

pub type EntryId = Id<AddressBookEntry>;

/// Longest text field of an entry, in characters.
pub const MAX_FIELD_CHARS: usize = 500;
/// The view byte under which `book_order` keeps each view's count.
pub(crate) const COUNTS: u8 = 0xFF;

/// Where an entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntrySource {
    /// Imported from the user's address book (vCard, CSV).
    #[default]
    Imported,
    /// Seen as a sender or recipient of mail tracked in the user's mailbox.
    SeenInMail,
}

/// Whether an entry is tracked in the CRM.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ContactLink {
    #[default]
    Untracked,
    /// Linked to this CRM contact.
    Tracked { contact: ContactId },
    /// Track was asked, but several CRM contacts have the entry's address: the
    /// user chooses one (or asks for a new contact).
    Pending { candidates: Vec<ContactId> },
}

/// The filter views of the list (the guide's view drop-down, plus pending).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BookView {
    #[default]
    All,
    Tracked,
    Untracked,
    Pending,
}

impl BookView {
    pub const ALL: [BookView; 4] = [
        BookView::All,
        BookView::Tracked,
        BookView::Untracked,
        BookView::Pending,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            BookView::All => "all",
            BookView::Tracked => "tracked",
            BookView::Untracked => "untracked",
            BookView::Pending => "pending",
        }
    }
    pub(crate) fn byte(self) -> u8 {
        match self {
            BookView::All => 0,
            BookView::Tracked => 1,
            BookView::Untracked => 2,
            BookView::Pending => 3,
        }
    }
}

impl std::str::FromStr for BookView {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        BookView::ALL
            .into_iter()
            .find(|v| v.as_str() == s.trim())
            .ok_or_else(|| format!("unknown view {s:?}; one of: all, tracked, untracked, pending"))
    }
}

/// How many entries each view holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookCounts {
    pub all: usize,
    pub tracked: usize,
    pub untracked: usize,
    pub pending: usize,
}

/// One person in a user's address book.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddressBookEntry {
    pub id: EntryId,
    pub owner: UserId,
    #[serde(flatten)]
    pub stamps: Stamps,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    /// Shown name; filled from first/last name or the address when empty.
    #[serde(default)]
    pub full_name: String,
    #[serde(default)]
    pub company: String,
    #[serde(default)]
    pub job_title: String,
    #[serde(default)]
    pub department: String,
    #[serde(default)]
    pub emails: Vec<EmailAddress>,
    #[serde(default)]
    pub business_phone: String,
    #[serde(default)]
    pub mobile_phone: String,
    #[serde(default)]
    pub address: PostalAddress,
    /// Categories and groups from the imported address book.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    #[serde(default)]
    pub source: EntrySource,
    #[serde(default)]
    pub link: ContactLink,
}

impl AddressBookEntry {
    /// The entry a party of a tracked email becomes in its owner's book (every
    /// backend adds one for an address that is neither the owner's nor in the
    /// book yet), if it makes a valid entry.
    pub fn seen_in_mail(
        owner: UserId,
        party: &Party,
        address: &EmailAddress,
        now: DateTime<Utc>,
    ) -> Option<AddressBookEntry> {
        let name: String = party
            .name
            .trim()
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_FIELD_CHARS)
            .collect();
        let (first, last) = match name.rsplit_once(' ') {
            Some((f, l)) => (f.trim().to_owned(), l.trim().to_owned()),
            None => (String::new(), name.clone()),
        };
        let mut e = AddressBookEntry {
            id: EntryId::new(),
            owner,
            stamps: Stamps {
                created: now,
                modified: now,
            },
            first_name: first,
            last_name: last,
            full_name: name,
            company: String::new(),
            job_title: String::new(),
            department: String::new(),
            emails: vec![address.clone()],
            business_phone: String::new(),
            mobile_phone: String::new(),
            address: PostalAddress::default(),
            categories: Vec::new(),
            source: EntrySource::SeenInMail,
            link: ContactLink::Untracked,
        };
        e.validate().is_ok().then_some(e)
    }

    /// A new, untracked entry of `owner`'s made from an address-book contact.
    pub fn from_contact(owner: UserId, c: Contact, source: EntrySource) -> Self {
        AddressBookEntry {
            id: EntryId::new(),
            owner,
            stamps: Stamps::default(),
            first_name: c.first_name,
            last_name: c.last_name,
            full_name: c.full_name,
            company: c.company,
            job_title: c.job_title,
            department: c.department,
            emails: c.emails,
            business_phone: c.business_phone,
            mobile_phone: c.mobile_phone,
            address: c.address,
            categories: c.categories,
            source,
            link: ContactLink::Untracked,
        }
    }

    /// A new CRM contact with this entry's fields (Track when no contact has its address).
    pub fn to_contact(&self) -> Contact {
        Contact {
            id: ContactId::new(),
            stamps: Stamps::default(),
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            full_name: self.full_name.clone(),
            job_title: self.job_title.clone(),
            department: self.department.clone(),
            company: self.company.clone(),
            account: None,
            emails: self.emails.clone(),
            business_phone: self.business_phone.clone(),
            mobile_phone: self.mobile_phone.clone(),
            address: self.address.clone(),
            categories: self.categories.clone(),
        }
    }

    pub fn view(&self) -> BookView {
        match self.link {
            ContactLink::Untracked => BookView::Untracked,
            ContactLink::Tracked { .. } => BookView::Tracked,
            ContactLink::Pending { .. } => BookView::Pending,
        }
    }

    /// Does every word of `words` start a word of the searchable fields (the
    /// guide's: full name, company, department, business address)?
    pub fn matches(&self, words: &[String]) -> bool {
        let mut have = Vec::new();
        for f in [
            &self.full_name,
            &self.first_name,
            &self.last_name,
            &self.company,
            &self.department,
            &self.address.street,
            &self.address.city,
            &self.address.state,
            &self.address.postal_code,
            &self.address.country,
        ] {
            have.extend(tokens(f));
        }
        words
            .iter()
            .all(|w| have.iter().any(|t| t.starts_with(w.as_str())))
    }

    /// Check lengths and characters, and fill the shown name.
    pub fn validate(&mut self) -> Result<()> {
        let fields = [
            ("first name", &self.first_name),
            ("last name", &self.last_name),
            ("full name", &self.full_name),
            ("company", &self.company),
            ("job title", &self.job_title),
            ("department", &self.department),
            ("business phone", &self.business_phone),
            ("mobile phone", &self.mobile_phone),
            ("street", &self.address.street),
            ("city", &self.address.city),
            ("state", &self.address.state),
            ("postal code", &self.address.postal_code),
            ("country", &self.address.country),
        ];
        for (name, v) in fields {
            if v.chars().count() > MAX_FIELD_CHARS {
                return Err(StoreError::invalid(
                    "address-book entry",
                    format!("the {name} is longer than {MAX_FIELD_CHARS} characters"),
                ));
            }
            let multi_line = name == "street";
            if v.chars()
                .any(|c| c.is_control() && !(multi_line && c == '\n'))
            {
                return Err(StoreError::invalid(
                    "address-book entry",
                    format!("the {name} holds control characters"),
                ));
            }
        }
        if self.full_name.trim().is_empty() {
            self.full_name = join_name(&self.first_name, &self.last_name);
        }
        if self.full_name.trim().is_empty() {
            match self.emails.first() {
                Some(e) => self.full_name = e.as_str().to_owned(),
                None => {
                    return Err(StoreError::invalid(
                        "address-book entry",
                        "it needs a name or an e-mail address",
                    ))
                }
            }
        }
        Ok(())
    }
}
