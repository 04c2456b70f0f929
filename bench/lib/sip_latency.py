#!/usr/bin/env python3
"""SIP request -> final response latency from a packet capture (stdlib only).

Input: the output of

  tshark -r CAPTURE -d udp.port==PORT,sip -Y sip -T fields -E separator=/t \
     -e frame.time_epoch -e udp.srcport -e udp.dstport -e sip.Call-ID \
     -e sip.CSeq.seq -e sip.CSeq.method -e sip.Status-Code

A transaction is keyed by Call-ID + CSeq number + CSeq method. Its start is the
first request sent TO the server port (a retransmission does not restart it);
its end is the first final response (>= 200) sent FROM the server port. Copies
the server forwards to a downstream UAS and the UAS's answers are therefore
ignored: the latency is what the client sees, relay included.

Only transactions answered with the wanted codes (default: 2xx) are counted,
i.e. the authenticated request of each call; the challenges are reported
separately with --codes 401,407.

Usage: sip_latency.py --port 5070 [--codes 2xx] [FILE]   (stdin by default)
Prints JSON: {"count": N, "p50_ms": .., "p90_ms": .., "p99_ms": .., "max_ms": ..,
              "unanswered": N}
"""
import argparse
import json
import sys


def percentile(sorted_values, q):
    """Nearest-rank percentile of an ascending list (q in 0..100)."""
    if not sorted_values:
        return None
    rank = max(1, int(round(q / 100.0 * len(sorted_values) + 0.4999999)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def code_matcher(spec):
    """'2xx' / '200,202' / '401,407' -> predicate on an int status code."""
    parts = [p.strip() for p in spec.split(",") if p.strip()]

    def match(code):
        for p in parts:
            if p.endswith("xx") and p[:-2].isdigit():
                if code // 100 == int(p[:-2]):
                    return True
            elif p.isdigit() and code == int(p):
                return True
        return False

    return match


def latencies(lines, port, want):
    """Return (latencies in seconds, number of requests never answered)."""
    start = {}
    done = {}
    for line in lines:
        cols = line.rstrip("\n").split("\t")
        if len(cols) < 7:
            continue
        ts, sport, dport, callid, seq, method, status = cols[:7]
        try:
            t = float(ts)
            sport_i = int(sport.split(",")[0])
            dport_i = int(dport.split(",")[0])
        except ValueError:
            continue
        key = (callid, seq, method)
        if not status:
            if dport_i == port and key not in start:
                start[key] = t
            continue
        try:
            code = int(status.split(",")[0])
        except ValueError:
            continue
        if code < 200 or sport_i != port or key in done:
            continue
        done[key] = (t, code)
    out = []
    for key, (t, code) in done.items():
        t0 = start.get(key)
        if t0 is not None and want(code) and t >= t0:
            out.append(t - t0)
    unanswered = sum(1 for k in start if k not in done)
    return out, unanswered


def call_setup(lines, port, uac_port, uas_port):
    """Call set-up latencies of a calls load, from the same tshark fields.

    Returns (invite_180, ok_ack, problems) in seconds:
    - invite_180: the caller's side. From the first INVITE the caller (uac_port) sent to
      the server to the first 180 the server sent the caller for it (same Call-ID and
      CSeq): the server's relay of the INVITE to the callee, the callee's 180 and its relay
      back. Only the authenticated INVITE is answered 180; the challenged one counts nowhere.
    - ok_ack: the callee's side. From the first 200 the callee (uas_port) sent for an
      INVITE to the first ACK the server sent the callee for it (same Call-ID and CSeq
      number): a proxy relays the 200 to the caller and the caller's ACK back; a B2BUA may
      acknowledge its own leg at once or wait for the caller's ACK. Each leg is matched on
      its own, so it works whether the server keeps the Call-ID (a proxy) or not (a B2BUA).
    - problems: {"no_180": calls whose INVITE got no 180, "no_ack": 200s never acknowledged}
    """
    inv, ring, ok, ack = {}, {}, {}, {}
    for line in lines:
        cols = line.rstrip("\n").split("\t")
        if len(cols) < 7:
            continue
        ts, sport, dport, callid, seq, method, status = cols[:7]
        try:
            t = float(ts)
            sport_i = int(sport.split(",")[0])
            dport_i = int(dport.split(",")[0])
        except ValueError:
            continue
        key = (callid, seq)
        if not status:
            if method == "INVITE" and sport_i == uac_port and dport_i == port:
                inv.setdefault(key, t)
            elif method == "ACK" and sport_i == port and dport_i == uas_port:
                ack.setdefault(key, t)
            continue
        try:
            code = int(status.split(",")[0])
        except ValueError:
            continue
        if method != "INVITE":
            continue
        if code == 180 and sport_i == port and dport_i == uac_port:
            ring.setdefault(key, t)
        elif 200 <= code < 300 and sport_i == uas_port and dport_i == port:
            ok.setdefault(key, t)
    invite_180 = [ring[k] - inv[k] for k in ring if k in inv and ring[k] >= inv[k]]
    ok_ack = [ack[k] - ok[k] for k in ack if k in ok and ack[k] >= ok[k]]
    rung = {k[0] for k in ring}
    problems = {"no_180": len({k[0] for k in inv} - rung),
                "no_ack": sum(1 for k in ok if k not in ack)}
    return invite_180, ok_ack, problems


def summarize(values, unanswered):
    values = sorted(values)
    ms = lambda v: None if v is None else round(v * 1000.0, 3)
    return {
        "count": len(values),
        "p50_ms": ms(percentile(values, 50)),
        "p90_ms": ms(percentile(values, 90)),
        "p99_ms": ms(percentile(values, 99)),
        "max_ms": ms(values[-1] if values else None),
        "unanswered": unanswered,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True, help="the server's SIP port")
    ap.add_argument("--codes", default="2xx", help="final codes to count (default 2xx)")
    ap.add_argument("file", nargs="?")
    a = ap.parse_args()
    src = open(a.file) if a.file else sys.stdin
    with src:
        vals, unanswered = latencies(src, a.port, code_matcher(a.codes))
    print(json.dumps(summarize(vals, unanswered)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
