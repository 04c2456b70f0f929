//! SIP over TLS (RFC 3261 §26.2, §18 framing as over TCP): the server's certificate and
//! the rustls configuration its listeners hand out.
//!
//! - [`identity`]: a certificate chain and its private key read from PEM
//!   ([`TlsIdentity`]), with a SHA-256 fingerprint to log and show;
//! - [`server`]: [`TlsServer`], the rustls server configuration of every `tls:` listener,
//!   whose certificate can be replaced while connections are open
//!   ([`TlsServer::replace`]): the next handshake gets the new one, established
//!   connections keep theirs.
//!
//! The connections themselves are TCP connections with a TLS session on top: accepted
//! with the TCP limits, then a handshake bounded by
//! [`TransportConfig::tls_handshake_timeout`](crate::TransportConfig::tls_handshake_timeout)
//! (a peer that sends garbage or stalls is dropped and counted), then framed, kept alive
//! and reused exactly like TCP connections. mss opens no outbound TLS connection: a TLS
//! flow whose connection is gone cannot be sent on ([`TransportError::NoConnection`]),
//! and the device reconnects and registers again (RFC 5626 §4.4).
//!
//! [`TransportError::NoConnection`]: crate::TransportError::NoConnection

pub mod identity;
pub mod server;

pub use identity::{PemFile, TlsIdentity, TlsIdentityError};
pub use server::{TlsServer, TlsSetupError};
