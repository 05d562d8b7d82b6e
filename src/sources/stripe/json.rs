//! API JSON dumps: a list (`{"object":"list","data":[…]}`, as the API and `stripe <object>
//! list` print it), a bare array, a single object, or JSON Lines (one object or list per line).
//!
//! A list is streamed element by element, so a dump of a million charges is never held as one
//! tree. JSON cannot be resynchronised after a syntax error, so a broken document gives the
//! objects before the error and one Malformed skip at the error's line and column for the rest;
//! in JSON Lines a broken line is one skip and the next line is read.

use std::fmt;

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::Value as Json;

use super::emit;
use crate::evidence::{Provenance, Sink, Skip, SkipReason, SourceKind, Window};

/// Reads one file's bytes; returns how many objects it held (each one accounted for).
pub(crate) fn read(bytes: &[u8], origin: &str, window: &Window, sink: &mut dyn Sink) -> usize {
    let mut seen = 0;
    if is_json_lines(bytes) {
        for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<Json>(line) {
                Ok(v) => {
                    let line_no = i + 1;
                    let mut each = |obj: Json, index: Option<usize>| {
                        seen += 1;
                        let at = match index {
                            Some(k) => format!("line {line_no} data[{k}]"),
                            None => format!("line {line_no}"),
                        };
                        one(obj, origin, at, window, sink);
                    };
                    split_value(v, &mut each);
                }
                Err(e) => {
                    seen += 1;
                    sink.skip(skip(
                        origin,
                        format!("line {}", i + 1),
                        format!("this line is not JSON: {e}"),
                    ));
                }
            }
        }
        return seen;
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let mut each = |obj: Json, index: Option<usize>| {
        seen += 1;
        let at = index.map_or_else(|| "object".to_string(), |k| format!("data[{k}]"));
        one(obj, origin, at, window, &mut *sink);
    };
    let result = Doc { each: &mut each }
        .deserialize(&mut de)
        .and_then(|()| de.end());
    if let Err(e) = result {
        seen += 1;
        let detail = if e.is_eof() {
            format!("the file ends in the middle of the JSON ({e}); it was cut short, so objects after this point are missing")
        } else {
            format!("invalid JSON: {e}; the objects before this point were read, none after it")
        };
        sink.skip(skip(
            origin,
            format!("line {} column {}", e.line(), e.column()),
            detail,
        ));
    }
    seen
}

/// JSON Lines when the first non-blank line is a whole JSON value on its own and more follows:
/// a pretty-printed document's first line (`{`) never is.
fn is_json_lines(bytes: &[u8]) -> bool {
    let mut lines = bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace));
    let Some(first) = lines.next() else {
        return false;
    };
    lines.next().is_some() && serde_json::from_slice::<serde::de::IgnoredAny>(first).is_ok()
}

/// Where an object is: its Stripe id when it has one (precise and stable), else its position.
fn one(obj: Json, origin: &str, position: String, window: &Window, sink: &mut dyn Sink) {
    let locator = obj
        .get("id")
        .and_then(Json::as_str)
        .filter(|s| !s.is_empty())
        .map_or(position, str::to_string);
    let provenance = Provenance {
        source: SourceKind::Stripe,
        origin: origin.to_string(),
        locator,
    };
    emit(&obj, provenance, window, sink);
}

fn skip(origin: &str, locator: String, detail: String) -> Skip {
    Skip {
        provenance: Provenance {
            source: SourceKind::Stripe,
            origin: origin.to_string(),
            locator,
        },
        reason: SkipReason::Malformed,
        detail,
    }
}

/// A value already parsed (a JSON Lines line): a list's elements, an array's, or the object.
fn split_value(v: Json, each: &mut dyn FnMut(Json, Option<usize>)) {
    match v {
        Json::Object(mut m) if m.get("data").is_some_and(Json::is_array) && is_list(&m) => {
            if let Some(Json::Array(items)) = m.remove("data") {
                for (i, x) in items.into_iter().enumerate() {
                    each(x, Some(i));
                }
            }
        }
        Json::Array(items) => {
            for (i, x) in items.into_iter().enumerate() {
                each(x, Some(i));
            }
        }
        other => each(other, None),
    }
}

fn is_list(m: &serde_json::Map<String, Json>) -> bool {
    matches!(
        m.get("object").and_then(Json::as_str),
        None | Some("list") | Some("search_result")
    )
}

/// The top-level document, streamed: a `data` array's elements go to `each` as they are parsed.
struct Doc<'f> {
    each: &'f mut dyn FnMut(Json, Option<usize>),
}

impl<'de> DeserializeSeed<'de> for Doc<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Doc<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Stripe list, an array of objects or one object")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        while let Some(x) = seq.next_element::<Json>()? {
            (self.each)(x, Some(i));
            i += 1;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut rest = serde_json::Map::new();
        let mut streamed = false;
        while let Some(key) = map.next_key::<String>()? {
            if key == "data" && !streamed {
                match map.next_value_seed(Data {
                    each: &mut *self.each,
                })? {
                    None => streamed = true,
                    Some(v) => {
                        rest.insert(key, v);
                    }
                }
            } else {
                let v: Json = map.next_value()?;
                rest.insert(key, v);
            }
        }
        if streamed && is_list(&rest) {
            return Ok(());
        }
        // A single object (anything that is not a list), kept whole.
        (self.each)(Json::Object(rest), None);
        Ok(())
    }
}

/// A `data` value: streamed when it is an array (returns None), kept as a value otherwise
/// (an event's `data` is an object).
struct Data<'f> {
    each: &'f mut dyn FnMut(Json, Option<usize>),
}

impl<'de> DeserializeSeed<'de> for Data<'_> {
    type Value = Option<Json>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Option<Json>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Data<'_> {
    type Value = Option<Json>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<Json>, A::Error> {
        let mut i = 0;
        while let Some(x) = seq.next_element::<Json>()? {
            (self.each)(x, Some(i));
            i += 1;
        }
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<Json>, A::Error> {
        use serde::Deserialize;
        Json::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Some)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Option<Json>, E> {
        Ok(Some(Json::String(v.to_string())))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Option<Json>, E> {
        Ok(Some(Json::String(v)))
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Option<Json>, E> {
        Ok(Some(Json::Bool(v)))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Option<Json>, E> {
        Ok(Some(Json::from(v)))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Option<Json>, E> {
        Ok(Some(Json::from(v)))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Option<Json>, E> {
        Ok(Some(Json::from(v)))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Option<Json>, E> {
        Ok(Some(Json::Null))
    }
}
