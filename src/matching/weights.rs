//! Fellegi-Sunter match weights, estimated from the data itself.
//!
//! For each comparator, `m` is how often its field agrees between two items that an exact
//! identifier (a booking code, an email) already puts together, and `u` how often it agrees
//! between items of different entities. An agreement adds log2(m/u) to a pair's weight, a
//! disagreement log2((1-m)/(1-u)); a missing value adds nothing. With the prior chance that a
//! blocked candidate is the right one, the weight becomes a probability, so the mapping's
//! `accept` and `review` thresholds mean what they say.

use serde::Serialize;

use super::compare::{Compare, Level};

/// Per level (agree, partial, disagree): how many pairs of each population showed it.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub same: [u64; 3],
    pub different: [u64; 3],
}

/// The weight of each level of one comparator, in bits.
#[derive(Clone, Debug, Serialize)]
pub struct FieldWeights {
    pub field: String,
    pub agree: f64,
    pub partial: f64,
    pub disagree: f64,
}

impl FieldWeights {
    /// m and u per level, smoothed (a level never seen still has a small chance), then bits.
    pub fn estimate(compare: &Compare, t: &Tally) -> FieldWeights {
        let share = |counts: &[u64; 3], i: usize, floor: f64| {
            let total: u64 = counts.iter().sum();
            // Add-one smoothing against the prior guess when the data is thin.
            ((counts[i] as f64 + floor * 10.0) / (total as f64 + 10.0)).clamp(1e-6, 1.0 - 1e-6)
        };
        // Prior guesses before data: true pairs mostly agree, random pairs mostly do not.
        let m_prior = [0.9, 0.07, 0.03];
        let u_prior = [0.01, 0.04, 0.95];
        let bits = |i: usize| {
            let m = share(&t.same, i, m_prior[i]);
            let u = share(&t.different, i, u_prior[i]);
            (m / u).log2()
        };
        FieldWeights {
            field: compare.field.clone(),
            agree: bits(0),
            partial: bits(1),
            disagree: bits(2),
        }
    }

    pub fn of(&self, level: Level) -> f64 {
        match level {
            Level::Agree => self.agree,
            Level::Partial => self.partial,
            Level::Disagree => self.disagree,
        }
    }
}

/// Weight in bits plus prior odds → probability.
pub fn probability(weight: f64, prior: f64) -> f64 {
    let prior = prior.clamp(1e-6, 1.0 - 1e-6);
    let log_odds = weight + (prior / (1.0 - prior)).log2();
    1.0 / (1.0 + (-log_odds).exp2())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::Method;

    #[test]
    fn agreement_is_evidence_for_and_disagreement_against() {
        let c = Compare {
            field: "email".into(),
            method: Method::Email,
            within: chrono::Duration::zero(),
            tolerance: 0,
        };
        let t = Tally {
            same: [950, 0, 50],
            different: [1, 0, 999],
        };
        let w = FieldWeights::estimate(&c, &t);
        assert!(w.agree > 6.0, "{w:?}");
        assert!(w.disagree < -3.0, "{w:?}");
        assert!((probability(0.0, 0.5) - 0.5).abs() < 1e-9);
        assert!(probability(10.0, 0.1) > 0.99);
        assert!(probability(-10.0, 0.5) < 0.01);
    }
}
