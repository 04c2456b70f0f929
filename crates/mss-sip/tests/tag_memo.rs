//! `Headers::from_tag` / `to_tag` (parsed once, remembered) against the full parser
//! (`from()?.tag()`, `to()?.tag()`) on every message of the RFC 4475 torture corpus that
//! frames, asked before and after the full parse, on fresh messages, on clones and after
//! changes to the headers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use mss_sip::{parse_datagram, HeaderName, Headers, Message, ParseError};
use mss_testdata::torture;

type Tag = Result<Option<String>, ParseError>;

fn full(h: &Headers, name: &HeaderName) -> Tag {
    let addr = if *name == HeaderName::From {
        h.from()
    } else {
        h.to()
    };
    addr.map(|a| a.tag().map(str::to_owned))
}

fn memo(h: &Headers, name: &HeaderName) -> Tag {
    let tag = if *name == HeaderName::From {
        h.from_tag()
    } else {
        h.to_tag()
    };
    tag.map(|t| t.map(str::to_owned))
}

#[test]
fn the_memo_agrees_with_the_full_parser_on_the_torture_corpus() {
    let mut seen = 0;
    for case in torture::cases() {
        let Ok(msg) = parse_datagram(case.bytes.clone()) else {
            continue;
        };
        for name in [HeaderName::From, HeaderName::To] {
            let want = full(msg.headers(), &name);
            // The memo asked first (it parses), asked again (it reads what it kept).
            let fresh = parse_datagram(case.bytes.clone()).unwrap();
            let h = fresh.headers();
            assert_eq!(memo(h, &name), want, "{}: {name:?} first", case.name);
            assert_eq!(memo(h, &name), want, "{}: {name:?} again", case.name);
            // A clone keeps what was remembered, and it still holds.
            let copy = fresh.clone();
            assert_eq!(memo(copy.headers(), &name), want, "{}: clone", case.name);
            // The full parser first changes nothing.
            let other = parse_datagram(case.bytes.clone()).unwrap();
            let _ = full(other.headers(), &name);
            assert_eq!(memo(other.headers(), &name), want, "{}: after", case.name);
            seen += 1;
        }
    }
    assert!(seen > 40, "only {seen} headers checked");
}

/// `Request::check` parses From and To in full and notes their tags: after it (whether it
/// passed or failed, and on a clone made after it), `from_tag` / `to_tag` give what the full
/// parser gives, on every request of the corpus that frames.
#[test]
fn the_memo_noted_by_the_prechecks_agrees_with_the_full_parser() {
    let (mut passed, mut failed) = (0, 0);
    for case in torture::cases() {
        let Ok(Message::Request(req)) = parse_datagram(case.bytes.clone()) else {
            continue;
        };
        match req.check() {
            Ok(core) => {
                assert_eq!(core.core.from.tag(), req.headers().from().unwrap().tag());
                assert_eq!(core.core.to.tag(), req.headers().to().unwrap().tag());
                passed += 1;
            }
            Err(_) => failed += 1,
        }
        let copy = req.clone();
        for name in [HeaderName::From, HeaderName::To] {
            let want = full(req.headers(), &name);
            assert_eq!(memo(req.headers(), &name), want, "{}: {name:?}", case.name);
            assert_eq!(memo(copy.headers(), &name), want, "{}: clone", case.name);
        }
    }
    assert!(
        passed > 10 && failed > 5,
        "{passed} passed, {failed} failed"
    );
}

#[test]
fn a_change_to_the_headers_forgets_the_tags() {
    let bytes = torture::bytes("wsinv");
    let mut msg = parse_datagram(bytes).unwrap();
    let before = msg.headers().to_tag().unwrap().map(str::to_owned);
    assert!(msg.headers().from_tag().unwrap().is_some());
    let h = msg.headers_mut();
    h.replace(HeaderName::To, "<sip:b@example.com>;tag=changed-to");
    h.replace(HeaderName::From, "<sip:a@example.com>");
    assert_ne!(before.as_deref(), Some("changed-to"));
    assert_eq!(msg.headers().to_tag().unwrap(), Some("changed-to"));
    assert_eq!(msg.headers().from_tag().unwrap(), None);
    // A value that no longer parses gives the full parser's error, not a remembered tag.
    msg.headers_mut()
        .replace(HeaderName::To, "<sip:b@example.com;tag=x");
    assert_eq!(
        msg.headers().to_tag().map(|t| t.map(str::to_owned)),
        full(msg.headers(), &HeaderName::To)
    );
    assert!(msg.headers().to_tag().is_err());
    msg.headers_mut().remove(&HeaderName::From);
    assert!(msg.headers().from_tag().is_err());
}

/// A response's headers with the given From and To values (none when `None`).
fn response_headers(from: Option<&[u8]>, to: Option<&[u8]>) -> Headers {
    let mut h = Headers::new();
    if let Some(v) = from {
        h.push(HeaderName::From, v.to_vec());
    }
    if let Some(v) = to {
        h.push(HeaderName::To, v.to_vec());
    }
    h
}

/// `Headers::note_tags_from_request` against the full parser: every message of the corpus
/// that frames is taken as the request, with responses whose From and To are the
/// request's byte for byte, whose To has `;tag=` and a value (tokens and not) appended,
/// and whose values differ; asked with the request's memo empty and filled first. After
/// the noting, `from_tag` / `to_tag` of the response (and of the request) give what the
/// full parser gives.
#[test]
fn tags_noted_from_the_request_agree_with_the_full_parser() {
    let appended: [&[u8]; 10] = [
        b";tag=abc",
        b";tag=9fxced76sl",
        b";tag=a.b-c!%*_+`'~",
        b";tag=",
        b";tag=a b",
        b";tag=a;b",
        b";tag=\"q\"",
        b";tag=a>",
        b" ;tag=x",
        b";tag=x;tag=y",
    ];
    let mut seen = 0;
    for case in torture::cases() {
        let Ok(msg) = parse_datagram(case.bytes.clone()) else {
            continue;
        };
        let from = msg.headers().get(&HeaderName::From).map(<[u8]>::to_vec);
        let to = msg.headers().get(&HeaderName::To).map(<[u8]>::to_vec);
        let mut variants = vec![(from.clone(), to.clone())];
        if let Some(to) = &to {
            for tail in appended {
                variants.push((from.clone(), Some([to.as_slice(), tail].concat())));
            }
        }
        variants.push((
            from.clone().map(|f| [f.as_slice(), b"x"].concat()),
            to.clone(),
        ));
        variants.push((None, to.clone()));
        for (rf, rt) in &variants {
            for asked_first in [false, true] {
                let req = parse_datagram(case.bytes.clone()).unwrap();
                if asked_first {
                    let _ = req.headers().from_tag();
                    let _ = req.headers().to_tag();
                }
                let rsp = response_headers(rf.as_deref(), rt.as_deref());
                rsp.note_tags_from_request(req.headers());
                for name in [HeaderName::From, HeaderName::To] {
                    let want = full(&rsp, &name);
                    assert_eq!(memo(&rsp, &name), want, "{}: {name:?} response", case.name);
                    let want = full(req.headers(), &name);
                    assert_eq!(memo(req.headers(), &name), want, "{}: {name:?}", case.name);
                }
                seen += 1;
            }
        }
    }
    assert!(seen > 400, "only {seen} responses checked");
}
