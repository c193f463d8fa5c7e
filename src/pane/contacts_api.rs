//! The Contacts page as JSON under `/api/contacts`: the list (`GET`, the same
//! parameters as the page), the actions (`POST …/track`, `…/untrack`, `…/link`,
//! `…/choose`) and the addresses of a selection (`GET …/mailto`). Errors are
//! `{ "error", "status" }` with the status a page would get.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Query, RawQuery, State};
use axum::response::{IntoResponse, Json, Response};
use serde::Deserialize;
use serde_json::json;

use super::contact_actions::{
    bad, entry_ids, mailto_all, people, report_sentence, run_book, uuid_of, Fields,
};
use super::contact_pickers::{account_target, parse_choice};
use super::contacts::{actor_and_owner, cursor_failure, ListParams, ListState, Tab};
use super::contacts_list::{load_listing, Listing};
use super::crm::with_store;
use super::errors::ApiFailure;
use super::handlers::SignedIn;
use super::AppState;
use crate::store::book_actions::{self, BookReport, MAX_SELECTION};
use crate::store::EntryId;

/// `GET /api/contacts?tab=…`: the same list as JSON.
pub async fn api_list(
    State(app): State<AppState>,
    Query(p): Query<ListParams>,
    user: SignedIn,
) -> Result<Response, ApiFailure> {
    let st = ListState::parse(&p).map_err(ApiFailure)?;
    let (_, owner) = actor_and_owner(&user);
    let tab = st.tab.unwrap_or(Tab::Mail);
    let st2 = st.clone();
    let listing = with_store(&app, move |s| load_listing(s, owner, tab, &st2))
        .await
        .map_err(|f| ApiFailure(cursor_failure(f)))?;
    let v = match listing {
        Listing::Mail { counts, page } => json!({
            "tab": "mail",
            "counts": counts,
            "items": page.items.iter().map(|r| json!({
                "entry": r.entry,
                "status": r.entry.view().as_str(),
                "contact": r.contact.as_ref().map(|(id, _)| id),
                "account": r.account.as_ref().map(|(id, name)| json!({"id": id, "name": name})),
            })).collect::<Vec<_>>(),
            "prev": page.prev,
            "next": page.next,
        }),
        Listing::Crm {
            total,
            rows,
            prev,
            next,
            searched,
        } => json!({
            "tab": "crm",
            "total": total,
            "searched": searched,
            "items": rows,
            "prev": prev,
            "next": next,
        }),
    };
    Ok(Json(v).into_response())
}

/// Body of `/api/contacts/track|untrack|link|choose`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiBody {
    #[serde(default)]
    ids: Vec<String>,
    /// `/choose`: the entry.
    #[serde(default)]
    id: Option<String>,
    /// `/choose`: a CRM contact id, or `"new"`.
    #[serde(default)]
    contact: Option<String>,
    /// `/link`: an account id …
    #[serde(default)]
    account: Option<String>,
    /// … or the name of a new account.
    #[serde(default)]
    new_account: Option<String>,
}

fn report_json(r: &BookReport) -> serde_json::Value {
    json!({ "message": report_sentence(r), "report": r })
}

async fn api_run(
    app: AppState,
    user: SignedIn,
    body: Result<Json<ApiBody>, JsonRejection>,
    action: &'static str,
) -> Result<Response, ApiFailure> {
    let Json(b) = body.map_err(super::api::bad_json)?;
    if b.ids.len() > MAX_SELECTION {
        return Err(ApiFailure(bad(format!(
            "Select at most {MAX_SELECTION} contacts at a time."
        ))));
    }
    let ids = entry_ids(&b.ids).map_err(ApiFailure)?;
    let (actor, owner) = actor_and_owner(&user);
    let r = match action {
        "track" => run_book(&app, move |s| book_actions::track(s, actor, owner, &ids)).await,
        "untrack" => run_book(&app, move |s| book_actions::untrack(s, actor, owner, &ids)).await,
        "link" => {
            let target = account_target(
                b.account.as_deref().unwrap_or(""),
                b.new_account.as_deref().unwrap_or(""),
            )
            .map_err(ApiFailure)?;
            run_book(&app, move |s| {
                book_actions::link_account(s, actor, owner, &ids, target)
            })
            .await
        }
        _ => {
            let id = EntryId::from_uuid(
                uuid_of(b.id.as_deref().unwrap_or(""), "contact").map_err(ApiFailure)?,
            );
            let choice = parse_choice(b.contact.as_deref().unwrap_or("")).map_err(ApiFailure)?;
            run_book(&app, move |s| {
                book_actions::choose(s, actor, owner, id, choice)
            })
            .await
        }
    }
    .map_err(ApiFailure)?;
    Ok(Json(report_json(&r)).into_response())
}

pub async fn api_track(
    State(app): State<AppState>,
    user: SignedIn,
    body: Result<Json<ApiBody>, JsonRejection>,
) -> Result<Response, ApiFailure> {
    api_run(app, user, body, "track").await
}
pub async fn api_untrack(
    State(app): State<AppState>,
    user: SignedIn,
    body: Result<Json<ApiBody>, JsonRejection>,
) -> Result<Response, ApiFailure> {
    api_run(app, user, body, "untrack").await
}
pub async fn api_link(
    State(app): State<AppState>,
    user: SignedIn,
    body: Result<Json<ApiBody>, JsonRejection>,
) -> Result<Response, ApiFailure> {
    api_run(app, user, body, "link").await
}
pub async fn api_choose(
    State(app): State<AppState>,
    user: SignedIn,
    body: Result<Json<ApiBody>, JsonRejection>,
) -> Result<Response, ApiFailure> {
    api_run(app, user, body, "choose").await
}

/// `GET /api/contacts/mailto?sel=…&crm=…`: the addresses and a `mailto:` URL.
pub async fn api_mailto(
    State(app): State<AppState>,
    RawQuery(q): RawQuery,
    user: SignedIn,
) -> Result<Response, ApiFailure> {
    let f = Fields::parse(q.unwrap_or_default().as_bytes()).map_err(ApiFailure)?;
    let ps = people(&app, &user, &f.sel, &f.crm)
        .await
        .map_err(ApiFailure)?;
    let list: Vec<_> = ps
        .iter()
        .map(|(n, a)| json!({ "name": n, "address": a }))
        .collect();
    Ok(Json(json!({ "mailto": mailto_all(&ps), "people": list })).into_response())
}
