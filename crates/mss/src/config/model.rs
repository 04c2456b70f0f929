//! The configuration model: what `mss.ini` says once validated.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use mss_services::bans::IpNet;

/// Transports `mss.ini` can name (`listen`, a line's `transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SipTransport {
    /// UDP (RFC 3261 §18).
    Udp,
    /// TCP (RFC 3261 §18).
    Tcp,
    /// TLS over TCP (RFC 3261 §26.2): `listen`, and a line's `transport` (the provider's
    /// certificate verified, RFC 5922).
    Tls,
    /// SIP over WebSocket (RFC 7118), for browser phones; `listen` only.
    Ws,
    /// SIP over secure WebSocket (RFC 7118, the `[tls]` certificate); `listen` only.
    Wss,
}

impl SipTransport {
    /// The lower-case name used in `mss.ini`.
    pub fn as_str(self) -> &'static str {
        match self {
            SipTransport::Udp => "udp",
            SipTransport::Tcp => "tcp",
            SipTransport::Tls => "tls",
            SipTransport::Ws => "ws",
            SipTransport::Wss => "wss",
        }
    }
}

impl fmt::Display for SipTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One item of `listen`: a transport and the address to bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenSpec {
    /// Transport.
    pub transport: SipTransport,
    /// Address to bind.
    pub addr: SocketAddr,
}

impl fmt::Display for ListenSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport, self.addr)
    }
}

/// How a line chooses the Call-ID of its REGISTER requests (`call_id` key, DESIGN.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CallIdMode {
    /// Start with the RFC 3261 §10.2 behaviour (same Call-ID, CSeq + 1) and switch to
    /// [`CallIdMode::Fresh`] for good when the registrar rejects a same-Call-ID REGISTER with
    /// `400`/`500` whose reason or `P-Registrar-Error` speaks of the CSeq or ordering.
    #[default]
    Auto,
    /// Every REGISTER of the line within one dialog: same Call-ID, CSeq + 1.
    Same,
    /// A fresh Call-ID (and From tag) for every REGISTER.
    Fresh,
}

impl CallIdMode {
    /// The name used in `mss.ini`.
    pub fn as_str(self) -> &'static str {
        match self {
            CallIdMode::Auto => "auto",
            CallIdMode::Same => "same",
            CallIdMode::Fresh => "fresh",
        }
    }
}

/// The `[server]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// SIP domain and digest realm of local users (`domain`; default: the machine's host name).
    pub domain: String,
    /// Other names of this server that count as its domain (`aliases`, comma-separated).
    pub aliases: Vec<String>,
    /// Sockets to listen on (`listen`).
    pub listen: Vec<ListenSpec>,
    /// Folder of the SQLite database and generated files (`data_dir`).
    pub data_dir: PathBuf,
    /// Address of the HTTP admin API (`admin`).
    pub admin: SocketAddr,
    /// Dial this prefix + number to call out through a line (`outgroup_prefix`).
    pub outgroup_prefix: String,
    /// Most calls in progress at once; beyond it a new call gets `503` (`max_calls`,
    /// default 1000).
    pub max_calls: u32,
    /// A number dialled out that starts with this is national (`national_prefix`, `0`).
    pub national_prefix: String,
    /// A number dialled out that starts with this (or `+`) is international
    /// (`international_prefix`, `00`).
    pub international_prefix: String,
    /// Shortest registration accepted; shorter ones get `423` (`min_expires`, seconds).
    pub min_expires: u32,
    /// Longest registration granted; longer ones are shortened (`max_expires`, seconds).
    pub max_expires: u32,
    /// Most contacts one local user may register at once (`max_contacts_per_user`).
    pub max_contacts_per_user: u32,
    /// How long a digest nonce stays valid before `stale=true` (`nonce_lifetime`).
    pub nonce_lifetime: Duration,
    /// Bytes the completed non-INVITE transactions that wait out Timer J may take
    /// (`completed_transactions_mb`, MiB; default 16): beyond it the oldest completed
    /// REGISTERs end early (`mss_txn::Config::completed_budget`).
    pub completed_transactions_bytes: usize,
    /// Digest challenges offered to local users (`digest_algorithms`). Not set: MD5 then
    /// SHA-256, and MD5 alone to clients known to fail on a SHA-256 challenge (baresip
    /// before 3.11, see `mss_services::Offer::Automatic`). Set: exactly this list, in this
    /// order, for every client.
    pub digest_algorithms: Option<Vec<mss_auth::Algorithm>>,
    /// The session interval mss asks each leg of a call for (`session_expires`, seconds,
    /// RFC 4028; default 1800).
    pub session_expires: u32,
    /// The least session interval mss accepts; below it `422` + `Min-SE` (`min_se`,
    /// seconds, at least 90; default 90).
    pub min_se: u32,
}

/// Default SIP port (RFC 3261 §19.1.2).
pub const DEFAULT_SIP_PORT: u16 = 5060;
/// Default SIP port over TLS (RFC 3261 §19.1.2).
pub const DEFAULT_SIPS_PORT: u16 = 5061;
/// Default port of SIP over secure WebSocket (issue 17: next to TLS's 5061, as
/// miniSIPServer and Asterisk setups often use).
pub const DEFAULT_WSS_PORT: u16 = 5062;

impl ServerConfig {
    /// The `[server]` section with every default and the given domain.
    pub fn with_domain(domain: String) -> ServerConfig {
        let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        ServerConfig {
            domain,
            aliases: Vec::new(),
            listen: vec![
                ListenSpec {
                    transport: SipTransport::Udp,
                    addr: SocketAddr::new(any, DEFAULT_SIP_PORT),
                },
                ListenSpec {
                    transport: SipTransport::Tcp,
                    addr: SocketAddr::new(any, DEFAULT_SIP_PORT),
                },
                ListenSpec {
                    transport: SipTransport::Tls,
                    addr: SocketAddr::new(any, DEFAULT_SIPS_PORT),
                },
                ListenSpec {
                    transport: SipTransport::Wss,
                    addr: SocketAddr::new(any, DEFAULT_WSS_PORT),
                },
            ],
            data_dir: PathBuf::from("./mss-data"),
            admin: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5080),
            outgroup_prefix: "9".to_string(),
            max_calls: mss_core::DEFAULT_MAX_CALLS,
            national_prefix: "0".to_string(),
            international_prefix: "00".to_string(),
            min_expires: 60,
            max_expires: 3600,
            max_contacts_per_user: 10,
            nonce_lifetime: Duration::from_secs(300),
            completed_transactions_bytes: mss_txn::DEFAULT_COMPLETED_BUDGET,
            digest_algorithms: None,
            session_expires: mss_core::DEFAULT_SESSION_EXPIRES,
            min_se: mss_core::DEFAULT_MIN_SE,
        }
    }

    /// Whether any `listen` address presents the `[tls]` certificate: `tls:` or `wss:`.
    pub fn uses_certificate(&self) -> bool {
        self.listen
            .iter()
            .any(|l| matches!(l.transport, SipTransport::Tls | SipTransport::Wss))
    }

    /// Whether `host` (a Request-URI or To host, without port) names this server.
    ///
    /// True for `domain` and every alias (ASCII case-insensitive, trailing dot ignored), for
    /// loopback addresses, for the specific addresses of `listen`, and for every address in
    /// `local_ips` (the machine's interface addresses, found at run time). Clients such as
    /// linphone address us by IP with or without port (DESIGN.md §7), so any local IP counts.
    ///
    /// ```
    /// use mss::config::ServerConfig;
    /// let s = ServerConfig::with_domain("pbx.example.com".into());
    /// let local = ["192.0.2.5".parse().unwrap()]; // from mss::local_addrs::local_ips()
    /// assert!(s.is_local_domain("PBX.example.com", &local));
    /// assert!(s.is_local_domain("[::1]", &local));
    /// assert!(s.is_local_domain("192.0.2.5", &local));
    /// assert!(!s.is_local_domain("example.com", &local)); // not an open relay
    /// ```
    pub fn is_local_domain(&self, host: &str, local_ips: &[IpAddr]) -> bool {
        let h = host
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = h.parse::<IpAddr>() {
            return ip.is_loopback()
                || local_ips.contains(&ip)
                || self
                    .listen
                    .iter()
                    .any(|l| !l.addr.ip().is_unspecified() && l.addr.ip() == ip)
                || self.domain.parse::<IpAddr>().is_ok_and(|d| d == ip)
                || self
                    .aliases
                    .iter()
                    .any(|a| a.parse::<IpAddr>().is_ok_and(|d| d == ip));
        }
        let h = h.strip_suffix('.').unwrap_or(h);
        h.eq_ignore_ascii_case(&self.domain)
            || h.eq_ignore_ascii_case("localhost")
            || self.aliases.iter().any(|a| h.eq_ignore_ascii_case(a))
    }
}

/// A `[user:NAME]` section: a local user.
#[derive(Clone, PartialEq, Eq)]
pub struct UserConfig {
    /// User name (AOR user part and digest user name).
    pub name: String,
    /// Digest password.
    pub password: String,
    /// Display name, if any.
    pub display_name: Option<String>,
    /// Most calls of this user at once; beyond it a new call gets `486` (`max_calls`;
    /// `None`: only the server's limit).
    pub max_calls: Option<u32>,
    /// `call_level`, the forwards and `no_answer_timeout`.
    pub calls: UserCallRules,
}

/// A user's call rules (DESIGN §8): what it may dial out and where its calls are forwarded.
/// A forward target is a user, a group, or `outgroup_prefix` and a number.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserCallRules {
    /// `call_level` (default `national`).
    pub call_level: mss_core::CallLevel,
    /// `forward_always`.
    pub forward_always: Option<String>,
    /// `forward_busy`.
    pub forward_busy: Option<String>,
    /// `forward_no_answer`.
    pub forward_no_answer: Option<String>,
    /// `no_answer_timeout` (default 20 s).
    pub no_answer_timeout: Option<Duration>,
    /// `forward_unreachable`.
    pub forward_unreachable: Option<String>,
}

/// A `[group:NAME]` section: a ringing or hunting group, dialable by its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// The group's name (what is dialled).
    pub name: String,
    /// `members`: local users, in order.
    pub members: Vec<String>,
    /// `strategy` (default `ring_all`).
    pub strategy: mss_core::GroupStrategy,
    /// `ring_timeout` (default 20 s).
    pub ring_timeout: Duration,
}

impl fmt::Debug for UserConfig {
    /// Never prints the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserConfig")
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .field("display_name", &self.display_name)
            .field("max_calls", &self.max_calls)
            .finish()
    }
}

/// A `[line:NAME]` section: an external line (SIP trunk) mss registers to.
#[derive(Clone, PartialEq, Eq)]
pub struct LineConfig {
    /// Line name.
    pub name: String,
    /// Registrar host name or IP (`registrar`).
    pub registrar_host: String,
    /// Registrar port (`registrar`); `None` when not given: a name is then looked up with
    /// DNS SRV (RFC 3263 §4.2), an IP address is reached on 5060.
    pub registrar_port: Option<u16>,
    /// Transport to the registrar (`transport`, default `udp`; `tls` too).
    pub transport: SipTransport,
    /// The CA certificates (PEM) a TLS line trusts for its provider (`tls_ca_file`,
    /// relative to the configuration file's folder); `None`: the system roots.
    pub tls_ca_file: Option<PathBuf>,
    /// The name the provider's certificate must carry (`tls_server_name`); `None`: the
    /// registrar's host (a name, or an IP address checked against the IP SAN).
    pub tls_server_name: Option<String>,
    /// The line's number at the provider, AOR user part (`number`).
    pub number: String,
    /// Digest user name (`username`, default: `number`).
    pub username: String,
    /// Digest password (`password`).
    pub password: String,
    /// AOR domain (`domain`, default: registrar host).
    pub domain: String,
    /// Registration expiry asked for, seconds (`expires`, default 3600).
    pub expires: u32,
    /// Local user who receives the line's incoming calls (`owner`).
    pub owner: Option<String>,
    /// Call-ID behaviour (`call_id`, default `auto`).
    pub call_id: CallIdMode,
    /// First retry delay after a failure (`retry_min`, default 30 s, 1 s to 1 day).
    pub retry_min: Duration,
    /// Longest retry delay (`retry_max`, default 30 min, at least `retry_min`, at most 1 day).
    pub retry_max: Duration,
    /// Whether local users' calls may go out through the line (`outgoing`, default true).
    pub outgoing: bool,
}

impl fmt::Debug for LineConfig {
    /// Never prints the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineConfig")
            .field("name", &self.name)
            .field("registrar_host", &self.registrar_host)
            .field("registrar_port", &self.registrar_port)
            .field("transport", &self.transport)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_server_name", &self.tls_server_name)
            .field("number", &self.number)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("domain", &self.domain)
            .field("expires", &self.expires)
            .field("owner", &self.owner)
            .field("call_id", &self.call_id)
            .field("retry_min", &self.retry_min)
            .field("retry_max", &self.retry_max)
            .field("outgoing", &self.outgoing)
            .finish()
    }
}

/// The `[im]` section: instant messages and the offline store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImConfig {
    /// Most stored messages per local user (`offline_max_messages`, default 10).
    pub offline_max_messages: u32,
    /// Longest storable message body in characters (`offline_max_chars`, default 199).
    pub offline_max_chars: u32,
    /// How long a stored message is kept (`offline_ttl`, default 7d).
    pub offline_ttl: Duration,
    /// Most MESSAGE requests one local sender may send per minute; 0 = no limit
    /// (`rate_limit_per_minute`, default 60).
    pub rate_limit_per_minute: u32,
}

impl Default for ImConfig {
    fn default() -> ImConfig {
        ImConfig {
            offline_max_messages: 10,
            offline_max_chars: 199,
            offline_ttl: Duration::from_secs(7 * 86_400),
            rate_limit_per_minute: 60,
        }
    }
}

/// The `[security]` section: bans of password guessers and the request rate limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityConfig {
    /// Failed digest answers within `ban_window` that ban an address (or block a user at
    /// an address that authenticated within the hour); also seconds over `rate_limit`
    /// that ban. 0: never ban (`ban_after`, default 10).
    pub ban_after: u32,
    /// The window the failures must fall in, from the first (`ban_window`, default 1m).
    pub ban_window: Duration,
    /// How long a first ban lasts; repeats within a day double it, up to 64 times
    /// (`ban_time`, default 15m).
    pub ban_time: Duration,
    /// Requests per second one address may send, in bursts of twice as many; 0: no limit
    /// (`rate_limit`, default 100).
    pub rate_limit: u32,
    /// Addresses and networks never limited or banned (`ignore`, default loopback).
    pub ignore: Vec<IpNet>,
}

impl Default for SecurityConfig {
    fn default() -> SecurityConfig {
        let d = mss_services::BanSettings::default();
        SecurityConfig {
            ban_after: d.ban_after,
            ban_window: d.ban_window,
            ban_time: d.ban_time,
            rate_limit: d.rate_limit,
            ignore: d.ignore,
        }
    }
}

/// What the media relay does with a call's audio (`[media] relay`, DESIGN §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MediaRelay {
    /// Every call's RTP and RTCP flow through mss: each leg's SDP is rewritten to mss's
    /// address and a port pair of the leg's own.
    #[default]
    Always,
    /// SDP passed through untouched: the phones send RTP to each other.
    Never,
}

impl MediaRelay {
    /// The name used in `mss.ini`.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaRelay::Always => "always",
            MediaRelay::Never => "never",
        }
    }
}

/// The certificate and key of the `tls:` listeners (`[tls] certificate`, `private_key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub certificate: PathBuf,
    /// PEM private key of the leaf (PKCS#8, PKCS#1 or SEC1).
    pub private_key: PathBuf,
}

/// The `[tls]` section: what the `tls:` listeners present and how long a handshake may
/// take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// The configured files; `None`: a self-signed certificate is generated into the data
    /// folder at first start (when something listens on `tls:`) and used afterwards.
    pub files: Option<TlsFiles>,
    /// How long a client may take for its handshake (`handshake_timeout`, default 10s).
    pub handshake_timeout: Duration,
}

impl Default for TlsConfig {
    fn default() -> TlsConfig {
        TlsConfig {
            files: None,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// The `[media]` section (DESIGN §8 "Media relay").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaConfig {
    /// `relay` (default `always`).
    pub relay: MediaRelay,
    /// `rtp_address`: the address the RTP sockets bind (default `0.0.0.0`).
    pub rtp_address: IpAddr,
    /// `public_address`: the address written into SDP; `None` (the default): the local
    /// address each leg reached mss on.
    pub public_address: Option<IpAddr>,
    /// `rtp_ports` (default `20000-30000`): even ports for RTP, RTP + 1 for RTCP.
    pub rtp_ports: mss_media::PortRange,
    /// `rtp_timeout` (default 60 s): no RTP from either side this long → BYE both legs.
    pub rtp_timeout: Duration,
    /// `hold_timeout` (default 2 h).
    pub hold_timeout: Duration,
    /// `realtime_priority` (default `auto`, `None` here: `SCHED_FIFO` priority 10 on a
    /// machine with two CPUs or more, see [`mss_media::io::Scheduling::auto`]; `0`: never;
    /// `1`–`99`: that priority): the relay thread runs as `SCHED_FIFO` when the process
    /// may; refused → logged, the short slice used.
    pub realtime_priority: Option<u8>,
    /// `io` (default `uring`): how the relay thread receives and sends, io_uring (epoll
    /// where the kernel refuses it) or epoll with `recvmmsg`.
    pub io: mss_media::io::ReceiveMode,
}

impl Default for MediaConfig {
    fn default() -> MediaConfig {
        MediaConfig {
            relay: MediaRelay::default(),
            rtp_address: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            public_address: None,
            rtp_ports: mss_media::PortRange::default(),
            rtp_timeout: mss_media::config::DEFAULT_RTP_TIMEOUT,
            hold_timeout: mss_media::config::DEFAULT_HOLD_TIMEOUT,
            realtime_priority: None,
            io: mss_media::io::ReceiveMode::Uring,
        }
    }
}

/// The whole of `mss.ini`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `[server]`.
    pub server: ServerConfig,
    /// `[user:NAME]` sections, in file order.
    pub users: Vec<UserConfig>,
    /// `[line:NAME]` sections, in file order.
    pub lines: Vec<LineConfig>,
    /// `[group:NAME]` sections, in file order.
    pub groups: Vec<GroupConfig>,
    /// `[im]`.
    pub im: ImConfig,
    /// `[security]`.
    pub security: SecurityConfig,
    /// `[media]`.
    pub media: MediaConfig,
    /// `[tls]`.
    pub tls: TlsConfig,
}

impl Config {
    /// The embedded defaults (no users: the binary adds the generated default users).
    pub fn embedded(domain: String) -> Config {
        Config {
            server: ServerConfig::with_domain(domain),
            users: Vec::new(),
            lines: Vec::new(),
            groups: Vec::new(),
            im: ImConfig::default(),
            security: SecurityConfig::default(),
            media: MediaConfig::default(),
            tls: TlsConfig::default(),
        }
    }

    /// The local user called `name`, if configured.
    pub fn user(&self, name: &str) -> Option<&UserConfig> {
        self.users.iter().find(|u| u.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_domain_matches_names_aliases_and_ips() {
        let mut s = ServerConfig::with_domain("pbx.example.com".into());
        s.aliases = vec!["pbx".into(), "10.1.2.3".into()];
        s.listen.push(ListenSpec {
            transport: SipTransport::Udp,
            addr: "192.0.2.7:5062".parse().unwrap(),
        });
        let local: Vec<IpAddr> = vec!["192.0.2.5".parse().unwrap(), "fe80::1".parse().unwrap()];
        for yes in [
            "pbx.example.com",
            "PBX.Example.COM.",
            "pbx",
            "localhost",
            "127.0.0.1",
            "[::1]",
            "::1",
            "192.0.2.5",
            "[fe80::1]",
            "192.0.2.7",
            "10.1.2.3",
        ] {
            assert!(s.is_local_domain(yes, &local), "{yes}");
        }
        for no in ["example.com", "192.0.2.6", "pbx.example.co", "0.0.0.0", ""] {
            assert!(!s.is_local_domain(no, &local), "{no}");
        }
    }

    #[test]
    fn debug_hides_passwords() {
        let u = UserConfig {
            name: "101".into(),
            password: "s3cret".into(),
            display_name: None,
            max_calls: None,
            calls: UserCallRules::default(),
        };
        assert!(!format!("{u:?}").contains("s3cret"));
    }
}
