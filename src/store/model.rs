//! CRM records (SPEC section 4): accounts, contacts, leads, opportunities, cases,
//! invoices, system users, email templates, sales literature and knowledge
//! articles, and the references between them.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use uuid::Uuid;

use super::address::EmailAddress;
use super::blobs::BlobRef;
use super::ids::Id;
use super::settings::UserOptions;

pub use super::kind::{Kind, RecordRef};

pub type AccountId = Id<Account>;
pub type ContactId = Id<Contact>;
pub type LeadId = Id<Lead>;
pub type OpportunityId = Id<Opportunity>;
pub type CaseId = Id<Case>;
pub type InvoiceId = Id<Invoice>;
pub type UserId = Id<SystemUser>;
pub type TemplateId = Id<EmailTemplate>;
pub type LiteratureId = Id<SalesLiterature>;
pub type ArticleId = Id<KnowledgeArticle>;

/// When a row was made and last changed; set by the store on every write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamps {
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
}

impl Default for Stamps {
    fn default() -> Self {
        let now = Utc::now();
        Stamps {
            created: now,
            modified: now,
        }
    }
}

/// A postal address; every part optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PostalAddress {
    pub street: String,
    pub city: String,
    pub state: String,
    pub postal_code: String,
    pub country: String,
}

impl PostalAddress {
    pub fn is_empty(&self) -> bool {
        [
            &self.street,
            &self.city,
            &self.state,
            &self.postal_code,
            &self.country,
        ]
        .iter()
        .all(|s| s.trim().is_empty())
    }
    /// One line, for lists and search.
    pub fn one_line(&self) -> String {
        [
            &self.street,
            &self.postal_code,
            &self.city,
            &self.state,
            &self.country,
        ]
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim())
        .collect::<Vec<_>>()
        .join(", ")
    }
}

/// An amount in minor units (cents) of an ISO 4217 currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub minor: i64,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub id: AccountId,
    #[serde(flatten)]
    pub stamps: Stamps,
    pub name: String,
    #[serde(default)]
    pub website: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub emails: Vec<EmailAddress>,
    #[serde(default)]
    pub address: PostalAddress,
    #[serde(default)]
    pub primary_contact: Option<ContactId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    pub id: ContactId,
    #[serde(flatten)]
    pub stamps: Stamps,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    /// Shown name; the store fills it from first and last name when empty.
    #[serde(default)]
    pub full_name: String,
    #[serde(default)]
    pub job_title: String,
    #[serde(default)]
    pub department: String,
    /// Company as text (what an address book knows); `account` is the CRM link.
    #[serde(default)]
    pub company: String,
    #[serde(default)]
    pub account: Option<AccountId>,
    #[serde(default)]
    pub emails: Vec<EmailAddress>,
    #[serde(default)]
    pub business_phone: String,
    #[serde(default)]
    pub mobile_phone: String,
    #[serde(default)]
    pub address: PostalAddress,
    /// Categories and groups from an address book (vCard CATEGORIES, group cards).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeadStatus {
    #[default]
    New,
    Contacted,
    Qualified,
    Disqualified,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lead {
    pub id: LeadId,
    #[serde(flatten)]
    pub stamps: Stamps,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    #[serde(default)]
    pub full_name: String,
    #[serde(default)]
    pub company: String,
    #[serde(default)]
    pub topic: String,
    #[serde(default)]
    pub job_title: String,
    #[serde(default)]
    pub emails: Vec<EmailAddress>,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub address: PostalAddress,
    #[serde(default)]
    pub status: LeadStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DealStatus {
    #[default]
    Open,
    Won,
    Lost,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Opportunity {
    pub id: OpportunityId,
    #[serde(flatten)]
    pub stamps: Stamps,
    pub name: String,
    #[serde(default)]
    pub account: Option<AccountId>,
    #[serde(default)]
    pub contact: Option<ContactId>,
    #[serde(default)]
    pub estimated_close: Option<NaiveDate>,
    #[serde(default)]
    pub estimated_value: Option<Money>,
    #[serde(default)]
    pub status: DealStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    #[default]
    Active,
    Resolved,
    Canceled,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Case {
    pub id: CaseId,
    #[serde(flatten)]
    pub stamps: Stamps,
    pub title: String,
    /// An account or a contact.
    pub customer: RecordRef,
    #[serde(default)]
    pub status: CaseStatus,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatus {
    #[default]
    Active,
    Paid,
    Canceled,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invoice {
    pub id: InvoiceId,
    #[serde(flatten)]
    pub stamps: Stamps,
    /// Unique among invoices.
    pub number: String,
    /// An account or a contact.
    pub customer: RecordRef,
    pub amount: Money,
    #[serde(default)]
    pub due: Option<NaiveDate>,
    #[serde(default)]
    pub status: InvoiceStatus,
}

/// What a CRM user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Privilege {
    /// Use the app at all (track, set regarding, open the pane).
    UseApp,
    /// Create contacts, leads, accounts, opportunities and cases.
    CreateRecords,
    /// Delete records and activities.
    DeleteRecords,
    /// Manage users, privileges, delegates and organisation settings.
    Admin,
}

impl Privilege {
    pub const ALL: [Privilege; 4] = [
        Privilege::UseApp,
        Privilege::CreateRecords,
        Privilege::DeleteRecords,
        Privilege::Admin,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Privilege::UseApp => "use_app",
            Privilege::CreateRecords => "create_records",
            Privilege::DeleteRecords => "delete_records",
            Privilege::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Privilege {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let norm = s.trim().to_ascii_lowercase().replace('-', "_");
        Privilege::ALL
            .iter()
            .find(|p| p.as_str() == norm)
            .copied()
            .ok_or_else(|| {
                let names: Vec<_> = Privilege::ALL.iter().map(|p| p.as_str()).collect();
                format!("unknown privilege {s:?}; one of: {}", names.join(", "))
            })
    }
}

/// A CRM user: the owner of a mailbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemUser {
    pub id: UserId,
    #[serde(flatten)]
    pub stamps: Stamps,
    pub full_name: String,
    /// Mailbox logins; unique across users; the first is the primary address.
    pub logins: Vec<EmailAddress>,
    /// IMAP user names that are not e-mail addresses (`jsmith` on a company
    /// server), unique across users like `logins`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub imap_logins: Vec<String>,
    #[serde(default)]
    pub privileges: BTreeSet<Privilege>,
    /// Users allowed to act on this user's mailbox (SPEC section 8).
    #[serde(default)]
    pub delegates: BTreeSet<UserId>,
    #[serde(default)]
    pub options: UserOptions,
}

impl SystemUser {
    pub fn has(&self, p: Privilege) -> bool {
        self.privileges.contains(&p)
    }

    /// The index keys of every name this user signs in with (e-mail logins and
    /// IMAP user names), each with the name as shown in messages.
    pub fn login_keys(&self) -> Vec<(String, String)> {
        let mut keys: Vec<(String, String)> = self
            .logins
            .iter()
            .map(|l| (l.key().to_string(), l.to_string()))
            .collect();
        keys.extend(
            self.imap_logins
                .iter()
                .map(|l| (imap_login_key(l), l.clone())),
        );
        keys
    }
}

/// The index key of an IMAP user name that is not an e-mail address. The space
/// keeps it apart from every address key (an address holds no space).
pub fn imap_login_key(login: &str) -> String {
    format!("imap {}", login.trim().to_lowercase())
}

/// Longest IMAP user name accepted.
pub const MAX_IMAP_LOGIN: usize = 255;

/// Why `login` cannot be an IMAP user name of a CRM user, if it cannot.
pub fn imap_login_problem(login: &str) -> Option<&'static str> {
    if login.is_empty() {
        Some("an IMAP login cannot be empty")
    } else if login.len() > MAX_IMAP_LOGIN {
        Some("an IMAP login is at most 255 bytes")
    } else if login.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("an IMAP login holds no spaces or control characters")
    } else if EmailAddress::parse(login).is_ok() {
        Some("this IMAP login is an e-mail address: add it as a login e-mail instead")
    } else {
        None
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmailTemplate {
    pub id: TemplateId,
    #[serde(flatten)]
    pub stamps: Stamps,
    pub title: String,
    /// Subject and body may hold placeholders such as `{{recipient.first_name}}`,
    /// `{{regarding.name}}`, `{{user.full_name}}`.
    pub subject: String,
    pub body: String,
    /// The kind of regarding record the template is written for, if any.
    #[serde(default)]
    pub for_kind: Option<Kind>,
}

/// A file stored beside sled, referred to by its content hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    pub name: String,
    pub content_type: String,
    pub blob: BlobRef,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SalesLiterature {
    pub id: LiteratureId,
    #[serde(flatten)]
    pub stamps: Stamps,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub files: Vec<FileRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnowledgeArticle {
    pub id: ArticleId,
    #[serde(flatten)]
    pub stamps: Stamps,
    pub title: String,
    #[serde(default)]
    pub keywords: Vec<String>,
    pub body: String,
}

/// Any record, tagged with its type in JSON (`"type": "contact"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    Account(Account),
    Contact(Contact),
    Lead(Lead),
    Opportunity(Opportunity),
    Case(Case),
    Invoice(Invoice),
    User(SystemUser),
    EmailTemplate(EmailTemplate),
    SalesLiterature(SalesLiterature),
    KnowledgeArticle(KnowledgeArticle),
}

macro_rules! each_record {
    ($self:expr, $r:ident => $e:expr) => {
        match $self {
            Record::Account($r) => $e,
            Record::Contact($r) => $e,
            Record::Lead($r) => $e,
            Record::Opportunity($r) => $e,
            Record::Case($r) => $e,
            Record::Invoice($r) => $e,
            Record::User($r) => $e,
            Record::EmailTemplate($r) => $e,
            Record::SalesLiterature($r) => $e,
            Record::KnowledgeArticle($r) => $e,
        }
    };
}

impl Record {
    pub fn id(&self) -> Uuid {
        each_record!(self, r => r.id.uuid())
    }
    pub fn kind(&self) -> Kind {
        match self {
            Record::Account(_) => Kind::Account,
            Record::Contact(_) => Kind::Contact,
            Record::Lead(_) => Kind::Lead,
            Record::Opportunity(_) => Kind::Opportunity,
            Record::Case(_) => Kind::Case,
            Record::Invoice(_) => Kind::Invoice,
            Record::User(_) => Kind::User,
            Record::EmailTemplate(_) => Kind::EmailTemplate,
            Record::SalesLiterature(_) => Kind::SalesLiterature,
            Record::KnowledgeArticle(_) => Kind::KnowledgeArticle,
        }
    }
    pub fn as_ref(&self) -> RecordRef {
        RecordRef {
            kind: self.kind(),
            id: self.id(),
        }
    }
    pub fn stamps(&self) -> &Stamps {
        each_record!(self, r => &r.stamps)
    }
    pub fn stamps_mut(&mut self) -> &mut Stamps {
        each_record!(self, r => &mut r.stamps)
    }
    /// The name a list shows for this record.
    pub fn title(&self) -> String {
        match self {
            Record::Account(r) => r.name.clone(),
            Record::Contact(r) => r.full_name.clone(),
            Record::Lead(r) => {
                if r.full_name.is_empty() {
                    r.topic.clone()
                } else {
                    r.full_name.clone()
                }
            }
            Record::Opportunity(r) => r.name.clone(),
            Record::Case(r) => r.title.clone(),
            Record::Invoice(r) => r.number.clone(),
            Record::User(r) => r.full_name.clone(),
            Record::EmailTemplate(r) => r.title.clone(),
            Record::SalesLiterature(r) => r.name.clone(),
            Record::KnowledgeArticle(r) => r.title.clone(),
        }
    }
    /// E-mail addresses by which mail resolves to this record.
    pub fn emails(&self) -> &[EmailAddress] {
        match self {
            Record::Account(r) => &r.emails,
            Record::Contact(r) => &r.emails,
            Record::Lead(r) => &r.emails,
            Record::User(r) => &r.logins,
            _ => &[],
        }
    }
    /// Records this one points to (each must exist while this one does).
    pub fn links(&self) -> Vec<RecordRef> {
        let mut out = Vec::new();
        match self {
            Record::Account(r) => {
                out.extend(r.primary_contact.map(|c| RecordRef::new(Kind::Contact, c)))
            }
            Record::Contact(r) => out.extend(r.account.map(|a| RecordRef::new(Kind::Account, a))),
            Record::Opportunity(r) => {
                out.extend(r.account.map(|a| RecordRef::new(Kind::Account, a)));
                out.extend(r.contact.map(|c| RecordRef::new(Kind::Contact, c)));
            }
            Record::Case(r) => out.push(r.customer),
            Record::Invoice(r) => out.push(r.customer),
            Record::User(r) => {
                out.extend(r.delegates.iter().map(|d| RecordRef::new(Kind::User, *d)))
            }
            _ => {}
        }
        out.sort();
        out.dedup();
        out
    }
    /// Blobs this record's files live in.
    pub fn blobs(&self) -> Vec<&BlobRef> {
        match self {
            Record::SalesLiterature(r) => r.files.iter().map(|f| &f.blob).collect(),
            _ => Vec::new(),
        }
    }
}

/// Build the shown name from parts: "First Last", or whichever exists.
pub fn join_name(first: &str, last: &str) -> String {
    match (first.trim(), last.trim()) {
        ("", l) => l.to_string(),
        (f, "") => f.to_string(),
        (f, l) => format!("{f} {l}"),
    }
}
