-- Reference schema (SQLite). Times are UTC, ISO 8601 text with a Z ('2026-05-01T10:30:00Z').
-- Money is integer minor units plus an ISO 4217 currency (JPY has no minor unit).
PRAGMA foreign_keys = ON;

CREATE TABLE locations (
    id          INTEGER PRIMARY KEY,
    code        TEXT    NOT NULL UNIQUE,
    name        TEXT    NOT NULL,
    city        TEXT    NOT NULL,
    country     TEXT    NOT NULL CHECK (length(country) = 2),
    timezone    TEXT    NOT NULL,
    currency    TEXT    NOT NULL CHECK (length(currency) = 3),
    address     TEXT    NOT NULL,
    created_at  TEXT    NOT NULL
);

CREATE TABLE vehicles (
    id                INTEGER PRIMARY KEY,
    plate             TEXT    NOT NULL UNIQUE,
    make              TEXT    NOT NULL,
    model             TEXT    NOT NULL,
    category          TEXT    NOT NULL,
    home_location_id  INTEGER NOT NULL REFERENCES locations (id),
    daily_rate_minor  INTEGER NOT NULL CHECK (daily_rate_minor >= 0),
    currency          TEXT    NOT NULL CHECK (length(currency) = 3),
    created_at        TEXT    NOT NULL
);

CREATE TABLE customers (
    id                  INTEGER PRIMARY KEY,
    full_name           TEXT    NOT NULL,
    email               TEXT    NOT NULL UNIQUE,
    phone               TEXT,
    stripe_customer_id  TEXT    UNIQUE,
    created_at          TEXT    NOT NULL,
    updated_at          TEXT    NOT NULL
);

CREATE TABLE reservations (
    id                  INTEGER PRIMARY KEY,
    booking_code        TEXT    NOT NULL UNIQUE,
    customer_id         INTEGER NOT NULL REFERENCES customers (id),
    vehicle_id          INTEGER REFERENCES vehicles (id),
    pickup_location_id  INTEGER NOT NULL REFERENCES locations (id),
    return_location_id  INTEGER NOT NULL REFERENCES locations (id),
    pickup_at           TEXT    NOT NULL,
    return_at           TEXT    NOT NULL,
    status              TEXT    NOT NULL DEFAULT 'confirmed'
                        CHECK (status IN ('confirmed', 'cancelled', 'completed', 'no_show')),
    total_minor         INTEGER NOT NULL CHECK (total_minor >= 0),
    currency            TEXT    NOT NULL CHECK (length(currency) = 3),
    created_at          TEXT    NOT NULL,
    updated_at          TEXT    NOT NULL,
    CHECK (return_at > pickup_at)
);
CREATE INDEX reservations_customer ON reservations (customer_id);
CREATE INDEX reservations_pickup ON reservations (pickup_at);

CREATE TABLE payments (
    id                        INTEGER PRIMARY KEY,
    reservation_id            INTEGER NOT NULL REFERENCES reservations (id),
    stripe_payment_intent_id  TEXT    UNIQUE,
    stripe_charge_id          TEXT    UNIQUE,
    amount_minor              INTEGER NOT NULL CHECK (amount_minor > 0),
    currency                  TEXT    NOT NULL CHECK (length(currency) = 3),
    status                    TEXT    NOT NULL
                              CHECK (status IN ('succeeded', 'partially_refunded', 'refunded', 'failed')),
    refunded_minor            INTEGER NOT NULL DEFAULT 0 CHECK (refunded_minor >= 0),
    paid_at                   TEXT,
    created_at                TEXT    NOT NULL,
    updated_at                TEXT    NOT NULL
);
CREATE INDEX payments_reservation ON payments (reservation_id);
