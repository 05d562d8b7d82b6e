//! Stripe, reached three ways (SPEC §2, issue 3): the live API ([`api::pull`]), API JSON dumps
//! (list shape, JSON Lines or single objects, as the API or the Stripe CLI print them) and
//! dashboard CSV exports (payments, customers, refunds). All three give evidence of one shape:
//! an object from the API, the same object in a dump and its row in a CSV export carry the same
//! fields under the same names, and the later copies of one object are recognised as duplicates
//! ([`Dedup`]).
//!
//! Kinds: `charge`, `payment_intent`, `refund`, `customer`, `checkout_session`, `invoice`,
//! `dispute`; an event is read as the object it carries, at the event's time. Fields: the
//! well-known ones of [`crate::evidence::field`] (name, email, phone, customer_id, amount and
//! amount_refunded as money, status, created, refunded_at, description, statement_descriptor,
//! charge_id, payment_intent_id), `metadata.<key>` for every metadata entry (and for each
//! `<key> (metadata)` column of a CSV export), and those of [`object::extra`] (`id`, `currency`,
//! `refund_id`, `checkout_session_id`, `unreadable`), plus a few Stripe-specific ones
//! (`failure_code`, `card_last4`, `card_fingerprint`, `client_reference_id`, `reason`…). A CSV
//! export's columns that mean nothing to gapfill are kept as `column.<header>`.

pub mod api;
mod dashboard;
mod json;
pub mod object;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use api::{pull, ApiConfig, ApiKey, PullStats};

pub use super::csv::Dedup;
use super::csv::{apply_patterns, FieldPattern};
use crate::evidence::{Evidence, Provenance, Sink, Skip, SkipReason, SourceKind, Value, Window};

/// What the mapping says about Stripe (`[sources.stripe]`). Everything is optional: without
/// rules every object is still read, with its metadata under `metadata.<key>`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StripeRules {
    /// Evidence field → another name it should also be known by, e.g.
    /// `"metadata.booking_code" = "booking_code"`. The original field stays.
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    /// Patterns over fields (say, a booking code inside the description). Captures fill only
    /// fields the object did not state itself.
    #[serde(default)]
    pub patterns: Vec<FieldPattern>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StripeError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("STRIPE_API_KEY is not set; set it to a restricted key with read access to charges, payment intents, refunds, customers and checkout sessions (and invoices, disputes, subscriptions and events, to read those too)")]
    NoKey,
    #[error("STRIPE_API_BASE {base:?} is not a URL: {reason}")]
    BadBase { base: String, reason: String },
    #[error("the Stripe API at {base} refused the API key (HTTP {status}{message}); check STRIPE_API_KEY and that the key may read {object}")]
    Unauthorized {
        base: String,
        status: u16,
        object: &'static str,
        message: String,
    },
    #[error("the Stripe API at {base} failed while listing {object}{after}: {message}; with a cache folder, running again resumes from here")]
    Api {
        base: String,
        object: &'static str,
        after: String,
        message: String,
    },
    #[error("cache folder {path}: {source}")]
    Cache {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What a read of files saw. Every item (JSON object, CSV row, unreadable file or file tail)
/// ended as evidence or as a skip: `items() == evidence + skipped`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StripeStats {
    pub files: usize,
    /// JSON objects read from dumps.
    pub objects: usize,
    /// Data rows read from CSV exports.
    pub rows: usize,
    pub evidence: usize,
    pub skipped: BTreeMap<SkipReason, usize>,
}

impl StripeStats {
    pub fn skipped_total(&self) -> usize {
        self.skipped.values().sum()
    }

    pub fn items(&self) -> usize {
        self.evidence + self.skipped_total()
    }
}

/// Reads a dump or export file, or every `.json`, `.jsonl`, `.ndjson` and `.csv` file in a
/// folder: JSON first, then CSV (each sorted by name), so that when a charge is both in a dump
/// and in a CSV export, the API's own rendering is the one kept and the row is the duplicate.
/// Err only when the path cannot be read at all.
pub fn read(
    path: &Path,
    rules: &StripeRules,
    window: &Window,
    sink: &mut dyn Sink,
) -> Result<StripeStats, StripeError> {
    let mut dedup = Dedup::new(sink);
    read_into(path, rules, window, &mut dedup)
}

/// [`read`] through the caller's [`Dedup`], so that one of them can span the live API and
/// several paths: an object met again in any of them is a duplicate.
pub fn read_into(
    path: &Path,
    rules: &StripeRules,
    window: &Window,
    dedup: &mut Dedup,
) -> Result<StripeStats, StripeError> {
    let duplicates_before = dedup.duplicates;
    let skipped_before = dedup.skipped.clone();
    let found =
        super::walk::files(path, &["json", "jsonl", "ndjson", "csv", "gz"]).map_err(|source| {
            StripeError::Io {
                path: path.to_path_buf(),
                source,
            }
        })?;
    let mut files = found.files;
    files.sort_by_key(|f| {
        let csv = f
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        (csv, f.clone())
    });
    let mut counted = Counting::new(RulesSink {
        inner: dedup,
        rules,
    });
    let mut stats = StripeStats::default();
    for (at, why) in found.unreadable {
        counted.skip(Skip {
            provenance: Provenance {
                source: SourceKind::Stripe,
                origin: at.display().to_string(),
                locator: "file".into(),
            },
            reason: SkipReason::Malformed,
            detail: why,
        });
    }
    for file in &files {
        let origin = file.display().to_string();
        // A compressed export is read as what it holds: `charges.json.gz` is JSON.
        let inner = origin
            .strip_suffix(".gz")
            .or_else(|| origin.strip_suffix(".GZ"));
        if let Some(inner) = inner {
            let known = Path::new(inner)
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| {
                    ["json", "jsonl", "ndjson", "csv"]
                        .iter()
                        .any(|k| e.eq_ignore_ascii_case(k))
                });
            if !known && path.is_dir() {
                // Some other compressed file in the folder: not an export.
                continue;
            }
        }
        stats.files += 1;
        match std::fs::File::open(file) {
            Ok(f) => match inner {
                Some(inner) => {
                    let unzipped = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(f));
                    let input = std::io::BufReader::with_capacity(1 << 16, unzipped);
                    read_one(inner, &origin, input, window, &mut counted, &mut stats);
                }
                None => {
                    let input = std::io::BufReader::with_capacity(1 << 16, f);
                    read_one(&origin, &origin, input, window, &mut counted, &mut stats);
                }
            },
            Err(e) => counted.skip(file_skip(&origin, &e)),
        }
    }
    let (evidence, mut skipped) = (counted.evidence, counted.skipped);
    let duplicates = dedup.duplicates - duplicates_before;
    for (reason, n) in dedup.skipped_since(&skipped_before) {
        *skipped.entry(reason).or_insert(0) += n;
    }
    stats.evidence = evidence - duplicates;
    stats.skipped = skipped;
    Ok(stats)
}

/// One export or dump, by its name (`kind_of`, the origin without a compression suffix):
/// `.csv` is a dashboard export, anything else API JSON.
fn read_one(
    kind_of: &str,
    origin: &str,
    input: impl std::io::BufRead,
    window: &Window,
    sink: &mut dyn Sink,
    stats: &mut StripeStats,
) {
    let is_csv = Path::new(kind_of)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if is_csv {
        stats.rows += dashboard::read(input, origin, window, sink);
    } else {
        stats.objects += json::read_from(input, origin, window, sink);
    }
}

/// One file's content, named `name` (its extension decides: `.csv` is a dashboard export,
/// anything else API JSON), as [`read`] reads each file; for callers that hold the bytes.
pub fn read_bytes(
    name: &str,
    bytes: &[u8],
    rules: &StripeRules,
    window: &Window,
    sink: &mut dyn Sink,
) -> StripeStats {
    let mut dedup = Dedup::new(sink);
    let mut counted = Counting::new(RulesSink {
        inner: &mut dedup,
        rules,
    });
    let mut stats = StripeStats {
        files: 1,
        ..StripeStats::default()
    };
    read_one(name, name, bytes, window, &mut counted, &mut stats);
    let (evidence, mut skipped) = (counted.evidence, counted.skipped);
    for (reason, n) in dedup.skipped_since(&BTreeMap::new()) {
        *skipped.entry(reason).or_insert(0) += n;
    }
    stats.evidence = evidence - dedup.duplicates;
    stats.skipped = skipped;
    stats
}

fn file_skip(origin: &str, e: &std::io::Error) -> Skip {
    Skip {
        provenance: Provenance {
            source: SourceKind::Stripe,
            origin: origin.to_string(),
            locator: "file".into(),
        },
        reason: SkipReason::Malformed,
        detail: format!("cannot read the file: {e}"),
    }
}

/// Evidence from one object, through the window, into the sink.
pub(crate) fn emit(
    json: &serde_json::Value,
    provenance: Provenance,
    window: &Window,
    sink: &mut dyn Sink,
) {
    match object::evidence(json, provenance.clone()) {
        // An object is news of when it was observed: when it was created, or the time of the
        // event that carries it, whenever the object was created.
        Ok(ev) => match ev.observed_at.map(|t| {
            let created = ev
                .get(crate::evidence::field::CREATED)
                .and_then(Value::as_time);
            (
                t,
                if created == Some(t) {
                    "created"
                } else {
                    "from an event at"
                },
            )
        }) {
            Some((t, what)) if !window.contains(t) => sink.skip(Skip {
                detail: format!(
                    "{} {what} {} is outside the window",
                    ev.kind,
                    Value::Time(t)
                ),
                provenance: ev.provenance,
                reason: SkipReason::OutsideWindow,
            }),
            _ => sink.evidence(ev),
        },
        Err((reason, detail)) => sink.skip(Skip {
            provenance,
            reason,
            detail,
        }),
    }
}

/// Applies the mapping's aliases and patterns to every evidence on its way through.
pub(crate) struct RulesSink<'a> {
    pub inner: &'a mut dyn Sink,
    pub rules: &'a StripeRules,
}

impl Sink for RulesSink<'_> {
    fn evidence(&mut self, mut ev: Evidence) {
        // Aliases first: what the record states outright wins over what a pattern finds in
        // free text.
        for (from, to) in &self.rules.aliases {
            if ev.fields.contains_key(to) {
                continue;
            }
            if let Some(v) = ev.get(from).cloned() {
                ev.set(to.clone(), v);
            }
        }
        apply_patterns(&mut ev, &self.rules.patterns);
        self.inner.evidence(ev);
    }

    fn skip(&mut self, skip: Skip) {
        self.inner.skip(skip);
    }
}

/// Counts what passes, for the accounting.
pub(crate) struct Counting<S: Sink> {
    pub inner: S,
    pub evidence: usize,
    pub skipped: BTreeMap<SkipReason, usize>,
}

impl<S: Sink> Counting<S> {
    pub fn new(inner: S) -> Self {
        Counting {
            inner,
            evidence: 0,
            skipped: BTreeMap::new(),
        }
    }
}

impl<S: Sink> Sink for Counting<S> {
    fn evidence(&mut self, ev: Evidence) {
        self.evidence += 1;
        self.inner.evidence(ev);
    }

    fn skip(&mut self, skip: Skip) {
        *self.skipped.entry(skip.reason).or_insert(0) += 1;
        self.inner.skip(skip);
    }
}

impl Sink for &mut dyn Sink {
    fn evidence(&mut self, ev: Evidence) {
        (**self).evidence(ev);
    }

    fn skip(&mut self, skip: Skip) {
        (**self).skip(skip);
    }
}
