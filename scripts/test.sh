#!/usr/bin/env bash
# Runs the whole test suite, database tests included: makes sure the local PostgreSQL and
# MariaDB servers are up first (starting them when they are not) and points the tests at them.
set -euo pipefail
cd "$(dirname "$0")/.."

wait_for() { # name, command...
    local name=$1; shift
    for _ in $(seq 1 60); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 1
    done
    echo "error: $name did not come up within 60 s" >&2
    return 1
}

pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q; }
mysql_up() { mariadb-admin --protocol=tcp -h 127.0.0.1 -P 3306 -u root ping || mysqladmin --protocol=tcp -h 127.0.0.1 -P 3306 -u root ping; }

if ! pg_up; then
    echo "starting PostgreSQL" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
fi
if ! mysql_up >/dev/null 2>&1; then
    echo "starting MariaDB" >&2
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
fi
wait_for PostgreSQL pg_up
wait_for MariaDB mysql_up

export GAPFILL_TEST_POSTGRES="${GAPFILL_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432}"
export GAPFILL_TEST_MYSQL="${GAPFILL_TEST_MYSQL:-mysql://root@127.0.0.1:3306}"
# The database tests fail rather than skip when this is set: CI must really run them.
export GAPFILL_REQUIRE_DATABASES=1
if [ -z "${GAPFILL_CORPORA:-}" ] && [ -d ../shared/corpora ]; then
    GAPFILL_CORPORA="$(cd ../shared/corpora && pwd)"
    export GAPFILL_CORPORA
fi

cargo test --all-targets "$@"
