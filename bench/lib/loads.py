"""The three benchmark scenarios as bounded SIPp loads against one server."""
import os

import sipp

SCENARIOS = ("reg-auth", "msg-online", "msg-offline")
ONLINE_USER_EXPIRES = 3600


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

    def scenario_file(self, name):
        return os.path.join(self.scen_dir, name + ".xml")

    def csv_for(self, scenario):
        key = "reg.csv" if scenario == "reg-auth" else "msg.csv"
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

    def step(self, target, scenario, csv, rate, duration_s, prefix, extra=(), cwd=None,
             early_abort=True):
        """One bounded load: `rate` calls/s for `duration_s`; returns the SIPp result.

        early_abort stops SIPp at the first failure or retransmission (capacity
        search); without it the load runs to the end (smoke runs, which only
        require every call to succeed).
        """
        calls = int(rate * duration_s)
        step_csv = csv.slice_file(prefix + ".csv", calls)
        timeout_s = int(duration_s * 1.5) + 10
        cmd = sipp.uac_command(target, self.scenario_file(scenario), step_csv,
                               self.keys(scenario), self.uac_port, rate, calls,
                               timeout_s, prefix) + list(extra)
        uas = None
        if scenario == "msg-online":
            uas = sipp.Uas(self.scenario_file("uas-msg"), self.uas_port, prefix + ".uas",
                           timeout_s + 5, self.register_pid)
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
        return res
