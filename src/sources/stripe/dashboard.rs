//! Dashboard CSV exports (payments, customers, refunds) as presets of the generic CSV reader.
//!
//! The dashboard has renamed columns over the years ("Created (UTC)" became "Created date
//! (UTC)"; the unified payments export added "PaymentIntent ID", "Decline Reason", "Refunded
//! date (UTC)"), so each field lists every spelling known, preferred first, and columns are
//! found by header. Amounts are major units ("123.45", "12000" for JPY) and are converted
//! exactly to minor units by the row's currency. `<key> (metadata)` columns become
//! `metadata.<key>`; every other column is kept as `column.<header>`.

use chrono_tz::Tz;

use crate::evidence::{
    field, Evidence, Provenance, Sink, Skip, SkipReason, SourceKind, Value, Window,
};
use crate::sources::csv::{self as table, Cell, Spec};

use super::object::{authorization_only, charge_status, extra, settle_refund, Charge};

fn cols(list: &[(&[&str], &str, Cell)]) -> Vec<(Vec<String>, String, Cell)> {
    list.iter()
        .map(|(alts, name, cell)| {
            (
                alts.iter().map(|a| table::norm(a)).collect(),
                name.to_string(),
                *cell,
            )
        })
        .collect()
}

const CREATED: &[&str] = &["Created date (UTC)", "Created (UTC)", "Created", "created"];

fn base(kind: &str, columns: Vec<(Vec<String>, String, Cell)>) -> Spec {
    Spec {
        source: SourceKind::Stripe,
        kind: kind.into(),
        columns,
        currency: None,
        currency_columns: vec!["currency".into()],
        minor_units: false,
        decimal_comma: false,
        time_formats: [
            "%Y-%m-%d %H:%M:%S",
            "%Y-%m-%d %H:%M",
            "%Y-%m-%dT%H:%M:%S",
            "%Y-%m-%dT%H:%M:%SZ",
            "%Y-%m-%d %H:%M:%S%.f",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        // The "(UTC)" columns say so; older exports without it were in UTC too.
        zone: Tz::UTC,
        window_field: field::CREATED.into(),
        status_values: [
            ("paid", "succeeded"),
            ("succeeded", "succeeded"),
            ("failed", "failed"),
            ("refunded", "refunded"),
            ("partially refunded", "partially_refunded"),
            ("partially_refunded", "partially_refunded"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        patterns: Vec::new(),
        metadata_suffix: Some(" (metadata)"),
        finish: None,
    }
}

fn payments() -> Spec {
    use Cell::*;
    let mut s = base(
        "charge",
        cols(&[
            (&["id"], extra::ID, Text),
            (&["Description"], field::DESCRIPTION, Text),
            (CREATED, field::CREATED, Time),
            (&["Amount"], field::AMOUNT, Money),
            (&["Amount Refunded"], field::REFUNDED, Money),
            (&["Refunded date (UTC)"], field::REFUNDED_AT, Time),
            (&["Status"], field::STATUS, Status),
            (&["Statement Descriptor"], field::STATEMENT_DESCRIPTOR, Text),
            (&["Customer ID"], field::CUSTOMER_ID, Text),
            (&["Customer Email"], field::EMAIL, Text),
            (
                &["Card Name", "Customer Name", "Billing Name"],
                field::NAME,
                Text,
            ),
            (
                &["PaymentIntent ID", "Payment Intent ID", "payment_intent"],
                field::PAYMENT_INTENT_ID,
                Text,
            ),
            (&["Customer Description"], "customer_description", Text),
            (&["Decline Reason"], "decline_reason", Text),
            (&["Seller Message"], "seller_message", Text),
            (&["Card Last4"], "card_last4", Text),
            (&["Card Fingerprint"], "card_fingerprint", Text),
            (&["Card Brand"], "card_brand", Text),
            (&["Captured"], "captured", Text),
        ]),
    );
    s.finish = Some(finish_payment);
    s
}

fn finish_payment(ev: &mut Evidence) {
    if let Some(id) = ev.text(extra::ID).map(str::to_owned) {
        ev.set(field::CHARGE_ID, Value::text(id));
    }
    let status = ev.text(field::STATUS).unwrap_or("").to_string();
    let captured = match ev
        .text(extra::CAPTURED)
        .map(|c| c.trim().to_ascii_lowercase())
    {
        Some(c) if c == "true" => Some(true),
        Some(c) if c == "false" => Some(false),
        _ => None,
    };
    // The export says "Paid" for a partly refunded charge; the amounts tell.
    let word = charge_status(&Charge {
        status: &status,
        refunded: status == "refunded",
        paid: None,
        captured,
        failed: false,
        outcome: "",
        ev,
    });
    if word == "uncaptured" {
        authorization_only(ev);
    }
    ev.set(field::STATUS, Value::text(word));
}

fn customers() -> Spec {
    use Cell::*;
    let mut s = base(
        "customer",
        cols(&[
            (&["id"], extra::ID, Text),
            (&["Name"], field::NAME, Text),
            (&["Email"], field::EMAIL, Text),
            (&["Phone"], field::PHONE, Text),
            (&["Description"], field::DESCRIPTION, Text),
            (CREATED, field::CREATED, Time),
        ]),
    );
    s.finish = Some(|ev| {
        if let Some(id) = ev.text(extra::ID).map(str::to_owned) {
            ev.set(field::CUSTOMER_ID, Value::text(id));
        }
    });
    s
}

fn refunds() -> Spec {
    use Cell::*;
    let mut s = base(
        "refund",
        cols(&[
            (&["id"], extra::ID, Text),
            (&["Amount"], field::REFUNDED, Money),
            (CREATED, field::CREATED, Time),
            (&["Charge ID", "Charge"], field::CHARGE_ID, Text),
            (
                &["Payment Intent ID", "PaymentIntent ID", "Payment Intent"],
                field::PAYMENT_INTENT_ID,
                Text,
            ),
            (&["Status"], field::STATUS, Status),
            (&["Reason"], "reason", Text),
            (&["Description"], field::DESCRIPTION, Text),
        ]),
    );
    s.finish = Some(|ev| {
        if let Some(id) = ev.text(extra::ID).map(str::to_owned) {
            ev.set(extra::REFUND_ID, Value::text(id));
        }
        if let Some(t) = ev.get(field::CREATED).cloned() {
            ev.set(field::REFUNDED_AT, t);
        }
        settle_refund(ev);
    });
    s
}

/// Which export a header row is: by the columns only that export has, then by the file name.
fn detect(headers: &[String], origin: &str) -> Option<Spec> {
    let has = |h: &str| headers.iter().any(|x| x == h);
    if has("amount refunded")
        || has("card last4")
        || has("paymentintent id")
        || has("captured")
        || has("seller message")
    {
        return Some(payments());
    }
    if (has("charge id") || has("charge")) && has("amount") {
        return Some(refunds());
    }
    if has("email") && !has("amount") {
        return Some(customers());
    }
    let name = std::path::Path::new(origin)
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if name.contains("refund") {
        Some(refunds())
    } else if name.contains("customer") {
        Some(customers())
    } else if name.contains("payment") || name.contains("charge") {
        Some(payments())
    } else {
        None
    }
}

/// Reads one export; returns how many data rows it had (each accounted for).
pub(crate) fn read(
    mut input: impl std::io::BufRead,
    origin: &str,
    window: &Window,
    sink: &mut dyn Sink,
) -> usize {
    // The header decides the preset, and the reader needs it again: read it, then chain it back.
    let mut first = Vec::new();
    if let Err(e) = input.read_until(b'\n', &mut first) {
        sink.skip(Skip {
            provenance: prov(origin, "line 1"),
            reason: SkipReason::Malformed,
            detail: format!("cannot read the file: {e}"),
        });
        return 0;
    }
    let headers: Vec<String> = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(first.as_slice())
        .records()
        .next()
        .and_then(Result::ok)
        .map(|r| r.iter().map(table::norm).collect())
        .unwrap_or_default();
    let Some(spec) = detect(&headers, origin) else {
        sink.skip(Skip {
            provenance: prov(origin, "file"),
            reason: SkipReason::Irrelevant,
            detail: "not a Stripe payments, customers or refunds export (no column tells which); read it with --csv and [sources.csv] rules".into(),
        });
        return 0;
    };
    let stats = table::read_table(
        std::io::Read::chain(first.as_slice(), input),
        origin,
        &spec,
        b',',
        window,
        sink,
    );
    stats.rows
}

fn prov(origin: &str, locator: &str) -> Provenance {
    Provenance {
        source: SourceKind::Stripe,
        origin: origin.to_string(),
        locator: locator.into(),
    }
}
