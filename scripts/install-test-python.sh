#!/usr/bin/env bash
# Installs the Python packages the tests drive: PyPI's pjsua2-python (PJSIP 2.15's pjsua2
# bindings, a binary wheel; the call tests' pjsua2 agent, crates/mss/tests/agents/) into a
# virtual environment in the user's cache folder, only when it is missing. Idempotent and
# quiet; fails loudly when it cannot install. The tests find the venv on their own
# (MSS_PJSUA_PYTHON overrides it).
set -euo pipefail

PJSUA_VERSION="2.15.1.post1"
venv="${MSS_TEST_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/mss-test-deps/pjsua-venv}"
python="$venv/bin/python"

if [ -x "$python" ] && "$python" -c 'import pjsua2' >/dev/null 2>&1; then
    echo "install-test-python: pjsua2 present in $venv"
    exit 0
fi

echo "install-test-python: installing pjsua2-python $PJSUA_VERSION into $venv"
mkdir -p "$(dirname "$venv")"
if ! python3 -m venv "$venv"; then
    echo "install-test-python: python3 -m venv failed (Debian: install python3-venv)" >&2
    exit 1
fi
for attempt in 1 2; do
    if "$venv/bin/pip" install --quiet --disable-pip-version-check "pjsua2-python==$PJSUA_VERSION" &&
        "$python" -c 'import pjsua2' >/dev/null 2>&1; then
        echo "install-test-python: done"
        exit 0
    fi
    echo "install-test-python: attempt $attempt failed" >&2
    sleep 5
done
echo "install-test-python: could not install pjsua2-python $PJSUA_VERSION into $venv" >&2
exit 1
