//! The Contacts page's two pickers, each a no-JavaScript page and its form post:
//! Link's account (search the CRM's accounts, or name a new one;
//! `/contacts/link`) and the CRM contact a pending entry is (several contacts
//! share its address; `/contacts/choose`).

use axum::body::Bytes;
use axum::extract::{Query, RawQuery, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use super::contact_actions::{back_to, bad, entry_ids, report_sentence, run_book, uuid_of, Fields};
use super::contacts::{actor_and_owner, book_failure};
use super::crm::with_store;
use super::errors::{Failure, PageFailure};
use super::guard::CSRF_FIELD;
use super::handlers::SignedIn;
use super::pages::{self, Nav};
use super::AppState;
use crate::store::book_actions::{self, AccountTarget, BookError, Choice, MAX_ACCOUNT_NAME};
use crate::store::{AccountId, ContactId, ContactLink, EntryId, Kind, Record, SearchQuery};

/// `GET /contacts/link?sel=…&q=…`: choose the account (search) or name a new one.
pub async fn link_form(
    State(app): State<AppState>,
    RawQuery(raw): RawQuery,
    user: SignedIn,
) -> Result<Response, PageFailure> {
    let f = Fields::parse(raw.unwrap_or_default().as_bytes()).map_err(PageFailure)?;
    let ids = entry_ids(&f.sel).map_err(PageFailure)?;
    if ids.is_empty() {
        return Err(PageFailure(bad(
            "Select at least one mail contact to link to an account.",
        )));
    }
    let (_, owner) = actor_and_owner(&user);
    let q: String = f.q.trim().chars().take(200).collect();
    let text = q.clone();
    let (names, hits) = with_store(&app, move |s| {
        let mut names = Vec::new();
        for id in &ids {
            match s.address_book_entry(owner, *id)? {
                Some(e) => names.push(e.full_name),
                None => return Ok(Err(book_failure(BookError::UnknownEntry(*id)))),
            }
        }
        let hits = if text.is_empty() {
            Vec::new()
        } else {
            s.search(&SearchQuery {
                text,
                kinds: vec![Kind::Account],
                limit: 25,
            })?
        };
        Ok(Ok((names, hits)))
    })
    .await
    .and_then(|r| r)
    .map_err(PageFailure)?;
    let csrf = &user.session.csrf_token;
    let hidden_sel = html! { @for v in &f.sel { input type="hidden" name="sel" value=(v); } };
    let body = html! {
        h1 { "Link to an account" }
        p { "Contacts: " (names.join(", ")) }
        p.hint { "A contact that is not tracked yet is tracked first." }
        section.card {
            form.search method="get" action="/contacts/link" role="search" {
                (hidden_sel)
                label for="q" { "Find the account" }
                div.row {
                    input #q type="search" name="q" value=(q) placeholder="Account name…";
                    button type="submit" { "Search" }
                }
            }
            @if !q.is_empty() {
                @if hits.is_empty() {
                    p.empty { "No account matches." }
                } @else {
                    form method="post" action="/contacts/link" {
                        input type="hidden" name=(CSRF_FIELD) value=(csrf);
                        (hidden_sel)
                        fieldset.pick {
                            legend { "Accounts" }
                            @for (i, h) in hits.iter().enumerate() {
                                div {
                                    input type="radio" name="account" id=(format!("acc-{i}")) value=(h.id) required checked[i == 0];
                                    label for=(format!("acc-{i}")) { (h.title) }
                                }
                            }
                        }
                        button.primary type="submit" { "Link" }
                    }
                }
            }
        }
        section.card {
            h2 { "New account" }
            form method="post" action="/contacts/link" {
                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                (hidden_sel)
                label for="new_account" { "Account name" }
                input #new_account type="text" name="new_account" maxlength=(MAX_ACCOUNT_NAME) required;
                button.primary type="submit" { "Save and link" }
            }
        }
        p { a href="/contacts?tab=mail" { "Back to contacts" } }
    };
    Ok(pages::layout(
        &user.chrome(),
        Some(Nav::Contacts),
        "Link to an account",
        body,
    )
    .into_response())
}

pub(super) fn account_target(account: &str, new_account: &str) -> Result<AccountTarget, Failure> {
    match (account.trim(), new_account.trim()) {
        ("", "") => Err(bad("Choose an account, or enter the name of a new one.")),
        (a, "") => Ok(AccountTarget::Existing(AccountId::from_uuid(uuid_of(
            a, "account",
        )?))),
        ("", n) => Ok(AccountTarget::New(n.to_owned())),
        _ => Err(bad("Choose an account or enter a new one, not both.")),
    }
}

/// `POST /contacts/link`.
pub async fn link_submit(
    State(app): State<AppState>,
    user: SignedIn,
    body: Bytes,
) -> Result<Response, PageFailure> {
    let f = Fields::parse(&body).map_err(PageFailure)?;
    let ids = entry_ids(&f.sel).map_err(PageFailure)?;
    let target = account_target(&f.account, &f.new_account).map_err(PageFailure)?;
    let (actor, owner) = actor_and_owner(&user);
    let r = run_book(&app, move |s| {
        book_actions::link_account(s, actor, owner, &ids, target)
    })
    .await
    .map_err(PageFailure)?;
    Ok(back_to(
        &app,
        &user,
        "/contacts?tab=mail",
        &report_sentence(&r),
    ))
}

#[derive(Deserialize)]
pub struct ChooseParams {
    entry: Option<String>,
}

/// `GET /contacts/choose?entry=…`: which CRM contact a pending entry is.
pub async fn choose_form(
    State(app): State<AppState>,
    Query(p): Query<ChooseParams>,
    user: SignedIn,
) -> Result<Response, PageFailure> {
    let id = EntryId::from_uuid(
        uuid_of(p.entry.as_deref().unwrap_or(""), "contact").map_err(PageFailure)?,
    );
    let (_, owner) = actor_and_owner(&user);
    let found = with_store(&app, move |s| {
        let Some(e) = s.address_book_entry(owner, id)? else {
            return Ok(None);
        };
        let ids: Vec<ContactId> = match &e.link {
            ContactLink::Pending { candidates } => candidates.clone(),
            _ => Vec::new(),
        };
        let mut cs = Vec::new();
        for c in ids {
            if let Some(Record::Contact(c)) = s.record(c.uuid())? {
                let account = match c.account {
                    Some(a) => s.record(a.uuid())?.map(|r| r.title()),
                    None => None,
                };
                cs.push((c, account));
            }
        }
        Ok(Some((e, cs)))
    })
    .await
    .map_err(PageFailure)?;
    let Some((e, cs)) = found else {
        return Err(PageFailure(book_failure(BookError::UnknownEntry(id))));
    };
    let csrf = &user.session.csrf_token;
    let body = html! {
        h1 { "Choose the CRM contact" }
        section.card {
            p { strong { (e.full_name) } @if let Some(a) = e.emails.first() { " " span.meta { (a) } } }
            @if cs.is_empty() {
                p.empty { "This contact is not pending. Select it and press Track on the contacts page." }
            } @else {
                p { "Several CRM contacts have this address. Which one is it?" }
                form method="post" action="/contacts/choose" {
                    input type="hidden" name=(CSRF_FIELD) value=(csrf);
                    input type="hidden" name="entry" value=(e.id);
                    fieldset.pick {
                        legend { "CRM contacts" }
                        @for (i, (c, account)) in cs.iter().enumerate() {
                            div {
                                input type="radio" name="contact" id=(format!("c-{i}")) value=(c.id) required checked[i == 0];
                                label for=(format!("c-{i}")) {
                                    (c.full_name)
                                    @let sub = [c.job_title.as_str(), account.as_deref().unwrap_or(c.company.as_str())].iter().filter(|s| !s.is_empty()).copied().collect::<Vec<_>>().join(" · ");
                                    @if !sub.is_empty() { " " span.meta { (sub) } }
                                }
                            }
                        }
                        div {
                            input type="radio" name="contact" id="c-new" value="new";
                            label for="c-new" { "None of these: create a new CRM contact" }
                        }
                    }
                    button.primary type="submit" { "Track" }
                }
            }
        }
        p { a href="/contacts?tab=mail&view=pending" { "Back to pending contacts" } }
    };
    Ok(pages::layout(
        &user.chrome(),
        Some(Nav::Contacts),
        "Choose the contact",
        body,
    )
    .into_response())
}

pub(super) fn parse_choice(raw: &str) -> Result<Choice, Failure> {
    match raw.trim() {
        "new" => Ok(Choice::NewContact),
        other => Ok(Choice::Contact(ContactId::from_uuid(uuid_of(
            other,
            "CRM contact",
        )?))),
    }
}

/// `POST /contacts/choose`.
pub async fn choose_submit(
    State(app): State<AppState>,
    user: SignedIn,
    body: Bytes,
) -> Result<Response, PageFailure> {
    let f = Fields::parse(&body).map_err(PageFailure)?;
    let id = EntryId::from_uuid(uuid_of(&f.entry, "contact").map_err(PageFailure)?);
    let choice = parse_choice(&f.contact).map_err(PageFailure)?;
    let (actor, owner) = actor_and_owner(&user);
    let r = run_book(&app, move |s| {
        book_actions::choose(s, actor, owner, id, choice)
    })
    .await
    .map_err(PageFailure)?;
    Ok(back_to(
        &app,
        &user,
        "/contacts?tab=mail",
        &report_sentence(&r),
    ))
}
