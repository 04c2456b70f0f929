//! Arbitrary bytes as a UDP datagram: parsing, validation, every typed accessor, building
//! a response and re-serializing must never panic; what parses must parse again.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use mss_sip::{parse_datagram, validate_core, Contacts, HeaderName, Message, Response, StatusCode};

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = parse_datagram(Bytes::copy_from_slice(data)) else {
        return;
    };
    let h = msg.headers();
    let _ = h.via();
    let _ = h.top_via();
    let _ = h.from().map(|f| f.display_name_unquoted());
    let _ = h.to();
    let _ = h.call_id();
    let _ = h.cseq();
    if let Ok(Contacts::List(list)) = h.contacts() {
        for c in list {
            let _ = (c.q(), c.expires(), c.instance(), c.reg_id());
        }
    }
    let _ = h.max_forwards();
    let _ = h.expires();
    let _ = h.content_type();
    let _ = h.route();
    let _ = h.date();
    let _ = h.warnings();
    let _ = h.retry_after();
    let _ = h.supported();
    let _ = h.auth(&HeaderName::Authorization);
    let _ = validate_core(&msg);
    if let Message::Request(req) = &msg {
        let _ = req.uri();
        let mut rsp = Response::for_request(req, StatusCode::BAD_REQUEST, "Bad Request");
        rsp.set_to_tag("fuzz");
        let _ = rsp.to_bytes();
    }
    let again = parse_datagram(msg.to_bytes());
    assert!(
        again.is_ok(),
        "a parsed message must parse again after encoding"
    );
});
