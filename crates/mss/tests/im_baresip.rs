//! baresip (headless, configuration and accounts in a temporary HOME) receives instant
//! messages from the real `mss`: the messages stored while it was offline as soon as it
//! registers, one at a time, oldest first, with their original `From`, `Content-Type` and
//! body and a `Date`; then live messages, over UDP and over TCP (where mss must send over
//! the connection the REGISTER came on, DESIGN §7).
//!
//! baresip 1.0 shows received messages only to a UI module, so the test reads its SIP trace
//! (`-s`) from stdout: every request it got and every response it sent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod im_common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{baresip_config, require_tool, wait_for, Peer};
use im_common::{password, send_message, start, stored};

const TEXT: Option<&str> = Some("text/plain;charset=UTF-8");

/// One MESSAGE baresip received, from its SIP trace.
#[derive(Debug)]
struct Received {
    /// `UDP` or `TCP`.
    transport: String,
    to: String,
    from: String,
    content_type: String,
    has_date: bool,
    body: String,
}

/// Every MESSAGE request in baresip's SIP trace `log`, in order. A trace entry is
/// `#\nPROTO SRC -> DST\n<message>` with colour escapes around it.
fn received(log: &str) -> Vec<Received> {
    let mut out = Vec::new();
    for entry in log.split("\u{1b}[36;1m#\n").skip(1) {
        let entry = entry.split("\u{1b}[;m").next().unwrap_or("");
        let mut lines = entry.lines();
        let route = lines.next().unwrap_or("");
        let Some(start) = lines.next() else { continue };
        if !start.starts_with("MESSAGE ") {
            continue;
        }
        let (head, body) = entry
            .split_once("\r\n\r\n")
            .or_else(|| entry.split_once("\n\n"))
            .unwrap_or((entry, ""));
        let header = |name: &str| {
            head.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                .unwrap_or("")
                .to_string()
        };
        out.push(Received {
            transport: route.split(' ').next().unwrap_or("").to_string(),
            to: header("To"),
            from: header("From"),
            content_type: header("Content-Type"),
            has_date: !header("Date").is_empty(),
            body: body.to_string(),
        });
    }
    out
}

#[test]
fn baresip_gets_stored_messages_in_order_then_live_ones_over_udp_and_tcp() {
    let baresip = require_tool("baresip");
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), "");
    let sender = Peer::new();
    let stored_bodies = ["first", "second ✓ ünïcode", "third"];
    for body in stored_bodies {
        let rsp = send_message(s.sip(), &sender, "100", "103", TEXT, body.as_bytes());
        assert_eq!(rsp.status().as_u16(), 202, "{rsp:?}");
    }
    assert_eq!(stored(&s, "103"), 3);

    let home = dir.path().join("home");
    // 103 over UDP, 102 over TCP, with the menu module.
    let conf = baresip_config(
        &home,
        s.sip_port,
        &["menu"],
        &[
            ("103", "udp", password("103")),
            ("102", "tcp", password("102")),
        ],
    );
    let log_path = dir.path().join("baresip.out");
    let mut child = Command::new(baresip)
        .env("HOME", &home)
        .arg("-f")
        .arg(&conf)
        .args(["-s", "-t", "40"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log_path).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    // Registering empties the store: each message is deleted after baresip's 200.
    let registered = wait_for(Duration::from_secs(15), || {
        let regs = s.registrations();
        let tcp = regs
            .iter()
            .any(|r| r["user"] == "102" && r["transport"] == "TCP");
        (tcp && stored(&s, "103") == 0).then_some(())
    });
    if registered.is_none() {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "baresip did not register or take its stored messages:\n{}\n{}",
            log(),
            s.stderr()
        );
    }

    let live_udp = send_message(s.sip(), &sender, "100", "103", TEXT, b"live over UDP");
    let live_tcp = send_message(s.sip(), &sender, "100", "102", TEXT, b"live over TCP");
    let got = wait_for(Duration::from_secs(5), || {
        let r = received(&log());
        (r.len() >= 5).then_some(r)
    });
    let _ = child.kill();
    let _ = child.wait();
    let trace = log();
    assert_eq!(live_udp.status().as_u16(), 200, "{live_udp:?}\n{trace}");
    assert_eq!(live_tcp.status().as_u16(), 200, "{live_tcp:?}\n{trace}");
    let got = got.unwrap_or_else(|| panic!("baresip did not get 5 MESSAGEs:\n{trace}"));

    let to_103: Vec<&Received> = got.iter().filter(|r| r.to.contains("sip:103@")).collect();
    let bodies: Vec<&str> = to_103.iter().map(|r| r.body.as_str()).collect();
    assert_eq!(
        bodies,
        ["first", "second ✓ ünïcode", "third", "live over UDP"],
        "{trace}"
    );
    for (n, r) in to_103.iter().take(3).enumerate() {
        // The original From, tag included (the sender's authenticated request had CSeq 2).
        assert_eq!(r.from, "<sip:100@pbx.test>;tag=t2", "stored message {n}");
        assert_eq!(r.content_type, TEXT.unwrap());
        assert!(r.has_date, "stored message {n} has no Date");
        assert_eq!(r.transport, "UDP");
    }
    let to_102: Vec<&Received> = got.iter().filter(|r| r.to.contains("sip:102@")).collect();
    assert_eq!(to_102.len(), 1, "{trace}");
    assert_eq!(to_102[0].body, "live over TCP");
    assert_eq!(to_102[0].transport, "TCP");
    assert_eq!(stored(&s, "103"), 0);
}
