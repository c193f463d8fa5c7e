//! Favourites and recently viewed records (the guide's Menu → Recent: "Favorites and
//! recently used records"), per signed-in user: the star on a record page (a form
//! post with the CSRF token, no JavaScript needed), the two lists shown on Home and
//! on Search, and their JSON calls `POST /api/favourites`, `GET /api/lists`.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Redirect, Response};
use axum::Form;
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::crm::{kind_label, with_store};
use super::errors::{ApiFailure, Failure, PageFailure};
use super::guard::CSRF_FIELD;
use super::handlers::SignedIn;
use super::AppState;
use crate::store::{self, CrmStore, RecordRef, UserId, UserList};

/// One record of a list, with its title now.
#[derive(Debug, Clone)]
pub struct ListItem {
    pub record: RecordRef,
    pub title: String,
    pub at: DateTime<Utc>,
}

/// A user's favourites and recently viewed records, newest first.
#[derive(Debug, Clone, Default)]
pub struct Lists {
    pub favourites: Vec<ListItem>,
    pub recent: Vec<ListItem>,
}

/// Read both lists with their titles (records deleted since are left out).
pub fn read_lists(s: &dyn CrmStore, user: UserId) -> store::Result<Lists> {
    let items = |list: UserList| -> store::Result<Vec<ListItem>> {
        let mut out = Vec::new();
        for e in s.user_list(user, list)? {
            if let Some(r) = s.record(e.record.id)? {
                out.push(ListItem {
                    record: e.record,
                    title: r.title(),
                    at: e.at,
                });
            }
        }
        Ok(out)
    };
    Ok(Lists {
        favourites: items(UserList::Favourites)?,
        recent: items(UserList::Recent)?,
    })
}

pub async fn lists(app: &AppState, user: UserId) -> Result<Lists, Failure> {
    with_store(app, move |s| read_lists(s, user)).await
}

fn title_or_untitled(t: &str) -> &str {
    if t.trim().is_empty() {
        "(untitled)"
    } else {
        t
    }
}

fn list(items: &[ListItem], empty: &str) -> Markup {
    html! {
        @if items.is_empty() {
            p.empty { (empty) }
        } @else {
            ul.list {
                @for i in items {
                    li {
                        a href=(format!("/record/{}", i.record.id)) { (title_or_untitled(&i.title)) }
                        span.meta { (kind_label(i.record.kind)) }
                    }
                }
            }
        }
    }
}

/// The Favourites and Recent records sections.
pub fn lists_cards(l: &Lists) -> Markup {
    html! {
        section.card.favourites aria-labelledby="h-favourites" {
            h2 #h-favourites { "Favourites" }
            (list(&l.favourites, "No favourites yet: open a record and choose ☆ Add to favourites."))
        }
        section.card.recent-records aria-labelledby="h-recent-records" {
            h2 #h-recent-records { "Recent records" }
            (list(&l.recent, "No record viewed yet."))
        }
    }
}

/// The star on a record page: a form that adds or removes the favourite.
pub fn star_form(id: Uuid, favourite: bool, csrf: &str) -> Markup {
    html! {
        form.inline.star method="post" action="/favourite" {
            input type="hidden" name=(CSRF_FIELD) value=(csrf);
            input type="hidden" name="record" value=(id.to_string());
            input type="hidden" name="on" value=(if favourite { "0" } else { "1" });
            @if favourite {
                button type="submit" aria-pressed="true" { "★ Remove from favourites" }
            } @else {
                button type="submit" aria-pressed="false" { "☆ Add to favourites" }
            }
        }
    }
}

fn parse_on(raw: &str) -> Result<bool, Failure> {
    match raw.trim() {
        "1" | "true" | "on" => Ok(true),
        "0" | "false" | "off" => Ok(false),
        _ => Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "Say on=1 to add a favourite or on=0 to remove it.",
        )),
    }
}

/// Star or unstar record `raw` for the user; returns the record's ref.
async fn set(app: &AppState, user: UserId, raw: &str, on: bool) -> Result<RecordRef, Failure> {
    let gone = || {
        Failure::new(
            StatusCode::NOT_FOUND,
            "There is no record with this id: it may have been deleted.",
        )
    };
    let id = Uuid::parse_str(raw.trim()).map_err(|_| gone())?;
    let found = with_store(app, move |s| {
        let Some(rec) = s.record(id)? else {
            return Ok(None);
        };
        s.set_favourite(user, rec.as_ref(), on)?;
        Ok(Some(rec.as_ref()))
    })
    .await?;
    found.ok_or_else(gone)
}

#[derive(Deserialize)]
pub struct FavouriteForm {
    record: String,
    on: String,
}

/// `POST /favourite` (record, on=1|0): star or unstar, then back to the record.
pub async fn favourite_form(
    State(app): State<AppState>,
    user: SignedIn,
    Form(f): Form<FavouriteForm>,
) -> Result<Response, PageFailure> {
    let on = parse_on(&f.on).map_err(PageFailure)?;
    let r = set(&app, user.crm_user.id, &f.record, on)
        .await
        .map_err(PageFailure)?;
    Ok(Redirect::to(&format!("/record/{}", r.id)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FavouriteBody {
    record: String,
    on: bool,
}

fn items_json(items: &[ListItem]) -> serde_json::Value {
    items
        .iter()
        .map(|i| {
            json!({
                "type": i.record.kind,
                "id": i.record.id,
                "title": i.title,
                "at": i.at,
                "href": format!("/record/{}", i.record.id),
            })
        })
        .collect()
}

fn lists_json(l: &Lists) -> serde_json::Value {
    json!({ "favourites": items_json(&l.favourites), "recent": items_json(&l.recent) })
}

/// `POST /api/favourites` `{ "record": UUID, "on": bool }`: answers with both lists.
pub async fn api_favourite(
    State(app): State<AppState>,
    user: SignedIn,
    body: Result<Json<FavouriteBody>, JsonRejection>,
) -> Result<Response, ApiFailure> {
    let Json(b) = body.map_err(super::api::bad_json)?;
    set(&app, user.crm_user.id, &b.record, b.on)
        .await
        .map_err(ApiFailure)?;
    let l = lists(&app, user.crm_user.id).await.map_err(ApiFailure)?;
    Ok(Json(lists_json(&l)).into_response())
}

/// `GET /api/lists`: the user's favourites and recently viewed records.
pub async fn api_lists(
    State(app): State<AppState>,
    user: SignedIn,
) -> Result<Response, ApiFailure> {
    let l = lists(&app, user.crm_user.id).await.map_err(ApiFailure)?;
    Ok(Json(lists_json(&l)).into_response())
}
