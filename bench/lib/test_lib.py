"""Unit tests of the pure parts of the harness: python3 -m unittest discover -s bench/lib"""
import os
import tempfile
import unittest

import bench
import callgrind
import check
import gen_users
import media
import ports
import report
import servers
import sip_latency
import sipp
import tls_probe


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


class CallSetupLatencyTests(unittest.TestCase):
    # server 5070, caller 15090, callee 15091; a B2BUA's B leg has its own Call-ID
    LINES = [
        # challenged INVITE: 407, never rung
        "1.000\t15090\t5070\ta1\t1\tINVITE\t",
        "1.001\t5070\t15090\ta1\t1\tINVITE\t407",
        "1.002\t15090\t5070\ta1\t1\tACK\t",
        # authenticated INVITE, retransmitted: the first one counts
        "1.010\t15090\t5070\ta1\t2\tINVITE\t",
        "1.510\t15090\t5070\ta1\t2\tINVITE\t",
        "1.011\t5070\t15090\ta1\t2\tINVITE\t100",
        "1.012\t5070\t15091\tb1\t1\tINVITE\t",
        "1.013\t15091\t5070\tb1\t1\tINVITE\t180",
        "1.014\t5070\t15090\ta1\t2\tINVITE\t180",
        "1.020\t15091\t5070\tb1\t1\tINVITE\t200",
        "1.520\t15091\t5070\tb1\t1\tINVITE\t200",
        "1.021\t5070\t15090\ta1\t2\tINVITE\t200",
        "1.022\t15090\t5070\ta1\t2\tACK\t",
        "1.023\t5070\t15091\tb1\t1\tACK\t",
        # the BYE's 200 is no INVITE answer
        "2.000\t15091\t5070\tb1\t2\tBYE\t200",
        # a second call: rung, its 200 never acknowledged
        "3.000\t15090\t5070\ta2\t2\tINVITE\t",
        "3.002\t5070\t15090\ta2\t2\tINVITE\t180",
        "3.010\t15091\t5070\tb2\t1\tINVITE\t200",
        # a third call: never rung
        "4.000\t15090\t5070\ta3\t2\tINVITE\t",
    ]

    def test_invite_180_on_the_caller_side_and_200_ack_on_the_callee_side(self):
        ring, ack, problems = sip_latency.call_setup(self.LINES, 5070, 15090, 15091)
        self.assertEqual(sorted(round(v * 1000, 3) for v in ring), [2.0, 4.0])
        self.assertEqual([round(v * 1000, 3) for v in ack], [3.0])
        self.assertEqual(problems, {"no_180": 1, "no_ack": 1})

    def test_a_proxy_keeps_the_call_id_on_both_legs(self):
        lines = [
            "1.000\t15090\t5070\tc\t2\tINVITE\t",
            "1.001\t5070\t15091\tc\t2\tINVITE\t",
            "1.002\t15091\t5070\tc\t2\tINVITE\t180",
            "1.003\t5070\t15090\tc\t2\tINVITE\t180",
            "1.010\t15091\t5070\tc\t2\tINVITE\t200",
            "1.011\t5070\t15090\tc\t2\tINVITE\t200",
            "1.012\t15090\t5070\tc\t2\tACK\t",
            "1.0135\t5070\t15091\tc\t2\tACK\t",
        ]
        ring, ack, problems = sip_latency.call_setup(lines, 5070, 15090, 15091)
        self.assertEqual([round(v * 1000, 3) for v in ring], [3.0])
        self.assertEqual([round(v * 1000, 3) for v in ack], [3.5])
        self.assertEqual(problems, {"no_180": 0, "no_ack": 0})


def calls_result(rate, cpu, ring_p99, ack_p99, conc_kb, conc_ok=True):
    best = {"kind": "confirm", "rate": rate, "passed": True, "cpu_us_per_op": cpu, "cpu_s": 1.0}
    return {"available": True, "best": best,
            "steps": [dict(best, kind="probe"), best],
            "latency": {"p50_ms": 0.3, "p99_ms": ring_p99, "rate": 100, "source": "tshark",
                        "invite_180": {"p50_ms": 0.3, "p99_ms": ring_p99},
                        "ok_ack": {"p50_ms": 0.2, "p99_ms": ack_p99}},
            "memory_kb": 50000, "alive_at_end": True,
            "concurrency": {"calls": 10000, "rate": 500, "passed": conc_ok,
                            "established": 10000 if conc_ok else 9000,
                            "successful": 10000 if conc_ok else 9000,
                            "idle_kb": 40 * 1024, "memory_kb": conc_kb}}


def calls_doc(mss=None, kam=None, extra=None):
    doc = smoke_doc()
    doc["mode"] = "full"
    doc["settings"].update(probe=5, confirm=20, calls_resolution=100, calls_hold_ms=1000,
                           calls_lat_rate=100, calls_lat_duration=10, conc_calls=10000,
                           conc_rate=500, calls_min_rate=50)
    doc["results"] = dict(extra or {})
    doc["results"]["calls"] = {
        "kamailio": kam or calls_result(2000, 400.0, 0.9, 0.5, 300 * 1024),
        "mss": mss or calls_result(2400, 280.0, 1.2, 0.8, 150 * 1024)}
    return doc


class CallsReportTests(unittest.TestCase):
    def test_the_calls_table_with_its_ratios_and_targets(self):
        md = report.calls_markdown(calls_doc())
        self.assertTrue(md.startswith(report.CALLS_START))
        self.assertIn(report.CALLS_END, md)
        self.assertIn("| Kamailio | 2,000 | 400 |  |  | 0.30 / 0.90 | 0.20 / 0.50 | "
                      "40.0 → 300.0 |", md)
        self.assertIn("| mss | 2,400 | 280 | 0.70 | 1.20 | 0.30 / 1.20 | 0.20 / 0.80 | "
                      "40.0 → 150.0 |", md)
        self.assertIn("| calls/s ≥ Kamailio's | 1.20× (2,400 vs 2,000) | met |", md)
        self.assertIn("| CPU per call ≤ 0.75× Kamailio's | 0.70× (280 vs 400 µs) | met |", md)
        self.assertIn("| INVITE → 180 p99 < 2 ms at 100 calls/s | 1.20 ms | met |", md)
        self.assertIn("| 200 → ACK p99 < 2 ms at 100 calls/s | 0.80 ms | met |", md)
        self.assertIn("| 10,000 concurrent calls < 200 MB | 150.0 MB | met |", md)
        # the capacity table has no calls row
        self.assertNotIn("| calls |", report.markdown(calls_doc(extra={
            "reg-auth": smoke_doc()["results"]["reg-auth"]})))

    def test_targets_not_met_and_a_failed_probe(self):
        mss = calls_result(1500, 350.0, 2.5, 0.8, 250 * 1024, conc_ok=False)
        md = report.calls_markdown(calls_doc(mss=mss))
        self.assertIn("| calls/s ≥ Kamailio's | 0.75× (1,500 vs 2,000) | not met |", md)
        self.assertIn("| CPU per call ≤ 0.75× Kamailio's | 0.88× (350 vs 400 µs) | not met |",
                      md)
        self.assertIn("| INVITE → 180 p99 < 2 ms at 100 calls/s | 2.50 ms | not met |", md)
        self.assertIn("| 10,000 concurrent calls < 200 MB | 250.0 MB (not every call "
                      "succeeded) | not met |", md)
        self.assertIn("40.0 → 250.0 ⁽³⁾", md)
        self.assertIn("⁽³⁾ mss: 9,000 of the concurrency probe's 10,000 calls succeeded (the "
                      "callee saw 9,000 at once)", md)

    def test_relay_on_against_relay_off(self):
        doc = calls_doc()
        on = calls_result(2300, 300.0, 1.25, 0.95, 150 * 1024)
        del on["concurrency"]
        doc["results"]["calls"]["mss-relay"] = on
        md = report.calls_markdown(doc)
        self.assertIn("| mss, relay on | 2,300 | 300 | 0.75 | 1.15 | 0.30 / 1.25 | "
                      "0.20 / 0.95 | – |", md)
        self.assertIn("| relay on: calls/s ≥ 0.90× relay off | 0.96× (2,300 vs 2,400) | met |",
                      md)
        self.assertIn("| relay on: CPU per call (reading) | 1.07× (300 vs 280 µs) | – |", md)
        self.assertIn("| relay on: INVITE → 180 p99 ≤ 1.10× relay off | 1.04× (1.25 vs "
                      "1.20 ms) | met |", md)
        self.assertIn("| relay on: 200 → ACK p99 ≤ 1.10× relay off | 1.19× (0.95 vs "
                      "0.80 ms) | not met |", md)
        self.assertNotIn("relay on:", report.calls_markdown(calls_doc()))

    def test_a_server_without_calls_and_a_missing_reference(self):
        refused = {"available": True, "error": "every call failed: the INVITE was answered "
                                               "501 Not Implemented", "steps": []}
        doc = calls_doc(mss=refused)
        md = report.calls_markdown(doc)
        self.assertIn("| mss | error: every call failed: the INVITE was answered 501 Not "
                      "Implemented |", md)
        self.assertNotIn("| target (mss) |", md)
        del doc["results"]["calls"]["kamailio"]
        doc["results"]["calls"]["mss"] = calls_result(2400, 280.0, 1.2, 0.8, 150 * 1024)
        md = report.calls_markdown(doc)
        self.assertIn("| calls/s ≥ Kamailio's | – | – |", md)
        self.assertIn("| 10,000 concurrent calls < 200 MB | 150.0 MB | met |", md)

    def test_only_the_blocks_of_the_phases_that_ran_are_written(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "BENCHMARKS.md")
            with open(path, "w") as f:
                f.write("# B\n%s\ncapacity\n%s\ntext\n" % (report.START, report.END))
            bench.write_tables(calls_doc(), path)
            text = open(path).read()
            self.assertIn("%s\ncapacity\n%s" % (report.START, report.END), text)
            self.assertEqual(text.count(report.CALLS_START), 1)
            self.assertIn("| mss | 2,400 |", text)
            bench.write_tables(smoke_doc(), path)
            text = open(path).read()
            self.assertNotIn("\ncapacity\n", text)
            self.assertIn("| mss | 2,400 |", text)  # the calls block stays
            self.assertEqual(text.count(report.START), 1)

    def test_smoke_checks_of_a_calls_run(self):
        doc = calls_doc()
        self.assertEqual(check.smoke_problems(doc), [])
        md = bench.write_tables(doc, None)
        self.assertEqual(check.table_problems(md, doc), [])
        doc["results"]["calls"]["mss"]["concurrency"]["passed"] = False
        doc["results"]["calls"]["mss"]["latency"]["ok_ack"] = {}
        problems = check.smoke_problems(doc)
        self.assertEqual(len(problems), 2, problems)
        self.assertIn("calls/mss: concurrency probe failed", problems[0])
        self.assertIn("no 200 -> ACK latency", problems[1])
        no_row = "\n".join(line for line in md.splitlines() if not line.startswith("| mss |"))
        self.assertEqual(check.table_problems(no_row, doc),
                         ["the table has 0 rows for calls/mss"])


class CallsHarnessTests(unittest.TestCase):
    def test_callers_and_callees(self):
        with tempfile.TemporaryDirectory() as d:
            names = gen_users.users(100000, 31)
            gen_users.gen_csvs(d, names)
            callees = [r.split(";")[0] for r in
                       open(os.path.join(d, "callees.csv")).read().splitlines()[1:]]
            self.assertEqual(callees, ["u100028", "u100029", "u100030"])
            rows = [r.split(";") for r in
                    open(os.path.join(d, "calls.csv")).read().splitlines()[1:]]
            self.assertEqual(len(rows), 27)  # all but u100000 and the callees
            for i, (caller, auth, callee) in enumerate(rows):
                self.assertNotIn(caller, callees + ["u100000"])
                self.assertEqual(callee, callees[i % 3])
                self.assertEqual(auth, gen_users.auth(caller))
        self.assertEqual(len(gen_users.callee_names(gen_users.users(100000, 100000))), 1000)
        self.assertEqual(len(gen_users.callee_names(gen_users.users(100000, 3))), 1)

    def test_the_calls_ini_adds_max_calls_and_no_media_relay(self):
        text = "; x\n[server]\ndomain = d\n\n[user:u1]\npassword = p\n"
        out = servers.calls_ini_text(text)
        lines = out.splitlines()
        self.assertEqual(lines[1:3], ["[server]", "max_calls = 50000"])
        self.assertEqual(out.count("[server]"), 1)
        self.assertIn("[user:u1]\npassword = p\n\n[media]\nrelay = never\n", out)
        on = servers.calls_ini_text(text, "always")
        self.assertIn("[media]\nrelay = always\nrtp_ports = 12000-27999\n", on)
        self.assertNotIn("relay = never", on)
        with self.assertRaises(ValueError):
            servers.calls_ini_text(text, "sometimes")

    def test_the_refusal_of_a_server_without_calls(self):
        with tempfile.TemporaryDirectory() as d:
            prefix = os.path.join(d, "mss-calls-probe-00200")
            with open(prefix + ".errors.log", "w") as f:
                f.write("2026-12-07 06:00:00 Aborting call on unexpected message for Call-Id "
                        "'1-2@127.0.0.1': while expecting '407' (index 2), received "
                        "'SIP/2.0 501 Not Implemented\r\nVia: ...'\n")
            self.assertEqual(bench.first_refusal(prefix), "501 Not Implemented")
            self.assertIsNone(bench.first_refusal(os.path.join(d, "none")))

    def test_what_a_server_said_when_it_refused_to_start(self):
        with tempfile.TemporaryDirectory() as d:
            log = os.path.join(d, "mss.log")
            with open(log, "w") as f:
                f.write("\n# mss serve --config a.ini\nold run\n"
                        "\n# mss serve --config b.ini\n"
                        "mss: b.ini:3: [server] max_calls: unknown key (known: domain)\n"
                        "b.ini:615: [media] unknown section\n")
            self.assertEqual(servers.last_words(log),
                             "mss: b.ini:3: [server] max_calls: unknown key (known: domain)")
            self.assertEqual(servers.last_words(os.path.join(d, "none")), "")
        doc = calls_doc(mss={"available": False, "reason": "exited with status 1: mss: x"})
        self.assertIn("- mss not available: exited with status 1: mss: x.",
                      report.calls_markdown(doc))

    def test_current_call_gauge(self):
        self.assertEqual(sipp.gauge({"CurrentCall": "9999"}, "CurrentCall"), 9999)
        self.assertEqual(sipp.gauge({}, "CurrentCall"), 0)



def _media_run(rep, target, sent=1000, lost=0, reordered=0, p99=100.0, cpu=None, kb=None,
               tool=0.5):
    relay = None if cpu is None else {
        "cpu_ms": cpu * sent / 1000.0, "wait_ms": 5.0, "cpu_us_per_packet": cpu,
        "core_share": 0.4, "rss_idle_kb": 1000, "rss_calls_kb": 1000 + kb * 10,
        "rss_end_kb": 1000 + kb * 10, "kb_per_call": kb, "relay_counted": None}
    totals = {"streams": 20, "sent": sent, "received": sent - lost, "lost": lost,
              "duplicates": 0, "reordered": reordered, "seq_mismatch": 0,
              "timestamp_mismatch": 0, "ssrc_mismatch": 0, "beyond_plan": 0,
              "jitter_sum_ms": 1.0, "jitter_max_ms": 0.1}
    transit = {"samples": sent, "mean_us": 10.0, "p50_us": 10.0, "p99_us": p99,
               "p999_us": p99, "max_us": p99}
    return {"repetition": rep, "target": target, "report": {
        "target": target, "calls": 10, "packets_per_stream": 50, "planned_pps": 1000.0,
        "sent_pps": 1000.0, "setup_ms": 1.0, "totals": totals, "jitter_mean_ms": 0.05,
        "transit": transit, "send_lateness": transit, "send_errors": 0, "misdelivered": 0,
        "foreign": 0, "relay": relay, "tool_cpu_share": tool, "loadavg": [1.0, 1.0]}}


class MediaTests(unittest.TestCase):
    def tool(self, calls, mss_lost=0):
        runs = []
        for rep in (0, 1):
            runs += [_media_run(rep, "direct", p99=100.0),
                     _media_run(rep, "mss", lost=mss_lost, p99=400.0 + rep * 200, cpu=2.0 + rep,
                                kb=3.0, tool=0.3),
                     _media_run(rep, "rtpengine", p99=900.0, cpu=8.0, kb=40.0),
                     {"repetition": rep, "target": "rtpengine-1t", "error": "no pong"}]
        return {"command": "mss-rtpload run", "calls": calls, "seconds": 1.0, "cpus": 2,
                "loadavg_start": 1.0, "loadavg_end": 2.0, "runs": runs}

    def test_summary_takes_medians_and_the_jitter_added_per_repetition(self):
        s = media.summarize(self.tool(1000))
        mss = s["mss"]["median"]
        self.assertEqual(mss["cpu_us_per_packet"], 2.5)
        self.assertEqual(mss["range_cpu_us_per_packet"], (2.0, 3.0))
        self.assertEqual(mss["added_p99_us"], 400.0)  # (300 + 500) / 2
        self.assertEqual(mss["sent"], 2000)
        self.assertEqual(s["rtpengine-1t"]["median"]["repetitions"], 0)
        self.assertEqual(s["rtpengine-1t"]["median"]["errors"], ["no pong", "no pong"])

    def test_targets_are_judged_only_at_their_size(self):
        judged = media.targets(media.summarize(self.tool(1000)), 1000)
        rows = {r[0].split(" (")[0]: r for r in judged}
        cpu = [r for r in judged if r[0].startswith("CPU")]
        # the relay's threads, then the machine; rtpengine-1t failed: no reading
        self.assertEqual([r[2] for r in cpu], ["met", "–", "met", "–"])
        self.assertEqual(cpu[0][1], "0.31× (2.50 vs 8.00 µs)")
        # machine: (tool 0.3 + relay 0.4 − direct's tool 0.5) ÷ (0.4 ÷ 2 or 3 µs per packet)
        # = 1.0 and 1.5 µs; rtpengine (0.5 + 0.4 − 0.5) ÷ (0.4 ÷ 8 µs) = 8 µs
        self.assertEqual(cpu[2][1], "0.16× (1.25 vs 8.00 µs)")
        self.assertIn("the machine", cpu[2][0])
        self.assertEqual(rows["1,000 calls: zero loss, zero reordering"][2], "met")
        self.assertEqual(rows["added jitter p99 < 1 ms"][2], "met")
        self.assertEqual(rows["at most 100 KB resident per relayed call"][2], "met")
        lossy = media.targets(media.summarize(self.tool(1000, mss_lost=3)), 1000)
        self.assertIn("not met", [r for r in lossy if "zero loss" in r[0]][0][2])
        small = media.targets(media.summarize(self.tool(200)), 200)
        self.assertEqual([r for r in small if "zero loss" in r[0]][0][2], "–")

    def test_the_block_has_its_markers_and_a_row_per_target(self):
        doc = {"started": "2026-12-07T08:00:00+00:00", "finished": "2026-12-07T08:02:00+00:00",
               "mode": "full", "machine": {"model": "x", "kernel": "6"},
               "rtpengine_version": "10.5",
               "media": {"available": True, "command": "c", "repro": "cargo run r",
                         "run_sh": "bench/run.sh --only media", "tool": self.tool(1000)}}
        doc["media"]["summary"] = media.summarize(doc["media"]["tool"])
        md = media.markdown(doc)
        self.assertTrue(md.startswith(media.MEDIA_START))
        self.assertIn(media.MEDIA_END, md)
        self.assertIn("| mss (io_uring, `SCHED_FIFO` 10 where permitted: the default) | 2.00–3.00 |",
                      md)
        self.assertIn("error: no pong; no pong", md)
        self.assertIn("`cargo run r`", md)
        self.assertIn("The load tool itself used 0.30–0.50 of a core", md)
        self.assertIn("| 2.00–3.00 | 1.00–1.50 | 0.40 |", md)
        missing = media.markdown({"media": {"available": False, "reason": "no binary"}})
        self.assertIn("Not measured: no binary.", missing)

    def test_smoke_problems_of_the_media_phase(self):
        m = {"available": True, "summary": media.summarize(self.tool(10))}
        # the fake tool ran no mss-plain: a target that did not run is a problem too
        self.assertEqual(check.smoke_problems({"media": m}),
                         ["media/mss-slice: no run", "media/mss-kernel-slice: no run",
                          "media/mss-recvmmsg: no run", "media/mss-plain: no run"]
                         + ["media/rtpengine-1t: no pong"] * 2)
        lossy = {"available": True, "summary": media.summarize(self.tool(10, mss_lost=2))}
        self.assertIn("media/mss: lost 4", check.smoke_problems({"media": lossy}))
        self.assertEqual(check.smoke_problems({"media": {"available": False, "reason": "x"}}),
                         ["media: not measured (x)"])
        self.assertEqual(check.smoke_problems({}), ["no scenario ran"])

if __name__ == "__main__":
    unittest.main()


class TlsProbeTests(unittest.TestCase):
    def result(self, held_kb, open_in_mss, udp_cpu, tls_cpu, udp_rate, tls_rate):
        mode = lambda rate, cpu: {"rate": rate, "mss_cpu_us_per_reg": cpu, "errors": 0,
                                  "registrations": 100, "handshakes": 90, "resumed": 90,
                                  "client_cpu_us_per_reg": 20.0}
        return {
            "started": "2026-12-07 09:00 UTC", "ended": "09:05 UTC", "mss_version": "mss 0.1.0",
            "tree": "abc1234", "machine": "2 × cpu", "loadavg": "1.0 1.0 1.0",
            "idle_per_source": 100, "idle_threads": 8,
            "idle": {"connections": 10000, "opened": open_in_mss, "open_in_mss": open_in_mss,
                     "rss_before_kb": 20 * 1024, "rss_held_kb": held_kb, "hwm_kb": held_kb,
                     "hold_seconds": 10},
            "registration": {"connections": 8, "duration": 10, "rounds": 2,
                             "reconnect_every": 1, "runs": [], "summary": {
                "udp": mode(udp_rate, udp_cpu), "tls-kept": mode(tls_rate, tls_cpu),
                "tls13-resumed": mode(tls_rate / 10, tls_cpu * 6),
                "tls12-resumed": mode(tls_rate / 5, tls_cpu * 3),
                "tls-full": mode(tls_rate / 12, tls_cpu * 7)}},
        }

    def test_targets_met_and_not_met(self):
        good = tls_probe.table(self.result(250 * 1024, 10000, 30.0, 40.0, 3000, 2400))
        self.assertIn("| 10,000 held, 250.0 MB | met |", good)
        self.assertIn("| 0.80× the rate, 0.75× by mss CPU per registration | met |", good)
        # The new-connection reading beside it: the cheapest of the three (TLS 1.2).
        self.assertIn("| the same, a new resumed connection for every registration (the cheapest mode) "
                      "| TLS 1.2, new connection, resumed: 0.16× the rate, 0.25× by mss CPU | not met |", good)
        bad = tls_probe.table(self.result(310 * 1024, 10000, 30.0, 60.0, 3000, 2400))
        self.assertIn("| 10,000 held, 310.0 MB | not met |", bad)
        self.assertIn("0.50× by mss CPU per registration | not met |", bad)
        short = tls_probe.table(self.result(100 * 1024, 9000, 30.0, 40.0, 3000, 2400))
        self.assertIn("| 9,000 held, 100.0 MB | not met |", short)
        failed = self.result(100 * 1024, 10000, 30.0, 40.0, 3000, 2400)
        failed["registration"]["summary"]["tls-kept"]["errors"] = 3
        self.assertIn("| void: failed registrations |", tls_probe.table(failed))
        self.assertNotIn("over the rounds", good)
        loaded = self.result(250 * 1024, 10000, 30.0, 40.0, 3000, 2400)
        loaded["registration"]["runs"] = [{"loadavg": ["3.5 4 4", "4 4 4"]},
                                          {"loadavg": ["7.9 4 4", "4 4 4"]}]
        self.assertIn("1.0 1.0 1.0, 1-minute load average 3.5–7.9 over the rounds",
                      tls_probe.table(loaded))
        no_idle = self.result(100 * 1024, 10000, 30.0, 40.0, 3000, 2400)
        no_idle["idle"] = None
        self.assertNotIn("idle TLS connections |", tls_probe.table(no_idle))

    def test_rounds_are_summarized_by_their_median(self):
        run = lambda rate, cpu: {"mode": "udp", "rate": rate, "mss_cpu_us_per_reg": cpu,
                                 "client_cpu_us_per_reg": 10.0, "errors": 0,
                                 "registrations": 5, "handshakes": 0, "resumed": 0}
        s = tls_probe.summarize([run(100, 70), run(300, 90), run(200, 50)])
        self.assertEqual(s["udp"]["rate"], 200)
        self.assertEqual(s["udp"]["mss_cpu_us_per_reg"], 70)
        self.assertEqual(s["udp"]["registrations"], 15)
        self.assertNotIn("tls-kept", s)

    def test_each_round_and_mode_has_its_own_sources(self):
        class FakeMss:
            sip, tls = 5060, 5061
            proc = type("P", (), {"pid": 42})()
        a = tls_probe.regload_args(FakeMss(), "tls12-resumed", 1, 8, 10, 400, 3)
        self.assertIn("127.11.4.1", a)
        self.assertIn("127.0.0.1:5061", a)
        self.assertEqual(a[a.index("--reconnect-every") + 1], "3")
        self.assertEqual(a[a.index("--tls-version") + 1], "1.2")
        u = tls_probe.regload_args(FakeMss(), "udp", 0, 8, 10, 400, 3)
        self.assertIn("127.0.0.1:5060", u)
        self.assertNotIn("--reconnect-every", u)

    def test_the_block_replaces_only_its_own(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "BENCHMARKS.md")
            with open(path, "w") as f:
                f.write("head\n<!-- bench:start -->\nkeep\n<!-- bench:end -->\n")
            block = tls_probe.table(self.result(250 * 1024, 10000, 30.0, 40.0, 3000, 2400))
            tls_probe.write_md(path, block)
            tls_probe.write_md(path, block)
            text = open(path).read()
            self.assertEqual(text.count(tls_probe.MARK_START), 1)
            self.assertIn("<!-- bench:start -->\nkeep\n<!-- bench:end -->", text)
