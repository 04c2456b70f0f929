//! Requests derived from another request: CANCEL (RFC 3261 §9.1) and the ACK for a
//! non-2xx final response (RFC 3261 §17.1.1.3).

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{ParseError, ParseErrorKind};
use crate::message::{Request, Response, SIP_VERSION};
use crate::method::Method;
use crate::name::HeaderName;

fn cseq_value(seq: u32, method: &Method) -> Bytes {
    let mut digits = [0u8; 20];
    let n = crate::message::fmt_usize(seq as usize, &mut digits);
    let mut v = BytesMut::with_capacity(n.len() + 1 + method.as_bytes().len());
    v.put_slice(n);
    v.put_u8(b' ');
    v.put_slice(method.as_bytes());
    v.freeze()
}

impl Request {
    /// Starts a derived request with the same Request-URI, the top Via value only, and
    /// From, Call-ID and Route copied byte for byte.
    fn derived(&self, method: Method) -> Result<Request, ParseError> {
        let src = &self.headers;
        let seq = src.cseq()?.seq;
        let mut headers = src.empty_sharing(8);
        if !headers.copy_first_value(src, &HeaderName::Via) {
            return Err(ParseError::in_header(
                ParseErrorKind::MissingHeader,
                HeaderName::Via,
                0,
            ));
        }
        headers.push(HeaderName::MaxForwards, Bytes::from_static(b"70"));
        headers.copy_from(src, &HeaderName::From);
        headers.copy_from(src, &HeaderName::CallId);
        headers.push(HeaderName::CSeq, cseq_value(seq, &method));
        headers.copy_from(src, &HeaderName::Route);
        Ok(Request {
            method,
            uri: self.uri.clone(),
            version: Bytes::from_static(SIP_VERSION),
            lax_start_line: false,
            headers,
            body: Bytes::new(),
        })
    }

    /// The CANCEL for this (INVITE) request (RFC 3261 §9.1): same Request-URI, Call-ID,
    /// From, To and CSeq number, only the top Via, the same Route set.
    ///
    /// # Errors
    /// `MissingHeader` / `BadHeaderValue` when Via or CSeq cannot be used.
    pub fn cancel(&self) -> Result<Request, ParseError> {
        let mut c = self.derived(Method::Cancel)?;
        c.headers.copy_from(&self.headers, &HeaderName::To);
        Ok(c)
    }

    /// The ACK for a non-2xx final response `rsp` to this INVITE (RFC 3261 §17.1.1.3):
    /// like [`Request::cancel`] but with the To header of the response (with its tag).
    ///
    /// # Errors
    /// `MissingHeader` / `BadHeaderValue` when Via or CSeq cannot be used.
    pub fn ack_for(&self, rsp: &Response) -> Result<Request, ParseError> {
        let mut a = self.derived(Method::Ack)?;
        if rsp.headers.contains(&HeaderName::To) {
            a.headers.copy_from(&rsp.headers, &HeaderName::To);
        } else {
            a.headers.copy_from(&self.headers, &HeaderName::To);
        }
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::parse_datagram;
    use crate::message::Message;
    use crate::status::StatusCode;

    const INVITE: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa, SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKb\r\n\
Max-Forwards: 69\r\n\
Route: <sip:proxy.example.com;lr>\r\n\
From: <sip:alice@example.com>;tag=1\r\n\
To: <sip:bob@example.com>\r\n\
Call-ID: inv1\r\n\
CSeq: 314 INVITE\r\n\
Content-Length: 0\r\n\r\n";

    fn invite() -> Request {
        match parse_datagram(Bytes::from_static(INVITE)) {
            Ok(Message::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cancel_copies_the_right_headers() {
        let c = invite().cancel().unwrap();
        assert_eq!(c.method(), &Method::Cancel);
        assert_eq!(c.uri_bytes(), b"sip:bob@example.com");
        let h = c.headers();
        assert_eq!(h.count(&HeaderName::Via), 1);
        assert_eq!(
            h.get(&HeaderName::Via),
            Some(&b"SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa"[..])
        );
        assert_eq!(h.cseq().unwrap().seq, 314);
        assert_eq!(h.cseq().unwrap().method, Method::Cancel);
        assert_eq!(h.to().unwrap().tag(), None);
        assert_eq!(h.route().unwrap().len(), 1);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn ack_takes_to_from_the_response() {
        let inv = invite();
        let mut rsp = Response::for_request(&inv, StatusCode::BUSY_HERE, "Busy Here");
        rsp.set_to_tag("xyz");
        let a = inv.ack_for(&rsp).unwrap();
        assert_eq!(a.method(), &Method::Ack);
        assert_eq!(a.headers().to().unwrap().tag(), Some("xyz"));
        assert_eq!(a.headers().cseq().unwrap().method, Method::Ack);
        assert!(a.validate().is_ok());
        let wire = a.to_bytes();
        assert!(wire.starts_with(b"ACK sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa\r\n"));
    }
}
