//! What the service reads from a MESSAGE body: that there is one, its Content-Type, and its
//! length in Unicode characters (the offline limit counts characters, not bytes).
//!
//! Bodies pass unchanged whatever their type (`text/plain`, `message/cpim`, IMDN XML …).
//! Only `text/*` bodies are checked: their charset must be UTF-8 (or US-ASCII, a subset)
//! and the bytes must decode as such, because the character count is meaningless otherwise.

use mss_sip::{HeaderName, ParseError, Request};

/// Why a MESSAGE body is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// No body at all: a MESSAGE carries its instant message in the body (RFC 3428 §4).
    Empty,
    /// A body without Content-Type (RFC 3261 §7.4.1 requires one).
    NoContentType,
    /// Content-Type does not parse.
    BadContentType(ParseError),
    /// A `text/*` body in a charset mss cannot count characters of.
    UnknownCharset(String),
    /// A `text/*` body (UTF-8 by its charset) that is not valid UTF-8.
    NotUtf8 {
        /// Byte offset of the first invalid byte.
        at: usize,
    },
}

/// What a valid MESSAGE body is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BodyInfo {
    /// The Content-Type header value, as received (stored and replayed unchanged).
    pub(crate) content_type: String,
    /// Length of the text in Unicode characters (see [`inspect`]).
    pub(crate) chars: usize,
}

/// Charsets whose bytes are UTF-8 (compared ignoring ASCII case).
const UTF8_CHARSETS: &[&str] = &["utf-8", "utf8", "us-ascii", "ascii"];

/// Checks the body of `req` and counts its characters.
///
/// - `text/*`: the whole body, decoded as UTF-8.
/// - `message/cpim` (RFC 3862): the encapsulated content after the CPIM message headers and
///   the MIME headers (two blank lines in), so the wrapper does not eat into the limit.
/// - Anything else: characters when the body is UTF-8 (XML such as IMDN is), else bytes.
///
/// With a `Content-Encoding` other than `identity` the bytes are not text, so bytes are
/// counted and no UTF-8 check is made.
pub(crate) fn inspect(req: &Request) -> Result<BodyInfo, BodyError> {
    let body = req.body();
    if body.is_empty() {
        return Err(BodyError::Empty);
    }
    let h = req.headers();
    let raw_type = match h.get_str(&HeaderName::ContentType) {
        Ok(Some(t)) => t.trim().to_owned(),
        Ok(None) => return Err(BodyError::NoContentType),
        Err(e) => return Err(BodyError::BadContentType(e)),
    };
    let ct = match h.content_type() {
        Ok(Some(ct)) => ct,
        Ok(None) => return Err(BodyError::NoContentType),
        Err(e) => return Err(BodyError::BadContentType(e)),
    };
    let encoded = h
        .get_str(&HeaderName::ContentEncoding)
        .ok()
        .flatten()
        .is_some_and(|e| !e.trim().is_empty() && !e.trim().eq_ignore_ascii_case("identity"));
    let chars = if encoded {
        body.len()
    } else if ct.mtype.eq_ignore_ascii_case("text") {
        if let Some(Some(cs)) = ct.params.get("charset") {
            let cs = mss_sip::unquote(cs);
            if !UTF8_CHARSETS
                .iter()
                .any(|u| u.eq_ignore_ascii_case(cs.trim()))
            {
                return Err(BodyError::UnknownCharset(cs.into_owned()));
            }
        }
        match std::str::from_utf8(body) {
            Ok(text) => text.chars().count(),
            Err(e) => {
                return Err(BodyError::NotUtf8 {
                    at: e.valid_up_to(),
                })
            }
        }
    } else if ct.is("message", "cpim") {
        count_lenient(cpim_content(body))
    } else {
        count_lenient(body)
    };
    Ok(BodyInfo {
        content_type: raw_type,
        chars,
    })
}

/// Characters of `bytes` when they are UTF-8, else the number of bytes.
fn count_lenient(bytes: &[u8]) -> usize {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.chars().count(),
        Err(_) => bytes.len(),
    }
}

/// The encapsulated content of a `message/cpim` body: what follows the second blank line
/// (after the CPIM message headers and the MIME headers, RFC 3862 §2). A body without two
/// blank lines is counted whole.
fn cpim_content(body: &[u8]) -> &[u8] {
    let mut rest = body;
    for _ in 0..2 {
        match blank_line_end(rest) {
            Some(end) => rest = rest.get(end..).unwrap_or(&[]),
            None => return body,
        }
    }
    rest
}

/// The offset just past the first empty line (`\r\n\r\n` or `\n\n`) of `b`.
fn blank_line_end(b: &[u8]) -> Option<usize> {
    let crlf = b.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = b.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use mss_sip::{parse_datagram, Message};

    fn message(content_type: Option<&str>, extra: &str, body: &[u8]) -> Request {
        let mut text = String::from(
            "MESSAGE sip:102@pbx SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
             From: <sip:101@pbx>;tag=1\r\nTo: <sip:102@pbx>\r\nCall-ID: c1\r\n\
             CSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\n",
        );
        if let Some(ct) = content_type {
            text.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        text.push_str(extra);
        text.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(body);
        match parse_datagram(Bytes::from(bytes)).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => panic!(),
        }
    }

    #[test]
    fn counts_characters_not_bytes() {
        let text = "é".repeat(199);
        let info = inspect(&message(Some("text/plain"), "", text.as_bytes())).unwrap();
        assert_eq!(info.chars, 199);
        assert_eq!(info.content_type, "text/plain");
        let ct = "text/plain; charset=\"UTF-8\"";
        let info = inspect(&message(Some(ct), "", "日本語".as_bytes())).unwrap();
        assert_eq!((info.chars, info.content_type.as_str()), (3, ct));
    }

    #[test]
    fn refuses_what_cannot_be_counted() {
        assert_eq!(
            inspect(&message(Some("text/plain"), "", b"")),
            Err(BodyError::Empty)
        );
        assert_eq!(
            inspect(&message(None, "", b"hi")),
            Err(BodyError::NoContentType)
        );
        assert_eq!(
            inspect(&message(Some("text/plain;charset=ISO-8859-1"), "", b"hi")),
            Err(BodyError::UnknownCharset("ISO-8859-1".into()))
        );
        assert_eq!(
            inspect(&message(Some("text/plain"), "", b"ok\xff")),
            Err(BodyError::NotUtf8 { at: 2 })
        );
        assert!(matches!(
            inspect(&message(Some("text"), "", b"hi")),
            Err(BodyError::BadContentType(_))
        ));
    }

    #[test]
    fn other_types_pass() {
        let cpim =
            b"From: <sip:101@pbx>\r\nTo: <sip:102@pbx>\r\nDateTime: 2026-01-01T00:00:00Z\r\n\r\n\
Content-Type: text/plain;charset=utf-8\r\n\r\nhello \xc3\xa9";
        let info = inspect(&message(Some("message/cpim"), "", cpim)).unwrap();
        assert_eq!(info.chars, 7);
        let imdn = "<?xml version=\"1.0\"?><imdn>é</imdn>";
        let info = inspect(&message(Some("message/imdn+xml"), "", imdn.as_bytes())).unwrap();
        assert_eq!(info.chars, imdn.chars().count());
        let bin = inspect(&message(Some("application/octet-stream"), "", b"\xff\xfe")).unwrap();
        assert_eq!(bin.chars, 2);
        let gz = inspect(&message(
            Some("text/plain"),
            "Content-Encoding: gzip\r\n",
            b"\x1f\x8b\x08",
        ))
        .unwrap();
        assert_eq!(gz.chars, 3);
        // A CPIM body without its blank lines is counted whole.
        assert_eq!(cpim_content(b"abc"), b"abc");
        assert_eq!(cpim_content(b"a\n\nb\n\nc"), b"c");
    }
}
