//! The baseline: the restored database's rows that the mapping names, read-only.
//!
//! Only mapped tables and columns are read, inside one read-only transaction with a consistent
//! snapshot, streaming row by row. Identifiers come from a mapping that `check` has validated
//! against the introspected schema, and are quoted per dialect (invariant 9). Values come back
//! normalised for matching: instants as UTC `YYYY-MM-DDTHH:MM:SSZ` (wall-clock columns converted
//! from the mapping's zone), everything else as the database's text.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use futures_util::TryStreamExt;
use sqlx::{AnyConnection, Row};

use crate::dburl::Dialect;
use crate::mapping::{parse_duration, Mapping};
use crate::schema::{Schema, TypeClass};

#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("cannot read {what}: {message}")]
    Read { what: String, message: String },
    #[error("{0}; run `gapfill check` on the mapping first")]
    Unchecked(String),
}

type Result<T> = std::result::Result<T, BaselineError>;

/// Rows of one table, columns in the order given.
#[derive(Debug, Default)]
pub struct Rows {
    pub table: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<Box<str>>>>,
}

impl Rows {
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }
}

#[derive(Debug)]
pub struct Baseline {
    /// Per entity of the mapping: its key, natural keys and mapped columns.
    pub entities: BTreeMap<String, Rows>,
    /// Tables that lookups read: their match and returned columns.
    pub lookups: BTreeMap<String, Rows>,
    /// The newest value of the mapping's restore-point columns.
    pub restore_point: Option<DateTime<Utc>>,
    /// The restore point minus the mapping's overlap: where the evidence window starts.
    pub window_start: Option<DateTime<Utc>>,
}

impl Baseline {
    pub fn row_count(&self) -> usize {
        self.entities.values().map(|r| r.rows.len()).sum::<usize>()
            + self.lookups.values().map(|r| r.rows.len()).sum::<usize>()
    }
}

/// Starts the transaction everything is read in: read-only, and one snapshot for all tables so
/// that a reservation and its customer are read as of the same moment.
pub async fn begin_read_only(conn: &mut AnyConnection, dialect: Dialect) -> Result<()> {
    let sql = match dialect {
        Dialect::Postgres => "START TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY",
        Dialect::Mysql => "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
        // The connection itself is read-only (mode=ro); a transaction gives the snapshot.
        Dialect::Sqlite => "BEGIN",
    };
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&mut *conn)
        .await
        .map_err(|e| BaselineError::Read {
            what: "a read-only transaction".into(),
            message: e.to_string(),
        })?;
    Ok(())
}

pub(crate) fn select_expr(dialect: Dialect, column: &str, class: TypeClass) -> String {
    let q = dialect.quote(column);
    match (dialect, class) {
        (Dialect::Postgres, TypeClass::Timestamp { zoned: true }) => {
            format!("to_char({q} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
        }
        (Dialect::Postgres, TypeClass::Timestamp { zoned: false }) => {
            format!("to_char({q}, 'YYYY-MM-DD\"T\"HH24:MI:SS')")
        }
        (Dialect::Postgres, _) => format!("CAST({q} AS TEXT)"),
        (Dialect::Mysql, TypeClass::Timestamp { .. }) => {
            format!("DATE_FORMAT({q}, '%Y-%m-%dT%H:%i:%s')")
        }
        (Dialect::Mysql, _) => format!("CAST({q} AS CHAR)"),
        (Dialect::Sqlite, _) => format!("CAST({q} AS TEXT)"),
    }
}

/// Reads an instant as the database gave it: with an offset it is that instant; without one it
/// is wall-clock time in `zone`. A wall-clock time that a DST change skips is read one hour
/// later; one that happens twice is the earlier instant.
pub fn to_utc(text: &str, zone: Option<chrono_tz::Tz>) -> Option<DateTime<Utc>> {
    let s = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%#z"] {
        if let Ok(t) = DateTime::parse_from_str(s, f) {
            return Some(t.with_timezone(&Utc));
        }
    }
    let naive = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())?;
    match zone {
        None => Some(naive.and_utc()),
        Some(z) => match z.from_local_datetime(&naive) {
            chrono::LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
            chrono::LocalResult::Ambiguous(a, _) => Some(a.with_timezone(&Utc)),
            chrono::LocalResult::None => z
                .from_local_datetime(&(naive + chrono::Duration::hours(1)))
                .earliest()
                .map(|t| t.with_timezone(&Utc)),
        },
    }
}

/// A decimal with exactly `scale` digits after the point, as the column declares: SQLite keeps
/// NUMERIC(10,2) values as 289.5, the servers as 289.50, and both must compare equal.
pub fn with_scale(text: &str, scale: u32) -> String {
    let t = text.trim();
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let int_ok = digits(int.trim_start_matches('-')) && !int.trim_start_matches('-').is_empty();
    if !int_ok || !digits(frac) {
        return t.to_string();
    }
    let scale = scale as usize;
    if frac.len() <= scale {
        return if scale == 0 {
            int.to_string()
        } else {
            format!("{int}.{frac:0<scale$}")
        };
    }
    // More digits than the column keeps: a binary floating-point artefact (289.49999999999997).
    match t.parse::<f64>() {
        Ok(v) => format!("{v:.scale$}"),
        Err(_) => t.to_string(),
    }
}

pub(crate) fn canonical(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// One table to read: which columns, and the zone of each wall-clock time column.
struct Read<'a> {
    table: &'a str,
    columns: Vec<(String, TypeClass, Option<chrono_tz::Tz>)>,
}

/// Loads the baseline. `progress` is told the table being read and the rows read so far.
pub async fn load(
    conn: &mut AnyConnection,
    schema: &Schema,
    mapping: &Mapping,
    progress: &mut dyn FnMut(&str, u64),
) -> Result<Baseline> {
    let dialect = schema.dialect;
    let class_of = |table: &str, column: &str| -> Result<TypeClass> {
        schema
            .table(table)
            .and_then(|t| t.column(column))
            .map(|c| c.class)
            .ok_or_else(|| {
                BaselineError::Unchecked(format!("{table}.{column} is not in the database"))
            })
    };
    let mut entities = BTreeMap::new();
    for (name, e) in &mapping.entities {
        let table = e.table.get_ref().as_str();
        let mut columns = vec![(
            e.key.get_ref().clone(),
            class_of(table, e.key.get_ref())?,
            None,
        )];
        let mut add = |col: &str, zone: Option<chrono_tz::Tz>| -> Result<()> {
            if !columns.iter().any(|(c, _, _)| c == col) {
                columns.push((col.to_string(), class_of(table, col)?, zone));
            }
            Ok(())
        };
        for set in &e.natural_keys {
            for c in set {
                add(c.get_ref(), None)?;
            }
        }
        for (col, c) in &e.columns {
            let zone = c.zone.as_ref().and_then(|z| z.get_ref().parse().ok());
            add(col.get_ref(), zone)?;
        }
        let rows = read_table(conn, dialect, &Read { table, columns }, progress).await?;
        entities.insert(name.get_ref().clone(), rows);
    }
    let mut lookups: BTreeMap<String, Rows> = BTreeMap::new();
    let mut wanted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in mapping.entities.values() {
        for l in e
            .columns
            .values()
            .flat_map(|c| c.lookup.iter().chain(c.region_from.iter()))
        {
            let t = l.table.get_ref();
            let cols = wanted.entry(t.clone()).or_default();
            // The key first: a lookup without `returns` finds it in the first column.
            let key = schema.table(t).and_then(|t| t.primary_key.first().cloned());
            if cols.is_empty() {
                if let Some(k) = &key {
                    cols.push(k.clone());
                }
            }
            let returns = match &l.returns {
                Some(r) => r.get_ref().clone(),
                None => key.ok_or_else(|| {
                    BaselineError::Unchecked(format!("lookup table {t} has no primary key"))
                })?,
            };
            for col in std::iter::once(&returns).chain(l.match_columns.iter().map(|m| m.get_ref()))
            {
                if !cols.contains(col) {
                    cols.push(col.clone());
                }
            }
        }
    }
    for (t, cols) in wanted {
        let columns = cols
            .iter()
            .map(|c| Ok((c.clone(), class_of(&t, c)?, None)))
            .collect::<Result<Vec<_>>>()?;
        let rows = read_table(conn, dialect, &Read { table: &t, columns }, progress).await?;
        lookups.insert(t, rows);
    }
    let restore_point = restore_point(mapping, &entities);
    Ok(Baseline {
        entities,
        lookups,
        restore_point,
        window_start: restore_point.map(|t| t - overlap(mapping)),
    })
}

/// The restore point and the window start without loading the baseline: the newest value of each
/// restore-point column, asked of the database. For commands that need only the window.
pub async fn infer_window(
    conn: &mut AnyConnection,
    schema: &Schema,
    mapping: &Mapping,
) -> Result<(Option<DateTime<Utc>>, Option<DateTime<Utc>>)> {
    let dialect = schema.dialect;
    let mut newest: Option<DateTime<Utc>> = None;
    for spec in &mapping.restore_point.columns {
        let Some((table, column)) = spec.get_ref().split_once('.') else {
            continue;
        };
        let class = schema
            .table(table)
            .and_then(|t| t.column(column))
            .map(|c| c.class)
            .ok_or_else(|| {
                BaselineError::Unchecked(format!("{table}.{column} is not in the database"))
            })?;
        let zone = mapping
            .entities
            .values()
            .filter(|e| e.table.get_ref() == table)
            .filter_map(|e| e.column(column))
            .find_map(|c| c.zone.as_ref().and_then(|z| z.get_ref().parse().ok()));
        let sql = format!(
            "SELECT {} FROM {} ORDER BY {} DESC LIMIT 1",
            select_expr(dialect, column, class),
            dialect.quote(table),
            dialect.quote(column)
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| BaselineError::Read {
                what: format!("the newest {table}.{column}"),
                message: e.to_string(),
            })?;
        let value: Option<String> = match row {
            Some(r) => r.try_get(0).map_err(|e| BaselineError::Read {
                what: format!("the newest {table}.{column}"),
                message: e.to_string(),
            })?,
            None => None,
        };
        if let Some(t) = value.as_deref().and_then(|v| to_utc(v, zone)) {
            if newest.is_none_or(|n| t > n) {
                newest = Some(t);
            }
        }
    }
    Ok((newest, newest.map(|t| t - overlap(mapping))))
}

fn overlap(mapping: &Mapping) -> chrono::Duration {
    mapping
        .restore_point
        .overlap
        .as_ref()
        .and_then(|o| parse_duration(o.get_ref()))
        .unwrap_or_default()
}

/// The newest value among the restore-point columns, from the rows just read when the column is
/// mapped.
fn restore_point(mapping: &Mapping, entities: &BTreeMap<String, Rows>) -> Option<DateTime<Utc>> {
    let mut newest: Option<DateTime<Utc>> = None;
    for spec in &mapping.restore_point.columns {
        let Some((table, column)) = spec.get_ref().split_once('.') else {
            continue;
        };
        for rows in entities.values().filter(|r| r.table == table) {
            let Some(i) = rows.column_index(column) else {
                continue;
            };
            for row in &rows.rows {
                if let Some(t) = row[i].as_deref().and_then(|v| to_utc(v, None)) {
                    if newest.is_none_or(|n| t > n) {
                        newest = Some(t);
                    }
                }
            }
        }
    }
    newest
}

async fn read_table(
    conn: &mut AnyConnection,
    dialect: Dialect,
    read: &Read<'_>,
    progress: &mut dyn FnMut(&str, u64),
) -> Result<Rows> {
    let exprs: Vec<String> = read
        .columns
        .iter()
        .map(|(c, class, _)| select_expr(dialect, c, *class))
        .collect();
    let sql = format!(
        "SELECT {} FROM {} ORDER BY {}",
        exprs.join(", "),
        dialect.quote(read.table),
        dialect.quote(&read.columns[0].0)
    );
    let err = |e: sqlx::Error| BaselineError::Read {
        what: format!("table {}", read.table),
        message: e.to_string(),
    };
    let mut stream = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(&mut *conn);
    let mut rows = Vec::new();
    progress(read.table, 0);
    while let Some(row) = stream.try_next().await.map_err(err)? {
        let mut vals = Vec::with_capacity(read.columns.len());
        for (i, (_, class, zone)) in read.columns.iter().enumerate() {
            let v: Option<String> = row.try_get(i).map_err(err)?;
            let v = match (v, class) {
                (Some(v), TypeClass::Timestamp { .. }) => {
                    Some(to_utc(&v, *zone).map(canonical).unwrap_or(v))
                }
                (Some(v), TypeClass::Text) if zone.is_some() => {
                    Some(to_utc(&v, *zone).map(canonical).unwrap_or(v))
                }
                (Some(v), TypeClass::Decimal { scale: Some(scale) }) => {
                    Some(with_scale(&v, *scale))
                }
                (v, _) => v,
            };
            vals.push(v.map(String::into_boxed_str));
        }
        rows.push(vals);
        if rows.len() % 65_536 == 0 {
            progress(read.table, rows.len() as u64);
        }
    }
    progress(read.table, rows.len() as u64);
    Ok(Rows {
        table: read.table.to_string(),
        columns: read.columns.iter().map(|(c, _, _)| c.clone()).collect(),
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_clock_times_in_a_zone() {
        let berlin: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
        let t = |s| to_utc(s, Some(berlin)).map(canonical);
        assert_eq!(
            t("2026-07-01T10:00:00").as_deref(),
            Some("2026-07-01T08:00:00Z")
        );
        // 02:30 does not exist on 2026-03-29 in Berlin: read as 03:30 CEST.
        assert_eq!(
            t("2026-03-29 02:30:00").as_deref(),
            Some("2026-03-29T01:30:00Z")
        );
        // 02:30 happens twice on 2026-10-25: the earlier, CEST.
        assert_eq!(
            t("2026-10-25 02:30:00").as_deref(),
            Some("2026-10-25T00:30:00Z")
        );
        assert_eq!(
            to_utc("2026-07-01 10:00:00+02", None)
                .map(canonical)
                .as_deref(),
            Some("2026-07-01T08:00:00Z")
        );
        assert_eq!(to_utc("yesterday", None), None);
    }

    #[test]
    fn decimals_get_the_columns_scale() {
        assert_eq!(with_scale("289.5", 2), "289.50");
        assert_eq!(with_scale("289", 2), "289.00");
        assert_eq!(with_scale("289.49999999999997", 2), "289.50");
        assert_eq!(with_scale("-3.1", 1), "-3.1");
        assert_eq!(with_scale("12000", 0), "12000");
        assert_eq!(with_scale("n/a", 2), "n/a");
    }
}
