//! The requests mss builds for B legs (DESIGN §8): the INVITE to a device or out through
//! a line, the same INVITE again with the line's credentials, and CANCEL (RFC 3261 §9.1).

use std::net::SocketAddr;

use bytes::Bytes;
use mss_sip::{push_decimal, Flow, HeaderName, Method, Request, Response, Transport};
use rand::RngCore;

/// The methods mss accepts within a call's dialogs (its `Allow`).
pub(crate) const ALLOW: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, INFO, UPDATE, NOTIFY, PRACK, REFER";

/// Headers of a request within a dialog (or of a response) that travel to the other leg
/// with its body.
pub(crate) const BODY_HEADERS: [&str; 3] = ["Content-Disposition", "Info-Package", "Event"];

/// The parts of one B leg's INVITE.
#[derive(Debug, Clone)]
pub(crate) struct InviteSpec<'a> {
    /// The Request-URI: a device's contact, or `sip:NUMBER@PROVIDER`.
    pub(crate) request_uri: &'a str,
    /// The From value without tag: `"Name" <sip:100@domain>`.
    pub(crate) from: String,
    /// The To value: `<sip:101@domain>`.
    pub(crate) to: String,
    /// Where it goes.
    pub(crate) flow: Flow,
    /// Our address towards it (Via sent-by and Contact host).
    pub(crate) sent_by: String,
    /// The Max-Forwards of the A leg's INVITE, less one.
    pub(crate) max_forwards: u8,
    /// Content-Type and body of the offer, if the caller made one.
    pub(crate) offer: Option<&'a (Bytes, Bytes)>,
}

/// Our Contact towards a peer: `sip:mss@ADDR`, with `;transport=tcp` over TCP so that
/// the peer's requests come back over TCP (RFC 3261 §19.1.4).
pub(crate) fn contact_uri(sent_by: &str, transport: Transport, user: &str) -> String {
    let mut out = String::with_capacity(contact_len(sent_by, user));
    push_contact_uri(&mut out, sent_by, transport, user);
    out
}

/// The length of [`contact_uri`] at most: `sip:` + user + `@` + sent-by + a transport.
fn contact_len(sent_by: &str, user: &str) -> usize {
    "sip:@;transport=".len() + user.len() + sent_by.len() + 4
}

/// Appends [`contact_uri`] to `out` (each part pushed: a B leg's INVITE is built per call,
/// and the formatter cost more than the copies).
fn push_contact_uri(out: &mut String, sent_by: &str, transport: Transport, user: &str) {
    out.push_str("sip:");
    out.push_str(user);
    out.push('@');
    out.push_str(sent_by);
    if transport != Transport::Udp {
        out.push_str(";transport=");
        out.push_str(&transport.as_str().to_ascii_lowercase());
    }
}

/// `addr` as a Via sent-by or Contact host-port: what `addr.to_string()` writes, an IPv4
/// address digit by digit (every B leg and every answered A leg needs one; the formatter
/// cost ten times the copies).
pub(crate) fn addr_text(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(v4) => {
            let mut out = String::with_capacity("255.255.255.255:65535".len());
            for (i, octet) in v4.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_decimal(&mut out, usize::from(octet));
            }
            out.push(':');
            push_decimal(&mut out, usize::from(v4.port()));
            out
        }
        SocketAddr::V6(_) => addr.to_string(),
    }
}

/// A random hex string of 16 digits.
fn random_hex(rng: &mut dyn RngCore) -> String {
    let mut out = String::with_capacity(16);
    push_random_hex(&mut out, rng);
    out
}

/// Appends 16 random lowercase hex digits to `out` (what `{:016x}` of a random `u64`
/// writes, without the formatter: a B leg's INVITE needs four of them).
fn push_random_hex(out: &mut String, rng: &mut dyn RngCore) {
    super::record_id::push_hex(out, rng.next_u64(), 16);
}

/// The INVITE of a new B leg: a new Call-ID and From tag, CSeq 1, a Via branch that starts
/// with `branch_prefix` (so that mss knows its own INVITE if it comes back), mss as
/// Contact, the caller's offer as body.
pub(crate) fn b_invite(
    spec: &InviteSpec<'_>,
    branch_prefix: &str,
    contact_user: &str,
    rng: &mut dyn RngCore,
) -> Request {
    let transport = spec.flow.transport;
    // Each header written into one buffer of its final size (no formatter).
    let mut via = String::with_capacity(
        "SIP/2.0/ ;branch=;rport".len() + 4 + spec.sent_by.len() + branch_prefix.len() + 16,
    );
    via.push_str("SIP/2.0/");
    via.push_str(transport.as_str());
    via.push(' ');
    via.push_str(&spec.sent_by);
    via.push_str(";branch=");
    via.push_str(branch_prefix);
    push_random_hex(&mut via, rng);
    via.push_str(";rport");
    let mut contact = String::with_capacity(contact_len(&spec.sent_by, contact_user) + 2);
    contact.push('<');
    push_contact_uri(&mut contact, &spec.sent_by, transport, contact_user);
    contact.push('>');
    let mut from = String::with_capacity(spec.from.len() + ";tag=".len() + 16);
    from.push_str(&spec.from);
    from.push_str(";tag=");
    push_random_hex(&mut from, rng);
    let mut call_id = String::with_capacity(32);
    push_random_hex(&mut call_id, rng);
    push_random_hex(&mut call_id, rng);
    let mut b = Request::builder(Method::Invite, spec.request_uri.to_owned())
        .via(via)
        .max_forwards(spec.max_forwards)
        .from(from)
        .to(spec.to.clone())
        .call_id(call_id)
        .cseq(1)
        .contact(contact)
        .header(HeaderName::Allow, ALLOW);
    if let Some((content_type, body)) = spec.offer {
        b = b.body(content_type.clone(), body.clone());
    }
    b.build()
}

/// `invite` sent again as a new transaction (RFC 3261 §22.2, RFC 4028 §7.4): a new
/// branch, the CSeq one higher, everything else as it was.
pub(crate) fn next_attempt(
    invite: &Request,
    branch_prefix: &str,
    rng: &mut dyn RngCore,
) -> Option<Request> {
    let mut next = invite.clone();
    let via = invite.headers().top_via().ok()?;
    let sent_by = match via.port {
        Some(p) => format!("{}:{p}", via.host),
        None => via.host.to_owned(),
    };
    let seq = invite.headers().cseq().ok()?.seq.checked_add(1)?;
    let h = next.headers_mut();
    h.replace(
        HeaderName::Via,
        format!(
            "SIP/2.0/{} {sent_by};branch={branch_prefix}{};rport",
            via.transport,
            random_hex(rng)
        ),
    );
    h.replace(HeaderName::CSeq, format!("{seq} INVITE"));
    Some(next)
}

/// `invite` sent again after a `401`/`407` (RFC 3261 §22.2): a new branch, CSeq one
/// higher, the credentials in `header` (`Authorization` or `Proxy-Authorization`).
pub(crate) fn with_credentials(
    invite: &Request,
    header: HeaderName,
    credentials: String,
    branch_prefix: &str,
    rng: &mut dyn RngCore,
) -> Option<Request> {
    let mut next = next_attempt(invite, branch_prefix, rng)?;
    let h = next.headers_mut();
    h.remove(&HeaderName::Authorization);
    h.remove(&HeaderName::ProxyAuthorization);
    h.push(header, credentials);
    Some(next)
}

/// The CANCEL of `invite` (RFC 3261 §9.1): the same Request-URI, Call-ID, To, From, CSeq
/// number and top Via (so that it reaches the same transaction), and its Route headers.
pub(crate) fn cancel_for(invite: &Request) -> Option<Request> {
    let h = invite.headers();
    let seq = h.cseq().ok()?.seq;
    let mut b = Request::builder(Method::Cancel, invite.uri_str().ok()?.to_owned())
        .via(Bytes::copy_from_slice(h.get(&HeaderName::Via)?))
        .max_forwards(70);
    for route in h.get_all(&HeaderName::Route) {
        b = b.header(HeaderName::Route, Bytes::copy_from_slice(route));
    }
    Some(
        b.from(Bytes::copy_from_slice(h.get(&HeaderName::From)?))
            .to(Bytes::copy_from_slice(h.get(&HeaderName::To)?))
            .call_id(Bytes::copy_from_slice(h.get(&HeaderName::CallId)?))
            .cseq(seq)
            .build(),
    )
}

/// Copies the body of `from` into `to` with its Content-Type and the headers that
/// describe it ([`BODY_HEADERS`]).
pub(crate) fn copy_body_request(from_headers: &mss_sip::Headers, body: &Bytes, to: &mut Request) {
    copy_body_headers(from_headers, to.headers_mut());
    to.set_body(body.clone());
}

/// As [`copy_body_request`] for a response.
pub(crate) fn copy_body_response(from_headers: &mss_sip::Headers, body: &Bytes, to: &mut Response) {
    copy_body_headers(from_headers, to.headers_mut());
    to.set_body(body.clone());
}

fn copy_body_headers(from: &mss_sip::Headers, to: &mut mss_sip::Headers) {
    if let Some(ct) = from.get(&HeaderName::ContentType) {
        to.replace(HeaderName::ContentType, Bytes::copy_from_slice(ct));
    }
    for name in BODY_HEADERS {
        let name = HeaderName::from_bytes(Bytes::from_static(name.as_bytes()));
        to.copy_from(from, &name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_written_as_the_formatter_writes_them() {
        for text in [
            "0.0.0.0:0",
            "127.0.0.1:5060",
            "192.0.2.255:65535",
            "10.20.30.40:7",
            "[::1]:5060",
            "[2001:db8::1]:5061",
        ] {
            let addr: SocketAddr = text.parse().unwrap();
            assert_eq!(addr_text(addr), addr.to_string());
            assert_eq!(addr_text(addr), text);
        }
    }

    #[test]
    fn random_hex_is_sixteen_lowercase_digits_of_the_next_u64() {
        for seed in 0..50 {
            let mut a = StdRng::seed_from_u64(seed);
            let mut b = StdRng::seed_from_u64(seed);
            assert_eq!(random_hex(&mut a), format!("{:016x}", b.next_u64()));
        }
        let mut zero = rand::rngs::mock::StepRng::new(0xab, 0);
        assert_eq!(random_hex(&mut zero), "00000000000000ab");
    }
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn spec(offer: Option<&(Bytes, Bytes)>) -> InviteSpec<'_> {
        InviteSpec {
            request_uri: "sip:101@192.0.2.20:5062",
            from: "\"Alice\" <sip:100@pbx.test>".into(),
            to: "<sip:101@pbx.test>".into(),
            flow: Flow::udp("192.0.2.20:5062".parse().unwrap()),
            sent_by: "192.0.2.1:5060".into(),
            max_forwards: 69,
            offer,
        }
    }

    #[test]
    fn invite_carries_our_branch_contact_and_the_offer() {
        let mut rng = StdRng::seed_from_u64(1);
        let offer = (
            Bytes::from_static(b"application/sdp"),
            Bytes::from_static(b"v=0\r\n"),
        );
        let inv = b_invite(&spec(Some(&offer)), "z9hG4bKabc-", "mss", &mut rng);
        let h = inv.headers();
        let via = String::from_utf8_lossy(h.get(&HeaderName::Via).unwrap()).to_string();
        assert!(
            via.starts_with("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc-"),
            "{via}"
        );
        assert_eq!(h.cseq().unwrap().seq, 1);
        assert!(h.from().unwrap().tag().is_some());
        assert_eq!(h.max_forwards().unwrap(), Some(69));
        assert_eq!(
            h.get(&HeaderName::Contact).unwrap(),
            b"<sip:mss@192.0.2.1:5060>"
        );
        assert_eq!(inv.body().as_ref(), b"v=0\r\n");
        // Parses back as a valid request.
        let again = mss_sip::parse_datagram(inv.to_bytes()).unwrap();
        assert!(matches!(again, mss_sip::Message::Request(_)));
    }

    #[test]
    fn credentials_take_a_new_branch_and_the_next_cseq() {
        let mut rng = StdRng::seed_from_u64(2);
        let inv = b_invite(&spec(None), "z9hG4bKabc-", "mss", &mut rng);
        let next = with_credentials(
            &inv,
            HeaderName::ProxyAuthorization,
            "Digest username=\"l\"".into(),
            "z9hG4bKabc-",
            &mut rng,
        )
        .unwrap();
        assert_eq!(next.headers().cseq().unwrap().seq, 2);
        assert_ne!(
            next.headers().top_via().unwrap().branch(),
            inv.headers().top_via().unwrap().branch()
        );
        assert_eq!(
            next.headers().call_id().unwrap(),
            inv.headers().call_id().unwrap()
        );
        assert!(next.headers().contains(&HeaderName::ProxyAuthorization));
    }

    #[test]
    fn cancel_matches_the_invite() {
        let mut rng = StdRng::seed_from_u64(3);
        let inv = b_invite(&spec(None), "z9hG4bKabc-", "mss", &mut rng);
        let cancel = cancel_for(&inv).unwrap();
        assert_eq!(*cancel.method(), Method::Cancel);
        let (a, b) = (inv.headers(), cancel.headers());
        assert_eq!(a.get(&HeaderName::Via), b.get(&HeaderName::Via));
        assert_eq!(a.cseq().unwrap().seq, b.cseq().unwrap().seq);
        assert_eq!(b.cseq().unwrap().method, Method::Cancel);
        assert_eq!(inv.uri_str().unwrap(), cancel.uri_str().unwrap());
    }

    #[test]
    fn contact_names_the_transport_over_tcp() {
        assert_eq!(
            contact_uri("192.0.2.1:5060", Transport::Tcp, "mss"),
            "sip:mss@192.0.2.1:5060;transport=tcp"
        );
    }
}
