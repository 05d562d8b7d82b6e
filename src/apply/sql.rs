//! The statements apply issues, per dialect. Identifiers come from the plan, which took them from
//! a mapping that `check` found in the schema, and are quoted; values are always bound (invariant
//! 9). Only the undo script, which a person runs, holds literals.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::any::{Any, AnyArguments};
use sqlx::query::Query;
use sqlx::{AnyConnection, Row};

use super::AUDIT_TABLE;
use crate::baseline::{canonical, to_utc, with_scale};
use crate::dburl::Dialect;
use crate::plan::{After, Change, ColumnChange};
use crate::schema::{Table, TypeClass};

#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Null,
    Int(i64),
    Text(String),
}

/// SQL with its bound values.
pub struct Statement {
    pub sql: String,
    pub binds: Vec<Bind>,
}

impl Statement {
    pub fn query(&self) -> Query<'_, Any, AnyArguments> {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(self.sql.clone()));
        for b in &self.binds {
            q = match b {
                Bind::Null => q.bind(Option::<String>::None),
                Bind::Int(i) => q.bind(*i),
                Bind::Text(s) => q.bind(s.clone()),
            };
        }
        q
    }

    /// Runs an INSERT and returns the new row's key as text.
    pub async fn insert_returning_key(
        &self,
        conn: &mut AnyConnection,
        dialect: Dialect,
    ) -> Result<String, sqlx::Error> {
        match dialect {
            Dialect::Mysql => {
                let done = self.query().execute(&mut *conn).await?;
                Ok(done
                    .last_insert_id()
                    .map(|i| i.to_string())
                    .unwrap_or_default())
            }
            _ => {
                let row = self.query().fetch_one(&mut *conn).await?;
                row.try_get::<String, _>(0)
            }
        }
    }
}

fn placeholder(
    dialect: Dialect,
    n: usize,
    class: Option<TypeClass>,
    declared: Option<&str>,
) -> String {
    match dialect {
        Dialect::Postgres => {
            let cast = match class {
                Some(TypeClass::Timestamp { zoned: true }) => Some("TIMESTAMPTZ".to_string()),
                Some(TypeClass::Timestamp { zoned: false }) => Some("TIMESTAMP".into()),
                Some(TypeClass::Decimal { .. }) => Some("NUMERIC".into()),
                Some(TypeClass::Date) => Some("DATE".into()),
                Some(TypeClass::Uuid) => Some("UUID".into()),
                Some(TypeClass::Boolean) => Some("BOOLEAN".into()),
                Some(TypeClass::Float) => Some("DOUBLE PRECISION".into()),
                Some(TypeClass::Enum) => declared.map(|d| Dialect::Postgres.quote(d)),
                _ => None,
            };
            match cast {
                Some(t) => format!("CAST(${n} AS {t})"),
                None => format!("${n}"),
            }
        }
        _ => "?".into(),
    }
}

fn class_of(table: Option<&Table>, column: &str) -> (Option<TypeClass>, Option<String>) {
    let c = table.and_then(|t| t.column(column));
    (c.map(|c| c.class), c.map(|c| c.declared.clone()))
}

/// An instant in the column's convention: `YYYY-MM-DD HH:MM:SS` (UTC) for MySQL's DATETIME and
/// TIMESTAMP, ISO 8601 with a Z elsewhere (PostgreSQL casts it; SQLite keeps the text).
fn instant_text(dialect: Dialect, t: DateTime<Utc>) -> String {
    match dialect {
        Dialect::Mysql => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        _ => canonical(t),
    }
}

/// The value to bind for a column.
pub fn bind_value(
    after: &After,
    class: Option<TypeClass>,
    dialect: Dialect,
    now: DateTime<Utc>,
    keys: &HashMap<String, String>,
    zone: Option<&str>,
) -> Bind {
    let key = |k: &str| match class {
        Some(TypeClass::Integer) => k.parse().map(Bind::Int).unwrap_or(Bind::Text(k.into())),
        _ => Bind::Text(k.into()),
    };
    match after {
        After::Int(i) => match class {
            Some(TypeClass::Integer | TypeClass::Boolean) | None => Bind::Int(*i),
            _ => Bind::Text(i.to_string()),
        },
        After::Text(s) | After::Decimal(s) | After::Date(s) => Bind::Text(s.clone()),
        After::Instant(s) => match to_utc(s, None) {
            Some(t) => Bind::Text(instant_text(dialect, t)),
            None => Bind::Text(s.clone()),
        },
        After::WallClock(s) => Bind::Text(s.clone()),
        After::Key(k) => key(k),
        After::Ref(l) => keys.get(l).map_or(Bind::Null, |k| key(k)),
        After::Now => match zone.and_then(|z| z.parse::<chrono_tz::Tz>().ok()) {
            Some(z) => Bind::Text(
                now.with_timezone(&z)
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string(),
            ),
            None => Bind::Text(instant_text(dialect, now)),
        },
    }
}

/// A value read back, normalised the way the baseline normalised it.
pub fn normalise(v: &str, class: Option<TypeClass>, zone: Option<&str>) -> String {
    let zone = zone.and_then(|z| z.parse::<chrono_tz::Tz>().ok());
    match class {
        Some(TypeClass::Timestamp { .. }) => {
            to_utc(v, zone).map(canonical).unwrap_or(v.to_string())
        }
        Some(TypeClass::Text) if zone.is_some() => {
            to_utc(v, zone).map(canonical).unwrap_or(v.to_string())
        }
        Some(TypeClass::Decimal { scale: Some(s) }) => with_scale(v, s),
        _ => v.to_string(),
    }
}

fn key_bind(table: Option<&Table>, key_column: &str, key: &str) -> Bind {
    match class_of(table, key_column).0 {
        Some(TypeClass::Integer) => key.parse().map(Bind::Int).unwrap_or(Bind::Text(key.into())),
        _ => Bind::Text(key.into()),
    }
}

fn key_placeholder(dialect: Dialect, table: Option<&Table>, key_column: &str, n: usize) -> String {
    let (class, declared) = class_of(table, key_column);
    placeholder(dialect, n, class, declared.as_deref())
}

/// Reads the columns an update will change, locking the row where the database can.
pub fn select_before(
    dialect: Dialect,
    table: Option<&Table>,
    name: &str,
    key_column: &str,
    columns: &[&ColumnChange],
    key: &str,
) -> Statement {
    let exprs: Vec<String> = columns
        .iter()
        .map(|c| {
            let class = class_of(table, &c.column).0.unwrap_or(TypeClass::Text);
            crate::baseline::select_expr(dialect, &c.column, class)
        })
        .collect();
    let lock = match dialect {
        Dialect::Sqlite => "",
        _ => " FOR UPDATE",
    };
    Statement {
        sql: format!(
            "SELECT {} FROM {} WHERE {} = {}{lock}",
            if exprs.is_empty() {
                "1".to_string()
            } else {
                exprs.join(", ")
            },
            dialect.quote(name),
            dialect.quote(key_column),
            key_placeholder(dialect, table, key_column, 1)
        ),
        binds: vec![key_bind(table, key_column, key)],
    }
}

pub fn insert(
    dialect: Dialect,
    table: Option<&Table>,
    name: &str,
    key_column: &str,
    binds: &[(String, Bind)],
) -> Statement {
    let cols: Vec<String> = binds.iter().map(|(c, _)| dialect.quote(c)).collect();
    let marks: Vec<String> = binds
        .iter()
        .enumerate()
        .map(|(i, (c, _))| {
            let (class, declared) = class_of(table, c);
            placeholder(dialect, i + 1, class, declared.as_deref())
        })
        .collect();
    let returning = match dialect {
        Dialect::Mysql => String::new(),
        Dialect::Postgres => format!(" RETURNING CAST({} AS TEXT)", dialect.quote(key_column)),
        Dialect::Sqlite => format!(" RETURNING CAST({} AS TEXT)", dialect.quote(key_column)),
    };
    Statement {
        sql: format!(
            "INSERT INTO {} ({}) VALUES ({}){returning}",
            dialect.quote(name),
            cols.join(", "),
            marks.join(", ")
        ),
        binds: binds.iter().map(|(_, b)| b.clone()).collect(),
    }
}

/// Rows per multi-row INSERT on PostgreSQL, kept under its 65,535 bound parameters.
pub fn rows_per_insert(columns: usize) -> usize {
    (60_000 / columns.max(1)).clamp(1, 1000)
}

/// One INSERT of several rows whose keys were taken from the key column's sequence beforehand
/// (PostgreSQL only): no key has to be read back, so a thousand rows cost one round trip.
/// `OVERRIDING SYSTEM VALUE` lets an identity column take them.
pub fn insert_many(
    table: Option<&Table>,
    name: &str,
    key_column: &str,
    rows: &[(String, Vec<(String, Bind)>)],
) -> Statement {
    let dialect = Dialect::Postgres;
    let first = &rows[0].1;
    let mut cols = vec![dialect.quote(key_column)];
    cols.extend(first.iter().map(|(c, _)| dialect.quote(c)));
    let (key_class, key_declared) = class_of(table, key_column);
    let mut tuples = Vec::with_capacity(rows.len());
    let mut binds = Vec::with_capacity(rows.len() * cols.len());
    let mut n = 0;
    for (key, row) in rows {
        let mut marks = Vec::with_capacity(cols.len());
        n += 1;
        marks.push(placeholder(dialect, n, key_class, key_declared.as_deref()));
        binds.push(key_bind(table, key_column, key));
        for (c, b) in row {
            n += 1;
            let (class, declared) = class_of(table, c);
            marks.push(placeholder(dialect, n, class, declared.as_deref()));
            binds.push(b.clone());
        }
        tuples.push(format!("({})", marks.join(", ")));
    }
    let overriding = match table.and_then(|t| t.column(key_column)) {
        Some(_) => " OVERRIDING SYSTEM VALUE",
        None => "",
    };
    Statement {
        sql: format!(
            "INSERT INTO {} ({}){overriding} VALUES {}",
            dialect.quote(name),
            cols.join(", "),
            tuples.join(", ")
        ),
        binds,
    }
}

pub fn update(
    dialect: Dialect,
    table: Option<&Table>,
    name: &str,
    key_column: &str,
    binds: &[(String, Bind)],
    key: &str,
) -> Statement {
    let sets: Vec<String> = binds
        .iter()
        .enumerate()
        .map(|(i, (c, _))| {
            let (class, declared) = class_of(table, c);
            format!(
                "{} = {}",
                dialect.quote(c),
                placeholder(dialect, i + 1, class, declared.as_deref())
            )
        })
        .collect();
    let mut all: Vec<Bind> = binds.iter().map(|(_, b)| b.clone()).collect();
    all.push(key_bind(table, key_column, key));
    Statement {
        sql: format!(
            "UPDATE {} SET {} WHERE {} = {}",
            dialect.quote(name),
            sets.join(", "),
            dialect.quote(key_column),
            key_placeholder(dialect, table, key_column, binds.len() + 1)
        ),
        binds: all,
    }
}

pub fn create_audit(dialect: Dialect) -> String {
    let text = match dialect {
        Dialect::Mysql => "VARCHAR(255)",
        _ => "TEXT",
    };
    let long = match dialect {
        Dialect::Mysql => "LONGTEXT",
        _ => "TEXT",
    };
    format!(
        "CREATE TABLE IF NOT EXISTS {} (plan_id {text} NOT NULL, change_id {text} NOT NULL, plan_hash {text} NOT NULL, table_name {text} NOT NULL, row_key {text} NOT NULL, operation {text} NOT NULL, evidence {long} NOT NULL, applied_at {text} NOT NULL, PRIMARY KEY (plan_id, change_id))",
        dialect.quote(AUDIT_TABLE)
    )
}

/// Audit rows per statement: 8 values each stays far below every database's limit on bound
/// parameters (SQLite's 32766 is the lowest).
pub const AUDIT_BATCH: usize = 1000;

/// The changes of one plan that an earlier apply made, with the keys their rows got.
pub fn audited(dialect: Dialect, plan_id: &str) -> Statement {
    Statement {
        sql: format!(
            "SELECT change_id, row_key FROM {} WHERE plan_id = {}",
            dialect.quote(AUDIT_TABLE),
            placeholder(dialect, 1, None, None)
        ),
        binds: vec![Bind::Text(plan_id.to_string())],
    }
}

pub fn audit(
    dialect: Dialect,
    plan_id: &str,
    plan_hash: &str,
    rows: &[(&Change, String)],
    now: DateTime<Utc>,
) -> Statement {
    let mut tuples = Vec::with_capacity(rows.len());
    let mut binds = Vec::with_capacity(rows.len() * 8);
    for (i, (c, row_key)) in rows.iter().enumerate() {
        let marks: Vec<String> = (1..=8)
            .map(|n| placeholder(dialect, i * 8 + n, None, None))
            .collect();
        tuples.push(format!("({})", marks.join(", ")));
        binds.extend([
            Bind::Text(plan_id.to_string()),
            Bind::Text(c.id.clone()),
            Bind::Text(plan_hash.to_string()),
            Bind::Text(c.table.clone()),
            Bind::Text(row_key.clone()),
            Bind::Text(format!("{:?}", c.op).to_lowercase()),
            Bind::Text(c.evidence.join(" ")),
            Bind::Text(canonical(now)),
        ]);
    }
    Statement {
        sql: format!(
            "INSERT INTO {} (plan_id, change_id, plan_hash, table_name, row_key, operation, evidence, applied_at) VALUES {}",
            dialect.quote(AUDIT_TABLE),
            tuples.join(", ")
        ),
        binds,
    }
}

/// A literal for the undo script that reads back as exactly `v` on its dialect, whatever the
/// value holds and however the server is set: quotes doubled; on MySQL a value with a backslash
/// or a control character is written in hex (backslashes are escapes there unless
/// NO_BACKSLASH_ESCAPES is set, so no quoting is right under both settings); on PostgreSQL a
/// backslash goes in an E'' string, which reads escapes whatever standard_conforming_strings
/// says; on SQLite a NUL or other control character goes in hex cast to text.
fn literal(dialect: Dialect, v: Option<&str>, class: Option<TypeClass>) -> String {
    let Some(v) = v else { return "NULL".into() };
    let v = match (dialect, class) {
        (Dialect::Mysql, Some(TypeClass::Timestamp { .. })) => to_utc(v, None)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or(v.to_string()),
        _ => v.to_string(),
    };
    if matches!(class, Some(TypeClass::Integer)) && v.parse::<i64>().is_ok() {
        return v;
    }
    let control = v.chars().any(|c| c.is_control() && c != '\n' && c != '\t');
    let hex = || v.bytes().map(|b| format!("{b:02X}")).collect::<String>();
    match dialect {
        Dialect::Mysql if control || v.contains('\\') => format!("_utf8mb4 X'{}'", hex()),
        Dialect::Sqlite if control => format!("CAST(X'{}' AS TEXT)", hex()),
        Dialect::Postgres if v.contains('\\') => {
            format!("E'{}'", v.replace('\\', "\\\\").replace('\'', "''"))
        }
        _ => format!("'{}'", v.replace('\'', "''")),
    }
}

/// Removes a row this apply inserted. Written to the undo script for a person to run; apply
/// itself never deletes (invariant 2).
pub fn undo_insert(dialect: Dialect, name: &str, key_column: &str, key: &str) -> String {
    format!(
        "DELETE FROM {} WHERE {} = {};\n",
        dialect.quote(name),
        dialect.quote(key_column),
        literal(dialect, Some(key), Some(TypeClass::Text))
    )
}

pub fn undo_update(
    dialect: Dialect,
    name: &str,
    key_column: &str,
    key: &str,
    columns: &[ColumnChange],
    table: Option<&Table>,
) -> String {
    let sets: Vec<String> = columns
        .iter()
        .map(|c| {
            let class = class_of(table, &c.column).0;
            let v = match (dialect, class, &c.zone) {
                // The plan holds wall-clock columns' before-values as UTC: back to the zone.
                (_, _, Some(z)) => c.before.as_deref().and_then(|b| {
                    let tz = z.parse::<chrono_tz::Tz>().ok()?;
                    to_utc(b, None)
                        .map(|t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S").to_string())
                }),
                _ => c.before.clone(),
            };
            let v = v.or(c.before.clone());
            let lit = match (dialect, class) {
                (Dialect::Postgres, Some(TypeClass::Timestamp { zoned: true })) if v.is_some() => {
                    format!(
                        "CAST({} AS TIMESTAMPTZ)",
                        literal(dialect, v.as_deref(), Some(TypeClass::Text))
                    )
                }
                _ => literal(dialect, v.as_deref(), class),
            };
            format!("{} = {lit}", dialect.quote(&c.column))
        })
        .collect();
    format!(
        "UPDATE {} SET {} WHERE {} = {};\n",
        dialect.quote(name),
        sets.join(", "),
        dialect.quote(key_column),
        literal(dialect, Some(key), class_of(table, key_column).0)
    )
}

/// Forgets the changes this apply recorded in the audit table, so that the plan can be applied
/// again after its undo (an earlier apply of the same plan keeps its own records).
pub fn undo_audit(dialect: Dialect, plan_id: &str, applied_at: DateTime<Utc>) -> String {
    format!(
        "DELETE FROM {} WHERE plan_id = {} AND applied_at = {};\n",
        dialect.quote(AUDIT_TABLE),
        literal(dialect, Some(plan_id), Some(TypeClass::Text)),
        literal(dialect, Some(&canonical(applied_at)), Some(TypeClass::Text))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The undo script's literals, per dialect: what a person's client reads back as the value.
    #[test]
    fn literals_read_back_as_the_value_on_each_dialect() {
        let text = Some(TypeClass::Text);
        let cases: &[(Dialect, &str, &str)] = &[
            (Dialect::Sqlite, "O'Brien", "'O''Brien'"),
            (Dialect::Sqlite, r"back\slash", r"'back\slash'"),
            (
                Dialect::Sqlite,
                "nul\0byte",
                "CAST(X'6E756C0062797465' AS TEXT)",
            ),
            (Dialect::Sqlite, "Łódź\nline", "'Łódź\nline'"),
            (Dialect::Postgres, "O'Brien", "'O''Brien'"),
            (Dialect::Postgres, r"a\'b", r"E'a\\''b'"),
            (Dialect::Mysql, "O'Brien", "'O''Brien'"),
            (Dialect::Mysql, r"a\b", "_utf8mb4 X'615C62'"),
            (Dialect::Mysql, "bell\u{7}", "_utf8mb4 X'62656C6C07'"),
            (Dialect::Mysql, "", "''"),
        ];
        for (dialect, value, want) in cases {
            assert_eq!(
                literal(*dialect, Some(value), text),
                *want,
                "{dialect:?} {value:?}"
            );
        }
        assert_eq!(literal(Dialect::Mysql, None, text), "NULL");
        assert_eq!(
            literal(Dialect::Postgres, Some("42"), Some(TypeClass::Integer)),
            "42"
        );
        // Not a number after all: quoted, not pasted.
        assert_eq!(
            literal(Dialect::Postgres, Some("1; DROP"), Some(TypeClass::Integer)),
            "'1; DROP'"
        );
    }

    #[test]
    fn the_undo_removes_rows_by_a_quoted_key_and_forgets_only_this_apply() {
        assert_eq!(
            undo_insert(Dialect::Mysql, "guests", "id", r"9f\'x"),
            "DELETE FROM `guests` WHERE `id` = _utf8mb4 X'39665C2778';\n"
        );
        let at: DateTime<Utc> = "2026-12-04T10:00:00Z".parse().unwrap();
        assert_eq!(
            undo_audit(Dialect::Postgres, "plan-ab'c", at),
            "DELETE FROM \"gapfill_audit\" WHERE plan_id = 'plan-ab''c' AND applied_at = '2026-12-04T10:00:00Z';\n"
        );
    }
}
