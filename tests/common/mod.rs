//! Shared helpers for the integration tests: run the real binary, make small incidents.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn gapfill(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gapfill"))
        .args(args)
        .env_remove("DATABASE_URL")
        .output()
        .expect("the gapfill binary runs")
}

/// Runs gapfill and returns its stdout, failing the test with its stderr when it fails.
pub fn gapfill_ok(args: &[&str]) -> String {
    let out = gapfill(args);
    assert!(
        out.status.success(),
        "gapfill {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// A small incident written into a fresh temporary folder.
pub fn incident(seed: u64, reservations: u64, noise: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("incident");
    gapfill_ok(&[
        "simulate",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
        "--seed",
        &seed.to_string(),
        "--reservations",
        &reservations.to_string(),
        "--gap-days",
        "30",
        "--noise",
        noise,
    ]);
    (dir, out)
}

pub fn evaluate_json(truth: &Path, db: &str) -> serde_json::Value {
    let text = gapfill_ok(&[
        "evaluate",
        "--truth",
        truth.to_str().unwrap(),
        "--db",
        db,
        "--format",
        "json",
    ]);
    serde_json::from_str(&text).expect("evaluate --format json prints JSON")
}

pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// The report's tables without the fields that name the database, for comparing evaluations of
/// the same data in different databases.
pub fn tables(report: &serde_json::Value) -> serde_json::Value {
    report["tables"].clone()
}
