//! URIs: `sip`/`sips` (RFC 3261 §19.1), `tel` (RFC 3966), anything else kept opaque.
//!
//! A [`Uri`] borrows from the text it was parsed from. `%HH` escapes are kept as they
//! came; [`unescape`] decodes them when a caller needs the octets.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use crate::error::{ParseError, ParseErrorKind};
use crate::params::Params;

/// A parsed URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uri<'a> {
    /// `sip:` or `sips:`.
    Sip(SipUri<'a>),
    /// `tel:`.
    Tel(TelUri<'a>),
    /// Any other scheme, kept opaque (`isbn:…`, `http://…`, `urn:…`).
    Other(OtherUri<'a>),
}

/// A `sip:` or `sips:` URI (RFC 3261 §19.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipUri<'a> {
    /// The whole URI text.
    pub raw: &'a str,
    /// True for `sips:`.
    pub secure: bool,
    /// The user part, escapes kept (`None` when there is no `@`).
    pub user: Option<&'a str>,
    /// The password, escapes kept.
    pub password: Option<&'a str>,
    /// The host: a name, an IPv4 address or an IPv6 reference with its brackets.
    pub host: &'a str,
    /// The port, if given.
    pub port: Option<u16>,
    /// The URI parameters (`;transport=tcp;lr`).
    pub params: Params<'a>,
    /// The URI headers after `?`, if any (`a=b&c=d`), escapes kept.
    pub headers: Option<&'a str>,
}

/// A `tel:` URI (RFC 3966).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelUri<'a> {
    /// The whole URI text.
    pub raw: &'a str,
    /// The telephone number (global `+…` or local).
    pub number: &'a str,
    /// Parameters after the number.
    pub params: Params<'a>,
}

/// A URI of another scheme, not interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtherUri<'a> {
    /// The whole URI text.
    pub raw: &'a str,
    /// The scheme (before the first `:`).
    pub scheme: &'a str,
}

fn bad(offset: usize) -> ParseError {
    ParseError::new(ParseErrorKind::BadUri, offset)
}

const fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
        )
}

// The byte classes of the URI grammar (RFC 3261 §25.1), each a predicate, and one table
// of their bits looked up per byte: every name-addr of every message goes through
// `Uri::parse`, and a lookup costs less than the chains of comparisons.

/// RFC 3261 §25.1 `user` characters (besides escapes).
const fn is_user_char(c: u8) -> bool {
    is_unreserved(c) || matches!(c, b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/')
}

/// `password` characters (besides escapes).
const fn is_password_char(c: u8) -> bool {
    is_unreserved(c) || matches!(c, b'&' | b'=' | b'+' | b'$' | b',')
}

/// `paramchar` (besides escapes): the characters of a URI parameter's name and value.
const fn is_param_char(c: u8) -> bool {
    is_unreserved(c) || matches!(c, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$')
}

/// `hnv-unreserved / unreserved` plus the separators of the URI headers (besides escapes).
const fn is_header_char(c: u8) -> bool {
    is_unreserved(c)
        || matches!(
            c,
            b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$' | b'&' | b'='
        )
}

/// The characters of a host name or IPv4 address.
const fn is_host_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'.'
}

/// The characters after the first of a scheme.
const fn is_scheme_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.')
}

/// Never inside a URI: controls, space, `<`, `>`, `"`, DEL.
const fn is_forbidden(c: u8) -> bool {
    c <= b' ' || matches!(c, b'<' | b'>' | b'"' | 0x7f)
}

const USER: u8 = 1;
const PASSWORD: u8 = 1 << 1;
const PARAM: u8 = 1 << 2;
const HEADER: u8 = 1 << 3;
const HOST: u8 = 1 << 4;
const SCHEME: u8 = 1 << 5;
const FORBIDDEN: u8 = 1 << 6;

/// The classes of each byte, built from the predicates above.
static CLASSES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        t[i] = (USER * is_user_char(c) as u8)
            | (PASSWORD * is_password_char(c) as u8)
            | (PARAM * is_param_char(c) as u8)
            | (HEADER * is_header_char(c) as u8)
            | (HOST * is_host_char(c) as u8)
            | (SCHEME * is_scheme_char(c) as u8)
            | (FORBIDDEN * is_forbidden(c) as u8);
        i += 1;
    }
    t
};

/// Whether byte `c` is in `class` (one of the constants above).
#[inline]
fn is(c: u8, class: u8) -> bool {
    CLASSES[usize::from(c)] & class != 0
}

/// The byte offset of the first `b` (an ASCII byte, so the offset is a char boundary). A
/// plain scan: URI parts are a few dozen bytes, too short for `str::find`'s searcher to pay
/// off (it showed up in the registrar's profile).
pub(crate) fn find_byte(s: &str, b: u8) -> Option<usize> {
    s.bytes().position(|c| c == b)
}

/// Checks that every byte of `s` is in `class` or starts a valid `%HH` escape.
fn check_chars(s: &str, base: usize, class: u8) -> Result<(), ParseError> {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        // `%` is in no class, so testing the class first changes no answer.
        if is(c, class) {
            i += 1;
        } else if c == b'%' {
            let hex = b.get(i + 1..i + 3).ok_or_else(|| bad(base + i))?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return Err(bad(base + i));
            }
            i += 3;
        } else {
            return Err(bad(base + i));
        }
    }
    Ok(())
}

impl<'a> Uri<'a> {
    /// Parses a URI. No whitespace or `<>` is allowed inside.
    ///
    /// # Errors
    /// `BadUri` with the offset of the problem.
    pub fn parse(s: &'a str) -> Result<Uri<'a>, ParseError> {
        let colon = find_byte(s, b':').ok_or_else(|| bad(0))?;
        let scheme = s.get(..colon).unwrap_or("");
        let sb = scheme.as_bytes();
        if !sb.first().is_some_and(u8::is_ascii_alphabetic) || !sb.iter().all(|&c| is(c, SCHEME)) {
            return Err(bad(0));
        }
        if let Some(i) = s.bytes().position(|c| is(c, FORBIDDEN)) {
            return Err(bad(i));
        }
        let rest = s.get(colon + 1..).unwrap_or("");
        if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
            parse_sip(s, rest, colon + 1, scheme.len() == 4).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case("tel") {
            let (number, params) = match find_byte(rest, b';') {
                Some(i) => (rest.get(..i).unwrap_or(""), rest.get(i + 1..).unwrap_or("")),
                None => (rest, ""),
            };
            if number.is_empty() {
                return Err(bad(colon + 1));
            }
            Ok(Uri::Tel(TelUri {
                raw: s,
                number,
                params: Params::new(params),
            }))
        } else {
            if rest.is_empty() {
                return Err(bad(colon + 1));
            }
            Ok(Uri::Other(OtherUri { raw: s, scheme }))
        }
    }

    /// The URI text as parsed.
    pub fn as_str(&self) -> &'a str {
        match self {
            Uri::Sip(u) => u.raw,
            Uri::Tel(u) => u.raw,
            Uri::Other(u) => u.raw,
        }
    }

    /// The SIP URI, if this is one.
    pub fn as_sip(&self) -> Option<&SipUri<'a>> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }

    /// True for `sip:` and `sips:` URIs.
    pub fn is_sip(&self) -> bool {
        matches!(self, Uri::Sip(_))
    }
}

fn parse_sip<'a>(
    raw: &'a str,
    rest: &'a str,
    base: usize,
    secure: bool,
) -> Result<SipUri<'a>, ParseError> {
    // The userinfo ends at the first '@': neither params nor headers may hold a raw '@'.
    let (userinfo, hp_start) = match find_byte(rest, b'@') {
        Some(at) => (Some(rest.get(..at).unwrap_or("")), at + 1),
        None => (None, 0),
    };
    let (user, password) = match userinfo {
        Some(ui) => {
            let (u, p) = match find_byte(ui, b':') {
                Some(c) => (
                    ui.get(..c).unwrap_or(""),
                    Some(ui.get(c + 1..).unwrap_or("")),
                ),
                None => (ui, None),
            };
            if u.is_empty() {
                return Err(bad(base));
            }
            // RFC 3261 §25.1 user = 1*( unreserved / escaped / user-unreserved )
            check_chars(u, base, USER)?;
            if let Some(p) = p {
                check_chars(p, base, PASSWORD)?;
            }
            (Some(u), p)
        }
        None => (None, None),
    };
    let hp_all = rest.get(hp_start..).unwrap_or("");
    let hp_base = base + hp_start;
    let hp_end = hp_all
        .bytes()
        .position(|c| c == b';' || c == b'?')
        .unwrap_or(hp_all.len());
    let hostport = hp_all.get(..hp_end).unwrap_or("");
    let (host, port_str) = if hostport.starts_with('[') {
        let close = find_byte(hostport, b']').ok_or_else(|| bad(hp_base))?;
        let host = hostport.get(..=close).unwrap_or("");
        let inner = host.get(1..host.len() - 1).unwrap_or("");
        if inner.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad(hp_base));
        }
        let after = hostport.get(close + 1..).unwrap_or("");
        match after.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if after.is_empty() => (host, None),
            None => return Err(bad(hp_base + close + 1)),
        }
    } else {
        match find_byte(hostport, b':') {
            Some(c) => (
                hostport.get(..c).unwrap_or(""),
                Some(hostport.get(c + 1..).unwrap_or("")),
            ),
            None => (hostport, None),
        }
    };
    if !host.starts_with('[') && (host.is_empty() || !host.bytes().all(|c| is(c, HOST))) {
        return Err(bad(hp_base));
    }
    let port = match port_str {
        Some(p) => {
            if p.is_empty() || p.len() > 5 || !p.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad(hp_base));
            }
            // At most five ASCII digits: no overflow of the u32.
            let n = p.bytes().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
            Some(u16::try_from(n).map_err(|_| bad(hp_base))?)
        }
        None => None,
    };
    let tail = hp_all.get(hp_end..).unwrap_or("");
    let tail_base = hp_base + hp_end;
    let (params, headers) = match find_byte(tail, b'?') {
        Some(q) => (
            tail.get(..q).unwrap_or(""),
            Some(tail.get(q + 1..).unwrap_or("")),
        ),
        None => (tail, None),
    };
    let params = params.strip_prefix(';').unwrap_or(params);
    if !params.is_empty() {
        for p in params.split(';') {
            // RFC 3261 §25.1 uri-parameter: pname [ "=" pvalue ], paramchar set.
            let (n, v) = match find_byte(p, b'=') {
                Some(e) => (p.get(..e).unwrap_or(""), Some(p.get(e + 1..).unwrap_or(""))),
                None => (p, None),
            };
            if n.is_empty() {
                return Err(bad(tail_base));
            }
            check_chars(n, tail_base, PARAM)?;
            if let Some(v) = v {
                if v.is_empty() {
                    return Err(bad(tail_base));
                }
                check_chars(v, tail_base, PARAM)?;
            }
        }
    }
    if let Some(h) = headers {
        check_chars(h, tail_base, HEADER)?;
    }
    Ok(SipUri {
        raw,
        secure,
        user,
        password,
        host,
        port,
        params: Params::new(params),
        headers,
    })
}

impl<'a> SipUri<'a> {
    /// The host as an IP address, if it is one (IPv6 without brackets).
    pub fn host_ip(&self) -> Option<IpAddr> {
        let h = self
            .host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(self.host);
        h.parse().ok()
    }

    /// The `transport` parameter, if any.
    pub fn transport(&self) -> Option<&'a str> {
        self.params.get("transport").flatten()
    }

    /// True when the URI has the `lr` parameter (loose routing, RFC 3261 §19.1.1).
    pub fn is_loose_route(&self) -> bool {
        self.params.contains("lr")
    }

    /// The user part with `%HH` escapes decoded.
    pub fn user_unescaped(&self) -> Option<Cow<'a, [u8]>> {
        self.user.map(unescape)
    }
}

impl fmt::Display for Uri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Decodes `%HH` escapes once (RFC 3261 §19.1.2); invalid escapes stay literal. The result
/// is bytes because an escape may give any octet (`%00`).
pub fn unescape(s: &str) -> Cow<'_, [u8]> {
    if !s.contains('%') {
        return Cow::Borrowed(s.as_bytes());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            if let Some(hex) = b.get(i + 1..i + 3) {
                if let Ok(v) = u8::from_str_radix(std::str::from_utf8(hex).unwrap_or("zz"), 16) {
                    out.push(v);
                    i += 3;
                    continue;
                }
            }
        }
        out.push(c);
        i += 1;
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip(s: &str) -> SipUri<'_> {
        match Uri::parse(s).unwrap() {
            Uri::Sip(u) => u,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sip_parts() {
        let u = sip("sips:alice:secret@[2001:db8::1]:5061;transport=tcp;lr?subject=x");
        assert!(u.secure);
        assert_eq!(u.user, Some("alice"));
        assert_eq!(u.password, Some("secret"));
        assert_eq!(u.host, "[2001:db8::1]");
        assert_eq!(u.port, Some(5061));
        assert_eq!(u.transport(), Some("tcp"));
        assert!(u.is_loose_route());
        assert_eq!(u.headers, Some("subject=x"));
        assert!(u.host_ip().is_some());
        let u = sip("sip:user;par=u%40example.net@example.com");
        assert_eq!(u.user, Some("user;par=u%40example.net"));
        assert_eq!(
            u.user_unescaped().unwrap().as_ref(),
            b"user;par=u@example.net"
        );
        assert_eq!(unescape("null-%00-null").as_ref(), b"null-\0-null");
        assert_eq!(unescape("value%2541").as_ref(), b"value%41");
        let u = sip("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com");
        assert_eq!(u.host, "example.com");
    }

    /// The table gives each predicate's answer for every byte, and `%` is in no class
    /// (which `check_chars` relies on).
    #[test]
    fn the_class_table_is_the_predicates() {
        type Predicate = fn(u8) -> bool;
        let classes: [(u8, Predicate); 7] = [
            (USER, is_user_char),
            (PASSWORD, is_password_char),
            (PARAM, is_param_char),
            (HEADER, is_header_char),
            (HOST, is_host_char),
            (SCHEME, is_scheme_char),
            (FORBIDDEN, is_forbidden),
        ];
        for c in 0..=255u8 {
            for (class, predicate) in classes {
                assert_eq!(is(c, class), predicate(c), "byte {c:#x}, class {class:#b}");
            }
        }
        assert_eq!(CLASSES[usize::from(b'%')], 0);
    }

    #[test]
    fn ports() {
        for (uri, port) in [
            ("sip:h:0", Some(0)),
            ("sip:h:05060", Some(5060)),
            ("sip:h:65535", Some(65535)),
            ("sip:h", None),
        ] {
            assert_eq!(sip(uri).port, port, "{uri}");
        }
        for uri in [
            "sip:h:65536",
            "sip:h:99999",
            "sip:h:",
            "sip:h:123456",
            "sip:h:+1",
        ] {
            assert!(Uri::parse(uri).is_err(), "{uri}");
        }
    }

    #[test]
    fn other_schemes_and_errors() {
        assert!(
            matches!(Uri::parse("tel:+1-201-555-0123;ext=1"), Ok(Uri::Tel(t)) if t.number == "+1-201-555-0123")
        );
        assert!(matches!(Uri::parse("isbn:2983792873"), Ok(Uri::Other(o)) if o.scheme == "isbn"));
        assert!(Uri::parse("<sip:a@b>").is_err());
        assert!(Uri::parse("sip:a@b; lr").is_err());
        assert!(Uri::parse("sip:a@b:99999").is_err());
        assert!(Uri::parse("sip:@b").is_err());
        assert!(Uri::parse("sip:a@").is_err());
        assert!(Uri::parse("nocolon").is_err());
        assert!(Uri::parse("sip:a@b;;").is_err());
    }
}
