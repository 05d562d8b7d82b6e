//! Fixture runner for the evidence sources: each folder under tests/fixtures/<source>/ holds the
//! input files, an optional `window` (since=…, until=…) and `expected.txt`, the evidence and skips
//! rendered in the order the source gave them. `UPDATE_EXPECT=1` (or `GAPFILL_BLESS=1`) rewrites
//! expected.txt.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use gapfill::evidence::{Evidence, Sink, Skip, Window};

/// Keeps evidence and skips in the order they came, rendered, origins made relative.
pub struct Recorder {
    pub root: String,
    pub lines: Vec<String>,
    pub evidence: Vec<Evidence>,
    pub skips: Vec<Skip>,
}

impl Recorder {
    pub fn new(root: &Path) -> Recorder {
        Recorder {
            root: format!("{}/", root.display()),
            lines: Vec::new(),
            evidence: Vec::new(),
            skips: Vec::new(),
        }
    }

    fn rel<'a>(&self, origin: &'a str) -> &'a str {
        origin.strip_prefix(self.root.as_str()).unwrap_or(origin)
    }
}

impl Sink for Recorder {
    fn evidence(&mut self, e: Evidence) {
        let mut s = format!(
            "evidence {} {} {}\n",
            e.kind,
            self.rel(&e.provenance.origin),
            e.provenance.locator
        );
        for (k, v) in &e.fields {
            s.push_str(&format!("  {k} = {v}\n"));
        }
        self.lines.push(s);
        self.evidence.push(e);
    }

    fn skip(&mut self, k: Skip) {
        self.lines.push(format!(
            "skip {} {} {}: {}\n",
            k.reason.as_str(),
            self.rel(&k.provenance.origin),
            k.provenance.locator,
            k.detail.replace(self.root.as_str(), "")
        ));
        self.skips.push(k);
    }
}

pub fn window(dir: &Path) -> Window {
    let mut w = Window::default();
    if let Ok(text) = std::fs::read_to_string(dir.join("window")) {
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("since=") {
                w.since = Some(v.trim().parse().expect("since is RFC 3339"));
            }
            if let Some(v) = line.strip_prefix("until=") {
                w.until = Some(v.trim().parse().expect("until is RFC 3339"));
            }
        }
    }
    w
}

pub fn fixture_dirs(source: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(source);
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("fixture folder")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    // A test over no fixtures passes for nothing.
    assert!(!dirs.is_empty(), "no fixture folders in {}", root.display());
    for d in &dirs {
        let inputs = std::fs::read_dir(d)
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name != "expected.txt" && name != "window"
            })
            .count();
        assert!(
            inputs > 0,
            "the fixture folder {} holds no input",
            d.display()
        );
    }
    dirs
}

/// Compares with expected.txt through expect-test, which shows a diff when they differ and
/// rewrites the file under UPDATE_EXPECT=1 (GAPFILL_BLESS=1, this project's word, too).
pub fn check(dir: &Path, got: &str) {
    let path = dir.join("expected.txt");
    if std::env::var_os("GAPFILL_BLESS").is_some() {
        std::fs::write(&path, got).unwrap();
        return;
    }
    expect_test::expect_file![path].assert_eq(got);
}
