//! SIPp registers 1,000 different users with digest authentication against the real `mss`;
//! every one of them shows in `GET /api/registrations`.
//!
//! Scenario and users: `tests/sipp/register_auth.xml` and `tests/sipp/users.csv` (the whole
//! `[authentication …]` keyword is a CSV field, bench/README.md pitfalls). The run is paced at 250
//! registrations per second so that it stays quick and the numbers printed are comparable.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{free_port, require_tool, run_bounded, Server};

const USERS: usize = 1000;
const RATE: u32 = 250;

fn sipp_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sipp")
}

/// `(user, password)` of every line of users.csv.
fn users() -> Vec<(String, String)> {
    let csv = std::fs::read_to_string(sipp_dir().join("users.csv")).unwrap();
    csv.lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (user, auth) = l.split_once(';').unwrap();
            let password = auth
                .split("password=")
                .nth(1)
                .unwrap()
                .trim_end_matches(']')
                .to_string();
            (user.to_string(), password)
        })
        .collect()
}

#[test]
fn sipp_registers_a_thousand_users_with_digest() {
    let sipp = require_tool("sipp");
    let users = users();
    assert_eq!(users.len(), USERS);
    let ini: String = users
        .iter()
        .map(|(u, p)| format!("[user:{u}]\npassword = {p}\n"))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &ini);

    let started = Instant::now();
    let (ok, out, err) = run_bounded(
        Command::new(sipp)
            .current_dir(dir.path())
            .arg(s.sip().to_string())
            .arg("-sf")
            .arg(sipp_dir().join("register_auth.xml"))
            .arg("-inf")
            .arg(sipp_dir().join("users.csv"))
            .args([
                "-m",
                &USERS.to_string(),
                "-r",
                &RATE.to_string(),
                "-rp",
                "1000",
            ])
            .args(["-l", "200", "-t", "u1", "-i", "127.0.0.1"])
            .args(["-p", &free_port().to_string()])
            .args(["-recv_timeout", "5000", "-timeout", "60", "-timeout_error"])
            .args(["-buff_size", "4194304", "-nostdin", "-trace_err"]),
        Duration::from_secs(90),
    );
    let elapsed = started.elapsed();
    let summary: String = out
        .lines()
        .filter(|l| l.contains("Successful call") || l.contains("Failed call"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(ok, "sipp failed:\n{out}\n{err}\n{}", s.stderr());
    println!(
        "SIPp: {USERS} digest registrations in {:.2} s ({:.0}/s offered {RATE}/s)\n{summary}",
        elapsed.as_secs_f64(),
        USERS as f64 / elapsed.as_secs_f64()
    );

    let listed: BTreeSet<String> = s
        .registrations()
        .iter()
        .map(|r| r["user"].as_str().unwrap().to_string())
        .collect();
    let wanted: BTreeSet<String> = users.into_iter().map(|(u, _)| u).collect();
    assert_eq!(listed, wanted);
    let (_, metrics) = s.get("/metrics");
    assert!(
        metrics.contains(&format!("mss_registered_contacts {USERS}\n")),
        "{metrics}"
    );
}
