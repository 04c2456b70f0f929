//! The capacity benchmark harness (`bench/run.sh`) stays runnable: its smoke mode goes through
//! the whole pipeline once at 10 calls/s against this build's (debug) `mss` and against
//! Kamailio with the reference configuration `bench/kamailio/kamailio.cfg`: user generation,
//! fresh servers, the reg-auth, msg-online, msg-offline and calls SIPp scenarios (calls: mss as
//! a B2BUA, Kamailio with `bench/kamailio/kamailio-calls.cfg`, and a probe of 20 concurrent
//! calls), CPU and memory readings, the latency runs, the report (written to a copy of `BENCHMARKS.md` in a temporary
//! folder, never the repository's) and the scale check with restart. Nothing is timed or
//! compared here: the test fails only when a call fails or a step breaks.
//!
//! Needs `sipp`, `kamailio` (with its SQLite, msilo and async modules) and `python3`
//! (`scripts/install-test-deps.sh`); without them the test fails and says so. Ports are chosen
//! free by the script; about two minutes.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The hard limit of the whole smoke run (the script itself stops after ~5 minutes).
const LIMIT_S: u32 = 420;

fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The last `n` lines of a process output, for a failure message.
fn tail(text: &[u8], n: usize) -> String {
    let text = String::from_utf8_lossy(text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[test]
fn bench_harness_smoke_runs_every_scenario_against_mss_and_kamailio() {
    let missing: Vec<&str> = ["sipp", "kamailio", "python3", "timeout"]
        .into_iter()
        .filter(|t| find_tool(t).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "the benchmark smoke test needs {missing:?}: run scripts/install-test-deps.sh \
         (Debian packages sip-tester, kamailio, kamailio-sqlite-modules, \
         kamailio-extra-modules)"
    );
    let root = repo_root();
    let mss = env!("CARGO_BIN_EXE_mss");
    let mut cmd = Command::new("timeout");
    cmd.args([
        "--signal=TERM",
        "--kill-after=20",
        &LIMIT_S.to_string(),
        "bash",
    ])
    .arg(root.join("bench/run.sh"))
    .args(["--smoke", "--no-build", "--no-install", "--mss-bin", mss])
    .current_dir(&root);
    // The smoke run chooses its own free ports, work dir and user count.
    for var in [
        "BENCH_WORK",
        "BENCH_USERS",
        "BENCH_NICE",
        "BENCH_KAMAILIO_PORT",
        "BENCH_MSS_PORT",
        "BENCH_MSS_ADMIN",
        "BENCH_UAC_PORT",
        "BENCH_UAS_PORT",
    ] {
        cmd.env_remove(var);
    }
    let out = cmd
        .output()
        .expect("bench/run.sh --smoke could not be started");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}\n{stderr}");
    assert!(
        out.status.success(),
        "bench/run.sh --smoke failed ({}):\n{}\n{}",
        out.status,
        tail(&out.stdout, 40),
        tail(&out.stderr, 40)
    );
    for scenario in ["reg-auth", "msg-online", "msg-offline", "calls"] {
        for server in ["kamailio", "mss"] {
            let line = format!("{server:<8} {scenario:<11} smoke ");
            assert!(
                stdout
                    .lines()
                    .any(|l| l.contains(&line) && l.contains("PASS")),
                "no passing {scenario} step against {server} in the output"
            );
        }
    }
    assert!(
        stdout.contains("mss_registered_contacts = 200 after"),
        "the scale check did not see every registration back after the restart"
    );
    assert!(stdout.contains("smoke: PASS") || stderr.contains("smoke: PASS"));
}
