"""Running SIPp and reading its statistics (stdlib only).

Every SIPp run is bounded: a call count (-m), a global timeout (-timeout) and a
wall-clock limit enforced here. While a load runs, its -trace_stat file
(written every second) is watched and the run is stopped early as soon as a
call fails or a message is retransmitted, so a failing step costs seconds.
"""
import os
import signal
import subprocess
import time

SIPP = os.environ.get("SIPP", "sipp")
BUFF = "4194304"


def niced(cmd):
    """cmd run under `nice -n $BENCH_NICE` when that is set (e.g. -10 on a busy machine)."""
    n = os.environ.get("BENCH_NICE", "").strip()
    return ["nice", "-n", n] + cmd if n else cmd


def read_stats(path):
    """Last complete row of a SIPp -trace_stat file as {column: value}, or {}."""
    try:
        with open(path, errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return {}
    if len(lines) < 2:
        return {}
    header = lines[0].rstrip(";").split(";")
    for line in reversed(lines[1:]):
        cols = line.rstrip(";").split(";")
        if len(cols) >= len(header):
            return dict(zip(header, cols))
    return {}


def counter(stats, name):
    """Cumulative counter NAME(C) of a stats row (0 when absent)."""
    try:
        return int(float(stats.get(name + "(C)", "0")))
    except ValueError:
        return 0


def gauge(stats, name):
    """A column without (C)/(P), e.g. CurrentCall (0 when absent)."""
    try:
        return int(float(stats.get(name, "0")))
    except ValueError:
        return 0


def failures(stats):
    """Failed calls + retransmissions of a stats row."""
    return counter(stats, "FailedCall") + counter(stats, "Retransmissions")


def trouble(stats):
    """Failed calls + retransmissions + stray messages of a stats row.

    Used for the UAS: a MESSAGE it sees again was retransmitted by the server.
    A client's stray messages are not counted: after an overloaded step the
    server may still answer the previous step's calls to the same port.
    """
    return (failures(stats) + counter(stats, "OutOfCallMsgs")
            + counter(stats, "DeadCallMsgs"))


def common_args(stat, prefix):
    return ["-nostdin", "-buff_size", BUFF,
            "-trace_stat", "-fd", "1", "-stf", stat,
            "-trace_err", "-error_file", prefix + ".errors.log", "-max_log_size", "2000000",
            "-trace_screen", "-screen_file", prefix + ".screen.log",
            "-default_behaviors", "all,-bye"]


def uac_command(target, scenario, csv, keys, local_port, rate, calls, timeout_s, prefix):
    """SIPp client command line for one bounded load."""
    cmd = [SIPP, target, "-sf", scenario, "-inf", csv, "-i", "127.0.0.1",
           "-p", str(local_port), "-r", str(rate), "-m", str(calls),
           "-timeout", "%ds" % timeout_s, "-recv_timeout", "8000"]
    for k, v in keys.items():
        cmd += ["-key", k, str(v)]
    return cmd + common_args(prefix + ".stat.csv", prefix)


class Uas:
    """A SIPp server: the online recipient answering MESSAGEs with 200 (uas-msg.xml),
    or the callee of the calls phase (calls-uas.xml)."""

    def __init__(self, scenario, port, prefix, timeout_s, register_pid, extra=()):
        self.stat = prefix + ".stat.csv"
        cmd = [SIPP, "-sf", scenario, "-i", "127.0.0.1", "-p", str(port),
               "-timeout", "%ds" % timeout_s] + common_args(self.stat, prefix) + list(extra)
        self.proc = subprocess.Popen(niced(cmd), stdout=subprocess.DEVNULL,
                                     stderr=open(prefix + ".stderr.log", "w"))
        register_pid(self.proc.pid)
        time.sleep(0.3)  # bound and listening before the first MESSAGE arrives

    def stop(self):
        """Stop it and return its final statistics."""
        time.sleep(1.2)  # one more -fd 1 statistics row
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return read_stats(self.stat)


def run_uac(cmd, prefix, wall_limit_s, register_pid, early_abort=True, uas_stat=None,
            cwd=None, watch=None):
    """Run one SIPp client load; returns a dict with rc, wall time, stats, aborted.

    watch, when given, is called with the elapsed seconds every quarter of a second
    while SIPp runs (the concurrency probe reads the server's memory from there)."""
    stat = prefix + ".stat.csv"
    for suffix in (".stat.csv", ".errors.log", ".screen.log"):
        if os.path.exists(prefix + suffix):
            os.unlink(prefix + suffix)
    with open(prefix + ".cmd", "w") as f:
        f.write(" ".join(cmd) + "\n")
    t0 = time.monotonic()
    proc = subprocess.Popen(niced(cmd), stdout=subprocess.DEVNULL,
                            stderr=open(prefix + ".stderr.log", "w"), cwd=cwd)
    register_pid(proc.pid)
    aborted = None
    while proc.poll() is None:
        time.sleep(0.25)
        elapsed = time.monotonic() - t0
        if elapsed > wall_limit_s:
            aborted = "wall-clock limit %.0f s" % wall_limit_s
        elif early_abort and failures(read_stats(stat)) > 0:
            aborted = "failure or retransmission seen"
        elif early_abort and uas_stat and trouble(read_stats(uas_stat)) > 0:
            aborted = "UAS saw a failure or retransmission"
        elif watch:
            watch(elapsed)
        if aborted:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            break
    wall = time.monotonic() - t0
    return {"rc": proc.returncode, "wall_s": round(wall, 3), "stats": read_stats(stat),
            "aborted": aborted}
