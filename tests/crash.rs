//! Killing `gapfill apply` at any moment leaves the database either untouched or fully applied,
//! and a later apply completes (SPEC §3, invariant 3). Fifty kills at spread-out moments on
//! SQLite and on PostgreSQL, each on a fresh copy of the restored backup.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const RUNS: u64 = 50;
const TABLES: [&str; 3] = ["customers", "reservations", "payments"];

fn counts(url: &str) -> Vec<u64> {
    let mut out = Vec::new();
    for t in TABLES.iter().chain(["gapfill_audit"].iter()) {
        let q = format!("SELECT count(*) FROM {t}");
        let o = if let Some(path) = url.strip_prefix("sqlite://") {
            Command::new("sqlite3").args([path, &q]).output()
        } else {
            Command::new("psql").args([url, "-tAc", &q]).output()
        }
        .expect("the client runs");
        // The audit table does not exist until the first apply gets that far.
        out.push(
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse()
                .unwrap_or(0),
        );
    }
    out
}

/// A kill moment for run `i`: spread over the whole apply and a little after, in a fixed order.
fn moment(i: u64, full: Duration) -> Duration {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    let frac = ((z ^ (z >> 31)) % 10_000) as f64 / 10_000.0;
    full.mul_f64(frac * 1.2)
}

fn apply(plan: &Path, url: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_gapfill"))
        .args([
            "apply",
            plan.to_str().unwrap(),
            "--db",
            url,
            "--yes",
            "--quiet",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("gapfill runs")
}

/// Runs the experiment; `fresh(i)` gives a new copy of the restored backup and its guard.
fn crash_test<G>(plan: &Path, fresh: impl Fn(u64) -> (String, G)) {
    // One apply to the end: how long it takes and what "fully applied" looks like.
    let (url, _g) = fresh(0);
    let untouched = counts(&url);
    let started = Instant::now();
    let status = apply(plan, &url).wait().unwrap();
    assert!(status.success());
    let full = started.elapsed();
    let applied = counts(&url);
    assert_ne!(untouched, applied, "the plan changes something");
    let (mut killed_untouched, mut killed_applied) = (0, 0);
    for i in 1..=RUNS {
        let (url, _g) = fresh(i);
        let mut child = apply(plan, &url);
        std::thread::sleep(moment(i, full));
        let _ = child.kill();
        let _ = child.wait();
        let now = counts(&url);
        if now == untouched {
            killed_untouched += 1;
        } else if now == applied {
            killed_applied += 1;
        } else {
            panic!("run {i}: killed after {:?}, the database is half applied: {now:?} (untouched {untouched:?}, applied {applied:?})", moment(i, full));
        }
        let status = apply(plan, &url).wait().unwrap();
        assert!(status.success(), "run {i}: the later apply fails");
        assert_eq!(counts(&url), applied, "run {i}: the later apply completes");
    }
    eprintln!(
        "{RUNS} kills over {full:?}: {killed_untouched} left the database untouched, {killed_applied} fully applied"
    );
    assert!(killed_untouched > 0, "some kills land before the commit");
}

#[test]
fn killing_apply_on_sqlite() {
    let (dir, incident) = incident(51, 400, "low");
    let restored = incident.join("restored.db");
    let plan = dir.path().join("plan.json");
    plan_incident(&incident, &sqlite_url(&restored), &plan, &[]);
    let root = dir.path().to_path_buf();
    crash_test(&plan, |i| {
        let db = root.join(format!("run{i}.db"));
        std::fs::copy(&restored, &db).unwrap();
        (sqlite_url(&db), ())
    });
}

#[test]
fn killing_apply_on_postgres() {
    let Some(base) = server("GAPFILL_TEST_POSTGRES") else {
        return;
    };
    let (dir, incident) = incident(52, 400, "low");
    let (template, _t) = postgres_db(&base, "crash", &incident.join("restored.postgres.sql"));
    let plan = dir.path().join("plan.json");
    plan_incident(&incident, &template, &plan, &[]);
    let template_name = template.rsplit('/').next().unwrap().to_string();
    crash_test(&plan, |i| {
        postgres_create(
            &base,
            &format!("{template_name}_r{i}"),
            Some(&template_name),
        )
    });
}
