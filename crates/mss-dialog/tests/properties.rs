//! Property tests: no header value in a request or response of a dialog makes the dialog
//! layer panic, whatever it then decides; whatever it answers or builds is a message that
//! encodes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod peer;

use std::time::Duration;

use bytes::Bytes;
use mss_dialog::{
    check_require, is_in_dialog, unknown_dialog_answer, Dialog, DialogId, Dialogs, RequestOutcome,
    ResponseOutcome,
};
use mss_sip::{parse_datagram, HeaderName, Message, Method, Request, Response, StatusCode};
use peer::{a_leg_confirmed, drain, from_bob, invite_b, local_a, rng, table, Clock};
use proptest::prelude::*;

/// The headers a case writes, in order; each gets the value that fits the dialog or an
/// arbitrary one.
const HEADERS: [&str; 10] = [
    "Via",
    "Max-Forwards",
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Contact",
    "Record-Route",
    "Require",
    "Route",
];

const METHODS: [&str; 9] = [
    "INVITE", "ACK", "BYE", "UPDATE", "INFO", "MESSAGE", "CANCEL", "PRACK", "FOO",
];

/// An arbitrary header value: printable text, text made of SIP's punctuation, or bytes
/// (not UTF-8, but never a line break).
fn arbitrary_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[ -~]{0,60}".prop_map(String::into_bytes),
        "[<>;=,\"@:?%a-z0-9 .\\\\*]{0,40}".prop_map(String::into_bytes),
        "<sip:[a-z0-9.@:;=]{0,20}>(;tag=[a-z0-9-]{0,8})?(;lr)?".prop_map(String::into_bytes),
        "[0-9]{0,12} ?[A-Z]{0,8}".prop_map(String::into_bytes),
        prop::collection::vec(
            any::<u8>().prop_filter("no line break", |b| *b != b'\r' && *b != b'\n'),
            0..40
        ),
    ]
}

/// `None`: the value that fits the dialog; `Some`: this one instead.
fn header_values() -> impl Strategy<Value = Vec<Option<Vec<u8>>>> {
    prop::collection::vec(
        prop_oneof![8 => Just(None), 1 => arbitrary_value().prop_map(Some)],
        HEADERS.len(),
    )
}

/// The values that fit dialog `id` (mss's side `local`, the peer's `remote`).
fn fitting(id: &DialogId, method: &str, cseq: u32) -> [String; 10] {
    [
        format!("SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKprop{cseq}"),
        "70".into(),
        format!("<sip:peer@example.com>;tag={}", id.remote_tag()),
        format!("<sip:mss@example.com>;tag={}", id.local_tag()),
        id.call_id().to_owned(),
        format!("{cseq} {method}"),
        "<sip:peer@192.0.2.50:5062>".into(),
        "<sip:proxy.example.com;lr>".into(),
        "100rel".into(),
        "<sip:proxy.example.com;lr>".into(),
    ]
}

fn message(start_line: &str, fit: &[String; 10], values: &[Option<Vec<u8>>], body: &[u8]) -> Bytes {
    let mut out = Vec::new();
    out.extend_from_slice(start_line.as_bytes());
    out.extend_from_slice(b"\r\n");
    for ((name, good), value) in HEADERS.iter().zip(fit).zip(values) {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_deref().unwrap_or(good.as_bytes()));
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    Bytes::from(out)
}

/// A table with a confirmed A leg (mss UAS) and a confirmed B leg (mss UAC).
fn two_legs(clock: &Clock) -> (Dialogs, rand::rngs::StdRng, DialogId, DialogId, Request) {
    let mut rng = rng(99);
    let mut dialogs = table(&mut rng);
    let (_, a) = a_leg_confirmed(&mut dialogs, &mut rng, clock.now);
    let invite = invite_b();
    let ok = from_bob(
        &invite,
        200,
        "bob-1",
        &[(HeaderName::Contact, "<sip:bob@192.0.2.20>")],
    );
    let ResponseOutcome::Applied { id: b, .. } = dialogs
        .handle_invite_response(clock.now, &invite, &ok, &mut rng)
        .unwrap()
    else {
        panic!()
    };
    dialogs.ack(&b, 1, &mut rng).unwrap();
    drain(&mut dialogs);
    (dialogs, rng, a, b, invite)
}

/// Every output encodes.
fn drain_and_encode(dialogs: &mut Dialogs) {
    for out in drain(dialogs) {
        match out {
            mss_dialog::DialogOutput::Response { response, .. } => drop(response.to_bytes()),
            mss_dialog::DialogOutput::Ack { request, .. } => drop(request.to_bytes()),
            _ => {}
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn requests_never_panic(
        method in prop::sample::select(&METHODS[..]),
        to_b_leg in any::<bool>(),
        cseq in prop_oneof![0u32..20, any::<u32>()],
        values in header_values(),
        body in prop::collection::vec(any::<u8>(), 0..16),
    ) {
        let mut clock = Clock::new();
        let (mut dialogs, mut rng, a, b, _) = two_legs(&clock);
        let id = if to_b_leg { &b } else { &a };
        let fit = fitting(id, method, cseq);
        let bytes = message(&format!("{method} sip:mss@192.0.2.1:5060 SIP/2.0"), &fit, &values, &body);
        let Ok(Message::Request(req)) = parse_datagram(bytes) else {
            return Ok(());
        };
        let _ = is_in_dialog(&req);
        let _ = unknown_dialog_answer(&req);
        if let Err(r) = check_require(&req, &["100rel"]) {
            drop(r.response(&req, "t").to_bytes());
        }
        let _ = dialogs.find_for_request(&req);
        match dialogs.handle_request(&req, &mut rng) {
            RequestOutcome::Reject(r) => drop(r.response(&req, "t").to_bytes()),
            RequestOutcome::InDialog { id, .. } => {
                if let Ok(rsp) = dialogs.response(&id, &req, StatusCode::OK, "OK") {
                    let _ = dialogs.send_response(clock.now, &id, rsp);
                }
                for m in [Method::Invite, Method::Update, Method::Bye] {
                    if let Ok(r) = dialogs.request(&id, m, &mut rng) {
                        drop(r.to_bytes());
                    }
                }
            }
            _ => {}
        }
        // The same request as an INVITE that would create a dialog.
        let _ = dialogs.create_uas(&req, local_a(), &mut rng);
        let _ = Dialog::uas(&req, "tag", local_a());
        clock.now += Duration::from_secs(40);
        while let Some(at) = dialogs.poll_timeout() {
            prop_assert!(at <= clock.now);
            dialogs.handle_timeout(at);
            drain_and_encode(&mut dialogs);
        }
        drain_and_encode(&mut dialogs);
    }

    #[test]
    fn responses_never_panic(
        method in prop::sample::select(&METHODS[..]),
        to_b_leg in any::<bool>(),
        status in prop_oneof![Just(100u16), Just(180), Just(200), Just(408), Just(481), Just(491), Just(486), 100u16..700],
        cseq in prop_oneof![0u32..4, any::<u32>()],
        values in header_values(),
        reinvite_pending in any::<bool>(),
    ) {
        let mut clock = Clock::new();
        let (mut dialogs, mut rng, a, b, invite) = two_legs(&clock);
        let id = if to_b_leg { &b } else { &a };
        if reinvite_pending {
            // CSeq 2 on the B leg, 1 on the A leg: both in the range drawn above.
            dialogs.request(id, Method::Invite, &mut rng).unwrap();
        }
        // In a response, From carries mss's tag and To the peer's.
        let mut fit = fitting(id, method, cseq);
        fit.swap(2, 3);
        let bytes = message(&format!("SIP/2.0 {status} Whatever"), &fit, &values, b"");
        let Ok(Message::Response(rsp)) = parse_datagram(bytes) else {
            return Ok(());
        };
        let rsp: Response = rsp;
        let _ = dialogs.handle_response(clock.now, &rsp, &mut rng);
        if let Ok(ResponseOutcome::Applied { id, .. }) =
            dialogs.handle_invite_response(clock.now, &invite, &rsp, &mut rng)
        {
            let _ = dialogs.ack(&id, cseq, &mut rng);
        }
        let _ = Dialog::uac(&invite, &rsp);
        clock.now += Duration::from_secs(10);
        while let Some(at) = dialogs.poll_timeout() {
            prop_assert!(at <= clock.now);
            dialogs.handle_timeout(at);
            drain_and_encode(&mut dialogs);
        }
        drain_and_encode(&mut dialogs);
    }
}
