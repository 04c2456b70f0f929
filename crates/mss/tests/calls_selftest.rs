//! The call tests' peers proven on their own, without mss: two pjsua2 agents call each
//! other directly (UDP and TCP: ring, answer, hold, resume, hang-up from either side),
//! baresip answers a SIPp caller and calls a pjsua2 agent over its ctrl_tcp interface, the
//! SIPp call scenarios (`tests/sipp/calls-*.xml`) run against each other or against a raw
//! responder, and Kamailio with `WITH_CALLS` challenges and relays a call to its gateway and
//! delivers a call to a registered contact. When one of these fails, the fault is in the
//! harness or the peer, not in mss.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod calls_common;
mod common;
#[path = "providers/support.rs"]
mod providers;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use calls_common::{
    call_no, ev, sipp, sipp_flow, sipp_trace, Agent, AgentOptions, Baresip, SippBg,
};
use common::{free_port, run_bounded, Peer};

fn nothing() -> String {
    String::new()
}

fn direct(dir: &Path, name: &str, transport: &str, auto_answer: u16) -> Agent {
    Agent::start(
        dir,
        name,
        &AgentOptions {
            transport: transport.to_string(),
            auto_answer,
            ..AgentOptions::default()
        },
    )
}

/// A calls B directly: rings, B answers, A holds (B sees sendonly) and resumes (sendrecv),
/// A hangs up; then a second call that B hangs up.
fn agents_call_directly(transport: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut b = direct(dir.path(), &format!("b-{transport}"), transport, 0);
    let mut a = direct(dir.path(), &format!("a-{transport}"), transport, 0);
    let uri = format!("sip:b@127.0.0.1:{};transport={transport}", b.port);
    let ctx = nothing;

    a.cmd(&format!("call {uri}"));
    let inc = b.wait_ctx("an incoming call", &ctx, ev::incoming());
    assert_eq!(inc["sdp_dir"], "sendrecv", "{inc}");
    a.wait_ctx("180 Ringing", &ctx, ev::response("INVITE", 180));
    b.cmd("answer 200");
    a.wait_ctx("the call confirmed", &ctx, ev::state(1, "CONFIRMED"));
    b.wait_ctx("the call confirmed", &ctx, ev::state(1, "CONFIRMED"));

    let m = b.mark();
    a.cmd("hold");
    b.wait_from(m, "a re-INVITE with a=sendonly", &ctx, |e| {
        ev::request("INVITE")(e) && e["sdp_dir"] == "sendonly"
    });
    b.wait_from(m, "media REMOTE_HOLD", &ctx, ev::media("REMOTE_HOLD"));
    a.wait_ctx("media LOCAL_HOLD", &ctx, ev::media("LOCAL_HOLD"));
    let (m, ma) = (b.mark(), a.mark());
    a.cmd("resume");
    b.wait_from(m, "a re-INVITE with a=sendrecv", &ctx, |e| {
        ev::request("INVITE")(e) && e["sdp_dir"] == "sendrecv"
    });
    a.wait_from(ma, "media ACTIVE again", &ctx, ev::media("ACTIVE"));
    a.cmd("hangup");
    b.wait_ctx("BYE", &ctx, ev::request("BYE"));
    b.wait_ctx("the call over", &ctx, ev::state(1, "DISCONNECTED"));
    a.wait_ctx("the call over", &ctx, ev::state(1, "DISCONNECTED"));

    // Second call: the callee hangs up.
    let (ma, mb) = (a.mark(), b.mark());
    a.cmd(&format!("call {uri}"));
    let inc = b.wait_from(mb, "a second incoming call", &ctx, ev::incoming());
    let n = call_no(&inc);
    b.cmd(&format!("answer 200 {n}"));
    a.wait_from(
        ma,
        "the second call confirmed",
        &ctx,
        ev::state(2, "CONFIRMED"),
    );
    b.cmd(&format!("hangup 0 {n}"));
    a.wait_from(ma, "BYE from the callee", &ctx, ev::request("BYE"));
    a.wait_from(
        ma,
        "the second call over",
        &ctx,
        ev::state(2, "DISCONNECTED"),
    );
    a.quit();
    b.quit();
}

#[test]
fn pjsua_agents_call_each_other_directly_over_udp() {
    agents_call_directly("udp");
}

#[test]
fn pjsua_agents_call_each_other_directly_over_tcp() {
    agents_call_directly("tcp");
}

#[test]
fn baresip_answers_a_sipp_caller_and_calls_a_pjsua_agent() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // An account that never registers (regint 0): only its listening port matters here.
    let dead = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut b = Baresip::start(d, "b", "102", dead, "udp", false);

    // SIPp's built-in caller: INVITE, ACK, BYE; baresip answers on `accept`.
    let port = free_port();
    let mut cmd = std::process::Command::new(common::require_tool("sipp"));
    cmd.current_dir(d)
        .args([
            "-sn",
            "uac",
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-m",
            "1",
        ])
        .args(["-s", "102", "-nostdin", "-timeout", "20", "-timeout_error"])
        .args(["-trace_msg", "-message_file"])
        .arg(d.join("builtin-uac.msg"))
        .arg(format!("127.0.0.1:{}", b.sip_port));
    let mut uac = SippBg::spawn(d, "builtin-uac", cmd);
    let m = b.mark();
    b.wait_from(m, "CALL_INCOMING from SIPp", &nothing, |e| {
        e["type"] == "CALL_INCOMING"
    });
    b.command("accept", "");
    b.wait_from(m, "CALL_ESTABLISHED", &nothing, |e| {
        e["type"] == "CALL_ESTABLISHED"
    });
    let (ok, screen) = uac.finish(Duration::from_secs(20));
    assert!(
        ok,
        "SIPp's uac against baresip failed:\n{screen}\n{}",
        sipp_trace(d, "builtin-uac")
    );
    b.wait_from(m, "CALL_CLOSED after SIPp's BYE", &nothing, |e| {
        e["type"] == "CALL_CLOSED"
    });

    // baresip calls a pjsua2 agent, which answers; baresip hangs up.
    let mut a = direct(d, "a", "udp", 0);
    let m = b.mark();
    b.command("dial", &format!("sip:a@127.0.0.1:{}", a.port));
    a.wait_ctx("baresip's INVITE", &nothing, ev::incoming());
    b.wait_from(m, "CALL_RINGING", &nothing, |e| e["type"] == "CALL_RINGING");
    a.cmd("answer 200");
    b.wait_from(m, "CALL_ESTABLISHED", &nothing, |e| {
        e["type"] == "CALL_ESTABLISHED"
    });
    a.wait_ctx("the call confirmed", &nothing, ev::state(1, "CONFIRMED"));
    b.command("hangup", "");
    a.wait_ctx("BYE from baresip", &nothing, ev::request("BYE"));
    a.wait_ctx("the call over", &nothing, ev::state(1, "DISCONNECTED"));
    a.quit();
}

/// Runs the UAS `uas` and the UAC `uac` of a pair against each other, `calls` calls, and
/// returns the UAC's message flow.
fn pair(uas: &str, uac: &str, calls: u32, uas_extra: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let uas_port = free_port();
    let mut callee = SippBg::spawn(d, "uas", {
        let mut c = sipp(d, "uas", uas, uas_port);
        c.args(["-m", &calls.to_string()]).args(uas_extra);
        c
    });
    std::thread::sleep(Duration::from_millis(300));
    let (ok, out, err) = run_bounded(
        sipp(d, "uac", uac, free_port())
            .arg(format!("127.0.0.1:{uas_port}"))
            .args([
                "-s",
                "101",
                "-set",
                "caller",
                "100",
                "-m",
                &calls.to_string(),
                "-l",
                "1",
            ]),
        Duration::from_secs(40),
    );
    let (uas_ok, uas_screen) = callee.finish(Duration::from_secs(10));
    assert!(
        ok,
        "UAC {uac} failed:\n{out}{err}\n{}\n{}",
        sipp_trace(d, "uac"),
        sipp_trace(d, "uas")
    );
    assert!(
        uas_ok,
        "UAS {uas} failed:\n{uas_screen}\n{}\n{}",
        sipp_trace(d, "uas"),
        sipp_trace(d, "uac")
    );
    sipp_flow(d, "uac")
}

#[test]
fn sipp_cancel_race_pair_runs_directly() {
    let flow = pair(
        "calls-cancel-race-uas.xml",
        "calls-cancel-race-uac.xml",
        6,
        &[],
    );
    assert_eq!(
        flow.iter().filter(|l| l.starts_with("sent CANCEL")).count(),
        6,
        "{flow:#?}"
    );
}

#[test]
fn sipp_glare_pair_runs_directly() {
    let flow = pair("calls-glare-uas.xml", "calls-glare-uac.xml", 1, &[]);
    let got_491 = flow
        .iter()
        .filter(|l| *l == "received SIP/2.0 491 Request Pending")
        .count();
    let sent_491 = flow
        .iter()
        .filter(|l| *l == "sent SIP/2.0 491 Request Pending")
        .count();
    assert_eq!((got_491, sent_491), (1, 1), "{flow:#?}");
}

#[test]
fn sipp_early_media_pair_runs_directly() {
    let flow = pair(
        "calls-early-media-uas.xml",
        "calls-early-media-uac.xml",
        1,
        &[],
    );
    let answers: Vec<&String> = flow
        .iter()
        .filter(|l| l.starts_with("received SIP/2.0"))
        .collect();
    assert_eq!(
        answers,
        [
            "received SIP/2.0 183 Session Progress",
            "received SIP/2.0 180 Ringing",
            "received SIP/2.0 200 OK",
            "received SIP/2.0 200 OK"
        ],
        "{flow:#?}"
    );
}

/// A UDP responder that answers the first INVITE with `answer` (a status line and header
/// lines) and reports whether the ACK came.
fn responder(answer: &'static str) -> (SocketAddr, std::thread::JoinHandle<bool>) {
    let peer = Peer::new();
    let addr = peer.addr();
    let handle = std::thread::spawn(move || {
        let mut acked = false;
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while std::time::Instant::now() < deadline && !acked {
            let Some(raw) = peer.recv_raw(Duration::from_millis(200)) else {
                continue;
            };
            let text = String::from_utf8_lossy(&raw).into_owned();
            if text.starts_with("INVITE ") {
                let mut out = format!("{answer}\r\n");
                for line in text.lines() {
                    let l = line.to_ascii_lowercase();
                    if l.starts_with("via:")
                        || l.starts_with("from:")
                        || l.starts_with("call-id:")
                        || l.starts_with("cseq:")
                    {
                        out.push_str(line);
                        out.push_str("\r\n");
                    }
                    if l.starts_with("to:") {
                        out.push_str(&format!("{line};tag=resp\r\n"));
                    }
                }
                out.push_str("Content-Length: 0\r\n\r\n");
                let via = text.lines().find(|l| l.starts_with("Via:")).unwrap();
                let sent_by = via
                    .split_whitespace()
                    .nth(2)
                    .unwrap()
                    .split(';')
                    .next()
                    .unwrap();
                peer.send(sent_by.parse().unwrap(), out.as_bytes());
            } else if text.starts_with("ACK ") {
                acked = true;
            }
        }
        acked
    });
    (addr, handle)
}

fn reject(uac: &str, service: &str, answer: &'static str) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (addr, acked) = responder(answer);
    let (ok, out, err) = run_bounded(
        sipp(d, "uac", uac, free_port())
            .arg(addr.to_string())
            .args([
                "-s", service, "-set", "caller", "100", "-au", "100", "-ap", "x", "-m", "1",
            ]),
        Duration::from_secs(20),
    );
    assert!(
        ok,
        "{uac} against `{answer}` failed:\n{out}{err}\n{}",
        sipp_trace(d, "uac")
    );
    assert!(
        acked.join().unwrap(),
        "{uac} did not ACK `{answer}`:\n{}",
        sipp_trace(d, "uac")
    );
}

#[test]
fn sipp_rejection_scenarios_take_their_answers() {
    reject(
        "calls-require-uac.xml",
        "101",
        "SIP/2.0 420 Bad Extension\r\nUnsupported: foo",
    );
    reject("calls-unknown-uac.xml", "555", "SIP/2.0 404 Not Found");
    reject(
        "calls-noauth-uac.xml",
        "101",
        "SIP/2.0 407 Proxy Authentication Required\r\nProxy-Authenticate: Digest realm=\"pbx.test\", nonce=\"abc\", algorithm=MD5, qop=\"auth\"",
    );
}

/// Kamailio WITH_CALLS: a customer's INVITE is challenged (407), then relayed with its
/// credentials to the gateway (the SIPp "PSTN"), which answers; and an INVITE from the
/// PSTN side to the customer's number reaches the contact the customer registered.
#[test]
fn kamailio_challenges_and_relays_calls_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let gw_port = free_port();
    let mut gateway = SippBg::spawn(d, "gateway", {
        let mut c = sipp(d, "gateway", "calls-pstn-uas.xml", gw_port);
        c.args(["-m", "1"]);
        c
    });
    let provider = providers::start_kamailio(&providers::KamailioOptions {
        calls_gateway: Some(SocketAddr::from(([127, 0, 0, 1], gw_port))),
        ..providers::KamailioOptions::default()
    })
    .unwrap_or_else(|e| panic!("cannot start Kamailio with calls: {e}"));

    // Out: the customer is a pjsua2 agent registered as 2001 (it answers the 407).
    let mut customer = Agent::start(
        d,
        "customer",
        &AgentOptions {
            user: Some("2001".into()),
            password: Some("secret".into()),
            registrar: Some(provider.addr()),
            domain: Some("127.0.0.1".into()),
            transport: "udp".into(),
            ..AgentOptions::default()
        },
    );
    let ctx = || provider.log();
    customer.wait_ctx("REGISTER 200 at Kamailio", &ctx, |e| {
        e["event"] == "reg" && e["code"] == 200
    });
    customer.cmd(&format!("call sip:5551234@{}", provider.addr()));
    customer.wait_ctx("the call confirmed", &ctx, ev::state(1, "CONFIRMED"));
    customer.cmd("hangup");
    customer.wait_ctx("the call over", &ctx, ev::state(1, "DISCONNECTED"));
    let (ok, screen) = gateway.finish(Duration::from_secs(10));
    assert!(
        ok,
        "the gateway's call failed:\n{screen}\n{}\n{}",
        sipp_trace(d, "gateway"),
        provider.log()
    );
    let trace = std::fs::read_to_string(d.join("gateway.msg")).unwrap();
    assert!(trace.contains("INVITE sip:5551234@"), "{trace}");
    assert!(
        trace.contains("Proxy-Authorization: Digest username=\"2001\""),
        "{trace}"
    );
    // pjsua2 answers the 407 inside its INVITE session (no call event): Kamailio's log says it.
    assert!(
        provider.log().contains("challenged (407)"),
        "{}",
        provider.log()
    );
    assert!(
        provider.log().contains("authenticated as 2001"),
        "{}",
        provider.log()
    );

    // In: the PSTN calls 2001; Kamailio sends it to the customer's registered contact.
    let mut pstn = SippBg::spawn(d, "pstn", {
        let mut c = sipp(d, "pstn", "calls-pstn-uac.xml", free_port());
        c.arg(provider.addr().to_string())
            .args(["-s", "2001", "-m", "1"]);
        c
    });
    let inc = customer.wait_ctx("the PSTN call", &ctx, ev::incoming());
    customer.cmd("answer 200");
    let n = call_no(&inc);
    customer.wait_ctx("the PSTN call confirmed", &ctx, ev::state(n, "CONFIRMED"));
    customer.wait_ctx("BYE from the PSTN caller", &ctx, ev::request("BYE"));
    let (ok, screen) = pstn.finish(Duration::from_secs(10));
    assert!(
        ok,
        "the PSTN caller failed:\n{screen}\n{}\n{}",
        sipp_trace(d, "pstn"),
        provider.log()
    );
    customer.quit();
}
