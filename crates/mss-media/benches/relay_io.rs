//! Plain `recv_from` against `recvmmsg` in the relay thread, on loopback, bounded.
//!
//! `cargo bench -p mss-media --bench relay_io` (options after `--`: `--calls N`,
//! `--rounds N`, `--interval-us N`, `--burst N`, `--modes plain,batched,uring`,
//! `--sched slice|kernel|fifo`).
//!
//! N calls are set up through the relay thread as the call service would; a caller socket
//! (127.0.0.2) and a callee socket (127.0.0.3) stand for every A and every B leg. Each
//! round, every leg of every call sends `burst` G.711-sized packets (172 bytes) back to
//! back to its relay port (1: what a phone sends; more: a queue for `recvmmsg` to drain); rounds follow each other every `interval` µs, `rounds` times. Two threads
//! count what arrives. The figure that compares the modes is the relay thread's CPU time
//! (from `/proc/self/task/<tid>/schedstat`, which the other threads' load does not skew)
//! per relayed packet. Every run stops by itself: `rounds` rounds, then at most 2 s of
//! waiting for stragglers, 60 s at most in all per mode.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use mss_media::io::{Command, MediaEvent, MediaOptions, MediaRelay, ReceiveMode, Scheduling};
use mss_media::{Leg, PortRange, RelayConfig, Remote};

struct Args {
    calls: usize,
    rounds: usize,
    interval: Duration,
    burst: usize,
    modes: Vec<ReceiveMode>,
    /// No remotes set: every packet is dropped as a stranger's (the receive path alone).
    drop: bool,
    /// `--sched slice|kernel|fifo`: the relay's default short slice, the kernel's default
    /// slice, or SCHED_FIFO (when permitted).
    scheduling: Scheduling,
}

fn args() -> Args {
    let mut a = Args {
        calls: 100,
        rounds: 500,
        interval: Duration::from_micros(4000),
        burst: 1,
        modes: vec![ReceiveMode::Plain, ReceiveMode::Batched],
        drop: false,
        scheduling: Scheduling::default(),
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let value = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--calls" => a.calls = value.parse().expect("--calls N"),
            "--rounds" => a.rounds = value.parse().expect("--rounds N"),
            "--interval-us" => {
                a.interval = Duration::from_micros(value.parse().expect("--interval-us N"))
            }
            "--burst" => a.burst = value.parse().expect("--burst N"),
            "--drop" => {
                a.drop = true;
                i += 1;
                continue;
            }
            "--sched" => {
                a.scheduling = match value.as_str() {
                    "slice" => Scheduling::default(),
                    "kernel" => Scheduling::KERNEL_DEFAULT,
                    "fifo" => Scheduling {
                        realtime: Some(10),
                        ..Scheduling::default()
                    },
                    _ => panic!("--sched slice|kernel|fifo"),
                }
            }
            "--modes" => {
                a.modes = value
                    .split(',')
                    .map(|m| match m {
                        "plain" => ReceiveMode::Plain,
                        "batched" => ReceiveMode::Batched,
                        "uring" => ReceiveMode::Uring,
                        _ => panic!("--modes plain,batched,uring"),
                    })
                    .collect()
            }
            _ => {
                i += 1; // `--bench` and other cargo flags
                continue;
            }
        }
        i += 2;
    }
    a.calls = a.calls.clamp(1, 2000);
    a.rounds = a.rounds.clamp(1, 100_000);
    a.burst = a.burst.clamp(1, 64);
    a
}

/// CPU time of the thread named `name` in this process, in ns.
fn thread_cpu(name: &str) -> Option<u64> {
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim() == name {
            let s = std::fs::read_to_string(path.join("schedstat")).ok()?;
            return s.split_whitespace().next()?.parse().ok();
        }
    }
    None
}

fn packet(seq: u16) -> [u8; 172] {
    let mut p = [0xd5u8; 172];
    p[..12].copy_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]);
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p
}

fn counter(
    socket: UdpSocket,
    stop: Arc<AtomicBool>,
) -> (Arc<AtomicU64>, std::thread::JoinHandle<()>) {
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let h = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            if socket.recv_from(&mut buf).is_ok() {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    (count, h)
}

fn run(mode: ReceiveMode, a: &Args) {
    let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
    let relay = RelayConfig::new(PortRange::new(48000, 48000 + 4 * a.calls as u16 + 200).unwrap());
    let mut options = MediaOptions::new(relay, ip("127.0.0.1"), 42);
    options.receive = mode;
    options.scheduling = a.scheduling;
    let (tx, events) = mpsc::channel();
    let media = MediaRelay::start(options, move |e| {
        let _ = tx.send(e);
    })
    .unwrap();
    let scheduled = media.scheduling().clone();
    let running = media.receive().0;
    let commands = media.commands();
    let caller = UdpSocket::bind("127.0.0.2:0").unwrap();
    let callee = UdpSocket::bind("127.0.0.3:0").unwrap();
    let mut targets = Vec::new();
    for op in 0..a.calls as u64 {
        commands.send(Command::Allocate { op }).unwrap();
        let alloc = match events.recv_timeout(Duration::from_secs(5)).unwrap() {
            MediaEvent::Allocated { result, .. } => result.unwrap(),
            e => panic!("{e:?}"),
        };
        let legs = [
            (Leg::A, &caller, "127.0.0.2"),
            (Leg::B, &callee, "127.0.0.3"),
        ];
        for (leg, s, host) in legs.into_iter().filter(|_| !a.drop) {
            let remote = Remote::new(ip(host), s.local_addr().unwrap());
            commands
                .send(Command::SetRemote {
                    session: alloc.session,
                    leg,
                    remote,
                })
                .unwrap();
        }
        commands
            .send(Command::Answered {
                session: alloc.session,
            })
            .unwrap();
        let relay_addr = |port| SocketAddr::new(ip("127.0.0.1"), port);
        targets.push((relay_addr(alloc.a.rtp), relay_addr(alloc.b.rtp)));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (at_caller, h1) = counter(caller.try_clone().unwrap(), stop.clone());
    let (at_callee, h2) = counter(callee.try_clone().unwrap(), stop.clone());
    std::thread::sleep(Duration::from_millis(100));

    let cpu0 = thread_cpu("mss-media").unwrap_or(0);
    let relayed0 = media.counters().snapshot().relay.relayed;
    let started = Instant::now();
    let limit = started + Duration::from_secs(60);
    let mut sent = 0u64;
    let mut next = started;
    for round in 0..a.rounds {
        // A burst goes back to back to one port (queued there when the relay reads it).
        for (to_a, to_b) in &targets {
            for b in 0..a.burst {
                let p = packet((round * a.burst + b) as u16);
                sent += u64::from(caller.send_to(&p, to_a).is_ok());
            }
            for b in 0..a.burst {
                let p = packet((round * a.burst + b) as u16);
                sent += u64::from(callee.send_to(&p, to_b).is_ok());
            }
        }
        next += a.interval;
        let now = Instant::now();
        if now >= limit {
            break;
        }
        if next > now {
            std::thread::sleep(next - now);
        }
    }
    let sending = started.elapsed();
    let wait_until = Instant::now() + Duration::from_secs(2);
    let done = || {
        let s = media.counters().snapshot().relay;
        let arrived = at_caller.load(Ordering::Relaxed) + at_callee.load(Ordering::Relaxed);
        (a.drop && s.relayed + s.dropped_total() >= sent) || arrived >= sent
    };
    while !done() && Instant::now() < wait_until {
        std::thread::sleep(Duration::from_millis(10));
    }
    let cpu = thread_cpu("mss-media").unwrap_or(0).saturating_sub(cpu0);
    let snap = media.counters().snapshot();
    let relayed = snap.relay.relayed - relayed0;
    let handled = relayed + snap.relay.dropped_total();
    let received = at_caller.load(Ordering::Relaxed) + at_callee.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    h1.join().unwrap();
    h2.join().unwrap();
    media.stop().unwrap();
    let pps = sent as f64 / sending.as_secs_f64();
    println!(
        "{:<8} [{}] calls {:>4} burst {:>2}{}: sent {:>8} ({:>7.0}/s) relayed {:>8} (send errors {}) received {:>8} ({:.2}% short) | relay thread CPU {:>6.0} ms = {:>5.2} µs/packet handled ({:.0}% of a core)",
        match running {
            ReceiveMode::Plain => "plain",
            ReceiveMode::Batched => "batched",
            ReceiveMode::Uring => "uring",
        },
        scheduled.applied,
        a.calls,
        a.burst,
        if a.drop { " (all dropped)" } else { "" },
        sent,
        pps,
        relayed,
        snap.send_errors,
        received,
        100.0 * (relayed.saturating_sub(received)) as f64 / relayed.max(1) as f64,
        cpu as f64 / 1e6,
        cpu as f64 / 1e3 / handled.max(1) as f64,
        100.0 * cpu as f64 / 1e9 / sending.as_secs_f64(),
    );
}

fn main() {
    let a = args();
    for &mode in &a.modes {
        run(mode, &a);
    }
}
