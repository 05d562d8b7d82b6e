//! What a live database looks like: tables, columns and their types, keys, foreign keys and
//! enumerated values, read from the catalogs of SQLite, PostgreSQL and MySQL/MariaDB.
//!
//! The mapping is checked against this, `init` drafts a mapping from it, and its fingerprint ties
//! a plan to the schema it was made for. Only catalog queries run here; they read, never write.

use std::collections::BTreeMap;

use futures_util::TryStreamExt;
use serde::Serialize;
use sqlx::{AnyConnection, Row};

use crate::dburl::Dialect;

/// The table apply records its changes in. The schema knows its name so that a plan made
/// before the first apply stays valid after it (see [`Schema::fingerprint`]).
pub const AUDIT_TABLE: &str = "gapfill_audit";

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("cannot read the schema ({what}): {message}")]
    Catalog { what: &'static str, message: String },
}

type Result<T> = std::result::Result<T, SchemaError>;

/// What kind of values a column holds, as far as mapping values into it is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TypeClass {
    Integer,
    /// Exact decimal with this many digits after the point, when the schema says.
    Decimal {
        scale: Option<u32>,
    },
    Float,
    Text,
    Uuid,
    Boolean,
    /// An instant. `zoned` when the database stores the offset (timestamptz); otherwise the
    /// mapping says which zone the column's wall-clock times are in (UTC by default).
    Timestamp {
        zoned: bool,
    },
    Date,
    /// A database enum type or a CHECK (column IN (…)) list: see [`Column::values`].
    Enum,
    Other,
}

impl TypeClass {
    pub fn describe(self) -> &'static str {
        match self {
            TypeClass::Integer => "integer",
            TypeClass::Decimal { .. } => "decimal",
            TypeClass::Float => "floating point",
            TypeClass::Text => "text",
            TypeClass::Uuid => "uuid",
            TypeClass::Boolean => "boolean",
            TypeClass::Timestamp { .. } => "timestamp",
            TypeClass::Date => "date",
            TypeClass::Enum => "enumerated",
            TypeClass::Other => "other",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Column {
    pub name: String,
    /// The type as the database declares it, for messages.
    pub declared: String,
    pub class: TypeClass,
    pub nullable: bool,
    /// The database fills it when an insert leaves it out (a default, a sequence, an identity,
    /// SQLite's rowid alias).
    pub has_default: bool,
    /// The allowed values of an enum type or of a CHECK (column IN (…)) constraint.
    pub values: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ForeignKey {
    pub columns: Vec<String>,
    pub table: String,
    pub references: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Table {
    pub name: String,
    pub columns: Vec<Column>,
    pub primary_key: Vec<String>,
    pub foreign_keys: Vec<ForeignKey>,
    /// Column sets with a UNIQUE constraint or index (the primary key not included).
    pub unique: Vec<Vec<String>>,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The foreign key whose only column is `column`.
    pub fn foreign_key(&self, column: &str) -> Option<&ForeignKey> {
        self.foreign_keys
            .iter()
            .find(|fk| fk.columns.len() == 1 && fk.columns[0] == column)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Schema {
    #[serde(skip)]
    pub dialect: Dialect,
    pub tables: BTreeMap<String, Table>,
}

impl Schema {
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.get(name)
    }

    /// A short, stable digest of everything a plan depends on: tables, columns, types, keys.
    /// Two databases with the same schema give the same fingerprint whatever their rows.
    /// gapfill's own audit table is left out: apply creates it, and a plan stays valid.
    pub fn fingerprint(&self) -> String {
        let tables: BTreeMap<&String, &Table> = self
            .tables
            .iter()
            .filter(|(name, _)| name.as_str() != AUDIT_TABLE)
            .collect();
        let canonical = serde_json::to_string(&tables).unwrap_or_default();
        crate::evidence::stable_hash(canonical.as_bytes())
    }
}

/// Reads the schema of the database `conn` is connected to (the current schema on PostgreSQL,
/// the current database on MySQL, the main database on SQLite).
pub async fn introspect(conn: &mut AnyConnection, dialect: Dialect) -> Result<Schema> {
    let tables = match dialect {
        Dialect::Sqlite => sqlite(conn).await?,
        Dialect::Postgres => postgres(conn).await?,
        Dialect::Mysql => mysql(conn).await?,
    };
    Ok(Schema { dialect, tables })
}

fn catalog(what: &'static str) -> impl Fn(sqlx::Error) -> SchemaError {
    move |e| SchemaError::Catalog {
        what,
        message: e.to_string(),
    }
}

async fn text_rows(
    conn: &mut AnyConnection,
    sql: &str,
    what: &'static str,
) -> Result<Vec<Vec<Option<String>>>> {
    let mut out = Vec::new();
    let mut stream = sqlx::query(sqlx::AssertSqlSafe(sql.to_string())).fetch(&mut *conn);
    while let Some(row) = stream.try_next().await.map_err(catalog(what))? {
        let mut vals = Vec::with_capacity(row.len());
        for i in 0..row.len() {
            vals.push(row.try_get::<Option<String>, _>(i).map_err(catalog(what))?);
        }
        out.push(vals);
    }
    Ok(out)
}

fn s(v: &Option<String>) -> String {
    v.clone().unwrap_or_default()
}

/// The class of a declared SQL type, by the same substring rules SQLite uses for affinity,
/// extended with the names the servers use.
fn classify(declared: &str, scale: Option<u32>) -> TypeClass {
    let t = declared.to_ascii_lowercase();
    let has = |p: &str| t.contains(p);
    if has("timestamp with time zone") || has("timestamptz") {
        TypeClass::Timestamp { zoned: true }
    } else if has("timestamp") || has("datetime") {
        TypeClass::Timestamp { zoned: false }
    } else if t == "date" {
        TypeClass::Date
    } else if has("uuid") {
        TypeClass::Uuid
    } else if has("bool") || t == "tinyint(1)" {
        TypeClass::Boolean
    } else if has("int") || t == "serial" || t == "bigserial" {
        TypeClass::Integer
    } else if has("dec") || has("numeric") || has("money") {
        TypeClass::Decimal {
            scale: scale.or_else(|| declared_scale(&t)),
        }
    } else if has("real") || has("floa") || has("doub") {
        TypeClass::Float
    } else if has("char") || has("clob") || has("text") || t.is_empty() {
        TypeClass::Text
    } else if has("enum") {
        TypeClass::Enum
    } else {
        TypeClass::Other
    }
}

/// The scale of `decimal(10,2)`.
fn declared_scale(t: &str) -> Option<u32> {
    let inner = t.split_once('(')?.1.split_once(')')?.0;
    inner.split_once(',')?.1.trim().parse().ok()
}

/// `enum('a','b')` (MySQL's COLUMN_TYPE) → ["a", "b"].
fn enum_values(column_type: &str) -> Vec<String> {
    let Some(inner) = column_type
        .strip_prefix("enum(")
        .and_then(|r| r.strip_suffix(')'))
    else {
        return Vec::new();
    };
    quoted_list(inner)
}

/// `'a', 'b''c'` → ["a", "b'c"].
fn quoted_list(inner: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut v = String::new();
        while let Some(c) = chars.next() {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    v.push('\'');
                } else {
                    break;
                }
            } else {
                v.push(c);
            }
        }
        out.push(v);
    }
    out
}

/// CHECK (col IN ('a', 'b')) constraints in a CREATE TABLE statement, per column.
fn check_in_lists(create_sql: &str) -> BTreeMap<String, Vec<String>> {
    let re = regex::Regex::new(r#"(?is)check\s*\(\s*["`\[]?(\w+)["`\]]?\s+in\s*\(([^)]*)\)"#)
        .expect("a valid pattern");
    re.captures_iter(create_sql)
        .map(|c| (c[1].to_string(), quoted_list(&c[2])))
        .collect()
}

async fn sqlite(conn: &mut AnyConnection) -> Result<BTreeMap<String, Table>> {
    let tables = text_rows(
        conn,
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        "tables",
    )
    .await?;
    let mut out = BTreeMap::new();
    for t in tables {
        let name = s(&t[0]);
        let checks = check_in_lists(&s(&t[1]));
        let lit = name.replace('\'', "''");
        let cols = text_rows(
            conn,
            &format!(
                "SELECT name, type, CAST(\"notnull\" AS TEXT), dflt_value, CAST(pk AS TEXT) FROM pragma_table_info('{lit}') ORDER BY cid"
            ),
            "columns",
        )
        .await?;
        let mut pk: Vec<(i64, String)> = Vec::new();
        let mut columns = Vec::new();
        for c in &cols {
            let cname = s(&c[0]);
            let declared = s(&c[1]);
            let pk_pos: i64 = s(&c[4]).parse().unwrap_or(0);
            if pk_pos > 0 {
                pk.push((pk_pos, cname.clone()));
            }
            let values = checks.get(&cname).cloned().unwrap_or_default();
            let class = if values.is_empty() {
                classify(&declared, None)
            } else {
                TypeClass::Enum
            };
            columns.push(Column {
                name: cname,
                declared,
                class,
                nullable: s(&c[2]) == "0",
                has_default: c[3].is_some(),
                values,
            });
        }
        pk.sort();
        let primary_key: Vec<String> = pk.into_iter().map(|(_, n)| n).collect();
        // INTEGER PRIMARY KEY is the rowid: SQLite assigns it.
        if let [only] = primary_key.as_slice() {
            if let Some(c) = columns.iter_mut().find(|c| &c.name == only) {
                if c.declared.eq_ignore_ascii_case("integer") {
                    c.has_default = true;
                }
                c.nullable = false;
            }
        }
        let fks = text_rows(
            conn,
            &format!(
                "SELECT CAST(id AS TEXT), \"table\", \"from\", \"to\" FROM pragma_foreign_key_list('{lit}') ORDER BY id, seq"
            ),
            "foreign keys",
        )
        .await?;
        let mut foreign_keys: Vec<(String, ForeignKey)> = Vec::new();
        for f in fks {
            let id = s(&f[0]);
            let target = s(&f[1]);
            let to = f[3].clone();
            match foreign_keys.last_mut() {
                Some((last, fk)) if *last == id => {
                    fk.columns.push(s(&f[2]));
                    fk.references.push(to.unwrap_or_default());
                }
                _ => foreign_keys.push((
                    id,
                    ForeignKey {
                        columns: vec![s(&f[2])],
                        table: target,
                        references: vec![to.unwrap_or_default()],
                    },
                )),
            }
        }
        let indexes = text_rows(
            conn,
            &format!(
                "SELECT name, origin FROM pragma_index_list('{lit}') WHERE \"unique\" = 1 ORDER BY name"
            ),
            "indexes",
        )
        .await?;
        let mut unique = Vec::new();
        for ix in indexes {
            if s(&ix[1]) == "pk" {
                continue;
            }
            let ixname = s(&ix[0]).replace('\'', "''");
            let cols = text_rows(
                conn,
                &format!("SELECT name FROM pragma_index_info('{ixname}') ORDER BY seqno"),
                "index columns",
            )
            .await?;
            unique.push(cols.iter().map(|c| s(&c[0])).collect());
        }
        out.insert(
            name.clone(),
            Table {
                name,
                columns,
                primary_key,
                foreign_keys: foreign_keys.into_iter().map(|(_, fk)| fk).collect(),
                unique,
            },
        );
    }
    // A foreign key that names no column references the target's primary key.
    let pks: BTreeMap<String, Vec<String>> = out
        .iter()
        .map(|(n, t)| (n.clone(), t.primary_key.clone()))
        .collect();
    for t in out.values_mut() {
        for fk in &mut t.foreign_keys {
            if fk.references.iter().all(String::is_empty) {
                if let Some(pk) = pks.get(&fk.table) {
                    fk.references = pk.clone();
                }
            }
        }
    }
    Ok(out)
}

/// Builds tables from column rows and constraint rows, the shape both servers' catalogs give.
fn assemble(
    cols: Vec<Vec<Option<String>>>,
    constraints: Vec<Vec<Option<String>>>,
    enums: &BTreeMap<String, Vec<String>>,
    mysql: bool,
) -> BTreeMap<String, Table> {
    let mut out: BTreeMap<String, Table> = BTreeMap::new();
    // table, column, data_type, udt_or_column_type, is_nullable, has_default, scale
    for c in cols {
        let table = s(&c[0]);
        let data_type = s(&c[2]);
        let detail = s(&c[3]);
        let scale = c[6].as_deref().and_then(|v| v.parse().ok());
        let (class, values, declared) = if mysql {
            let values = enum_values(&detail);
            let class = if !values.is_empty() {
                TypeClass::Enum
            } else if detail == "tinyint(1)" {
                TypeClass::Boolean
            } else if data_type == "timestamp" {
                TypeClass::Timestamp { zoned: true }
            } else if detail == "char(36)" || detail == "uuid" {
                // The usual way of storing a UUID in MySQL; text either way.
                TypeClass::Text
            } else {
                classify(&data_type, scale)
            };
            (class, values, detail)
        } else if data_type == "USER-DEFINED" {
            match enums.get(&detail) {
                Some(v) => (TypeClass::Enum, v.clone(), detail),
                None => (TypeClass::Other, Vec::new(), detail),
            }
        } else {
            (classify(&data_type, scale), Vec::new(), data_type)
        };
        let entry = out.entry(table.clone()).or_insert_with(|| Table {
            name: table,
            columns: Vec::new(),
            primary_key: Vec::new(),
            foreign_keys: Vec::new(),
            unique: Vec::new(),
        });
        entry.columns.push(Column {
            name: s(&c[1]),
            declared,
            class,
            nullable: s(&c[4]) == "YES",
            has_default: s(&c[5]) == "1" || s(&c[5]) == "true",
            values,
        });
    }
    // constraint, type (p/u/f), table, column, position, referenced table, referenced column
    // MySQL keeps index and foreign-key names apart, so one name can be both: a row continues
    // the constraint before it only when table, name and kind all agree.
    let mut last: Option<(String, String, String)> = None;
    for k in constraints {
        let (name, kind, table) = (s(&k[0]), s(&k[1]), s(&k[2]));
        let column = s(&k[3]);
        let Some(t) = out.get_mut(&table) else {
            continue;
        };
        let key = (table, name, kind);
        let same = last.as_ref() == Some(&key);
        match key.2.as_str() {
            "p" => t.primary_key.push(column),
            "u" => match t.unique.last_mut() {
                Some(cols) if same => cols.push(column),
                _ => t.unique.push(vec![column]),
            },
            "f" => match t.foreign_keys.last_mut() {
                Some(fk) if same => {
                    fk.columns.push(column);
                    fk.references.push(s(&k[6]));
                }
                _ => t.foreign_keys.push(ForeignKey {
                    columns: vec![column],
                    table: s(&k[5]),
                    references: vec![s(&k[6])],
                }),
            },
            _ => {}
        }
        last = Some(key);
    }
    out
}

async fn postgres(conn: &mut AnyConnection) -> Result<BTreeMap<String, Table>> {
    let cols = text_rows(
        conn,
        "SELECT c.table_name::text, c.column_name::text, c.data_type::text, c.udt_name::text, \
                c.is_nullable::text, \
                CASE WHEN c.column_default IS NOT NULL OR c.is_identity = 'YES' THEN '1' ELSE '0' END, \
                c.numeric_scale::text \
         FROM information_schema.columns c \
         JOIN information_schema.tables t \
           ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
         WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' \
         ORDER BY c.table_name, c.ordinal_position",
        "columns",
    )
    .await?;
    let constraints = text_rows(
        conn,
        "SELECT con.conname::text, con.contype::text, cl.relname::text, a.attname::text, \
                k.ord::text, rcl.relname::text, ra.attname::text \
         FROM pg_constraint con \
         JOIN pg_class cl ON cl.oid = con.conrelid \
         JOIN pg_namespace n ON n.oid = cl.relnamespace \
         CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord) \
         JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum \
         LEFT JOIN pg_class rcl ON rcl.oid = con.confrelid \
         LEFT JOIN pg_attribute ra ON ra.attrelid = con.confrelid AND ra.attnum = con.confkey[k.ord] \
         WHERE n.nspname = current_schema() AND con.contype IN ('p', 'u', 'f') \
         ORDER BY cl.relname, con.conname, k.ord",
        "constraints",
    )
    .await?;
    let enum_rows = text_rows(
        conn,
        "SELECT t.typname::text, e.enumlabel::text FROM pg_type t \
         JOIN pg_enum e ON e.enumtypid = t.oid ORDER BY t.typname, e.enumsortorder",
        "enum types",
    )
    .await?;
    let mut enums: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in enum_rows {
        enums.entry(s(&e[0])).or_default().push(s(&e[1]));
    }
    Ok(assemble(cols, constraints, &enums, false))
}

async fn mysql(conn: &mut AnyConnection) -> Result<BTreeMap<String, Table>> {
    // MariaDB reports the default of a nullable column without one as the text 'NULL'.
    let cols = text_rows(
        conn,
        "SELECT CAST(c.TABLE_NAME AS CHAR), CAST(c.COLUMN_NAME AS CHAR), CAST(c.DATA_TYPE AS CHAR), \
                CAST(c.COLUMN_TYPE AS CHAR), CAST(c.IS_NULLABLE AS CHAR), \
                CASE WHEN (c.COLUMN_DEFAULT IS NOT NULL AND c.COLUMN_DEFAULT <> 'NULL') \
                       OR c.EXTRA LIKE '%auto_increment%' THEN '1' ELSE '0' END, \
                CAST(c.NUMERIC_SCALE AS CHAR) \
         FROM information_schema.COLUMNS c \
         JOIN information_schema.TABLES t \
           ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME \
         WHERE c.TABLE_SCHEMA = DATABASE() AND t.TABLE_TYPE = 'BASE TABLE' \
         ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION",
        "columns",
    )
    .await?;
    let constraints = text_rows(
        conn,
        // KEY_COLUMN_USAGE alone: MariaDB shows TABLE_CONSTRAINTS only to users with more than
        // SELECT, and a drift check runs as a read-only user. Its rows are primary keys (always
        // named PRIMARY), foreign keys (with a referenced table) and unique keys.
        "SELECT CAST(k.CONSTRAINT_NAME AS CHAR), \
                CASE WHEN k.CONSTRAINT_NAME = 'PRIMARY' THEN 'p' \
                     WHEN k.REFERENCED_TABLE_NAME IS NOT NULL THEN 'f' ELSE 'u' END, \
                CAST(k.TABLE_NAME AS CHAR), CAST(k.COLUMN_NAME AS CHAR), \
                CAST(k.ORDINAL_POSITION AS CHAR), CAST(k.REFERENCED_TABLE_NAME AS CHAR), \
                CAST(k.REFERENCED_COLUMN_NAME AS CHAR) \
         FROM information_schema.KEY_COLUMN_USAGE k \
         WHERE k.TABLE_SCHEMA = DATABASE() \
         ORDER BY k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION",
        "constraints",
    )
    .await?;
    Ok(assemble(cols, constraints, &BTreeMap::new(), true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_of_declared_types() {
        assert_eq!(classify("INTEGER", None), TypeClass::Integer);
        assert_eq!(classify("bigint", None), TypeClass::Integer);
        assert_eq!(
            classify("timestamp with time zone", None),
            TypeClass::Timestamp { zoned: true }
        );
        assert_eq!(
            classify("DATETIME", None),
            TypeClass::Timestamp { zoned: false }
        );
        assert_eq!(
            classify("NUMERIC(12,2)", None),
            TypeClass::Decimal { scale: Some(2) }
        );
        assert_eq!(classify("character varying", None), TypeClass::Text);
        assert_eq!(classify("uuid", None), TypeClass::Uuid);
        assert_eq!(classify("date", None), TypeClass::Date);
    }

    #[test]
    fn enumerated_values() {
        assert_eq!(enum_values("enum('a','b''c')"), vec!["a", "b'c"]);
        let checks = check_in_lists(
            "CREATE TABLE t (status TEXT CHECK (status IN ('confirmed', 'cancelled')), n INT CHECK (n > 0))",
        );
        assert_eq!(checks["status"], vec!["confirmed", "cancelled"]);
        assert_eq!(checks.len(), 1);
    }
}
