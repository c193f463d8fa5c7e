//! What the CRM knows about one message, for the Current message and message pages:
//! the signed-in mailbox's track status (the guide's "Track pending", "Tracked
//! regarding …"), the regarding record, and each sender and recipient with what they
//! are in the CRM (CRM user, contact, lead, account, or unknown). Read-only: the
//! tracking engine adds the actions (set regarding, untrack, add as contact).

use maud::{html, Markup};

use super::crm::{kind_label, with_store};
use super::errors::Failure;
use super::events::MessageOpened;
use super::guard::CSRF_FIELD;
use super::AppState;
use crate::store::{
    Activity, CrmStore, EmailAddress, Kind, PartyRole, RecordRef, SystemUser, TrackStatus,
};

/// The track status of a message in one mailbox, in the guide's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackView {
    NotTracked,
    Pending,
    Tracked,
    TrackedRegarding(RecordRef, String),
    Failed(String),
}

/// One sender or recipient.
#[derive(Debug, Clone)]
pub struct PersonView {
    pub role: &'static str,
    pub name: String,
    pub address: String,
    /// (record, its title, for a contact: its account's title)
    pub records: Vec<(RecordRef, String)>,
}

#[derive(Debug, Clone)]
pub struct MessageCrm {
    pub message_id: String,
    pub track: TrackView,
    /// The email activity, when this mailbox tracks the message ("View email in CRM").
    pub activity: Option<crate::store::ActivityId>,
    pub people: Vec<PersonView>,
    /// Why this mailbox may not track the message (a meeting it did not organise):
    /// shown as a banner, and Track is not offered. Set by the caller.
    pub refusal: Option<String>,
    /// The relationship assistant's cards for these people and records.
    pub assistant: Vec<super::assistant::Card>,
}

pub(crate) fn role_label(r: PartyRole) -> &'static str {
    match r {
        PartyRole::Sender => "From",
        PartyRole::To => "To",
        PartyRole::Cc => "Cc",
        PartyRole::Bcc => "Bcc",
        PartyRole::Organizer => "Organizer",
        PartyRole::RequiredAttendee => "Required",
        PartyRole::OptionalAttendee => "Optional",
        PartyRole::Participant => "Participant",
    }
}

/// `"Nancy Davolio" <nancy@contoso.example>` → (name, address).
pub fn split_mailbox(raw: &str) -> (String, String) {
    let raw = raw.trim();
    match (raw.rfind('<'), raw.rfind('>')) {
        (Some(open), Some(close)) if open < close => {
            let name = raw[..open].trim().trim_matches('"').trim().to_owned();
            (name, raw[open + 1..close].trim().to_owned())
        }
        _ => (String::new(), raw.to_owned()),
    }
}

fn titles(s: &dyn CrmStore, refs: &[RecordRef]) -> crate::store::Result<Vec<(RecordRef, String)>> {
    let mut out = Vec::new();
    for r in refs {
        let title = s.record(r.id)?.map(|rec| rec.title()).unwrap_or_default();
        out.push((*r, title));
    }
    Ok(out)
}

/// [`lookup`] of message `id` as this session knows it: what the proxy saw of it
/// (or the bare Message-ID), and what the CRM knows.
pub async fn lookup_id(
    app: &AppState,
    user: &super::handlers::SignedIn,
    id: &str,
) -> Result<(MessageOpened, MessageCrm), Failure> {
    let probe = app
        .events
        .find(&user.user, id)
        .unwrap_or_else(|| MessageOpened::new(id));
    let crm = lookup(app, &user.crm_user, &probe).await?;
    Ok((probe, crm))
}

/// Look the message up in the store for `user`'s mailbox.
pub async fn lookup(
    app: &AppState,
    user: &SystemUser,
    message: &MessageOpened,
) -> Result<MessageCrm, Failure> {
    let owner = user.id;
    let mid = crate::track::message_id_lenient(&message.message_id).ok();
    let header_people: Vec<(&'static str, String)> = message
        .from
        .iter()
        .map(|f| ("From", f.clone()))
        .chain(message.to.iter().map(|t| ("To", t.clone())))
        .chain(message.cc.iter().map(|c| ("Cc", c.clone())))
        .collect();
    let mut crm = with_store(app, move |s| {
        let tracking = match &mid {
            Some(m) => s.tracking(owner, m)?,
            None => None,
        };
        // The CRM's activity (its people, its regarding) only when this mailbox may
        // read it: a Message-ID seen in the mailbox or typed into the pane may be
        // anybody's mail, and another message may reuse it.
        let activity: Option<Activity> = match &mid {
            Some(m) => crate::store::rights::readable_by_message_id(s, owner, m)?,
            None => None,
        };
        let tracked_activity = tracking.as_ref().and_then(|t| t.activity);
        let regarding = tracking
            .as_ref()
            .and_then(|t| t.regarding)
            .or_else(|| activity.as_ref().and_then(|a| a.regarding));
        let track = match tracking.map(|t| t.status) {
            None => TrackView::NotTracked,
            Some(TrackStatus::Pending) => TrackView::Pending,
            Some(TrackStatus::Failed { reason }) => TrackView::Failed(reason),
            Some(TrackStatus::Tracked) => match regarding {
                Some(r) => {
                    let title = s.record(r.id)?.map(|x| x.title()).unwrap_or_default();
                    TrackView::TrackedRegarding(r, title)
                }
                None => TrackView::Tracked,
            },
        };
        let mut people = Vec::new();
        if let Some(a) = &activity {
            for p in &a.parties {
                people.push(PersonView {
                    role: role_label(p.role),
                    name: p.name.clone(),
                    address: p
                        .address
                        .as_ref()
                        .map(|a| a.to_string())
                        .unwrap_or_default(),
                    records: titles(s, &p.records)?,
                });
            }
        } else {
            // Not in the CRM yet: the people of the header the proxy saw.
            for (role, raw) in header_people {
                let (name, address) = split_mailbox(&raw);
                let records = match EmailAddress::parse(&address) {
                    Ok(addr) => titles(s, &s.resolve_address(&addr)?)?,
                    Err(_) => Vec::new(),
                };
                people.push(PersonView {
                    role,
                    name,
                    address,
                    records,
                });
            }
        }
        Ok(MessageCrm {
            message_id: mid.map(|m| m.to_string()).unwrap_or_default(),
            track,
            activity: tracked_activity,
            people,
            refusal: None,
            assistant: Vec::new(),
        })
    })
    .await?;
    crm.assistant = super::insights::for_message(app, owner, &crm).await?;
    Ok(crm)
}

fn status_label(kind: Kind) -> &'static str {
    match kind {
        Kind::User => "CRM user",
        k => kind_label(k),
    }
}

fn add_href(mid: &str, address: &str, kind: &str) -> String {
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("id", mid)
        .append_pair("address", address)
        .append_pair("kind", kind)
        .finish();
    format!("/people/new?{q}")
}

/// The tracking panel's buttons, in the guide's order.
fn track_buttons(crm: &MessageCrm, csrf: &str) -> Markup {
    let mid = &crm.message_id;
    let pick = format!(
        "/regarding?{}",
        form_urlencoded::Serializer::new(String::new())
            .append_pair("id", mid)
            .finish()
    );
    let tracked = matches!(
        crm.track,
        TrackView::Pending | TrackView::Tracked | TrackView::TrackedRegarding(..)
    );
    html! {
        @if !mid.is_empty() {
            div.actions {
                @if !tracked && crm.refusal.is_none() {
                    form.inline method="post" action="/track" {
                        input type="hidden" name=(CSRF_FIELD) value=(csrf);
                        input type="hidden" name="message_id" value=(mid);
                        button.primary type="submit" { "Track" }
                    }
                    " " a.button href=(pick) { "Set Regarding" }
                } @else if tracked {
                    a.button href=(pick) {
                        @if matches!(crm.track, TrackView::TrackedRegarding(..)) { "Change Regarding" }
                        @else { "Set Regarding" }
                    }
                    " "
                    form.inline method="post" action="/untrack" {
                        input type="hidden" name=(CSRF_FIELD) value=(csrf);
                        input type="hidden" name="message_id" value=(mid);
                        button type="submit" { "Untrack" }
                    }
                    @if let Some(a) = crm.activity {
                        " " a.button href=(format!("/activity/{a}")) { "View email in CRM" }
                    }
                    @if let TrackView::TrackedRegarding(r, _) = &crm.track {
                        " " a.button href=(format!("/activities/new?regarding={}:{}", r.kind, r.id)) { "Add activity" }
                    }
                }
            }
        }
    }
}

/// The tracking panel and the people panel.
pub fn panels(crm: &MessageCrm, csrf: &str, done: Option<&str>) -> Markup {
    html! {
        section.card.tracking aria-labelledby="h-tracking" {
            h2 #h-tracking { "Tracking" }
            @if let Some(d) = done { p.notice role="status" { (d) } }
            @match &crm.track {
                TrackView::NotTracked => p.status { span.badge.off { "Not tracked" } },
                TrackView::Pending => p.status { span.badge.pending { "Track pending" } },
                TrackView::Tracked => p.status { span.badge.on { "Tracked" } },
                TrackView::TrackedRegarding(r, title) => p.status {
                    span.badge.on { "Tracked regarding" } " "
                    a href=(format!("/record/{}", r.id)) { (title) }
                    span.meta { " (" (kind_label(r.kind)) ")" }
                },
                TrackView::Failed(reason) => p.status {
                    span.badge.fail { "Tracking failed" } " " span.meta { (reason) }
                },
            }
            @if let Some(r) = &crm.refusal {
                p.banner.refusal role="alert" { (r) }
            }
            (track_buttons(crm, csrf))
            p { a href="/create" { "Quick create" } }
        }
        section.card aria-labelledby="h-people" {
            h2 #h-people { "People" }
            @if crm.people.is_empty() {
                p.empty { "No sender or recipient known for this message yet." }
            } @else {
                ul.people {
                    @for p in &crm.people {
                        li {
                            span.role { (p.role) }
                            span.who {
                                @if !p.name.is_empty() { strong { (p.name) } " " }
                                span.addr { (p.address) }
                            }
                            @if p.records.is_empty() {
                                span.badge.off { "Unknown" }
                                @if !crm.message_id.is_empty() && p.address.contains('@') {
                                    @for (kind, label) in [("contact", "Add as contact"), ("lead", "Add as lead")] {
                                        " "
                                        a.button.add href=(add_href(&crm.message_id, &p.address, kind)) title=(label) {
                                            "+ " (label)
                                        }
                                    }
                                }
                            } @else {
                                @for (r, title) in &p.records {
                                    span.rec {
                                        span.badge { (status_label(r.kind)) } " "
                                        a href=(format!("/record/{}", r.id)) { (title) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        (super::insights::section(&crm.assistant, "Nothing needs your attention for these people right now.", csrf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailboxes_split_into_name_and_address() {
        assert_eq!(
            split_mailbox("\"Nancy Davolio\" <nancy@contoso.example>"),
            ("Nancy Davolio".into(), "nancy@contoso.example".into())
        );
        assert_eq!(
            split_mailbox(" a@b.example "),
            (String::new(), "a@b.example".into())
        );
        assert_eq!(split_mailbox("Odd > <x@y>"), ("Odd >".into(), "x@y".into()));
    }
}
