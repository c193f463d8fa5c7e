//! Meeting invitations (iTIP REQUEST) tracked as appointment activities: subject,
//! start, end, location, organizer and attendees as parties, recurrence with its
//! occurrences, and the raw invitation as a blob. One appointment per iCalendar UID,
//! shared by every mailbox that tracks the invitation; a later message about the
//! same UID (a higher SEQUENCE, one occurrence, a CANCEL) updates it.

use chrono::{DateTime, Utc};
use mail_parser::{MessageParser, MimeHeaders};

use crate::message::calendar::{AttendeeRole, Invitation};
use crate::message::EmailFacts;
use crate::store::{
    Activity, ActivityDetails, ActivityId, AppointmentActivity, BlobRef, CalendarState,
    EmailAddress, Occurrence, OrgSettings, Party, PartyRole, RecordRef, Stamps, SystemUser, Timing,
};

use super::email::PartyResolver;
use super::{tz, TrackError};

/// The meeting request (or the organizer's cancellation) in a message, if it has one.
pub(crate) fn meeting_request(facts: &EmailFacts) -> Option<&Invitation> {
    facts
        .invitation
        .as_ref()
        .filter(|i| i.is_request() || i.method.as_deref() == Some("CANCEL"))
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

/// The start, end and timing of the event an invitation is about.
fn times(inv: &Invitation) -> Result<(DateTime<Utc>, DateTime<Utc>, Timing), TrackError> {
    let (start, timing) = inv
        .start
        .as_ref()
        .and_then(|t| tz::resolve(t, inv))
        .ok_or_else(|| {
            TrackError::NotAMessage("the meeting request has no readable start".into())
        })?;
    let end = inv
        .end
        .as_ref()
        .and_then(|t| tz::resolve(t, inv))
        .map(|(e, _)| e)
        .filter(|e| *e >= start)
        .unwrap_or(start);
    Ok((start, end, timing))
}

/// A series' occurrences as instants (an unreadable one is left out).
fn occurrences(inv: &Invitation) -> Vec<Occurrence> {
    inv.occurrences
        .iter()
        .filter_map(|o| {
            let (start, _) = tz::resolve(&o.start, inv)?;
            let (end, _) = tz::resolve(&o.end, inv)?;
            let (original, _) = tz::resolve(&o.original, inv)?;
            Some(Occurrence {
                start,
                end: end.max(start),
                original,
            })
        })
        .collect()
}

/// The parties of `inv`: the organizer, then the attendees.
fn parties(
    inv: &Invitation,
    facts: &EmailFacts,
    resolver: &mut PartyResolver<'_>,
) -> Result<Vec<Party>, TrackError> {
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
    Ok(parties)
}

fn subject_of(inv: &Invitation, facts: &EmailFacts) -> String {
    if inv.summary.trim().is_empty() {
        facts.subject.clone()
    } else {
        inv.summary.clone()
    }
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
    let (start, end, timing) = times(inv)?;
    Ok(Activity {
        id: ActivityId::new(),
        stamps: Stamps::default(),
        owner: owner.id,
        subject: subject_of(inv, facts),
        regarding,
        parties: parties(inv, facts, resolver)?,
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
            calendar: CalendarState {
                sequence: inv.sequence,
                cancelled: inv.is_cancel() && inv.recurrence_id.is_none(),
                timing,
                occurrences: occurrences(inv),
            },
        }),
    })
}

/// Apply a later message about the appointment's meeting (same UID): a new
/// SEQUENCE of the series replaces its times, place, rule, occurrences and
/// parties; one about a single occurrence (RECURRENCE-ID) moves or removes that
/// occurrence; a cancellation marks the meeting cancelled. A stale message (a
/// lower SEQUENCE) changes nothing. Whether `a` changed.
pub(crate) fn apply_update(
    a: &mut Activity,
    inv: &Invitation,
    facts: &EmailFacts,
    raw_invitation: Option<BlobRef>,
    resolver: &mut PartyResolver<'_>,
) -> Result<bool, TrackError> {
    let before = a.clone();
    let ActivityDetails::Appointment(ap) = &mut a.details else {
        return Ok(false);
    };
    let seen = ap.calendar.sequence;
    if inv.sequence < seen {
        return Ok(false);
    }
    match &inv.recurrence_id {
        Some(rid) => {
            let Some((original, _)) = tz::resolve(rid, inv) else {
                return Ok(false);
            };
            let list = &mut ap.calendar.occurrences;
            if inv.is_cancel() {
                list.retain(|o| o.original != original);
            } else {
                let (start, end, _) = times(inv)?;
                match list.iter_mut().find(|o| o.original == original) {
                    Some(o) => {
                        o.start = start;
                        o.end = end;
                    }
                    None => list.push(Occurrence {
                        start,
                        end,
                        original,
                    }),
                }
                list.sort_by_key(|o| o.start);
            }
        }
        None if inv.is_cancel() => ap.calendar.cancelled = true,
        None if inv.sequence == seen => {}
        None => {
            let (start, end, timing) = times(inv)?;
            ap.start = start;
            ap.end = end;
            ap.location = inv.location.clone().unwrap_or_default();
            ap.recurrence = inv.recurrence.clone();
            ap.raw_invitation = raw_invitation.or(ap.raw_invitation.take());
            ap.calendar = CalendarState {
                sequence: inv.sequence,
                cancelled: false,
                timing,
                occurrences: occurrences(inv),
            };
            a.subject = subject_of(inv, facts);
            a.parties = parties(inv, facts, resolver)?;
        }
    }
    if let ActivityDetails::Appointment(ap) = &mut a.details {
        ap.calendar.sequence = seen.max(inv.sequence);
    }
    Ok(*a != before)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::calendar::parse;

    fn at(inv: &Invitation) -> (String, String, Timing) {
        let (s, e, t) = times(inv).unwrap();
        (s.to_rfc3339(), e.to_rfc3339(), t)
    }

    fn event(props: &str) -> Invitation {
        parse(&format!(
            "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nUID:u1\r\n{props}END:VEVENT\r\nEND:VCALENDAR\r\n"
        ))
        .unwrap()
    }

    #[test]
    fn floating_and_all_day_stay_as_written() {
        let (s, e, t) = at(&event(
            "DTSTART:20261201T100000\r\nDTEND:20261201T110000\r\n",
        ));
        assert_eq!(
            (s.as_str(), e.as_str()),
            ("2026-12-01T10:00:00+00:00", "2026-12-01T11:00:00+00:00")
        );
        assert_eq!(t, Timing::Floating);
        let (s, e, t) = at(&event(
            "DTSTART;VALUE=DATE:20261201\r\nDTEND;VALUE=DATE:20261202\r\n",
        ));
        assert_eq!(
            (s.as_str(), e.as_str()),
            ("2026-12-01T00:00:00+00:00", "2026-12-02T00:00:00+00:00")
        );
        assert_eq!(t, Timing::AllDay);
        let (s, _, t) = at(&event("DTSTART:20261201T100000Z\r\n"));
        assert_eq!(
            (s.as_str(), t),
            ("2026-12-01T10:00:00+00:00", Timing::Zoned)
        );
        // A zone known nowhere reads as UTC.
        let (s, _, _) = at(&event("DTSTART;TZID=Nowhere/Special:20261201T100000\r\n"));
        assert_eq!(s, "2026-12-01T10:00:00+00:00");
    }
}
