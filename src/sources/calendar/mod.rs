//! Calendar exports (.ics): one piece of evidence per event version, or per occurrence of a
//! series inside the window (SPEC §2).
//!
//! Reading goes in three steps. The pre-pass ([`prepass`]) finds the structure of each file line
//! by line, so that a byte-order mark, several calendars in one file, junk after END:VCALENDAR
//! or a truncated download cost at most the one broken event. Each content line is then parsed
//! by icalendar's property parser (parameters, quoting, TEXT unescaping), and times are placed
//! in their zone by [`zone`] (IANA, Windows names through CLDR, VTIMEZONE definitions; gaps and
//! folds by RFC 5545's rule). Last, versions of one event are reconciled across every file read:
//! the highest SEQUENCE (then LAST-MODIFIED, then DTSTAMP) is evidence, the others are skipped
//! as duplicates naming the version that superseded them.
//!
//! The source knows no schema: what a booking code or a plate looks like comes from the
//! mapping's patterns ([`CalendarRules`]).

pub mod prepass;
pub mod recur;
pub mod value;
pub mod zone;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

use crate::evidence::{
    field, Evidence, Pattern, Provenance, Sink, Skip, SkipReason, SourceKind, Value, Window,
};
use prepass::{Block, Line};
use value::{parse_duration, parse_time, TimeValue};
use zone::{Vtimezone, Zone};

/// Field names this source adds to the well-known ones of [`field`].
pub mod fields {
    pub const SUMMARY: &str = "summary";
    pub const UID: &str = "uid";
    pub const SEQUENCE: &str = "sequence";
    /// The original start of the occurrence an override or an expanded occurrence stands for.
    pub const RECURRENCE_ID: &str = "recurrence_id";
    /// ORGANIZER as "Name <address>".
    pub const ORGANIZER: &str = "organizer";
    /// Every ATTENDEE as "Name <address>", separated by "; ".
    pub const ATTENDEE: &str = "attendee";
    /// The zone the times were read in: an IANA name, or a VTIMEZONE's own TZID.
    pub const TIME_ZONE: &str = "time_zone";
    /// True when a time had no zone at all (no TZID, no Z, no X-WR-TIMEZONE) and was read as
    /// UTC: a mapping may know better.
    pub const FLOATING: &str = "floating";
    /// The calendar's X-WR-CALNAME.
    pub const CALENDAR: &str = "calendar";
}

/// What a mapping says about calendar exports: `[sources.calendar]`.
///
/// Each list holds patterns applied to that property's value (ATTENDEE and ORGANIZER as
/// "Name <address>"); their named captures become evidence fields of that name. A capture never
/// replaces a field read from the event's structure, and for each name the first pattern that
/// captures it wins, in the order summary, description, location, attendee, organizer.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CalendarRules {
    pub summary: Vec<Pattern>,
    pub description: Vec<Pattern>,
    pub location: Vec<Pattern>,
    pub attendee: Vec<Pattern>,
    pub organizer: Vec<Pattern>,
    /// When true (and there are patterns), an event that no pattern captures anything from is
    /// skipped as irrelevant: the staff meeting in a pickups calendar.
    pub skip_unmatched: bool,
}

impl CalendarRules {
    fn has_patterns(&self) -> bool {
        !(self.summary.is_empty()
            && self.description.is_empty()
            && self.location.is_empty()
            && self.attendee.is_empty()
            && self.organizer.is_empty())
    }
}

/// What one read found, for the accounting a person reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CalendarStats {
    /// .ics files read (a folder's other files are not calendar exports and are not counted).
    pub files: usize,
    pub calendars: usize,
    /// Every BEGIN:VEVENT found, broken ones included.
    pub vevents: usize,
    /// Evidence items given (a series gives one per occurrence inside the window).
    pub evidence: usize,
    /// Older versions skipped as duplicates of a newer one.
    pub superseded: usize,
    pub skipped: usize,
    /// Series whose expansion stopped at the occurrence limit (an open window and no end).
    pub series_truncated: usize,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CalendarError {
    #[error(
        "cannot read the calendar path {path}: {source}; give an .ics file or a folder of them"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Occurrences of one series at most, when the window leaves the series unbounded.
const OCCURRENCE_LIMIT: u16 = 1000;

/// Reads an .ics file, or every .ics file under a folder (recursively, in path order), and
/// accounts for every VEVENT through `sink`. Err only when `path` cannot be read at all.
pub fn read(
    path: &Path,
    rules: &CalendarRules,
    window: &Window,
    sink: &mut dyn Sink,
) -> Result<CalendarStats, CalendarError> {
    let found =
        super::walk::files(path, &["ics", "ical"]).map_err(|source| CalendarError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    let mut reader = Reader {
        stats: CalendarStats::default(),
        versions: Vec::new(),
        sink,
    };
    for (at, why) in found.unreadable {
        reader.skip(&at.to_string_lossy(), "file", SkipReason::Malformed, why);
    }
    let files = found.files;
    for file in &files {
        let origin = file.to_string_lossy().into_owned();
        match std::fs::read(file) {
            Ok(bytes) => reader.file(&origin, &bytes, window),
            Err(e) => reader.skip(
                &origin,
                "file",
                SkipReason::Malformed,
                format!("cannot read this file: {e}"),
            ),
        }
        reader.stats.files += 1;
    }
    reader.emit(rules, window);
    Ok(reader.stats)
}

/// Reads bytes as if they were the file `origin`: the pre-pass and the parser without the
/// file system, for the fuzz target and for tests.
pub fn read_bytes(
    origin: &str,
    bytes: &[u8],
    rules: &CalendarRules,
    window: &Window,
    sink: &mut dyn Sink,
) -> CalendarStats {
    let mut reader = Reader {
        stats: CalendarStats::default(),
        versions: Vec::new(),
        sink,
    };
    reader.file(origin, bytes, window);
    reader.stats.files += 1;
    reader.emit(rules, window);
    reader.stats
}

/// A start or end: an instant, or a day for all-day events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum When {
    Time(DateTime<Utc>),
    Date(NaiveDate),
}

impl When {
    fn value(self) -> Value {
        match self {
            When::Time(t) => Value::Time(t),
            When::Date(d) => Value::Date(d),
        }
    }

    fn show(self) -> String {
        match self {
            When::Time(t) => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            When::Date(d) => d.to_string(),
        }
    }
}

/// How an event's times are read: its zone, or none (UTC, or floating with no calendar zone).
#[derive(Debug, Clone)]
struct TimeFrame {
    zone: Option<Zone>,
    floating: bool,
}

impl TimeFrame {
    fn to_utc(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        match &self.zone {
            Some(z) => z.to_utc(local),
            None => Some(local.and_utc()),
        }
    }

    fn offset_at(&self, utc: NaiveDateTime) -> i64 {
        self.zone.as_ref().map_or(0, |z| z.offset_at(utc))
    }

    /// A UTC instant as this frame's wall clock.
    fn local(&self, t: DateTime<Utc>) -> NaiveDateTime {
        let t = t.naive_utc();
        t.checked_add_signed(Duration::seconds(self.offset_at(t)))
            .unwrap_or(t)
    }
}

/// One parsed VEVENT.
#[derive(Debug, Clone)]
struct Version {
    origin: String,
    line: usize,
    uid: Option<String>,
    seq: i64,
    rid: Option<When>,
    start: When,
    /// DTSTART's wall-clock reading and frame, for series expansion.
    start_local: NaiveDateTime,
    frame: TimeFrame,
    /// DTEND − DTSTART (or DURATION); None when neither is given.
    length: Option<Duration>,
    rrule: Option<String>,
    rdates: Vec<When>,
    exdates: Vec<When>,
    last_modified: Option<DateTime<Utc>>,
    dtstamp: Option<DateTime<Utc>>,
    created: Option<DateTime<Utc>>,
    status: Option<String>,
    summary: Option<String>,
    description: Option<String>,
    location: Option<String>,
    organizer: Option<String>,
    attendees: Vec<String>,
    calendar: Option<String>,
}

impl Version {
    fn locator(&self) -> String {
        let mut s = format!("line {}", self.line);
        if let Some(uid) = &self.uid {
            s.push_str(&format!(" uid {uid} seq {}", self.seq));
        }
        if let Some(rid) = self.rid {
            s.push_str(&format!(" recurrence-id {}", rid.show()));
        }
        s
    }

    fn is_series(&self) -> bool {
        self.rid.is_none() && (self.rrule.is_some() || !self.rdates.is_empty())
    }

    /// Orders versions of one event: SEQUENCE, then LAST-MODIFIED, then DTSTAMP.
    fn rank(&self) -> (i64, Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        (self.seq, self.last_modified, self.dtstamp)
    }
}

struct Reader<'s> {
    stats: CalendarStats,
    versions: Vec<Version>,
    sink: &'s mut dyn Sink,
}

/// One content line parsed by icalendar: upper-cased name, parameters, value.
struct Prop<'a> {
    line: usize,
    name: String,
    params: Vec<(String, String)>,
    value: String,
    _raw: &'a str,
}

impl Prop<'_> {
    fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

fn parse_prop(line: &Line) -> Result<Prop<'_>, String> {
    let p = icalendar::parser::Property::try_from(line.text.as_str())
        .map_err(|e| e.lines().next().unwrap_or("").trim().to_string())?;
    Ok(Prop {
        line: line.no,
        name: p.name.as_str().to_ascii_uppercase(),
        params: p
            .params
            .iter()
            .map(|pa| {
                (
                    pa.key.as_str().to_string(),
                    pa.val
                        .as_ref()
                        .map(|v| v.as_str().trim_matches('"').to_string())
                        .unwrap_or_default(),
                )
            })
            .collect(),
        value: p.val.as_str().to_string(),
        _raw: &line.text,
    })
}

/// Calendar-wide context for reading events.
struct CalContext<'a> {
    default_zone: Option<Zone>,
    name: Option<String>,
    cancel: bool,
    zones: &'a [Vtimezone],
}

impl Reader<'_> {
    fn skip(&mut self, origin: &str, locator: &str, reason: SkipReason, detail: String) {
        self.stats.skipped += 1;
        self.sink.skip(Skip {
            provenance: Provenance {
                source: SourceKind::Calendar,
                origin: origin.to_string(),
                locator: locator.to_string(),
            },
            reason,
            detail,
        });
    }

    fn file(&mut self, origin: &str, bytes: &[u8], _window: &Window) {
        let parsed = prepass::parse(bytes);
        for p in &parsed.problems {
            let locator = if p.first_line == p.last_line {
                format!("line {}", p.first_line)
            } else {
                format!("lines {}-{}", p.first_line, p.last_line)
            };
            self.skip(origin, &locator, SkipReason::Malformed, p.what.clone());
        }
        let zones: Vec<Vtimezone> = parsed
            .calendars
            .iter()
            .flat_map(|c| &c.block.children)
            .filter(|b| b.name == "VTIMEZONE")
            .filter_map(Vtimezone::from_block)
            .collect();
        if parsed.calendars.is_empty() && parsed.problems.is_empty() {
            self.skip(
                origin,
                "file",
                SkipReason::Malformed,
                "no iCalendar data: the file is empty or has no BEGIN:VCALENDAR".into(),
            );
        }
        for cal in &parsed.calendars {
            if cal.block.line > 0 {
                self.stats.calendars += 1;
            }
            let ctx = calendar_context(&cal.block, &zones);
            let mut events = 0;
            for block in cal.block.vevents() {
                events += 1;
                self.stats.vevents += 1;
                let locator = format!("line {}", block.line);
                if let Some(why) = &block.broken {
                    self.skip(origin, &locator, SkipReason::Malformed, why.clone());
                    continue;
                }
                match version(origin, block, &ctx) {
                    Ok(v) => self.versions.push(v),
                    Err(why) => self.skip(origin, &locator, SkipReason::Malformed, why),
                }
            }
            if events == 0 {
                let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
                for b in &cal.block.children {
                    *kinds.entry(b.name.as_str()).or_insert(0) += 1;
                }
                let held = if kinds.is_empty() {
                    "nothing".to_string()
                } else {
                    kinds
                        .iter()
                        .map(|(k, n)| format!("{n} {k}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let (locator, what) = if cal.block.line > 0 {
                    (format!("line {}", cal.block.line), "this VCALENDAR")
                } else {
                    ("file".to_string(), "this file has no VCALENDAR and")
                };
                self.skip(
                    origin,
                    &locator,
                    SkipReason::Irrelevant,
                    format!("{what} holds no VEVENT ({held})"),
                );
            }
        }
    }

    /// Reconciles versions across everything read, then gives evidence or skips.
    fn emit(&mut self, rules: &CalendarRules, window: &Window) {
        let versions = std::mem::take(&mut self.versions);
        // The winner of each (UID, RECURRENCE-ID): highest rank, the first read among equals.
        let mut winners: BTreeMap<(String, Option<When>), usize> = BTreeMap::new();
        for (i, v) in versions.iter().enumerate() {
            let Some(uid) = &v.uid else { continue };
            winners
                .entry((uid.clone(), v.rid))
                .and_modify(|w| {
                    if v.rank() > versions[*w].rank() {
                        *w = i;
                    }
                })
                .or_insert(i);
        }
        let winning: BTreeSet<usize> = winners.values().copied().collect();
        // Occurrences replaced by an override, per UID.
        let mut overridden: BTreeMap<&str, BTreeSet<When>> = BTreeMap::new();
        for &i in &winning {
            if let (Some(uid), Some(rid)) = (&versions[i].uid, versions[i].rid) {
                overridden.entry(uid.as_str()).or_default().insert(rid);
            }
        }
        for (i, v) in versions.iter().enumerate() {
            if let Some(uid) = &v.uid {
                let w = winners[&(uid.clone(), v.rid)];
                if w != i {
                    let newer = &versions[w];
                    let why = if newer.rank() == v.rank() {
                        "the same UID, SEQUENCE and timestamps as"
                    } else {
                        "superseded by the newer version"
                    };
                    self.stats.superseded += 1;
                    self.skip(
                        &v.origin,
                        &v.locator(),
                        SkipReason::Duplicate,
                        format!(
                            "{why} {} {} (SEQUENCE {}), which is kept",
                            newer.origin,
                            newer.locator(),
                            newer.seq
                        ),
                    );
                    continue;
                }
            }
            let captures = apply_patterns(rules, v);
            if rules.skip_unmatched && rules.has_patterns() && captures.is_empty() {
                self.skip(
                    &v.origin,
                    &v.locator(),
                    SkipReason::Irrelevant,
                    format!(
                        "no pattern of the mapping matched this event (SUMMARY {:?})",
                        v.summary.as_deref().unwrap_or("")
                    ),
                );
                continue;
            }
            if v.is_series() {
                let none = BTreeSet::new();
                let skip_at = v
                    .uid
                    .as_deref()
                    .and_then(|u| overridden.get(u))
                    .unwrap_or(&none);
                self.series(v, &captures, window, skip_at);
            } else if in_window(v, v.start, window) {
                let ev = evidence(v, v.start, None, &captures);
                self.give(ev);
            } else {
                self.skip(
                    &v.origin,
                    &v.locator(),
                    SkipReason::OutsideWindow,
                    format!(
                        "starts {} and was last changed {}: both outside the window",
                        v.start.show(),
                        changed(v).map_or("at an unknown time".into(), |t| t
                            .format("%Y-%m-%dT%H:%M:%SZ")
                            .to_string())
                    ),
                );
            }
        }
    }

    fn give(&mut self, ev: Evidence) {
        self.stats.evidence += 1;
        self.sink.evidence(ev);
    }

    /// The occurrences of a series inside the window, each its own evidence.
    fn series(
        &mut self,
        v: &Version,
        captures: &[(String, String)],
        window: &Window,
        overridden: &BTreeSet<When>,
    ) {
        let all_day = matches!(v.start, When::Date(_));
        let margin = Duration::days(2);
        let after = window
            .since
            .map_or(v.start_local, |s| v.frame.local(s) - margin);
        let before = window.until.map_or_else(
            || {
                NaiveDate::from_ymd_opt(2200, 1, 1)
                    .map_or(v.start_local, |d| d.and_time(NaiveTime::MIN))
            },
            |u| v.frame.local(u) + margin,
        );
        let mut locals: Vec<NaiveDateTime> = Vec::new();
        if let Some(rule) = &v.rrule {
            let until_offset = v.frame.offset_at(v.start_local);
            match recur::try_expand(
                rule,
                v.start_local,
                until_offset,
                after,
                before,
                OCCURRENCE_LIMIT,
            ) {
                Ok((found, limited)) => {
                    if limited {
                        self.stats.series_truncated += 1;
                    }
                    locals.extend(found);
                }
                Err(why) => {
                    self.skip(&v.origin, &v.locator(), SkipReason::Malformed, why);
                    return;
                }
            }
        } else if v.start_local >= after && v.start_local <= before {
            locals.push(v.start_local);
        }
        let mut starts: BTreeSet<When> = locals
            .into_iter()
            .filter_map(|l| {
                if all_day {
                    Some(When::Date(l.date()))
                } else {
                    v.frame.to_utc(l).map(When::Time)
                }
            })
            .collect();
        starts.extend(v.rdates.iter().copied());
        let mut given = 0;
        for s in starts {
            if v.exdates.contains(&s) || overridden.contains(&s) {
                continue;
            }
            if !window_contains(window, s, &v.frame) {
                continue;
            }
            let ev = evidence(v, s, Some(s), captures);
            self.give(ev);
            given += 1;
        }
        if given == 0 {
            self.skip(
                &v.origin,
                &v.locator(),
                SkipReason::OutsideWindow,
                format!(
                    "a series from {} ({}) with no occurrence inside the window",
                    v.start.show(),
                    v.rrule.as_deref().unwrap_or("RDATE")
                ),
            );
        }
    }
}

fn changed(v: &Version) -> Option<DateTime<Utc>> {
    v.last_modified.or(v.created)
}

fn window_contains(window: &Window, w: When, frame: &TimeFrame) -> bool {
    match w {
        When::Time(t) => window.contains(t),
        // A day is in the window when its start (in the event's zone) is.
        When::Date(d) => frame
            .to_utc(d.and_time(NaiveTime::MIN))
            .is_some_and(|t| window.contains(t)),
    }
}

/// A single event is relevant when it happens in the window or was changed in it: a booking
/// made during the gap for a pickup after the incident is exactly what must be recovered.
fn in_window(v: &Version, start: When, window: &Window) -> bool {
    window_contains(window, start, &v.frame) || changed(v).is_some_and(|t| window.contains(t))
}

fn evidence(
    v: &Version,
    start: When,
    occurrence: Option<When>,
    captures: &[(String, String)],
) -> Evidence {
    let mut locator = v.locator();
    if let Some(o) = occurrence {
        locator.push_str(&format!(" occurrence {}", o.show()));
    }
    let cancelled = v.status.as_deref() == Some("cancelled");
    let mut e = Evidence::new(
        Provenance {
            source: SourceKind::Calendar,
            origin: v.origin.clone(),
            locator,
        },
        if cancelled { "cancellation" } else { "event" },
    );
    e.observed_at = v.last_modified.or(v.dtstamp).or(v.created);
    e.set(field::STARTS_AT, start.value());
    if let Some(len) = v.length {
        let end = match start {
            When::Time(t) => t.checked_add_signed(len).map(When::Time),
            When::Date(d) => d.checked_add_signed(len).map(When::Date),
        };
        if let Some(end) = end {
            e.set(field::ENDS_AT, end.value());
        }
    }
    if let Some(t) = v.created {
        e.set(field::CREATED, Value::Time(t));
    }
    let text = |s: &Option<String>| Value::text(s.clone().unwrap_or_default());
    e.set(field::STATUS, text(&v.status));
    e.set(fields::SUMMARY, text(&v.summary));
    e.set(field::DESCRIPTION, text(&v.description));
    e.set(field::LOCATION, text(&v.location));
    e.set(fields::ORGANIZER, text(&v.organizer));
    e.set(fields::ATTENDEE, Value::text(v.attendees.join("; ")));
    e.set(fields::UID, text(&v.uid));
    e.set(fields::SEQUENCE, Value::Int(v.seq));
    e.set(fields::CALENDAR, text(&v.calendar));
    if let Some(rid) = v.rid.or(occurrence) {
        e.set(fields::RECURRENCE_ID, rid.value());
    }
    if let Some(z) = &v.frame.zone {
        e.set(fields::TIME_ZONE, Value::text(z.name()));
    }
    if v.frame.floating {
        e.set(fields::FLOATING, Value::Bool(true));
    }
    for (name, value) in captures {
        if !e.fields.contains_key(name) {
            e.set(name.clone(), Value::text(value.clone()));
        }
    }
    e
}

/// Named captures of the mapping's patterns, first per name, in property order.
fn apply_patterns(rules: &CalendarRules, v: &Version) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut apply = |patterns: &[Pattern], text: &str| {
        for p in patterns {
            for (name, value) in p.captures(text) {
                if !out.iter().any(|(n, _)| n == name) {
                    out.push((name.to_string(), value.to_string()));
                }
            }
        }
    };
    let groups: [(&[Pattern], Vec<&str>); 5] = [
        (
            &rules.summary,
            v.summary.iter().map(String::as_str).collect(),
        ),
        (
            &rules.description,
            v.description.iter().map(String::as_str).collect(),
        ),
        (
            &rules.location,
            v.location.iter().map(String::as_str).collect(),
        ),
        (
            &rules.attendee,
            v.attendees.iter().map(String::as_str).collect(),
        ),
        (
            &rules.organizer,
            v.organizer.iter().map(String::as_str).collect(),
        ),
    ];
    for (patterns, texts) in groups {
        for t in texts {
            apply(patterns, t);
        }
    }
    out
}

fn calendar_context<'a>(cal: &Block, zones: &'a [Vtimezone]) -> CalContext<'a> {
    let mut ctx = CalContext {
        default_zone: None,
        name: None,
        cancel: false,
        zones,
    };
    for line in &cal.props {
        let Ok(p) = parse_prop(line) else { continue };
        match p.name.as_str() {
            "X-WR-TIMEZONE" => ctx.default_zone = zone::resolve(&p.value, zones),
            "X-WR-CALNAME" => ctx.name = Some(p.value.trim().to_string()),
            "METHOD" => ctx.cancel = p.value.trim().eq_ignore_ascii_case("CANCEL"),
            _ => {}
        }
    }
    ctx
}

/// "Name <address>" from an ATTENDEE or ORGANIZER property.
fn person(p: &Prop) -> String {
    let addr = p.value.trim();
    let addr = addr
        .strip_prefix("mailto:")
        .or_else(|| addr.strip_prefix("MAILTO:"))
        .unwrap_or(addr)
        .trim();
    match p.param("CN").map(str::trim).filter(|c| !c.is_empty()) {
        Some(cn) if addr.is_empty() => cn.to_string(),
        Some(cn) => format!("{cn} <{addr}>"),
        None => addr.to_string(),
    }
}

/// A time property in its zone: (instant or day, wall-clock reading, frame).
fn read_time(p: &Prop, ctx: &CalContext) -> Result<(When, NaiveDateTime, TimeFrame), String> {
    let value = p.value.trim();
    // RDATE;VALUE=PERIOD: the period's start is the occurrence.
    let value = value.split('/').next().unwrap_or(value);
    let tv = parse_time(value).ok_or_else(|| {
        format!(
            "{} at line {}: {value:?} is not a DATE or DATE-TIME (expected 20260314 or 20260314T093000[Z])",
            p.name, p.line
        )
    })?;
    let date_param = p
        .param("VALUE")
        .is_some_and(|v| v.eq_ignore_ascii_case("DATE"));
    match tv {
        TimeValue::Date(d) => Ok((
            When::Date(d),
            tv.naive(),
            TimeFrame {
                zone: ctx.default_zone.clone(),
                floating: false,
            },
        )),
        _ if date_param => {
            let d = tv.naive().date();
            Ok((
                When::Date(d),
                d.and_time(NaiveTime::MIN),
                TimeFrame {
                    zone: ctx.default_zone.clone(),
                    floating: false,
                },
            ))
        }
        TimeValue::Utc(t) => Ok((
            When::Time(t.and_utc()),
            t,
            TimeFrame {
                zone: None,
                floating: false,
            },
        )),
        TimeValue::Local(t) => {
            let frame = match p.param("TZID") {
                Some(tzid) => TimeFrame {
                    zone: Some(zone::resolve(tzid, ctx.zones).ok_or_else(|| {
                        format!(
                            "{} at line {}: TZID {tzid:?} is neither an IANA zone, a Windows zone name (CLDR), nor defined by a VTIMEZONE in this file",
                            p.name, p.line
                        )
                    })?),
                    floating: false,
                },
                None => TimeFrame {
                    floating: ctx.default_zone.is_none(),
                    zone: ctx.default_zone.clone(),
                },
            };
            let utc = frame
                .to_utc(t)
                .ok_or_else(|| format!("{} at line {}: {value} is out of range", p.name, p.line))?;
            Ok((When::Time(utc), t, frame))
        }
    }
}

fn utc_stamp(p: &Prop, ctx: &CalContext) -> Option<DateTime<Utc>> {
    match read_time(p, ctx).ok()?.0 {
        When::Time(t) => Some(t),
        When::Date(d) => Some(d.and_time(NaiveTime::MIN).and_utc()),
    }
}

/// A VEVENT block to a version, or why it cannot be one.
fn version(origin: &str, block: &Block, ctx: &CalContext) -> Result<Version, String> {
    let mut props = Vec::new();
    let mut unreadable_start = None;
    for line in &block.props {
        // A line icalendar cannot read loses that property only; the event is judged by what
        // it still has (DTSTART above all).
        match parse_prop(line) {
            Ok(p) => props.push(p),
            Err(e) => {
                let head = line.text.split([';', ':']).next().unwrap_or("");
                if head.trim().eq_ignore_ascii_case("DTSTART") && unreadable_start.is_none() {
                    unreadable_start = Some(format!(
                        "DTSTART at line {} cannot be parsed ({e}): {:?}",
                        line.no, line.text
                    ));
                }
            }
        }
    }
    let first = |name: &str| props.iter().find(|p| p.name == name);
    let dtstart = first("DTSTART").ok_or_else(|| {
        unreadable_start.clone().unwrap_or_else(|| {
            format!(
                "the VEVENT (lines {}-{}) has no DTSTART, so it says nothing about when",
                block.line,
                block.props.last().map_or(block.line, |l| l.no)
            )
        })
    })?;
    let (start, start_local, frame) = read_time(dtstart, ctx)?;
    let length = if let Some(end) = first("DTEND") {
        let (end, ..) = read_time(end, ctx)?;
        match (start, end) {
            (When::Time(a), When::Time(b)) => Some(b - a),
            (When::Date(a), When::Date(b)) => Some(b - a),
            (When::Date(a), When::Time(b)) => Some(b.date_naive() - a),
            (When::Time(a), When::Date(b)) => Some(b.and_time(NaiveTime::MIN).and_utc() - a),
        }
    } else if let Some(d) = first("DURATION") {
        Some(parse_duration(&d.value).ok_or_else(|| {
            format!(
                "DURATION at line {}: {:?} is not a duration (expected PT30M, P1D…)",
                d.line, d.value
            )
        })?)
    } else if matches!(start, When::Date(_)) {
        // RFC 5545 §3.6.1: an all-day event without an end lasts the day.
        Some(Duration::days(1))
    } else {
        None
    };
    let text = |name: &str| {
        first(name)
            .map(|p| p.value.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let seq = match first("SEQUENCE") {
        Some(p) => p.value.trim().parse::<i64>().map_err(|_| {
            format!(
                "SEQUENCE at line {}: {:?} is not a whole number",
                p.line, p.value
            )
        })?,
        None => 0,
    };
    let rid = match first("RECURRENCE-ID") {
        Some(p) => Some(read_time(p, ctx)?.0),
        None => None,
    };
    let list = |name: &str| -> Vec<When> {
        props
            .iter()
            .filter(|p| p.name == name)
            .flat_map(|p| {
                p.value.split(',').filter_map(move |one| {
                    let single = Prop {
                        line: p.line,
                        name: p.name.clone(),
                        params: p.params.clone(),
                        value: one.to_string(),
                        _raw: p._raw,
                    };
                    read_time(&single, ctx).ok().map(|(w, ..)| w)
                })
            })
            .collect()
    };
    let mut status = text("STATUS").map(|s| s.to_ascii_lowercase());
    if ctx.cancel {
        status = Some("cancelled".into());
    }
    Ok(Version {
        origin: origin.to_string(),
        line: block.line,
        uid: text("UID"),
        seq,
        rid,
        start,
        start_local,
        frame,
        length,
        rrule: text("RRULE"),
        rdates: list("RDATE"),
        exdates: list("EXDATE"),
        last_modified: first("LAST-MODIFIED").and_then(|p| utc_stamp(p, ctx)),
        dtstamp: first("DTSTAMP").and_then(|p| utc_stamp(p, ctx)),
        created: first("CREATED").and_then(|p| utc_stamp(p, ctx)),
        status,
        summary: text("SUMMARY"),
        description: text("DESCRIPTION"),
        location: text("LOCATION"),
        organizer: first("ORGANIZER").map(person).filter(|s| !s.is_empty()),
        attendees: props
            .iter()
            .filter(|p| p.name == "ATTENDEE")
            .map(person)
            .filter(|s| !s.is_empty())
            .collect(),
        calendar: ctx.name.clone(),
    })
}
