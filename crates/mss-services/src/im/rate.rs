//! Per-sender rate limit: one token bucket per sender, in a table of bounded size.
//!
//! Each bucket is kept as a single instant, the "theoretical arrival time" of the generic
//! cell rate algorithm (GCRA), which is a token bucket written differently: a sender may send
//! when `tat - now <= (burst - 1) · interval`, and each message pushes `tat` one `interval`
//! later. A sender whose `tat` is in the past has a full bucket, exactly like a sender never
//! seen, so forgetting it changes nothing: that is how the table stays small.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::im::io::Sender;
use crate::im::settings::RateLimit;

/// The buckets of every sender seen recently.
#[derive(Debug)]
pub(crate) struct SenderLimiter {
    /// The configured rate; `None` lets everything through and tracks nobody.
    limit: Option<RateLimit>,
    /// Most senders tracked at once.
    max: usize,
    /// Theoretical arrival time per sender (see the module docs).
    tat: HashMap<Sender, Instant>,
}

impl SenderLimiter {
    /// A table for `limit`, tracking at most `max` senders (at least 1).
    pub(crate) fn new(limit: Option<RateLimit>, max: usize) -> SenderLimiter {
        SenderLimiter {
            limit,
            max: max.max(1),
            tat: HashMap::new(),
        }
    }

    /// Takes one message from `sender`'s bucket. `Err` holds how long until the sender may
    /// send again.
    pub(crate) fn check(&mut self, now: Instant, sender: &Sender) -> Result<(), Duration> {
        let Some(limit) = self.limit else {
            return Ok(());
        };
        let interval = limit.interval();
        let tolerance = interval
            .checked_mul(limit.burst.max(1) - 1)
            .unwrap_or(Duration::MAX);
        let tat = self.tat.get(sender).copied().unwrap_or(now).max(now);
        let ahead = tat - now;
        if ahead > tolerance {
            return Err(ahead - tolerance);
        }
        let next = tat.checked_add(interval).unwrap_or(tat);
        if !self.tat.contains_key(sender) && self.tat.len() >= self.max {
            self.make_room(now);
        }
        self.tat.insert(sender.clone(), next);
        Ok(())
    }

    /// Forgets every sender whose bucket is full again (it behaves as if never seen).
    pub(crate) fn sweep(&mut self, now: Instant) {
        self.tat.retain(|_, tat| *tat > now);
    }

    /// Number of senders tracked.
    pub(crate) fn len(&self) -> usize {
        self.tat.len()
    }

    /// Frees one slot: idle senders go first; when every tracked sender is busy, the one
    /// closest to a full bucket is forgotten (it gets a fresh burst, which only happens
    /// when more than `max` senders are busy at the same moment).
    fn make_room(&mut self, now: Instant) {
        self.sweep(now);
        if self.tat.len() < self.max {
            return;
        }
        let oldest = self
            .tat
            .iter()
            .min_by_key(|(_, tat)| **tat)
            .map(|(s, _)| s.clone());
        if let Some(s) = oldest {
            self.tat.remove(&s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(n: u32) -> Sender {
        Sender::Local {
            user: n.to_string(),
        }
    }

    #[test]
    fn burst_then_steady_rate() {
        let t0 = Instant::now();
        let mut l = SenderLimiter::new(Some(RateLimit::per_second(10, 3)), 10);
        let s = user(1);
        for _ in 0..3 {
            assert!(l.check(t0, &s).is_ok());
        }
        let wait = l.check(t0, &s).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        // Another sender has its own bucket.
        assert!(l.check(t0, &user(2)).is_ok());
        // After one interval, exactly one more.
        let t1 = t0 + Duration::from_millis(100);
        assert!(l.check(t1, &s).is_ok());
        assert!(l.check(t1, &s).is_err());
        // Quiet long enough: the full burst again, and the sweep forgets both.
        let t2 = t0 + Duration::from_secs(5);
        l.sweep(t2);
        assert_eq!(l.len(), 0);
        for _ in 0..3 {
            assert!(l.check(t2, &s).is_ok());
        }
    }

    #[test]
    fn no_limit_tracks_nobody() {
        let mut l = SenderLimiter::new(None, 1);
        let t0 = Instant::now();
        for i in 0..100 {
            assert!(l.check(t0, &user(i)).is_ok());
        }
        assert_eq!(l.len(), 0);
    }

    #[test]
    fn table_stays_bounded() {
        let t0 = Instant::now();
        let mut l = SenderLimiter::new(Some(RateLimit::per_second(1, 1)), 4);
        for i in 0..1_000 {
            assert!(l.check(t0, &user(i)).is_ok());
            assert!(l.len() <= 4);
        }
        // A line and a user of the same name are different senders.
        let line = Sender::Line { name: "7".into() };
        assert!(l.check(t0, &line).is_ok());
        assert!(l.len() <= 4);
    }

    #[test]
    fn huge_burst_does_not_overflow() {
        let t0 = Instant::now();
        let limit = RateLimit {
            rate: 1,
            period: Duration::from_secs(u64::MAX / 4),
            burst: u32::MAX,
        };
        let mut l = SenderLimiter::new(Some(limit), 2);
        for _ in 0..5 {
            assert!(l.check(t0, &user(1)).is_ok());
        }
    }
}
