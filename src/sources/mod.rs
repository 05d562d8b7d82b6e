//! Evidence sources: each reads one kind of external record and streams evidence into a sink.
//!
//! [`read_all`] runs every source the run names over the same window, with the mapping's rules,
//! and keeps the accounting invariant 6 asks for: per source, what was read, what became evidence
//! (by kind) and what was skipped (by reason, each with its detail).

pub mod calendar;
pub mod csv;
pub mod mail;
pub mod stripe;
pub mod walk;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::evidence::{Evidence, Sink, Skip, SkipReason, SourceKind, Window};
use crate::mapping::SourceRules;

/// What a run reads.
#[derive(Debug, Default, Clone)]
pub struct Inputs {
    pub stripe: Vec<PathBuf>,
    pub calendar: Vec<PathBuf>,
    pub mail: Vec<PathBuf>,
    pub csv: Vec<PathBuf>,
    /// Pull from the live Stripe API, caching into this folder when given.
    pub stripe_api: Option<StripeApi>,
}

/// The live Stripe API as the caller configured it: the library never reads the environment,
/// the binary builds this from `STRIPE_API_KEY` and `STRIPE_API_BASE`.
#[derive(Debug, Clone)]
pub struct StripeApi {
    pub config: stripe::api::ApiConfig,
    pub cache: Option<PathBuf>,
}

impl Inputs {
    pub fn is_empty(&self) -> bool {
        self.stripe.is_empty()
            && self.calendar.is_empty()
            && self.mail.is_empty()
            && self.csv.is_empty()
            && self.stripe_api.is_none()
    }
}

/// The accounting of one source over one run.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Tally {
    pub source: Option<SourceKind>,
    /// Files, folders or endpoints read.
    pub inputs: Vec<String>,
    pub evidence: u64,
    pub evidence_by_kind: BTreeMap<String, u64>,
    pub skipped: u64,
    pub skipped_by_reason: BTreeMap<SkipReason, u64>,
    /// Inputs that could not be read at all (a missing path, a refused key).
    pub errors: Vec<String>,
    /// What a person should know about this source's input before trusting the run: it gave
    /// items but no evidence.
    pub warnings: Vec<String>,
}

/// Counts what passes through on its way to the caller's sink.
struct Counting<'a> {
    inner: &'a mut dyn Sink,
    tally: &'a mut Tally,
}

impl Sink for Counting<'_> {
    fn evidence(&mut self, evidence: Evidence) {
        self.tally.evidence += 1;
        *self
            .tally
            .evidence_by_kind
            .entry(evidence.kind.clone())
            .or_insert(0) += 1;
        self.inner.evidence(evidence);
    }

    fn skip(&mut self, skip: Skip) {
        self.tally.skipped += 1;
        *self.tally.skipped_by_reason.entry(skip.reason).or_insert(0) += 1;
        self.inner.skip(skip);
    }
}

/// Reads every input, in the order Stripe, calendar, mail, CSV, into `sink`. An input that
/// cannot be read at all is recorded in its source's tally, and the rest is still read.
///
/// Async only for the live Stripe API, which runs on the caller's runtime (a library that
/// started its own inside the caller's would panic); the file sources are plain blocking reads.
pub async fn read_all(
    inputs: &Inputs,
    rules: &SourceRules,
    window: &Window,
    sink: &mut dyn Sink,
) -> Vec<Tally> {
    let mut tallies = Vec::new();
    if !inputs.stripe.is_empty() || inputs.stripe_api.is_some() {
        let mut tally = Tally::new(SourceKind::Stripe);
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        {
            let mut counting = Counting {
                inner: sink,
                tally: &mut tally,
            };
            // One duplicate check across the API and every path: the same charge from the API
            // and from a dashboard export is one record.
            let mut dedup = csv::Dedup::new(&mut counting);
            if let Some(api) = &inputs.stripe_api {
                match stripe::api::pull_into(
                    &api.config,
                    &rules.stripe,
                    window,
                    api.cache.as_deref(),
                    &mut dedup,
                )
                .await
                {
                    Ok(stats) => warnings.extend(stats.warnings()),
                    Err(e) => errors.push(format!("Stripe API: {e}")),
                }
            }
            for p in &inputs.stripe {
                if let Err(e) = stripe::read_into(p, &rules.stripe, window, &mut dedup) {
                    errors.push(e.to_string());
                }
            }
        }
        if inputs.stripe_api.is_some() {
            tally.inputs.push("Stripe API".into());
        }
        tally
            .inputs
            .extend(inputs.stripe.iter().map(|p| p.display().to_string()));
        tally.errors = errors;
        tally.warnings.extend(warnings);
        tallies.push(tally);
    }
    if !inputs.calendar.is_empty() {
        tallies.push(each_path(
            SourceKind::Calendar,
            &inputs.calendar,
            sink,
            |p, s| {
                calendar::read(p, &rules.calendar, window, s)
                    .map(drop)
                    .map_err(|e| e.to_string())
            },
        ));
    }
    if !inputs.mail.is_empty() {
        tallies.push(each_path(SourceKind::Mail, &inputs.mail, sink, |p, s| {
            mail::read(p, &rules.mail, window, s)
                .map(drop)
                .map_err(|e| e.to_string())
        }));
    }
    if !inputs.csv.is_empty() {
        tallies.push(each_path(SourceKind::Csv, &inputs.csv, sink, |p, s| {
            csv::read(p, &rules.csv, window, s)
                .map(drop)
                .map_err(|e| e.to_string())
        }));
    }
    for t in &mut tallies {
        if t.evidence == 0 && t.skipped > 0 {
            let reasons: Vec<String> = t
                .skipped_by_reason
                .iter()
                .map(|(r, n)| format!("{n} {}", r.as_str()))
                .collect();
            t.warnings.push(format!(
                "{} gave no evidence from {} item(s) it read ({}): check that these are the right files and the window (gapfill evidence --list shows every item)",
                t.source.map_or("a source", |s| s.as_str()),
                t.skipped,
                reasons.join(", ")
            ));
        }
    }
    tallies
}

/// Every input that could not be read at all, across sources.
pub fn unreadable(tallies: &[Tally]) -> Vec<&str> {
    tallies
        .iter()
        .flat_map(|t| t.errors.iter().map(String::as_str))
        .collect()
}

impl Tally {
    fn new(source: SourceKind) -> Tally {
        Tally {
            source: Some(source),
            ..Tally::default()
        }
    }
}

fn each_path(
    source: SourceKind,
    paths: &[PathBuf],
    sink: &mut dyn Sink,
    mut read: impl FnMut(&std::path::Path, &mut dyn Sink) -> Result<(), String>,
) -> Tally {
    let mut tally = Tally::new(source);
    let mut errors = Vec::new();
    {
        let mut counting = Counting {
            inner: sink,
            tally: &mut tally,
        };
        for p in paths {
            if let Err(e) = read(p, &mut counting) {
                errors.push(e);
            }
        }
    }
    tally.inputs = paths.iter().map(|p| p.display().to_string()).collect();
    tally.errors = errors;
    tally
}

/// The accounting for people: per source what became evidence and what was skipped and why,
/// every malformed item with its place, and (with `list`) every item.
pub fn report(
    tallies: &[Tally],
    window: &Window,
    collected: &crate::evidence::Collected,
    list: bool,
) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let when = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_else(|| "open".into())
    };
    let _ = writeln!(
        out,
        "window: since {} until {}",
        when(window.since),
        when(window.until)
    );
    for t in tallies {
        let source = t.source.map(|s| s.as_str()).unwrap_or("?");
        let kinds: Vec<String> = t
            .evidence_by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let reasons: Vec<String> = t
            .skipped_by_reason
            .iter()
            .map(|(r, n)| format!("{} {n}", r.as_str()))
            .collect();
        let _ = writeln!(
            out,
            "{source:<9} {:>8} evidence ({}), {:>6} skipped ({}); read {}",
            t.evidence,
            if kinds.is_empty() {
                "none".into()
            } else {
                kinds.join(", ")
            },
            t.skipped,
            if reasons.is_empty() {
                "none".into()
            } else {
                reasons.join(", ")
            },
            t.inputs.join(", ")
        );
        for e in &t.errors {
            let _ = writeln!(out, "  error: {e}");
        }
        for w in &t.warnings {
            let _ = writeln!(out, "  warning: {w}");
        }
    }
    let malformed: Vec<&Skip> = collected
        .skipped
        .iter()
        .filter(|s| s.reason == SkipReason::Malformed)
        .collect();
    if !malformed.is_empty() && !list {
        let _ = writeln!(
            out,
            "\nmalformed input ({}), the rest was read:",
            malformed.len()
        );
        for s in malformed {
            let _ = writeln!(out, "  {}: {}", s.provenance, s.detail);
        }
    }
    if list {
        let _ = writeln!(out, "\nevidence:");
        for e in &collected.evidence {
            let fields: Vec<String> = e.fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(out, "  {} [{}] {}", e.provenance, e.kind, fields.join("; "));
        }
        let _ = writeln!(out, "\nskipped:");
        for s in &collected.skipped {
            let _ = writeln!(
                out,
                "  {} [{}] {}",
                s.provenance,
                s.reason.as_str(),
                s.detail
            );
        }
    }
    out
}
