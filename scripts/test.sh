#!/usr/bin/env bash
# `make test`: runs the test suite against a real PostgreSQL. Uses HERALD_TEST_DATABASE_URL when
# it is set; otherwise starts a throwaway cluster under target/test-pg on a free port, and stops
# it when the tests end, pass or fail. Every test makes its own database from a migrated template.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pg.sh

if [ -z "${HERALD_TEST_DATABASE_URL:-}" ]; then
    pg_ensure_bin
    # One cluster per run (target/test-pg/<pid>), so that two runs at once do not stop each
    # other's; a cluster left by a run that died is stopped and removed here.
    for old in "$PWD"/target/test-pg/*; do
        [ -d "$old" ] || continue
        if ! kill -0 "$(basename "$old")" 2>/dev/null; then pg_stop "$old" immediate; rm -rf "$old"; fi
    done
    dir=$PWD/target/test-pg/$$
    pg_init "$dir"
    port=$(pg_free_port)
    trap 'pg_stop "$dir" immediate; rm -rf "$dir"' EXIT
    # Durability is not what these tests are about: fsync off keeps 2 cores busy with Herald.
    pg_start "$dir" "$port" -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
        -c max_connections=400 -c shared_buffers=256MB
    export HERALD_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
    echo "test PostgreSQL: $HERALD_TEST_DATABASE_URL ($PG_BIN)"
fi

# The inbox test drives headless Chromium, the metrics test a real Prometheus, the notices test
# a real SMTP server (aiosmtpd): install them before the tests start.
./scripts/browser-deps.sh >/dev/null
./scripts/prometheus-deps.sh
./scripts/smtp-deps.sh

status=0
if command -v cargo-nextest >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast "$@" || status=$?
else
    cargo test --workspace --no-fail-fast "$@" || status=$?
fi

# The whole suite (no filter given) also runs schemathesis against a live Herald.
if [ $# -eq 0 ]; then
    ./scripts/schemathesis.sh || status=1
fi
exit $status
