//! Mappings: `init` drafts one that `check` accepts, on all three databases; every kind of mistake
//! gets a located error; the baseline is read through the mapping, read-only, for the reference
//! schema and for a schema shaped nothing like it.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use gapfill::baseline;
use gapfill::dburl::{self, Dialect};
use gapfill::mapping::{self, Mapping};
use gapfill::schema;
use sqlx::Connection;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mapping")
}

fn reference_mapping() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings/car-rental.toml")
}

/// A SQLite database made from a script, in a temporary folder.
fn sqlite_db(script: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let script = script.to_string();
    block_on(async {
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(script))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    });
    (dir, sqlite_url(&path))
}

fn reference_sqlite() -> (tempfile::TempDir, String) {
    sqlite_db(gapfill::reference::DDL_SQLITE)
}

/// The reference schema, empty, in a new database on the test PostgreSQL server; None (the test
/// skips) when no server is configured.
fn reference_postgres(tag: &str) -> Option<(String, Dropper)> {
    let base = server("GAPFILL_TEST_POSTGRES")?;
    let ddl = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/car-rental/schema.postgres.sql");
    Some(postgres_db(&base, tag, &ddl))
}

/// The same on the test MariaDB server.
fn reference_mariadb(tag: &str) -> Option<(String, Dropper)> {
    let base = server("GAPFILL_TEST_MYSQL")?;
    let ddl = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/car-rental/schema.mysql.sql");
    Some(mysql_db(&base, tag, &ddl))
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Runtime::new().unwrap().block_on(f)
}

/// `init` writes a draft, `check` accepts it (with a warning per guess), and the shipped
/// reference mapping checks clean.
fn init_then_check(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let draft = dir.path().join("draft.toml");
    gapfill_ok(&[
        "init",
        "--quiet",
        "--db",
        url,
        "--out",
        draft.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&draft).unwrap();
    for entity in ["customer", "reservation", "payment"] {
        assert!(text.contains(&format!("[entities.{entity}]")), "{text}");
    }
    assert!(
        !text.contains("[entities.location]"),
        "reference data is looked up, not rebuilt"
    );
    let out = gapfill_ok(&["check", "--mapping", draft.to_str().unwrap(), "--db", url]);
    assert!(out.contains("warning: unconfirmed guess"), "{out}");
    assert!(out.trim_end().ends_with("warning(s))"), "{out}");
    // init never replaces a mapping someone may have edited.
    let again = gapfill(&["init", "--db", url, "--out", draft.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("never replaced"));

    let out = gapfill_ok(&[
        "check",
        "--mapping",
        reference_mapping().to_str().unwrap(),
        "--db",
        url,
    ]);
    assert!(
        out.contains("fits") && out.contains("(0 warning(s))"),
        "{out}"
    );
}

#[test]
fn init_then_check_on_sqlite() {
    let (_dir, url) = reference_sqlite();
    init_then_check(&url);
}

#[test]
fn init_then_check_on_postgres() {
    if let Some((url, _guard)) = reference_postgres("map") {
        init_then_check(&url);
    }
}

#[test]
fn init_then_check_on_mariadb() {
    if let Some((url, _guard)) = reference_mariadb("map") {
        init_then_check(&url);
    }
}

/// Each file in fixtures/mapping/errors holds one mistake; `check` must report it at its place,
/// exactly as the .expected file beside it says, and exit 1. GAPFILL_BLESS=1 rewrites them.
#[test]
fn every_kind_of_mistake_is_located() {
    let (_dir, url) = reference_sqlite();
    let dir = fixtures().join("errors");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 15, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_str().unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_gapfill"))
            .current_dir(&dir)
            .args(["check", "--mapping", name, "--db", &url])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{name} must fail the check");
        let got = String::from_utf8(out.stdout).unwrap();
        let expected_path = case.with_extension("expected");
        if std::env::var_os("GAPFILL_BLESS").is_some() {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got != expected {
            failures.push(format!("{name}:\n--- expected\n{expected}--- got\n{got}"));
        }
        // Every error names the file, a line and a column.
        let first = got.lines().next().unwrap();
        let mut parts = first.splitn(4, ':');
        assert_eq!(parts.next(), Some(name));
        assert!(parts.next().unwrap().parse::<usize>().is_ok(), "{first}");
        assert!(parts.next().unwrap().parse::<usize>().is_ok(), "{first}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The shape of the differently shaped schema's mapping, read through the loader: local
/// wall-clock times come back as UTC instants, UUID keys and decimal money as the database has
/// them, and no code assumed the reference schema.
fn other_schema_baseline(url: &str) -> baseline::Baseline {
    let loaded = Mapping::load(&fixtures().join("other-schema/mapping.toml")).unwrap();
    block_on(async {
        let dialect = Dialect::of(url).unwrap();
        let mut conn = dburl::connect_read_only(url).await.unwrap();
        let schema = schema::introspect(&mut conn, dialect).await.unwrap();
        let problems = mapping::check::against(&loaded.mapping, &loaded.locator, &schema);
        assert!(problems.is_empty(), "{problems:?}");
        baseline::begin_read_only(&mut conn, dialect).await.unwrap();
        baseline::load(&mut conn, &schema, &loaded.mapping, &mut |_, _| {})
            .await
            .unwrap()
    })
}

fn assert_other_schema(b: &baseline::Baseline) {
    let bookings = &b.entities["booking"];
    let row = &bookings.rows[0];
    let get = |name: &str| {
        row[bookings.column_index(name).unwrap()]
            .as_deref()
            .unwrap()
    };
    assert_eq!(get("booking_uuid"), "7d1e0a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b");
    // 10:00 in Lisbon in July is 09:00 UTC.
    assert_eq!(get("starts_local"), "2026-07-01T09:00:00Z");
    assert_eq!(get("price"), "289.50");
    // The restore point is the newest changed_local, 18:45 Lisbon summer time.
    assert_eq!(
        b.restore_point.unwrap().to_rfc3339(),
        "2026-06-20T17:45:00+00:00"
    );
    assert_eq!(
        b.window_start.unwrap().to_rfc3339(),
        "2026-06-20T05:45:00+00:00"
    );
    let clients = &b.entities["client"];
    // 01:30 on 2026-03-29 does not exist in Lisbon (clocks jump 01:00 → 02:00): read as 02:30
    // WEST, which is 01:30 UTC.
    let i = clients.column_index("signed_up_local").unwrap();
    assert_eq!(clients.rows[0][i].as_deref(), Some("2026-03-29T01:30:00Z"));
    assert_eq!(b.lookups["branches"].rows.len(), 2);
}

#[test]
fn a_differently_shaped_schema_in_sqlite() {
    let script =
        std::fs::read_to_string(fixtures().join("other-schema/schema.sqlite.sql")).unwrap();
    let (_dir, url) = sqlite_db(&script);
    assert_other_schema(&other_schema_baseline(&url));
    // init works there too, with nothing of the reference schema in it.
    let dir = tempfile::tempdir().unwrap();
    let draft = dir.path().join("draft.toml");
    gapfill_ok(&[
        "init",
        "--quiet",
        "--db",
        &url,
        "--out",
        draft.to_str().unwrap(),
    ]);
    gapfill_ok(&["check", "--mapping", draft.to_str().unwrap(), "--db", &url]);
}

#[test]
fn a_differently_shaped_schema_in_postgres() {
    let Some(base) = server("GAPFILL_TEST_POSTGRES") else {
        return;
    };
    let (url, _guard) = postgres_db(
        &base,
        "other",
        &fixtures().join("other-schema/schema.postgres.sql"),
    );
    assert_other_schema(&other_schema_baseline(&url));
}

/// The reference baseline from a simulated incident: every row of every mapped table, and a
/// restore point at most the overlap before the real one.
#[test]
fn the_reference_baseline_and_its_restore_point() {
    let (_dir, out) = incident(31, 60, "low");
    let url = sqlite_url(&out.join("restored.db"));
    let loaded = Mapping::load(&reference_mapping()).unwrap();
    let (b, counts, real_rp) = block_on(async {
        let mut conn = dburl::connect_read_only(&url).await.unwrap();
        let schema = schema::introspect(&mut conn, Dialect::Sqlite)
            .await
            .unwrap();
        baseline::begin_read_only(&mut conn, Dialect::Sqlite)
            .await
            .unwrap();
        let b = baseline::load(&mut conn, &schema, &loaded.mapping, &mut |_, _| {})
            .await
            .unwrap();
        let mut counts = Vec::new();
        for t in [
            "customers",
            "reservations",
            "payments",
            "locations",
            "vehicles",
        ] {
            let n: i64 =
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {t}")))
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
            counts.push(n as usize);
        }
        let mut truth = dburl::connect_read_only(&sqlite_url(&out.join("truth.db")))
            .await
            .unwrap();
        let rp: String =
            sqlx::query_scalar("SELECT value FROM _gapfill_incident WHERE key = 'restore_point'")
                .fetch_one(&mut truth)
                .await
                .unwrap();
        (b, counts, rp)
    });
    assert_eq!(b.entities["customer"].rows.len(), counts[0]);
    assert_eq!(b.entities["reservation"].rows.len(), counts[1]);
    assert_eq!(b.entities["payment"].rows.len(), counts[2]);
    assert_eq!(b.lookups["locations"].rows.len(), counts[3]);
    assert_eq!(b.lookups["vehicles"].rows.len(), counts[4]);
    let real: chrono::DateTime<chrono::Utc> = real_rp.parse().unwrap();
    let inferred = b.restore_point.unwrap();
    assert!(inferred <= real, "{inferred} after {real}");
    assert!(
        real - inferred < chrono::Duration::days(1),
        "{inferred} long before {real}"
    );
    assert!(b.window_start.unwrap() <= inferred - chrono::Duration::hours(23));
}

/// Planning-side connections cannot write: on every database an attempted write fails, both on
/// the connection and inside the baseline's transaction.
async fn writes_are_refused(url: &str) {
    let dialect = Dialect::of(url).unwrap();
    let mut conn = dburl::connect_read_only(url).await.unwrap();
    let attempts = [
        "INSERT INTO locations (code, name, city, country, timezone, currency, address, created_at) VALUES ('ZZZ', 'x', 'x', 'PT', 'UTC', 'EUR', 'x', '2026-01-01T00:00:00Z')",
        "CREATE TABLE gapfill_should_not_exist (x INTEGER)",
    ];
    for sql in attempts {
        let r = sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await;
        assert!(
            r.is_err(),
            "{url}: {sql} succeeded on a read-only connection"
        );
    }
    baseline::begin_read_only(&mut conn, dialect).await.unwrap();
    let r = sqlx::query(sqlx::AssertSqlSafe(attempts[0]))
        .execute(&mut conn)
        .await;
    assert!(
        r.is_err(),
        "{url}: a write succeeded inside the baseline's transaction"
    );
}

#[test]
fn planning_connections_cannot_write_sqlite() {
    let (_dir, url) = reference_sqlite();
    block_on(writes_are_refused(&url));
}

#[test]
fn planning_connections_cannot_write_postgres() {
    if let Some((url, _guard)) = reference_postgres("ro") {
        block_on(writes_are_refused(&url));
    }
}

#[test]
fn planning_connections_cannot_write_mariadb() {
    if let Some((url, _guard)) = reference_mariadb("ro") {
        block_on(writes_are_refused(&url));
    }
}

/// A key the database cannot fill is caught before anything is planned.
#[test]
fn a_key_the_database_cannot_make_is_an_error() {
    let script =
        std::fs::read_to_string(fixtures().join("other-schema/schema.sqlite.sql")).unwrap();
    let (dir, url) = sqlite_db(&script);
    let text = std::fs::read_to_string(fixtures().join("other-schema/mapping.toml"))
        .unwrap()
        .replacen("new_key = \"uuid\"", "new_key = \"database\"", 1);
    let path = dir.path().join("m.toml");
    std::fs::write(&path, &text).unwrap();
    let line = text
        .lines()
        .position(|l| l == "key = \"client_uuid\"")
        .unwrap()
        + 1;
    let out = gapfill(&["check", "--mapping", path.to_str().unwrap(), "--db", &url]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains(&format!(
            "m.toml:{line}:7: error: clients.client_uuid has no default, sequence or auto-increment"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("set new_key = \"uuid\""), "{stdout}");
}
