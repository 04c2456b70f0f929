//! The messaging part of the core: a MESSAGE request in, the sans-IO [`Messaging`] service
//! driven, its outputs carried out (DESIGN §3 "Instant messages", §5), the way the service's
//! run loop says (`mss_services::im`).
//!
//! - Admission (`messaging/admission.rs`): a local sender answers a `407` challenge from the
//!   digest guard of the shared `Directory` (the one REGISTER uses); a MESSAGE from a
//!   line's provider to the line's number goes to the line's owner unchallenged; who the
//!   recipient is.
//! - [`ImOutput::Reply`] → the server transaction's answer; [`ImOutput::Send`] → a client
//!   transaction owned by [`ClientOwner::Im`] (our Via's sent-by, written by the service,
//!   is our address towards the contact: [`contact_targets`] asks
//!   [`crate::Network::sent_by`] for it, RFC 3261 §18.1.1); its final response,
//!   its `408` on timeout, or a `503` made here on a transport error go back to the service;
//!   [`ImOutput::Store`], `Load`, `Delete`, `Expire` → [`crate::Output::Store`], the result
//!   back through [`ImThen`].
//! - After every committed REGISTER that leaves a user with live contacts, the registrar's
//!   part calls [`Core::im_user_registered`]: stored messages go out. The service knows
//!   who has any (`Store::message_counts` at start, then its own bookkeeping), so a user
//!   with nothing stored costs no store read.
//! - The service's counters go to `/metrics` (`mss_messages_total{outcome=…}`) after every
//!   change, as differences from what was published before.

use std::time::Instant;

use mss_admin::{MessageOutcome, Metrics};
use mss_services::im::{
    ContactTarget, ImOutput, ImSettings, ImStats, Messaging, RequestToken, StoreToken,
};
use mss_services::Now;
use mss_sip::{Flow, Request, Response, StatusCode};
use mss_txn::{ClientTransactionId, ServerTransactionId};

use crate::core::{ClientOwner, Core, Then};
use crate::input::StoreResult;
use crate::network::Network;
use crate::output::StoreOp;

mod admission;

pub(crate) use admission::addressed_to;

/// What to do when a store call of the messaging service finishes.
#[derive(Debug)]
pub(crate) enum ImThen {
    /// `insert_message_if_below` of the service's write `.0`.
    Stored(StoreToken),
    /// `list_messages` of this recipient.
    Loaded(String),
    /// `delete_message` of this message.
    Deleted(i64),
    /// `delete_expired_messages`.
    Expired,
}

/// The messaging part of the core: the service and the counters already published.
#[derive(Debug)]
pub(crate) struct Im {
    service: Messaging<ServerTransactionId>,
    published: ImStats,
}

impl Im {
    /// The service with `settings`, started at `now`; `seed` seeds its randomness.
    pub(crate) fn new(settings: ImSettings, now: Now, seed: u64) -> Im {
        Im {
            service: Messaging::new(now, settings, seed),
            published: ImStats::default(),
        }
    }

    /// Who has stored messages at start: a registration of anyone else needs no store read
    /// until a message is stored for them.
    pub(crate) fn set_stored_users(&mut self, users: impl IntoIterator<Item = String>) {
        self.service.set_stored_users(users);
    }

    /// When the service wants [`Core::im_on_timeout`] next.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.service.poll_timeout()
    }

    /// Adds what the service counted since the last call to `metrics`.
    fn publish(&mut self, metrics: &Metrics) {
        let now = *self.service.stats();
        publish_delta(metrics, &self.published, &now);
        self.published = now;
    }
}

/// Adds to `metrics` the outcomes counted between `before` and `now`.
fn publish_delta(metrics: &Metrics, before: &ImStats, now: &ImStats) {
    let delivered = |s: &ImStats| s.relayed + s.delivered + s.delivered_late;
    for (outcome, n) in [
        (
            MessageOutcome::Stored,
            now.stored.saturating_sub(before.stored),
        ),
        (
            MessageOutcome::Delivered,
            delivered(now).saturating_sub(delivered(before)),
        ),
        (
            MessageOutcome::Expired,
            now.expired.saturating_sub(before.expired),
        ),
        (
            MessageOutcome::Refused,
            now.refused.total().saturating_sub(before.refused.total()),
        ),
    ] {
        metrics.message_n(outcome, n);
    }
}

/// Where `user` can be reached now, each contact with our address towards it (the
/// sent-by of the Via of requests mss sends there, RFC 3261 §18.1.1).
pub(crate) fn contact_targets(
    location: &mss_services::registrar::Location,
    network: &dyn Network,
    user: &str,
    now: Now,
) -> Vec<ContactTarget> {
    location
        .contacts(user, now.mono)
        .into_iter()
        .map(|c| {
            let mut t = ContactTarget::from(c);
            t.sent_by = network.sent_by(t.flow.transport, t.flow.remote);
            t
        })
        .collect()
}

impl Core {
    /// `user`'s REGISTER was committed: if it has live contacts, stored messages go out
    /// (the service starts a delivery round unless one runs or nothing is stored).
    pub(crate) fn im_user_registered(&mut self, now: Now, user: &str) {
        let contacts = contact_targets(&self.directory.location, &*self.network, user, now);
        if contacts.is_empty() {
            return;
        }
        self.im.service.handle_user_reachable(now, user, contacts);
        self.drain_im(now);
    }

    /// A response, a timeout (`408`) or a transport error (`None`, a `503` here, RFC 3261
    /// §8.1.3.1) of a request the service sent.
    pub(crate) fn on_im_client_event(
        &mut self,
        now: Now,
        id: ClientTransactionId,
        token: RequestToken,
        response: Option<Response>,
    ) {
        let rsp = response.unwrap_or_else(|| {
            Response::new(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
        });
        if rsp.status().is_final() {
            // The transaction absorbs retransmissions itself; nothing more is routed to it.
            self.clients.remove(&id);
        }
        self.im.service.handle_response(now, token, &rsp);
        self.drain_im(now);
    }

    /// A store call of the service finished.
    pub(crate) fn on_im_stored(&mut self, now: Now, then: ImThen, result: StoreResult) {
        let s = &mut self.im.service;
        let err = |e: mss_store::StoreError| e.to_string();
        match (then, result) {
            (ImThen::Stored(token), StoreResult::Inserted(r)) => {
                s.handle_stored(now, token, r.map_err(err));
            }
            (ImThen::Loaded(user), StoreResult::Messages(r)) => {
                s.handle_loaded(now, &user, r.map_err(err));
            }
            (ImThen::Deleted(id), StoreResult::Deleted(r)) => {
                s.handle_deleted(now, id, r.map_err(err));
            }
            (ImThen::Expired, StoreResult::Count(r)) => s.handle_expired(now, r.map_err(err)),
            (then, other) => {
                self.wrong_result("messaging", &other);
                // The service's guard deadline turns the missing result into a failure.
                tracing::debug!(?then, "messaging store result dropped");
            }
        }
        self.drain_im(now);
    }

    /// Fires the service's due timers.
    pub(crate) fn im_on_timeout(&mut self, now: Now) {
        if self.im.poll_timeout().is_some_and(|t| t <= now.mono) {
            self.im.service.handle_timeout(now);
            self.drain_im(now);
        }
    }

    /// Carries out everything the service asked for, then publishes its counters.
    pub(crate) fn drain_im(&mut self, now: Now) {
        while let Some(out) = self.im.service.poll_output() {
            match out {
                ImOutput::Reply { server, response } => self.respond(now, server, response),
                ImOutput::Send {
                    token,
                    request,
                    flow,
                } => self.im_send(now, token, request, flow),
                ImOutput::Store {
                    token,
                    message,
                    limit,
                } => {
                    let op = StoreOp::InsertMessageIfBelow { message, limit };
                    self.store(op, Then::Im(ImThen::Stored(token)));
                }
                ImOutput::Load { user, now: at } => {
                    let op = StoreOp::ListMessages {
                        user: user.clone(),
                        now: at,
                    };
                    self.store(op, Then::Im(ImThen::Loaded(user)));
                }
                ImOutput::Delete { id } => {
                    self.store(StoreOp::DeleteMessage { id }, Then::Im(ImThen::Deleted(id)));
                }
                ImOutput::Expire { now: at } => {
                    let op = StoreOp::DeleteExpiredMessages { now: at };
                    self.store(op, Then::Im(ImThen::Expired));
                }
            }
        }
        self.im.publish(&self.metrics);
    }

    /// Starts the client transaction of a request the service sends over `flow`; a request
    /// the transaction layer refuses counts as a transport error (`503`).
    fn im_send(&mut self, now: Now, token: RequestToken, request: Request, flow: Flow) {
        match self.txns.send_request(now.mono, request, flow) {
            Ok(id) => {
                self.clients.insert(id, ClientOwner::Im(token));
            }
            Err(e) => {
                tracing::debug!(peer = %flow, error = %e, "MESSAGE not sent");
                let rsp = Response::new(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
                // Its outputs are drained by the caller's loop.
                self.im.service.handle_response(now, token, &rsp);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_published_as_differences() {
        let metrics = Metrics::new();
        let mut now = ImStats::default();
        publish_delta(&metrics, &ImStats::default(), &now);
        let before = now;
        now.stored = 2;
        now.relayed = 1;
        now.delivered = 2;
        now.delivered_late = 1;
        now.expired = 3;
        now.refused.store_full = 1;
        now.refused.not_found = 1;
        publish_delta(&metrics, &before, &now);
        publish_delta(&metrics, &now, &now);
        let text = metrics.render();
        for (outcome, n) in [
            ("stored", 2),
            ("delivered", 4),
            ("expired", 3),
            ("refused", 2),
        ] {
            assert!(
                text.contains(&format!(
                    "mss_messages_total{{outcome=\"{outcome}\"}} {n}\n"
                )),
                "{outcome}: {text}"
            );
        }
    }
}
