#!/usr/bin/env bash
# Bad input by a tool no one here wrote: schemathesis (PyPI, pinned) generates requests from
# docs/openapi.yaml, valid and invalid, including stateful sequences through the spec's links,
# against a live `herald all`. Fails on any 5xx, any answer outside the documented schema, status
# or content type, or any schema-invalid request accepted. (Tenant isolation is walked over every
# route of the same document by crates/herald-producer/tests/it/api.rs.)
#
# Not checked: `positive_data_acceptance` (a schema-valid request refused). The spec cannot say
# everything the server checks (an `expires_at` in the past, a URL with an empty host label, a
# callback field without `callback_url`), and those are refused with a 422 that says why.
#
# Needs HERALD_TEST_DATABASE_URL (scripts/test.sh sets it) and target/debug/herald.
# ST_EXAMPLES (default 100 per operation, over 2,000 cases in all) and ST_SEED narrow or repeat a run.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pg.sh

. scripts/venv.sh

venv=target/schemathesis
if [ ! -x "$venv/bin/st" ]; then
    venv_install "$venv" schemathesis "schemathesis==4.32.5"
fi

admin=${HERALD_TEST_DATABASE_URL:?run through scripts/test.sh, or set HERALD_TEST_DATABASE_URL}
db="herald_st_$$"
url=$(python3 -c 'import sys, urllib.parse as u; p = u.urlparse(sys.argv[1]); print(p._replace(path="/" + sys.argv[2]).geturl())' "$admin" "$db")
psql -qX "$admin" -c "CREATE DATABASE $db" >/dev/null
port=$(pg_free_port)
log=target/schemathesis/herald.log
cleanup() {
    [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    psql -qX "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
./target/debug/herald migrate --database-url "$url" >/dev/null
token=$(./target/debug/herald tenant create st --database-url "$url")
operator=$(./target/debug/herald admin token create --name st --database-url "$url" 2>/dev/null)
HERALD_DATABASE_URL="$url" HERALD_LISTEN="127.0.0.1:$port" HERALD_LOG=warn ./target/debug/herald all >"$log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
    python3 -c 'import sys, urllib.request as r; r.urlopen(sys.argv[1], timeout=1)' "http://127.0.0.1:$port/readyz" 2>/dev/null && break
    sleep 0.1
done

# The coverage phase is left out: schemathesis 4.32.5 fails inside itself on this spec
# ("AST constructor recursion depth mismatch"), a bug of the tool, not an answer of Herald's.
# Two runs: the tenant's routes with the tenant's token, and /v1/admin with an operator token
# (each token is refused on the other's routes: tests/it/scopes.rs). DELETE /v1/tokens/{id} is
# left out of the first: the stateful phase finds the run's own token in GET /v1/tokens and
# revokes it, and every later request would be a 401 (tests/it/scopes.rs tests revocation).
# GET /v1/sessions/current answers a link's session cookie only (401 to a token: tests/it/links.rs).
# Both runs check the same way; only the token and the routes differ.
st_run() {
    "$venv/bin/st" run docs/openapi.yaml \
        --url "http://127.0.0.1:$port" \
        --phases examples,fuzzing,stateful \
        --checks all --exclude-checks positive_data_acceptance \
        --max-examples "${ST_EXAMPLES:-100}" \
        ${ST_SEED:+--seed "$ST_SEED"} \
        --workers 2 \
        --no-color "$@"
}
status=0
st_run -H "Authorization: Bearer $token" \
    --exclude-name-regex '^(DELETE /v1/tokens/.*|[A-Z]+ /v1/admin/.*|GET /v1/sessions/current)$' || status=$?
st_run -H "Authorization: Bearer $operator" --include-path-regex '^/v1/admin/' || status=$?
exit $status
