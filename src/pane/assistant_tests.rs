//! Unit tests of the relationship assistant's rules, on plain data at a fixed "now".

use super::*;
use crate::store::{
    ActivityId, AppointmentActivity, ContactId, Correlation, EmailActivity, MessageId,
    OpportunityId, Party, PhoneCallActivity, Stamps, TaskActivity,
};
use chrono::TimeZone;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap()
}

fn person(name: &str, created_days_ago: i64) -> Person {
    Person {
        record: RecordRef::new(Kind::Contact, ContactId::new()),
        name: name.into(),
        created: now() - Duration::days(created_days_ago),
    }
}

fn party(role: PartyRole, r: RecordRef) -> Party {
    Party {
        role,
        address: None,
        name: String::new(),
        records: vec![r],
    }
}

fn user_ref(u: UserId) -> RecordRef {
    RecordRef::new(Kind::User, u)
}

fn activity(
    owner: UserId,
    subject: &str,
    parties: Vec<Party>,
    details: ActivityDetails,
) -> Activity {
    Activity {
        id: ActivityId::new(),
        stamps: Stamps::default(),
        owner,
        subject: subject.into(),
        regarding: None,
        parties,
        details,
    }
}

#[allow(clippy::too_many_arguments)]
fn email(
    owner: UserId,
    from: RecordRef,
    to: RecordRef,
    mid: &str,
    reply_to: Option<&str>,
    date: DateTime<Utc>,
    dir: Direction,
) -> Activity {
    let mid = MessageId::parse(mid).unwrap();
    let irt = reply_to.map(|r| MessageId::parse(r).unwrap());
    activity(
        owner,
        &format!("Mail {mid}"),
        vec![party(PartyRole::Sender, from), party(PartyRole::To, to)],
        ActivityDetails::Email(EmailActivity {
            content_digest: None,
            message_id: mid,
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
        }),
    )
}

fn appointment(owner: UserId, with: RecordRef, start: DateTime<Utc>) -> Activity {
    activity(
        owner,
        "Quarterly review",
        vec![party(PartyRole::RequiredAttendee, with)],
        ActivityDetails::Appointment(AppointmentActivity {
            start,
            end: start + Duration::hours(1),
            location: String::new(),
            uid: None,
            recurrence: None,
            raw_invitation: None,
            message_id: None,
            calendar: Default::default(),
        }),
    )
}

fn opportunity(name: &str, close_in_days: i64, status: DealStatus) -> Opportunity {
    Opportunity {
        id: OpportunityId::new(),
        stamps: Stamps::default(),
        name: name.into(),
        account: None,
        contact: None,
        estimated_close: Some((now() + Duration::days(close_in_days)).date_naive()),
        estimated_value: None,
        status,
    }
}

fn kinds(cards: &[Card]) -> Vec<(CardKind, String)> {
    cards.iter().map(|c| (c.kind, c.title.clone())).collect()
}

#[test]
fn each_kind_of_card_appears_sorted_by_priority() {
    let me = UserId::new();
    let nancy = person("Nancy", 400);
    let soren = person("Søren", 400);
    let zoe = person("Zoë", 400);
    let d = |days: i64| now() + Duration::days(days);
    let facts = Facts {
        time_zone: Some(jiff::tz::TimeZone::UTC),
        user: Some(me),
        people: vec![nancy.clone(), soren.clone(), zoe.clone()],
        activities: vec![
            // Nancy wrote 3 days ago; no answer.
            email(
                me,
                nancy.record,
                user_ref(me),
                "q1@x.example",
                None,
                d(-3),
                Direction::Incoming,
            ),
            // Zoë wrote and was answered.
            email(
                me,
                zoe.record,
                user_ref(me),
                "z1@x.example",
                None,
                d(-5),
                Direction::Incoming,
            ),
            email(
                me,
                user_ref(me),
                zoe.record,
                "z2@x.example",
                Some("z1@x.example"),
                d(-4),
                Direction::Outgoing,
            ),
            // An appointment with Zoë in 2 days, another in 10 hours.
            appointment(me, zoe.record, d(2)),
            appointment(me, zoe.record, now() + Duration::hours(10)),
            // Søren's last activity was 90 days ago.
            appointment(me, soren.record, d(-90)),
        ],
        opportunities: vec![
            opportunity("Big deal", 5, DealStatus::Open),
            opportunity("Won deal", 1, DealStatus::Won),
            opportunity("Far deal", 60, DealStatus::Open),
            opportunity("Closing deal", 2, DealStatus::Open),
        ],
    };
    let cards = cards(&facts, now(), &AssistantSettings::default());
    assert_eq!(
        kinds(&cards),
        vec![
            (CardKind::Upcoming, "Quarterly review".into()),
            (CardKind::ClosingSoon, "Closing deal".into()),
            (CardKind::WaitingReply, "Mail <q1@x.example>".into()),
            (CardKind::Upcoming, "Quarterly review".into()),
            (CardKind::ClosingSoon, "Big deal".into()),
            (CardKind::Quiet, "Søren".into()),
        ],
        "{cards:#?}"
    );
    assert_eq!(cards[0].priority, Priority::Urgent);
    assert!(cards[0].why.contains("in 10 hours"), "{}", cards[0].why);
    assert!(
        cards[2].why.contains("Nancy wrote 3 days ago"),
        "{}",
        cards[2].why
    );
    assert_eq!(
        cards[2].target,
        CardTarget::Message("<q1@x.example>".into())
    );
    assert!(cards[5].why.contains("90 days"), "{}", cards[5].why);
    assert_eq!(cards[5].target, CardTarget::Record(soren.record.id));
}

#[test]
fn no_facts_no_cards_and_other_peoples_mail_is_not_waiting() {
    let me = UserId::new();
    let colleague = UserId::new();
    assert!(cards(&Facts::default(), now(), &AssistantSettings::default()).is_empty());
    let nancy = person("Nancy", 1);
    let d = |days: i64| now() + Duration::days(days);
    let facts = Facts {
        time_zone: Some(jiff::tz::TimeZone::UTC),
        user: Some(me),
        people: vec![nancy.clone()],
        activities: vec![
            // To a colleague, not to me.
            email(
                colleague,
                nancy.record,
                user_ref(colleague),
                "c1@x.example",
                None,
                d(-1),
                Direction::Incoming,
            ),
            // Too old to be waiting.
            email(
                me,
                nancy.record,
                user_ref(me),
                "old@x.example",
                None,
                d(-REPLY_LOOKBACK_DAYS - 1),
                Direction::Incoming,
            ),
            // Followed by a newer one from Nancy in the same thread: only the newer waits.
            email(
                me,
                nancy.record,
                user_ref(me),
                "n1@x.example",
                None,
                d(-2),
                Direction::Incoming,
            ),
            email(
                me,
                nancy.record,
                user_ref(me),
                "n2@x.example",
                Some("n1@x.example"),
                d(-1),
                Direction::Incoming,
            ),
        ],
        opportunities: vec![],
    };
    let cards = cards(&facts, now(), &AssistantSettings::default());
    assert_eq!(
        kinds(&cards),
        vec![(CardKind::WaitingReply, "Mail <n2@x.example>".into())],
        "Nancy is new, so not quiet: {cards:#?}"
    );
}

#[test]
fn tasks_calls_and_settings() {
    let me = UserId::new();
    let nancy = person("Nancy", 10);
    let task = |due: i64, state: TaskState| {
        activity(
            me,
            &format!("Task {due} {state:?}"),
            vec![party(PartyRole::Participant, nancy.record)],
            ActivityDetails::Task(TaskActivity {
                due: Some(now() + Duration::days(due)),
                state,
                description: String::new(),
            }),
        )
    };
    let call = activity(
        me,
        "Call",
        vec![party(PartyRole::Participant, nancy.record)],
        ActivityDetails::PhoneCall(PhoneCallActivity {
            at: now() + Duration::days(3),
            direction: Direction::Outgoing,
            phone_number: String::new(),
            duration_minutes: 0,
            description: String::new(),
        }),
    );
    let facts = Facts {
        time_zone: Some(jiff::tz::TimeZone::UTC),
        user: Some(me),
        people: vec![nancy.clone()],
        activities: vec![
            task(-2, TaskState::Open),
            task(-2, TaskState::Completed),
            task(5, TaskState::Open),
            task(20, TaskState::Open),
            call,
        ],
        opportunities: vec![],
    };
    let got = cards(&facts, now(), &AssistantSettings::default());
    assert_eq!(
        kinds(&got),
        vec![
            (CardKind::Upcoming, "Task -2 Open".into()),
            (CardKind::Upcoming, "Call".into()),
            (CardKind::Upcoming, "Task 5 Open".into()),
        ]
    );
    assert!(got[0].why.contains("overdue"), "{}", got[0].why);
    // A shorter horizon and a shorter quiet period.
    let s = AssistantSettings {
        upcoming_within_days: 1,
        quiet_after_days: 5,
        closing_within_days: 14,
    };
    let got = cards(&facts, now(), &s);
    assert_eq!(
        kinds(&got),
        vec![(CardKind::Upcoming, "Task -2 Open".into())],
        "the task completed 2 days ago is recent activity with Nancy: {got:#?}"
    );
    // Without it, an open overdue task is no activity: Nancy is quiet since added.
    let mut facts = facts;
    facts.activities.remove(1);
    let got = cards(&facts, now(), &s);
    assert_eq!(
        kinds(&got),
        vec![
            (CardKind::Upcoming, "Task -2 Open".into()),
            (CardKind::Quiet, "Nancy".into()),
        ],
        "{got:#?}"
    );
    assert!(
        got[1].why.contains("since they were added 10 days ago"),
        "{}",
        got[1].why
    );
}

#[test]
fn relative_times_read_naturally() {
    let n = now();
    assert_eq!(relative(n + Duration::minutes(30), n), "in 30 minutes");
    assert_eq!(relative(n + Duration::hours(1), n), "in 1 hour");
    assert_eq!(relative(n - Duration::days(3), n), "3 days ago");
    assert_eq!(relative(n + Duration::hours(40), n), "in 2 days");
}

#[test]
fn a_series_shows_its_next_occurrence_in_the_users_zone_and_a_cancelled_one_none() {
    let me = UserId::new();
    let nancy = person("Nancy", 100);
    let d = |days: i64| now() + Duration::days(days);
    let occurrence = |days: i64| crate::store::Occurrence {
        start: d(days),
        end: d(days) + Duration::hours(1),
        original: d(days),
    };
    let mut series = appointment(me, nancy.record, d(-7));
    if let ActivityDetails::Appointment(ap) = &mut series.details {
        // Last week's meeting is past, this week's excluded: the next is in 7 days.
        ap.calendar.occurrences = vec![occurrence(-7), occurrence(7)];
    }
    let mut cancelled = appointment(me, nancy.record, d(2));
    cancelled.subject = "Cancelled review".into();
    if let ActivityDetails::Appointment(ap) = &mut cancelled.details {
        ap.calendar.cancelled = true;
    }
    let facts = Facts {
        time_zone: crate::track::tz::named("Europe/Paris"),
        user: Some(me),
        people: vec![nancy],
        activities: vec![series, cancelled],
        ..Facts::default()
    };
    let cards = cards(&facts, now(), &AssistantSettings::default());
    let upcoming: Vec<&Card> = cards
        .iter()
        .filter(|c| c.kind == CardKind::Upcoming)
        .collect();
    assert_eq!(upcoming.len(), 1, "{cards:?}");
    assert_eq!(upcoming[0].when, d(7));
    let local = d(7).with_timezone(&chrono::FixedOffset::east_opt(3600).unwrap());
    assert!(
        upcoming[0]
            .why
            .contains(&local.format("%a %Y-%m-%d %H:%M CET").to_string()),
        "{}",
        upcoming[0].why
    );
}
