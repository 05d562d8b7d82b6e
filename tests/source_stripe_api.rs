//! The live Stripe API source (`--stripe-api`).
//!
//! Against localstripe, a real stateful Stripe-compatible server that scripts/test.sh starts and
//! names in GAPFILL_TEST_STRIPE_BASE: objects created there come back complete across pages.
//! Against a tiny scripted HTTP server on 127.0.0.1 in this file: a 429 retried, a refused key
//! reported without the key, and an interrupted pull resumed from its cache.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use gapfill::evidence::{Collected, Value, Window};
use gapfill::sources::stripe::{pull, ApiConfig, ApiKey, StripeError, StripeRules};

/// One request the scripted server saw: the path with its query, and the Authorization header.
#[derive(Debug, Clone)]
struct Seen {
    target: String,
    auth: String,
}

type Script = dyn Fn(&Seen, usize) -> (u16, String) + Send + Sync;

/// A scripted HTTP/1.1 server on 127.0.0.1: answers each request with `script(request, n)`,
/// where n counts earlier requests with the same path. It stops by itself after 200 requests.
fn serve(script: Arc<Script>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(200) {
            let Ok(mut stream) = stream else { continue };
            stream
                .set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut auth = String::new();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("authorization:") {
                    auth = h[h.len() - v.len()..].trim().to_string();
                }
            }
            let req = Seen { target, auth };
            let path = req.target.split('?').next().unwrap().to_string();
            let n = {
                let mut log = log.lock().unwrap();
                let n = log
                    .iter()
                    .filter(|s| s.target.split('?').next().unwrap() == path)
                    .count();
                log.push(req.clone());
                n
            };
            let (status, body) = script(&req, n);
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (base, seen)
}

fn list(objects: &[serde_json::Value], has_more: bool) -> String {
    serde_json::json!({"object": "list", "data": objects, "has_more": has_more, "url": "/v1/x"})
        .to_string()
}

fn stripe_error(message: &str) -> String {
    serde_json::json!({"error": {"type": "invalid_request_error", "message": message}}).to_string()
}

fn customer(i: usize) -> serde_json::Value {
    serde_json::json!({"id": format!("cus_{i}"), "object": "customer", "name": format!("Person {i}"),
        "email": format!("p{i}@example.com"), "created": 1787300000 + i, "metadata": {}})
}

fn config(base: &str) -> ApiConfig {
    let mut c = ApiConfig::new(ApiKey::new("sk_test_scripted"));
    c.base = Some(base.to_string());
    c.progress = false;
    c
}

/// Everything the scripted server at `base` lists, with no window and no cache.
async fn pull_whole(base: &str) -> (Collected, gapfill::sources::stripe::PullStats) {
    let mut got = Collected::default();
    let stats = pull(
        &config(base),
        &StripeRules::default(),
        &Window::default(),
        None,
        &mut got,
    )
    .await
    .unwrap();
    (got, stats)
}

fn customers_of(c: &Collected) -> BTreeSet<String> {
    c.evidence
        .iter()
        .filter(|e| e.kind == "customer")
        .map(|e| e.text("customer_id").unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_429_is_retried_and_the_pull_completes() {
    let (base, seen) = serve(Arc::new(|req: &Seen, n| {
        match req.target.split('?').next().unwrap() {
            "/v1/customers" if n == 0 => (429, stripe_error("Too many requests")),
            "/v1/customers" => (200, list(&[customer(1), customer(2)], false)),
            "/v1/checkout/sessions" => (404, stripe_error("Unrecognized request URL")),
            _ => (200, list(&[], false)),
        }
    }));
    let (got, stats) = pull_whole(&base).await;
    assert_eq!(customers_of(&got), ["cus_1".into(), "cus_2".into()].into());
    assert_eq!(stats.objects.get("customers"), Some(&2));
    assert_eq!(stats.unavailable, ["checkout_sessions"]);
    let customer_requests = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.target.starts_with("/v1/customers"))
        .count();
    assert_eq!(customer_requests, 2, "the 429 was asked again, once");
}

#[tokio::test]
async fn a_refused_key_is_a_clear_error_that_never_shows_the_key() {
    let key = "rk_live_51TopSecretKeyValue0123456789";
    // A careless server that echoes the key it was given back in its message.
    let (base, _) = serve(Arc::new(|req: &Seen, _| {
        let echoed = req.auth.trim_start_matches("Bearer ").to_string();
        (
            401,
            stripe_error(&format!("Invalid API Key provided: {echoed}")),
        )
    }));
    let mut c = ApiConfig::new(ApiKey::new(key));
    c.base = Some(base.clone());
    c.progress = false;
    let cache = tempfile::tempdir().unwrap();
    let mut got = Collected::default();
    let err = pull(
        &c,
        &StripeRules::default(),
        &Window::default(),
        Some(cache.path()),
        &mut got,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StripeError::Unauthorized { status: 401, .. }));
    let shown = err.to_string();
    assert_eq!(
        shown,
        format!(
            "the Stripe API at {base}/ refused the API key (HTTP 401: Invalid API Key provided: [redacted]); check STRIPE_API_KEY and that the key may read customers"
        )
    );
    let mut everything = format!("{shown}\n{err:?}\n{c:?}\n{got:?}\n");
    for entry in std::fs::read_dir(cache.path()).unwrap() {
        everything.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    assert!(!everything.contains(key), "{everything}");
    assert!(!everything.contains("TopSecret"), "{everything}");
}

#[tokio::test]
async fn an_unreachable_server_is_an_error_naming_it_and_what_to_do() {
    // A port that was free a moment ago: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut c = config(&format!("http://127.0.0.1:{port}"));
    c.attempts = 1;
    let err = pull(
        &c,
        &StripeRules::default(),
        &Window::default(),
        None,
        &mut Collected::default(),
    )
    .await
    .unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.starts_with(&format!(
            "the Stripe API at http://127.0.0.1:{port}/ failed while listing customers"
        )),
        "{shown}"
    );
    assert!(!shown.contains("sk_test_scripted"));
}

#[tokio::test]
async fn an_interrupted_pull_resumes_from_its_cache() {
    let broken = Arc::new(Mutex::new(true));
    let flag = broken.clone();
    // Five customers, two a page; while `broken`, every page after the first fails.
    let (base, seen) = serve(Arc::new(move |req: &Seen, _| {
        let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
        if path != "/v1/customers" {
            return (200, list(&[], false));
        }
        let after: usize = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("starting_after=cus_"))
            .map_or(0, |n| n.parse().unwrap());
        if after > 0 && *flag.lock().unwrap() {
            return (500, stripe_error("Internal error"));
        }
        let page: Vec<_> = (after + 1..=(after + 2).min(5)).map(customer).collect();
        (200, list(&page, after + 2 < 5))
    }));
    let cache = tempfile::tempdir().unwrap();
    let mut c = config(&base);
    c.page_size = 2;
    c.attempts = 2;
    let rules = StripeRules::default();
    let window = Window::default();

    let mut first = Collected::default();
    let err = pull(&c, &rules, &window, Some(cache.path()), &mut first)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("failed while listing customers after cus_2: HTTP 500"),
        "{err}"
    );
    assert_eq!(
        customers_of(&first),
        ["cus_1".into(), "cus_2".into()].into()
    );

    *broken.lock().unwrap() = false;
    let before = seen.lock().unwrap().len();
    let mut second = Collected::default();
    let stats = pull(&c, &rules, &window, Some(cache.path()), &mut second)
        .await
        .unwrap();
    assert_eq!(
        customers_of(&second).len(),
        5,
        "cached and fetched together"
    );
    assert_eq!(stats.from_cache, 2);
    let resumed: Vec<String> = seen.lock().unwrap()[before..]
        .iter()
        .filter(|s| s.target.starts_with("/v1/customers"))
        .map(|s| s.target.clone())
        .collect();
    assert!(
        resumed.iter().all(|t| t.contains("starting_after=cus_")),
        "page one was not fetched again: {resumed:?}"
    );

    // A finished pull is not fetched again at all.
    let before = seen.lock().unwrap().len();
    let mut third = Collected::default();
    let stats = pull(&c, &rules, &window, Some(cache.path()), &mut third)
        .await
        .unwrap();
    assert_eq!(customers_of(&third).len(), 5);
    assert_eq!(stats.requests, 0);
    assert_eq!(seen.lock().unwrap().len(), before);
}

/// The events list is read after the lists: a charge listed before it was refunded comes out
/// refunded, as the `charge.refunded` event carries it; a key that may not read some optional
/// list (here disputes) leaves it out with a warning and the pull goes on.
#[tokio::test]
async fn events_bring_a_listed_object_to_its_latest_state() {
    let charge = |refunded: i64| {
        serde_json::json!({"id": "ch_1", "object": "charge", "amount": 5000, "amount_refunded": refunded,
            "currency": "eur", "captured": true, "paid": true, "status": "succeeded",
            "refunded": refunded == 5000, "created": 1787300000, "metadata": {"booking_code": "RC-EVENTS"}})
    };
    let (base, seen) = serve(Arc::new(move |req: &Seen, _| {
        match req.target.split('?').next().unwrap() {
            "/v1/charges" => (200, list(&[charge(0)], false)),
            "/v1/disputes" => (
                403,
                stripe_error("The provided key does not have the required permissions"),
            ),
            "/v1/events" => (
                200,
                list(
                    &[
                        serde_json::json!({"id": "evt_9", "object": "event", "type": "charge.refunded",
                        "created": 1787400000, "data": {"object": charge(5000)}}),
                    ],
                    false,
                ),
            ),
            _ => (200, list(&[], false)),
        }
    }));
    let (got, stats) = pull_whole(&base).await;
    let charges: Vec<_> = got.evidence.iter().filter(|e| e.kind == "charge").collect();
    assert_eq!(charges.len(), 1, "one charge, its newest copy: {charges:?}");
    let ch = charges[0];
    assert_eq!(ch.text("status"), Some("refunded"));
    assert!(
        ch.provenance.locator.contains("evt_9 (charge.refunded"),
        "{:?}",
        ch.provenance
    );
    assert_eq!(
        ch.text("metadata.booking_code"),
        Some("RC-EVENTS"),
        "what both copies say is kept"
    );
    assert_eq!(stats.objects.get("events"), Some(&1));
    assert_eq!(stats.not_permitted, ["disputes"]);
    let warnings = stats.warnings();
    assert!(
        warnings.len() == 1 && warnings[0].contains("may not read disputes"),
        "{warnings:?}"
    );
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .any(|s| s.target.starts_with("/v1/events")),
        "the events were asked for"
    );
}

// ---- localstripe ----

fn localstripe() -> Option<String> {
    match std::env::var("GAPFILL_TEST_STRIPE_BASE") {
        Ok(b) if !b.is_empty() => Some(b),
        _ => {
            assert!(
                std::env::var_os("GAPFILL_REQUIRE_STRIPE").is_none(),
                "GAPFILL_REQUIRE_STRIPE is set but GAPFILL_TEST_STRIPE_BASE is not: scripts/test.sh starts localstripe and sets it"
            );
            eprintln!("skipped: GAPFILL_TEST_STRIPE_BASE is not set (scripts/test.sh starts localstripe and sets it)");
            None
        }
    }
}

/// A small client for making objects on the server, through async-stripe itself.
struct Maker {
    client: stripe::Client,
}

impl Maker {
    fn new(base: &str) -> Maker {
        Maker {
            client: stripe::ClientBuilder::new("sk_test_gapfill")
                .url(format!("{}/", base.trim_end_matches('/')))
                .build()
                .unwrap(),
        }
    }

    async fn post(&self, path: &str, form: &serde_json::Value) -> serde_json::Value {
        let mut request =
            stripe_client_core::RequestBuilder::new(stripe_client_core::StripeMethod::Post, path);
        // An empty form would be sent as an empty parameter, which localstripe refuses.
        if form.as_object().is_some_and(|o| !o.is_empty()) {
            request = request.form(form);
        }
        let answer: miniserde::json::Value = request
            .customize()
            .send(&self.client)
            .await
            .unwrap_or_else(|e| panic!("POST {path} {form}: {e}"));
        serde_json::from_str(&miniserde::json::to_string(&answer)).unwrap()
    }
}

#[tokio::test]
async fn objects_created_on_localstripe_come_back_complete_across_pages() {
    let Some(base) = localstripe() else { return };
    let make = Maker::new(&base);
    // localstripe keeps its objects for as long as it runs: this run's are marked.
    let run = format!(
        "run{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let mut want_customers = BTreeSet::new();
    let mut want_charges: BTreeMap<String, (i64, &str, i64)> = BTreeMap::new();
    let mut want_refunds = BTreeSet::new();
    let mut want_intents = BTreeSet::new();
    for i in 0..23 {
        let c = make
            .post(
                "/customers",
                &serde_json::json!({"name": format!("Customer {i}"), "email": format!("c{i}@example.com"),
                    "metadata": {"run": run}}),
            )
            .await;
        let cus = c["id"].as_str().unwrap().to_string();
        want_customers.insert(cus.clone());
        let (amount, currency) = if i % 3 == 0 {
            (12000 + i, "jpy")
        } else {
            (4550 + i, "eur")
        };
        let ch = make
            .post(
                "/charges",
                &serde_json::json!({"amount": amount, "currency": currency, "source": "pm_card_visa",
                    "customer": cus, "description": format!("Reservation RC-T{i:05}"),
                    "metadata": {"run": run, "booking_code": format!("RC-T{i:05}")}}),
            )
            .await;
        let ch_id = ch["id"].as_str().unwrap().to_string();
        let mut refunded = 0;
        if i % 4 == 1 {
            let part = amount / 2;
            let r = make
                .post(
                    "/refunds",
                    &serde_json::json!({"charge": ch_id, "amount": part, "metadata": {"run": run}}),
                )
                .await;
            want_refunds.insert(r["id"].as_str().unwrap().to_string());
            refunded = part;
        }
        want_charges.insert(ch_id, (amount as i64, currency, refunded as i64));
        if i % 5 == 0 {
            let pi = make
                .post(
                    "/payment_intents",
                    &serde_json::json!({"amount": 9900, "currency": "usd", "customer": cus,
                        "payment_method": "pm_card_visa", "metadata": {"run": run}}),
                )
                .await;
            let id = pi["id"].as_str().unwrap().to_string();
            make.post(
                &format!("/payment_intents/{id}/confirm"),
                &serde_json::json!({}),
            )
            .await;
            want_intents.insert(id);
        }
    }

    let now = chrono::Utc::now();
    let window = Window {
        since: Some(now - chrono::Duration::hours(1)),
        until: Some(now + chrono::Duration::hours(1)),
    };
    let mut c = ApiConfig::new(ApiKey::new("sk_test_gapfill"));
    c.base = Some(base.clone());
    c.page_size = 10;
    c.progress = false;
    let cache = tempfile::tempdir().unwrap();
    let mut got = Collected::default();
    let stats = pull(
        &c,
        &StripeRules::default(),
        &window,
        Some(cache.path()),
        &mut got,
    )
    .await
    .unwrap();

    // Everything fetched is accounted for, and there were several pages of each list.
    let fetched: usize = stats.objects.values().sum();
    assert_eq!(stats.items(), fetched, "{stats:?}");
    assert!(stats.requests >= 4 * 3, "{stats:?}");
    // localstripe has no checkout sessions and no disputes.
    assert_eq!(stats.unavailable, ["checkout_sessions", "disputes"]);
    // It records an event for each customer made, and lists them.
    assert!(
        stats.objects.get("events").is_some_and(|n| *n >= 23),
        "{stats:?}"
    );
    // localstripe filters `created` on charges only; the other lists are filtered here.
    assert!(!stats.filtered_here.contains(&"charges"), "{stats:?}");
    assert!(stats.filtered_here.contains(&"customers"), "{stats:?}");

    let ids = |kind: &str| -> BTreeSet<String> {
        got.evidence
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.text("id").unwrap().to_string())
            .collect()
    };
    assert!(ids("customer").is_superset(&want_customers));
    assert!(ids("refund").is_superset(&want_refunds));
    assert!(ids("payment_intent").is_superset(&want_intents));
    let charges = ids("charge");
    for (id, (amount, currency, refunded)) in &want_charges {
        assert!(charges.contains(id), "{id} missing");
        let e = got
            .evidence
            .iter()
            .find(|e| e.text("id") == Some(id))
            .unwrap();
        let money = |minor: i64| Value::Money {
            minor,
            currency: currency.to_uppercase(),
        };
        assert_eq!(e.get("amount"), Some(&money(*amount)), "{id}");
        assert_eq!(e.get("amount_refunded"), Some(&money(*refunded)), "{id}");
        let status = if *refunded > 0 {
            "partially_refunded"
        } else {
            "succeeded"
        };
        assert_eq!(e.text("status"), Some(status), "{id}");
        assert_eq!(e.text("metadata.run"), Some(run.as_str()));
        assert!(e.text("metadata.booking_code").is_some());
    }
    // The payment intents' own charges came back too, linked to their intents.
    let linked = got
        .evidence
        .iter()
        .filter(|e| e.kind == "charge")
        .filter_map(|e| e.text("payment_intent_id"))
        .filter(|pi| want_intents.contains(*pi))
        .count();
    assert_eq!(linked, want_intents.len());

    // A second pull with the same cache fetches nothing that was finished.
    let mut again = Collected::default();
    let second = pull(
        &c,
        &StripeRules::default(),
        &window,
        Some(cache.path()),
        &mut again,
    )
    .await
    .unwrap();
    assert_eq!(second.from_cache, fetched);
    assert_eq!(again.evidence.len(), got.evidence.len());
    assert_eq!(second.requests, 0, "a finished pull asks nothing again");
}

// ---- plan and drift with --stripe-api, the real binary against localstripe ----

mod common;

/// `plan --stripe-api` and `drift --stripe-api` run the live API source inside the binary's one
/// runtime (a second runtime started inside it used to panic): a customer made on localstripe
/// comes out as a planned insert, and as a missing row in the drift report.
#[tokio::test]
async fn plan_and_drift_pull_from_the_live_api() {
    let Some(base) = localstripe() else { return };
    let make = Maker::new(&base);
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let email = format!("live.{stamp}@example.org");
    let customer = make
        .post(
            "/customers",
            &serde_json::json!({"name": "Ottilie Live", "email": email, "phone": "+351912345678"}),
        )
        .await;
    let cus = customer["id"].as_str().unwrap().to_string();

    let (dir, incident) = tokio::task::spawn_blocking(|| common::incident(41, 30, "low"))
        .await
        .unwrap();
    let db = common::sqlite_url(&incident.join("restored.db"));
    let mapping = incident.join("mapping.toml");
    let plan = dir.path().join("plan.json");
    let run = |args: Vec<String>| {
        let base = base.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                std::process::Command::new(env!("CARGO_BIN_EXE_gapfill"))
                    .args(&args)
                    .env("STRIPE_API_KEY", "sk_test_gapfill_live")
                    .env("STRIPE_API_BASE", &base)
                    .env_remove("DATABASE_URL")
                    .output()
                    .unwrap()
            })
            .await
            .unwrap()
        }
    };
    let args = |cmd: &str, extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [cmd, "--quiet", "--mapping", mapping.to_str().unwrap()]
            .iter()
            .chain(["--db", db.as_str(), "--stripe-api"].iter())
            .chain(extra.iter())
            .map(|s| s.to_string())
            .collect();
        v.retain(|s| !s.is_empty());
        v
    };

    let out = run(args("plan", &["--out", plan.to_str().unwrap()])).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "plan --stripe-api failed: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("sk_test_gapfill_live"), "{stderr}");
    let p: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan).unwrap()).unwrap();
    let insert = p["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            c["op"] == "insert"
                && c["table"] == "customers"
                && c["columns"].as_array().unwrap().iter().any(|col| {
                    col["column"] == "stripe_customer_id" && col["after"]["value"] == cus.as_str()
                })
        })
        .unwrap_or_else(|| panic!("no planned insert of {cus} ({email})"));
    let col = |name: &str| {
        insert["columns"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["column"] == name)
            .map(|c| c["after"]["value"].clone())
    };
    assert_eq!(col("email"), Some(serde_json::json!(email)));
    assert_eq!(col("full_name"), Some(serde_json::json!("Ottilie Live")));

    let out = run(args("drift", &["--format", "json"])).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "drift finds differences: {stderr}"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = report.to_string();
    assert!(text.contains(&cus), "the drift report names {cus}");
    assert!(!text.contains("sk_test_gapfill_live"));
}

/// Asking for the live API without a key is an error before anything is read, naming the
/// variable to set.
#[test]
fn the_live_api_without_a_key_says_which_variable_to_set() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gapfill"))
        .args(["evidence", "--stripe-api"])
        .env_remove("STRIPE_API_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("STRIPE_API_KEY is not set"), "{err}");
}
