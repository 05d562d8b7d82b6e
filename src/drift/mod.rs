//! The drift check (SPEC §4, docs/drift.md): the plan's pipeline over a recent window, read as a
//! list of disagreements between the database and the outside record instead of as changes.
//!
//! A plan's insert is evidence with no matching row (`missing`); its update is a row the
//! evidence contradicts (`contradicted`, column by column); an entity whose identifiers point at
//! several existing rows is a `duplicate`. Known and accepted differences are silenced by an
//! ignore file ([`ignore`]). The report is versioned like the plan, and deterministic: the same
//! inputs give the same bytes.

pub mod ignore;
pub mod render;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::baseline::{Baseline, Rows};
use crate::evidence::Evidence;
use crate::mapping::Mapping;
use crate::matching::Reconstruction;
use crate::plan::{After, Decision, EvidenceRef, Op, Plan};

pub const FORMAT: &str = "gapfill-drift";
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub format: String,
    pub version: u32,
    pub mapping_hash: String,
    pub dialect: String,
    /// The window of evidence compared, as instants.
    pub window: crate::plan::Window,
    pub summary: Summary,
    /// Ordered by kind, then table, then id.
    pub findings: Vec<Finding>,
    /// Findings an ignore rule silenced, with the rule.
    pub ignored: Vec<Ignored>,
    /// Ignore rules that silenced nothing this time: candidates for removal.
    pub unused_rules: Vec<String>,
    /// Evidence the sources read that belongs to no entity (a forward that names nothing): not a
    /// disagreement, listed so that nothing is dropped silently.
    pub unmatched: Vec<crate::plan::UnmatchedRef>,
    /// Every evidence item a finding, an ignored finding or an unmatched item refers to.
    pub evidence: BTreeMap<String, EvidenceRef>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// Evidence items compared.
    pub evidence: u64,
    /// Input items the sources skipped (irrelevant, duplicate, malformed, outside the window).
    pub skipped: u64,
    /// Existing rows the evidence describes and agrees with.
    pub agreeing: u64,
    /// Findings left after the ignore rules, by kind.
    pub findings: BTreeMap<Kind, u64>,
    pub ignored: u64,
    pub unmatched: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Evidence of a row the database does not have.
    Missing,
    /// An existing row that the evidence says holds other values.
    Contradicted,
    /// Existing rows that the same identifiers point at: one thing recorded more than once.
    Duplicate,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Missing => "missing",
            Kind::Contradicted => "contradicted",
            Kind::Duplicate => "duplicate",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        [Kind::Missing, Kind::Contradicted, Kind::Duplicate]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Finding {
    /// Stable from run to run for the same entity (the plan's change id without its part), so an
    /// ignore file can name it.
    pub id: String,
    pub kind: Kind,
    pub table: String,
    pub entity: String,
    /// The existing rows concerned, by key: the contradicted row, or the duplicates.
    pub rows: Vec<String>,
    /// What identifies it for people: `booking_code RC7KX2PQ`, `id 1042`.
    pub label: String,
    /// Contradicted: the columns that differ. Missing and duplicate: what the evidence says.
    pub fields: Vec<Field>,
    /// How sure matching is that the evidence belongs together (and to the row).
    pub confidence: f64,
    /// What a plan over the same window would decide for the fix.
    pub plan_decision: Decision,
    pub reasons: Vec<String>,
    pub evidence: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Field {
    pub column: String,
    /// The database's value (contradicted only).
    pub database: Option<String>,
    /// The evidence's value.
    pub evidence: String,
    /// The evidence items behind the value, by id.
    pub sources: Vec<String>,
    /// When the mapping's rules reached the value from the evidence's (`when_past`): how.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inferred: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Ignored {
    pub finding: Finding,
    /// The rule, as the ignore file gives it: `drift-ignore.toml:12 (Stripe test charges)`.
    pub rule: String,
}

/// What the drift check reads besides the plan.
pub struct Context<'a> {
    pub mapping: &'a Mapping,
    pub baseline: &'a Baseline,
    pub evidence: &'a [Evidence],
    /// Entities whose identifiers point at several existing rows: plan-local id → those rows
    /// (see [`duplicates`]).
    pub duplicates: &'a HashMap<String, Vec<String>>,
}

/// What drift needs of matching's result, taken before planning consumes it: the entities whose
/// identifiers point at several existing rows, by plan-local id.
pub fn duplicates(rec: &Reconstruction) -> HashMap<String, Vec<String>> {
    rec.entities
        .iter()
        .flat_map(|set| &set.items)
        .filter(|item| item.could_be_by_identifier && item.could_be.len() > 1)
        .map(|item| (item.local.clone(), item.could_be.clone()))
        .collect()
}

/// The change id without its `-state` / `-identity` part: one finding per row.
fn finding_id(change_id: &str) -> &str {
    change_id
        .strip_suffix("-state")
        .or_else(|| change_id.strip_suffix("-identity"))
        .unwrap_or(change_id)
}

/// Reads the plan made over the drift window as findings.
pub fn build(ctx: &Context, plan: &Plan, skipped: u64) -> Report {
    let duplicates = ctx.duplicates;
    // Existing rows by key, per entity, built when a finding first needs one.
    let mut row_index: HashMap<&str, HashMap<&str, usize>> = HashMap::new();
    let mut by_id: BTreeMap<String, Finding> = BTreeMap::new();
    for change in &plan.changes {
        let id = finding_id(&change.id).to_string();
        let entity = ctx.mapping.entity(&change.entity);
        let natural: BTreeSet<&str> = entity
            .map(|e| {
                e.natural_keys
                    .iter()
                    .flatten()
                    .map(|c| c.get_ref().as_str())
                    .collect()
            })
            .unwrap_or_default();
        let fields: Vec<Field> = change
            .columns
            .iter()
            .filter(|c| c.after != After::Now)
            .map(|c| Field {
                column: c.column.clone(),
                database: c.before.clone(),
                evidence: c.after.display(),
                sources: c.evidence.clone(),
                inferred: c.inferred.clone(),
            })
            .collect();
        let finding = by_id.entry(id.clone()).or_insert_with(|| {
            let (kind, rows, label) = match change.op {
                Op::Insert => {
                    let label = label_of(
                        change
                            .columns
                            .iter()
                            .filter(|c| natural.contains(c.column.as_str()))
                            .map(|c| (c.column.as_str(), c.after.display())),
                    )
                    .unwrap_or_else(|| change.local.clone().unwrap_or_default());
                    match change.local.as_deref().and_then(|l| duplicates.get(l)) {
                        Some(rows) => (Kind::Duplicate, rows.to_vec(), label),
                        None => (Kind::Missing, Vec::new(), label),
                    }
                }
                Op::Update => {
                    let key = change.key.clone().unwrap_or_default();
                    let row = ctx.baseline.entities.get(&change.entity).and_then(|rows| {
                        let index = row_index
                            .entry(change.entity.as_str())
                            .or_insert_with(|| crate::matching::index_rows(rows));
                        Some((rows, &rows.rows[*index.get(key.as_str())?]))
                    });
                    let label = row
                        .and_then(|(rows, row)| row_label(rows, row, &key, &natural))
                        .unwrap_or_else(|| format!("{} {key}", change.key_column));
                    (Kind::Contradicted, vec![key], label)
                }
            };
            Finding {
                id,
                kind,
                table: change.table.clone(),
                entity: change.entity.clone(),
                rows,
                label,
                fields: Vec::new(),
                confidence: change.confidence,
                plan_decision: change.decision,
                reasons: Vec::new(),
                evidence: Vec::new(),
            }
        });
        finding.fields.extend(fields);
        finding.fields.sort_by(|a, b| a.column.cmp(&b.column));
        finding.confidence = finding.confidence.min(change.confidence);
        // The stricter of the parts' decisions: review over accept, reject over both.
        finding.plan_decision = finding.plan_decision.max(change.decision);
        for r in &change.reasons {
            if !finding.reasons.contains(r) {
                finding.reasons.push(r.clone());
            }
        }
        for e in &change.evidence {
            if !finding.evidence.contains(e) {
                finding.evidence.push(e.clone());
            }
        }
    }
    let mut findings: Vec<Finding> = by_id.into_values().collect();
    findings.sort_by(|a, b| (a.kind, &a.table, &a.id).cmp(&(b.kind, &b.table, &b.id)));
    let mut report = Report {
        format: FORMAT.into(),
        version: VERSION,
        mapping_hash: plan.mapping_hash.clone(),
        dialect: plan.dialect.clone(),
        window: plan.window.clone(),
        summary: Summary {
            evidence: ctx.evidence.len() as u64,
            skipped,
            agreeing: plan.summary.unchanged,
            ..Summary::default()
        },
        findings,
        ignored: Vec::new(),
        unused_rules: Vec::new(),
        unmatched: plan.unmatched.clone(),
        evidence: BTreeMap::new(),
    };
    report.settle(ctx.evidence);
    report
}

impl Report {
    /// Keeps the evidence the report refers to, with every field (ignore rules select on them).
    fn settle(&mut self, evidence: &[Evidence]) {
        let mut used: BTreeSet<usize> = BTreeSet::new();
        let index = |id: &str| id.strip_prefix('e').and_then(|n| n.parse::<usize>().ok());
        let findings = self
            .findings
            .iter()
            .chain(self.ignored.iter().map(|i| &i.finding));
        for f in findings {
            used.extend(f.evidence.iter().filter_map(|e| index(e)));
        }
        used.extend(self.unmatched.iter().filter_map(|u| index(&u.evidence)));
        if !evidence.is_empty() {
            self.evidence = used
                .into_iter()
                .filter_map(|i| i.checked_sub(1))
                .filter_map(|i| {
                    evidence.get(i).map(|e| {
                        (
                            crate::plan::evidence_id(i),
                            crate::plan::evidence_ref_with(e, true),
                        )
                    })
                })
                .collect();
        }
        self.recount();
    }

    pub fn recount(&mut self) {
        let mut counts: BTreeMap<Kind, u64> = BTreeMap::new();
        for f in &self.findings {
            *counts.entry(f.kind).or_insert(0) += 1;
        }
        self.summary.findings = counts;
        self.summary.ignored = self.ignored.len() as u64;
        self.summary.unmatched = self.unmatched.len() as u64;
    }

    /// Whether anything drifts: the exit code is 2 when it does.
    pub fn drifts(&self) -> bool {
        !self.findings.is_empty()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }
}

/// `booking_code RC7KX2PQ`, `email ann@example.com`: the first natural key that has values.
fn label_of<'a>(values: impl Iterator<Item = (&'a str, String)>) -> Option<String> {
    let parts: Vec<String> = values
        .filter(|(_, v)| !v.is_empty())
        .map(|(c, v)| format!("{c} {v}"))
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// An existing row's natural key values, as the baseline holds them, and its key.
fn row_label(
    rows: &Rows,
    row: &[Option<Box<str>>],
    key: &str,
    natural: &BTreeSet<&str>,
) -> Option<String> {
    let key_name = rows.columns.first().cloned().unwrap_or_default();
    let mut parts = vec![(key_name.as_str(), key.to_string())];
    for (i, c) in rows.columns.iter().enumerate().skip(1) {
        if natural.contains(c.as_str()) {
            if let Some(v) = row.get(i).and_then(|v| v.as_deref()) {
                parts.push((c.as_str(), v.to_string()));
            }
        }
    }
    label_of(parts.into_iter())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both parts of one row's update are one finding; an id that merely contains the words is
    /// left whole.
    #[test]
    fn a_rows_two_parts_are_one_finding() {
        assert_eq!(finding_id("rese-1a2b-state"), "rese-1a2b");
        assert_eq!(finding_id("rese-1a2b-identity"), "rese-1a2b");
        assert_eq!(finding_id("cust-9f00"), "cust-9f00");
        assert_eq!(finding_id("cust-state-9f00"), "cust-state-9f00");
    }
}
