//! The mapping file: everything gapfill knows about one schema (SPEC §2, §5).
//!
//! A mapping names the entities to rebuild and their tables and keys, says where each column's
//! value comes from (evidence fields, constants, transforms, lookups), which evidence feeds which
//! entity, how to match, and which columns mark the restore point. The format is documented in
//! docs/mapping.md. Reading a mapping ([`Mapping::parse`]) checks its shape; [`check`] checks it
//! against a live schema. Both report problems located in the file.

pub mod check;
pub mod init;
pub mod project;
pub mod transform;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

/// A string with its place in the mapping file, for messages that point at it.
pub type Name = Spanned<String>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// The format version; 1 is the only one so far.
    pub version: Spanned<u32>,
    pub restore_point: RestorePoint,
    /// Source order per field when sources disagree; the first wins.
    #[serde(default)]
    pub precedence: Precedence,
    /// In the order rows must be inserted: referenced entities before those that reference them.
    pub entities: BTreeMap<Name, Entity>,
    /// Each source's own rules (patterns, senders, column names), read by that source.
    #[serde(default)]
    pub sources: SourceRules,
}

/// The `[sources.*]` tables. Each is the source's own rules type, so an unknown key or a pattern
/// that does not compile is reported at its place in the mapping.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceRules {
    #[serde(default)]
    pub stripe: crate::sources::stripe::StripeRules,
    #[serde(default)]
    pub calendar: crate::sources::calendar::CalendarRules,
    #[serde(default)]
    pub mail: crate::sources::mail::MailRules,
    #[serde(default)]
    pub csv: crate::sources::csv::CsvRules,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestorePoint {
    /// `table.column` timestamps; the newest value among them in the restored backup is taken as
    /// the moment the backup was made.
    pub columns: Vec<Name>,
    /// How far before the inferred restore point evidence is read, as a duration ("6h", "2d").
    #[serde(default)]
    pub overlap: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Precedence {
    /// Source kinds ("stripe", "mail", "calendar", "csv"), most trusted first.
    #[serde(default)]
    pub default: Vec<Name>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entity {
    pub table: Name,
    /// The primary key column.
    pub key: Name,
    /// How a new row gets its key.
    #[serde(default)]
    pub new_key: NewKey,
    /// Column sets that identify a row on their own (a booking code, an email). Matching blocks on
    /// them and an existing row with the same values is the same entity.
    #[serde(default)]
    pub natural_keys: Vec<Vec<Name>>,
    /// Which evidence feeds this entity: source kind → evidence kinds ("charge", "confirmation").
    #[serde(default)]
    pub feeds: BTreeMap<Name, Vec<Name>>,
    pub columns: BTreeMap<Name, ColumnMap>,
    #[serde(default, rename = "match")]
    pub matching: Option<MatchRules>,
}

impl Entity {
    /// The mapping of the column of this name.
    pub fn column(&self, name: &str) -> Option<&ColumnMap> {
        self.columns
            .iter()
            .find(|(k, _)| k.get_ref() == name)
            .map(|(_, c)| c)
    }
}

impl ColumnMap {
    /// Whether the column's values are times or dates.
    pub fn is_time(&self) -> bool {
        self.transform
            .as_ref()
            .is_some_and(|t| matches!(t.get_ref(), Transform::Time | Transform::Date))
    }
}

/// How a new row's key is made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NewKey {
    /// Left out of the insert: a sequence, identity, auto-increment or rowid fills it.
    #[default]
    Database,
    /// A UUID derived from the plan's content, so that the same plan gives the same keys.
    Uuid,
    /// One more than the largest key at apply time (integer keys without a sequence).
    Increment,
}

/// Where one column's value comes from. Exactly one of `from`, `value`, `entity`, `lookup` and
/// `generate` is given.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnMap {
    /// Evidence field names; the first one present in the best evidence wins.
    #[serde(default)]
    pub from: Option<OneOrMany>,
    /// A constant.
    #[serde(default)]
    pub value: Option<Spanned<toml::Value>>,
    /// A reference to the row of another entity (a foreign key).
    #[serde(default)]
    pub entity: Option<Name>,
    /// A lookup of an existing row's key by a value from evidence.
    #[serde(default)]
    pub lookup: Option<Lookup>,
    /// A value made at apply time.
    #[serde(default)]
    pub generate: Option<Spanned<Generate>>,
    #[serde(default)]
    pub transform: Option<Spanned<Transform>>,
    /// For `time` and `date` into columns without a zone: the IANA zone the column's wall-clock
    /// times are in. UTC when absent.
    #[serde(default)]
    pub zone: Option<Name>,
    /// For `time`: the evidence field naming the IANA zone of a wall-clock value written without
    /// an offset ("Return: 2026-08-31 14:00" in a desk calendar whose zone is Europe/Lisbon).
    #[serde(default)]
    pub zone_from: Option<Name>,
    /// For `phone`: the country (ISO 3166 code) of numbers written without their country code,
    /// when the business has customers from one country only.
    #[serde(default)]
    pub region: Option<Name>,
    /// For `phone`: where an item's evidence says the country of such numbers is, as a lookup
    /// whose `returns` is a country code (the country of the booking's location). The most
    /// named country among an entity's evidence wins; `region` is the fallback.
    #[serde(default)]
    pub region_from: Option<Lookup>,
    /// Database value → the evidence words that mean it (status vocabularies).
    #[serde(default)]
    pub values: Option<Spanned<BTreeMap<String, Vec<String>>>>,
    /// Source kinds, most trusted first, for this column only; sources it does not name give
    /// this column nothing (a payment's status is not the reservation's).
    #[serde(default)]
    pub precedence: Vec<Name>,
    /// Evidence kinds ("charge", "confirmation"), for this column only; other kinds give it
    /// nothing (a refund's `created` is not when the payment was made).
    #[serde(default)]
    pub kinds: Vec<Name>,
    /// How the value is chosen among the best source's statements: `latest` (the default for
    /// state: a modification overrides the confirmation), `earliest` (when something began),
    /// `vote` (the default for names, emails and phones: the most often written).
    #[serde(default)]
    pub pick: Option<Spanned<Pick>>,
    /// Set when a row is inserted, never changed on an existing row: the evidence's `created` is
    /// when the evidence was made, not when an existing row was.
    #[serde(default)]
    pub insert_only: bool,
    /// A status lifecycle: evidence value → the values a row moves on to without anyone writing
    /// about it (a confirmed booking becomes completed). A row already holding one of them is not
    /// contradicted by the older evidence, and is never set back.
    #[serde(default)]
    pub advances: Option<Spanned<BTreeMap<String, Vec<String>>>>,
    /// A status the row takes by itself once a time of the same row has passed: a confirmed
    /// rental whose return time is behind the newest evidence has been completed, whether or not
    /// a completion mail survived.
    #[serde(default)]
    pub when_past: Option<Spanned<WhenPast>>,
    /// For an amount that grows by events (a payment's refunded total): when the column's own
    /// evidence gives no total, the amounts of these items add to what the row held (refunds
    /// since the restore point onto the restored row's refunded total).
    #[serde(default)]
    pub adds: Option<Spanned<Adds>>,
    /// A payment's status from how much of it was refunded, when no evidence states the status
    /// but the refunded amount is known.
    #[serde(default)]
    pub by_amounts: Option<Spanned<ByAmounts>>,
    /// Written by `init`: a person has not confirmed this guess yet. `check` warns about each.
    #[serde(default)]
    pub guess: Option<Spanned<String>>,
}

/// `when_past = { column = "return_at", turns = { confirmed = "completed" }, grace = "2h" }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhenPast {
    /// The entity's time column whose passing changes the status.
    pub column: Name,
    /// Evidence value → the value it becomes once that time is past.
    pub turns: BTreeMap<String, String>,
    /// How long after that time the change is made (the desk closes a rental soon after the car
    /// is back); none when absent.
    #[serde(default)]
    pub grace: Option<Spanned<String>>,
    /// The rule may change an existing row's value without review (SPEC invariant 11: a value
    /// a rule infers never overwrites a row by itself unless the mapping opts in). New rows take
    /// the value either way.
    #[serde(default)]
    pub auto: bool,
}

/// `adds = { from = "amount", kinds = ["refund"] }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Adds {
    /// The evidence field holding each item's amount.
    pub from: Name,
    /// The evidence kinds that add.
    pub kinds: Vec<Name>,
    /// The rule may change an existing row's value without review (SPEC invariant 11: a value
    /// a rule infers never overwrites a row by itself unless the mapping opts in). New rows take
    /// the value either way.
    #[serde(default)]
    pub auto: bool,
}

/// `by_amounts = { total = "amount_minor", part = "refunded_minor", none = "succeeded",
/// some = "partially_refunded", all = "refunded" }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ByAmounts {
    /// The column with the whole amount.
    pub total: Name,
    /// The column with the part of it (refunded).
    pub part: Name,
    /// The status when the part is zero, some of the total, all of it.
    pub none: String,
    pub some: String,
    pub all: String,
    /// The rule may change an existing row's value without review (SPEC invariant 11: a value
    /// a rule infers never overwrites a row by itself unless the mapping opts in). New rows take
    /// the value either way.
    #[serde(default)]
    pub auto: bool,
}

/// One evidence field name or several, most preferred first.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Fields {
    One(String),
    Many(Vec<String>),
    /// Per source kind: `{ calendar = "return_local", mail = "ends_at" }`, when the same fact has
    /// another field name in each source, or a field means something else in one of them (a
    /// calendar event's end is the pickup slot's, not the return). Sources not named give nothing.
    PerSource(BTreeMap<String, Box<Fields>>),
}

impl Fields {
    /// Every field named, for any source.
    pub fn names(&self) -> Vec<&str> {
        match self {
            Fields::One(n) => vec![n.as_str()],
            Fields::Many(v) => v.iter().map(String::as_str).collect(),
            Fields::PerSource(m) => {
                let mut all: Vec<&str> = Vec::new();
                for n in m.values().flat_map(|f| f.names()) {
                    if !all.contains(&n) {
                        all.push(n);
                    }
                }
                all
            }
        }
    }

    /// The fields to read from evidence of `source`, most preferred first.
    pub fn names_for(&self, source: &str) -> Vec<&str> {
        match self {
            Fields::PerSource(m) => m.get(source).map(|f| f.names()).unwrap_or_default(),
            other => other.names(),
        }
    }
}

/// Evidence field names with their place in the file. (Spans do not survive serde's untagged
/// enums, so the span is around the whole value.)
pub type OneOrMany = Spanned<Fields>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lookup {
    pub table: Name,
    /// Columns compared (normalised: case, spaces, accents) with the evidence value, in order.
    #[serde(rename = "match")]
    pub match_columns: Vec<Name>,
    /// The evidence field whose value is looked up.
    pub from: OneOrMany,
    /// The column returned; the table's primary key when absent.
    #[serde(default)]
    pub returns: Option<Name>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pick {
    Latest,
    /// The newest statement from any source; precedence only decides between statements of the
    /// same moment (a desk's later calendar edit over an older confirmation mail).
    Newest,
    Earliest,
    Vote,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Generate {
    /// The time of apply, in the column's convention.
    Now,
}

/// What is done to an evidence value before it goes into a column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    /// Trimmed text, as is.
    Text,
    /// Trimmed and lower-cased.
    Email,
    /// E.164 when written with its country code, else as written.
    Phone,
    /// A person's full name, tidied ("ANN  LEE" → "Ann Lee").
    Name,
    /// The given name(s) of a full name.
    FirstName,
    /// The family name of a full name.
    LastName,
    /// Money as integer minor units (cents; yen as they are).
    Minor,
    /// Money as an exact decimal in major units, scaled to the currency's exponent.
    Decimal,
    /// The ISO currency code of a money value.
    Currency,
    /// An instant in the column's convention (UTC, or wall-clock time in `zone`).
    Time,
    /// The calendar date of an instant, in `zone` (UTC when absent).
    Date,
    /// Upper-cased and trimmed (codes, plates).
    Upper,
}

impl Transform {
    /// How a person writes themselves: names, emails, phones. Such values are chosen by vote
    /// rather than recency, and never changed on an existing row without a person.
    pub fn describes_a_person(self) -> bool {
        matches!(
            self,
            Transform::Name
                | Transform::FirstName
                | Transform::LastName
                | Transform::Email
                | Transform::Phone
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Transform::Text => "text",
            Transform::Email => "email",
            Transform::Phone => "phone",
            Transform::Name => "name",
            Transform::FirstName => "first_name",
            Transform::LastName => "last_name",
            Transform::Minor => "minor",
            Transform::Decimal => "decimal",
            Transform::Currency => "currency",
            Transform::Time => "time",
            Transform::Date => "date",
            Transform::Upper => "upper",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchRules {
    /// Evidence field sets; two items are compared only when they agree on all fields of one set.
    pub blocking: Vec<Vec<Name>>,
    pub compare: Vec<Comparator>,
    /// At or above this probability a link is accepted without review.
    pub accept: Spanned<f64>,
    /// At or above this (and below `accept`) a link goes to review; below it, no link.
    pub review: Spanned<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Comparator {
    pub field: Name,
    pub method: Spanned<Method>,
    /// For `time`: how far apart two instants may be and still agree ("2h", "1d").
    #[serde(default)]
    pub within: Option<Spanned<String>>,
    /// For `amount`: the largest difference in minor units that still agrees.
    #[serde(default)]
    pub tolerance: Option<Spanned<i64>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Exact,
    Email,
    Phone,
    Name,
    Text,
    Time,
    Amount,
}

/// A problem in a mapping, located in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub severity: Severity,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}:{}: {sev}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("cannot read mapping {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

/// Turns byte offsets into 1-based line and column numbers.
#[derive(Debug, Clone)]
pub struct Locator {
    file: PathBuf,
    line_starts: Vec<usize>,
    text: String,
}

impl Locator {
    pub fn new(file: &Path, text: &str) -> Locator {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Locator {
            file: file.to_path_buf(),
            line_starts,
            text: text.to_string(),
        }
    }

    pub fn problem(&self, offset: usize, severity: Severity, message: String) -> Problem {
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts[line - 1];
        let column = self.text[start..offset.min(self.text.len())]
            .chars()
            .count()
            + 1;
        Problem {
            file: self.file.clone(),
            line,
            column,
            severity,
            message,
        }
    }
}

/// A mapping with where it came from, ready for checking and use.
#[derive(Debug)]
pub struct Loaded {
    pub mapping: Mapping,
    pub locator: Locator,
    /// A digest of the file's bytes, recorded in plans.
    pub hash: String,
}

impl Mapping {
    /// Reads and parses a mapping file; shape errors (unknown keys, wrong types, patterns that
    /// do not compile, contradictory thresholds) come back located.
    pub fn load(path: &Path) -> Result<Loaded, MappingError> {
        let text = std::fs::read_to_string(path).map_err(|source| MappingError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Mapping::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Loaded, MappingError> {
        let locator = Locator::new(path, text);
        let mapping: Mapping = toml::from_str(text).map_err(|e| {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            MappingError::Invalid(vec![locator.problem(
                offset,
                Severity::Error,
                e.message().trim().to_string(),
            )])
        })?;
        let problems = check::shape(&mapping, &locator);
        if problems.iter().any(|p| p.severity == Severity::Error) {
            return Err(MappingError::Invalid(problems));
        }
        Ok(Loaded {
            mapping,
            locator,
            hash: crate::evidence::stable_hash(text.as_bytes()),
        })
    }

    /// The entity of this name.
    pub fn entity(&self, name: &str) -> Option<&Entity> {
        self.entities
            .iter()
            .find(|(k, _)| k.get_ref() == name)
            .map(|(_, e)| e)
    }

    /// Entities in insertion order: an entity comes after every entity its columns reference.
    /// Ties keep the file's (alphabetical) order, so the order is stable.
    pub fn insertion_order(&self) -> Vec<&str> {
        let mut done: Vec<&str> = Vec::new();
        let names: Vec<&str> = self.entities.keys().map(|k| k.get_ref().as_str()).collect();
        while done.len() < names.len() {
            let before = done.len();
            for (name, e) in &self.entities {
                let name = name.get_ref().as_str();
                if done.contains(&name) {
                    continue;
                }
                let ready = e.columns.values().all(|c| {
                    c.entity.as_ref().is_none_or(|r| {
                        r.get_ref() == name
                            || done.contains(&r.get_ref().as_str())
                            || !names.contains(&r.get_ref().as_str())
                    })
                });
                if ready {
                    done.push(name);
                }
            }
            if done.len() == before {
                // A cycle; check() reports it. Keep the rest in file order.
                for n in &names {
                    if !done.contains(n) {
                        done.push(n);
                    }
                }
            }
        }
        done
    }
}

pub use crate::evidence::parse_duration;

/// The source kinds a mapping may name.
pub const SOURCE_KINDS: [&str; 4] = ["stripe", "calendar", "mail", "csv"];
