//! Instant messages between real SIP tools and the real `mss` on loopback: SIPp and sipsak
//! send MESSAGEs (answering the `407` with MD5 digest) to a user online as a SIPp UAS,
//! who gets them and answers `200`, and to an offline user, for whom they are stored
//! (`202`) and listed by `GET /api/messages`.
//!
//! Scenarios: `tests/sipp/im-send-200.xml`, `im-send-202.xml` (sender), `im-receive.xml`
//! (recipient) and `register_auth.xml` (the recipient's REGISTER from the same port). The
//! whole `[authentication …]` keyword is a CSV field (bench/README.md, pitfalls). sipsak is driven with a
//! request file (`-f`): its `-M` mode crashes (DESIGN §7).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod im_common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, require_tool, run_bounded, wait_for, Server};
use im_common::{messages, password, sipp_dir, start, stored};

/// An injection file with one user and its `[authentication …]` keyword.
fn csv(dir: &Path, user: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{user}.csv"));
    std::fs::write(
        &path,
        format!(
            "SEQUENTIAL\n{user};[authentication username={user} password={}]\n",
            password(user)
        ),
    )
    .unwrap();
    path
}

/// SIPp against `s` with `scenario`, from local port `port`, with the common options.
fn sipp(s: &Server, scenario: &str, port: u16) -> Command {
    let mut c = Command::new(require_tool("sipp"));
    c.arg(s.sip().to_string())
        .arg("-sf")
        .arg(sipp_dir().join(scenario))
        .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-t", "u1"])
        .args(["-nostdin", "-timeout", "20", "-timeout_error"]);
    c
}

/// Registers `user` with SIPp from local port `port` (where its UAS will listen).
fn register(s: &Server, dir: &Path, user: &str, port: u16) {
    let (ok, out, err) = run_bounded(
        sipp(s, "register_auth.xml", port)
            .current_dir(dir)
            .arg("-inf")
            .arg(csv(dir, user))
            .args(["-m", "1"]),
        Duration::from_secs(20),
    );
    assert!(ok, "SIPp REGISTER failed:\n{out}\n{err}\n{}", s.stderr());
}

/// Sends one MESSAGE from `from` to `to` with SIPp, expecting `code` (200 or 202).
fn sipp_send(s: &Server, dir: &Path, from: &str, to: &str, code: u16) {
    let (ok, out, err) = run_bounded(
        sipp(s, &format!("im-send-{code}.xml"), free_port())
            .current_dir(dir)
            .arg("-inf")
            .arg(csv(dir, from))
            .args(["-s", to, "-m", "1", "-trace_err"]),
        Duration::from_secs(25),
    );
    assert!(
        ok,
        "SIPp MESSAGE {from} → {to} did not get {code}:\n{out}\n{err}\n{}",
        s.stderr()
    );
}

/// Sends one MESSAGE from user 100 to `to` with sipsak (request file, `-a` answers the
/// `407`) and returns sipsak's verbose output.
fn sipsak_send(s: &Server, dir: &Path, to: &str, body: &str) -> String {
    let file = dir.join(format!("sipsak-{to}.txt"));
    std::fs::write(
        &file,
        format!(
            "MESSAGE sip:{to}@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-sipsak-{to};rport\r\nMax-Forwards: 70\r\nFrom: <sip:100@pbx.test>;tag=sipsak\r\nTo: <sip:{to}@pbx.test>\r\nCall-ID: sipsak-{to}@127.0.0.1\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
    .unwrap();
    // sipsak loses the last digit of a five-digit port in URIs it builds (DESIGN §7); the
    // request file keeps its own URIs and -s only says where to send.
    let (ok, out, err) = run_bounded(
        Command::new(require_tool("sipsak"))
            .arg("-vv")
            .arg("-f")
            .arg(&file)
            .arg("-s")
            .arg(format!("sip:{to}@127.0.0.1:{}", s.sip_port))
            .args(["-u", "100", "-a", password("100")]),
        Duration::from_secs(20),
    );
    assert!(ok, "sipsak failed:\n{out}\n{err}\n{}", s.stderr());
    out
}

/// The recipient's SIPp UAS: receives `calls` MESSAGEs on `port`, logs them to `log`.
fn uas(s: &Server, dir: &Path, port: u16, calls: u32, log: &Path) -> Child {
    sipp(s, "im-receive.xml", port)
        .current_dir(dir)
        .args(["-m", &calls.to_string(), "-trace_msg", "-message_file"])
        .arg(log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits (at most 25 s) for `child` and tells whether it exited with status 0.
fn wait_ok(child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(25);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.success();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sipp_and_sipsak_reach_an_online_user_and_store_for_an_offline_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = start(d, "");

    // Online: 101 registers from `port`, then a UAS on that port takes two MESSAGEs.
    let port = free_port();
    register(&s, d, "101", port);
    let log = d.join("uas-messages.log");
    let mut recipient = uas(&s, d, port, 2, &log);
    // Until the UAS binds, mss's retransmissions (Timer E) cover a lost first copy.
    std::thread::sleep(Duration::from_millis(300));
    sipp_send(&s, d, "100", "101", 200);
    let out = sipsak_send(&s, d, "101", "from sipsak, live");
    assert!(
        out.contains("SIP/2.0 200"),
        "sipsak did not get 200:\n{out}"
    );
    let ok = wait_ok(&mut recipient);
    let trace = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(ok, "the SIPp UAS failed:\n{trace}\n{}", s.stderr());
    assert!(trace.contains("hello from SIPp 1"), "{trace}");
    assert!(trace.contains("from sipsak, live"), "{trace}");
    assert_eq!(stored(&s, "101"), 0);

    // Offline: 102 never registered; both senders get 202 and the store lists both.
    sipp_send(&s, d, "100", "102", 202);
    let out = sipsak_send(&s, d, "102", "from sipsak, stored");
    assert!(
        out.contains("SIP/2.0 202"),
        "sipsak did not get 202:\n{out}"
    );
    let listed = wait_for(Duration::from_secs(5), || {
        let m = messages(&s, "102");
        (m.len() == 2).then_some(m)
    })
    .unwrap_or_else(|| panic!("{:?}", messages(&s, "102")));
    assert!(listed[0]["body"]
        .as_str()
        .unwrap()
        .starts_with("hello from SIPp"));
    assert_eq!(listed[1]["body"], "from sipsak, stored");
    assert_eq!(listed[1]["from"], "<sip:100@pbx.test>;tag=sipsak");
    assert_eq!(stored(&s, "102"), 2);
}
