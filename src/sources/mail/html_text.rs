//! HTML mail to text without building a DOM, for the simple documents booking systems send:
//! paragraphs and a table of labels and values. It gives exactly what html2text gives for them
//! (the configuration in [`super::html_to_text`]), and `None` for anything it does not know, which
//! html2text then reads. html2text parses into a DOM, works out a render tree and lays it out;
//! for a few kilobytes of template that is most of what reading such a mail costs.
//!
//! What is read here: an optional `<!DOCTYPE html>`, then `html`, `head` (with `meta`, `title`
//! and `script`, none of which is shown), `body` holding `p` and `table` blocks; `p` holds text
//! and `br`; `table` holds `tr` rows of `td` cells, which hold text, `br` and `strong`. Text may
//! use the entities `&amp; &lt; &gt; &quot; &#39; &apos;` and the characters [`columns`] knows. Any
//! other tag, entity, character or shape (an empty cell, a line too long to stay unwrapped, a
//! table wider than the page) gives `None`.

/// A line of text: its columns, counted as html2text counts them for the characters allowed.
struct Line {
    text: String,
    width: usize,
}

enum Block {
    Paragraph(Vec<Line>),
    /// Rows of cells, each cell its lines and html2text's size estimate of it.
    Table(Vec<Vec<(Vec<Line>, usize)>>),
}

/// Columns a character takes as html2text counts them, for a conservative set of characters that
/// are not whitespace and need no special handling: enough for names, places and prices in Latin
/// scripts and Japanese. `None` for any other character.
fn columns(c: char) -> Option<usize> {
    if narrow(c) || matches!(c, '<' | '&') {
        Some(1)
    } else if wide(c) {
        Some(2)
    } else {
        None
    }
}

/// Hiragana, katakana and the common CJK ideographs: two columns each.
fn wide(c: char) -> bool {
    matches!(c,
        '\u{3041}'..='\u{3096}'
        | '\u{30A1}'..='\u{30FA}'
        | '\u{4E00}'..='\u{9FFF}'
    )
}

fn narrow(c: char) -> bool {
    matches!(c,
        '!'..='~'
        | '\u{A1}'..='\u{AC}'
        | '\u{AE}'..='\u{24F}'
        | '\u{2010}'..='\u{2027}'
        | '\u{20A0}'..='\u{20BF}'
    ) && c != '<'
        && c != '&'
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\u{0C}')
}

/// Inline content being gathered: lines split at `br`, whitespace collapsed, and html2text's
/// size estimate (each text node: its characters and collapsed inner spaces, one more when it
/// starts with a space; each `br` one).
#[derive(Default)]
struct Inline {
    lines: Vec<Line>,
    current: String,
    width: usize,
    /// A space is owed before the next word on this line.
    space: bool,
    size: usize,
}

impl Inline {
    fn text(&mut self, raw: &str) -> Option<()> {
        let mut node_len = 0usize;
        let mut node_started = false;
        let mut in_space = false;
        let starts_with_space = raw.chars().next().is_some_and(is_space);
        for c in Decoded::new(raw) {
            let c = c?;
            if is_space(c) {
                in_space = true;
                self.space = true;
                continue;
            }
            let w = columns(c)?;
            if node_started && in_space {
                node_len += 1;
            }
            node_len += w;
            node_started = true;
            in_space = false;
            if self.space && self.width > 0 {
                self.current.push(' ');
                self.width += 1;
            }
            self.space = false;
            self.current.push(c);
            self.width += w;
        }
        if starts_with_space && node_len > 0 {
            node_len += 1;
        }
        self.size += node_len;
        Some(())
    }

    fn br(&mut self) -> Option<()> {
        if self.width == 0 {
            // An empty line: html2text's handling of it is not copied here.
            return None;
        }
        self.lines.push(Line {
            text: std::mem::take(&mut self.current),
            width: self.width,
        });
        self.width = 0;
        self.space = false;
        self.size += 1;
        Some(())
    }

    fn finish(mut self) -> Option<(Vec<Line>, usize)> {
        if self.width == 0 {
            return None;
        }
        self.lines.push(Line {
            text: self.current,
            width: self.width,
        });
        Some((self.lines, self.size))
    }
}

/// Characters of a text run with the few entities allowed decoded; `None` for any other.
struct Decoded<'a> {
    rest: &'a str,
}

impl<'a> Decoded<'a> {
    fn new(rest: &'a str) -> Decoded<'a> {
        Decoded { rest }
    }
}

impl Iterator for Decoded<'_> {
    type Item = Option<char>;

    fn next(&mut self) -> Option<Option<char>> {
        let c = self.rest.chars().next()?;
        if c != '&' {
            self.rest = &self.rest[c.len_utf8()..];
            return Some(Some(c));
        }
        for (entity, c) in [
            ("&amp;", '&'),
            ("&lt;", '<'),
            ("&gt;", '>'),
            ("&quot;", '"'),
            ("&#39;", '\''),
            ("&apos;", '\''),
        ] {
            if let Some(rest) = self.rest.strip_prefix(entity) {
                self.rest = rest;
                return Some(Some(c));
            }
        }
        self.rest = "";
        Some(None)
    }
}

/// The widest a line may be, as html2text is asked to render (see [`super::TEXT_WIDTH`]).
const WIDTH: usize = super::TEXT_WIDTH;

#[derive(Clone, Copy, PartialEq, Eq)]
enum In {
    Top,
    Html,
    Head,
    Body,
    Paragraph,
    Table,
    Row,
    Cell,
    Strong,
    Done,
}

/// The text html2text would make of `html`, or `None` when `html` is not of the simple kind read
/// here.
pub fn simple_html_to_text(html: &str) -> Option<String> {
    let mut rest = html;
    const DOCTYPE: &[u8] = b"<!DOCTYPE html>";
    if rest
        .as_bytes()
        .get(..DOCTYPE.len())
        .is_some_and(|b| b.eq_ignore_ascii_case(DOCTYPE))
    {
        rest = &rest[DOCTYPE.len()..];
    }
    let mut blocks: Vec<Block> = Vec::new();
    let mut at = In::Top;
    let mut inline = Inline::default();
    let mut rows: Vec<Vec<(Vec<Line>, usize)>> = Vec::new();
    let mut cells: Vec<(Vec<Line>, usize)> = Vec::new();
    loop {
        // Text up to the next tag.
        let lt = rest.find('<').unwrap_or(rest.len());
        let text = &rest[..lt];
        rest = &rest[lt..];
        match at {
            In::Paragraph | In::Cell | In::Strong => inline.text(text)?,
            _ => {
                if !text.chars().all(is_space) {
                    return None;
                }
            }
        }
        if rest.is_empty() {
            break;
        }
        let gt = rest.find('>')?;
        let tag = &rest[1..gt];
        rest = &rest[gt + 1..];
        let (closing, tag) = match tag.strip_prefix('/') {
            Some(t) => (true, t),
            None => (false, tag),
        };
        let name_end = tag
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(tag.len());
        let (name, attrs) = tag.split_at(name_end);
        if name.is_empty()
            || !attrs.is_empty() && !attrs.starts_with([' ', '\t', '\n', '\r'])
            || !attrs_are_plain(attrs)
            || (closing && !attrs.trim().is_empty())
        {
            return None;
        }
        let name = name.to_ascii_lowercase();
        at = match (at, closing, name.as_str()) {
            (In::Top, false, "html") => In::Html,
            (In::Html, false, "head") => In::Head,
            (In::Head, false, "meta") => In::Head,
            (In::Head, false, "title") => {
                rest = skip_element(rest, "</title>")?;
                In::Head
            }
            (In::Head, false, "script") => {
                rest = skip_element(rest, "</script>")?;
                In::Head
            }
            (In::Head, true, "head") => In::Html,
            (In::Html, false, "body") => In::Body,
            (In::Body, false, "script") => {
                rest = skip_element(rest, "</script>")?;
                In::Body
            }
            (In::Body, false, "p") => In::Paragraph,
            (In::Paragraph, true, "p") => {
                let (lines, _) = std::mem::take(&mut inline).finish()?;
                if lines.iter().any(|l| l.width > WIDTH) {
                    return None;
                }
                blocks.push(Block::Paragraph(lines));
                In::Body
            }
            (In::Paragraph | In::Cell | In::Strong, false, "br") => {
                inline.br()?;
                at
            }
            (In::Body, false, "table") => In::Table,
            (In::Table, false, "tr") => In::Row,
            (In::Row, false, "td") if !attrs.to_ascii_lowercase().contains("span") => In::Cell,
            (In::Cell, false, "strong") => In::Strong,
            (In::Strong, true, "strong") => In::Cell,
            (In::Cell, true, "td") => {
                cells.push(std::mem::take(&mut inline).finish()?);
                In::Row
            }
            (In::Row, true, "tr") => {
                if cells.is_empty() || rows.first().is_some_and(|r| r.len() != cells.len()) {
                    return None;
                }
                rows.push(std::mem::take(&mut cells));
                In::Table
            }
            (In::Table, true, "table") => {
                if rows.is_empty() {
                    return None;
                }
                blocks.push(Block::Table(std::mem::take(&mut rows)));
                In::Body
            }
            (In::Body, true, "body") => In::Html,
            (In::Html, true, "html") => In::Done,
            _ => return None,
        };
    }
    if at != In::Done || blocks.is_empty() {
        return None;
    }
    render(&blocks)
}

/// Attributes written the plain way (`name="value"` with no quote or `<` inside values) can
/// hold a `/` or `'` in a value without ending the tag early.
fn attrs_are_plain(attrs: &str) -> bool {
    let mut quoted = false;
    for c in attrs.chars() {
        match c {
            '"' => quoted = !quoted,
            '<' => return false,
            '\'' | '/' if !quoted => return false,
            _ => {}
        }
    }
    !quoted
}

/// What follows the content of a `title` or `script` element, which must hold no other `</`.
fn skip_element<'a>(rest: &'a str, end: &str) -> Option<&'a str> {
    let i = rest.find("</")?;
    rest[i..].strip_prefix(end)
}

fn render(blocks: &[Block]) -> Option<String> {
    let mut out = String::new();
    for (i, block) in blocks.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match block {
            Block::Paragraph(lines) => {
                for l in lines {
                    out.push_str(&l.text);
                    out.push('\n');
                }
            }
            Block::Table(rows) => {
                let columns = rows[0].len();
                let widths: Vec<usize> = (0..columns)
                    .map(|c| rows.iter().map(|r| r[c].1).max().unwrap_or(0))
                    .collect();
                if widths.iter().sum::<usize>() + columns - 1 > WIDTH {
                    return None;
                }
                for row in rows {
                    let height = row.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
                    for n in 0..height {
                        for (c, (lines, _)) in row.iter().enumerate() {
                            if c > 0 {
                                out.push(' ');
                            }
                            let (text, width) =
                                lines.get(n).map_or(("", 0), |l| (l.text.as_str(), l.width));
                            // A line wider than its column's estimate would be wrapped.
                            let pad = widths[c].checked_sub(width)?;
                            out.push_str(text);
                            out.extend(std::iter::repeat_n(' ', pad));
                        }
                        out.push('\n');
                    }
                }
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::mail::html_to_text_by_html2text;

    /// The simulator's HTML letter, with the table and the line breaks that matter.
    const LETTER: &str = "<!DOCTYPE html>\n<html>\n<head>\n<meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\">\n<title>Your booking RC-1 is confirmed</title>\n<script type=\"application/ld+json\">\n{\"@type\": \"RentalCarReservation\", \"note\": \"<\\/p>\"}\n</script>\n</head>\n<body style=\"font-family: Helvetica, Arial, sans-serif;\">\n<p>Dear Mar\u{ed}a,</p>\n<p>your reservation RC-1 &amp; more has been confirmed.</p>\n<table cellpadding=\"4\" style=\"border-collapse: collapse;\">\n<tr><td style=\"color: #6b7280;\">Booking code</td><td><strong>RC-1</strong></td></tr>\n<tr><td style=\"color: #6b7280;\">Pick-up</td><td><strong>Mon 1 Jun 2026, 10:00 CEST<br>Berlin Hbf<br>Europaplatz 1, 10557 Berlin (\u{6771}\u{4eac})</strong></td></tr>\n<tr><td style=\"color: #6b7280;\">Total</td><td><strong>\u{20ac}135.00</strong></td></tr>\n</table>\n<p>Kind regards,<br>\nRentico Reservations</p>\n</body>\n</html>\n";

    #[test]
    fn the_letter_reads_as_html2text_reads_it() {
        let fast = simple_html_to_text(LETTER).expect("the simple kind");
        assert_eq!(fast, html_to_text_by_html2text(LETTER));
        assert!(
            fast.contains("Pick-up      Mon 1 Jun 2026, 10:00 CEST"),
            "{fast}"
        );
    }

    #[test]
    fn anything_else_is_left_to_html2text() {
        for html in [
            "<html><body><div>hi</div></body></html>",
            "<html><body><p>a &nbsp; b</p></body></html>",
            "<html><body><p>e\u{301}</p></body></html>",
            "<html><body><p>\u{ac00}</p></body></html>",
            "<html><body><p>a<br><br>b</p></body></html>",
            "<html><body><table><tr><td colspan=\"2\">a</td></tr></table></body></html>",
            "<html><body><p>unclosed</body></html>",
            "<!DOCTYPE html",
            "",
        ] {
            assert_eq!(simple_html_to_text(html), None, "{html}");
        }
    }

    /// Small changes to the letter (spaces, breaks, tags, entities, long lines, cut text) must
    /// either be left to html2text or read to exactly what html2text makes of them.
    #[test]
    fn changed_letters_read_as_html2text_reads_them_or_are_left_to_it() {
        let pieces = [
            " ",
            "\n",
            "<br>",
            "<p>",
            "</p>",
            "&amp;",
            "&",
            "<strong>",
            "</strong>",
            "<td>",
            "</td>",
            "<tr>",
            "</tr>",
            "\u{e9}",
            "\u{a0}",
            "\t",
            "<td></td>",
            " <br> ",
            "<P>",
            "<BR>",
            "&#39;",
            ">",
            "<!-- c -->",
            "<tr><td>x</td><td>y</td></tr>",
            "<br/>",
            "\u{54c1}\u{5ddd} 334 \u{3042}",
        ];
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut rnd = move |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        let mut accepted = 0;
        for _ in 0..1500 {
            let mut h = LETTER.to_string();
            for _ in 0..1 + rnd(2) {
                let mut i = rnd(h.len());
                while !h.is_char_boundary(i) {
                    i -= 1;
                }
                match rnd(3) {
                    0 => {
                        let mut j = (i + rnd(12)).min(h.len());
                        while !h.is_char_boundary(j) {
                            j -= 1;
                        }
                        h.replace_range(i..j, "");
                    }
                    1 => h.insert_str(i, pieces[rnd(pieces.len())]),
                    _ => h.insert_str(i, &"word ".repeat(rnd(100))),
                }
            }
            if let Some(fast) = simple_html_to_text(&h) {
                accepted += 1;
                assert_eq!(fast, html_to_text_by_html2text(&h), "{h}");
            }
        }
        assert!(accepted > 300, "{accepted}");
    }
}
