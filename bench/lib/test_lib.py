"""Unit tests of the pure parts of the harness: python3 -m unittest discover -s bench/lib"""
import os
import tempfile
import unittest

import callgrind
import check
import gen_users
import ports
import report
import servers
import sip_latency
import sipp


class LatencyTests(unittest.TestCase):
    def test_pairs_first_request_with_first_final_response_from_server(self):
        lines = [
            # client -> server, retransmitted, relayed to UAS, UAS answers, server answers
            "10.000\t15090\t5070\tc1\t2\tMESSAGE\t",
            "10.400\t15090\t5070\tc1\t2\tMESSAGE\t",
            "10.001\t5070\t15091\tc1\t2\tMESSAGE\t",
            "10.002\t15091\t5070\tc1\t2\tMESSAGE\t200",
            "10.003\t5070\t15090\tc1\t2\tMESSAGE\t100",
            "10.005\t5070\t15090\tc1\t2\tMESSAGE\t200",
            "10.500\t5070\t15090\tc1\t2\tMESSAGE\t200",
            # challenge
            "11.000\t15090\t5070\tc2\t1\tREGISTER\t",
            "11.001\t5070\t15090\tc2\t1\tREGISTER\t401",
            # never answered
            "12.000\t15090\t5070\tc3\t1\tREGISTER\t",
        ]
        vals, unanswered = sip_latency.latencies(lines, 5070, sip_latency.code_matcher("2xx"))
        self.assertEqual(len(vals), 1)
        self.assertAlmostEqual(vals[0], 0.005, places=6)
        self.assertEqual(unanswered, 1)
        chal, _ = sip_latency.latencies(lines, 5070, sip_latency.code_matcher("401,407"))
        self.assertEqual(len(chal), 1)

    def test_percentiles(self):
        s = sip_latency.summarize([i / 1000.0 for i in range(1, 101)], 0)
        self.assertEqual(s["p50_ms"], 50.0)
        self.assertEqual(s["p99_ms"], 99.0)
        self.assertEqual(s["max_ms"], 100.0)
        self.assertIsNone(sip_latency.summarize([], 0)["p50_ms"])


class ReportTests(unittest.TestCase):
    def test_replaces_only_between_markers(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "BENCHMARKS.md")
            with open(path, "w") as f:
                f.write("# B\n\nbefore\n%s\nold\n%s\nafter\n" % (report.START, report.END))
            report.replace_between_markers(path, "%s\nnew\n%s\n" % (report.START, report.END))
            text = open(path).read()
            self.assertIn("before\n", text)
            self.assertIn("after\n", text)
            self.assertIn("new", text)
            self.assertNotIn("old", text)

    def test_creates_file_with_markers(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "BENCHMARKS.md")
            report.replace_between_markers(path, "%s\nx\n%s\n" % (report.START, report.END))
            text = open(path).read()
            self.assertEqual(text.count(report.START), 1)
            self.assertEqual(text.count(report.END), 1)


class ScaleReportTests(unittest.TestCase):
    def test_scale_block_keeps_the_capacity_block(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "BENCHMARKS.md")
            report.replace_between_markers(path, "%s\ncap\n%s\n" % (report.START, report.END))
            doc = {"users": 10, "rate": 5, "registered_ok": 10, "rss_kb": 2048,
                   "rss_idle_kb": 3072, "vmrss_kb": 1024, "vmrss_after_restart_kb": 5120,
                   "restored_after_s": 1.5, "kamailio": {"registered_ok": 10}}
            md = report.scale_markdown(doc, "now", "0.1.0")
            report.replace_between_markers(path, md, report.SCALE_START, report.SCALE_END)
            report.replace_between_markers(path, md, report.SCALE_START, report.SCALE_END)
            text = open(path).read()
            self.assertIn("cap", text)
            self.assertEqual(text.count(report.SCALE_START), 1)
            self.assertIn("| 1.5 s |", text)
            self.assertIn("still wait out Timer J) | 1 MB |", text)
            self.assertIn("after a restart (no transaction left) | 5 MB |", text)
            self.assertIn("| 3 MB / 2 MB |", text)


class StatsTests(unittest.TestCase):
    def test_last_complete_row(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "s.csv")
            with open(path, "w") as f:
                f.write("A;SuccessfulCall(C);FailedCall(C);Retransmissions(C);\n")
                f.write("x;5;0;0;\n")
                f.write("x;9;1;2;\n")
                f.write("x;1")  # partial line being written
            st = sipp.read_stats(path)
            self.assertEqual(sipp.counter(st, "SuccessfulCall"), 9)
            self.assertEqual(sipp.failures(st), 3)


class UsersTests(unittest.TestCase):
    def test_csvs_and_ini(self):
        with tempfile.TemporaryDirectory() as d:
            names = gen_users.users(100000, 10)
            gen_users.gen_csvs(d, names)
            msg = open(os.path.join(d, "msg.csv")).read().splitlines()
            self.assertEqual(msg[0], "SEQUENTIAL")
            rows = [r.split(";") for r in msg[1:]]
            self.assertEqual(len(rows), 9)
            for sender, auth, rcpt in rows:
                self.assertNotEqual(sender, rcpt)
                self.assertNotEqual(rcpt, "u100000")
                self.assertEqual(auth, "[authentication username=%s password=%s]" % (
                    sender, gen_users.password(sender)))
            reg = open(os.path.join(d, "reg.csv")).read().splitlines()
            self.assertNotIn("u100000;", "\n".join(reg))
            ini = os.path.join(d, "mss.ini")
            gen_users.gen_mss_ini(ini, names, "bench.test", 15080, "127.0.0.1:15081", d)
            text = open(ini).read()
            self.assertEqual(text.count("[user:"), 10)
            self.assertIn("listen = udp:127.0.0.1:15080", text)


def smoke_doc():
    """A results document of a passing smoke run (one scenario, two servers)."""
    step = {"kind": "smoke", "rate": 10, "calls": 20, "successful": 20, "failed": 0,
            "retransmissions": 0, "passed": True, "cpu_s": 0.01, "cpu_us_per_op": 500.0}
    res = {"available": True, "best": dict(step), "steps": [dict(step)],
           "latency": {"p50_ms": 0.5, "p99_ms": 0.9, "rate": 10, "source": "tshark"},
           "memory_kb": 16000, "alive_at_end": True}
    return {"started": "2026-01-01T00:00:00+00:00", "finished": "2026-01-01T00:01:00+00:00",
            "mode": "smoke", "settings": {"probe": 2, "confirm": 2, "start": 10,
                                          "min_rate": 1, "resolution": 10, "max_rate": 10,
                                          "lat_rate": 10, "lat_duration": 2},
            "machine": {"nproc": 2, "model": "cpu", "kernel": "6", "sipp": "3.6.1",
                        "versions": {"mss": "0.1.0", "kamailio": "5.6"}},
            "results": {"reg-auth": {"kamailio": res, "mss": json_copy(res)}}}


def json_copy(v):
    import json
    return json.loads(json.dumps(v))


class SmokeCheckTests(unittest.TestCase):
    def test_a_passing_run_has_no_problems(self):
        doc = smoke_doc()
        self.assertEqual(check.smoke_problems(doc), [])
        self.assertEqual(check.table_problems(report.markdown(doc), doc), [])

    def test_a_failed_call_is_a_problem(self):
        doc = smoke_doc()
        s = doc["results"]["reg-auth"]["mss"]["steps"][0]
        s.update(successful=19, failed=1, passed=False)
        doc["results"]["reg-auth"]["mss"]["best"] = None
        problems = check.smoke_problems(doc)
        self.assertEqual(len(problems), 1)
        self.assertIn("reg-auth/mss: 19 of 20 calls successful, 1 failed", problems[0])

    def test_missing_readings_and_unavailable_servers_are_problems(self):
        doc = smoke_doc()
        mss = doc["results"]["reg-auth"]["mss"]
        mss["latency"] = None
        mss["memory_kb"] = 0
        mss["steps"][0]["cpu_us_per_op"] = None
        doc["results"]["reg-auth"]["kamailio"] = {"available": False, "reason": "no kamailio"}
        problems = check.smoke_problems(doc)
        self.assertEqual(len(problems), 4)
        self.assertTrue(any("no latency" in p for p in problems))
        self.assertTrue(any("server not available (no kamailio)" in p for p in problems))
        md = report.markdown(doc)
        self.assertTrue(any("reg-auth/kamailio" in p
                            for p in check.table_problems(md, doc)))

    def test_a_table_without_a_row_is_a_problem(self):
        doc = smoke_doc()
        md = "\n".join(line for line in report.markdown(doc).splitlines()
                       if not line.startswith("| reg-auth | mss |"))
        self.assertEqual(check.table_problems(md, doc),
                         ["the table has 0 rows for reg-auth/mss"])
        self.assertIn("the table block lacks its markers", check.table_problems("x", doc))


class PortsTests(unittest.TestCase):
    def test_free_ports_are_distinct_and_unbound(self):
        got = ports.free_ports(5)
        self.assertEqual(len(set(got)), 5)
        for p in got:
            self.assertEqual(servers.udp_sockets_on(p), 0)
            self.assertFalse(servers.port_busy(p))


class CallgrindTests(unittest.TestCase):
    def test_program_totals_of_both_annotate_formats(self):
        old = "Events shown:   Ir\n--\n2,942,337,925  PROGRAM TOTALS\n\n--\n"
        new = "--\n3,842,897,994 (100.0%)  PROGRAM TOTALS\n--\n1,000 (0.1%)  x.rs:f\n"
        self.assertEqual(callgrind.program_totals(old), 2942337925)
        self.assertEqual(callgrind.program_totals(new), 3842897994)
        self.assertIsNone(callgrind.program_totals("callgrind_annotate: no such file\n"))

    def test_per_call_and_store_commits(self):
        text = ("# HELP mss_store_commits_total Store transactions committed.\n"
                "# TYPE mss_store_commits_total counter\n"
                "mss_store_commits_total 1930\nmss_store_writes_total 3021\n"
                "mss_store_largest_batch 4\n")
        self.assertEqual(callgrind.store_counters(text),
                         {"mss_store_commits_total": 1930, "mss_store_writes_total": 3021})
        small = {"calls": 3000, "total": 3000000, "retrans": 0, "problems": [],
                 "store": callgrind.store_counters(text)}
        large = {"calls": 9000, "total": 9000000, "retrans": 0, "problems": [],
                 "store": {"mss_store_commits_total": 6430}}
        self.assertEqual(callgrind.per_call(3000000, 9000000, 3000, 9000), 1000.0)
        self.assertAlmostEqual(callgrind.commits_per_call(small, large), 0.75)
        line = callgrind.format_line({"scenario": "reg-auth", "rate": 300,
                                      "runs": [small, large]})
        self.assertEqual(line.split(), ["reg-auth", "1,000", "(3,000,000,", "9,000,000)",
                                        "300/s", "0.75"])
        large["store"] = {}
        self.assertIn(" ?", callgrind.format_line({"scenario": "reg-auth", "rate": 300,
                                                    "runs": [small, large]}))

    def test_a_failed_run_is_reported(self):
        bad = {"calls": 3000, "retrans": 0, "problems": ["3000 calls at 300/s: 2990 of 3000"]}
        line = callgrind.format_line({"scenario": "msg-online", "rate": 100, "runs": [bad]})
        self.assertIn("FAILED at 100/s", line)
        self.assertIn("2990 of 3000", line)


if __name__ == "__main__":
    unittest.main()
