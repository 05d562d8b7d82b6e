//! The evaluation as a table for people.

use std::fmt::Write;

use super::{Report, TableReport};

fn pct(v: Option<f64>) -> String {
    match v {
        Some(v) => format!("{:.2}%", v * 100.0),
        None => "n/a".to_string(),
    }
}

fn line(out: &mut String, t: &TableReport) {
    let c = &t.counts;
    let _ = writeln!(
        out,
        "{:<13}{:>9}{:>9}{:>9}{:>10}{:>11}{:>9}{:>11}{:>11}{:>6}{:>8}{:>10}{:>9}{:>11}",
        t.table,
        c.gap_rows,
        c.gap_new,
        c.gap_changed,
        c.gap_with_evidence,
        c.recovered,
        pct(t.recall),
        pct(t.recall_with_evidence),
        pct(t.precision),
        c.duplicates,
        c.wrong_merges,
        pct(t.field_accuracy),
        c.pre_restore_missing,
        c.pre_restore_corrupted,
    );
}

pub fn text(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "truth    {} (restore point {})",
        r.truth.display(),
        r.restore_point
    );
    let _ = writeln!(out, "database {}", r.db);
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<13}{:>9}{:>9}{:>9}{:>10}{:>11}{:>9}{:>11}{:>11}{:>6}{:>8}{:>10}{:>9}{:>11}",
        "table",
        "gap rows",
        "new",
        "changed",
        "evidence",
        "recovered",
        "recall",
        "recall(ev)",
        "precision",
        "dups",
        "merges",
        "fields",
        "missing",
        "corrupted"
    );
    for t in &r.tables {
        line(&mut out, t);
    }
    line(&mut out, &r.total);
    let _ = writeln!(out);
    let _ = writeln!(out, "field accuracy of gap rows present in the database, per column (* = audit column, not in the headline):");
    for t in &r.tables {
        let cols: Vec<String> = t
            .columns
            .iter()
            .filter(|c| c.compared > 0)
            .map(|c| {
                format!(
                    "{}{} {}",
                    c.column,
                    if c.audit { "*" } else { "" },
                    pct(c.accuracy)
                )
            })
            .collect();
        if !cols.is_empty() {
            let _ = writeln!(out, "  {:<13}{}", t.table, cols.join(", "));
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "gap rows: created or changed since the restore point; evidence: mentioned by some evidence; recall(ev): of those;\n\
         precision: of rows the database has beyond the pre-restore ones; missing and corrupted: pre-restore rows lost or altered."
    );
    out
}
