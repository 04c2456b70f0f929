#!/usr/bin/env bash
# Fails when a tracked file names a path outside the repository: a folder beside the
# checkout (a folder named shared next to it, or three levels up from a crate), or an absolute path of one
# machine's home or work folders. A clone has none of those, so tests and docs must not
# need them. Run from anywhere; checks the repository this script is in.
set -euo pipefail
cd "$(dirname "$0")/.."

# The patterns are written so that this file does not match itself.
dots='\.\.'
patterns=(
    "${dots}/shared([/\`'\" ]|$)"
    "${dots}/${dots}/${dots}/"
    "(^|[^A-Za-z0-9_.~-])/(work|home|root|Users)/"
)
found=0
for p in "${patterns[@]}"; do
    if git grep -nIE "$p" -- ':!Cargo.lock' ':!testdata/'; then
        found=1
    fi
done
if [ "$found" -ne 0 ]; then
    echo "check-self-contained: the lines above name paths outside the repository" >&2
    exit 1
fi
echo "check-self-contained: no path outside the repository"
