//! The media relay with real phones (DESIGN §8 "Media relay"): two pjsua2 agents (PyPI
//! `pjsua2-python`, null audio device) call each other through the real `mss` with the
//! relay on, each plays its own tone into the call (440 Hz and 1000 Hz) and records what it
//! receives; the same with baresip 1.0 on one side (its `ausine` source at 1000 Hz, its
//! `sndfile` filter recording what it decodes). Each recording must carry the other side's
//! tone for most of the call, so audio that flows one way only (or not at all) fails the
//! test; and mss's `/api/calls/active` must have counted RTP in and out on both legs, so the
//! audio went through the relay and not around it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod audio_common;
mod calls_common;
mod common;

use std::time::Duration;

use audio_common::{assert_hears, TALK};
use calls_common::{
    assert_no_active_calls, ev, start, wait_record, wait_registered, Agent, AgentOptions, Baresip,
};
use common::Server;
use serde_json::Value;

/// The `m=audio` ports of the SDP in every message an agent received (its SIP trace).
fn received_audio_ports(trace: &str) -> Vec<u16> {
    let mut ports = Vec::new();
    let mut rx = false;
    for line in trace.lines() {
        if line.contains(" bytes ") && (line.contains(" RX ") || line.contains(".RX ")) {
            rx = true;
        } else if line.contains(" bytes ") && (line.contains(" TX ") || line.contains(".TX ")) {
            rx = false;
        }
        if let Some(rest) = line.strip_prefix("m=audio ") {
            if rx {
                if let Some(port) = rest.split(' ').next().and_then(|p| p.parse().ok()) {
                    ports.push(port);
                }
            }
        }
    }
    ports
}

/// The legs of the one active call, once every leg counted RTP both ways.
fn legs_with_rtp(s: &Server) -> Option<Vec<Value>> {
    let (code, body) = s.get("/api/calls/active");
    if code != 200 {
        return None;
    }
    let calls: Vec<Value> = serde_json::from_str(&body).ok()?;
    let legs = calls.first()?["legs"].as_array()?.clone();
    let flowing = legs.len() == 2
        && legs.iter().all(|l| {
            l["rtp_in"].as_u64().unwrap_or(0) > 0 && l["rtp_out"].as_u64().unwrap_or(0) > 0
        });
    flowing.then_some(legs)
}

/// Waits until both legs of the one call counted RTP both ways, and no leg is silent.
fn assert_rtp_both_ways(s: &Server) {
    let legs =
        common::wait_for(Duration::from_secs(15), || legs_with_rtp(s)).unwrap_or_else(|| {
            panic!(
                "GET /api/calls/active: expected rtp_in and rtp_out > 0 on both legs: {:?}\n{}",
                s.get("/api/calls/active"),
                calls_common::mss_log(s)
            )
        });
    assert!(
        legs.iter().all(|l| l["no_rtp_from"] == false),
        "no leg is silent: {legs:?}"
    );
    for l in &legs {
        eprintln!(
            "leg {}: rtp_in {} rtp_out {}",
            l["peer"], l["rtp_in"], l["rtp_out"]
        );
    }
}

/// pjsua2 (100, 440 Hz) calls baresip (102, its `ausine` source at 1000 Hz, its `sndfile`
/// filter recording what it decodes) through the relay: each hears the other.
#[test]
fn pjsua_and_baresip_hear_each_other_through_the_relay() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = start(d, "");
    let snd = d.join("baresip-audio");
    std::fs::create_dir_all(&snd).unwrap();
    // ausine makes 48 kHz stereo only; alsa's `null` device plays what is decoded, so
    // that sndfile sees it.
    let audio = format!(
        "module ausine.so\nmodule alsa.so\nmodule sndfile.so\naudio_source ausine,1000\n\
         audio_player alsa,null\nausrc_srate 48000\nausrc_channels 2\nsnd_path {}\n",
        snd.display()
    );
    let mut b = Baresip::start_with_config(d, "b", "102", s.sip(), "udp", true, &audio);
    wait_registered(&s, "102", "UDP", &|| b.log());
    let mut a = Agent::registered_with(
        d,
        &s,
        "a",
        "100",
        "udp",
        AgentOptions {
            tone: 440,
            record: Some(d.join("rec-a")),
            ..AgentOptions::default()
        },
    );
    let mb = b.mark();
    a.cmd("call 102");
    b.wait_event(&s, mb, "CALL_INCOMING");
    b.command("accept", "");
    b.wait_event(&s, mb, "CALL_ESTABLISHED");
    a.wait(&s, "the call confirmed", ev::state(1, "CONFIRMED"));
    assert_rtp_both_ways(&s);
    std::thread::sleep(TALK);
    a.cmd("hangup");
    a.wait(&s, "the call over", ev::state(1, "DISCONNECTED"));
    b.wait_event(&s, mb, "CALL_CLOSED");
    a.quit();
    wait_record(&s, "answered", |r| r["disposition"] == "answered");
    assert_no_active_calls(&s);
    assert_hears(
        &d.join("rec-a-call1.wav"),
        1000.0,
        440.0,
        "pjsua2 hears baresip",
    );
    let decoded = std::fs::read_dir(&snd)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
        .unwrap_or_else(|| {
            panic!(
                "baresip recorded nothing in {}:\n{}",
                snd.display(),
                b.log()
            )
        });
    assert_hears(&decoded, 440.0, 1000.0, "baresip hears pjsua2");
}

/// A third host that sprays RTP (and RTCP) at the relay's ports of a call: sends
/// G.711-sized packets from `from` to every port (and port + 1) in `ports`, every 20 ms
/// for `duration`, and counts what comes back to it (the relay must send it nothing).
/// Returns (packets sent, packets received).
fn spray(from: &str, ports: &[u16], duration: Duration) -> (u64, u64) {
    let socket = std::net::UdpSocket::bind((from, 0)).unwrap();
    socket.set_nonblocking(true).unwrap();
    let mut packet = [0u8; 172];
    packet[0] = 0x80; // RTP version 2, payload type 0 (PCMU)
    packet[8..12].copy_from_slice(&0x5350_5241u32.to_be_bytes()); // its own SSRC
    let (mut sent, mut received) = (0u64, 0u64);
    let mut buf = [0u8; 2048];
    let end = std::time::Instant::now() + duration;
    let mut seq: u16 = 0;
    while std::time::Instant::now() < end {
        seq = seq.wrapping_add(1);
        packet[2..4].copy_from_slice(&seq.to_be_bytes());
        packet[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        for port in ports {
            for p in [*port, port + 1] {
                if socket.send_to(&packet, ("127.0.0.1", p)).is_ok() {
                    sent += 1;
                }
            }
        }
        while socket.recv_from(&mut buf).is_ok() {
            received += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (sent, received)
}

/// The value of the metric line that starts with `name ` in `metrics`.
fn metric(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Caller 100 plays 440 Hz, callee 101 plays 1000 Hz; each hears the other's tone through
/// the relay, for most of the call, and mss counted both directions on both legs. Meanwhile
/// a third host (127.0.0.99) sprays RTP at the relay's ports of the call: it gets nothing
/// back, its packets are dropped and counted (`stranger`), and the phones still hear each
/// other (no "RTP bleed").
#[test]
fn two_phones_hear_each_other_through_the_relay() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = start(d, "");
    let record = |name: &str| AgentOptions {
        record: Some(d.join(name)),
        ..AgentOptions::default()
    };
    let mut a = Agent::registered_with(
        d,
        &s,
        "a",
        "100",
        "udp",
        AgentOptions {
            tone: 440,
            ..record("rec-a")
        },
    );
    let b = Agent::registered_with(
        d,
        &s,
        "b",
        "101",
        "udp",
        AgentOptions {
            tone: 1000,
            auto_answer: 200,
            ..record("rec-b")
        },
    );
    a.cmd("call 101");
    a.wait(&s, "the call confirmed", ev::state(1, "CONFIRMED"));
    b.wait(&s, "the callee's media active", ev::media("ACTIVE"));
    assert_rtp_both_ways(&s);
    // Each phone was told to send to the relay (its ports, 20000-30000), never to the
    // other phone (pjsua2's own ports start at 4000).
    for agent in [&a, &b] {
        let ports = received_audio_ports(&agent.sip_trace());
        assert!(
            !ports.is_empty() && ports.iter().all(|p| (20000..30000).contains(p)),
            "agent {}: the SDP it received names ports {ports:?}, not the relay's",
            agent.name
        );
    }
    let relay_ports: Vec<u16> = [&a, &b]
        .iter()
        .flat_map(|agent| received_audio_ports(&agent.sip_trace()))
        .collect();
    let (sprayed, captured) = spray("127.0.0.99", &relay_ports, TALK);
    eprintln!("sprayed {sprayed} packets at {relay_ports:?}, got {captured} back");
    assert!(sprayed > 100, "the sprayer sent {sprayed}");
    assert_eq!(captured, 0, "the relay sent the sprayer {captured} packets");
    a.cmd("hangup");
    a.wait(&s, "the call over", ev::state(1, "DISCONNECTED"));
    b.wait(&s, "the callee's call over", ev::state(1, "DISCONNECTED"));
    // The recorders write their files when the agents exit.
    a.quit();
    b.quit();
    wait_record(&s, "answered", |r| r["disposition"] == "answered");
    assert_no_active_calls(&s);
    let metrics = s.get("/metrics").1;
    let relayed = metric(&metrics, "mss_rtp_packets_total");
    let strangers = metric(&metrics, "mss_rtp_dropped_total{reason=\"stranger\"}");
    eprintln!("mss_rtp_packets_total {relayed}, dropped from strangers {strangers}");
    assert!(
        strangers >= sprayed / 2,
        "the sprayer's {sprayed} packets dropped as strangers: {strangers}\n{metrics}"
    );
    assert!(relayed > 100, "mss_rtp_packets_total {relayed}\n{metrics}");
    assert!(
        metrics.contains("mss_rtp_ports_in_use 0\n"),
        "every port given back: {metrics}"
    );

    assert_hears(
        &d.join("rec-a-call1.wav"),
        1000.0,
        440.0,
        "the caller hears the callee",
    );
    assert_hears(
        &d.join("rec-b-call1.wav"),
        440.0,
        1000.0,
        "the callee hears the caller",
    );
}
