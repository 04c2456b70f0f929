//! Scenario tests of the messaging service in simulated time: no clock, no sockets; the
//! test plays the caller (transactions, store) and checks every output.
//!
//! - `relay.rs`: online recipients;
//! - `offline.rs`: storing and its answers;
//! - `delivery.rs`: delivery rounds;
//! - `durable.rs`: driven against the real SQLite store in a temporary folder;
//! - `limits.rs`: rate limit, sender table, sweeps;
//! - `props.rs`: property tests.
//!
//! This file holds the harness.

mod delivery;
mod durable;
mod limits;
mod offline;
mod props;
mod relay;

use std::time::{Duration, Instant};

use bytes::Bytes;
use mss_sip::{parse_datagram, Flow, HeaderName, Message, Request, Response, StatusCode};
use mss_store::{InsertOutcome, NewMessage, StoredMessage};

use super::*;
use crate::Now;

/// The caller's server-transaction handle in these tests.
pub(super) type Txn = u32;

/// 2026-11-26T12:00:00Z.
pub(super) const T0_MS: i64 = 1_795_089_600_000;

pub(super) struct Harness {
    pub(super) im: Messaging<Txn>,
    pub(super) now: Now,
}

pub(super) fn settings() -> ImSettings {
    ImSettings::new("pbx.example.com")
}

impl Harness {
    pub(super) fn new() -> Harness {
        Harness::with(settings())
    }

    pub(super) fn with(s: ImSettings) -> Harness {
        let now = Now::new(Instant::now(), T0_MS);
        Harness {
            im: Messaging::new(now, s, 7),
            now,
        }
    }

    pub(super) fn advance(&mut self, d: Duration) {
        self.now = self.now.after(d);
    }

    pub(super) fn drain(&mut self) -> Vec<ImOutput<Txn>> {
        std::iter::from_fn(|| self.im.poll_output()).collect()
    }

    pub(super) fn message(&mut self, txn: Txn, req: &Request, contacts: Vec<ContactTarget>) {
        let r = Recipient::Local {
            user: "102".into(),
            contacts,
        };
        let sender = Sender::Local { user: "101".into() };
        self.im.handle_message(self.now, txn, req, sender, r);
    }

    /// Sends `req` to an offline 102 and returns the store request.
    pub(super) fn offline(&mut self, txn: Txn, req: &Request) -> (StoreToken, NewMessage, u32) {
        self.message(txn, req, vec![]);
        match one(self.drain()) {
            ImOutput::Store {
                token,
                message,
                limit,
            } => (token, message, limit),
            other => panic!("expected Store, got {other:?}"),
        }
    }
}

pub(super) fn one(mut v: Vec<ImOutput<Txn>>) -> ImOutput<Txn> {
    assert_eq!(v.len(), 1, "{v:?}");
    v.remove(0)
}

pub(super) fn reply(out: ImOutput<Txn>) -> (Txn, Response) {
    match out {
        ImOutput::Reply { server, response } => (server, response),
        other => panic!("expected Reply, got {other:?}"),
    }
}

pub(super) fn sends(v: Vec<ImOutput<Txn>>) -> Vec<(RequestToken, Request, Flow)> {
    v.into_iter()
        .map(|o| match o {
            ImOutput::Send {
                token,
                request,
                flow,
            } => (token, request, flow),
            other => panic!("expected Send, got {other:?}"),
        })
        .collect()
}

pub(super) fn contact(n: u8) -> ContactTarget {
    ContactTarget {
        uri: format!("sip:102@192.0.2.{n}:5062"),
        flow: Flow::udp(format!("192.0.2.{n}:5062").parse().unwrap()),
    }
}

pub(super) fn parse_req(text: Vec<u8>) -> Request {
    match parse_datagram(Bytes::from(text)).unwrap() {
        Message::Request(r) => r,
        Message::Response(_) => panic!("not a request"),
    }
}

pub(super) fn message_with(content_type: &str, extra: &str, body: &[u8]) -> Request {
    let mut t = format!(
        "MESSAGE sip:102@pbx.example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKs1;rport\r\n\
         Max-Forwards: 70\r\n\
         From: \"Alice\" <sip:101@pbx.example.com>;tag=a1\r\n\
         To: <sip:102@pbx.example.com>\r\n\
         Call-ID: m1@192.0.2.1\r\n\
         CSeq: 1 MESSAGE\r\n\
         Content-Type: {content_type}\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    t.extend_from_slice(body);
    parse_req(t)
}

pub(super) fn text(body: &str) -> Request {
    message_with("text/plain;charset=UTF-8", "", body.as_bytes())
}

/// The recipient's answer to a forwarded or delivered request.
pub(super) fn answer(req: &Request, code: u16, reason: &'static str) -> Response {
    let mut r = Response::for_request(req, StatusCode(code), reason);
    r.set_to_tag("uas-tag");
    r
}

pub(super) fn warning_text(rsp: &Response) -> String {
    let w = rsp.headers().warnings().unwrap();
    mss_sip::unquote(w[0].text).into_owned()
}

pub(super) fn stored(id: i64, body: &str, received_at: i64) -> StoredMessage {
    StoredMessage {
        id,
        message: NewMessage {
            recipient: "102".into(),
            sender: format!("<sip:101@pbx.example.com>;tag=t{id}"),
            original_to: Some("<sip:102@pbx.example.com>".into()),
            content_type: "text/plain;charset=UTF-8".into(),
            body: body.as_bytes().to_vec(),
            received_at,
            expires_at: received_at + 86_400_000,
        },
    }
}

/// Plays the contact and the store for one message of a round: expects one Send, answers
/// `code`, and returns the requests sent.
pub(super) fn deliver_one(h: &mut Harness, code: u16) -> Request {
    let s = sends(h.drain());
    assert_eq!(s.len(), 1);
    let (token, req, _) = s.into_iter().next().unwrap();
    h.im.handle_response(h.now, token, &answer(&req, code, "X"));
    req
}

pub(super) fn expect_load(h: &mut Harness) {
    match one(h.drain()) {
        ImOutput::Load { user, now } => assert_eq!((user.as_str(), now), ("102", h.now.unix_ms)),
        other => panic!("expected Load, got {other:?}"),
    }
}
