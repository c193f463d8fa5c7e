//! Meeting invitations: what an appointment needs from an iCalendar (RFC 5545) /
//! iTIP (RFC 5546) `text/calendar` part, read with Stalwart's `calcard`: the
//! event (or the one occurrence an update is about), its SEQUENCE and STATUS, the
//! VTIMEZONE definitions, and a recurring series expanded into its occurrences
//! (EXDATE and RECURRENCE-ID applied by calcard) as wall-clock times. Turning
//! those into instants is `track::tz`'s work.

use calcard::common::timezone::Tz;
use calcard::common::PartialDateTime;
use calcard::icalendar::dates::TimeOrDelta;
use calcard::icalendar::utils::strip_mailto_scheme;
use calcard::icalendar::{
    ICalendar, ICalendarComponent, ICalendarComponentType, ICalendarEntry, ICalendarParameterName,
    ICalendarParameterValue, ICalendarParticipationRole, ICalendarProperty, ICalendarStatus,
    ICalendarValue,
};
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

/// Occurrences read from one series at most (an endless rule stops here).
pub const MAX_OCCURRENCES: usize = 500;
/// Offset changes read from one VTIMEZONE observance at most (yearly rules from
/// 1601, as Outlook writes them, reach past 2100).
const MAX_OBSERVANCE_ONSETS: usize = 600;

/// An attendee and the role the invitation gives them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attendee {
    pub address: String,
    pub name: Option<String>,
    pub role: AttendeeRole,
}

/// RFC 5545 ROLE, folded to what an appointment records (chairs count as required).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttendeeRole {
    Required,
    Optional,
}

/// What a DATE-TIME or DATE is relative to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeRef {
    Utc,
    /// No zone: the same wall-clock time everywhere.
    Floating,
    /// A DATE (all-day).
    Date,
    /// A TZID parameter.
    Zone(String),
}

/// A time as the invitation writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventTime {
    pub local: NaiveDateTime,
    pub zone: TimeRef,
}

/// One meeting of a series, as wall-clock times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Occurrence {
    pub start: EventTime,
    pub end: EventTime,
    /// The start the rule gave it (its RECURRENCE-ID when it was moved).
    pub original: EventTime,
}

/// A VTIMEZONE: its TZID, the zone it says it is (X-LIC-LOCATION,
/// X-MICROSOFT-CDO-TZID or a known TZID) and its offset changes as
/// (UTC seconds of the onset, offset after it in seconds east), sorted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneDefinition {
    pub tzid: String,
    pub known_as: Option<String>,
    pub changes: Vec<(i64, i32)>,
}

/// The event of an invitation (the series, or the one occurrence it is about).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    /// iTIP method (`REQUEST`, `CANCEL`, `REPLY`, …), upper-case.
    pub method: Option<String>,
    pub uid: Option<String>,
    /// SEQUENCE: a higher one updates what a lower one said.
    pub sequence: u32,
    pub summary: String,
    pub start: Option<EventTime>,
    pub end: Option<EventTime>,
    pub location: Option<String>,
    pub organizer: Option<String>,
    pub attendees: Vec<Attendee>,
    /// The RRULE, when the meeting recurs.
    pub recurrence: Option<String>,
    /// The occurrence this message is about, when it carries no series.
    pub recurrence_id: Option<EventTime>,
    /// STATUS:CANCELLED (METHOD:CANCEL is in `method`).
    pub status_cancelled: bool,
    /// A series' occurrences, exceptions applied (empty for a single meeting).
    pub occurrences: Vec<Occurrence>,
    pub zones: Vec<ZoneDefinition>,
}

impl Invitation {
    /// A meeting request (what creates an appointment).
    pub fn is_request(&self) -> bool {
        self.method.as_deref() == Some("REQUEST")
    }

    /// The organizer cancels the meeting (or the occurrence in `recurrence_id`).
    pub fn is_cancel(&self) -> bool {
        self.method.as_deref() == Some("CANCEL") || self.status_cancelled
    }

    pub fn is_recurring(&self) -> bool {
        self.recurrence.is_some()
    }

    /// The VTIMEZONE the invitation gives for `tzid`.
    pub fn zone(&self, tzid: &str) -> Option<&ZoneDefinition> {
        self.zones.iter().find(|z| z.tzid == tzid)
    }
}

/// Parse the first event (and its series); `None` when the text holds none.
pub fn parse(text: &str) -> Option<Invitation> {
    let cal = ICalendar::parse(text).ok()?;
    let events: Vec<&ICalendarComponent> = cal
        .components
        .iter()
        .filter(|c| c.component_type == ICalendarComponentType::VEvent)
        .collect();
    let uid = events.first()?.uid().map(str::to_string);
    let same_uid = |c: &&&ICalendarComponent| c.uid().map(str::to_string) == uid;
    let main = events
        .iter()
        .filter(same_uid)
        .find(|c| !c.has_property(&ICalendarProperty::RecurrenceId))
        .or_else(|| events.iter().find(same_uid))
        .copied()?;
    let method = cal
        .components
        .iter()
        .filter(|c| c.component_type == ICalendarComponentType::VCalendar)
        .find_map(|c| text_of(c.property(&ICalendarProperty::Method)?))
        .map(|m| m.to_ascii_uppercase());
    let recurrence =
        main.property(&ICalendarProperty::Rrule)
            .and_then(|e| match e.values.first() {
                Some(ICalendarValue::RecurrenceRule(r)) => Some(r.to_string()),
                _ => None,
            });
    let start = main.property(&ICalendarProperty::Dtstart).and_then(time_of);
    let end = main
        .property(&ICalendarProperty::Dtend)
        .and_then(time_of)
        .or_else(|| end_by_duration(main, start.as_ref()));
    let occurrences = match &recurrence {
        Some(_) => occurrences(&cal, uid.as_deref()),
        None => Vec::new(),
    };
    Some(Invitation {
        method,
        uid,
        sequence: main
            .property(&ICalendarProperty::Sequence)
            .and_then(|e| e.values.first()?.as_integer())
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0),
        summary: prop_text(main, ICalendarProperty::Summary).unwrap_or_default(),
        start,
        end,
        location: prop_text(main, ICalendarProperty::Location),
        organizer: main
            .property(&ICalendarProperty::Organizer)
            .and_then(address_of),
        attendees: main
            .properties(&ICalendarProperty::Attendee)
            .filter_map(attendee_of)
            .collect(),
        recurrence,
        recurrence_id: main
            .property(&ICalendarProperty::RecurrenceId)
            .and_then(time_of),
        status_cancelled: is_cancelled(main),
        occurrences,
        zones: cal
            .components
            .iter()
            .filter(|c| c.component_type == ICalendarComponentType::VTimezone)
            .filter_map(|c| zone_definition(&cal, c))
            .collect(),
    })
}

fn is_cancelled(c: &ICalendarComponent) -> bool {
    c.status() == Some(&ICalendarStatus::Cancelled)
}

fn text_of(e: &ICalendarEntry) -> Option<String> {
    e.values.first()?.as_text().map(str::to_string)
}

fn prop_text(c: &ICalendarComponent, p: ICalendarProperty) -> Option<String> {
    c.property(&p).and_then(text_of)
}

fn address_of(e: &ICalendarEntry) -> Option<String> {
    let v = text_of(e)?;
    let a = strip_mailto_scheme(v.trim());
    a.contains('@').then(|| a.to_string())
}

fn attendee_of(e: &ICalendarEntry) -> Option<Attendee> {
    let role = match e.parameter(&ICalendarParameterName::Role) {
        Some(ICalendarParameterValue::Role(
            ICalendarParticipationRole::OptParticipant | ICalendarParticipationRole::NonParticipant,
        )) => AttendeeRole::Optional,
        _ => AttendeeRole::Required,
    };
    Some(Attendee {
        address: address_of(e)?,
        name: e
            .parameter(&ICalendarParameterName::Cn)
            .and_then(|v| v.as_text())
            .map(str::to_string),
        role,
    })
}

/// A DTSTART/DTEND/RECURRENCE-ID as written.
fn time_of(e: &ICalendarEntry) -> Option<EventTime> {
    let Some(ICalendarValue::PartialDateTime(p)) = e.values.first() else {
        return None;
    };
    let local = p.to_date_time()?.date_time;
    Some(EventTime {
        local,
        zone: time_ref(p, e.tz_id()),
    })
}

fn time_ref(p: &PartialDateTime, tzid: Option<&str>) -> TimeRef {
    if !p.has_time() {
        TimeRef::Date
    } else if p.has_zone() {
        TimeRef::Utc
    } else {
        match tzid {
            Some(z) => TimeRef::Zone(z.to_string()),
            None => TimeRef::Floating,
        }
    }
}

fn end_by_duration(c: &ICalendarComponent, start: Option<&EventTime>) -> Option<EventTime> {
    let start = start?;
    let Some(ICalendarValue::Duration(d)) =
        c.property(&ICalendarProperty::Duration)?.values.first()
    else {
        return None;
    };
    Some(EventTime {
        local: start.local.checked_add_signed(d.to_time_delta()?)?,
        zone: start.zone.clone(),
    })
}

/// The series `uid` expanded by calcard: its rule, EXDATEs and RECURRENCE-ID
/// overrides; a cancelled override is no occurrence.
fn occurrences(cal: &ICalendar, uid: Option<&str>) -> Vec<Occurrence> {
    // calcard pairs an override with its series only when their SEQUENCEs are
    // equal; Outlook and Google raise the series' alone. Expand without them.
    let mut unsequenced = cal.clone();
    for c in &mut unsequenced.components {
        if c.component_type == ICalendarComponentType::VEvent {
            c.entries.retain(|e| e.name != ICalendarProperty::Sequence);
        }
    }
    let cal = &unsequenced;
    let expanded = cal.expand_dates(Tz::Floating, MAX_OCCURRENCES);
    let mut out: Vec<Occurrence> = expanded
        .events
        .into_iter()
        .filter_map(|ev| {
            let comp = cal.components.get(ev.comp_id as usize)?;
            if comp.uid() != uid || is_cancelled(comp) {
                return None;
            }
            let dtstart = comp.property(&ICalendarProperty::Dtstart)?;
            let start = EventTime {
                local: ev.start.naive_local(),
                zone: time_of(dtstart)?.zone,
            };
            let end_local = match ev.end {
                TimeOrDelta::Time(t) => t.naive_local(),
                TimeOrDelta::Delta(d) => start.local.checked_add_signed(d)?,
            };
            let end_zone = comp
                .property(&ICalendarProperty::Dtend)
                .and_then(time_of)
                .map(|t| t.zone)
                .unwrap_or_else(|| start.zone.clone());
            let original = comp
                .property(&ICalendarProperty::RecurrenceId)
                .and_then(time_of)
                .unwrap_or_else(|| start.clone());
            Some(Occurrence {
                end: EventTime {
                    local: end_local,
                    zone: end_zone,
                },
                start,
                original,
            })
        })
        .collect();
    out.sort_by_key(|o| o.start.local);
    out
}

/// A VTIMEZONE's offset changes, each observance (STANDARD, DAYLIGHT) expanded
/// by calcard as if it were an event: its DTSTART and RRULE give the onsets.
fn zone_definition(cal: &ICalendar, tz: &ICalendarComponent) -> Option<ZoneDefinition> {
    let tzid = prop_text(tz, ICalendarProperty::Tzid)?;
    let known_as = tz
        .timezone()
        .and_then(|(_, z)| z.name())
        .map(|n| n.into_owned());
    let mut changes = Vec::new();
    for id in &tz.component_ids {
        let Some(obs) = cal.components.get(*id as usize) else {
            continue;
        };
        if !matches!(
            obs.component_type,
            ICalendarComponentType::Standard | ICalendarComponentType::Daylight
        ) {
            continue;
        }
        let (Some(from), Some(to)) = (
            offset_of(obs, ICalendarProperty::Tzoffsetfrom),
            offset_of(obs, ICalendarProperty::Tzoffsetto),
        ) else {
            continue;
        };
        let as_event = ICalendar {
            components: vec![
                ICalendarComponent {
                    component_type: ICalendarComponentType::VCalendar,
                    entries: Vec::new(),
                    component_ids: vec![1],
                },
                ICalendarComponent {
                    component_type: ICalendarComponentType::VEvent,
                    entries: obs
                        .entries
                        .iter()
                        .filter(|e| {
                            matches!(
                                e.name,
                                ICalendarProperty::Dtstart
                                    | ICalendarProperty::Rrule
                                    | ICalendarProperty::Rdate
                            )
                        })
                        .cloned()
                        .collect(),
                    component_ids: Vec::new(),
                },
            ],
        };
        for ev in as_event
            .expand_dates(Tz::Floating, MAX_OBSERVANCE_ONSETS)
            .events
        {
            // The onset is a local time in the offset before it.
            let onset = ev.start.naive_local().and_utc().timestamp() - i64::from(from);
            changes.push((onset, to));
        }
    }
    changes.sort_unstable();
    Some(ZoneDefinition {
        tzid,
        known_as,
        changes,
    })
}

fn offset_of(c: &ICalendarComponent, p: ICalendarProperty) -> Option<i32> {
    let Some(ICalendarValue::PartialDateTime(o)) = c.property(&p)?.values.first() else {
        return None;
    };
    let secs = i32::from(o.tz_hour?) * 3600 + i32::from(o.tz_minute.unwrap_or(0)) * 60;
    Some(if o.tz_minus { -secs } else { secs })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ICS: &str = "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nPRODID:-//Test//EN\r\n\
BEGIN:VEVENT\r\nUID:meeting-1@contoso.example\r\nSUMMARY:Quarterly review\\, Q4\r\n\
DTSTART;TZID=Europe/Paris:20261201T100000\r\nDTEND;TZID=Europe/Paris:20261201T110000\r\n\
LOCATION:Room 4\r\nORGANIZER;CN=Alice:mailto:alice@contoso.example\r\n\
ATTENDEE;ROLE=REQ-PARTICIPANT;CN=\"Bob B\":mailto:bob@fabrikam.example\r\n\
ATTENDEE;ROLE=OPT-PARTICIPANT;CN=Carol:mailto:carol@fab\r\n rikam.example\r\n\
RRULE:FREQ=WEEKLY;COUNT=4\r\nEXDATE;TZID=Europe/Paris:20261208T100000\r\n\
END:VEVENT\r\nEND:VCALENDAR\r\n";

    #[test]
    fn reads_an_invitation() {
        let inv = parse(ICS).unwrap();
        assert!(inv.is_request());
        assert!(inv.is_recurring());
        assert_eq!(inv.summary, "Quarterly review, Q4");
        let start = inv.start.clone().unwrap();
        assert_eq!(start.local.to_string(), "2026-12-01 10:00:00");
        assert_eq!(start.zone, TimeRef::Zone("Europe/Paris".into()));
        assert_eq!(inv.organizer.as_deref(), Some("alice@contoso.example"));
        assert_eq!(inv.attendees.len(), 2);
        assert_eq!(inv.attendees[0].role, AttendeeRole::Required);
        assert_eq!(inv.attendees[0].name.as_deref(), Some("Bob B"));
        assert_eq!(inv.attendees[1].role, AttendeeRole::Optional);
        assert_eq!(inv.attendees[1].address, "carol@fabrikam.example");
        // Four weeks less the EXDATE.
        let days: Vec<String> = inv
            .occurrences
            .iter()
            .map(|o| o.start.local.format("%m-%d %H:%M").to_string())
            .collect();
        assert_eq!(days, ["12-01 10:00", "12-15 10:00", "12-22 10:00"]);
    }

    #[test]
    fn an_override_with_another_sequence_replaces_its_occurrence() {
        let ics = ICS.replace("RRULE:", "SEQUENCE:2\r\nRRULE:").replace(
            "END:VCALENDAR",
            "BEGIN:VEVENT\r\nUID:meeting-1@contoso.example\r\nSEQUENCE:0\r\n\
RECURRENCE-ID;TZID=Europe/Paris:20261215T100000\r\n\
DTSTART;TZID=Europe/Paris:20261216T140000\r\nDTEND;TZID=Europe/Paris:20261216T150000\r\n\
END:VEVENT\r\nEND:VCALENDAR",
        );
        let inv = parse(&ics).unwrap();
        assert_eq!(inv.sequence, 2);
        let days: Vec<String> = inv
            .occurrences
            .iter()
            .map(|o| o.start.local.format("%m-%d %H:%M").to_string())
            .collect();
        assert_eq!(days, ["12-01 10:00", "12-16 14:00", "12-22 10:00"]);
    }

    /// Found by the `message_facts` fuzz target: a value whose 7th byte is inside a
    /// character (here U+FFFD, as a lossy decode makes of bad bytes) panicked.
    #[test]
    fn organizer_cut_inside_a_character() {
        let ics = "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nUID:meet-1\r\n\
                   ORGANIZER;CN=Organizer:ma\u{FFFD}\u{FFFD}:alice@contoso.example\r\n\
                   ATTENDEE;CN=Carol:mailt\u{e9}:carol@contoso.example\r\n\
                   END:VEVENT\r\nEND:VCALENDAR\r\n";
        let inv = parse(ics).expect("an invitation");
        assert_eq!(
            inv.organizer.as_deref(),
            Some("ma\u{FFFD}\u{FFFD}:alice@contoso.example")
        );
    }

    #[test]
    fn no_event_is_none() {
        assert!(parse("BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n").is_none());
        assert!(parse("garbage").is_none());
    }
}
