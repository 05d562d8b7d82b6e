//! Invariant 8: a password in a database URL (in the userinfo or as `?password=`) and a Stripe key
//! never appear in stdout, stderr, the plan, the report, the review sheet, the audit table or the
//! undo script, on any command, on its success and on its error paths.

mod common;

use std::path::Path;

use common::*;

const PASSWORD: &str = "Hunter2Secret";
const QUERY_PASSWORD: &str = "QuerySecret9";
const STRIPE_KEY: &str = "sk_live_51SecretStripeKey";

/// Runs gapfill and returns everything it printed; fails the test when a secret is in it.
fn run_clean(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gapfill"))
        .args(args)
        .envs(env.iter().copied())
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    for secret in [PASSWORD, QUERY_PASSWORD, STRIPE_KEY] {
        assert!(
            !text.contains(secret),
            "gapfill {args:?} printed a secret:\n{text}"
        );
    }
    assert!(!text.contains("panicked"), "gapfill {args:?}:\n{text}");
    (out.status.code(), text)
}

fn no_secret_in(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    for secret in [PASSWORD, QUERY_PASSWORD, STRIPE_KEY] {
        assert!(!text.contains(secret), "{} holds a secret", path.display());
    }
}

/// Every command on PostgreSQL (trust authentication: the password is sent and ignored), with the
/// password in either place, succeeds and shows it nowhere.
#[test]
fn passwords_in_postgres_urls_are_never_shown() {
    let Some(base) = server("GAPFILL_TEST_POSTGRES") else {
        return;
    };
    let (dir, incident) = incident(61, 30, "low");
    let (url, _guard) = postgres_db(&base, "secrets", &incident.join("restored.postgres.sql"));
    let tmp = dir.path();
    let (scheme_rest, db) = url.rsplit_once('/').unwrap();
    let (scheme, rest) = scheme_rest.split_once("://").unwrap();
    let (user, host) = rest.split_once('@').unwrap();
    let urls = [
        format!("{scheme}://{user}:{PASSWORD}@{host}/{db}"),
        format!("{scheme}://{user}@{host}/{db}?password={QUERY_PASSWORD}"),
    ];
    let config = incident.join("gapfill.toml");
    let mapping = incident.join("mapping.toml");
    let truth = incident.join("truth.db");
    for (i, u) in urls.iter().enumerate() {
        let plan = tmp.join(format!("plan{i}.json"));
        let report = tmp.join(format!("report{i}.html"));
        let sheet = tmp.join(format!("review{i}.csv"));
        let undo = tmp.join(format!("undo{i}.sql"));
        let drafted = tmp.join(format!("drafted{i}.toml"));
        let p = plan.to_str().unwrap();
        for args in [
            vec![
                "check",
                "--mapping",
                mapping.to_str().unwrap(),
                "--db",
                u,
                "--baseline",
            ],
            vec!["init", "--db", u, "--out", drafted.to_str().unwrap()],
            vec![
                "plan",
                "--config",
                config.to_str().unwrap(),
                "--db",
                u,
                "--out",
                p,
                "--report",
                report.to_str().unwrap(),
            ],
            vec!["show", p, "--format", "json"],
            vec!["review", p, "--export", sheet.to_str().unwrap()],
            vec![
                "apply",
                p,
                "--db",
                u,
                "--dry-run",
                "--undo",
                undo.to_str().unwrap(),
            ],
            vec!["evaluate", "--truth", truth.to_str().unwrap(), "--db", u],
        ] {
            let (code, text) = run_clean(&args, &[]);
            assert_eq!(code, Some(0), "gapfill {args:?}:\n{text}");
        }
        let (code, text) = run_clean(
            &[
                "drift",
                "--config",
                config.to_str().unwrap(),
                "--db",
                u,
                "--format",
                "json",
            ],
            &[],
        );
        assert!(matches!(code, Some(0) | Some(2)), "{text}");
        for f in [&plan, &report, &sheet, &undo, &drafted] {
            no_secret_in(f);
        }
        let audit = query(&url, "SELECT count(*) FROM gapfill_audit");
        assert_eq!(audit.trim(), "0", "a dry run records nothing");
    }
    let (code, _) = run_clean(
        &[
            "apply",
            tmp.join("plan0.json").to_str().unwrap(),
            "--db",
            &urls[0],
            "--yes",
            "--undo",
            tmp.join("undo.sql").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, Some(0));
    no_secret_in(&tmp.join("undo.sql"));
    let audit = query(&url, "SELECT * FROM gapfill_audit");
    assert!(!audit.is_empty());
    assert!(!audit.contains(PASSWORD) && !audit.contains(QUERY_PASSWORD));
}

/// Refused logins and unreachable servers: every command that connects fails with an error that
/// names the server, never the password.
#[test]
fn passwords_in_urls_are_never_shown_on_errors() {
    let (dir, incident) = incident(62, 20, "low");
    let tmp = dir.path();
    let config = incident.join("gapfill.toml");
    let mapping = incident.join("mapping.toml");
    let truth = incident.join("truth.db");
    let plan = tmp.join("plan.json");
    plan_incident(
        &incident,
        &sqlite_url(&incident.join("restored.db")),
        &plan,
        &[],
    );
    let mut urls = vec![
        // Nothing listens on port 9: connection refused.
        format!("postgres://app:{PASSWORD}@127.0.0.1:9/prod"),
        format!("postgres://app@127.0.0.1:9/prod?password={QUERY_PASSWORD}"),
        format!("mysql://app:{PASSWORD}@127.0.0.1:9/prod"),
    ];
    if let Some(base) = server("GAPFILL_TEST_MYSQL") {
        // A real server that refuses the password.
        let hostport = base
            .rsplit_once('@')
            .map_or(base.as_str(), |(_, h)| h)
            .to_string();
        urls.push(format!("mysql://root:{PASSWORD}@{hostport}/test"));
    }
    for u in &urls {
        for args in [
            vec![
                "check",
                "--mapping",
                mapping.to_str().unwrap(),
                "--db",
                u.as_str(),
            ],
            vec!["init", "--db", u],
            vec![
                "plan",
                "--config",
                config.to_str().unwrap(),
                "--db",
                u,
                "--out",
                tmp.join("p.json").to_str().unwrap(),
            ],
            vec!["drift", "--config", config.to_str().unwrap(), "--db", u],
            vec!["apply", plan.to_str().unwrap(), "--db", u, "--yes"],
            vec!["evaluate", "--truth", truth.to_str().unwrap(), "--db", u],
        ] {
            let (code, text) = run_clean(&args, &[]);
            assert_eq!(code, Some(1), "gapfill {args:?}:\n{text}");
            assert!(
                text.contains("***") || text.contains("127.0.0.1"),
                "the error names the server: {text}"
            );
        }
    }
}

/// A Stripe key given in the environment is never shown, whether the server is unreachable or
/// refuses it.
#[test]
fn the_stripe_key_is_never_shown() {
    let (dir, incident) = incident(63, 20, "low");
    let db = sqlite_url(&incident.join("restored.db"));
    let mapping = incident.join("mapping.toml");
    let plan = dir.path().join("plan.json");
    // One unreachable server: each pull retries with backoff before it gives up.
    {
        let base = "http://127.0.0.1:9/v1/";
        let env = [("STRIPE_API_KEY", STRIPE_KEY), ("STRIPE_API_BASE", base)];
        run_clean(&["evidence", "--stripe-api"], &env);
        let (code, _) = run_clean(
            &[
                "plan",
                "--mapping",
                mapping.to_str().unwrap(),
                "--db",
                &db,
                "--stripe-api",
                "--out",
                plan.to_str().unwrap(),
            ],
            &env,
        );
        if code == Some(0) {
            no_secret_in(&plan);
        }
    }
}
