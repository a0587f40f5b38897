# Sourced: a Python virtualenv for a test tool from PyPI, made the same way by each script that
# needs one (scripts/schemathesis.sh, scripts/smtp-deps.sh).

# venv_install DIR WHO REQUIREMENT: makes the virtualenv DIR (installing Debian's python3-venv
# first when root and it is missing) and pip-installs REQUIREMENT into it; WHO names the test
# that needs it, for the error.
venv_install() {
    local venv=$1 who=$2 requirement=$3
    echo "installing $requirement into $venv (pip)"
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            apt-get update -qq >/dev/null
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
            python3 -m venv "$venv"
        else
            echo "error: $who needs Python's venv: apt-get install python3-venv" >&2
            exit 1
        fi
    fi
    "$venv/bin/pip" install -q --disable-pip-version-check "$requirement"
}
