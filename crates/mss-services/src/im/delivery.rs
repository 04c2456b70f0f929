//! Delivery rounds: when a user becomes reachable, their stored messages go out one at a
//! time, oldest first, each deleted only after a `2xx` (DESIGN §3).
//!
//! A round per user at most: `Load` → for each message, a MESSAGE to every contact →
//! on the first `2xx`, `Delete` → once every contact has answered and the delete is
//! confirmed, the next message. A message no contact accepted stops the round; it and the
//! rest stay stored for the next registration. A registration while a round runs only
//! updates the contacts and asks for one more round afterwards, so two racing
//! registrations never deliver a message twice.
//!
//! [`Deliveries`] owns the rounds and what they learn: the deletes in flight, the users
//! whose store a round emptied, and the users who may have messages stored. The service
//! tells it when a message was stored ([`Deliveries::message_stored`]).

use std::collections::{HashMap, HashSet, VecDeque};

use mss_sip::Response;
use mss_store::StoredMessage;
use tracing::{debug, info, warn};

use crate::im::guards::{later, GuardKey, Guarded};
use crate::im::io::{ContactTarget, ImOutput};
use crate::im::outbox::{Outbox, SendOwner};
use crate::im::request::{self, NewIds};
use crate::im::settings::ImSettings;
use crate::Now;

/// Most users remembered as having an empty store (see `Deliveries::known_empty`).
const MAX_KNOWN_EMPTY: usize = 100_000;

/// Where a round is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Waiting for the stored messages.
    Loading,
    /// Delivering message `id`.
    Sending {
        /// The message.
        id: i64,
        /// Contacts that have not answered finally yet.
        pending: usize,
        /// A contact answered `2xx`.
        delivered: bool,
        /// The delete is in flight.
        deleting: bool,
    },
}

/// The delivery round of one user.
#[derive(Debug)]
struct Round {
    /// Distinguishes this round from earlier ones of the same user (late answers).
    serial: u64,
    /// Where the user can be reached now (updated by every registration).
    contacts: Vec<ContactTarget>,
    /// Messages still to deliver, oldest first.
    queue: VecDeque<StoredMessage>,
    phase: Phase,
    /// Guard of the load or delete being waited for.
    guard: Option<GuardKey>,
    /// Another round is wanted when this one ends (a registration or a stored message
    /// arrived meanwhile).
    rerun: bool,
}

/// The delivery rounds and their bookkeeping.
#[derive(Debug)]
pub(crate) struct Deliveries {
    /// One delivery round per user at most.
    rounds: HashMap<String, Round>,
    /// Delete requests in flight: message id → recipient.
    deleting: HashMap<i64, String>,
    /// Users whose last delivery round found nothing left, so a registration refresh needs
    /// no load. Forgotten when a message is stored for them.
    known_empty: HashSet<String>,
    /// When the caller told the service who has stored messages
    /// ([`Deliveries::set_stored_users`]): the users who may have some (stored since, or
    /// not yet emptied by a round). Anyone else needs no load at registration.
    stored_users: Option<HashSet<String>>,
}

impl Deliveries {
    /// No round running, and nothing known about anyone's store.
    pub(crate) fn new() -> Deliveries {
        Deliveries {
            rounds: HashMap::new(),
            deleting: HashMap::new(),
            known_empty: HashSet::new(),
            stored_users: None,
        }
    }

    /// Number of rounds running.
    pub(crate) fn len(&self) -> usize {
        self.rounds.len()
    }

    /// Who has stored messages (`Store::message_counts` at start): from then on only they,
    /// and whoever a message is stored for, need a load at registration.
    pub(crate) fn set_stored_users(&mut self, users: impl IntoIterator<Item = String>) {
        self.stored_users = Some(users.into_iter().collect());
    }

    /// A message was stored for `user`: their next registration loads, and a round that
    /// is running runs once more.
    pub(crate) fn message_stored(&mut self, user: &str) {
        self.known_empty.remove(user);
        if let Some(s) = &mut self.stored_users {
            s.insert(user.to_owned());
        }
        if let Some(round) = self.rounds.get_mut(user) {
            round.rerun = true;
        }
    }

    /// A write for `user` failed or timed out but may still land: their next registration
    /// loads.
    pub(crate) fn message_maybe_stored(&mut self, user: &str) {
        if let Some(s) = &mut self.stored_users {
            s.insert(user.to_owned());
        }
    }

    /// Forgets who has an empty store once that memory grows past its bound (they load
    /// once more at their next registration).
    pub(crate) fn bound_known_empty(&mut self) {
        if self.known_empty.len() > MAX_KNOWN_EMPTY {
            self.known_empty.clear();
        }
    }

    /// Forgets who has an empty store, as when the memory is full.
    #[cfg(test)]
    pub(crate) fn forget_known_empty(&mut self) {
        self.known_empty.clear();
    }

    /// Whether `user` may have stored messages: `false` only when known to have none.
    fn may_have_stored(&self, user: &str) -> bool {
        if self.known_empty.contains(user) {
            return false;
        }
        match &self.stored_users {
            Some(users) => users.contains(user),
            None => true,
        }
    }

    /// `user` is reachable at `contacts`: starts a delivery round unless one is running
    /// (then it only takes the new contacts and runs once more afterwards) or the user is
    /// known to have nothing stored (their last round emptied the store and nothing was
    /// stored since).
    pub(crate) fn user_reachable<S>(
        &mut self,
        out: &mut Outbox<S>,
        settings: &ImSettings,
        now: Now,
        user: &str,
        contacts: Vec<ContactTarget>,
    ) {
        if let Some(round) = self.rounds.get_mut(user) {
            round.rerun = !contacts.is_empty();
            round.contacts = contacts;
            return;
        }
        if contacts.is_empty() || !self.may_have_stored(user) {
            return;
        }
        self.start_round(out, settings, now, user.to_owned(), contacts);
    }

    /// Starts a round: asks for the stored messages.
    fn start_round<S>(
        &mut self,
        out: &mut Outbox<S>,
        settings: &ImSettings,
        now: Now,
        user: String,
        contacts: Vec<ContactTarget>,
    ) {
        let serial = out.fresh_id();
        let guard = out.arm(
            later(now.mono, settings.storage_guard),
            Guarded::Round {
                user: user.clone(),
                serial,
            },
        );
        out.push(ImOutput::Load {
            user: user.clone(),
            now: now.unix_ms,
        });
        self.rounds.insert(
            user,
            Round {
                serial,
                contacts,
                queue: VecDeque::new(),
                phase: Phase::Loading,
                guard: Some(guard),
                rerun: false,
            },
        );
    }

    /// The outcome of an [`ImOutput::Load`]: `user`'s stored messages (any order; they are
    /// sent by id, which is arrival order). An error ends the round.
    pub(crate) fn loaded<S>(
        &mut self,
        out: &mut Outbox<S>,
        settings: &ImSettings,
        now: Now,
        user: &str,
        result: Result<Vec<StoredMessage>, String>,
    ) {
        let Some(round) = self.rounds.get_mut(user) else {
            return;
        };
        if round.phase != Phase::Loading {
            return;
        }
        if let Some(g) = round.guard.take() {
            out.disarm(g);
        }
        match result {
            Ok(mut messages) => {
                messages.sort_by_key(|m| m.id);
                messages.retain(|m| m.message.expires_at > now.unix_ms);
                round.queue = messages.into();
                self.next_message(out, settings, now, user);
            }
            Err(e) => {
                warn!(%user, error = %e, "loading stored messages failed");
                self.finish_round(out, settings, now, user, false);
            }
        }
    }

    /// Sends the next message of `user`'s round, or ends the round when none is left.
    fn next_message<S>(
        &mut self,
        out: &mut Outbox<S>,
        settings: &ImSettings,
        now: Now,
        user: &str,
    ) {
        let Some(round) = self.rounds.get_mut(user) else {
            return;
        };
        let Some(msg) = round.queue.pop_front() else {
            self.finish_round(out, settings, now, user, true);
            return;
        };
        if round.contacts.is_empty() {
            round.queue.push_front(msg);
            self.finish_round(out, settings, now, user, false);
            return;
        }
        round.phase = Phase::Sending {
            id: msg.id,
            pending: round.contacts.len(),
            delivered: false,
            deleting: false,
        };
        let serial = round.serial;
        let contacts = round.contacts.clone();
        for contact in &contacts {
            let ids = NewIds::generate(out.rng());
            let req = request::delivery(&msg, contact, &settings.domain, &settings.via_host, &ids);
            let owner = SendOwner::Delivery {
                user: user.to_owned(),
                serial,
            };
            let guard_at = later(now.mono, settings.request_guard);
            out.send(owner, req, contact.flow, guard_at);
        }
    }

    /// A contact answered the delivery of round `serial` of `user` with `rsp` (final).
    pub(crate) fn answered<S>(
        &mut self,
        out: &mut Outbox<S>,
        settings: &ImSettings,
        now: Now,
        user: &str,
        serial: u64,
        rsp: &Response,
    ) {
        let delete_timeout = later(now.mono, settings.storage_guard);
        let Some(round) = self.rounds.get_mut(user) else {
            return;
        };
        if round.serial != serial {
            return;
        }
        let Phase::Sending {
            id,
            pending,
            delivered,
            deleting,
        } = &mut round.phase
        else {
            return;
        };
        *pending = pending.saturating_sub(1);
        if rsp.status().is_success() && !*delivered {
            *delivered = true;
            *deleting = true;
            let id = *id;
            round.guard = Some(out.arm(
                delete_timeout,
                Guarded::Round {
                    user: user.to_owned(),
                    serial,
                },
            ));
            self.deleting.insert(id, user.to_owned());
            out.push(ImOutput::Delete { id });
            return;
        }
        self.step(out, settings, now, user);
    }

    /// The outcome of the [`ImOutput::Delete`] of a delivered message `id`: `Ok(true)`
    /// deleted, `Ok(false)` it was already gone (someone else deleted it), an error ends
    /// the round (the message was delivered but stays stored, so it may be delivered
    /// again: never lost). A delete of no round is ignored.
    pub(crate) fn deleted<S>(
        &mut self,
        out: &mut Outbox<S>,
        settings: &ImSettings,
        now: Now,
        id: i64,
        result: Result<bool, String>,
    ) {
        let Some(user) = self.deleting.remove(&id) else {
            return;
        };
        let Some(round) = self.rounds.get_mut(&user) else {
            return;
        };
        let Phase::Sending {
            id: current,
            deleting,
            ..
        } = &mut round.phase
        else {
            return;
        };
        if *current != id || !*deleting {
            return;
        }
        *deleting = false;
        if let Some(g) = round.guard.take() {
            out.disarm(g);
        }
        match result {
            Ok(true) => out.stats_mut().delivered += 1,
            Ok(false) => out.stats_mut().delivered_already_gone += 1,
            Err(e) => {
                warn!(%user, id, error = %e, "deleting a delivered message failed");
                self.finish_round(out, settings, now, &user, false);
                return;
            }
        }
        self.step(out, settings, now, &user);
    }

    /// Moves the round on once every contact answered and the delete (if any) is done.
    fn step<S>(&mut self, out: &mut Outbox<S>, settings: &ImSettings, now: Now, user: &str) {
        let Some(round) = self.rounds.get(user) else {
            return;
        };
        let Phase::Sending {
            id,
            pending,
            delivered,
            deleting,
        } = round.phase
        else {
            return;
        };
        if pending > 0 || deleting {
            return;
        }
        if delivered {
            self.next_message(out, settings, now, user);
        } else {
            debug!(%user, id, "no contact took a stored message; keeping it and the rest");
            self.finish_round(out, settings, now, user, false);
        }
    }

    /// A load or delete of round `serial` got no answer in time: the round ends.
    pub(crate) fn stuck<S>(
        &mut self,
        out: &mut Outbox<S>,
        settings: &ImSettings,
        now: Now,
        user: &str,
        serial: u64,
    ) {
        let Some(round) = self.rounds.get_mut(user) else {
            return;
        };
        if round.serial != serial {
            return;
        }
        round.guard = None;
        warn!(%user, "the store did not answer during a delivery round");
        self.finish_round(out, settings, now, user, false);
    }

    /// Ends `user`'s round; starts another one if a registration or a stored message came
    /// in meanwhile and the user is still reachable.
    fn finish_round<S>(
        &mut self,
        out: &mut Outbox<S>,
        settings: &ImSettings,
        now: Now,
        user: &str,
        success: bool,
    ) {
        let Some(round) = self.rounds.remove(user) else {
            return;
        };
        if let Some(g) = round.guard {
            out.disarm(g);
        }
        if let Phase::Sending { id, .. } = round.phase {
            self.deleting.remove(&id);
        }
        if success {
            info!(%user, "stored messages delivered");
        } else {
            out.stats_mut().delivery_failures += 1;
        }
        if round.rerun && !round.contacts.is_empty() {
            self.start_round(out, settings, now, user.to_owned(), round.contacts);
        } else if success {
            if let Some(s) = &mut self.stored_users {
                s.remove(user);
            }
            self.known_empty.insert(user.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::im::io::RequestToken;
    use crate::im::tests::fixtures::{answer, contact, sends, stored, Txn, T0_MS};
    use std::time::Instant;

    /// The rounds with what their methods take.
    struct Env {
        settings: ImSettings,
        out: Outbox<Txn>,
        deliveries: Deliveries,
        now: Now,
    }

    impl Env {
        fn new() -> Env {
            Env {
                settings: ImSettings::new("pbx.example.com"),
                out: Outbox::new(7),
                deliveries: Deliveries::new(),
                now: Now::new(Instant::now(), T0_MS),
            }
        }

        /// 102 registers at one contact; true when that asked for a load.
        fn register(&mut self) -> bool {
            let (out, settings, now) = (&mut self.out, &self.settings, self.now);
            self.deliveries
                .user_reachable(out, settings, now, "102", vec![contact(7)]);
            match self.out.drain().as_slice() {
                [] => false,
                [ImOutput::Load { user, .. }] if user == "102" => true,
                other => panic!("expected one Load or nothing, got {other:?}"),
            }
        }

        /// The load of 102 gives messages `ids`.
        fn load(&mut self, ids: &[i64]) {
            let messages = ids.iter().map(|&id| stored(id, "hi", T0_MS)).collect();
            let (out, settings, now) = (&mut self.out, &self.settings, self.now);
            self.deliveries
                .loaded(out, settings, now, "102", Ok(messages));
        }

        /// Expects the delivery of one message, answers it `code` as the service routes
        /// it, and returns what followed.
        fn deliver(&mut self, code: u16) -> Vec<ImOutput<Txn>> {
            let sent = sends(self.out.drain());
            let [(token, request, _)] = sent.as_slice() else {
                panic!("expected one Send, got {sent:?}");
            };
            self.answer(*token, &answer(request, code, "X"));
            self.out.drain()
        }

        fn answer(&mut self, token: RequestToken, rsp: &Response) {
            let Some(SendOwner::Delivery { user, serial }) = self.out.answered(token) else {
                panic!("not a delivery's request");
            };
            let (out, settings, now) = (&mut self.out, &self.settings, self.now);
            self.deliveries
                .answered(out, settings, now, &user, serial, rsp);
        }

        fn deleted(&mut self, id: i64, result: Result<bool, String>) {
            let (out, settings, now) = (&mut self.out, &self.settings, self.now);
            self.deliveries.deleted(out, settings, now, id, result);
        }
    }

    #[test]
    fn a_round_stops_at_the_first_failure() {
        let mut e = Env::new();
        assert!(e.register());
        e.load(&[1, 2]);
        assert!(e.deliver(480).is_empty(), "no delete, no next message");
        assert_eq!(e.deliveries.len(), 0);
        assert_eq!(e.out.stats().delivery_failures, 1);
        assert_eq!((e.out.next_guard_at(), e.out.awaiting_answers()), (None, 0));
        // Both stay stored: the next registration loads again.
        assert!(e.register());
    }

    #[test]
    fn a_round_that_empties_the_store_spares_the_next_loads() {
        let mut e = Env::new();
        e.deliveries.set_stored_users(["102".to_owned()]);
        assert!(e.register());
        e.load(&[3]);
        let after = e.deliver(200);
        assert!(matches!(after.as_slice(), [ImOutput::Delete { id: 3 }]));
        // A delete of another message is not this round's.
        e.deleted(4, Ok(true));
        assert_eq!(e.deliveries.len(), 1);
        e.deleted(3, Ok(true));
        assert!(e.out.drain().is_empty());
        assert_eq!((e.deliveries.len(), e.out.stats().delivered), (0, 1));
        assert!(!e.register(), "known empty");
        e.deliveries.forget_known_empty();
        assert!(!e.register(), "no longer among the stored users");
        e.deliveries.message_stored("102");
        assert!(e.register());
    }

    #[test]
    fn a_message_stored_during_a_round_runs_it_once_more() {
        let mut e = Env::new();
        assert!(e.register());
        e.deliveries.message_stored("102");
        e.load(&[]);
        assert!(matches!(e.out.drain().as_slice(), [ImOutput::Load { user, .. }] if user == "102"));
        assert_eq!(e.deliveries.len(), 1);
        e.load(&[]);
        assert!(e.out.drain().is_empty());
        assert_eq!(e.deliveries.len(), 0);
    }

    #[test]
    fn a_failed_delete_ends_the_round_and_keeps_the_rest() {
        let mut e = Env::new();
        assert!(e.register());
        e.load(&[5, 6]);
        assert!(matches!(
            e.deliver(200).as_slice(),
            [ImOutput::Delete { id: 5 }]
        ));
        e.deleted(5, Err("disk".into()));
        assert!(
            e.out.drain().is_empty(),
            "message 6 waits for the next round"
        );
        assert_eq!(e.deliveries.len(), 0);
        assert_eq!(e.out.stats().delivery_failures, 1);
        assert!(e.register());
    }
}
