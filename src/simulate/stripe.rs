//! The Stripe side of an incident: API list dumps (customers, payment intents, charges, refunds,
//! checkout sessions) as `stripe <object> list` or the API return them, newest first, and a
//! dashboard payments CSV export. Only objects created in the gap.

use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::names::minor_per_major;
use super::rng::{Rng, BASE62};
use super::vary;
use super::world::{Card, Customer, Payer, Payment, PaymentKind, World};
use super::{io_err, write_file, Ctx, Manifest, Result, SimulateError, Source, Written};

/// One charge attempt, in the shape both the charges dump and the CSV need.
struct Attempt<'a> {
    charge_id: &'a str,
    payment_intent_id: &'a str,
    at: DateTime<Utc>,
    amount: i64,
    currency: &'a str,
    refunded: i64,
    last_refund_at: Option<DateTime<Utc>>,
    failure: Option<&'a str>,
    description: String,
    customer: Option<&'a str>,
    payer: &'a Payer,
    card: &'a Card,
    metadata: Value,
    receipt_number: Option<&'a str>,
    /// (table, row id) pairs the attempt is evidence of.
    mentions: Vec<(&'static str, i64)>,
}

/// An API object, already serialised (a `Value` per object would cost gigabytes at scale), with
/// its creation time, id, and the rows it is evidence of.
struct Object {
    at: DateTime<Utc>,
    id: String,
    json: String,
    about: Vec<(&'static str, i64)>,
}

impl Object {
    fn new(at: DateTime<Utc>, value: Value, about: Vec<(&'static str, i64)>) -> Object {
        let id = value["id"].as_str().unwrap_or_default().to_string();
        Object {
            at,
            id,
            json: value.to_string(),
            about,
        }
    }
}

fn unix(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

fn metadata(world: &World, p: &Payment) -> Value {
    if !p.code_in_stripe {
        return json!({});
    }
    let r = world.reservation(p.reservation_id);
    let loc = world.location(r.versions[0].pickup_location_id);
    json!({ "booking_code": r.code, "pickup_location": loc.spec.code })
}

fn description(world: &World, p: &Payment) -> String {
    let r = world.reservation(p.reservation_id);
    let v = world.vehicle(r.versions[0].vehicle_id);
    match (p.code_in_stripe, p.kind) {
        (true, PaymentKind::Booking) => format!("Reservation {} – {} {}", r.code, v.make, v.model),
        (true, PaymentKind::Supplement) => format!("Reservation {} – change supplement", r.code),
        (false, PaymentKind::Booking) => format!("Car rental – {} {}", v.make, v.model),
        (false, PaymentKind::Supplement) => "Car rental – supplement".to_string(),
    }
}

/// Major units as the dashboard shows them: "123.45", or "12000" for zero-decimal currencies.
pub fn major_units(minor: i64, currency: &str) -> String {
    let per = minor_per_major(currency);
    if per == 1 {
        minor.to_string()
    } else {
        format!(
            "{}{}.{:02}",
            if minor < 0 { "-" } else { "" },
            minor.abs() / per,
            minor.abs() % per
        )
    }
}

fn card_json(card: &Card) -> Value {
    json!({
        "brand": card.brand,
        "checks": { "address_line1_check": null, "address_postal_code_check": "pass", "cvc_check": "pass" },
        "country": card.country,
        "exp_month": card.exp_month,
        "exp_year": card.exp_year,
        "fingerprint": card.fingerprint,
        "funding": "credit",
        "last4": card.last4,
        "network": card.brand,
    })
}

fn charge_json(a: &Attempt, rng: &mut Rng) -> Value {
    let failed = a.failure.is_some();
    json!({
        "id": a.charge_id,
        "object": "charge",
        "amount": a.amount,
        "amount_captured": if failed { 0 } else { a.amount },
        "amount_refunded": a.refunded,
        "balance_transaction": if failed { Value::Null } else { json!(format!("txn_3{}", rng.string(BASE62, 24))) },
        "billing_details": {
            "address": { "city": null, "country": a.card.country, "line1": null, "line2": null, "postal_code": null, "state": null },
            "email": a.payer.email,
            "name": a.payer.name,
            "phone": null
        },
        "calculated_statement_descriptor": "RENTICO",
        "captured": !failed,
        "created": unix(a.at),
        "currency": a.currency.to_lowercase(),
        "customer": a.customer,
        "description": a.description,
        "disputed": false,
        "failure_code": a.failure.map(|_| "card_declined"),
        "failure_message": a.failure.map(|_| "Your card was declined."),
        "livemode": true,
        "metadata": a.metadata,
        "outcome": {
            "network_status": if failed { "declined_by_network" } else { "approved_by_network" },
            "reason": a.failure,
            "risk_level": "normal",
            "seller_message": if failed { "The bank did not return any further details with this decline." } else { "Payment complete." },
            "type": if failed { "issuer_declined" } else { "authorized" }
        },
        "paid": !failed,
        "payment_intent": a.payment_intent_id,
        "payment_method": format!("pm_1{}", rng.string(BASE62, 23)),
        "payment_method_details": { "card": card_json(a.card), "type": "card" },
        "receipt_email": a.payer.email,
        "receipt_number": a.receipt_number,
        "receipt_url": a.receipt_number.map(|_| format!("https://pay.stripe.com/receipts/payment/{}", rng.string(BASE62, 40))),
        "refunded": a.refunded >= a.amount && a.refunded > 0,
        "statement_descriptor": null,
        "statement_descriptor_suffix": null,
        "status": if failed { "failed" } else { "succeeded" }
    })
}

fn customer_json(c: &Customer, rng: &mut Rng, ctx: &Ctx) -> Value {
    // Customers type their own names and numbers into Checkout.
    let name = vary::full_name(rng, ctx.noise, c);
    let email = vary::email(rng, ctx.noise, &c.email);
    let phone = vary::phone(rng, ctx.noise, c);
    json!({
        "id": c.stripe_customer_id,
        "object": "customer",
        "address": null,
        "balance": 0,
        "created": unix(c.created_at + chrono::Duration::seconds(4)),
        "currency": null,
        "default_source": null,
        "delinquent": false,
        "description": null,
        "email": email,
        "invoice_prefix": rng.string(b"ABCDEF0123456789", 8),
        "livemode": true,
        "metadata": {},
        "name": name,
        "phone": phone,
        "preferred_locales": [],
        "shipping": null,
        "tax_exempt": "none"
    })
}

pub fn write(ctx: &Ctx, dir: &Path, manifest: &mut Manifest) -> Result<Written> {
    let world = ctx.world;
    let mut rng = Rng::fork(ctx.seed, "stripe");
    let in_gap = |t: DateTime<Utc>| world.in_gap(t);

    let mut customers: Vec<Object> = Vec::new();
    for c in world
        .customers
        .iter()
        .filter(|c| in_gap(c.created_at) && c.stripe_customer_id.is_some())
    {
        customers.push(Object::new(
            c.created_at,
            customer_json(c, &mut rng, ctx),
            vec![("customers", c.id)],
        ));
    }

    let mut attempts: Vec<Attempt> = Vec::new();
    let mut intents: Vec<Object> = Vec::new();
    let mut sessions: Vec<Object> = Vec::new();
    let mut refunds: Vec<Object> = Vec::new();
    for p in &world.payments {
        let c = world.customer(p.customer_id);
        let r = world.reservation(p.reservation_id);
        let mut about = vec![("payments", p.id), ("reservations", r.id)];
        if p.payer.is_customer {
            about.push(("customers", c.id));
        }
        let customer = c.stripe_customer_id.as_deref();
        let started =
            p.failed_before.as_ref().map_or(p.paid_at, |f| f.at) - chrono::Duration::seconds(3);
        for refund in p.refunds.iter().filter(|x| in_gap(x.at)) {
            refunds.push(Object::new(
                refund.at,
                json!({
                    "id": refund.id,
                    "object": "refund",
                    "amount": refund.amount_minor,
                    "balance_transaction": format!("txn_3{}", rng.string(BASE62, 24)),
                    "charge": p.charge_id,
                    "created": unix(refund.at),
                    "currency": p.currency.to_lowercase(),
                    "metadata": {},
                    "payment_intent": p.payment_intent_id,
                    "reason": refund.reason,
                    "receipt_number": null,
                    "status": "succeeded"
                }),
                vec![("payments", p.id), ("reservations", r.id)],
            ));
        }
        if !in_gap(p.paid_at) {
            continue;
        }
        let refunded = p.refunded_at(world.incident_at);
        let meta = metadata(world, p);
        let desc = description(world, p);
        if let Some(f) = p.failed_before.as_ref().filter(|f| in_gap(f.at)) {
            attempts.push(Attempt {
                charge_id: &f.charge_id,
                payment_intent_id: &p.payment_intent_id,
                at: f.at,
                amount: p.amount_minor,
                currency: p.currency,
                refunded: 0,
                last_refund_at: None,
                failure: Some(f.decline_code),
                description: desc.clone(),
                customer,
                payer: &p.payer,
                card: &f.card,
                metadata: meta.clone(),
                receipt_number: None,
                mentions: about
                    .iter()
                    .copied()
                    .filter(|(t, _)| *t != "payments")
                    .collect(),
            });
        }
        attempts.push(Attempt {
            charge_id: &p.charge_id,
            payment_intent_id: &p.payment_intent_id,
            at: p.paid_at,
            amount: p.amount_minor,
            currency: p.currency,
            refunded,
            last_refund_at: p.refunds.iter().map(|x| x.at).max(),
            failure: None,
            description: desc.clone(),
            customer,
            payer: &p.payer,
            card: &p.card,
            metadata: meta.clone(),
            receipt_number: Some(&p.receipt_number),
            mentions: about.clone(),
        });
        if !in_gap(started) {
            // Created before the gap: a `created` filter on the lists leaves it out.
            continue;
        }
        intents.push(Object::new(
            started,
            json!({
                "id": p.payment_intent_id,
                "object": "payment_intent",
                "amount": p.amount_minor,
                "amount_capturable": 0,
                "amount_received": p.amount_minor,
                "capture_method": "automatic",
                "client_secret": null,
                "confirmation_method": "automatic",
                "created": unix(started),
                "currency": p.currency.to_lowercase(),
                "customer": customer,
                "description": desc,
                "last_payment_error": null,
                "latest_charge": p.charge_id,
                "livemode": true,
                "metadata": meta,
                "payment_method": format!("pm_1{}", rng.string(BASE62, 23)),
                "payment_method_types": ["card"],
                "receipt_email": p.payer.email,
                "statement_descriptor": null,
                "status": "succeeded"
            }),
            about.clone(),
        ));
        if let Some(cs) = &p.checkout_session_id {
            let code = p.code_in_stripe.then_some(r.code.as_str());
            sessions.push(Object::new(
                started,
                json!({
                    "id": cs,
                    "object": "checkout.session",
                    "amount_subtotal": p.amount_minor,
                    "amount_total": p.amount_minor,
                    "client_reference_id": code,
                    "created": unix(started) - 40,
                    "currency": p.currency.to_lowercase(),
                    "customer": customer,
                    "customer_creation": if customer.is_some() { "always" } else { "if_required" },
                    "customer_details": {
                        "address": { "country": p.card.country },
                        "email": p.payer.email,
                        "name": p.payer.name,
                        "phone": if p.payer.is_customer { c.phone.clone() } else { None },
                        "tax_exempt": "none"
                    },
                    "expires_at": unix(started) + 86_400,
                    "livemode": true,
                    "metadata": metadata(world, p),
                    "mode": "payment",
                    "payment_intent": p.payment_intent_id,
                    "payment_status": "paid",
                    "status": "complete",
                    "success_url": "https://rentico.example/booking/done",
                    "url": null
                }),
                about.clone(),
            ));
        }
    }
    let unrelated_meta = json!({});
    for u in world.unrelated_charges.iter().filter(|u| in_gap(u.at)) {
        attempts.push(Attempt {
            charge_id: &u.charge_id,
            payment_intent_id: &u.payment_intent_id,
            at: u.at,
            amount: u.amount_minor,
            currency: u.currency,
            refunded: 0,
            last_refund_at: None,
            failure: None,
            description: u.description.clone(),
            customer: None,
            payer: &u.payer,
            card: &u.card,
            metadata: unrelated_meta.clone(),
            receipt_number: None,
            mentions: Vec::new(),
        });
        intents.push(Object::new(
            u.at - chrono::Duration::seconds(3),
            json!({
                "id": u.payment_intent_id, "object": "payment_intent", "amount": u.amount_minor,
                "amount_received": u.amount_minor, "created": unix(u.at) - 3,
                "currency": u.currency.to_lowercase(), "customer": null, "description": u.description,
                "latest_charge": u.charge_id, "livemode": true, "metadata": {}, "status": "succeeded"
            }),
            Vec::new(),
        ));
    }

    // The API lists newest first; ties broken by id so the order is total.
    attempts.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| b.charge_id.cmp(a.charge_id)));
    for list in [&mut intents, &mut sessions, &mut refunds, &mut customers] {
        list.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| b.id.cmp(&a.id)));
    }

    let mut written = Written::default();
    let add = |name: &str, n: usize, written: &mut Written| {
        written.files.push(format!("evidence/stripe/{name}"));
        written.items += n as u64;
    };
    for a in &attempts {
        for (t, id) in &a.mentions {
            manifest.mention(t, *id, Source::Stripe, a.charge_id);
        }
    }
    for (list, name) in [
        (&intents, "payment_intents"),
        (&sessions, "checkout_sessions"),
        (&refunds, "refunds"),
        (&customers, "customers"),
    ] {
        for o in list.iter() {
            for (t, id) in &o.about {
                manifest.mention(t, *id, Source::Stripe, o.id.as_str());
            }
        }
        write_list(
            &dir.join(format!("{name}.json")),
            name,
            list.iter().map(|o| &o.json),
        )?;
        add(&format!("{name}.json"), list.len(), &mut written);
    }
    write_list(
        &dir.join("charges.json"),
        "charges",
        attempts
            .iter()
            .map(|a| charge_json(a, &mut rng).to_string()),
    )?;
    add("charges.json", attempts.len(), &mut written);

    let csv_path = dir.join("payments.csv");
    let lines = write_payments_csv(&csv_path, &attempts, manifest)?;
    add("payments.csv", lines, &mut written);
    Ok(written)
}

fn write_list(
    path: &Path,
    object: &str,
    items: impl Iterator<Item = impl AsRef<str>>,
) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    let file = std::fs::File::create(path).map_err(io_err(path))?;
    let mut w = std::io::BufWriter::new(file);
    write!(w, "{{\n  \"object\": \"list\",\n  \"url\": \"/v1/{object}\",\n  \"has_more\": false,\n  \"data\": [").map_err(io_err(path))?;
    for (i, item) in items.enumerate() {
        w.write_all(if i == 0 { b"\n    " } else { b",\n    " })
            .map_err(io_err(path))?;
        w.write_all(item.as_ref().as_bytes())
            .map_err(io_err(path))?;
    }
    w.write_all(b"\n  ]\n}\n").map_err(io_err(path))?;
    w.flush().map_err(io_err(path))
}

/// Rough conversion into the account's euros, as the dashboard's "Converted Amount" shows.
fn to_eur_minor(minor: i64, currency: &str) -> i64 {
    match currency {
        "GBP" => minor * 116 / 100,
        "USD" => minor * 91 / 100,
        "JPY" => minor * 100 / 160,
        _ => minor,
    }
}

/// The dashboard's "Payments → Export" file (unified payments, default columns plus metadata).
fn write_payments_csv(path: &Path, attempts: &[Attempt], manifest: &mut Manifest) -> Result<usize> {
    let csv_err = |e: csv::Error| SimulateError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    };
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "id",
        "Description",
        "Seller Message",
        "Created date (UTC)",
        "Amount",
        "Amount Refunded",
        "Currency",
        "Captured",
        "Converted Amount",
        "Converted Amount Refunded",
        "Converted Currency",
        "Decline Reason",
        "Fee",
        "Refunded date (UTC)",
        "Mode",
        "Status",
        "Statement Descriptor",
        "Customer ID",
        "Customer Description",
        "Customer Email",
        "Card ID",
        "Card Last4",
        "Card Brand",
        "Card Funding",
        "Card Exp Month",
        "Card Exp Year",
        "Card Name",
        "Card Issue Country",
        "Card Fingerprint",
        "Payment Source Type",
        "PaymentIntent ID",
        "booking_code (metadata)",
        "pickup_location (metadata)",
    ])
    .map_err(csv_err)?;
    for (i, a) in attempts.iter().enumerate() {
        let failed = a.failure.is_some();
        let status = if failed {
            "Failed"
        } else if a.refunded >= a.amount {
            "Refunded"
        } else {
            "Paid"
        };
        let fee = if failed {
            0
        } else {
            to_eur_minor(a.amount, a.currency) * 15 / 1000 + 25
        };
        let meta = |k: &str| {
            a.metadata
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        w.write_record([
            a.charge_id.to_string(),
            a.description.clone(),
            if failed {
                "The bank did not return any further details with this decline.".into()
            } else {
                "Payment complete.".into()
            },
            a.at.format("%Y-%m-%d %H:%M:%S").to_string(),
            major_units(a.amount, a.currency),
            major_units(a.refunded, a.currency),
            a.currency.to_lowercase(),
            (!failed).to_string(),
            major_units(to_eur_minor(a.amount, a.currency), "EUR"),
            major_units(to_eur_minor(a.refunded, a.currency), "EUR"),
            "eur".into(),
            a.failure.unwrap_or("").into(),
            major_units(fee, "EUR"),
            a.last_refund_at
                .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default(),
            "Live".into(),
            status.into(),
            "RENTICO".into(),
            a.customer.unwrap_or("").into(),
            String::new(),
            a.payer.email.clone(),
            format!("card_{}", &a.card.fingerprint),
            a.card.last4.clone(),
            capitalise_brand(a.card.brand),
            "credit".into(),
            a.card.exp_month.to_string(),
            a.card.exp_year.to_string(),
            a.payer.name.clone(),
            a.card.country.into(),
            a.card.fingerprint.clone(),
            "card".into(),
            a.payment_intent_id.to_string(),
            meta("booking_code"),
            meta("pickup_location"),
        ])
        .map_err(csv_err)?;
        // Line 1 is the header.
        for (t, id) in &a.mentions {
            manifest.mention(t, *id, Source::Stripe, format!("payments.csv:{}", i + 2));
        }
    }
    let bytes = w.into_inner().map_err(|e| SimulateError::Io {
        path: path.to_path_buf(),
        source: e.into_error(),
    })?;
    write_file(path, &bytes)?;
    Ok(attempts.len())
}

fn capitalise_brand(brand: &str) -> String {
    match brand {
        "amex" => "American Express".into(),
        "mastercard" => "MasterCard".into(),
        other => {
            let mut c = other.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::{noise::NoiseLevel, world, Noise};

    #[test]
    fn major_units_respect_zero_decimal_currencies() {
        assert_eq!(major_units(12345, "EUR"), "123.45");
        assert_eq!(major_units(5, "USD"), "0.05");
        assert_eq!(major_units(12000, "JPY"), "12000");
    }

    #[test]
    fn dumps_hold_gap_objects_newest_first_and_the_csv_matches_the_charges() {
        let noise = Noise::new(NoiseLevel::Medium);
        let w = world::generate(&world::Params {
            seed: 5,
            noise: noise.clone(),
            gap_reservations: 150,
            gap_days: 30,
            incident_at: world::default_incident_at(),
        });
        let ctx = Ctx {
            world: &w,
            noise: &noise,
            seed: 5,
        };
        let dir = tempfile::tempdir().unwrap();
        let mut m = Manifest::default();
        write(&ctx, dir.path(), &mut m).unwrap();
        let charges: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("charges.json")).unwrap())
                .unwrap();
        let data = charges["data"].as_array().unwrap();
        assert!(!data.is_empty());
        let created: Vec<i64> = data
            .iter()
            .map(|c| c["created"].as_i64().unwrap())
            .collect();
        assert!(created.windows(2).all(|p| p[0] >= p[1]), "newest first");
        let (from, to) = (w.restore_point.timestamp(), w.incident_at.timestamp());
        assert!(
            created.iter().all(|c| *c >= from && *c < to),
            "only the gap"
        );
        let mut csv = csv::Reader::from_path(dir.path().join("payments.csv")).unwrap();
        let ids: Vec<String> = csv.records().map(|r| r.unwrap()[0].to_string()).collect();
        let json_ids: Vec<&str> = data.iter().map(|c| c["id"].as_str().unwrap()).collect();
        assert_eq!(ids, json_ids);
        // Every gap payment row is mentioned by its charge.
        let mentions = m.into_sorted();
        for p in w
            .payments
            .iter()
            .filter(|p| w.in_gap(p.paid_at) && p.failed_before.is_none())
        {
            assert!(
                mentions
                    .iter()
                    .any(|x| x.table == "payments" && x.row_id == p.id && x.locator == p.charge_id),
                "{}",
                p.charge_id
            );
        }
    }
}
