//! The one place that turns a rejection into a SIP response: every refusal has one status,
//! reason phrase and `Warning` text, decided here and nowhere else.
//!
//! Services return a [`Reject`]; [`Answer::reject`] maps it to a status code, a reason
//! phrase that says what is wrong, and the headers the RFC asks for (`Warning`,
//! `Unsupported`, `Allow`, `Min-Expires`, `Retry-After`). [`Answer::parse_error`] answers a
//! request that failed validation with the phrase of its [`ParseError`]
//! (`400 Malformed Via Header` …).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use bytes::{BufMut, Bytes, BytesMut};
use mss_sip::{HeaderName, ParseError, ParseErrorKind, Request, Response, StatusCode};

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reject {
    /// `400` with this reason phrase (it names the problem, e.g. `Missing Contact Header`).
    BadRequest(&'static str),
    /// The request failed validation: `400` (or `505`/`413`) with the error's phrase.
    Malformed(ParseError),
    /// `404 Not Found`: foreign domain (RFC 3261 §21.4.5) or unknown target.
    NotFound,
    /// `403` with this reason phrase; the same text goes into a `Warning`.
    Forbidden(&'static str),
    /// `423 Interval Too Brief` with `Min-Expires` (RFC 3261 §10.3 step 7).
    IntervalTooBrief {
        /// The shortest expiry accepted, in seconds.
        min: u32,
    },
    /// `420 Bad Extension` with `Unsupported` listing these option tags (RFC 3261 §8.2.2.3).
    BadExtension(Vec<String>),
    /// `416 Unsupported URI Scheme` (RFC 3261 §8.2.2.1).
    UnsupportedUriScheme,
    /// `483 Too Many Hops` (Max-Forwards reached 0 where mss would forward).
    TooManyHops,
    /// `505 Version Not Supported`.
    VersionNotSupported,
    /// `405 Method Not Allowed` with `Allow` (a method mss knows but does not serve here).
    MethodNotAllowed,
    /// `501 Not Implemented` with `Allow` (an unknown method, RFC 3261 §8.2.1).
    NotImplemented,
    /// `413` with this reason phrase and a `Warning` in words.
    TooLarge(&'static str),
    /// `480` with this reason phrase (e.g. `Offline Message Store Full`) and a `Warning`.
    TemporarilyUnavailable(&'static str),
    /// `439 First Hop Lacks Outbound Support` (RFC 5626 §6).
    FirstHopLacksOutbound,
    /// `500` with this reason phrase and no `Retry-After`: a request that must not be
    /// repeated as is, such as a REGISTER whose CSeq is not above the binding's
    /// (RFC 3261 §10.3 step 7; 500 as for out-of-order requests in §12.2.2).
    OutOfOrder(&'static str),
    /// `500 Server Internal Error` with `Retry-After` (e.g. the store failed).
    ServerError {
        /// Seconds after which the client may retry.
        retry_after: u32,
    },
}

/// Builds responses for one mss instance: knows the `Warning` agent (our host), the
/// `Allow` list and the secret that makes To tags unpredictable.
#[derive(Debug, Clone)]
pub struct Answer {
    /// `warn-agent` of our `Warning` headers (RFC 3261 §20.43): our host name.
    agent: String,
    /// The `Allow` header value.
    allow: Bytes,
    /// Keys the To-tag hash (four keys derived from one secret seed), so tags are not
    /// guessable from the request alone.
    tag_keys: ahash::RandomState,
}

/// The methods mss serves today, for `Allow`.
pub const DEFAULT_ALLOW: &str = "REGISTER, MESSAGE, OPTIONS";

impl Answer {
    /// Answers signed with `agent` (our host) in `Warning`, with [`DEFAULT_ALLOW`]. The
    /// To-tag key comes from the standard library's per-process random hash keys; use
    /// [`Answer::with_tag_seed`] for replayable tests.
    pub fn new(agent: &str) -> Answer {
        Answer {
            agent: agent.to_owned(),
            allow: Bytes::from_static(DEFAULT_ALLOW.as_bytes()),
            tag_keys: tag_keys(RandomState::new().hash_one("mss to-tag")),
        }
    }

    /// Sets the To-tag key (chainable), e.g. from a seeded RNG.
    pub fn with_tag_seed(mut self, seed: u64) -> Answer {
        self.tag_keys = tag_keys(seed);
        self
    }

    /// Replaces the `Allow` value (chainable).
    pub fn with_allow(mut self, allow: &str) -> Answer {
        self.allow = Bytes::copy_from_slice(allow.as_bytes());
        self
    }

    /// The `Allow` value.
    pub fn allow(&self) -> &Bytes {
        &self.allow
    }

    /// The `warn-agent`.
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// A To tag for the response to `req`: a keyed hash of the Call-ID, From, CSeq and
    /// first Via header values, so retransmissions get the same tag (RFC 3261 §8.2.6.2,
    /// §19.3) without keeping state, and outsiders cannot predict it.
    pub fn to_tag(&self, req: &Request) -> String {
        let hex = self.to_tag_hex(req);
        hex.iter().map(|&b| char::from(b)).collect()
    }

    /// [`Answer::to_tag`] as 16 lowercase hex digits on the stack.
    pub fn to_tag_hex(&self, req: &Request) -> [u8; 16] {
        let hd = req.headers();
        let parts = [
            hd.get(&HeaderName::CallId),
            hd.get(&HeaderName::From),
            hd.get(&HeaderName::CSeq),
            hd.get(&HeaderName::Via),
        ];
        // The lengths first, in one write (an absent header counts as length u32::MAX),
        // then the values: few calls into the hasher, and no two header sets feed it
        // the same bytes.
        let mut lengths = [0u8; 16];
        for (slot, part) in lengths.chunks_exact_mut(4).zip(&parts) {
            let len = part.map_or(u32::MAX, |v| u32::try_from(v.len()).unwrap_or(u32::MAX - 1));
            slot.copy_from_slice(&len.to_le_bytes());
        }
        let mut h = self.tag_keys.build_hasher();
        h.write(&lengths);
        for part in parts.into_iter().flatten() {
            h.write(part);
        }
        hex16(h.finish())
    }

    /// A response to `req` with Via/From/To/Call-ID/CSeq copied and a To tag added.
    pub fn response(&self, req: &Request, status: StatusCode, reason: &'static str) -> Response {
        let tag = self.to_tag_hex(req);
        Response::for_request_with_to_tag(req, status, Bytes::from_static(reason.as_bytes()), &tag)
    }

    /// `Warning: 399 agent "text"` (quotes and backslashes in `text` are dropped).
    pub fn warning(&self, text: &str) -> Bytes {
        let mut v = BytesMut::with_capacity(self.agent.len() + text.len() + 8);
        v.put_slice(b"399 ");
        v.put_slice(self.agent.as_bytes());
        v.put_slice(b" \"");
        for c in text
            .bytes()
            .filter(|c| !matches!(c, b'"' | b'\\' | b'\r' | b'\n'))
        {
            v.put_u8(c);
        }
        v.put_u8(b'"');
        v.freeze()
    }

    /// The response for `reject`.
    pub fn reject(&self, req: &Request, reject: &Reject) -> Response {
        use Reject as R;
        let (status, reason): (StatusCode, &'static str) = match reject {
            R::BadRequest(r) => (StatusCode::BAD_REQUEST, r),
            R::Malformed(e) => (e.status_code(), e.reason_phrase()),
            R::NotFound => (StatusCode::NOT_FOUND, "Not Found"),
            R::Forbidden(r) => (StatusCode::FORBIDDEN, r),
            R::IntervalTooBrief { .. } => (StatusCode::INTERVAL_TOO_BRIEF, "Interval Too Brief"),
            R::BadExtension(_) => (StatusCode::BAD_EXTENSION, "Bad Extension"),
            R::UnsupportedUriScheme => {
                (StatusCode::UNSUPPORTED_URI_SCHEME, "Unsupported URI Scheme")
            }
            R::TooManyHops => (StatusCode::TOO_MANY_HOPS, "Too Many Hops"),
            R::VersionNotSupported => (StatusCode::VERSION_NOT_SUPPORTED, "Version Not Supported"),
            R::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
            R::NotImplemented => (StatusCode::NOT_IMPLEMENTED, "Not Implemented"),
            R::TooLarge(r) => (StatusCode::REQUEST_ENTITY_TOO_LARGE, r),
            R::TemporarilyUnavailable(r) => (StatusCode::TEMPORARILY_UNAVAILABLE, r),
            R::FirstHopLacksOutbound => (StatusCode(439), "First Hop Lacks Outbound Support"),
            R::OutOfOrder(r) => (StatusCode::SERVER_INTERNAL_ERROR, r),
            R::ServerError { .. } => (StatusCode::SERVER_INTERNAL_ERROR, "Server Internal Error"),
        };
        let mut rsp = self.response(req, status, reason);
        let h = rsp.headers_mut();
        match reject {
            R::Forbidden(r) | R::TooLarge(r) | R::TemporarilyUnavailable(r) | R::OutOfOrder(r) => {
                h.push(HeaderName::Warning, self.warning(r));
            }
            R::IntervalTooBrief { min } => h.push(HeaderName::MinExpires, min.to_string()),
            R::BadExtension(tags) => h.push(HeaderName::Unsupported, tags.join(", ")),
            R::MethodNotAllowed | R::NotImplemented => {
                h.push(HeaderName::Allow, self.allow.clone());
            }
            R::ServerError { retry_after } => {
                h.push(HeaderName::RetryAfter, retry_after.to_string());
            }
            R::NotFound => h.push(HeaderName::Warning, self.warning("no such user or domain")),
            _ => {}
        }
        rsp
    }

    /// The answer to a request that failed [`Request::validate`]: its status (`400`, or
    /// `505` for another SIP version, `413` for an oversized message) and the reason
    /// phrase naming the bad header. `None` when no response can be built (no usable Via,
    /// or a core header missing), in which case the request is dropped.
    pub fn parse_error(&self, req: &Request, err: &ParseError) -> Option<Response> {
        if !req.can_build_response() {
            return None;
        }
        let reject = match err.kind {
            ParseErrorKind::UnsupportedVersion => Reject::VersionNotSupported,
            _ => Reject::Malformed(err.clone()),
        };
        Some(self.reject(req, &reject))
    }
}

/// The keys of the To-tag hash for `seed`: four distinct, well-mixed words (SplitMix64).
fn tag_keys(seed: u64) -> ahash::RandomState {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    ahash::RandomState::with_seeds(next(), next(), next(), next())
}

/// `v` as 16 lowercase hex digits, most significant first.
fn hex16(v: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (i, slot) in out.iter_mut().enumerate() {
        let nib = ((v >> (60 - 4 * i)) & 0xf) as u8;
        *slot = if nib < 10 {
            b'0' + nib
        } else {
            b'a' + nib - 10
        };
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use mss_sip::{parse_datagram, Message};

    pub(crate) fn req(text: &str) -> Request {
        match parse_datagram(Bytes::copy_from_slice(text.as_bytes())).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => panic!("not a request"),
        }
    }

    const OPTIONS: &str = "OPTIONS sip:pbx SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@pbx>;tag=1\r\nTo: <sip:b@pbx>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn rejections_carry_their_headers() {
        let a = Answer::new("pbx.example.com");
        let r = req(OPTIONS);
        let rsp = a.reject(&r, &Reject::IntervalTooBrief { min: 60 });
        assert_eq!(rsp.status().as_u16(), 423);
        assert_eq!(rsp.headers().min_expires(), Ok(Some(60)));
        assert!(rsp.headers().to().unwrap().tag().is_some());
        let rsp = a.reject(&r, &Reject::BadExtension(vec!["foo".into(), "bar".into()]));
        assert_eq!(rsp.headers().unsupported().unwrap(), vec!["foo", "bar"]);
        let rsp = a.reject(&r, &Reject::NotImplemented);
        assert_eq!(rsp.status().as_u16(), 501);
        assert_eq!(rsp.headers().allow().unwrap().len(), 3);
        let rsp = a.reject(&r, &Reject::Forbidden("Too Many Contacts"));
        assert_eq!(rsp.reason(), b"Too Many Contacts");
        let w = rsp.headers().warnings().unwrap();
        assert_eq!((w[0].code, w[0].agent), (399, "pbx.example.com"));
        let rsp = a.reject(&r, &Reject::ServerError { retry_after: 5 });
        assert_eq!(rsp.headers().retry_after().unwrap().unwrap().seconds, 5);
        let rsp = a.reject(
            &r,
            &Reject::TemporarilyUnavailable("Offline Message Store Full"),
        );
        assert_eq!(rsp.status().as_u16(), 480);
        assert_eq!(rsp.reason(), b"Offline Message Store Full");
        let rsp = a.reject(&r, &Reject::FirstHopLacksOutbound);
        assert_eq!(rsp.status().as_u16(), 439);
    }

    #[test]
    fn to_tag_is_stable_per_request() {
        let a = Answer::new("pbx");
        let r = req(OPTIONS);
        assert_eq!(a.to_tag(&r), a.to_tag(&r));
        assert_eq!(a.to_tag(&r).len(), 16);
        let other = req(&OPTIONS.replace("c1", "c2"));
        assert_ne!(a.to_tag(&r), a.to_tag(&other));
        let seeded = Answer::new("pbx").with_tag_seed(42);
        assert_eq!(
            seeded.to_tag(&r),
            Answer::new("x").with_tag_seed(42).to_tag(&r)
        );
        assert_ne!(
            seeded.to_tag(&r),
            Answer::new("x").with_tag_seed(43).to_tag(&r)
        );
    }

    #[test]
    fn parse_errors_name_the_header() {
        let a = Answer::new("pbx");
        let r = req(&OPTIONS.replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE"));
        let e = r.validate().unwrap_err();
        let rsp = a.parse_error(&r, &e).unwrap();
        assert_eq!(rsp.status().as_u16(), 400);
        assert_eq!(rsp.reason(), b"CSeq Method Mismatch");
        let r = req("OPTIONS sip:pbx SIP/2.0\r\nContent-Length: 0\r\n\r\n");
        let e = r.validate().unwrap_err();
        assert!(a.parse_error(&r, &e).is_none());
        let rsp = a.reject(&req(OPTIONS), &Reject::Malformed(e));
        assert_eq!(rsp.status().as_u16(), 400);
        let w = a.warning("say \"hi\"");
        assert_eq!(&w[..], b"399 pbx \"say hi\"");
    }

    #[test]
    fn to_tag_is_hex_and_lands_in_to() {
        assert_eq!(&hex16(0x0123_4567_89ab_cdef), b"0123456789abcdef");
        assert_eq!(&hex16(u64::MAX), b"ffffffffffffffff");
        let a = Answer::new("pbx").with_tag_seed(7);
        let r = req(OPTIONS);
        let rsp = a.response(&r, StatusCode::OK, "OK");
        let tag = a.to_tag(&r);
        assert_eq!(rsp.headers().to().unwrap().tag(), Some(tag.as_str()));
        assert_eq!(tag.as_bytes(), &a.to_tag_hex(&r));
    }
}
