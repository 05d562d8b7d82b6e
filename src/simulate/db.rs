//! The databases of an incident: truth.db (the state at the incident), restored.db (the state at
//! the restore point) and SQL dumps of the restored state for PostgreSQL and MySQL.

use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, SqliteConnection};

use super::{io_err, Mention, Options, Result, SimulateError, World};
use crate::reference::{self, Kind, Table, TABLES};

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Time(DateTime<Utc>),
}

pub type Row = Vec<Value>;

pub struct Written {
    pub truth_rows: Vec<(String, u64)>,
    pub restored_rows: Vec<(String, u64)>,
}

/// Time format of the reference schema's SQLite text columns.
pub fn sqlite_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn opt_text(s: &Option<String>) -> Value {
    s.as_ref().map_or(Value::Null, |s| Value::Text(s.clone()))
}

/// The rows of `table` as the application's database held them at `t`, in primary-key order.
pub fn rows<'a>(world: &'a World, table: &Table, t: DateTime<Utc>) -> Box<dyn Iterator<Item = Row> + Send + 'a> {
    use Value::{Int, Text, Time};
    match table.name {
        "locations" => Box::new(world.locations.iter().filter(move |l| l.created_at <= t).map(|l| {
            let s = l.spec;
            vec![
                Int(l.id),
                Text(s.code.into()),
                Text(s.name.into()),
                Text(s.city.into()),
                Text(s.country.into()),
                Text(s.timezone.into()),
                Text(s.currency.into()),
                Text(s.address.into()),
                Time(l.created_at),
            ]
        })),
        "vehicles" => Box::new(world.vehicles.iter().filter(move |v| v.created_at <= t).map(|v| {
            vec![
                Int(v.id),
                Text(v.plate.clone()),
                Text(v.make.into()),
                Text(v.model.into()),
                Text(v.category.into()),
                Int(v.home_location_id),
                Int(v.daily_rate_minor),
                Text(v.currency.into()),
                Time(v.created_at),
            ]
        })),
        "customers" => Box::new(world.customers.iter().filter(move |c| c.created_at <= t).map(|c| {
            vec![
                Int(c.id),
                Text(c.full_name()),
                Text(c.email.clone()),
                opt_text(&c.phone),
                opt_text(&c.stripe_customer_id),
                Time(c.created_at),
                Time(c.created_at),
            ]
        })),
        "reservations" => Box::new(world.reservations.iter().filter_map(move |r| {
            let v = r.at(t)?;
            Some(vec![
                Int(r.id),
                Text(r.code.clone()),
                Int(r.customer_id),
                Int(v.vehicle_id),
                Int(v.pickup_location_id),
                Int(v.return_location_id),
                Time(v.pickup_at),
                Time(v.return_at),
                Text(v.status.as_str().into()),
                Int(v.total_minor),
                Text(r.currency.into()),
                Time(r.created_at),
                Time(v.at),
            ])
        })),
        "payments" => Box::new(world.payments.iter().filter(move |p| p.paid_at <= t).map(move |p| {
            vec![
                Int(p.id),
                Int(p.reservation_id),
                Text(p.payment_intent_id.clone()),
                Text(p.charge_id.clone()),
                Int(p.amount_minor),
                Text(p.currency.into()),
                Text(p.status_at(t).as_str().into()),
                Int(p.refunded_at(t)),
                Time(p.paid_at),
                Time(p.paid_at),
                Time(p.updated_at(t)),
            ]
        })),
        // The reference schema and this writer are one unit; a new table needs both.
        other => unreachable!("no rows for reference table {other}"),
    }
}

pub async fn write_all(world: &World, out: &Path, mentions: &[Mention], opts: &Options) -> Result<Written> {
    let truth_rows = write_sqlite(world, &out.join("truth.db"), world.incident_at, Some((mentions, opts))).await?;
    let restored_rows = write_sqlite(world, &out.join("restored.db"), world.restore_point, None).await?;
    write_dump(world, &out.join("restored.postgres.sql"), world.restore_point, Dialect::Postgres)?;
    write_dump(world, &out.join("restored.mysql.sql"), world.restore_point, Dialect::Mysql)?;
    Ok(Written { truth_rows, restored_rows })
}

/// Rows per INSERT: well under SQLite's limit of 32766 bound parameters.
const BATCH: usize = 400;

async fn write_sqlite(
    world: &World,
    path: &Path,
    t: DateTime<Utc>,
    incident: Option<(&[Mention], &Options)>,
) -> Result<Vec<(String, u64)>> {
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let p = path.with_file_name(format!("{}{suffix}", path.file_name().and_then(|n| n.to_str()).unwrap_or("db")));
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_err(&p)(e)),
            _ => {}
        }
    }
    let db_err = |source| SimulateError::Database { path: path.to_path_buf(), source };
    // A fresh file written in one go: no journal needed, and durability comes from the final close.
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Off)
        .synchronous(SqliteSynchronous::Off)
        .disable_statement_logging()
        .connect()
        .await
        .map_err(db_err)?;
    sqlx::raw_sql(reference::DDL_SQLITE).execute(&mut conn).await.map_err(db_err)?;
    let mut counts = Vec::new();
    let mut tx = conn.begin().await.map_err(db_err)?;
    for table in TABLES {
        let n = insert_rows(&mut tx, table.name, table.columns.len(), rows(world, table, t)).await.map_err(db_err)?;
        counts.push((table.name.to_string(), n));
    }
    if let Some((mentions, opts)) = incident {
        let ddl = format!(
            "CREATE TABLE {} (key TEXT PRIMARY KEY, value TEXT NOT NULL);\n\
             CREATE TABLE {} (table_name TEXT NOT NULL, row_id INTEGER NOT NULL, source TEXT NOT NULL, locator TEXT NOT NULL);",
            reference::INCIDENT_TABLE,
            reference::MANIFEST_TABLE
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(ddl)).execute(&mut *tx).await.map_err(db_err)?;
        let facts = [
            ("restore_point", sqlite_time(world.restore_point)),
            ("incident_at", sqlite_time(world.incident_at)),
            ("seed", opts.seed.to_string()),
            ("noise", opts.noise.as_str().to_string()),
            ("gap_days", opts.gap_days.to_string()),
            ("gap_reservations", opts.reservations.to_string()),
        ];
        let facts = facts.into_iter().map(|(k, v)| vec![Value::Text(k.into()), Value::Text(v)]);
        insert_rows(&mut tx, reference::INCIDENT_TABLE, 2, facts).await.map_err(db_err)?;
        let manifest = mentions.iter().map(|m| {
            vec![
                Value::Text(m.table.into()),
                Value::Int(m.row_id),
                Value::Text(m.source.as_str().into()),
                Value::Text(m.locator.clone()),
            ]
        });
        insert_rows(&mut tx, reference::MANIFEST_TABLE, 4, manifest).await.map_err(db_err)?;
    }
    tx.commit().await.map_err(db_err)?;
    conn.close().await.map_err(db_err)?;
    Ok(counts)
}

async fn insert_rows(
    conn: &mut SqliteConnection,
    table: &str,
    width: usize,
    rows: impl Iterator<Item = Row>,
) -> std::result::Result<u64, sqlx::Error> {
    let one = format!("({})", vec!["?"; width].join(","));
    let mut batch: Vec<Row> = Vec::with_capacity(BATCH);
    let mut n = 0;
    let mut rows = rows.peekable();
    while rows.peek().is_some() {
        batch.clear();
        batch.extend(rows.by_ref().take(BATCH));
        // Column order of the DDL, so no column list is needed.
        let sql = format!("INSERT INTO {table} VALUES {}", vec![one.as_str(); batch.len()].join(","));
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in &batch {
            for v in row {
                q = match v {
                    Value::Null => q.bind(None::<String>),
                    Value::Int(i) => q.bind(*i),
                    Value::Text(s) => q.bind(s.clone()),
                    Value::Time(t) => q.bind(sqlite_time(*t)),
                };
            }
        }
        q.execute(&mut *conn).await?;
        n += batch.len() as u64;
    }
    Ok(n)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Mysql,
}

fn sql_literal(v: &Value, kind: Kind, dialect: Dialect, out: &mut String) {
    match v {
        Value::Null => out.push_str("NULL"),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Time(t) => match dialect {
            Dialect::Postgres => out.push_str(&t.format("'%Y-%m-%d %H:%M:%S+00'").to_string()),
            Dialect::Mysql => out.push_str(&t.format("'%Y-%m-%d %H:%M:%S'").to_string()),
        },
        Value::Text(s) => {
            debug_assert!(!matches!(kind, Kind::Int | Kind::Id | Kind::Ref(_)));
            out.push('\'');
            for c in s.chars() {
                match (c, dialect) {
                    ('\'', _) => out.push_str("''"),
                    // MySQL treats backslash as an escape inside strings by default.
                    ('\\', Dialect::Mysql) => out.push_str("\\\\"),
                    _ => out.push(c),
                }
            }
            out.push('\'');
        }
    }
}

/// A dump like pg_dump --inserts or mysqldump would give: load it with
/// `psql -v ON_ERROR_STOP=1 -f restored.postgres.sql DB` or `mysql DB < restored.mysql.sql`.
fn write_dump(world: &World, path: &Path, t: DateTime<Utc>, dialect: Dialect) -> Result<()> {
    let file = std::fs::File::create(path).map_err(io_err(path))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut text = String::new();
    match dialect {
        Dialect::Postgres => {
            text.push_str("-- gapfill simulate: the restored backup (PostgreSQL)\nSET client_encoding = 'UTF8';\nSET standard_conforming_strings = on;\nBEGIN;\n\n");
            text.push_str(reference::DDL_POSTGRES);
        }
        Dialect::Mysql => {
            text.push_str("-- gapfill simulate: the restored backup (MySQL / MariaDB)\nSET NAMES utf8mb4;\nSET time_zone = '+00:00';\nSTART TRANSACTION;\n\n");
            text.push_str(reference::DDL_MYSQL);
        }
    }
    text.push('\n');
    for table in TABLES {
        let cols: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
        let head = format!("INSERT INTO {} ({}) VALUES\n", table.name, cols.join(", "));
        let mut rows = rows(world, table, t).peekable();
        while rows.peek().is_some() {
            text.push_str(&head);
            for (i, row) in rows.by_ref().take(500).enumerate() {
                text.push_str(if i == 0 { "  (" } else { ",\n  (" });
                for (j, (v, c)) in row.iter().zip(table.columns).enumerate() {
                    if j > 0 {
                        text.push_str(", ");
                    }
                    sql_literal(v, c.kind, dialect, &mut text);
                }
                text.push(')');
            }
            text.push_str(";\n");
            w.write_all(text.as_bytes()).map_err(io_err(path))?;
            text.clear();
        }
        if dialect == Dialect::Postgres {
            // Explicit ids leave identity sequences behind; move them past the loaded rows.
            text.push_str(&format!(
                "SELECT setval(pg_get_serial_sequence('{0}', 'id'), max(id)) FROM {0} HAVING max(id) IS NOT NULL;\n\n",
                table.name
            ));
        }
    }
    text.push_str("COMMIT;\n");
    w.write_all(text.as_bytes()).map_err(io_err(path))?;
    w.flush().map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_quoted_per_dialect() {
        let mut s = String::new();
        sql_literal(&Value::Text(r"O'Brien \ Co".into()), Kind::Text, Dialect::Mysql, &mut s);
        assert_eq!(s, r"'O''Brien \\ Co'");
        s.clear();
        sql_literal(&Value::Text(r"O'Brien \ Co".into()), Kind::Text, Dialect::Postgres, &mut s);
        assert_eq!(s, r"'O''Brien \ Co'");
        s.clear();
        let t = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 3, 29, 1, 30, 0).unwrap();
        sql_literal(&Value::Time(t), Kind::Timestamp, Dialect::Postgres, &mut s);
        assert_eq!(s, "'2026-03-29 01:30:00+00'");
    }
}
