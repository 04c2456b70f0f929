//! Errors of the transport layer: binding sockets, sending, connecting.

use std::io;
use std::net::SocketAddr;

use mss_sip::net::Transport;

use crate::config::ListenSpec;

/// A transport operation failed.
///
/// Errors on one connection end only that connection and are reported here or logged with the
/// peer; they never stop a receive or accept loop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// A listen address could not be bound (address in use, permission denied …).
    #[error("cannot listen on {spec}: {source}")]
    Bind {
        /// What was to be bound.
        spec: ListenSpec,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A `tls:` or `wss:` listener is configured without a certificate
    /// ([`TransportConfig::tls`]).
    ///
    /// [`TransportConfig::tls`]: crate::TransportConfig::tls
    #[error("cannot listen on {0}: no TLS certificate configured")]
    TlsNotConfigured(ListenSpec),
    /// No connection of a transport mss does not open itself (TLS, WS, WSS) is open to
    /// the peer:
    /// the device must connect again (RFC 5626 §4.4).
    #[error("no open {transport} connection to {remote}")]
    NoConnection {
        /// The transport of the flow.
        transport: Transport,
        /// The peer.
        remote: SocketAddr,
    },
    /// The configuration names no listen address at all.
    #[error("no listen address configured")]
    NoListener,
    /// No socket of this transport is bound in the address family of the destination.
    #[error("no {transport} socket bound for the address family of {remote}")]
    NoSocketForFamily {
        /// The transport asked for.
        transport: Transport,
        /// The destination that could not be reached.
        remote: SocketAddr,
    },
    /// Sending a datagram failed (including a full kernel send buffer).
    #[error("cannot send UDP datagram to {remote}: {source}")]
    UdpSend {
        /// The destination.
        remote: SocketAddr,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A message is larger than a datagram can carry (RFC 3261 §18.1.1: use TCP).
    #[error("message of {size} bytes is too large for a UDP datagram to {remote}")]
    DatagramTooLarge {
        /// The destination.
        remote: SocketAddr,
        /// Size of the message in bytes.
        size: usize,
    },
    /// Opening an outbound TCP connection failed or timed out (RFC 3261 §18.4).
    #[error("cannot connect to {remote}: {source}")]
    Connect {
        /// The destination.
        remote: SocketAddr,
        /// The operating system's error (`TimedOut` for the connect timeout).
        #[source]
        source: io::Error,
    },
    /// The connection's outgoing queue is full: the peer does not read fast enough.
    #[error("send queue of connection to {remote} is full")]
    QueueFull {
        /// The peer of the congested connection.
        remote: SocketAddr,
    },
    /// The connection limit (total) is reached; no new connection can be opened.
    #[error("connection limit reached, cannot open a connection to {remote}")]
    ConnectionLimit {
        /// The destination that could not be reached.
        remote: SocketAddr,
    },
    /// The transports were shut down.
    #[error("transports are shut down")]
    Shutdown,
    /// Reading a local address or a socket option failed.
    #[error("socket error ({context}): {source}")]
    Socket {
        /// What was being done.
        context: &'static str,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}
