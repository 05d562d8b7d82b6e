//! Throughput of the Stripe file readers, objects per second, for the note:
//!
//!     cargo run --release --example stripe_throughput -- DIR/evidence/stripe
//!
//! Reads each JSON dump and the CSV export on its own (so CSV rows are parsed in full rather
//! than recognised as duplicates of the dumps) into a sink that only counts.

use std::time::Instant;

use gapfill::evidence::{Evidence, Sink, Skip, Window};
use gapfill::sources::stripe::{read, StripeRules};

#[derive(Default)]
struct Count(usize, usize);

impl Sink for Count {
    fn evidence(&mut self, _: Evidence) {
        self.0 += 1;
    }
    fn skip(&mut self, _: Skip) {
        self.1 += 1;
    }
}

fn main() {
    let dir = std::path::PathBuf::from(
        std::env::args()
            .nth(1)
            .expect("usage: stripe_throughput DIR"),
    );
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("a folder")
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let (mut json, mut csv) = ((0usize, 0u64, 0f64), (0usize, 0u64, 0f64));
    for f in files {
        let bytes = std::fs::metadata(&f).unwrap().len();
        let start = Instant::now();
        let mut sink = Count::default();
        let stats = read(&f, &StripeRules::default(), &Window::default(), &mut sink).unwrap();
        let secs = start.elapsed().as_secs_f64();
        let items = stats.objects + stats.rows;
        assert_eq!(items, sink.0 + sink.1, "every item accounted for");
        println!(
            "{:<24} {:>8} items {:>7.1} MB {:>7.3} s {:>9.0} items/s",
            f.file_name().unwrap().to_string_lossy(),
            items,
            bytes as f64 / 1e6,
            secs,
            items as f64 / secs
        );
        let t = if stats.rows > 0 { &mut csv } else { &mut json };
        t.0 += items;
        t.1 += bytes;
        t.2 += secs;
    }
    for (name, (n, b, s)) in [("JSON dumps", json), ("CSV export", csv)] {
        println!(
            "{name}: {n} objects, {:.1} MB in {s:.2} s = {:.0} objects/s ({:.0} MB/s)",
            b as f64 / 1e6,
            n as f64 / s,
            b as f64 / 1e6 / s
        );
    }
}
