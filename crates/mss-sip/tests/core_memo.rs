//! `Headers::cseq` and `Headers::call_id` remember what they parsed (`header/memo.rs`):
//! asked again, on a clone, or after the whole-message check, they give what the first
//! parse gave, on every message of the RFC 4475 torture corpus that frames; after a change
//! to the headers they give the new value.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use mss_sip::{parse_datagram, CSeq, HeaderName, Message, Method, ParseError};
use mss_testdata::torture;

fn cseq(m: &Message) -> Result<CSeq, ParseError> {
    m.headers().cseq()
}

fn call_id(m: &Message) -> Result<String, ParseError> {
    m.headers().call_id().map(str::to_owned)
}

#[test]
fn the_memos_agree_with_the_first_parse_on_the_torture_corpus() {
    let mut seen = 0;
    for case in torture::cases() {
        let Ok(msg) = parse_datagram(case.bytes.clone()) else {
            continue;
        };
        let (want_cseq, want_call_id) = (cseq(&msg), call_id(&msg));
        assert_eq!(cseq(&msg), want_cseq, "{}: CSeq again", case.name);
        assert_eq!(call_id(&msg), want_call_id, "{}: Call-ID again", case.name);
        let copy = msg.clone();
        assert_eq!(cseq(&copy), want_cseq, "{}: CSeq of a clone", case.name);
        assert_eq!(
            call_id(&copy),
            want_call_id,
            "{}: Call-ID of a clone",
            case.name
        );
        // After the whole-message check (which reads both) on a fresh copy.
        let fresh = parse_datagram(case.bytes.clone()).unwrap();
        if let Message::Request(r) = &fresh {
            let _ = r.check();
        }
        assert_eq!(
            cseq(&fresh),
            want_cseq,
            "{}: CSeq after the check",
            case.name
        );
        assert_eq!(
            call_id(&fresh),
            want_call_id,
            "{}: Call-ID after",
            case.name
        );
        seen += 1;
    }
    assert!(seen > 20, "only {seen} messages checked");
}

#[test]
fn a_change_to_the_headers_is_seen() {
    let text = "BYE sip:a@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:b@pbx.test>;tag=1\r\nTo: <sip:a@pbx.test>;tag=2\r\nCall-ID: first@h\r\nCSeq: 7 BYE\r\nContent-Length: 0\r\n\r\n";
    let mut msg = parse_datagram(bytes::Bytes::from_static(text.as_bytes())).unwrap();
    assert_eq!(cseq(&msg).unwrap().seq, 7);
    assert_eq!(call_id(&msg).unwrap(), "first@h");
    let h = msg.headers_mut();
    // A line removed before the Call-ID moves it: the memo of its place must not be used.
    assert!(h.remove_first(&HeaderName::Via));
    assert_eq!(call_id(&msg).unwrap(), "first@h");
    let h = msg.headers_mut();
    h.replace(HeaderName::CSeq, "8 INFO");
    h.replace(HeaderName::CallId, "second@h");
    assert_eq!(
        cseq(&msg).unwrap(),
        CSeq {
            seq: 8,
            method: Method::Info
        }
    );
    assert_eq!(call_id(&msg).unwrap(), "second@h");
    msg.headers_mut().replace(HeaderName::CallId, "bad call id");
    assert!(call_id(&msg).is_err(), "a bad Call-ID put in is refused");
    msg.headers_mut().remove(&HeaderName::CSeq);
    assert!(cseq(&msg).is_err(), "a removed CSeq is missing");
}
