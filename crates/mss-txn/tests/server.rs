//! Server transactions in simulated time: Timers G, H, I, J, L and 100 Trying; request
//! retransmissions; ACK; CANCEL; RFC 2543 matching (RFC 3261 §17.2, §9.2; RFC 6026 §7.1).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use mss_sip::StatusCode;
use mss_txn::{Event, ServerTransactionId, State, TransactionId, TxnError};

/// Receives `text` and returns the id of the server transaction it created.
fn new_request(h: &mut Harness, text: &str, from: mss_sip::Flow) -> ServerTransactionId {
    h.receive(text, from);
    let ev = h.take_events();
    match &ev[..] {
        [Event::Request { id, from: f, .. }] => {
            assert_eq!(*f, from);
            *id
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn non_invite_absorbs_retransmissions_and_resends_the_last_response() {
    let mut h = Harness::new();
    let msg = request("MESSAGE", "z9hG4bKmsg", "UDP", 1);
    let id = new_request(&mut h, &msg, udp());
    h.receive(&msg, udp());
    assert!(
        h.take_sent().is_empty() && h.take_events().is_empty(),
        "absorbed in Trying"
    );
    h.txns.send_response(h.now, id, answer(&msg, 100)).unwrap();
    assert_eq!(h.txns.server_state(id), Some(State::Proceeding));
    h.receive(&msg, udp());
    let sent = h.take_sent();
    assert_eq!(sent.len(), 2);
    assert!(sent
        .iter()
        .all(|s| s.first_line() == "SIP/2.0 100 Answer" && s.to == udp()));
    h.txns.send_response(h.now, id, answer(&msg, 202)).unwrap();
    h.receive(&msg, udp());
    h.receive(&msg, udp());
    let sent = h.take_sent();
    assert_eq!(sent.len(), 3);
    assert!(sent.iter().all(|s| s.first_line() == "SIP/2.0 202 Answer"));
    assert!(
        h.take_events().is_empty(),
        "retransmissions never reach the TU"
    );
    // Completed on UDP: kept compact, by key only; a second final response is refused
    // (§17.2.2) and nothing is sent.
    assert_eq!(
        h.txns.send_response(h.now, id, answer(&msg, 500)),
        Err(TxnError::UnknownTransaction)
    );
    assert!(h.take_sent().is_empty());
    assert_eq!((h.txns.len(), h.txns.completed_len()), (1, 1));
    // Timer J: 64·T1 on UDP.
    h.run_idle();
    let (
        at,
        Event::Terminated {
            id: TransactionId::Server(s),
        },
    ) = &h.events[0]
    else {
        panic!("{:?}", h.events)
    };
    assert_eq!((at.as_millis(), *s), (32_000, id));
    assert_eq!(
        h.txns.send_response(h.now, id, answer(&msg, 200)),
        Err(TxnError::UnknownTransaction)
    );
}

#[test]
fn a_challenge_is_sent_once_and_keeps_no_transaction() {
    let mut h = Harness::new();
    let reg = request("REGISTER", "z9hG4bKreg", "UDP", 1);
    let id = new_request(&mut h, &reg, udp());
    h.txns
        .send_response_once(h.now, id, answer(&reg, 401))
        .unwrap();
    h.drain();
    let sent = h.take_sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].first_line(), "SIP/2.0 401 Answer");
    assert!(matches!(
        h.take_events()[..],
        [Event::Terminated {
            id: TransactionId::Server(s)
        }] if s == id
    ));
    assert!(h.txns.is_empty());
    assert_eq!(
        h.txns.poll_timeout(),
        None,
        "no Timer J left behind to wait 32 s"
    );
    // A retransmission is a new request for the TU (RFC 3261 §26.3.2.4).
    let again = new_request(&mut h, &reg, udp());
    h.txns
        .send_response(h.now, again, answer(&reg, 200))
        .unwrap();
    h.drain();
    h.run_idle();
    let ends: Vec<_> = h
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::Terminated { .. }))
        .collect();
    assert_eq!(ends.len(), 1, "{:?}", h.events);
    assert_eq!(ends[0].0.as_millis(), 32_000);
}

#[test]
fn an_invite_challenge_is_sent_once_and_its_ack_goes_to_the_tu() {
    let mut h = Harness::new();
    let inv = request("INVITE", "z9hG4bKinv", "UDP", 1);
    let id = new_request(&mut h, &inv, udp());
    h.txns
        .send_response_once(h.now, id, answer(&inv, 407))
        .unwrap();
    h.drain();
    assert_eq!(h.txns.server_state(id), None, "no transaction kept");
    assert!(h.txns.is_empty());
    // The ACK matches no transaction: a stray ACK for the TU, which ignores it
    // (RFC 3261 §8.2.7).
    let ack = request("ACK", "z9hG4bKinv", "UDP", 1).replace(
        "<sip:bob@biloxi.example>\n",
        "<sip:bob@biloxi.example>;tag=uas-tag\n",
    );
    h.receive(&ack, udp());
    let events = h.take_events();
    assert!(
        matches!(
        events[..],
        [Event::Terminated { id: TransactionId::Server(s) }, Event::Ack { transaction: None, .. }]
            if s == id
        ),
        "{events:?}"
    );
    h.run_idle();
    assert_eq!(
        times_ms(&h.sent, "SIP/2.0 407"),
        [0],
        "sent once, never retransmitted (Timer G)"
    );
    assert!(h.take_events().is_empty(), "no Timer H or I");
    // A retransmission of the INVITE (the 407 lost) is a new request, challenged again.
    let again = new_request(&mut h, &inv, udp());
    assert_ne!(again, id);
}

#[test]
fn a_refused_invite_still_waits_for_its_ack() {
    let mut h = Harness::new();
    let inv = request("INVITE", "z9hG4bKinv", "UDP", 1);
    let id = new_request(&mut h, &inv, udp());
    h.txns.send_response(h.now, id, answer(&inv, 486)).unwrap();
    assert_eq!(h.txns.server_state(id), Some(State::Completed));
}

#[test]
fn timer_j_is_zero_on_tcp() {
    let mut h = Harness::new();
    let msg = request("OPTIONS", "z9hG4bKopt", "TCP", 1);
    let id = new_request(&mut h, &msg, tcp());
    h.txns.send_response(h.now, id, answer(&msg, 200)).unwrap();
    h.drain();
    assert_eq!(
        h.sent[0].to,
        tcp(),
        "the response reuses the request's connection"
    );
    assert!(matches!(h.take_events()[..], [Event::Terminated { .. }]));
}

#[test]
fn invite_gets_100_trying_after_200ms_and_retransmissions_get_it_again() {
    let mut h = Harness::new();
    let inv = request("INVITE", "z9hG4bKinv", "UDP", 1);
    let id = new_request(&mut h, &inv, udp());
    h.run_for(Duration::from_millis(199));
    assert!(h.sent.is_empty());
    h.run_for(Duration::from_millis(1));
    assert_eq!(times_ms(&h.sent, "SIP/2.0 100 Trying"), [200]);
    h.receive(&inv, udp());
    assert_eq!(times_ms(&h.sent, "SIP/2.0 100 Trying"), [200, 200]);
    h.txns.send_response(h.now, id, answer(&inv, 180)).unwrap();
    h.receive(&inv, udp());
    let last = h.sent.last().unwrap();
    assert_eq!(
        last.first_line(),
        "SIP/2.0 180 Answer",
        "the most recent provisional"
    );
    assert!(h.take_events().is_empty());
}

#[test]
fn no_automatic_100_when_the_tu_answers_first() {
    let mut h = Harness::new();
    let inv = request("INVITE", "z9hG4bKfast", "UDP", 1);
    let id = new_request(&mut h, &inv, udp());
    h.run_for(Duration::from_millis(50));
    h.txns.send_response(h.now, id, answer(&inv, 180)).unwrap();
    h.run_for(Duration::from_secs(1));
    assert_eq!(h.sent.len(), 1);
    assert_eq!(h.sent[0].first_line(), "SIP/2.0 180 Answer");
}

#[test]
fn timer_g_doubles_to_t2_and_timer_h_reports_the_missing_ack() {
    let mut h = Harness::new();
    let inv = request("INVITE", "z9hG4bKnoack", "UDP", 1);
    let id = new_request(&mut h, &inv, udp());
    h.txns.send_response(h.now, id, answer(&inv, 486)).unwrap();
    h.drain();
    h.run_for(Duration::from_secs(10));
    h.receive(&inv, udp());
    h.run_idle();
    // §17.2.1: T1, 2·T1, 4·T1, T2, T2, … from the first send; plus one for the INVITE
    // retransmission at 10 s.
    assert_eq!(
        times_ms(&h.sent, "SIP/2.0 486"),
        [0, 500, 1500, 3500, 7500, 10000, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    let ev: Vec<_> = h.events.iter().map(|(at, e)| (at.as_millis(), e)).collect();
    assert!(matches!(ev[0], (32_000, Event::AckTimeout { id: a }) if *a == id));
    assert!(matches!(ev[1], (32_000, Event::Terminated { .. })));
}

#[test]
fn ack_stops_timer_g_and_timer_i_ends_confirmed() {
    let mut h = Harness::new();
    let inv = request("INVITE", "z9hG4bKack", "UDP", 1);
    let id = new_request(&mut h, &inv, udp());
    h.txns.send_response(h.now, id, answer(&inv, 404)).unwrap();
    h.drain();
    h.run_for(Duration::from_millis(600));
    let ack = request("ACK", "z9hG4bKack", "UDP", 1).replace(
        "<sip:bob@biloxi.example>\n",
        "<sip:bob@biloxi.example>;tag=uas-tag\n",
    );
    h.receive(&ack, udp());
    assert_eq!(h.txns.server_state(id), Some(State::Confirmed));
    h.receive(&ack, udp());
    h.receive(&inv, udp());
    assert!(
        h.take_events().is_empty(),
        "ACK and INVITE retransmissions absorbed"
    );
    h.run_idle();
    assert_eq!(times_ms(&h.sent, "SIP/2.0 404"), [0, 500]);
    let (at, Event::Terminated { .. }) = &h.events[0] else {
        panic!()
    };
    assert_eq!(at.as_millis(), 5_600, "Timer I = T4 after the ACK");
}

#[test]
fn timer_i_is_zero_and_no_timer_g_on_tcp() {
    let mut h = Harness::new();
    let inv = request("INVITE", "z9hG4bKacktcp", "TCP", 1);
    let id = new_request(&mut h, &inv, tcp());
    h.txns.send_response(h.now, id, answer(&inv, 404)).unwrap();
    h.drain();
    h.run_for(Duration::from_secs(5));
    assert_eq!(times_ms(&h.sent, "SIP/2.0 404"), [0]);
    h.receive(&request("ACK", "z9hG4bKacktcp", "TCP", 1), tcp());
    assert!(matches!(h.take_events()[..], [Event::Terminated { .. }]));
}

#[test]
fn accepted_absorbs_invite_passes_2xx_and_ack_and_ends_with_timer_l() {
    let mut h = Harness::new();
    let inv = request("INVITE", "z9hG4bKok", "UDP", 1);
    let id = new_request(&mut h, &inv, udp());
    assert_eq!(h.txns.accepted_len(), 0);
    h.txns.send_response(h.now, id, answer(&inv, 200)).unwrap();
    h.drain();
    assert_eq!(h.txns.server_state(id), Some(State::Accepted));
    assert_eq!(h.txns.accepted_len(), 1, "counted once in Accepted");
    h.run_for(Duration::from_millis(500));
    h.receive(&inv, udp());
    assert_eq!(
        h.sent.len(),
        1,
        "the INVITE retransmission is absorbed, 2xx not re-sent"
    );
    assert!(h.take_events().is_empty());
    // The TU retransmits its 2xx (RFC 6026 §7.1); the transaction sends each one.
    h.txns.send_response(h.now, id, answer(&inv, 200)).unwrap();
    assert!(h.txns.send_response(h.now, id, answer(&inv, 486)).is_err());
    h.drain();
    assert_eq!(
        h.txns.accepted_len(),
        1,
        "a 2xx retransmission counts no more"
    );
    assert_eq!(times_ms(&h.sent, "SIP/2.0 200"), [0, 500]);
    // The ACK for a 2xx has its own branch: no transaction, straight to the TU.
    h.receive(&request("ACK", "z9hG4bKack2xx", "UDP", 1), udp());
    assert!(matches!(
        h.take_events()[..],
        [Event::Ack {
            transaction: None,
            ..
        }]
    ));
    h.run_idle();
    let (at, Event::Terminated { .. }) = &h.events[0] else {
        panic!()
    };
    assert_eq!(at.as_millis(), 32_000, "Timer L = 64·T1");
    assert_eq!((h.txns.accepted_len(), h.txns.len()), (0, 0));
}

#[test]
fn cancel_matches_its_invite_gets_200_and_tells_the_tu() {
    let mut h = Harness::new();
    let inv = request("INVITE", "z9hG4bKcxl", "UDP", 1);
    let id = new_request(&mut h, &inv, udp());
    h.txns.send_response(h.now, id, answer(&inv, 180)).unwrap();
    h.drain();
    let cancel = request("CANCEL", "z9hG4bKcxl", "UDP", 1);
    h.receive(&cancel, udp());
    let ev = h.take_events();
    let [Event::Cancel {
        invite, request: c, ..
    }] = &ev[..]
    else {
        panic!("{ev:?}")
    };
    assert_eq!(*invite, id);
    assert_eq!(c.method(), &mss_sip::Method::Cancel);
    let ok = h.sent.last().unwrap().text.clone();
    assert!(ok.starts_with("SIP/2.0 200 OK\r\n"), "{ok}");
    assert!(ok.contains("CSeq: 1 CANCEL\r\n"));
    assert!(
        ok.contains("To: Bob <sip:bob@biloxi.example>;tag=uas-tag\r\n"),
        "§9.2 To tag"
    );
    // A retransmitted CANCEL gets the 200 again and is not passed up twice.
    h.receive(&cancel, udp());
    assert!(h.sent.last().unwrap().text.starts_with("SIP/2.0 200 OK"));
    assert!(h.take_events().is_empty());
    // The TU ends the INVITE with 487.
    h.txns.send_response(h.now, id, answer(&inv, 487)).unwrap();
    h.drain();
    assert_eq!(h.sent.last().unwrap().first_line(), "SIP/2.0 487 Answer");
    // A CANCEL retransmitted after the final response: 200 again, no event.
    h.receive(&cancel, udp());
    assert!(h.sent.last().unwrap().text.starts_with("SIP/2.0 200 OK"));
    assert!(h.take_events().is_empty());
}

#[test]
fn cancel_after_the_final_response_gets_200_without_event() {
    let mut h = Harness::new();
    let inv = request("INVITE", "z9hG4bKlate", "UDP", 1);
    let id = new_request(&mut h, &inv, udp());
    h.txns.send_response(h.now, id, answer(&inv, 486)).unwrap();
    h.receive(&request("CANCEL", "z9hG4bKlate", "UDP", 1), udp());
    assert!(
        h.take_events().is_empty(),
        "§9.2: no effect on a completed INVITE"
    );
    let ok = &h.sent.last().unwrap().text;
    assert!(ok.starts_with("SIP/2.0 200 OK\r\n"));
    assert!(ok.contains(";tag=uas-tag"));
}

#[test]
fn stray_cancel_gets_481() {
    let mut h = Harness::new();
    h.receive(&request("CANCEL", "z9hG4bKnone", "UDP", 1), udp());
    assert!(h.take_events().is_empty());
    let sent = h.take_sent();
    assert_eq!(sent.len(), 1);
    assert!(sent[0]
        .text
        .starts_with("SIP/2.0 481 Call/Transaction Does Not Exist\r\n"));
    assert!(sent[0]
        .text
        .contains("To: Bob <sip:bob@biloxi.example>;tag="));
    assert_eq!(sent[0].to, udp());
}

#[test]
fn rfc2543_requests_match_without_the_magic_cookie() {
    let mut h = Harness::new();
    // No branch at all, as an RFC 2543 client sends it.
    let inv = request("INVITE", "x", "UDP", 7).replace(";branch=x", "");
    let id = new_request(&mut h, &inv, udp());
    h.receive(&inv, udp());
    assert!(
        h.take_events().is_empty(),
        "retransmission matched by the 2543 fields"
    );
    // Another CSeq is another transaction.
    let inv8 = inv.replace("CSeq: 7 INVITE", "CSeq: 8 INVITE");
    let other = new_request(&mut h, &inv8, udp());
    assert_ne!(other, id);
    h.txns.send_response(h.now, id, answer(&inv, 486)).unwrap();
    h.drain();
    // An ACK whose To tag is not the one of our response does not match (§17.2.3).
    let ack = request("ACK", "x", "UDP", 7).replace(";branch=x", "");
    h.receive(&ack, udp());
    assert!(matches!(
        h.take_events()[..],
        [Event::Ack {
            transaction: None,
            ..
        }]
    ));
    assert_eq!(h.txns.server_state(id), Some(State::Completed));
    let ack = ack.replace(
        "<sip:bob@biloxi.example>\n",
        "<sip:bob@biloxi.example>;tag=uas-tag\n",
    );
    h.receive(&ack, udp());
    assert!(h.take_events().is_empty(), "absorbed");
    assert_eq!(h.txns.server_state(id), Some(State::Confirmed));
    // RFC 6026 §6: a cookie-less ACK that matches an Accepted transaction goes to the TU.
    h.txns
        .send_response(h.now, other, answer(&inv8, 200))
        .unwrap();
    let ack8 = ack.replace("CSeq: 7 ACK", "CSeq: 8 ACK");
    h.receive(&ack8, udp());
    let ev = h.take_events();
    assert!(
        matches!(ev[..], [Event::Ack { transaction: Some(t), .. }] if t == other),
        "{ev:?}"
    );
}

#[test]
fn rfc2543_cancel_finds_its_invite() {
    let mut h = Harness::new();
    let inv = request("INVITE", "old", "UDP", 3);
    let id = new_request(&mut h, &inv, udp());
    h.receive(&request("CANCEL", "old", "UDP", 3), udp());
    assert!(matches!(h.take_events()[..], [Event::Cancel { invite, .. }] if invite == id));
    assert!(h.sent.last().unwrap().text.starts_with("SIP/2.0 200 OK"));
}

#[test]
fn same_branch_from_another_sent_by_is_another_transaction() {
    let mut h = Harness::new();
    let a = request("OPTIONS", "z9hG4bKsame", "UDP", 1);
    let b = a.replace("pc33.atlanta.example:5060", "evil.example:5060");
    let ida = new_request(&mut h, &a, udp());
    let idb = new_request(&mut h, &b, udp());
    assert_ne!(ida, idb);
    // Sent-by compares ignoring host case.
    h.receive(
        &a.replace("pc33.atlanta.example", "PC33.Atlanta.Example"),
        udp(),
    );
    assert!(h.take_events().is_empty());
}

#[test]
fn server_transport_error_keeps_the_transaction() {
    let mut h = Harness::new();
    let inv = request("INVITE", "z9hG4bKterr", "UDP", 1);
    let id = new_request(&mut h, &inv, udp());
    h.txns.send_response(h.now, id, answer(&inv, 200)).unwrap();
    h.drain();
    h.txns
        .handle_transport_error(h.now, TransactionId::Server(id));
    h.drain();
    assert!(matches!(
        h.take_events()[..],
        [Event::TransportError { .. }]
    ));
    assert_eq!(
        h.txns.server_state(id),
        Some(State::Accepted),
        "RFC 6026 §8.8"
    );
}

#[test]
fn time_never_goes_backwards() {
    let mut h = Harness::new();
    let inv = request("INVITE", "z9hG4bKtime", "UDP", 1);
    let id = new_request(&mut h, &inv, udp());
    h.txns.send_response(h.now, id, answer(&inv, 486)).unwrap();
    h.drain();
    h.txns.handle_timeout(h.now + Duration::from_millis(500));
    h.drain();
    let sent = h.sent.len();
    h.txns.handle_timeout(h.now);
    h.txns.handle_timeout(h.now - Duration::from_millis(1));
    h.drain();
    assert_eq!(h.sent.len(), sent);
    // An input with an old `now` is clamped: the next Timer G stays after 1.5 s.
    h.receive(&inv, udp());
    assert!(h.txns.poll_timeout().unwrap() >= h.start + Duration::from_millis(1500));
}

#[test]
fn malformed_requests_are_reported_not_matched() {
    let mut h = Harness::new();
    let text = request("OPTIONS", "z9hG4bKbad", "UDP", 1).replace("CSeq: 1 OPTIONS\n", "");
    h.receive(&text, udp());
    let ev = h.take_events();
    let [Event::Invalid {
        error: TxnError::Header(e),
        message,
        ..
    }] = &ev[..]
    else {
        panic!("{ev:?}")
    };
    assert_eq!(e.header, Some(mss_sip::HeaderName::CSeq));
    assert!(message.as_request().is_some());
    assert!(h.txns.is_empty());
    // A response without a usable Via is reported the same way.
    h.receive(
        "SIP/2.0 200 OK\nTo: <sip:a@b>\nFrom: <sip:a@b>;tag=1\nCall-ID: x\nCSeq: 1 OPTIONS\n\n",
        udp(),
    );
    assert!(matches!(h.take_events()[..], [Event::Invalid { .. }]));
    assert_eq!(StatusCode::OK.as_u16(), 200);
}

/// The checked path: a new request's id comes back to the caller (no `Event::Request`),
/// a retransmission is absorbed and re-sends the last response, keys agree with
/// `for_request`.
#[test]
fn checked_requests_start_transactions_and_absorb_retransmissions() {
    let mut h = Harness::new();
    let text = request("REGISTER", "z9hG4bKchk", "UDP", 1);
    let req = parse_request(&text);
    let checked = req.check().unwrap();
    let key = mss_txn::TransactionKey::for_checked(&req, &checked).unwrap();
    assert_eq!(key, mss_txn::TransactionKey::for_request(&req).unwrap());
    let id = h
        .txns
        .handle_checked_request(h.now, &req, udp(), key.clone())
        .unwrap();
    h.drain();
    assert!(h.take_events().is_empty());
    assert_eq!(h.txns.find_server(&key), Some(id));
    h.txns.send_response(h.now, id, answer(&text, 200)).unwrap();
    h.drain();
    assert_eq!(h.take_sent().len(), 1);
    assert_eq!(h.txns.handle_checked_request(h.now, &req, udp(), key), None);
    h.drain();
    assert_eq!(h.take_sent().len(), 1, "the 200 again");
    // RFC 2543 fallback (no cookie): the same key as the unchecked path.
    let old = parse_request(&request("REGISTER", "old1", "UDP", 2));
    let checked = old.check().unwrap();
    assert_eq!(
        mss_txn::TransactionKey::for_checked(&old, &checked).unwrap(),
        mss_txn::TransactionKey::for_request(&old).unwrap()
    );
}

/// A flood cannot grow the compact Completed queue beyond `max_completed`: the oldest
/// entry ends early, and a retransmission of its request is absorbed until its Timer J.
#[test]
fn the_completed_queue_is_bounded() {
    let mut h = Harness::with_config(mss_txn::Config {
        max_completed: 2,
        ..mss_txn::Config::default()
    });
    let msgs: Vec<String> = (1..=3)
        .map(|n| request("MESSAGE", &format!("z9hG4bKflood{n}"), "UDP", n))
        .collect();
    for m in &msgs {
        let id = new_request(&mut h, m, udp());
        h.txns.send_response(h.now, id, answer(m, 202)).unwrap();
    }
    h.drain();
    h.take_sent();
    h.take_events();
    assert_eq!(h.txns.completed_len(), 2);
    assert_eq!(h.txns.completed_evicted(), 1);
    // The newest two still absorb their retransmissions; the evicted one is new again.
    h.receive(&msgs[2], udp());
    assert_eq!(h.take_sent().len(), 1);
    assert!(h.take_events().is_empty());
    // The evicted one's key is remembered until its Timer J: its retransmission is
    // absorbed, not delivered twice.
    h.receive(&msgs[0], udp());
    assert!(h.take_sent().is_empty());
    assert!(h.take_events().is_empty());
    assert_eq!(h.txns.absorbed_after_end(), 1);
}
