//! Instant messages through the whole core in simulated time: a `202` only once the message
//! is durable, delivery rounds when the recipient registers, a relay that nobody answers
//! ends in the store, a MESSAGE from a line's provider reaches the line's owner.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sim;

use std::time::Duration;

use mss_sip::{HeaderName, Method};
use mss_store::block_on;
use mss_store::Store;
use sim::{reply, Phone, Setup, Sim, DOMAIN};

fn stored(sim: &Sim, user: &str) -> usize {
    block_on(sim.store.list_messages(user, sim.now().unix_ms))
        .unwrap()
        .len()
}

#[test]
fn a_message_to_an_offline_user_is_accepted_only_once_it_is_durable() {
    let mut sim = Sim::start(Setup::default());
    let mut alice = Phone::new("100", "pw-100", "127.0.0.10:5062");
    sim.hold_store = true;
    // The challenge needs no store; the authenticated MESSAGE waits for its write.
    assert_eq!(alice.message_start(&mut sim, "101", "hello"), 407);
    let early = sim.response_to(alice.addr);
    assert!(early.is_none(), "answered before the write: {early:?}");
    assert_eq!(sim.held.len(), 1);
    sim.release_store();
    let rsp = sim.response_to(alice.addr).unwrap();
    assert_eq!(rsp.status().as_u16(), 202);
    assert_eq!(stored(&sim, "101"), 1);
}

#[test]
fn stored_messages_go_out_oldest_first_when_the_user_registers() {
    let mut sim = Sim::start(Setup::default());
    let mut alice = Phone::new("100", "pw-100", "127.0.0.10:5062");
    for body in ["first", "second"] {
        let rsp = alice.message(&mut sim, "101", body).unwrap();
        assert_eq!(rsp.status().as_u16(), 202);
    }
    assert_eq!(stored(&sim, "101"), 2);
    let mut bob = Phone::new("101", "pw-101", "127.0.0.11:5062");
    assert_eq!(bob.register(&mut sim, 300).unwrap().status().as_u16(), 200);
    for body in ["first", "second"] {
        let (to, req) = sim
            .next_request(Method::Message, Duration::from_secs(1))
            .unwrap_or_else(|| panic!("{body} not delivered"));
        assert_eq!(to.remote, bob.addr);
        assert_eq!(&req.body()[..], body.as_bytes());
        assert!(req.headers().get(&HeaderName::Date).is_some());
        let from = String::from_utf8_lossy(req.headers().get(&HeaderName::From).unwrap());
        assert!(from.contains(&format!("sip:100@{DOMAIN}")), "{from}");
        // One at a time: the next goes out only after this one's 2xx.
        assert!(sim
            .next_request(Method::Message, Duration::from_millis(100))
            .is_none());
        sim.receive(bob.addr, &reply(&req, 200, "OK", ""));
    }
    assert_eq!(stored(&sim, "101"), 0);
}

#[test]
fn a_relay_nobody_answers_is_stored_and_accepted() {
    let mut sim = Sim::start(Setup::default());
    let mut bob = Phone::new("101", "pw-101", "127.0.0.11:5062");
    assert_eq!(bob.register(&mut sim, 3600).unwrap().status().as_u16(), 200);
    let mut alice = Phone::new("100", "pw-100", "127.0.0.10:5062");
    // Bob's phone never answers: the relay times out and the message is stored instead.
    let rsp = alice.message(&mut sim, "101", "are you there?").unwrap();
    assert_eq!(rsp.status().as_u16(), 202);
    assert_eq!(stored(&sim, "101"), 1);
}

#[test]
fn an_online_recipients_2xx_is_relayed_back() {
    let mut sim = Sim::start(Setup::default());
    let mut bob = Phone::new("101", "pw-101", "127.0.0.11:5062");
    assert_eq!(bob.register(&mut sim, 3600).unwrap().status().as_u16(), 200);
    let mut alice = Phone::new("100", "pw-100", "127.0.0.10:5062");
    assert_eq!(alice.message_start(&mut sim, "101", "hi"), 407);
    let (to, relayed) = sim
        .next_request(Method::Message, Duration::from_secs(1))
        .unwrap();
    assert_eq!(to.remote, bob.addr);
    assert_eq!(&relayed.body()[..], b"hi");
    // Our Via names our address towards Bob (RFC 3261 §18.1.1), written by the service.
    let via = relayed.headers().top_via().unwrap();
    assert_eq!((via.host, via.port), ("127.0.0.1", Some(5060)));
    sim.receive(bob.addr, &reply(&relayed, 200, "OK", ""));
    let rsp = sim.response_to(alice.addr).unwrap();
    assert_eq!(rsp.status().as_u16(), 200);
    assert_eq!(stored(&sim, "101"), 0);
}

#[test]
fn a_full_store_is_a_480_in_words() {
    let mut setup = Setup::default();
    setup.im.offline_max_messages = 1;
    let mut sim = Sim::start(setup);
    let mut alice = Phone::new("100", "pw-100", "127.0.0.10:5062");
    assert_eq!(
        alice
            .message(&mut sim, "101", "one")
            .unwrap()
            .status()
            .as_u16(),
        202
    );
    let rsp = alice.message(&mut sim, "101", "two").unwrap();
    assert_eq!(rsp.status().as_u16(), 480);
    assert_eq!(rsp.reason(), b"Offline Message Store Full");
    assert!(rsp.headers().get(&HeaderName::Warning).is_some());
}

#[test]
fn a_message_from_a_lines_provider_reaches_the_owner_without_a_challenge() {
    let mut sim = Sim::start(Setup::default().line("p1", "127.0.0.2:5060", "2001", Some("101")));
    // The line registers (so mss knows where its provider is).
    let (_, first) = sim
        .next_request(Method::Register, Duration::from_secs(1))
        .unwrap();
    let contact =
        String::from_utf8_lossy(first.headers().get(&HeaderName::Contact).unwrap()).into_owned();
    sim.receive(
        "127.0.0.2:5060".parse().unwrap(),
        &reply(
            &first,
            200,
            "OK",
            &format!("Contact: {contact};expires=600\r\n"),
        ),
    );
    assert_eq!(sim.line_state(0), "online");
    let provider = "127.0.0.2:5060".parse().unwrap();
    sim.receive(provider, "MESSAGE sip:2001@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK-pm1\r\nMax-Forwards: 70\r\nFrom: <sip:+15551234@provider.test>;tag=x\r\nTo: <sip:2001@provider.test>\r\nCall-ID: pm-1\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello");
    // The owner 101 is offline: stored for it, accepted.
    let rsp = sim.response_to(provider).unwrap();
    assert_eq!(rsp.status().as_u16(), 202);
    assert_eq!(stored(&sim, "101"), 1);
}
