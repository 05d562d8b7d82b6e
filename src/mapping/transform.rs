//! What a mapping's transforms do to an evidence value before it goes into a column.
//!
//! The output is typed for the column, so that planning can bind it as a parameter in the
//! database's own convention: integers, exact decimals, instants (UTC) or wall-clock times in the
//! mapping's zone, dates, text.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use super::Transform;
use crate::evidence::Value;

/// A value ready for a column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ColumnValue {
    Text(String),
    Int(i64),
    /// An exact decimal as text ("289.50"), never a float.
    Decimal(String),
    /// An instant, for columns that store one (timestamptz, or UTC by convention).
    Instant(DateTime<Utc>),
    /// Wall-clock time in the mapping's zone, for columns without one.
    WallClock(NaiveDateTime),
    Date(NaiveDate),
}

impl std::fmt::Display for ColumnValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ColumnValue::Text(s) | ColumnValue::Decimal(s) => f.write_str(s),
            ColumnValue::Int(i) => write!(f, "{i}"),
            ColumnValue::Instant(t) => write!(f, "{}", t.format("%Y-%m-%dT%H:%M:%SZ")),
            ColumnValue::WallClock(t) => write!(f, "{}", t.format("%Y-%m-%d %H:%M:%S")),
            ColumnValue::Date(d) => write!(f, "{d}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("transform {transform} cannot use {value}: {why}")]
pub struct TransformError {
    pub transform: &'static str,
    pub value: String,
    pub why: &'static str,
}

/// Applies `t` to `v`. `zone` is the column's zone from the mapping: instants become wall-clock
/// time there; without one they stay instants (UTC).
pub fn apply(
    t: Transform,
    v: &Value,
    zone: Option<chrono_tz::Tz>,
) -> Result<ColumnValue, TransformError> {
    let fail = |why| TransformError {
        transform: t.as_str(),
        value: v.to_string(),
        why,
    };
    let text = || match v {
        Value::Text(s) => Ok(s.trim().to_string()),
        Value::Int(i) => Ok(i.to_string()),
        _ => Err(fail("it is not text")),
    };
    Ok(match t {
        Transform::Text => ColumnValue::Text(text()?),
        Transform::Upper => ColumnValue::Text(text()?.to_uppercase()),
        Transform::Email => {
            let e = text()?.to_lowercase();
            let (local, domain) = e.split_once('@').ok_or_else(|| fail("it has no @"))?;
            if local.is_empty() || !domain.contains('.') || e.contains(char::is_whitespace) {
                return Err(fail("it is not an email address"));
            }
            ColumnValue::Text(e)
        }
        Transform::Phone => ColumnValue::Text(phone(&text()?)),
        Transform::Name => ColumnValue::Text(tidy_name(&text()?)),
        Transform::FirstName => ColumnValue::Text(split_name(&tidy_name(&text()?)).0),
        Transform::LastName => {
            let family = split_name(&tidy_name(&text()?)).1;
            if family.is_empty() {
                // One word is a given name: there is no family name to write, not an empty one.
                return Err(fail("it is one word, with no family name"));
            }
            ColumnValue::Text(family)
        }
        Transform::Minor => match v {
            Value::Money { minor, .. } => ColumnValue::Int(*minor),
            Value::Int(i) => ColumnValue::Int(*i),
            _ => return Err(fail("it is not an amount of money")),
        },
        Transform::Decimal => match v {
            Value::Money { minor, currency } => {
                ColumnValue::Decimal(decimal(*minor, crate::money::exponent(currency)))
            }
            _ => return Err(fail("it is not an amount of money")),
        },
        Transform::Currency => match v {
            Value::Money { currency, .. } => ColumnValue::Text(currency.to_ascii_uppercase()),
            _ => return Err(fail("it is not an amount of money")),
        },
        Transform::Time => match (v, zone) {
            (Value::Time(t), None) => ColumnValue::Instant(*t),
            (Value::Time(t), Some(z)) => ColumnValue::WallClock(t.with_timezone(&z).naive_local()),
            _ => return Err(fail("it is not a time")),
        },
        Transform::Date => match v {
            Value::Date(d) => ColumnValue::Date(*d),
            Value::Time(t) => ColumnValue::Date(match zone {
                Some(z) => t.with_timezone(&z).date_naive(),
                None => t.date_naive(),
            }),
            _ => return Err(fail("it is not a date or time")),
        },
    })
}

/// Minor units as an exact decimal with `exponent` digits after the point.
fn decimal(minor: i64, exponent: u32) -> String {
    if exponent == 0 {
        return minor.to_string();
    }
    let sign = if minor < 0 { "-" } else { "" };
    let digits = minor.unsigned_abs().to_string();
    let e = exponent as usize;
    let padded = format!("{digits:0>width$}", width = e + 1);
    let (int, frac) = padded.split_at(padded.len() - e);
    format!("{sign}{int}.{frac}")
}

/// A number written with its country code ("+44 20 7946 0958", "0044 …") becomes E.164
/// ("+442079460958"); one without it cannot be placed in a country here and is kept as written.
fn phone(s: &str) -> String {
    let t = s.trim();
    let international = t.starts_with('+') || t.starts_with("00");
    let only_formatting = t
        .chars()
        .all(|c| c.is_ascii_digit() || " +-.()/\u{a0}".contains(c));
    if international {
        // libphonenumber's rules (through the phonenumber crate) know each country's trunk
        // prefix: "+44 (0)20 7946 0958" is +442079460958.
        let plus = match t.strip_prefix("00") {
            Some(rest) => format!("+{rest}"),
            None => t.to_string(),
        };
        if let Ok(n) = phonenumber::parse(None, &plus) {
            if phonenumber::is_valid(&n) {
                return n.format().mode(phonenumber::Mode::E164).to_string();
            }
        }
    }
    if international && only_formatting {
        // A number libphonenumber does not know (a new range, a fictional one) keeps its digits,
        // less a trunk prefix written in brackets: "+44 (0)7700 900123" is +447700900123, never
        // +4407700900123.
        let digits: String = t
            .replacen("(0)", "", 1)
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        let national = digits.strip_prefix("00").filter(|_| !t.starts_with('+'));
        let d = national.unwrap_or(&digits);
        if (8..=15).contains(&d.len()) {
            return format!("+{d}");
        }
    }
    t.to_string()
}

/// A number written without its country code ("933 771 898", "0152 23314683"), read in the
/// region (ISO 3166 alpha-2) that something else about its owner names: E.164 when the region's
/// rules make a valid number of it, else nothing. A number with its country code is not this
/// function's business.
pub fn phone_in_region(s: &str, region: &str) -> Option<String> {
    let t = s.trim();
    if t.starts_with('+') || t.starts_with("00") {
        return None;
    }
    let id: phonenumber::country::Id = region.trim().to_ascii_uppercase().parse().ok()?;
    let n = phonenumber::parse(Some(id), t).ok()?;
    phonenumber::is_valid(&n).then(|| n.format().mode(phonenumber::Mode::E164).to_string())
}

/// Spaces collapsed; a name written all in capitals or all in lower case gets capitals at word
/// starts ("ANN  LEE" → "Ann Lee"); anything else is kept as its owner wrote it.
fn tidy_name(s: &str) -> String {
    let collapsed = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let letters = collapsed.chars().filter(|c| c.is_alphabetic());
    let upper = letters.clone().all(char::is_uppercase);
    let lower = letters.clone().all(char::is_lowercase);
    if !(upper || lower) {
        return collapsed;
    }
    let mut out = String::with_capacity(collapsed.len());
    let mut start = true;
    for c in collapsed.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.extend(c.to_lowercase());
        }
        start = c.is_whitespace() || c == '-' || c == '\'';
    }
    out
}

/// (given names, family name): "Lee, Ann" and "Ann Lee" alike. A single word is a given name.
fn split_name(s: &str) -> (String, String) {
    if let Some((family, given)) = s.split_once(',') {
        return (given.trim().to_string(), family.trim().to_string());
    }
    match s.rsplit_once(' ') {
        Some((given, family)) => (given.to_string(), family.to_string()),
        None => (s.to_string(), String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(minor: i64, currency: &str) -> Value {
        Value::Money {
            minor,
            currency: currency.into(),
        }
    }

    fn text(t: Transform, s: &str) -> String {
        apply(t, &Value::text(s), None).unwrap().to_string()
    }

    #[test]
    fn money_exactly() {
        let d = |m, c| apply(Transform::Decimal, &money(m, c), None).unwrap();
        assert_eq!(d(28950, "EUR"), ColumnValue::Decimal("289.50".into()));
        assert_eq!(d(5, "EUR"), ColumnValue::Decimal("0.05".into()));
        assert_eq!(d(-1234, "USD"), ColumnValue::Decimal("-12.34".into()));
        assert_eq!(d(12000, "JPY"), ColumnValue::Decimal("12000".into()));
        assert_eq!(d(1500, "KWD"), ColumnValue::Decimal("1.500".into()));
        assert_eq!(
            apply(Transform::Minor, &money(12000, "JPY"), None).unwrap(),
            ColumnValue::Int(12000)
        );
        assert_eq!(
            apply(Transform::Currency, &money(1, "eur"), None).unwrap(),
            ColumnValue::Text("EUR".into())
        );
        assert!(apply(Transform::Minor, &Value::text("12"), None).is_err());
    }

    #[test]
    fn names() {
        assert_eq!(text(Transform::Name, "  ANN   LEE "), "Ann Lee");
        assert_eq!(text(Transform::Name, "jean-luc o'neil"), "Jean-Luc O'Neil");
        assert_eq!(
            text(Transform::Name, "Inês van der Berg"),
            "Inês van der Berg"
        );
        assert_eq!(text(Transform::FirstName, "Inês Maria Sousa"), "Inês Maria");
        assert_eq!(text(Transform::FirstName, "Madonna"), "Madonna");
        assert_eq!(text(Transform::LastName, "Inês Maria Sousa"), "Sousa");
        assert_eq!(text(Transform::LastName, "Sousa, Inês"), "Sousa");
        assert_eq!(text(Transform::FirstName, "Sousa, Inês"), "Inês");
        // One word has no family name: none is written, rather than an empty one.
        assert!(apply(Transform::LastName, &Value::text("Cher"), None).is_err());
    }

    #[test]
    fn emails_and_phones() {
        assert_eq!(
            text(Transform::Email, " Ann.Lee@Example.COM "),
            "ann.lee@example.com"
        );
        assert!(apply(Transform::Email, &Value::text("ann at example"), None).is_err());
        assert_eq!(text(Transform::Phone, "+44 20 7946 0958"), "+442079460958");
        assert_eq!(text(Transform::Phone, "0049 (30) 123-4567"), "+49301234567");
        assert_eq!(text(Transform::Phone, "020 7946 0958"), "020 7946 0958");
        assert_eq!(text(Transform::Phone, "+1 call me"), "+1 call me");
        assert_eq!(
            text(Transform::Phone, "+44 (0)20 7946 0958"),
            "+442079460958"
        );
        // Ofcom's drama range, which libphonenumber does not call valid: the bracketed trunk
        // zero still goes.
        assert_eq!(
            text(Transform::Phone, "+44 (0)7700 900123"),
            "+447700900123"
        );
        assert_eq!(
            text(Transform::Phone, "0044 (0)7700 900123"),
            "+447700900123"
        );
    }

    #[test]
    fn local_numbers_read_in_a_region() {
        for (written, region, e164) in [
            ("933 771 898", "PT", Some("+351933771898")),
            ("0152 23314683", "DE", Some("+4915223314683")),
            ("080-8622-2235", "JP", Some("+818086222235")),
            ("(212) 555-0368", "US", Some("+12125550368")),
            ("07911 123456", "gb", Some("+447911123456")),
            // Not a valid number in that region: left to a person.
            ("0152 23314683", "PT", None),
            ("12", "DE", None),
            ("933 771 898", "XX", None),
            // Already international.
            ("+351 933 771 898", "DE", None),
        ] {
            assert_eq!(
                phone_in_region(written, region).as_deref(),
                e164,
                "{written} in {region}"
            );
        }
    }

    #[test]
    fn times_in_the_columns_convention() {
        let t = Value::Time("2026-07-01T09:00:00Z".parse().unwrap());
        let lisbon: chrono_tz::Tz = "Europe/Lisbon".parse().unwrap();
        assert_eq!(
            apply(Transform::Time, &t, None).unwrap().to_string(),
            "2026-07-01T09:00:00Z"
        );
        assert_eq!(
            apply(Transform::Time, &t, Some(lisbon))
                .unwrap()
                .to_string(),
            "2026-07-01 10:00:00"
        );
        let late = Value::Time("2026-07-01T23:30:00Z".parse().unwrap());
        assert_eq!(
            apply(Transform::Date, &late, Some(lisbon))
                .unwrap()
                .to_string(),
            "2026-07-02"
        );
        assert!(apply(Transform::Time, &Value::text("soon"), None).is_err());
    }
}
