//! Session timers (RFC 4028) through the whole core in simulated time, each leg on its
//! own: `422` + `Min-SE` below mss's minimum, mss refreshing a caller at half the interval
//! (UPDATE when allowed, else a re-INVITE with the same session description), a refresh
//! of the peer answered without bothering the other leg, BYE on both legs when the
//! refresher never refreshes, a callee's `422` retried with its `Min-SE`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sim;

use std::net::SocketAddr;
use std::time::Duration;

use mss_sip::{Method, Request};
use sim::calls::{
    assert_clean, device_answer_with as device_answer, device_request_with as device_request,
    header_named as header, registered, request_to, response_to, Caller, SDP_A, SDP_B,
};
use sim::{reply, Setup, Sim};

/// Caller 100 calls 101 with `extra` header lines; the device answers with `device_extra`
/// in its 200. Returns the caller (dialog learnt, ACK sent), the device and its INVITE.
fn call(sim: &mut Sim, extra: &str, device_extra: &str) -> (Caller, SocketAddr, Request, String) {
    let dev = registered(sim, "101", "pw-101", "127.0.0.11:5062");
    let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
    alice.call(sim, "101", extra, SDP_A);
    let inv = request_to(sim, dev, Method::Invite).expect("INVITE to the device");
    sim.receive(
        dev,
        &device_answer(&inv, dev, 200, "d1", device_extra, SDP_B),
    );
    let ok = alice.response(sim, 200).unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    alice.learn(&ok);
    alice.ack(sim);
    assert!(request_to(sim, dev, Method::Ack).is_some());
    let se = header(ok.headers(), "Session-Expires");
    (alice, dev, inv, se)
}

/// The caller hangs up and the device confirms.
fn hang_up(sim: &mut Sim, alice: &mut Caller, dev: SocketAddr) {
    sim.forget_sent();
    alice.send_with(sim, "BYE", "", "");
    let bye = request_to(sim, dev, Method::Bye).expect("BYE to the device");
    sim.receive(dev, &reply(&bye, 200, "OK", ""));
}

#[test]
fn session_expires_below_min_se_gets_422_then_the_retry_goes_through() {
    let mut sim = Sim::start(Setup::default());
    let dev = registered(&mut sim, "101", "pw-101", "127.0.0.11:5062");
    let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
    let status = alice.call(
        &mut sim,
        "101",
        "Supported: timer\r\nSession-Expires: 60\r\n",
        SDP_A,
    );
    assert_eq!(status, 422);
    alice.ack(&mut sim);
    // The retry with the minimum mss named.
    let status = alice.call(
        &mut sim,
        "101",
        "Supported: timer\r\nSession-Expires: 90\r\nMin-SE: 90\r\n",
        SDP_A,
    );
    assert_eq!(status, 407, "the retry is served (challenged as usual)");
    let inv = request_to(&mut sim, dev, Method::Invite).expect("the call goes on");
    sim.receive(dev, &device_answer(&inv, dev, 200, "d1", "", SDP_B));
    let ok = alice.response(&mut sim, 200).unwrap();
    assert_eq!(header(ok.headers(), "Session-Expires"), "90;refresher=uas");
    alice.learn(&ok);
    alice.ack(&mut sim);
    hang_up(&mut sim, &mut alice, dev);
    assert_clean(&mut sim);
}

#[test]
fn the_422_names_mss_minimum() {
    let mut setup = Setup::default();
    setup.calls.min_se = 300;
    let mut sim = Sim::start(setup);
    let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
    alice.target_user = "101".into();
    let text = alice.in_dialog_text_with("INVITE", 1, "", "");
    // An INVITE outside a dialog (no To tag): built by hand.
    let text = text.replace(";tag=\r\n", "\r\n");
    let text = text.replace(
        "Contact:",
        "Supported: timer\r\nSession-Expires: 200\r\nContact:",
    );
    sim.receive(alice.addr, &text);
    let rsp = sim.response_to(alice.addr).unwrap();
    assert_eq!(rsp.status().as_u16(), 422);
    assert_eq!(header(rsp.headers(), "Min-SE"), "300");
    assert_clean(&mut sim);
}

#[test]
fn mss_refreshes_the_caller_by_update_at_half_the_interval() {
    let mut sim = Sim::start(Setup::default());
    let (mut alice, dev, inv, se) = call(
        &mut sim,
        "Supported: timer\r\nSession-Expires: 90\r\nAllow: INVITE, ACK, BYE, CANCEL, UPDATE\r\n",
        "",
    );
    assert_eq!(se, "90;refresher=uas", "mss refreshes the caller");
    assert_eq!(
        header(inv.headers(), "Session-Expires"),
        "1800;refresher=uac"
    );
    assert_eq!(header(inv.headers(), "Min-SE"), "90");
    let mut last_ok = sim.elapsed();
    let mut last_cseq = 0;
    for round in 1..=3u32 {
        let me = alice.addr;
        let update = sim
            .wait_for(Duration::from_secs(50), |s| {
                s.request()
                    .filter(|r| s.to.remote == me && *r.method() == Method::Update)
                    .filter(|r| r.headers().cseq().unwrap().seq > last_cseq)
                    .cloned()
            })
            .expect("mss's refresh");
        last_cseq = update.headers().cseq().unwrap().seq;
        let after = sim.elapsed() - last_ok;
        assert!(
            after >= Duration::from_secs(44) && after <= Duration::from_secs(46),
            "refresh {round} {after:?} after the last"
        );
        assert!(
            update.body().is_empty(),
            "a refresh by UPDATE carries no offer"
        );
        assert_eq!(
            header(update.headers(), "Session-Expires"),
            "90;refresher=uac"
        );
        sim.receive(
            alice.addr,
            &reply(
                &update,
                200,
                "OK",
                "Session-Expires: 90;refresher=uac\r\nRequire: timer\r\n",
            ),
        );
        last_ok = sim.elapsed();
    }
    // The callee's 200 had no Session-Expires: no timer, no refresh towards it.
    assert!(
        !sim.sent.iter().any(|s| s.to.remote == dev
            && s.request()
                .is_some_and(|r| matches!(r.method(), Method::Update | Method::Invite))),
        "a refresh sent to a callee without session timer"
    );
    hang_up(&mut sim, &mut alice, dev);
    assert_clean(&mut sim);
}

#[test]
fn without_update_mss_refreshes_by_reinvite_with_the_same_session_description() {
    let mut sim = Sim::start(Setup::default());
    let (mut alice, dev, _inv, se) = call(
        &mut sim,
        "Supported: timer\r\nSession-Expires: 120\r\nAllow: INVITE, ACK, BYE, CANCEL\r\n",
        "",
    );
    assert_eq!(se, "120;refresher=uas");
    sim.advance(Duration::from_secs(59));
    let reinvite = request_to(&mut sim, alice.addr, Method::Invite).expect("a re-INVITE");
    assert_eq!(
        reinvite.body().as_ref(),
        SDP_B.as_bytes(),
        "what mss sent the caller"
    );
    sim.receive(
        alice.addr,
        &reply(&reinvite, 200, "OK", &format!("Contact: <sip:100@{}>\r\nSession-Expires: 120;refresher=uac\r\nContent-Type: application/sdp\r\n", alice.addr))
            .replace("Content-Length: 0\r\n\r\n", &format!("Content-Length: {}\r\n\r\n{SDP_A}", SDP_A.len())),
    );
    let ack = request_to(&mut sim, alice.addr, Method::Ack).expect("the 2xx is acknowledged");
    assert_eq!(
        ack.headers().cseq().unwrap().seq,
        reinvite.headers().cseq().unwrap().seq
    );
    assert!(
        !sim.sent
            .iter()
            .any(|s| s.to.remote == dev && s.request().is_some()),
        "the refresh is no business of the other leg"
    );
    hang_up(&mut sim, &mut alice, dev);
    assert_clean(&mut sim);
}

#[test]
fn a_refresh_that_never_comes_ends_the_call_on_both_legs() {
    let mut sim = Sim::start(Setup::default());
    let (alice, dev, _inv, se) = call(
        &mut sim,
        "Supported: timer\r\nSession-Expires: 120;refresher=uac\r\n",
        "",
    );
    assert_eq!(se, "120;refresher=uac", "the caller chose to refresh");
    let t0 = sim.elapsed();
    // 120 - min(32, 40) = 88 s.
    sim.advance(Duration::from_secs(87));
    assert!(sim
        .sent
        .iter()
        .all(|s| s.request().is_none_or(|r| *r.method() != Method::Bye)));
    let bye_a = request_to(&mut sim, alice.addr, Method::Bye).expect("BYE to the caller");
    let bye_b = request_to(&mut sim, dev, Method::Bye).expect("BYE to the callee");
    assert!(sim.elapsed() - t0 >= Duration::from_secs(88));
    assert_eq!(sim.core.call_count(), 0, "the call record is closed");
    sim.receive(alice.addr, &reply(&bye_a, 200, "OK", ""));
    sim.receive(dev, &reply(&bye_b, 200, "OK", ""));
    assert_clean(&mut sim);
}

#[test]
fn the_callers_refresh_is_answered_here_and_keeps_the_call() {
    let mut sim = Sim::start(Setup::default());
    let (mut alice, dev, _inv, _se) = call(
        &mut sim,
        "Supported: timer\r\nSession-Expires: 120;refresher=uac\r\n",
        "",
    );
    for _ in 0..3 {
        sim.advance(Duration::from_secs(60));
        sim.forget_sent();
        alice.send_with(
            &mut sim,
            "UPDATE",
            "Supported: timer\r\nSession-Expires: 120;refresher=uac\r\n",
            "",
        );
        let ok = response_to(&mut sim, alice.addr, Method::Update).unwrap();
        assert_eq!(ok.status().as_u16(), 200);
        assert_eq!(header(ok.headers(), "Session-Expires"), "120;refresher=uac");
        assert!(
            request_to(&mut sim, dev, Method::Update).is_none(),
            "passed to the callee"
        );
    }
    assert!(
        !sim.sent
            .iter()
            .any(|s| s.request().is_some_and(|r| *r.method() == Method::Bye)),
        "BYE although refreshed"
    );
    assert_eq!(sim.core.call_count(), 1);
    hang_up(&mut sim, &mut alice, dev);
    assert_clean(&mut sim);
}

#[test]
fn a_callee_that_refreshes_and_then_stops_gets_bye_on_both_legs() {
    let mut sim = Sim::start(Setup::default());
    let (alice, dev, inv, _se) = call(
        &mut sim,
        "",
        "Session-Expires: 90;refresher=uas\r\nRequire: timer\r\n",
    );
    // The callee refreshes once with a re-INVITE (passed to the caller as any re-INVITE).
    sim.advance(Duration::from_secs(40));
    sim.receive(
        dev,
        &device_request(
            &inv,
            dev,
            "d1",
            "UPDATE",
            2,
            "Supported: timer\r\nSession-Expires: 90;refresher=uac\r\n",
            "",
        ),
    );
    let ok = response_to(&mut sim, dev, Method::Update).unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    // 90 - min(32, 30) = 60 s after that refresh.
    sim.advance(Duration::from_secs(59));
    assert!(!sim
        .sent
        .iter()
        .any(|s| s.request().is_some_and(|r| *r.method() == Method::Bye)));
    let bye_b = request_to(&mut sim, dev, Method::Bye).expect("BYE to the callee");
    let bye_a = request_to(&mut sim, alice.addr, Method::Bye).expect("BYE to the caller");
    sim.receive(alice.addr, &reply(&bye_a, 200, "OK", ""));
    sim.receive(dev, &reply(&bye_b, 200, "OK", ""));
    assert_clean(&mut sim);
}

#[test]
fn a_callees_422_is_retried_with_its_min_se() {
    let mut sim = Sim::start(Setup::default());
    let dev = registered(&mut sim, "101", "pw-101", "127.0.0.11:5062");
    let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
    alice.call(&mut sim, "101", "", SDP_A);
    let inv = request_to(&mut sim, dev, Method::Invite).unwrap();
    sim.receive(
        dev,
        &device_answer(&inv, dev, 422, "d1", "Min-SE: 3600\r\n", ""),
    );
    let again = request_to(&mut sim, dev, Method::Invite).expect("the INVITE again");
    assert_eq!(
        header(again.headers(), "Session-Expires"),
        "3600;refresher=uac"
    );
    assert_eq!(header(again.headers(), "Min-SE"), "3600");
    assert_eq!(again.headers().cseq().unwrap().seq, 2);
    assert_eq!(
        again.headers().call_id().unwrap(),
        inv.headers().call_id().unwrap()
    );
    // A second 422 is not retried: the caller gets it.
    sim.receive(
        dev,
        &device_answer(&again, dev, 422, "d1", "Min-SE: 3600\r\n", ""),
    );
    let failed = alice.response(&mut sim, 300).unwrap();
    assert_eq!(failed.status().as_u16(), 422);
    alice.ack(&mut sim);
    assert_clean(&mut sim);
}

#[test]
fn bad_session_timer_headers_get_400() {
    let mut sim = Sim::start(Setup::default());
    let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
    for bad in [
        "Session-Expires: soon\r\n",
        "Session-Expires: 90;refresher=me\r\n",
        "Min-SE: -1\r\n",
    ] {
        let status = alice.call(&mut sim, "101", bad, SDP_A);
        assert_eq!(status, 400, "{bad:?}");
    }
    assert_clean(&mut sim);
}

#[test]
fn a_refresh_below_min_se_gets_422_and_the_session_goes_on() {
    let mut sim = Sim::start(Setup::default());
    let (mut alice, dev, _inv, _se) = call(
        &mut sim,
        "Supported: timer\r\nSession-Expires: 120;refresher=uac\r\n",
        "",
    );
    sim.forget_sent();
    let small = "Supported: timer\r\nSession-Expires: 30\r\n";
    alice.send_with(&mut sim, "INVITE", small, SDP_A);
    let rsp = response_to(&mut sim, alice.addr, Method::Invite).unwrap();
    assert_eq!(rsp.status().as_u16(), 422);
    assert_eq!(header(rsp.headers(), "Min-SE"), "90");
    alice.ack_failure(&mut sim);
    assert!(
        request_to(&mut sim, dev, Method::Invite).is_none(),
        "passed on"
    );
    // The next re-INVITE is served (the refused one is over in the dialog).
    alice.send_with(
        &mut sim,
        "INVITE",
        "Supported: timer\r\nSession-Expires: 120;refresher=uac\r\n",
        SDP_A,
    );
    let reinvite = request_to(&mut sim, dev, Method::Invite).expect("passed on");
    sim.receive(dev, &device_answer(&reinvite, dev, 200, "d1", "", SDP_B));
    let ok = alice.response(&mut sim, 200).unwrap();
    assert_eq!(header(ok.headers(), "Session-Expires"), "120;refresher=uac");
    alice.ack(&mut sim);
    hang_up(&mut sim, &mut alice, dev);
    assert_clean(&mut sim);
}

#[test]
fn with_a_delayed_offer_mss_refreshes_the_callee_with_the_answer_it_relayed() {
    let mut sim = Sim::start(Setup::default());
    let dev = registered(&mut sim, "101", "pw-101", "127.0.0.11:5062");
    let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
    alice.call(&mut sim, "101", "", "");
    let inv = request_to(&mut sim, dev, Method::Invite).unwrap();
    let timer = "Session-Expires: 100;refresher=uac\r\nRequire: timer\r\n";
    sim.receive(dev, &device_answer(&inv, dev, 200, "d1", timer, SDP_B));
    let ok = alice.response(&mut sim, 200).unwrap();
    alice.learn(&ok);
    // The caller's answer comes in its ACK and is relayed.
    let ack = alice.in_dialog_text_with("ACK", alice.invite_cseq, "", SDP_A);
    sim.receive(alice.addr, &ack);
    let relayed = request_to(&mut sim, dev, Method::Ack).unwrap();
    assert_eq!(relayed.body().as_ref(), SDP_A.as_bytes());
    sim.forget_sent();
    sim.advance(Duration::from_secs(49));
    assert!(
        !sim.sent
            .iter()
            .any(|s| s.request().is_some_and(|r| *r.method() == Method::Invite)),
        "a refresh before half the interval"
    );
    let refresh = request_to(&mut sim, dev, Method::Invite).expect("mss refreshes at 50 s");
    assert_eq!(
        refresh.body().as_ref(),
        SDP_A.as_bytes(),
        "the same answer, no new offer"
    );
    assert_eq!(
        header(refresh.headers(), "Session-Expires"),
        "100;refresher=uac"
    );
    sim.receive(dev, &device_answer(&refresh, dev, 200, "d1", timer, SDP_B));
    assert!(request_to(&mut sim, dev, Method::Ack).is_some());
    hang_up(&mut sim, &mut alice, dev);
    assert_clean(&mut sim);
}
