"""The media phase: RTP through the mss relay and through rtpengine, in one run.

`mss-rtpload run` (crates/mss-rtpload) does the work: N calls on loopback, each two
endpoints sending a 172-byte RTP packet every 20 ms through the relay under test, the far
side checking sequence numbers and timestamps (loss, reordering, RFC 3550 jitter,
transit time), the relay's CPU time and memory read from /proc. Targets, in turn and in
alternating order per repetition: the direct path (no relay: the baseline transit time),
the mss relay thread (as mss serve runs it: io_uring and a 0.1-ms EEVDF slice; with epoll
and recvmmsg; with epoll and recv_from; io_uring with the kernel's default slice; io_uring
with SCHED_FIFO), rtpengine with its default worker threads and with one. This module starts it (bounded), keeps its JSON and renders the table
between MEDIA_START and MEDIA_END in BENCHMARKS.md.
"""
import json
import os
import statistics
import subprocess
import time

MEDIA_START = "<!-- bench-media:start -->"
MEDIA_END = "<!-- bench-media:end -->"
TARGETS = ("direct", "mss", "mss-slice", "mss-kernel-slice", "mss-recvmmsg", "mss-plain",
           "rtpengine", "rtpengine-1t")
NAMES = {"direct": "direct path (no relay)",
         "mss": "mss (io_uring, `SCHED_FIFO` 10 where permitted: the default)",
         "mss-slice": "mss (io_uring, 0.1-ms slice: the default without the privilege)",
         "mss-kernel-slice": "mss (io_uring, the kernel's slice)",
         "mss-recvmmsg": "mss (epoll, `recvmmsg`, 0.1-ms slice)",
         "mss-plain": "mss (epoll, `recv_from`, 0.1-ms slice)",
         "rtpengine": "rtpengine (default threads)",
         "rtpengine-1t": "rtpengine (`--num-threads=1`)"}

# The targets of issue 16 for the relay.
CPU_RATIO_MAX = 0.5          # mss CPU per relayed packet <= 0.5 x rtpengine's userspace
ADDED_JITTER_P99_MAX_US = 1000.0
CORES_MAX = 1.0
KB_PER_CALL_MAX = 100.0
TARGET_CALLS = 1000

# calls, seconds per target, repetitions
SIZES = {"full": (1000, 10, 2), "quick": (200, 5, 1), "smoke": (10, 1, 1)}


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def command(a, outdir, mode):
    calls, seconds, repeat = SIZES[mode]
    calls = a.media_calls or calls
    seconds = a.media_seconds or seconds
    repeat = a.media_repeat or repeat
    args = ["run", "--calls", str(calls), "--seconds", str(seconds),
            "--repeat", str(repeat), "--targets", ",".join(TARGETS),
            "--rtpengine-ng", "127.0.0.1:%d" % a.media_ng_port,
            "--mss-ports", a.media_mss_ports, "--rtpengine-ports", a.media_rtpengine_ports]
    # what the table shows: the same load from a checkout, without this run's file paths
    a.media_repro = "cargo run --release -p mss-rtpload -- " + " ".join(args)
    cmd = [a.rtpload_bin] + args + [
           "--json", os.path.join(outdir, "media.json"),
           "--rtpengine-log", os.path.join(outdir, "rtpengine.log")]
    if a.pidfile:
        cmd += ["--pidfile", a.pidfile]
    return cmd, calls, seconds, repeat


def run_media(a, outdir, pids, mode):
    """Runs the load tool; returns the phase's result for results.json."""
    if not a.rtpload_bin or not os.access(a.rtpload_bin, os.X_OK):
        return {"available": False, "reason": "no mss-rtpload binary at %s" % a.rtpload_bin}
    cmd, calls, seconds, repeat = command(a, outdir, mode)
    nice = os.environ.get("BENCH_NICE", "").strip()
    full = (["nice", "-n", nice] if nice else []) + cmd
    # per run: setup (~1 s for 1,000 calls) + seconds + at most 1 s of drain
    limit = 60 + repeat * len(TARGETS) * (seconds + 15)
    log("media: %d calls, %d s per target, %d repetition(s): %s" % (
        calls, seconds, repeat, " ".join(cmd)))
    with open(os.path.join(outdir, "media.txt"), "w") as out:
        proc = subprocess.Popen(full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        pids(proc.pid)
        try:
            text, _ = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            proc.kill()
            text, _ = proc.communicate()
            text += "\nstopped after %d s\n" % limit
        out.write(text)
    for line in text.splitlines():
        log("  " + line)
    try:
        with open(os.path.join(outdir, "media.json")) as f:
            tool = json.load(f)
    except (OSError, ValueError) as e:
        return {"available": False, "reason": "no report from mss-rtpload (%s); exit status %s"
                % (e, proc.returncode), "command": " ".join(cmd)}
    return {"available": True, "command": " ".join(cmd), "repro": a.media_repro,
            "run_sh": "bench/run.sh --only media" + (" --quick" if mode == "quick" else ""),
            "exit_status": proc.returncode,
            "tool": tool, "summary": summarize(tool)}


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _range(values):
    values = [v for v in values if v is not None]
    return (min(values), max(values)) if values else None


def machine_us_per_packet(r, direct):
    """The CPU the machine spent per relayed packet because of the relay: the relay's threads
    plus the load tool, minus the tool alone on the direct path of the same repetition, per
    packet the relay forwarded (µs). On loopback the kernel's delivery of a datagram (the
    softirq) is charged to whichever thread runs when it is done: a relay that preempts the
    tool's sender is charged for part of the sender's work, one that waits is not. The sum
    does not depend on who is charged."""
    u = (r or {}).get("relay") or {}
    tool, share, per = r.get("tool_cpu_share"), u.get("core_share"), u.get("cpu_us_per_packet")
    base = (direct or {}).get("tool_cpu_share")
    if None in (tool, share, per, base) or not share or not per:
        return None
    packets_per_s = share / (per * 1e-6)
    return (tool + share - base) / packets_per_s * 1e6


def summarize(tool):
    """Per target: the readings of every repetition and their medians; per repetition the
    jitter each relay added (its transit p99 minus the direct path's in that repetition)."""
    by_rep = {}
    for e in tool.get("runs", []):
        by_rep.setdefault(e["repetition"], {})[e["target"]] = e
    out = {}
    for t in TARGETS:
        reps = []
        for rep in sorted(by_rep):
            e = by_rep[rep].get(t)
            if not e:
                continue
            if not e.get("report"):
                reps.append({"error": e.get("error", "failed")})
                continue
            r = e["report"]
            direct = (by_rep[rep].get("direct") or {}).get("report")
            u = r.get("relay") or {}
            tot = r["totals"]
            reps.append({
                "sent": tot["sent"], "lost": tot["lost"], "reordered": tot["reordered"],
                "duplicates": tot["duplicates"],
                "changed": tot["seq_mismatch"] + tot["timestamp_mismatch"] + tot["ssrc_mismatch"],
                "misdelivered": r["misdelivered"],
                "transit_p50_us": r["transit"]["p50_us"], "transit_p99_us": r["transit"]["p99_us"],
                "read_p99_us": (r.get("transit_read") or {}).get("p99_us"),
                "added_p99_us": (r["transit"]["p99_us"] - direct["transit"]["p99_us"]
                                 if direct and t != "direct" else None),
                "jitter_mean_ms": r["jitter_mean_ms"],
                "send_late_p99_us": r["send_lateness"]["p99_us"],
                "cpu_us_per_packet": u.get("cpu_us_per_packet"),
                "core_share": u.get("core_share"), "wait_ms": u.get("wait_ms"),
                "sleeps_per_packet": u.get("sleeps_per_packet"),
                "preemptions_per_packet": u.get("preemptions_per_packet"),
                "cpu_ms": u.get("cpu_ms"), "kb_per_call": u.get("kb_per_call"),
                "rss_idle_kb": u.get("rss_idle_kb"),
                "rss_kb": max(u.get("rss_calls_kb") or 0, u.get("rss_end_kb") or 0) or None,
                "loadavg": r.get("loadavg"),
                "tool_cpu_share": r.get("tool_cpu_share"),
                "machine_us_per_packet": machine_us_per_packet(r, direct) if t != "direct" else None,
            })
        ok = [x for x in reps if "error" not in x]
        med = {k: _median([x.get(k) for x in ok]) for k in (
            "cpu_us_per_packet", "core_share", "wait_ms", "sleeps_per_packet",
            "preemptions_per_packet", "kb_per_call", "transit_p50_us",
            "transit_p99_us", "read_p99_us", "added_p99_us", "jitter_mean_ms", "send_late_p99_us", "rss_kb",
            "rss_idle_kb")}
        med["range_cpu_us_per_packet"] = _range([x.get("cpu_us_per_packet") for x in ok])
        med["machine_us_per_packet"] = _median([x.get("machine_us_per_packet") for x in ok])
        med["range_machine_us_per_packet"] = _range([x.get("machine_us_per_packet") for x in ok])
        med["range_added_p99_us"] = _range([x.get("added_p99_us") for x in ok])
        med["range_tool_cpu_share"] = _range([x.get("tool_cpu_share") for x in ok])
        for k in ("sent", "lost", "reordered", "duplicates", "changed", "misdelivered"):
            med[k] = sum(x[k] for x in ok) if ok else None
        med["repetitions"] = len(ok)
        med["errors"] = [x["error"] for x in reps if "error" in x]
        out[t] = {"runs": reps, "median": med}
    return out


def has_media(doc):
    return bool(doc.get("media"))


def _f(v, digits=2, unit=""):
    return "–" if v is None else ("{:,.%df}" % digits).format(v) + unit


def _span(r, digits=2):
    if not r:
        return "–"
    lo, hi = r
    return _f(lo, digits) if abs(hi - lo) < 10 ** -digits else "%s–%s" % (_f(lo, digits), _f(hi, digits))


def _verdict(ok):
    return "–" if ok is None else ("met" if ok else "**not met**")


def targets(summary, calls):
    """(what, mss's value, verdict) per target of issue 16."""
    mss = (summary.get("mss") or {}).get("median") or {}
    rte = (summary.get("rtpengine") or {}).get("median") or {}
    rte1 = (summary.get("rtpengine-1t") or {}).get("median") or {}
    rows = []
    for key, what in (("cpu_us_per_packet", "the relay's threads"),
                      ("machine_us_per_packet", "the machine: relay + load tool − the tool alone")):
        cpu, ref, ref1 = mss.get(key), rte.get(key), rte1.get(key)
        for label, r in (("rtpengine, default threads", ref), ("rtpengine, one thread", ref1)):
            ratio = cpu / r if cpu and r else None
            rows.append(("CPU per relayed packet ≤ %.1f× rtpengine's (%s; %s)"
                         % (CPU_RATIO_MAX, label, what),
                         "%s× (%s vs %s µs)" % (_f(ratio), _f(cpu), _f(r)),
                         _verdict(None if ratio is None else ratio <= CPU_RATIO_MAX)))
    at_size = calls >= TARGET_CALLS
    note = "" if at_size else " (this run: %d calls)" % calls
    clean = None
    if mss.get("repetitions"):
        clean = mss["lost"] == 0 and mss["reordered"] == 0
    rows.append(("%s calls: zero loss, zero reordering%s" % (format(TARGET_CALLS, ","), note),
                 "lost %s, reordered %s of %s" % (_f(mss.get("lost"), 0), _f(mss.get("reordered"), 0),
                                                  _f(mss.get("sent"), 0)),
                 _verdict(clean if at_size else None)))
    added = mss.get("added_p99_us")
    rows.append(("added jitter p99 < 1 ms (transit p99 − the direct path's)%s" % note,
                 _f(added, 0, " µs"),
                 _verdict(None if added is None or not at_size else added < ADDED_JITTER_P99_MAX_US)))
    share = mss.get("core_share")
    rows.append(("the relay uses at most one core%s" % note, _f(share, 2, " of a core"),
                 _verdict(None if share is None or not at_size else share <= CORES_MAX)))
    kb = mss.get("kb_per_call")
    rows.append(("at most 100 KB resident per relayed call", _f(kb, 1, " KB"),
                 _verdict(None if kb is None else kb <= KB_PER_CALL_MAX)))
    return rows


def markdown(doc):
    m = doc["media"]
    lines = [MEDIA_START, "## Media: the mss relay and rtpengine under the same RTP load "
             "(`bench/run.sh --only media`)", ""]
    if not m.get("available"):
        lines += ["Not measured: %s." % m.get("reason", "unknown"), "", MEDIA_END]
        return "\n".join(lines) + "\n"
    tool = m["tool"]
    s = m["summary"]
    tool_span = _span(_range([v for x in s.values()
                              for v in (x["median"].get("range_tool_cpu_share") or ())]))
    mach = doc.get("machine", {})
    lines += [
        "Run %s–%s UTC, %s mode, on %s × %s, Linux %s; load average %s at the start, %s at the end "
        "(the machine was shared: transit, jitter and the relay's wait for a CPU suffer from "
        "the load, CPU per packet much less). rtpengine %s, userspace forwarding "
        "(`--table=-1`). Command: `%s`, which runs `%s`." % (
            doc.get("started", "?")[11:16], doc.get("finished", "?")[11:16], doc.get("mode"),
            tool.get("cpus"), mach.get("model", "?"), mach.get("kernel", "?"),
            _f(tool.get("loadavg_start"), 1), _f(tool.get("loadavg_end"), 1),
            doc.get("rtpengine_version", "?"), m.get("run_sh", "bench/run.sh --only media"),
            m.get("repro", m["command"])),
        "",
        "%s calls (%s packets/s in all, 172 bytes each), %s s per target, %d repetition(s) "
        "in alternating order; medians over the repetitions (CPU: the range). The load tool "
        "itself used %s of a core beside the relay." % (
            format(tool.get("calls", 0), ","), format(tool.get("calls", 0) * 100, ","),
            _f(tool.get("seconds"), 0), max((x["median"]["repetitions"] for x in s.values()),
                                            default=0), tool_span),
        "",
        "Transit: from the send stamp in the packet to the kernel's receive stamp on the far "
        "endpoint's socket (`SO_TIMESTAMPNS`: on loopback, the moment the relay sent it), as "
        "a phone's jitter buffer sees it; *read p99*: to the moment the tool's receiving "
        "thread read it (that thread shares the cores with the relay, so its own waits for a "
        "CPU are in it).",
        "",
        "CPU µs/packet: the relay's threads (`schedstat`); *machine*: the relay's threads "
        "plus the load tool, less the tool alone on the direct path of the same repetition, "
        "per relayed packet. On loopback the kernel's delivery of a datagram is charged to "
        "whichever thread runs when it is done, so a relay that preempts the tool's sender "
        "(real-time) is charged part of the sender's work and one that waits is not; the "
        "machine figure does not depend on who is charged.",
        "",
        "| target | CPU µs/packet | machine µs/packet | share of a core | waited for a CPU | sleeps / preempted "
        "per packet | lost | reordered | changed | transit p50 / p99 | added p99 | read p99 | "
        "RFC 3550 jitter (mean) | RSS, KB/call |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for t in TARGETS:
        x = s.get(t, {}).get("median")
        if not x:
            continue
        if not x["repetitions"]:
            lines.append("| %s | error: %s |" % (NAMES[t], "; ".join(x["errors"]) or "no run"))
            continue
        switches = "–" if x["sleeps_per_packet"] is None else "%s / %s" % (
            _f(x["sleeps_per_packet"]), _f(x["preemptions_per_packet"]))
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s µs | %s | %s | %s ms | %s |" % (
            NAMES[t], _span(x["range_cpu_us_per_packet"]),
            _span(x.get("range_machine_us_per_packet")), _f(x["core_share"]),
            _f(x["wait_ms"], 0, " ms"), switches, _f(x["lost"], 0), _f(x["reordered"], 0),
            _f(x["changed"], 0), _f(x["transit_p50_us"], 0), _f(x["transit_p99_us"], 0),
            _f(x["added_p99_us"], 0, " µs"), _f(x["read_p99_us"], 0, " µs"),
            _f(x["jitter_mean_ms"], 3),
            "–" if t == "direct" else "%s (%s → %s KB)" % (
                _f(x["kb_per_call"], 1), _f(x["rss_idle_kb"], 0), _f(x["rss_kb"], 0))))
    lines += ["", "| target of issue 16 | mss | |", "|---|---|---|"]
    for what, value, verdict in targets(s, tool.get("calls", 0)):
        lines.append("| %s | %s | %s |" % (what, value, verdict))
    lines += ["", MEDIA_END]
    return "\n".join(lines) + "\n"
