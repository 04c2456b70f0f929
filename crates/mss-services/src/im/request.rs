//! The requests mss sends: a MESSAGE relayed to a contact (RFC 3261 §16.6) and a stored
//! message delivered to a returning user (a new request from mss, §8.1.1).

use std::time::{Duration, UNIX_EPOCH};

use mss_sip::{HeaderName, Method, Request};
use mss_store::StoredMessage;
use rand::RngCore;

use crate::im::io::ContactTarget;

/// Max-Forwards of requests mss starts, and of relayed requests that had none
/// (RFC 3261 §8.1.1.6, §16.6 step 3).
pub(crate) const MAX_FORWARDS: u8 = 70;

/// Why a MESSAGE cannot be relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ForwardError {
    /// Max-Forwards is 0 (RFC 3261 §16.3 step 3: `483`).
    TooManyHops,
}

/// Our Via for a request over `contact`'s flow: `sent-by` our address towards the contact
/// (or the settings' `via_host` when unknown, RFC 3261 §18.1.1), a fresh branch, and
/// `rport` (RFC 3581) so UDP answers return to the source address.
fn our_via(contact: &ContactTarget, via_host: &str, branch: &str) -> String {
    let transport = contact.flow.transport.as_str();
    match contact.sent_by {
        Some(addr) => format!("SIP/2.0/{transport} {addr};branch={branch};rport"),
        None => format!("SIP/2.0/{transport} {via_host};branch={branch};rport"),
    }
}

/// The Max-Forwards a relayed copy of `req` carries: one less, or 70 when absent.
///
/// # Errors
/// [`ForwardError::TooManyHops`] when it is 0. A Max-Forwards that does not parse was
/// refused by the precheck already; it is treated as absent here.
pub(crate) fn next_max_forwards(req: &Request) -> Result<u8, ForwardError> {
    match req.headers().max_forwards() {
        Ok(Some(0)) => Err(ForwardError::TooManyHops),
        Ok(Some(n)) => Ok(n - 1),
        Ok(None) | Err(_) => Ok(MAX_FORWARDS),
    }
}

/// The copy of `req` that goes to `contact` (RFC 3261 §16.6):
/// 1. the Request-URI becomes the contact URI (§16.5, step 2);
/// 2. Max-Forwards is `max_forwards` (from [`next_max_forwards`], step 3);
/// 3. Route is removed: mss forwards only to registered contacts and is the last proxy
///    before them, so the only entries left are ours (§16.4) and mss follows no other
///    (it is not an open relay, DESIGN §7);
/// 4. Proxy-Authorization is removed: those credentials were for our realm (§22.3);
/// 5. our Via goes on top of the received ones (step 8).
///
/// From, To, Call-ID, CSeq, Content-Type, the other headers and the body stay byte for
/// byte.
pub(crate) fn forward(
    req: &Request,
    contact: &ContactTarget,
    max_forwards: u8,
    via_host: &str,
    branch: &str,
) -> Request {
    let mut out = req.clone();
    out.set_uri(contact.uri.clone());
    let h = out.headers_mut();
    h.replace(HeaderName::MaxForwards, max_forwards.to_string());
    h.remove(&HeaderName::Route);
    h.remove(&HeaderName::ProxyAuthorization);
    h.push_front(HeaderName::Via, our_via(contact, via_host, branch));
    out
}

/// What makes a delivered request new (RFC 3261 §8.1.1.4, §8.1.1.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewIds {
    /// A fresh Call-ID.
    pub(crate) call_id: String,
    /// A fresh Via branch.
    pub(crate) branch: String,
}

impl NewIds {
    /// Fresh ids from `rng`.
    pub(crate) fn generate(rng: &mut dyn RngCore) -> NewIds {
        NewIds {
            call_id: random_hex(rng, 16),
            branch: new_branch(rng),
        }
    }
}

/// `z9hG4bK` and 96 random bits (RFC 3261 §8.1.1.7).
pub(crate) fn new_branch(rng: &mut dyn RngCore) -> String {
    let mut out = String::with_capacity(7 + 24);
    out.push_str("z9hG4bK");
    push_random_hex(rng, &mut out, 12);
    out
}

/// `n` random bytes (at most 32) as lowercase hex.
fn random_hex(rng: &mut dyn RngCore, n: usize) -> String {
    let mut out = String::with_capacity(2 * n);
    push_random_hex(rng, &mut out, n);
    out
}

/// Appends `n` random bytes (at most 32) to `out` as lowercase hex, without a formatter.
fn push_random_hex(rng: &mut dyn RngCore, out: &mut String, n: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 32];
    let bytes = &mut buf[..n.min(32)];
    rng.fill_bytes(bytes);
    for b in bytes.iter() {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
}

/// The `Date` header value for a stored message: its arrival in RFC 1123 format (RFC 3261
/// §20.17; `httpdate` writes exactly that form, always GMT).
pub(crate) fn arrival_date(received_at_ms: i64) -> String {
    // httpdate formats four-digit years only: clamp to 9999-12-31T23:59:59Z.
    const LAST_MS: i64 = 253_402_300_799_000;
    let ms = u64::try_from(received_at_ms.min(LAST_MS)).unwrap_or(0);
    let t = UNIX_EPOCH
        .checked_add(Duration::from_millis(ms))
        .unwrap_or(UNIX_EPOCH);
    httpdate::fmt_http_date(t)
}

/// A stored message as a new MESSAGE from mss to `contact`: the original `From` value
/// (tag included), `To` naming the recipient at our domain, a new Call-ID, CSeq 1, the
/// original Content-Type and body byte for byte, and `Date` of the original arrival.
pub(crate) fn delivery(
    stored: &StoredMessage,
    contact: &ContactTarget,
    domain: &str,
    via_host: &str,
    ids: &NewIds,
) -> Request {
    let m = &stored.message;
    Request::builder(Method::Message, contact.uri.clone())
        .via(our_via(contact, via_host, &ids.branch))
        .max_forwards(MAX_FORWARDS)
        .from(m.sender.clone())
        .to(format!("<sip:{}@{domain}>", m.recipient))
        .call_id(ids.call_id.clone())
        .cseq(1)
        .header(HeaderName::Date, arrival_date(m.received_at))
        .body(m.content_type.clone(), m.body.clone())
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use mss_sip::{parse_datagram, Flow, Message, Transport};
    use mss_store::NewMessage;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn contact() -> ContactTarget {
        ContactTarget {
            uri: "sip:102@192.0.2.7:5062;transport=tcp".into(),
            flow: Flow {
                transport: Transport::Tcp,
                remote: "192.0.2.7:40000".parse().unwrap(),
                connection: None,
            },
            sent_by: None,
        }
    }

    fn parse(b: Bytes) -> Request {
        match parse_datagram(b).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => panic!(),
        }
    }

    const MSG: &str = "MESSAGE sip:102@pbx SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa;rport=5060\r\n\
Max-Forwards: 5\r\n\
Route: <sip:pbx;lr>\r\n\
Proxy-Authorization: Digest username=\"101\", realm=\"pbx\"\r\n\
From: \"Al\" <sip:101@pbx>;tag=1\r\n\
To: <sip:102@pbx>\r\n\
Call-ID: c1\r\n\
CSeq: 7 MESSAGE\r\n\
Content-Type: text/plain\r\n\
Content-Length: 2\r\n\r\nhi";

    #[test]
    fn our_via_names_our_address_towards_the_contact_when_known() {
        let mut c = contact();
        assert_eq!(
            our_via(&c, "pbx.example.com", "z9hG4bKb"),
            "SIP/2.0/TCP pbx.example.com;branch=z9hG4bKb;rport"
        );
        c.sent_by = Some("198.51.100.4:5060".parse().unwrap());
        assert_eq!(
            our_via(&c, "pbx.example.com", "z9hG4bKb"),
            "SIP/2.0/TCP 198.51.100.4:5060;branch=z9hG4bKb;rport"
        );
    }

    #[test]
    fn forward_follows_16_6() {
        let req = parse(Bytes::from_static(MSG.as_bytes()));
        let mf = next_max_forwards(&req).unwrap();
        let out = forward(&req, &contact(), mf, "pbx.example.com", "z9hG4bKx");
        let back = parse(out.to_bytes());
        assert_eq!(
            back.uri_str().unwrap(),
            "sip:102@192.0.2.7:5062;transport=tcp"
        );
        let h = back.headers();
        let vias = h.via().unwrap();
        assert_eq!(vias.len(), 2);
        assert_eq!(vias[0].branch(), Some("z9hG4bKx"));
        assert_eq!(vias[0].transport_kind(), Some(Transport::Tcp));
        assert_eq!(vias[1].branch(), Some("z9hG4bKa"));
        assert_eq!(h.max_forwards(), Ok(Some(4)));
        assert!(!h.contains(&HeaderName::Route));
        assert!(!h.contains(&HeaderName::ProxyAuthorization));
        for name in [
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
            HeaderName::CSeq,
            HeaderName::ContentType,
        ] {
            assert_eq!(h.get(&name), req.headers().get(&name), "{name:?}");
        }
        assert_eq!(back.body(), req.body());
    }

    #[test]
    fn max_forwards_zero_or_absent() {
        let zero = parse(Bytes::from(
            MSG.replace("Max-Forwards: 5", "Max-Forwards: 0"),
        ));
        assert_eq!(next_max_forwards(&zero), Err(ForwardError::TooManyHops));
        let none = parse(Bytes::from(MSG.replace("Max-Forwards: 5\r\n", "")));
        assert_eq!(next_max_forwards(&none), Ok(70));
    }

    #[test]
    fn delivery_keeps_the_original() {
        let stored = StoredMessage {
            id: 3,
            message: NewMessage {
                recipient: "102".into(),
                sender: "\"Al\" <sip:101@pbx>;tag=1".into(),
                original_to: Some("<sip:102@pbx>".into()),
                content_type: "text/plain;charset=UTF-8".into(),
                body: "héllo".as_bytes().to_vec(),
                received_at: 1_700_000_000_000,
                expires_at: 1_800_000_000_000,
            },
        };
        let mut rng = StdRng::seed_from_u64(1);
        let ids = NewIds::generate(&mut rng);
        assert_ne!(ids, NewIds::generate(&mut rng));
        let req = delivery(
            &stored,
            &contact(),
            "pbx.example.com",
            "pbx.example.com",
            &ids,
        );
        let back = parse(req.to_bytes());
        assert!(back.validate().is_ok());
        let h = back.headers();
        assert_eq!(
            h.get_str(&HeaderName::From).unwrap(),
            Some("\"Al\" <sip:101@pbx>;tag=1")
        );
        assert_eq!(
            h.get_str(&HeaderName::To).unwrap(),
            Some("<sip:102@pbx.example.com>")
        );
        assert_eq!(h.call_id().unwrap(), ids.call_id);
        assert_eq!(h.cseq().unwrap().seq, 1);
        assert_eq!(
            h.get_str(&HeaderName::ContentType).unwrap(),
            Some("text/plain;charset=UTF-8")
        );
        assert_eq!(
            h.get_str(&HeaderName::Date).unwrap(),
            Some("Tue, 14 Nov 2023 22:13:20 GMT")
        );
        assert!(h.date().unwrap().is_some());
        assert_eq!(&back.body()[..], "héllo".as_bytes());
        assert!(ids.branch.starts_with("z9hG4bK"));
    }

    #[test]
    fn odd_arrival_times_do_not_panic() {
        assert_eq!(arrival_date(-5), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(arrival_date(i64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
    }

    #[test]
    fn fresh_ids_are_lowercase_hex_of_the_promised_length() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let a = NewIds::generate(&mut rng);
        let b = NewIds::generate(&mut rng);
        assert_ne!(a, b);
        assert_eq!(a.call_id.len(), 32);
        assert_eq!(a.branch.len(), 7 + 24);
        let hex = |s: &str| {
            s.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        };
        assert!(hex(&a.call_id));
        assert!(hex(&a.branch["z9hG4bK".len()..]));
    }
}
