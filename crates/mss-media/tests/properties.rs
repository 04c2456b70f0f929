//! Random command sequences against the relay: no port leaks whatever way sessions end,
//! a stranger never gets a packet through, and the counters agree with what was done.
//! Ready sessions (`Relay::reserve`, taken by a call with `Relay::take`) share the ports:
//! nothing reaches anyone through one before it is taken.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use mss_media::{
    Allocation, Decision, Event, Leg, PortRange, Relay, RelayConfig, Remote, SessionId,
};
use proptest::prelude::*;

/// The hosts legs may have; the stranger is never one of them.
fn host(i: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, i % 4 + 1))
}
const STRANGER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 66));

#[derive(Debug, Clone)]
enum Op {
    Allocate,
    Reserve,
    Take(usize),
    ReleaseReady(usize),
    ReadyPacket(usize, bool, bool, u8, u16),
    Release(usize),
    SetRemote(usize, bool, u8, u16),
    NewSource(usize, bool),
    Hold(usize, bool, bool),
    Answered(usize),
    Advance(u32),
    Packet {
        session: usize,
        leg_b: bool,
        rtcp: bool,
        stranger: bool,
        host: u8,
        port: u16,
        garbage: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Allocate),
        2 => Just(Op::Reserve),
        2 => any::<usize>().prop_map(Op::Take),
        1 => any::<usize>().prop_map(Op::ReleaseReady),
        2 => (any::<usize>(), any::<bool>(), any::<bool>(), any::<u8>(), 1000u16..1004)
            .prop_map(|(s, l, r, h, p)| Op::ReadyPacket(s, l, r, h, p)),
        2 => any::<usize>().prop_map(Op::Release),
        3 => (any::<usize>(), any::<bool>(), any::<u8>(), 1000u16..1004)
            .prop_map(|(s, l, h, p)| Op::SetRemote(s, l, h, p)),
        1 => (any::<usize>(), any::<bool>(), any::<bool>()).prop_map(|(s, l, h)| Op::Hold(s, l, h)),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(s, l)| Op::NewSource(s, l)),
        1 => any::<usize>().prop_map(Op::Answered),
        2 => (0u32..120_000).prop_map(Op::Advance),
        8 => (any::<usize>(), any::<bool>(), any::<bool>(), prop::bool::weighted(0.2),
              any::<u8>(), 1000u16..1004, prop::bool::weighted(0.1))
            .prop_map(|(session, leg_b, rtcp, stranger, host, port, garbage)| Op::Packet {
                session, leg_b, rtcp, stranger, host, port, garbage,
            }),
    ]
}

fn leg(b: bool) -> Leg {
    if b {
        Leg::B
    } else {
        Leg::A
    }
}

fn rtp(rtcp: bool, garbage: bool) -> Vec<u8> {
    if garbage {
        return b"\x00\x01garbage".to_vec();
    }
    if rtcp {
        vec![0x80, 200, 0, 1, 1, 2, 3, 4]
    } else {
        let mut p = vec![0x80, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4];
        p.resize(172, 0);
        p
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn no_leak_no_bleed(ops in prop::collection::vec(op(), 1..200), seed in any::<u64>()) {
        // 12 pairs: 6 sessions at most, so exhaustion happens often.
        let range = PortRange::new(40000, 40023).unwrap();
        let mut relay = Relay::new(RelayConfig::new(range), seed);
        let mut live: Vec<Allocation> = Vec::new();
        let mut ready: Vec<Allocation> = Vec::new();
        let mut remotes: HashMap<(SessionId, bool), Remote> = HashMap::new();
        let mut ended: HashSet<SessionId> = HashSet::new();
        let mut timed_out: HashSet<SessionId> = HashSet::new();
        let mut relayed = 0u64;
        let mut dropped = 0u64;
        let t0 = Instant::now();
        let mut now = t0;

        for op in ops {
            match op {
                Op::Allocate => match relay.allocate() {
                    Ok(a) => live.push(a),
                    Err(_) => prop_assert!(live.len() + ready.len() == 6,
                        "refused with {} live, {} ready", live.len(), ready.len()),
                },
                Op::Reserve => match relay.reserve() {
                    Ok(a) => ready.push(a),
                    Err(_) => prop_assert!(live.len() + ready.len() == 6,
                        "not reserved with {} live, {} ready", live.len(), ready.len()),
                },
                Op::Take(i) if !ready.is_empty() => {
                    let a = ready.swap_remove(i % ready.len());
                    relay.take(a.session).unwrap();
                    live.push(a);
                }
                Op::ReleaseReady(i) if !ready.is_empty() => {
                    let a = ready.swap_remove(i % ready.len());
                    prop_assert!(relay.release(a.session).is_ok());
                    ended.insert(a.session);
                }
                Op::ReadyPacket(i, b, rtcp, h, port) if !ready.is_empty() => {
                    let ports = ready[i % ready.len()].ports(leg(b));
                    let local = if rtcp { ports.rtcp() } else { ports.rtp };
                    let mut p = rtp(rtcp, false);
                    let d = relay.handle_packet(now, local, SocketAddr::new(host(h), port), &mut p);
                    prop_assert!(matches!(d, Decision::Drop(_)), "{:?} through a ready session", d);
                    dropped += 1;
                }
                Op::Release(i) if !live.is_empty() => {
                    let a = live.swap_remove(i % live.len());
                    prop_assert!(relay.release(a.session).is_ok());
                    ended.insert(a.session);
                }
                Op::SetRemote(i, b, h, p) if !live.is_empty() => {
                    let s = live[i % live.len()].session;
                    let r = Remote::new(host(h), SocketAddr::new(host(h.wrapping_add(1)), p));
                    relay.set_remote(s, leg(b), r).unwrap();
                    remotes.insert((s, b), r);
                }
                Op::NewSource(i, b) if !live.is_empty() => {
                    relay.new_source(live[i % live.len()].session, leg(b)).unwrap();
                }
                Op::Hold(i, b, on) if !live.is_empty() => {
                    relay.set_hold(now, live[i % live.len()].session, leg(b), on).unwrap();
                }
                Op::Answered(i) if !live.is_empty() => {
                    relay.answered(now, live[i % live.len()].session).unwrap();
                }
                Op::Advance(ms) => {
                    now += Duration::from_millis(u64::from(ms));
                    if relay.poll_timeout().is_some_and(|t| t <= now) {
                        relay.handle_timeout(now);
                    }
                }
                Op::Packet { session, leg_b, rtcp, stranger, host: h, port, garbage }
                    if !live.is_empty() =>
                {
                    let a = live[session % live.len()];
                    let ports = a.ports(leg(leg_b));
                    let local = if rtcp { ports.rtcp() } else { ports.rtp };
                    let src = SocketAddr::new(if stranger { STRANGER } else { host(h) }, port);
                    let mut p = rtp(rtcp, garbage);
                    match relay.handle_packet(now, local, src, &mut p) {
                        Decision::Forward { from, to } => {
                            relayed += 1;
                            prop_assert!(!stranger && !garbage);
                            let other = a.ports(leg(!leg_b));
                            prop_assert_eq!(from, if rtcp { other.rtcp() } else { other.rtp });
                            // The source was allowed by the leg's remote.
                            let r = remotes.get(&(a.session, leg_b)).copied().unwrap_or_default();
                            prop_assert!(r.signalling == Some(src.ip())
                                || r.rtp.map(|x| x.ip()) == Some(src.ip()));
                            prop_assert!(to.ip() != STRANGER);
                        }
                        Decision::Drop(_) => dropped += 1,
                    }
                }
                _ => {}
            }
            while let Some(e) = relay.poll_event() {
                let s = match e {
                    Event::Latched { session, leg: l, source, .. } => {
                        prop_assert!(source.ip() != STRANGER);
                        let r = remotes.get(&(session, l == Leg::B)).copied().unwrap_or_default();
                        prop_assert!(r.signalling == Some(source.ip())
                            || r.rtp.map(|x| x.ip()) == Some(source.ip()));
                        session
                    }
                    Event::NoRtpFrom { session, .. } => session,
                    Event::TimedOut { session, .. } => {
                        prop_assert!(timed_out.insert(session), "timed out twice");
                        // The controller ends the call: BYE both legs, release.
                        if let Some(i) = live.iter().position(|a| a.session == session) {
                            relay.release(live.swap_remove(i).session).unwrap();
                            ended.insert(session);
                        }
                        session
                    }
                };
                prop_assert!(!ended.contains(&s) || matches!(e, Event::TimedOut { .. }),
                    "event for an ended session: {:?}", e);
                prop_assert!(!ready.iter().any(|a| a.session == s), "event for a ready session");
            }
            // Invariants: the port table and the counters agree with the live sessions.
            let stats = *relay.stats();
            prop_assert_eq!(stats.sessions as usize, live.len());
            prop_assert_eq!(stats.ports_in_use as usize, 4 * live.len());
            prop_assert_eq!(stats.ready_sessions as usize, ready.len());
            prop_assert_eq!(relay.free_pairs() + 2 * (live.len() + ready.len()), 12);
            let mut ports = HashSet::new();
            for a in live.iter().chain(&ready) {
                for (l, p) in [(Leg::A, a.a), (Leg::B, a.b)] {
                    prop_assert!(ports.insert(p.rtp));
                    prop_assert_eq!(relay.owner_of(p.rtp), Some((a.session, l)));
                    prop_assert_eq!(relay.owner_of(p.rtcp()), Some((a.session, l)));
                }
            }
            prop_assert_eq!(stats.relayed, relayed);
            prop_assert_eq!(stats.dropped_total(), dropped);
        }
        // Every end path leaves nothing behind.
        for a in live.drain(..).chain(ready.drain(..)) {
            relay.release(a.session).unwrap();
        }
        prop_assert_eq!(relay.stats().ready_sessions, 0);
        prop_assert_eq!(relay.free_pairs(), 12);
        prop_assert_eq!(relay.stats().ports_in_use, 0);
        prop_assert_eq!(relay.sessions().count(), 0);
        for _ in 0..6 {
            prop_assert!(relay.allocate().is_ok());
        }
        prop_assert!(relay.allocate().is_err());
    }
}
