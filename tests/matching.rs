//! Matching's hard cases, one folder each in tests/fixtures/matching/: a few evidence items
//! (`evidence.txt`, one per line), the restored database's rows (`baseline.sql`), and the plan
//! they must give (`expected.txt`); tests/common/cases.rs reads them. A case found in the field is
//! a new folder. `GAPFILL_BLESS=1 cargo test --test matching` rewrites the expected files.

mod common;

use std::fmt::Write;
use std::path::{Path, PathBuf};

use gapfill::plan::{After, Plan};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/matching")
}

/// The plan as a person would check it: one block per change, then what matched nothing.
fn render(plan: &Plan) -> String {
    let mut out = String::new();
    for c in &plan.changes {
        let who = match (&c.key, &c.local) {
            (Some(k), _) => format!("{}={k}", c.key_column),
            (None, Some(l)) => l.clone(),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{:?} {} {who} [{}]",
            c.op,
            c.table,
            c.decision.as_str()
        );
        for col in &c.columns {
            if col.after == After::Now || col.column == "created_at" {
                continue;
            }
            match &col.before {
                Some(b) => {
                    let _ = writeln!(out, "  {}: {b} -> {}", col.column, col.after.display());
                }
                None => {
                    let _ = writeln!(out, "  {}: {}", col.column, col.after.display());
                }
            }
            if let Some(why) = &col.inferred {
                let _ = writeln!(out, "    inferred: {why}");
            }
        }
        for r in &c.reasons {
            let _ = writeln!(out, "  ! {r}");
        }
        for x in &c.explanation {
            let _ = writeln!(out, "  = {x}");
        }
    }
    for u in &plan.unmatched {
        let e = &plan.evidence[&u.evidence];
        let _ = writeln!(out, "unmatched {}: {}", e.locator, u.why);
    }
    let _ = writeln!(out, "unchanged existing rows: {}", plan.summary.unchanged);
    out
}

fn run_case(dir: &Path) -> String {
    render(&common::cases::run(dir, false).0)
}

#[test]
fn hard_cases() {
    let bless = std::env::var_os("GAPFILL_BLESS").is_some();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(root())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 8, "the hard cases are all there");
    let mut failures = Vec::new();
    for dir in &cases {
        let got = run_case(dir);
        let expected_path = dir.join("expected.txt");
        if bless {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got != expected {
            failures.push(format!(
                "{}:\n--- expected\n{expected}\n--- got\n{got}",
                dir.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n(GAPFILL_BLESS=1 rewrites the expected files; check the diff)",
        failures.join("\n")
    );
}
