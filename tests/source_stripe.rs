//! Stripe API JSON dumps and dashboard CSV exports (`--stripe PATH`): fixture folders under
//! tests/fixtures/stripe/ with the evidence expected from them, the mapping part for the
//! reference schema, and the simulator's Stripe folder accounted for object by object.

mod common;
mod sources_support;

use std::collections::BTreeMap;

use gapfill::evidence::{SkipReason, Value};
use gapfill::sources::stripe::{read, StripeRules};
use sources_support::{check, fixture_dirs, window, Recorder};

#[test]
fn fixtures_give_the_expected_evidence_and_skips() {
    for dir in fixture_dirs("stripe") {
        let mut rec = Recorder::new(&dir);
        let stats = read(&dir, &StripeRules::default(), &window(&dir), &mut rec).unwrap();
        assert_eq!(
            stats.items(),
            rec.evidence.len() + rec.skips.len(),
            "{}: the stats count what the sink got",
            dir.display()
        );
        assert_eq!(stats.evidence, rec.evidence.len());
        let got = format!(
            "{}# files={} objects={} rows={} evidence={} skipped={:?}\n",
            rec.lines.concat(),
            stats.files,
            stats.objects,
            stats.rows,
            stats.evidence,
            stats.skipped
        );
        check(&dir, &got);
    }
}

fn car_rental_rules() -> StripeRules {
    gapfill::mapping::Mapping::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings/car-rental.toml"),
    )
    .expect("the reference mapping reads")
    .mapping
    .sources
    .stripe
}

#[test]
fn the_mapping_part_finds_codes_in_metadata_first_then_in_descriptions() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("charges.json"),
        r#"{"object":"list","data":[
          {"id":"ch_1","object":"charge","amount":100,"currency":"eur","created":1787300000,"description":"Reservation RC-AAAAAA – Fiat","metadata":{"booking_code":"RC-BBBBBB"}},
          {"id":"ch_2","object":"charge","amount":100,"currency":"eur","created":1787300000,"description":"Reservation RC-CCCCCC – change supplement","metadata":{}},
          {"id":"ch_3","object":"charge","amount":100,"currency":"eur","created":1787300000,"description":"Car rental – Fiat","metadata":{}}]}"#,
    )
    .unwrap();
    let mut rec = Recorder::new(dir.path());
    read(
        dir.path(),
        &car_rental_rules(),
        &Default::default(),
        &mut rec,
    )
    .unwrap();
    let codes: Vec<Option<&str>> = rec
        .evidence
        .iter()
        .map(|e| e.text("booking_code"))
        .collect();
    assert_eq!(codes, [Some("RC-BBBBBB"), Some("RC-CCCCCC"), None]);
}

/// `gapfill evidence --stripe <incident>/evidence/stripe`, as the library does it: every object
/// of every dump and every row of the CSV export is accounted for, every Stripe locator of the
/// answer key is among them, and what the charges say agrees with truth.db.
#[tokio::test]
async fn the_simulators_stripe_folder_is_accounted_for_and_agrees_with_the_truth() {
    use sqlx::{Connection, Row, SqliteConnection};

    let (_tmp, incident) = common::incident(11, 150, "medium");
    let dir = incident.join("evidence/stripe");
    let mut rec = Recorder::new(&dir);
    let stats = read(&dir, &car_rental_rules(), &Default::default(), &mut rec).unwrap();

    // Count the input independently of the source.
    let mut objects = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "json") {
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            objects += v["data"].as_array().unwrap().len();
        }
    }
    let rows = csv::Reader::from_path(dir.join("payments.csv"))
        .unwrap()
        .records()
        .count();
    assert!(
        objects > 300 && rows > 100,
        "{objects} objects, {rows} rows"
    );
    assert_eq!((stats.objects, stats.rows), (objects, rows));
    assert_eq!(stats.items(), objects + rows, "{stats:?}");
    assert_eq!(rec.evidence.len() + rec.skips.len(), objects + rows);
    // Each row of the export is a charge already read from charges.json; nothing else is skipped.
    let expected_skips: BTreeMap<SkipReason, usize> = [(SkipReason::Duplicate, rows)].into();
    assert_eq!(
        stats.skipped,
        expected_skips,
        "{:#?}",
        &rec.skips[..3.min(rec.skips.len())]
    );
    assert_eq!(stats.evidence, objects);

    // Every Stripe locator of the answer key names an item that was read.
    let mut read_items = std::collections::HashSet::new();
    for p in rec
        .evidence
        .iter()
        .map(|e| &e.provenance)
        .chain(rec.skips.iter().map(|s| &s.provenance))
    {
        let file = p.origin.rsplit('/').next().unwrap();
        let locator = match p.locator.strip_prefix("line ") {
            Some(n) => format!("{file}:{n}"),
            None => p.locator.clone(),
        };
        read_items.insert(locator);
    }
    let mut manifest = csv::Reader::from_path(incident.join("manifest.csv")).unwrap();
    let mut checked = 0;
    for m in manifest.records() {
        let m = m.unwrap();
        if &m[2] == "stripe" {
            assert!(
                read_items.contains(&m[3]),
                "manifest locator {} not read",
                &m[3]
            );
            checked += 1;
        }
    }
    assert!(checked > 500, "{checked}");

    // The charges agree with the payments in the truth: amount, currency, refunds, status, code.
    let by_charge: BTreeMap<&str, &gapfill::evidence::Evidence> = rec
        .evidence
        .iter()
        .filter(|e| e.kind == "charge")
        .map(|e| (e.text("charge_id").unwrap(), e))
        .collect();
    let mut db =
        SqliteConnection::connect(&format!("sqlite://{}", incident.join("truth.db").display()))
            .await
            .unwrap();
    let truth = sqlx::query(
        "SELECT p.stripe_charge_id, p.amount_minor, p.currency, p.refunded_minor, p.status, r.booking_code \
         FROM payments p JOIN reservations r ON r.id = p.reservation_id WHERE p.stripe_charge_id IS NOT NULL",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    let mut compared = 0;
    let mut with_code = 0;
    for row in &truth {
        let id: String = row.get(0);
        let Some(ev) = by_charge.get(id.as_str()) else {
            continue; // paid before the gap: not in the dumps
        };
        let currency: String = row.get(2);
        let money = |minor: i64| Value::Money {
            minor,
            currency: currency.clone(),
        };
        assert_eq!(ev.get("amount"), Some(&money(row.get(1))), "{id}");
        assert_eq!(ev.get("amount_refunded"), Some(&money(row.get(3))), "{id}");
        assert_eq!(
            ev.text("status"),
            Some(row.get::<String, _>(4).as_str()),
            "{id}"
        );
        if let Some(code) = ev.text("booking_code") {
            assert_eq!(code, row.get::<String, _>(5), "{id}");
            with_code += 1;
        }
        compared += 1;
    }
    assert!(
        compared > 100 && with_code > compared / 2,
        "{compared} {with_code}"
    );
}
