//! Real SIP clients from Debian register with the real `mss`: sipsak (UDP, its usrloc
//! mode; its `-M`/`-I` modes crash, DESIGN §7) and baresip (headless, one account over UDP
//! and one over TCP, configuration written into a temporary folder).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{baresip_config, require_tool, run_bounded, wait_for, Server};

#[test]
fn sipsak_registers() {
    let sipsak = require_tool("sipsak");
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), "[user:101]\npassword = sipsak-pw\n");
    // sipsak drops the last digit of a five-digit port in the URIs it builds (DESIGN §7);
    // mss takes its own host with any port as its domain, and sipsak sends to the port
    // given here.
    let (ok, out, err) = run_bounded(
        Command::new(sipsak)
            .args([
                "-U",
                "-i",
                "-x",
                "300",
                "-u",
                "101",
                "-a",
                "sipsak-pw",
                "-s",
            ])
            .arg(format!("sip:101@127.0.0.1:{}", s.sip_port)),
        Duration::from_secs(20),
    );
    assert!(ok, "sipsak failed:\n{out}\n{err}\n{}", s.stderr());
    let regs = s.registrations();
    let r = regs
        .iter()
        .find(|r| r["user"] == "101")
        .unwrap_or_else(|| panic!("{regs:?}"));
    assert_eq!(r["transport"], "UDP");
    assert!(
        r["user_agent"].as_str().unwrap_or("").starts_with("sipsak"),
        "{r}"
    );
}

#[test]
fn baresip_registers_over_udp_and_tcp() {
    let baresip = require_tool("baresip");
    let dir = tempfile::tempdir().unwrap();
    // baresip 1.0 (libre) gives up on a 401 that also offers SHA-256: MD5 alone for it.
    let s = Server::start_with(
        dir.path(),
        "digest_algorithms = md5\n",
        "[user:102]\npassword = udp-pw\n\n[user:103]\npassword = tcp-pw\n",
    );
    let home = dir.path().join("home");
    let conf = baresip_config(
        &home,
        s.sip_port,
        &[],
        &[("102", "udp", "udp-pw"), ("103", "tcp", "tcp-pw")],
    );
    let mut child = Command::new(baresip)
        .env("HOME", &home)
        .arg("-f")
        .arg(&conf)
        .args(["-t", "30"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.path().join("baresip.out")).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let found = wait_for(Duration::from_secs(15), || {
        let regs = s.registrations();
        let t = |u: &str| {
            regs.iter()
                .find(|r| r["user"] == u)
                .map(|r| r["transport"].as_str().unwrap_or("").to_string())
        };
        Some((t("102")?, t("103")?))
    });
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.path().join("baresip.out")).unwrap_or_default();
    let (udp, tcp) =
        found.unwrap_or_else(|| panic!("baresip did not register:\n{log}\n{}", s.stderr()));
    assert_eq!((udp.as_str(), tcp.as_str()), ("UDP", "TCP"));
}
