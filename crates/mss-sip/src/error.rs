//! Parse errors: what went wrong, in which header, at which byte offset.

use std::fmt;

use crate::name::HeaderName;
use crate::status::StatusCode;

/// What kind of problem a [`ParseError`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// The start line is neither a Request-Line nor a Status-Line (RFC 3261 §7.1, §7.2).
    BadStartLine,
    /// The start line uses more than one space between elements or trailing spaces
    /// (RFC 4475 §3.1.2.9, §3.1.2.10): the message was read liberally but is rejected.
    LaxStartLine,
    /// The SIP-Version is well formed but not `SIP/2.0`: a server answers 505 (RFC 3261 §8.2).
    UnsupportedVersion,
    /// The method is not a token.
    BadMethod,
    /// The status code is not three digits in 100..=699.
    BadStatusCode,
    /// The Request-URI cannot be parsed, is wrapped in `<>`, or carries URI headers.
    BadRequestUri,
    /// A URI inside a header cannot be parsed.
    BadUri,
    /// A header line has no colon or a name that is not a token.
    BadHeaderLine,
    /// The header block does not end with an empty line.
    UnterminatedHeaders,
    /// A header value does not follow its grammar.
    BadHeaderValue,
    /// A header value holds bytes that are not UTF-8 where text is needed.
    InvalidUtf8,
    /// A mandatory header is absent (RFC 3261 §8.1.1).
    MissingHeader,
    /// A header that must appear once appears several times.
    DuplicateHeader,
    /// A number is larger than its header allows (CSeq > 2^32-1, Max-Forwards > 255 …).
    ValueOutOfRange,
    /// The CSeq method differs from the request method (RFC 3261 §8.1.1.5).
    CSeqMethodMismatch,
    /// Content-Length is not a non-negative decimal number.
    BadContentLength,
    /// Several Content-Length headers or values (RFC 4475 §3.3.9).
    ConflictingContentLength,
    /// Content-Length promises more bytes than the datagram holds (RFC 3261 §18.3).
    ContentLengthExceedsMessage,
    /// The message is larger than the configured limit.
    MessageTooLarge,
    /// The message has more header lines than the configured limit.
    TooManyHeaders,
    /// A line is longer than the configured limit.
    LineTooLong,
}

/// A SIP message could not be parsed or validated.
///
/// `header` names the header being read when it failed (if any) and `offset` is the byte
/// offset in the message (or in the header value for typed accessors) where it failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", Display(self))]
pub struct ParseError {
    /// What went wrong.
    pub kind: ParseErrorKind,
    /// The header being parsed, if the error is about one header.
    pub header: Option<HeaderName>,
    /// Byte offset of the problem (in the message, or in the header value for typed reads).
    pub offset: usize,
}

struct Display<'a>(&'a ParseError);

impl fmt::Display for Display<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        write!(f, "{:?}", e.kind)?;
        if let Some(h) = &e.header {
            write!(f, " in {} header", h.as_str())?;
        }
        write!(f, " at offset {}", e.offset)
    }
}

impl ParseError {
    /// A new error of `kind` at `offset`, not tied to a header.
    pub fn new(kind: ParseErrorKind, offset: usize) -> ParseError {
        ParseError {
            kind,
            header: None,
            offset,
        }
    }

    /// A new error of `kind` in header `name`, at `offset` inside its value.
    pub fn in_header(kind: ParseErrorKind, name: HeaderName, offset: usize) -> ParseError {
        ParseError {
            kind,
            header: Some(name),
            offset,
        }
    }

    /// The status code a server answers a request that fails this way with:
    /// 505 for a bad version, 413 for an oversized message, 400 otherwise.
    pub fn status_code(&self) -> StatusCode {
        match self.kind {
            ParseErrorKind::UnsupportedVersion => StatusCode::VERSION_NOT_SUPPORTED,
            ParseErrorKind::MessageTooLarge => StatusCode::REQUEST_ENTITY_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// A short reason phrase for the error response (`400 Malformed Via Header` …).
    pub fn reason_phrase(&self) -> &'static str {
        use ParseErrorKind as K;
        match self.kind {
            K::BadStartLine | K::LaxStartLine => "Malformed Start Line",
            K::UnsupportedVersion => "Version Not Supported",
            K::BadMethod => "Malformed Method",
            K::BadStatusCode => "Malformed Status Code",
            K::BadRequestUri => "Malformed Request-URI",
            K::BadHeaderLine => "Malformed Header Line",
            K::UnterminatedHeaders => "Unterminated Header Block",
            K::CSeqMethodMismatch => "CSeq Method Mismatch",
            K::BadContentLength => "Malformed Content-Length Header",
            K::ConflictingContentLength => "Conflicting Content-Length Headers",
            K::ContentLengthExceedsMessage => "Content-Length Exceeds Message",
            K::MessageTooLarge => "Message Too Large",
            K::TooManyHeaders => "Too Many Headers",
            K::LineTooLong => "Line Too Long",
            K::MissingHeader => missing_phrase(self.header.as_ref()),
            K::DuplicateHeader => duplicate_phrase(self.header.as_ref()),
            K::ValueOutOfRange => match self.header {
                Some(HeaderName::CSeq) => "CSeq Number Out Of Range",
                Some(HeaderName::MaxForwards) => "Max-Forwards Out Of Range",
                Some(HeaderName::Expires) => "Expires Out Of Range",
                _ => "Value Out Of Range",
            },
            K::BadHeaderValue | K::BadUri | K::InvalidUtf8 => {
                malformed_phrase(self.header.as_ref())
            }
        }
    }
}

fn missing_phrase(h: Option<&HeaderName>) -> &'static str {
    match h {
        Some(HeaderName::Via) => "Missing Via Header",
        Some(HeaderName::From) => "Missing From Header",
        Some(HeaderName::To) => "Missing To Header",
        Some(HeaderName::CallId) => "Missing Call-ID Header",
        Some(HeaderName::CSeq) => "Missing CSeq Header",
        Some(HeaderName::MaxForwards) => "Missing Max-Forwards Header",
        Some(HeaderName::ContentLength) => "Missing Content-Length Header",
        _ => "Missing Header",
    }
}

fn duplicate_phrase(h: Option<&HeaderName>) -> &'static str {
    match h {
        Some(HeaderName::From) => "Multiple From Headers",
        Some(HeaderName::To) => "Multiple To Headers",
        Some(HeaderName::CallId) => "Multiple Call-ID Headers",
        Some(HeaderName::CSeq) => "Multiple CSeq Headers",
        Some(HeaderName::MaxForwards) => "Multiple Max-Forwards Headers",
        Some(HeaderName::ContentLength) => "Multiple Content-Length Headers",
        _ => "Duplicate Header",
    }
}

fn malformed_phrase(h: Option<&HeaderName>) -> &'static str {
    match h {
        Some(HeaderName::Via) => "Malformed Via Header",
        Some(HeaderName::From) => "Malformed From Header",
        Some(HeaderName::To) => "Malformed To Header",
        Some(HeaderName::CallId) => "Malformed Call-ID Header",
        Some(HeaderName::CSeq) => "Malformed CSeq Header",
        Some(HeaderName::Contact) => "Malformed Contact Header",
        Some(HeaderName::MaxForwards) => "Malformed Max-Forwards Header",
        Some(HeaderName::Expires) => "Malformed Expires Header",
        Some(HeaderName::ContentLength) => "Malformed Content-Length Header",
        Some(HeaderName::ContentType) => "Malformed Content-Type Header",
        Some(HeaderName::Route) => "Malformed Route Header",
        Some(HeaderName::RecordRoute) => "Malformed Record-Route Header",
        Some(HeaderName::Date) => "Malformed Date Header",
        Some(HeaderName::Authorization) => "Malformed Authorization Header",
        Some(HeaderName::ProxyAuthorization) => "Malformed Proxy-Authorization Header",
        _ => "Malformed Header",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrases_name_the_header() {
        let e = ParseError::in_header(ParseErrorKind::BadHeaderValue, HeaderName::Via, 3);
        assert_eq!(e.reason_phrase(), "Malformed Via Header");
        assert_eq!(e.status_code(), StatusCode::BAD_REQUEST);
        let e = ParseError::in_header(ParseErrorKind::MissingHeader, HeaderName::CallId, 0);
        assert_eq!(e.reason_phrase(), "Missing Call-ID Header");
        let e = ParseError::new(ParseErrorKind::UnsupportedVersion, 0);
        assert_eq!(e.status_code().as_u16(), 505);
        assert!(e.to_string().contains("UnsupportedVersion"));
    }
}
