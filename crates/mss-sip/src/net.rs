//! Where a message travels: the transport protocol and the flow (RFC 5626 §3) it came on.
//!
//! These types are shared by every layer above the parser: the transaction layer keeps the
//! [`Flow`] of a request so that retransmitted responses go back the same way, and the
//! transport layer maps a [`Flow`] back to a socket or a TCP connection.

use std::fmt;
use std::net::SocketAddr;

/// A SIP transport protocol, as named in the sent-protocol of a Via (RFC 3261 §18, §20.42).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// UDP (RFC 3261 §18).
    Udp,
    /// TCP (RFC 3261 §18).
    Tcp,
    /// TLS over TCP (RFC 3261 §26.2).
    Tls,
    /// SIP over WebSocket (RFC 7118).
    Ws,
    /// SIP over secure WebSocket (RFC 7118).
    Wss,
}

impl Transport {
    /// The token used in a Via header and in the `transport` URI parameter, upper case.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
        }
    }

    /// Parses a transport token, ignoring ASCII case. Unknown tokens give `None`
    /// (they are still legal in a Via: RFC 3261 §25.1 `other-transport`).
    pub fn from_token(token: &str) -> Option<Transport> {
        const ALL: [Transport; 5] = [
            Transport::Udp,
            Transport::Tcp,
            Transport::Tls,
            Transport::Ws,
            Transport::Wss,
        ];
        ALL.into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(token))
    }

    /// Reliable transports need no request retransmission (RFC 3261 §17.1.1.2, §17.1.2.2).
    pub fn is_reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identifies one connection of a connection-oriented transport inside one mss process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

/// The path a message came in on, or should go out on.
///
/// For UDP the remote address is enough. For TCP/TLS/WS the connection the request came in on
/// is reused for responses and, for registered contacts behind NAT, for later requests
/// (RFC 5626 flow reuse); `connection` names it when known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    /// Transport protocol.
    pub transport: Transport,
    /// The peer's address (source of a received packet, destination of a sent one).
    pub remote: SocketAddr,
    /// The connection to use, when the transport is connection-oriented and one exists.
    pub connection: Option<ConnectionId>,
}

impl Flow {
    /// A UDP flow to or from `remote`.
    pub fn udp(remote: SocketAddr) -> Flow {
        Flow {
            transport: Transport::Udp,
            remote,
            connection: None,
        }
    }
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport, self.remote)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_tokens_round_trip_ignoring_case() {
        for t in ["udp", "TCP", "Tls", "ws", "WSS"] {
            let parsed = Transport::from_token(t);
            assert!(parsed.is_some(), "{t}");
            assert!(parsed.is_some_and(|p| p.as_str().eq_ignore_ascii_case(t)));
        }
        assert_eq!(Transport::from_token("SCTP"), None);
        assert!(!Transport::Udp.is_reliable());
        assert!(Transport::Tcp.is_reliable());
    }
}
