//! Stripe objects mean what they say (invariant 10): a refund that failed or was canceled, or is
//! still pending, pays nothing back; an authorisation that was never captured is not a payment.
//! Each case is a real-shaped object handed to `gapfill plan` against a restored backup, and the
//! plan is read for what it would change.

mod common;

use std::path::Path;

use common::*;

/// The newest pre-restore payment that succeeded and has no refund: its key, charge id, payment
/// intent id and currency.
fn a_paid_payment(db: &Path) -> (String, String, String, String) {
    let row = query(
        &sqlite_url(db),
        "SELECT id, stripe_charge_id, stripe_payment_intent_id, lower(currency) FROM payments \
         WHERE status = 'succeeded' AND refunded_minor = 0 AND stripe_charge_id IS NOT NULL \
         ORDER BY id DESC LIMIT 1",
    );
    let f: Vec<&str> = row.trim().split('|').collect();
    (f[0].into(), f[1].into(), f[2].into(), f[3].into())
}

/// Plans the restored backup with one Stripe dump holding `objects`; the plan's changes.
fn plan_with(
    incident: &Path,
    work: &Path,
    tag: &str,
    objects: serde_json::Value,
) -> Vec<serde_json::Value> {
    let dump = serde_json::json!({"object": "list", "data": objects, "has_more": false});
    plan_with_files(incident, work, tag, &[("objects.json", dump)])
}

/// Plans the restored backup with a Stripe folder of these files; the plan's changes.
fn plan_with_files(
    incident: &Path,
    work: &Path,
    tag: &str,
    files: &[(&str, serde_json::Value)],
) -> Vec<serde_json::Value> {
    let dir = work.join(tag);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, content) in files {
        std::fs::write(dir.join(name), content.to_string()).unwrap();
    }
    let p = plan_json(
        &incident.join("mapping.toml"),
        &sqlite_url(&incident.join("restored.db")),
        &[("--stripe", &dir)],
        &work.join(format!("{tag}.json")),
    );
    p["changes"].as_array().unwrap().clone()
}

/// A few days before the incident the simulator writes (2026-09-14), inside any gap.
const IN_THE_GAP: i64 = 1_789_300_000;

fn refund(id: &str, charge: &str, intent: &str, currency: &str, status: &str) -> serde_json::Value {
    serde_json::json!({
        "id": id, "object": "refund", "amount": 500, "currency": currency, "charge": charge,
        "payment_intent": intent, "created": IN_THE_GAP, "status": status,
        "reason": "requested_by_customer", "metadata": {},
        "failure_reason": if status == "failed" { serde_json::json!("expired_or_canceled_card") } else { serde_json::Value::Null }
    })
}

/// What the plan would write to the row `key` of payments, column by column.
fn planned_for(changes: &[serde_json::Value], key: &str) -> Vec<(String, serde_json::Value)> {
    changes
        .iter()
        .filter(|c| c["table"] == "payments" && c["key"] == key)
        .flat_map(|c| c["columns"].as_array().unwrap().iter())
        .filter(|col| col["after"]["kind"] != "now")
        .map(|col| {
            (
                col["column"].as_str().unwrap().to_string(),
                col["after"]["value"].clone(),
            )
        })
        .collect()
}

#[test]
fn only_a_succeeded_refund_pays_money_back() {
    let (dir, incident) = incident(45, 40, "low");
    let (key, charge, intent, currency) = a_paid_payment(&incident.join("restored.db"));
    for status in ["failed", "canceled", "pending", "requires_action"] {
        let changes = plan_with(
            &incident,
            dir.path(),
            status,
            serde_json::json!([refund(
                &format!("re_{status}"),
                &charge,
                &intent,
                &currency,
                status
            )]),
        );
        let planned = planned_for(&changes, &key);
        assert!(
            planned.is_empty(),
            "a {status} refund changes payment {key}: {planned:?}"
        );
    }
    let changes = plan_with(
        &incident,
        dir.path(),
        "succeeded",
        serde_json::json!([refund("re_ok", &charge, &intent, &currency, "succeeded")]),
    );
    let planned = planned_for(&changes, &key);
    assert!(
        planned.contains(&("refunded_minor".into(), serde_json::json!(500))),
        "{planned:?}"
    );
    assert!(
        planned.contains(&("status".into(), serde_json::json!("partially_refunded"))),
        "{planned:?}"
    );
    // A refund whose payment intent is null is found by its charge.
    let mut by_charge = refund("re_nopi", &charge, &intent, &currency, "succeeded");
    by_charge["payment_intent"] = serde_json::Value::Null;
    let changes = plan_with(
        &incident,
        dir.path(),
        "by-charge",
        serde_json::json!([by_charge]),
    );
    let planned = planned_for(&changes, &key);
    assert!(
        planned.contains(&("refunded_minor".into(), serde_json::json!(500))),
        "a refund without a payment intent: {planned:?}"
    );
    // A failed attempt beside the refund that went through counts once: the one that succeeded.
    let changes = plan_with(
        &incident,
        dir.path(),
        "both",
        serde_json::json!([
            refund("re_fail", &charge, &intent, &currency, "failed"),
            refund("re_ok2", &charge, &intent, &currency, "succeeded"),
        ]),
    );
    let planned = planned_for(&changes, &key);
    assert!(
        planned.contains(&("refunded_minor".into(), serde_json::json!(500))),
        "{planned:?}"
    );
}

/// Stripe's own example charge: `status` succeeded, `captured` false, `amount_captured` 0. An
/// authorisation, not a payment; and a charge without `status` that says `paid: false` and gives
/// a failure code failed.
#[test]
fn an_uncaptured_or_unpaid_charge_is_not_a_payment() {
    let (dir, incident) = incident(46, 40, "low");
    let (key, charge, intent, currency) = a_paid_payment(&incident.join("restored.db"));
    let charge_object = |status: Option<&str>,
                         captured: bool,
                         paid: bool,
                         failure: Option<&str>| {
        let mut c = serde_json::json!({
            "id": charge, "object": "charge", "amount": 9900, "amount_captured": if captured { 9900 } else { 0 },
            "amount_refunded": 0, "currency": currency, "captured": captured, "paid": paid,
            "payment_intent": intent, "created": IN_THE_GAP, "refunded": false, "metadata": {},
            "failure_code": failure, "outcome": {"type": if failure.is_some() { "issuer_declined" } else { "authorized" }}
        });
        if let Some(s) = status {
            c["status"] = serde_json::json!(s);
        }
        c
    };
    let changes = plan_with(
        &incident,
        dir.path(),
        "uncaptured",
        serde_json::json!([charge_object(Some("succeeded"), false, true, None)]),
    );
    let planned = planned_for(&changes, &key);
    assert!(
        planned.is_empty(),
        "an authorisation changed the payment: {planned:?}"
    );
    let changes = plan_with(
        &incident,
        dir.path(),
        "unpaid",
        serde_json::json!([charge_object(None, false, false, Some("card_declined"))]),
    );
    let planned = planned_for(&changes, &key);
    assert!(
        planned.contains(&("status".into(), serde_json::json!("failed"))),
        "{planned:?}"
    );
}

/// Refunds whose amounts add up past what any integer holds are no total at all: the plan is made,
/// and states no refunded amount for the payment rather than a wrapped one.
#[test]
fn refunds_that_add_up_past_any_integer_give_no_total() {
    let (dir, incident) = incident(48, 30, "low");
    let (key, charge, intent, currency) = a_paid_payment(&incident.join("restored.db"));
    let big = |id: &str| {
        let mut r = refund(id, &charge, &intent, &currency, "succeeded");
        r["amount"] = serde_json::json!(5_000_000_000_000_000_000i64);
        r
    };
    let changes = plan_with(
        &incident,
        dir.path(),
        "overflow",
        serde_json::json!([big("re_big1"), big("re_big2")]),
    );
    let planned = planned_for(&changes, &key);
    assert!(
        !planned.iter().any(|(c, _)| c == "refunded_minor"),
        "a refunded total past any integer: {planned:?}"
    );
}

/// The same charge in two dumps of different dates: the copy that shows it later (here, refunded
/// in part) is the charge now, whichever file's name comes first.
#[test]
fn the_newest_copy_of_an_object_wins_whatever_the_file_order() {
    let (dir, incident) = incident(49, 40, "low");
    let (key, charge, intent, currency) = a_paid_payment(&incident.join("restored.db"));
    let amount: i64 = query(
        &sqlite_url(&incident.join("restored.db")),
        &format!("SELECT amount_minor FROM payments WHERE id = {key}"),
    )
    .trim()
    .parse()
    .unwrap();
    let copy = |refunded: i64| {
        serde_json::json!({
            "id": charge, "object": "charge", "amount": amount, "amount_captured": amount,
            "amount_refunded": refunded, "currency": currency, "captured": true, "paid": true,
            "status": "succeeded", "payment_intent": intent, "created": IN_THE_GAP, "metadata": {}
        })
    };
    for (first, second) in [(500, 0), (0, 500)] {
        let changes = plan_with_files(
            &incident,
            dir.path(),
            &format!("dumps-{first}-{second}"),
            &[("a.json", copy(first)), ("b.json", copy(second))],
        );
        let planned = planned_for(&changes, &key);
        assert!(
            planned.contains(&("refunded_minor".into(), serde_json::json!(500))),
            "a.json refunded {first}, b.json {second}: {planned:?}"
        );
    }
}

/// A payment made before the restore point and refunded in the gap, known only from the events
/// Stripe sent: the `charge.refunded` event carries the charge as it was then, refunded, and
/// wins over the `charge.succeeded` event's earlier copy whatever their order in the file; the
/// charge itself was created before the window, and the event's time is what counts.
#[test]
fn a_refund_known_only_from_events_is_planned() {
    let (dir, incident) = incident(47, 40, "low");
    let db = incident.join("restored.db");
    let (key, charge, intent, currency) = a_paid_payment(&db);
    let row = query(
        &sqlite_url(&db),
        &format!("SELECT amount_minor, paid_at FROM payments WHERE id = {key}"),
    );
    let (amount, paid_at) = row.trim().split_once('|').unwrap();
    let amount: i64 = amount.parse().unwrap();
    let paid_at = chrono::DateTime::parse_from_rfc3339(paid_at)
        .unwrap()
        .timestamp();
    let charge_then = |refunded: i64| {
        serde_json::json!({
            "id": charge, "object": "charge", "amount": amount, "amount_captured": amount,
            "amount_refunded": refunded, "captured": true, "paid": true, "currency": currency,
            "payment_intent": intent, "created": paid_at, "refunded": refunded == amount,
            "status": "succeeded", "metadata": {}, "outcome": {"type": "authorized"}
        })
    };
    let event = |id: &str, kind: &str, at: i64, object: serde_json::Value| {
        serde_json::json!({
            "id": id, "object": "event", "type": kind, "created": at, "api_version": "2024-06-20",
            "data": {"object": object}, "livemode": false, "pending_webhooks": 0
        })
    };
    let succeeded = event("evt_1", "charge.succeeded", paid_at, charge_then(0));
    let refunded = event("evt_2", "charge.refunded", IN_THE_GAP, charge_then(amount));
    for (tag, order) in [
        ("newest-first", vec![refunded.clone(), succeeded.clone()]),
        ("oldest-first", vec![succeeded.clone(), refunded.clone()]),
    ] {
        let changes = plan_with(&incident, dir.path(), tag, serde_json::json!(order));
        let planned = planned_for(&changes, &key);
        assert!(
            planned.contains(&("refunded_minor".into(), serde_json::json!(amount))),
            "{tag}: {planned:?}"
        );
        assert!(
            planned.contains(&("status".into(), serde_json::json!("refunded"))),
            "{tag}: {planned:?}"
        );
    }
    // The charge.succeeded event alone says what the row says already: no change.
    let changes = plan_with(
        &incident,
        dir.path(),
        "succeeded-only",
        serde_json::json!([succeeded]),
    );
    let planned = planned_for(&changes, &key);
    assert!(planned.is_empty(), "{planned:?}");
}

/// Disputes are reflected where the mapping asks for them: a schema with a column for the
/// dispute's state, a mapping that feeds the `dispute` kind to the payment and maps its status
/// words. A dispute opened in the gap on a payment made before the restore point is planned as
/// that column's change; the dispute's amount is never a payment's amount or refund.
#[test]
fn a_dispute_reaches_the_column_a_mapping_gives_it() {
    let (dir, incident) = incident(49, 40, "low");
    let db = dir.path().join("disputes.db");
    std::fs::copy(incident.join("restored.db"), &db).unwrap();
    let out = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg("ALTER TABLE payments ADD COLUMN dispute_state TEXT")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (key, charge, intent, currency) = a_paid_payment(&db);
    let reference = std::fs::read_to_string(incident.join("mapping.toml")).unwrap();
    let feeds = r#"feeds = { stripe = ["charge", "payment_intent", "checkout_session", "refund", "payment"], mail = ["receipt"] }"#;
    let links = r#"kinds = ["charge", "payment_intent", "payment", "refund"]"#;
    assert!(reference.contains(feeds) && reference.contains(links));
    let mapping = reference
        .replace(
            feeds,
            r#"feeds = { stripe = ["charge", "payment_intent", "checkout_session", "refund", "payment", "dispute"], mail = ["receipt"] }"#,
        )
        .replace(links, r#"kinds = ["charge", "payment_intent", "payment", "refund", "dispute"]"#)
        .replace(
            "[entities.payment.columns.paid_at]",
            "[entities.payment.columns.dispute_state]\nfrom = \"status\"\nkinds = [\"dispute\"]\n\
             values = { open = [\"warning_needs_response\", \"needs_response\", \"under_review\"], won = [\"won\", \"warning_closed\"], lost = [\"lost\"] }\n\n\
             [entities.payment.columns.paid_at]",
        );
    let mapping_path = dir.path().join("disputes.toml");
    std::fs::write(&mapping_path, mapping).unwrap();
    let stripe = dir.path().join("disputes");
    std::fs::create_dir_all(&stripe).unwrap();
    let dispute = serde_json::json!({
        "id": "du_1", "object": "dispute", "amount": 500, "currency": currency, "charge": charge,
        "payment_intent": intent, "created": IN_THE_GAP, "reason": "fraudulent",
        "status": "needs_response", "metadata": {},
        "evidence_details": {"due_by": IN_THE_GAP + 7 * 86400, "has_evidence": false, "past_due": false}
    });
    std::fs::write(
        stripe.join("disputes.json"),
        serde_json::json!({"object": "list", "data": [dispute], "has_more": false}).to_string(),
    )
    .unwrap();
    let p = plan_json(
        &mapping_path,
        &sqlite_url(&db),
        &[("--stripe", &stripe)],
        &dir.path().join("disputes.json"),
    );
    let planned = planned_for(p["changes"].as_array().unwrap(), &key);
    assert_eq!(
        planned,
        vec![("dispute_state".to_string(), serde_json::json!("open"))],
        "only the dispute's state changes"
    );
}

/// A value a rule infers overwrites an existing row by itself only where the mapping opts in
/// (SPEC invariant 11): the refund of a payment made before the restore point gives its total
/// and status through `adds` and `by_amounts`; with `auto = true` (the reference mapping) the
/// update is accepted, without it the same update waits for a person, saying which rule.
#[test]
fn an_inferred_value_changes_a_row_by_itself_only_where_the_mapping_opts_in() {
    let (dir, incident) = incident(51, 40, "low");
    let (key, charge, intent, currency) = a_paid_payment(&incident.join("restored.db"));
    let stripe = dir.path().join("refund");
    std::fs::create_dir_all(&stripe).unwrap();
    let dump = serde_json::json!({"object": "list", "has_more": false,
        "data": [refund("re_1", &charge, &intent, &currency, "succeeded")]});
    std::fs::write(stripe.join("refunds.json"), dump.to_string()).unwrap();
    let reference = std::fs::read_to_string(incident.join("mapping.toml")).unwrap();
    assert_eq!(reference.matches(", auto = true }").count(), 3);
    let cautious = dir.path().join("cautious.toml");
    std::fs::write(&cautious, reference.replace(", auto = true }", " }")).unwrap();
    let decide = |mapping: &Path, tag: &str| {
        let p = plan_json(
            mapping,
            &sqlite_url(&incident.join("restored.db")),
            &[("--stripe", &stripe)],
            &dir.path().join(format!("{tag}.json")),
        );
        let c = p["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["table"] == "payments" && c["key"] == key.as_str())
            .cloned()
            .expect("an update of the refunded payment");
        (
            c["decision"].as_str().unwrap().to_string(),
            c["reasons"].to_string(),
        )
    };
    let (decision, reasons) = decide(&incident.join("mapping.toml"), "opted-in");
    assert_eq!(decision, "accepted", "{reasons}");
    let (decision, reasons) = decide(&cautious, "cautious");
    assert_eq!(decision, "needs_review", "{reasons}");
    assert!(
        reasons.contains("refunded_minor: inferred by adds"),
        "{reasons}"
    );
    assert!(
        reasons.contains("status: inferred by by_amounts"),
        "{reasons}"
    );
}
