//! What a user does with address-book entries (the guide's "Track or untrack a
//! contact" and "Link a contact to an account"): Track links each entry to the CRM
//! contact with its address, or creates one from the entry; an address that
//! several CRM contacts share makes the entry pending until the user chooses;
//! Untrack unlinks (the CRM contact stays); Link sets the account of the entries'
//! CRM contacts, tracking them first.
//!
//! Every action is a function of who acts (`actor`) and whose address book it is
//! (`owner`): a delegate may not track the owner's contacts (SPEC section 8), so
//! anyone but the owner is refused. Each action checks every entry first and then
//! writes once, atomically: a refusal changes nothing.

use std::collections::BTreeSet;

use super::address_book::{AddressBookEntry, ContactLink, EntryId};
use super::error::StoreError;
use super::model::{Account, AccountId, ContactId, Kind, Privilege, Record, Stamps, UserId};
use super::text::fold;
use super::{CrmStore, SearchQuery};

/// Longest account name accepted for a new account.
pub const MAX_ACCOUNT_NAME: usize = 200;
/// Most entries one action may name.
pub const MAX_SELECTION: usize = 500;

/// Why an action was refused; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum BookError {
    #[error("a delegate cannot track contacts of the owner's mailbox; the owner can")]
    Delegate,
    #[error("this user may not change that address book (only its owner, with the use_app privilege, can)")]
    NotOwner,
    #[error("select at least one contact")]
    NothingSelected,
    #[error("select at most {MAX_SELECTION} contacts at a time")]
    TooMany,
    #[error("there is no contact {0} in this address book (deleted?); reload the page")]
    UnknownEntry(EntryId),
    #[error("there is no account {0} (deleted?); choose another")]
    UnknownAccount(AccountId),
    #[error("{0} is not one of the CRM contacts this entry may be linked to")]
    NotACandidate(ContactId),
    #[error("{0} is pending: choose which CRM contact it is first")]
    Pending(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an action did, for the banner and the API.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct BookReport {
    /// Entries now linked to a contact that already existed.
    pub linked: usize,
    /// Contacts created from entries.
    pub created: usize,
    /// Entries now waiting for a choice.
    pub pending: usize,
    /// Entries unlinked.
    pub untracked: usize,
    /// CRM contacts whose account was set.
    pub account_set: usize,
    /// Entries that were already as asked.
    pub unchanged: usize,
    /// The account created by "Link to a new account".
    pub new_account: Option<AccountId>,
    /// The entries as stored after the action.
    pub entries: Vec<AddressBookEntry>,
}

/// The account to link to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountTarget {
    Existing(AccountId),
    New(String),
}

/// What the user chose for a pending entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    Contact(ContactId),
    NewContact,
}

/// May `actor` change `owner`'s address book? Only the owner, with `use_app`;
/// a delegate is refused with [`BookError::Delegate`].
pub fn check_actor(store: &dyn CrmStore, actor: UserId, owner: UserId) -> Result<(), BookError> {
    if actor != owner {
        return Err(if store.may_act_for(actor, owner)? {
            BookError::Delegate
        } else {
            BookError::NotOwner
        });
    }
    match store.record(owner.uuid())? {
        Some(Record::User(u)) if u.has(Privilege::UseApp) => Ok(()),
        _ => Err(BookError::NotOwner),
    }
}

fn load(
    store: &dyn CrmStore,
    owner: UserId,
    ids: &[EntryId],
) -> Result<Vec<AddressBookEntry>, BookError> {
    let unique: BTreeSet<EntryId> = ids.iter().copied().collect();
    if unique.is_empty() {
        return Err(BookError::NothingSelected);
    }
    if unique.len() > MAX_SELECTION {
        return Err(BookError::TooMany);
    }
    let mut out = Vec::with_capacity(unique.len());
    for id in ids {
        if out.iter().any(|e: &AddressBookEntry| e.id == *id) {
            continue;
        }
        out.push(
            store
                .address_book_entry(owner, *id)?
                .ok_or(BookError::UnknownEntry(*id))?,
        );
    }
    Ok(out)
}

/// The contact an entry is linked to, if it still exists.
fn linked_contact(
    store: &dyn CrmStore,
    e: &AddressBookEntry,
) -> Result<Option<ContactId>, BookError> {
    if let ContactLink::Tracked { contact } = &e.link {
        if matches!(store.record(contact.uuid())?, Some(Record::Contact(_))) {
            return Ok(Some(*contact));
        }
    }
    Ok(None)
}

/// CRM contacts having one of the entry's addresses.
fn contacts_with_address(
    store: &dyn CrmStore,
    e: &AddressBookEntry,
) -> Result<Vec<ContactId>, BookError> {
    let mut found = BTreeSet::new();
    for a in &e.emails {
        for r in store.resolve_address(a)? {
            if r.kind == Kind::Contact {
                found.insert(ContactId::from_uuid(r.id));
            }
        }
    }
    Ok(found.into_iter().collect())
}

/// The account whose name is the entry's company (case and accents ignored).
fn account_named(store: &dyn CrmStore, company: &str) -> Result<Option<AccountId>, BookError> {
    let want = fold(company.trim());
    if want.is_empty() {
        return Ok(None);
    }
    let hits = store.search(&SearchQuery {
        text: company.to_owned(),
        kinds: vec![Kind::Account],
        limit: 20,
    })?;
    Ok(hits
        .into_iter()
        .find(|h| fold(h.title.trim()) == want)
        .map(|h| AccountId::from_uuid(h.id)))
}

/// Decide Track for one entry: link, make pending, or create a contact (pushed to `new`).
fn track_one(
    store: &dyn CrmStore,
    e: &mut AddressBookEntry,
    new: &mut Vec<Record>,
    report: &mut BookReport,
) -> Result<(), BookError> {
    if linked_contact(store, e)?.is_some() {
        report.unchanged += 1;
        return Ok(());
    }
    let found = contacts_with_address(store, e)?;
    match found.as_slice() {
        [one] => {
            e.link = ContactLink::Tracked { contact: *one };
            report.linked += 1;
        }
        [] => {
            let mut c = e.to_contact();
            c.account = account_named(store, &e.company)?;
            e.link = ContactLink::Tracked { contact: c.id };
            new.push(Record::Contact(c));
            report.created += 1;
        }
        several => {
            if matches!(&e.link, ContactLink::Pending { candidates } if candidates == several) {
                report.unchanged += 1;
            } else {
                e.link = ContactLink::Pending {
                    candidates: several.to_vec(),
                };
                report.pending += 1;
            }
        }
    }
    Ok(())
}

/// Track the entries: link each to the CRM contact with its address, create one
/// when there is none, or make it pending when several share the address.
pub fn track(
    store: &dyn CrmStore,
    actor: UserId,
    owner: UserId,
    ids: &[EntryId],
) -> Result<BookReport, BookError> {
    check_actor(store, actor, owner)?;
    let mut entries = load(store, owner, ids)?;
    let mut report = BookReport::default();
    let mut new = Vec::new();
    for e in &mut entries {
        track_one(store, e, &mut new, &mut report)?;
    }
    report.entries = store.address_book_write(owner, new, entries)?;
    Ok(report)
}

/// Untrack the entries (tracked or pending); their CRM contacts stay.
pub fn untrack(
    store: &dyn CrmStore,
    actor: UserId,
    owner: UserId,
    ids: &[EntryId],
) -> Result<BookReport, BookError> {
    check_actor(store, actor, owner)?;
    let mut entries = load(store, owner, ids)?;
    let mut report = BookReport::default();
    for e in &mut entries {
        if e.link == ContactLink::Untracked {
            report.unchanged += 1;
        } else {
            e.link = ContactLink::Untracked;
            report.untracked += 1;
        }
    }
    report.entries = store.address_book_write(owner, Vec::new(), entries)?;
    Ok(report)
}

/// Resolve a pending entry (or re-link an untracked one) with the user's choice.
pub fn choose(
    store: &dyn CrmStore,
    actor: UserId,
    owner: UserId,
    id: EntryId,
    choice: Choice,
) -> Result<BookReport, BookError> {
    check_actor(store, actor, owner)?;
    let mut e = load(store, owner, &[id])?.remove(0);
    let mut report = BookReport::default();
    let mut new = Vec::new();
    match choice {
        Choice::Contact(c) => {
            let allowed = match &e.link {
                ContactLink::Pending { candidates } => candidates.contains(&c),
                _ => contacts_with_address(store, &e)?.contains(&c),
            };
            if !allowed || !matches!(store.record(c.uuid())?, Some(Record::Contact(_))) {
                return Err(BookError::NotACandidate(c));
            }
            e.link = ContactLink::Tracked { contact: c };
            report.linked += 1;
        }
        Choice::NewContact => {
            let mut c = e.to_contact();
            c.account = account_named(store, &e.company)?;
            e.link = ContactLink::Tracked { contact: c.id };
            new.push(Record::Contact(c));
            report.created += 1;
        }
    }
    report.entries = store.address_book_write(owner, new, vec![e])?;
    Ok(report)
}

/// Check a new account's name: one line, not empty, at most [`MAX_ACCOUNT_NAME`] characters.
pub fn account_name(raw: &str) -> Result<String, BookError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(BookError::Invalid("enter the new account's name".into()));
    }
    if name.chars().count() > MAX_ACCOUNT_NAME || name.chars().any(|c| c.is_control()) {
        return Err(BookError::Invalid(format!(
            "an account name is one line of at most {MAX_ACCOUNT_NAME} characters"
        )));
    }
    Ok(name.to_owned())
}

/// Link the entries' CRM contacts to an account (an existing one, or a new one
/// made by name), tracking untracked entries first, as the guide says.
pub fn link_account(
    store: &dyn CrmStore,
    actor: UserId,
    owner: UserId,
    ids: &[EntryId],
    target: AccountTarget,
) -> Result<BookReport, BookError> {
    check_actor(store, actor, owner)?;
    let mut entries = load(store, owner, ids)?;
    let mut records = Vec::new();
    let account = match target {
        AccountTarget::Existing(a) => match store.record(a.uuid())? {
            Some(Record::Account(_)) => a,
            _ => return Err(BookError::UnknownAccount(a)),
        },
        AccountTarget::New(name) => {
            let a = Account {
                id: AccountId::new(),
                stamps: Stamps::default(),
                name: account_name(&name)?,
                website: String::new(),
                phone: String::new(),
                emails: Vec::new(),
                address: Default::default(),
                primary_contact: None,
            };
            records.push(Record::Account(a.clone()));
            a.id
        }
    };
    let mut report = BookReport {
        new_account: matches!(records.first(), Some(Record::Account(_))).then_some(account),
        ..Default::default()
    };
    let mut created = Vec::new();
    for e in &mut entries {
        track_one(store, e, &mut created, &mut report)?;
        if matches!(e.link, ContactLink::Pending { .. }) {
            return Err(BookError::Pending(e.full_name.clone()));
        }
    }
    // Set the account on every linked contact (new ones are in `created`).
    for e in &entries {
        let ContactLink::Tracked { contact } = e.link else {
            continue;
        };
        if let Some(Record::Contact(c)) = created.iter_mut().find(|r| r.id() == contact.uuid()) {
            c.account = Some(account);
            report.account_set += 1;
            continue;
        }
        if records.iter().any(|r| r.id() == contact.uuid()) {
            continue; // two entries linked to one contact
        }
        if let Some(Record::Contact(mut c)) = store.record(contact.uuid())? {
            if c.account != Some(account) {
                c.account = Some(account);
                records.push(Record::Contact(c));
            }
            report.account_set += 1;
        }
    }
    records.extend(created);
    report.entries = store.address_book_write(owner, records, entries)?;
    Ok(report)
}
