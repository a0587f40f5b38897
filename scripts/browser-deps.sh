#!/usr/bin/env bash
# What the browser test needs: Debian's Chromium (installed with apt-get when running as root,
# as CI does), and from npm playwright-core (a driver only: it downloads no browser of its own)
# and axe-core (the accessibility check the test runs in the page).
set -euo pipefail
cd "$(dirname "$0")/.."

chromium=${HERALD_CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
if [ -z "$chromium" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing Debian's chromium for the inbox browser test (apt-get)"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
        chromium=$(command -v chromium)
    else
        echo "error: the inbox browser test needs Chromium: apt-get install chromium (or set HERALD_CHROMIUM=/path/to/chrome)" >&2
        exit 1
    fi
fi
if ! command -v node >/dev/null 2>&1; then
    echo "error: the inbox browser test needs Node.js (node, npm): apt-get install nodejs npm" >&2
    exit 1
fi
if [ ! -d tests/browser/node_modules/playwright-core ] || [ ! -d tests/browser/node_modules/axe-core ]; then
    (cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --silent >/dev/null)
fi
echo "$chromium"
