# Shared by scripts/test.sh and scripts/run.sh: find PostgreSQL's server binaries and start or
# stop a cluster that belongs to this checkout. Sourced, not run.
#
# initdb refuses to run as root, so as root the cluster is owned and run by the `postgres` user.

pg_find_bin() {
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        PG_BIN=$(dirname "$(readlink -f "$(command -v initdb)")")
    else
        PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
    fi
    if [ -z "${PG_BIN:-}" ] || [ ! -x "$PG_BIN/initdb" ] || [ ! -x "$PG_BIN/pg_ctl" ]; then
        cat >&2 <<'MSG'
error: no PostgreSQL server binaries found (initdb, pg_ctl) on PATH or under /usr/lib/postgresql/*/bin.
Install them, e.g. on Debian or Ubuntu:  apt-get install postgresql
(on macOS: brew install postgresql@15), or point the tests at a database you run yourself:
  HERALD_TEST_DATABASE_URL=postgres://user:password@127.0.0.1:5432/postgres make test
MSG
        return 1
    fi
}

# pg_ensure_bin: pg_find_bin, and on Debian or Ubuntu as root, install PostgreSQL's server with
# apt-get first when it is missing (saying so); otherwise pg_find_bin's message says what to do.
pg_ensure_bin() {
    if pg_find_bin 2>/dev/null; then
        return 0
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "PostgreSQL's server is not installed: installing it with apt-get (postgresql)"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    fi
    pg_find_bin
}

# Run a command as the cluster's owner.
pg_as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

pg_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# pg_init DIR: create a cluster in DIR/data once.
pg_init() {
    local dir=$1
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then
        if ! id postgres >/dev/null 2>&1; then
            echo "error: running as root needs a 'postgres' user to own the cluster (apt-get install postgresql creates one)" >&2
            return 1
        fi
        chown postgres "$dir"
        # The owner must be able to reach DIR through every parent folder.
        local p=$dir
        while [ "$p" != / ]; do p=$(dirname "$p"); chmod o+x "$p" 2>/dev/null || true; done
    fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        pg_as_owner "$PG_BIN/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --no-instructions >"$dir/initdb.log" 2>&1 || {
            cat "$dir/initdb.log" >&2
            return 1
        }
    fi
}

# pg_start DIR PORT [extra postgres options]: start the cluster, listening on 127.0.0.1:PORT
# and on a socket in DIR.
pg_start() {
    local dir=$1 port=$2
    shift 2
    pg_as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 $*" start >/dev/null || {
        tail -20 "$dir/server.log" >&2
        return 1
    }
}

pg_stop() {
    local dir=$1 mode=${2:-fast}
    [ -f "$dir/data/postmaster.pid" ] || return 0
    pg_as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -m "$mode" -w stop >/dev/null 2>&1 || true
}
