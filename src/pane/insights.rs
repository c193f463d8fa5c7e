//! The relationship assistant in the pane: gathers the facts for the current
//! message's people and records (or, on Home, for the records of the user's own
//! latest activities) with a bounded number of store reads — a few records, each
//! one's latest activities, their accounts' opportunities — runs the rules of
//! [`assistant`](super::assistant), leaves out the cards the user snoozed, and
//! renders the rest, each with Snooze buttons (a form post; `POST /assistant/snooze`).
//! Also the JSON calls `GET /api/assistant` and `POST /api/assistant/snooze`.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashSet;
use uuid::Uuid;

use super::assistant::{self, AssistantSettings, Card, CardKind, CardTarget, Facts, Person};
use super::crm::with_store;
use super::errors::{ApiFailure, Failure, PageFailure};
use super::guard::CSRF_FIELD;
use super::handlers::{safe_next, valid_message_id, SignedIn};
use super::message_view::{self, MessageCrm, TrackView};
use super::AppState;
use crate::config::Config;
use crate::store::{self, CrmStore, Kind, Record, RecordRef, UserId};

/// Records whose timelines are read for one set of cards.
const MAX_FOCUS: usize = 12;
/// Activities read per record (newest first; future ones come first).
const PER_RECORD: usize = 30;
/// Accounts whose opportunities are read.
const MAX_ACCOUNTS: usize = 6;
const OPPORTUNITIES_PER_ACCOUNT: usize = 25;
/// The user's own latest activities that seed Home's cards.
const HOME_ACTIVITIES: usize = 60;
/// Cards shown at most.
pub const MAX_CARDS: usize = 10;
/// The longest a card may be snoozed, in days.
const MAX_SNOOZE_DAYS: i64 = 30;

pub fn settings(cfg: &Config) -> AssistantSettings {
    AssistantSettings {
        upcoming_within_days: cfg.pane.upcoming_within_days,
        quiet_after_days: cfg.pane.quiet_after_days,
        closing_within_days: cfg.pane.closing_within_days,
    }
}

/// The facts about `seeds` (people and records; users are skipped) for `user`,
/// with `own` activities of the user's added (Home).
pub fn gather(
    s: &dyn CrmStore,
    user: UserId,
    seeds: &[RecordRef],
    own: Vec<crate::store::Activity>,
) -> store::Result<Facts> {
    let zone = match s.record(user.uuid())? {
        Some(Record::User(u)) => u.options.time_zone,
        _ => None,
    };
    let mut facts = Facts {
        user: Some(user),
        activities: own,
        time_zone: Some(crate::track::tz::user_zone(zone.as_deref())),
        ..Facts::default()
    };
    let mut seen = HashSet::new();
    let mut focus: Vec<Uuid> = Vec::new();
    let mut accounts: Vec<Uuid> = Vec::new();
    for r in seeds {
        if focus.len() >= MAX_FOCUS {
            break;
        }
        if r.kind == Kind::User || r.kind.is_activity() || !seen.insert(r.id) {
            continue;
        }
        let Some(rec) = s.record(r.id)? else { continue };
        let person = |rec: &Record| Person {
            record: rec.as_ref(),
            name: rec.title(),
            created: rec.stamps().created,
        };
        match &rec {
            Record::Contact(c) => {
                facts.people.push(person(&rec));
                accounts.extend(c.account.map(|a| a.uuid()));
            }
            Record::Lead(_) => facts.people.push(person(&rec)),
            Record::Account(a) => accounts.push(a.id.uuid()),
            Record::Opportunity(o) => facts.opportunities.push(o.clone()),
            _ => {}
        }
        focus.push(r.id);
    }
    let mut seen_acc = HashSet::new();
    for a in accounts
        .into_iter()
        .filter(|a| seen_acc.insert(*a))
        .take(MAX_ACCOUNTS)
    {
        for r in s.linked_records(a, Some(Kind::Opportunity), OPPORTUNITIES_PER_ACCOUNT)? {
            if let Record::Opportunity(o) = r {
                facts.opportunities.push(o);
            }
        }
    }
    for id in focus {
        let listed = s.activities_of(id, PER_RECORD)?;
        facts
            .activities
            .extend(store::rights::listable(s, user, listed)?);
    }
    Ok(facts)
}

/// The records a message's cards are about: its people's records and its regarding.
fn message_seeds(crm: &MessageCrm) -> Vec<RecordRef> {
    let mut seeds: Vec<RecordRef> = crm
        .people
        .iter()
        .flat_map(|p| p.records.iter().map(|(r, _)| *r))
        .collect();
    if let TrackView::TrackedRegarding(r, _) = &crm.track {
        seeds.push(*r);
    }
    seeds
}

/// Cards for the people and records of a message.
pub async fn for_message(
    app: &AppState,
    user: UserId,
    crm: &MessageCrm,
) -> Result<Vec<Card>, Failure> {
    let seeds = message_seeds(crm);
    let settings = settings(&app.config);
    with_store(app, move |s| {
        let facts = gather(s, user, &seeds, Vec::new())?;
        top(
            s,
            user,
            assistant::cards(&facts, chrono::Utc::now(), &settings),
        )
    })
    .await
}

/// Home's cards: for the records of the user's own latest activities.
pub async fn for_user(app: &AppState, user: UserId) -> Result<Vec<Card>, Failure> {
    let settings = settings(&app.config);
    with_store(app, move |s| {
        let own = store::rights::listable(s, user, s.activities_of(user.uuid(), HOME_ACTIVITIES)?)?;
        let mut seeds = Vec::new();
        for a in &own {
            seeds.extend(a.regarding);
            seeds.extend(a.parties.iter().flat_map(|p| p.records.iter().copied()));
        }
        let facts = gather(s, user, &seeds, own)?;
        top(
            s,
            user,
            assistant::cards(&facts, chrono::Utc::now(), &settings),
        )
    })
    .await
}

/// The most important cards the user has not snoozed.
fn top(s: &dyn CrmStore, user: UserId, mut cards: Vec<Card>) -> store::Result<Vec<Card>> {
    let asleep: HashSet<String> = s.snoozed(user)?.into_iter().map(|z| z.card).collect();
    cards.retain(|c| !asleep.contains(&c.key));
    cards.truncate(MAX_CARDS);
    Ok(cards)
}

pub fn href(target: &CardTarget) -> String {
    match target {
        CardTarget::Record(id) => format!("/record/{id}"),
        CardTarget::Message(mid) => format!(
            "/message?{}",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("id", mid)
                .finish()
        ),
    }
}

fn kind_name(k: CardKind) -> &'static str {
    match k {
        CardKind::Upcoming => "upcoming",
        CardKind::WaitingReply => "waiting-reply",
        CardKind::ClosingSoon => "closing-soon",
        CardKind::Quiet => "quiet",
    }
}

fn kind_label(k: CardKind) -> &'static str {
    match k {
        CardKind::Upcoming => "Upcoming",
        CardKind::WaitingReply => "Waiting for your reply",
        CardKind::ClosingSoon => "Closing soon",
        CardKind::Quiet => "Gone quiet",
    }
}

/// The Snooze buttons of a card.
fn snooze_buttons(c: &Card, csrf: &str) -> Markup {
    html! {
        form.snooze method="post" action="/assistant/snooze" {
            input type="hidden" name=(CSRF_FIELD) value=(csrf);
            input type="hidden" name="card" value=(c.key);
            button type="submit" name="days" value="1" { "Snooze 1 day" }
            " · "
            button type="submit" name="days" value="7" { "1 week" }
        }
    }
}

/// The assistant's section: one card per item, most important first.
pub fn section(cards: &[Card], empty: &str, csrf: &str) -> Markup {
    html! {
        section.card.assistant aria-labelledby="h-assistant" {
            h2 #h-assistant { "Relationship assistant" }
            @if cards.is_empty() {
                p.empty { (empty) }
            } @else {
                ol.acards {
                    @for c in cards {
                        li.acard data-kind=(kind_name(c.kind)) data-priority=(c.priority.label().to_lowercase()) {
                            p.ahead {
                                span.badge.(c.priority.label().to_lowercase()) { (c.priority.label()) }
                                " " span.meta { (kind_label(c.kind)) }
                            }
                            a.atitle href=(href(&c.target)) { (c.title) }
                            p.why { (c.why) }
                            (snooze_buttons(c, csrf))
                        }
                    }
                }
            }
        }
    }
}

fn card_json(c: &Card) -> serde_json::Value {
    let mut v = serde_json::to_value(c).unwrap_or_default();
    v["href"] = json!(href(&c.target));
    v
}

#[derive(Deserialize)]
pub struct AssistantQuery {
    /// A Message-ID: the cards for that message's people; none: the user's own.
    id: Option<String>,
}

/// `GET /api/assistant[?id=MID]`: the cards as JSON, most important first.
pub async fn api_assistant(
    State(app): State<AppState>,
    Query(q): Query<AssistantQuery>,
    user: SignedIn,
) -> Result<Response, ApiFailure> {
    let cards = match q.id.as_deref() {
        Some(raw) => {
            let id = valid_message_id(raw).map_err(ApiFailure)?;
            let (_, crm) = message_view::lookup_id(&app, &user, &id)
                .await
                .map_err(ApiFailure)?;
            crm.assistant
        }
        None => for_user(&app, user.crm_user.id).await.map_err(ApiFailure)?,
    };
    let cards: Vec<_> = cards.iter().map(card_json).collect();
    Ok(Json(json!({ "cards": cards })).into_response())
}

fn snooze_days(days: i64) -> Result<chrono::Duration, Failure> {
    if (1..=MAX_SNOOZE_DAYS).contains(&days) {
        Ok(chrono::Duration::days(days))
    } else {
        Err(Failure::new(
            StatusCode::BAD_REQUEST,
            format!("A card can be snoozed for 1 to {MAX_SNOOZE_DAYS} days."),
        ))
    }
}

async fn snooze(app: &AppState, user: UserId, card: String, days: i64) -> Result<(), Failure> {
    let until = chrono::Utc::now() + snooze_days(days)?;
    let known = card.split_once(':').is_some_and(|(kind, rest)| {
        ["upcoming", "reply", "closing", "quiet"].contains(&kind) && !rest.is_empty()
    });
    if !known {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "This is not a card of the relationship assistant.",
        ));
    }
    with_store(app, move |s| s.snooze(user, &card, until)).await
}

#[derive(Deserialize)]
pub struct SnoozeForm {
    card: String,
    days: i64,
}

/// `POST /assistant/snooze` (card, days): put a card aside, then back to the page
/// the form was on (its same-origin Referer; Home otherwise).
pub async fn snooze_form(
    State(app): State<AppState>,
    user: SignedIn,
    headers: HeaderMap,
    Form(f): Form<SnoozeForm>,
) -> Result<Response, PageFailure> {
    snooze(&app, user.crm_user.id, f.card, f.days)
        .await
        .map_err(PageFailure)?;
    let back = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.strip_prefix("https://"))
        .and_then(|r| r.find('/').map(|i| r[i..].to_owned()));
    Ok(Redirect::to(&safe_next(back.as_deref())).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnoozeBody {
    card: String,
    days: i64,
}

/// `POST /api/assistant/snooze` `{ "card": KEY, "days": N }`.
pub async fn api_snooze(
    State(app): State<AppState>,
    user: SignedIn,
    body: Result<Json<SnoozeBody>, JsonRejection>,
) -> Result<Response, ApiFailure> {
    let Json(b) = body.map_err(super::api::bad_json)?;
    let card = b.card.clone();
    snooze(&app, user.crm_user.id, b.card, b.days)
        .await
        .map_err(ApiFailure)?;
    Ok(Json(json!({ "snoozed": card, "days": b.days })).into_response())
}
