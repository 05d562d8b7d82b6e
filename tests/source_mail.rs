//! The mail source: fixtures for each case it handles, the simulator's booking inbox, and a real
//! corpus of unrelated mail.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use gapfill::evidence::{Collected, SkipReason, Value, Window};
use gapfill::sources::mail::{self, MailRules};

#[derive(serde::Deserialize)]
struct Mapping {
    sources: Sources,
}

#[derive(serde::Deserialize)]
struct Sources {
    mail: MailRules,
}

fn rules(path: &Path) -> MailRules {
    let text = std::fs::read_to_string(path).unwrap();
    toml::from_str::<Mapping>(&text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .sources
        .mail
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mail")
}

fn car_rental_rules() -> MailRules {
    gapfill::mapping::Mapping::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings/car-rental.toml"),
    )
    .expect("the reference mapping reads")
    .mapping
    .sources
    .mail
}

/// Everything a read gave, as a person would read it: evidence with its fields, skips with their
/// reasons, and the counts.
fn render(c: &Collected, stats: &mail::MailStats, base: &Path) -> String {
    let base = format!("{}/", base.display());
    let mut out = String::new();
    for e in &c.evidence {
        out.push_str(&format!(
            "evidence {} at {} {}\n",
            e.kind, e.provenance.origin, e.provenance.locator
        ));
        for (name, value) in &e.fields {
            out.push_str(&format!("  {name}: {value}\n"));
        }
    }
    for s in &c.skipped {
        out.push_str(&format!(
            "skip {} at {} {}\n  {}\n",
            s.reason.as_str(),
            s.provenance.origin,
            s.provenance.locator,
            s.detail
        ));
    }
    out.push_str(&format!("{stats:?}\n"));
    out.replace(&base, "")
}

fn window_for(case: &Path) -> Window {
    let mut w = Window::default();
    let file = PathBuf::from(format!("{}.window", case.display()));
    if let Ok(text) = std::fs::read_to_string(file) {
        let mut it = text.split_whitespace().map(|s| s.parse().unwrap());
        w.since = it.next();
        w.until = it.next();
    }
    w
}

/// Each case under tests/fixtures/mail/cases is read with tests/fixtures/mail/rules.toml and
/// compared with `<case>.expected` beside it (GAPFILL_BLESS=1 rewrites them).
#[test]
fn fixtures_give_the_expected_evidence() {
    let rules = rules(&fixtures().join("rules.toml"));
    let cases = fixtures().join("cases");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&cases)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            !name.ends_with(".expected") && !name.ends_with(".window")
        })
        .collect();
    names.sort();
    assert!(names.len() >= 15, "{names:?}");
    let bless = std::env::var_os("GAPFILL_BLESS").is_some();
    let mut failures = Vec::new();
    for case in names {
        let mut got = Collected::default();
        let stats = mail::read(&case, &rules, &window_for(&case), &mut got)
            .unwrap_or_else(|e| panic!("{e}"));
        // Every message is accounted for, once.
        assert!(
            stats.evidence + stats.skipped >= stats.messages,
            "{}: {stats:?}",
            case.display()
        );
        let text = render(&got, &stats, &cases);
        let expected_path = PathBuf::from(format!("{}.expected", case.display()));
        if bless {
            std::fs::write(&expected_path, &text).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != text {
            failures.push(format!(
                "--- {} differs; got:\n{text}",
                expected_path.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_missing_path_is_an_error_that_says_what_to_give() {
    let err = mail::read(
        Path::new("/nonexistent/inbox.mbox"),
        &MailRules::default(),
        &Window::default(),
        &mut Collected::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "mail archive /nonexistent/inbox.mbox: no such file or folder; give an mbox, mbox.gz, Maildir, .eml file or a folder of them"
    );
}

#[test]
fn a_bad_pattern_in_the_mapping_is_refused_when_read() {
    let err =
        toml::from_str::<Mapping>("[sources.mail]\n[[sources.mail.patterns]]\npattern = '(?P<x'\n")
            .err()
            .expect("an error");
    assert!(err.to_string().contains("does not compile"), "{err}");
    let err = toml::from_str::<Mapping>("[sources.mail]\nsenders = []\n")
        .err()
        .expect("an error");
    assert!(err.to_string().contains("unknown field"), "{err}");
}

/// The simulator's inbox: every mail the manifest says mentions a row is read as evidence, with
/// the booking code, email and amount the truth has.
#[test]
fn the_simulators_inbox_gives_every_booking_mail() {
    let (_dir, incident) = common::incident(11, 400, "high");
    let mbox = incident.join("evidence/mail/bookings.mbox");
    let mut got = Collected::default();
    let stats = mail::read(&mbox, &car_rental_rules(), &Window::default(), &mut got).unwrap();
    assert_eq!(
        stats.messages as usize,
        got.evidence.len() + got.skipped.len(),
        "every message accounted for once"
    );
    assert_eq!(stats.truncated, 1, "{stats:?}");
    assert!(
        stats.rejoined_from_lines >= 1,
        "high noise leaves a From line unescaped"
    );

    let manifest = std::fs::read_to_string(incident.join("manifest.csv")).unwrap();
    let mut mentions: BTreeMap<String, Vec<(String, i64)>> = BTreeMap::new();
    for line in manifest.lines().skip(1) {
        let cols: Vec<&str> = line.splitn(4, ',').collect();
        if cols[2] == "mail" {
            mentions
                .entry(cols[3].to_string())
                .or_default()
                .push((cols[0].to_string(), cols[1].parse().unwrap()));
        }
    }
    assert!(mentions.len() > 300, "{}", mentions.len());
    let truth = truth(&incident.join("truth.db"));

    let by_id: BTreeMap<&str, _> = got
        .evidence
        .iter()
        .map(|e| (e.text("message_id").unwrap(), e))
        .collect();
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    let (mut codes, mut amounts, mut confirmations) = (0, 0, 0);
    for (id, rows) in &mentions {
        let e = by_id
            .get(id.as_str())
            .unwrap_or_else(|| panic!("no evidence from {id}: {:?}", skipped(&got, id)));
        *kinds.entry(e.kind.as_str()).or_default() += 1;
        for (table, row) in rows {
            match table.as_str() {
                "reservations" => {
                    let (code, total, currency) = &truth.reservations[row];
                    if let Some(c) = e.text("booking_code") {
                        assert_eq!(c, code, "{id}");
                        codes += 1;
                    }
                    // The archive breaks off inside its last message, which keeps its
                    // headers and loses part of its body.
                    if e.kind == "confirmation" && e.get("truncated").is_none() {
                        // The truth holds the booking as it ended; a confirmation shows it as
                        // first booked, so later changes may have moved the total.
                        let Some(Value::Money {
                            minor,
                            currency: cur,
                        }) = e.get("amount")
                        else {
                            panic!("{id}: no amount");
                        };
                        assert_eq!(cur, currency, "{id}");
                        confirmations += 1;
                        amounts += usize::from(minor == total);
                        assert!(
                            e.get("starts_at").and_then(Value::as_time).is_some(),
                            "{id}"
                        );
                    }
                }
                "customers" => {
                    let email = &truth.customers[row];
                    if let Some(got) = e.text("email") {
                        assert_eq!(&got.to_lowercase(), email, "{id}");
                    }
                }
                "payments" => {
                    let (minor, currency) = &truth.payments[row];
                    if e.kind == "receipt" {
                        assert_eq!(
                            e.get("amount"),
                            Some(&Value::Money {
                                minor: *minor,
                                currency: currency.clone()
                            }),
                            "{id}"
                        );
                    }
                }
                other => panic!("unexpected table {other}"),
            }
        }
    }
    for kind in [
        "signup",
        "confirmation",
        "modification",
        "cancellation",
        "receipt",
        "reply",
        "forward",
    ] {
        assert!(
            kinds.get(kind).is_some_and(|n| *n > 0),
            "no {kind}: {kinds:?}"
        );
    }
    assert!(codes > 300, "{codes} codes");
    assert!(
        amounts * 10 >= confirmations * 8 && confirmations > 50,
        "{amounts} of {confirmations} confirmations show the final total"
    );
    // Replies and forwards quote a confirmation; they are never confirmations themselves.
    for e in &got.evidence {
        if e.kind == "reply" || e.kind == "forward" {
            assert_eq!(e.text("quotes"), Some("confirmation"));
        }
    }
    // What mentions no row is not booking evidence.
    for e in &got.evidence {
        let id = e.text("message_id").unwrap();
        assert!(
            mentions.contains_key(id),
            "{id} is evidence but mentions nothing"
        );
    }
}

fn skipped<'a>(c: &'a Collected, id: &str) -> Vec<&'a gapfill::evidence::Skip> {
    c.skipped
        .iter()
        .filter(|s| s.provenance.locator.contains(id))
        .collect()
}

struct Truth {
    reservations: BTreeMap<i64, (String, i64, String)>,
    customers: BTreeMap<i64, String>,
    payments: BTreeMap<i64, (i64, String)>,
}

fn truth(db: &Path) -> Truth {
    use sqlx::{Connection, Row, SqliteConnection};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let url = format!("sqlite://{}?mode=ro", db.display());
        let mut conn = SqliteConnection::connect(&url).await.unwrap();
        let mut t = Truth {
            reservations: BTreeMap::new(),
            customers: BTreeMap::new(),
            payments: BTreeMap::new(),
        };
        for r in sqlx::query("SELECT id, booking_code, total_minor, currency FROM reservations")
            .fetch_all(&mut conn)
            .await
            .unwrap()
        {
            t.reservations
                .insert(r.get(0), (r.get(1), r.get(2), r.get(3)));
        }
        for r in sqlx::query("SELECT id, email FROM customers")
            .fetch_all(&mut conn)
            .await
            .unwrap()
        {
            t.customers
                .insert(r.get(0), r.get::<String, _>(1).to_lowercase());
        }
        for r in sqlx::query("SELECT id, amount_minor, currency FROM payments")
            .fetch_all(&mut conn)
            .await
            .unwrap()
        {
            t.payments.insert(r.get(0), (r.get(1), r.get(2)));
        }
        t
    })
}

/// 6,046 real messages from 2002, none of them about car rentals: every one accounted for, and
/// the car-rental mapping finds no booking in any.
#[test]
fn spamassassin_corpus_is_read_whole_and_gives_no_bookings() {
    let Some(dir) = std::env::var_os("GAPFILL_CORPORA") else {
        assert!(
            std::env::var_os("GAPFILL_REQUIRE_CORPORA").is_none(),
            "GAPFILL_REQUIRE_CORPORA is set but GAPFILL_CORPORA is not"
        );
        eprintln!("GAPFILL_CORPORA is not set: the SpamAssassin corpus test did not run");
        return;
    };
    let path = Path::new(&dir).join("mail/spamassassin.mbox.gz");
    let mut got = Collected::default();
    let stats = mail::read(&path, &car_rental_rules(), &Window::default(), &mut got)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stats.messages, 6046, "{stats:?}");
    assert_eq!(got.evidence.len() + got.skipped.len(), 6046);
    assert!(
        got.evidence.is_empty(),
        "{:#?}",
        &got.evidence[..got.evidence.len().min(3)]
    );
    let counts = got.skip_counts();
    let irrelevant = counts.get(&SkipReason::Irrelevant).copied().unwrap_or(0);
    assert!(irrelevant > 5900, "{counts:?}");
    let reasons: BTreeSet<_> = got.skipped.iter().map(|s| s.reason).collect();
    eprintln!("{stats:?} {counts:?} {reasons:?}");
}

/// HTML as text without html2text, for the simple documents booking systems send, must give what
/// html2text gives, byte for byte: checked on every HTML part of the simulator's inboxes at every
/// noise level, on the fixtures, and on the corpus when it is there.
#[test]
fn the_fast_html_to_text_gives_what_html2text_gives() {
    fn check(raw: &[u8], fast: &mut usize, slow: &mut usize, origin: &str) {
        let Some(msg) = mail_parser::MessageParser::default().parse(raw) else {
            return;
        };
        for part in &msg.parts {
            if let mail_parser::PartType::Html(html) = &part.body {
                match mail::simple_html_to_text(html) {
                    Some(text) => {
                        *fast += 1;
                        assert_eq!(
                            text,
                            mail::html_to_text_by_html2text(html),
                            "{origin}: {html}"
                        );
                    }
                    None => *slow += 1,
                }
            }
        }
    }
    fn messages(path: &Path) -> Vec<Vec<u8>> {
        let mut data = std::fs::read(path).unwrap();
        if data.starts_with(&[0x1f, 0x8b]) {
            let mut plain = Vec::new();
            std::io::Read::read_to_end(
                &mut flate2::read::MultiGzDecoder::new(&data[..]),
                &mut plain,
            )
            .unwrap();
            data = plain;
        }
        if !data.starts_with(b"From ") {
            return vec![data];
        }
        mail::Mbox::new(&data[..])
            .filter_map(|item| match item {
                mail::MboxItem::Message(m) => Some(m.data),
                _ => None,
            })
            .collect()
    }
    fn files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files(&path, out);
            } else if !path.to_string_lossy().contains(".expected") {
                out.push(path);
            }
        }
    }

    for noise in ["low", "medium", "high"] {
        let (_dir, incident) = common::incident(5, 400, noise);
        let (mut fast, mut slow) = (0, 0);
        let mbox = incident.join("evidence/mail/bookings.mbox");
        for m in messages(&mbox) {
            check(&m, &mut fast, &mut slow, noise);
        }
        // The HTML-only booking mails (a fifth of them) and the HTML of the others.
        assert!(
            fast > 300,
            "noise {noise}: {fast} read fast, {slow} by html2text"
        );
    }
    let mut paths = Vec::new();
    files(&fixtures(), &mut paths);
    if let Ok(corpora) = std::env::var("GAPFILL_CORPORA") {
        files(&Path::new(&corpora).join("mail"), &mut paths);
    }
    let (mut fast, mut slow) = (0, 0);
    for path in paths {
        for m in messages(&path) {
            check(&m, &mut fast, &mut slow, &path.display().to_string());
        }
    }
    assert!(fast >= 1, "the fixtures' HTML-only mail is read fast");
}
