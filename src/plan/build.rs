//! From matching's entities to the plan's changes, with decisions.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use super::{
    After, Change, ColumnChange, DecidedBy, Decision, EvidenceRef, Op, Plan, Summary, UnmatchedRef,
    Window, FORMAT, VERSION,
};
use crate::baseline::{to_utc, Baseline};
use crate::evidence::{Evidence, Value};
use crate::mapping::transform::ColumnValue;
use crate::mapping::{ColumnMap, Entity, Mapping, Transform};
use crate::matching::{
    Joined, Link, LinkedBy, Reconstructed, Reconstruction, Resolution, Resolved, Score,
};
use crate::schema::Schema;

/// What planning needs besides matching's result.
pub struct Context<'a> {
    pub mapping: &'a Mapping,
    pub mapping_hash: &'a str,
    pub schema: &'a Schema,
    pub baseline: &'a Baseline,
    pub evidence: &'a [Evidence],
    pub window: crate::evidence::Window,
    /// Recovery: evidence from before the restore point confirms a row and never changes it (it
    /// may be older than the row). A drift check compares a live database with all the window's
    /// evidence, so it turns this off.
    pub overlap_confirms_only: bool,
}

fn instant(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn after_of(v: &ColumnValue) -> After {
    match v {
        ColumnValue::Text(s) => After::Text(s.clone()),
        ColumnValue::Int(i) => After::Int(*i),
        ColumnValue::Decimal(s) => After::Decimal(s.clone()),
        ColumnValue::Instant(t) => After::Instant(instant(*t)),
        ColumnValue::WallClock(t) => After::WallClock(t.format("%Y-%m-%d %H:%M:%S").to_string()),
        ColumnValue::Date(d) => After::Date(d.to_string()),
    }
}

/// A decimal's text without insignificant zeros, so 289.5 and 289.50 compare equal.
fn decimal_key(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

/// Whether the baseline's text `before` already holds `after` (in the baseline's normalisation:
/// instants as UTC, decimals at the column's scale).
fn same_value(before: Option<&str>, after: &After, spec: &ColumnMap) -> bool {
    let Some(b) = before else { return false };
    match after {
        After::Int(i) => b.trim() == i.to_string(),
        After::Decimal(d) => decimal_key(b.trim()) == decimal_key(d),
        After::Instant(t) => to_utc(b, None).map(instant).as_deref() == Some(t.as_str()),
        After::WallClock(w) => {
            let zone = spec.zone.as_ref().and_then(|z| z.get_ref().parse().ok());
            // The baseline converted wall-clock columns to UTC with the same zone.
            to_utc(w, zone).map(instant) == to_utc(b, None).map(instant)
        }
        After::Text(s) | After::Date(s) | After::Key(s) => b == s,
        After::Ref(_) => false,
        After::Now => true,
    }
}

/// Whether the evidence's value says nothing new about the row: the same value, an earlier
/// stage of a lifecycle the row has moved on from (`advances`), the row's name written another
/// way (without accents, shortened, mistyped: see `name_variant`), or the row's international
/// phone number written the local way.
fn agrees(before: Option<&str>, after: &After, spec: &ColumnMap) -> bool {
    if same_value(before, after, spec) {
        return true;
    }
    let (Some(b), After::Text(a)) = (before, after) else {
        return false;
    };
    if let Some(advances) = &spec.advances {
        if advances
            .get_ref()
            .get(a.as_str())
            .is_some_and(|later| later.iter().any(|l| l == b))
        {
            return true;
        }
    }
    let transform = spec.transform.as_ref().map(|t| *t.get_ref());
    if matches!(
        transform,
        Some(Transform::Name | Transform::FirstName | Transform::LastName)
    ) {
        // "Soren Dubois" is "Søren Dubois" typed without the accent, "Rob Garcia" is "Robert
        // Garcia" in short, "Robert Gren" a slip of the keyboard: the row keeps its spelling.
        use crate::matching::normalize::{name_tokens, name_variant};
        if name_tokens(a) == name_tokens(b) {
            // The same letters: accents the row lacks are news, accents it has are kept, also
            // when the evidence dropped only some of them ("Inês Ito" for "Inês Itō").
            return fewer_accents(a, b);
        }
        if name_variant(a, b) {
            return true;
        }
    }
    let is_phone = transform == Some(Transform::Phone);
    if is_phone && b.starts_with('+') && !a.trim_start().starts_with('+') {
        // "0152 94249194" is "+49 152 94249194" without its country code: the national number
        // less its trunk zero ends the international one.
        let national: String = a.chars().filter(char::is_ascii_digit).collect();
        let national = national.trim_start_matches('0');
        let full: String = b.chars().filter(char::is_ascii_digit).collect();
        return national.len() >= 6 && full.ends_with(national);
    }
    false
}

/// Whether `written` is `recorded` with some of its accents dropped and none added: letter by
/// letter the same, or the recorded letter without its accent. Case differences are news.
fn fewer_accents(written: &str, recorded: &str) -> bool {
    let (w, r): (Vec<char>, Vec<char>) = (written.chars().collect(), recorded.chars().collect());
    w != r
        && w.len() == r.len()
        && w.iter().zip(&r).all(|(&wc, &rc)| {
            wc == rc
                || (wc.is_ascii()
                    && !rc.is_ascii()
                    && deunicode::deunicode_char(rc) == Some(wc.encode_utf8(&mut [0; 4])))
        })
}

/// Columns that say who or what a row is rather than what happened to it: natural keys,
/// references to other entities, and people's names, emails and phones. On an existing row a
/// change to one of them is never made without a person.
fn identity_column(entity: &Entity, column: &str, spec: &ColumnMap) -> bool {
    entity
        .natural_keys
        .iter()
        .any(|set| set.iter().any(|c| c.get_ref() == column))
        || spec.entity.is_some()
        || spec
            .transform
            .as_ref()
            .is_some_and(|t| t.get_ref().describes_a_person())
}

fn explain_score(s: &Score) -> String {
    let parts: Vec<String> = s
        .contributions
        .iter()
        .map(|c| {
            format!(
                "{} {:?} ({} vs {}) {:+.1}",
                c.field, c.level, c.ours, c.theirs, c.bits
            )
            .to_lowercase()
        })
        .collect();
    let runner = s
        .runner_up
        .map(|r| format!("; next best {r:.3}"))
        .unwrap_or_default();
    format!(
        "p={:.3} (weight {:+.1} bits, prior {:.3}{runner}): {}",
        s.probability,
        s.weight,
        s.prior,
        parts.join(", ")
    )
}

pub(crate) fn evidence_id(i: usize) -> String {
    format!("e{}", i + 1)
}

fn evidence_ref(e: &Evidence) -> EvidenceRef {
    evidence_ref_with(e, false)
}

/// [`evidence_ref`] of an item no longer needed: its text moves into the reference.
fn evidence_ref_owned(e: Evidence) -> EvidenceRef {
    let hash = e.content_hash();
    EvidenceRef {
        source: e.provenance.source.as_str().to_string(),
        origin: e.provenance.origin,
        locator: e.provenance.locator,
        kind: e.kind,
        observed_at: e.observed_at.map(instant),
        hash,
        fields: e
            .fields
            .into_iter()
            .filter(|(k, _)| !matches!(k.as_str(), "description"))
            .map(|(k, v)| (k, field_text(v)))
            .collect(),
        untrusted: e.untrusted,
    }
}

/// A field as the plan shows it: money in major units with its currency.
fn field_text(v: Value) -> String {
    match v {
        Value::Text(s) => s,
        Value::Money { minor, currency } => format!(
            "{} {currency}",
            crate::money::format_major(minor, &currency)
        ),
        other => other.to_string(),
    }
}

/// `all_fields`: keep free text such as a charge's description, which plans leave out for size
/// but a drift report's ignore rules may select on.
pub(crate) fn evidence_ref_with(e: &Evidence, all_fields: bool) -> EvidenceRef {
    EvidenceRef {
        source: e.provenance.source.as_str().to_string(),
        origin: e.provenance.origin.clone(),
        locator: e.provenance.locator.clone(),
        kind: e.kind.clone(),
        observed_at: e.observed_at.map(instant),
        hash: e.content_hash(),
        fields: e
            .fields
            .iter()
            .filter(|(k, _)| all_fields || !matches!(k.as_str(), "description"))
            .map(|(k, v)| (k.clone(), field_text(v.clone())))
            .collect(),
        untrusted: e.untrusted.clone(),
    }
}

/// Builds the plan, its evidence copied from the context's.
pub fn build(ctx: &Context, rec: Reconstruction) -> Plan {
    let (mut plan, used) = build_changes(ctx, rec);
    plan.evidence = used
        .iter()
        .map(|&i| (evidence_id(i), evidence_ref(&ctx.evidence[i])))
        .collect();
    plan
}

/// Builds the plan without its evidence, and says which evidence items it refers to; the
/// caller adds them ([`take_evidence`] when it no longer needs them itself). Matching's result is
/// freed on the way (at 100,000 reservations this took the peak from 8.1 to 6.7 GiB).
pub fn build_changes(ctx: &Context, rec: Reconstruction) -> (Plan, BTreeSet<usize>) {
    let mapping = ctx.mapping;
    let mut changes: Vec<Change> = Vec::new();
    let mut updates: Vec<Change> = Vec::new();
    let mut used: BTreeSet<usize> = BTreeSet::new();
    let mut unchanged = 0;
    let restore_point = ctx.baseline.restore_point;
    for set in &rec.entities {
        let Some(entity) = mapping.entity(&set.entity) else {
            continue;
        };
        let (accept, review) = entity
            .matching
            .as_ref()
            .map_or((0.97, 0.6), |m| (*m.accept.get_ref(), *m.review.get_ref()));
        let table = ctx.schema.table(entity.table.get_ref());
        let rows = ctx.baseline.entities.get(&set.entity);
        let row_index = rows.map(crate::matching::index_rows).unwrap_or_default();
        for item in &set.items {
            let explanation = explain(item);
            let member_ids: Vec<String> = item
                .members
                .iter()
                .map(|m| evidence_id(m.evidence))
                .collect();
            let ev_ids = |r: &Resolved| {
                r.evidence
                    .iter()
                    .map(|&i| evidence_id(i))
                    .collect::<Vec<_>>()
            };
            let alternatives = |r: &Resolved| {
                r.alternatives
                    .iter()
                    .map(|a| {
                        let ids: Vec<String> = a.evidence.iter().map(|&i| evidence_id(i)).collect();
                        format!("{} ({})", a.value, ids.join(", "))
                    })
                    .collect::<Vec<_>>()
            };
            let mut reasons = item.review.clone();
            for (col, r) in &item.columns {
                if let Some(c) = &r.conflict {
                    reasons.push(format!("{col}: {c}"));
                }
            }
            match &item.link {
                Link::New => {
                    let mut columns = Vec::new();
                    let mut depends_on = Vec::new();
                    let mut missing = Vec::new();
                    for (col, spec) in &entity.columns {
                        let col = col.get_ref();
                        if spec.generate.is_some() {
                            columns.push(ColumnChange {
                                column: col.clone(),
                                before: None,
                                after: After::Now,
                                zone: zone_of(spec),
                                evidence: vec![],
                                alternatives: vec![],
                                inferred: None,
                            });
                            continue;
                        }
                        let Some(r) = item.columns.get(col) else {
                            missing.push(col.clone());
                            continue;
                        };
                        let after = match &r.value {
                            // Empty text is no value: a column is left out, never set to "".
                            Resolution::Value(ColumnValue::Text(t)) if t.trim().is_empty() => {
                                missing.push(format!("{col} (the evidence's value is empty)"));
                                continue;
                            }
                            Resolution::Value(v) => after_of(v),
                            Resolution::Entity(l) => {
                                depends_on.push(l.clone());
                                After::Ref(l.clone())
                            }
                            Resolution::Existing(k) => After::Key(k.clone()),
                            Resolution::Unresolved(why) => {
                                missing.push(format!("{col} ({why})"));
                                continue;
                            }
                        };
                        columns.push(ColumnChange {
                            column: col.clone(),
                            before: None,
                            after,
                            zone: zone_of(spec),
                            evidence: ev_ids(r),
                            alternatives: alternatives(r),
                            inferred: r.inferred.as_ref().map(|i| i.why.clone()),
                        });
                    }
                    // A column the database cannot leave empty and the evidence does not fill.
                    let required: Vec<String> = missing
                        .iter()
                        .filter(|m| {
                            let name = m.split(' ').next().unwrap_or(m);
                            table
                                .and_then(|t| t.column(name))
                                .is_some_and(|c| !c.nullable && !c.has_default)
                        })
                        .cloned()
                        .collect();
                    // A row made from nothing but mail from strangers is theirs to invent.
                    let mut strangers = Vec::new();
                    only_untrusted(ctx, item.members.iter().map(|m| m.evidence), &mut strangers);
                    if !strangers.is_empty() {
                        reasons.push(format!(
                            "made only from evidence that may not change the database by itself: {}",
                            strangers.join("; ")
                        ));
                    }
                    let mut decision = if item.confidence >= accept && reasons.is_empty() {
                        Decision::Accepted
                    } else if item.confidence >= review {
                        Decision::NeedsReview
                    } else {
                        Decision::Rejected
                    };
                    if !required.is_empty() {
                        reasons.push(format!(
                            "no evidence gives {}, which the table requires",
                            required.join(", ")
                        ));
                        decision = Decision::Rejected;
                    }
                    for m in missing.iter().filter(|m| !required.contains(m)) {
                        if m.contains('(') {
                            reasons.push(format!("left empty: {m}"));
                        }
                    }
                    used.extend(item.members.iter().map(|m| m.evidence));
                    changes.push(Change {
                        id: change_id(&set.entity, Op::Insert, item, entity),
                        entity: set.entity.clone(),
                        table: set.table.clone(),
                        op: Op::Insert,
                        key_column: entity.key.get_ref().clone(),
                        local: Some(item.local.clone()),
                        key: None,
                        columns,
                        confidence: round(item.confidence),
                        decision,
                        decided_by: DecidedBy::Auto,
                        reasons,
                        depends_on,
                        explanation,
                        evidence: member_ids,
                    });
                }
                Link::Existing { key, .. } => {
                    let Some(rows) = rows else { continue };
                    let Some(&r) = row_index.get(key.as_str()) else {
                        continue;
                    };
                    let row = &rows.rows[r];
                    let mut state = Vec::new();
                    let mut identity = Vec::new();
                    let mut depends_on = Vec::new();
                    // Why some changed value rests only on evidence that may not change a row
                    // by itself (mail from a stranger), and why some inferred one may not.
                    let mut distrusted: Vec<&str> = Vec::new();
                    let mut moved_on: Vec<String> = Vec::new();
                    for (col, spec) in &entity.columns {
                        let col = col.get_ref();
                        if spec.generate.is_some() || spec.value.is_some() || spec.insert_only {
                            continue;
                        }
                        let Some(res) = item.columns.get(col) else {
                            continue;
                        };
                        // Evidence from before the restore point (the overlap) may be older than
                        // the row: it confirms, it does not change.
                        // A value that time changed is news when that time came after it.
                        let fresh = !ctx.overlap_confirms_only
                            || res.evidence.iter().any(|&i| {
                                ctx.evidence[i]
                                    .observed_at
                                    .zip(restore_point)
                                    .is_none_or(|(at, rp)| at >= rp)
                            })
                            || res
                                .inferred
                                .as_ref()
                                .and_then(|i| i.at)
                                .is_some_and(|at| restore_point.is_none_or(|rp| at >= rp));
                        if !fresh {
                            continue;
                        }
                        let after = match &res.value {
                            // An empty value (a family name a one-word name has not got) says
                            // nothing about the row: it never empties a column.
                            Resolution::Value(ColumnValue::Text(t)) if t.trim().is_empty() => {
                                continue
                            }
                            Resolution::Value(v) => after_of(v),
                            Resolution::Existing(k) => After::Key(k.clone()),
                            Resolution::Entity(l) => {
                                depends_on.push(l.clone());
                                After::Ref(l.clone())
                            }
                            Resolution::Unresolved(_) => continue,
                        };
                        let before = rows.column_index(col).and_then(|i| row[i].as_deref());
                        if agrees(before, &after, spec)
                            || res.inferred.as_ref().is_some_and(|i| {
                                // The row moved on from the evidence's value some other way
                                // (a booking cancelled by phone is not completed).
                                before != Some(i.from.as_str())
                                    && agrees(before, &After::Text(i.from.clone()), spec)
                            })
                        {
                            continue;
                        }
                        let change = ColumnChange {
                            column: col.clone(),
                            before: before.map(str::to_string),
                            after,
                            zone: zone_of(spec),
                            evidence: ev_ids(res),
                            alternatives: alternatives(res),
                            inferred: res.inferred.as_ref().map(|i| i.why.clone()),
                        };
                        // A value time inferred from the evidence's state, over a row that is
                        // in another state: the row moved on in a way the evidence does not
                        // show (cancelled by phone), and only a person can say which is true.
                        if let Some(i) = res.inferred.as_ref().filter(|i| i.at.is_some()) {
                            if before.is_some()
                                && !agrees(before, &After::Text(i.from.clone()), spec)
                            {
                                moved_on.push(format!(
                                    "{col}: the evidence says {}, from which time gives {}, but the row says {}; a person says which is true",
                                    i.from,
                                    change.after.display(),
                                    before.unwrap_or_default()
                                ));
                            }
                        }
                        only_untrusted(ctx, res.evidence.iter().copied(), &mut distrusted);
                        // A value a rule reached, not one evidence states, overwrites a row only
                        // where the mapping lets that rule (invariant 11).
                        if let Some(i) = &res.inferred {
                            if !opted_in(spec, i.rule) {
                                moved_on.push(format!(
                                    "{col}: inferred by {}, which the mapping does not let change a row by itself (auto = true opts in)",
                                    i.rule
                                ));
                            }
                        }
                        if identity_column(entity, col, spec) {
                            identity.push(change);
                        } else {
                            state.push(change);
                        }
                    }
                    if state.is_empty() && identity.is_empty() {
                        unchanged += 1;
                        continue;
                    }
                    used.extend(item.members.iter().map(|m| m.evidence));
                    let now_columns: Vec<ColumnChange> = entity
                        .columns
                        .iter()
                        .filter(|(_, s)| s.generate.is_some())
                        .map(|(c, s)| ColumnChange {
                            column: c.get_ref().clone(),
                            before: rows
                                .column_index(c.get_ref())
                                .and_then(|i| row[i].as_deref())
                                .map(str::to_string),
                            after: After::Now,
                            zone: zone_of(s),
                            evidence: vec![],
                            alternatives: vec![],
                            inferred: None,
                        })
                        .collect();
                    for (part, mut cols) in [("state", state), ("identity", identity)] {
                        if cols.is_empty() {
                            continue;
                        }
                        let mut why = reasons.clone();
                        why.extend(moved_on.iter().cloned());
                        if !distrusted.is_empty() {
                            why.push(format!(
                                "rests only on evidence that may not change a row by itself: {}",
                                distrusted.join("; ")
                            ));
                        }
                        let decision = if part == "identity" {
                            why.push(format!(
                                "changes who this existing row is ({}): a person confirms that",
                                cols.iter()
                                    .map(|c| c.column.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ));
                            Decision::NeedsReview
                        } else if item.confidence >= accept
                            && reasons.is_empty()
                            && distrusted.is_empty()
                            && moved_on.is_empty()
                        {
                            Decision::Accepted
                        } else if item.confidence >= review {
                            Decision::NeedsReview
                        } else {
                            Decision::Rejected
                        };
                        cols.extend(now_columns.iter().cloned());
                        let deps: Vec<String> = depends_on
                            .iter()
                            .filter(|d| cols.iter().any(|c| c.after == After::Ref((*d).clone())))
                            .cloned()
                            .collect();
                        updates.push(Change {
                            id: format!(
                                "{}-{part}",
                                change_id(&set.entity, Op::Update, item, entity)
                            ),
                            entity: set.entity.clone(),
                            table: set.table.clone(),
                            op: Op::Update,
                            key_column: entity.key.get_ref().clone(),
                            local: Some(item.local.clone()),
                            key: Some(key.clone()),
                            columns: cols,
                            confidence: round(item.confidence),
                            decision,
                            decided_by: DecidedBy::Auto,
                            reasons: why,
                            depends_on: deps,
                            explanation: explanation.clone(),
                            evidence: member_ids.clone(),
                        });
                    }
                }
            }
        }
    }
    changes.extend(updates);
    hold_uncertain_links(ctx.mapping, &rec, &mut changes);
    cascade(&mut changes);
    let mut unmatched = Vec::new();
    for u in &rec.unmatched {
        used.insert(u.evidence);
        unmatched.push(UnmatchedRef {
            evidence: evidence_id(u.evidence),
            entity: u.entity.clone(),
            why: u.why.clone(),
        });
    }
    let entities = rec
        .entities
        .iter()
        .map(|s| (s.table.clone(), s.items.len() as u64))
        .collect();
    // Matching's result is as large as the plan's evidence: it goes before they are made.
    drop(rec);
    let mut plan = Plan {
        format: FORMAT.into(),
        version: VERSION,
        id: String::new(),
        mapping_hash: ctx.mapping_hash.to_string(),
        schema_fingerprint: ctx.schema.fingerprint(),
        dialect: format!("{:?}", ctx.schema.dialect).to_lowercase(),
        restore_point: restore_point.map(instant),
        window: Window {
            since: ctx.window.since.map(instant),
            until: ctx.window.until.map(instant),
        },
        summary: Summary {
            evidence: ctx.evidence.len() as u64,
            unchanged,
            ..Summary::default()
        },
        changes,
        evidence: BTreeMap::new(),
        unmatched,
    };
    plan.summary.entities = entities;
    plan.recount();
    (plan, used)
}

/// Adds the evidence the plan refers to, moving it out of `evidence` instead of copying it: the
/// evidence is the largest thing a plan holds, and a plan that is only written out needs it
/// once. Gives what [`build`] gives.
pub fn take_evidence(plan: &mut Plan, used: &BTreeSet<usize>, evidence: Vec<Evidence>) {
    for (i, e) in evidence.into_iter().enumerate() {
        if used.contains(&i) {
            plan.evidence.insert(evidence_id(i), evidence_ref_owned(e));
        }
    }
}

/// An existing row that evidence was linked to only by score, when the link is not certain (below
/// the accept threshold, or the evidence would change who the row is: another email for the
/// customer), is not a safe home for new rows: a reservation given to that customer waits for the
/// same person who confirms the link. A family sharing one phone number must not become one
/// customer.
fn hold_uncertain_links(mapping: &Mapping, rec: &Reconstruction, changes: &mut [Change]) {
    let mut uncertain: BTreeMap<(String, String), String> = BTreeMap::new();
    for set in &rec.entities {
        let accept = mapping
            .entity(&set.entity)
            .and_then(|e| e.matching.as_ref())
            .map_or(0.97, |m| *m.accept.get_ref());
        for item in &set.items {
            let Link::Existing {
                key,
                by: LinkedBy::Score(s),
            } = &item.link
            else {
                continue;
            };
            let identity_change = changes.iter().any(|c| {
                c.op == Op::Update
                    && c.entity == set.entity
                    && c.key.as_deref() == Some(key)
                    && c.id.ends_with("-identity")
            });
            if s.probability < accept || identity_change {
                uncertain.insert(
                    (set.entity.clone(), key.clone()),
                    format!(
                        "its {} is the existing row {key} only by a score of {:.3}{}: a person confirms that link first",
                        set.entity,
                        s.probability,
                        if identity_change { " and a change of who that row is" } else { "" }
                    ),
                );
            }
        }
    }
    if uncertain.is_empty() {
        return;
    }
    for c in changes.iter_mut() {
        let Some(entity) = mapping.entity(&c.entity) else {
            continue;
        };
        let mut held = Vec::new();
        for col in &c.columns {
            let After::Key(k) = &col.after else { continue };
            let Some(target) = entity
                .columns
                .iter()
                .find(|(name, _)| *name.get_ref() == col.column)
                .and_then(|(_, spec)| spec.entity.as_ref())
            else {
                continue;
            };
            if let Some(why) = uncertain.get(&(target.get_ref().clone(), k.clone())) {
                held.push(why.clone());
            }
        }
        if !held.is_empty() && c.decision == Decision::Accepted {
            c.decision = Decision::NeedsReview;
        }
        c.reasons.extend(held);
    }
}

/// A change can be no surer than the inserts it needs: a reservation of a customer under review
/// waits for that review too, however long the chain of references. Decisions only move towards
/// rejected, so the passes end.
pub(crate) fn cascade(changes: &mut [Change]) {
    let mut by_local: HashMap<String, Decision> = HashMap::new();
    loop {
        for c in changes.iter() {
            if c.op == Op::Insert {
                if let Some(l) = &c.local {
                    by_local.insert(l.clone(), c.decision);
                }
            }
        }
        let mut moved = false;
        for c in changes.iter_mut() {
            for d in &c.depends_on {
                let Some(&dd) = by_local.get(d) else { continue };
                if dd > c.decision {
                    c.decision = dd;
                    c.reasons
                        .push(format!("depends on {d}, which is {}", dd.as_str()));
                    moved = true;
                }
            }
        }
        if !moved {
            break;
        }
    }
}

fn zone_of(spec: &ColumnMap) -> Option<String> {
    spec.zone.as_ref().map(|z| z.get_ref().clone())
}

fn round(p: f64) -> f64 {
    (p * 10_000.0).round() / 10_000.0
}

/// Stable across runs: the entity's natural key values when it has them, else its first
/// evidence's content hash.
fn change_id(name: &str, op: Op, item: &Reconstructed, entity: &Entity) -> String {
    let mut basis = format!("{name}|{op:?}|");
    if let Link::Existing { key, .. } = &item.link {
        basis += key;
    } else {
        let mut found = false;
        for set in &entity.natural_keys {
            let vals: Vec<String> = set
                .iter()
                .filter_map(|c| match item.columns.get(c.get_ref()).map(|r| &r.value) {
                    Some(Resolution::Value(v)) => Some(v.to_string()),
                    _ => None,
                })
                .collect();
            if vals.len() == set.len() {
                basis += &vals.join("|");
                found = true;
                break;
            }
        }
        if !found {
            basis += &item.local;
        }
    }
    format!(
        "{}-{}",
        name.chars().take(4).collect::<String>(),
        crate::evidence::stable_hash(basis.as_bytes())
    )
}

/// Whether the column's rule `rule` may change an existing row without review.
fn opted_in(spec: &crate::mapping::ColumnMap, rule: &str) -> bool {
    match rule {
        "when_past" => spec.when_past.as_ref().is_some_and(|r| r.get_ref().auto),
        "adds" => spec.adds.as_ref().is_some_and(|r| r.get_ref().auto),
        "by_amounts" => spec.by_amounts.as_ref().is_some_and(|r| r.get_ref().auto),
        // A phone placed in a country changes who the row is: a person confirms it anyway.
        _ => false,
    }
}

/// When every one of these evidence items may not change a row by itself, adds why (each reason
/// once) to `why`; nothing when any of them may, or there are none.
fn only_untrusted<'e>(
    ctx: &Context<'e>,
    items: impl Iterator<Item = usize>,
    why: &mut Vec<&'e str>,
) {
    let reasons: Option<Vec<&'e str>> = items
        .map(|i| ctx.evidence[i].untrusted.as_deref())
        .collect();
    for w in reasons.unwrap_or_default() {
        if !why.contains(&w) {
            why.push(w);
        }
    }
}

fn explain(item: &Reconstructed) -> Vec<String> {
    let mut out = Vec::new();
    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in &item.members {
        match &m.joined {
            Joined::Identifier { key } => by_key
                .entry(key.clone())
                .or_default()
                .push(evidence_id(m.evidence)),
            Joined::Score(s) => out.push(format!(
                "{} joined by score: {}",
                evidence_id(m.evidence),
                explain_score(s)
            )),
        }
    }
    for (k, ids) in by_key.into_iter().rev() {
        out.insert(0, format!("{} share the identifier {k}", ids.join(", ")));
    }
    match &item.link {
        Link::New => out.push(match &item.searched {
            None => "no existing row has its identifiers: a new row".into(),
            Some(s) if s.compared == 0 => {
                "no existing row has its identifiers or shares a blocking key with it: a new row"
                    .into()
            }
            Some(s) => format!(
                "no existing row has its identifiers, and none of the {} it was compared with (rows sharing a blocking key) resembles it enough (closest: {}): a new row",
                s.compared,
                s.closest
                    .iter()
                    .map(|(k, p)| format!("{k} p={p:.3}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
        Link::Existing { key, by } => match by {
            LinkedBy::Identifier { columns, value } => out.push(format!(
                "the existing row {key} has the same {} ({value})",
                columns.join(", ")
            )),
            LinkedBy::Score(s) => out.push(format!(
                "linked to the existing row {key} by score: {}",
                explain_score(s)
            )),
        },
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::DecidedBy;

    fn insert(local: &str, decision: Decision, depends_on: &[&str]) -> Change {
        Change {
            id: format!("id-{local}"),
            entity: "e".into(),
            table: "t".into(),
            op: Op::Insert,
            key_column: "id".into(),
            local: Some(local.into()),
            key: None,
            columns: vec![],
            confidence: 1.0,
            decision,
            decided_by: DecidedBy::Auto,
            reasons: vec![],
            depends_on: depends_on.iter().map(|d| d.to_string()).collect(),
            explanation: vec![],
            evidence: vec![],
        }
    }

    /// A chain of references longer than any fixed number of passes: the doubt at its root
    /// reaches its end, whatever order the changes are in.
    #[test]
    fn a_doubt_reaches_the_end_of_a_long_chain() {
        let mut changes: Vec<Change> = (0..8)
            .map(|i| {
                let deps: Vec<String> = if i == 0 {
                    vec![]
                } else {
                    vec![format!("n{}", i - 1)]
                };
                let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
                let decision = if i == 0 {
                    Decision::NeedsReview
                } else {
                    Decision::Accepted
                };
                insert(&format!("n{i}"), decision, &deps)
            })
            .rev()
            .collect();
        cascade(&mut changes);
        for c in &changes {
            assert_eq!(c.decision, Decision::NeedsReview, "{}", c.id);
        }
        let last = changes.iter().find(|c| c.id == "id-n7").unwrap();
        assert_eq!(last.reasons, vec!["depends on n6, which is needs review"]);
    }

    #[test]
    fn a_name_with_fewer_accents_is_the_rows_name() {
        assert!(fewer_accents("Ines Ito", "Inês Itō"));
        assert!(fewer_accents("Inês Ito", "Inês Itō"));
        assert!(fewer_accents("Ines Itō", "Inês Itō"));
        // Accents the row lacks are news; so is another accent, and another letter.
        assert!(!fewer_accents("Inês Itō", "Ines Ito"));
        assert!(!fewer_accents("Inès Itō", "Inês Itō"));
        assert!(!fewer_accents("Inês Itu", "Inês Itō"));
        assert!(!fewer_accents("Inês Itō", "Inês Itō"));
    }

    #[test]
    fn a_rejected_insert_rejects_what_needs_it_and_nothing_else() {
        let mut changes = vec![
            insert("customer#1", Decision::Rejected, &[]),
            insert("customer#2", Decision::Accepted, &[]),
            insert("reservation#1", Decision::Accepted, &["customer#1"]),
            insert("reservation#2", Decision::NeedsReview, &["customer#2"]),
        ];
        cascade(&mut changes);
        let d: Vec<Decision> = changes.iter().map(|c| c.decision).collect();
        assert_eq!(
            d,
            vec![
                Decision::Rejected,
                Decision::Accepted,
                Decision::Rejected,
                Decision::NeedsReview
            ]
        );
    }
}
