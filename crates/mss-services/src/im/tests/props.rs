//! Property tests: no input order or content makes the service panic or leak.

use proptest::prelude::*;

use super::*;

/// Plays the caller until the service has nothing more to say: answers every request with
/// the next code (200 when out), every storage operation with the next success flag.
fn play(
    h: &mut Harness,
    codes: &mut impl Iterator<Item = u16>,
    oks: &mut impl Iterator<Item = bool>,
) {
    for _ in 0..50 {
        let outs = h.drain();
        if outs.is_empty() {
            return;
        }
        for o in outs {
            match o {
                ImOutput::Send { token, request, .. } => {
                    let code = codes.next().unwrap_or(200);
                    h.im.handle_response(h.now, token, &answer(&request, code, "X"));
                }
                ImOutput::Store { token, .. } => {
                    let r = if oks.next().unwrap_or(true) {
                        Ok(InsertOutcome::Stored(1))
                    } else {
                        Err("e".into())
                    };
                    h.im.handle_stored(h.now, token, r);
                }
                ImOutput::Load { user, .. } => {
                    let r = vec![stored(1, "a", T0_MS), stored(2, "b", T0_MS)];
                    h.im.handle_loaded(h.now, &user, Ok(r));
                }
                ImOutput::Delete { id } => {
                    let r = if oks.next().unwrap_or(true) {
                        Ok(true)
                    } else {
                        Err("e".into())
                    };
                    h.im.handle_deleted(h.now, id, r);
                }
                ImOutput::Expire { .. } => h.im.handle_expired(h.now, Ok(0)),
                ImOutput::Reply { .. } => {}
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Whatever the Content-Type and body, handle_message answers or acts, never panics.
    #[test]
    fn odd_bodies_never_panic(
        ct in "[a-z/;=\"\\-]{1,30}",
        body in proptest::collection::vec(any::<u8>(), 0..300),
        online in any::<bool>(),
    ) {
        let mut h = Harness::new();
        let mut t = format!(
            "MESSAGE sip:102@pbx SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
             From: <sip:101@pbx>;tag=1\r\nTo: <sip:102@pbx>\r\nCall-ID: c\r\n\
             CSeq: 1 MESSAGE\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        ).into_bytes();
        t.extend_from_slice(&body);
        if let Ok(Message::Request(req)) = parse_datagram(Bytes::from(t)) {
            let contacts = if online { vec![contact(7)] } else { vec![] };
            h.message(1, &req, contacts);
            prop_assert_eq!(h.drain().len(), 1);
        }
    }

    /// Any order of answers, results and timeouts leaves no panic and, in the end, nothing
    /// in flight.
    #[test]
    fn random_event_orders_never_panic(
        codes in proptest::collection::vec(100u16..700, 1..12),
        store_ok in proptest::collection::vec(any::<bool>(), 1..12),
    ) {
        let mut h = Harness::new();
        h.message(1, &text("x"), vec![contact(7), contact(8)]);
        h.im.handle_user_reachable(h.now, "102", vec![contact(9)]);
        let mut codes = codes.into_iter();
        let mut oks = store_ok.into_iter().cycle();
        for _ in 0..3 {
            play(&mut h, &mut codes, &mut oks);
            // Whatever is left (a branch that only answered 1xx) is settled by the guards.
            h.advance(Duration::from_secs(120));
            h.im.handle_timeout(h.now);
        }
        play(&mut h, &mut codes, &mut oks);
        prop_assert_eq!(h.im.in_flight(), 0);
    }
}
