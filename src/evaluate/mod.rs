//! `gapfill evaluate`: how close a reconstructed database is to the simulator's truth.
//!
//! Rows are aligned by natural keys (booking code, email, plate, Stripe ids, or a fallback such as
//! vehicle plus pickup time), never by primary key, since a reconstruction invents its own keys.
//! Foreign keys are compared through the alignment of the table they point at.

mod load;
pub mod report;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use serde::Serialize;

use crate::dburl::{self, Dialect, UrlError};
use crate::reference::{Kind, Table, TABLES};
use load::{Loaded, Val};
use sqlx::Connection;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvaluateError {
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error("cannot read {what}: {message}")]
    Read { what: String, message: String },
    #[error("{path} is not a truth database written by `gapfill simulate`: {why}")]
    NotTruth { path: PathBuf, why: String },
}

pub type Result<T> = std::result::Result<T, EvaluateError>;

#[derive(Debug, Clone, Serialize)]
pub struct ColumnAccuracy {
    pub column: &'static str,
    /// Bookkeeping timestamps that no evidence records exactly; not in the headline accuracy.
    pub audit: bool,
    pub compared: u64,
    pub equal: u64,
    pub accuracy: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub truth_rows: u64,
    pub db_rows: u64,
    /// Rows created in the gap plus rows created before it and changed in it.
    pub gap_rows: u64,
    pub gap_new: u64,
    pub gap_changed: u64,
    /// Gap rows that some evidence mentions (the simulator's manifest).
    pub gap_with_evidence: u64,
    /// New rows present, and changed rows whose every non-audit value is the truth's.
    pub recovered: u64,
    pub recovered_with_evidence: u64,
    /// Database rows that are not pre-restore rows: what a reconstruction added.
    pub proposed: u64,
    /// Proposed rows that are the one match of a new truth row.
    pub correct: u64,
    /// Database rows aligned to a truth row that already has a better match.
    pub duplicates: u64,
    /// Database rows aligned to no truth row at all.
    pub unmatched: u64,
    /// Database rows whose child rows belong to more than one truth row: two entities made one.
    pub wrong_merges: u64,
    pub fields_compared: u64,
    pub fields_equal: u64,
    pub pre_restore_rows: u64,
    pub pre_restore_missing: u64,
    /// Pre-restore rows untouched in the gap whose database row differs from the truth.
    pub pre_restore_corrupted: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableReport {
    pub table: &'static str,
    #[serde(flatten)]
    pub counts: Counts,
    pub recall: Option<f64>,
    pub recall_with_evidence: Option<f64>,
    pub precision: Option<f64>,
    pub field_accuracy: Option<f64>,
    pub columns: Vec<ColumnAccuracy>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub version: u32,
    pub truth: PathBuf,
    /// The evaluated database's URL, password removed.
    pub db: String,
    pub restore_point: String,
    pub tables: Vec<TableReport>,
    /// Sums over the tables that evidence adds to: customers, reservations and payments.
    pub total: TableReport,
}

fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

pub async fn run(truth: &std::path::Path, db_url: &str) -> Result<Report> {
    if !truth.is_file() {
        return Err(EvaluateError::NotTruth {
            path: truth.to_path_buf(),
            why: "no such file".into(),
        });
    }
    let truth_url = format!("sqlite://{}", truth.display());
    let mut truth_conn = dburl::connect_read_only(&truth_url).await?;
    let incident = load::incident(&mut truth_conn, truth).await?;
    let db_dialect = Dialect::of(db_url)?;
    let mut db_conn = dburl::connect_read_only(db_url).await?;

    let mut aligned: HashMap<&'static str, HashMap<i64, i64>> = HashMap::new();
    let mut truths: HashMap<&'static str, Loaded> = HashMap::new();
    let mut dbs: HashMap<&'static str, Loaded> = HashMap::new();
    let mut tables = Vec::new();
    for table in TABLES {
        let t = load::table(&mut truth_conn, Dialect::Sqlite, table, &truth_url).await?;
        let d = load::table(&mut db_conn, db_dialect, table, db_url).await?;
        let a = align(table, &t, &d, &aligned);
        aligned.insert(table.name, a);
        truths.insert(table.name, t);
        dbs.insert(table.name, d);
    }
    for table in TABLES {
        let evidence: BTreeSet<i64> = incident
            .mentioned
            .iter()
            .filter(|(t, _)| t == table.name)
            .map(|(_, id)| *id)
            .collect();
        tables.push(measure(
            table,
            &truths,
            &dbs,
            &aligned,
            &incident.restore_point,
            &evidence,
        ));
    }
    let total = sum(tables
        .iter()
        .zip(TABLES)
        .filter(|(_, t)| t.from_evidence)
        .map(|(r, _)| r));
    // Read-only connections: closing cannot lose anything, so a failure to close is not an error.
    let _ = truth_conn.close().await;
    let _ = db_conn.close().await;
    Ok(Report {
        version: 1,
        truth: truth.to_path_buf(),
        db: dburl::redact(db_url),
        restore_point: incident.restore_point,
        tables,
        total,
    })
}

/// The values that identify a row by `key`, with references translated into truth primary keys
/// through `parent` (identity for truth rows).
fn key_of(
    table: &Table,
    row: &[Val],
    key: &[&str],
    parent: &dyn Fn(&'static str, i64) -> Option<i64>,
) -> Option<Vec<String>> {
    key.iter()
        .map(|name| {
            let i = table.index(name);
            let v = row[i].as_deref()?;
            match table.columns[i].kind {
                Kind::Ref(target) => parent(target, v.parse().ok()?).map(|id| id.to_string()),
                _ => Some(v.to_string()),
            }
        })
        .collect()
}

/// Maps each database row's primary key to the truth row it stands for.
fn align(
    table: &Table,
    truth: &Loaded,
    db: &Loaded,
    aligned: &HashMap<&'static str, HashMap<i64, i64>>,
) -> HashMap<i64, i64> {
    let identity = |_: &'static str, id: i64| Some(id);
    let through =
        |target: &'static str, id: i64| aligned.get(target).and_then(|m| m.get(&id)).copied();
    let mut out = HashMap::new();
    for key in table.keys {
        // A key value shared by several truth rows identifies none of them.
        let mut index: HashMap<Vec<String>, Option<i64>> = HashMap::new();
        for (pk, row) in truth.iter() {
            if let Some(k) = key_of(table, row, key, &identity) {
                index.entry(k).and_modify(|e| *e = None).or_insert(Some(pk));
            }
        }
        for (pk, row) in db.iter() {
            if out.contains_key(&pk) {
                continue;
            }
            if let Some(Some(truth_pk)) =
                key_of(table, row, key, &through).and_then(|k| index.get(&k).copied())
            {
                out.insert(pk, truth_pk);
            }
        }
    }
    out
}

/// Whether a database value equals the truth's, references compared through alignment.
fn same(
    kind: Kind,
    db: &Val,
    truth: &Val,
    aligned: &HashMap<&'static str, HashMap<i64, i64>>,
) -> bool {
    match (db, truth) {
        (None, None) => true,
        (Some(d), Some(t)) => match kind {
            Kind::Ref(target) => d
                .parse::<i64>()
                .ok()
                .and_then(|id| aligned.get(target)?.get(&id))
                .is_some_and(|id| id.to_string() == *t),
            _ => d == t,
        },
        _ => false,
    }
}

fn measure(
    table: &'static Table,
    truths: &HashMap<&'static str, Loaded>,
    dbs: &HashMap<&'static str, Loaded>,
    aligned: &HashMap<&'static str, HashMap<i64, i64>>,
    restore_point: &str,
    evidence: &BTreeSet<i64>,
) -> TableReport {
    let truth = &truths[table.name];
    let db = &dbs[table.name];
    let alignment = &aligned[table.name];
    let created = table
        .column("created_at")
        .map(|_| table.index("created_at"));
    let updated = table
        .column("updated_at")
        .map(|_| table.index("updated_at"));
    let at_or_after = |row: &[Val], i: Option<usize>| {
        i.and_then(|i| row[i].as_deref())
            .is_some_and(|t| t >= restore_point)
    };

    let equal_fields = |d: &[Val], t: &[Val], include_audit: bool| {
        table
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.kind != Kind::Id && (include_audit || !c.audit))
            .all(|(i, c)| same(c.kind, &d[i], &t[i], aligned))
    };
    let score = |d: &[Val], t: &[Val]| {
        table
            .columns
            .iter()
            .enumerate()
            .filter(|(i, c)| same(c.kind, &d[*i], &t[*i], aligned))
            .count()
    };

    // Each truth row's best database match; the others aligned to it are duplicates.
    let mut matches: HashMap<i64, Vec<i64>> = HashMap::new();
    for (db_pk, truth_pk) in alignment {
        matches.entry(*truth_pk).or_default().push(*db_pk);
    }
    let mut best: HashMap<i64, i64> = HashMap::new();
    let mut c = Counts {
        truth_rows: truth.len() as u64,
        db_rows: db.len() as u64,
        ..Counts::default()
    };
    for (truth_pk, mut db_pks) in matches {
        db_pks.sort_unstable();
        let t = truth.get(truth_pk).expect("aligned to a loaded row");
        let pick = *db_pks
            .iter()
            .max_by_key(|pk| {
                (
                    score(db.get(**pk).expect("loaded"), t),
                    std::cmp::Reverse(**pk),
                )
            })
            .expect("non-empty");
        c.duplicates += db_pks.len() as u64 - 1;
        best.insert(truth_pk, pick);
    }
    c.unmatched = (db.len() - alignment.len()) as u64;

    let mut columns: Vec<ColumnAccuracy> = table
        .columns
        .iter()
        .filter(|col| col.kind != Kind::Id)
        .map(|col| ColumnAccuracy {
            column: col.name,
            audit: col.audit,
            compared: 0,
            equal: 0,
            accuracy: None,
        })
        .collect();
    let mut pre_restore_pks = BTreeSet::new();
    for (truth_pk, t) in truth.iter() {
        let is_new = at_or_after(t, created);
        let is_changed = !is_new && at_or_after(t, updated);
        let matched = best.get(&truth_pk).map(|pk| db.get(*pk).expect("loaded"));
        if !is_new {
            c.pre_restore_rows += 1;
            pre_restore_pks.insert(truth_pk);
            if matched.is_none() {
                c.pre_restore_missing += 1;
            }
        }
        if !is_new && !is_changed {
            if matched.is_some_and(|d| !equal_fields(d, t, true)) {
                c.pre_restore_corrupted += 1;
            }
            continue;
        }
        c.gap_rows += 1;
        if is_new {
            c.gap_new += 1
        } else {
            c.gap_changed += 1
        }
        let has_evidence = evidence.contains(&truth_pk);
        c.gap_with_evidence += u64::from(has_evidence);
        let Some(d) = matched else { continue };
        let recovered = is_new || equal_fields(d, t, false);
        c.recovered += u64::from(recovered);
        c.recovered_with_evidence += u64::from(recovered && has_evidence);
        let mut k = 0;
        for (i, col) in table.columns.iter().enumerate() {
            if col.kind == Kind::Id {
                continue;
            }
            let eq = same(col.kind, &d[i], &t[i], aligned);
            columns[k].compared += 1;
            columns[k].equal += u64::from(eq);
            if !col.audit {
                c.fields_compared += 1;
                c.fields_equal += u64::from(eq);
            }
            k += 1;
        }
    }
    for col in &mut columns {
        col.accuracy = ratio(col.equal, col.compared);
    }
    for (db_pk, _) in db.iter() {
        match alignment.get(&db_pk) {
            Some(truth_pk) if pre_restore_pks.contains(truth_pk) => {}
            Some(truth_pk) => {
                c.proposed += 1;
                c.correct += u64::from(best.get(truth_pk) == Some(&db_pk));
            }
            None => c.proposed += 1,
        }
    }
    c.wrong_merges = wrong_merges(table, truths, dbs, aligned);
    finish(table.name, c, columns)
}

/// Database rows of `parent` whose children (rows referencing them) stand for children of more
/// than one truth row. Only for rows that evidence creates: a stale reference to a vehicle is a
/// wrong value, not two vehicles made one.
fn wrong_merges(
    parent: &Table,
    truths: &HashMap<&'static str, Loaded>,
    dbs: &HashMap<&'static str, Loaded>,
    aligned: &HashMap<&'static str, HashMap<i64, i64>>,
) -> u64 {
    let mut owners: HashMap<i64, BTreeSet<String>> = HashMap::new();
    if !parent.from_evidence {
        return 0;
    }
    for child in TABLES.iter().filter(|t| t.from_evidence) {
        for (i, col) in child.columns.iter().enumerate() {
            if col.kind != Kind::Ref(parent.name) {
                continue;
            }
            let (truth, db, alignment) =
                (&truths[child.name], &dbs[child.name], &aligned[child.name]);
            for (db_pk, row) in db.iter() {
                let (Some(parent_pk), Some(truth_child)) = (
                    row[i].as_deref().and_then(|v| v.parse::<i64>().ok()),
                    alignment.get(&db_pk),
                ) else {
                    continue;
                };
                if let Some(truth_parent) = truth.get(*truth_child).and_then(|r| r[i].clone()) {
                    owners.entry(parent_pk).or_default().insert(truth_parent);
                }
            }
        }
    }
    owners.values().filter(|s| s.len() > 1).count() as u64
}

fn finish(table: &'static str, c: Counts, columns: Vec<ColumnAccuracy>) -> TableReport {
    TableReport {
        table,
        recall: ratio(c.recovered, c.gap_rows),
        recall_with_evidence: ratio(c.recovered_with_evidence, c.gap_with_evidence),
        precision: ratio(c.correct, c.proposed),
        field_accuracy: ratio(c.fields_equal, c.fields_compared),
        counts: c,
        columns,
    }
}

fn sum<'a>(tables: impl Iterator<Item = &'a TableReport>) -> TableReport {
    let mut s = Counts::default();
    for t in tables {
        let c = &t.counts;
        s.truth_rows += c.truth_rows;
        s.db_rows += c.db_rows;
        s.gap_rows += c.gap_rows;
        s.gap_new += c.gap_new;
        s.gap_changed += c.gap_changed;
        s.gap_with_evidence += c.gap_with_evidence;
        s.recovered += c.recovered;
        s.recovered_with_evidence += c.recovered_with_evidence;
        s.proposed += c.proposed;
        s.correct += c.correct;
        s.duplicates += c.duplicates;
        s.unmatched += c.unmatched;
        s.wrong_merges += c.wrong_merges;
        s.fields_compared += c.fields_compared;
        s.fields_equal += c.fields_equal;
        s.pre_restore_rows += c.pre_restore_rows;
        s.pre_restore_missing += c.pre_restore_missing;
        s.pre_restore_corrupted += c.pre_restore_corrupted;
    }
    finish("total", s, Vec::new())
}
