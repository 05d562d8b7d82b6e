//! `gapfill evidence` over a simulated incident: every item of every source is accounted for,
//! everything the answer key says mentions a gap-period row is found, and secrets stay secret.

mod common;

use std::collections::BTreeSet;

use common::*;

fn evidence_json(args: &[&str]) -> serde_json::Value {
    let out = gapfill_ok(&[&["evidence", "--format", "json"], args].concat());
    serde_json::from_str(&out).expect("evidence --format json prints JSON")
}

/// Every (origin, locator) of a source, of evidence and of skips alike.
fn places(doc: &serde_json::Value, source: &str) -> Vec<(String, String)> {
    ["evidence", "skipped"]
        .iter()
        .flat_map(|k| doc[k].as_array().unwrap().iter())
        .filter(|item| item["provenance"]["source"] == source)
        .map(|item| {
            let p = &item["provenance"];
            (
                p["origin"].as_str().unwrap().to_string(),
                p["locator"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn locators(doc: &serde_json::Value, source: &str) -> Vec<String> {
    places(doc, source).into_iter().map(|(_, l)| l).collect()
}

#[test]
fn every_source_of_a_simulated_incident_is_accounted_for() {
    let (_dir, out) = incident(41, 120, "medium");
    let config = out.join("gapfill.toml");
    let doc = evidence_json(&["--config", config.to_str().unwrap()]);
    // The config names the restored database: the window opens at the restore point it shows
    // (its newest change), less the mapping's day of overlap.
    let real_rp = std::fs::read_to_string(&config)
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("restore_point = \"")
                .map(|v| v.trim_end_matches('"').to_string())
        })
        .unwrap();
    let since = doc["window"]["since"].as_str().expect("a window start");
    let since: chrono::DateTime<chrono::Utc> = since.parse().unwrap();
    let real: chrono::DateTime<chrono::Utc> = real_rp.parse().unwrap();
    assert!(
        since < real - chrono::Duration::hours(23),
        "{since} vs {real}"
    );
    assert!(
        since > real - chrono::Duration::days(3),
        "{since} vs {real}"
    );
    let sources = doc["sources"].as_array().unwrap();
    let names: Vec<&str> = sources
        .iter()
        .map(|s| s["source"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["stripe", "calendar", "mail"]);
    for s in sources {
        assert!(s["errors"].as_array().unwrap().is_empty(), "{s}");
        assert!(s["evidence"].as_u64().unwrap() > 0, "{s}");
        // The tally and the items printed agree: nothing counted that was not listed.
        let source = s["source"].as_str().unwrap();
        let listed = locators(&doc, source).len() as u64;
        assert_eq!(
            listed,
            s["evidence"].as_u64().unwrap() + s["skipped"].as_u64().unwrap()
        );
        // The simulator writes nothing broken apart from the mail archive's last message.
        let malformed = s["skipped_by_reason"]["malformed"].as_u64().unwrap_or(0);
        assert!(malformed <= 1, "{source}: {malformed} malformed");
    }

    // Every Stripe object of every dump and every row of the dashboard export is accounted for.
    let stripe_dir = out.join("evidence/stripe");
    let mut written = 0u64;
    for entry in std::fs::read_dir(&stripe_dir).unwrap() {
        let p = entry.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap();
        written += match p.extension().and_then(|e| e.to_str()) {
            Some("json") => {
                let list: serde_json::Value = serde_json::from_str(&text).unwrap();
                list["data"].as_array().unwrap().len() as u64
            }
            Some("csv") => csv_records(&text),
            _ => 0,
        };
    }
    let stripe_tally = &sources[0];
    assert_eq!(
        stripe_tally["evidence"].as_u64().unwrap() + stripe_tally["skipped"].as_u64().unwrap(),
        written,
        "{stripe_tally}"
    );

    // Every mention in the answer key is found: Stripe objects by id, calendar events by UID and
    // SEQUENCE, mails by Message-ID.
    let manifest = std::fs::read_to_string(out.join("manifest.csv")).unwrap();
    let mut missing = BTreeSet::new();
    let stripe = places(&doc, "stripe");
    let calendar = locators(&doc, "calendar");
    let mail: Vec<String> = ["evidence"]
        .iter()
        .flat_map(|k| doc[k].as_array().unwrap().iter())
        .filter(|i| i["provenance"]["source"] == "mail")
        .map(|i| i["provenance"]["locator"].as_str().unwrap().to_string())
        .collect();
    for line in manifest.lines().skip(1) {
        let cols: Vec<&str> = line.splitn(4, ',').collect();
        let (source, locator) = (cols[2], cols[3]);
        let found = match source {
            // An object id, or a dashboard export's file:line.
            "stripe" => match locator.rsplit_once(':') {
                Some((file, line)) if line.parse::<u64>().is_ok() => stripe
                    .iter()
                    .any(|(o, l)| o.ends_with(file) && *l == format!("line {line}")),
                _ => stripe.iter().any(|(_, l)| l == locator),
            },
            "calendar" => {
                let parts: Vec<&str> = locator.split('#').collect();
                let seq = parts[2].trim_start_matches("SEQUENCE=");
                let want = format!("uid {} seq {seq}", parts[1]);
                calendar.iter().any(|l| l.contains(&want))
            }
            "mail" => mail.iter().any(|l| l.contains(locator)),
            other => panic!("unknown source {other}"),
        };
        if !found {
            missing.insert(format!("{source} {locator}"));
        }
    }
    assert!(missing.is_empty(), "not found: {missing:?}");
}

/// Records in a CSV text, header excluded.
fn csv_records(text: &str) -> u64 {
    csv::Reader::from_reader(text.as_bytes()).records().count() as u64
}

#[test]
fn flags_override_the_config_and_the_window_filters() {
    let (_dir, out) = incident(42, 40, "low");
    let config = out.join("gapfill.toml");
    let calendar = out.join("evidence/calendar");
    let doc = evidence_json(&[
        "--config",
        config.to_str().unwrap(),
        "--calendar",
        calendar.to_str().unwrap(),
        "--since",
        "2026-09-14T00:00:00Z",
    ]);
    // --calendar replaces the config's calendar folder, the other sources stay.
    assert_eq!(doc["sources"].as_array().unwrap().len(), 3);
    for e in doc["evidence"].as_array().unwrap() {
        if e["provenance"]["source"] == "stripe" {
            let created = e["fields"]["created"]["value"].as_str().unwrap();
            assert!(created >= "2026-09-14T00:00:00Z", "{created}");
        }
    }
    let reasons: u64 = doc["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s["skipped_by_reason"]["outside_window"]
                .as_u64()
                .unwrap_or(0)
        })
        .sum();
    assert!(reasons > 0, "the window skipped nothing");
}

#[test]
fn unreadable_inputs_are_errors_and_the_rest_is_still_read() {
    let (_dir, out) = incident(43, 20, "low");
    let missing = out.join("no-such-calendar");
    let run = gapfill(&[
        "evidence",
        "--calendar",
        missing.to_str().unwrap(),
        "--mail",
        out.join("evidence/mail/bookings.mbox").to_str().unwrap(),
    ]);
    assert_eq!(run.status.code(), Some(1));
    let stdout = String::from_utf8(run.stdout).unwrap();
    assert!(stdout.contains("no-such-calendar"), "{stdout}");
    // Without a mapping only structure is read: the mails' schema.org reservations.
    assert!(
        stdout.contains("mail ") && stdout.contains("reservation"),
        "{stdout}"
    );

    let none = gapfill(&["evidence"]);
    assert_eq!(none.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&none.stderr).contains("no sources"));
}

/// A refused Stripe key is a clear error that never shows the key, on stdout or stderr.
#[test]
fn a_refused_stripe_key_never_appears() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let key = "sk_test_51SecretKeyThatMustNeverBeShown0123456789";
    std::thread::spawn(move || {
        for stream in listener.incoming().take(8) {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let body = format!(
                "{{\"error\":{{\"type\":\"invalid_request_error\",\"message\":\"Invalid API Key provided: {key}\"}}}}"
            );
            let _ = write!(
                s,
                "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_gapfill"))
        .args(["evidence", "--stripe-api"])
        .env("STRIPE_API_KEY", key)
        .env("STRIPE_API_BASE", format!("http://127.0.0.1:{port}"))
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(run.status.code(), Some(1), "{all}");
    assert!(all.contains("Stripe API"), "{all}");
    assert!(!all.contains("SecretKeyThatMustNeverBeShown"), "{all}");
}
