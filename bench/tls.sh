#!/usr/bin/env bash
# TLS probe of mss: 10,000 idle TLS connections held (mss's memory), and the registration
# rate over TLS (connections kept, with session resumption; new connections resumed or
# not) against the same client over UDP.
#
#   bench/tls.sh [--no-build] [--mss-bin PATH] [--regload-bin PATH] [--connections 10000]
#                [--duration 10] [--reg-connections 8] [--reconnect-every 1] [--rounds 2]
#                [--hold 10] [--no-write]
#
# Starts mss (release build, fresh data dir, its self-signed certificate) on free loopback
# ports, runs bench/lib/tls_probe.py (its docstring says what it measures and how; the
# registrations come from crates/mss-regload, built here too; --connections 0 skips the
# idle connections), and writes the table into BENCHMARKS.md between
# <!-- bench-tls:start --> and <!-- bench-tls:end --> (unless --no-write). Raw results:
# bench/results/tls-*/tls.json. Raises the open-file limit to its hard limit (the client
# and mss each hold one descriptor per connection). Bounded: the whole run is stopped
# after 15 minutes; every process it starts is stopped by its PID on exit.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
WORK="${BENCH_WORK:-/tmp/mss-bench}"
BUILD=1 MSS_BIN="" REGLOAD_BIN="" ARGS=() WRITE=(--benchmarks-md "$ROOT/BENCHMARKS.md") CONNS=10000
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) BUILD=0 ;;
    --mss-bin) MSS_BIN="$2"; shift ;;
    --regload-bin) REGLOAD_BIN="$2"; shift ;;
    --connections) CONNS="$2"; shift ;;
    --duration|--reg-connections|--reconnect-every|--rounds|--hold) ARGS+=("$1" "$2"); shift ;;
    --no-write) WRITE=() ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "tls.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
# shellcheck source=lib/common.sh
. "$BENCH_DIR/lib/common.sh"

need=$((CONNS + 1000))
hard="$(ulimit -Hn)"
if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
  log "the open-file hard limit is $hard; $need are needed for $CONNS connections (raise it, or --connections fewer)"
  exit 1
fi
ulimit -n "$hard"

mkdir -p "$WORK" "$BENCH_DIR/results"
PIDFILE="$WORK/tls-pids"
: > "$PIDFILE"
trap 'stop_started "$PIDFILE"' EXIT
trap 'exit 130' INT TERM
if [ -z "$MSS_BIN" ]; then
  MSS_BIN="$(build_mss "$BUILD")"
fi
if [ -z "$REGLOAD_BIN" ]; then
  REGLOAD_BIN="$(build_regload "$BUILD")"
fi
timeout --signal=TERM --kill-after=20 900 \
  python3 "$BENCH_DIR/lib/tls_probe.py" --mss-bin "$MSS_BIN" --regload-bin "$REGLOAD_BIN" --work "$WORK" \
  --results "$BENCH_DIR/results" --pidfile "$PIDFILE" --connections "$CONNS" \
  "${ARGS[@]}" "${WRITE[@]}" &
echo $! >> "$PIDFILE"
wait $!
