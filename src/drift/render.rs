//! The drift report for people: what disagrees, grouped by kind, each with the evidence that
//! says so.

use std::fmt::Write;

use super::{Finding, Kind, Report};

/// The whole report as text. `fix` is the command that turns the findings into a plan.
pub fn text(report: &Report, fix: Option<&str>) -> String {
    let mut out = String::new();
    let since = report.window.since.as_deref().unwrap_or("the beginning");
    let until = report.window.until.as_deref().unwrap_or("now");
    let _ = writeln!(
        out,
        "drift check of {} evidence items from {since} to {until} ({} skipped by the sources)",
        report.summary.evidence, report.summary.skipped
    );
    let _ = writeln!(
        out,
        "{} existing rows agree with the evidence",
        report.summary.agreeing
    );
    for kind in [Kind::Missing, Kind::Contradicted, Kind::Duplicate] {
        let found: Vec<&Finding> = report.findings.iter().filter(|f| f.kind == kind).collect();
        if found.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "\n{} ({}): {}",
            kind.as_str(),
            found.len(),
            heading(kind)
        );
        for f in found {
            finding(&mut out, report, f);
        }
    }
    if !report.unmatched.is_empty() {
        let _ = writeln!(
            out,
            "\n{} evidence items belong to nothing (not drift; `gapfill drift --format json` lists them)",
            report.unmatched.len()
        );
    }
    if !report.ignored.is_empty() {
        // `ignored` is in the ignore file's order.
        let mut by_rule: Vec<(&str, usize)> = Vec::new();
        for i in &report.ignored {
            match by_rule.last_mut() {
                Some((r, n)) if *r == i.rule => *n += 1,
                _ => by_rule.push((i.rule.as_str(), 1)),
            }
        }
        let _ = writeln!(out, "\nignored as accepted:");
        for (rule, n) in by_rule {
            let _ = writeln!(out, "  {n:>5}  {rule}");
        }
    }
    for rule in &report.unused_rules {
        let _ = writeln!(
            out,
            "note: ignore rule {rule} silenced nothing; remove it when the difference is gone for good"
        );
    }
    let counts: Vec<String> = [Kind::Missing, Kind::Contradicted, Kind::Duplicate]
        .iter()
        .map(|k| {
            format!(
                "{} {}",
                report.summary.findings.get(k).copied().unwrap_or(0),
                k.as_str()
            )
        })
        .collect();
    if report.drifts() {
        let _ = writeln!(out, "\nDRIFT: {}", counts.join(", "));
        if let Some(fix) = fix {
            let _ = writeln!(out, "to fix it, plan from the same window:\n  {fix}");
        }
    } else {
        let _ = writeln!(out, "\nno drift: the database agrees with the evidence");
    }
    out
}

fn heading(kind: Kind) -> &'static str {
    match kind {
        Kind::Missing => "evidence of rows the database does not have",
        Kind::Contradicted => "rows the evidence contradicts",
        Kind::Duplicate => "rows that the same identifiers point at",
    }
}

fn finding(out: &mut String, report: &Report, f: &Finding) {
    let _ = writeln!(
        out,
        "  {} {} {}  [{}]",
        f.table,
        f.label,
        match f.kind {
            Kind::Duplicate => format!("(rows {})", f.rows.join(", ")),
            _ => String::new(),
        },
        f.id
    );
    match f.kind {
        Kind::Contradicted => {
            for c in &f.fields {
                let _ = writeln!(
                    out,
                    "      {}: database {}, evidence {} ({})",
                    c.column,
                    quoted(c.database.as_deref()),
                    quoted(Some(&c.evidence)),
                    sources(report, &c.sources)
                );
                if let Some(why) = &c.inferred {
                    let _ = writeln!(out, "        inferred: {why}");
                }
            }
        }
        Kind::Missing | Kind::Duplicate => {
            let _ = writeln!(out, "      seen in {}", sources(report, &f.evidence));
        }
    }
    for r in &f.reasons {
        let _ = writeln!(out, "      note: {r}");
    }
}

fn quoted(v: Option<&str>) -> String {
    match v {
        Some(v) => format!("{v:?}"),
        None => "empty".into(),
    }
}

/// `mail cancellation <id@host> 2026-07-01T10:00:00Z, stripe charge ch_…`: at most three.
fn sources(report: &Report, ids: &[String]) -> String {
    let mut parts: Vec<String> = ids
        .iter()
        .take(3)
        .map(|id| match report.evidence.get(id) {
            Some(e) => {
                let locator = e
                    .locator
                    .split_whitespace()
                    .find(|t| t.starts_with('<') || t.contains('_') || t.contains('@'))
                    .unwrap_or(&e.locator);
                format!(
                    "{} {} {}{}",
                    e.source,
                    e.kind,
                    locator,
                    e.observed_at
                        .as_deref()
                        .map(|t| format!(" {t}"))
                        .unwrap_or_default()
                )
            }
            None => id.clone(),
        })
        .collect();
    if ids.len() > 3 {
        parts.push(format!("and {} more", ids.len() - 3));
    }
    parts.join("; ")
}
