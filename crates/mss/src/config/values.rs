//! Parsers for the value types of the configuration files.
//!
//! Each returns `Err(message)` with a message that quotes the value, e.g.
//! `"abc" is not a number of seconds`; the caller adds `file:line`, section and key.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::model::{CallIdMode, ListenSpec, MediaRelay, SipTransport};

/// A whole number in `min..=max`.
pub(crate) fn number(v: &str, min: u64, max: u64) -> Result<u64, String> {
    let n: u64 = v
        .parse()
        .map_err(|_| format!("{v:?} is not a whole number"))?;
    if n < min || n > max {
        return Err(format!("{v:?} is out of range ({min}..={max})"));
    }
    Ok(n)
}

/// A number of seconds in `min..=max` (SIP `Expires` values, RFC 3261 §20.19).
pub(crate) fn seconds(v: &str, min: u32, max: u32) -> Result<u32, String> {
    let n: u32 = v
        .parse()
        .map_err(|_| format!("{v:?} is not a number of seconds"))?;
    if n < min || n > max {
        return Err(format!("{v:?} seconds is out of range ({min}..={max})"));
    }
    Ok(n)
}

/// A session interval of RFC 4028 (`session_expires`, `min_se`): a [`duration`] of at least
/// 90 s (§5: no `Min-SE` below it) and at most a day, in seconds.
pub(crate) fn session_interval(v: &str) -> Result<u32, String> {
    let secs = duration(v)?.as_secs();
    if !(90..=86_400).contains(&secs) {
        return Err(format!(
            "{v:?} is out of range (90s..=1d: RFC 4028 allows no session interval below 90s)"
        ));
    }
    u32::try_from(secs).map_err(|_| format!("{v:?} is too long"))
}

/// A duration: a whole number followed by `d`, `h`, `m` or `s` (`7d`, `12h`, `30m`, `45s`);
/// a bare number is seconds. Zero is refused.
pub(crate) fn duration(v: &str) -> Result<Duration, String> {
    let bad = || format!("{v:?} is not a duration (examples: 7d, 12h, 30m, 45s)");
    let (digits, unit) = match v.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (v.get(..i).unwrap_or(""), Some(c)),
        Some(_) => (v, None),
        None => return Err(bad()),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let mult = match unit {
        None | Some('s') => 1,
        Some('m') => 60,
        Some('h') => 3600,
        Some('d') => 86_400,
        Some(_) => return Err(bad()),
    };
    let secs = n.checked_mul(mult).ok_or_else(bad)?;
    if secs == 0 {
        return Err(format!("{v:?} must be longer than zero"));
    }
    Ok(Duration::from_secs(secs))
}

/// A duration the way [`duration`] reads it, in its largest whole unit (`30m`, `1d`, `45s`).
pub(crate) fn duration_text(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 => "0s".to_owned(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// `0` or `1`.
pub(crate) fn flag(v: &str) -> Result<bool, String> {
    match v {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => Err(format!("{v:?} is not 0 or 1")),
    }
}

/// `true` or `false` (also `yes`/`no`, `1`/`0`).
pub(crate) fn boolean(v: &str) -> Result<bool, String> {
    match v {
        "true" | "yes" | "1" => Ok(true),
        "false" | "no" | "0" => Ok(false),
        _ => Err(format!("{v:?} is not true or false")),
    }
}

/// A count of calls: a whole number from 1 up.
pub(crate) fn max_calls(v: &str) -> Result<u32, String> {
    let n = number(v, 1, u64::from(u32::MAX))?;
    u32::try_from(n).map_err(|_| format!("{v:?} is too large"))
}

/// `[media] relay`: `always` or `never`.
pub(crate) fn media_relay(v: &str) -> Result<MediaRelay, String> {
    match v {
        "always" => Ok(MediaRelay::Always),
        "never" => Ok(MediaRelay::Never),
        _ => Err(format!("{v:?} is not one of always, never")),
    }
}

/// How the relay thread receives and sends (`[media] io`).
pub(crate) fn media_io(v: &str) -> Result<mss_media::io::ReceiveMode, String> {
    match v {
        "uring" => Ok(mss_media::io::ReceiveMode::Uring),
        "epoll" => Ok(mss_media::io::ReceiveMode::Batched),
        _ => Err(format!("{v:?} is not one of uring, epoll")),
    }
}

/// The relay thread's real-time priority (`[media] realtime_priority`): `auto` (`None`),
/// `0` (never) or `1`–`99`.
pub(crate) fn realtime_priority(v: &str) -> Result<Option<u8>, String> {
    if v.eq_ignore_ascii_case("auto") {
        return Ok(None);
    }
    number(v, 0, 99)
        .map(|n| Some(u8::try_from(n).unwrap_or(99)))
        .map_err(|e| format!("{e}; auto, 0 (never) or 1..=99"))
}

/// An IP address (`rtp_address`).
pub(crate) fn ip_addr(v: &str) -> Result<std::net::IpAddr, String> {
    v.parse().map_err(|_| format!("{v:?} is not an IP address"))
}

/// An IP address mss can be reached at, or nothing (`public_address =`: the local address
/// each leg reached mss on). The unspecified and multicast addresses are refused: no phone
/// can send RTP there.
pub(crate) fn public_address(v: &str) -> Result<Option<std::net::IpAddr>, String> {
    if v.is_empty() {
        return Ok(None);
    }
    let ip = ip_addr(v)?;
    if ip.is_unspecified() || ip.is_multicast() {
        return Err(format!("{v:?} is not an address a phone can send RTP to"));
    }
    Ok(Some(ip))
}

/// `FIRST-LAST` ports holding at least one RTP/RTCP pair (`rtp_ports`).
pub(crate) fn port_range(v: &str) -> Result<mss_media::PortRange, String> {
    v.parse().map_err(|e| format!("{v:?}: {e}"))
}

/// `auto`, `same` or `fresh`.
pub(crate) fn call_id_mode(v: &str) -> Result<CallIdMode, String> {
    match v {
        "auto" => Ok(CallIdMode::Auto),
        "same" => Ok(CallIdMode::Same),
        "fresh" => Ok(CallIdMode::Fresh),
        _ => Err(format!("{v:?} is not one of auto, same, fresh")),
    }
}

/// `udp`, `tcp`, `tls`, `ws` or `wss` (lower case), the transport of a `listen` address.
pub(crate) fn listen_transport(v: &str) -> Result<SipTransport, String> {
    match v {
        "tls" => Ok(SipTransport::Tls),
        "ws" => Ok(SipTransport::Ws),
        "wss" => Ok(SipTransport::Wss),
        "udp" | "tcp" => transport(v),
        _ => Err(format!("{v:?} is not a transport (udp, tcp, tls, ws, wss)")),
    }
}

/// `udp` or `tcp` (lower case), a line's transport.
pub(crate) fn transport(v: &str) -> Result<SipTransport, String> {
    match v {
        "udp" => Ok(SipTransport::Udp),
        "tcp" => Ok(SipTransport::Tcp),
        "tls" => Ok(SipTransport::Tls),
        "ws" | "wss" => Err(format!(
            "transport {v:?} is not supported for lines (udp, tcp, tls)"
        )),
        _ => Err(format!("{v:?} is not a transport (udp, tcp, tls)")),
    }
}

/// An `ip:port` socket address (`127.0.0.1:5080`, `[::1]:5080`).
pub(crate) fn socket_addr(v: &str) -> Result<SocketAddr, String> {
    v.parse()
        .map_err(|_| format!("{v:?} is not an address of the form IP:PORT"))
}

/// A comma-separated list of `udp:IP:PORT` / `tcp:IP:PORT` / `tls:IP:PORT` /
/// `ws:IP:PORT` / `wss:IP:PORT`, without repeats.
pub(crate) fn listen_list(v: &str) -> Result<Vec<ListenSpec>, String> {
    let mut out: Vec<ListenSpec> = Vec::new();
    for item in v.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(format!("{v:?} has an empty item"));
        }
        let (t, addr) = item.split_once(':').ok_or_else(|| {
            format!("{item:?} is not of the form TRANSPORT:IP:PORT (e.g. udp:0.0.0.0:5060)")
        })?;
        let transport = listen_transport(t)?;
        let addr = socket_addr(addr)?;
        let spec = ListenSpec { transport, addr };
        if out.contains(&spec) {
            return Err(format!("{item:?} is listed twice"));
        }
        out.push(spec);
    }
    Ok(out)
}

/// A comma-separated list of digest algorithms (`md5`, `sha-256`), without repeats.
pub(crate) fn digest_algorithms(v: &str) -> Result<Vec<mss_auth::Algorithm>, String> {
    let mut out = Vec::new();
    for item in v.split(',').map(str::trim) {
        let alg = mss_auth::Algorithm::parse(item)
            .map_err(|_| format!("{item:?} is not a digest algorithm (md5, sha-256)"))?;
        if out.contains(&alg) {
            return Err(format!("{item:?} is listed twice"));
        }
        out.push(alg);
    }
    Ok(out)
}

/// A comma-separated list of IP addresses and networks (`127.0.0.0/8, ::1`), or `none`.
pub(crate) fn ip_nets(v: &str) -> Result<Vec<mss_services::bans::IpNet>, String> {
    if v == "none" {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for item in v.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(format!(
                "{v:?} has an empty item (write none for an empty list)"
            ));
        }
        let net = item.parse().map_err(|e| format!("{e}"))?;
        if out.contains(&net) {
            return Err(format!("{item:?} is listed twice"));
        }
        out.push(net);
    }
    Ok(out)
}

/// A host name (RFC 3261 §25.1 `hostname`) or an IP address (IPv6 with or without brackets).
pub(crate) fn host(v: &str) -> Result<String, String> {
    let inner = v
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(v);
    if inner.parse::<IpAddr>().is_ok() {
        return Ok(inner.to_string());
    }
    let name = v.strip_suffix('.').unwrap_or(v);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(format!("{v:?} is not a host name or IP address"));
    }
    Ok(name.to_ascii_lowercase())
}

/// `host[:port]` with a default port; IPv6 in brackets (`[2001:db8::1]:5060`).
pub(crate) fn host_port(v: &str, default_port: u16) -> Result<(String, u16), String> {
    let bad_port = |p: &str| format!("{p:?} is not a port number (1..=65535)");
    let parse_port = |p: &str| match p.parse::<u16>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(bad_port(p)),
    };
    if let Some(rest) = v.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{v:?} has no closing ']'"))?;
        let h = host(&format!("[{h}]"))?;
        return match after {
            "" => Ok((h, default_port)),
            p => match p.strip_prefix(':') {
                Some(p) => Ok((h, parse_port(p)?)),
                None => Err(format!("{v:?} is not of the form HOST[:PORT]")),
            },
        };
    }
    match v.split_once(':') {
        None => Ok((host(v)?, default_port)),
        Some((h, p)) if !p.contains(':') => Ok((host(h)?, parse_port(p)?)),
        Some(_) => Err(format!(
            "{v:?} is not of the form HOST[:PORT] (write IPv6 addresses in brackets)"
        )),
    }
}

/// `HOST[:PORT]` with the port optional: `None` when absent (the caller picks DNS SRV or
/// a default port).
pub(crate) fn host_opt_port(v: &str) -> Result<(String, Option<u16>), String> {
    // Port 0 is refused by `host_port`, so it can stand for "absent" here.
    host_port(v, 0).map(|(h, p)| (h, (p != 0).then_some(p)))
}

/// A SIP user part as allowed here: RFC 3261 §25.1 `user` without escapes, that is
/// alphanumerics, `-_.!~*'()` (mark) and `&=+$,;?/` (user-unreserved), at most 64 bytes.
pub(crate) fn user_name(v: &str) -> Result<String, String> {
    let ok = |b: u8| b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/".contains(&b);
    if v.is_empty() || v.len() > 64 || !v.bytes().all(ok) {
        return Err(format!(
            "{v:?} is not a valid SIP user name (letters, digits and -_.!~*'()&=+$,;?/)"
        ));
    }
    Ok(v.to_string())
}

/// A line name: letters, digits, `-`, `_`, `.`, at most 64 bytes.
pub(crate) fn line_name(v: &str) -> Result<String, String> {
    let ok = |b: u8| b.is_ascii_alphanumeric() || b"-_.".contains(&b);
    if v.is_empty() || v.len() > 64 || !v.bytes().all(ok) {
        return Err(format!(
            "{v:?} is not a valid line name (letters, digits, '-', '_', '.')"
        ));
    }
    Ok(v.to_string())
}

/// A dial prefix: digits, `*` and `#`, 1 to 8 characters.
pub(crate) fn dial_prefix(v: &str) -> Result<String, String> {
    let ok = |b: u8| b.is_ascii_digit() || b == b'*' || b == b'#';
    if v.is_empty() || v.len() > 8 || !v.bytes().all(ok) {
        return Err(format!("{v:?} is not a dial prefix (1 to 8 of 0-9 * #)"));
    }
    Ok(v.to_string())
}

/// A non-empty value without control characters (passwords, display names).
pub(crate) fn text(v: &str) -> Result<String, String> {
    if v.is_empty() {
        return Err("must not be empty".to_string());
    }
    if v.chars().any(char::is_control) {
        return Err("must not contain control characters".to_string());
    }
    Ok(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration("7d").unwrap(), Duration::from_secs(7 * 86_400));
        assert_eq!(duration("12h").unwrap(), Duration::from_secs(43_200));
        assert_eq!(duration("30m").unwrap(), Duration::from_secs(1_800));
        assert_eq!(duration("45s").unwrap(), Duration::from_secs(45));
        assert_eq!(duration("90").unwrap(), Duration::from_secs(90));
        for bad in [
            "",
            "d",
            "7w",
            "-1d",
            "1.5h",
            "0s",
            "h7",
            "99999999999999999999d",
        ] {
            assert!(duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_as_text_read_back() {
        for (secs, text) in [
            (0, "0s"),
            (45, "45s"),
            (90, "90s"),
            (1800, "30m"),
            (7200, "2h"),
        ] {
            assert_eq!(duration_text(Duration::from_secs(secs)), text);
        }
        for text in ["1d", "30m", "12h", "45s", "61s"] {
            assert_eq!(duration_text(duration(text).unwrap()), text);
        }
    }

    #[test]
    fn numbers_and_seconds() {
        assert_eq!(seconds("3600", 1, 86_400).unwrap(), 3600);
        assert_eq!(
            seconds("abc", 1, 10).unwrap_err(),
            "\"abc\" is not a number of seconds"
        );
        assert!(seconds("0", 1, 10).is_err());
        assert!(number("11", 0, 10).is_err());
        assert!(number("-1", 0, 10).is_err());
    }

    #[test]
    fn digest_algorithm_lists() {
        use mss_auth::Algorithm;
        assert_eq!(digest_algorithms("md5"), Ok(vec![Algorithm::Md5]));
        assert_eq!(
            digest_algorithms("SHA-256, MD5"),
            Ok(vec![Algorithm::Sha256, Algorithm::Md5])
        );
        assert!(digest_algorithms("md5, md5").is_err());
        assert!(digest_algorithms("").is_err());
        assert!(digest_algorithms("sha1").is_err());
    }

    #[test]
    fn listen_lists() {
        let l = listen_list("udp:0.0.0.0:5060, tcp:[::1]:5061").unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[1].transport, SipTransport::Tcp);
        assert_eq!(l[1].addr.port(), 5061);
        assert!(listen_list("sctp:0.0.0.0:5060").is_err());
        let tls = listen_list("tls:0.0.0.0:5061, tls:127.0.0.1:6060").unwrap();
        assert_eq!(tls[0].transport, SipTransport::Tls);
        assert_eq!(tls[1].addr.port(), 6060);
        let ws = listen_list("ws:0.0.0.0:8080, wss:[::]:5062").unwrap();
        assert_eq!(ws[0].transport, SipTransport::Ws);
        assert_eq!(ws[1].transport, SipTransport::Wss);
        assert_eq!(ws[1].to_string(), "wss:[::]:5062");
        assert!(listen_list("wsx:0.0.0.0:5062")
            .unwrap_err()
            .contains("not a transport (udp, tcp, tls, ws, wss)"));
        assert_eq!(transport("tls"), Ok(SipTransport::Tls));
        assert!(transport("wss")
            .unwrap_err()
            .contains("not supported for lines"));
        assert!(listen_list("udp:0.0.0.0").is_err());
        assert!(listen_list("udp:host:5060").is_err());
        assert!(listen_list("udp:0.0.0.0:5060,").is_err());
        assert!(listen_list("udp:0.0.0.0:5060,udp:0.0.0.0:5060").is_err());
    }

    #[test]
    fn hosts_and_ports() {
        assert_eq!(
            host_port("sip.provider.example:5070", 5060).unwrap(),
            ("sip.provider.example".to_string(), 5070)
        );
        assert_eq!(
            host_port("Sip.Example", 5060).unwrap(),
            ("sip.example".to_string(), 5060)
        );
        assert_eq!(
            host_port("[2001:db8::1]:5080", 5060).unwrap(),
            ("2001:db8::1".to_string(), 5080)
        );
        assert_eq!(host_port("10.0.0.1", 5060).unwrap().1, 5060);
        for bad in [
            "",
            "a b:5060",
            "host:0",
            "host:x",
            "2001:db8::1",
            "[::1",
            "-a.b",
            "h:70000",
        ] {
            assert!(host_port(bad, 5060).is_err(), "{bad}");
        }
    }

    #[test]
    fn names() {
        assert!(user_name("101").is_ok());
        assert!(user_name("alice.smith").is_ok());
        for bad in ["", "a b", "a@b", "a:b", "é", "a%20"] {
            assert!(user_name(bad).is_err(), "{bad}");
        }
        assert!(line_name("provider-1").is_ok());
        assert!(line_name("a/b").is_err());
        assert!(dial_prefix("9").is_ok());
        assert!(dial_prefix("9a").is_err());
        assert!(text("").is_err());
        assert!(text("a\tb").is_err());
    }

    #[test]
    fn modes_and_flags() {
        assert_eq!(call_id_mode("fresh").unwrap(), CallIdMode::Fresh);
        assert!(call_id_mode("Fresh").is_err());
        assert!(flag("1").unwrap());
        assert!(!flag("0").unwrap());
        assert!(flag("yes").is_err());
        for (text, value) in [("true", true), ("yes", true), ("1", true), ("false", false)] {
            assert_eq!(boolean(text), Ok(value), "{text}");
        }
        assert_eq!(
            boolean("True").unwrap_err(),
            "\"True\" is not true or false"
        );
        assert_eq!(media_relay("never"), Ok(MediaRelay::Never));
        assert_eq!(media_relay("always"), Ok(MediaRelay::Always));
        assert!(media_relay("sometimes").is_err());
        assert_eq!(public_address(""), Ok(None));
        assert_eq!(
            public_address("203.0.113.5"),
            Ok(Some("203.0.113.5".parse().unwrap()))
        );
        assert!(public_address("0.0.0.0").is_err());
        assert!(public_address("pbx").is_err());
        assert_eq!(port_range("20000-20003").unwrap().pairs(), 2);
        assert_eq!(
            port_range("20001-20002").unwrap_err(),
            "\"20001-20002\": the range 20001-20002 holds no RTP/RTCP pair (an even port and the next)"
        );
    }

    #[test]
    fn call_limits() {
        assert_eq!(max_calls("1"), Ok(1));
        assert_eq!(max_calls("4294967295"), Ok(u32::MAX));
        assert_eq!(
            max_calls("0").unwrap_err(),
            "\"0\" is out of range (1..=4294967295)"
        );
        assert!(max_calls("4294967296").is_err());
        assert!(max_calls("many").is_err());
    }
}
