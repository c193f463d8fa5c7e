//! "Add activity" (phone call, task, appointment regarding a record) and "Quick
//! create" (account, contact, lead, opportunity, case): the guide's "+" menu of the
//! pane. Forms work without JavaScript; `/api/activities` and `/api/records` are the
//! JSON twins. Every field is bounded and checked before anything is written.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Redirect, Response};
use axum::Form;
use chrono::{DateTime, NaiveDateTime, Utc};
use maud::html;
use serde::Deserialize;
use serde_json::json;

use super::crm::{kind_label, with_store};
use super::errors::{ApiFailure, Failure, PageFailure};
use super::guard::CSRF_FIELD;
use super::handlers::SignedIn;
use super::pages::{self, Nav};
use super::track_actions::parse_regarding;
use super::AppState;
use crate::store::{
    self, Activity, ActivityDetails, ActivityId, AppointmentActivity, Direction, EmailAddress,
    Kind, PhoneCallActivity, Privilege, Record, RecordRef, SearchQuery, Stamps, TaskActivity,
    TaskState,
};

const MAX_LINE: usize = 200;
const MAX_TEXT: usize = 4000;

fn bad(msg: impl Into<String>) -> Failure {
    Failure::new(StatusCode::BAD_REQUEST, msg)
}

fn line(name: &str, v: &str) -> Result<String, Failure> {
    let v = v.trim();
    if v.chars().count() > MAX_LINE || v.chars().any(|c| c.is_control()) {
        return Err(bad(format!(
            "The {name} must be one line of at most {MAX_LINE} characters."
        )));
    }
    Ok(v.to_owned())
}

fn text(name: &str, v: &str) -> Result<String, Failure> {
    if v.chars().count() > MAX_TEXT {
        return Err(bad(format!(
            "The {name} is longer than {MAX_TEXT} characters."
        )));
    }
    Ok(v.trim().to_owned())
}

/// `2026-11-24T14:30` (an HTML datetime-local field, read as UTC) or RFC 3339.
fn when(name: &str, v: &str) -> Result<Option<DateTime<Utc>>, Failure> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M")
        .map(|t| Some(t.and_utc()))
        .map_err(|_| {
            bad(format!(
                "The {name} is a date and time like 2026-11-24T14:30."
            ))
        })
}

/// The activities the pane can add.
const ACTIVITY_KINDS: [(&str, &str); 3] = [
    ("phone_call", "Phone call"),
    ("task", "Task"),
    ("appointment", "Appointment"),
];

/// The records Quick create makes.
const CREATE_KINDS: [(&str, &str); 5] = [
    ("account", "Account"),
    ("contact", "Contact"),
    ("lead", "Lead"),
    ("opportunity", "Opportunity"),
    ("case", "Case"),
];

#[derive(Debug, Default, Deserialize)]
pub struct ActivityFields {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    regarding: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    when: String,
    #[serde(default)]
    end: String,
    #[serde(default)]
    phone_number: String,
    #[serde(default)]
    location: String,
    #[serde(default)]
    description: String,
}

async fn add_activity(
    app: &AppState,
    user: &SignedIn,
    f: &ActivityFields,
) -> Result<Activity, Failure> {
    let regarding = parse_regarding(Some(&f.regarding))?
        .ok_or_else(|| bad("Choose the record the activity is regarding."))?;
    let subject = line("subject", &f.subject)?;
    if subject.is_empty() {
        return Err(bad("Enter a subject."));
    }
    let description = text("description", &f.description)?;
    let at = when("time", &f.when)?;
    let details = match f.kind.as_str() {
        "phone_call" => ActivityDetails::PhoneCall(PhoneCallActivity {
            at: at.unwrap_or_else(Utc::now),
            direction: Direction::Outgoing,
            phone_number: line("phone number", &f.phone_number)?,
            duration_minutes: 0,
            description,
        }),
        "task" => ActivityDetails::Task(TaskActivity {
            due: at,
            state: TaskState::Open,
            description,
        }),
        "appointment" => {
            let start = at.ok_or_else(|| bad("An appointment needs a start time."))?;
            let end = when("end", &f.end)?.unwrap_or(start + chrono::Duration::minutes(30));
            if end < start {
                return Err(bad("The appointment ends before it starts."));
            }
            ActivityDetails::Appointment(AppointmentActivity {
                start,
                end,
                location: line("location", &f.location)?,
                uid: None,
                recurrence: None,
                raw_invitation: None,
                message_id: None,
                calendar: Default::default(),
            })
        }
        other => {
            return Err(bad(format!(
                "Add a {other:?}? Choose a phone call, task or appointment."
            )))
        }
    };
    let activity = Activity {
        id: ActivityId::new(),
        stamps: Stamps::default(),
        owner: user.crm_user.id,
        subject,
        regarding: Some(regarding),
        parties: Vec::new(),
        details,
    };
    with_store(app, move |s| {
        if s.record(regarding.id)?.map(|r| r.kind()) != Some(regarding.kind) {
            return Ok(Err(Failure::new(
                StatusCode::NOT_FOUND,
                format!(
                    "The regarding {} does not exist (deleted?).",
                    regarding.kind
                ),
            )));
        }
        s.put_activity(activity).map(Ok)
    })
    .await?
}

#[derive(Deserialize)]
pub struct NewParams {
    kind: Option<String>,
    regarding: Option<String>,
}

fn kind_select(name: &str, kinds: &[(&str, &str)], chosen: &str) -> maud::Markup {
    html! {
        label for=(name) { "Type" }
        select #(name) name=(name) {
            @for (k, label) in kinds { option value=(k) selected[*k == chosen] { (label) } }
        }
    }
}

/// `GET /activities/new?kind=…&regarding=TYPE:UUID`.
pub async fn activity_form(
    State(app): State<AppState>,
    Query(p): Query<NewParams>,
    user: SignedIn,
) -> Result<Response, PageFailure> {
    let regarding = parse_regarding(p.regarding.as_deref())
        .map_err(PageFailure)?
        .ok_or_else(|| PageFailure(bad("Add activity needs the record it is regarding.")))?;
    let title = with_store(&app, move |s| s.record(regarding.id))
        .await
        .map_err(PageFailure)?
        .map(|r| r.title())
        .ok_or_else(|| PageFailure(Failure::not_found()))?;
    let kind = p.kind.unwrap_or_else(|| "phone_call".into());
    let body = html! {
        h1 { "Add activity" }
        p { "Regarding " strong { (title) } span.meta { " (" (kind_label(regarding.kind)) ")" } }
        section.card {
            form method="post" action="/activities/new" {
                input type="hidden" name=(CSRF_FIELD) value=(user.session.csrf_token);
                input type="hidden" name="regarding" value=(format!("{}:{}", regarding.kind, regarding.id));
                (kind_select("kind", &ACTIVITY_KINDS, &kind))
                label for="subject" { "Subject" }
                input #subject name="subject" required maxlength=(MAX_LINE);
                label for="when" { "When (due, start; UTC)" }
                input #when type="datetime-local" name="when";
                label for="end" { "End (appointments)" }
                input #end type="datetime-local" name="end";
                label for="phone_number" { "Phone number (phone calls)" }
                input #phone_number name="phone_number" maxlength=(MAX_LINE);
                label for="location" { "Location (appointments)" }
                input #location name="location" maxlength=(MAX_LINE);
                label for="description" { "Description" }
                textarea #description name="description" maxlength=(MAX_TEXT) {}
                button.primary type="submit" { "Save" }
            }
        }
    };
    Ok(pages::layout(&user.chrome(), None, "Add activity", body).into_response())
}

pub async fn activity_submit(
    State(app): State<AppState>,
    user: SignedIn,
    Form(f): Form<ActivityFields>,
) -> Result<Response, PageFailure> {
    let a = add_activity(&app, &user, &f).await.map_err(PageFailure)?;
    let target = a.regarding.map(|r| r.id.to_string()).unwrap_or_default();
    Ok(Redirect::to(&format!("/record/{target}")).into_response())
}

pub async fn api_activity(
    State(app): State<AppState>,
    user: SignedIn,
    body: Result<Json<ActivityFields>, JsonRejection>,
) -> Result<Response, ApiFailure> {
    let Json(f) = body.map_err(super::api::bad_json)?;
    let a = add_activity(&app, &user, &f).await.map_err(ApiFailure)?;
    Ok(Json(json!({ "activity": a.id.to_string(), "kind": a.kind().as_str() })).into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct RecordFields {
    #[serde(default)]
    kind: String,
    /// Account, opportunity: the name; case: the title.
    #[serde(default)]
    name: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
    #[serde(default)]
    company: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    topic: String,
    /// Opportunity: its account; case: its customer (account or contact).
    #[serde(default)]
    link: String,
}

/// An opportunity's account or a case's customer: `TYPE:UUID`, or a name the
/// record is found by (accounts; for a case, contacts too) when exactly one matches.
async fn customer(app: &AppState, kind: &str, raw: &str) -> Result<Option<RecordRef>, Failure> {
    let raw = raw.trim();
    if raw.is_empty() || crate::track::parse_record_ref(raw).is_ok() {
        return parse_regarding(Some(raw));
    }
    if raw.chars().count() > MAX_LINE {
        return Err(bad(format!(
            "A customer's name has at most {MAX_LINE} characters."
        )));
    }
    let kinds = match kind {
        "case" => vec![Kind::Account, Kind::Contact],
        _ => vec![Kind::Account],
    };
    let query = SearchQuery {
        text: raw.to_owned(),
        kinds,
        limit: 6,
    };
    let hits = with_store(app, move |s| s.search(&query)).await?;
    let exact: Vec<_> = hits
        .iter()
        .filter(|h| h.title.eq_ignore_ascii_case(raw))
        .collect();
    let chosen: Vec<_> = if exact.len() == 1 {
        exact
    } else {
        hits.iter().collect()
    };
    match chosen.as_slice() {
        [one] => Ok(Some(RecordRef {
            kind: one.kind,
            id: one.id,
        })),
        [] => Err(bad(format!(
            "No {} is called {raw:?}. Create it first, or check the spelling.",
            if kind == "case" {
                "account or contact"
            } else {
                "account"
            }
        ))),
        many => Err(bad(format!(
            "Several match {raw:?}: {}. Type the whole name.",
            many.iter()
                .take(5)
                .map(|h| h.title.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

async fn quick_create(
    app: &AppState,
    user: &SignedIn,
    f: &RecordFields,
) -> Result<Record, Failure> {
    let name = line("name", &f.name)?;
    let first = line("first name", &f.first_name)?;
    let last = line("last name", &f.last_name)?;
    let company = line("company", &f.company)?;
    let topic = line("topic", &f.topic)?;
    let emails: Vec<String> = match f.email.trim() {
        "" => Vec::new(),
        e => vec![EmailAddress::parse(e)
            .map_err(|_| bad(format!("{e:?} is not an e-mail address.")))?
            .to_string()],
    };
    let link = customer(app, &f.kind, &f.link).await?;
    let now = Utc::now();
    let mut v = json!({ "created": now, "modified": now });
    let need = |ok: bool, what: &str| {
        if ok {
            Ok(())
        } else {
            Err(bad(what.to_owned()))
        }
    };
    let record = match f.kind.as_str() {
        "account" => {
            need(!name.is_empty(), "Enter the account's name.")?;
            v["id"] = json!(crate::store::AccountId::new());
            v["name"] = json!(name);
            v["emails"] = json!(emails);
            serde_json::from_value(v).map(Record::Account)
        }
        "contact" | "lead" => {
            need(
                !(first.is_empty() && last.is_empty()),
                "Enter a first or last name.",
            )?;
            v["first_name"] = json!(first);
            v["last_name"] = json!(last);
            v["company"] = json!(company);
            v["emails"] = json!(emails);
            if f.kind == "contact" {
                v["id"] = json!(crate::store::ContactId::new());
                serde_json::from_value(v).map(Record::Contact)
            } else {
                v["id"] = json!(crate::store::LeadId::new());
                v["topic"] = json!(topic);
                serde_json::from_value(v).map(Record::Lead)
            }
        }
        "opportunity" => {
            need(!name.is_empty(), "Enter the opportunity's topic.")?;
            v["id"] = json!(crate::store::OpportunityId::new());
            v["name"] = json!(name);
            if let Some(l) = link {
                need(
                    l.kind == Kind::Account,
                    "An opportunity's customer is an account.",
                )?;
                v["account"] = json!(l.id);
            }
            serde_json::from_value(v).map(Record::Opportunity)
        }
        "case" => {
            need(!name.is_empty(), "Enter the case's title.")?;
            let customer = link
                .filter(|l| matches!(l.kind, Kind::Account | Kind::Contact))
                .ok_or_else(|| bad("A case needs its customer: an account or a contact."))?;
            v["id"] = json!(crate::store::CaseId::new());
            v["title"] = json!(name);
            v["customer"] = json!(customer);
            serde_json::from_value(v).map(Record::Case)
        }
        other => {
            return Err(bad(format!(
                "Quick create a {other:?}? Choose an account, contact, lead, opportunity or case."
            )))
        }
    }
    .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let acting = user.acting.id;
    with_store(app, move |s| {
        store::rights::require(s, acting, Privilege::CreateRecords)?;
        if let Some(l) = link {
            if s.record(l.id)?.map(|r| r.kind()) != Some(l.kind) {
                return Ok(Err(Failure::new(
                    StatusCode::NOT_FOUND,
                    format!("The {} to link does not exist (deleted?).", l.kind),
                )));
            }
        }
        s.put_record(record).map(Ok)
    })
    .await?
}

#[derive(Deserialize)]
pub struct CreateParams {
    kind: Option<String>,
    link: Option<String>,
}

/// `GET /create?kind=…&link=TYPE:UUID`: Quick create.
pub async fn create_form(
    Query(p): Query<CreateParams>,
    user: SignedIn,
) -> Result<Response, PageFailure> {
    user.require(Privilege::CreateRecords)
        .map_err(PageFailure)?;
    let kind = p.kind.unwrap_or_else(|| "contact".into());
    let link = p.link.unwrap_or_default();
    let body = html! {
        h1 { "Quick create" }
        section.card {
            form method="post" action="/create" {
                input type="hidden" name=(CSRF_FIELD) value=(user.session.csrf_token);
                (kind_select("kind", &CREATE_KINDS, &kind))
                label for="name" { "Name, topic or title (account, opportunity, case)" }
                input #name name="name" maxlength=(MAX_LINE);
                label for="first_name" { "First name" }
                input #first_name name="first_name" maxlength=(MAX_LINE);
                label for="last_name" { "Last name" }
                input #last_name name="last_name" maxlength=(MAX_LINE);
                label for="email" { "E-mail" }
                input #email type="email" name="email" maxlength=(MAX_LINE);
                label for="company" { "Company" }
                input #company name="company" maxlength=(MAX_LINE);
                label for="topic" { "Topic (lead)" }
                input #topic name="topic" maxlength=(MAX_LINE);
                label for="link" { "Customer (opportunity: an account; case: an account or a contact), by name" }
                input #link name="link" value=(link) maxlength=(MAX_LINE);
                button.primary type="submit" { "Save" }
            }
        }
    };
    Ok(pages::layout(&user.chrome(), Some(Nav::Create), "Quick create", body).into_response())
}

/// A contact created here is new to this session: a delegate may not then set it
/// as regarding (SPEC section 8).
fn remember_contact(app: &AppState, user: &SignedIn, r: &Record) {
    if let Record::Contact(c) = r {
        app.sessions
            .remember_created_contact(&user.session.id, c.id.uuid());
    }
}

pub async fn create_submit(
    State(app): State<AppState>,
    user: SignedIn,
    Form(f): Form<RecordFields>,
) -> Result<Response, PageFailure> {
    let r = quick_create(&app, &user, &f).await.map_err(PageFailure)?;
    remember_contact(&app, &user, &r);
    Ok(Redirect::to(&format!("/record/{}", r.id())).into_response())
}

pub async fn api_create(
    State(app): State<AppState>,
    user: SignedIn,
    body: Result<Json<RecordFields>, JsonRejection>,
) -> Result<Response, ApiFailure> {
    let Json(f) = body.map_err(super::api::bad_json)?;
    let r = quick_create(&app, &user, &f).await.map_err(ApiFailure)?;
    remember_contact(&app, &user, &r);
    Ok(
        Json(json!({ "record": format!("{}:{}", r.kind(), r.id()), "title": r.title() }))
            .into_response(),
    )
}
