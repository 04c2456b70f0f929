//! Small typed headers: CSeq, Call-ID, numbers, Content-Type, Date, Warning, Retry-After,
//! option-tag lists (RFC 3261 §20).

use std::time::SystemTime;

use crate::error::{ParseError, ParseErrorKind};
use crate::method::Method;
use crate::name::HeaderName;
use crate::params::{check_header_params, find_unquoted, quoted_len, trim, Params};
use crate::parse::is_token_char;

fn bad(name: HeaderName, offset: usize) -> ParseError {
    ParseError::in_header(ParseErrorKind::BadHeaderValue, name, offset)
}

pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

/// Parses decimal digits into a u32: `ValueOutOfRange` above 2^32-1 (no overflow).
pub(crate) fn parse_u32(s: &str, name: HeaderName) -> Result<u32, ParseError> {
    let s = trim(s);
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return Err(bad(name, 0));
    }
    let digits = s.trim_start_matches('0');
    if digits.len() > 10 {
        return Err(ParseError::in_header(
            ParseErrorKind::ValueOutOfRange,
            name,
            0,
        ));
    }
    digits
        .bytes()
        .try_fold(0u64, |acc, d| Some(acc * 10 + u64::from(d - b'0')))
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| ParseError::in_header(ParseErrorKind::ValueOutOfRange, name, 0))
}

/// The CSeq header (RFC 3261 §20.16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// The sequence number (0..=2^32-1).
    pub seq: u32,
    /// The method.
    pub method: Method,
}

impl CSeq {
    /// Parses `1*DIGIT LWS Method`; `method_bytes` lets an extension method share the
    /// message buffer.
    pub(crate) fn parse(
        s: &str,
        method_of: impl FnOnce(&str) -> Method,
    ) -> Result<CSeq, ParseError> {
        let s = trim(s);
        let n = s.bytes().take_while(u8::is_ascii_digit).count();
        let (num, rest) = s
            .split_at_checked(n)
            .ok_or_else(|| bad(HeaderName::CSeq, 0))?;
        if !rest.starts_with([' ', '\t', '\r', '\n']) {
            return Err(bad(HeaderName::CSeq, n));
        }
        let seq = parse_u32(num, HeaderName::CSeq)?;
        let m = trim(rest);
        if !is_token(m) {
            return Err(bad(HeaderName::CSeq, n));
        }
        Ok(CSeq {
            seq,
            method: method_of(m),
        })
    }
}

/// Checks a Call-ID: `word ["@" word]` (RFC 3261 §25.1).
pub(crate) fn check_call_id(s: &str) -> Result<(), ParseError> {
    let word = |w: &str| {
        !w.is_empty()
            && w.bytes().all(|c| {
                is_token_char(c)
                    || matches!(
                        c,
                        b'(' | b')'
                            | b'<'
                            | b'>'
                            | b':'
                            | b'\\'
                            | b'"'
                            | b'/'
                            | b'['
                            | b']'
                            | b'?'
                            | b'{'
                            | b'}'
                    )
            })
    };
    let ok = match s.split_once('@') {
        Some((a, b)) => word(a) && word(b),
        None => word(s),
    };
    if ok {
        Ok(())
    } else {
        Err(bad(HeaderName::CallId, 0))
    }
}

/// The Content-Type header (RFC 3261 §20.15): `type/subtype;params`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentType<'a> {
    /// Media type (`application`).
    pub mtype: &'a str,
    /// Media subtype (`sdp`).
    pub subtype: &'a str,
    /// Parameters (`charset=UTF-8`, `boundary=…`).
    pub params: Params<'a>,
}

impl<'a> ContentType<'a> {
    pub(crate) fn parse(s: &'a str) -> Result<ContentType<'a>, ParseError> {
        let s = trim(s);
        let (head, params) = match find_unquoted(s, b';') {
            Some(i) => (s.get(..i).unwrap_or(""), s.get(i + 1..).unwrap_or("")),
            None => (s, ""),
        };
        let (t, st) = head
            .split_once('/')
            .ok_or_else(|| bad(HeaderName::ContentType, 0))?;
        let (t, st) = (trim(t), trim(st));
        if !is_token(t) || !is_token(st) {
            return Err(bad(HeaderName::ContentType, 0));
        }
        if !params.is_empty() {
            check_header_params(params)
                .map_err(|o| bad(HeaderName::ContentType, head.len() + 1 + o))?;
        }
        Ok(ContentType {
            mtype: t,
            subtype: st,
            params: Params::new(params),
        })
    }

    /// True when the type is `mtype/subtype`, ignoring case.
    pub fn is(&self, mtype: &str, subtype: &str) -> bool {
        self.mtype.eq_ignore_ascii_case(mtype) && self.subtype.eq_ignore_ascii_case(subtype)
    }
}

/// Parses an RFC 1123 date in GMT (RFC 3261 §20.17).
pub(crate) fn parse_date(s: &str) -> Result<SystemTime, ParseError> {
    let s = trim(s);
    // httpdate also takes RFC 850 and asctime forms; SIP allows only rfc1123-date.
    if !s.ends_with(" GMT") || s.as_bytes().get(3) != Some(&b',') {
        return Err(bad(HeaderName::Date, 0));
    }
    httpdate::parse_http_date(s).map_err(|_| bad(HeaderName::Date, 0))
}

/// Formats a time as an RFC 1123 GMT date for a Date header.
pub fn format_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

/// One Warning value (RFC 3261 §20.43).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Warning<'a> {
    /// Three-digit warn-code.
    pub code: u16,
    /// warn-agent (`host[:port]` or pseudonym).
    pub agent: &'a str,
    /// warn-text with its quotes (see [`crate::unquote`]).
    pub text: &'a str,
}

impl<'a> Warning<'a> {
    pub(crate) fn parse(s: &'a str) -> Result<Warning<'a>, ParseError> {
        let s = trim(s);
        let mut it = s.splitn(2, [' ', '\t']);
        let code = it.next().unwrap_or("");
        let rest = trim(it.next().unwrap_or(""));
        if code.len() != 3 || !code.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad(HeaderName::Warning, 0));
        }
        let mut it = rest.splitn(2, [' ', '\t']);
        let agent = it.next().unwrap_or("");
        let text = trim(it.next().unwrap_or(""));
        if agent.is_empty() || quoted_len(text) != Some(text.len()) {
            return Err(bad(HeaderName::Warning, 4));
        }
        Ok(Warning {
            code: code.parse().map_err(|_| bad(HeaderName::Warning, 0))?,
            agent,
            text,
        })
    }
}

/// The Retry-After header (RFC 3261 §20.33).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter<'a> {
    /// Seconds to wait.
    pub seconds: u32,
    /// The comment in parentheses, if any (without the parentheses).
    pub comment: Option<&'a str>,
    /// Parameters (`duration`).
    pub params: Params<'a>,
}

impl<'a> RetryAfter<'a> {
    pub(crate) fn parse(s: &'a str) -> Result<RetryAfter<'a>, ParseError> {
        let s = trim(s);
        let n = s.bytes().take_while(u8::is_ascii_digit).count();
        let seconds = parse_u32(s.get(..n).unwrap_or(""), HeaderName::RetryAfter)?;
        let mut rest = trim(s.get(n..).unwrap_or(""));
        let mut comment = None;
        if let Some(c) = rest.strip_prefix('(') {
            let close = c.find(')').ok_or_else(|| bad(HeaderName::RetryAfter, n))?;
            comment = Some(c.get(..close).unwrap_or(""));
            rest = trim(c.get(close + 1..).unwrap_or(""));
        }
        let params = match rest.strip_prefix(';') {
            Some(p) => {
                check_header_params(p).map_err(|o| bad(HeaderName::RetryAfter, o))?;
                p
            }
            None if rest.is_empty() => "",
            None => return Err(bad(HeaderName::RetryAfter, n)),
        };
        Ok(RetryAfter {
            seconds,
            comment,
            params: Params::new(params),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cseq() {
        let c = CSeq::parse("0009\r\n  INVITE", |m| {
            Method::from_bytes(bytes::Bytes::copy_from_slice(m.as_bytes()))
        })
        .unwrap();
        assert_eq!((c.seq, c.method), (9, Method::Invite));
        let e = CSeq::parse("36893488147419103232 REGISTER", |_| Method::Register).unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::ValueOutOfRange);
        assert_eq!(
            CSeq::parse("4294967295 ACK", |_| Method::Ack).unwrap().seq,
            u32::MAX
        );
        assert!(CSeq::parse("4294967296 ACK", |_| Method::Ack).is_err());
        assert!(CSeq::parse("1INVITE", |_| Method::Ack).is_err());
        assert!(CSeq::parse("INVITE", |_| Method::Ack).is_err());
    }

    #[test]
    fn others() {
        assert!(check_call_id("intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{").is_ok());
        assert!(check_call_id("a b").is_err());
        assert!(check_call_id("").is_err());
        let ct = ContentType::parse("multipart/mixed;boundary=\"x;y\"").unwrap();
        assert!(ct.is("Multipart", "MIXED"));
        assert_eq!(ct.params.get("boundary"), Some(Some("\"x;y\"")));
        assert!(parse_date("Sat, 13 Nov 2010 23:29:00 GMT").is_ok());
        assert!(parse_date("Fri, 01 Jan 2010 16:00:00 EST").is_err());
        let w = Warning::parse("399 host.example.com \"Offline store full\"").unwrap();
        assert_eq!((w.code, w.agent), (399, "host.example.com"));
        assert!(Warning::parse("1812 overture \"In Progress\"").is_err());
        let r = RetryAfter::parse("120 (I'm in a meeting) ;duration=3600").unwrap();
        assert_eq!((r.seconds, r.comment), (120, Some("I'm in a meeting")));
        assert!(RetryAfter::parse("949302838503028349304023988").is_err());
        assert_eq!(parse_u32("0068", HeaderName::MaxForwards), Ok(68));
    }
}
