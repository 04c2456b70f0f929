//! The test as the peers of mss: messages written as they arrive on the wire and parsed,
//! mss's own messages sent through bytes and parsed back, a clock that moves only when the
//! test says so, and a seeded generator.

#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use mss_dialog::{DialogConfig, DialogId, DialogOutput, Dialogs, LocalEnd};
use mss_sip::{parse_datagram, HeaderName, Message, Request, Response, StatusCode, Transport};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// The text of a request (CRLF line ends as `\n`), for variants of it.
pub fn request_text_of(req: &Request) -> String {
    String::from_utf8_lossy(&req.to_bytes()).replace("\r\n", "\n")
}

/// A request as received: `\n` line ends become CRLF.
pub fn request(text: &str) -> Request {
    match parse_datagram(Bytes::from(text.replace('\n', "\r\n"))) {
        Ok(Message::Request(r)) => r,
        other => panic!("not a request: {other:?}\n{text}"),
    }
}

/// A response as received.
pub fn response(text: &str) -> Response {
    match parse_datagram(Bytes::from(text.replace('\n', "\r\n"))) {
        Ok(Message::Response(r)) => r,
        other => panic!("not a response: {other:?}\n{text}"),
    }
}

/// `req` as the peer receives it: encoded, parsed again, and checked like mss checks
/// every request it receives.
pub fn on_the_wire(req: &Request) -> Request {
    let Ok(Message::Request(back)) = parse_datagram(req.to_bytes()) else {
        panic!(
            "does not parse:\n{}",
            String::from_utf8_lossy(&req.to_bytes())
        );
    };
    back.validate().unwrap();
    back
}

/// `rsp` as the peer receives it.
pub fn response_on_the_wire(rsp: &Response) -> Response {
    let Ok(Message::Response(back)) = parse_datagram(rsp.to_bytes()) else {
        panic!(
            "does not parse:\n{}",
            String::from_utf8_lossy(&rsp.to_bytes())
        );
    };
    back
}

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

pub fn table(rng: &mut StdRng) -> Dialogs {
    Dialogs::new(DialogConfig::default(), rng)
}

/// mss towards the A leg's phone.
pub fn local_a() -> LocalEnd {
    LocalEnd {
        transport: Transport::Udp,
        sent_by: "192.0.2.1:5060".into(),
        contact: "sip:mss@192.0.2.1:5060".into(),
    }
}

/// Every output queued, in order.
pub fn drain(dialogs: &mut Dialogs) -> Vec<DialogOutput> {
    std::iter::from_fn(|| dialogs.poll_output()).collect()
}

/// The test's clock.
pub struct Clock {
    pub start: Instant,
    pub now: Instant,
}

impl Clock {
    pub fn new() -> Clock {
        let start = Instant::now();
        Clock { start, now: start }
    }

    pub fn at(&self, d: Duration) -> Instant {
        self.start + d
    }

    pub fn since_start(&self) -> Duration {
        self.now - self.start
    }
}

/// Runs the table's timers up to `until` after the start, deadline by deadline; returns
/// every output with the time since the start it came at.
pub fn run_until(
    dialogs: &mut Dialogs,
    clock: &mut Clock,
    until: Duration,
) -> Vec<(Duration, DialogOutput)> {
    let until = clock.start + until;
    let mut seen = Vec::new();
    while let Some(at) = dialogs.poll_timeout() {
        if at > until {
            break;
        }
        assert!(at >= clock.now, "a deadline in the past");
        clock.now = at;
        dialogs.handle_timeout(at);
        for out in drain(dialogs) {
            seen.push((clock.since_start(), out));
        }
    }
    clock.now = until;
    seen
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// An INVITE from the caller's phone through two proxies (proxy1 first, then proxy2, so
/// proxy2's Record-Route is on top).
pub const INVITE_A: &str = "INVITE sip:101@pbx.example.com SIP/2.0
Via: SIP/2.0/UDP proxy2.example.com;branch=z9hG4bKp2
Via: SIP/2.0/TCP proxy1.example.com;branch=z9hG4bKp1
Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKa1;rport
Record-Route: <sip:proxy2.example.com;lr>
Record-Route: <sip:proxy1.example.com;transport=tcp;lr>;x-origin=1
Max-Forwards: 68
From: \"Alice\" <sip:100@pbx.example.com>;tag=alice-1
To: <sip:101@pbx.example.com>
Call-ID: a-leg-1@192.0.2.10
CSeq: 10 INVITE
Contact: <sip:100@192.0.2.10:5062>
Content-Length: 0

";

/// The A leg as mss answers it: the INVITE received and the dialog created.
pub fn a_leg(dialogs: &mut Dialogs, rng: &mut StdRng) -> (Request, DialogId) {
    let invite = request(INVITE_A);
    let id = dialogs.create_uas(&invite, local_a(), rng).unwrap();
    (invite, id)
}

/// The A leg answered `200` at `now` and acknowledged.
pub fn a_leg_confirmed(
    dialogs: &mut Dialogs,
    rng: &mut StdRng,
    now: Instant,
) -> (Request, DialogId) {
    let (invite, id) = a_leg(dialogs, rng);
    let ok = dialogs
        .response(&id, &invite, StatusCode::OK, "OK")
        .unwrap();
    dialogs.send_response(now, &id, ok).unwrap();
    let ack = from_alice("ACK", 10, &id, "");
    assert!(matches!(
        dialogs.handle_request(&ack, rng),
        mss_dialog::RequestOutcome::Ack { first: true, .. }
    ));
    drain(dialogs);
    (invite, id)
}

/// A request of Alice's phone within the A leg, with `extra` header lines.
pub fn from_alice(method: &str, cseq: u32, id: &DialogId, extra: &str) -> Request {
    request(&format!(
        "{method} sip:mss@192.0.2.1:5060 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKalice{method}{cseq};rport
Max-Forwards: 70
From: \"Alice\" <sip:100@pbx.example.com>;tag=alice-1
To: <sip:101@pbx.example.com>;tag={}
Call-ID: a-leg-1@192.0.2.10
CSeq: {cseq} {method}
{extra}Content-Length: 0

",
        id.local_tag()
    ))
}

/// The INVITE mss sends on a B leg to Bob's phone.
pub fn invite_b() -> Request {
    request(
        "INVITE sip:bob@192.0.2.20:5070 SIP/2.0
Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bKmss1;rport
Max-Forwards: 70
From: \"Alice\" <sip:100@pbx.example.com>;tag=mss-b1
To: <sip:101@pbx.example.com>
Call-ID: b-leg-1
CSeq: 1 INVITE
Contact: <sip:mss@192.0.2.1:5060;transport=tcp>
Content-Length: 0

",
    )
}

/// A response of Bob's side to `req` (mss's request): the To tag `to_tag`, `extra` header
/// lines (Record-Route, Contact …).
pub fn from_bob(
    req: &Request,
    status: u16,
    to_tag: &str,
    extra: &[(HeaderName, &str)],
) -> Response {
    let mut rsp = Response::for_request(req, StatusCode(status), "Answer");
    if !to_tag.is_empty() {
        rsp.set_to_tag(to_tag);
    }
    for (name, value) in extra {
        rsp.headers_mut().push(name.clone(), value.to_string());
    }
    response_on_the_wire(&rsp)
}

/// A request of Bob's phone within the B leg `id`.
pub fn from_bob_request(method: &str, cseq: u32, id: &DialogId, extra: &str) -> Request {
    request(&format!(
        "{method} sip:mss@192.0.2.1:5060;transport=tcp SIP/2.0
Via: SIP/2.0/TCP 192.0.2.20:5070;branch=z9hG4bKbob{method}{cseq}
Max-Forwards: 70
From: <sip:101@pbx.example.com>;tag={}
To: \"Alice\" <sip:100@pbx.example.com>;tag=mss-b1
Call-ID: b-leg-1
CSeq: {cseq} {method}
{extra}Content-Length: 0

",
        id.remote_tag()
    ))
}
