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
echo "installing aiosmtpd 1.4.6 into $venv (pip)"
if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        python3 -m venv "$venv"
    else
        echo "error: the notices test needs Python's venv for aiosmtpd: apt-get install python3-venv" >&2
        exit 1
    fi
fi
"$venv/bin/pip" install -q --disable-pip-version-check "aiosmtpd==1.4.6"
