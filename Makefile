# The one entry point: the same commands locally and in CI.
.PHONY: run test lint check-deploy quickstart fmt build bench bench-large bench-citus chaos fuzz soak test-citus

run:            ## Herald with a local database on 127.0.0.1:8080, ready to take events
	./scripts/run.sh

test:           ## the whole test suite against a throwaway PostgreSQL
	./scripts/test.sh

lint:           ## formatting and clippy, as CI runs them
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

quickstart:     ## the README's shell blocks, run as written against make run (ports 8080, 54329, 9000, 9100)
	./scripts/quickstart.sh

check-deploy:   ## deploy/ without a cluster: kustomize renders, Kubernetes and CRD schemas, Pod Security, promtool
	./scripts/check-deploy.sh

fmt:
	cargo fmt --all

build:
	cargo build --workspace

SHARED ?= ../shared

bench:          ## figures: Herald as released, default settings, every load shape, beside PostgreSQL's ceiling
	cargo build --release -p herald -p herald-bench
	SHARED="$(SHARED)" ./target/release/herald-bench
	@./scripts/bench-plot.sh

bench-large:    ## the claim's cost with 1,000,000 due deliveries against 10,000
	cargo build --release -p herald -p herald-bench
	BENCH_PHASES=large-backlog BENCH_TOPOLOGIES=all BENCH_RESULTS=results-large.json ./target/release/herald-bench

chaos:          ## the crash tests again, five times, with 3000 events (kill -9, SIGTERM, PostgreSQL restarts), then the fuzz targets
	for i in 1 2 3 4 5; do \
		HERALD_CHAOS_EVENTS=3000 HERALD_CHAOS_OUTAGE_SECS=30 ./scripts/test.sh -E 'binary(workers) | binary(ledger) | binary(restart) | binary(faults) | test(herald_restarted)' || exit 1; \
	done
	./scripts/fuzz.sh

bench-citus:    ## 20 tenants on one PostgreSQL beside a Citus coordinator and two workers on this machine
	cargo build --release -p herald -p herald-bench
	SHARED="$(SHARED)" ./scripts/bench-citus.sh

test-citus:     ## Herald on a Citus coordinator and two workers (builds Citus from SHARED/citus when missing)
	SHARED="$(SHARED)" ./scripts/test-citus.sh

soak:           ## a steady 100 events/s for 5 minutes against producer, poller and two workers: RSS, backlog, connections
	HERALD_SOAK_SECS=300 ./scripts/test.sh -E 'binary(soak)'

fuzz:           ## each fuzz target for FUZZ_SECONDS (30) with cargo-fuzz on nightly; the corpus is kept in fuzz/corpus
	./scripts/fuzz.sh
