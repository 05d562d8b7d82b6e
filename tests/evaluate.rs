//! `gapfill evaluate` against SQLite: the restored backup recovers nothing and corrupts nothing;
//! the truth against itself is perfect.

mod common;

use common::*;

#[test]
fn restored_backup_recovers_no_gap_row_and_corrupts_nothing() {
    let (_dir, out) = incident(7, 150, "medium");
    let r = evaluate_json(&out.join("truth.db"), &sqlite_url(&out.join("restored.db")));
    let total = &r["total"];
    assert!(total["gap_rows"].as_u64().unwrap() > 150, "{total}");
    assert_eq!(total["recovered"], 0);
    assert_eq!(total["recall"], 0.0);
    assert_eq!(total["pre_restore_corrupted"], 0);
    assert_eq!(total["pre_restore_missing"], 0);
    assert_eq!(total["duplicates"], 0);
    assert_eq!(total["wrong_merges"], 0);
    // Nothing beyond the backup's own rows, so precision has nothing to measure.
    assert_eq!(total["precision"], serde_json::Value::Null);
    for t in r["tables"].as_array().unwrap() {
        assert_eq!(t["pre_restore_corrupted"], 0, "{}", t["table"]);
    }
    let reservations = r["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "reservations")
        .unwrap();
    assert_eq!(reservations["gap_new"], 150);
    assert!(
        reservations["gap_changed"].as_u64().unwrap() > 0,
        "reservations completed or cancelled in the gap"
    );
    assert!(
        reservations["gap_with_evidence"].as_u64().unwrap() > 140,
        "{reservations}"
    );
}

#[test]
fn truth_against_itself_is_perfect() {
    let (_dir, out) = incident(3, 100, "high");
    let r = evaluate_json(&out.join("truth.db"), &sqlite_url(&out.join("truth.db")));
    for t in r["tables"].as_array().unwrap().iter().chain([&r["total"]]) {
        for metric in ["recall", "precision", "field_accuracy"] {
            if !t[metric].is_null() {
                assert_eq!(t[metric], 1.0, "{} {metric}", t["table"]);
            }
        }
        assert_eq!(t["duplicates"], 0);
        assert_eq!(t["unmatched"], 0);
    }
    assert_eq!(r["total"]["recall"], 1.0);
}

#[test]
fn text_report_shows_every_table_and_measure() {
    let (_dir, out) = incident(3, 40, "low");
    let text = gapfill_ok(&[
        "evaluate",
        "--truth",
        out.join("truth.db").to_str().unwrap(),
        "--db",
        &sqlite_url(&out.join("restored.db")),
    ]);
    for word in [
        "reservations",
        "customers",
        "payments",
        "recall",
        "corrupted",
    ] {
        assert!(text.contains(word), "{word} missing from:\n{text}");
    }
}

#[test]
fn a_database_that_is_not_a_truth_is_refused_clearly() {
    let (_dir, out) = incident(3, 30, "low");
    let r = gapfill(&[
        "evaluate",
        "--truth",
        out.join("restored.db").to_str().unwrap(),
        "--db",
        &sqlite_url(&out.join("restored.db")),
    ]);
    assert_eq!(r.status.code(), Some(1));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("is not a truth database written by `gapfill simulate`"),
        "{err}"
    );
    let r = gapfill(&[
        "evaluate",
        "--truth",
        out.join("truth.db").to_str().unwrap(),
        "--db",
        "postgres://app:hunter2@127.0.0.1:1/none",
    ]);
    assert_eq!(r.status.code(), Some(1));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("cannot connect to postgres://app:***@127.0.0.1:1/none"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "the password leaked: {err}");
}
