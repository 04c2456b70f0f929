//! Connection data (RFC 8866 §5.7): `c=IN IP4 192.0.2.1`, also the address part of
//! `a=rtcp:` (RFC 3605).

use std::net::IpAddr;

use crate::error::{excerpt, LineProblem};
use crate::line::fields;

/// The address type of a connection: `IP4` or `IP6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrType {
    /// `IP4`.
    Ip4,
    /// `IP6`.
    Ip6,
}

impl AddrType {
    /// `IP4` or `IP6`.
    pub fn as_str(self) -> &'static str {
        match self {
            AddrType::Ip4 => "IP4",
            AddrType::Ip6 => "IP6",
        }
    }

    /// The address type of an IP address.
    pub fn of(ip: IpAddr) -> AddrType {
        match ip {
            IpAddr::V4(_) => AddrType::Ip4,
            IpAddr::V6(_) => AddrType::Ip6,
        }
    }
}

/// A connection address: an IP address, or a host name (RFC 8866 §9 allows an FQDN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Address<'a> {
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
    /// A host name, to be resolved for the address type.
    Fqdn(&'a str),
}

impl Address<'_> {
    /// The IP address, if it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Address::Ip(ip) => Some(*ip),
            Address::Fqdn(_) => None,
        }
    }
}

/// A parsed `c=` line (or the address of `a=rtcp:`): always network type `IN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Connection<'a> {
    /// `IP4` or `IP6`.
    pub addr_type: AddrType,
    /// The address.
    pub address: Address<'a>,
    /// The multicast TTL (`/ttl` after an IPv4 address).
    pub ttl: Option<u8>,
    /// The number of multicast addresses (the last `/n`).
    pub address_count: Option<u32>,
}

impl<'a> Connection<'a> {
    /// The IP address, if the address is one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.address.ip()
    }

    /// Whether the address is `0.0.0.0` (or `::`): the RFC 2543 way to put a stream on
    /// hold (RFC 3264 §8.4).
    pub fn is_unspecified(&self) -> bool {
        self.ip().is_some_and(|ip| ip.is_unspecified())
    }

    /// Parses the value of a `c=` line: `<nettype> <addrtype> <connection-address>`.
    pub(crate) fn parse(
        value: &'a str,
        line_type: &'static str,
    ) -> Result<Connection<'a>, LineProblem> {
        let mut parts = fields(value, 0).map(|(_, f)| f);
        let (Some(net_type), Some(addr_type), Some(address), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(LineProblem::FieldCount {
                line_type,
                found: fields(value, 0).count(),
                needed: "3",
            });
        };
        Connection::from_fields(net_type, addr_type, address, line_type)
    }

    /// Checks and reads the three fields of connection data.
    pub(crate) fn from_fields(
        net_type: &str,
        addr_type: &str,
        address: &'a str,
        line_type: &'static str,
    ) -> Result<Connection<'a>, LineProblem> {
        if !net_type.eq_ignore_ascii_case("IN") {
            return Err(LineProblem::UnsupportedNetType {
                line_type,
                value: excerpt(net_type),
            });
        }
        let addr_type = if addr_type.eq_ignore_ascii_case("IP4") {
            AddrType::Ip4
        } else if addr_type.eq_ignore_ascii_case("IP6") {
            AddrType::Ip6
        } else {
            return Err(LineProblem::UnsupportedAddrType {
                line_type,
                value: excerpt(addr_type),
            });
        };
        let (host, suffix) = match address.find('/') {
            Some(slash) => (&address[..slash], Some(&address[slash..])),
            None => (address, None),
        };
        let parsed = read_address(host, addr_type, line_type)?;
        let (ttl, address_count) = match suffix {
            None => (None, None),
            Some(suffix) => {
                read_multicast(suffix, addr_type).ok_or_else(|| LineProblem::BadMulticast {
                    line_type,
                    value: excerpt(suffix),
                })?
            }
        };
        Ok(Connection {
            addr_type,
            address: parsed,
            ttl,
            address_count,
        })
    }
}

/// `IN IP4 192.0.2.1` or `IN IP6 2001:db8::1`: connection data for one address.
pub(crate) fn connection_fields(ip: IpAddr) -> String {
    format!("IN {} {}", AddrType::of(ip).as_str(), ip)
}

/// An IP address of the given type, or a host name.
fn read_address<'a>(
    host: &'a str,
    addr_type: AddrType,
    line_type: &'static str,
) -> Result<Address<'a>, LineProblem> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        if AddrType::of(ip) != addr_type {
            return Err(LineProblem::AddressTypeMismatch {
                line_type,
                addr_type: addr_type.as_str(),
                value: excerpt(host),
            });
        }
        return Ok(Address::Ip(ip));
    }
    let fqdn_chars = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    // All digits and dots is a broken IPv4 address, not a name.
    let has_letter = host.bytes().any(|b| b.is_ascii_alphabetic());
    if fqdn_chars && has_letter {
        Ok(Address::Fqdn(host))
    } else {
        Err(LineProblem::BadAddress {
            line_type,
            value: excerpt(host),
        })
    }
}

/// `/ttl[/count]` after an IPv4 address, `/count` after an IPv6 one (RFC 8866 §5.7).
fn read_multicast(suffix: &str, addr_type: AddrType) -> Option<(Option<u8>, Option<u32>)> {
    let mut numbers = suffix.strip_prefix('/')?.split('/');
    let number = |s: &str| -> Option<u32> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    match addr_type {
        AddrType::Ip4 => {
            let ttl = u8::try_from(number(numbers.next()?)?).ok()?;
            let count = match numbers.next() {
                Some(n) => Some(number(n).filter(|n| *n > 0)?),
                None => None,
            };
            numbers.next().is_none().then_some((Some(ttl), count))
        }
        AddrType::Ip6 => {
            let count = number(numbers.next()?).filter(|n| *n > 0)?;
            numbers.next().is_none().then_some((None, Some(count)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &str) -> Result<Connection<'_>, LineProblem> {
        Connection::parse(value, "c=")
    }

    #[test]
    fn unicast_ipv4_and_ipv6() {
        let c = parse("IN IP4 192.0.2.10").unwrap();
        assert_eq!(c.addr_type, AddrType::Ip4);
        assert_eq!(c.ip(), Some("192.0.2.10".parse().unwrap()));
        assert_eq!((c.ttl, c.address_count), (None, None));
        let c = parse("IN IP6 2001:db8::20").unwrap();
        assert_eq!(c.addr_type, AddrType::Ip6);
        assert_eq!(c.ip(), Some("2001:db8::20".parse().unwrap()));
    }

    #[test]
    fn host_names_and_multicast() {
        let c = parse("IN IP4 media.example.com").unwrap();
        assert_eq!(c.address, Address::Fqdn("media.example.com"));
        assert_eq!(c.ip(), None);
        let c = parse("IN IP4 233.252.0.1/127/3").unwrap();
        assert_eq!((c.ttl, c.address_count), (Some(127), Some(3)));
        let c = parse("IN IP6 ff15::101/3").unwrap();
        assert_eq!((c.ttl, c.address_count), (None, Some(3)));
    }

    #[test]
    fn hold_address_is_unspecified() {
        assert!(parse("IN IP4 0.0.0.0").unwrap().is_unspecified());
        assert!(parse("IN IP6 ::").unwrap().is_unspecified());
        assert!(!parse("IN IP4 192.0.2.1").unwrap().is_unspecified());
    }

    #[test]
    fn rejects_what_a_relay_cannot_use() {
        assert!(matches!(
            parse("IN IP4"),
            Err(LineProblem::FieldCount { found: 2, .. })
        ));
        assert!(matches!(
            parse("IN IP4 192.0.2.1 extra"),
            Err(LineProblem::FieldCount { found: 4, .. })
        ));
        assert!(matches!(
            parse("ATM NSAP 47.0005.80.ffe100"),
            Err(LineProblem::UnsupportedNetType { .. })
        ));
        assert!(matches!(
            parse("IN IPX 192.0.2.1"),
            Err(LineProblem::UnsupportedAddrType { .. })
        ));
        assert!(matches!(
            parse("IN IP4 2001:db8::1"),
            Err(LineProblem::AddressTypeMismatch { .. })
        ));
        assert!(matches!(
            parse("IN IP6 192.0.2.1"),
            Err(LineProblem::AddressTypeMismatch { .. })
        ));
        assert!(matches!(
            parse("IN IP4 192.0.2.300"),
            Err(LineProblem::BadAddress { .. })
        ));
        assert!(matches!(
            parse("IN IP4 bad_host!"),
            Err(LineProblem::BadAddress { .. })
        ));
        for suffix in ["/", "/256", "/1/0", "/1/2/3", "/x"] {
            let value = format!("IN IP4 233.252.0.1{suffix}");
            assert!(
                matches!(parse(&value), Err(LineProblem::BadMulticast { .. })),
                "{value}"
            );
        }
    }

    #[test]
    fn message_names_the_line_and_value() {
        let e = parse("IN IP4 2001:db8::1").unwrap_err();
        assert_eq!(e.to_string(), "c= address 2001:db8::1 is not of type IP4");
    }

    #[test]
    fn fields_for_an_address() {
        assert_eq!(
            connection_fields("203.0.113.5".parse().unwrap()),
            "IN IP4 203.0.113.5"
        );
        assert_eq!(
            connection_fields("2001:db8::5".parse().unwrap()),
            "IN IP6 2001:db8::5"
        );
    }
}
