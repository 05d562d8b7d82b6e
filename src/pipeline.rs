//! `gapfill plan`: the whole pipeline, read-only, as one library call that tests can make.
//!
//! baseline (read-only snapshot) → evidence from every source over the window → matching →
//! plan. Each stage's wall time and the process's peak memory are kept for `--timings`.

use std::time::{Duration, Instant};

use crate::baseline::{self, Baseline};
use crate::dburl::{self, Dialect};
use crate::evidence::{Collected, Window};
use crate::mapping::{self, Loaded, Severity};
use crate::plan::{self, Plan};
use crate::sources::{self, Inputs, Tally};
use crate::{drift, matching, schema};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    #[error(transparent)]
    Url(#[from] dburl::UrlError),
    #[error(transparent)]
    Schema(#[from] schema::SchemaError),
    #[error(transparent)]
    Baseline(#[from] baseline::BaselineError),
    #[error("the mapping does not fit the database:\n{0}\nfix the mapping (see `gapfill check`)")]
    Mapping(String),
}

pub struct Request<'a> {
    pub mapping: &'a Loaded,
    pub url: &'a str,
    pub inputs: &'a Inputs,
    /// The window's bounds as given; `since` defaults to the inferred restore point less the
    /// mapping's overlap.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// A drift check: every evidence item in the window is compared with the live rows (none
    /// is only "confirming" for being older than the newest row), and the outcome carries the
    /// drift report.
    pub drift: bool,
    /// Called with each stage's name as it starts.
    pub progress: &'a mut dyn FnMut(&str),
}

pub struct Outcome {
    pub plan: Plan,
    pub tallies: Vec<Tally>,
    pub window: Window,
    /// Each stage: its name, wall time, and the process's peak memory when it ended.
    pub timings: Vec<(String, Duration, Option<u64>)>,
    /// The malformed input items the sources skipped, each with its place and what was wrong,
    /// for the report to list (the other skips are only counted).
    pub malformed: Vec<crate::evidence::Skip>,
    /// The plan read as disagreements, when the request was a drift check.
    pub drift: Option<drift::Report>,
}

/// Runs the pipeline and returns the plan; writes nothing anywhere.
pub async fn run(req: Request<'_>) -> Result<Outcome, PipelineError> {
    let mut timings = Vec::new();
    let mut stage = Instant::now();
    let lap =
        |name: &str, timings: &mut Vec<(String, Duration, Option<u64>)>, stage: &mut Instant| {
            timings.push((name.to_string(), stage.elapsed(), peak_memory()));
            *stage = Instant::now();
        };
    (req.progress)("reading the baseline");
    let dialect = Dialect::of(req.url)?;
    let mut conn = dburl::connect_read_only(req.url).await?;
    let schema = schema::introspect(&mut conn, dialect).await?;
    let problems = mapping::check::against(&req.mapping.mapping, &req.mapping.locator, &schema);
    let errors: Vec<String> = problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .map(|p| p.to_string())
        .collect();
    if !errors.is_empty() {
        return Err(PipelineError::Mapping(errors.join("\n")));
    }
    baseline::begin_read_only(&mut conn, dialect).await?;
    let base: Baseline =
        baseline::load(&mut conn, &schema, &req.mapping.mapping, &mut |_, _| {}).await?;
    drop(conn);
    lap("baseline", &mut timings, &mut stage);

    (req.progress)("reading evidence");
    let window = Window {
        since: req.since.or(base.window_start),
        until: req.until,
    };
    let mut collected = Collected::default();
    let tallies = sources::read_all(
        req.inputs,
        &req.mapping.mapping.sources,
        &window,
        &mut collected,
    )
    .await;
    lap("evidence", &mut timings, &mut stage);

    (req.progress)("matching");
    let rec = matching::reconstruct(&req.mapping.mapping, &collected.evidence, &base);
    lap("matching", &mut timings, &mut stage);

    (req.progress)("planning");
    let ctx = plan::Context {
        mapping: &req.mapping.mapping,
        mapping_hash: &req.mapping.hash,
        schema: &schema,
        baseline: &base,
        evidence: &collected.evidence,
        window,
        overlap_confirms_only: !req.drift,
    };
    let skipped = collected.skipped.len() as u64;
    let mut malformed = std::mem::take(&mut collected.skipped);
    malformed.retain(|s| s.reason == crate::evidence::SkipReason::Malformed);
    let (plan, drift) = if req.drift {
        let duplicates = drift::duplicates(&rec);
        let mut plan = plan::build(&ctx, rec);
        plan.summary.skipped = skipped;
        let report = drift::build(
            &drift::Context {
                mapping: &req.mapping.mapping,
                baseline: &base,
                evidence: &collected.evidence,
                duplicates: &duplicates,
            },
            &plan,
            skipped,
        );
        (plan, Some(report))
    } else {
        // The plan is the last thing that needs the evidence: it takes it rather than copy it.
        let (mut plan, used) = plan::build_changes(&ctx, rec);
        plan.summary.skipped = skipped;
        drop(base);
        plan::take_evidence(&mut plan, &used, collected.evidence);
        (plan, None)
    };
    let mut plan = plan;
    plan.seal();
    lap("planning", &mut timings, &mut stage);
    Ok(Outcome {
        plan,
        tallies,
        window,
        timings,
        malformed,
        drift,
    })
}

/// The process's peak resident memory so far, in bytes (Linux), for `--timings`.
pub fn peak_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
