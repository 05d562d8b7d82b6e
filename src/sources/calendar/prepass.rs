//! The pre-pass: bytes to content lines to component blocks, before any property is parsed.
//!
//! Real exports break icalendar's whole-file parser in ordinary ways: a byte-order mark, two
//! calendars pasted into one file, text after END:VCALENDAR, a download cut short. Parsing the
//! structure here, line by line, keeps every event that is whole, reports the one that is not
//! with its line, and keeps physical line numbers for provenance (icalendar numbers the lines of
//! its unfolded copy).

/// One unfolded content line and the physical line (1-based) it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub no: usize,
    pub text: String,
}

/// A component's own properties and its direct sub-components.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Block {
    /// Upper-cased component name: VEVENT, VTIMEZONE, STANDARD…
    pub name: String,
    /// The BEGIN line.
    pub line: usize,
    pub props: Vec<Line>,
    pub children: Vec<Block>,
    /// Why the block did not end properly (truncated file, missing END), if it did not.
    pub broken: Option<String>,
}

/// One VCALENDAR (or the events found outside any, which belong to an implicit one, line 0).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Calendar {
    pub block: Block,
}

/// Something wrong with the file that is not one event: junk between calendars, a stray END,
/// a calendar that never ends. Reported once each, with its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub first_line: usize,
    pub last_line: usize,
    pub what: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub calendars: Vec<Calendar>,
    pub problems: Vec<Problem>,
    /// Whether the bytes were not valid UTF-8 and were read with replacement characters.
    pub lossy: bool,
}

impl Parsed {
    /// Every VEVENT found, broken ones included, in file order.
    pub fn events(&self) -> impl Iterator<Item = (&Calendar, &Block)> {
        self.calendars
            .iter()
            .flat_map(|c| c.block.vevents().into_iter().map(move |b| (c, b)))
    }
}

impl Block {
    /// The VEVENTs in this block at any depth (a VEVENT wrapped in an unknown component is still
    /// an event), in file order.
    pub fn vevents(&self) -> Vec<&Block> {
        let mut out = Vec::new();
        for c in &self.children {
            if c.name == "VEVENT" {
                out.push(c);
            } else {
                out.extend(c.vevents());
            }
        }
        out
    }
}

/// Decodes the bytes: UTF-16 when a UTF-16 byte-order mark says so, otherwise UTF-8 with any
/// invalid sequence replaced (old Windows exports are Latin-1 here and there; losing one accent
/// beats losing the event).
fn decode(bytes: &[u8]) -> (String, bool) {
    let utf16 = |le: bool| {
        let units: Vec<u16> = bytes[2..]
            .chunks_exact(2)
            .map(|c| {
                if le {
                    u16::from_le_bytes([c[0], c[1]])
                } else {
                    u16::from_be_bytes([c[0], c[1]])
                }
            })
            .collect();
        String::from_utf16_lossy(&units)
    };
    match bytes {
        [0xFF, 0xFE, ..] => (utf16(true), false),
        [0xFE, 0xFF, ..] => (utf16(false), false),
        _ => match std::str::from_utf8(bytes) {
            Ok(s) => (s.to_string(), false),
            Err(_) => (String::from_utf8_lossy(bytes).into_owned(), true),
        },
    }
}

/// Physical lines to content lines: CRLF or bare LF endings (bare CR only in a file that has no
/// LF at all), continuation lines (a leading space or tab) joined, byte-order marks dropped
/// wherever a line starts with one (files concatenated with `cat` keep each one's mark).
pub fn unfold(text: &str) -> Vec<Line> {
    let physical: Vec<&str> = if text.contains('\n') {
        text.split('\n').collect()
    } else {
        text.split('\r').collect()
    };
    let mut out: Vec<Line> = Vec::new();
    for (i, raw) in physical.iter().enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let raw = raw.trim_start_matches('\u{FEFF}');
        if let Some(rest) = raw.strip_prefix([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.text.push_str(rest);
                continue;
            }
        }
        if raw.trim().is_empty() {
            continue;
        }
        out.push(Line {
            no: i + 1,
            text: raw.to_string(),
        });
    }
    out
}

/// `BEGIN:X` or `END:X` (case-insensitive, spaces tolerated) → (is_begin, X upper-cased).
fn delimiter(text: &str) -> Option<(bool, String)> {
    let t = text.trim();
    let (head, name) = t.split_once(':')?;
    let begin = if head.trim().eq_ignore_ascii_case("BEGIN") {
        true
    } else if head.trim().eq_ignore_ascii_case("END") {
        false
    } else {
        return None;
    };
    let name = name.trim().to_ascii_uppercase();
    (!name.is_empty()).then_some((begin, name))
}

/// The structure of a file. Never fails: whatever cannot be placed becomes a [`Problem`] or a
/// block marked broken.
pub fn parse(bytes: &[u8]) -> Parsed {
    let (text, lossy) = decode(bytes);
    let lines = unfold(&text);
    let mut parsed = Parsed {
        lossy,
        ..Parsed::default()
    };
    // The open components, outermost first. The bottom is always a calendar (an implicit one
    // when an event shows up outside any VCALENDAR).
    let mut stack: Vec<Block> = Vec::new();
    let mut junk: Option<(usize, usize)> = None;
    let last_line = lines.last().map_or(0, |l| l.no);

    let flush_junk = |junk: &mut Option<(usize, usize)>, problems: &mut Vec<Problem>| {
        if let Some((a, b)) = junk.take() {
            problems.push(Problem {
                first_line: a,
                last_line: b,
                what:
                    "text outside any VCALENDAR (junk before, between or after calendars); ignored"
                        .into(),
            });
        }
    };

    for line in lines {
        match delimiter(&line.text) {
            Some((true, name)) => {
                flush_junk(&mut junk, &mut parsed.problems);
                if name == "VCALENDAR" {
                    // A new calendar closes whatever was left open: the file before it was cut.
                    close_all(
                        &mut stack,
                        &mut parsed,
                        &format!("a new BEGIN:VCALENDAR at line {} came first", line.no),
                    );
                } else if stack.is_empty() {
                    stack.push(Block {
                        name: "VCALENDAR".into(),
                        line: 0,
                        ..Block::default()
                    });
                } else if name == "VEVENT" && stack.iter().any(|b| b.name == "VEVENT") {
                    // An event cannot hold an event: the open one was cut short.
                    let why = format!("a new BEGIN:VEVENT at line {} came first", line.no);
                    while stack.last().is_some_and(|b| b.name != "VCALENDAR") && stack.len() > 1 {
                        close_top(&mut stack, &mut parsed, Some(&why));
                    }
                }
                stack.push(Block {
                    name,
                    line: line.no,
                    ..Block::default()
                });
            }
            Some((false, name)) => {
                if let Some(depth) = stack.iter().rposition(|b| b.name == name) {
                    let why = format!("END:{name} at line {} came first", line.no);
                    while stack.len() > depth + 1 {
                        close_top(&mut stack, &mut parsed, Some(&why));
                    }
                    close_top(&mut stack, &mut parsed, None);
                } else {
                    let in_calendar = !stack.is_empty();
                    if in_calendar {
                        parsed.problems.push(Problem {
                            first_line: line.no,
                            last_line: line.no,
                            what: format!("END:{name} without a matching BEGIN; ignored"),
                        });
                    } else {
                        let j = junk.get_or_insert((line.no, line.no));
                        j.1 = line.no;
                    }
                }
            }
            None => match stack.last_mut() {
                Some(top) => top.props.push(line),
                None => {
                    let j = junk.get_or_insert((line.no, line.no));
                    j.1 = line.no;
                }
            },
        }
    }
    flush_junk(&mut junk, &mut parsed.problems);
    close_all(
        &mut stack,
        &mut parsed,
        &format!("the file ends at line {last_line}: it was cut short (truncated)"),
    );
    parsed
}

/// Pops the innermost open block into its parent (or, for a calendar, into the result).
fn close_top(stack: &mut Vec<Block>, parsed: &mut Parsed, why: Option<&str>) {
    let Some(mut block) = stack.pop() else {
        return;
    };
    if let Some(why) = why {
        if block.broken.is_none() {
            block.broken = Some(format!(
                "BEGIN:{} has no END:{}: {why}",
                block.name, block.name
            ));
        }
    }
    match stack.last_mut() {
        Some(parent) => parent.children.push(block),
        None => {
            if let (Some(broken), true) = (&block.broken, block.line > 0) {
                parsed.problems.push(Problem {
                    first_line: block.line,
                    last_line: block.line,
                    what: broken.clone(),
                });
            }
            parsed.calendars.push(Calendar { block });
        }
    }
}

fn close_all(stack: &mut Vec<Block>, parsed: &mut Parsed, why: &str) {
    while !stack.is_empty() {
        // The implicit calendar never had a BEGIN, so it is not broken for lacking an END.
        let implicit = stack.len() == 1 && stack[0].line == 0;
        close_top(stack, parsed, (!implicit).then_some(why));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(p: &Parsed) -> Vec<(usize, Option<String>)> {
        p.events()
            .map(|(_, e)| (e.line, e.broken.clone()))
            .collect()
    }

    #[test]
    fn bom_and_folded_lines() {
        let p = parse(
            b"\xEF\xBB\xBFBEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:a\r\n  b\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        );
        assert_eq!(events(&p), vec![(2, None)]);
        let e = p.events().next().unwrap().1;
        assert_eq!(
            e.props,
            vec![Line {
                no: 3,
                text: "SUMMARY:a b".into()
            }]
        );
        assert!(p.problems.is_empty());
    }

    #[test]
    fn truncated_event_is_broken_and_earlier_ones_kept() {
        let p =
            parse(b"BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:1\nEND:VEVENT\nBEGIN:VEVENT\nUID:2\nDTST");
        let ev = events(&p);
        assert_eq!(ev[0], (2, None));
        assert_eq!(ev[1].0, 5);
        assert!(ev[1].1.as_deref().unwrap().contains("truncated"), "{ev:?}");
    }

    #[test]
    fn junk_and_two_calendars() {
        let p = parse(b"BEGIN:VCALENDAR\nBEGIN:VEVENT\nEND:VEVENT\nEND:VCALENDAR\ngarbage\nBEGIN:VCALENDAR\nBEGIN:VEVENT\nEND:VEVENT\nEND:VCALENDAR\n<html>\n");
        assert_eq!(p.calendars.len(), 2);
        assert_eq!(events(&p), vec![(2, None), (7, None)]);
        let lines: Vec<(usize, usize)> = p
            .problems
            .iter()
            .map(|x| (x.first_line, x.last_line))
            .collect();
        assert_eq!(lines, vec![(5, 5), (10, 10)]);
    }
}
