//! Applies [`via_stamp`] to a parsed request: writes `received` and `rport` into its top
//! Via (RFC 3261 §18.2.1, RFC 3581 §4), so that responses built from the request carry
//! them; and reads the [`ViaRoute`] of a top Via.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use bytes::{BufMut, BytesMut};
use mss_sip::net::Flow;
use mss_sip::{HeaderName, Headers, ParseError, ParseErrorKind, Via};

use crate::routing::{
    host_ip, response_route, via_stamp, ResponseRoute, Rport, ViaRoute, ViaStamp,
};

impl<'a> From<&Via<'a>> for ViaRoute<'a> {
    fn from(via: &Via<'a>) -> ViaRoute<'a> {
        ViaRoute {
            host: via.host,
            port: via.port,
            received: via.received().and_then(host_ip),
            rport: rport_of(via),
            maddr: via.maddr(),
        }
    }
}

/// The `rport` of a Via; a value that is not a port counts as empty (to be filled in).
fn rport_of(via: &Via<'_>) -> Rport {
    match via.rport() {
        None => Rport::Absent,
        Some(None) => Rport::Empty,
        Some(Some(port)) => Rport::Value(port),
    }
}

/// Where the response to a request goes, read from the top Via in `headers` (the
/// request's, or the response's, which copies it): see [`response_route`].
///
/// # Errors
/// The top Via is missing or malformed.
pub fn route_response(request: &Flow, headers: &Headers) -> Result<ResponseRoute, ParseError> {
    let via = headers.top_via()?;
    Ok(response_route(request, &ViaRoute::from(&via)))
}

/// Stamps the top Via of a request received from `source` with `received` and `rport`
/// as [`via_stamp`] decides, replacing values the client put there. Other Via values
/// are kept as they are.
///
/// # Returns
/// What was stamped (empty when the Via needed nothing).
///
/// # Errors
/// The top Via is missing, not UTF-8 or malformed (the caller answers 400 if it can).
pub fn stamp_top_via(headers: &mut Headers, source: SocketAddr) -> Result<ViaStamp, ParseError> {
    let via_err = |kind, offset| ParseError::in_header(kind, HeaderName::Via, offset);
    let line = headers
        .get(&HeaderName::Via)
        .ok_or_else(|| via_err(ParseErrorKind::MissingHeader, 0))?;
    let line = std::str::from_utf8(line)
        .map_err(|e| via_err(ParseErrorKind::InvalidUtf8, e.valid_up_to()))?;
    let (top, rest) = line.split_at(top_item_end(line));
    let mut first = BytesMut::new();
    let stamp =
        match lean(top) {
            Some(via) => {
                let stamp = via_stamp(via.host, via.rport, source);
                if stamp.is_empty() {
                    return Ok(stamp);
                }
                let params = via.params.split(';').filter(|p| !p.is_empty()).map(|p| {
                    match p.split_once('=') {
                        Some((name, value)) => (name, Some(value)),
                        None => (p, None),
                    }
                });
                first.reserve(line.len() + 48);
                push_kept(&mut first, via.head, params);
                stamp
            }
            None => {
                let via = Via::parse(top)?;
                let stamp = via_stamp(via.host, rport_of(&via), source);
                if stamp.is_empty() {
                    return Ok(stamp);
                }
                first.reserve(line.len() + 48);
                push_kept(&mut first, head_of(top), via.params.iter());
                stamp
            }
        };
    if let Some(ip) = stamp.received {
        push_received(&mut first, ip);
    }
    if let Some(port) = stamp.rport {
        first.put_slice(b";rport=");
        push_decimal(&mut first, u32::from(port));
    }
    first.put_slice(rest.as_bytes());
    // Only the first Via line changes; the others stay where they are.
    headers.set_first(&HeaderName::Via, first.freeze());
    Ok(stamp)
}

/// Writes the sent-protocol and sent-by `head`, then every parameter but `received` and
/// `rport` (the stamp writes its own).
fn push_kept<'a>(
    out: &mut BytesMut,
    head: &str,
    params: impl Iterator<Item = (&'a str, Option<&'a str>)>,
) {
    out.put_slice(head.as_bytes());
    for (name, value) in params {
        if name.eq_ignore_ascii_case("received") || name.eq_ignore_ascii_case("rport") {
            continue;
        }
        out.put_u8(b';');
        out.put_slice(name.as_bytes());
        if let Some(value) = value {
            out.put_u8(b'=');
            out.put_slice(value.as_bytes());
        }
    }
}

/// What stamping reads from a top Via of the common shape.
#[derive(Debug, PartialEq, Eq)]
struct LeanVia<'a> {
    /// Sent-protocol and sent-by, as written.
    head: &'a str,
    /// The sent-by host.
    host: &'a str,
    /// The first `rport` parameter.
    rport: Rport,
    /// The parameters after the first `;`, as written (empty when none).
    params: &'a str,
}

/// RFC 3261 §25.1 `token` characters.
fn is_token_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

/// A lean scan of the usual top Via, `SIP/2.0/<transport> <host>[:<port>]` then
/// `;name[=value]` parameters of token characters with no whitespace: one pass, no
/// allocation. `None` for anything else (quotes, folding, IPv6, spaces around `;`, `=` or
/// `:`, odd characters), which takes mss-sip's full Via parser, the one that also names
/// the error. Every value accepted here is one the full parser accepts, with the same host
/// and `rport` (tested below, also over the RFC 4475 corpus).
fn lean(top: &str) -> Option<LeanVia<'_>> {
    let b = top.as_bytes();
    if !b.get(..8)?.eq_ignore_ascii_case(b"SIP/2.0/") {
        return None;
    }
    let mut i = 8;
    let skip = |i: &mut usize, f: &dyn Fn(u8) -> bool| {
        let from = *i;
        while b.get(*i).is_some_and(|&c| f(c)) {
            *i += 1;
        }
        *i - from
    };
    if skip(&mut i, &is_token_byte) == 0 || skip(&mut i, &|c| c == b' ') == 0 {
        return None;
    }
    let host_start = i;
    if skip(&mut i, &|c| {
        c.is_ascii_alphanumeric() || c == b'-' || c == b'.'
    }) == 0
    {
        return None;
    }
    let host = top.get(host_start..i)?;
    if b.get(i) == Some(&b':') {
        i += 1;
        let port_start = i;
        let digits = skip(&mut i, &|c| c.is_ascii_digit());
        if digits == 0 || digits > 5 {
            return None;
        }
        top.get(port_start..i)?.parse::<u16>().ok()?;
    }
    let head = top.get(..i)?;
    let params = match b.get(i) {
        None => "",
        Some(b';') => top.get(i + 1..)?,
        Some(_) => return None,
    };
    let mut rport = Rport::Absent;
    if b.get(i).is_some() {
        for p in params.split(';') {
            let (name, value) = match p.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (p, None),
            };
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                return None;
            }
            let value_ok = |v: &str| {
                !v.is_empty()
                    && v.bytes()
                        .all(|c| is_token_byte(c) || matches!(c, b':' | b'[' | b']'))
            };
            if value.is_some_and(|v| !value_ok(v)) {
                return None;
            }
            if rport == Rport::Absent && name.eq_ignore_ascii_case("rport") {
                rport = match value.and_then(|v| v.parse().ok()) {
                    Some(port) => Rport::Value(port),
                    None => Rport::Empty,
                };
            }
        }
    }
    Some(LeanVia {
        head,
        host,
        rport,
        params,
    })
}

/// `received` holds a bare address, IPv6 without brackets (RFC 3261 §20.42 grammar
/// `via-received = "received" EQUAL (IPv4address / IPv6address)`).
fn push_received(out: &mut BytesMut, ip: IpAddr) {
    out.put_slice(b";received=");
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.put_u8(b'.');
                }
                push_decimal(out, u32::from(octet));
            }
        }
        v6 => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// Writes `n` in decimal.
fn push_decimal(out: &mut BytesMut, n: u32) {
    let mut buf = [0u8; 20];
    out.put_slice(mss_sip::fmt_usize(n as usize, &mut buf));
}

/// The end of the first value of a Via line: the first comma outside a quoted string.
/// Byte by byte: `"`, `\\` and `,` are ASCII and never part of a multi-byte character.
fn top_item_end(line: &str) -> usize {
    let b = line.as_bytes();
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, &c) in b.iter().enumerate() {
        match c {
            _ if escaped => escaped = false,
            b'\\' if in_quotes => escaped = true,
            b'"' => in_quotes = !in_quotes,
            b',' if !in_quotes => return i,
            _ => {}
        }
    }
    b.len()
}

/// The sent-protocol and sent-by of a Via value: everything before its first parameter.
fn head_of(item: &str) -> &str {
    let head = item.split(';').next().unwrap_or(item);
    head.trim_end_matches([' ', '\t', '\r', '\n'])
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use mss_sip::net::Transport;
    use mss_sip::{parse_datagram, Message};

    fn parse(vias: &str) -> Message {
        let raw = format!(
            "OPTIONS sip:mss SIP/2.0\r\n{vias}To: <sip:a@b>\r\nFrom: <sip:c@d>;tag=1\r\n\
             Call-ID: x\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        parse_datagram(Bytes::from(raw)).unwrap()
    }

    fn vias(msg: &Message) -> Vec<String> {
        msg.headers()
            .get_all(&HeaderName::Via)
            .map(|v| String::from_utf8(v.to_vec()).unwrap())
            .collect()
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn stamps_received_for_a_host_name() {
        let mut msg = parse("Via: SIP/2.0/UDP bobspc.biloxi.com:5060;branch=z9hG4bK74\r\n");
        let stamp = stamp_top_via(msg.headers_mut(), addr("192.0.2.4:5060")).unwrap();
        assert_eq!(stamp.rport, None);
        assert_eq!(
            vias(&msg),
            ["SIP/2.0/UDP bobspc.biloxi.com:5060;branch=z9hG4bK74;received=192.0.2.4"]
        );
    }

    #[test]
    fn leaves_a_matching_via_alone() {
        let line = "SIP/2.0/UDP 192.0.2.4:5060 ; branch=z9hG4bK74";
        let mut msg = parse(&format!("Via: {line}\r\n"));
        let stamp = stamp_top_via(msg.headers_mut(), addr("192.0.2.4:5060")).unwrap();
        assert!(stamp.is_empty());
        assert_eq!(vias(&msg), [line]);
    }

    #[test]
    fn fills_rport_and_replaces_client_values() {
        let mut msg = parse(
            "Via: SIP/2.0/TCP [2001:db8::1]:5060;rport;branch=z9hG4bK1;received=6.6.6.6, \
             SIP/2.0/UDP proxy.example.com;branch=z9hG4bK2\r\nVia: SIP/2.0/UDP last;branch=z9hG4bK3\r\n",
        );
        stamp_top_via(msg.headers_mut(), addr("[2001:db8::1]:40001")).unwrap();
        assert_eq!(
            vias(&msg),
            [
                "SIP/2.0/TCP [2001:db8::1]:5060;branch=z9hG4bK1;received=2001:db8::1;rport=40001, \
                 SIP/2.0/UDP proxy.example.com;branch=z9hG4bK2",
                "SIP/2.0/UDP last;branch=z9hG4bK3",
            ]
        );
        let via = msg.headers().top_via().unwrap();
        assert_eq!(via.rport(), Some(Some(40001)));
        assert_eq!(via.branch(), Some("z9hG4bK1"));
    }

    #[test]
    fn stamped_request_routes_back_to_the_source() {
        let mut msg = parse("Via: SIP/2.0/UDP 10.0.0.2:5062;rport;branch=z9hG4bK9\r\n");
        let source = addr("198.51.100.7:31000");
        stamp_top_via(msg.headers_mut(), source).unwrap();
        let flow = Flow::udp(source);
        let route = route_response(&flow, msg.headers()).unwrap();
        assert_eq!(route.flow(), Some(Flow::udp(source)));
        let via = msg.headers().top_via().unwrap();
        let r = ViaRoute::from(&via);
        assert_eq!(r.received, Some("198.51.100.7".parse().unwrap()));
        assert_eq!((r.port, r.rport), (Some(5062), Rport::Value(31000)));
        let tcp = Flow {
            transport: Transport::Tcp,
            ..flow
        };
        let fallback = route_response(&tcp, msg.headers()).unwrap().flow().unwrap();
        assert_eq!(fallback.remote, addr("198.51.100.7:5062"));
    }

    #[test]
    fn missing_or_bad_via_is_an_error() {
        let mut headers = Headers::new();
        let e = stamp_top_via(&mut headers, addr("192.0.2.4:5060")).unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::MissingHeader);
        headers.push(HeaderName::Via, Bytes::from_static(b"SIP/2.0/UDP"));
        assert!(stamp_top_via(&mut headers, addr("192.0.2.4:5060")).is_err());
        let flow = Flow::udp(addr("192.0.2.4:5060"));
        assert!(route_response(&flow, &Headers::new()).is_err());
    }

    #[test]
    fn addresses_and_ports_are_written_in_decimal() {
        let mut out = BytesMut::new();
        push_received(&mut out, "10.200.3.0".parse().unwrap());
        push_received(&mut out, "::ffff:192.0.2.1".parse().unwrap());
        push_received(&mut out, "2001:db8::1".parse().unwrap());
        push_decimal(&mut out, 0);
        push_decimal(&mut out, 65535);
        assert_eq!(
            &out[..],
            b";received=10.200.3.0;received=192.0.2.1;received=2001:db8::10"
                .iter()
                .chain(b"65535")
                .copied()
                .collect::<Vec<u8>>()
        );
    }

    #[test]
    fn lean_scan_agrees_with_the_full_parser() {
        for v in [
            "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-1-0",
            "SIP/2.0/UDP h.example;rport;branch=z9hG4bK1",
            "sip/2.0/tcp H.Example:5070;RPORT=1234;received=10.0.0.1;branch=z9hG4bKx",
            "SIP/2.0/UDP h;rport=notaport",
            "SIP/2.0/UDP h",
        ] {
            let lean = lean(v).expect(v);
            let full = Via::parse(v).unwrap();
            assert_eq!((lean.host, lean.rport), (full.host, rport_of(&full)), "{v}");
            assert_eq!(lean.head, head_of(v), "{v}");
        }
        for v in [
            "SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKa",
            "SIP / 2.0 / UDP h;branch=z9hG4bKa",
            "SIP/2.0/UDP h ;branch=z9hG4bKa",
            "SIP/2.0/UDP h;branch=\"q\"",
            "SIP/2.0/UDP h:99999",
            "SIP/2.0/UDP h;;",
            "SIP/2.0/UDP h;branch=",
            "SIP/2.0/UDP h;a=b=c",
            "SIP/2.0/UDP",
        ] {
            assert_eq!(lean(v), None, "{v}");
        }
    }

    /// Over every RFC 4475 torture message: where the lean scan accepts the top Via, the
    /// full parser accepts it too, with the same host and rport.
    #[test]
    fn lean_scan_agrees_on_the_torture_corpus() {
        let mut checked = 0;
        for case in mss_testdata::torture::cases() {
            let Ok(msg) = parse_datagram(case.bytes) else {
                continue;
            };
            for line in msg.headers().get_all(&HeaderName::Via) {
                let Ok(line) = std::str::from_utf8(line) else {
                    continue;
                };
                let top = line.split_at(top_item_end(line)).0;
                if let Some(lean) = lean(top) {
                    let full = Via::parse(top).unwrap_or_else(|e| panic!("{top}: {e}"));
                    assert_eq!((lean.host, lean.rport), (full.host, rport_of(&full)));
                    checked += 1;
                }
            }
        }
        assert!(checked > 10, "{checked}");
    }

    #[test]
    fn top_item_ends_at_an_unquoted_comma() {
        assert_eq!(top_item_end("a;x=\"1,2\", b"), 9);
        assert_eq!(top_item_end("a;x=\"\\\",\""), 9);
        assert_eq!(top_item_end("a"), 1);
    }
}
