//! Delivery rounds when a user returns.

use super::*;

#[test]
fn delivery_on_return_oldest_first_with_the_original() {
    let mut h = Harness::new();
    h.im.handle_user_reachable(h.now, "102", vec![contact(7)]);
    expect_load(&mut h);
    let msgs = vec![
        stored(12, "second", T0_MS - 1_000),
        stored(5, "first ü", T0_MS - 60_000),
        stored(20, "third", T0_MS - 10),
    ];
    h.im.handle_loaded(h.now, "102", Ok(msgs));
    let mut call_ids = Vec::new();
    for (id, body, at) in [
        (5, "first ü", T0_MS - 60_000),
        (12, "second", T0_MS - 1_000),
        (20, "third", T0_MS - 10),
    ] {
        let req = deliver_one(&mut h, 200);
        let hd = req.headers();
        assert_eq!(&req.body()[..], body.as_bytes());
        let from = format!("<sip:101@pbx.example.com>;tag=t{id}");
        assert_eq!(hd.get_str(&HeaderName::From).unwrap(), Some(from.as_str()));
        assert_eq!(
            hd.get_str(&HeaderName::To).unwrap(),
            Some("<sip:102@pbx.example.com>")
        );
        assert_eq!(
            hd.get_str(&HeaderName::ContentType).unwrap(),
            Some("text/plain;charset=UTF-8")
        );
        let date = hd.date().unwrap().unwrap();
        let ms = date
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        assert_eq!(ms / 1000, at / 1000);
        assert_eq!(req.uri_str().unwrap(), "sip:102@192.0.2.7:5062");
        call_ids.push(hd.call_id().unwrap().to_owned());
        // Deleted only after the 2xx, and the next one waits for the delete.
        match one(h.drain()) {
            ImOutput::Delete { id: got } => assert_eq!(got, id),
            other => panic!("{other:?}"),
        }
        h.im.handle_deleted(h.now, id, Ok(true));
    }
    call_ids.dedup();
    assert_eq!(call_ids.len(), 3);
    assert!(h.drain().is_empty());
    assert_eq!(h.im.stats().delivered, 3);
    // The store is known empty now: a refresh loads nothing.
    h.im.handle_user_reachable(h.now, "102", vec![contact(7)]);
    assert!(h.drain().is_empty());
    // Until a message is stored for them again.
    let (token, _, _) = h.offline(1, &text("new"));
    h.im.handle_stored(h.now, token, Ok(InsertOutcome::Stored(30)));
    let _ = h.drain();
    h.im.handle_user_reachable(h.now, "102", vec![contact(7)]);
    expect_load(&mut h);
}

#[test]
fn with_the_stored_users_known_only_they_and_new_recipients_load() {
    let mut h = Harness::new();
    h.im.set_stored_users(["103".to_owned()]);
    // 102 has nothing stored: a first registration costs no load.
    h.im.handle_user_reachable(h.now, "102", vec![contact(7)]);
    assert!(h.drain().is_empty());
    // 103 has: it loads.
    h.im.handle_user_reachable(h.now, "103", vec![contact(8)]);
    match one(h.drain()) {
        ImOutput::Load { user, .. } => assert_eq!(user, "103"),
        other => panic!("expected Load, got {other:?}"),
    }
    // A message stored for 102 makes its next registration load and deliver it.
    let (token, _, _) = h.offline(1, &text("hi"));
    h.im.handle_stored(h.now, token, Ok(InsertOutcome::Stored(40)));
    let _ = h.drain();
    h.im.handle_user_reachable(h.now, "102", vec![contact(7)]);
    expect_load(&mut h);
    h.im.handle_loaded(h.now, "102", Ok(vec![stored(40, "hi", T0_MS)]));
    deliver_one(&mut h, 200);
    match one(h.drain()) {
        ImOutput::Delete { id } => assert_eq!(id, 40),
        other => panic!("{other:?}"),
    }
    h.im.handle_deleted(h.now, 40, Ok(true));
    assert!(h.drain().is_empty());
    // Emptied: no load again, even once the known-empty memory is forgotten.
    h.im.forget_known_empty();
    h.im.handle_user_reachable(h.now, "102", vec![contact(7)]);
    assert!(h.drain().is_empty());
    // A failed or timed-out store may still have landed: the next registration looks.
    let (token, _, _) = h.offline(2, &text("late"));
    h.im.handle_stored(h.now, token, Err("no answer from the store".into()));
    let _ = h.drain();
    h.im.handle_user_reachable(h.now, "102", vec![contact(7)]);
    expect_load(&mut h);
}

#[test]
fn a_failure_stops_the_round_and_keeps_the_rest() {
    let mut h = Harness::new();
    h.im.handle_user_reachable(h.now, "102", vec![contact(7)]);
    expect_load(&mut h);
    h.im.handle_loaded(
        h.now,
        "102",
        Ok(vec![
            stored(1, "a", T0_MS),
            stored(2, "b", T0_MS),
            stored(3, "c", T0_MS),
        ]),
    );
    deliver_one(&mut h, 200);
    assert!(matches!(one(h.drain()), ImOutput::Delete { id: 1 }));
    h.im.handle_deleted(h.now, 1, Ok(true));
    let req = deliver_one(&mut h, 480);
    assert_eq!(&req.body()[..], b"b");
    // No delete, no further message.
    assert!(h.drain().is_empty());
    assert_eq!(h.im.stats().delivery_failures, 1);
    assert_eq!(h.im.in_flight(), 0);
    // The next registration tries again from the store.
    h.im.handle_user_reachable(h.now, "102", vec![contact(7)]);
    expect_load(&mut h);
}

#[test]
fn a_silent_contact_stops_the_round_through_the_guard() {
    let mut h = Harness::new();
    h.im.handle_user_reachable(h.now, "102", vec![contact(7)]);
    expect_load(&mut h);
    h.im.handle_loaded(h.now, "102", Ok(vec![stored(1, "a", T0_MS)]));
    assert_eq!(sends(h.drain()).len(), 1);
    assert!(h.im.poll_timeout().unwrap() <= h.now.mono + Duration::from_secs(40));
    h.advance(Duration::from_secs(41));
    h.im.handle_timeout(h.now);
    let outs = h.drain();
    assert!(
        outs.iter().all(|o| !matches!(o, ImOutput::Delete { .. })),
        "{outs:?}"
    );
    assert_eq!(h.im.stats().delivery_failures, 1);
}

#[test]
fn racing_registrations_deliver_each_message_once() {
    let mut h = Harness::new();
    h.im.handle_user_reachable(h.now, "102", vec![contact(7)]);
    h.im.handle_user_reachable(h.now, "102", vec![contact(7), contact(8)]);
    expect_load(&mut h);
    h.im.handle_loaded(
        h.now,
        "102",
        Ok(vec![stored(1, "a", T0_MS), stored(2, "b", T0_MS)]),
    );
    let mut delivered = Vec::new();
    for id in [1, 2] {
        // Both contacts get it (the second registration's contacts are used).
        let s = sends(h.drain());
        assert_eq!(s.len(), 2);
        for (token, req, _) in &s {
            h.im.handle_response(h.now, *token, &answer(req, 200, "OK"));
        }
        let outs = h.drain();
        assert_eq!(outs.len(), 1, "one delete per message: {outs:?}");
        assert!(matches!(outs[0], ImOutput::Delete { id: got } if got == id));
        delivered.push(id);
        h.im.handle_deleted(h.now, id, Ok(true));
    }
    // The second registration asks for one more round, which finds nothing left.
    expect_load(&mut h);
    h.im.handle_loaded(h.now, "102", Ok(vec![]));
    assert!(h.drain().is_empty());
    assert_eq!(delivered, vec![1, 2]);
    assert_eq!(h.im.stats().delivered, 2);
    // A delete that finds the message gone counts apart.
    let mut h = Harness::new();
    h.im.handle_user_reachable(h.now, "102", vec![contact(7)]);
    expect_load(&mut h);
    h.im.handle_loaded(h.now, "102", Ok(vec![stored(9, "a", T0_MS)]));
    deliver_one(&mut h, 200);
    let _ = h.drain();
    h.im.handle_deleted(h.now, 9, Ok(false));
    assert_eq!(h.im.stats().delivered_already_gone, 1);
}
