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
//!
//! [`Relays`] owns the relays in progress and the late deletes. It never stores anything
//! itself: when no contact took a message it hands a [`Fallback`] back to the service,
//! which asks the offline store and tells the relay with [`Relays::storing`]; the outcome
//! of that write comes back through [`Relays::copy_stored`].

use std::collections::{HashMap, HashSet};

use mss_sip::{Request, Response, StatusCode};
use mss_store::UnixMillis;
use tracing::{debug, warn};

use crate::im::body::BodyInfo;
use crate::im::guards::{later, GuardKey, Guarded};
use crate::im::io::{ContactTarget, ImOutput};
use crate::im::outbox::{Outbox, SendOwner};
use crate::im::replies::Replies;
use crate::im::request;
use crate::im::settings::ImSettings;
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
struct Relay<S> {
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

/// A relayed message no contact took: the service stores it as for an offline recipient,
/// then tells relay `relay` whether a write was asked for ([`Relays::storing`]).
#[derive(Debug)]
pub(crate) struct Fallback<S> {
    /// The relay it fell back from.
    pub(crate) relay: u64,
    /// The sender's server transaction, not answered yet.
    pub(crate) server: S,
    /// The MESSAGE as received.
    pub(crate) request: Request,
    /// Whom it is for.
    pub(crate) recipient: String,
    /// Its body, as inspected on arrival.
    pub(crate) body: BodyInfo,
    /// Now, with the wall clock at the message's arrival (what the store records).
    pub(crate) arrival: Now,
}

/// The relays in progress and the stored copies that a late `2xx` made obsolete.
#[derive(Debug)]
pub(crate) struct Relays<S> {
    live: HashMap<u64, Relay<S>>,
    /// Stored copies of relayed messages that a contact accepted late, being deleted.
    late_deletes: HashSet<i64>,
}

impl<S> Relays<S> {
    /// No relay in progress.
    pub(crate) fn new() -> Relays<S> {
        Relays {
            live: HashMap::new(),
            late_deletes: HashSet::new(),
        }
    }

    /// Number of relays in progress.
    pub(crate) fn len(&self) -> usize {
        self.live.len()
    }

    /// Sends `req` to every contact at once.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start(
        &mut self,
        out: &mut Outbox<S>,
        settings: &ImSettings,
        now: Now,
        server: S,
        req: &Request,
        user: String,
        body: BodyInfo,
        contacts: &[ContactTarget],
        max_forwards: u8,
    ) {
        let id = out.fresh_id();
        for contact in contacts {
            let branch = request::new_branch(out.rng());
            let copy = request::forward(req, contact, max_forwards, &settings.via_host, &branch);
            let guard_at = later(now.mono, settings.request_guard);
            out.send(SendOwner::Relay(id), copy, contact.flow, guard_at);
        }
        let guard = out.arm(later(now.mono, settings.relay_timeout), Guarded::Relay(id));
        self.live.insert(
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

    /// One branch of relay `id` answered `rsp` (final). A [`Fallback`] when that leaves no
    /// contact to wait for and none took the message.
    pub(crate) fn answered(
        &mut self,
        out: &mut Outbox<S>,
        replies: &Replies,
        now: Now,
        id: u64,
        rsp: &Response,
    ) -> Option<Fallback<S>> {
        let relay = self.live.get_mut(&id)?;
        relay.pending = relay.pending.saturating_sub(1);
        let status = rsp.status();
        let mut late = false;
        if status.is_success() {
            if let Some(server) = relay.server.take() {
                // The first 2xx wins (RFC 3261 §16.7 step 5); later answers are ignored.
                if let Some(g) = relay.guard.take() {
                    out.disarm(g);
                }
                out.stats_mut().relayed += 1;
                let response = replies.relayed(&relay.request, rsp);
                out.reply(server, response);
            } else {
                late = true;
            }
        } else if !UNREACHABLE.contains(&status.as_u16()) && better(rsp, relay.refusal.as_ref()) {
            relay.refusal = Some(rsp.clone());
        }
        let decide = relay.pending == 0 && relay.server.is_some();
        if late {
            self.late_delivery(out, id);
        }
        if decide {
            let fallback = self.decide(out, replies, now, id);
            if fallback.is_some() {
                // Kept until the service says whether it asked for a write (`storing`).
                return fallback;
            }
        }
        self.cleanup(id);
        None
    }

    /// `relay_timeout` passed without a `2xx` for relay `id`: decide with the answers so
    /// far. A [`Fallback`] when no contact refused.
    pub(crate) fn timed_out(
        &mut self,
        out: &mut Outbox<S>,
        replies: &Replies,
        now: Now,
        id: u64,
    ) -> Option<Fallback<S>> {
        if let Some(relay) = self.live.get_mut(&id) {
            relay.guard = None;
            if relay.server.is_some() {
                let fallback = self.decide(out, replies, now, id);
                if fallback.is_some() {
                    return fallback;
                }
            }
        }
        self.cleanup(id);
        None
    }

    /// Answers the sender of relay `id` without a `2xx`: the best refusal if a contact
    /// refused, else a [`Fallback`] to store (every contact unreachable or silent).
    fn decide(
        &mut self,
        out: &mut Outbox<S>,
        replies: &Replies,
        now: Now,
        id: u64,
    ) -> Option<Fallback<S>> {
        let relay = self.live.get_mut(&id)?;
        let server = relay.server.take()?;
        if let Some(g) = relay.guard.take() {
            out.disarm(g);
        }
        if let Some(best) = &relay.refusal {
            out.stats_mut().refused.by_recipient += 1;
            let response = replies.relayed(&relay.request, best);
            out.reply(server, response);
            return None;
        }
        debug!(user = %relay.recipient, pending = relay.pending, "no contact took it; storing");
        Some(Fallback {
            relay: id,
            server,
            request: relay.request.clone(),
            recipient: relay.recipient.clone(),
            body: relay.body.clone(),
            arrival: Now {
                unix_ms: relay.received_at,
                ..now
            },
        })
    }

    /// What the service made of the [`Fallback`] of relay `id`: `asked` when a store
    /// write is in flight, else the sender was refused (`413`, `480`).
    pub(crate) fn storing(&mut self, id: u64, asked: bool) {
        if asked {
            if let Some(relay) = self.live.get_mut(&id) {
                relay.copy = Copy::Storing;
            }
        }
        self.cleanup(id);
    }

    /// A contact of relay `id` answered `2xx` after the sender was answered without one.
    fn late_delivery(&mut self, out: &mut Outbox<S>, id: u64) {
        let Some(relay) = self.live.get_mut(&id) else {
            return;
        };
        match relay.copy {
            Copy::Storing => relay.copy = Copy::StoringButDelivered,
            Copy::Stored(msg) => {
                relay.copy = Copy::None;
                self.delete_late_copy(out, msg);
            }
            Copy::StoringButDelivered | Copy::None => {}
        }
    }

    /// The store write of relay `id` finished: `Some(message id)` when stored.
    pub(crate) fn copy_stored(&mut self, out: &mut Outbox<S>, id: u64, stored: Option<i64>) {
        let Some(relay) = self.live.get_mut(&id) else {
            return;
        };
        match (relay.copy, stored) {
            (Copy::StoringButDelivered, Some(msg)) => {
                relay.copy = Copy::None;
                self.delete_late_copy(out, msg);
            }
            (Copy::Storing, Some(msg)) => relay.copy = Copy::Stored(msg),
            _ => relay.copy = Copy::None,
        }
        self.cleanup(id);
    }

    /// Deletes the stored copy `msg` of a message a contact accepted late.
    fn delete_late_copy(&mut self, out: &mut Outbox<S>, msg: i64) {
        out.stats_mut().delivered_late += 1;
        self.late_deletes.insert(msg);
        out.push(ImOutput::Delete { id: msg });
    }

    /// The outcome of deleting stored message `msg`, if it was a late copy of a relay:
    /// `false` when it is not one of ours.
    pub(crate) fn late_copy_deleted(&mut self, msg: i64, result: &Result<bool, String>) -> bool {
        if !self.late_deletes.remove(&msg) {
            return false;
        }
        if let Err(e) = result {
            warn!(id = msg, error = %e, "deleting the stored copy of a delivered message failed");
        }
        true
    }

    /// Forgets relay `id` once nothing can change it any more.
    fn cleanup(&mut self, id: u64) {
        let done = self.live.get(&id).is_some_and(|r| {
            r.server.is_none()
                && !matches!(r.copy, Copy::Storing | Copy::StoringButDelivered)
                && (r.pending == 0 || r.copy == Copy::None)
        });
        if done {
            self.live.remove(&id);
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
    use crate::im::body;
    use crate::im::io::RequestToken;
    use crate::im::tests::fixtures::{answer, contact, one, reply, sends, text, Txn, T0_MS};
    use std::time::{Duration, Instant};

    /// A relay table with what its methods take, and the requests it sent.
    struct Env {
        settings: ImSettings,
        replies: Replies,
        out: Outbox<Txn>,
        relays: Relays<Txn>,
        now: Now,
        sent: Vec<(RequestToken, Request)>,
    }

    impl Env {
        /// Relays a MESSAGE from server transaction 1 to `n` contacts of 102.
        fn relaying_to(n: u8) -> Env {
            let settings = ImSettings::new("pbx.example.com");
            let mut e = Env {
                replies: Replies::new(&settings.domain),
                settings,
                out: Outbox::new(7),
                relays: Relays::new(),
                now: Now::new(Instant::now(), T0_MS),
                sent: Vec::new(),
            };
            let req = text("hi");
            let Ok(body) = body::inspect(&req) else {
                panic!("a bad body");
            };
            let contacts: Vec<_> = (1..=n).map(contact).collect();
            let (out, settings, now) = (&mut e.out, &e.settings, e.now);
            let user = "102".to_owned();
            e.relays
                .start(out, settings, now, 1, &req, user, body, &contacts, 69);
            e.sent = sends(e.out.drain())
                .into_iter()
                .map(|(token, request, _)| (token, request))
                .collect();
            assert_eq!((e.sent.len(), e.relays.len()), (usize::from(n), 1));
            e
        }

        /// Contact `i` answers `code`, routed as the service does.
        fn answer(&mut self, i: usize, code: u16) -> Option<Fallback<Txn>> {
            let (token, request) = &self.sent[i];
            let Some(SendOwner::Relay(id)) = self.out.answered(*token) else {
                panic!("not a relay's request");
            };
            let rsp = answer(request, code, "X");
            self.relays
                .answered(&mut self.out, &self.replies, self.now, id, &rsp)
        }

        /// The relay's `relay_timeout` fires.
        fn time_out(&mut self) -> Option<Fallback<Txn>> {
            self.now = self.now.after(self.settings.relay_timeout);
            let Some(Guarded::Relay(id)) = self.out.pop_due(self.now.mono) else {
                panic!("no relay guard due");
            };
            self.relays
                .timed_out(&mut self.out, &self.replies, self.now, id)
        }
    }

    #[test]
    fn the_first_2xx_is_relayed_and_the_relay_forgotten() {
        let mut e = Env::relaying_to(1);
        assert!(e.answer(0, 200).is_none());
        let (txn, rsp) = reply(one(e.out.drain()));
        assert_eq!((txn, rsp.status()), (1, StatusCode::OK));
        assert_eq!(e.out.stats().relayed, 1);
        assert_eq!((e.relays.len(), e.out.next_guard_at()), (0, None));
    }

    #[test]
    fn the_best_refusal_is_relayed_once_every_contact_answered() {
        let mut e = Env::relaying_to(2);
        assert!(e.answer(0, 486).is_none());
        assert!(e.out.drain().is_empty());
        assert!(e.answer(1, 603).is_none());
        let (_, rsp) = reply(one(e.out.drain()));
        assert_eq!(rsp.status().as_u16(), 603);
        assert_eq!(e.out.stats().refused.by_recipient, 1);
        assert_eq!(e.relays.len(), 0);
    }

    #[test]
    fn every_contact_unreachable_falls_back_and_a_refused_store_forgets_the_relay() {
        let mut e = Env::relaying_to(2);
        assert!(e.answer(0, 408).is_none());
        let Some(fallback) = e.answer(1, 503) else {
            panic!("no fallback");
        };
        assert!(
            e.out.drain().is_empty(),
            "the relay does not answer or store"
        );
        assert_eq!((fallback.server, fallback.recipient.as_str()), (1, "102"));
        assert_eq!(fallback.arrival.unix_ms, T0_MS);
        assert_eq!(fallback.request.body(), text("hi").body());
        assert_eq!(e.relays.len(), 1, "kept until the service says");
        e.relays.storing(fallback.relay, false);
        assert_eq!(e.relays.len(), 0);
    }

    #[test]
    fn a_late_2xx_after_the_copy_is_stored_asks_to_delete_it() {
        let mut e = Env::relaying_to(2);
        e.now = e.now.after(Duration::from_secs(3));
        let Some(fallback) = e.time_out() else {
            panic!("no fallback");
        };
        // Stored with the arrival time, not the time the relay gave up.
        assert_eq!(fallback.arrival.unix_ms, T0_MS);
        e.relays.storing(fallback.relay, true);
        e.relays.copy_stored(&mut e.out, fallback.relay, Some(5));
        assert!(e.out.drain().is_empty());
        assert!(e.answer(0, 200).is_none());
        assert!(matches!(one(e.out.drain()), ImOutput::Delete { id: 5 }));
        assert_eq!(e.out.stats().delivered_late, 1);
        // Only once, and the relay is done once the copy is gone.
        assert!(e.answer(1, 200).is_none());
        assert!(e.out.drain().is_empty());
        assert_eq!(e.relays.len(), 0);
        assert!(e.relays.late_copy_deleted(5, &Ok(true)));
        assert!(!e.relays.late_copy_deleted(5, &Ok(true)));
        assert!(!e.relays.late_copy_deleted(6, &Ok(true)));
    }

    #[test]
    fn a_2xx_during_the_write_deletes_the_copy_once_stored() {
        let mut e = Env::relaying_to(1);
        let Some(fallback) = e.time_out() else {
            panic!("no fallback");
        };
        e.relays.storing(fallback.relay, true);
        assert!(e.answer(0, 200).is_none());
        assert!(e.out.drain().is_empty(), "nothing to delete yet");
        assert_eq!(e.relays.len(), 1);
        e.relays.copy_stored(&mut e.out, fallback.relay, Some(6));
        assert!(matches!(one(e.out.drain()), ImOutput::Delete { id: 6 }));
        assert_eq!(e.relays.len(), 0);
    }

    #[test]
    fn a_failed_write_leaves_nothing_to_delete() {
        let mut e = Env::relaying_to(1);
        let Some(fallback) = e.time_out() else {
            panic!("no fallback");
        };
        e.relays.storing(fallback.relay, true);
        e.relays.copy_stored(&mut e.out, fallback.relay, None);
        assert!(e.answer(0, 200).is_none());
        assert!(e.out.drain().is_empty());
        assert_eq!((e.relays.len(), e.out.stats().delivered_late), (0, 0));
    }

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
