//! Stripe API JSON dumps and dashboard CSV exports (`--stripe PATH`): fixture folders under
//! tests/fixtures/stripe/ with the evidence expected from them, the mapping part for the
//! reference schema, and the simulator's Stripe folder accounted for object by object.

mod common;
mod sources_support;

use std::collections::BTreeMap;

use gapfill::evidence::{SkipReason, Value};
use gapfill::sources::stripe::{read, StripeRules};
use sources_support::{check, fixture_dirs, window, Recorder};

#[test]
fn fixtures_give_the_expected_evidence_and_skips() {
    for dir in fixture_dirs("stripe") {
        let mut rec = Recorder::new(&dir);
        let stats = read(&dir, &StripeRules::default(), &window(&dir), &mut rec).unwrap();
        assert_eq!(
            stats.items(),
            rec.evidence.len() + rec.skips.len(),
            "{}: the stats count what the sink got",
            dir.display()
        );
        assert_eq!(stats.evidence, rec.evidence.len());
        let got = format!(
            "{}# files={} objects={} rows={} evidence={} skipped={:?}\n",
            rec.lines.concat(),
            stats.files,
            stats.objects,
            stats.rows,
            stats.evidence,
            stats.skipped
        );
        check(&dir, &got);
    }
}
