//! `gapfill plan` then `gapfill apply` on SQLite, PostgreSQL and MariaDB: apply, re-apply (a
//! no-op), a dry run that leaves nothing, an undo script that restores the before-state exactly,
//! audit rows, a stale plan refused with the rows named, and the applied state compared row by
//! row, every column, with tests/fixtures/apply/applied.<database>.txt (`UPDATE_EXPECT=1` rewrites
//! them after a change that is meant to change what apply writes).

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// Runs a SQL script or statement against the database behind `url` with its own client.
fn sql(url: &str, script: &str) {
    let mut cmd = if let Some(path) = url.strip_prefix("sqlite://") {
        let mut c = Command::new("sqlite3");
        c.args(["-bail", path]);
        c
    } else if url.starts_with("postgres://") {
        let mut c = Command::new("psql");
        c.args([url, "-q", "-v", "ON_ERROR_STOP=1"]);
        c
    } else {
        let (host, port, user) = mysql_parts(url.rsplit_once('/').unwrap().0);
        let db = url.rsplit('/').next().unwrap();
        let mut c = Command::new("mariadb");
        c.args(["--protocol=tcp", "-h", &host, "-P", &port, "-u", &user, db]);
        c
    };
    use std::io::Write;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the database client runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !err.contains("ERROR"),
        "the script failed on {url}: {err}"
    );
}

fn count(url: &str, table: &str) -> u64 {
    query(url, &format!("SELECT count(*) FROM {table}"))
        .trim()
        .parse()
        .unwrap_or(0)
}

/// The reference schema's tables, in the order rows refer to each other.
const TABLES: &[&str] = &[
    "locations",
    "vehicles",
    "customers",
    "reservations",
    "payments",
];

/// Every row of every table, every column, as the database's own client prints them: the state a
/// test compares whole, not through counts or evaluation aggregates.
fn contents(url: &str) -> String {
    let mut out = String::new();
    for t in TABLES {
        out += &format!("-- {t}\n");
        out += &query(url, &format!("SELECT * FROM {t} ORDER BY id"));
    }
    out
}

/// What apply did to the database, row by row: per table, each row it changed as it was (`-`)
/// and as it is (`+`), and each row it added (`+`), every column, ordered by key. Times at or
/// after `applied_from` (a column the mapping fills with the time of apply) read `<apply time>`,
/// so that the state can be compared with a file written on another day.
fn applied_rows(before: &str, after: &str, applied_from: &str) -> String {
    fn sections(s: &str) -> Vec<(&str, Vec<&str>)> {
        let mut out: Vec<(&str, Vec<&str>)> = Vec::new();
        for line in s.lines() {
            match line.strip_prefix("-- ") {
                Some(table) => out.push((table, Vec::new())),
                None => out.last_mut().expect("a table first").1.push(line),
            }
        }
        out
    }
    let mask = |line: &str| -> String {
        let sep = if line.contains('|') { '|' } else { '\t' };
        line.split(sep)
            .map(|field| {
                let b = field.as_bytes();
                let looks_like_time =
                    b.len() >= 19 && b[4] == b'-' && b[7] == b'-' && b[13] == b':';
                if looks_like_time && field[..19].replace('T', " ").as_str() >= applied_from {
                    "<apply time>".to_string()
                } else {
                    field.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(&sep.to_string())
    };
    let key = |line: &str| -> u64 {
        line.split(['|', '\t'])
            .next()
            .and_then(|k| k.parse().ok())
            .unwrap_or(0)
    };
    let mut out = String::new();
    let before = sections(before);
    for (table, rows) in sections(after) {
        let old: &[&str] = before
            .iter()
            .find(|(t, _)| *t == table)
            .map_or(&[], |(_, r)| r.as_slice());
        let mut diff: Vec<(u64, char, String)> = Vec::new();
        for r in old.iter().filter(|r| !rows.contains(r)) {
            diff.push((key(r), '-', r.to_string()));
        }
        for r in rows.iter().filter(|r| !old.contains(r)) {
            diff.push((key(r), '+', mask(r)));
        }
        // A changed row as it was, then as it is.
        diff.sort_by_key(|a| (a.0, a.1 == '+'));
        out += &format!("-- {table}: {} rows\n", rows.len());
        for (_, sign, row) in diff {
            out += &format!("{sign} {row}\n");
        }
    }
    out
}

/// The applied state compared whole with the file kept for this run (under
/// tests/fixtures/apply/): a change applied wrongly, partly or not at all shows as a difference
/// in the rows themselves.
fn assert_applied(url: &str, before: &str, applied_from: &str, file: &str) {
    let got = applied_rows(before, &contents(url), applied_from);
    expect_test::expect_file![format!("fixtures/apply/{file}")].assert_eq(&got);
}

/// PostgreSQL's sequences and where they stand; nothing on the other databases.
fn sequences(url: &str) -> String {
    if url.starts_with("postgres://") {
        query(
            url,
            "SELECT sequencename, last_value FROM pg_sequences ORDER BY sequencename",
        )
    } else {
        String::new()
    }
}

fn plan(incident: &Path, url: &str, out: &Path) -> serde_json::Value {
    plan_incident(incident, url, out, &[]);
    serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap()
}

fn accepted(plan: &serde_json::Value) -> Vec<&serde_json::Value> {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["decision"] == "accepted")
        .collect()
}

/// The whole round trip on one database.
fn round_trip(incident: &Path, url: &str, work: &Path, applied: &str) {
    let truth = incident.join("truth.db");
    let before = tables(&evaluate_json(&truth, url));
    let plan_path = work.join("plan.json");
    let p = plan(incident, url, &plan_path);
    let ok = accepted(&p);
    assert!(ok.len() > 50, "a plan with accepted changes: {}", ok.len());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&plan_path).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "the plan is readable by its owner only"
        );
    }

    // A dry run does everything and keeps nothing: not a row, not a sequence value.
    let rows_before = contents(url);
    let sequences_before = sequences(url);
    let out = gapfill_ok(&[
        "apply",
        plan_path.to_str().unwrap(),
        "--db",
        url,
        "--dry-run",
    ]);
    assert!(out.contains("dry run"), "{out}");
    assert_eq!(contents(url), rows_before, "a dry run leaves nothing");
    assert_eq!(
        sequences(url),
        sequences_before,
        "a dry run takes no sequence values"
    );

    // Apply. Times a day before now are later than anything the simulator wrote.
    let applied_from = (chrono::Utc::now() - chrono::Duration::days(1))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    let undo = work.join("undo.sql");
    let out = gapfill_ok(&[
        "apply",
        plan_path.to_str().unwrap(),
        "--db",
        url,
        "--yes",
        "--undo",
        undo.to_str().unwrap(),
    ]);
    assert!(
        out.contains(&format!("applied {} of {}", ok.len(), ok.len())),
        "{out}"
    );
    assert_applied(url, &rows_before, &applied_from, applied);
    let applied = evaluate_json(&truth, url);
    let total = &applied["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "reservations")
        .unwrap()
        .clone();
    assert!(total["recovered"].as_u64().unwrap() > 0, "{total}");
    for t in applied["tables"].as_array().unwrap() {
        assert_eq!(
            t["pre_restore_corrupted"], 0,
            "no pre-restore row altered: {t}"
        );
        assert_eq!(t["duplicates"], 0, "{t}");
    }
    assert_eq!(
        count(url, "gapfill_audit"),
        ok.len() as u64,
        "one audit row per change"
    );

    // The same plan again changes nothing and says so.
    let out = gapfill_ok(&["apply", plan_path.to_str().unwrap(), "--db", url, "--yes"]);
    assert!(out.contains("nothing to do"), "{out}");
    assert_eq!(evaluate_json(&truth, url)["tables"], applied["tables"]);

    // The undo script restores the before-state exactly.
    let script = std::fs::read_to_string(&undo).unwrap();
    let script = if url.starts_with("postgres://") {
        // A person's session, not apply's: the test guard lets it through.
        format!("SET gapfill.guard = 'off';\n{script}")
    } else {
        script
    };
    sql(url, &script);
    assert_eq!(
        contents(url),
        rows_before,
        "undo restores every row exactly"
    );
    assert_eq!(
        tables(&evaluate_json(&truth, url)),
        before,
        "undo restores the before-state"
    );
    assert_eq!(count(url, "gapfill_audit"), 0);

    // A plan whose rows changed since it was made is refused, naming the row, and nothing of it
    // is applied.
    let p = plan(incident, url, &plan_path);
    // Someone changes, behind the plan's back, a column the plan's update of that row changes.
    let (update, column) = accepted(&p)
        .into_iter()
        .filter(|c| c["op"] == "update" && c["table"] == "reservations")
        .find_map(|c| {
            let cols = c["columns"].as_array().unwrap();
            ["status", "pickup_at", "return_at", "total_minor"]
                .into_iter()
                .find(|name| cols.iter().any(|x| x["column"] == *name))
                .map(|name| (c, name))
        })
        .expect("an accepted update of a reservation");
    let key = update["key"].as_str().unwrap();
    let set = match column {
        "status" => "status = 'no_show'".to_string(),
        "total_minor" => "total_minor = total_minor + 1".to_string(),
        // Text in SQLite, timestamps on the servers: the same instant a year on, written in the
        // form each reads.
        other if url.starts_with("sqlite://") => format!("{other} = '2030-01-01T00:00:00Z'"),
        other => format!("{other} = '2030-01-01 00:00:00'"),
    };
    sql(
        url,
        &format!("UPDATE reservations SET {set} WHERE id = {key}"),
    );
    let touched = tables(&evaluate_json(&truth, url));
    let out = gapfill(&["apply", plan_path.to_str().unwrap(), "--db", url, "--yes"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stale"), "{err}");
    assert!(err.contains(&format!("reservations id={key}")), "{err}");
    assert!(err.contains(column), "{err}");
    assert_eq!(
        tables(&evaluate_json(&truth, url)),
        touched,
        "nothing applied"
    );
    assert_eq!(count(url, "gapfill_audit"), 0);
}

#[test]
fn apply_on_sqlite() {
    let (dir, incident) = incident(31, 80, "low");
    let db = dir.path().join("work.db");
    std::fs::copy(incident.join("restored.db"), &db).unwrap();
    round_trip(
        &incident,
        &sqlite_url(&db),
        dir.path(),
        "applied.sqlite.txt",
    );
}

/// Makes the database itself refuse DELETE, TRUNCATE and DROP, so that a run of apply proves it
/// issues none: statement triggers on every table and an event trigger on drops. The undo script,
/// which a person runs, turns the guard off for its own session first.
fn forbid_destructive_statements(url: &str) {
    sql(
        url,
        r#"
CREATE FUNCTION gapfill_test_forbid() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('gapfill.guard', true) IS DISTINCT FROM 'off' THEN
    RAISE EXCEPTION 'destructive statement % on %', TG_OP, TG_TABLE_NAME;
  END IF;
  RETURN NULL;
END $$;
CREATE FUNCTION gapfill_test_forbid_drop() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('gapfill.guard', true) IS DISTINCT FROM 'off' THEN
    RAISE EXCEPTION 'DROP refused';
  END IF;
END $$;
CREATE EVENT TRIGGER gapfill_test_no_drop ON sql_drop EXECUTE FUNCTION gapfill_test_forbid_drop();
DO $$
DECLARE t record;
BEGIN
  FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' LOOP
    EXECUTE format('CREATE TRIGGER gapfill_test_no_delete BEFORE DELETE OR TRUNCATE ON %I FOR EACH STATEMENT EXECUTE FUNCTION gapfill_test_forbid()', t.tablename);
  END LOOP;
END $$;
"#,
    );
}

#[test]
fn apply_on_postgres() {
    let Some(base) = server("GAPFILL_TEST_POSTGRES") else {
        return;
    };
    let (dir, incident) = incident(32, 80, "low");
    let (url, _guard) = postgres_db(&base, "apply", &incident.join("restored.postgres.sql"));
    round_trip(&incident, &url, dir.path(), "applied.postgres.txt");
}

/// No code path of apply emits DELETE, DROP or TRUNCATE: the database refuses them, and a whole
/// round trip (dry run, apply, re-apply, stale refusal) still succeeds. The audit table apply
/// creates gets the same guard as soon as it exists.
#[test]
fn apply_never_deletes_drops_or_truncates() {
    let Some(base) = server("GAPFILL_TEST_POSTGRES") else {
        return;
    };
    let (dir, incident) = incident(35, 60, "medium");
    let (url, _guard) = postgres_db(&base, "guarded", &incident.join("restored.postgres.sql"));
    sql(
        &url,
        "CREATE TABLE gapfill_audit (plan_id TEXT NOT NULL, change_id TEXT NOT NULL, plan_hash TEXT NOT NULL, table_name TEXT NOT NULL, row_key TEXT NOT NULL, operation TEXT NOT NULL, evidence TEXT NOT NULL, applied_at TEXT NOT NULL, PRIMARY KEY (plan_id, change_id))",
    );
    forbid_destructive_statements(&url);
    // The guard works: a DELETE is refused.
    let probe = Command::new("psql")
        .args([&url, "-q", "-c", "DELETE FROM payments WHERE id = -1"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&probe.stderr).contains("destructive statement"));
    round_trip(&incident, &url, dir.path(), "applied.postgres-guarded.txt");
}

/// The only destructive SQL text in the product is the undo script's, which apply writes to a
/// file for a person; the simulator writes its own databases.
#[test]
fn destructive_sql_appears_only_in_the_undo_script() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![src.clone()];
    let mut found = Vec::new();
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if p.file_name().unwrap() != "simulate" {
                    stack.push(p);
                }
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            // Unit tests (at the end of a file, after #[cfg(test)]) are not the product's code:
            // they may spell out the undo script they expect.
            let product = text.split("#[cfg(test)]").next().unwrap_or("");
            for (n, line) in product.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                let upper = code.to_uppercase();
                if [
                    "DELETE FROM",
                    "DROP TABLE",
                    "DROP DATABASE",
                    "DROP SCHEMA",
                    "DROP INDEX",
                    "DROP VIEW",
                    "TRUNCATE TABLE",
                    "\"TRUNCATE ",
                ]
                .iter()
                .any(|w| upper.contains(w))
                {
                    found.push(format!(
                        "{}:{}",
                        p.strip_prefix(&src).unwrap().display(),
                        n + 1
                    ));
                }
            }
        }
    }
    found.sort();
    // Both in src/apply/sql.rs: undo_insert and undo_audit, which only build the script's text.
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found.iter().all(|f| f.starts_with("apply/sql.rs:")),
        "{found:?}"
    );
}

#[test]
fn apply_on_mariadb() {
    let Some(base) = server("GAPFILL_TEST_MYSQL") else {
        return;
    };
    let (dir, incident) = incident(33, 80, "low");
    let (url, _guard) = mysql_db(&base, "apply", &incident.join("restored.mysql.sql"));
    round_trip(&incident, &url, dir.path(), "applied.mariadb.txt");
}

/// Without --yes, apply asks for the database's name and does nothing unless it is typed.
#[test]
fn apply_asks_before_writing() {
    let (dir, incident) = incident(34, 40, "low");
    let db = dir.path().join("work.db");
    std::fs::copy(incident.join("restored.db"), &db).unwrap();
    let url = sqlite_url(&db);
    let plan_path = dir.path().join("plan.json");
    plan(&incident, &url, &plan_path);
    let before = tables(&evaluate_json(&incident.join("truth.db"), &url));
    let answer = |text: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gapfill"))
            .args(["apply", plan_path.to_str().unwrap(), "--db", &url])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = answer("prod\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not confirmed"));
    assert_eq!(
        tables(&evaluate_json(&incident.join("truth.db"), &url)),
        before
    );
    let out = answer("work.db\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(
        tables(&evaluate_json(&incident.join("truth.db"), &url)),
        before
    );
}

/// A plan written by hand from one `plan` made against `url`: its schema fingerprint and format,
/// another id, and only `changes`. What apply takes is a plan file, whoever wrote it.
fn plan_with(made: &serde_json::Value, id: &str, changes: Vec<serde_json::Value>) -> String {
    let mut p = made.clone();
    p["id"] = serde_json::json!(id);
    p["changes"] = serde_json::Value::Array(changes);
    p["evidence"] = serde_json::json!({});
    p["unmatched"] = serde_json::json!([]);
    p.to_string()
}

/// One accepted update of one column of an existing row.
fn update(
    id: &str,
    table: &str,
    key: &str,
    column: &str,
    before: &str,
    after: &str,
) -> serde_json::Value {
    serde_json::json!({
        "id": id, "entity": table, "table": table, "op": "update", "key_column": "id",
        "local": null, "key": key,
        "columns": [{"column": column, "before": before,
                     "after": {"kind": "text", "value": after}, "evidence": [], "alternatives": []}],
        "confidence": 1.0, "decision": "accepted", "decided_by": {"by": "auto"}, "reasons": [],
        "depends_on": [], "explanation": [], "evidence": []
    })
}

/// An earlier plan changed a row; a later plan's update of the same row (same entity, same key,
/// so the same change id) is applied, not skipped as "applied before": the audit table knows
/// changes per plan.
fn a_later_plan_changes_a_row_an_earlier_plan_changed(
    url: &str,
    work: &Path,
    made: &serde_json::Value,
) {
    let key = query(url, "SELECT min(id) FROM customers")
        .trim()
        .to_string();
    let name = query(
        url,
        &format!("SELECT full_name FROM customers WHERE id = {key}"),
    )
    .trim_end_matches('\n')
    .to_string();
    let first = work.join("first.json");
    std::fs::write(
        &first,
        plan_with(
            made,
            "plan-first",
            vec![update(
                "cust-same",
                "customers",
                &key,
                "full_name",
                &name,
                "Ada Earlier",
            )],
        ),
    )
    .unwrap();
    gapfill_ok(&["apply", first.to_str().unwrap(), "--db", url, "--yes"]);
    let later = work.join("later.json");
    std::fs::write(
        &later,
        plan_with(
            made,
            "plan-later",
            vec![update(
                "cust-same",
                "customers",
                &key,
                "full_name",
                "Ada Earlier",
                "Ada Later",
            )],
        ),
    )
    .unwrap();
    let out = gapfill_ok(&["apply", later.to_str().unwrap(), "--db", url, "--yes"]);
    assert!(out.contains("applied 1 of 1"), "{out}");
    assert_eq!(
        query(
            url,
            &format!("SELECT full_name FROM customers WHERE id = {key}")
        )
        .trim(),
        "Ada Later"
    );
    // The earlier plan again: its change is its own, already made.
    let out = gapfill_ok(&["apply", first.to_str().unwrap(), "--db", url, "--yes"]);
    assert!(out.contains("nothing to do"), "{out}");
    // A later plan made before the earlier one was applied is refused as stale, never skipped.
    std::fs::write(
        &later,
        plan_with(
            made,
            "plan-stale",
            vec![update(
                "cust-same",
                "customers",
                &key,
                "full_name",
                "Ada Earlier",
                "Ada Other",
            )],
        ),
    )
    .unwrap();
    let out = gapfill(&["apply", later.to_str().unwrap(), "--db", url, "--yes"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("stale") && err.contains("full_name is Ada Later now"),
        "{err}"
    );
}

/// The values an undo script must give back exactly, on every driver: quotes of both kinds,
/// backslashes (escapes on MySQL unless NO_BACKSLASH_ESCAPES), a line break, SQL that would run
/// if it escaped its literal, and characters outside the Basic Multilingual Plane.
const NASTY: &str =
    "O'Brien \\' ; UPDATE customers SET email = 'x' -- \\\\ \"q\" \\n\nŁódź 漢字 😀 \\";

/// The value as hex, read by the database itself, so that nothing the client prints is compared.
fn hex_of(url: &str, table: &str, column: &str, key: &str) -> String {
    let expr = if url.starts_with("postgres://") {
        format!("encode(convert_to({column}, 'UTF8'), 'hex')")
    } else {
        format!("hex({column})")
    };
    query(url, &format!("SELECT {expr} FROM {table} WHERE id = {key}"))
        .trim()
        .to_lowercase()
}

/// A literal the test's own client reads back as `v` exactly, written in hex.
fn hex_literal(url: &str, v: &str) -> String {
    let hex: String = v.bytes().map(|b| format!("{b:02x}")).collect();
    if url.starts_with("postgres://") {
        format!("convert_from(decode('{hex}', 'hex'), 'UTF8')")
    } else if url.starts_with("sqlite://") {
        format!("CAST(X'{hex}' AS TEXT)")
    } else {
        format!("_utf8mb4 X'{hex}'")
    }
}

/// The undo script restores a value with quotes, backslashes and any Unicode byte for byte, and
/// runs without error in the database's own client.
fn undo_restores_any_value(url: &str, work: &Path, made: &serde_json::Value) {
    let key = query(url, "SELECT max(id) FROM customers")
        .trim()
        .to_string();
    let mut nasty = NASTY.to_string();
    if !url.starts_with("postgres://") {
        // PostgreSQL text cannot hold NUL; the others can, and then the undo must too.
        nasty.push('\0');
        nasty.push_str("after NUL");
    }
    sql(
        url,
        &format!(
            "UPDATE customers SET full_name = {} WHERE id = {key};",
            hex_literal(url, &nasty)
        ),
    );
    let want: String = nasty.bytes().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex_of(url, "customers", "full_name", &key), want);
    let p = work.join("nasty.json");
    std::fs::write(
        &p,
        plan_with(
            made,
            "plan-nasty",
            vec![update(
                "cust-nasty",
                "customers",
                &key,
                "full_name",
                &nasty,
                "Plain Name",
            )],
        ),
    )
    .unwrap();
    let undo = work.join("nasty-undo.sql");
    let out = gapfill_ok(&[
        "apply",
        p.to_str().unwrap(),
        "--db",
        url,
        "--yes",
        "--undo",
        undo.to_str().unwrap(),
    ]);
    assert!(out.contains("applied 1 of 1"), "{out}");
    assert_eq!(
        query(
            url,
            &format!("SELECT full_name FROM customers WHERE id = {key}")
        )
        .trim(),
        "Plain Name"
    );
    let script = std::fs::read_to_string(&undo).unwrap();
    assert!(!script.contains('\0'), "the script is text");
    sql(url, &script);
    assert_eq!(
        hex_of(url, "customers", "full_name", &key),
        want,
        "undo gives the value back byte for byte"
    );
}

fn safety_on(url: &str, incident: &Path, work: &Path) {
    let made = plan(incident, url, &work.join("made.json"));
    a_later_plan_changes_a_row_an_earlier_plan_changed(url, work, &made);
    undo_restores_any_value(url, work, &made);
}

#[test]
fn later_plans_and_undo_values_on_sqlite() {
    let (dir, incident) = incident(36, 30, "low");
    let db = dir.path().join("work.db");
    std::fs::copy(incident.join("restored.db"), &db).unwrap();
    safety_on(&sqlite_url(&db), &incident, dir.path());
}

#[test]
fn later_plans_and_undo_values_on_postgres() {
    let Some(base) = server("GAPFILL_TEST_POSTGRES") else {
        return;
    };
    let (dir, incident) = incident(37, 30, "low");
    let (url, _guard) = postgres_db(&base, "later", &incident.join("restored.postgres.sql"));
    safety_on(&url, &incident, dir.path());
}

#[test]
fn later_plans_and_undo_values_on_mariadb() {
    let Some(base) = server("GAPFILL_TEST_MYSQL") else {
        return;
    };
    let (dir, incident) = incident(38, 30, "low");
    let (url, _guard) = mysql_db(&base, "later", &incident.join("restored.mysql.sql"));
    safety_on(&url, &incident, dir.path());
}

/// Applying the automatic part of a plan now and the reviewed rest later is one plan applied
/// twice: the second apply makes only what the first did not, and no row twice.
#[test]
fn a_plan_applied_again_after_more_review_adds_only_the_rest() {
    let (dir, incident) = incident(39, 60, "low");
    let db = dir.path().join("work.db");
    std::fs::copy(incident.join("restored.db"), &db).unwrap();
    let url = sqlite_url(&db);
    let full = dir.path().join("plan.json");
    let p = plan(&incident, &url, &full);
    let all = accepted(&p).len();
    // Held back for review: every payment (nothing depends on a payment).
    let mut held = p.clone();
    let mut n_held = 0;
    for c in held["changes"].as_array_mut().unwrap() {
        if c["table"] == "payments" && c["decision"] == "accepted" {
            c["decision"] = serde_json::json!("needs_review");
            n_held += 1;
        }
    }
    assert!(n_held > 0);
    let partial = dir.path().join("partial.json");
    std::fs::write(&partial, held.to_string()).unwrap();
    let before = count(&url, "payments");
    gapfill_ok(&["apply", partial.to_str().unwrap(), "--db", &url, "--yes"]);
    let out = gapfill_ok(&["apply", full.to_str().unwrap(), "--db", &url, "--yes"]);
    assert!(
        out.contains(&format!(
            "applied {n_held} of {all} accepted changes ({} applied before)",
            all - n_held
        )),
        "{out}"
    );
    let inserted: u64 = p["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["table"] == "payments" && c["op"] == "insert" && c["decision"] == "accepted")
        .count() as u64;
    assert_eq!(
        count(&url, "payments"),
        before + inserted,
        "no payment twice"
    );
    assert_eq!(count(&url, "gapfill_audit"), all as u64);
}

/// A MariaDB URL that sets its own session time zone (`?timezone=`) plans exactly as one that
/// does not, and its plan applies: planning and apply read TIMESTAMP columns in the same zone.
#[test]
fn a_mariadb_session_zone_does_not_change_the_plan() {
    let Some(base) = server("GAPFILL_TEST_MYSQL") else {
        return;
    };
    let (dir, incident) = incident(40, 40, "low");
    let (url, _guard) = mysql_db(&base, "zone", &incident.join("restored.mysql.sql"));
    // TIMESTAMP columns are the ones the session's zone converts.
    sql(
        &url,
        "ALTER TABLE reservations MODIFY pickup_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, MODIFY return_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP;",
    );
    let zoned = format!("{url}?timezone=%2B05%3A00");
    let a = dir.path().join("utc.json");
    let b = dir.path().join("zoned.json");
    plan_incident(&incident, &url, &a, &[]);
    plan_incident(&incident, &zoned, &b, &[]);
    assert!(
        std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
        "the session's zone changed the plan"
    );
    gapfill_ok(&["apply", b.to_str().unwrap(), "--db", &zoned, "--yes"]);
}

/// Invariant 7: the same inputs, mapping and options give the same plan bytes, from another copy
/// of the database and at another time; the report too.
#[test]
fn the_same_inputs_give_the_same_plan_bytes() {
    let (dir, incident) = incident(43, 60, "medium");
    let a = dir.path().join("a.db");
    let b = dir.path().join("b.db");
    std::fs::copy(incident.join("restored.db"), &a).unwrap();
    std::fs::copy(incident.join("restored.db"), &b).unwrap();
    let run = |db: &Path, tag: &str| {
        let plan = dir.path().join(format!("{tag}.json"));
        let report = dir.path().join(format!("{tag}.html"));
        plan_incident(
            &incident,
            &sqlite_url(db),
            &plan,
            &["--report", report.to_str().unwrap()],
        );
        (std::fs::read(plan).unwrap(), std::fs::read(report).unwrap())
    };
    let first = run(&a, "first");
    let again = run(&a, "again");
    let other = run(&b, "other");
    assert!(first.0 == again.0, "two runs gave different plans");
    assert!(
        first.0 == other.0,
        "another copy of the database gave another plan"
    );
    assert!(first.1 == again.1, "two runs gave different reports");
    let p: serde_json::Value = serde_json::from_slice(&first.0).unwrap();
    assert!(p["id"].as_str().unwrap().starts_with("plan-"));
}
