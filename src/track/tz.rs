//! Time zones, through `jiff` and the system's time-zone database (`TZDIR` or
//! `/usr/share/zoneinfo`; jiff reads "slim" TZif files and their closing rule):
//! an invitation's times to instants — its own VTIMEZONE first, then an IANA
//! name, then a Windows name (what Outlook writes) through the CLDR mapping that
//! calcard carries — and instants back to the pane reader's zone. Floating times
//! and dates are not moved: they are kept as if UTC and shown as written.

use chrono::{DateTime, Datelike, NaiveDateTime, Timelike, Utc};
use jiff::tz::{TimeZone, TimeZoneDatabase};

use crate::message::calendar::{EventTime, Invitation, TimeRef};
use crate::store::Timing;

/// The zone called `name`: an IANA name, else a Windows (or other known) name.
pub fn named(name: &str) -> Option<TimeZone> {
    named_in(jiff::tz::db(), name)
}

fn named_in(db: &TimeZoneDatabase, name: &str) -> Option<TimeZone> {
    let name = name.trim().trim_matches('"');
    if name.is_empty() {
        return None;
    }
    // The database only answers names it lists: never a path out of it.
    if let Ok(tz) = db.get(name) {
        return Some(tz);
    }
    let iana = name.parse::<calcard::common::timezone::Tz>().ok()?.name()?;
    db.get(&iana).ok()
}

/// The zone the pane shows `user`'s times in: their setting, else the machine's.
pub fn user_zone(setting: Option<&str>) -> TimeZone {
    setting.and_then(named).unwrap_or_else(TimeZone::system)
}

/// `local` in `tz` as UTC (a time skipped by a change reads as after it).
pub fn to_utc(local: NaiveDateTime, tz: &TimeZone) -> Option<DateTime<Utc>> {
    let civil = jiff::civil::DateTime::new(
        i16::try_from(local.year()).ok()?,
        i8::try_from(local.month()).ok()?,
        i8::try_from(local.day()).ok()?,
        i8::try_from(local.hour()).ok()?,
        i8::try_from(local.minute()).ok()?,
        i8::try_from(local.second()).ok()?,
        0,
    )
    .ok()?;
    let ts = tz.to_ambiguous_timestamp(civil).compatible().ok()?;
    DateTime::from_timestamp(ts.as_second(), 0)
}

/// `local` by a VTIMEZONE's offset changes ((UTC onset, offset after), sorted).
fn by_changes(local: NaiveDateTime, changes: &[(i64, i32)]) -> Option<DateTime<Utc>> {
    let offset_at = |utc: i64| {
        let n = changes.partition_point(|(onset, _)| *onset <= utc);
        i64::from(changes[n.saturating_sub(1)].1)
    };
    let wall = local.and_utc().timestamp();
    // Guess with the offset at the wall time read as UTC, then correct once.
    let utc = wall.checked_sub(offset_at(wall))?;
    DateTime::from_timestamp(wall.checked_sub(offset_at(utc))?, 0)
}

/// An invitation's time as an instant, with how it reads. A zone known nowhere
/// reads as UTC (and is logged).
pub fn resolve(t: &EventTime, inv: &Invitation) -> Option<(DateTime<Utc>, Timing)> {
    let as_utc = t.local.and_utc();
    let tzid = match &t.zone {
        TimeRef::Utc => return Some((as_utc, Timing::Zoned)),
        TimeRef::Floating => return Some((as_utc, Timing::Floating)),
        TimeRef::Date => return Some((as_utc, Timing::AllDay)),
        TimeRef::Zone(z) => z,
    };
    let def = inv.zone(tzid);
    if let Some(d) = def.filter(|d| !d.changes.is_empty()) {
        return Some((by_changes(t.local, &d.changes)?, Timing::Zoned));
    }
    let zone = def
        .and_then(|d| d.known_as.as_deref())
        .and_then(named)
        .or_else(|| named(tzid));
    match zone {
        Some(z) => Some((to_utc(t.local, &z)?, Timing::Zoned)),
        None => {
            tracing::warn!(tzid = %tzid, "unknown time zone in an invitation; read as UTC");
            Some((as_utc, Timing::Zoned))
        }
    }
}

/// When a stored time happens for a reader in `zone`: an instant as it is; a
/// floating time or a date (kept as if UTC) at that wall-clock time in `zone`.
pub fn instant(t: DateTime<Utc>, timing: Timing, zone: &TimeZone) -> DateTime<Utc> {
    match timing {
        Timing::Zoned => t,
        Timing::Floating | Timing::AllDay => to_utc(t.naive_utc(), zone).unwrap_or(t),
    }
}

/// A time for the pane: an instant in `zone` ("Tue 2026-12-01 10:00 CET"), a
/// floating time as written, a date alone.
pub fn display(t: DateTime<Utc>, timing: Timing, zone: &TimeZone) -> String {
    match timing {
        Timing::AllDay => format!("{} (all day)", t.format("%a %Y-%m-%d")),
        Timing::Floating => format!("{} (local time)", t.format("%a %Y-%m-%d %H:%M")),
        Timing::Zoned => match jiff::Timestamp::from_second(t.timestamp()) {
            Ok(ts) => ts
                .to_zoned_datetime(zone.clone())
                .strftime("%a %Y-%m-%d %H:%M %Z")
                .to_string(),
            Err(_) => t.format("%a %Y-%m-%d %H:%M UTC").to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y%m%dT%H%M%S").unwrap()
    }

    #[test]
    fn iana_and_windows_names() {
        let utc = |s, z: &str| to_utc(at(s), &named(z).unwrap()).unwrap().to_rfc3339();
        // Winter (CET, +1) and summer (CEST, +2) in Paris; New York (EST, -5).
        assert_eq!(
            utc("20261201T100000", "Europe/Paris"),
            "2026-12-01T09:00:00+00:00"
        );
        assert_eq!(
            utc("20260701T100000", "Europe/Paris"),
            "2026-07-01T08:00:00+00:00"
        );
        assert_eq!(
            utc("20261201T100000", "America/New_York"),
            "2026-12-01T15:00:00+00:00"
        );
        assert_eq!(
            utc("20260701T100000", "W. Europe Standard Time"),
            "2026-07-01T08:00:00+00:00"
        );
        assert_eq!(
            utc("20261201T100000", "Eastern Standard Time"),
            "2026-12-01T15:00:00+00:00"
        );
        assert!(named("Nowhere/Special").is_none());
        assert!(named("../../etc/passwd").is_none());
        assert!(named("/etc/passwd").is_none());
    }

    /// A zone compiled `zic -b slim` lists no transition after its last rule
    /// change: the offsets after it come from the TZif footer rule.
    #[test]
    fn slim_zoneinfo_after_its_last_transition() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("europe");
        std::fs::write(
            &src,
            "Rule\tEU\t1981\tmax\t-\tMar\tlastSun\t 1:00u\t1:00\tS\n\
             Rule\tEU\t1996\tmax\t-\tOct\tlastSun\t 1:00u\t0\t-\n\
             Zone\tEurope/Paris\t1:00\tEU\tCE%sT\n",
        )
        .unwrap();
        let out = dir.path().join("zoneinfo");
        let zic = std::process::Command::new("zic")
            .args(["-b", "slim", "-d"])
            .arg(&out)
            .arg(&src)
            .status();
        if !zic.is_ok_and(|s| s.success()) {
            eprintln!("no zic here: nothing to check");
            return;
        }
        let db = TimeZoneDatabase::from_dir(&out).unwrap();
        let paris = named_in(&db, "Europe/Paris").unwrap();
        // Summer 2040 is far past the file's last listed transition.
        let u = to_utc(at("20400701T120000"), &paris).unwrap();
        assert_eq!(u.to_rfc3339(), "2040-07-01T10:00:00+00:00");
        let w = to_utc(at("20401201T120000"), &paris).unwrap();
        assert_eq!(w.to_rfc3339(), "2040-12-01T11:00:00+00:00");
    }

    #[test]
    fn shown_in_the_readers_zone() {
        let t = DateTime::parse_from_rfc3339("2026-12-01T09:00:00Z")
            .unwrap()
            .to_utc();
        let paris = named("Europe/Paris").unwrap();
        assert_eq!(
            display(t, Timing::Zoned, &paris),
            "Tue 2026-12-01 10:00 CET"
        );
        assert_eq!(
            display(t, Timing::Floating, &paris),
            "Tue 2026-12-01 09:00 (local time)"
        );
        assert_eq!(
            display(t, Timing::AllDay, &paris),
            "Tue 2026-12-01 (all day)"
        );
    }
}
