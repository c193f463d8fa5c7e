//! "+" beside an unknown sender or recipient (SPEC section 6, the guide's "Add as
//! contact" / "Add as lead"): create the record in the CRM and track the email
//! regarding it, in one action.
//!
//! Everything is checked before the record is written (the message is the user's, the
//! address is one of its people and unknown, the fields are sane); when tracking is
//! then refused (a delegate may not set regarding to a contact created in the same
//! action) the new record is removed again, so nothing is left half-done.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::Form;
use maud::html;
use serde::Deserialize;
use serde_json::json;

use super::crm::with_store;
use super::errors::{ApiFailure, Failure, PageFailure};
use super::guard::CSRF_FIELD;
use super::handlers::SignedIn;
use super::message_view;
use super::pages::{self, Nav};
use super::track_actions::{self, back_to, check_message, perform, record_json, TrackAction};
use super::AppState;
use crate::store::{EmailAddress, Kind, Record, RecordRef};

/// Longest name, company or topic accepted.
const MAX_FIELD: usize = 200;

/// What the "+" creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewPerson {
    Contact,
    Lead,
}

impl NewPerson {
    fn parse(raw: Option<&str>) -> Result<NewPerson, Failure> {
        match raw.map(str::trim).unwrap_or("contact") {
            "contact" | "" => Ok(NewPerson::Contact),
            "lead" => Ok(NewPerson::Lead),
            other => Err(Failure::new(
                StatusCode::BAD_REQUEST,
                format!("Add as {other:?}? Choose contact or lead."),
            )),
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            NewPerson::Contact => "contact",
            NewPerson::Lead => "lead",
        }
    }
    /// A delegate may not set regarding to a contact created in the same action
    /// (SPEC section 8): refused before anything is written.
    /// Adding a contact or lead creates a record (`create_records`).
    fn check_allowed(self, user: &SignedIn) -> Result<(), Failure> {
        user.require(crate::store::Privilege::CreateRecords)?;
        if self == NewPerson::Contact && user.is_delegate() {
            return Err(track_actions::track_failure(
                crate::track::TrackError::DelegateNewContact,
            ));
        }
        Ok(())
    }
    fn label(self) -> &'static str {
        match self {
            NewPerson::Contact => "Add as contact",
            NewPerson::Lead => "Add as lead",
        }
    }
}

/// The fields of the form (and the API's body).
/// (Unknown fields are ignored: the form also carries the CSRF token.)
#[derive(Debug, Deserialize)]
pub struct PersonFields {
    message_id: String,
    address: String,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
    #[serde(default)]
    company: String,
    #[serde(default)]
    topic: String,
}

fn field(name: &str, value: &str) -> Result<String, Failure> {
    let v = value.trim();
    if v.chars().count() > MAX_FIELD || v.chars().any(|c| c.is_control()) {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            format!("The {name} must be one line of at most {MAX_FIELD} characters."),
        ));
    }
    Ok(v.to_owned())
}

/// Check everything, create the record, track the email regarding it.
async fn add_person(
    app: &AppState,
    user: &SignedIn,
    f: &PersonFields,
) -> Result<track_actions::Outcome, Failure> {
    let kind = NewPerson::parse(f.kind.as_deref())?;
    kind.check_allowed(user)?;
    let first = field("first name", &f.first_name)?;
    let last = field("last name", &f.last_name)?;
    let company = field("company", &f.company)?;
    let topic = field("topic", &f.topic)?;
    if last.is_empty() && first.is_empty() {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "Enter a first or last name.",
        ));
    }
    let address = EmailAddress::parse(f.address.trim()).map_err(|_| {
        Failure::new(
            StatusCode::BAD_REQUEST,
            "That is not an e-mail address of this message.",
        )
    })?;
    let mid = check_message(app, user, &f.message_id).await?;
    let (_, crm) = message_view::lookup_id(app, user, mid.as_str()).await?;
    let person = crm
        .people
        .iter()
        .find(|p| p.address.eq_ignore_ascii_case(address.as_str()))
        .ok_or_else(|| {
            Failure::new(
                StatusCode::BAD_REQUEST,
                format!("{address} is not a sender or recipient of this message."),
            )
        })?;
    if !person.records.is_empty() {
        return Err(Failure::new(
            StatusCode::CONFLICT,
            format!("{address} is already in the CRM."),
        ));
    }
    let now = chrono::Utc::now();
    let mut value = json!({
        "created": now, "modified": now,
        "first_name": first, "last_name": last,
        "company": company, "emails": [address.as_str()],
    });
    let record_kind = match kind {
        NewPerson::Contact => {
            value["id"] = json!(crate::store::ContactId::new());
            Kind::Contact
        }
        NewPerson::Lead => {
            value["id"] = json!(crate::store::LeadId::new());
            value["topic"] = json!(topic);
            Kind::Lead
        }
    };
    let record = match kind {
        NewPerson::Contact => serde_json::from_value(value).map(Record::Contact),
        NewPerson::Lead => serde_json::from_value(value).map(Record::Lead),
    }
    .map_err(|e| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}")))?;
    let acting = user.acting.id;
    let created = with_store(app, move |s| {
        crate::store::rights::require(s, acting, crate::store::Privilege::CreateRecords)?;
        s.put_record(record)
    })
    .await?;
    let new_ref = RecordRef {
        kind: record_kind,
        id: created.id(),
    };
    match perform(app, user, mid.as_str(), TrackAction::RegardingNew(new_ref)).await {
        Ok(o) => Ok(o),
        Err(refused) => {
            // Nothing links to the new record yet: take it back.
            let id = new_ref.id;
            if let Err(e) = with_store(app, move |s| s.delete_record(id)).await {
                tracing::warn!(error = %e.message, "could not remove a record after a refusal");
            }
            Err(refused)
        }
    }
}

#[derive(Deserialize)]
pub struct NewParams {
    id: Option<String>,
    address: Option<String>,
    kind: Option<String>,
}

/// `GET /people/new?id=MID&address=…&kind=contact|lead`: the form behind "+".
pub async fn new_form(
    State(app): State<AppState>,
    Query(p): Query<NewParams>,
    user: SignedIn,
) -> Result<Response, PageFailure> {
    let kind = NewPerson::parse(p.kind.as_deref()).map_err(PageFailure)?;
    kind.check_allowed(&user).map_err(PageFailure)?;
    let mid = check_message(&app, &user, p.id.as_deref().unwrap_or(""))
        .await
        .map_err(PageFailure)?;
    let address = p.address.unwrap_or_default();
    let (_, crm) = message_view::lookup_id(&app, &user, mid.as_str())
        .await
        .map_err(PageFailure)?;
    let person = crm
        .people
        .iter()
        .find(|x| x.address.eq_ignore_ascii_case(address.trim()))
        .ok_or_else(|| {
            PageFailure(Failure::new(
                StatusCode::BAD_REQUEST,
                "That is not a sender or recipient of this message.",
            ))
        })?;
    let (first, last) = match person.name.trim().rsplit_once(' ') {
        Some((f, l)) => (f.to_owned(), l.to_owned()),
        None => (String::new(), person.name.trim().to_owned()),
    };
    let domain = address.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
    let csrf = &user.session.csrf_token;
    let body = html! {
        h1 { (kind.label()) }
        section.card {
            form method="post" action="/people/new" {
                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                input type="hidden" name="message_id" value=(mid);
                input type="hidden" name="kind" value=(kind.as_str());
                label for="address" { "E-mail" }
                input #address type="email" name="address" value=(person.address) readonly;
                label for="first_name" { "First name" }
                input #first_name name="first_name" value=(first) maxlength=(MAX_FIELD);
                label for="last_name" { "Last name" }
                input #last_name name="last_name" value=(last) maxlength=(MAX_FIELD) required;
                label for="company" { "Company" }
                input #company name="company" value=(domain) maxlength=(MAX_FIELD);
                @if kind == NewPerson::Lead {
                    label for="topic" { "Topic" }
                    input #topic name="topic" maxlength=(MAX_FIELD);
                }
                p.hint { "The email is tracked regarding the new " (kind.as_str()) "." }
                button.primary type="submit" { "Save" }
            }
        }
    };
    Ok(pages::layout(&user.chrome(), Some(Nav::Current), kind.label(), body).into_response())
}

/// `POST /people/new`.
pub async fn new_submit(
    State(app): State<AppState>,
    user: SignedIn,
    Form(f): Form<PersonFields>,
) -> Result<Response, PageFailure> {
    let o = add_person(&app, &user, &f).await.map_err(PageFailure)?;
    Ok(back_to(&app, &user, &f.message_id, &o.message))
}

/// `POST /api/people`: `{message_id, address, kind, first_name, last_name, company, topic}`.
pub async fn api_new(
    State(app): State<AppState>,
    user: SignedIn,
    body: Result<Json<PersonFields>, JsonRejection>,
) -> Result<Response, ApiFailure> {
    let Json(f) = body.map_err(super::api::bad_json)?;
    let o = add_person(&app, &user, &f).await.map_err(ApiFailure)?;
    Ok(Json(json!({ "message": o.message, "tracking": record_json(&o.record) })).into_response())
}
