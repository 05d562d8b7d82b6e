//! The plan: a reviewable, deterministic file of inserts and updates (SPEC §2, §3; the format is
//! docs/plan-format.md).
//!
//! Planning turns matching's entities into changes: a new entity is an insert, an entity linked
//! to an existing row is a field-level update of the columns whose value differs. Each change
//! carries its confidence, its decision (auto-accepted, needs review, rejected) with the reasons,
//! and the evidence behind every value. Nothing here touches a database: the baseline and schema
//! come in as values, and the plan goes out as a file that only `apply` acts on.

mod build;
pub mod html;
pub mod render;
pub mod review;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use build::{build, build_changes, take_evidence, Context};
pub(crate) use build::{evidence_id, evidence_ref_with};

pub const FORMAT: &str = "gapfill-plan";
pub const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    #[error("cannot read plan {path}: {message}")]
    Read { path: String, message: String },
    #[error("{path} is not a gapfill plan: {message}")]
    Format { path: String, message: String },
    #[error("cannot write plan {path}: {message}")]
    Write { path: String, message: String },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Plan {
    pub format: String,
    pub version: u32,
    /// Which plan this is, given when it was made ([`Plan::seal`]) and kept through review: the
    /// audit table records applied changes under it, so an apply of the same plan after more
    /// review skips what the first one made, and another plan's changes are never taken for it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// The digest of the mapping file the plan was made with.
    pub mapping_hash: String,
    /// The schema fingerprint of the database it was made against; apply refuses another.
    pub schema_fingerprint: String,
    pub dialect: String,
    pub restore_point: Option<String>,
    pub window: Window,
    pub summary: Summary,
    /// In apply order: inserts in the mapping's insertion order, then updates.
    pub changes: Vec<Change>,
    /// The evidence any change or unmatched item refers to, by id.
    pub evidence: BTreeMap<String, EvidenceRef>,
    pub unmatched: Vec<UnmatchedRef>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Window {
    pub since: Option<String>,
    pub until: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// Per table: inserts and updates, by decision.
    pub tables: BTreeMap<String, TableSummary>,
    pub evidence: u64,
    /// Input items the sources skipped (irrelevant, duplicate, malformed, outside the window).
    pub skipped: u64,
    pub unmatched: u64,
    /// Entities linked to an existing row that the evidence does not change.
    pub unchanged: u64,
    /// Per table: the entities matching found (new, and linked to existing rows).
    #[serde(default)]
    pub entities: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TableSummary {
    pub inserts: BTreeMap<Decision, u64>,
    pub updates: BTreeMap<Decision, u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Insert,
    Update,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Accepted,
    NeedsReview,
    Rejected,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Accepted => "accepted",
            Decision::NeedsReview => "needs review",
            Decision::Rejected => "rejected",
        }
    }
}

/// Who made a decision: matching's thresholds, `review --accept-above`, or a reviewed file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum DecidedBy {
    Auto,
    Threshold { score: f64 },
    File { path: String },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Change {
    /// Stable: the same entity gets the same id in every plan made from the same inputs.
    pub id: String,
    pub entity: String,
    pub table: String,
    pub op: Op,
    /// The key column of the table.
    pub key_column: String,
    /// Inserts: the plan-local id other inserts refer to this row by.
    pub local: Option<String>,
    /// Updates: the existing row's key.
    pub key: Option<String>,
    pub columns: Vec<ColumnChange>,
    pub confidence: f64,
    pub decision: Decision,
    pub decided_by: DecidedBy,
    /// Why the decision is what it is, for people.
    pub reasons: Vec<String>,
    /// Inserts this change needs first (plan-local ids).
    pub depends_on: Vec<String>,
    /// How the entity was put together and linked: one line per step, field contributions
    /// included.
    pub explanation: Vec<String>,
    pub evidence: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ColumnChange {
    pub column: String,
    /// Updates: the value the row holds now, as the baseline read it.
    pub before: Option<String>,
    pub after: After,
    /// The IANA zone of a wall-clock column, as the mapping says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    pub evidence: Vec<String>,
    /// Other values the evidence gave: `value (e12, e40)`.
    pub alternatives: Vec<String>,
    /// A value the mapping's rules reached from the evidence's (`when_past`), and how.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inferred: Option<String>,
}

/// A value to write.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum After {
    Text(String),
    Int(i64),
    /// An exact decimal, as text.
    Decimal(String),
    /// An instant, `YYYY-MM-DDTHH:MM:SSZ`.
    Instant(String),
    /// Wall-clock time for a column without a zone, `YYYY-MM-DD HH:MM:SS`.
    WallClock(String),
    Date(String),
    /// The key of a row this plan inserts, by its plan-local id.
    Ref(String),
    /// The key of an existing row.
    Key(String),
    /// The time of apply.
    Now,
}

impl After {
    /// For people and for comparing with the baseline's text.
    pub fn display(&self) -> String {
        match self {
            After::Text(s)
            | After::Decimal(s)
            | After::Instant(s)
            | After::WallClock(s)
            | After::Date(s)
            | After::Key(s) => s.clone(),
            After::Int(i) => i.to_string(),
            After::Ref(l) => format!("→ {l}"),
            After::Now => "(time of apply)".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EvidenceRef {
    pub source: String,
    pub origin: String,
    pub locator: String,
    pub kind: String,
    pub observed_at: Option<String>,
    pub hash: String,
    /// What it says, field by field, for reviewing side by side.
    pub fields: BTreeMap<String, String>,
    /// Why it may not change an existing row by itself (a mail from a sender the mapping does
    /// not trust); absent when it may.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub untrusted: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UnmatchedRef {
    pub evidence: String,
    pub entity: String,
    pub why: String,
}

impl Plan {
    pub fn read(path: &Path) -> Result<Plan, PlanError> {
        let text = std::fs::read_to_string(path).map_err(|e| PlanError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Plan::parse(path, &text)
    }

    /// A plan from its text; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Plan, PlanError> {
        let plan: Plan = serde_json::from_str(text).map_err(|e| PlanError::Format {
            path: path.display().to_string(),
            message: format!("line {} column {}: {e}", e.line(), e.column()),
        })?;
        if plan.format != FORMAT || plan.version != VERSION {
            return Err(PlanError::Format {
                path: path.display().to_string(),
                message: format!(
                    "format {} version {}, but this gapfill reads {FORMAT} version {VERSION}",
                    plan.format, plan.version
                ),
            });
        }
        Ok(plan)
    }

    /// The plan as the bytes written: same plan, same bytes (invariant 7). Compact JSON, one
    /// document: plans run to hundreds of megabytes, and `gapfill show` is for reading them.
    pub fn write_to(&self, out: impl std::io::Write) -> std::io::Result<()> {
        use std::io::Write;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, out);
        serde_json::to_writer(&mut out, self)?;
        out.write_all(b"\n")?;
        out.flush()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = self.write_to(&mut out);
        out
    }

    /// Writes the plan readable by its owner only (it holds customer data, invariant 8), and
    /// atomically: a crash leaves the old file or the new one.
    pub fn write(&self, path: &Path) -> Result<(), PlanError> {
        let fail = |e: std::io::Error| PlanError::Write {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        crate::files::write_private_with(path, |w| self.write_to(w)).map_err(fail)
    }

    /// Gives the plan its id, from what it would do as made: its database, mapping, window and
    /// every change with its before and after values. Same inputs, same id (invariant 7); a plan
    /// that would write anything differently has another id. The evidence is left out of the
    /// digest (it is half the file, and the changes name the items they rest on).
    pub fn seal(&mut self) {
        #[derive(Serialize)]
        struct Identity<'a> {
            format: &'a str,
            version: u32,
            mapping_hash: &'a str,
            schema_fingerprint: &'a str,
            dialect: &'a str,
            restore_point: &'a Option<String>,
            window: &'a Window,
            changes: &'a [Change],
        }
        let mut h = crate::evidence::StableHasher::new();
        let _ = serde_json::to_writer(
            &mut h,
            &Identity {
                format: &self.format,
                version: self.version,
                mapping_hash: &self.mapping_hash,
                schema_fingerprint: &self.schema_fingerprint,
                dialect: &self.dialect,
                restore_point: &self.restore_point,
                window: &self.window,
                changes: &self.changes,
            },
        );
        self.id = format!("plan-{}", h.finish());
    }

    /// The plan's id; a plan written before plans had one is known by its content's digest.
    pub fn scope(&self) -> String {
        if self.id.is_empty() {
            self.hash()
        } else {
            self.id.clone()
        }
    }

    /// The digest of the plan's content, recorded with every change apply makes.
    pub fn hash(&self) -> String {
        let mut h = crate::evidence::StableHasher::new();
        let _ = self.write_to(&mut h);
        h.finish()
    }

    /// Recounts the summary from the changes (after review changed decisions).
    pub fn recount(&mut self) {
        let mut tables: BTreeMap<String, TableSummary> = BTreeMap::new();
        for c in &self.changes {
            let t = tables.entry(c.table.clone()).or_default();
            let by = match c.op {
                Op::Insert => &mut t.inserts,
                Op::Update => &mut t.updates,
            };
            *by.entry(c.decision).or_insert(0) += 1;
        }
        self.summary.tables = tables;
        self.summary.unmatched = self.unmatched.len() as u64;
    }
}
