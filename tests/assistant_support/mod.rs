//! Seeding for the relationship assistant's tests, on top of the demo CRM: Northwind's
//! people around one message (a reply waiting, an appointment and a task coming, a
//! quiet contact, a deal closing) and an unrelated Faraway person with cards of
//! every kind, all at known times relative to now.
#![allow(dead_code)]

use chrono::{DateTime, Duration, Utc};
use crmproxy::store::*;
use uuid::Uuid;

pub const ALICE: &str = "alice@example.test";
pub const ALICE_ID: &str = "0193a1b2-c3d4-7001-8000-000000000001";
pub const CURRENT: &str = "<current-1@northwind.example>";

pub fn alice() -> UserId {
    UserId::from_uuid(Uuid::parse_str(ALICE_ID).unwrap())
}

pub fn account(s: &dyn CrmStore, name: &str) -> AccountId {
    let r = s
        .put_record(Record::Account(Account {
            id: AccountId::new(),
            stamps: Stamps::default(),
            name: name.into(),
            website: String::new(),
            phone: String::new(),
            emails: vec![],
            address: Default::default(),
            primary_contact: None,
        }))
        .unwrap();
    AccountId::from_uuid(r.id())
}

pub fn contact(s: &dyn CrmStore, first: &str, last: &str, account: AccountId) -> RecordRef {
    s.put_record(Record::Contact(Contact {
        id: ContactId::new(),
        stamps: Stamps::default(),
        first_name: first.into(),
        last_name: last.into(),
        full_name: String::new(),
        job_title: String::new(),
        department: String::new(),
        company: String::new(),
        account: Some(account),
        emails: vec![EmailAddress::parse(&format!(
            "{}@{}.example",
            first.to_lowercase(),
            last.to_lowercase()
        ))
        .unwrap()],
        business_phone: String::new(),
        mobile_phone: String::new(),
        address: Default::default(),
        categories: Vec::new(),
    }))
    .unwrap()
    .as_ref()
}

pub fn opportunity(
    s: &dyn CrmStore,
    name: &str,
    account: AccountId,
    days: i64,
    status: DealStatus,
) {
    s.put_record(Record::Opportunity(Opportunity {
        id: OpportunityId::new(),
        stamps: Stamps::default(),
        name: name.into(),
        account: Some(account),
        contact: None,
        estimated_close: Some((Utc::now() + Duration::days(days)).date_naive()),
        estimated_value: None,
        status,
    }))
    .unwrap();
}

pub fn party(role: PartyRole, r: RecordRef) -> Party {
    Party {
        role,
        address: None,
        name: String::new(),
        records: vec![r],
    }
}

pub fn put(s: &dyn CrmStore, subject: &str, parties: Vec<Party>, details: ActivityDetails) {
    s.put_activity(Activity {
        id: ActivityId::new(),
        stamps: Stamps::default(),
        owner: alice(),
        subject: subject.into(),
        regarding: None,
        parties,
        details,
    })
    .unwrap();
}

pub fn email_details(
    mid: &str,
    reply_to: Option<&str>,
    date: DateTime<Utc>,
    dir: Direction,
) -> ActivityDetails {
    let irt = reply_to.map(|r| MessageId::parse(r).unwrap());
    ActivityDetails::Email(EmailActivity {
        content_digest: None,
        message_id: MessageId::parse(mid).unwrap(),
        date,
        direction: dir,
        body_text: String::new(),
        in_reply_to: irt.clone(),
        references: irt.into_iter().collect(),
        thread_index: None,
        attachments: vec![],
        raw: None,
        smime: None,
        correlation: Correlation::None,
        correlated_with: None,
    })
}

pub fn appointment(start: DateTime<Utc>) -> ActivityDetails {
    ActivityDetails::Appointment(AppointmentActivity {
        start,
        end: start + Duration::hours(1),
        location: String::new(),
        uid: None,
        recurrence: None,
        raw_invitation: None,
        message_id: None,
        calendar: Default::default(),
    })
}

/// Northwind's people around the current message, and an unrelated Faraway person
/// with cards of every kind that must not show on that message.
pub fn seed(s: &dyn CrmStore) {
    let now = Utc::now();
    let me = RecordRef::new(Kind::User, alice());
    let northwind = account(s, "Northwind Traders");
    let rita = contact(s, "Rita", "Reply", northwind);
    let uma = contact(s, "Uma", "Upcoming", northwind);
    let quinn = contact(s, "Quinn", "Quiet", northwind);
    opportunity(s, "Northwind renewal", northwind, 2, DealStatus::Open);
    opportunity(s, "Northwind lost deal", northwind, 1, DealStatus::Lost);
    opportunity(s, "Northwind next year", northwind, 300, DealStatus::Open);
    // The current message: an old one from Rita to Alice, Uma and Quinn copied.
    put(
        s,
        "Kick-off notes",
        vec![
            party(PartyRole::Sender, rita),
            party(PartyRole::To, me),
            party(PartyRole::Cc, uma),
            party(PartyRole::Cc, quinn),
        ],
        email_details(
            CURRENT,
            None,
            now - Duration::days(100),
            Direction::Incoming,
        ),
    );
    // Rita waits for a reply to one email; another was answered.
    put(
        s,
        "Proposal questions",
        vec![party(PartyRole::Sender, rita), party(PartyRole::To, me)],
        email_details(
            "<q-1@northwind.example>",
            None,
            now - Duration::days(3),
            Direction::Incoming,
        ),
    );
    put(
        s,
        "Answered already",
        vec![party(PartyRole::Sender, rita), party(PartyRole::To, me)],
        email_details(
            "<a-1@northwind.example>",
            None,
            now - Duration::days(5),
            Direction::Incoming,
        ),
    );
    put(
        s,
        "Re: Answered already",
        vec![party(PartyRole::Sender, me), party(PartyRole::To, rita)],
        email_details(
            "<a-2@example.test>",
            Some("<a-1@northwind.example>"),
            now - Duration::days(4),
            Direction::Outgoing,
        ),
    );
    // Uma: a site visit in two days, a task due in five hours, a call two days ago.
    put(
        s,
        "Site visit with Uma",
        vec![
            party(PartyRole::Organizer, me),
            party(PartyRole::RequiredAttendee, uma),
        ],
        appointment(now + Duration::days(2)),
    );
    put(
        s,
        "Call Uma back",
        vec![party(PartyRole::Participant, uma)],
        ActivityDetails::Task(TaskActivity {
            due: Some(now + Duration::hours(5)),
            state: TaskState::Open,
            description: String::new(),
        }),
    );
    put(
        s,
        "Chat with Uma",
        vec![party(PartyRole::Participant, uma)],
        ActivityDetails::PhoneCall(PhoneCallActivity {
            at: now - Duration::days(2),
            direction: Direction::Outgoing,
            phone_number: String::new(),
            duration_minutes: 5,
            description: String::new(),
        }),
    );
    // Faraway: unrelated to the current message, but Alice's own business.
    let faraway = account(s, "Faraway Imports");
    let ned = contact(s, "Ned", "Unrelated", faraway);
    opportunity(s, "Faraway deal", faraway, 1, DealStatus::Open);
    put(
        s,
        "Ned needs an answer",
        vec![party(PartyRole::Sender, ned), party(PartyRole::To, me)],
        email_details(
            "<n-1@faraway.example>",
            None,
            now - Duration::days(1),
            Direction::Incoming,
        ),
    );
    put(
        s,
        "Lunch with Ned",
        vec![
            party(PartyRole::Organizer, me),
            party(PartyRole::RequiredAttendee, ned),
        ],
        appointment(now + Duration::days(1)),
    );
}
