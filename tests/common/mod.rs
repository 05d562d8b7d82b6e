//! Shared helpers for the integration tests: run the real binary, make small incidents.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn gapfill(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gapfill"))
        .args(args)
        .env_remove("DATABASE_URL")
        .output()
        .expect("the gapfill binary runs")
}

/// Runs gapfill and returns its stdout, failing the test with its stderr when it fails.
pub fn gapfill_ok(args: &[&str]) -> String {
    let out = gapfill(args);
    assert!(
        out.status.success(),
        "gapfill {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// A small incident written into a fresh temporary folder.
pub fn incident(seed: u64, reservations: u64, noise: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("incident");
    gapfill_ok(&[
        "simulate",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
        "--seed",
        &seed.to_string(),
        "--reservations",
        &reservations.to_string(),
        "--gap-days",
        "30",
        "--noise",
        noise,
    ]);
    (dir, out)
}

/// `gapfill plan --mapping M --db DB` over the given sources (`("--stripe", path)`…), writing
/// the plan to `out`; the plan read back.
pub fn plan_json(
    mapping: &Path,
    db: &str,
    sources: &[(&str, &Path)],
    out: &Path,
) -> serde_json::Value {
    let mut args: Vec<String> = vec![
        "plan".into(),
        "--quiet".into(),
        "--mapping".into(),
        mapping.display().to_string(),
        "--db".into(),
        db.into(),
    ];
    for (flag, path) in sources {
        args.push(flag.to_string());
        args.push(path.display().to_string());
    }
    args.push("--out".into());
    args.push(out.display().to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    gapfill_ok(&args);
    serde_json::from_str(&std::fs::read_to_string(out).expect("the plan was written"))
        .expect("the plan is JSON")
}

/// `gapfill plan` over an incident's sources against `db`, writing the plan to `out`; `extra`
/// flags are passed on.
pub fn plan_incident(incident: &Path, db: &str, out: &Path, extra: &[&str]) -> String {
    let config = incident.join("gapfill.toml");
    let mut args = vec![
        "plan",
        "--quiet",
        "--config",
        config.to_str().unwrap(),
        "--db",
        db,
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    gapfill_ok(&args)
}

pub fn evaluate_json(truth: &Path, db: &str) -> serde_json::Value {
    let text = gapfill_ok(&[
        "evaluate",
        "--truth",
        truth.to_str().unwrap(),
        "--db",
        db,
        "--format",
        "json",
    ]);
    serde_json::from_str(&text).expect("evaluate --format json prints JSON")
}

pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// The report's tables without the fields that name the database, for comparing evaluations of
/// the same data in different databases.
pub fn tables(report: &serde_json::Value) -> serde_json::Value {
    report["tables"].clone()
}

pub fn server(var: &str) -> Option<String> {
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

pub fn unique_name(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("gapfill_test_{tag}_{}_{nanos}", std::process::id())
}

pub fn run(cmd: &mut Command) {
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
pub struct Dropper(pub Box<dyn Fn()>);
impl Drop for Dropper {
    fn drop(&mut self) {
        (self.0)()
    }
}

/// host, port, user of a mysql://user@host:port URL, for the command-line client.
pub fn mysql_parts(url: &str) -> (String, String, String) {
    let rest = url
        .trim_start_matches("mysql://")
        .trim_start_matches("mariadb://");
    let (user, hostport) = rest.split_once('@').unwrap_or(("root", rest));
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "3306"));
    (host.to_string(), port.to_string(), user.to_string())
}

/// A new PostgreSQL database `name` on the test server (a copy of `template` when given),
/// dropped when the guard goes.
pub fn postgres_create(base: &str, name: &str, template: Option<&str>) -> (String, Dropper) {
    let admin = format!("{base}/postgres");
    let copy = template
        .map(|t| format!(" TEMPLATE {t}"))
        .unwrap_or_default();
    run(Command::new("psql").args([
        admin.as_str(),
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        &format!("CREATE DATABASE {name}{copy}"),
    ]));
    let drop_name = name.to_string();
    let guard = Dropper(Box::new(move || {
        let _ = Command::new("psql")
            .args([
                admin.as_str(),
                "-q",
                "-c",
                &format!("DROP DATABASE IF EXISTS {drop_name} WITH (FORCE)"),
            ])
            .output();
    }));
    (format!("{base}/{name}"), guard)
}

/// A new PostgreSQL database on the test server with `sql` loaded, dropped when the guard goes.
pub fn postgres_db(base: &str, tag: &str, sql: &Path) -> (String, Dropper) {
    let (url, guard) = postgres_create(base, &unique_name(tag), None);
    run(Command::new("psql").args([
        url.as_str(),
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-f",
        sql.to_str().unwrap(),
    ]));
    (url, guard)
}

/// A new MariaDB database on the test server with `sql` loaded, dropped when the guard goes.
pub fn mysql_db(base: &str, tag: &str, sql: &Path) -> (String, Dropper) {
    let name = unique_name(tag);
    let (host, port, user) = mysql_parts(base);
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
    let guard = Dropper(Box::new(move || {
        let _ = drop_client()
            .args(["-e", &format!("DROP DATABASE IF EXISTS {drop_name}")])
            .output();
    }));
    let dump = std::fs::File::open(sql).unwrap();
    run(client().arg(&name).stdin(dump));
    (format!("{base}/{name}"), guard)
}
pub mod cases;

/// Runs one query with the database's own command-line client and returns its output: rows one
/// per line, columns separated by the client's default, no headers.
pub fn query(url: &str, q: &str) -> String {
    let out = if let Some(path) = url.strip_prefix("sqlite://") {
        Command::new("sqlite3").args([path, q]).output()
    } else if url.starts_with("postgres://") {
        Command::new("psql").args([url, "-tAc", q]).output()
    } else {
        let (host, port, user) = mysql_parts(url.rsplit_once('/').unwrap().0);
        let db = url.rsplit('/').next().unwrap();
        Command::new("mariadb")
            .args([
                "--protocol=tcp",
                "-h",
                &host,
                "-P",
                &port,
                "-u",
                &user,
                "-N",
            ])
            .args([db, "-e", q])
            .output()
    }
    .expect("the database client runs");
    assert!(
        out.status.success(),
        "{q} on {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
