//! Debian's sipvicious `svcrack` guesses a user's password against the real `mss` binary on
//! loopback, from a 200-word list with the password near its end: mss bans the address
//! after `ban_after` failed answers, drops its packets, svcrack finds nothing, and the ban
//! shows in the log (the fixed line fail2ban matches), `GET /api/bans` and `/metrics`;
//! `DELETE /api/bans/{addr}` lifts it.
//!
//! Loopback is on the default `ignore` list, so the test sets `ignore = none`. Without bans
//! (`ban_after = 0`, `rate_limit = 0`) the same svcrack run finds the password in about a
//! second. svcrack stops 3 s after the last answer (`--maximumtime 3`), then waits out its
//! 10-s socket timeout: the run takes about 15 s.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{free_port, options, require_tool, run_bounded, wait_for, Peer, Server};

const PASSWORD: &str = "Sesame-190";

#[test]
fn svcrack_is_banned_before_it_finds_the_password() {
    let svcrack = require_tool("svcrack");
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &format!("[user:100]\npassword = {PASSWORD}\n\n[security]\nignore = none\n"),
    );
    let words: Vec<String> = (0..200)
        .map(|i| {
            if i == 190 {
                PASSWORD.to_owned()
            } else {
                format!("guess{i:03}")
            }
        })
        .collect();
    let list = dir.path().join("words.txt");
    std::fs::write(&list, words.join("\n") + "\n").unwrap();

    let (_, out, err) = run_bounded(
        Command::new(svcrack)
            .arg("-u")
            .arg("100")
            .arg("-d")
            .arg(&list)
            .arg("-p")
            .arg(server.sip_port.to_string())
            .args(["-x", "127.0.0.1", "-b", "127.0.0.1", "-P"])
            .arg(free_port().to_string())
            .args(["--maximumtime", "3", "127.0.0.1"]),
        Duration::from_secs(60),
    );
    let said = format!("{out}{err}");
    assert!(!said.contains(PASSWORD), "svcrack found it:\n{said}");
    assert!(said.contains("found nothing"), "{said}");

    // The log line, in its fixed form.
    let line =
        "WARN mss::bans: banned 127.0.0.1 for 900 s after 10 failed digest answers (user 100)";
    assert!(
        wait_for(Duration::from_secs(5), || server
            .stderr()
            .contains(line)
            .then_some(()))
        .is_some(),
        "{}",
        server.stderr()
    );
    // The admin API lists it.
    let (status, body) = server.get("/api/bans");
    assert_eq!(status, 200, "{body}");
    let bans: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(bans.len(), 1, "{body}");
    assert_eq!(bans[0]["address"], "127.0.0.1");
    assert_eq!(bans[0]["scope"], "address");
    assert_eq!(bans[0]["reason"], "auth");
    assert_eq!(bans[0]["user"], "100");
    assert_eq!(bans[0]["failures"], 10);
    let (since, until) = (
        bans[0]["since"].as_u64().unwrap(),
        bans[0]["until"].as_u64().unwrap(),
    );
    assert_eq!(until - since, 900);
    // And the metrics count it, with the packets dropped after it.
    let (_, metrics) = server.get("/metrics");
    assert!(
        metrics.contains("mss_bans_total{scope=\"address\",reason=\"auth\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mss_bans_active{scope=\"address\"} 1\n"),
        "{metrics}"
    );
    let dropped = metrics
        .lines()
        .find_map(|l| l.strip_prefix("mss_bans_dropped_total{reason=\"banned\"} "))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap();
    assert!(dropped > 0, "{metrics}");

    // Banned: nothing from loopback is answered, until the admin lifts the ban.
    let peer = Peer::new();
    peer.send(server.sip(), &options(server.sip(), &peer, "after-ban"));
    assert!(peer.recv_timeout(Duration::from_millis(500)).is_none());
    assert_eq!(server.delete("/api/bans/127.0.0.1").0, 204);
    assert_eq!(server.delete("/api/bans/127.0.0.1").0, 404);
    assert_eq!(server.delete("/api/bans/not-an-address").0, 400);
    peer.send(server.sip(), &options(server.sip(), &peer, "after-lift"));
    let ok = peer.recv_timeout(Duration::from_secs(2)).unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert!(server
        .stderr()
        .contains("ban of 127.0.0.1 lifted by the admin API"));
}
