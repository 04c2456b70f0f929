//! What the messaging service is configured with: the `[im]` keys of `mss.ini` (DESIGN §2)
//! plus the few knobs the wiring chooses (our domain, guard timeouts, sweep intervals).

use std::time::Duration;

/// A per-sender rate: `rate` messages per `period`, with bursts of up to `burst` messages.
///
/// Enforced as a token bucket (in its GCRA form, see [`crate::im`] `rate.rs`): a sender that
/// was quiet has `burst` messages available at once, then one more every `period / rate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Messages allowed per `period` in the long run (at least 1).
    pub rate: u32,
    /// The period `rate` is counted over.
    pub period: Duration,
    /// Messages a quiet sender may send back to back (at least 1).
    pub burst: u32,
}

impl RateLimit {
    /// `rate` messages per second, bursts of `burst`.
    pub fn per_second(rate: u32, burst: u32) -> RateLimit {
        RateLimit {
            rate,
            period: Duration::from_secs(1),
            burst,
        }
    }

    /// The `rate_limit_per_minute` key of `[im]`: `n` messages per minute with bursts of `n`;
    /// `0` means no limit (`None`).
    pub fn per_minute(n: u32) -> Option<RateLimit> {
        (n > 0).then_some(RateLimit {
            rate: n,
            period: Duration::from_secs(60),
            burst: n,
        })
    }

    /// Time between two messages at the long-run rate (never zero).
    pub(crate) fn interval(&self) -> Duration {
        let per = self.period / self.rate.max(1);
        per.max(Duration::from_nanos(1))
    }
}

/// Settings of [`Messaging`](crate::im::Messaging).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImSettings {
    /// Our SIP domain: the host of the `To` URI of delivered messages and the `warn-agent`
    /// of our `Warning` headers.
    pub domain: String,
    /// The `sent-by` of the Via mss puts on the requests it sends (RFC 3261 §18.1.1), e.g.
    /// `pbx.example.com` or `192.0.2.10:5060`. Each Via also carries `rport` (RFC 3581), so
    /// UDP answers come back to the address the request left from whatever this says.
    pub via_host: String,
    /// Most stored messages per recipient (`offline_max_messages`, default 10).
    pub offline_max_messages: u32,
    /// Longest storable message in Unicode characters (`offline_max_chars`, default 199:
    /// a stored message must be under 200 characters).
    pub offline_max_chars: u32,
    /// How long a stored message waits before it expires (`offline_ttl`, default 7 days).
    pub offline_ttl: Duration,
    /// Per-sender rate of MESSAGE requests; `None` for no limit.
    pub rate_limit: Option<RateLimit>,
    /// Most senders whose rate is tracked at once (bounds memory; idle senders are
    /// forgotten first).
    pub max_tracked_senders: usize,
    /// How long a relayed MESSAGE waits for a contact's `2xx` before the silent contacts
    /// count as unreachable and the message is stored (`202`). Well under the sender's own
    /// 32 s (Timer F, RFC 3261 §17.1.2.2), so the sender is answered before it gives up.
    /// A contact that answers `2xx` later has the message: its stored copy is deleted.
    pub relay_timeout: Duration,
    /// How long a request mss sent may stay unanswered before the service gives up on it
    /// itself. The caller's client transaction reports a `408` after 64·T1 = 32 s
    /// (RFC 3261 §17.1.2.2); this guard only catches a result that never comes.
    pub request_guard: Duration,
    /// How long a store, load or delete may stay unanswered before the service gives up
    /// on it (a stuck disk): a pending `202` becomes a `500`, a delivery round ends.
    pub storage_guard: Duration,
    /// How often to ask the caller to delete expired stored messages ([`ImOutput::Expire`](crate::im::ImOutput::Expire)).
    pub expire_interval: Duration,
    /// `Retry-After` seconds on a `500` after a store error.
    pub store_retry_after: u32,
}

impl ImSettings {
    /// The defaults of DESIGN §2 for `domain`: 10 messages of at most 199 characters per
    /// user, kept 7 days; 20 messages per second per sender with bursts of 50; 10 000
    /// tracked senders; 10 s for a contact's `2xx`; the Via `sent-by` is the domain.
    pub fn new(domain: &str) -> ImSettings {
        ImSettings {
            domain: domain.to_owned(),
            via_host: domain.to_owned(),
            offline_max_messages: 10,
            offline_max_chars: 199,
            offline_ttl: Duration::from_secs(7 * 86_400),
            rate_limit: Some(RateLimit::per_second(20, 50)),
            max_tracked_senders: 10_000,
            relay_timeout: Duration::from_secs(10),
            request_guard: Duration::from_secs(40),
            storage_guard: Duration::from_secs(30),
            expire_interval: Duration::from_secs(60),
            store_retry_after: 10,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_minute_zero_is_unlimited() {
        assert_eq!(RateLimit::per_minute(0), None);
        let r = RateLimit::per_minute(60).unwrap();
        assert_eq!(r.interval(), Duration::from_secs(1));
        assert_eq!(r.burst, 60);
    }

    #[test]
    fn interval_never_zero() {
        let r = RateLimit {
            rate: u32::MAX,
            period: Duration::from_nanos(1),
            burst: 1,
        };
        assert!(r.interval() > Duration::ZERO);
        let zero = RateLimit {
            rate: 0,
            period: Duration::from_secs(1),
            burst: 1,
        };
        assert_eq!(zero.interval(), Duration::from_secs(1));
    }

    #[test]
    fn defaults_follow_the_design() {
        let s = ImSettings::new("pbx.example.com");
        assert_eq!(s.offline_max_messages, 10);
        assert_eq!(s.offline_max_chars, 199);
        assert_eq!(s.offline_ttl, Duration::from_secs(604_800));
        assert_eq!(s.via_host, "pbx.example.com");
    }
}
