//! Property values: DATE, DATE-TIME, UTC-OFFSET and DURATION, read leniently and without
//! panicking (chrono's checked constructors only).

use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime};

/// A DTSTART-like value as written, before any zone is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeValue {
    Date(NaiveDate),
    /// No zone written: floating, or to be read in the TZID parameter's zone.
    Local(NaiveDateTime),
    Utc(NaiveDateTime),
}

impl TimeValue {
    /// The wall-clock reading (midnight for a date).
    pub fn naive(self) -> NaiveDateTime {
        match self {
            TimeValue::Date(d) => d.and_time(NaiveTime::MIN),
            TimeValue::Local(t) | TimeValue::Utc(t) => t,
        }
    }
}

fn digits(s: &str, from: usize, len: usize) -> Option<u32> {
    let part = s.get(from..from + len)?;
    part.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| part.parse().ok())
        .flatten()
}

/// `20260314`, `20260314T093000`, `20260314T093000Z`; also `T0930` without seconds and a
/// lower-case `z`, which some exporters write.
pub fn parse_time(s: &str) -> Option<TimeValue> {
    let s = s.trim();
    let date =
        NaiveDate::from_ymd_opt(digits(s, 0, 4)? as i32, digits(s, 4, 2)?, digits(s, 6, 2)?)?;
    if s.len() == 8 {
        return Some(TimeValue::Date(date));
    }
    let rest = s.get(8..)?;
    let rest = rest.strip_prefix(['T', 't'])?;
    let (rest, utc) = match rest.strip_suffix(['Z', 'z']) {
        Some(r) => (r, true),
        None => (rest, false),
    };
    let sec = match rest.len() {
        6 => digits(rest, 4, 2)?,
        4 => 0,
        _ => return None,
    };
    // A leap second (60) is read as 59: the minute is what matters.
    let time = NaiveTime::from_hms_opt(digits(rest, 0, 2)?, digits(rest, 2, 2)?, sec.min(59))?;
    let t = date.and_time(time);
    Some(if utc {
        TimeValue::Utc(t)
    } else {
        TimeValue::Local(t)
    })
}

/// `+0100`, `-0500`, `+053045` (seconds, RFC 5545 allows them) → seconds east of UTC.
pub fn parse_offset(s: &str) -> Option<i64> {
    let s = s.trim();
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let h = digits(s, 1, 2)?;
    let m = digits(s, 3, 2)?;
    let sec = match s.len() {
        5 => 0,
        7 => digits(s, 5, 2)?,
        _ => return None,
    };
    if h > 23 || m > 59 || sec > 59 {
        return None;
    }
    Some(sign * i64::from(h * 3600 + m * 60 + sec))
}

/// `PT30M`, `P1D`, `P2W`, `-PT15M`, `P1DT2H` (RFC 5545 §3.3.6).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (sign, s) = match s.as_bytes().first()? {
        b'-' => (-1, &s[1..]),
        b'+' => (1, &s[1..]),
        _ => (1, s),
    };
    let s = s.strip_prefix(['P', 'p'])?;
    let mut total: i64 = 0;
    let mut num: Option<i64> = None;
    let mut in_time = false;
    let mut any = false;
    for c in s.chars() {
        match c.to_ascii_uppercase() {
            'T' => in_time = true,
            d @ '0'..='9' => {
                let v = num
                    .unwrap_or(0)
                    .checked_mul(10)?
                    .checked_add(i64::from(d as u8 - b'0'))?;
                num = Some(v);
            }
            unit => {
                let n = num.take()?;
                let secs = match (unit, in_time) {
                    ('W', false) => 7 * 86_400,
                    ('D', false) => 86_400,
                    ('H', true) => 3600,
                    ('M', true) => 60,
                    ('S', true) => 1,
                    _ => return None,
                };
                total = total.checked_add(n.checked_mul(secs)?)?;
                any = true;
            }
        }
    }
    if num.is_some() || !any {
        return None;
    }
    Duration::try_seconds(sign * total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert!(matches!(parse_time("20260314"), Some(TimeValue::Date(_))));
        assert_eq!(
            parse_time("20260314T093000Z")
                .map(TimeValue::naive)
                .unwrap()
                .to_string(),
            "2026-03-14 09:30:00"
        );
        assert!(matches!(
            parse_time("20260314T0930"),
            Some(TimeValue::Local(_))
        ));
        assert!(parse_time("20261314T093000").is_none());
        assert!(parse_time("2026-03-14").is_none());
        assert!(parse_time("20260314T9").is_none());
        assert!(parse_time("２０２６").is_none());
    }

    #[test]
    fn offsets_and_durations() {
        assert_eq!(parse_offset("+0100"), Some(3600));
        assert_eq!(parse_offset("-0530"), Some(-19_800));
        assert_eq!(parse_offset("+001730"), Some(1050));
        assert_eq!(parse_offset("0100"), None);
        assert_eq!(parse_duration("PT30M"), Some(Duration::minutes(30)));
        assert_eq!(parse_duration("P1DT2H"), Some(Duration::hours(26)));
        assert_eq!(parse_duration("-P1W"), Some(Duration::weeks(-1)));
        assert_eq!(parse_duration("P"), None);
        assert_eq!(parse_duration("PT5"), None);
        assert_eq!(parse_duration("P99999999999999999W"), None);
    }
}
