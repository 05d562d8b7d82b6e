//! Renderings of a plan for people: they only read plans.

use std::fmt::Write;

use super::{Decision, Op, Plan};

/// The summary `gapfill plan` prints and `gapfill show` starts with.
pub fn summary(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "restore point {}; evidence window {} to {}",
        plan.restore_point.as_deref().unwrap_or("unknown"),
        plan.window.since.as_deref().unwrap_or("the beginning"),
        plan.window.until.as_deref().unwrap_or("now"),
    );
    if !plan.summary.entities.is_empty() {
        let found: Vec<String> = plan
            .summary
            .entities
            .iter()
            .map(|(t, n)| format!("{n} {t}"))
            .collect();
        let _ = writeln!(out, "entities found: {}", found.join(", "));
    }
    let _ = writeln!(
        out,
        "{:<16} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "table", "insert", "(review)", "(reject)", "update", "(review)", "(reject)"
    );
    for (table, t) in &plan.summary.tables {
        let n = |m: &std::collections::BTreeMap<Decision, u64>, d| m.get(&d).copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "{table:<16} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            n(&t.inserts, Decision::Accepted),
            n(&t.inserts, Decision::NeedsReview),
            n(&t.inserts, Decision::Rejected),
            n(&t.updates, Decision::Accepted),
            n(&t.updates, Decision::NeedsReview),
            n(&t.updates, Decision::Rejected),
        );
    }
    let accepted = plan
        .changes
        .iter()
        .filter(|c| c.decision == Decision::Accepted)
        .count();
    let review = plan
        .changes
        .iter()
        .filter(|c| c.decision == Decision::NeedsReview)
        .count();
    let _ = writeln!(
        out,
        "{} changes: {accepted} accepted automatically, {review} need review, {} rejected; {} existing rows already agree; {} evidence items matched nothing",
        plan.changes.len(),
        plan.changes.len() - accepted - review,
        plan.summary.unchanged,
        plan.summary.unmatched,
    );
    out
}

/// Every change, one block each, with its decision coloured when `colour` (a terminal without
/// NO_COLOR): green accepted, yellow to review, red rejected.
pub fn text_coloured(plan: &Plan, colour: bool) -> String {
    let mut out = summary(plan);
    out += &changes(plan, colour);
    out
}

/// Every change, one block each: key, decision, changed columns, reasons.
pub fn text(plan: &Plan) -> String {
    text_coloured(plan, false)
}

fn changes(plan: &Plan, colour: bool) -> String {
    let mut out = String::new();
    // The colour codes of ECMA-48: 32 green, 33 yellow, 31 red.
    let paint = |d: Decision| {
        let code = match d {
            Decision::Accepted => "32",
            Decision::NeedsReview => "33",
            Decision::Rejected => "31",
        };
        if colour {
            format!("\x1b[{code}m{}\x1b[0m", d.as_str())
        } else {
            d.as_str().to_string()
        }
    };
    for c in &plan.changes {
        let what = match c.op {
            Op::Insert => format!("insert {} {}", c.table, c.local.as_deref().unwrap_or("")),
            Op::Update => format!(
                "update {} {}={}",
                c.table,
                c.key_column,
                c.key.as_deref().unwrap_or("")
            ),
        };
        let _ = writeln!(
            out,
            "\n{} {what} [{}, confidence {:.3}]",
            c.id,
            paint(c.decision),
            c.confidence
        );
        for col in &c.columns {
            match &col.before {
                Some(b) => {
                    let _ = writeln!(out, "  {}: {b} → {}", col.column, col.after.display());
                }
                None => {
                    let _ = writeln!(out, "  {}: {}", col.column, col.after.display());
                }
            }
            if let Some(why) = &col.inferred {
                let _ = writeln!(out, "    (inferred: {why})");
            }
        }
        for r in &c.reasons {
            let _ = writeln!(out, "  ! {r}");
        }
    }
    out
}
