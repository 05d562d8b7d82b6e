//! Field resolution: each column of each entity gets its value from the best evidence.
//!
//! Sources are ranked by the column's own precedence, else the mapping's default. Within the best
//! source, state (times, amounts, statuses) takes the latest statement: a modification overrides
//! the confirmation it changes. How people write their own names, emails and phones is taken by
//! vote instead, so one typo or nickname does not win just by being recent; a number written with
//! its country code is preferred to the same number without. Every value that disagrees is kept
//! as an alternative, with its evidence, so the plan can show it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{EntitySet, Link};
use crate::baseline::{Baseline, Rows};
use crate::evidence::Evidence;
use crate::mapping::project::{self, Proposed};
use crate::mapping::transform::ColumnValue;
use crate::mapping::{ColumnMap, Mapping, Pick, Transform};

#[derive(Debug, Clone, Serialize)]
pub struct Resolved {
    pub value: Resolution,
    /// The evidence the value came from.
    pub evidence: Vec<usize>,
    /// Other values the evidence gave, each with its evidence.
    pub alternatives: Vec<Alternative>,
    /// When the best evidence disagrees with itself and no rule decides: a person must.
    pub conflict: Option<String>,
    /// The mapping's `when_past` turned the evidence's value into this one.
    pub inferred: Option<Inferred>,
}

/// A value no evidence states, reached from one that evidence does by the mapping's `when_past`.
#[derive(Debug, Clone, Serialize)]
pub struct Inferred {
    /// The value the evidence gave.
    pub from: String,
    /// For a value that time changed: when the row's time plus the grace passed (the change
    /// cannot be older than this).
    pub at: Option<DateTime<Utc>>,
    /// For people: which time passed, and before what.
    pub why: String,
    /// The mapping's rule that reached it: "when_past", "adds", "by_amounts" or "region_from".
    pub rule: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Alternative {
    pub value: String,
    pub evidence: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Resolution {
    Value(ColumnValue),
    /// A row this plan inserts, by its plan-local id.
    Entity(String),
    /// An existing row's key (a linked entity, or a lookup).
    Existing(String),
    /// No value could be found, and why.
    Unresolved(String),
}

impl Serialize for ColumnValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// Normalised text of a lookup table's match values: case, accents, spaces and punctuation
/// folded, so "Lisbon Airport (LIS)" and "lisbon airport lis" meet.
fn lookup_text(s: &str) -> String {
    deunicode::deunicode(s)
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

type LookupIndex = HashMap<String, BTreeSet<String>>;

/// Per lookup table, match columns and returned column: normalised match value → the returned
/// values (keys, unless the lookup `returns` another column) of the rows that have it.
struct Lookups<'b> {
    baseline: &'b Baseline,
    built: HashMap<(String, Vec<String>, Option<String>), LookupIndex>,
}

impl Lookups<'_> {
    fn find(
        &mut self,
        table: &str,
        columns: &[String],
        returns: Option<&str>,
        value: &str,
    ) -> BTreeSet<String> {
        let baseline = self.baseline;
        let index = self
            .built
            .entry((
                table.to_string(),
                columns.to_vec(),
                returns.map(str::to_string),
            ))
            .or_insert_with(|| {
                let mut index: HashMap<String, BTreeSet<String>> = HashMap::new();
                if let Some(rows) = baseline.lookups.get(table) {
                    // The baseline reads a lookup table's key first.
                    let returned = returns.and_then(|r| rows.column_index(r)).unwrap_or(0);
                    for row in &rows.rows {
                        let Some(key) = row[returned].as_deref() else {
                            continue;
                        };
                        for c in columns {
                            if let Some(v) = rows.column_index(c).and_then(|i| row[i].as_deref()) {
                                index
                                    .entry(lookup_text(v))
                                    .or_default()
                                    .insert(key.to_string());
                            }
                        }
                    }
                }
                index
            });
        if let Some(found) = index.get(&lookup_text(value)) {
            return found.clone();
        }
        // A value that lists several parts ("Berlin Hauptbahnhof, Europaplatz 1, 10557 Berlin")
        // matches through the parts that do, when they agree on one row.
        let mut found: BTreeSet<String> = BTreeSet::new();
        for part in value.split([',', ';', '\n']) {
            if let Some(keys) = index.get(&lookup_text(part)) {
                found.extend(keys.iter().cloned());
            }
        }
        found
    }
}

/// A candidate value for one column from one evidence item.
struct Candidate {
    evidence: usize,
    rank: usize,
    at: Option<DateTime<Utc>>,
    value: Resolution,
    /// A value in the canonical form of its transform (a phone in E.164).
    canonical: bool,
}

fn observed(e: &Evidence) -> Option<DateTime<Utc>> {
    e.observed_at.or_else(|| {
        e.get(crate::evidence::field::CREATED)
            .and_then(|v| v.as_time())
    })
}

/// How a column chooses among its best source's values: the mapping's `pick`, else by vote for
/// how people write themselves (names, emails, phones) and the latest for everything else.
fn pick(spec: &ColumnMap) -> Pick {
    if let Some(p) = &spec.pick {
        return *p.get_ref();
    }
    let vote = spec
        .transform
        .as_ref()
        .is_some_and(|t| t.get_ref().describes_a_person() || *t.get_ref() == Transform::Text);
    if vote {
        Pick::Vote
    } else {
        Pick::Latest
    }
}

fn resolution_text(r: &Resolution) -> String {
    match r {
        Resolution::Value(v) => v.to_string(),
        Resolution::Entity(s) | Resolution::Existing(s) | Resolution::Unresolved(s) => s.clone(),
    }
}

/// Picks the best candidate; the rest become alternatives.
fn choose(mut cands: Vec<Candidate>, pick: Pick) -> Option<Resolved> {
    let vote = pick == Pick::Vote;
    if cands.is_empty() {
        return None;
    }
    let best_rank = cands.iter().map(|c| c.rank).min()?;
    // Group equal values, remembering their evidence.
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, c) in cands.iter().enumerate() {
        groups.entry(resolution_text(&c.value)).or_default().push(i);
    }
    let top: Vec<usize> = (0..cands.len())
        .filter(|&i| pick == Pick::Newest || cands[i].rank == best_rank)
        .collect();
    let chosen_text = if vote {
        let mut tally: BTreeMap<String, (bool, usize, Option<DateTime<Utc>>)> = BTreeMap::new();
        for &i in &top {
            let t = tally.entry(resolution_text(&cands[i].value)).or_default();
            t.0 |= cands[i].canonical;
            t.1 += 1;
            t.2 = t.2.max(cands[i].at);
        }
        let best = tally
            .iter()
            .max_by(|a, b| {
                (a.1 .0, a.1 .1, a.1 .2)
                    .cmp(&(b.1 .0, b.1 .1, b.1 .2))
                    .then(b.0.cmp(a.0))
            })
            .map(|(k, _)| k.clone())?;
        best
    } else {
        let order = |&a: &usize, &b: &usize| {
            cands[a]
                .at
                .cmp(&cands[b].at)
                .then(cands[b].rank.cmp(&cands[a].rank))
                .then(cands[b].evidence.cmp(&cands[a].evidence))
        };
        let found = if pick == Pick::Earliest {
            // The earliest statement with a time; one without a time only when none has one.
            top.iter()
                .copied()
                .filter(|&i| cands[i].at.is_some())
                .min_by(order)
                .or_else(|| top.iter().copied().max_by(order))
        } else {
            top.iter().copied().max_by(order)
        }?;
        resolution_text(&cands[found].value)
    };
    let chosen = groups.get(&chosen_text)?.clone();
    let value = cands[chosen[0]].value.clone();
    let mut conflict = None;
    if matches!(pick, Pick::Latest | Pick::Newest) {
        // Two statements from the best source at the same moment that disagree: no rule decides.
        let at = chosen.iter().map(|&i| cands[i].at).max().flatten();
        let rank = chosen.iter().map(|&i| cands[i].rank).min();
        let rivals: Vec<String> = top
            .iter()
            .filter(|&&i| {
                cands[i].at == at
                    && at.is_some()
                    && Some(cands[i].rank) == rank
                    && resolution_text(&cands[i].value) != chosen_text
            })
            .map(|&i| resolution_text(&cands[i].value))
            .collect();
        if !rivals.is_empty() {
            conflict = Some(format!(
                "evidence of the same time and source disagrees: {chosen_text} or {}",
                rivals.join(", ")
            ));
        }
    }
    let evidence: Vec<usize> = chosen.iter().map(|&i| cands[i].evidence).collect();
    let alternatives = groups
        .into_iter()
        .filter(|(t, _)| *t != chosen_text)
        .map(|(value, idx)| Alternative {
            value,
            evidence: idx.iter().map(|&i| cands[i].evidence).collect(),
        })
        .collect();
    cands.clear();
    Some(Resolved {
        value,
        evidence,
        alternatives,
        conflict,
        inferred: None,
    })
}

fn constant(v: &toml::Value) -> ColumnValue {
    match v {
        toml::Value::String(s) => ColumnValue::Text(s.clone()),
        toml::Value::Integer(i) => ColumnValue::Int(*i),
        toml::Value::Boolean(b) => ColumnValue::Int(i64::from(*b)),
        other => ColumnValue::Text(other.to_string()),
    }
}

pub(super) fn resolve_all(
    mapping: &Mapping,
    evidence: &[Evidence],
    baseline: &Baseline,
    sets: &mut [EntitySet],
    holder: &BTreeMap<String, HashMap<usize, usize>>,
) {
    let mut lookups = Lookups {
        baseline,
        built: HashMap::new(),
    };
    // Where each entity's items stand: plan-local id, or the existing key when linked.
    let targets: BTreeMap<String, Vec<Resolution>> = sets
        .iter()
        .map(|s| {
            let t = s
                .items
                .iter()
                .map(|i| match &i.link {
                    Link::Existing { key, .. } => Resolution::Existing(key.clone()),
                    Link::New => Resolution::Entity(i.local.clone()),
                })
                .collect();
            (s.entity.clone(), t)
        })
        .collect();
    let horizon = horizon(evidence);
    let default_precedence: Vec<&str> = mapping
        .precedence
        .default
        .iter()
        .map(|s| s.get_ref().as_str())
        .collect();
    for set in sets.iter_mut() {
        let Some(entity) = mapping.entity(&set.entity) else {
            continue;
        };
        let rows = baseline.entities.get(&set.entity);
        let row_index = rows.map(index_rows).unwrap_or_default();
        for item in &mut set.items {
            let projections: Vec<(usize, project::Projection)> = item
                .members
                .iter()
                .map(|m| {
                    (
                        m.evidence,
                        project::project_entity(&set.entity, entity, &evidence[m.evidence]),
                    )
                })
                .collect();
            for (column, spec) in &entity.columns {
                let column = column.get_ref();
                let precedence: Vec<&str> = if spec.precedence.is_empty() {
                    default_precedence.clone()
                } else {
                    spec.precedence
                        .iter()
                        .map(|s| s.get_ref().as_str())
                        .collect()
                };
                let rank = |e: &Evidence| {
                    precedence
                        .iter()
                        .position(|s| *s == e.provenance.source.as_str())
                        .unwrap_or(precedence.len())
                };
                if spec.generate.is_some() {
                    continue;
                }
                if let Some(v) = &spec.value {
                    item.columns.insert(
                        column.clone(),
                        Resolved {
                            value: Resolution::Value(constant(v.get_ref())),
                            evidence: vec![],
                            alternatives: vec![],
                            conflict: None,
                            inferred: None,
                        },
                    );
                    continue;
                }
                if let Some(target) = &spec.entity {
                    let target = target.get_ref();
                    let mut votes: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
                    if let Some(h) = holder.get(target) {
                        for m in &item.members {
                            if let Some(&c) = h.get(&m.evidence) {
                                votes.entry(c).or_default().push(m.evidence);
                            }
                        }
                    }
                    let most = votes.values().map(Vec::len).max().unwrap_or(0);
                    let winners: Vec<usize> = votes
                        .iter()
                        .filter(|(_, v)| v.len() == most)
                        .map(|(c, _)| *c)
                        .collect();
                    let Some(t) = targets.get(target) else {
                        continue;
                    };
                    let resolved = match winners.as_slice() {
                        [] => Resolved {
                            value: Resolution::Unresolved(format!(
                                "no evidence of this {} names its {target}",
                                set.entity
                            )),
                            evidence: vec![],
                            alternatives: vec![],
                            conflict: None,
                            inferred: None,
                        },
                        [c, rest @ ..] => Resolved {
                            value: t[*c].clone(),
                            evidence: votes[c].clone(),
                            alternatives: votes
                                .iter()
                                .filter(|(k, _)| *k != c)
                                .map(|(k, ev)| super::resolve::Alternative {
                                    value: resolution_text(&t[*k]),
                                    evidence: ev.clone(),
                                })
                                .collect(),
                            conflict: (!rest.is_empty()).then(|| {
                                format!(
                                    "its evidence names {} different {target}s equally often",
                                    rest.len() + 1
                                )
                            }),
                            inferred: None,
                        },
                    };
                    item.columns.insert(column.clone(), resolved);
                    continue;
                }
                let mut cands = Vec::new();
                for (ev, p) in &projections {
                    let e = &evidence[*ev];
                    match p.columns.get(column) {
                        Some(Proposed::Value { value, .. }) => cands.push(Candidate {
                            evidence: *ev,
                            rank: rank(e),
                            at: observed(e),
                            canonical: !matches!(
                                spec.transform.as_ref().map(|t| *t.get_ref()),
                                Some(Transform::Phone)
                            ) || value.to_string().starts_with('+'),
                            value: Resolution::Value(value.clone()),
                        }),
                        Some(Proposed::Lookup {
                            table,
                            columns,
                            returns,
                            value,
                            ..
                        }) => {
                            let keys = lookups.find(table, columns, returns.as_deref(), value);
                            let value = match keys.len() {
                                1 => Resolution::Existing(
                                    keys.into_iter().next().unwrap_or_default(),
                                ),
                                0 => continue,
                                n => Resolution::Unresolved(format!(
                                    "\"{value}\" matches {n} rows of {table}"
                                )),
                            };
                            cands.push(Candidate {
                                evidence: *ev,
                                rank: rank(e),
                                at: observed(e),
                                canonical: true,
                                value,
                            });
                        }
                        _ => {}
                    }
                }
                // A lookup that found one row beats one that found several.
                if cands
                    .iter()
                    .any(|c| !matches!(c.value, Resolution::Unresolved(_)))
                {
                    cands.retain(|c| !matches!(c.value, Resolution::Unresolved(_)));
                }
                // Most numbers are written in full: the region is looked for only when needed.
                let region = if cands.iter().any(|c| !c.canonical) {
                    region_of(spec, &item.members, evidence, &mut lookups)
                } else {
                    None
                };
                let placed = region
                    .as_ref()
                    .map(|(region, _)| place_phones(&mut cands, region))
                    .unwrap_or_default();
                if let Some(mut r) = choose(cands, pick(spec)) {
                    if let (Resolution::Value(v), Some((region, how))) = (&r.value, &region) {
                        // Only when no evidence wrote the number in full is it an inference.
                        if let Some((written, false)) = placed.get(&v.to_string()) {
                            r.inferred = Some(Inferred {
                                rule: "region_from",
                                from: written[0].clone(),
                                at: None,
                                why: format!(
                                    "written without a country code ({}); read in {region}, {how}",
                                    written.join(", ")
                                ),
                            });
                        }
                    }
                    item.columns.insert(column.clone(), r);
                }
            }
            let row = match &item.link {
                Link::Existing { key, .. } => rows
                    .zip(row_index.get(key.as_str()))
                    .map(|(rows, &i)| (rows, &rows.rows[i])),
                Link::New => None,
            };
            derive(entity, item, evidence, row, baseline.restore_point, horizon);
        }
    }
}

/// The values the mapping's rules reach from what the evidence states, in the order they build
/// on each other: sums (`adds`) before the statuses that read them (`by_amounts`), and the
/// passing of time (`when_past`) last, on the status the evidence or the amounts gave.
fn derive(
    entity: &crate::mapping::Entity,
    item: &mut super::Reconstructed,
    evidence: &[Evidence],
    row: Option<(&Rows, &Vec<Option<Box<str>>>)>,
    restore_point: Option<DateTime<Utc>>,
    horizon: Option<DateTime<Utc>>,
) {
    for (column, spec) in &entity.columns {
        let column = column.get_ref();
        let Some(rule) = &spec.adds else { continue };
        if !item.columns.contains_key(column) {
            if let Some(r) = adds_up(column, rule.get_ref(), item, evidence, row, restore_point) {
                item.columns.insert(column.clone(), r);
            }
        }
    }
    for (column, spec) in &entity.columns {
        let column = column.get_ref();
        let Some(rule) = &spec.by_amounts else {
            continue;
        };
        if !item.columns.contains_key(column) {
            if let Some(r) = by_amounts(column, rule.get_ref(), item, row) {
                item.columns.insert(column.clone(), r);
            }
        }
    }
    for (column, spec) in &entity.columns {
        if let (Some(rule), Some(horizon)) = (&spec.when_past, horizon) {
            when_past(entity, column.get_ref(), rule.get_ref(), horizon, item, row);
        }
    }
}

/// Reads a phone column's numbers written without a country code in `region`, where they make
/// a valid number there, so they meet the same number written in full. Returns, per E.164
/// value, how it was written when read so, and whether some evidence wrote it in full.
fn place_phones(cands: &mut [Candidate], region: &str) -> BTreeMap<String, (Vec<String>, bool)> {
    let mut placed: BTreeMap<String, (Vec<String>, bool)> = BTreeMap::new();
    for c in cands {
        let Resolution::Value(ColumnValue::Text(written)) = &c.value else {
            continue;
        };
        if c.canonical {
            placed.entry(written.clone()).or_default().1 = true;
        } else if let Some(e164) = crate::mapping::transform::phone_in_region(written, region) {
            let p = placed.entry(e164.clone()).or_default();
            if !p.0.contains(written) {
                p.0.push(written.clone());
            }
            c.value = Resolution::Value(ColumnValue::Text(e164));
            c.canonical = true;
        }
    }
    placed
}

/// The country a phone column reads numbers written without a country code in: the one the
/// entity's evidence names most through `region_from` (a tie names none), else `region`.
fn region_of(
    spec: &ColumnMap,
    members: &[super::Member],
    evidence: &[Evidence],
    lookups: &mut Lookups,
) -> Option<(String, String)> {
    let mut votes: BTreeMap<String, usize> = BTreeMap::new();
    if let Some(l) = &spec.region_from {
        let columns: Vec<String> = l
            .match_columns
            .iter()
            .map(|c| c.get_ref().clone())
            .collect();
        let returns = l.returns.as_ref().map(|r| r.get_ref().as_str());
        for m in members {
            let e = &evidence[m.evidence];
            let names = l.from.get_ref().names_for(e.provenance.source.as_str());
            let Some(value) = names.iter().find_map(|n| e.get(n)) else {
                continue;
            };
            let found = lookups.find(l.table.get_ref(), &columns, returns, &value.to_string());
            if found.len() == 1 {
                *votes.entry(found.into_iter().next()?).or_default() += 1;
            }
        }
    }
    let most = votes.values().copied().max().unwrap_or(0);
    let mut top = votes.into_iter().filter(|(_, n)| *n == most && most > 0);
    match (top.next(), top.next(), &spec.region_from) {
        (Some((region, _)), None, Some(l)) => {
            let returns = l.returns.as_ref().map(|r| r.get_ref().as_str());
            let why = format!(
                "the {} that {} gives for the {} in its evidence",
                returns.unwrap_or("key"),
                l.table.get_ref(),
                l.from.get_ref().names().join(" or ")
            );
            Some((region, why))
        }
        _ => spec
            .region
            .as_ref()
            .map(|r| (r.get_ref().clone(), "the mapping's region".to_string())),
    }
}

/// A column's value as a whole number: the entity's, else the linked row's.
fn amount_of(
    column: &str,
    item: &super::Reconstructed,
    row: Option<(&Rows, &Vec<Option<Box<str>>>)>,
) -> Option<i64> {
    if let Some(r) = item.columns.get(column) {
        return match &r.value {
            Resolution::Value(ColumnValue::Int(i)) => Some(*i),
            _ => None,
        };
    }
    let (rows, row) = row?;
    rows.column_index(column)
        .and_then(|i| row[i].as_deref())
        .and_then(|t| t.trim().parse().ok())
}

/// `adds`: the row's total (none for a new row) plus each adding item's amount. On an existing
/// row only items from the restore point on add: older ones are in the restored total already.
fn adds_up(
    column: &str,
    rule: &crate::mapping::Adds,
    item: &super::Reconstructed,
    evidence: &[Evidence],
    row: Option<(&Rows, &Vec<Option<Box<str>>>)>,
    restore_point: Option<DateTime<Utc>>,
) -> Option<Resolved> {
    let base = match row {
        Some(_) => Some(amount_of(column, item, row)?),
        None => None,
    };
    let mut sum = 0i64;
    let mut used = Vec::new();
    for m in &item.members {
        let e = &evidence[m.evidence];
        if !rule.kinds.iter().any(|k| *k.get_ref() == e.kind) {
            continue;
        }
        let since_restore = observed(e)
            .zip(restore_point)
            .is_none_or(|(at, rp)| at >= rp);
        if base.is_some() && !since_restore {
            continue;
        }
        let amount = match e.get(rule.from.get_ref()) {
            Some(crate::evidence::Value::Money { minor, .. }) => *minor,
            Some(crate::evidence::Value::Int(i)) => *i,
            _ => continue,
        };
        // Amounts no currency can hold are no total at all.
        sum = sum.checked_add(amount)?;
        used.push(m.evidence);
    }
    if used.is_empty() {
        return None;
    }
    let before = base.unwrap_or(0);
    Some(Resolved {
        value: Resolution::Value(ColumnValue::Int(before.checked_add(sum)?)),
        evidence: used.clone(),
        alternatives: vec![],
        conflict: None,
        inferred: Some(Inferred {
            rule: "adds",
            from: before.to_string(),
            at: None,
            why: match base {
                Some(before) => format!(
                    "no evidence states the total: {} × {} since the restore point add {sum} to the row's {before}",
                    used.len(),
                    kinds_text(rule)
                ),
                None => format!("no evidence states the total: {} × {} add up to {sum}", used.len(), kinds_text(rule)),
            },
        }),
    })
}

fn kinds_text(rule: &crate::mapping::Adds) -> String {
    rule.kinds
        .iter()
        .map(|k| k.get_ref().as_str())
        .collect::<Vec<_>>()
        .join("/")
}

/// `by_amounts`: the status that the amounts say, when the part is known from evidence and the
/// row, if any, holds one of the three statuses (a failed payment is not made succeeded).
fn by_amounts(
    column: &str,
    rule: &crate::mapping::ByAmounts,
    item: &super::Reconstructed,
    row: Option<(&Rows, &Vec<Option<Box<str>>>)>,
) -> Option<Resolved> {
    let part_resolved = item.columns.get(rule.part.get_ref())?;
    let part = amount_of(rule.part.get_ref(), item, row)?;
    let total = amount_of(rule.total.get_ref(), item, row)?;
    if let Some((rows, row)) = row {
        let status = rows.column_index(column).and_then(|i| row[i].as_deref());
        if !status.is_some_and(|s| [&rule.none, &rule.some, &rule.all].iter().any(|v| *v == s)) {
            return None;
        }
    }
    let value = if part <= 0 {
        &rule.none
    } else if part >= total {
        &rule.all
    } else {
        &rule.some
    };
    Some(Resolved {
        value: Resolution::Value(ColumnValue::Text(value.clone())),
        evidence: part_resolved.evidence.clone(),
        alternatives: vec![],
        conflict: None,
        inferred: Some(Inferred {
            rule: "by_amounts",
            from: String::new(),
            at: None,
            why: format!(
                "from the amounts: {} {part} of {} {total}",
                rule.part.get_ref(),
                rule.total.get_ref()
            ),
        }),
    })
}

/// What has passed is judged against the newest evidence: the moment the sources last spoke.
fn horizon(evidence: &[Evidence]) -> Option<DateTime<Utc>> {
    evidence.iter().filter_map(observed).max()
}

/// Existing rows no evidence mentions whose `when_past` time passed between the restore point
/// and the newest evidence: the backup could not know that the rental came back, and nothing
/// else will say so. Each becomes an item of its own, linked to the row by its key, with no
/// evidence and the inferred value.
pub(super) fn lapsed_rows(
    mapping: &Mapping,
    evidence: &[Evidence],
    baseline: &Baseline,
    sets: &mut [EntitySet],
) {
    let (Some(horizon), Some(restore_point)) = (horizon(evidence), baseline.restore_point) else {
        return;
    };
    for set in sets.iter_mut() {
        let Some(entity) = mapping.entity(&set.entity) else {
            continue;
        };
        let Some(rows) = baseline.entities.get(&set.entity) else {
            continue;
        };
        // Each rule with its column's place in the baseline rows.
        let rules: Vec<(&str, &crate::mapping::WhenPast, usize)> = entity
            .columns
            .iter()
            .filter_map(|(c, s)| {
                let column = c.get_ref().as_str();
                Some((
                    column,
                    s.when_past.as_ref()?.get_ref(),
                    rows.column_index(column)?,
                ))
            })
            .collect();
        if rules.is_empty() {
            continue;
        }
        let held: std::collections::HashSet<&str> = set
            .items
            .iter()
            .filter_map(|i| match &i.link {
                Link::Existing { key, .. } => Some(key.as_str()),
                Link::New => None,
            })
            .collect();
        let mut lapsed = Vec::new();
        for row in &rows.rows {
            let Some(key) = row[0].as_deref() else {
                continue;
            };
            if held.contains(key) {
                continue;
            }
            // Most rows hold no value any rule turns: they cost one comparison, no item.
            let turnable = rules.iter().any(|(_, rule, i)| {
                row[*i]
                    .as_deref()
                    .is_some_and(|status| rule.turns.contains_key(status))
            });
            if !turnable {
                continue;
            }
            let mut item = super::Reconstructed {
                local: format!("{}#row-{key}", set.entity),
                members: vec![],
                link: Link::Existing {
                    key: key.to_string(),
                    by: super::LinkedBy::Identifier {
                        columns: vec![entity.key.get_ref().clone()],
                        value: key.to_string(),
                    },
                },
                columns: BTreeMap::new(),
                confidence: 1.0,
                review: vec![],
                could_be: vec![],
                could_be_by_identifier: false,
                searched: None,
            };
            for (column, rule, i) in &rules {
                let Some(status) = row[*i].as_deref() else {
                    continue;
                };
                if !rule.turns.contains_key(status) {
                    continue;
                }
                item.columns.insert(
                    column.to_string(),
                    Resolved {
                        value: Resolution::Value(ColumnValue::Text(status.to_string())),
                        evidence: vec![],
                        alternatives: vec![],
                        conflict: None,
                        inferred: None,
                    },
                );
                when_past(entity, column, rule, horizon, &mut item, Some((rows, row)));
                let changed = item.columns.get(*column).and_then(|r| r.inferred.as_ref());
                if changed.is_none_or(|i| i.at.is_none_or(|at| at < restore_point)) {
                    item.columns.remove(*column);
                }
            }
            if !item.columns.is_empty() {
                lapsed.push(item);
            }
        }
        set.items.extend(lapsed);
    }
}

/// The instant a resolved time column stands for (a wall-clock value in the column's zone, a
/// date at the end of its day), else the linked row's.
fn time_of(
    entity: &crate::mapping::Entity,
    column: &str,
    item: &super::Reconstructed,
    row: Option<(&Rows, &Vec<Option<Box<str>>>)>,
) -> Option<(DateTime<Utc>, Vec<usize>)> {
    let spec = entity.column(column)?;
    if let Some(r) = item.columns.get(column) {
        if let Resolution::Value(v) = &r.value {
            let zone = spec.zone.as_ref().and_then(|z| z.get_ref().parse().ok());
            let at = match v {
                ColumnValue::Instant(t) => Some(*t),
                ColumnValue::WallClock(w) => {
                    crate::baseline::to_utc(&w.format("%Y-%m-%d %H:%M:%S").to_string(), zone)
                }
                ColumnValue::Date(d) => d
                    .succ_opt()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map(|t| t.and_utc()),
                _ => None,
            };
            if let Some(at) = at {
                return Some((at, r.evidence.clone()));
            }
        }
    }
    let (rows, row) = row?;
    let text = rows.column_index(column).and_then(|i| row[i].as_deref())?;
    crate::baseline::to_utc(text, None).map(|at| (at, vec![]))
}

/// Applies a column's `when_past`: a value the evidence gave that the passing of the row's time
/// has since changed (confirmed → completed once the return time is behind the newest evidence).
fn when_past(
    entity: &crate::mapping::Entity,
    column: &str,
    rule: &crate::mapping::WhenPast,
    horizon: DateTime<Utc>,
    item: &mut super::Reconstructed,
    row: Option<(&Rows, &Vec<Option<Box<str>>>)>,
) {
    let Some(r) = item.columns.get(column) else {
        return;
    };
    let Resolution::Value(ColumnValue::Text(from)) = &r.value else {
        return;
    };
    let Some(to) = rule.turns.get(from) else {
        return;
    };
    let time_column = rule.column.get_ref();
    let Some((passed, time_evidence)) = time_of(entity, time_column, item, row) else {
        return;
    };
    let grace = rule
        .grace
        .as_ref()
        .and_then(|g| crate::evidence::parse_duration(g.get_ref()))
        .unwrap_or_default();
    let at = passed + grace;
    if at > horizon {
        return;
    }
    let mut r = r.clone();
    let why = format!(
        "{} says {from}, and {time_column} {}{} is before the newest evidence ({})",
        if item.members.is_empty() {
            "the row"
        } else {
            "the evidence"
        },
        passed.format("%Y-%m-%dT%H:%M:%SZ"),
        rule.grace
            .as_ref()
            .map(|g| format!(" + {}", g.get_ref()))
            .unwrap_or_default(),
        horizon.format("%Y-%m-%dT%H:%M:%SZ"),
    );
    r.inferred = Some(Inferred {
        rule: "when_past",
        from: from.clone(),
        at: Some(at),
        why,
    });
    r.value = Resolution::Value(ColumnValue::Text(to.clone()));
    r.evidence.extend(time_evidence);
    r.evidence.sort_unstable();
    r.evidence.dedup();
    item.columns.insert(column.to_string(), r);
}

/// Index of a table's rows by key, for comparing an entity with the row it is linked to.
pub fn index_rows(rows: &Rows) -> HashMap<&str, usize> {
    rows.rows
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r[0].as_deref().map(|k| (k, i)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A candidate: evidence index, source rank (0 is the most trusted), time, text value.
    fn cand(evidence: usize, rank: usize, at: Option<&str>, value: &str) -> Candidate {
        Candidate {
            evidence,
            rank,
            at: at.map(|t| t.parse().unwrap()),
            value: Resolution::Value(ColumnValue::Text(value.into())),
            canonical: false,
        }
    }

    fn text(r: &Resolved) -> String {
        resolution_text(&r.value)
    }

    #[test]
    fn latest_takes_the_newest_statement_of_the_most_trusted_source() {
        let got = choose(
            vec![
                cand(0, 0, Some("2026-07-01T10:00:00Z"), "confirmed"),
                cand(1, 0, Some("2026-07-03T10:00:00Z"), "cancelled"),
                // Newer, but from a less trusted source.
                cand(2, 1, Some("2026-07-05T10:00:00Z"), "confirmed"),
            ],
            Pick::Latest,
        )
        .unwrap();
        assert_eq!(text(&got), "cancelled");
        assert_eq!(got.evidence, vec![1]);
        assert_eq!(got.alternatives.len(), 1);
        assert_eq!(got.alternatives[0].value, "confirmed");
        assert_eq!(got.alternatives[0].evidence, vec![0, 2]);
        assert!(got.conflict.is_none());
    }

    #[test]
    fn newest_takes_the_newest_statement_of_any_source() {
        let got = choose(
            vec![
                cand(0, 0, Some("2026-07-01T10:00:00Z"), "09:00"),
                cand(1, 1, Some("2026-07-05T10:00:00Z"), "11:00"),
            ],
            Pick::Newest,
        )
        .unwrap();
        assert_eq!(text(&got), "11:00");
    }

    #[test]
    fn earliest_prefers_a_statement_with_a_time() {
        let got = choose(
            vec![
                cand(0, 0, None, "undated"),
                cand(1, 0, Some("2026-07-05T10:00:00Z"), "later"),
                cand(2, 0, Some("2026-07-01T10:00:00Z"), "first"),
            ],
            Pick::Earliest,
        )
        .unwrap();
        assert_eq!(text(&got), "first");
    }

    /// Two statements of the same source and moment that disagree are a conflict for a person,
    /// not a guess.
    #[test]
    fn a_disagreement_at_the_same_moment_is_a_conflict() {
        let got = choose(
            vec![
                cand(0, 0, Some("2026-07-01T10:00:00Z"), "Anna Berg"),
                cand(1, 0, Some("2026-07-01T10:00:00Z"), "Anne Berg"),
            ],
            Pick::Latest,
        )
        .unwrap();
        let conflict = got.conflict.expect("a conflict");
        assert!(
            conflict.contains("Anna Berg") && conflict.contains("Anne Berg"),
            "{conflict}"
        );
    }

    /// How people write themselves: the most written form wins, a canonical one first, and a tie
    /// goes to the newest.
    #[test]
    fn vote_takes_the_most_written_form() {
        let got = choose(
            vec![
                cand(0, 0, Some("2026-07-01T10:00:00Z"), "Bob Stone"),
                cand(1, 0, Some("2026-07-02T10:00:00Z"), "Robert Stone"),
                cand(2, 0, Some("2026-07-03T10:00:00Z"), "Robert Stone"),
                cand(3, 0, Some("2026-07-09T10:00:00Z"), "Bob Stone"),
                cand(4, 0, Some("2026-07-04T10:00:00Z"), "Robert Stone"),
            ],
            Pick::Vote,
        )
        .unwrap();
        assert_eq!(text(&got), "Robert Stone");
        let mut canonical = cand(5, 0, None, "+351912345678");
        canonical.canonical = true;
        let got = choose(
            vec![
                cand(0, 0, None, "912 345 678"),
                cand(1, 0, None, "912 345 678"),
                canonical,
            ],
            Pick::Vote,
        )
        .unwrap();
        assert_eq!(text(&got), "+351912345678");
        assert!(choose(vec![], Pick::Vote).is_none());
    }
}
