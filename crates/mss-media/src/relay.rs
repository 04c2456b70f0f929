//! The relay as a sans-IO state machine: the port table, the sessions with their two legs,
//! latching, the per-packet decision and the timers (DESIGN §8).
//!
//! Nothing here reads a clock or touches a socket: packets and time come in as arguments,
//! decisions come back as values, events wait in a queue for [`Relay::poll_event`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::config::RelayConfig;
use crate::continuity::Continuity;
use crate::packet;
use crate::stats::{DropReason, LegStats, RelayStats, SessionStats};

/// A session of the relay: one media stream (one `m=` line) between the two legs of a
/// call. Never reused: a released id stays unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId {
    slot: u32,
    generation: u32,
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.slot, self.generation)
    }
}

/// One side of a session: `A` is the caller's leg, `B` the callee's (any names do, the
/// relay treats both alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Leg {
    /// The caller's side.
    A,
    /// The callee's side.
    B,
}

impl Leg {
    /// The other leg.
    pub fn other(self) -> Leg {
        match self {
            Leg::A => Leg::B,
            Leg::B => Leg::A,
        }
    }

    fn index(self) -> usize {
        match self {
            Leg::A => 0,
            Leg::B => 1,
        }
    }

    fn from_index(i: usize) -> Leg {
        if i == 0 {
            Leg::A
        } else {
            Leg::B
        }
    }
}

/// The local ports of one leg: RTP on an even port, RTCP on the next (what goes into that
/// leg's SDP: `m=audio <rtp>` and, if wanted, `a=rtcp:<rtcp>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortPair {
    /// The RTP port (even).
    pub rtp: u16,
}

impl PortPair {
    /// The RTCP port: RTP + 1.
    pub fn rtcp(self) -> u16 {
        self.rtp + 1
    }
}

/// A new session and the ports of each leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocation {
    /// The session.
    pub session: SessionId,
    /// The ports leg A sends to (written into the SDP mss sends to leg A).
    pub a: PortPair,
    /// The ports leg B sends to.
    pub b: PortPair,
}

impl Allocation {
    /// The ports of `leg`.
    pub fn ports(&self, leg: Leg) -> PortPair {
        match leg {
            Leg::A => self.a,
            Leg::B => self.b,
        }
    }
}

/// Where a leg's media is expected from, as the controller knows it from signalling.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Remote {
    /// The source address of the leg's SIP messages (its NAT's public address for a phone
    /// behind NAT).
    pub signalling: Option<IpAddr>,
    /// The leg's SDP address for RTP (`c=` and the `m=` port).
    pub rtp: Option<SocketAddr>,
    /// The leg's SDP address for RTCP (`a=rtcp:`, RFC 3605); `None`: the RTP port + 1.
    pub rtcp: Option<SocketAddr>,
    /// The leg sends SRTP/SRTCP (RFC 3711: an `RTP/SAVP`-type profile or `a=crypto`):
    /// its headers are authenticated (and SRTCP's reports encrypted), so the relay never
    /// rewrites its packets nor the RTCP about its stream (no SSRC continuity for it).
    pub srtp: bool,
}

impl Remote {
    /// A leg known by its signalling source and its SDP address.
    pub fn new(signalling: IpAddr, rtp: SocketAddr) -> Remote {
        Remote {
            signalling: Some(signalling),
            rtp: Some(rtp),
            rtcp: None,
            srtp: false,
        }
    }

    /// Whether packets from `ip` may latch the leg: `ip` is the signalling source or the
    /// host of an SDP address. Ports are not compared (NAT changes them).
    fn allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.signalling.map(|a| a.to_canonical()) == Some(ip)
            || [self.rtp, self.rtcp]
                .into_iter()
                .flatten()
                .any(|a| a.ip().to_canonical() == ip && !ip.is_unspecified())
    }

    /// The exact SDP address of RTP or RTCP, as packets from it show it (IPv4-mapped
    /// addresses canonical), if it can be sent to.
    fn sdp_exact(&self, rtcp: bool) -> Option<SocketAddr> {
        self.sdp(rtcp)
            .map(|a| SocketAddr::new(a.ip().to_canonical(), a.port()))
    }

    /// The SDP address to send to before anything is latched (`None` for a hold address
    /// `0.0.0.0` or port 0).
    fn sdp(&self, rtcp: bool) -> Option<SocketAddr> {
        let addr = if rtcp {
            self.rtcp.or_else(|| {
                self.rtp
                    .and_then(|a| Some(SocketAddr::new(a.ip(), a.port().checked_add(1)?)))
            })
        } else {
            self.rtp
        }?;
        (!addr.ip().is_unspecified() && addr.port() != 0).then_some(addr)
    }
}

/// What to do with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Send the packet (as it is now in the buffer) from local port `from` to `to`.
    Forward {
        /// The local port to send from (the other leg's RTP or RTCP port).
        from: u16,
        /// Where.
        to: SocketAddr,
    },
    /// Drop it; it is counted.
    Drop(DropReason),
}

/// Why a session timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeoutCause {
    /// No RTP from either leg for `rtp_timeout` after the answer while not on hold.
    NoRtp,
    /// On hold for `hold_timeout`.
    Hold,
}

impl TimeoutCause {
    /// `rtp_timeout` or `hold_timeout`: the setting that expired (for the call record).
    pub fn as_str(self) -> &'static str {
        match self {
            TimeoutCause::NoRtp => "rtp_timeout",
            TimeoutCause::Hold => "hold_timeout",
        }
    }
}

/// What the relay tells its controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// `leg` latched its RTP (or RTCP) to `source`: packets to it go there from now on.
    Latched {
        /// The session.
        session: SessionId,
        /// The leg.
        leg: Leg,
        /// The RTCP port latched (else the RTP port).
        rtcp: bool,
        /// The address latched to.
        source: SocketAddr,
    },
    /// `leg` sent no RTP in the first `no_rtp_after` (5 s) after the answer while the
    /// session was not on hold: one-way audio, DESIGN's `no_rtp_from`. Once per leg.
    NoRtpFrom {
        /// The session.
        session: SessionId,
        /// The silent leg.
        leg: Leg,
    },
    /// The session timed out: end the call (BYE both legs) and release it. Once.
    TimedOut {
        /// The session.
        session: SessionId,
        /// Which timeout.
        cause: TimeoutCause,
    },
}

/// The port range has no two free pairs left: the call gets `503` (DESIGN §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no free RTP ports")]
pub struct PortsExhausted;

/// The session was released (or never existed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown media session")]
pub struct UnknownSession;

/// A leg as the relay sees it now (for the admin view and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegInfo {
    /// Its local ports.
    pub ports: PortPair,
    /// What the controller said of it.
    pub remote: Remote,
    /// The RTP source latched to.
    pub rtp_source: Option<SocketAddr>,
    /// The RTCP source latched to.
    pub rtcp_source: Option<SocketAddr>,
    /// Whether the controller put it on hold.
    pub on_hold: bool,
    /// Its counters.
    pub stats: LegStats,
}

/// The latch of one port of a leg.
#[derive(Debug, Clone, Copy, Default)]
struct Latch {
    /// The address latched to: the only one accepted, and the one sent to.
    source: Option<SocketAddr>,
    /// Latching starts again (after [`Relay::set_remote`]): until a packet latches, send
    /// to the address latched before if the new remote allows its host.
    kept: Option<SocketAddr>,
    /// The address the leg's previous party sent from ([`Relay::new_source`]): never
    /// latched to again (its leftover packets must not win the latch for the new party
    /// on the same host or behind the same NAT), unless it is the new SDP address itself.
    avoid: Option<SocketAddr>,
    /// Since [`Relay::new_source`]: a packet from the exact SDP address takes the latch
    /// even from another port of the host (the new party's own address beats whatever
    /// came first from its host), once.
    prefer_sdp: bool,
}

#[derive(Debug)]
struct LegState {
    pair: u32,
    remote: Remote,
    latch: [Latch; 2],
    hold_since: Option<Instant>,
    stats: LegStats,
    /// `rtp_in` when the session was answered.
    rtp_in_at_answer: u64,
    /// The stream the leg sends, as the other leg's phone sees it (SSRC continuity).
    continuity: Continuity,
}

impl LegState {
    fn new(pair: u32) -> LegState {
        LegState {
            pair,
            remote: Remote::default(),
            latch: [Latch::default(); 2],
            hold_since: None,
            stats: LegStats::default(),
            rtp_in_at_answer: 0,
            continuity: Continuity::default(),
        }
    }

    #[inline]
    fn destination(&self, rtcp: bool) -> Option<SocketAddr> {
        let l = &self.latch[usize::from(rtcp)];
        l.source.or(l.kept).or_else(|| self.remote.sdp(rtcp))
    }
}

#[derive(Debug)]
struct Session {
    legs: [LegState; 2],
    answered: Option<Instant>,
    /// The start of the current quiet period: the answer or the end of a hold.
    quiet_since: Option<Instant>,
    /// The last RTP packet from either leg.
    last_rtp: Option<Instant>,
    no_rtp_checked: bool,
    timed_out: bool,
    /// The earliest timer entry of this session in the heap.
    armed: Option<Instant>,
    /// Allocated ahead ([`Relay::reserve`]) and not yet taken by a call.
    ready: bool,
}

impl Session {
    fn hold_since(&self) -> Option<Instant> {
        match (self.legs[0].hold_since, self.legs[1].hold_since) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// When something is due: the `no_rtp_from` check, the hold or the RTP timeout.
    fn deadline(&self, config: &RelayConfig) -> Option<Instant> {
        if self.timed_out {
            return None;
        }
        let answered = self.answered?;
        let check = (!self.no_rtp_checked)
            .then(|| answered.checked_add(config.no_rtp_after))
            .flatten();
        let timeout = self.timeout(config).map(|(at, _)| at);
        match (check, timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn timeout(&self, config: &RelayConfig) -> Option<(Instant, TimeoutCause)> {
        if let Some(h) = self.hold_since() {
            return Some((h.checked_add(config.hold_timeout)?, TimeoutCause::Hold));
        }
        let quiet = self
            .quiet_since?
            .max(self.last_rtp.unwrap_or(self.quiet_since?));
        Some((quiet.checked_add(config.rtp_timeout)?, TimeoutCause::NoRtp))
    }
}

#[derive(Debug, Default)]
struct Slot {
    generation: u32,
    session: Option<Session>,
}

/// No session owns the pair.
const FREE: u32 = u32::MAX;

/// The media relay: every session, the port table and the timers. See the crate docs.
#[derive(Debug)]
pub struct Relay {
    config: RelayConfig,
    /// Owner of each pair: `slot << 1 | leg`, or [`FREE`]. Indexed by pair: O(1) per packet.
    owner: Vec<u32>,
    /// Free pairs, least recently released first (a port just freed is reused last).
    free: VecDeque<u32>,
    slots: Vec<Slot>,
    free_slots: Vec<u32>,
    timers: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    events: VecDeque<Event>,
    stats: RelayStats,
}

impl Relay {
    /// A relay over `config.ports`; `seed` shuffles the order the pairs are handed out in
    /// (ports hard to guess; the caller chooses the seed, tests fix it).
    pub fn new(config: RelayConfig, seed: u64) -> Relay {
        let pairs = config.ports.pairs();
        let mut order: Vec<u32> = (0..pairs).collect();
        let mut state = seed;
        for i in (1..order.len()).rev() {
            let j = (splitmix64(&mut state) % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        Relay {
            owner: vec![FREE; pairs as usize],
            free: order.into(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            timers: BinaryHeap::new(),
            events: VecDeque::new(),
            stats: RelayStats::default(),
            config,
        }
    }

    /// The settings.
    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    /// A new session with a port pair for each leg, or [`PortsExhausted`] (`503`).
    pub fn allocate(&mut self) -> Result<Allocation, PortsExhausted> {
        let a = self.new_session(false);
        if a.is_err() {
            self.stats.exhausted += 1;
        }
        a
    }

    /// A session allocated ahead of a call (the ready sessions of the relay thread, whose
    /// sockets are bound before a call needs them): counted in
    /// [`RelayStats::ready_sessions`], not in `sessions` and `ports_in_use`, until a call
    /// [`takes`](Relay::take) it. Nothing latches to it before a `set_remote` (its legs
    /// allow no host), and running out of ports here refuses no call: not counted in
    /// `exhausted`.
    pub fn reserve(&mut self) -> Result<Allocation, PortsExhausted> {
        self.new_session(true)
    }

    /// A call took ready session `session` ([`Relay::reserve`]): from now on it counts as
    /// a call's, and the packets it dropped while it waited (every host is a stranger to
    /// it) leave its legs' counters. Taking a session that is not ready changes nothing.
    pub fn take(&mut self, session: SessionId) -> Result<(), UnknownSession> {
        let s = self.session_mut(session)?;
        if !std::mem::replace(&mut s.ready, false) {
            return Ok(());
        }
        for l in &mut s.legs {
            l.stats = LegStats::default();
        }
        self.stats.ready_sessions -= 1;
        self.stats.sessions += 1;
        self.stats.ports_in_use += 4;
        Ok(())
    }

    fn new_session(&mut self, ready: bool) -> Result<Allocation, PortsExhausted> {
        if self.free.len() < 2 {
            return Err(PortsExhausted);
        }
        let (Some(pa), Some(pb)) = (self.free.pop_front(), self.free.pop_front()) else {
            return Err(PortsExhausted);
        };
        let slot = match self.free_slots.pop() {
            Some(s) => s,
            None => {
                self.slots.push(Slot::default());
                (self.slots.len() - 1) as u32
            }
        };
        let entry = &mut self.slots[slot as usize];
        entry.session = Some(Session {
            legs: [LegState::new(pa), LegState::new(pb)],
            answered: None,
            quiet_since: None,
            last_rtp: None,
            no_rtp_checked: false,
            timed_out: false,
            armed: None,
            ready,
        });
        self.owner[pa as usize] = slot << 1;
        self.owner[pb as usize] = slot << 1 | 1;
        if ready {
            self.stats.ready_sessions += 1;
        } else {
            self.stats.sessions += 1;
            self.stats.ports_in_use += 4;
        }
        let session = SessionId {
            slot,
            generation: entry.generation,
        };
        Ok(Allocation {
            session,
            a: PortPair {
                rtp: self.config.ports.rtp_port(pa),
            },
            b: PortPair {
                rtp: self.config.ports.rtp_port(pb),
            },
        })
    }

    /// Says where `leg`'s media comes from (its first offer or answer, a re-INVITE, a
    /// transfer). Latching starts again: the next packet from the new remote's hosts
    /// latches; until then packets to the leg go to the source latched before if the new
    /// remote still allows its host, else to the new SDP address.
    pub fn set_remote(
        &mut self,
        session: SessionId,
        leg: Leg,
        remote: Remote,
    ) -> Result<(), UnknownSession> {
        let s = self.session_mut(session)?;
        let l = &mut s.legs[leg.index()];
        l.remote = remote;
        for latch in &mut l.latch {
            let before = latch.source.take().or(latch.kept);
            latch.kept = before.filter(|a| remote.allows(a.ip()) && Some(*a) != latch.avoid);
        }
        Ok(())
    }

    /// The party behind `leg` is replaced by another (a transfer, an INVITE with
    /// Replaces), with [`Relay::set_remote`] for the new party before or after. Latching
    /// starts again, and:
    ///
    /// - the address the leg was latched to (the leaving party) never latches again
    ///   unless it is the new SDP address, and nothing is sent to it meanwhile;
    /// - a packet from the exact SDP address takes the latch from any other port of
    ///   the same host (behind a NAT that rewrites ports nothing comes from the SDP
    ///   address, and the first packet from an allowed host latches as before);
    /// - the stream the leg sends to the other leg keeps its SSRC, and its sequence
    ///   numbers and timestamps go on (`continuity.rs`), RTCP rewritten to match: from
    ///   now on every change of SSRC on the leg is a new source.
    pub fn new_source(&mut self, session: SessionId, leg: Leg) -> Result<(), UnknownSession> {
        let s = self.session_mut(session)?;
        let l = &mut s.legs[leg.index()];
        for latch in &mut l.latch {
            if let Some(before) = latch.source.take().or(latch.kept) {
                latch.avoid = Some(before);
            }
            latch.kept = None;
            latch.prefer_sdp = true;
        }
        l.continuity.switch();
        Ok(())
    }

    /// Puts `leg` on hold (`sendonly`/`inactive` in its or its peer's description) or takes
    /// it off. While either leg is on hold the session does not time out for lack of RTP,
    /// but after `hold_timeout`.
    pub fn set_hold(
        &mut self,
        now: Instant,
        session: SessionId,
        leg: Leg,
        on_hold: bool,
    ) -> Result<(), UnknownSession> {
        let s = self.session_mut(session)?;
        let l = &mut s.legs[leg.index()];
        match (on_hold, l.hold_since) {
            (true, None) => l.hold_since = Some(now),
            (false, Some(_)) => {
                l.hold_since = None;
                if s.hold_since().is_none() && s.answered.is_some() {
                    s.quiet_since = Some(now);
                }
            }
            _ => {}
        }
        self.arm(session);
        Ok(())
    }

    /// The call was answered at `now`: the RTP timeout and the `no_rtp_from` check start.
    /// Later calls change nothing.
    pub fn answered(&mut self, now: Instant, session: SessionId) -> Result<(), UnknownSession> {
        let s = self.session_mut(session)?;
        if s.answered.is_none() {
            s.answered = Some(now);
            s.quiet_since = Some(now);
            for l in &mut s.legs {
                l.rtp_in_at_answer = l.stats.rtp_in;
            }
        }
        self.arm(session);
        Ok(())
    }

    /// Ends the session: its ports go back to the table (to be handed out last), its
    /// counters come back. Every end of a call must come here, a timeout included.
    pub fn release(&mut self, session: SessionId) -> Result<SessionStats, UnknownSession> {
        self.session_mut(session)?;
        let slot = &mut self.slots[session.slot as usize];
        let Some(s) = slot.session.take() else {
            return Err(UnknownSession);
        };
        slot.generation = slot.generation.wrapping_add(1);
        self.free_slots.push(session.slot);
        for l in &s.legs {
            self.owner[l.pair as usize] = FREE;
            self.free.push_back(l.pair);
        }
        if s.ready {
            self.stats.ready_sessions -= 1;
        } else {
            self.stats.sessions -= 1;
            self.stats.ports_in_use -= 4;
        }
        Ok(SessionStats {
            a: s.legs[0].stats,
            b: s.legs[1].stats,
        })
    }

    /// One datagram of `data.len()` bytes arrived on `local_port` from `source` at `now`.
    /// O(1), allocates nothing (an event queued on a latch aside). The header of a packet
    /// forwarded may be rewritten in place for SSRC continuity after [`Relay::new_source`]:
    /// send `data` as it is after the call.
    #[inline]
    pub fn handle_packet(
        &mut self,
        now: Instant,
        local_port: u16,
        source: SocketAddr,
        data: &mut [u8],
    ) -> Decision {
        let decision = self.decide(now, local_port, source, data);
        match decision {
            Decision::Forward { .. } => self.stats.relayed += 1,
            Decision::Drop(r) => self.stats.dropped[r.index()] += 1,
        }
        decision
    }

    #[inline]
    fn decide(
        &mut self,
        now: Instant,
        local_port: u16,
        source: SocketAddr,
        data: &mut [u8],
    ) -> Decision {
        let Some((pair, rtcp_port)) = self.config.ports.locate(local_port) else {
            return Decision::Drop(DropReason::UnknownPort);
        };
        let owner = self.owner[pair as usize];
        if owner == FREE {
            return Decision::Drop(DropReason::UnknownPort);
        }
        let (slot, leg) = (owner >> 1, (owner & 1) as usize);
        let generation = self.slots[slot as usize].generation;
        let Some(s) = self.slots[slot as usize].session.as_mut() else {
            return Decision::Drop(DropReason::UnknownPort);
        };
        let [a, b] = &mut s.legs;
        let (this, other) = if leg == 0 { (a, b) } else { (b, a) };
        let is_rtcp = match packet::check(data, rtcp_port, self.config.max_packet) {
            Ok(is_rtcp) => is_rtcp,
            Err(r) => {
                this.stats.dropped += 1;
                return Decision::Drop(r);
            }
        };
        let source = SocketAddr::new(source.ip().to_canonical(), source.port());
        let latch = &mut this.latch[usize::from(rtcp_port)];
        match latch.source {
            Some(latched) if latched == source => {}
            Some(_) if latch.prefer_sdp && this.remote.sdp_exact(rtcp_port) == Some(source) => {
                // After a new party: its own SDP address beats what latched first.
                latch.source = Some(source);
                latch.prefer_sdp = false;
                self.events.push_back(Event::Latched {
                    session: SessionId { slot, generation },
                    leg: Leg::from_index(leg),
                    rtcp: rtcp_port,
                    source,
                });
            }
            Some(_) => {
                this.stats.dropped += 1;
                return Decision::Drop(if this.remote.allows(source.ip()) {
                    DropReason::NotLatched
                } else {
                    DropReason::Stranger
                });
            }
            None => {
                if !this.remote.allows(source.ip()) {
                    this.stats.dropped += 1;
                    return Decision::Drop(DropReason::Stranger);
                }
                let exact = this.remote.sdp_exact(rtcp_port) == Some(source);
                if latch.avoid == Some(source) && !exact {
                    // The leaving party's leftovers (`new_source`).
                    this.stats.dropped += 1;
                    return Decision::Drop(DropReason::NotLatched);
                }
                latch.source = Some(source);
                latch.kept = None;
                latch.prefer_sdp &= !exact;
                self.events.push_back(Event::Latched {
                    session: SessionId { slot, generation },
                    leg: Leg::from_index(leg),
                    rtcp: rtcp_port,
                    source,
                });
            }
        }
        if is_rtcp {
            this.stats.rtcp_in += 1;
        } else {
            this.stats.rtp_in += 1;
            s.last_rtp = Some(now);
        }
        let Some(to) = other.destination(rtcp_port) else {
            this.stats.dropped += 1;
            return Decision::Drop(DropReason::NoDestination);
        };
        if is_rtcp {
            if !this.remote.srtp {
                this.continuity.rtcp_from(data);
                other.continuity.rtcp_about(data);
            }
            other.stats.rtcp_out += 1;
        } else {
            if !this.remote.srtp {
                this.continuity.rtp(now, data);
            }
            other.stats.rtp_out += 1;
        }
        Decision::Forward {
            from: self.config.ports.rtp_port(other.pair) + u16::from(rtcp_port),
            to,
        }
    }

    /// When [`Relay::handle_timeout`] should be called next (early is harmless).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Runs the timers due at `now`: `no_rtp_from` checks and timeouts, as events.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&Reverse((at, slot, generation))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let id = SessionId { slot, generation };
            let config = &self.config;
            let Ok(s) = session_in(&mut self.slots, id) else {
                continue;
            };
            if s.armed != Some(at) {
                continue; // a stale entry: the session was re-armed earlier
            }
            s.armed = None;
            if let Some(answered) = s.answered {
                let check_at = answered.checked_add(config.no_rtp_after);
                if !s.no_rtp_checked && check_at.is_some_and(|c| c <= now) {
                    s.no_rtp_checked = true;
                    if s.hold_since().is_none() {
                        for (i, l) in s.legs.iter().enumerate() {
                            if l.stats.rtp_in == l.rtp_in_at_answer {
                                self.events.push_back(Event::NoRtpFrom {
                                    session: id,
                                    leg: Leg::from_index(i),
                                });
                            }
                        }
                    }
                }
            }
            if let Some((due, cause)) = s.timeout(config) {
                if !s.timed_out && due <= now {
                    s.timed_out = true;
                    self.events
                        .push_back(Event::TimedOut { session: id, cause });
                }
            }
            self.arm(id);
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The relay's counters.
    pub fn stats(&self) -> &RelayStats {
        &self.stats
    }

    /// The counters of both legs of `session`.
    pub fn session_stats(&self, session: SessionId) -> Option<SessionStats> {
        let s = self.session(session)?;
        Some(SessionStats {
            a: s.legs[0].stats,
            b: s.legs[1].stats,
        })
    }

    /// What the relay knows of `leg` of `session`.
    pub fn leg(&self, session: SessionId, leg: Leg) -> Option<LegInfo> {
        let s = self.session(session)?;
        let l = &s.legs[leg.index()];
        Some(LegInfo {
            ports: PortPair {
                rtp: self.config.ports.rtp_port(l.pair),
            },
            remote: l.remote,
            rtp_source: l.latch[0].source,
            rtcp_source: l.latch[1].source,
            on_hold: l.hold_since.is_some(),
            stats: l.stats,
        })
    }

    /// The sessions allocated now.
    pub fn sessions(&self) -> impl Iterator<Item = SessionId> + '_ {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            s.session.as_ref().map(|_| SessionId {
                slot: i as u32,
                generation: s.generation,
            })
        })
    }

    /// The session that owns local `port` (RTP or RTCP), and which leg.
    pub fn owner_of(&self, port: u16) -> Option<(SessionId, Leg)> {
        let (pair, _) = self.config.ports.locate(port)?;
        let owner = *self.owner.get(pair as usize)?;
        if owner == FREE {
            return None;
        }
        let slot = owner >> 1;
        let generation = self.slots.get(slot as usize)?.generation;
        Some((
            SessionId { slot, generation },
            Leg::from_index((owner & 1) as usize),
        ))
    }

    /// Pairs free now (each leg takes one).
    pub fn free_pairs(&self) -> usize {
        self.free.len()
    }

    fn session(&self, id: SessionId) -> Option<&Session> {
        let slot = self.slots.get(id.slot as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.session.as_ref()
    }

    fn session_mut(&mut self, id: SessionId) -> Result<&mut Session, UnknownSession> {
        session_in(&mut self.slots, id)
    }

    /// Puts the session's next deadline in the heap unless an earlier entry is there.
    fn arm(&mut self, id: SessionId) {
        let config = &self.config;
        let Ok(s) = session_in(&mut self.slots, id) else {
            return;
        };
        let Some(at) = s.deadline(config) else {
            return;
        };
        if s.armed.is_some_and(|armed| armed <= at) {
            return;
        }
        s.armed = Some(at);
        self.timers.push(Reverse((at, id.slot, id.generation)));
    }
}

fn session_in(slots: &mut [Slot], id: SessionId) -> Result<&mut Session, UnknownSession> {
    let slot = slots.get_mut(id.slot as usize).ok_or(UnknownSession)?;
    if slot.generation != id.generation {
        return Err(UnknownSession);
    }
    slot.session.as_mut().ok_or(UnknownSession)
}

/// SplitMix64 (Steele, Lea, Flood 2014): enough to shuffle the port order from a seed.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
