//! Calls through the whole core in simulated time (DESIGN §8): mss as a B2BUA between a
//! caller and one or more devices, or a line's provider. Each scenario checks what both
//! sides saw, and that no call, dialog or transaction of the service is left behind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sim;

use std::net::SocketAddr;
use std::time::Duration;

use mss_sip::{Flow, HeaderName, Method, Request};
use sim::calls::*;
use sim::{reply, Setup, Sim};

#[test]
fn a_call_is_answered_and_the_caller_hangs_up() {
    let mut sim = Sim::start(Setup::default());
    let (mut alice, dev, _inv) = answered_call(&mut sim);
    assert_eq!(sim.core.call_count(), 1);
    let active = sim.core.active_calls();
    assert_eq!(active[0].state, "answered");
    assert_eq!(active[0].caller, "100");
    assert_eq!(active[0].legs.len(), 2);
    assert_eq!(active[0].legs[1].codec.as_deref(), Some("PCMU/8000"));
    assert_eq!(calls_stored(&sim), 1, "the start is stored at answer");
    alice.send(&mut sim, "BYE", "");
    let ok = response_to(&mut sim, alice.addr, Method::Bye).unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let bye = request_to(&mut sim, dev, Method::Bye).expect("BYE to the device");
    sim.receive(dev, &reply(&bye, 200, "OK", ""));
    assert_eq!(calls_stored(&sim), 2, "the end is stored");
    assert_clean(&mut sim);
    let metrics = sim.metrics.render();
    assert!(metrics.contains("mss_calls_active 0\n"), "{metrics}");
    assert!(
        metrics.contains("mss_calls_total{direction=\"internal\",disposition=\"answered\"} 1\n"),
        "{metrics}"
    );
}

#[test]
fn the_callee_hangs_up() {
    let mut sim = Sim::start(Setup::default());
    let (alice, dev, inv) = answered_call(&mut sim);
    sim.receive(dev, &device_request(&inv, dev, "dev1", "BYE", 2, ""));
    let ok = response_to(&mut sim, dev, Method::Bye).unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let bye = request_to(&mut sim, alice.addr, Method::Bye).expect("BYE to the caller");
    assert_eq!(bye.uri_str().unwrap(), format!("sip:100@{}", alice.addr));
    sim.receive(alice.addr, &reply(&bye, 200, "OK", ""));
    assert_clean(&mut sim);
}

#[test]
fn hold_and_resume_are_passed_to_the_other_leg() {
    let mut sim = Sim::start(Setup::default());
    let (mut alice, dev, _inv) = answered_call(&mut sim);
    alice.send(&mut sim, "INVITE", SDP_HOLD);
    let reinvite = request_to(&mut sim, dev, Method::Invite).expect("re-INVITE to the device");
    assert_eq!(reinvite.body().as_ref(), SDP_HOLD.as_bytes());
    assert_eq!(reinvite.headers().cseq().unwrap().seq, 2);
    sim.receive(
        dev,
        &device_answer(&reinvite, dev, 200, "OK", "dev1", SDP_B),
    );
    let ok = alice.response(&mut sim, 200).unwrap();
    assert_eq!(ok.headers().cseq().unwrap().method, Method::Invite);
    assert_eq!(ok.body().as_ref(), SDP_B.as_bytes());
    alice.ack(&mut sim);
    let ack = request_to(&mut sim, dev, Method::Ack).expect("ACK of the re-INVITE");
    assert_eq!(ack.headers().cseq().unwrap().seq, 2);
    // An INFO (DTMF) passes too.
    alice.send(&mut sim, "INFO", "");
    let info = request_to(&mut sim, dev, Method::Info).expect("INFO passed on");
    sim.receive(dev, &reply(&info, 200, "OK", ""));
    let ok = response_to(&mut sim, alice.addr, Method::Info).unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    alice.send(&mut sim, "BYE", "");
    let bye = request_to(&mut sim, dev, Method::Bye).unwrap();
    sim.receive(dev, &reply(&bye, 200, "OK", ""));
    assert_clean(&mut sim);
}

#[test]
fn a_hang_up_answers_the_requests_still_passed_on() {
    // Two calls with an INFO each passed on and unanswered; the first caller hangs up:
    // its INFO gets its final answer at once (not after Timer F), the other call's INFO
    // is left alone.
    let mut setup = Setup::default();
    setup.users.push(("102".into(), "pw-102".into()));
    setup.users.push(("103".into(), "pw-103".into()));
    let mut sim = Sim::start(setup);
    let (mut alice, dev, _inv) = answered_call(&mut sim);
    alice.send(&mut sim, "INFO", "");
    let info = request_to(&mut sim, dev, Method::Info).expect("INFO passed on");
    let mut carol = Caller::new("102", "pw-102", "127.0.0.12:5062");
    let carol_dev = registered(&mut sim, "103", "pw-103", "127.0.0.13:5062");
    assert_eq!(carol.call(&mut sim, "103", "", SDP_A), 407);
    let inv = invite_to(&mut sim, carol_dev);
    sim.receive(
        carol_dev,
        &device_answer(&inv, carol_dev, 200, "OK", "dev3", SDP_B),
    );
    let ok = carol
        .response(&mut sim, 200)
        .expect("200 to the second caller");
    carol.learn(&ok);
    carol.ack(&mut sim);
    carol.send(&mut sim, "INFO", "");
    let carol_info = request_to(&mut sim, carol_dev, Method::Info).expect("second INFO");
    alice.send(&mut sim, "BYE", "");
    let answered = sim
        .wait_for(Duration::from_millis(100), |s| {
            s.response()
                .filter(|r| {
                    s.to.remote == alice.addr
                        && r.headers().cseq().unwrap().method == Method::Info
                        && r.status().as_u16() >= 200
                })
                .cloned()
        })
        .expect("the INFO answered at the hang-up");
    assert!(
        answered.status().as_u16() >= 400,
        "{}",
        answered.status().as_u16()
    );
    let bye = request_to(&mut sim, dev, Method::Bye).expect("BYE to the device");
    sim.receive(dev, &reply(&bye, 200, "OK", ""));
    // The device's late answer to the abandoned INFO changes nothing.
    sim.receive(dev, &reply(&info, 200, "OK", ""));
    assert_eq!(sim.core.call_count(), 1, "the second call goes on");
    sim.receive(carol_dev, &reply(&carol_info, 200, "OK", ""));
    let ok = response_to(&mut sim, carol.addr, Method::Info).expect("second INFO answered");
    assert_eq!(ok.status().as_u16(), 200);
    carol.send(&mut sim, "BYE", "");
    let bye = request_to(&mut sim, carol_dev, Method::Bye).expect("BYE to the second device");
    sim.receive(carol_dev, &reply(&bye, 200, "OK", ""));
    assert_clean(&mut sim);
}

#[test]
fn both_devices_ring_and_the_second_is_cancelled_when_the_first_answers() {
    let mut sim = Sim::start(Setup::default());
    let d1 = registered(&mut sim, "101", "pw-101", "127.0.0.11:5062");
    let d2 = registered(&mut sim, "101", "pw-101", "127.0.0.12:5062");
    let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
    alice.call(&mut sim, "101", "", SDP_A);
    let i1 = invite_to(&mut sim, d1);
    let i2 = invite_to(&mut sim, d2);
    assert_ne!(
        i1.headers().call_id().unwrap(),
        i2.headers().call_id().unwrap()
    );
    sim.receive(d1, &device_answer(&i1, d1, 180, "Ringing", "d1", ""));
    sim.receive(d2, &device_answer(&i2, d2, 180, "Ringing", "d2", ""));
    sim.receive(d1, &device_answer(&i1, d1, 200, "OK", "d1", SDP_B));
    let cancel = request_to(&mut sim, d2, Method::Cancel).expect("the second device is cancelled");
    assert_eq!(
        cancel.headers().cseq().unwrap().seq,
        i2.headers().cseq().unwrap().seq
    );
    sim.receive(d2, &reply(&cancel, 200, "OK", ""));
    sim.receive(
        d2,
        &device_answer(&i2, d2, 487, "Request Terminated", "d2", ""),
    );
    let ok = alice.response(&mut sim, 200).unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    alice.learn(&ok);
    alice.ack(&mut sim);
    assert!(request_to(&mut sim, d1, Method::Ack).is_some());
    alice.send(&mut sim, "BYE", "");
    let bye = request_to(&mut sim, d1, Method::Bye).unwrap();
    sim.receive(d1, &reply(&bye, 200, "OK", ""));
    assert_clean(&mut sim);
}

#[test]
fn a_late_2xx_of_a_cancelled_fork_gets_ack_and_bye() {
    let mut sim = Sim::start(Setup::default());
    let d1 = registered(&mut sim, "101", "pw-101", "127.0.0.11:5062");
    let d2 = registered(&mut sim, "101", "pw-101", "127.0.0.12:5062");
    let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
    alice.call(&mut sim, "101", "", SDP_A);
    let i1 = invite_to(&mut sim, d1);
    let i2 = invite_to(&mut sim, d2);
    sim.receive(d2, &device_answer(&i2, d2, 180, "Ringing", "d2", ""));
    sim.receive(d1, &device_answer(&i1, d1, 200, "OK", "d1", SDP_B));
    assert!(request_to(&mut sim, d2, Method::Cancel).is_some());
    // The second device answered before the CANCEL reached it.
    sim.receive(d2, &device_answer(&i2, d2, 200, "OK", "d2", SDP_B));
    let ack = request_to(&mut sim, d2, Method::Ack).expect("the late 2xx is acknowledged");
    assert_eq!(ack.headers().to().unwrap().tag(), Some("d2"));
    let bye = request_to(&mut sim, d2, Method::Bye).expect("and ended");
    sim.receive(d2, &reply(&bye, 200, "OK", ""));
    let ok = alice.response(&mut sim, 200).unwrap();
    alice.learn(&ok);
    alice.ack(&mut sim);
    alice.send(&mut sim, "BYE", "");
    let bye = request_to(&mut sim, d1, Method::Bye).unwrap();
    sim.receive(d1, &reply(&bye, 200, "OK", ""));
    assert_clean(&mut sim);
}

#[test]
fn the_caller_cancels_and_gets_487() {
    let mut sim = Sim::start(Setup::default());
    let dev = registered(&mut sim, "101", "pw-101", "127.0.0.11:5062");
    let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
    alice.call(&mut sim, "101", "", SDP_A);
    let inv = invite_to(&mut sim, dev);
    sim.receive(dev, &device_answer(&inv, dev, 180, "Ringing", "dev1", ""));
    let ringing = alice.response(&mut sim, 101).unwrap();
    sim.receive(
        alice.addr,
        &alice.cancel_text(alice.branch, alice.invite_cseq),
    );
    let terminated = alice.response(&mut sim, 400).unwrap();
    assert_eq!(terminated.status().as_u16(), 487);
    assert_eq!(
        terminated.headers().to().unwrap().tag(),
        ringing.headers().to().unwrap().tag()
    );
    let c = request_to(&mut sim, dev, Method::Cancel).expect("CANCEL to the device");
    sim.receive(dev, &reply(&c, 200, "OK", ""));
    sim.receive(
        dev,
        &device_answer(&inv, dev, 487, "Request Terminated", "dev1", ""),
    );
    assert_eq!(calls_stored(&sim), 1, "one record for the attempt");
    assert_clean(&mut sim);
}

#[test]
fn a_busy_device_makes_the_call_busy() {
    let mut sim = Sim::start(Setup::default());
    let dev = registered(&mut sim, "101", "pw-101", "127.0.0.11:5062");
    let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
    alice.call(&mut sim, "101", "", SDP_A);
    let inv = invite_to(&mut sim, dev);
    sim.receive(dev, &device_answer(&inv, dev, 486, "Busy Here", "dev1", ""));
    let busy = alice.response(&mut sim, 300).unwrap();
    assert_eq!(busy.status().as_u16(), 486);
    assert_clean(&mut sim);
}

#[test]
fn unknown_extensions_and_absent_users_are_refused() {
    let mut sim = Sim::start(Setup::default());
    let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
    alice.call(&mut sim, "777", "", SDP_A);
    assert_eq!(
        alice.response(&mut sim, 300).unwrap().status().as_u16(),
        404
    );
    let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5064");
    alice.call(&mut sim, "101", "", SDP_A);
    assert_eq!(
        alice.response(&mut sim, 300).unwrap().status().as_u16(),
        480
    );
    assert_clean(&mut sim);
}

#[test]
fn bad_sdp_is_not_acceptable_here() {
    let mut sim = Sim::start(Setup::default());
    registered(&mut sim, "101", "pw-101", "127.0.0.11:5062");
    let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
    alice.call(&mut sim, "101", "", "v=0\r\nthis is not sdp\r\n");
    let rsp = alice.response(&mut sim, 300).unwrap();
    assert_eq!(rsp.status().as_u16(), 488);
    assert!(rsp.headers().contains(&HeaderName::Warning));
    assert_clean(&mut sim);
}

#[test]
fn an_unknown_required_extension_gets_420() {
    let mut sim = Sim::start(Setup::default());
    let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
    let status = alice.call(&mut sim, "101", "Require: foo\r\n", SDP_A);
    assert_eq!(status, 420);
    assert_clean(&mut sim);
}

#[test]
fn requests_for_unknown_dialogs_get_481() {
    let mut sim = Sim::start(Setup::default());
    let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
    alice.remote_tag = "nosuch".into();
    alice.target = "sip:mss@127.0.0.1:5060".into();
    alice.target_user = "101".into();
    alice.send(&mut sim, "BYE", "");
    assert_eq!(
        response_to(&mut sim, alice.addr, Method::Bye)
            .unwrap()
            .status()
            .as_u16(),
        481
    );
    assert_clean(&mut sim);
}

#[test]
fn no_answer_ends_with_480_and_a_cancel() {
    let mut sim = Sim::start(Setup::default());
    let dev = registered(&mut sim, "101", "pw-101", "127.0.0.11:5062");
    let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
    alice.call(&mut sim, "101", "", SDP_A);
    let inv = invite_to(&mut sim, dev);
    sim.receive(dev, &device_answer(&inv, dev, 180, "Ringing", "dev1", ""));
    let rsp = sim
        .wait_for(Duration::from_secs(200), |s| {
            s.response()
                .filter(|r| s.to.remote == alice.addr && r.status().as_u16() >= 300)
                .cloned()
        })
        .unwrap();
    assert_eq!(rsp.status().as_u16(), 480);
    let c = request_to(&mut sim, dev, Method::Cancel).expect("CANCEL");
    sim.receive(dev, &reply(&c, 200, "OK", ""));
    sim.receive(
        dev,
        &device_answer(&inv, dev, 487, "Request Terminated", "dev1", ""),
    );
    assert_clean(&mut sim);
}

#[test]
fn a_missing_ack_ends_the_call_on_both_legs() {
    let mut sim = Sim::start(Setup::default());
    let dev = registered(&mut sim, "101", "pw-101", "127.0.0.11:5062");
    let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
    alice.call(&mut sim, "101", "", SDP_A);
    let inv = invite_to(&mut sim, dev);
    sim.receive(dev, &device_answer(&inv, dev, 200, "OK", "dev1", SDP_B));
    // The caller never acknowledges: after 64·T1 mss gives up on it.
    let bye = sim
        .wait_for(Duration::from_secs(40), |s| {
            s.request()
                .filter(|r| *r.method() == Method::Bye && s.to.remote == alice.addr)
                .cloned()
        })
        .expect("BYE to the caller");
    sim.receive(alice.addr, &reply(&bye, 200, "OK", ""));
    assert!(
        request_to(&mut sim, dev, Method::Ack).is_some(),
        "the device's 2xx is acknowledged"
    );
    let bye = request_to(&mut sim, dev, Method::Bye).expect("BYE to the device");
    sim.receive(dev, &reply(&bye, 200, "OK", ""));
    assert_clean(&mut sim);
}

#[test]
fn glare_gets_491_and_the_retry_goes_through() {
    let mut sim = Sim::start(Setup::default());
    let (mut alice, dev, inv) = answered_call(&mut sim);
    // The device re-INVITEs; mss passes it to the caller.
    sim.receive(dev, &device_request(&inv, dev, "dev1", "INVITE", 2, SDP_B));
    let to_alice =
        request_to(&mut sim, alice.addr, Method::Invite).expect("re-INVITE to the caller");
    // At the same time the caller re-INVITEs: mss has its own re-INVITE pending there.
    alice.send(&mut sim, "INVITE", SDP_HOLD);
    let pending = alice.response(&mut sim, 400).expect("491 to the caller");
    assert_eq!(pending.status().as_u16(), 491);
    // The caller answers mss's re-INVITE; the device gets its 200.
    sim.receive(
        alice.addr,
        &answer(
            &to_alice,
            200,
            "OK",
            "x",
            &format!("Contact: <sip:100@{}>\r\n", alice.addr),
            SDP_A,
        ),
    );
    let ok = final_response_to(&mut sim, dev).expect("the device gets its answer");
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(ok.body().as_ref(), SDP_A.as_bytes());
    // The device's ACK is relayed to the caller.
    sim.receive(dev, &device_request(&inv, dev, "dev1", "ACK", 2, ""));
    let ack = request_to(&mut sim, alice.addr, Method::Ack).expect("ACK relayed to the caller");
    assert_eq!(
        ack.headers().cseq().unwrap().seq,
        to_alice.headers().cseq().unwrap().seq
    );
    alice.send(&mut sim, "BYE", "");
    let bye = request_to(&mut sim, dev, Method::Bye).unwrap();
    sim.receive(dev, &reply(&bye, 200, "OK", ""));
    assert_clean(&mut sim);
}

#[test]
fn max_calls_is_503_with_retry_after() {
    let mut setup = Setup::default();
    setup.calls.max_calls = 1;
    let mut sim = Sim::start(setup);
    let (mut alice, dev, _inv) = answered_call(&mut sim);
    let mut bob = Caller::new("101", "pw-101", "127.0.0.13:5062");
    bob.call(&mut sim, "100", "", SDP_A);
    let rsp = bob.response(&mut sim, 300).unwrap();
    assert_eq!(rsp.status().as_u16(), 503);
    assert!(rsp.headers().contains(&HeaderName::RetryAfter));
    alice.send(&mut sim, "BYE", "");
    let bye = request_to(&mut sim, dev, Method::Bye).unwrap();
    sim.receive(dev, &reply(&bye, 200, "OK", ""));
    assert_clean(&mut sim);
}

#[test]
fn a_user_at_its_max_calls_is_busy() {
    let mut setup = Setup::default();
    setup.calls.user_max_calls.insert("101".into(), 1);
    let mut sim = Sim::start(setup);
    let (mut alice, dev, _inv) = answered_call(&mut sim);
    let mut carol = Caller::new("100", "pw-100", "127.0.0.14:5062");
    carol.call_id = "second".into();
    carol.call(&mut sim, "101", "", SDP_A);
    assert_eq!(
        carol.response(&mut sim, 300).unwrap().status().as_u16(),
        486
    );
    alice.send(&mut sim, "BYE", "");
    let bye = request_to(&mut sim, dev, Method::Bye).unwrap();
    sim.receive(dev, &reply(&bye, 200, "OK", ""));
    assert_clean(&mut sim);
}

#[test]
fn an_invite_that_comes_back_is_a_loop() {
    let mut sim = Sim::start(Setup::default());
    let dev = registered(&mut sim, "101", "pw-101", "127.0.0.11:5062");
    let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
    alice.call(&mut sim, "101", "", SDP_A);
    let inv = invite_to(&mut sim, dev);
    // The device forwards mss's INVITE back to mss (as a misconfigured phone would).
    let via = header(inv.headers(), &HeaderName::Via);
    let text = String::from_utf8_lossy(&inv.to_bytes()).replacen(
        &format!("Via: {via}\r\n"),
        &format!("Via: SIP/2.0/UDP {dev};branch=z9hG4bK-fw\r\nVia: {via}\r\n"),
        1,
    );
    sim.receive(dev, &text);
    let rsp = sim.response_to(dev).unwrap();
    assert_eq!(rsp.status().as_u16(), 482);
    sim.receive(dev, &device_answer(&inv, dev, 486, "Busy Here", "dev1", ""));
    assert_eq!(
        alice.response(&mut sim, 300).unwrap().status().as_u16(),
        486
    );
    assert_clean(&mut sim);
}

#[test]
fn a_delayed_offer_gets_its_answer_in_the_relayed_ack() {
    let mut sim = Sim::start(Setup::default());
    let dev = registered(&mut sim, "101", "pw-101", "127.0.0.11:5062");
    let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
    alice.call(&mut sim, "101", "", "");
    let inv = invite_to(&mut sim, dev);
    assert!(inv.body().is_empty());
    sim.receive(dev, &device_answer(&inv, dev, 200, "OK", "dev1", SDP_B));
    let ok = alice.response(&mut sim, 200).unwrap();
    alice.learn(&ok);
    let text = alice.in_dialog_text("ACK", alice.invite_cseq, SDP_A);
    sim.receive(alice.addr, &text);
    let ack = request_to(&mut sim, dev, Method::Ack).unwrap();
    assert_eq!(
        ack.body().as_ref(),
        SDP_A.as_bytes(),
        "the answer reaches the device"
    );
    alice.send(&mut sim, "BYE", "");
    let bye = request_to(&mut sim, dev, Method::Bye).unwrap();
    sim.receive(dev, &reply(&bye, 200, "OK", ""));
    assert_clean(&mut sim);
}

#[test]
fn shutdown_ends_every_call() {
    let mut sim = Sim::start(Setup::default());
    let (alice, dev, _inv) = answered_call(&mut sim);
    sim.shutdown();
    let b1 = request_to(&mut sim, alice.addr, Method::Bye).expect("BYE to the caller");
    let b2 = request_to(&mut sim, dev, Method::Bye).expect("BYE to the device");
    sim.receive(alice.addr, &reply(&b1, 200, "OK", ""));
    sim.receive(dev, &reply(&b2, 200, "OK", ""));
    assert_eq!(sim.core.call_count(), 0);
}

// --- Lines ---

fn provider() -> SocketAddr {
    "127.0.0.2:5070".parse().unwrap()
}

/// A server with line `p1` (number 2001, owner 101) at the provider, brought online.
fn with_line() -> Sim {
    let setup = Setup::default().line("p1", "127.0.0.2:5070", "2001", Some("101"));
    let mut sim = Sim::start(setup);
    let reg = sim.next_request(Method::Register, WAIT).unwrap().1;
    sim.receive(
        provider(),
        &reply(
            &reg,
            200,
            "OK",
            &format!(
                "Contact: {};expires=600\r\n",
                header(reg.headers(), &HeaderName::Contact)
            ),
        ),
    );
    assert_eq!(sim.line_state(0), "online");
    sim
}

#[test]
fn nine_and_a_number_go_out_through_the_line_with_its_credentials() {
    let mut sim = with_line();
    let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
    alice.call(&mut sim, "95551234", "", SDP_A);
    let inv = request_to(&mut sim, provider(), Method::Invite).expect("INVITE to the provider");
    assert!(
        inv.uri_str().unwrap().starts_with("sip:5551234@"),
        "{}",
        inv.uri_str().unwrap()
    );
    assert!(header(inv.headers(), &HeaderName::From).contains("sip:2001@"));
    sim.receive(
        provider(),
        &answer(
            &inv,
            407,
            "Proxy Authentication Required",
            "p",
            "Proxy-Authenticate: Digest realm=\"provider.test\", nonce=\"abc\", algorithm=MD5\r\n",
            "",
        ),
    );
    let again = request_to(&mut sim, provider(), Method::Invite).expect("INVITE with credentials");
    let auth = header(again.headers(), &HeaderName::ProxyAuthorization);
    assert!(auth.contains("username=\"2001\""), "{auth}");
    assert_eq!(again.headers().cseq().unwrap().seq, 2);
    sim.receive(
        provider(),
        &answer(
            &again,
            200,
            "OK",
            "p",
            "Contact: <sip:gw@127.0.0.2:5070>\r\n",
            SDP_B,
        ),
    );
    let ok = alice.response(&mut sim, 200).unwrap();
    alice.learn(&ok);
    alice.ack(&mut sim);
    assert!(request_to(&mut sim, provider(), Method::Ack).is_some());
    alice.send(&mut sim, "BYE", "");
    let bye = request_to(&mut sim, provider(), Method::Bye).unwrap();
    sim.receive(provider(), &reply(&bye, 200, "OK", ""));
    assert_clean(&mut sim);
}

#[test]
fn a_call_from_the_provider_to_the_line_number_reaches_the_owner() {
    let mut sim = with_line();
    let dev = registered(&mut sim, "101", "pw-101", "127.0.0.11:5062");
    let text = format!(
        "INVITE sip:2001@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bK-pv1\r\nMax-Forwards: 70\r\nFrom: <sip:+4930555@provider.test>;tag=pv\r\nTo: <sip:2001@provider.test>\r\nCall-ID: in-1\r\nCSeq: 1 INVITE\r\nContact: <sip:gw@127.0.0.2:5070>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP_A}",
        SDP_A.len()
    );
    sim.receive(provider(), &text);
    let inv = invite_to(&mut sim, dev);
    sim.receive(dev, &device_answer(&inv, dev, 200, "OK", "dev1", SDP_B));
    let ok = final_response_to(&mut sim, provider()).unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(sim.core.active_calls()[0].caller, "+4930555");
    let _ = Flow::udp(provider());
    // The provider hangs up without acknowledging: mss ends the call after 64·T1.
    assert_clean(&mut sim);
}

#[test]
fn a_failing_line_moves_the_call_to_the_next_line() {
    let setup = Setup::default()
        .line("p1", "127.0.0.2:5070", "2001", None)
        .line("p2", "127.0.0.3:5070", "2002", None);
    let mut sim = Sim::start(setup);
    for addr in ["127.0.0.2:5070", "127.0.0.3:5070"] {
        let addr: SocketAddr = addr.parse().unwrap();
        let reg = request_to(&mut sim, addr, Method::Register).unwrap();
        sim.receive(
            addr,
            &reply(
                &reg,
                200,
                "OK",
                &format!(
                    "Contact: {};expires=600\r\n",
                    header(reg.headers(), &HeaderName::Contact)
                ),
            ),
        );
    }
    let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
    alice.call(&mut sim, "95551234", "", SDP_A);
    let first = request_to(&mut sim, provider(), Method::Invite).unwrap();
    sim.receive(
        provider(),
        &answer(&first, 503, "Service Unavailable", "p", "", ""),
    );
    let p2: SocketAddr = "127.0.0.3:5070".parse().unwrap();
    let second = request_to(&mut sim, p2, Method::Invite).expect("the next line is tried");
    assert!(header(second.headers(), &HeaderName::From).contains("sip:2002@"));
    sim.receive(p2, &answer(&second, 486, "Busy Here", "q", "", ""));
    assert_eq!(
        alice.response(&mut sim, 300).unwrap().status().as_u16(),
        486
    );
    assert_clean(&mut sim);
}

#[test]
fn a_device_that_ignores_the_cancel_is_given_up() {
    let mut sim = Sim::start(Setup::default());
    let dev = registered(&mut sim, "101", "pw-101", "127.0.0.11:5062");
    let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
    alice.call(&mut sim, "101", "", SDP_A);
    let inv = invite_to(&mut sim, dev);
    sim.receive(dev, &device_answer(&inv, dev, 180, "Ringing", "dev1", ""));
    sim.receive(
        alice.addr,
        &alice.cancel_text(alice.branch, alice.invite_cseq),
    );
    assert_eq!(
        alice.response(&mut sim, 400).unwrap().status().as_u16(),
        487
    );
    assert!(request_to(&mut sim, dev, Method::Cancel).is_some());
    // The device never answers the CANCEL nor the INVITE.
    assert_clean(&mut sim);
    assert_eq!(
        sim.core.transaction_count(),
        0,
        "no transaction left behind"
    );
}

/// What a simulated peer does with a request mss sent it, at random.
fn react(sim: &mut Sim, rng: &mut rand::rngs::StdRng, to: SocketAddr, req: &Request, tag: &str) {
    use rand::Rng;
    let roll: u8 = rng.gen_range(0..10);
    let text = match req.method() {
        Method::Invite => match roll {
            0..=2 => Some(device_answer(req, to, 180, "Ringing", tag, "")),
            3 => Some(device_answer(req, to, 183, "Session Progress", tag, SDP_B)),
            4..=6 => Some(device_answer(req, to, 200, "OK", tag, SDP_B)),
            7 => Some(device_answer(req, to, 486, "Busy Here", tag, "")),
            8 => Some(device_answer(req, to, 491, "Request Pending", tag, "")),
            _ => None,
        },
        Method::Cancel => (roll < 7).then(|| reply(req, 200, "OK", "")),
        Method::Ack => None,
        _ => (roll < 8).then(|| reply(req, 200, "OK", "")),
    };
    if let Some(text) = text {
        sim.receive(to, &text);
    }
}

/// Random interleavings of what callers and devices do (answers, cancels, hang-ups,
/// re-INVITEs, silence): once everybody stops, every call, dialog and transaction ends.
/// `CHAOS_DEBUG=<seed>` prints what happens in that seed's run.
#[test]
fn no_sequence_of_events_leaves_a_call_behind() {
    use rand::{Rng, SeedableRng};
    for seed in 0..300u64 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        // Every other run with the media relay, half of those with its allocations
        // answered late (at a random step), and half with sessions ready ahead.
        let mut setup = Setup::default();
        if seed % 2 == 0 {
            setup.calls.media = Some(mss_core::MediaSettings::new());
            if seed % 8 >= 4 {
                setup.media_ready = 1 + (seed % 3) as usize;
            }
        }
        let mut sim = Sim::start(setup);
        sim.hold_media = seed % 4 == 0;
        let release_at = rng.gen_range(0..6);
        let d1 = registered(&mut sim, "101", "pw-101", "127.0.0.11:5062");
        let d2 = registered(&mut sim, "101", "pw-101", "127.0.0.12:5062");
        let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
        alice.call(&mut sim, "101", "", SDP_A);
        let mut answered = false;
        for step in 0..rng.gen_range(3..25) {
            if step == release_at {
                sim.release_media();
            }
            // Peers answer what mss sent them.
            let sent: Vec<sim::Sent> = sim.sent.drain(..).collect();
            for s in sent {
                if std::env::var("CHAOS_DEBUG").is_ok_and(|v| v == seed.to_string()) {
                    let b = match &s.message {
                        mss_sip::Message::Request(r) => r.to_bytes(),
                        mss_sip::Message::Response(r) => r.to_bytes(),
                    };
                    let t = String::from_utf8_lossy(&b).into_owned();
                    eprintln!(
                        "-> {} {} | {}",
                        s.to.remote,
                        t.lines().next().unwrap_or(""),
                        t.lines().find(|l| l.starts_with("CSeq")).unwrap_or("")
                    );
                }
                match (&s.message, s.to.remote) {
                    (mss_sip::Message::Request(r), to) if to == d1 || to == d2 => {
                        let tag = if to == d1 { "d1" } else { "d2" };
                        react(&mut sim, &mut rng, to, r, tag);
                    }
                    (mss_sip::Message::Request(r), to) if to == alice.addr => {
                        react(&mut sim, &mut rng, to, r, "c100");
                    }
                    (mss_sip::Message::Response(r), to) if to == alice.addr => {
                        let code = r.status().as_u16();
                        let invite = r.headers().cseq().unwrap().method == Method::Invite;
                        if invite && (200..300).contains(&code) {
                            alice.learn(r);
                            answered = true;
                        }
                    }
                    _ => {}
                }
            }
            // The caller does something.
            let act = rng.gen_range(0..10);
            if std::env::var("CHAOS_DEBUG").is_ok_and(|v| v == seed.to_string()) {
                eprintln!("caller act {act} answered={answered} t={:?}", sim.elapsed());
            }
            match act {
                0 if answered => {
                    alice.ack(&mut sim);
                }
                1 if answered => {
                    alice.send(&mut sim, "BYE", "");
                }
                2 if answered => {
                    alice.send(&mut sim, "INVITE", SDP_HOLD);
                }
                3 => {
                    // The CANCEL of the first authenticated INVITE (branch 2, CSeq 2).
                    sim.receive(alice.addr, &alice.cancel_text(2, 2));
                }
                _ => {}
            }
            let wait = if rng.gen_range(0..8) == 0 {
                40_000
            } else {
                rng.gen_range(0..3000)
            };
            sim.advance(Duration::from_millis(wait));
        }
        // Allocations still held are answered now (the relay always answers).
        sim.release_media();
        // An answered call lasts until someone hangs up: the caller does, the others answer
        // only BYEs; then everybody stops answering and mss must clean up by itself.
        if answered {
            alice.send(&mut sim, "BYE", "");
            for _ in 0..3 {
                sim.advance(Duration::from_millis(100));
                let sent: Vec<sim::Sent> = sim.sent.drain(..).collect();
                for s in sent {
                    if let mss_sip::Message::Request(r) = &s.message {
                        if *r.method() == Method::Bye {
                            sim.receive(s.to.remote, &reply(r, 200, "OK", ""));
                        }
                    }
                }
            }
        }
        sim.advance(Duration::from_secs(400));
        assert_eq!(
            sim.core.call_count(),
            0,
            "seed {seed}: {:?}",
            sim.core.active_calls()
        );
        assert_eq!(sim.core.dialog_count(), 0, "seed {seed}: dialogs left");
        assert_eq!(sim.core.transfer_count(), 0, "seed {seed}: transfers left");
        assert_eq!(
            sim.core.transaction_count(),
            0,
            "seed {seed}: transactions left"
        );
        assert_eq!(
            sim.core.media_session_count(),
            0,
            "seed {seed}: relay sessions left"
        );
        assert_eq!(
            sim.relay_sessions(),
            [],
            "seed {seed}: the relay holds ports"
        );
    }
}

#[test]
fn a_stranger_who_dials_a_line_number_is_challenged() {
    let mut sim = with_line();
    let dev = registered(&mut sim, "101", "pw-101", "127.0.0.11:5062");
    let stranger: SocketAddr = "127.0.0.66:5060".parse().unwrap();
    let text = format!(
        "INVITE sip:2001@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {stranger};branch=z9hG4bK-x1\r\nMax-Forwards: 70\r\nFrom: <sip:scanner@{stranger}>;tag=x\r\nTo: <sip:2001@127.0.0.1>\r\nCall-ID: scan-1\r\nCSeq: 1 INVITE\r\nContact: <sip:scanner@{stranger}>\r\nContent-Length: 0\r\n\r\n"
    );
    sim.receive(stranger, &text);
    assert_eq!(sim.response_to(stranger).unwrap().status().as_u16(), 407);
    assert!(
        request_to(&mut sim, dev, Method::Invite).is_none(),
        "the owner's phone must not ring"
    );
    assert_clean(&mut sim);
}

/// A thousand answered calls whose callers never acknowledge time out at the same instant
/// (a network outage): every one ends with BYE on both legs, and the core handles them one
/// after another (their outputs once nested on the stack, one level per call).
#[test]
fn a_thousand_calls_timing_out_at_once_end_one_after_another() {
    let mut setup = Setup::default();
    setup.calls.max_calls = 2000;
    let mut sim = Sim::start(setup);
    let dev = registered(&mut sim, "101", "pw-101", "127.0.0.11:5062");
    let calls = 1000;
    for n in 0..calls as u32 {
        let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
        alice.call_id = format!("mass-{n}");
        alice.branch = n * 10;
        alice.call(&mut sim, "101", "", SDP_A);
        let inv = invite_to(&mut sim, dev);
        sim.receive(
            dev,
            &device_answer(&inv, dev, 200, "OK", &format!("d{n}"), SDP_B),
        );
        sim.forget_sent();
    }
    assert_eq!(sim.core.call_count(), calls);
    // Nobody acknowledges: after 64·T1 every call ends.
    sim.advance(Duration::from_secs(33));
    assert_eq!(sim.core.call_count(), 0);
    let byes = sim
        .sent
        .iter()
        .filter(|s| s.request().is_some_and(|r| *r.method() == Method::Bye))
        .count();
    assert!(byes >= 2 * calls, "{byes} BYEs for {calls} calls");
}
