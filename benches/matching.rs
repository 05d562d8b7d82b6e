//! Matching N evidence items against a whole baseline: time and peak memory, to show how the cost
//! grows with the amount of evidence.
//!
//!     cargo run --release -- simulate --out /tmp/big --reservations 100000
//!     cargo bench --bench matching -- /tmp/big/gapfill.toml 10000
//!     cargo bench --bench matching -- /tmp/big/gapfill.toml 100000
//!     cargo bench --bench matching -- /tmp/big/gapfill.toml 300000
//!
//! The evidence is every source of the incident read over its window, then the first N items in
//! a fixed interleaving of the sources (so each N has Stripe, calendar and mail alike). One N per
//! process: the peak memory reported is the process's, and the baseline and evidence alone are
//! reported before matching starts.

use std::time::Instant;

use gapfill::baseline;
use gapfill::config::Config;
use gapfill::dburl::{self, Dialect};
use gapfill::evidence::{Collected, Window};
use gapfill::mapping::Mapping;
use gapfill::{matching, schema, sources};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?.to_string();
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn main() {
    // `cargo test --all-targets` runs bench targets too, with no arguments: nothing to measure.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let (Some(config), Some(n)) = (
        args.first(),
        args.get(1).and_then(|n| n.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: cargo bench --bench matching -- INCIDENT/gapfill.toml N");
        return;
    };
    let config = Config::load(Some(std::path::Path::new(config))).expect("the config reads");
    let loaded = Mapping::load(config.mapping.as_ref().expect("a mapping")).expect("mapping");
    let url = config.database.clone().expect("a database");
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let started = Instant::now();
    let base = rt.block_on(async {
        let dialect = Dialect::of(&url).expect("a database URL");
        let mut conn = dburl::connect_read_only(&url).await.expect("connects");
        let schema = schema::introspect(&mut conn, dialect)
            .await
            .expect("schema");
        baseline::begin_read_only(&mut conn, dialect)
            .await
            .expect("begins");
        baseline::load(&mut conn, &schema, &loaded.mapping, &mut |_, _| {})
            .await
            .expect("loads")
    });
    let inputs = sources::Inputs {
        stripe: config.stripe.clone(),
        calendar: config.calendar.clone(),
        mail: config.mail.clone(),
        csv: config.csv.clone(),
        stripe_api: None,
    };
    let window = Window {
        since: base.window_start,
        until: None,
    };
    let mut collected = Collected::default();
    rt.block_on(sources::read_all(
        &inputs,
        &loaded.mapping.sources,
        &window,
        &mut collected,
    ));
    // Interleave the sources, so that every N holds some of each.
    let mut by_source: Vec<Vec<gapfill::evidence::Evidence>> = vec![Vec::new(); 4];
    for e in collected.evidence {
        by_source[e.provenance.source as usize].push(e);
    }
    let mut evidence = Vec::with_capacity(n);
    let mut iters: Vec<_> = by_source.into_iter().map(|v| v.into_iter()).collect();
    while evidence.len() < n {
        let mut any = false;
        for it in iters.iter_mut() {
            if let Some(e) = it.next() {
                evidence.push(e);
                any = true;
                if evidence.len() == n {
                    break;
                }
            }
        }
        if !any {
            break;
        }
    }
    let before = peak_rss_mib();
    let read = started.elapsed().as_secs_f64();
    let t = Instant::now();
    let rec = matching::reconstruct(&loaded.mapping, &evidence, &base);
    let secs = t.elapsed().as_secs_f64();
    let entities: usize = rec.entities.iter().map(|s| s.items.len()).sum();
    println!(
        "{} evidence items against {} baseline rows: matching {secs:.2} s ({:.0} items/s), {entities} entities, {} unmatched; peak RSS {:.0} MiB (before matching {before:.0} MiB; reading took {read:.1} s)",
        evidence.len(),
        base.row_count(),
        evidence.len() as f64 / secs,
        rec.unmatched.len(),
        peak_rss_mib(),
    );
}
