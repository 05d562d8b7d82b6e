//! The calendar source: fixtures with hand-checked UTC times, the real-world corpus, and the
//! simulator's exports checked against the truth database.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use gapfill::evidence::{Collected, SkipReason, Value, Window};
use gapfill::sources::calendar::{self, CalendarRules};

#[derive(serde::Deserialize)]
struct Part {
    sources: Sources,
}

#[derive(serde::Deserialize)]
struct Sources {
    calendar: CalendarRules,
}

fn rules_from(path: &Path) -> CalendarRules {
    let text = std::fs::read_to_string(path).unwrap();
    toml::from_str::<Part>(&text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .sources
        .calendar
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/calendar")
}

/// One line per evidence and skip, origins relative to `base`: what the .expected files hold.
fn render(out: &Collected, base: &Path) -> String {
    let rel = |o: &str| {
        Path::new(o)
            .strip_prefix(base)
            .map_or(o.to_string(), |p| p.to_string_lossy().replace('\\', "/"))
    };
    let mut s = String::new();
    for e in &out.evidence {
        s.push_str(&format!(
            "evidence {} {} [{}]\n",
            rel(&e.provenance.origin),
            e.provenance.locator,
            e.kind
        ));
        for (k, v) in &e.fields {
            s.push_str(&format!("    {k} = {v}\n"));
        }
    }
    for k in &out.skipped {
        s.push_str(&format!(
            "skip {} {} {}: {}\n",
            k.reason.as_str(),
            rel(&k.provenance.origin),
            k.provenance.locator,
            k.detail.replace(&format!("{}/", base.display()), "")
        ));
    }
    s
}

#[test]
fn fixtures_give_the_expected_evidence_and_utc_times() {
    let dir = fixtures();
    let rules = rules_from(&dir.join("rules.toml"));
    let window = Window {
        since: Some(t("2026-03-01T00:00:00Z")),
        until: Some(t("2026-04-15T00:00:00Z")),
    };
    let bless = std::env::var_os("GAPFILL_BLESS").is_some();
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() || p.extension().is_some_and(|e| e == "ics"))
        .collect();
    inputs.sort();
    assert!(inputs.len() >= 15, "fixtures missing: {inputs:?}");
    let mut failures = Vec::new();
    for input in inputs {
        let mut out = Collected::default();
        calendar::read(&input, &rules, &window, &mut out).unwrap();
        let got = render(&out, &dir);
        let expected_path = input.with_extension("expected");
        if bless {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got != want {
            failures.push(format!(
                "{}:\n--- expected\n{want}--- got\n{got}",
                input.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The BEGIN:VEVENT lines of a file, counted without the source's code.
fn vevent_lines(bytes: &[u8]) -> BTreeSet<usize> {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = if text.contains('\n') {
        text.split('\n').collect()
    } else {
        text.split('\r').collect()
    };
    lines
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            l.trim_end_matches('\r')
                .trim_start_matches('\u{feff}')
                .trim()
                .eq_ignore_ascii_case("BEGIN:VEVENT")
        })
        .map(|(i, _)| i + 1)
        .collect()
}

/// The VEVENT line a locator names ("line 12 uid …"); None for file-level locators.
fn locator_line(locator: &str) -> Option<usize> {
    locator
        .strip_prefix("line ")?
        .split(' ')
        .next()?
        .parse()
        .ok()
}

/// Every VEVENT of every file ends as evidence or as a skip naming its line.
fn assert_every_vevent_accounted(files: &[PathBuf], out: &Collected, vevents: usize) {
    let mut accounted: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    for (origin, locator) in out
        .evidence
        .iter()
        .map(|e| &e.provenance)
        .chain(out.skipped.iter().map(|s| &s.provenance))
        .map(|p| (p.origin.clone(), p.locator.as_str()))
    {
        if let Some(line) = locator_line(locator) {
            accounted.entry(origin).or_default().insert(line);
        }
    }
    let mut total = 0;
    for f in files {
        let want = vevent_lines(&std::fs::read(f).unwrap());
        total += want.len();
        let origin = f.to_string_lossy().into_owned();
        let got = accounted.get(&origin).cloned().unwrap_or_default();
        let missing: Vec<_> = want.difference(&got).collect();
        assert!(
            missing.is_empty(),
            "{origin}: VEVENTs at lines {missing:?} unaccounted"
        );
    }
    assert_eq!(
        total, vevents,
        "the source counted another number of VEVENTs"
    );
}

fn ics_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "ics") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_corpus_file_gives_events_or_a_precise_error() {
    let Some(corpora) = std::env::var_os("GAPFILL_CORPORA") else {
        eprintln!(
            "GAPFILL_CORPORA is not set: the real-world calendar corpus was NOT read \
             (set it to the shared corpora folder, e.g. ../shared/corpora)"
        );
        assert!(
            std::env::var_os("GAPFILL_REQUIRE_CORPORA").is_none(),
            "GAPFILL_REQUIRE_CORPORA is set but GAPFILL_CORPORA is not"
        );
        return;
    };
    let dir = Path::new(&corpora).join("ical");
    let files = ics_files(&dir);
    assert!(
        files.len() > 100,
        "{} has {} .ics files",
        dir.display(),
        files.len()
    );
    let started = std::time::Instant::now();
    let mut all = Collected::default();
    let mut vevents = 0;
    let mut evidence_files = 0;
    for f in &files {
        // Each file alone, so that one file's result is its own (no versions reconciled
        // across unrelated test files) and an open window expands every series.
        let mut out = Collected::default();
        let stats =
            calendar::read(f, &CalendarRules::default(), &Window::default(), &mut out).unwrap();
        assert!(
            !out.evidence.is_empty() || !out.skipped.is_empty(),
            "{}: neither evidence nor a reason",
            f.display()
        );
        for s in &out.skipped {
            assert!(!s.detail.is_empty() && !s.provenance.locator.is_empty());
        }
        evidence_files += usize::from(!out.evidence.is_empty());
        vevents += stats.vevents;
        all.evidence.extend(out.evidence);
        all.skipped.extend(out.skipped);
    }
    assert_every_vevent_accounted(&files, &all, vevents);
    eprintln!(
        "corpus: {} files ({} with evidence), {vevents} VEVENTs, {} evidence, skips {:?}, {:?}",
        files.len(),
        evidence_files,
        all.evidence.len(),
        all.skip_counts(),
        started.elapsed()
    );
    assert!(evidence_files > files.len() / 2);
}

fn mapping_part() -> CalendarRules {
    gapfill::mapping::Mapping::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings/car-rental.toml"),
    )
    .expect("the reference mapping reads")
    .mapping
    .sources
    .calendar
}

struct TruthRes {
    code: String,
    pickup_at: DateTime<Utc>,
    return_local: String,
    return_location: String,
    status: String,
}

async fn truth_reservations(db: &Path) -> BTreeMap<i64, TruthRes> {
    use sqlx::{Connection, Row, SqliteConnection};
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}?mode=ro", db.display()))
        .await
        .unwrap();
    let rows = sqlx::query(
        "SELECT r.id, r.booking_code, r.pickup_at, r.return_at, r.status, l.name, l.timezone \
         FROM reservations r JOIN locations l ON l.id = r.return_location_id",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    rows.iter()
        .map(|r| {
            let tz: Tz = r.get::<String, _>(6).parse().unwrap();
            let ret = t(&r.get::<String, _>(3));
            (
                r.get::<i64, _>(0),
                TruthRes {
                    code: r.get(1),
                    pickup_at: t(&r.get::<String, _>(2)),
                    return_local: ret.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string(),
                    return_location: r.get(5),
                    status: r.get(4),
                },
            )
        })
        .collect()
}

#[tokio::test]
async fn simulator_export_is_fully_accounted_and_agrees_with_the_truth() {
    for (seed, noise) in [(21, "medium"), (22, "high"), (23, "low")] {
        check_simulated(seed, noise).await;
    }
}

async fn check_simulated(seed: u64, noise: &str) {
    let (_dir, out) = common::incident(seed, 400, noise);
    let config: toml::Value =
        toml::from_str(&std::fs::read_to_string(out.join("gapfill.toml")).unwrap()).unwrap();
    let window = Window {
        since: Some(t(config["incident"]["restore_point"].as_str().unwrap())),
        until: Some(t(config["incident"]["incident_at"].as_str().unwrap())),
    };
    let cal_dir = out.join("evidence/calendar");
    let mut got = Collected::default();
    let stats = calendar::read(&cal_dir, &mapping_part(), &window, &mut got).unwrap();
    let files = ics_files(&cal_dir);
    assert_eq!(
        files
            .iter()
            .any(|f| f.to_string_lossy().contains("/older/")),
        noise != "low",
        "an older snapshot is written above low noise"
    );
    assert_every_vevent_accounted(&files, &got, stats.vevents);
    eprintln!(
        "simulator export ({noise}): {stats:?}, skips {:?}",
        got.skip_counts()
    );
    assert_eq!(
        got.skip_counts().get(&SkipReason::Malformed),
        None,
        "{:?}",
        got.skipped
    );

    // The answer key: which file, UID and SEQUENCE mention which reservation.
    let mut key: BTreeMap<(String, String, i64), i64> = BTreeMap::new();
    let mut rdr = csv::Reader::from_path(out.join("manifest.csv")).unwrap();
    for rec in rdr.records() {
        let rec = rec.unwrap();
        if &rec[0] != "reservations" || &rec[2] != "calendar" {
            continue;
        }
        let mut parts = rec[3].split('#');
        let (file, uid, seq) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let seq: i64 = seq.strip_prefix("SEQUENCE=").unwrap().parse().unwrap();
        key.insert(
            (file.to_string(), uid.to_string(), seq),
            rec[1].parse().unwrap(),
        );
    }
    let shown = |origin: &str| {
        Path::new(origin)
            .strip_prefix(&out)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/")
    };
    let truth = truth_reservations(&out.join("truth.db")).await;
    let main_uids: BTreeSet<&str> = key
        .keys()
        .filter(|(f, ..)| !f.contains("/older/"))
        .map(|(_, u, _)| u.as_str())
        .collect();

    let mut seen = BTreeSet::new();
    let mut codes = 0;
    for e in &got.evidence {
        let uid = e.text("uid").unwrap().to_string();
        let seq = match e.get("sequence") {
            Some(Value::Int(s)) => *s,
            other => panic!("sequence {other:?}"),
        };
        let k = (shown(&e.provenance.origin), uid.clone(), seq);
        let Some(&res_id) = key.get(&k) else {
            panic!(
                "evidence {} not in the manifest: {:?}",
                e.provenance, e.fields
            );
        };
        seen.insert(k.clone());
        let r = &truth[&res_id];
        if k.0.contains("/older/") {
            // An older snapshot's version survives only when the newer export deleted the
            // event (a cancellation entered as a deletion).
            assert!(
                !main_uids.contains(uid.as_str()),
                "{} kept over a newer version",
                e.provenance
            );
            assert_eq!(r.status, "cancelled");
            continue;
        }
        assert_eq!(
            e.get("starts_at"),
            Some(&Value::Time(r.pickup_at)),
            "{}",
            e.provenance
        );
        assert_eq!(
            e.text("return_local"),
            Some(r.return_local.as_str()),
            "{}",
            e.provenance
        );
        assert_eq!(e.text("return_location"), Some(r.return_location.as_str()));
        let want_status = if r.status == "cancelled" {
            "cancelled"
        } else {
            "confirmed"
        };
        assert_eq!(e.text("status"), Some(want_status), "{}", e.provenance);
        if let Some(code) = e.text("booking_code") {
            assert_eq!(code, r.code, "{}", e.provenance);
            codes += 1;
        }
        assert!(e.text("plate").is_some() && e.text("name").is_some() && e.text("email").is_some());
    }
    // Every mention in the answer key is evidence, or an older version superseded by one.
    for s in got
        .skipped
        .iter()
        .filter(|s| s.reason == SkipReason::Duplicate)
    {
        let mut words = s.provenance.locator.split(' ');
        let uid = words.nth(3).unwrap().to_string();
        let seq: i64 = words.nth(1).unwrap().parse().unwrap();
        seen.insert((shown(&s.provenance.origin), uid, seq));
    }
    let missing: Vec<_> = key.keys().filter(|k| !seen.contains(*k)).collect();
    assert!(
        missing.is_empty(),
        "manifest mentions not accounted for: {missing:?}"
    );
    assert!(
        codes > got.evidence.len() / 2,
        "{codes} of {}",
        got.evidence.len()
    );
    // Everything else the desks put in the calendar is skipped with a reason.
    assert!(got.skip_counts().contains_key(&SkipReason::Irrelevant));
}

#[test]
fn a_missing_path_is_an_error_that_names_it() {
    let mut out = Collected::default();
    let e = calendar::read(
        Path::new("/nonexistent/cal.ics"),
        &CalendarRules::default(),
        &Window::default(),
        &mut out,
    )
    .unwrap_err();
    assert!(e.to_string().contains("/nonexistent/cal.ics"), "{e}");
}
