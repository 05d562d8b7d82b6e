//! Anyone can send the business an email: a booking mail from a sender the mapping does not
//! trust never changes an existing row by itself (issue 24, item 5). The same schema.org
//! cancellation of an existing booking is held for review from a stranger, and from a sender
//! whose receiving server says it is forged, and accepted from the booking system.

mod common;

use std::path::Path;

use common::*;

/// An existing confirmed booking with its pick-up still ahead: its key and code.
fn a_confirmed_booking(db: &Path) -> (String, String) {
    let row = query(
        &sqlite_url(db),
        "SELECT id, booking_code FROM reservations WHERE status = 'confirmed' \
         ORDER BY pickup_at DESC LIMIT 1",
    );
    let (id, code) = row.trim().split_once('|').unwrap();
    (id.into(), code.into())
}

/// A markup-only cancellation of `code`, as booking sites send them, from `from`.
fn cancellation(from: &str, code: &str, auth: Option<&str>) -> String {
    let auth = auth
        .map(|a| format!("Authentication-Results: mx.rentico.example; {a}\n"))
        .unwrap_or_default();
    format!(
        "From MAILER-DAEMON Fri Sep 11 10:00:00 2026\n\
         {auth}From: Bookings <{from}>\n\
         To: bookings@rentico.example\n\
         Subject: Your reservation update\n\
         Date: Fri, 11 Sep 2026 10:00:00 +0000\n\
         Message-ID: <cancel-{code}@mail.example>\n\
         MIME-Version: 1.0\n\
         Content-Type: text/html; charset=utf-8\n\
         \n\
         <html><head><script type=\"application/ld+json\">\n\
         {{\"@context\": \"http://schema.org\", \"@type\": \"RentalCarReservation\",\n\
          \"reservationNumber\": \"{code}\", \"reservationStatus\": \"http://schema.org/ReservationCancelled\"}}\n\
         </script></head><body><p>Your reservation {code} has been cancelled.</p></body></html>\n\n"
    )
}

/// A markup-only message from `from` about a booking the business does not have, naming its
/// guest: a new customer, if anyone may make one.
fn new_guest(from: &str) -> String {
    format!(
        "From MAILER-DAEMON Fri Sep 11 11:00:00 2026\n\
         From: Reservations <{from}>\n\
         To: bookings@rentico.example\n\
         Subject: Reservation update\n\
         Date: Fri, 11 Sep 2026 11:00:00 +0000\n\
         Message-ID: <guest-{from}>\n\
         MIME-Version: 1.0\n\
         Content-Type: text/html; charset=utf-8\n\
         \n\
         <html><head><script type=\"application/ld+json\">\n\
         {{\"@context\": \"http://schema.org\", \"@type\": \"RentalCarReservation\",\n\
          \"reservationNumber\": \"RC-ZZZ999\", \"reservationStatus\": \"http://schema.org/ReservationCancelled\",\n\
          \"underName\": {{\"@type\": \"Person\", \"name\": \"Eve Mallory\", \"email\": \"eve.mallory@example.net\"}}}}\n\
         </script></head><body><p>Cancelled.</p></body></html>\n\n"
    )
}

/// The plan's inserts of customers, with a mapping that dates a customer by any booking mail
/// (the reference one takes it from confirmations only): each one's decision and reasons.
fn customer_inserts(incident: &Path, work: &Path, tag: &str, mbox: &str) -> Vec<(String, String)> {
    let path = work.join(format!("{tag}.mbox"));
    std::fs::write(&path, mbox).unwrap();
    let reference = std::fs::read_to_string(incident.join("mapping.toml")).unwrap();
    let dated = r#"kinds = ["customer", "signup", "confirmation", "event"]"#;
    assert!(reference.contains(dated));
    let mapping = work.join("any-mail-dates.toml");
    std::fs::write(
        &mapping,
        reference.replace(
            dated,
            r#"kinds = ["customer", "signup", "confirmation", "cancellation", "event"]"#,
        ),
    )
    .unwrap();
    let p = plan_json(
        &mapping,
        &sqlite_url(&incident.join("restored.db")),
        &[("--mail", &path)],
        &work.join(format!("{tag}.json")),
    );
    p["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["table"] == "customers" && c["op"] == "insert")
        .map(|c| {
            (
                c["decision"].as_str().unwrap().to_string(),
                c["reasons"].to_string(),
            )
        })
        .collect()
}

/// The plan's change to the booking's status: its decision and reasons.
fn status_change(
    incident: &Path,
    work: &Path,
    tag: &str,
    mbox: &str,
    key: &str,
) -> (String, String) {
    let path = work.join(format!("{tag}.mbox"));
    std::fs::write(&path, mbox).unwrap();
    let p = plan_json(
        &incident.join("mapping.toml"),
        &sqlite_url(&incident.join("restored.db")),
        &[("--mail", &path)],
        &work.join(format!("{tag}.json")),
    );
    let change =
        p["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| {
                c["table"] == "reservations"
                    && c["key"] == key
                    && c["columns"].as_array().unwrap().iter().any(|col| {
                        col["column"] == "status" && col["after"]["value"] == "cancelled"
                    })
            })
            .unwrap_or_else(|| panic!("{tag}: no cancellation of reservation {key} planned"));
    (
        change["decision"].as_str().unwrap().to_string(),
        change["reasons"].to_string(),
    )
}

#[test]
fn a_strangers_cancellation_is_held_for_review_and_the_booking_systems_is_accepted() {
    let (dir, incident) = incident(48, 40, "low");
    let (key, code) = a_confirmed_booking(&incident.join("restored.db"));
    let work = dir.path();

    let (decision, reasons) = status_change(
        &incident,
        work,
        "stranger",
        &cancellation("no-reply@cheap-rentals.example", &code, None),
        &key,
    );
    assert_eq!(decision, "needs_review", "{reasons}");
    assert!(
        reasons.contains("no-reply@cheap-rentals.example"),
        "{reasons}"
    );

    let (decision, reasons) = status_change(
        &incident,
        work,
        "forged",
        &cancellation(
            "bookings@rentico.example",
            &code,
            Some("spf=fail smtp.mailfrom=cheap-rentals.example; dmarc=fail header.from=rentico.example"),
        ),
        &key,
    );
    assert_eq!(decision, "needs_review", "{reasons}");
    assert!(reasons.contains("forged"), "{reasons}");

    let (decision, reasons) = status_change(
        &incident,
        work,
        "own",
        &cancellation(
            "bookings@rentico.example",
            &code,
            Some("spf=pass smtp.mailfrom=rentico.example; dmarc=pass header.from=rentico.example"),
        ),
        &key,
    );
    assert_eq!(decision, "accepted", "{reasons}");
}

/// What a stranger may not change, a stranger may not make either: a customer known only from a
/// stranger's mail is held for review; the same from the booking system is made.
#[test]
fn a_customer_only_a_stranger_names_is_held_for_review() {
    let (dir, incident) = incident(50, 30, "low");
    let work = dir.path();
    let held = customer_inserts(
        &incident,
        work,
        "stranger",
        &new_guest("offers@cheap-rentals.example"),
    );
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].0, "needs_review", "{held:?}");
    assert!(
        held[0].1.contains("offers@cheap-rentals.example"),
        "{held:?}"
    );
    let made = customer_inserts(
        &incident,
        work,
        "own",
        &new_guest("bookings@rentico.example"),
    );
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!(made[0].0, "accepted", "{made:?}");
}
