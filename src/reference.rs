//! The reference schema of SPEC §5 (examples/car-rental/), as the simulator and the evaluator see
//! it. Nothing else in gapfill may depend on these names: the product learns schemas from
//! mapping files.

/// How a column's values are compared and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The primary key: never compared, since a reconstruction invents its own.
    Id,
    Text,
    /// Text compared without regard to case or surrounding space.
    Email,
    Int,
    /// An instant, stored per dialect: ISO 8601 text with Z in SQLite, timestamptz in
    /// PostgreSQL, DATETIME holding UTC in MySQL.
    Timestamp,
    /// A foreign key to the named table, compared through that table's alignment.
    Ref(&'static str),
}

#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
    /// Bookkeeping columns (created_at, updated_at) whose exact values no evidence records;
    /// reported, but kept out of headline field accuracy.
    pub audit: bool,
}

#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    pub columns: &'static [Column],
    /// Natural keys that identify a row without its primary key, most trusted first.
    pub keys: &'static [&'static [&'static str]],
    /// Rows that the business creates every day and evidence records (customers, reservations,
    /// payments), as opposed to reference data set up once (locations, vehicles).
    pub from_evidence: bool,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
    pub fn index(&self, name: &str) -> usize {
        self.columns
            .iter()
            .position(|c| c.name == name)
            .unwrap_or_else(|| panic!("reference table {} has no column {name}", self.name))
    }
}

const fn col(name: &'static str, kind: Kind) -> Column {
    Column {
        name,
        kind,
        audit: false,
    }
}
const fn audit(name: &'static str) -> Column {
    Column {
        name,
        kind: Kind::Timestamp,
        audit: true,
    }
}

/// The tables in foreign-key order: every table comes after the tables it references.
pub const TABLES: &[Table] = &[
    Table {
        name: "locations",
        columns: &[
            col("id", Kind::Id),
            col("code", Kind::Text),
            col("name", Kind::Text),
            col("city", Kind::Text),
            col("country", Kind::Text),
            col("timezone", Kind::Text),
            col("currency", Kind::Text),
            col("address", Kind::Text),
            audit("created_at"),
        ],
        keys: &[&["code"]],
        from_evidence: false,
    },
    Table {
        name: "vehicles",
        columns: &[
            col("id", Kind::Id),
            col("plate", Kind::Text),
            col("make", Kind::Text),
            col("model", Kind::Text),
            col("category", Kind::Text),
            col("home_location_id", Kind::Ref("locations")),
            col("daily_rate_minor", Kind::Int),
            col("currency", Kind::Text),
            audit("created_at"),
        ],
        keys: &[&["plate"]],
        from_evidence: false,
    },
    Table {
        name: "customers",
        columns: &[
            col("id", Kind::Id),
            col("full_name", Kind::Text),
            col("email", Kind::Email),
            col("phone", Kind::Text),
            col("stripe_customer_id", Kind::Text),
            audit("created_at"),
            audit("updated_at"),
        ],
        keys: &[&["email"], &["stripe_customer_id"], &["full_name", "phone"]],
        from_evidence: true,
    },
    Table {
        name: "reservations",
        columns: &[
            col("id", Kind::Id),
            col("booking_code", Kind::Text),
            col("customer_id", Kind::Ref("customers")),
            col("vehicle_id", Kind::Ref("vehicles")),
            col("pickup_location_id", Kind::Ref("locations")),
            col("return_location_id", Kind::Ref("locations")),
            col("pickup_at", Kind::Timestamp),
            col("return_at", Kind::Timestamp),
            col("status", Kind::Text),
            col("total_minor", Kind::Int),
            col("currency", Kind::Text),
            audit("created_at"),
            audit("updated_at"),
        ],
        keys: &[&["booking_code"], &["vehicle_id", "pickup_at"]],
        from_evidence: true,
    },
    Table {
        name: "payments",
        columns: &[
            col("id", Kind::Id),
            col("reservation_id", Kind::Ref("reservations")),
            col("stripe_payment_intent_id", Kind::Text),
            col("stripe_charge_id", Kind::Text),
            col("amount_minor", Kind::Int),
            col("currency", Kind::Text),
            col("status", Kind::Text),
            col("refunded_minor", Kind::Int),
            col("paid_at", Kind::Timestamp),
            audit("created_at"),
            audit("updated_at"),
        ],
        keys: &[
            &["stripe_charge_id"],
            &["stripe_payment_intent_id"],
            &["reservation_id", "amount_minor", "paid_at"],
        ],
        from_evidence: true,
    },
];

pub fn table(name: &str) -> Option<&'static Table> {
    TABLES.iter().find(|t| t.name == name)
}

/// The mapping of this schema, which the simulator writes beside every incident.
pub const MAPPING: &str = include_str!("../mappings/car-rental.toml");

pub const DDL_SQLITE: &str = include_str!("../examples/car-rental/schema.sqlite.sql");
pub const DDL_POSTGRES: &str = include_str!("../examples/car-rental/schema.postgres.sql");
pub const DDL_MYSQL: &str = include_str!("../examples/car-rental/schema.mysql.sql");

/// The simulator's bookkeeping in truth.db: incident facts and the evidence manifest.
pub const INCIDENT_TABLE: &str = "_gapfill_incident";
pub const MANIFEST_TABLE: &str = "_gapfill_manifest";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_column_appears_in_every_dialects_ddl() {
        for t in TABLES {
            for ddl in [DDL_SQLITE, DDL_POSTGRES, DDL_MYSQL] {
                assert!(
                    ddl.contains(&format!("CREATE TABLE {} (", t.name)),
                    "{}",
                    t.name
                );
                for c in t.columns {
                    assert!(
                        ddl.contains(&format!("\n    {} ", c.name)),
                        "{}.{} missing from a DDL",
                        t.name,
                        c.name
                    );
                }
            }
        }
    }

    #[test]
    fn references_point_backwards_and_keys_name_real_columns() {
        for (i, t) in TABLES.iter().enumerate() {
            for c in t.columns {
                if let Kind::Ref(target) = c.kind {
                    assert!(
                        TABLES[..i].iter().any(|p| p.name == target),
                        "{}.{}",
                        t.name,
                        c.name
                    );
                }
            }
            for key in t.keys {
                for k in *key {
                    assert!(t.column(k).is_some(), "{}: key column {k}", t.name);
                }
            }
        }
    }
}
