#!/usr/bin/env bash
# Installs the JavaScript the browser test drives (crates/mss/tests/ws_browser.rs): JsSIP
# from the npm registry, at the versions pinned by crates/mss/tests/browser/package-lock.json
# (`npm ci`, integrity-checked), bundled by esbuild (same lock) into one browser script,
# `jssip.min.js`, in the user's cache folder. Nothing is fetched at test time. Idempotent
# and quiet; installs Debian's npm when there is no npm; fails loudly when it cannot
# install. The test finds the script on its own (MSS_JSSIP_JS overrides it; MSS_TEST_JS_DIR
# moves the folder).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
src="$repo/crates/mss/tests/browser"
dir="${MSS_TEST_JS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mss-test-deps/jssip}"
bundle="$dir/jssip.min.js"

# Installed from this very lock (a changed lock installs afresh).
if [ -s "$bundle" ] && cmp -s "$src/package-lock.json" "$dir/package-lock.json"; then
    echo "install-test-js: JsSIP present in $bundle"
    exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        SUDO=()
    elif command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo -n)
    else
        echo "install-test-js: npm is missing; run as root or install Debian's npm" >&2
        exit 1
    fi
    echo "install-test-js: installing Debian's npm"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq >/dev/null
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends npm >/dev/null
fi

echo "install-test-js: installing JsSIP (crates/mss/tests/browser/package-lock.json) into $dir"
rm -rf "$dir"
mkdir -p "$dir"
cp "$src/package.json" "$src/package-lock.json" "$dir/"
for attempt in 1 2; do
    if (cd "$dir" && npm ci --silent --no-audit --no-fund >/dev/null) &&
        # One script that sets the global `JsSIP` (the package's CommonJS exports).
        "$dir/node_modules/.bin/esbuild" "$dir/node_modules/jssip/lib/JsSIP.js" \
            --bundle --format=iife --global-name=JsSIP --minify --log-level=warning \
            --outfile="$bundle.tmp" &&
        mv "$bundle.tmp" "$bundle"; then
        echo "install-test-js: done"
        exit 0
    fi
    echo "install-test-js: attempt $attempt failed" >&2
    sleep 5
done
echo "install-test-js: could not install JsSIP into $dir" >&2
exit 1
