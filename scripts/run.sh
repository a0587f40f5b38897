#!/usr/bin/env bash
# `make run`: Herald with a local database, ready to take events.
# The cluster lives under .herald/ (git-ignored) and keeps its data between runs. The first run
# creates the `dev` tenant and keeps its token in .herald/dev-token, so every run prints it.
# Ctrl-C stops Herald, then the database.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pg.sh
pg_ensure_bin

root=$PWD/.herald
dir=$root/pg
port=${HERALD_DEV_DB_PORT:-54329}
mkdir -p "$root"
pg_init "$dir"
if [ -f "$dir/data/postmaster.pid" ] && pg_as_owner "$PG_BIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    echo "database already running in $dir"
else
    rm -f "$dir/data/postmaster.pid"
    pg_start "$dir" "$port"
fi
db_url="postgres://postgres@127.0.0.1:$port/herald"

herald_pid=
stop() {
    trap - INT TERM EXIT
    if [ -n "$herald_pid" ]; then kill -TERM "$herald_pid" 2>/dev/null || true; wait "$herald_pid" 2>/dev/null || true; fi
    echo "stopping the database"
    pg_stop "$dir" fast
}
trap 'stop; exit 0' INT TERM
trap stop EXIT

psql -qAtX -h 127.0.0.1 -p "$port" -U postgres -d postgres -c "SELECT 1 FROM pg_database WHERE datname = 'herald'" | grep -q 1 ||
    psql -qX -h 127.0.0.1 -p "$port" -U postgres -d postgres -c "CREATE DATABASE herald" >/dev/null

cargo build --quiet --bin herald
bin=target/debug/herald
export HERALD_DATABASE_URL=$db_url
export HERALD_ALLOW_PRIVATE_TARGETS=${HERALD_ALLOW_PRIVATE_TARGETS:-127.0.0.0/8,::1/128}
export HERALD_LISTEN=${HERALD_LISTEN:-127.0.0.1:8080}
"$bin" migrate
if [ ! -s "$root/dev-token" ]; then
    "$bin" tenant create dev >"$root/dev-token.new"
    mv "$root/dev-token.new" "$root/dev-token"
fi
token=$(cat "$root/dev-token")
cat <<MSG

  Herald is starting on http://$HERALD_LISTEN  (database: $db_url)
  dev tenant token:  $token

  export HERALD_TOKEN=$token     # then try the quickstart in README.md
  Ctrl-C stops Herald and the database.

MSG
"$bin" all &
herald_pid=$!
wait "$herald_pid"
