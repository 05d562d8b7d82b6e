//! The committed incidents in fixtures/ are exactly what the simulator writes today.
//!
//! They are small enough to read by hand and are what other tests build on. When the simulator
//! changes on purpose, refresh them with `GAPFILL_BLESS=1 cargo test --test fixtures` and review
//! the diff.

mod common;

use common::*;
use std::path::{Path, PathBuf};

/// (folder, seed, gap-period reservations, gap days, noise)
const FIXTURES: &[(&str, u64, u64, u32, &str)] = &[
    ("small-medium", 1, 24, 30, "medium"),
    ("small-high", 2, 24, 30, "high"),
];

fn all_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p)
            } else {
                out.push(p.strip_prefix(root).unwrap().to_path_buf())
            }
        }
    }
    out.sort();
    out
}

#[test]
fn committed_fixtures_match_the_simulator() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let bless = std::env::var_os("GAPFILL_BLESS").is_some();
    for (name, seed, n, gap, noise) in FIXTURES {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join(name);
        gapfill_ok(&[
            "simulate",
            "--quiet",
            "--out",
            fresh.to_str().unwrap(),
            "--seed",
            &seed.to_string(),
            "--reservations",
            &n.to_string(),
            "--gap-days",
            &gap.to_string(),
            "--noise",
            noise,
        ]);
        let committed = root.join(name);
        if bless {
            let _ = std::fs::remove_dir_all(&committed);
            for f in all_files(&fresh) {
                std::fs::create_dir_all(committed.join(&f).parent().unwrap()).unwrap();
                std::fs::copy(fresh.join(&f), committed.join(&f)).unwrap();
            }
            continue;
        }
        assert_eq!(
            all_files(&fresh),
            all_files(&committed),
            "fixtures/{name}: the set of files changed; GAPFILL_BLESS=1 refreshes it"
        );
        for f in all_files(&fresh) {
            let same = std::fs::read(fresh.join(&f)).unwrap()
                == std::fs::read(committed.join(&f)).unwrap();
            assert!(same, "fixtures/{name}/{} differs from what the simulator writes now; review the change and refresh with GAPFILL_BLESS=1", f.display());
        }
    }
}
