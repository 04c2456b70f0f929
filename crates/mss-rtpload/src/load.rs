//! One load run: N calls, each two endpoints (A on one loopback host, B on another) that
//! send a G.711-sized packet every 20 ms to where the target says, and receive the other
//! side's packets; the far side's checks; the relay's CPU time and memory around it.
//!
//! Pacing: packet `k` of endpoint `e` is due at `t0 + k × interval + phase(e)`, absolute
//! deadlines (a late packet does not delay the next ones), the phases spread evenly over
//! the interval as independent phones' would be (B half an interval after its A). The
//! sender sleeps until the next deadline and sends what is due; the send moment is
//! stamped in each packet, so the sender's own lateness is not counted as transit. The
//! receiver is one thread waiting in epoll on every endpoint's socket.
//!
//! Arrival: the moment the kernel queued the datagram on the far endpoint's socket
//! (`SO_TIMESTAMPNS`), as a phone's jitter buffer would see it, so that the moments the
//! tool's own receiving thread waited for a CPU are not counted as the relay's. On
//! loopback that moment is inside the relay's (or the direct sender's) `send` call. The
//! moment the receiving thread read it is kept beside it (`transit_read`). Both are
//! `CLOCK_REALTIME`, the clock of the kernel's stamps and of the send stamp.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use serde::{Deserialize, Serialize};

use crate::accounting::{Histogram, StreamCheck, Totals, TransitSummary};
use crate::procfs;
use crate::rtp::{self, StreamHeader};
use crate::stamp;
use crate::target::{Target, TargetError, TargetKind};

/// What to send.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Calls (two streams each).
    pub calls: usize,
    /// How long each endpoint sends.
    pub duration: Duration,
    /// Packet interval per endpoint (20 ms: G.711 at 50 packets/s).
    pub interval: Duration,
    /// The host of every A endpoint.
    pub a_host: IpAddr,
    /// The host of every B endpoint.
    pub b_host: IpAddr,
    /// The longest wait for stragglers after the last packet was sent.
    pub drain: Duration,
    /// `SO_RCVBUF` asked for on each endpoint socket.
    pub recv_buffer: usize,
}

impl LoadConfig {
    /// `calls` calls for `duration`, 20 ms, A on 127.0.0.2, B on 127.0.0.3.
    pub fn new(calls: usize, duration: Duration) -> LoadConfig {
        LoadConfig {
            calls,
            duration,
            interval: Duration::from_millis(20),
            a_host: IpAddr::from([127, 0, 0, 2]),
            b_host: IpAddr::from([127, 0, 0, 3]),
            drain: Duration::from_secs(1),
            recv_buffer: 256 * 1024,
        }
    }

    /// Packets each endpoint sends.
    pub fn packets_per_stream(&self) -> u32 {
        let n = self.duration.as_nanos() / self.interval.as_nanos().max(1);
        u32::try_from(n).unwrap_or(u32::MAX).max(1)
    }
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The target failed.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// A socket of the tool.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
    /// The receiving thread panicked.
    #[error("the receiving thread stopped unexpectedly")]
    Receiver,
}

/// The relay's resources during the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RelayUsage {
    /// CPU time from the first packet sent to the last one received (or the drain limit), ms.
    pub cpu_ms: f64,
    /// Time its threads were runnable but waited for a CPU in the same window, ms: high
    /// when other work on the machine held the cores (transit and jitter suffer then).
    pub wait_ms: f64,
    /// Times its threads went to sleep (waiting for packets or timers) in the window, per
    /// packet that arrived: about 1 when it wakes up for every packet.
    pub sleeps_per_packet: f64,
    /// Times its threads were preempted in the window, per packet.
    pub preemptions_per_packet: f64,
    /// CPU time ÷ packets that arrived through it, µs.
    pub cpu_us_per_packet: f64,
    /// That ÷ the wall time of the same window: 1.0 is one core busy.
    pub core_share: f64,
    /// Resident memory before the calls, kB (mss: this process before the relay thread
    /// started; rtpengine: the daemon after its start).
    pub rss_idle_kb: u64,
    /// Resident memory with every call set up, before any packet, kB.
    pub rss_calls_kb: u64,
    /// Resident memory after the packets, kB.
    pub rss_end_kb: u64,
    /// (max(rss_calls, rss_end) − rss_idle) ÷ calls, kB.
    pub kb_per_call: f64,
    /// Packets the relay counted as forwarded, when it tells (mss).
    pub relay_counted: Option<u64>,
}

/// The result of one run against one target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    /// `direct`, `mss` or `rtpengine`.
    pub target: String,
    /// Calls.
    pub calls: usize,
    /// Packets each endpoint sent (planned).
    pub packets_per_stream: u32,
    /// Planned packets per second, both directions of every call.
    pub planned_pps: f64,
    /// Packets per second actually sent (sent ÷ the send window).
    pub sent_pps: f64,
    /// Time to set up the calls, ms.
    pub setup_ms: f64,
    /// The far side's counts.
    pub totals: Totals,
    /// The mean of the streams' RFC 3550 jitter, ms.
    pub jitter_mean_ms: f64,
    /// Send stamp to arrival at the far socket (the kernel's receive stamp).
    pub transit: TransitSummary,
    /// Send stamp to the moment the tool's receiving thread read the packet: the transit
    /// plus that thread's own delays (how the tool measured before kernel stamps).
    #[serde(default)]
    pub transit_read: TransitSummary,
    /// Packets that came without a kernel receive stamp (their read moment was used).
    #[serde(default)]
    pub unstamped: u64,
    /// How late the sender sent after each packet's deadline.
    pub send_lateness: TransitSummary,
    /// Sends the kernel refused.
    pub send_errors: u64,
    /// Packets that arrived at another endpoint than their stream's far side.
    pub misdelivered: u64,
    /// Datagrams that were not the tool's packets.
    pub foreign: u64,
    /// Failed reads other than "nothing to read" (ICMP errors reported on a socket).
    pub receive_errors: u64,
    /// The relay's CPU and memory (`None`: direct).
    pub relay: Option<RelayUsage>,
    /// The load tool's own CPU time (sending, receiving, checking) ÷ the wall time of the
    /// window: what it takes from the machine beside the relay.
    pub tool_cpu_share: Option<f64>,
    /// The 1-minute load average before and after the run.
    pub loadavg: (f64, f64),
}

/// Endpoint `e`: `2i` is call i's A, `2i + 1` its B. Stream `e` is what endpoint `e`
/// sends; it arrives at endpoint `e ^ 1`.
struct Endpoints {
    sockets: Vec<UdpSocket>,
}

impl Endpoints {
    fn bind(cfg: &LoadConfig) -> Result<Endpoints, LoadError> {
        let mut sockets = Vec::with_capacity(2 * cfg.calls);
        for e in 0..2 * cfg.calls {
            let host = if e % 2 == 0 { cfg.a_host } else { cfg.b_host };
            let s = UdpSocket::bind(SocketAddr::new(host, 0)).map_err(|source| LoadError::Io {
                context: format!("binding an endpoint on {host}"),
                source,
            })?;
            let _ = socket2::SockRef::from(&s).set_recv_buffer_size(cfg.recv_buffer);
            stamp::enable(&s).map_err(|source| LoadError::Io {
                context: "asking for receive stamps (SO_TIMESTAMPNS)".into(),
                source,
            })?;
            s.set_nonblocking(true).map_err(|source| LoadError::Io {
                context: "endpoint socket".into(),
                source,
            })?;
            sockets.push(s);
        }
        Ok(Endpoints { sockets })
    }

    fn addr(&self, e: usize) -> Result<SocketAddr, LoadError> {
        self.sockets[e]
            .local_addr()
            .map_err(|source| LoadError::Io {
                context: "endpoint address".into(),
                source,
            })
    }
}

/// What the receiving thread hands back.
struct Far {
    checks: Vec<StreamCheck>,
    transit: Histogram,
    transit_read: Histogram,
    unstamped: u64,
    misdelivered: u64,
    foreign: u64,
    receive_errors: u64,
}

/// Failed reads in a row after which a socket is left until its next readiness event.
const MAX_FAILED_READS: u32 = 8;

fn now_ns(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// `CLOCK_REALTIME` in ns: the clock of the send stamp and the kernel's receive stamps.
fn wall_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Every endpoint's phase within the interval (ns), in the order they send: call `i`'s A
/// at `i × interval / calls`, its B half an interval later.
fn schedule(calls: usize, interval: u64) -> Vec<(u64, usize)> {
    let calls = calls.max(1) as u64;
    let mut s: Vec<(u64, usize)> = (0..2 * calls as usize)
        .map(|e| {
            let call = (e / 2) as u64;
            let phase = call * interval / calls + (e as u64 % 2) * interval / 2;
            (phase % interval, e)
        })
        .collect();
    s.sort_unstable();
    s
}

/// When packet `k` of an endpoint with `phase` is due: an absolute deadline from the start,
/// so that a late send never shifts the packets after it (no drift).
fn due_ns(t0: u64, interval: u64, k: u32, phase: u64) -> u64 {
    t0 + u64::from(k) * interval + phase
}

/// Receives on every endpoint until `stop`; counts arrivals into `arrived`.
fn receive(
    sockets: Vec<UdpSocket>,
    mut far: Far,
    stop: Arc<AtomicBool>,
    arrived: Arc<AtomicU64>,
) -> std::io::Result<Far> {
    let poll = Poll::new()?;
    let mut sockets: Vec<mio::net::UdpSocket> = sockets
        .into_iter()
        .map(mio::net::UdpSocket::from_std)
        .collect();
    for (e, s) in sockets.iter_mut().enumerate() {
        poll.registry().register(s, Token(e), Interest::READABLE)?;
    }
    let mut poll = poll;
    let mut events = Events::with_capacity(1024);
    let mut buf = [0u8; 2048];
    let mut control = stamp::Control::new();
    let streams = far.checks.len();
    while !stop.load(Ordering::Relaxed) {
        if let Err(e) = poll.poll(&mut events, Some(Duration::from_millis(20))) {
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let mut n_arrived = 0;
        for ev in events.iter() {
            let Token(e) = ev.token();
            let Some(socket) = sockets.get(e) else {
                continue;
            };
            // Edge-triggered: read until the socket is empty. An error other than
            // `WouldBlock` (a pending ICMP error) is consumed by the read that reports it;
            // a socket that keeps failing is left after a few.
            let mut failures = 0;
            loop {
                let (n, stamped) = match stamp::recv(socket, &mut buf, &mut control) {
                    Ok(r) => r,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(_) if failures < MAX_FAILED_READS => {
                        failures += 1;
                        far.receive_errors += 1;
                        continue;
                    }
                    Err(_) => break,
                };
                let read = wall_ns();
                let arrival = stamped.unwrap_or_else(|| {
                    far.unstamped += 1;
                    read
                });
                match rtp::parse(&buf[..n]) {
                    Some(r) if (r.stream as usize) < streams => {
                        if r.stream as usize != e ^ 1 {
                            far.misdelivered += 1;
                            continue;
                        }
                        far.checks[r.stream as usize].on_packet(&r, arrival);
                        far.transit.record(arrival.saturating_sub(r.sent_ns));
                        far.transit_read.record(read.saturating_sub(r.sent_ns));
                        n_arrived += 1;
                    }
                    _ => far.foreign += 1,
                }
            }
        }
        arrived.fetch_add(n_arrived, Ordering::Relaxed);
    }
    Ok(far)
}

/// Runs `cfg`'s load through `kind` and reports.
pub fn run(kind: &TargetKind, cfg: &LoadConfig) -> Result<RunReport, LoadError> {
    let load_before = procfs::machine_load().0;
    let packets = cfg.packets_per_stream();
    let endpoints = Endpoints::bind(cfg)?;
    let streams = 2 * cfg.calls;
    // Everything the far side needs is allocated before the relay starts, so that the
    // mss relay's memory (this process) is measured without it.
    let far = Far {
        checks: (0..streams as u32)
            .map(|s| StreamCheck::new(StreamHeader::for_stream(s), packets))
            .collect(),
        transit: Histogram::new(),
        transit_read: Histogram::new(),
        unstamped: 0,
        misdelivered: 0,
        foreign: 0,
        receive_errors: 0,
    };
    let mut lateness = Histogram::new();
    let headers: Vec<StreamHeader> = (0..streams as u32).map(StreamHeader::for_stream).collect();
    let mut sent = vec![0u64; streams];

    let rss_before_start = procfs::rss_kb("self").unwrap_or(0);
    let mut target = Target::start(kind)?;
    let rss_idle = match kind {
        TargetKind::Mss { .. } => rss_before_start,
        _ => target.rss_kb().unwrap_or(0),
    };
    let setup_started = Instant::now();
    let mut routes = Vec::with_capacity(cfg.calls);
    for i in 0..cfg.calls {
        let r = target.add_call(endpoints.addr(2 * i)?, endpoints.addr(2 * i + 1)?);
        match r {
            Ok(r) => routes.push(r),
            Err(e) => {
                let _ = target.stop();
                return Err(e.into());
            }
        }
    }
    let setup_ms = setup_started.elapsed().as_secs_f64() * 1e3;
    let destinations: Vec<SocketAddr> = routes.iter().flat_map(|r| [r.a_to, r.b_to]).collect();
    let rss_calls = target.rss_kb().unwrap_or(0);

    let epoch = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let arrived = Arc::new(AtomicU64::new(0));
    let receiving: Vec<UdpSocket> = endpoints
        .sockets
        .iter()
        .map(UdpSocket::try_clone)
        .collect::<Result<_, _>>()
        .map_err(|source| LoadError::Io {
            context: "cloning an endpoint socket".into(),
            source,
        })?;
    let receiver = {
        let (stop, arrived) = (stop.clone(), arrived.clone());
        std::thread::Builder::new()
            .name("rtpload-rx".into())
            .spawn(move || receive(receiving, far, stop, arrived))
            .map_err(|source| LoadError::Io {
                context: "starting the receiving thread".into(),
                source,
            })?
    };

    let interval = cfg.interval.as_nanos() as u64;
    let schedule = schedule(cfg.calls, interval);

    let cpu0 = target.sched();
    let own0 = procfs::process_sched(std::process::id());
    let window = Instant::now();
    let t0 = now_ns(epoch) + 20_000_000;
    let mut send_errors = 0u64;
    let mut buf = rtp::new_packet();
    for k in 0..packets {
        for &(phase, e) in &schedule {
            let due = due_ns(t0, interval, k, phase);
            let now = now_ns(epoch);
            if due > now {
                std::thread::sleep(Duration::from_nanos(due - now));
            }
            rtp::write_packet(&mut buf, e as u32, &headers[e], k);
            let at = now_ns(epoch);
            rtp::stamp(&mut buf, wall_ns());
            lateness.record(at.saturating_sub(due));
            match endpoints.sockets[e].send_to(&buf, destinations[e]) {
                Ok(_) => sent[e] += 1,
                Err(_) => send_errors += 1,
            }
        }
    }
    let send_window = now_ns(epoch).saturating_sub(t0) as f64 / 1e9;
    let total_sent: u64 = sent.iter().sum();
    let drain_until = Instant::now() + cfg.drain;
    while arrived.load(Ordering::Relaxed) < total_sent && Instant::now() < drain_until {
        std::thread::sleep(Duration::from_millis(5));
    }
    // The mss relay publishes its counters at the end of its round, a moment after its
    // last send may have arrived: give it that moment (200 ms at most).
    let arrived_now = arrived.load(Ordering::Relaxed);
    let counted_until = Instant::now() + Duration::from_millis(200);
    while target.relayed().is_some_and(|r| r < arrived_now) && Instant::now() < counted_until {
        std::thread::sleep(Duration::from_millis(1));
    }
    let cpu1 = target.sched();
    let own1 = procfs::process_sched(std::process::id());
    let wall = window.elapsed().as_secs_f64();
    let rss_end = target.rss_kb().unwrap_or(0);
    let relay_counted = target.relayed();
    stop.store(true, Ordering::Relaxed);
    let far = receiver
        .join()
        .map_err(|_| LoadError::Receiver)?
        .map_err(|source| LoadError::Io {
            context: "receiving".into(),
            source,
        })?;
    let is_relay = !matches!(kind, TargetKind::Direct);
    // The tool's own CPU: this process, less the relay thread when it runs in it.
    let tool_cpu_share = match (own0, own1) {
        (Some(a), Some(b)) => {
            let mut ns = b.since(a).cpu_ns;
            if let (TargetKind::Mss { .. }, Some(r0), Some(r1)) = (kind, cpu0, cpu1) {
                ns = ns.saturating_sub(r1.since(r0).cpu_ns);
            }
            Some(ns as f64 / 1e9 / wall.max(1e-9))
        }
        _ => None,
    };
    target.stop()?;

    let mut totals = Totals::default();
    for (check, &n) in far.checks.iter().zip(&sent) {
        check.add_to(n, &mut totals);
    }
    let relay = match (is_relay, cpu0, cpu1) {
        (true, Some(a), Some(b)) => {
            let used = b.since(a);
            let cpu = used.cpu_ns as f64;
            Some(RelayUsage {
                cpu_ms: cpu / 1e6,
                wait_ms: used.wait_ns as f64 / 1e6,
                sleeps_per_packet: used.voluntary_switches as f64 / totals.received.max(1) as f64,
                preemptions_per_packet: used.involuntary_switches as f64
                    / totals.received.max(1) as f64,
                cpu_us_per_packet: cpu / 1e3 / totals.received.max(1) as f64,
                core_share: cpu / 1e9 / wall.max(1e-9),
                rss_idle_kb: rss_idle,
                rss_calls_kb: rss_calls,
                rss_end_kb: rss_end,
                kb_per_call: rss_calls.max(rss_end).saturating_sub(rss_idle) as f64
                    / cfg.calls.max(1) as f64,
                relay_counted,
            })
        }
        _ => None,
    };
    Ok(RunReport {
        target: kind.name().into(),
        calls: cfg.calls,
        packets_per_stream: packets,
        planned_pps: streams as f64 * 1e9 / interval as f64,
        sent_pps: total_sent as f64 / send_window.max(1e-9),
        setup_ms,
        jitter_mean_ms: totals.jitter_mean_ms(),
        totals,
        transit: far.transit.summary(),
        transit_read: far.transit_read.summary(),
        unstamped: far.unstamped,
        send_lateness: lateness.summary(),
        send_errors,
        misdelivered: far.misdelivered,
        foreign: far.foreign,
        receive_errors: far.receive_errors,
        relay,
        tool_cpu_share,
        loadavg: (load_before, procfs::machine_load().0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn phases_spread_over_the_interval_b_half_an_interval_after_a() {
        let s = schedule(4, 20 * MS);
        assert_eq!(s.len(), 8);
        let phase = |e: usize| s.iter().find(|&&(_, x)| x == e).unwrap().0;
        assert_eq!(
            [phase(0), phase(2), phase(4), phase(6)],
            [0, 5 * MS, 10 * MS, 15 * MS]
        );
        for call in 0..4 {
            assert_eq!(phase(2 * call + 1), (phase(2 * call) + 10 * MS) % (20 * MS));
        }
        assert!(s.windows(2).all(|w| w[0].0 <= w[1].0), "sorted by phase");
        assert!(s.iter().all(|&(p, _)| p < 20 * MS));
    }

    #[test]
    fn deadlines_do_not_drift() {
        // packet 1,000,000 is due exactly a million intervals after packet 0
        let t0 = 123_456;
        let d0 = due_ns(t0, 20 * MS, 0, 7);
        let d = due_ns(t0, 20 * MS, 1_000_000, 7);
        assert_eq!(d - d0, 1_000_000 * 20 * MS);
    }

    #[test]
    fn packets_per_stream_follow_the_duration() {
        let c = LoadConfig::new(10, Duration::from_secs(10));
        assert_eq!(c.packets_per_stream(), 500);
        let c = LoadConfig::new(10, Duration::from_millis(1));
        assert_eq!(c.packets_per_stream(), 1);
    }
}
