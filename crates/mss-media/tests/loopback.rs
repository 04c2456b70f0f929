//! The relay thread with real UDP sockets on loopback: a call's packets cross it both
//! ways, a third host spraying the relay's ports gets nothing, timeouts arrive as events,
//! and released ports are closed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mss_media::io::{
    Applied, Command, MediaEvent, MediaOptions, MediaRelay, ReceiveMode, Scheduling,
};
use mss_media::{Allocation, DropReason, Event, Leg, PortRange, RelayConfig, Remote, TimeoutCause};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn rtp(seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0x11, 0x22, 0x33, 0x44];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p.resize(172, 0xd5);
    p
}

struct Harness {
    relay: MediaRelay,
    events: mpsc::Receiver<MediaEvent>,
}

impl Harness {
    fn start(first: u16, config: impl FnOnce(&mut RelayConfig), mode: ReceiveMode) -> Harness {
        Harness::start_scheduled(first, config, mode, Scheduling::default())
    }

    fn start_scheduled(
        first: u16,
        config: impl FnOnce(&mut RelayConfig),
        mode: ReceiveMode,
        scheduling: Scheduling,
    ) -> Harness {
        let mut relay = RelayConfig::new(PortRange::new(first, first + 99).unwrap());
        config(&mut relay);
        let mut options = MediaOptions::new(relay, ip("127.0.0.1"), 1);
        options.receive = mode;
        options.scheduling = scheduling;
        let (tx, events) = mpsc::channel();
        let relay = MediaRelay::start(options, move |e| {
            let _ = tx.send(e);
        })
        .unwrap();
        Harness { relay, events }
    }

    fn send(&self, c: Command) {
        self.relay.commands().send(c).unwrap();
    }

    fn next(&self) -> MediaEvent {
        self.events.recv_timeout(Duration::from_secs(5)).unwrap()
    }

    fn allocate(&self) -> Allocation {
        self.send(Command::Allocate { op: 7 });
        match self.next() {
            MediaEvent::Allocated { op: 7, result } => result.unwrap(),
            e => panic!("{e:?}"),
        }
    }
}

fn phone(addr: &str) -> UdpSocket {
    let s = UdpSocket::bind(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    s
}

fn relay_addr(port: u16) -> SocketAddr {
    SocketAddr::new(ip("127.0.0.1"), port)
}

/// Receives until `n` datagrams came or a read times out.
fn receive(s: &UdpSocket, n: usize) -> Vec<(Vec<u8>, SocketAddr)> {
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while got.len() < n {
        match s.recv_from(&mut buf) {
            Ok((len, from)) => got.push((buf[..len].to_vec(), from)),
            Err(_) => break,
        }
    }
    got
}

/// Whether this kernel lets us use io_uring (`kernel.io_uring_disabled` = 0).
fn uring_allowed() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled").is_ok_and(|s| s.trim() == "0")
}

/// Checks that the thread runs `mode` (io_uring only where the kernel allows it).
fn assert_runs(h: &Harness, mode: ReceiveMode) {
    let (running, why) = h.relay.receive();
    if mode == ReceiveMode::Uring && !uring_allowed() {
        assert_eq!(running, ReceiveMode::Batched, "the fallback");
        assert!(why.is_some_and(|w| w.contains("io_uring")), "{why:?}");
    } else {
        assert_eq!((running, why), (mode, None));
    }
}

fn two_way_call(first: u16, mode: ReceiveMode) {
    two_way_call_scheduled(first, mode, Scheduling::default());
}

fn two_way_call_scheduled(first: u16, mode: ReceiveMode, scheduling: Scheduling) {
    let h = Harness::start_scheduled(first, |_| {}, mode, scheduling);
    assert_runs(&h, mode);
    let a = h.allocate();
    let s = a.session;
    // Three hosts on loopback: the caller, the callee and an attacker.
    let pa = phone("127.0.0.2:0");
    let pb = phone("127.0.0.3:0");
    let attacker = phone("127.0.0.4:0");
    h.send(Command::SetRemote {
        session: s,
        leg: Leg::A,
        remote: Remote::new(ip("127.0.0.2"), pa.local_addr().unwrap()),
    });
    h.send(Command::SetRemote {
        session: s,
        leg: Leg::B,
        remote: Remote::new(ip("127.0.0.3"), pb.local_addr().unwrap()),
    });
    h.send(Command::Answered { session: s });
    // The attacker sprays every relay port first, then during the call.
    let rr = [0x80, 201, 0, 1, 1, 2, 3, 4];
    let spray = |round: u16| {
        for port in [a.a.rtp, a.b.rtp] {
            attacker.send_to(&rtp(round), relay_addr(port)).unwrap();
        }
        for port in [a.a.rtcp(), a.b.rtcp()] {
            attacker.send_to(&rr, relay_addr(port)).unwrap();
        }
    };
    for i in 0..25 {
        spray(i);
    }
    std::thread::sleep(Duration::from_millis(50));
    for seq in 0..50u16 {
        pa.send_to(&rtp(seq), relay_addr(a.a.rtp)).unwrap();
        pb.send_to(&rtp(1000 + seq), relay_addr(a.b.rtp)).unwrap();
        spray(seq);
        if seq % 10 == 9 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // RTCP both ways.
    pa.send_to(&rr, relay_addr(a.a.rtcp())).unwrap();
    let at_b = receive(&pb, 50);
    let at_a = receive(&pa, 50);
    assert_eq!(at_b.len(), 50, "A → B");
    assert_eq!(at_a.len(), 50, "B → A");
    for (i, (data, from)) in at_b.iter().enumerate() {
        assert_eq!(data, &rtp(i as u16), "in order, untouched");
        assert_eq!(*from, relay_addr(a.b.rtp), "from B's relay port");
    }
    for (i, (data, from)) in at_a.iter().enumerate() {
        assert_eq!(data, &rtp(1000 + i as u16));
        assert_eq!(*from, relay_addr(a.a.rtp));
    }
    // A's RTCP went to B's SDP port + 1 (nobody listens there: the phones use one socket
    // here); B's RTCP, sent from its one socket, latches B's RTCP port and goes to where
    // A's RTCP came from, from A's RTCP port.
    assert!(receive(&pb, 1).is_empty(), "not on B's RTP socket");
    pb.send_to(&rr, relay_addr(a.b.rtcp())).unwrap();
    let back = receive(&pa, 1);
    assert_eq!(back, [(rr.to_vec(), relay_addr(a.a.rtcp()))]);
    assert!(
        receive(&attacker, 1).is_empty(),
        "the attacker gets nothing"
    );
    // The counters: the attacker's 4 × 75 packets dropped as strangers.
    h.send(Command::Stats { session: s });
    let stats = loop {
        match h.next() {
            MediaEvent::Stats { stats, .. } => break stats.unwrap(),
            MediaEvent::Relay(Event::Latched { source, .. }) => {
                assert_ne!(source.ip(), ip("127.0.0.4"));
            }
            e => panic!("{e:?}"),
        }
    };
    assert_eq!((stats.a.rtp_in, stats.a.rtp_out), (50, 50));
    assert_eq!((stats.b.rtp_in, stats.b.rtp_out), (50, 50));
    assert_eq!((stats.a.rtcp_in, stats.b.rtcp_out), (1, 1));
    assert_eq!((stats.b.rtcp_in, stats.a.rtcp_out), (1, 1));
    assert_eq!(stats.a.dropped + stats.b.dropped, 300);
    let counters = h.relay.counters().snapshot();
    assert_eq!(counters.relay.dropped(DropReason::Stranger), 300);
    assert_eq!(counters.relay.ports_in_use, 4);
    // Release: the ports close, the counters come back.
    h.send(Command::Release { session: s });
    match h.next() {
        MediaEvent::Released { session, stats } => {
            assert_eq!(session, s);
            assert_eq!(stats.unwrap().a.rtp_in, 50);
        }
        e => panic!("{e:?}"),
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while h.relay.counters().snapshot().relay.ports_in_use != 0 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    // The port is free again: anyone may bind it.
    UdpSocket::bind(relay_addr(a.a.rtp)).expect("released port is closed");
    h.relay.stop().unwrap();
}

#[test]
fn packets_cross_both_ways_batched_and_a_sprayer_gets_nothing() {
    two_way_call(47100, ReceiveMode::Batched);
}

#[test]
fn packets_cross_both_ways_plain() {
    two_way_call(47300, ReceiveMode::Plain);
}

#[test]
fn packets_cross_both_ways_uring() {
    two_way_call(47900, ReceiveMode::Uring);
}

/// A released session's ports are bound again by the next session at once (the io_uring
/// receive holding the socket is cancelled before it is closed), many times over.
/// At real-time priority (when this process may: root or `CAP_SYS_NICE`) the io_uring
/// waits coalesce wake-ups over 0.1 ms; every datagram still crosses, in order. Where the
/// class is refused, the refusal is named and the call runs all the same.
#[test]
fn packets_cross_both_ways_uring_at_realtime_priority() {
    let scheduling = Scheduling {
        realtime: Some(10),
        ..Scheduling::default()
    };
    let h = Harness::start_scheduled(49100, |_| {}, ReceiveMode::Uring, scheduling);
    let outcome = h.relay.scheduling().clone();
    h.relay.stop().unwrap();
    match outcome.applied {
        Applied::Realtime(p) => assert_eq!(p, 10),
        _ => assert!(outcome.realtime_refused.is_some(), "{outcome:?}"),
    }
    two_way_call_scheduled(49100, ReceiveMode::Uring, scheduling);
}

#[test]
fn ports_are_reused_at_once_uring() {
    ports_are_reused_at_once(48100, ReceiveMode::Uring);
}

#[test]
fn ports_are_reused_at_once_batched() {
    ports_are_reused_at_once(48300, ReceiveMode::Batched);
}

fn ports_are_reused_at_once(first: u16, mode: ReceiveMode) {
    let h = Harness::start(first, |_| {}, mode);
    assert_runs(&h, mode);
    let pa = phone("127.0.0.2:0");
    let pb = phone("127.0.0.3:0");
    for round in 0..60u16 {
        // The last round's `Latched` may come after its `Released` (events are sent after
        // the round's commands): skip relay events here.
        h.send(Command::Allocate { op: 7 });
        let a = loop {
            match h.next() {
                MediaEvent::Allocated { op: 7, result } => break result.unwrap(),
                MediaEvent::Relay(_) => {}
                e => panic!("{e:?}"),
            }
        };
        for (leg, p, host) in [(Leg::A, &pa, "127.0.0.2"), (Leg::B, &pb, "127.0.0.3")] {
            h.send(Command::SetRemote {
                session: a.session,
                leg,
                remote: Remote::new(ip(host), p.local_addr().unwrap()),
            });
        }
        // Commands run in order: once the counters come back, the remotes are set.
        h.send(Command::Stats { session: a.session });
        while !matches!(h.next(), MediaEvent::Stats { .. }) {}
        pa.send_to(&rtp(round), relay_addr(a.a.rtp)).unwrap();
        assert_eq!(receive(&pb, 1), [(rtp(round), relay_addr(a.b.rtp))]);
        h.send(Command::Release { session: a.session });
        loop {
            match h.next() {
                MediaEvent::Released { .. } => break,
                MediaEvent::Relay(_) => {}
                e => panic!("{e:?}"),
            }
        }
    }
    // The counters are published at the end of the thread's turn.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut c = h.relay.counters().snapshot();
    while c.relay.relayed < 60 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
        c = h.relay.counters().snapshot();
    }
    assert_eq!(
        (c.relay.relayed, c.send_errors, c.receive_errors),
        (60, 0, 0)
    );
}

#[test]
fn silence_times_out_as_events_uring() {
    silence_times_out(47500, ReceiveMode::Uring);
}

#[test]
fn silence_times_out_as_events() {
    silence_times_out(47600, ReceiveMode::Batched);
}

fn silence_times_out(first: u16, mode: ReceiveMode) {
    let h = Harness::start(
        first,
        |c| {
            c.rtp_timeout = Duration::from_millis(300);
            c.no_rtp_after = Duration::from_millis(100);
        },
        mode,
    );
    let a = h.allocate();
    let started = Instant::now();
    h.send(Command::Answered { session: a.session });
    let mut got = Vec::new();
    while got.len() < 3 {
        match h.next() {
            MediaEvent::Relay(e) => got.push((e, started.elapsed())),
            e => panic!("{e:?}"),
        }
    }
    assert_eq!(
        got.iter().map(|(e, _)| *e).collect::<Vec<_>>(),
        [
            Event::NoRtpFrom {
                session: a.session,
                leg: Leg::A
            },
            Event::NoRtpFrom {
                session: a.session,
                leg: Leg::B
            },
            Event::TimedOut {
                session: a.session,
                cause: TimeoutCause::NoRtp
            },
        ]
    );
    assert!(got[2].1 >= Duration::from_millis(300), "{:?}", got[2].1);
    assert!(got[2].1 < Duration::from_secs(3), "{:?}", got[2].1);
}

#[test]
fn exhaustion_is_an_answer() {
    let mut relay = RelayConfig::new(PortRange::new(47700, 47703).unwrap());
    relay.rtp_timeout = Duration::from_secs(60);
    let (tx, events) = mpsc::channel();
    let media = MediaRelay::start(MediaOptions::new(relay, ip("127.0.0.1"), 3), move |e| {
        let _ = tx.send(e);
    })
    .unwrap();
    let c = media.commands();
    c.send(Command::Allocate { op: 1 }).unwrap();
    c.send(Command::Allocate { op: 2 }).unwrap();
    let mut results = Vec::new();
    for _ in 0..2 {
        match events.recv_timeout(Duration::from_secs(5)).unwrap() {
            MediaEvent::Allocated { op, result } => results.push((op, result.is_ok())),
            e => panic!("{e:?}"),
        }
    }
    assert_eq!(results, [(1, true), (2, false)]);
    drop(media); // stops the thread
    assert!(c.send(Command::Allocate { op: 3 }).is_err());
}

/// The next `Ready` (other events skipped).
fn next_ready(events: &mpsc::Receiver<MediaEvent>) -> Allocation {
    loop {
        match events.recv_timeout(Duration::from_secs(5)).unwrap() {
            MediaEvent::Ready(a) => return a,
            MediaEvent::Relay(_) => continue,
            e => panic!("{e:?}"),
        }
    }
}

#[test]
fn ready_sessions_are_bound_ahead_and_refilled_after_a_take() {
    // 8 pairs: 4 sessions, 2 kept ready.
    let relay = RelayConfig::new(PortRange::new(46600, 46615).unwrap());
    let mut options = MediaOptions::new(relay, ip("127.0.0.1"), 5);
    options.ready = 2;
    let (tx, events) = mpsc::channel();
    let media = MediaRelay::start(options, move |e| {
        let _ = tx.send(e);
    })
    .unwrap();
    let c = media.commands();
    let first = [next_ready(&events), next_ready(&events)];
    // Bound already: nobody else can have the ports.
    for a in &first {
        for port in [a.a.rtp, a.a.rtcp(), a.b.rtp, a.b.rtcp()] {
            assert!(
                UdpSocket::bind(("127.0.0.1", port)).is_err(),
                "{port} bound"
            );
        }
    }
    // The counters are published right after the `Ready` events: wait for them.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let r = media.counters().snapshot().relay;
        if (r.ready_sessions, r.ports_in_use) == (2, 0) {
            break;
        }
        assert!(Instant::now() < deadline, "{r:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    // A call takes one: the thread binds another in its place, and no more.
    c.send(Command::Taken {
        session: first[0].session,
    })
    .unwrap();
    let third = next_ready(&events);
    assert!(!first.iter().any(|a| a.session == third.session));
    // Two taken more: the fourth is the last the range holds; then none is left to bind.
    c.send(Command::Taken {
        session: first[1].session,
    })
    .unwrap();
    let fourth = next_ready(&events);
    c.send(Command::Taken {
        session: third.session,
    })
    .unwrap();
    c.send(Command::Allocate { op: 9 }).unwrap();
    match events.recv_timeout(Duration::from_secs(5)).unwrap() {
        MediaEvent::Allocated { op: 9, result } => assert!(result.is_err(), "{result:?}"),
        e => panic!("{e:?}"),
    }
    // A release frees ports: the stock is filled again from them.
    c.send(Command::Release {
        session: first[0].session,
    })
    .unwrap();
    match events.recv_timeout(Duration::from_secs(5)).unwrap() {
        MediaEvent::Released { session, .. } => assert_eq!(session, first[0].session),
        e => panic!("{e:?}"),
    }
    let fifth = next_ready(&events);
    assert_ne!(fifth.session, fourth.session);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let r = media.counters().snapshot().relay;
        if (r.ready_sessions, r.sessions, r.ports_in_use) == (2, 2, 8) {
            break;
        }
        assert!(Instant::now() < deadline, "{r:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    media.stop().unwrap();
}
