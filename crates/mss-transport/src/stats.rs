//! Counters of the transport layer, read by the admin API (`/metrics`).

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters, updated with relaxed atomics by the socket tasks.
///
/// Read them one by one, or all at once with [`TransportStats::snapshot`].
#[derive(Debug, Default)]
pub struct TransportStats {
    /// UDP datagrams received (including those dropped afterwards).
    pub udp_datagrams_received: AtomicU64,
    /// UDP datagrams dropped because the channel of received messages was full.
    pub udp_datagrams_dropped: AtomicU64,
    /// UDP datagrams dropped right after `recv` by the per-source limit
    /// (`TransportConfig::udp_source_limit`): over their address's rate, or from the
    /// heaviest sender while the socket is backlogged.
    pub udp_source_limited: AtomicU64,
    /// SIP messages framed on TCP connections and delivered.
    pub tcp_messages_received: AtomicU64,
    /// Bytes received on all sockets (UDP payloads and TCP stream bytes).
    pub bytes_received: AtomicU64,
    /// Messages handed to a socket or a connection's send queue.
    pub messages_sent: AtomicU64,
    /// Bytes handed to a socket or a connection's send queue.
    pub bytes_sent: AtomicU64,
    /// TCP connections open now (inbound and outbound, TLS and WebSocket included).
    pub tcp_connections_open: AtomicU64,
    /// TCP connections accepted or opened since start (TLS and WebSocket included).
    pub tcp_connections_total: AtomicU64,
    /// Inbound TCP connections closed at once because of the total or per-IP limit.
    pub tcp_connections_refused: AtomicU64,
    /// TCP connections closed after the idle timeout.
    pub tcp_idle_closed: AtomicU64,
    /// CRLF keep-alive pings answered with a pong (RFC 5626 §3.5.1).
    pub tcp_keepalives_answered: AtomicU64,
    /// STUN Binding requests on a UDP socket answered with a Binding response: the
    /// keep-alives of RFC 5626 §4.4.2 (counted in `udp_datagrams_received` too, never
    /// delivered as messages).
    pub udp_stun_keepalives_answered: AtomicU64,
    /// STUN-shaped UDP datagrams dropped unanswered: not a Binding request, or malformed.
    pub udp_stun_dropped: AtomicU64,
    /// Failed `accept` calls (retried with backoff).
    pub tcp_accept_errors: AtomicU64,
    /// TCP connections closed because the peer broke the framing (RFC 3261 §18.3):
    /// no Content-Length, message too large, garbage, or a message not completed within
    /// the message timeout.
    pub framing_errors: AtomicU64,
    /// Sends that failed: socket errors, full queues, failed connects.
    pub send_errors: AtomicU64,
    /// TLS handshakes completed on accepted connections (`tls:` and `wss:`).
    pub tls_handshakes: AtomicU64,
    /// Accepted TLS connections dropped because the handshake failed (garbage, a protocol
    /// or version the server does not speak, a client that refused the certificate).
    pub tls_handshake_failures: AtomicU64,
    /// Accepted TLS connections dropped because the handshake did not finish within
    /// the handshake timeout (a client that stalls).
    pub tls_handshake_timeouts: AtomicU64,
    /// Outbound TLS connections whose handshake completed and whose peer's certificate
    /// was verified (a line's registrar).
    pub tls_client_handshakes: AtomicU64,
    /// Outbound TLS connections that failed: connect, handshake or certificate
    /// verification (unknown issuer, name mismatch, expired …).
    pub tls_client_failures: AtomicU64,
    /// WebSocket upgrades accepted (`101 Switching Protocols`).
    pub ws_upgrades: AtomicU64,
    /// WebSocket upgrade requests refused with an HTTP error (garbage, not a WebSocket
    /// request, no `sip` subprotocol, a wrong version …), or left unfinished by a peer
    /// that closed.
    pub ws_upgrade_failures: AtomicU64,
    /// WebSocket connections dropped because the upgrade was not done within its
    /// deadline (slowloris).
    pub ws_upgrade_timeouts: AtomicU64,
    /// SIP messages received in WebSocket messages and delivered.
    pub ws_messages_received: AtomicU64,
    /// WebSocket messages dropped because they are not one SIP message (the connection
    /// stays).
    pub ws_frames_dropped: AtomicU64,
    /// WebSocket connections closed with 1009 for a message or frame over the size limit.
    pub ws_oversize_closed: AtomicU64,
}

/// A copy of every counter of [`TransportStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportStatsSnapshot {
    /// See [`TransportStats::udp_datagrams_received`].
    pub udp_datagrams_received: u64,
    /// See [`TransportStats::udp_datagrams_dropped`].
    pub udp_datagrams_dropped: u64,
    /// See [`TransportStats::udp_source_limited`].
    pub udp_source_limited: u64,
    /// See [`TransportStats::tcp_messages_received`].
    pub tcp_messages_received: u64,
    /// See [`TransportStats::bytes_received`].
    pub bytes_received: u64,
    /// See [`TransportStats::messages_sent`].
    pub messages_sent: u64,
    /// See [`TransportStats::bytes_sent`].
    pub bytes_sent: u64,
    /// See [`TransportStats::tcp_connections_open`].
    pub tcp_connections_open: u64,
    /// See [`TransportStats::tcp_connections_total`].
    pub tcp_connections_total: u64,
    /// See [`TransportStats::tcp_connections_refused`].
    pub tcp_connections_refused: u64,
    /// See [`TransportStats::tcp_idle_closed`].
    pub tcp_idle_closed: u64,
    /// See [`TransportStats::tcp_keepalives_answered`].
    pub tcp_keepalives_answered: u64,
    /// See [`TransportStats::udp_stun_keepalives_answered`].
    pub udp_stun_keepalives_answered: u64,
    /// See [`TransportStats::udp_stun_dropped`].
    pub udp_stun_dropped: u64,
    /// See [`TransportStats::tcp_accept_errors`].
    pub tcp_accept_errors: u64,
    /// See [`TransportStats::framing_errors`].
    pub framing_errors: u64,
    /// See [`TransportStats::send_errors`].
    pub send_errors: u64,
    /// See [`TransportStats::tls_handshakes`].
    pub tls_handshakes: u64,
    /// See [`TransportStats::tls_handshake_failures`].
    pub tls_handshake_failures: u64,
    /// See [`TransportStats::tls_handshake_timeouts`].
    pub tls_handshake_timeouts: u64,
    /// See [`TransportStats::tls_client_handshakes`].
    pub tls_client_handshakes: u64,
    /// See [`TransportStats::tls_client_failures`].
    pub tls_client_failures: u64,
    /// See [`TransportStats::ws_upgrades`].
    pub ws_upgrades: u64,
    /// See [`TransportStats::ws_upgrade_failures`].
    pub ws_upgrade_failures: u64,
    /// See [`TransportStats::ws_upgrade_timeouts`].
    pub ws_upgrade_timeouts: u64,
    /// See [`TransportStats::ws_messages_received`].
    pub ws_messages_received: u64,
    /// See [`TransportStats::ws_frames_dropped`].
    pub ws_frames_dropped: u64,
    /// See [`TransportStats::ws_oversize_closed`].
    pub ws_oversize_closed: u64,
}

impl TransportStats {
    /// Reads every counter (each one atomically; the set is not one atomic picture).
    pub fn snapshot(&self) -> TransportStatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TransportStatsSnapshot {
            udp_datagrams_received: get(&self.udp_datagrams_received),
            udp_datagrams_dropped: get(&self.udp_datagrams_dropped),
            udp_source_limited: get(&self.udp_source_limited),
            tcp_messages_received: get(&self.tcp_messages_received),
            bytes_received: get(&self.bytes_received),
            messages_sent: get(&self.messages_sent),
            bytes_sent: get(&self.bytes_sent),
            tcp_connections_open: get(&self.tcp_connections_open),
            tcp_connections_total: get(&self.tcp_connections_total),
            tcp_connections_refused: get(&self.tcp_connections_refused),
            tcp_idle_closed: get(&self.tcp_idle_closed),
            tcp_keepalives_answered: get(&self.tcp_keepalives_answered),
            udp_stun_keepalives_answered: get(&self.udp_stun_keepalives_answered),
            udp_stun_dropped: get(&self.udp_stun_dropped),
            tcp_accept_errors: get(&self.tcp_accept_errors),
            framing_errors: get(&self.framing_errors),
            send_errors: get(&self.send_errors),
            tls_handshakes: get(&self.tls_handshakes),
            tls_handshake_failures: get(&self.tls_handshake_failures),
            tls_handshake_timeouts: get(&self.tls_handshake_timeouts),
            tls_client_handshakes: get(&self.tls_client_handshakes),
            tls_client_failures: get(&self.tls_client_failures),
            ws_upgrades: get(&self.ws_upgrades),
            ws_upgrade_failures: get(&self.ws_upgrade_failures),
            ws_upgrade_timeouts: get(&self.ws_upgrade_timeouts),
            ws_messages_received: get(&self.ws_messages_received),
            ws_frames_dropped: get(&self.ws_frames_dropped),
            ws_oversize_closed: get(&self.ws_oversize_closed),
        }
    }
}

/// Adds one to a counter.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Adds `n` to a counter.
pub(crate) fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
}

/// Subtracts one from a gauge.
pub(crate) fn drop_one(counter: &AtomicU64) {
    counter.fetch_sub(1, Ordering::Relaxed);
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_copies_counters() {
        let s = TransportStats::default();
        bump(&s.udp_datagrams_received);
        add(&s.bytes_received, 42);
        bump(&s.tcp_connections_open);
        drop_one(&s.tcp_connections_open);
        let snap = s.snapshot();
        assert_eq!(snap.udp_datagrams_received, 1);
        assert_eq!(snap.bytes_received, 42);
        assert_eq!(snap.tcp_connections_open, 0);
    }
}
