//! Evidence seen through the mapping: the simulator's evidence, projected on the reference
//! mapping, proposes values that agree with the truth, and a different schema's mapping shapes
//! the same evidence its own way.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use gapfill::evidence::{field, Collected, Evidence, Provenance, SourceKind, Value, Window};
use gapfill::mapping::project::{project, Proposed};
use gapfill::mapping::transform::ColumnValue;
use gapfill::mapping::Mapping;
use gapfill::sources::{read_all, Inputs};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn value(p: &Proposed) -> String {
    match p {
        Proposed::Value { value, .. } => value.to_string(),
        Proposed::Lookup { value, table, .. } => format!("{table}?{value}"),
        Proposed::Constant(v) => v.to_string(),
    }
}

#[test]
fn the_simulators_evidence_projects_onto_the_reference_mapping() {
    let incident = root().join("fixtures/small-medium");
    let loaded = Mapping::load(&incident.join("mapping.toml")).unwrap();
    let inputs = Inputs {
        stripe: vec![incident.join("evidence/stripe")],
        calendar: vec![incident.join("evidence/calendar")],
        mail: vec![incident.join("evidence/mail/bookings.mbox")],
        ..Inputs::default()
    };
    let mut got = Collected::default();
    tokio::runtime::Runtime::new().unwrap().block_on(read_all(
        &inputs,
        &loaded.mapping.sources,
        &Window::default(),
        &mut got,
    ));
    let mut per_entity: BTreeMap<String, usize> = BTreeMap::new();
    let mut problems = Vec::new();
    let mut codes: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for e in &got.evidence {
        for p in project(&loaded.mapping, e) {
            *per_entity.entry(p.entity.clone()).or_default() += 1;
            problems.extend(p.problems.iter().map(|x| format!("{}: {x}", e.provenance)));
            if p.entity == "reservation" {
                if let Some(code) = p.columns.get("booking_code") {
                    let entry = codes.entry(value(code)).or_default();
                    for (c, v) in &p.columns {
                        entry.entry(c.clone()).or_insert_with(|| value(v));
                    }
                }
            }
        }
    }
    eprintln!("{per_entity:?}\n{}", problems.join("\n"));
    assert!(
        per_entity["reservation"] > 0 && per_entity["customer"] > 0 && per_entity["payment"] > 0
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Every booking code the evidence names is a reservation of the truth.
    let truth = truth_codes(&incident.join("truth.db"));
    for code in codes.keys() {
        assert!(truth.contains(code), "{code} is not in truth.db");
    }
}

/// The booking codes of truth.db, read through sqlx.
fn truth_codes(db: &Path) -> Vec<String> {
    use sqlx::Connection;
    let url = format!("sqlite://{}?mode=ro", db.display());
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query_scalar("SELECT booking_code FROM reservations")
            .fetch_all(&mut conn)
            .await
            .unwrap()
    })
}

#[test]
fn a_different_schema_shapes_the_same_evidence_its_own_way() {
    let loaded =
        Mapping::load(&root().join("tests/fixtures/mapping/other-schema/mapping.toml")).unwrap();
    let mut e = Evidence::new(
        Provenance {
            source: SourceKind::Mail,
            origin: "inbox.mbox".into(),
            locator: "byte 0 <a@b>".into(),
        },
        "confirmation",
    );
    e.set(field::BOOKING_CODE, Value::text("lx-1002"));
    e.set(field::NAME, Value::text("INÊS  SOUSA"));
    e.set(field::EMAIL, Value::text("Ines@Example.PT"));
    e.set(field::PHONE, Value::text("+351 912 345 678"));
    e.set(field::STATUS, Value::text("Booked"));
    e.set(
        field::STARTS_AT,
        Value::Time("2026-07-01T09:00:00Z".parse().unwrap()),
    );
    e.set(
        field::AMOUNT,
        Value::Money {
            minor: 28950,
            currency: "eur".into(),
        },
    );
    e.set(field::LOCATION, Value::text("Lisboa Aeroporto"));
    let projections = project(&loaded.mapping, &e);
    let entities: Vec<&str> = projections.iter().map(|p| p.entity.as_str()).collect();
    // Clients are inserted before the bookings that reference them.
    assert_eq!(entities, ["client", "booking"]);
    let row = |i: usize| -> BTreeMap<String, String> {
        projections[i]
            .columns
            .iter()
            .map(|(c, p)| (c.clone(), value(p)))
            .collect()
    };
    let client = row(0);
    assert_eq!(client["given_name"], "Inês");
    assert_eq!(client["family_name"], "Sousa");
    assert_eq!(client["mail"], "ines@example.pt");
    assert_eq!(client["mobile"], "+351912345678");
    let booking = row(1);
    assert_eq!(booking["ref"], "LX-1002");
    assert_eq!(booking["state"], "open");
    assert_eq!(booking["price"], "289.50");
    assert_eq!(booking["price_ccy"], "EUR");
    assert_eq!(booking["starts_local"], "2026-07-01 10:00:00");
    assert_eq!(booking["branch_no"], "branches?Lisboa Aeroporto");
    assert!(
        !booking.contains_key("client_uuid"),
        "references are matching's to resolve"
    );
    assert!(projections[1].problems.is_empty());
    match &projections[1].columns["starts_local"] {
        Proposed::Value {
            value: ColumnValue::WallClock(_),
            field,
        } => assert_eq!(field, "starts_at"),
        other => panic!("{other:?}"),
    }

    // A status word the vocabulary does not know is a problem the plan can show, not a guess.
    e.set(field::STATUS, Value::text("on hold"));
    let p = project(&loaded.mapping, &e);
    assert!(
        p[1].problems
            .iter()
            .any(|x| x.contains("\"on hold\" is in no list")),
        "{:?}",
        p[1].problems
    );
    assert!(!p[1].columns.contains_key("state"));
}
