#!/usr/bin/env python3
"""Callgrind instructions per call of mss for each benchmark scenario (driver of
bench/callgrind.sh; see there and bench/README.md, "Instructions per call").

For each scenario, twice (a small and a large call count, by default 3,000 and
9,000): a fresh mss (fresh data dir, the benchmark users) under
`valgrind --tool=callgrind`, for msg-online the online recipient registered from
the UAS port and a SIPp UAS answering its MESSAGEs (as bench/lib/loads.py does
it), a short warm-up (WARMUP_CALLS at WARMUP_RATE, the same in both runs: valgrind
translates the code of each new path on first use, slowly enough to make SIPp
retransmit), the SIPp load at the given rate, then SIGINT and the program totals
of callgrind_annotate. Per call = (total(large) - total(small)) / (large - small):
start-up, the registration and the warm-up are in both totals and drop out.

The rate is 100/s by default, not the 300/s of the earlier rounds in
docs/perf-log.md: at 300/s mss under valgrind is busy enough that how much work
each wake-up finds, and how many writes the store's writer groups into one commit,
depend on timing (the machine's load, valgrind's thread scheduling, fsync), and a
commit costs ~30-40k instructions; the same binary then measured 150k-178k per
msg-offline call. At 100/s nearly every write is its own commit and repeated runs
agree within ~1%. The store commits per call (mss_store_commits_total from the
admin API's /metrics, read after each load) are printed beside the result.
Compare numbers only at the same rate and with similar commits per call.

Every call of every load must succeed. A load with retransmissions (the server
fell behind SIPp's 500-ms timer) is not clean: the scenario is measured again at
the fallback rate; if it still retransmits there, the line is marked. Only the
mss process runs under valgrind (all its threads are counted); SIPp does not.
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench  # noqa: E402
import loads  # noqa: E402
import servers  # noqa: E402
import sipp  # noqa: E402

BENCH_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WARMUP_CALLS = 20
WARMUP_RATE = 10


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def on_signal(signum, _frame):
    raise SystemExit("stopped by signal %d" % signum)


def program_totals(annotate_output):
    """Instruction count of the `PROGRAM TOTALS` line of callgrind_annotate, or None.

    valgrind 3.19 prints `12,345,678  PROGRAM TOTALS`, later versions
    `12,345,678 (100.0%)  PROGRAM TOTALS`.
    """
    for line in annotate_output.splitlines():
        if "PROGRAM TOTALS" in line:
            m = re.match(r"\s*([0-9][0-9,]*)", line)
            if m:
                return int(m.group(1).replace(",", ""))
    return None


def per_call(total_small, total_large, calls_small, calls_large):
    return (total_large - total_small) / float(calls_large - calls_small)


STORE_METRICS = ("mss_store_commits_total", "mss_store_writes_total")


def store_counters(metrics_text):
    """{name: value} of the store's commit and write counters in a /metrics text."""
    out = {}
    for line in metrics_text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in STORE_METRICS:
            try:
                out[parts[0]] = int(float(parts[1]))
            except ValueError:
                pass
    return out


def read_store_counters(admin):
    """The store counters from mss's admin API, or {} (older binary, no admin)."""
    try:
        status, body = bench.http_get(admin, "/metrics", timeout=30)
    except OSError:
        return {}
    return store_counters(body) if status == 200 else {}


class CallgrindMss(servers.Mss):
    """mss serve under valgrind --tool=callgrind, stopped with SIGINT."""

    name = "mss-callgrind"

    def __init__(self, port, workdir, register_pid, binary, ini, data_dir, out_file):
        super().__init__(port, workdir, register_pid, binary, ini, data_dir)
        self.out_file = out_file
        self.log = out_file + ".log"

    def command(self):
        return ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + self.out_file,
                ] + super().command()

    def stop(self, wait_s=300):
        """SIGINT, then wait for mss to shut down and callgrind to write its file.

        Returns the exit status, or None when it had to be killed (no totals then)."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(wait_s)
            except subprocess.TimeoutExpired:
                log("mss under callgrind did not stop within %d s after SIGINT; killed" % wait_s)
                proc.kill()
                proc.wait()
                return None
        return proc.returncode


class Runner:
    def __init__(self, a):
        self.a = a
        self.pids_file = a.pidfile
        self.lds = loads.Loads(os.path.join(BENCH_DIR, "scenarios"), a.users, a.work,
                               a.domain, a.uac_port, a.uas_port, self.register_pid)

    def register_pid(self, pid):
        if self.pids_file:
            with open(self.pids_file, "a") as f:
                f.write("%d\n" % pid)

    def check_load(self, label, scenario, res):
        """(problems, retransmissions) of one SIPp load: every call must succeed."""
        st = res["stats"]
        calls = res["calls"]
        ok = sipp.counter(st, "SuccessfulCall")
        failed = sipp.counter(st, "FailedCall")
        retrans = sipp.counter(st, "Retransmissions")
        problems = []
        if not st:
            problems.append("%s: no SIPp statistics (SIPp exit status %s)" % (label, res["rc"]))
        elif ok != calls or failed:
            problems.append("%s: %d of %d calls successful, %d failed (SIPp exit status %s)"
                            % (label, ok, calls, failed, res["rc"]))
        if res["aborted"]:
            problems.append("%s: %s" % (label, res["aborted"]))
        if scenario in ("msg-online", "calls"):
            uas = res["uas_stats"]
            got = sipp.counter(uas, "SuccessfulCall")
            if got != calls:
                problems.append("%s: the UAS completed %d calls, expected %d"
                                % (label, got, calls))
            # a message the UAS saw twice was retransmitted by mss
            retrans += sipp.trouble(uas)
        return problems, retrans

    def measure(self, scenario, calls, rate, tag):
        """One fresh server under callgrind, one load; returns a dict (total or problems)."""
        a = self.a
        base = os.path.join(a.work, "%s-%s-%d" % (scenario, tag, calls))
        out_file = base + ".callgrind.out"
        for stale in (out_file, out_file + ".log"):
            if os.path.exists(stale):
                os.unlink(stale)
        server = CallgrindMss(a.mss_port, a.work, self.register_pid, a.mss_bin, a.mss_ini,
                              base + ".data", out_file)
        # calls: max_calls and [media] relay = never (or --relay always), as in the calls
        # phase
        server.calls_relay = a.relay
        server.use_scenario(scenario)
        result = {"calls": calls, "rate": rate, "problems": [], "retrans": 0}
        t0 = time.monotonic()
        reason = server.start(fresh=True, ready_timeout_s=a.ready_timeout)
        if reason:
            result["problems"].append("mss under callgrind did not start: %s" % reason)
            return result
        log("  %s %d calls at %d/s: mss ready after %.0f s under callgrind"
            % (scenario, calls, rate, time.monotonic() - t0))
        target = "127.0.0.1:%d" % a.mss_port
        try:
            # msg-online: the online recipient; calls: the 1,000 callees, from the UAS port,
            # slower than the calls phase's 500/s (mss under valgrind falls behind that)
            if scenario == "calls":
                if not self.lds.register_callees(target, base + "-callees-register",
                                                 rate=a.register_rate):
                    result["problems"].append("the callees could not register (see "
                                              "%s-callees-register.*)" % base)
                    return result
            else:
                reason = self.lds.prepare(scenario, target, base)
                if reason:
                    result["problems"].append(reason)
                    return result
            csv = self.lds.csv_for(scenario)
            n = len(csv.rows)
            if calls + WARMUP_CALLS > n:
                result["problems"].append("%d calls need more than %d users" % (calls, n))
                return result
            # warm-up on the last rows of the file; the load then starts at row 0
            csv.cursor = n - WARMUP_CALLS
            warm = self.lds.step(target, scenario, csv, WARMUP_RATE,
                                 WARMUP_CALLS / float(WARMUP_RATE), base + "-warmup",
                                 early_abort=False)
            problems, _ = self.check_load("warm-up", scenario, warm)
            if problems:
                result["problems"] += problems
                return result
            res = self.lds.step(target, scenario, csv, rate, calls / float(rate), base,
                                early_abort=False)
            problems, retrans = self.check_load("%d calls at %d/s" % (calls, rate),
                                                scenario, res)
            result["problems"] += problems
            result["retrans"] = retrans
            result["wall_s"] = res["wall_s"]
            # the writer commits what is queued in one transaction (group commit): how many
            # commits a load takes depends on timing, and each costs instructions
            result["store"] = read_store_counters(a.admin)
            if problems:
                log("    SIPp logs: %s.*" % base)
        finally:
            status = server.stop()
        if status != 0:
            result["problems"].append("mss under callgrind exited with status %s (see %s)"
                                      % (status, server.log))
            return result
        ann = subprocess.run(["callgrind_annotate", out_file], capture_output=True,
                             text=True, timeout=600)
        total = program_totals(ann.stdout)
        if total is None:
            result["problems"].append("no PROGRAM TOTALS in callgrind_annotate %s: %s"
                                      % (out_file, (ann.stderr or ann.stdout)[-500:]))
            return result
        result["total"] = total
        store = result.get("store", {})
        log("  %s %d calls at %d/s: %s instructions, %d retransmissions, store commits %s "
            "(writes %s), load %.1f s, %.0f s in all" % (
                scenario, calls, rate, format(total, ","), result["retrans"],
                store.get("mss_store_commits_total", "?"), store.get("mss_store_writes_total", "?"),
                result.get("wall_s", 0), time.monotonic() - t0))
        return result

    def scenario(self, scenario):
        a = self.a
        small, large = a.calls
        rates = [a.rate] + ([a.fallback_rate] if a.fallback_rate and
                            a.fallback_rate != a.rate else [])
        last = None
        for i, rate in enumerate(rates):
            tag = "r%d" % rate
            runs = []
            for calls in (small, large):
                r = self.measure(scenario, calls, rate, tag)
                runs.append(r)
                if r["problems"] or r["retrans"]:
                    break
            last = {"scenario": scenario, "rate": rate, "runs": runs}
            bad = [p for r in runs for p in r["problems"]]
            retrans = sum(r["retrans"] for r in runs)
            if not bad and not retrans:
                break
            what = "; ".join(bad) if bad else "%d retransmissions" % retrans
            if i + 1 < len(rates):
                log("  %s at %d/s not clean (%s): measuring again at %d/s"
                    % (scenario, rate, what, rates[i + 1]))
            elif not bad and len(runs) < 2:
                # retransmissions even at the lowest rate: measure the large run anyway
                runs.append(self.measure(scenario, large, rate, tag))
        return last


def commits_per_call(small, large):
    """Store commits per call between the two runs, or None when unknown."""
    key = "mss_store_commits_total"
    c0, c1 = small.get("store", {}).get(key), large.get("store", {}).get(key)
    if c0 is None or c1 is None:
        return None
    return (c1 - c0) / float(large["calls"] - small["calls"])


def format_line(res):
    runs = res["runs"]
    bad = [p for r in runs for p in r["problems"]]
    if bad or len(runs) < 2:
        return "%-12s FAILED at %d/s: %s" % (res["scenario"], res["rate"],
                                             "; ".join(bad) or "incomplete")
    s, l = runs
    pc = per_call(s["total"], l["total"], s["calls"], l["calls"])
    retrans = s["retrans"] + l["retrans"]
    cpc = commits_per_call(s, l)
    note = "" if not retrans else "  [%d retransmissions: not a clean measurement]" % retrans
    return "%-12s %9s  (%s, %s)  %d/s  %s%s" % (
        res["scenario"], format(int(round(pc)), ","), format(s["total"], ","),
        format(l["total"], ","), res["rate"], "?" if cpc is None else "%.2f" % cpc, note)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mss-bin", required=True)
    ap.add_argument("--mss-ini", required=True)
    ap.add_argument("--users", required=True, help="folder of gen_users.py's CSV files")
    ap.add_argument("--work", required=True)
    ap.add_argument("--pidfile")
    ap.add_argument("--domain", default="bench.test")
    ap.add_argument("--mss-port", type=int, required=True)
    ap.add_argument("--uac-port", type=int, required=True)
    ap.add_argument("--uas-port", type=int, required=True)
    ap.add_argument("--admin", required=True, help="mss admin API address (mss.ini's admin)")
    ap.add_argument("--only", help="comma-separated scenarios (default: all three)")
    ap.add_argument("--calls", default="3000,9000", help="SMALL,LARGE (default 3000,9000)")
    ap.add_argument("--rate", type=int, default=100,
                    help="SIPp call rate (default 100/s: see bench/README.md)")
    ap.add_argument("--fallback-rate", type=int, default=50,
                    help="rate of a second attempt when a load is not clean (0: none)")
    ap.add_argument("--relay", choices=("never", "always"), default="never",
                    help="calls: the media relay (default never, as the calls phase)")
    ap.add_argument("--hold-ms", type=int, default=1000,
                    help="calls: the hold time between the ACK and the BYE (default 1000)")
    ap.add_argument("--register-rate", type=int, default=50,
                    help="calls: rate of the callees' registrations (default 50/s)")
    ap.add_argument("--ready-timeout", type=int, default=300,
                    help="seconds for mss under callgrind to answer SIP")
    a = ap.parse_args()
    a.calls = tuple(int(x) for x in a.calls.split(","))
    if len(a.calls) != 2 or not 0 < a.calls[0] < a.calls[1]:
        ap.error("--calls needs SMALL,LARGE with 0 < SMALL < LARGE")
    scenarios = a.only.split(",") if a.only else list(loads.CAPACITY_SCENARIOS)
    for s in scenarios:
        if s not in loads.SIP_SCENARIOS:
            ap.error("unknown scenario %s (have %s)" % (s, ", ".join(loads.SIP_SCENARIOS)))
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    runner = Runner(a)
    runner.lds.hold_ms = a.hold_ms
    lines, failed = [], False
    for s in scenarios:
        log("%s: %d and %d calls at %d/s" % (s, a.calls[0], a.calls[1], a.rate))
        res = runner.scenario(s)
        line = format_line(res)
        log(line)
        lines.append(line)
        failed = failed or "FAILED" in line
    print("%-12s %9s  (total %d calls, total %d calls)  rate  store commits/call" % (
        "scenario", "instr/call", a.calls[0], a.calls[1]))
    for line in lines:
        print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
