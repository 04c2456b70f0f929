//! The sans-IO relay in simulated time: latching, forwarding, RTCP, drops, timers, ports.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use mss_media::{
    Allocation, Decision, DropReason, Event, Leg, PortRange, PortsExhausted, Relay, RelayConfig,
    Remote, TimeoutCause,
};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn relay(first: u16, last: u16) -> Relay {
    Relay::new(RelayConfig::new(PortRange::new(first, last).unwrap()), 7)
}

/// A G.711 RTP packet (160 bytes of payload).
fn rtp() -> Vec<u8> {
    let mut p = vec![0x80, 0x00, 0, 1, 0, 0, 0, 160, 0xde, 0xad, 0xbe, 0xef];
    p.resize(172, 0xff);
    p
}

/// An RTCP receiver report without blocks.
fn rtcp() -> Vec<u8> {
    vec![0x80, 201, 0, 1, 0xde, 0xad, 0xbe, 0xef]
}

/// Caller behind NAT: SIP and RTP from 203.0.113.5 (any port), private SDP address.
const A_NAT: &str = "203.0.113.5";
const A_SDP: &str = "192.168.1.10:4000";
/// Callee on a public address: SDP and source agree.
const B_SIG: &str = "198.51.100.7";
const B_SDP: &str = "198.51.100.7:5000";

struct Call {
    relay: Relay,
    alloc: Allocation,
    t0: Instant,
}

impl Call {
    fn new() -> Call {
        let mut relay = relay(20000, 20099);
        let alloc = relay.allocate().unwrap();
        let s = alloc.session;
        relay
            .set_remote(s, Leg::A, Remote::new(ip(A_NAT), addr(A_SDP)))
            .unwrap();
        relay
            .set_remote(s, Leg::B, Remote::new(ip(B_SIG), addr(B_SDP)))
            .unwrap();
        Call {
            relay,
            alloc,
            t0: Instant::now(),
        }
    }

    fn at(&self, secs: f64) -> Instant {
        self.t0 + Duration::from_secs_f64(secs)
    }

    fn send(&mut self, t: f64, to: Leg, rtcp_port: bool, from: &str, mut p: Vec<u8>) -> Decision {
        let ports = self.alloc.ports(to);
        let port = if rtcp_port { ports.rtcp() } else { ports.rtp };
        let now = self.at(t);
        self.relay.handle_packet(now, port, addr(from), &mut p)
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.relay.poll_event()).collect()
    }

    /// Runs the timers from `from` to `to` seconds in 100 ms steps, as a driver would.
    fn run(&mut self, to: f64) -> Vec<Event> {
        let end = self.at(to);
        while let Some(t) = self.relay.poll_timeout() {
            if t > end {
                break;
            }
            self.relay.handle_timeout(t);
        }
        self.relay.handle_timeout(end);
        self.events()
    }
}

fn forward(from: u16, to: &str) -> Decision {
    Decision::Forward { from, to: addr(to) }
}

#[test]
fn allocation_gives_even_rtp_ports_in_range() {
    let mut r = relay(20001, 20020);
    let range = r.config().ports;
    assert_eq!((range.base(), range.pairs()), (20002, 9));
    let mut seen = Vec::new();
    for _ in 0..4 {
        let a = r.allocate().unwrap();
        for p in [a.a, a.b] {
            assert_eq!(p.rtp % 2, 0);
            assert!((20002..=20018).contains(&p.rtp) && p.rtcp() == p.rtp + 1);
            assert!(!seen.contains(&p.rtp));
            seen.push(p.rtp);
        }
        assert_eq!(r.owner_of(a.b.rtcp()), Some((a.session, Leg::B)));
    }
    assert_eq!(
        r.allocate(),
        Err(PortsExhausted),
        "one pair left: no session"
    );
    assert_eq!(r.stats().exhausted, 1);
    assert_eq!(r.stats().ports_in_use, 16);
}

#[test]
fn exhaustion_ends_with_a_release_and_released_ports_come_last() {
    let mut r = relay(30000, 30007); // 4 pairs: 2 sessions
    let s1 = r.allocate().unwrap();
    let s2 = r.allocate().unwrap();
    assert_eq!(r.allocate(), Err(PortsExhausted));
    r.release(s1.session).unwrap();
    assert_eq!(r.release(s1.session), Err(mss_media::UnknownSession));
    let s3 = r.allocate().unwrap();
    assert_ne!(s3.session, s1.session, "ids are never reused");
    assert_eq!({ [s3.a.rtp, s3.b.rtp] }, [s1.a.rtp, s1.b.rtp]);
    r.release(s2.session).unwrap();
    r.release(s3.session).unwrap();
    assert_eq!((r.free_pairs(), r.stats().ports_in_use), (4, 0));
    // The old id is refused everywhere.
    assert!(r.set_remote(s1.session, Leg::A, Remote::default()).is_err());
    assert!(r.answered(Instant::now(), s1.session).is_err());
}

#[test]
fn a_stranger_never_latches() {
    let mut c = Call::new();
    let a = c.alloc.a.rtp;
    // Before anyone else: a third host is refused, however often it tries.
    for i in 0..10 {
        let d = c.send(
            0.01 * f64::from(i),
            Leg::A,
            false,
            "192.0.2.66:40000",
            rtp(),
        );
        assert_eq!(d, Decision::Drop(DropReason::Stranger));
    }
    assert!(c.events().is_empty());
    // The caller's NAT address (any port: NAT mapped it) latches.
    let d = c.send(0.2, Leg::A, false, "203.0.113.5:61000", rtp());
    assert_eq!(d, forward(c.alloc.b.rtp, B_SDP));
    assert_eq!(
        c.events(),
        [Event::Latched {
            session: c.alloc.session,
            leg: Leg::A,
            rtcp: false,
            source: addr("203.0.113.5:61000"),
        }]
    );
    // Still refused afterwards; another port of the caller's host too.
    let d = c.send(0.3, Leg::A, false, "192.0.2.66:40000", rtp());
    assert_eq!(d, Decision::Drop(DropReason::Stranger));
    let d = c.send(0.3, Leg::A, false, "203.0.113.5:61002", rtp());
    assert_eq!(d, Decision::Drop(DropReason::NotLatched));
    let info = c.relay.leg(c.alloc.session, Leg::A).unwrap();
    assert_eq!(info.rtp_source, Some(addr("203.0.113.5:61000")));
    assert_eq!((info.stats.rtp_in, info.stats.dropped), (1, 12));
    assert_eq!(c.relay.stats().dropped(DropReason::Stranger), 11);
    assert_eq!(c.relay.stats().relayed, 1);
    let _ = a;
}

#[test]
fn a_leg_without_a_remote_latches_to_nobody() {
    let mut r = relay(20000, 20099);
    let s = r.allocate().unwrap();
    let d = r.handle_packet(Instant::now(), s.a.rtp, addr("10.0.0.1:5000"), &mut rtp());
    assert_eq!(d, Decision::Drop(DropReason::Stranger));
    // A hold address in SDP allows no host.
    r.set_remote(
        s.session,
        Leg::A,
        Remote {
            signalling: None,
            rtp: Some(addr("0.0.0.0:5000")),
            rtcp: None,
            srtp: false,
        },
    )
    .unwrap();
    let d = r.handle_packet(Instant::now(), s.a.rtp, addr("0.0.0.0:5000"), &mut rtp());
    assert_eq!(d, Decision::Drop(DropReason::Stranger));
}

#[test]
fn the_sdp_address_latches_too() {
    let mut c = Call::new();
    // The callee's media comes from its SDP host (a media gateway apart from its proxy
    // would be allowed the same way).
    let mut r = relay(20000, 20099);
    let s = r.allocate().unwrap();
    r.set_remote(
        s.session,
        Leg::B,
        Remote {
            signalling: Some(ip("198.51.100.1")),
            rtp: Some(addr("198.51.100.200:7000")),
            rtcp: None,
            srtp: false,
        },
    )
    .unwrap();
    let d = r.handle_packet(
        Instant::now(),
        s.b.rtp,
        addr("198.51.100.200:7000"),
        &mut rtp(),
    );
    assert_eq!(
        d,
        Decision::Drop(DropReason::NoDestination),
        "latched; A unknown"
    );
    assert_eq!(
        r.leg(s.session, Leg::B).unwrap().rtp_source,
        Some(addr("198.51.100.200:7000"))
    );
    let _ = c.events();
    // In the full call: B from its SDP address.
    let d = c.send(0.0, Leg::B, false, B_SDP, rtp());
    assert_eq!(
        d,
        forward(c.alloc.a.rtp, A_SDP),
        "A not latched: its SDP address"
    );
}

#[test]
fn symmetric_rtp_both_ways() {
    let mut c = Call::new();
    let (pa, pb) = (c.alloc.a.rtp, c.alloc.b.rtp);
    // A (behind NAT) first: to B's SDP address, from B's port.
    assert_eq!(
        c.send(0.0, Leg::A, false, "203.0.113.5:61000", rtp()),
        forward(pb, B_SDP)
    );
    // B answers from another port than its SDP one (same host): B latches there…
    assert_eq!(
        c.send(0.02, Leg::B, false, "198.51.100.7:5002", rtp()),
        forward(pa, "203.0.113.5:61000"),
        "to where A's packets come from, not A's private SDP address"
    );
    // …and A's packets now go where B's come from.
    assert_eq!(
        c.send(0.04, Leg::A, false, "203.0.113.5:61000", rtp()),
        forward(pb, "198.51.100.7:5002")
    );
    let stats = c.relay.session_stats(c.alloc.session).unwrap();
    assert_eq!((stats.a.rtp_in, stats.a.rtp_out), (2, 1));
    assert_eq!((stats.b.rtp_in, stats.b.rtp_out), (1, 2));
}

#[test]
fn rtcp_is_paired_on_the_next_port() {
    let mut c = Call::new();
    let (pa, pb) = (c.alloc.a.rtcp(), c.alloc.b.rtcp());
    // Before B's RTCP latched: B's SDP RTP port + 1.
    assert_eq!(
        c.send(0.0, Leg::A, true, "203.0.113.5:61001", rtcp()),
        forward(pb, "198.51.100.7:5001")
    );
    assert_eq!(
        c.send(0.1, Leg::B, true, "198.51.100.7:5001", rtcp()),
        forward(pa, "203.0.113.5:61001")
    );
    // RTP on the RTCP port is not RTCP.
    assert_eq!(
        c.send(0.2, Leg::B, true, "198.51.100.7:5001", rtp()),
        Decision::Drop(DropReason::NotRtp)
    );
    // RTCP latching is its own: the RTP port is not latched by RTCP.
    assert_eq!(
        c.relay.leg(c.alloc.session, Leg::A).unwrap().rtp_source,
        None
    );
    // rtcp-mux: RTCP on the RTP port is relayed on the RTP ports, counted as RTCP.
    assert_eq!(
        c.send(0.3, Leg::A, false, "203.0.113.5:61000", rtcp()),
        forward(c.alloc.b.rtp, B_SDP)
    );
    let stats = c.relay.session_stats(c.alloc.session).unwrap();
    assert_eq!(
        (stats.a.rtcp_in, stats.a.rtp_in, stats.b.rtcp_out),
        (2, 0, 2)
    );
    // An a=rtcp: address (RFC 3605) is used when given.
    c.relay
        .set_remote(
            c.alloc.session,
            Leg::B,
            Remote {
                rtcp: Some(addr("198.51.100.7:6001")),
                ..Remote::new(ip(B_SIG), addr(B_SDP))
            },
        )
        .unwrap();
    // B's RTCP had latched to 198.51.100.7:5001, still allowed: kept until it latches again.
    assert_eq!(
        c.send(0.4, Leg::A, true, "203.0.113.5:61001", rtcp()),
        forward(pb, "198.51.100.7:5001")
    );
}

#[test]
fn garbage_and_oversize_are_dropped_and_counted() {
    let mut c = Call::new();
    let src = "203.0.113.5:61000";
    let stun = vec![
        0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
    ];
    assert_eq!(
        c.send(0.0, Leg::A, false, src, stun),
        Decision::Drop(DropReason::NotRtp)
    );
    assert_eq!(
        c.send(0.0, Leg::A, false, src, b"GET / HTTP/1.0\r\n\r\n".to_vec()),
        Decision::Drop(DropReason::NotRtp)
    );
    assert_eq!(
        c.send(0.0, Leg::A, false, src, Vec::new()),
        Decision::Drop(DropReason::NotRtp)
    );
    let mut big = rtp();
    big.resize(1501, 0);
    assert_eq!(
        c.send(0.0, Leg::A, false, src, big),
        Decision::Drop(DropReason::Oversize)
    );
    // Garbage latches nothing: a stranger's RTP is still a stranger's afterwards.
    assert_eq!(
        c.relay.leg(c.alloc.session, Leg::A).unwrap().rtp_source,
        None
    );
    let stats = *c.relay.stats();
    assert_eq!(
        (
            stats.dropped(DropReason::NotRtp),
            stats.dropped(DropReason::Oversize),
            stats.dropped_total(),
            stats.relayed
        ),
        (3, 1, 4, 0)
    );
    assert_eq!(c.relay.session_stats(c.alloc.session).unwrap().a.dropped, 4);
    // A port of the range no session owns, and one outside the range.
    let now = c.at(0.0);
    let mut p = rtp();
    assert_eq!(
        c.relay.handle_packet(now, 20098, addr(src), &mut p),
        Decision::Drop(DropReason::UnknownPort)
    );
    assert_eq!(
        c.relay.handle_packet(now, 5060, addr(src), &mut p),
        Decision::Drop(DropReason::UnknownPort)
    );
}

#[test]
fn latching_starts_again_only_after_set_remote() {
    let mut c = Call::new();
    let s = c.alloc.session;
    assert_eq!(
        c.send(0.0, Leg::B, false, B_SDP, rtp()),
        forward(c.alloc.a.rtp, A_SDP)
    );
    // Transfer: B's side is now another phone. Until the controller says so, it is a
    // stranger.
    let new_b = "198.51.100.99:7000";
    assert_eq!(
        c.send(1.0, Leg::B, false, new_b, rtp()),
        Decision::Drop(DropReason::Stranger)
    );
    c.relay
        .set_remote(s, Leg::B, Remote::new(ip("198.51.100.99"), addr(new_b)))
        .unwrap();
    // The old phone is not allowed any more: packets to B go to the new SDP address.
    assert_eq!(
        c.send(1.1, Leg::A, false, "203.0.113.5:61000", rtp()),
        forward(c.alloc.b.rtp, new_b)
    );
    assert_eq!(
        c.send(1.2, Leg::B, false, B_SDP, rtp()),
        Decision::Drop(DropReason::Stranger)
    );
    assert_eq!(
        c.send(1.3, Leg::B, false, new_b, rtp()),
        forward(c.alloc.a.rtp, "203.0.113.5:61000")
    );
    // A re-INVITE from the same phone with a new port: the old source is kept as the
    // destination until the phone's first packet from the new port.
    c.relay
        .set_remote(
            s,
            Leg::B,
            Remote::new(ip("198.51.100.99"), addr("198.51.100.99:7100")),
        )
        .unwrap();
    assert_eq!(
        c.send(2.0, Leg::A, false, "203.0.113.5:61000", rtp()),
        forward(c.alloc.b.rtp, new_b)
    );
    assert_eq!(
        c.send(2.1, Leg::B, false, "198.51.100.99:7100", rtp()),
        forward(c.alloc.a.rtp, "203.0.113.5:61000")
    );
    assert_eq!(
        c.send(2.2, Leg::A, false, "203.0.113.5:61000", rtp()),
        forward(c.alloc.b.rtp, "198.51.100.99:7100")
    );
    let latched: Vec<_> = c
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Latched { leg, source, .. } => Some((leg, source)),
            _ => None,
        })
        .collect();
    assert_eq!(
        latched,
        [
            (Leg::B, addr(B_SDP)),
            (Leg::A, addr("203.0.113.5:61000")),
            (Leg::B, addr(new_b)),
            (Leg::B, addr("198.51.100.99:7100")),
        ]
    );
}

#[test]
fn ipv4_mapped_sources_match_ipv4_remotes() {
    let mut c = Call::new();
    assert_eq!(
        c.send(0.0, Leg::A, false, "[::ffff:203.0.113.5]:61000", rtp()),
        forward(c.alloc.b.rtp, B_SDP)
    );
    assert_eq!(
        c.relay.leg(c.alloc.session, Leg::A).unwrap().rtp_source,
        Some(addr("203.0.113.5:61000"))
    );
}

#[test]
fn no_timers_before_the_answer() {
    let mut c = Call::new();
    assert_eq!(c.relay.poll_timeout(), None);
    assert!(
        c.run(3600.0).is_empty(),
        "ringing is the call service's business"
    );
}

#[test]
fn silence_after_the_answer_flags_both_legs_then_times_out() {
    let mut c = Call::new();
    let s = c.alloc.session;
    c.relay.answered(c.at(1.0), s).unwrap();
    assert_eq!(c.relay.poll_timeout(), Some(c.at(6.0)));
    assert!(c.run(5.9).is_empty());
    assert_eq!(
        c.run(6.0),
        [
            Event::NoRtpFrom {
                session: s,
                leg: Leg::A
            },
            Event::NoRtpFrom {
                session: s,
                leg: Leg::B
            },
        ]
    );
    assert!(c.run(60.9).is_empty());
    assert_eq!(
        c.run(61.0),
        [Event::TimedOut {
            session: s,
            cause: TimeoutCause::NoRtp
        }]
    );
    assert!(c.run(10_000.0).is_empty(), "once");
    assert_eq!(c.relay.poll_timeout(), None);
    c.relay.release(s).unwrap();
}

#[test]
fn one_way_audio_names_the_silent_leg() {
    let mut c = Call::new();
    let s = c.alloc.session;
    // B sent early media before the answer: that does not count after it.
    c.send(0.5, Leg::B, false, B_SDP, rtp());
    c.relay.answered(c.at(1.0), s).unwrap();
    let _ = c.events();
    // A sends every 20 ms for 99 s; the timers run once a second.
    for i in 0..4950u32 {
        let t = 1.0 + f64::from(i) * 0.02;
        c.send(t, Leg::A, false, "203.0.113.5:61000", rtp());
        if i % 50 == 49 {
            c.relay.handle_timeout(c.at(t));
        }
    }
    let events: Vec<_> = c.run(100.0);
    assert_eq!(
        events[1..],
        [Event::NoRtpFrom {
            session: s,
            leg: Leg::B
        }],
        "after A's latch"
    );
    // A falls silent too: the timeout counts from its last packet.
    assert!(c.run(159.9).is_empty());
    assert_eq!(
        c.run(160.0),
        [Event::TimedOut {
            session: s,
            cause: TimeoutCause::NoRtp
        }]
    );
}

#[test]
fn hold_does_not_trip_rtp_timeout_but_hold_timeout() {
    let mut c = Call::new();
    let s = c.alloc.session;
    c.relay.answered(c.at(0.0), s).unwrap();
    c.send(0.1, Leg::A, false, "203.0.113.5:61000", rtp());
    c.send(0.1, Leg::B, false, B_SDP, rtp());
    assert_eq!(c.events().len(), 2, "two latches");
    // A puts B on hold (a=sendonly) at 10 s; nobody sends.
    c.relay.set_hold(c.at(10.0), s, Leg::A, true).unwrap();
    assert!(c.run(7000.0).is_empty(), "no rtp_timeout on hold");
    // Resumed at 7000 s: the RTP timeout counts from the resume.
    c.relay.set_hold(c.at(7000.0), s, Leg::A, false).unwrap();
    assert!(c.run(7059.9).is_empty());
    assert_eq!(
        c.run(7060.0),
        [Event::TimedOut {
            session: s,
            cause: TimeoutCause::NoRtp
        }]
    );

    let mut c = Call::new();
    let s = c.alloc.session;
    c.relay.answered(c.at(0.0), s).unwrap();
    c.relay.set_hold(c.at(1.0), s, Leg::B, true).unwrap();
    // Music on hold flows from B; the hold ends the call after hold_timeout anyway.
    for i in 0..100 {
        c.send(2.0 + f64::from(i), Leg::B, false, B_SDP, rtp());
    }
    let events = c.run(7201.0);
    assert_eq!(
        events.last(),
        Some(&Event::TimedOut {
            session: s,
            cause: TimeoutCause::Hold
        })
    );
    assert!(
        !events.iter().any(|e| matches!(e, Event::NoRtpFrom { .. })),
        "no one-way flag while on hold: {events:?}"
    );
    assert_eq!(events.len(), 2, "latched + timed out: {events:?}");
}

#[test]
fn a_released_session_fires_nothing_and_its_ports_are_unknown() {
    let mut c = Call::new();
    let s = c.alloc.session;
    c.relay.answered(c.at(0.0), s).unwrap();
    c.send(0.1, Leg::A, false, "203.0.113.5:61000", rtp());
    let stats = c.relay.release(s).unwrap();
    assert_eq!(stats.a.rtp_in, 1);
    let _ = c.events();
    assert!(c.run(1000.0).is_empty());
    assert_eq!(
        c.send(1000.0, Leg::A, false, "203.0.113.5:61000", rtp()),
        Decision::Drop(DropReason::UnknownPort)
    );
    assert_eq!(c.relay.stats().ports_in_use, 0);
    assert_eq!(c.relay.stats().sessions, 0);
}

#[test]
fn telephone_events_pass_through_untouched() {
    let mut c = Call::new();
    // RFC 4733 §2.3: digit 1, end bit, volume 10, duration 800, PT 101 with marker.
    let dtmf = vec![
        0x80, 0xe5, 0x12, 0x34, 0, 0, 0x0f, 0xa0, 0xde, 0xad, 0xbe, 0xef, 1, 0x8a, 0x03, 0x20,
    ];
    let mut buf = dtmf.clone();
    let d = c.relay.handle_packet(
        c.at(0.0),
        c.alloc.a.rtp,
        addr("203.0.113.5:61000"),
        &mut buf,
    );
    assert_eq!(d, forward(c.alloc.b.rtp, B_SDP));
    assert_eq!(buf, dtmf);
}

/// An RTP packet with its sequence number, timestamp and SSRC.
fn rtp_of(seq: u16, ts: u32, ssrc: u32) -> Vec<u8> {
    let mut p = rtp();
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&ts.to_be_bytes());
    p[8..12].copy_from_slice(&ssrc.to_be_bytes());
    p
}

/// Sequence number, timestamp and SSRC of an RTP packet.
fn header_of(p: &[u8]) -> (u16, u32, u32) {
    (
        u16::from_be_bytes([p[2], p[3]]),
        u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
        u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
    )
}

impl Call {
    /// Sends `p` into `to`'s RTP port from `from`, at `t`; the packet as it leaves.
    fn relay_rtp(&mut self, t: f64, to: Leg, from: &str, mut p: Vec<u8>) -> (Decision, Vec<u8>) {
        let port = self.alloc.ports(to).rtp;
        let now = self.at(t);
        let d = self.relay.handle_packet(now, port, addr(from), &mut p);
        (d, p)
    }
}

#[test]
fn a_transfer_keeps_one_stream_toward_the_remaining_phone() {
    let mut c = Call::new();
    let s = c.alloc.session;
    // A talks to B (SSRC 0x0b0b), 50 packets of G.711 at 20 ms.
    for i in 0..50u16 {
        let t = 0.02 * f64::from(i);
        let a = rtp_of(7 + i, 160 * u32::from(i), 0x0a0a);
        let (_, out) = c.relay_rtp(t, Leg::A, "203.0.113.5:61000", a.clone());
        assert_eq!(out, a);
        let p = rtp_of(1000 + i, 5000 + 160 * u32::from(i), 0x0b0b);
        let (d, out) = c.relay_rtp(t, Leg::B, B_SDP, p.clone());
        assert_eq!(d, forward(c.alloc.a.rtp, "203.0.113.5:61000"));
        assert_eq!(out, p, "nothing is rewritten before a transfer");
    }
    // B transfers A to C; the call service points leg B at C: 1 s without B's audio.
    let c_sdp = "198.51.100.20:9000";
    c.relay
        .set_remote(s, Leg::B, Remote::new(ip("198.51.100.20"), addr(c_sdp)))
        .unwrap();
    c.relay.new_source(s, Leg::B).unwrap();
    let last_ts = 5000 + 160 * 49;
    for i in 0..20u16 {
        let t = 0.98 + 1.0 + 0.02 * f64::from(i);
        let (d, out) = c.relay_rtp(
            t,
            Leg::B,
            c_sdp,
            rtp_of(40_000 + i, 123 + 160 * u32::from(i), 0xcccc),
        );
        assert_eq!(d, forward(c.alloc.a.rtp, "203.0.113.5:61000"));
        assert_eq!(
            header_of(&out),
            (1050 + i, last_ts + 8000 + 160 * u32::from(i), 0x0b0b),
            "packet {i} from C continues B's stream"
        );
        assert_eq!(out[12..], rtp()[12..], "the payload is untouched");
        // A's stream to C is A's own: C never saw another.
        let a = rtp_of(57 + i, 160 * u32::from(50 + i), 0x0a0a);
        let (d, out) = c.relay_rtp(t, Leg::A, "203.0.113.5:61000", a.clone());
        assert_eq!((d, out), (forward(c.alloc.b.rtp, c_sdp), a));
    }
    // A's receiver report about "0x0b0b" reaches C naming C's SSRC and numbering.
    let mut rr = vec![
        0x81, 201, 0, 7, 0, 0, 0x0a, 0x0a, 0, 0, 0x0b, 0x0b, 0, 0, 0, 0,
    ];
    rr.extend((1069u32).to_be_bytes());
    rr.extend([0; 12]);
    let port = c.alloc.a.rtcp();
    let now = c.at(2.5);
    let d = c
        .relay
        .handle_packet(now, port, addr("203.0.113.5:61001"), &mut rr);
    assert_eq!(d, forward(c.alloc.b.rtcp(), "198.51.100.20:9001"));
    assert_eq!(rr[8..12], 0xccccu32.to_be_bytes());
    assert_eq!(rr[16..20], (40_019u32).to_be_bytes());
    // C's sender report reaches A as B's.
    let mut sr = vec![0x80, 200, 0, 6, 0, 0, 0xcc, 0xcc, 0, 0, 0, 0, 0, 0, 0, 0];
    sr.extend((123u32 + 160 * 19).to_be_bytes());
    sr.extend([0; 8]);
    let d = c
        .relay
        .handle_packet(now, c.alloc.b.rtcp(), addr("198.51.100.20:9001"), &mut sr);
    assert_eq!(d, forward(c.alloc.a.rtcp(), "203.0.113.5:61001"));
    assert_eq!(sr[4..8], 0x0b0bu32.to_be_bytes());
    assert_eq!(sr[16..20], (last_ts + 8000 + 160 * 19).to_be_bytes());
    // A second transfer (C to D) continues the same stream again.
    let d_sdp = "198.51.100.30:9100";
    c.relay
        .set_remote(s, Leg::B, Remote::new(ip("198.51.100.30"), addr(d_sdp)))
        .unwrap();
    c.relay.new_source(s, Leg::B).unwrap();
    let (_, out) = c.relay_rtp(2.38, Leg::B, d_sdp, rtp_of(3, 3, 0xdddd));
    assert_eq!(header_of(&out), (1070, last_ts + 8000 + 160 * 20, 0x0b0b));
}

#[test]
fn without_a_new_source_ssrc_changes_pass_as_they_are() {
    let mut c = Call::new();
    for (i, ssrc) in [1u32, 1, 2, 2, 1].into_iter().enumerate() {
        let p = rtp_of(i as u16 * 7, i as u32 * 999, ssrc);
        let (_, out) = c.relay_rtp(0.02 * i as f64, Leg::B, B_SDP, p.clone());
        assert_eq!(out, p);
    }
}

#[test]
fn the_leaving_party_on_the_same_host_does_not_win_the_latch() {
    // B (the transferor) and C (the target) on one host: B sends from :5000.
    let mut c = Call::new();
    let s = c.alloc.session;
    assert_eq!(
        c.send(0.0, Leg::B, false, B_SDP, rtp()),
        forward(c.alloc.a.rtp, A_SDP)
    );
    c.send(0.0, Leg::A, false, "203.0.113.5:61000", rtp());
    let c_sdp = "198.51.100.7:6000";
    c.relay
        .set_remote(s, Leg::B, Remote::new(ip(B_SIG), addr(c_sdp)))
        .unwrap();
    c.relay.new_source(s, Leg::B).unwrap();
    // Nothing goes to the leaving party meanwhile: A's audio goes to C's SDP address.
    assert_eq!(
        c.send(0.1, Leg::A, false, "203.0.113.5:61000", rtp()),
        forward(c.alloc.b.rtp, c_sdp)
    );
    // B's leftover RTP does not latch, C's does.
    assert_eq!(
        c.send(0.2, Leg::B, false, B_SDP, rtp()),
        Decision::Drop(DropReason::NotLatched)
    );
    assert_eq!(
        c.send(0.3, Leg::B, false, c_sdp, rtp()),
        forward(c.alloc.a.rtp, "203.0.113.5:61000")
    );
    assert_eq!(
        c.send(0.4, Leg::B, false, B_SDP, rtp()),
        Decision::Drop(DropReason::NotLatched)
    );
    // B's dialog ends and the controller says C's SDP again (re-latching): B's address
    // still does not latch.
    c.relay
        .set_remote(s, Leg::B, Remote::new(ip(B_SIG), addr(c_sdp)))
        .unwrap();
    assert_eq!(
        c.send(1.0, Leg::B, false, B_SDP, rtp()),
        Decision::Drop(DropReason::NotLatched)
    );
    assert_eq!(
        c.send(1.1, Leg::B, false, c_sdp, rtp()),
        forward(c.alloc.a.rtp, "203.0.113.5:61000")
    );
    assert_eq!(
        c.relay.leg(s, Leg::B).unwrap().rtp_source,
        Some(addr(c_sdp))
    );
}

#[test]
fn the_new_sdp_address_beats_another_port_of_its_host() {
    let mut c = Call::new();
    let s = c.alloc.session;
    c.send(0.0, Leg::B, false, B_SDP, rtp());
    let c_sdp = "198.51.100.7:6000";
    c.relay
        .set_remote(s, Leg::B, Remote::new(ip(B_SIG), addr(c_sdp)))
        .unwrap();
    c.relay.new_source(s, Leg::B).unwrap();
    // Something else of the host (another port of the leaving phone) comes first and
    // latches (host-only latching is what NAT needs) ...
    let other = "198.51.100.7:5002";
    assert_eq!(
        c.send(0.1, Leg::B, false, other, rtp()),
        forward(c.alloc.a.rtp, A_SDP)
    );
    // ... until the new party's own SDP address sends: it takes the latch, for good.
    assert_eq!(
        c.send(0.2, Leg::B, false, c_sdp, rtp()),
        forward(c.alloc.a.rtp, A_SDP)
    );
    assert_eq!(
        c.send(0.3, Leg::B, false, other, rtp()),
        Decision::Drop(DropReason::NotLatched)
    );
    assert_eq!(
        c.relay.leg(s, Leg::B).unwrap().rtp_source,
        Some(addr(c_sdp))
    );
}

#[test]
fn behind_a_nat_the_new_party_latches_by_host() {
    // A is transferred: A's side becomes E behind the same NAT as A (203.0.113.5), with
    // a private SDP address nothing ever comes from.
    let mut c = Call::new();
    let s = c.alloc.session;
    let a_public = "203.0.113.5:61000";
    c.send(0.0, Leg::A, false, a_public, rtp());
    c.relay
        .set_remote(s, Leg::A, Remote::new(ip(A_NAT), addr("192.168.1.11:4000")))
        .unwrap();
    c.relay.new_source(s, Leg::A).unwrap();
    assert_eq!(
        c.send(0.1, Leg::A, false, a_public, rtp()),
        Decision::Drop(DropReason::NotLatched),
        "A's leftovers"
    );
    let e_public = "203.0.113.5:61234";
    assert_eq!(
        c.send(0.2, Leg::A, false, e_public, rtp()),
        forward(c.alloc.b.rtp, B_SDP)
    );
    assert_eq!(
        c.send(0.3, Leg::B, false, B_SDP, rtp()),
        forward(c.alloc.a.rtp, e_public),
        "symmetric RTP to E's NAT address"
    );
    // RTCP latches the same way.
    assert_eq!(
        c.send(0.4, Leg::A, true, "203.0.113.5:61235", rtcp()),
        forward(c.alloc.b.rtcp(), "198.51.100.7:5001")
    );
}

#[test]
fn srtp_is_never_rewritten() {
    let mut c = Call::new();
    let s = c.alloc.session;
    let (_, out) = c.relay_rtp(0.0, Leg::B, B_SDP, rtp_of(1, 1, 1));
    assert_eq!(header_of(&out), (1, 1, 1));
    let c_sdp = "198.51.100.20:9000";
    let srtp = Remote {
        srtp: true,
        ..Remote::new(ip("198.51.100.20"), addr(c_sdp))
    };
    c.relay.set_remote(s, Leg::B, srtp).unwrap();
    c.relay.new_source(s, Leg::B).unwrap();
    // The header is authenticated (RFC 3711 §3.1): the new SSRC goes as it is.
    let p = rtp_of(500, 9000, 2);
    let (d, out) = c.relay_rtp(0.02, Leg::B, c_sdp, p.clone());
    assert_eq!((d, out), (forward(c.alloc.a.rtp, A_SDP), p));
}

#[test]
fn ready_sessions_are_counted_apart_until_taken_and_latch_nobody() {
    let mut r = relay(30000, 30011); // 6 pairs: 3 sessions
    let ready = r.reserve().unwrap();
    let (stats, free) = (*r.stats(), r.free_pairs());
    assert_eq!(
        (stats.ready_sessions, stats.sessions, stats.ports_in_use),
        (1, 0, 0)
    );
    assert_eq!(free, 4);
    // A ready session allows no host: whatever reaches its ports is a stranger's.
    let mut p = rtp();
    let t0 = Instant::now();
    assert_eq!(
        r.handle_packet(t0, ready.a.rtp, addr("198.51.100.7:5000"), &mut p),
        Decision::Drop(DropReason::Stranger)
    );
    assert_eq!(r.poll_event(), None, "nothing latched");
    // Taken by a call: counted as a call's, its counters start at zero.
    r.take(ready.session).unwrap();
    let stats = *r.stats();
    assert_eq!(
        (stats.ready_sessions, stats.sessions, stats.ports_in_use),
        (0, 1, 4)
    );
    assert_eq!(r.session_stats(ready.session).unwrap().a.dropped, 0);
    assert_eq!(
        stats.dropped(DropReason::Stranger),
        1,
        "the relay still counts it"
    );
    // Taking twice changes nothing; a released session cannot be taken.
    r.take(ready.session).unwrap();
    assert_eq!(r.stats().sessions, 1);
    r.release(ready.session).unwrap();
    assert_eq!(r.take(ready.session), Err(mss_media::UnknownSession));
    assert_eq!((r.stats().sessions, r.stats().ports_in_use), (0, 0));
}

#[test]
fn reserving_shares_the_ports_and_running_out_there_refuses_no_call() {
    let mut r = relay(30000, 30007); // 4 pairs: 2 sessions
    let ready = r.reserve().unwrap();
    let call = r.allocate().unwrap();
    assert_eq!(r.reserve(), Err(PortsExhausted));
    assert_eq!(r.stats().exhausted, 0, "no call was refused");
    assert_eq!(r.allocate(), Err(PortsExhausted));
    assert_eq!(r.stats().exhausted, 1);
    // A ready session released (never taken) gives its ports back like any other.
    r.release(ready.session).unwrap();
    assert_eq!((r.stats().ready_sessions, r.free_pairs()), (0, 2));
    r.release(call.session).unwrap();
    assert_eq!((r.stats().sessions, r.stats().ports_in_use), (0, 0));
}
