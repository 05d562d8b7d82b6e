//! One Stripe API object (as JSON) → evidence. The one code path for objects from the live API,
//! from the cache and from dumps, so the three agree field for field.
//!
//! Parsing is lenient on purpose: Stripe-compatible servers, old API versions and hand-edited
//! dumps leave fields out or type them differently (an amount as a string, a time as RFC 3339,
//! an expanded object where an id was expected). A field that is there but cannot be read is
//! named in `unreadable`; the rest of the object is still evidence.

use chrono::{DateTime, Utc};
use serde_json::Value as Json;

use crate::evidence::{field, Evidence, Provenance, SkipReason, Value};

/// Field names this source adds beside the well-known ones.
pub mod extra {
    /// The object's own Stripe id (ch_…, pi_…, re_…, cus_…, cs_…): what duplicates are
    /// recognised by.
    pub const ID: &str = "id";
    pub const REFUND_ID: &str = "refund_id";
    pub const CHECKOUT_SESSION_ID: &str = "checkout_session_id";
    pub const CURRENCY: &str = "currency";
    /// Fields that were present but could not be read, comma-separated.
    pub const UNREADABLE: &str = "unreadable";
    /// A refund that is still pending: its amount, not (yet) paid back.
    pub const REFUND_PENDING: &str = "refund_pending";
    /// A refund that failed or was canceled: its amount, never paid back.
    pub const REFUND_NOT_MADE: &str = "refund_not_made";
    /// A charge's `captured` flag.
    pub const CAPTURED: &str = "captured";
    /// An uncaptured charge's amount: authorised, held, not paid.
    pub const AUTHORIZED: &str = "amount_authorized";
    /// The connected account (acct_…) an object belongs to, on a Connect platform.
    pub const ACCOUNT: &str = "account";
    pub const INVOICE_ID: &str = "invoice_id";
    pub const DISPUTE_ID: &str = "dispute_id";
    pub const SUBSCRIPTION_ID: &str = "subscription_id";
    /// A dispute's amount: held back from the business while the dispute lasts, lost if it is lost.
    pub const DISPUTED: &str = "amount_disputed";
}

/// The object types read, as named in messages.
const READ: &str =
    "charges, payment intents, refunds, customers, checkout sessions, invoices, disputes, subscriptions and the events that carry them";

/// What kind of Stripe object this is: its `object` field, or failing that its id's prefix.
pub(crate) fn object_type(obj: &serde_json::Map<String, Json>) -> Option<&'static str> {
    let named = obj.get("object").and_then(Json::as_str);
    let id = obj.get("id").and_then(Json::as_str).unwrap_or("");
    let t = match named {
        Some("charge") => "charge",
        Some("payment_intent") => "payment_intent",
        Some("refund") => "refund",
        Some("customer") => "customer",
        Some("checkout.session") => "checkout_session",
        Some("invoice") => "invoice",
        Some("dispute") => "dispute",
        Some("subscription") => "subscription",
        Some(_) => return None,
        None if id.starts_with("ch_") || id.starts_with("py_") => "charge",
        None if id.starts_with("pi_") => "payment_intent",
        None if id.starts_with("re_") || id.starts_with("pyr_") => "refund",
        None if id.starts_with("cus_") => "customer",
        None if id.starts_with("cs_") => "checkout_session",
        None if id.starts_with("in_") => "invoice",
        None if id.starts_with("dp_") || id.starts_with("du_") => "dispute",
        None if id.starts_with("sub_") => "subscription",
        None => return None,
    };
    Some(t)
}

/// The evidence an object gives, or why it gives none.
pub(crate) fn evidence(
    json: &Json,
    provenance: Provenance,
) -> Result<Evidence, (SkipReason, String)> {
    let Some(obj) = json.as_object() else {
        return Err((
            SkipReason::Malformed,
            format!("expected a Stripe object, found {}", kind_of(json)),
        ));
    };
    if is_event(obj) {
        return event(obj, provenance);
    }
    let Some(kind) = object_type(obj) else {
        let what = obj
            .get("object")
            .and_then(Json::as_str)
            .unwrap_or("object without an \"object\" field");
        return Err((
            SkipReason::Irrelevant,
            format!("a Stripe {what}; gapfill reads {READ}"),
        ));
    };
    let Some(id) = obj
        .get("id")
        .and_then(Json::as_str)
        .filter(|s| !s.is_empty())
    else {
        return Err((
            SkipReason::Malformed,
            format!("this {kind} has no id, so it cannot be told apart from others"),
        ));
    };
    let mut r = Reader {
        obj,
        ev: Evidence::new(provenance, kind),
        unreadable: Vec::new(),
    };
    r.ev.set(extra::ID, Value::text(id));
    r.time("created", field::CREATED);
    r.text("description", field::DESCRIPTION);
    r.id("customer", field::CUSTOMER_ID);
    r.metadata();
    let currency = obj
        .get("currency")
        .and_then(Json::as_str)
        .filter(|c| !c.is_empty())
        .map(str::to_ascii_uppercase);
    if let Some(c) = &currency {
        r.ev.set(extra::CURRENCY, Value::text(c.clone()));
    }
    let cur = currency.as_deref();
    match kind {
        "charge" => {
            r.ev.set(field::CHARGE_ID, Value::text(id));
            r.id("payment_intent", field::PAYMENT_INTENT_ID);
            r.money("amount", field::AMOUNT, cur);
            r.money("amount_refunded", field::REFUNDED, cur);
            r.nested_text(&["billing_details", "name"], field::NAME);
            r.nested_text(&["billing_details", "email"], field::EMAIL);
            r.text("receipt_email", field::EMAIL);
            r.nested_text(&["billing_details", "phone"], field::PHONE);
            r.text("statement_descriptor", field::STATEMENT_DESCRIPTOR);
            r.text(
                "calculated_statement_descriptor",
                field::STATEMENT_DESCRIPTOR,
            );
            r.text("failure_code", "failure_code");
            r.text("failure_message", "failure_message");
            r.nested_text(&["outcome", "reason"], "decline_reason");
            r.text("receipt_number", "receipt_number");
            r.nested_text(&["payment_method_details", "card", "last4"], "card_last4");
            r.nested_text(
                &["payment_method_details", "card", "fingerprint"],
                "card_fingerprint",
            );
            r.nested_text(&["payment_method_details", "card", "brand"], "card_brand");
            // Older API versions embed the refunds; the latest one dates the refund.
            let last_refund = obj
                .get("refunds")
                .and_then(|r| r.get("data"))
                .and_then(Json::as_array)
                .and_then(|list| {
                    list.iter()
                        .filter_map(|x| x.get("created").and_then(unix))
                        .max()
                });
            if let Some(t) = last_refund {
                r.ev.set(field::REFUNDED_AT, Value::Time(t));
            }
            let flag = |name: &str| obj.get(name).and_then(Json::as_bool);
            if let Some(captured) = flag("captured") {
                r.ev.set(extra::CAPTURED, Value::Bool(captured));
            }
            let word = charge_status(&Charge {
                status: obj.get("status").and_then(Json::as_str).unwrap_or(""),
                refunded: flag("refunded") == Some(true),
                paid: flag("paid"),
                captured: flag("captured"),
                failed: obj
                    .get("failure_code")
                    .and_then(Json::as_str)
                    .is_some_and(|c| !c.is_empty()),
                outcome: obj
                    .get("outcome")
                    .and_then(|o| o.get("type"))
                    .and_then(Json::as_str)
                    .unwrap_or(""),
                ev: &r.ev,
            });
            if word == "uncaptured" {
                authorization_only(&mut r.ev);
            }
            r.ev.set(field::STATUS, Value::text(word));
        }
        "payment_intent" => {
            r.ev.set(field::PAYMENT_INTENT_ID, Value::text(id));
            if !r.id("latest_charge", field::CHARGE_ID) {
                // Before API version 2022-11-15 the charges were embedded instead.
                if let Some(first) = obj
                    .get("charges")
                    .and_then(|c| c.get("data"))
                    .and_then(Json::as_array)
                    .and_then(|d| d.last())
                    .and_then(|c| c.get("id"))
                    .and_then(Json::as_str)
                {
                    r.ev.set(field::CHARGE_ID, Value::text(first));
                }
            }
            r.money("amount", field::AMOUNT, cur);
            r.money("amount_received", "amount_received", cur);
            r.text("receipt_email", field::EMAIL);
            r.text("statement_descriptor", field::STATEMENT_DESCRIPTOR);
            r.nested_text(&["last_payment_error", "code"], "failure_code");
            r.nested_text(&["last_payment_error", "message"], "failure_message");
            r.nested_text(&["last_payment_error", "decline_code"], "decline_reason");
            r.text("cancellation_reason", "cancellation_reason");
            r.time("canceled_at", "canceled_at");
            r.nested_text(&["shipping", "name"], field::NAME);
            // An expanded latest charge or payment method carries the payer.
            for from in ["latest_charge", "payment_method"] {
                r.nested_text(&[from, "billing_details", "name"], field::NAME);
                r.nested_text(&[from, "billing_details", "email"], field::EMAIL);
                r.nested_text(&[from, "billing_details", "phone"], field::PHONE);
            }
            r.lower("status", field::STATUS);
        }
        "refund" => {
            r.ev.set(extra::REFUND_ID, Value::text(id));
            r.id("charge", field::CHARGE_ID);
            r.id("payment_intent", field::PAYMENT_INTENT_ID);
            r.money("amount", field::REFUNDED, cur);
            r.time("created", field::REFUNDED_AT);
            r.text("reason", "reason");
            r.text("failure_reason", "failure_reason");
            r.lower("status", field::STATUS);
            settle_refund(&mut r.ev);
        }
        "customer" => {
            r.ev.set(field::CUSTOMER_ID, Value::text(id));
            r.text("name", field::NAME);
            r.text("email", field::EMAIL);
            r.text("phone", field::PHONE);
            if obj.get("deleted").and_then(Json::as_bool) == Some(true) {
                r.ev.set(field::STATUS, Value::text("deleted"));
            }
        }
        "checkout_session" => {
            r.ev.set(extra::CHECKOUT_SESSION_ID, Value::text(id));
            r.id("payment_intent", field::PAYMENT_INTENT_ID);
            r.money("amount_total", field::AMOUNT, cur);
            r.nested_text(&["customer_details", "name"], field::NAME);
            r.nested_text(&["customer_details", "email"], field::EMAIL);
            r.text("customer_email", field::EMAIL);
            r.nested_text(&["customer_details", "phone"], field::PHONE);
            r.text("client_reference_id", "client_reference_id");
            r.nested_text(
                &["customer_details", "address", "postal_code"],
                "postal_code",
            );
            // Where Checkout collected a shipping address, by API version.
            r.nested_text(
                &["collected_information", "shipping_details", "name"],
                "shipping_name",
            );
            r.nested_text(&["shipping_details", "name"], "shipping_name");
            r.nested_text(&["shipping", "name"], "shipping_name");
            r.custom_fields();
            r.lower("status", field::STATUS);
            r.lower("payment_status", "payment_status");
        }
        "invoice" => {
            r.ev.set(extra::INVOICE_ID, Value::text(id));
            if !r.id("payment_intent", field::PAYMENT_INTENT_ID) {
                // Since API version 2025-03-31 an invoice lists its payments instead.
                r.nested_id(
                    &["payments", "data", "0", "payment", "payment_intent"],
                    field::PAYMENT_INTENT_ID,
                );
            }
            if !r.id("charge", field::CHARGE_ID) {
                r.nested_id(
                    &["payments", "data", "0", "payment", "charge"],
                    field::CHARGE_ID,
                );
            }
            r.money("total", field::AMOUNT, cur);
            r.money("amount_paid", "amount_paid", cur);
            r.money("amount_due", "amount_due", cur);
            r.money("amount_remaining", "amount_remaining", cur);
            r.text("customer_name", field::NAME);
            r.text("customer_email", field::EMAIL);
            r.text("customer_phone", field::PHONE);
            r.text("number", "invoice_number");
            r.text("statement_descriptor", field::STATEMENT_DESCRIPTOR);
            r.nested_time(&["status_transitions", "paid_at"], "paid_at");
            r.nested_time(&["status_transitions", "voided_at"], "voided_at");
            r.line_descriptions();
            r.lower("status", field::STATUS);
        }
        "dispute" => {
            r.ev.set(extra::DISPUTE_ID, Value::text(id));
            r.id("charge", field::CHARGE_ID);
            r.id("payment_intent", field::PAYMENT_INTENT_ID);
            r.money("amount", extra::DISPUTED, cur);
            r.text("reason", "reason");
            r.nested_time(&["evidence_details", "due_by"], "dispute_due_by");
            r.lower("status", field::STATUS);
        }
        "subscription" => {
            r.ev.set(extra::SUBSCRIPTION_ID, Value::text(id));
            r.time("start_date", "start_date");
            r.time("current_period_start", "current_period_start");
            r.time("current_period_end", "current_period_end");
            r.time("cancel_at", "cancel_at");
            r.time("canceled_at", "canceled_at");
            r.time("ended_at", "ended_at");
            r.nested_text(&["cancellation_details", "reason"], "cancellation_reason");
            r.nested_id(&["latest_invoice"], extra::INVOICE_ID);
            r.lower("status", field::STATUS);
        }
        _ => {}
    }
    // An expanded customer names the customer where the object itself does not.
    r.nested_text(&["customer", "name"], field::NAME);
    r.nested_text(&["customer", "email"], field::EMAIL);
    r.nested_text(&["customer", "phone"], field::PHONE);
    r.text("account", extra::ACCOUNT);
    if !r.unreadable.is_empty() {
        r.unreadable.sort_unstable();
        r.unreadable.dedup();
        let list = r.unreadable.join(", ");
        r.ev.set(extra::UNREADABLE, Value::text(list));
    }
    let mut ev = r.ev;
    ev.observed_at = ev.get(field::CREATED).and_then(Value::as_time);
    Ok(ev)
}

fn is_event(obj: &serde_json::Map<String, Json>) -> bool {
    match obj.get("object").and_then(Json::as_str) {
        Some(o) => o == "event",
        None => obj
            .get("id")
            .and_then(Json::as_str)
            .is_some_and(|id| id.starts_with("evt_")),
    }
}

/// An event (`/v1/events`, a webhook body, `stripe events list`) is evidence of the object it
/// carries, as that object was at the event's time: a `charge.refunded` event is the charge,
/// refunded, at that moment. The locator names the event and its type, and the event's time is
/// when the object was observed, so that of several copies of one object the latest event's wins
/// (see [`crate::sources::csv::Dedup`]). A `*.deleted` event's object is deleted.
fn event(
    obj: &serde_json::Map<String, Json>,
    mut provenance: Provenance,
) -> Result<Evidence, (SkipReason, String)> {
    let id = obj.get("id").and_then(Json::as_str).unwrap_or("");
    let kind = obj.get("type").and_then(Json::as_str).unwrap_or("");
    let what = if kind.is_empty() {
        format!("event {id}")
    } else {
        format!("event {id} ({kind})")
    };
    let carried = obj.get("data").and_then(|d| d.get("object"));
    let Some(carried) = carried.filter(|c| c.is_object()) else {
        return Err((
            SkipReason::Malformed,
            format!("{what} carries no object (data.object); export the event again with its data"),
        ));
    };
    let carried_obj = carried.as_object().expect("checked to be an object");
    if is_event(carried_obj) {
        return Err((
            SkipReason::Malformed,
            format!("{what} carries another event, which no Stripe event does"),
        ));
    }
    let at = obj.get("created").map(|v| (v, unix(v)));
    if let Some((_, None)) = at {
        return Err((
            SkipReason::Malformed,
            format!(
                "{what}: its created time {} cannot be read",
                at.map(|a| a.0.to_string()).unwrap_or_default()
            ),
        ));
    }
    let at = at.and_then(|a| a.1);
    if !id.is_empty() {
        provenance.locator = match carried_obj.get("id").and_then(Json::as_str) {
            Some(of) => format!("{id} ({kind}: {of})"),
            None => format!("{id} ({kind})"),
        };
    }
    let mut ev = evidence(carried, provenance)
        .map_err(|(reason, detail)| (reason, format!("{what}: {detail}")))?;
    // `customer.deleted` deletes the customer; `customer.subscription.deleted` ends a
    // subscription, whose own status says so.
    let carried_name = carried_obj
        .get("object")
        .and_then(Json::as_str)
        .unwrap_or("");
    if !carried_name.is_empty() && kind == format!("{carried_name}.deleted") {
        ev.set(field::STATUS, Value::text("deleted"));
    }
    if let Some(account) = obj.get("account").and_then(Json::as_str) {
        ev.set(extra::ACCOUNT, Value::text(account));
    }
    // The event's id and type are in the locator, its time in `observed_at`: they describe this
    // copy of the object, not the object, so no field carries them to another copy.
    if let Some(t) = at {
        ev.observed_at = Some(t);
    }
    Ok(ev)
}

/// Money moves only when a refund succeeded (invariant 10): a pending one may still fail, a
/// failed or canceled one paid nothing back. Only a succeeded refund (or one without a status,
/// from before refunds had one) keeps its amount as refunded; the others keep it under a name
/// that says what it is, so that nothing adds it up.
pub(crate) fn settle_refund(ev: &mut Evidence) {
    let status = ev
        .text(field::STATUS)
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let aside = match status.as_str() {
        "" | "succeeded" => return,
        "failed" | "canceled" | "cancelled" => extra::REFUND_NOT_MADE,
        _ => extra::REFUND_PENDING,
    };
    if let Some(v) = ev.fields.remove(field::REFUNDED) {
        ev.set(aside, v);
    }
    ev.fields.remove(field::REFUNDED_AT);
}

/// An authorisation that was never captured holds money; none moved (invariant 10). It is
/// evidence of its own kind, `authorization`, which no mapping takes a payment from unless it
/// names the kind; its amount is kept as the amount authorised.
pub(crate) fn authorization_only(ev: &mut Evidence) {
    ev.kind = "authorization".into();
    if let Some(v) = ev.fields.remove(field::AMOUNT) {
        ev.set(extra::AUTHORIZED, v);
    }
}

/// What a charge says of itself, for [`charge_status`].
pub(crate) struct Charge<'a> {
    /// `status` as written ("" when absent: older API versions and some exports).
    pub status: &'a str,
    pub refunded: bool,
    pub paid: Option<bool>,
    pub captured: Option<bool>,
    /// A `failure_code` is given.
    pub failed: bool,
    /// `outcome.type`: authorized, manual_review, issuer_declined, blocked, invalid.
    pub outcome: &'a str,
    pub ev: &'a Evidence,
}

/// The charge's state in one word: succeeded, failed, refunded, partially_refunded, uncaptured
/// (authorised, not captured: no money moved), or the source's own word for anything else
/// (pending…). Without a `status`, `paid`, `failure_code` and `outcome` decide: a charge that
/// says nothing of failure and was paid succeeded.
pub(crate) fn charge_status(c: &Charge) -> String {
    let money = |name| match c.ev.get(name) {
        Some(Value::Money { minor, .. }) => Some(*minor),
        _ => None,
    };
    let status = c.status.trim().to_lowercase();
    let declined = matches!(c.outcome, "issuer_declined" | "blocked" | "invalid");
    if status == "failed" || (status.is_empty() && (c.failed || c.paid == Some(false) || declined))
    {
        return "failed".into();
    }
    if c.captured == Some(false) && matches!(status.as_str(), "" | "succeeded" | "paid") {
        return "uncaptured".into();
    }
    let (amount, refunded) = (money(field::AMOUNT), money(field::REFUNDED).unwrap_or(0));
    if c.refunded || amount.is_some_and(|a| refunded >= a && refunded > 0) {
        return "refunded".into();
    }
    if refunded > 0 {
        return "partially_refunded".into();
    }
    match status.as_str() {
        "" | "paid" => "succeeded".into(),
        _ => status,
    }
}

fn kind_of(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// Unix seconds, or RFC 3339 text as some dumps and servers write it.
fn unix(v: &Json) -> Option<DateTime<Utc>> {
    match v {
        Json::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .and_then(|s| DateTime::from_timestamp(s, 0)),
        Json::String(s) => s
            .trim()
            .parse::<i64>()
            .ok()
            .and_then(|s| DateTime::from_timestamp(s, 0))
            .or_else(|| {
                DateTime::parse_from_rfc3339(s.trim())
                    .ok()
                    .map(|t| t.with_timezone(&Utc))
            }),
        _ => None,
    }
}

struct Reader<'a> {
    obj: &'a serde_json::Map<String, Json>,
    ev: Evidence,
    unreadable: Vec<String>,
}

impl<'a> Reader<'a> {
    /// The value at `key` unless it is absent or null.
    fn get(&self, key: &str) -> Option<&'a Json> {
        self.obj.get(key).filter(|v| !v.is_null())
    }

    fn text(&mut self, key: &str, name: &str) {
        if self.ev.fields.contains_key(name) {
            return;
        }
        match self.get(key) {
            None => {}
            Some(Json::String(s)) => {
                self.ev.set(name, Value::text(s.trim()));
            }
            Some(Json::Number(n)) => {
                self.ev.set(name, Value::text(n.to_string()));
            }
            Some(_) => self.unreadable.push(key.to_string()),
        }
    }

    fn lower(&mut self, key: &str, name: &str) {
        self.text(key, name);
        if let Some(Value::Text(s)) = self.ev.fields.get_mut(name) {
            *s = s.to_lowercase();
        }
    }

    fn nested_text(&mut self, path: &[&str], name: &str) {
        if self.ev.fields.contains_key(name) {
            return;
        }
        match self.at(path) {
            None => {}
            Some(Json::String(s)) => {
                self.ev.set(name, Value::text(s.trim()));
            }
            Some(_) => self.unreadable.push(path.join(".")),
        }
    }

    /// An id, or the id of an expanded object. True when one was set.
    fn id(&mut self, key: &str, name: &str) -> bool {
        match self.get(key) {
            None => false,
            Some(Json::String(s)) if !s.trim().is_empty() => {
                self.ev.set(name, Value::text(s.trim()));
                true
            }
            Some(Json::Object(o)) => match o.get("id").and_then(Json::as_str) {
                Some(s) => {
                    self.ev.set(name, Value::text(s));
                    true
                }
                None => {
                    self.unreadable.push(key.to_string());
                    false
                }
            },
            Some(_) => {
                self.unreadable.push(key.to_string());
                false
            }
        }
    }

    fn time(&mut self, key: &str, name: &str) {
        if let Some(v) = self.get(key) {
            match unix(v) {
                Some(t) => {
                    self.ev.set(name, Value::Time(t));
                }
                None => self.unreadable.push(key.to_string()),
            }
        }
    }

    /// Stripe amounts are integer minor units already; a string of digits is accepted too.
    fn money(&mut self, key: &str, name: &str, currency: Option<&str>) {
        let Some(v) = self.get(key) else { return };
        let minor = match v {
            Json::Number(n) => n.as_i64(),
            Json::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        match (minor, currency) {
            (Some(minor), Some(c)) => {
                self.ev.set(
                    name,
                    Value::Money {
                        minor: crate::money::from_stripe(minor, c),
                        currency: c.to_string(),
                    },
                );
            }
            (Some(_), None) => self.unreadable.push(format!("{key} (no currency)")),
            (None, _) => self.unreadable.push(key.to_string()),
        }
    }

    /// The value at a path of keys (a digit is an array index), unless absent or null.
    fn at(&self, path: &[&str]) -> Option<&'a Json> {
        let mut at = self.get(path[0]);
        for p in &path[1..] {
            at = at
                .and_then(|v| match (v, p.parse::<usize>()) {
                    (Json::Array(a), Ok(i)) => a.get(i),
                    _ => v.get(p),
                })
                .filter(|v| !v.is_null());
        }
        at
    }

    /// An id at a path: a string, or an expanded object's id.
    fn nested_id(&mut self, path: &[&str], name: &str) {
        let id = match self.at(path) {
            Some(Json::String(s)) => Some(s.trim()),
            Some(Json::Object(o)) => o.get("id").and_then(Json::as_str),
            _ => None,
        };
        if let Some(id) = id.filter(|s| !s.is_empty()) {
            self.ev.set(name, Value::text(id));
        }
    }

    fn nested_time(&mut self, path: &[&str], name: &str) {
        if let Some(v) = self.at(path) {
            match unix(v) {
                Some(t) => {
                    self.ev.set(name, Value::Time(t));
                }
                None => self.unreadable.push(path.join(".")),
            }
        }
    }

    /// A Checkout Session's custom fields, each as `custom_fields.<key>`: the text typed, the
    /// number given, or the dropdown option chosen (its value; its label as
    /// `custom_fields.<key>.label`).
    fn custom_fields(&mut self) {
        let Some(list) = self.get("custom_fields") else {
            return;
        };
        let Some(list) = list.as_array() else {
            self.unreadable.push("custom_fields".into());
            return;
        };
        for f in list {
            let Some(key) = f
                .get("key")
                .and_then(Json::as_str)
                .filter(|k| !k.is_empty())
            else {
                self.unreadable
                    .push("custom_fields (a field without a key)".into());
                continue;
            };
            let kind = f.get("type").and_then(Json::as_str).unwrap_or("text");
            let value = f.get(kind).and_then(|v| v.get("value"));
            let value = match value {
                Some(Json::String(s)) => s.trim().to_string(),
                Some(Json::Number(n)) => n.to_string(),
                // Not filled in.
                None | Some(Json::Null) => continue,
                Some(_) => {
                    self.unreadable.push(format!("custom_fields.{key}"));
                    continue;
                }
            };
            if kind == "dropdown" {
                let label = f
                    .get("dropdown")
                    .and_then(|d| d.get("options"))
                    .and_then(Json::as_array)
                    .and_then(|o| {
                        o.iter()
                            .find(|o| o.get("value").and_then(Json::as_str) == Some(value.as_str()))
                    })
                    .and_then(|o| o.get("label"))
                    .and_then(Json::as_str);
                if let Some(label) = label {
                    self.ev
                        .set(format!("custom_fields.{key}.label"), Value::text(label));
                }
            }
            self.ev
                .set(format!("custom_fields.{key}"), Value::text(value));
        }
    }

    /// An invoice's line descriptions, one per line, in order, joined by "; ".
    fn line_descriptions(&mut self) {
        let lines = self.at(&["lines", "data"]).and_then(Json::as_array);
        let text: Vec<&str> = lines
            .into_iter()
            .flatten()
            .filter_map(|l| l.get("description").and_then(Json::as_str))
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .collect();
        if !text.is_empty() {
            self.ev
                .set("line_descriptions", Value::text(text.join("; ")));
        }
    }

    fn metadata(&mut self) {
        match self.get("metadata") {
            None => {}
            Some(Json::Object(m)) => {
                for (k, v) in m {
                    let text = match v {
                        Json::String(s) => s.clone(),
                        Json::Null => continue,
                        other => other.to_string(),
                    };
                    self.ev.set(format!("metadata.{k}"), Value::text(text));
                }
            }
            Some(_) => self.unreadable.push("metadata".into()),
        }
    }
}
