//! B legs: mss as UAC of a call (RFC 3261 §12.1.2, §13.2.2.4, §12.3), forks and the ACK
//! for every `2xx`, in simulated time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod peer;

use mss_dialog::{
    DialogError, DialogOutput, DialogRole, DialogState, ResponseEffect, ResponseOutcome,
};
use mss_sip::{HeaderName, Method};
use peer::{drain, from_bob, invite_b, on_the_wire, rng, table, Clock};

fn record_route_and_contact() -> [(HeaderName, &'static str); 3] {
    // Bob's side of the path: proxyB2 next to Bob on top, proxyB1 next to mss below.
    [
        (HeaderName::RecordRoute, "<sip:proxyB2.example.net;lr>"),
        (
            HeaderName::RecordRoute,
            "<sip:proxyB1.example.net;lr;transport=tcp>",
        ),
        (
            HeaderName::Contact,
            "<sip:bob@192.0.2.20:5070;transport=tcp>",
        ),
    ]
}

#[test]
fn dialog_from_a_200_with_record_route_and_its_ack() {
    let mut rng = rng(11);
    let mut dialogs = table(&mut rng);
    let invite = invite_b();
    let clock = Clock::new();
    let ok = from_bob(&invite, 200, "bob-1", &record_route_and_contact());
    let outcome = dialogs
        .handle_invite_response(clock.now, &invite, &ok, &mut rng)
        .unwrap();
    let ResponseOutcome::Applied { id, effect } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        effect,
        ResponseEffect::AckNeeded {
            cseq: 1,
            created: true
        }
    );
    assert_eq!(
        (id.call_id(), id.local_tag(), id.remote_tag()),
        ("b-leg-1", "mss-b1", "bob-1")
    );
    let d = dialogs.get(&id).unwrap();
    assert_eq!(d.state(), DialogState::Confirmed);
    assert_eq!(d.role(), DialogRole::Uac);
    assert!(d.role().owns_call_id());
    assert_eq!(d.remote_target(), "sip:bob@192.0.2.20:5070;transport=tcp");
    assert_eq!((d.local_cseq(), d.remote_cseq()), (Some(1), None));
    let route: Vec<_> = d.route_set().entries().iter().map(|e| e.uri()).collect();
    assert_eq!(
        route,
        [
            "sip:proxyB1.example.net;lr;transport=tcp",
            "sip:proxyB2.example.net;lr"
        ],
        "reversed"
    );
    assert_eq!(
        d.local_end().contact,
        "sip:mss@192.0.2.1:5060;transport=tcp"
    );

    // The ACK: same CSeq number as the INVITE, to the Contact through the route set.
    dialogs.ack(&id, 1, &mut rng).unwrap();
    let outs = drain(&mut dialogs);
    let [DialogOutput::Ack { id: got, request }] = &outs[..] else {
        panic!("{outs:?}")
    };
    assert_eq!(got, &id);
    let ack = on_the_wire(request);
    assert_eq!(ack.method(), &Method::Ack);
    assert_eq!(
        ack.uri_str().unwrap(),
        "sip:bob@192.0.2.20:5070;transport=tcp"
    );
    let h = ack.headers();
    assert_eq!(h.cseq().unwrap().seq, 1);
    assert_eq!(h.cseq().unwrap().method, Method::Ack);
    let routes: Vec<_> = h
        .route()
        .unwrap()
        .iter()
        .map(|r| r.uri_str.to_owned())
        .collect();
    assert_eq!(
        routes,
        [
            "sip:proxyB1.example.net;lr;transport=tcp",
            "sip:proxyB2.example.net;lr"
        ]
    );
    assert_eq!(h.from().unwrap().tag(), Some("mss-b1"));
    assert_eq!(h.to().unwrap().tag(), Some("bob-1"));
    assert_eq!(h.top_via().unwrap().transport, "TCP");
    assert_ne!(
        h.top_via().unwrap().branch(),
        Some("z9hG4bKmss1"),
        "an ACK for a 2xx has its own branch"
    );

    // Our next request: CSeq 2, Contact for a re-INVITE.
    let reinvite = on_the_wire(&dialogs.request(&id, Method::Invite, &mut rng).unwrap());
    assert_eq!(reinvite.headers().cseq().unwrap().seq, 2);
    assert_eq!(
        reinvite.headers().get_str(&HeaderName::Contact).unwrap(),
        Some("<sip:mss@192.0.2.1:5060;transport=tcp>")
    );
}

#[test]
fn every_retransmitted_2xx_gets_the_same_ack() {
    let mut rng = rng(12);
    let mut dialogs = table(&mut rng);
    let invite = invite_b();
    let clock = Clock::new();
    let ok = from_bob(&invite, 200, "bob-1", &record_route_and_contact());
    let ResponseOutcome::Applied { id, .. } = dialogs
        .handle_invite_response(clock.now, &invite, &ok, &mut rng)
        .unwrap()
    else {
        panic!()
    };
    // A retransmission before the caller sent its ACK: still to be acknowledged.
    assert_eq!(
        dialogs
            .handle_invite_response(clock.now, &invite, &ok, &mut rng)
            .unwrap(),
        ResponseOutcome::Applied {
            id: id.clone(),
            effect: ResponseEffect::AckNeeded {
                cseq: 1,
                created: false
            }
        }
    );
    let mut ack = dialogs.get(&id).unwrap().ack(1, &mut rng);
    ack.headers_mut()
        .push(HeaderName::ProxyAuthorization, "Digest username=\"line1\"");
    dialogs.send_ack(&id, ack).unwrap();
    let DialogOutput::Ack { request: first, .. } = drain(&mut dialogs).remove(0) else {
        panic!()
    };
    // During Timer M the transaction passes the retransmission with the INVITE; after it,
    // as a stray response.
    for via_invite in [true, false] {
        let outcome = if via_invite {
            dialogs.handle_invite_response(clock.now, &invite, &ok, &mut rng)
        } else {
            dialogs.handle_response(clock.now, &ok, &mut rng)
        }
        .unwrap();
        assert_eq!(
            outcome,
            ResponseOutcome::Applied {
                id: id.clone(),
                effect: ResponseEffect::AckRepeated
            }
        );
        let outs = drain(&mut dialogs);
        let [DialogOutput::Ack { request, .. }] = &outs[..] else {
            panic!("{outs:?}")
        };
        assert_eq!(
            request.to_bytes(),
            first.to_bytes(),
            "the same ACK, credentials included"
        );
    }
    assert_eq!(
        dialogs.poll_timeout(),
        None,
        "the UAC keeps no timer for it"
    );
}

#[test]
fn forked_invite_two_early_dialogs_one_confirmed_the_other_removed() {
    let mut rng = rng(13);
    let mut dialogs = table(&mut rng);
    let invite = invite_b();
    let now = Clock::new().now;
    let ringing_1 = from_bob(
        &invite,
        180,
        "fork-1",
        &[(HeaderName::Contact, "<sip:bob@192.0.2.21>")],
    );
    let progress_2 = from_bob(
        &invite,
        183,
        "fork-2",
        &[(HeaderName::Contact, "<sip:bob@192.0.2.22>")],
    );
    let trying = from_bob(&invite, 100, "", &[]);
    assert_eq!(
        dialogs
            .handle_invite_response(now, &invite, &trying, &mut rng)
            .unwrap(),
        ResponseOutcome::NoDialog
    );
    let mut ids = Vec::new();
    for rsp in [&ringing_1, &progress_2] {
        let outcome = dialogs
            .handle_invite_response(now, &invite, rsp, &mut rng)
            .unwrap();
        let ResponseOutcome::Applied {
            id,
            effect: ResponseEffect::Early { created: true },
        } = outcome
        else {
            panic!("{outcome:?}")
        };
        ids.push(id);
    }
    assert_eq!(dialogs.dialogs_of("b-leg-1", "mss-b1").count(), 2);
    assert_eq!(
        dialogs.get(&ids[1]).unwrap().remote_target(),
        "sip:bob@192.0.2.22"
    );
    // The same fork again is the same dialog.
    assert_eq!(
        dialogs
            .handle_invite_response(now, &invite, &ringing_1, &mut rng)
            .unwrap(),
        ResponseOutcome::Applied {
            id: ids[0].clone(),
            effect: ResponseEffect::Early { created: false }
        }
    );
    // Fork 1 answers with a route and a new Contact: confirmed, route set recomputed.
    let ok_1 = from_bob(&invite, 200, "fork-1", &record_route_and_contact());
    assert_eq!(
        dialogs
            .handle_invite_response(now, &invite, &ok_1, &mut rng)
            .unwrap(),
        ResponseOutcome::Applied {
            id: ids[0].clone(),
            effect: ResponseEffect::AckNeeded {
                cseq: 1,
                created: false
            }
        }
    );
    let d1 = dialogs.get(&ids[0]).unwrap();
    assert_eq!(d1.state(), DialogState::Confirmed);
    assert_eq!(d1.remote_target(), "sip:bob@192.0.2.20:5070;transport=tcp");
    assert_eq!(d1.route_set().entries().len(), 2);
    assert_eq!(dialogs.get(&ids[1]).unwrap().state(), DialogState::Early);
    // The caller gives up the other fork.
    assert_eq!(dialogs.remove(&ids[1]).unwrap().state(), DialogState::Early);
    assert_eq!(dialogs.dialogs_of("b-leg-1", "mss-b1").count(), 1);
    assert_eq!(dialogs.len(), 1);
    // A late 2xx from a third fork creates a dialog the caller ACKs and ends.
    let ok_3 = from_bob(&invite, 200, "fork-3", &record_route_and_contact());
    let outcome = dialogs
        .handle_invite_response(now, &invite, &ok_3, &mut rng)
        .unwrap();
    let ResponseOutcome::Applied {
        id: late,
        effect: ResponseEffect::AckNeeded { created: true, .. },
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    dialogs.ack(&late, 1, &mut rng).unwrap();
    let bye = dialogs.request(&late, Method::Bye, &mut rng).unwrap();
    assert_eq!(bye.headers().to().unwrap().tag(), Some("fork-3"));
    let bye_ok = from_bob(&bye, 200, "", &[]);
    assert_eq!(
        dialogs.handle_response(now, &bye_ok, &mut rng).unwrap(),
        ResponseOutcome::Applied {
            id: late,
            effect: ResponseEffect::Terminated
        }
    );
}

#[test]
fn a_final_failure_ends_every_early_dialog_of_the_invite() {
    let mut rng = rng(14);
    let mut dialogs = table(&mut rng);
    let invite = invite_b();
    let now = Clock::new().now;
    for tag in ["fork-1", "fork-2"] {
        let rsp = from_bob(&invite, 180, tag, &[]);
        dialogs
            .handle_invite_response(now, &invite, &rsp, &mut rng)
            .unwrap();
    }
    // No Contact in a 180: the Request-URI stands in until one comes.
    assert!(dialogs
        .iter()
        .all(|d| d.remote_target() == "sip:bob@192.0.2.20:5070"));
    // The proxy's 486 has a tag of its own.
    let busy = from_bob(&invite, 486, "proxy-tag", &[]);
    let ResponseOutcome::EarlyDialogsEnded(mut ended) = dialogs
        .handle_invite_response(now, &invite, &busy, &mut rng)
        .unwrap()
    else {
        panic!()
    };
    ended.sort_by(|a, b| a.remote_tag().cmp(b.remote_tag()));
    let tags: Vec<_> = ended.iter().map(|id| id.remote_tag()).collect();
    assert_eq!(tags, ["fork-1", "fork-2"]);
    assert!(dialogs.iter().all(|d| d.state() == DialogState::Terminated));
    for id in &ended {
        dialogs.remove(id);
    }
    assert!(dialogs.is_empty());
}

#[test]
fn two_xx_to_our_reinvite_refreshes_the_target_408_ends_the_dialog() {
    let mut rng = rng(15);
    let mut dialogs = table(&mut rng);
    let invite = invite_b();
    let now = Clock::new().now;
    let ok = from_bob(&invite, 200, "bob-1", &record_route_and_contact());
    let ResponseOutcome::Applied { id, .. } = dialogs
        .handle_invite_response(now, &invite, &ok, &mut rng)
        .unwrap()
    else {
        panic!()
    };
    dialogs.ack(&id, 1, &mut rng).unwrap();
    let reinvite = dialogs.request(&id, Method::Invite, &mut rng).unwrap();
    assert_eq!(
        dialogs.request(&id, Method::Invite, &mut rng).unwrap_err(),
        DialogError::InviteInProgress
    );
    let ok2 = from_bob(
        &reinvite,
        200,
        "",
        &[
            (HeaderName::Contact, "<sip:bob@198.51.100.20:6000>"),
            (HeaderName::RecordRoute, "<sip:ignored.example;lr>"),
        ],
    );
    assert_eq!(
        dialogs.handle_response(now, &ok2, &mut rng).unwrap(),
        ResponseOutcome::Applied {
            id: id.clone(),
            effect: ResponseEffect::AckNeeded {
                cseq: 2,
                created: false
            }
        }
    );
    let d = dialogs.get(&id).unwrap();
    assert_eq!(d.remote_target(), "sip:bob@198.51.100.20:6000");
    assert_eq!(
        d.route_set().entries().len(),
        2,
        "a confirmed dialog keeps its route set"
    );
    dialogs.ack(&id, 2, &mut rng).unwrap();
    // A stale retransmission of the first 200 still gets an ACK.
    assert_eq!(
        dialogs.handle_response(now, &ok, &mut rng).unwrap(),
        ResponseOutcome::Applied {
            id: id.clone(),
            effect: ResponseEffect::AckRepeated
        }
    );
    let outs = drain(&mut dialogs);
    let Some(DialogOutput::Ack { request, .. }) = outs.last() else {
        panic!()
    };
    assert_eq!(request.headers().cseq().unwrap().seq, 1);

    let info = dialogs.request(&id, Method::Info, &mut rng).unwrap();
    let timeout = from_bob(&info, 408, "", &[]);
    assert_eq!(
        dialogs.handle_response(now, &timeout, &mut rng).unwrap(),
        ResponseOutcome::Applied {
            id: id.clone(),
            effect: ResponseEffect::Terminated
        }
    );
    assert_eq!(dialogs.get(&id).unwrap().state(), DialogState::Terminated);
}

#[test]
fn responses_that_belong_to_no_dialog() {
    let mut rng = rng(16);
    let mut dialogs = table(&mut rng);
    let invite = invite_b();
    let now = Clock::new().now;
    // Without the INVITE, a 2xx creates nothing.
    let ok = from_bob(&invite, 200, "bob-1", &record_route_and_contact());
    assert_eq!(
        dialogs.handle_response(now, &ok, &mut rng).unwrap(),
        ResponseOutcome::NoDialog
    );
    // A response to another INVITE is refused.
    let other = peer::request(&peer::request_text_of(&invite).replace("b-leg-1", "b-leg-2"));
    assert_eq!(
        dialogs
            .handle_invite_response(now, &other, &ok, &mut rng)
            .unwrap_err(),
        DialogError::ResponseMismatch
    );
    // The INVITE's From tag is compared, whatever the bytes around it: the same tag in a
    // From written otherwise answers (no dialog here: a 1xx without a To tag), another
    // tag does not.
    let text = peer::request_text_of(&invite);
    let respelled = peer::request(&text.replace("\"Alice\" <sip:", "\"Alice\"   <sip:"));
    let trying = from_bob(&invite, 100, "", &[]);
    assert!(dialogs
        .handle_invite_response(now, &respelled, &trying, &mut rng)
        .is_ok());
    let other_tag = peer::request(&text.replace("tag=mss-b1", "tag=mss-b2"));
    assert_eq!(
        dialogs
            .handle_invite_response(now, &other_tag, &ok, &mut rng)
            .unwrap_err(),
        DialogError::ResponseMismatch
    );
    assert!(dialogs.is_empty());
    // A 2xx without Contact still makes a dialog, so that it can be acknowledged and
    // ended: its remote target is the Request-URI.
    let bare = from_bob(&invite, 200, "bob-1", &[]);
    let ResponseOutcome::Applied { id, .. } = dialogs
        .handle_invite_response(now, &invite, &bare, &mut rng)
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        dialogs.get(&id).unwrap().remote_target(),
        "sip:bob@192.0.2.20:5070"
    );
}

#[test]
fn a_481_to_our_late_cancel_leaves_the_dialog() {
    let mut rng = rng(17);
    let mut dialogs = table(&mut rng);
    let invite = invite_b();
    let now = Clock::new().now;
    let ringing = from_bob(&invite, 180, "fork-1", &[]);
    let ResponseOutcome::Applied { id, .. } = dialogs
        .handle_invite_response(now, &invite, &ringing, &mut rng)
        .unwrap()
    else {
        panic!()
    };
    let cancel = peer::request(
        &peer::request_text_of(&invite)
            .replace("INVITE sip:", "CANCEL sip:")
            .replace("1 INVITE", "1 CANCEL"),
    );
    let too_late = from_bob(&cancel, 481, "fork-1", &[]);
    assert_eq!(
        dialogs.handle_response(now, &too_late, &mut rng).unwrap(),
        ResponseOutcome::Applied {
            id: id.clone(),
            effect: ResponseEffect::Processed
        }
    );
    assert_eq!(dialogs.get(&id).unwrap().state(), DialogState::Early);
}
