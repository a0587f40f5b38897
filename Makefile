# The one entry point: the same commands locally and in CI.
.PHONY: run test lint fmt build bench chaos

run:            ## Herald with a local database on 127.0.0.1:8080, ready to take events
	./scripts/run.sh

test:           ## the whole test suite against a throwaway PostgreSQL
	./scripts/test.sh

lint:           ## formatting and clippy, as CI runs them
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

build:
	cargo build --workspace

SHARED ?= ../shared

bench:          ## figures: Herald's throughput and latency, NOTIFY's cost, and PostgreSQL's ceiling
	cargo bench -p herald --bench delivery
	@if [ -x "$(SHARED)/bench/pg_ceiling.sh" ] || [ -f "$(SHARED)/bench/pg_ceiling.sh" ]; then \
		echo "--- PostgreSQL alone ($(SHARED)/bench/pg_ceiling.sh) ---"; bash "$(SHARED)/bench/pg_ceiling.sh"; \
	else echo "($(SHARED)/bench/pg_ceiling.sh not found: set SHARED=path/to/shared to compare with the ceiling)"; fi

chaos:          ## the crash tests again, five times, with 3000 events: kill -9, SIGTERM, PostgreSQL restarts
	for i in 1 2 3 4 5; do \
		HERALD_CHAOS_EVENTS=3000 ./scripts/test.sh -E 'binary(workers) | binary(restart) | test(herald_restarted)' || exit 1; \
	done
