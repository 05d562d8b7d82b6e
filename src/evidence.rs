//! Evidence: one observation from one external record, in the shape every source produces and
//! matching consumes (SPEC §2).
//!
//! Sources know nothing of the database. They turn a Stripe object, a calendar event version, an
//! email or a CSV row into an [`Evidence`] with typed fields under well-known names ([`field`]),
//! and account for every input item through a [`Sink`]: evidence, or a [`Skip`] with a reason
//! (invariant 6).

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// Which kind of external record an item of evidence came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Stripe,
    Calendar,
    Mail,
    Csv,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Stripe => "stripe",
            SourceKind::Calendar => "calendar",
            SourceKind::Mail => "mail",
            SourceKind::Csv => "csv",
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an item came from, precisely enough for a person to find it again.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Provenance {
    pub source: SourceKind,
    /// The file (as given on the command line, joined with the path inside a folder) or the API
    /// endpoint.
    pub origin: String,
    /// Inside the origin: "line 12", "byte 1048576", "uid abc@x seq 2", "ch_123", "<id@host>".
    pub locator: String,
}

impl fmt::Display for Provenance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.source, self.origin, self.locator)
    }
}

/// A typed field value. Money is integer minor units plus an ISO currency code (invariant 10);
/// instants are UTC.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Value {
    Text(String),
    Int(i64),
    Bool(bool),
    Money {
        minor: i64,
        currency: String,
    },
    Time(DateTime<Utc>),
    /// An all-day date with no time of day.
    Date(NaiveDate),
}

impl Value {
    pub fn text(s: impl Into<String>) -> Value {
        Value::Text(s.into())
    }

    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_time(&self) -> Option<DateTime<Utc>> {
        match self {
            Value::Time(t) => Some(*t),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Text(s) => f.write_str(s),
            Value::Int(i) => write!(f, "{i}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Money { minor, currency } => write!(f, "{minor} {currency} (minor units)"),
            Value::Time(t) => write!(f, "{}", t.format("%Y-%m-%dT%H:%M:%SZ")),
            Value::Date(d) => write!(f, "{d}"),
        }
    }
}

/// Well-known field names, so that every source says the same thing the same way and mappings
/// can name them. Sources may add their own (`metadata.<key>` for Stripe metadata, a pattern's
/// capture names, `header.<name>`), which mappings can use just as well.
pub mod field {
    /// A human-readable booking or order reference.
    pub const BOOKING_CODE: &str = "booking_code";
    /// A person's full name as written (payer, attendee, addressee).
    pub const NAME: &str = "name";
    pub const EMAIL: &str = "email";
    pub const PHONE: &str = "phone";
    /// What was charged or booked, as [`super::Value::Money`].
    pub const AMOUNT: &str = "amount";
    /// What was refunded, as [`super::Value::Money`].
    pub const REFUNDED: &str = "amount_refunded";
    /// The source's own status word (succeeded, refunded, cancelled, confirmed…), lower case.
    pub const STATUS: &str = "status";
    /// When the record was made in its system (Stripe `created`, an email's Date, DTSTAMP).
    pub const CREATED: &str = "created";
    pub const REFUNDED_AT: &str = "refunded_at";
    pub const STARTS_AT: &str = "starts_at";
    pub const ENDS_AT: &str = "ends_at";
    pub const LOCATION: &str = "location";
    /// A vehicle's registration plate.
    pub const PLATE: &str = "plate";
    pub const DESCRIPTION: &str = "description";
    pub const STATEMENT_DESCRIPTOR: &str = "statement_descriptor";
    /// An id in the source's own system: a Stripe customer id, a calendar UID, a Message-ID.
    pub const CUSTOMER_ID: &str = "customer_id";
    pub const PAYMENT_INTENT_ID: &str = "payment_intent_id";
    pub const CHARGE_ID: &str = "charge_id";
    /// Message-IDs this message replies to or quotes (In-Reply-To and References), space-separated.
    pub const REFERENCES: &str = "references";
}

/// One observation from one external record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub provenance: Provenance,
    /// What the record is, in the source's terms: "charge", "refund", "event", "confirmation",
    /// "cancellation", "row"…
    pub kind: String,
    /// When the record says it was made or last changed; orders versions of the same thing.
    pub observed_at: Option<DateTime<Utc>>,
    pub fields: BTreeMap<String, Value>,
    /// Why this record may not change an existing row by itself (a mail from a sender the
    /// mapping does not trust, naming the sender): what rests on it alone goes to review.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub untrusted: Option<String>,
}

impl Evidence {
    pub fn new(provenance: Provenance, kind: impl Into<String>) -> Evidence {
        Evidence {
            provenance,
            kind: kind.into(),
            observed_at: None,
            fields: BTreeMap::new(),
            untrusted: None,
        }
    }

    /// Sets a field; empty text is not evidence of anything and is left out.
    pub fn set(&mut self, name: impl Into<String>, value: Value) -> &mut Self {
        if !matches!(&value, Value::Text(s) if s.trim().is_empty()) {
            self.fields.insert(name.into(), value);
        }
        self
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields.get(name)
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(Value::as_text)
    }

    /// A stable hash of what the evidence says (not where it was found), so that the same record
    /// reached two ways, or read twice, is recognised. FNV-1a over a canonical rendering: stable
    /// across runs and platforms, which std's hashers are not.
    pub fn content_hash(&self) -> String {
        let mut h = Fnv::new();
        h.write(self.provenance.source.as_str().as_bytes());
        h.write(self.kind.as_bytes());
        for (name, value) in &self.fields {
            h.write(name.as_bytes());
            h.write(serde_json::to_string(value).unwrap_or_default().as_bytes());
        }
        format!("{:016x}", h.0)
    }
}

/// A short, stable digest of bytes (FNV-1a, hex): the same on every run and platform, which
/// std's hashers are not. Not for secrets.
pub fn stable_hash(bytes: &[u8]) -> String {
    let mut h = Fnv::new();
    h.write(bytes);
    format!("{:016x}", h.0)
}

/// [`stable_hash`] of everything written, for content too large to hold at once (a plan).
pub struct StableHasher(u64);

impl StableHasher {
    pub fn new() -> StableHasher {
        StableHasher(Fnv::new().0)
    }

    /// The same digest `stable_hash` gives for all the bytes written, in one piece.
    pub fn finish(self) -> String {
        let mut h = Fnv(self.0);
        h.write(&[]);
        format!("{:016x}", h.0)
    }
}

impl Default for StableHasher {
    fn default() -> Self {
        StableHasher::new()
    }
}

impl std::io::Write for StableHasher {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for &b in buf {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        // A separator, so that ("ab","c") and ("a","bc") differ.
        self.0 ^= 0xff;
        self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
    }
}

/// An input item that gave no evidence, and why. Every item a source reads ends as evidence or as
/// a skip (invariant 6).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skip {
    pub provenance: Provenance,
    pub reason: SkipReason,
    /// For people: what exactly was wrong or why it is not relevant, and what to do if it matters.
    pub detail: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Read fine but not about bookings, customers or payments (spam, a team meeting).
    Irrelevant,
    /// Outside the gap window.
    OutsideWindow,
    /// The same record seen before (same Message-ID, same Stripe id, an older calendar version).
    Duplicate,
    /// Could not be read: a broken file, a malformed row, a truncated message.
    Malformed,
    /// An older copy of a record a newer copy replaces (a dump of a charge from before its
    /// refund, beside a later one).
    Superseded,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Irrelevant => "irrelevant",
            SkipReason::OutsideWindow => "outside the window",
            SkipReason::Duplicate => "duplicate",
            SkipReason::Malformed => "malformed",
            SkipReason::Superseded => "superseded",
        }
    }
}

/// Where a source puts what it reads. A callback rather than a returned Vec, so that a source can
/// stream a multi-gigabyte archive without holding it.
pub trait Sink {
    fn evidence(&mut self, evidence: Evidence);
    fn skip(&mut self, skip: Skip);
}

/// A sink that keeps everything, for tests and for inputs that fit in memory.
#[derive(Debug, Default)]
pub struct Collected {
    pub evidence: Vec<Evidence>,
    pub skipped: Vec<Skip>,
}

impl Sink for Collected {
    fn evidence(&mut self, evidence: Evidence) {
        self.evidence.push(evidence);
    }

    fn skip(&mut self, skip: Skip) {
        self.skipped.push(skip);
    }
}

impl Collected {
    /// How many skips there are for each reason.
    pub fn skip_counts(&self) -> BTreeMap<SkipReason, usize> {
        let mut counts = BTreeMap::new();
        for s in &self.skipped {
            *counts.entry(s.reason).or_insert(0) += 1;
        }
        counts
    }
}

/// The time window evidence is read for: [since, until). Either end may be open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

impl Window {
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u)
    }
}

/// The longest duration gapfill takes: a century is more than any backup gap, grace or
/// tolerance, and keeps every sum of a duration and a time far inside chrono's range.
pub const MAX_DURATION_DAYS: i64 = 36_525;

/// Parses durations such as "90m", "6h", "2d", "1w", of at most [`MAX_DURATION_DAYS`].
pub fn parse_duration(s: &str) -> Option<chrono::Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().ok()?;
    let d = match unit.trim() {
        "s" => chrono::Duration::try_seconds(n),
        "m" | "min" => chrono::Duration::try_minutes(n),
        "h" => chrono::Duration::try_hours(n),
        "d" => chrono::Duration::try_days(n),
        "w" => chrono::Duration::try_weeks(n),
        _ => None,
    }?;
    (d <= chrono::Duration::days(MAX_DURATION_DAYS)).then_some(d)
}

/// A window bound as people write it on a command line: an instant ("2026-06-16T02:00:00Z", with
/// any offset), a date or a time without an offset (UTC), or a duration back from `now` ("7d").
pub fn parse_bound(s: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Some(d) = parse_duration(s) {
        return now.checked_sub_signed(d);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// A named-capture regular expression from a mapping, compiled when the mapping is read, so that
/// a pattern that does not compile is an error located in the mapping file.
#[derive(Clone, Debug)]
pub struct Pattern(regex::Regex);

impl Pattern {
    pub fn new(source: &str) -> Result<Pattern, regex::Error> {
        regex::Regex::new(source).map(Pattern)
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn regex(&self) -> &regex::Regex {
        &self.0
    }

    /// The named groups that matched in `text` (first match), trimmed, empty ones left out.
    pub fn captures<'t>(&self, text: &'t str) -> Vec<(&str, &'t str)> {
        let Some(caps) = self.0.captures(text) else {
            return Vec::new();
        };
        self.0
            .capture_names()
            .flatten()
            .filter_map(|name| {
                let m = caps.name(name)?;
                let v = m.as_str().trim();
                (!v.is_empty()).then_some((name, v))
            })
            .collect()
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Pattern, D::Error> {
        let s = String::deserialize(d)?;
        Pattern::new(&s).map_err(|e| {
            serde::de::Error::custom(format!(
                "this pattern does not compile: {e}; fix the regular expression (Rust regex syntax, named groups as (?P<name>…))"
            ))
        })
    }
}

impl Serialize for Pattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn streamed_hash_is_the_hash_of_the_whole() {
        use std::io::Write;
        let mut h = StableHasher::new();
        h.write_all(b"hello ").unwrap();
        h.write_all(b"world").unwrap();
        assert_eq!(h.finish(), stable_hash(b"hello world"));
    }

    use super::*;

    fn prov() -> Provenance {
        Provenance {
            source: SourceKind::Csv,
            origin: "a.csv".into(),
            locator: "line 2".into(),
        }
    }

    #[test]
    fn content_hash_ignores_where_and_depends_on_what() {
        let mut a = Evidence::new(prov(), "row");
        a.set(field::EMAIL, Value::text("a@example.com"));
        let mut b = a.clone();
        b.provenance.locator = "line 9".into();
        assert_eq!(a.content_hash(), b.content_hash());
        b.set(field::EMAIL, Value::text("b@example.com"));
        assert_ne!(a.content_hash(), b.content_hash());
    }

    #[test]
    fn empty_text_is_not_set() {
        let mut e = Evidence::new(prov(), "row");
        e.set(field::NAME, Value::text("  "));
        assert!(e.fields.is_empty());
    }

    #[test]
    fn pattern_captures_named_groups() {
        let p =
            Pattern::new(r"Booking (?P<booking_code>[A-Z0-9-]+)(?: for (?P<name>.+))?").unwrap();
        assert_eq!(
            p.captures("Re: Booking GF-12AB for Ann Lee"),
            vec![("booking_code", "GF-12AB"), ("name", "Ann Lee")]
        );
        assert_eq!(p.captures("Booking GF-1"), vec![("booking_code", "GF-1")]);
        assert!(p.captures("nothing").is_empty());
    }

    #[test]
    fn bad_pattern_is_a_deserialize_error() {
        #[derive(Deserialize, Debug)]
        struct R {
            #[allow(dead_code)]
            p: Pattern,
        }
        let e = serde_json::from_str::<R>(r#"{"p":"(unclosed"}"#).unwrap_err();
        assert!(e.to_string().contains("does not compile"), "{e}");
    }

    #[test]
    fn bounds_as_people_write_them() {
        let now: DateTime<Utc> = "2026-11-22T12:00:00Z".parse().unwrap();
        let b = |s| parse_bound(s, now).map(|t| t.to_rfc3339());
        assert_eq!(b("7d").as_deref(), Some("2026-11-15T12:00:00+00:00"));
        assert_eq!(b("36h").as_deref(), Some("2026-11-21T00:00:00+00:00"));
        assert_eq!(
            b("2026-06-16").as_deref(),
            Some("2026-06-16T00:00:00+00:00")
        );
        assert_eq!(
            b("2026-06-16T04:00:00+02:00").as_deref(),
            Some("2026-06-16T02:00:00+00:00")
        );
        assert_eq!(
            b("2026-06-16 02:00:00").as_deref(),
            Some("2026-06-16T02:00:00+00:00")
        );
        assert_eq!(b("last week"), None);
    }

    #[test]
    fn window_is_half_open() {
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let w = Window {
            since: Some(t("2026-01-01T00:00:00Z")),
            until: Some(t("2026-02-01T00:00:00Z")),
        };
        assert!(w.contains(t("2026-01-01T00:00:00Z")));
        assert!(!w.contains(t("2026-02-01T00:00:00Z")));
        assert!(Window::default().contains(t("1999-01-01T00:00:00Z")));
    }
}
