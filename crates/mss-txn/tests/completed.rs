//! Completed non-INVITE server transactions over UDP kept compact until Timer J
//! (RFC 3261 §17.2.2, §17.2.3): retransmissions answered byte for byte, expiry in order.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use mss_txn::{Event, ServerTransactionId, TransactionId};

fn start(h: &mut Harness, text: &str) -> ServerTransactionId {
    h.receive(text, udp());
    match &h.take_events()[..] {
        [Event::Request { id, .. }] => *id,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_retransmission_31_s_later_gets_the_final_response_byte_for_byte() {
    let mut h = Harness::new();
    let reg = request("REGISTER", "z9hG4bKc1", "UDP", 1);
    let id = start(&mut h, &reg);
    h.txns.send_response(h.now, id, answer(&reg, 200)).unwrap();
    h.drain();
    let first = h.take_sent();
    assert_eq!(first.len(), 1);
    assert_eq!((h.txns.len(), h.txns.completed_len()), (1, 1));
    assert_eq!(h.txns.server_state(id), None, "no slot any more");
    h.run_for(Duration::from_secs(31));
    h.receive(&reg, udp());
    let again = h.take_sent();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].text, first[0].text);
    assert_eq!(again[0].to, udp());
    assert_eq!(again[0].transaction, Some(TransactionId::Server(id)));
    assert!(h.take_events().is_empty(), "never reaches the TU");
}

/// The route the TU sets (from the top Via, and the local address the request came to)
/// serves the final response and every retransmission of it from the compact queue.
#[test]
fn the_reply_route_serves_the_response_and_its_retransmissions() {
    let mut h = Harness::new();
    let reg = request("REGISTER", "z9hG4bKr1", "UDP", 1);
    let id = start(&mut h, &reg);
    let mut via_flow = udp();
    via_flow.remote = "192.0.2.7:5071".parse().unwrap();
    let local = Some("127.0.0.1:5060".parse().unwrap());
    h.txns.set_reply_route(id, via_flow, local).unwrap();
    h.txns.send_response(h.now, id, answer(&reg, 200)).unwrap();
    h.drain();
    h.receive(&reg, udp());
    let sent = h.take_sent();
    assert_eq!(sent.len(), 2, "the response, then its retransmission");
    for s in &sent {
        assert_eq!((s.to, s.local), (via_flow, local));
    }
    assert!(
        h.txns.set_reply_route(id, udp(), None).is_err(),
        "a compact transaction takes no new route"
    );
}

#[test]
fn at_32_s_the_request_starts_a_new_transaction() {
    let mut h = Harness::new();
    let reg = request("REGISTER", "z9hG4bKc2", "UDP", 1);
    let id = start(&mut h, &reg);
    h.txns.send_response(h.now, id, answer(&reg, 200)).unwrap();
    h.drain();
    h.take_sent();
    // The request arrives exactly at Timer J, before the driver fired the timer.
    h.now += Duration::from_secs(32);
    h.receive(&reg, udp());
    let ev = h.take_events();
    assert!(
        matches!(&ev[..], [Event::Request { id: new, .. }] if *new != id),
        "{ev:?}"
    );
    assert!(h.take_sent().is_empty());
    // The old entry ends without touching the new transaction's key.
    h.txns.handle_timeout(h.now);
    h.drain();
    assert!(matches!(
        &h.take_events()[..],
        [Event::Terminated { id: TransactionId::Server(s) }] if *s == id
    ));
    assert_eq!((h.txns.len(), h.txns.completed_len()), (1, 0));
    h.receive(&reg, udp());
    assert!(
        h.take_events().is_empty(),
        "absorbed by the new one in Trying"
    );
}

#[test]
fn the_queue_drains_in_completion_order() {
    let mut h = Harness::new();
    let mut ids = Vec::new();
    for n in 0..5u32 {
        let reg = request("REGISTER", &format!("z9hG4bKq{n}"), "UDP", n + 1);
        let id = start(&mut h, &reg);
        h.txns.send_response(h.now, id, answer(&reg, 200)).unwrap();
        ids.push(id);
        h.run_for(Duration::from_secs(1));
    }
    h.drain();
    assert_eq!(h.txns.completed_len(), 5);
    h.run_idle();
    let ended: Vec<_> = h
        .events
        .iter()
        .map(|(at, e)| match e {
            Event::Terminated {
                id: TransactionId::Server(s),
            } => (at.as_secs(), *s),
            other => panic!("{other:?}"),
        })
        .collect();
    let expected: Vec<_> = (0..5u64).map(|n| 32 + n).zip(ids).collect();
    assert_eq!(ended, expected);
    assert!(h.txns.is_empty());
    assert_eq!(h.txns.poll_timeout(), None);
}

#[test]
fn a_challenge_sent_once_is_not_kept() {
    let mut h = Harness::new();
    let reg = request("REGISTER", "z9hG4bKc3", "UDP", 1);
    let id = start(&mut h, &reg);
    h.txns
        .send_response_once(h.now, id, answer(&reg, 401))
        .unwrap();
    h.drain();
    assert!(h.txns.is_empty());
    assert_eq!(h.txns.completed_len(), 0);
}
