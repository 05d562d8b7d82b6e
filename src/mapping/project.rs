//! Evidence seen through a mapping: which entities an item describes, and the column values it
//! proposes for each (the "mapping" step between evidence and matching).
//!
//! A projection holds what one item says on its own. Values that need other rows — a lookup of an
//! existing row's key, a reference to another entity's row — are left as requests for matching
//! and planning to resolve; values made at apply time (`generate`) are not projected at all.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};

use super::transform::{self, ColumnValue};
use super::{ColumnMap, Entity, Mapping};
use crate::evidence::{Evidence, Value};

/// What one evidence item proposes for one column.
#[derive(Clone, Debug, PartialEq)]
pub enum Proposed {
    /// A value ready for the column, and the evidence field it came from.
    Value { value: ColumnValue, field: String },
    /// The key (or the `returns` column) of the existing row of `table` whose `columns` match
    /// `value`.
    Lookup {
        table: String,
        columns: Vec<String>,
        returns: Option<String>,
        value: String,
        field: String,
    },
    /// A constant from the mapping.
    Constant(toml::Value),
}

/// One item as one entity: the values it proposes, and what could not be used and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Projection {
    pub entity: String,
    pub columns: BTreeMap<String, Proposed>,
    /// Fields present but unusable for a column ("transform email cannot use …"), for the plan's
    /// explanations.
    pub problems: Vec<String>,
}

/// Whether the entity takes evidence of this source and kind (`feeds`; no `feeds` takes all).
pub fn feeds(entity: &Entity, evidence: &Evidence) -> bool {
    if entity.feeds.is_empty() {
        return true;
    }
    entity
        .feeds
        .iter()
        .find(|(source, _)| source.get_ref() == evidence.provenance.source.as_str())
        .is_some_and(|(_, kinds)| {
            kinds
                .iter()
                .any(|k| k.get_ref() == "*" || *k.get_ref() == evidence.kind)
        })
}

/// The projections of `evidence` on every entity it feeds and says something about, in the
/// mapping's insertion order.
pub fn project(mapping: &Mapping, evidence: &Evidence) -> Vec<Projection> {
    mapping
        .insertion_order()
        .into_iter()
        .filter_map(|name| {
            let entity = mapping.entity(name)?;
            if !feeds(entity, evidence) {
                return None;
            }
            let p = project_entity(name, entity, evidence);
            (!p.columns.is_empty()).then_some(p)
        })
        .collect()
}

/// The projection of `evidence` on one entity (without asking whether the entity takes it).
pub fn project_entity(name: &str, entity: &Entity, evidence: &Evidence) -> Projection {
    let mut columns = BTreeMap::new();
    let mut problems = Vec::new();
    for (column, spec) in &entity.columns {
        match propose(spec, evidence) {
            Ok(Some(p)) => {
                columns.insert(column.get_ref().clone(), p);
            }
            Ok(None) => {}
            Err(why) => problems.push(format!("{}: {why}", column.get_ref())),
        }
    }
    // A constant alone says nothing about this item.
    if columns.values().all(|p| matches!(p, Proposed::Constant(_))) {
        columns.clear();
    }
    Projection {
        entity: name.to_string(),
        columns,
        problems,
    }
}

/// The first of `names` the evidence has.
fn first_field<'e>(names: &[&str], evidence: &'e Evidence) -> Option<(String, &'e Value)> {
    names
        .iter()
        .find_map(|n| evidence.get(n).map(|v| (n.to_string(), v)))
}

fn propose(spec: &ColumnMap, evidence: &Evidence) -> Result<Option<Proposed>, String> {
    // A column's own precedence list names the only sources it takes values from.
    let source = evidence.provenance.source.as_str();
    if !spec.precedence.is_empty() && !spec.precedence.iter().any(|s| s.get_ref() == source) {
        return Ok(None);
    }
    if !spec.kinds.is_empty() && !spec.kinds.iter().any(|k| *k.get_ref() == evidence.kind) {
        return Ok(None);
    }
    if let Some(v) = &spec.value {
        return Ok(Some(Proposed::Constant(v.get_ref().clone())));
    }
    if let Some(l) = &spec.lookup {
        let names = l.from.get_ref().names_for(source);
        let Some((field, value)) = first_field(&names, evidence) else {
            return Ok(None);
        };
        return Ok(Some(Proposed::Lookup {
            table: l.table.get_ref().clone(),
            columns: l
                .match_columns
                .iter()
                .map(|c| c.get_ref().clone())
                .collect(),
            returns: l.returns.as_ref().map(|r| r.get_ref().clone()),
            value: value.to_string(),
            field,
        }));
    }
    let Some(from) = &spec.from else {
        // entity references and generated values are not the evidence's to give.
        return Ok(None);
    };
    let names = from.get_ref().names_for(source);
    if let Some(vocabulary) = &spec.values {
        // The first of the named fields whose word the vocabulary knows: a mail's `status` may
        // be schema.org's, its `kind` the booking system's.
        let mut unknown = Vec::new();
        for name in &names {
            let Some(value) = evidence.get(name) else {
                continue;
            };
            let text = value.to_string();
            // "http://schema.org/ReservationCancelled" is the word after the last slash.
            let word = text.trim().rsplit('/').next().unwrap_or("").trim();
            let found = vocabulary
                .get_ref()
                .iter()
                .find(|(_, words)| words.iter().any(|w| w.eq_ignore_ascii_case(word)));
            match found {
                Some((db_value, _)) => {
                    return Ok(Some(Proposed::Value {
                        value: ColumnValue::Text(db_value.clone()),
                        field: name.to_string(),
                    }))
                }
                None => unknown.push(format!("{name} \"{word}\"")),
            }
        }
        return if unknown.is_empty() {
            Ok(None)
        } else {
            Err(format!(
                "{} is in no list of the column's `values`",
                unknown.join(", ")
            ))
        };
    }
    let Some((field, value)) = first_field(&names, evidence) else {
        return Ok(None);
    };
    let zone = spec.zone.as_ref().and_then(|z| z.get_ref().parse().ok());
    let localised;
    let value = match (&spec.zone_from, value) {
        (Some(zf), Value::Text(text)) => {
            localised = Value::Time(local_time(text, zf.get_ref(), evidence)?);
            &localised
        }
        _ => value,
    };
    let value = match &spec.transform {
        Some(t) => transform::apply(*t.get_ref(), value, zone).map_err(|e| e.to_string())?,
        None => match value {
            Value::Text(s) => ColumnValue::Text(s.clone()),
            Value::Int(i) => ColumnValue::Int(*i),
            Value::Time(t) => ColumnValue::Instant(*t),
            Value::Date(d) => ColumnValue::Date(*d),
            other => ColumnValue::Text(other.to_string()),
        },
    };
    Ok(Some(Proposed::Value { value, field }))
}

/// A wall-clock time written without an offset, read in the zone the evidence's `zone_field`
/// names. A time the clocks skip (a DST gap) is an error, not a guess; of a time that happens
/// twice, the first.
fn local_time(text: &str, zone_field: &str, evidence: &Evidence) -> Result<DateTime<Utc>, String> {
    let zone_name = evidence
        .get(zone_field)
        .map(|z| z.to_string())
        .ok_or_else(|| {
            format!("\"{text}\" has no offset and the evidence has no `{zone_field}` to read it in")
        })?;
    let zone: chrono_tz::Tz = zone_name
        .trim()
        .parse()
        .map_err(|_| format!("`{zone_field}` \"{zone_name}\" is not an IANA time zone"))?;
    let t = text.trim();
    let naive = [
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
    .ok_or_else(|| format!("\"{t}\" is not a date and time (YYYY-MM-DD HH:MM)"))?;
    zone.from_local_datetime(&naive)
        .earliest()
        .map(|l| l.with_timezone(&Utc))
        .ok_or_else(|| format!("\"{t}\" does not exist in {zone_name}: the clocks skip it"))
}
