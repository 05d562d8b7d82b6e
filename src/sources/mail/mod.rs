//! Email archives as evidence: mbox (mboxo and mboxrd), gzip-compressed mbox, Maildir (cur/new,
//! nested folders), single .eml files and folders of them.
//!
//! Every message ends as evidence or as a skip with a reason: not a booking mail (irrelevant), a
//! Message-ID seen before (duplicate), outside the window, or unreadable (malformed). What a
//! message says is read in order of trust: schema.org reservations in its HTML (JSON-LD, then
//! microdata), then the mapping's rules: which senders and subjects are which kind of message,
//! and named-capture patterns over subject and body text. The source knows no schema: without
//! rules it still reads schema.org data and skips everything else as irrelevant.
//!
//! Archives are streamed one message at a time; what is kept across messages is one 8-byte hash
//! per Message-ID, for finding duplicates.

mod html_text;
mod mbox;
mod schema_org;
mod values;

pub use html_text::simple_html_to_text;
pub use mbox::{is_envelope, Item as MboxItem, Mbox, RawMessage};
pub use values::{minor_digits, parse_instant, parse_money};

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::LazyLock;

use chrono::{DateTime, TimeZone, Utc};
use mail_parser::{HeaderName, HeaderValue, MessageParser, PartType};
use regex::{Regex, RegexSet};
use serde::{Deserialize, Serialize};

use crate::evidence::{
    field, Evidence, Pattern, Provenance, Sink, Skip, SkipReason, SourceKind, Value, Window,
};

/// What the mapping says about its mail, from the `[sources.mail]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailRules {
    /// Which messages are which kind (confirmation, cancellation, receipt…), first match wins.
    /// A message no rule matches and that carries no schema.org reservation is irrelevant.
    #[serde(default)]
    pub kinds: Vec<KindRule>,
    /// Named-capture patterns over the subject and the body text of messages that have a kind;
    /// each named group becomes a field of that name. A field found earlier (schema.org data, an
    /// earlier pattern, a subject rule's groups) is not overwritten.
    #[serde(default)]
    pub patterns: Vec<FieldPattern>,
    /// The senders that are the business's own systems and partners: addresses
    /// ("bookings@example.com") or domains ("example.com", which takes its subdomains too).
    /// Mail from anyone else never changes an existing row by itself: what rests on it alone
    /// goes to review. Without this list, a message only its schema.org markup makes relevant
    /// (no kind rule with a `from` matched it) is from a stranger.
    #[serde(default)]
    pub trusted: Vec<String>,
}

impl MailRules {
    /// Why a message from `from` may not change an existing row by itself, or None when it may.
    /// `named` says a kind rule with a `from` pattern matched the message; `auth` holds its
    /// Authentication-Results headers, where a receiving server's DMARC verdict counts.
    pub fn distrust(&self, from: &str, named: bool, auth: &[String]) -> Option<String> {
        let shown = if from.is_empty() {
            "an unknown sender"
        } else {
            from
        };
        let from = from.trim().to_ascii_lowercase();
        if auth.iter().any(|a| {
            a.to_ascii_lowercase()
                .split([';', ' ', '\t', '\n'])
                .any(|w| w == "dmarc=fail")
        }) {
            return Some(format!(
                "sent as {shown}, which the receiving server's Authentication-Results say is forged (dmarc=fail)"
            ));
        }
        if !self.trusted.is_empty() {
            let domain = from.rsplit_once('@').map_or("", |(_, d)| d);
            let listed = self.trusted.iter().any(|t| {
                let t = t.trim().trim_start_matches('@').to_ascii_lowercase();
                if t.contains('@') {
                    t == from
                } else {
                    domain == t || domain.ends_with(&format!(".{t}"))
                }
            });
            return (!listed).then(|| {
                format!("sent by {shown}, not one of the senders the mapping trusts ([sources.mail] trusted)")
            });
        }
        (!named).then(|| {
            format!("sent by {shown}, a sender no kind rule of the mapping names (list the business's senders in [sources.mail] trusted)")
        })
    }
}

/// One message kind: every condition given must match. Named groups in the patterns become
/// fields, as with [`FieldPattern`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindRule {
    pub kind: String,
    /// Over the sender as "Display Name <address>" (address alone when there is no name).
    #[serde(default)]
    pub from: Option<Pattern>,
    /// Over the decoded Subject. For a reply or forward ("Re:", "Fwd:", In-Reply-To) the
    /// subject without its prefixes is matched, without `from`: such a message quotes a
    /// message of this kind and becomes evidence of kind "reply" or "forward".
    #[serde(default)]
    pub subject: Option<Pattern>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldPattern {
    pub pattern: Pattern,
    #[serde(default)]
    pub within: Within,
    /// Only for messages of these kinds (for a reply or forward: the kind it quotes, or
    /// "reply"/"forward"); empty for every kind.
    #[serde(default)]
    pub kinds: Vec<String>,
}

/// What a pattern is matched against. The body is the text of the message (HTML-only mail
/// turned into text); for a reply or forward only what its sender wrote, not what it quotes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Within {
    Subject,
    Body,
    #[default]
    Any,
}

/// Evidence field names this source adds to the well-known ones.
pub mod fields {
    /// The Message-ID with its angle brackets, as References cite it.
    pub const MESSAGE_ID: &str = "message_id";
    pub const SUBJECT: &str = "subject";
    /// The sender's address.
    pub const FROM: &str = "from";
    pub const FROM_NAME: &str = "from_name";
    /// The first recipient's address.
    pub const TO: &str = "to";
    /// The message kind (also [`crate::evidence::Evidence::kind`]).
    pub const KIND: &str = "kind";
    /// For a reply or forward: the kind of message it quotes.
    pub const QUOTES: &str = "quotes";
    /// "json-ld" or "microdata" when the fields came from a schema.org reservation.
    pub const STRUCTURED: &str = "structured";
    /// The car or thing reserved (schema.org reservationFor).
    pub const RESERVATION_FOR: &str = "reservation_for";
    pub const DROPOFF_LOCATION: &str = "dropoff_location";
    /// When a schema.org reservation says it was last changed.
    pub const MODIFIED: &str = "modified";
    /// Present (true) on the last message of an archive that breaks off inside it.
    pub const TRUNCATED: &str = "truncated";
    /// "envelope" when `created` comes from the mbox envelope line because the Date header is
    /// missing or unreadable.
    pub const CREATED_FROM: &str = "created_from";
}

/// Captures under these names become money.
const MONEY_FIELDS: &[&str] = &[field::AMOUNT, field::REFUNDED];
/// Captures under these names become instants.
const TIME_FIELDS: &[&str] = &[
    field::CREATED,
    field::STARTS_AT,
    field::ENDS_AT,
    field::REFUNDED_AT,
    fields::MODIFIED,
];

/// What a read did, for the accounting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MailStats {
    pub files: u64,
    pub messages: u64,
    pub evidence: u64,
    pub skipped: u64,
    /// Body lines starting "From " that were not envelopes and stayed in their message.
    pub rejoined_from_lines: u64,
    /// Messages an archive broke off inside.
    pub truncated: u64,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MailError {
    #[error("mail archive {}: no such file or folder; give an mbox, mbox.gz, Maildir, .eml file or a folder of them", path.display())]
    NotFound { path: PathBuf },
    #[error("mail archive {}: cannot be read: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A single-message file larger than this is not read whole: it is no message.
const MAX_MESSAGE_FILE: u64 = 256 << 20;

/// Maildir and mail-server bookkeeping that sits beside messages.
fn is_bookkeeping(name: &str) -> bool {
    name.starts_with("dovecot")
        || name.starts_with("courier")
        || name.starts_with(".uidvalidity")
        || matches!(
            name,
            "maildirfolder" | "subscriptions" | ".DS_Store" | ".mh_sequences" | "cur" | "new"
        )
}

/// Reads every message under `path` into `sink`. Err only when `path` cannot be read at all.
pub fn read(
    path: &Path,
    rules: &MailRules,
    window: &Window,
    sink: &mut dyn Sink,
) -> Result<MailStats, MailError> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => MailError::NotFound {
            path: path.to_path_buf(),
        },
        _ => MailError::Unreadable {
            path: path.to_path_buf(),
            source: e,
        },
    })?;
    let ex = Extractor::new(rules, window);
    let mut reader = Reader::new(&ex, sink);
    if meta.is_dir() {
        std::fs::read_dir(path).map_err(|e| MailError::Unreadable {
            path: path.to_path_buf(),
            source: e,
        })?;
        reader.walk(path, 0);
    } else {
        reader.file(path);
    }
    Ok(reader.stats)
}

/// Reads an mbox (or, when it does not start like one, a single message) from any reader:
/// `origin` names it in provenance. For archives that are not files, and for fuzzing.
pub fn read_stream<R: BufRead>(
    mut reader: R,
    origin: &str,
    rules: &MailRules,
    window: &Window,
    sink: &mut dyn Sink,
) -> MailStats {
    let ex = Extractor::new(rules, window);
    let mut r = Reader::new(&ex, sink);
    r.stats.files += 1;
    let head = reader.fill_buf().map(<[u8]>::to_vec).unwrap_or_default();
    if looks_like_mbox(&head) {
        r.mbox(reader, origin, "");
    } else {
        r.message_file(reader, Path::new(origin), origin);
    }
    r.stats
}

/// What a read keeps across messages, and where it puts what it finds. Works on one thread, in
/// archive order; what each message comes to is worked out by an [`Extractor`], for an mbox on
/// other threads.
struct Reader<'a> {
    ex: &'a Extractor<'a>,
    sink: &'a mut dyn Sink,
    stats: MailStats,
    /// Message-ID hash → where it was first seen (index into `origins`, byte offset or
    /// `u64::MAX` for a message file): 16 bytes a message, the only memory that grows with the
    /// archive.
    seen: HashMap<u64, (u32, u64)>,
    origins: Vec<String>,
}

/// Reads one message into what it comes to, knowing nothing of the messages before it: shared
/// by the threads that read an mbox.
struct Extractor<'a> {
    rules: &'a MailRules,
    window: &'a Window,
    parser: MessageParser,
    prepared: Prepared,
}

impl<'a> Extractor<'a> {
    fn new(rules: &'a MailRules, window: &'a Window) -> Extractor<'a> {
        Extractor {
            rules,
            window,
            parser: MessageParser::default(),
            prepared: Prepared::new(rules),
        }
    }
}

/// What one message comes to, before the reader has looked for duplicates.
#[derive(Default)]
struct Outcome {
    /// The Message-ID's hash, the Message-ID and the message's provenance, when it has one: a
    /// Message-ID seen before makes the message a duplicate, and `events` is dropped.
    id: Option<(u64, String, Provenance)>,
    events: Vec<Event>,
}

enum Event {
    Evidence(Evidence),
    Skip(Skip),
}

impl Outcome {
    fn skip(mut self, provenance: Provenance, reason: SkipReason, detail: String) -> Outcome {
        self.events.push(Event::Skip(Skip {
            provenance,
            reason,
            detail,
        }));
        self
    }
}

/// An mbox item, read: what the splitter found, with the message's outcome worked out.
enum Done {
    Message {
        rejoined: u32,
        truncated: bool,
        offset: u64,
        outcome: Outcome,
        /// The message's buffer, for the splitter to reuse.
        data: Vec<u8>,
    },
    Other(MboxItem),
}

/// Messages handed to an extracting thread at a time, and batches in flight: enough to keep the
/// threads busy, few enough that memory stays a few messages per thread.
const BATCH: usize = 32;
const IN_FLIGHT: usize = 32;
/// At most this many extracting threads, besides the one that splits the archive.
const MAX_WORKERS: usize = 4;

/// What the kind rules need per message, worked out once per read: a mapping gives many kind
/// rules the same sender pattern, and a subject matches at most a few of them.
struct Prepared {
    /// For each kind rule, the index of its `from` pattern among the distinct ones.
    from_of: Vec<Option<usize>>,
    /// How many distinct `from` patterns there are.
    froms: usize,
    /// The kind rules' subject patterns, for finding in one pass the few rules whose subject
    /// matches.
    subjects: Prefilter,
    /// Where in a body each body pattern can first match.
    lines: LineGate,
}

/// Patterns whose every match starts at the start of a line (`(?m)^`) with one of a few literal
/// texts ("Pick-up:", "PICK-UP"…), as a mapping's body patterns mostly do. One pass over a text's
/// line starts tells, for each of them, the first line it can match on, or that it cannot match
/// at all; the search then starts there instead of scanning the text before it. Patterns of any
/// other shape are searched from the start as before.
struct LineGate {
    /// For each pattern, whether it is gated.
    gated: Vec<bool>,
    /// By first byte: the gated patterns (their index) and literals that start with it.
    by_first: Vec<Vec<(usize, Vec<u8>)>>,
}

/// More literals than this and a pattern is searched from the start.
const MAX_GATE_LITERALS: usize = 64;

impl LineGate {
    fn new<'p>(patterns: impl Iterator<Item = &'p Pattern>) -> LineGate {
        let mut by_first = vec![Vec::new(); 256];
        let gated = patterns
            .enumerate()
            .map(|(i, p)| match line_literals(p.as_str()) {
                Some(literals) => {
                    for l in literals {
                        by_first[usize::from(l[0])].push((i, l));
                    }
                    true
                }
                None => false,
            })
            .collect();
        LineGate { gated, by_first }
    }

    /// For each pattern, where in `text` a search for it must start: the first line start it can
    /// match at (0 for a pattern that is not gated), `None` when it cannot match.
    fn starts(&self, text: &str) -> Vec<Option<usize>> {
        let mut out: Vec<Option<usize>> = self
            .gated
            .iter()
            .map(|g| if *g { None } else { Some(0) })
            .collect();
        let mut missing = self.gated.iter().filter(|g| **g).count();
        let bytes = text.as_bytes();
        let mut at = 0;
        while missing > 0 && at < bytes.len() {
            let line = &bytes[at..];
            for (i, literal) in &self.by_first[usize::from(line[0])] {
                if out[*i].is_none() && line.starts_with(literal) {
                    out[*i] = Some(at);
                    missing -= 1;
                }
            }
            match memchr_newline(line) {
                Some(n) => at += n + 1,
                None => break,
            }
        }
        out
    }
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', bytes)
}

/// The literals every match of `pattern` starts with, when every match starts at a line start
/// (after a line break or at the start of the text): what [`LineGate`] needs to know.
fn line_literals(pattern: &str) -> Option<Vec<Vec<u8>>> {
    use regex_syntax::hir::{literal::Extractor, Look};
    let hir = regex_syntax::parse(pattern).ok()?;
    if !hir.properties().look_set_prefix().contains(Look::StartLF) {
        return None;
    }
    let seq = Extractor::new().extract(&hir);
    let literals = seq.literals()?;
    if literals.is_empty()
        || literals.len() > MAX_GATE_LITERALS
        || literals.iter().any(|l| l.as_bytes().is_empty())
    {
        return None;
    }
    Some(literals.iter().map(|l| l.as_bytes().to_vec()).collect())
}

/// Patterns matched together in one pass to know which of them can match at all. A pattern is
/// left out of the set, and always counted as a possible match, when it has a word boundary:
/// over text that is not ASCII a Unicode `\b` makes the whole set fall back from the lazy DFA to
/// the much slower PikeVM.
struct Prefilter {
    set: Option<RegexSet>,
    /// For each pattern, its index in `set`, `None` when it is left out.
    index: Vec<Option<usize>>,
}

impl Prefilter {
    /// `None` in `patterns` stands for a condition that always holds.
    fn new<'p>(patterns: impl Iterator<Item = Option<&'p str>>) -> Prefilter {
        let mut members = Vec::new();
        let index = patterns
            .map(|p| {
                let p = p.unwrap_or("");
                (!p.contains("\\b") && !p.contains("\\B")).then(|| {
                    members.push(p);
                    members.len() - 1
                })
            })
            .collect();
        match RegexSet::new(&members) {
            Ok(set) => Prefilter {
                set: Some(set),
                index,
            },
            Err(_) => Prefilter { set: None, index },
        }
    }

    fn hits(&self, text: &str) -> Hits<'_> {
        Hits {
            matches: self.set.as_ref().map(|s| s.matches(text)),
            index: &self.index,
        }
    }
}

struct Hits<'a> {
    matches: Option<regex::SetMatches>,
    index: &'a [Option<usize>],
}

impl Hits<'_> {
    /// Whether pattern `i` may match: false only when it certainly does not.
    fn may_match(&self, i: usize) -> bool {
        match (&self.matches, self.index.get(i).copied().flatten()) {
            (Some(m), Some(j)) => m.matched(j),
            _ => true,
        }
    }
}

impl Prepared {
    fn new(rules: &MailRules) -> Prepared {
        let mut distinct: Vec<&str> = Vec::new();
        let from_of = rules
            .kinds
            .iter()
            .map(|r| {
                let p = r.from.as_ref()?.as_str();
                Some(distinct.iter().position(|d| *d == p).unwrap_or_else(|| {
                    distinct.push(p);
                    distinct.len() - 1
                }))
            })
            .collect();
        let subjects = Prefilter::new(
            rules
                .kinds
                .iter()
                .map(|r| r.subject.as_ref().map(Pattern::as_str)),
        );
        Prepared {
            from_of,
            froms: distinct.len(),
            subjects,
            lines: LineGate::new(rules.patterns.iter().map(|p| &p.pattern)),
        }
    }
}

/// Where a message is, while it is being read.
struct At<'m> {
    origin: &'m str,
    /// "byte 123" in an mbox, empty for a message file.
    position: String,
    /// The byte offset in an mbox, `u64::MAX` for a message file.
    offset: u64,
    envelope: Option<&'m str>,
    truncated: Option<&'m str>,
    rejoined: u32,
}

impl At<'_> {
    fn locator(&self, message_id: Option<&str>) -> String {
        match (self.position.is_empty(), message_id) {
            (true, Some(id)) => id.to_string(),
            (true, None) => "whole file".to_string(),
            (false, Some(id)) => format!("{} {id}", self.position),
            (false, None) => self.position.clone(),
        }
    }

    fn provenance(&self, message_id: Option<&str>) -> Provenance {
        Provenance {
            source: SourceKind::Mail,
            origin: self.origin.to_string(),
            locator: self.locator(message_id),
        }
    }
}

const MAX_DEPTH: usize = 64;

impl<'a> Reader<'a> {
    fn new(ex: &'a Extractor<'a>, sink: &'a mut dyn Sink) -> Reader<'a> {
        Reader {
            ex,
            sink,
            stats: MailStats::default(),
            seen: HashMap::new(),
            origins: Vec::new(),
        }
    }

    /// Puts out what a message came to, unless its Message-ID was seen before.
    fn apply(&mut self, outcome: Outcome, origin_index: u32, offset: u64) {
        if let Some((key, id, provenance)) = outcome.id {
            if let Some(&(origin, offset)) = self.seen.get(&key) {
                let first = &self.origins[origin as usize];
                let locator = if offset == u64::MAX {
                    String::new()
                } else {
                    format!(" byte {offset}")
                };
                let detail = format!(
                    "Message-ID {id} was already read at {first}{locator}; this is another copy"
                );
                return self.skip(provenance, SkipReason::Duplicate, detail);
            }
            self.seen.insert(key, (origin_index, offset));
        }
        for event in outcome.events {
            match event {
                Event::Evidence(e) => {
                    self.stats.evidence += 1;
                    self.sink.evidence(e);
                }
                Event::Skip(skip) => {
                    self.stats.skipped += 1;
                    self.sink.skip(skip);
                }
            }
        }
    }

    fn skip(&mut self, provenance: Provenance, reason: SkipReason, detail: String) {
        self.stats.skipped += 1;
        self.sink.skip(Skip {
            provenance,
            reason,
            detail,
        });
    }

    fn file_skip(&mut self, path: &Path, reason: SkipReason, detail: String) {
        let provenance = Provenance {
            source: SourceKind::Mail,
            origin: path.display().to_string(),
            locator: "whole file".into(),
        };
        self.skip(provenance, reason, detail);
    }

    fn walk(&mut self, dir: &Path, depth: usize) {
        let entries = std::fs::read_dir(dir).and_then(|rd| {
            let mut v: Vec<_> = rd.collect::<Result<Vec<_>, _>>()?;
            v.sort_by_key(|e| e.file_name());
            Ok(v)
        });
        let entries = match entries {
            Ok(e) => e,
            Err(e) => {
                return self.file_skip(
                    dir,
                    SkipReason::Malformed,
                    format!("this folder cannot be listed: {e}; its mail was not read"),
                );
            }
        };
        for entry in entries {
            let path = entry.path();
            // Symbolic links to folders are not followed: they can loop.
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if is_dir {
                if depth < MAX_DEPTH {
                    self.walk(&path, depth + 1);
                } else {
                    self.file_skip(
                        &path,
                        SkipReason::Malformed,
                        format!("folders nest deeper than {MAX_DEPTH} levels; not read"),
                    );
                }
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_bookkeeping(&name) {
                self.stats.files += 1;
                self.file_skip(
                    &path,
                    SkipReason::Irrelevant,
                    "mail-server bookkeeping, not a message".into(),
                );
                continue;
            }
            self.file(&path);
        }
    }

    fn file(&mut self, path: &Path) {
        self.stats.files += 1;
        let origin = path.display().to_string();
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) => {
                return self.file_skip(
                    path,
                    SkipReason::Malformed,
                    format!("cannot be opened: {e}"),
                )
            }
        };
        let mut buffered = BufReader::with_capacity(1 << 16, file);
        let head = match buffered.fill_buf() {
            Ok(h) => h.to_vec(),
            Err(e) => {
                return self.file_skip(path, SkipReason::Malformed, format!("cannot be read: {e}"))
            }
        };
        if head.starts_with(&[0x1f, 0x8b]) {
            let mut inner =
                BufReader::with_capacity(1 << 16, flate2::bufread::MultiGzDecoder::new(buffered));
            let first = match inner.fill_buf() {
                Ok(h) => h.to_vec(),
                Err(e) => {
                    return self.file_skip(
                        path,
                        SkipReason::Malformed,
                        format!("gzip data that does not decompress: {e}"),
                    )
                }
            };
            let origin = origin.clone();
            if looks_like_mbox(&first) {
                self.mbox(inner, &origin, " (uncompressed)");
            } else {
                self.message_file(inner, path, &origin);
            }
        } else if looks_like_mbox(&head) {
            self.mbox(buffered, &origin, "");
        } else {
            self.message_file(buffered, path, &origin);
        }
    }

    fn origin_index(&mut self, origin: &str) -> u32 {
        if self.origins.last().map(String::as_str) != Some(origin) {
            self.origins.push(origin.to_string());
        }
        (self.origins.len() - 1) as u32
    }

    /// Splits on this thread and reads the messages on others (when there are cores for them),
    /// putting out what they come to in archive order: the output is the same either way.
    fn mbox<R: BufRead>(&mut self, reader: R, origin: &str, unit: &str) {
        let origin_index = self.origin_index(origin);
        let workers = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(MAX_WORKERS);
        let ex = self.ex;
        let read = |item: MboxItem| -> Done {
            match item {
                MboxItem::Message(m) => {
                    let at = At {
                        origin,
                        position: format!("byte {}{unit}", m.offset),
                        offset: m.offset,
                        envelope: Some(&m.envelope),
                        truncated: m.truncated.as_deref(),
                        rejoined: m.rejoined,
                    };
                    let outcome = ex.message(&m.data, &at);
                    Done::Message {
                        rejoined: m.rejoined,
                        truncated: m.truncated.is_some(),
                        offset: m.offset,
                        outcome,
                        data: m.data,
                    }
                }
                other => Done::Other(other),
            }
        };
        let mut items = Mbox::new(reader);
        if workers < 2 {
            while let Some(item) = items.next() {
                let done = read(item);
                if let Some(data) = self.done(done, origin, origin_index, unit) {
                    items.recycle(data);
                }
            }
            return;
        }
        std::thread::scope(|scope| {
            let read = &read;
            let mut to = Vec::with_capacity(workers);
            let mut from = Vec::with_capacity(workers);
            for _ in 0..workers {
                let (tx, rx) = mpsc::sync_channel::<Vec<MboxItem>>(IN_FLIGHT);
                let (done_tx, done_rx) = mpsc::sync_channel::<Vec<Done>>(IN_FLIGHT);
                scope.spawn(move || {
                    for batch in rx {
                        let done = batch.into_iter().map(read).collect();
                        if done_tx.send(done).is_err() {
                            break;
                        }
                    }
                });
                to.push(tx);
                from.push(done_rx);
            }
            // Batch n goes to thread n % workers; each thread answers in the order it was
            // given, so taking the answers round the threads in turn keeps archive order.
            let (mut sent, mut received) = (0usize, 0usize);
            let mut batch = Vec::with_capacity(BATCH);
            loop {
                let item = items.next();
                let end = item.is_none();
                batch.extend(item);
                if batch.len() == BATCH || (end && !batch.is_empty()) {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                    if to[sent % workers].send(full).is_err() {
                        break;
                    }
                    sent += 1;
                }
                while received < sent && (end || sent - received >= IN_FLIGHT) {
                    let Ok(done) = from[received % workers].recv() else {
                        // A thread that stopped: the scope reports why.
                        return;
                    };
                    received += 1;
                    for d in done {
                        if let Some(data) = self.done(d, origin, origin_index, unit) {
                            items.recycle(data);
                        }
                    }
                }
                if end {
                    break;
                }
            }
        });
    }

    /// Puts out what an mbox item came to; gives back a message's buffer for reuse.
    fn done(&mut self, done: Done, origin: &str, origin_index: u32, unit: &str) -> Option<Vec<u8>> {
        match done {
            Done::Message {
                rejoined,
                truncated,
                offset,
                outcome,
                data,
            } => {
                self.stats.messages += 1;
                self.stats.rejoined_from_lines += u64::from(rejoined);
                if truncated {
                    self.stats.truncated += 1;
                }
                self.apply(outcome, origin_index, offset);
                Some(data)
            }
            Done::Other(item) => {
                match item {
                    MboxItem::Message(_) => {}
                    MboxItem::Preamble {
                        offset,
                        line,
                        bytes,
                    } => {
                        let provenance = Provenance {
                            source: SourceKind::Mail,
                            origin: origin.to_string(),
                            locator: format!("byte {offset}{unit}, line {line}"),
                        };
                        self.skip(
                        provenance,
                        SkipReason::Malformed,
                        format!("{bytes} bytes before the first \"From \" envelope line are no message; an mbox starts with an envelope line"),
                    );
                    }
                    MboxItem::Error { offset, error } => {
                        let provenance = Provenance {
                            source: SourceKind::Mail,
                            origin: origin.to_string(),
                            locator: format!("byte {offset}{unit}"),
                        };
                        self.skip(
                        provenance,
                        SkipReason::Malformed,
                        format!("the archive cannot be read past this point: {error}; the messages before it were read"),
                    );
                    }
                }
                None
            }
        }
    }

    fn message_file<R: Read>(&mut self, reader: R, path: &Path, origin: &str) {
        let mut data = Vec::new();
        let result = reader.take(MAX_MESSAGE_FILE + 1).read_to_end(&mut data);
        if let Err(e) = result {
            return self.file_skip(path, SkipReason::Malformed, format!("cannot be read: {e}"));
        }
        if data.len() as u64 > MAX_MESSAGE_FILE {
            return self.file_skip(
                path,
                SkipReason::Malformed,
                format!("larger than {} MiB and not an mbox (it does not start with a \"From \" envelope line), so not read as one message", MAX_MESSAGE_FILE >> 20),
            );
        }
        self.stats.messages += 1;
        let origin_index = self.origin_index(origin);
        let at = At {
            origin,
            position: String::new(),
            offset: u64::MAX,
            envelope: None,
            truncated: None,
            rejoined: 0,
        };
        let outcome = self.ex.message(&data, &at);
        self.apply(outcome, origin_index, at.offset);
    }
}

impl Extractor<'_> {
    /// What one message comes to. Needs nothing from the messages before it, so it can run on
    /// any thread; duplicates are found afterwards, in archive order, by [`Reader::apply`].
    fn message(&self, data: &[u8], at: &At) -> Outcome {
        let mut out = Outcome::default();
        let parsed = self.parser.parse(data);
        let Some(msg) = parsed.filter(|m| has_mail_headers(m)) else {
            let why = match at.truncated {
                Some(t) => format!("the message is cut off ({t}) and what is left has no readable mail headers"),
                None => "no mail headers (From, Date, Subject, Message-ID, To) could be read; is this a message?".to_string(),
            };
            return out.skip(at.provenance(None), SkipReason::Malformed, why);
        };
        let message_id = msg
            .message_id()
            .map(|id| format!("<{}>", id.trim()))
            .filter(|id| id.len() > 2);
        let provenance = at.provenance(message_id.as_deref());

        if let Some(id) = &message_id {
            let mut h = DefaultHasher::new();
            id.hash(&mut h);
            out.id = Some((h.finish(), id.clone(), provenance.clone()));
        }

        let subject = msg.subject().unwrap_or("").trim().to_string();
        let (from_addr, from_name) = msg
            .from()
            .and_then(|a| a.first())
            .map(|a| {
                (
                    a.address().unwrap_or("").trim().to_string(),
                    a.name().unwrap_or("").trim().to_string(),
                )
            })
            .unwrap_or_default();
        let from_line = if from_name.is_empty() {
            from_addr.clone()
        } else {
            format!("{from_name} <{from_addr}>")
        };
        let describe = || {
            format!(
                "from {} with subject {:?}",
                if from_line.is_empty() {
                    "an unknown sender"
                } else {
                    &from_line
                },
                subject
            )
        };

        // The kind: a rule over sender and subject, else a reply or forward quoting a kind.
        let mut captured: Vec<(String, String)> = Vec::new();
        let mut kind: Option<String> = None;
        // A rule that names the sender made this message relevant.
        let mut named = false;
        let mut quotes: Option<String> = None;
        let prepared = &self.prepared;
        let subject_hits = prepared.subjects.hits(&subject);
        // Whether each distinct sender pattern matches, asked once each.
        let mut from_hits: Vec<Option<bool>> = vec![None; prepared.froms];
        for (i, rule) in self.rules.kinds.iter().enumerate() {
            if !subject_hits.may_match(i) {
                continue;
            }
            if let (Some(p), Some(f)) = (&rule.from, prepared.from_of[i]) {
                if !*from_hits[f].get_or_insert_with(|| p.regex().is_match(&from_line)) {
                    continue;
                }
            }
            if let Some(caps) = rule_matches(rule, Some(&from_line), &subject) {
                kind = Some(rule.kind.clone());
                named = rule.from.is_some();
                captured = caps;
                break;
            }
        }
        let mut pattern_subject = subject.as_str();
        if kind.is_none() {
            let stripped = strip_thread_prefix(&subject);
            let stripped_hits = prepared.subjects.hits(stripped.1);
            let quoted = self.rules.kinds.iter().enumerate().find_map(|(i, rule)| {
                rule.subject.as_ref()?;
                if !stripped_hits.may_match(i) {
                    return None;
                }
                rule_matches(rule, None, stripped.1).map(|caps| (rule, caps))
            });
            if let Some((rule, caps)) = quoted {
                if let Some(t) = thread_kind(&msg, stripped) {
                    kind = Some(t.to_string());
                    quotes = Some(rule.kind.clone());
                    captured = caps;
                    pattern_subject = stripped.1;
                }
            }
        }

        // schema.org reservations in the HTML parts.
        let mut reservations = Vec::new();
        let mut broken = Vec::new();
        for part in msg.html_bodies() {
            if let PartType::Html(html) = &part.body {
                reservations.extend(schema_org::reservations(html, &mut broken));
            }
        }
        if kind.is_none() && reservations.is_empty() {
            let mut detail = format!(
                "{}: matches no message kind of the mapping and carries no schema.org reservation",
                describe()
            );
            if !broken.is_empty() {
                detail.push_str(&format!(" ({})", broken.join("; ")));
            }
            // A message cut short may have lost what would have made it relevant.
            if let Some(t) = at.truncated {
                let detail = format!("the message is cut off ({t}); what is left, {detail}");
                return out.skip(provenance, SkipReason::Malformed, detail);
            }
            return out.skip(provenance, SkipReason::Irrelevant, detail);
        }

        // When it was sent: the Date header, else the envelope.
        let mut created_from_envelope = false;
        let created = msg
            .date()
            .filter(|d| d.is_valid())
            .and_then(|d| Utc.timestamp_opt(d.to_timestamp(), 0).single())
            .or_else(|| {
                created_from_envelope = true;
                at.envelope.and_then(values::parse_envelope_date)
            });
        if let Some(t) = created {
            if !self.window.contains(t) {
                let detail = format!(
                    "{}: sent {}, outside the window {}",
                    describe(),
                    t.format("%Y-%m-%dT%H:%M:%SZ"),
                    window_text(self.window)
                );
                return out.skip(provenance, SkipReason::OutsideWindow, detail);
            }
        }

        let mut base = Evidence::new(provenance.clone(), "");
        if let Some(id) = &message_id {
            base.set(fields::MESSAGE_ID, Value::text(id));
        }
        // A reply or forward is the customer's own words; it is judged by the rules that name
        // senders only when a list of trusted ones says who may change rows.
        let judged = named || quotes.is_none() || !self.rules.trusted.is_empty();
        if judged {
            let auth: Vec<String> = msg
                .header_values("Authentication-Results")
                .filter_map(|v| v.as_text().map(str::to_string))
                .collect();
            base.untrusted = self.rules.distrust(&from_addr, named, &auth);
        }
        base.set(fields::SUBJECT, Value::text(&subject));
        base.set(fields::FROM, Value::text(from_addr.to_ascii_lowercase()));
        base.set(fields::FROM_NAME, Value::text(&from_name));
        if let Some(to) = msg.to().and_then(|a| a.first()).and_then(|a| a.address()) {
            base.set(fields::TO, Value::text(to.trim().to_ascii_lowercase()));
        }
        if let Some(t) = created {
            base.observed_at = Some(t);
            base.set(field::CREATED, Value::Time(t));
            if created_from_envelope {
                base.set(fields::CREATED_FROM, Value::text("envelope"));
            }
        }
        let refs = references(&msg);
        if !refs.is_empty() {
            base.set(field::REFERENCES, Value::text(refs.join(" ")));
        }
        if let Some(q) = &quotes {
            base.set(fields::QUOTES, Value::text(q));
        }
        if at.truncated.is_some() || is_cut_multipart(&msg, data, at) {
            base.set(fields::TRUNCATED, Value::Bool(true));
        }

        // Rules' fields, over subject and text, for the kinds they are meant for.
        let kind_name = kind.clone();
        let mut rule_fields: Vec<(String, Value)> = Vec::new();
        add_captures(&mut rule_fields, &captured);
        if kind_name.is_some() {
            let wanted = |p: &FieldPattern| {
                p.kinds.is_empty()
                    || p.kinds
                        .iter()
                        .any(|k| Some(k) == kind_name.as_ref() || Some(k) == quotes.as_ref())
            };
            let structured = reservations.first().map(|(_, r)| r);
            // The body, and where in it each pattern's search starts.
            let mut body: Option<(String, Vec<Option<usize>>)> = None;
            // The body patterns are not matched as a set first: nearly all of them match a
            // booking mail, so one more pass over the body costs more than it saves.
            for (index, p) in self.rules.patterns.iter().enumerate() {
                if !wanted(p) {
                    continue;
                }
                let names = p.pattern.regex().capture_names().flatten();
                let known = |name: &str| {
                    rule_fields.iter().any(|(n, _)| n == name)
                        || structured.is_some_and(|r| r.get(schema_org::source_key(name)).is_some())
                };
                if names.clone().count() > 0 && names.clone().all(known) {
                    continue;
                }
                let mut caps = Vec::new();
                if p.within != Within::Body {
                    caps = p.pattern.captures(pattern_subject);
                }
                if caps.is_empty() && p.within != Within::Subject {
                    let (text, starts) = body.get_or_insert_with(|| {
                        let text = body_text(&msg);
                        let text = if quotes.is_some() {
                            own_text(&text).to_string()
                        } else {
                            text
                        };
                        let starts = self.prepared.lines.starts(&text);
                        (text, starts)
                    });
                    if let Some(start) = starts[index] {
                        caps = captures_from(&p.pattern, text, start);
                    }
                }
                add_captures(&mut rule_fields, &caps);
            }
        }

        let mut emitted = 0;
        let reservation_count = reservations.len().max(1);
        // The last evidence takes `base` and the rules' fields; the others copy them.
        let mut base = Some(base);
        let mut rule_fields = Some(rule_fields);
        for i in 0..reservation_count {
            let last = i + 1 == reservation_count;
            let mut e = match (last, base.as_ref()) {
                (false, Some(b)) => b.clone(),
                _ => base
                    .take()
                    .unwrap_or_else(|| Evidence::new(provenance.clone(), "")),
            };
            if reservation_count > 1 {
                e.provenance.locator = format!("{} reservation {}", provenance.locator, i + 1);
            }
            let mut k = kind.clone();
            if let Some((how, r)) = reservations.get(i) {
                e.set(fields::STRUCTURED, Value::text(*how));
                for (name, v) in schema_org::fields(r) {
                    e.fields.entry(name).or_insert(v);
                }
                if k.is_none() {
                    let cancelled = e.text(field::STATUS) == Some("cancelled");
                    k = Some(
                        if cancelled {
                            "cancellation"
                        } else {
                            "reservation"
                        }
                        .into(),
                    );
                }
            }
            if last {
                for (name, v) in rule_fields.take().unwrap_or_default() {
                    e.fields.entry(name).or_insert(v);
                }
            } else {
                for (name, v) in rule_fields.iter().flatten() {
                    if !e.fields.contains_key(name) {
                        e.fields.insert(name.clone(), v.clone());
                    }
                }
            }
            let k = k.unwrap_or_default();
            e.set(fields::KIND, Value::text(&k));
            e.kind = k;
            out.events.push(Event::Evidence(e));
            emitted += 1;
        }
        debug_assert!(emitted > 0);
        let _ = at.rejoined;
        out
    }
}

fn window_text(w: &Window) -> String {
    let end = |t: Option<DateTime<Utc>>| {
        t.map_or("…".to_string(), |t| {
            t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
        })
    };
    format!("[{}, {})", end(w.since), end(w.until))
}

/// [`Pattern::captures`] with the search starting at `start`, where the caller knows no match
/// starts earlier: the same answer, without scanning the text before `start`.
fn captures_from<'t>(p: &'t Pattern, text: &'t str, start: usize) -> Vec<(&'t str, &'t str)> {
    let re = p.regex();
    let Some(caps) = re.captures_at(text, start) else {
        return Vec::new();
    };
    re.capture_names()
        .flatten()
        .filter_map(|name| {
            let v = caps.name(name)?.as_str().trim();
            (!v.is_empty()).then_some((name, v))
        })
        .collect()
}

/// An mbox starts with an envelope line, or has one followed by a header line early on after
/// some stray text (which is reported). A message file starts with a header line instead.
fn looks_like_mbox(head: &[u8]) -> bool {
    let mut lines = head.split(|b| *b == b'\n');
    let first = lines.next().unwrap_or(b"");
    if is_envelope(first) {
        return true;
    }
    if mbox::is_header_line(first) {
        return false;
    }
    let mut previous: Option<&[u8]> = None;
    for line in head.split(|b| *b == b'\n').take(200) {
        if previous.is_some_and(is_envelope) && mbox::is_header_line(line) {
            return true;
        }
        previous = Some(line);
    }
    false
}

fn has_mail_headers(msg: &mail_parser::Message) -> bool {
    msg.headers().iter().any(|h| {
        matches!(
            h.name,
            HeaderName::From
                | HeaderName::Date
                | HeaderName::Subject
                | HeaderName::MessageId
                | HeaderName::To
        )
    })
}

/// Whether every condition of the rule holds; the named groups of the patterns if so.
fn rule_matches(
    rule: &KindRule,
    from: Option<&str>,
    subject: &str,
) -> Option<Vec<(String, String)>> {
    if rule.from.is_none() && rule.subject.is_none() {
        return None;
    }
    let mut caps = Vec::new();
    if let (Some(p), Some(from)) = (&rule.from, from) {
        caps.extend(captures_or_none(p, from)?);
    }
    if let Some(p) = &rule.subject {
        caps.extend(captures_or_none(p, subject)?);
    }
    Some(caps)
}

/// The named groups of a match, or `None` when the pattern does not match at all.
fn captures_or_none(p: &Pattern, text: &str) -> Option<Vec<(String, String)>> {
    let re = p.regex();
    let caps = re.captures(text)?;
    Some(
        re.capture_names()
            .flatten()
            .filter_map(|name| {
                let v = caps.name(name)?.as_str().trim();
                (!v.is_empty()).then(|| (name.to_string(), v.to_string()))
            })
            .collect(),
    )
}

static THREAD_PREFIX: LazyLock<Regex> = LazyLock::new(|| {
    // Reply and forward prefixes as mail programs in many languages write them, repeated.
    Regex::new(
        r"(?i)^(?:\s*(?:(?P<re>re|aw|sv|antw|odp|ref|rif|vs|r)|(?P<fwd>fwd?|fw|wg|tr|enc|rv|doorst))\s*(?:\[\d+\])?\s*:\s*)+",
    )
    .expect("a valid regex")
});

static FORWARD_MARKER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?mi)^(?:-{2,}\s*(?:forwarded message|original message|weitergeleitete nachricht|message transféré)\s*-{2,}|begin forwarded message:)")
        .expect("a valid regex")
});

static QUOTE_START: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?mi)^(?:>|-{2,}\s*(?:forwarded message|original message|weitergeleitete nachricht|message transféré)|begin forwarded message:|(?:on|am|le|el)\b.{0,200}(?:wrote|schrieb|a écrit|escribió)\s*:\s*$)")
        .expect("a valid regex")
});

/// The subject without its reply and forward prefixes, and whether the first prefix is a
/// forward's ("Fwd:") rather than a reply's ("Re:").
fn strip_thread_prefix(subject: &str) -> (Option<bool>, &str) {
    match THREAD_PREFIX.captures(subject) {
        Some(c) => {
            let end = c.get(0).map_or(0, |m| m.end());
            let forward = c.name("fwd").is_some() && c.name("re").is_none();
            (Some(forward), subject[end..].trim())
        }
        None => (None, subject.trim()),
    }
}

/// "reply" or "forward" when the message answers or passes on another: a prefix, In-Reply-To,
/// or a forwarded-message marker in the text.
fn thread_kind(msg: &mail_parser::Message, stripped: (Option<bool>, &str)) -> Option<&'static str> {
    match stripped.0 {
        Some(true) => return Some("forward"),
        Some(false) => return Some("reply"),
        None => {}
    }
    if !matches!(msg.in_reply_to(), HeaderValue::Empty) {
        return Some("reply");
    }
    body_text(msg)
        .lines()
        .any(|l| FORWARD_MARKER.is_match(l))
        .then_some("forward")
}

/// What the sender of a reply or forward wrote, before the quoted message.
fn own_text(text: &str) -> &str {
    match QUOTE_START.find(text) {
        Some(m) => &text[..m.start()],
        None => text,
    }
}

fn references(msg: &mail_parser::Message) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for value in [msg.in_reply_to(), msg.references()] {
        let ids: Vec<&str> = match value {
            HeaderValue::Text(t) => vec![t.as_ref()],
            HeaderValue::TextList(l) => l.iter().map(|s| s.as_ref()).collect(),
            _ => Vec::new(),
        };
        for id in ids {
            let id = format!("<{}>", id.trim());
            if id.len() > 2 && !out.contains(&id) {
                out.push(id);
            }
        }
    }
    out
}

/// The last message of an archive is cut when its multipart body never closes.
fn is_cut_multipart(msg: &mail_parser::Message, data: &[u8], at: &At) -> bool {
    if at.envelope.is_none() {
        return false;
    }
    let Some(ct) = msg
        .header(HeaderName::ContentType)
        .and_then(HeaderValue::as_content_type)
    else {
        return false;
    };
    if !ct.c_type.eq_ignore_ascii_case("multipart") {
        return false;
    }
    let Some(boundary) = ct.attribute("boundary") else {
        return false;
    };
    let closing = format!("--{boundary}--");
    at.truncated.is_some() && !data.windows(closing.len()).any(|w| w == closing.as_bytes())
}

/// The message's text: its text/plain bodies, or its HTML turned into text when it has none.
fn body_text(msg: &mail_parser::Message) -> String {
    let mut out = String::new();
    for part in msg.text_bodies() {
        match &part.body {
            PartType::Text(t) => out.push_str(t),
            PartType::Html(h) => out.push_str(&html_to_text(h)),
            _ => continue,
        }
        out.push('\n');
    }
    out
}

/// Wide enough that table rows and addresses stay on one line each, as text templates write them.
const TEXT_WIDTH: usize = 400;

/// HTML as text, as html2text lays it out; the simple documents booking systems send are read
/// without html2text, to the same text (see [`simple_html_to_text`]).
pub fn html_to_text(html: &str) -> String {
    simple_html_to_text(html).unwrap_or_else(|| html_to_text_by_html2text(html))
}

/// [`html_to_text`] always through html2text: what the fast path is checked against.
pub fn html_to_text_by_html2text(html: &str) -> String {
    html2text::config::plain_no_decorate()
        .no_table_borders()
        .string_from_read(html.as_bytes(), TEXT_WIDTH)
        .unwrap_or_else(|_| mail_parser::decoders::html::html_to_text(html))
}

/// Named captures into typed fields: money and instants by their well-known names, text
/// otherwise. A value that does not convert is kept as text under `<name>_text`.
fn add_captures<K: AsRef<str>, V: AsRef<str>>(out: &mut Vec<(String, Value)>, caps: &[(K, V)]) {
    let currency = caps
        .iter()
        .find(|(k, _)| k.as_ref() == "currency")
        .map(|(_, v)| v.as_ref());
    for (name, text) in caps {
        let (name, text) = (name.as_ref(), text.as_ref());
        if out.iter().any(|(n, _)| n == name) {
            continue;
        }
        let value = if MONEY_FIELDS.contains(&name) {
            values::parse_money(text, currency)
                .map(|(minor, currency)| Value::Money { minor, currency })
        } else if TIME_FIELDS.contains(&name) {
            values::parse_instant(text).map(Value::Time)
        } else {
            let mut one_line = String::with_capacity(text.len());
            for word in text.split_whitespace() {
                if !one_line.is_empty() {
                    one_line.push(' ');
                }
                one_line.push_str(word);
            }
            Some(Value::Text(one_line))
        };
        match value {
            Some(v) => out.push((name.to_string(), v)),
            None => {
                let raw = format!("{name}_text");
                if !out.iter().any(|(n, _)| *n == raw) {
                    out.push((raw, Value::text(text.trim())));
                }
            }
        }
    }
}

/// For tests and tools: when a message says it was sent.
pub fn envelope_date(envelope: &str) -> Option<DateTime<Utc>> {
    values::parse_envelope_date(envelope)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference_rules() -> MailRules {
        crate::mapping::Mapping::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings/car-rental.toml"),
        )
        .expect("the reference mapping reads")
        .mapping
        .sources
        .mail
    }

    #[test]
    fn trust_follows_the_list_the_rules_and_the_receiving_servers_verdict() {
        let listed = MailRules {
            trusted: vec!["bookings@rentico.example".into(), "partner.example".into()],
            ..MailRules::default()
        };
        let none: &[String] = &[];
        assert_eq!(
            listed.distrust("Bookings@Rentico.example", false, none),
            None
        );
        assert_eq!(listed.distrust("desk@partner.example", false, none), None);
        assert_eq!(listed.distrust("a@mail.partner.example", false, none), None);
        // A rule naming the sender is not enough once a list says who is trusted.
        assert!(listed
            .distrust("info@rentico.example", true, none)
            .is_some());
        assert!(listed
            .distrust("x@notpartner.example", true, none)
            .is_some());
        assert!(listed
            .distrust("", false, none)
            .unwrap()
            .contains("an unknown sender"));
        let forged = ["mx.example; spf=fail; dmarc=fail header.from=rentico.example".to_string()];
        assert!(listed
            .distrust("bookings@rentico.example", true, &forged)
            .unwrap()
            .contains("forged"));
        let passed = ["mx.example; dmarc=pass header.from=rentico.example".to_string()];
        assert_eq!(
            listed.distrust("bookings@rentico.example", true, &passed),
            None
        );
        // Without a list, a sender a kind rule names is trusted and anyone else is not.
        let unlisted = MailRules::default();
        assert_eq!(
            unlisted.distrust("bookings@rentico.example", true, none),
            None
        );
        assert!(unlisted
            .distrust("bookings@rentico.example", false, none)
            .is_some());
    }

    #[test]
    fn line_start_patterns_are_gated_and_others_are_not() {
        let rules = reference_rules();
        let gate = LineGate::new(rules.patterns.iter().map(|p| &p.pattern));
        assert!(gate.gated.iter().all(|g| *g), "{:?}", gate.gated);
        for p in [
            r"(?m)^a|b",
            r"Total: (?P<a>.+)",
            r"(?m)(?:^a)?b",
            r"(?m)^.*x",
            r"^a",
        ] {
            assert_eq!(line_literals(p), None, "{p}");
        }
        assert_eq!(
            line_literals(r"(?m)^(?:Total:?|PRICE)[ \t]+x"),
            Some(vec![
                b"Total:\t".to_vec(),
                b"Total: ".to_vec(),
                b"Total\t".to_vec(),
                b"Total ".to_vec(),
                b"PRICE\t".to_vec(),
                b"PRICE ".to_vec()
            ])
        );
    }

    /// Starting each search where the gate says gives what a search from the start gives, on
    /// texts made of booking-mail lines, near misses and line breaks of both kinds.
    #[test]
    fn searching_from_the_gate_gives_what_searching_from_the_start_gives() {
        let mut rules = reference_rules();
        for extra in [
            r"(?m)^(?i:name)\s*(?P<n>\w+)",
            r"(?m)^Total:?\s+(?P<t>.+)\r?$",
        ] {
            rules.patterns.push(FieldPattern {
                pattern: Pattern::new(extra).unwrap(),
                within: Within::Body,
                kinds: Vec::new(),
            });
        }
        let gate = LineGate::new(rules.patterns.iter().map(|p| &p.pattern));
        let lines = [
            "Booking code:   RC-AB12CD",
            "BOOKING        RC-XY99ZZ",
            "Name:           Mar\u{ed}a Garc\u{ed}a",
            "NAME Jo",
            "name: kelvin \u{212a}",
            "Email:          maria@example.com",
            "Phone:          +44 7700 900123",
            "Pick-up:        Mon 1 Jun 2026, 10:00 CEST",
            "PICK-UP  2026-06-01 10:00",
            "                Berlin Hbf",
            "                Europaplatz 1",
            "Return:         Fri 5 Jun 2026, 10:00 CEST",
            "Vehicle:        VW Polo (B-AB 123) or similar",
            "Total:          \u{20ac}135.00",
            "Total: 12.00\r",
            "Refund:         \u{20ac}20.00",
            "Amount paid:    \u{20ac}135.00",
            "Reservation RC-AB12CD",
            "Refund for Reservation RC-AB12CD",
            "Payment method: Visa \u{b7} 4242",
            "Your Total: 99.00 is in the Return: line",
            " Total: indented",
            "xPick-up: not at the start",
            "",
            "> Total: quoted",
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        for _ in 0..3000 {
            let mut text = String::new();
            for _ in 0..rnd(12) {
                text.push_str(lines[rnd(lines.len())]);
                text.push_str(["\n", "\r\n", "\n\n"][rnd(3)]);
            }
            if rnd(4) == 0 {
                text.pop();
            }
            let starts = gate.starts(&text);
            for (i, p) in rules.patterns.iter().enumerate() {
                let gated =
                    starts[i].map_or_else(Vec::new, |s| captures_from(&p.pattern, &text, s));
                assert_eq!(
                    gated,
                    p.pattern.captures(&text),
                    "{}\n{text:?}",
                    p.pattern.as_str()
                );
            }
        }
    }
}
