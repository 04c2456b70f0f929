//! The messages the transaction layer builds itself: the ACK for a non-2xx final response
//! (RFC 3261 §17.1.1.3), 100 (Trying) (§17.2.1), the 200/481 answers to CANCEL (§9.2) and
//! the 408 reported to the TU when Timer B or F fires (§8.1.3.1).

use bytes::Bytes;
use mss_sip::{HeaderName, Method, Request, Response, StatusCode};

/// A response to `req` built per §8.2.6.2: Via (all, in order), From, To, Call-ID and CSeq
/// copied; for 100 (Trying) also Timestamp (§8.2.6.1). No To tag is added: §17.2.1
/// downgrades it to SHOULD NOT for 100, and the table supplies the To of an earlier
/// response where one exists (see [`replace_to`]).
pub(crate) fn response_for(req: &Request, status: StatusCode) -> Response {
    Response::for_request(req, status, status.canonical_reason())
}

/// Replaces the To header of a response (used to give the 200 to a CANCEL the To tag of
/// the INVITE's response, §9.2).
pub(crate) fn replace_to(rsp: &mut Response, to: Bytes) {
    rsp.headers_mut().replace(HeaderName::To, to);
}

/// The ACK for a non-2xx final response, built inside the client transaction (§17.1.1.3):
/// Request-URI, Call-ID, From and Route of the original request; its top Via only; the To
/// of the response; the CSeq number of the original with method ACK; Max-Forwards 70; no
/// body.
pub(crate) fn ack_for(original: &Request, rsp: &Response, cseq: u32) -> Request {
    let mut ack = Request::new(Method::Ack, Bytes::copy_from_slice(original.uri_bytes()));
    let h = ack.headers_mut();
    if let Some(via) = original.headers().values(&HeaderName::Via).next() {
        h.push(HeaderName::Via, Bytes::copy_from_slice(via));
    }
    h.copy_from(original.headers(), &HeaderName::Route);
    h.push(HeaderName::MaxForwards, Bytes::from_static(b"70"));
    h.copy_from(original.headers(), &HeaderName::From);
    h.copy_from(rsp.headers(), &HeaderName::To);
    h.copy_from(original.headers(), &HeaderName::CallId);
    h.push(HeaderName::CSeq, mss_sip::cseq_value(cseq, "ACK"));
    ack
}

/// A To tag for a 481 to a stray CANCEL, derived from the CANCEL's branch so that
/// retransmitted CANCELs get the same answer without any randomness. The 481 never creates
/// a dialog, so the tag only needs to be stable (§8.2.6.2).
pub(crate) fn stable_tag(seed: &[u8]) -> String {
    // FNV-1a, 64 bits.
    let h = seed.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite() -> Request {
        let mut r = Request::new(Method::Invite, "sip:bob@biloxi.com");
        let h = r.headers_mut();
        h.push(
            HeaderName::Via,
            "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKkjshdyff",
        );
        h.push(
            HeaderName::Via,
            "SIP/2.0/UDP proxy.example;branch=z9hG4bKother",
        );
        h.push(HeaderName::To, "Bob <sip:bob@biloxi.com>");
        h.push(
            HeaderName::From,
            "Alice <sip:alice@atlanta.com>;tag=88sja8x",
        );
        h.push(HeaderName::MaxForwards, "70");
        h.push(HeaderName::CallId, "987asjd97y7atg");
        h.push(HeaderName::CSeq, "986759 INVITE");
        h.push(HeaderName::Route, "<sip:p1.example;lr>");
        h.push(HeaderName::Timestamp, "54");
        r.set_body("v=0\r\n");
        r
    }

    #[test]
    fn ack_follows_17_1_1_3() {
        let inv = invite();
        let mut rsp = response_for(&inv, StatusCode::BUSY_HERE);
        replace_to(
            &mut rsp,
            Bytes::from_static(b"Bob <sip:bob@biloxi.com>;tag=99sa0xk"),
        );
        let ack = ack_for(&inv, &rsp, 986759);
        let text = String::from_utf8(ack.to_bytes().to_vec()).unwrap();
        assert_eq!(
            text,
            "ACK sip:bob@biloxi.com SIP/2.0\r\n\
             Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKkjshdyff\r\n\
             Route: <sip:p1.example;lr>\r\n\
             Max-Forwards: 70\r\n\
             From: Alice <sip:alice@atlanta.com>;tag=88sja8x\r\n\
             To: Bob <sip:bob@biloxi.com>;tag=99sa0xk\r\n\
             Call-ID: 987asjd97y7atg\r\n\
             CSeq: 986759 ACK\r\n\
             Content-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn trying_copies_8_2_6_headers_and_timestamp() {
        let rsp = response_for(&invite(), StatusCode::TRYING);
        let text = String::from_utf8(rsp.to_bytes().to_vec()).unwrap();
        assert!(text.starts_with("SIP/2.0 100 Trying\r\n"), "{text}");
        assert_eq!(text.matches("Via: ").count(), 2);
        assert!(text.contains("Timestamp: 54\r\n"));
        assert!(text.contains("To: Bob <sip:bob@biloxi.com>\r\n"));
        assert!(!text.contains("Route"));
        assert!(!text.contains("v=0"));
        let rsp = response_for(&invite(), StatusCode::OK);
        assert!(rsp.headers().get(&HeaderName::Timestamp).is_none());
    }

    #[test]
    fn stable_tags() {
        assert_eq!(stable_tag(b"z9hG4bKa"), stable_tag(b"z9hG4bKa"));
        assert_ne!(stable_tag(b"z9hG4bKa"), stable_tag(b"z9hG4bKb"));
        assert_eq!(stable_tag(b"").len(), 16);
    }
}
