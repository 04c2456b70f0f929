"""What a smoke run (`run.sh --smoke`) must have produced, as a list of problems.

A smoke run goes through the whole pipeline of a capacity run at a tiny rate:
fresh servers, users, SIPp loads, CPU and memory readings, the latency run and
the report. Each function returns human-readable problems; an empty list means
that part of the pipeline works.
"""
import media
import report


def media_problems(doc):
    """Problems of the media phase of a smoke run: the tool ran every target, and the mss
    relay lost, reordered, changed and misdelivered nothing."""
    m = doc.get("media")
    if m is None:
        return []
    if not m.get("available"):
        return ["media: not measured (%s)" % m.get("reason")]
    problems = []
    for target, per in (m.get("summary") or {}).items():
        x = per.get("median") or {}
        for e in x.get("errors") or []:
            problems.append("media/%s: %s" % (target, e))
        if not x.get("repetitions"):
            if not x.get("errors"):
                problems.append("media/%s: no run" % target)
            continue
        if target.startswith("mss") or target == "direct":
            bad = {k: x.get(k) for k in ("lost", "reordered", "duplicates", "changed",
                                          "misdelivered") if x.get(k)}
            if bad:
                problems.append("media/%s: %s" % (target, ", ".join(
                    "%s %s" % kv for kv in sorted(bad.items()))))
        if target != "direct" and x.get("cpu_us_per_packet") is None:
            problems.append("media/%s: no CPU reading" % target)
    return problems


def smoke_problems(doc):
    """Problems of a `run --smoke` results document (results.json as a dict)."""
    problems = media_problems(doc)
    results = doc.get("results") or {}
    if not results and "media" not in doc:
        problems.append("no scenario ran")
    for scenario, per in results.items():
        if not per:
            problems.append("%s: no server ran" % scenario)
        for name, r in per.items():
            where = "%s/%s" % (scenario, name)
            if not r.get("available"):
                problems.append("%s: server not available (%s)" % (where, r.get("reason")))
                continue
            if r.get("error"):
                problems.append("%s: %s" % (where, r["error"]))
                continue
            steps = r.get("steps") or []
            if not steps:
                problems.append("%s: no load step ran" % where)
            for s in steps:
                if not s.get("passed"):
                    problems.append(
                        "%s: %d of %d calls successful, %d failed, %d retransmissions%s" % (
                            where, s.get("successful", 0), s.get("calls", 0),
                            s.get("failed", 0), s.get("retransmissions", 0),
                            " (%s)" % s["aborted"] if s.get("aborted") else ""))
                elif s.get("cpu_us_per_op") is None or s.get("cpu_s", -1) < 0:
                    problems.append("%s: no CPU reading" % where)
            if not r.get("memory_kb"):
                problems.append("%s: no memory reading" % where)
            lat = r.get("latency") or {}
            if lat.get("p50_ms") is None or lat.get("p99_ms") is None:
                problems.append("%s: no latency measured" % where)
            if not r.get("alive_at_end"):
                problems.append("%s: the server was not running at the end" % where)
            if scenario == report.CALLS:
                conc = r.get("concurrency") or {}
                if not conc.get("passed"):
                    problems.append("%s: concurrency probe failed (%s)" % (where, conc.get(
                        "error") or "%s of %s calls successful, memory %s kB" % (
                            conc.get("successful"), conc.get("calls"), conc.get("memory_kb"))))
                if ((lat.get("ok_ack") or {}).get("p99_ms") is None
                        and lat.get("source") == "tshark"):
                    problems.append("%s: no 200 -> ACK latency measured" % where)
    return problems


def table_problems(md, doc):
    """Problems of the Markdown block rendered from the same document."""
    problems = []
    results = doc.get("results") or {}
    if report.has_capacity(doc) and (report.START not in md or report.END not in md):
        problems.append("the table block lacks its markers")
    if report.has_calls(doc) and (report.CALLS_START not in md or report.CALLS_END not in md):
        problems.append("the calls block lacks its markers")
    if media.has_media(doc) and (media.MEDIA_START not in md or media.MEDIA_END not in md):
        problems.append("the media block lacks its markers")
    for scenario, per in results.items():
        for name in per:
            if scenario == report.CALLS:
                block = md[md.find(report.CALLS_START):md.find(report.CALLS_END)]
                prefix = "| %s | " % report.NAMES.get(name, name)
            else:
                block = md
                prefix = "| %s | %s | " % (scenario, report.NAMES.get(name, name))
            rows = [line for line in block.splitlines() if line.startswith(prefix)]
            if len(rows) != 1:
                problems.append("the table has %d rows for %s/%s" % (len(rows), scenario, name))
            elif "not available" in rows[0] or "error:" in rows[0]:
                problems.append("the table row of %s/%s says: %s" % (scenario, name, rows[0]))
    return problems
