//! Local times of meeting invitations (`DTSTART;TZID=Europe/Paris:…`) to UTC,
//! with the system's time-zone database (`/usr/share/zoneinfo`, TZif files). No
//! database is shipped: an unknown zone (or a Windows zone name without an IANA
//! one) gives `None`, and the caller reads the time as UTC. Past the last
//! transition in the file (2037 in the usual "fat" files) the last offset holds.

use chrono::{DateTime, NaiveDateTime, Utc};
use std::path::{Component, Path};

const ZONEINFO: &str = "/usr/share/zoneinfo";

/// `local` in `zone` as UTC, if the zone is known here.
pub(crate) fn to_utc(local: NaiveDateTime, zone: &str) -> Option<DateTime<Utc>> {
    let zone = zone.trim().trim_matches('"');
    let rel = Path::new(zone);
    // Only plain relative names ("Europe/Paris"): never a path out of the database.
    if zone.is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return None;
    }
    let data = std::fs::read(Path::new(ZONEINFO).join(rel)).ok()?;
    let tz = Tzif::parse(&data)?;
    let wall = local.and_utc().timestamp();
    // Guess with the offset at the wall time read as UTC, then correct once.
    let mut utc = wall - tz.offset_at(wall);
    utc = wall - tz.offset_at(utc);
    DateTime::from_timestamp(utc, 0)
}

/// The transitions of a TZif file (the 64-bit block of version 2+ files).
struct Tzif {
    transitions: Vec<i64>,
    /// Offset (seconds east of UTC) after each transition.
    offsets: Vec<i64>,
    /// Before the first transition.
    initial: i64,
}

impl Tzif {
    fn parse(d: &[u8]) -> Option<Tzif> {
        let header = |at: usize| -> Option<[usize; 6]> {
            if d.get(at..at + 4)? != b"TZif" {
                return None;
            }
            let mut c = [0usize; 6];
            for (i, n) in c.iter_mut().enumerate() {
                let o = at + 20 + i * 4;
                *n = u32::from_be_bytes(d.get(o..o + 4)?.try_into().ok()?) as usize;
            }
            Some(c)
        };
        let [isut, isstd, leap, time, typ, chars] = header(0)?;
        let v1_len = time * 5 + typ * 6 + chars + leap * 8 + isstd + isut;
        let (at, size) = if d.get(4).copied().unwrap_or(0) >= b'2' {
            (44 + v1_len, 8)
        } else {
            (0, 4)
        };
        let [_, _, _, time, typ, _] = header(at)?;
        let mut p = at + 44;
        let mut transitions = Vec::with_capacity(time);
        for _ in 0..time {
            let b = d.get(p..p + size)?;
            transitions.push(if size == 8 {
                i64::from_be_bytes(b.try_into().ok()?)
            } else {
                i32::from_be_bytes(b.try_into().ok()?) as i64
            });
            p += size;
        }
        let idx = d.get(p..p + time)?.to_vec();
        p += time;
        let mut types = Vec::with_capacity(typ);
        for _ in 0..typ {
            let b = d.get(p..p + 6)?;
            types.push(i32::from_be_bytes(b[..4].try_into().ok()?) as i64);
            p += 6;
        }
        let offsets = idx
            .iter()
            .map(|i| types.get(*i as usize).copied())
            .collect::<Option<Vec<_>>>()?;
        Some(Tzif {
            transitions,
            offsets,
            initial: *types.first()?,
        })
    }

    fn offset_at(&self, utc: i64) -> i64 {
        match self.transitions.partition_point(|t| *t <= utc) {
            0 => self.initial,
            n => self.offsets[n - 1],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y%m%dT%H%M%S").unwrap()
    }

    #[test]
    fn local_times_become_utc() {
        if !Path::new(ZONEINFO).join("Europe/Paris").exists() {
            return; // no time-zone database on this system: nothing to check
        }
        // Winter (CET, +1) and summer (CEST, +2) in Paris; New York (EST, -5).
        let paris = |s| to_utc(at(s), "Europe/Paris").unwrap().to_rfc3339();
        assert_eq!(paris("20261201T100000"), "2026-12-01T09:00:00+00:00");
        assert_eq!(paris("20260701T100000"), "2026-07-01T08:00:00+00:00");
        assert_eq!(
            to_utc(at("20261201T100000"), "America/New_York")
                .unwrap()
                .to_rfc3339(),
            "2026-12-01T15:00:00+00:00"
        );
        assert!(to_utc(at("20261201T100000"), "W. Europe Standard Time").is_none());
        assert!(to_utc(at("20261201T100000"), "../../etc/passwd").is_none());
        assert!(to_utc(at("20261201T100000"), "/etc/passwd").is_none());
    }
}
