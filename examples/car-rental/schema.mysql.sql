-- Reference schema (MySQL / MariaDB). DATETIME columns hold UTC, the application's convention;
-- money is integer minor units plus an ISO 4217 currency (JPY has no minor unit).

CREATE TABLE locations (
    id          BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    code        VARCHAR(16)  NOT NULL UNIQUE,
    name        VARCHAR(120) NOT NULL,
    city        VARCHAR(80)  NOT NULL,
    country     CHAR(2)      NOT NULL,
    timezone    VARCHAR(64)  NOT NULL,
    currency    CHAR(3)      NOT NULL,
    address     VARCHAR(255) NOT NULL,
    created_at  DATETIME     NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE vehicles (
    id                BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    plate             VARCHAR(32)  NOT NULL UNIQUE,
    make              VARCHAR(64)  NOT NULL,
    model             VARCHAR(64)  NOT NULL,
    category          VARCHAR(32)  NOT NULL,
    home_location_id  BIGINT       NOT NULL,
    daily_rate_minor  BIGINT       NOT NULL,
    currency          CHAR(3)      NOT NULL,
    created_at        DATETIME     NOT NULL,
    CONSTRAINT vehicles_home_location FOREIGN KEY (home_location_id) REFERENCES locations (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE customers (
    id                  BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    full_name           VARCHAR(200) NOT NULL,
    email               VARCHAR(254) NOT NULL UNIQUE,
    phone               VARCHAR(32),
    stripe_customer_id  VARCHAR(64)  UNIQUE,
    created_at          DATETIME     NOT NULL,
    updated_at          DATETIME     NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE reservations (
    id                  BIGINT      NOT NULL AUTO_INCREMENT PRIMARY KEY,
    booking_code        VARCHAR(16) NOT NULL UNIQUE,
    customer_id         BIGINT      NOT NULL,
    vehicle_id          BIGINT,
    pickup_location_id  BIGINT      NOT NULL,
    return_location_id  BIGINT      NOT NULL,
    pickup_at           DATETIME    NOT NULL,
    return_at           DATETIME    NOT NULL,
    status              ENUM('confirmed', 'cancelled', 'completed', 'no_show') NOT NULL DEFAULT 'confirmed',
    total_minor         BIGINT      NOT NULL,
    currency            CHAR(3)     NOT NULL,
    created_at          DATETIME    NOT NULL,
    updated_at          DATETIME    NOT NULL,
    KEY reservations_customer (customer_id),
    KEY reservations_pickup (pickup_at),
    CONSTRAINT reservations_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id),
    CONSTRAINT reservations_vehicle_fk FOREIGN KEY (vehicle_id) REFERENCES vehicles (id),
    CONSTRAINT reservations_pickup_location_fk FOREIGN KEY (pickup_location_id) REFERENCES locations (id),
    CONSTRAINT reservations_return_location_fk FOREIGN KEY (return_location_id) REFERENCES locations (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE payments (
    id                        BIGINT      NOT NULL AUTO_INCREMENT PRIMARY KEY,
    reservation_id            BIGINT      NOT NULL,
    stripe_payment_intent_id  VARCHAR(64) UNIQUE,
    stripe_charge_id          VARCHAR(64) UNIQUE,
    amount_minor              BIGINT      NOT NULL,
    currency                  CHAR(3)     NOT NULL,
    status                    ENUM('succeeded', 'partially_refunded', 'refunded', 'failed') NOT NULL,
    refunded_minor            BIGINT      NOT NULL DEFAULT 0,
    paid_at                   DATETIME,
    created_at                DATETIME    NOT NULL,
    updated_at                DATETIME    NOT NULL,
    KEY payments_reservation (reservation_id),
    CONSTRAINT payments_reservation_fk FOREIGN KEY (reservation_id) REFERENCES reservations (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
