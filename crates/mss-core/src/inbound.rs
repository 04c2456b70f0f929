//! What a received packet becomes before the transaction layer sees it: a parsed message
//! (requests with their top Via stamped, RFC 3261 §18.2.1 / RFC 3581 §4), a stateless
//! answer, or nothing.
//!
//! A request that does not parse still deserves a `400` naming the problem when its
//! Via, From, To, Call-ID and CSeq can be read (RFC 4475 §3.1.2: clerr, ncl, mcl01…), and
//! `505` for another SIP version (badvers). To get at those headers the header block is
//! parsed once more without its Content-Length lines (the usual culprit) and with its
//! blank line restored (baddn). Anything else, and every response, is dropped.

use std::net::SocketAddr;

use bytes::{BufMut, Bytes, BytesMut};
use mss_services::Answer;
use mss_sip::{parse_datagram, Message, Request, Response};
use mss_transport::stamp_top_via;

/// The fate of one received packet.
#[derive(Debug)]
// A `Message` is the common case, returned once per packet and moved on at once: boxing it
// would cost an allocation per packet to save stack bytes on the rare other variants.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Inbound {
    /// A message for the transaction layer.
    Message(Message),
    /// The packet is a broken request: send this answer outside any transaction.
    Reject(Box<Response>),
    /// Nothing to do (a broken response, or a request without usable headers).
    Drop,
}

/// Parses `data` received from `source`. `parse_failed` is true when the bytes did not
/// parse (the caller counts those), whatever the outcome.
pub(crate) fn classify(data: Bytes, source: SocketAddr, answer: &Answer) -> (Inbound, bool) {
    match parse_datagram(data.clone()) {
        Ok(Message::Request(mut req)) => {
            if stamp_top_via(req.headers_mut(), source).is_ok() {
                return (Inbound::Message(Message::Request(req)), false);
            }
            // The top Via is unusable: the transaction layer could not match it either.
            let answered = req
                .validate()
                .err()
                .and_then(|e| answer.parse_error(&req, &e));
            (rejected(answered), true)
        }
        Ok(msg @ Message::Response(_)) => (Inbound::Message(msg), false),
        Err(err) => {
            let answered = salvage(&data).and_then(|mut req| {
                let _ = stamp_top_via(req.headers_mut(), source);
                answer.parse_error(&req, &err)
            });
            (rejected(answered), true)
        }
    }
}

fn rejected(answer: Option<Response>) -> Inbound {
    match answer {
        Some(rsp) => Inbound::Reject(Box::new(rsp)),
        None => Inbound::Drop,
    }
}

/// Whether a header line names Content-Length (long or compact form, RFC 3261 §20.14).
fn is_content_length(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|b| *b == b':') else {
        return false;
    };
    let name = line.get(..colon).unwrap_or_default().trim_ascii();
    name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")
}

/// The header block of a request that failed to parse, re-parsed without Content-Length
/// and without body, so that a `400` can be built from its Via/From/To/Call-ID/CSeq.
fn salvage(data: &[u8]) -> Option<Request> {
    if data.starts_with(b"SIP/") {
        return None;
    }
    let head_end = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(data.len());
    let head = data.get(..head_end)?;
    let mut out = BytesMut::with_capacity(head.len() + 4);
    for line in head.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() || is_content_length(line) {
            continue;
        }
        out.put_slice(line);
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"\r\n");
    match parse_datagram(out.freeze()) {
        Ok(Message::Request(req)) if req.can_build_response() => Some(req),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "192.0.2.4:5062";

    fn run(text: &[u8]) -> (Inbound, bool) {
        classify(
            Bytes::copy_from_slice(text),
            SRC.parse().unwrap(),
            &Answer::new("pbx.test"),
        )
    }

    fn torture(name: &str) -> Vec<u8> {
        mss_testdata::torture::bytes(name).to_vec()
    }

    fn status(i: &Inbound) -> Option<(u16, String)> {
        match i {
            Inbound::Reject(r) => Some((
                r.status().as_u16(),
                String::from_utf8_lossy(r.reason()).into_owned(),
            )),
            _ => None,
        }
    }

    #[test]
    fn good_request_is_stamped() {
        let (i, failed) = run(b"OPTIONS sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport\r\nFrom: <sip:a@pbx.test>;tag=1\r\nTo: <sip:pbx.test>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
        assert!(!failed);
        let Inbound::Message(Message::Request(r)) = i else {
            panic!("{i:?}")
        };
        let via = r.headers().top_via().unwrap();
        assert_eq!(via.received(), Some("192.0.2.4"));
        assert_eq!(via.rport(), Some(Some(5062)));
    }

    #[test]
    fn unparsable_requests_get_400_naming_the_problem() {
        let (i, failed) = run(&torture("clerr"));
        assert!(failed);
        assert_eq!(
            status(&i),
            Some((400, "Content-Length Exceeds Message".into()))
        );
        assert_eq!(status(&run(&torture("ncl")).0).map(|s| s.0), Some(400));
        assert_eq!(status(&run(&torture("mcl01")).0).map(|s| s.0), Some(400));
        // A 400 goes back to where the request came from (received stamped).
        let Inbound::Reject(r) = run(&torture("clerr")).0 else {
            panic!()
        };
        assert_eq!(r.headers().top_via().unwrap().received(), Some("192.0.2.4"));
    }

    #[test]
    fn broken_responses_and_headerless_garbage_are_dropped() {
        assert!(matches!(run(&torture("bigcode")).0, Inbound::Drop));
        assert!(matches!(run(b"\x00\x01garbage").0, Inbound::Drop));
        assert!(matches!(run(&torture("test")).0, Inbound::Drop));
        let (i, failed) = run(&torture("scalarlg"));
        assert!(matches!(i, Inbound::Drop | Inbound::Message(_)), "{i:?}");
        let _ = failed;
    }

    #[test]
    fn content_length_lines_are_recognised() {
        assert!(is_content_length(b"Content-Length: 5"));
        assert!(is_content_length(b"l :5"));
        assert!(!is_content_length(b"Contact: <sip:a@b>"));
        assert!(!is_content_length(b"no colon"));
    }
}
