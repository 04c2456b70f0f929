//! Calls through the real `mss` (DESIGN §8) between real clients: pjsua2 (PyPI
//! `pjsua2-python`, the agent in `tests/agents/`) and baresip 1.0 (Debian), over UDP and
//! TCP; a user with two devices (forking, the loser's INVITE cancelled); out through a line
//! to the Kamailio provider, which challenges the INVITE (407) and relays it to a SIPp
//! "PSTN"; in from the provider to the line's owner; and a SIGKILL during a call, which
//! must leave one record that says `interrupted`. Each test asserts what the caller AND the
//! callee saw, and ends with `GET /api/calls/active` empty.
//!
//! The peers are proven on their own by `calls_selftest.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod calls_common;
mod common;
mod lines_common;
#[path = "providers/support.rs"]
mod providers;

use std::net::SocketAddr;
use std::time::Duration;

use calls_common::{
    assert_no_active_calls, call_no, call_records, ev, mss_log, sipp, sipp_trace, start,
    wait_record, wait_registered, Agent, AgentOptions, Baresip, SippBg,
};
use common::{free_port, Server};
use serde_json::Value;

/// Whether record field `field` names `user` (`100`, or a URI with it).
fn names(r: &Value, field: &str, user: &str) -> bool {
    r[field].as_str().is_some_and(|v| {
        v == user || v.contains(&format!(":{user}@")) || v.starts_with(&format!("{user}@"))
    })
}

/// pjsua2 (100) and baresip (102), both over `transport`:
/// 1. pjsua2 calls 102: baresip rings (pjsua2 sees 180), answers; pjsua2 holds (baresip
///    gets a re-INVITE with a=sendonly) and resumes (a=sendrecv), and hangs up;
/// 2. baresip calls 100: pjsua2 rings and answers, and hangs up (the callee);
/// 3. pjsua2 calls 102 again, baresip answers and hangs up (the callee).
fn pjsua_and_baresip(transport: &str) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = start(d, "");
    let upper = transport.to_ascii_uppercase();
    let mut b = Baresip::start(d, "102", "102", s.sip(), transport, true);
    wait_registered(&s, "102", &upper, &|| b.log());
    let mut a = Agent::registered(d, &s, "100", "100", transport);

    // 1. pjsua2 → baresip, hold, resume, the caller hangs up.
    let mb = b.mark();
    a.cmd("call 102");
    let inc = b.wait_event(&s, mb, "CALL_INCOMING");
    assert!(
        inc["peeruri"].as_str().unwrap_or("").contains("100"),
        "baresip: the caller should be 100: {inc}"
    );
    a.wait(&s, "the callee ringing (180)", ev::response("INVITE", 180));
    b.command("accept", "");
    b.wait_event(&s, mb, "CALL_ESTABLISHED");
    a.wait(&s, "the call confirmed", ev::state(1, "CONFIRMED"));

    let invites_before = b.received_requests(s.sip(), "INVITE").len();
    let ma = a.mark();
    a.cmd("hold");
    a.wait_after(
        &s,
        ma,
        "media LOCAL_HOLD after its hold",
        ev::media("LOCAL_HOLD"),
    );
    let held = calls_common::wait_some(|| {
        b.received_requests(s.sip(), "INVITE")
            .into_iter()
            .skip(invites_before)
            .find(|m| m.contains("a=sendonly"))
    });
    assert!(
        held.is_some(),
        "baresip: expected a re-INVITE with a=sendonly from mss after the caller's hold; its INVITEs: {:#?}\n{}",
        b.received_requests(s.sip(), "INVITE"),
        mss_log(&s)
    );
    let invites_held = b.received_requests(s.sip(), "INVITE").len();
    let ma = a.mark();
    a.cmd("resume");
    a.wait_after(&s, ma, "media ACTIVE after resume", ev::media("ACTIVE"));
    let resumed = calls_common::wait_some(|| {
        b.received_requests(s.sip(), "INVITE")
            .into_iter()
            .skip(invites_held)
            .find(|m| !m.contains("a=sendonly") && !m.contains("a=inactive"))
    });
    assert!(
        resumed.is_some(),
        "baresip: expected a re-INVITE offering sendrecv again after the resume; its INVITEs: {:#?}\n{}",
        b.received_requests(s.sip(), "INVITE"),
        mss_log(&s)
    );
    a.cmd("hangup");
    a.wait(&s, "the call over", ev::state(1, "DISCONNECTED"));
    let closed = b.wait_event(&s, mb, "CALL_CLOSED");
    assert!(
        !b.received_requests(s.sip(), "BYE").is_empty(),
        "baresip: expected a BYE from mss, closed with {closed}\n{}",
        b.log()
    );
    let r = wait_record(&s, "100 → 102, answered, ended by the caller", |r| {
        names(r, "caller", "100") && names(r, "callee", "102")
    });
    assert_eq!(
        (
            r["disposition"].as_str(),
            r["ended_by"].as_str(),
            r["direction"].as_str()
        ),
        (Some("answered"), Some("caller"), Some("internal")),
        "record of call 1: {r}"
    );

    // 2. baresip → pjsua2, the callee (pjsua2) hangs up.
    let (ma, mb) = (a.mark(), b.mark());
    b.command(
        "dial",
        &format!("sip:100@{};transport={transport}", s.sip()),
    );
    let inc = a.wait_after(&s, ma, "baresip's call", ev::incoming());
    let n = call_no(&inc);
    assert!(
        inc["from"].as_str().unwrap_or("").contains("102"),
        "pjsua2: the caller should be 102: {inc}"
    );
    b.wait_event(&s, mb, "CALL_RINGING");
    a.cmd(&format!("answer 200 {n}"));
    b.wait_event(&s, mb, "CALL_ESTABLISHED");
    a.wait_after(&s, ma, "the call confirmed", ev::state(n, "CONFIRMED"));
    a.cmd(&format!("hangup 0 {n}"));
    a.wait_after(&s, ma, "the call over", ev::state(n, "DISCONNECTED"));
    b.wait_event(&s, mb, "CALL_CLOSED");
    let r = wait_record(&s, "102 → 100", |r| {
        names(r, "caller", "102") && names(r, "callee", "100")
    });
    assert_eq!(
        (r["disposition"].as_str(), r["ended_by"].as_str()),
        (Some("answered"), Some("callee")),
        "record of call 2: {r}"
    );

    // 3. pjsua2 → baresip, the callee (baresip) hangs up.
    let (ma, mb) = (a.mark(), b.mark());
    a.cmd("call 102");
    b.wait_event(&s, mb, "CALL_INCOMING");
    let calling = a.wait_after(&s, ma, "the third call placed", |e| e["event"] == "calling");
    let n = call_no(&calling);
    b.command("accept", "");
    a.wait_after(&s, ma, "the call confirmed", ev::state(n, "CONFIRMED"));
    b.command("hangup", "");
    a.wait_after(&s, ma, "BYE from the callee", ev::request("BYE"));
    a.wait_after(&s, ma, "the call over", ev::state(n, "DISCONNECTED"));
    b.wait_event(&s, mb, "CALL_CLOSED");

    assert_no_active_calls(&s);
    a.quit();
}

#[test]
fn pjsua_and_baresip_call_each_other_through_mss_over_udp() {
    pjsua_and_baresip("udp");
}

#[test]
fn pjsua_and_baresip_call_each_other_through_mss_over_tcp() {
    pjsua_and_baresip("tcp");
}

/// 101 has two devices: both ring; the first answers, the second's INVITE is cancelled
/// (it sees CANCEL and ends with 487) and never gets the call.
#[test]
fn both_devices_of_a_user_ring_the_first_answer_wins_the_other_is_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = start(d, "");
    let mut one = Agent::registered(d, &s, "101-one", "101", "udp");
    let two = Agent::registered(d, &s, "101-two", "101", "udp");
    let mut a = Agent::registered(d, &s, "100", "100", "udp");

    a.cmd("call 101");
    one.wait(&s, "the call (device one)", ev::incoming());
    two.wait(&s, "the call (device two)", ev::incoming());
    a.wait(&s, "ringing (180)", ev::response("INVITE", 180));
    let m2 = two.mark();
    one.cmd("answer 200");
    a.wait(&s, "the call confirmed", ev::state(1, "CONFIRMED"));
    one.wait(
        &s,
        "the call confirmed on device one",
        ev::state(1, "CONFIRMED"),
    );
    two.wait(&s, "a CANCEL for device two", ev::request("CANCEL"));
    let over = two.wait(&s, "device two's call over", ev::state(1, "DISCONNECTED"));
    assert_eq!(over["code"], 487, "device two should end with 487: {over}");
    two.assert_not_seen(&s, m2, "CONFIRMED on device two", ev::state(1, "CONFIRMED"));

    a.cmd("hangup");
    one.wait(&s, "BYE on device one", ev::request("BYE"));
    one.wait(&s, "device one's call over", ev::state(1, "DISCONNECTED"));
    let r = wait_record(&s, "100 → 101", |r| {
        names(r, "caller", "100") && names(r, "callee", "101")
    });
    assert_eq!(r["disposition"], "answered", "{r}");
    assert_eq!(
        call_records(&s).len(),
        1,
        "one record per call attempt: {:?}",
        call_records(&s)
    );
    assert_no_active_calls(&s);
}

/// Kamailio (the provider) with calls relayed to a SIPp gateway at `gateway`, and mss with
/// line p1 (2001 / secret, owner 101) registered there; waits until the line is online.
fn line_setup(d: &std::path::Path, gateway: SocketAddr) -> (providers::ProviderGuard, Server) {
    let provider = providers::start_kamailio(&providers::KamailioOptions {
        calls_gateway: Some(gateway),
        ..providers::KamailioOptions::default()
    })
    .unwrap_or_else(|e| panic!("cannot start the Kamailio provider with calls: {e}"));
    let s = start(
        d,
        &format!(
            "[line:p1]\nregistrar = {}\nnumber = {}\npassword = {}\nowner = 101\n",
            provider.addr(),
            lines_common::USER,
            lines_common::PASSWORD
        ),
    );
    let log = || provider.log();
    lines_common::wait_state(&s, "online", Duration::from_secs(10), &log);
    (provider, s)
}

/// 100 dials 9 + 5551234: mss sends the INVITE to the line's provider with From = the
/// line's number, answers the provider's 407 with the line's credentials, and the
/// gateway behind it gets the INVITE for 5551234, rings, answers, gets the ACK and the BYE.
#[test]
fn a_call_out_through_a_line_answers_the_providers_407_with_the_lines_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let gw_port = free_port();
    let mut gateway = SippBg::spawn(d, "gateway", {
        let mut c = sipp(d, "gateway", "calls-pstn-uas.xml", gw_port);
        c.args(["-m", "1"]);
        c
    });
    let (provider, s) = line_setup(d, SocketAddr::from(([127, 0, 0, 1], gw_port)));
    let mut a = Agent::registered(d, &s, "100", "100", "udp");

    a.cmd("call 95551234");
    let ctx = || {
        format!(
            "{}\n--- provider ---\n{}\n{}",
            mss_log(&s),
            provider.log(),
            sipp_trace(d, "gateway")
        )
    };
    a.wait_from(
        0,
        "ringing (180) from the provider's side",
        &ctx,
        ev::response("INVITE", 180),
    );
    a.wait_from(0, "the call confirmed", &ctx, ev::state(1, "CONFIRMED"));
    a.cmd("hangup");
    a.wait_from(0, "the call over", &ctx, ev::state(1, "DISCONNECTED"));
    let (ok, screen) = gateway.finish(Duration::from_secs(10));
    assert!(
        ok,
        "the gateway (SIPp UAS) did not get INVITE, ACK and BYE:\n{screen}\n{}",
        ctx()
    );

    let trace = std::fs::read_to_string(d.join("gateway.msg")).unwrap();
    let invite = trace
        .split("message received")
        .find(|m| m.contains("INVITE sip:"))
        .unwrap_or_else(|| panic!("no INVITE at the gateway:\n{trace}"));
    assert!(
        invite.contains("INVITE sip:5551234@"),
        "the gateway's INVITE should be for 5551234 (9 removed):\n{invite}"
    );
    let from = invite
        .lines()
        .find(|l| l.starts_with("From:"))
        .unwrap_or_default();
    assert!(
        from.contains("sip:2001@"),
        "the INVITE's From should be the line's number 2001: {from}\n{invite}"
    );
    assert!(
        invite.contains("Proxy-Authorization: Digest username=\"2001\""),
        "the INVITE should carry the line's credentials:\n{invite}"
    );
    let plog = provider.log();
    assert!(
        plog.contains("challenged (407)") && plog.contains("authenticated as 2001"),
        "the provider should have challenged the INVITE and accepted mss's answer:\n{plog}"
    );
    let r = wait_record(&s, "100 → 95551234", |r| names(r, "caller", "100"));
    assert_eq!(
        (
            r["direction"].as_str(),
            r["line"].as_str(),
            r["disposition"].as_str()
        ),
        (Some("outbound"), Some("p1"), Some("answered")),
        "{r}"
    );
    assert_no_active_calls(&s);
}

/// The provider's side calls the line's number: mss gets it from the provider (no
/// challenge) and rings the line's owner (101), who answers; the caller hangs up.
#[test]
fn a_call_in_from_the_provider_rings_the_lines_owner() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (provider, s) = line_setup(d, SocketAddr::from(([127, 0, 0, 1], free_port())));
    let mut owner = Agent::registered(d, &s, "101", "101", "udp");

    let mut pstn = SippBg::spawn(d, "pstn", {
        let mut c = sipp(d, "pstn", "calls-pstn-uac.xml", free_port());
        c.arg(provider.addr().to_string())
            .args(["-s", lines_common::USER, "-m", "1"]);
        c
    });
    let ctx = || {
        format!(
            "{}\n--- provider ---\n{}\n{}",
            mss_log(&s),
            provider.log(),
            sipp_trace(d, "pstn")
        )
    };
    let inc = owner.wait_from(0, "the call from the provider", &ctx, ev::incoming());
    let n = call_no(&inc);
    owner.cmd(&format!("answer 200 {n}"));
    owner.wait_from(0, "the call confirmed", &ctx, ev::state(n, "CONFIRMED"));
    owner.wait_from(0, "the caller's BYE", &ctx, ev::request("BYE"));
    owner.wait_from(0, "the call over", &ctx, ev::state(n, "DISCONNECTED"));
    let (ok, screen) = pstn.finish(Duration::from_secs(10));
    assert!(
        ok,
        "the provider-side caller (SIPp UAC) failed:\n{screen}\n{}",
        ctx()
    );
    let r = wait_record(&s, "an inbound call to 101", |r| {
        r["direction"] == "inbound"
    });
    assert_eq!(
        (r["line"].as_str(), r["disposition"].as_str()),
        (Some("p1"), Some("answered")),
        "{r}"
    );
    assert_no_active_calls(&s);
}

/// SIGKILL during an established call, restart on the same data folder: exactly one record
/// for that call, with disposition `interrupted`.
#[test]
fn sigkill_during_a_call_leaves_one_interrupted_record() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut s = start(d, "");
    let b = Agent::start(
        d,
        "101",
        &AgentOptions {
            user: Some("101".into()),
            registrar: Some(s.sip()),
            domain: Some("pbx.test".into()),
            transport: "udp".into(),
            auto_answer: 200,
            ..AgentOptions::default()
        },
    );
    b.wait(&s, "REGISTER 200", |e| {
        e["event"] == "reg" && e["code"] == 200
    });
    let mut a = Agent::registered(d, &s, "100", "100", "udp");
    a.cmd("call 101");
    a.wait(&s, "the call confirmed", ev::state(1, "CONFIRMED"));
    b.wait(&s, "the call confirmed", ev::state(1, "CONFIRMED"));
    // The answer's record start is written at answer (DESIGN §8); give it a moment.
    std::thread::sleep(Duration::from_millis(500));
    s.kill9();
    s.spawn();
    let records = call_records(&s);
    let ours: Vec<&Value> = records
        .iter()
        .filter(|r| names(r, "caller", "100") && names(r, "callee", "101"))
        .collect();
    assert_eq!(
        ours.len(),
        1,
        "expected exactly one record of the call 100 → 101 after the restart: {records:#?}\n{}",
        mss_log(&s)
    );
    assert_eq!(ours[0]["disposition"], "interrupted", "{}", ours[0]);
    assert!(
        !ours[0]["answered_at"].is_null(),
        "the call was answered: {}",
        ours[0]
    );
    a.cmd("hangup");
    a.wait(
        &s,
        "the call over (whatever mss answers now)",
        ev::state(1, "DISCONNECTED"),
    );
    assert_no_active_calls(&s);
}
