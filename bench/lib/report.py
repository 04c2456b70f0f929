"""The Markdown table of a benchmark run, and its place in BENCHMARKS.md."""
import os

START = "<!-- bench:start -->"
END = "<!-- bench:end -->"
SCALE_START = "<!-- bench-scale:start -->"
SCALE_END = "<!-- bench-scale:end -->"
CALLS_START = "<!-- bench-calls:start -->"
CALLS_END = "<!-- bench-calls:end -->"
NAMES = {"kamailio": "Kamailio", "mss": "mss", "mss-relay": "mss, relay on"}
CALLS = "calls"

# The targets of the calls phase (issue "Calls", part 6).
CALLS_RATE_RATIO_MIN = 1.0        # mss calls/s >= Kamailio's
CALLS_CPU_RATIO_MAX = 0.75        # mss CPU per call <= 0.75 x Kamailio's
CALLS_SETUP_P99_MAX_MS = 2.0      # INVITE -> 180 and 200 -> ACK p99 at 100 calls/s
CALLS_MEMORY_MAX_MB = 200.0       # 10,000 established calls


def has_capacity(doc):
    """True when the run has a scenario of the capacity table (anything but calls)."""
    return any(k != CALLS for k in doc.get("results", {}))


def has_calls(doc):
    return CALLS in doc.get("results", {})


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
        if scenario == CALLS:
            continue  # its own table: calls_markdown
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


def calls_values(r):
    """The calls table's readings of one server's result, or None when it has none."""
    vals = row_values(r)
    if vals is None:
        return None
    lat = (r.get("latency") or {})
    ring = lat.get("invite_180") or ({"p50_ms": lat.get("p50_ms"), "p99_ms": lat.get("p99_ms")}
                                     if lat else {})
    ack = lat.get("ok_ack") or {}
    conc = r.get("concurrency") or {}
    mem = conc.get("memory_kb")
    vals.update({
        "ring_p50": ring.get("p50_ms"), "ring_p99": ring.get("p99_ms"),
        "ack_p50": ack.get("p50_ms"), "ack_p99": ack.get("p99_ms"),
        "conc_calls": conc.get("calls"), "conc_ok": bool(conc.get("passed")),
        "conc_established": conc.get("established"),
        "conc_successful": conc.get("successful"),
        "conc_mb": mem / 1024.0 if mem else None,
        "idle_mb": conc["idle_kb"] / 1024.0 if conc.get("idle_kb") else None,
        "conc_error": conc.get("error"),
    })
    return vals


def verdict(ok):
    return "–" if ok is None else ("met" if ok else "not met")


def calls_targets(mss, kam):
    """(target, reading, met/not met/–) rows: the issue's targets for mss's readings."""
    rows = []
    if mss is None:
        return rows
    rate_r = cpu_r = None
    if kam and mss["rate"] and kam["rate"]:
        rate_r = mss["rate"] / float(kam["rate"])
    if kam and mss["cpu"] and kam["cpu"]:
        cpu_r = mss["cpu"] / float(kam["cpu"])
    rows.append(("calls/s ≥ Kamailio's", "%.2f× (%s vs %s)" % (
        rate_r, fmt_int(mss["rate"]), fmt_int(kam["rate"])) if rate_r is not None else "–",
        verdict(None if rate_r is None else rate_r >= CALLS_RATE_RATIO_MIN)))
    rows.append(("CPU per call ≤ %.2f× Kamailio's" % CALLS_CPU_RATIO_MAX,
                 "%.2f× (%s vs %s µs)" % (cpu_r, fmt_num(mss["cpu"]), fmt_num(kam["cpu"]))
                 if cpu_r is not None else "–",
                 verdict(None if cpu_r is None else cpu_r <= CALLS_CPU_RATIO_MAX)))
    for label, key in (("INVITE → 180", "ring_p99"), ("200 → ACK", "ack_p99")):
        v = mss[key]
        rows.append(("%s p99 < %g ms at %s calls/s" % (label, CALLS_SETUP_P99_MAX_MS,
                                                        fmt_int(mss["lat_rate"] or 100)),
                     "–" if v is None else "%s ms" % fmt_ms(v),
                     verdict(None if v is None else v < CALLS_SETUP_P99_MAX_MS)))
    n = mss["conc_calls"]
    mb = mss["conc_mb"]
    ok = None if mb is None else (mss["conc_ok"] and mb < CALLS_MEMORY_MAX_MB)
    rows.append(("%s concurrent calls < %g MB" % (fmt_int(n or 10000), CALLS_MEMORY_MAX_MB),
                 "–" if mb is None else "%s MB%s" % (fmt_num(mb, 1), "" if mss["conc_ok"]
                                                     else " (not every call succeeded)"),
                 verdict(ok)))
    return rows


# "Signalling unaffected" (issue 16): with the media relay on, the calls phase's rate and
# latency stay within 10 % of the relay off.
RELAY_SIGNALLING_MAX_CHANGE = 0.10


def relay_targets(off, on):
    """(target, reading, verdict) rows comparing mss with the relay on (`on`) and off."""
    if not off or not on:
        return []
    rows = []
    limit = RELAY_SIGNALLING_MAX_CHANGE
    if off["rate"] and on["rate"]:
        r = on["rate"] / float(off["rate"])
        rows.append(("relay on: calls/s ≥ %.2f× relay off" % (1 - limit),
                     "%.2f× (%s vs %s)" % (r, fmt_int(on["rate"]), fmt_int(off["rate"])),
                     verdict(r >= 1 - limit)))
    if off["cpu"] and on["cpu"]:
        r = on["cpu"] / float(off["cpu"])
        rows.append(("relay on: CPU per call (reading)", "%.2f× (%s vs %s µs)" % (
            r, fmt_num(on["cpu"]), fmt_num(off["cpu"])), "–"))
    for label, key in (("INVITE → 180", "ring_p99"), ("200 → ACK", "ack_p99")):
        if off[key] and on[key]:
            r = on[key] / float(off[key])
            rows.append(("relay on: %s p99 ≤ %.2f× relay off" % (label, 1 + limit),
                         "%.2f× (%s vs %s ms)" % (r, fmt_ms(on[key]), fmt_ms(off[key])),
                         verdict(r <= 1 + limit)))
    return rows


def calls_markdown(doc):
    """The calls phase as a Markdown block (between CALLS_START and CALLS_END)."""
    m = doc["machine"]
    st = doc["settings"]
    v = m.get("versions", {})
    per = doc["results"].get(CALLS, {})
    hold_s = (st.get("calls_hold_ms") or 1000) / 1000.0
    ring_s = (st.get("calls_ring_ms") or 0) / 1000.0
    fresh = ("on a freshly started server" if st["confirm"] > st["probe"] else
             "in the search (mode `%s` has no confirmation step)" % doc["mode"])
    lines = [
        CALLS_START,
        "## Calls: mss (B2BUA) and Kamailio (stateful proxy) under the same SIPp load "
        "(`bench/run.sh --only calls`)",
        "",
        "Run %s → %s, mode `%s` (probes %d s, confirmation %d s, resolution %s/s; "
        "ring time %g s, hold time %g s). Machine: %s × %s, Linux %s. Versions: mss %s; "
        "Kamailio %s; SIPp %s.%s" % (
            doc["started"], doc["finished"][11:], doc["mode"], st["probe"], st["confirm"],
            fmt_int(st.get("calls_resolution")), ring_s, hold_s, m["nproc"], m["model"],
            m["kernel"], v.get("mss", "not run"), v.get("kamailio", "not run"), m["sipp"],
            " Servers and SIPp ran under `nice -n %s`." % m["nice"] if m.get("nice") else ""),
        "",
        "| server | max rate (calls/s) | CPU µs/call | CPU mss/Kam | rate mss/Kam "
        "| INVITE→180 p50 / p99 ms | 200→ACK p50 / p99 ms | memory MB: idle → %s calls |" % (
            fmt_int(st.get("conc_calls") or 10000)),
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    notes = []
    kam = calls_values(per.get("kamailio"))
    vals_by = {}
    for name in ("kamailio", "mss", "mss-relay"):
        if name not in per:
            continue
        r = per[name]
        vals = calls_values(r)
        vals_by[name] = vals
        if vals is None:
            why = "not available" if not r.get("available") else "error: " + r.get("error", "")
            lines.append("| %s | %s | | | | | | |" % (NAMES[name], why))
            if not r.get("available") and r.get("reason") not in (None, "see above"):
                notes.append("%s not available: %s." % (NAMES[name], r["reason"]))
            continue
        rate = fmt_int(vals["rate"]) if vals["rate"] else "< %s" % fmt_int(
            st.get("calls_min_rate"))
        if vals["unconfirmed"]:
            rate += " ⁽¹⁾"
            notes.append("⁽¹⁾ %s: no rate held for the whole %d-s confirmation; the rate "
                         "shown held for a %d-s probe." % (NAMES[name], st["confirm"],
                                                           st["probe"]))
        ratio_cpu = ratio_rate = ""
        if name in ("mss", "mss-relay") and kam:
            ratio_cpu = fmt_ratio(vals["cpu"], kam["cpu"])
            if vals["unconfirmed"] or kam["unconfirmed"]:
                ratio_rate = fmt_ratio(vals["probe_rate"], kam["probe_rate"]) + " ⁽²⁾"
                notes.append("⁽²⁾ ratio of the best %d-s probes, as one rate is unconfirmed."
                             % st["probe"])
            else:
                ratio_rate = fmt_ratio(vals["rate"], kam["rate"])
        if vals["lat_src"] == "sipp":
            notes.append("%s: INVITE→180 from SIPp's clock (4 ms ticks); no 200→ACK without "
                         "a capture." % NAMES[name])
        mem = "–"
        if vals["conc_mb"] is not None:
            mem = "%s → %s" % (fmt_num(vals["idle_mb"], 1), fmt_num(vals["conc_mb"], 1))
            if not vals["conc_ok"]:
                mem += " ⁽³⁾"
                notes.append("⁽³⁾ %s: %s of the concurrency probe's %s calls succeeded (the "
                             "callee saw %s at once); the memory is that of the probe all "
                             "the same, see results.json." % (
                                 NAMES[name], fmt_int(vals["conc_successful"]),
                                 fmt_int(vals["conc_calls"]),
                                 fmt_int(vals["conc_established"])))
        elif vals["conc_error"]:
            notes.append("%s: concurrency probe: %s." % (NAMES[name], vals["conc_error"]))
        lines.append("| %s | %s | %s | %s | %s | %s / %s | %s / %s | %s |" % (
            NAMES[name], rate, fmt_num(vals["cpu"]), ratio_cpu, ratio_rate,
            fmt_ms(vals["ring_p50"]), fmt_ms(vals["ring_p99"]),
            fmt_ms(vals["ack_p50"]), fmt_ms(vals["ack_p99"]), mem))
    lat_rates = sorted({x["lat_rate"] for x in vals_by.values() if x and x["lat_rate"]})
    lines += [
        "",
        "- **max rate**: highest rate of calls set up per second that ran %d s with every "
        "call successful (INVITE → `407` → ACK, INVITE with digest → `180`, %g s ringing, "
        "`200` → ACK, %g s on hold, BYE → `200`), zero failed calls, zero retransmissions "
        "(caller and callee) and SIPp keeping the rate, %s. Caller, callee (two SIPp) and "
        "the server share the same %s cores: compare by ratio." % (
            st["confirm"], ring_s, hold_s, fresh, m["nproc"]),
        "- **CPU µs/call**: the server's CPU time (utime+stime, all threads; for Kamailio "
        "all processes) during that step ÷ successful calls, the whole call from the first "
        "INVITE to the BYE's `200`.",
        "- **INVITE→180**: from the caller's authenticated INVITE reaching the server to "
        "the `180` the server sends the caller (relay to the callee and back included); "
        "**200→ACK**: from the callee's `200` reaching the server to the ACK the server "
        "sends the callee (what the callee waits for). From a tshark capture on lo, in a "
        "separate %s-s run at %s calls/s on a freshly started server." % (
            st.get("calls_lat_duration") or st["lat_duration"],
            " and ".join(fmt_int(x) for x in lat_rates) or fmt_int(st.get("calls_lat_rate"))),
        "- **memory**: with every call of the concurrency probe established at once "
        "(%s calls set up at up to %s/s, each held until all are up, no media); mss's "
        "resident set (VmRSS), Kamailio the sum of PSS over its processes; idle = the "
        "same server with the callees registered, before the probe." % (
            fmt_int(st.get("conc_calls") or 10000), fmt_int(st.get("conc_rate") or 500)),
        "- mss is a B2BUA (two dialogs per call, `[media] relay = never`: SDP passed "
        "through, as Kamailio does); Kamailio is a stateful proxy (tm, rr, dialog, "
        "auth_db, usrloc; `bench/kamailio/kamailio-calls.cfg`, TLSF memory manager).",
        "- Runs on this shared machine vary by ±15%: treat smaller differences as noise.",
    ]
    lines += ["- " + n for n in dict.fromkeys(notes)]
    if "mss-relay" in per:
        lines.append("- **mss, relay on**: the same mss with `[media] relay = always` (the "
                     "default of an installation; `rtp_ports = 12000-27999`): each call's "
                     "SDP allocates a port pair per leg and both SDP bodies are rewritten; "
                     "no RTP flows. No concurrency probe (10,000 calls would need 20,000 "
                     "pairs; its 8,000 pairs hold 4,000 calls, 3,800/s at the 1.05-s call).")
    targets = calls_targets(vals_by.get("mss"), kam)
    targets += relay_targets(vals_by.get("mss"), vals_by.get("mss-relay"))
    if targets:
        lines += ["", "| target (mss) | reading | |", "|---|---|---|"]
        lines += ["| %s | %s | %s |" % t for t in targets]
    lines += [CALLS_END, ""]
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
