#!/usr/bin/env bash
# Capacity benchmark: mss and Kamailio side by side under the same SIPp scenarios.
#
#   bench/run.sh [--quick | --smoke] [--only reg-auth,msg-online,msg-offline,calls,media]
#                [--servers kamailio,mss] [--no-build] [--no-install]
#                [--mss-bin PATH] [--no-write]
#
# Installs SIPp/Kamailio/tshark/sqlite3 when missing, builds mss (release),
# generates 100,000 users (SIPp CSV, Kamailio SQLite subscriber db, mss.ini),
# then for every scenario starts each server fresh, finds its highest rate with
# zero failed calls and zero retransmissions, measures CPU per call, memory and
# latency, and writes the table into BENCHMARKS.md between
# <!-- bench:start --> and <!-- bench:end -->. The calls phase (scenario
# "calls": SIPp caller -> server -> SIPp callee, Kamailio with
# kamailio/kamailio-calls.cfg) also probes 10,000 concurrent calls and has its
# own table between <!-- bench-calls:start --> and <!-- bench-calls:end -->;
# `--only calls` runs it alone. The media phase ("media", last of a full or
# quick run) streams G.711-sized RTP for 1,000 calls (200 with --quick) through
# the mss relay and through rtpengine (Debian rtpengine-daemon, installed when
# missing, userspace forwarding) with crates/mss-rtpload, and writes its table
# between <!-- bench-media:start --> and <!-- bench-media:end -->; `--only
# media` runs it alone (~2.5 min; ~40 s with --quick). Raw SIPp statistics go to
# bench/results/ (git-ignored). See bench/README.md.
#
# --smoke checks that the harness works instead of measuring: each scenario
# once per server at 10 calls/s (20 calls), with the latency run, CPU/memory
# readings and the report, then the scale check with the same 200 users; free
# ports, a temporary work dir, a debug build (unless --mss-bin/--no-build), the
# table written to a copy of BENCHMARKS.md in the work dir, never installs
# packages; exit status non-zero when a call or a step failed (~2 min).
# Everything runs on 127.0.0.1; every load is bounded in calls and time; full
# mode finishes in under 25 minutes (under 15 without the calls phase), --quick
# in about 10 (--only calls: about 5).
# Ports (override with the environment): Kamailio 15070, mss SIP 15080 and
# admin 15081, SIPp client 15090, SIPp UAS 15091.
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"

QUICK=() SMOKE=0 ONLY=() SERVERS="kamailio,mss" BUILD=1 INSTALL=1 WRITE=1 MSS_BIN="" EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=(--quick) ;;
    --smoke) SMOKE=1 ;;
    --only) ONLY=(--only "$2"); shift ;;
    --servers) SERVERS="$2"; shift ;;
    --no-build) BUILD=0 ;;
    --no-install) INSTALL=0 ;;
    --no-write) WRITE=0 ;;
    --mss-bin) MSS_BIN="$2"; shift ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# shellcheck source=lib/common.sh
. "$BENCH_DIR/lib/common.sh"

PROFILE=release RESULTS="$BENCH_DIR/results" LIMIT=2400 MODE=("${QUICK[@]}")
if [ "$SMOKE" = 1 ]; then
  # ports chosen free now (other test suites may run next to us), unless given
  export PATH="$PATH:/usr/sbin:/usr/local/sbin"   # kamailio lives in sbin
  require_tools || exit 2
  PORTS="$(python3 "$BENCH_DIR/lib/ports.py" 5)" || exit 2
  read -r P1 P2 P3 P4 P5 <<< "$PORTS"
  export BENCH_KAMAILIO_PORT="${BENCH_KAMAILIO_PORT:-$P1}" BENCH_MSS_PORT="${BENCH_MSS_PORT:-$P2}"
  export BENCH_MSS_ADMIN="${BENCH_MSS_ADMIN:-127.0.0.1:$P3}"
  export BENCH_UAC_PORT="${BENCH_UAC_PORT:-$P4}" BENCH_UAS_PORT="${BENCH_UAS_PORT:-$P5}"
  export BENCH_USERS="${BENCH_USERS:-200}"
  WORK="${BENCH_WORK:-$(mktemp -d /tmp/mss-bench-smoke.XXXXXX)}"
  PROFILE=debug RESULTS="$WORK/results" LIMIT=300 MODE=(--smoke) INSTALL=0
  [ -f "$ROOT/BENCHMARKS.md" ] && cp "$ROOT/BENCHMARKS.md" "$WORK/BENCHMARKS.md"
fi
WORK="${WORK:-${BENCH_WORK:-/tmp/mss-bench}}"
USERS_DIR="$WORK/users"
KAM_PORT="${BENCH_KAMAILIO_PORT:-15070}"
MSS_PORT="${BENCH_MSS_PORT:-15080}"
MSS_ADMIN="${BENCH_MSS_ADMIN:-127.0.0.1:15081}"
USER_COUNT="${BENCH_USERS:-100000}"
export BENCH_UAC_PORT="${BENCH_UAC_PORT:-15090}" BENCH_UAS_PORT="${BENCH_UAS_PORT:-15091}"
# the table goes into BENCHMARKS.md; a smoke run writes into its copy in the work dir
TABLE="$ROOT/BENCHMARKS.md"
[ "$SMOKE" = 1 ] && TABLE="$WORK/BENCHMARKS.md"

mkdir -p "$WORK" "$RESULTS"
PIDFILE="$WORK/pids"
: > "$PIDFILE"
trap 'stop_started "$PIDFILE"' EXIT
trap 'exit 130' INT TERM

# the media phase: in a full or quick run, or when --only names it (never in a plain smoke run)
WANT_MEDIA=0 SIP_PHASES=1
if [ ${#ONLY[@]} = 0 ]; then
  [ "$SMOKE" = 1 ] || WANT_MEDIA=1
else
  [[ ",${ONLY[1]}," == *",media,"* ]] && WANT_MEDIA=1
  [ "${ONLY[1]}" = media ] && SIP_PHASES=0
fi
NG_PORT="${BENCH_RTPENGINE_NG_PORT:-22230}"
[ "$INSTALL" = 1 ] && [ "$SIP_PHASES" = 1 ] && ensure_packages
[ "$INSTALL" = 1 ] && [ "$WANT_MEDIA" = 1 ] && { ensure_rtpengine || true; }
check_ports "$KAM_PORT" "$MSS_PORT" "${MSS_ADMIN##*:}" "$BENCH_UAC_PORT" "$BENCH_UAS_PORT"
[ "$WANT_MEDIA" = 1 ] && check_ports "$NG_PORT"

RTPLOAD_BIN=""
if [ "$WANT_MEDIA" = 1 ]; then
  RTPLOAD_BIN="$(build_rtpload "$BUILD" "$PROFILE")" || RTPLOAD_BIN="$WORK/no-rtpload-binary"
fi

if [ "$SIP_PHASES" = 1 ] && [[ ",$SERVERS," == *",mss,"* ]]; then
  if [ -z "$MSS_BIN" ]; then
    MSS_BIN="$(build_mss "$BUILD" "$PROFILE")" || MSS_BIN=""
  fi
  [ -n "$MSS_BIN" ] || MSS_BIN="$WORK/no-mss-binary"
fi

log "generating $USER_COUNT users in $USERS_DIR"
python3 "$BENCH_DIR/lib/gen_users.py" --out "$USERS_DIR" --count "$USER_COUNT" \
  --mss-ini "$WORK/mss.ini" --mss-port "$MSS_PORT" --mss-admin "$MSS_ADMIN" \
  --data-dir "$WORK/mss-data"

ARGS=(run --users "$USERS_DIR" --work "$WORK" --results "$RESULTS"
      --pidfile "$PIDFILE" --servers "$SERVERS" --kamailio-port "$KAM_PORT"
      --mss-bin "${MSS_BIN:-mss}" --mss-ini "$WORK/mss.ini" --mss-port "$MSS_PORT"
      --mss-admin "$MSS_ADMIN" --media-ng-port "$NG_PORT")
[ -n "$RTPLOAD_BIN" ] && ARGS+=(--rtpload-bin "$RTPLOAD_BIN")
[ "$WRITE" = 1 ] && ARGS+=(--benchmarks-md "$TABLE")
# timeout: a hard stop well above the expected run time (full < 25 min, smoke ~2 min)
timeout --signal=TERM --kill-after=20 "$LIMIT" \
  python3 "$BENCH_DIR/lib/bench.py" "${ARGS[@]}" "${MODE[@]}" "${ONLY[@]}" "${EXTRA[@]}" &
echo $! >> "$PIDFILE"   # the driver first: on exit it is stopped (and stops its servers)
rc=0
wait $! || rc=$?
[ "$SMOKE" = 1 ] || exit "$rc"
MARKERS=("<!-- bench:start -->" "<!-- bench:end -->")

# smoke: the scale check's code path too (every user registered, restart, restore)
if [ "$rc" = 0 ] && [[ ",$SERVERS," == *",mss,"* ]] && [ -z "${ONLY[*]}" ]; then
  SCALE=(scale --users "$USERS_DIR" --work "$WORK" --results "$RESULTS" --pidfile "$PIDFILE"
         --mss-bin "$MSS_BIN" --mss-ini "$WORK/mss.ini" --mss-port "$MSS_PORT"
         --mss-admin "$MSS_ADMIN" --scale-rate 100 --kamailio-port "$KAM_PORT"
         --restore-timeout 30)
  [[ ",$SERVERS," == *",kamailio,"* ]] && SCALE+=(--with-kamailio)
  [ "$WRITE" = 1 ] && SCALE+=(--benchmarks-md "$TABLE")
  log "smoke: scale check with $USER_COUNT users"
  timeout --signal=TERM --kill-after=20 120 python3 "$BENCH_DIR/lib/bench.py" "${SCALE[@]}" &
  echo $! >> "$PIDFILE"
  wait $! || { rc=$?; log "smoke: FAIL scale check (exit status $rc)"; }
  MARKERS+=("<!-- bench-scale:start -->" "<!-- bench-scale:end -->")
fi
if [ "$rc" = 0 ] && [ "$WRITE" = 1 ]; then
  for m in "${MARKERS[@]}"; do
    [ "$(grep -cF -- "$m" "$TABLE")" = 1 ] || {
      log "smoke: FAIL $TABLE should hold $m exactly once"; rc=1; }
  done
fi
if [ "$rc" = 0 ]; then
  log "smoke: PASS (work dir $WORK removed)"
  [ -n "${BENCH_WORK:-}" ] || rm -rf "$WORK"
else
  log "smoke: FAIL; logs, SIPp statistics and the table are in $WORK"
fi
exit "$rc"
