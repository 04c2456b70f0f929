//! Which hosts are "us": the configured SIP domain, its aliases, and the local addresses
//! mss listens on (DESIGN §7).
//!
//! A Request-URI (or To) host that is one of ours is our domain **with or without a port**:
//! linphonec drops the port from chat targets, sipsak mangles five-digit ports, so the port
//! is not compared. Anything else is a foreign domain, which mss answers itself and never
//! forwards (it is not an open relay).

use std::net::IpAddr;

/// The domain names and addresses mss serves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalDomains {
    /// The main domain (digest realm of local users), lower case, no trailing dot.
    primary: String,
    /// Aliases, lower case, no trailing dot.
    aliases: Vec<String>,
    /// Local addresses (the listening addresses, or the interface addresses behind a
    /// wildcard listener), given at runtime.
    addrs: Vec<IpAddr>,
}

/// Lower case without a trailing dot (`PBX.Example.COM.` → `pbx.example.com`).
fn normalize(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// The host without IPv6 brackets and without a trailing dot.
fn bare(host: &str) -> &str {
    let h = host.trim();
    let h = h
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(h);
    h.strip_suffix('.').unwrap_or(h)
}

impl LocalDomains {
    /// Our domain `primary` (also the digest realm), with no alias and no address yet.
    pub fn new(primary: &str) -> LocalDomains {
        LocalDomains {
            primary: normalize(primary),
            aliases: Vec::new(),
            addrs: Vec::new(),
        }
    }

    /// Adds a domain alias (chainable).
    pub fn with_alias(mut self, alias: &str) -> LocalDomains {
        self.add_alias(alias);
        self
    }

    /// Adds a local address (chainable).
    pub fn with_addr(mut self, addr: IpAddr) -> LocalDomains {
        self.add_addr(addr);
        self
    }

    /// Adds a domain alias; an alias that is an IP address literal is added as an address.
    pub fn add_alias(&mut self, alias: &str) {
        if let Ok(ip) = bare(alias).parse::<IpAddr>() {
            self.add_addr(ip);
            return;
        }
        let a = normalize(alias);
        if !a.is_empty() && a != self.primary && !self.aliases.contains(&a) {
            self.aliases.push(a);
        }
    }

    /// Adds a local address (e.g. a listening address, or each interface address when
    /// listening on `0.0.0.0`). Unspecified addresses are ignored.
    pub fn add_addr(&mut self, addr: IpAddr) {
        if !addr.is_unspecified() && !self.addrs.contains(&addr) {
            self.addrs.push(addr);
        }
    }

    /// The main domain, lower case.
    pub fn primary(&self) -> &str {
        &self.primary
    }

    /// The aliases, lower case.
    pub fn aliases(&self) -> &[String] {
        &self.aliases
    }

    /// The local addresses.
    pub fn addrs(&self) -> &[IpAddr] {
        &self.addrs
    }

    /// Whether `host` (a URI host: name, IPv4, or `[IPv6]`, no port) is ours. Names compare
    /// ignoring ASCII case and a trailing dot.
    pub fn is_local(&self, host: &str) -> bool {
        let h = bare(host);
        if h.is_empty() {
            return false;
        }
        if h.eq_ignore_ascii_case(&self.primary)
            || self.aliases.iter().any(|a| h.eq_ignore_ascii_case(a))
        {
            return true;
        }
        match h.parse::<IpAddr>() {
            Ok(ip) => self.addrs.contains(&ip),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_ignore_case_and_trailing_dot() {
        let d = LocalDomains::new("PBX.example.com.").with_alias("Alias.Example.Org");
        assert_eq!(d.primary(), "pbx.example.com");
        assert!(d.is_local("pbx.example.com"));
        assert!(d.is_local("PBX.EXAMPLE.COM."));
        assert!(d.is_local("alias.example.org"));
        assert!(!d.is_local("example.com"));
        assert!(!d.is_local("evil-pbx.example.com"));
        assert!(!d.is_local(""));
    }

    #[test]
    fn addresses_with_or_without_brackets() {
        let d = LocalDomains::new("pbx")
            .with_addr("127.0.0.1".parse().unwrap())
            .with_addr("::1".parse().unwrap())
            .with_addr("0.0.0.0".parse().unwrap())
            .with_alias("192.0.2.5");
        assert!(d.is_local("127.0.0.1"));
        assert!(d.is_local("[::1]"));
        assert!(d.is_local("192.0.2.5"));
        assert!(!d.is_local("0.0.0.0"));
        assert!(!d.is_local("127.0.0.2"));
        assert_eq!(d.addrs().len(), 3);
        assert!(d.aliases().is_empty());
    }
}
