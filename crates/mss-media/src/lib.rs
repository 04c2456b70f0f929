//! mss-media: the media relay of mss (DESIGN §8), sans-IO at its core.
//!
//! - [`Relay`] (`relay.rs`): the port table (an even RTP port and the next RTCP port per
//!   leg, two legs per session), latching, the decision for each packet
//!   ([`Relay::handle_packet`] → [`Decision`]), the `rtp_timeout`/`hold_timeout` timers
//!   and the `no_rtp_from` check. It never reads a clock or touches a socket: time comes in
//!   as `now`, events go out through [`Relay::poll_event`], the next deadline through
//!   [`Relay::poll_timeout`]. Tests run it in simulated time.
//! - `packet.rs`: is it RTP or RTCP (RFC 3550, RFC 5761 §4)?
//! - `continuity.rs`: one SSRC with continuous sequence numbers and timestamps toward a
//!   phone when the party behind the other leg changes ([`Relay::new_source`]).
//! - [`io`]: the thread that owns the UDP sockets of the allocated ports and drives one
//!   [`Relay`]; the controller talks to it with [`io::Command`]s and hears
//!   [`io::MediaEvent`]s.
//!
//! See the crate README for the contract with the call service.

pub mod config;
mod continuity;
pub mod io;
mod packet;
mod relay;
mod stats;

pub use config::{PortRange, PortRangeError, RelayConfig};
pub use relay::{
    Allocation, Decision, Event, Leg, LegInfo, PortPair, PortsExhausted, Relay, Remote, SessionId,
    TimeoutCause, UnknownSession,
};
pub use stats::{DropReason, LegStats, RelayStats, SessionStats};
