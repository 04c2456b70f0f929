//! Where a line's REGISTERs go: the lookup asked of the caller and the ordered targets it
//! answers with (RFC 3263 §4: SRV ordering by priority and weight is the caller's; failing
//! over to the next target on timeout or `503` is ours, §4.3).

use std::net::{IpAddr, SocketAddr};

use mss_sip::Transport;

/// One place to send REGISTERs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// The registrar's address.
    pub addr: SocketAddr,
    /// The transport to reach it over.
    pub transport: Transport,
    /// Our address as the registrar should see it: the Via sent-by and the Contact host.
    pub local: SocketAddr,
}

/// A DNS lookup the caller performs for a line, answering with
/// [`Registration::handle_resolved`](crate::lines::Registration::handle_resolved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveRequest {
    /// The registrar host: a name, or an IP literal that needs no lookup.
    pub host: String,
    /// The configured port, if any.
    pub port: Option<u16>,
    /// The transport of the line.
    pub transport: Transport,
    /// True when SRV records should be asked first (`_sip._udp.host`, `_sip._tcp.host`,
    /// `_sips._tcp.host`; RFC 3263 §4.2): the host is a name and no port is configured. The
    /// caller falls back to A/AAAA records on [`ResolveRequest::default_port`] without SRV.
    pub srv: bool,
}

impl ResolveRequest {
    /// The lookup for `host` with an optional `port`.
    pub fn new(host: &str, port: Option<u16>, transport: Transport) -> ResolveRequest {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let srv = port.is_none() && host.parse::<IpAddr>().is_err();
        ResolveRequest {
            host,
            port,
            transport,
            srv,
        }
    }

    /// The port to use without SRV records: the configured one, else 5060 (5061 for TLS and
    /// WSS, RFC 3261 §19.1.2).
    pub fn default_port(&self) -> u16 {
        self.port.unwrap_or(match self.transport {
            Transport::Tls | Transport::Wss => 5061,
            _ => 5060,
        })
    }

    /// The SRV name to look up (`_sip._udp.host` …), when [`ResolveRequest::srv`] is set.
    pub fn srv_name(&self) -> Option<String> {
        if !self.srv {
            return None;
        }
        let (service, proto) = match self.transport {
            Transport::Udp => ("sip", "udp"),
            Transport::Tcp | Transport::Ws => ("sip", "tcp"),
            Transport::Tls | Transport::Wss => ("sips", "tcp"),
        };
        Some(format!("_{service}._{proto}.{}", self.host))
    }
}

/// The ordered targets of one resolution and the one in use.
#[derive(Debug, Clone, Default)]
pub(crate) struct Targets {
    list: Vec<Target>,
    index: usize,
}

impl Targets {
    /// Takes a fresh list, starting at its first target.
    pub(crate) fn set(&mut self, list: Vec<Target>) {
        self.list = list;
        self.index = 0;
    }

    /// The target in use, `None` before a resolution (or after [`Targets::clear`]).
    pub(crate) fn current(&self) -> Option<&Target> {
        self.list.get(self.index)
    }

    /// Moves to the next target; false when there is none left.
    pub(crate) fn advance(&mut self) -> bool {
        if self.index + 1 < self.list.len() {
            self.index += 1;
            true
        } else {
            false
        }
    }

    /// Forgets the list, so that the next attempt resolves again.
    pub(crate) fn clear(&mut self) {
        self.list.clear();
        self.index = 0;
    }

    /// True when nothing is resolved.
    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(port: u16) -> Target {
        Target {
            addr: SocketAddr::from(([192, 0, 2, 1], port)),
            transport: Transport::Udp,
            local: SocketAddr::from(([192, 0, 2, 9], 5060)),
        }
    }

    #[test]
    fn srv_only_for_names_without_port() {
        let r = ResolveRequest::new("sip.example.net", None, Transport::Udp);
        assert_eq!(r.srv_name().as_deref(), Some("_sip._udp.sip.example.net"));
        assert_eq!(r.default_port(), 5060);
        let r = ResolveRequest::new("sip.example.net", None, Transport::Tls);
        assert_eq!(r.srv_name().as_deref(), Some("_sips._tcp.sip.example.net"));
        assert_eq!(r.default_port(), 5061);
        assert!(!ResolveRequest::new("sip.example.net", Some(5080), Transport::Udp).srv);
        assert!(!ResolveRequest::new("192.0.2.1", None, Transport::Udp).srv);
        let v6 = ResolveRequest::new("[2001:db8::1]", None, Transport::Tcp);
        assert!(!v6.srv);
        assert_eq!(v6.host, "2001:db8::1");
    }

    #[test]
    fn fails_over_in_order() {
        let mut ts = Targets::default();
        assert!(ts.current().is_none() && ts.is_empty());
        ts.set(vec![t(1), t(2)]);
        assert_eq!(ts.current().map(|x| x.addr.port()), Some(1));
        assert!(ts.advance());
        assert_eq!(ts.current().map(|x| x.addr.port()), Some(2));
        assert!(!ts.advance());
        ts.clear();
        assert!(ts.is_empty());
    }
}
