//! Which evidence mentions which gap-period row: the answer key that `evaluate` uses to tell
//! "recoverable" rows from rows no evidence could bring back.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Stripe,
    Calendar,
    Mail,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Stripe => "stripe",
            Source::Calendar => "calendar",
            Source::Mail => "mail",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Mention {
    /// Table of the reference schema: customers, reservations or payments.
    pub table: &'static str,
    /// The row's primary key in truth.db.
    pub row_id: i64,
    pub source: Source,
    /// Where the evidence is: a Stripe object id, an ICS UID with SEQUENCE, a Message-ID, a CSV
    /// file and line.
    pub locator: String,
}

#[derive(Debug, Default)]
pub struct Manifest {
    mentions: Vec<Mention>,
}

impl Manifest {
    pub fn mention(
        &mut self,
        table: &'static str,
        row_id: i64,
        source: Source,
        locator: impl Into<String>,
    ) {
        self.mentions.push(Mention {
            table,
            row_id,
            source,
            locator: locator.into(),
        });
    }

    /// The mentions in a stable order, duplicates removed.
    pub fn into_sorted(mut self) -> Vec<Mention> {
        self.mentions.sort();
        self.mentions.dedup();
        self.mentions
    }
}
