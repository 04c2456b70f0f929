//! The Via header (RFC 3261 §20.42, §18.2.1; `rport` from RFC 3581).

use crate::error::{ParseError, ParseErrorKind};
use crate::name::HeaderName;
use crate::net::Transport;
use crate::params::{check_header_params, find_unquoted, trim, trim_start, Params};
use crate::parse::is_token_char;
use crate::uri::find_byte;

/// One Via value: `SIP/2.0/UDP host:port;branch=…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via<'a> {
    /// Protocol name (`SIP`).
    pub protocol_name: &'a str,
    /// Protocol version (`2.0`).
    pub protocol_version: &'a str,
    /// Transport token as received (`UDP`, `TCP`, `SCTP`, or an unknown one).
    pub transport: &'a str,
    /// Sent-by host (name, IPv4 or bracketed IPv6 reference).
    pub host: &'a str,
    /// Sent-by port, if given.
    pub port: Option<u16>,
    /// All via-params (`branch`, `received`, `rport`, `maddr`, `ttl`, extensions).
    pub params: Params<'a>,
}

fn bad(offset: usize) -> ParseError {
    ParseError::in_header(ParseErrorKind::BadHeaderValue, HeaderName::Via, offset)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

/// Parses a host `[":" port]` with optional whitespace around the colon.
pub(crate) fn parse_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let s = trim(s);
    let (host, port) = if s.starts_with('[') {
        let close = find_byte(s, b']')?;
        let host = s.get(..=close)?;
        host.get(1..close)?.parse::<std::net::Ipv6Addr>().ok()?;
        let after = trim(s.get(close + 1..)?);
        match after.strip_prefix(':') {
            Some(p) => (host, Some(trim(p))),
            None if after.is_empty() => (host, None),
            None => return None,
        }
    } else {
        match find_byte(s, b':') {
            Some(c) => (trim(s.get(..c)?), Some(trim(s.get(c + 1..)?))),
            None => (s, None),
        }
    };
    if !host.starts_with('[')
        && (host.is_empty()
            || !host
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.'))
    {
        return None;
    }
    let port = match port {
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|c| c.is_ascii_digit()) => {
            Some(p.parse().ok()?)
        }
        Some(_) => return None,
        None => None,
    };
    Some((host, port))
}

impl<'a> Via<'a> {
    /// Parses one via-parm (one element of the comma list).
    ///
    /// # Errors
    /// `BadHeaderValue` in `Via`.
    pub fn parse(s: &'a str) -> Result<Via<'a>, ParseError> {
        let s = trim(s);
        let (head, params) = match find_unquoted(s, b';') {
            Some(i) => (
                s.get(..i).unwrap_or(""),
                Some((i + 1, s.get(i + 1..).unwrap_or(""))),
            ),
            None => (s, None),
        };
        // sent-protocol: name SLASH version SLASH transport, SLASH = SWS "/" SWS.
        let mut parts = head.splitn(3, '/');
        let name = trim(parts.next().unwrap_or(""));
        let version = trim(parts.next().unwrap_or(""));
        let rest = trim_start(parts.next().unwrap_or(""));
        let t_len = rest.bytes().take_while(|&c| is_token_char(c)).count();
        let transport = rest.get(..t_len).unwrap_or("");
        let sent_by = rest.get(t_len..).unwrap_or("");
        if !is_token(name) || !is_token(version) || !is_token(transport) {
            return Err(bad(0));
        }
        if !sent_by.starts_with([' ', '\t', '\r', '\n']) {
            return Err(bad(head.len()));
        }
        let (host, port) = parse_host_port(sent_by).ok_or_else(|| bad(head.len()))?;
        let params = match params {
            Some((off, p)) => {
                check_header_params(p).map_err(|o| bad(off + o))?;
                p
            }
            None => "",
        };
        Ok(Via {
            protocol_name: name,
            protocol_version: version,
            transport,
            host,
            port,
            params: Params::new(params),
        })
    }

    /// The transport, if it is one mss knows.
    pub fn transport_kind(&self) -> Option<Transport> {
        Transport::from_token(self.transport)
    }

    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&'a str> {
        self.params.get("branch").flatten()
    }

    /// True when the branch starts with the RFC 3261 magic cookie `z9hG4bK` (§8.1.1.7).
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch().is_some_and(|b| b.starts_with("z9hG4bK"))
    }

    /// The `received` parameter.
    pub fn received(&self) -> Option<&'a str> {
        self.params.get("received").flatten()
    }

    /// The `rport` parameter (RFC 3581): `Some(None)` when present without a value.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|p| p.parse().ok()))
    }

    /// The `maddr` parameter.
    pub fn maddr(&self) -> Option<&'a str> {
        self.params.get("maddr").flatten()
    }

    /// The `ttl` parameter, when it is a number 0..=255.
    pub fn ttl(&self) -> Option<u8> {
        self.params
            .get("ttl")
            .flatten()
            .and_then(|t| t.parse().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_folded() {
        let v = Via::parse("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776;rport;received=10.0.0.1")
            .unwrap();
        assert_eq!(v.transport_kind(), Some(Transport::Udp));
        assert_eq!((v.host, v.port), ("192.0.2.1", Some(5060)));
        assert_eq!(v.branch(), Some("z9hG4bK776"));
        assert!(v.has_rfc3261_branch());
        assert_eq!(v.rport(), Some(None));
        assert_eq!(v.received(), Some("10.0.0.1"));
        let v = Via::parse("SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(
            (v.protocol_name, v.protocol_version, v.transport, v.host),
            ("SIP", "2.0", "UDP", "192.0.2.2")
        );
        let v =
            Via::parse("SIP/2.0/TCP [2001:db8::9]:5070;rport=5071;ttl=3;maddr=224.2.0.1").unwrap();
        assert_eq!(
            (v.host, v.port, v.rport(), v.ttl(), v.maddr()),
            (
                "[2001:db8::9]",
                Some(5070),
                Some(Some(5071)),
                Some(3),
                Some("224.2.0.1")
            )
        );
        assert_eq!(
            Via::parse("SIP/2.0/FOO host").unwrap().transport_kind(),
            None
        );
    }

    #[test]
    fn malformed() {
        for bad in [
            "SIP/2.0/UDP 192.0.2.15;;",
            "SIP/2.0 host",
            "SIP/2.0/UDP",
            "SIP/2.0/UDP host:port",
            "SIP/2.0/UDPhost",
            ";",
        ] {
            assert!(Via::parse(bad).is_err(), "{bad}");
        }
    }
}
