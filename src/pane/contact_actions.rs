//! The Contacts page's actions on selected contacts (the guide's ribbon: Track,
//! Untrack, Link, Email, Appointment) as one no-JavaScript form (`POST /contacts`,
//! checkboxes `sel` for mail contacts and `crm` for CRM contacts, the button
//! pressed in `action`), and the invitation download (`/contacts/invite.ics`).
//! Link's account picker and a pending entry's choice are in
//! [`super::contact_pickers`], the JSON twins in [`super::contacts_api`]. The
//! decisions and the refusals (a delegate may not track the owner's contacts)
//! live in `store::book_actions`; this module parses and renders.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use uuid::Uuid;

use super::contacts::{actor_and_owner, book_failure};
use super::crm::with_store;
use super::errors::{Failure, PageFailure};
use super::handlers::SignedIn;
use super::pages::{self, Nav};
use super::AppState;
use crate::store::book_actions::{self, BookError, BookReport, MAX_SELECTION};
use crate::store::{ContactLink, EntryId, Record};

pub(super) fn bad(msg: impl Into<String>) -> Failure {
    Failure::new(StatusCode::BAD_REQUEST, msg)
}

/// Percent-encode an address for a `mailto:` URL (RFC 6068), keeping `@`.
pub fn mailto_encode(addr: &str) -> String {
    let mut out = String::new();
    for b in addr.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$'*+=@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Form or query fields, where `sel` and `crm` repeat.
#[derive(Debug, Default)]
pub(super) struct Fields {
    pub(super) action: String,
    pub(super) sel: Vec<String>,
    pub(super) crm: Vec<String>,
    pub(super) back: String,
    pub(super) account: String,
    pub(super) new_account: String,
    pub(super) entry: String,
    pub(super) contact: String,
    pub(super) q: String,
}

impl Fields {
    pub(super) fn parse(bytes: &[u8]) -> Result<Fields, Failure> {
        let mut f = Fields::default();
        for (k, v) in form_urlencoded::parse(bytes) {
            let v = v.into_owned();
            match &*k {
                "action" => f.action = v,
                "sel" => f.sel.push(v),
                "crm" => f.crm.push(v),
                "back" => f.back = v,
                "account" => f.account = v,
                "new_account" => f.new_account = v,
                "entry" => f.entry = v,
                "contact" => f.contact = v,
                "q" => f.q = v,
                _ => {}
            }
            if f.sel.len() + f.crm.len() > MAX_SELECTION {
                return Err(bad(format!(
                    "Select at most {MAX_SELECTION} contacts at a time."
                )));
            }
        }
        Ok(f)
    }
}

pub(super) fn uuid_of(raw: &str, what: &str) -> Result<Uuid, Failure> {
    Uuid::parse_str(raw.trim()).map_err(|_| bad(format!("{raw:?} is not the id of a {what}.")))
}

pub(super) fn entry_ids(raw: &[String]) -> Result<Vec<EntryId>, Failure> {
    raw.iter()
        .map(|s| uuid_of(s, "contact").map(EntryId::from_uuid))
        .collect()
}

/// Back to a Contacts address (only), which shows `done` once.
pub(super) fn back_to(app: &AppState, user: &SignedIn, back: &str, done: &str) -> Response {
    let base = if back == "/contacts"
        || (back.starts_with("/contacts?") && !back.contains(['\r', '\n']))
    {
        back
    } else {
        "/contacts"
    };
    app.sessions.set_notice(&user.session.id, done);
    Redirect::to(base).into_response()
}

/// One sentence for the banner.
pub fn report_sentence(r: &BookReport) -> String {
    let mut parts = Vec::new();
    let n = |k: usize, one: &str, many: &str| {
        if k == 1 {
            one.replace('#', "1")
        } else {
            many.replace('#', &k.to_string())
        }
    };
    let counts = [
        (
            r.linked,
            "# contact tracked (linked to the CRM contact with its address)",
            "# contacts tracked (linked to the CRM contacts with their addresses)",
        ),
        (
            r.created,
            "# contact tracked as a new CRM contact",
            "# contacts tracked as new CRM contacts",
        ),
        (
            r.pending,
            "# contact pending: several CRM contacts have its address, choose one",
            "# contacts pending: several CRM contacts have their addresses, choose one for each",
        ),
        (
            r.untracked,
            "# contact untracked (the CRM contact stays)",
            "# contacts untracked (the CRM contacts stay)",
        ),
        (
            r.account_set,
            "# CRM contact linked to the account",
            "# CRM contacts linked to the account",
        ),
        (r.unchanged, "# already as asked", "# already as asked"),
    ];
    for (k, one, many) in counts {
        if k > 0 {
            parts.push(n(k, one, many));
        }
    }
    if parts.is_empty() {
        "Nothing to change.".into()
    } else {
        let mut s = parts.join("; ");
        s.push('.');
        let mut c = s.chars();
        c.next()
            .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
            .unwrap_or(s)
    }
}

pub(super) async fn run_book<T: Send + 'static>(
    app: &AppState,
    f: impl FnOnce(&dyn crate::store::CrmStore) -> Result<T, BookError> + Send + 'static,
) -> Result<T, Failure> {
    let store = app.store.clone();
    match tokio::task::spawn_blocking(move || f(store.as_ref())).await {
        Ok(r) => r.map_err(book_failure),
        Err(_) => Err(Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The contacts action failed.",
        )),
    }
}

/// A person to write to or invite: name and address.
pub(super) type Person = (String, String);

/// The selected people with an address (mail contacts of the owner, CRM contacts).
pub(super) async fn people(
    app: &AppState,
    user: &SignedIn,
    sel: &[String],
    crm: &[String],
) -> Result<Vec<Person>, Failure> {
    let (_, owner) = actor_and_owner(user);
    let entries = entry_ids(sel)?;
    let contacts: Vec<Uuid> = crm
        .iter()
        .map(|c| uuid_of(c, "contact"))
        .collect::<Result<_, _>>()?;
    if entries.is_empty() && contacts.is_empty() {
        return Err(bad("Select at least one contact."));
    }
    let found = with_store(app, move |s| {
        let mut out: Vec<Result<Person, Failure>> = Vec::new();
        for id in entries {
            out.push(match s.address_book_entry(owner, id)? {
                Some(e) => e
                    .emails
                    .first()
                    .map(|a| (e.full_name.clone(), a.to_string()))
                    .ok_or_else(|| bad(format!("{} has no e-mail address.", e.full_name))),
                None => Err(book_failure(BookError::UnknownEntry(id))),
            });
        }
        for id in contacts {
            out.push(match s.record(id)? {
                Some(Record::Contact(c)) => c
                    .emails
                    .first()
                    .map(|a| (c.full_name.clone(), a.to_string()))
                    .ok_or_else(|| bad(format!("{} has no e-mail address.", c.full_name))),
                _ => Err(Failure::new(
                    StatusCode::NOT_FOUND,
                    format!("There is no CRM contact {id} (deleted?); reload the page."),
                )),
            });
        }
        Ok(out)
    })
    .await?;
    found.into_iter().collect()
}

pub(super) fn mailto_all(people: &[Person]) -> String {
    let list: Vec<String> = people.iter().map(|(_, a)| mailto_encode(a)).collect();
    format!("mailto:{}", list.join(","))
}

fn invite_href(sel: &[String], crm: &[String]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for v in sel {
        s.append_pair("sel", v);
    }
    for v in crm {
        s.append_pair("crm", v);
    }
    format!("/contacts/invite.ics?{}", s.finish())
}

/// `POST /contacts`: the toolbar's buttons.
pub async fn act(
    State(app): State<AppState>,
    user: SignedIn,
    body: Bytes,
) -> Result<Response, PageFailure> {
    let f = Fields::parse(&body).map_err(PageFailure)?;
    let (actor, owner) = actor_and_owner(&user);
    match f.action.as_str() {
        "track" | "untrack" => {
            if f.sel.is_empty() {
                return Err(PageFailure(bad("Select at least one mail contact: Track and Untrack work on the Mail contacts tab.")));
            }
            let ids = entry_ids(&f.sel).map_err(PageFailure)?;
            let track = f.action == "track";
            let r = run_book(&app, move |s| {
                if track {
                    book_actions::track(s, actor, owner, &ids)
                } else {
                    book_actions::untrack(s, actor, owner, &ids)
                }
            })
            .await
            .map_err(PageFailure)?;
            Ok(back_to(&app, &user, &f.back, &report_sentence(&r)))
        }
        "link" => {
            if f.sel.is_empty() {
                return Err(PageFailure(bad(
                    "Select at least one mail contact to link to an account.",
                )));
            }
            entry_ids(&f.sel).map_err(PageFailure)?;
            let mut q = form_urlencoded::Serializer::new(String::new());
            for v in &f.sel {
                q.append_pair("sel", v);
            }
            Ok(Redirect::to(&format!("/contacts/link?{}", q.finish())).into_response())
        }
        "email" => {
            let ps = people(&app, &user, &f.sel, &f.crm)
                .await
                .map_err(PageFailure)?;
            let body = html! {
                h1 { "Email" }
                section.card {
                    p { "Write from your mail client to:" }
                    ul.list { @for (n, a) in &ps { li { span { (n) } span.meta { (a) } } } }
                    p.actions { a.button href=(mailto_all(&ps)) { "Open in your mail client" } }
                }
                p { a href=(f.back_or_list()) { "Back to contacts" } }
            };
            Ok(pages::layout(&user.chrome(), Some(Nav::Contacts), "Email", body).into_response())
        }
        "appointment" => {
            let ps = people(&app, &user, &f.sel, &f.crm)
                .await
                .map_err(PageFailure)?;
            let crm_links: Vec<(Uuid, String)> = crm_contacts_of(&app, &user, &f)
                .await
                .map_err(PageFailure)?;
            let body = html! {
                h1 { "Appointment" }
                section.card {
                    p { "An invitation to open in your mail client or calendar, with these attendees:" }
                    ul.list { @for (n, a) in &ps { li { span { (n) } span.meta { (a) } } } }
                    p.actions { a.button href=(invite_href(&f.sel, &f.crm)) download="invitation.ics" { "Download the invitation (.ics)" } }
                }
                @if !crm_links.is_empty() {
                    section.card {
                        h2 { "Or add it to the CRM" }
                        ul.list {
                            @for (id, name) in &crm_links {
                                li { a href=(format!("/activities/new?kind=appointment&regarding=contact:{id}")) { "Add an appointment regarding " (name) } }
                            }
                        }
                    }
                }
                p { a href=(f.back_or_list()) { "Back to contacts" } }
            };
            Ok(
                pages::layout(&user.chrome(), Some(Nav::Contacts), "Appointment", body)
                    .into_response(),
            )
        }
        "" => Err(PageFailure(bad(
            "Choose an action: Track, Untrack, Link to account, Email or Appointment.",
        ))),
        other => Err(PageFailure(bad(format!("Unknown action {other:?}.")))),
    }
}

impl Fields {
    fn back_or_list(&self) -> String {
        if self.back.starts_with("/contacts") && !self.back.contains(['\r', '\n']) {
            self.back.clone()
        } else {
            "/contacts".into()
        }
    }
}

/// The CRM contacts among the selection (tracked mail contacts' and CRM ones).
async fn crm_contacts_of(
    app: &AppState,
    user: &SignedIn,
    f: &Fields,
) -> Result<Vec<(Uuid, String)>, Failure> {
    let (_, owner) = actor_and_owner(user);
    let entries = entry_ids(&f.sel)?;
    let crm: Vec<Uuid> = f
        .crm
        .iter()
        .map(|c| uuid_of(c, "contact"))
        .collect::<Result<_, _>>()?;
    with_store(app, move |s| {
        let mut ids = crm;
        for id in entries {
            if let Some(e) = s.address_book_entry(owner, id)? {
                if let ContactLink::Tracked { contact } = e.link {
                    ids.push(contact.uuid());
                }
            }
        }
        let mut out = Vec::new();
        for id in ids {
            if let Some(Record::Contact(c)) = s.record(id)? {
                if !out.iter().any(|(x, _)| *x == id) {
                    out.push((id, c.full_name));
                }
            }
        }
        Ok(out)
    })
    .await
}

fn ics_text(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .map(|c| match c {
            '"' | ';' | ':' | ',' => ' ',
            c => c,
        })
        .collect()
}

/// `GET /contacts/invite.ics?sel=…&crm=…`: an invitation with the selected people.
pub async fn invite(
    State(app): State<AppState>,
    RawQuery(q): RawQuery,
    user: SignedIn,
) -> Result<Response, PageFailure> {
    let f = Fields::parse(q.unwrap_or_default().as_bytes()).map_err(PageFailure)?;
    let ps = people(&app, &user, &f.sel, &f.crm)
        .await
        .map_err(PageFailure)?;
    let now = chrono::Utc::now();
    let start = now + chrono::Duration::hours(1);
    let fmt = |t: chrono::DateTime<chrono::Utc>| t.format("%Y%m%dT%H0000Z").to_string();
    let mut lines = vec![
        "BEGIN:VCALENDAR".to_owned(),
        "VERSION:2.0".into(),
        "PRODID:-//crmproxy//pane//EN".into(),
        "METHOD:REQUEST".into(),
        "BEGIN:VEVENT".into(),
        format!("UID:{}@crmproxy", Uuid::now_v7()),
        format!("DTSTAMP:{}", now.format("%Y%m%dT%H%M%SZ")),
        format!("DTSTART:{}", fmt(start)),
        format!("DTEND:{}", fmt(start + chrono::Duration::hours(1))),
        "SUMMARY:Meeting".into(),
        format!("ORGANIZER:mailto:{}", mailto_encode(&user.user)),
    ];
    for (name, addr) in &ps {
        lines.push(format!(
            "ATTENDEE;CN=\"{}\";ROLE=REQ-PARTICIPANT;RSVP=TRUE:mailto:{}",
            ics_text(name),
            mailto_encode(addr)
        ));
    }
    lines.extend(["END:VEVENT".to_owned(), "END:VCALENDAR".into()]);
    let body = lines.join("\r\n") + "\r\n";
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "text/calendar; charset=utf-8; method=REQUEST",
            ),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"invitation.ics\"",
            ),
        ],
        body,
    )
        .into_response())
}
