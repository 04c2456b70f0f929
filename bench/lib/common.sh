# Shell helpers shared by bench/run.sh, scale.sh, smoke.sh and callgrind.sh (sourced).

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Stop every process listed in the pid file (one PID per line), by PID, only if
# it is still one of ours (the driver under `timeout`, sipp, kamailio, dumpcap, mss, or mss
# under valgrind --tool=callgrind; the media phase's mss-rtpload and the rtpengine it started).
stop_started() {
  local pidfile="$1" pid comm left
  [ -f "$pidfile" ] || return 0
  left=()
  while read -r pid; do
    [ -n "$pid" ] && [ -d "/proc/$pid" ] || continue
    comm="$(cat "/proc/$pid/comm" 2>/dev/null || true)"
    case "$comm" in
      timeout|sipp|kamailio|dumpcap|mss|callgrind-amd64|mss-rtpload|rtpengine) kill -TERM "$pid" 2>/dev/null && left+=("$pid") ;;
    esac
  done < "$pidfile"
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    local alive=()
    for pid in "${left[@]}"; do [ -d "/proc/$pid" ] && alive+=("$pid"); done
    [ ${#alive[@]} -eq 0 ] && return 0
    left=("${alive[@]}")
    sleep 0.5
  done
  for pid in "${left[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
}

# Install SIPp 3.6, Kamailio 5.6 (+ SQLite and extra modules), tshark and sqlite3
# when missing. Waits for another apt/dpkg run to finish first.
ensure_packages() {
  local missing=0
  for c in sipp kamailio tshark dumpcap sqlite3; do
    command -v "$c" >/dev/null 2>&1 || missing=1
  done
  for m in db_sqlite msilo async; do
    ls /usr/lib/*/kamailio/modules/"$m".so >/dev/null 2>&1 || missing=1
  done
  [ "$missing" = 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    log "missing packages and not root: apt-get install sip-tester kamailio kamailio-sqlite-modules kamailio-extra-modules tshark sqlite3"
    return 1
  fi
  local waited=0
  while fuser /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock >/dev/null 2>&1; do
    [ $waited -ge 600 ] && { log "apt/dpkg still busy after 10 minutes"; return 1; }
    [ $waited = 0 ] && log "waiting for another apt-get/dpkg to finish"
    sleep 5; waited=$((waited + 5))
  done
  log "installing sip-tester kamailio kamailio-sqlite-modules kamailio-extra-modules tshark sqlite3"
  DEBIAN_FRONTEND=noninteractive apt-get install -y sip-tester kamailio \
    kamailio-sqlite-modules kamailio-extra-modules tshark sqlite3 >&2 || {
      DEBIAN_FRONTEND=noninteractive apt-get update >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y sip-tester kamailio \
        kamailio-sqlite-modules kamailio-extra-modules tshark sqlite3 >&2
    }
}

# rtpengine (Debian's rtpengine-daemon; the media phase only, so not in ensure_packages):
# installed when missing, waiting for a running apt first. Its init script is not started
# (the media phase runs its own rtpengine in the foreground, userspace only).
ensure_rtpengine() {
  command -v rtpengine >/dev/null 2>&1 && return 0
  if [ "$(id -u)" != 0 ]; then
    log "rtpengine missing and not root: apt-get install --no-install-recommends rtpengine-daemon"
    return 1
  fi
  local waited=0
  while fuser /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock >/dev/null 2>&1; do
    [ $waited -ge 600 ] && { log "apt/dpkg still busy after 10 minutes"; return 1; }
    sleep 5; waited=$((waited + 5))
  done
  log "installing rtpengine-daemon"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends rtpengine-daemon >&2 || {
    DEBIAN_FRONTEND=noninteractive apt-get update >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends rtpengine-daemon >&2
  }
}

# Build the RTP load tool of the media phase and print its path.
# $1 = 1 to build, 0 to only look for it; $2 = release (default) or debug.
build_rtpload() {
  local target="${CARGO_TARGET_DIR:-$ROOT/target}" profile="${2:-release}" flag=(--release)
  [ "$profile" = debug ] && flag=()
  if [ "$1" = 1 ] && command -v cargo >/dev/null 2>&1; then
    log "building mss-rtpload (cargo build ${flag[*]} -p mss-rtpload, target dir $target)"
    (cd "$ROOT" && CARGO_TARGET_DIR="$target" cargo build "${flag[@]}" -p mss-rtpload >&2) || {
      log "mss-rtpload: build failed"; return 1; }
  fi
  if [ -x "$target/$profile/mss-rtpload" ]; then
    echo "$target/$profile/mss-rtpload"
  else
    log "mss-rtpload: no binary at $target/$profile/mss-rtpload"
    return 1
  fi
}

# Builds crates/mss-regload (when $1 is 1) and prints its binary's path.
build_regload() {
  local target="${CARGO_TARGET_DIR:-$ROOT/target}"
  if [ "$1" = 1 ] && command -v cargo >/dev/null 2>&1; then
    log "building mss-regload (cargo build --release -p mss-regload, target dir $target)"
    (cd "$ROOT" && CARGO_TARGET_DIR="$target" cargo build --release -p mss-regload >&2) || {
      log "mss-regload: build failed"; return 1; }
  fi
  if [ -x "$target/release/mss-regload" ]; then
    echo "$target/release/mss-regload"
  else
    log "mss-regload: no binary at $target/release/mss-regload"
    return 1
  fi
}

# Fail early when one of our loopback ports is taken (UDP or TCP).
check_ports() {
  local p busy=0
  for p in "$@"; do
    if ss -Hlnut "sport = :$p" 2>/dev/null | grep -q . ; then
      log "port $p is in use: choose others (BENCH_*_PORT, see bench/README.md)"; busy=1
    fi
  done
  return $busy
}

# Build mss (only the mss package) and print the binary path.
# $1 = 1 to build, 0 to only look for an existing binary; $2 = release (default) or debug.
build_mss() {
  local target="${CARGO_TARGET_DIR:-$ROOT/target}" profile="${2:-release}" flag=(--release)
  [ "$profile" = debug ] && flag=()
  if [ "$1" = 1 ] && command -v cargo >/dev/null 2>&1; then
    log "building mss (cargo build ${flag[*]} -p mss, target dir $target)"
    if ! (cd "$ROOT" && CARGO_TARGET_DIR="$target" cargo build "${flag[@]}" -p mss >&2); then
      log "mss: build failed"
      return 1
    fi
  fi
  if [ -x "$target/$profile/mss" ]; then
    echo "$target/$profile/mss"
  elif command -v mss >/dev/null 2>&1; then
    command -v mss
  else
    log "mss: no binary (looked in $target/$profile/mss and PATH)"
    return 1
  fi
}

# What a smoke run needs (it never installs): SIPp, Kamailio with its SQLite, msilo and
# async modules, python3. Says what is missing and how to get it; status 1 then.
require_tools() {
  local missing=() c m
  for c in sipp kamailio python3; do
    command -v "$c" >/dev/null 2>&1 || missing+=("$c")
  done
  for m in db_sqlite msilo async; do
    ls /usr/lib/*/kamailio/modules/"$m".so >/dev/null 2>&1 || missing+=("kamailio module $m")
  done
  [ ${#missing[@]} = 0 ] && return 0
  log "missing: ${missing[*]}; run scripts/install-test-deps.sh (Debian packages sip-tester kamailio kamailio-sqlite-modules kamailio-extra-modules)"
  return 1
}
