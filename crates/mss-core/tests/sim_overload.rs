//! Shedding under overload through the whole core in simulated time: while store writes
//! are held (a store that fell behind), new REGISTERs past the backlog limit get a
//! stateless `503` with `Retry-After` and leave no transaction, past the higher limit they
//! get nothing; retransmissions of the REGISTERs already accepted are absorbed as before,
//! requests within a dialog are never shed; once the store catches up every accepted
//! REGISTER is answered `200` and new ones are served again. Each shed request is counted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sim;

use std::net::SocketAddr;
use std::time::Duration;

use mss_core::{OverloadLimits, ShedReason};
use mss_sip::{HeaderName, Response};
use sim::{digest_answer, Setup, Sim, DOMAIN};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn register_text(user: &str, from: SocketAddr, branch: &str, cseq: u32, auth: &str) -> String {
    format!(
        "REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bK-{branch};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@{DOMAIN}>;tag=f{user}\r\nTo: <sip:{user}@{DOMAIN}>\r\nCall-ID: reg-{user}@{from}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@{from}>\r\nExpires: 600\r\n{auth}Content-Length: 0\r\n\r\n"
    )
}

/// What mss sent to `to` right away (no time passes), if anything.
fn answer_now(sim: &mut Sim, to: SocketAddr) -> Option<Response> {
    let i = sim
        .sent
        .iter()
        .position(|s| s.to.remote == to && s.response().is_some())?;
    sim.sent.remove(i).and_then(|s| s.response().cloned())
}

/// User `user` at `from` registers: the `401` is answered; returns the text of the
/// authenticated REGISTER (its store write may be held).
fn register(sim: &mut Sim, user: &str, from: SocketAddr) -> String {
    sim.receive(from, &register_text(user, from, &format!("{user}a"), 1, ""));
    let challenge = answer_now(sim, from).expect("a challenge");
    assert_eq!(challenge.status().as_u16(), 401, "{challenge:?}");
    let auth = digest_answer(
        &challenge,
        &HeaderName::WwwAuthenticate,
        "REGISTER",
        &format!("sip:{DOMAIN}"),
        user,
        &format!("pw-{user}"),
        1,
    );
    let text = register_text(
        user,
        from,
        &format!("{user}b"),
        2,
        &format!("Authorization: {auth}\r\n"),
    );
    sim.receive(from, &text);
    text
}

fn setup(users: usize) -> Setup {
    Setup {
        users: (0..users)
            .map(|i| (format!("2{i:02}"), format!("pw-2{i:02}")))
            .collect(),
        ..Setup::default()
    }
}

const LIMITS_OFF: OverloadLimits = OverloadLimits {
    shed_backlog: 0,
    drop_backlog: 0,
    max_transactions: 0,
    retry_after_secs: 7,
};

#[test]
fn past_the_backlog_new_registers_get_503_and_leave_no_transaction() {
    let mut sim = Sim::start(setup(8));
    sim.core.set_overload_limits(OverloadLimits {
        shed_backlog: 3,
        drop_backlog: 100,
        ..LIMITS_OFF
    });
    sim.hold_store = true;
    let mut accepted = Vec::new();
    for i in 0..3 {
        let from = addr(&format!("192.0.2.{}:5060", 10 + i));
        let text = register(&mut sim, &format!("2{i:02}"), from);
        assert!(answer_now(&mut sim, from).is_none(), "the write is held");
        accepted.push((from, text));
    }
    assert_eq!(sim.core.backlog(), 3);

    // A fourth phone: shed at its first REGISTER, statelessly.
    let late = addr("192.0.2.99:5060");
    let transactions = sim.core.transaction_count();
    sim.receive(late, &register_text("203", late, "203a", 1, ""));
    let rsp = answer_now(&mut sim, late).expect("an answer");
    assert_eq!(rsp.status().as_u16(), 503);
    assert_eq!(
        rsp.headers()
            .get(&HeaderName::RetryAfter)
            .map(<[u8]>::to_vec),
        Some(b"7".to_vec())
    );
    assert_eq!(sim.core.transaction_count(), transactions, "no state kept");
    assert_eq!(sim.stats.shed_count(ShedReason::Backlog), 1);

    // Retransmissions of the accepted REGISTERs are absorbed, not shed.
    for (from, text) in &accepted {
        sim.receive(*from, text);
        assert!(answer_now(&mut sim, *from).is_none(), "absorbed");
    }
    assert_eq!(sim.stats.shed_count(ShedReason::Backlog), 1);

    // A request within a dialog is never shed (here: no such dialog, 481).
    let peer = addr("192.0.2.50:5060");
    sim.receive(
        peer,
        &format!(
            "BYE sip:200@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {peer};branch=z9hG4bK-bye\r\nMax-Forwards: 70\r\nFrom: <sip:201@{DOMAIN}>;tag=x\r\nTo: <sip:200@{DOMAIN}>;tag=y\r\nCall-ID: nodialog\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
        ),
    );
    let rsp = answer_now(&mut sim, peer).expect("an answer");
    assert_eq!(rsp.status().as_u16(), 481);

    // The store catches up: every accepted REGISTER gets its 200 …
    sim.release_store();
    for (from, _) in &accepted {
        let rsp = sim.response_to(*from).expect("a 200");
        assert_eq!(rsp.status().as_u16(), 200, "{rsp:?}");
    }
    assert_eq!(sim.core.backlog(), 0);
    // … and the phone that was turned away is served when it tries again.
    sim.advance(Duration::from_secs(7));
    register(&mut sim, "203", late);
    let rsp = sim.response_to(late).expect("a 200");
    assert_eq!(rsp.status().as_u16(), 200, "{rsp:?}");
    assert_eq!(sim.stats.shed_count(ShedReason::Backlog), 1);
}

#[test]
fn past_the_higher_limit_new_requests_are_dropped_unanswered() {
    let mut sim = Sim::start(setup(8));
    sim.core.set_overload_limits(LIMITS_OFF);
    sim.hold_store = true;
    for i in 0..4 {
        let from = addr(&format!("192.0.2.{}:5060", 10 + i));
        register(&mut sim, &format!("2{i:02}"), from);
    }
    assert_eq!(sim.core.backlog(), 4);
    sim.core.set_overload_limits(OverloadLimits {
        shed_backlog: 2,
        drop_backlog: 4,
        ..LIMITS_OFF
    });
    let late = addr("192.0.2.99:5060");
    let transactions = sim.core.transaction_count();
    for n in 0..5 {
        sim.receive(
            late,
            &register_text("205", late, &format!("d{n}"), n + 1, ""),
        );
    }
    assert!(answer_now(&mut sim, late).is_none(), "dropped unanswered");
    assert_eq!(sim.core.transaction_count(), transactions);
    assert_eq!(sim.stats.shed_count(ShedReason::BacklogDrop), 5);
    assert_eq!(sim.stats.shed_count(ShedReason::Backlog), 0);
    sim.release_store();
    assert_eq!(sim.core.backlog(), 0);
    sim.receive(late, &register_text("205", late, "after", 9, ""));
    let rsp = answer_now(&mut sim, late).expect("an answer");
    assert_eq!(rsp.status().as_u16(), 401);
}

#[test]
fn a_full_transaction_table_gets_503() {
    let mut sim = Sim::start(setup(4));
    sim.core.set_overload_limits(LIMITS_OFF);
    sim.hold_store = true;
    // Each accepted REGISTER keeps its transaction while its write is held.
    for i in 0..3 {
        let from = addr(&format!("192.0.2.{}:5060", 10 + i));
        register(&mut sim, &format!("2{i:02}"), from);
    }
    let full = limit_transactions_to_the_count(&mut sim);
    let rsp = late_register(&mut sim, "t0", 1);
    assert_eq!(rsp.status().as_u16(), 503);
    assert_eq!(sim.core.transaction_count(), full);
    assert_eq!(sim.stats.shed_count(ShedReason::Transactions), 1);
    // Once the writes are done and their transactions over, there is room again.
    sim.release_store();
    sim.advance(Duration::from_secs(40));
    let rsp = late_register(&mut sim, "t1", 2);
    assert_eq!(rsp.status().as_u16(), 401);
}

#[test]
fn completed_transactions_waiting_out_timer_j_do_not_fill_the_table() {
    let mut sim = Sim::start(setup(4));
    sim.core.set_overload_limits(LIMITS_OFF);
    // Three REGISTERs accepted and answered: their transactions wait out Timer J,
    // compact, only to absorb retransmissions.
    for i in 0..3 {
        let from = addr(&format!("192.0.2.{}:5060", 10 + i));
        register(&mut sim, &format!("2{i:02}"), from);
        let ok = answer_now(&mut sim, from).expect("the REGISTER's answer");
        assert_eq!(ok.status().as_u16(), 200, "{ok:?}");
    }
    limit_transactions_to_the_count(&mut sim);
    // A new REGISTER is handled (challenged), not refused: those are bounded by their
    // own budget and end early when over it.
    let rsp = late_register(&mut sim, "t0", 1);
    assert_eq!(rsp.status().as_u16(), 401);
    assert_eq!(sim.stats.shed_count(ShedReason::Transactions), 0);
}

/// Sets the transaction limit to the transactions the core holds now (at least the three
/// REGISTERs' own); returns that count.
fn limit_transactions_to_the_count(sim: &mut Sim) -> usize {
    let count = sim.core.transaction_count();
    assert!(count >= 3, "{count}");
    sim.core.set_overload_limits(OverloadLimits {
        max_transactions: count,
        ..LIMITS_OFF
    });
    count
}

/// A REGISTER without credentials from a newcomer, and what mss answers it right away.
fn late_register(sim: &mut Sim, branch: &str, cseq: u32) -> Response {
    let late = addr("198.51.100.1:5060");
    sim.receive(late, &register_text("203", late, branch, cseq, ""));
    answer_now(sim, late).expect("an answer")
}
