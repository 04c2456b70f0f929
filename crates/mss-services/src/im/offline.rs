//! Storing a MESSAGE for later: the length limit, the message's own expiry, and the `202`
//! that is sent only once the caller reports the message durable (DESIGN §5).

use mss_sip::{HeaderName, Request};
use std::time::{Duration, UNIX_EPOCH};

use mss_store::{InsertOutcome, NewMessage, UnixMillis};
use tracing::{debug, warn};

use crate::im::body::BodyInfo;
use crate::im::guards::later;
use crate::im::guards::{GuardKey, Guarded};
use crate::im::io::{ImOutput, StoreToken};
use crate::im::messaging::Messaging;
use crate::Now;

/// A MESSAGE waiting for its store write.
#[derive(Debug)]
pub(super) struct PendingStore<S> {
    server: S,
    request: Request,
    recipient: String,
    guard: GuardKey,
    /// The relay this message fell back from, if any (`relay.rs`).
    relay: Option<u64>,
}

impl<S> Messaging<S> {
    /// Stores `req` for `user` (offline, or every contact unreachable): `413` when too long,
    /// `480` when its own `Expires` has passed, else a [`ImOutput::Store`] whose outcome
    /// decides the answer. `now.unix_ms` is the arrival time. True when a store write was
    /// asked for.
    pub(super) fn store(
        &mut self,
        now: Now,
        server: S,
        req: Request,
        user: String,
        body: &BodyInfo,
        relay: Option<u64>,
    ) -> bool {
        let limit = self.settings.offline_max_chars;
        if body.chars > usize::try_from(limit).unwrap_or(usize::MAX) {
            self.outbox.stats_mut().refused.too_long += 1;
            let response = self.replies.too_long(&req, body.chars, limit);
            self.outbox.reply(server, response);
            return false;
        }
        let expires_at = expires_at(&req, now.unix_ms, self.settings.offline_ttl);
        if expires_at <= now.unix_ms {
            self.outbox.stats_mut().refused.expired += 1;
            let response = self.replies.expired(&req);
            self.outbox.reply(server, response);
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
        let token = StoreToken(self.outbox.fresh_id());
        let guard = self.outbox.arm(
            later(now.mono, self.settings.storage_guard),
            Guarded::Store(token),
        );
        self.stores.insert(
            token,
            PendingStore {
                server,
                request: req,
                recipient: user,
                guard,
                relay,
            },
        );
        self.outbox.push(ImOutput::Store {
            token,
            message,
            limit: self.settings.offline_max_messages,
        });
        true
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
        let Some(p) = self.stores.remove(&token) else {
            if let Ok(InsertOutcome::Stored(id)) = result {
                warn!(
                    id,
                    "a store write finished after its guard; the sender got a 500"
                );
            }
            return;
        };
        self.outbox.disarm(p.guard);
        if let Some(relay) = p.relay {
            let id = match result {
                Ok(InsertOutcome::Stored(id)) => Some(id),
                _ => None,
            };
            self.relay_stored(relay, id);
        }
        let response = match result {
            Ok(InsertOutcome::Stored(id)) => {
                debug!(id, user = %p.recipient, "message stored");
                self.outbox.stats_mut().stored += 1;
                self.known_empty.remove(&p.recipient);
                if let Some(s) = &mut self.stored_users {
                    s.insert(p.recipient.clone());
                }
                if let Some(round) = self.rounds.get_mut(&p.recipient) {
                    round.rerun = true;
                }
                self.replies.accepted(&p.request)
            }
            Ok(InsertOutcome::Full { stored }) => {
                self.outbox.stats_mut().refused.store_full += 1;
                self.replies.store_full(&p.request, stored)
            }
            Err(e) => {
                warn!(error = %e, user = %p.recipient, "storing a message failed");
                // A write that timed out may still land: the next registration looks.
                if let Some(s) = &mut self.stored_users {
                    s.insert(p.recipient.clone());
                }
                self.outbox.stats_mut().refused.store_error += 1;
                self.replies
                    .store_error(&p.request, self.settings.store_retry_after)
            }
        };
        self.outbox.reply(p.server, response);
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
    use bytes::Bytes;
    use mss_sip::{parse_datagram, Message};

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
