#!/usr/bin/env bash
# Smoke test of the benchmark scenarios against an already-running SIP server.
#
#   bench/smoke.sh HOST:PORT [--domain bench.test] [--count 100] [--users-dir DIR]
#                            [--only reg-auth,msg-online,msg-offline]
#                            [--calls 20] [--rate 10]
#
# Runs reg-auth, msg-online and msg-offline once each at a low rate (default 20
# calls at 10/s) and exits non-zero when any call fails. The server must know
# the benchmark users u100000.. with their derived passwords: for mss write its
# config with
#   python3 bench/lib/gen_users.py --out DIR --count 100 --no-kamailio \
#       --mss-ini mss.ini --mss-port PORT --mss-admin 127.0.0.1:APORT --data-dir DATA
# (domain bench.test unless --domain). Needs sipp (sip-tester) and python3.
# SIPp uses UDP ports 15092 (client) and 15093 (the online recipient); override
# with BENCH_UAC_PORT / BENCH_UAS_PORT. Results: bench/results/smoke-*/.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/common.sh
. "$BENCH_DIR/lib/common.sh"

[ $# -ge 1 ] || { sed -n '2,17p' "$0"; exit 2; }
case "$1" in -h|--help) sed -n '2,17p' "$0"; exit 0 ;; esac
TARGET="$1"; shift
DOMAIN="bench.test" COUNT=100 USERS_DIR="" EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --domain) DOMAIN="$2"; shift ;;
    --count) COUNT="$2"; shift ;;
    --users-dir) USERS_DIR="$2"; shift ;;
    --only|--calls|--rate) EXTRA+=("$1" "$2"); shift ;;
    *) echo "smoke.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
command -v sipp >/dev/null 2>&1 || { log "smoke: sipp not installed (apt-get install sip-tester)"; exit 2; }
export BENCH_UAC_PORT="${BENCH_UAC_PORT:-15092}" BENCH_UAS_PORT="${BENCH_UAS_PORT:-15093}"

WORK="$(mktemp -d /tmp/mss-smoke.XXXXXX)"
PIDFILE="$WORK/pids"
: > "$PIDFILE"
trap 'stop_started "$PIDFILE"; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM
if [ -z "$USERS_DIR" ]; then
  USERS_DIR="$WORK/users"
  python3 "$BENCH_DIR/lib/gen_users.py" --out "$USERS_DIR" --count "$COUNT" \
    --domain "$DOMAIN" --no-kamailio
fi
mkdir -p "$BENCH_DIR/results"
timeout --signal=TERM --kill-after=10 300 \
  python3 "$BENCH_DIR/lib/bench.py" smoke --target "$TARGET" --users "$USERS_DIR" \
  --work "$WORK" --results "$BENCH_DIR/results" --pidfile "$PIDFILE" --domain "$DOMAIN" \
  "${EXTRA[@]}" &
echo $! >> "$PIDFILE"   # the driver first: on exit it is stopped (and stops its servers)
wait $!
