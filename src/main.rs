//! The `gapfill` binary: parses arguments and wires the library's steps together.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use gapfill::mapping::{self, Mapping, MappingError, Severity};
use gapfill::simulate::{self, NoiseLevel};
use gapfill::{dburl, evaluate, schema};

// Generating and matching millions of small records is allocation-bound; glibc's malloc made up a
// fifth of the simulator's time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Reconstruct a database after a disaster from Stripe, calendar and email evidence.
#[derive(Parser)]
#[command(name = "gapfill", version, about, long_about = None)]
struct Cli {
    /// Print nothing but results and errors.
    #[arg(long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

/// How `show` renders a plan.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ShowFormat {
    Text,
    Markdown,
    /// One self-contained page (no network); write it to a file and open it in a browser.
    Html,
    /// The plan file itself.
    Json,
    /// The review sheet `review --export` writes.
    Csv,
}

// One value per run: its size does not matter, boxing would only obscure the arguments.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Write a complete simulated incident for the reference schema (examples/car-rental).
    Simulate {
        /// Folder to write the incident into: new, empty, or an earlier incident to replace.
        #[arg(long)]
        out: PathBuf,
        /// The same seed gives byte-identical files.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Reservations created in the gap; the year before it has the same daily rate.
        #[arg(long, default_value_t = 200)]
        reservations: u64,
        /// Days between the restore point and the incident.
        #[arg(long, default_value_t = 90)]
        gap_days: u32,
        /// How messy the evidence is.
        #[arg(long, value_enum, default_value_t = NoiseLevel::Medium)]
        noise: NoiseLevel,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Print the wall time of each stage to stderr.
        #[arg(long)]
        timings: bool,
    },
    /// Compare a reconstructed database with the simulator's truth.
    Evaluate {
        /// truth.db written by `gapfill simulate`.
        #[arg(long)]
        truth: PathBuf,
        /// The database to judge: sqlite://PATH, postgres://… or mysql://…
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        db: String,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Draft a mapping file from a live database's schema.
    Init {
        /// The database whose schema to read: sqlite://PATH, postgres://… or mysql://…
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        db: String,
        /// Where to write the draft; standard output when absent. An existing file is not replaced.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Extract and list evidence, with the accounting per source.
    Evidence {
        /// The incident's config file (mapping, database, sources); ./gapfill.toml when present.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The mapping whose source rules apply; without one, only structure is extracted.
        #[arg(long)]
        mapping: Option<PathBuf>,
        #[command(flatten)]
        sources: SourceArgs,
        /// The restored database: without --since, evidence is read from the restore point it
        /// shows, minus the mapping's overlap.
        #[arg(long)]
        db: Option<String>,
        /// Read evidence from this instant, date or duration back ("7d") on.
        #[arg(long)]
        since: Option<String>,
        /// Read evidence before this instant, date or duration back.
        #[arg(long)]
        until: Option<String>,
        /// Also list every evidence item and every skip (text format).
        #[arg(long)]
        list: bool,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Build the reconciliation plan: baseline, evidence, matching, changes. Writes nothing to
    /// the database.
    Plan {
        #[command(flatten)]
        run: RunArgs,
        /// Where to write the plan (readable by its owner only).
        #[arg(long)]
        out: PathBuf,
        /// Print each stage's wall time and the peak memory to stderr.
        #[arg(long)]
        timings: bool,
        /// Exit 2 when the plan proposes any change.
        #[arg(long)]
        detailed_exitcode: bool,
        /// Also write the plan as one self-contained HTML page here (readable by its owner only).
        #[arg(long, value_name = "HTML")]
        report: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Make the plan even when a source input could not be read at all (a missing path, a
        /// refused key). Without it plan refuses: the plan would lack all that input holds.
        #[arg(long)]
        allow_unreadable: bool,
    },
    /// Report where the database and the evidence disagree, read-only: exit 0 when nothing
    /// drifts, 2 when something does, 1 on error.
    Drift {
        #[command(flatten)]
        run: RunArgs,
        /// Known and accepted differences to leave out (docs/drift.md); overrides the config's.
        #[arg(long, value_name = "FILE")]
        ignore: Option<PathBuf>,
        /// Also write the plan that would fix what drifts, for `show`, `review` and `apply`.
        #[arg(long, value_name = "PLAN")]
        plan: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Apply a plan's accepted changes to the database, in one transaction.
    Apply {
        plan: PathBuf,
        /// The database to change: the one the plan was made against.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        db: String,
        /// Do everything, then roll back: nothing is kept.
        #[arg(long)]
        dry_run: bool,
        /// Do not ask for the database name before applying.
        #[arg(long)]
        yes: bool,
        /// Write the SQL script that restores the before-values here.
        #[arg(long)]
        undo: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Render a plan.
    Show {
        plan: PathBuf,
        #[arg(long, value_enum, default_value_t = ShowFormat::Text)]
        format: ShowFormat,
    },
    /// Review a plan: export a sheet to decide in, import the decided sheet, or accept every
    /// change that needs review above a confidence. Import and accept-above rewrite PLAN.
    #[command(group(clap::ArgGroup::new("action").required(true).args(["export", "import", "accept_above"])))]
    Review {
        plan: PathBuf,
        /// Write the review sheet (CSV, readable by its owner only): fill its `decision` column
        /// with accept, reject or nothing.
        #[arg(long, value_name = "CSV")]
        export: Option<PathBuf>,
        /// Apply the decisions of a filled review sheet to PLAN.
        #[arg(long, value_name = "CSV")]
        import: Option<PathBuf>,
        /// Accept every change that needs review with at least this confidence (0 to 1).
        #[arg(long, value_name = "SCORE", value_parser = gapfill::plan::review::parse_score)]
        accept_above: Option<f64>,
    },
    /// Validate a mapping file against a live database's schema.
    Check {
        #[arg(long)]
        mapping: PathBuf,
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        db: String,
        /// Also read the baseline through the mapping and report its rows and restore point.
        #[arg(long)]
        baseline: bool,
    },
}

/// What `plan` and `drift` run the pipeline on.
#[derive(clap::Args)]
struct RunArgs {
    /// The incident's config file (mapping, database, sources, drift's ignore file);
    /// ./gapfill.toml when present.
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    mapping: Option<PathBuf>,
    /// The database, read-only: sqlite://PATH, postgres://… or mysql://…
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    db: Option<String>,
    #[command(flatten)]
    sources: SourceArgs,
    /// Read evidence from this instant, date or duration back ("7d", "36h"); by default from the
    /// restore point the database shows (its newest row's time), less the mapping's overlap.
    #[arg(long)]
    since: Option<String>,
    #[arg(long)]
    until: Option<String>,
}

/// The sources of a run; each replaces what the config file says for that source.
#[derive(clap::Args)]
struct SourceArgs {
    /// Stripe API JSON dumps or dashboard CSV exports: a file or a folder (repeatable).
    #[arg(long)]
    stripe: Vec<PathBuf>,
    /// Pull from the live Stripe API (key in STRIPE_API_KEY, server in STRIPE_API_BASE).
    #[arg(long)]
    stripe_api: bool,
    /// Keep pulled Stripe objects here, so an interrupted pull resumes instead of starting over.
    #[arg(long)]
    stripe_cache: Option<PathBuf>,
    /// Calendar exports: an .ics file or a folder of them (repeatable).
    #[arg(long)]
    calendar: Vec<PathBuf>,
    /// Mail archives: mbox, mbox.gz, Maildir, .eml file or folder (repeatable).
    #[arg(long)]
    mail: Vec<PathBuf>,
    /// Other tabular exports that the mapping's [sources.csv] describes (repeatable).
    #[arg(long)]
    csv: Vec<PathBuf>,
}

impl SourceArgs {
    /// Flags win over the config file, source by source.
    fn inputs(
        self,
        config: &gapfill::config::Config,
        quiet: bool,
    ) -> anyhow::Result<gapfill::sources::Inputs> {
        let pick = |flag: Vec<PathBuf>, file: &Vec<PathBuf>| {
            if flag.is_empty() {
                file.clone()
            } else {
                flag
            }
        };
        let api = self.stripe_api || (self.stripe.is_empty() && config.stripe_api);
        let stripe_api = if api {
            // The one place the key and server are read from the environment.
            let env = |name: &str| std::env::var(name).ok();
            let mut config = gapfill::sources::stripe::ApiConfig::from_values(
                env("STRIPE_API_KEY").as_deref(),
                env("STRIPE_API_BASE").as_deref(),
            )?;
            config.progress = !quiet && std::io::stderr().is_terminal();
            Some(gapfill::sources::StripeApi {
                config,
                cache: self.stripe_cache,
            })
        } else {
            None
        };
        Ok(gapfill::sources::Inputs {
            stripe: pick(self.stripe, &config.stripe),
            calendar: pick(self.calendar, &config.calendar),
            mail: pick(self.mail, &config.mail),
            csv: pick(self.csv, &config.csv),
            stripe_api,
        })
    }
}

fn main() -> ExitCode {
    // Exit code 2 means "differences found" (SPEC §4), so a usage error is a plain error, 1,
    // not clap's default 2.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 1 } else { 0 });
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // Library errors already say their cause; print a cause only when it adds something.
            let mut message = e.to_string();
            for cause in e.chain().skip(1) {
                let c = cause.to_string();
                if !message.contains(&c) {
                    message = format!("{message}: {c}");
                }
            }
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}

/// A runtime for the commands that talk to databases through sqlx.
fn block_on<F: std::future::Future>(f: F) -> anyhow::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(rt.block_on(f))
}

fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        // The reader went away (`gapfill evidence --list | head`): not an error of ours.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Simulate {
            out,
            seed,
            reservations,
            gap_days,
            noise,
            format,
            timings,
        } => {
            let started = std::time::Instant::now();
            if !cli.quiet && std::io::stderr().is_terminal() {
                eprintln!(
                    "simulating {reservations} gap-period reservations (seed {seed}, noise {})…",
                    noise.as_str()
                );
            }
            let opts = simulate::Options {
                out,
                seed,
                reservations,
                gap_days,
                noise,
                timings,
            };
            let summary = simulate::run(&opts).context("simulate failed")?;
            match format {
                Format::Json => print(&(serde_json::to_string_pretty(&summary)? + "\n"))?,
                Format::Text if !cli.quiet => {
                    print(&simulate::summary_text(&summary, started.elapsed()))?
                }
                Format::Text => {}
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Evaluate { truth, db, format } => {
            let report = block_on(evaluate::run(&truth, &db))?.context("evaluate failed")?;
            match format {
                Format::Json => print(&(serde_json::to_string_pretty(&report)? + "\n"))?,
                Format::Text => print(&evaluate::report::text(&report))?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Init { db, out } => {
            let schema = block_on(introspect(&db))??;
            let draft = mapping::init::draft(&schema, &dburl::redact(&db));
            match out {
                None => print(&draft)?,
                Some(path) => {
                    let mut f = std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(&path)
                        .with_context(|| {
                            format!(
                                "cannot create {} (an existing mapping is never replaced; choose another name)",
                                path.display()
                            )
                        })?;
                    f.write_all(draft.as_bytes())?;
                    if !cli.quiet {
                        eprintln!(
                            "wrote {}: confirm every `guess`, then run `gapfill check --mapping {} --db …`",
                            path.display(),
                            path.display()
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Evidence {
            config,
            mapping,
            sources,
            db,
            since,
            until,
            list,
            format,
        } => {
            let (config, inputs) = config_and_inputs(config, sources, cli.quiet)?;
            let loaded = match mapping.or(config.mapping.clone()) {
                Some(path) => Some(load_mapping(&path)?),
                None => {
                    if !cli.quiet {
                        eprintln!("no mapping: reading structure only (no patterns, no rules)");
                    }
                    None
                }
            };
            let now = chrono::Utc::now();
            let bound = |flag: &str, v: Option<String>| -> anyhow::Result<_> {
                v.map(|s| {
                    gapfill::evidence::parse_bound(&s, now).with_context(|| {
                        format!("--{flag} {s:?} is not an instant, a date or a duration such as 7d (of at most {} days)", gapfill::evidence::MAX_DURATION_DAYS)
                    })
                })
                .transpose()
            };
            let mut window = gapfill::evidence::Window {
                since: bound("since", since)?,
                until: bound("until", until)?,
            };
            // SPEC §4: without --since the window opens at the inferred restore point, less the
            // mapping's overlap.
            if let (None, Some(url), Some(l)) =
                (window.since, db.or(config.database.clone()), &loaded)
            {
                let (restore_point, start) = block_on(infer_window(&url, &l.mapping))??;
                if !cli.quiet {
                    if let (Some(rp), Some(start)) = (restore_point, start) {
                        eprintln!(
                            "restore point {} (from {}); reading evidence from {}",
                            rp.format("%Y-%m-%dT%H:%M:%SZ"),
                            dburl::redact(&url),
                            start.format("%Y-%m-%dT%H:%M:%SZ")
                        );
                    }
                }
                window.since = start;
            }
            let rules = loaded.map(|l| l.mapping.sources).unwrap_or_default();
            let mut collected = gapfill::evidence::Collected::default();
            let tallies = block_on(gapfill::sources::read_all(
                &inputs,
                &rules,
                &window,
                &mut collected,
            ))?;
            match format {
                Format::Json => {
                    let doc = serde_json::json!({
                        "version": 1,
                        "window": window,
                        "sources": tallies,
                        "evidence": collected.evidence,
                        "skipped": collected.skipped,
                    });
                    print(&(serde_json::to_string_pretty(&doc)? + "\n"))?;
                }
                Format::Text => print(&gapfill::sources::report(
                    &tallies, &window, &collected, list,
                ))?,
            }
            let failed = tallies.iter().any(|t| !t.errors.is_empty());
            Ok(ExitCode::from(if failed { 1 } else { 0 }))
        }
        Command::Plan {
            run,
            out,
            timings,
            detailed_exitcode,
            report,
            format,
            allow_unreadable,
        } => {
            let run = Run::new(run, cli.quiet)?;
            let outcome = run_pipeline(run, false)?;
            let unreadable = gapfill::sources::unreadable(&outcome.tallies);
            if !unreadable.is_empty() && !allow_unreadable {
                anyhow::bail!(
                    "{} source input(s) could not be read, so the plan would lack everything they hold:\n  {}\nfix the paths or the key, or pass --allow-unreadable to plan without them; no plan was written",
                    unreadable.len(),
                    unreadable.join("\n  ")
                );
            }
            if !cli.quiet {
                for w in outcome.tallies.iter().flat_map(|t| &t.warnings) {
                    eprintln!("warning: {w}");
                }
            }
            outcome.plan.write(&out)?;
            if let Some(report) = &report {
                let page = gapfill::plan::html::html(&outcome.plan);
                gapfill::files::write_private(report, page.as_bytes())
                    .with_context(|| format!("cannot write the report {}", report.display()))?;
            }
            if timings {
                for (stage, t, peak) in &outcome.timings {
                    let peak = peak
                        .map(|p| format!("  (peak memory so far {:.0} MiB)", p as f64 / 1048576.0))
                        .unwrap_or_default();
                    eprintln!("{stage:<10} {:>8.2} s{peak}", t.as_secs_f64());
                }
                if let Some(peak) = gapfill::pipeline::peak_memory() {
                    eprintln!("peak memory {:.0} MiB", peak as f64 / 1048576.0);
                }
            }
            match format {
                Format::Json => {
                    print(&(serde_json::to_string_pretty(&outcome.plan.summary)? + "\n"))?
                }
                Format::Text if !cli.quiet => {
                    print(&gapfill::sources::report(
                        &outcome.tallies,
                        &outcome.window,
                        &malformed_only(&outcome.malformed),
                        false,
                    ))?;
                    print(&gapfill::plan::render::summary(&outcome.plan))?;
                    print(&format!("plan written to {}\n", out.display()))?;
                    if let Some(report) = &report {
                        print(&format!("report written to {}\n", report.display()))?;
                    }
                }
                Format::Text => {}
            }
            // Unreadable inputs stopped the run above unless the operator allowed them.
            let changes = !outcome.plan.changes.is_empty();
            Ok(ExitCode::from(if detailed_exitcode && changes {
                2
            } else {
                0
            }))
        }
        Command::Drift {
            run,
            ignore,
            plan,
            format,
        } => {
            let run = Run::new(run, cli.quiet)?;
            // Read the ignore file first: a typo in it should not cost a whole run.
            let rules = match ignore.or(run.config.drift_ignore.clone()) {
                Some(path) => Some(gapfill::drift::ignore::Rules::load(&path)?),
                None => None,
            };
            let outcome = run_pipeline(run, true)?;
            let mut report = outcome.drift.context("the pipeline made no drift report")?;
            if let Some(rules) = &rules {
                rules.apply(&mut report);
            }
            if let Some(path) = &plan {
                outcome.plan.write(path)?;
            }
            let fix = match &plan {
                Some(path) => format!(
                    "gapfill show {0}    (then `gapfill review {0}` and `gapfill apply {0}`)",
                    path.display()
                ),
                None => format!(
                    "gapfill drift … --since {}{} --plan drift-fix.json    (same mapping, database and sources)",
                    report.window.since.as_deref().unwrap_or("…"),
                    report
                        .window
                        .until
                        .as_deref()
                        .map(|u| format!(" --until {u}"))
                        .unwrap_or_default()
                ),
            };
            match format {
                Format::Json => print(&report.to_json())?,
                Format::Text => {
                    if !cli.quiet {
                        print(&gapfill::sources::report(
                            &outcome.tallies,
                            &outcome.window,
                            &malformed_only(&outcome.malformed),
                            false,
                        ))?;
                    }
                    print(&gapfill::drift::render::text(&report, Some(&fix)))?;
                }
            }
            // docs/drift.md: an input that could not be read is an error; a malformed record is
            // listed with its place (the text report, or stderr beside the JSON) and the rest of
            // its file still counts, so one broken mail does not blind a cron check.
            let failed = outcome.tallies.iter().any(|t| !t.errors.is_empty());
            if format == Format::Json && !cli.quiet {
                for s in &outcome.malformed {
                    eprintln!("malformed input: {}: {}", s.provenance, s.detail);
                }
                for e in outcome.tallies.iter().flat_map(|t| &t.errors) {
                    eprintln!("error: {e}");
                }
            }
            Ok(ExitCode::from(if failed {
                1
            } else if report.drifts() {
                2
            } else {
                0
            }))
        }
        Command::Apply {
            plan,
            db,
            dry_run,
            yes,
            undo,
            format,
        } => {
            let path = plan;
            let plan = gapfill::plan::Plan::read(&path)?;
            if !cli.quiet || !yes {
                eprint!("{}", gapfill::plan::render::summary(&plan));
            }
            if !yes && !dry_run {
                let name = dburl::database_name(&db);
                eprint!(
                    "apply the accepted changes of {} to {}? type the database name ({name}) to go on: ",
                    path.display(),
                    dburl::redact(&db)
                );
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer)?;
                anyhow::ensure!(answer.trim() == name, "not confirmed; nothing was applied");
            }
            let opts = gapfill::apply::Options { dry_run, undo };
            let report =
                block_on(gapfill::apply::apply(&plan, &db, &opts))?.context("apply failed")?;
            match format {
                Format::Json => print(&(serde_json::to_string_pretty(&report)? + "\n"))?,
                Format::Text => print(&gapfill::apply::render(&report))?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { plan, format } => {
            let plan = gapfill::plan::Plan::read(&plan)?;
            match format {
                ShowFormat::Json => print(&String::from_utf8_lossy(&plan.to_bytes()))?,
                ShowFormat::Text => {
                    let colour = std::io::stdout().is_terminal()
                        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                        && std::env::var("TERM").map_or(true, |t| t != "dumb");
                    print(&gapfill::plan::render::text_coloured(&plan, colour))?
                }
                ShowFormat::Markdown => print(&gapfill::plan::html::markdown(&plan))?,
                ShowFormat::Html => print(&gapfill::plan::html::html(&plan))?,
                ShowFormat::Csv => print(&gapfill::plan::review::export_csv(&plan))?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Review {
            plan: path,
            export,
            import,
            accept_above,
        } => {
            use gapfill::plan::review;
            let mut plan = gapfill::plan::Plan::read(&path)?;
            if let Some(csv) = export {
                gapfill::files::write_private(&csv, review::export_csv(&plan).as_bytes())
                    .with_context(|| format!("cannot write the review sheet {}", csv.display()))?;
                if !cli.quiet {
                    eprintln!(
                        "wrote {}: fill its decision column with accept, reject or nothing, then run `gapfill review {} --import {}`",
                        csv.display(),
                        path.display(),
                        csv.display()
                    );
                }
            } else if let Some(csv) = import {
                let text = std::fs::read_to_string(&csv)
                    .with_context(|| format!("cannot read the review sheet {}", csv.display()))?;
                let (reviewed, report) =
                    review::import_csv(&plan, &text, &csv.display().to_string())?;
                reviewed.write(&path)?;
                if !cli.quiet {
                    print(&report.text())?;
                    print(&gapfill::plan::render::summary(&reviewed))?;
                }
            } else if let Some(score) = accept_above {
                let n = review::accept_above(&mut plan, score);
                plan.write(&path)?;
                if !cli.quiet {
                    print(&format!(
                        "accepted {n} changes that needed review with confidence at least {score}\n"
                    ))?;
                    print(&gapfill::plan::render::summary(&plan))?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Check {
            mapping,
            db,
            baseline,
        } => {
            let (problems, loaded) = match Mapping::load(&mapping) {
                Ok(loaded) => {
                    let schema = block_on(introspect(&db))??;
                    let problems =
                        mapping::check::against(&loaded.mapping, &loaded.locator, &schema);
                    (problems, Some(loaded))
                }
                Err(MappingError::Invalid(problems)) => (problems, None),
                Err(e) => return Err(e.into()),
            };
            for p in &problems {
                println!("{p}");
            }
            let errors = problems
                .iter()
                .filter(|p| p.severity == Severity::Error)
                .count();
            let warnings = problems.len() - errors;
            if errors > 0 {
                println!(
                    "{}: {errors} error(s), {warnings} warning(s); nothing was matched",
                    mapping.display()
                );
                return Ok(ExitCode::from(1));
            }
            if !cli.quiet {
                println!(
                    "{}: fits {} ({warnings} warning(s))",
                    mapping.display(),
                    dburl::redact(&db),
                );
            }
            if let (true, Some(loaded)) = (baseline, loaded) {
                let b = block_on(load_baseline(&db, &loaded.mapping, cli.quiet))??;
                print(&baseline_summary(&b))?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// What the sources report lists item by item after a plan or drift run: the malformed ones.
fn malformed_only(malformed: &[gapfill::evidence::Skip]) -> gapfill::evidence::Collected {
    gapfill::evidence::Collected {
        skipped: malformed.to_vec(),
        ..Default::default()
    }
}

/// The config file (`--config` or ./gapfill.toml) and the sources of a run, flags first.
fn config_and_inputs(
    config: Option<PathBuf>,
    sources: SourceArgs,
    quiet: bool,
) -> anyhow::Result<(gapfill::config::Config, gapfill::sources::Inputs)> {
    let config = gapfill::config::Config::load(config.as_deref())?;
    let inputs = sources.inputs(&config, quiet)?;
    anyhow::ensure!(
        !inputs.is_empty(),
        "no sources: give --stripe, --stripe-api, --calendar, --mail or --csv, or a config file that names them"
    );
    Ok((config, inputs))
}

/// What `plan` and `drift` run the pipeline on: the config and sources, and the flags that
/// override the config.
struct Run {
    config: gapfill::config::Config,
    inputs: gapfill::sources::Inputs,
    mapping: Option<PathBuf>,
    db: Option<String>,
    since: Option<String>,
    until: Option<String>,
    quiet: bool,
}

impl Run {
    fn new(args: RunArgs, quiet: bool) -> anyhow::Result<Run> {
        let (config, inputs) = config_and_inputs(args.config, args.sources, quiet)?;
        Ok(Run {
            config,
            inputs,
            mapping: args.mapping,
            db: args.db,
            since: args.since,
            until: args.until,
            quiet,
        })
    }
}

/// Runs the pipeline (`drift`: as a drift check) with a spinner per stage on a terminal.
fn run_pipeline(run: Run, drift: bool) -> anyhow::Result<gapfill::pipeline::Outcome> {
    let mapping_path = run.mapping.or(run.config.mapping.clone()).context(
        "no mapping: give --mapping FILE or a config file that names one (draft one with `gapfill init`)",
    )?;
    let loaded = load_mapping(&mapping_path)?;
    let url = run
        .db
        .or(run.config.database.clone())
        .context("no database: give --db URL, set DATABASE_URL, or name one in the config file")?;
    let now = chrono::Utc::now();
    let since = parse_bound("since", run.since, now)?;
    let until = parse_bound("until", run.until, now)?;
    let show = !run.quiet && std::io::stderr().is_terminal();
    let spinner = show.then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.enable_steady_tick(std::time::Duration::from_millis(120));
        b
    });
    let mut progress = |stage: &str| {
        if let Some(b) = &spinner {
            b.set_message(stage.to_string());
        }
    };
    let outcome = block_on(gapfill::pipeline::run(gapfill::pipeline::Request {
        mapping: &loaded,
        url: &url,
        inputs: &run.inputs,
        since,
        until,
        drift,
        progress: &mut progress,
    }))?
    .context(if drift {
        "drift check failed"
    } else {
        "plan failed"
    })?;
    if let Some(b) = spinner {
        b.finish_and_clear();
    }
    Ok(outcome)
}

fn load_mapping(path: &std::path::Path) -> anyhow::Result<mapping::Loaded> {
    match Mapping::load(path) {
        Ok(l) => Ok(l),
        Err(MappingError::Invalid(problems)) => {
            for p in &problems {
                eprintln!("{p}");
            }
            anyhow::bail!("the mapping {} has errors; fix them first", path.display());
        }
        Err(e) => Err(e.into()),
    }
}

fn parse_bound(
    flag: &str,
    v: Option<String>,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<Option<chrono::DateTime<chrono::Utc>>> {
    v.map(|s| {
        gapfill::evidence::parse_bound(&s, now).with_context(|| {
            format!("--{flag} {s:?} is not an instant, a date or a duration such as 7d (of at most {} days)", gapfill::evidence::MAX_DURATION_DAYS)
        })
    })
    .transpose()
}

/// Reads the baseline with a progress line per table on a terminal.
async fn load_baseline(
    url: &str,
    mapping: &Mapping,
    quiet: bool,
) -> anyhow::Result<gapfill::baseline::Baseline> {
    let dialect = dburl::Dialect::of(url)?;
    let mut conn = dburl::connect_read_only(url).await?;
    let schema = schema::introspect(&mut conn, dialect).await?;
    gapfill::baseline::begin_read_only(&mut conn, dialect).await?;
    let show = !quiet && std::io::stderr().is_terminal();
    let mut bar: Option<(String, indicatif::ProgressBar)> = None;
    let mut progress = |table: &str, rows: u64| {
        if !show {
            return;
        }
        if bar.as_ref().is_none_or(|(t, _)| t != table) {
            if let Some((_, b)) = bar.take() {
                b.finish();
            }
            let b = indicatif::ProgressBar::new_spinner().with_style(
                indicatif::ProgressStyle::with_template("{spinner} {msg} {pos} rows ({per_sec})")
                    .expect("a valid template"),
            );
            b.set_message(format!("reading {table}"));
            bar = Some((table.to_string(), b));
        }
        if let Some((_, b)) = &bar {
            b.set_position(rows);
        }
    };
    let loaded = gapfill::baseline::load(&mut conn, &schema, mapping, &mut progress).await?;
    if let Some((_, b)) = bar {
        b.finish();
    }
    Ok(loaded)
}

fn baseline_summary(b: &gapfill::baseline::Baseline) -> String {
    let mut out = String::from("baseline:\n");
    for (name, rows) in &b.entities {
        out += &format!(
            "  {name:<14} {:>10} rows from {}\n",
            rows.rows.len(),
            rows.table
        );
    }
    for (table, rows) in &b.lookups {
        out += &format!("  {:<14} {:>10} rows (lookups)\n", table, rows.rows.len());
    }
    let when = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_else(|| "unknown (the restore-point columns hold no instants)".into())
    };
    out += &format!("restore point: {}\n", when(b.restore_point));
    out += &format!("evidence read from: {}\n", when(b.window_start));
    out
}

/// The restore point and window start a database's restore-point columns show.
async fn infer_window(
    url: &str,
    mapping: &Mapping,
) -> anyhow::Result<(
    Option<chrono::DateTime<chrono::Utc>>,
    Option<chrono::DateTime<chrono::Utc>>,
)> {
    let dialect = dburl::Dialect::of(url)?;
    let mut conn = dburl::connect_read_only(url).await?;
    let schema = schema::introspect(&mut conn, dialect).await?;
    Ok(gapfill::baseline::infer_window(&mut conn, &schema, mapping).await?)
}

async fn introspect(url: &str) -> anyhow::Result<schema::Schema> {
    let dialect = dburl::Dialect::of(url)?;
    let mut conn = dburl::connect_read_only(url).await?;
    Ok(schema::introspect(&mut conn, dialect).await?)
}
