//! The few header values the transaction layer reads, pulled out of a message once
//! (like ezk's `BaseHeaders`): top Via, CSeq, Call-ID and the From/To tags.
//!
//! Parsing is mss-sip's typed accessors ([`mss_sip::Headers::top_via`], `cseq`, `call_id`,
//! `from`, `to`); everything borrows from the message. A message whose base headers do not
//! parse cannot be matched to a transaction and is reported, never panicked on.

use mss_sip::{HeaderName, Headers, ParseError};

/// The magic cookie that starts every RFC 3261 branch (§8.1.1.7).
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// The parts of the top Via the transaction layer uses (RFC 3261 §20.42).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TopVia<'a> {
    /// The branch parameter, if any (an empty one counts as none).
    branch: Option<&'a str>,
    /// The sent-by host, as written.
    pub(crate) host: &'a str,
    /// The sent-by port, if given.
    pub(crate) port: Option<u16>,
    /// The whole raw value, trimmed (RFC 2543 matching compares the top Via whole).
    pub(crate) raw: &'a [u8],
}

impl<'a> TopVia<'a> {
    /// Reads the top Via of a message.
    ///
    /// Every request and response is matched through this, so the common shape
    /// (`SIP/2.0/UDP host:port;params`, no quotes or comments) is scanned by a lean private
    /// reader (see [`scan`]); anything else goes through mss-sip's full
    /// [`Headers::top_via`] parser, which also produces the error for a bad Via. Both
    /// give the same branch, host and port for the values the lean reader accepts.
    ///
    /// # Errors
    /// `MissingHeader` or `BadHeaderValue` in Via.
    pub(crate) fn read(headers: &'a Headers) -> Result<TopVia<'a>, ParseError> {
        if let Some(v) = headers.get(&HeaderName::Via).and_then(scan) {
            return Ok(v);
        }
        let via = headers.top_via()?;
        let raw = headers
            .values(&HeaderName::Via)
            .next()
            .map(trim)
            .unwrap_or(&[]);
        Ok(TopVia {
            branch: via.branch().filter(|b| !b.is_empty()),
            host: via.host,
            port: via.port,
            raw,
        })
    }

    /// The branch parameter, if any (an empty one counts as none).
    pub(crate) fn branch(&self) -> Option<&'a str> {
        self.branch
    }

    /// Whether the branch starts with the RFC 3261 magic cookie (§17.2.3).
    pub(crate) fn is_rfc3261(&self) -> bool {
        self.branch.is_some_and(|b| b.starts_with(MAGIC_COOKIE))
    }
}

/// The lean reader of the first Via line: one pass over the bytes, no allocation. `None`
/// for anything unusual (quotes, comments, whitespace inside the sent-protocol or sent-by,
/// IPv6 references, odd characters), which then takes the full parser's path.
fn scan(line: &[u8]) -> Option<TopVia<'_>> {
    let end = memchr::memchr3(b',', b'"', b'(', line).unwrap_or(line.len());
    if line.get(end).is_some_and(|&b| b != b',') {
        return None;
    }
    let top = trim(line.get(..end)?);
    if !top.get(..8)?.eq_ignore_ascii_case(b"SIP/2.0/") {
        return None;
    }
    let mut cur = Cursor { s: top, i: 8 };
    if cur.take_while(is_token_byte).is_empty() || cur.skip_ws() == 0 {
        return None;
    }
    let host = cur.take_while(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if host.is_empty() {
        return None;
    }
    let mut port = None;
    if cur.eat(b':') {
        let digits = cur.take_while(|b| b.is_ascii_digit());
        if digits.is_empty() || digits.len() > 5 {
            return None;
        }
        let n = digits
            .iter()
            .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
        port = Some(u16::try_from(n).ok()?);
    }
    cur.skip_ws();
    let mut branch = None;
    if !cur.at_end() {
        if !cur.eat(b';') {
            return None;
        }
        for param in cur.rest().split(|&b| b == b';') {
            let (name, value) = match param.iter().position(|&b| b == b'=') {
                Some(eq) => (trim(param.get(..eq)?), Some(trim(param.get(eq + 1..)?))),
                None => (trim(param), None),
            };
            // `name=` without a value, or odd characters: let the full parser decide.
            let value_ok = |v: &[u8]| {
                !v.is_empty()
                    && v.iter()
                        .all(|&b| is_token_byte(b) || matches!(b, b':' | b'[' | b']'))
            };
            if name.is_empty() || !name.iter().all(|&b| is_token_byte(b)) {
                return None;
            }
            if value.is_some_and(|v| !value_ok(v)) {
                return None;
            }
            if branch.is_none() && name.eq_ignore_ascii_case(b"branch") {
                branch = Some(value.unwrap_or(&[]));
            }
        }
    }
    Some(TopVia {
        // Token bytes are ASCII, so these conversions cannot fail.
        branch: branch
            .filter(|b| !b.is_empty())
            .and_then(|b| std::str::from_utf8(b).ok()),
        host: std::str::from_utf8(host).ok()?,
        port,
        raw: top,
    })
}

/// RFC 3261 §25.1 `token` characters.
#[inline]
fn is_token_byte(b: u8) -> bool {
    TOKEN[usize::from(b)]
}

/// Lookup table for [`is_token_byte`].
static TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        i += 1;
    }
    t
};

/// A position in a byte string.
struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.i;
        while self.s.get(self.i).is_some_and(|&b| f(b)) {
            self.i += 1;
        }
        self.s.get(start..self.i).unwrap_or(&[])
    }

    fn skip_ws(&mut self) -> usize {
        self.take_while(|b| b == b' ' || b == b'\t').len()
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.s.get(self.i) == Some(&b);
        if hit {
            self.i += 1;
        }
        hit
    }

    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }

    fn rest(&self) -> &'a [u8] {
        self.s.get(self.i..).unwrap_or(&[])
    }
}

/// The base headers of one message.
#[derive(Debug, Clone)]
pub(crate) struct Base<'a> {
    pub(crate) via: TopVia<'a>,
    pub(crate) cseq: u32,
    pub(crate) call_id: &'a str,
    pub(crate) from_tag: Option<&'a str>,
    pub(crate) to_tag: Option<&'a str>,
}

impl<'a> Base<'a> {
    /// Reads the base headers of a message.
    ///
    /// # Errors
    /// The [`ParseError`] of the first of Via, CSeq, Call-ID, From, To that is missing or
    /// malformed.
    pub(crate) fn read(headers: &'a Headers) -> Result<Base<'a>, ParseError> {
        let via = TopVia::read(headers)?;
        // New transactions get the full Via check (the lean reader is only for matching).
        headers.top_via()?;
        let cseq = headers.cseq()?;
        Ok(Base {
            via,
            cseq: cseq.seq,
            call_id: headers.call_id()?,
            from_tag: headers.from_tag()?,
            to_tag: headers.to_tag()?,
        })
    }
}

/// What a client transaction reads of a request the TU sends
/// ([`crate::Transactions::send_request`]): its top Via and its CSeq number, after the
/// checks [`Base::read`] makes, in the same order and with the same errors, except that
/// From and To are only required to be there. The transaction never looks inside them
/// (its key is the branch, §17.1.3; the ACK of a non-2xx copies them whole, §17.1.1.3),
/// and the TU built them itself, so the full name-addr parse of both (and of their URIs)
/// that `Base::read` makes to find the tags is skipped on every request mss sends. The
/// top Via is read once: [`TopVia::read`] takes the full parser's path (and its errors)
/// for any value the lean reader does not accept, and a value the lean reader accepts
/// is one the full parser accepts too (checked over the RFC 4475 corpus below), so the
/// second, full parse `Base::read` makes of it could not fail.
///
/// # Errors
/// The [`ParseError`] of the first of Via, CSeq, Call-ID, From, To that is missing or
/// malformed (From and To: missing only).
pub(crate) fn read_outgoing(headers: &Headers) -> Result<(TopVia<'_>, u32), ParseError> {
    let via = TopVia::read(headers)?;
    let cseq = headers.cseq()?.seq;
    headers.call_id()?;
    for name in [HeaderName::From, HeaderName::To] {
        if !headers.contains(&name) {
            return Err(ParseError::in_header(
                mss_sip::ParseErrorKind::MissingHeader,
                name,
                0,
            ));
        }
    }
    Ok((via, cseq))
}

/// The `tag` of a To header value we stored (the To of a response we sent).
pub(crate) fn tag_of(to: &[u8]) -> Option<&str> {
    let to = std::str::from_utf8(to).ok()?;
    mss_sip::header::NameAddr::parse(to, &HeaderName::To)
        .ok()?
        .tag()
}

/// Trims linear whitespace (SP, HTAB, CR, LF of folded lines) at both ends.
pub(crate) fn trim(mut v: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = v {
        if first.is_ascii_whitespace() {
            v = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = v {
        if last.is_ascii_whitespace() {
            v = rest;
        } else {
            break;
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(lines: &[(&'static str, &'static str)]) -> Headers {
        let mut h = Headers::new();
        for (n, v) in lines {
            h.push(HeaderName::from_static(n), *v);
        }
        h
    }

    #[test]
    fn reads_the_base_headers() {
        let h = headers(&[
            (
                "Via",
                "SIP / 2.0 / UDP PC33.atlanta.com : 5061 ;branch=z9hG4bKx, SIP/2.0/TCP b",
            ),
            ("Via", "SIP/2.0/UDP c;branch=z9hG4bKc"),
            ("From", "Alice <sip:alice@atlanta.com>;tag=88sja8x"),
            ("t", "<sip:bob@biloxi.com;tag=not-this>"),
            ("i", "987asjd97y7atg"),
            ("CSeq", "986759 INVITE"),
        ]);
        let b = Base::read(&h).unwrap();
        assert_eq!(b.via.branch(), Some("z9hG4bKx"));
        assert!(b.via.is_rfc3261());
        assert_eq!(b.via.host, "PC33.atlanta.com");
        assert_eq!(b.via.port, Some(5061));
        assert_eq!(
            b.via.raw,
            b"SIP / 2.0 / UDP PC33.atlanta.com : 5061 ;branch=z9hG4bKx"
        );
        assert_eq!(b.cseq, 986759);
        assert_eq!(b.call_id, "987asjd97y7atg");
        assert_eq!(b.from_tag, Some("88sja8x"));
        assert_eq!(b.to_tag, None, "a URI parameter is not the header's tag");
    }

    #[test]
    fn reports_missing_or_bad_headers() {
        let h = headers(&[("Via", "SIP/2.0/UDP h;branch=abc"), ("CSeq", "1 OPTIONS")]);
        let e = Base::read(&h).unwrap_err();
        assert_eq!(e.header, Some(HeaderName::CallId));
        assert!(!TopVia::read(&h).unwrap().is_rfc3261());
        let h = headers(&[("Via", "garbage")]);
        assert!(TopVia::read(&h).is_err());
        let h = headers(&[("From", "a")]);
        assert_eq!(TopVia::read(&h).unwrap_err().header, Some(HeaderName::Via));
    }

    #[test]
    fn lean_reader_agrees_with_the_full_parser() {
        for v in [
            "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKkjshdyff",
            "SIP/2.0/TCP 192.0.2.1:5060;rport;branch=z9hG4bK1;received=192.0.2.9",
            "sip/2.0/tls Host.Example:5061 ; BRANCH = z9hG4bKx ;maddr=239.1.1.1",
            "SIP/2.0/UDP h;branch=z9hG4bKa, SIP/2.0/UDP second;branch=z9hG4bKb",
            "SIP/2.0/UDP h.example:5060",
            "SIP/2.0/UDP h.example;rport;branch",
        ] {
            let h = headers(&[("Via", v)]);
            let lean = scan(h.get(&HeaderName::Via).unwrap()).expect(v);
            let full = h.top_via().unwrap();
            assert_eq!(
                lean.branch(),
                full.branch().filter(|b| !b.is_empty()),
                "{v}"
            );
            assert_eq!((lean.host, lean.port), (full.host, full.port), "{v}");
        }
        // Unusual shapes take the full parser's path (and its errors).
        for v in [
            "SIP / 2.0 / UDP h;branch=z9hG4bKa",
            "SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKa",
            "SIP/2.0/UDP h;branch=\"q\"",
            "SIP/2.0/UDP h : 5060;branch=z9hG4bKa",
            "SIP/2.0/UDP h:99999;branch=z9hG4bKa",
            "SIP/2.0/UDP",
            "SIP/2.0/UDP h.example;branch=",
            "SIP/2.0/UDP h.example;",
        ] {
            let h = headers(&[("Via", v)]);
            assert_eq!(scan(h.get(&HeaderName::Via).unwrap()), None, "{v}");
        }
        let h = headers(&[("Via", "SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKa")]);
        let v = TopVia::read(&h).unwrap();
        assert_eq!((v.host, v.port), ("[2001:db8::1]", Some(5060)));
    }

    /// Over every RFC 4475 torture message: where the lean reader accepts the top Via, the
    /// full parser agrees on branch, host and port; nothing panics.
    #[test]
    fn lean_reader_agrees_on_the_torture_corpus() {
        let mut checked = 0;
        for case in mss_testdata::torture::cases() {
            let path = &case.name;
            let Ok(msg) = mss_sip::parse_datagram(case.bytes) else {
                continue;
            };
            let h = msg.headers();
            let _ = Base::read(h);
            let Some(lean) = h.get(&HeaderName::Via).and_then(scan) else {
                continue;
            };
            let full = h.top_via().unwrap_or_else(|e| panic!("{path:?}: {e}"));
            assert_eq!(
                lean.branch(),
                full.branch().filter(|b| !b.is_empty()),
                "{path:?}"
            );
            assert_eq!((lean.host, lean.port), (full.host, full.port), "{path:?}");
            checked += 1;
        }
        assert!(checked > 10, "{checked}");
    }

    /// Over every RFC 4475 torture message: what a request sent by the TU is read for
    /// agrees with `Base::read` (same Via and CSeq, or the same error), except for a From
    /// or To that is there but does not parse, which only `Base::read` refuses.
    #[test]
    fn the_outgoing_reader_agrees_with_base_read_on_the_torture_corpus() {
        let (mut same, mut skipped) = (0, 0);
        for case in mss_testdata::torture::cases() {
            let Ok(msg) = mss_sip::parse_datagram(case.bytes) else {
                continue;
            };
            let h = msg.headers();
            let name_addrs_parse = h.from().is_ok() && h.to().is_ok();
            match (Base::read(h), read_outgoing(h)) {
                (Ok(b), Ok((via, cseq))) => {
                    assert_eq!((b.via, b.cseq), (via, cseq), "{:?}", case.name);
                    same += 1;
                }
                (Err(a), Err(b)) => {
                    assert_eq!(a, b, "{:?}", case.name);
                    same += 1;
                }
                (Err(e), Ok(_)) => {
                    assert!(
                        !name_addrs_parse
                            && matches!(e.header, Some(HeaderName::From | HeaderName::To)),
                        "{:?}: {e}",
                        case.name
                    );
                    skipped += 1;
                }
                (Ok(_), Err(e)) => panic!("{:?}: only the outgoing reader fails: {e}", case.name),
            }
        }
        assert!(
            same > 30 && skipped > 0,
            "{same} agree, {skipped} bad From/To"
        );
    }

    #[test]
    fn the_outgoing_reader_requires_from_and_to() {
        let mut h = headers(&[
            ("Via", "SIP/2.0/UDP h;branch=z9hG4bK1"),
            ("From", "<sip:a@h>;tag=1"),
            ("To", "<sip:b@h>"),
            ("Call-ID", "c"),
            ("CSeq", "7 INVITE"),
        ]);
        assert_eq!(read_outgoing(&h).unwrap().1, 7);
        h.remove(&HeaderName::To);
        assert_eq!(read_outgoing(&h).unwrap_err().header, Some(HeaderName::To));
        h.remove(&HeaderName::CSeq);
        assert_eq!(
            read_outgoing(&h).unwrap_err().header,
            Some(HeaderName::CSeq)
        );
    }

    #[test]
    fn tags_and_trim() {
        assert_eq!(
            tag_of(b"Bob <sip:bob@b.example>;tag=99sa0xk"),
            Some("99sa0xk")
        );
        assert_eq!(tag_of(b"Bob <sip:bob@b.example>"), None);
        assert_eq!(tag_of(b"\xff"), None);
        assert_eq!(trim(b"  a b \r\n "), b"a b");
        assert_eq!(trim(b"   "), b"");
    }
}
