//! `gapfill evaluate` against SQLite: the restored backup recovers nothing and corrupts nothing;
//! the truth against itself is perfect.

mod common;

use common::*;

#[test]
fn restored_backup_recovers_no_gap_row_and_corrupts_nothing() {
    let (_dir, out) = incident(7, 150, "medium");
    let r = evaluate_json(&out.join("truth.db"), &sqlite_url(&out.join("restored.db")));
    let total = &r["total"];
    assert!(total["gap_rows"].as_u64().unwrap() > 150, "{total}");
    assert_eq!(total["recovered"], 0);
    assert_eq!(total["recall"], 0.0);
    assert_eq!(total["pre_restore_corrupted"], 0);
    assert_eq!(total["pre_restore_missing"], 0);
    assert_eq!(total["duplicates"], 0);
    assert_eq!(total["wrong_merges"], 0);
    // Nothing beyond the backup's own rows, so precision has nothing to measure.
    assert_eq!(total["precision"], serde_json::Value::Null);
    for t in r["tables"].as_array().unwrap() {
        assert_eq!(t["pre_restore_corrupted"], 0, "{}", t["table"]);
    }
    let reservations = r["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "reservations")
        .unwrap();
    assert_eq!(reservations["gap_new"], 150);
    assert!(
        reservations["gap_changed"].as_u64().unwrap() > 0,
        "reservations completed or cancelled in the gap"
    );
    assert!(
        reservations["gap_with_evidence"].as_u64().unwrap() > 140,
        "{reservations}"
    );
}

#[test]
fn truth_against_itself_is_perfect() {
    let (_dir, out) = incident(3, 100, "high");
    let r = evaluate_json(&out.join("truth.db"), &sqlite_url(&out.join("truth.db")));
    for t in r["tables"].as_array().unwrap().iter().chain([&r["total"]]) {
        for metric in ["recall", "precision", "field_accuracy"] {
            if !t[metric].is_null() {
                assert_eq!(t[metric], 1.0, "{} {metric}", t["table"]);
            }
        }
        assert_eq!(t["duplicates"], 0);
        assert_eq!(t["unmatched"], 0);
    }
    assert_eq!(r["total"]["recall"], 1.0);
}

#[test]
fn text_report_shows_every_table_and_measure() {
    let (_dir, out) = incident(3, 40, "low");
    let text = gapfill_ok(&[
        "evaluate",
        "--truth",
        out.join("truth.db").to_str().unwrap(),
        "--db",
        &sqlite_url(&out.join("restored.db")),
    ]);
    for word in [
        "reservations",
        "customers",
        "payments",
        "recall",
        "corrupted",
    ] {
        assert!(text.contains(word), "{word} missing from:\n{text}");
    }
}

#[test]
fn a_database_that_is_not_a_truth_is_refused_clearly() {
    let (_dir, out) = incident(3, 30, "low");
    let r = gapfill(&[
        "evaluate",
        "--truth",
        out.join("restored.db").to_str().unwrap(),
        "--db",
        &sqlite_url(&out.join("restored.db")),
    ]);
    assert_eq!(r.status.code(), Some(1));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("is not a truth database written by `gapfill simulate`"),
        "{err}"
    );
    let r = gapfill(&[
        "evaluate",
        "--truth",
        out.join("truth.db").to_str().unwrap(),
        "--db",
        "postgres://app:hunter2@127.0.0.1:1/none",
    ]);
    assert_eq!(r.status.code(), Some(1));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("cannot connect to postgres://app:***@127.0.0.1:1/none"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "the password leaked: {err}");
}

/// A reconstruction with known mistakes, one of each kind, and the exact counts they must give.
#[tokio::test]
async fn each_kind_of_mistake_is_counted_once() {
    use sqlx::{Connection, Row, SqliteConnection};

    let (_dir, out) = incident(9, 60, "low");
    let recon = out.join("recon.db");
    std::fs::copy(out.join("truth.db"), &recon).unwrap();
    let mut db = SqliteConnection::connect(&format!("sqlite://{}", recon.display()))
        .await
        .unwrap();
    let rp: String = sqlx::query("SELECT value FROM _gapfill_incident WHERE key = 'restore_point'")
        .fetch_one(&mut db)
        .await
        .unwrap()
        .get(0);
    let ids = |sql: &str| sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.replace("RP", &rp)));

    // Two new reservations of two different new customers.
    let new_res = ids("SELECT r.id FROM reservations r JOIN customers c ON c.id = r.customer_id \
                       WHERE r.created_at >= 'RP' AND c.created_at >= 'RP' \
                       AND (SELECT count(*) FROM reservations x WHERE x.customer_id = c.id) = 1 ORDER BY r.id")
        .fetch_all(&mut db)
        .await
        .unwrap();
    assert!(
        new_res.len() >= 3,
        "the incident needs a few new customers with one booking each"
    );
    // 1. A duplicate: the first new reservation again under another code (found by vehicle and pickup).
    sqlx::query(
        "INSERT INTO reservations (booking_code, customer_id, vehicle_id, pickup_location_id, return_location_id, \
         pickup_at, return_at, status, total_minor, currency, created_at, updated_at) \
         SELECT 'RC-DUPLIC', customer_id, vehicle_id, pickup_location_id, return_location_id, pickup_at, return_at, \
         status, total_minor, currency, created_at, updated_at FROM reservations WHERE id = ?",
    )
    .bind(new_res[0])
    .execute(&mut db)
    .await
    .unwrap();
    // 2. A wrong merge: the second new reservation given to the third one's customer.
    sqlx::query("UPDATE reservations SET customer_id = (SELECT customer_id FROM reservations WHERE id = ?) WHERE id = ?")
        .bind(new_res[2])
        .bind(new_res[1])
        .execute(&mut db)
        .await
        .unwrap();
    // 3. A pre-restore row untouched in the gap, corrupted.
    let old = ids("SELECT id FROM reservations WHERE created_at < 'RP' AND updated_at < 'RP' ORDER BY id LIMIT 1")
        .fetch_one(&mut db)
        .await
        .unwrap();
    sqlx::query("UPDATE reservations SET total_minor = total_minor + 1 WHERE id = ?")
        .bind(old)
        .execute(&mut db)
        .await
        .unwrap();
    // 4. A new payment never recovered.
    let lost = ids("SELECT id FROM payments WHERE created_at >= 'RP' ORDER BY id LIMIT 1")
        .fetch_one(&mut db)
        .await
        .unwrap();
    sqlx::query("DELETE FROM payments WHERE id = ?")
        .bind(lost)
        .execute(&mut db)
        .await
        .unwrap();
    // 5. A customer nobody ever was.
    sqlx::query("INSERT INTO customers (full_name, email, created_at, updated_at) VALUES ('No Body', 'nobody@example.com', ?, ?)")
        .bind(&rp)
        .bind(&rp)
        .execute(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();

    let r = evaluate_json(&out.join("truth.db"), &sqlite_url(&recon));
    let table = |name: &str| {
        r["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"] == name)
            .unwrap()
            .clone()
    };
    let (res, cus, pay) = (table("reservations"), table("customers"), table("payments"));
    assert_eq!(res["duplicates"], 1, "{res}");
    assert_eq!(res["pre_restore_corrupted"], 1, "{res}");
    assert_eq!(
        res["proposed"].as_u64().unwrap(),
        res["correct"].as_u64().unwrap() + 1,
        "the duplicate lowers precision"
    );
    assert_eq!(cus["wrong_merges"], 1, "{cus}");
    assert_eq!(cus["unmatched"], 1, "{cus}");
    assert_eq!(
        cus["proposed"].as_u64().unwrap(),
        cus["correct"].as_u64().unwrap() + 1
    );
    assert_eq!(
        pay["recovered"].as_u64().unwrap() + 1,
        pay["gap_rows"].as_u64().unwrap(),
        "{pay}"
    );
    let customer_id = res["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["column"] == "customer_id")
        .unwrap();
    assert_eq!(
        customer_id["equal"].as_u64().unwrap() + 1,
        customer_id["compared"].as_u64().unwrap(),
        "one reservation points at the wrong customer"
    );
    for t in ["locations", "vehicles", "customers", "payments"] {
        assert_eq!(table(t)["pre_restore_corrupted"], 0, "{t}");
    }
}
