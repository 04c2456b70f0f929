//! The few header values the transaction layer reads, pulled out of a message once
//! (like ezk's `BaseHeaders`): top Via, CSeq, Call-ID and the From/To tags.
//!
//! Parsing is mss-sip's typed accessors ([`mss_sip::Headers::top_via`], `cseq`, `call_id`,
//! `from`, `to`); everything borrows from the message. A message whose base headers do not
//! parse cannot be matched to a transaction and is reported, never panicked on.

use mss_sip::header::Via;
use mss_sip::{HeaderName, Headers, ParseError};

/// The magic cookie that starts every RFC 3261 branch (§8.1.1.7).
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// The parts of the top Via the transaction layer uses (RFC 3261 §20.42).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TopVia<'a> {
    /// The parsed value.
    pub(crate) via: Via<'a>,
    /// The whole raw value, trimmed (RFC 2543 matching compares the top Via whole).
    pub(crate) raw: &'a [u8],
}

impl<'a> TopVia<'a> {
    /// Reads the top Via of a message.
    ///
    /// # Errors
    /// `MissingHeader` or `BadHeaderValue` in Via.
    pub(crate) fn read(headers: &'a Headers) -> Result<TopVia<'a>, ParseError> {
        let via = headers.top_via()?;
        let raw = headers
            .values(&HeaderName::Via)
            .next()
            .map(trim)
            .unwrap_or(&[]);
        Ok(TopVia { via, raw })
    }

    /// The branch parameter, if any (an empty one counts as none).
    pub(crate) fn branch(&self) -> Option<&'a str> {
        self.via.branch().filter(|b| !b.is_empty())
    }

    /// Whether the branch starts with the RFC 3261 magic cookie (§17.2.3).
    pub(crate) fn is_rfc3261(&self) -> bool {
        self.branch().is_some_and(|b| b.starts_with(MAGIC_COOKIE))
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
        let cseq = headers.cseq()?;
        Ok(Base {
            via,
            cseq: cseq.seq,
            call_id: headers.call_id()?,
            from_tag: headers.from()?.tag(),
            to_tag: headers.to()?.tag(),
        })
    }
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
        assert_eq!(b.via.via.host, "PC33.atlanta.com");
        assert_eq!(b.via.via.port, Some(5061));
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
