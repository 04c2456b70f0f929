//! The calls of the simulations: a calling phone ([`Caller`]), devices' answers and
//! requests, and the waits for what mss sends (shared by every `sim_*.rs` of calls).

use std::net::SocketAddr;
use std::time::Duration;

use mss_sip::{HeaderName, Method, Request, Response};

use super::{digest_answer, Phone, Sim, DOMAIN};

pub const SDP_A: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.10\r\ns=-\r\nc=IN IP4 127.0.0.10\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
pub const SDP_B: &str = "v=0\r\no=- 2 2 IN IP4 127.0.0.11\r\ns=-\r\nc=IN IP4 127.0.0.11\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
pub const SDP_HOLD: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.10\r\ns=-\r\nc=IN IP4 127.0.0.10\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=sendonly\r\n";

pub const WAIT: Duration = Duration::from_secs(2);

/// The value of header `name` (spelt as on the wire), empty when absent.
pub fn header_named(msg_headers: &mss_sip::Headers, name: &str) -> String {
    header(
        msg_headers,
        &HeaderName::from_bytes(bytes::Bytes::copy_from_slice(name.as_bytes())),
    )
}

pub fn header(msg_headers: &mss_sip::Headers, name: &HeaderName) -> String {
    msg_headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

/// `code reason` to `req` with To tag `tag` (unless it has one), extra header lines and
/// an SDP body (empty: none).
pub fn answer(req: &Request, code: u16, reason: &str, tag: &str, extra: &str, sdp: &str) -> String {
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
pub fn device_answer(
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

/// A device's answer to mss's INVITE with its Contact and `extra` header lines, the
/// reason phrase the usual one of `code`.
pub fn device_answer_with(
    req: &Request,
    device: SocketAddr,
    code: u16,
    tag: &str,
    extra: &str,
    sdp: &str,
) -> String {
    let reason = match code {
        180 => "Ringing",
        183 => "Session Progress",
        200 => "OK",
        _ => "Whatever",
    };
    answer(
        req,
        code,
        reason,
        tag,
        &format!("Contact: <sip:dev@{device}>\r\n{extra}"),
        sdp,
    )
}

/// A phone that calls: the INVITE's fields and the dialog it gets.
pub struct Caller {
    pub user: String,
    pub password: String,
    pub addr: SocketAddr,
    pub call_id: String,
    pub cseq: u32,
    pub remote_tag: String,
    /// mss's Contact (the remote target) from its answer.
    pub target: String,
    /// The INVITE as last sent.
    pub invite_cseq: u32,
    pub target_user: String,
    pub branch: u32,
}

impl Caller {
    pub fn new(user: &str, password: &str, addr: &str) -> Caller {
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

    pub fn via(&mut self) -> String {
        self.branch += 1;
        format!(
            "SIP/2.0/UDP {};branch=z9hG4bK-c{}-{};rport",
            self.addr, self.user, self.branch
        )
    }

    pub fn invite_text(&mut self, to: &str, extra: &str, sdp: &str) -> String {
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
    pub fn call(&mut self, sim: &mut Sim, to: &str, extra: &str, sdp: &str) -> u16 {
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
    pub fn response(&self, sim: &mut Sim, min: u16) -> Option<Response> {
        let me = self.addr;
        sim.wait_for(WAIT, |s| {
            s.response()
                .filter(|r| s.to.remote == me && r.status().as_u16() >= min)
                .cloned()
        })
    }

    /// Takes the dialog of mss's answer (its To tag and Contact).
    pub fn learn(&mut self, rsp: &Response) {
        self.remote_tag = rsp.headers().to().unwrap().tag().unwrap().to_owned();
        if let Ok(mss_sip::Contacts::List(list)) = rsp.headers().contacts() {
            if let Some(c) = list.first() {
                self.target = c.addr.uri_str.to_owned();
            }
        }
    }

    pub fn in_dialog_text(&mut self, method: &str, cseq: u32, sdp: &str) -> String {
        self.in_dialog_text_with(method, cseq, "", sdp)
    }

    /// A request in our dialog with mss, with `extra` header lines.
    pub fn in_dialog_text_with(
        &mut self,
        method: &str,
        cseq: u32,
        extra: &str,
        sdp: &str,
    ) -> String {
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
        // Before mss's answer taught us its Contact: the user we call.
        let target = if target.is_empty() {
            format!("sip:{target_user}@{DOMAIN}")
        } else {
            target.clone()
        };
        format!(
            "{method} {target} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@{DOMAIN}>;tag=c{user}\r\nTo: <sip:{target_user}@{DOMAIN}>;tag={remote_tag}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:{user}@{addr}>\r\n{extra}{ct}Content-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        )
    }

    /// The CANCEL of our INVITE to 101 sent with branch number `branch` and CSeq `cseq`
    /// (RFC 3261 §9.1: the INVITE's Via, Call-ID, From, To and CSeq number).
    pub fn cancel_text(&self, branch: u32, cseq: u32) -> String {
        format!(
            "CANCEL sip:101@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-c100-{};rport\r\nMax-Forwards: 70\r\nFrom: \"User 100\" <sip:100@{DOMAIN}>;tag=c100\r\nTo: <sip:101@{DOMAIN}>\r\nCall-ID: {}\r\nCSeq: {} CANCEL\r\nContent-Length: 0\r\n\r\n",
            self.addr, branch, self.call_id, cseq
        )
    }

    pub fn ack(&mut self, sim: &mut Sim) {
        let text = self.in_dialog_text("ACK", self.invite_cseq, "");
        sim.receive(self.addr, &text);
    }

    pub fn send(&mut self, sim: &mut Sim, method: &str, sdp: &str) -> u32 {
        self.send_with(sim, method, "", sdp)
    }

    /// Sends a new request in the dialog with `extra` header lines; returns its CSeq.
    pub fn send_with(&mut self, sim: &mut Sim, method: &str, extra: &str, sdp: &str) -> u32 {
        self.cseq += 1;
        if method == "INVITE" {
            self.invite_cseq = self.cseq;
        }
        let text = self.in_dialog_text_with(method, self.cseq, extra, sdp);
        sim.receive(self.addr, &text);
        self.cseq
    }

    /// The ACK of a non-`2xx` answer to our last request: the request's branch, part of
    /// its transaction (RFC 3261 §17.1.1.3).
    pub fn ack_failure(&mut self, sim: &mut Sim) {
        self.branch -= 1;
        self.ack(sim);
    }
}

/// A request of a device in mss's dialog with it (whose INVITE was `invite`): BYE, re-INVITE…
pub fn device_request(
    invite: &Request,
    device: SocketAddr,
    tag: &str,
    method: &str,
    cseq: u32,
    sdp: &str,
) -> String {
    device_request_with(invite, device, tag, method, cseq, "", sdp)
}

/// A request of a device in mss's dialog with it, with `extra` header lines.
pub fn device_request_with(
    invite: &Request,
    device: SocketAddr,
    tag: &str,
    method: &str,
    cseq: u32,
    extra: &str,
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
        "{method} {contact} SIP/2.0\r\nVia: SIP/2.0/UDP {device};branch=z9hG4bK-d{tag}-{method}-{cseq}\r\nMax-Forwards: 70\r\nFrom: {};tag={tag}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\nContact: <sip:dev@{device}>\r\n{extra}{ct}Content-Length: {}\r\n\r\n{sdp}",
        header(h, &HeaderName::To),
        header(h, &HeaderName::From),
        header(h, &HeaderName::CallId),
        sdp.len()
    )
}

/// The next INVITE mss sends to `device`.
pub fn invite_to(sim: &mut Sim, device: SocketAddr) -> Request {
    sim.wait_for(WAIT, |s| {
        s.request()
            .filter(|r| *r.method() == Method::Invite && s.to.remote == device)
            .cloned()
    })
    .unwrap_or_else(|| panic!("no INVITE to {device}: {:?}", sim.sent))
}

/// The next request with `method` mss sends to `to`.
pub fn request_to(sim: &mut Sim, to: SocketAddr, method: Method) -> Option<Request> {
    sim.wait_for(WAIT, |s| {
        s.request()
            .filter(|r| *r.method() == method && s.to.remote == to)
            .cloned()
    })
}

/// A response mss sent to `to` for CSeq method `method`.
pub fn response_to(sim: &mut Sim, to: SocketAddr, method: Method) -> Option<Response> {
    sim.wait_for(WAIT, |s| {
        s.response()
            .filter(|r| s.to.remote == to && r.headers().cseq().unwrap().method == method)
            .cloned()
    })
}

/// The next final response mss sends to `to`.
pub fn final_response_to(sim: &mut Sim, to: SocketAddr) -> Option<Response> {
    sim.wait_for(WAIT, |s| {
        s.response()
            .filter(|r| s.to.remote == to && r.status().as_u16() >= 200)
            .cloned()
    })
}

pub fn registered(sim: &mut Sim, user: &str, password: &str, addr: &str) -> SocketAddr {
    let mut p = Phone::new(user, password, addr);
    assert_eq!(p.register(sim, 600).unwrap().status().as_u16(), 200);
    p.addr
}

/// Nothing of the call service is left: no call, dialog, relay session, transfer or
/// session timer.
pub fn assert_clean(sim: &mut Sim) {
    sim.advance(Duration::from_secs(80));
    assert_eq!(
        sim.core.call_count(),
        0,
        "calls left: {:?}",
        sim.core.active_calls()
    );
    assert_eq!(sim.core.dialog_count(), 0, "dialogs left");
    assert_eq!(sim.core.media_session_count(), 0, "relay sessions left");
    assert_eq!(sim.relay_sessions(), [], "the relay holds ports");
    assert_eq!(sim.core.transfer_count(), 0, "transfers left");
    assert_eq!(sim.core.session_timer_count(), 0, "session timers left");
}

pub fn calls_stored(sim: &Sim) -> usize {
    sim.store_log.iter().filter(|s| *s == "PutCall").count()
}

/// Caller 100 calls 101 (one device) and the device answers: returns the caller, the
/// device's address and the INVITE mss sent it.
pub fn answered_call(sim: &mut Sim) -> (Caller, SocketAddr, Request) {
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
