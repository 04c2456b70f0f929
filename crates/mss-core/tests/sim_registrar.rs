//! The registrar through the whole core in simulated time: a REGISTER's `200` waits for
//! the store, a failed write is a `500`, expired bindings are swept, bindings survive a
//! restart, and what no service takes gets its answer from one fallback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sim;

use std::time::Duration;

use sim::{Phone, Setup, Sim, DOMAIN};

#[test]
fn the_200_leaves_only_once_the_binding_is_durable() {
    let mut sim = Sim::start(Setup::default());
    let mut phone = Phone::new("100", "pw-100", "127.0.0.10:5062");
    sim.hold_store = true;
    assert!(
        phone.register(&mut sim, 120).is_none(),
        "no answer before the write"
    );
    assert_eq!(sim.held.len(), 1);
    assert!(sim.core.registrations(sim.now()).is_empty());
    sim.release_store();
    let ok = sim.response_to(phone.addr).unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let regs = sim.core.registrations(sim.now());
    assert_eq!(regs.len(), 1);
    assert_eq!(regs[0].user, "100");
}

#[test]
fn a_failed_write_is_a_500_and_memory_stays_as_it_was() {
    let mut sim = Sim::start(Setup::default());
    let mut phone = Phone::new("100", "pw-100", "127.0.0.10:5062");
    sim.fail_next_store = true;
    let rsp = phone.register(&mut sim, 120).unwrap();
    assert_eq!(rsp.status().as_u16(), 500);
    assert!(rsp.headers().retry_after().unwrap().is_some());
    assert!(sim.core.registrations(sim.now()).is_empty());
}

#[test]
fn expired_bindings_are_swept_in_one_batched_delete() {
    let mut sim = Sim::start(Setup::default());
    let mut a = Phone::new("100", "pw-100", "127.0.0.10:5062");
    let mut b = Phone::new("101", "pw-101", "127.0.0.11:5062");
    assert_eq!(a.register(&mut sim, 10).unwrap().status().as_u16(), 200);
    assert_eq!(b.register(&mut sim, 10).unwrap().status().as_u16(), 200);
    assert_eq!(sim.core.registrations(sim.now()).len(), 2);
    sim.advance(Duration::from_secs(20));
    assert!(sim.core.registrations(sim.now()).is_empty());
    let deletes = sim
        .store_log
        .iter()
        .filter(|o| *o == "DeleteExpiredBindings")
        .count();
    assert_eq!(deletes, 1, "{:?}", sim.store_log);
}

#[test]
fn registrations_survive_a_restart() {
    let mut sim = Sim::start(Setup::default());
    let mut phone = Phone::new("101", "pw-101", "127.0.0.11:5062");
    assert_eq!(
        phone.register(&mut sim, 3600).unwrap().status().as_u16(),
        200
    );
    let sim = sim.restart(Duration::from_secs(10));
    let regs = sim.core.registrations(sim.now());
    assert_eq!(regs.len(), 1);
    assert_eq!(regs[0].contact, "sip:101@127.0.0.11:5062");
}

#[test]
fn what_no_service_takes_gets_the_fallback_answers() {
    let mut sim = Sim::start(Setup::default());
    let from = "127.0.0.20:5070".parse().unwrap();
    // An INVITE without credentials: challenged (`407`), as every call of a local user.
    sim.receive(from, &format!("INVITE sip:101@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.20:5070;branch=z9hG4bK-i1;rport\r\nMax-Forwards: 70\r\nFrom: <sip:100@{DOMAIN}>;tag=a\r\nTo: <sip:101@{DOMAIN}>\r\nCall-ID: call-1\r\nCSeq: 1 INVITE\r\nContact: <sip:100@127.0.0.20:5070>\r\nContent-Length: 0\r\n\r\n"));
    let rsp = sim.response_to(from).unwrap();
    assert_eq!(rsp.status().as_u16(), 407);
    // Its ACK (RFC 3261 §17.1.1.3) stops the retransmissions of the 407.
    let to_tag = rsp.headers().to().unwrap().tag().unwrap().to_owned();
    sim.receive(from, &format!("ACK sip:101@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.20:5070;branch=z9hG4bK-i1;rport\r\nMax-Forwards: 70\r\nFrom: <sip:100@{DOMAIN}>;tag=a\r\nTo: <sip:101@{DOMAIN}>;tag={to_tag}\r\nCall-ID: call-1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"));
    // A CANCEL that matches no transaction (RFC 3261 §9.2).
    sim.receive(from, &format!("CANCEL sip:101@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.20:5070;branch=z9hG4bK-nothing;rport\r\nMax-Forwards: 70\r\nFrom: <sip:100@{DOMAIN}>;tag=a\r\nTo: <sip:101@{DOMAIN}>\r\nCall-ID: call-2\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n"));
    let rsp = sim.response_to(from).unwrap();
    assert_eq!(rsp.status().as_u16(), 481);
    // OPTIONS to us, and to a foreign domain.
    sim.receive(from, &format!("OPTIONS sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.20:5070;branch=z9hG4bK-o1;rport\r\nMax-Forwards: 70\r\nFrom: <sip:100@{DOMAIN}>;tag=a\r\nTo: <sip:{DOMAIN}>\r\nCall-ID: o-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"));
    assert_eq!(sim.response_to(from).unwrap().status().as_u16(), 200);
    sim.receive(from, "OPTIONS sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.20:5070;branch=z9hG4bK-o2;rport\r\nMax-Forwards: 70\r\nFrom: <sip:100@pbx.test>;tag=a\r\nTo: <sip:example.com>\r\nCall-ID: o-2\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(sim.response_to(from).unwrap().status().as_u16(), 404);
    // A stray ACK and a stray response: nothing at all.
    sim.receive(from, &format!("ACK sip:101@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.20:5070;branch=z9hG4bK-a1;rport\r\nMax-Forwards: 70\r\nFrom: <sip:100@{DOMAIN}>;tag=a\r\nTo: <sip:101@{DOMAIN}>;tag=b\r\nCall-ID: call-3\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"));
    sim.receive(from, "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-none\r\nFrom: <sip:a@pbx.test>;tag=1\r\nTo: <sip:b@pbx.test>;tag=2\r\nCall-ID: stray\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n");
    assert!(sim.response_to(from).is_none());
    // A broken request whose headers can be read: a stateless 400 naming the problem.
    sim.receive(from, &format!("OPTIONS sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.20:5070;branch=z9hG4bK-b1;rport\r\nMax-Forwards: 70\r\nFrom: <sip:100@{DOMAIN}>;tag=a\r\nTo: <sip:{DOMAIN}>\r\nCall-ID: b-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 99\r\n\r\n"));
    assert_eq!(sim.response_to(from).unwrap().status().as_u16(), 400);
}

#[test]
fn every_rfc4475_message_gets_an_answer_or_silence_and_nothing_is_left_behind() {
    let mut sim = Sim::start(Setup::default());
    let from = "127.0.0.30:5080".parse().unwrap();
    for case in mss_testdata::torture::cases() {
        sim.receive_bytes(mss_sip::Flow::udp(from), case.bytes.clone());
    }
    sim.forget_sent();
    // Every transaction ends (Timer J, Timer H, …) and nothing stays waiting.
    sim.advance(Duration::from_secs(64));
    assert_eq!(sim.core.transaction_count(), 0, "{:?}", sim.core);
}

#[test]
fn failed_answers_are_counted_by_why() {
    let mut sim = Sim::start(Setup::default());
    let mut guesser = Phone::new("100", "not-the-password", "127.0.0.12:5062");
    let rsp = guesser.register(&mut sim, 120).unwrap();
    assert_eq!(rsp.status().as_u16(), 401);
    let text = sim.metrics.render();
    assert!(
        text.contains("mss_auth_failures_total{reason=\"credentials\"} 1\n"),
        "{text}"
    );
    // A first REGISTER without credentials is no failure, and a right answer neither.
    let mut phone = Phone::new("101", "pw-101", "127.0.0.13:5062");
    assert_eq!(
        phone.register(&mut sim, 120).unwrap().status().as_u16(),
        200
    );
    let text = sim.metrics.render();
    assert!(
        text.contains("mss_auth_failures_total{reason=\"credentials\"} 1\n"),
        "{text}"
    );
}

/// How many binding writes the store was asked for.
fn binding_writes(sim: &Sim) -> usize {
    sim.store_log
        .iter()
        .filter(|o| *o == "ApplyBindingChanges")
        .count()
}

/// Within Timer J a retransmitted REGISTER gets its `200` again from the completed
/// transaction (RFC 3261 §17.2.2), without a second binding write.
#[test]
fn a_retransmitted_register_gets_its_200_again() {
    let mut sim = Sim::start(Setup::default());
    let mut phone = Phone::new("100", "pw-100", "127.0.0.10:5062");
    let ok = phone.register(&mut sim, 120).unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(binding_writes(&sim), 1);
    sim.advance(Duration::from_secs(2));
    sim.forget_sent();
    sim.receive(phone.addr, &phone.last_register.clone());
    let again = sim.response_to(phone.addr).unwrap();
    assert_eq!(again.status().as_u16(), 200);
    assert_eq!(binding_writes(&sim), 1);
}

/// Once the completed-transaction budget ended a REGISTER's transaction early (here at
/// once: a budget of 0), a retransmission within Timer J is absorbed: no answer, no second
/// binding write.
#[test]
fn a_retransmission_after_the_budget_ended_its_transaction_is_absorbed() {
    let mut sim = Sim::start(Setup::default());
    sim.core.set_completed_budget(0);
    let mut phone = Phone::new("100", "pw-100", "127.0.0.10:5062");
    let ok = phone.register(&mut sim, 120).unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    sim.advance(Duration::from_secs(2));
    sim.forget_sent();
    sim.receive(phone.addr, &phone.last_register.clone());
    assert!(sim.response_to(phone.addr).is_none());
    assert_eq!(binding_writes(&sim), 1, "{:?}", sim.store_log);
}

/// A retransmission that arrives after Timer J (here of a transaction the budget ended at
/// once) is a new request whose credentials (the same nonce and `nc`) are a replay
/// (RFC 7616 §3.4): a `401` with `stale=true`, no second binding write. Answering it with
/// the fresh nonce registers as any refresh does: no `401` loop.
#[test]
fn a_retransmission_after_timer_j_is_a_stale_challenge() {
    let mut sim = Sim::start(Setup::default());
    sim.core.set_completed_budget(0);
    let mut phone = Phone::new("100", "pw-100", "127.0.0.10:5062");
    let ok = phone.register(&mut sim, 120).unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(binding_writes(&sim), 1);
    sim.advance(Duration::from_secs(33));
    sim.forget_sent();
    sim.receive(phone.addr, &phone.last_register.clone());
    let stale = sim.response_to(phone.addr).unwrap();
    assert_eq!(stale.status().as_u16(), 401);
    let challenge = stale
        .headers()
        .get(&mss_sip::HeaderName::WwwAuthenticate)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default();
    assert!(challenge.contains("stale=true"), "{challenge}");
    assert_eq!(binding_writes(&sim), 1, "{:?}", sim.store_log);
    assert_eq!(sim.core.registrations(sim.now()).len(), 1);
    // The client's next attempt goes through.
    let again = phone.register(&mut sim, 120).unwrap();
    assert_eq!(again.status().as_u16(), 200);
    assert_eq!(binding_writes(&sim), 2);
    assert_eq!(sim.core.registrations(sim.now()).len(), 1);
}
