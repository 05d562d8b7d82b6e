//! `gapfill simulate`: a whole incident, deterministic, with only gap-period evidence.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::Path;

fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn writes_every_artefact_of_an_incident() {
    let (_dir, out) = incident(7, 120, "medium");
    for f in [
        "truth.db",
        "restored.db",
        "restored.postgres.sql",
        "restored.mysql.sql",
        "gapfill.toml",
        "manifest.csv",
        "evidence/stripe/charges.json",
        "evidence/stripe/payment_intents.json",
        "evidence/stripe/refunds.json",
        "evidence/stripe/customers.json",
        "evidence/stripe/checkout_sessions.json",
        "evidence/stripe/payments.csv",
        "evidence/mail/bookings.mbox",
    ] {
        let p = out.join(f);
        assert!(
            p.is_file() && std::fs::metadata(&p).unwrap().len() > 0,
            "{f} missing or empty"
        );
    }
    let ics = std::fs::read_dir(out.join("evidence/calendar"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "ics")
        })
        .count();
    assert!(ics >= 1, "no calendar export");
    let config = std::fs::read_to_string(out.join("gapfill.toml")).unwrap();
    assert!(
        config.contains("database = \"sqlite://restored.db\""),
        "{config}"
    );
    let csv = std::fs::read_to_string(out.join("evidence/stripe/payments.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    for column in ["Created date (UTC)", "Amount", "booking_code (metadata)"] {
        assert!(header.contains(column), "{column} not in {header}");
    }
}

#[test]
fn the_same_seed_gives_byte_identical_files_and_another_seed_does_not() {
    let (_a, a) = incident(11, 80, "high");
    let (_b, b) = incident(11, 80, "high");
    let (fa, fb) = (files(&a), files(&b));
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (name, bytes) in &fa {
        assert!(
            bytes == &fb[name],
            "{name} differs between two runs with the same seed"
        );
    }
    let (_c, c) = incident(12, 80, "high");
    assert_ne!(files(&c)["restored.mysql.sql"], fa["restored.mysql.sql"]);
}

#[test]
fn bad_options_are_refused_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = gapfill(&[
        "simulate",
        "--out",
        dir.path().to_str().unwrap(),
        "--reservations",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--reservations must be at least 1"));
    let out = gapfill(&[
        "simulate",
        "--out",
        dir.path().to_str().unwrap(),
        "--noise",
        "extreme",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a usage error is an error; 2 means differences found"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value 'extreme'"));
    assert_eq!(gapfill(&["--help"]).status.code(), Some(0));
}

#[test]
fn an_earlier_incident_is_replaced_but_a_foreign_folder_is_refused() {
    let (_dir, out) = incident(5, 40, "medium");
    assert!(
        out.join("evidence/calendar/older").is_dir(),
        "medium noise writes an older snapshot"
    );
    gapfill_ok(&[
        "simulate",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
        "--reservations",
        "40",
        "--noise",
        "low",
    ]);
    assert!(
        !out.join("evidence/calendar/older").exists(),
        "a stale snapshot survived the new incident"
    );

    let foreign = tempfile::tempdir().unwrap();
    std::fs::write(foreign.path().join("notes.txt"), "keep me").unwrap();
    let r = gapfill(&["simulate", "--out", foreign.path().to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stderr)
        .contains("is not empty and holds no earlier simulated incident"));
    assert_eq!(
        std::fs::read_to_string(foreign.path().join("notes.txt")).unwrap(),
        "keep me"
    );
}
