//! Meeting invitations (iTIP REQUEST) tracked as appointment activities: subject,
//! start, end, location, organizer and attendees as parties, recurrence, and the
//! raw invitation as a blob. One appointment per iCalendar UID, shared by every
//! mailbox that tracks the invitation.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use mail_parser::{MessageParser, MimeHeaders};

use crate::message::calendar::{AttendeeRole, Invitation};
use crate::message::EmailFacts;
use crate::store::{
    Activity, ActivityDetails, ActivityId, AppointmentActivity, BlobRef, EmailAddress, OrgSettings,
    PartyRole, RecordRef, Stamps, SystemUser,
};

use super::email::PartyResolver;
use super::TrackError;

/// The meeting request in a message, if it has one.
pub(crate) fn meeting_request(facts: &EmailFacts) -> Option<&Invitation> {
    facts.invitation.as_ref().filter(|i| i.is_request())
}

/// The organizer's address: ORGANIZER, else the message's sender.
fn organizer(inv: &Invitation, facts: &EmailFacts) -> Option<String> {
    inv.organizer
        .clone()
        .or_else(|| facts.from.as_ref().map(|m| m.address.clone()))
}

/// Refuse a meeting that the owner did not organise, unless the organisation allows it.
pub(crate) fn check_organizer(
    owner: &SystemUser,
    inv: &Invitation,
    facts: &EmailFacts,
    settings: &OrgSettings,
) -> Result<(), TrackError> {
    if settings.track_appointments_from_non_organizer {
        return Ok(());
    }
    let org = organizer(inv, facts).unwrap_or_default();
    let is_owner = EmailAddress::parse(&org)
        .map(|o| owner.logins.iter().any(|l| l.same_as(&o)))
        .unwrap_or(false);
    if is_owner {
        Ok(())
    } else {
        Err(TrackError::NotOrganizer {
            organizer: if org.is_empty() {
                "unknown".into()
            } else {
                org
            },
        })
    }
}

impl super::Engine {
    /// Refuse, before anything is asked, tracking in `owner`'s mailbox a meeting
    /// invitation that the CRM already holds (another mailbox tracked it) when the
    /// owner is not its organizer and the organisation does not allow that: the
    /// pane shows the refusal as a banner (the guide's "Track appointments from
    /// another person"). A message the CRM has not seen, or that is not an
    /// invitation, passes; the worker's tracking checks it when it completes.
    pub fn check_meeting_organizer(
        &self,
        owner: crate::store::UserId,
        message_id: &crate::store::MessageId,
    ) -> Result<(), TrackError> {
        let Some(activity) = self.store.activity_by_message_id(message_id)? else {
            return Ok(());
        };
        let ActivityDetails::Email(email) = &activity.details else {
            return Ok(());
        };
        let Some(blob) = &email.raw else {
            return Ok(());
        };
        let raw = self.store.blob(blob)?;
        let Ok(facts) = crate::message::parse(&raw) else {
            return Ok(());
        };
        let Some(inv) = meeting_request(&facts) else {
            return Ok(());
        };
        let owner = self.user_by_id(owner)?;
        check_organizer(&owner, inv, &facts, &self.store.settings()?)
    }
}

/// The text/calendar part's bytes, decoded (what the appointment keeps as its raw
/// invitation).
pub(crate) fn invitation_bytes(raw: &[u8]) -> Option<Vec<u8>> {
    let msg = MessageParser::default().parse(raw)?;
    msg.parts.iter().find_map(|p| {
        let ct = p.content_type()?;
        let is_cal = ct.ctype().eq_ignore_ascii_case("text")
            && ct
                .subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case("calendar"));
        is_cal.then(|| p.contents().to_vec())
    })
}

/// An iCalendar DATE-TIME or DATE as UTC. `…Z` is UTC; a time with a TZID is
/// converted with the system's time-zone database (see `tz`); a floating time, or
/// one in a zone not known here, is read as UTC.
pub(crate) fn ical_time(value: &str) -> Option<DateTime<Utc>> {
    let mut parts = value.split(';');
    let v = parts.next()?.trim();
    let zone = parts.find_map(|p| p.strip_prefix("TZID="));
    let (v, utc) = match v.strip_suffix('Z') {
        Some(v) => (v, true),
        None => (v, false),
    };
    if let Ok(t) = NaiveDateTime::parse_from_str(v, "%Y%m%dT%H%M%S") {
        if let (false, Some(z)) = (utc, zone) {
            if let Some(u) = super::tz::to_utc(t, z) {
                return Some(u);
            }
        }
        return Some(t.and_utc());
    }
    NaiveDate::parse_from_str(v, "%Y%m%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// A new appointment activity for `inv`.
pub(crate) fn new_appointment(
    owner: &SystemUser,
    inv: &Invitation,
    facts: &EmailFacts,
    regarding: Option<RecordRef>,
    raw_invitation: Option<BlobRef>,
    resolver: &mut PartyResolver<'_>,
) -> Result<Activity, TrackError> {
    let start = inv.start.as_deref().and_then(ical_time).ok_or_else(|| {
        TrackError::NotAMessage("the meeting request has no readable start".into())
    })?;
    let end = inv
        .end
        .as_deref()
        .and_then(ical_time)
        .filter(|e| *e >= start)
        .unwrap_or(start);
    let mut parties = Vec::new();
    if let Some(o) = organizer(inv, facts) {
        parties.push(resolver.party(PartyRole::Organizer, &o, None)?);
    }
    for a in &inv.attendees {
        let role = match a.role {
            AttendeeRole::Required => PartyRole::RequiredAttendee,
            AttendeeRole::Optional => PartyRole::OptionalAttendee,
        };
        parties.push(resolver.party(role, &a.address, a.name.as_deref())?);
    }
    let subject = if inv.summary.trim().is_empty() {
        facts.subject.clone()
    } else {
        inv.summary.clone()
    };
    Ok(Activity {
        id: ActivityId::new(),
        stamps: Stamps::default(),
        owner: owner.id,
        subject,
        regarding,
        parties,
        details: ActivityDetails::Appointment(AppointmentActivity {
            start,
            end,
            location: inv.location.clone().unwrap_or_default(),
            uid: inv.uid.clone(),
            recurrence: inv.recurrence.clone(),
            raw_invitation,
            // The Message-ID belongs to the email activity (one per Message-ID);
            // the appointment is found by its UID.
            message_id: None,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ical_times() {
        assert_eq!(
            ical_time("20261201T100000Z").unwrap().to_rfc3339(),
            "2026-12-01T10:00:00+00:00"
        );
        assert_eq!(
            ical_time("20261201T100000;TZID=Nowhere/Special")
                .unwrap()
                .to_rfc3339(),
            "2026-12-01T10:00:00+00:00"
        );
        if std::path::Path::new("/usr/share/zoneinfo/Europe/Paris").exists() {
            assert_eq!(
                ical_time("20261201T100000;TZID=Europe/Paris")
                    .unwrap()
                    .to_rfc3339(),
                "2026-12-01T09:00:00+00:00"
            );
        }
        assert_eq!(
            ical_time("20261201").unwrap().to_rfc3339(),
            "2026-12-01T00:00:00+00:00"
        );
        assert!(ical_time("soon").is_none());
    }
}
