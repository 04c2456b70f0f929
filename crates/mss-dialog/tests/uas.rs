//! The A leg: mss as UAS of a call (RFC 3261 §12.1.1, §12.2, §13.3.1.4), in simulated time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod peer;

use std::time::Duration;

use mss_dialog::{DialogError, DialogOutput, DialogRole, DialogState, Rejection, RequestOutcome};
use mss_sip::{HeaderName, Method, StatusCode};
use peer::{
    a_leg, a_leg_confirmed, drain, from_alice, local_a, ms, on_the_wire, rng, run_until, table,
    Clock,
};

#[test]
fn dialog_from_an_invite_with_two_record_routes_then_our_bye() {
    let mut rng = rng(1);
    let mut dialogs = table(&mut rng);
    let (invite, id) = a_leg(&mut dialogs, &mut rng);
    let d = dialogs.get(&id).unwrap();
    assert_eq!(d.state(), DialogState::Early);
    assert_eq!(d.role(), DialogRole::Uas);
    assert_eq!(id.call_id(), "a-leg-1@192.0.2.10");
    assert_eq!(id.remote_tag(), "alice-1");
    assert_eq!(id.local_tag().len(), 16, "64 random bits in hex");
    assert_eq!(d.remote_target(), "sip:100@192.0.2.10:5062");
    assert_eq!(d.remote_cseq(), Some(10));
    assert_eq!(d.local_cseq(), None);
    assert_eq!(d.remote_party().uri(), "sip:100@pbx.example.com");
    assert_eq!(d.local_party().uri(), "sip:101@pbx.example.com");

    // The 200 carries our tag, the Record-Route values in order, our Contact.
    let ok = dialogs
        .response(&id, &invite, StatusCode::OK, "OK")
        .unwrap();
    let h = ok.headers();
    assert_eq!(h.to().unwrap().tag(), Some(id.local_tag()));
    let rr: Vec<_> = h
        .record_route()
        .unwrap()
        .iter()
        .map(|r| r.uri_str)
        .collect();
    assert_eq!(
        rr,
        [
            "sip:proxy2.example.com;lr",
            "sip:proxy1.example.com;transport=tcp;lr"
        ]
    );
    assert_eq!(
        h.get_str(&HeaderName::Contact).unwrap(),
        Some("<sip:mss@192.0.2.1:5060>")
    );
    let clock = Clock::new();
    dialogs.send_response(clock.now, &id, ok).unwrap();
    assert_eq!(dialogs.get(&id).unwrap().state(), DialogState::Confirmed);
    let ack = from_alice("ACK", 10, &id, "");
    assert_eq!(
        dialogs.handle_request(&ack, &mut rng),
        RequestOutcome::Ack {
            id: id.clone(),
            first: true
        }
    );
    drain(&mut dialogs);

    // Our BYE: to the remote target, through proxy2 then proxy1, CSeq 1 (our first).
    let bye = on_the_wire(&dialogs.request(&id, Method::Bye, &mut rng).unwrap());
    assert_eq!(bye.uri_str().unwrap(), "sip:100@192.0.2.10:5062");
    let h = bye.headers();
    let routes: Vec<_> = h
        .get_all(&HeaderName::Route)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    assert_eq!(
        routes,
        [
            "<sip:proxy2.example.com;lr>",
            "<sip:proxy1.example.com;transport=tcp;lr>;x-origin=1"
        ]
    );
    assert_eq!(h.cseq().unwrap().seq, 1);
    assert_eq!(h.cseq().unwrap().method, Method::Bye);
    assert_eq!(h.call_id().unwrap(), "a-leg-1@192.0.2.10");
    let from = h.from().unwrap();
    assert_eq!(from.uri_str, "sip:101@pbx.example.com");
    assert_eq!(from.tag(), Some(id.local_tag()));
    let to = h.to().unwrap();
    assert_eq!(
        (to.display_name, to.uri_str, to.tag()),
        (
            Some("\"Alice\""),
            "sip:100@pbx.example.com",
            Some("alice-1")
        )
    );
    let via = h.top_via().unwrap();
    assert_eq!(
        (via.transport, via.host, via.port),
        ("UDP", "192.0.2.1", Some(5060))
    );
    assert!(via.branch().unwrap().starts_with("z9hG4bK"));
    assert_eq!(h.max_forwards().unwrap(), Some(70));
    assert!(!h.contains(&HeaderName::Contact), "BYE carries no Contact");
    assert_eq!(dialogs.get(&id).unwrap().state(), DialogState::Terminated);
    assert_eq!(dialogs.get(&id).unwrap().local_cseq(), Some(1));

    // The next request would have CSeq 2; a terminated dialog sends nothing but BYE.
    assert_eq!(
        dialogs.request(&id, Method::Info, &mut rng).unwrap_err(),
        DialogError::Terminated
    );
    let again = dialogs.request(&id, Method::Bye, &mut rng).unwrap();
    assert_eq!(
        again.headers().cseq().unwrap().seq,
        2,
        "a challenged BYE goes again"
    );
}

#[test]
fn two_xx_is_retransmitted_until_ack_then_ack_timeout_at_64_t1() {
    let mut rng = rng(2);
    let mut dialogs = table(&mut rng);
    let (invite, id) = a_leg(&mut dialogs, &mut rng);
    let mut clock = Clock::new();
    let ok = dialogs
        .response(&id, &invite, StatusCode::OK, "OK")
        .unwrap();
    let wire = ok.to_bytes();
    dialogs.send_response(clock.now, &id, ok).unwrap();
    let first = drain(&mut dialogs);
    assert!(matches!(&first[..], [DialogOutput::Response { .. }]));

    // Early: nothing.
    dialogs.handle_timeout(clock.at(ms(499)));
    assert!(drain(&mut dialogs).is_empty());

    let seen = run_until(&mut dialogs, &mut clock, Duration::from_secs(40));
    let mut sent = Vec::new();
    let mut timeout = None;
    for (at, out) in seen {
        match out {
            DialogOutput::Response { id: got, response } => {
                assert_eq!(got, id);
                assert_eq!(response.to_bytes(), wire, "the very same 2xx");
                sent.push(at.as_millis());
            }
            DialogOutput::AckTimeout { id: got } => {
                assert_eq!(got, id);
                timeout = Some(at);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        sent,
        [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    let intervals: Vec<_> = std::iter::once(500)
        .chain(sent.windows(2).map(|w| w[1] - w[0]))
        .collect();
    assert_eq!(
        intervals,
        [500, 1000, 2000, 4000, 4000, 4000, 4000, 4000, 4000, 4000]
    );
    assert_eq!(timeout, Some(Duration::from_secs(32)));
    assert_eq!(dialogs.poll_timeout(), None);

    // The caller ends the call: BYE is allowed now.
    assert!(dialogs.request(&id, Method::Bye, &mut rng).is_ok());
}

#[test]
fn ack_stops_the_retransmissions() {
    let mut rng = rng(3);
    let mut dialogs = table(&mut rng);
    let (invite, id) = a_leg(&mut dialogs, &mut rng);
    let mut clock = Clock::new();
    let ok = dialogs
        .response(&id, &invite, StatusCode::OK, "OK")
        .unwrap();
    dialogs.send_response(clock.now, &id, ok).unwrap();
    drain(&mut dialogs);
    // BYE must wait for the ACK (RFC 3261 §15).
    assert_eq!(
        dialogs.request(&id, Method::Bye, &mut rng).unwrap_err(),
        DialogError::AwaitingAck
    );
    let seen = run_until(&mut dialogs, &mut clock, ms(700));
    assert_eq!(seen.len(), 1, "one retransmission at 500 ms");

    // An ACK of another CSeq does not match.
    let wrong = from_alice("ACK", 9, &id, "");
    assert_eq!(
        dialogs.handle_request(&wrong, &mut rng),
        RequestOutcome::StrayAck
    );
    let ack = from_alice("ACK", 10, &id, "");
    assert_eq!(
        dialogs.handle_request(&ack, &mut rng),
        RequestOutcome::Ack {
            id: id.clone(),
            first: true
        }
    );
    assert_eq!(dialogs.poll_timeout(), None);
    assert_eq!(
        dialogs.handle_request(&ack, &mut rng),
        RequestOutcome::Ack {
            id: id.clone(),
            first: false
        }
    );
    assert!(run_until(&mut dialogs, &mut clock, Duration::from_secs(40)).is_empty());
}

#[test]
fn a_lower_cseq_gets_500_a_higher_one_becomes_the_remote_cseq() {
    let mut rng = rng(4);
    let mut dialogs = table(&mut rng);
    let (_, id) = a_leg_confirmed(&mut dialogs, &mut rng, Clock::new().now);
    let old = from_alice("INFO", 9, &id, "");
    let outcome = dialogs.handle_request(&old, &mut rng);
    assert_eq!(outcome, RequestOutcome::Reject(Rejection::OutOfOrder));
    let RequestOutcome::Reject(rejection) = outcome else {
        unreachable!()
    };
    let rsp = rejection.response(&old, "unused");
    assert_eq!(rsp.status(), StatusCode::SERVER_INTERNAL_ERROR);
    assert_eq!(rsp.headers().to().unwrap().tag(), Some(id.local_tag()));

    let info = from_alice("INFO", 11, &id, "");
    assert!(matches!(
        dialogs.handle_request(&info, &mut rng),
        RequestOutcome::InDialog { .. }
    ));
    assert_eq!(dialogs.get(&id).unwrap().remote_cseq(), Some(11));
    let equal_is_fine = from_alice("INFO", 11, &id, "");
    assert!(matches!(
        dialogs.handle_request(&equal_is_fine, &mut rng),
        RequestOutcome::InDialog { .. }
    ));
    let between = from_alice("MESSAGE", 10, &id, "");
    assert_eq!(
        dialogs.handle_request(&between, &mut rng),
        RequestOutcome::Reject(Rejection::OutOfOrder)
    );
}

#[test]
fn re_invite_refreshes_the_remote_target() {
    let mut rng = rng(5);
    let mut dialogs = table(&mut rng);
    let clock = Clock::new();
    let (_, id) = a_leg_confirmed(&mut dialogs, &mut rng, clock.now);
    let reinvite = from_alice(
        "INVITE",
        11,
        &id,
        "Contact: <sip:100@198.51.100.7:40000;transport=tcp>\n",
    );
    assert_eq!(
        dialogs.handle_request(&reinvite, &mut rng),
        RequestOutcome::InDialog {
            id: id.clone(),
            target_refreshed: true
        }
    );
    assert_eq!(
        dialogs.get(&id).unwrap().remote_target(),
        "sip:100@198.51.100.7:40000;transport=tcp"
    );
    // The 2xx to the re-INVITE carries our Contact but no Record-Route, and waits for ACK.
    let ok = dialogs
        .response(&id, &reinvite, StatusCode::OK, "OK")
        .unwrap();
    assert!(ok.headers().contains(&HeaderName::Contact));
    assert!(!ok.headers().contains(&HeaderName::RecordRoute));
    dialogs.send_response(clock.now, &id, ok).unwrap();
    assert!(dialogs.poll_timeout().is_some());
    let ack = from_alice("ACK", 11, &id, "");
    assert!(matches!(
        dialogs.handle_request(&ack, &mut rng),
        RequestOutcome::Ack { first: true, .. }
    ));

    // UPDATE does the same; INFO does not.
    let update = from_alice("UPDATE", 12, &id, "Contact: <sip:100@198.51.100.8>\n");
    assert!(matches!(
        dialogs.handle_request(&update, &mut rng),
        RequestOutcome::InDialog {
            target_refreshed: true,
            ..
        }
    ));
    let info = from_alice("INFO", 13, &id, "Contact: <sip:100@198.51.100.9>\n");
    assert!(matches!(
        dialogs.handle_request(&info, &mut rng),
        RequestOutcome::InDialog {
            target_refreshed: false,
            ..
        }
    ));
    // Our next request goes to the new target, still through the route set.
    let bye = dialogs.request(&id, Method::Bye, &mut rng).unwrap();
    assert_eq!(bye.uri_str().unwrap(), "sip:100@198.51.100.8");
    assert_eq!(bye.headers().route().unwrap().len(), 2);
}

#[test]
fn bye_from_the_peer_terminates_and_stops_the_2xx() {
    let mut rng = rng(6);
    let mut dialogs = table(&mut rng);
    let (invite, id) = a_leg(&mut dialogs, &mut rng);
    let clock = Clock::new();
    let ok = dialogs
        .response(&id, &invite, StatusCode::OK, "OK")
        .unwrap();
    dialogs.send_response(clock.now, &id, ok).unwrap();
    drain(&mut dialogs);
    // The ACK was lost; the BYE arrives.
    let bye = from_alice("BYE", 11, &id, "");
    assert!(matches!(
        dialogs.handle_request(&bye, &mut rng),
        RequestOutcome::InDialog { .. }
    ));
    assert_eq!(dialogs.get(&id).unwrap().state(), DialogState::Terminated);
    assert_eq!(
        dialogs.poll_timeout(),
        None,
        "no 2xx retransmission after BYE"
    );
    let answer = dialogs.response(&id, &bye, StatusCode::OK, "OK").unwrap();
    dialogs.send_response(clock.now, &id, answer).unwrap();
    assert!(matches!(
        &drain(&mut dialogs)[..],
        [DialogOutput::Response { .. }]
    ));
    // Anything else now: 481.
    let info = from_alice("INFO", 12, &id, "");
    assert_eq!(
        dialogs.handle_request(&info, &mut rng),
        RequestOutcome::Reject(Rejection::UnknownDialog)
    );
    assert!(dialogs.remove(&id).is_some());
    assert!(dialogs.is_empty());
    assert_eq!(
        dialogs.handle_request(&info, &mut rng),
        RequestOutcome::Reject(Rejection::UnknownDialog)
    );
}

#[test]
fn a_failed_invite_ends_the_early_dialog() {
    let mut rng = rng(7);
    let mut dialogs = table(&mut rng);
    let (invite, id) = a_leg(&mut dialogs, &mut rng);
    let clock = Clock::new();
    let ringing = dialogs
        .response(&id, &invite, StatusCode::RINGING, "Ringing")
        .unwrap();
    assert_eq!(ringing.headers().record_route().unwrap().len(), 2);
    dialogs.send_response(clock.now, &id, ringing).unwrap();
    assert_eq!(dialogs.get(&id).unwrap().state(), DialogState::Early);
    // The callee may not BYE an early dialog.
    assert_eq!(
        dialogs.request(&id, Method::Bye, &mut rng).unwrap_err(),
        DialogError::ByeInEarlyDialog
    );
    let busy = dialogs
        .response(&id, &invite, StatusCode::BUSY_HERE, "Busy Here")
        .unwrap();
    assert!(!busy.headers().contains(&HeaderName::Contact));
    dialogs.send_response(clock.now, &id, busy).unwrap();
    assert_eq!(dialogs.get(&id).unwrap().state(), DialogState::Terminated);
    assert_eq!(dialogs.poll_timeout(), None);
    assert_eq!(drain(&mut dialogs).len(), 2);
}

#[test]
fn strict_router_in_the_route_set() {
    let mut rng = rng(8);
    let mut dialogs = table(&mut rng);
    let invite = peer::request(&peer::INVITE_A.replace(
        "Record-Route: <sip:proxy2.example.com;lr>",
        "Record-Route: <sip:strict.example.com;maddr=192.0.2.99>",
    ));
    let id = dialogs.create_uas(&invite, local_a(), &mut rng).unwrap();
    let ok = dialogs
        .response(&id, &invite, StatusCode::OK, "OK")
        .unwrap();
    dialogs.send_response(Clock::new().now, &id, ok).unwrap();
    let ack = from_alice("ACK", 10, &id, "");
    dialogs.handle_request(&ack, &mut rng);
    let info = on_the_wire(&dialogs.request(&id, Method::Info, &mut rng).unwrap());
    assert_eq!(
        info.uri_str().unwrap(),
        "sip:strict.example.com;maddr=192.0.2.99"
    );
    let routes: Vec<_> = info
        .headers()
        .route()
        .unwrap()
        .iter()
        .map(|r| r.uri_str.to_owned())
        .collect();
    assert_eq!(
        routes,
        [
            "sip:proxy1.example.com;transport=tcp;lr",
            "sip:100@192.0.2.10:5062"
        ]
    );
}
