//! The databases of an incident: truth.db (the state at the incident), restored.db (the state at
//! the restore point) and SQL dumps of the restored state for PostgreSQL and MySQL.

use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, SqliteConnection};

use super::{io_err, Mention, Options, Result, SimulateError, World};
use crate::reference::{self, Table, TABLES};

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Time(DateTime<Utc>),
}

pub type Row = Vec<Value>;

/// Rows written per table, in the reference schema's order.
pub type RowCounts = Vec<(String, u64)>;

/// Time format of the reference schema's SQLite text columns.
pub fn sqlite_time(t: DateTime<Utc>) -> String {
    let mut s = String::with_capacity(20);
    push_time(&mut s, t, 'T', "Z");
    s
}

/// Appends `YYYY-MM-DD<sep>HH:MM:SS<suffix>`. Written out by hand because chrono's strftime
/// parsing dominated the time to write a million-row database.
fn push_time(out: &mut String, t: DateTime<Utc>, sep: char, suffix: &str) {
    use chrono::{Datelike, Timelike};
    let two = |out: &mut String, n: u32| {
        out.push(char::from(b'0' + (n / 10) as u8));
        out.push(char::from(b'0' + (n % 10) as u8));
    };
    let y = t.year();
    debug_assert!((1000..=9999).contains(&y));
    two(out, (y / 100) as u32);
    two(out, (y % 100) as u32);
    out.push('-');
    two(out, t.month());
    out.push('-');
    two(out, t.day());
    out.push(sep);
    two(out, t.hour());
    out.push(':');
    two(out, t.minute());
    out.push(':');
    two(out, t.second());
    out.push_str(suffix);
}

fn opt_text(s: &Option<String>) -> Value {
    s.as_ref().map_or(Value::Null, |s| Value::Text(s.clone()))
}

/// The rows of `table` as the application's database held them at `t` (everything that happened
/// strictly before `t`), in primary-key order.
pub fn rows<'a>(
    world: &'a World,
    table: &Table,
    t: DateTime<Utc>,
) -> Box<dyn Iterator<Item = Row> + Send + 'a> {
    use Value::{Int, Text, Time};
    match table.name {
        "locations" => Box::new(
            world
                .locations
                .iter()
                .filter(move |l| l.created_at < t)
                .map(|l| {
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
                }),
        ),
        "vehicles" => Box::new(
            world
                .vehicles
                .iter()
                .filter(move |v| v.created_at < t)
                .map(|v| {
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
                }),
        ),
        "customers" => Box::new(
            world
                .customers
                .iter()
                .filter(move |c| c.created_at < t)
                .map(|c| {
                    vec![
                        Int(c.id),
                        Text(c.full_name()),
                        Text(c.email.clone()),
                        opt_text(&c.phone),
                        opt_text(&c.stripe_customer_id),
                        Time(c.created_at),
                        Time(c.created_at),
                    ]
                }),
        ),
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
        "payments" => Box::new(world.payments.iter().filter(move |p| p.paid_at < t).map(
            move |p| {
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
            },
        )),
        // The reference schema and this writer are one unit; a new table needs both.
        other => unreachable!("no rows for reference table {other}"),
    }
}

/// truth.db's reference tables, then restored.db as a copy of it rewound to the restore point:
/// rewinding a copy costs a fraction of writing a second database. Needs nothing but the world,
/// so it runs while the evidence is written; `finish_truth` adds the manifest afterwards.
pub fn write_databases(world: &World, out: &Path) -> Result<(RowCounts, RowCounts)> {
    let (truth, restored) = (out.join("truth.db"), out.join("restored.db"));
    let truth_rows = blocking(&truth, create_truth(world, &truth))?;
    remove_db(&restored)?;
    std::fs::copy(&truth, &restored).map_err(io_err(&restored))?;
    let restored_rows = blocking(&restored, rewind(world, &restored))?;
    Ok((truth_rows, restored_rows))
}

/// The restored state as PostgreSQL and MySQL dumps.
pub fn write_dumps(world: &World, out: &Path) -> Result<()> {
    let pg = out.join("restored.postgres.sql");
    write_dump(world, &pg, world.restore_point, Dialect::Postgres)?;
    write_dump(
        world,
        &out.join("restored.mysql.sql"),
        world.restore_point,
        Dialect::Mysql,
    )
}

/// Adds the incident's facts and which rows the evidence mentions to truth.db.
pub fn finish_truth(world: &World, out: &Path, mentions: &[Mention], opts: &Options) -> Result<()> {
    let path = out.join("truth.db");
    blocking(&path.clone(), async move {
        let db_err = |source| SimulateError::Database {
            path: path.clone(),
            source,
        };
        let mut conn = open(&path, false).await.map_err(db_err)?;
        let mut tx = conn.begin().await.map_err(db_err)?;
        let ddl = format!(
            "CREATE TABLE {} (key TEXT PRIMARY KEY, value TEXT NOT NULL);\n\
             CREATE TABLE {} (table_name TEXT NOT NULL, row_id INTEGER NOT NULL, sources TEXT NOT NULL, \
             PRIMARY KEY (table_name, row_id));",
            reference::INCIDENT_TABLE,
            reference::MANIFEST_TABLE
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(ddl))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let facts = [
            ("restore_point", sqlite_time(world.restore_point)),
            ("incident_at", sqlite_time(world.incident_at)),
            ("seed", opts.seed.to_string()),
            ("noise", opts.noise.as_str().to_string()),
            ("gap_days", opts.gap_days.to_string()),
            ("gap_reservations", opts.reservations.to_string()),
        ];
        let facts = facts
            .into_iter()
            .map(|(k, v)| vec![Value::Text(k.into()), Value::Text(v)]);
        insert_literal(&mut tx, reference::INCIDENT_TABLE, &["key", "value"], facts)
            .await
            .map_err(db_err)?;
        insert_literal(
            &mut tx,
            reference::MANIFEST_TABLE,
            &["table_name", "row_id", "sources"],
            mentioned_rows(mentions),
        )
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        conn.close().await.map_err(db_err)
    })
}

/// Runs one database's async work on a small runtime of its own: sqlx is async, the simulator
/// is not.
fn blocking<T>(path: &Path, work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| SimulateError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
    rt.block_on(work)
}

fn remove_db(path: &Path) -> Result<()> {
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let p = path.with_file_name(format!(
            "{}{suffix}",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("db")
        ));
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_err(&p)(e)),
            _ => {}
        }
    }
    Ok(())
}

async fn open(path: &Path, create: bool) -> std::result::Result<SqliteConnection, sqlx::Error> {
    // Files written in one go: no journal needed, and durability comes from the final close.
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(create)
        .journal_mode(SqliteJournalMode::Off)
        .synchronous(SqliteSynchronous::Off)
        // Unique indexes on random ids (emails, Stripe ids) are inserted out of order; with the
        // default 2 MB cache every insert re-read pages and writing slowed down with size.
        .pragma("cache_size", "-524288")
        .disable_statement_logging()
        .connect()
        .await
}

async fn create_truth(world: &World, path: &Path) -> Result<RowCounts> {
    remove_db(path)?;
    let db_err = |source| SimulateError::Database {
        path: path.to_path_buf(),
        source,
    };
    let mut conn = open(path, true).await.map_err(db_err)?;
    sqlx::raw_sql(reference::DDL_SQLITE)
        .execute(&mut conn)
        .await
        .map_err(db_err)?;
    let mut counts = Vec::new();
    let mut tx = conn.begin().await.map_err(db_err)?;
    for table in TABLES {
        let cols: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
        let n = insert_literal(
            &mut tx,
            table.name,
            &cols,
            rows(world, table, world.incident_at),
        )
        .await
        .map_err(db_err)?;
        counts.push((table.name.to_string(), n));
    }
    tx.commit().await.map_err(db_err)?;
    conn.close().await.map_err(db_err)?;
    Ok(counts)
}

/// Turns a copy of truth.db into the backup taken at the restore point: rows created since are
/// removed, rows changed since get their values back. (The simulator's own output file; gapfill
/// never deletes from a target database.)
async fn rewind(world: &World, path: &Path) -> Result<RowCounts> {
    let db_err = |source| SimulateError::Database {
        path: path.to_path_buf(),
        source,
    };
    let mut conn = open(path, false).await.map_err(db_err)?;
    let mut tx = conn.begin().await.map_err(db_err)?;
    let mut counts = Vec::new();
    let mut newer: Vec<(&str, Vec<i64>)> = Vec::new();
    for table in TABLES {
        let mut then = rows(world, table, world.restore_point).peekable();
        let mut kept = 0;
        let mut removed = Vec::new();
        let mut sql = String::new();
        for now in rows(world, table, world.incident_at) {
            let id = &now[0];
            match then.peek() {
                Some(old) if &old[0] == id => {
                    let old = then.next().expect("peeked");
                    kept += 1;
                    if old != now {
                        sql.push_str(&format!("UPDATE {} SET ", table.name));
                        for (i, (c, v)) in table.columns.iter().zip(&old).enumerate().skip(1) {
                            if i > 1 {
                                sql.push_str(", ");
                            }
                            sql.push_str(c.name);
                            sql.push_str(" = ");
                            sql_literal(v, Dialect::Sqlite, &mut sql);
                        }
                        sql.push_str(" WHERE id = ");
                        sql_literal(&old[0], Dialect::Sqlite, &mut sql);
                        sql.push_str(";\n");
                    }
                }
                _ => {
                    if let Value::Int(id) = id {
                        removed.push(*id);
                    }
                }
            }
            if sql.len() > 1 << 16 {
                sqlx::raw_sql(sqlx::AssertSqlSafe(std::mem::take(&mut sql)))
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
        }
        debug_assert!(
            then.next().is_none(),
            "every row of the backup still exists at the incident"
        );
        if !sql.is_empty() {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        counts.push((table.name.to_string(), kept));
        newer.push((table.name, removed));
    }
    // Children before parents.
    for (table, ids) in newer.iter().rev() {
        for chunk in ids.chunks(1000) {
            let list: Vec<String> = chunk.iter().map(i64::to_string).collect();
            let sql = format!("DELETE FROM {table} WHERE id IN ({})", list.join(","));
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
    }
    tx.commit().await.map_err(db_err)?;
    // A backup has no free pages left by the rows it never had.
    sqlx::raw_sql("VACUUM")
        .execute(&mut conn)
        .await
        .map_err(db_err)?;
    conn.close().await.map_err(db_err)?;
    Ok(counts)
}

/// A writer thread's result; a panic in it is re-raised here rather than turned into an error.
pub(crate) fn join<T>(h: std::thread::ScopedJoinHandle<'_, T>) -> T {
    h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// One row per mentioned gap-period row, with the sources that mention it ("calendar,mail").
/// The locators stay in manifest.csv; the evaluator needs only which rows have evidence.
fn mentioned_rows(mentions: &[Mention]) -> impl Iterator<Item = Row> + '_ {
    // `mentions` is sorted by table, row, source.
    mentions
        .chunk_by(|a, b| a.table == b.table && a.row_id == b.row_id)
        .map(|group| {
            let mut sources: Vec<&str> = group.iter().map(|m| m.source.as_str()).collect();
            sources.dedup();
            vec![
                Value::Text(group[0].table.into()),
                Value::Int(group[0].row_id),
                Value::Text(sources.join(",")),
            ]
        })
}

/// Inserts as multi-row statements with literal values: several times faster than binding each
/// value through the driver, and the values are the simulator's own, never outside input.
async fn insert_literal(
    conn: &mut SqliteConnection,
    table: &str,
    columns: &[&str],
    rows: impl Iterator<Item = Row>,
) -> std::result::Result<u64, sqlx::Error> {
    let mut inserts = Inserts::new(table, columns, rows, Dialect::Sqlite);
    let mut sql = String::new();
    let mut n = 0;
    loop {
        let count = inserts.next_statement(&mut sql);
        if count == 0 {
            return Ok(n);
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(std::mem::take(&mut sql)))
            .execute(&mut *conn)
            .await?;
        n += count;
    }
}

/// `INSERT INTO table (columns) VALUES (…), (…);` statements of up to 500 rows each.
struct Inserts<I: Iterator<Item = Row>> {
    head: String,
    rows: std::iter::Peekable<I>,
    dialect: Dialect,
}

impl<I: Iterator<Item = Row>> Inserts<I> {
    fn new(table: &str, columns: &[&str], rows: I, dialect: Dialect) -> Self {
        Inserts {
            head: format!("INSERT INTO {table} ({}) VALUES\n", columns.join(", ")),
            rows: rows.peekable(),
            dialect,
        }
    }

    /// Replaces `text` with the next statement and returns its row count, 0 when no rows are left.
    fn next_statement(&mut self, text: &mut String) -> u64 {
        text.clear();
        if self.rows.peek().is_none() {
            return 0;
        }
        text.push_str(&self.head);
        let mut count = 0;
        for (i, row) in self.rows.by_ref().take(500).enumerate() {
            text.push_str(if i == 0 { "  (" } else { ",\n  (" });
            for (j, v) in row.iter().enumerate() {
                if j > 0 {
                    text.push_str(", ");
                }
                sql_literal(v, self.dialect, text);
            }
            text.push(')');
            count += 1;
        }
        text.push_str(";\n");
        count
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
    Mysql,
}

fn sql_literal(v: &Value, dialect: Dialect, out: &mut String) {
    match v {
        Value::Null => out.push_str("NULL"),
        Value::Int(i) => {
            use std::fmt::Write;
            let _ = write!(out, "{i}");
        }
        Value::Time(t) => {
            out.push('\'');
            match dialect {
                Dialect::Sqlite => push_time(out, *t, 'T', "Z"),
                Dialect::Postgres => push_time(out, *t, ' ', "+00"),
                // DATETIME holds UTC by the schema's convention.
                Dialect::Mysql => push_time(out, *t, ' ', ""),
            }
            out.push('\'');
        }
        Value::Text(s) => {
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
        Dialect::Sqlite => {
            text.push_str("-- gapfill simulate: the restored backup (SQLite)\nBEGIN;\n\n");
            text.push_str(reference::DDL_SQLITE);
        }
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
    w.write_all(text.as_bytes()).map_err(io_err(path))?;
    text.clear();
    for table in TABLES {
        let cols: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
        let mut inserts = Inserts::new(table.name, &cols, rows(world, table, t), dialect);
        while inserts.next_statement(&mut text) > 0 {
            w.write_all(text.as_bytes()).map_err(io_err(path))?;
        }
        if dialect == Dialect::Postgres {
            // Explicit ids leave identity sequences behind; move them past the loaded rows.
            let setval = format!(
                "SELECT setval(pg_get_serial_sequence('{0}', 'id'), max(id)) FROM {0} HAVING max(id) IS NOT NULL;\n\n",
                table.name
            );
            w.write_all(setval.as_bytes()).map_err(io_err(path))?;
        }
    }
    w.write_all(b"COMMIT;\n").map_err(io_err(path))?;
    w.flush().map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::{noise::NoiseLevel, world, Noise};

    #[test]
    fn a_row_made_at_the_restore_point_is_in_the_gap_not_in_the_backup() {
        let mut w = world::generate(&world::Params {
            seed: 4,
            noise: Noise::new(NoiseLevel::Low),
            gap_reservations: 50,
            gap_days: 20,
            incident_at: world::default_incident_at(),
        });
        let p = w
            .payments
            .iter()
            .find(|p| w.in_gap(p.paid_at))
            .unwrap()
            .clone();
        w.restore_point = p.paid_at;
        assert!(w.in_gap(p.paid_at));
        let payments = reference::table("payments").unwrap();
        let in_backup = rows(&w, payments, w.restore_point).any(|r| r[0] == Value::Int(p.id));
        assert!(
            !in_backup,
            "payment {} made at the restore point is in the backup too",
            p.id
        );
    }

    #[test]
    fn literals_are_quoted_per_dialect() {
        let mut s = String::new();
        sql_literal(&Value::Text(r"O'Brien \ Co".into()), Dialect::Mysql, &mut s);
        assert_eq!(s, r"'O''Brien \\ Co'");
        s.clear();
        sql_literal(
            &Value::Text(r"O'Brien \ Co".into()),
            Dialect::Postgres,
            &mut s,
        );
        assert_eq!(s, r"'O''Brien \ Co'");
        s.clear();
        let t = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 3, 29, 1, 30, 0).unwrap();
        sql_literal(&Value::Time(t), Dialect::Postgres, &mut s);
        assert_eq!(s, "'2026-03-29 01:30:00+00'");
    }
}
