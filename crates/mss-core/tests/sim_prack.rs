//! Reliable provisional responses (RFC 3262) through the whole core in simulated time: mss
//! sends its own reliable `18x` to a caller that asks for them (its RSeq, retransmitted
//! until the PRACK, one at a time, the `2xx` waiting for the PRACK of an offer, `500` after
//! 64·T1 without one), PRACKs a callee's reliable `18x` (and stops when the callee refuses
//! PRACK with `405`), and answers PRACKs that match nothing `481`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sim;

use std::time::Duration;

use mss_sip::{Method, Response};
use sim::calls::{
    answer, assert_clean, device_answer_with as device_answer, device_request_with,
    header_named as header, registered, request_to, response_to, Caller, SDP_A, SDP_B,
};
use sim::{reply, Setup, Sim};

fn rseq(rsp: &Response) -> u32 {
    header(rsp.headers(), "RSeq").parse().expect("an RSeq")
}

/// The caller's PRACK for `rsp` (RAck: its RSeq, our INVITE's CSeq).
fn prack(sim: &mut Sim, alice: &mut Caller, rseq: u32) -> Response {
    let rack = format!("RAck: {rseq} {} INVITE\r\n", alice.invite_cseq);
    alice.send_with(sim, "PRACK", &rack, "");
    response_to(sim, alice.addr, Method::Prack).expect("an answer to the PRACK")
}

#[test]
fn a_caller_that_requires_100rel_gets_each_18x_reliably_one_at_a_time() {
    let mut sim = Sim::start(Setup::default());
    let dev = registered(&mut sim, "101", "pw-101", "127.0.0.11:5062");
    let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
    alice.call(&mut sim, "101", "Require: 100rel\r\n", SDP_A);
    let inv = request_to(&mut sim, dev, Method::Invite).expect("INVITE to the device");
    assert_eq!(header(inv.headers(), "Supported"), "100rel, timer");
    assert!(
        !header(inv.headers(), "Require").contains("100rel"),
        "not imposed on the callee"
    );
    sim.receive(dev, &device_answer(&inv, dev, 180, "d1", "", ""));
    let ringing = alice.response(&mut sim, 101).unwrap();
    assert_eq!(ringing.status().as_u16(), 180);
    assert!(header(ringing.headers(), "Require").contains("100rel"));
    let first = rseq(&ringing);
    assert!((1..1u32 << 31).contains(&first));
    alice.learn(&ringing);
    // Not acknowledged: sent again at T1 with the same RSeq.
    sim.advance(Duration::from_millis(600));
    let again = alice.response(&mut sim, 101).expect("the 180 again");
    assert_eq!(rseq(&again), first);
    // The 183 waits behind the unacknowledged 180 (RFC 3262 §3).
    sim.receive(dev, &device_answer(&inv, dev, 183, "d1", "", SDP_B));
    sim.advance(Duration::from_millis(100));
    assert!(
        !sim.sent
            .iter()
            .any(|s| s.response().is_some_and(|r| r.status().as_u16() == 183)),
        "a second reliable 18x before the PRACK of the first"
    );
    // A PRACK for an RSeq never sent: 481, nothing acknowledged.
    assert_eq!(
        prack(&mut sim, &mut alice, first + 7).status().as_u16(),
        481
    );
    assert_eq!(prack(&mut sim, &mut alice, first).status().as_u16(), 200);
    let progress = alice.response(&mut sim, 183).unwrap();
    assert_eq!(progress.status().as_u16(), 183);
    assert_eq!(rseq(&progress), first + 1, "RSeq one higher");
    assert_eq!(progress.body().as_ref(), SDP_B.as_bytes());
    // The 180 is no longer sent again.
    sim.advance(Duration::from_secs(5));
    assert!(
        !sim.sent
            .iter()
            .any(|s| s.response().is_some_and(|r| r.status().as_u16() == 180)),
        "the 180 still retransmitted after its PRACK"
    );
    // The same PRACK twice: the second matches nothing any more.
    assert_eq!(prack(&mut sim, &mut alice, first).status().as_u16(), 481);
    // The 200 waits for the PRACK of the 183, which carried a session description.
    sim.receive(dev, &device_answer(&inv, dev, 200, "d1", "", SDP_B));
    sim.advance(Duration::from_millis(100));
    assert!(
        !sim.sent.iter().any(|s| s.to.remote == alice.addr
            && s.response().is_some_and(|r| r.status().as_u16() == 200
                && r.headers().cseq().unwrap().method == Method::Invite)),
        "the 2xx went before the PRACK of the offer"
    );
    assert_eq!(
        prack(&mut sim, &mut alice, first + 1).status().as_u16(),
        200
    );
    let ok = alice.response(&mut sim, 200).unwrap();
    assert_eq!(ok.headers().cseq().unwrap().method, Method::Invite);
    alice.learn(&ok);
    alice.ack(&mut sim);
    assert!(request_to(&mut sim, dev, Method::Ack).is_some());
    alice.send_with(&mut sim, "BYE", "", "");
    let bye = request_to(&mut sim, dev, Method::Bye).unwrap();
    sim.receive(dev, &reply(&bye, 200, "OK", ""));
    assert_clean(&mut sim);
}

#[test]
fn a_caller_that_only_supports_100rel_gets_early_media_reliably_and_ringing_as_before() {
    let mut sim = Sim::start(Setup::default());
    let dev = registered(&mut sim, "101", "pw-101", "127.0.0.11:5062");
    let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
    alice.call(&mut sim, "101", "Supported: 100rel\r\n", SDP_A);
    let inv = request_to(&mut sim, dev, Method::Invite).unwrap();
    sim.receive(dev, &device_answer(&inv, dev, 180, "d1", "", ""));
    let ringing = alice.response(&mut sim, 101).unwrap();
    assert_eq!(
        header(ringing.headers(), "RSeq"),
        "",
        "a 180 without SDP is not reliable"
    );
    sim.receive(dev, &device_answer(&inv, dev, 183, "d1", "", SDP_B));
    let progress = alice.response(&mut sim, 101).unwrap();
    assert_eq!(progress.status().as_u16(), 183);
    assert!(header(progress.headers(), "Require").contains("100rel"));
    alice.learn(&progress);
    assert_eq!(
        prack(&mut sim, &mut alice, rseq(&progress))
            .status()
            .as_u16(),
        200
    );
    sim.receive(dev, &device_answer(&inv, dev, 200, "d1", "", SDP_B));
    let ok = alice.response(&mut sim, 200).unwrap();
    alice.learn(&ok);
    alice.ack(&mut sim);
    alice.send_with(&mut sim, "BYE", "", "");
    let bye = request_to(&mut sim, dev, Method::Bye).unwrap();
    sim.receive(dev, &reply(&bye, 200, "OK", ""));
    assert_clean(&mut sim);
}

#[test]
fn no_prack_within_64_t1_fails_the_call_with_500_and_cancels_the_callee() {
    let mut sim = Sim::start(Setup::default());
    let dev = registered(&mut sim, "101", "pw-101", "127.0.0.11:5062");
    let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
    alice.call(&mut sim, "101", "Require: 100rel\r\n", SDP_A);
    let inv = request_to(&mut sim, dev, Method::Invite).unwrap();
    sim.receive(dev, &device_answer(&inv, dev, 180, "d1", "", ""));
    let failed = sim
        .wait_for(Duration::from_secs(40), |s| {
            let r = s.response().filter(|_| s.to.remote == alice.addr)?;
            (r.status().as_u16() >= 200).then(|| r.clone())
        })
        .expect("a final answer to the caller");
    assert_eq!(failed.status().as_u16(), 500);
    assert!(
        sim.elapsed() >= Duration::from_secs(32),
        "{:?}",
        sim.elapsed()
    );
    let cancel = request_to(&mut sim, dev, Method::Cancel).expect("the callee is cancelled");
    sim.receive(dev, &reply(&cancel, 200, "OK", ""));
    sim.receive(dev, &device_answer(&inv, dev, 487, "d1", "", ""));
    alice.learn(&failed);
    alice.ack_failure(&mut sim);
    assert_clean(&mut sim);
}

#[test]
fn the_callees_reliable_18x_is_pracked_once_and_relayed_once() {
    let mut sim = Sim::start(Setup::default());
    let dev = registered(&mut sim, "101", "pw-101", "127.0.0.11:5062");
    let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
    alice.call(&mut sim, "101", "", SDP_A);
    let inv = request_to(&mut sim, dev, Method::Invite).unwrap();
    let reliable = device_answer(
        &inv,
        dev,
        183,
        "d1",
        "Require: 100rel\r\nRSeq: 77\r\n",
        SDP_B,
    );
    sim.receive(dev, &reliable);
    let prack = request_to(&mut sim, dev, Method::Prack).expect("mss PRACKs the callee");
    assert_eq!(header(prack.headers(), "RAck"), "77 1 INVITE");
    assert_eq!(prack.headers().to().unwrap().tag(), Some("d1"));
    let progress = alice.response(&mut sim, 101).unwrap();
    assert_eq!(progress.status().as_u16(), 183);
    assert_eq!(
        header(progress.headers(), "RSeq"),
        "",
        "the caller did not ask for 100rel"
    );
    // The callee's retransmission (its PRACK crossed it): no new PRACK, nothing relayed.
    sim.receive(dev, &reliable);
    let first_cseq = prack.headers().cseq().unwrap().seq;
    let another = sim.wait_for(Duration::from_secs(2), |s| {
        s.request()
            .filter(|r| *r.method() == Method::Prack)
            .filter(|r| r.headers().cseq().unwrap().seq != first_cseq)
            .cloned()
    });
    assert!(another.is_none(), "a second PRACK: {another:?}");
    assert!(
        alice.response(&mut sim, 101).is_none(),
        "the 183 relayed twice"
    );
    sim.receive(dev, &reply(&prack, 200, "OK", ""));
    sim.forget_sent();
    // Out of order (RSeq 79 after 77): not acknowledged, not processed.
    let skipped = device_answer(&inv, dev, 180, "d1", "Require: 100rel\r\nRSeq: 79\r\n", "");
    sim.receive(dev, &skipped);
    assert!(request_to(&mut sim, dev, Method::Prack).is_none());
    sim.receive(dev, &device_answer(&inv, dev, 200, "d1", "", SDP_B));
    let ok = alice.response(&mut sim, 200).unwrap();
    alice.learn(&ok);
    alice.ack(&mut sim);
    let ack = request_to(&mut sim, dev, Method::Ack).unwrap();
    assert_eq!(
        ack.headers().cseq().unwrap().seq,
        1,
        "the ACK names the INVITE, not the PRACK"
    );
    alice.send_with(&mut sim, "BYE", "", "");
    let bye = request_to(&mut sim, dev, Method::Bye).unwrap();
    sim.receive(dev, &reply(&bye, 200, "OK", ""));
    assert_clean(&mut sim);
}

#[test]
fn a_provider_that_answers_prack_405_keeps_the_call_and_gets_no_more_pracks() {
    let mut sim = Sim::start(Setup::default());
    let dev = registered(&mut sim, "101", "pw-101", "127.0.0.11:5062");
    let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
    alice.call(&mut sim, "101", "", SDP_A);
    let inv = request_to(&mut sim, dev, Method::Invite).unwrap();
    sim.receive(
        dev,
        &device_answer(&inv, dev, 180, "d1", "Require: 100rel\r\nRSeq: 1\r\n", ""),
    );
    let prack = request_to(&mut sim, dev, Method::Prack).unwrap();
    sim.receive(dev, &reply(&prack, 405, "Method Not Allowed", ""));
    assert_eq!(
        alice.response(&mut sim, 101).unwrap().status().as_u16(),
        180
    );
    sim.receive(
        dev,
        &device_answer(
            &inv,
            dev,
            183,
            "d1",
            "Require: 100rel\r\nRSeq: 2\r\n",
            SDP_B,
        ),
    );
    assert!(
        request_to(&mut sim, dev, Method::Prack).is_none(),
        "PRACK after a 405"
    );
    assert_eq!(
        alice.response(&mut sim, 101).unwrap().status().as_u16(),
        183
    );
    sim.receive(dev, &device_answer(&inv, dev, 200, "d1", "", SDP_B));
    let ok = alice.response(&mut sim, 200).unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    alice.learn(&ok);
    alice.ack(&mut sim);
    assert!(request_to(&mut sim, dev, Method::Ack).is_some());
    alice.send_with(&mut sim, "BYE", "", "");
    let bye = request_to(&mut sim, dev, Method::Bye).unwrap();
    sim.receive(dev, &reply(&bye, 200, "OK", ""));
    assert_clean(&mut sim);
}

#[test]
fn bad_pracks_get_400_or_481_and_leave_nothing() {
    let mut sim = Sim::start(Setup::default());
    let dev = registered(&mut sim, "101", "pw-101", "127.0.0.11:5062");
    let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
    // Outside any call.
    alice.target_user = "101".into();
    alice.remote_tag = "nosuchtag".into();
    alice.send_with(&mut sim, "PRACK", "RAck: 1 1 INVITE\r\n", "");
    assert_eq!(
        response_to(&mut sim, alice.addr, Method::Prack)
            .unwrap()
            .status()
            .as_u16(),
        481
    );
    alice.cseq = 0;
    alice.call(&mut sim, "101", "Require: 100rel\r\n", SDP_A);
    let invite_branch = alice.branch;
    let inv = request_to(&mut sim, dev, Method::Invite).unwrap();
    sim.receive(dev, &device_answer(&inv, dev, 180, "d1", "", ""));
    let ringing = alice.response(&mut sim, 101).unwrap();
    alice.learn(&ringing);
    let n = rseq(&ringing);
    for (rack, status) in [
        ("", 400),
        ("RAck: garbage\r\n", 400),
        ("RAck: 99999999999 1 INVITE\r\n", 400),
        (&*format!("RAck: {n} 99 INVITE\r\n"), 481),
        (&*format!("RAck: {n} {} BYE\r\n", alice.invite_cseq), 481),
    ] {
        alice.send_with(&mut sim, "PRACK", rack, "");
        let rsp = response_to(&mut sim, alice.addr, Method::Prack).unwrap();
        assert_eq!(rsp.status().as_u16(), status, "{rack:?}");
    }
    // The caller gives up.
    let cancel = format!(
        "CANCEL sip:101@{} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-c100-{};rport\r\nMax-Forwards: 70\r\nFrom: \"User 100\" <sip:100@{}>;tag=c100\r\nTo: <sip:101@{}>\r\nCall-ID: {}\r\nCSeq: {} CANCEL\r\nContent-Length: 0\r\n\r\n",
        sim::DOMAIN, alice.addr, invite_branch, sim::DOMAIN, sim::DOMAIN, alice.call_id, alice.invite_cseq
    );
    sim.receive(alice.addr, &cancel);
    let cancel_b = request_to(&mut sim, dev, Method::Cancel).expect("CANCEL to the device");
    sim.receive(dev, &reply(&cancel_b, 200, "OK", ""));
    sim.receive(dev, &device_answer(&inv, dev, 487, "d1", "", ""));
    let last = alice.response(&mut sim, 300).unwrap();
    assert_eq!(last.status().as_u16(), 487);
    alice.ack(&mut sim);
    assert_clean(&mut sim);
}

/// What a simulated device does with a request mss sent it, at random: reliable and
/// unreliable `18x` (with RSeq that are right, repeated or skipped), `200` with or without
/// a session timer, `422`, failures, silence; PRACKs answered `200` or `405`.
fn react(
    sim: &mut Sim,
    rng: &mut rand::rngs::StdRng,
    to: std::net::SocketAddr,
    req: &mss_sip::Request,
    tag: &str,
    rseq: &mut u32,
) {
    use rand::Rng;
    let roll: u8 = rng.gen_range(0..14);
    let mut reliable = |rng: &mut rand::rngs::StdRng| {
        *rseq += rng.gen_range(0..3);
        format!("Require: 100rel\r\nRSeq: {rseq}\r\n")
    };
    let text = match req.method() {
        Method::Invite => match roll {
            0..=1 => Some(device_answer(req, to, 180, tag, "", "")),
            2..=3 => {
                let extra = reliable(rng);
                Some(device_answer(req, to, 183, tag, &extra, SDP_B))
            }
            4 => {
                let extra = reliable(rng);
                Some(device_answer(req, to, 180, tag, &extra, ""))
            }
            5..=6 => Some(device_answer(req, to, 200, tag, "", SDP_B)),
            7..=8 => Some(device_answer(
                req,
                to,
                200,
                tag,
                "Session-Expires: 90;refresher=uas\r\nRequire: timer\r\n",
                SDP_B,
            )),
            9 => Some(device_answer(req, to, 422, tag, "Min-SE: 120\r\n", "")),
            10 => Some(device_answer(req, to, 486, tag, "", "")),
            _ => None,
        },
        Method::Prack => match roll {
            0..=7 => Some(reply(req, 200, "OK", "")),
            8..=10 => Some(reply(req, 405, "Method Not Allowed", "")),
            _ => None,
        },
        Method::Cancel => (roll < 10).then(|| reply(req, 200, "OK", "")),
        Method::Ack => None,
        _ => (roll < 11).then(|| reply(req, 200, "OK", "Session-Expires: 90;refresher=uac\r\n")),
    };
    if let Some(text) = text {
        sim.receive(to, &text);
    }
}

/// Random interleavings with both extensions in play (reliable 18x both ways, right and
/// wrong PRACKs, session timers on either leg, refreshes answered or not, 422s, hang-ups,
/// silence): once everybody stops, every call, dialog, session timer and transaction ends.
#[test]
fn no_sequence_with_100rel_and_session_timers_leaves_anything_behind() {
    use rand::{Rng, SeedableRng};
    for seed in 0..150u64 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut sim = Sim::start(Setup::default());
        let d1 = registered(&mut sim, "101", "pw-101", "127.0.0.11:5062");
        let d2 = registered(&mut sim, "101", "pw-101", "127.0.0.12:5062");
        let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
        let extra = match rng.gen_range(0..4) {
            0 => "Require: 100rel\r\nSupported: timer\r\nSession-Expires: 90\r\n",
            1 => "Supported: 100rel, timer\r\nSession-Expires: 120;refresher=uac\r\n",
            2 => "Supported: 100rel\r\nAllow: INVITE, ACK, BYE, UPDATE, PRACK\r\n",
            _ => "",
        };
        alice.call(&mut sim, "101", extra, SDP_A);
        let (mut r1, mut r2) = (rng.gen_range(1..1000), rng.gen_range(1..1000));
        let mut answered = false;
        let mut last_rseq: Option<u32> = None;
        for _ in 0..rng.gen_range(3..25) {
            let sent: Vec<sim::Sent> = sim.sent.drain(..).collect();
            for s in sent {
                match (&s.message, s.to.remote) {
                    (mss_sip::Message::Request(r), to) if to == d1 => {
                        react(&mut sim, &mut rng, to, r, "d1", &mut r1);
                    }
                    (mss_sip::Message::Request(r), to) if to == d2 => {
                        react(&mut sim, &mut rng, to, r, "d2", &mut r2);
                    }
                    (mss_sip::Message::Request(r), to) if to == alice.addr => {
                        let roll = rng.gen_range(0..10);
                        if roll < 8 && *r.method() != Method::Ack {
                            let extra = "Session-Expires: 90;refresher=uac\r\n";
                            sim.receive(to, &reply(r, 200, "OK", extra));
                        }
                    }
                    (mss_sip::Message::Response(r), to) if to == alice.addr => {
                        let code = r.status().as_u16();
                        let invite = r.headers().cseq().unwrap().method == Method::Invite;
                        if invite
                            && (101..300).contains(&code)
                            && r.headers().to().unwrap().tag().is_some()
                        {
                            alice.learn(r);
                        }
                        if invite && (200..300).contains(&code) {
                            answered = true;
                        }
                        if let Ok(n) = header(r.headers(), "RSeq").parse::<u32>() {
                            last_rseq = Some(n);
                        }
                    }
                    _ => {}
                }
            }
            match rng.gen_range(0..12) {
                0 if answered => alice.ack(&mut sim),
                1 if answered => {
                    alice.send_with(&mut sim, "BYE", "", "");
                }
                2 if answered => {
                    alice.send_with(
                        &mut sim,
                        "UPDATE",
                        "Supported: timer\r\nSession-Expires: 90\r\n",
                        "",
                    );
                }
                3..=5 => {
                    if let Some(n) = last_rseq {
                        let n = if rng.gen_range(0..4) == 0 {
                            n.wrapping_add(5)
                        } else {
                            n
                        };
                        let rack = format!("RAck: {n} {} INVITE\r\n", alice.invite_cseq);
                        alice.send_with(&mut sim, "PRACK", &rack, "");
                    }
                }
                _ => {}
            }
            let wait = if rng.gen_range(0..8) == 0 {
                50_000
            } else {
                rng.gen_range(0..3000)
            };
            sim.advance(Duration::from_millis(wait));
        }
        if answered {
            alice.send_with(&mut sim, "BYE", "", "");
        }
        sim.advance(Duration::from_secs(400));
        assert_eq!(
            sim.core.call_count(),
            0,
            "seed {seed}: {:?}",
            sim.core.active_calls()
        );
        assert_eq!(sim.core.dialog_count(), 0, "seed {seed}: dialogs left");
        assert_eq!(
            sim.core.session_timer_count(),
            0,
            "seed {seed}: session timers left"
        );
        assert_eq!(
            sim.core.transaction_count(),
            0,
            "seed {seed}: transactions left"
        );
    }
}

#[test]
fn with_a_delayed_offer_the_answer_in_the_callers_prack_goes_in_mss_prack() {
    let mut sim = Sim::start(Setup::default());
    let dev = registered(&mut sim, "101", "pw-101", "127.0.0.11:5062");
    let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
    alice.call(&mut sim, "101", "Supported: 100rel\r\n", "");
    let inv = request_to(&mut sim, dev, Method::Invite).unwrap();
    assert!(inv.body().is_empty(), "a delayed offer");
    let offer = device_answer(
        &inv,
        dev,
        183,
        "d1",
        "Require: 100rel\r\nRSeq: 5\r\n",
        SDP_B,
    );
    sim.receive(dev, &offer);
    let progress = alice.response(&mut sim, 101).unwrap();
    assert_eq!(
        progress.body().as_ref(),
        SDP_B.as_bytes(),
        "the offer reaches the caller"
    );
    assert!(
        request_to(&mut sim, dev, Method::Prack).is_none(),
        "mss's PRACK waits for the caller's answer"
    );
    alice.learn(&progress);
    let rack = format!("RAck: {} {} INVITE\r\n", rseq(&progress), alice.invite_cseq);
    alice.send_with(&mut sim, "PRACK", &rack, SDP_A);
    let ok = response_to(&mut sim, alice.addr, Method::Prack).unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let prack = request_to(&mut sim, dev, Method::Prack).expect("mss's PRACK");
    assert_eq!(header(prack.headers(), "RAck"), "5 1 INVITE");
    assert_eq!(
        prack.body().as_ref(),
        SDP_A.as_bytes(),
        "with the caller's answer"
    );
    sim.receive(dev, &reply(&prack, 200, "OK", ""));
    sim.receive(dev, &device_answer(&inv, dev, 200, "d1", "", SDP_B));
    let ok = alice.response(&mut sim, 200).unwrap();
    alice.learn(&ok);
    alice.ack(&mut sim);
    alice.send_with(&mut sim, "BYE", "", "");
    let bye = request_to(&mut sim, dev, Method::Bye).unwrap();
    sim.receive(dev, &reply(&bye, 200, "OK", ""));
    assert_clean(&mut sim);
}

#[test]
fn a_callee_that_hangs_up_while_the_2xx_waits_for_the_prack_leaves_the_caller_a_487() {
    let mut sim = Sim::start(Setup::default());
    let dev = registered(&mut sim, "101", "pw-101", "127.0.0.11:5062");
    let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
    alice.call(&mut sim, "101", "Supported: 100rel\r\n", SDP_A);
    let inv = request_to(&mut sim, dev, Method::Invite).unwrap();
    sim.receive(dev, &device_answer(&inv, dev, 183, "d1", "", SDP_B));
    let progress = alice.response(&mut sim, 101).unwrap();
    assert!(header(progress.headers(), "RSeq").parse::<u32>().is_ok());
    sim.receive(dev, &device_answer(&inv, dev, 200, "d1", "", SDP_B));
    // The callee hangs up at once (it should wait for its ACK, which waits for the
    // caller's); the caller's 200 is still held for its PRACK.
    sim.receive(
        dev,
        &sim::calls::device_request_with(&inv, dev, "d1", "BYE", 2, "", ""),
    );
    assert_eq!(
        response_to(&mut sim, dev, Method::Bye)
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let last = alice
        .response(&mut sim, 200)
        .expect("a final answer to the caller");
    assert_eq!(last.status().as_u16(), 487, "{last:?}");
    alice.ack_failure(&mut sim);
    assert_clean(&mut sim);
    assert_eq!(sim.core.transaction_count(), 0, "transactions left");
}

/// A CANCEL that arrives after the callee answered but while mss's `2xx` to the caller
/// still waits for the PRACK of a `183` with SDP: no final response has gone out, so the
/// CANCEL counts (RFC 3261 §9.2): `487` to the caller, ACK and BYE to the callee.
#[test]
fn a_cancel_while_the_2xx_waits_for_the_prack_gets_487_and_the_callee_bye() {
    let mut sim = Sim::start(Setup::default());
    let dev = registered(&mut sim, "101", "pw-101", "127.0.0.11:5062");
    let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
    alice.call(&mut sim, "101", "Supported: 100rel\r\n", SDP_A);
    let inv = request_to(&mut sim, dev, Method::Invite).unwrap();
    sim.receive(dev, &device_answer(&inv, dev, 183, "d1", "", SDP_B));
    let progress = alice.response(&mut sim, 101).unwrap();
    assert!(header(progress.headers(), "RSeq").parse::<u32>().is_ok());
    sim.receive(dev, &device_answer(&inv, dev, 200, "d1", "", SDP_B));
    assert!(
        alice.response(&mut sim, 200).is_none(),
        "the 200 waits for the PRACK"
    );
    sim.receive(
        alice.addr,
        &alice.cancel_text(alice.branch, alice.invite_cseq),
    );
    let last = alice
        .response(&mut sim, 300)
        .expect("a final answer to the caller");
    assert_eq!(last.status().as_u16(), 487, "{last:?}");
    let me = alice.addr;
    assert!(
        !sim.sent.iter().any(|s| s.to.remote == me
            && s.response().is_some_and(|r| r.status().as_u16() == 200
                && r.headers().cseq().unwrap().method == Method::Invite)),
        "no 200 to the INVITE"
    );
    assert!(
        request_to(&mut sim, dev, Method::Ack).is_some(),
        "the callee's 200 acknowledged"
    );
    let bye = request_to(&mut sim, dev, Method::Bye).expect("BYE to the callee");
    sim.receive(dev, &reply(&bye, 200, "OK", ""));
    alice.ack_failure(&mut sim);
    assert_clean(&mut sim);
    let record = sim.core.active_calls();
    assert!(record.is_empty());
    assert_eq!(sim.core.transaction_count(), 0, "transactions left");
}

/// UPDATE before the answer (RFC 3311 §5.1): once caller and callee have each other's
/// session description from a reliable `183` (PRACKed on both legs), an UPDATE of either
/// in its early dialog goes to the other's early dialog and the answer comes back.
#[test]
fn an_update_before_the_answer_goes_through_both_early_dialogs() {
    const SDP_A2: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.10\r\ns=-\r\nc=IN IP4 127.0.0.10\r\nt=0 0\r\nm=audio 4002 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    const SDP_B2: &str = "v=0\r\no=- 2 3 IN IP4 127.0.0.11\r\ns=-\r\nc=IN IP4 127.0.0.11\r\nt=0 0\r\nm=audio 5002 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    let mut sim = Sim::start(Setup::default());
    let dev = registered(&mut sim, "101", "pw-101", "127.0.0.11:5062");
    let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
    alice.call(&mut sim, "101", "Supported: 100rel\r\n", SDP_A);
    let inv = request_to(&mut sim, dev, Method::Invite).unwrap();
    let reliable = device_answer(
        &inv,
        dev,
        183,
        "d1",
        "Require: 100rel\r\nRSeq: 1\r\n",
        SDP_B,
    );
    sim.receive(dev, &reliable);
    let mss_prack = request_to(&mut sim, dev, Method::Prack).expect("mss PRACKs the callee");
    sim.receive(dev, &reply(&mss_prack, 200, "OK", ""));
    let progress = alice.response(&mut sim, 101).unwrap();
    assert_eq!(progress.status().as_u16(), 183);
    alice.learn(&progress);
    assert_eq!(
        prack(&mut sim, &mut alice, rseq(&progress))
            .status()
            .as_u16(),
        200
    );

    // The caller's UPDATE reaches the callee's early dialog; the answer comes back.
    sim.forget_sent();
    alice.send_with(&mut sim, "UPDATE", "", SDP_A2);
    let update = request_to(&mut sim, dev, Method::Update).expect("UPDATE to the callee");
    assert_eq!(update.headers().to().unwrap().tag(), Some("d1"));
    assert_eq!(update.body().as_ref(), SDP_A2.as_bytes());
    sim.receive(dev, &answer(&update, 200, "OK", "d1", "", SDP_B2));
    let answered = response_to(&mut sim, alice.addr, Method::Update).expect("the UPDATE's answer");
    assert_eq!(answered.status().as_u16(), 200, "{answered:?}");
    assert_eq!(answered.body().as_ref(), SDP_B2.as_bytes());

    // The callee's UPDATE reaches the caller's early dialog; the answer goes back.
    sim.forget_sent();
    sim.receive(
        dev,
        &device_request_with(&inv, dev, "d1", "UPDATE", 1, "", SDP_B),
    );
    let to_alice = request_to(&mut sim, alice.addr, Method::Update).expect("UPDATE to the caller");
    assert_eq!(to_alice.body().as_ref(), SDP_B.as_bytes());
    sim.receive(alice.addr, &answer(&to_alice, 200, "OK", "c100", "", SDP_A));
    let back = response_to(&mut sim, dev, Method::Update).expect("the answer to the callee");
    assert_eq!(back.status().as_u16(), 200, "{back:?}");
    assert_eq!(back.body().as_ref(), SDP_A.as_bytes());

    sim.forget_sent();
    sim.receive(dev, &device_answer(&inv, dev, 200, "d1", "", SDP_B));
    let ok = alice.response(&mut sim, 200).unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    alice.learn(&ok);
    alice.ack(&mut sim);
    assert!(request_to(&mut sim, dev, Method::Ack).is_some());
    alice.send_with(&mut sim, "BYE", "", "");
    let bye = request_to(&mut sim, dev, Method::Bye).unwrap();
    sim.receive(dev, &reply(&bye, 200, "OK", ""));
    assert_clean(&mut sim);
}
