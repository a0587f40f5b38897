#!/usr/bin/env bash
# `make test-citus`: Herald on a real Citus cluster. Builds and installs Citus into the
# machine's PostgreSQL 15 with SHARED/citus/build.sh when it is missing (Citus is AGPL: a
# test-only dependency, never shipped), starts a coordinator and two workers on free ports on
# 127.0.0.1 under target/citus (stopped when the run ends, pass or fail), and runs tests/citus.rs
# against the coordinator.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pg.sh
pg_find_bin
shared=${SHARED:-../shared}
if [ ! -f "$("$PG_BIN/pg_config" --pkglibdir 2>/dev/null || echo /usr/lib/postgresql/15/lib)/citus.so" ]; then
    echo "building Citus from $shared/citus (a few minutes)"
    bash "$shared/citus/build.sh"
fi

base=$PWD/target/citus/$$
nodes=(coordinator worker1 worker2)
ports=()
cleanup() {
    for n in "${nodes[@]}"; do pg_stop "$base/$n" immediate; done
    rm -rf "$base"
}
trap cleanup EXIT
for n in "${nodes[@]}"; do
    pg_init "$base/$n" >/dev/null
    port=$(pg_free_port)
    ports+=("$port")
    pg_start "$base/$n" "$port" -c shared_preload_libraries=citus -c max_connections=300 \
        -c fsync=off -c synchronous_commit=off -c full_page_writes=off >/dev/null
    psql -qX "postgres://postgres@127.0.0.1:$port/postgres" -c "CREATE EXTENSION citus" >/dev/null
done
coordinator="postgres://postgres@127.0.0.1:${ports[0]}/postgres"
psql -qX "$coordinator" -c "SELECT citus_set_coordinator_host('127.0.0.1', ${ports[0]})" \
    -c "SELECT citus_add_node('127.0.0.1', ${ports[1]})" -c "SELECT citus_add_node('127.0.0.1', ${ports[2]})" >/dev/null
echo "Citus: coordinator on ${ports[0]}, workers on ${ports[1]} and ${ports[2]}"
# tests/citus.rs stops and starts the first worker node with these.
export HERALD_CITUS_NODE="$base/worker1 ${ports[1]}"
HERALD_CITUS_URL=$coordinator cargo nextest run -p herald --test citus --run-ignored only --no-capture "$@"
