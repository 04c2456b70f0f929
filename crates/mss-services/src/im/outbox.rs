//! The outbox: what every part of the messaging service writes to and none owns. The
//! queue of outputs for the caller, the guard deadlines, the ids of tokens, the generator
//! of Call-IDs and branches, the counters, and the requests sent that await their final
//! answer, each with the part the answer goes to.
//!
//! The relay, the offline store and the delivery rounds each take `&mut Outbox` in their
//! methods; the service (`messaging.rs`) owns it, drains it in `poll_output` and routes an
//! answer by its token through [`Outbox::answered`].

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use mss_sip::{Flow, Request, Response};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::im::guards::{GuardKey, Guarded, Guards};
use crate::im::io::{ImOutput, RequestToken};
use crate::im::stats::ImStats;

/// Who is waiting for a request mss sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SendOwner {
    /// A live relay.
    Relay(u64),
    /// A delivery round of `user`, number `serial`.
    Delivery {
        /// The recipient.
        user: String,
        /// Which round.
        serial: u64,
    },
}

/// The shared effects of the messaging service (see the module docs).
#[derive(Debug)]
pub(crate) struct Outbox<S> {
    queue: VecDeque<ImOutput<S>>,
    guards: Guards,
    next_id: u64,
    rng: StdRng,
    stats: ImStats,
    /// Requests mss sent, awaiting their final answer: who gets it, and its guard.
    awaiting: HashMap<RequestToken, (SendOwner, GuardKey)>,
}

impl<S> Outbox<S> {
    /// An empty outbox whose generator is seeded with `seed`.
    pub(crate) fn new(seed: u64) -> Outbox<S> {
        Outbox {
            queue: VecDeque::new(),
            guards: Guards::default(),
            next_id: 0,
            rng: StdRng::seed_from_u64(seed),
            stats: ImStats::default(),
            awaiting: HashMap::new(),
        }
    }

    /// A fresh id for a token, a relay or a round.
    pub(crate) fn fresh_id(&mut self) -> u64 {
        self.next_id = self.next_id.wrapping_add(1);
        self.next_id
    }

    /// The generator of Call-IDs and branches.
    pub(crate) fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    /// The counters.
    pub(crate) fn stats(&self) -> &ImStats {
        &self.stats
    }

    /// The counters, to count something.
    pub(crate) fn stats_mut(&mut self) -> &mut ImStats {
        &mut self.stats
    }

    /// Arms a guard for `what`, due at `at`.
    pub(crate) fn arm(&mut self, at: Instant, what: Guarded) -> GuardKey {
        self.guards.arm(at, what)
    }

    /// Disarms a guard (a no-op when it already fired).
    pub(crate) fn disarm(&mut self, key: GuardKey) {
        self.guards.disarm(key);
    }

    /// The earliest guard deadline.
    pub(crate) fn next_guard_at(&self) -> Option<Instant> {
        self.guards.next_at()
    }

    /// Removes and returns one guard due by `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Guarded> {
        self.guards.pop_due(now)
    }

    /// Queues `output` for the caller.
    pub(crate) fn push(&mut self, output: ImOutput<S>) {
        self.queue.push_back(output);
    }

    /// Queues the final answer on `server`.
    pub(crate) fn reply(&mut self, server: S, response: Response) {
        self.queue.push_back(ImOutput::Reply { server, response });
    }

    /// Queues `request` to go over `flow` for `owner`, guarded until `guard_at`.
    pub(crate) fn send(
        &mut self,
        owner: SendOwner,
        request: Request,
        flow: Flow,
        guard_at: Instant,
    ) {
        let token = RequestToken(self.fresh_id());
        let guard = self.guards.arm(guard_at, Guarded::Send(token));
        self.awaiting.insert(token, (owner, guard));
        self.queue.push_back(ImOutput::Send {
            token,
            request,
            flow,
        });
    }

    /// The final answer to request `token` came (or its guard fired): who gets it, or
    /// `None` when it was settled already. Disarms its guard.
    pub(crate) fn answered(&mut self, token: RequestToken) -> Option<SendOwner> {
        let (owner, guard) = self.awaiting.remove(&token)?;
        self.guards.disarm(guard);
        Some(owner)
    }

    /// Number of requests sent that await their final answer.
    pub(crate) fn awaiting_answers(&self) -> usize {
        self.awaiting.len()
    }

    /// The next output for the caller, if any.
    pub(crate) fn pop(&mut self) -> Option<ImOutput<S>> {
        self.queue.pop_front()
    }

    /// Every queued output, oldest first.
    #[cfg(test)]
    pub(crate) fn drain(&mut self) -> Vec<ImOutput<S>> {
        self.queue.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::im::tests::fixtures::{contact, text};
    use std::time::Duration;

    #[test]
    fn an_answer_goes_to_its_owner_once_and_disarms_its_guard() {
        let t0 = Instant::now();
        let mut out: Outbox<u32> = Outbox::new(7);
        let owner = SendOwner::Delivery {
            user: "102".into(),
            serial: 3,
        };
        out.send(
            owner.clone(),
            text("hi"),
            contact(7).flow,
            t0 + Duration::from_secs(40),
        );
        let token = match out.pop() {
            Some(ImOutput::Send { token, .. }) => token,
            other => panic!("expected Send, got {other:?}"),
        };
        assert_eq!(out.awaiting_answers(), 1);
        assert_eq!(out.next_guard_at(), Some(t0 + Duration::from_secs(40)));
        assert_eq!(out.answered(token), Some(owner));
        assert_eq!(out.answered(token), None);
        assert_eq!((out.awaiting_answers(), out.next_guard_at()), (0, None));
        assert!(out.pop().is_none());
    }

    #[test]
    fn ids_are_fresh_and_outputs_leave_in_order() {
        let mut out: Outbox<u32> = Outbox::new(7);
        let (a, b) = (out.fresh_id(), out.fresh_id());
        assert_ne!(a, b);
        out.push(ImOutput::Delete { id: 1 });
        out.push(ImOutput::Expire { now: 2 });
        assert!(matches!(out.pop(), Some(ImOutput::Delete { id: 1 })));
        assert!(matches!(out.pop(), Some(ImOutput::Expire { now: 2 })));
        assert!(out.pop().is_none());
    }
}
