//! Calls with the media relay (DESIGN §8 "Media relay") through the whole core in simulated
//! time. The relay is the real sans-IO port table of `mss-media`, answering the core's
//! commands at once (or late, when a scenario holds its allocations): every SDP that
//! crosses mss points at mss and the leg's own port, every leg's remote is what its SDP
//! and signalling say, every end of a call gives the ports back, no ports is `503`, no
//! RTP is BYE on both legs, a silent leg is named.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sim;

use std::net::SocketAddr;
use std::time::Duration;

use mss_media::{Decision, DropReason, Leg, PortRange, RelayConfig, SessionId};
use mss_sip::{HeaderName, Method, Request, Response};
use sim::calls::*;
use sim::{reply, Setup, Sim};

/// mss's address in the simulations (what the relay writes into SDP).
const MSS_IP: &str = "127.0.0.1";

fn relay_setup() -> Setup {
    let mut setup = Setup::default();
    setup.calls.media = Some(mss_core::MediaSettings::new());
    setup
}

/// The `c=` address and the port of the first `m=` line of `body`.
fn sdp_address(body: &[u8]) -> (String, u16) {
    let text = std::str::from_utf8(body).unwrap();
    let c = text
        .lines()
        .find(|l| l.starts_with("c=IN IP4 "))
        .unwrap_or_else(|| panic!("no c= in {text}"))
        .trim_start_matches("c=IN IP4 ")
        .to_owned();
    let port = text
        .lines()
        .find(|l| l.starts_with("m="))
        .and_then(|l| l.split(' ').nth(1))
        .unwrap()
        .parse()
        .unwrap();
    (c, port)
}

/// The one session of the relay.
fn only_session(sim: &Sim) -> SessionId {
    let s = sim.relay_sessions();
    assert_eq!(s.len(), 1, "{s:?}");
    s[0]
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Caller 100 at 127.0.0.10 calls 101 at 127.0.0.11 through the relay; the device
/// answers. Checks the rewrite both ways and the remotes; returns the caller, the device,
/// mss's INVITE to it and the session.
fn relayed_call(sim: &mut Sim) -> (Caller, SocketAddr, Request, SessionId) {
    let dev = registered(sim, "101", "pw-101", "127.0.0.11:5062");
    let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
    assert_eq!(alice.call(sim, "101", "", SDP_A), 407);
    let inv = invite_to(sim, dev);
    let session = only_session(sim);
    let a_ports = sim.relay_leg(session, Leg::A).ports;
    let b_ports = sim.relay_leg(session, Leg::B).ports;
    assert_ne!(a_ports, b_ports);
    // The offer towards the device: mss's address and B's port, every other line as it was.
    let expected = SDP_A
        .replace("c=IN IP4 127.0.0.10", &format!("c=IN IP4 {MSS_IP}"))
        .replace("m=audio 4000", &format!("m=audio {}", b_ports.rtp));
    assert_eq!(std::str::from_utf8(inv.body()).unwrap(), expected);
    // The caller's remote: its signalling host and its SDP address.
    let a = sim.relay_leg(session, Leg::A).remote;
    assert_eq!(a.signalling, Some(alice.addr.ip()));
    assert_eq!(a.rtp, Some(addr("127.0.0.10:4000")));
    sim.receive(dev, &device_answer(&inv, dev, 200, "OK", "dev1", SDP_B));
    let ok = alice.response(sim, 200).unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let expected = SDP_B
        .replace("c=IN IP4 127.0.0.11", &format!("c=IN IP4 {MSS_IP}"))
        .replace("m=audio 5000", &format!("m=audio {}", a_ports.rtp));
    assert_eq!(std::str::from_utf8(ok.body()).unwrap(), expected);
    let b = sim.relay_leg(session, Leg::B).remote;
    assert_eq!(b.signalling, Some(dev.ip()));
    assert_eq!(b.rtp, Some(addr("127.0.0.11:5000")));
    alice.learn(&ok);
    alice.ack(sim);
    assert!(request_to(sim, dev, Method::Ack).is_some());
    (alice, dev, inv, session)
}

/// The caller hangs up and the device answers the BYE.
fn caller_hangs_up(sim: &mut Sim, alice: &mut Caller, dev: SocketAddr) {
    alice.send(sim, "BYE", "");
    let bye = request_to(sim, dev, Method::Bye).expect("BYE to the device");
    sim.receive(dev, &reply(&bye, 200, "OK", ""));
}

#[test]
fn rtp_flows_both_ways_through_the_ports_written_into_each_leg() {
    let mut sim = Sim::start(relay_setup());
    let (mut alice, dev, _inv, session) = relayed_call(&mut sim);
    let a_port = sim.relay_leg(session, Leg::A).ports.rtp;
    let b_port = sim.relay_leg(session, Leg::B).ports.rtp;
    // The caller sends to its port; the packet goes to the device's SDP address, from B's.
    assert_eq!(
        sim.rtp(a_port, addr("127.0.0.10:4000")),
        Decision::Forward {
            from: b_port,
            to: addr("127.0.0.11:5000")
        }
    );
    assert_eq!(
        sim.rtp(b_port, addr("127.0.0.11:5000")),
        Decision::Forward {
            from: a_port,
            to: addr("127.0.0.10:4000")
        }
    );
    // Anyone else is a stranger.
    assert_eq!(
        sim.rtp(a_port, addr("192.0.2.66:4000")),
        Decision::Drop(DropReason::Stranger)
    );
    // The view shows the counters once they were asked for.
    sim.advance(Duration::from_secs(3));
    let active = sim.core.active_calls();
    let legs = &active[0].legs;
    assert_eq!((legs[0].rtp_in, legs[0].rtp_out), (1, 1), "{legs:?}");
    assert_eq!((legs[1].rtp_in, legs[1].rtp_out), (1, 1), "{legs:?}");
    caller_hangs_up(&mut sim, &mut alice, dev);
    assert_clean(&mut sim);
}

#[test]
fn hold_and_resume_set_the_hold_and_latch_again() {
    let mut sim = Sim::start(relay_setup());
    let (mut alice, dev, _inv, session) = relayed_call(&mut sim);
    let a_port = sim.relay_leg(session, Leg::A).ports.rtp;
    let b_port = sim.relay_leg(session, Leg::B).ports.rtp;
    // Latched to the caller's address.
    sim.rtp(a_port, addr("127.0.0.10:4000"));
    assert!(sim.relay_leg(session, Leg::A).rtp_source.is_some());
    alice.send(&mut sim, "INVITE", SDP_HOLD);
    let reinvite = request_to(&mut sim, dev, Method::Invite).expect("re-INVITE");
    let (c, port) = sdp_address(reinvite.body());
    assert_eq!((c.as_str(), port), (MSS_IP, b_port));
    assert!(std::str::from_utf8(reinvite.body())
        .unwrap()
        .contains("a=sendonly\r\n"));
    assert!(sim.relay_leg(session, Leg::A).on_hold, "the caller holds");
    assert_eq!(
        sim.relay_leg(session, Leg::A).rtp_source,
        None,
        "latching starts again after a re-INVITE"
    );
    let answer_sdp = SDP_B.replace(
        "m=audio 5000 RTP/AVP 0\r\n",
        "m=audio 5000 RTP/AVP 0\r\na=recvonly\r\n",
    );
    sim.receive(
        dev,
        &device_answer(&reinvite, dev, 200, "OK", "dev1", &answer_sdp),
    );
    let ok = alice.response(&mut sim, 200).unwrap();
    assert_eq!(sdp_address(ok.body()), (MSS_IP.to_owned(), a_port));
    alice.ack(&mut sim);
    assert!(request_to(&mut sim, dev, Method::Ack).is_some());
    // On hold, no RTP for longer than rtp_timeout does not end the call.
    sim.advance(Duration::from_secs(90));
    assert_eq!(sim.core.call_count(), 1);
    assert!(request_to(&mut sim, dev, Method::Bye).is_none());
    // Resume.
    alice.send(&mut sim, "INVITE", SDP_A);
    let reinvite = request_to(&mut sim, dev, Method::Invite).expect("re-INVITE");
    sim.receive(
        dev,
        &device_answer(&reinvite, dev, 200, "OK", "dev1", SDP_B),
    );
    alice.response(&mut sim, 200).unwrap();
    alice.ack(&mut sim);
    assert!(!sim.relay_leg(session, Leg::A).on_hold);
    assert!(!sim.relay_leg(session, Leg::B).on_hold);
    caller_hangs_up(&mut sim, &mut alice, dev);
    assert_clean(&mut sim);
}

#[test]
fn no_rtp_ends_the_call_with_bye_on_both_legs() {
    let mut sim = Sim::start(relay_setup());
    let (alice, dev, _inv, _session) = relayed_call(&mut sim);
    // Nobody sends RTP: after 5 s both legs are named, after rtp_timeout (60 s) BYE.
    sim.advance(Duration::from_secs(6));
    let legs = sim.core.active_calls()[0].legs.clone();
    assert!(legs.iter().all(|l| l.no_rtp_from), "{legs:?}");
    let metrics = sim.metrics.render();
    assert!(
        metrics.contains("mss_calls_one_way_total{leg=\"caller\"} 1\n"),
        "{metrics}"
    );
    let b1 = sim
        .wait_for(Duration::from_secs(70), |s| {
            s.request()
                .filter(|r| *r.method() == Method::Bye && s.to.remote == alice.addr)
                .cloned()
        })
        .expect("BYE to the caller");
    let b2 = request_to(&mut sim, dev, Method::Bye).expect("BYE to the device");
    sim.receive(alice.addr, &reply(&b1, 200, "OK", ""));
    sim.receive(dev, &reply(&b2, 200, "OK", ""));
    let records = mss_store::block_on(mss_store::Store::list_calls(&*sim.store, None, 10)).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].ended_by, Some(mss_store::EndedBy::Mss));
    assert_eq!(
        records[0].disposition,
        Some(mss_store::CallDisposition::Answered)
    );
    assert_clean(&mut sim);
}

#[test]
fn a_silent_callee_is_named_and_counted_once() {
    let mut sim = Sim::start(relay_setup());
    let (mut alice, dev, _inv, session) = relayed_call(&mut sim);
    let a_port = sim.relay_leg(session, Leg::A).ports.rtp;
    for _ in 0..7 {
        sim.rtp(a_port, addr("127.0.0.10:4000"));
        sim.advance(Duration::from_secs(1));
    }
    let legs = sim.core.active_calls()[0].legs.clone();
    assert!(!legs[0].no_rtp_from, "the caller talks: {legs:?}");
    assert!(legs[1].no_rtp_from, "the callee is silent: {legs:?}");
    assert!(legs[0].rtp_in > 0);
    assert_eq!(sim.metrics.calls_one_way(mss_admin::CallLeg::Callee), 1);
    assert_eq!(sim.metrics.calls_one_way(mss_admin::CallLeg::Caller), 0);
    caller_hangs_up(&mut sim, &mut alice, dev);
    assert_clean(&mut sim);
}

#[test]
fn ports_used_up_is_503_with_retry_after_and_nothing_left() {
    let mut setup = relay_setup();
    // Two pairs: one session, one call.
    setup.relay = RelayConfig::new(PortRange::new(20000, 20003).unwrap());
    let mut sim = Sim::start(setup);
    let (mut alice, dev, _inv, _session) = relayed_call(&mut sim);
    let mut bob = Caller::new("101", "pw-101", "127.0.0.13:5062");
    bob.call(&mut sim, "100", "", SDP_A);
    let rsp = bob.response(&mut sim, 300).unwrap();
    assert_eq!(rsp.status().as_u16(), 503);
    assert!(rsp.headers().contains(&HeaderName::RetryAfter));
    assert_eq!(
        sim.core.call_count(),
        1,
        "nothing of the refused call is left"
    );
    caller_hangs_up(&mut sim, &mut alice, dev);
    assert_clean(&mut sim);
    // The ports are back: the next call gets them.
    let mut carol = Caller::new("100", "pw-100", "127.0.0.14:5062");
    carol.call(&mut sim, "101", "", SDP_A);
    let inv = invite_to(&mut sim, dev);
    assert_eq!(sdp_address(inv.body()).0, MSS_IP);
}

#[test]
fn every_end_of_a_call_gives_its_ports_back() {
    // The caller cancels.
    let mut sim = Sim::start(relay_setup());
    let dev = registered(&mut sim, "101", "pw-101", "127.0.0.11:5062");
    let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
    alice.call(&mut sim, "101", "", SDP_A);
    let inv = invite_to(&mut sim, dev);
    sim.receive(dev, &device_answer(&inv, dev, 180, "Ringing", "dev1", ""));
    sim.receive(
        alice.addr,
        &alice.cancel_text(alice.branch, alice.invite_cseq),
    );
    assert_eq!(
        alice.response(&mut sim, 400).unwrap().status().as_u16(),
        487
    );
    assert_eq!(sim.relay_sessions(), [], "released at the CANCEL");
    let c = request_to(&mut sim, dev, Method::Cancel).unwrap();
    sim.receive(dev, &reply(&c, 200, "OK", ""));
    sim.receive(
        dev,
        &device_answer(&inv, dev, 487, "Request Terminated", "dev1", ""),
    );
    assert_clean(&mut sim);

    // The callee is busy.
    let mut alice = Caller::new("100", "pw-100", "127.0.0.20:5062");
    alice.call(&mut sim, "101", "", SDP_A);
    let inv = invite_to(&mut sim, dev);
    sim.receive(dev, &device_answer(&inv, dev, 486, "Busy Here", "dev1", ""));
    assert_eq!(
        alice.response(&mut sim, 400).unwrap().status().as_u16(),
        486
    );
    assert_clean(&mut sim);

    // Nobody answers.
    let mut alice = Caller::new("100", "pw-100", "127.0.0.21:5062");
    alice.call(&mut sim, "101", "", SDP_A);
    let inv = invite_to(&mut sim, dev);
    sim.receive(dev, &device_answer(&inv, dev, 180, "Ringing", "dev1", ""));
    let _ = sim.wait_for(Duration::from_secs(200), |s| {
        s.request()
            .filter(|r| *r.method() == Method::Cancel)
            .cloned()
    });
    sim.receive(
        dev,
        &device_answer(&inv, dev, 487, "Request Terminated", "dev1", ""),
    );
    assert_clean(&mut sim);

    // The caller cancels while the ports are being allocated: they come back later and
    // go straight back.
    sim.hold_media = true;
    let mut alice = Caller::new("100", "pw-100", "127.0.0.22:5062");
    alice.call(&mut sim, "101", "", SDP_A);
    assert!(
        request_to(&mut sim, dev, Method::Invite).is_none(),
        "B waits for ports"
    );
    sim.receive(
        alice.addr,
        &alice.cancel_text(alice.branch, alice.invite_cseq),
    );
    assert_eq!(
        alice.response(&mut sim, 400).unwrap().status().as_u16(),
        487
    );
    sim.release_media();
    assert!(
        request_to(&mut sim, dev, Method::Invite).is_none(),
        "no B leg after all"
    );
    assert_clean(&mut sim);

    // Shutdown.
    let mut sim = Sim::start(relay_setup());
    let (alice, dev2, _inv, _s) = relayed_call(&mut sim);
    sim.shutdown();
    assert_eq!(sim.relay_sessions(), [], "released at shutdown");
    let b1 = request_to(&mut sim, alice.addr, Method::Bye).unwrap();
    let b2 = request_to(&mut sim, dev2, Method::Bye).unwrap();
    sim.receive(alice.addr, &reply(&b1, 200, "OK", ""));
    sim.receive(dev2, &reply(&b2, 200, "OK", ""));
    assert_eq!(sim.core.media_session_count(), 0);
}

#[test]
fn a_delayed_offer_and_its_answer_in_the_ack_are_rewritten() {
    let mut sim = Sim::start(relay_setup());
    let dev = registered(&mut sim, "101", "pw-101", "127.0.0.11:5062");
    let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
    alice.call(&mut sim, "101", "", "");
    let inv = invite_to(&mut sim, dev);
    assert!(inv.body().is_empty());
    let session = only_session(&sim);
    let a_port = sim.relay_leg(session, Leg::A).ports.rtp;
    let b_port = sim.relay_leg(session, Leg::B).ports.rtp;
    sim.receive(dev, &device_answer(&inv, dev, 200, "OK", "dev1", SDP_B));
    let ok = alice.response(&mut sim, 200).unwrap();
    assert_eq!(sdp_address(ok.body()), (MSS_IP.to_owned(), a_port));
    alice.learn(&ok);
    let text = alice.in_dialog_text("ACK", alice.invite_cseq, SDP_A);
    sim.receive(alice.addr, &text);
    let ack = request_to(&mut sim, dev, Method::Ack).unwrap();
    assert_eq!(sdp_address(ack.body()), (MSS_IP.to_owned(), b_port));
    assert_eq!(
        sim.relay_leg(session, Leg::A).remote.rtp,
        Some(addr("127.0.0.10:4000"))
    );
    caller_hangs_up(&mut sim, &mut alice, dev);
    assert_clean(&mut sim);
}

#[test]
fn early_media_of_two_forks_reaches_the_caller_at_one_port_and_the_winner_is_latched() {
    let mut sim = Sim::start(relay_setup());
    let d1 = registered(&mut sim, "101", "pw-101", "127.0.0.11:5062");
    let d2 = registered(&mut sim, "101", "pw-101", "127.0.0.12:5062");
    let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
    alice.call(&mut sim, "101", "", SDP_A);
    let i1 = invite_to(&mut sim, d1);
    let i2 = invite_to(&mut sim, d2);
    let session = only_session(&sim);
    let a_port = sim.relay_leg(session, Leg::A).ports.rtp;
    let b_port = sim.relay_leg(session, Leg::B).ports.rtp;
    assert_eq!(sdp_address(i1.body()).1, b_port);
    assert_eq!(sdp_address(i2.body()).1, b_port, "the forks share B's port");
    let sdp_d2 = SDP_B
        .replace("127.0.0.11", "127.0.0.12")
        .replace("5000", "5002");
    sim.receive(
        d1,
        &device_answer(&i1, d1, 183, "Session Progress", "d1", SDP_B),
    );
    let p1: Response = alice.response(&mut sim, 101).unwrap();
    sim.receive(
        d2,
        &device_answer(&i2, d2, 183, "Session Progress", "d2", &sdp_d2),
    );
    let p2: Response = alice.response(&mut sim, 101).unwrap();
    assert_eq!(sdp_address(p1.body()), (MSS_IP.to_owned(), a_port));
    assert_eq!(sdp_address(p2.body()), (MSS_IP.to_owned(), a_port));
    // The last fork's early media is heard.
    assert!(matches!(
        sim.rtp(b_port, addr("127.0.0.12:5002")),
        Decision::Forward { .. }
    ));
    // The first fork answers: the relay follows it, the other fork's packets are dropped.
    sim.receive(d1, &device_answer(&i1, d1, 200, "OK", "d1", SDP_B));
    let cancel = request_to(&mut sim, d2, Method::Cancel).unwrap();
    sim.receive(d2, &reply(&cancel, 200, "OK", ""));
    sim.receive(
        d2,
        &device_answer(&i2, d2, 487, "Request Terminated", "d2", ""),
    );
    assert_eq!(
        sim.relay_leg(session, Leg::B).remote.rtp,
        Some(addr("127.0.0.11:5000"))
    );
    assert!(matches!(
        sim.rtp(b_port, addr("127.0.0.12:5002")),
        Decision::Drop(_)
    ));
    assert!(matches!(
        sim.rtp(b_port, addr("127.0.0.11:5000")),
        Decision::Forward { .. }
    ));
    let ok = alice.response(&mut sim, 200).unwrap();
    alice.learn(&ok);
    alice.ack(&mut sim);
    caller_hangs_up(&mut sim, &mut alice, d1);
    assert_clean(&mut sim);
}

/// A session refresh by re-INVITE (RFC 4028 §7.4: the session description last sent, no
/// new offer) repeats what the leg was sent — pointed at the relay — never the other
/// phone's own description, which would take the audio past the relay.
#[test]
fn a_session_refresh_repeats_the_description_pointed_at_the_relay() {
    let mut sim = Sim::start(relay_setup());
    let dev = registered(&mut sim, "101", "pw-101", "127.0.0.11:5062");
    let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
    assert_eq!(alice.call(&mut sim, "101", "", SDP_A), 407);
    let inv = invite_to(&mut sim, dev);
    let (c, _) = sdp_address(inv.body());
    assert_eq!(c, MSS_IP, "the offer to the device points at the relay");
    // The device takes mss as its refresher (RFC 4028 §7.2) and allows no UPDATE.
    let extra = format!(
        "Contact: <sip:dev@{dev}>\r\nSession-Expires: 100;refresher=uac\r\nRequire: timer\r\n"
    );
    sim.receive(dev, &answer(&inv, 200, "OK", "dev1", &extra, SDP_B));
    let ok = alice.response(&mut sim, 200).unwrap();
    alice.learn(&ok);
    alice.ack(&mut sim);
    assert!(request_to(&mut sim, dev, Method::Ack).is_some());
    sim.forget_sent();
    sim.advance(Duration::from_secs(49));
    let refresh = request_to(&mut sim, dev, Method::Invite).expect("mss refreshes at 50 s");
    assert_eq!(
        std::str::from_utf8(refresh.body()).unwrap(),
        std::str::from_utf8(inv.body()).unwrap(),
        "the description the device was sent, not the caller's"
    );
    sim.receive(dev, &answer(&refresh, 200, "OK", "dev1", &extra, SDP_B));
    assert!(request_to(&mut sim, dev, Method::Ack).is_some());
    caller_hangs_up(&mut sim, &mut alice, dev);
    assert_clean(&mut sim);
}

/// The relay setup with `ready` sessions allocated ahead (`MediaEvent::Ready`).
fn ready_setup(ready: usize) -> Setup {
    let mut setup = relay_setup();
    setup.media_ready = ready;
    setup
}

/// How many allocations and takes the core asked of the relay.
fn asked(sim: &Sim) -> (usize, usize) {
    use mss_media::io::Command;
    let allocations = sim
        .media_log
        .iter()
        .filter(|c| matches!(c, Command::Allocate { .. }))
        .count();
    let takes = sim
        .media_log
        .iter()
        .filter(|c| matches!(c, Command::Taken { .. }))
        .count();
    (allocations, takes)
}

#[test]
fn a_ready_session_starts_the_b_leg_without_asking_the_relay() {
    let mut sim = Sim::start(ready_setup(2));
    assert_eq!(sim.media_ready.len(), 2, "two sessions bound ahead");
    let ready = sim.media_ready.clone();
    // An allocation would be held and the B leg would wait: it must not be needed.
    sim.hold_media = true;
    let (mut alice, dev, _inv, session) = relayed_call(&mut sim);
    assert_eq!(session, ready[0], "the oldest ready session");
    assert_eq!(asked(&sim), (0, 1), "{:?}", sim.media_log);
    assert_eq!(sim.media_ready.len(), 2, "another was bound in its place");
    assert!(!sim.media_ready.contains(&session));
    let relay = sim.relay.as_ref().unwrap().stats();
    assert_eq!((relay.sessions, relay.ready_sessions), (1, 2));
    // The taken session relays as an allocated one does.
    let a_port = sim.relay_leg(session, Leg::A).ports.rtp;
    let b_port = sim.relay_leg(session, Leg::B).ports.rtp;
    assert_eq!(
        sim.rtp(a_port, addr("127.0.0.10:4000")),
        Decision::Forward {
            from: b_port,
            to: addr("127.0.0.11:5000")
        }
    );
    // Nobody else latches a ready session.
    let next = sim.relay_leg(sim.media_ready[0], Leg::A).ports.rtp;
    assert_eq!(
        sim.rtp(next, addr("127.0.0.10:4000")),
        Decision::Drop(DropReason::Stranger)
    );
    caller_hangs_up(&mut sim, &mut alice, dev);
    assert_clean(&mut sim);
    let relay = sim.relay.as_ref().unwrap().stats();
    assert_eq!(
        (relay.sessions, relay.ports_in_use, relay.ready_sessions),
        (0, 0, 2)
    );
}

#[test]
fn too_few_ready_sessions_ask_the_relay_for_the_rest() {
    let mut sim = Sim::start(ready_setup(1));
    let dev = registered(&mut sim, "101", "pw-101", "127.0.0.11:5062");
    let av = format!("{SDP_A}m=video 4002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n");
    sim.hold_media = true;
    let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
    alice.call(&mut sim, "101", "", &av);
    assert_eq!(asked(&sim), (1, 1), "one taken, one asked for");
    assert!(
        request_to(&mut sim, dev, Method::Invite).is_none(),
        "B waits for the second session"
    );
    sim.release_media();
    let inv = invite_to(&mut sim, dev);
    let text = std::str::from_utf8(inv.body()).unwrap();
    let ports: Vec<u16> = text
        .lines()
        .filter(|l| l.starts_with("m="))
        .map(|l| l.split(' ').nth(1).unwrap().parse().unwrap())
        .collect();
    let sessions = sim.relay_sessions();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    let mut b_ports: Vec<u16> = sessions
        .iter()
        .map(|s| sim.relay_leg(*s, Leg::B).ports.rtp)
        .collect();
    b_ports.sort_unstable();
    let mut sorted = ports.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, b_ports, "each m= line has its own session: {text}");
    sim.receive(dev, &device_answer(&inv, dev, 180, "Ringing", "dev1", ""));
    sim.receive(
        alice.addr,
        &alice.cancel_text(alice.branch, alice.invite_cseq),
    );
    assert_eq!(
        alice.response(&mut sim, 400).unwrap().status().as_u16(),
        487
    );
    let c = request_to(&mut sim, dev, Method::Cancel).unwrap();
    sim.receive(dev, &reply(&c, 200, "OK", ""));
    sim.receive(
        dev,
        &device_answer(&inv, dev, 487, "Request Terminated", "dev1", ""),
    );
    assert_clean(&mut sim);
}

#[test]
fn with_ready_sessions_503_comes_only_when_no_port_is_left_anywhere() {
    let mut setup = ready_setup(1);
    // Four pairs: two sessions, one of them kept ready.
    setup.relay = RelayConfig::new(PortRange::new(20000, 20007).unwrap());
    let mut sim = Sim::start(setup);
    let dev = registered(&mut sim, "101", "pw-101", "127.0.0.11:5062");
    // Two calls ring: each takes the ready session, the second one's was bound after the
    // first take; then no port is left to bind.
    let mut callers = Vec::new();
    for (i, host) in ["127.0.0.20:5062", "127.0.0.21:5062"]
        .into_iter()
        .enumerate()
    {
        let mut c = Caller::new("100", "pw-100", host);
        c.call(&mut sim, "101", "", SDP_A);
        let inv = invite_to(&mut sim, dev);
        sim.receive(
            dev,
            &device_answer(&inv, dev, 180, "Ringing", &format!("d{i}"), ""),
        );
        callers.push((c, inv, i));
    }
    assert_eq!(asked(&sim), (0, 2));
    assert!(sim.media_ready.is_empty());
    // A third call finds none ready, asks, and is refused.
    let mut bob = Caller::new("101", "pw-101", "127.0.0.13:5062");
    bob.call(&mut sim, "100", "", SDP_A);
    let rsp = bob.response(&mut sim, 300).unwrap();
    assert_eq!(rsp.status().as_u16(), 503);
    assert!(rsp.headers().contains(&HeaderName::RetryAfter));
    assert_eq!(asked(&sim), (1, 2));
    // A fourth asks too (held); meanwhile the first call ends and its ports become a ready
    // session, which the core has before the relay's "no ports" answer: it takes it.
    sim.hold_media = true;
    let mut carol = Caller::new("100", "pw-100", "127.0.0.14:5062");
    carol.call(&mut sim, "101", "", SDP_A);
    assert_eq!(asked(&sim), (2, 2));
    let (first, inv, _) = callers.remove(0);
    sim.receive(
        first.addr,
        &first.cancel_text(first.branch, first.invite_cseq),
    );
    let c = request_to(&mut sim, dev, Method::Cancel).unwrap();
    sim.receive(dev, &reply(&c, 200, "OK", ""));
    sim.receive(
        dev,
        &device_answer(&inv, dev, 487, "Request Terminated", "d0", ""),
    );
    assert_eq!(sim.media_ready.len(), 1, "the freed ports are bound ahead");
    sim.release_media();
    let refused = sim
        .media_events
        .iter()
        .filter(|e| {
            matches!(
                e,
                mss_media::io::MediaEvent::Allocated {
                    result: Err(mss_media::io::AllocateError::Exhausted),
                    ..
                }
            )
        })
        .count();
    assert_eq!(refused, 2, "the relay itself had no free pair either time");
    let inv = invite_to(&mut sim, dev);
    assert_eq!(sdp_address(inv.body()).0, MSS_IP);
    assert_eq!(asked(&sim), (2, 3));
    assert!(sim.media_ready.is_empty());
}
