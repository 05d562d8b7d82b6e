//! The simulator's SQL dumps load into real PostgreSQL and MariaDB servers, and `evaluate` reads
//! them there exactly as it reads the SQLite backup.
//!
//! Servers come from GAPFILL_TEST_POSTGRES and GAPFILL_TEST_MYSQL (scripts/test.sh sets them);
//! each test makes its own uniquely named database and drops it afterwards.

mod common;

use common::*;
use std::process::Command;

fn server(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) => Some(url.trim_end_matches('/').to_string()),
        Err(_) if std::env::var_os("GAPFILL_REQUIRE_DATABASES").is_some() => {
            panic!("{var} is not set")
        }
        Err(_) => {
            eprintln!("skipping: {var} is not set (scripts/test.sh sets it)");
            None
        }
    }
}

fn unique_name(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("gapfill_test_{tag}_{}_{nanos}", std::process::id())
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Drops the test database however the test ends.
struct Dropper(Box<dyn Fn()>);
impl Drop for Dropper {
    fn drop(&mut self) {
        (self.0)()
    }
}

/// host, port, user of a mysql://user@host:port URL, for the command-line client.
fn mysql_parts(url: &str) -> (String, String, String) {
    let rest = url
        .trim_start_matches("mysql://")
        .trim_start_matches("mariadb://");
    let (user, hostport) = rest.split_once('@').unwrap_or(("root", rest));
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "3306"));
    (host.to_string(), port.to_string(), user.to_string())
}

#[test]
fn postgres_dump_loads_and_evaluates_like_sqlite() {
    let Some(base) = server("GAPFILL_TEST_POSTGRES") else {
        return;
    };
    let (_dir, out) = incident(21, 120, "medium");
    let name = unique_name("pg");
    let admin = format!("{base}/postgres");
    run(Command::new("psql").args([
        admin.as_str(),
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        &format!("CREATE DATABASE {name}"),
    ]));
    let drop_admin = admin.clone();
    let drop_name = name.clone();
    let _guard = Dropper(Box::new(move || {
        let _ = Command::new("psql")
            .args([
                drop_admin.as_str(),
                "-q",
                "-c",
                &format!("DROP DATABASE IF EXISTS {drop_name} WITH (FORCE)"),
            ])
            .output();
    }));
    let url = format!("{base}/{name}");
    run(Command::new("psql").args([
        url.as_str(),
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-f",
        out.join("restored.postgres.sql").to_str().unwrap(),
    ]));
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
    let name = unique_name("my");
    let (host, port, user) = mysql_parts(&base);
    let client = move || {
        let mut c = Command::new("mariadb");
        c.args(["--protocol=tcp", "-h", &host, "-P", &port, "-u", &user]);
        c
    };
    run(client().args([
        "-e",
        &format!("CREATE DATABASE {name} CHARACTER SET utf8mb4"),
    ]));
    let drop_client = client.clone();
    let drop_name = name.clone();
    let _guard = Dropper(Box::new(move || {
        let _ = drop_client()
            .args(["-e", &format!("DROP DATABASE IF EXISTS {drop_name}")])
            .output();
    }));
    let dump = std::fs::File::open(out.join("restored.mysql.sql")).unwrap();
    run(client().arg(&name).stdin(dump));
    let url = format!("{base}/{name}");
    let in_mysql = evaluate_json(&out.join("truth.db"), &url);
    let in_sqlite = evaluate_json(&out.join("truth.db"), &sqlite_url(&out.join("restored.db")));
    assert_eq!(tables(&in_mysql), tables(&in_sqlite));
    assert_eq!(in_mysql["total"]["pre_restore_corrupted"], 0);
}
