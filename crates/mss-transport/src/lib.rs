//! mss-transport: SIP over UDP, TCP, TLS and WebSocket on tokio (RFC 3261 §18, §26,
//! RFC 7118).
//!
//! [`Transports::bind`] binds the configured [`ListenSpec`]s and starts the socket tasks:
//! one receive loop per UDP socket (which also answers RFC 5626 STUN keep-alives itself,
//! see [`stun`]), one accept loop per TCP, TLS, WS or WSS listener, and one task per
//! connection that (after the TLS handshake, for TLS) frames the stream incrementally (with
//! `mss_sip::framing::Framer`, RFC 3261 §18.3), answers CRLF keep-alives (RFC 5626 §3.5.1)
//! and writes the connection's send queue; a WebSocket connection (after the TLS handshake
//! for WSS, then the HTTP upgrade) carries one SIP message per WebSocket message instead.
//! Every complete message goes, as a [`Received`], into one bounded channel; the caller
//! parses it. [`Transports::send`] sends on a [`Flow`](mss_sip::net::Flow): UDP to an
//! address, TCP, TLS, WS or WSS on the connection a request came on (RFC 5626 flow reuse);
//! TCP also on a new one, TLS on a new one to a peer registered with
//! [`Transports::set_tls_peer`] (its certificate verified; failures come out of
//! [`Transports::connect_failures`]).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use bytes::Bytes;
//! use mss_transport::{ListenSpec, TransportConfig, Transports};
//!
//! let listen = ListenSpec::parse_list("udp:0.0.0.0:5060, tcp:0.0.0.0:5060")?;
//! let (transports, mut received) = Transports::bind(TransportConfig::with_listen(listen)).await?;
//! while let Some(msg) = received.recv().await {
//!     // Parse `msg.data`, stamp its top Via (`stamp_top_via`), run the transaction …
//!     let response = Bytes::from_static(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n");
//!     // … and answer on the flow it came on, from the address it came to (RFC 3581 §4).
//!     transports.send_from(Some(msg.local), &msg.flow, response)?;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Components:
//! - [`config`] — [`ListenSpec`] (`udp:0.0.0.0:5060`, `wss:0.0.0.0:5062`) and
//!   [`TransportConfig`] (limits);
//! - [`transports`] — the [`Transports`] handle: bind, send, connect, sent-by, shutdown;
//! - [`routing`] — pure response routing (RFC 3261 §18.2.2, RFC 3581) and Via stamping;
//! - [`stamp`] — stamping `received`/`rport` into a parsed request's top Via, and
//!   routing a response from the Via headers of a parsed message;
//! - [`stats`] — [`TransportStats`] counters for the admin API;
//! - [`tls`] — [`TlsIdentity`] (certificate and key from PEM), [`TlsServer`] (the
//!   listeners' rustls configuration, whose certificate can be replaced at run time),
//!   [`TlsClient`] and [`TlsPeer`] (verifying outbound connections, RFC 5922);
//! - [`stun`] — the limited STUN server of SIP UDP ports (RFC 5626 §8, RFC 5389): telling
//!   STUN from SIP and encoding Binding responses (pure functions);
//! - [`error`] — [`TransportError`];
//! - internal — `udp`, `tcp` (listeners, accept loop, outbound connections),
//!   `tls_accept` (the handshake of an accepted TLS connection), `tls_connect` (an
//!   outbound TLS connection: connect, verifying handshake, then as any connection), `connection` (one
//!   connection's reader and writer), `ws` (SIP over WebSocket: the HTTP upgrade, what a
//!   WebSocket message holds, one WebSocket connection), `table` (open connections and
//!   per-IP counts), `shared` (state shared by the tasks, task tracking).
//!
//! Left to others: parsing and answering messages (a peer that breaks TCP framing is
//! logged, counted and disconnected here; no 400 can be framed for it), transactions,
//! and DNS (RFC 3263): this crate only sends to IP addresses.

pub mod config;
mod connection;
pub mod error;
mod mmsg;
mod queue_depth;
pub mod routing;
mod shared;
pub mod source_limit;
pub mod stamp;
pub mod stats;
pub mod stun;
mod table;
mod tcp;
pub mod tls;
mod tls_accept;
mod tls_connect;
pub mod transports;
mod udp;
mod ws;

pub use config::{ListenSpec, ListenSpecError, TransportConfig};
pub use error::TransportError;
pub use routing::{response_route, via_stamp, ResponseRoute, Rport, ViaRoute, ViaStamp};
pub use shared::{ConnectFailure, Received};
pub use source_limit::{Exempt, SourceLimit};
pub use stamp::{route_response, stamp_top_via};
pub use stats::{TransportStats, TransportStatsSnapshot};
pub use tls::{
    PemFile, TlsClient, TlsClientError, TlsIdentity, TlsIdentityError, TlsPeer, TlsServer,
    TlsSetupError,
};
pub use transports::Transports;
pub use udp::UdpDatagram;
