//! Online recipients: relaying, forking, failures, hops.

use super::*;

#[test]
fn online_recipient_gets_it_and_the_2xx_is_relayed() {
    let mut h = Harness::new();
    let req = text("hello");
    h.message(1, &req, vec![contact(7)]);
    let s = sends(h.drain());
    let (token, fwd, flow) = &s[0];
    assert_eq!(s.len(), 1);
    assert_eq!(flow.remote, "192.0.2.7:5062".parse().unwrap());
    assert_eq!(fwd.uri_str().unwrap(), "sip:102@192.0.2.7:5062");
    assert_eq!(fwd.headers().max_forwards(), Ok(Some(69)));
    assert_eq!(fwd.headers().via().unwrap().len(), 2);
    assert_eq!(fwd.body(), req.body());
    // A provisional answer changes nothing.
    h.im.handle_response(h.now, *token, &answer(fwd, 100, "Trying"));
    assert!(h.drain().is_empty());
    h.im.handle_response(h.now, *token, &answer(fwd, 200, "Delivered"));
    let (txn, rsp) = reply(one(h.drain()));
    assert_eq!(txn, 1);
    assert_eq!(rsp.status(), StatusCode::OK);
    assert_eq!(rsp.reason(), b"Delivered");
    assert_eq!(rsp.headers().to().unwrap().tag(), Some("uas-tag"));
    assert_eq!(rsp.headers().call_id().unwrap(), "m1@192.0.2.1");
    assert_eq!(h.im.stats().relayed, 1);
    // A late duplicate is ignored.
    h.im.handle_response(h.now, *token, &answer(fwd, 200, "OK"));
    assert!(h.drain().is_empty());
    assert_eq!(h.im.in_flight(), 0);
}

#[test]
fn first_contact_fails_second_answers() {
    let mut h = Harness::new();
    let req = text("hi");
    h.message(1, &req, vec![contact(7), contact(8)]);
    let s = sends(h.drain());
    assert_eq!(s.len(), 2);
    let branches: Vec<_> = s
        .iter()
        .map(|(_, r, _)| r.headers().top_via().unwrap().branch().unwrap().to_owned())
        .collect();
    assert_ne!(branches[0], branches[1]);
    h.im.handle_response(
        h.now,
        s[0].0,
        &answer(&s[0].1, 480, "Temporarily Unavailable"),
    );
    assert!(h.drain().is_empty());
    h.im.handle_response(h.now, s[1].0, &answer(&s[1].1, 200, "OK"));
    let (_, rsp) = reply(one(h.drain()));
    assert_eq!(rsp.status(), StatusCode::OK);
    assert_eq!(h.im.stats().stored, 0);
}

#[test]
fn every_contact_unreachable_stores_and_202_waits_for_the_disk() {
    let mut h = Harness::new();
    let req = text("are you there?");
    h.message(3, &req, vec![contact(7), contact(8)]);
    let s = sends(h.drain());
    h.advance(Duration::from_secs(32));
    h.im.handle_response(h.now, s[0].0, &answer(&s[0].1, 408, "Request Timeout"));
    h.im.handle_response(h.now, s[1].0, &answer(&s[1].1, 503, "Service Unavailable"));
    let (token, msg, limit) = match one(h.drain()) {
        ImOutput::Store {
            token,
            message,
            limit,
        } => (token, message, limit),
        other => panic!("{other:?}"),
    };
    assert_eq!(limit, 10);
    assert_eq!(msg.recipient, "102");
    assert_eq!(msg.sender, "\"Alice\" <sip:101@pbx.example.com>;tag=a1");
    assert_eq!(
        msg.original_to.as_deref(),
        Some("<sip:102@pbx.example.com>")
    );
    assert_eq!(msg.content_type, "text/plain;charset=UTF-8");
    assert_eq!(msg.body, b"are you there?");
    // Arrival time, not the time the last contact gave up.
    assert_eq!(msg.received_at, T0_MS);
    assert_eq!(msg.expires_at, T0_MS + 7 * 86_400_000);
    // Nothing is answered before the store reports.
    assert!(h.drain().is_empty());
    h.im.handle_stored(h.now, token, Ok(InsertOutcome::Stored(41)));
    let (txn, rsp) = reply(one(h.drain()));
    assert_eq!((txn, rsp.status()), (3, StatusCode::ACCEPTED));
    assert_eq!(h.im.stats().stored, 1);
}

#[test]
fn a_refusal_by_the_device_is_relayed_not_stored() {
    let mut h = Harness::new();
    let req = text("hi");
    h.message(1, &req, vec![contact(7), contact(8)]);
    let s = sends(h.drain());
    h.im.handle_response(h.now, s[0].0, &answer(&s[0].1, 486, "Busy Here"));
    h.im.handle_response(h.now, s[1].0, &answer(&s[1].1, 603, "Decline"));
    let (_, rsp) = reply(one(h.drain()));
    assert_eq!(
        (rsp.status().as_u16(), rsp.reason()),
        (603, &b"Decline"[..])
    );
    assert_eq!(h.im.stats().refused.by_recipient, 1);
}

#[test]
fn unknown_recipient_is_404() {
    let mut h = Harness::new();
    let sender = Sender::Line { name: "p1".into() };
    h.im.handle_message(h.now, 9, &text("x"), sender, Recipient::Unknown);
    let (txn, rsp) = reply(one(h.drain()));
    assert_eq!((txn, rsp.status()), (9, StatusCode::NOT_FOUND));
    assert_eq!(h.im.stats().refused.not_found, 1);
}
#[test]
fn max_forwards_zero_is_483_when_forwarding() {
    let mut h = Harness::new();
    let req = message_with("text/plain", "", b"x");
    let zero = parse_req(
        String::from_utf8(req.to_bytes().to_vec())
            .unwrap()
            .replace("Max-Forwards: 70", "Max-Forwards: 0")
            .into_bytes(),
    );
    h.message(1, &zero, vec![contact(7)]);
    assert_eq!(reply(one(h.drain())).1.status().as_u16(), 483);
    // mss itself is the destination when storing.
    let _ = h.offline(2, &zero);
}
#[test]
fn contact_timeout_through_the_guard_stores() {
    let mut h = Harness::new();
    h.message(1, &text("x"), vec![contact(7)]);
    assert_eq!(sends(h.drain()).len(), 1);
    h.advance(Duration::from_secs(40));
    h.im.handle_timeout(h.now);
    let outs = h.drain();
    assert!(
        outs.iter().any(|o| matches!(o, ImOutput::Store { .. })),
        "{outs:?}"
    );
}

#[test]
fn silent_contacts_are_stored_after_the_relay_timeout_and_a_late_2xx_deletes_the_copy() {
    let mut h = Harness::new();
    h.message(1, &text("hi"), vec![contact(7), contact(8)]);
    let s = sends(h.drain());
    h.advance(Duration::from_secs(9));
    h.im.handle_timeout(h.now);
    assert!(h.drain().is_empty());
    h.advance(Duration::from_secs(1));
    h.im.handle_timeout(h.now);
    let token = match one(h.drain()) {
        ImOutput::Store { token, .. } => token,
        other => panic!("{other:?}"),
    };
    h.im.handle_stored(h.now, token, Ok(InsertOutcome::Stored(5)));
    assert_eq!(reply(one(h.drain())).1.status(), StatusCode::ACCEPTED);
    // The first contact had it after all: the stored copy goes.
    h.im.handle_response(h.now, s[0].0, &answer(&s[0].1, 200, "OK"));
    assert!(matches!(one(h.drain()), ImOutput::Delete { id: 5 }));
    h.im.handle_deleted(h.now, 5, Ok(true));
    h.im.handle_response(h.now, s[1].0, &answer(&s[1].1, 200, "OK"));
    assert!(h.drain().is_empty());
    let st = h.im.stats();
    assert_eq!((st.stored, st.delivered_late, st.delivered), (1, 1, 0));
    assert_eq!(h.im.in_flight(), 0);
}

#[test]
fn a_late_2xx_during_the_store_write_deletes_the_copy_once_stored() {
    let mut h = Harness::new();
    h.message(1, &text("hi"), vec![contact(7)]);
    let s = sends(h.drain());
    h.advance(Duration::from_secs(10));
    h.im.handle_timeout(h.now);
    let token = match one(h.drain()) {
        ImOutput::Store { token, .. } => token,
        other => panic!("{other:?}"),
    };
    h.im.handle_response(h.now, s[0].0, &answer(&s[0].1, 200, "OK"));
    assert!(h.drain().is_empty());
    h.im.handle_stored(h.now, token, Ok(InsertOutcome::Stored(6)));
    let outs = h.drain();
    assert_eq!(outs.len(), 2, "{outs:?}");
    assert!(outs.iter().any(|o| matches!(o, ImOutput::Delete { id: 6 })));
    assert!(outs.iter().any(
        |o| matches!(o, ImOutput::Reply { response, .. } if response.status() == StatusCode::ACCEPTED)
    ));
    h.im.handle_deleted(h.now, 6, Ok(true));
    assert_eq!(h.im.in_flight(), 0);
}

#[test]
fn a_refusal_and_a_silent_contact_give_the_refusal_at_the_timeout() {
    let mut h = Harness::new();
    h.message(1, &text("hi"), vec![contact(7), contact(8)]);
    let s = sends(h.drain());
    h.im.handle_response(
        h.now,
        s[0].0,
        &answer(&s[0].1, 415, "Unsupported Media Type"),
    );
    assert!(h.drain().is_empty());
    h.advance(Duration::from_secs(10));
    h.im.handle_timeout(h.now);
    let (_, rsp) = reply(one(h.drain()));
    assert_eq!(rsp.status().as_u16(), 415);
    // The silent one answering later changes nothing.
    h.im.handle_response(h.now, s[1].0, &answer(&s[1].1, 200, "OK"));
    assert!(h.drain().is_empty());
    assert_eq!(h.im.in_flight(), 0);
}
