//! The checks every request gets before a service sees it (RFC 3261 §8.2), and the
//! answer to `OPTIONS` (§11.2).
//!
//! Order, and why:
//! 1. SIP version → `505` (§8.2: a request of another version cannot be read further);
//! 2. [`Request::validate`] → `400` naming the bad header, whatever the method (RFC 4475
//!    multi01), except a CSeq method mismatch on an unknown method → `501` (mismatch02);
//! 3. method → `501` for a method mss does not know (§8.2.1; RFC 4475 esc02), `405` with
//!    `Allow` for one it knows but does not serve;
//! 4. Request-URI scheme not `sip`/`sips`/`tel` → `416` (§8.2.2.1, RFC 4475 unkscm);
//! 5. `Require` with option tags mss does not support → `420` + `Unsupported` (§8.2.2.3);
//!    a call's requests may require `100rel` and `timer` ([`CALL_SUPPORTED`]).
//!    `Proxy-Require` is for proxies and is ignored by mss acting as the UAS.

use mss_sip::{
    HeaderName, Method, ParseError, ParseErrorKind, Request, RequestCore, Response, StatusCode, Uri,
};

use crate::answer::{Answer, Reject};

/// Option tags mss supports (RFC 5626 `outbound`, applied by the registrar; RFC 3891
/// `replaces`, an INVITE that takes the place of a call's leg).
pub const SUPPORTED: &[&str] = &["outbound", "replaces"];

/// Option tags mss supports in calls: reliable provisional responses (RFC 3262) and
/// session timers (RFC 4028), for the methods of a call (INVITE and the requests within
/// its dialogs).
pub const CALL_SUPPORTED: &[&str] = &["100rel", "timer"];

/// Methods of a call, for which [`CALL_SUPPORTED`] counts as supported.
fn is_call_method(m: &Method) -> bool {
    matches!(
        m,
        Method::Invite | Method::Bye | Method::Prack | Method::Update | Method::Info
    )
}

/// Accepted bodies, for `OPTIONS` (instant messages are plain text).
const ACCEPT: &str = "text/plain, application/sdp";

/// Request checks shared by every service.
#[derive(Debug, Clone)]
pub struct Precheck {
    /// Methods served by some service.
    served: Vec<Method>,
}

impl Default for Precheck {
    fn default() -> Precheck {
        Precheck::new(vec![Method::Register, Method::Message, Method::Options])
    }
}

/// Methods mss knows (RFC 3261 and the extensions named by [`Method`]): those not served
/// get `405`, any other `501`.
fn known(m: &Method) -> bool {
    !matches!(m, Method::Other(_))
}

impl Precheck {
    /// Checks for a server that serves `served` (ACK and CANCEL are the transaction
    /// layer's business and always pass).
    pub fn new(served: Vec<Method>) -> Precheck {
        Precheck { served }
    }

    /// Whether a request passes; `Err` says how to refuse it (see the module docs).
    ///
    /// # Errors
    ///
    /// The first rejection found, to be answered with [`Answer::reject`].
    pub fn check(&self, req: &Request) -> Result<(), Reject> {
        self.check_parsed(req, req.check().as_ref()).map(|_| ())
    }

    /// [`Precheck::check`] for a request whose [`Request::check`] result the caller
    /// already has (the worker checks every request once, on arrival): the same answers,
    /// without validating again. Gives back the parsed core headers of a request that
    /// passes.
    ///
    /// # Errors
    ///
    /// As [`Precheck::check`].
    pub fn check_parsed<'c, 'a>(
        &self,
        req: &Request,
        checked: Result<&'c RequestCore<'a>, &ParseError>,
    ) -> Result<&'c RequestCore<'a>, Reject> {
        if !req.version().eq_ignore_ascii_case(mss_sip::SIP_VERSION) {
            return Err(Reject::VersionNotSupported);
        }
        // A malformed request is refused as malformed whatever its method (RFC 4475 §3.3.8:
        // multi01 is an INVITE with duplicated core headers → 400, not 405). The one
        // exception: an unknown method whose CSeq names another method (§3.1.2.18
        // mismatch02) gets the preferred 501.
        let m = req.method();
        let checked = checked.map_err(|e| match e.kind {
            ParseErrorKind::UnsupportedVersion => Reject::VersionNotSupported,
            ParseErrorKind::CSeqMethodMismatch if !known(m) => Reject::NotImplemented,
            _ => Reject::Malformed(e.clone()),
        })?;
        let passes = matches!(m, Method::Ack | Method::Cancel) || self.served.contains(m);
        if !passes {
            return Err(if known(m) {
                Reject::MethodNotAllowed
            } else {
                Reject::NotImplemented
            });
        }
        if let Uri::Other(_) = checked.uri {
            return Err(Reject::UnsupportedUriScheme);
        }
        check_require(req)?;
        Ok(checked)
    }

    /// The `200 OK` to an `OPTIONS` addressed to mss (RFC 3261 §11.2): `Allow`, `Accept`,
    /// `Accept-Language`, `Supported`.
    pub fn options_answer(&self, answer: &Answer, req: &Request) -> Response {
        let mut rsp = answer.response(req, StatusCode::OK, "OK");
        let h = rsp.headers_mut();
        h.push(HeaderName::Allow, answer.allow().clone());
        h.push(HeaderName::Accept, ACCEPT);
        h.push(HeaderName::from_static("Accept-Language"), "en");
        let calls: &[&str] = if self.served.contains(&Method::Invite) {
            CALL_SUPPORTED
        } else {
            &[]
        };
        let tags: Vec<&str> = SUPPORTED.iter().chain(calls).copied().collect();
        h.push(HeaderName::Supported, tags.join(", "));
        rsp
    }
}

/// `Require` with option tags mss does not support → `420` listing them (RFC 3261
/// §8.2.2.3).
pub(crate) fn check_require(req: &Request) -> Result<(), Reject> {
    if !req.headers().contains(&HeaderName::Require) {
        return Ok(());
    }
    let unknown: Vec<String> = req
        .headers()
        .require()
        .map_err(Reject::Malformed)?
        .into_iter()
        .filter(|t| {
            let call_tag = is_call_method(req.method())
                && CALL_SUPPORTED.iter().any(|s| s.eq_ignore_ascii_case(t));
            !call_tag && !SUPPORTED.iter().any(|s| s.eq_ignore_ascii_case(t))
        })
        .map(str::to_owned)
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(Reject::BadExtension(unknown))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mss_sip::{parse_datagram, Message};

    fn torture(name: &str) -> Request {
        match parse_datagram(mss_testdata::torture::bytes(name)).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => panic!("{name} is not a request"),
        }
    }

    fn status(name: &str) -> (u16, Response) {
        let p = Precheck::default();
        let a = Answer::new("pbx.example.com");
        let r = torture(name);
        let rsp = match p.check(&r) {
            Ok(()) => p.options_answer(&a, &r),
            Err(rej) => a.reject(&r, &rej),
        };
        (rsp.status().as_u16(), rsp)
    }

    #[test]
    fn calls_may_require_100rel_and_timer_a_register_may_not() {
        let p = Precheck::new(vec![Method::Invite, Method::Register]);
        let req = |method: &str| {
            let text = format!(
                "{method} sip:101@pbx.example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nMax-Forwards: 70\r\nFrom: <sip:100@pbx.example.com>;tag=1\r\nTo: <sip:101@pbx.example.com>\r\nCall-ID: c1\r\nCSeq: 1 {method}\r\nContact: <sip:100@192.0.2.1>\r\nRequire: 100rel, TIMER\r\nContent-Length: 0\r\n\r\n"
            );
            match parse_datagram(bytes::Bytes::from(text)).unwrap() {
                Message::Request(r) => r,
                Message::Response(_) => unreachable!(),
            }
        };
        assert!(p.check(&req("INVITE")).is_ok());
        match p.check(&req("REGISTER")) {
            Err(Reject::BadExtension(tags)) => assert_eq!(tags, vec!["100rel", "TIMER"]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rfc4475_prechecks() {
        assert_eq!(status("unkscm").0, 416);
        assert_eq!(status("novelsc").0, 416);
        let (code, rsp) = status("bext01");
        assert_eq!(code, 420);
        assert_eq!(
            rsp.headers().unsupported().unwrap(),
            vec!["nothingSupportsThis", "nothingSupportsThisEither"]
        );
        assert_eq!(status("badvers").0, 505);
        let (code, rsp) = status("esc02");
        assert_eq!(code, 501);
        assert!(rsp.headers().contains(&HeaderName::Allow));
        assert_eq!(status("mismatch02").0, 501);
        assert_eq!(status("mismatch01").0, 400);
        assert_eq!(status("scalar02").0, 400);
        assert_eq!(status("regbadct").0, 400);
        assert_eq!(status("multi01").0, 400);
        assert_eq!(status("zeromf").0, 200);
        assert_eq!(status("lwsdisp").0, 200);
    }

    #[test]
    fn options_lists_capabilities() {
        let (code, rsp) = status("lwsdisp");
        assert_eq!(code, 200);
        let h = rsp.headers();
        assert_eq!(h.allow().unwrap(), vec!["REGISTER", "MESSAGE", "OPTIONS"]);
        assert_eq!(h.supported().unwrap(), vec!["outbound", "replaces"]);
        assert!(h.contains(&HeaderName::Accept));
        assert!(h.to().unwrap().tag().is_some());
    }

    #[test]
    fn ack_and_cancel_pass_and_served_methods_are_configurable() {
        let p = Precheck::new(vec![Method::Options]);
        let r = torture("lwsdisp");
        assert!(p.check(&r).is_ok());
        let none = Precheck::new(vec![]);
        assert_eq!(none.check(&r), Err(Reject::MethodNotAllowed));
    }
}
