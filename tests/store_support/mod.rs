//! Builders of store rows shared by the store tests (each test binary uses some).
#![allow(dead_code)]

#[path = "../common/backend.rs"]
pub mod backend;
pub use backend::*;

use chrono::{TimeZone, Utc};
use crmproxy::store::*;

pub fn addr(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}

pub fn contact(first: &str, last: &str, email: &str) -> Contact {
    Contact {
        id: ContactId::new(),
        stamps: Stamps::default(),
        first_name: first.into(),
        last_name: last.into(),
        full_name: String::new(),
        job_title: String::new(),
        department: String::new(),
        company: String::new(),
        account: None,
        emails: if email.is_empty() {
            vec![]
        } else {
            vec![addr(email)]
        },
        business_phone: String::new(),
        mobile_phone: String::new(),
        address: PostalAddress::default(),
        categories: Vec::new(),
    }
}

pub fn account(name: &str) -> Account {
    Account {
        id: AccountId::new(),
        stamps: Stamps::default(),
        name: name.into(),
        website: String::new(),
        phone: String::new(),
        emails: vec![],
        address: PostalAddress::default(),
        primary_contact: None,
    }
}

pub fn user(name: &str, login: &str) -> SystemUser {
    SystemUser {
        id: UserId::new(),
        stamps: Stamps::default(),
        full_name: name.into(),
        logins: vec![addr(login)],
        imap_logins: Vec::new(),
        privileges: [Privilege::UseApp].into_iter().collect(),
        delegates: Default::default(),
        options: Default::default(),
    }
}

pub fn email(
    owner: UserId,
    msgid: &str,
    subject: &str,
    regarding: Option<RecordRef>,
    day: u32,
) -> Activity {
    Activity {
        id: ActivityId::new(),
        stamps: Stamps::default(),
        owner,
        subject: subject.into(),
        regarding,
        parties: vec![],
        details: ActivityDetails::Email(EmailActivity {
            content_digest: None,
            message_id: MessageId::parse(msgid).unwrap(),
            date: Utc.with_ymd_and_hms(2026, 11, day, 12, 0, 0).unwrap(),
            direction: Direction::Incoming,
            body_text: String::new(),
            in_reply_to: None,
            references: vec![],
            thread_index: None,
            attachments: vec![],
            raw: None,
            smime: None,
            correlation: Correlation::None,
            correlated_with: None,
        }),
    }
}

pub fn open() -> (tempfile::TempDir, SledStore) {
    let d = tempfile::tempdir().unwrap();
    let s = SledStore::open(d.path().join("store")).unwrap();
    (d, s)
}
