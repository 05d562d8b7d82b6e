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
    input: impl BufRead,
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
    let mut input = match decoded(input) {
        Ok(i) => i,
        Err(e) => {
            io_error(e, &mut seen, sink);
            return seen;
        }
    };
    // What was read to decide, kept to be read again: the blank lines, the first line and the
    // blank lines after it and the next line.
    let mut head: Vec<Vec<u8>> = Vec::new();
    let shape = match peek_head(&mut input, &mut head) {
        Ok(shape) => shape,
        Err(e) => {
            io_error(e, &mut seen, sink);
            return seen;
        }
    };
    if shape == Shape::Empty {
        sink.skip(skip(
            origin,
            "file".into(),
            "the file is empty: there is no JSON in it; export the objects again".into(),
        ));
        return seen + 1;
    }
    if shape == Shape::Lines {
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
                    let hint = if *seen == 1 {
                        "; it may be a line cut short at the front (a copy that lost its start); the lines after it were read"
                    } else {
                        ""
                    };
                    sink.skip(skip(
                        origin,
                        format!("line {line_no}"),
                        format!("this line is not JSON: {e}{hint}"),
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
    // serde_json reads a stream byte by byte; through a BufReader each byte is a copy from its
    // buffer (the standard library's fast path), not a call down the chain of readers.
    let stream = std::io::BufReader::with_capacity(
        1 << 16,
        std::io::Cursor::new(head.concat()).chain(input),
    );
    let mut de = serde_json::Deserializer::from_reader(stream);
    // Several documents one after another are pages appended to one file (`>>` in a loop).
    let mut document = 1;
    let result = loop {
        let mut each = |obj: Json, index: Option<usize>| {
            seen += 1;
            let at = match (document, index) {
                (1, Some(k)) => format!("data[{k}]"),
                (1, None) => "object".to_string(),
                (d, Some(k)) => format!("document {d} data[{k}]"),
                (d, None) => format!("document {d}"),
            };
            one(obj, origin, at, window, &mut *sink);
        };
        if let Err(e) = (Doc { each: &mut each }).deserialize(&mut de) {
            break Err(e);
        }
        match de.end() {
            Ok(()) => break Ok(()),
            Err(e) if e.to_string().starts_with("trailing characters") => document += 1,
            Err(e) => break Err(e),
        }
    };
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

#[derive(Debug, PartialEq, Eq)]
enum Shape {
    Empty,
    Lines,
    Document,
}

/// One line into `head`, at most `FIRST_LINE_CAP` bytes of it; false at the end of the input or
/// when the line is longer than that (a document, not a record).
fn head_line(input: &mut impl BufRead, head: &mut Vec<Vec<u8>>) -> std::io::Result<Option<bool>> {
    let mut line = Vec::new();
    let n = (&mut *input)
        .take(FIRST_LINE_CAP as u64)
        .read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    let long = !line.ends_with(b"\n") && n >= FIRST_LINE_CAP;
    head.push(line);
    Ok(Some(!long))
}

/// The next non-blank line into `head` (with the blank ones before it): its index, or None at
/// the end of the input or at a line longer than any record.
fn next_filled(
    input: &mut impl BufRead,
    head: &mut Vec<Vec<u8>>,
) -> std::io::Result<Option<usize>> {
    loop {
        match head_line(input, head)? {
            None | Some(false) => return Ok(None),
            Some(true) => {
                let last = head.len() - 1;
                if !head[last].iter().all(u8::is_ascii_whitespace) {
                    return Ok(Some(last));
                }
            }
        }
    }
}

/// Reads the head of a dump into `head`, line by line, and says what it is. JSON Lines when of
/// the first two non-blank lines the first is a whole JSON value, or the first is cut (a copy
/// that lost its start: it does not open an object or array) and the second is whole.
fn peek_head(input: &mut impl BufRead, head: &mut Vec<Vec<u8>>) -> std::io::Result<Shape> {
    let whole = |l: &[u8]| serde_json::from_slice::<serde::de::IgnoredAny>(l).is_ok();
    let Some(first) = next_filled(input, head)? else {
        let blank = head.iter().all(|l| l.iter().all(u8::is_ascii_whitespace));
        return Ok(if blank { Shape::Empty } else { Shape::Document });
    };
    let first_whole = whole(&head[first]);
    // A line that opens an object or array and does not close it starts a document.
    let opens = head[first].trim_ascii_start().starts_with(b"{")
        || head[first].trim_ascii_start().starts_with(b"[");
    if opens && !first_whole {
        return Ok(Shape::Document);
    }
    let Some(second) = next_filled(input, head)? else {
        return Ok(Shape::Document);
    };
    if first_whole || whole(&head[second]) {
        Ok(Shape::Lines)
    } else {
        Ok(Shape::Document)
    }
}

/// The input as UTF-8: a UTF-8 byte-order mark dropped, UTF-16 (what a Windows shell's `>`
/// writes, with its mark) decoded as it is read.
fn decoded<'a>(mut input: impl BufRead + 'a) -> std::io::Result<Box<dyn BufRead + 'a>> {
    let head = input.fill_buf()?;
    if head.starts_with(b"\xEF\xBB\xBF") {
        input.consume(3);
        return Ok(Box::new(input));
    }
    let little = head.starts_with(b"\xFF\xFE");
    if little || head.starts_with(b"\xFE\xFF") {
        input.consume(2);
        return Ok(Box::new(std::io::BufReader::new(Utf16 {
            inner: input,
            little,
            out: Vec::new(),
            at: 0,
            pending: None,
        })));
    }
    Ok(Box::new(input))
}

/// UTF-16 bytes in, UTF-8 out; an unpaired surrogate becomes U+FFFD.
struct Utf16<R> {
    inner: R,
    little: bool,
    out: Vec<u8>,
    at: usize,
    /// A leading surrogate that ended the last chunk, waiting for its partner.
    pending: Option<u16>,
}

impl<R: Read> Read for Utf16<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.out.len() {
            let mut raw = [0u8; 8192];
            let mut n = 0;
            // Whole code units only.
            loop {
                let got = self.inner.read(&mut raw[n..])?;
                n += got;
                if got == 0 || n % 2 == 0 {
                    break;
                }
            }
            if n == 0 {
                if self.pending.take().is_some() {
                    self.out = "\u{FFFD}".as_bytes().to_vec();
                    self.at = 0;
                    continue;
                }
                return Ok(0);
            }
            let mut units: Vec<u16> = self.pending.take().into_iter().collect();
            units.extend(raw[..n - n % 2].chunks_exact(2).map(|p| {
                if self.little {
                    u16::from_le_bytes([p[0], p[1]])
                } else {
                    u16::from_be_bytes([p[0], p[1]])
                }
            }));
            if units.last().is_some_and(|u| (0xD800..0xDC00).contains(u)) {
                self.pending = units.pop();
            }
            self.out.clear();
            self.at = 0;
            let mut text = String::new();
            for c in char::decode_utf16(units) {
                text.push(c.unwrap_or(char::REPLACEMENT_CHARACTER));
            }
            self.out.extend_from_slice(text.as_bytes());
        }
        let n = buf.len().min(self.out.len() - self.at);
        buf[..n].copy_from_slice(&self.out[self.at..self.at + n]);
        self.at += n;
        Ok(n)
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
