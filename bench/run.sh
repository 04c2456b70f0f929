#!/usr/bin/env bash
# Capacity benchmark: mss and Kamailio side by side under the same SIPp scenarios.
#
#   bench/run.sh [--quick] [--only reg-auth,msg-online,msg-offline]
#                [--servers kamailio,mss] [--no-build] [--no-install]
#                [--mss-bin PATH] [--no-write]
#
# Installs SIPp/Kamailio/tshark/sqlite3 when missing, builds mss (release),
# generates 100,000 users (SIPp CSV, Kamailio SQLite subscriber db, mss.ini),
# then for every scenario starts each server fresh, finds its highest rate with
# zero failed calls and zero retransmissions, measures CPU per call, memory and
# latency, and writes the table into BENCHMARKS.md between
# <!-- bench:start --> and <!-- bench:end -->. Raw SIPp statistics go to
# bench/results/ (git-ignored). See bench/README.md.
#
# Everything runs on 127.0.0.1; every load is bounded in calls and time; full
# mode finishes in under 15 minutes, --quick in about 5.
# Ports (override with the environment): Kamailio 15070, mss SIP 15080 and
# admin 15081, SIPp client 15090, SIPp UAS 15091.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
WORK="${BENCH_WORK:-/tmp/mss-bench}"
USERS_DIR="$WORK/users"
KAM_PORT="${BENCH_KAMAILIO_PORT:-15070}"
MSS_PORT="${BENCH_MSS_PORT:-15080}"
MSS_ADMIN="${BENCH_MSS_ADMIN:-127.0.0.1:15081}"
USER_COUNT="${BENCH_USERS:-100000}"
export BENCH_UAC_PORT="${BENCH_UAC_PORT:-15090}" BENCH_UAS_PORT="${BENCH_UAS_PORT:-15091}"

QUICK=() ONLY=() SERVERS="kamailio,mss" BUILD=1 INSTALL=1 WRITE=1 MSS_BIN="" EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=(--quick) ;;
    --only) ONLY=(--only "$2"); shift ;;
    --servers) SERVERS="$2"; shift ;;
    --no-build) BUILD=0 ;;
    --no-install) INSTALL=0 ;;
    --no-write) WRITE=0 ;;
    --mss-bin) MSS_BIN="$2"; shift ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# shellcheck source=lib/common.sh
. "$BENCH_DIR/lib/common.sh"

mkdir -p "$WORK" "$BENCH_DIR/results"
PIDFILE="$WORK/pids"
: > "$PIDFILE"
trap 'stop_started "$PIDFILE"' EXIT
trap 'exit 130' INT TERM

[ "$INSTALL" = 1 ] && ensure_packages
check_ports "$KAM_PORT" "$MSS_PORT" "${MSS_ADMIN##*:}" "$BENCH_UAC_PORT" "$BENCH_UAS_PORT"

if [[ ",$SERVERS," == *",mss,"* ]]; then
  if [ -z "$MSS_BIN" ]; then
    MSS_BIN="$(build_mss "$BUILD")" || MSS_BIN=""
  fi
  [ -n "$MSS_BIN" ] || MSS_BIN="$WORK/no-mss-binary"
fi

log "generating $USER_COUNT users in $USERS_DIR"
python3 "$BENCH_DIR/lib/gen_users.py" --out "$USERS_DIR" --count "$USER_COUNT" \
  --mss-ini "$WORK/mss.ini" --mss-port "$MSS_PORT" --mss-admin "$MSS_ADMIN" \
  --data-dir "$WORK/mss-data"

ARGS=(run --users "$USERS_DIR" --work "$WORK" --results "$BENCH_DIR/results"
      --pidfile "$PIDFILE" --servers "$SERVERS" --kamailio-port "$KAM_PORT"
      --mss-bin "${MSS_BIN:-mss}" --mss-ini "$WORK/mss.ini" --mss-port "$MSS_PORT"
      --mss-admin "$MSS_ADMIN")
[ "$WRITE" = 1 ] && ARGS+=(--benchmarks-md "$ROOT/BENCHMARKS.md")
# timeout: a hard stop well above the expected run time (full < 15 min)
timeout --signal=TERM --kill-after=20 1500 \
  python3 "$BENCH_DIR/lib/bench.py" "${ARGS[@]}" "${QUICK[@]}" "${ONLY[@]}" "${EXTRA[@]}" &
echo $! >> "$PIDFILE"   # the driver first: on exit it is stopped (and stops its servers)
wait $!
