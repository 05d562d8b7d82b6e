//! The generic CSV source (`--csv`): each fixture folder under tests/fixtures/csv/ has its
//! `[sources.csv]` rules, its exports, and the evidence expected from them.

mod sources_support;

use gapfill::sources::csv::{read, CsvRules};
use sources_support::{check, fixture_dirs, window, Recorder};

#[test]
fn fixtures_give_the_expected_evidence_and_skips() {
    for dir in fixture_dirs("csv") {
        let rules: CsvRules =
            toml::from_str(&std::fs::read_to_string(dir.join("rules.toml")).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mut rec = Recorder::new(&dir);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "csv"))
            .collect();
        files.sort();
        let mut out = String::new();
        for f in files {
            let stats = read(&f, &rules, &window(&dir), &mut rec).unwrap();
            assert_eq!(
                stats.rows,
                stats.evidence + stats.skipped,
                "every row accounted for"
            );
            out = format!("{out}# {stats:?}\n");
        }
        let got = format!("{}{out}", rec.lines.concat());
        check(&dir, &got);
    }
}

#[test]
fn rules_that_cannot_work_are_refused_with_the_reason() {
    let bad: CsvRules = toml::from_str("timezone = \"Mars/Olympus\"").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("a.csv");
    std::fs::write(&f, "a\n1\n").unwrap();
    let err = read(
        &f,
        &bad,
        &Default::default(),
        &mut Recorder::new(dir.path()),
    )
    .unwrap_err();
    assert!(err.to_string().contains("not an IANA zone"), "{err}");
    let unknown = toml::from_str::<CsvRules>("colums = {}").unwrap_err();
    assert!(unknown.to_string().contains("unknown field"), "{unknown}");
}

#[test]
fn a_missing_path_is_an_error_naming_it() {
    let err = read(
        std::path::Path::new("/nonexistent/x.csv"),
        &CsvRules::default(),
        &Default::default(),
        &mut Recorder::new(std::path::Path::new("/")),
    )
    .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/x.csv"), "{err}");
}
