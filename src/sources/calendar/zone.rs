//! Time zones: naming them (IANA, Windows via CLDR, VTIMEZONE definitions) and turning local
//! wall-clock times into instants without ever panicking.
//!
//! Non-existent and ambiguous local times follow RFC 5545 §3.3.5: a time in a DST gap is read
//! with the UTC offset in force before the gap (02:30 on a spring-forward night becomes 03:30
//! summer time), and a time in a fold is the first of its two occurrences (the earlier instant).

use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use windows_timezones::WindowsTimezone;

use super::prepass::Block;
use super::value::{parse_offset, parse_time, TimeValue};

/// A zone a local time can be read in.
#[derive(Debug, Clone)]
pub enum Zone {
    Iana(Tz),
    /// Defined only by a VTIMEZONE in the calendar.
    Defined(Box<Vtimezone>),
}

impl Zone {
    /// The name evidence records: the IANA name, or the VTIMEZONE's TZID.
    pub fn name(&self) -> String {
        match self {
            Zone::Iana(tz) => tz.name().to_string(),
            Zone::Defined(v) => v.tzid.clone(),
        }
    }

    /// The UTC offset in seconds in force at `t`.
    pub fn offset_at(&self, t: NaiveDateTime) -> i64 {
        match self {
            Zone::Iana(tz) => i64::from(tz.offset_from_utc_datetime(&t).fix().local_minus_utc()),
            Zone::Defined(v) => v.offset_at(t),
        }
    }

    /// The instant a wall-clock time names (RFC 5545 rule for gaps and folds, see the module).
    pub fn to_utc(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        let shift = |t: NaiveDateTime, secs: i64| t.checked_sub_signed(Duration::seconds(secs));
        let day = Duration::days(1);
        // Transitions are at least a day apart in every real zone, so the offsets a day before
        // and a day after are the only candidates.
        let before = self.offset_at(local.checked_sub_signed(day)?);
        let after = self.offset_at(local.checked_add_signed(day)?);
        let mut valid: Vec<NaiveDateTime> = Vec::new();
        for off in [before, after] {
            if let Some(u) = shift(local, off) {
                if self.offset_at(u) == off && !valid.contains(&u) {
                    valid.push(u);
                }
            }
        }
        let utc = match valid.iter().min() {
            // In a fold both are valid: the earlier instant is the first occurrence.
            Some(u) => *u,
            // In a gap neither is: read it with the offset before the transition.
            None => shift(local, before)?,
        };
        Some(utc.and_utc())
    }
}

/// How a TZID was understood, for people reading the evidence.
pub fn resolve(tzid: &str, defined: &[Vtimezone]) -> Option<Zone> {
    let tzid = tzid.trim().trim_matches('"').trim();
    if let Ok(tz) = Tz::from_str(tzid) {
        return Some(Zone::Iana(tz));
    }
    // Outlook and Exchange write Windows names; CLDR's windowsZones table (through the
    // windows-timezones crate) gives the IANA zone of its territory "001" row.
    if let Ok(w) = WindowsTimezone::from_str(tzid) {
        return Some(Zone::Iana(Tz::from(w)));
    }
    if let Some(v) = defined.iter().find(|v| v.tzid == tzid) {
        return Some(Zone::Defined(Box::new(v.clone())));
    }
    // "/mozilla.org/20050126_1/America/New_York", "/citadel.org/20190914_1/Europe/Berlin":
    // a vendor prefix before an IANA name.
    let parts: Vec<&str> = tzid.split('/').filter(|p| !p.is_empty()).collect();
    for take in [3, 2, 1] {
        if parts.len() > take {
            let tail = parts[parts.len() - take..].join("/");
            if let Ok(tz) = Tz::from_str(&tail) {
                return Some(Zone::Iana(tz));
            }
        }
    }
    match tzid.to_ascii_uppercase().as_str() {
        "Z" | "UTC" | "GMT" | "ETC/UTC" | "ETC/GMT" | "(UTC) COORDINATED UNIVERSAL TIME" => {
            Some(Zone::Iana(Tz::UTC))
        }
        _ => None,
    }
}

/// One STANDARD or DAYLIGHT part of a VTIMEZONE.
#[derive(Debug, Clone)]
struct Observance {
    /// Local time (in `from`) of the first onset.
    start: NaiveDateTime,
    from: i64,
    to: i64,
    rrule: Option<String>,
    rdates: Vec<NaiveDateTime>,
}

/// A zone defined in the calendar itself: the custom names that neither the IANA database nor
/// CLDR knows ("Eastern Time (US & Canada)", "Customized Time Zone").
#[derive(Debug, Clone)]
pub struct Vtimezone {
    pub tzid: String,
    observances: Vec<Observance>,
}

impl Vtimezone {
    /// Reads a VTIMEZONE block; None when it has no TZID or no usable observance.
    pub fn from_block(block: &Block) -> Option<Vtimezone> {
        let tzid = block.props.iter().find_map(|l| {
            let (name, value) = l.text.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("TZID")
                .then(|| value.trim().trim_matches('"').to_string())
        })?;
        let mut observances = Vec::new();
        for part in &block.children {
            if part.name != "STANDARD" && part.name != "DAYLIGHT" {
                continue;
            }
            let mut start = None;
            let (mut from, mut to) = (None, None);
            let mut rrule = None;
            let mut rdates = Vec::new();
            for l in &part.props {
                let Some((head, value)) = l.text.split_once(':') else {
                    continue;
                };
                let name = head
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_uppercase();
                match name.as_str() {
                    "DTSTART" => start = parse_time(value).map(TimeValue::naive),
                    "TZOFFSETFROM" => from = parse_offset(value),
                    "TZOFFSETTO" => to = parse_offset(value),
                    "RRULE" => rrule = Some(value.trim().to_string()),
                    "RDATE" => rdates.extend(
                        value
                            .split(',')
                            .filter_map(|v| parse_time(v.split('/').next().unwrap_or("")))
                            .map(TimeValue::naive),
                    ),
                    _ => {}
                }
            }
            let (Some(start), Some(to)) = (start, to) else {
                continue;
            };
            observances.push(Observance {
                start,
                from: from.unwrap_or(to),
                to,
                rrule,
                rdates,
            });
        }
        (!observances.is_empty()).then_some(Vtimezone { tzid, observances })
    }

    /// The offset after the latest onset at or before `t` (UTC); before every onset, the first
    /// observance's TZOFFSETFROM.
    fn offset_at(&self, t: NaiveDateTime) -> i64 {
        let mut best: Option<(NaiveDateTime, i64)> = None;
        let mut earliest: Option<(NaiveDateTime, i64)> = None;
        for o in &self.observances {
            for local in o.onsets_until(t + Duration::days(1)) {
                let Some(utc) = local.checked_sub_signed(Duration::seconds(o.from)) else {
                    continue;
                };
                if earliest.is_none_or(|(e, _)| utc < e) {
                    earliest = Some((utc, o.from));
                }
                if utc <= t && best.is_none_or(|(b, _)| utc > b) {
                    best = Some((utc, o.to));
                }
            }
        }
        best.or(earliest).map_or(0, |(_, off)| off)
    }
}

impl Observance {
    /// Local onsets not later than `limit`: the last two years' worth of the rule, and RDATEs.
    fn onsets_until(&self, limit: NaiveDateTime) -> Vec<NaiveDateTime> {
        let mut out: Vec<NaiveDateTime> = self
            .rdates
            .iter()
            .copied()
            .chain(std::iter::once(self.start))
            .filter(|d| *d <= limit)
            .collect();
        if let Some(rule) = &self.rrule {
            let after = limit - Duration::days(800);
            // Outlook starts its rules in 1601. A yearly rule gives the same onsets from any
            // year on, so start it shortly before the years asked about instead of iterating
            // four centuries (which rrule refuses anyway).
            let mut start = self.start;
            let yearly = rule.to_ascii_uppercase().contains("FREQ=YEARLY");
            if yearly && start.year() < after.year() - 1 {
                let year = after.year() - 1;
                start = start
                    .with_year(year)
                    .or_else(|| (start - Duration::days(1)).with_year(year))
                    .unwrap_or(start);
            }
            out.extend(super::recur::expand_local(
                rule, start, self.from, after, limit, 8,
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
    }

    #[test]
    fn gap_uses_the_offset_before_and_fold_the_first_occurrence() {
        let ny = Zone::Iana(chrono_tz::America::New_York);
        // 2026-03-08 02:30 does not exist in New York: read at EST (-5) → 07:30Z.
        assert_eq!(
            ny.to_utc(naive("2026-03-08 02:30")).unwrap().to_rfc3339(),
            "2026-03-08T07:30:00+00:00"
        );
        // 2026-11-01 01:30 happens twice: the first is EDT (-4) → 05:30Z.
        assert_eq!(
            ny.to_utc(naive("2026-11-01 01:30")).unwrap().to_rfc3339(),
            "2026-11-01T05:30:00+00:00"
        );
    }

    #[test]
    fn windows_names_map_through_cldr() {
        let z = resolve("Pacific Standard Time", &[]).unwrap();
        assert_eq!(z.name(), "America/Los_Angeles");
        let z = resolve("W. Europe Standard Time", &[]).unwrap();
        assert_eq!(z.name(), "Europe/Berlin");
        assert_eq!(
            resolve("/mozilla.org/20050126_1/America/New_York", &[])
                .unwrap()
                .name(),
            "America/New_York"
        );
        assert!(resolve("Atlantis/Nowhere", &[]).is_none());
    }
}
