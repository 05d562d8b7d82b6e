//! schema.org reservations embedded in HTML mail, the most trustworthy thing a booking mail can
//! carry: JSON-LD (`<script type="application/ld+json">`) and microdata (`itemscope`,
//! `itemprop`). Both are turned into the same JSON shape, so one mapping reads either.

use std::sync::LazyLock;

use html5ever::tendril::TendrilSink;
use markup5ever_rcdom::{Handle, NodeData, RcDom};
use regex::Regex;
use serde_json::{Map, Value as Json};

use super::values;
use crate::evidence::{field, Value};

static LD_SCRIPT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?is)<script[^>]*\btype\s*=\s*["']?application/ld\+json["']?[^>]*>(.*?)</script\s*>"#,
    )
    .expect("a valid regex")
});

/// Where a reservation was found, for the evidence's `structured` field.
pub const JSON_LD: &str = "json-ld";
pub const MICRODATA: &str = "microdata";

/// The reservation objects in an HTML body, JSON-LD first, each with where it came from.
/// Blocks that do not parse are reported in `broken`, not fatal: the rest of the mail still
/// counts.
pub fn reservations(html: &str, broken: &mut Vec<String>) -> Vec<(&'static str, Json)> {
    let mut out = Vec::new();
    if contains_ci(html, "application/ld+json") {
        for block in LD_SCRIPT.find_iter(html) {
            let text = script_content(block.as_str()).trim();
            // Some senders wrap the block in an HTML comment or CDATA.
            let text = text
                .trim_start_matches("<!--")
                .trim_end_matches("-->")
                .trim_start_matches("<![CDATA[")
                .trim_end_matches("]]>")
                .trim();
            match serde_json::from_str::<Json>(text) {
                Ok(v) => collect(v, &mut out, JSON_LD),
                Err(e) => broken.push(format!("a JSON-LD block does not parse: {e}")),
            }
        }
    }
    if contains_ci(html, "itemscope") {
        let dom = html5ever::parse_document(RcDom::default(), Default::default())
            .from_utf8()
            .one(html.as_bytes());
        let mut items = Vec::new();
        top_level_items(&dom.document, &mut items);
        for item in items {
            collect(item, &mut out, MICRODATA);
        }
    }
    out
}

/// What an [`LD_SCRIPT`] match holds between its tags: the text its group 1 captures, found
/// without asking the regex for groups (which runs a backtracking search over the whole block).
/// The opening tag's part of the pattern can hold no `>` but its last, and the closing
/// `</script\s*>` no `<` but its first, so the content runs from after the match's first `>` to
/// its last `<`.
fn script_content(block: &str) -> &str {
    match (block.find('>'), block.rfind('<')) {
        (Some(open), Some(close)) if open < close => &block[open + 1..close],
        _ => "",
    }
}

/// `needle` is lower case; HTML writes these names in lower case nearly always, so that is
/// looked for first, with a slower case-blind scan only when a case-blind byte of it is there.
fn contains_ci(haystack: &str, needle: &str) -> bool {
    haystack.contains(needle)
        || (haystack.contains(&needle.to_ascii_uppercase()[..3])
            && haystack
                .as_bytes()
                .windows(needle.len())
                .any(|w| w.eq_ignore_ascii_case(needle.as_bytes())))
}

/// Reservation objects anywhere in a JSON-LD value: at the top, in arrays, in `@graph`.
fn collect(v: Json, out: &mut Vec<(&'static str, Json)>, how: &'static str) {
    match v {
        Json::Array(items) => items.into_iter().for_each(|i| collect(i, out, how)),
        Json::Object(mut o) => {
            if let Some(graph) = o.remove("@graph") {
                collect(graph, out, how);
            }
            if is_reservation(&o) {
                out.push((how, Json::Object(o)));
            }
        }
        _ => {}
    }
}

fn type_names(o: &Map<String, Json>) -> Vec<&str> {
    match o.get("@type") {
        Some(Json::String(s)) => vec![short_name(s)],
        Some(Json::Array(a)) => a.iter().filter_map(Json::as_str).map(short_name).collect(),
        _ => Vec::new(),
    }
}

/// "http://schema.org/RentalCarReservation" → "RentalCarReservation".
fn short_name(s: &str) -> &str {
    s.rsplit(['/', '#', ':']).next().unwrap_or(s)
}

/// RentalCarReservation, the generic Reservation, and its other kinds (FlightReservation…),
/// which carry the same core properties.
fn is_reservation(o: &Map<String, Json>) -> bool {
    type_names(o).iter().any(|t| t.ends_with("Reservation"))
}

fn text_of(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Json::Number(n) => Some(n.to_string()),
        Json::Array(a) => a.iter().find_map(text_of),
        Json::Object(o) => o.get("name").and_then(text_of),
        _ => None,
    }
}

fn prop<'a>(o: &'a Map<String, Json>, name: &str) -> Option<&'a Json> {
    o.get(name).filter(|v| !v.is_null())
}

/// A place: its name and address on one line, as people would write it.
fn place_text(v: &Json) -> Option<String> {
    match v {
        Json::Object(o) => {
            let name = o.get("name").and_then(text_of);
            let address = o.get("address").and_then(|a| match a {
                Json::Object(ao) => {
                    let parts: Vec<String> = [
                        "streetAddress",
                        "postalCode",
                        "addressLocality",
                        "addressRegion",
                        "addressCountry",
                    ]
                    .iter()
                    .filter_map(|k| ao.get(*k).and_then(text_of))
                    .collect();
                    (!parts.is_empty()).then(|| parts.join(", "))
                }
                other => text_of(other),
            });
            match (name, address) {
                (Some(n), Some(a)) => Some(format!("{n}, {a}")),
                (n, a) => n.or(a),
            }
        }
        other => text_of(other),
    }
}

/// The evidence fields a reservation object gives, under the well-known names where one fits
/// and `reservation_for`, `dropoff_location`, `modified` otherwise.
pub fn fields(o: &Json) -> Vec<(String, Value)> {
    let Json::Object(o) = o else {
        return Vec::new();
    };
    let mut out: Vec<(String, Value)> = Vec::new();
    let mut text = |name: &str, v: Option<String>| {
        if let Some(v) = v {
            out.push((name.to_string(), Value::Text(v)));
        }
    };
    text(
        field::BOOKING_CODE,
        prop(o, "reservationNumber")
            .or_else(|| prop(o, "reservationId"))
            .and_then(text_of),
    );
    text(
        field::STATUS,
        prop(o, "reservationStatus")
            .and_then(text_of)
            .map(|s| status_word(&s)),
    );
    if let Some(who) = prop(o, "underName") {
        text(field::NAME, text_of(who));
        if let Json::Object(p) = who {
            text(field::EMAIL, p.get("email").and_then(text_of));
            text(field::PHONE, p.get("telephone").and_then(text_of));
        }
    }
    text(
        "reservation_for",
        prop(o, "reservationFor").and_then(text_of),
    );
    text(
        field::LOCATION,
        prop(o, "pickupLocation").and_then(place_text),
    );
    text(
        "dropoff_location",
        prop(o, "dropoffLocation").and_then(place_text),
    );
    let mut times = Vec::new();
    for (name, keys) in [
        (field::STARTS_AT, ["pickupTime", "startTime", "checkinTime"]),
        (field::ENDS_AT, ["dropoffTime", "endTime", "checkoutTime"]),
        ("modified", ["modifiedTime", "modifiedTime", "modifiedTime"]),
        (
            field::CREATED,
            ["bookingTime", "bookingTime", "bookingTime"],
        ),
    ] {
        if let Some(s) = keys.iter().find_map(|k| prop(o, k).and_then(text_of)) {
            times.push((name, s));
        }
    }
    for (name, s) in times {
        match values::parse_instant(&s) {
            Some(t) => out.push((name.to_string(), Value::Time(t))),
            None => out.push((format!("{name}_text"), Value::Text(s))),
        }
    }
    if let Some(m) = price(o) {
        out.push((field::AMOUNT.to_string(), m));
    }
    out
}

/// The schema.org property an evidence field is read from, so that a mapping's pattern for a
/// field the structured data already gave need not run. Fields with no single source map to a
/// name no object has.
pub fn source_key(field_name: &str) -> &'static str {
    match field_name {
        "booking_code" => "reservationNumber",
        "status" => "reservationStatus",
        "starts_at" => "pickupTime",
        "ends_at" => "dropoffTime",
        "location" => "pickupLocation",
        "amount" => "totalPrice",
        _ => "\u{0}none",
    }
}

/// "http://schema.org/ReservationConfirmed" → "confirmed".
fn status_word(s: &str) -> String {
    let short = short_name(s);
    short
        .strip_prefix("Reservation")
        .filter(|r| !r.is_empty())
        .unwrap_or(short)
        .to_ascii_lowercase()
}

fn price(o: &Map<String, Json>) -> Option<Value> {
    let total = prop(o, "totalPrice")?;
    let (amount, currency) = match total {
        Json::Object(spec) => (
            spec.get("price").and_then(text_of)?,
            spec.get("priceCurrency").and_then(text_of),
        ),
        other => (text_of(other)?, None),
    };
    let currency = currency.or_else(|| prop(o, "priceCurrency").and_then(text_of));
    let (minor, currency) = values::parse_money(&amount, currency.as_deref())?;
    Some(Value::Money { minor, currency })
}

// ---- Microdata ----

fn attr(node: &Handle, name: &str) -> Option<String> {
    match &node.data {
        NodeData::Element { attrs, .. } => attrs
            .borrow()
            .iter()
            .find(|a| {
                let local: &str = &a.name.local;
                local.eq_ignore_ascii_case(name)
            })
            .map(|a| a.value.to_string()),
        _ => None,
    }
}

fn tag(node: &Handle) -> Option<String> {
    match &node.data {
        NodeData::Element { name, .. } => {
            let local: &str = &name.local;
            Some(local.to_ascii_lowercase())
        }
        _ => None,
    }
}

fn is_item(node: &Handle) -> bool {
    attr(node, "itemscope").is_some()
}

/// Items that are not the value of another item's property.
fn top_level_items(node: &Handle, out: &mut Vec<Json>) {
    for child in node.children.borrow().iter() {
        if is_item(child) && attr(child, "itemprop").is_none() {
            out.push(item(child, 0));
        } else {
            top_level_items(child, out);
        }
    }
}

/// Deeply nested markup gives up rather than recursing without bound.
const MAX_DEPTH: usize = 32;

fn item(node: &Handle, depth: usize) -> Json {
    let mut o = Map::new();
    if let Some(t) = attr(node, "itemtype") {
        o.insert("@type".into(), Json::String(t.trim().to_string()));
    }
    if depth < MAX_DEPTH {
        properties(node, &mut o, depth);
    }
    Json::Object(o)
}

fn properties(node: &Handle, o: &mut Map<String, Json>, depth: usize) {
    for child in node.children.borrow().iter() {
        if let Some(names) = attr(child, "itemprop") {
            let value = if is_item(child) {
                item(child, depth + 1)
            } else {
                Json::String(property_value(child))
            };
            for name in names.split_whitespace() {
                o.entry(name.to_string()).or_insert_with(|| value.clone());
            }
            if is_item(child) {
                continue;
            }
        }
        if !is_item(child) {
            properties(child, o, depth + 1);
        }
    }
}

/// A property's value by the microdata rules: an attribute for the elements that have one, the
/// text content otherwise.
fn property_value(node: &Handle) -> String {
    let from = match tag(node).as_deref() {
        Some("meta") => attr(node, "content"),
        Some("a" | "link" | "area") => attr(node, "href"),
        Some("img" | "audio" | "video" | "source" | "iframe" | "embed") => attr(node, "src"),
        Some("time") => attr(node, "datetime"),
        Some("data" | "meter") => attr(node, "value"),
        _ => None,
    };
    if let Some(v) = from.or_else(|| attr(node, "content")) {
        return v.trim().to_string();
    }
    let mut s = String::new();
    text_content(node, &mut s, 0);
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn text_content(node: &Handle, out: &mut String, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    for child in node.children.borrow().iter() {
        match &child.data {
            NodeData::Text { contents } => {
                out.push_str(&contents.borrow());
                out.push(' ');
            }
            NodeData::Element { .. } => text_content(child, out, depth + 1),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The content found from the tags is what the pattern's group captures.
    #[test]
    fn script_content_is_the_patterns_group() {
        let html = concat!(
            "<p>x</p><script type=\"application/ld+json\">{\"a\": \"<b>\"}</script>",
            "<SCRIPT data-x='1' TYPE = 'application/ld+json' id=y>\n[1]\n</SCRIPT  \n>",
            "<script type=application/ld+json></script><script type=\"application/ld+json\">",
            "<!-- {} --></script\u{2003}><script\ttype=\"application/ld+json\">",
            "{\"k\":\"</scrip\"}</\u{17f}cript>",
            "<script type=\"text/javascript\">x</script>"
        );
        let finds: Vec<&str> = LD_SCRIPT
            .find_iter(html)
            .map(|m| script_content(m.as_str()))
            .collect();
        let groups: Vec<&str> = LD_SCRIPT
            .captures_iter(html)
            .map(|c| c.get(1).map_or("", |m| m.as_str()))
            .collect();
        assert_eq!(finds, groups);
        assert_eq!(finds.len(), 5, "{finds:?}");
    }

    #[test]
    fn json_ld_in_a_graph_and_a_broken_block() {
        let html = r#"<script type="application/ld+json">{"@graph":[{"@type":"Organization"},
            {"@type":"http://schema.org/RentalCarReservation","reservationNumber":"AB-1",
             "totalPrice":"12300","priceCurrency":"JPY",
             "reservationStatus":"http://schema.org/ReservationCancelled"}]}</script>
            <SCRIPT type='application/ld+json'>{oops</SCRIPT>"#;
        let mut broken = Vec::new();
        let found = reservations(html, &mut broken);
        assert_eq!(found.len(), 1);
        assert_eq!(broken.len(), 1);
        let f = fields(&found[0].1);
        assert!(f.contains(&("booking_code".into(), Value::text("AB-1"))));
        assert!(f.contains(&("status".into(), Value::text("cancelled"))));
        assert!(f.contains(&(
            "amount".into(),
            Value::Money {
                minor: 12300,
                currency: "JPY".into()
            }
        )));
    }
}
