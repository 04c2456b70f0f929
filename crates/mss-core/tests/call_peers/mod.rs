//! The peers of a call in simulated time, for the scenarios of the call extensions
//! (`sim_prack.rs`, `sim_session_timer.rs`): a caller that writes its INVITE and in-dialog
//! requests as a phone would, a device's answers, and the checks that nothing is left.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use mss_sip::{HeaderName, Method, Request, Response};

use crate::sim::{digest_answer, Phone, Sim, DOMAIN};

pub const SDP_A: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.10\r\ns=-\r\nc=IN IP4 127.0.0.10\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
pub const SDP_B: &str = "v=0\r\no=- 2 2 IN IP4 127.0.0.11\r\ns=-\r\nc=IN IP4 127.0.0.11\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

pub const WAIT: Duration = Duration::from_secs(2);

pub fn header(h: &mss_sip::Headers, name: &str) -> String {
    h.get(&HeaderName::from_bytes(bytes::Bytes::copy_from_slice(
        name.as_bytes(),
    )))
    .map(|v| String::from_utf8_lossy(v).into_owned())
    .unwrap_or_default()
}

/// `code reason` to `req` with To tag `tag` (unless it has one), extra header lines and an
/// SDP body (empty: none).
pub fn answer(req: &Request, code: u16, reason: &str, tag: &str, extra: &str, sdp: &str) -> String {
    let h = req.headers();
    let vias: String = h
        .get_all(&HeaderName::Via)
        .map(|v| format!("Via: {}\r\n", String::from_utf8_lossy(v)))
        .collect();
    let to = header(h, "To");
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
        header(h, "From"),
        header(h, "Call-ID"),
        header(h, "CSeq"),
        sdp.len()
    )
}

/// A device's answer to mss's INVITE, with its Contact and `extra` header lines.
pub fn device_answer(
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

/// A request of a device in mss's dialog with it (whose INVITE was `invite`).
pub fn device_request(
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
        header(h, "To"),
        header(h, "From"),
        header(h, "Call-ID"),
        sdp.len()
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
    pub target: String,
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
        let ct = if sdp.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        };
        format!(
            "INVITE sip:{to}@{DOMAIN} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: \"User {u}\" <sip:{u}@{DOMAIN}>;tag=c{u}\r\nTo: <sip:{to}@{DOMAIN}>\r\nCall-ID: {}\r\nCSeq: {} INVITE\r\nContact: <sip:{u}@{}>\r\n{extra}{ct}Content-Length: {}\r\n\r\n{sdp}",
            self.call_id,
            self.cseq,
            self.addr,
            sdp.len(),
            u = self.user,
        )
    }

    /// Sends the INVITE with `extra` header lines, answers the `407`; returns the status
    /// of the first answer (`407` when it was challenged and sent again).
    pub fn call(&mut self, sim: &mut Sim, to: &str, extra: &str, sdp: &str) -> u16 {
        self.target_user = to.into();
        let text = self.invite_text(to, extra, sdp);
        sim.receive(self.addr, &text);
        let first = sim.response_to(self.addr).expect("an answer to the INVITE");
        let status = first.status().as_u16();
        if status != 407 {
            return status;
        }
        let ack = format!(
            "ACK sip:{to}@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-c{u}-{};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{u}@{DOMAIN}>;tag=c{u}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} ACK\r\nContent-Length: 0\r\n\r\n",
            self.addr,
            self.branch,
            header(first.headers(), "To"),
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

    /// A request in our dialog with mss, with `extra` header lines.
    pub fn in_dialog_text(&mut self, method: &str, cseq: u32, extra: &str, sdp: &str) -> String {
        let via = self.via();
        let ct = if sdp.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        };
        let target = if self.target.is_empty() {
            format!("sip:{}@{DOMAIN}", self.target_user)
        } else {
            self.target.clone()
        };
        format!(
            "{method} {target} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: <sip:{u}@{DOMAIN}>;tag=c{u}\r\nTo: <sip:{}@{DOMAIN}>;tag={}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\nContact: <sip:{u}@{}>\r\n{extra}{ct}Content-Length: {}\r\n\r\n{sdp}",
            self.target_user,
            self.remote_tag,
            self.call_id,
            self.addr,
            sdp.len(),
            u = self.user,
        )
    }

    pub fn ack(&mut self, sim: &mut Sim) {
        let text = self.in_dialog_text("ACK", self.invite_cseq, "", "");
        sim.receive(self.addr, &text);
    }

    /// The ACK of a non-`2xx` answer to our last request (a re-INVITE): the INVITE's
    /// branch, part of its transaction (RFC 3261 §17.1.1.3).
    pub fn ack_failure(&mut self, sim: &mut Sim) {
        self.branch -= 1;
        self.ack(sim);
    }

    /// Sends a new request in the dialog; returns its CSeq number.
    pub fn send(&mut self, sim: &mut Sim, method: &str, extra: &str, sdp: &str) -> u32 {
        self.cseq += 1;
        if method == "INVITE" {
            self.invite_cseq = self.cseq;
        }
        let text = self.in_dialog_text(method, self.cseq, extra, sdp);
        sim.receive(self.addr, &text);
        self.cseq
    }
}

/// The next request with `method` mss sends to `to`.
pub fn request_to(sim: &mut Sim, to: SocketAddr, method: Method) -> Option<Request> {
    sim.wait_for(WAIT, |s| {
        s.request()
            .filter(|r| *r.method() == method && s.to.remote == to)
            .cloned()
    })
}

/// The next response mss sends to `to` for CSeq method `method`.
pub fn response_to(sim: &mut Sim, to: SocketAddr, method: Method) -> Option<Response> {
    sim.wait_for(WAIT, |s| {
        s.response()
            .filter(|r| s.to.remote == to && r.headers().cseq().unwrap().method == method)
            .cloned()
    })
}

pub fn registered(sim: &mut Sim, user: &str, password: &str, addr: &str) -> SocketAddr {
    let mut p = Phone::new(user, password, addr);
    assert_eq!(p.register(sim, 600).unwrap().status().as_u16(), 200);
    p.addr
}

/// Nothing of the call service is left: no call, no dialog, no session timer.
pub fn assert_clean(sim: &mut Sim) {
    sim.advance(Duration::from_secs(80));
    assert_eq!(
        sim.core.call_count(),
        0,
        "calls left: {:?}",
        sim.core.active_calls()
    );
    assert_eq!(sim.core.dialog_count(), 0, "dialogs left");
    assert_eq!(sim.core.session_timer_count(), 0, "session timers left");
}
