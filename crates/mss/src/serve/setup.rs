//! Turning the configuration into the sans-IO core's parts: the user directory, our
//! domains, the registrar and the `Directory` it works on (location service and digest
//! guard), the prechecks, the answer builder, the lines, the messaging and the call
//! settings.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use mss_auth::NonceSecret;
use mss_core::{CallSettings, LineSetup};
use mss_services::im::{ImSettings, RateLimit};
use mss_services::registrar::{Registrar, RegistrarConfig};
use mss_services::{
    Answer, BanSettings, Bans, DigestGuard, Directory, GuardConfig, LocalDomains, Now, Offer,
    Precheck, Users,
};
use mss_sip::Method;
use mss_transport::{Exempt, SourceLimit};

use super::lines::line_settings;
use crate::config::{effective_call_id_mode, Config, ListenSpec, Loaded, SipTransport};

/// Name of the digest nonce key in the store (`Store::secret_or_insert`), so nonces issued
/// before a restart still verify after it.
pub(crate) const NONCE_SECRET_NAME: &str = "digest-nonce-key";

/// One reading of both clocks: monotonic for timers, wall clock for storage and display.
pub(crate) fn now() -> Now {
    let unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Now::new(Instant::now(), unix_ms)
}

/// Converts a configured transport to the SIP layer's.
pub(crate) fn sip_transport(t: SipTransport) -> mss_sip::Transport {
    match t {
        SipTransport::Udp => mss_sip::Transport::Udp,
        SipTransport::Tcp => mss_sip::Transport::Tcp,
        SipTransport::Tls => mss_sip::Transport::Tls,
        SipTransport::Ws => mss_sip::Transport::Ws,
        SipTransport::Wss => mss_sip::Transport::Wss,
    }
}

/// The transport layer's listen addresses for `[server] listen`.
pub(crate) fn listen_specs(listen: &[ListenSpec]) -> Vec<mss_transport::ListenSpec> {
    listen
        .iter()
        .map(|l| mss_transport::ListenSpec::new(sip_transport(l.transport), l.addr))
        .collect()
}

/// The user directory of `[user:NAME]` sections; the realm is our domain.
pub(crate) fn users(config: &Config) -> Users {
    let mut users = Users::new(&config.server.domain);
    for u in &config.users {
        users.insert(&u.name, &u.password, u.display_name.as_deref());
    }
    users
}

/// Our domains: the configured domain and aliases, `localhost`, loopback, the specific
/// listen addresses and every address of the machine (`local_ips`), because clients
/// address us by IP, with or without a port (DESIGN §7).
pub(crate) fn local_domains(config: &Config, local_ips: &[IpAddr]) -> LocalDomains {
    let mut d = LocalDomains::new(&config.server.domain).with_alias("localhost");
    for a in &config.server.aliases {
        d.add_alias(a);
    }
    d.add_addr(IpAddr::V4(Ipv4Addr::LOCALHOST));
    d.add_addr(IpAddr::V6(Ipv6Addr::LOCALHOST));
    for l in &config.server.listen {
        if !l.addr.ip().is_unspecified() {
            d.add_addr(l.addr.ip());
        }
    }
    for ip in local_ips {
        d.add_addr(*ip);
    }
    d
}

/// The ban table of `[security]`.
pub(crate) fn bans(config: &Config) -> Bans {
    let sec = &config.security;
    Bans::new(BanSettings {
        ban_after: sec.ban_after,
        ban_window: sec.ban_window,
        ban_time: sec.ban_time,
        rate_limit: sec.rate_limit,
        ignore: sec.ignore.clone(),
        ..BanSettings::default()
    })
}

/// How many times the ban table's `rate_limit` the UDP receive loops let through from one
/// address in one second: above the rate plus the burst the ban table passes in any
/// second (3×), so the receive loops never stop what the ban table would admit, and what
/// they pass of a flood still shows the ban table that the address is over its rate.
pub(crate) const SOURCE_LIMIT_FACTOR: u32 = 4;

/// The addresses the external lines' registrars were found at: like the ban table (which
/// never limits a line's provider), the receive loops' per-source rate never holds them
/// back. Filled by the worker as lookups finish (every lookup is a line's), read only for
/// a datagram over its address's rate.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProviderAddrs(Arc<RwLock<HashSet<IpAddr>>>);

impl ProviderAddrs {
    /// Most addresses kept (a bound against lookups that return ever new addresses).
    const MAX: usize = 4096;

    /// Adds `ip`.
    pub(crate) fn add(&self, ip: IpAddr) {
        if let Ok(mut set) = self.0.write() {
            if set.len() < Self::MAX {
                set.insert(ip);
            }
        }
    }

    /// Whether `ip` is a provider's.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        self.0.read().is_ok_and(|set| set.contains(&ip))
    }
}

/// The per-source limit of the UDP receive loops (`[security] rate_limit` ×
/// [`SOURCE_LIMIT_FACTOR`]; exempt: the same `ignore` list and the lines' providers);
/// `None` when `rate_limit = 0`.
pub(crate) fn udp_source_limit(config: &Config, providers: &ProviderAddrs) -> Option<SourceLimit> {
    let sec = &config.security;
    if sec.rate_limit == 0 {
        return None;
    }
    let ignore = sec.ignore.clone();
    let providers = providers.clone();
    Some(SourceLimit {
        per_second: sec.rate_limit.saturating_mul(SOURCE_LIMIT_FACTOR),
        exempt: Exempt::new(move |ip| {
            ignore.iter().any(|n| n.contains(ip)) || providers.contains(ip)
        }),
    })
}

/// The registrar of local users, and the directory it works on: the location service, the
/// digest guard, signing nonces with `secret`, and the ban table.
pub(crate) fn registrar(
    config: &Config,
    domains: LocalDomains,
    secret: NonceSecret,
    seed: u64,
) -> (Registrar, Directory) {
    let s = &config.server;
    let guard = DigestGuard::new(
        users(config),
        secret,
        GuardConfig {
            nonce_lifetime_secs: s.nonce_lifetime.as_secs().max(1),
            offer: match &s.digest_algorithms {
                Some(list) => Offer::Configured(list.clone()),
                None => Offer::Automatic,
            },
        },
        seed,
    );
    let rc = RegistrarConfig {
        // RFC 3261 §10.2.1.1 leaves the default to the registrar; we grant the longest we
        // allow.
        default_expires: s.max_expires,
        min_expires: s.min_expires,
        max_expires: s.max_expires,
        max_contacts: usize::try_from(s.max_contacts_per_user).unwrap_or(usize::MAX),
        ..RegistrarConfig::default()
    };
    (
        Registrar::new(rc, domains, answer(config)),
        Directory::with_bans(guard, bans(config)),
    )
}

/// The answer builder: our domain signs `Warning` headers.
pub(crate) fn answer(config: &Config) -> Answer {
    Answer::new(&config.server.domain)
}

/// Methods that pass the prechecks: those served now and those mss knows but does not
/// serve yet (calls, events), so that a malformed INVITE gets its `400` first and a good
/// one the core's `501` (`mss_core`, dispatch fallback). Unknown methods get `501` from the precheck itself.
pub(crate) fn precheck() -> Precheck {
    Precheck::new(vec![
        Method::Register,
        Method::Options,
        Method::Message,
        Method::Invite,
        Method::Bye,
        Method::Subscribe,
        Method::Notify,
        Method::Prack,
        Method::Update,
        Method::Info,
        Method::Refer,
        Method::Publish,
    ])
}

/// The configured lines as the core runs them: `gVarSipRegSameDialog` wins over each
/// line's `call_id` (`effective_call_id_mode`).
pub(crate) fn lines(loaded: &Loaded) -> Vec<LineSetup> {
    loaded
        .config
        .lines
        .iter()
        .map(|l| LineSetup {
            settings: line_settings(l, effective_call_id_mode(l, &loaded.var)),
            owner: l.owner.clone(),
            outgoing: l.outgoing,
        })
        .collect()
}

/// The call service's settings from `[server]` (`max_calls`, `outgroup_prefix`,
/// `national_prefix`, `international_prefix`, `session_expires`, `min_se`), each user's `max_calls`, call level and
/// forwards, and the groups.
pub(crate) fn call_settings(config: &Config) -> CallSettings {
    CallSettings {
        max_calls: config.server.max_calls,
        outgroup_prefix: config.server.outgroup_prefix.clone(),
        user_max_calls: config
            .users
            .iter()
            .filter_map(|u| Some((u.name.clone(), u.max_calls?)))
            .collect(),
        users: config
            .users
            .iter()
            .filter(|u| u.calls != crate::config::UserCallRules::default())
            .map(|u| {
                let r = &u.calls;
                let rules = mss_core::UserCalls {
                    call_level: r.call_level,
                    forward_always: r.forward_always.clone(),
                    forward_busy: r.forward_busy.clone(),
                    forward_no_answer: r.forward_no_answer.clone(),
                    no_answer_timeout: r.no_answer_timeout,
                    forward_unreachable: r.forward_unreachable.clone(),
                };
                (u.name.clone(), rules)
            })
            .collect(),
        groups: config
            .groups
            .iter()
            .map(|g| {
                let settings = mss_core::GroupSettings {
                    members: g.members.clone(),
                    strategy: g.strategy,
                    ring_timeout: g.ring_timeout,
                };
                (g.name.clone(), settings)
            })
            .collect(),
        national_prefix: config.server.national_prefix.clone(),
        international_prefix: config.server.international_prefix.clone(),
        session_expires: config.server.session_expires,
        min_se: config.server.min_se,
        media: match config.media.relay {
            crate::config::MediaRelay::Always => Some(mss_core::MediaSettings {
                public_address: config.media.public_address,
                rtp_address: config.media.rtp_address,
            }),
            crate::config::MediaRelay::Never => None,
        },
        ..CallSettings::default()
    }
}

/// The media relay's thread options from `[media]` (`None` with `relay = never`).
pub(crate) fn media_options(config: &Config, seed: u64) -> Option<mss_media::io::MediaOptions> {
    let m = &config.media;
    if m.relay == crate::config::MediaRelay::Never {
        return None;
    }
    let relay = mss_media::RelayConfig {
        rtp_timeout: m.rtp_timeout,
        hold_timeout: m.hold_timeout,
        ..mss_media::RelayConfig::new(m.rtp_ports)
    };
    let mut options = mss_media::io::MediaOptions::new(relay, m.rtp_address, seed);
    options.scheduling = match m.realtime_priority {
        None => mss_media::io::Scheduling::auto(),
        Some(p) => mss_media::io::Scheduling {
            realtime: (p > 0).then_some(p),
            ..mss_media::io::Scheduling::default()
        },
    };
    options.receive = m.io;
    // Sessions bound ahead: a new call takes its ports without waiting for the relay's
    // thread to bind them (issue 16, "signalling unaffected").
    options.ready = mss_media::io::MediaOptions::default_ready(m.rtp_ports);
    Some(options)
}

/// The messaging service's settings from `[server]` and `[im]`; `via_host` is the Via
/// sent-by used when the host cannot name our address towards a peer.
pub(crate) fn im_settings(config: &Config, via_host: &str) -> ImSettings {
    let im = &config.im;
    let mut s = ImSettings::new(&config.server.domain);
    s.via_host = via_host.to_owned();
    s.offline_max_messages = im.offline_max_messages;
    s.offline_max_chars = im.offline_max_chars;
    s.offline_ttl = im.offline_ttl;
    s.rate_limit = RateLimit::per_minute(im.rate_limit_per_minute);
    s
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::Config;

    #[test]
    fn domains_cover_names_loopback_and_listen_addresses() {
        let mut c = Config::embedded("pbx.test".into());
        c.server.aliases = vec!["alias.test".into()];
        c.server.listen = vec![ListenSpec {
            transport: SipTransport::Udp,
            addr: "192.0.2.9:5070".parse().unwrap(),
        }];
        let d = local_domains(&c, &["198.51.100.1".parse().unwrap()]);
        for yes in [
            "pbx.test",
            "ALIAS.test",
            "localhost",
            "127.0.0.1",
            "[::1]",
            "192.0.2.9",
            "198.51.100.1",
        ] {
            assert!(d.is_local(yes), "{yes}");
        }
        assert!(!d.is_local("example.com"));
    }

    #[test]
    fn im_settings_follow_the_im_section() {
        let mut c = Config::embedded("pbx.test".into());
        c.im.offline_max_messages = 3;
        c.im.offline_max_chars = 20;
        c.im.offline_ttl = Duration::from_secs(60);
        c.im.rate_limit_per_minute = 0;
        let s = im_settings(&c, "192.0.2.1:5060");
        assert_eq!(s.domain, "pbx.test");
        assert_eq!(s.via_host, "192.0.2.1:5060");
        assert_eq!(s.offline_max_messages, 3);
        assert_eq!(s.offline_max_chars, 20);
        assert_eq!(s.offline_ttl, Duration::from_secs(60));
        assert_eq!(s.rate_limit, None);
        c.im.rate_limit_per_minute = 30;
        assert_eq!(im_settings(&c, "h").rate_limit, RateLimit::per_minute(30));
    }

    #[test]
    fn the_ban_table_follows_the_security_section() {
        let mut c = Config::embedded("pbx.test".into());
        c.security.ban_after = 3;
        c.security.ban_time = Duration::from_secs(60);
        c.security.rate_limit = 0;
        c.security.ignore = Vec::new();
        let b = bans(&c);
        let s = b.settings();
        assert_eq!((s.ban_after, s.rate_limit), (3, 0));
        assert_eq!(s.ban_time, Duration::from_secs(60));
        assert!(!s.ignores("127.0.0.1".parse().unwrap()));
        assert_eq!(s.trust_time, BanSettings::default().trust_time);
        let providers = ProviderAddrs::default();
        assert!(udp_source_limit(&c, &providers).is_none());
        c.security.rate_limit = 50;
        let l = udp_source_limit(&c, &providers).unwrap();
        assert_eq!(l.per_second, 200);
        assert!(!l.exempt.contains("127.0.0.1".parse().unwrap()));
        c.security.ignore = vec!["10.0.0.0/8".parse().unwrap()];
        let l = udp_source_limit(&c, &providers).unwrap();
        assert!(l.exempt.contains("10.1.2.3".parse().unwrap()));
        assert!(!l.exempt.contains("11.1.2.3".parse().unwrap()));
        // A provider found later is exempt from then on.
        providers.add("11.1.2.3".parse().unwrap());
        assert!(l.exempt.contains("11.1.2.3".parse().unwrap()));
    }

    #[test]
    fn call_settings_follow_server_users_and_lines() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("mss.ini");
        std::fs::write(
            &cfg,
            "[server]\nmax_calls = 50\noutgroup_prefix = 0\n\
             [user:101]\npassword = x\nmax_calls = 2\n[user:102]\npassword = y\n\
             [line:in]\nregistrar = 127.0.0.1\nnumber = 1\npassword = p\noutgoing = false\n\
             [line:out]\nregistrar = 127.0.0.1\nnumber = 2\npassword = p\n",
        )
        .unwrap();
        let loaded = crate::config::load(Some(&cfg), None).unwrap();
        let s = call_settings(&loaded.config);
        assert_eq!(s.max_calls, 50);
        assert_eq!(s.outgroup_prefix, "0");
        assert_eq!(s.user_max_calls.len(), 1);
        assert_eq!(s.user_max_calls.get("101"), Some(&2));
        assert_eq!(s.ring_timeout, CallSettings::default().ring_timeout);
        let outgoing: Vec<bool> = lines(&loaded).iter().map(|l| l.outgoing).collect();
        assert_eq!(outgoing, [false, true]);
        let mut embedded = Config::embedded("pbx.test".into());
        let defaults = call_settings(&embedded);
        assert_eq!(
            defaults,
            CallSettings {
                media: Some(mss_core::MediaSettings::new()),
                ..CallSettings::default()
            },
            "the relay is on by default"
        );
        let options = media_options(&embedded, 1).unwrap();
        assert_eq!(options.relay.ports.to_string(), "20000-29999");
        assert_eq!(options.ready, 8, "sessions bound ahead of the calls");
        assert_eq!(
            options.relay.rtp_timeout,
            std::time::Duration::from_secs(60)
        );
        embedded.media.relay = crate::config::MediaRelay::Never;
        assert_eq!(call_settings(&embedded), CallSettings::default());
        assert!(media_options(&embedded, 1).is_none());
    }

    #[test]
    fn transports_and_users_convert() {
        let mut c = Config::embedded("pbx.test".into());
        c.users.push(crate::config::UserConfig {
            name: "101".into(),
            password: "x".into(),
            display_name: None,
            max_calls: None,
            calls: Default::default(),
        });
        let specs = listen_specs(&c.server.listen);
        assert_eq!(specs[0].transport, mss_sip::Transport::Udp);
        assert_eq!(specs[1].transport, mss_sip::Transport::Tcp);
        let u = users(&c);
        assert!(u.contains("101"));
        assert_eq!(u.realm(), "pbx.test");
        assert!(now().unix_ms > 1_600_000_000_000);
    }
}
