#!/usr/bin/env python3
"""Memory under authenticated load beyond capacity: SIPp reg-auth at a fixed rate.

Starts mss (the binary given) with the benchmark's 100,000 users (bench/lib/gen_users.py,
generated into --work when missing), reads its resident memory once idle, runs SIPp's
reg-auth scenario (bench/scenarios/reg-auth.xml) at --rate registrations/s for --seconds
(bounded in calls and in time; with --preregister first every user is registered at a
moderate rate and Timer J waited out, so that idle is the server with its users registered),
samples mss's resident memory every 0.2 s, and prints:
idle RSS, the start-up peak (VmHWM before the load: reading the configuration), peak RSS
under load (sampled, and VmHWM reset once idle), the bound 2 × idle + 100 MB, SIPp's successful and
failed calls and retransmissions, and mss's shed, drop and evicted-transaction counters.
Loopback only.

    bench/regauth_overload.py --mss-bin target/release/mss --rate 44000 --seconds 20
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(BENCH, "lib"))

import sipp  # noqa: E402


def status_kb(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def metric(text, name):
    total, found = 0.0, False
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
            found = True
    return total if found else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mss-bin", required=True)
    ap.add_argument("--rate", type=int, required=True)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--work", default="/tmp/mss-overload-bench")
    ap.add_argument("--port", type=int, default=15180)
    ap.add_argument("--admin", default="127.0.0.1:15181")
    ap.add_argument("--uac-port", type=int, default=15190)
    ap.add_argument("--preregister", type=int, default=0,
                    help="first register every user at this rate and wait out Timer J, so that "
                         "idle means: every user registered (0: idle is the bare start)")
    ap.add_argument("--server-option", action="append", default=[], metavar="KEY=VALUE",
                    help="an extra [server] key for mss.ini, e.g. completed_transactions_mb=64")
    ap.add_argument("--json")
    a = ap.parse_args()

    users = os.path.join(a.work, "users")
    ini = os.path.join(a.work, "mss.ini")
    data = os.path.join(a.work, "data")
    os.makedirs(a.work, exist_ok=True)
    subprocess.run(
        [sys.executable, os.path.join(BENCH, "lib", "gen_users.py"), "--out", users,
         "--no-kamailio", "--mss-ini", ini, "--mss-port", str(a.port),
         "--mss-admin", a.admin, "--data-dir", data],
        check=True,
    )
    if a.server_option:
        with open(ini) as f:
            text = f.read()
        extra = "".join(o.replace("=", " = ", 1) + "\n" for o in a.server_option)
        with open(ini, "w") as f:
            f.write(text.replace("[server]\n", "[server]\n" + extra, 1))
    subprocess.run(["rm", "-rf", data], check=True)
    log = open(os.path.join(a.work, "mss.log"), "w")
    proc = subprocess.Popen([a.mss_bin, "serve", "--config", ini], stdout=log, stderr=log)
    r = {"rate": a.rate, "seconds": a.seconds, "server_options": a.server_option,
         "load_average_start": os.getloadavg()[0]}
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://{a.admin}/metrics", timeout=2).read()
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(2)
        r["start_rss_kb"] = status_kb(proc.pid, "VmRSS")
        if a.preregister:
            pre = os.path.join(a.work, "preregister")
            n = 100000
            cmd = sipp.uac_command(
                f"127.0.0.1:{a.port}", os.path.join(BENCH, "scenarios", "reg-auth.xml"),
                os.path.join(users, "reg.csv"), {"domain": "bench.test", "expires": 3600},
                a.uac_port, a.preregister, n, n // a.preregister + 40, pre,
            )
            with open(pre + ".out", "w") as out:
                subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT,
                               timeout=n // a.preregister + 60)
            st = sipp.read_stats(pre + ".stat.csv")
            r["preregistered"] = sipp.counter(st, "SuccessfulCall")
            # Timer J (32 s) of the last 200s.
            time.sleep(35)
        idle = status_kb(proc.pid, "VmRSS")
        r["idle_rss_kb"] = idle
        # The peak so far is start-up's (reading 100,000 [user:] sections: BENCHMARKS.md,
        # What is left): kept apart, and VmHWM starts again from here (Linux clear_refs 5),
        # so that it is the peak under load.
        r["startup_vmhwm_kb"] = status_kb(proc.pid, "VmHWM")
        try:
            with open(f"/proc/{proc.pid}/clear_refs", "w") as f:
                f.write("5")
            r["vmhwm_reset"] = True
        except OSError:
            r["vmhwm_reset"] = False
        prefix = os.path.join(a.work, "regauth")
        cmd = sipp.uac_command(
            f"127.0.0.1:{a.port}", os.path.join(BENCH, "scenarios", "reg-auth.xml"),
            os.path.join(users, "reg.csv"), {"domain": "bench.test", "expires": 3600},
            a.uac_port, a.rate, a.rate * a.seconds, a.seconds + 40, prefix,
        )
        out = open(prefix + ".out", "w")
        s = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        peak = idle
        deadline = time.monotonic() + a.seconds + 45
        while s.poll() is None and time.monotonic() < deadline:
            peak = max(peak, status_kb(proc.pid, "VmRSS") or 0)
            time.sleep(0.2)
        if s.poll() is None:
            s.send_signal(signal.SIGTERM)
            try:
                s.wait(timeout=10)
            except subprocess.TimeoutExpired:
                s.kill()
                s.wait(timeout=10)
            r["sipp_stopped_at_deadline"] = True
        out.close()
        stats = sipp.read_stats(prefix + ".stat.csv")
        r["sipp_successful"] = sipp.counter(stats, "SuccessfulCall")
        r["sipp_failed"] = sipp.counter(stats, "FailedCall")
        r["sipp_retransmissions"] = sipp.counter(stats, "Retransmissions")
        r["peak_rss_kb_sampled"] = peak
        r["vmhwm_kb"] = status_kb(proc.pid, "VmHWM")
        r["memory_bound_kb"] = 2 * idle + 100 * 1024
        r["memory_within_bound"] = max(peak, r["vmhwm_kb"] or 0) <= r["memory_bound_kb"]
        m = urllib.request.urlopen(f"http://{a.admin}/metrics", timeout=10).read().decode()
        for name in ["mss_sip_shed_total", "mss_transport_udp_datagrams_dropped_total",
                     "mss_transport_udp_datagrams_received_total", "mss_registered_contacts",
                     "mss_sip_transactions_evicted_total"]:
            r[name] = metric(m, name)
        r["load_average_end"] = os.getloadavg()[0]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    for k, v in r.items():
        print(f"{k}: {v}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(r, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
