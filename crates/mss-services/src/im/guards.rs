//! Guard deadlines: every result the service waits for (a response, a store write, a load,
//! a delete, an expiry sweep) has one, so a result that never comes cannot hold a sender's
//! answer or a user's delivery round forever.
//!
//! One ordered map of `(deadline, key)` (mini-redis keeps expiries the same way): arming
//! returns the key, a result that comes in time disarms it, and the driver pops what is due.
//! [`later`] computes a deadline without overflowing the clock.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::im::io::{RequestToken, StoreToken};

/// What a guard protects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Guarded {
    /// A request mss sent: when due, it counts as a `408`.
    Send(RequestToken),
    /// A store write: when due, the sender gets a `500`.
    Store(StoreToken),
    /// A delivery round waiting for a load or a delete: when due, the round ends.
    Round {
        /// The recipient.
        user: String,
        /// Which round of theirs.
        serial: u64,
    },
    /// A relay waiting for a `2xx`: when due, the silent contacts count as unreachable.
    Relay(u64),
    /// An expiry sweep: when due, another may be asked for.
    Expire,
}

/// Identifies an armed guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct GuardKey {
    at: Instant,
    seq: u64,
}

/// The armed guards, earliest first.
#[derive(Debug, Default)]
pub(crate) struct Guards {
    armed: BTreeMap<GuardKey, Guarded>,
    next_seq: u64,
}

impl Guards {
    /// Arms a guard for `what`, due at `at`.
    pub(crate) fn arm(&mut self, at: Instant, what: Guarded) -> GuardKey {
        let key = GuardKey {
            at,
            seq: self.next_seq,
        };
        self.next_seq = self.next_seq.wrapping_add(1);
        self.armed.insert(key, what);
        key
    }

    /// Disarms a guard (a no-op when it already fired).
    pub(crate) fn disarm(&mut self, key: GuardKey) {
        self.armed.remove(&key);
    }

    /// The earliest deadline.
    pub(crate) fn next_at(&self) -> Option<Instant> {
        self.armed.keys().next().map(|k| k.at)
    }

    /// Removes and returns one guard due by `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Guarded> {
        let key = *self.armed.keys().next()?;
        if key.at > now {
            return None;
        }
        self.armed.remove(&key)
    }

    /// Number of armed guards.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.armed.len()
    }
}

/// `now + d`, or as late as the clock allows (a configured duration can be absurd; an
/// `Instant` overflow must not panic).
pub(crate) fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_deadline_order_and_skips_disarmed() {
        let t0 = Instant::now();
        let mut g = Guards::default();
        let a = g.arm(t0 + Duration::from_secs(2), Guarded::Expire);
        g.arm(t0 + Duration::from_secs(1), Guarded::Send(RequestToken(1)));
        g.arm(t0 + Duration::from_secs(1), Guarded::Store(StoreToken(2)));
        assert_eq!(g.next_at(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(g.pop_due(t0), None);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(g.pop_due(t1), Some(Guarded::Send(RequestToken(1))));
        assert_eq!(g.pop_due(t1), Some(Guarded::Store(StoreToken(2))));
        assert_eq!(g.pop_due(t1), None);
        g.disarm(a);
        g.disarm(a);
        assert_eq!(g.len(), 0);
        assert_eq!(g.pop_due(t0 + Duration::from_secs(9)), None);
    }
}
