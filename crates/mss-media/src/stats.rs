//! What the relay counts: per leg (`rtp_in`, `rtp_out` of `/api/calls/active`) and for the
//! whole relay (`mss_rtp_packets_total`, `mss_rtp_ports_in_use`, DESIGN §8).

use std::fmt;

/// Why a datagram was not relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Not RTP or RTCP: version ≠ 2, too short for its header, bad padding (RFC 3550 §5.1).
    NotRtp,
    /// Longer than the largest packet relayed (1500 bytes).
    Oversize,
    /// To a port of the range that belongs to no session (late packets of an ended call).
    UnknownPort,
    /// From an address that is neither the leg's signalling source nor its SDP address:
    /// never latched to ("RTP bleed").
    Stranger,
    /// From the leg's host, but not from the address the leg latched to (latching starts
    /// again only when the controller says so).
    NotLatched,
    /// The other leg has no address to send to yet (no SDP, nothing latched).
    NoDestination,
}

impl DropReason {
    /// Every reason, in the order of [`DropReason::index`].
    pub const ALL: [DropReason; 6] = [
        DropReason::NotRtp,
        DropReason::Oversize,
        DropReason::UnknownPort,
        DropReason::Stranger,
        DropReason::NotLatched,
        DropReason::NoDestination,
    ];

    /// How many reasons there are.
    pub const COUNT: usize = DropReason::ALL.len();

    /// The index of this reason in [`RelayStats::dropped`].
    #[inline]
    pub fn index(self) -> usize {
        self as usize
    }

    /// The label value for metrics: `not_rtp`, `oversize`, `unknown_port`, `stranger`,
    /// `not_latched`, `no_destination`.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::NotRtp => "not_rtp",
            DropReason::Oversize => "oversize",
            DropReason::UnknownPort => "unknown_port",
            DropReason::Stranger => "stranger",
            DropReason::NotLatched => "not_latched",
            DropReason::NoDestination => "no_destination",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The counters of one leg. `*_in` counts packets accepted from the leg (latched source),
/// `*_out` packets relayed to it; `dropped` counts packets that arrived at the leg's ports
/// and were dropped (any reason but `unknown_port`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LegStats {
    /// RTP packets received from the leg.
    pub rtp_in: u64,
    /// RTP packets sent to the leg.
    pub rtp_out: u64,
    /// RTCP packets received from the leg (on its RTCP port).
    pub rtcp_in: u64,
    /// RTCP packets sent to the leg.
    pub rtcp_out: u64,
    /// Packets dropped at the leg's ports.
    pub dropped: u64,
}

/// The counters of both legs of a session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Leg A.
    pub a: LegStats,
    /// Leg B.
    pub b: LegStats,
}

/// The relay's own counters, since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Packets relayed (RTP and RTCP).
    pub relayed: u64,
    /// Packets dropped, by [`DropReason::index`].
    pub dropped: [u64; DropReason::COUNT],
    /// Ports of calls' sessions (4 per session: RTP and RTCP of each leg); the ports of
    /// the ready sessions are bound too but not counted here.
    pub ports_in_use: u32,
    /// Sessions allocated to calls.
    pub sessions: u32,
    /// Sessions allocated ahead and not taken by a call yet ([`crate::Relay::reserve`]).
    pub ready_sessions: u32,
    /// Sessions refused for lack of ports.
    pub exhausted: u64,
}

impl RelayStats {
    /// Packets dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason.index()]
    }

    /// Packets dropped, all reasons.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }
}
