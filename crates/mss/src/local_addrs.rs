//! The machine's own IP addresses, so that a request addressed to any of them counts as
//! addressed to our domain (DESIGN.md §7; see [`crate::config::ServerConfig::is_local_domain`]).
//!
//! Read from procfs without `unsafe` (no `getifaddrs`): IPv4 from `/proc/net/fib_trie`
//! (the `/32 host LOCAL` entries) and IPv6 from `/proc/net/if_inet6`. The parsers are pure
//! functions over the file text.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Every local address found (loopback included), without duplicates, IPv4 first.
/// Unreadable files give no addresses rather than an error: loopback and the configured
/// domain still work.
pub fn local_ips() -> Vec<IpAddr> {
    let v4 = std::fs::read_to_string("/proc/net/fib_trie").unwrap_or_default();
    let v6 = std::fs::read_to_string("/proc/net/if_inet6").unwrap_or_default();
    let mut out: Vec<IpAddr> = Vec::new();
    for ip in parse_fib_trie(&v4)
        .into_iter()
        .map(IpAddr::V4)
        .chain(parse_if_inet6(&v6).into_iter().map(IpAddr::V6))
    {
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    out
}

/// The host addresses of `/proc/net/fib_trie`: an `|-- ADDR` line followed by a
/// `/32 host LOCAL` line.
pub fn parse_fib_trie(text: &str) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    let mut last: Option<Ipv4Addr> = None;
    for line in text.lines() {
        let t = line.trim();
        if let Some(addr) = t.strip_prefix("|-- ") {
            last = addr.trim().parse().ok();
        } else if t.starts_with("/32 host LOCAL") {
            if let Some(ip) = last.take() {
                if !out.contains(&ip) {
                    out.push(ip);
                }
            }
        }
    }
    out
}

/// The addresses of `/proc/net/if_inet6`: 32 hex digits at the start of each line.
pub fn parse_if_inet6(text: &str) -> Vec<Ipv6Addr> {
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|hex| hex.len() == 32)
        .filter_map(|hex| u128::from_str_radix(hex, 16).ok())
        .map(Ipv6Addr::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIB: &str = "Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 192.0.2.0/24 2 0 2
           |-- 192.0.2.2
              /32 host LOCAL
Local:
           |-- 192.0.2.2
              /32 host LOCAL
";

    #[test]
    fn fib_trie_host_addresses() {
        let ips = parse_fib_trie(FIB);
        assert_eq!(
            ips,
            vec![Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(192, 0, 2, 2)]
        );
        assert!(parse_fib_trie("garbage\n|-- x\n/32 host LOCAL\n").is_empty());
    }

    #[test]
    fn if_inet6_addresses() {
        let text = "fd000000000000000000000000000002 04 40 00 82     eth0\n\
                    00000000000000000000000000000001 01 80 10 80       lo\nbad line\n";
        let ips = parse_if_inet6(text);
        assert_eq!(
            ips,
            vec!["fd00::2".parse::<Ipv6Addr>().unwrap(), Ipv6Addr::LOCALHOST]
        );
    }

    #[test]
    fn this_machine_has_loopback() {
        let ips = local_ips();
        // procfs may be missing in a sandbox; when it is there, 127.0.0.1 is in it.
        if std::path::Path::new("/proc/net/fib_trie").exists() {
            assert!(ips.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)), "{ips:?}");
        }
    }
}
