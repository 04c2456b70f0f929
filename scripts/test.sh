#!/usr/bin/env bash
# The one test command: test packages, formatting, lints, every test of the workspace.
# Every step runs even after a failure, so one run shows every problem; the exit status is
# non-zero when any step failed.
#
# Tests run with cargo-nextest when it is installed (plus `cargo test --doc`, which nextest
# does not run), else with `cargo test`. Set MSS_TEST_RUNNER=cargo to force `cargo test`.
set -uo pipefail

cd "$(dirname "$0")/.."

failed=()
step() {
    local name=$1
    shift
    echo "==> $name: $*"
    if ! "$@"; then
        echo "==> $name FAILED" >&2
        failed+=("$name")
    fi
}

step deps scripts/install-test-deps.sh
step deps-python scripts/install-test-python.sh
step deps-js scripts/install-test-js.sh
# Tests that may skip when a peer is missing (the browser test) must run here.
export MSS_REQUIRE_ALL_PEERS=1
step self-contained scripts/check-self-contained.sh
step fmt cargo fmt --all -- --check
step clippy cargo clippy --workspace --all-targets -- -D warnings
# Doc comments are part of the code: a broken intra-doc link fails like a lint.
step doc env RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

# The benchmark harness's own unit tests (report, statistics, users, smoke checks). Its
# end-to-end smoke run is a cargo test: crates/mss/tests/bench_smoke.rs.
step bench-lib python3 -m unittest discover -s bench/lib

# The workspace's tests run last, so that their runner's summary closes the output.
if [ "${MSS_TEST_RUNNER:-}" != "cargo" ] && cargo nextest --version >/dev/null 2>&1; then
    step doctest cargo test --workspace --doc --no-fail-fast
    step test cargo nextest run --workspace --no-fail-fast
else
    step test cargo test --workspace --no-fail-fast
fi

if [ ${#failed[@]} -ne 0 ]; then
    echo "==> FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "==> all checks passed"
