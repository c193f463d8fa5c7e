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
//! The sled side of the `CrmStore` methods is in `sled_book`. Trees (see `sled_index`): `book` owner, entry id → JSON; `book_order` owner,
//! view byte, name key 0 entry id → () (each entry is listed under "all" and under
//! its status, so every filter view is a plain range in name order) and owner,
//! 0xFF, view byte → u64 (each view's count, one read); `book_emails` owner,
//! address key → entry id (an address belongs to one entry per owner).

use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::activity::{Party, TrackStatus, TrackingRecord};
use super::address::EmailAddress;
use super::error::StoreError;
use super::ids::Id;
use super::model::{join_name, Contact, ContactId, PostalAddress, Record, Stamps, UserId};
use super::paging::order_suffix;
use super::sled_index::{self as ix, abort, decode, Outcome, Tx, TxResult};
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

pub(crate) fn book_key(owner: UserId, id: EntryId) -> Vec<u8> {
    [&owner.uuid().as_bytes()[..], id.uuid().as_bytes()].concat()
}
pub(crate) fn order_key(e: &AddressBookEntry, view: BookView) -> Vec<u8> {
    [
        e.owner.uuid().as_bytes(),
        &[view.byte()][..],
        &order_suffix(&e.full_name, e.id.uuid()),
    ]
    .concat()
}
/// The count of a view: `owner, 0xFF, view byte` (outside every view's range).
pub(crate) fn count_key(owner: UserId, view: BookView) -> Vec<u8> {
    [&owner.uuid().as_bytes()[..], &[COUNTS, view.byte()]].concat()
}
pub(crate) fn email_key(owner: UserId, a: &EmailAddress) -> Vec<u8> {
    [owner.uuid().as_bytes(), a.key().as_bytes()].concat()
}

pub(crate) fn tx_entry(tx: &Tx, owner: UserId, id: EntryId) -> TxResult<Option<AddressBookEntry>> {
    match tx.t(ix::BOOK).get(book_key(owner, id))? {
        Some(v) => Ok(Some(decode("address-book entry", &v).or_else(abort)?)),
        None => Ok(None),
    }
}

/// Add or remove an entry's index keys.
pub(crate) fn index_entry(tx: &Tx, e: &AddressBookEntry, add: bool) -> TxResult<()> {
    for view in [BookView::All, e.view()] {
        let counter = count_key(e.owner, view);
        let n = tx
            .t(ix::BOOK_ORDER)
            .get(&counter)?
            .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0);
        if add {
            tx.t(ix::BOOK_ORDER).insert(order_key(e, view), &[])?;
            tx.t(ix::BOOK_ORDER)
                .insert(counter, &(n + 1).to_be_bytes())?;
        } else {
            tx.t(ix::BOOK_ORDER).remove(order_key(e, view))?;
            tx.t(ix::BOOK_ORDER)
                .insert(counter, &n.saturating_sub(1).to_be_bytes())?;
        }
    }
    for a in &e.emails {
        let k = email_key(e.owner, a);
        if add {
            if let Some(other) = tx.t(ix::BOOK_EMAILS).insert(k, e.id.uuid().as_bytes())? {
                if other.as_ref() != e.id.uuid().as_bytes() {
                    return abort(StoreError::Duplicate(format!(
                        "{a} is already in this address book"
                    )));
                }
            }
        } else {
            tx.t(ix::BOOK_EMAILS).remove(k)?;
        }
    }
    Ok(())
}

/// Create or replace an entry with its index keys (inside a write).
pub(crate) fn write_entry(tx: &Tx, e: &AddressBookEntry) -> TxResult<()> {
    if let Some(old) = tx_entry(tx, e.owner, e.id)? {
        index_entry(tx, &old, false)?;
    }
    index_entry(tx, e, true)?;
    let json = serde_json::to_vec(e).expect("entries serialise");
    tx.t(ix::BOOK).insert(book_key(e.owner, e.id), json)?;
    Ok(())
}

/// Write an entry as given (an export being imported), telling whether it changed.
pub(crate) fn import_entry(tx: &Tx, e: &AddressBookEntry) -> TxResult<Outcome> {
    let outcome = match tx_entry(tx, e.owner, e.id)? {
        None => Outcome::Created,
        Some(old) if old == *e => return Ok(Outcome::Unchanged),
        Some(_) => Outcome::Updated,
    };
    write_entry(tx, e)?;
    Ok(outcome)
}

/// Check what an entry points to: its owner, and the contact it is linked to.
pub(crate) fn check_entry(tx: &Tx, e: &AddressBookEntry) -> TxResult<()> {
    let what = format!("address-book entry {}", e.id);
    if !matches!(tx.record(e.owner.uuid())?, Some(Record::User(_))) {
        return abort(StoreError::MissingLink {
            what,
            kind: super::Kind::User,
            id: e.owner.uuid(),
        });
    }
    if let ContactLink::Tracked { contact } = &e.link {
        if !matches!(tx.record(contact.uuid())?, Some(Record::Contact(_))) {
            return abort(StoreError::MissingLink {
                what,
                kind: super::Kind::Contact,
                id: contact.uuid(),
            });
        }
    }
    Ok(())
}

#[derive(Deserialize)]
struct PartiesOnly {
    #[serde(default)]
    parties: Vec<Party>,
}

#[derive(Deserialize)]
struct LoginsOnly {
    #[serde(default)]
    logins: Vec<EmailAddress>,
}

/// Put every address of a tracked email into its owner's address book (inside the
/// tracking record's write). The owner's own addresses are left out; an address
/// already in the book is left as it is.
pub(crate) fn note_seen(tx: &Tx, t: &TrackingRecord) -> TxResult<()> {
    if t.status != TrackStatus::Tracked {
        return Ok(());
    }
    let Some(aid) = t.activity else {
        return Ok(());
    };
    // Only the parties and the owner's logins are read: decoding the whole
    // activity (its body text) for each tracked email would cost more.
    let Some(raw) = tx.t(ix::ACTIVITIES).get(aid.uuid().as_bytes())? else {
        return Ok(());
    };
    let activity: PartiesOnly = decode("activity", &raw).or_else(abort)?;
    let Some(raw) = tx.t(ix::RECORDS).get(t.owner.uuid().as_bytes())? else {
        return Ok(());
    };
    let own = decode::<LoginsOnly>("user", &raw).or_else(abort)?.logins;
    let now = Utc::now();
    for p in &activity.parties {
        let Some(addr) = &p.address else { continue };
        if own.iter().any(|o| o.same_as(addr)) {
            continue;
        }
        if tx
            .t(ix::BOOK_EMAILS)
            .get(email_key(t.owner, addr))?
            .is_some()
        {
            continue;
        }
        let name: String = p
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
            owner: t.owner,
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
            emails: vec![addr.clone()],
            business_phone: String::new(),
            mobile_phone: String::new(),
            address: PostalAddress::default(),
            categories: Vec::new(),
            source: EntrySource::SeenInMail,
            link: ContactLink::Untracked,
        };
        if e.validate().is_ok() {
            write_entry(tx, &e)?;
        }
    }
    Ok(())
}
