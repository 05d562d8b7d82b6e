//! Small cases written by hand: evidence items one per line (`evidence.txt`) and the restored
//! database's rows (`baseline.sql`, into the reference schema, after tests/fixtures/cases/base.sql).
//!
//! An evidence line is `source kind observed-at field=value …`; values with spaces are quoted;
//! `created`, `starts_at`, `ends_at` and `refunded_at` are instants, `amount` and
//! `amount_refunded` are money ("120.00 EUR").

use std::path::Path;

use gapfill::drift::Report;
use gapfill::evidence::{Evidence, Provenance, SourceKind, Value};
use gapfill::plan::Plan;

/// Splits a line into words, keeping "quoted text" together.
pub fn words(line: &str) -> Vec<String> {
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

pub fn parse_evidence(path: &Path, text: &str) -> Vec<Evidence> {
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

/// The case's restored database, as SQLite in `tmp`: the reference schema, the shared rows
/// (locations, vehicles) and the case's own `baseline.sql`. Returns its URL.
pub fn restored_db(dir: &Path, tmp: &Path) -> String {
    let db = tmp.join("restored.db");
    let schema_sql = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/car-rental/schema.sqlite.sql"),
    )
    .unwrap();
    let base = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cases/base.sql"),
    )
    .unwrap();
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
    format!("sqlite://{}", db.display())
}

/// The case's evidence.
pub fn evidence(dir: &Path) -> Vec<Evidence> {
    let path = dir.join("evidence.txt");
    parse_evidence(&path, &std::fs::read_to_string(&path).unwrap())
}

/// Plans the case with the reference mapping through the library, as `plan` does, or as `drift`
/// does (every item may change a row, and the findings come too).
pub fn run(dir: &Path, drift: bool) -> (Plan, Option<Report>) {
    let reference = Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings/car-rental.toml");
    let loaded = gapfill::mapping::Mapping::load(&reference).unwrap();
    // A case about a mapping that says less than the reference one: the reference mapping with
    // the lines `mapping-without.txt` lists (each a whole line of it) taken out.
    let loaded = match std::fs::read_to_string(dir.join("mapping-without.txt")) {
        Err(_) => loaded,
        Ok(without) => {
            let text = std::fs::read_to_string(&reference).unwrap();
            let drop: Vec<&str> = without
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.starts_with("# "))
                .collect();
            for l in &drop {
                assert!(
                    text.lines().any(|t| t == *l),
                    "{}: no line {l:?} in the mapping",
                    dir.display()
                );
            }
            let kept: Vec<&str> = text.lines().filter(|t| !drop.contains(t)).collect();
            let path = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(path.path(), kept.join("\n")).unwrap();
            gapfill::mapping::Mapping::load(path.path()).unwrap()
        }
    };
    let tmp = tempfile::tempdir().unwrap();
    let url = restored_db(dir, tmp.path());
    let evidence = evidence(dir);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut conn = gapfill::dburl::connect_read_only(&url).await.unwrap();
        let schema = gapfill::schema::introspect(&mut conn, gapfill::dburl::Dialect::Sqlite)
            .await
            .unwrap();
        let base = gapfill::baseline::load(&mut conn, &schema, &loaded.mapping, &mut |_, _| {})
            .await
            .unwrap();
        let rec = gapfill::matching::reconstruct(&loaded.mapping, &evidence, &base);
        let duplicates = gapfill::drift::duplicates(&rec);
        let plan = gapfill::plan::build(
            &gapfill::plan::Context {
                mapping: &loaded.mapping,
                mapping_hash: &loaded.hash,
                schema: &schema,
                baseline: &base,
                evidence: &evidence,
                window: Default::default(),
                overlap_confirms_only: !drift,
            },
            rec,
        );
        let report = drift.then(|| {
            gapfill::drift::build(
                &gapfill::drift::Context {
                    mapping: &loaded.mapping,
                    baseline: &base,
                    evidence: &evidence,
                    duplicates: &duplicates,
                },
                &plan,
                0,
            )
        });
        (plan, report)
    })
}
