#!/usr/bin/env bash
# Draws make bench's PNGs with matplotlib, in a virtualenv of its own under target/bench (the
# figures and results.json do not need it: if it cannot be installed, say so and go on).
set -uo pipefail
cd "$(dirname "$0")/.."
venv=target/bench/venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
    python3 -m venv "$venv" && "$venv/bin/pip" install -q matplotlib || {
        echo "bench-plot: matplotlib could not be installed; no PNGs (target/bench/results.json has the figures)"
        exit 0
    }
fi
"$venv/bin/python" scripts/bench-plot.py target/bench || echo "bench-plot: drawing failed; the figures are in target/bench/results.json"
