//! "View email in CRM" (the guide's link on a tracked message): the email activity as
//! the CRM keeps it (subject, date, regarding, parties, attachments, S/MIME metadata)
//! and the original message as a download (`message/rfc822`, as an attachment so the
//! browser never renders it).
//!
//! An email's text is private: the page and the download are for those
//! `store::rights` lets read it (its owner, the owner's delegates, the mailboxes that
//! hold this very message), never for whoever knows its Message-ID.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::html;

use super::crm::{kind_label, with_store};
use super::errors::{Failure, PageFailure};
use super::handlers::SignedIn;
use super::pages::{self, Nav};
use super::AppState;
use crate::store::{Activity, ActivityDetails, ActivityId, Direction, EmailActivity, Timing};
use crate::track::tz;

fn not_found() -> Failure {
    Failure::new(
        StatusCode::NOT_FOUND,
        "No such email in the CRM, or it is not tracked in your mailbox.",
    )
}

/// The email activity `raw_id`, if the user may see it; with its regarding title.
async fn load(
    app: &AppState,
    user: &SignedIn,
    raw_id: &str,
) -> Result<(Activity, EmailActivity, Option<String>), Failure> {
    let id: ActivityId = raw_id.parse().map_err(|_| not_found())?;
    let me = user.acting.id;
    let found = with_store(app, move |s| {
        let Some(a) = crate::store::rights::readable(s, me, id)? else {
            return Ok(None);
        };
        let title = match a.regarding {
            Some(r) => s.record(r.id)?.map(|x| x.title()),
            None => None,
        };
        Ok(Some((a, title)))
    })
    .await?;
    match found {
        Some((a, title)) => match &a.details {
            ActivityDetails::Email(e) => {
                let e = e.clone();
                Ok((a, e, title))
            }
            _ => Err(not_found()),
        },
        None => Err(not_found()),
    }
}

/// `GET /activity/{id}`.
pub async fn activity(
    State(app): State<AppState>,
    Path(id): Path<String>,
    user: SignedIn,
) -> Result<Response, PageFailure> {
    let (a, e, regarding_title) = load(&app, &user, &id).await.map_err(PageFailure)?;
    let zone = tz::user_zone(user.crm_user.options.time_zone.as_deref());
    let body = html! {
        h1 { "Email in CRM" }
        section.card {
            h2 { (if a.subject.is_empty() { "(no subject)" } else { &a.subject }) }
            dl.facts {
                dt { "Date" } dd { (tz::display(e.date, Timing::Zoned, &zone)) }
                dt { "Direction" } dd { (match e.direction { Direction::Incoming => "Incoming", Direction::Outgoing => "Outgoing" }) }
                dt { "Message-ID" } dd.mono { (e.message_id) }
                dt { "Regarding" }
                dd {
                    @match (a.regarding, &regarding_title) {
                        (Some(r), Some(t)) => { a href=(format!("/record/{}", r.id)) { (t) } span.meta { " (" (kind_label(r.kind)) ")" } }
                        (Some(r), None) => { span.meta { (kind_label(r.kind)) " (deleted)" } }
                        _ => { span.meta { "None" } }
                    }
                }
            }
            @if e.raw.is_some() {
                p { a.button href=(format!("/activity/{}/raw", a.id)) download { "Download the original message (.eml)" } }
            }
        }
        section.card {
            h2 { "Parties" }
            ul.people {
                @for p in &a.parties {
                    li {
                        span.role { (super::message_view::role_label(p.role)) }
                        span.who {
                            @if !p.name.is_empty() { strong { (p.name) } " " }
                            span.addr { (p.address.as_ref().map(|x| x.to_string()).unwrap_or_default()) }
                        }
                        @for r in &p.records {
                            " " a href=(format!("/record/{}", r.id)) { (kind_label(r.kind)) }
                        }
                    }
                }
            }
        }
        @if !e.attachments.is_empty() {
            section.card {
                h2 { "Attachments" }
                ul.list { @for at in &e.attachments { li { (at.name) " " span.meta { (at.content_type) ", " (at.size) " bytes" } } } }
            }
        }
        section.card {
            h2 { "S/MIME" }
            @match &e.smime {
                None => p.meta { "Not signed or encrypted." },
                Some(s) => dl.facts {
                    dt { "Signed" } dd { (if s.signed { "Yes" } else { "No" }) }
                    dt { "Encrypted" } dd { (if s.encrypted { "Yes" } else { "No" }) }
                    @if let Some(f) = &s.form { dt { "Form" } dd { (f) } }
                    @if let Some(x) = &s.signer { dt { "Signer" } dd { (x) } }
                    @if let Some(t) = &s.signing_time { dt { "Signing time" } dd { (t.format("%Y-%m-%d %H:%M UTC")) } }
                    @if let Some(d) = &s.digest_algorithm { dt { "Digest" } dd { (d) } }
                    dt { "Signature" } dd { (if s.verified { "Verifies over the bytes kept" } else { "Does not verify" }) }
                    @if let Some(p) = &s.problem { dt { "Problem" } dd { (p) } }
                    @for c in &s.certificates {
                        dt { "Certificate" }
                        dd.mono { (c.subject) br; "issuer " (c.issuer) br; "serial " (c.serial) br; "SHA-256 " (c.sha256) br; (c.not_before.format("%Y-%m-%d")) " – " (c.not_after.format("%Y-%m-%d")) }
                    }
                },
            }
        }
        @if !e.body_text.is_empty() {
            section.card { h2 { "Text" } pre.body { (e.body_text) } }
        }
    };
    Ok(pages::layout(&user.chrome(), Some(Nav::Current), "Email in CRM", body).into_response())
}

/// `GET /activity/{id}/raw`: the original message, as a download.
pub async fn raw(
    State(app): State<AppState>,
    Path(id): Path<String>,
    user: SignedIn,
) -> Result<Response, PageFailure> {
    let (a, e, _) = load(&app, &user, &id).await.map_err(PageFailure)?;
    let Some(blob) = e.raw else {
        return Err(PageFailure(Failure::new(
            StatusCode::NOT_FOUND,
            "The CRM does not keep the original of this email.",
        )));
    };
    let bytes = with_store(&app, move |s| s.blob(&blob))
        .await
        .map_err(PageFailure)?;
    let mut resp = bytes.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("message/rfc822"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"email-{}.eml\"", a.id)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}
