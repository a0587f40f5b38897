#!/usr/bin/env bash
# `make quickstart`: the README's shell blocks, run as written against `make run`, as a newcomer
# would run them (its fixed ports: 8080, 54329, 9000, 9100). Passes when the quickstart's
# receiver verified the event and the human-in-the-loop agent finished its thread.
#
# It needs a fresh `.herald/` (the README publishes evt_quickstart_1, which a database that has
# it already would not deliver again): one that exists is moved aside meanwhile and put back.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/quickstart
rm -rf "$out" && mkdir -p "$out"

for port in 8080 54329 9000 9100; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "quickstart: something listens on 127.0.0.1:$port already; the README's blocks need it free" >&2
        exit 1
    fi
done

# The blocks between ```sh and ``` in README.md, in order.
python3 - README.md "$out" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
blocks = re.findall(r"^```sh\n(.*?)^```$", text, re.S | re.M)
assert blocks, "README.md has no ```sh blocks"
for i, b in enumerate(blocks, 1):
    open(f"{sys.argv[2]}/block{i}.sh", "w").write(b)
print(f"quickstart: {len(blocks)} blocks from README.md")
PY

kept=
if [ -e .herald ]; then
    kept=.herald.before-quickstart.$$
    mv .herald "$kept"
    echo "quickstart: your .herald/ is kept aside in $kept meanwhile"
fi

run_pid=
groups=()
cleanup() {
    # Each block ran in a process group of its own: what it left running (the receiver, the
    # agent) goes with it. Then Herald and its database (run.sh stops both on TERM).
    for g in "${groups[@]}"; do kill -TERM -- "-$g" 2>/dev/null || true; done
    if [ -n "$run_pid" ]; then
        kill -TERM "$run_pid" 2>/dev/null || true
        wait "$run_pid" 2>/dev/null || true
    fi
    if [ -n "$kept" ]; then
        rm -rf .herald
        mv "$kept" .herald
    fi
}
trap cleanup EXIT

./scripts/run.sh >"$out/run.log" 2>&1 &
run_pid=$!
for _ in $(seq 1 600); do
    kill -0 "$run_pid" 2>/dev/null || { cat "$out/run.log"; echo "quickstart: make run stopped" >&2; exit 1; }
    curl -sf -o /dev/null http://127.0.0.1:8080/readyz && break
    sleep 0.5
done
curl -sf -o /dev/null http://127.0.0.1:8080/readyz || { cat "$out/run.log"; echo "quickstart: make run never became ready" >&2; exit 1; }

status=0
for block in "$out"/block*.sh; do
    echo "quickstart: running $(basename "$block")"
    # setsid: a process group of the block's own, so that cleanup can end what it started.
    setsid timeout 300 bash -euo pipefail "$block" >"$block.log" 2>&1 &
    groups+=("$!")
    if ! wait "$!"; then
        echo "quickstart: $(basename "$block") failed:" >&2
        cat "$block.log" >&2
        status=1
    fi
done
[ "$status" = 0 ] || exit 1

# What the README promises each block shows.
for _ in $(seq 1 100); do
    grep -q "verified evt_quickstart_1" "$out/block1.sh.log" && break
    sleep 0.2
done
grep -q "verified evt_quickstart_1" "$out/block1.sh.log" || { cat "$out/block1.sh.log" >&2; echo "quickstart: the receiver never verified evt_quickstart_1" >&2; exit 1; }
grep -q '"status":"done"' "$out/block2.sh.log" || { cat "$out/block2.sh.log" >&2; echo "quickstart: the agent's thread did not finish" >&2; exit 1; }
echo "quickstart: the README's blocks ran as written; the receiver verified evt_quickstart_1 and the agent finished its thread"
