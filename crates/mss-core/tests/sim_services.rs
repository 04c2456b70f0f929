//! PBX call services through the whole core in simulated time (DESIGN §8): call levels,
//! forwarding (always, busy, no answer, unreachable, loops) and groups (ring all, linear).
//! What the caller and each device saw is checked, and that nothing is left behind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sim;

use std::net::SocketAddr;
use std::time::Duration;

use mss_core::{CallLevel, GroupSettings, GroupStrategy, UserCalls};
use mss_sip::{HeaderName, Method, Request, Response};
use sim::{digest_answer, reply, Phone, Setup, Sim, DOMAIN};

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.10\r\ns=-\r\nc=IN IP4 127.0.0.10\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
const WAIT: Duration = Duration::from_secs(2);
const CALLER: &str = "127.0.0.10:5062";

fn setup() -> Setup {
    let mut s = Setup::default();
    s.users.push(("102".into(), "pw-102".into()));
    s
}

fn header(h: &mss_sip::Headers, name: &HeaderName) -> String {
    h.get(name)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

fn registered(sim: &mut Sim, user: &str, addr: &str) -> SocketAddr {
    let mut p = Phone::new(user, &format!("pw-{user}"), addr);
    assert_eq!(p.register(sim, 600).unwrap().status().as_u16(), 200);
    p.addr
}

/// User 100 at [`CALLER`] calls `to` and answers the challenge.
fn call(sim: &mut Sim, to: &str) {
    let caller: SocketAddr = CALLER.parse().unwrap();
    let text = |cseq: u32, auth: &str| {
        format!(
            "INVITE sip:{to}@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-s{cseq};rport\r\nMax-Forwards: 70\r\nFrom: <sip:100@{DOMAIN}>;tag=c100\r\nTo: <sip:{to}@{DOMAIN}>\r\nCall-ID: svc-{to}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:100@{CALLER}>\r\n{auth}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
            SDP.len()
        )
    };
    sim.receive(caller, &text(1, ""));
    let challenge = sim.response_to(caller).unwrap();
    assert_eq!(challenge.status().as_u16(), 407);
    // The ACK of the 407 (same branch, RFC 3261 §17.1.1.3) stops its retransmissions.
    sim.receive(
        caller,
        &format!(
            "ACK sip:{to}@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-s1;rport\r\nMax-Forwards: 70\r\nFrom: <sip:100@{DOMAIN}>;tag=c100\r\nTo: {}\r\nCall-ID: svc-{to}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
            header(challenge.headers(), &HeaderName::To)
        ),
    );
    let auth = digest_answer(
        &challenge,
        &HeaderName::ProxyAuthenticate,
        "INVITE",
        &format!("sip:{to}@{DOMAIN}"),
        "100",
        "pw-100",
        1,
    );
    sim.receive(
        caller,
        &text(2, &format!("Proxy-Authorization: {auth}\r\n")),
    );
}

/// The next response to the caller with a status of at least `min`.
fn to_caller(sim: &mut Sim, min: u16, limit: Duration) -> Option<Response> {
    let caller: SocketAddr = CALLER.parse().unwrap();
    sim.wait_for(limit, |s| {
        s.response()
            .filter(|r| s.to.remote == caller && r.status().as_u16() >= min)
            .cloned()
    })
}

fn invite_to(sim: &mut Sim, to: SocketAddr, limit: Duration) -> Option<Request> {
    sim.wait_for(limit, |s| {
        s.request()
            .filter(|r| *r.method() == Method::Invite && s.to.remote == to)
            .cloned()
    })
}

fn request_to(sim: &mut Sim, to: SocketAddr, method: Method) -> Option<Request> {
    sim.wait_for(WAIT, |s| {
        s.request()
            .filter(|r| *r.method() == method && s.to.remote == to)
            .cloned()
    })
}

fn answer(req: &Request, code: u16, reason: &str, tag: &str) -> String {
    reply(req, code, reason, "").replacen(";tag=peer", &format!(";tag={tag}"), 1)
}

/// The device answers `inv` with `200`; the caller acknowledges and hangs up; the device
/// answers the BYE.
fn answer_and_hang_up(sim: &mut Sim, dev: SocketAddr, inv: &Request) {
    let ok = reply(inv, 200, "OK", &format!("Contact: <sip:d@{dev}>\r\n"));
    sim.receive(dev, &ok);
    let rsp = to_caller(sim, 200, WAIT).expect("200 to the caller");
    assert_eq!(rsp.status().as_u16(), 200);
    let tag = rsp.headers().to().unwrap().tag().unwrap().to_owned();
    let caller: SocketAddr = CALLER.parse().unwrap();
    let in_dialog = |method: &str, cseq: u32| {
        format!(
            "{method} sip:mss@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK-{method}{cseq}\r\nMax-Forwards: 70\r\nFrom: <sip:100@{DOMAIN}>;tag=c100\r\nTo: {};tag={tag}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n",
            header(rsp.headers(), &HeaderName::To).split(";tag=").next().unwrap(),
            header(rsp.headers(), &HeaderName::CallId),
        )
    };
    sim.receive(caller, &in_dialog("ACK", 2));
    sim.receive(caller, &in_dialog("BYE", 3));
    let bye = request_to(sim, dev, Method::Bye).expect("BYE to the device");
    sim.receive(dev, &reply(&bye, 200, "OK", ""));
}

fn assert_clean(sim: &mut Sim) {
    sim.advance(Duration::from_secs(80));
    assert_eq!(sim.core.call_count(), 0, "{:?}", sim.core.active_calls());
    assert_eq!(sim.core.dialog_count(), 0);
}

/// [`setup`] with group `name` of 101 and 102, ringing `ring_s` seconds per member.
fn with_group(name: &str, strategy: GroupStrategy, ring_s: u64) -> Setup {
    let mut s = setup();
    s.calls.groups.insert(
        name.into(),
        GroupSettings {
            members: vec!["101".into(), "102".into()],
            strategy,
            ring_timeout: Duration::from_secs(ring_s),
        },
    );
    s
}

fn rules(f: impl FnOnce(&mut UserCalls)) -> UserCalls {
    let mut u = UserCalls::default();
    f(&mut u);
    u
}

#[test]
fn an_internal_user_may_not_dial_out() {
    let mut s = setup().line("p1", "127.0.0.2:5070", "2001", None);
    s.calls
        .users
        .insert("100".into(), rules(|u| u.call_level = CallLevel::Internal));
    let mut sim = Sim::start(s);
    call(&mut sim, "95551234");
    let rsp = to_caller(&mut sim, 300, WAIT).unwrap();
    assert_eq!(rsp.status().as_u16(), 403);
    assert!(header(rsp.headers(), &HeaderName::Warning).contains("call_level = internal"));
    assert_clean(&mut sim);
}

#[test]
fn a_national_user_may_not_dial_international_numbers() {
    let mut sim = Sim::start(setup().line("p1", "127.0.0.2:5070", "2001", None));
    call(&mut sim, "90049301234");
    let rsp = to_caller(&mut sim, 300, WAIT).unwrap();
    assert_eq!(rsp.status().as_u16(), 403);
    assert!(header(rsp.headers(), &HeaderName::Warning).contains("international"));
    assert_clean(&mut sim);
}

#[test]
fn busy_devices_forward_to_forward_busy_with_181() {
    let mut s = setup();
    s.calls
        .users
        .insert("101".into(), rules(|u| u.forward_busy = Some("102".into())));
    let mut sim = Sim::start(s);
    let d101 = registered(&mut sim, "101", "127.0.0.11:5062");
    let d102 = registered(&mut sim, "102", "127.0.0.12:5062");
    call(&mut sim, "101");
    let inv = invite_to(&mut sim, d101, WAIT).unwrap();
    sim.receive(d101, &answer(&inv, 486, "Busy Here", "b"));
    let forwarded = to_caller(&mut sim, 181, WAIT).unwrap();
    assert_eq!(forwarded.status().as_u16(), 181);
    assert!(header(
        forwarded.headers(),
        &HeaderName::from_bytes(bytes::Bytes::from_static(b"Call-Info"))
    )
    .contains("sip:101@"));
    let inv2 = invite_to(&mut sim, d102, WAIT).expect("the forward target rings");
    answer_and_hang_up(&mut sim, d102, &inv2);
    assert_clean(&mut sim);
}

#[test]
fn no_answer_forwards_after_the_timeout() {
    let mut s = setup();
    s.calls.users.insert(
        "101".into(),
        rules(|u| {
            u.forward_no_answer = Some("102".into());
            u.no_answer_timeout = Some(Duration::from_secs(5));
        }),
    );
    let mut sim = Sim::start(s);
    let d101 = registered(&mut sim, "101", "127.0.0.11:5062");
    let d102 = registered(&mut sim, "102", "127.0.0.12:5062");
    call(&mut sim, "101");
    let inv = invite_to(&mut sim, d101, WAIT).unwrap();
    sim.receive(d101, &answer(&inv, 180, "Ringing", "r"));
    let inv2 = invite_to(&mut sim, d102, Duration::from_secs(7)).expect("forwarded after 5 s");
    let cancel = request_to(&mut sim, d101, Method::Cancel).expect("the first device is cancelled");
    sim.receive(d101, &reply(&cancel, 200, "OK", ""));
    sim.receive(d101, &answer(&inv, 487, "Request Terminated", "r"));
    answer_and_hang_up(&mut sim, d102, &inv2);
    assert_clean(&mut sim);
}

#[test]
fn an_unreachable_user_forwards_out_through_a_line_with_diversion() {
    let mut s = setup().line("p1", "127.0.0.2:5070", "2001", None);
    s.calls.users.insert(
        "101".into(),
        rules(|u| u.forward_unreachable = Some("95550000".into())),
    );
    let mut sim = Sim::start(s);
    let provider: SocketAddr = "127.0.0.2:5070".parse().unwrap();
    let reg = request_to(&mut sim, provider, Method::Register).unwrap();
    sim.receive(
        provider,
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
    call(&mut sim, "101");
    let inv = invite_to(&mut sim, provider, WAIT).expect("out through the line");
    assert!(inv.uri_str().unwrap().starts_with("sip:5550000@"));
    let diversion = header(
        inv.headers(),
        &HeaderName::from_bytes(bytes::Bytes::from_static(b"Diversion")),
    );
    assert!(
        diversion.contains("sip:101@") && diversion.contains("reason=unavailable"),
        "{diversion}"
    );
    sim.receive(provider, &answer(&inv, 486, "Busy Here", "p"));
    assert_eq!(
        to_caller(&mut sim, 300, WAIT).unwrap().status().as_u16(),
        486
    );
    assert_clean(&mut sim);
}

#[test]
fn a_forward_loop_is_482() {
    let mut s = setup();
    s.calls.users.insert(
        "101".into(),
        rules(|u| u.forward_always = Some("102".into())),
    );
    s.calls.users.insert(
        "102".into(),
        rules(|u| u.forward_always = Some("101".into())),
    );
    let mut sim = Sim::start(s);
    call(&mut sim, "101");
    assert_eq!(
        to_caller(&mut sim, 300, WAIT).unwrap().status().as_u16(),
        482
    );
    assert_clean(&mut sim);
}

#[test]
fn a_ring_all_group_rings_everybody_and_the_first_answer_wins() {
    let mut sim = Sim::start(with_group("600", GroupStrategy::RingAll, 20));
    let d101 = registered(&mut sim, "101", "127.0.0.11:5062");
    let d102 = registered(&mut sim, "102", "127.0.0.12:5062");
    call(&mut sim, "600");
    let i1 = invite_to(&mut sim, d101, WAIT).unwrap();
    let i2 = invite_to(&mut sim, d102, WAIT).unwrap();
    sim.receive(d101, &answer(&i1, 180, "Ringing", "one"));
    sim.receive(d102, &answer(&i2, 180, "Ringing", "two"));
    answer_and_hang_up(&mut sim, d102, &i2);
    let cancel = request_to(&mut sim, d101, Method::Cancel).expect("the other member is cancelled");
    sim.receive(d101, &reply(&cancel, 200, "OK", ""));
    sim.receive(d101, &answer(&i1, 487, "Request Terminated", "one"));
    assert_clean(&mut sim);
}

#[test]
fn a_linear_group_rings_its_members_in_order() {
    let mut sim = Sim::start(with_group("601", GroupStrategy::Linear, 5));
    let d101 = registered(&mut sim, "101", "127.0.0.11:5062");
    let d102 = registered(&mut sim, "102", "127.0.0.12:5062");
    call(&mut sim, "601");
    let i1 = invite_to(&mut sim, d101, WAIT).unwrap();
    assert!(
        invite_to(&mut sim, d102, Duration::from_secs(1)).is_none(),
        "one at a time"
    );
    sim.receive(d101, &answer(&i1, 180, "Ringing", "one"));
    let i2 = invite_to(&mut sim, d102, Duration::from_secs(7)).expect("the next member after 5 s");
    let cancel = request_to(&mut sim, d101, Method::Cancel).unwrap();
    sim.receive(d101, &reply(&cancel, 200, "OK", ""));
    sim.receive(d101, &answer(&i1, 487, "Request Terminated", "one"));
    answer_and_hang_up(&mut sim, d102, &i2);
    assert_clean(&mut sim);
}

#[test]
fn a_group_with_nobody_available_is_480() {
    let mut sim = Sim::start(with_group("602", GroupStrategy::Circular, 5));
    call(&mut sim, "602");
    assert_eq!(
        to_caller(&mut sim, 300, WAIT).unwrap().status().as_u16(),
        480
    );
    assert_clean(&mut sim);
}

#[test]
fn a_devices_redirection_is_followed_to_another_user() {
    let mut sim = Sim::start(setup());
    let d101 = registered(&mut sim, "101", "127.0.0.11:5062");
    let d102 = registered(&mut sim, "102", "127.0.0.12:5062");
    call(&mut sim, "101");
    let inv = invite_to(&mut sim, d101, WAIT).unwrap();
    let moved = reply(
        &inv,
        302,
        "Moved Temporarily",
        &format!("Contact: <sip:102@{DOMAIN}>\r\n"),
    );
    sim.receive(d101, &moved);
    let forwarded = to_caller(&mut sim, 181, WAIT).unwrap();
    assert_eq!(forwarded.status().as_u16(), 181);
    let inv2 = invite_to(&mut sim, d102, WAIT).expect("the redirection target rings");
    answer_and_hang_up(&mut sim, d102, &inv2);
    assert_clean(&mut sim);
}

#[test]
fn a_redirection_to_a_foreign_number_goes_out_through_a_line() {
    let mut sim = Sim::start(setup().line("p1", "127.0.0.2:5070", "2001", None));
    let provider: SocketAddr = "127.0.0.2:5070".parse().unwrap();
    let reg = request_to(&mut sim, provider, Method::Register).unwrap();
    sim.receive(
        provider,
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
    let d101 = registered(&mut sim, "101", "127.0.0.11:5062");
    call(&mut sim, "101");
    let inv = invite_to(&mut sim, d101, WAIT).unwrap();
    sim.receive(
        d101,
        &reply(
            &inv,
            302,
            "Moved Temporarily",
            "Contact: <sip:5557777@mobile.example>\r\n",
        ),
    );
    let out = invite_to(&mut sim, provider, WAIT).expect("out through the line");
    assert!(out.uri_str().unwrap().starts_with("sip:5557777@"));
    let diversion = header(
        out.headers(),
        &HeaderName::from_bytes(bytes::Bytes::from_static(b"Diversion")),
    );
    assert!(diversion.contains("reason=deflection"), "{diversion}");
    sim.receive(provider, &answer(&out, 486, "Busy Here", "p"));
    assert_eq!(
        to_caller(&mut sim, 300, WAIT).unwrap().status().as_u16(),
        486
    );
    assert_clean(&mut sim);
}

#[test]
fn a_redirection_to_nobody_is_480() {
    let mut sim = Sim::start(setup());
    let d101 = registered(&mut sim, "101", "127.0.0.11:5062");
    call(&mut sim, "101");
    let inv = invite_to(&mut sim, d101, WAIT).unwrap();
    sim.receive(
        d101,
        &reply(
            &inv,
            302,
            "Moved Temporarily",
            &format!("Contact: <sip:nobody@{DOMAIN}>\r\n"),
        ),
    );
    assert_eq!(
        to_caller(&mut sim, 300, WAIT).unwrap().status().as_u16(),
        480
    );
    assert_clean(&mut sim);
}
