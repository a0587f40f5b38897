#!/usr/bin/env bash
# `make test-citus`: Herald on a real Citus cluster. Builds and installs Citus into the
# machine's PostgreSQL 15 with SHARED/citus/build.sh when it is missing (Citus is AGPL: a
# test-only dependency, never shipped), starts a coordinator and two workers on free ports on
# 127.0.0.1 under target/citus (stopped when the run ends, pass or fail), and runs tests/citus.rs
# against the coordinator.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pg.sh
. scripts/citus.sh
pg_find_bin
citus_install "${SHARED:-../shared}"
base=$PWD/target/citus/$$
logs=$PWD/target/citus-logs
rm -rf "$logs" && mkdir -p "$logs"
# On failure, the coordinator's log (every statement, and where Citus sent it) is kept, and
# what Herald's processes warned of is shown (their whole logs are in target/citus-logs).
on_exit() {
    status=$?
    if [ "$status" != 0 ]; then
        cp "$base/coordinator/server.log" target/citus-coordinator.log 2>/dev/null || true
        for f in "$logs"/*.log; do
            [ -e "$f" ] || continue
            echo "== $(basename "$f"): its last warnings and errors"
            grep -E ' (WARN|ERROR) ' "$f" | tail -n 40 || true
        done
        grep -E 'ERROR|deadlock' "$base/coordinator/server.log" 2>/dev/null | tail -n 40 || true
    fi
    citus_stop "$base"
}
trap on_exit EXIT
citus_start "$base" -c fsync=off -c synchronous_commit=off -c full_page_writes=off
# Every statement the coordinator runs, and what Citus sends on for it, for tests/citus.rs to
# check that each ran on one node.
psql -qX "$CITUS_URL" -c "ALTER SYSTEM SET citus.log_remote_commands = on" \
    -c "ALTER SYSTEM SET log_statement = 'all'" -c "ALTER SYSTEM SET log_min_messages = notice" \
    -c "ALTER SYSTEM SET log_line_prefix = '@@%p %a@@ '" -c "SELECT pg_reload_conf()" >/dev/null
export HERALD_CITUS_LOG="$base/coordinator/server.log"
# tests/citus.rs stops and starts the first worker node with these.
export HERALD_CITUS_NODE="$base/worker1 ${CITUS_PORTS[1]}"
HERALD_TEST_LOG_DIR=$logs HERALD_CITUS_URL=$CITUS_URL cargo nextest run -p herald --test citus --run-ignored only --no-capture "$@"
