//! What to listen on and the limits that protect the server: [`ListenSpec`] and
//! [`TransportConfig`].

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use mss_sip::framing::Limits;
use mss_sip::net::Transport;

use crate::source_limit::SourceLimit;
use crate::tls::TlsServer;

/// The default SIP port for UDP and TCP (RFC 3261 §18.1.1, §19.1.2).
pub const DEFAULT_SIP_PORT: u16 = 5060;
/// The default SIP port for TLS (RFC 3261 §18.1.1).
pub const DEFAULT_SIPS_PORT: u16 = 5061;
/// The port of a `ws:` listen address written without one (RFC 7118 names none; 8080 is
/// the usual port of a plain WebSocket SIP server).
pub const DEFAULT_WS_PORT: u16 = 8080;
/// The port of a `wss:` listen address written without one (next to TLS's 5061).
pub const DEFAULT_WSS_PORT: u16 = 5062;

/// One address to listen on, written `transport:address[:port]`, for example
/// `udp:0.0.0.0:5060`, `tcp:127.0.0.1:5070` or `udp:[::1]:5060`.
///
/// The port may be left out: it is then the transport's default (5060; 5061 for TLS,
/// [`DEFAULT_WS_PORT`] for WS, [`DEFAULT_WSS_PORT`] for WSS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenSpec {
    /// The transport protocol.
    pub transport: Transport,
    /// The local address and port (port 0 lets the kernel choose, as tests do).
    pub addr: SocketAddr,
}

/// A listen address string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListenSpecError {
    /// No `transport:` prefix.
    #[error("listen address `{0}` has no transport prefix (expected e.g. `udp:0.0.0.0:5060`)")]
    MissingTransport(String),
    /// The prefix is not a known transport name.
    #[error("unknown transport `{token}` in listen address `{spec}` (expected udp, tcp, tls, ws or wss)")]
    UnknownTransport {
        /// The whole listen address.
        spec: String,
        /// The unknown prefix.
        token: String,
    },
    /// The part after the prefix is not an IP address with an optional port.
    #[error("bad address in listen address `{0}` (expected e.g. `0.0.0.0:5060` or `[::1]:5060`)")]
    BadAddress(String),
}

impl ListenSpec {
    /// A listen address from its parts.
    pub fn new(transport: Transport, addr: SocketAddr) -> ListenSpec {
        ListenSpec { transport, addr }
    }

    /// Reads a comma-separated list such as `udp:0.0.0.0:5060, tcp:0.0.0.0:5060`
    /// (the `listen` key of `mss.ini`). Empty items are ignored.
    ///
    /// # Errors
    /// The first item that is not a valid [`ListenSpec`].
    pub fn parse_list(list: &str) -> Result<Vec<ListenSpec>, ListenSpecError> {
        list.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::parse)
            .collect()
    }
}

impl FromStr for ListenSpec {
    type Err = ListenSpecError;

    fn from_str(spec: &str) -> Result<ListenSpec, ListenSpecError> {
        let spec = spec.trim();
        let Some((token, rest)) = spec.split_once(':') else {
            return Err(ListenSpecError::MissingTransport(spec.to_owned()));
        };
        let transport =
            Transport::from_token(token).ok_or_else(|| ListenSpecError::UnknownTransport {
                spec: spec.to_owned(),
                token: token.to_owned(),
            })?;
        let default_port = match transport {
            Transport::Udp | Transport::Tcp => DEFAULT_SIP_PORT,
            Transport::Tls => DEFAULT_SIPS_PORT,
            Transport::Ws => DEFAULT_WS_PORT,
            Transport::Wss => DEFAULT_WSS_PORT,
        };
        let addr = if let Ok(addr) = rest.parse::<SocketAddr>() {
            addr
        } else {
            // No port: a bare IPv4 address, a bracketed or a bare IPv6 address.
            let host = rest
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(rest);
            let ip: IpAddr = host
                .parse()
                .map_err(|_| ListenSpecError::BadAddress(spec.to_owned()))?;
            SocketAddr::new(ip, default_port)
        };
        Ok(ListenSpec { transport, addr })
    }
}

impl fmt::Display for ListenSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}",
            self.transport.as_str().to_ascii_lowercase(),
            self.addr
        )
    }
}

/// Everything [`Transports::bind`](crate::Transports::bind) needs: addresses and limits.
///
/// [`TransportConfig::default`] listens nowhere; fill `listen` (for example from
/// [`ListenSpec::parse_list`]). The limits have production defaults.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Addresses to listen on: UDP, TCP, TLS, WS and WSS (TLS and WSS with
    /// [`TransportConfig::tls`]).
    pub listen: Vec<ListenSpec>,
    /// The certificate and rustls configuration of the `tls:` and `wss:` listeners;
    /// required when one is listed.
    pub tls: Option<TlsServer>,
    /// How long a TLS client may take from the TCP accept to the end of its handshake
    /// (default 10 s). A peer that sends garbage is dropped at once, one that stalls
    /// when this runs out; both are counted.
    pub tls_handshake_timeout: Duration,
    /// How long a WebSocket client may take, once connected (and for WSS once its TLS
    /// handshake is done), to send its HTTP upgrade request and get the answer (default
    /// 10 s). A peer that trickles its request (slowloris) is dropped when this runs
    /// out, and counted.
    pub ws_upgrade_timeout: Duration,
    /// How long a WebSocket may stay quiet before mss sends it a ping (default 30 s).
    /// Browsers answer pings by themselves; a connection from which nothing, not even a
    /// pong, came for [`TransportConfig::tcp_idle_timeout`] is closed.
    pub ws_ping_interval: Duration,
    /// SO_RCVBUF of each UDP socket, in bytes (default 4 MiB). A burst of requests must not
    /// be dropped at a small kernel buffer before the receive loop reads it. The kernel may
    /// cap it (`net.core.rmem_max`); the value it granted is logged at bind.
    pub udp_recv_buffer: usize,
    /// SO_SNDBUF of each UDP socket, in bytes (default 4 MiB).
    pub udp_send_buffer: usize,
    /// The per-source request limit of the UDP receive loops (`source_limit.rs`): each
    /// address's requests beyond [`SourceLimit::per_second`] in one second are dropped
    /// right after `recv`, before they are queued for the worker. `None` (the default):
    /// no limit here.
    pub udp_source_limit: Option<SourceLimit>,
    /// Most TCP connections open at once, inbound and outbound together, TLS and
    /// WebSocket included (default 10,000).
    /// A connection over the limit is closed as soon as it is accepted.
    pub max_tcp_connections: usize,
    /// Most inbound TCP connections from one source IP address, TLS and WebSocket
    /// included (default 100).
    pub max_tcp_connections_per_ip: usize,
    /// A TCP connection with no traffic in either direction for this long is closed
    /// (default 10 minutes). RFC 3261 §18 asks for at least 64·T1; clients keep their
    /// flows open with CRLF keep-alives (RFC 5626 §4.4.1: every 95–120 s), which count
    /// as traffic.
    pub tcp_idle_timeout: Duration,
    /// How long a peer may take to send one whole message once its first byte arrived
    /// (default 60 s). Without it, a peer trickling one byte per idle period would hold
    /// its connection and buffer forever. Closing for it counts as a framing error.
    pub tcp_message_timeout: Duration,
    /// How long an outbound TCP connect may take (default 5 s).
    pub tcp_connect_timeout: Duration,
    /// How long one write to a TCP peer may block before the connection is dropped
    /// (default 30 s): a peer that stops reading must not hold a connection forever.
    pub tcp_write_timeout: Duration,
    /// Messages queued for sending on one TCP connection (default 1,024). When full,
    /// [`Transports::send`](crate::Transports::send) fails with `QueueFull`.
    pub tcp_send_queue: usize,
    /// Capacity of the channel of received messages (default 8,192). When it is full, UDP
    /// datagrams are dropped and counted, TCP readers wait (backpressure).
    pub receive_queue: usize,
    /// Limits of the stream framing (RFC 3261 §18.3): largest message, header block …
    /// The largest message is also the largest WebSocket message and frame: a larger
    /// one closes the connection with 1009.
    pub framing: Limits,
}

impl Default for TransportConfig {
    fn default() -> TransportConfig {
        TransportConfig {
            listen: Vec::new(),
            tls: None,
            tls_handshake_timeout: Duration::from_secs(10),
            ws_upgrade_timeout: Duration::from_secs(10),
            ws_ping_interval: Duration::from_secs(30),
            udp_recv_buffer: 4 * 1024 * 1024,
            udp_send_buffer: 4 * 1024 * 1024,
            udp_source_limit: None,
            max_tcp_connections: 10_000,
            max_tcp_connections_per_ip: 100,
            tcp_idle_timeout: Duration::from_secs(600),
            tcp_message_timeout: Duration::from_secs(60),
            tcp_connect_timeout: Duration::from_secs(5),
            tcp_write_timeout: Duration::from_secs(30),
            tcp_send_queue: 1024,
            receive_queue: 8192,
            framing: Limits::default(),
        }
    }
}

impl TransportConfig {
    /// A default configuration listening on `listen`.
    pub fn with_listen(listen: Vec<ListenSpec>) -> TransportConfig {
        TransportConfig {
            listen,
            ..TransportConfig::default()
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_ipv4_ipv6_and_default_ports() {
        let s: ListenSpec = "udp:0.0.0.0:5060".parse().unwrap();
        assert_eq!(s.transport, Transport::Udp);
        assert_eq!(s.addr, "0.0.0.0:5060".parse().unwrap());
        let s: ListenSpec = "TCP:127.0.0.1:5070".parse().unwrap();
        assert_eq!(s.transport, Transport::Tcp);
        assert_eq!(s.addr.port(), 5070);
        let s: ListenSpec = "udp:[::1]:5060".parse().unwrap();
        assert_eq!(s.addr, "[::1]:5060".parse().unwrap());
        let s: ListenSpec = "tcp:[::]".parse().unwrap();
        assert_eq!(s.addr, "[::]:5060".parse().unwrap());
        let s: ListenSpec = "tcp:::1".parse().unwrap();
        assert_eq!(s.addr, "[::1]:5060".parse().unwrap());
        let s: ListenSpec = "tls:10.0.0.1".parse().unwrap();
        assert_eq!(s.addr.port(), 5061);
        assert_eq!(s.to_string(), "tls:10.0.0.1:5061");
        let s: ListenSpec = "ws:0.0.0.0".parse().unwrap();
        assert_eq!((s.transport, s.addr.port()), (Transport::Ws, 8080));
        let s: ListenSpec = "WSS:[::]".parse().unwrap();
        assert_eq!((s.transport, s.addr.port()), (Transport::Wss, 5062));
        assert_eq!(s.to_string(), "wss:[::]:5062");
        assert_eq!(
            "udp:[::1]:5060".parse::<ListenSpec>().unwrap().to_string(),
            "udp:[::1]:5060"
        );
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(matches!(
            "[::1]:5060".parse::<ListenSpec>(),
            Err(ListenSpecError::UnknownTransport { .. })
        ));
        assert!(matches!(
            "5060".parse::<ListenSpec>(),
            Err(ListenSpecError::MissingTransport(_))
        ));
        let e = "sctp:0.0.0.0:5060".parse::<ListenSpec>().unwrap_err();
        assert!(e.to_string().contains("sctp"), "{e}");
        let e = "udp:pbx.example.com:5060"
            .parse::<ListenSpec>()
            .unwrap_err();
        assert!(matches!(e, ListenSpecError::BadAddress(_)));
        assert!("udp:1.2.3.4:99999".parse::<ListenSpec>().is_err());
        assert!("udp:".parse::<ListenSpec>().is_err());
    }

    #[test]
    fn parses_lists() {
        let l = ListenSpec::parse_list("udp:0.0.0.0:5060, tcp:0.0.0.0:5060,").unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[1].transport, Transport::Tcp);
        assert!(ListenSpec::parse_list("udp:0.0.0.0:5060, bogus").is_err());
        assert!(ListenSpec::parse_list("").unwrap().is_empty());
    }
}
