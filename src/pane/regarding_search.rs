//! The tracking panel's "Set Regarding" / "Change Regarding" search page (SPEC section
//! 6): find a record of a type that can be regarding, then set it with one click (a
//! form post to `/regarding`, handled in `track_actions`).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;
use uuid::Uuid;

use super::crm::{kind_label, with_store};
use super::errors::{Failure, PageFailure};
use super::guard::CSRF_FIELD;
use super::handlers::{valid_message_id, SignedIn};
use super::pages::{self, Nav};
use super::track_actions::REGARDING_KINDS;
use super::AppState;
use crate::store::{Kind, SearchQuery};

#[derive(Deserialize)]
pub struct PickParams {
    id: Option<String>,
    q: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// `GET /regarding?id=MID&q=…&type=…`: find the record to set as regarding.
pub async fn pick_regarding(
    State(app): State<AppState>,
    Query(p): Query<PickParams>,
    user: SignedIn,
) -> Result<Response, PageFailure> {
    let mid = valid_message_id(p.id.as_deref().unwrap_or("")).map_err(PageFailure)?;
    let kind = match p
        .kind
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != "all")
    {
        None => None,
        Some(s) => Some(
            REGARDING_KINDS
                .into_iter()
                .find(|k| k.as_str() == s)
                .ok_or_else(|| {
                    PageFailure(Failure::new(
                        StatusCode::BAD_REQUEST,
                        format!("An email cannot be regarding {s:?}: choose a type from the list."),
                    ))
                })?,
        ),
    };
    let q = p.q.unwrap_or_default();
    let text: String = q.trim().chars().take(200).collect();
    let hits: Vec<(Kind, Uuid, String)> = if text.is_empty() {
        Vec::new()
    } else {
        let query = SearchQuery {
            text,
            kinds: kind
                .map(|k| vec![k])
                .unwrap_or_else(|| REGARDING_KINDS.to_vec()),
            limit: 25,
        };
        with_store(&app, move |s| s.search(&query))
            .await
            .map_err(PageFailure)?
            .into_iter()
            .map(|h| (h.kind, h.id, h.title))
            .collect()
    };
    let csrf = user.session.csrf_token.clone();
    let body = html! {
        h1 { "Set Regarding" }
        p.meta { "Message " span.mono { (mid) } }
        section.card {
            form.search method="get" action="/regarding" role="search" {
                input type="hidden" name="id" value=(mid);
                label for="q" { "Search for a record" }
                div.row {
                    input #q type="search" name="q" value=(q) placeholder="Name, company, e-mail…";
                    label.sr for="type" { "Record type" }
                    select #type name="type" {
                        option value="all" selected[kind.is_none()] { "All types" }
                        @for k in REGARDING_KINDS {
                            option value=(k.as_str()) selected[kind == Some(k)] { (kind_label(k)) }
                        }
                    }
                    button type="submit" { "Search" }
                }
            }
        }
        @if !q.trim().is_empty() {
            section.card aria-live="polite" {
                h2 { (hits.len()) @if hits.len() == 1 { " result" } @else { " results" } }
                @if hits.is_empty() {
                    p.empty { "No record matches. Try fewer or shorter words, or another type." }
                } @else {
                    ul.list.pick {
                        @for (k, id, title) in &hits {
                            li {
                                form.inline method="post" action="/regarding" {
                                    input type="hidden" name=(CSRF_FIELD) value=(csrf);
                                    input type="hidden" name="message_id" value=(mid);
                                    input type="hidden" name="regarding" value=(format!("{}:{}", k.as_str(), id));
                                    button type="submit" { "Set regarding" }
                                }
                                " " strong { (title) } " " span.meta { (kind_label(*k)) }
                            }
                        }
                    }
                }
            }
        }
        p { a href=(format!("/message?{}", form_urlencoded::Serializer::new(String::new()).append_pair("id", &mid).finish())) { "Back to the message" } }
    };
    Ok(pages::layout(&user.chrome(), Some(Nav::Current), "Set Regarding", body).into_response())
}
