//! Storing a MESSAGE for later: the length limit, the message's own expiry, and the `202`
//! that is sent only once the caller reports the message durable (DESIGN §5).
//!
//! [`PendingStores`] owns the store writes in flight. What a finished write means to the
//! rest of the service (a relay's copy, a user who now has messages waiting) is the
//! service's business: [`PendingStores::finish`] hands the pending message back, and
//! [`PendingStore::answer`] answers its sender.

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use mss_sip::{HeaderName, Request};
use mss_store::{InsertOutcome, NewMessage, UnixMillis};
use tracing::{debug, warn};

use crate::im::body::BodyInfo;
use crate::im::guards::{later, GuardKey, Guarded};
use crate::im::io::{ImOutput, StoreToken};
use crate::im::outbox::Outbox;
use crate::im::replies::Replies;
use crate::im::settings::ImSettings;
use crate::Now;

/// A MESSAGE waiting for its store write.
#[derive(Debug)]
pub(crate) struct PendingStore<S> {
    server: S,
    request: Request,
    recipient: String,
    guard: GuardKey,
    /// The relay this message fell back from, if any (`relay.rs`).
    relay: Option<u64>,
}

impl<S> PendingStore<S> {
    /// The relay this message fell back from, if any.
    pub(crate) fn relay(&self) -> Option<u64> {
        self.relay
    }

    /// Whom the message is for.
    pub(crate) fn recipient(&self) -> &str {
        &self.recipient
    }

    /// Answers the sender with the outcome of the write: `Stored` → `202 Accepted` (only
    /// now, as the message is durable, DESIGN §5), `Full` → `480 Offline Message Store
    /// Full`, an error → `500` with `Retry-After` (not accepted, so not lost by us).
    pub(crate) fn answer(
        self,
        out: &mut Outbox<S>,
        settings: &ImSettings,
        replies: &Replies,
        result: Result<InsertOutcome, String>,
    ) {
        let response = match result {
            Ok(InsertOutcome::Stored(id)) => {
                debug!(id, user = %self.recipient, "message stored");
                out.stats_mut().stored += 1;
                replies.accepted(&self.request)
            }
            Ok(InsertOutcome::Full { stored }) => {
                out.stats_mut().refused.store_full += 1;
                replies.store_full(&self.request, stored)
            }
            Err(e) => {
                warn!(error = %e, user = %self.recipient, "storing a message failed");
                out.stats_mut().refused.store_error += 1;
                replies.store_error(&self.request, settings.store_retry_after)
            }
        };
        out.reply(self.server, response);
    }
}

/// The store writes in flight, by token.
#[derive(Debug)]
pub(crate) struct PendingStores<S> {
    pending: HashMap<StoreToken, PendingStore<S>>,
}

impl<S> PendingStores<S> {
    /// No write in flight.
    pub(crate) fn new() -> PendingStores<S> {
        PendingStores {
            pending: HashMap::new(),
        }
    }

    /// Number of writes in flight.
    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }

    /// Stores `req` for `user` (offline, or every contact unreachable): `413` when too long,
    /// `480` when its own `Expires` has passed, else a [`ImOutput::Store`] whose outcome
    /// decides the answer. `now.unix_ms` is the arrival time. True when a store write was
    /// asked for.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn store(
        &mut self,
        out: &mut Outbox<S>,
        settings: &ImSettings,
        replies: &Replies,
        now: Now,
        server: S,
        req: Request,
        user: String,
        body: &BodyInfo,
        relay: Option<u64>,
    ) -> bool {
        let limit = settings.offline_max_chars;
        if body.chars > usize::try_from(limit).unwrap_or(usize::MAX) {
            out.stats_mut().refused.too_long += 1;
            let response = replies.too_long(&req, body.chars, limit);
            out.reply(server, response);
            return false;
        }
        let expires_at = expires_at(&req, now.unix_ms, settings.offline_ttl);
        if expires_at <= now.unix_ms {
            out.stats_mut().refused.expired += 1;
            let response = replies.expired(&req);
            out.reply(server, response);
            return false;
        }
        let h = req.headers();
        let text = |name: HeaderName| {
            h.get(&name)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        let message = NewMessage {
            recipient: user.clone(),
            sender: text(HeaderName::From).unwrap_or_default(),
            original_to: text(HeaderName::To),
            content_type: body.content_type.clone(),
            body: req.body().to_vec(),
            received_at: now.unix_ms,
            expires_at,
        };
        let token = StoreToken(out.fresh_id());
        let guard = out.arm(
            later(now.mono, settings.storage_guard),
            Guarded::Store(token),
        );
        self.pending.insert(
            token,
            PendingStore {
                server,
                request: req,
                recipient: user,
                guard,
                relay,
            },
        );
        out.push(ImOutput::Store {
            token,
            message,
            limit: settings.offline_max_messages,
        });
        true
    }

    /// Write `token` finished with `result`: its message (guard disarmed) for the service
    /// to settle and answer, or `None` when its guard fired already (the sender got a
    /// `500`; a write that landed anyway is logged).
    pub(crate) fn finish(
        &mut self,
        out: &mut Outbox<S>,
        token: StoreToken,
        result: &Result<InsertOutcome, String>,
    ) -> Option<PendingStore<S>> {
        let Some(pending) = self.pending.remove(&token) else {
            if let Ok(InsertOutcome::Stored(id)) = result {
                warn!(
                    id,
                    "a store write finished after its guard; the sender got a 500"
                );
            }
            return None;
        };
        out.disarm(pending.guard);
        Some(pending)
    }
}

/// When a message that arrived at `arrival` expires: `offline_ttl` after its arrival, or
/// earlier when the MESSAGE has its own `Expires` (RFC 3428 §7: seconds after its `Date`
/// when it has one, not after now, else after its arrival).
fn expires_at(req: &Request, arrival: UnixMillis, ttl: Duration) -> UnixMillis {
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    let by_ttl = arrival.saturating_add(ttl_ms);
    let h = req.headers();
    let Some(own_secs) = h.expires().ok().flatten() else {
        return by_ttl;
    };
    let start = h
        .date()
        .ok()
        .flatten()
        .and_then(|d| d.duration_since(UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .map_or(arrival, |date| date.min(arrival));
    by_ttl.min(start.saturating_add(i64::from(own_secs).saturating_mul(1000)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::im::body;
    use crate::im::tests::fixtures::{one, reply, text, Txn, T0_MS};
    use bytes::Bytes;
    use mss_sip::{parse_datagram, Message, StatusCode};
    use std::time::Instant;

    /// One table of writes with what its methods take.
    struct Env {
        settings: ImSettings,
        replies: Replies,
        out: Outbox<Txn>,
        stores: PendingStores<Txn>,
        now: Now,
    }

    impl Env {
        fn new() -> Env {
            let settings = ImSettings::new("pbx.example.com");
            Env {
                replies: Replies::new(&settings.domain),
                settings,
                out: Outbox::new(7),
                stores: PendingStores::new(),
                now: Now::new(Instant::now(), T0_MS),
            }
        }

        /// Asks to store `req` for 102 (fallen back from relay `relay`, if any).
        fn store(&mut self, server: Txn, req: &Request, relay: Option<u64>) -> bool {
            let Ok(body) = body::inspect(req) else {
                panic!("a bad body");
            };
            let user = "102".to_owned();
            let (out, settings, replies) = (&mut self.out, &self.settings, &self.replies);
            let (now, req) = (self.now, req.clone());
            self.stores
                .store(out, settings, replies, now, server, req, user, &body, relay)
        }

        /// Finishes the write `token` and answers its sender.
        fn finish(&mut self, token: StoreToken, result: Result<InsertOutcome, String>) {
            let Some(pending) = self.stores.finish(&mut self.out, token, &result) else {
                panic!("the write was pending");
            };
            pending.answer(&mut self.out, &self.settings, &self.replies, result);
        }
    }

    #[test]
    fn too_long_is_413_at_once_and_nothing_is_written() {
        let mut e = Env::new();
        e.settings.offline_max_chars = 3;
        assert!(!e.store(1, &text("four"), None));
        let (txn, rsp) = reply(one(e.out.drain()));
        assert_eq!((txn, rsp.status().as_u16()), (1, 413));
        assert_eq!((e.stores.len(), e.out.stats().refused.too_long), (0, 1));
        assert_eq!(e.out.next_guard_at(), None);
    }

    #[test]
    fn a_finished_write_hands_back_its_message_once_and_is_answered() {
        let mut e = Env::new();
        assert!(e.store(4, &text("hi"), Some(9)));
        let token = match one(e.out.drain()) {
            ImOutput::Store {
                token,
                message,
                limit,
            } => {
                assert_eq!((message.recipient.as_str(), limit), ("102", 10));
                token
            }
            other => panic!("expected Store, got {other:?}"),
        };
        assert_eq!(e.stores.len(), 1);
        let result = Ok(InsertOutcome::Full { stored: 10 });
        let Some(pending) = e.stores.finish(&mut e.out, token, &result) else {
            panic!("the write was pending");
        };
        assert_eq!((pending.relay(), pending.recipient()), (Some(9), "102"));
        assert_eq!((e.stores.len(), e.out.next_guard_at()), (0, None));
        assert!(
            e.out.drain().is_empty(),
            "answered only when the service says"
        );
        pending.answer(&mut e.out, &e.settings, &e.replies, result);
        let (txn, rsp) = reply(one(e.out.drain()));
        assert_eq!((txn, rsp.status().as_u16()), (4, 480));
        assert_eq!(e.out.stats().refused.store_full, 1);
        // A second outcome of the same write is nobody's.
        let again = Ok(InsertOutcome::Stored(3));
        assert!(e.stores.finish(&mut e.out, token, &again).is_none());
    }

    #[test]
    fn stored_is_202_and_failed_is_500_with_retry_after() {
        let mut e = Env::new();
        for (server, result, status) in [
            (2, Ok(InsertOutcome::Stored(1)), StatusCode::ACCEPTED),
            (
                3,
                Err("disk full".to_owned()),
                StatusCode::SERVER_INTERNAL_ERROR,
            ),
        ] {
            assert!(e.store(server, &text("hi"), None));
            let ImOutput::Store { token, .. } = one(e.out.drain()) else {
                panic!("expected Store");
            };
            e.finish(token, result);
            let (txn, rsp) = reply(one(e.out.drain()));
            assert_eq!((txn, rsp.status()), (server, status));
            let retry_after = rsp.headers().get_str(&HeaderName::RetryAfter);
            let wanted = if status.is_success() {
                None
            } else {
                Some("10")
            };
            assert_eq!(retry_after, Ok(wanted));
        }
        let st = e.out.stats();
        assert_eq!((st.stored, st.refused.store_error), (1, 1));
    }

    fn req(extra: &str) -> Request {
        let t = format!(
            "MESSAGE sip:102@pbx SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
             From: <sip:101@pbx>;tag=1\r\nTo: <sip:102@pbx>\r\nCall-ID: c\r\n\
             CSeq: 1 MESSAGE\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        match parse_datagram(Bytes::from(t)).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => panic!(),
        }
    }

    #[test]
    fn own_expiry_counts_from_date() {
        let week = Duration::from_secs(7 * 86_400);
        // 2010-11-13T23:29:00Z.
        let date_ms = 1_289_690_940_000;
        let arrival = date_ms + 5_000;
        assert_eq!(expires_at(&req(""), arrival, week), arrival + 604_800_000);
        assert_eq!(
            expires_at(&req("Expires: 60\r\n"), arrival, week),
            arrival + 60_000
        );
        let dated = "Date: Sat, 13 Nov 2010 23:29:00 GMT\r\nExpires: 60\r\n";
        assert_eq!(expires_at(&req(dated), arrival, week), date_ms + 60_000);
        // A Date in the future counts as the arrival.
        assert_eq!(
            expires_at(&req(dated), date_ms - 1_000, week),
            date_ms + 59_000
        );
        // Never longer than the TTL.
        let long = "Expires: 4294967295\r\n";
        assert_eq!(expires_at(&req(long), arrival, week), arrival + 604_800_000);
        assert_eq!(expires_at(&req(""), i64::MAX, week), i64::MAX);
    }
}
