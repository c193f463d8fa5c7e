//! The pane's read-only CRM pages on the store: the home dashboard (counts, newest
//! records, favourites and recent records, assistant cards), search of all records
//! with a type filter (the guide's Set Regarding list), one record with its links
//! and activities, and documents (templates, sales literature, knowledge articles).
//! The Contacts page is `contacts`. Store calls block, so they run on the blocking
//! pool.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;
use uuid::Uuid;

use super::errors::{Failure, PageFailure};
use super::handlers::SignedIn;
use super::pages::{self, Nav};
use super::AppState;
use crate::store::{self, CrmStore, Kind, Record, SearchQuery};

/// The kinds a user searches and links to, in the guide's order.
pub const SEARCH_KINDS: [(Kind, &str); 6] = [
    (Kind::Account, "Accounts"),
    (Kind::Contact, "Contacts"),
    (Kind::Lead, "Leads"),
    (Kind::Opportunity, "Opportunities"),
    (Kind::Case, "Cases"),
    (Kind::Invoice, "Invoices"),
];
/// Results shown per search.
const SEARCH_LIMIT: usize = 50;
/// Recent records on the dashboard.
const RECENT_RECORDS: usize = 8;
/// Activities shown on a record.
const RECORD_ACTIVITIES: usize = 20;

/// Run a blocking store call off the async threads.
pub async fn with_store<T: Send + 'static>(
    app: &AppState,
    f: impl FnOnce(&dyn CrmStore) -> store::Result<T> + Send + 'static,
) -> Result<T, Failure> {
    let store = app.store.clone();
    match tokio::task::spawn_blocking(move || f(store.as_ref())).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(store_failure(e)),
        Err(_) => Err(Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The CRM store call failed.",
        )),
    }
}

/// A store error as the user sees it: a missing privilege is a refusal (403,
/// saying what to ask for), anything else a failure of the store.
pub fn store_failure(e: store::StoreError) -> Failure {
    if let store::StoreError::NotPermitted { user, privilege } = &e {
        return Failure::new(
            StatusCode::FORBIDDEN,
            format!(
                "{user} does not have the \"{}\" privilege. Ask your administrator to grant \
                 it (crmproxy user grant {user} {privilege}).",
                privilege_label(privilege)
            ),
        );
    }
    tracing::error!(error = %e, "store error in the pane");
    Failure::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("The CRM store failed: {e}"),
    )
}

/// A privilege in the words the pane uses.
fn privilege_label(name: &str) -> &str {
    match name {
        "use_app" => "Use the app",
        "create_records" => "Create records",
        "delete_records" => "Delete records",
        "admin" => "Administer",
        other => other,
    }
}

pub fn kind_label(kind: Kind) -> &'static str {
    match kind {
        Kind::Account => "Account",
        Kind::Contact => "Contact",
        Kind::Lead => "Lead",
        Kind::Opportunity => "Opportunity",
        Kind::Case => "Case",
        Kind::Invoice => "Invoice",
        Kind::User => "User",
        Kind::EmailTemplate => "Email template",
        Kind::SalesLiterature => "Sales literature",
        Kind::KnowledgeArticle => "Knowledge article",
        Kind::Email => "Email",
        Kind::Appointment => "Appointment",
        Kind::PhoneCall => "Phone call",
        Kind::Task => "Task",
    }
}

fn record_href(id: Uuid) -> String {
    format!("/record/{id}")
}

fn title_or_untitled(t: &str) -> &str {
    if t.trim().is_empty() {
        "(untitled)"
    } else {
        t
    }
}

/// What the dashboard shows: counts per searchable kind, the newest records, the
/// user's favourites and recent records, and the relationship assistant's cards.
/// Every part is a bounded read (counts are kept by the store), so Home stays fast
/// with 100,000 records.
pub struct Dashboard {
    pub counts: Vec<(Kind, &'static str, usize)>,
    pub newest: Vec<Record>,
    pub lists: super::favourites::Lists,
    pub cards: Vec<super::assistant::Card>,
    /// For the cards' Snooze forms.
    pub csrf: String,
}

pub async fn dashboard(app: &AppState, user: &SignedIn) -> Result<Dashboard, Failure> {
    let me = user.crm_user.id;
    let (counts, newest, lists) = with_store(app, move |s| {
        let mut counts = Vec::new();
        let mut newest = Vec::new();
        for (kind, label) in SEARCH_KINDS {
            counts.push((kind, label, s.count_records(kind)?));
            newest.extend(s.recent_records(kind, RECENT_RECORDS)?);
        }
        newest.sort_by_key(|r| std::cmp::Reverse(r.stamps().created));
        newest.truncate(RECENT_RECORDS);
        Ok((counts, newest, super::favourites::read_lists(s, me)?))
    })
    .await?;
    let cards = super::insights::for_user(app, me).await?;
    Ok(Dashboard {
        counts,
        newest,
        lists,
        cards,
        csrf: user.session.csrf_token.clone(),
    })
}

pub fn dashboard_cards(d: &Dashboard) -> Markup {
    html! {
        (super::insights::section(&d.cards, "Nothing needs your attention right now.", &d.csrf))
        (super::favourites::lists_cards(&d.lists))
        section.card aria-labelledby="h-records" {
            h2 #h-records { "Records" }
            ul.counts {
                @for (kind, label, n) in &d.counts {
                    li { a href=(format!("/search?type={}", kind.as_str())) { span.n { (n) } " " (label) } }
                }
            }
        }
        section.card aria-labelledby="h-newest-records" {
            h2 #h-newest-records { "Newest records" }
            @if d.newest.is_empty() {
                p.empty { "No records yet." }
            } @else {
                ul.list {
                    @for r in &d.newest {
                        li {
                            a href=(record_href(r.id())) { (title_or_untitled(&r.title())) }
                            span.meta { (kind_label(r.kind())) " · " (r.stamps().created.format("%Y-%m-%d")) }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct SearchParams {
    pub(crate) q: Option<String>,
    #[serde(rename = "type")]
    pub(crate) kind: Option<String>,
}

pub(crate) fn parse_kind(raw: Option<&str>) -> Result<Option<Kind>, Failure> {
    match raw.map(str::trim).filter(|s| !s.is_empty() && *s != "all") {
        None => Ok(None),
        Some(s) => SEARCH_KINDS
            .iter()
            .map(|(k, _)| *k)
            .find(|k| k.as_str() == s)
            .map(Some)
            .ok_or_else(|| {
                Failure::new(
                    StatusCode::BAD_REQUEST,
                    format!("Unknown record type {s:?}: choose one from the list."),
                )
            }),
    }
}

fn search_form(q: &str, kind: Option<Kind>, action: &str, with_types: bool) -> Markup {
    html! {
        form.search method="get" action=(action) role="search" {
            label for="q" { "Search" }
            div.row {
                input #q type="search" name="q" value=(q) placeholder="Name, company, e-mail…";
                @if with_types {
                    label.sr for="type" { "Record type" }
                    select #type name="type" {
                        option value="all" selected[kind.is_none()] { "All" }
                        @for (k, label) in SEARCH_KINDS {
                            option value=(k.as_str()) selected[kind == Some(k)] { (label) }
                        }
                    }
                }
                button type="submit" { "Search" }
            }
        }
    }
}

/// `GET /search?q=…&type=…`: search of all records, filtered by type.
/// The Search page's (and `GET /api/search`'s) hits: records matching `q`, of
/// `kind` when given; a type alone lists its newest records by title. `None`
/// when nothing was asked.
pub(crate) async fn search_hits(
    app: &AppState,
    q: &str,
    kind: Option<Kind>,
) -> Result<Option<Vec<(Kind, Uuid, String)>>, Failure> {
    let text = q.trim().to_owned();
    if text.is_empty() && kind.is_none() {
        return Ok(None);
    }
    if text.is_empty() {
        // A bounded read of that type's newest records.
        let k = kind.unwrap_or(Kind::Account);
        let mut all = with_store(app, move |s| s.recent_records(k, SEARCH_LIMIT)).await?;
        all.sort_by_key(|r| r.title().to_lowercase());
        return Ok(Some(
            all.into_iter()
                .take(SEARCH_LIMIT)
                .map(|r| (r.kind(), r.id(), r.title()))
                .collect(),
        ));
    }
    let query = SearchQuery {
        text,
        kinds: match kind {
            Some(k) => vec![k],
            None => SEARCH_KINDS.iter().map(|(k, _)| *k).collect(),
        },
        limit: SEARCH_LIMIT,
    };
    let hits = with_store(app, move |s| s.search(&query)).await?;
    Ok(Some(
        hits.into_iter().map(|h| (h.kind, h.id, h.title)).collect(),
    ))
}

pub async fn search(
    State(app): State<AppState>,
    Query(p): Query<SearchParams>,
    user: SignedIn,
) -> Result<Response, PageFailure> {
    let kind = parse_kind(p.kind.as_deref()).map_err(PageFailure)?;
    let q = p.q.unwrap_or_default();
    let hits = search_hits(&app, &q, kind).await.map_err(PageFailure)?;
    // Before a search: the user's favourites and recent records (the guide's Recent).
    let lists = match hits {
        None => Some(
            super::favourites::lists(&app, user.crm_user.id)
                .await
                .map_err(PageFailure)?,
        ),
        Some(_) => None,
    };
    let body = html! {
        h1 { "Search" }
        section.card { (search_form(&q, kind, "/search", true)) }
        @if let Some(hits) = &hits {
            section.card aria-live="polite" {
                h2 { (hits.len()) @if hits.len() == 1 { " result" } @else { " results" } }
                @if hits.is_empty() {
                    p.empty { "No record matches. Try fewer or shorter words." }
                } @else {
                    @if q.trim().is_empty() && hits.len() >= SEARCH_LIMIT {
                        p.hint { "The " (SEARCH_LIMIT) " newest; search by name to find others." }
                    }
                    ul.list {
                        @for (k, id, title) in hits {
                            li {
                                a href=(record_href(*id)) { (title_or_untitled(title)) }
                                span.meta { (kind_label(*k)) }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(l) = &lists { (super::favourites::lists_cards(l)) }
    };
    Ok(pages::layout(&user.chrome(), Some(Nav::Search), "Search", body).into_response())
}

fn money(m: &store::Money) -> String {
    let sign = if m.minor < 0 { "-" } else { "" };
    let v = m.minor.unsigned_abs();
    format!("{sign}{}.{:02} {}", v / 100, v % 100, m.currency)
}

/// (label, value) rows of a record's own fields; empty values are left out.
fn fields(r: &Record) -> Vec<(&'static str, String)> {
    let emails = |e: &[store::EmailAddress]| {
        e.iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let addr = |a: &store::PostalAddress| {
        [&a.street, &a.postal_code, &a.city, &a.state, &a.country]
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out: Vec<(&'static str, String)> = match r {
        Record::Account(a) => vec![
            ("Website", a.website.clone()),
            ("Phone", a.phone.clone()),
            ("E-mail", emails(&a.emails)),
            ("Address", addr(&a.address)),
        ],
        Record::Contact(c) => vec![
            ("Job title", c.job_title.clone()),
            ("Department", c.department.clone()),
            ("Company", c.company.clone()),
            ("E-mail", emails(&c.emails)),
            ("Business phone", c.business_phone.clone()),
            ("Mobile phone", c.mobile_phone.clone()),
            ("Address", addr(&c.address)),
        ],
        Record::Lead(l) => vec![
            ("Topic", l.topic.clone()),
            ("Company", l.company.clone()),
            ("Job title", l.job_title.clone()),
            ("E-mail", emails(&l.emails)),
            ("Phone", l.phone.clone()),
            ("Address", addr(&l.address)),
            ("Status", format!("{:?}", l.status)),
        ],
        Record::Opportunity(o) => vec![
            (
                "Estimated close",
                o.estimated_close.map(|d| d.to_string()).unwrap_or_default(),
            ),
            (
                "Estimated value",
                o.estimated_value.as_ref().map(money).unwrap_or_default(),
            ),
            ("Status", format!("{:?}", o.status)),
        ],
        Record::Case(c) => vec![
            ("Status", format!("{:?}", c.status)),
            ("Description", c.description.clone()),
        ],
        Record::Invoice(i) => vec![
            ("Amount", money(&i.amount)),
            ("Due", i.due.map(|d| d.to_string()).unwrap_or_default()),
            ("Status", format!("{:?}", i.status)),
        ],
        Record::User(u) => vec![("Sign-in addresses", emails(&u.logins))],
        Record::EmailTemplate(t) => vec![("Subject", t.subject.clone()), ("Body", t.body.clone())],
        Record::SalesLiterature(s) => vec![
            ("Description", s.description.clone()),
            (
                "Files",
                s.files
                    .iter()
                    .map(|f| f.name.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        ],
        Record::KnowledgeArticle(k) => vec![
            ("Keywords", k.keywords.join(", ")),
            ("Article", k.body.clone()),
        ],
    };
    out.retain(|(_, v)| !v.trim().is_empty());
    out
}

/// `GET /record/{id}`: one record, what it links to, and its latest activities.
pub async fn record(
    State(app): State<AppState>,
    Path(raw): Path<String>,
    user: SignedIn,
) -> Result<Response, PageFailure> {
    let id = Uuid::parse_str(&raw).map_err(|_| PageFailure(Failure::not_found()))?;
    let me = user.crm_user.id;
    let found = with_store(&app, move |s| {
        let Some(rec) = s.record(id)? else {
            return Ok(None);
        };
        // Viewing a record puts it first in the user's recent records; a failure
        // there must not cost the page.
        if let Err(e) = s.note_viewed(me, rec.as_ref()) {
            tracing::warn!(error = %e, "could not note a viewed record");
        }
        let favourite = s
            .user_list(me, store::UserList::Favourites)?
            .iter()
            .any(|e| e.record.id == id);
        let mut links = Vec::new();
        for l in rec.links() {
            let title = s.record(l.id)?.map(|r| r.title()).unwrap_or_default();
            links.push((l, title));
        }
        // A private email (regarding nothing) is listed only for those who may read it.
        let activities = store::rights::listable(s, me, s.activities_of(id, RECORD_ACTIVITIES)?)?;
        Ok(Some((rec, links, activities, favourite)))
    })
    .await
    .map_err(PageFailure)?;
    let Some((rec, links, activities, favourite)) = found else {
        return Err(PageFailure(Failure::new(
            StatusCode::NOT_FOUND,
            "There is no record with this id: it may have been deleted.",
        )));
    };
    let title = title_or_untitled(&rec.title()).to_owned();
    let body = html! {
        p.kind { (kind_label(rec.kind())) }
        // The page reloads when this record changes (pane.js, `crm-changed`).
        h1 data-live-record=(id) { (title) }
        (super::favourites::star_form(id, favourite, &user.session.csrf_token))
        section.card aria-label="Details" {
            dl.facts {
                @for (label, value) in fields(&rec) {
                    dt { (label) } dd { (value) }
                }
                @for (l, t) in &links {
                    dt { (kind_label(l.kind)) }
                    dd { a href=(record_href(l.id)) { (title_or_untitled(t)) } }
                }
                dt { "Modified" } dd { (rec.stamps().modified.format("%Y-%m-%d %H:%M UTC")) }
            }
            // Quick create for this customer: an account's opportunities and cases,
            // a contact's cases.
            @let here = format!("{}:{}", rec.kind(), id);
            @let creates: &[(&str, &str)] = match rec.kind() {
                Kind::Account => &[("opportunity", "New opportunity"), ("case", "New case")],
                Kind::Contact => &[("case", "New case")],
                _ => &[],
            };
            @if !creates.is_empty() {
                div.actions {
                    @for (k, label) in creates {
                        a.button href=(format!("/create?{}", form_urlencoded::Serializer::new(String::new()).append_pair("kind", k).append_pair("link", &here).finish())) { (label) }
                    }
                }
            }
        }
        section.card aria-labelledby="h-activities" {
            h2 #h-activities { "Activities" }
            @if activities.is_empty() {
                p.empty { "No activity yet." }
            } @else {
                ul.list {
                    @for a in &activities {
                        li {
                            span { (title_or_untitled(&a.subject)) }
                            span.meta { (kind_label(a.kind())) " · " (a.when().format("%Y-%m-%d %H:%M")) }
                        }
                    }
                }
            }
        }
    };
    Ok(pages::layout(&user.chrome(), None, &title, body).into_response())
}

/// `GET /documents`: email templates, sales literature and knowledge articles.
#[derive(Deserialize)]
pub struct DocumentsParams {
    q: Option<String>,
}

/// Documents shown per kind at most; a search narrows them.
const DOCUMENTS_SHOWN: usize = 100;

pub async fn documents(
    State(app): State<AppState>,
    Query(p): Query<DocumentsParams>,
    user: SignedIn,
) -> Result<Response, PageFailure> {
    let q: String = p.q.unwrap_or_default().trim().chars().take(200).collect();
    let needle = q.to_lowercase();
    let groups = with_store(&app, move |s| {
        let mut out = Vec::new();
        for (kind, label) in [
            (Kind::EmailTemplate, "Email templates"),
            (Kind::SalesLiterature, "Sales literature"),
            (Kind::KnowledgeArticle, "Knowledge articles"),
        ] {
            let mut rs: Vec<Record> = s
                .records(Some(kind))?
                .into_iter()
                .filter(|r| needle.is_empty() || r.title().to_lowercase().contains(&needle))
                .collect();
            rs.sort_by_key(|r| r.title().to_lowercase());
            let total = rs.len();
            rs.truncate(DOCUMENTS_SHOWN);
            out.push((label, rs, total));
        }
        Ok(out)
    })
    .await
    .map_err(PageFailure)?;
    let body = html! {
        h1 { "Documents" }
        section.card {
            form.search method="get" action="/documents" role="search" {
                label for="q" { "Search templates, sales literature and articles by title" }
                input #q type="search" name="q" value=(q) maxlength="200";
                button type="submit" { "Search" }
            }
        }
        @for (label, rs, total) in &groups {
            section.card {
                h2 { (label) }
                @if *total > rs.len() {
                    p.hint { "The first " (rs.len()) " of " (total) " by title; search to find others." }
                }
                @if rs.is_empty() {
                    p.empty { @if q.is_empty() { "None yet." } @else { "None match." } }
                } @else {
                    ul.list {
                        @for r in rs {
                            li {
                                a href=(record_href(r.id())) { (title_or_untitled(&r.title())) }
                                " "
                                a.button href=(format!("/compose?doc={}", r.id())) { "Add to email" }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(pages::layout(&user.chrome(), Some(Nav::Documents), "Documents", body).into_response())
}
