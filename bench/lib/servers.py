"""The servers under test: Kamailio (reference) and mss, started and stopped by PID."""
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid

import procstat
import sipp


def sip_ping(host, port, timeout_s):
    """True when an OPTIONS sent to host:port gets any SIP response in time."""
    deadline = time.monotonic() + timeout_s
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", 0))
        lport = sock.getsockname()[1]
        while time.monotonic() < deadline:
            branch = "z9hG4bK-ping-" + uuid.uuid4().hex[:12]
            msg = ("OPTIONS sip:%s:%d SIP/2.0\r\n"
                   "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=%s\r\n"
                   "Max-Forwards: 70\r\n"
                   "From: <sip:ping@127.0.0.1>;tag=%s\r\n"
                   "To: <sip:%s:%d>\r\n"
                   "Call-ID: %s@127.0.0.1\r\n"
                   "CSeq: 1 OPTIONS\r\n"
                   "Content-Length: 0\r\n\r\n") % (host, port, lport, branch,
                                                   uuid.uuid4().hex[:8], host, port,
                                                   uuid.uuid4().hex)
            try:
                sock.sendto(msg.encode(), (host, port))
                sock.settimeout(0.5)
                data, _ = sock.recvfrom(65535)
                if data.startswith(b"SIP/2.0 "):
                    return True
            except OSError:
                time.sleep(0.2)
    finally:
        sock.close()
    return False


def udp_sockets_on(port):
    """How many UDP sockets (any address, v4 and v6) are bound to this local port."""
    n = 0
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as f:
                next(f, None)
                for line in f:
                    cols = line.split()
                    if len(cols) > 1 and cols[1].rsplit(":", 1)[-1] == "%04X" % port:
                        n += 1
        except OSError:
            pass
    return n


def port_busy(port):
    """True when something already uses UDP port on 127.0.0.1."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", port))
        return False
    except OSError:
        return True
    finally:
        s.close()


def tcp_port_busy(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return False
    except OSError:
        return True
    finally:
        s.close()


def last_words(log_path, limit=300):
    """The first line of what a server printed after its command line in log_path (its
    complaint when it refused to start: e.g. mss naming an unknown configuration key)."""
    try:
        with open(log_path, errors="replace") as f:
            text = f.read()[-20000:]
    except OSError:
        return ""
    tail = text.rsplit("\n# ", 1)[-1].splitlines()[1:]
    lines = [line.strip() for line in tail if line.strip()]
    return lines[0][:limit] if lines else ""


class Server:
    """Common start/stop/measure logic; subclasses build the command."""

    name = "server"

    def __init__(self, port, workdir, register_pid):
        self.port = port
        self.workdir = workdir
        self.register_pid = register_pid
        self.proc = None
        self.log = os.path.join(workdir, self.name + ".log")

    def command(self):
        raise NotImplementedError

    def prepare(self, fresh):
        """Reset state before a start (fresh=True) or keep it (restart)."""

    def start(self, fresh=True, ready_timeout_s=20):
        """Start in the background; returns None or a reason it is not available."""
        if port_busy(self.port):
            return "UDP port %d on 127.0.0.1 is already in use" % self.port
        self.prepare(fresh)
        cmd = self.command()
        with open(self.log, "a") as log:
            log.write("\n# %s\n" % " ".join(cmd))
            log.flush()
            self.proc = subprocess.Popen(sipp.niced(cmd), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.workdir)
        self.register_pid(self.proc.pid)
        self.started_at = time.monotonic()
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                said = last_words(self.log)
                return "exited with status %s%s (see %s)" % (
                    self.proc.returncode, ": " + said if said else "", self.log)
            if sip_ping("127.0.0.1", self.port, 0.5):
                self.ready_after_s = time.monotonic() - self.started_at
                self.sockets_at_start = udp_sockets_on(self.port)
                return None
        self.stop()
        return "no SIP answer on 127.0.0.1:%d within %d s (see %s)" % (
            self.port, ready_timeout_s, self.log)

    def port_taken_over(self):
        """True when another program bound our UDP port after we started.

        Kamailio binds with SO_REUSEADDR, so a second Kamailio (a test run
        elsewhere on the machine) can bind the same address and receive the
        traffic meant for ours; it shows up as one more socket on the port.
        """
        return udp_sockets_on(self.port) > getattr(self, "sockets_at_start", 1)

    def pids(self):
        if self.proc is None or self.proc.poll() is not None:
            return []
        return procstat.descendants(self.proc.pid)

    def cpu_seconds(self):
        return procstat.cpu_seconds(self.pids())

    def memory_kb(self):
        return procstat.memory_kb(self.pids())

    def rss_sum_kb(self):
        return procstat.rss_sum_kb(self.pids())

    def memory_now_kb(self):
        return procstat.current_kb(self.pids())

    def use_scenario(self, scenario):
        """Pick the configuration a scenario runs with (before start)."""

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class Kamailio(Server):
    """Kamailio 5.6 with bench/kamailio/kamailio.cfg."""

    name = "kamailio"

    def __init__(self, port, workdir, register_pid, cfg, pristine_db, domain, shm_mb=2048,
                 calls_cfg=None):
        super().__init__(port, workdir, register_pid)
        self.cfg = cfg
        self.default_cfg = cfg
        self.calls_cfg = calls_cfg or os.path.join(os.path.dirname(cfg), "kamailio-calls.cfg")
        self.pristine_db = pristine_db
        self.db = os.path.join(workdir, "kamailio-run.db")
        self.domain = domain
        self.shm_mb = shm_mb

    def use_scenario(self, scenario):
        """The calls phase runs the stateful-proxy configuration (kamailio-calls.cfg),
        with the TLSF memory manager (-x tlsf) instead of the default q_malloc: q_malloc's
        search of its free lists took a third of Kamailio's CPU time under calls (the
        transactions and dialogs of a call are many shared-memory blocks of many sizes),
        and TLSF halved Kamailio's CPU per call at 200 calls/s. The reference should be
        Kamailio as it is run for speed (bench/README.md)."""
        calls = scenario == "calls"
        self.cfg = self.calls_cfg if calls else self.default_cfg
        self.mem_manager = "tlsf" if calls else None

    def prepare(self, fresh):
        if fresh or not os.path.exists(self.db):
            for suffix in ("", "-wal", "-shm", "-journal"):
                if os.path.exists(self.db + suffix):
                    os.unlink(self.db + suffix)
            shutil.copyfile(self.pristine_db, self.db)

    def command(self):
        mm = ["-x", self.mem_manager] if getattr(self, "mem_manager", None) else []
        return ["kamailio", "-DD", "-E"] + mm + ["-f", self.cfg,
                "-l", "udp:127.0.0.1:%d" % self.port,
                "-m", str(self.shm_mb), "-M", "16",
                "-Y", self.workdir, "-P", os.path.join(self.workdir, "kamailio.pid"),
                "-A", 'DBURL="sqlite://%s"' % self.db,
                "-A", 'SELFURI="sip:127.0.0.1:%d"' % self.port,
                "-A", 'DOMAIN="%s"' % self.domain]

    def version(self):
        try:
            out = subprocess.run(["kamailio", "-v"], capture_output=True, text=True,
                                 timeout=10).stdout
            return out.splitlines()[0].replace("version: ", "").replace(
                "kamailio ", "", 1).strip()
        except (OSError, IndexError, subprocess.SubprocessError):
            return "unknown"


# What the calls phase adds to the benchmark's mss.ini (DESIGN §8): room for the 10,000
# calls of the concurrency probe (the default [server] max_calls is 1000), and no media
# relay: Kamailio, the reference, passes SDP through untouched, and the SIPp loads send
# no RTP. The server "mss-relay" runs the same with the relay on (`relay = always`, the
# default of a real installation): every call's SDP then allocates a port pair per leg
# (the scenarios carry SDP, so the comparison measures what the relay adds to signalling;
# no RTP flows), from a range below the Linux ephemeral ports (32768-60999: in the earlier
# 30000-45999, other programs' sockets on a shared machine made binds fail, and calls got
# `503 No Media Ports`).
CALLS_SERVER_KEYS = ["max_calls = 50000"]
CALLS_SECTIONS = ["[media]", "relay = never"]
CALLS_RELAY_SECTIONS = ["[media]", "relay = always", "rtp_ports = 12000-27999"]


def calls_ini_text(text, relay="never"):
    """The benchmark's mss.ini text with the calls phase's settings added (`relay`:
    "never" or "always")."""
    out, added = [], False
    for line in text.splitlines():
        out.append(line)
        if not added and line.strip() == "[server]":
            out += CALLS_SERVER_KEYS
            added = True
    if not added:
        out = ["[server]"] + CALLS_SERVER_KEYS + [""] + out
    if relay not in ("never", "always"):
        raise ValueError("relay must be never or always, not %r" % relay)
    out += [""] + (CALLS_SECTIONS if relay == "never" else CALLS_RELAY_SECTIONS) + [""]
    return "\n".join(out)


def write_calls_ini(src, dst, relay="never"):
    with open(src) as f:
        text = calls_ini_text(f.read(), relay)
    tmp = dst + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, dst)


class Mss(Server):
    """mss serve --config mss.ini --data-dir DIR."""

    name = "mss"

    def __init__(self, port, workdir, register_pid, binary, ini, data_dir):
        super().__init__(port, workdir, register_pid)
        self.binary = binary
        self.ini = ini
        self.default_ini = ini
        self.data_dir = data_dir
        # the calls phase's [media] relay: "never", or "always" for "mss-relay"
        self.calls_relay = "never"

    def use_scenario(self, scenario):
        """The calls phase runs with the settings a calls load needs (calls_ini)."""
        self.ini = self.default_ini
        if scenario == "calls" and self.default_ini:
            suffix = "-calls.ini" if self.calls_relay == "never" else "-calls-relay.ini"
            self.ini = os.path.splitext(self.default_ini)[0] + suffix
            write_calls_ini(self.default_ini, self.ini, self.calls_relay)

    def prepare(self, fresh):
        if fresh and os.path.exists(self.data_dir):
            shutil.rmtree(self.data_dir)
        os.makedirs(self.data_dir, exist_ok=True)

    def command(self):
        return [self.binary, "serve", "--config", self.ini, "--data-dir", self.data_dir]

    def version(self):
        try:
            out = subprocess.run([self.binary, "--version"], capture_output=True,
                                 text=True, timeout=10)
            line = (out.stdout or out.stderr).strip().splitlines()
            if out.returncode != 0 or not line:
                return "unknown"
            return line[0][4:] if line[0].startswith("mss ") else line[0]
        except (OSError, subprocess.SubprocessError):
            return "unknown"
