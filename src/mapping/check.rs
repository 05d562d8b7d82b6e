//! Finding what is wrong with a mapping before any matching runs: first its shape on its own
//! ([`shape`]), then against the live schema ([`against`]). Every problem is located in the file
//! and says what to do.

use toml::Spanned;

use super::{
    parse_duration, ColumnMap, Entity, Fields, Locator, Mapping, Method, Name, NewKey, Problem,
    Severity, Transform, WhenPast, SOURCE_KINDS,
};
use crate::schema::{Schema, Table, TypeClass};

struct Report<'a> {
    locator: &'a Locator,
    problems: Vec<Problem>,
}

impl Report<'_> {
    fn error<T>(&mut self, at: &Spanned<T>, message: String) {
        self.problems.push(
            self.locator
                .problem(at.span().start, Severity::Error, message),
        );
    }

    fn warning<T>(&mut self, at: &Spanned<T>, message: String) {
        self.problems.push(
            self.locator
                .problem(at.span().start, Severity::Warning, message),
        );
    }
}

/// "did you mean …?" for a misspelt name, when one candidate is close.
fn suggest<'a>(wrong: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    let best = candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(wrong, c), c))
        .filter(|(score, _)| *score > 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((_, c)) => format!(" (did you mean \"{c}\"?)"),
        None => String::new(),
    }
}

/// Checks that need no database: versions, references between entities, thresholds, durations,
/// zones, source names, and that each column says where its value comes from exactly once.
pub fn shape(m: &Mapping, locator: &Locator) -> Vec<Problem> {
    let mut r = Report {
        locator,
        problems: Vec::new(),
    };
    if *m.version.get_ref() != 1 {
        r.error(
            &m.version,
            format!(
                "mapping version {} is not supported; this gapfill reads version 1",
                m.version.get_ref()
            ),
        );
    }
    if m.restore_point.columns.is_empty() {
        r.problems.push(locator.problem(
            0,
            Severity::Error,
            "restore_point.columns is empty; name the timestamp columns (table.column) whose newest value marks the backup".into(),
        ));
    }
    for c in &m.restore_point.columns {
        if c.get_ref().split_once('.').is_none() {
            r.error(
                c,
                format!(
                    "\"{}\" is not table.column; write the table and the column, as in \"reservations.updated_at\"",
                    c.get_ref()
                ),
            );
        }
    }
    if let Some(o) = &m.restore_point.overlap {
        duration(&mut r, o);
    }
    source_names(&mut r, &m.precedence.default);
    let entity_names: Vec<&str> = m.entities.keys().map(|k| k.get_ref().as_str()).collect();
    for (name, e) in &m.entities {
        entity_shape(&mut r, name, e, &entity_names);
    }
    cycles(&mut r, m);
    r.problems
}

/// `from = []` (or a source given no field) would read nothing: say so here, not fail later.
fn some_field(r: &mut Report, from: &super::OneOrMany) {
    let empty = match from.get_ref() {
        Fields::One(n) => n.trim().is_empty(),
        Fields::Many(v) => v.is_empty() || v.iter().any(|n| n.trim().is_empty()),
        Fields::PerSource(m) => m.is_empty() || m.values().any(|f| f.names().is_empty()),
    };
    if empty {
        r.error(
            from,
            "`from` names no evidence field; give one (\"email\") or several, most preferred first ([\"email\", \"receipt_email\"])".into(),
        );
    }
}

fn duration(r: &mut Report, d: &Spanned<String>) {
    if parse_duration(d.get_ref()).is_none() {
        r.error(
            d,
            format!(
                "\"{}\" is not a duration; write a number and a unit: \"90m\", \"6h\", \"2d\", \"1w\" (at most {} days)",
                d.get_ref(),
                crate::evidence::MAX_DURATION_DAYS
            ),
        );
    }
}

fn when_past(r: &mut Report, e: &Entity, c: &ColumnMap, w: &Spanned<WhenPast>) {
    let rule = w.get_ref();
    let time = rule.column.get_ref();
    match e.column(time) {
        None => r.error(
            &rule.column,
            format!(
                "`when_past` names column \"{time}\", which this entity does not map{}; name one of its time columns",
                suggest(time, e.columns.keys().map(|k| k.get_ref().as_str()))
            ),
        ),
        Some(t) => {
            if !t.is_time() {
                r.error(
                    &rule.column,
                    format!("`when_past` needs a time: column \"{time}\" has no `transform = \"time\"` (or \"date\")"),
                );
            }
        }
    }
    match &c.values {
        None => r.error(
            w,
            "`when_past` turns one status value into another; it needs the column's `values` to say which they are".into(),
        ),
        Some(v) => named_values(r, "when_past", w, v, rule.turns.iter().flat_map(|(a, b)| [a, b])),
    }
    if rule.turns.is_empty() {
        r.error(
            w,
            "`when_past` needs `turns = { <value> = \"<value it becomes>\" }`".into(),
        );
    }
    if let Some(g) = &rule.grace {
        duration(r, g);
    }
}

/// A rule that names status values (`advances`, `when_past`, `by_amounts`) names only the
/// column's own `values`.
fn named_values<'a, T>(
    r: &mut Report,
    key: &str,
    at: &Spanned<T>,
    values: &Spanned<std::collections::BTreeMap<String, Vec<String>>>,
    named: impl IntoIterator<Item = &'a String>,
) {
    for value in named {
        if !values.get_ref().contains_key(value) {
            r.error(
                at,
                format!(
                    "`{key}` names \"{value}\", which is not one of the column's `values` ({})",
                    values
                        .get_ref()
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
    }
}

fn source_names(r: &mut Report, names: &[Name]) {
    for s in names {
        if !SOURCE_KINDS.contains(&s.get_ref().as_str()) {
            r.error(
                s,
                format!(
                    "unknown source \"{}\"{}; sources are {}",
                    s.get_ref(),
                    suggest(s.get_ref(), SOURCE_KINDS),
                    SOURCE_KINDS.join(", ")
                ),
            );
        }
    }
}

fn entity_shape(r: &mut Report, name: &Name, e: &Entity, entities: &[&str]) {
    for source in e.feeds.keys() {
        source_names(r, std::slice::from_ref(source));
    }
    for (col, c) in &e.columns {
        let given = [
            c.from.is_some(),
            c.value.is_some(),
            c.entity.is_some(),
            c.lookup.is_some(),
            c.generate.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if given != 1 {
            r.error(
                col,
                format!(
                    "column \"{}\" of entity \"{}\" must say where its value comes from exactly once (one of from, value, entity, lookup, generate); it gives {given}",
                    col.get_ref(),
                    name.get_ref()
                ),
            );
        }
        if let Some(target) = &c.entity {
            if !entities.contains(&target.get_ref().as_str()) {
                r.error(
                    target,
                    format!(
                        "entity \"{}\" is not defined in this mapping{}; define [entities.{}] or use a lookup",
                        target.get_ref(),
                        suggest(target.get_ref(), entities.iter().copied()),
                        target.get_ref()
                    ),
                );
            }
        }
        if let Some(t) = &c.transform {
            if c.from.is_none() && c.lookup.is_none() {
                r.error(
                    t,
                    format!(
                        "transform \"{}\" needs a value to work on; add `from = \"<evidence field>\"`",
                        t.get_ref().as_str()
                    ),
                );
            }
        }
        if let Some(z) = &c.zone {
            if z.get_ref().parse::<chrono_tz::Tz>().is_err() {
                r.error(
                    z,
                    format!(
                        "\"{}\" is not an IANA time zone; write a name such as \"Europe/Berlin\" or \"America/Los_Angeles\"",
                        z.get_ref()
                    ),
                );
            }
        }
        if let Some(l) = &c.lookup {
            some_field(r, &l.from);
        }
        if let Some(from) = &c.from {
            some_field(r, from);
            if let Fields::PerSource(m) = from.get_ref() {
                for source in m.keys() {
                    if !SOURCE_KINDS.contains(&source.as_str()) {
                        r.error(
                            from,
                            format!(
                                "\"{source}\" is not a source kind; `from` per source names {}",
                                SOURCE_KINDS.join(", ")
                            ),
                        );
                    }
                }
            }
        }
        if let Some(z) = &c.zone_from {
            if !c.is_time() {
                r.error(
                    z,
                    "`zone_from` names the zone of a wall-clock time; it needs `transform = \"time\"` (or \"date\")".into(),
                );
            }
        }
        if let (Some(a), None) = (&c.advances, &c.values) {
            r.error(
                a,
                "`advances` is a lifecycle between status values; it needs the column's `values` to say which they are".into(),
            );
        }
        if let (Some(a), Some(v)) = (&c.advances, &c.values) {
            let named = a
                .get_ref()
                .iter()
                .flat_map(|(from, to)| std::iter::once(from).chain(to));
            named_values(r, "advances", a, v, named);
        }
        if let Some(w) = &c.when_past {
            when_past(r, e, c, w);
        }
        if let Some(a) = &c.adds {
            let is_minor = c
                .transform
                .as_ref()
                .is_some_and(|t| *t.get_ref() == Transform::Minor);
            if !is_minor {
                r.error(
                    a,
                    "`adds` sums amounts in minor units; it needs `transform = \"minor\"`".into(),
                );
            }
            if a.get_ref().kinds.is_empty() {
                r.error(
                    a,
                    "`adds` needs `kinds = [\"<evidence kind>\"]`: which items add to the total"
                        .into(),
                );
            }
        }
        if let Some(b) = &c.by_amounts {
            let rule = b.get_ref();
            for col in [&rule.total, &rule.part] {
                if e.column(col.get_ref()).is_none() {
                    r.error(
                        col,
                        format!(
                            "`by_amounts` names column \"{}\", which this entity does not map{}",
                            col.get_ref(),
                            suggest(
                                col.get_ref(),
                                e.columns.keys().map(|k| k.get_ref().as_str())
                            )
                        ),
                    );
                }
            }
            if let Some(v) = &c.values {
                named_values(r, "by_amounts", b, v, [&rule.none, &rule.some, &rule.all]);
            }
        }
        let is_phone = c
            .transform
            .as_ref()
            .is_some_and(|t| *t.get_ref() == Transform::Phone);
        if let Some(region) = &c.region {
            if !is_phone {
                r.error(region, "`region` is the country of phone numbers written without one; it needs `transform = \"phone\"`".into());
            } else if region
                .get_ref()
                .to_ascii_uppercase()
                .parse::<phonenumber::country::Id>()
                .is_err()
            {
                r.error(
                    region,
                    format!(
                        "\"{}\" is not a country phone numbers know; write an ISO 3166 code such as \"PT\" or \"US\"",
                        region.get_ref()
                    ),
                );
            }
        }
        if let Some(l) = &c.region_from {
            if !is_phone {
                r.error(&l.table, "`region_from` finds the country of phone numbers written without one; it needs `transform = \"phone\"`".into());
            }
            if l.returns.is_none() {
                r.error(
                    &l.table,
                    "`region_from` needs `returns = \"<the table's country column>\"`".into(),
                );
            }
        }
        source_names(r, &c.precedence);
    }
    if let Some(m) = &e.matching {
        let (accept, review) = (*m.accept.get_ref(), *m.review.get_ref());
        for (t, v) in [(&m.accept, accept), (&m.review, review)] {
            if !(0.0..=1.0).contains(&v) {
                r.error(
                    t,
                    format!("threshold {v} is not a probability; use a number from 0 to 1"),
                );
            }
        }
        if review > accept {
            r.error(
                &m.review,
                format!(
                    "review threshold {review} is above the accept threshold {accept}: nothing could ever go to review; make review lower than accept"
                ),
            );
        }
        if m.blocking.is_empty() || m.blocking.iter().any(Vec::is_empty) {
            r.error(
                name,
                format!(
                    "entity \"{}\" has an empty blocking rule; every rule names at least one evidence field, or matching would compare everything with everything",
                    name.get_ref()
                ),
            );
        }
        // A field that blocks but is not compared puts items side by side and then gives their
        // agreement on it no weight: what only it would link is never linked.
        let mut warned: Vec<&str> = Vec::new();
        for f in m.blocking.iter().flatten() {
            let field = f.get_ref().as_str();
            if warned.contains(&field) || m.compare.iter().any(|c| c.field.get_ref() == field) {
                continue;
            }
            warned.push(field);
            r.warning(
                f,
                format!(
                    "blocking field \"{field}\" of entity \"{}\" is not in `compare`: items that share it are put side by side and then scored without it, so sharing it counts for nothing; add {{ field = \"{field}\", method = \"exact\" }} (or the method that fits) to `compare`",
                    name.get_ref()
                ),
            );
        }
        for c in &m.compare {
            match (c.method.get_ref(), &c.within) {
                (Method::Time, None) => r.error(
                    &c.method,
                    "method \"time\" needs `within`, the largest difference that still agrees (\"2h\")".into(),
                ),
                (_, Some(w)) => duration(r, w),
                _ => {}
            }
        }
    }
}

fn cycles(r: &mut Report, m: &Mapping) {
    let order = m.insertion_order();
    for (i, name) in order.iter().enumerate() {
        let e = m
            .entities
            .iter()
            .find(|(k, _)| k.get_ref() == name)
            .expect("from the map");
        for c in e.1.columns.values() {
            if let Some(target) = &c.entity {
                let later = order[i + 1..].contains(&target.get_ref().as_str());
                if later && target.get_ref() != name {
                    r.error(
                        target,
                        format!(
                            "entities \"{name}\" and \"{}\" reference each other in a cycle; new rows could not be inserted in any order. Make one side a lookup or leave it out",
                            target.get_ref()
                        ),
                    );
                }
            }
        }
    }
}

/// Checks against the live schema: tables and columns exist, values fit the column types,
/// lookups resolve, required columns are filled, vocabularies use allowed values.
pub fn against(m: &Mapping, locator: &Locator, schema: &Schema) -> Vec<Problem> {
    let mut r = Report {
        locator,
        problems: Vec::new(),
    };
    let tables: Vec<&str> = schema.tables.keys().map(String::as_str).collect();
    let find_table = |r: &mut Report, name: &Name| -> Option<&Table> {
        let t = schema.table(name.get_ref());
        if t.is_none() {
            r.error(
                name,
                format!(
                    "table \"{}\" is not in the database{}; tables are: {}",
                    name.get_ref(),
                    suggest(name.get_ref(), tables.iter().copied()),
                    tables.join(", ")
                ),
            );
        }
        t
    };
    for c in &m.restore_point.columns {
        let Some((t, col)) = c.get_ref().split_once('.') else {
            continue;
        };
        let Some(table) = schema.table(t) else {
            r.error(
                c,
                format!(
                    "table \"{t}\" is not in the database{}",
                    suggest(t, tables.iter().copied())
                ),
            );
            continue;
        };
        match table.column(col) {
            None => unknown_column(&mut r, c, col, table),
            Some(column) if !time_like(column.class) => r.error(
                c,
                format!(
                    "{t}.{col} is {} ({}), not a timestamp; the restore point is read from timestamp columns",
                    column.class.describe(),
                    column.declared
                ),
            ),
            Some(_) => {}
        }
    }
    for (name, e) in &m.entities {
        let Some(table) = find_table(&mut r, &e.table) else {
            continue;
        };
        entity_against(&mut r, m, schema, name, e, table);
    }
    r.problems.sort_by_key(|p| (p.line, p.column));
    r.problems
}

fn unknown_column(r: &mut Report, at: &Name, col: &str, table: &Table) {
    let names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
    r.error(
        at,
        format!(
            "column \"{col}\" is not in table {}{}; its columns are: {}",
            table.name,
            suggest(col, names.iter().copied()),
            names.join(", ")
        ),
    );
}

/// SQLite keeps instants as text; the servers have timestamp types.
fn time_like(class: TypeClass) -> bool {
    matches!(
        class,
        TypeClass::Timestamp { .. } | TypeClass::Text | TypeClass::Date
    )
}

fn entity_against(
    r: &mut Report,
    m: &Mapping,
    schema: &Schema,
    name: &Name,
    e: &Entity,
    table: &Table,
) {
    let key = table.column(e.key.get_ref());
    match key {
        None => unknown_column(r, &e.key, e.key.get_ref(), table),
        Some(k) => {
            if e.new_key == NewKey::Database && !k.has_default {
                r.error(
                    &e.key,
                    format!(
                        "{}.{} has no default, sequence or auto-increment, so the database cannot make new keys; set new_key = \"uuid\" or \"increment\"",
                        table.name, k.name
                    ),
                );
            }
            if e.new_key == NewKey::Increment && k.class != TypeClass::Integer {
                r.error(
                    &e.key,
                    format!(
                        "new_key = \"increment\" needs an integer key, and {}.{} is {}; use \"uuid\" or \"database\"",
                        table.name, k.name, k.declared
                    ),
                );
            }
        }
    }
    for set in &e.natural_keys {
        for c in set {
            if table.column(c.get_ref()).is_none() {
                unknown_column(r, c, c.get_ref(), table);
            }
        }
    }
    for (col, c) in &e.columns {
        let Some(column) = table.column(col.get_ref()) else {
            unknown_column(r, col, col.get_ref(), table);
            continue;
        };
        column_against(r, m, schema, table, column, c);
    }
    // A required column nobody fills would make every insert fail at apply time.
    for column in &table.columns {
        let mapped = e.columns.keys().any(|k| k.get_ref() == &column.name);
        let is_key = column.name == *e.key.get_ref();
        if !column.nullable && !column.has_default && !mapped && !is_key {
            r.error(
                name,
                format!(
                    "{}.{} is NOT NULL without a default, and entity \"{}\" does not map it: new rows could not be inserted; add [entities.{}.columns.{}]",
                    table.name,
                    column.name,
                    name.get_ref(),
                    name.get_ref(),
                    column.name
                ),
            );
        }
    }
}

fn column_against(
    r: &mut Report,
    m: &Mapping,
    schema: &Schema,
    table: &Table,
    column: &crate::schema::Column,
    c: &ColumnMap,
) {
    let here = format!("{}.{}", table.name, column.name);
    if let Some(t) = &c.transform {
        if !fits(*t.get_ref(), column.class) {
            let hint = match (t.get_ref(), column.class) {
                (Transform::Minor, TypeClass::Decimal { .. }) => {
                    "; for a decimal money column use transform = \"decimal\""
                }
                (Transform::Decimal, TypeClass::Integer) => {
                    "; for money in minor units (cents) use transform = \"minor\""
                }
                _ => "",
            };
            r.error(
                t,
                format!(
                    "transform \"{}\" gives values that do not fit {here}, which is {} ({}){hint}",
                    t.get_ref().as_str(),
                    column.class.describe(),
                    column.declared
                ),
            );
        }
        if let (Some(z), TypeClass::Timestamp { zoned: true }) = (&c.zone, column.class) {
            r.warning(
                z,
                format!("{here} stores instants with their offset; `zone` is not needed there and is ignored"),
            );
        }
    }
    if let Some(values) = &c.values {
        if !column.values.is_empty() {
            for v in values.get_ref().keys() {
                if !column.values.contains(v) {
                    r.error(
                        values,
                        format!(
                            "\"{v}\" is not an allowed value of {here}{}; allowed: {}",
                            suggest(v, column.values.iter().map(String::as_str)),
                            column.values.join(", ")
                        ),
                    );
                }
            }
        }
    }
    if let Some(v) = &c.value {
        if let toml::Value::String(s) = v.get_ref() {
            if !column.values.is_empty() && !column.values.contains(s) {
                r.error(
                    v,
                    format!(
                        "\"{s}\" is not an allowed value of {here}; allowed: {}",
                        column.values.join(", ")
                    ),
                );
            }
        }
    }
    if let Some(target) = &c.entity {
        if let Some((_, te)) = m
            .entities
            .iter()
            .find(|(k, _)| k.get_ref() == target.get_ref())
        {
            if let Some(fk) = table.foreign_key(&column.name) {
                if fk.table != *te.table.get_ref() {
                    r.error(
                        target,
                        format!(
                            "{here} references table {}, but entity \"{}\" is table {}; point it at the entity for {}",
                            fk.table,
                            target.get_ref(),
                            te.table.get_ref(),
                            fk.table
                        ),
                    );
                }
            }
        }
    }
    if let Some(l) = &c.region_from {
        lookup_table(r, l, schema);
    }
    if let Some(l) = &c.lookup {
        let Some(lt) = lookup_table(r, l, schema) else {
            return;
        };
        if let Some(fk) = table.foreign_key(&column.name) {
            if fk.table != lt.name {
                r.error(
                    &l.table,
                    format!(
                        "{here} references table {}, but the lookup reads table {}; look up in {}",
                        fk.table, lt.name, fk.table
                    ),
                );
            }
        }
    }
    if let Some(g) = &c.guess {
        r.warning(
            g,
            format!(
                "unconfirmed guess for {here}: {}; check it and delete the `guess` line",
                g.get_ref()
            ),
        );
    }
}

fn lookup_table<'s>(r: &mut Report, l: &super::Lookup, schema: &'s Schema) -> Option<&'s Table> {
    let Some(lt) = schema.table(l.table.get_ref()) else {
        let tables: Vec<&str> = schema.tables.keys().map(String::as_str).collect();
        r.error(
            &l.table,
            format!(
                "lookup table \"{}\" is not in the database{}; the lookup cannot resolve",
                l.table.get_ref(),
                suggest(l.table.get_ref(), tables.iter().copied())
            ),
        );
        return None;
    };
    if l.match_columns.is_empty() {
        r.error(
            &l.table,
            "a lookup needs at least one column in `match` to compare the evidence value with"
                .into(),
        );
    }
    for mc in &l.match_columns {
        if lt.column(mc.get_ref()).is_none() {
            unknown_column(r, mc, mc.get_ref(), lt);
        }
    }
    match &l.returns {
            Some(ret) if lt.column(ret.get_ref()).is_none() => {
                unknown_column(r, ret, ret.get_ref(), lt)
            }
            None if lt.primary_key.len() != 1 => r.error(
                &l.table,
                format!(
                    "table {} has no single-column primary key; say which column the lookup returns with `returns`",
                    lt.name
                ),
            ),
            _ => {}
        }
    Some(lt)
}

/// Whether a transform's values can be stored in a column of this class.
fn fits(t: Transform, class: TypeClass) -> bool {
    use TypeClass as C;
    match t {
        Transform::Text
        | Transform::Email
        | Transform::Phone
        | Transform::Name
        | Transform::FirstName
        | Transform::LastName
        | Transform::Upper
        | Transform::Currency => matches!(class, C::Text | C::Enum | C::Other),
        Transform::Minor => matches!(
            class,
            C::Integer
                | C::Decimal {
                    scale: None | Some(0)
                }
        ),
        Transform::Decimal => matches!(class, C::Decimal { .. } | C::Float | C::Text),
        Transform::Time => matches!(class, C::Timestamp { .. } | C::Text),
        Transform::Date => matches!(class, C::Date | C::Text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape check of a mapping whose customer entity has `columns` (TOML) besides a key.
    fn problems(columns: &str, restore: &str) -> Vec<String> {
        let text = format!(
            "version = 1\n[restore_point]\ncolumns = [\"customers.updated_at\"]\n{restore}\n\
             [entities.customer]\ntable = \"customers\"\nkey = \"id\"\n{columns}\n\
             [entities.customer.columns.updated_at]\ngenerate = \"now\"\n"
        );
        // Mapping::parse runs this check and refuses a mapping with errors: take them from it.
        match Mapping::parse(std::path::Path::new("m.toml"), &text) {
            Ok(_) => vec![],
            Err(super::super::MappingError::Invalid(problems)) => problems
                .into_iter()
                .filter(|p| p.severity == Severity::Error)
                .map(|p| p.to_string())
                .collect(),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn a_blocking_field_that_is_not_compared_is_a_warning_at_its_place() {
        let text = "version = 1\n[restore_point]\ncolumns = [\"customers.updated_at\"]\n\
             [entities.customer]\ntable = \"customers\"\nkey = \"id\"\n\
             [entities.customer.columns.email]\nfrom = \"email\"\n\
             [entities.customer.match]\nblocking = [[\"email\"], [\"postcode\", \"email\"]]\n\
             compare = [{ field = \"email\", method = \"email\" }]\naccept = 0.9\nreview = 0.5\n";
        let loaded = Mapping::parse(std::path::Path::new("m.toml"), text).unwrap();
        let warnings: Vec<String> = shape(&loaded.mapping, &loaded.locator)
            .into_iter()
            .filter(|p| p.severity == Severity::Warning)
            .map(|p| p.to_string())
            .collect();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].starts_with("m.toml:10:25:"), "{warnings:?}");
        assert!(
            warnings[0].contains("\"postcode\" of entity \"customer\" is not in `compare`"),
            "{warnings:?}"
        );
    }

    #[test]
    fn a_plain_mapping_has_no_errors() {
        let got = problems(
            "[entities.customer.columns.email]\nfrom = [\"email\", \"receipt_email\"]\ntransform = \"email\"",
            "overlap = \"1d\"",
        );
        assert!(got.is_empty(), "{got:?}");
    }

    #[test]
    fn a_field_that_reads_nothing_is_an_error_at_its_place() {
        for from in ["[]", "\"\"", "{}", "{ mail = [] }"] {
            let got = problems(
                &format!("[entities.customer.columns.email]\nfrom = {from}"),
                "overlap = \"1d\"",
            );
            assert_eq!(got.len(), 1, "{from}: {got:?}");
            assert!(got[0].starts_with("m.toml:9:"), "{from}: {got:?}");
            assert!(
                got[0].contains("names no evidence field"),
                "{from}: {got:?}"
            );
        }
    }

    #[test]
    fn durations_beyond_a_century_or_chronos_range_are_errors() {
        for overlap in [
            "36526d",
            "5219w",
            "9999999999999w",
            "99999999999999999999s",
            "-1d",
        ] {
            let got = problems(
                "[entities.customer.columns.email]\nfrom = \"email\"",
                &format!("overlap = \"{overlap}\""),
            );
            assert_eq!(got.len(), 1, "{overlap}: {got:?}");
            assert!(got[0].contains("is not a duration"), "{overlap}: {got:?}");
        }
        let got = problems(
            "[entities.customer.columns.email]\nfrom = \"email\"",
            "overlap = \"36525d\"",
        );
        assert!(got.is_empty(), "{got:?}");
    }
}
