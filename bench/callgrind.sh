#!/usr/bin/env bash
# Instructions per call of mss under callgrind, for reg-auth, msg-online and msg-offline
# (and calls, on request).
#
#   bench/callgrind.sh [MSS_BIN] [--only SCENARIOS] [--rate N] [--fallback-rate N]
#                      [--calls SMALL,LARGE] [--hold-ms MS] [--relay MODE] [--keep]
#
#   MSS_BIN            the mss binary (default: $MSS_BIN, else target/release/mss, which
#                      honours CARGO_TARGET_DIR); it is not built here
#   --only LIST        comma-separated scenarios (default reg-auth,msg-online,msg-offline;
#                      `calls` is the calls phase's B2BUA call, not in the default: a call
#                      costs mss ~4x a registration, so run it alone at a lower rate,
#                      e.g. --only calls --rate 20 --calls 300,900)
#   --rate N           SIPp call rate (default 100/s; the earlier rounds of
#                      docs/perf-log.md used 300/s, which varies more, see below)
#   --fallback-rate N  when a load at --rate has a failed call or a retransmission (mss
#                      under valgrind fell behind SIPp's 500-ms timer), the scenario is
#                      measured again, both runs, at this rate (default 50/s; 0: never)
#   --calls A,B        the two call counts (default 3000,9000)
#   --hold-ms MS       calls: time between the ACK and the BYE (default 1000)
#   --relay MODE       calls: [media] relay = never (default, as the calls phase) or
#                      always (each call's SDP allocates relay ports; no RTP flows)
#   --keep             keep the work dir (callgrind output files for callgrind_annotate,
#                      SIPp logs); it is also kept when something failed
#
# For each scenario, twice (A and B calls): a fresh mss (fresh data dir, the 100,000
# benchmark users of lib/gen_users.py, digest_algorithms = md5 as in the capacity
# benchmark) under `valgrind --tool=callgrind`, for msg-online the online recipient
# registered from the UAS port and a SIPp UAS (scenarios/uas-msg.xml) answering its
# MESSAGEs (for calls: the calls phase's mss-calls.ini, the 1,000 callees registered from
# the UAS port and scenarios/calls-uas.xml answering), a warm-up of 20 calls at 10/s, the SIPp load, SIGINT, then PROGRAM TOTALS from
# callgrind_annotate. Per call = (total(B) - total(A)) / (B - A): start-up, registration
# and warm-up are in both totals and drop out. Only mss runs under valgrind (all its
# threads count). Every call must succeed, else the failure is printed and the exit
# status is 1. Output, one line per scenario on stdout (progress on stderr):
#
#   scenario     instr/call  (total 3000 calls, total 9000 calls)  rate  store commits/call
#   reg-auth       160,313  (2,974,408,774, 3,936,289,073)  100/s  0.97
#
# The last column: the store's writer groups whatever is queued into one commit, so the
# commits per call (from mss's /metrics) depend on timing, and each commit costs ~30-40k
# instructions. At 300/s mss under valgrind is busy enough for that grouping (and the
# work each wake-up finds) to vary from run to run: the same binary measured 150k-178k
# per msg-offline call there; at 100/s nearly every write is its own commit and repeated
# runs agree within ~1%. Compare results only at the same rate and similar commits/call.
#
# Loopback only; ports chosen free (lib/ports.py) unless BENCH_CG_MSS_PORT,
# BENCH_CG_ADMIN_PORT, BENCH_CG_UAC_PORT, BENCH_CG_UAS_PORT are set; every SIPp load is
# bounded (-m, -timeout, a wall-clock limit) and the whole run by `timeout`
# (BENCH_CG_LIMIT seconds, default 3600). Work dir: $BENCH_CG_WORK, else a fresh
# mss-callgrind.XXXXXX in /dev/shm (else /tmp). Needs valgrind, sipp (Debian: sip-tester),
# python3. A full run takes about 9 minutes on 2 cores (about 5 with --rate 300).
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
# shellcheck source=lib/common.sh
. "$BENCH_DIR/lib/common.sh"

BIN="${MSS_BIN:-}" KEEP=0 DRIVER=()
while [ $# -gt 0 ]; do
  case "$1" in
    --only|--rate|--fallback-rate|--calls|--hold-ms|--relay)
      [ $# -ge 2 ] || { echo "callgrind.sh: $1 needs a value" >&2; exit 2; }
      DRIVER+=("$1" "$2"); shift ;;
    --keep) KEEP=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    -*) echo "callgrind.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) BIN="$1" ;;
  esac
  shift
done
BIN="${BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/mss}"
[ -x "$BIN" ] || { log "no mss binary at $BIN (build it: cargo build --release -p mss)"; exit 2; }
BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"

missing=()
for c in valgrind callgrind_annotate sipp python3; do
  command -v "$c" >/dev/null 2>&1 || missing+=("$c")
done
if [ ${#missing[@]} -ne 0 ]; then
  log "missing: ${missing[*]} (Debian: apt-get install -y valgrind sip-tester python3)"
  exit 2
fi

PORTS="$(python3 "$BENCH_DIR/lib/ports.py" 4)" || exit 2
read -r P1 P2 P3 P4 <<< "$PORTS"
MSS_PORT="${BENCH_CG_MSS_PORT:-$P1}" ADMIN_PORT="${BENCH_CG_ADMIN_PORT:-$P2}"
UAC_PORT="${BENCH_CG_UAC_PORT:-$P3}" UAS_PORT="${BENCH_CG_UAS_PORT:-$P4}"
check_ports "$MSS_PORT" "$ADMIN_PORT" "$UAC_PORT" "$UAS_PORT" || exit 2

# tmpfs when there is one: the data dirs' fsyncs then take no time, so the disk's load
# does not change how the store's writes are grouped into commits (see above)
TMP=/tmp
[ -d /dev/shm ] && [ -w /dev/shm ] && TMP=/dev/shm
WORK="${BENCH_CG_WORK:-$(mktemp -d "$TMP/mss-callgrind.XXXXXX")}"
mkdir -p "$WORK"
PIDFILE="$WORK/pids"
: > "$PIDFILE"
# an interrupted run removes its own work dir (unless --keep); a failed one keeps it
REMOVE_WORK=0
[ "$KEEP" = 0 ] && [ -z "${BENCH_CG_WORK:-}" ] && REMOVE_WORK=1
on_exit() {
  stop_started "$PIDFILE"
  if [ "$REMOVE_WORK" = 1 ]; then rm -rf "$WORK"; fi
}
trap on_exit EXIT
trap 'exit 130' INT TERM

VERSION="$("$BIN" --version 2>/dev/null | head -1)" || VERSION=""
log "mss: $BIN (${VERSION:-version unknown})"
log "generating the 100,000 benchmark users in $WORK/users"
# data_dir in mss.ini is a placeholder: every run passes a fresh --data-dir
python3 "$BENCH_DIR/lib/gen_users.py" --out "$WORK/users" --count 100000 --no-kamailio \
  --mss-ini "$WORK/mss.ini" --mss-port "$MSS_PORT" --mss-admin "127.0.0.1:$ADMIN_PORT" \
  --data-dir "$WORK/mss-data"

log "ports: mss $MSS_PORT (admin $ADMIN_PORT), SIPp client $UAC_PORT, UAS $UAS_PORT; work dir $WORK"
start=$(date +%s)
rc=0
timeout --signal=TERM --kill-after=30 "${BENCH_CG_LIMIT:-3600}" \
  python3 "$BENCH_DIR/lib/callgrind.py" --mss-bin "$BIN" --mss-ini "$WORK/mss.ini" \
    --users "$WORK/users" --work "$WORK" --pidfile "$PIDFILE" --mss-port "$MSS_PORT" \
    --uac-port "$UAC_PORT" --uas-port "$UAS_PORT" --admin "127.0.0.1:$ADMIN_PORT" \
    "${DRIVER[@]}" &
echo $! >> "$PIDFILE"
wait $! || rc=$?
log "took $(( $(date +%s) - start )) s"
[ "$rc" = 0 ] || REMOVE_WORK=0
[ "$REMOVE_WORK" = 1 ] || log "work dir kept: $WORK (callgrind outputs *.callgrind.out, SIPp logs)"
exit "$rc"
