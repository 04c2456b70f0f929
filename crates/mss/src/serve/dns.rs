//! Where a line's REGISTERs go: the DNS lookup a line's
//! [`LineOutput::Resolve`](mss_services::lines::LineOutput::Resolve) asks for (RFC 3263 §4).
//!
//! - an IP literal needs no lookup: one address, on the configured port or 5060/5061;
//! - a name with a port: its A and AAAA records (RFC 3263 §4.2, "if the TARGET was not a
//!   numeric IP address but a port is present in the URI, the client performs an A or AAAA
//!   record lookup");
//! - a name without a port: the SRV records of `_sip._udp.NAME` (`_sip._tcp`, `_sips._tcp`
//!   by transport), ordered by priority and weight ([`order_srv`], RFC 2782), each target's
//!   A/AAAA records on the SRV port; without SRV records, the name's A/AAAA records on 5060
//!   (5061 for TLS).
//!
//! NAPTR (RFC 3263 §4.1) is not consulted: the transport is configured per line.
//!
//! Lookups run in a spawned task ([`resolve`]) bounded by [`LOOKUP_LIMIT`]; the worker gets
//! the addresses back on its channel and hands them to the core, which makes the line's
//! targets of them (each with our own address towards it, `Network::sent_by`). The
//! resolver reads the system configuration (`/etc/resolv.conf`, `/etc/hosts`); `localhost`
//! is answered without a query (RFC 6761 §6.3).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{LookupIpStrategy, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::TokioResolver;
use mss_services::lines::ResolveRequest;
use rand::{Rng, SeedableRng};

/// The longest a whole resolution (SRV and every A/AAAA query) may take; past it the line
/// counts the registrar as having no address and retries with backoff.
pub(crate) const LOOKUP_LIMIT: Duration = Duration::from_secs(8);
/// The timeout of one DNS query.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// Most SRV targets followed for one name (each costs an A/AAAA lookup).
const MAX_SRV_TARGETS: usize = 8;

/// Why a resolution gave no address.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DnsError {
    /// The A/AAAA lookup failed (no such name, no records, no answer).
    #[error("no address for {name}: {source}")]
    Lookup {
        /// The name looked up.
        name: String,
        /// What the resolver said.
        #[source]
        source: hickory_resolver::ResolveError,
    },
    /// The lookups together took longer than [`LOOKUP_LIMIT`].
    #[error("looking up {name} took longer than {} s", LOOKUP_LIMIT.as_secs())]
    TimedOut {
        /// The name looked up.
        name: String,
    },
    /// Shutdown cancelled the lookup.
    #[error("looking up {name} was cancelled by shutdown")]
    Cancelled {
        /// The name looked up.
        name: String,
    },
    /// The SRV records name only targets that have no address.
    #[error("none of the SRV targets of {name} has an address")]
    NoSrvTargetAddress {
        /// The SRV name.
        name: String,
    },
}

/// The system resolver with short query timeouts. IPv4 addresses are asked first and IPv6
/// only when a name has none (most SIP listeners are IPv4, and a name found in
/// `/etc/hosts` then costs no query). Without a usable `/etc/resolv.conf` it still answers
/// from `/etc/hosts` and `localhost`.
pub(crate) fn system_resolver() -> TokioResolver {
    let provider = TokioConnectionProvider::default();
    let mut builder = match TokioResolver::builder(provider.clone()) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "no DNS configuration; line registrars resolve from /etc/hosts only");
            TokioResolver::builder_with_config(ResolverConfig::new(), provider)
        }
    };
    let opts: &mut ResolverOpts = builder.options_mut();
    opts.timeout = QUERY_TIMEOUT;
    opts.attempts = 2;
    opts.ip_strategy = LookupIpStrategy::Ipv4thenIpv6;
    builder.build()
}

/// One SRV record (RFC 2782), as far as ordering needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SrvRecord {
    /// Lower is tried first.
    pub(crate) priority: u16,
    /// Share of the selections among records of one priority.
    pub(crate) weight: u16,
    /// The port to use.
    pub(crate) port: u16,
    /// The host to look up (without the trailing dot).
    pub(crate) target: String,
}

/// Orders SRV records for trying (RFC 2782, "Usage rules"): by priority, lowest first;
/// within one priority by weighted random selection, in which a record's chance to come
/// next is its weight over the sum of the remaining weights, and zero-weight records come
/// first in the running sums so they are picked rarely but still picked. A lone `.` target
/// means "the service is decidedly not available" and yields nothing.
pub(crate) fn order_srv(mut records: Vec<SrvRecord>, rng: &mut impl Rng) -> Vec<SrvRecord> {
    records.retain(|r| !r.target.is_empty() && r.target != ".");
    records.sort_by_key(|r| (r.priority, r.weight != 0));
    let mut ordered = Vec::with_capacity(records.len());
    while !records.is_empty() {
        let priority = records.first().map_or(0, |r| r.priority);
        let end = records
            .iter()
            .take_while(|r| r.priority == priority)
            .count();
        let mut group: Vec<SrvRecord> = records.drain(..end).collect();
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| u32::from(r.weight)).sum();
            let pick = rng.gen_range(0..=total);
            let mut running = 0u32;
            let index = group
                .iter()
                .position(|r| {
                    running += u32::from(r.weight);
                    running >= pick
                })
                .unwrap_or(0);
            ordered.push(group.remove(index));
        }
    }
    ordered
}

/// The addresses to try for `req`, in order, without duplicates.
///
/// # Errors
/// [`DnsError`] when nothing was found or the lookups took longer than [`LOOKUP_LIMIT`].
pub(crate) async fn resolve(
    resolver: &TokioResolver,
    req: &ResolveRequest,
) -> Result<Vec<SocketAddr>, DnsError> {
    if let Ok(ip) = req.host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, req.default_port())]);
    }
    match tokio::time::timeout(LOOKUP_LIMIT, resolve_name(resolver, req)).await {
        Ok(r) => r,
        Err(_) => Err(DnsError::TimedOut {
            name: req.host.clone(),
        }),
    }
}

async fn resolve_name(
    resolver: &TokioResolver,
    req: &ResolveRequest,
) -> Result<Vec<SocketAddr>, DnsError> {
    if let Some(srv_name) = req.srv_name() {
        let records = match resolver.srv_lookup(fqdn(&srv_name)).await {
            Ok(lookup) => lookup
                .iter()
                .map(|srv| SrvRecord {
                    priority: srv.priority(),
                    weight: srv.weight(),
                    port: srv.port(),
                    target: srv.target().to_utf8().trim_end_matches('.').to_owned(),
                })
                .collect(),
            Err(e) => {
                // RFC 3263 §4.2: no SRV records → A/AAAA of the name on the default port.
                tracing::debug!(name = %srv_name, error = %e, "no SRV records");
                Vec::new()
            }
        };
        if !records.is_empty() {
            let ordered = order_srv(records, &mut rand::rngs::StdRng::from_entropy());
            let mut out = Vec::new();
            for r in ordered.iter().take(MAX_SRV_TARGETS) {
                match addresses(resolver, &r.target, r.port).await {
                    Ok(addrs) => push_unique(&mut out, addrs),
                    Err(e) => tracing::debug!(error = %e, "SRV target skipped"),
                }
            }
            return if out.is_empty() {
                Err(DnsError::NoSrvTargetAddress { name: srv_name })
            } else {
                Ok(out)
            };
        }
    }
    addresses(resolver, &req.host, req.default_port()).await
}

/// The A/AAAA records of `name` on `port`.
async fn addresses(
    resolver: &TokioResolver,
    name: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, DnsError> {
    let lookup = resolver
        .lookup_ip(fqdn(name))
        .await
        .map_err(|source| DnsError::Lookup {
            name: name.to_owned(),
            source,
        })?;
    Ok(lookup.iter().map(|ip| SocketAddr::new(ip, port)).collect())
}

/// `name.`: registrar names are absolute, so no search domain is appended.
fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    }
}

fn push_unique(out: &mut Vec<SocketAddr>, addrs: Vec<SocketAddr>) {
    for a in addrs {
        if !out.contains(&a) {
            out.push(a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mss_sip::Transport;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn srv(priority: u16, weight: u16, target: &str) -> SrvRecord {
        SrvRecord {
            priority,
            weight,
            port: 5060,
            target: target.to_owned(),
        }
    }

    #[test]
    fn srv_priority_first_then_weight() {
        let mut rng = StdRng::seed_from_u64(7);
        let records = vec![
            srv(20, 0, "backup"),
            srv(10, 60, "a"),
            srv(10, 40, "b"),
            srv(30, 5, "."),
        ];
        for _ in 0..50 {
            let o = order_srv(records.clone(), &mut rng);
            let names: Vec<&str> = o.iter().map(|r| r.target.as_str()).collect();
            assert_eq!(names.len(), 3, "the '.' target is dropped");
            assert_eq!(names[2], "backup");
            assert!(names[..2].contains(&"a") && names[..2].contains(&"b"));
        }
    }

    #[test]
    fn srv_weights_share_the_first_place() {
        let mut rng = StdRng::seed_from_u64(11);
        let records = vec![srv(1, 90, "heavy"), srv(1, 10, "light"), srv(1, 0, "zero")];
        let mut firsts = std::collections::HashMap::new();
        for _ in 0..2000 {
            let o = order_srv(records.clone(), &mut rng);
            assert_eq!(o.len(), 3);
            *firsts.entry(o[0].target.clone()).or_insert(0u32) += 1;
        }
        let heavy = firsts.get("heavy").copied().unwrap_or(0);
        let light = firsts.get("light").copied().unwrap_or(0);
        let zero = firsts.get("zero").copied().unwrap_or(0);
        assert!((1650..=1950).contains(&heavy), "{firsts:?}");
        assert!((120..=300).contains(&light), "{firsts:?}");
        // Weight 0 wins only when the random pick is exactly 0 (RFC 2782).
        assert!(zero < 40, "{firsts:?}");
    }

    #[test]
    fn srv_all_zero_weights_still_all_listed() {
        let mut rng = StdRng::seed_from_u64(3);
        let o = order_srv(vec![srv(5, 0, "x"), srv(5, 0, "y")], &mut rng);
        assert_eq!(o.len(), 2);
        assert!(order_srv(Vec::new(), &mut rng).is_empty());
    }

    #[tokio::test]
    async fn ip_literal_needs_no_lookup() {
        let r = system_resolver();
        let req = ResolveRequest::new("127.0.0.1", None, Transport::Udp);
        assert_eq!(
            resolve(&r, &req).await.unwrap(),
            vec!["127.0.0.1:5060".parse::<SocketAddr>().unwrap()]
        );
        let req = ResolveRequest::new("[::1]", Some(5070), Transport::Tcp);
        assert_eq!(
            resolve(&r, &req).await.unwrap(),
            vec!["[::1]:5070".parse::<SocketAddr>().unwrap()]
        );
    }

    #[tokio::test]
    async fn localhost_with_a_port_resolves_locally() {
        let r = system_resolver();
        let req = ResolveRequest::new("localhost", Some(5070), Transport::Udp);
        let addrs = resolve(&r, &req).await.unwrap();
        assert!(!addrs.is_empty());
        assert!(
            addrs
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 5070),
            "{addrs:?}"
        );
    }

    /// A DNS server on 127.0.0.1 with a fixed zone: `_sip._udp.pbx.lan` has SRV records
    /// (priority 5 → `a.pbx.lan:5080`, priority 10 → `b.pbx.lan:5070`), `nosrv.lan` only an
    /// A record; everything else is NXDOMAIN. Returns a resolver that asks it alone.
    async fn stub_dns() -> TokioResolver {
        use hickory_resolver::config::NameServerConfigGroup;
        use hickory_resolver::proto::op::{Message, MessageType, ResponseCode};
        use hickory_resolver::proto::rr::rdata::{A, SRV};
        use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};

        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = sock.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, from)) = sock.recv_from(&mut buf).await {
                let Ok(q) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let mut rsp = Message::new();
                rsp.set_id(q.id())
                    .set_message_type(MessageType::Response)
                    .set_recursion_available(true)
                    .set_authoritative(true);
                let mut found = false;
                for query in q.queries() {
                    rsp.add_query(query.clone());
                    let name = query.name().to_utf8();
                    let name = name.trim_end_matches('.');
                    let owner = query.name().clone();
                    let rdata: Vec<RData> = match (name, query.query_type()) {
                        ("_sip._udp.pbx.lan", RecordType::SRV) => vec![
                            RData::SRV(SRV::new(
                                10,
                                0,
                                5070,
                                Name::from_ascii("b.pbx.lan.").unwrap(),
                            )),
                            RData::SRV(SRV::new(
                                5,
                                0,
                                5080,
                                Name::from_ascii("a.pbx.lan.").unwrap(),
                            )),
                        ],
                        ("a.pbx.lan", RecordType::A) => vec![RData::A(A::new(127, 0, 0, 2))],
                        ("b.pbx.lan", RecordType::A) => vec![RData::A(A::new(127, 0, 0, 3))],
                        ("nosrv.lan", RecordType::A) => vec![RData::A(A::new(127, 0, 0, 4))],
                        ("a.pbx.lan" | "b.pbx.lan" | "nosrv.lan", _) => {
                            found = true;
                            Vec::new()
                        }
                        _ => Vec::new(),
                    };
                    found |= !rdata.is_empty();
                    for r in rdata {
                        rsp.add_answer(Record::from_rdata(owner.clone(), 60, r));
                    }
                }
                if !found {
                    rsp.set_response_code(ResponseCode::NXDomain);
                }
                let _ = sock.send_to(&rsp.to_vec().unwrap(), from).await;
            }
        });
        let group =
            NameServerConfigGroup::from_ips_clear(&["127.0.0.1".parse().unwrap()], port, true);
        let config = ResolverConfig::from_parts(None, Vec::new(), group);
        let mut b = TokioResolver::builder_with_config(config, TokioConnectionProvider::default());
        b.options_mut().timeout = Duration::from_secs(1);
        b.options_mut().ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        b.build()
    }

    #[tokio::test]
    async fn srv_then_addresses_in_priority_order() {
        let r = stub_dns().await;
        let req = ResolveRequest::new("pbx.lan", None, Transport::Udp);
        let addrs = resolve(&r, &req).await.unwrap();
        let want: Vec<SocketAddr> = vec![
            "127.0.0.2:5080".parse().unwrap(),
            "127.0.0.3:5070".parse().unwrap(),
        ];
        assert_eq!(addrs, want);
    }

    #[tokio::test]
    async fn without_srv_the_name_on_5060_and_with_a_port_no_srv() {
        let r = stub_dns().await;
        let req = ResolveRequest::new("nosrv.lan", None, Transport::Udp);
        let addrs = resolve(&r, &req).await.unwrap();
        assert_eq!(addrs, vec!["127.0.0.4:5060".parse::<SocketAddr>().unwrap()]);
        // With a port, SRV is not asked (pbx.lan itself has no A record).
        let req = ResolveRequest::new("pbx.lan", Some(5090), Transport::Udp);
        assert!(matches!(
            resolve(&r, &req).await,
            Err(DnsError::Lookup { .. })
        ));
        let req = ResolveRequest::new("a.pbx.lan", Some(5090), Transport::Udp);
        let addrs = resolve(&r, &req).await.unwrap();
        assert_eq!(addrs, vec!["127.0.0.2:5090".parse::<SocketAddr>().unwrap()]);
    }

    #[tokio::test]
    async fn names_of_etc_hosts_resolve_through_the_system_configuration() {
        // Any loopback name of /etc/hosts other than localhost (answered by the resolver
        // itself); machines without one have nothing to check here.
        let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        let entry = hosts
            .lines()
            .map(|l| l.split('#').next().unwrap_or(""))
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                let ip: IpAddr = words.next()?.parse().ok()?;
                let name = words.find(|n| !n.starts_with("localhost") && !n.contains(':'))?;
                ip.is_loopback().then(|| (ip, name.to_owned()))
            })
            .next();
        let Some((ip, name)) = entry else {
            return;
        };
        let r = system_resolver();
        let req = ResolveRequest::new(&name, Some(5070), Transport::Udp);
        let addrs = resolve(&r, &req).await.unwrap();
        assert!(
            addrs.contains(&SocketAddr::new(ip, 5070)),
            "{name}: {addrs:?}"
        );
    }
}
