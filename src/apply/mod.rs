//! `gapfill apply`: executes exactly the accepted changes of one plan, in one transaction, or
//! nothing (SPEC §3).
//!
//! Apply is the only code that writes to the target database, and it takes nothing but a plan.
//! Before writing it checks that the database has the plan's schema, that every accepted change's
//! inserts are accepted too, and that every row an update touches still holds the before-values
//! the plan recorded (a stale plan is refused, naming the rows). Inserts run in the plan's order,
//! the database's keys replacing plan-local ones; every change is recorded in `gapfill_audit`
//! in the same transaction, so a change already applied is skipped and a plan applied twice
//! changes nothing the second time. The statements it issues are INSERT, UPDATE and SELECT, and
//! one CREATE TABLE IF NOT EXISTS for the audit table: never DELETE, DROP or TRUNCATE
//! (invariant 2). The undo script it writes is for a person to run.

mod sql;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use chrono::Utc;
use serde::Serialize;
use sqlx::{AnyConnection, Row};

use crate::dburl::{self, Dialect};
use crate::plan::{After, Change, Decision, Op, Plan};
use crate::schema::{self, Schema};
use sql::{Bind, Statement};

pub use crate::schema::AUDIT_TABLE;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    #[error(transparent)]
    Url(#[from] dburl::UrlError),
    #[error(transparent)]
    Schema(#[from] schema::SchemaError),
    #[error("the plan was made against another schema (fingerprint {plan}, the database has {db}); make a new plan against this database")]
    WrongSchema { plan: String, db: String },
    #[error("the plan is stale: {} row(s) changed since it was made:\n{}\nmake a new plan; nothing was applied", .rows.len(), .rows.join("\n"))]
    Stale { rows: Vec<String> },
    #[error("change {change} is accepted but needs {needs}, which is not accepted: accept both or neither (gapfill review); nothing was applied")]
    Dependency { change: String, needs: String },
    #[error("{what} failed: {message}; nothing was applied")]
    Db { what: String, message: String },
    #[error("cannot write the undo script {path}: {message}; nothing was applied")]
    Undo { path: String, message: String },
    #[error("the audit table {AUDIT_TABLE} was made by an older gapfill (it has no plan_id column), so this apply cannot tell which plan each recorded change came from; keep it under another name (ALTER TABLE {AUDIT_TABLE} RENAME TO {AUDIT_TABLE}_old) and apply again; nothing was applied")]
    OldAudit,
}

type Result<T> = std::result::Result<T, ApplyError>;

pub struct Options {
    /// Do everything, then roll back.
    pub dry_run: bool,
    /// Where to write the script that restores the before-values.
    pub undo: Option<PathBuf>,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// The plan's id, under which the audit table records its changes.
    pub plan_id: String,
    /// The digest of the reviewed plan that was applied.
    pub plan_hash: String,
    pub dry_run: bool,
    pub accepted: usize,
    /// Accepted changes this run made.
    pub applied: usize,
    /// Accepted changes an earlier apply already made (found in the audit table).
    pub already_applied: usize,
    /// Per table: rows inserted and updated.
    pub inserted: BTreeMap<String, u64>,
    pub updated: BTreeMap<String, u64>,
    pub undo: Option<String>,
}

/// Connects for writing (apply only).
pub async fn connect(url: &str) -> Result<AnyConnection> {
    use sqlx::ConnectOptions;
    use std::str::FromStr;
    sqlx::any::install_default_drivers();
    let dialect = Dialect::of(url)?;
    let driver_url = match dialect {
        Dialect::Mysql if url.starts_with("mariadb:") => url.replacen("mariadb:", "mysql:", 1),
        _ => url.to_string(),
    };
    let fail = |e: sqlx::Error| ApplyError::Db {
        what: format!("connecting to {}", dburl::redact(url)),
        message: dburl::scrub(&e.to_string(), url),
    };
    let opts = sqlx::any::AnyConnectOptions::from_str(&driver_url)
        .map_err(fail)?
        .disable_statement_logging();
    let mut conn = opts.connect().await.map_err(fail)?;
    if dialect == Dialect::Mysql {
        // TIMESTAMP columns convert from the session's zone; the plan's instants are UTC.
        run(
            &mut conn,
            dburl::MYSQL_SESSION_ZONE,
            "setting the session time zone",
        )
        .await?;
    }
    Ok(conn)
}

async fn run(conn: &mut AnyConnection, sql: &str, what: &str) -> Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut *conn)
        .await
        .map_err(|e| ApplyError::Db {
            what: what.to_string(),
            message: e.to_string(),
        })?;
    Ok(())
}

/// The accepted changes, checked: every insert an accepted change needs is accepted too.
fn accepted(plan: &Plan) -> Result<Vec<&Change>> {
    let ok: Vec<&Change> = plan
        .changes
        .iter()
        .filter(|c| c.decision == Decision::Accepted)
        .collect();
    let locals: HashSet<&str> = ok
        .iter()
        .filter(|c| c.op == Op::Insert)
        .filter_map(|c| c.local.as_deref())
        .collect();
    for c in &ok {
        for d in &c.depends_on {
            if !locals.contains(d.as_str()) {
                return Err(ApplyError::Dependency {
                    change: c.id.clone(),
                    needs: d.clone(),
                });
            }
        }
    }
    Ok(ok)
}

/// Applies the plan's accepted changes to the database at `url`.
pub async fn apply(plan: &Plan, url: &str, opts: &Options) -> Result<Report> {
    let dialect = Dialect::of(url)?;
    let changes = accepted(plan)?;
    let mut conn = connect(url).await?;
    let schema = schema::introspect(&mut conn, dialect).await?;
    let fingerprint = schema.fingerprint();
    if fingerprint != plan.schema_fingerprint {
        return Err(ApplyError::WrongSchema {
            plan: plan.schema_fingerprint.clone(),
            db: fingerprint,
        });
    }
    let plan_hash = plan.hash();
    let plan_id = plan.scope();
    // DDL outside the transaction: MySQL would commit it implicitly anyway.
    run(
        &mut conn,
        &sql::create_audit(dialect),
        "creating the audit table",
    )
    .await?;
    let probe = format!(
        "SELECT plan_id FROM {} WHERE 1 = 0",
        dialect.quote(AUDIT_TABLE)
    );
    if sqlx::query(sqlx::AssertSqlSafe(probe))
        .fetch_optional(&mut conn)
        .await
        .is_err()
    {
        return Err(ApplyError::OldAudit);
    }
    let begin = match dialect {
        Dialect::Sqlite => "BEGIN IMMEDIATE",
        _ => "BEGIN",
    };
    run(&mut conn, begin, "starting the transaction").await?;
    let ids = Ids {
        plan: &plan_id,
        hash: &plan_hash,
    };
    let result = async {
        let (mut report, undo) =
            apply_in_transaction(&mut conn, dialect, &schema, plan, &changes, ids, opts).await?;
        // The undo is on disk before the changes it undoes are committed: a crash between the
        // two leaves an undo for changes that were rolled back, never changes without an undo.
        if let Some(path) = &opts.undo {
            crate::files::write_private(path, undo.as_bytes()).map_err(|e| ApplyError::Undo {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            report.undo = Some(path.display().to_string());
        }
        Ok::<_, ApplyError>(report)
    }
    .await;
    match result {
        Ok(mut report) => {
            if opts.dry_run {
                run(&mut conn, "ROLLBACK", "rolling back the dry run").await?;
            } else {
                run(&mut conn, "COMMIT", "committing").await?;
            }
            report.dry_run = opts.dry_run;
            report.accepted = changes.len();
            Ok(report)
        }
        Err(e) => {
            // Nothing of this run survives; the connection closing would roll back too.
            let _ = run(&mut conn, "ROLLBACK", "rolling back").await;
            Err(e)
        }
    }
}

/// What the audit records a plan under: its id (kept through review) and the digest of the
/// reviewed content that was applied.
#[derive(Clone, Copy)]
struct Ids<'a> {
    plan: &'a str,
    hash: &'a str,
}

async fn apply_in_transaction(
    conn: &mut AnyConnection,
    dialect: Dialect,
    schema: &Schema,
    plan: &Plan,
    changes: &[&Change],
    ids: Ids<'_>,
    opts: &Options,
) -> Result<(Report, String)> {
    let plan_hash = ids.hash;
    let db_err = |what: String| {
        move |e: sqlx::Error| ApplyError::Db {
            what,
            message: e.to_string(),
        }
    };
    // Changes of this plan an earlier apply made (after less review), and the keys their inserts
    // got. Another plan's changes are not this plan's: a later plan's update to a row an earlier
    // plan changed is applied, or refused as stale below, never skipped.
    let mut done: HashMap<String, String> = HashMap::new();
    {
        let rows = sql::audited(dialect, ids.plan)
            .query()
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err("reading the audit table".into()))?;
        for r in rows {
            let id: String = r
                .try_get(0)
                .map_err(db_err("reading the audit table".into()))?;
            let key: String = r
                .try_get(1)
                .map_err(db_err("reading the audit table".into()))?;
            done.insert(id, key);
        }
    }
    let todo: Vec<&Change> = changes
        .iter()
        .copied()
        .filter(|c| !done.contains_key(&c.id))
        .collect();
    let mut report = Report {
        plan_id: ids.plan.to_string(),
        plan_hash: plan_hash.to_string(),
        already_applied: changes.len() - todo.len(),
        ..Report::default()
    };
    // Stale check: every updated row still holds the plan's before-values.
    let mut stale = Vec::new();
    for c in todo.iter().filter(|c| c.op == Op::Update) {
        let key = c.key.as_deref().unwrap_or_default();
        let table = schema.table(&c.table);
        let cols: Vec<&crate::plan::ColumnChange> = c
            .columns
            .iter()
            .filter(|col| col.after != After::Now)
            .collect();
        let st = sql::select_before(dialect, table, &c.table, &c.key_column, &cols, key);
        let row = st
            .query()
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err(format!("reading {} {key}", c.table)))?;
        let Some(row) = row else {
            stale.push(format!(
                "  {} {}={key}: the row is gone",
                c.table, c.key_column
            ));
            continue;
        };
        for (i, col) in cols.iter().enumerate() {
            let now: Option<String> = row
                .try_get(i)
                .map_err(db_err(format!("reading {} {key}", c.table)))?;
            let class = table.and_then(|t| t.column(&col.column)).map(|c| c.class);
            let now = now.map(|v| sql::normalise(&v, class, col.zone.as_deref()));
            if now != col.before {
                stale.push(format!(
                    "  {} {}={key}: {} is {} now, the plan expected {}",
                    c.table,
                    c.key_column,
                    col.column,
                    now.as_deref().unwrap_or("NULL"),
                    col.before.as_deref().unwrap_or("NULL")
                ));
            }
        }
    }
    if !stale.is_empty() {
        return Err(ApplyError::Stale { rows: stale });
    }
    // Undo statements in the order the changes were made; the script runs them backwards, so
    // that rows referring to others go first.
    let mut undo: Vec<String> = Vec::new();
    let now = Utc::now();
    let mut keys: HashMap<String, String> = HashMap::new();
    // Keys of inserts an earlier run made, for changes that refer to them.
    for c in plan.changes.iter().filter(|c| c.op == Op::Insert) {
        if let (Some(l), Some(k)) = (&c.local, done.get(&c.id)) {
            keys.insert(l.clone(), k.clone());
        }
    }
    // PostgreSQL: take every new row's key from its sequence first, so that inserts go a thousand
    // rows to a statement with nothing to read back.
    let preassigned = if dialect == Dialect::Postgres {
        preassign_keys(conn, schema, &todo, &mut keys, opts.dry_run).await?
    } else {
        HashSet::new()
    };
    let mut pending: Vec<(String, Vec<(String, Bind)>)> = Vec::new();
    let mut pending_of: Option<(String, String, Vec<String>)> = None;
    // Audit rows go in batches: one statement per change would double the round trips.
    let mut audit: Vec<(&Change, String)> = Vec::with_capacity(sql::AUDIT_BATCH);
    for c in &todo {
        let table = schema.table(&c.table);
        let binds: Vec<(String, Bind)> = c
            .columns
            .iter()
            .map(|col| {
                let class = table.and_then(|t| t.column(&col.column)).map(|x| x.class);
                let v =
                    sql::bind_value(&col.after, class, dialect, now, &keys, col.zone.as_deref());
                (col.column.clone(), v)
            })
            .collect();
        let shape: Vec<String> = binds.iter().map(|(col, _)| col.clone()).collect();
        let joins_pending = pending_of
            .as_ref()
            .is_some_and(|(t, k, cols)| t == &c.table && k == &c.key_column && cols == &shape)
            && c.op == Op::Insert
            && preassigned.contains(c.id.as_str());
        if !joins_pending {
            flush(conn, schema, &mut pending, &pending_of).await?;
            pending_of = None;
        }
        let row_key = match c.op {
            Op::Insert if preassigned.contains(c.id.as_str()) => {
                let key = c
                    .local
                    .as_ref()
                    .and_then(|l| keys.get(l))
                    .cloned()
                    .unwrap_or_default();
                pending_of = Some((c.table.clone(), c.key_column.clone(), shape));
                pending.push((key.clone(), binds));
                if pending.len() >= sql::rows_per_insert(pending[0].1.len() + 1) {
                    flush(conn, schema, &mut pending, &pending_of).await?;
                }
                undo.push(sql::undo_insert(dialect, &c.table, &c.key_column, &key));
                *report.inserted.entry(c.table.clone()).or_insert(0) += 1;
                key
            }
            Op::Insert => {
                let st: Statement = sql::insert(dialect, table, &c.table, &c.key_column, &binds);
                let key = st
                    .insert_returning_key(&mut *conn, dialect)
                    .await
                    .map_err(|e| ApplyError::Db {
                        what: format!("inserting {} {}", c.table, c.local.as_deref().unwrap_or("")),
                        message: e.to_string(),
                    })?;
                if let Some(l) = &c.local {
                    keys.insert(l.clone(), key.clone());
                }
                undo.push(sql::undo_insert(dialect, &c.table, &c.key_column, &key));
                *report.inserted.entry(c.table.clone()).or_insert(0) += 1;
                key
            }
            Op::Update => {
                let key = c.key.clone().unwrap_or_default();
                let st = sql::update(dialect, table, &c.table, &c.key_column, &binds, &key);
                st.query()
                    .execute(&mut *conn)
                    .await
                    .map_err(db_err(format!("updating {} {key}", c.table)))?;
                undo.push(sql::undo_update(
                    dialect,
                    &c.table,
                    &c.key_column,
                    &key,
                    &c.columns,
                    table,
                ));
                *report.updated.entry(c.table.clone()).or_insert(0) += 1;
                key
            }
        };
        audit.push((*c, row_key));
        if audit.len() == sql::AUDIT_BATCH {
            record(conn, dialect, ids, &audit, now).await?;
            audit.clear();
        }
        report.applied += 1;
    }
    flush(conn, schema, &mut pending, &pending_of).await?;
    if !audit.is_empty() {
        record(conn, dialect, ids, &audit, now).await?;
    }
    let mut script = format!(
        "-- gapfill undo script for plan {} ({plan_hash}): restores every row this apply touched\n\
         -- to its before-values and removes the rows it inserted, newest first, then forgets the\n\
         -- changes in {AUDIT_TABLE}. It is written before apply commits: if apply reported an\n\
         -- error, nothing was applied and this script must not be run. Review it, then run it\n\
         -- as one transaction.\nBEGIN;\n",
        ids.plan
    );
    for statement in undo.iter().rev() {
        script += statement;
    }
    script += &sql::undo_audit(dialect, ids.plan, now);
    script += "COMMIT;\n";
    Ok((report, script))
}

/// What apply did, for people.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    if r.applied == 0 && r.already_applied > 0 {
        out += &format!(
            "nothing to do: all {} accepted changes were applied before (gapfill_audit)\n",
            r.already_applied
        );
        return out;
    }
    for (t, n) in &r.inserted {
        out += &format!("{t}: {n} inserted\n");
    }
    for (t, n) in &r.updated {
        out += &format!("{t}: {n} updated\n");
    }
    out += &format!(
        "{} {} of {} accepted changes ({} applied before); plan {}\n",
        if r.dry_run {
            "dry run: would apply"
        } else {
            "applied"
        },
        r.applied,
        r.accepted,
        r.already_applied,
        r.plan_hash
    );
    if r.dry_run {
        out += "dry run: everything was rolled back; the database is as it was\n";
    }
    if let Some(u) = &r.undo {
        out += &format!("undo script: {u}\n");
    }
    out
}

/// Records applied changes in the audit table, in one statement.
async fn record(
    conn: &mut AnyConnection,
    dialect: Dialect,
    ids: Ids<'_>,
    rows: &[(&Change, String)],
    now: chrono::DateTime<Utc>,
) -> Result<()> {
    sql::audit(dialect, ids.plan, ids.hash, rows, now)
        .query()
        .execute(&mut *conn)
        .await
        .map_err(|e| ApplyError::Db {
            what: format!(
                "recording {} change(s) from {} on in the audit table",
                rows.len(),
                rows.first().map_or("", |(c, _)| c.id.as_str())
            ),
            message: e.to_string(),
        })?;
    Ok(())
}

/// Takes keys for the plan's new rows from each key column's sequence (PostgreSQL), in plan
/// order, and returns the ids of the changes that got one. Tables whose key has no sequence keep
/// the one-row insert that reads its key back.
///
/// A dry run takes no sequence values (nextval is not undone by a rollback, so each dry run would
/// leave a gap in the keys): its rows get the keys above the table's largest, inside the
/// transaction it rolls back.
async fn preassign_keys(
    conn: &mut AnyConnection,
    schema: &Schema,
    todo: &[&Change],
    keys: &mut HashMap<String, String>,
    dry_run: bool,
) -> Result<HashSet<String>> {
    let mut by_table: BTreeMap<(String, String), Vec<&Change>> = BTreeMap::new();
    for c in todo
        .iter()
        .filter(|c| c.op == Op::Insert && c.local.is_some())
    {
        let integer = schema
            .table(&c.table)
            .and_then(|t| t.column(&c.key_column))
            .is_some_and(|col| col.class == crate::schema::TypeClass::Integer);
        if integer {
            by_table
                .entry((c.table.clone(), c.key_column.clone()))
                .or_default()
                .push(c);
        }
    }
    let mut assigned = HashSet::new();
    for ((table, key_column), changes) in by_table {
        let what = format!("taking {} keys for {table}", changes.len());
        let fail = |e: sqlx::Error| ApplyError::Db {
            what: what.clone(),
            message: e.to_string(),
        };
        let seq: Option<String> = sqlx::query("SELECT pg_get_serial_sequence($1, $2)")
            .bind(Dialect::Postgres.quote(&table))
            .bind(key_column.clone())
            .fetch_one(&mut *conn)
            .await
            .map_err(fail)?
            .try_get(0)
            .map_err(fail)?;
        let Some(seq) = seq else { continue };
        let rows = if dry_run {
            let q = Dialect::Postgres;
            let sql = format!(
                "SELECT CAST(COALESCE((SELECT MAX({k}) FROM {t}), 0) + n AS TEXT) FROM generate_series(1, $1) AS n",
                k = q.quote(&key_column),
                t = q.quote(&table)
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(changes.len() as i64)
                .fetch_all(&mut *conn)
                .await
        } else {
            sqlx::query(
                "SELECT CAST(nextval(CAST($1 AS regclass)) AS TEXT) FROM generate_series(1, $2)",
            )
            .bind(seq)
            .bind(changes.len() as i64)
            .fetch_all(&mut *conn)
            .await
        }
        .map_err(fail)?;
        for (c, row) in changes.iter().zip(rows) {
            let key: String = row.try_get(0).map_err(fail)?;
            if let Some(l) = &c.local {
                keys.insert(l.clone(), key);
            }
            assigned.insert(c.id.clone());
        }
    }
    Ok(assigned)
}

/// Inserts the rows waiting for a multi-row INSERT.
async fn flush(
    conn: &mut AnyConnection,
    schema: &Schema,
    pending: &mut Vec<(String, Vec<(String, Bind)>)>,
    of: &Option<(String, String, Vec<String>)>,
) -> Result<()> {
    let (Some((table, key_column, _)), false) = (of, pending.is_empty()) else {
        return Ok(());
    };
    sql::insert_many(schema.table(table), table, key_column, pending)
        .query()
        .execute(&mut *conn)
        .await
        .map_err(|e| ApplyError::Db {
            what: format!("inserting {} rows into {table}", pending.len()),
            message: e.to_string(),
        })?;
    pending.clear();
    Ok(())
}
