//! Reading reference-schema rows from any of the three databases as normalised text.

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, NaiveDateTime, Utc};
use futures_util::TryStreamExt;
use sqlx::{AnyConnection, Row};

use super::{EvaluateError, Result};
use crate::dburl::{redact, Dialect};
use crate::reference::{self, Kind, Table};

/// One value, normalised so that equal facts compare equal across dialects: integers in decimal,
/// instants as `YYYY-MM-DDTHH:MM:SSZ`, emails in lower case.
pub type Val = Option<String>;

pub struct Loaded {
    /// Rows with their primary keys, in primary-key order.
    rows: Vec<(i64, Vec<Val>)>,
    by_pk: HashMap<i64, usize>,
}

impl Loaded {
    pub fn len(&self) -> usize {
        self.rows.len()
    }
    pub fn get(&self, pk: i64) -> Option<&[Val]> {
        self.by_pk.get(&pk).map(|i| self.rows[*i].1.as_slice())
    }
    /// Rows with their primary keys, in primary-key order.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &[Val])> {
        self.rows.iter().map(|(pk, r)| (*pk, r.as_slice()))
    }
}

fn select_expr(dialect: Dialect, name: &str, kind: Kind) -> String {
    let q = dialect.quote(name);
    match (dialect, kind) {
        (Dialect::Postgres, Kind::Timestamp) => {
            format!("to_char({q} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
        }
        (Dialect::Postgres, _) => format!("CAST({q} AS TEXT)"),
        (Dialect::Mysql, Kind::Timestamp) => format!("DATE_FORMAT({q}, '%Y-%m-%dT%H:%i:%sZ')"),
        (Dialect::Mysql, _) => format!("CAST({q} AS CHAR)"),
        (Dialect::Sqlite, _) => format!("CAST({q} AS TEXT)"),
    }
}

/// Accepts the spellings databases and tools use for an instant and returns the canonical one.
/// Text without an offset is UTC, the reference schema's convention.
pub fn normalise_time(s: &str) -> String {
    let s = s.trim();
    // Already canonical (what SQLite, and the formatting SQL for the servers, give): parsing and
    // formatting every instant again was a tenth of the evaluation's time.
    let b = s.as_bytes();
    if b.len() == 20
        && b[10] == b'T'
        && b[19] == b'Z'
        && b.iter()
            .enumerate()
            .all(|(i, c)| matches!(i, 4 | 7 | 10 | 13 | 16 | 19) || c.is_ascii_digit())
        && [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')]
            .iter()
            .all(|(i, c)| b[*i] == *c)
    {
        return s.to_string();
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return t
            .with_timezone(&Utc)
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%#z"] {
        if let Ok(t) = DateTime::parse_from_str(s, f) {
            return t
                .with_timezone(&Utc)
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string();
        }
    }
    for f in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return t.and_utc().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        }
    }
    s.to_string()
}

pub async fn table(
    conn: &mut AnyConnection,
    dialect: Dialect,
    table: &Table,
    url: &str,
) -> Result<Loaded> {
    let exprs: Vec<String> = table
        .columns
        .iter()
        .map(|c| select_expr(dialect, c.name, c.kind))
        .collect();
    let sql = format!(
        "SELECT {} FROM {} ORDER BY {}",
        exprs.join(", "),
        dialect.quote(table.name),
        dialect.quote("id")
    );
    let read_err = |e: sqlx::Error| EvaluateError::Read {
        what: format!("table {} of {}", table.name, redact(url)),
        message: e.to_string(),
    };
    let mut stream = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(&mut *conn);
    let mut rows = Vec::new();
    let mut by_pk = HashMap::new();
    while let Some(row) = stream.try_next().await.map_err(read_err)? {
        let mut vals = Vec::with_capacity(table.columns.len());
        for (i, c) in table.columns.iter().enumerate() {
            let v: Option<String> = row.try_get(i).map_err(read_err)?;
            vals.push(v.map(|v| match c.kind {
                Kind::Timestamp => normalise_time(&v),
                Kind::Email => v.trim().to_lowercase(),
                _ => v,
            }));
        }
        // Every row must be addressable: a key the alignment cannot name would be silently lost.
        let Some(pk) = vals[0].as_deref().and_then(|v| v.parse::<i64>().ok()) else {
            return Err(EvaluateError::Read {
                what: format!("table {} of {}", table.name, redact(url)),
                message: format!(
                    "a row has id {:?}; the reference schema's ids are integers",
                    vals[0].as_deref().unwrap_or("NULL")
                ),
            });
        };
        by_pk.insert(pk, rows.len());
        rows.push((pk, vals));
    }
    Ok(Loaded { rows, by_pk })
}

pub struct Incident {
    pub restore_point: String,
    /// (table, truth row id) pairs that some evidence mentions.
    pub mentioned: Vec<(String, i64)>,
}

pub async fn incident(conn: &mut AnyConnection, path: &Path) -> Result<Incident> {
    let not_truth = |why: String| EvaluateError::NotTruth {
        path: path.to_path_buf(),
        why,
    };
    let sql = format!(
        "SELECT value FROM {} WHERE key = 'restore_point'",
        reference::INCIDENT_TABLE
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| {
            not_truth(format!(
                "{e} (expected table {})",
                reference::INCIDENT_TABLE
            ))
        })?
        .ok_or_else(|| not_truth("it records no restore point".into()))?;
    let restore_point: String = row.try_get(0).map_err(|e| not_truth(e.to_string()))?;
    let sql = format!(
        "SELECT DISTINCT table_name, row_id FROM {}",
        reference::MANIFEST_TABLE
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| not_truth(e.to_string()))?;
    let mut mentioned = Vec::with_capacity(rows.len());
    for r in rows {
        mentioned.push((
            r.try_get::<String, _>(0)
                .map_err(|e| not_truth(e.to_string()))?,
            r.try_get::<i64, _>(1)
                .map_err(|e| not_truth(e.to_string()))?,
        ));
    }
    Ok(Incident {
        restore_point: normalise_time(&restore_point),
        mentioned,
    })
}

#[cfg(test)]
mod tests {
    use super::normalise_time;

    #[test]
    fn instants_from_every_dialect_agree() {
        assert_eq!(
            normalise_time("2026-13-99T02:00:00Z"),
            "2026-13-99T02:00:00Z",
            "kept, not invented"
        );
        for s in [
            "2026-06-16T02:00:00Z",
            "2026-06-16 02:00:00+00",
            "2026-06-16 04:00:00+02:00",
            "2026-06-16 02:00:00",
            "2026-06-16T02:00:00.000",
        ] {
            assert_eq!(normalise_time(s), "2026-06-16T02:00:00Z", "{s}");
        }
    }
}
