//! What can go wrong in a registration or a run.

use std::io;
use std::net::SocketAddr;

/// A failed registration, connection or run.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A socket operation failed (connect, send, receive, a timeout).
    #[error("{what} ({peer}): {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The server.
        peer: SocketAddr,
        /// The error.
        source: io::Error,
    },
    /// The TLS handshake or a record failed.
    #[error("TLS with {peer}: {source}")]
    Tls {
        /// The server.
        peer: SocketAddr,
        /// rustls's error.
        source: rustls::Error,
    },
    /// The server closed the connection.
    #[error("{peer} closed the connection")]
    Closed {
        /// The server.
        peer: SocketAddr,
    },
    /// A response could not be framed (no Content-Length, oversized).
    #[error("bad response framing: {0}")]
    Framing(&'static str),
    /// A `401` without a usable digest challenge.
    #[error("bad challenge: {0}")]
    Challenge(&'static str),
    /// A final response other than the one expected.
    #[error("{step} answered {status}")]
    Status {
        /// `REGISTER` or `authenticated REGISTER`.
        step: &'static str,
        /// The status code (0 when unreadable).
        status: u16,
    },
    /// The run's settings cannot work.
    #[error("bad settings: {0}")]
    Settings(String),
}
