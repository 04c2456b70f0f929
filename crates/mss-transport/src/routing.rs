//! Where a response goes (RFC 3261 §18.2.2, RFC 3581 §4) and how the top Via of a received
//! request is stamped with `received`/`rport` (RFC 3261 §18.2.1, RFC 3581 §4).
//!
//! Both are pure functions of the request's [`Flow`] and its top Via: no sockets, no DNS.

use std::net::{IpAddr, SocketAddr};

use mss_sip::net::{Flow, Transport};

use crate::config::{DEFAULT_SIPS_PORT, DEFAULT_SIP_PORT};

/// The `rport` parameter of a Via (RFC 3581 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Rport {
    /// No `rport` parameter: the client did not ask for symmetric response routing.
    #[default]
    Absent,
    /// `;rport` without a value: the client asks the server to fill in the source port.
    Empty,
    /// `;rport=N`, as stamped by the server that received the request.
    Value(u16),
}

impl Rport {
    /// Whether the parameter is present, with or without a value.
    pub fn is_present(self) -> bool {
        !matches!(self, Rport::Absent)
    }
}

/// The parts of a top Via that decide where a response goes.
///
/// Fill it from the parsed Via of the request, after [`via_stamp`] was applied or not:
/// both give the same route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViaRoute<'a> {
    /// The sent-by host: a domain name, an IPv4 address or an IPv6 reference (`[…]`).
    pub host: &'a str,
    /// The sent-by port, when the Via names one.
    pub port: Option<u16>,
    /// The `received` parameter, when present and a valid IP address.
    pub received: Option<IpAddr>,
    /// The `rport` parameter.
    pub rport: Rport,
    /// The `maddr` parameter, when present.
    pub maddr: Option<&'a str>,
}

/// Where to send a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseRoute {
    /// Send on this flow. For a reliable transport it names the request's connection; its
    /// `remote` is where to connect if that connection is closed (RFC 3261 §18.2.2).
    Flow(Flow),
    /// The Via names a host (in `maddr`) that must be resolved first (RFC 3263 §5).
    /// mss does not resolve foreign names on its own: the caller decides.
    Resolve {
        /// The host to resolve.
        host: String,
        /// The port to use.
        port: u16,
        /// The transport to use.
        transport: Transport,
    },
}

impl ResponseRoute {
    /// The flow, when no name has to be resolved.
    pub fn flow(&self) -> Option<Flow> {
        match self {
            ResponseRoute::Flow(flow) => Some(*flow),
            ResponseRoute::Resolve { .. } => None,
        }
    }
}

/// The default port of a transport when a Via names none (RFC 3261 §18.1.1).
pub fn default_port(transport: Transport) -> u16 {
    match transport {
        Transport::Tls | Transport::Wss => DEFAULT_SIPS_PORT,
        Transport::Udp | Transport::Tcp | Transport::Ws => DEFAULT_SIP_PORT,
    }
}

/// Parses a sent-by host or `maddr` as an IP address (IPv6 with or without brackets).
pub fn host_ip(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

/// Where the response to a request that arrived on `request` with top Via `via` goes.
///
/// The steps of RFC 3261 §18.2.2, with RFC 3581 §4 inserted between the second and third:
/// 1. Reliable transport: the connection the request came on; if it is closed, a new
///    connection to the `received` address (the source IP) and the sent-by port (or the
///    transport's default).
/// 2. `maddr` present: that address, with the sent-by port or 5060. A multicast `maddr`
///    would need the Via `ttl` (default 1); mss sends it as unicast with the default TTL.
/// 3. `rport` present (RFC 3581 §4): the `received` address (the source IP) and the `rport`
///    value (the source port). Symmetric response routing also needs the response to leave
///    from the socket the request came in on: pass the request's local address to
///    [`Transports::send_from`](crate::Transports::send_from).
/// 4. Otherwise the `received` address, or the source IP when the Via has none (then the
///    sent-by host is the source IP), with the sent-by port or 5060. Sending to the source
///    IP rather than resolving a sent-by name keeps mss from contacting foreign hosts.
pub fn response_route(request: &Flow, via: &ViaRoute<'_>) -> ResponseRoute {
    let transport = request.transport;
    let source_ip = via.received.unwrap_or(request.remote.ip());
    let sent_by_port = via.port.unwrap_or(default_port(transport));
    if transport.is_reliable() {
        return ResponseRoute::Flow(Flow {
            transport,
            remote: SocketAddr::new(source_ip, sent_by_port),
            connection: request.connection,
        });
    }
    if let Some(maddr) = via.maddr {
        let port = via.port.unwrap_or(DEFAULT_SIP_PORT);
        return match host_ip(maddr) {
            Some(ip) => ResponseRoute::Flow(Flow {
                transport,
                remote: SocketAddr::new(ip, port),
                connection: None,
            }),
            None => ResponseRoute::Resolve {
                host: maddr.to_owned(),
                port,
                transport,
            },
        };
    }
    let port = match via.rport {
        Rport::Value(port) => port,
        Rport::Empty => request.remote.port(),
        Rport::Absent => sent_by_port,
    };
    ResponseRoute::Flow(Flow {
        transport,
        remote: SocketAddr::new(source_ip, port),
        connection: None,
    })
}

/// The parameters to set on the top Via of a received request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ViaStamp {
    /// Set `received=` to this address (replacing any value the client sent).
    pub received: Option<IpAddr>,
    /// Set `rport=` to this port (replacing the empty or client-sent value).
    pub rport: Option<u16>,
}

impl ViaStamp {
    /// Whether nothing is to be changed.
    pub fn is_empty(&self) -> bool {
        self.received.is_none() && self.rport.is_none()
    }
}

/// What to add to the top Via of a request received from `source` (RFC 3261 §18.2.1,
/// RFC 3581 §4), whatever the transport:
/// - `received` = the source IP when the sent-by host is a domain name or an IP address
///   that differs from it, and always when `rport` is present (RFC 3581 §4: "even if it
///   is identical to the value of the sent-by component");
/// - `rport` = the source port when the Via carries `rport`. A value the client wrote
///   itself is replaced too: `received` and `rport` describe what this server saw, and a
///   client must not steer responses to another port.
pub fn via_stamp(host: &str, rport: Rport, source: SocketAddr) -> ViaStamp {
    let source_ip = source.ip().to_canonical();
    let same_ip = host_ip(host).is_some_and(|ip| ip.to_canonical() == source_ip);
    ViaStamp {
        received: (!same_ip || rport.is_present()).then_some(source.ip()),
        rport: rport.is_present().then_some(source.port()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use mss_sip::net::ConnectionId;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn via(host: &str) -> ViaRoute<'_> {
        ViaRoute {
            host,
            port: None,
            received: None,
            rport: Rport::Absent,
            maddr: None,
        }
    }

    fn tcp_flow(remote: &str) -> Flow {
        Flow {
            transport: Transport::Tcp,
            remote: addr(remote),
            connection: Some(ConnectionId(7)),
        }
    }

    #[test]
    fn reliable_uses_the_connection_then_received_and_sent_by_port() {
        let request = tcp_flow("192.0.2.4:40123");
        let v = ViaRoute {
            port: Some(5070),
            received: Some("192.0.2.4".parse().unwrap()),
            rport: Rport::Value(40123),
            ..via("ua.example.com")
        };
        let flow = response_route(&request, &v).flow().unwrap();
        assert_eq!(flow.connection, Some(ConnectionId(7)));
        assert_eq!(flow.transport, Transport::Tcp);
        // Fallback when the connection is gone: received IP, sent-by port, not rport.
        assert_eq!(flow.remote, addr("192.0.2.4:5070"));
        // No port in the Via: the transport's default; no received: the source IP.
        let flow = response_route(&request, &via("192.0.2.4")).flow().unwrap();
        assert_eq!(flow.remote, addr("192.0.2.4:5060"));
        let tls = Flow {
            transport: Transport::Tls,
            ..request
        };
        let flow = response_route(&tls, &via("192.0.2.4")).flow().unwrap();
        assert_eq!(flow.remote, addr("192.0.2.4:5061"));
    }

    #[test]
    fn reliable_ignores_maddr() {
        let request = tcp_flow("192.0.2.4:40123");
        let v = ViaRoute {
            maddr: Some("239.255.255.1"),
            ..via("192.0.2.4")
        };
        let flow = response_route(&request, &v).flow().unwrap();
        assert_eq!(flow.connection, Some(ConnectionId(7)));
    }

    #[test]
    fn udp_maddr_wins_over_received_and_rport() {
        let request = Flow::udp(addr("192.0.2.4:40000"));
        let v = ViaRoute {
            port: Some(5080),
            received: Some("192.0.2.4".parse().unwrap()),
            rport: Rport::Value(40000),
            maddr: Some("239.255.255.1"),
            ..via("ua.example.com")
        };
        let route = response_route(&request, &v);
        assert_eq!(
            route,
            ResponseRoute::Flow(Flow::udp(addr("239.255.255.1:5080")))
        );
        let v = ViaRoute {
            port: None,
            maddr: Some("[2001:db8::9]"),
            ..v
        };
        let flow = response_route(&request, &v).flow().unwrap();
        assert_eq!(flow.remote, addr("[2001:db8::9]:5060"));
    }

    #[test]
    fn udp_maddr_host_name_must_be_resolved_by_the_caller() {
        let request = Flow::udp(addr("192.0.2.4:40000"));
        let v = ViaRoute {
            maddr: Some("mcast.example.com"),
            ..via("192.0.2.4")
        };
        assert_eq!(
            response_route(&request, &v),
            ResponseRoute::Resolve {
                host: "mcast.example.com".into(),
                port: 5060,
                transport: Transport::Udp
            }
        );
        assert_eq!(response_route(&request, &v).flow(), None);
    }

    #[test]
    fn udp_rport_goes_to_source_address_and_port() {
        let request = Flow::udp(addr("198.51.100.7:31000"));
        // Stamped: received + rport value.
        let v = ViaRoute {
            port: Some(5060),
            received: Some("198.51.100.7".parse().unwrap()),
            rport: Rport::Value(31000),
            ..via("10.0.0.2")
        };
        let flow = response_route(&request, &v).flow().unwrap();
        assert_eq!(flow, Flow::udp(addr("198.51.100.7:31000")));
        // Not yet stamped: empty rport means the source port.
        let v = ViaRoute {
            port: Some(5060),
            rport: Rport::Empty,
            ..via("10.0.0.2")
        };
        let flow = response_route(&request, &v).flow().unwrap();
        assert_eq!(flow, Flow::udp(addr("198.51.100.7:31000")));
    }

    #[test]
    fn udp_received_without_rport_uses_sent_by_port() {
        let request = Flow::udp(addr("198.51.100.7:31000"));
        let v = ViaRoute {
            port: Some(5070),
            received: Some("198.51.100.7".parse().unwrap()),
            ..via("ua.example.com")
        };
        let flow = response_route(&request, &v).flow().unwrap();
        assert_eq!(flow.remote, addr("198.51.100.7:5070"));
        let v = ViaRoute { port: None, ..v };
        let flow = response_route(&request, &v).flow().unwrap();
        assert_eq!(flow.remote, addr("198.51.100.7:5060"));
    }

    #[test]
    fn udp_plain_sent_by_goes_to_source_ip_and_sent_by_port() {
        let request = Flow::udp(addr("192.0.2.4:5062"));
        let v = ViaRoute {
            port: Some(5062),
            ..via("192.0.2.4")
        };
        let flow = response_route(&request, &v).flow().unwrap();
        assert_eq!(flow, Flow::udp(addr("192.0.2.4:5062")));
        // A name in sent-by is not resolved: the source IP is used.
        let flow = response_route(&request, &via("ua.example.com"))
            .flow()
            .unwrap();
        assert_eq!(flow, Flow::udp(addr("192.0.2.4:5060")));
    }

    #[test]
    fn stamp_received_when_sent_by_differs() {
        let src = addr("192.0.2.4:5060");
        let s = via_stamp("bobspc.biloxi.com", Rport::Absent, src);
        assert_eq!(s.received, Some("192.0.2.4".parse().unwrap()));
        assert_eq!(s.rport, None);
        let s = via_stamp("10.1.1.1", Rport::Absent, src);
        assert_eq!(s.received, Some("192.0.2.4".parse().unwrap()));
        let s = via_stamp("192.0.2.4", Rport::Absent, src);
        assert!(s.is_empty());
    }

    #[test]
    fn stamp_rport_and_received_even_when_identical() {
        let src = addr("192.0.2.4:41000");
        let s = via_stamp("192.0.2.4", Rport::Empty, src);
        assert_eq!(s.received, Some("192.0.2.4".parse().unwrap()));
        assert_eq!(s.rport, Some(41000));
        // A value the client wrote is replaced with what we saw.
        let s = via_stamp("192.0.2.4", Rport::Value(9), src);
        assert_eq!(s.rport, Some(41000));
    }

    #[test]
    fn stamp_compares_ipv6_and_mapped_addresses() {
        let src = addr("[2001:db8::1]:5060");
        assert!(via_stamp("[2001:db8::1]", Rport::Absent, src).is_empty());
        assert!(via_stamp("[2001:DB8:0::1]", Rport::Absent, src).is_empty());
        assert!(!via_stamp("[2001:db8::2]", Rport::Absent, src).is_empty());
        let mapped = addr("[::ffff:192.0.2.4]:5060");
        assert!(via_stamp("192.0.2.4", Rport::Absent, mapped).is_empty());
    }
}
