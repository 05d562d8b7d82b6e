//! Mail ingestion against a bare mail-parser loop over the same archive (SPEC §6: at most 1.5×).
//!
//!   cargo bench --bench mail_ingest                      # build /tmp/gapfill-mail-bench.mbox if
//!                                                        # missing, then time both in turn
//!   cargo bench --bench mail_ingest -- build PATH [MB]   # write an archive of about MB megabytes
//!   cargo bench --bench mail_ingest -- gapfill PATH      # gapfill's reader alone
//!   cargo bench --bench mail_ingest -- bare PATH         # mail-parser's split + parse alone
//!   cargo bench --bench mail_ingest -- dump PATH         # every evidence and skip as JSON lines
//!                                                        # (to compare one build with another)
//!
//! Run `gapfill` and `bare` separately under `/usr/bin/time -v` for their peak memory. The
//! archive is the simulator's inbox repeated with fresh Message-IDs; it lives in /tmp and is
//! never committed.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use gapfill::evidence::{Evidence, Sink, Skip, Window};
use gapfill::sources::mail::{self, MailRules};

// The allocator the gapfill binary uses, for both loops alike.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DEFAULT_PATH: &str = "/tmp/gapfill-mail-bench.mbox";
const DEFAULT_MB: u64 = 1024;

#[derive(Default)]
struct Count {
    evidence: u64,
    skipped: u64,
    fields: u64,
}

impl Sink for Count {
    fn evidence(&mut self, e: Evidence) {
        self.evidence += 1;
        self.fields += e.fields.len() as u64;
    }
    fn skip(&mut self, _: Skip) {
        self.skipped += 1;
    }
}

fn rules() -> MailRules {
    gapfill::mapping::Mapping::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings/car-rental.toml"),
    )
    .expect("the reference mapping reads")
    .mapping
    .sources
    .mail
}

fn run_gapfill(path: &Path) -> f64 {
    let rules = rules();
    let start = Instant::now();
    let mut sink = Count::default();
    let stats = mail::read(path, &rules, &Window::default(), &mut sink).expect("readable");
    let secs = start.elapsed().as_secs_f64();
    println!(
        "gapfill: {secs:.2} s, {} messages, {} evidence ({} fields), {} skipped",
        stats.messages, sink.evidence, sink.fields, sink.skipped
    );
    secs
}

/// Every evidence and skip in order, one JSON line each, then the stats.
struct Dump<W: Write>(W);

impl<W: Write> Sink for Dump<W> {
    fn evidence(&mut self, e: Evidence) {
        serde_json::to_writer(&mut self.0, &e).expect("writable");
        self.0.write_all(b"\n").expect("writable");
    }
    fn skip(&mut self, s: Skip) {
        serde_json::to_writer(&mut self.0, &s).expect("writable");
        self.0.write_all(b"\n").expect("writable");
    }
}

fn run_dump(path: &Path) {
    let rules = rules();
    let mut sink = Dump(BufWriter::new(std::io::stdout().lock()));
    let stats = mail::read(path, &rules, &Window::default(), &mut sink).expect("readable");
    serde_json::to_writer(&mut sink.0, &stats).expect("writable");
    sink.0.write_all(b"\n").expect("writable");
    sink.0.flush().expect("writable");
}

fn run_bare(path: &Path) -> f64 {
    let start = Instant::now();
    let reader = BufReader::with_capacity(1 << 16, File::open(path).expect("readable"));
    let parser = mail_parser::MessageParser::default();
    let (mut messages, mut parsed, mut headers) = (0u64, 0u64, 0u64);
    for m in mail_parser::mailbox::mbox::MessageIterator::new(reader) {
        let Ok(m) = m else { continue };
        messages += 1;
        if let Some(msg) = parser.parse(m.contents()) {
            parsed += 1;
            headers += msg.headers().len() as u64;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "bare mail-parser: {secs:.2} s, {messages} messages, {parsed} parsed ({headers} headers)"
    );
    secs
}

/// The simulator's inbox, repeated with fresh Message-IDs (and the In-Reply-To and References
/// that point at them) until the archive is about `mb` megabytes. The inbox's last message is cut
/// off on purpose; the copies leave it out.
fn build(out: &Path, mb: u64) {
    let dir = std::env::temp_dir().join(format!("gapfill-mail-bench-{}", std::process::id()));
    let status = Command::new(env!("CARGO_BIN_EXE_gapfill"))
        .args([
            "simulate",
            "--quiet",
            "--seed",
            "5",
            "--reservations",
            "4000",
            "--gap-days",
            "30",
        ])
        .args(["--noise", "medium", "--out"])
        .arg(dir.join("incident"))
        .status()
        .expect("gapfill simulate runs");
    assert!(status.success());
    let inbox = std::fs::read(dir.join("incident/evidence/mail/bookings.mbox")).unwrap();
    let last = inbox
        .windows(6)
        .rposition(|w| w == b"\nFrom ")
        .map_or(inbox.len(), |i| i + 1);
    let inbox = &inbox[..last];
    let mut w = BufWriter::with_capacity(1 << 20, File::create(out).expect("writable"));
    let mut written = 0u64;
    let mut copy = 0u64;
    while written < mb << 20 {
        for line in inbox.split_inclusive(|b| *b == b'\n') {
            let rewritten = ["Message-ID: <", "In-Reply-To: <", "References: <"]
                .iter()
                .find(|p| line.starts_with(p.as_bytes()));
            match rewritten {
                Some(p) => {
                    w.write_all(p.as_bytes()).unwrap();
                    write!(w, "c{copy}.").unwrap();
                    w.write_all(&line[p.len()..]).unwrap();
                }
                None => w.write_all(line).unwrap(),
            }
            written += line.len() as u64;
        }
        copy += 1;
    }
    w.flush().unwrap();
    std::fs::remove_dir_all(&dir).ok();
    println!(
        "wrote {} ({} MiB, {copy} copies of a {} KiB inbox)",
        out.display(),
        written >> 20,
        inbox.len() >> 10
    );
}

fn main() {
    // `cargo test --all-targets` runs bench targets too, without "--bench": a 1 GB benchmark has
    // no place in a test run.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("usage: cargo bench --bench mail_ingest [-- build|gapfill|bare|dump PATH]");
        return;
    }
    // `cargo bench` passes "--bench"; anything else is ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let path = |i: usize| PathBuf::from(args.get(i).map_or(DEFAULT_PATH, String::as_str));
    match args.first().map(String::as_str) {
        Some("build") => {
            let mb = args
                .get(2)
                .map_or(DEFAULT_MB, |s| s.parse().expect("megabytes"));
            build(&path(1), mb);
        }
        Some("gapfill") => {
            run_gapfill(&path(1));
        }
        Some("bare") => {
            run_bare(&path(1));
        }
        Some("dump") => run_dump(&path(1)),
        None => {
            let p = path(1);
            if !p.exists() {
                build(&p, DEFAULT_MB);
            }
            let bare = run_bare(&p);
            let ours = run_gapfill(&p);
            println!("ratio: {:.2}× (target ≤ 1.5×)", ours / bare);
        }
        Some(other) => panic!("unknown mode {other}; use build, gapfill, bare or dump"),
    }
}
