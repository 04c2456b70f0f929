//! Whom a ban or a count is about: an IPv4 address, or the /64 prefix of an IPv6 address.
//!
//! One IPv6 host usually owns a whole /64 (SLAAC, privacy addresses): counting per
//! address would let it change address at every guess, and a table of single IPv6
//! addresses could be filled without end. An IPv4-mapped IPv6 address (a dual-stack
//! socket) is its IPv4 address.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use mss_auth::Origin;

/// An IPv4 address or an IPv6 /64 (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SourceKey {
    /// An IPv4 address.
    V4(Ipv4Addr),
    /// The upper 64 bits of an IPv6 address.
    V6(u64),
}

impl SourceKey {
    /// The key of a packet's source address.
    pub fn of(ip: IpAddr) -> SourceKey {
        match ip.to_canonical() {
            IpAddr::V4(v4) => SourceKey::V4(v4),
            IpAddr::V6(v6) => {
                let bits = u128::from(v6) >> 64;
                SourceKey::V6(u64::try_from(bits).unwrap_or(u64::MAX))
            }
        }
    }

    /// Whether `ip` falls under this key.
    pub fn covers(self, ip: IpAddr) -> bool {
        SourceKey::of(ip) == self
    }

    /// The digest nonce origin of requests from this key (`mss_auth::Origin`): an IPv4
    /// address in the last four bytes, an IPv6 /64 in all eight.
    pub fn origin(self) -> Origin {
        match self {
            SourceKey::V4(v4) => {
                let [a, b, c, d] = v4.octets();
                Origin([0, 0, 0, 0, a, b, c, d])
            }
            SourceKey::V6(prefix) => Origin(prefix.to_be_bytes()),
        }
    }
}

impl Hash for SourceKey {
    /// One `u64` (the IPv4 address, or the /64): one round of the hasher per lookup. Equal
    /// keys hash equal; an IPv4 key and a /64 that share the number only share a bucket.
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(match self {
            SourceKey::V4(v4) => u64::from(u32::from(*v4)),
            SourceKey::V6(prefix) => *prefix,
        });
    }
}

impl fmt::Display for SourceKey {
    /// `203.0.113.7`, or `2001:db8:1:2::/64`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceKey::V4(v4) => write!(f, "{v4}"),
            SourceKey::V6(prefix) => {
                let net = Ipv6Addr::from(u128::from(*prefix) << 64);
                write!(f, "{net}/64")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn ipv4_is_itself_and_ipv6_its_64() {
        let v4 = SourceKey::of(ip("203.0.113.7"));
        assert_eq!(v4.to_string(), "203.0.113.7");
        assert_eq!(SourceKey::of(ip("::ffff:203.0.113.7")), v4);
        assert!(!v4.covers(ip("203.0.113.8")));
        let v6 = SourceKey::of(ip("2001:db8:1:2:aaaa::5"));
        assert_eq!(v6.to_string(), "2001:db8:1:2::/64");
        assert!(v6.covers(ip("2001:db8:1:2::9")));
        assert!(!v6.covers(ip("2001:db8:1:3::9")));
        assert_eq!(SourceKey::of(ip("::1")).to_string(), "::/64");
    }

    #[test]
    fn origins_name_the_key() {
        let a = SourceKey::of(ip("203.0.113.7")).origin();
        assert_eq!(a, Origin([0, 0, 0, 0, 203, 0, 113, 7]));
        let b = SourceKey::of(ip("2001:db8:1:2::5")).origin();
        assert_eq!(b, Origin([0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2]));
        assert_eq!(b, SourceKey::of(ip("2001:db8:1:2::6")).origin());
    }
}
