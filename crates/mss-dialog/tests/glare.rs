//! Glare (RFC 3261 §14): re-INVITEs that cross get `491`, ours goes again after a random
//! wait whose window depends on who owns the Call-ID; an INVITE during another gets `500`
//! with Retry-After. Simulated time, seeded generators.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod peer;

use std::time::Duration;

use mss_dialog::{
    DialogError, DialogId, DialogOutput, Dialogs, Rejection, RequestOutcome, ResponseEffect,
    ResponseOutcome, REQUEST_PENDING,
};
use mss_sip::{HeaderName, Method, Request, StatusCode};
use peer::{
    a_leg, a_leg_confirmed, drain, from_alice, from_bob, from_bob_request, invite_b, rng,
    run_until, table, Clock,
};
use rand::rngs::StdRng;

/// A confirmed B leg (mss is UAC: it owns the Call-ID).
fn b_leg_confirmed(dialogs: &mut Dialogs, rng: &mut StdRng, clock: &Clock) -> DialogId {
    let invite = invite_b();
    let ok = from_bob(
        &invite,
        200,
        "bob-1",
        &[(
            HeaderName::Contact,
            "<sip:bob@192.0.2.20:5070;transport=tcp>",
        )],
    );
    let ResponseOutcome::Applied { id, .. } = dialogs
        .handle_invite_response(clock.now, &invite, &ok, rng)
        .unwrap()
    else {
        panic!()
    };
    dialogs.ack(&id, 1, rng).unwrap();
    drain(dialogs);
    id
}

/// Our re-INVITE of `id` answered `491` at the clock's time: when the retry is due.
fn reinvite_meets_491(
    dialogs: &mut Dialogs,
    rng: &mut StdRng,
    clock: &Clock,
    id: &DialogId,
) -> Duration {
    let reinvite: Request = dialogs.request(id, Method::Invite, rng).unwrap();
    let pending = from_bob(&reinvite, 491, "", &[]);
    let outcome = dialogs.handle_response(clock.now, &pending, rng).unwrap();
    let ResponseOutcome::Applied {
        effect: ResponseEffect::GlareRetry { retry_at },
        ..
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(dialogs.poll_timeout(), Some(retry_at));
    retry_at - clock.now
}

#[test]
fn crossing_reinvites_491_then_our_retry() {
    let mut rng = rng(21);
    let mut dialogs = table(&mut rng);
    let mut clock = Clock::new();
    let id = b_leg_confirmed(&mut dialogs, &mut rng, &clock);
    let ours = dialogs.request(&id, Method::Invite, &mut rng).unwrap();

    // Bob's re-INVITE crosses ours: 491.
    let theirs = from_bob_request("INVITE", 1, &id, "Contact: <sip:bob@192.0.2.20:5070>\n");
    let outcome = dialogs.handle_request(&theirs, &mut rng);
    assert_eq!(outcome, RequestOutcome::Reject(Rejection::RequestPending));
    let RequestOutcome::Reject(rejection) = outcome else {
        unreachable!()
    };
    let rsp = rejection.response(&theirs, "unused");
    assert_eq!(rsp.status(), REQUEST_PENDING);
    assert_eq!(rsp.reason(), b"Request Pending");

    // Ours gets 491 too: we own the Call-ID, so 2.1 to 4 s.
    let pending = from_bob(&ours, 491, "", &[]);
    let ResponseOutcome::Applied {
        effect: ResponseEffect::GlareRetry { retry_at },
        ..
    } = dialogs
        .handle_response(clock.now, &pending, &mut rng)
        .unwrap()
    else {
        panic!()
    };
    let wait = retry_at - clock.now;
    assert!((2100..=4000).contains(&wait.as_millis()), "{wait:?}");
    assert_eq!(
        dialogs.request(&id, Method::Invite, &mut rng).unwrap_err(),
        DialogError::RetryScheduled
    );
    // Nothing before the wait is over, the retry exactly then.
    assert!(run_until(&mut dialogs, &mut clock, wait - Duration::from_millis(10)).is_empty());
    let seen = run_until(&mut dialogs, &mut clock, wait);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, wait);
    assert!(matches!(&seen[0].1, DialogOutput::RetryReinvite { id: got } if *got == id));
    let retry = dialogs.request(&id, Method::Invite, &mut rng).unwrap();
    assert_eq!(retry.headers().cseq().unwrap().seq, 3, "a new CSeq");
    assert_ne!(
        retry.headers().top_via().unwrap().branch(),
        ours.headers().top_via().unwrap().branch()
    );
}

#[test]
fn retry_waits_land_in_the_window_of_each_role_over_many_seeds() {
    for seed in 0..300 {
        let mut rng = rng(seed);
        let mut dialogs = table(&mut rng);
        let clock = Clock::new();
        // Owner of the Call-ID: the B leg.
        let b = b_leg_confirmed(&mut dialogs, &mut rng, &clock);
        let wait = reinvite_meets_491(&mut dialogs, &mut rng, &clock, &b);
        assert!(
            (2100..=4000).contains(&wait.as_millis()),
            "seed {seed}: {wait:?}"
        );
        assert_eq!(wait.as_millis() % 10, 0, "seed {seed}: 10 ms units");
        // Not the owner: the A leg.
        let (_, a) = a_leg_confirmed(&mut dialogs, &mut rng, clock.now);
        let reinvite = dialogs.request(&a, Method::Invite, &mut rng).unwrap();
        let pending = peer::response_on_the_wire(&mss_sip::Response::for_request(
            &reinvite,
            REQUEST_PENDING,
            "Request Pending",
        ));
        let ResponseOutcome::Applied {
            effect: ResponseEffect::GlareRetry { retry_at },
            ..
        } = dialogs
            .handle_response(clock.now, &pending, &mut rng)
            .unwrap()
        else {
            panic!("seed {seed}")
        };
        let wait = retry_at - clock.now;
        assert!(wait.as_millis() <= 2000, "seed {seed}: {wait:?}");
        assert_eq!(wait.as_millis() % 10, 0, "seed {seed}: 10 ms units");
    }
}

#[test]
fn retry_waits_for_the_peers_invite_to_finish() {
    let mut rng = rng(22);
    let mut dialogs = table(&mut rng);
    let mut clock = Clock::new();
    let id = b_leg_confirmed(&mut dialogs, &mut rng, &clock);
    let wait = reinvite_meets_491(&mut dialogs, &mut rng, &clock, &id);
    // Bob's own retry comes first and is taken.
    let theirs = from_bob_request("INVITE", 5, &id, "Contact: <sip:bob@192.0.2.20:5070>\n");
    assert!(matches!(
        dialogs.handle_request(&theirs, &mut rng),
        RequestOutcome::InDialog { .. }
    ));
    // The wait ends while it is in progress: no retry yet.
    assert!(run_until(&mut dialogs, &mut clock, wait + Duration::from_secs(1)).is_empty());
    // Our 200 to it: still waiting, for its ACK.
    let ok = dialogs
        .response(&id, &theirs, StatusCode::OK, "OK")
        .unwrap();
    dialogs.send_response(clock.now, &id, ok).unwrap();
    assert!(matches!(
        &drain(&mut dialogs)[..],
        [DialogOutput::Response { .. }]
    ));
    let ack = from_bob_request("ACK", 5, &id, "");
    assert!(matches!(
        dialogs.handle_request(&ack, &mut rng),
        RequestOutcome::Ack { first: true, .. }
    ));
    let outs = drain(&mut dialogs);
    assert!(
        matches!(&outs[..], [DialogOutput::RetryReinvite { id: got }] if *got == id),
        "{outs:?}"
    );
}

#[test]
fn a_retry_can_be_given_up() {
    let mut rng = rng(23);
    let mut dialogs = table(&mut rng);
    let mut clock = Clock::new();
    let id = b_leg_confirmed(&mut dialogs, &mut rng, &clock);
    reinvite_meets_491(&mut dialogs, &mut rng, &clock, &id);
    assert!(dialogs.cancel_reinvite_retry(&id));
    assert_eq!(dialogs.poll_timeout(), None);
    assert!(run_until(&mut dialogs, &mut clock, Duration::from_secs(10)).is_empty());
    assert!(dialogs.request(&id, Method::Invite, &mut rng).is_ok());
}

#[test]
fn an_invite_during_the_peers_previous_invite_gets_500_with_retry_after() {
    for seed in 0..50 {
        let mut rng = rng(seed);
        let mut dialogs = table(&mut rng);
        let (_, id) = a_leg(&mut dialogs, &mut rng);
        // The first INVITE has no final response yet; a second one in the early dialog.
        let second = from_alice("INVITE", 11, &id, "Contact: <sip:100@192.0.2.10:5062>\n");
        let RequestOutcome::Reject(rejection @ Rejection::InviteInProgress { retry_after }) =
            dialogs.handle_request(&second, &mut rng)
        else {
            panic!()
        };
        assert!(retry_after <= 10);
        let rsp = rejection.response(&second, "unused");
        assert_eq!(rsp.status(), StatusCode::SERVER_INTERNAL_ERROR);
        assert_eq!(
            rsp.headers().retry_after().unwrap().unwrap().seconds,
            retry_after
        );
        // Meanwhile mss may not start one either.
        assert_eq!(
            dialogs.request(&id, Method::Invite, &mut rng).unwrap_err(),
            DialogError::InviteInProgress
        );
    }
}
