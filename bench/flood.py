#!/usr/bin/env python3
"""Overload probe: a flood of unauthenticated REGISTERs against a phone on another address.

Starts mss (the binary given) on loopback with a small generated configuration, then:

1. the phone (127.0.0.2) registers --warmup users (default 20) before the flood; then mss's
   idle memory is read;
2. FLOODERS processes send unauthenticated REGISTERs from 127.0.0.1 as fast as they can
   (or at --rate requests/s in all), each with a new Call-ID and branch, for --seconds;
3. meanwhile the phone registers its users one after another (REGISTER → 401 → REGISTER
   with digest → 200), retransmitting each request as RFC 3261 §17.1.2.2 says (T1 = 0.5 s,
   doubling) and giving up after three retransmissions and a last wait (7.5 s in all);
4. mss's resident memory is sampled every 0.1 s (idle before the flood, peak during it);
5. afterwards every registration mss acknowledged must be listed by the admin API.

Prints one line per reading and, with --json FILE, writes them as JSON. Exit status 1
when an acknowledged registration is missing or mss died. Loopback only; nothing here is
secret. Example:

    bench/flood.py --mss-bin target/release/mss --seconds 20 --flooders 2
"""
import argparse
import hashlib
import json
import multiprocessing
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

DOMAIN = "flood.test"
PHONE_IP = "127.0.0.2"
FLOOD_IP = "127.0.0.1"
T1 = 0.5
RETRANSMITS = 3
LAST_WAIT = 4.0


def free_port(kind=socket.SOCK_DGRAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def password(user):
    return hashlib.sha256(("flood-" + user).encode()).hexdigest()[:16]


def write_config(path, port, admin, data_dir, users, rate_limit, ignore):
    lines = [
        "[server]",
        f"domain = {DOMAIN}",
        f"listen = udp:127.0.0.1:{port}",
        f"admin = {admin}",
        f"data_dir = {data_dir}",
        "",
        "[security]",
        f"rate_limit = {rate_limit}",
        f"ignore = {ignore}",
        "",
    ]
    for u in users:
        lines += [f"[user:{u}]", f"password = {password(u)}", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def hwm_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def flooder(port, seconds, rate, users, counter, seed):
    """One attacking process: unauthenticated REGISTERs from 127.0.0.1."""
    rnd = random.Random(seed)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((FLOOD_IP, 0))
    lport = s.getsockname()[1]
    dest = ("127.0.0.1", port)
    templates = []
    for i in range(512):
        u = rnd.choice(users)
        templates.append(
            (
                f"REGISTER sip:{DOMAIN} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {FLOOD_IP}:{lport};branch=z9hG4bKfl{seed}x{i}x%d;rport\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:{u}@{DOMAIN}>;tag=fl{seed}x{i}\r\n"
                f"To: <sip:{u}@{DOMAIN}>\r\n"
                f"Call-ID: fl{seed}x{i}x%d@{FLOOD_IP}\r\n"
                "CSeq: 1 REGISTER\r\n"
                f"Contact: <sip:{u}@{FLOOD_IP}:{lport}>\r\n"
                "Expires: 3600\r\nContent-Length: 0\r\n\r\n"
            )
        )
    sent = 0
    end = time.monotonic() + seconds
    start = time.monotonic()
    n = 0
    burst = 64
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if rate > 0:
            due = (now - start) * rate
            if sent >= due:
                time.sleep(min(0.001, (sent - due) / rate))
                continue
        for _ in range(burst):
            t = templates[n & 511]
            try:
                s.sendto((t % (n, n)).encode(), dest)
                sent += 1
            except OSError:
                pass
            n += 1
    with counter.get_lock():
        counter.value += sent


class Phone:
    """A phone that registers its users one after another, retransmitting as RFC 3261 says."""

    def __init__(self, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((PHONE_IP, 0))
        self.lport = self.sock.getsockname()[1]
        self.dest = ("127.0.0.1", port)
        self.cseq = {}
        self.n = 0
        self.retransmissions = 0
        self.codes = {}

    def _request(self, user, auth):
        self.n += 1
        cseq = self.cseq.get(user, 0) + 1
        self.cseq[user] = cseq
        branch = f"z9hG4bKph{self.n}"
        text = (
            f"REGISTER sip:{DOMAIN} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {PHONE_IP}:{self.lport};branch={branch};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:{user}@{DOMAIN}>;tag=ph{user}\r\n"
            f"To: <sip:{user}@{DOMAIN}>\r\n"
            f"Call-ID: ph-{user}@{PHONE_IP}\r\n"
            f"CSeq: {cseq} REGISTER\r\n"
            f"Contact: <sip:{user}@{PHONE_IP}:{self.lport}>\r\n"
            "Expires: 3600\r\n"
            f"{auth}Content-Length: 0\r\n\r\n"
        )
        return branch, text.encode()

    def _transaction(self, branch, data):
        """Sends `data`, retransmits at T1, 2·T1, 4·T1; the final response or None."""
        start = time.monotonic()
        waits = [T1 * (2**i) for i in range(RETRANSMITS)] + [LAST_WAIT]
        for i, wait in enumerate(waits):
            if i > 0:
                self.retransmissions += 1
            self.sock.sendto(data, self.dest)
            deadline = time.monotonic() + wait
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.sock.settimeout(left)
                try:
                    rsp, _ = self.sock.recvfrom(65535)
                except socket.timeout:
                    break
                text = rsp.decode(errors="replace")
                if branch not in text:
                    continue
                code = int(text.split(" ", 2)[1])
                if code >= 200:
                    return code, text, time.monotonic() - start
        return None, None, time.monotonic() - start

    def register(self, user):
        """One registration: 'ok', or what went wrong."""
        branch, data = self._request(user, "")
        code, text, _ = self._transaction(branch, data)
        self.codes[code] = self.codes.get(code, 0) + 1
        if code != 401:
            return "timeout" if code is None else f"first:{code}"
        auth = authorization(text, user)
        branch, data = self._request(user, f"Authorization: {auth}\r\n")
        code, _, _ = self._transaction(branch, data)
        self.codes[code] = self.codes.get(code, 0) + 1
        if code == 200:
            return "ok"
        return "timeout" if code is None else f"second:{code}"

    def contact(self, user):
        return f"sip:{user}@{PHONE_IP}:{self.lport}"


def authorization(challenge, user):
    """The digest answer (MD5, qop=auth) to the 401's first WWW-Authenticate."""
    line = next(
        l for l in challenge.split("\r\n") if l.lower().startswith("www-authenticate:")
    )
    params = {}
    for part in line.split(":", 1)[1].strip()[len("Digest "):].split(","):
        k, _, v = part.strip().partition("=")
        params[k.strip()] = v.strip().strip('"')
    realm, nonce = params["realm"], params["nonce"]
    uri = f"sip:{DOMAIN}"
    md5 = lambda s: hashlib.md5(s.encode()).hexdigest()
    ha1 = md5(f"{user}:{realm}:{password(user)}")
    ha2 = md5(f"REGISTER:{uri}")
    cnonce, nc = "c0ffee", "00000001"
    resp = md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
    opaque = f', opaque="{params["opaque"]}"' if "opaque" in params else ""
    return (
        f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
        f'response="{resp}", algorithm=MD5, qop=auth, nc={nc}, cnonce="{cnonce}"{opaque}'
    )


def admin_get(admin, path):
    with urllib.request.urlopen(f"http://{admin}{path}", timeout=10) as r:
        return r.read().decode()


def metric(text, name):
    total = 0.0
    found = False
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
            found = True
    return total if found else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mss-bin", required=True)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--flooders", type=int, default=2)
    ap.add_argument("--rate", type=float, default=0, help="flood requests/s in all; 0 = as fast as possible")
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20,
                    help="registrations of the phone before the flood (0: the phone's first "
                         "request arrives during the flood)")
    ap.add_argument("--rate-limit", type=int, default=100, help="[security] rate_limit")
    ap.add_argument("--ignore", default="none", help="[security] ignore (default none: the flood's loopback address is not exempt)")
    ap.add_argument("--json", help="write the readings here")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    a = ap.parse_args()

    work = tempfile.mkdtemp(prefix="mss-flood-")
    port = free_port()
    admin = f"127.0.0.1:{free_port(socket.SOCK_STREAM)}"
    users = [f"p{i:04d}" for i in range(a.users)]
    ini = os.path.join(work, "mss.ini")
    write_config(ini, port, admin, os.path.join(work, "data"), users, a.rate_limit, a.ignore)
    log = open(os.path.join(work, "mss.log"), "w")
    proc = subprocess.Popen([a.mss_bin, "serve", "--config", ini], stdout=log, stderr=log)
    readings = {"load_average_start": os.getloadavg()[0]}
    failed = False
    try:
        for _ in range(200):
            try:
                admin_get(admin, "/metrics")
                break
            except OSError:
                time.sleep(0.1)
        phone = Phone(port)
        acked = {}
        # Idle: every user registered once, no flood.
        for u in users[:a.warmup]:
            if phone.register(u) == "ok":
                acked[u] = phone.contact(u)
        time.sleep(1)
        idle = rss_kb(proc.pid)
        readings["idle_rss_kb"] = idle

        counter = multiprocessing.Value("q", 0)
        per = a.rate / a.flooders if a.rate else 0
        procs = [
            multiprocessing.Process(
                target=flooder, args=(port, a.seconds, per, users, counter, i + 1)
            )
            for i in range(a.flooders)
        ]
        t0 = time.monotonic()
        for p in procs:
            p.start()
        peak = idle
        outcomes = {}
        i = a.warmup
        last_sample = 0.0
        end = t0 + a.seconds
        while time.monotonic() < end:
            u = users[i % len(users)]
            i += 1
            r = phone.register(u)
            outcomes[r] = outcomes.get(r, 0) + 1
            if r == "ok":
                acked[u] = phone.contact(u)
            now = time.monotonic()
            if now - last_sample >= 0.1:
                peak = max(peak, rss_kb(proc.pid) or 0)
                last_sample = now
        # The memory while the flooders finish.
        while any(p.is_alive() for p in procs):
            peak = max(peak, rss_kb(proc.pid) or 0)
            time.sleep(0.1)
        flood_s = time.monotonic() - t0
        readings["flood_sent"] = counter.value
        readings["flood_rate_per_s"] = round(counter.value / flood_s)
        attempts = sum(outcomes.values())
        readings["phone_attempts"] = attempts
        readings["phone_ok"] = outcomes.get("ok", 0)
        readings["phone_success_pct"] = round(100.0 * outcomes.get("ok", 0) / max(attempts, 1), 1)
        readings["phone_outcomes"] = outcomes
        readings["phone_responses"] = {str(k): v for k, v in phone.codes.items()}
        readings["phone_retransmissions"] = phone.retransmissions
        readings["peak_rss_kb_sampled"] = peak
        readings["vmhwm_kb"] = hwm_kb(proc.pid)
        readings["memory_bound_kb"] = 2 * idle + 100 * 1024
        readings["memory_within_bound"] = max(peak, readings["vmhwm_kb"] or 0) <= readings["memory_bound_kb"]
        readings["load_average_end"] = os.getloadavg()[0]
        # Afterwards: every acknowledged registration is there.
        time.sleep(1)
        regs = json.loads(admin_get(admin, "/api/registrations"))
        have = {(r["user"], r["contact"]) for r in regs}
        missing = [u for u, c in acked.items() if (u, c) not in have]
        readings["acknowledged"] = len(acked)
        readings["acknowledged_missing"] = len(missing)
        m = admin_get(admin, "/metrics")
        for name in [
            "mss_transport_udp_datagrams_received_total",
            "mss_transport_udp_datagrams_dropped_total",
            "mss_transport_udp_source_limited_total",
            "mss_bans_dropped_total",
            "mss_bans_total",
            "mss_sip_shed_total",
        ]:
            readings[name] = metric(m, name)
        if missing or proc.poll() is not None:
            failed = True
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            readings["work"] = work
    for k, v in readings.items():
        print(f"{k}: {v}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(readings, f, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
