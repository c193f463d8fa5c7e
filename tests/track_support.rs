//! Shared set-up for the tracking engine's tests (included with `#[path]` by the
//! `track_*` test files): a real sled store in a temp dir with a small CRM, and the
//! fixture messages of `fixtures/mail` and `fixtures/smime`.
#![allow(dead_code, clippy::new_without_default)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crmproxy::config::TrackingConfig;
use crmproxy::store::*;
use crmproxy::track::{Actor, Engine};

#[path = "common/backend.rs"]
pub mod backend;
pub use backend::{Backend, TestStore};

pub fn fixture(rel: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn mail(name: &str) -> Vec<u8> {
    fixture(&format!("mail/{name}"))
}

pub fn addr(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}

pub fn mid(s: &str) -> MessageId {
    MessageId::parse(s).unwrap()
}

pub fn user(name: &str, login: &str, use_app: bool) -> SystemUser {
    SystemUser {
        id: UserId::new(),
        stamps: Stamps::default(),
        full_name: name.into(),
        logins: vec![addr(login)],
        imap_logins: Vec::new(),
        privileges: if use_app {
            [Privilege::UseApp].into_iter().collect()
        } else {
            Default::default()
        },
        delegates: Default::default(),
        options: Default::default(),
    }
}

pub fn contact(first: &str, last: &str, email: &str, account: Option<AccountId>) -> Contact {
    Contact {
        id: ContactId::new(),
        stamps: Stamps::default(),
        first_name: first.into(),
        last_name: last.into(),
        full_name: String::new(),
        job_title: String::new(),
        department: String::new(),
        company: String::new(),
        account,
        emails: vec![addr(email)],
        business_phone: String::new(),
        mobile_phone: String::new(),
        address: PostalAddress::default(),
        categories: Vec::new(),
    }
}

pub fn account(name: &str, emails: &[&str]) -> Account {
    Account {
        id: AccountId::new(),
        stamps: Stamps::default(),
        name: name.into(),
        website: String::new(),
        phone: String::new(),
        emails: emails.iter().map(|e| addr(e)).collect(),
        address: PostalAddress::default(),
        primary_contact: None,
    }
}

pub fn lead(first: &str, last: &str, email: &str) -> Lead {
    Lead {
        id: LeadId::new(),
        stamps: Stamps::default(),
        first_name: first.into(),
        last_name: last.into(),
        full_name: String::new(),
        company: "Northwind".into(),
        topic: "Trial".into(),
        job_title: String::new(),
        emails: vec![addr(email)],
        phone: String::new(),
        address: PostalAddress::default(),
        status: LeadStatus::New,
    }
}

/// A CRM with users alice (owner), bob (alice's delegate), dave (no `use_app`),
/// erin (another user); contact carol (Fabrikam), lead lena, account Adatum
/// (sales@adatum.example), opportunity "40 licences", and the address
/// multi@shared.example on a user, a contact, an account and a lead.
pub struct World {
    pub dir: tempfile::TempDir,
    pub store: Arc<dyn CrmStore>,
    /// Where the store is (its sled directory or database), for another handle.
    pub place: TestStore,
    pub engine: Engine,
    pub alice: UserId,
    pub bob: UserId,
    pub dave: UserId,
    pub erin: UserId,
    pub frank: UserId,
    pub fabrikam: RecordRef,
    pub adatum: RecordRef,
    pub carol: RecordRef,
    pub lena: RecordRef,
    pub opportunity: RecordRef,
    pub multi_contact: RecordRef,
    pub multi_account: RecordRef,
    pub multi_lead: RecordRef,
}

pub const FABRIKAM_FOLDER: &str = "CRM/Fabrikam";

impl World {
    pub fn new() -> World {
        Self::with_config(|_| {})
    }

    /// The same world on another backend.
    pub fn on(backend: Backend) -> World {
        Self::with_config_on(backend, |_| {})
    }

    pub fn with_config(edit: impl FnOnce(&mut TrackingConfig)) -> World {
        Self::with_config_on(Backend::Sled, edit)
    }

    pub fn with_config_on(backend: Backend, edit: impl FnOnce(&mut TrackingConfig)) -> World {
        let dir = tempfile::tempdir().unwrap();
        let place = TestStore::new(backend);
        let store = place.arc();
        let put = |r: Record| store.put_record(r).unwrap().as_ref();
        let alice = put(Record::User(user(
            "Alice Example",
            "alice@contoso.example",
            true,
        )));
        let bob = put(Record::User(user(
            "Bob Delegate",
            "bob@contoso.example",
            true,
        )));
        let dave = put(Record::User(user(
            "Dave NoApp",
            "dave@contoso.example",
            false,
        )));
        let erin = put(Record::User(user(
            "Erin Other",
            "erin@contoso.example",
            true,
        )));
        let frank = put(Record::User(user(
            "Frank Multi",
            "multi@shared.example",
            true,
        )));
        let id = |r: RecordRef| UserId::from_uuid(r.id);
        store.set_delegate(id(alice), id(bob), true).unwrap();
        // Alice's address-book actions create contacts and accounts.
        store
            .set_privilege(id(alice), Privilege::CreateRecords, true)
            .unwrap();
        let fabrikam = put(Record::Account(account("Fabrikam", &[])));
        let adatum = put(Record::Account(account(
            "Adatum",
            &["sales@adatum.example"],
        )));
        let carol = put(Record::Contact(contact(
            "Carol",
            "Fabré",
            "carol@fabrikam.example",
            Some(AccountId::from_uuid(fabrikam.id)),
        )));
        let lena = put(Record::Lead(lead("Léna", "Nørd", "lena@northwind.example")));
        let opportunity = put(Record::Opportunity(Opportunity {
            id: OpportunityId::new(),
            stamps: Stamps::default(),
            name: "40 licences".into(),
            account: Some(AccountId::from_uuid(fabrikam.id)),
            contact: None,
            estimated_close: None,
            estimated_value: None,
            status: DealStatus::Open,
        }));
        let multi_contact = put(Record::Contact(contact(
            "Multi",
            "Contact",
            "multi@shared.example",
            None,
        )));
        let multi_account = put(Record::Account(account(
            "Multi Account",
            &["multi@shared.example"],
        )));
        let multi_lead = put(Record::Lead(lead("Multi", "Lead", "multi@shared.example")));
        let mut cfg = TrackingConfig {
            folder_regarding: BTreeMap::from([(
                FABRIKAM_FOLDER.to_string(),
                format!("account:{}", fabrikam.id),
            )]),
            ..TrackingConfig::default()
        };
        edit(&mut cfg);
        let engine = Engine::new(store.clone(), cfg).unwrap();
        World {
            dir,
            store,
            place,
            engine,
            alice: id(alice),
            bob: id(bob),
            dave: id(dave),
            erin: id(erin),
            frank: id(frank),
            fabrikam,
            adatum,
            carol,
            lena,
            opportunity,
            multi_contact,
            multi_account,
            multi_lead,
        }
    }

    pub fn alice(&self) -> Actor {
        self.engine
            .actor("alice@contoso.example", "alice@contoso.example")
            .unwrap()
    }
    pub fn erin(&self) -> Actor {
        self.engine
            .actor("erin@contoso.example", "erin@contoso.example")
            .unwrap()
    }
    /// Bob acting on Alice's mailbox.
    pub fn bob_for_alice(&self) -> Actor {
        self.engine
            .actor("alice@contoso.example", "bob@contoso.example")
            .unwrap()
    }

    pub fn user(&self, id: UserId) -> SystemUser {
        match self.store.record(id.uuid()).unwrap() {
            Some(Record::User(u)) => u,
            other => panic!("not a user: {other:?}"),
        }
    }

    pub fn set_auto_track(&self, id: UserId, mode: AutoTrack, ignore: &[&str]) {
        let mut u = self.user(id);
        u.options.auto_track = mode;
        u.options.ignore = ignore.iter().map(|s| s.to_string()).collect();
        self.store.put_record(Record::User(u)).unwrap();
    }

    pub fn edit_settings(&self, edit: impl FnOnce(&mut OrgSettings)) {
        let mut s = self.store.settings().unwrap();
        edit(&mut s);
        self.store.put_settings(s).unwrap();
    }

    /// Everything the store holds, to show that a refused action changed nothing.
    pub fn snapshot(&self) -> (Vec<Activity>, Vec<TrackingRecord>) {
        let b = self.store.export().unwrap();
        (b.activities, b.tracking)
    }

    pub fn email(a: &Activity) -> &EmailActivity {
        match &a.details {
            ActivityDetails::Email(e) => e,
            other => panic!("not an email: {other:?}"),
        }
    }
}
