//! The [`Messaging`] state machine: incoming MESSAGE requests, relaying to online users and
//! storing for offline ones. Delivery rounds live in `delivery.rs`, timers in `guards.rs`.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use mss_sip::{Request, Response, StatusCode};
use mss_store::InsertOutcome;
use tracing::debug;

use crate::im::body;
use crate::im::delivery::Round;
use crate::im::expiry::ExpirySweeps;
use crate::im::guards::{later, Guarded};
use crate::im::io::{ImOutput, Recipient, RequestToken, Sender, StoreToken};
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

/// Most users remembered as having an empty store (see `Messaging::known_empty`).
const MAX_KNOWN_EMPTY: usize = 100_000;

/// Instant messages (RFC 3428): relay to online users, the offline store, delivery on return.
///
/// See the [module docs](crate::im) for the run loop. `S` is the caller's handle of a
/// server transaction; it comes back in [`ImOutput::Reply`].
#[derive(Debug)]
pub struct Messaging<S> {
    pub(super) settings: ImSettings,
    pub(super) replies: Replies,
    /// The outputs, guards, ids, generator, counters and requests awaiting an answer.
    pub(super) outbox: Outbox<S>,
    limiter: SenderLimiter,
    pub(super) relays: Relays<S>,
    pub(super) stores: PendingStores<S>,
    /// One delivery round per user at most.
    pub(super) rounds: HashMap<String, Round>,
    /// Delete requests in flight: message id → recipient.
    pub(super) deleting: HashMap<i64, String>,
    /// Users whose last delivery round found nothing left, so a registration refresh needs
    /// no load. Forgotten when a message is stored for them.
    pub(super) known_empty: HashSet<String>,
    /// When the caller told the service who has stored messages
    /// ([`Messaging::set_stored_users`]): the users who may have some (stored since, or not
    /// yet emptied by a round). Anyone else needs no load at registration.
    pub(super) stored_users: Option<HashSet<String>>,
    next_sweep_at: Instant,
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
            rounds: HashMap::new(),
            deleting: HashMap::new(),
            known_empty: HashSet::new(),
            stored_users: None,
        }
    }

    /// Tells the service which users have stored messages (`Store::message_counts` at start,
    /// before any message is handled). From then on the service keeps that set itself (a
    /// user joins it when a message is stored for them and leaves it when a delivery round
    /// empties their store), and a registration of anyone else costs no load. Without this
    /// call every user's first registration loads.
    pub fn set_stored_users(&mut self, users: impl IntoIterator<Item = String>) {
        self.stored_users = Some(users.into_iter().collect());
    }

    /// Whether `user` may have stored messages: `false` only when known to have none.
    pub(super) fn may_have_stored(&self, user: &str) -> bool {
        if self.known_empty.contains(user) {
            return false;
        }
        match &self.stored_users {
            Some(users) => users.contains(user),
            None => true,
        }
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
                self.delivery_answered(now, &user, serial, rsp);
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
            let id = match result {
                Ok(InsertOutcome::Stored(id)) => Some(id),
                _ => None,
            };
            self.relays.copy_stored(&mut self.outbox, relay, id);
        }
        let user = pending.recipient();
        match &result {
            Ok(InsertOutcome::Stored(_)) => {
                self.known_empty.remove(user);
                if let Some(s) = &mut self.stored_users {
                    s.insert(user.to_owned());
                }
                if let Some(round) = self.rounds.get_mut(user) {
                    round.rerun = true;
                }
            }
            Ok(InsertOutcome::Full { .. }) => {}
            Err(_) => {
                // A write that timed out may still land: the next registration looks.
                if let Some(s) = &mut self.stored_users {
                    s.insert(user.to_owned());
                }
            }
        }
        pending.answer(&mut self.outbox, &self.settings, &self.replies, result);
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
                Guarded::Round { user, serial } => self.round_stuck(now, &user, serial),
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
        if self.known_empty.len() > MAX_KNOWN_EMPTY {
            self.known_empty.clear();
        }
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
        self.relays.len() + self.stores.len() + self.rounds.len() + self.outbox.awaiting_answers()
    }
}
