# Shared by scripts/test-citus.sh and scripts/bench-citus.sh: a throwaway Citus cluster (a
# coordinator and two workers) on free ports on 127.0.0.1. Sourced, not run; needs scripts/pg.sh.
#
# Citus is AGPL: a test-only dependency, built and installed into the machine's PostgreSQL 15
# from SHARED/citus when missing, never shipped.

# citus_install SHARED: builds and installs Citus when this PostgreSQL has none.
citus_install() {
    local shared=$1
    if [ ! -f "$("$PG_BIN/pg_config" --pkglibdir 2>/dev/null || echo /usr/lib/postgresql/15/lib)/citus.so" ]; then
        echo "building Citus from $shared/citus (a few minutes)"
        bash "$shared/citus/build.sh"
    fi
}

# citus_start BASE [postgres options]: starts the three nodes under BASE/{coordinator,worker1,
# worker2} and joins them. Sets CITUS_PORTS (coordinator first) and CITUS_URL (the
# coordinator's postgres database). Stop them with citus_stop BASE.
citus_start() {
    local base=$1
    shift
    CITUS_PORTS=()
    local n port
    for n in coordinator worker1 worker2; do
        pg_init "$base/$n" >/dev/null
        port=$(pg_free_port)
        CITUS_PORTS+=("$port")
        pg_start "$base/$n" "$port" -c shared_preload_libraries=citus -c max_connections=300 "$@" >/dev/null
        psql -qX "postgres://postgres@127.0.0.1:$port/postgres" -c "CREATE EXTENSION citus" >/dev/null
    done
    CITUS_URL="postgres://postgres@127.0.0.1:${CITUS_PORTS[0]}/postgres"
    psql -qX "$CITUS_URL" -c "SELECT citus_set_coordinator_host('127.0.0.1', ${CITUS_PORTS[0]})" \
        -c "SELECT citus_add_node('127.0.0.1', ${CITUS_PORTS[1]})" \
        -c "SELECT citus_add_node('127.0.0.1', ${CITUS_PORTS[2]})" >/dev/null
    echo "Citus: coordinator on ${CITUS_PORTS[0]}, workers on ${CITUS_PORTS[1]} and ${CITUS_PORTS[2]}"
}

citus_stop() {
    local base=$1 n
    for n in coordinator worker1 worker2; do pg_stop "$base/$n" immediate; done
    rm -rf "$base"
}
