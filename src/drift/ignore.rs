//! The ignore file: known and accepted differences, so a daily drift check stays quiet until
//! something new appears (docs/drift.md).
//!
//! ```toml
//! [[ignore]]
//! reason = "Stripe test charges are not bookings"
//! kind = "missing"
//! table = "payments"
//! where = { description = "Test charge" }
//! ```
//!
//! A rule names why (`reason`, required) and selects with any of `finding` (a finding's id),
//! `evidence` (a Stripe object id, a Message-ID, a calendar UID), `kind`, `table`, `column` and
//! `where` (evidence fields that must all hold these values on one evidence item of the
//! finding). Every selector given must match. A rule with `column` silences only that column of a
//! contradicted row; the finding goes when no column is left.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::{Ignored, Kind, Report};
use crate::plan::EvidenceRef;

#[derive(Debug, thiserror::Error)]
pub enum IgnoreError {
    #[error("cannot read the ignore file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    ignore: Vec<Spanned<RuleFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    reason: String,
    finding: Option<String>,
    evidence: Option<String>,
    kind: Option<Spanned<String>>,
    table: Option<String>,
    column: Option<String>,
    #[serde(default, rename = "where")]
    fields: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct Rule {
    /// `drift-ignore.toml:12 (Stripe test charges are not bookings)`, for the report.
    pub label: String,
    finding: Option<String>,
    evidence: Option<String>,
    kind: Option<Kind>,
    table: Option<String>,
    column: Option<String>,
    fields: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub rules: Vec<Rule>,
}

impl Rules {
    pub fn load(path: &Path) -> Result<Rules, IgnoreError> {
        let text = std::fs::read_to_string(path).map_err(|source| IgnoreError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Rules::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Rules, IgnoreError> {
        let locator = crate::mapping::Locator::new(path, text);
        let invalid = |offset: usize, message: String| {
            let at = locator.problem(offset, crate::mapping::Severity::Error, message);
            IgnoreError::Invalid {
                path: path.to_path_buf(),
                line: at.line,
                column: at.column,
                message: at.message,
            }
        };
        let file: File = toml::from_str(text).map_err(|e| {
            invalid(
                e.span().map(|s| s.start).unwrap_or(0),
                e.message().trim().to_string(),
            )
        })?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut rules = Vec::new();
        for spanned in file.ignore {
            let start = spanned.span().start;
            let r = spanned.into_inner();
            let kind = match &r.kind {
                None => None,
                Some(k) => Some(Kind::parse(k.get_ref()).ok_or_else(|| {
                    invalid(
                        k.span().start,
                        format!(
                            "kind {:?} is not one of missing, contradicted, duplicate",
                            k.get_ref()
                        ),
                    )
                })?),
            };
            if r.reason.trim().is_empty() {
                return Err(invalid(
                    start,
                    "a rule needs a reason: say why the difference is accepted".into(),
                ));
            }
            if r.finding.is_none()
                && r.evidence.is_none()
                && kind.is_none()
                && r.table.is_none()
                && r.column.is_none()
                && r.fields.is_empty()
            {
                return Err(invalid(
                    start,
                    "this rule selects nothing and would silence every finding: give finding, evidence, kind, table, column or where".into(),
                ));
            }
            let line = locator
                .problem(start, crate::mapping::Severity::Error, String::new())
                .line;
            rules.push(Rule {
                label: format!("{name}:{line} ({})", r.reason.trim()),
                finding: r.finding,
                evidence: r.evidence.map(|e| trim_brackets(&e).to_string()),
                kind,
                table: r.table,
                column: r.column,
                fields: r.fields,
            });
        }
        Ok(Rules { rules })
    }

    /// Moves the findings a rule silences to `report.ignored` and lists the rules that silenced
    /// nothing.
    pub fn apply(&self, report: &mut Report) {
        let mut used = vec![false; self.rules.len()];
        let mut kept = Vec::with_capacity(report.findings.len());
        let mut ignored: Vec<(usize, super::Finding)> = Vec::new();
        for mut f in std::mem::take(&mut report.findings) {
            let items: Vec<&EvidenceRef> = f
                .evidence
                .iter()
                .filter_map(|id| report.evidence.get(id))
                .collect();
            let mut silenced_by = None;
            for (n, rule) in self.rules.iter().enumerate() {
                if !rule.selects(&f, &items) {
                    continue;
                }
                match &rule.column {
                    Some(col) if f.kind == Kind::Contradicted => {
                        let before = f.fields.len();
                        f.fields.retain(|c| &c.column != col);
                        if f.fields.len() < before {
                            used[n] = true;
                        }
                        if f.fields.is_empty() {
                            silenced_by = Some(n);
                            break;
                        }
                    }
                    _ => {
                        used[n] = true;
                        silenced_by = Some(n);
                        break;
                    }
                }
            }
            match silenced_by {
                Some(n) => ignored.push((n, f)),
                None => kept.push(f),
            }
        }
        // In the ignore file's order, so the report groups them by rule as the file does.
        ignored.sort_by_key(|(n, _)| *n);
        report.ignored = ignored
            .into_iter()
            .map(|(n, finding)| Ignored {
                finding,
                rule: self.rules[n].label.clone(),
            })
            .collect();
        report.findings = kept;
        report.unused_rules = self
            .rules
            .iter()
            .zip(used)
            .filter(|(_, u)| !u)
            .map(|(r, _)| r.label.clone())
            .collect();
        report.recount();
    }
}

impl Rule {
    fn selects(&self, f: &super::Finding, items: &[&EvidenceRef]) -> bool {
        if self.finding.as_ref().is_some_and(|id| id != &f.id)
            || self.kind.is_some_and(|k| k != f.kind)
            || self.table.as_ref().is_some_and(|t| t != &f.table)
        {
            return false;
        }
        if let Some(col) = &self.column {
            if !f.fields.iter().any(|c| &c.column == col) {
                return false;
            }
        }
        if let Some(id) = &self.evidence {
            // The whole locator ("line 12 uid …") or one of its words: a Stripe id, a
            // Message-ID, a calendar UID.
            let named = items.iter().any(|e| {
                trim_brackets(&e.locator) == id
                    || e.locator.split_whitespace().any(|t| trim_brackets(t) == id)
            });
            if !named {
                return false;
            }
        }
        if !self.fields.is_empty() {
            let holds = items.iter().any(|e| {
                self.fields
                    .iter()
                    .all(|(k, v)| e.fields.get(k).is_some_and(|have| have.trim() == v.trim()))
            });
            if !holds {
                return false;
            }
        }
        true
    }
}

fn trim_brackets(s: &str) -> &str {
    s.trim().trim_start_matches('<').trim_end_matches('>')
}
