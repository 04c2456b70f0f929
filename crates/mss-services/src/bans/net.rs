//! An address or a network (`192.0.2.1`, `10.0.0.0/8`, `::1`, `2001:db8::/32`), as the
//! `ignore` list of the ban settings names them.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Why a text is not an address or network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpNetError {
    /// The address part is not an IP address.
    #[error("{0:?} is not an IP address or network (examples: 192.0.2.1, 10.0.0.0/8, ::1)")]
    Address(String),
    /// The prefix length is not a number within the address's bits.
    #[error("{0:?} has a prefix length outside 0..={1}")]
    Prefix(String, u8),
}

/// An IP network: an address and how many leading bits of it count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// The network of the first `prefix` bits of `addr` (capped at the address's length).
    pub fn new(addr: IpAddr, prefix: u8) -> IpNet {
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        IpNet {
            addr,
            prefix: prefix.min(max),
        }
    }

    /// The single address `addr`.
    pub fn host(addr: IpAddr) -> IpNet {
        IpNet::new(addr, 128)
    }

    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpNet {
    type Err = IpNetError;

    /// `ADDRESS` or `ADDRESS/PREFIX`.
    fn from_str(s: &str) -> Result<IpNet, IpNetError> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| IpNetError::Address(s.to_owned()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(IpNetError::Prefix(s.to_owned(), max)),
            },
        };
        Ok(IpNet::new(addr, prefix))
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let max = if self.addr.is_ipv4() { 32 } else { 128 };
        if self.prefix == max {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn networks_and_hosts() {
        let lo = net("127.0.0.0/8");
        assert!(lo.contains(ip("127.0.0.1")));
        assert!(lo.contains(ip("127.255.0.9")));
        assert!(lo.contains(ip("::ffff:127.0.0.1")));
        assert!(!lo.contains(ip("128.0.0.1")));
        assert!(!lo.contains(ip("::1")));
        assert!(net("::1").contains(ip("::1")));
        assert!(!net("::1").contains(ip("::2")));
        assert!(net("2001:db8::/32").contains(ip("2001:db8:ffff::1")));
        assert!(net("0.0.0.0/0").contains(ip("198.51.100.1")));
        assert!(net("::/0").contains(ip("2001:db8::1")));
        assert!(net("192.0.2.1").contains(ip("192.0.2.1")));
        assert!(!net("192.0.2.1").contains(ip("192.0.2.2")));
        assert_eq!(net("10.0.0.0/8").to_string(), "10.0.0.0/8");
        assert_eq!(net("::1").to_string(), "::1");
        assert_eq!(IpNet::host(ip("192.0.2.1")).to_string(), "192.0.2.1");
    }

    #[test]
    fn bad_text_says_why() {
        assert_eq!(
            "pbx".parse::<IpNet>().unwrap_err().to_string(),
            "\"pbx\" is not an IP address or network (examples: 192.0.2.1, 10.0.0.0/8, ::1)"
        );
        assert_eq!(
            "10.0.0.0/33".parse::<IpNet>().unwrap_err().to_string(),
            "\"10.0.0.0/33\" has a prefix length outside 0..=32"
        );
        assert!("::/129".parse::<IpNet>().is_err());
        assert!("10.0.0.0/x".parse::<IpNet>().is_err());
    }
}
