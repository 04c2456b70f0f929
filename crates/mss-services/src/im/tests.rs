//! Scenario tests of the messaging service in simulated time: no clock, no sockets, no
//! disk; the test plays the caller (transactions, store) and checks every output.

use std::time::{Duration, Instant};

use bytes::Bytes;
use mss_sip::{parse_datagram, Flow, HeaderName, Message, Request, Response, StatusCode};
use mss_store::{InsertOutcome, NewMessage, StoredMessage};
use proptest::prelude::*;

use super::*;
use crate::Now;

/// The caller's server-transaction handle in these tests.
type Txn = u32;

/// 2026-11-26T12:00:00Z.
const T0_MS: i64 = 1_795_089_600_000;

struct Harness {
    im: Messaging<Txn>,
    now: Now,
}

fn settings() -> ImSettings {
    ImSettings::new("pbx.example.com")
}

impl Harness {
    fn new() -> Harness {
        Harness::with(settings())
    }

    fn with(s: ImSettings) -> Harness {
        let now = Now::new(Instant::now(), T0_MS);
        Harness {
            im: Messaging::new(now, s, 7),
            now,
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now = self.now.after(d);
    }

    fn drain(&mut self) -> Vec<ImOutput<Txn>> {
        std::iter::from_fn(|| self.im.poll_output()).collect()
    }

    fn message(&mut self, txn: Txn, req: &Request, contacts: Vec<ContactTarget>) {
        let r = Recipient::Local {
            user: "102".into(),
            contacts,
        };
        let sender = Sender::Local { user: "101".into() };
        self.im.handle_message(self.now, txn, req, sender, r);
    }

    /// Sends `req` to an offline 102 and returns the store request.
    fn offline(&mut self, txn: Txn, req: &Request) -> (StoreToken, NewMessage, u32) {
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

fn one(mut v: Vec<ImOutput<Txn>>) -> ImOutput<Txn> {
    assert_eq!(v.len(), 1, "{v:?}");
    v.remove(0)
}

fn reply(out: ImOutput<Txn>) -> (Txn, Response) {
    match out {
        ImOutput::Reply { server, response } => (server, response),
        other => panic!("expected Reply, got {other:?}"),
    }
}

fn sends(v: Vec<ImOutput<Txn>>) -> Vec<(RequestToken, Request, Flow)> {
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

fn contact(n: u8) -> ContactTarget {
    ContactTarget {
        uri: format!("sip:102@192.0.2.{n}:5062"),
        flow: Flow::udp(format!("192.0.2.{n}:5062").parse().unwrap()),
    }
}

fn parse_req(text: Vec<u8>) -> Request {
    match parse_datagram(Bytes::from(text)).unwrap() {
        Message::Request(r) => r,
        Message::Response(_) => panic!("not a request"),
    }
}

fn message_with(content_type: &str, extra: &str, body: &[u8]) -> Request {
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

fn text(body: &str) -> Request {
    message_with("text/plain;charset=UTF-8", "", body.as_bytes())
}

/// The recipient's answer to a forwarded or delivered request.
fn answer(req: &Request, code: u16, reason: &'static str) -> Response {
    let mut r = Response::for_request(req, StatusCode(code), reason);
    r.set_to_tag("uas-tag");
    r
}

fn warning_text(rsp: &Response) -> String {
    let w = rsp.headers().warnings().unwrap();
    mss_sip::unquote(w[0].text).into_owned()
}

#[test]
fn online_recipient_gets_it_and_the_2xx_is_relayed() {
    let mut h = Harness::new();
    let req = text("hello");
    h.message(1, &req, vec![contact(7)]);
    let s = sends(h.drain());
    let (token, fwd, flow) = &s[0];
    assert_eq!(s.len(), 1);
    assert_eq!(flow.remote, "192.0.2.7:5062".parse().unwrap());
    assert_eq!(fwd.uri_str().unwrap(), "sip:102@192.0.2.7:5062");
    assert_eq!(fwd.headers().max_forwards(), Ok(Some(69)));
    assert_eq!(fwd.headers().via().unwrap().len(), 2);
    assert_eq!(fwd.body(), req.body());
    // A provisional answer changes nothing.
    h.im.handle_response(h.now, *token, &answer(fwd, 100, "Trying"));
    assert!(h.drain().is_empty());
    h.im.handle_response(h.now, *token, &answer(fwd, 200, "Delivered"));
    let (txn, rsp) = reply(one(h.drain()));
    assert_eq!(txn, 1);
    assert_eq!(rsp.status(), StatusCode::OK);
    assert_eq!(rsp.reason(), b"Delivered");
    assert_eq!(rsp.headers().to().unwrap().tag(), Some("uas-tag"));
    assert_eq!(rsp.headers().call_id().unwrap(), "m1@192.0.2.1");
    assert_eq!(h.im.stats().relayed, 1);
    // A late duplicate is ignored.
    h.im.handle_response(h.now, *token, &answer(fwd, 200, "OK"));
    assert!(h.drain().is_empty());
    assert_eq!(h.im.in_flight(), 0);
}

#[test]
fn first_contact_fails_second_answers() {
    let mut h = Harness::new();
    let req = text("hi");
    h.message(1, &req, vec![contact(7), contact(8)]);
    let s = sends(h.drain());
    assert_eq!(s.len(), 2);
    let branches: Vec<_> = s
        .iter()
        .map(|(_, r, _)| r.headers().top_via().unwrap().branch().unwrap().to_owned())
        .collect();
    assert_ne!(branches[0], branches[1]);
    h.im.handle_response(
        h.now,
        s[0].0,
        &answer(&s[0].1, 480, "Temporarily Unavailable"),
    );
    assert!(h.drain().is_empty());
    h.im.handle_response(h.now, s[1].0, &answer(&s[1].1, 200, "OK"));
    let (_, rsp) = reply(one(h.drain()));
    assert_eq!(rsp.status(), StatusCode::OK);
    assert_eq!(h.im.stats().stored, 0);
}

#[test]
fn every_contact_unreachable_stores_and_202_waits_for_the_disk() {
    let mut h = Harness::new();
    let req = text("are you there?");
    h.message(3, &req, vec![contact(7), contact(8)]);
    let s = sends(h.drain());
    h.advance(Duration::from_secs(32));
    h.im.handle_response(h.now, s[0].0, &answer(&s[0].1, 408, "Request Timeout"));
    h.im.handle_response(h.now, s[1].0, &answer(&s[1].1, 503, "Service Unavailable"));
    let (token, msg, limit) = match one(h.drain()) {
        ImOutput::Store {
            token,
            message,
            limit,
        } => (token, message, limit),
        other => panic!("{other:?}"),
    };
    assert_eq!(limit, 10);
    assert_eq!(msg.recipient, "102");
    assert_eq!(msg.sender, "\"Alice\" <sip:101@pbx.example.com>;tag=a1");
    assert_eq!(
        msg.original_to.as_deref(),
        Some("<sip:102@pbx.example.com>")
    );
    assert_eq!(msg.content_type, "text/plain;charset=UTF-8");
    assert_eq!(msg.body, b"are you there?");
    // Arrival time, not the time the last contact gave up.
    assert_eq!(msg.received_at, T0_MS);
    assert_eq!(msg.expires_at, T0_MS + 7 * 86_400_000);
    // Nothing is answered before the store reports.
    assert!(h.drain().is_empty());
    h.im.handle_stored(h.now, token, Ok(InsertOutcome::Stored(41)));
    let (txn, rsp) = reply(one(h.drain()));
    assert_eq!((txn, rsp.status()), (3, StatusCode::ACCEPTED));
    assert_eq!(h.im.stats().stored, 1);
}

#[test]
fn a_refusal_by_the_device_is_relayed_not_stored() {
    let mut h = Harness::new();
    let req = text("hi");
    h.message(1, &req, vec![contact(7), contact(8)]);
    let s = sends(h.drain());
    h.im.handle_response(h.now, s[0].0, &answer(&s[0].1, 486, "Busy Here"));
    h.im.handle_response(h.now, s[1].0, &answer(&s[1].1, 603, "Decline"));
    let (_, rsp) = reply(one(h.drain()));
    assert_eq!(
        (rsp.status().as_u16(), rsp.reason()),
        (603, &b"Decline"[..])
    );
    assert_eq!(h.im.stats().refused.by_recipient, 1);
}

#[test]
fn unknown_recipient_is_404() {
    let mut h = Harness::new();
    let sender = Sender::Line { name: "p1".into() };
    h.im.handle_message(h.now, 9, &text("x"), sender, Recipient::Unknown);
    let (txn, rsp) = reply(one(h.drain()));
    assert_eq!((txn, rsp.status()), (9, StatusCode::NOT_FOUND));
    assert_eq!(h.im.stats().refused.not_found, 1);
}

#[test]
fn limit_counts_characters() {
    let mut h = Harness::new();
    h.message(1, &text(&"a".repeat(200)), vec![]);
    let (_, rsp) = reply(one(h.drain()));
    assert_eq!(rsp.status().as_u16(), 413);
    assert_eq!(
        warning_text(&rsp),
        "Message too long to store offline: 200 characters, the limit is 199"
    );
    // 199 two-byte characters (398 bytes) are under the limit.
    let long = "ü".repeat(199);
    let (token, msg, _) = h.offline(2, &text(&long));
    assert_eq!(msg.body, long.as_bytes());
    h.im.handle_stored(h.now, token, Ok(InsertOutcome::Stored(1)));
    assert_eq!(reply(one(h.drain())).1.status(), StatusCode::ACCEPTED);
    // A long message to an online user is relayed: the limit is for storing only.
    h.message(3, &text(&"a".repeat(500)), vec![contact(7)]);
    assert_eq!(sends(h.drain()).len(), 1);
}

#[test]
fn full_store_is_480_with_words() {
    let mut h = Harness::new();
    for i in 0..10 {
        let (token, _, _) = h.offline(i, &text("m"));
        h.im.handle_stored(h.now, token, Ok(InsertOutcome::Stored(i64::from(i))));
        assert_eq!(reply(one(h.drain())).1.status(), StatusCode::ACCEPTED);
    }
    let (token, _, _) = h.offline(11, &text("eleventh"));
    h.im.handle_stored(h.now, token, Ok(InsertOutcome::Full { stored: 10 }));
    let (txn, rsp) = reply(one(h.drain()));
    assert_eq!((txn, rsp.status().as_u16()), (11, 480));
    assert_eq!(rsp.reason(), b"Offline Message Store Full");
    assert!(warning_text(&rsp).contains("10 stored messages"));
    assert_eq!(h.im.stats().refused.store_full, 1);
}

#[test]
fn store_error_or_silence_is_500_with_retry_after() {
    let mut h = Harness::new();
    let (token, _, _) = h.offline(1, &text("a"));
    h.im.handle_stored(h.now, token, Err("disk I/O error".into()));
    let (_, rsp) = reply(one(h.drain()));
    assert_eq!(rsp.status().as_u16(), 500);
    assert_eq!(rsp.headers().retry_after().unwrap().unwrap().seconds, 10);
    // A store that never answers: the guard answers 500 and a late result is ignored.
    let (token, _, _) = h.offline(2, &text("b"));
    h.advance(Duration::from_secs(31));
    h.im.handle_timeout(h.now);
    let outs = h.drain();
    let rsp = outs
        .into_iter()
        .find_map(|o| match o {
            ImOutput::Reply {
                server: 2,
                response,
            } => Some(response),
            _ => None,
        })
        .unwrap();
    assert_eq!(rsp.status().as_u16(), 500);
    h.im.handle_stored(h.now, token, Ok(InsertOutcome::Stored(5)));
    assert!(h.drain().is_empty());
    assert_eq!(h.im.stats().refused.store_error, 2);
}

#[test]
fn body_problems() {
    let mut h = Harness::new();
    h.message(1, &message_with("text/plain", "", b""), vec![]);
    let (_, rsp) = reply(one(h.drain()));
    assert_eq!(
        (rsp.status().as_u16(), rsp.reason()),
        (400, &b"Missing Message Body"[..])
    );
    h.message(
        2,
        &message_with("text/plain;charset=koi8-r", "", b"x"),
        vec![],
    );
    let (_, rsp) = reply(one(h.drain()));
    assert_eq!(rsp.status().as_u16(), 415);
    assert!(warning_text(&rsp).contains("koi8-r"));
    h.message(
        3,
        &message_with("text/plain", "", b"\xc3("),
        vec![contact(7)],
    );
    let (_, rsp) = reply(one(h.drain()));
    assert_eq!(rsp.status().as_u16(), 400);
    assert_eq!(h.im.stats().refused.bad_body, 3);
    // Other types pass unchanged.
    let cpim = b"From: <sip:101@pbx>\r\n\r\nContent-Type: text/plain\r\n\r\nhi";
    let (_, msg, _) = h.offline(4, &message_with("message/cpim", "", cpim));
    assert_eq!(
        (msg.content_type.as_str(), &msg.body[..]),
        ("message/cpim", &cpim[..])
    );
}

#[test]
fn max_forwards_zero_is_483_when_forwarding() {
    let mut h = Harness::new();
    let req = message_with("text/plain", "", b"x");
    let zero = parse_req(
        String::from_utf8(req.to_bytes().to_vec())
            .unwrap()
            .replace("Max-Forwards: 70", "Max-Forwards: 0")
            .into_bytes(),
    );
    h.message(1, &zero, vec![contact(7)]);
    assert_eq!(reply(one(h.drain())).1.status().as_u16(), 483);
    // mss itself is the destination when storing.
    let _ = h.offline(2, &zero);
}

#[test]
fn own_expires_shortens_storage() {
    let mut h = Harness::new();
    let (_, msg, _) = h.offline(1, &message_with("text/plain", "Expires: 60\r\n", b"x"));
    assert_eq!(msg.expires_at, T0_MS + 60_000);
    h.message(
        2,
        &message_with("text/plain", "Expires: 0\r\n", b"x"),
        vec![],
    );
    let (_, rsp) = reply(one(h.drain()));
    assert_eq!(rsp.status().as_u16(), 480);
    assert_eq!(h.im.stats().refused.expired, 1);
}

fn stored(id: i64, body: &str, received_at: i64) -> StoredMessage {
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
fn deliver_one(h: &mut Harness, code: u16) -> Request {
    let s = sends(h.drain());
    assert_eq!(s.len(), 1);
    let (token, req, _) = s.into_iter().next().unwrap();
    h.im.handle_response(h.now, token, &answer(&req, code, "X"));
    req
}

fn expect_load(h: &mut Harness) {
    match one(h.drain()) {
        ImOutput::Load { user, now } => assert_eq!((user.as_str(), now), ("102", h.now.unix_ms)),
        other => panic!("expected Load, got {other:?}"),
    }
}

#[test]
fn delivery_on_return_oldest_first_with_the_original() {
    let mut h = Harness::new();
    h.im.handle_user_reachable(h.now, "102", vec![contact(7)]);
    expect_load(&mut h);
    let msgs = vec![
        stored(12, "second", T0_MS - 1_000),
        stored(5, "first ü", T0_MS - 60_000),
        stored(20, "third", T0_MS - 10),
    ];
    h.im.handle_loaded(h.now, "102", Ok(msgs));
    let mut call_ids = Vec::new();
    for (id, body, at) in [
        (5, "first ü", T0_MS - 60_000),
        (12, "second", T0_MS - 1_000),
        (20, "third", T0_MS - 10),
    ] {
        let req = deliver_one(&mut h, 200);
        let hd = req.headers();
        assert_eq!(&req.body()[..], body.as_bytes());
        let from = format!("<sip:101@pbx.example.com>;tag=t{id}");
        assert_eq!(hd.get_str(&HeaderName::From).unwrap(), Some(from.as_str()));
        assert_eq!(
            hd.get_str(&HeaderName::To).unwrap(),
            Some("<sip:102@pbx.example.com>")
        );
        assert_eq!(
            hd.get_str(&HeaderName::ContentType).unwrap(),
            Some("text/plain;charset=UTF-8")
        );
        let date = hd.date().unwrap().unwrap();
        let ms = date
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        assert_eq!(ms / 1000, at / 1000);
        assert_eq!(req.uri_str().unwrap(), "sip:102@192.0.2.7:5062");
        call_ids.push(hd.call_id().unwrap().to_owned());
        // Deleted only after the 2xx, and the next one waits for the delete.
        match one(h.drain()) {
            ImOutput::Delete { id: got } => assert_eq!(got, id),
            other => panic!("{other:?}"),
        }
        h.im.handle_deleted(h.now, id, Ok(true));
    }
    call_ids.dedup();
    assert_eq!(call_ids.len(), 3);
    assert!(h.drain().is_empty());
    assert_eq!(h.im.stats().delivered, 3);
    // The store is known empty now: a refresh loads nothing.
    h.im.handle_user_reachable(h.now, "102", vec![contact(7)]);
    assert!(h.drain().is_empty());
    // Until a message is stored for them again.
    let (token, _, _) = h.offline(1, &text("new"));
    h.im.handle_stored(h.now, token, Ok(InsertOutcome::Stored(30)));
    let _ = h.drain();
    h.im.handle_user_reachable(h.now, "102", vec![contact(7)]);
    expect_load(&mut h);
}

#[test]
fn a_failure_stops_the_round_and_keeps_the_rest() {
    let mut h = Harness::new();
    h.im.handle_user_reachable(h.now, "102", vec![contact(7)]);
    expect_load(&mut h);
    h.im.handle_loaded(
        h.now,
        "102",
        Ok(vec![
            stored(1, "a", T0_MS),
            stored(2, "b", T0_MS),
            stored(3, "c", T0_MS),
        ]),
    );
    deliver_one(&mut h, 200);
    assert!(matches!(one(h.drain()), ImOutput::Delete { id: 1 }));
    h.im.handle_deleted(h.now, 1, Ok(true));
    let req = deliver_one(&mut h, 480);
    assert_eq!(&req.body()[..], b"b");
    // No delete, no further message.
    assert!(h.drain().is_empty());
    assert_eq!(h.im.stats().delivery_failures, 1);
    assert_eq!(h.im.in_flight(), 0);
    // The next registration tries again from the store.
    h.im.handle_user_reachable(h.now, "102", vec![contact(7)]);
    expect_load(&mut h);
}

#[test]
fn a_silent_contact_stops_the_round_through_the_guard() {
    let mut h = Harness::new();
    h.im.handle_user_reachable(h.now, "102", vec![contact(7)]);
    expect_load(&mut h);
    h.im.handle_loaded(h.now, "102", Ok(vec![stored(1, "a", T0_MS)]));
    assert_eq!(sends(h.drain()).len(), 1);
    assert!(h.im.poll_timeout().unwrap() <= h.now.mono + Duration::from_secs(40));
    h.advance(Duration::from_secs(41));
    h.im.handle_timeout(h.now);
    let outs = h.drain();
    assert!(
        outs.iter().all(|o| !matches!(o, ImOutput::Delete { .. })),
        "{outs:?}"
    );
    assert_eq!(h.im.stats().delivery_failures, 1);
}

#[test]
fn racing_registrations_deliver_each_message_once() {
    let mut h = Harness::new();
    h.im.handle_user_reachable(h.now, "102", vec![contact(7)]);
    h.im.handle_user_reachable(h.now, "102", vec![contact(7), contact(8)]);
    expect_load(&mut h);
    h.im.handle_loaded(
        h.now,
        "102",
        Ok(vec![stored(1, "a", T0_MS), stored(2, "b", T0_MS)]),
    );
    let mut delivered = Vec::new();
    for id in [1, 2] {
        // Both contacts get it (the second registration's contacts are used).
        let s = sends(h.drain());
        assert_eq!(s.len(), 2);
        for (token, req, _) in &s {
            h.im.handle_response(h.now, *token, &answer(req, 200, "OK"));
        }
        let outs = h.drain();
        assert_eq!(outs.len(), 1, "one delete per message: {outs:?}");
        assert!(matches!(outs[0], ImOutput::Delete { id: got } if got == id));
        delivered.push(id);
        h.im.handle_deleted(h.now, id, Ok(true));
    }
    // The second registration asks for one more round, which finds nothing left.
    expect_load(&mut h);
    h.im.handle_loaded(h.now, "102", Ok(vec![]));
    assert!(h.drain().is_empty());
    assert_eq!(delivered, vec![1, 2]);
    assert_eq!(h.im.stats().delivered, 2);
    // A delete that finds the message gone counts apart.
    let mut h = Harness::new();
    h.im.handle_user_reachable(h.now, "102", vec![contact(7)]);
    expect_load(&mut h);
    h.im.handle_loaded(h.now, "102", Ok(vec![stored(9, "a", T0_MS)]));
    deliver_one(&mut h, 200);
    let _ = h.drain();
    h.im.handle_deleted(h.now, 9, Ok(false));
    assert_eq!(h.im.stats().delivered_already_gone, 1);
}

#[test]
fn rate_limit_per_sender() {
    let mut s = settings();
    s.rate_limit = Some(RateLimit::per_second(1, 2));
    let mut h = Harness::with(s);
    for i in 0..2 {
        let _ = h.offline(i, &text("x"));
    }
    h.message(3, &text("x"), vec![]);
    let (_, rsp) = reply(one(h.drain()));
    assert_eq!(rsp.status().as_u16(), 503);
    assert_eq!(rsp.headers().retry_after().unwrap().unwrap().seconds, 1);
    assert!(warning_text(&rsp).contains("Too many messages"));
    // Another sender is not affected.
    let other = Sender::Local { user: "100".into() };
    let r = Recipient::Local {
        user: "102".into(),
        contacts: vec![],
    };
    h.im.handle_message(h.now, 4, &text("x"), other, r);
    assert!(matches!(one(h.drain()), ImOutput::Store { .. }));
    h.advance(Duration::from_secs(1));
    let _ = h.offline(5, &text("x"));
    assert_eq!(h.im.stats().refused.rate_limited, 1);
}

#[test]
fn sender_table_is_bounded_and_forgets_idle_senders() {
    let mut s = settings();
    s.max_tracked_senders = 5;
    let mut h = Harness::with(s);
    for i in 0..100 {
        let sender = Sender::Local {
            user: format!("u{i}"),
        };
        h.im.handle_message(h.now, i, &text("x"), sender, Recipient::Unknown);
        assert!(h.im.tracked_senders() <= 5);
    }
    h.advance(Duration::from_secs(11));
    h.im.handle_timeout(h.now);
    assert_eq!(h.im.tracked_senders(), 0);
}

#[test]
fn expiry_sweep_is_periodic() {
    let mut h = Harness::new();
    let first = h.im.poll_timeout().unwrap();
    assert!(first <= h.now.mono + Duration::from_secs(60));
    h.advance(Duration::from_secs(60));
    h.im.handle_timeout(h.now);
    let outs = h.drain();
    assert!(outs
        .iter()
        .any(|o| matches!(o, ImOutput::Expire { now } if *now == h.now.unix_ms)));
    h.im.handle_expired(h.now, Ok(4));
    assert_eq!(h.im.stats().expired, 4);
    // A sweep whose result never comes does not block the next one.
    h.advance(Duration::from_secs(60));
    h.im.handle_timeout(h.now);
    assert_eq!(h.drain().len(), 1);
    h.advance(Duration::from_secs(60));
    h.im.handle_timeout(h.now);
    assert_eq!(h.drain().len(), 1);
}

#[test]
fn contact_timeout_through_the_guard_stores() {
    let mut h = Harness::new();
    h.message(1, &text("x"), vec![contact(7)]);
    assert_eq!(sends(h.drain()).len(), 1);
    h.advance(Duration::from_secs(40));
    h.im.handle_timeout(h.now);
    let outs = h.drain();
    assert!(
        outs.iter().any(|o| matches!(o, ImOutput::Store { .. })),
        "{outs:?}"
    );
}

/// Plays the caller until the service has nothing more to say: answers every request with
/// the next code (200 when out), every storage operation with the next success flag.
fn play(
    h: &mut Harness,
    codes: &mut impl Iterator<Item = u16>,
    oks: &mut impl Iterator<Item = bool>,
) {
    for _ in 0..50 {
        let outs = h.drain();
        if outs.is_empty() {
            return;
        }
        for o in outs {
            match o {
                ImOutput::Send { token, request, .. } => {
                    let code = codes.next().unwrap_or(200);
                    h.im.handle_response(h.now, token, &answer(&request, code, "X"));
                }
                ImOutput::Store { token, .. } => {
                    let r = if oks.next().unwrap_or(true) {
                        Ok(InsertOutcome::Stored(1))
                    } else {
                        Err("e".into())
                    };
                    h.im.handle_stored(h.now, token, r);
                }
                ImOutput::Load { user, .. } => {
                    let r = vec![stored(1, "a", T0_MS), stored(2, "b", T0_MS)];
                    h.im.handle_loaded(h.now, &user, Ok(r));
                }
                ImOutput::Delete { id } => {
                    let r = if oks.next().unwrap_or(true) {
                        Ok(true)
                    } else {
                        Err("e".into())
                    };
                    h.im.handle_deleted(h.now, id, r);
                }
                ImOutput::Expire { .. } => h.im.handle_expired(h.now, Ok(0)),
                ImOutput::Reply { .. } => {}
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Whatever the Content-Type and body, handle_message answers or acts, never panics.
    #[test]
    fn odd_bodies_never_panic(
        ct in "[a-z/;=\"\\-]{1,30}",
        body in proptest::collection::vec(any::<u8>(), 0..300),
        online in any::<bool>(),
    ) {
        let mut h = Harness::new();
        let mut t = format!(
            "MESSAGE sip:102@pbx SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
             From: <sip:101@pbx>;tag=1\r\nTo: <sip:102@pbx>\r\nCall-ID: c\r\n\
             CSeq: 1 MESSAGE\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        ).into_bytes();
        t.extend_from_slice(&body);
        if let Ok(Message::Request(req)) = parse_datagram(Bytes::from(t)) {
            let contacts = if online { vec![contact(7)] } else { vec![] };
            h.message(1, &req, contacts);
            prop_assert_eq!(h.drain().len(), 1);
        }
    }

    /// Any order of answers, results and timeouts leaves no panic and, in the end, nothing
    /// in flight.
    #[test]
    fn random_event_orders_never_panic(
        codes in proptest::collection::vec(100u16..700, 1..12),
        store_ok in proptest::collection::vec(any::<bool>(), 1..12),
    ) {
        let mut h = Harness::new();
        h.message(1, &text("x"), vec![contact(7), contact(8)]);
        h.im.handle_user_reachable(h.now, "102", vec![contact(9)]);
        let mut codes = codes.into_iter();
        let mut oks = store_ok.into_iter().cycle();
        for _ in 0..3 {
            play(&mut h, &mut codes, &mut oks);
            // Whatever is left (a branch that only answered 1xx) is settled by the guards.
            h.advance(Duration::from_secs(120));
            h.im.handle_timeout(h.now);
        }
        play(&mut h, &mut codes, &mut oks);
        prop_assert_eq!(h.im.in_flight(), 0);
    }
}
