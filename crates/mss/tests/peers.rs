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

/// baresip 1.0 (libre) gives up on a `401` that also offers SHA-256 ("Function not
/// implemented"). On the embedded defaults mss recognises it by its `User-Agent` and
/// challenges it with MD5 alone: it registers over UDP and TCP, and a MESSAGE it sends to
/// an offline user answers its `407` and is stored.
#[test]
fn baresip_registers_and_messages_on_the_embedded_defaults() {
    let baresip = require_tool("baresip");
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_embedded(dir.path());
    let home = dir.path().join("home");
    let conf = baresip_config(
        &home,
        s.sip_port,
        &["contact"],
        &[
            ("100", "udp", &s.default_password("100")),
            ("101", "tcp", &s.default_password("101")),
        ],
    );
    // The contact module's current contact is the first of its list: the MESSAGE goes there.
    std::fs::write(
        conf.join("contacts"),
        format!("\"Carol\" <sip:102@127.0.0.1:{}>\n", s.sip_port),
    )
    .unwrap();
    let mut child = Command::new(baresip)
        .env("HOME", &home)
        .arg("-f")
        .arg(&conf)
        .args(["-s", "-t", "30", "-e", "/message hello from baresip"])
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
        let (_, stored) = s.get("/api/messages/102");
        let stored: serde_json::Value = serde_json::from_str(&stored).ok()?;
        let message = stored.as_array()?.first()?.clone();
        Some((t("100")?, t("101")?, message))
    });
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.path().join("baresip.out")).unwrap_or_default();
    let (udp, tcp, message) = found.unwrap_or_else(|| {
        panic!(
            "baresip did not register and message:\n{log}\n{}",
            s.stderr()
        )
    });
    assert_eq!((udp.as_str(), tcp.as_str()), ("UDP", "TCP"));
    assert_eq!(message["body"], "hello from baresip", "{message}");
    assert!(
        message["from"].as_str().unwrap_or("").contains("sip:100@"),
        "{message}"
    );
    // It was challenged with MD5 alone, every time.
    let challenges: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("WWW-Authenticate:") || l.starts_with("Proxy-Authenticate:"))
        .collect();
    assert!(!challenges.is_empty(), "{log}");
    assert!(
        challenges.iter().all(|c| c.contains("algorithm=MD5")),
        "{challenges:?}"
    );
}
