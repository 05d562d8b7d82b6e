//! The sources' malformed items are listed with their place after `plan` and `drift`, as the docs
//! promise, and a malformed record does not make drift fail: the rest of its file still counts.

mod common;

use common::*;

#[test]
fn plan_and_drift_list_malformed_input_with_its_place() {
    let (dir, incident) = incident(44, 20, "low");
    let db = sqlite_url(&incident.join("restored.db"));
    let mapping = incident.join("mapping.toml");
    let broken = dir.path().join("broken.ics");
    std::fs::write(
        &broken,
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:broken-1\r\nDTSTART:2026-99-99T25:00\r\nSUMMARY:RC-BROKEN1\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
    )
    .unwrap();
    let calendar = incident.join("evidence/calendar");
    let plan = dir.path().join("plan.json");
    let out = gapfill_ok(&[
        "plan",
        "--mapping",
        mapping.to_str().unwrap(),
        "--db",
        &db,
        "--calendar",
        calendar.to_str().unwrap(),
        "--calendar",
        broken.to_str().unwrap(),
        "--out",
        plan.to_str().unwrap(),
    ]);
    let listed = |text: &str| {
        text.lines()
            .any(|l| l.contains(broken.to_str().unwrap()) && l.contains("DTSTART"))
    };
    assert!(out.contains("malformed input (1)"), "{out}");
    assert!(listed(&out), "{out}");

    let args = [
        "drift",
        "--mapping",
        mapping.to_str().unwrap(),
        "--db",
        &db,
        "--calendar",
        calendar.to_str().unwrap(),
        "--calendar",
        broken.to_str().unwrap(),
    ];
    let text = gapfill(&args);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(listed(&stdout), "{stdout}");
    assert_ne!(
        text.status.code(),
        Some(1),
        "a malformed record is not an error of the run"
    );
    let mut json_args = args.to_vec();
    json_args.extend(["--format", "json"]);
    let json = gapfill(&json_args);
    let stderr = String::from_utf8_lossy(&json.stderr);
    assert!(listed(&stderr), "{stderr}");
    assert_ne!(json.status.code(), Some(1));
    serde_json::from_slice::<serde_json::Value>(&json.stdout).expect("stdout is the JSON report");
}

/// A named source that cannot be read at all stops the plan (it would lack everything the
/// source holds) unless the operator says so; a source that read items and gave no evidence is
/// a warning on stderr and in the accounting.
#[test]
fn an_unreadable_source_stops_the_plan_and_an_empty_one_is_a_warning() {
    let (dir, incident) = incident(47, 20, "low");
    let db = sqlite_url(&incident.join("restored.db"));
    let mapping = incident.join("mapping.toml");
    let plan = dir.path().join("plan.json");
    let calendar = incident.join("evidence/calendar");
    let missing = dir.path().join("no-such-export.ics");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "plan",
            "--mapping",
            mapping.to_str().unwrap(),
            "--db",
            &db,
            "--calendar",
            calendar.to_str().unwrap(),
            "--calendar",
            missing.to_str().unwrap(),
            "--out",
            plan.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let a = args(&[]);
    let out = gapfill(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no-such-export.ics") && err.contains("--allow-unreadable"),
        "{err}"
    );
    assert!(!plan.exists(), "no plan was written");
    let a = args(&["--allow-unreadable"]);
    gapfill_ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(plan.exists());

    let stripe = dir.path().join("stripe");
    std::fs::create_dir_all(&stripe).unwrap();
    std::fs::write(stripe.join("charges.json"), "").unwrap();
    let out = gapfill(&[
        "plan",
        "--mapping",
        mapping.to_str().unwrap(),
        "--db",
        &db,
        "--stripe",
        stripe.to_str().unwrap(),
        "--out",
        plan.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: stripe gave no evidence from 1 item"),
        "{err}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("the file is empty"), "{stdout}");
}
