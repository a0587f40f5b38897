#!/usr/bin/env bash
# What tests/prometheus.rs needs: Prometheus and promtool, from Debian's `prometheus` package
# (installed with apt-get when running as root, as CI does; the package's service is not
# started here: the test runs its own Prometheus on a free port).
set -euo pipefail
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing Debian's prometheus for the metrics test (apt-get)"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    else
        echo "error: the metrics test needs Prometheus and promtool: apt-get install prometheus (or set HERALD_PROMETHEUS and HERALD_PROMTOOL)" >&2
        exit 1
    fi
fi
