"""Latency of one bounded load: a tshark capture on lo, or SIPp's own clock."""
import glob
import json
import os
import shutil
import signal
import subprocess
import time

import sip_latency


def have_capture_tools():
    return shutil.which("dumpcap") is not None and shutil.which("tshark") is not None


class Capture:
    """dumpcap on lo, filtered by the server's UDP port."""

    def __init__(self, port, path, register_pid):
        self.port = port
        self.path = path
        if os.path.exists(path):
            os.unlink(path)
        self.err = open(path + ".log", "w")
        self.proc = subprocess.Popen(
            ["dumpcap", "-q", "-i", "lo", "-f", "udp port %d" % port, "-B", "64",
             "-w", path], stdout=subprocess.DEVNULL, stderr=self.err)
        register_pid(self.proc.pid)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not os.path.exists(path):
            time.sleep(0.1)
        time.sleep(0.5)

    def stop(self):
        time.sleep(0.3)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.err.close()

    def fields(self):
        """The capture's SIP messages as tshark field lines (see sip_latency), or None."""
        if not os.path.exists(self.path):
            return None
        fields = ["frame.time_epoch", "udp.srcport", "udp.dstport", "sip.Call-ID",
                  "sip.CSeq.seq", "sip.CSeq.method", "sip.Status-Code"]
        cmd = ["tshark", "-r", self.path, "-n", "-d", "udp.port==%d,sip" % self.port,
               "-Y", "sip", "-T", "fields", "-E", "separator=/t"]
        for f in fields:
            cmd += ["-e", f]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.SubprocessError):
            return None
        with open(self.path + ".fields.tsv", "w") as f:
            f.write(out.stdout)
        return out.stdout.splitlines()

    def summarize_calls(self, uac_port, uas_port):
        """INVITE -> 180 (caller side) and 200 -> ACK (callee side) of a calls load, or None.

        p50_ms/p99_ms at the top are those of INVITE -> 180; both are in full under
        "invite_180" and "ok_ack"."""
        lines = self.fields()
        if lines is None:
            return None
        ring, ack, problems = sip_latency.call_setup(lines, self.port, uac_port, uas_port)
        if not ring:
            return None
        res = sip_latency.summarize(ring, problems["no_180"])
        res["source"] = "tshark"
        res["invite_180"] = sip_latency.summarize(ring, problems["no_180"])
        res["ok_ack"] = sip_latency.summarize(ack, problems["no_ack"])
        return res

    def summarize(self):
        """Latency summary of the 2xx-answered requests, or None."""
        lines = self.fields()
        if lines is None:
            return None
        vals, unanswered = sip_latency.latencies(lines, self.port, sip_latency.code_matcher("2xx"))
        if not vals:
            return None
        res = sip_latency.summarize(vals, unanswered)
        res["source"] = "tshark"
        chal, _ = sip_latency.latencies(lines, self.port, sip_latency.code_matcher("401,407"))
        res["challenge"] = sip_latency.summarize(chal, 0)
        return res


def from_sipp_rtt(directory, rtd="2"):
    """Fallback: SIPp -trace_rtt files (response times of rtd 2 -- for calls rtd 1, the
    INVITE -> 180 --, 4 ms resolution here)."""
    vals = []
    for path in glob.glob(os.path.join(directory, "*_rtt.csv")):
        with open(path) as f:
            for line in f.read().splitlines()[1:]:
                cols = line.split(";")
                if len(cols) >= 3 and cols[2].strip() == rtd:
                    try:
                        vals.append(float(cols[1]) / 1000.0)
                    except ValueError:
                        pass
    if not vals:
        return None
    res = sip_latency.summarize(vals, 0)
    res["source"] = "sipp"
    return res


if __name__ == "__main__":
    print(json.dumps(from_sipp_rtt(".")))
