//! Delegate access in the pane (SPEC section 8, the guide's "Use delegate access"): a
//! delegate signs in with their own credentials, then switches to the mailbox of an
//! owner who granted them access (`crmproxy user delegate OWNER DELEGATE`). The grant
//! is checked at the switch and again on every request, so a revoked grant ends the
//! delegation on the next page. Another user's mailbox without a grant is refused
//! and nothing of it is shown.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;
use serde::Deserialize;

use super::crm::with_store;
use super::errors::{Failure, PageFailure};
use super::guard::CSRF_FIELD;
use super::handlers::SignedIn;
use super::pages;
use super::AppState;
use crate::store::{Privilege, SystemUser};

fn primary_login(u: &SystemUser) -> String {
    u.logins
        .first()
        .map(|l| l.to_string())
        .unwrap_or_else(|| u.full_name.clone())
}

/// The owner behind `owner_login`, when `acting` may act for their mailbox: the
/// owner is a CRM user with `use_app` who lists `acting` among their delegates.
/// Refused (403) otherwise, with nothing of the owner's mailbox revealed beyond
/// the address the caller gave.
pub async fn check_grant(
    app: &AppState,
    acting: &SystemUser,
    owner_login: &str,
) -> Result<SystemUser, Failure> {
    let refused = || {
        Failure::new(
            StatusCode::FORBIDDEN,
            format!(
                "You are not a delegate of {owner_login}'s mailbox. The owner or an \
                 administrator can grant it (crmproxy user delegate OWNER YOU)."
            ),
        )
    };
    let login = owner_login.trim().to_string();
    let acting_id = acting.id;
    let owner = with_store(app, move |s| {
        let Some(owner) = s.user_by_mailbox_login(&login)? else {
            return Ok(None);
        };
        Ok(s.may_act_for(acting_id, owner.id)?.then_some(owner))
    })
    .await?;
    match owner {
        Some(o) if o.id == acting.id => Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "That is your own mailbox.",
        )),
        Some(o) if !o.has(Privilege::UseApp) => Err(Failure::new(
            StatusCode::FORBIDDEN,
            format!(
                "{owner_login} does not have the \"Use the app\" privilege, so nobody can \
                 track for that mailbox."
            ),
        )),
        Some(o) => Ok(o),
        None => Err(refused()),
    }
}

/// The owners who made `acting` their delegate (and may use the app), by name.
pub async fn owners_granting(
    app: &AppState,
    acting: &SystemUser,
) -> Result<Vec<SystemUser>, Failure> {
    let id = acting.id;
    let mut owners = with_store(app, move |s| {
        Ok(s.users()?
            .into_iter()
            .filter(|u| u.id != id && u.delegates.contains(&id) && u.has(Privilege::UseApp))
            .collect::<Vec<_>>())
    })
    .await?;
    owners.sort_by(|a, b| a.full_name.cmp(&b.full_name));
    Ok(owners)
}

/// `GET /mailbox`: the signed-in user's own mailbox and those they may act for.
pub async fn mailbox_page(
    State(app): State<AppState>,
    user: SignedIn,
) -> Result<Response, PageFailure> {
    let owners = owners_granting(&app, &user.acting)
        .await
        .map_err(PageFailure)?;
    let csrf = user.session.csrf_token.clone();
    let current = user.crm_user.id;
    let row = |label: String, login: String, value: String, here: bool| {
        html! {
            li {
                strong { (label) } " " span.meta { (login) }
                @if here {
                    " " span.badge.on { "Current" }
                } @else {
                    form.inline method="post" action="/mailbox" {
                        input type="hidden" name=(CSRF_FIELD) value=(csrf);
                        input type="hidden" name="owner" value=(value);
                        " " button type="submit" { "Switch" }
                    }
                }
            }
        }
    };
    let body = html! {
        h1 { "Mailbox" }
        section.card {
            h2 { "Act for a mailbox" }
            p.hint { "A delegate tracks email for the owner of a mailbox; it is recorded as the delegate's action." }
            ul.list.mailboxes {
                (row(format!("{} (you)", user.acting.full_name), user.signed_in.clone(), String::new(), current == user.acting.id))
                @for o in &owners {
                    (row(o.full_name.clone(), primary_login(o), primary_login(o), current == o.id))
                }
            }
            @if owners.is_empty() {
                p.empty { "Nobody has made you a delegate of their mailbox." }
            }
        }
    };
    Ok(pages::layout(&user.chrome(), None, "Mailbox", body).into_response())
}

#[derive(Deserialize)]
pub struct SwitchForm {
    /// The owner's login; empty: back to one's own mailbox.
    #[serde(default)]
    owner: String,
}

/// `POST /mailbox`: act for an owner's mailbox (checked), or for one's own again.
pub async fn mailbox_switch(
    State(app): State<AppState>,
    user: SignedIn,
    Form(f): Form<SwitchForm>,
) -> Result<Response, PageFailure> {
    let owner = f.owner.trim();
    if owner.is_empty() || owner.eq_ignore_ascii_case(&user.signed_in) {
        app.sessions.act_for(&user.session.id, None);
        return Ok(Redirect::to("/").into_response());
    }
    let o = match check_grant(&app, &user.acting, owner).await {
        Ok(o) => o,
        Err(f) => {
            tracing::info!(user = %user.signed_in, owner = %owner, "delegate switch refused");
            return Err(PageFailure(f));
        }
    };
    let login = primary_login(&o);
    tracing::info!(user = %user.signed_in, owner = %login, "delegate acts for an owner's mailbox");
    app.sessions.act_for(&user.session.id, Some(&login));
    Ok(Redirect::to("/").into_response())
}
