//! Loading a baseline through the reference mapping: time, rows per second and peak memory.
//!
//!     cargo run --release -- simulate --out /tmp/big --reservations 100000
//!     cargo bench --bench baseline -- sqlite:///tmp/big/restored.db
//!     cargo bench --bench baseline -- postgres://postgres@127.0.0.1:5432/big   # the dump loaded
//!
//! Run one database per process: the peak memory reported is the process's.

use std::time::Instant;

use gapfill::baseline;
use gapfill::dburl::{self, Dialect};
use gapfill::mapping::Mapping;
use gapfill::schema;

// As in the binary: the loader is allocation-bound.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() {
    // `cargo test --all-targets` runs bench targets too, with no arguments: nothing to measure.
    let Some(url) = std::env::args().skip(1).find(|a| a.contains("://")) else {
        eprintln!("usage: cargo bench --bench baseline -- DATABASE_URL");
        return;
    };
    let mapping_path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings/car-rental.toml");
    let loaded = Mapping::load(&mapping_path).expect("the reference mapping reads");
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let started = Instant::now();
    let b = rt.block_on(async {
        let dialect = Dialect::of(&url).expect("a database URL");
        let mut conn = dburl::connect_read_only(&url).await.expect("connects");
        let schema = schema::introspect(&mut conn, dialect)
            .await
            .expect("introspects");
        baseline::begin_read_only(&mut conn, dialect)
            .await
            .expect("begins");
        baseline::load(&mut conn, &schema, &loaded.mapping, &mut |_, _| {})
            .await
            .expect("loads")
    });
    let secs = started.elapsed().as_secs_f64();
    let rows = b.row_count();
    println!(
        "{}: {rows} rows in {secs:.2} s ({:.0} rows/s), peak RSS {:.0} MiB, restore point {:?}",
        dburl::redact(&url),
        rows as f64 / secs,
        peak_rss_mib().unwrap_or(f64::NAN),
        b.restore_point
    );
}
