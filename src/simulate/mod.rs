//! `gapfill simulate`: writes a whole incident for the reference schema.
//!
//! The world (world.rs) is generated first; then each writer turns it into one artefact: the
//! databases and dumps (db.rs), the Stripe exports (stripe.rs), the calendar export (calendar.rs),
//! the booking inbox (mail.rs), and the config that points at all of it. Writers draw from their
//! own random streams, so each artefact depends only on the seed and the world.

pub mod calendar;
pub mod db;
pub mod mail;
pub mod manifest;
pub mod names;
pub mod noise;
pub mod rng;
pub mod stripe;
pub mod vary;
pub mod world;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use manifest::{Manifest, Mention, Source};
pub use noise::{Noise, NoiseLevel};
pub use world::World;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimulateError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the database {path}: {source}")]
    Database { path: PathBuf, source: sqlx::Error },
    #[error("invalid option: {0}")]
    Option(String),
}

pub type Result<T> = std::result::Result<T, SimulateError>;

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SimulateError + '_ {
    move |source| SimulateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `contents` to `path`, creating parent folders.
pub(crate) fn write_file(path: &Path, contents: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    std::fs::write(path, contents).map_err(io_err(path))
}

#[derive(Debug, Clone)]
pub struct Options {
    pub out: PathBuf,
    pub seed: u64,
    pub reservations: u64,
    pub gap_days: u32,
    pub noise: NoiseLevel,
    /// Print each stage's wall time to stderr.
    pub timings: bool,
}

/// What every evidence writer gets.
pub struct Ctx<'a> {
    pub world: &'a World,
    pub noise: &'a Noise,
    pub seed: u64,
}

/// Counts of what an evidence writer produced, for the summary.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Written {
    pub files: Vec<String>,
    pub items: u64,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub out: PathBuf,
    pub seed: u64,
    pub noise: NoiseLevel,
    pub restore_point: DateTime<Utc>,
    pub incident_at: DateTime<Utc>,
    pub truth_rows: Vec<(String, u64)>,
    pub restored_rows: Vec<(String, u64)>,
    pub stripe: Written,
    pub calendar: Written,
    pub mail: Written,
    pub mentions: u64,
}

pub fn run(opts: &Options) -> Result<Summary> {
    if opts.reservations == 0 {
        return Err(SimulateError::Option(
            "--reservations must be at least 1".into(),
        ));
    }
    if opts.gap_days == 0 || opts.gap_days > 365 {
        return Err(SimulateError::Option(
            "--gap-days must be between 1 and 365".into(),
        ));
    }
    prepare_out(&opts.out)?;
    let started = std::time::Instant::now();
    let noise = Noise::new(opts.noise);
    let world = world::generate(&world::Params {
        seed: opts.seed,
        noise: noise.clone(),
        gap_reservations: opts.reservations,
        gap_days: opts.gap_days,
        incident_at: world::default_incident_at(),
    });
    let mut timings = vec![("world", started.elapsed())];
    let ctx = Ctx {
        world: &world,
        noise: &noise,
        seed: opts.seed,
    };
    let evidence = opts.out.join("evidence");
    // Two threads that share nothing but the read-only world: the SQLite databases on one, the
    // evidence and the dumps on the other. More threads only made them fight over two cores and
    // slowed the databases, the longest path.
    let ((truth_rows, restored_rows), stripe, calendar, mail, manifest) =
        std::thread::scope(|s| {
            let databases =
                s.spawn(|| timed("databases", || db::write_databases(&world, &opts.out)));
            let mut manifest = Manifest::default();
            let stripe = timed("stripe", || {
                stripe::write(&ctx, &evidence.join("stripe"), &mut manifest)
            })?;
            let calendar = timed("calendar", || {
                calendar::write(&ctx, &evidence.join("calendar"), &mut manifest)
            })?;
            let mail = timed("mail", || {
                mail::write(&ctx, &evidence.join("mail"), &mut manifest)
            })?;
            let dumps = timed("dumps", || db::write_dumps(&world, &opts.out))?;
            let databases = db::join(databases)?;
            timings.extend([stripe.1, calendar.1, mail.1, dumps.1, databases.1]);
            Ok::<_, SimulateError>((databases.0, stripe.0, calendar.0, mail.0, manifest))
        })?;
    let mentions = manifest.into_sorted();
    write_manifest_csv(&opts.out.join("manifest.csv"), &mentions)?;
    let finish = timed("manifest", || {
        db::finish_truth(&world, &opts.out, &mentions, opts)
    })?;
    timings.push(finish.1);
    write_file(
        &opts.out.join("mapping.toml"),
        crate::reference::MAPPING.as_bytes(),
    )?;
    write_config(&opts.out.join("gapfill.toml"), opts, &world)?;
    if opts.timings {
        // "databases" runs beside the stages from "stripe" to "dumps".
        for (stage, d) in &timings {
            eprintln!("{stage:<10} {:>8.2}s", d.as_secs_f64());
        }
        eprintln!("{:<10} {:>8.2}s", "total", started.elapsed().as_secs_f64());
    }
    Ok(Summary {
        out: opts.out.clone(),
        seed: opts.seed,
        noise: opts.noise,
        restore_point: world.restore_point,
        incident_at: world.incident_at,
        truth_rows,
        restored_rows,
        stripe,
        calendar,
        mail,
        mentions: mentions.len() as u64,
    })
}

/// The first line of every gapfill.toml the simulator writes: how a folder is recognised as an
/// earlier incident that may be replaced.
const CONFIG_MARK: &str = "# An incident written by `gapfill simulate";

/// Makes `out` ready: created when missing; an earlier incident's files removed, so that nothing
/// stale (an older calendar snapshot, say) mixes with the new one; any other non-empty folder
/// refused rather than written into.
fn prepare_out(out: &Path) -> Result<()> {
    let has_entries = std::fs::read_dir(out)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if has_entries {
        let config = std::fs::read_to_string(out.join("gapfill.toml")).unwrap_or_default();
        if !config.starts_with(CONFIG_MARK) {
            return Err(SimulateError::Option(format!(
                "--out {} is not empty and holds no earlier simulated incident; choose a new or empty folder",
                out.display()
            )));
        }
        let evidence = out.join("evidence");
        if evidence.exists() {
            std::fs::remove_dir_all(&evidence).map_err(io_err(&evidence))?;
        }
    }
    std::fs::create_dir_all(out).map_err(io_err(out))
}

/// Runs a stage and returns its result with its wall time, for `--timings`.
fn timed<T>(
    stage: &'static str,
    f: impl FnOnce() -> Result<T>,
) -> Result<(T, (&'static str, std::time::Duration))> {
    let start = std::time::Instant::now();
    f().map(|v| (v, (stage, start.elapsed())))
}

fn write_manifest_csv(path: &Path, mentions: &[Mention]) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let csv_err = |e: csv::Error| SimulateError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    };
    w.write_record(["table", "row_id", "source", "locator"])
        .map_err(csv_err)?;
    for m in mentions {
        w.write_record([
            m.table,
            &m.row_id.to_string(),
            m.source.as_str(),
            &m.locator,
        ])
        .map_err(csv_err)?;
    }
    let bytes = w.into_inner().map_err(|e| SimulateError::Io {
        path: path.to_path_buf(),
        source: e.into_error(),
    })?;
    write_file(path, &bytes)
}

fn write_config(path: &Path, opts: &Options, world: &World) -> Result<()> {
    let text = format!(
        "{CONFIG_MARK} --seed {seed} --reservations {n} --gap-days {gap} --noise {noise}`.\n\
         # Paths are relative to this file.\n\
         \n\
         # The reference schema's mapping (mappings/car-rental.toml).\n\
         mapping = \"mapping.toml\"\n\
         \n\
         # The restored backup: the state at the restore point.\n\
         database = \"sqlite://restored.db\"\n\
         \n\
         [sources]\n\
         stripe = \"evidence/stripe\"\n\
         calendar = \"evidence/calendar\"\n\
         mail = \"evidence/mail/bookings.mbox\"\n\
         \n\
         # Differences the business knows of and accepts, left out of `gapfill drift`.\n\
         [drift]\n\
         ignore = \"drift-ignore.toml\"\n\
         \n\
         [incident]\n\
         truth = \"truth.db\"\n\
         manifest = \"manifest.csv\"\n\
         postgres_dump = \"restored.postgres.sql\"\n\
         mysql_dump = \"restored.mysql.sql\"\n\
         restore_point = \"{rp}\"\n\
         incident_at = \"{at}\"\n\
         seed = {seed}\n\
         noise = \"{noise}\"\n\
         gap_reservations = {n}\n",
        seed = opts.seed,
        n = opts.reservations,
        gap = opts.gap_days,
        noise = opts.noise.as_str(),
        rp = world.restore_point.format("%Y-%m-%dT%H:%M:%SZ"),
        at = world.incident_at.format("%Y-%m-%dT%H:%M:%SZ"),
    );
    write_file(path, text.as_bytes())?;
    write_file(
        &path.with_file_name("drift-ignore.toml"),
        DRIFT_IGNORE.as_bytes(),
    )
}

/// The simulated business's accepted differences: its Stripe account takes payments that are not
/// for a booking, and its payments table records only bookings' payments.
const DRIFT_IGNORE: &str = r#"# Known and accepted differences between the database and the evidence, for `gapfill drift`
# (docs/drift.md). Each rule says why.

[[ignore]]
reason = "gift vouchers are sold through Stripe; the payments table holds only bookings' payments"
kind = "missing"
table = "payments"
where = { description = "Gift voucher" }

[[ignore]]
reason = "traffic fine fees are charged through Stripe, not recorded as booking payments"
kind = "missing"
table = "payments"
where = { description = "Traffic fine administration fee" }

[[ignore]]
reason = "test charges of the card terminal"
kind = "missing"
table = "payments"
where = { description = "Test charge" }
"#;

/// What `simulate` wrote, for people.
pub fn summary_text(s: &Summary, elapsed: std::time::Duration) -> String {
    let rows = |v: &[(String, u64)]| {
        v.iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "incident written to {out} in {secs:.1}s (seed {seed}, noise {noise})\n\
         restore point {rp}, incident {at}\n\
         truth.db     {truth}\n\
         restored.db  {restored}\n\
         evidence     stripe {st} objects and rows, calendar {cal} events, mail {mail} messages\n\
         manifest     {m} mentions of gap-period rows (manifest.csv)\n",
        out = s.out.display(),
        secs = elapsed.as_secs_f64(),
        seed = s.seed,
        noise = s.noise.as_str(),
        rp = s.restore_point.format("%Y-%m-%dT%H:%M:%SZ"),
        at = s.incident_at.format("%Y-%m-%dT%H:%M:%SZ"),
        truth = rows(&s.truth_rows),
        restored = rows(&s.restored_rows),
        st = s.stripe.items,
        cal = s.calendar.items,
        mail = s.mail.items,
        m = s.mentions,
    )
}
