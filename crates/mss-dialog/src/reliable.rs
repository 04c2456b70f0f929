//! Reliable provisional responses (RFC 3262): the `RSeq` and `RAck` headers, mss's
//! provisional responses sent reliably as UAS (§3: its own RSeq, retransmitted until the
//! PRACK, one unacknowledged at a time, a `2xx` held while one with a session description
//! waits), and what mss as UAC makes of a peer's reliable provisional responses (§4).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use mss_sip::{HeaderName, Headers, Method, ParseError, ParseErrorKind, Request, Response};
use mss_txn::Timers;
use rand::{Rng, RngCore};

/// The option tag of RFC 3262.
pub const TAG_100REL: &str = "100rel";

/// How many reliable provisional responses may wait behind the unacknowledged one; more
/// are dropped (a provisional response is never needed for the call to go on).
const MAX_QUEUED: usize = 8;

/// The `RSeq` header name (RFC 3262 §7.1).
pub fn rseq_header() -> HeaderName {
    HeaderName::from_static("RSeq")
}

/// The `RAck` header name (RFC 3262 §7.2).
pub fn rack_header() -> HeaderName {
    HeaderName::from_static("RAck")
}

/// A parsed `RAck`: the RSeq of the provisional response acknowledged, and the CSeq number
/// and method of the request it answered (RFC 3262 §7.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RAck {
    /// The response's RSeq.
    pub rseq: u32,
    /// The request's CSeq number.
    pub cseq: u32,
    /// The request's method.
    pub method: Method,
}

impl RAck {
    /// The header value: `RSEQ CSEQ METHOD`.
    pub fn value(&self) -> String {
        format!("{} {} {}", self.rseq, self.cseq, self.method.as_str())
    }
}

fn number(text: &str, name: &HeaderName) -> Result<u32, ParseError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::in_header(
            ParseErrorKind::BadHeaderValue,
            name.clone(),
            0,
        ));
    }
    text.parse::<u32>()
        .map_err(|_| ParseError::in_header(ParseErrorKind::ValueOutOfRange, name.clone(), 0))
}

fn text<'a>(headers: &'a Headers, name: &HeaderName) -> Result<Option<&'a str>, ParseError> {
    headers
        .get(name)
        .map(|v| {
            std::str::from_utf8(v)
                .map(str::trim)
                .map_err(|_| ParseError::in_header(ParseErrorKind::BadHeaderValue, name.clone(), 0))
        })
        .transpose()
}

/// The `RSeq` of a response, if any.
///
/// # Errors
/// `BadHeaderValue` or `ValueOutOfRange` in RSeq.
pub fn rseq(headers: &Headers) -> Result<Option<u32>, ParseError> {
    let name = rseq_header();
    text(headers, &name)?.map(|t| number(t, &name)).transpose()
}

/// The `RAck` of a PRACK, if any.
///
/// # Errors
/// `BadHeaderValue` or `ValueOutOfRange` in RAck.
pub fn rack(headers: &Headers) -> Result<Option<RAck>, ParseError> {
    let name = rack_header();
    let Some(t) = text(headers, &name)? else {
        return Ok(None);
    };
    let mut parts = t.split_ascii_whitespace();
    let bad = || ParseError::in_header(ParseErrorKind::BadHeaderValue, rack_header(), 0);
    let rseq = number(parts.next().ok_or_else(bad)?, &name)?;
    let cseq = number(parts.next().ok_or_else(bad)?, &name)?;
    let method = Method::from_bytes(bytes::Bytes::copy_from_slice(
        parts.next().ok_or_else(bad)?.as_bytes(),
    ));
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(Some(RAck { rseq, cseq, method }))
}

/// True when a response is a reliable provisional one (`Require: 100rel`, RFC 3262 §3).
pub fn is_reliable(response: &Response) -> bool {
    let status = response.status().0;
    (101..200).contains(&status)
        && response
            .headers()
            .require()
            .is_ok_and(|t| t.iter().any(|x| x.eq_ignore_ascii_case(TAG_100REL)))
}

/// Which provisional responses mss sends reliably to one INVITE (RFC 3262 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reliability {
    /// `Require: 100rel`: every one but `100`.
    Always,
    /// `Supported: 100rel`: those with a body (early media's session description), as
    /// Asterisk and FreeSWITCH do; a `180` without body goes as before.
    WithBody,
}

impl Reliability {
    /// What the INVITE asked for; `None`: it does not know 100rel.
    pub(crate) fn of(invite: &Request) -> Option<Reliability> {
        let h = invite.headers();
        let listed = |tags: Result<Vec<&str>, ParseError>| {
            tags.is_ok_and(|t| t.iter().any(|x| x.eq_ignore_ascii_case(TAG_100REL)))
        };
        if listed(h.require()) {
            Some(Reliability::Always)
        } else if listed(h.supported()) {
            Some(Reliability::WithBody)
        } else {
            None
        }
    }
}

/// The reliable provisional response sent and not yet acknowledged.
#[derive(Debug, Clone)]
struct Unacked {
    rseq: u32,
    response: Response,
    has_body: bool,
    /// False once a final response went: no more retransmissions, a PRACK still matches.
    retransmit: bool,
    next_at: Instant,
    interval: Duration,
    give_up_at: Instant,
}

/// What a timeout does to the unacknowledged reliable provisional response.
#[derive(Debug, Clone)]
pub(crate) enum ReliableStep {
    /// Send it once more.
    Resend(Response),
    /// 64·T1 without PRACK (RFC 3262 §3): the INVITE should fail with a `5xx`.
    GiveUp,
    /// Nothing due.
    NotYet,
}

/// mss's reliable provisional responses to the peer's INVITE in one dialog (mss is UAS).
#[derive(Debug, Clone)]
pub(crate) struct ReliableUas {
    reliability: Reliability,
    /// The CSeq number of the INVITE.
    invite_cseq: u32,
    /// The RSeq of the next reliable provisional response.
    next_rseq: u32,
    unacked: Option<Unacked>,
    /// Waiting for the unacknowledged one's PRACK (RFC 3262 §3: one at a time).
    queue: VecDeque<Response>,
    /// A `2xx` that waits for the PRACK of a provisional response with a session
    /// description (§3).
    held_2xx: Option<Response>,
    /// The final response went: no new reliable provisional response (§3).
    final_sent: bool,
}

impl ReliableUas {
    /// The state for `invite`, when it knows 100rel; the first RSeq is random in
    /// 1..2^31-1 (§3, "RECOMMENDED ... uniformly").
    pub(crate) fn new(invite: &Request, rng: &mut dyn RngCore) -> Option<ReliableUas> {
        let reliability = Reliability::of(invite)?;
        let invite_cseq = invite.headers().cseq().ok()?.seq;
        Some(ReliableUas {
            reliability,
            invite_cseq,
            next_rseq: rng.gen_range(1..(1u32 << 31)),
            unacked: None,
            queue: VecDeque::new(),
            held_2xx: None,
            final_sent: false,
        })
    }

    fn applies(&self, response: &Response, cseq: u32) -> bool {
        let status = response.status().0;
        (101..200).contains(&status)
            && cseq == self.invite_cseq
            && match self.reliability {
                Reliability::Always => true,
                Reliability::WithBody => !response.body().is_empty(),
            }
    }

    /// A response mss is about to send to the INVITE with CSeq number `cseq`. Gives back
    /// what goes out now: the response as it was (unreliable, or a final response that
    /// need not wait), the reliable provisional response with its `Require` and `RSeq`,
    /// or nothing (queued behind the unacknowledged one, a `2xx` held for a PRACK, or a
    /// provisional response after the final one).
    pub(crate) fn outgoing(
        &mut self,
        now: Instant,
        response: Response,
        cseq: u32,
        timers: &Timers,
    ) -> Option<Response> {
        let status = response.status().0;
        if cseq != self.invite_cseq || status < 101 {
            return Some(response);
        }
        if status >= 200 {
            let unacked_sdp = self.unacked.as_ref().is_some_and(|u| u.has_body);
            if (200..300).contains(&status) && unacked_sdp && self.held_2xx.is_none() {
                self.held_2xx = Some(response);
                return None;
            }
            self.on_final();
            return Some(response);
        }
        if !self.applies(&response, cseq) {
            return (!self.final_sent).then_some(response);
        }
        if self.final_sent {
            return None;
        }
        if self.unacked.is_some() || self.held_2xx.is_some() {
            if self.queue.len() < MAX_QUEUED {
                self.queue.push_back(response);
            }
            return None;
        }
        Some(self.start(now, response, timers))
    }

    /// Marks `response` reliable with the next RSeq and starts its retransmissions.
    fn start(&mut self, now: Instant, mut response: Response, timers: &Timers) -> Response {
        let rseq = self.next_rseq;
        self.next_rseq = self.next_rseq.saturating_add(1);
        let h = response.headers_mut();
        let mut require: Vec<String> = h
            .require()
            .map(|t| t.into_iter().map(str::to_owned).collect())
            .unwrap_or_default();
        if !require.iter().any(|t| t.eq_ignore_ascii_case(TAG_100REL)) {
            require.push(TAG_100REL.to_owned());
        }
        h.replace(HeaderName::Require, require.join(", "));
        h.replace(rseq_header(), rseq.to_string());
        self.unacked = Some(Unacked {
            rseq,
            has_body: !response.body().is_empty(),
            response: response.clone(),
            retransmit: true,
            next_at: now + timers.t1,
            interval: timers.t1,
            give_up_at: now + timers.t1x64(),
        });
        response
    }

    /// The final response went (§3): nothing queued goes any more, retransmissions stop,
    /// a PRACK for the unacknowledged one is still answered `200`.
    fn on_final(&mut self) {
        self.final_sent = true;
        self.queue.clear();
        self.held_2xx = None;
        if let Some(u) = self.unacked.as_mut() {
            u.retransmit = false;
        }
    }

    /// A PRACK with `rack` arrived. `Err(())` when it matches no unacknowledged reliable
    /// provisional response (`481`, §3); else what goes out now: the next queued reliable
    /// provisional response or the `2xx` that waited.
    pub(crate) fn on_prack(
        &mut self,
        now: Instant,
        rack: &RAck,
        timers: &Timers,
    ) -> Result<Option<Response>, ()> {
        let matches = self.unacked.as_ref().is_some_and(|u| {
            u.rseq == rack.rseq && rack.cseq == self.invite_cseq && rack.method == Method::Invite
        });
        if !matches {
            return Err(());
        }
        self.unacked = None;
        if let Some(ok) = self.held_2xx.take() {
            self.on_final();
            return Ok(Some(ok));
        }
        if self.final_sent {
            return Ok(None);
        }
        Ok(self.queue.pop_front().map(|r| self.start(now, r, timers)))
    }

    /// When a retransmission or the give-up is due.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.unacked
            .as_ref()
            .filter(|u| u.retransmit)
            .map(|u| u.next_at.min(u.give_up_at))
    }

    /// What is due at `now`: the interval starts at T1 and doubles without the T2 cap of a
    /// `2xx` (§3); 64·T1 after the first sending it is given up (and with it anything
    /// queued or held).
    pub(crate) fn on_timeout(&mut self, now: Instant) -> ReliableStep {
        let Some(u) = self.unacked.as_mut().filter(|u| u.retransmit) else {
            return ReliableStep::NotYet;
        };
        if now >= u.give_up_at {
            self.unacked = None;
            self.queue.clear();
            self.held_2xx = None;
            return ReliableStep::GiveUp;
        }
        if now >= u.next_at {
            u.interval = u.interval.saturating_mul(2);
            u.next_at = now + u.interval;
            return ReliableStep::Resend(u.response.clone());
        }
        ReliableStep::NotYet
    }
}

/// What a provisional response of the peer to mss's INVITE asks of mss (RFC 3262 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provisional {
    /// Not reliable: nothing to acknowledge.
    Unreliable,
    /// Reliable and in order: acknowledge with a PRACK ([`crate::Dialogs::prack`]) whose
    /// `RAck` names this RSeq and the INVITE's CSeq.
    Acknowledge {
        /// The response's RSeq.
        rseq: u32,
        /// The INVITE's CSeq number.
        cseq: u32,
    },
    /// A retransmission (an RSeq acknowledged already) or out of order: not processed
    /// further (§4), not passed on.
    Repeated,
}

/// The UAC's check of a reliable provisional response's RSeq against the last one
/// acknowledged in the dialog (§4: the first sets it; each next must be one higher).
pub(crate) fn check_order(last: Option<u32>, rseq: u32) -> bool {
    match last {
        None => true,
        Some(l) => l.checked_add(1) == Some(rseq),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mss_sip::StatusCode;
    use rand::{rngs::StdRng, SeedableRng};

    fn invite(extra: &str) -> Request {
        let text = format!(
            "INVITE sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: c\r\nCSeq: 5 INVITE\r\nContact: <sip:a@192.0.2.1>\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        match mss_sip::parse_datagram(bytes::Bytes::from(text)).unwrap() {
            mss_sip::Message::Request(r) => r,
            mss_sip::Message::Response(_) => unreachable!(),
        }
    }

    fn rsp(inv: &Request, code: u16, body: &str) -> Response {
        let mut r = Response::for_request(inv, StatusCode(code), "X".to_owned());
        if !body.is_empty() {
            r.headers_mut()
                .push(HeaderName::ContentType, "application/sdp");
            r.set_body(bytes::Bytes::from(body.to_owned()));
        }
        r
    }

    #[test]
    fn rack_parses_and_refuses_garbage() {
        let mut h = Headers::new();
        h.push(rack_header(), "776656 1 INVITE");
        assert_eq!(
            rack(&h).unwrap(),
            Some(RAck {
                rseq: 776656,
                cseq: 1,
                method: Method::Invite
            })
        );
        for bad in [
            "",
            "1",
            "1 2",
            "x 1 INVITE",
            "1 2 INVITE extra",
            "99999999999 1 INVITE",
        ] {
            let mut h = Headers::new();
            h.push(rack_header(), bad);
            assert!(rack(&h).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_invites_that_know_100rel_get_reliable_responses() {
        let mut rng = StdRng::seed_from_u64(1);
        assert!(ReliableUas::new(&invite(""), &mut rng).is_none());
        let r = ReliableUas::new(&invite("Supported: timer, 100rel\r\n"), &mut rng).unwrap();
        assert_eq!(r.reliability, Reliability::WithBody);
        assert!((1..1u32 << 31).contains(&r.next_rseq));
        let r = ReliableUas::new(&invite("Require: 100rel\r\n"), &mut rng).unwrap();
        assert_eq!(r.reliability, Reliability::Always);
    }

    #[test]
    fn one_at_a_time_and_the_2xx_waits_for_the_prack_of_an_offer() {
        let mut rng = StdRng::seed_from_u64(2);
        let timers = Timers::default();
        let now = Instant::now();
        let inv = invite("Require: 100rel\r\n");
        let mut r = ReliableUas::new(&inv, &mut rng).unwrap();
        let first = r
            .outgoing(now, rsp(&inv, 183, "v=0\r\n"), 5, &timers)
            .unwrap();
        let rseq = super::rseq(first.headers()).unwrap().unwrap();
        assert!(is_reliable(&first));
        assert!(
            r.outgoing(now, rsp(&inv, 180, ""), 5, &timers).is_none(),
            "queued"
        );
        assert!(
            r.outgoing(now, rsp(&inv, 200, ""), 5, &timers).is_none(),
            "2xx held"
        );
        let wrong = RAck {
            rseq: rseq + 1,
            cseq: 5,
            method: Method::Invite,
        };
        assert!(r.on_prack(now, &wrong, &timers).is_err());
        let right = RAck { rseq, ..wrong };
        let next = r.on_prack(now, &right, &timers).unwrap().unwrap();
        assert_eq!(next.status().0, 200, "the held 2xx, the queued 180 dropped");
        assert!(r.deadline().is_none());
        assert!(
            r.on_prack(now, &right, &timers).is_err(),
            "acknowledged once"
        );
    }

    #[test]
    fn retransmissions_double_without_cap_and_give_up_at_64_t1() {
        let mut rng = StdRng::seed_from_u64(3);
        let timers = Timers::default();
        let t0 = Instant::now();
        let inv = invite("Require: 100rel\r\n");
        let mut r = ReliableUas::new(&inv, &mut rng).unwrap();
        r.outgoing(t0, rsp(&inv, 180, ""), 5, &timers).unwrap();
        let mut at = Vec::new();
        while let Some(d) = r.deadline() {
            match r.on_timeout(d) {
                ReliableStep::Resend(_) => at.push(d.duration_since(t0).as_millis()),
                ReliableStep::GiveUp => break,
                ReliableStep::NotYet => unreachable!(),
            }
        }
        assert_eq!(at, vec![500, 1500, 3500, 7500, 15500, 31500]);
        assert!(r.deadline().is_none());
    }

    #[test]
    fn the_uac_acknowledges_in_order_only() {
        assert!(check_order(None, 7));
        assert!(check_order(Some(7), 8));
        assert!(!check_order(Some(7), 7));
        assert!(!check_order(Some(7), 9));
        assert!(!check_order(Some(u32::MAX), 0));
    }
}
