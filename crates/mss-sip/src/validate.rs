//! The checks a server makes before processing a message (RFC 3261 §8.2, §16.3; RFC 4475).

use crate::core::{check_common, RequestCore};
use crate::error::{ParseError, ParseErrorKind};
use crate::message::{Message, Request, Response, SIP_VERSION};
use crate::name::HeaderName;
use crate::uri::Uri;

fn check_version(v: &[u8]) -> Result<(), ParseError> {
    if v.eq_ignore_ascii_case(SIP_VERSION) {
        Ok(())
    } else {
        Err(ParseError::new(ParseErrorKind::UnsupportedVersion, 0))
    }
}

impl Request {
    /// Checks what a server must check before processing a request: version `SIP/2.0`
    /// (else `UnsupportedVersion`, answer 505), a clean Request-Line and a parseable
    /// Request-URI without `<>`, spaces or URI headers, exactly one From, To, Call-ID and
    /// CSeq, at most one Max-Forwards (0..=255), well-formed Via values, a CSeq method equal
    /// to the request method, a sane Content-Length, and well-formed Contact, Expires,
    /// Route, Record-Route and Date when present.
    ///
    /// # Errors
    /// The first problem found; [`ParseError::status_code`] and
    /// [`ParseError::reason_phrase`] give the answer.
    pub fn validate(&self) -> Result<(), ParseError> {
        self.check().map(|_| ())
    }

    /// [`Request::validate`], keeping what it parsed: the Request-URI and the core
    /// headers ([`RequestCore`]), so that nothing downstream parses them again.
    ///
    /// # Errors
    /// As [`Request::validate`]: the first problem found, the same one.
    pub fn check(&self) -> Result<RequestCore<'_>, ParseError> {
        check_version(&self.version)?;
        if self.lax_start_line {
            return Err(ParseError::new(ParseErrorKind::LaxStartLine, 0));
        }
        let uri = self.uri()?;
        // RFC 3261 §19.1.1 table: URI headers are not allowed in a Request-URI.
        if let Uri::Sip(s) = uri {
            if s.headers.is_some() {
                return Err(ParseError::new(ParseErrorKind::BadRequestUri, 0));
            }
        }
        let core = check_common(&self.headers)?;
        if core.cseq.method != self.method {
            return Err(ParseError::in_header(
                ParseErrorKind::CSeqMethodMismatch,
                HeaderName::CSeq,
                0,
            ));
        }
        Ok(RequestCore { uri, core })
    }

    /// True when a response to this request can be built and routed: the top Via parses
    /// and From, To, Call-ID and CSeq are present (they are copied as they are).
    pub fn can_build_response(&self) -> bool {
        self.headers.top_via().is_ok()
            && [
                HeaderName::From,
                HeaderName::To,
                HeaderName::CallId,
                HeaderName::CSeq,
            ]
            .iter()
            .all(|n| self.headers.contains(n))
    }
}

impl Response {
    /// Checks a response before matching it to a transaction: version `SIP/2.0`, exactly
    /// one From, To, Call-ID and CSeq, well-formed Via, CSeq in range.
    ///
    /// # Errors
    /// The first problem found; a client drops such a response.
    pub fn validate(&self) -> Result<(), ParseError> {
        check_version(&self.version)?;
        check_common(&self.headers).map(|_| ())
    }
}

/// Validates a request ([`Request::validate`]) or a response ([`Response::validate`]).
///
/// # Errors
/// The first problem found.
pub fn validate_core(msg: &Message) -> Result<(), ParseError> {
    match msg {
        Message::Request(r) => r.validate(),
        Message::Response(r) => r.validate(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::parse_datagram;
    use bytes::Bytes;

    fn v(s: &'static str) -> Result<(), ParseError> {
        validate_core(&parse_datagram(Bytes::from_static(s.as_bytes())).unwrap())
    }

    const OK: &str = "OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:b@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nl: 0\r\n\r\n";

    #[test]
    fn good_and_bad() {
        assert!(v(OK).is_ok());
        let e = v("OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:b@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nl: 0\r\n\r\n").unwrap_err();
        assert_eq!(e.reason_phrase(), "CSeq Method Mismatch");
        let e = v("OPTIONS sip:a@example.com SIP/7.0\r\nVia: SIP/7.0/UDP h\r\n\r\n").unwrap_err();
        assert_eq!(e.status_code().as_u16(), 505);
        let e = v("OPTIONS <sip:a@example.com> SIP/2.0\r\n\r\n").unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::BadRequestUri);
        let e = v(
            "OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nCSeq: 1 OPTIONS\r\n\r\n",
        )
        .unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::MissingHeader);
    }
}
