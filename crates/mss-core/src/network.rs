//! The one question the core asks of the host: which of our addresses a peer sees.

use std::net::SocketAddr;

use mss_sip::Transport;

/// Our address towards a peer, for the sent-by of the Via of requests mss sends (RFC 3261
/// §18.1.1): the bound address when the socket is bound to one, else the source address the
/// system's routing table picks for the destination. The driver implements it over its
/// sockets; tests give a fixed answer.
pub trait Network {
    /// Our address for `transport` towards `remote`, or `None` when no socket serves it.
    fn sent_by(&self, transport: Transport, remote: SocketAddr) -> Option<SocketAddr>;
}

/// A [`Network`] that always answers with the same address (tests, a server bound to one
/// specific address).
#[derive(Debug, Clone, Copy)]
pub struct FixedAddress(pub SocketAddr);

impl Network for FixedAddress {
    fn sent_by(&self, _: Transport, _: SocketAddr) -> Option<SocketAddr> {
        Some(self.0)
    }
}
