//! The simulator's SQL dumps load into real PostgreSQL and MariaDB servers, and `evaluate` reads
//! them there exactly as it reads the SQLite backup.
//!
//! Servers come from GAPFILL_TEST_POSTGRES and GAPFILL_TEST_MYSQL (scripts/test.sh sets them);
//! each test makes its own uniquely named database and drops it afterwards.

mod common;

use common::*;
use std::process::Command;

#[test]
fn postgres_dump_loads_and_evaluates_like_sqlite() {
    let Some(base) = server("GAPFILL_TEST_POSTGRES") else {
        return;
    };
    let (_dir, out) = incident(21, 120, "medium");
    let (url, _guard) = postgres_db(&base, "pg", &out.join("restored.postgres.sql"));
    let in_pg = evaluate_json(&out.join("truth.db"), &url);
    let in_sqlite = evaluate_json(&out.join("truth.db"), &sqlite_url(&out.join("restored.db")));
    assert_eq!(tables(&in_pg), tables(&in_sqlite));
    assert_eq!(in_pg["total"]["pre_restore_corrupted"], 0);
    // The identity sequences were moved past the loaded rows: a new row gets a fresh key.
    run(Command::new("psql").args([url.as_str(), "-q", "-v", "ON_ERROR_STOP=1", "-c",
        "INSERT INTO locations (code, name, city, country, timezone, currency, address, created_at) VALUES ('TST', 'Test', 'Test', 'PT', 'Europe/Lisbon', 'EUR', 'x', now())"]));
}

#[test]
fn mysql_dump_loads_into_mariadb_and_evaluates_like_sqlite() {
    let Some(base) = server("GAPFILL_TEST_MYSQL") else {
        return;
    };
    let (_dir, out) = incident(22, 120, "high");
    let (url, _guard) = mysql_db(&base, "my", &out.join("restored.mysql.sql"));
    let in_mysql = evaluate_json(&out.join("truth.db"), &url);
    let in_sqlite = evaluate_json(&out.join("truth.db"), &sqlite_url(&out.join("restored.db")));
    assert_eq!(tables(&in_mysql), tables(&in_sqlite));
    assert_eq!(in_mysql["total"]["pre_restore_corrupted"], 0);
}
