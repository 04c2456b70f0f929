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

/// Completes a new transaction for `text` with `code`; returns its id and the server
/// transactions that ended meanwhile.
fn complete(
    h: &mut Harness,
    text: &str,
    code: u16,
) -> (ServerTransactionId, Vec<ServerTransactionId>) {
    let id = start(h, text);
    h.txns.send_response(h.now, id, answer(text, code)).unwrap();
    h.drain();
    (id, ended(&h.take_events()))
}

/// The server transactions that ended, in order.
fn ended(events: &[Event]) -> Vec<ServerTransactionId> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Terminated {
                id: TransactionId::Server(s),
            } => Some(*s),
            _ => None,
        })
        .collect()
}

/// The byte budget holds after every completion: the oldest Completed REGISTERs end
/// early, the newest still answer their retransmissions, an ended one's retransmission is
/// absorbed until its Timer J, and only then a new request (which the registrar answers
/// correctly, see its `a_retransmission_after_timer_j_is_a_stale_challenge`).
#[test]
fn the_byte_budget_ends_the_oldest_registers_first() {
    let mut h = Harness::new();
    let regs: Vec<String> = (0..10u32)
        .map(|n| request("REGISTER", &format!("z9hG4bKb{n}"), "UDP", n + 1))
        .collect();
    let (first, _) = complete(&mut h, &regs[0], 200);
    let charge = h.txns.completed_bytes();
    assert!(
        charge > 200,
        "an entry is charged its 200 and more: {charge}"
    );
    let budget = 3 * charge + charge / 2;
    h.txns.set_completed_budget(budget);
    let mut ids = vec![first];
    let mut gone = Vec::new();
    for reg in &regs[1..] {
        let (id, ended) = complete(&mut h, reg, 200);
        ids.push(id);
        gone.extend(ended);
        assert!(h.txns.completed_bytes() <= budget);
        h.run_for(Duration::from_millis(100));
    }
    assert_eq!(h.txns.completed_len(), 3);
    assert_eq!(h.txns.completed_evicted(), 7);
    assert_eq!(gone, ids[..7].to_vec());
    h.take_sent();
    // The newest answers its retransmission byte for byte, without the TU.
    h.receive(&regs[9], udp());
    let sent = h.take_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].first_line(), "SIP/2.0 200 Answer");
    assert!(h.take_events().is_empty());
    // The oldest is gone, its key remembered until its Timer J: a retransmission is
    // absorbed, neither answered nor passed up.
    h.receive(&regs[0], udp());
    assert!(h.take_sent().is_empty());
    assert!(h.take_events().is_empty());
    assert_eq!(h.txns.absorbed_after_end(), 1);
    // After its Timer J the request is new again.
    h.now += Duration::from_secs(32);
    h.receive(&regs[0], udp());
    assert!(h
        .take_events()
        .iter()
        .any(|e| matches!(e, Event::Request { id, .. } if *id != first)));
    assert_eq!(h.txns.absorbed_after_end(), 1);
}

/// The budget never ends a MESSAGE (a second delivery) or other non-REGISTER
/// transaction early: they stay for Timer J, bounded by `max_completed` alone, and their
/// bytes count, so that REGISTERs end at once while they fill the budget.
#[test]
fn the_byte_budget_ends_no_message() {
    let mut h = Harness::with_config(mss_txn::Config {
        completed_budget: 0,
        ..mss_txn::Config::default()
    });
    let msgs: Vec<String> = (0..3u32)
        .map(|n| request("MESSAGE", &format!("z9hG4bKm{n}"), "UDP", n + 1))
        .collect();
    for m in &msgs {
        assert!(complete(&mut h, m, 202).1.is_empty());
    }
    let reg = request("REGISTER", "z9hG4bKr0", "UDP", 1);
    let (reg_id, gone) = complete(&mut h, &reg, 200);
    assert_eq!(h.txns.completed_len(), 3);
    assert_eq!(h.txns.completed_evicted(), 1);
    assert_eq!(gone, vec![reg_id]);
    h.take_sent();
    h.run_for(Duration::from_secs(31));
    for m in &msgs {
        h.receive(m, udp());
    }
    let sent = h.take_sent();
    assert_eq!(sent.len(), 3);
    assert!(sent.iter().all(|s| s.first_line() == "SIP/2.0 202 Answer"));
    assert!(
        h.take_events().is_empty(),
        "no MESSAGE reaches the TU twice"
    );
    h.run_idle();
    assert!(h.txns.is_empty());
    assert_eq!(h.txns.completed_bytes(), 0);
}

/// `max_completed` still counts both kinds and ends the oldest of either.
#[test]
fn the_count_cap_ends_the_oldest_of_either_kind() {
    let mut h = Harness::with_config(mss_txn::Config {
        max_completed: 2,
        ..mss_txn::Config::default()
    });
    let msg = request("MESSAGE", "z9hG4bKc-m", "UDP", 1);
    let reg1 = request("REGISTER", "z9hG4bKc-r1", "UDP", 1);
    let reg2 = request("REGISTER", "z9hG4bKc-r2", "UDP", 2);
    let (m, _) = complete(&mut h, &msg, 202);
    h.run_for(Duration::from_secs(1));
    let (r1, _) = complete(&mut h, &reg1, 200);
    h.run_for(Duration::from_secs(1));
    assert_eq!(complete(&mut h, &reg2, 200).1, vec![m]);
    h.run_for(Duration::from_secs(1));
    let msg2 = msg.replace("z9hG4bKc-m", "z9hG4bKc-m2");
    assert_eq!(complete(&mut h, &msg2, 202).1, vec![r1]);
    assert_eq!(h.txns.completed_len(), 2);
}
