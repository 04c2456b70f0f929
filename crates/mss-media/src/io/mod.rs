//! The relay's own thread: it owns the UDP sockets of the allocated ports and one
//! [`Relay`], so both legs of every session are served on it and no packet crosses a
//! thread. The call service talks to it through [`Commands`] (a channel and a wake-up)
//! and hears [`MediaEvent`]s through the callback given to [`MediaRelay::start`].
//!
//! The loop with io_uring (the default, [`ReceiveMode::Uring`], `uring.rs`): one
//! `io_uring_enter` per round submits the sends of the round and waits for datagrams
//! (each socket has a multishot receive armed), a command or the relay's next deadline;
//! each datagram goes to [`Relay::handle_packet`] and is sent from the buffer it arrived
//! in; then the commands, the timers and the events.
//!
//! The loop with epoll (where io_uring is unavailable, or asked for): wait in `epoll`
//! (mio) until a socket is readable, a command came or the relay's next deadline; read
//! each readable socket (`recvmmsg` batches or plain `recv_from`) up to a budget per
//! socket per round, so that a flood at one port costs the other sessions a round's
//! delay at most and never their packets; pass each datagram to [`Relay::handle_packet`]
//! and `send_to` where it says; then the commands, the timers and the events. The clock
//! is read once per round in both.
//!
//! The thread asks the kernel for a short time slice ([`Scheduling`], `sched.rs`) so that
//! it gets a CPU soon after a packet arrives.
//!
//! Ready sessions: with [`MediaOptions::ready`] above zero the thread keeps that many
//! sessions allocated and their sockets bound ahead of the calls ([`Relay::reserve`]) and
//! hands each to the call service as [`MediaEvent::Ready`]; a call takes one without a
//! system call or a round trip to this thread and says so with [`Command::Taken`], and the
//! thread binds another 2 ms later (at once when a quarter of the stock or less is left),
//! out of the moments the call's first messages go through (also after a
//! [`Command::Release`], when the stock was short for want of ports). [`Command::Allocate`]
//! stays for a call that finds none ready. Released ports are closed and go back to the
//! free list as before (a pair just released is handed out last): no socket of a finished
//! call is handed to the next one with its peer's datagrams still queued.

mod mmsg;
mod sched;
mod uring;

pub use sched::{Applied, Scheduling, SchedulingOutcome, DEFAULT_REALTIME_PRIORITY, DEFAULT_SLICE};

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::relay::{Allocation, Decision, Event, Leg, Relay, Remote, SessionId};
use crate::stats::{DropReason, RelayStats, SessionStats};
use crate::RelayConfig;

/// How the thread receives and sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiveMode {
    /// epoll and `recvmmsg(2)`: up to 32 datagrams per system call, one `send_to` per
    /// datagram.
    Batched,
    /// One `recv_from` per datagram, until `WouldBlock`.
    Plain,
    /// io_uring (Linux ≥ 6.0): a multishot `recvmsg` per socket into provided buffers,
    /// the sends of a loop turn submitted together, one `io_uring_enter` per turn; where
    /// io_uring is unavailable the thread falls back to [`ReceiveMode::Batched`]
    /// ([`MediaRelay::receive`] says which runs). The default: see the numbers in the
    /// crate README.
    Uring,
}

/// How to start the relay thread.
#[derive(Debug, Clone)]
pub struct MediaOptions {
    /// Ports and timeouts.
    pub relay: RelayConfig,
    /// The address the RTP sockets bind (`rtp_address`; `0.0.0.0` for all).
    pub address: IpAddr,
    /// Shuffles the order ports are handed out in.
    pub seed: u64,
    /// How sockets are read.
    pub receive: ReceiveMode,
    /// How the thread asks for a CPU (a short slice by default; [`Scheduling`]).
    pub scheduling: Scheduling,
    /// Sessions kept allocated and bound ahead of the calls ([`MediaEvent::Ready`]); 0:
    /// every session is asked for with [`Command::Allocate`].
    pub ready: usize,
}

impl MediaOptions {
    /// io_uring (epoll where unavailable) and a short slice on `address` with `relay`'s
    /// ports.
    pub fn new(relay: RelayConfig, address: IpAddr, seed: u64) -> MediaOptions {
        MediaOptions {
            relay,
            address,
            seed,
            receive: ReceiveMode::Uring,
            scheduling: Scheduling::default(),
            ready: 0,
        }
    }

    /// The ready sessions mss keeps for `ports`: one for every 8 sessions the range holds,
    /// at most [`MAX_READY`]: enough for bursts of calls between two rounds of the relay
    /// thread, few enough that a small range loses little to them.
    pub fn default_ready(ports: crate::PortRange) -> usize {
        let sessions = ports.pairs() as usize / 2;
        (sessions / 8).min(MAX_READY)
    }
}

/// The most ready sessions [`MediaOptions::default_ready`] gives (32 sockets).
pub const MAX_READY: usize = 8;

/// What the call service asks of the relay.
#[derive(Debug, Clone)]
pub enum Command {
    /// A session with a port pair per leg, sockets bound; answered by
    /// [`MediaEvent::Allocated`] with the same `op`.
    Allocate {
        /// The caller's reference for the answer.
        op: u64,
    },
    /// Where `leg`'s media comes from ([`Relay::set_remote`]: latching starts again).
    SetRemote {
        /// The session.
        session: SessionId,
        /// The leg.
        leg: Leg,
        /// Its signalling source and SDP addresses.
        remote: Remote,
    },
    /// The party behind `leg` is replaced ([`Relay::new_source`]: the leaving party's
    /// address does not latch again, the new SSRC continues the old stream).
    SourceChanged {
        /// The session.
        session: SessionId,
        /// The leg.
        leg: Leg,
    },
    /// `leg` on hold or off it ([`Relay::set_hold`]).
    SetHold {
        /// The session.
        session: SessionId,
        /// The leg.
        leg: Leg,
        /// On hold.
        on_hold: bool,
    },
    /// The call was answered ([`Relay::answered`]).
    Answered {
        /// The session.
        session: SessionId,
    },
    /// A call took ready session `session` ([`MediaEvent::Ready`]): it counts as the
    /// call's from now on, and another is bound in its place.
    Taken {
        /// The session.
        session: SessionId,
    },
    /// The call ended: close the sockets, free the ports; answered by
    /// [`MediaEvent::Released`].
    Release {
        /// The session.
        session: SessionId,
    },
    /// The counters of a session; answered by [`MediaEvent::Stats`].
    Stats {
        /// The session.
        session: SessionId,
    },
}

/// Why [`Command::Allocate`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocateError {
    /// No free ports: `503` + `Retry-After`.
    #[error("no free RTP ports")]
    Exhausted,
    /// The ports handed out could not be bound (taken by another program), 8 times.
    #[error("could not bind RTP ports: {0}")]
    Bind(String),
}

/// What the relay thread tells the call service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// The answer to [`Command::Allocate`].
    Allocated {
        /// The `op` of the command.
        op: u64,
        /// The session and its ports, or why not.
        result: Result<Allocation, AllocateError>,
    },
    /// A session allocated and bound ahead of the calls, for the next call to take
    /// ([`Command::Taken`]); sent at the start and after every take, up to
    /// [`MediaOptions::ready`] not taken.
    Ready(Allocation),
    /// The answer to [`Command::Release`]: the last counters (`None`: unknown session).
    Released {
        /// The session.
        session: SessionId,
        /// Both legs' counters.
        stats: Option<SessionStats>,
    },
    /// The answer to [`Command::Stats`].
    Stats {
        /// The session.
        session: SessionId,
        /// Both legs' counters (`None`: unknown session).
        stats: Option<SessionStats>,
    },
    /// A relay event: latched, `no_rtp_from`, timed out.
    Relay(Event),
}

/// The relay thread is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the media relay has stopped")]
pub struct Stopped;

enum Message {
    Command(Command),
    Stop,
}

/// Sends commands to the relay thread; cheap to clone, usable from any thread.
#[derive(Debug, Clone)]
pub struct Commands {
    tx: Sender<Message>,
    waker: Arc<Waker>,
}

impl Commands {
    /// Queues `command` and wakes the thread.
    pub fn send(&self, command: Command) -> Result<(), Stopped> {
        self.queue(command)?;
        self.wake()
    }

    /// Queues `command` without waking the thread: it runs at the next [`Commands::wake`]
    /// (or whatever wakes the thread first). For a sender with several commands at once:
    /// one wake-up (a system call here, a round of the thread's loop there) for all.
    pub fn queue(&self, command: Command) -> Result<(), Stopped> {
        self.tx.send(Message::Command(command)).map_err(|_| Stopped)
    }

    /// Wakes the thread to run the commands queued.
    pub fn wake(&self) -> Result<(), Stopped> {
        self.waker.wake().map_err(|_| Stopped)
    }
}

/// The relay's counters, published by its thread after every round (for `/metrics`:
/// `mss_rtp_packets_total`, `mss_rtp_ports_in_use`).
#[derive(Debug, Default)]
pub struct Counters {
    relayed: AtomicU64,
    dropped: [AtomicU64; DropReason::COUNT],
    ports_in_use: AtomicU64,
    sessions: AtomicU64,
    ready_sessions: AtomicU64,
    exhausted: AtomicU64,
    send_errors: AtomicU64,
    receive_errors: AtomicU64,
}

/// A reading of [`Counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CountersSnapshot {
    /// The relay's counters.
    pub relay: RelayStats,
    /// Datagrams the relay decided to forward that `send_to` refused (full socket buffer,
    /// unreachable network): counted in `relayed` too.
    pub send_errors: u64,
    /// Failed reads other than `WouldBlock`.
    pub receive_errors: u64,
}

impl Counters {
    /// The values now.
    pub fn snapshot(&self) -> CountersSnapshot {
        let mut relay = RelayStats {
            relayed: self.relayed.load(Ordering::Relaxed),
            ports_in_use: self.ports_in_use.load(Ordering::Relaxed) as u32,
            sessions: self.sessions.load(Ordering::Relaxed) as u32,
            ready_sessions: self.ready_sessions.load(Ordering::Relaxed) as u32,
            exhausted: self.exhausted.load(Ordering::Relaxed),
            ..RelayStats::default()
        };
        for (d, a) in relay.dropped.iter_mut().zip(&self.dropped) {
            *d = a.load(Ordering::Relaxed);
        }
        CountersSnapshot {
            relay,
            send_errors: self.send_errors.load(Ordering::Relaxed),
            receive_errors: self.receive_errors.load(Ordering::Relaxed),
        }
    }

    fn publish(&self, s: &RelayStats, send_errors: u64, receive_errors: u64) {
        self.relayed.store(s.relayed, Ordering::Relaxed);
        for (a, d) in self.dropped.iter().zip(s.dropped) {
            a.store(d, Ordering::Relaxed);
        }
        self.ports_in_use
            .store(u64::from(s.ports_in_use), Ordering::Relaxed);
        self.sessions
            .store(u64::from(s.sessions), Ordering::Relaxed);
        self.ready_sessions
            .store(u64::from(s.ready_sessions), Ordering::Relaxed);
        self.exhausted.store(s.exhausted, Ordering::Relaxed);
        self.send_errors.store(send_errors, Ordering::Relaxed);
        self.receive_errors.store(receive_errors, Ordering::Relaxed);
    }
}

/// The running relay thread. Dropping it stops the thread.
#[derive(Debug)]
pub struct MediaRelay {
    commands: Commands,
    counters: Arc<Counters>,
    scheduling: SchedulingOutcome,
    receive: (ReceiveMode, Option<String>),
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl MediaRelay {
    /// Starts the thread (`mss-media`). `on_event` runs on it for every event: it must not
    /// block (send into a channel).
    pub fn start<F>(options: MediaOptions, on_event: F) -> io::Result<MediaRelay>
    where
        F: FnMut(MediaEvent) + Send + 'static,
    {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let slots = 2 * options.relay.ports.pairs() as usize;
        let relay = Relay::new(options.relay.clone(), options.seed);
        let base = options.relay.ports.base();
        let (address, mode, ready) = (options.address, options.receive, options.ready);
        let published = counters.clone();
        let wanted = options.scheduling;
        let (told, outcome) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("mss-media".into())
            .spawn(move || {
                let scheduling = sched::apply(wanted);
                // Built here: the ring and the recvmmsg buffers hold raw pointers and stay
                // on this thread.
                let (uring, refused) = match mode {
                    ReceiveMode::Uring => match uring::Uring::new(slots, poll.as_raw_fd()) {
                        Ok(mut u) => {
                            // A real-time thread runs at every arrival: its waits coalesce.
                            if matches!(scheduling.applied, sched::Applied::Realtime(_)) {
                                u.coalesce(uring::COALESCE_US);
                            }
                            (Some(u), None)
                        }
                        Err(e) => (None, Some(format!("io_uring unavailable ({e}): epoll"))),
                    },
                    _ => (None, None),
                };
                let receiver = match mode {
                    ReceiveMode::Plain => Receiver_::Plain(Box::new([0; mmsg::BUFFER])),
                    _ => Receiver_::Batched(mmsg::Batch::new(BATCH)),
                };
                let running = match (&uring, mode) {
                    (Some(_), _) => ReceiveMode::Uring,
                    (None, ReceiveMode::Plain) => ReceiveMode::Plain,
                    (None, _) => ReceiveMode::Batched,
                };
                let _ = told.send((scheduling, (running, refused)));
                let mut worker = Worker {
                    relay,
                    base,
                    address,
                    poll,
                    sockets: (0..slots).map(|_| None).collect(),
                    ready: VecDeque::with_capacity(slots),
                    queued: vec![false; slots],
                    receiver,
                    uring,
                    rx,
                    on_event,
                    counters: published,
                    send_errors: 0,
                    receive_errors: 0,
                    keep_ready: ready,
                    refill_at: None,
                };
                worker.refill();
                let w = &worker;
                w.counters
                    .publish(w.relay.stats(), w.send_errors, w.receive_errors);
                worker.run()
            })?;
        // The thread sends the outcome before anything else (it cannot fail before).
        let (scheduling, receive) = outcome.recv().unwrap_or((
            SchedulingOutcome {
                applied: Applied::KernelDefault,
                realtime_refused: None,
                slice_refused: None,
            },
            (mode, None),
        ));
        Ok(MediaRelay {
            commands: Commands { tx, waker },
            counters,
            scheduling,
            receive,
            thread: Some(thread),
        })
    }

    /// A sender of commands.
    pub fn commands(&self) -> Commands {
        self.commands.clone()
    }

    /// The counters the thread publishes.
    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// How the thread is scheduled (what was asked in [`MediaOptions::scheduling`] and
    /// what the kernel refused).
    pub fn scheduling(&self) -> &SchedulingOutcome {
        &self.scheduling
    }

    /// How the thread reads and sends (for [`ReceiveMode::Uring`]: `Uring`, or `Batched`
    /// when io_uring is unavailable, with the reason).
    pub fn receive(&self) -> (ReceiveMode, Option<&str>) {
        (self.receive.0, self.receive.1.as_deref())
    }

    /// Stops the thread (every socket closed) and waits for it.
    pub fn stop(mut self) -> io::Result<()> {
        self.stop_thread()
    }

    fn stop_thread(&mut self) -> io::Result<()> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        let _ = self.commands.tx.send(Message::Stop);
        let _ = self.commands.waker.wake();
        thread
            .join()
            .map_err(|_| io::Error::other("the media thread panicked"))?
    }
}

impl Drop for MediaRelay {
    fn drop(&mut self) {
        let _ = self.stop_thread();
    }
}

/// The token of the command wake-up; sockets use their port's offset in the range.
const WAKER: Token = Token(usize::MAX);
/// Datagrams per `recvmmsg`.
const BATCH: usize = 32;
/// Datagrams read from one socket per round before the others get their turn.
const BUDGET: usize = 64;
/// Tries to bind a session's ports before giving up.
const BIND_TRIES: usize = 8;
/// How long the thread waits after a take before it binds the replacement, while more than
/// a quarter of the stock is left: the binds (a dozen system calls per session) then run
/// after the call's INVITE and its first answers went through, not beside them on the
/// other CPU, and the takes of a burst are refilled together.
const REFILL_DELAY: Duration = Duration::from_millis(2);

enum Receiver_ {
    Batched(mmsg::Batch),
    Plain(Box<[u8; mmsg::BUFFER]>),
}

struct Worker<F> {
    relay: Relay,
    base: u16,
    address: IpAddr,
    poll: Poll,
    /// By port offset from `base`.
    sockets: Vec<Option<UdpSocket>>,
    /// Sockets with datagrams perhaps left (edge-triggered: read until `WouldBlock`).
    ready: VecDeque<usize>,
    queued: Vec<bool>,
    receiver: Receiver_,
    /// The io_uring backend (`None`: the epoll loop).
    uring: Option<uring::Uring>,
    rx: Receiver<Message>,
    on_event: F,
    counters: Arc<Counters>,
    send_errors: u64,
    receive_errors: u64,
    /// Ready sessions to keep ([`MediaOptions::ready`]).
    keep_ready: usize,
    /// When the stock is refilled next ([`REFILL_DELAY`]); `None`: nothing owed.
    refill_at: Option<Instant>,
}

impl<F: FnMut(MediaEvent)> Worker<F> {
    fn run(mut self) -> io::Result<()> {
        if self.uring.is_some() {
            return self.run_uring();
        }
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = if self.ready.is_empty() {
                self.next_deadline()
                    .map(|t| t.saturating_duration_since(Instant::now()))
            } else {
                Some(Duration::ZERO)
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let now = Instant::now();
            let mut woken = false;
            for e in events.iter() {
                let Token(t) = e.token();
                if e.token() == WAKER {
                    woken = true;
                } else if let Some(q) = self.queued.get_mut(t) {
                    if !*q {
                        *q = true;
                        self.ready.push_back(t);
                    }
                }
            }
            for _ in 0..self.ready.len() {
                let Some(t) = self.ready.pop_front() else {
                    break;
                };
                if self.drain(t, now) {
                    self.ready.push_back(t);
                } else {
                    self.queued[t] = false;
                }
            }
            if woken && !self.commands(now) {
                return Ok(());
            }
            self.end_round(now);
        }
    }

    /// What both loops do after a round's datagrams and commands: the relay's timers, a
    /// refill that came due, the relay's events, the counters published.
    fn end_round(&mut self, now: Instant) {
        if self.relay.poll_timeout().is_some_and(|t| t <= now) {
            self.relay.handle_timeout(now);
        }
        if self.refill_at.is_some_and(|t| t <= now) {
            self.refill_at = None;
            self.refill();
        }
        while let Some(e) = self.relay.poll_event() {
            (self.on_event)(MediaEvent::Relay(e));
        }
        self.counters
            .publish(self.relay.stats(), self.send_errors, self.receive_errors);
    }

    /// The loop with io_uring: one `io_uring_enter` per turn submits the turn's sends and
    /// waits for datagrams, sends done, a command or the relay's next deadline.
    fn run_uring(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(16);
        loop {
            let timeout = self
                .next_deadline()
                .map(|t| t.saturating_duration_since(Instant::now()));
            let Some(u) = self.uring.as_mut() else {
                return Ok(());
            };
            u.submit_and_wait(timeout)?;
            let now = Instant::now();
            let woken = self.completions(now);
            if woken {
                // Clears the waker's readiness so that the next wake fires the poll again.
                let _ = self.poll.poll(&mut events, Some(Duration::ZERO));
                if !self.commands(now) {
                    for t in 0..self.sockets.len() {
                        if self.sockets[t].is_some() {
                            self.close(self.base + t as u16);
                        }
                    }
                    if let Some(u) = self.uring.as_mut() {
                        u.wait_disarmed();
                    }
                    return Ok(());
                }
            }
            self.end_round(now);
        }
    }

    /// Handles the completions of the last wait: relays each datagram (its send queued
    /// for the next submit), gives buffers back, re-arms what ended; true if woken for
    /// commands.
    fn completions(&mut self, now: Instant) -> bool {
        let Worker {
            relay,
            base,
            sockets,
            uring: Some(u),
            send_errors,
            receive_errors,
            ..
        } = self
        else {
            return false;
        };
        let fd = |sockets: &[Option<UdpSocket>], t: usize| -> Option<RawFd> {
            sockets
                .get(t)
                .and_then(Option::as_ref)
                .map(|s| s.as_raw_fd())
        };
        let mut woken = false;
        for i in 0..u.completed() {
            match u.completion(i) {
                Some(uring::Done::Datagram {
                    slot,
                    buffer,
                    rearm,
                }) => {
                    let mut sending = false;
                    let open = fd(sockets, slot).is_some();
                    if let Some(uring::Received {
                        data,
                        place,
                        source: Some(source),
                    }) = u.datagram(i, buffer).filter(|_| open)
                    {
                        let port = *base + slot as u16;
                        if let Decision::Forward { from, to } =
                            relay.handle_packet(now, port, source, data)
                        {
                            let out_slot = usize::from(from - *base);
                            match fd(sockets, out_slot) {
                                Some(out) if u.send(out_slot, out, buffer, place, to).is_ok() => {
                                    sending = true;
                                }
                                _ => *send_errors += 1,
                            }
                        }
                    }
                    if !sending {
                        u.provide(buffer);
                    }
                    if let Some(f) = fd(sockets, slot).filter(|_| rearm) {
                        arm(u, slot, f, receive_errors);
                    }
                }
                Some(uring::Done::RecvEnded { slot, rearm, why }) => {
                    *receive_errors += u64::from(why == uring::Ended::Failed);
                    if rearm && why == uring::Ended::NoBuffer {
                        u.starve(slot);
                    } else if let Some(f) = fd(sockets, slot).filter(|_| rearm) {
                        arm(u, slot, f, receive_errors);
                    }
                }
                Some(uring::Done::Sent { ok }) => {
                    if let Some(b) = u.completion_buffer(i) {
                        u.provide(b);
                    }
                    *send_errors += u64::from(!ok);
                }
                Some(uring::Done::Woken { rearm }) => {
                    woken = true;
                    if rearm {
                        // Failed: tried again before the next wait.
                        let _ = u.arm_waker();
                    }
                }
                None => {}
            }
        }
        u.publish();
        for _ in 0..u.starving() {
            let Some(slot) = u.starved() else { break };
            // Closed meanwhile: nothing to arm (a new socket there was armed when opened).
            if let Some(f) = fd(sockets, slot) {
                arm(u, slot, f, receive_errors);
            }
        }
        woken
    }

    /// Reads socket `t` up to the budget; true if datagrams may be left.
    fn drain(&mut self, t: usize, now: Instant) -> bool {
        let Worker {
            relay,
            base,
            sockets,
            receiver,
            send_errors,
            receive_errors,
            ..
        } = self;
        let Some(socket) = sockets.get(t).and_then(Option::as_ref) else {
            return false;
        };
        let port = *base + t as u16;
        match receiver {
            Receiver_::Batched(batch) => {
                let fd = socket.as_raw_fd();
                for _ in 0..BUDGET / batch.capacity() {
                    let n = match batch.receive(fd) {
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(_) => {
                            *receive_errors += 1;
                            continue;
                        }
                    };
                    for i in 0..n {
                        let (data, source) = batch.get(i);
                        let Some(source) = source else { continue };
                        let d = relay.handle_packet(now, port, source, data);
                        forward(sockets, *base, d, data, send_errors);
                    }
                    if n < batch.capacity() {
                        // Drained: a datagram arriving later raises a new edge.
                        return false;
                    }
                }
                true
            }
            Receiver_::Plain(buf) => {
                for _ in 0..BUDGET {
                    let (n, source) = match socket.recv_from(&mut buf[..]) {
                        Ok(r) => r,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(_) => {
                            *receive_errors += 1;
                            continue;
                        }
                    };
                    let data = &mut buf[..n];
                    let d = relay.handle_packet(now, port, source, data);
                    forward(sockets, *base, d, data, send_errors);
                }
                true
            }
        }
    }

    /// Runs every queued command; false when told to stop.
    fn commands(&mut self, now: Instant) -> bool {
        loop {
            let command = match self.rx.try_recv() {
                Ok(Message::Command(c)) => c,
                Ok(Message::Stop) | Err(TryRecvError::Disconnected) => return false,
                Err(TryRecvError::Empty) => {
                    self.refill_soon(now);
                    return true;
                }
            };
            match command {
                Command::Allocate { op } => {
                    let result = self.allocate(false);
                    (self.on_event)(MediaEvent::Allocated { op, result });
                }
                Command::Taken { session } => {
                    let _ = self.relay.take(session);
                }
                Command::SetRemote {
                    session,
                    leg,
                    remote,
                } => {
                    let _ = self.relay.set_remote(session, leg, remote);
                }
                Command::SourceChanged { session, leg } => {
                    let _ = self.relay.new_source(session, leg);
                }
                Command::SetHold {
                    session,
                    leg,
                    on_hold,
                } => {
                    let _ = self.relay.set_hold(now, session, leg, on_hold);
                }
                Command::Answered { session } => {
                    let _ = self.relay.answered(now, session);
                }
                Command::Release { session } => {
                    let ports = [Leg::A, Leg::B].map(|l| self.relay.leg(session, l));
                    let stats = self.relay.release(session).ok();
                    for p in ports.into_iter().flatten() {
                        self.close(p.ports.rtp);
                        self.close(p.ports.rtcp());
                    }
                    (self.on_event)(MediaEvent::Released { session, stats });
                }
                Command::Stats { session } => {
                    let stats = self.relay.session_stats(session);
                    (self.on_event)(MediaEvent::Stats { session, stats });
                }
            }
        }
    }

    /// The relay's next deadline or the refill's, whichever comes first.
    fn next_deadline(&self) -> Option<Instant> {
        match (self.relay.poll_timeout(), self.refill_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Refills the stock at once when a quarter of it or less is left, else
    /// [`REFILL_DELAY`] after the first take that is still owed.
    fn refill_soon(&mut self, now: Instant) {
        let ready = self.relay.stats().ready_sessions as usize;
        if ready >= self.keep_ready {
            return;
        }
        if ready <= self.keep_ready / 4 {
            self.refill_at = None;
            self.refill();
        } else if self.refill_at.is_none() {
            self.refill_at = Some(now + REFILL_DELAY);
        }
    }

    /// Binds ready sessions up to [`MediaOptions::ready`] while ports are free, each told
    /// as [`MediaEvent::Ready`]. A bind that fails 8 times stops it until the next round of
    /// commands.
    fn refill(&mut self) {
        while (self.relay.stats().ready_sessions as usize) < self.keep_ready
            && self.relay.free_pairs() >= 2
        {
            match self.allocate(true) {
                Ok(a) => (self.on_event)(MediaEvent::Ready(a)),
                Err(_) => return,
            }
        }
    }

    /// A session whose four ports are bound and watched; `ready`: allocated ahead
    /// ([`Relay::reserve`]).
    fn allocate(&mut self, ready: bool) -> Result<Allocation, AllocateError> {
        let mut error = String::new();
        for _ in 0..BIND_TRIES {
            let a = if ready {
                self.relay.reserve()
            } else {
                self.relay.allocate()
            }
            .map_err(|_| AllocateError::Exhausted)?;
            match self.open(&a) {
                Ok(()) => return Ok(a),
                Err(e) => {
                    // Taken by someone else: the pairs go to the back of the free list.
                    error = e.to_string();
                    let _ = self.relay.release(a.session);
                }
            }
        }
        Err(AllocateError::Bind(error))
    }

    fn open(&mut self, a: &Allocation) -> io::Result<()> {
        let ports = [a.a.rtp, a.a.rtcp(), a.b.rtp, a.b.rtcp()];
        let mut bound = Vec::with_capacity(4);
        for p in ports {
            let s = std::net::UdpSocket::bind(SocketAddr::new(self.address, p))?;
            s.set_nonblocking(true)?;
            bound.push((p, UdpSocket::from_std(s)));
        }
        for (i, (p, mut s)) in bound.into_iter().enumerate() {
            let t = usize::from(p - self.base);
            let watched = match self.uring.as_mut() {
                Some(u) => u.arm(t, s.as_raw_fd()),
                None => self
                    .poll
                    .registry()
                    .register(&mut s, Token(t), Interest::READABLE),
            };
            if let Err(e) = watched {
                for &q in &ports[..i] {
                    self.close(q);
                }
                return Err(e);
            }
            self.sockets[t] = Some(s);
        }
        Ok(())
    }

    fn close(&mut self, port: u16) {
        let t = usize::from(port - self.base);
        if let Some(mut s) = self.sockets.get_mut(t).and_then(Option::take) {
            match self.uring.as_mut() {
                Some(u) => u.disarm(t),
                None => {
                    let _ = self.poll.registry().deregister(&mut s);
                }
            }
        }
    }
}

/// Arms the receive of socket `slot`; when the ring refuses (its queues full), counts a
/// receive error and tries again in a later round.
fn arm(u: &mut uring::Uring, slot: usize, fd: RawFd, receive_errors: &mut u64) {
    if u.arm(slot, fd).is_err() {
        *receive_errors += 1;
        u.starve(slot);
    }
}

/// Sends `data` as `decision` says.
#[inline]
fn forward(
    sockets: &[Option<UdpSocket>],
    base: u16,
    decision: Decision,
    data: &[u8],
    send_errors: &mut u64,
) {
    let Decision::Forward { from, to } = decision else {
        return;
    };
    let socket = sockets
        .get(usize::from(from - base))
        .and_then(Option::as_ref);
    match socket.map(|s| s.send_to(data, to)) {
        Some(Ok(_)) => {}
        _ => *send_errors += 1,
    }
}
