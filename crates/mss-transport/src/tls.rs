//! SIP over TLS (RFC 3261 §26.2, §18 framing as over TCP): the server's certificate and
//! the rustls configuration its listeners hand out.
//!
//! - [`identity`]: a certificate chain and its private key read from PEM
//!   ([`TlsIdentity`]), with a SHA-256 fingerprint to log and show;
//! - [`client`]: [`TlsClient`] (the roots a peer's certificate is verified against:
//!   the system's or a CA file) and [`TlsPeer`] (those roots, the name to verify, a label),
//!   for outbound connections to a line's provider (RFC 5922);
//! - [`server`]: [`TlsServer`], the rustls server configuration of every `tls:` listener,
//!   whose certificate can be replaced while connections are open
//!   ([`TlsServer::replace`]): the next handshake gets the new one, established
//!   connections keep theirs.
//!
//! The connections themselves are TCP connections with a TLS session on top: accepted
//! with the TCP limits, then a handshake bounded by
//! [`TransportConfig::tls_handshake_timeout`](crate::TransportConfig::tls_handshake_timeout)
//! (a peer that sends garbage or stalls is dropped and counted), then framed, kept alive
//! and reused exactly like TCP connections. mss opens an outbound TLS connection only to a
//! peer registered with [`Transports::set_tls_peer`](crate::Transports::set_tls_peer)
//! (a line's registrar), verifying its certificate; a TLS flow to any other peer whose
//! connection is gone cannot be sent on ([`TransportError::NoConnection`]), and the
//! device reconnects and registers again (RFC 5626 §4.4).
//!
//! [`TransportError::NoConnection`]: crate::TransportError::NoConnection

pub mod client;
pub mod identity;
pub mod server;

pub use client::{failure_reason, TlsClient, TlsClientError, TlsPeer};
pub use identity::{PemFile, TlsIdentity, TlsIdentityError};
pub use server::{TlsServer, TlsSetupError};
