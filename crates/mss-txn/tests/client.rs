//! Client transactions in simulated time: Timers A, B, D, E, F, K, M, the ACK for a non-2xx
//! and the Accepted state (RFC 3261 §17.1, RFC 6026 §7.2).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use mss_sip::StatusCode;
use mss_txn::{Event, State, TransactionId, TxnError};

#[test]
fn timer_e_doubles_to_t2_and_timer_f_gives_408_at_32s() {
    let real = std::time::Instant::now();
    let mut h = Harness::new();
    let req = parse_request(&request("REGISTER", "z9hG4bKreg1", "UDP", 1));
    let id = h.txns.send_request(h.now, req, udp()).unwrap();
    h.drain();
    h.run_idle();
    // §17.1.2.2: 500 ms, 1 s, 2 s, 4 s, 4 s, … after the first send, until Timer F.
    assert_eq!(
        times_ms(&h.sent, "REGISTER"),
        [0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    let events = h.events.clone();
    assert_eq!(events.len(), 2);
    let (at, Event::Timeout { id: tid, response }) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(at.as_millis(), 32_000, "Timer F = 64·T1");
    assert_eq!(*tid, id);
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    assert!(matches!(events[1].1, Event::Terminated { id: TransactionId::Client(c) } if c == id));
    assert!(h.txns.is_empty());
    assert!(real.elapsed() < Duration::from_secs(1), "simulated time");
}

#[test]
fn timer_e_is_t2_in_proceeding() {
    let mut h = Harness::new();
    let req = parse_request(&request("MESSAGE", "z9hG4bKm1", "UDP", 1));
    let id = h.txns.send_request(h.now, req, udp()).unwrap();
    h.drain();
    h.run_for(Duration::from_millis(600));
    h.receive(&response(100, "MESSAGE", "z9hG4bKm1", "UDP", 1), udp());
    assert_eq!(h.txns.client_state(id), Some(State::Proceeding));
    h.run_for(Duration::from_millis(10_000));
    // Sent at 0 and 500 (Trying); the one armed for 1500 still fires, then T2 steps.
    assert_eq!(times_ms(&h.sent, "MESSAGE"), [0, 500, 1500, 5500, 9500]);
}

#[test]
fn no_timer_e_on_tcp_and_final_response_gives_timer_k() {
    let mut h = Harness::new();
    let req = parse_request(&request("REGISTER", "z9hG4bKtcp", "TCP", 1));
    let id = h.txns.send_request(h.now, req, tcp()).unwrap();
    h.drain();
    h.run_for(Duration::from_secs(10));
    assert_eq!(times_ms(&h.sent, "REGISTER"), [0], "reliable: no Timer E");
    assert_eq!(h.sent[0].to, tcp());
    h.receive(&response(200, "REGISTER", "z9hG4bKtcp", "TCP", 1), tcp());
    let ev = h.take_events();
    assert!(
        matches!(&ev[0], Event::Response { id: r, response } if *r == id && response.status() == StatusCode::OK)
    );
    assert!(
        matches!(ev[1], Event::Terminated { .. }),
        "Timer K is zero on TCP"
    );
}

#[test]
fn timer_k_absorbs_retransmitted_finals_for_t4_on_udp() {
    let mut h = Harness::new();
    let req = parse_request(&request("REGISTER", "z9hG4bKk", "UDP", 1));
    let id = h.txns.send_request(h.now, req, udp()).unwrap();
    h.drain();
    h.receive(&response(200, "REGISTER", "z9hG4bKk", "UDP", 1), udp());
    assert_eq!(h.take_events().len(), 1);
    assert_eq!(h.txns.client_state(id), Some(State::Completed));
    h.receive(&response(200, "REGISTER", "z9hG4bKk", "UDP", 1), udp());
    assert!(h.take_events().is_empty(), "retransmission absorbed");
    h.run_idle();
    assert_eq!(
        times_ms(&h.sent, "REGISTER"),
        [0],
        "no retransmission after the final"
    );
    assert_eq!(h.events.len(), 1);
    assert_eq!(h.events[0].0.as_millis(), 5_000, "Timer K = T4");
    // After Timer K the response matches nothing.
    h.receive(&response(200, "REGISTER", "z9hG4bKk", "UDP", 1), udp());
    assert!(matches!(
        h.take_events()[..],
        [_, Event::StrayResponse { .. }]
    ));
}

#[test]
fn timer_a_doubles_and_timer_b_times_out_a_32s_invite() {
    let real = std::time::Instant::now();
    let mut h = Harness::new();
    let req = parse_request(&request("INVITE", "z9hG4bKinv", "UDP", 1));
    let id = h.txns.send_request(h.now, req, udp()).unwrap();
    h.drain();
    h.run_idle();
    // §17.1.1.2: seven sends in 64·T1, intervals doubling without cap.
    assert_eq!(
        times_ms(&h.sent, "INVITE"),
        [0, 500, 1500, 3500, 7500, 15500, 31500]
    );
    let (at, Event::Timeout { id: tid, response }) = &h.events[0] else {
        panic!("{:?}", h.events)
    };
    assert_eq!((at.as_millis(), *tid), (32_000, id));
    assert_eq!(response.status().as_u16(), 408);
    assert!(
        !h.sent.iter().any(|s| s.first_line().starts_with("ACK")),
        "no ACK on B"
    );
    assert!(real.elapsed() < Duration::from_secs(1));
}

#[test]
fn invite_over_tcp_sends_once_and_times_out_with_b() {
    let mut h = Harness::new();
    let req = parse_request(&request("INVITE", "z9hG4bKinvtcp", "TCP", 1));
    h.txns.send_request(h.now, req, tcp()).unwrap();
    h.drain();
    h.run_idle();
    assert_eq!(times_ms(&h.sent, "INVITE"), [0]);
    assert_eq!(h.events[0].0.as_millis(), 32_000);
}

#[test]
fn provisional_stops_timer_a_and_timer_b() {
    let mut h = Harness::new();
    let req = parse_request(&request("INVITE", "z9hG4bKprov", "UDP", 1));
    let id = h.txns.send_request(h.now, req, udp()).unwrap();
    h.drain();
    h.run_for(Duration::from_millis(700));
    h.receive(&response(180, "INVITE", "z9hG4bKprov", "UDP", 1), udp());
    h.run_for(Duration::from_secs(120));
    assert_eq!(times_ms(&h.sent, "INVITE"), [0, 500]);
    assert_eq!(h.txns.client_state(id), Some(State::Proceeding));
    assert_eq!(h.events.len(), 1, "only the 180, no timeout");
}

#[test]
fn non_2xx_is_acked_inside_the_transaction_and_timer_d_is_32s_on_udp() {
    let mut h = Harness::new();
    let req = parse_request(&request("INVITE", "z9hG4bKbusy", "UDP", 5));
    let id = h.txns.send_request(h.now, req, udp()).unwrap();
    h.drain();
    h.receive(&response(486, "INVITE", "z9hG4bKbusy", "UDP", 5), udp());
    let ev = h.take_events();
    assert!(
        matches!(&ev[..], [Event::Response { response, .. }] if response.status().as_u16() == 486)
    );
    let acks: Vec<_> = h
        .sent
        .iter()
        .filter(|s| s.first_line().starts_with("ACK"))
        .collect();
    assert_eq!(acks.len(), 1);
    let ack = &acks[0].text;
    // §17.1.1.3: Request-URI, From, Call-ID and top Via of the INVITE, To of the response,
    // CSeq number of the INVITE with method ACK.
    assert!(
        ack.starts_with("ACK sip:bob@biloxi.example SIP/2.0\r\n"),
        "{ack}"
    );
    assert!(ack.contains("Via: SIP/2.0/UDP pc33.atlanta.example:5060;branch=z9hG4bKbusy\r\n"));
    assert!(ack.contains("To: Bob <sip:bob@biloxi.example>;tag=a6c85cf\r\n"));
    assert!(ack.contains("From: Alice <sip:alice@atlanta.example>;tag=1928301774\r\n"));
    assert!(ack.contains("CSeq: 5 ACK\r\n"));
    assert_eq!(
        acks[0].to,
        udp(),
        "same address, port and transport as the INVITE"
    );
    // Each retransmitted final re-sends the ACK and is not passed up.
    h.run_for(Duration::from_secs(2));
    h.receive(&response(486, "INVITE", "z9hG4bKbusy", "UDP", 5), udp());
    h.receive(&response(486, "INVITE", "z9hG4bKbusy", "UDP", 5), udp());
    assert_eq!(times_ms(&h.sent, "ACK"), [0, 2000, 2000]);
    assert!(h.take_events().is_empty());
    assert_eq!(times_ms(&h.sent, "INVITE"), [0], "Timer A stopped");
    h.run_idle();
    let (
        at,
        Event::Terminated {
            id: TransactionId::Client(c),
        },
    ) = &h.events[0]
    else {
        panic!("{:?}", h.events)
    };
    assert_eq!((at.as_millis(), *c), (32_000, id), "Timer D = 32 s");
}

#[test]
fn timer_d_is_zero_on_tcp_but_the_ack_is_still_sent() {
    let mut h = Harness::new();
    let req = parse_request(&request("INVITE", "z9hG4bKtcpbusy", "TCP", 1));
    h.txns.send_request(h.now, req, tcp()).unwrap();
    h.drain();
    h.receive(&response(603, "INVITE", "z9hG4bKtcpbusy", "TCP", 1), tcp());
    assert_eq!(times_ms(&h.sent, "ACK"), [0]);
    let ev = h.take_events();
    assert!(matches!(
        ev[..],
        [Event::Response { .. }, Event::Terminated { .. }]
    ));
    assert!(h.txns.is_empty());
}

#[test]
fn accepted_passes_retransmitted_2xx_up_until_timer_m() {
    let mut h = Harness::new();
    let req = parse_request(&request("INVITE", "z9hG4bKok", "UDP", 1));
    let id = h.txns.send_request(h.now, req, udp()).unwrap();
    h.drain();
    h.receive(&response(180, "INVITE", "z9hG4bKok", "UDP", 1), udp());
    assert_eq!(h.txns.accepted_len(), 0, "Proceeding is not Accepted");
    h.take_events();
    h.receive(&response(200, "INVITE", "z9hG4bKok", "UDP", 1), udp());
    assert_eq!(h.txns.client_state(id), Some(State::Accepted));
    assert_eq!(h.txns.accepted_len(), 1);
    assert!(
        h.sent.iter().all(|s| !s.first_line().starts_with("ACK")),
        "the TU ACKs a 2xx"
    );
    h.run_for(Duration::from_secs(4));
    h.receive(&response(200, "INVITE", "z9hG4bKok", "UDP", 1), udp());
    h.receive(&response(180, "INVITE", "z9hG4bKok", "UDP", 1), udp());
    let ev = h.take_events();
    assert_eq!(ev.len(), 2, "both 2xx, not the late 180: {ev:?}");
    assert!(ev
        .iter()
        .all(|e| matches!(e, Event::Response { id: r, response } if *r == id && response.status().is_success())));
    h.run_idle();
    assert_eq!(h.events[0].0.as_millis(), 32_000, "Timer M = 64·T1");
    assert!(matches!(h.events[0].1, Event::Terminated { .. }));
    assert_eq!(h.txns.accepted_len(), 0, "uncounted with its end");
    h.receive(&response(200, "INVITE", "z9hG4bKok", "UDP", 1), udp());
    assert!(matches!(
        h.take_events().last(),
        Some(Event::StrayResponse { .. })
    ));
}

#[test]
fn responses_match_on_branch_and_cseq_method() {
    let mut h = Harness::new();
    let req = parse_request(&request("INVITE", "z9hG4bKboth", "UDP", 1));
    let inv = h.txns.send_request(h.now, req, udp()).unwrap();
    let cancel = parse_request(&request("CANCEL", "z9hG4bKboth", "UDP", 1));
    let can = h.txns.send_request(h.now, cancel, udp()).unwrap();
    assert_ne!(inv, can);
    h.drain();
    h.receive(&response(200, "CANCEL", "z9hG4bKboth", "UDP", 1), udp());
    h.receive(&response(487, "INVITE", "z9hG4bKboth", "UDP", 1), udp());
    let ev = h.take_events();
    let ids: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Response { id, .. } => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(ids, [can, inv]);
    h.receive(&response(200, "BYE", "z9hG4bKboth", "UDP", 1), udp());
    assert!(matches!(h.take_events()[..], [Event::StrayResponse { .. }]));
}

#[test]
fn refuses_requests_it_cannot_match() {
    let mut h = Harness::new();
    let ack = parse_request(&request("ACK", "z9hG4bKack", "UDP", 1));
    assert_eq!(
        h.txns.send_request(h.now, ack, udp()),
        Err(TxnError::AckTransaction)
    );
    let nobranch = request("OPTIONS", "x", "UDP", 1).replace(";branch=x", "");
    let err = h.txns.send_request(h.now, parse_request(&nobranch), udp());
    assert_eq!(err, Err(TxnError::MissingBranch));
    let req = parse_request(&request("OPTIONS", "z9hG4bKdup", "UDP", 1));
    h.txns.send_request(h.now, req.clone(), udp()).unwrap();
    assert!(matches!(
        h.txns.send_request(h.now, req, udp()),
        Err(TxnError::DuplicateTransaction { .. })
    ));
}

#[test]
fn transport_error_terminates_a_client_transaction() {
    let mut h = Harness::new();
    let req = parse_request(&request("OPTIONS", "z9hG4bKerr", "TCP", 1));
    let id = h.txns.send_request(h.now, req, tcp()).unwrap();
    h.drain();
    let tid = h.sent[0].transaction.unwrap();
    assert_eq!(tid, TransactionId::Client(id));
    h.txns.handle_transport_error(h.now, tid);
    h.drain();
    let ev = h.take_events();
    assert!(matches!(
        ev[..],
        [Event::TransportError { .. }, Event::Terminated { .. }]
    ));
    assert!(h.txns.is_empty());
}

#[test]
fn stale_timers_of_a_reused_slot_do_not_fire() {
    let mut h = Harness::new();
    // Terminates at once (TCP, final response) with its Timer F still in the heap.
    let req = parse_request(&request("OPTIONS", "z9hG4bKold", "TCP", 1));
    h.txns.send_request(h.now, req, tcp()).unwrap();
    h.receive(&response(200, "OPTIONS", "z9hG4bKold", "TCP", 1), tcp());
    assert!(h.txns.is_empty());
    // Reuses the slot and waits in Proceeding, where no timer runs.
    let req = parse_request(&request("INVITE", "z9hG4bKnew", "TCP", 2));
    let id = h.txns.send_request(h.now, req, tcp()).unwrap();
    h.receive(&response(180, "INVITE", "z9hG4bKnew", "TCP", 2), tcp());
    h.take_events();
    h.run_idle();
    assert!(
        h.take_events().is_empty(),
        "the old Timer F entry is dropped"
    );
    assert_eq!(h.txns.client_state(id), Some(State::Proceeding));
    assert!(h.txns.poll_timeout().is_none(), "heap drained");
}

#[test]
fn timer_values_are_configurable() {
    let timers = mss_txn::Timers {
        t1: Duration::from_millis(100),
        t2: Duration::from_millis(400),
        ..mss_txn::Timers::default()
    };
    let mut h = Harness::with_config(mss_txn::Config {
        timers,
        ..mss_txn::Config::default()
    });
    let req = parse_request(&request("OPTIONS", "z9hG4bKfast", "UDP", 1));
    h.txns.send_request(h.now, req, udp()).unwrap();
    h.drain();
    h.run_idle();
    let sends = times_ms(&h.sent, "OPTIONS");
    assert_eq!(sends[..6], [0, 100, 300, 700, 1100, 1500]);
    assert_eq!(h.events[0].0.as_millis(), 6_400, "Timer F = 64·T1");
}
