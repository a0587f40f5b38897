#!/usr/bin/env bash
# What tests/notices.rs needs: a real SMTP server, aiosmtpd (PyPI, pinned), in a virtualenv under
# target/smtp. The test starts it on a free port of 127.0.0.1 itself (`python -m aiosmtpd`
# with a handler that writes each message to a file); nothing is started here.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/smtp
if "$venv/bin/python" -c 'import aiosmtpd' >/dev/null 2>&1; then
    exit 0
fi
. scripts/venv.sh
venv_install "$venv" "the notices test (aiosmtpd)" "aiosmtpd==1.4.6"
