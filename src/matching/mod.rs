//! Matching: from evidence to entities to proposed rows (SPEC §2).
//!
//! For each entity of the mapping, in insertion order:
//! 1. every evidence item that feeds it is projected through the mapping (`mapping::project`);
//! 2. items that share a natural key value (a booking code, an email, a Stripe id) are one
//!    entity: exact identifiers dominate, and one booking code is one booking;
//! 3. items without any identifier are scored against the entities their blocking keys reach,
//!    with Fellegi-Sunter weights estimated from the identified items (`weights`), and join the
//!    best one when it is clearly the best; two near-equal candidates go to review, never to a
//!    guess;
//! 4. each entity is linked to an existing row of the baseline by its natural keys, or, failing
//!    that, by the same scoring against the baseline's rows;
//! 5. references between entities (a reservation's customer) follow the evidence they share;
//! 6. every column gets its value from the best evidence (`resolve`).
//!
//! Matching issues no SQL and reads no files: it works on evidence and baseline rows as values.

pub mod compare;
pub mod normalize;
mod resolve;
pub mod weights;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::baseline::{self, Baseline, Rows};
use crate::evidence::{Evidence, Value};
use crate::mapping::project::{self, Projection, Proposed};
use crate::mapping::{Entity, Mapping, Method, Transform};
use compare::{Compare, Level};
use weights::{FieldWeights, Tally};

pub use resolve::{index_rows, Alternative, Resolution, Resolved};

/// Everything matching found, for planning to turn into changes.
#[derive(Debug, Serialize)]
pub struct Reconstruction {
    /// Per entity name, in the mapping's insertion order.
    pub entities: Vec<EntitySet>,
    /// Evidence that fed some entity but joined none of its rows, and why.
    pub unmatched: Vec<Unmatched>,
}

#[derive(Debug, Serialize)]
pub struct EntitySet {
    pub entity: String,
    pub table: String,
    pub weights: Vec<FieldWeights>,
    /// The prior chance that a candidate reached by blocking is the right one.
    pub prior: f64,
    pub items: Vec<Reconstructed>,
}

/// One entity: the evidence that describes it, the row it is (or will be), and its values.
#[derive(Debug, Serialize)]
pub struct Reconstructed {
    /// Plan-local id: `<entity>#<n>`, numbered in evidence order, so the same inputs give the
    /// same ids.
    pub local: String,
    pub members: Vec<Member>,
    pub link: Link,
    pub columns: BTreeMap<String, Resolved>,
    /// The lowest probability among the steps that made it (joins and link); 1 when every step
    /// was an exact identifier.
    pub confidence: f64,
    /// Why a person should look before this is applied.
    pub review: Vec<String>,
    /// Existing rows it fits, when it fits several and so was linked to none.
    pub could_be: Vec<String>,
    /// Whether its identifiers, not only its resemblance, point at each of `could_be`: the rows
    /// are then likely one thing recorded twice.
    pub could_be_by_identifier: bool,
    /// When no identifier linked it: the existing rows it was scored against, for saying why it
    /// is new (None when the mapping blocks it on nothing but its identifiers).
    pub searched: Option<Searched>,
}

/// What the search of the existing rows by resemblance saw.
#[derive(Debug, Clone, Serialize)]
pub struct Searched {
    /// How many existing rows shared a blocking key with it and were scored.
    pub compared: usize,
    /// The best of them, best first (at most three): key and probability.
    pub closest: Vec<(String, f64)>,
}

/// A group of evidence's link to the baseline, or why it has none, and what the search saw.
type LinkFound = (Result<Link, Unlinked>, Option<Searched>);

/// Why a group of evidence was not linked to an existing row it fits.
struct Unlinked {
    why: String,
    rows: Vec<String>,
    by_identifier: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Member {
    /// Index into the evidence given to [`reconstruct`].
    pub evidence: usize,
    pub joined: Joined,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Joined {
    /// Shares a natural key value with the others.
    Identifier { key: String },
    /// Scored against the entity's other evidence.
    Score(Score),
}

/// A scored link, explained field by field.
#[derive(Debug, Clone, Serialize)]
pub struct Score {
    pub probability: f64,
    /// Sum of the contributions, in bits.
    pub weight: f64,
    pub prior: f64,
    pub contributions: Vec<Contribution>,
    /// The next best candidate's probability, when there was one.
    pub runner_up: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Contribution {
    pub field: String,
    pub level: Level,
    pub bits: f64,
    pub ours: String,
    pub theirs: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Link {
    /// No existing row: an insert.
    New,
    /// The existing row with this key.
    Existing { key: String, by: LinkedBy },
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum LinkedBy {
    Identifier { columns: Vec<String>, value: String },
    Score(Score),
}

#[derive(Debug, Clone, Serialize)]
pub struct Unmatched {
    pub evidence: usize,
    pub entity: String,
    pub why: String,
}

/// One entity's evidence: which items, what each proposes, and their identifier keys.
struct Mention {
    evidence: usize,
    keys: Vec<String>,
    /// The item's values of the fields matching compares and blocks on, as far as they describe
    /// this entity (see [`attributable`]).
    values: FieldValues,
}

/// Reconstructs every entity of the mapping from the evidence and links it to the baseline.
pub fn reconstruct(
    mapping: &Mapping,
    evidence: &[Evidence],
    baseline: &Baseline,
) -> Reconstruction {
    let mut sets: Vec<EntitySet> = Vec::new();
    let mut unmatched = Vec::new();
    // Per entity: which of its items holds each evidence index.
    let mut holder: BTreeMap<String, HashMap<usize, usize>> = BTreeMap::new();
    for name in mapping.insertion_order() {
        let Some(entity) = mapping.entity(name) else {
            continue;
        };
        let parents = Parents::new(mapping, entity, evidence, baseline, &sets, &holder);
        let (set, lost, held) = reconstruct_entity(name, entity, evidence, baseline, &parents);
        unmatched.extend(lost);
        holder.insert(name.to_string(), held);
        sets.push(set);
    }
    resolve::resolve_all(mapping, evidence, baseline, &mut sets, &holder);
    resolve::lapsed_rows(mapping, evidence, baseline, &mut sets);
    // Evidence that some entity took is used, even if another entity it feeds could not place
    // it (a completion mail names no customer email, but its booking is found).
    unmatched.retain(|u| !holder.values().any(|h| h.contains_key(&u.evidence)));
    // Every item is accounted for (invariant 6): one that no entity could even use says so.
    let listed: std::collections::HashSet<usize> = unmatched.iter().map(|u| u.evidence).collect();
    for i in 0..evidence.len() {
        if !listed.contains(&i) && !holder.values().any(|h| h.contains_key(&i)) {
            unmatched.push(Unmatched {
                evidence: i,
                entity: String::new(),
                why: "it gives none of the fields the mapping rebuilds rows from".into(),
            });
        }
    }
    unmatched.sort_by(|a, b| (a.evidence, &a.entity).cmp(&(b.evidence, &b.entity)));
    Reconstruction {
        entities: sets,
        unmatched,
    }
}

/// A union-find over mention indices.
struct Groups(Vec<usize>);

impl Groups {
    fn find(&mut self, mut i: usize) -> usize {
        while self.0[i] != i {
            self.0[i] = self.0[self.0[i]];
            i = self.0[i];
        }
        i
    }
    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        // The smaller index is the root, so groups are named by their first item.
        if ra < rb {
            self.0[rb] = ra;
        } else if rb < ra {
            self.0[ra] = rb;
        }
    }
}

/// Normalises a value for an identifier key, by the column's transform.
fn key_text(transform: Option<Transform>, text: &str) -> String {
    match transform {
        Some(Transform::Email) => normalize::email(text),
        Some(Transform::Phone) => normalize::phone(text),
        _ => normalize::code(text),
    }
}

fn column_transform(entity: &Entity, column: &str) -> Option<Transform> {
    entity
        .column(column)
        .and_then(|c| c.transform.as_ref().map(|t| *t.get_ref()))
}

/// The identifier keys an item gives: one per natural key set all of whose columns it fills.
fn identifier_keys(entity: &Entity, p: &Projection) -> Vec<String> {
    let mut keys = Vec::new();
    'sets: for (i, set) in entity.natural_keys.iter().enumerate() {
        let mut key = format!("{i}");
        for col in set {
            let Some(Proposed::Value { value, .. }) = p.columns.get(col.get_ref()) else {
                continue 'sets;
            };
            let k = key_text(column_transform(entity, col.get_ref()), &value.to_string());
            if k.is_empty() {
                continue 'sets;
            }
            key.push('\u{1f}');
            key.push_str(&k);
        }
        keys.push(key);
    }
    keys
}

/// Values of one field across a group of items, for comparing and blocking.
type FieldValues = BTreeMap<String, Vec<Value>>;

const MAX_VALUES: usize = 8;

fn add_values(into: &mut FieldValues, from: &FieldValues) {
    for (f, vs) in from {
        let into = into.entry(f.clone()).or_default();
        for v in vs {
            if into.len() < MAX_VALUES && !into.contains(v) {
                into.push(v.clone());
            }
        }
    }
}

/// An item's values of `fields`, leaving out those the mapping does not take from it for this
/// entity: when a column reads a field but not from this kind of evidence (a charge's name is
/// the payer's, not the customer's), the field says nothing about this entity here either.
fn attributable(entity: &Entity, fields: &[String], e: &Evidence, p: &Projection) -> FieldValues {
    let mut out = FieldValues::new();
    for f in fields {
        let Some(v) = e.get(f) else { continue };
        let read_by_column = entity.columns.values().any(|c| {
            c.from
                .as_ref()
                .is_some_and(|fr| fr.get_ref().names().contains(&f.as_str()))
                || c.lookup
                    .as_ref()
                    .is_some_and(|l| l.from.get_ref().names().contains(&f.as_str()))
        });
        let used = p.columns.values().any(|prop| match prop {
            Proposed::Value { field, .. } | Proposed::Lookup { field, .. } => field == f,
            Proposed::Constant(_) => false,
        });
        if !read_by_column || used {
            out.insert(f.clone(), vec![v.clone()]);
        }
    }
    out
}

/// Blocking keys of a set of values: every combination of the set's fields, times bucketed by
/// day (with the neighbouring days when `probe`, so a time near midnight still meets).
fn block_keys(
    blocking: &[Vec<String>],
    compares: &[Compare],
    values: &FieldValues,
    probe: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    for (i, set) in blocking.iter().enumerate() {
        let mut partial = vec![format!("{i}")];
        for f in set {
            let method = compares.iter().find(|c| &c.field == f).map(|c| c.method);
            let Some(vs) = values.get(f) else {
                partial.clear();
                break;
            };
            let mut parts = BTreeSet::new();
            for v in vs {
                for p in block_part(method, v, probe) {
                    parts.insert(p);
                }
            }
            let mut next = Vec::new();
            for a in &partial {
                for p in &parts {
                    next.push(format!("{a}\u{1f}{p}"));
                }
            }
            partial = next;
            if partial.len() > 64 {
                partial.truncate(64);
            }
        }
        out.extend(partial);
    }
    out.sort();
    out.dedup();
    out
}

fn block_part(method: Option<Method>, v: &Value, probe: bool) -> Vec<String> {
    match v {
        Value::Time(t) => day_keys(*t, probe),
        Value::Date(d) => day_keys(
            d.and_hms_opt(12, 0, 0)
                .map_or(DateTime::UNIX_EPOCH, |t| t.and_utc()),
            probe,
        ),
        Value::Money { minor, currency } => vec![format!("{minor}{}", currency.to_uppercase())],
        other => {
            let s = other.to_string();
            let k = match method {
                Some(Method::Email) => normalize::email(&s),
                Some(Method::Phone) => normalize::phone(&s),
                Some(Method::Name) => normalize::family_name(&s).unwrap_or_default(),
                _ => normalize::code(&s),
            };
            if k.is_empty() {
                vec![]
            } else {
                vec![k]
            }
        }
    }
}

fn day_keys(t: DateTime<Utc>, probe: bool) -> Vec<String> {
    let day = t.date_naive();
    if probe {
        [day.pred_opt(), Some(day), day.succ_opt()]
            .into_iter()
            .flatten()
            .map(|d| d.to_string())
            .collect()
    } else {
        vec![day.to_string()]
    }
}

/// Scores `ours` against `theirs` on every comparator both have.
fn score(
    compares: &[Compare],
    w: &[FieldWeights],
    ours: &FieldValues,
    theirs: &FieldValues,
    prior: f64,
) -> Score {
    let mut contributions = Vec::new();
    for (c, fw) in compares.iter().zip(w) {
        let (Some(a), Some(b)) = (ours.get(&c.field), theirs.get(&c.field)) else {
            continue;
        };
        // The best agreement between any of our values and any of theirs.
        let mut best: Option<(Level, &Value, &Value)> = None;
        for x in a {
            for y in b {
                if let Some(l) = c.level(x, y) {
                    if best.is_none_or(|(bl, _, _)| l > bl) {
                        best = Some((l, x, y));
                    }
                }
            }
        }
        if let Some((level, x, y)) = best {
            contributions.push(Contribution {
                field: c.field.clone(),
                level,
                bits: fw.of(level),
                ours: x.to_string(),
                theirs: y.to_string(),
            });
        }
    }
    let weight: f64 = contributions.iter().map(|c| c.bits).sum();
    Score {
        probability: weights::probability(weight, prior),
        weight,
        prior,
        contributions,
        runner_up: None,
    }
}

/// Scores every candidate and turns the weights into probabilities that share one total: at most
/// one candidate is the right one, so two that match equally well get about half each, and
/// neither is taken without a person. Best first.
fn rank(mut scored: Vec<(usize, Score)>) -> Vec<(usize, Score)> {
    let odds = |s: &Score| {
        let p = s.prior.clamp(1e-6, 1.0 - 1e-6);
        (s.weight + (p / (1.0 - p)).log2())
            .clamp(-1000.0, 1000.0)
            .exp2()
    };
    let total: f64 = scored.iter().map(|(_, s)| odds(s)).sum();
    for (_, s) in scored.iter_mut() {
        s.probability = odds(s) / (1.0 + total);
    }
    scored.sort_by(|a, b| b.1.weight.total_cmp(&a.1.weight).then(a.0.cmp(&b.0)));
    let runner = scored.get(1).map(|(_, r)| r.probability);
    if let Some((_, s)) = scored.first_mut() {
        s.runner_up = runner;
    }
    scored
}

/// Whether the runner-up keeps the best from being taken: together they are likely to hold the
/// match, but neither alone is.
fn ambiguous(s: &Score, review: f64) -> Option<f64> {
    s.runner_up
        .filter(|r| s.probability < review && s.probability + r >= review)
}

/// The identifying values of the entities an entity refers to, per evidence item: for each item
/// of a referenced entity, its natural key values (from its evidence, and from its existing row
/// when it is linked to one), under the evidence field names the mapping reads them from.
struct Parents {
    /// Per referenced entity: evidence index → the identifying values of the item holding it.
    by_evidence: Vec<HashMap<usize, std::rc::Rc<FieldValues>>>,
}

impl Parents {
    fn new(
        mapping: &Mapping,
        entity: &Entity,
        evidence: &[Evidence],
        baseline: &Baseline,
        done: &[EntitySet],
        holder: &BTreeMap<String, HashMap<usize, usize>>,
    ) -> Parents {
        let mut by_evidence = Vec::new();
        for spec in entity.columns.values() {
            let Some(target) = &spec.entity else { continue };
            let target = target.get_ref();
            let (Some(set), Some(held), Some((_, parent))) = (
                done.iter().find(|s| &s.entity == target),
                holder.get(target),
                mapping.entities.iter().find(|(k, _)| k.get_ref() == target),
            ) else {
                continue;
            };
            // The natural key columns and the field each reads first.
            let keys: Vec<(String, String)> = parent
                .natural_keys
                .iter()
                .flatten()
                .filter_map(|c| {
                    let (_, spec) = parent
                        .columns
                        .iter()
                        .find(|(k, _)| k.get_ref() == c.get_ref())?;
                    let f = spec.from.as_ref()?.get_ref().names().first()?.to_string();
                    Some((c.get_ref().clone(), f))
                })
                .collect();
            let rows = baseline.entities.get(target);
            let row_index = rows.map(index_rows).unwrap_or_default();
            let mut per_item: Vec<std::rc::Rc<FieldValues>> = Vec::with_capacity(set.items.len());
            for item in &set.items {
                let mut v = FieldValues::new();
                for m in &item.members {
                    let p = project::project_entity(target, parent, &evidence[m.evidence]);
                    for (col, f) in &keys {
                        if let (Some(Proposed::Value { .. }), Some(val)) =
                            (p.columns.get(col), evidence[m.evidence].get(f))
                        {
                            add_values(&mut v, &BTreeMap::from([(f.clone(), vec![val.clone()])]));
                        }
                    }
                }
                if let (Link::Existing { key, .. }, Some(rows)) = (&item.link, rows) {
                    if let Some(&r) = row_index.get(key.as_str()) {
                        for (col, f) in &keys {
                            if let Some(text) = rows
                                .column_index(col)
                                .and_then(|i| rows.rows[r][i].as_deref())
                            {
                                add_values(
                                    &mut v,
                                    &BTreeMap::from([(
                                        f.clone(),
                                        vec![Value::Text(text.to_string())],
                                    )]),
                                );
                            }
                        }
                    }
                }
                per_item.push(std::rc::Rc::new(v));
            }
            by_evidence.push(
                held.iter()
                    .map(|(&e, &k)| (e, per_item[k].clone()))
                    .collect(),
            );
        }
        Parents { by_evidence }
    }

    /// The identifying values of the parents of a group of evidence items, limited to `fields`.
    fn inherited(
        &self,
        members: impl Iterator<Item = usize>,
        fields: &[String],
    ) -> Vec<(String, Value)> {
        let mut out: Vec<(String, Value)> = Vec::new();
        for e in members {
            for map in &self.by_evidence {
                let Some(v) = map.get(&e) else { continue };
                for (f, vals) in v.iter() {
                    if !fields.contains(f) {
                        continue;
                    }
                    for val in vals {
                        if out.len() < 32 && !out.iter().any(|(g, w)| g == f && w == val) {
                            out.push((f.clone(), val.clone()));
                        }
                    }
                }
            }
        }
        out
    }
}

fn reconstruct_entity(
    name: &str,
    entity: &Entity,
    evidence: &[Evidence],
    baseline: &Baseline,
    parents: &Parents,
) -> (EntitySet, Vec<Unmatched>, HashMap<usize, usize>) {
    let compares: Vec<Compare> = entity
        .matching
        .as_ref()
        .map(|m| m.compare.iter().map(Compare::from_mapping).collect())
        .unwrap_or_default();
    let blocking: Vec<Vec<String>> = entity
        .matching
        .as_ref()
        .map(|m| {
            m.blocking
                .iter()
                .map(|s| s.iter().map(|f| f.get_ref().clone()).collect())
                .collect()
        })
        .unwrap_or_default();
    let (accept, review) = entity
        .matching
        .as_ref()
        .map_or((0.97, 0.6), |m| (*m.accept.get_ref(), *m.review.get_ref()));
    let mut fields: Vec<String> = compares.iter().map(|c| c.field.clone()).collect();
    for set in &blocking {
        for f in set {
            if !fields.contains(f) {
                fields.push(f.clone());
            }
        }
    }

    // 1. Mentions.
    let mut mentions: Vec<Mention> = Vec::new();
    for (i, e) in evidence.iter().enumerate() {
        if !project::feeds(entity, e) {
            continue;
        }
        let projection = project::project_entity(name, entity, e);
        if projection.columns.is_empty() {
            continue;
        }
        let keys = identifier_keys(entity, &projection);
        let values = attributable(entity, &fields, e, &projection);
        mentions.push(Mention {
            evidence: i,
            keys,
            values,
        });
    }

    // 2. Exact identifiers.
    let mut groups = Groups((0..mentions.len()).collect());
    let mut first_with: HashMap<&str, usize> = HashMap::new();
    for (i, m) in mentions.iter().enumerate() {
        for k in &m.keys {
            match first_with.get(k.as_str()) {
                Some(&j) => groups.union(i, j),
                None => {
                    first_with.insert(k, i);
                }
            }
        }
    }
    let mut cluster_of_root: BTreeMap<usize, usize> = BTreeMap::new();
    let mut clusters: Vec<Vec<Member>> = Vec::new();
    let mut loose: Vec<usize> = Vec::new();
    for (i, mention) in mentions.iter().enumerate() {
        if mention.keys.is_empty() {
            loose.push(i);
            continue;
        }
        let root = groups.find(i);
        let c = *cluster_of_root.entry(root).or_insert_with(|| {
            clusters.push(Vec::new());
            clusters.len() - 1
        });
        let key = key_display(entity, &mention.keys[0]);
        clusters[c].push(Member {
            evidence: mention.evidence,
            joined: Joined::Identifier { key },
        });
    }
    let mention_of: HashMap<usize, usize> = mentions
        .iter()
        .enumerate()
        .map(|(i, m)| (m.evidence, i))
        .collect();
    let values_of = |e: usize| &mentions[mention_of[&e]].values;
    let mut values: Vec<FieldValues> = clusters
        .iter()
        .map(|members| {
            let mut v = FieldValues::new();
            for m in members {
                add_values(&mut v, values_of(m.evidence));
            }
            v
        })
        .collect();
    // An entity also carries the identifying values of the entities it refers to: a booking
    // whose customer is known by a Stripe customer id is reachable by that id, so a payment
    // made without the booking code still finds it.
    for (c, members) in clusters.iter().enumerate() {
        for (f, v) in parents.inherited(members.iter().map(|m| m.evidence), &fields) {
            add_values(&mut values[c], &BTreeMap::from([(f, vec![v])]));
        }
    }

    // 3. Weights from the identified items, then the loose items scored against the clusters.
    let item_values = |i: usize| mentions[i].values.clone();
    let weights = estimate_weights(&compares, &clusters, &mentions, &mention_of);
    let mut index: HashMap<String, Vec<usize>> = HashMap::new();
    for (c, v) in values.iter().enumerate() {
        for k in block_keys(&blocking, &compares, v, false) {
            let list = index.entry(k).or_default();
            if list.last() != Some(&c) {
                list.push(c);
            }
        }
    }
    let prior = estimate_prior(&clusters, &index, &blocking, &compares, &|e| {
        values_of(e).clone()
    });
    let mut unmatched = Vec::new();
    let mut joins: Vec<(usize, Member)> = Vec::new();
    for &i in &loose {
        let ours = item_values(i);
        let mut candidates: Vec<usize> = block_keys(&blocking, &compares, &ours, true)
            .iter()
            .filter_map(|k| index.get(k))
            .flatten()
            .copied()
            .collect();
        candidates.sort_unstable();
        candidates.dedup();
        let why = |s: String| Unmatched {
            evidence: mentions[i].evidence,
            entity: name.to_string(),
            why: s,
        };
        if candidates.is_empty() {
            unmatched.push(why(format!(
                "carries no {name} identifier and its blocking keys reach no {name}"
            )));
            continue;
        }
        let scored: Vec<(usize, Score)> = candidates
            .iter()
            .map(|&c| (c, score(&compares, &weights, &ours, &values[c], prior)))
            .collect();
        let scored = rank(scored);
        let (best, s) = scored[0].clone();
        if let Some(r) = ambiguous(&s, review) {
            unmatched.push(why(format!(
                "ambiguous: {} ({:.3}) and {} ({r:.3}) match about equally well; a person must choose",
                local_id(name, best),
                s.probability,
                local_id(name, scored[1].0)
            )));
            continue;
        }
        if s.probability < review {
            unmatched.push(why(format!(
                "its best {name} candidate ({}) scores {:.3}, below the review threshold {review}",
                local_id(name, best),
                s.probability
            )));
            continue;
        }
        joins.push((
            best,
            Member {
                evidence: mentions[i].evidence,
                joined: Joined::Score(s),
            },
        ));
    }
    for (c, m) in joins {
        add_values(&mut values[c], values_of(m.evidence));
        clusters[c].push(m);
    }

    // 4. Links to the baseline.
    let rows = baseline.entities.get(name);
    let links = link_all(
        entity, rows, &clusters, &mentions, &values, &compares, &weights, prior,
    );

    // Two groups of evidence linked to the same existing row are that one row: their members
    // join the first group.
    let mut first_for_key: HashMap<String, usize> = HashMap::new();
    let mut merged: Vec<(Vec<Member>, LinkFound)> = Vec::with_capacity(clusters.len());
    for (members, (link, searched)) in clusters.into_iter().zip(links) {
        if let Ok(Link::Existing { key, .. }) = &link {
            if let Some(&into) = first_for_key.get(key) {
                merged[into].0.extend(members);
                continue;
            }
            first_for_key.insert(key.clone(), merged.len());
        }
        merged.push((members, (link, searched)));
    }
    let mut held = HashMap::new();
    let mut items = Vec::with_capacity(merged.len());
    for (c, (mut members, (link, searched))) in merged.into_iter().enumerate() {
        members.sort_by_key(|m| m.evidence);
        for m in &members {
            held.insert(m.evidence, c);
        }
        let mut confidence: f64 = 1.0;
        let mut review_reasons = Vec::new();
        for m in &members {
            if let Joined::Score(s) = &m.joined {
                confidence = confidence.min(s.probability);
                if s.probability < accept {
                    review_reasons.push(format!(
                        "evidence #{} joined with probability {:.3}, below the accept threshold {accept}",
                        m.evidence, s.probability
                    ));
                }
            }
        }
        let (link, could_be, could_be_by_identifier) = match link {
            Ok(l) => (l, Vec::new(), false),
            Err(u) => {
                review_reasons.push(u.why);
                (Link::New, u.rows, u.by_identifier)
            }
        };
        if let Link::Existing {
            by: LinkedBy::Score(s),
            ..
        } = &link
        {
            confidence = confidence.min(s.probability);
            if s.probability < accept {
                review_reasons.push(format!(
                    "linked to an existing row with probability {:.3}, below the accept threshold {accept}",
                    s.probability
                ));
            }
        }
        items.push(Reconstructed {
            local: local_id(name, c),
            members,
            link,
            columns: BTreeMap::new(),
            confidence,
            review: review_reasons,
            could_be,
            could_be_by_identifier,
            searched,
        });
    }
    (
        EntitySet {
            entity: name.to_string(),
            table: entity.table.get_ref().clone(),
            weights,
            prior,
            items,
        },
        unmatched,
        held,
    )
}

/// "booking_code=RCAAA111" for people, from an identifier key.
fn key_display(entity: &Entity, key: &str) -> String {
    let mut parts = key.split('\u{1f}');
    let set: usize = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let columns = entity.natural_keys.get(set);
    parts
        .enumerate()
        .map(|(i, v)| {
            let col = columns
                .and_then(|c| c.get(i))
                .map_or("key", |c| c.get_ref().as_str());
            format!("{col}={v}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn local_id(entity: &str, n: usize) -> String {
    format!("{entity}#{}", n + 1)
}

/// m from consecutive members of identified clusters, u from items of different clusters paired
/// by a fixed stride (deterministic, no random generator).
fn estimate_weights(
    compares: &[Compare],
    clusters: &[Vec<Member>],
    mentions: &[Mention],
    mention_of: &HashMap<usize, usize>,
) -> Vec<FieldWeights> {
    let mut tallies = vec![Tally::default(); compares.len()];
    let tally = |tallies: &mut Vec<Tally>, a: usize, b: usize, same: bool| {
        let (a, b) = (
            &mentions[mention_of[&a]].values,
            &mentions[mention_of[&b]].values,
        );
        for (c, t) in compares.iter().zip(tallies.iter_mut()) {
            let (Some(x), Some(y)) = (
                a.get(&c.field).and_then(|v| v.first()),
                b.get(&c.field).and_then(|v| v.first()),
            ) else {
                continue;
            };
            if let Some(l) = c.level(x, y) {
                if same {
                    t.same[l.index()] += 1;
                } else {
                    t.different[l.index()] += 1;
                }
            }
        }
    };
    let mut pairs = 0;
    'outer: for members in clusters {
        for w in members.windows(2) {
            tally(&mut tallies, w[0].evidence, w[1].evidence, true);
            pairs += 1;
            if pairs > 50_000 {
                break 'outer;
            }
        }
    }
    // Cluster of each identified evidence item, to pair items of different entities.
    let mut cluster_of: HashMap<usize, usize> = HashMap::new();
    for (c, members) in clusters.iter().enumerate() {
        for m in members {
            cluster_of.insert(m.evidence, c);
        }
    }
    let ids: Vec<usize> = mentions
        .iter()
        .map(|m| m.evidence)
        .filter(|e| cluster_of.contains_key(e))
        .collect();
    if ids.len() > 1 {
        let n = ids.len();
        let samples = n.min(50_000);
        for k in 0..samples {
            let a = ids[(k * 7919) % n];
            let b = ids[(k * 7919 + 1 + (k * 104_729) % (n - 1)) % n];
            if cluster_of.get(&a) != cluster_of.get(&b) {
                tally(&mut tallies, a, b, false);
            }
        }
    }
    compares
        .iter()
        .zip(&tallies)
        .map(|(c, t)| FieldWeights::estimate(c, t))
        .collect()
}

/// The chance that a candidate which blocking reaches is the right one: asked of identified items
/// whose entity has other evidence, the share of their candidates that is their own entity.
fn estimate_prior(
    clusters: &[Vec<Member>],
    index: &HashMap<String, Vec<usize>>,
    blocking: &[Vec<String>],
    compares: &[Compare],
    values_of: &dyn Fn(usize) -> FieldValues,
) -> f64 {
    let (mut own, mut total) = (0u64, 0u64);
    let mut asked = 0;
    for (c, members) in clusters.iter().enumerate() {
        if members.len() < 2 {
            continue;
        }
        let v = values_of(members[0].evidence);
        let mut cands: Vec<usize> = block_keys(blocking, compares, &v, true)
            .iter()
            .filter_map(|k| index.get(k))
            .flatten()
            .copied()
            .collect();
        cands.sort_unstable();
        cands.dedup();
        if cands.is_empty() {
            continue;
        }
        own += u64::from(cands.contains(&c));
        total += cands.len() as u64;
        asked += 1;
        if asked >= 20_000 {
            break;
        }
    }
    if total == 0 {
        0.5
    } else {
        (own as f64 / total as f64).clamp(0.01, 0.95)
    }
}

/// Normalised text of a baseline value for an identifier key.
fn row_key(
    entity: &Entity,
    rows: &Rows,
    row: &[Option<Box<str>>],
    set: &[String],
) -> Option<String> {
    let mut key = String::new();
    for col in set {
        let i = rows.column_index(col)?;
        let v = row[i].as_deref()?;
        let k = key_text(column_transform(entity, col), v);
        if k.is_empty() {
            return None;
        }
        key.push('\u{1f}');
        key.push_str(&k);
    }
    Some(key)
}

/// A baseline row's values under the evidence field names the mapping reads them from.
fn row_values(
    entity: &Entity,
    rows: &Rows,
    row: &[Option<Box<str>>],
    compares: &[Compare],
) -> FieldValues {
    let mut out = FieldValues::new();
    for (col, spec) in &entity.columns {
        let Some(field) = spec
            .from
            .as_ref()
            .and_then(|f| f.get_ref().names().first().copied())
        else {
            continue;
        };
        let field = field.to_string();
        if !compares.iter().any(|c| c.field == field) {
            continue;
        }
        let Some(i) = rows.column_index(col.get_ref()) else {
            continue;
        };
        let Some(text) = row[i].as_deref() else {
            continue;
        };
        let v = match spec.transform.as_ref().map(|t| *t.get_ref()) {
            Some(Transform::Time) => match baseline::to_utc(text, None) {
                Some(t) => Value::Time(t),
                None => continue,
            },
            // Money needs its currency column; amounts are left to identifiers.
            Some(Transform::Minor | Transform::Decimal | Transform::Currency) => continue,
            _ => Value::Text(text.to_string()),
        };
        out.insert(field, vec![v]);
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn link_all(
    entity: &Entity,
    rows: Option<&Rows>,
    clusters: &[Vec<Member>],
    mentions: &[Mention],
    values: &[FieldValues],
    compares: &[Compare],
    weights: &[FieldWeights],
    prior: f64,
) -> Vec<LinkFound> {
    let Some(rows) = rows else {
        return clusters.iter().map(|_| (Ok(Link::New), None)).collect();
    };
    let key_col = 0; // the baseline loader puts the key first
    let sets: Vec<Vec<String>> = entity
        .natural_keys
        .iter()
        .map(|s| s.iter().map(|c| c.get_ref().clone()).collect())
        .collect();
    let mut by_key: HashMap<String, usize> = HashMap::new();
    for (r, row) in rows.rows.iter().enumerate() {
        for (i, set) in sets.iter().enumerate() {
            if let Some(k) = row_key(entity, rows, row, set) {
                by_key.entry(format!("{i}{k}")).or_insert(r);
            }
        }
    }
    let mention_of: HashMap<usize, &Mention> = mentions.iter().map(|m| (m.evidence, m)).collect();
    // Blocking against the baseline uses only the sets whose fields are plain columns.
    let fuzzy_sets: Vec<Vec<String>> = entity
        .matching
        .as_ref()
        .map(|m| {
            m.blocking
                .iter()
                .map(|s| s.iter().map(|f| f.get_ref().clone()).collect::<Vec<_>>())
                .filter(|s| {
                    s.iter().all(|f| {
                        entity.columns.iter().any(|(col, c)| {
                            c.from
                                .as_ref()
                                .is_some_and(|fr| fr.get_ref().names()[0] == f)
                                && !entity
                                    .natural_keys
                                    .iter()
                                    .any(|nk| nk.iter().any(|k| k.get_ref() == col.get_ref()))
                        })
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let mut fuzzy_index: Option<HashMap<String, Vec<usize>>> = None;
    let mut out = Vec::with_capacity(clusters.len());
    for (c, members) in clusters.iter().enumerate() {
        let mut found: BTreeMap<usize, String> = BTreeMap::new();
        for m in members {
            let Some(mention) = mention_of.get(&m.evidence) else {
                continue;
            };
            for k in &mention.keys {
                if let Some(&r) = by_key.get(k.as_str()) {
                    found.entry(r).or_insert_with(|| k.clone());
                }
            }
        }
        if found.len() > 1 {
            let keys: Vec<String> = found
                .keys()
                .map(|&r| rows.rows[r][key_col].as_deref().unwrap_or("?").to_string())
                .collect();
            out.push((
                Err(Unlinked {
                    why: format!(
                        "its identifiers point at {} different existing rows ({}); a person must say which",
                        keys.len(),
                        keys.join(", ")
                    ),
                    rows: keys,
                    by_identifier: true,
                }),
                None,
            ));
            continue;
        }
        if let Some((&r, k)) = found.iter().next() {
            let set: usize = k
                .split('\u{1f}')
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            out.push((
                Ok(Link::Existing {
                    key: rows.rows[r][key_col]
                        .as_deref()
                        .unwrap_or_default()
                        .to_string(),
                    by: LinkedBy::Identifier {
                        columns: sets.get(set).cloned().unwrap_or_default(),
                        value: k.split('\u{1f}').skip(1).collect::<Vec<_>>().join(" "),
                    },
                }),
                None,
            ));
            continue;
        }
        if fuzzy_sets.is_empty() {
            out.push((Ok(Link::New), None));
            continue;
        }
        let index = fuzzy_index.get_or_insert_with(|| {
            let mut index: HashMap<String, Vec<usize>> = HashMap::new();
            for (r, row) in rows.rows.iter().enumerate() {
                let v = row_values(entity, rows, row, compares);
                for k in block_keys(&fuzzy_sets, compares, &v, false) {
                    index.entry(k).or_default().push(r);
                }
            }
            index
        });
        let mut hits: Vec<usize> = block_keys(&fuzzy_sets, compares, &values[c], true)
            .iter()
            .filter_map(|k| index.get(k))
            .flatten()
            .copied()
            .collect();
        hits.sort_unstable();
        // Each row once, with how many of the item's blocking keys it shares.
        let mut cands: Vec<(usize, usize)> = Vec::new();
        for r in hits {
            match cands.last_mut() {
                Some((last, n)) if *last == r => *n += 1,
                _ => cands.push((r, 1)),
            }
        }
        let found = cands.len();
        if found > COMPARED_IN_FULL {
            // Those that share the most keys are the likeliest; the rest are not compared, and
            // an item that none of the compared rows is goes to a person, never in as new.
            cands.sort_by_key(|&(r, n)| (std::cmp::Reverse(n), r));
            cands.truncate(COMPARED_IN_FULL);
        }
        let scored: Vec<(usize, Score)> = cands
            .iter()
            .map(|&(r, _)| {
                let theirs = row_values(entity, rows, &rows.rows[r], compares);
                (r, score(compares, weights, &values[c], &theirs, prior))
            })
            .collect();
        let scored = rank(scored);
        let review = entity
            .matching
            .as_ref()
            .map_or(0.6, |m| *m.review.get_ref());
        let link = match scored.first() {
            Some((_, s)) if ambiguous(s, review).is_some() => Err(Unlinked {
                why: format!(
                    "it resembles {} existing rows about equally (best {:.3}); a person must say whether it is one of them",
                    scored.len(),
                    s.probability
                ),
                rows: scored
                    .iter()
                    .take(2)
                    .map(|(r, _)| rows.rows[*r][key_col].as_deref().unwrap_or("?").to_string())
                    .collect(),
                by_identifier: false,
            }),
            Some((r, s)) if s.probability >= review => Ok(Link::Existing {
                key: rows.rows[*r][key_col]
                    .as_deref()
                    .unwrap_or_default()
                    .to_string(),
                by: LinkedBy::Score(s.clone()),
            }),
            _ if found > COMPARED_IN_FULL => Err(Unlinked {
                why: format!(
                    "{found} existing rows share its blocking keys: the {COMPARED_IN_FULL} sharing the most were compared and none is it, the other {} were not compared; a person must say whether it is new (a blocking rule on a rarer field would split the block)",
                    found - COMPARED_IN_FULL
                ),
                rows: Vec::new(),
                by_identifier: false,
            }),
            _ => Ok(Link::New),
        };
        // What the search saw, for saying why an item is new; a linked one says how it linked.
        let searched = (!matches!(link, Ok(Link::Existing { .. }))).then(|| Searched {
            compared: scored.len(),
            closest: scored
                .iter()
                .take(3)
                .map(|(r, s)| {
                    (
                        rows.rows[*r][key_col].as_deref().unwrap_or("?").to_string(),
                        s.probability,
                    )
                })
                .collect(),
        });
        out.push((link, searched));
    }
    out
}

/// How many existing rows an item is compared with at most. Every row that shares a blocking
/// key with it is compared up to this many; beyond, the item is compared with those sharing the
/// most keys, and unless one of them is it, it goes to a person with the count.
const COMPARED_IN_FULL: usize = 10_000;
