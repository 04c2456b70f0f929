//! Property tests: no input order or content makes the service panic or leak.

use proptest::prelude::*;

use super::*;

/// A randomized caller: carries out the service's requests in an order chosen by `picks`,
/// answering requests with `codes` (then 200) and storage operations with `oks` (then
/// success), and sometimes lets time pass instead (`picks` value 0). Returns the final
/// answers per server transaction.
struct Chaos<'a> {
    h: &'a mut Harness,
    pending: Vec<ImOutput<Txn>>,
    answers: Vec<Txn>,
    next_id: i64,
}

impl Chaos<'_> {
    fn step(
        &mut self,
        pick: usize,
        codes: &mut impl Iterator<Item = u16>,
        oks: &mut impl Iterator<Item = bool>,
    ) {
        self.pending.extend(self.h.drain());
        if pick == 0 || self.pending.is_empty() {
            self.h.advance(Duration::from_secs(5));
            let now = self.h.now;
            self.h.im.handle_timeout(now);
            return;
        }
        let o = self.pending.remove(pick % self.pending.len());
        let now = self.h.now;
        let im = &mut self.h.im;
        match o {
            ImOutput::Send { token, request, .. } => {
                let code = codes.next().unwrap_or(200);
                im.handle_response(now, token, &answer(&request, code, "X"));
            }
            ImOutput::Store { token, .. } => {
                self.next_id += 1;
                let r = if oks.next().unwrap_or(true) {
                    Ok(InsertOutcome::Stored(self.next_id))
                } else {
                    Err("e".into())
                };
                im.handle_stored(now, token, r);
            }
            ImOutput::Load { user, .. } => {
                let r = vec![stored(1, "a", T0_MS), stored(2, "b", T0_MS)];
                im.handle_loaded(now, &user, Ok(r));
            }
            ImOutput::Delete { id } => {
                let r = if oks.next().unwrap_or(true) {
                    Ok(true)
                } else {
                    Err("e".into())
                };
                im.handle_deleted(now, id, r);
            }
            ImOutput::Expire { .. } => im.handle_expired(now, Ok(0)),
            ImOutput::Reply { server, .. } => self.answers.push(server),
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

    /// Any order of answers, results and timeouts: no panic, every MESSAGE gets exactly
    /// one final answer, and in the end nothing is left in flight.
    #[test]
    fn random_event_orders_answer_each_message_once(
        codes in proptest::collection::vec(100u16..700, 1..16),
        store_ok in proptest::collection::vec(any::<bool>(), 1..16),
        picks in proptest::collection::vec(0usize..8, 1..80),
    ) {
        let mut h = Harness::new();
        h.message(1, &text("x"), vec![contact(7), contact(8)]);
        h.message(2, &text("y"), vec![]);
        h.im.handle_user_reachable(h.now, "102", vec![contact(9)]);
        h.message(3, &text("z"), vec![contact(9)]);
        let mut codes = codes.into_iter();
        let mut oks = store_ok.into_iter().cycle();
        let mut c = Chaos { h: &mut h, pending: Vec::new(), answers: Vec::new(), next_id: 100 };
        for pick in picks {
            c.step(pick, &mut codes, &mut oks);
        }
        // Then settle everything in order, letting the guards catch what is left.
        for _ in 0..200 {
            c.step(1, &mut codes, &mut oks);
        }
        for _ in 0..40 {
            c.step(0, &mut codes, &mut oks);
            for _ in 0..20 {
                c.step(1, &mut codes, &mut oks);
            }
        }
        let mut answers = c.answers.clone();
        answers.sort_unstable();
        prop_assert_eq!(answers, vec![1, 2, 3]);
        let left = c.pending.len();
        prop_assert_eq!(left, 0);
        prop_assert_eq!(h.im.in_flight(), 0);
    }
}
