//! Relaying a MESSAGE to an online recipient: every contact at once (RFC 3428 §6 forks
//! like any non-INVITE), the first `2xx` relayed back, and the fall-back to the offline
//! store when no contact takes it.
//!
//! Waiting for every contact's final answer can take 32 s (Timer F of a silent UDP
//! contact), exactly as long as the sender's own transaction lives, so the sender would
//! time out just as mss stores the message (and send it again). So after `relay_timeout`
//! without a `2xx`, the silent contacts count as unreachable and the message is stored
//! (`202`). A contact that still answers `2xx` afterwards has the message: its stored copy
//! is deleted again, so it is not delivered twice.

use mss_sip::{Request, Response, StatusCode};
use mss_store::UnixMillis;
use tracing::{debug, warn};

use crate::im::body::BodyInfo;
use crate::im::guards::later;
use crate::im::guards::{GuardKey, Guarded};
use crate::im::io::{ContactTarget, ImOutput};
use crate::im::messaging::Messaging;
use crate::im::outbox::SendOwner;
use crate::im::request;
use crate::Now;

/// Status codes after which a contact counts as unreachable rather than refusing: `408`
/// (also the caller's timeout), `480`, `503` (also a transport error, RFC 3261 §8.1.3.1).
/// When every contact is unreachable, the message is stored (DESIGN §3).
const UNREACHABLE: [u16; 3] = [408, 480, 503];

/// What became of a relayed message that was stored while contacts were still out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Copy {
    /// Not stored (yet), or its copy is gone.
    None,
    /// The store write is in flight.
    Storing,
    /// A contact answered `2xx` while the write was in flight: delete the copy once stored.
    StoringButDelivered,
    /// Stored with this id.
    Stored(i64),
}

/// A MESSAGE being relayed to its recipient's contacts.
#[derive(Debug)]
pub(crate) struct Relay<S> {
    /// The sender's server transaction, until the sender is answered.
    server: Option<S>,
    request: Request,
    recipient: String,
    body: BodyInfo,
    received_at: UnixMillis,
    /// Branches without a final answer yet.
    pending: usize,
    /// The best failure that is not "unreachable" (RFC 3261 §16.7 step 6), if any.
    refusal: Option<Response>,
    /// The offline copy, when the message was stored.
    copy: Copy,
    /// The `relay_timeout` guard, until the sender is answered.
    guard: Option<GuardKey>,
}

impl<S> Messaging<S> {
    /// Sends `req` to every contact at once.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn relay(
        &mut self,
        now: Now,
        server: S,
        req: &Request,
        user: String,
        body: BodyInfo,
        contacts: &[ContactTarget],
        max_forwards: u8,
    ) {
        let id = self.outbox.fresh_id();
        for contact in contacts {
            let branch = request::new_branch(self.outbox.rng());
            let out =
                request::forward(req, contact, max_forwards, &self.settings.via_host, &branch);
            let guard_at = later(now.mono, self.settings.request_guard);
            self.outbox
                .send(SendOwner::Relay(id), out, contact.flow, guard_at);
        }
        let guard = self.outbox.arm(
            later(now.mono, self.settings.relay_timeout),
            Guarded::Relay(id),
        );
        self.relays.insert(
            id,
            Relay {
                server: Some(server),
                request: req.clone(),
                recipient: user,
                body,
                received_at: now.unix_ms,
                pending: contacts.len(),
                refusal: None,
                copy: Copy::None,
                guard: Some(guard),
            },
        );
    }

    /// One branch of relay `id` answered `rsp` (final).
    pub(super) fn relay_answered(&mut self, now: Now, id: u64, rsp: &Response) {
        let Some(relay) = self.relays.get_mut(&id) else {
            return;
        };
        relay.pending = relay.pending.saturating_sub(1);
        let status = rsp.status();
        let mut late = false;
        if status.is_success() {
            if let Some(server) = relay.server.take() {
                // The first 2xx wins (RFC 3261 §16.7 step 5); later answers are ignored.
                if let Some(g) = relay.guard.take() {
                    self.outbox.disarm(g);
                }
                self.outbox.stats_mut().relayed += 1;
                let response = self.replies.relayed(&relay.request, rsp);
                self.outbox.push(ImOutput::Reply { server, response });
            } else {
                late = true;
            }
        } else if !UNREACHABLE.contains(&status.as_u16()) && better(rsp, relay.refusal.as_ref()) {
            relay.refusal = Some(rsp.clone());
        }
        let decide = relay.pending == 0 && relay.server.is_some();
        if late {
            self.late_delivery(id);
        }
        if decide {
            self.decide(now, id);
        }
        self.relay_cleanup(id);
    }

    /// `relay_timeout` passed without a `2xx`: decide with the answers so far.
    pub(super) fn relay_timeout(&mut self, now: Now, id: u64) {
        if let Some(relay) = self.relays.get_mut(&id) {
            relay.guard = None;
            if relay.server.is_some() {
                self.decide(now, id);
            }
        }
        self.relay_cleanup(id);
    }

    /// Answers the sender of relay `id` without a `2xx`: the best refusal if a contact
    /// refused, else store the message (every contact unreachable or silent).
    fn decide(&mut self, now: Now, id: u64) {
        let Some(relay) = self.relays.get_mut(&id) else {
            return;
        };
        let Some(server) = relay.server.take() else {
            return;
        };
        if let Some(g) = relay.guard.take() {
            self.outbox.disarm(g);
        }
        if let Some(best) = &relay.refusal {
            self.outbox.stats_mut().refused.by_recipient += 1;
            let response = self.replies.relayed(&relay.request, best);
            self.outbox.reply(server, response);
            return;
        }
        debug!(user = %relay.recipient, pending = relay.pending, "no contact took it; storing");
        let arrival = Now {
            unix_ms: relay.received_at,
            ..now
        };
        let (req, user, body) = (
            relay.request.clone(),
            relay.recipient.clone(),
            relay.body.clone(),
        );
        let asked = self.stores.store(
            &mut self.outbox,
            &self.settings,
            &self.replies,
            arrival,
            server,
            req,
            user,
            &body,
            Some(id),
        );
        if asked {
            if let Some(relay) = self.relays.get_mut(&id) {
                relay.copy = Copy::Storing;
            }
        }
    }

    /// A contact of relay `id` answered `2xx` after the sender was answered without one.
    fn late_delivery(&mut self, id: u64) {
        let Some(relay) = self.relays.get_mut(&id) else {
            return;
        };
        match relay.copy {
            Copy::Storing => relay.copy = Copy::StoringButDelivered,
            Copy::Stored(msg) => {
                relay.copy = Copy::None;
                self.delete_late_copy(msg);
            }
            Copy::StoringButDelivered | Copy::None => {}
        }
    }

    /// The store write of relay `id` finished: `Some(message id)` when stored.
    pub(super) fn relay_stored(&mut self, id: u64, stored: Option<i64>) {
        let Some(relay) = self.relays.get_mut(&id) else {
            return;
        };
        match (relay.copy, stored) {
            (Copy::StoringButDelivered, Some(msg)) => {
                relay.copy = Copy::None;
                self.delete_late_copy(msg);
            }
            (Copy::Storing, Some(msg)) => relay.copy = Copy::Stored(msg),
            _ => relay.copy = Copy::None,
        }
        self.relay_cleanup(id);
    }

    /// Deletes the stored copy `msg` of a message a contact accepted late.
    fn delete_late_copy(&mut self, msg: i64) {
        self.outbox.stats_mut().delivered_late += 1;
        self.late_deletes.insert(msg);
        self.outbox.push(ImOutput::Delete { id: msg });
    }

    /// The outcome of deleting a late copy.
    pub(super) fn late_copy_deleted(&mut self, msg: i64, result: Result<bool, String>) {
        if let Err(e) = result {
            warn!(id = msg, error = %e, "deleting the stored copy of a delivered message failed");
        }
    }

    /// Forgets relay `id` once nothing can change it any more.
    fn relay_cleanup(&mut self, id: u64) {
        let done = self.relays.get(&id).is_some_and(|r| {
            r.server.is_none()
                && !matches!(r.copy, Copy::Storing | Copy::StoringButDelivered)
                && (r.pending == 0 || r.copy == Copy::None)
        });
        if done {
            self.relays.remove(&id);
        }
    }
}

/// Whether `rsp` is a better final answer to pass on than `best` (RFC 3261 §16.7 step 6:
/// a 6xx wins, else the lowest class; the first of equals stays).
fn better(rsp: &Response, best: Option<&Response>) -> bool {
    let Some(best) = best else {
        return true;
    };
    let rank = |s: StatusCode| match s.class() {
        6 => 0,
        c => c,
    };
    rank(rsp.status()) < rank(best.status())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_hundreds_win_then_lowest_class() {
        let r = |c: u16| Response::new(StatusCode(c), "x");
        assert!(better(&r(486), None));
        assert!(better(&r(603), Some(&r(404))));
        assert!(!better(&r(404), Some(&r(603))));
        assert!(better(&r(404), Some(&r(500))));
        assert!(!better(&r(415), Some(&r(404))));
    }
}
