//! The Contacts page (SPEC section 6, the guide's "Track Outlook contacts"): two
//! tabs, "Mail contacts" (the user's own address book: imported vCard/CSV entries
//! and addresses seen in tracked mail, each tracked, untracked or pending) and
//! "CRM contacts" (the CRM's contact records); search, the all/tracked/untracked
//! view, and pages of [`PAGE`] with next/previous links, so that 100,000 contacts
//! cost one page per request. The actions on selected contacts are in
//! [`super::contact_actions`] and [`super::contact_pickers`], the JSON API in
//! [`super::contacts_api`], what a page loads from the store in
//! [`super::contacts_list`].

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::contacts_list::{load_listing, CrmRow, Listing, MailRow};
use super::crm::with_store;
use super::errors::{Failure, PageFailure};
use super::guard::CSRF_FIELD;
use super::handlers::SignedIn;
use super::pages::{self, Nav};
use super::AppState;
use crate::store::book_actions::BookError;
use crate::store::{BookCounts, BookView, ContactLink, EntrySource, PageRequest, UserId};

/// Contacts per page.
pub const PAGE: usize = 50;
/// Longest search text kept.
const MAX_QUERY_CHARS: usize = 200;

/// Which list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Mail,
    Crm,
}

impl Tab {
    pub fn as_str(self) -> &'static str {
        match self {
            Tab::Mail => "mail",
            Tab::Crm => "crm",
        }
    }
}

/// Who acts, and whose address book it is: a delegate acting for an owner's
/// mailbox is the actor, the owner the owner, and every tracking action is then
/// refused (SPEC section 8; see `book_actions::check_actor`).
pub fn actor_and_owner(user: &SignedIn) -> (UserId, UserId) {
    (user.acting.id, user.crm_user.id)
}

/// A refused or failed action as the user sees it.
pub fn book_failure(e: BookError) -> Failure {
    use crate::store::StoreError;
    let e = match e {
        BookError::Store(refused @ StoreError::NotPermitted { .. }) => {
            return super::crm::store_failure(refused)
        }
        other => other,
    };
    let status = match &e {
        BookError::Delegate | BookError::NotOwner => StatusCode::FORBIDDEN,
        BookError::UnknownEntry(_) | BookError::UnknownAccount(_) => StatusCode::NOT_FOUND,
        BookError::Pending(_) => StatusCode::CONFLICT,
        BookError::Store(StoreError::Invalid { .. } | StoreError::Address(_)) => {
            StatusCode::BAD_REQUEST
        }
        BookError::Store(StoreError::Duplicate(_)) => StatusCode::CONFLICT,
        BookError::Store(other) => {
            tracing::error!(error = %other, "a contacts action failed in the store");
            return Failure::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The CRM store failed; nothing was changed. See the server log.",
            );
        }
        _ => StatusCode::BAD_REQUEST,
    };
    let text = e.to_string();
    let mut chars = text.chars();
    let first: String = chars
        .next()
        .map(|c| c.to_uppercase().collect())
        .unwrap_or_default();
    Failure::new(status, format!("{first}{}.", chars.as_str()))
}

fn bad(msg: impl Into<String>) -> Failure {
    Failure::new(StatusCode::BAD_REQUEST, msg)
}

/// The list's query parameters (page and API alike).
#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    tab: Option<String>,
    q: Option<String>,
    view: Option<String>,
    after: Option<String>,
    before: Option<String>,
    /// Offset into CRM search results.
    from: Option<String>,
}

/// The list state parsed and checked.
#[derive(Debug, Clone)]
pub struct ListState {
    pub tab: Option<Tab>,
    pub q: String,
    pub view: BookView,
    pub page: PageRequest,
    pub from: usize,
}

impl ListState {
    pub fn parse(p: &ListParams) -> Result<ListState, Failure> {
        let tab = match p.tab.as_deref().map(str::trim) {
            None | Some("") => None,
            Some("mail") => Some(Tab::Mail),
            Some("crm") => Some(Tab::Crm),
            Some(other) => return Err(bad(format!("Unknown tab {other:?}: choose mail or crm."))),
        };
        let view = match p.view.as_deref().map(str::trim) {
            None | Some("") => BookView::All,
            Some(v) => v.parse().map_err(|e: String| bad(format!("{e}.")))?,
        };
        let q: String =
            p.q.as_deref()
                .unwrap_or("")
                .trim()
                .chars()
                .take(MAX_QUERY_CHARS)
                .collect();
        let cursor = |c: &Option<String>| c.as_ref().filter(|s| !s.is_empty()).cloned();
        Ok(ListState {
            tab,
            q,
            view,
            page: PageRequest {
                after: cursor(&p.after),
                before: cursor(&p.before),
                limit: PAGE,
            },
            from: match p.from.as_deref().map(str::trim) {
                None | Some("") => 0,
                Some(f) => f.parse().map_err(|_| {
                    bad("This page link is not valid: start again from the first page.")
                })?,
            },
        })
    }

    /// This list's address with other page parameters.
    pub fn href(&self, tab: Tab, extra: &[(&str, &str)]) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        s.append_pair("tab", tab.as_str());
        if !self.q.is_empty() {
            s.append_pair("q", &self.q);
        }
        if tab == Tab::Mail && self.view != BookView::All {
            s.append_pair("view", self.view.as_str());
        }
        for (k, v) in extra {
            s.append_pair(k, v);
        }
        format!("/contacts?{}", s.finish())
    }
}

/// Which tab a request without `tab` opens: the address book when it has entries,
/// else the CRM's contacts (nothing to show on an empty address book).
async fn pick_tab(app: &AppState, owner: UserId, st: &ListState) -> Result<Tab, Failure> {
    if let Some(t) = st.tab {
        return Ok(t);
    }
    let counts = with_store(app, move |s| s.address_book_counts(owner)).await?;
    Ok(if counts.all > 0 { Tab::Mail } else { Tab::Crm })
}

fn status_badge(row: &MailRow) -> Markup {
    html! {
        @match &row.entry.link {
            ContactLink::Tracked { .. } if row.contact.is_some() => span.badge.on { "Tracked" },
            ContactLink::Pending { .. } => span.badge.pending { "Pending" },
            _ => span.badge.off { "Untracked" },
        }
    }
}

fn mailto(addr: &str) -> String {
    format!("mailto:{}", super::contact_actions::mailto_encode(addr))
}

fn tel(phone: &str) -> String {
    let digits: String = phone
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '+')
        .collect();
    format!("tel:{digits}")
}

fn joined(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" · ")
}

fn tabs(st: &ListState, tab: Tab, counts: Option<&BookCounts>) -> Markup {
    let entries = [(Tab::Mail, "Mail contacts"), (Tab::Crm, "CRM contacts")];
    html! {
        nav.tabs aria-label="Contact lists" {
            @for (t, label) in entries {
                a href=(st.href(t, &[])) aria-current=[(t == tab).then_some("page")] {
                    (label)
                    @if let (Tab::Mail, Some(c)) = (t, counts) { " " span.n { "(" (c.all) ")" } }
                }
            }
        }
    }
}

fn search_form(st: &ListState, tab: Tab, counts: Option<&BookCounts>) -> Markup {
    let hint = match tab {
        Tab::Mail => "Name, company, department, address…",
        Tab::Crm => "Name, title, department, address…",
    };
    html! {
        form.search method="get" action="/contacts" role="search" {
            input type="hidden" name="tab" value=(tab.as_str());
            label for="q" { "Search " @if tab == Tab::Mail { "mail contacts" } @else { "CRM contacts" } }
            div.row {
                input #q type="search" name="q" value=(st.q) placeholder=(hint) maxlength=(MAX_QUERY_CHARS);
                @if tab == Tab::Mail {
                    label.sr for="view" { "View" }
                    select #view name="view" {
                        @for v in BookView::ALL {
                            option value=(v.as_str()) selected[st.view == v] {
                                (view_label(v))
                                @if let Some(c) = counts { " (" (view_count(c, v)) ")" }
                            }
                        }
                    }
                }
                button type="submit" { "Search" }
            }
        }
    }
}

pub fn view_label(v: BookView) -> &'static str {
    match v {
        BookView::All => "All contacts",
        BookView::Tracked => "Tracked contacts",
        BookView::Untracked => "Untracked contacts",
        BookView::Pending => "Pending contacts",
    }
}

fn view_count(c: &BookCounts, v: BookView) -> usize {
    match v {
        BookView::All => c.all,
        BookView::Tracked => c.tracked,
        BookView::Untracked => c.untracked,
        BookView::Pending => c.pending,
    }
}

fn pager(
    st: &ListState,
    tab: Tab,
    prev: Option<&str>,
    next: Option<&str>,
    offsets: bool,
) -> Markup {
    let (back, fwd) = if offsets {
        ("from", "from")
    } else {
        ("before", "after")
    };
    html! {
        @if prev.is_some() || next.is_some() {
            nav.pager aria-label="Pages" {
                @if let Some(p) = prev { a href=(st.href(tab, &[(back, p)])) rel="prev" { "‹ Previous" } }
                @if let Some(n) = next { a href=(st.href(tab, &[(fwd, n)])) rel="next" { "Next ›" } }
            }
        }
    }
}

/// The toolbar of actions on the selected contacts (one form, buttons by name).
fn toolbar(tab: Tab, may_track: bool) -> Markup {
    html! {
        div.actions.toolbar role="group" aria-label="Actions on the selected contacts" {
            @if tab == Tab::Mail {
                button.primary type="submit" name="action" value="track" disabled[!may_track] { "Track" }
                button type="submit" name="action" value="untrack" disabled[!may_track] { "Untrack" }
                button type="submit" name="action" value="link" disabled[!may_track] { "Link to account" }
            }
            button type="submit" name="action" value="email" { "Email" }
            button type="submit" name="action" value="appointment" { "Appointment" }
        }
    }
}

fn mail_list(rows: &[MailRow]) -> Markup {
    html! {
        ul.contacts {
            @for r in rows {
                @let e = &r.entry;
                @let cb = format!("sel-{}", e.id);
                li {
                    input #(cb) type="checkbox" name="sel" value=(e.id);
                    div.who {
                        label for=(cb) { (e.full_name) }
                        @let sub = joined(&[&e.job_title, &e.company, &e.department]);
                        @if !sub.is_empty() { span.meta { (sub) } }
                        @if !e.address.is_empty() { span.meta { (e.address.one_line()) } }
                        span.meta {
                            @if let Some(a) = e.emails.first() { a href=(mailto(a.as_str())) { (a) } }
                            @if !e.business_phone.is_empty() { " · " a href=(tel(&e.business_phone)) { (e.business_phone) } }
                            @if e.source == EntrySource::SeenInMail { " · seen in tracked mail" }
                        }
                    }
                    div.state {
                        (status_badge(r))
                        @match (&e.link, &r.contact) {
                            (ContactLink::Tracked { .. }, Some((id, name))) => {
                                a href=(format!("/record/{id}")) { (name) }
                            }
                            (ContactLink::Pending { candidates }, _) => {
                                a href=(format!("/contacts/choose?entry={}", e.id)) {
                                    "Choose the contact (" (candidates.len()) ")"
                                }
                            }
                            _ => {}
                        }
                        @if let Some((id, name)) = &r.account {
                            a.account href=(format!("/record/{id}")) { (name) }
                        }
                    }
                }
            }
        }
    }
}

fn crm_list(rows: &[CrmRow]) -> Markup {
    html! {
        ul.contacts {
            @for r in rows {
                @let cb = format!("crm-{}", r.id);
                li {
                    input #(cb) type="checkbox" name="crm" value=(r.id);
                    div.who {
                        label for=(cb) { a href=(format!("/record/{}", r.id)) { (r.name) } }
                        @let sub = joined(&[&r.job_title, &r.department, &r.company]);
                        @if !sub.is_empty() { span.meta { (sub) } }
                        span.meta {
                            @if let Some(e) = &r.email { a href=(mailto(e)) { (e) } }
                            @if !r.business_phone.is_empty() { " · " a href=(tel(&r.business_phone)) { (r.business_phone) } }
                        }
                    }
                    div.state {
                        @if let Some((id, name)) = &r.account { a.account href=(format!("/record/{id}")) { (name) } }
                    }
                }
            }
        }
    }
}

/// `GET /contacts?tab=mail|crm&q=…&view=…&after=…|before=…|from=…`.
pub async fn contacts(
    State(app): State<AppState>,
    Query(p): Query<ListParams>,
    user: SignedIn,
) -> Result<Response, PageFailure> {
    let st = ListState::parse(&p).map_err(PageFailure)?;
    let (actor, owner) = actor_and_owner(&user);
    let tab = pick_tab(&app, owner, &st).await.map_err(PageFailure)?;
    let st2 = st.clone();
    let listing = with_store(&app, move |s| load_listing(s, owner, tab, &st2))
        .await
        .map_err(|f| PageFailure(cursor_failure(f)))?;
    let may_track = actor == owner;
    let done = app.sessions.take_notice(&user.session.id);
    let csrf = &user.session.csrf_token;
    let counts = match &listing {
        Listing::Mail { counts, .. } => Some(*counts),
        Listing::Crm { .. } => None,
    };
    let body = html! {
        h1 { "Contacts" }
        (tabs(&st, tab, counts.as_ref()))
        @if let Some(d) = &done { p.notice role="status" { (d) } }
        @if !may_track && tab == Tab::Mail {
            p.banner.warn role="alert" { "You are acting for another user: a delegate can see the owner's contacts but cannot track them." }
        }
        section.card { (search_form(&st, tab, counts.as_ref())) }
        section.card aria-live="polite" {
            form method="post" action="/contacts" {
                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                input type="hidden" name="tab" value=(tab.as_str());
                input type="hidden" name="back" value=(st.href(tab, &[]));
                @match &listing {
                    Listing::Mail { counts, page } => {
                        h2 { (view_label(st.view)) " " span.meta { "(" (view_count(counts, st.view)) ")" } }
                        @if page.items.is_empty() {
                            p.empty {
                                @if counts.all == 0 {
                                    "Your address book is empty. Import it with "
                                    code { "crmproxy import --address-book " (user.user) " contacts.vcf" }
                                    ", or track mail: its senders and recipients appear here."
                                } @else { "No contact matches." }
                            }
                        } @else {
                            (toolbar(tab, may_track))
                            (mail_list(&page.items))
                        }
                        (pager(&st, tab, page.prev.as_deref(), page.next.as_deref(), false))
                    }
                    Listing::Crm { total, rows, prev, next, searched } => {
                        h2 { @if *searched { (total) " matching" } @else { (total) } " CRM contacts" }
                        @if rows.is_empty() {
                            p.empty { @if *searched { "No contact matches." } @else { "No contacts yet." } }
                        } @else {
                            (toolbar(tab, may_track))
                            (crm_list(rows))
                        }
                        (pager(&st, tab, prev.as_deref(), next.as_deref(), *searched))
                    }
                }
            }
        }
    };
    Ok(pages::layout(&user.chrome(), Some(Nav::Contacts), "Contacts", body).into_response())
}

/// A forged or stale cursor is the user's input, not a store failure.
pub(super) fn cursor_failure(f: Failure) -> Failure {
    if f.message.contains("page cursor") {
        Failure::new(
            StatusCode::BAD_REQUEST,
            "This page link is not valid any more: start again from the first page.",
        )
    } else {
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_get_their_status_and_a_sentence() {
        let f = book_failure(BookError::Delegate);
        assert_eq!(f.status, StatusCode::FORBIDDEN);
        assert_eq!(
            f.message,
            "A delegate cannot track contacts of the owner's mailbox; the owner can."
        );
        assert_eq!(
            book_failure(BookError::UnknownEntry(crate::store::EntryId::new())).status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            book_failure(BookError::Pending("Pat".into())).status,
            StatusCode::CONFLICT
        );
        assert_eq!(
            book_failure(BookError::NothingSelected).status,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn list_parameters_are_checked() {
        let p = |q: &str| -> ListParams { serde_json::from_str(q).unwrap() };
        let st = ListState::parse(&p(r#"{"tab":"mail","view":"pending","q":" ann "}"#)).unwrap();
        assert_eq!(
            (st.tab, st.view, st.q.as_str()),
            (Some(Tab::Mail), BookView::Pending, "ann")
        );
        assert_eq!(
            st.href(Tab::Mail, &[]),
            "/contacts?tab=mail&q=ann&view=pending"
        );
        assert_eq!(
            st.href(Tab::Crm, &[("from", "50")]),
            "/contacts?tab=crm&q=ann&from=50"
        );
        for bad in [r#"{"tab":"x"}"#, r#"{"view":"x"}"#, r#"{"from":"-1"}"#] {
            assert_eq!(
                ListState::parse(&p(bad)).unwrap_err().status,
                StatusCode::BAD_REQUEST
            );
        }
    }
}
