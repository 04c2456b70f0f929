"""The Markdown table of a benchmark run, and its place in BENCHMARKS.md."""
import os

START = "<!-- bench:start -->"
END = "<!-- bench:end -->"
SCALE_START = "<!-- bench-scale:start -->"
SCALE_END = "<!-- bench-scale:end -->"
NAMES = {"kamailio": "Kamailio", "mss": "mss"}


def fmt_int(v):
    return "{:,}".format(int(v)) if v is not None else "–"


def fmt_num(v, digits=0):
    if v is None:
        return "–"
    return ("{:,.%df}" % digits).format(v)


def fmt_ratio(a, b):
    if a is None or b is None or not b:
        return "–"
    return "%.2f" % (a / float(b))


def fmt_ms(v):
    if v is None:
        return "–"
    return "%.2f" % v if v < 10 else "%.1f" % v


def row_values(r):
    """(rate, cpu_us, p50, p99, lat_note, mem_mb) of one result, or None when unusable."""
    if not r or not r.get("available") or r.get("error"):
        return None
    best = r.get("best")
    rate = best["rate"] if best else None
    cpu = best.get("cpu_us_per_op") if best else None
    lat = r.get("latency") or {}
    mem = r.get("memory_kb")
    probes = [x["rate"] for x in r.get("steps", [])
              if x.get("passed") and x.get("kind", "").startswith("probe")]
    return {"rate": rate, "cpu": cpu, "probe_rate": max(probes) if probes else None, "p50": lat.get("p50_ms"), "p99": lat.get("p99_ms"),
            "lat_rate": lat.get("rate"), "lat_src": lat.get("source"),
            "mem_mb": mem / 1024.0 if mem else None,
            "steps": len(r.get("steps", [])),
            "unconfirmed": bool(best and best.get("unconfirmed"))}


def markdown(doc):
    m = doc["machine"]
    st = doc["settings"]
    v = m.get("versions", {})
    lines = [
        START,
        "## Capacity: mss and Kamailio under the same SIPp load (`bench/run.sh`)",
        "",
        "Run %s → %s, mode `%s` (probes %d s, confirmation %d s, resolution %d/s)." % (
            doc["started"], doc["finished"][11:], doc["mode"], st["probe"], st["confirm"],
            st.get("resolution") or 0),
        "Machine: %s × %s, Linux %s; server data (SQLite) on %s. "
        "Versions: mss %s; Kamailio %s; SIPp %s." % (
            m["nproc"], m["model"], m["kernel"], m.get("data_fs", "unknown"),
            v.get("mss", "not run"), v.get("kamailio", "not run"), m["sipp"])
        + (" Servers and SIPp ran under `nice -n %s`." % m["nice"] if m.get("nice") else ""),
        "",
        "| scenario | server | max rate (calls/s) | CPU µs/call | CPU mss/Kam | rate mss/Kam "
        "| p50 ms | p99 ms | memory MB |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    notes = []
    for scenario, per in doc["results"].items():
        lat_by_server = {}
        for name in ("kamailio", "mss"):
            vals = row_values(per.get(name))
            if vals and vals["lat_rate"]:
                lat_by_server[NAMES[name]] = vals["lat_rate"]
        if len(set(lat_by_server.values())) > 1:
            notes.append("%s latency measured at different rates: %s." % (
                scenario, ", ".join("%s at %s/s" % (k, fmt_int(v))
                                    for k, v in sorted(lat_by_server.items()))))
        kam = row_values(per.get("kamailio"))
        for name in ("kamailio", "mss"):
            if name not in per:
                continue
            r = per[name]
            vals = row_values(r)
            if vals is None:
                why = "not available" if not r.get("available") else "error: " + r.get("error", "")
                lines.append("| %s | %s | %s | | | | | | |" % (scenario, NAMES[name], why))
                continue
            rate = fmt_int(vals["rate"]) if vals["rate"] else "< %s" % fmt_int(
                doc["settings"].get("min_rate"))
            if vals["unconfirmed"]:
                rate += " ⁽¹⁾"
                notes.append("⁽¹⁾ %s/%s: no rate held for the whole %d-s confirmation; "
                             "the rate shown held for a %d-s probe." % (
                                 scenario, NAMES[name], st["confirm"], st["probe"]))
            ratio_cpu = ratio_rate = ""
            if name == "mss" and kam:
                ratio_cpu = fmt_ratio(vals["cpu"], kam["cpu"])
                if vals["unconfirmed"] or kam["unconfirmed"]:
                    ratio_rate = fmt_ratio(vals["probe_rate"], kam["probe_rate"]) + " ⁽²⁾"
                    notes.append("⁽²⁾ %s: ratio of the best %d-s probes, as one rate is "
                                 "unconfirmed." % (scenario, st["probe"]))
                else:
                    ratio_rate = fmt_ratio(vals["rate"], kam["rate"])
            if vals["lat_src"] == "sipp":
                notes.append("%s/%s latency from SIPp's clock (4 ms ticks)." % (
                    scenario, NAMES[name]))
            lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                scenario, NAMES[name], rate, fmt_num(vals["cpu"]), ratio_cpu, ratio_rate,
                fmt_ms(vals["p50"]), fmt_ms(vals["p99"]), fmt_num(vals["mem_mb"], 1)))
    lines += [
        "",
        "- **max rate**: highest rate that ran %d s with every call successful, zero failed "
        "calls, zero retransmissions (client and UAS) and SIPp keeping the rate, on a "
        "freshly started server (right after the search's overload probes a stateful server "
        "is still ending their transactions: Timer J, 32 s). SIPp, the UAS and the server share the same %s cores, so this is the capacity of "
        "the whole box, not of the server alone; compare the servers by ratio." % (
            st["confirm"], m["nproc"]),
        "- **CPU µs/call**: the server's CPU time (utime+stime, all threads; for Kamailio all "
        "processes) during that step ÷ successful calls. A call is the whole scenario: two "
        "requests (challenge + authenticated) — plus the relay leg for msg-online.",
        "- **p50/p99**: request → final 2xx of the authenticated request, from a tshark "
        "capture on lo, in a separate %s-s run at %s calls/s (half the server's best rate "
        "when that is lower) against a freshly started server (the search's last 20 s at "
        "full rate would otherwise still be in progress: transactions waiting out Timer J, "
        "a heap grown by the overload probes)." % (st["lat_duration"], fmt_int(st["lat_rate"])),
        "- **memory**: mss peak RSS (VmHWM); Kamailio the sum of PSS over its processes "
        "(its shared memory counted once), highest value sampled after each step.",
        "- Durability differs: mss commits a registration or a stored message to SQLite "
        "before it answers; the Kamailio reference keeps registrations in memory (usrloc "
        "db_mode 0) and stores each message with its own commit (msilo).",
        "- Runs on this shared machine vary by ±15%: treat smaller differences as noise.",
    ]
    lines += ["- " + n for n in notes]
    lines += [END, ""]
    return "\n".join(lines)


def scale_markdown(doc, when, mss_version):
    """The scale check as a short Markdown block (between the scale markers)."""
    mb = lambda kb: "%.0f MB" % (kb / 1024.0) if kb else "–"
    kam = doc.get("kamailio") or {}
    lines = [SCALE_START, "## Scale: %s registered users (`bench/scale.sh`)" % fmt_int(
        doc["users"]), "",
        "Run %s; mss %s; registrations sent at %s/s with `Expires: 3600`." % (
            when, mss_version, fmt_int(doc["rate"])), "",
        "| | mss | Kamailio |", "|---|--:|--:|"]
    if isinstance(doc.get("mss"), str):
        lines.append("| registered | %s | %s |" % (doc["mss"], fmt_int(kam.get("registered_ok"))))
    else:
        lines += [
            "| registered (200 OK) | %s | %s |" % (fmt_int(doc.get("registered_ok")),
                                                  fmt_int(kam.get("registered_ok"))),
            "| memory idle (users loaded) | %s | %s |" % (
                mb(doc.get("vmrss_idle_kb")), mb(kam.get("pss_sum_kb_idle"))),
            "| memory right after registering all (their 200s still wait out Timer J) | %s | %s |" % (
                mb(doc.get("vmrss_kb")), mb(kam.get("pss_sum_kb"))),
            "| memory with every user registered, after a restart (no transaction left) | %s | – |" % (
                mb(doc.get("vmrss_after_restart_kb"))),
            "| mss peak RSS: after start-up / after registering all | %s / %s | – |" % (
                mb(doc.get("rss_idle_kb")), mb(doc.get("rss_kb"))),
            "| after restart: SIP answers after | %s s | (registrations not kept) |" % (
                doc.get("sip_ready_after_s", "–")),
            "| after restart: all registrations back after | %s s | – |" % (
                doc.get("restored_after_s") if doc.get("restored_after_s") is not None
                else "not restored (%s)" % doc.get("count_after_restart")),
        ]
    lines += ["", "mss memory is its resident set at that moment (VmRSS), its peak (VmHWM) "
              "in the peak row (start-up reads every `[user:]` section of the configuration); "
              "Kamailio's is the sum of PSS over its processes. "
              "The count comes from the `mss_registered_contacts` gauge of `/metrics`.",
              SCALE_END, ""]
    return "\n".join(lines)


def replace_between_markers(path, block, start=START, end=END):
    """Put block (which starts with start and ends with end) into path, touching nothing else."""
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
    else:
        text = "# Benchmarks\n\n%s\n%s\n" % (start, end)
    block = block.rstrip("\n")
    i = text.find(start)
    j = text.find(end, i + 1) if i >= 0 else -1
    if i >= 0 and j >= 0:
        text = text[:i] + block + text[j + len(end):]
    else:
        if not text.endswith("\n"):
            text += "\n"
        text += "\n" + block + "\n"
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
