//! Calls through the whole core in simulated time (DESIGN §8): mss as a B2BUA between a
//! caller and one or more devices, or a line's provider. Each scenario checks what both
//! sides saw, and that no call, dialog or transaction of the service is left behind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sim;

use std::net::SocketAddr;
use std::time::Duration;

use mss_sip::{Flow, HeaderName, Method, Request, Response};
use sim::{digest_answer, reply, Phone, Setup, Sim, DOMAIN};

const SDP_A: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.10\r\ns=-\r\nc=IN IP4 127.0.0.10\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
const SDP_B: &str = "v=0\r\no=- 2 2 IN IP4 127.0.0.11\r\ns=-\r\nc=IN IP4 127.0.0.11\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
const SDP_HOLD: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.10\r\ns=-\r\nc=IN IP4 127.0.0.10\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=sendonly\r\n";

const WAIT: Duration = Duration::from_secs(2);

fn header(msg_headers: &mss_sip::Headers, name: &HeaderName) -> String {
    msg_headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

/// `code reason` to `req` with To tag `tag` (unless it has one), extra header lines and
/// an SDP body (empty: none).
fn answer(req: &Request, code: u16, reason: &str, tag: &str, extra: &str, sdp: &str) -> String {
    let h = req.headers();
    let vias: String = h
        .get_all(&HeaderName::Via)
        .map(|v| format!("Via: {}\r\n", String::from_utf8_lossy(v)))
        .collect();
    let to = header(h, &HeaderName::To);
    let to = if to.contains(";tag=") {
        to
    } else {
        format!("{to};tag={tag}")
    };
    let body = if sdp.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".to_owned()
    };
    format!(
        "SIP/2.0 {code} {reason}\r\n{vias}From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\n{extra}{body}Content-Length: {}\r\n\r\n{sdp}",
        header(h, &HeaderName::From),
        header(h, &HeaderName::CallId),
        header(h, &HeaderName::CSeq),
        sdp.len()
    )
}

/// A device's answer to mss's INVITE, with a Contact.
fn device_answer(
    req: &Request,
    device: SocketAddr,
    code: u16,
    reason: &str,
    tag: &str,
    sdp: &str,
) -> String {
    answer(
        req,
        code,
        reason,
        tag,
        &format!("Contact: <sip:dev@{device}>\r\n"),
        sdp,
    )
}

/// A phone that calls: the INVITE's fields and the dialog it gets.
struct Caller {
    user: String,
    password: String,
    addr: SocketAddr,
    call_id: String,
    cseq: u32,
    remote_tag: String,
    /// mss's Contact (the remote target) from its answer.
    target: String,
    /// The INVITE as last sent.
    invite_cseq: u32,
    target_user: String,
    branch: u32,
}

impl Caller {
    fn new(user: &str, password: &str, addr: &str) -> Caller {
        Caller {
            user: user.into(),
            password: password.into(),
            addr: addr.parse().unwrap(),
            call_id: format!("call-{user}-{addr}"),
            cseq: 0,
            remote_tag: String::new(),
            target: String::new(),
            invite_cseq: 0,
            target_user: String::new(),
            branch: 0,
        }
    }

    fn via(&mut self) -> String {
        self.branch += 1;
        format!(
            "SIP/2.0/UDP {};branch=z9hG4bK-c{}-{};rport",
            self.addr, self.user, self.branch
        )
    }

    fn invite_text(&mut self, to: &str, extra: &str, sdp: &str) -> String {
        self.cseq += 1;
        self.invite_cseq = self.cseq;
        let via = self.via();
        let Caller {
            user,
            addr,
            call_id,
            cseq,
            ..
        } = &*self;
        let ct = if sdp.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        };
        format!(
            "INVITE sip:{to}@{DOMAIN} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: \"User {user}\" <sip:{user}@{DOMAIN}>;tag=c{user}\r\nTo: <sip:{to}@{DOMAIN}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:{user}@{addr}>\r\n{extra}{ct}Content-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        )
    }

    /// Sends the INVITE, answers the `407`; returns the status of the first answer.
    fn call(&mut self, sim: &mut Sim, to: &str, extra: &str, sdp: &str) -> u16 {
        self.target_user = to.into();
        let text = self.invite_text(to, extra, sdp);
        sim.receive(self.addr, &text);
        let first = sim.response_to(self.addr).expect("an answer to the INVITE");
        let status = first.status().as_u16();
        if status != 407 {
            return status;
        }
        // The ACK of the 407 (same branch, RFC 3261 §17.1.1.3).
        let ack_via = format!(
            "SIP/2.0/UDP {};branch=z9hG4bK-c{}-{};rport",
            self.addr, self.user, self.branch
        );
        let ack = format!(
            "ACK sip:{to}@{DOMAIN} SIP/2.0\r\nVia: {ack_via}\r\nMax-Forwards: 70\r\nFrom: <sip:{u}@{DOMAIN}>;tag=c{u}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} ACK\r\nContent-Length: 0\r\n\r\n",
            header(first.headers(), &HeaderName::To),
            self.call_id,
            self.cseq,
            u = self.user,
        );
        sim.receive(self.addr, &ack);
        let auth = digest_answer(
            &first,
            &HeaderName::ProxyAuthenticate,
            "INVITE",
            &format!("sip:{to}@{DOMAIN}"),
            &self.user,
            &self.password,
            1,
        );
        let text = self.invite_text(to, &format!("{extra}Proxy-Authorization: {auth}\r\n"), sdp);
        sim.receive(self.addr, &text);
        407
    }

    /// The next response mss sent us with a status at least `min`.
    fn response(&self, sim: &mut Sim, min: u16) -> Option<Response> {
        let me = self.addr;
        sim.wait_for(WAIT, |s| {
            s.response()
                .filter(|r| s.to.remote == me && r.status().as_u16() >= min)
                .cloned()
        })
    }

    /// Takes the dialog of mss's answer (its To tag and Contact).
    fn learn(&mut self, rsp: &Response) {
        self.remote_tag = rsp.headers().to().unwrap().tag().unwrap().to_owned();
        if let Ok(mss_sip::Contacts::List(list)) = rsp.headers().contacts() {
            if let Some(c) = list.first() {
                self.target = c.addr.uri_str.to_owned();
            }
        }
    }

    fn in_dialog_text(&mut self, method: &str, cseq: u32, sdp: &str) -> String {
        let via = self.via();
        let Caller {
            user,
            addr,
            call_id,
            remote_tag,
            target,
            target_user,
            ..
        } = &*self;
        let ct = if sdp.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        };
        format!(
            "{method} {target} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@{DOMAIN}>;tag=c{user}\r\nTo: <sip:{target_user}@{DOMAIN}>;tag={remote_tag}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:{user}@{addr}>\r\n{ct}Content-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        )
    }

    /// The CANCEL of our INVITE to 101 sent with branch number `branch` and CSeq `cseq`
    /// (RFC 3261 §9.1: the INVITE's Via, Call-ID, From, To and CSeq number).
    fn cancel_text(&self, branch: u32, cseq: u32) -> String {
        format!(
            "CANCEL sip:101@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-c100-{};rport\r\nMax-Forwards: 70\r\nFrom: \"User 100\" <sip:100@{DOMAIN}>;tag=c100\r\nTo: <sip:101@{DOMAIN}>\r\nCall-ID: {}\r\nCSeq: {} CANCEL\r\nContent-Length: 0\r\n\r\n",
            self.addr, branch, self.call_id, cseq
        )
    }

    fn ack(&mut self, sim: &mut Sim) {
        let text = self.in_dialog_text("ACK", self.invite_cseq, "");
        sim.receive(self.addr, &text);
    }

    fn send(&mut self, sim: &mut Sim, method: &str, sdp: &str) -> u32 {
        self.cseq += 1;
        if method == "INVITE" {
            self.invite_cseq = self.cseq;
        }
        let text = self.in_dialog_text(method, self.cseq, sdp);
        sim.receive(self.addr, &text);
        self.cseq
    }
}

/// A request of a device in mss's dialog with it (whose INVITE was `invite`): BYE, re-INVITE…
fn device_request(
    invite: &Request,
    device: SocketAddr,
    tag: &str,
    method: &str,
    cseq: u32,
    sdp: &str,
) -> String {
    let h = invite.headers();
    let contact = match h.contacts().unwrap() {
        mss_sip::Contacts::List(l) => l[0].addr.uri_str.to_owned(),
        mss_sip::Contacts::Star => panic!(),
    };
    let ct = if sdp.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "{method} {contact} SIP/2.0\r\nVia: SIP/2.0/UDP {device};branch=z9hG4bK-d{tag}-{method}-{cseq}\r\nMax-Forwards: 70\r\nFrom: {};tag={tag}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\nContact: <sip:dev@{device}>\r\n{ct}Content-Length: {}\r\n\r\n{sdp}",
        header(h, &HeaderName::To),
        header(h, &HeaderName::From),
        header(h, &HeaderName::CallId),
        sdp.len()
    )
}

/// The next INVITE mss sends to `device`.
fn invite_to(sim: &mut Sim, device: SocketAddr) -> Request {
    sim.wait_for(WAIT, |s| {
        s.request()
            .filter(|r| *r.method() == Method::Invite && s.to.remote == device)
            .cloned()
    })
    .unwrap_or_else(|| panic!("no INVITE to {device}: {:?}", sim.sent))
}

/// The next request with `method` mss sends to `to`.
fn request_to(sim: &mut Sim, to: SocketAddr, method: Method) -> Option<Request> {
    sim.wait_for(WAIT, |s| {
        s.request()
            .filter(|r| *r.method() == method && s.to.remote == to)
            .cloned()
    })
}

/// A response mss sent to `to` for CSeq method `method`.
fn response_to(sim: &mut Sim, to: SocketAddr, method: Method) -> Option<Response> {
    sim.wait_for(WAIT, |s| {
        s.response()
            .filter(|r| s.to.remote == to && r.headers().cseq().unwrap().method == method)
            .cloned()
    })
}

/// The next final response mss sends to `to`.
fn final_response_to(sim: &mut Sim, to: SocketAddr) -> Option<Response> {
    sim.wait_for(WAIT, |s| {
        s.response()
            .filter(|r| s.to.remote == to && r.status().as_u16() >= 200)
            .cloned()
    })
}

fn registered(sim: &mut Sim, user: &str, password: &str, addr: &str) -> SocketAddr {
    let mut p = Phone::new(user, password, addr);
    assert_eq!(p.register(sim, 600).unwrap().status().as_u16(), 200);
    p.addr
}

/// Nothing of the call service is left: no call, no dialog.
fn assert_clean(sim: &mut Sim) {
    sim.advance(Duration::from_secs(80));
    assert_eq!(
        sim.core.call_count(),
        0,
        "calls left: {:?}",
        sim.core.active_calls()
    );
    assert_eq!(sim.core.dialog_count(), 0, "dialogs left");
    assert_eq!(sim.core.transfer_count(), 0, "transfers left");
}

fn calls_stored(sim: &Sim) -> usize {
    sim.store_log.iter().filter(|s| *s == "PutCall").count()
}

/// Caller 100 calls 101 (one device) and the device answers: returns the caller, the
/// device's address and the INVITE mss sent it.
fn answered_call(sim: &mut Sim) -> (Caller, SocketAddr, Request) {
    let dev = registered(sim, "101", "pw-101", "127.0.0.11:5062");
    let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
    assert_eq!(alice.call(sim, "101", "", SDP_A), 407);
    let trying = alice.response(sim, 100).unwrap();
    assert_eq!(trying.status().as_u16(), 100);
    let inv = invite_to(sim, dev);
    assert_eq!(
        inv.body().as_ref(),
        SDP_A.as_bytes(),
        "the offer passes through"
    );
    assert!(header(inv.headers(), &HeaderName::From).contains("sip:100@pbx.test"));
    sim.receive(dev, &device_answer(&inv, dev, 180, "Ringing", "dev1", ""));
    let ringing = alice.response(sim, 101).unwrap();
    assert_eq!(ringing.status().as_u16(), 180);
    sim.receive(dev, &device_answer(&inv, dev, 200, "OK", "dev1", SDP_B));
    let ok = alice.response(sim, 200).unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(
        ok.body().as_ref(),
        SDP_B.as_bytes(),
        "the answer passes through"
    );
    assert_eq!(
        ok.headers().to().unwrap().tag(),
        ringing.headers().to().unwrap().tag(),
        "one dialog towards the caller"
    );
    alice.learn(&ok);
    assert!(
        alice.target.starts_with("sip:mss@127.0.0.1:5060"),
        "{}",
        alice.target
    );
    // The device's 2xx is acknowledged once the caller acknowledges ours.
    assert!(
        request_to(sim, dev, Method::Ack).is_none(),
        "ACK before the caller's"
    );
    alice.ack(sim);
    let ack = request_to(sim, dev, Method::Ack).expect("ACK relayed");
    assert_eq!(
        ack.headers().cseq().unwrap().seq,
        inv.headers().cseq().unwrap().seq
    );
    (alice, dev, inv)
}

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
        let mut sim = Sim::start(Setup::default());
        let d1 = registered(&mut sim, "101", "pw-101", "127.0.0.11:5062");
        let d2 = registered(&mut sim, "101", "pw-101", "127.0.0.12:5062");
        let mut alice = Caller::new("100", "pw-100", "127.0.0.10:5062");
        alice.call(&mut sim, "101", "", SDP_A);
        let mut answered = false;
        for _ in 0..rng.gen_range(3..25) {
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
