//! Text as mail shows it turned into typed values: amounts into integer minor units, dates with
//! a zone into UTC instants.

use std::sync::LazyLock;

use chrono::format::{self, Item, Parsed, StrftimeItems};
use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};

/// Decimal places of a currency's minor unit: the one ISO 4217 table, [`crate::money::exponent`].
pub fn minor_digits(currency: &str) -> u32 {
    crate::money::exponent(currency)
}

/// Currency symbols that name one currency in practice. "$" alone is taken as USD and "¥" as
/// JPY; a mapping whose mail means otherwise captures the code in a `currency` group.
fn symbol_currency(s: &str) -> Option<&'static str> {
    Some(match s {
        "€" => "EUR",
        "£" => "GBP",
        "$" | "US$" => "USD",
        "¥" | "￥" => "JPY",
        "₩" => "KRW",
        "₹" => "INR",
        "CHF" => "CHF",
        "A$" => "AUD",
        "C$" | "CA$" => "CAD",
        "R$" => "BRL",
        "zł" => "PLN",
        _ => return None,
    })
}

/// An amount as text ("EUR 1,234.56", "€1,192.00", "1.234,56 €", "¥12,300", "12300 JPY", "192")
/// with a currency either written in it or given, as exact minor units. `None` when no currency
/// is known or the digits do not fit the currency's minor unit.
pub fn parse_money(text: &str, currency: Option<&str>) -> Option<(i64, String)> {
    let text = text.trim();
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let end = text.rfind(|c: char| c.is_ascii_digit())? + 1;
    let (before, number, after) = (&text[..start], &text[start..end], &text[end..]);
    let negative = before.contains(['-', '−']);
    let written = [before, after]
        .into_iter()
        .map(|s| s.trim().trim_matches('-').trim())
        .find(|s| !s.is_empty());
    let code = match (currency.map(str::trim).filter(|c| !c.is_empty()), written) {
        (Some(c), _) => c.to_ascii_uppercase(),
        (None, Some(w)) if w.len() == 3 && w.chars().all(|c| c.is_ascii_alphabetic()) => {
            w.to_ascii_uppercase()
        }
        (None, Some(w)) => symbol_currency(w)?.to_string(),
        (None, None) => return None,
    };
    if code.len() != 3 || !code.chars().all(|c| c.is_ascii_uppercase()) {
        return None;
    }
    let digits = minor_digits(&code);
    let minor = parse_decimal(number, digits)?;
    Some((if negative { -minor } else { minor }, code))
}

/// "1,234.56", "1.234,56", "12 300", "12,300" as an integer count of 10^-digits units, without
/// going through floating point.
fn parse_decimal(number: &str, digits: u32) -> Option<i64> {
    if !number
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ',' | '.' | ' ' | '\u{a0}' | '\u{202f}' | '\''))
    {
        return None;
    }
    // The decimal separator is the last '.' or ',' when digits follow it in a number that can
    // have them: two of them ("1,234.56") make the last one decimal; one alone is decimal unless
    // exactly three digits follow it and the currency has no three-digit minor unit ("12,300").
    let last_sep = number.rfind(['.', ',']);
    let (int_part, frac_part) = match last_sep {
        Some(i) => {
            let frac = &number[i + 1..];
            let sep = &number[i..i + 1];
            let other = if sep == "." { ',' } else { '.' };
            let both = number[..i].contains(other);
            let repeated = number[..i].contains(sep);
            let grouping = !both && (repeated || (frac.len() == 3 && digits != 3));
            if grouping {
                (number, "")
            } else {
                (&number[..i], frac)
            }
        }
        None => (number, ""),
    };
    let int_digits: String = int_part.chars().filter(char::is_ascii_digit).collect();
    let frac_digits: String = frac_part.chars().filter(char::is_ascii_digit).collect();
    if int_digits.is_empty() && frac_digits.is_empty() {
        return None;
    }
    let frac_len = frac_digits.len() as u32;
    let frac_value = if frac_len > digits {
        // More decimals than the currency has: exact only when the extra ones are zeros.
        let (kept, extra) = frac_digits.split_at(digits as usize);
        if !extra.chars().all(|c| c == '0') {
            return None;
        }
        kept.parse::<i64>().unwrap_or(0)
    } else if frac_digits.is_empty() {
        0
    } else {
        frac_digits.parse::<i64>().ok()? * 10i64.checked_pow(digits - frac_len)?
    };
    let int_value = if int_digits.is_empty() {
        0
    } else {
        int_digits.parse::<i64>().ok()?
    };
    int_value
        .checked_mul(10i64.checked_pow(digits)?)?
        .checked_add(frac_value)
}

/// Zone abbreviations that mail templates print after a local time, with their offsets. Only
/// the unambiguous common ones: "IST" or "CST" could be several places and are not guessed.
fn zone_abbreviation(s: &str) -> Option<i32> {
    let hours = match s {
        "UTC" | "GMT" | "UT" | "Z" | "WET" => 0,
        "WEST" | "BST" | "CET" => 1,
        "CEST" | "EET" | "SAST" => 2,
        "EEST" | "MSK" => 3,
        "EDT" => -4,
        "EST" | "CDT" => -5,
        "CST" => return None,
        "MDT" => -6,
        "MST" | "PDT" => -7,
        "PST" => -8,
        "JST" | "KST" => 9,
        "AEST" => 10,
        "AEDT" => 11,
        _ => return None,
    };
    Some(hours * 3600)
}

/// Formats of a local date and time in mail bodies, after the zone is taken off the end.
const LOCAL_FORMATS: &[&str] = &[
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%d/%m/%Y %H:%M",
    "%d.%m.%Y %H:%M",
    "%a %d %b %Y, %H:%M",
    "%a %d %b %Y %H:%M",
    "%a, %d %b %Y %H:%M",
    "%a, %d %b %Y %H:%M:%S",
    "%d %b %Y %H:%M",
    "%d %b %Y, %H:%M",
    "%B %d, %Y at %I:%M %p",
    "%B %d, %Y %I:%M %p",
    "%b %d, %Y at %I:%M %p",
    "%B %d, %Y at %H:%M",
    "%B %d, %Y %H:%M",
];

/// [`LOCAL_FORMATS`] taken apart once: `NaiveDateTime::parse_from_str` would take its format
/// apart again for every try, and a booking mail tries several formats for each of its dates.
static LOCAL_ITEMS: LazyLock<Vec<Vec<Item<'static>>>> = LazyLock::new(|| {
    LOCAL_FORMATS
        .iter()
        .map(|f| StrftimeItems::new(f).parse().expect("a valid format"))
        .collect()
});

/// `NaiveDateTime::parse_from_str` with a format already taken apart.
fn parse_local(text: &str, items: &[Item<'static>]) -> Option<NaiveDateTime> {
    let mut parsed = Parsed::new();
    format::parse(&mut parsed, text, items.iter()).ok()?;
    parsed.to_naive_datetime_with_offset(0).ok()
}

/// A date and time with a zone ("2026-09-14 10:00 +01:00", "Mon 14 Sep 2026, 10:00 WEST",
/// "14/09/2026 10:00 (UTC+01:00)", RFC 3339, RFC 2822) as a UTC instant. `None` without a zone:
/// a local time alone does not say when something happened.
pub fn parse_instant(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_rfc2822(text) {
        return Some(t.with_timezone(&Utc));
    }
    let (local, offset) = split_zone(text)?;
    let local = local.trim().trim_end_matches(',').trim();
    let offset = FixedOffset::east_opt(offset)?;
    LOCAL_ITEMS.iter().find_map(|items| {
        let naive = parse_local(local, items)?;
        offset
            .from_local_datetime(&naive)
            .single()
            .map(|t| t.with_timezone(&Utc))
    })
}

/// Takes the zone off the end of a date: "+01:00", "+0100", "(UTC+01:00)", "UTC+1", "WEST".
fn split_zone(text: &str) -> Option<(&str, i32)> {
    let (rest, last) = match text.rfind([' ', '(']) {
        Some(i) => (&text[..i], text[i..].trim_start_matches([' ', '('])),
        None => return None,
    };
    let zone = last.trim_end_matches(')');
    if let Some(secs) = zone_abbreviation(zone) {
        return Some((rest, secs));
    }
    let signed = zone
        .strip_prefix("UTC")
        .or_else(|| zone.strip_prefix("GMT"))
        .unwrap_or(zone);
    let sign = match signed.chars().next()? {
        '+' => 1,
        '-' | '−' => -1,
        _ => return None,
    };
    let digits: String = signed.chars().filter(char::is_ascii_digit).collect();
    let (h, m) = match digits.len() {
        1 | 2 => (digits.parse::<i32>().ok()?, 0),
        3 | 4 => (
            digits[..digits.len() - 2].parse::<i32>().ok()?,
            digits[digits.len() - 2..].parse::<i32>().ok()?,
        ),
        _ => return None,
    };
    (h <= 14 && m < 60).then_some((rest, sign * (h * 3600 + m * 60)))
}

/// The envelope's date ("Thu Aug 22 12:36:23 2002", asctime, in the delivering host's clock,
/// taken as UTC since the envelope does not say), for mail whose Date header is missing or
/// broken.
pub fn parse_envelope_date(envelope: &str) -> Option<DateTime<Utc>> {
    let words: Vec<&str> = envelope.split_whitespace().collect();
    // asctime: the last four words after the weekday, which is left out because senders get it
    // wrong ("Sun Aug 5 2002" was a Monday).
    if words.len() >= 4 {
        let tail = words[words.len() - 4..].join(" ");
        if let Ok(t) = NaiveDateTime::parse_from_str(&tail, "%b %d %H:%M:%S %Y") {
            return Some(Utc.from_utc_datetime(&t));
        }
    }
    // RFC 2822, as some delivery agents write it.
    if words.len() >= 6 {
        let tail = words[words.len() - 6..].join(" ");
        if let Ok(t) = DateTime::parse_from_rfc2822(&tail) {
            return Some(t.with_timezone(&Utc));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(text: &str) -> Option<(i64, String)> {
        parse_money(text, None)
    }

    #[test]
    fn money_in_the_shapes_mail_shows() {
        let eur = |n| Some((n, "EUR".to_string()));
        assert_eq!(m("EUR 192.00"), eur(19200));
        assert_eq!(m("€1,192.00"), eur(119200));
        assert_eq!(m("1.234,56 €"), eur(123456));
        assert_eq!(m("192,5 €"), eur(19250));
        assert_eq!(m("1,234 EUR"), eur(123400));
        assert_eq!(m("¥12,300"), Some((12300, "JPY".into())));
        assert_eq!(m("JPY 12300"), Some((12300, "JPY".into())));
        assert_eq!(m("12300 JPY"), Some((12300, "JPY".into())));
        assert_eq!(m("KWD 1.250"), Some((1250, "KWD".into())));
        assert_eq!(m("-$5.00"), Some((-500, "USD".into())));
        assert_eq!(parse_money("192", Some("gbp")), Some((19200, "GBP".into())));
        assert_eq!(m("192.00"), None, "no currency");
        assert_eq!(m("JPY 12.5"), None, "yen have no decimals");
        assert_eq!(
            m("EUR 1.999"),
            Some((199900, "EUR".into())),
            "a thousands dot"
        );
        assert_eq!(m("EUR 99999999999999999999"), None);
    }

    #[test]
    fn instants_with_zones() {
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let want = Some(t("2026-09-14T09:00:00Z"));
        assert_eq!(parse_instant("2026-09-14T10:00:00+01:00"), want);
        assert_eq!(parse_instant("Mon 14 Sep 2026, 10:00 WEST"), want);
        assert_eq!(parse_instant("14/09/2026 10:00 (UTC+01:00)"), want);
        assert_eq!(parse_instant("2026-09-14 10:00 +01:00"), want);
        assert_eq!(parse_instant("September 14, 2026 at 10:00 AM WEST"), want);
        assert_eq!(parse_instant("September 14, 2026 at 6:00 PM JST"), want);
        assert_eq!(parse_instant("2026-09-14 10:00"), None);
        assert_eq!(parse_instant("soon"), None);
    }

    #[test]
    fn formats_taken_apart_once_read_as_chrono_reads_them() {
        let samples = [
            "2026-09-14 10:00:30",
            "2026-09-14T10:00",
            "14.09.2026 10:00",
            "Mon 14 Sep 2026, 10:00",
            "September 14, 2026 at 6:00 PM",
            "14 Sep 2026 10:00 extra",
            "",
        ];
        for (format, items) in LOCAL_FORMATS.iter().zip(LOCAL_ITEMS.iter()) {
            for s in samples {
                assert_eq!(
                    parse_local(s, items),
                    NaiveDateTime::parse_from_str(s, format).ok(),
                    "{s:?} as {format}"
                );
            }
        }
    }

    #[test]
    fn envelope_dates() {
        assert_eq!(
            parse_envelope_date("a@b.example  Thu Aug 22 12:36:23 2002"),
            Some("2002-08-22T12:36:23Z".parse().unwrap())
        );
        assert_eq!(
            parse_envelope_date("x@[1] [ufa]  Sun Aug  5 09:46:38 2002"),
            Some("2002-08-05T09:46:38Z".parse().unwrap())
        );
        assert_eq!(parse_envelope_date("nobody"), None);
    }
}
