//! The review round trip (SPEC §4, `gapfill review`): a plan goes out as a CSV file that a
//! spreadsheet opens, people fill its `decision` column, and the file comes back to change the
//! plan's decisions; or every change that needs review above a confidence is accepted at once.
//!
//! The CSV is tied to one plan by its hash in every row: a file exported from another plan, or
//! from this plan before it changed, is refused as a whole. Every row is checked before anything
//! changes, and all problems are reported at once with their line numbers.
//!
//! After a review no accepted change may depend on an insert that is not accepted (apply would
//! insert a row pointing at nothing). Import treats that as an error naming both changes rather
//! than demoting the dependant quietly: the reviewer decided, so the reviewer resolves it.
//! `accept_above` simply leaves such a change for review.
//!
//! Evidence is customer-controlled text: every exported cell that a spreadsheet would run as a
//! formula is neutralised with a leading single quote.

use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};

use super::{DecidedBy, Decision, Op, Plan};

/// The CSV's columns, in order. `decision` is the one a reviewer fills; the others are for
/// reading (edits to them are ignored, except to `plan` and `change`, which identify the row).
pub const COLUMNS: [&str; 11] = [
    "plan",
    "change",
    "table",
    "operation",
    "row",
    "columns",
    "confidence",
    "current decision",
    "reasons",
    "evidence",
    "decision",
];

/// The evidence fields worth a glance in a spreadsheet cell, in this order; the HTML report and
/// the plan file have all of them.
const KEY_FIELDS: [&str; 8] = [
    "booking_code",
    "name",
    "email",
    "phone",
    "amount",
    "status",
    "starts_at",
    "ends_at",
];

/// Spreadsheets refuse cells longer than 32,767 characters.
const MAX_CELL: usize = 30_000;

/// The wording `plan::build` gives a change it rejects because the table needs a value that no
/// evidence gives. Such a change can never be applied, so review never accepts it.
const MISSING_REQUIRED: &str = "which the table requires";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReviewError {
    #[error("{path}:{line}: not readable as CSV: {message}; save the sheet as CSV (UTF-8) and import that")]
    Csv {
        path: String,
        line: u64,
        message: String,
    },
    #[error("{path}: the header has no `{column}` column; export a fresh file with `gapfill review PLAN --export FILE` and fill in its `decision` column")]
    Header { path: String, column: String },
    #[error("{path}:{line}: this file was exported from plan {found}{others}, but the plan is {expected}; nothing was changed: export a fresh file from this plan with `gapfill review PLAN --export FILE` and copy the decisions into it")]
    OtherPlan {
        path: String,
        line: u64,
        found: String,
        expected: String,
        /// ", and N more rows", or nothing.
        others: String,
    },
    #[error("{path}: {} problem(s); nothing was changed:\n{}", problems.len(), list(problems))]
    Invalid {
        path: String,
        problems: Vec<Problem>,
    },
}

/// One problem with one row of a review file.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub path: String,
    /// The row's line in the file (a row with a line break inside a cell starts there); `None`
    /// for a change the file has no row for.
    pub line: Option<u64>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.path, self.message),
            None => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What an import changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportReport {
    pub path: String,
    /// Rows read (blank rows not counted).
    pub rows: usize,
    /// Changes whose decision changed: id, before, after.
    pub changed: Vec<(String, Decision, Decision)>,
    /// Rows that repeated the decision the change already had; now decided by the file.
    pub confirmed: usize,
    /// Rows with an empty decision: left as they were.
    pub left: usize,
}

impl ImportReport {
    /// For people: one line per changed decision, then the totals.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for (id, from, to) in &self.changed {
            let _ = writeln!(out, "{id}: {} → {}", from.as_str(), to.as_str());
        }
        let _ = writeln!(
            out,
            "{}: {} rows; {} decisions changed, {} confirmed, {} left as they were",
            self.path,
            self.rows,
            self.changed.len(),
            self.confirmed,
            self.left
        );
        out
    }
}

/// The plan as a review sheet: one row per change, in plan order, with the plan's hash in every
/// row and an empty `decision` column to fill with accept, reject or nothing.
pub fn export_csv(plan: &Plan) -> String {
    let hash = plan.hash();
    let mut w = csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Necessary)
        .from_writer(Vec::new());
    // Records of strings into a Vec cannot fail to write.
    let _ = w.write_record(COLUMNS);
    for c in &plan.changes {
        let columns = c
            .columns
            .iter()
            .map(|col| {
                let value = match &col.before {
                    Some(b) => format!("{}: {b} → {}", col.column, col.after.display()),
                    None => format!("{}: {}", col.column, col.after.display()),
                };
                match &col.inferred {
                    Some(why) => format!("{value} (inferred: {why})"),
                    None => value,
                }
            })
            .collect::<Vec<_>>()
            .join("; ");
        let evidence = c
            .evidence
            .iter()
            .map(|id| evidence_summary(plan, id))
            .collect::<Vec<_>>()
            .join(" | ");
        let op = match c.op {
            Op::Insert => "insert",
            Op::Update => "update",
        };
        let confidence = format!("{:.4}", c.confidence);
        let row = row_label(c);
        let reasons = c.reasons.join("; ");
        let cells = [
            hash.as_str(),
            c.id.as_str(),
            c.table.as_str(),
            op,
            row.as_str(),
            columns.as_str(),
            confidence.as_str(),
            c.decision.as_str(),
            reasons.as_str(),
            evidence.as_str(),
            "",
        ];
        let _ = w.write_record(cells.iter().map(|s| cell(s)));
    }
    let bytes = w.into_inner().unwrap_or_default();
    // A byte-order mark, so that Excel reads the file as UTF-8 (names keep their accents).
    format!("\u{feff}{}", String::from_utf8_lossy(&bytes))
}

/// How a change's row is named in the sheet: the existing row's key, or the plan-local id of the
/// row it inserts.
fn row_label(c: &super::Change) -> String {
    match c.op {
        Op::Update => format!("{}={}", c.key_column, c.key.as_deref().unwrap_or("")),
        Op::Insert => c.local.clone().unwrap_or_default(),
    }
}

/// `e12 stripe charge ch_123 (name=…, email=…)`: enough to recognise the record.
fn evidence_summary(plan: &Plan, id: &str) -> String {
    let Some(e) = plan.evidence.get(id) else {
        return format!("{id} (not in the plan)");
    };
    let fields = KEY_FIELDS
        .iter()
        .filter_map(|k| e.fields.get(*k).map(|v| format!("{k}={v}")))
        .take(5)
        .collect::<Vec<_>>()
        .join(", ");
    format!("{id} {} {} {} ({fields})", e.source, e.kind, e.locator)
}

/// A cell a spreadsheet shows as text: no line breaks or control characters, never a formula,
/// never longer than a spreadsheet takes.
fn cell(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if out.chars().count() > MAX_CELL {
        out = out.chars().take(MAX_CELL).collect::<String>() + "…";
    }
    // Checked on the original too: a leading tab or carriage return is turned into a space
    // above, but the cell still must not start like a formula in any spreadsheet.
    if starts_like_formula(s) || starts_like_formula(&out) {
        out.insert(0, '\'');
    }
    out
}

fn starts_like_formula(s: &str) -> bool {
    matches!(
        s.chars().next(),
        Some('=' | '+' | '-' | '@' | '\t' | '\r' | '\n')
    )
}

/// Undoes [`cell`]'s quote on the cells import reads, so a spreadsheet that keeps it does not
/// change an id.
fn read_cell(s: &str) -> &str {
    let s = s.trim();
    match s.strip_prefix('\'') {
        Some(rest) if starts_like_formula(rest) => rest,
        _ => s,
    }
}

/// What a reviewer may write in the `decision` column.
fn parse_decision(word: &str) -> Result<Option<Decision>, ()> {
    match word.trim().to_lowercase().as_str() {
        "" => Ok(None),
        "accept" | "accepted" => Ok(Some(Decision::Accepted)),
        "reject" | "rejected" => Ok(Some(Decision::Rejected)),
        _ => Err(()),
    }
}

/// Whether the change was rejected because the table needs a value no evidence gives: it can
/// never be applied, whatever a reviewer says.
pub fn missing_required(c: &super::Change) -> bool {
    c.decision == Decision::Rejected && c.reasons.iter().any(|r| r.contains(MISSING_REQUIRED))
}

/// Reads a filled review sheet and returns the plan with its decisions applied (decided by the
/// file at `path`) and recounted. Every row is checked first; on any problem nothing changes.
pub fn import_csv(
    plan: &Plan,
    csv_text: &str,
    path: &str,
) -> Result<(Plan, ImportReport), ReviewError> {
    let expected = plan.hash();
    let text = csv_text.strip_prefix('\u{feff}').unwrap_or(csv_text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| csv_error(path, text, &e))?
        .clone();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
            .ok_or_else(|| ReviewError::Header {
                path: path.to_string(),
                column: name.to_string(),
            })
    };
    let (plan_col, change_col, decision_col) =
        (column("plan")?, column("change")?, column("decision")?);
    let (table_col, row_col) = (column("table").ok(), column("row").ok());

    let by_id: HashMap<&str, usize> = plan
        .changes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id.as_str(), i))
        .collect();
    let by_row: HashMap<(&str, String), &str> = plan
        .changes
        .iter()
        .map(|c| ((c.table.as_str(), row_label(c)), c.id.as_str()))
        .collect();

    let mut problems = Vec::new();
    let problem = |line: Option<u64>, message: String| Problem {
        path: path.to_string(),
        line,
        message,
    };
    let mut other_plan: Vec<(u64, String)> = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut decided: Vec<(usize, u64, Option<Decision>)> = Vec::new();
    let mut report = ImportReport {
        path: path.to_string(),
        ..ImportReport::default()
    };
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(path, text, &e))?;
        let line = line_at(text, record.position());
        let get = |i: usize| read_cell(record.get(i).unwrap_or(""));
        if record.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        report.rows += 1;
        let hash = get(plan_col);
        if hash != expected {
            other_plan.push((line, hash.to_string()));
            continue;
        }
        let id = get(change_col);
        let Some(&index) = by_id.get(id) else {
            let here = table_col
                .zip(row_col)
                .and_then(|(t, r)| by_row.get(&(get(t), get(r).to_string())));
            problems.push(problem(
                Some(line),
                match here {
                    Some(original) => format!(
                        "the change id was edited to {id:?}; this row is change {original}: put its id back"
                    ),
                    None => format!(
                        "change {id:?} is not in this plan; the `change` column must keep the ids the export wrote"
                    ),
                },
            ));
            continue;
        };
        if let Some(first) = seen.insert(id.to_string(), line) {
            problems.push(problem(
                Some(line),
                format!("change {id} has a row already, at line {first}: keep one row per change"),
            ));
            continue;
        }
        let word = record.get(decision_col).unwrap_or("");
        let Ok(decision) = parse_decision(word) else {
            problems.push(problem(
                Some(line),
                format!(
                    "the decision {:?} for change {id} is not one of accept, reject or empty (leave it as it is)",
                    word.trim()
                ),
            ));
            continue;
        };
        let c = &plan.changes[index];
        if decision == Some(Decision::Accepted) && missing_required(c) {
            problems.push(problem(
                Some(line),
                format!(
                    "change {id} cannot be accepted: {}; apply could not insert it. Leave its decision empty",
                    c.reasons
                        .iter()
                        .find(|r| r.contains(MISSING_REQUIRED))
                        .map(String::as_str)
                        .unwrap_or_default()
                ),
            ));
            continue;
        }
        decided.push((index, line, decision));
    }
    if let Some((line, found)) = other_plan.first() {
        let more = other_plan.len() - 1;
        return Err(ReviewError::OtherPlan {
            path: path.to_string(),
            line: *line,
            found: if found.is_empty() {
                "(empty plan cell)".into()
            } else {
                format!("{found:?}")
            },
            expected,
            others: if more > 0 {
                format!(" (and {more} more rows)")
            } else {
                String::new()
            },
        });
    }
    if !problems.is_empty() {
        return Err(ReviewError::Invalid {
            path: path.to_string(),
            problems,
        });
    }

    let mut out = plan.clone();
    let mut line_of: HashMap<usize, u64> = HashMap::new();
    for &(index, line, decision) in &decided {
        line_of.insert(index, line);
        let Some(d) = decision else {
            report.left += 1;
            continue;
        };
        let c = &mut out.changes[index];
        if c.decision == d {
            report.confirmed += 1;
        } else {
            report.changed.push((c.id.clone(), c.decision, d));
        }
        c.decision = d;
        c.decided_by = DecidedBy::File {
            path: path.to_string(),
        };
    }
    problems.extend(dependency_problems(&out, &line_of, path));
    if !problems.is_empty() {
        return Err(ReviewError::Invalid {
            path: path.to_string(),
            problems,
        });
    }
    out.recount();
    Ok((out, report))
}

/// Every accepted change that depends on an insert that is not accepted, named with both.
fn dependency_problems(plan: &Plan, line_of: &HashMap<usize, u64>, path: &str) -> Vec<Problem> {
    let inserts = insert_index(plan);
    let mut problems = Vec::new();
    for (i, c) in plan.changes.iter().enumerate() {
        if c.decision != Decision::Accepted {
            continue;
        }
        for local in &c.depends_on {
            let Some(&p) = inserts.get(local.as_str()) else {
                continue;
            };
            let parent = &plan.changes[p];
            if parent.decision == Decision::Accepted {
                continue;
            }
            problems.push(Problem {
                path: path.to_string(),
                line: line_of.get(&i).or_else(|| line_of.get(&p)).copied(),
                message: format!(
                    "change {} ({} {}) is accepted, but it needs change {} (insert {local}), which is {}: reject {} too, or accept {}",
                    c.id,
                    c.table,
                    row_label(c),
                    parent.id,
                    parent.decision.as_str(),
                    c.id,
                    parent.id
                ),
            });
        }
    }
    problems
}

/// Inserts by their plan-local id.
fn insert_index(plan: &Plan) -> BTreeMap<&str, usize> {
    plan.changes
        .iter()
        .enumerate()
        .filter(|(_, c)| c.op == Op::Insert)
        .filter_map(|(i, c)| c.local.as_deref().map(|l| (l, i)))
        .collect()
}

/// Accepts every change that needs review with a confidence of at least `score`, decided by
/// the threshold, and returns how many. Rejected changes stay rejected. A change whose inserts
/// it depends on are not all accepted stays for review, so nothing accepted points at nothing.
pub fn accept_above(plan: &mut Plan, score: f64) -> usize {
    let inserts: BTreeMap<String, usize> = insert_index(plan)
        .into_iter()
        .map(|(l, i)| (l.to_string(), i))
        .collect();
    let mut accepted = 0;
    // Inserts come in insertion order, parents first; a few passes settle any other order.
    loop {
        let mut moved = false;
        for i in 0..plan.changes.len() {
            let c = &plan.changes[i];
            if c.decision != Decision::NeedsReview || c.confidence < score || missing_required(c) {
                continue;
            }
            let ready = c.depends_on.iter().all(|l| {
                inserts
                    .get(l)
                    .is_none_or(|&p| plan.changes[p].decision == Decision::Accepted)
            });
            if !ready {
                continue;
            }
            let c = &mut plan.changes[i];
            c.decision = Decision::Accepted;
            c.decided_by = DecidedBy::Threshold { score };
            accepted += 1;
            moved = true;
        }
        if !moved {
            break;
        }
    }
    plan.recount();
    accepted
}

/// A confidence given on the command line: a number from 0 to 1.
pub fn parse_score(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "{s:?} is not a confidence: give a number from 0 to 1, such as 0.9"
        )),
    }
}

/// The line a record starts on. The csv crate's own line count can point at the end of the
/// record before, so count from the record's byte offset, past any line break.
fn line_at(text: &str, pos: Option<&csv::Position>) -> u64 {
    let Some(pos) = pos else { return 0 };
    let bytes = text.as_bytes();
    let mut at = (pos.byte() as usize).min(bytes.len());
    while at < bytes.len() && matches!(bytes[at], b'\r' | b'\n') {
        at += 1;
    }
    1 + bytes[..at].iter().filter(|&&b| b == b'\n').count() as u64
}

fn csv_error(path: &str, text: &str, e: &csv::Error) -> ReviewError {
    ReviewError::Csv {
        path: path.to_string(),
        line: line_at(text, e.position()),
        message: match e.kind() {
            csv::ErrorKind::Utf8 { .. } => "a cell is not UTF-8".to_string(),
            _ => e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised() {
        for (input, want) in [
            (
                "=HYPERLINK(\"http://x\",\"y\")",
                "'=HYPERLINK(\"http://x\",\"y\")",
            ),
            ("+1", "'+1"),
            ("-1", "'-1"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "' x"),
            ("\r=1", "' =1"),
            ("a\nb", "a b"),
            ("plain", "plain"),
            ("", ""),
            ("'already", "'already"),
        ] {
            assert_eq!(cell(input), want, "{input:?}");
        }
    }

    #[test]
    fn read_cell_undoes_the_quote() {
        assert_eq!(read_cell("'-5"), "-5");
        assert_eq!(read_cell("'abc"), "'abc");
        assert_eq!(read_cell("  id  "), "id");
    }

    #[test]
    fn decision_words() {
        for (w, want) in [
            ("", Ok(None)),
            ("  ", Ok(None)),
            ("accept", Ok(Some(Decision::Accepted))),
            ("Accepted", Ok(Some(Decision::Accepted))),
            ("REJECT", Ok(Some(Decision::Rejected))),
            ("rejected ", Ok(Some(Decision::Rejected))),
            ("yes", Err(())),
            ("=HYPERLINK(\"x\")", Err(())),
        ] {
            assert_eq!(parse_decision(w), want, "{w:?}");
        }
    }

    #[test]
    fn scores() {
        assert_eq!(parse_score("0.5"), Ok(0.5));
        assert_eq!(parse_score("1"), Ok(1.0));
        assert!(parse_score("1.5").is_err());
        assert!(parse_score("NaN").is_err());
        assert!(parse_score("x").is_err());
    }
}
