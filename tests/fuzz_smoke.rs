//! A short, deterministic fuzz run of every parser a user feeds, in the test suite: each fuzz
//! target's body (fuzz/fuzz_targets/bodies.rs, shared with the libFuzzer targets) on the fixture
//! files and on a few hundred mutations of them (cuts, flipped bytes, inserted bytes, splices).
//! The long run is libFuzzer's: `cargo +nightly fuzz run <target>` in fuzz/ (README there).

#[path = "../fuzz/fuzz_targets/bodies.rs"]
mod bodies;

use std::path::{Path, PathBuf};

const MUTATIONS: usize = 1000;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file under `dir` whose name ends in one of `exts`, sorted; the fixture folders the
/// tests read must not be empty.
fn seeds(dirs: &[&str], exts: &[&str]) -> Vec<Vec<u8>> {
    let mut files = Vec::new();
    for d in dirs {
        let d = root().join(d);
        for e in walk(&d) {
            let name = e.to_string_lossy().into_owned();
            if exts.iter().any(|x| name.ends_with(x)) {
                files.push(e);
            }
        }
    }
    files.sort();
    assert!(!files.is_empty(), "no seed files in {dirs:?} ({exts:?})");
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// SplitMix64: the same mutations on every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Bytes that parsers treat specially, for insertion.
const TOKENS: &[&[u8]] = &[
    b"\"",
    b"\\",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b"\n",
    b"\r\n",
    b"\0",
    b"\xef\xbb\xbf",
    b"\xff\xfe",
    b"9999999999999999999999",
    b"-1",
    b"1e308",
    b"null",
    b"\"\xc3\x28\"",
    b"=",
    b"'''",
    b"#",
    b"\"id\":",
    b"\"data\":[",
    b"\"object\":\"list\",",
    b"\"amount\":",
    "\u{1F600}".as_bytes(),
    b"9999999999999w",
    b"from = []",
    b"[entities.x]",
    b"accept",
    b"reject",
];

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut v = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(4) {
        match rng.below(6) {
            0 if !v.is_empty() => v.truncate(rng.below(v.len())),
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            2 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                let i = rng.below(v.len() + 1);
                v.splice(i..i, t.iter().copied());
            }
            3 if !v.is_empty() => {
                // A chunk repeated: concatenated pages, duplicated lines.
                let a = rng.below(v.len());
                let b = (a + 1 + rng.below(200)).min(v.len());
                let chunk = v[a..b].to_vec();
                let i = rng.below(v.len() + 1);
                v.splice(i..i, chunk);
            }
            4 => {
                // Spliced with another seed.
                let other = &seeds[rng.below(seeds.len())];
                let cut = rng.below(other.len() + 1);
                let i = rng.below(v.len() + 1);
                v.truncate(i);
                v.extend_from_slice(&other[cut..]);
            }
            _ if !v.is_empty() => {
                let a = rng.below(v.len());
                let b = (a + rng.below(64)).min(v.len());
                v.drain(a..b);
            }
            _ => v.push(rng.below(256) as u8),
        }
    }
    v
}

fn smoke(name: &str, seeds: Vec<Vec<u8>>, body: fn(&[u8])) {
    // The body runs with the crate root as its folder, as in fuzz/.
    for s in &seeds {
        body(s);
    }
    body(b"");
    let mut rng = Rng(name
        .bytes()
        .fold(7, |h, b| h.wrapping_mul(31).wrapping_add(b as u64)));
    for _ in 0..MUTATIONS {
        let input = mutate(&mut rng, &seeds);
        let done = std::panic::catch_unwind(|| body(&input));
        if done.is_err() {
            let path = std::env::temp_dir().join(format!("gapfill-fuzz-{name}-crash"));
            std::fs::write(&path, &input).unwrap();
            panic!(
                "the {name} target failed on the input written to {}",
                path.display()
            );
        }
    }
}

#[test]
fn stripe_dumps_and_exports() {
    smoke(
        "stripe",
        seeds(&["tests/fixtures/stripe"], &[".json", ".jsonl", ".csv"]),
        bodies::stripe,
    );
}

#[test]
fn csv_exports() {
    smoke(
        "csv",
        seeds(&["tests/fixtures/csv"], &[".csv"]),
        bodies::csv,
    );
}

#[test]
fn mapping_config_and_ignore_files() {
    smoke(
        "mapping",
        seeds(
            &["mappings", "tests/fixtures/mapping", "tests/fixtures/drift"],
            &[".toml", ".ignore"],
        ),
        bodies::mapping,
    );
}

#[test]
fn plans_and_review_sheets() {
    smoke(
        "plan",
        seeds(&["tests/fixtures/review"], &[".json", ".csv"]),
        bodies::plan,
    );
}
