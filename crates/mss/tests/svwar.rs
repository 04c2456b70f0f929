//! Debian's sipvicious `svwar` tries to enumerate extensions of the real `mss` binary on
//! loopback with REGISTER, OPTIONS and INVITE: every extension, existing or not, gets the
//! same answer (a challenge with the same headers, or the same `200` to OPTIONS), so svwar
//! finds none. Users 100–102 exist, and line `p`'s number 110 (owned by 100); svwar tries
//! 90–120. A line's number is no way in either: only the line's provider (the address the
//! line registers at) may call it without a challenge.
//!
//! Loopback is on the default ban `ignore` list, so svwar's many unanswered challenges do
//! not ban it here (bans are tested in `bans_svcrack.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{free_port, require_tool, run_bounded, Server};

/// What svwar prints when it found extensions: a table with an `Extension` column.
fn found_something(said: &str) -> bool {
    said.contains("| Extension")
        || said
            .lines()
            .any(|l| l.contains("| reqauth") || l.contains("| noauth"))
}

#[test]
fn svwar_finds_no_extension_with_register_options_or_invite() {
    let svwar = require_tool("svwar");
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        "[line:p]\nregistrar = 127.0.0.9\nnumber = 110\npassword = x\nowner = 100\n[user:100]\npassword = pw-100\n[user:101]\npassword = pw-101\n[user:102]\npassword = pw-102\n",
    );
    for method in ["REGISTER", "OPTIONS", "INVITE"] {
        let (_, out, err) = run_bounded(
            Command::new(&svwar)
                .args(["-e", "90-120", "-m", method])
                .arg("-p")
                .arg(server.sip_port.to_string())
                .args(["-x", "127.0.0.1", "-b", "127.0.0.1", "-P"])
                .arg(free_port().to_string())
                .args(["--maximumtime", "3", "127.0.0.1"]),
            Duration::from_secs(60),
        );
        let said = format!("{out}{err}");
        assert!(
            !found_something(&said),
            "{method}: svwar found extensions:\n{said}"
        );
        assert!(
            said.contains("found nothing") || said.contains("Found nothing"),
            "{method}: {said}"
        );
    }
    // Nothing of the scan stays: no call, no registration.
    let (status, body) = server.get("/api/calls/active");
    assert_eq!((status, body.as_str()), (200, "[]"));
    let (_, regs) = server.get("/api/registrations");
    assert_eq!(regs, "[]");
}
