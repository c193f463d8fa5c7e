//! Meeting invitations: the few iCalendar (RFC 5545) / iTIP (RFC 5546) properties an
//! appointment activity needs, read from a `text/calendar` part. Lines are unfolded and
//! parameters split by hand; unknown properties are ignored.

use serde::{Deserialize, Serialize};

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

/// The first VEVENT of an invitation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    /// iTIP method (`REQUEST`, `CANCEL`, `REPLY`, …), upper-case.
    pub method: Option<String>,
    pub uid: Option<String>,
    pub summary: String,
    /// DTSTART / DTEND as written (e.g. `20261201T100000Z` or with a TZID parameter).
    pub start: Option<String>,
    pub end: Option<String>,
    pub location: Option<String>,
    pub organizer: Option<String>,
    pub attendees: Vec<Attendee>,
    /// The RRULE, when the meeting recurs.
    pub recurrence: Option<String>,
}

impl Invitation {
    /// A meeting request (the only method that tracks as an appointment).
    pub fn is_request(&self) -> bool {
        self.method.as_deref() == Some("REQUEST")
    }

    pub fn is_recurring(&self) -> bool {
        self.recurrence.is_some()
    }
}

/// Parse the first VEVENT; `None` when the text holds none.
pub fn parse(text: &str) -> Option<Invitation> {
    let mut inv = Invitation {
        method: None,
        uid: None,
        summary: String::new(),
        start: None,
        end: None,
        location: None,
        organizer: None,
        attendees: Vec::new(),
        recurrence: None,
    };
    let mut in_event = false;
    let mut seen_event = false;
    for line in unfold(text) {
        let Some((name_params, value)) = line.split_once(':') else {
            continue;
        };
        let mut params = name_params.split(';');
        let name = params.next().unwrap_or("").to_ascii_uppercase();
        let params: Vec<(String, String)> = params
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_ascii_uppercase(), v.trim_matches('"').to_string()))
            .collect();
        let param = |k: &str| {
            params
                .iter()
                .find(|(pk, _)| pk == k)
                .map(|(_, v)| v.clone())
        };
        match name.as_str() {
            "BEGIN" if value.eq_ignore_ascii_case("VEVENT") => {
                if seen_event {
                    break;
                }
                in_event = true;
                seen_event = true;
            }
            "END" if value.eq_ignore_ascii_case("VEVENT") => in_event = false,
            "METHOD" if !in_event => inv.method = Some(value.trim().to_ascii_uppercase()),
            _ if !in_event => {}
            "UID" => inv.uid = Some(value.to_string()),
            "SUMMARY" => inv.summary = unescape(value),
            "DTSTART" => inv.start = Some(with_tz(value, param("TZID"))),
            "DTEND" => inv.end = Some(with_tz(value, param("TZID"))),
            "LOCATION" => inv.location = Some(unescape(value)),
            "RRULE" => inv.recurrence = Some(value.to_string()),
            "ORGANIZER" => inv.organizer = mailto(value),
            "ATTENDEE" => {
                if let Some(address) = mailto(value) {
                    let role = match param("ROLE").as_deref() {
                        Some("OPT-PARTICIPANT") | Some("NON-PARTICIPANT") => AttendeeRole::Optional,
                        _ => AttendeeRole::Required,
                    };
                    inv.attendees.push(Attendee {
                        address,
                        name: param("CN"),
                        role,
                    });
                }
            }
            _ => {}
        }
    }
    seen_event.then_some(inv)
}

/// RFC 5545 3.1: a line starting with a space or tab continues the previous one.
fn unfold(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for raw in text.split('\n') {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(cont) = raw.strip_prefix([' ', '\t']) {
            if let Some(last) = lines.last_mut() {
                last.push_str(cont);
                continue;
            }
        }
        if !raw.is_empty() {
            lines.push(raw.to_string());
        }
    }
    lines
}

fn unescape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') | Some('N') => out.push('\n'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn mailto(v: &str) -> Option<String> {
    let v = v.trim();
    // By bytes: the 7th byte of a peer's value may fall inside a character.
    let addr = match v.as_bytes().get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case(b"mailto:") => &v[7..],
        _ => v,
    };
    addr.contains('@').then(|| addr.to_string())
}

fn with_tz(value: &str, tz: Option<String>) -> String {
    match tz {
        Some(tz) => format!("{value};TZID={tz}"),
        None => value.to_string(),
    }
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
RRULE:FREQ=WEEKLY;COUNT=4\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    #[test]
    fn reads_an_invitation() {
        let inv = parse(ICS).unwrap();
        assert!(inv.is_request());
        assert!(inv.is_recurring());
        assert_eq!(inv.summary, "Quarterly review, Q4");
        assert_eq!(
            inv.start.as_deref(),
            Some("20261201T100000;TZID=Europe/Paris")
        );
        assert_eq!(inv.organizer.as_deref(), Some("alice@contoso.example"));
        assert_eq!(inv.attendees.len(), 2);
        assert_eq!(inv.attendees[0].role, AttendeeRole::Required);
        assert_eq!(inv.attendees[0].name.as_deref(), Some("Bob B"));
        assert_eq!(inv.attendees[1].role, AttendeeRole::Optional);
        assert_eq!(inv.attendees[1].address, "carol@fabrikam.example");
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
