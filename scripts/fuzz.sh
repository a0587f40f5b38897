#!/usr/bin/env bash
# Runs each fuzz target (fuzz/fuzz_targets) for FUZZ_SECONDS (default 30) with cargo-fuzz on a
# nightly toolchain, both installed here when missing. Inputs that find new paths are added to
# fuzz/corpus/<target>, which is then minimised (cargo fuzz cmin) and kept in the repository; a crash leaves its input in
# fuzz/artifacts/<target> and fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-30}
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
for target in $(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^herald-fuzz$'); do
    log=fuzz/target/$target.log
    mkdir -p fuzz/target
    if ! cargo +nightly fuzz run "$target" "fuzz/corpus/$target" -- -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
        tail -40 "$log"
        echo "fuzz: $target failed; its input is in fuzz/artifacts/$target" >&2
        exit 1
    fi
    echo "fuzz: $target: $(sed -n 's/^stat::number_of_executed_units: *//p' "$log") runs, no failure"
    # Keep the corpus small: only the inputs that reach paths no other input reaches.
    cargo +nightly fuzz cmin "$target" "fuzz/corpus/$target" >"$log.cmin" 2>&1
done
