//! Call transfer through the real `mss` between three pjsua2 agents (DESIGN §8, RFC 3515,
//! RFC 3891; the agent in `tests/agents/`, PyPI `pjsua2-python`):
//!
//! - blind (over UDP, and over TCP): 100 calls 101, 101 transfers 100 to 102 (pjsua2
//!   `Call.xfer`): 101 gets the NOTIFYs (`100`, then `200` final) and BYE, 102 gets an
//!   INVITE without offer and answers, 100 is re-INVITEd and stays connected, now to 102:
//!   the active call shows the two, and through the media relay 102 takes 101's port at
//!   mss and receives 100's tone while 100 keeps its port (each phone has its own loopback
//!   address: the relay latches a leg to its host); 100's stream, which the relay
//!   continues with 102's packets (one SSRC, numbers going on), shows no loss,
//!   reordering or discard across the transfer in pjmedia's counters, and what 100
//!   heard (102 plays 1000 Hz, 101 660 Hz) is shown; 100 hangs up and 102 gets the BYE;
//! - attended: 100 calls 101, 101 holds and calls 102, then transfers 100 to that call
//!   (pjsua2 `Call.xferReplaces`): both of 101's calls end, 100 and 102 are connected;
//! - the transferor hangs up right after the `202`: the transfer completes all the same;
//! - a busy target: 101's last NOTIFY says `486` and the call of 100 and 101 goes on;
//! - a REFER to a number 101's call_level forbids is refused with `403`, and the call goes
//!   on.
//!
//! Each test ends with `GET /api/calls/active` empty.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod audio_common;
mod calls_common;
mod common;

use std::time::Duration;

use audio_common::TALK;
use calls_common::{
    active_calls, assert_no_active_calls, call_no, ev, mss_log, start, start_services, wait_record,
    wait_some, Agent,
};
use serde_json::Value;

/// The loopback address of each phone: one host per phone, as on a real network (the
/// relay latches each leg to its own host; phones on one host would share one).
fn host_of(name: &str) -> &'static str {
    match name {
        "a" => "127.0.0.2",
        "b" => "127.0.0.3",
        _ => "127.0.0.4",
    }
}

/// Agent `name` registered as `user` over `transport`, on its own address ([`host_of`]).
fn phone(
    d: &std::path::Path,
    s: &common::Server,
    name: &str,
    user: &str,
    transport: &str,
) -> Agent {
    phone_with_tone(d, s, name, user, transport, 0)
}

/// As [`phone`], playing a tone of `tone` Hz into every call (0: none): a phone without
/// an audio source sends only a few packets when its stream starts.
fn phone_with_tone(
    d: &std::path::Path,
    s: &common::Server,
    name: &str,
    user: &str,
    transport: &str,
    tone: u16,
) -> Agent {
    let o = calls_common::AgentOptions {
        bind: Some(host_of(name).to_owned()),
        tone,
        ..calls_common::AgentOptions::default()
    };
    Agent::registered_with(d, s, name, user, transport, o)
}

/// `agent`'s SIP address as mss sees it over UDP.
fn at(agent: &Agent) -> String {
    format!("{}:{}", host_of(&agent.name), agent.port)
}

/// The active calls, parsed.
fn active(s: &common::Server) -> Vec<Value> {
    let (status, body) = active_calls(s);
    assert_eq!(status, 200, "GET /api/calls/active: {body}");
    serde_json::from_str(&body).unwrap()
}

/// The peers (`HOST:PORT`) of the legs of the only active call, once they are `peers`.
fn wait_legs(s: &common::Server, peers: &[String]) -> Vec<String> {
    let mut last = Vec::new();
    let found = wait_some(|| {
        last = active(s);
        let [call] = last.as_slice() else {
            return None;
        };
        let seen: Vec<String> = call["legs"]
            .as_array()?
            .iter()
            .filter_map(|l| l["peer"].as_str().map(str::to_owned))
            .collect();
        (seen == peers).then_some(seen)
    });
    found.unwrap_or_else(|| {
        panic!(
            "GET /api/calls/active: expected one call with legs at {peers:?}, got {}\n{}",
            serde_json::to_string_pretty(&last).unwrap(),
            mss_log(s)
        )
    })
}

/// The Call-IDs of the legs of the only active call, once it has two legs, one of them
/// the leg of `present` and none the leg of `absent` (Call-IDs as the phones saw them).
fn wait_leg_call_ids(s: &common::Server, present: &str, absent: &str) -> Vec<String> {
    let mut last = Vec::new();
    let found = wait_some(|| {
        last = active(s);
        let [call] = last.as_slice() else {
            return None;
        };
        let ids: Vec<String> = call["legs"]
            .as_array()?
            .iter()
            .filter_map(|l| l["call_id"].as_str().map(str::to_owned))
            .collect();
        let good =
            ids.len() == 2 && ids.iter().any(|i| i == present) && !ids.iter().any(|i| i == absent);
        good.then_some(ids)
    });
    found.unwrap_or_else(|| {
        panic!(
            "GET /api/calls/active: expected one call with the leg {present} and without {absent}, got {}\n{}",
            serde_json::to_string_pretty(&last).unwrap(),
            mss_log(s)
        )
    })
}

/// The `rtp` report of `agent`'s call `call`, once `ok` holds for it.
fn rtp(s: &common::Server, agent: &mut Agent, call: u64, ok: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    let found = wait_some(|| {
        let mark = agent.mark();
        agent.cmd(&format!("rtp {call}"));
        let e = agent.wait_after(s, mark, "its rtp report", |e| {
            e["event"] == "rtp" || e["event"] == "error"
        });
        std::thread::sleep(Duration::from_millis(200));
        let good = ok(&e);
        last = e.clone();
        good.then_some(e)
    });
    found.unwrap_or_else(|| {
        panic!(
            "agent {}: rtp report not as expected: {last}\n--- its SIP trace (tail) ---\n{}\n{}",
            agent.name,
            calls_common::tail(&agent.sip_trace(), 12000),
            mss_log(s)
        )
    })
}

/// 100 (`a`) calls 101 (`b`), who answers; both see the call confirmed. Returns `b`'s call
/// number.
fn a_calls_b(s: &common::Server, a: &mut Agent, b: &mut Agent) -> u64 {
    a_calls_b_with_id(s, a, b).0
}

/// As [`a_calls_b`], with the Call-ID of `b`'s leg.
fn a_calls_b_with_id(s: &common::Server, a: &mut Agent, b: &mut Agent) -> (u64, String) {
    let mb = b.mark();
    a.cmd("call 101");
    let inc = b.wait_after(s, mb, "100's call", ev::incoming());
    let n = call_no(&inc);
    b.cmd(&format!("answer 200 {n}"));
    a.wait(s, "the call to 101 confirmed", ev::state(1, "CONFIRMED"));
    b.wait_after(
        s,
        mb,
        "the call from 100 confirmed",
        ev::state(n, "CONFIRMED"),
    );
    (n, inc["call_id"].as_str().unwrap_or_default().to_owned())
}

#[test]
fn pjsua2_blind_transfers_a_call_to_a_third_phone() {
    blind_transfer("udp");
}

#[test]
fn pjsua2_blind_transfers_a_call_to_a_third_phone_over_tcp() {
    blind_transfer("tcp");
}

/// The blind transfer of the module docs, every phone over `transport`.
fn blind_transfer(transport: &str) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = start(d, "");
    let o = |name: &str, tone: u16| calls_common::AgentOptions {
        bind: Some(host_of(name).to_owned()),
        tone,
        ..calls_common::AgentOptions::default()
    };
    let mut a = Agent::registered_with(
        d,
        &s,
        "a",
        "100",
        transport,
        calls_common::AgentOptions {
            record: Some(d.join("rec-a")),
            ..o("a", 440)
        },
    );
    let mut b = Agent::registered_with(d, &s, "b", "101", transport, o("b", 660));
    let mut c = Agent::registered_with(d, &s, "c", "102", transport, o("c", 1000));
    let (nb, b_call_id) = a_calls_b_with_id(&s, &mut a, &mut b);
    // Where each phone sends its audio before the transfer: the relay's ports at mss.
    let b_before = rtp(&s, &mut b, nb, |e| e["event"] == "rtp");
    let a_before = rtp(&s, &mut a, 1, |e| e["event"] == "rtp");

    let (ma, mb, mc) = (a.mark(), b.mark(), c.mark());
    b.cmd(&format!("xfer 102 {nb}"));
    b.wait_after(&s, mb, "NOTIFY 100 Trying", |e| {
        e["event"] == "xfer_status" && e["code"] == 100
    });
    let inc = c.wait_after(&s, mc, "the transferred call", ev::incoming());
    assert!(
        inc["from"].as_str().unwrap_or("").contains("100"),
        "the target should see the transferee (100) calling: {inc}"
    );
    assert!(
        inc["sdp_dir"].is_null(),
        "the INVITE to the target carries no offer (its 2xx makes one): {inc}"
    );
    let nc = call_no(&inc);
    c.cmd(&format!("answer 200 {nc}"));
    c.wait_after(
        &s,
        mc,
        "the transferred call confirmed",
        ev::state(nc, "CONFIRMED"),
    );
    a.wait_after(&s, ma, "the re-INVITE to the target's media", |e| {
        e["event"] == "rx_request" && e["method"] == "INVITE" && e["sdp_dir"] == "sendrecv"
    });
    let done = b.wait_after(&s, mb, "the final NOTIFY", |e| {
        e["event"] == "xfer_status" && e["final"] == true
    });
    assert_eq!(done["code"], 200, "the transfer succeeded: {done}");
    b.wait_after(
        &s,
        mb,
        "its call ended by mss",
        ev::state(nb, "DISCONNECTED"),
    );
    a.assert_not_seen(
        &s,
        ma,
        "the end of the transferee's call",
        ev::any_state("DISCONNECTED"),
    );
    // Over TCP a leg's peer is the connection's port: the legs are told by their Call-IDs.
    let c_call_id = inc["call_id"].as_str().unwrap_or_default().to_owned();
    wait_leg_call_ids(&s, &c_call_id, &b_call_id);

    // The audio, through the relay: 102 took 101's port at mss and hears 100's tone; 100
    // keeps its port.
    let transferors_port = b_before["remote"].as_str().unwrap().to_owned();
    let to_c = rtp(&s, &mut c, nc, |e| {
        e["remote"] == transferors_port.as_str() && e["rx_pkt"].as_u64().is_some_and(|n| n > 0)
    });
    let from_a = rtp(&s, &mut a, 1, |e| e["event"] == "rtp");
    assert_eq!(
        from_a["remote"], a_before["remote"],
        "100 keeps sending to its port at mss: {from_a} (102's view: {to_c})"
    );
    // 100 gets 102's audio as the stream 101 started: one SSRC, sequence numbers going
    // on. pjmedia counts no loss, reordering or discard in it (without the relay's
    // continuity it counted the new SSRC's numbering as 1,755 lost and reordered
    // packets, or a discard: docs/perf-log.md, media round 2), and it keeps receiving.
    std::thread::sleep(TALK);
    let a_after = rtp(&s, &mut a, 1, |e| e["event"] == "rtp");
    eprintln!("100's stream before the transfer: {a_before}\n100's stream after: {a_after}");
    let count = |e: &Value, k: &str| e[k].as_u64().unwrap_or(u64::MAX);
    assert_eq!(
        ["rx_loss", "rx_reorder", "rx_discard"].map(|k| count(&a_after, k)),
        [0, 0, 0],
        "100's stream across the transfer: {a_after}"
    );
    assert!(
        count(&a_after, "rx_pkt") >= count(&a_before, "rx_pkt") + 100,
        "100 kept receiving after the transfer: {a_before} then {a_after}"
    );

    let (ma, mc) = (a.mark(), c.mark());
    a.cmd("hangup 0 1");
    a.wait_after(&s, ma, "the call over", ev::state(1, "DISCONNECTED"));
    c.wait_after(&s, mc, "the BYE from mss", ev::request("BYE"));
    c.wait_after(&s, mc, "the call over", ev::state(nc, "DISCONNECTED"));
    let r = wait_record(&s, "100 → 101, answered", |r| {
        r["caller"] == "100" && r["callee"] == "101"
    });
    assert_eq!(
        (r["disposition"].as_str(), r["transferred_by"].as_str()),
        (Some("answered"), Some("101")),
        "{r}"
    );
    assert_no_active_calls(&s);
    // The recorder writes its file when the agent exits.
    for agent in [a, b, c] {
        agent.quit();
    }
    // What 100 heard, per 100 ms. Shown, not asserted: in about one run of two (over UDP
    // or TCP, with the continuity and without, while the RTP counters above are clean)
    // the recording has gaps and even the transferor's tone after the transfer, not
    // understood yet (docs/perf-log.md, media round 2).
    let r = audio_common::read_wav(&d.join("rec-a-call1.wav"));
    let (heard, blocks) = audio_common::tone_blocks(&r, 1000.0, 660.0);
    eprintln!(
        "over {transport}, the transferee heard 102 in {heard} of {blocks} blocks (W 1000 Hz, o 660 Hz): {}",
        audio_common::timeline(&r, 1000.0, 660.0)
    );
}

#[test]
fn pjsua2_attended_transfer_joins_the_consulted_phone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = start(d, "");
    let mut a = phone(d, &s, "a", "100", "udp");
    let mut b = phone(d, &s, "b", "101", "udp");
    let mut c = phone(d, &s, "c", "102", "udp");
    let nb = a_calls_b(&s, &mut a, &mut b);
    let ma = a.mark();
    b.cmd(&format!("hold {nb}"));
    a.wait_after(&s, ma, "held", ev::media("REMOTE_HOLD"));

    // 101 consults 102.
    let (mb, mc) = (b.mark(), c.mark());
    b.cmd("call 102");
    let calling = b.wait_after(&s, mb, "its second call", |e| e["event"] == "calling");
    let consult = call_no(&calling);
    let inc = c.wait_after(&s, mc, "101's call", ev::incoming());
    let nc = call_no(&inc);
    c.cmd(&format!("answer 200 {nc}"));
    b.wait_after(
        &s,
        mb,
        "the consultation confirmed",
        ev::state(consult, "CONFIRMED"),
    );
    c.wait_after(
        &s,
        mc,
        "the consultation confirmed",
        ev::state(nc, "CONFIRMED"),
    );

    let (ma, mb, mc) = (a.mark(), b.mark(), c.mark());
    b.cmd(&format!("xfer_replaces {consult} {nb}"));
    let done = b.wait_after(&s, mb, "the final NOTIFY", |e| {
        e["event"] == "xfer_status" && e["final"] == true
    });
    assert_eq!(done["code"], 200, "the attended transfer succeeded: {done}");
    b.wait_after(
        &s,
        mb,
        "its first call ended",
        ev::state(nb, "DISCONNECTED"),
    );
    b.wait_after(
        &s,
        mb,
        "the consultation ended",
        ev::state(consult, "DISCONNECTED"),
    );
    a.wait_after(&s, ma, "active media with 102", ev::media("ACTIVE"));
    a.assert_not_seen(
        &s,
        ma,
        "the end of the transferee's call",
        ev::any_state("DISCONNECTED"),
    );
    c.assert_not_seen(
        &s,
        mc,
        "the end of 102's call",
        ev::any_state("DISCONNECTED"),
    );
    wait_legs(&s, &[at(&a), at(&c)]);

    let (ma, mc) = (a.mark(), c.mark());
    c.cmd(&format!("hangup 0 {nc}"));
    c.wait_after(&s, mc, "the call over", ev::state(nc, "DISCONNECTED"));
    a.wait_after(&s, ma, "the call over", ev::state(1, "DISCONNECTED"));
    assert_no_active_calls(&s);
    for agent in [a, b, c] {
        agent.quit();
    }
}

#[test]
fn pjsua2_transferor_hangs_up_after_the_202_and_the_transfer_completes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = start(d, "");
    let mut a = phone(d, &s, "a", "100", "udp");
    let mut b = phone(d, &s, "b", "101", "udp");
    let mut c = phone(d, &s, "c", "102", "udp");
    let nb = a_calls_b(&s, &mut a, &mut b);
    let (ma, mb, mc) = (a.mark(), b.mark(), c.mark());
    b.cmd(&format!("xfer 102 {nb}"));
    b.wait_after(&s, mb, "the REFER accepted", ev::response("REFER", 202));
    b.cmd(&format!("hangup 0 {nb}"));
    b.wait_after(&s, mb, "its call over", ev::state(nb, "DISCONNECTED"));
    let inc = c.wait_after(&s, mc, "the transferred call", ev::incoming());
    let nc = call_no(&inc);
    c.cmd(&format!("answer 200 {nc}"));
    c.wait_after(&s, mc, "the call confirmed", ev::state(nc, "CONFIRMED"));
    a.wait_after(&s, ma, "the re-INVITE to 102's media", |e| {
        e["event"] == "rx_request" && e["method"] == "INVITE"
    });
    a.assert_not_seen(
        &s,
        ma,
        "the end of the transferee's call",
        ev::any_state("DISCONNECTED"),
    );
    wait_legs(&s, &[at(&a), at(&c)]);
    let (ma, mc) = (a.mark(), c.mark());
    c.cmd(&format!("hangup 0 {nc}"));
    c.wait_after(&s, mc, "the call over", ev::state(nc, "DISCONNECTED"));
    a.wait_after(&s, ma, "the call over", ev::state(1, "DISCONNECTED"));
    assert_no_active_calls(&s);
    for agent in [a, b, c] {
        agent.quit();
    }
}

#[test]
fn pjsua2_transfer_to_a_busy_phone_keeps_the_call() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = start(d, "");
    let mut a = phone(d, &s, "a", "100", "udp");
    let mut b = phone(d, &s, "b", "101", "udp");
    let mut c = phone(d, &s, "c", "102", "udp");
    let nb = a_calls_b(&s, &mut a, &mut b);
    let (ma, mb, mc) = (a.mark(), b.mark(), c.mark());
    b.cmd(&format!("xfer 102 {nb}"));
    let inc = c.wait_after(&s, mc, "the transferred call", ev::incoming());
    c.cmd(&format!("reject 486 {}", call_no(&inc)));
    let done = b.wait_after(&s, mb, "the final NOTIFY", |e| {
        e["event"] == "xfer_status" && e["final"] == true
    });
    assert_eq!(done["code"], 486, "the NOTIFY says why: {done}");
    std::thread::sleep(Duration::from_millis(500));
    a.assert_not_seen(&s, ma, "the end of the call", ev::any_state("DISCONNECTED"));
    b.assert_not_seen(&s, mb, "the end of the call", ev::any_state("DISCONNECTED"));
    wait_legs(&s, &[at(&a), at(&b)]);
    let ma = a.mark();
    b.cmd(&format!("hangup 0 {nb}"));
    a.wait_after(&s, ma, "the call over", ev::state(1, "DISCONNECTED"));
    assert_no_active_calls(&s);
    for agent in [a, b, c] {
        agent.quit();
    }
}

#[test]
fn pjsua2_transfer_to_a_forbidden_number_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = start_services(d, "", &[("101", "call_level = internal\n")], "");
    let mut a = phone(d, &s, "a", "100", "udp");
    let mut b = phone(d, &s, "b", "101", "udp");
    let nb = a_calls_b(&s, &mut a, &mut b);
    let mb = b.mark();
    b.cmd(&format!("xfer 900441234567 {nb}"));
    let refused = b.wait_after(&s, mb, "the REFER answered", ev::response("REFER", 403));
    assert!(
        refused["warning"]
            .as_str()
            .is_some_and(|w| w.contains("call_level")),
        "403 with a Warning in words: {refused}"
    );
    // The call goes on.
    std::thread::sleep(Duration::from_millis(500));
    a.assert_not_seen(&s, 0, "the end of the call", ev::any_state("DISCONNECTED"));
    let ma = a.mark();
    a.cmd("hangup 0 1");
    a.wait_after(&s, ma, "the call over", ev::state(1, "DISCONNECTED"));
    b.wait_after(&s, mb, "the call over", ev::state(nb, "DISCONNECTED"));
    assert_no_active_calls(&s);
    for agent in [a, b] {
        agent.quit();
    }
}
