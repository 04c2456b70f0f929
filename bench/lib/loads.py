"""The benchmark scenarios as bounded SIPp loads against one server."""
import os

import sipp

# the scenarios of the capacity table (and of callgrind.sh)
CAPACITY_SCENARIOS = ("reg-auth", "msg-online", "msg-offline")
# the scenarios that are SIPp loads against a SIP server
SIP_SCENARIOS = CAPACITY_SCENARIOS + ("calls",)
# every phase of run.sh, in the order a run goes through them ("media": RTP through the
# mss relay and rtpengine, media.py, no SIP)
SCENARIOS = SIP_SCENARIOS + ("media",)
# what `run --smoke` runs unless --only says otherwise (media needs rtpengine, which the
# test suite does not install)
SMOKE_SCENARIOS = SIP_SCENARIOS
ONLINE_USER_EXPIRES = 3600
# the SIPp UAS of each scenario that has one
UAS_SCENARIO = {"msg-online": "uas-msg", "calls": "calls-uas"}


class Csv:
    """A SIPp injection file whose rows are handed out in rotation.

    SIPp reads a SEQUENTIAL file from its first row on every run; writing the
    rows rotated by a cursor lets consecutive steps use fresh users (new
    registrations, offline recipients spread evenly under the store limit).
    """

    def __init__(self, path):
        with open(path) as f:
            lines = f.read().splitlines()
        self.rows = [r for r in lines[1:] if r]
        self.cursor = 0
        self.handed_out = 0

    def slice_file(self, out_path, calls):
        n = len(self.rows)
        start = self.cursor % n
        with open(out_path, "w") as f:
            f.write("SEQUENTIAL\n")
            for row in self.rows[start:] + self.rows[:start]:
                f.write(row)
                f.write("\n")
        self.cursor = (self.cursor + calls) % n
        self.handed_out += calls
        return out_path

    def used(self, planned, created):
        """Correct the rotation after a step that created fewer calls than planned."""
        unused = max(0, planned - created)
        self.cursor = (self.cursor - unused) % len(self.rows)
        self.handed_out -= unused

    def passes(self):
        """How many times each row has been handed out, at most."""
        n = len(self.rows)
        return (self.handed_out + n - 1) // n


class Loads:
    """Builds and runs the SIPp loads of one scenario against one server."""

    def __init__(self, scen_dir, users_dir, results_dir, domain, uac_port, uas_port,
                 register_pid):
        self.scen_dir = scen_dir
        self.users_dir = users_dir
        self.results_dir = results_dir
        self.domain = domain
        self.uac_port = uac_port
        self.uas_port = uas_port
        self.register_pid = register_pid
        self.expires = ONLINE_USER_EXPIRES
        self.hold_ms = 1000  # calls: the time between the ACK and the BYE
        self.ring_ms = 50    # calls: the callee's time between its 180 and its 200

    def scenario_file(self, name):
        return os.path.join(self.scen_dir, name + ".xml")

    def csv_for(self, scenario):
        key = {"reg-auth": "reg.csv", "calls": "calls.csv"}.get(scenario, "msg.csv")
        # each (server, scenario) pair starts with a fresh server: fresh rotation too
        return Csv(os.path.join(self.users_dir, key))

    def keys(self, scenario):
        keys = {"domain": self.domain}
        if scenario == "reg-auth":
            keys["expires"] = self.expires
        if scenario == "msg-online":
            keys["rcpt"] = self.online_user()
        return keys

    def online_user(self):
        with open(os.path.join(self.users_dir, "uas.csv")) as f:
            return f.read().splitlines()[1].split(";")[0]

    def register_online_user(self, target, prefix, expires=ONLINE_USER_EXPIRES):
        """REGISTER the online recipient from the UAS port; True on 200."""
        cmd = sipp.uac_command(target, self.scenario_file("reg-auth"),
                               os.path.join(self.users_dir, "uas.csv"),
                               {"domain": self.domain, "expires": expires},
                               self.uas_port, 10, 1, 15, prefix)
        res = sipp.run_uac(cmd, prefix, 20, self.register_pid, early_abort=False)
        return sipp.counter(res["stats"], "SuccessfulCall") == 1

    def callees(self):
        """The callees of the calls phase (callees.csv: user;[authentication ...])."""
        with open(os.path.join(self.users_dir, "callees.csv")) as f:
            return [r.split(";")[0] for r in f.read().splitlines()[1:] if r]

    def register_callees(self, target, prefix, expires=ONLINE_USER_EXPIRES, rate=500):
        """REGISTER every callee from the UAS port (contact: the UAS); True when all got 200."""
        n = len(self.callees())
        rate = min(rate, max(10, n))
        duration = n / float(rate)
        cmd = sipp.uac_command(target, self.scenario_file("reg-auth"),
                               os.path.join(self.users_dir, "callees.csv"),
                               {"domain": self.domain, "expires": expires},
                               self.uas_port, rate, n, int(duration * 2) + 15, prefix)
        res = sipp.run_uac(cmd, prefix, duration * 2 + 20, self.register_pid,
                           early_abort=False)
        return sipp.counter(res["stats"], "SuccessfulCall") == n

    def prepare(self, scenario, target, prefix, expires=ONLINE_USER_EXPIRES):
        """What a scenario needs on a freshly started server before its load: the online
        recipient (msg-online) or the callees (calls) registered from the UAS port.
        Returns None, or what went wrong."""
        if scenario == "msg-online":
            if not self.register_online_user(target, prefix + "-uas-register", expires):
                return "the online recipient could not register"
        elif scenario == "calls":
            if not self.register_callees(target, prefix + "-callees-register", expires):
                return "the callees could not register (see %s-callees-register.*)" % prefix
        return None

    def uas_args(self, scenario):
        """SIPp options of a scenario's UAS: for calls, the ring time (-d: the pause
        between the 180 and the 200). Without it the 180 and the 200 leave the callee
        back to back, and a server with several workers (Kamailio) may relay them in
        either order; the caller's scenario wants the 180 first."""
        return ["-d", str(int(self.ring_ms))] if scenario == "calls" else []

    def call_args(self, hold_ms, calls):
        """SIPp options of a calls load: the hold time and room for every call at once."""
        return ["-d", str(int(hold_ms)), "-l", str(int(calls) + 100)]

    def step(self, target, scenario, csv, rate, duration_s, prefix, extra=(), cwd=None,
             early_abort=True):
        """One bounded load: `rate` calls/s for `duration_s`; returns the SIPp result.

        early_abort stops SIPp at the first failure or retransmission (capacity
        search); without it the load runs to the end (smoke runs, which only
        require every call to succeed). A calls load holds each call for
        self.hold_ms after its ACK, so it lasts that much longer (res["extra_s"]).
        """
        calls = int(rate * duration_s)
        step_csv = csv.slice_file(prefix + ".csv", calls)
        extra_s = (self.hold_ms + self.ring_ms) / 1000.0 if scenario == "calls" else 0.0
        timeout_s = int(duration_s * 1.5 + extra_s) + 10
        cmd = sipp.uac_command(target, self.scenario_file(scenario), step_csv,
                               self.keys(scenario), self.uac_port, rate, calls,
                               timeout_s, prefix) + list(extra)
        if scenario == "calls":
            cmd += self.call_args(self.hold_ms, rate * (1 + extra_s) * 2)
        uas = None
        if scenario in UAS_SCENARIO:
            uas = sipp.Uas(self.scenario_file(UAS_SCENARIO[scenario]), self.uas_port,
                           prefix + ".uas", timeout_s + 5, self.register_pid,
                           extra=self.uas_args(scenario))
        try:
            res = sipp.run_uac(cmd, prefix, timeout_s + 5, self.register_pid,
                               early_abort=early_abort,
                               uas_stat=uas.stat if uas else None, cwd=cwd)
        finally:
            uas_stats = uas.stop() if uas else {}
        os.unlink(step_csv)
        created = sipp.counter(res["stats"], "OutgoingCall")
        csv.used(calls, created if res["stats"] else calls)
        res["calls"] = calls
        res["uas_stats"] = uas_stats
        res["extra_s"] = extra_s
        return res
