#!/usr/bin/env bash
# Scale check of mss: 100,000 registered users, memory, and restore after restart.
#
#   bench/scale.sh [--no-build] [--mss-bin PATH] [--rate 4000] [--count 100000]
#                  [--no-kamailio] [--no-write]
#
# Starts mss (fresh data dir) with the 100,000 benchmark users, registers every
# one of them with SIPp (reg-auth, Expires 3600), reads the number of
# registered contacts from the admin API and mss's peak RSS, stops mss, starts
# it again on the same data dir and measures the time until all registrations
# are back. The count comes from the Prometheus gauge
#   mss_registered_contacts   (GET http://ADMIN/metrics)
# or, when /metrics lacks it, from the length of GET http://ADMIN/api/registrations.
# First, as a reference, Kamailio (bench/kamailio/kamailio.cfg, usrloc in memory)
# gets the same registrations and its memory is reported (--no-kamailio skips it).
# Ports: SIP 127.0.0.1:15080, admin 127.0.0.1:15081, Kamailio 15070, SIPp 15090
# (BENCH_* to override).
# Results: bench/results/scale-*/scale.json, and a table in BENCHMARKS.md between
# <!-- bench-scale:start --> and <!-- bench-scale:end --> (unless --no-write).
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
WORK="${BENCH_WORK:-/tmp/mss-bench}"
MSS_PORT="${BENCH_MSS_PORT:-15080}"
MSS_ADMIN="${BENCH_MSS_ADMIN:-127.0.0.1:15081}"
export BENCH_UAC_PORT="${BENCH_UAC_PORT:-15090}" BENCH_UAS_PORT="${BENCH_UAS_PORT:-15091}"
KAM_PORT="${BENCH_KAMAILIO_PORT:-15070}"
BUILD=1 MSS_BIN="" RATE=4000 COUNT="${BENCH_USERS:-100000}" KAM=(--with-kamailio)
WRITE=(--benchmarks-md "$ROOT/BENCHMARKS.md")
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) BUILD=0 ;;
    --mss-bin) MSS_BIN="$2"; shift ;;
    --rate) RATE="$2"; shift ;;
    --count) COUNT="$2"; shift ;;
    --no-kamailio) KAM=() ;;
    --no-write) WRITE=() ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "scale.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
# shellcheck source=lib/common.sh
. "$BENCH_DIR/lib/common.sh"

mkdir -p "$WORK" "$BENCH_DIR/results"
PIDFILE="$WORK/scale-pids"
: > "$PIDFILE"
trap 'stop_started "$PIDFILE"' EXIT
trap 'exit 130' INT TERM
ensure_packages
check_ports "$MSS_PORT" "${MSS_ADMIN##*:}" "$BENCH_UAC_PORT" "$KAM_PORT"
if [ -z "$MSS_BIN" ]; then
  MSS_BIN="$(build_mss "$BUILD")" || MSS_BIN="$WORK/no-mss-binary"
fi
USERS_DIR="$WORK/users-$COUNT"
python3 "$BENCH_DIR/lib/gen_users.py" --out "$USERS_DIR" --count "$COUNT" \
  --mss-ini "$WORK/mss-scale.ini" --mss-port "$MSS_PORT" --mss-admin "$MSS_ADMIN" \
  --data-dir "$WORK/mss-scale-data"
timeout --signal=TERM --kill-after=20 900 \
  python3 "$BENCH_DIR/lib/bench.py" scale --users "$USERS_DIR" --work "$WORK" \
  --results "$BENCH_DIR/results" --pidfile "$PIDFILE" --mss-bin "$MSS_BIN" \
  --mss-ini "$WORK/mss-scale.ini" --mss-port "$MSS_PORT" --mss-admin "$MSS_ADMIN" \
  --scale-rate "$RATE" --kamailio-port "$KAM_PORT" "${KAM[@]}" "${WRITE[@]}" &
echo $! >> "$PIDFILE"   # the driver first: on exit it is stopped (and stops its servers)
wait $!
