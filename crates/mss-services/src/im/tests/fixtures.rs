//! Builders shared by the scenario tests and the unit tests of the sub-machines: requests,
//! answers, contacts, stored messages, and picking outputs apart. They know the I/O types
//! only, never the service.

use bytes::Bytes;
use mss_sip::{parse_datagram, Flow, Message, Request, Response, StatusCode};
use mss_store::{NewMessage, StoredMessage};

use crate::im::io::{ContactTarget, ImOutput, RequestToken};

/// The caller's server-transaction handle in these tests.
pub(crate) type Txn = u32;

/// 2026-11-26T12:00:00Z.
pub(crate) const T0_MS: i64 = 1_795_089_600_000;

pub(crate) fn one(mut v: Vec<ImOutput<Txn>>) -> ImOutput<Txn> {
    assert_eq!(v.len(), 1, "{v:?}");
    v.remove(0)
}

pub(crate) fn reply(out: ImOutput<Txn>) -> (Txn, Response) {
    match out {
        ImOutput::Reply { server, response } => (server, response),
        other => panic!("expected Reply, got {other:?}"),
    }
}

pub(crate) fn sends(v: Vec<ImOutput<Txn>>) -> Vec<(RequestToken, Request, Flow)> {
    v.into_iter()
        .map(|o| match o {
            ImOutput::Send {
                token,
                request,
                flow,
            } => (token, request, flow),
            other => panic!("expected Send, got {other:?}"),
        })
        .collect()
}

pub(crate) fn contact(n: u8) -> ContactTarget {
    ContactTarget {
        uri: format!("sip:102@192.0.2.{n}:5062"),
        flow: Flow::udp(format!("192.0.2.{n}:5062").parse().unwrap()),
        sent_by: None,
    }
}

pub(crate) fn parse_req(text: Vec<u8>) -> Request {
    match parse_datagram(Bytes::from(text)).unwrap() {
        Message::Request(r) => r,
        Message::Response(_) => panic!("not a request"),
    }
}

pub(crate) fn message_with(content_type: &str, extra: &str, body: &[u8]) -> Request {
    let mut t = format!(
        "MESSAGE sip:102@pbx.example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKs1;rport\r\n\
         Max-Forwards: 70\r\n\
         From: \"Alice\" <sip:101@pbx.example.com>;tag=a1\r\n\
         To: <sip:102@pbx.example.com>\r\n\
         Call-ID: m1@192.0.2.1\r\n\
         CSeq: 1 MESSAGE\r\n\
         Content-Type: {content_type}\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    t.extend_from_slice(body);
    parse_req(t)
}

pub(crate) fn text(body: &str) -> Request {
    message_with("text/plain;charset=UTF-8", "", body.as_bytes())
}

/// The recipient's answer to a forwarded or delivered request.
pub(crate) fn answer(req: &Request, code: u16, reason: &'static str) -> Response {
    let mut r = Response::for_request(req, StatusCode(code), reason);
    r.set_to_tag("uas-tag");
    r
}

pub(crate) fn warning_text(rsp: &Response) -> String {
    let w = rsp.headers().warnings().unwrap();
    mss_sip::unquote(w[0].text).into_owned()
}

pub(crate) fn stored(id: i64, body: &str, received_at: i64) -> StoredMessage {
    StoredMessage {
        id,
        message: NewMessage {
            recipient: "102".into(),
            sender: format!("<sip:101@pbx.example.com>;tag=t{id}"),
            original_to: Some("<sip:102@pbx.example.com>".into()),
            content_type: "text/plain;charset=UTF-8".into(),
            body: body.as_bytes().to_vec(),
            received_at,
            expires_at: received_at + 86_400_000,
        },
    }
}
