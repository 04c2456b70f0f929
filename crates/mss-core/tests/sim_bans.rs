//! Bans through the whole core in simulated time: a guesser is banned after `ban_after`
//! failed answers and its packets are then dropped unread; at an office behind one
//! address only the guessed user is blocked; made-up and borrowed nonces count for
//! nothing (a spoofed source cannot get its victim banned); bans end and double for
//! repeat offenders; the rate limit drops a flood and bans its repeated excess; the admin
//! view lists and lifts bans; the table stays bounded under a flood of new sources.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sim;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use mss_admin::{BanReasonView, BanScopeView};
use mss_core::Dropped;
use mss_services::bans::{BanReason, BanScope};
use mss_services::BanSettings;
use mss_sip::{Flow, HeaderName, Response};
use sim::{digest_answer, Phone, Setup, Sim, DOMAIN};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn register_text(user: &str, from: SocketAddr, n: u32, auth: &str) -> String {
    format!(
        "REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bK-g{n};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@{DOMAIN}>;tag=g{n}\r\nTo: <sip:{user}@{DOMAIN}>\r\nCall-ID: guess-{n}@{from}\r\nCSeq: 1 REGISTER\r\nContact: <sip:{user}@{from}>\r\n{auth}Content-Length: 0\r\n\r\n"
    )
}

/// A guesser's try, as svcrack makes it: a REGISTER from `from`, then the answer to its
/// `401` with `password`. The status of mss's answer to the answer, `None` when mss said
/// nothing (to either).
fn guess(sim: &mut Sim, from: SocketAddr, user: &str, password: &str, n: u32) -> Option<u16> {
    sim.receive(from, &register_text(user, from, n * 2, ""));
    let challenge = sim.response_to(from)?;
    assert_eq!(challenge.status().as_u16(), 401);
    let auth = answer(&challenge, user, password);
    sim.receive(from, &register_text(user, from, n * 2 + 1, &auth));
    sim.response_to(from).map(|r| r.status().as_u16())
}

/// The Authorization header line answering `challenge` as `user` with `password`.
fn answer(challenge: &Response, user: &str, password: &str) -> String {
    let value = digest_answer(
        challenge,
        &HeaderName::WwwAuthenticate,
        "REGISTER",
        &format!("sip:{DOMAIN}"),
        user,
        password,
        1,
    );
    format!("Authorization: {value}\r\n")
}

fn setup() -> Setup {
    let mut s = Setup::default();
    s.users.push(("102".into(), "pw-102".into()));
    s
}

#[test]
fn a_guesser_is_banned_after_ban_after_failures_and_its_packets_are_then_dropped() {
    let mut sim = Sim::start(setup());
    let guesser = addr("203.0.113.7:5070");
    for n in 0..10 {
        assert_eq!(
            guess(&mut sim, guesser, "101", &format!("guess{n}"), n),
            Some(401)
        );
    }
    assert_eq!(sim.stats.bans_issued(BanScope::Address, BanReason::Auth), 1);
    let bans = sim.core.bans(sim.now());
    assert_eq!(bans.len(), 1, "{bans:?}");
    let b = &bans[0];
    assert_eq!(b.address, "203.0.113.7");
    assert_eq!(
        (b.scope, b.reason, b.failures),
        (BanScopeView::Address, BanReasonView::Auth, 10)
    );
    assert_eq!(b.user.as_deref(), Some("101"));
    assert_eq!(b.until - b.since, 900);
    // Now even the right password gets no answer at all, from any port of the address.
    assert_eq!(guess(&mut sim, guesser, "101", "pw-101", 20), None);
    assert_eq!(
        guess(&mut sim, addr("203.0.113.7:9999"), "101", "pw-101", 21),
        None
    );
    assert!(sim.core.registrations(sim.now()).is_empty());
    assert!(sim.stats.dropped(Dropped::Banned) >= 2);
    // Everyone else goes on.
    let mut phone = Phone::new("100", "pw-100", "198.51.100.10:5062");
    assert_eq!(
        phone.register(&mut sim, 120).unwrap().status().as_u16(),
        200
    );
}

#[test]
fn guesses_over_message_count_too() {
    let mut sim = Sim::start(setup());
    let mut guesser = Phone::new("100", "not-it", "203.0.113.8:5070");
    for _ in 0..10 {
        let challenged = guesser.message_start(&mut sim, "101", "hi");
        assert_eq!(challenged, 407);
        let rsp = sim.response_to(guesser.addr).unwrap();
        assert_eq!(rsp.status().as_u16(), 407);
    }
    assert_eq!(sim.core.bans(sim.now()).len(), 1);
    assert_eq!(guesser.message_start(&mut sim, "101", "hi"), 0, "dropped");
}

#[test]
fn at_an_office_only_the_guessed_user_is_blocked() {
    let mut sim = Sim::start(setup());
    // A phone of the office registers through the office's one public address.
    let mut phone = Phone::new("100", "pw-100", "192.0.2.10:5062");
    assert_eq!(phone.register(&mut sim, 60).unwrap().status().as_u16(), 200);
    // A guesser behind the same address, another port.
    let guesser = addr("192.0.2.10:6000");
    for n in 0..10 {
        assert_eq!(
            guess(&mut sim, guesser, "101", &format!("guess{n}"), n),
            Some(401)
        );
    }
    assert_eq!(sim.stats.bans_issued(BanScope::User, BanReason::Auth), 1);
    assert_eq!(sim.stats.bans_issued(BanScope::Address, BanReason::Auth), 0);
    let bans = sim.core.bans(sim.now());
    assert_eq!(bans.len(), 1);
    assert_eq!(bans[0].scope, BanScopeView::User);
    assert_eq!(bans[0].user.as_deref(), Some("101"));
    // 101 from the office: challenged again, its answer not even checked.
    assert_eq!(guess(&mut sim, guesser, "101", "pw-101", 30), Some(401));
    // The office's phones go on: the phone refreshes, and another user registers.
    sim.advance(Duration::from_secs(30));
    assert_eq!(phone.register(&mut sim, 60).unwrap().status().as_u16(), 200);
    let mut other = Phone::new("102", "pw-102", "192.0.2.10:5064");
    assert_eq!(other.register(&mut sim, 60).unwrap().status().as_u16(), 200);
    // From anywhere else 101 is not blocked.
    assert_eq!(
        guess(&mut sim, addr("198.51.100.20:5060"), "101", "pw-101", 31),
        Some(200)
    );
    // The block ends after ban_time.
    sim.advance(Duration::from_secs(900));
    assert_eq!(
        phone.register(&mut sim, 3600).unwrap().status().as_u16(),
        200
    );
    assert_eq!(guess(&mut sim, guesser, "101", "pw-101", 32), Some(200));
    assert!(sim.core.bans(sim.now()).is_empty());
}

#[test]
fn made_up_and_borrowed_nonces_count_for_nothing() {
    let mut sim = Sim::start(setup());
    // Made-up nonces, over and over.
    let liar = addr("198.51.100.66:5060");
    for n in 0..50 {
        let auth = format!("Authorization: Digest username=\"101\", realm=\"{DOMAIN}\", nonce=\"made-up-{n}\", uri=\"sip:{DOMAIN}\", response=\"00112233445566778899aabbccddeeff\", algorithm=MD5\r\n");
        sim.receive(liar, &register_text("101", liar, n, &auth));
        assert_eq!(sim.response_to(liar).unwrap().status().as_u16(), 401);
    }
    // A spoofer gets real nonces at its own address and sends wrong answers with them
    // from its victim's address: neither is banned.
    let spoofer = addr("198.51.100.77:5060");
    let victim = addr("192.0.2.99:5060");
    for n in 0..50 {
        sim.receive(spoofer, &register_text("101", spoofer, 1000 + n, ""));
        let challenge = sim.response_to(spoofer).unwrap();
        let auth = answer(&challenge, "101", "guess");
        sim.receive(victim, &register_text("101", victim, 2000 + n, &auth));
        assert_eq!(sim.response_to(victim).unwrap().status().as_u16(), 401);
    }
    assert!(sim.core.bans(sim.now()).is_empty());
    let mut phone = Phone::new("100", "pw-100", "192.0.2.99:5062");
    assert_eq!(
        phone.register(&mut sim, 120).unwrap().status().as_u16(),
        200
    );
}

#[test]
fn bans_end_and_double_for_repeat_offenders_and_the_admin_lifts_them() {
    let mut sim = Sim::start(setup());
    let guesser = addr("203.0.113.9:5070");
    for n in 0..10 {
        guess(&mut sim, guesser, "100", "x", n);
    }
    assert_eq!(guess(&mut sim, guesser, "100", "x", 10), None);
    sim.advance(Duration::from_secs(901));
    assert_eq!(
        guess(&mut sim, guesser, "100", "x", 11),
        Some(401),
        "the ban ended"
    );
    for n in 12..21 {
        guess(&mut sim, guesser, "100", "x", n);
    }
    let bans = sim.core.bans(sim.now());
    assert_eq!((bans[0].offence, bans[0].until - bans[0].since), (2, 1800));
    sim.advance(Duration::from_secs(1000));
    assert_eq!(
        guess(&mut sim, guesser, "100", "x", 22),
        None,
        "still banned"
    );
    // The admin lifts it: everything from the address is handled again, and the offence
    // is forgotten.
    assert!(sim.core.lift_ban(sim.now(), guesser.ip()));
    assert!(
        !sim.core.lift_ban(sim.now(), guesser.ip()),
        "nothing left to lift"
    );
    assert_eq!(guess(&mut sim, guesser, "100", "pw-100", 23), Some(200));
    assert_eq!(sim.stats.active_bans(BanScope::Address), 0);
}

#[test]
fn the_rate_limit_drops_a_flood_and_bans_its_repeated_excess() {
    let mut sim = Sim::start(setup());
    let flooder = addr("203.0.113.50:5060");
    let options = |n: u32| {
        format!("OPTIONS sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {flooder};branch=z9hG4bK-o{n};rport\r\nMax-Forwards: 70\r\nFrom: <sip:x@{DOMAIN}>;tag=o\r\nTo: <sip:{DOMAIN}>\r\nCall-ID: o-{n}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
    };
    // 1,000 requests a second for 12 seconds.
    let mut answered = 0;
    for n in 0..12_000 {
        sim.receive(flooder, &options(n));
        if n % 100 == 99 {
            sim.advance(Duration::from_millis(100));
        }
        while let Some(i) = sim.sent.iter().position(|s| s.to.remote == flooder) {
            sim.sent.remove(i);
            answered += 1;
        }
    }
    // The first second: a burst of 200, then 100 a second until the tenth second over
    // the limit bans the address.
    assert!((1000..1300).contains(&answered), "{answered}");
    assert!(sim.stats.dropped(Dropped::RateLimit) > 8000);
    assert!(sim.stats.dropped(Dropped::Banned) > 0);
    let bans = sim.core.bans(sim.now());
    assert_eq!(
        (bans[0].reason, bans[0].failures),
        (BanReasonView::Rate, 10)
    );
}

#[test]
fn the_table_stays_bounded_under_a_million_new_sources() {
    let mut s = setup();
    s.bans = BanSettings {
        max_sources: 1024,
        ..BanSettings::default()
    };
    let mut sim = Sim::start(s);
    let guesser = addr("203.0.113.7:5070");
    for n in 0..10 {
        guess(&mut sim, guesser, "101", "x", n);
    }
    let mut phone = Phone::new("100", "pw-100", "192.0.2.10:5062");
    assert_eq!(
        phone.register(&mut sim, 3600).unwrap().status().as_u16(),
        200
    );
    let junk = Bytes::from_static(b"\x00");
    for n in 0..1_000_000u32 {
        let from = SocketAddr::from((std::net::Ipv4Addr::from(0x0a00_0000 + n), 5060));
        sim.receive_bytes(Flow::udp(from), junk.clone());
        if n % 100_000 == 0 {
            assert!(sim.core.ban_counts(sim.now()).tracked <= 1024);
        }
    }
    let counts = sim.core.ban_counts(sim.now());
    assert!(counts.tracked <= 1024, "{counts:?}");
    assert_eq!(counts.addresses, 1, "the ban is kept");
    assert_eq!(guess(&mut sim, guesser, "101", "pw-101", 99), None);
    // The trusted office too: a guesser there blocks only the guessed user.
    for n in 0..10 {
        guess(&mut sim, addr("192.0.2.10:6000"), "101", "x", 100 + n);
    }
    assert_eq!(sim.core.ban_counts(sim.now()).users, 1);
    assert_eq!(
        phone.register(&mut sim, 3600).unwrap().status().as_u16(),
        200
    );
}
