//! RFC 4475 torture messages: every message of `testdata/sip-torture/` against its index.
//!
//! `valid` messages must parse as one UDP datagram, pass `validate_core` and give back
//! their core headers; `invalid` ones must be rejected, at parse or validation, with the
//! error kind listed below.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use mss_sip::{
    parse_datagram, validate_core, Contacts, HeaderName, Message, Method, ParseErrorKind, Uri,
};
use mss_testdata::torture::{self, Expected};

/// The error kind each invalid message must be rejected with.
fn expected_rejection(name: &str) -> Option<(ParseErrorKind, Option<HeaderName>)> {
    use ParseErrorKind as K;
    Some(match name {
        "badinv01" => (K::BadHeaderValue, Some(HeaderName::Via)),
        "clerr" => (
            K::ContentLengthExceedsMessage,
            Some(HeaderName::ContentLength),
        ),
        "ncl" => (K::BadContentLength, Some(HeaderName::ContentLength)),
        "scalar02" => (K::ValueOutOfRange, Some(HeaderName::CSeq)),
        "scalarlg" => (K::ValueOutOfRange, Some(HeaderName::CSeq)),
        "quotbal" => (K::BadHeaderValue, Some(HeaderName::To)),
        "ltgtruri" => (K::BadRequestUri, None),
        "lwsruri" => (K::BadStartLine, None),
        "lwsstart" => (K::LaxStartLine, None),
        "trws" => (K::LaxStartLine, None),
        "escruri" => (K::BadRequestUri, None),
        "baddate" => (K::BadHeaderValue, Some(HeaderName::Date)),
        "regbadct" => (K::BadHeaderValue, Some(HeaderName::Contact)),
        "badaspec" => (K::BadUri, Some(HeaderName::To)),
        "baddn" => (K::UnterminatedHeaders, None),
        "badvers" => (K::UnsupportedVersion, None),
        "mismatch01" => (K::CSeqMethodMismatch, Some(HeaderName::CSeq)),
        "mismatch02" => (K::CSeqMethodMismatch, Some(HeaderName::CSeq)),
        "bigcode" => (K::BadStatusCode, None),
        "insuf" => (K::MissingHeader, Some(HeaderName::From)),
        "multi01" => (K::DuplicateHeader, Some(HeaderName::From)),
        "mcl01" => (K::ConflictingContentLength, Some(HeaderName::ContentLength)),
        "test" => (K::BadStartLine, None),
        _ => return None,
    })
}

/// Core typed headers must read back on every valid message.
fn check_core(name: &str, msg: &Message) {
    let h = msg.headers();
    let vias = h.via().unwrap_or_else(|e| panic!("{name}: Via: {e}"));
    assert!(!vias.is_empty(), "{name}: no Via");
    let top = h.top_via().unwrap();
    assert_eq!(top, vias[0], "{name}");
    let from = h.from().unwrap_or_else(|e| panic!("{name}: From: {e}"));
    let to = h.to().unwrap_or_else(|e| panic!("{name}: To: {e}"));
    let call_id = h
        .call_id()
        .unwrap_or_else(|e| panic!("{name}: Call-ID: {e}"));
    assert!(!call_id.is_empty());
    let cseq = h.cseq().unwrap_or_else(|e| panic!("{name}: CSeq: {e}"));
    if let Message::Request(r) = msg {
        assert_eq!(&cseq.method, r.method(), "{name}");
    }
    if h.contains(&HeaderName::Contact) {
        h.contacts()
            .unwrap_or_else(|e| panic!("{name}: Contact: {e}"));
    }
    if h.contains(&HeaderName::MaxForwards) {
        assert!(h.max_forwards().unwrap().is_some(), "{name}");
    }
    let _ = (from, to);
}

/// Specific expectations from RFC 4475 for some valid messages.
fn check_specific(name: &str, msg: &Message) {
    let h = msg.headers();
    match name {
        "wsinv" => {
            assert_eq!(h.max_forwards(), Ok(Some(68)));
            assert_eq!(h.cseq().unwrap().seq, 9);
            let vias = h.via().unwrap();
            assert_eq!(vias.len(), 3);
            assert_eq!((vias[0].transport, vias[0].host), ("UDP", "192.0.2.2"));
            assert_eq!(vias[2].branch(), Some("z9hG4bK30239"));
            assert_eq!(h.to().unwrap().tag(), Some("1918181833n"));
            assert_eq!(h.from().unwrap().tag(), Some("98asjd8"));
            assert_eq!(
                h.from().unwrap().display_name_unquoted().unwrap(),
                "J Rosenberg \\\""
            );
            let Contacts::List(c) = h.contacts().unwrap() else {
                panic!()
            };
            assert_eq!(c[0].q(), Some(0.33));
            assert_eq!(
                h.get(&HeaderName::from_static("UnknownHeaderWithUnusualValue")),
                Some(&b";;,,;;,;"[..])
            );
            assert_eq!(msg.body().len(), 150);
        }
        "intmeth" => {
            let r = msg.as_request().unwrap();
            assert!(matches!(r.method(), Method::Other(_)));
            assert_eq!(
                r.method().as_str(),
                "!interesting-Method0123456789_*+`.%indeed'~"
            );
            assert_eq!(
                h.to().unwrap().display_name_unquoted().unwrap(),
                "BEL:\u{7} NUL:\0 DEL:\u{7f}"
            );
            assert!(h
                .get(&HeaderName::from_static("extensionHeader-!.%*+_`'~"))
                .is_some());
        }
        "esc01" => {
            let Ok(Uri::Sip(u)) = msg.as_request().unwrap().uri() else {
                panic!()
            };
            assert_eq!(
                u.user_unescaped().unwrap().as_ref(),
                b"sips:user@example.com"
            );
            assert_eq!(
                h.to()
                    .unwrap()
                    .uri
                    .as_sip()
                    .unwrap()
                    .user_unescaped()
                    .unwrap()
                    .as_ref(),
                b"user"
            );
        }
        "escnull" => {
            let Contacts::List(c) = h.contacts().unwrap() else {
                panic!()
            };
            assert_eq!(c.len(), 2);
            assert_ne!(c[0].addr.uri_str, c[1].addr.uri_str);
            assert_eq!(
                c[1].addr
                    .uri
                    .as_sip()
                    .unwrap()
                    .user_unescaped()
                    .unwrap()
                    .as_ref(),
                b"\0\0"
            );
        }
        "esc02" => {
            assert!(matches!(
                msg.as_request().unwrap().method(),
                Method::Other(_)
            ));
            let Contacts::List(c) = h.contacts().unwrap() else {
                panic!()
            };
            assert_eq!(c.len(), 2);
            assert_eq!(h.to().unwrap().display_name_unquoted().unwrap(), "%Z%45");
        }
        "longreq" => {
            assert!(h.via().unwrap().len() > 30);
            assert!(h.call_id().unwrap().ends_with("longcallid"));
        }
        "dblreq" => {
            assert_eq!(msg.as_request().unwrap().method(), &Method::Register);
            assert!(msg.body().is_empty());
        }
        "semiuri" => {
            let Ok(Uri::Sip(u)) = msg.as_request().unwrap().uri() else {
                panic!()
            };
            assert_eq!(
                u.user_unescaped().unwrap().as_ref(),
                b"user;par=u@example.net"
            );
        }
        "transports" => {
            let t: Vec<_> = h.via().unwrap().iter().map(|v| v.transport).collect();
            assert_eq!(t, vec!["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
        }
        "mpart01" => {
            assert_eq!(Some(msg.body().len()), h.content_length().unwrap());
            assert!(msg.body().contains(&0));
        }
        "noreason" => assert_eq!(msg.as_response().unwrap().reason(), b""),
        "unreason" => assert_eq!(msg.as_response().unwrap().status().as_u16(), 200),
        "badbranch" => assert_eq!(h.top_via().unwrap().branch(), Some("z9hG4bK")),
        "unkscm" | "novelsc" => {
            assert!(matches!(msg.as_request().unwrap().uri(), Ok(Uri::Other(_))));
        }
        "unksm2" => assert!(!h.to().unwrap().uri.is_sip()),
        "bext01" => {
            assert!(!h.require().unwrap().is_empty());
            assert!(!h.proxy_require().unwrap().is_empty());
        }
        "regaut01" => {
            let a = h.auth(&HeaderName::Authorization).unwrap();
            assert_eq!(a[0].scheme, "NoOneKnowsThisScheme");
        }
        "zeromf" => assert_eq!(h.max_forwards(), Ok(Some(0))),
        "cparam01" => {
            let Contacts::List(c) = h.contacts().unwrap() else {
                panic!()
            };
            let u = c[0].addr.uri.as_sip().unwrap();
            assert!(u.params.is_empty() || !c[0].addr.params.is_empty());
        }
        "regescrt" => {
            let Contacts::List(c) = h.contacts().unwrap() else {
                panic!()
            };
            assert!(c[0].addr.uri.as_sip().unwrap().headers.is_some());
        }
        "inv2543" => {
            assert!(!h.top_via().unwrap().has_rfc3261_branch());
            assert!(!msg.body().is_empty());
        }
        _ => {}
    }
}

#[test]
fn every_torture_message() {
    let cases = torture::cases();
    assert_eq!(cases.len(), 50, "corpus size");
    for case in &cases {
        let name = case.name.as_str();
        let result = parse_datagram(case.bytes.clone()).and_then(|m| validate_core(&m).map(|()| m));
        match case.expected {
            Expected::Valid => {
                let msg = result.unwrap_or_else(|e| panic!("{name} must be accepted: {e}"));
                check_core(name, &msg);
                check_specific(name, &msg);
            }
            Expected::Invalid => {
                let err = match result {
                    Ok(_) => panic!("{name} must be rejected"),
                    Err(e) => e,
                };
                let (kind, header) =
                    expected_rejection(name).unwrap_or_else(|| panic!("{name}: no expectation"));
                assert_eq!(err.kind, kind, "{name}: {err}");
                if header.is_some() {
                    assert_eq!(err.header, header, "{name}: {err}");
                }
                assert!(!err.reason_phrase().is_empty());
            }
        }
    }
}

/// Requests rejected only at validation can still be answered with a 400 that copies
/// the core headers.
#[test]
fn rejected_requests_that_parse_can_be_answered() {
    for name in [
        "badinv01",
        "quotbal",
        "ltgtruri",
        "escruri",
        "mismatch01",
        "multi01",
        "badvers",
        "scalar02",
    ] {
        let Ok(Message::Request(req)) = parse_datagram(torture::bytes(name)) else {
            panic!("{name}")
        };
        let err = req.validate().unwrap_err();
        assert!(req.can_build_response() || name == "badinv01", "{name}");
        let rsp = mss_sip::Response::for_request(&req, err.status_code(), err.reason_phrase());
        let wire = rsp.to_bytes();
        assert!(wire.starts_with(b"SIP/2.0 "), "{name}");
        assert!(rsp.headers().contains(&HeaderName::CallId), "{name}");
    }
}

/// Every message that parses serializes back and parses to the same headers.
#[test]
fn parsed_torture_messages_round_trip() {
    for case in torture::cases() {
        let name = &case.name;
        let Ok(msg) = parse_datagram(case.bytes.clone()) else {
            continue;
        };
        let again = parse_datagram(msg.to_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let a: Vec<_> = msg
            .headers()
            .iter()
            .filter(|(n, _)| **n != HeaderName::ContentLength)
            .collect();
        let b: Vec<_> = again
            .headers()
            .iter()
            .filter(|(n, _)| **n != HeaderName::ContentLength)
            .collect();
        assert_eq!(a, b, "{name}");
        assert_eq!(msg.body(), again.body(), "{name}");
    }
}

/// Untouched messages serialize byte for byte: every valid torture message with one
/// Content-Length comes back exactly as received (up to the end of its body).
#[test]
fn untouched_messages_serialize_byte_for_byte() {
    let mut checked = 0;
    for case in torture::cases() {
        if case.expected != Expected::Valid {
            continue;
        }
        let (name, raw) = (case.name, case.bytes);
        let msg = parse_datagram(raw.clone()).unwrap();
        if msg.headers().count(&HeaderName::ContentLength) != 1
            || msg.as_request().is_some_and(|r| r.version() != b"SIP/2.0")
        {
            continue;
        }
        let wire = msg.to_bytes();
        assert_eq!(&wire[..], &raw[..wire.len()], "{name}");
        checked += 1;
    }
    assert!(checked >= 25, "only {checked} messages checked");
}
