//! The [`Messaging`] service: it takes a MESSAGE in (rate limit, recipient, body,
//! Max-Forwards) and otherwise only routes. It owns the parts, each with its own state —
//! the relays (`relay.rs`), the store writes in flight (`offline.rs`), the delivery rounds
//! (`delivery.rs`), the expiry sweep (`expiry.rs`) — and the [`Outbox`] they all write
//! to, and hands every input to the part it is for: a response by the owner of its token,
//! a finished store write to the relay it fell back from and to the delivery rounds, a
//! delete to the relay that asked for it or else to the rounds, a guard to what it guards.

use std::time::{Duration, Instant};

use mss_sip::{Request, Response, StatusCode};
use mss_store::{InsertOutcome, StoredMessage};
use tracing::debug;

use crate::im::body;
use crate::im::delivery::Deliveries;
use crate::im::expiry::ExpirySweeps;
use crate::im::guards::{later, Guarded};
use crate::im::io::{ContactTarget, ImOutput, Recipient, RequestToken, Sender, StoreToken};
use crate::im::offline::PendingStores;
use crate::im::outbox::{Outbox, SendOwner};
use crate::im::rate::SenderLimiter;
use crate::im::relay::{Fallback, Relays};
use crate::im::replies::Replies;
use crate::im::request::{self, ForwardError};
use crate::im::settings::ImSettings;
use crate::im::stats::ImStats;
use crate::Now;

/// How often idle senders are dropped from the rate table.
const SENDER_SWEEP: Duration = Duration::from_secs(10);

/// Instant messages (RFC 3428): relay to online users, the offline store, delivery on return.
///
/// See the [module docs](crate::im) for the run loop. `S` is the caller's handle of a
/// server transaction; it comes back in [`ImOutput::Reply`].
#[derive(Debug)]
pub struct Messaging<S> {
    settings: ImSettings,
    replies: Replies,
    /// The outputs, guards, ids, generator, counters and requests awaiting an answer.
    outbox: Outbox<S>,
    limiter: SenderLimiter,
    /// When idle senders are next dropped from `limiter`.
    next_sweep_at: Instant,
    relays: Relays<S>,
    stores: PendingStores<S>,
    deliveries: Deliveries,
    expiry: ExpirySweeps,
}

impl<S> Messaging<S> {
    /// A service configured by `settings`, started at `now`. `seed` seeds the generator of
    /// Call-IDs and branches (give a random one; tests give a fixed one).
    pub fn new(now: Now, settings: ImSettings, seed: u64) -> Messaging<S> {
        Messaging {
            replies: Replies::new(&settings.domain),
            limiter: SenderLimiter::new(settings.rate_limit, settings.max_tracked_senders),
            next_sweep_at: later(now.mono, SENDER_SWEEP),
            expiry: ExpirySweeps::new(now.mono, &settings),
            settings,
            outbox: Outbox::new(seed),
            relays: Relays::new(),
            stores: PendingStores::new(),
            deliveries: Deliveries::new(),
        }
    }

    /// Tells the service which users have stored messages (`Store::message_counts` at start,
    /// before any message is handled). From then on the service keeps that set itself (a
    /// user joins it when a message is stored for them and leaves it when a delivery round
    /// empties their store), and a registration of anyone else costs no load. Without this
    /// call every user's first registration loads.
    pub fn set_stored_users(&mut self, users: impl IntoIterator<Item = String>) {
        self.deliveries.set_stored_users(users);
    }

    /// Forgets who is known to have an empty store, as when that memory is full.
    #[cfg(test)]
    pub(super) fn forget_known_empty(&mut self) {
        self.deliveries.forget_known_empty();
    }

    /// The counters, for `/metrics`.
    pub fn stats(&self) -> &ImStats {
        self.outbox.stats()
    }

    /// The settings.
    pub fn settings(&self) -> &ImSettings {
        &self.settings
    }

    /// The next thing for the caller to do, if any. Call until `None` after every
    /// `handle_*` call.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<ImOutput<S>> {
        self.outbox.pop()
    }

    /// When [`Messaging::handle_timeout`] must be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let periodic = self.next_sweep_at.min(self.expiry.next_at());
        Some(
            self.outbox
                .next_guard_at()
                .map_or(periodic, |g| g.min(periodic)),
        )
    }

    /// A MESSAGE for a local user (`recipient`), from `sender`, received on server
    /// transaction `server`. The caller has already run the precheck, authenticated a
    /// local sender (`407`) and looked the recipient up; everything else is decided here:
    /// the rate limit (`503`), `404`, the body checks (`400`/`415`), relaying to every
    /// contact, or storing for later (`202` only once durable, `413`, `480`, `500`).
    pub fn handle_message(
        &mut self,
        now: Now,
        server: S,
        req: &Request,
        sender: Sender,
        recipient: Recipient,
    ) {
        if let Err(wait) = self.limiter.check(now.mono, &sender) {
            // Whole seconds, rounded up, at least 1 (Retry-After has no fractions).
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let secs = u32::try_from(secs).unwrap_or(u32::MAX).max(1);
            debug!(%sender, retry_after = secs, "MESSAGE over the sender's rate");
            self.outbox.stats_mut().refused.rate_limited += 1;
            let response = self.replies.rate_limited(req, secs);
            self.outbox.reply(server, response);
            return;
        }
        let (user, contacts) = match recipient {
            Recipient::Local { user, contacts } => (user, contacts),
            Recipient::Unknown => {
                self.outbox.stats_mut().refused.not_found += 1;
                let response = self.replies.not_found(req);
                self.outbox.reply(server, response);
                return;
            }
        };
        let body = match body::inspect(req) {
            Ok(b) => b,
            Err(e) => {
                self.outbox.stats_mut().refused.bad_body += 1;
                let response = self.replies.body_error(req, &e);
                self.outbox.reply(server, response);
                return;
            }
        };
        if contacts.is_empty() {
            self.stores.store(
                &mut self.outbox,
                &self.settings,
                &self.replies,
                now,
                server,
                req.clone(),
                user,
                &body,
                None,
            );
            return;
        }
        let max_forwards = match request::next_max_forwards(req) {
            Ok(n) => n,
            Err(ForwardError::TooManyHops) => {
                self.outbox.stats_mut().refused.too_many_hops += 1;
                let response = self.replies.too_many_hops(req);
                self.outbox.reply(server, response);
                return;
            }
        };
        self.relays.start(
            &mut self.outbox,
            &self.settings,
            now,
            server,
            req,
            user,
            body,
            &contacts,
            max_forwards,
        );
    }

    /// A response to a request mss sent ([`ImOutput::Send`]). Provisional responses are
    /// ignored; the final one (or the caller's `408` on timeout, `503` on a transport
    /// error) settles the branch. Responses for a finished relay or round are ignored.
    pub fn handle_response(&mut self, now: Now, token: RequestToken, rsp: &Response) {
        if rsp.status().is_provisional() {
            return;
        }
        let Some(owner) = self.outbox.answered(token) else {
            return;
        };
        match owner {
            SendOwner::Relay(id) => {
                let fallback = self
                    .relays
                    .answered(&mut self.outbox, &self.replies, now, id, rsp);
                if let Some(fallback) = fallback {
                    self.fall_back(fallback);
                }
            }
            SendOwner::Delivery { user, serial } => {
                let (out, settings) = (&mut self.outbox, &self.settings);
                self.deliveries
                    .answered(out, settings, now, &user, serial, rsp);
            }
        }
    }

    /// Stores a relayed message no contact took, as for an offline recipient, and tells
    /// its relay whether a write is in flight.
    fn fall_back(&mut self, fallback: Fallback<S>) {
        let Fallback {
            relay,
            server,
            request,
            recipient,
            body,
            arrival,
        } = fallback;
        let asked = self.stores.store(
            &mut self.outbox,
            &self.settings,
            &self.replies,
            arrival,
            server,
            request,
            recipient,
            &body,
            Some(relay),
        );
        self.relays.storing(relay, asked);
    }

    /// The outcome of a [`ImOutput::Store`]: `Stored` → `202 Accepted` (only now, as the
    /// message is durable, DESIGN §5), `Full` → `480 Offline Message Store Full`, an error
    /// → `500` with `Retry-After` (not accepted, so not lost by us).
    pub fn handle_stored(
        &mut self,
        _now: Now,
        token: StoreToken,
        result: Result<InsertOutcome, String>,
    ) {
        let Some(pending) = self.stores.finish(&mut self.outbox, token, &result) else {
            return;
        };
        if let Some(relay) = pending.relay() {
            let id = match &result {
                Ok(InsertOutcome::Stored(id)) => Some(*id),
                _ => None,
            };
            self.relays.copy_stored(&mut self.outbox, relay, id);
        }
        match &result {
            Ok(InsertOutcome::Stored(_)) => self.deliveries.message_stored(pending.recipient()),
            Ok(InsertOutcome::Full { .. }) => {}
            // A write that timed out may still land: the next registration looks.
            Err(_) => self.deliveries.message_maybe_stored(pending.recipient()),
        }
        pending.answer(&mut self.outbox, &self.settings, &self.replies, result);
    }

    /// `user` is reachable at `contacts` (`Location::contacts` after a REGISTER was
    /// committed). Call it after every successful REGISTER that leaves the user with
    /// contacts, refreshes included: it starts a delivery round unless one is running (then
    /// it only takes the new contacts and runs once more afterwards) or the user is known
    /// to have nothing stored (their last round emptied the store and nothing was stored
    /// since), so a refresh costs nothing when no message waits.
    pub fn handle_user_reachable(&mut self, now: Now, user: &str, contacts: Vec<ContactTarget>) {
        let (out, settings) = (&mut self.outbox, &self.settings);
        self.deliveries
            .user_reachable(out, settings, now, user, contacts);
    }

    /// The outcome of an [`ImOutput::Load`]: `user`'s stored messages (any order; they are
    /// sent by id, which is arrival order). An error ends the round.
    pub fn handle_loaded(
        &mut self,
        now: Now,
        user: &str,
        result: Result<Vec<StoredMessage>, String>,
    ) {
        let (out, settings) = (&mut self.outbox, &self.settings);
        self.deliveries.loaded(out, settings, now, user, result);
    }

    /// The outcome of an [`ImOutput::Delete`]: `Ok(true)` deleted, `Ok(false)` it was
    /// already gone (someone else deleted it), an error ends the round (the message was
    /// delivered but stays stored, so it may be delivered again: never lost).
    pub fn handle_deleted(&mut self, now: Now, id: i64, result: Result<bool, String>) {
        if self.relays.late_copy_deleted(id, &result) {
            return;
        }
        let (out, settings) = (&mut self.outbox, &self.settings);
        self.deliveries.deleted(out, settings, now, id, result);
    }

    /// Fires what is due at `now`: guards of results that never came, the periodic expiry
    /// sweep ([`ImOutput::Expire`]) and forgetting idle senders.
    pub fn handle_timeout(&mut self, now: Now) {
        while let Some(due) = self.outbox.pop_due(now.mono) {
            match due {
                Guarded::Send(token) => {
                    let timeout = Response::new(StatusCode::REQUEST_TIMEOUT, "Request Timeout");
                    // The guard is already gone; handle_response's disarm is a no-op.
                    self.handle_response(now, token, &timeout);
                }
                Guarded::Store(token) => {
                    self.handle_stored(now, token, Err("no answer from the store".into()));
                }
                Guarded::Round { user, serial } => {
                    let (out, settings) = (&mut self.outbox, &self.settings);
                    self.deliveries.stuck(out, settings, now, &user, serial);
                }
                Guarded::Relay(id) => {
                    let fallback = self
                        .relays
                        .timed_out(&mut self.outbox, &self.replies, now, id);
                    if let Some(fallback) = fallback {
                        self.fall_back(fallback);
                    }
                }
                Guarded::Expire => self.expiry.guard_fired(),
            }
        }
        if now.mono >= self.next_sweep_at {
            self.limiter.sweep(now.mono);
            self.next_sweep_at = later(now.mono, SENDER_SWEEP);
        }
        self.expiry.tick(&mut self.outbox, &self.settings, now);
        self.deliveries.bound_known_empty();
    }

    /// The outcome of an [`ImOutput::Expire`]: how many stored messages expired.
    pub fn handle_expired(&mut self, _now: Now, result: Result<u64, String>) {
        self.expiry.swept(&mut self.outbox, result);
    }

    /// Number of senders in the rate table (bounded by
    /// [`ImSettings::max_tracked_senders`]).
    pub fn tracked_senders(&self) -> usize {
        self.limiter.len()
    }

    /// Number of things in flight: relays, store writes, delivery rounds, requests sent.
    pub fn in_flight(&self) -> usize {
        self.relays.len()
            + self.stores.len()
            + self.deliveries.len()
            + self.outbox.awaiting_answers()
    }
}
