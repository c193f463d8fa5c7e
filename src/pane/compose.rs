//! Documents → "Add to email" (SPEC section 6): an email template with its
//! placeholders filled, sales literature (its files attached) or a knowledge article
//! (its text), saved as a draft in the user's Drafts folder by IMAP APPEND, addressed
//! to the current message's sender and, when the message has a regarding record,
//! with a pending tracking request regarding it (the sync worker completes it).
//!
//! The APPEND needs the mailbox password: the pane has it, in memory only, when the
//! user signed in with it; after a one-time-link sign-in it says so and saves nothing.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::Form;
use maud::html;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::crm::with_store;
use super::errors::{ApiFailure, Failure, PageFailure};
use super::guard::CSRF_FIELD;
use super::handlers::SignedIn;
use super::imap_login;
use super::message_view::{self, split_mailbox, TrackView};
use super::pages::{self, Nav};
use super::track_actions::{parse_regarding, track_failure};
use super::AppState;
use crate::store::{EmailAddress, MessageId, MessageLocation, Record, RecordRef};
use crate::track::{TrackRequest, TrackSource};

const MAX_LINE: usize = 500;
const MAX_BODY: usize = 32 * 1024;

/// What the placeholders of a template are filled from.
#[derive(Debug, Default, Clone)]
pub struct Fill {
    pub recipient_first: String,
    pub recipient_last: String,
    pub recipient_full: String,
    pub recipient_email: String,
    pub regarding_name: String,
    pub user_full: String,
    pub user_email: String,
}

/// Replace `{{recipient.first_name}}` and friends; unknown placeholders stay as written.
pub fn fill(text: &str, f: &Fill) -> String {
    let pairs = [
        ("{{recipient.first_name}}", &f.recipient_first),
        ("{{recipient.last_name}}", &f.recipient_last),
        ("{{recipient.full_name}}", &f.recipient_full),
        ("{{recipient.email}}", &f.recipient_email),
        ("{{regarding.name}}", &f.regarding_name),
        ("{{user.full_name}}", &f.user_full),
        ("{{user.email}}", &f.user_email),
    ];
    // One pass: a value that itself reads like a placeholder (a name typed as
    // "{{user.email}}") stays as it is.
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("{{") {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        match pairs.iter().find(|(k, _)| rest.starts_with(k)) {
            Some((k, v)) => {
                out.push_str(v);
                rest = &rest[k.len()..];
            }
            None => {
                out.push_str("{{");
                rest = &rest[2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The draft's fields (form and API).
#[derive(Debug, Default, Deserialize)]
pub struct DraftFields {
    #[serde(default)]
    to: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    regarding: String,
    /// Sales literature whose files are attached.
    #[serde(default)]
    literature: String,
}

#[derive(Deserialize)]
pub struct ComposeParams {
    doc: Option<String>,
}

/// What the current message gives: recipient (its sender) and regarding.
async fn context(app: &AppState, user: &SignedIn) -> Result<(Fill, Option<RecordRef>), Failure> {
    let mut f = Fill {
        user_full: user.crm_user.full_name.clone(),
        user_email: user.user.clone(),
        ..Fill::default()
    };
    let Some(current) = app.events.current(&user.user) else {
        return Ok((f, None));
    };
    let crm = message_view::lookup(app, &user.crm_user, &current).await?;
    let regarding = match &crm.track {
        TrackView::TrackedRegarding(r, title) => {
            f.regarding_name = title.clone();
            Some(*r)
        }
        _ => None,
    };
    let sender = crm
        .people
        .iter()
        .find(|p| p.role == "From")
        .cloned()
        .or_else(|| {
            current.from.as_deref().map(|raw| {
                let (name, address) = split_mailbox(raw);
                message_view::PersonView {
                    role: "From",
                    name,
                    address,
                    records: Vec::new(),
                }
            })
        });
    if let Some(p) = sender {
        if p.address.eq_ignore_ascii_case(&user.user) {
            return Ok((f, regarding));
        }
        f.recipient_email = p.address.clone();
        f.recipient_full = p.name.clone();
        let ids: Vec<Uuid> = p.records.iter().map(|(r, _)| r.id).collect();
        let person = with_store(app, move |s| {
            for id in ids {
                match s.record(id)? {
                    Some(Record::Contact(c)) => {
                        return Ok(Some((c.first_name, c.last_name, c.full_name)))
                    }
                    Some(Record::Lead(l)) => {
                        return Ok(Some((l.first_name, l.last_name, l.full_name)))
                    }
                    _ => {}
                }
            }
            Ok(None)
        })
        .await?;
        match person {
            Some((first, last, full)) => {
                f.recipient_first = first;
                f.recipient_last = last;
                if !full.is_empty() {
                    f.recipient_full = full;
                }
            }
            None => {
                let (first, last) = p.name.rsplit_once(' ').unwrap_or(("", &p.name));
                f.recipient_first = if first.is_empty() {
                    last.to_owned()
                } else {
                    first.to_owned()
                };
                f.recipient_last = last.to_owned();
            }
        }
    }
    Ok((f, regarding))
}

/// `GET /compose?doc=ID`: the draft, filled, to check before "Add to email".
pub async fn compose_form(
    State(app): State<AppState>,
    Query(p): Query<ComposeParams>,
    user: SignedIn,
) -> Result<Response, PageFailure> {
    let id = p
        .doc
        .as_deref()
        .and_then(|d| Uuid::parse_str(d.trim()).ok())
        .ok_or_else(|| PageFailure(Failure::not_found()))?;
    let doc = with_store(&app, move |s| s.record(id))
        .await
        .map_err(PageFailure)?;
    let (f, regarding) = context(&app, &user).await.map_err(PageFailure)?;
    let (subject, body, literature) = match doc {
        Some(Record::EmailTemplate(t)) => (fill(&t.subject, &f), fill(&t.body, &f), None),
        Some(Record::SalesLiterature(l)) => (
            l.name.clone(),
            format!(
                "{}\n\nAttached: {}",
                l.description,
                l.files
                    .iter()
                    .map(|x| x.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Some(l.id.to_string()),
        ),
        Some(Record::KnowledgeArticle(a)) => (a.title.clone(), a.body.clone(), None),
        _ => return Err(PageFailure(Failure::not_found())),
    };
    let can_save = app.sessions.password(&user.session.id).is_some();
    let page = html! {
        h1 { "Add to email" }
        @if !can_save {
            p.banner.warn role="alert" {
                "You signed in with a one-time link, so the pane does not have your mailbox password \
                 and cannot save a draft. Sign out and sign in with your e-mail address and password \
                 to use Add to email."
            }
        }
        section.card {
            form method="post" action="/compose" {
                input type="hidden" name=(CSRF_FIELD) value=(user.session.csrf_token);
                @if let Some(l) = &literature { input type="hidden" name="literature" value=(l); }
                input type="hidden" name="regarding" value=(regarding.map(|r| format!("{}:{}", r.kind, r.id)).unwrap_or_default());
                label for="to" { "To" }
                input #to name="to" value=(f.recipient_email) maxlength=(MAX_LINE);
                label for="subject" { "Subject" }
                input #subject name="subject" value=(subject) maxlength=(MAX_LINE);
                label for="body" { "Text" }
                textarea #body name="body" rows="12" { (body) }
                @if regarding.is_some() { p.hint { "Regarding " strong { (f.regarding_name) } ": the email is tracked when you send it." } }
                button.primary type="submit" disabled[!can_save] { "Add to email" }
            }
        }
    };
    Ok(pages::layout(&user.chrome(), Some(Nav::Documents), "Add to email", page).into_response())
}

fn bad(msg: impl Into<String>) -> Failure {
    Failure::new(StatusCode::BAD_REQUEST, msg)
}

/// Build the draft, APPEND it, ask for tracking regarding the record.
async fn save_draft(
    app: &AppState,
    user: &SignedIn,
    f: &DraftFields,
) -> Result<(String, String), Failure> {
    if user.is_delegate() {
        // The password the pane holds is the delegate's, not the owner's mailbox's.
        return Err(Failure::new(
            StatusCode::CONFLICT,
            "Drafts are saved in your own mailbox only: switch back to your mailbox \
             (Mailbox, at the top) to add documents to an email.",
        ));
    }
    let Some(password) = app.sessions.password(&user.session.id) else {
        return Err(Failure::new(
            StatusCode::CONFLICT,
            "You signed in with a one-time link, so the pane does not have your mailbox \
             password and cannot save a draft. Sign in with your e-mail address and password.",
        ));
    };
    for (name, v) in [("To", &f.to), ("Subject", &f.subject)] {
        if v.chars().count() > MAX_LINE || v.chars().any(|c| c.is_control()) {
            return Err(bad(format!(
                "{name} must be one line of at most {MAX_LINE} characters."
            )));
        }
    }
    if f.body.len() > MAX_BODY {
        return Err(bad(format!("The text is longer than {MAX_BODY} bytes.")));
    }
    let mut to = Vec::new();
    for a in
        f.to.split([',', ';'])
            .map(str::trim)
            .filter(|a| !a.is_empty())
    {
        let (_, addr) = split_mailbox(a);
        let parsed = EmailAddress::parse(&addr)
            .map_err(|_| bad(format!("{addr:?} is not an e-mail address.")))?;
        to.push(parsed.to_string());
    }
    let regarding = parse_regarding(Some(&f.regarding))?;
    let literature = match f.literature.trim() {
        "" => None,
        l => Some(Uuid::parse_str(l).map_err(|_| bad("Unknown sales literature."))?),
    };
    let files = match literature {
        None => Vec::new(),
        Some(id) => with_store(app, move |s| match s.record(id)? {
            Some(Record::SalesLiterature(l)) => {
                let mut out = Vec::new();
                for file in l.files {
                    let bytes = s.blob(&file.blob)?;
                    out.push((file.content_type, file.name, bytes));
                }
                Ok(Some(out))
            }
            _ => Ok(None),
        })
        .await?
        .ok_or_else(|| bad("Unknown sales literature."))?,
    };
    let domain = user
        .user
        .rsplit_once('@')
        .map(|(_, d)| d.to_owned())
        .unwrap_or_else(|| "crmproxy.invalid".into());
    let mid = format!("{}@{}", Uuid::now_v7(), domain);
    let mut b = mail_builder::MessageBuilder::new()
        .message_id(mid.clone())
        .from((user.crm_user.full_name.clone(), user.user.clone()))
        .subject(f.subject.trim().to_owned())
        .text_body(f.body.replace("\r\n", "\n"));
    if !to.is_empty() {
        b = b.to(to.clone());
    }
    for (ct, name, bytes) in files {
        b = b.attachment(ct, name, bytes);
    }
    let built = b.write_to_vec().map_err(|e| {
        Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot build the draft: {e}"),
        )
    })?;
    let message_id = crate::track::message_id_lenient(&mid).map_err(|_| bad("bad Message-ID"))?;
    // The request is made first, so that the draft goes up carrying its tracking
    // block for real (SPEC section 3); it is taken back if the APPEND fails.
    let block = match regarding {
        Some(r) => Some(request_tracking(app, user, &message_id, r, None, &built).await?),
        None => None,
    };
    let raw = match &block {
        Some(b) => [b.as_slice(), &built].concat(),
        None => built,
    };
    let saved = match imap_login::append_draft(
        &app.config.upstream,
        app.config.tracking.drafts_folder.as_deref(),
        &user.imap_login,
        password.expose(),
        &raw,
    )
    .await
    {
        Ok(saved) => saved,
        Err(e) => {
            tracing::warn!(user = %user.user, error = %e, "saving a draft failed");
            if block.is_some() {
                let (engine, login, m) = (app.engine.clone(), user.user.clone(), message_id);
                let _ = tokio::task::spawn_blocking(move || {
                    let actor = engine.actor(&login, &login)?;
                    engine.untrack(&actor, &m)
                })
                .await;
            }
            return Err(Failure::new(
                StatusCode::BAD_GATEWAY,
                format!("Could not save the draft: {e}."),
            ));
        }
    };
    let mut note = format!("Draft saved in {}.", saved.folder);
    if let (Some(r), Some(_)) = (regarding, &block) {
        if let (Some(v), Some(u)) = (saved.uid_validity, saved.uid) {
            let location = MessageLocation {
                folder: saved.folder.clone(),
                uid_validity: v,
                uid: u,
            };
            request_tracking(app, user, &message_id, r, Some(location), &raw).await?;
        }
        note.push_str(
            " Track pending regarding the record: it completes once the proxy reads the draft.",
        );
    }
    Ok((mid, note))
}

/// Ask for tracking of the draft regarding `r` (a pending request; at `place`
/// once the APPEND said where the draft is). Returns the X-CRM-* block to write
/// into the draft (none once it is placed).
async fn request_tracking(
    app: &AppState,
    user: &SignedIn,
    message_id: &MessageId,
    r: RecordRef,
    place: Option<MessageLocation>,
    raw: &[u8],
) -> Result<Vec<u8>, Failure> {
    let engine = app.engine.clone();
    let login = user.user.clone();
    let message_id = message_id.clone();
    let head = raw[..crate::message::headers::header_end(raw).unwrap_or(raw.len())].to_vec();
    tokio::task::spawn_blocking(move || {
        let actor = engine.actor(&login, &login)?;
        let mut req = TrackRequest::new(TrackSource::Append).regarding(r);
        let placed = place.is_some();
        req.location = place;
        engine.request(&actor, &message_id, req)?;
        if placed {
            return Ok(Vec::new());
        }
        Ok(engine
            .append_block(actor.owner_id(), &head)?
            .map(|b| b.bytes)
            .unwrap_or_default())
    })
    .await
    .map_err(|_| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, "tracking request failed"))?
    .map_err(track_failure)
}

pub async fn compose_submit(
    State(app): State<AppState>,
    user: SignedIn,
    Form(f): Form<DraftFields>,
) -> Result<Response, PageFailure> {
    let (mid, note) = save_draft(&app, &user, &f).await.map_err(PageFailure)?;
    let page = html! {
        h1 { "Add to email" }
        section.card {
            p.notice role="status" { (note) }
            dl.facts { dt { "Message-ID" } dd.mono { (mid) } }
            p { "Open your mail client's Drafts folder to finish and send it." }
        }
    };
    Ok(pages::layout(&user.chrome(), Some(Nav::Documents), "Draft saved", page).into_response())
}

pub async fn api_draft(
    State(app): State<AppState>,
    user: SignedIn,
    body: Result<Json<DraftFields>, JsonRejection>,
) -> Result<Response, ApiFailure> {
    let Json(f) = body.map_err(super::api::bad_json)?;
    let (mid, note) = save_draft(&app, &user, &f).await.map_err(ApiFailure)?;
    Ok(Json(json!({ "message_id": mid, "message": note })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_and_unknown_ones_kept() {
        let f = Fill {
            recipient_first: "Nancy".into(),
            regarding_name: "150 seats".into(),
            user_full: "Alice Example".into(),
            ..Fill::default()
        };
        assert_eq!(
            fill(
                "Dear {{recipient.first_name}}, {{regarding.name}} {{x.y}} — {{user.full_name}}",
                &f
            ),
            "Dear Nancy, 150 seats {{x.y}} — Alice Example"
        );
    }

    #[test]
    fn a_value_that_looks_like_a_placeholder_is_not_filled_again() {
        let f = Fill {
            recipient_full: "{{user.email}} {{".into(),
            user_email: "alice@example.test".into(),
            ..Fill::default()
        };
        assert_eq!(
            fill("To {{recipient.full_name}}, from {{user.email}}{{", &f),
            "To {{user.email}} {{, from alice@example.test{{"
        );
    }
}
