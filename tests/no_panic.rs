//! Inputs that once made gapfill panic, or could: each command line must end with exit 1 and an
//! error that says what was wrong, never a panic. A case is one line in `CASES`.

mod common;

use common::*;

/// (what, arguments with {incident} and {tmp} filled in, what the error must say)
const CASES: &[(&str, &str, &str)] = &[
    (
        "a --since too far back for any calendar",
        "evidence --calendar {incident}/evidence/calendar --since 9999999999999w",
        "is not an instant, a date or a duration",
    ),
    (
        "a --until of a duration that overflows",
        "evidence --calendar {incident}/evidence/calendar --until 99999999999999999999d",
        "is not an instant, a date or a duration",
    ),
    (
        "a mapping overlap of billions of weeks",
        "plan --mapping {fixtures}/huge-duration.toml --db {db} --calendar {incident}/evidence/calendar --out {tmp}/p.json",
        "is not a duration",
    ),
    (
        "a field read from no evidence field",
        "plan --mapping {fixtures}/empty-from.toml --db {db} --calendar {incident}/evidence/calendar --out {tmp}/p.json",
        "names no evidence field",
    ),
    (
        "a plan file that is not JSON",
        "apply {tmp}/garbage.json --db {db} --yes",
        "is not a gapfill plan",
    ),
    (
        "a review file that is not the plan's",
        "review {tmp}/made.json --import {tmp}/garbage.json",
        "",
    ),
];

#[test]
fn no_input_makes_gapfill_panic() {
    let (dir, incident) = incident(42, 20, "low");
    let tmp = dir.path();
    std::fs::write(
        tmp.join("garbage.json"),
        "{\"format\": \"gapfill-plan\", \u{0}",
    )
    .unwrap();
    let db = sqlite_url(&incident.join("restored.db"));
    plan_incident(&incident, &db, &tmp.join("made.json"), &[]);
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mapping/errors");
    let mut failures = Vec::new();
    for (what, line, says) in CASES {
        let line = line
            .replace("{incident}", incident.to_str().unwrap())
            .replace("{tmp}", tmp.to_str().unwrap())
            .replace("{fixtures}", fixtures.to_str().unwrap())
            .replace("{db}", &db);
        let args: Vec<&str> = line.split(' ').collect();
        let out = gapfill(&args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        if out.status.code() != Some(1) || err.contains("panicked") || !err.contains(says) {
            failures.push(format!("{what}: exit {:?}\n{err}", out.status.code()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
