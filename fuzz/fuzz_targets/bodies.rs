//! What each fuzz target does with its input, shared by the libFuzzer targets beside this file and
//! by the test suite's smoke run (tests/fuzz_smoke.rs), which includes this file by path. Each body
//! feeds the bytes to a parser a user feeds and asserts what must hold for any input: no panic, no
//! hang, and every item read accounted for.

use std::path::Path;
use std::sync::LazyLock;

use gapfill::evidence::{Collected, Window};
use gapfill::mapping::Mapping;
use gapfill::plan::Plan;

static REFERENCE: LazyLock<gapfill::mapping::Loaded> = LazyLock::new(|| {
    Mapping::parse(
        Path::new("mappings/car-rental.toml"),
        include_str!("../../mappings/car-rental.toml"),
    )
    .expect("the reference mapping parses")
});

static CSV_RULES: LazyLock<gapfill::sources::csv::CsvRules> = LazyLock::new(|| {
    toml::from_str(include_str!("../../tests/fixtures/csv/walk-ins/rules.toml"))
        .expect("the walk-ins rules parse")
});

/// A small real plan, for review sheets to be imported into.
static PLAN: LazyLock<Plan> = LazyLock::new(|| {
    Plan::parse(
        Path::new("plan.json"),
        include_str!("../../tests/fixtures/review/plan.json"),
    )
    .expect("the review fixture plan parses")
});

fn window() -> Window {
    Window {
        since: "2026-01-01T00:00:00Z".parse().ok(),
        until: "2026-12-01T00:00:00Z".parse().ok(),
    }
}

/// Stripe API JSON (a list, an array, an object, JSON Lines) and dashboard CSV exports.
pub fn stripe(data: &[u8]) {
    let rules = &REFERENCE.mapping.sources.stripe;
    for name in ["fuzz.json", "fuzz.csv"] {
        let mut got = Collected::default();
        let stats = gapfill::sources::stripe::read_bytes(name, data, rules, &window(), &mut got);
        // Every object or row read ended as evidence or a skip (invariant 6); a file the reader
        // cannot take at all is one skip more.
        let read = stats.objects + stats.rows;
        let accounted = got.evidence.len() + got.skipped.len();
        assert!(
            accounted >= read && accounted <= read + 1,
            "{name}: {accounted} for {stats:?}"
        );
        assert_eq!(stats.evidence, got.evidence.len(), "{name}: {stats:?}");
    }
}

/// Generic CSV exports under a mapping's `[sources.csv]` rules.
pub fn csv(data: &[u8]) {
    let mut got = Collected::default();
    let stats =
        gapfill::sources::csv::read_bytes("fuzz.csv", data, &CSV_RULES, &window(), &mut got)
            .expect("the rules are right");
    assert_eq!(
        stats.evidence + stats.skipped,
        got.evidence.len() + got.skipped.len()
    );
}

/// Mapping files, config files and drift ignore files: parsed, and a mapping that parses is
/// checked for its shape.
pub fn mapping(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(loaded) = Mapping::parse(Path::new("fuzz.toml"), text) {
        let _ = gapfill::mapping::check::shape(&loaded.mapping, &loaded.locator);
    }
    let _ = gapfill::config::Config::parse(Path::new("/fuzz/gapfill.toml"), text);
    let _ = gapfill::drift::ignore::Rules::parse(Path::new("fuzz.ignore"), text);
}

/// Plan files (parsed, then rendered every way) and review sheets (imported into a real plan).
pub fn plan(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(plan) = Plan::parse(Path::new("fuzz.json"), text) {
        let _ = gapfill::plan::render::text(&plan);
        let _ = gapfill::plan::html::html(&plan);
        let _ = gapfill::plan::html::markdown(&plan);
        let _ = gapfill::plan::review::export_csv(&plan);
        let _ = plan.hash();
    }
    let _ = gapfill::plan::review::import_csv(&PLAN, text, "fuzz.csv");
}
