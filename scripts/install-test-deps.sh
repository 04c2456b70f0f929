#!/usr/bin/env bash
# Installs the Debian packages the build and the tests need (make and gcc for the bundled
# jemalloc and SQLite; SIP peers, reference registrar, sqlite3,
# Chromium for the browser phone, linphonec; iproute2, iptables and curl for the NAT test),
# only those that are missing. Idempotent and quiet; works as root, or through sudo.
set -euo pipefail

PACKAGES=(make gcc sip-tester sipsak baresip sipvicious kamailio kamailio-sqlite-modules kamailio-extra-modules sqlite3 chromium linphone-cli iproute2 iptables curl)

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-test-deps: all test packages present"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -n)
else
    echo "install-test-deps: missing ${missing[*]}; run as root or install sudo" >&2
    exit 1
fi

echo "install-test-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# One retry: a mirror hiccup should not fail the whole run.
for attempt in 1 2; do
    if "${SUDO[@]}" apt-get update -qq >/dev/null &&
        "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
        echo "install-test-deps: done"
        exit 0
    fi
    echo "install-test-deps: attempt $attempt failed" >&2
    sleep 5
done
echo "install-test-deps: could not install ${missing[*]}" >&2
exit 1
