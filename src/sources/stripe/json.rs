//! API JSON dumps: a list (`{"object":"list","data":[…]}`, as the API and `stripe <object>
//! list` print it), a bare array, a single object, or JSON Lines (one object or list per line).
//!
//! The file is read as a stream and a list element by element, so a dump of a million charges is
//! never held in memory, as bytes or as a tree. JSON cannot be resynchronised after a syntax error, so a broken document gives the
//! objects before the error and one Malformed skip at the error's line and column for the rest;
//! in JSON Lines a broken line is one skip and the next line is read.

use std::fmt;
use std::io::{BufRead, Read};

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::Value as Json;

use super::emit;
use crate::evidence::{Provenance, Sink, Skip, SkipReason, SourceKind, Window};

/// The longest first line taken as a possible JSON Lines record: a longer one starts a document
/// (a compact dump on one line), read as a stream like any other.
const FIRST_LINE_CAP: usize = 1 << 20;

/// Reads one dump from a stream and returns how many objects it held (each one accounted for).
/// It holds one object (or one JSON Lines line) at a time, never the file: the first line
/// decides between JSON Lines and a document, then the rest is read as it comes.
pub(crate) fn read_from(
    mut input: impl BufRead,
    origin: &str,
    window: &Window,
    sink: &mut dyn Sink,
) -> usize {
    let mut seen = 0;
    let io_error = |e: std::io::Error, seen: &mut usize, sink: &mut dyn Sink| {
        *seen += 1;
        sink.skip(skip(
            origin,
            "read".into(),
            format!("the file could not be read to its end ({e}); the objects before this point were read"),
        ));
    };
    // What was read to decide, kept to be read again: the blank lines, the first line and, when
    // that line is a whole value, the blank lines after it and the next line.
    let mut head: Vec<Vec<u8>> = Vec::new();
    let lines_mode = match peek_head(&mut input, &mut head) {
        Ok(mode) => mode,
        Err(e) => {
            io_error(e, &mut seen, sink);
            return seen;
        }
    };
    if lines_mode {
        let mut line_no = 0;
        let one_line = |line: &[u8], line_no: usize, seen: &mut usize, sink: &mut dyn Sink| {
            let line = line.strip_suffix(b"\n").unwrap_or(line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().all(u8::is_ascii_whitespace) {
                return;
            }
            match serde_json::from_slice::<Json>(line) {
                Ok(v) => {
                    let mut each = |obj: Json, index: Option<usize>| {
                        *seen += 1;
                        let at = match index {
                            Some(k) => format!("line {line_no} data[{k}]"),
                            None => format!("line {line_no}"),
                        };
                        one(obj, origin, at, window, &mut *sink);
                    };
                    split_value(v, &mut each);
                }
                Err(e) => {
                    *seen += 1;
                    sink.skip(skip(
                        origin,
                        format!("line {line_no}"),
                        format!("this line is not JSON: {e}"),
                    ));
                }
            }
        };
        for line in &head {
            line_no += 1;
            one_line(line, line_no, &mut seen, sink);
        }
        let mut line = Vec::new();
        loop {
            line.clear();
            match input.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(_) => {
                    line_no += 1;
                    one_line(&line, line_no, &mut seen, sink);
                }
                Err(e) => {
                    io_error(e, &mut seen, sink);
                    break;
                }
            }
        }
        return seen;
    }
    let stream = std::io::Cursor::new(head.concat()).chain(input);
    let mut de = serde_json::Deserializer::from_reader(stream);
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
        let detail = if e.is_io() {
            format!("the file could not be read to its end ({e}); the objects before this point were read")
        } else if e.is_eof() {
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

/// Reads the head of a dump into `head`, line by line, and says whether it is JSON Lines: the
/// first non-blank line is a whole JSON value on its own and more follows (a pretty-printed
/// document's first line, `{`, never is).
fn peek_head(input: &mut impl BufRead, head: &mut Vec<Vec<u8>>) -> std::io::Result<bool> {
    let first = loop {
        let mut line = Vec::new();
        let n = (&mut *input)
            .take(FIRST_LINE_CAP as u64)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(false);
        }
        let complete = line.ends_with(b"\n");
        let blank = line.iter().all(u8::is_ascii_whitespace);
        head.push(line);
        if !complete && n >= FIRST_LINE_CAP {
            // A line longer than any one record: the start of a document.
            return Ok(false);
        }
        if !blank {
            break head.len() - 1;
        }
    };
    if serde_json::from_slice::<serde::de::IgnoredAny>(&head[first]).is_err() {
        return Ok(false);
    }
    loop {
        let mut line = Vec::new();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Ok(false);
        }
        let blank = line.iter().all(u8::is_ascii_whitespace);
        head.push(line);
        if !blank {
            return Ok(true);
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::Collected;

    /// A reader that gives one byte per read, as a slow pipe or a file read in small pieces
    /// might: the stream must give what the whole file gives.
    struct Trickle<'a>(&'a [u8]);
    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match (self.0.split_first(), buf.first_mut()) {
                (Some((b, rest)), Some(slot)) => {
                    *slot = *b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    fn read_all_of(input: impl BufRead) -> Vec<String> {
        let mut got = Collected::default();
        let n = read_from(input, "dump.json", &Window::default(), &mut got);
        let mut out: Vec<String> = got
            .evidence
            .iter()
            .map(|e| format!("{} {}", e.provenance.locator, e.kind))
            .chain(
                got.skipped
                    .iter()
                    .map(|s| format!("{} {}", s.provenance.locator, s.detail)),
            )
            .collect();
        out.push(format!("{n} objects"));
        out
    }

    #[test]
    fn a_stream_read_byte_by_byte_gives_what_the_whole_file_gives() {
        let list = br#"{"object": "list", "data": [
  {"id": "ch_1", "object": "charge", "amount": 100, "currency": "eur", "status": "succeeded", "created": 1786000000},
  {"id": "cus_1", "object": "customer", "email": "a@example.org", "created": 1786000000}
], "has_more": false}"#;
        let lines = b"{\"id\": \"ch_2\", \"object\": \"charge\", \"amount\": 5, \"currency\": \"jpy\", \"status\": \"succeeded\", \"created\": 1786000000}\r\n\r\n{\"id\": \"cus_2\", \"object\": \"customer\"\n{\"id\": \"cus_3\", \"object\": \"customer\", \"created\": 1786000000}\n";
        let cut = &list[..list.len() - 40];
        for doc in [&list[..], &lines[..], cut] {
            let whole = read_all_of(doc);
            let trickled = read_all_of(std::io::BufReader::with_capacity(1, Trickle(doc)));
            assert_eq!(whole, trickled);
        }
        let lines_read = read_all_of(&lines[..]);
        assert_eq!(lines_read.last().unwrap(), "3 objects", "{lines_read:?}");
        assert!(
            lines_read
                .iter()
                .any(|l| l.starts_with("line 3 this line is not JSON")),
            "{lines_read:?}"
        );
    }

    #[test]
    fn a_compact_dump_on_one_long_line_is_a_document() {
        let mut doc = br#"{"object":"list","data":["#.to_vec();
        let mut n = 0;
        while doc.len() < FIRST_LINE_CAP + 1000 {
            if n > 0 {
                doc.push(b',');
            }
            doc.extend_from_slice(
                format!(r#"{{"id":"cus_{n}","object":"customer","created":1786000000}}"#)
                    .as_bytes(),
            );
            n += 1;
        }
        doc.extend_from_slice(br#"],"has_more":false}"#);
        let got = read_all_of(&doc[..]);
        assert_eq!(got.last().unwrap(), &format!("{n} objects"));
    }
}
