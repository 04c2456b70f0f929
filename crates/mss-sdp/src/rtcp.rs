//! The RTCP port attribute (RFC 3605): `a=rtcp:<port> [<nettype> <addrtype> <address>]`,
//! for when RTCP does not use the RTP port plus one.

use std::net::IpAddr;

use crate::connection::{connection_fields, Connection};
use crate::error::LineProblem;
use crate::line::fields;
use crate::media::parse_port;

/// A parsed `a=rtcp:` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rtcp<'a> {
    /// The port RTCP is received on.
    pub port: u16,
    /// Where RTCP is received, when not at the stream's connection address.
    pub connection: Option<Connection<'a>>,
}

impl<'a> Rtcp<'a> {
    /// Parses the attribute value (what follows `a=rtcp:`).
    pub(crate) fn parse(value: &'a str) -> Result<Rtcp<'a>, LineProblem> {
        let parts: [Option<&str>; 5] = {
            let mut it = fields(value, 0).map(|(_, f)| f);
            [it.next(), it.next(), it.next(), it.next(), it.next()]
        };
        match parts {
            [Some(port), None, ..] => Ok(Rtcp {
                port: parse_port(port, "a=rtcp:")?,
                connection: None,
            }),
            [Some(port), Some(net_type), Some(addr_type), Some(address), None] => Ok(Rtcp {
                port: parse_port(port, "a=rtcp:")?,
                connection: Some(Connection::from_fields(
                    net_type, addr_type, address, "a=rtcp:",
                )?),
            }),
            _ => Err(LineProblem::FieldCount {
                line_type: "a=rtcp:",
                found: fields(value, 0).count(),
                needed: "1 or 4",
            }),
        }
    }
}

/// The text of an `a=rtcp:` line for `port`, with `ip` when given.
pub(crate) fn rtcp_line(port: u16, ip: Option<IpAddr>) -> String {
    match ip {
        Some(ip) => format!("a=rtcp:{port} {}", connection_fields(ip)),
        None => format!("a=rtcp:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::AddrType;

    #[test]
    fn port_alone_and_with_an_address() {
        assert_eq!(
            Rtcp::parse("7079").unwrap(),
            Rtcp {
                port: 7079,
                connection: None
            }
        );
        let r = Rtcp::parse("49171 IN IP6 2001:db8::20").unwrap();
        assert_eq!(r.port, 49171);
        let c = r.connection.unwrap();
        assert_eq!(c.addr_type, AddrType::Ip6);
        assert_eq!(c.ip(), Some("2001:db8::20".parse().unwrap()));
    }

    #[test]
    fn rejects_bad_ports_and_partial_addresses() {
        assert!(matches!(
            Rtcp::parse("70000"),
            Err(LineProblem::PortOutOfRange { .. })
        ));
        assert!(matches!(Rtcp::parse("x"), Err(LineProblem::BadPort { .. })));
        assert!(matches!(
            Rtcp::parse(""),
            Err(LineProblem::FieldCount { found: 0, .. })
        ));
        assert!(matches!(
            Rtcp::parse("4001 IN IP4"),
            Err(LineProblem::FieldCount { found: 3, .. })
        ));
        assert!(matches!(
            Rtcp::parse("4001 IN IP4 2001:db8::1"),
            Err(LineProblem::AddressTypeMismatch { .. })
        ));
        assert_eq!(
            Rtcp::parse("99999").unwrap_err().to_string(),
            "a=rtcp: port 99999 out of range"
        );
    }

    #[test]
    fn lines_for_a_port_and_address() {
        assert_eq!(rtcp_line(4001, None), "a=rtcp:4001");
        assert_eq!(
            rtcp_line(4001, Some("203.0.113.5".parse().unwrap())),
            "a=rtcp:4001 IN IP4 203.0.113.5"
        );
    }
}
