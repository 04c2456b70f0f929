//! Every answer the messaging service gives, built through [`Answer`] (the crate's one place
//! for status codes and reason phrases) with `Warning` texts that say what happened in
//! words (DESIGN §3).

use bytes::Bytes;
use mss_sip::{HeaderName, Request, Response, StatusCode};

use crate::answer::{Answer, Reject};
use crate::im::body::BodyError;

/// The answers of the messaging service.
#[derive(Debug, Clone)]
pub(crate) struct Replies {
    answer: Answer,
}

impl Replies {
    /// Answers signed by `domain` in `Warning`.
    pub(crate) fn new(domain: &str) -> Replies {
        Replies {
            answer: Answer::new(domain),
        }
    }

    /// `reject` with its `Warning` (if any) replaced by `text`.
    fn reject_saying(&self, req: &Request, reject: &Reject, text: &str) -> Response {
        let mut rsp = self.answer.reject(req, reject);
        rsp.headers_mut()
            .replace(HeaderName::Warning, self.answer.warning(text));
        rsp
    }

    /// `202 Accepted`: stored, durable, to be delivered later (RFC 3428 §7).
    pub(crate) fn accepted(&self, req: &Request) -> Response {
        self.answer.response(req, StatusCode::ACCEPTED, "Accepted")
    }

    /// `404 Not Found`: no such user.
    pub(crate) fn not_found(&self, req: &Request) -> Response {
        self.answer.reject(req, &Reject::NotFound)
    }

    /// `503 Service Unavailable` with `Retry-After`: the sender is over its rate. (SIP has
    /// no `429`; `503` with `Retry-After` is how a server asks a client to slow down,
    /// RFC 3261 §21.5.4.)
    pub(crate) fn rate_limited(&self, req: &Request, retry_after: u32) -> Response {
        let mut rsp =
            self.answer
                .response(req, StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
        let h = rsp.headers_mut();
        h.push(HeaderName::RetryAfter, retry_after.to_string());
        h.push(
            HeaderName::Warning,
            self.answer.warning(&format!(
                "Too many messages from this sender; retry in {retry_after} s"
            )),
        );
        rsp
    }

    /// The answer to a body that cannot be taken.
    pub(crate) fn body_error(&self, req: &Request, err: &BodyError) -> Response {
        match err {
            BodyError::Empty => self.reject_saying(
                req,
                &Reject::BadRequest("Missing Message Body"),
                "A MESSAGE must carry the message in its body",
            ),
            BodyError::NoContentType => self.reject_saying(
                req,
                &Reject::BadRequest("Missing Content-Type"),
                "A message body needs a Content-Type header",
            ),
            BodyError::BadContentType(e) => self.answer.reject(req, &Reject::Malformed(e.clone())),
            BodyError::UnknownCharset(cs) => {
                let mut rsp = self.answer.response(
                    req,
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "Unsupported Media Type",
                );
                let h = rsp.headers_mut();
                // RFC 3261 §21.4.13: say what is acceptable. Any type is, text in UTF-8.
                h.push(HeaderName::Accept, "text/plain;charset=UTF-8, */*");
                h.push(
                    HeaderName::Warning,
                    self.answer.warning(&format!(
                        "Text in charset {cs} is not supported; send it as UTF-8"
                    )),
                );
                rsp
            }
            BodyError::NotUtf8 { at } => self.reject_saying(
                req,
                &Reject::BadRequest("Invalid UTF-8 In Message Body"),
                &format!("The text body is not valid UTF-8 (byte {at})"),
            ),
        }
    }

    /// `483 Too Many Hops`.
    pub(crate) fn too_many_hops(&self, req: &Request) -> Response {
        self.answer.reject(req, &Reject::TooManyHops)
    }

    /// `413`: too long to store for an offline recipient.
    pub(crate) fn too_long(&self, req: &Request, chars: usize, limit: u32) -> Response {
        self.reject_saying(
            req,
            &Reject::TooLarge("Request Entity Too Large"),
            &format!("Message too long to store offline: {chars} characters, the limit is {limit}"),
        )
    }

    /// `480 Offline Message Store Full`.
    pub(crate) fn store_full(&self, req: &Request, stored: u64) -> Response {
        self.reject_saying(
            req,
            &Reject::TemporarilyUnavailable("Offline Message Store Full"),
            &format!(
                "The recipient is offline and already has {stored} stored messages; \
                 try again after they have read them"
            ),
        )
    }

    /// `480`: the recipient is offline and the message's own `Expires` has already passed
    /// (RFC 3428 §7), so storing it would be pointless.
    pub(crate) fn expired(&self, req: &Request) -> Response {
        self.reject_saying(
            req,
            &Reject::TemporarilyUnavailable("Temporarily Unavailable"),
            "The recipient is offline and the message expires before it could be delivered",
        )
    }

    /// `500` with `Retry-After`: the store failed; the message was not accepted.
    pub(crate) fn store_error(&self, req: &Request, retry_after: u32) -> Response {
        let mut rsp = self
            .answer
            .reject(req, &Reject::ServerError { retry_after });
        rsp.headers_mut().push(
            HeaderName::Warning,
            self.answer
                .warning("The message could not be stored and was not accepted; send it again"),
        );
        rsp
    }

    /// The recipient's final answer `got`, relayed as the answer to `req`: same status and
    /// reason phrase, the recipient's To tag, and its `Warning` and `Retry-After` headers
    /// (RFC 3261 §16.7 step 9 forwards the best response; mss answers through its own
    /// server transaction, so only the status line and these headers travel).
    pub(crate) fn relayed(&self, req: &Request, got: &Response) -> Response {
        let reason = Bytes::copy_from_slice(got.reason());
        let mut rsp = Response::for_request(req, got.status(), reason);
        let tag = got
            .headers()
            .to()
            .ok()
            .and_then(|t| t.tag().map(str::to_owned))
            .unwrap_or_else(|| self.answer.to_tag(req));
        rsp.set_to_tag(&tag);
        for name in [HeaderName::Warning, HeaderName::RetryAfter] {
            rsp.headers_mut().copy_from(got.headers(), &name);
        }
        rsp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mss_sip::{parse_datagram, Message};

    fn req() -> Request {
        let t = "MESSAGE sip:102@pbx SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
                 From: <sip:101@pbx>;tag=1\r\nTo: <sip:102@pbx>\r\nCall-ID: c\r\n\
                 CSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n";
        match parse_datagram(Bytes::from_static(t.as_bytes())).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => panic!(),
        }
    }

    #[test]
    fn relayed_keeps_status_reason_tag_and_advice() {
        let r = Replies::new("pbx.example.com");
        let got = Response::new(StatusCode(486), "Busy Here")
            .with_header(HeaderName::To, "<sip:102@pbx>;tag=dev")
            .with_header(HeaderName::RetryAfter, "30")
            .with_header(HeaderName::Warning, "399 dev \"in a meeting\"")
            .with_header(HeaderName::Contact, "<sip:102@10.0.0.9>");
        let rsp = r.relayed(&req(), &got);
        assert_eq!(
            (rsp.status().as_u16(), rsp.reason()),
            (486, &b"Busy Here"[..])
        );
        let h = rsp.headers();
        assert_eq!(h.to().unwrap().tag(), Some("dev"));
        assert_eq!(h.retry_after().unwrap().unwrap().seconds, 30);
        assert_eq!(h.warnings().unwrap()[0].agent, "dev");
        assert!(!h.contains(&HeaderName::Contact));
        assert_eq!(h.call_id().unwrap(), "c");
        // Without a tag from the device, ours.
        let plain = r.relayed(&req(), &Response::new(StatusCode::OK, "OK"));
        assert!(plain.headers().to().unwrap().tag().is_some());
    }

    #[test]
    fn every_refusal_says_why() {
        let r = Replies::new("pbx.example.com");
        let q = req();
        for rsp in [
            r.rate_limited(&q, 3),
            r.too_long(&q, 250, 199),
            r.store_full(&q, 10),
            r.expired(&q),
            r.store_error(&q, 10),
            r.body_error(&q, &BodyError::UnknownCharset("latin1".into())),
            r.body_error(&q, &BodyError::NotUtf8 { at: 4 }),
            r.body_error(&q, &BodyError::Empty),
        ] {
            let w = rsp.headers().warnings().unwrap();
            assert_eq!(w.len(), 1, "{rsp:?}");
            assert_eq!((w[0].code, w[0].agent), (399, "pbx.example.com"));
            assert!(rsp.headers().to().unwrap().tag().is_some());
        }
        assert_eq!(r.accepted(&q).status(), StatusCode::ACCEPTED);
        assert_eq!(r.too_many_hops(&q).status().as_u16(), 483);
        assert_eq!(r.not_found(&q).status().as_u16(), 404);
    }
}
