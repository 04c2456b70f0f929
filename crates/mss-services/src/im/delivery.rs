//! Delivery rounds: when a user becomes reachable, their stored messages go out one at a
//! time, oldest first, each deleted only after a `2xx` (DESIGN §3).
//!
//! A round per user at most: `Load` → for each message, a MESSAGE to every contact →
//! on the first `2xx`, `Delete` → once every contact has answered and the delete is
//! confirmed, the next message. A message no contact accepted stops the round; it and the
//! rest stay stored for the next registration. A registration while a round runs only
//! updates the contacts and asks for one more round afterwards, so two racing
//! registrations never deliver a message twice.

use std::collections::VecDeque;

use mss_sip::Response;
use mss_store::StoredMessage;
use tracing::{debug, info, warn};

use crate::im::guards::later;
use crate::im::guards::{GuardKey, Guarded};
use crate::im::io::{ContactTarget, ImOutput};
use crate::im::messaging::Messaging;
use crate::im::outbox::SendOwner;
use crate::im::request::{self, NewIds};
use crate::Now;

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
pub(crate) struct Round {
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
    pub(crate) rerun: bool,
}

impl<S> Messaging<S> {
    /// `user` is reachable at `contacts` (`Location::contacts` after a REGISTER was
    /// committed). Call it after every successful REGISTER that leaves the user with
    /// contacts, refreshes included: it starts a delivery round unless one is running (then
    /// it only takes the new contacts and runs once more afterwards) or the user is known
    /// to have nothing stored (their last round emptied the store and nothing was stored
    /// since), so a refresh costs nothing when no message waits.
    pub fn handle_user_reachable(&mut self, now: Now, user: &str, contacts: Vec<ContactTarget>) {
        if let Some(round) = self.rounds.get_mut(user) {
            round.rerun = !contacts.is_empty();
            round.contacts = contacts;
            return;
        }
        if contacts.is_empty() || !self.may_have_stored(user) {
            return;
        }
        self.start_round(now, user.to_owned(), contacts);
    }

    /// Starts a round: asks for the stored messages.
    fn start_round(&mut self, now: Now, user: String, contacts: Vec<ContactTarget>) {
        let serial = self.outbox.fresh_id();
        let guard = self.outbox.arm(
            later(now.mono, self.settings.storage_guard),
            Guarded::Round {
                user: user.clone(),
                serial,
            },
        );
        self.outbox.push(ImOutput::Load {
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
    pub fn handle_loaded(
        &mut self,
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
            self.outbox.disarm(g);
        }
        match result {
            Ok(mut messages) => {
                messages.sort_by_key(|m| m.id);
                messages.retain(|m| m.message.expires_at > now.unix_ms);
                round.queue = messages.into();
                self.next_message(now, user);
            }
            Err(e) => {
                warn!(%user, error = %e, "loading stored messages failed");
                self.finish_round(now, user, false);
            }
        }
    }

    /// Sends the next message of `user`'s round, or ends the round when none is left.
    fn next_message(&mut self, now: Now, user: &str) {
        let Some(round) = self.rounds.get_mut(user) else {
            return;
        };
        let Some(msg) = round.queue.pop_front() else {
            self.finish_round(now, user, true);
            return;
        };
        if round.contacts.is_empty() {
            round.queue.push_front(msg);
            self.finish_round(now, user, false);
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
            let ids = NewIds::generate(self.outbox.rng());
            let req = request::delivery(
                &msg,
                contact,
                &self.settings.domain,
                &self.settings.via_host,
                &ids,
            );
            let owner = SendOwner::Delivery {
                user: user.to_owned(),
                serial,
            };
            let guard_at = later(now.mono, self.settings.request_guard);
            self.outbox.send(owner, req, contact.flow, guard_at);
        }
    }

    /// A contact answered the delivery of round `serial` of `user` with `rsp` (final).
    pub(super) fn delivery_answered(&mut self, now: Now, user: &str, serial: u64, rsp: &Response) {
        let delete_timeout = later(now.mono, self.settings.storage_guard);
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
            round.guard = Some(self.outbox.arm(
                delete_timeout,
                Guarded::Round {
                    user: user.to_owned(),
                    serial,
                },
            ));
            self.deleting.insert(id, user.to_owned());
            self.outbox.push(ImOutput::Delete { id });
            return;
        }
        self.step(now, user);
    }

    /// The outcome of an [`ImOutput::Delete`]: `Ok(true)` deleted, `Ok(false)` it was
    /// already gone (someone else deleted it), an error ends the round (the message was
    /// delivered but stays stored, so it may be delivered again: never lost).
    pub fn handle_deleted(&mut self, now: Now, id: i64, result: Result<bool, String>) {
        if self.relays.late_copy_deleted(id, &result) {
            return;
        }
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
            self.outbox.disarm(g);
        }
        match result {
            Ok(true) => self.outbox.stats_mut().delivered += 1,
            Ok(false) => self.outbox.stats_mut().delivered_already_gone += 1,
            Err(e) => {
                warn!(%user, id, error = %e, "deleting a delivered message failed");
                self.finish_round(now, &user, false);
                return;
            }
        }
        self.step(now, &user);
    }

    /// Moves the round on once every contact answered and the delete (if any) is done.
    fn step(&mut self, now: Now, user: &str) {
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
            self.next_message(now, user);
        } else {
            debug!(%user, id, "no contact took a stored message; keeping it and the rest");
            self.finish_round(now, user, false);
        }
    }

    /// A load or delete of round `serial` got no answer in time: the round ends.
    pub(super) fn round_stuck(&mut self, now: Now, user: &str, serial: u64) {
        let Some(round) = self.rounds.get_mut(user) else {
            return;
        };
        if round.serial != serial {
            return;
        }
        round.guard = None;
        warn!(%user, "the store did not answer during a delivery round");
        self.finish_round(now, user, false);
    }

    /// Ends `user`'s round; starts another one if a registration or a stored message came
    /// in meanwhile and the user is still reachable.
    fn finish_round(&mut self, now: Now, user: &str, success: bool) {
        let Some(round) = self.rounds.remove(user) else {
            return;
        };
        if let Some(g) = round.guard {
            self.outbox.disarm(g);
        }
        if let Phase::Sending { id, .. } = round.phase {
            self.deleting.remove(&id);
        }
        if success {
            info!(%user, "stored messages delivered");
        } else {
            self.outbox.stats_mut().delivery_failures += 1;
        }
        if round.rerun && !round.contacts.is_empty() {
            self.start_round(now, user.to_owned(), round.contacts);
        } else if success {
            if let Some(s) = &mut self.stored_users {
                s.remove(user);
            }
            self.known_empty.insert(user.to_owned());
        }
    }
}
