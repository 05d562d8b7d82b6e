#!/usr/bin/env bash
# Runs the whole test suite, database tests included: makes sure the local PostgreSQL and
# MariaDB servers are up first (starting them when they are not), starts localstripe, and
# points the tests at them.
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
# Where the corpora are, the tests over them must run, not skip.
if [ -n "${GAPFILL_CORPORA:-}" ]; then
    export GAPFILL_REQUIRE_CORPORA=1
fi

# localstripe, a stateful Stripe-compatible server, for the live Stripe API tests: installed when
# missing, started on a free 127.0.0.1 port for this run only, stopped when the run ends.
# Run as a module: a console script that pip has just installed may not be on PATH yet (pyenv's
# shims appear only after a rehash).
if ! python3 -c 'import localstripe' >/dev/null 2>&1; then
    echo "installing localstripe" >&2
    python3 -m pip install --quiet localstripe >&2
fi
stripe_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
# --from-scratch: localstripe otherwise reloads the store it pickles to a fixed path in /tmp, and
# a store cut short when an earlier server was stopped mid-write keeps it from starting at all.
stripe_log="${TMPDIR:-/tmp}/gapfill-localstripe-$stripe_port.log"
python3 -m localstripe --port "$stripe_port" --from-scratch >"$stripe_log" 2>&1 &
stripe_pid=$!
trap 'kill "$stripe_pid" 2>/dev/null || true' EXIT
stripe_up() { python3 -c "import urllib.request as u; u.urlopen(u.Request('http://127.0.0.1:$stripe_port/v1/customers', headers={'Authorization': 'Bearer sk_test_up'}), timeout=1)"; }
if ! wait_for localstripe stripe_up; then
    tail -n 20 "$stripe_log" >&2
    exit 1
fi
export GAPFILL_TEST_STRIPE_BASE="http://127.0.0.1:$stripe_port"
# As with the databases: CI must really run the Stripe API tests, never skip them.
export GAPFILL_REQUIRE_STRIPE=1

# Debian's chromium, for the HTML report test that runs the page's script in a real headless
# browser: installed when missing.
if ! command -v chromium >/dev/null 2>&1; then
    echo "installing chromium" >&2
    apt-get install -y -qq chromium >&2 || { apt-get update -qq >&2 && apt-get install -y -qq chromium >&2; }
fi
# As with the databases: CI must really run the browser test, never skip it.
export GAPFILL_REQUIRE_BROWSER=1

cargo test --all-targets "$@"
