//! `gapfill init`: a first draft of a mapping, guessed from the live schema.
//!
//! During an outage nobody has time to write a mapping from nothing. The draft is guessed from
//! table and column names, types, keys and constraints, and every guess carries a `guess` line
//! saying what was assumed, which `check` reports until a person deletes it.

use std::fmt::Write;

use crate::evidence::field;
use crate::schema::{Column, Schema, Table, TypeClass};

/// Tables gapfill itself creates, and migration bookkeeping, are never entities.
fn is_bookkeeping(name: &str) -> bool {
    name.starts_with("_gapfill")
        || name.starts_with("_sqlx")
        || name == "schema_migrations"
        || name == "__diesel_schema_migrations"
}

fn has_word(name: &str, words: &[&str]) -> bool {
    let n = name.to_ascii_lowercase();
    n.split(|c: char| !c.is_ascii_alphanumeric())
        .any(|part| words.contains(&part))
        || words.iter().any(|w| n == *w)
}

fn is_money(c: &Column) -> bool {
    let n = c.name.to_ascii_lowercase();
    (n.ends_with("_minor")
        || n.ends_with("_cents")
        || has_word(&n, &["amount", "total", "price", "refunded"]))
        && matches!(c.class, TypeClass::Integer | TypeClass::Decimal { .. })
}

fn is_status(c: &Column) -> bool {
    has_word(&c.name, &["status", "state"])
}

/// A table is an entity to rebuild when evidence can speak of its rows: it holds people (an
/// email), or a lifecycle (a status). Other referenced tables (locations, vehicles) are reference
/// data that lookups find rows in.
fn is_entity(t: &Table) -> bool {
    t.columns
        .iter()
        .any(|c| has_word(&c.name, &["email"]) || is_status(c))
}

/// A column that holds instants: a timestamp type, or text named like one (SQLite has no type).
fn looks_like_time(c: &Column) -> bool {
    let n = c.name.to_ascii_lowercase();
    matches!(c.class, TypeClass::Timestamp { .. })
        || (c.class == TypeClass::Text
            && (n.ends_with("_at")
                || n.ends_with("_time")
                || n.ends_with("_local")
                || n.ends_with("_utc")
                || has_word(&n, &["date", "time", "timestamp"])))
}

fn is_change_time(n: &str) -> bool {
    n.contains("updated") || n.contains("modified") || n.contains("changed")
}

fn singular(table: &str) -> String {
    let t = table.to_ascii_lowercase();
    if let Some(stem) = t.strip_suffix("ies") {
        format!("{stem}y")
    } else if let Some(stem) = t.strip_suffix("ses") {
        format!("{stem}s")
    } else if let Some(stem) = t.strip_suffix('s') {
        stem.to_string()
    } else {
        t
    }
}

fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The columns of a reference table that a person or a document would name it by.
fn naming_columns(t: &Table) -> Vec<String> {
    let mut cols: Vec<String> = t
        .unique
        .iter()
        .filter(|u| u.len() == 1)
        .map(|u| u[0].clone())
        .filter(|c| {
            t.column(c)
                .is_some_and(|c| matches!(c.class, TypeClass::Text))
        })
        .collect();
    for c in &t.columns {
        if has_word(&c.name, &["name", "title", "label", "plate", "code"])
            && matches!(c.class, TypeClass::Text)
            && !cols.contains(&c.name)
        {
            cols.push(c.name.clone());
        }
    }
    cols
}

/// The evidence field a reference table's name would come from.
fn lookup_field(fk_column: &str, target: &Table) -> &'static str {
    let n = format!("{} {}", fk_column, target.name).to_ascii_lowercase();
    if n.contains("vehicle")
        || n.contains("car")
        || target.columns.iter().any(|c| c.name == "plate")
    {
        field::PLATE
    } else {
        field::LOCATION
    }
}

/// What a column's value most likely comes from: (lines of the column table, the guess said).
fn guess_column(c: &Column) -> (String, String) {
    let n = c.name.to_ascii_lowercase();
    let mut out = String::new();
    let guess: String;
    let time = looks_like_time(c);
    let zone_line = |out: &mut String| {
        if c.class == (TypeClass::Timestamp { zoned: false }) {
            out.push_str("zone = \"UTC\"\n");
        }
    };
    if has_word(&n, &["email", "mail"]) {
        let _ = writeln!(out, "from = {}\ntransform = \"email\"", q(field::EMAIL));
        guess = "an email address".into();
    } else if has_word(&n, &["phone", "mobile", "tel", "telephone"]) {
        let _ = writeln!(out, "from = {}\ntransform = \"phone\"", q(field::PHONE));
        guess = "a phone number".into();
    } else if n.contains("first_name") || n.contains("given_name") || n == "forename" {
        let _ = writeln!(out, "from = {}\ntransform = \"first_name\"", q(field::NAME));
        guess = "the given name of the person's full name".into();
    } else if n.contains("last_name") || n.contains("family_name") || n == "surname" {
        let _ = writeln!(out, "from = {}\ntransform = \"last_name\"", q(field::NAME));
        guess = "the family name of the person's full name".into();
    } else if n == "name" || n.contains("full_name") || n.contains("customer_name") {
        let _ = writeln!(out, "from = {}\ntransform = \"name\"", q(field::NAME));
        guess = "a person's full name".into();
    } else if n.contains("stripe") && n.contains("customer") {
        let _ = writeln!(out, "from = {}", q(field::CUSTOMER_ID));
        guess = "the Stripe customer id".into();
    } else if n.contains("stripe") && (n.contains("intent") || n.contains("pi_")) {
        let _ = writeln!(out, "from = {}", q(field::PAYMENT_INTENT_ID));
        guess = "the Stripe payment intent id".into();
    } else if n.contains("stripe") && n.contains("charge") {
        let _ = writeln!(out, "from = {}", q(field::CHARGE_ID));
        guess = "the Stripe charge id".into();
    } else if (n.contains("code") || n.contains("reference") || n.contains("confirmation"))
        && c.class == TypeClass::Text
    {
        let _ = writeln!(
            out,
            "from = {}\ntransform = \"upper\"",
            q(field::BOOKING_CODE)
        );
        guess = "a booking reference".into();
    } else if is_status(c) {
        let _ = writeln!(out, "from = {}", q(field::STATUS));
        if !c.values.is_empty() {
            out.push_str("values = { ");
            let pairs: Vec<String> = c
                .values
                .iter()
                .map(|v| format!("{} = [{}]", q(v), q(v)))
                .collect();
            out.push_str(&pairs.join(", "));
            out.push_str(" }\n");
        }
        guess = "the source's status words; list the words that mean each value".into();
    } else if n == "currency" || n.ends_with("_currency") {
        let _ = writeln!(out, "from = {}\ntransform = \"currency\"", q(field::AMOUNT));
        guess = "the currency of the amount".into();
    } else if is_money(c) {
        let from = if n.contains("refund") {
            field::REFUNDED
        } else {
            field::AMOUNT
        };
        let transform = if c.class == TypeClass::Integer {
            "minor"
        } else {
            "decimal"
        };
        let _ = writeln!(out, "from = {}\ntransform = \"{transform}\"", q(from));
        guess = format!(
            "money in {}",
            if transform == "minor" {
                "minor units (cents)"
            } else {
                "major units"
            }
        );
    } else if time && is_change_time(&n) {
        out.push_str("generate = \"now\"\n");
        zone_line(&mut out);
        guess = "set to the time of apply".into();
    } else if time {
        let from = if n.contains("pickup")
            || n.contains("start")
            || n.contains("begin")
            || n.starts_with("from")
        {
            field::STARTS_AT
        } else if n.contains("return")
            || n.contains("end")
            || n.contains("until")
            || n.contains("dropoff")
        {
            field::ENDS_AT
        } else if n.contains("refund") {
            field::REFUNDED_AT
        } else {
            field::CREATED
        };
        let _ = writeln!(out, "from = {}\ntransform = \"time\"", q(from));
        zone_line(&mut out);
        guess = if c.class == (TypeClass::Timestamp { zoned: false }) {
            "an instant; the column has no zone, so confirm the zone its times are in".into()
        } else {
            "an instant".into()
        };
    } else {
        let _ = writeln!(out, "from = {}", q(&c.name));
        guess = format!(
            "no evidence field is known for this {} column; name the field it comes from, or give a constant with `value`",
            c.class.describe()
        );
    }
    (out, guess)
}

/// Drafts a mapping for every table of `schema` that looks like something evidence describes.
pub fn draft(schema: &Schema, source_url: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# A draft mapping written by `gapfill init` from {source_url}.\n\
         # Every `guess` line is an assumption nobody has confirmed: check it, fix what is wrong and\n\
         # delete the line. `gapfill check` lists the ones left. The format: docs/mapping.md.\n\
         version = 1\n"
    );
    let entity_tables: Vec<&Table> = schema
        .tables
        .values()
        .filter(|t| !is_bookkeeping(&t.name) && is_entity(t))
        .collect();
    let entity_of = |table: &str| {
        entity_tables
            .iter()
            .find(|t| t.name == table)
            .map(|t| singular(&t.name))
    };
    // The columns that change with every write say best when the backup was made; creation
    // times will do; failing both, any instant.
    let mut restore: Vec<String> = Vec::new();
    for pick in [
        &(|n: &str| is_change_time(n)) as &dyn Fn(&str) -> bool,
        &|n: &str| n.contains("created"),
        &|_: &str| true,
    ] {
        for t in &entity_tables {
            for c in &t.columns {
                if looks_like_time(c) && pick(&c.name.to_ascii_lowercase()) {
                    restore.push(format!("{}.{}", t.name, c.name));
                }
            }
        }
        if !restore.is_empty() {
            break;
        }
    }
    out.push_str("[restore_point]\n# The newest of these values in the restored backup is taken as the moment it was made.\n");
    let _ = writeln!(
        out,
        "columns = [{}]\noverlap = \"1d\"\n",
        restore.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ")
    );
    out.push_str(
        "[precedence]\n# Most trusted source first, for fields the sources disagree on.\ndefault = [\"stripe\", \"mail\", \"calendar\", \"csv\"]\n\n",
    );
    for t in &entity_tables {
        let entity = singular(&t.name);
        let key = t
            .primary_key
            .first()
            .cloned()
            .unwrap_or_else(|| "id".into());
        let key_col = t.column(&key);
        let new_key = match key_col {
            Some(c) if c.has_default => "database",
            Some(c) if c.class == TypeClass::Integer => "increment",
            _ => "uuid",
        };
        let _ = writeln!(
            out,
            "[entities.{entity}]\ntable = {}\nkey = {}\nnew_key = \"{new_key}\"",
            q(&t.name),
            q(&key)
        );
        let natural: Vec<String> = t
            .unique
            .iter()
            .filter(|u| {
                u.iter().all(|c| {
                    t.column(c).is_some_and(|c| {
                        let n = c.name.to_ascii_lowercase();
                        has_word(&n, &["email"])
                            || n.contains("code")
                            || n.contains("reference")
                            || n.contains("stripe")
                    })
                })
            })
            .map(|u| {
                format!(
                    "[{}]",
                    u.iter().map(|c| q(c)).collect::<Vec<_>>().join(", ")
                )
            })
            .collect();
        let _ = writeln!(out, "natural_keys = [{}]", natural.join(", "));
        out.push_str("# Which evidence describes this entity: source → evidence kinds (\"*\" for all).\nfeeds = { stripe = [\"*\"], mail = [\"*\"], calendar = [\"*\"], csv = [\"*\"] }\n\n");
        let mut blocking: Vec<String> = Vec::new();
        let mut compare: Vec<String> = Vec::new();
        for c in &t.columns {
            if c.name == key {
                continue;
            }
            let _ = writeln!(out, "[entities.{entity}.columns.{}]", toml_key(&c.name));
            if let Some(fk) = t.foreign_key(&c.name) {
                if let Some(target) = entity_of(&fk.table) {
                    let _ = writeln!(out, "entity = {}", q(&target));
                    let _ = writeln!(
                        out,
                        "guess = {}\n",
                        q(&format!("the {target} this row belongs to"))
                    );
                } else if let Some(target) = schema.table(&fk.table) {
                    let cols = naming_columns(target);
                    let from = lookup_field(&c.name, target);
                    let _ = writeln!(
                        out,
                        "lookup = {{ table = {}, match = [{}], from = {} }}",
                        q(&target.name),
                        cols.iter().map(|c| q(c)).collect::<Vec<_>>().join(", "),
                        q(from)
                    );
                    let _ = writeln!(
                        out,
                        "guess = {}\n",
                        q(&format!(
                            "the {} row named by the evidence's {from}",
                            target.name
                        ))
                    );
                }
                continue;
            }
            let (lines, guess) = guess_column(c);
            out.push_str(&lines);
            let _ = writeln!(out, "guess = {}\n", q(&guess));
            let n = c.name.to_ascii_lowercase();
            let is_unique = t.unique.iter().any(|u| u.len() == 1 && u[0] == c.name);
            let field_of = |lines: &str| {
                lines
                    .lines()
                    .find_map(|l| l.strip_prefix("from = "))
                    .map(str::to_string)
            };
            if let Some(f) = field_of(&lines) {
                if is_unique
                    && (n.contains("code") || n.contains("stripe") || has_word(&n, &["email"]))
                {
                    blocking.push(format!("[{f}]"));
                }
                let method = if has_word(&n, &["email"]) {
                    Some("email")
                } else if has_word(&n, &["phone"]) {
                    Some("phone")
                } else if n.contains("name") {
                    Some("name")
                } else if is_unique && n.contains("code") {
                    Some("exact")
                } else if lines.contains("\"time\"") && f.contains(field::STARTS_AT) {
                    Some("time")
                } else if lines.contains("\"minor\"") || lines.contains("\"decimal\"") {
                    Some("amount")
                } else {
                    None
                };
                if let Some(m) = method {
                    let within = if m == "time" { ", within = \"2h\"" } else { "" };
                    compare.push(format!("  {{ field = {f}, method = \"{m}\"{within} }},"));
                }
            }
        }
        if blocking.is_empty() {
            blocking.push(format!("[{}]", q(field::NAME)));
        }
        let _ = writeln!(
            out,
            "[entities.{entity}.match]\n# Evidence is compared only within a block: items that agree on all fields of one set.\nblocking = [{}]\ncompare = [\n{}\n]\naccept = 0.95\nreview = 0.6\n",
            blocking.join(", "),
            compare.join("\n")
        );
    }
    out
}

/// A column name as a TOML key: bare when it can be.
fn toml_key(name: &str) -> String {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        name.to_string()
    } else {
        q(name)
    }
}
