//! Generic tabular exports (`--csv PATH`): a spreadsheet of walk-in bookings, a point-of-sale
//! export, anything with a header row. The mapping's `[sources.csv]` table ([`CsvRules`]) says
//! which column is which evidence field, how its dates and amounts are written, and what a row
//! is. The Stripe dashboard exports are presets of the same reader (`stripe::dashboard`).
//!
//! Columns are found by header name, never by position, so a re-ordered or extended export still
//! reads. Columns the rules do not name are kept as `column.<header>` fields: nothing in a row is
//! thrown away. A row that cannot be read is a Malformed skip naming its line; the rest is read.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Deserialize;

use crate::evidence::{
    field, Evidence, Pattern, Provenance, Sink, Skip, SkipReason, SourceKind, Value, Window,
};

/// A pattern run over one evidence field; its named captures become evidence fields.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldPattern {
    /// The evidence field to read, e.g. "description".
    pub field: String,
    pub pattern: Pattern,
}

/// What the mapping says about a generic CSV export (`[sources.csv]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvRules {
    /// What a row is, in the evidence's `kind` ("row" when unset): "walk_in", "sale"…
    pub kind: Option<String>,
    /// Header (as written in the file, matched without regard to case or surrounding spaces) →
    /// evidence field name. Map a column to "id" to have repeated rows recognised as duplicates.
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    /// Fields holding money. Default: "amount" and "amount_refunded".
    pub money_fields: Option<Vec<String>>,
    /// Amounts are written in major units ("12.50") unless this is true (then "1250").
    #[serde(default)]
    pub minor_units: bool,
    /// "12,50" instead of "12.50"; thousands separators are dropped either way.
    #[serde(default)]
    pub decimal_comma: bool,
    /// The currency of every amount, when the file has no currency column (ISO code).
    pub currency: Option<String>,
    /// The header of the column that holds each row's currency.
    pub currency_column: Option<String>,
    /// Fields holding dates or times. Default: created, refunded_at, starts_at, ends_at.
    pub time_fields: Option<Vec<String>>,
    /// chrono formats tried in order after RFC 3339, e.g. "%d.%m.%Y %H:%M" or "%d/%m/%Y".
    /// A format without a time of day gives a date.
    #[serde(default)]
    pub time_formats: Vec<String>,
    /// The IANA zone of times written without an offset (UTC when unset).
    pub timezone: Option<String>,
    /// The time field that decides whether a row is inside the window ("created" when unset).
    /// Rows without it are kept.
    pub window_field: Option<String>,
    /// Field separator, "," when unset (";" and "\t" are common).
    pub delimiter: Option<char>,
    /// Status words as written → the word evidence should carry, e.g. "Bezahlt" = "succeeded".
    /// Matched without regard to case; words not listed are kept, in lower case.
    #[serde(default)]
    pub status_values: BTreeMap<String, String>,
    /// Patterns over fields (say, a booking code inside a free-text note).
    #[serde(default)]
    pub patterns: Vec<FieldPattern>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CsvError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the [sources.csv] rules are wrong: {0}")]
    Rules(String),
}

/// What a read saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CsvStats {
    pub files: usize,
    /// Data rows (the header excluded): each ended as evidence or as a skip.
    pub rows: usize,
    pub evidence: usize,
    pub skipped: usize,
}

/// Reads one CSV file or every `.csv` file in a folder (sorted, not recursive into hidden
/// folders). Err only when the path cannot be read at all.
pub fn read(
    path: &Path,
    rules: &CsvRules,
    window: &Window,
    sink: &mut dyn Sink,
) -> Result<CsvStats, CsvError> {
    let spec = Spec::from_rules(rules)?;
    let delimiter = delimiter_of(rules)?;
    let found = super::walk::files(path, &["csv", "tsv"]).map_err(|source| CsvError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut stats = CsvStats::default();
    let mut dedup = Dedup::new(sink);
    let sink: &mut dyn Sink = &mut dedup;
    for (at, why) in found.unreadable {
        sink.skip(Skip {
            provenance: prov(SourceKind::Csv, &at.display().to_string(), "file".into()),
            reason: SkipReason::Malformed,
            detail: why,
        });
        stats.skipped += 1;
    }
    for file in found.files {
        let origin = file.display().to_string();
        let reader = match std::fs::File::open(&file) {
            Ok(f) => f,
            Err(e) => {
                sink.skip(Skip {
                    provenance: prov(SourceKind::Csv, &origin, "file".into()),
                    reason: SkipReason::Malformed,
                    detail: format!("cannot open the file: {e}"),
                });
                stats.skipped += 1;
                continue;
            }
        };
        stats.files += 1;
        let delimiter = delimiter.unwrap_or_else(|| default_delimiter(&origin));
        let s = read_table(
            std::io::BufReader::new(reader),
            &origin,
            &spec,
            delimiter,
            window,
            sink,
        );
        stats.rows += s.rows;
        stats.evidence += s.evidence;
        stats.skipped += s.skipped;
    }
    // Rows recognised as repeats left as skips, not evidence.
    stats.evidence -= dedup.duplicates;
    stats.skipped += dedup.duplicates;
    Ok(stats)
}

/// The rules' delimiter, when they name one.
fn delimiter_of(rules: &CsvRules) -> Result<Option<u8>, CsvError> {
    match rules.delimiter {
        None => Ok(None),
        Some(c) if c.is_ascii() => Ok(Some(c as u8)),
        Some(c) => Err(CsvError::Rules(format!(
            "delimiter {c:?} is not a single ASCII character"
        ))),
    }
}

/// One file's content, named `name`, as [`read`] reads each file; for callers that hold the
/// bytes. Err only when the rules themselves are wrong.
pub fn read_bytes(
    name: &str,
    bytes: &[u8],
    rules: &CsvRules,
    window: &Window,
    sink: &mut dyn Sink,
) -> Result<CsvStats, CsvError> {
    let spec = Spec::from_rules(rules)?;
    let delimiter = delimiter_of(rules)?.unwrap_or_else(|| default_delimiter(name));
    let mut dedup = Dedup::new(sink);
    let s = read_table(bytes, name, &spec, delimiter, window, &mut dedup);
    Ok(CsvStats {
        files: 1,
        rows: s.rows,
        evidence: s.evidence - dedup.duplicates,
        skipped: s.skipped + dedup.duplicates,
    })
}

pub(crate) fn prov(source: SourceKind, origin: &str, locator: String) -> Provenance {
    Provenance {
        source,
        origin: origin.to_string(),
        locator,
    }
}

/// How a column's cells become a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cell {
    Text,
    Money,
    Time,
    Status,
}

/// A compiled reading of one kind of table, built from [`CsvRules`] or by a preset.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub source: SourceKind,
    pub kind: String,
    /// Header alternatives (lower case, trimmed) → field and how to read it. The first
    /// alternative present in a file wins.
    pub columns: Vec<(Vec<String>, String, Cell)>,
    pub currency: Option<String>,
    pub currency_columns: Vec<String>,
    pub minor_units: bool,
    pub decimal_comma: bool,
    pub time_formats: Vec<String>,
    pub zone: Tz,
    pub window_field: String,
    pub status_values: BTreeMap<String, String>,
    pub patterns: Vec<FieldPattern>,
    /// Headers ending in this (e.g. " (metadata)") become `metadata.<key>`.
    pub metadata_suffix: Option<&'static str>,
    /// Field-specific fix-ups after a row is read (derived status, ids).
    pub finish: Option<fn(&mut Evidence)>,
}

const DEFAULT_TIME_FORMATS: &[&str] = &[
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M:%S%.f",
];

impl Spec {
    fn from_rules(rules: &CsvRules) -> Result<Spec, CsvError> {
        let money: Vec<String> = rules
            .money_fields
            .clone()
            .unwrap_or_else(|| vec![field::AMOUNT.into(), field::REFUNDED.into()]);
        let times: Vec<String> = rules.time_fields.clone().unwrap_or_else(|| {
            vec![
                field::CREATED.into(),
                field::REFUNDED_AT.into(),
                field::STARTS_AT.into(),
                field::ENDS_AT.into(),
            ]
        });
        let zone = match &rules.timezone {
            None => Tz::UTC,
            Some(z) => z.parse::<Tz>().map_err(|_| {
                CsvError::Rules(format!(
                    "timezone {z:?} is not an IANA zone name (like \"Europe/Berlin\")"
                ))
            })?,
        };
        if let Some(c) = &rules.currency {
            if c.len() != 3 || !c.chars().all(|x| x.is_ascii_alphabetic()) {
                return Err(CsvError::Rules(format!(
                    "currency {c:?} is not a three-letter ISO code"
                )));
            }
        }
        let columns = rules
            .columns
            .iter()
            .map(|(header, name)| {
                let cell = if money.contains(name) {
                    Cell::Money
                } else if times.contains(name) {
                    Cell::Time
                } else if name == field::STATUS {
                    Cell::Status
                } else {
                    Cell::Text
                };
                (vec![norm(header)], name.clone(), cell)
            })
            .collect();
        let mut formats = rules.time_formats.clone();
        formats.extend(DEFAULT_TIME_FORMATS.iter().map(|s| s.to_string()));
        Ok(Spec {
            source: SourceKind::Csv,
            kind: rules.kind.clone().unwrap_or_else(|| "row".into()),
            columns,
            currency: rules.currency.as_ref().map(|c| c.to_ascii_uppercase()),
            currency_columns: rules.currency_column.iter().map(|c| norm(c)).collect(),
            minor_units: rules.minor_units,
            decimal_comma: rules.decimal_comma,
            time_formats: formats,
            zone,
            window_field: rules
                .window_field
                .clone()
                .unwrap_or_else(|| field::CREATED.into()),
            status_values: rules
                .status_values
                .iter()
                .map(|(k, v)| (norm(k), v.clone()))
                .collect(),
            patterns: rules.patterns.clone(),
            metadata_suffix: None,
            finish: None,
        })
    }
}

pub(crate) fn norm(header: &str) -> String {
    header.trim_start_matches('\u{feff}').trim().to_lowercase()
}

/// What each column of one file does, resolved once from its header row.
enum Role {
    Field(String, Cell),
    Currency,
    Metadata(String),
    Kept(String),
}

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct TableStats {
    pub rows: usize,
    pub evidence: usize,
    pub skipped: usize,
}

/// The separator a file uses unless rules say otherwise: tab for `.tsv`, comma for the rest.
pub(crate) fn default_delimiter(origin: &str) -> u8 {
    if origin.to_ascii_lowercase().ends_with(".tsv") {
        b'\t'
    } else {
        b','
    }
}

/// Reads one table. Never fails: a file that cannot be parsed at all is one Malformed skip.
pub(crate) fn read_table(
    input: impl std::io::Read,
    origin: &str,
    spec: &Spec,
    delimiter: u8,
    window: &Window,
    sink: &mut dyn Sink,
) -> TableStats {
    let mut stats = TableStats::default();
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(false)
        .from_reader(Lines::new(input));
    read_records(&mut rdr, origin, spec, window, sink, &mut stats);
    stats
}

/// Counts the lines of what passes through, so that a record's place is its line in the file.
/// The csv crate's own line count is one short after a CRLF line end (it takes the `\n` as the
/// start of the next record), so a record's line is found from its byte offset instead: one
/// plus the line ends before it, where a line end at the offset itself is the end of the line
/// before.
struct Lines<R> {
    inner: R,
    /// Bytes read so far.
    at: u64,
    /// Offsets of the `\n`s read and not yet passed by a record.
    ends: std::collections::VecDeque<u64>,
    /// How many `\n`s lie before the last record asked about.
    passed: u64,
}

impl<R> Lines<R> {
    fn new(inner: R) -> Self {
        Lines {
            inner,
            at: 0,
            ends: std::collections::VecDeque::new(),
            passed: 0,
        }
    }

    /// The line a record starting at byte `offset` is on; offsets only grow.
    fn line_of(&mut self, offset: u64) -> u64 {
        while self.ends.front().is_some_and(|&e| e <= offset) {
            self.ends.pop_front();
            self.passed += 1;
        }
        self.passed + 1
    }
}

impl<R: std::io::Read> std::io::Read for Lines<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for i in memchr::memchr_iter(b'\n', &buf[..n]) {
            self.ends.push_back(self.at + i as u64);
        }
        self.at += n as u64;
        Ok(n)
    }
}

fn read_records<R: std::io::Read>(
    rdr: &mut csv::Reader<Lines<R>>,
    origin: &str,
    spec: &Spec,
    window: &Window,
    sink: &mut dyn Sink,
    stats: &mut TableStats,
) {
    let headers = match rdr.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            stats.skipped += 1;
            sink.skip(Skip {
                provenance: prov(spec.source, origin, "line 1".into()),
                reason: SkipReason::Malformed,
                detail: format!(
                    "the header row cannot be read: {e}; nothing in this file was read"
                ),
            });
            return;
        }
    };
    let roles = roles(&headers, spec);
    let mut record = csv::StringRecord::new();
    loop {
        let line = rdr.position().line();
        match rdr.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                stats.rows += 1;
                let line = record
                    .position()
                    .map_or(line, |p| rdr.get_mut().line_of(p.byte()));
                let provenance = prov(spec.source, origin, format!("line {line}"));
                match row(&record, &headers, &roles, spec, provenance.clone()) {
                    Ok(ev) => {
                        let at = ev.get(&spec.window_field).and_then(window_instant(spec));
                        match at {
                            Some(t) if !window.contains(t) => {
                                stats.skipped += 1;
                                sink.skip(Skip {
                                    provenance,
                                    reason: SkipReason::OutsideWindow,
                                    detail: format!(
                                        "{} {} is outside the window",
                                        spec.window_field,
                                        Value::Time(t)
                                    ),
                                });
                            }
                            _ => {
                                stats.evidence += 1;
                                sink.evidence(ev);
                            }
                        }
                    }
                    Err(what) => {
                        stats.skipped += 1;
                        sink.skip(Skip {
                            provenance,
                            reason: SkipReason::Malformed,
                            detail: what,
                        });
                    }
                }
            }
            Err(e) => {
                stats.rows += 1;
                stats.skipped += 1;
                let at = e
                    .position()
                    .map_or(line, |p| rdr.get_mut().line_of(p.byte()));
                let detail = match e.kind() {
                    csv::ErrorKind::UnequalLengths {
                        expected_len, len, ..
                    } => format!(
                        "this row has {len} fields where the header has {expected_len}; check for an unquoted separator"
                    ),
                    csv::ErrorKind::Utf8 { .. } => {
                        "this row is not valid UTF-8; re-export the file as UTF-8".into()
                    }
                    _ => format!("this row cannot be read: {e}"),
                };
                sink.skip(Skip {
                    provenance: prov(spec.source, origin, format!("line {at}")),
                    reason: SkipReason::Malformed,
                    detail,
                });
                // An I/O error does not move the reader on; stop rather than loop.
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    break;
                }
            }
        }
    }
}

fn window_instant(spec: &Spec) -> impl Fn(&Value) -> Option<DateTime<Utc>> + '_ {
    move |v| match v {
        Value::Time(t) => Some(*t),
        Value::Date(d) => local_to_utc(d.and_hms_opt(0, 0, 0)?, spec.zone).ok(),
        _ => None,
    }
}

fn roles(headers: &csv::StringRecord, spec: &Spec) -> Vec<Role> {
    let normed: Vec<String> = headers.iter().map(norm).collect();
    // The first alternative present in the file wins, so a file that has both an old and a new
    // spelling takes the preferred one and keeps the other as a plain column.
    let mut chosen: BTreeMap<usize, (String, Cell)> = BTreeMap::new();
    for (alternatives, name, cell) in &spec.columns {
        if let Some(i) = alternatives
            .iter()
            .find_map(|a| normed.iter().position(|h| h == a))
        {
            chosen.entry(i).or_insert((name.clone(), *cell));
        }
    }
    let currency = spec
        .currency_columns
        .iter()
        .find_map(|a| normed.iter().position(|h| h == a));
    headers
        .iter()
        .enumerate()
        .map(|(i, h)| {
            if let Some((name, cell)) = chosen.get(&i) {
                return Role::Field(name.clone(), *cell);
            }
            if Some(i) == currency {
                return Role::Currency;
            }
            if let Some(suffix) = spec.metadata_suffix {
                let t = h.trim();
                if t.len() > suffix.len()
                    && t.to_lowercase().ends_with(&suffix.to_lowercase())
                    && t.is_char_boundary(t.len() - suffix.len())
                {
                    return Role::Metadata(t[..t.len() - suffix.len()].trim().to_string());
                }
            }
            Role::Kept(h.trim().to_string())
        })
        .collect()
}

fn row(
    record: &csv::StringRecord,
    headers: &csv::StringRecord,
    roles: &[Role],
    spec: &Spec,
    provenance: Provenance,
) -> Result<Evidence, String> {
    let mut ev = Evidence::new(provenance, spec.kind.clone());
    let currency = roles
        .iter()
        .zip(record.iter())
        .find_map(|(r, v)| matches!(r, Role::Currency).then(|| v.trim().to_ascii_uppercase()))
        .filter(|c| !c.is_empty())
        .or_else(|| spec.currency.clone());
    if let Some(c) = &currency {
        ev.set("currency", Value::text(c.clone()));
    }
    for ((role, value), header) in roles.iter().zip(record.iter()).zip(headers.iter()) {
        let value = value.trim();
        match role {
            Role::Currency => {}
            Role::Kept(h) => {
                ev.set(format!("column.{h}"), Value::text(value));
            }
            Role::Metadata(key) => {
                ev.set(format!("metadata.{key}"), Value::text(value));
            }
            Role::Field(..) if value.is_empty() => {}
            Role::Field(name, Cell::Text) => {
                ev.set(name.clone(), Value::text(value));
            }
            Role::Field(name, Cell::Status) => {
                let word = spec
                    .status_values
                    .get(&norm(value))
                    .cloned()
                    .unwrap_or_else(|| value.to_lowercase());
                ev.set(name.clone(), Value::text(word));
            }
            Role::Field(name, Cell::Money) => {
                let Some(cur) = &currency else {
                    return Err(format!(
                        "column {header:?} holds an amount ({value:?}) but the row has no currency; name a currency or currency_column in the rules"
                    ));
                };
                let minor = if spec.minor_units {
                    parse_minor(value)
                } else {
                    major_to_minor(value, cur, spec.decimal_comma)
                }
                .map_err(|e| format!("column {header:?}: {e}"))?;
                ev.set(
                    name.clone(),
                    Value::Money {
                        minor,
                        currency: cur.clone(),
                    },
                );
            }
            Role::Field(name, Cell::Time) => {
                let v = parse_time(value, &spec.time_formats, spec.zone)
                    .map_err(|e| format!("column {header:?}: {e}"))?;
                ev.set(name.clone(), v);
            }
        }
    }
    if let Some(t) = ev.get(field::CREATED).and_then(Value::as_time) {
        ev.observed_at = Some(t);
    }
    apply_patterns(&mut ev, &spec.patterns);
    if let Some(finish) = spec.finish {
        finish(&mut ev);
    }
    Ok(ev)
}

/// Runs each pattern over its field; captures fill fields that are not set yet, so a value the
/// record states outright is never overwritten by one guessed from free text.
pub(crate) fn apply_patterns(ev: &mut Evidence, patterns: &[FieldPattern]) {
    for p in patterns {
        let Some(text) = ev.text(&p.field).map(str::to_owned) else {
            continue;
        };
        for (name, value) in p.pattern.captures(&text) {
            if !ev.fields.contains_key(name) {
                ev.set(name.to_string(), Value::text(value));
            }
        }
    }
}

/// How many decimals a currency's minor unit has (ISO 4217, [`crate::money::exponent`]).
pub fn currency_exponent(currency: &str) -> u32 {
    crate::money::exponent(currency)
}

/// "1,234.50" EUR → 123450; "12000" JPY → 12000. Exact: the decimal string is read digit by
/// digit, never through a float. More decimals than the currency has are refused unless they
/// are zeros ("12.500" EUR is fine, "12.505" is not: that is not an amount Stripe can hold).
pub fn major_to_minor(text: &str, currency: &str, decimal_comma: bool) -> Result<i64, String> {
    let exp = currency_exponent(currency);
    let (dec, thousands): (char, &[char]) = if decimal_comma {
        (',', &['.', ' ', '\u{a0}', '\u{202f}', '\''])
    } else {
        ('.', &[',', ' ', '\u{a0}', '\u{202f}', '\''])
    };
    let t = text.trim();
    let (negative, t) = if let Some(inner) = t.strip_prefix('(').and_then(|s| s.strip_suffix(')')) {
        (true, inner.trim())
    } else if let Some(rest) = t.strip_prefix('-') {
        (true, rest.trim_start())
    } else {
        (false, t.strip_prefix('+').unwrap_or(t))
    };
    let (int_part, frac_part) = match t.split_once(dec) {
        Some((i, f)) => (i, f),
        None => (t, ""),
    };
    let int_digits: String = int_part
        .chars()
        .filter(|c| !thousands.contains(c))
        .collect();
    let bad = || format!("{text:?} is not an amount in {currency}");
    if int_digits.is_empty() && frac_part.is_empty() {
        return Err(bad());
    }
    if !int_digits.chars().all(|c| c.is_ascii_digit())
        || !frac_part.chars().all(|c| c.is_ascii_digit())
    {
        return Err(bad());
    }
    let frac = frac_part.as_bytes();
    let exp_us = exp as usize;
    if frac.len() > exp_us && frac[exp_us..].iter().any(|&b| b != b'0') {
        return Err(format!(
            "{text:?} has more decimals than {currency} has ({exp}); this is not an exact amount"
        ));
    }
    let too_big = || format!("{text:?} is too large an amount");
    let mut minor: i64 = 0;
    for b in int_digits.bytes() {
        minor = minor
            .checked_mul(10)
            .and_then(|m| m.checked_add(i64::from(b - b'0')))
            .ok_or_else(too_big)?;
    }
    for i in 0..exp_us {
        let digit = frac.get(i).map_or(0, |&b| i64::from(b - b'0'));
        minor = minor
            .checked_mul(10)
            .and_then(|m| m.checked_add(digit))
            .ok_or_else(too_big)?;
    }
    Ok(if negative { -minor } else { minor })
}

fn parse_minor(text: &str) -> Result<i64, String> {
    text.trim()
        .parse::<i64>()
        .map_err(|_| format!("{text:?} is not a whole number of minor units"))
}

fn local_to_utc(t: NaiveDateTime, zone: Tz) -> Result<DateTime<Utc>, String> {
    match zone.from_local_datetime(&t) {
        LocalResult::Single(x) => Ok(x.with_timezone(&Utc)),
        // A time written twice on the clock (autumn change): the earlier is the usual reading.
        LocalResult::Ambiguous(a, _) => Ok(a.with_timezone(&Utc)),
        LocalResult::None => Err(format!(
            "{t} does not exist in {zone} (it falls in a daylight-saving gap)"
        )),
    }
}

/// A date or time cell: RFC 3339 with its own offset, Unix seconds, or one of `formats` read in
/// `zone`. A format with no time of day gives a [`Value::Date`].
pub(crate) fn parse_time(text: &str, formats: &[String], zone: Tz) -> Result<Value, String> {
    let t = text.trim();
    if let Ok(x) = DateTime::parse_from_rfc3339(t) {
        return Ok(Value::Time(x.with_timezone(&Utc)));
    }
    if (9..=11).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit()) {
        if let Some(x) = t
            .parse::<i64>()
            .ok()
            .and_then(|s| DateTime::from_timestamp(s, 0))
        {
            return Ok(Value::Time(x));
        }
    }
    for f in formats {
        if let Ok(x) = NaiveDateTime::parse_from_str(t, f) {
            return local_to_utc(x, zone).map(Value::Time);
        }
        if let Ok(d) = NaiveDate::parse_from_str(t, f) {
            return Ok(Value::Date(d));
        }
    }
    Err(format!(
        "{t:?} is not a date or time in any of the formats {formats:?}"
    ))
}

/// Recognises the same record reached twice (a Stripe charge from the API and from a CSV export,
/// an object in two dumps of different dates, a row exported twice) and keeps its newest copy.
///
/// Copies that say the same are one record: the first is evidence, each later one a Duplicate
/// skip naming it (counting both would double its weight in matching). Copies that say
/// something different are the record at different moments: the copy whose latest time (any of
/// its times: created, refunded, canceled…) is later is the record now, and the older one is a
/// Superseded skip naming it, whichever file came first. Two copies that differ at the same
/// latest moment are a real conflict that no file order settles: both go on as evidence, where
/// matching sees two statements of one moment that disagree and sends the value to a person.
///
/// Evidence is held until [`Dedup::finish`] (or the Dedup is dropped) and then passed on in the
/// order it arrived, each record at the place of its first copy, so the order never depends on
/// which copy won. Records are told apart by source, kind and their own id (the `id` field: a
/// Stripe id, or the column a CSV mapping calls "id").
pub struct Dedup<'a> {
    inner: &'a mut dyn Sink,
    /// Evidence and skips in arrival order, until they are passed on.
    held: Vec<Held>,
    /// Per record: the slot of the copy kept, its comparable hash and latest time.
    kept: HashMap<(SourceKind, String, String), Kept>,
    /// How many copies were skipped so far (duplicates and superseded copies).
    pub duplicates: usize,
    /// The same, by reason.
    pub skipped: BTreeMap<SkipReason, usize>,
}

enum Held {
    Evidence(Evidence),
    Skip(Skip),
}

struct Kept {
    slot: usize,
    hash: String,
    lateness: (Option<chrono::DateTime<chrono::Utc>>, i64),
    provenance: Provenance,
}

impl<'a> Dedup<'a> {
    pub fn new(inner: &'a mut dyn Sink) -> Dedup<'a> {
        Dedup {
            inner,
            held: Vec::new(),
            kept: HashMap::new(),
            duplicates: 0,
            skipped: BTreeMap::new(),
        }
    }

    /// Passes every record on, in arrival order; later evidence is held again until the next
    /// call.
    pub fn finish(&mut self) {
        for item in self.held.drain(..) {
            match item {
                Held::Evidence(ev) => self.inner.evidence(ev),
                Held::Skip(skip) => self.inner.skip(skip),
            }
        }
        self.kept.clear();
    }

    /// What was skipped since `before` (an earlier [`Dedup::skipped`]), by reason.
    pub fn skipped_since(
        &self,
        before: &BTreeMap<SkipReason, usize>,
    ) -> impl Iterator<Item = (SkipReason, usize)> + '_ {
        let before = before.clone();
        self.skipped
            .iter()
            .map(move |(r, n)| (*r, n - before.get(r).copied().unwrap_or(0)))
            .filter(|(_, n)| *n > 0)
    }

    fn skip_copy(&mut self, provenance: Provenance, reason: SkipReason, detail: String) {
        self.duplicates += 1;
        *self.skipped.entry(reason).or_insert(0) += 1;
        self.held.push(Held::Skip(Skip {
            provenance,
            reason,
            detail,
        }));
    }
}

impl Drop for Dedup<'_> {
    fn drop(&mut self) {
        self.finish();
    }
}

/// How late in its life a copy speaks of the record: the newest of its times, then how much of
/// it has been refunded (a refunded total only grows, and a dump often carries no refund time).
fn lateness(ev: &Evidence) -> (Option<chrono::DateTime<chrono::Utc>>, i64) {
    let time = ev
        .fields
        .values()
        .filter_map(|v| match v {
            Value::Time(t) => Some(*t),
            _ => None,
        })
        .chain(ev.observed_at)
        .max();
    let refunded = match ev.get(crate::evidence::field::REFUNDED) {
        Some(Value::Money { minor, .. }) => *minor,
        _ => 0,
    };
    (time, refunded)
}

/// Fields the kept copy lacks, from an older copy of the same record: a dump without metadata
/// does not make the booking code another copy carried disappear.
fn fill_from(kept: &mut Evidence, older: &Evidence) {
    for (k, v) in &older.fields {
        kept.fields.entry(k.clone()).or_insert_with(|| v.clone());
    }
}

impl Sink for Dedup<'_> {
    fn evidence(&mut self, ev: Evidence) {
        let Some(id) = ev.text("id").map(str::to_owned) else {
            self.held.push(Held::Evidence(ev));
            return;
        };
        let key = (ev.provenance.source, ev.kind.clone(), id);
        let hash = comparable_hash(&ev);
        let late = lateness(&ev);
        let Some(k) = self.kept.get(&key) else {
            self.kept.insert(
                key,
                Kept {
                    slot: self.held.len(),
                    hash,
                    lateness: late,
                    provenance: ev.provenance.clone(),
                },
            );
            self.held.push(Held::Evidence(ev));
            return;
        };
        let what = format!("{} {}", key.1, key.2);
        let newer = |by: &Provenance| {
            format!("an older copy of {what}: {by} shows it later, and that copy is kept (with what only this one said)")
        };
        let slot = k.slot;
        if k.hash == hash {
            let detail = format!("the same {what} as {}", k.provenance);
            self.skip_copy(ev.provenance, SkipReason::Duplicate, detail);
        } else if late < k.lateness {
            let detail = newer(&k.provenance);
            if let Held::Evidence(kept) = &mut self.held[slot] {
                fill_from(kept, &ev);
            }
            self.skip_copy(ev.provenance, SkipReason::Superseded, detail);
        } else if late > k.lateness {
            let old = k.provenance.clone();
            let detail = newer(&ev.provenance);
            self.kept.insert(
                key,
                Kept {
                    slot,
                    hash,
                    lateness: late,
                    provenance: ev.provenance.clone(),
                },
            );
            let mut ev = ev;
            if let Held::Evidence(older) = &self.held[slot] {
                fill_from(&mut ev, older);
            }
            self.held[slot] = Held::Evidence(ev);
            self.skip_copy(old, SkipReason::Superseded, detail);
        } else {
            // Different at the same moment: both stand, for matching to call a conflict.
            self.held.push(Held::Evidence(ev));
        }
    }

    fn skip(&mut self, skip: Skip) {
        self.held.push(Held::Skip(skip));
    }
}

/// A content hash over the fields both an API object and its CSV row carry, so that the usual
/// CSV-versus-API differences (kept columns, card details the export lacks) are not reported as
/// disagreement.
fn comparable_hash(ev: &Evidence) -> String {
    use crate::evidence::field as f;
    let mut e = Evidence::new(ev.provenance.clone(), ev.kind.clone());
    for name in [
        f::AMOUNT,
        f::REFUNDED,
        f::STATUS,
        f::CUSTOMER_ID,
        f::CREATED,
    ] {
        if let Some(v) = ev.get(name) {
            e.set(name, v.clone());
        }
    }
    e.content_hash()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_convert_exactly_per_currency() {
        let cases = [
            ("123.45", "EUR", Ok(12345)),
            ("1,234.50", "usd", Ok(123450)),
            ("0.05", "USD", Ok(5)),
            ("-12.3", "GBP", Ok(-1230)),
            ("(4.00)", "EUR", Ok(-400)),
            ("12000", "JPY", Ok(12000)),
            ("12,000", "JPY", Ok(12000)),
            ("12000.00", "JPY", Ok(12000)),
            ("5.125", "KWD", Ok(5125)),
            ("50000", "KRW", Ok(50000)),
            (".5", "EUR", Ok(50)),
            ("12.505", "EUR", Err(())),
            ("12.5", "JPY", Err(())),
            ("12.3.4", "EUR", Err(())),
            ("abc", "EUR", Err(())),
            ("", "EUR", Err(())),
            ("92233720368547758.08", "EUR", Err(())),
            // Largest representable: no float rounding on the way.
            ("92233720368547758.07", "EUR", Ok(i64::MAX)),
        ];
        for (text, cur, want) in cases {
            let got = major_to_minor(text, cur, false).map_err(|_| ());
            assert_eq!(got, want, "{text} {cur}");
        }
        assert_eq!(major_to_minor("1.234,56", "EUR", true), Ok(123456));
    }

    #[test]
    fn times_read_with_offsets_formats_and_zones() {
        let f: Vec<String> = vec!["%d.%m.%Y %H:%M".into(), "%d.%m.%Y".into()];
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let t = |s: &str| Value::Time(s.parse().unwrap());
        assert_eq!(
            parse_time("2026-07-01T10:00:00+02:00", &f, berlin),
            Ok(t("2026-07-01T08:00:00Z"))
        );
        assert_eq!(
            parse_time("01.07.2026 10:00", &f, berlin),
            Ok(t("2026-07-01T08:00:00Z"))
        );
        assert_eq!(
            parse_time("01.07.2026", &f, berlin),
            Ok(Value::Date(NaiveDate::from_ymd_opt(2026, 7, 1).unwrap()))
        );
        assert_eq!(
            parse_time("1782896400", &f, berlin),
            Ok(t("2026-07-01T09:00:00Z"))
        );
        assert!(parse_time("29.03.2026 02:30", &f, berlin)
            .unwrap_err()
            .contains("daylight-saving gap"));
        assert!(parse_time("yesterday", &f, berlin).is_err());
    }
}
