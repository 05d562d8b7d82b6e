//! `gapfill drift`: each kind of disagreement and the ignore file as small cases
//! (tests/fixtures/drift/<case>/: `evidence.txt`, `baseline.sql`, optional `ignore.toml`, and the
//! report people read, `expected.txt`; `GAPFILL_BLESS=1` rewrites it), then the whole command on
//! a simulated incident (truth agrees, the restored backup drifts), and proof that it writes
//! nothing on SQLite, PostgreSQL and MariaDB.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use gapfill::drift::{self, Kind, Report};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/drift")
}

fn report_of(dir: &Path) -> Report {
    let mut report = cases::run(dir, true).1.expect("a drift report");
    let ignore = dir.join("ignore.toml");
    if ignore.exists() {
        drift::ignore::Rules::load(&ignore)
            .unwrap()
            .apply(&mut report);
    }
    report
}

#[test]
fn each_kind_of_disagreement_and_the_ignore_file() {
    let bless = std::env::var_os("GAPFILL_BLESS").is_some();
    let mut failures = Vec::new();
    let mut kinds_seen = std::collections::BTreeSet::new();
    for case in ["missing", "contradicted", "duplicate", "ignored", "agrees"] {
        let dir = root().join(case);
        let report = report_of(&dir);
        // The JSON report reads back as the same report.
        let back: Report = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(back, report, "{case}: the JSON report round-trips");
        assert_eq!((back.format.as_str(), back.version), (drift::FORMAT, 1));
        kinds_seen.extend(report.findings.iter().map(|f| f.kind));
        if std::env::var_os("DRIFT_DEBUG").is_some() {
            eprintln!("{}", report.to_json());
        }
        let got = drift::render::text(&report, None);
        let expected_path = dir.join("expected.txt");
        if bless {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got != expected {
            failures.push(format!("{case}:\n--- expected\n{expected}\n--- got\n{got}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n(GAPFILL_BLESS=1 rewrites the expected files; check the diff)",
        failures.join("\n")
    );
    if !bless {
        assert_eq!(
            kinds_seen.into_iter().collect::<Vec<_>>(),
            vec![Kind::Missing, Kind::Contradicted, Kind::Duplicate]
        );
    }
}

#[test]
fn the_ignore_file_says_where_it_is_wrong() {
    let bad = [
        ("[[ignore]]\nkind = \"missing\"\n", "reason"),
        ("[[ignore]]\nreason = \"x\"\n", "selects nothing"),
        (
            "[[ignore]]\nreason = \"x\"\nkind = \"gone\"\n",
            "not one of missing, contradicted, duplicate",
        ),
        (
            "[[ignore]]\nreason = \"x\"\ntabel = \"payments\"\n",
            "tabel",
        ),
    ];
    for (text, says) in bad {
        let err = drift::ignore::Rules::parse(Path::new("drift-ignore.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("drift-ignore.toml:") && err.contains(says),
            "{text:?} gave {err:?}"
        );
    }
}

/// The incident's restore point less the mapping's overlap: the gap's evidence window.
fn gap_start(incident: &Path) -> String {
    let out = gapfill(&[
        "drift",
        "--config",
        incident.join("gapfill.toml").to_str().unwrap(),
        "--format",
        "json",
        "--quiet",
    ]);
    assert_eq!(out.status.code(), Some(2), "the restored backup drifts");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    report["window"]["since"].as_str().unwrap().to_string()
}

fn drift_json(incident: &Path, db: &str, since: &str) -> (i32, serde_json::Value) {
    let out = gapfill(&[
        "drift",
        "--config",
        incident.join("gapfill.toml").to_str().unwrap(),
        "--db",
        db,
        "--since",
        since,
        "--format",
        "json",
    ]);
    let code = out.status.code().unwrap_or(-1);
    assert!(
        code == 0 || code == 2,
        "drift failed ({code}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (code, serde_json::from_slice(&out.stdout).unwrap())
}

fn sqlite_rows(db: &Path, query: &str) -> Vec<String> {
    let out = Command::new("sqlite3")
        .args([db.to_str().unwrap(), query])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn the_truth_agrees_and_the_restored_backup_drifts() {
    let (_tmp, incident) = incident(31, 300, "low");
    let since = gap_start(&incident);
    let truth = incident.join("truth-copy.db");
    std::fs::copy(incident.join("truth.db"), &truth).unwrap();
    let truth_url = sqlite_url(&truth);

    let (code, report) = drift_json(&incident, &truth_url, &since);
    assert_eq!(
        code,
        0,
        "the truth drifts: {}",
        serde_json::to_string_pretty(&report["findings"]).unwrap()
    );
    assert_eq!(report["findings"].as_array().unwrap().len(), 0);
    let text = gapfill(&[
        "drift",
        "--config",
        incident.join("gapfill.toml").to_str().unwrap(),
        "--db",
        &truth_url,
        "--since",
        &since,
    ]);
    assert_eq!(text.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&text.stdout).contains("no drift"));

    let restored = incident.join("restored.db");
    let (code, report) = drift_json(&incident, &sqlite_url(&restored), &since);
    assert_eq!(code, 2);
    let findings = report["findings"].as_array().unwrap();
    // Every reservation the report says is missing is one the gap created, and nearly every one
    // the gap created is there.
    let old: std::collections::BTreeSet<String> =
        sqlite_rows(&restored, "SELECT booking_code FROM reservations")
            .into_iter()
            .collect();
    let gap_codes: std::collections::BTreeSet<String> = sqlite_rows(
        &incident.join("truth.db"),
        "SELECT booking_code FROM reservations",
    )
    .into_iter()
    .filter(|c| !old.contains(c))
    .collect();
    let missing: Vec<&str> = findings
        .iter()
        .filter(|f| f["kind"] == "missing" && f["table"] == "reservations")
        .filter_map(|f| f["label"].as_str()?.strip_prefix("booking_code "))
        .collect();
    assert!(missing.iter().all(|c| gap_codes.contains(*c)));
    assert!(
        missing.len() * 100 >= gap_codes.len() * 95,
        "{} of {} gap reservations reported missing",
        missing.len(),
        gap_codes.len()
    );
    // Every contradicted value is what the truth holds.
    let mut checked = 0;
    for f in findings.iter().filter(|f| f["kind"] == "contradicted") {
        let table = f["table"].as_str().unwrap();
        let key = f["rows"][0].as_str().unwrap();
        for field in f["fields"].as_array().unwrap() {
            let column = field["column"].as_str().unwrap();
            let truth_value = sqlite_rows(
                &incident.join("truth.db"),
                &format!("SELECT {column} FROM {table} WHERE id = {key}"),
            );
            assert_eq!(
                truth_value.first().map(String::as_str),
                field["evidence"].as_str(),
                "{table} {key} {column}"
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "the gap changed existing rows");
    // The text lists the same, for people.
    let text = gapfill(&[
        "drift",
        "--config",
        incident.join("gapfill.toml").to_str().unwrap(),
        "--since",
        &since,
        "--plan",
        incident.join("fix.json").to_str().unwrap(),
    ]);
    assert_eq!(text.status.code(), Some(2));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("DRIFT:") && text.contains(missing[0]),
        "{text}"
    );
    // The plan it wrote fixes what drifted: applied to a copy, the drift is gone.
    let fixed = incident.join("fixed.db");
    std::fs::copy(&restored, &fixed).unwrap();
    gapfill_ok(&[
        "review",
        incident.join("fix.json").to_str().unwrap(),
        "--accept-above",
        "0.6",
    ]);
    gapfill_ok(&[
        "apply",
        incident.join("fix.json").to_str().unwrap(),
        "--db",
        &sqlite_url(&fixed),
        "--yes",
    ]);
    let (_, after) = drift_json(&incident, &sqlite_url(&fixed), &since);
    let left = after["findings"].as_array().unwrap().len();
    assert!(
        left * 20 < findings.len(),
        "{left} of {} findings left after applying the drift's plan",
        findings.len()
    );
}

/// A digest of every table's rows, read with the database's own client.
fn contents(url: &str, tables: &[&str]) -> String {
    tables
        .iter()
        .map(|t| query(url, &format!("SELECT * FROM {t} ORDER BY 1")))
        .collect()
}

const TABLES: [&str; 5] = [
    "locations",
    "vehicles",
    "customers",
    "reservations",
    "payments",
];

fn assert_drift_writes_nothing(incident: &Path, url: &str, admin_url: &str) {
    let before = contents(admin_url, &TABLES);
    let out = gapfill(&[
        "drift",
        "--config",
        incident.join("gapfill.toml").to_str().unwrap(),
        "--db",
        url,
        "--since",
        "2000-01-01",
        "--quiet",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "drift on {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        contents(admin_url, &TABLES),
        before,
        "drift changed the database"
    );
}

#[test]
fn drift_writes_nothing_to_sqlite() {
    let (_tmp, incident) = incident(32, 60, "medium");
    let db = incident.join("restored.db");
    // Read-only at the file level too: a write would fail, not pass unseen.
    let bytes = std::fs::read(&db).unwrap();
    let mut perms = std::fs::metadata(&db).unwrap().permissions();
    perms.set_readonly(true);
    std::fs::set_permissions(&db, perms).unwrap();
    assert_drift_writes_nothing(&incident, &sqlite_url(&db), &sqlite_url(&db));
    assert_eq!(std::fs::read(&db).unwrap(), bytes, "the file changed");
    let leftovers: Vec<_> = std::fs::read_dir(&incident)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("restored.db-"))
        .collect();
    assert!(leftovers.is_empty(), "journal files: {leftovers:?}");
}

#[test]
fn drift_writes_nothing_to_postgres_with_a_read_only_role() {
    let Some(base) = server("GAPFILL_TEST_POSTGRES") else {
        return;
    };
    let (_tmp, incident) = incident(33, 60, "medium");
    let (admin, _guard) = postgres_db(&base, "drift", &incident.join("restored.postgres.sql"));
    let role = unique_name("ro");
    let db = admin.rsplit('/').next().unwrap().to_string();
    run(Command::new("psql").args([
        admin.as_str(),
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        &format!(
            "CREATE ROLE {role} LOGIN; GRANT CONNECT ON DATABASE {db} TO {role}; \
             GRANT USAGE ON SCHEMA public TO {role}; GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"
        ),
    ]));
    let drop_role = {
        let admin = format!("{base}/postgres");
        let role = role.clone();
        Dropper(Box::new(move || {
            let _ = Command::new("psql")
                .args([
                    admin.as_str(),
                    "-q",
                    "-c",
                    &format!("DROP ROLE IF EXISTS {role}"),
                ])
                .output();
        }))
    };
    let host = base.rsplit(['@', '/']).next().unwrap();
    let ro_url = format!("postgres://{role}@{host}/{db}");
    assert_drift_writes_nothing(&incident, &ro_url, &admin);
    drop(_guard);
    drop(drop_role);
}

#[test]
fn drift_writes_nothing_to_mariadb_with_a_read_only_user() {
    let Some(base) = server("GAPFILL_TEST_MYSQL") else {
        return;
    };
    let (_tmp, incident) = incident(34, 60, "medium");
    let (admin, _guard) = mysql_db(&base, "drift", &incident.join("restored.mysql.sql"));
    let db = admin.rsplit('/').next().unwrap().to_string();
    let user = unique_name("ro");
    let user = user.as_str();
    let (host, port, root) = mysql_parts(&base);
    let client = || {
        let mut c = Command::new("mariadb");
        c.args(["--protocol=tcp", "-h", &host, "-P", &port, "-u", &root]);
        c
    };
    run(client().args([
        "-e",
        &format!(
            "CREATE USER '{user}'@'%'; CREATE USER '{user}'@'localhost'; \
             GRANT SELECT ON {db}.* TO '{user}'@'%'; GRANT SELECT ON {db}.* TO '{user}'@'localhost'"
        ),
    ]));
    let _drop_user = {
        let user = user.to_string();
        let client = client();
        let program = client.get_program().to_owned();
        let args: Vec<_> = client.get_args().map(|a| a.to_owned()).collect();
        Dropper(Box::new(move || {
            let _ = Command::new(&program)
                .args(&args)
                .args([
                    "-e",
                    &format!("DROP USER IF EXISTS '{user}'@'%'; DROP USER IF EXISTS '{user}'@'localhost'"),
                ])
                .output();
        }))
    };
    let ro_url = format!("mysql://{user}@{host}:{port}/{db}");
    assert_drift_writes_nothing(&incident, &ro_url, &admin);
}
