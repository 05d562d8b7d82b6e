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
