//! Matching's hard cases, one folder each in tests/fixtures/matching/: a few evidence items
//! (`evidence.txt`, one per line), the restored database's rows (`baseline.sql`, into the
//! reference schema), and the plan they must give (`expected.txt`). A case found in the field is
//! a new folder. `GAPFILL_BLESS=1 cargo test --test matching` rewrites the expected files.
//!
//! An evidence line is `source kind observed-at field=value …`; values with spaces are quoted;
//! `created`, `starts_at`, `ends_at` and `refunded_at` are instants, `amount` and
//! `amount_refunded` are money ("120.00 EUR").

use std::fmt::Write;
use std::path::{Path, PathBuf};

use gapfill::evidence::{Evidence, Provenance, SourceKind, Value};
use gapfill::plan::{After, Plan};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/matching")
}

/// Splits a line into words, keeping "quoted text" together.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn parse_evidence(path: &Path, text: &str) -> Vec<Evidence> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let w = words(line);
        let source = match w[0].as_str() {
            "stripe" => SourceKind::Stripe,
            "mail" => SourceKind::Mail,
            "calendar" => SourceKind::Calendar,
            "csv" => SourceKind::Csv,
            other => panic!("{}:{}: unknown source {other}", path.display(), n + 1),
        };
        let mut e = Evidence::new(
            Provenance {
                source,
                origin: path.file_name().unwrap().to_string_lossy().into(),
                locator: format!("line {}", n + 1),
            },
            w[1].clone(),
        );
        e.observed_at = Some(w[2].parse().expect("observed-at is an instant"));
        for kv in &w[3..] {
            let (k, v) = kv.split_once('=').expect("field=value");
            let value = match k {
                "created" | "starts_at" | "ends_at" | "refunded_at" => {
                    Value::Time(v.parse().expect("an instant"))
                }
                "amount" | "amount_refunded" => {
                    let (major, cur) = v.split_once(' ').expect("120.00 EUR");
                    let minor = (major.parse::<f64>().unwrap() * 100.0).round() as i64;
                    Value::Money {
                        minor,
                        currency: cur.into(),
                    }
                }
                _ => Value::text(v),
            };
            e.set(k, value);
        }
        out.push(e);
    }
    out
}

/// The plan as a person would check it: one block per change, then what matched nothing.
fn render(plan: &Plan) -> String {
    let mut out = String::new();
    for c in &plan.changes {
        let who = match (&c.key, &c.local) {
            (Some(k), _) => format!("{}={k}", c.key_column),
            (None, Some(l)) => l.clone(),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{:?} {} {who} [{}]",
            c.op,
            c.table,
            c.decision.as_str()
        );
        for col in &c.columns {
            if col.after == After::Now || col.column == "created_at" {
                continue;
            }
            match &col.before {
                Some(b) => {
                    let _ = writeln!(out, "  {}: {b} -> {}", col.column, col.after.display());
                }
                None => {
                    let _ = writeln!(out, "  {}: {}", col.column, col.after.display());
                }
            }
        }
        for r in &c.reasons {
            let _ = writeln!(out, "  ! {r}");
        }
        for x in &c.explanation {
            let _ = writeln!(out, "  = {x}");
        }
    }
    for u in &plan.unmatched {
        let e = &plan.evidence[&u.evidence];
        let _ = writeln!(out, "unmatched {}: {}", e.locator, u.why);
    }
    let _ = writeln!(out, "unchanged existing rows: {}", plan.summary.unchanged);
    out
}

fn run_case(dir: &Path) -> String {
    let mapping_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings/car-rental.toml");
    let loaded = gapfill::mapping::Mapping::load(&mapping_path).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("restored.db");
    let schema_sql = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/car-rental/schema.sqlite.sql"),
    )
    .unwrap();
    let base = std::fs::read_to_string(root().join("base.sql")).unwrap();
    let rows = std::fs::read_to_string(dir.join("baseline.sql")).unwrap_or_default();
    let script = format!("{schema_sql}\n{base}\n{rows}");
    let out = std::process::Command::new("sqlite3")
        .arg(&db)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(script.as_bytes())?;
            child.wait_with_output()
        })
        .expect("sqlite3 runs");
    assert!(
        out.status.success(),
        "{}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let evidence_path = dir.join("evidence.txt");
    let evidence = parse_evidence(
        &evidence_path,
        &std::fs::read_to_string(&evidence_path).unwrap(),
    );
    let url = format!("sqlite://{}", db.display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let plan = rt.block_on(async {
        let mut conn = gapfill::dburl::connect_read_only(&url).await.unwrap();
        let schema = gapfill::schema::introspect(&mut conn, gapfill::dburl::Dialect::Sqlite)
            .await
            .unwrap();
        let base = gapfill::baseline::load(&mut conn, &schema, &loaded.mapping, &mut |_, _| {})
            .await
            .unwrap();
        let rec = gapfill::matching::reconstruct(&loaded.mapping, &evidence, &base);
        let ctx = gapfill::plan::Context {
            mapping: &loaded.mapping,
            mapping_hash: &loaded.hash,
            schema: &schema,
            baseline: &base,
            evidence: &evidence,
            window: Default::default(),
            overlap_confirms_only: true,
        };
        gapfill::plan::build(&ctx, &rec)
    });
    render(&plan)
}

#[test]
fn hard_cases() {
    let bless = std::env::var_os("GAPFILL_BLESS").is_some();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(root())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 8, "the hard cases are all there");
    let mut failures = Vec::new();
    for dir in &cases {
        let got = run_case(dir);
        let expected_path = dir.join("expected.txt");
        if bless {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got != expected {
            failures.push(format!(
                "{}:\n--- expected\n{expected}\n--- got\n{got}",
                dir.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n(GAPFILL_BLESS=1 rewrites the expected files; check the diff)",
        failures.join("\n")
    );
}
