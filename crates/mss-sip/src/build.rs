//! Building requests and responses for services (RFC 3261 §8.1.1, §8.2.6).

use bytes::{BufMut, Bytes, BytesMut};

use std::fmt::Write as _;
use std::net::SocketAddr;

use crate::error::{ParseError, ParseErrorKind};
use crate::header::{NameAddr, Via};
use crate::headers::top_level_comma;
use crate::message::{Request, Response, SIP_VERSION};
use crate::method::Method;
use crate::name::HeaderName;
use crate::params::{find_unquoted, trim};
use crate::status::StatusCode;

impl Response {
    /// A response to `req` (RFC 3261 §8.2.6.2): copies every Via (in order), From, To,
    /// Call-ID and CSeq, byte for byte, and for a 100 also Timestamp (§8.2.6.1). Works on
    /// any request that parsed at the line level, even if some header value is malformed,
    /// so a `400` can name the bad header. Add a To tag with [`Response::set_to_tag`], or
    /// build with [`Response::for_request_with_to_tag`].
    pub fn for_request(req: &Request, status: StatusCode, reason: impl Into<Bytes>) -> Response {
        Response::build_for_request(req, status, reason.into(), None)
    }

    /// [`Response::for_request`] followed by [`Response::set_to_tag`]`(tag)`, with the tag
    /// written while the To line is copied (one pass over the request's headers, no
    /// second look-up of To). The result is the same, byte for byte.
    pub fn for_request_with_to_tag(
        req: &Request,
        status: StatusCode,
        reason: impl Into<Bytes>,
        tag: &[u8],
    ) -> Response {
        Response::build_for_request(req, status, reason.into(), Some(tag))
    }

    fn build_for_request(
        req: &Request,
        status: StatusCode,
        reason: Bytes,
        tag: Option<&[u8]>,
    ) -> Response {
        let src = &req.headers;
        let mut headers = src.empty_sharing(8);
        let timestamp = status.0 == 100;
        let copied = headers.copy_response_core(src, timestamp, |to| {
            tag.and_then(|tag| (!has_tag_param(to)).then(|| tagged(to, tag)))
        });
        let mut rsp = Response {
            status,
            reason,
            version: Bytes::from_static(SIP_VERSION),
            headers,
            body: Bytes::new(),
        };
        if !copied {
            // A header that must be single appears twice: copy name by name, as received.
            let headers = &mut rsp.headers;
            for name in [
                HeaderName::Via,
                HeaderName::From,
                HeaderName::To,
                HeaderName::CallId,
                HeaderName::CSeq,
            ] {
                headers.copy_from(src, &name);
            }
            if timestamp {
                headers.copy_from(src, &HeaderName::Timestamp);
            }
            if let Some(tag) = tag {
                rsp.set_to_tag_bytes(tag);
            }
        }
        rsp
    }

    /// Adds `;tag=TAG` to the To header unless it already has a tag (RFC 3261 §8.2.6.2).
    /// Returns false when there was no To header.
    pub fn set_to_tag(&mut self, tag: &str) -> bool {
        self.set_to_tag_bytes(tag.as_bytes())
    }

    fn set_to_tag_bytes(&mut self, tag: &[u8]) -> bool {
        let Some(value) = self.headers.get(&HeaderName::To) else {
            return false;
        };
        if !has_tag_param(value) {
            let v = tagged(value, tag);
            self.headers.replace(HeaderName::To, v);
        }
        true
    }

    /// Appends a header (chainable).
    pub fn with_header(mut self, name: HeaderName, value: impl Into<Bytes>) -> Response {
        self.headers.push(name, value);
        self
    }

    /// Sets the body and its Content-Type (chainable).
    pub fn with_body(mut self, content_type: impl Into<Bytes>, body: impl Into<Bytes>) -> Response {
        self.headers.replace(HeaderName::ContentType, content_type);
        self.body = body.into();
        self
    }
}

/// True when the To/From value `value` has a `tag` parameter.
fn has_tag_param(value: &[u8]) -> bool {
    // A value without a `;` or without the letters `tag` has no tag parameter: no parse
    // needed (the common case, every response to a request outside a dialog).
    memchr::memchr(b';', value).is_some()
        && value.windows(3).any(|w| w.eq_ignore_ascii_case(b"tag"))
        && std::str::from_utf8(value)
            .ok()
            .and_then(|v| NameAddr::parse(v, &HeaderName::To).ok())
            .is_some_and(|n| n.tag().is_some())
}

/// `value;tag=TAG` in a buffer of exactly its length (so `Bytes` takes it without
/// another allocation).
fn tagged(value: &[u8], tag: &[u8]) -> Bytes {
    let mut v = BytesMut::with_capacity(value.len() + 5 + tag.len());
    v.put_slice(value);
    v.put_slice(b";tag=");
    v.put_slice(tag);
    v.freeze()
}

impl Request {
    /// Records where the request really came from in its top Via (RFC 3261 §18.2.1,
    /// RFC 3581 §4): adds `received=IP` when the sent-by host is not `source`'s address or
    /// when `rport` is present, and fills an empty `rport` with `source`'s port. The other
    /// Via values and lines are kept as they are. Returns true when the Via changed.
    ///
    /// # Errors
    /// `MissingHeader` without Via, `BadHeaderValue` when the top Via is malformed.
    pub fn stamp_via(&mut self, source: SocketAddr) -> Result<bool, ParseError> {
        let new_line = {
            let Some(line) = self.headers.get_str(&HeaderName::Via)? else {
                return Err(ParseError::in_header(
                    ParseErrorKind::MissingHeader,
                    HeaderName::Via,
                    0,
                ));
            };
            let end = top_level_comma(line.as_bytes()).unwrap_or(line.len());
            let first = trim(line.get(..end).unwrap_or(""));
            let rest = line.get(end..).unwrap_or("");
            let via = Via::parse(first)?;
            let host = via.host.trim_start_matches('[').trim_end_matches(']');
            let same_host = host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip == source.ip());
            let rport = via.rport();
            let add_received = !same_host || rport.is_some();
            if !add_received && rport != Some(None) {
                return Ok(false);
            }
            let head_end = find_unquoted(first, b';').unwrap_or(first.len());
            let mut out = String::with_capacity(line.len() + 48);
            out.push_str(trim(first.get(..head_end).unwrap_or("")));
            for (n, v) in via.params.iter() {
                if add_received && n.eq_ignore_ascii_case("received") {
                    continue;
                }
                out.push(';');
                out.push_str(n);
                match v {
                    None if n.eq_ignore_ascii_case("rport") => {
                        let _ = write!(out, "={}", source.port());
                    }
                    None => {}
                    Some(v) => {
                        out.push('=');
                        out.push_str(v);
                    }
                }
            }
            if add_received {
                let _ = write!(out, ";received={}", source.ip());
            }
            out.push_str(rest);
            out
        };
        Ok(self.headers.set_first(&HeaderName::Via, new_line))
    }
}

/// Builds a request header by header; see [`Request::builder`].
#[derive(Debug, Clone)]
pub struct RequestBuilder {
    req: Request,
}

impl Request {
    /// Starts building a request. Headers come out in the order they are added;
    /// Content-Length is computed when encoding.
    ///
    /// ```
    /// use mss_sip::{Method, Request};
    /// let req = Request::builder(Method::Register, "sip:registrar.example.com")
    ///     .via("SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9;rport")
    ///     .max_forwards(70)
    ///     .from("<sip:1001@example.com>;tag=456248")
    ///     .to("<sip:1001@example.com>")
    ///     .call_id("843817637684230@998sdasdh09")
    ///     .cseq(1826)
    ///     .contact("<sip:1001@192.0.2.10:5060>")
    ///     .build();
    /// assert_eq!(req.headers().cseq().unwrap().seq, 1826);
    /// ```
    pub fn builder(method: Method, uri: impl Into<Bytes>) -> RequestBuilder {
        RequestBuilder {
            req: Request::new(method, uri),
        }
    }
}

impl RequestBuilder {
    /// Appends a header.
    pub fn header(mut self, name: HeaderName, value: impl Into<Bytes>) -> RequestBuilder {
        self.req.headers.push(name, value);
        self
    }

    /// Appends a Via value (`SIP/2.0/UDP host:port;branch=z9hG4bK…`).
    pub fn via(self, value: impl Into<Bytes>) -> RequestBuilder {
        self.header(HeaderName::Via, value)
    }

    /// Sets From (`<sip:…>;tag=…`).
    pub fn from(self, value: impl Into<Bytes>) -> RequestBuilder {
        self.header(HeaderName::From, value)
    }

    /// Sets To.
    pub fn to(self, value: impl Into<Bytes>) -> RequestBuilder {
        self.header(HeaderName::To, value)
    }

    /// Sets Call-ID.
    pub fn call_id(self, value: impl Into<Bytes>) -> RequestBuilder {
        self.header(HeaderName::CallId, value)
    }

    /// Sets CSeq to `seq` and the request's method.
    pub fn cseq(self, seq: u32) -> RequestBuilder {
        let v = cseq_value(seq, self.req.method.as_str());
        self.header(HeaderName::CSeq, v)
    }

    /// Sets Max-Forwards.
    pub fn max_forwards(self, hops: u8) -> RequestBuilder {
        let mut digits = [0u8; 20];
        let v = Bytes::copy_from_slice(crate::fmt_usize(usize::from(hops), &mut digits));
        self.header(HeaderName::MaxForwards, v)
    }

    /// Appends a Contact value.
    pub fn contact(self, value: impl Into<Bytes>) -> RequestBuilder {
        self.header(HeaderName::Contact, value)
    }

    /// Sets the body and its Content-Type.
    pub fn body(
        mut self,
        content_type: impl Into<Bytes>,
        body: impl Into<Bytes>,
    ) -> RequestBuilder {
        self.req
            .headers
            .replace(HeaderName::ContentType, content_type);
        self.req.body = body.into();
        self
    }

    /// The request.
    pub fn build(self) -> Request {
        self.req
    }
}

/// A CSeq value, `SEQ METHOD` (RFC 3261 §20.16), written without a formatter: every
/// request mss starts or acknowledges gets one.
pub fn cseq_value(seq: u32, method: &str) -> Bytes {
    let mut digits = [0u8; 20];
    let seq = crate::fmt_usize(seq as usize, &mut digits);
    let mut v = Vec::with_capacity(seq.len() + 1 + method.len());
    v.extend_from_slice(seq);
    v.push(b' ');
    v.extend_from_slice(method.as_bytes());
    Bytes::from(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::parse_datagram;
    use crate::message::Message;

    const REQ: &[u8] = b"REGISTER sip:example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport\r\n\
v:SIP/2.0/UDP proxy;branch=z9hG4bK0\r\n\
Max-Forwards: 70\r\n\
From: <sip:a@example.com>;tag=1\r\n\
t : <sip:a@example.com>\r\n\
Call-ID: x1\r\n\
CSeq: 2 REGISTER\r\n\
Timestamp: 54\r\n\
Contact: <sip:a@192.0.2.1>\r\n\
l: 0\r\n\r\n";

    #[test]
    fn response_copies_core_headers_byte_for_byte() {
        let Ok(Message::Request(req)) = parse_datagram(Bytes::from_static(REQ)) else {
            panic!()
        };
        let mut rsp = Response::for_request(&req, StatusCode::OK, "OK");
        assert!(rsp.set_to_tag("abc"));
        let b = rsp.to_bytes();
        let want: &[u8] = b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport\r\n\
v:SIP/2.0/UDP proxy;branch=z9hG4bK0\r\n\
From: <sip:a@example.com>;tag=1\r\n\
To: <sip:a@example.com>;tag=abc\r\n\
Call-ID: x1\r\n\
CSeq: 2 REGISTER\r\n\
Content-Length: 0\r\n\r\n";
        assert_eq!(
            std::str::from_utf8(&b).unwrap(),
            std::str::from_utf8(want).unwrap()
        );
        // An existing tag is kept.
        assert!(rsp.set_to_tag("zzz"));
        assert_eq!(rsp.headers().to().unwrap().tag(), Some("abc"));
        let trying = Response::for_request(&req, StatusCode::TRYING, "Trying");
        assert!(trying.headers().contains(&HeaderName::Timestamp));
    }

    #[test]
    fn tag_while_copying_equals_copy_then_tag() {
        let reqs = [
            String::from_utf8(REQ.to_vec()).unwrap(),
            String::from_utf8(REQ.to_vec())
                .unwrap()
                .replace("t : <sip:a@example.com>", "To: <sip:a@example.com>;tag=9"),
            // Duplicated single headers take the name-by-name path.
            String::from_utf8(REQ.to_vec())
                .unwrap()
                .replace("Call-ID: x1\r\n", "To: <sip:b@x>\r\nCall-ID: x1\r\nCall-ID: x2\r\n"),
            String::from_utf8(REQ.to_vec())
                .unwrap()
                .replace("Timestamp: 54\r\n", "Timestamp: 54\r\nTimestamp: 55\r\n"),
            // No Via, no To.
            "OPTIONS sip:a SIP/2.0\r\nFrom: <sip:a@b>;tag=1\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n"
                .to_owned(),
        ];
        for text in &reqs {
            let Ok(Message::Request(req)) = parse_datagram(Bytes::copy_from_slice(text.as_bytes()))
            else {
                panic!("{text}")
            };
            for status in [StatusCode::TRYING, StatusCode::OK, StatusCode::UNAUTHORIZED] {
                let mut want = Response::for_request(&req, status, "R");
                want.set_to_tag("0123456789abcdef");
                let got = Response::for_request_with_to_tag(&req, status, "R", b"0123456789abcdef");
                assert_eq!(got.to_bytes(), want.to_bytes(), "{text}");
            }
        }
    }

    #[test]
    fn to_tag_added_unless_a_tag_parameter_exists() {
        for (to, want) in [
            (
                "<sip:tag@stage.example.com>",
                "<sip:tag@stage.example.com>;tag=n",
            ),
            ("<sip:a@b;tag=u>", "<sip:a@b;tag=u>;tag=n"),
            ("<sip:a@b>;TAG=x", "<sip:a@b>;TAG=x"),
            ("sip:a@b;tag=y", "sip:a@b;tag=y"),
        ] {
            let mut rsp = Response::new(StatusCode::OK, "OK").with_header(HeaderName::To, to);
            assert!(rsp.set_to_tag("n"));
            assert_eq!(rsp.headers().get_str(&HeaderName::To).unwrap(), Some(want));
        }
    }

    #[test]
    fn stamp_via_adds_received_and_rport() {
        let Ok(Message::Request(mut req)) = parse_datagram(Bytes::from_static(REQ)) else {
            panic!()
        };
        let src: SocketAddr = "203.0.113.9:40000".parse().unwrap();
        assert!(req.stamp_via(src).unwrap());
        let vias: Vec<_> = req.headers().get_all(&HeaderName::Via).collect();
        assert_eq!(
            vias[0],
            b"SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport=40000;received=203.0.113.9"
        );
        assert_eq!(vias[1], b"SIP/2.0/UDP proxy;branch=z9hG4bK0");
        let top = req.headers().top_via().unwrap();
        assert_eq!(
            (top.rport(), top.received()),
            (Some(Some(40000)), Some("203.0.113.9"))
        );
        // Same host, no rport: unchanged.
        let mut r2 = Request::builder(Method::Options, "sip:a@b")
            .via("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx, SIP/2.0/UDP c")
            .build();
        assert!(!r2.stamp_via("10.0.0.1:5060".parse().unwrap()).unwrap());
        assert!(r2.stamp_via("10.0.0.2:5060".parse().unwrap()).unwrap());
        assert_eq!(
            r2.headers().get(&HeaderName::Via),
            Some(
                &b"SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx;received=10.0.0.2, SIP/2.0/UDP c"[..]
            )
        );
    }

    #[test]
    fn numbers_are_written_as_the_formatter_writes_them() {
        for seq in [0, 1, 9, 10, 70, 101, 4_294_967_295] {
            for method in ["INVITE", "ACK", "X-EXT"] {
                assert_eq!(
                    cseq_value(seq, method),
                    format!("{seq} {method}").as_bytes()
                );
            }
        }
        for hops in [0u8, 7, 70, 255] {
            let req = Request::builder(Method::Options, "sip:b@example.com")
                .max_forwards(hops)
                .build();
            assert_eq!(
                req.headers().get(&HeaderName::MaxForwards),
                Some(hops.to_string().as_bytes())
            );
        }
    }

    #[test]
    fn builder_round_trip() {
        let req = Request::builder(Method::Message, "sip:bob@example.com")
            .via("SIP/2.0/TCP 10.0.0.1;branch=z9hG4bKa")
            .from("<sip:alice@example.com>;tag=9")
            .to("<sip:bob@example.com>")
            .call_id("c1")
            .cseq(5)
            .max_forwards(70)
            .body("text/plain", "hi")
            .build();
        let bytes = req.to_bytes();
        let Ok(Message::Request(back)) = parse_datagram(bytes) else {
            panic!()
        };
        assert_eq!(back.method(), &Method::Message);
        assert_eq!(back.headers().cseq().unwrap().method, Method::Message);
        assert_eq!(&back.body()[..], b"hi");
        assert!(back.validate().is_ok());
    }
}
