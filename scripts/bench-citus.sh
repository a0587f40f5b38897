#!/usr/bin/env bash
# `make bench-citus`: 20 tenants on a single PostgreSQL and on a Citus coordinator with two
# workers, all on this machine (crates/herald-bench/src/tenants.rs). Builds Citus from
# SHARED/citus when it is missing; the cluster is throwaway (target/citus-bench), stopped when
# the run ends, pass or fail. The nodes run with the benchmark's settings (fsync and
# synchronous_commit on).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pg.sh
. scripts/citus.sh
pg_find_bin
citus_install "${SHARED:-../shared}"
base=$PWD/target/citus-bench/$$
trap 'citus_stop "$base"' EXIT
citus_start "$base" -c shared_buffers=256MB -c max_wal_size=4GB
BENCH_PHASES=tenants BENCH_CITUS_URL=$CITUS_URL BENCH_RESULTS=results-citus.json ./target/release/herald-bench
