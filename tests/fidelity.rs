//! SPEC §6's fidelity targets on small simulated incidents: simulate, plan, apply what the plan
//! accepts, and judge the result against the truth. The full-size measurements (5,000
//! reservations, several seeds) are in the issue notes; these keep the same bars on incidents
//! small enough for every test run, so a change that costs recall or accuracy fails here.

mod common;

use common::*;

struct Targets {
    recall: f64,
    precision: f64,
    fields: Option<f64>,
    auto_share: f64,
}

const MEDIUM: Targets = Targets {
    recall: 0.99,
    precision: 0.999,
    fields: Some(0.995),
    auto_share: 0.90,
};

const HIGH: Targets = Targets {
    recall: 0.97,
    precision: 0.995,
    fields: None,
    auto_share: 0.90,
};

fn recover_and_judge(seed: u64, noise: &str, targets: &Targets) {
    let dir = tempfile::tempdir().unwrap();
    let inc = dir.path().join("incident");
    gapfill_ok(&[
        "simulate",
        "--quiet",
        "--out",
        inc.to_str().unwrap(),
        "--seed",
        &seed.to_string(),
        "--reservations",
        "600",
        "--noise",
        noise,
    ]);
    let work = dir.path().join("work.db");
    std::fs::copy(inc.join("restored.db"), &work).unwrap();
    let url = sqlite_url(&work);
    let plan = dir.path().join("plan.json");
    plan_incident(&inc, &url, &plan, &[]);
    gapfill_ok(&[
        "apply",
        "--quiet",
        "--yes",
        "--db",
        &url,
        plan.to_str().unwrap(),
    ]);

    let p: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan).unwrap()).unwrap();
    let (mut accepted, mut all) = (0, 0);
    for table in p["summary"]["tables"].as_object().unwrap().values() {
        for op in ["inserts", "updates"] {
            for (decision, n) in table[op].as_object().into_iter().flatten() {
                let n = n.as_u64().unwrap();
                all += n;
                if decision == "accepted" {
                    accepted += n;
                }
            }
        }
    }
    let share = accepted as f64 / all as f64;
    let case = format!("seed {seed}, {noise} noise");
    assert!(
        share >= targets.auto_share,
        "{case}: {accepted} of {all} changes decided automatically"
    );

    let r = evaluate_json(&inc.join("truth.db"), &url);
    for t in r["tables"].as_array().unwrap() {
        let name = t["table"].as_str().unwrap();
        assert_eq!(t["pre_restore_corrupted"], 0, "{case}: {name} corrupted");
        assert_eq!(t["pre_restore_missing"], 0, "{case}: {name} lost rows");
        if t["gap_rows"] == 0 {
            continue;
        }
        let at_least = |metric: &str, bar: f64| {
            let v = t[metric].as_f64().unwrap();
            assert!(v >= bar, "{case}: {name} {metric} {v:.4} < {bar}\n{t}");
        };
        at_least("recall_with_evidence", targets.recall);
        at_least("precision", targets.precision);
        if let Some(bar) = targets.fields {
            at_least("field_accuracy", bar);
        }
        let merges = t["wrong_merges"].as_u64().unwrap();
        let rows = t["gap_rows"].as_u64().unwrap();
        assert!(
            merges as f64 <= 0.001 * rows as f64 + 1.0,
            "{case}: {name} {merges} wrong merges of {rows}"
        );
    }
}

#[test]
fn medium_noise_meets_the_targets() {
    for seed in [3, 4] {
        recover_and_judge(seed, "medium", &MEDIUM);
    }
}

#[test]
fn high_noise_meets_the_high_noise_targets() {
    recover_and_judge(3, "high", &HIGH);
}
