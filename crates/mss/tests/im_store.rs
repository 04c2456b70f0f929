//! The offline message store of the real `mss` over raw UDP on loopback (DESIGN §3
//! "Instant messages", §5): limits, bad bodies, senders, the sender's rate, a contact that
//! fails (stored, delivered at the next registration), and a `202` that survives SIGKILL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod im_common;

use std::thread::JoinHandle;
use std::time::Duration;

use common::{wait_for, Peer, Server};
use im_common::{
    call_id, header, message_text, messages, proxy_authorization, reason, send_message, start,
    stored, transact, Draft, Ua,
};
use mss_sip::{HeaderName, Request, Response};

const TEXT: Option<&str> = Some("text/plain;charset=UTF-8");

/// User 101 registered on a raw UDP agent, and a MESSAGE with `body` from 100 sent to it
/// on a thread: the agent, the MESSAGE as relayed to it, and the thread, which returns
/// the sender's final response once the agent answers.
fn relayed_to_101(s: &Server, body: &'static [u8]) -> (Ua, Request, JoinHandle<Response>) {
    let ua = Ua::new("101");
    ua.register(s.sip());
    let sender = Peer::new();
    let peer_sip = s.sip();
    let handle =
        std::thread::spawn(move || send_message(peer_sip, &sender, "100", "101", TEXT, body));
    let req = ua
        .recv_request(Duration::from_secs(10))
        .expect("no relayed MESSAGE");
    (ua, req, handle)
}

#[test]
fn the_eleventh_message_is_refused_and_the_length_limit_counts_characters() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), "");
    let sender = Peer::new();
    for n in 1..=10 {
        let rsp = send_message(
            s.sip(),
            &sender,
            "100",
            "101",
            TEXT,
            format!("note {n}").as_bytes(),
        );
        assert_eq!(rsp.status().as_u16(), 202, "message {n}: {rsp:?}");
    }
    assert_eq!(stored(&s, "101"), 10);
    let full = send_message(s.sip(), &sender, "100", "101", TEXT, b"one too many");
    assert_eq!(full.status().as_u16(), 480, "{full:?}");
    assert_eq!(reason(&full), "Offline Message Store Full");
    assert!(header(full.headers(), &HeaderName::Warning).is_some());
    assert_eq!(stored(&s, "101"), 10);

    // 200 characters is one too many to store (offline_max_chars = 199); 199 characters
    // of which most take two or three bytes in UTF-8 are stored.
    let long: String = "é".repeat(100) + &"€".repeat(100);
    assert_eq!(long.chars().count(), 200);
    let rsp = send_message(s.sip(), &sender, "100", "102", TEXT, long.as_bytes());
    assert_eq!(rsp.status().as_u16(), 413, "{rsp:?}");
    assert!(header(rsp.headers(), &HeaderName::Warning).is_some());
    let fits: String = "é".repeat(100) + &"€".repeat(99);
    let rsp = send_message(s.sip(), &sender, "100", "102", TEXT, fits.as_bytes());
    assert_eq!(rsp.status().as_u16(), 202, "{rsp:?}");
    let listed = messages(&s, "102");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["body"], fits.as_str());
    assert_eq!(listed[0]["from"], "<sip:100@pbx.test>;tag=t2");

    let (_, metrics) = s.get("/metrics");
    assert!(
        metrics.contains("mss_messages_total{outcome=\"stored\"} 11\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mss_messages_total{outcome=\"refused\"} 2\n"),
        "{metrics}"
    );
}

#[test]
fn bad_bodies_and_senders_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), "");
    let peer = Peer::new();
    let no_body = send_message(s.sip(), &peer, "100", "101", TEXT, b"");
    assert_eq!(no_body.status().as_u16(), 400, "{no_body:?}");
    let charset = send_message(
        s.sip(),
        &peer,
        "100",
        "101",
        Some("text/plain;charset=x-unheard-of"),
        b"hello",
    );
    assert_eq!(charset.status().as_u16(), 415, "{charset:?}");
    let unknown = send_message(s.sip(), &peer, "100", "999", TEXT, b"hello");
    assert_eq!(unknown.status().as_u16(), 404, "{unknown:?}");

    // Credentials of 100 with From 101: a spoofed sender is never stored.
    let cid = call_id("spoof");
    let d = Draft {
        from: "101",
        to: "102",
        content_type: TEXT,
        body: b"hi",
    };
    let first = transact(&peer, s.sip(), &message_text(&peer, &d, &cid, 1, ""));
    assert_eq!(first.status().as_u16(), 407);
    let auth = proxy_authorization(&first, "102", "100");
    let spoofed = transact(&peer, s.sip(), &message_text(&peer, &d, &cid, 2, &auth));
    assert_eq!(spoofed.status().as_u16(), 403, "{spoofed:?}");
    assert_eq!(reason(&spoofed), "From Does Not Match Credentials");

    // A foreign domain is answered 404 before any challenge: mss relays nowhere.
    let me = peer.addr();
    let foreign = format!("MESSAGE sip:alice@example.com SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-foreign;rport\r\nMax-Forwards: 70\r\nFrom: <sip:100@pbx.test>;tag=f\r\nTo: <sip:alice@example.com>\r\nCall-ID: foreign-1\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi");
    assert_eq!(
        transact(&peer, s.sip(), foreign.as_bytes())
            .status()
            .as_u16(),
        404
    );
    assert!(im_common::counts(&s).is_empty());
}

#[test]
fn a_202_survives_sigkill_and_is_delivered_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = start(dir.path(), "");
    let sender = Peer::new();
    let rsp = send_message(s.sip(), &sender, "100", "102", TEXT, "kept ✓".as_bytes());
    assert_eq!(rsp.status().as_u16(), 202, "{rsp:?}");
    // Killed right after the 202: no shutdown, no final flush.
    s.kill9();
    s.spawn();
    assert_eq!(stored(&s, "102"), 1);

    let ua = Ua::new("102");
    ua.register(s.sip());
    let req = ua
        .recv_request(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no delivery after the restart:\n{}", s.stderr()));
    assert_eq!(req.method().as_str(), "MESSAGE");
    assert_eq!(req.body().as_ref(), "kept ✓".as_bytes());
    assert_eq!(
        header(req.headers(), &HeaderName::From).as_deref(),
        Some("<sip:100@pbx.test>;tag=t2")
    );
    assert_eq!(
        header(req.headers(), &HeaderName::ContentType).as_deref(),
        TEXT
    );
    assert!(header(req.headers(), &HeaderName::Date).is_some());
    ua.answer(s.sip(), &req, 200, "OK");
    assert!(
        wait_for(Duration::from_secs(5), || (stored(&s, "102") == 0)
            .then_some(()))
        .is_some(),
        "the delivered message is still stored"
    );
}

#[test]
fn an_online_user_gets_the_message_and_the_sender_its_200() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), "");
    let (ua, req, handle) = relayed_to_101(&s, b"live one");
    assert_eq!(req.body().as_ref(), b"live one");
    // Our Via is on top, with the address mss sends from (RFC 3261 §18.1.1).
    let via = header(req.headers(), &HeaderName::Via).unwrap();
    assert!(
        via.starts_with(&format!("SIP/2.0/UDP {};", s.sip())),
        "{via}"
    );
    ua.answer(s.sip(), &req, 200, "OK");
    let rsp = handle.join().unwrap();
    assert_eq!(rsp.status().as_u16(), 200, "{rsp:?}");
    assert!(im_common::counts(&s).is_empty());
}

#[test]
fn a_contact_that_answers_480_gets_the_message_later() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), "");
    let (ua, req, handle) = relayed_to_101(&s, b"busy now");
    ua.answer(s.sip(), &req, 480, "Temporarily Unavailable");
    // Every contact failed with 480: stored, and the sender is told 202.
    let rsp = handle.join().unwrap();
    assert_eq!(rsp.status().as_u16(), 202, "{rsp:?}");
    assert_eq!(stored(&s, "101"), 1);
    // The next registration delivers it.
    ua.register(s.sip());
    let again = ua
        .recv_request(Duration::from_secs(10))
        .expect("no delivery after the next REGISTER");
    assert_eq!(again.body().as_ref(), b"busy now");
    ua.answer(s.sip(), &again, 200, "OK");
    assert!(wait_for(Duration::from_secs(5), || (stored(&s, "101") == 0)
        .then_some(()))
    .is_some());
}

#[test]
fn a_sender_over_its_rate_is_told_when_to_retry() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::Server::start_with(
        dir.path(),
        "digest_algorithms = md5\n",
        "[user:100]\npassword = pw-100\n[user:101]\npassword = pw-101\n[im]\nrate_limit_per_minute = 2\n",
    );
    let sender = Peer::new();
    for n in 0..2 {
        let rsp = send_message(s.sip(), &sender, "100", "101", TEXT, b"ok");
        assert_eq!(rsp.status().as_u16(), 202, "message {n}: {rsp:?}");
    }
    let limited = send_message(s.sip(), &sender, "100", "101", TEXT, b"too fast");
    assert_eq!(limited.status().as_u16(), 503, "{limited:?}");
    let retry: u32 = header(limited.headers(), &HeaderName::RetryAfter)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After: {limited:?}"));
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(stored(&s, "101"), 2);
}
