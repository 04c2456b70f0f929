//! Requests, responses and their serialization (RFC 3261 §7).

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{ParseError, ParseErrorKind};
use crate::headers::Headers;
use crate::method::Method;
use crate::name::HeaderName;
use crate::status::StatusCode;
use crate::uri::Uri;

/// The only SIP version mss speaks.
pub const SIP_VERSION: &[u8] = b"SIP/2.0";

/// A SIP request.
#[derive(Debug, Clone)]
pub struct Request {
    pub(crate) method: Method,
    pub(crate) uri: Bytes,
    pub(crate) version: Bytes,
    pub(crate) lax_start_line: bool,
    pub(crate) headers: Headers,
    pub(crate) body: Bytes,
}

/// A SIP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub(crate) status: StatusCode,
    pub(crate) reason: Bytes,
    pub(crate) version: Bytes,
    pub(crate) headers: Headers,
    pub(crate) body: Bytes,
}

/// A SIP message: a request or a response.
#[derive(Debug, Clone)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

impl Request {
    /// A request with no headers and an empty body (see also [`Request::builder`]).
    pub fn new(method: Method, uri: impl Into<Bytes>) -> Request {
        Request {
            method,
            uri: uri.into(),
            version: Bytes::from_static(SIP_VERSION),
            lax_start_line: false,
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The Request-URI as received.
    pub fn uri_bytes(&self) -> &[u8] {
        &self.uri
    }

    /// The Request-URI as text.
    ///
    /// # Errors
    /// `InvalidUtf8` / `BadRequestUri` if it is not UTF-8.
    pub fn uri_str(&self) -> Result<&str, ParseError> {
        std::str::from_utf8(&self.uri)
            .map_err(|e| ParseError::new(ParseErrorKind::BadRequestUri, e.valid_up_to()))
    }

    /// The Request-URI, parsed (RFC 3261 §19.1).
    ///
    /// # Errors
    /// `BadRequestUri` when it does not parse.
    pub fn uri(&self) -> Result<Uri<'_>, ParseError> {
        let s = self.uri_str()?;
        Uri::parse(s).map_err(|e| ParseError::new(ParseErrorKind::BadRequestUri, e.offset))
    }

    /// Replaces the Request-URI.
    pub fn set_uri(&mut self, uri: impl Into<Bytes>) {
        self.uri = uri.into();
    }

    /// Serializes the request into `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        let (headers_len, content_length) = self.headers.encode_plan();
        let body_len = self.body.len();
        out.reserve(
            self.method.as_bytes().len()
                + self.uri.len()
                + 11
                + headers_len
                + tail_len(body_len)
                + body_len,
        );
        out.put_slice(self.method.as_bytes());
        out.put_u8(b' ');
        out.put_slice(&self.uri);
        out.put_slice(b" SIP/2.0\r\n");
        encode_tail(&self.headers, content_length, &self.body, out);
    }
}

impl Response {
    /// A response with no headers and an empty body (see also `Response::for_request`).
    pub fn new(status: StatusCode, reason: impl Into<Bytes>) -> Response {
        Response {
            status,
            reason: reason.into(),
            version: Bytes::from_static(SIP_VERSION),
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The reason phrase as received (may be empty or hold UTF-8).
    pub fn reason(&self) -> &[u8] {
        &self.reason
    }

    /// Replaces the reason phrase.
    pub fn set_reason(&mut self, reason: impl Into<Bytes>) {
        self.reason = reason.into();
    }

    /// Serializes the response into `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        let (headers_len, content_length) = self.headers.encode_plan();
        // The status line is `SIP/2.0 NNN reason CRLF`: 14 bytes and the reason.
        let body_len = self.body.len();
        out.reserve(self.reason.len() + 14 + headers_len + tail_len(body_len) + body_len);
        out.put_slice(b"SIP/2.0 ");
        let code = self.status.0.min(999);
        out.put_slice(&[
            b'0' + (code / 100) as u8,
            b'0' + (code / 10 % 10) as u8,
            b'0' + (code % 10) as u8,
            b' ',
        ]);
        out.put_slice(&self.reason);
        out.put_slice(b"\r\n");
        encode_tail(&self.headers, content_length, &self.body, out);
    }
}

/// The part [`Request`] and [`Response`] share after the start line: the version, headers and
/// body fields, their accessors, and `to_bytes` over the type's own `encode` (which writes the
/// start line and then [`encode_tail`]).
macro_rules! message_parts {
    ($ty:ident, $kind:literal, version: $version_doc:literal, body: $body_doc:literal) => {
        impl $ty {
            #[doc = $version_doc]
            pub fn version(&self) -> &[u8] {
                &self.version
            }

            /// The headers.
            pub fn headers(&self) -> &Headers {
                &self.headers
            }

            /// The headers, for editing.
            pub fn headers_mut(&mut self) -> &mut Headers {
                &mut self.headers
            }

            #[doc = $body_doc]
            pub fn body(&self) -> &Bytes {
                &self.body
            }

            /// Replaces the body; Content-Length is computed when encoding.
            pub fn set_body(&mut self, body: impl Into<Bytes>) {
                self.body = body.into();
            }

            #[doc = concat!("Serializes the ", $kind, " into a new buffer.")]
            pub fn to_bytes(&self) -> Bytes {
                let mut out = BytesMut::new();
                self.encode(&mut out);
                out.freeze()
            }
        }
    };
}

message_parts!(
    Request,
    "request",
    version: "The SIP-Version as received (`SIP/2.0` for built requests).",
    body: "The body (exactly Content-Length bytes for a parsed message)."
);
message_parts!(
    Response,
    "response",
    version: "The SIP-Version as received.",
    body: "The body."
);

/// What [`encode_tail`] writes besides the header lines and the body, at most: a
/// `Content-Length: N` line for a body of `body_len` bytes, and the empty line.
fn tail_len(body_len: usize) -> usize {
    let mut digits = 1;
    let mut n = body_len;
    while n >= 10 {
        n /= 10;
        digits += 1;
    }
    16 + digits + 2 + 2
}

/// Writes headers, Content-Length, the empty line and the body.
///
/// A single received Content-Length line (`content_length`, its value, from
/// `Headers::encode_plan`) that already matches the body is kept in place, byte for byte;
/// otherwise every Content-Length line is dropped and a correct one is written last.
fn encode_tail(headers: &Headers, content_length: Option<&[u8]>, body: &Bytes, out: &mut BytesMut) {
    let keep = content_length
        .and_then(crate::framing::parse_content_length)
        .is_some_and(|n| n == body.len());
    if keep {
        headers.encode(out);
    } else {
        headers.encode_filtered(out, |n| *n == HeaderName::ContentLength);
        out.put_slice(b"Content-Length: ");
        let mut buf = [0u8; 20];
        out.put_slice(fmt_usize(body.len(), &mut buf));
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"\r\n");
    out.put_slice(body);
}

/// Formats `n` in decimal into `buf`, returning the digits (no formatter, no allocation;
/// used for Content-Length, CSeq numbers and the addresses the transport writes into Vias).
pub fn fmt_usize(mut n: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        if let Some(slot) = buf.get_mut(i) {
            *slot = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    buf.get(i..).unwrap_or(&[])
}

/// Appends `n` in decimal to `out` ([`fmt_usize`], for text being built).
pub fn push_decimal(out: &mut String, n: usize) {
    let mut digits = [0u8; 20];
    out.extend(fmt_usize(n, &mut digits).iter().map(|&d| char::from(d)));
}

impl Message {
    /// The headers.
    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }

    /// The headers, for editing.
    pub fn headers_mut(&mut self) -> &mut Headers {
        match self {
            Message::Request(r) => &mut r.headers,
            Message::Response(r) => &mut r.headers,
        }
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        match self {
            Message::Request(r) => &r.body,
            Message::Response(r) => &r.body,
        }
    }

    /// The request, if this is one.
    pub fn as_request(&self) -> Option<&Request> {
        match self {
            Message::Request(r) => Some(r),
            Message::Response(_) => None,
        }
    }

    /// The response, if this is one.
    pub fn as_response(&self) -> Option<&Response> {
        match self {
            Message::Response(r) => Some(r),
            Message::Request(_) => None,
        }
    }

    /// Serializes the message into `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            Message::Request(r) => r.encode(out),
            Message::Response(r) => r.encode(out),
        }
    }

    /// Serializes the message into a new buffer.
    pub fn to_bytes(&self) -> Bytes {
        match self {
            Message::Request(r) => r.to_bytes(),
            Message::Response(r) => r.to_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_built_request_computes_content_length() {
        let mut r = Request::new(Method::Message, "sip:bob@example.com");
        r.headers_mut().push(HeaderName::CallId, "x");
        r.headers_mut().push(HeaderName::ContentLength, "99");
        r.set_body("hello");
        let b = r.to_bytes();
        assert_eq!(
            &b[..],
            b"MESSAGE sip:bob@example.com SIP/2.0\r\nCall-ID: x\r\nContent-Length: 5\r\n\r\nhello"
        );
    }

    #[test]
    fn encode_response_line() {
        let r = Response::new(StatusCode(486), "Busy Here");
        assert_eq!(
            &r.to_bytes()[..],
            b"SIP/2.0 486 Busy Here\r\nContent-Length: 0\r\n\r\n"
        );
        let mut buf = [0u8; 20];
        assert_eq!(fmt_usize(0, &mut buf), b"0");
        assert_eq!(tail_len(0), "Content-Length: 0\r\n\r\n".len());
        assert_eq!(tail_len(10), "Content-Length: 10\r\n\r\n".len());
        assert_eq!(tail_len(99), "Content-Length: 99\r\n\r\n".len());
        assert_eq!(fmt_usize(1234, &mut buf), b"1234");
    }
}
