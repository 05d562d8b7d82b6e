//! The simulated business: a year and more of locations, vehicles, customers, reservations and
//! payments, each with the history of its changes. Every other part of the simulator reads this;
//! the database writers take states at a point in time, the evidence writers take the changes
//! that happened in the gap.

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use std::collections::BTreeMap;

use super::names::{self, LocationSpec, LOCATIONS, MODELS};
use super::noise::Noise;
use super::rng::{Rng, BASE62};

#[derive(Debug, Clone)]
pub struct Location {
    pub id: i64,
    pub spec: &'static LocationSpec,
    pub tz: Tz,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct Vehicle {
    pub id: i64,
    pub plate: String,
    pub make: &'static str,
    pub model: &'static str,
    pub category: &'static str,
    pub home_location_id: i64,
    pub daily_rate_minor: i64,
    pub currency: &'static str,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct Customer {
    pub id: i64,
    pub first_name: String,
    /// Index into `names::FIRST_NAMES`, for nicknames.
    pub first_name_index: usize,
    pub last_name: String,
    pub email: String,
    /// E.164, as the application stores it.
    pub phone: Option<String>,
    pub country: &'static str,
    pub stripe_customer_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl Customer {
    pub fn full_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
    }
    pub fn nicknames(&self) -> &'static [&'static str] {
        names::FIRST_NAMES[self.first_name_index].1
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Confirmed,
    Cancelled,
    Completed,
    NoShow,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Confirmed => "confirmed",
            Status::Cancelled => "cancelled",
            Status::Completed => "completed",
            Status::NoShow => "no_show",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Booked,
    Modified,
    Cancelled,
    NoShow,
    Completed,
}

/// A reservation as it stood after one change.
#[derive(Debug, Clone)]
pub struct ResVersion {
    pub at: DateTime<Utc>,
    pub change: Change,
    pub vehicle_id: i64,
    pub pickup_location_id: i64,
    pub return_location_id: i64,
    pub pickup_at: DateTime<Utc>,
    pub return_at: DateTime<Utc>,
    pub status: Status,
    pub total_minor: i64,
}

#[derive(Debug, Clone)]
pub struct Reservation {
    pub id: i64,
    pub code: String,
    pub customer_id: i64,
    pub currency: &'static str,
    pub created_at: DateTime<Utc>,
    /// In time order; the first is the booking. Only changes up to the incident exist.
    pub versions: Vec<ResVersion>,
}

impl Reservation {
    /// The reservation as the database held it at `t`, if it existed then. The state at `t` is
    /// everything that happened strictly before it, matching the gap [restore point, incident).
    pub fn at(&self, t: DateTime<Utc>) -> Option<&ResVersion> {
        self.versions.iter().rev().find(|v| v.at < t)
    }
    pub fn latest(&self) -> &ResVersion {
        self.versions
            .last()
            .expect("a reservation has its booking version")
    }
}

#[derive(Debug, Clone)]
pub struct Refund {
    pub id: String,
    pub amount_minor: i64,
    pub at: DateTime<Utc>,
    pub reason: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentKind {
    /// Paid when booking.
    Booking,
    /// The difference after a modification that made the rental dearer.
    Supplement,
}

#[derive(Debug, Clone)]
pub struct Payer {
    pub name: String,
    pub email: String,
    /// False when a partner or a company paid.
    pub is_customer: bool,
}

#[derive(Debug, Clone)]
pub struct Card {
    pub brand: &'static str,
    pub last4: String,
    pub exp_month: u32,
    pub exp_year: i32,
    pub country: &'static str,
    pub fingerprint: String,
}

#[derive(Debug, Clone)]
pub struct FailedAttempt {
    pub charge_id: String,
    pub at: DateTime<Utc>,
    pub decline_code: &'static str,
    pub card: Card,
}

#[derive(Debug, Clone)]
pub struct Payment {
    pub id: i64,
    pub reservation_id: i64,
    pub customer_id: i64,
    pub kind: PaymentKind,
    pub payment_intent_id: String,
    pub charge_id: String,
    pub checkout_session_id: Option<String>,
    pub amount_minor: i64,
    pub currency: &'static str,
    /// When the charge succeeded: the row's `paid_at` and `created_at`.
    pub paid_at: DateTime<Utc>,
    pub refunds: Vec<Refund>,
    pub payer: Payer,
    pub card: Card,
    pub failed_before: Option<FailedAttempt>,
    /// Whether Stripe metadata and description carry the booking code.
    pub code_in_stripe: bool,
    pub receipt_number: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentStatus {
    Succeeded,
    PartiallyRefunded,
    Refunded,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Succeeded => "succeeded",
            PaymentStatus::PartiallyRefunded => "partially_refunded",
            PaymentStatus::Refunded => "refunded",
        }
    }
}

impl Payment {
    pub fn refunded_at(&self, t: DateTime<Utc>) -> i64 {
        self.refunds
            .iter()
            .filter(|r| r.at < t)
            .map(|r| r.amount_minor)
            .sum()
    }
    pub fn status_at(&self, t: DateTime<Utc>) -> PaymentStatus {
        match self.refunded_at(t) {
            0 => PaymentStatus::Succeeded,
            r if r >= self.amount_minor => PaymentStatus::Refunded,
            _ => PaymentStatus::PartiallyRefunded,
        }
    }
    pub fn updated_at(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        self.refunds
            .iter()
            .filter(|r| r.at < t)
            .map(|r| r.at)
            .max()
            .unwrap_or(self.paid_at)
    }
}

/// A Stripe charge that belongs to no reservation: a gift voucher, a parking fine passed on.
#[derive(Debug, Clone)]
pub struct UnrelatedCharge {
    pub payment_intent_id: String,
    pub charge_id: String,
    pub amount_minor: i64,
    pub currency: &'static str,
    pub at: DateTime<Utc>,
    pub description: String,
    pub payer: Payer,
    pub card: Card,
}

#[derive(Debug, Clone)]
pub struct World {
    pub seed: u64,
    pub business_start: DateTime<Utc>,
    pub restore_point: DateTime<Utc>,
    pub incident_at: DateTime<Utc>,
    pub locations: Vec<Location>,
    pub vehicles: Vec<Vehicle>,
    pub customers: Vec<Customer>,
    pub reservations: Vec<Reservation>,
    pub payments: Vec<Payment>,
    pub unrelated_charges: Vec<UnrelatedCharge>,
}

impl World {
    pub fn location(&self, id: i64) -> &Location {
        &self.locations[(id - 1) as usize]
    }
    pub fn vehicle(&self, id: i64) -> &Vehicle {
        &self.vehicles[(id - 1) as usize]
    }
    pub fn customer(&self, id: i64) -> &Customer {
        &self.customers[(id - 1) as usize]
    }
    pub fn reservation(&self, id: i64) -> &Reservation {
        &self.reservations[(id - 1) as usize]
    }
    pub fn in_gap(&self, t: DateTime<Utc>) -> bool {
        t >= self.restore_point && t < self.incident_at
    }
    /// Payments of each reservation, by reservation id. Only tests use it: the writers keep
    /// compact indexes of their own, since a Vec per reservation costs gigabytes at scale.
    #[cfg(test)]
    pub fn payments_by_reservation(&self) -> Vec<Vec<usize>> {
        let mut out = vec![Vec::new(); self.reservations.len()];
        for (i, p) in self.payments.iter().enumerate() {
            out[(p.reservation_id - 1) as usize].push(i);
        }
        out
    }
}

/// The moment of the incident. Fixed, not the clock's time, so that a seed always gives the same
/// incident.
pub fn default_incident_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 9, 14, 8, 41, 0).unwrap()
}

pub struct Params {
    pub seed: u64,
    pub noise: Noise,
    /// Reservations created in the gap; the history before it has the same daily rate.
    pub gap_reservations: u64,
    pub gap_days: u32,
    pub incident_at: DateTime<Utc>,
}

/// Share of bookings made by someone who has booked before.
const RETURNING_SHARE: f64 = 0.35;
const MODIFY_SHARE: f64 = 0.15;
const CANCEL_SHARE: f64 = 0.08;
const NO_SHOW_SHARE: f64 = 0.03;
const GUEST_CHECKOUT_SHARE: f64 = 0.10;

pub fn generate(p: &Params) -> World {
    let mut rng = Rng::fork(p.seed, "world");
    let incident_at = p.incident_at;
    // Backups ran nightly at 02:00 UTC; the restored one is `gap_days` old.
    let restore_point = (incident_at - Duration::days(i64::from(p.gap_days)))
        .with_hour(2)
        .and_then(|t| t.with_minute(0))
        .expect("02:00 exists in UTC");
    let history_days = 365 + 30;
    let business_start = restore_point - Duration::days(history_days);
    let gap_secs = (incident_at - restore_point).num_seconds().max(1);
    let pre_count = (p.gap_reservations as f64 * (history_days * 86_400) as f64 / gap_secs as f64)
        .round() as u64;
    let per_day = p.gap_reservations as f64 / f64::from(p.gap_days.max(1));

    let opened = business_start - Duration::days(60);
    let locations: Vec<Location> = LOCATIONS
        .iter()
        .enumerate()
        .map(|(i, spec)| Location {
            id: i as i64 + 1,
            spec,
            tz: spec
                .timezone
                .parse()
                .expect("location zones are IANA names"),
            created_at: opened + Duration::hours(i as i64),
        })
        .collect();

    // Fleet: enough cars that about two thirds of the fleet is out at a busy time.
    let total_weight: u32 = LOCATIONS.iter().map(|l| l.weight).sum();
    let mut vehicles = Vec::new();
    let mut by_location: Vec<Vec<i64>> = vec![Vec::new(); locations.len()];
    let mut plates = std::collections::BTreeSet::new();
    for loc in &locations {
        let share = f64::from(loc.spec.weight) / f64::from(total_weight);
        let n = ((per_day * share * 7.5).ceil() as usize).max(3);
        for _ in 0..n {
            let m = rng.pick(MODELS);
            let plate = loop {
                let plate = make_plate(&mut rng, loc.spec.country);
                if plates.insert(plate.clone()) {
                    break plate;
                }
            };
            let id = vehicles.len() as i64 + 1;
            vehicles.push(Vehicle {
                id,
                plate,
                make: m.make,
                model: m.model,
                category: m.category,
                home_location_id: loc.id,
                daily_rate_minor: names::price_in(loc.spec.currency, m.eur_cents_per_day),
                currency: loc.spec.currency,
                created_at: opened + Duration::days(1) + Duration::minutes(id),
            });
            by_location[(loc.id - 1) as usize].push(id);
        }
    }
    let weights: Vec<u32> = LOCATIONS.iter().map(|l| l.weight).collect();

    // Booking times: exactly `gap_reservations` in the gap, the history at the same rate.
    let mut booked_at: Vec<DateTime<Utc>> =
        Vec::with_capacity((pre_count + p.gap_reservations) as usize);
    let pre_secs = (restore_point - business_start).num_seconds();
    for _ in 0..pre_count {
        booked_at.push(business_start + Duration::seconds(rng.below(pre_secs as u64) as i64));
    }
    for _ in 0..p.gap_reservations {
        booked_at.push(restore_point + Duration::seconds(rng.below(gap_secs as u64) as i64));
    }
    booked_at.sort_unstable();

    let mut w = World {
        seed: p.seed,
        business_start,
        restore_point,
        incident_at,
        locations,
        vehicles,
        customers: Vec::new(),
        reservations: Vec::with_capacity(booked_at.len()),
        payments: Vec::new(),
        unrelated_charges: Vec::new(),
    };
    let mut busy: Vec<BTreeMap<DateTime<Utc>, DateTime<Utc>>> =
        vec![BTreeMap::new(); w.vehicles.len()];
    // Sized up front: growing these by doubling copied gigabytes at a million reservations.
    let n = w.reservations.capacity();
    let mut codes = std::collections::HashSet::with_capacity(n);
    let mut emails = std::collections::HashMap::new();
    let mut pending_payments: Vec<Payment> = Vec::with_capacity(n + n / 4);
    w.customers.reserve(n * 3 / 4);

    for created_at in booked_at {
        let loc_idx = rng.weighted(&weights);
        let loc = &w.locations[loc_idx];
        let customer_id = if !w.customers.is_empty() && rng.chance(RETURNING_SHARE) {
            w.customers[rng.below(w.customers.len() as u64) as usize].id
        } else {
            let c = new_customer(
                &mut rng,
                w.customers.len() as i64 + 1,
                loc.spec.country,
                created_at,
                &mut emails,
            );
            let id = c.id;
            w.customers.push(c);
            id
        };
        let code = loop {
            let c = format!("RC-{}", rng.string(b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789", 6));
            if codes.insert(c.clone()) {
                break c;
            }
        };

        // Pickup in business hours, local time, a few days ahead; most rentals are short.
        let lead_days = match rng.below(10) {
            0..=3 => rng.range(0, 6),
            4..=7 => rng.range(7, 30),
            _ => rng.range(31, 75),
        };
        let days = match rng.below(10) {
            0..=5 => rng.range(1, 4),
            6..=8 => rng.range(5, 9),
            _ => rng.range(10, 21),
        };
        let pickup_at = local_slot(
            &mut rng,
            loc.tz,
            created_at + Duration::days(lead_days),
            created_at + Duration::hours(2),
        );
        let return_loc_id = if rng.chance(0.15) {
            let same_country: Vec<i64> = w
                .locations
                .iter()
                .filter(|l| l.spec.country == loc.spec.country && l.id != loc.id)
                .map(|l| l.id)
                .collect();
            if same_country.is_empty() {
                loc.id
            } else {
                *rng.pick(&same_country)
            }
        } else {
            loc.id
        };
        let return_tz = w.location(return_loc_id).tz;
        let return_at = local_slot(
            &mut rng,
            return_tz,
            pickup_at + Duration::days(days),
            pickup_at + Duration::hours(20),
        );
        let vehicle_id =
            choose_vehicle(&mut rng, &by_location[loc_idx], &busy, pickup_at, return_at);
        busy[(vehicle_id - 1) as usize].insert(pickup_at, return_at);
        let currency = loc.spec.currency;
        let rate = w.vehicle(vehicle_id).daily_rate_minor;
        let total = rental_total(rate, pickup_at, return_at);
        let id = w.reservations.len() as i64 + 1;
        let mut versions = vec![ResVersion {
            at: created_at,
            change: Change::Booked,
            vehicle_id,
            pickup_location_id: loc.id,
            return_location_id: return_loc_id,
            pickup_at,
            return_at,
            status: Status::Confirmed,
            total_minor: total,
        }];

        let customer = w.customer(customer_id).clone();
        let paid_at = created_at + Duration::seconds(rng.range(40, 600));
        let booking = new_payment(
            &mut rng,
            &p.noise,
            id,
            &customer,
            PaymentKind::Booking,
            total,
            currency,
            paid_at,
            w.customers.len(),
        );
        let mut res_payments = vec![booking];

        // What happens next, only as far as the incident.
        let fate = rng.unit();
        let booked = versions[0].clone();
        if fate < MODIFY_SHARE && booked.pickup_at - created_at > Duration::hours(30) {
            let at = created_at
                + Duration::seconds(
                    rng.range(3600, (booked.pickup_at - created_at).num_seconds() - 7200),
                );
            let mut v = booked.clone();
            let happened = at < incident_at;
            v.at = at;
            v.change = Change::Modified;
            match rng.below(3) {
                0 => {
                    let shift =
                        Duration::days(rng.range(1, 3)) * if rng.chance(0.5) { 1 } else { -1 };
                    if v.pickup_at + shift > at + Duration::hours(12) {
                        v.pickup_at += shift;
                        v.return_at += shift;
                    } else {
                        v.return_at += Duration::days(1);
                    }
                }
                1 => v.return_at += Duration::days(rng.range(1, 4)),
                _ => {
                    // An upgrade or a swap; when no other car is free, a longer rental instead, so
                    // that every modification changes the row.
                    let alt = choose_vehicle(
                        &mut rng,
                        &by_location[loc_idx],
                        &busy,
                        v.pickup_at,
                        v.return_at,
                    );
                    if alt == v.vehicle_id {
                        v.return_at += Duration::days(1);
                    }
                    v.vehicle_id = alt;
                }
            }
            v.total_minor = rental_total(
                w.vehicle(v.vehicle_id).daily_rate_minor,
                v.pickup_at,
                v.return_at,
            );
            if happened {
                busy[(booked.vehicle_id - 1) as usize].remove(&booked.pickup_at);
                busy[(v.vehicle_id - 1) as usize].insert(v.pickup_at, v.return_at);
                let diff = v.total_minor - booked.total_minor;
                if diff > 0 {
                    let pay_at = at + Duration::seconds(rng.range(30, 300));
                    res_payments.push(new_payment(
                        &mut rng,
                        &p.noise,
                        id,
                        &customer,
                        PaymentKind::Supplement,
                        diff,
                        currency,
                        pay_at,
                        w.customers.len(),
                    ));
                } else if diff < 0 {
                    res_payments[0].refunds.push(Refund {
                        id: stripe_id(&mut rng, "re_3", 24),
                        amount_minor: -diff,
                        at: at + Duration::seconds(rng.range(5, 120)),
                        reason: "requested_by_customer",
                    });
                }
                versions.push(v);
            }
        }
        let current = versions.last().expect("booked").clone();
        if (MODIFY_SHARE..MODIFY_SHARE + CANCEL_SHARE).contains(&fate)
            && current.pickup_at - current.at > Duration::hours(3)
        {
            let at = current.at
                + Duration::seconds(
                    rng.range(600, (current.pickup_at - current.at).num_seconds() - 600),
                );
            if at < incident_at {
                let full = current.pickup_at - at > Duration::hours(48);
                for p in &mut res_payments {
                    let paid =
                        p.amount_minor - p.refunds.iter().map(|r| r.amount_minor).sum::<i64>();
                    let amount = if full { paid } else { paid / 2 };
                    if amount > 0 {
                        p.refunds.push(Refund {
                            id: stripe_id(&mut rng, "re_3", 24),
                            amount_minor: amount,
                            at: at + Duration::seconds(rng.range(5, 90)),
                            reason: "requested_by_customer",
                        });
                    }
                }
                busy[(current.vehicle_id - 1) as usize].remove(&current.pickup_at);
                versions.push(ResVersion {
                    at,
                    change: Change::Cancelled,
                    status: Status::Cancelled,
                    ..current.clone()
                });
            }
        } else if (MODIFY_SHARE + CANCEL_SHARE..MODIFY_SHARE + CANCEL_SHARE + NO_SHOW_SHARE)
            .contains(&fate)
        {
            let at = current.pickup_at + Duration::hours(rng.range(2, 6));
            if at < incident_at {
                versions.push(ResVersion {
                    at,
                    change: Change::NoShow,
                    status: Status::NoShow,
                    ..current.clone()
                });
            }
        } else if current.return_at < incident_at
            && versions.last().map(|v| v.status) == Some(Status::Confirmed)
        {
            let at = current.return_at + Duration::minutes(rng.range(0, 90));
            if at < incident_at {
                versions.push(ResVersion {
                    at,
                    change: Change::Completed,
                    status: Status::Completed,
                    ..current.clone()
                });
            }
        }
        for p in &mut res_payments {
            p.refunds.retain(|r| r.at < incident_at);
        }
        pending_payments.extend(res_payments.into_iter().filter(|p| p.paid_at < incident_at));
        w.reservations.push(Reservation {
            id,
            code,
            customer_id,
            currency,
            created_at,
            versions,
        });
    }

    // Payment rows are numbered in the order they were made, like an autoincrement key.
    // Payment intent ids are unique, so the unstable sort is still a total, repeatable order.
    pending_payments.sort_unstable_by(|a, b| {
        a.paid_at
            .cmp(&b.paid_at)
            .then(a.payment_intent_id.cmp(&b.payment_intent_id))
    });
    for (i, p) in pending_payments.iter_mut().enumerate() {
        p.id = i as i64 + 1;
    }
    w.payments = pending_payments;

    // Charges nobody booked with: vouchers, fines passed on, a test charge.
    let unrelated = (p.gap_reservations as f64 * p.noise.unrelated_charges / 100.0
        * (history_days as f64 / f64::from(p.gap_days.max(1)) + 1.0))
        .ceil() as u64;
    for _ in 0..unrelated {
        let at = business_start
            + Duration::seconds(
                rng.below((incident_at - business_start).num_seconds() as u64) as i64,
            );
        let (description, amount) = match rng.below(3) {
            0 => ("Gift voucher".to_string(), rng.range(2, 20) * 1000),
            1 => ("Traffic fine administration fee".to_string(), 2500),
            _ => ("Test charge".to_string(), 100),
        };
        let c = new_customer(&mut rng, 0, "PT", at, &mut emails);
        let payer = Payer {
            name: c.full_name(),
            email: c.email.clone(),
            is_customer: false,
        };
        w.unrelated_charges.push(UnrelatedCharge {
            payment_intent_id: stripe_id(&mut rng, "pi_3", 24),
            charge_id: stripe_id(&mut rng, "ch_3", 24),
            amount_minor: amount,
            currency: "EUR",
            at,
            description,
            payer,
            card: new_card(&mut rng),
        });
    }
    w.unrelated_charges.sort_by_key(|c| c.at);
    w
}

fn choose_vehicle(
    rng: &mut Rng,
    candidates: &[i64],
    busy: &[BTreeMap<DateTime<Utc>, DateTime<Utc>>],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> i64 {
    let free = |id: i64| {
        let b = &busy[(id - 1) as usize];
        // The last rental starting before `to` must end before `from`, with an hour to clean.
        b.range(..to + Duration::hours(1))
            .next_back()
            .is_none_or(|(_, end)| *end + Duration::hours(1) <= from)
    };
    // Random probes rather than a scan: a scan of a large fleet per booking made generation
    // quadratic. A fully booked location double-books, as real ones do.
    let first = *rng.pick(candidates);
    if free(first) {
        return first;
    }
    for _ in 0..31 {
        let id = *rng.pick(candidates);
        if free(id) {
            return id;
        }
    }
    first
}

/// A half-hour slot between 08:00 and 19:30 local time on the day of `day`, not before
/// `not_before`.
fn local_slot(
    rng: &mut Rng,
    tz: Tz,
    day: DateTime<Utc>,
    not_before: DateTime<Utc>,
) -> DateTime<Utc> {
    let local_day = day.with_timezone(&tz).date_naive();
    for offset in 0..3 {
        let slot = rng.range(16, 39);
        let time = NaiveTime::from_hms_opt((slot / 2) as u32, ((slot % 2) * 30) as u32, 0)
            .expect("valid slot");
        let naive = (local_day + Duration::days(offset)).and_time(time);
        // Business hours never fall in a DST gap in these zones, but stay total anyway.
        if let Some(t) = tz.from_local_datetime(&naive).earliest() {
            let t = t.with_timezone(&Utc);
            if t >= not_before {
                return t;
            }
        }
    }
    not_before + Duration::hours(1)
}

fn rental_total(daily_rate: i64, from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    // Started days count; a rental is at least one day.
    let days = ((to - from).num_minutes() + 24 * 60 - 1) / (24 * 60);
    daily_rate * days.max(1)
}

pub fn stripe_id(rng: &mut Rng, prefix: &str, len: usize) -> String {
    format!("{prefix}{}", rng.string(BASE62, len))
}

fn make_plate(rng: &mut Rng, country: &str) -> String {
    const L: &[u8] = b"ABCDEFGHJKLMNPRSTUVWXZ";
    const D: &[u8] = b"0123456789";
    match country {
        "PT" => format!(
            "{}-{}-{}",
            rng.string(L, 2),
            rng.string(D, 2),
            rng.string(L, 2)
        ),
        "DE" => format!(
            "{}-{} {}",
            rng.pick(&["B", "M", "HH", "F"]),
            rng.string(L, 2),
            rng.range(100, 9999)
        ),
        "GB" => format!(
            "{}{} {}",
            rng.string(L, 2),
            rng.string(D, 2),
            rng.string(L, 3)
        ),
        "US" => format!("{}-{}", rng.string(L, 3), rng.string(D, 4)),
        _ => format!(
            "品川 {} {} {}-{}",
            rng.range(300, 399),
            rng.pick(&["あ", "わ", "れ"]),
            rng.string(D, 2),
            rng.string(D, 2)
        ),
    }
}

fn new_customer(
    rng: &mut Rng,
    id: i64,
    country: &'static str,
    booked_at: DateTime<Utc>,
    emails: &mut std::collections::HashMap<String, u32>,
) -> Customer {
    let fi = rng.below(names::FIRST_NAMES.len() as u64) as usize;
    let first = names::FIRST_NAMES[fi].0.to_string();
    let last = rng.pick(names::LAST_NAMES).to_string();
    let local = format!("{}.{}", ascii_fold(&first), ascii_fold(&last))
        .to_lowercase()
        .replace(['\'', ' '], "");
    let domain = rng.pick(names::MAIL_DOMAINS);
    // john.smith@, john.smith2@, …: a counter per address rather than probing for a free one,
    // which was quadratic with thousands of John Smiths. Local parts never end in digits, so
    // numbered addresses cannot collide with plain ones.
    let base = format!("{local}@{domain}");
    let n = emails.entry(base).or_insert(0);
    *n += 1;
    let email = if *n == 1 {
        format!("{local}@{domain}")
    } else {
        format!("{local}{n}@{domain}")
    };
    let phone = (!rng.chance(0.08)).then(|| e164_phone(rng, country));
    let stripe_customer_id =
        (!rng.chance(GUEST_CHECKOUT_SHARE)).then(|| stripe_id(rng, "cus_", 14));
    Customer {
        id,
        first_name: first,
        first_name_index: fi,
        last_name: last,
        email,
        phone,
        country,
        stripe_customer_id,
        created_at: booked_at - Duration::seconds(rng.range(60, 1800)),
    }
}

fn e164_phone(rng: &mut Rng, country: &str) -> String {
    const D: &[u8] = b"0123456789";
    match country {
        "PT" => format!(
            "+3519{}{}",
            rng.pick(&["1", "2", "3", "6"]),
            rng.string(D, 7)
        ),
        "DE" => format!(
            "+491{}{}",
            rng.pick(&["51", "52", "60", "70", "76"]),
            rng.string(D, 8)
        ),
        "GB" => format!("+447{}", rng.string(D, 9)),
        "US" => format!(
            "+1{}5550{}",
            rng.pick(&["212", "646", "718", "917"]),
            rng.string(D, 3)
        ),
        _ => format!("+81{}{}", rng.pick(&["70", "80", "90"]), rng.string(D, 8)),
    }
}

/// Letters without their accents, for email local parts.
pub fn ascii_fold(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let r: &str = match c {
                'á' | 'à' | 'â' | 'ã' | 'ā' => "a",
                'é' | 'è' | 'ê' | 'ë' => "e",
                'í' | 'ï' => "i",
                'ó' | 'ô' | 'õ' | 'ō' => "o",
                'ú' | 'ū' => "u",
                'ç' => "c",
                'ä' => "ae",
                'ö' => "oe",
                'ü' => "ue",
                'ß' => "ss",
                'ø' => "o",
                'ł' | 'Ł' => "l",
                'Ó' | 'Ō' => "O",
                'É' => "E",
                _ => "",
            };
            if r.is_empty() {
                vec![c]
            } else {
                r.chars().collect()
            }
        })
        .collect()
}

const CARD_BRANDS: &[&str] = &["visa", "mastercard", "amex", "visa", "mastercard"];
const CARD_COUNTRIES: &[&str] = &["PT", "DE", "GB", "US", "JP", "FR", "ES"];
const DECLINE_CODES: &[&str] = &[
    "insufficient_funds",
    "card_declined",
    "expired_card",
    "incorrect_cvc",
];

fn new_card(rng: &mut Rng) -> Card {
    Card {
        brand: rng.choose(CARD_BRANDS),
        last4: rng.string(b"0123456789", 4),
        exp_month: rng.range(1, 12) as u32,
        exp_year: rng.range(2027, 2031) as i32,
        country: rng.choose(CARD_COUNTRIES),
        fingerprint: rng.string(BASE62, 16),
    }
}

#[allow(clippy::too_many_arguments)]
fn new_payment(
    rng: &mut Rng,
    noise: &Noise,
    reservation_id: i64,
    customer: &Customer,
    kind: PaymentKind,
    amount: i64,
    currency: &'static str,
    paid_at: DateTime<Utc>,
    customer_count: usize,
) -> Payment {
    let card = new_card(rng);
    // Who paid, a declined first attempt and a missing code are facts about the payment that every
    // source agrees on, so the world draws them, at the noise level's rate.
    let payer = if rng.chance(noise.payer_not_customer) {
        let name = if rng.chance(0.5) {
            rng.pick(names::OTHER_PAYERS).to_string()
        } else {
            format!(
                "{} {}",
                names::FIRST_NAMES[rng.below(names::FIRST_NAMES.len() as u64) as usize].0,
                customer.last_name
            )
        };
        let email = format!(
            "billing{}@{}",
            rng.below(customer_count as u64 + 1),
            rng.pick(names::MAIL_DOMAINS)
        );
        Payer {
            name,
            email,
            is_customer: false,
        }
    } else {
        Payer {
            name: customer.full_name(),
            email: customer.email.clone(),
            is_customer: true,
        }
    };
    let failed_before = rng.chance(noise.failed_payment).then(|| FailedAttempt {
        charge_id: stripe_id(rng, "ch_3", 24),
        at: paid_at - Duration::seconds(rng.range(20, 300)),
        decline_code: rng.choose(DECLINE_CODES),
        card: new_card(rng),
    });
    Payment {
        id: 0,
        reservation_id,
        customer_id: customer.id,
        kind,
        payment_intent_id: stripe_id(rng, "pi_3", 24),
        charge_id: stripe_id(rng, "ch_3", 24),
        checkout_session_id: (kind == PaymentKind::Booking)
            .then(|| stripe_id(rng, "cs_live_a1", 48)),
        amount_minor: amount,
        currency,
        paid_at,
        refunds: Vec::new(),
        payer,
        card,
        failed_before,
        code_in_stripe: !rng.chance(noise.missing_code_stripe),
        receipt_number: format!("{}-{}", rng.range(1000, 9999), rng.range(1000, 9999)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> World {
        generate(&Params {
            seed: 3,
            noise: Noise::new(crate::simulate::noise::NoiseLevel::Medium),
            gap_reservations: 300,
            gap_days: 60,
            incident_at: default_incident_at(),
        })
    }

    #[test]
    fn gap_holds_exactly_the_requested_reservations_and_a_year_precedes_it() {
        let w = small();
        let in_gap = w
            .reservations
            .iter()
            .filter(|r| w.in_gap(r.created_at))
            .count();
        assert_eq!(in_gap, 300);
        assert!(w.restore_point - w.business_start >= Duration::days(365));
        assert!(w.reservations.iter().all(|r| r.created_at < w.incident_at));
    }

    #[test]
    fn histories_are_ordered_and_end_before_the_incident() {
        let w = small();
        for r in &w.reservations {
            assert!(
                r.versions.windows(2).all(|v| v[0].at <= v[1].at),
                "{}",
                r.code
            );
            assert!(r.latest().at < w.incident_at);
            assert!(r.latest().return_at > r.latest().pickup_at);
        }
        for p in &w.payments {
            assert!(
                p.refunded_at(w.incident_at) <= p.amount_minor,
                "{}",
                p.charge_id
            );
        }
    }

    #[test]
    fn same_seed_same_world() {
        let a = small();
        let b = small();
        assert_eq!(a.reservations.len(), b.reservations.len());
        assert_eq!(
            a.reservations.last().unwrap().code,
            b.reservations.last().unwrap().code
        );
        assert_eq!(
            a.payments.last().unwrap().charge_id,
            b.payments.last().unwrap().charge_id
        );
    }
}
