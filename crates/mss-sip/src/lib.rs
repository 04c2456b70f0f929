//! mss-sip: the SIP message model, parser and serializer (RFC 3261 §7, §19, §20, §25), with
//! no I/O and no async runtime.
//!
//! A received message is parsed once at the line level ([`parse_datagram`]): the start line
//! and an index of header spans into the received [`bytes::Bytes`] (one allocation for the
//! index, none per header). Header values are parsed on demand by typed accessors on
//! [`Headers`] that borrow from the message. A server validates a request once with
//! [`Request::check`], which keeps what it parsed ([`RequestCore`]: Request-URI, top Via,
//! From, To, Call-ID, CSeq, Max-Forwards, Contact, Expires) for everything downstream. Headers a service does not touch are written
//! back byte for byte. Stream transports find message boundaries with [`frame`].
//!
//! What is left to other crates: sockets and timers (mss-transport), transactions
//! (mss-txn), digest computation (mss-auth, fed by [`AuthHeader`] pairs).
//!
//! # API overview
//!
//! ```
//! use bytes::Bytes;
//! use mss_sip::{parse_datagram, HeaderName, Message, Response, StatusCode};
//!
//! let datagram = Bytes::from_static(
//!     b"REGISTER sip:example.com SIP/2.0\r\n\
//!       Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKnashds7;rport\r\n\
//!       Max-Forwards: 70\r\n\
//!       From: <sip:1001@example.com>;tag=a73kszlfl\r\n\
//!       To: <sip:1001@example.com>\r\n\
//!       Call-ID: 1j9FpLxk3uxtm8tn@192.0.2.1\r\n\
//!       CSeq: 1 REGISTER\r\n\
//!       Contact: <sip:1001@192.0.2.1:5060>;expires=3600\r\n\
//!       Content-Length: 0\r\n\r\n",
//! );
//! let Message::Request(req) = parse_datagram(datagram)? else { unreachable!() };
//! // Everything a server checks before processing (answer e.g. `400 Malformed Via Header`
//! // with `err.status_code()` / `err.reason_phrase()` when it fails).
//! req.validate()?;
//! let h = req.headers();
//! assert_eq!(h.top_via()?.branch(), Some("z9hG4bKnashds7"));
//! assert_eq!(h.cseq()?.seq, 1);
//! assert_eq!(h.from()?.tag(), Some("a73kszlfl"));
//!
//! // Answer: Via/From/To/Call-ID/CSeq are copied byte for byte (RFC 3261 §8.2.6.2).
//! let mut ok = Response::for_request(&req, StatusCode::OK, "OK")
//!     .with_header(HeaderName::Contact, "<sip:1001@192.0.2.1:5060>;expires=3600");
//! ok.set_to_tag("8321234356");
//! let wire = ok.to_bytes();
//! assert!(wire.starts_with(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1:5060"));
//! # Ok::<(), mss_sip::ParseError>(())
//! ```
//!
//! On a stream, call [`frame`] on the receive buffer: [`Framed::KeepAlive`] bytes are
//! dropped, [`Framed::Message`]`(n)` bytes are split off and given to [`parse_datagram`].

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod build;
mod core;
mod derive;
pub mod error;
pub mod framing;
pub mod header;
pub mod headers;
mod list;
pub mod message;
pub mod method;
pub mod name;
pub mod net;
pub mod params;
mod parse;
pub mod status;
pub mod uri;
mod validate;

pub use build::{cseq_value, RequestBuilder};
pub use core::{Core, RequestCore};
pub use error::{ParseError, ParseErrorKind};
pub use framing::{
    frame, parse_content_length, parse_datagram, parse_datagram_with, Framed, Framer, FramingError,
    Limits,
};
pub use header::{
    format_date, AuthHeader, CSeq, Contact, Contacts, ContentType, FromTo, NameAddr, RetryAfter,
    Via, Warning,
};
pub use headers::{GetAll, Headers};
pub use message::{fmt_usize, push_decimal, Message, Request, Response, SIP_VERSION};
pub use method::Method;
pub use name::HeaderName;
pub use net::{ConnectionId, Flow, Transport};
pub use params::{unquote, ParamIter, Params};
pub use status::StatusCode;
pub use uri::{unescape, OtherUri, SipUri, TelUri, Uri};
pub use validate::validate_core;
