//! The relationship assistant's rules (SPEC section 6, the guide's "Gain insights into
//! your activities"): from plain data about a few records — their activities, their
//! accounts' opportunities — and a given "now", the action cards, sorted by priority.
//! No store and no clock here: `insights` fetches the facts and renders the cards.
//!
//! Four kinds of card: upcoming activities (appointments, scheduled phone calls, open
//! tasks due soon or overdue), emails waiting for the user's reply (the latest
//! incoming email from one of the people, with no later email from the user in the
//! same conversation), opportunities near their estimated close date, and contacts
//! or leads gone quiet (no activity for a number of days).

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

use crate::store::{
    thread_conversation, Activity, ActivityDetails, DealStatus, Direction, EmailActivity, Kind,
    Opportunity, PartyRole, RecordRef, TaskState, Timing, UserId,
};
use crate::track::tz;
use jiff::tz::TimeZone;

/// How far ahead and back the assistant looks (`[pane]` settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssistantSettings {
    pub upcoming_within_days: u32,
    pub quiet_after_days: u32,
    pub closing_within_days: u32,
}

impl Default for AssistantSettings {
    fn default() -> Self {
        AssistantSettings {
            upcoming_within_days: 7,
            quiet_after_days: 30,
            closing_within_days: 14,
        }
    }
}

/// An incoming email older than this is no longer "waiting for a reply".
pub const REPLY_LOOKBACK_DAYS: i64 = 60;
/// Anything due within this long is urgent.
const URGENT_WITHIN: Duration = Duration::hours(24);
/// An opportunity closing within this many days (or overdue) is urgent.
const URGENT_CLOSE_DAYS: i64 = 3;

/// Most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Urgent,
    High,
    Normal,
    Low,
}

impl Priority {
    pub fn label(self) -> &'static str {
        match self {
            Priority::Urgent => "Urgent",
            Priority::High => "High",
            Priority::Normal => "Normal",
            Priority::Low => "Low",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CardKind {
    Upcoming,
    WaitingReply,
    ClosingSoon,
    Quiet,
}

/// What a card's link opens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum CardTarget {
    /// A record page.
    Record(Uuid),
    /// The pane's page of a message, by Message-ID.
    Message(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Card {
    /// Names the card across page loads (what snoozing remembers): its kind and the
    /// activity, message or record it is about.
    pub key: String,
    pub kind: CardKind,
    pub priority: Priority,
    /// What the card is about: an activity's subject, an opportunity's or a person's name.
    pub title: String,
    /// Why the card is shown, in a sentence.
    pub why: String,
    pub target: CardTarget,
    /// The time the card is about (sorts cards of one priority, soonest/oldest first).
    pub when: DateTime<Utc>,
}

/// A contact or lead to watch for going quiet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub record: RecordRef,
    pub name: String,
    /// When the record was created (quiet since then when it has no activity).
    pub created: DateTime<Utc>,
}

/// What the cards are computed from.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Whose assistant this is.
    pub user: Option<UserId>,
    /// The people in focus (contacts and leads).
    pub people: Vec<Person>,
    /// Activities involving the records in focus (any order; duplicates are fine).
    pub activities: Vec<Activity>,
    /// Opportunities of the accounts in focus.
    pub opportunities: Vec<Opportunity>,
    /// The zone times are shown in (the user's setting); none: the machine's.
    pub time_zone: Option<TimeZone>,
}

/// The cards for `facts` at `now`, most important first.
pub fn cards(facts: &Facts, now: DateTime<Utc>, settings: &AssistantSettings) -> Vec<Card> {
    let mut seen = HashSet::new();
    let activities: Vec<&Activity> = facts
        .activities
        .iter()
        .filter(|a| seen.insert(a.id))
        .collect();
    let mut out = Vec::new();
    upcoming(
        &activities,
        now,
        settings,
        facts.time_zone.as_ref(),
        &mut out,
    );
    waiting_replies(facts, &activities, now, &mut out);
    closing(facts, now, settings, &mut out);
    quiet(facts, &activities, now, settings, &mut out);
    out.sort_by(|a, b| (a.priority, a.when, &a.title).cmp(&(b.priority, b.when, &b.title)));
    out
}

fn subject(a: &Activity) -> String {
    if a.subject.trim().is_empty() {
        "(no subject)".into()
    } else {
        a.subject.clone()
    }
}

/// "in 3 hours", "in 2 days", "3 days ago": a rounded distance from now.
pub fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let d = t - now;
    let (future, d) = if d >= Duration::zero() {
        (true, d)
    } else {
        (false, -d)
    };
    let amount = if d < Duration::hours(1) {
        let m = d.num_minutes().max(1);
        format!("{m} minute{}", if m == 1 { "" } else { "s" })
    } else if d < Duration::hours(36) {
        let h = ((d.num_minutes() + 30) / 60).max(1);
        format!("{h} hour{}", if h == 1 { "" } else { "s" })
    } else {
        let n = (d.num_hours() + 12) / 24;
        format!("{n} day{}", if n == 1 { "" } else { "s" })
    };
    if future {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

fn activity_target(a: &Activity) -> CardTarget {
    match (a.message_id(), a.regarding) {
        (Some(m), _) if a.kind() == Kind::Email => CardTarget::Message(m.to_string()),
        (_, Some(r)) => CardTarget::Record(r.id),
        _ => a
            .parties
            .iter()
            .flat_map(|p| &p.records)
            .find(|r| r.kind != Kind::User)
            .map(|r| CardTarget::Record(r.id))
            .unwrap_or(CardTarget::Record(a.owner.uuid())),
    }
}

fn upcoming(
    activities: &[&Activity],
    now: DateTime<Utc>,
    settings: &AssistantSettings,
    zone: Option<&TimeZone>,
    out: &mut Vec<Card>,
) {
    let horizon = now + Duration::days(settings.upcoming_within_days.into());
    let zone = &zone.cloned().unwrap_or_else(|| tz::user_zone(None));
    for a in activities {
        let (when, why) = match &a.details {
            ActivityDetails::Appointment(ap) if !ap.calendar.cancelled => {
                // The next meeting of a series (its exceptions applied), or the one.
                let timing = ap.calendar.timing;
                let next = ap
                    .meetings()
                    .into_iter()
                    .map(|(start, _)| (tz::instant(start, timing, zone), start))
                    .find(|(at, _)| *at >= now && *at <= horizon);
                let Some((at, start)) = next else { continue };
                (
                    at,
                    format!(
                        "Appointment {} ({})",
                        relative(at, now),
                        tz::display(start, timing, zone)
                    ),
                )
            }
            ActivityDetails::PhoneCall(p) if p.at >= now && p.at <= horizon => (
                p.at,
                format!(
                    "Phone call scheduled {} ({})",
                    relative(p.at, now),
                    tz::display(p.at, Timing::Zoned, zone)
                ),
            ),
            ActivityDetails::Task(t) if t.state == TaskState::Open => match t.due {
                Some(due) if due < now => {
                    (due, format!("Task overdue: was due {}", relative(due, now)))
                }
                Some(due) if due <= horizon => (due, format!("Task due {}", relative(due, now))),
                _ => continue,
            },
            _ => continue,
        };
        let priority = if when - now <= URGENT_WITHIN {
            Priority::Urgent
        } else {
            Priority::Normal
        };
        out.push(Card {
            key: format!("upcoming:{}", a.id),
            kind: CardKind::Upcoming,
            priority,
            title: subject(a),
            why,
            target: activity_target(a),
            when,
        });
    }
}

fn party_has(a: &Activity, roles: &[PartyRole], id: Uuid) -> bool {
    a.parties
        .iter()
        .any(|p| roles.contains(&p.role) && p.records.iter().any(|r| r.id == id))
}

/// The email was sent by the user.
fn from_user(a: &Activity, e: &EmailActivity, user: UserId) -> bool {
    party_has(a, &[PartyRole::Sender], user.uuid())
        || (e.direction == Direction::Outgoing && a.owner == user)
}

/// The email reached the user.
fn to_user(a: &Activity, e: &EmailActivity, user: UserId) -> bool {
    party_has(
        a,
        &[PartyRole::To, PartyRole::Cc, PartyRole::Bcc],
        user.uuid(),
    ) || (e.direction == Direction::Incoming && a.owner == user)
}

/// The thread's first message (References' first, else In-Reply-To, else itself).
fn root(e: &EmailActivity) -> &str {
    e.references
        .first()
        .or(e.in_reply_to.as_ref())
        .unwrap_or(&e.message_id)
        .as_str()
}

/// Are `a` and `b` in the same conversation?
fn same_conversation(a: &EmailActivity, b: &EmailActivity) -> bool {
    let refers = |x: &EmailActivity, y: &EmailActivity| {
        x.in_reply_to.as_ref() == Some(&y.message_id) || x.references.contains(&y.message_id)
    };
    let thread = match (&a.thread_index, &b.thread_index) {
        (Some(x), Some(y)) => thread_conversation(x) == thread_conversation(y),
        _ => false,
    };
    root(a) == root(b) || refers(a, b) || refers(b, a) || thread
}

fn waiting_replies(
    facts: &Facts,
    activities: &[&Activity],
    now: DateTime<Utc>,
    out: &mut Vec<Card>,
) {
    let Some(user) = facts.user else { return };
    let people: HashMap<Uuid, &Person> = facts.people.iter().map(|p| (p.record.id, p)).collect();
    let emails: Vec<(&Activity, &EmailActivity)> = activities
        .iter()
        .filter_map(|a| match &a.details {
            ActivityDetails::Email(e) => Some((*a, e)),
            _ => None,
        })
        .collect();
    let oldest = now - Duration::days(REPLY_LOOKBACK_DAYS);
    for (a, e) in &emails {
        if e.date < oldest || e.date > now || from_user(a, e, user) || !to_user(a, e, user) {
            continue;
        }
        let Some(sender) = a
            .parties
            .iter()
            .filter(|p| p.role == PartyRole::Sender)
            .flat_map(|p| &p.records)
            .find_map(|r| people.get(&r.id))
        else {
            continue;
        };
        // Answered by the user later, or followed by a newer one from the same person.
        let superseded = emails.iter().any(|(b, f)| {
            f.date > e.date
                && same_conversation(e, f)
                && (from_user(b, f, user) || party_has(b, &[PartyRole::Sender], sender.record.id))
        });
        if superseded {
            continue;
        }
        out.push(Card {
            key: format!("reply:{}", e.message_id),
            kind: CardKind::WaitingReply,
            priority: Priority::High,
            title: subject(a),
            why: format!(
                "{} wrote {}; no reply from you yet",
                sender.name,
                relative(e.date, now)
            ),
            target: CardTarget::Message(e.message_id.to_string()),
            when: e.date,
        });
    }
}

fn start_of(d: NaiveDate) -> DateTime<Utc> {
    d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
}

fn closing(facts: &Facts, now: DateTime<Utc>, settings: &AssistantSettings, out: &mut Vec<Card>) {
    let today = now.date_naive();
    let within = i64::from(settings.closing_within_days);
    let mut seen = HashSet::new();
    for o in &facts.opportunities {
        let Some(close) = o.estimated_close else {
            continue;
        };
        if o.status != DealStatus::Open || !seen.insert(o.id) {
            continue;
        }
        let days = (close - today).num_days();
        if days > within || days < -within {
            continue;
        }
        let why = match days {
            0 => "Estimated to close today".to_owned(),
            1 => "Estimated to close tomorrow".to_owned(),
            d if d > 1 => format!("Estimated to close in {d} days ({close})"),
            -1 => "Estimated close date passed yesterday; still open".to_owned(),
            d => format!("Estimated close date passed {} days ago; still open", -d),
        };
        out.push(Card {
            key: format!("closing:{}", o.id),
            kind: CardKind::ClosingSoon,
            priority: if days <= URGENT_CLOSE_DAYS {
                Priority::Urgent
            } else {
                Priority::Normal
            },
            title: o.name.clone(),
            why,
            target: CardTarget::Record(o.id.uuid()),
            when: start_of(close),
        });
    }
}

/// Something that took place with the people (not a plan, not an open task).
fn happened(a: &Activity, now: DateTime<Utc>) -> bool {
    match &a.details {
        ActivityDetails::Task(t) => t.state == TaskState::Completed && a.when() <= now,
        _ => a.when() <= now,
    }
}

fn involves(a: &Activity, id: Uuid) -> bool {
    a.regarding.is_some_and(|r| r.id == id)
        || a.parties
            .iter()
            .any(|p| p.records.iter().any(|r| r.id == id))
}

fn quiet(
    facts: &Facts,
    activities: &[&Activity],
    now: DateTime<Utc>,
    settings: &AssistantSettings,
    out: &mut Vec<Card>,
) {
    let limit = Duration::days(settings.quiet_after_days.into());
    let mut seen = HashSet::new();
    for p in &facts.people {
        if !seen.insert(p.record.id) {
            continue;
        }
        let last = activities
            .iter()
            .filter(|a| happened(a, now) && involves(a, p.record.id))
            .map(|a| a.when())
            .max();
        let since = last.unwrap_or(p.created);
        if now - since < limit {
            continue;
        }
        let days = (now - since).num_days();
        let why = match last {
            Some(_) => format!(
                "No activity with {} for {days} days: time to reach out?",
                p.name
            ),
            None => format!(
                "No activity recorded with {} since they were added {days} days ago",
                p.name
            ),
        };
        out.push(Card {
            key: format!("quiet:{}", p.record.id),
            kind: CardKind::Quiet,
            priority: Priority::Low,
            title: p.name.clone(),
            why,
            target: CardTarget::Record(p.record.id),
            when: since,
        });
    }
}

#[cfg(test)]
#[path = "assistant_tests.rs"]
mod tests;
