//! A streaming mbox splitter that tells envelope lines from body lines that merely start with
//! "From ".
//!
//! mail-parser's own mbox iterator starts a new message at every line that begins with "From ",
//! so one unescaped sentence in a body cuts a message in two and turns its tail into a "message"
//! with no headers. Here a "From " line starts a message only when it has the envelope's shape
//! (a sender, then a date with a time of day and a year) and the next line is a header field;
//! anything else is body text and stays with the message it is in. Lines are read one at a time,
//! so memory holds one message, whatever the size of the archive.

use std::io::{self, BufRead};
use std::sync::LazyLock;

use regex::bytes::Regex;

/// One message as it stood in the archive, with the mbox quoting undone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    /// Byte offset of the envelope line in the (decompressed) archive.
    pub offset: u64,
    /// 1-based line number of the envelope line.
    pub line: u64,
    /// The envelope line without "From " and the line break.
    pub envelope: String,
    /// The message: header block and body, ">From " unquoted once (mboxrd).
    pub data: Vec<u8>,
    /// Body lines that started with "From " without being envelopes, kept in this message.
    pub rejoined: u32,
    /// Set on the last message when the archive ends in the middle of it.
    pub truncated: Option<String>,
}

/// What the splitter yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Message(RawMessage),
    /// Non-blank text before the first envelope line: not a message, but not to be dropped
    /// silently either.
    Preamble {
        offset: u64,
        line: u64,
        bytes: u64,
    },
    /// The archive could not be read further (a gzip stream that breaks off, a read error).
    /// Everything yielded before stands; the message in progress is yielded with `truncated` set.
    Error {
        offset: u64,
        error: String,
    },
}

/// What a message's buffer starts with: most mail is a few kilobytes.
const MESSAGE_CAPACITY: usize = 8 << 10;

pub struct Mbox<R> {
    reader: R,
    /// Offset and number of the next line to be read.
    offset: u64,
    line: u64,
    peeked: Option<Line>,
    current: Option<RawMessage>,
    preamble: Option<(u64, u64, u64)>,
    /// An error met while reading: reported after the message in progress.
    failed: Option<(u64, String)>,
    finished: bool,
    /// The buffer of the line read before last, reused: an archive has millions of lines.
    spare: Vec<u8>,
    /// Whether the line last added to `current` was blank: a well-formed archive ends each
    /// message with one.
    last_blank: bool,
    /// Buffers of messages already read, given back for new messages by [`Mbox::recycle`].
    spares: Vec<Vec<u8>>,
}

/// At most this many buffers are kept for reuse, each at most this large.
const MAX_SPARES: usize = 512;
const MAX_SPARE_CAPACITY: usize = 256 << 10;

struct Line {
    bytes: Vec<u8>,
    offset: u64,
    number: u64,
}

static ENVELOPE_DATE: LazyLock<Regex> = LazyLock::new(|| {
    // The date of an envelope line, in whatever format the delivery agent wrote: asctime
    // ("Thu Aug 22 12:36:23 2002") mostly, sometimes RFC 2822. A time of day and a year, in
    // either order.
    Regex::new(r"(?:\b\d{1,2}:\d\d(?::\d\d)?\b.*\b\d{4}\b)|(?:\b\d{4}\b.*\b\d{1,2}:\d\d)")
        .expect("a valid regex")
});

/// Whether a line has the shape of an mbox envelope line: "From sender date".
pub fn is_envelope(line: &[u8]) -> bool {
    let Some(rest) = line.strip_prefix(b"From ") else {
        return false;
    };
    let rest = trim_eol(rest);
    // The sender comes first; the date must follow it.
    let Some(space) = rest.iter().position(|b| *b == b' ') else {
        return false;
    };
    rest[..space].iter().any(|b| !b.is_ascii_whitespace()) && ENVELOPE_DATE.is_match(&rest[space..])
}

/// Whether a line is a header field ("Name: value") or the continuation of one.
pub fn is_header_line(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|b| *b == b':') else {
        return false;
    };
    colon > 0 && line[..colon].iter().all(|b| (33..=126).contains(b))
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn is_blank(line: &[u8]) -> bool {
    trim_eol(line).is_empty()
}

impl<R: BufRead> Mbox<R> {
    pub fn new(reader: R) -> Mbox<R> {
        Mbox {
            reader,
            offset: 0,
            line: 1,
            peeked: None,
            current: None,
            preamble: None,
            failed: None,
            finished: false,
            spare: Vec::new(),
            last_blank: true,
            spares: Vec::new(),
        }
    }

    /// Gives back a message's buffer once it has been read, for a later message to reuse: a
    /// reader on another thread otherwise frees every buffer this one allocates.
    pub fn recycle(&mut self, mut data: Vec<u8>) {
        if self.spares.len() < MAX_SPARES && data.capacity() <= MAX_SPARE_CAPACITY {
            data.clear();
            self.spares.push(data);
        }
    }

    fn read_line(&mut self) -> Option<Line> {
        if self.failed.is_some() {
            return None;
        }
        let mut bytes = std::mem::take(&mut self.spare);
        bytes.clear();
        match read_until_newline(&mut self.reader, &mut bytes) {
            Ok(0) => None,
            Ok(n) => {
                let line = Line {
                    bytes,
                    offset: self.offset,
                    number: self.line,
                };
                self.offset += n as u64;
                self.line += 1;
                Some(line)
            }
            Err(e) => {
                // A partial line read before the error is kept as a line of its own.
                self.failed = Some((self.offset, describe(&e)));
                (!bytes.is_empty()).then(|| {
                    let line = Line {
                        offset: self.offset,
                        number: self.line,
                        bytes,
                    };
                    self.line += 1;
                    line
                })
            }
        }
    }

    fn next_line(&mut self) -> Option<Line> {
        self.peeked.take().or_else(|| self.read_line())
    }

    fn peek_line(&mut self) -> Option<&Line> {
        if self.peeked.is_none() {
            self.peeked = self.read_line();
        }
        self.peeked.as_ref()
    }

    fn finish(&mut self, mut m: RawMessage, at_end: bool) -> RawMessage {
        if at_end {
            if let Some((_, e)) = &self.failed {
                m.truncated = Some(format!("the archive breaks off inside it: {e}"));
            } else if !self.last_blank {
                m.truncated =
                    Some("the archive ends inside it (no blank line after its last line)".into());
            }
        }
        if !has_header_end(&m.data) && m.truncated.is_none() {
            m.truncated =
                Some("its header block has no end (no blank line after the headers)".into());
        }
        // The blank line that separates messages belongs to the archive, not the message.
        if m.data.ends_with(b"\n\n") {
            m.data.pop();
        } else if m.data.ends_with(b"\r\n\r\n") {
            m.data.truncate(m.data.len() - 2);
        }
        m
    }
}

/// `BufRead::read_until(b'\n', …)`, finding the line break with the memchr crate's vectorised
/// search rather than the standard library's portable one: an archive is mostly short lines.
fn read_until_newline<R: BufRead>(reader: &mut R, out: &mut Vec<u8>) -> io::Result<usize> {
    let mut read = 0;
    loop {
        let (done, used) = {
            let available = match reader.fill_buf() {
                Ok(a) => a,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            match memchr::memchr(b'\n', available) {
                Some(i) => {
                    out.extend_from_slice(&available[..=i]);
                    (true, i + 1)
                }
                None => {
                    out.extend_from_slice(available);
                    (available.is_empty(), available.len())
                }
            }
        };
        reader.consume(used);
        read += used;
        if done {
            return Ok(read);
        }
    }
}

fn has_header_end(data: &[u8]) -> bool {
    data.starts_with(b"\n")
        || data.starts_with(b"\r\n")
        || memfind(data, b"\n\n")
        || memfind(data, b"\n\r\n")
}

fn memfind(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => "unexpected end of the compressed stream".into(),
        _ => e.to_string(),
    }
}

impl<R: BufRead> Iterator for Mbox<R> {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        if self.finished {
            return None;
        }
        loop {
            let Some(line) = self.next_line() else {
                if let Some((offset, line, bytes)) = self.preamble.take() {
                    return Some(Item::Preamble {
                        offset,
                        line,
                        bytes,
                    });
                }
                if let Some(m) = self.current.take() {
                    return Some(Item::Message(self.finish(m, true)));
                }
                self.finished = true;
                return self
                    .failed
                    .take()
                    .map(|(offset, error)| Item::Error { offset, error });
            };
            if is_envelope(&line.bytes)
                && self
                    .peek_line()
                    .is_some_and(|next| is_header_line(&next.bytes))
            {
                let envelope = String::from_utf8_lossy(trim_eol(&line.bytes[5..])).into_owned();
                let new = RawMessage {
                    offset: line.offset,
                    line: line.number,
                    envelope,
                    // Room for a typical message at once: growing line by line from nothing
                    // reallocates it a dozen times.
                    data: self
                        .spares
                        .pop()
                        .unwrap_or_else(|| Vec::with_capacity(MESSAGE_CAPACITY)),
                    rejoined: 0,
                    truncated: None,
                };
                self.last_blank = true;
                match self.current.replace(new) {
                    Some(prev) => return Some(Item::Message(self.finish(prev, false))),
                    None => {
                        if let Some((offset, line, bytes)) = self.preamble.take() {
                            return Some(Item::Preamble {
                                offset,
                                line,
                                bytes,
                            });
                        }
                        continue;
                    }
                }
            }
            match &mut self.current {
                Some(m) => {
                    if line.bytes.starts_with(b"From ") {
                        m.rejoined += 1;
                    }
                    self.last_blank = is_blank(&line.bytes);
                    unquote_into(&mut m.data, &line.bytes);
                    self.spare = line.bytes;
                }
                None => {
                    if !is_blank(&line.bytes) || self.preamble.is_some() {
                        let p = self.preamble.get_or_insert((line.offset, line.number, 0));
                        p.2 += line.bytes.len() as u64;
                    }
                }
            }
        }
    }
}

/// Appends a line with mboxrd quoting undone: ">From " → "From ", ">>From " → ">From ". For an
/// mboxo archive this is right for ">From " (the only thing mboxo quotes) and takes one '>'
/// too many from a body line that really began ">>From ", which is rare and harmless.
fn unquote_into(out: &mut Vec<u8>, line: &[u8]) {
    let quotes = line.iter().take_while(|b| **b == b'>').count();
    if quotes > 0 && line[quotes..].starts_with(b"From ") {
        out.extend_from_slice(&line[1..]);
    } else {
        out.extend_from_slice(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> Vec<Item> {
        Mbox::new(s.as_bytes()).collect()
    }

    fn messages(s: &str) -> Vec<RawMessage> {
        split(s)
            .into_iter()
            .filter_map(|i| match i {
                Item::Message(m) => Some(m),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn envelope_shapes() {
        assert!(is_envelope(b"From a@b.example Thu Aug 22 12:36:23 2002\n"));
        assert!(is_envelope(
            b"From MAILER-DAEMON Fri Jul  8 12:08:34 2011\n"
        ));
        assert!(is_envelope(
            b"From zvfjenphuq@[1086695621] [ufa]  Sun Aug  5 09:46:38 2002\n"
        ));
        assert!(is_envelope(b"From a@b Sat, 1 Jan 2000 00:00:00 +0000\r\n"));
        assert!(!is_envelope(
            b"From Tuesday on I am at a different hotel.\n"
        ));
        assert!(!is_envelope(
            b"From the Porto desk: the same applies there.\n"
        ));
        assert!(!is_envelope(b"From: a@b\n"));
        assert!(!is_envelope(b"From \n"));
    }

    #[test]
    fn offsets_lines_and_unquoting() {
        let ms = messages(
            "From a@x Mon Jan  1 00:00:00 2024\nSubject: one\n\n>From here\n>>From there\n\nFrom b@x Mon Jan  1 00:00:01 2024\nSubject: two\n\nbody\n\n",
        );
        assert_eq!(ms.len(), 2);
        assert_eq!(ms[0].data, b"Subject: one\n\nFrom here\n>From there\n");
        assert_eq!((ms[1].offset, ms[1].line), (73, 7));
        assert_eq!(ms[1].envelope, "b@x Mon Jan  1 00:00:01 2024");
        assert!(ms.iter().all(|m| m.truncated.is_none()));
    }

    #[test]
    fn a_from_line_without_headers_after_it_stays_in_the_body() {
        let ms = messages(
            "From a@x Mon Jan  1 00:00:00 2024\nSubject: one\n\nhi\n\nFrom b@x Mon Jan  1 00:00:01 2024 was a good day\n\nbye\n\n",
        );
        assert_eq!(ms.len(), 1);
        assert_eq!(ms[0].rejoined, 1);
        assert!(String::from_utf8_lossy(&ms[0].data).contains("bye"));
    }

    #[test]
    fn preamble_and_truncation_are_reported() {
        let items = split("junk\nFrom a@x Mon Jan  1 00:00:00 2024\nSubject: one\n\ncut he");
        assert_eq!(
            items[0],
            Item::Preamble {
                offset: 0,
                line: 1,
                bytes: 5
            }
        );
        let Item::Message(m) = &items[1] else {
            panic!("{items:?}")
        };
        assert!(m.truncated.is_some());
    }

    #[test]
    fn nothing_in_nothing_out() {
        assert!(split("").is_empty());
        assert!(split("\n\n").is_empty());
    }
}
