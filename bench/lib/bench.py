#!/usr/bin/env python3
"""mss capacity benchmark driver (stdlib only). Normally started by bench/run.sh.

  bench.py run    capacity search per scenario and server, writes BENCHMARKS.md
  bench.py scale  100,000 registrations against mss, RSS, restore time after restart
  bench.py smoke  the three scenarios once at a low rate against a running server

Every load is bounded in calls and time, all traffic stays on 127.0.0.1, and
every process started here is stopped by its PID (also listed in --pidfile so
run.sh can stop them if this driver dies).
"""
import argparse
import datetime
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import check  # noqa: E402
import latency  # noqa: E402
import loads  # noqa: E402
import media  # noqa: E402
import report  # noqa: E402
import servers  # noqa: E402
import sipp  # noqa: E402

BENCH_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


class Pids:
    """Appends every started PID to a file (for run.sh's EXIT trap)."""

    def __init__(self, path):
        self.path = path

    def __call__(self, pid):
        if self.path:
            with open(self.path, "a") as f:
                f.write("%d\n" % pid)


class PortTakenOver(Exception):
    """Another program started listening on the server's port during a run."""


def on_signal(signum, _frame):
    raise SystemExit("stopped by signal %d" % signum)


# ---------------------------------------------------------------- run: capacity search

class Search:
    """Rate search for one scenario against one running server.

    Probes double the rate from --start until a probe fails, bisect between
    the last pass and the first failure down to --resolution, then confirm
    the best rate with a longer step on a freshly started server (stepping down
    by the resolution, or 10% of the probe's rate when larger, when the
    confirmation fails; at most six confirmation rates;
    if none holds, the best probe is reported, marked unconfirmed). A step that fails by a hair
    (at most 0.5% of its calls, or 3, retransmitted or failed: a blip of the
    shared machine rather than overload) is run once more. A step passes when every call
    succeeded, nothing was retransmitted (neither by the client nor by the
    server towards the UAS), and SIPp kept the rate (wall time within 5% + 1 s).
    """

    def __init__(self, a, server, scenario, lds, outdir):
        self.a = a
        self.server = server
        self.scenario = scenario
        self.loads = lds
        self.outdir = outdir
        self.csv = lds.csv_for(scenario)
        self.steps = []
        self.mem_kb = 0
        self.rss_sum_kb = 0
        self.target = "127.0.0.1:%d" % server.port

    def store_limit_near(self, calls):
        # offline recipients: stay below 10 messages per user (mss and msilo limit)
        if self.scenario != "msg-offline":
            return False
        n = len(self.csv.rows)
        return self.csv.handed_out + calls > 9 * n

    def step(self, rate, duration_s, kind):
        calls = int(rate * duration_s)
        if self.store_limit_near(calls):
            log("  %s %s: skipping %d/s, offline store limit per user would be reached"
                % (self.server.name, self.scenario, rate))
            return None
        prefix = os.path.join(self.outdir, "%s-%s-%s-%05d" % (
            self.server.name, self.scenario, kind, rate))
        cpu0 = self.server.cpu_seconds()
        res = self.loads.step(self.target, self.scenario, self.csv, rate, duration_s, prefix,
                              early_abort=not self.a.smoke)
        cpu1 = self.server.cpu_seconds()
        self.mem_kb = max(self.mem_kb, self.server.memory_kb())
        self.rss_sum_kb = max(self.rss_sum_kb, self.server.rss_sum_kb())
        st, uas = res["stats"], res["uas_stats"]
        ok = sipp.counter(st, "SuccessfulCall")
        info = {
            "kind": kind, "rate": rate, "duration_s": duration_s, "calls": calls,
            "successful": ok, "failed": sipp.counter(st, "FailedCall"),
            "retransmissions": sipp.counter(st, "Retransmissions"),
            "stray": sipp.counter(st, "OutOfCallMsgs") + sipp.counter(st, "DeadCallMsgs"),
            "uas_trouble": sipp.trouble(uas) if self.scenario in loads.UAS_SCENARIO else 0,
            "wall_s": res["wall_s"], "sipp_rc": res["rc"], "aborted": res["aborted"],
            "cpu_s": round(cpu1 - cpu0, 3),
            "cpu_us_per_op": round((cpu1 - cpu0) / ok * 1e6, 1) if ok else None,
        }
        if self.a.smoke:
            # a smoke step only checks that the pipeline works: every call succeeds
            info["passed"] = bool(not res["aborted"] and ok == calls and info["failed"] == 0
                                  and self.server.pids())
        else:
            info["passed"] = bool(
                not res["aborted"] and ok == calls and info["failed"] == 0
                and info["retransmissions"] == 0 and info["uas_trouble"] == 0
                and res["wall_s"] <= duration_s * 1.05 + 1.0 + res.get("extra_s", 0)
                and self.server.pids())
        self.steps.append(info)
        log("  %-8s %-11s %-7s %6d/s x %2ds: %s  ok=%d/%d failed=%d retrans=%d stray=%d "
            "uas=%d wall=%.1fs cpu=%s us/op%s" % (
                self.server.name, self.scenario, kind, rate, duration_s,
                "PASS" if info["passed"] else "FAIL", ok, calls, info["failed"],
                info["retransmissions"], info["stray"], info["uas_trouble"], res["wall_s"],
                info["cpu_us_per_op"], (" (%s)" % res["aborted"]) if res["aborted"] else ""))
        if not info["passed"]:
            if self.server.port_taken_over():
                raise PortTakenOver("another program bound UDP port %d during the step; "
                                    "its results are void (choose other BENCH_*_PORT values)"
                                    % self.server.port)
            if self.scenario == "calls" and not self.a.smoke:
                # the calls of a failed step live on in the server for up to 32 s (Timers
                # B, F, H: INVITE, BYE and 2xx retransmitted to the callee), and the next
                # step's callee would count them as its own trouble: start afresh
                restart_fresh(self.server, self.scenario, self.loads, self.outdir,
                              "step after %d/s" % rate)
            else:
                self.wait_idle()
        time.sleep(self.a.settle)
        return info

    def attempt(self, rate, duration_s, kind):
        """step(), repeated once when it failed by a hair (a noise blip, not overload)."""
        s = self.step(rate, duration_s, kind)
        if s is None or s["passed"]:
            return s
        trouble = s["failed"] + s["retransmissions"] + s["uas_trouble"]
        if s["successful"] and trouble <= max(3, s["successful"] // 200) and not (
                s["aborted"] or "").startswith("wall"):
            log("  %s %s: %d/s failed by %d message(s); trying it once more"
                % (self.server.name, self.scenario, rate, trouble))
            return self.step(rate, duration_s, kind + "-again")
        return s

    def wait_idle(self, limit_s=15.0):
        """After an overload, wait until the server has drained its backlog."""
        deadline = time.monotonic() + limit_s
        last = self.server.cpu_seconds()
        while time.monotonic() < deadline and self.server.pids():
            time.sleep(0.5)
            now = self.server.cpu_seconds()
            if now - last < 0.02:
                return
            last = now

    def run(self):
        a = self.a
        if a.smoke:
            # one low-rate step: the whole pipeline runs, nothing is searched
            s = self.step(a.start, a.probe, "smoke")
            return s if s and s["passed"] else None
        lo, hi, best = None, None, None
        rate = a.start
        while rate <= a.max_rate:
            s = self.attempt(rate, a.probe, "probe")
            if s is None:
                break
            if s["passed"]:
                lo, best = rate, s
                rate *= 2
            else:
                hi = rate
                break
        if lo is None and hi is not None:
            # the start rate failed: look below it
            rate = hi // 2
            while rate >= a.min_rate:
                s = self.attempt(rate, a.probe, "probe")
                if s is None:
                    break
                if s["passed"]:
                    lo, best = rate, s
                    break
                hi = rate
                rate //= 2
        res_step = a.resolution
        while lo is not None and hi is not None and hi - lo > res_step:
            mid = lo + max(res_step, ((hi - lo) // 2) // res_step * res_step)
            if mid >= hi:
                break
            s = self.attempt(mid, a.probe, "probe")
            if s is None:
                break
            if s["passed"]:
                lo, best = mid, s
            else:
                hi = mid
        if lo is not None and a.confirm > a.probe:
            probe_best, best, rate = best, None, lo
            down = max(res_step, lo // 10 // res_step * res_step)
            for _ in range(6):
                if rate < a.min_rate:
                    break
                if not restart_fresh(self.server, self.scenario, self.loads, self.outdir,
                                     "confirmation at %d/s" % rate):
                    break
                s = self.attempt(rate, a.confirm, "confirm")
                if s is None:
                    break
                if s["passed"]:
                    best = s
                    break
                rate = rate - down if rate > down else rate // 2
            if best is None and probe_best is not None:
                # nothing held for the whole confirmation: report the probe, marked
                best = dict(probe_best, unconfirmed=True)
        return best


def measure_latency(a, server, scenario, lds, outdir, best_rate):
    """A separate bounded load at a moderate common rate, captured with dumpcap.

    For calls: at --calls-lat-rate (100/s) for --calls-lat-duration, INVITE -> 180 on
    the caller's side and 200 -> ACK on the callee's (latency.Capture.summarize_calls)."""
    calls = scenario == "calls"
    rate = a.calls_lat_rate if calls else a.lat_rate
    duration = a.calls_lat_duration if calls else a.lat_duration
    if best_rate and best_rate < rate * 2:
        rate = max(a.calls_min_rate if calls else a.min_rate, best_rate // 2)
    csv = lds.csv_for(scenario)
    csv.cursor = len(csv.rows) // 3  # away from the rows the search started with
    prefix = os.path.join(outdir, "%s-%s-latency-%05d" % (server.name, scenario, rate))
    rttdir = prefix + ".rtt"
    os.makedirs(rttdir, exist_ok=True)
    cap = None
    if have_capture := latency.have_capture_tools():
        cap = latency.Capture(server.port, prefix + ".pcap", a.pids)
    try:
        res = lds.step("127.0.0.1:%d" % server.port, scenario, csv, rate, duration,
                       prefix, extra=["-trace_rtt", "-rtt_freq", "1"], cwd=rttdir,
                       early_abort=not a.smoke)
    finally:
        if cap:
            cap.stop()
    summary = None
    if cap:
        summary = (cap.summarize_calls(lds.uac_port, lds.uas_port) if calls
                   else cap.summarize())
    if summary is None:
        summary = latency.from_sipp_rtt(rttdir, "1" if calls else "2")
    if summary is None:
        return None
    summary["rate"] = rate
    summary["duration_s"] = duration
    summary["calls_ok"] = sipp.counter(res["stats"], "SuccessfulCall")
    summary["calls_failed"] = sipp.counter(res["stats"], "FailedCall")
    summary["capture"] = have_capture
    if not a.keep_pcap and cap and os.path.exists(prefix + ".pcap"):
        os.unlink(prefix + ".pcap")
    return summary


def restart_fresh(server, scenario, lds, outdir, label):
    """Stop `server` and start it again on fresh data; True when it is ready.

    A step right after an overload probe meets a server still working off that probe: a
    stateful server keeps every answered request's transaction for Timer J (32 s on UDP,
    RFC 3261 §17.2.2; a registrar may not answer statelessly, §8.2.7), so the probes'
    transactions all end in a wave half a minute later, in the middle of whatever step
    runs then; a server that keeps no transaction feels nothing. Confirmations and the
    latency run therefore start from a fresh server, for both servers alike, so that they
    measure the rate they name rather than the path the search took.
    """
    server.stop()
    deadline = time.monotonic() + 10
    while servers.port_busy(server.port) and time.monotonic() < deadline:
        time.sleep(0.2)  # the stopped server's processes let go of the port
    reason = server.start(fresh=True)
    if reason:
        log("%s: restart before the %s failed (%s)" % (server.name, label, reason))
        return False
    prefix = os.path.join(outdir, "%s-%s-%s" % (server.name, scenario,
                                                 re.sub(r"[^A-Za-z0-9]+", "-", label)))
    problem = lds.prepare(scenario, "127.0.0.1:%d" % server.port, prefix)
    if problem:
        log("%s: %s before the %s" % (server.name, problem, label))
        return False
    return True


def latency_on_fresh_server(a, server, scenario, lds, outdir, best_rate):
    """Latency at the moderate rate, measured on a freshly started server (see
    restart_fresh: the search's last steps would otherwise still be in progress)."""
    if not restart_fresh(server, scenario, lds, outdir, "latency run"):
        return None
    return measure_latency(a, server, scenario, lds, outdir, best_rate)


def measure_concurrency(a, server, lds, outdir, best_rate):
    """The server's memory holding --conc-calls established calls at once.

    A fresh server, the callees registered; its memory is read (idle), then SIPp sets
    up --conc-calls calls at --conc-rate (half the server's best rate when that is
    lower) and holds each for the whole ramp plus --conc-hold-margin seconds, so that
    every call is established at the same time; once the UAS has them all, the
    server's memory is read again (its resident set, VmRSS, for mss; the sum of PSS
    over Kamailio's processes), for a few seconds, the highest reading kept. Then the
    calls end (BYE) and SIPp's counters say whether every call succeeded. Bounded:
    -m, -timeout and a wall-clock limit of ramp + hold + 60 s."""
    if not restart_fresh(server, "calls", lds, outdir, "concurrency probe"):
        return {"error": "the server could not be started again for the probe"}
    calls = a.conc_calls
    rate = a.conc_rate
    if best_rate and best_rate < rate * 2:
        rate = max(a.calls_min_rate, best_rate // 2)
    ramp_s = calls / float(rate)
    hold_ms = int((ramp_s + a.conc_hold_margin) * 1000)
    time.sleep(1)
    out = {"calls": calls, "rate": rate, "hold_s": hold_ms / 1000.0,
           "idle_kb": server.memory_now_kb(), "memory_kb": 0, "established": 0}
    prefix = os.path.join(outdir, "%s-calls-concurrency-%05d" % (server.name, calls))
    csv = lds.csv_for("calls")
    csv.cursor = 2 * len(csv.rows) // 3  # away from the search's and the latency run's rows
    step_csv = csv.slice_file(prefix + ".csv", calls)
    timeout_s = int(ramp_s * 1.5 + hold_ms / 1000.0) + 30
    cmd = sipp.uac_command("127.0.0.1:%d" % server.port, lds.scenario_file("calls"),
                           step_csv, lds.keys("calls"), lds.uac_port, rate, calls, timeout_s,
                           prefix) + lds.call_args(hold_ms, calls)
    uas = sipp.Uas(lds.scenario_file("calls-uas"), lds.uas_port, prefix + ".uas",
                   timeout_s + 10, a.pids, extra=lds.uas_args("calls"))
    state = {"all_at": None}

    def watch(elapsed):
        # every call is in progress at the UAS (or the ramp is 3 s over, when some call
        # failed): read the memory for a few seconds
        current = sipp.gauge(sipp.read_stats(uas.stat), "CurrentCall")
        out["established"] = max(out["established"], current)
        if state["all_at"] is None and (current >= calls or elapsed >= ramp_s + 3.0):
            state["all_at"] = elapsed
        if state["all_at"] is not None and elapsed - state["all_at"] >= 1.0 and (
                elapsed - state["all_at"] <= 1.0 + a.conc_sample_s):
            out["memory_kb"] = max(out["memory_kb"], server.memory_now_kb())
            out["rss_sum_kb"] = max(out.get("rss_sum_kb", 0), server.rss_sum_kb())
            out["sampled_at_s"] = round(elapsed, 1)

    try:
        res = sipp.run_uac(cmd, prefix, timeout_s + 30, a.pids, early_abort=False, watch=watch)
    finally:
        uas_stats = uas.stop()
    os.unlink(step_csv)
    st = res["stats"]
    out.update({"successful": sipp.counter(st, "SuccessfulCall"),
                "failed": sipp.counter(st, "FailedCall"),
                "retransmissions": sipp.counter(st, "Retransmissions"),
                "uas_trouble": sipp.trouble(uas_stats), "wall_s": res["wall_s"],
                "aborted": res["aborted"]})
    out["passed"] = bool(out["memory_kb"] and out["successful"] == calls
                         and out["failed"] == 0)
    log("  %-8s calls       concurrency %d calls at %d/s, held %.0f s: %s  established=%d "
        "ok=%d/%d failed=%d retrans=%d memory %.1f MB (idle %.1f MB)" % (
            server.name, calls, rate, hold_ms / 1000.0, "PASS" if out["passed"] else "FAIL",
            out["established"], out["successful"], calls, out["failed"],
            out["retransmissions"], out["memory_kb"] / 1024.0, out["idle_kb"] / 1024.0))
    return out


def calls_settings(a):
    """A copy of the settings with the calls phase's search parameters (a call is a dozen
    messages and has a hold time: rates are far below the registrations')."""
    c = argparse.Namespace(**vars(a))
    c.start = a.calls_start
    c.resolution = a.calls_resolution
    c.min_rate = a.calls_min_rate
    c.max_rate = min(a.max_rate, a.calls_max_rate)
    return c


def first_refusal(prefix):
    """The first unexpected response of a failed SIPp load (its error log), or None:
    e.g. "501 Not Implemented" from a server that does not take calls."""
    try:
        with open(prefix + ".errors.log", errors="replace") as f:
            text = f.read(200000)
    except OSError:
        return None
    m = re.search(r"SIP/2\.0 (\d{3} [^\r\n']*)", text)
    return m.group(1).strip() if m else None


def bench_one(a, server, scenario, lds, outdir):
    log("%s / %s: starting the server" % (scenario, server.name))
    server.use_scenario(scenario)
    reason = server.start(fresh=True)
    if reason:
        log("%s: not available (%s)" % (server.name, reason))
        return {"available": False, "reason": reason}
    sa = calls_settings(a) if scenario == "calls" else a
    try:
        problem = lds.prepare(scenario, "127.0.0.1:%d" % server.port,
                              os.path.join(outdir, "%s-%s" % (server.name, scenario)))
        if problem:
            return {"available": True, "error": problem}
        search = Search(sa, server, scenario, lds, outdir)
        try:
            best = search.run()
        except PortTakenOver as e:
            log("%s %s: %s" % (server.name, scenario, e))
            return {"available": True, "error": str(e), "steps": search.steps}
        alive_at_end = bool(server.pids())
        if scenario == "calls" and best is None and search.steps:
            # no rate held at all: say why (a server that does not take calls answers 501)
            first = search.steps[0]
            refusal = first_refusal(os.path.join(outdir, "%s-%s-%s-%05d" % (
                server.name, scenario, first["kind"], first["rate"])))
            if refusal and not first["successful"]:
                return {"available": True, "steps": search.steps,
                        "error": "every call failed: the INVITE was answered %s" % refusal}
        lat = None
        if not a.no_latency and alive_at_end:
            lat = latency_on_fresh_server(sa, server, scenario, lds, outdir,
                                          best["rate"] if best else None)
        out = {"available": True, "best": best, "steps": search.steps,
               "latency": lat, "memory_kb": search.mem_kb,
               "rss_sum_kb": search.rss_sum_kb,
               "alive_at_end": alive_at_end}
        # mss-relay: 10,000 calls need 20,000 port pairs, more than its range has
        if (scenario == "calls" and not a.no_concurrency and server.pids()
                and getattr(server, "calls_relay", "never") == "never"):
            out["concurrency"] = measure_concurrency(sa, server, lds, outdir,
                                                     best["rate"] if best else None)
            out["alive_at_end"] = out["alive_at_end"] and bool(server.pids())
        return out
    finally:
        server.stop()


def machine_info():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        sipp_v = subprocess.run([sipp.SIPP, "-v"], capture_output=True, text=True,
                                timeout=10).stdout
        m = re.search(r"SIPp v?([0-9][^\s-]*)", sipp_v)
        sipp_v = m.group(1) if m else "unknown"
    except (OSError, subprocess.SubprocessError):
        sipp_v = "unknown"
    return {"nproc": os.cpu_count(), "model": model, "kernel": platform.release(),
            "sipp": sipp_v}


def rtpengine_version():
    """rtpengine's version ('Version: 10.5.3.5-1+deb12u1'), or 'not installed'."""
    try:
        out = subprocess.run(["rtpengine", "--version"], capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "not installed"
    text = (out.stdout + out.stderr).strip()
    return text.split(":", 1)[-1].strip() if text else "unknown"


def git_describe():
    """' (tree at COMMIT[+changes])' of the repository holding bench/, or ''."""
    root = os.path.dirname(BENCH_DIR)
    try:
        head = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--", "crates"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return " (tree at %s%s)" % (head, "+changes" if dirty else "") if head else ""


def filesystem_of(path):
    """Type of the filesystem holding path (ext4, tmpfs, ...), from /proc/mounts."""
    path = os.path.realpath(path)
    best, fstype = "", "unknown"
    try:
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and (path == parts[1] or path.startswith(
                        parts[1].rstrip("/") + "/")) and len(parts[1]) > len(best):
                    best, fstype = parts[1], parts[2]
    except OSError:
        pass
    return fstype


def make_servers(a):
    out = []
    for name in a.servers.split(","):
        if name == "kamailio":
            out.append(servers.Kamailio(a.kamailio_port, a.work, a.pids,
                                        os.path.join(BENCH_DIR, "kamailio", "kamailio.cfg"),
                                        os.path.join(a.users, "kamailio.db"), a.domain))
        elif name == "mss":
            out.append(servers.Mss(a.mss_port, a.work, a.pids, a.mss_bin, a.mss_ini,
                                   os.path.join(a.work, "mss-data")))
        elif name == "mss-relay":
            # the same mss with the media relay on in the calls phase (servers.py)
            srv = servers.Mss(a.mss_port, a.work, a.pids, a.mss_bin, a.mss_ini,
                              os.path.join(a.work, "mss-relay-data"))
            srv.name = "mss-relay"
            srv.calls_relay = "always"
            out.append(srv)
        else:
            raise SystemExit("unknown server %r" % name)
    return out


def cmd_run(a):
    started = datetime.datetime.now(datetime.timezone.utc)
    scenarios = a.only.split(",") if a.only else list(
        loads.SMOKE_SCENARIOS if a.smoke else loads.SCENARIOS)
    for s in scenarios:
        if s not in loads.SCENARIOS:
            raise SystemExit("unknown scenario %r (have %s)" % (s, ", ".join(loads.SCENARIOS)))
    with_media = "media" in scenarios
    scenarios = [s for s in scenarios if s != "media"]
    srvs = make_servers(a) if scenarios else []
    outdir = os.path.join(a.results, started.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(outdir, exist_ok=True)
    lds = loads.Loads(os.path.join(BENCH_DIR, "scenarios"), a.users, outdir, a.domain,
                      a.uac_port, a.uas_port, a.pids)
    lds.hold_ms = a.calls_hold_ms
    lds.ring_ms = a.calls_ring_ms
    info = machine_info()
    info["data_fs"] = filesystem_of(a.work)
    info["nice"] = os.environ.get("BENCH_NICE", "").strip() or None
    info["versions"] = {}
    for s in srvs:
        if isinstance(s, servers.Mss) and not os.access(s.binary, os.X_OK):
            info["versions"][s.name] = "not available"
        else:
            info["versions"][s.name] = s.version()
            if isinstance(s, servers.Mss):
                info["versions"][s.name] += git_describe()
    results = {}
    unavailable = set()
    for i, scenario in enumerate(scenarios):
        order = srvs if i % 2 == 0 else list(reversed(srvs))
        results[scenario] = {}
        for srv in order:
            if srv.name in unavailable:
                results[scenario][srv.name] = {"available": False, "reason": "see above"}
                continue
            if isinstance(srv, servers.Mss) and not os.access(srv.binary, os.X_OK):
                results[scenario][srv.name] = {"available": False,
                                               "reason": "no binary at %s" % srv.binary}
                unavailable.add(srv.name)
                info["versions"][srv.name] = "not available"
                log("mss: not available (no binary at %s)" % srv.binary)
                continue
            r = bench_one(a, srv, scenario, lds, outdir)
            results[scenario][srv.name] = r
            if not r.get("available"):
                unavailable.add(srv.name)
                info["versions"][srv.name] = "not available"
    media_result = None
    if with_media:
        media_result = media.run_media(a, outdir, a.pids, a.mode)
        info["versions"]["rtpengine"] = rtpengine_version()
    finished = datetime.datetime.now(datetime.timezone.utc)
    doc = {"started": started.isoformat(timespec="seconds"),
           "finished": finished.isoformat(timespec="seconds"),
           "mode": a.mode, "settings": {k: getattr(a, k) for k in (
               "probe", "confirm", "start", "min_rate", "resolution", "max_rate", "lat_rate",
               "lat_duration", "calls_start", "calls_resolution", "calls_min_rate",
               "calls_hold_ms", "calls_ring_ms", "calls_lat_rate", "calls_lat_duration", "conc_calls",
               "conc_rate", "conc_hold_margin")},
           "machine": info, "results": results}
    if media_result is not None:
        doc["media"] = media_result
        doc["rtpengine_version"] = info["versions"]["rtpengine"]
    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump(doc, f, indent=2)
    md = write_tables(doc, a.benchmarks_md, os.path.join(outdir, "table.md"))
    print(md)
    log("raw SIPp statistics and results.json in %s (%.0f s)" % (
        outdir, (finished - started).total_seconds()))
    if a.smoke:
        problems = check.smoke_problems(doc) + check.table_problems(md, doc)
        for p in problems:
            log("smoke: FAIL %s" % p)
        if problems:
            return 1
        log("smoke: every scenario passed against %s" % a.servers)
    return 0


def write_tables(doc, benchmarks_md, table_path=None):
    """Render the blocks a run has results for -- the capacity table (reg-auth and the
    MESSAGE scenarios), the calls table -- into table_path and between their markers in
    benchmarks_md; a block of a phase that did not run is left as it is. Returns the text."""
    blocks = []
    if report.has_capacity(doc):
        blocks.append((report.markdown(doc), report.START, report.END))
    if report.has_calls(doc):
        blocks.append((report.calls_markdown(doc), report.CALLS_START, report.CALLS_END))
    if media.has_media(doc):
        blocks.append((media.markdown(doc), media.MEDIA_START, media.MEDIA_END))
    md = "\n".join(b[0] for b in blocks)
    if table_path:
        with open(table_path, "w") as f:
            f.write(md)
    if benchmarks_md:
        for block, start, end in blocks:
            report.replace_between_markers(benchmarks_md, block, start, end)
        log("table written to %s" % benchmarks_md)
    return md


# ---------------------------------------------------------------- scale

def http_get(addr, path, timeout=2.0):
    import http.client
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


METRIC = "mss_registered_contacts"


def registered_count(admin):
    """Registered contacts per mss's admin API: the /metrics gauge, else /api/registrations."""
    try:
        status, body = http_get(admin, "/metrics")
        if status == 200:
            for line in body.splitlines():
                if line.startswith(METRIC) and not line.startswith("#"):
                    parts = line.split()
                    if len(parts) >= 2:
                        return int(float(parts[1]))
        status, body = http_get(admin, "/api/registrations", timeout=10)
        if status == 200:
            return len(json.loads(body))
    except (OSError, ValueError):
        pass
    return None


def register_all(a, port, all_csv, total, prefix):
    """Register every user of all_csv at --scale-rate; returns the SIPp result."""
    duration = total / float(a.scale_rate)
    cmd = sipp.uac_command("127.0.0.1:%d" % port,
                           os.path.join(BENCH_DIR, "scenarios", "reg-auth.xml"), all_csv,
                           {"domain": a.domain, "expires": 3600}, a.uac_port,
                           a.scale_rate, total, int(duration * 2) + 30, prefix)
    log("registering %d users at %d/s on 127.0.0.1:%d" % (total, a.scale_rate, port))
    return sipp.run_uac(cmd, prefix, duration * 2 + 40, a.pids, early_abort=False)


def scale_kamailio(a, all_csv, total, outdir):
    """Reference: Kamailio's memory with every user registered (usrloc in memory)."""
    kam = servers.Kamailio(a.kamailio_port, a.work, a.pids,
                           os.path.join(BENCH_DIR, "kamailio", "kamailio.cfg"),
                           os.path.join(a.users, "kamailio.db"), a.domain)
    reason = kam.start(fresh=True)
    if reason:
        log("kamailio: not available (%s)" % reason)
        return {"error": reason}
    try:
        idle_kb = kam.memory_kb()
        res = register_all(a, kam.port, all_csv, total, os.path.join(outdir, "kamailio-register-all"))
        time.sleep(1)
        out = {"registered_ok": sipp.counter(res["stats"], "SuccessfulCall"),
               "failed": sipp.counter(res["stats"], "FailedCall"),
               "pss_sum_kb_idle": idle_kb, "pss_sum_kb": kam.memory_kb(),
               "rss_sum_kb": kam.rss_sum_kb()}
        log("kamailio: registered %d/%d; memory (sum of PSS) %.1f MB (%.1f MB idle)" % (
            out["registered_ok"], total, out["pss_sum_kb"] / 1024.0, idle_kb / 1024.0))
        return out
    finally:
        kam.stop()


def cmd_scale(a):
    outdir = os.path.join(a.results, "scale-" + time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(outdir, exist_ok=True)
    srv = servers.Mss(a.mss_port, a.work, a.pids, a.mss_bin, a.mss_ini,
                      os.path.join(a.work, "mss-scale-data"))
    # all users: the online recipient row plus every reg.csv row
    all_csv = os.path.join(outdir, "all.csv")
    with open(all_csv, "w") as out:
        out.write("SEQUENTIAL\n")
        for name in ("uas.csv", "reg.csv"):
            with open(os.path.join(a.users, name)) as f:
                out.writelines(f.readlines()[1:])
    with open(all_csv) as f:
        total = sum(1 for _ in f) - 1
    doc = {"users": total, "rate": a.scale_rate, "metric": METRIC}
    if a.with_kamailio:
        doc["kamailio"] = scale_kamailio(a, all_csv, total, outdir)
    reason = None if os.access(a.mss_bin, os.X_OK) else "no binary at %s" % a.mss_bin
    reason = reason or srv.start(fresh=True)
    if reason:
        log("mss: not available (%s)" % reason)
        doc["mss"] = "not available: " + reason
        with open(os.path.join(outdir, "scale.json"), "w") as f:
            json.dump(doc, f, indent=2)
        print(json.dumps(doc, indent=2))
        return 3
    try:
        doc["rss_idle_kb"] = srv.memory_kb()
        doc["vmrss_idle_kb"] = srv.rss_sum_kb()
        res = register_all(a, a.mss_port, all_csv, total, os.path.join(outdir, "register-all"))
        ok = sipp.counter(res["stats"], "SuccessfulCall")
        doc["registered_ok"] = ok
        doc["failed"] = sipp.counter(res["stats"], "FailedCall")
        doc["register_wall_s"] = res["wall_s"]
        time.sleep(1)
        doc["count_before_restart"] = registered_count(a.mss_admin)
        doc["rss_kb"] = srv.memory_kb()
        doc["vmrss_kb"] = srv.rss_sum_kb()
        log("registered %d/%d (failed %d); %s reports %s; peak RSS %.1f MB" % (
            ok, total, doc["failed"], METRIC, doc["count_before_restart"],
            doc["rss_kb"] / 1024.0))
        srv.stop()
        t0 = time.monotonic()
        reason = srv.start(fresh=False, ready_timeout_s=120)
        if reason:
            doc["restart_error"] = reason
            log("restart failed: %s" % reason)
        else:
            doc["sip_ready_after_s"] = round(time.monotonic() - t0, 3)
            want = doc["count_before_restart"] or ok
            n, deadline = None, time.monotonic() + a.restore_timeout
            while time.monotonic() < deadline:
                n = registered_count(a.mss_admin)
                if n is not None and n >= want:
                    break
                time.sleep(0.1)
            doc["count_after_restart"] = n
            doc["restored_after_s"] = round(time.monotonic() - t0, 3) if n and n >= want else None
            doc["rss_after_restart_kb"] = srv.memory_kb()
            doc["vmrss_after_restart_kb"] = srv.rss_sum_kb()
            log("after restart: SIP answers after %.2f s; %s = %s after %s s" % (
                doc["sip_ready_after_s"], METRIC, n, doc["restored_after_s"]))
    finally:
        srv.stop()
    with open(os.path.join(outdir, "scale.json"), "w") as f:
        json.dump(doc, f, indent=2)
    print(json.dumps(doc, indent=2))
    if a.benchmarks_md:
        md = report.scale_markdown(doc, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                   srv.version() + git_describe())
        report.replace_between_markers(a.benchmarks_md, md, report.SCALE_START,
                                       report.SCALE_END)
        log("scale table written to %s" % a.benchmarks_md)
    good = (doc.get("registered_ok") == total and doc.get("restored_after_s") is not None)
    return 0 if good else 1


# ---------------------------------------------------------------- smoke

def cmd_smoke(a):
    outdir = os.path.join(a.results, "smoke-" + time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(outdir, exist_ok=True)
    lds = loads.Loads(os.path.join(BENCH_DIR, "scenarios"), a.users, outdir, a.domain,
                      a.uac_port, a.uas_port, a.pids)
    lds.expires = 120  # a smoke run leaves no long-lived registrations behind
    host, port = a.target.rsplit(":", 1)
    if not servers.sip_ping(host, int(port), 5):
        log("smoke: no SIP answer from %s" % a.target)
        return 2
    failures = 0
    for scenario in (a.only.split(",") if a.only else loads.CAPACITY_SCENARIOS):
        prefix = os.path.join(outdir, scenario)
        if scenario == "msg-online":
            if not lds.register_online_user(a.target, prefix + "-uas-register", expires=120):
                log("smoke %-11s FAIL (the online recipient could not register; see %s)"
                    % (scenario, outdir))
                failures += 1
                continue
        csv = lds.csv_for(scenario)
        # Rows of the first half only: reg-auth then registers first-half users,
        # senders are first-half users and their offline recipients (half the
        # list away) are second-half users, who therefore stay unregistered.
        # A different slice on every run spreads the offline messages.
        half = len(csv.rows) // 2
        if half < a.calls:
            log("smoke: need at least %d users for %d calls" % (2 * a.calls + 2, a.calls))
            return 2
        csv.cursor = int(time.time() * 7) % (half - a.calls + 1)
        res = lds.step(a.target, scenario, csv, a.rate, a.calls / float(a.rate), prefix)
        st = res["stats"]
        ok = sipp.counter(st, "SuccessfulCall")
        good = ok == res["calls"] and sipp.counter(st, "FailedCall") == 0
        log("smoke %-11s %s  %d/%d successful, %d failed, %d retransmissions%s" % (
            scenario, "PASS" if good else "FAIL", ok, res["calls"],
            sipp.counter(st, "FailedCall"), sipp.counter(st, "Retransmissions"),
            "" if good else " (see %s.errors.log)" % prefix))
        failures += 0 if good else 1
    return 1 if failures else 0


# ---------------------------------------------------------------- cli

def smoke_settings(a):
    """Settings of `run --smoke`: 20 calls at 10/s per step unless given (--start, --probe)."""
    if a.start == 1000:
        a.start = 10
    if a.probe is None:
        a.probe = 2
    a.confirm = a.probe
    a.resolution = a.start
    a.min_rate = 1
    a.max_rate = a.start
    if a.lat_rate == 1000:
        a.lat_rate = a.start
    if a.lat_duration is None:
        a.lat_duration = 2
    a.settle = min(a.settle, 0.2)
    # calls: the same one step of 20 calls; the latency run and a concurrency probe of
    # 20 calls, each held a second
    a.calls_start = a.start
    a.calls_resolution = a.start
    a.calls_min_rate = 1
    a.calls_max_rate = a.start
    if a.calls_lat_rate == 100:
        a.calls_lat_rate = a.start
    if a.calls_lat_duration is None:
        a.calls_lat_duration = a.lat_duration
    if a.conc_calls == 10000:
        a.conc_calls = 2 * a.start
    if a.conc_rate == 500:
        a.conc_rate = a.start
    a.conc_hold_margin = min(a.conc_hold_margin, 3.0)
    a.conc_sample_s = min(a.conc_sample_s, 1.0)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p):
        p.add_argument("--users", required=True, help="folder from gen_users.py")
        p.add_argument("--work", default="/tmp/mss-bench", help="scratch folder")
        p.add_argument("--results", default=os.path.join(BENCH_DIR, "results"))
        p.add_argument("--pidfile", default=None)
        p.add_argument("--domain", default="bench.test")
        p.add_argument("--uac-port", type=int, default=int(os.environ.get("BENCH_UAC_PORT", 15090)))
        p.add_argument("--uas-port", type=int, default=int(os.environ.get("BENCH_UAS_PORT", 15091)))
        p.add_argument("--only", default=None, help="comma-separated scenarios")

    def mss_args(p):
        p.add_argument("--mss-bin", default="mss")
        p.add_argument("--mss-ini", default=None)
        p.add_argument("--mss-port", type=int, default=15080)
        p.add_argument("--mss-admin", default="127.0.0.1:15081")

    r = sub.add_parser("run")
    common(r)
    mss_args(r)
    r.add_argument("--servers", default="kamailio,mss")
    r.add_argument("--kamailio-port", type=int, default=15070)
    r.add_argument("--quick", action="store_true")
    r.add_argument("--smoke", action="store_true",
                   help="each scenario once at --start calls/s for --probe s, no search; "
                        "exit status 1 unless every call of every step succeeded")
    r.add_argument("--start", type=int, default=1000)
    r.add_argument("--max-rate", type=int, default=64000)
    r.add_argument("--min-rate", type=int, default=100)
    r.add_argument("--resolution", type=int, default=None)
    r.add_argument("--probe", type=int, default=None, help="probe step seconds")
    r.add_argument("--confirm", type=int, default=None, help="confirmation step seconds")
    r.add_argument("--settle", type=float, default=1.0)
    r.add_argument("--lat-rate", type=int, default=1000)
    r.add_argument("--lat-duration", type=int, default=None)
    r.add_argument("--no-latency", action="store_true")
    # the calls phase (scenario "calls"): its own search, latency run and concurrency probe
    r.add_argument("--calls-start", type=int, default=200)
    r.add_argument("--calls-resolution", type=int, default=None,
                   help="default 100/s, 200/s with --quick")
    r.add_argument("--calls-min-rate", type=int, default=50)
    r.add_argument("--calls-max-rate", type=int, default=20000)
    r.add_argument("--calls-hold-ms", type=int, default=1000,
                   help="hold time of each call between ACK and BYE in the search")
    r.add_argument("--calls-ring-ms", type=int, default=50,
                   help="the callee's time between its 180 and its 200")
    r.add_argument("--calls-lat-rate", type=int, default=100)
    r.add_argument("--calls-lat-duration", type=int, default=None,
                   help="seconds of the calls latency run (default 10, 5 with --quick)")
    r.add_argument("--conc-calls", type=int, default=10000,
                   help="established calls at once in the concurrency probe")
    r.add_argument("--conc-rate", type=int, default=500)
    r.add_argument("--conc-hold-margin", type=float, default=10.0,
                   help="each call of the probe is held for the ramp plus this")
    r.add_argument("--conc-sample-s", type=float, default=3.0)
    r.add_argument("--no-concurrency", action="store_true")
    r.add_argument("--keep-pcap", action="store_true")
    r.add_argument("--benchmarks-md", default=None)
    # the media phase (scenario "media", media.py): the RTP load tool through mss and rtpengine
    r.add_argument("--rtpload-bin", default=None, help="the mss-rtpload binary")
    r.add_argument("--media-calls", type=int, default=None,
                   help="calls of the media phase (default 1,000; 200 with --quick)")
    r.add_argument("--media-seconds", type=int, default=None,
                   help="seconds per target (default 10; 5 with --quick)")
    r.add_argument("--media-repeat", type=int, default=None,
                   help="repetitions, in alternating order (default 2; 1 with --quick)")
    r.add_argument("--media-ng-port", type=int,
                   default=int(os.environ.get("BENCH_RTPENGINE_NG_PORT", 22230)))
    r.add_argument("--media-mss-ports", default="30000-39999")
    r.add_argument("--media-rtpengine-ports", default="40000-49999")

    s = sub.add_parser("scale")
    common(s)
    mss_args(s)
    s.add_argument("--scale-rate", type=int, default=4000)
    s.add_argument("--with-kamailio", action="store_true",
                   help="first measure Kamailio's memory with the same registrations")
    s.add_argument("--kamailio-port", type=int, default=15070)
    s.add_argument("--restore-timeout", type=float, default=120)
    s.add_argument("--benchmarks-md", default=None)

    m = sub.add_parser("smoke")
    common(m)
    m.add_argument("--target", required=True, help="HOST:PORT of a running server")
    m.add_argument("--calls", type=int, default=20)
    m.add_argument("--rate", type=int, default=10)

    rp = sub.add_parser("report", help="render the table of a results.json again")
    rp.add_argument("results_json")
    rp.add_argument("--benchmarks-md", default=None)

    a = ap.parse_args()
    if a.cmd == "report":
        with open(a.results_json) as f:
            doc = json.load(f)
        # The media readings are summarised again from the tool's runs, so that a table
        # rendered again shows what the current summary computes.
        if media.has_media(doc) and doc["media"].get("tool"):
            doc["media"]["summary"] = media.summarize(doc["media"]["tool"])
        print(write_tables(doc, a.benchmarks_md))
        return 0
    a.pids = Pids(a.pidfile)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    os.makedirs(a.work, exist_ok=True)
    if a.cmd == "run":
        a.mode = "smoke" if a.smoke else "quick" if a.quick else "full"
        if a.smoke:
            smoke_settings(a)
        if a.probe is None:
            a.probe = 5
        if a.confirm is None:
            a.confirm = 5 if a.quick else 20
        if a.resolution is None:
            a.resolution = 2000 if a.quick else 1000
        if a.lat_duration is None:
            a.lat_duration = 3 if a.quick else 5
        if a.calls_resolution is None:
            a.calls_resolution = 200 if a.quick else 100
        if a.calls_lat_duration is None:
            a.calls_lat_duration = 5 if a.quick else 10
        return cmd_run(a)
    if a.cmd == "scale":
        return cmd_scale(a)
    return cmd_smoke(a)


if __name__ == "__main__":
    sys.exit(main())
