//! RRULE expansion in wall-clock time, through the rrule crate.
//!
//! A series keeps its wall-clock time across DST changes, so the rule is expanded on naive
//! local times (handed to rrule as if they were UTC, which has no transitions) and each
//! occurrence is placed in its zone afterwards by the caller.

use chrono::{Duration, NaiveDateTime, TimeZone};
use rrule::{RRule, Tz, Unvalidated};

use super::value::{parse_time, TimeValue};

/// Years rrule is asked about: its iterator refuses dates far out, and nothing in a rental
/// calendar lies there.
const YEARS: std::ops::RangeInclusive<i32> = 1900..=2200;

/// Occurrence starts (local) of `rule` from `start`, within [`after`, `before`], at most `limit`.
/// `until_offset` is the zone's offset (seconds east) used to read a UTC UNTIL as local time.
/// Any error gives no occurrences: the caller reports a series that yields nothing.
pub fn expand_local(
    rule: &str,
    start: NaiveDateTime,
    until_offset: i64,
    after: NaiveDateTime,
    before: NaiveDateTime,
    limit: u16,
) -> Vec<NaiveDateTime> {
    try_expand(rule, start, until_offset, after, before, limit)
        .map(|(v, _)| v)
        .unwrap_or_default()
}

/// As [`expand_local`], with whether the limit cut the series, or why the rule is unusable.
pub fn try_expand(
    rule: &str,
    start: NaiveDateTime,
    until_offset: i64,
    after: NaiveDateTime,
    before: NaiveDateTime,
    limit: u16,
) -> Result<(Vec<NaiveDateTime>, bool), String> {
    use chrono::Datelike;
    if !YEARS.contains(&start.year()) || after > before {
        return Ok((Vec::new(), false));
    }
    let clamp = |t: NaiveDateTime| {
        let lo = chrono::NaiveDate::from_ymd_opt(*YEARS.start(), 1, 1)
            .map(|d| d.and_time(chrono::NaiveTime::MIN));
        let hi = chrono::NaiveDate::from_ymd_opt(*YEARS.end(), 12, 31)
            .map(|d| d.and_time(chrono::NaiveTime::MIN));
        match (lo, hi) {
            (Some(lo), Some(hi)) => t.clamp(lo, hi),
            _ => t,
        }
    };
    let (after, before) = (clamp(after), clamp(before));
    // UNTIL is read by us: a UTC UNTIL must move into wall-clock time like DTSTART did.
    let mut until = None;
    let mut parts = Vec::new();
    for part in rule.trim().split(';').filter(|p| !p.trim().is_empty()) {
        match part.split_once('=') {
            Some((k, v)) if k.trim().eq_ignore_ascii_case("UNTIL") => {
                until = Some(match parse_time(v) {
                    Some(TimeValue::Utc(t)) => t
                        .checked_add_signed(Duration::seconds(until_offset))
                        .ok_or("UNTIL out of range")?,
                    Some(TimeValue::Date(d)) => d.and_hms_opt(23, 59, 59).ok_or("bad UNTIL")?,
                    Some(TimeValue::Local(t)) => t,
                    None => return Err(format!("UNTIL={v} is not a date or date-time")),
                });
            }
            _ => parts.push(part),
        }
    }
    let parsed: RRule<Unvalidated> = parts
        .join(";")
        .parse()
        .map_err(|e| format!("RRULE:{rule} cannot be read: {e}"))?;
    let fake = |t: NaiveDateTime| Tz::UTC.from_utc_datetime(&t);
    let parsed = match until {
        Some(u) => parsed.until(fake(clamp(u))),
        None => parsed,
    };
    let set = parsed
        .build(fake(start))
        .map_err(|e| format!("RRULE:{rule} is not valid: {e}"))?
        .after(fake(after))
        .before(fake(before));
    let result = set.all(limit);
    Ok((
        result.dates.iter().map(|d| d.naive_utc()).collect(),
        result.limited,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
    }

    #[test]
    fn weekly_within_bounds() {
        let v = expand_local(
            "FREQ=WEEKLY;COUNT=10",
            t("2026-03-02 09:00"),
            0,
            t("2026-03-10 00:00"),
            t("2026-03-24 00:00"),
            100,
        );
        assert_eq!(v, vec![t("2026-03-16 09:00"), t("2026-03-23 09:00")]);
    }

    #[test]
    fn utc_until_is_moved_to_wall_clock() {
        // Berlin summer time is +2: UNTIL 07:00Z is 09:00 local, so the 09:00 occurrence counts.
        let v = expand_local(
            "FREQ=DAILY;UNTIL=20260603T070000Z",
            t("2026-06-01 09:00"),
            7200,
            t("2026-01-01 00:00"),
            t("2027-01-01 00:00"),
            100,
        );
        assert_eq!(v.len(), 3);
    }

    #[test]
    fn nonsense_is_an_error_not_a_panic() {
        assert!(try_expand(
            "FREQ=SOMETIMES",
            t("2026-06-01 09:00"),
            0,
            t("2026-01-01 00:00"),
            t("2027-01-01 00:00"),
            10
        )
        .is_err());
        assert!(try_expand(
            "FREQ=DAILY;UNTIL=x",
            t("2026-06-01 09:00"),
            0,
            t("2026-01-01 00:00"),
            t("2027-01-01 00:00"),
            10
        )
        .is_err());
    }
}
