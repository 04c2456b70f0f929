//! Per-sender rate limit: one token bucket per sender, in a table of bounded size.
//!
//! Each bucket is kept as a single instant, the "theoretical arrival time" of the generic
//! cell rate algorithm (GCRA), which is a token bucket written differently: a sender may send
//! when `tat - now <= (burst - 1) · interval`, and each message pushes `tat` one `interval`
//! later. A sender whose `tat` is in the past has a full bucket, exactly like a sender never
//! seen, so forgetting it changes nothing: that is how the table stays small.
//!
//! Beside the table, a min-heap orders the senders by `tat`, so forgetting the idle ones and
//! making room when the table is full cost `O(log n)` per sender instead of a scan of the
//! whole table: with more busy senders than the table holds, a scan per message made the
//! limiter the most expensive part of a relayed MESSAGE. The heap is lazy: a sender that
//! sends again gets a new entry and its old one is skipped when it comes up (its `tat` no
//! longer matches the table's).

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use crate::im::io::Sender;
use crate::im::settings::RateLimit;

/// A sender's `tat` as it was when the entry was pushed; ordered by `tat` alone.
#[derive(Debug)]
struct Due {
    tat: Instant,
    sender: Sender,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        self.tat == other.tat
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    fn cmp(&self, other: &Self) -> Ordering {
        self.tat.cmp(&other.tat)
    }
}

/// The buckets of every sender seen recently.
#[derive(Debug)]
pub(crate) struct SenderLimiter {
    /// The configured rate; `None` lets everything through and tracks nobody.
    limit: Option<RateLimit>,
    /// Most senders tracked at once.
    max: usize,
    /// Theoretical arrival time per sender (see the module docs).
    tat: HashMap<Sender, Instant>,
    /// Every `tat` set, earliest first; entries whose `tat` is no longer the table's are stale.
    by_tat: BinaryHeap<Reverse<Due>>,
}

impl SenderLimiter {
    /// A table for `limit`, tracking at most `max` senders (at least 1).
    pub(crate) fn new(limit: Option<RateLimit>, max: usize) -> SenderLimiter {
        SenderLimiter {
            limit,
            max: max.max(1),
            tat: HashMap::new(),
            by_tat: BinaryHeap::new(),
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
        let known = self.tat.get(sender).copied();
        let tat = known.unwrap_or(now).max(now);
        let ahead = tat - now;
        if ahead > tolerance {
            return Err(ahead - tolerance);
        }
        let next = tat.checked_add(interval).unwrap_or(tat);
        match self.tat.get_mut(sender) {
            Some(slot) => *slot = next,
            None => {
                if self.tat.len() >= self.max {
                    self.make_room(now);
                }
                self.tat.insert(sender.clone(), next);
            }
        }
        self.by_tat.push(Reverse(Due {
            tat: next,
            sender: sender.clone(),
        }));
        self.compact();
        Ok(())
    }

    /// Forgets every sender whose bucket is full again (it behaves as if never seen).
    pub(crate) fn sweep(&mut self, now: Instant) {
        while self
            .by_tat
            .peek()
            .is_some_and(|Reverse(due)| due.tat <= now)
        {
            self.pop_earliest();
        }
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
        while self.tat.len() >= self.max {
            if !self.pop_earliest() && self.by_tat.is_empty() {
                // Unreachable while every tracked sender has an entry; never loop forever.
                break;
            }
        }
    }

    /// Pops the earliest heap entry and forgets its sender if the entry is current; true
    /// when a sender was forgotten.
    fn pop_earliest(&mut self) -> bool {
        let Some(Reverse(due)) = self.by_tat.pop() else {
            return false;
        };
        if self.tat.get(&due.sender) == Some(&due.tat) {
            self.tat.remove(&due.sender);
            return true;
        }
        false
    }

    /// Rebuilds the heap from the table when stale entries outnumber current ones, so the
    /// heap stays within a constant factor of the table (amortized `O(1)` per message).
    fn compact(&mut self) {
        if self.by_tat.len() <= 2 * self.tat.len() + 64 {
            return;
        }
        self.by_tat = self
            .tat
            .iter()
            .map(|(sender, tat)| {
                Reverse(Due {
                    tat: *tat,
                    sender: sender.clone(),
                })
            })
            .collect();
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

    #[test]
    fn full_table_of_busy_senders_forgets_the_one_closest_to_a_full_bucket() {
        let t0 = Instant::now();
        // One message a second, bursts of 5: every sender below stays busy for seconds.
        let mut l = SenderLimiter::new(Some(RateLimit::per_second(1, 5)), 3);
        // user 1 sends three times (tat t0+3s), users 2 and 3 once (t0+1s).
        for _ in 0..3 {
            assert!(l.check(t0, &user(1)).is_ok());
        }
        assert!(l.check(t0, &user(2)).is_ok());
        assert!(l.check(t0 + Duration::from_millis(10), &user(3)).is_ok());
        // A fourth sender: user 2 has the earliest tat and goes.
        assert!(l.check(t0 + Duration::from_millis(20), &user(4)).is_ok());
        assert_eq!(l.len(), 3);
        assert!(l.tat.contains_key(&user(1)));
        assert!(!l.tat.contains_key(&user(2)));
        // user 1's bucket is remembered: two more fit, the third is refused.
        assert!(l.check(t0 + Duration::from_millis(30), &user(1)).is_ok());
        assert!(l.check(t0 + Duration::from_millis(30), &user(1)).is_ok());
        assert!(l.check(t0 + Duration::from_millis(30), &user(1)).is_err());
    }

    #[test]
    fn many_busy_senders_keep_table_and_heap_bounded() {
        let t0 = Instant::now();
        let mut l = SenderLimiter::new(Some(RateLimit::per_second(1, 10)), 100);
        for i in 0..20_000u32 {
            let now = t0 + Duration::from_micros(u64::from(i) * 50);
            // 1,000 senders take turns in a table of 100: each is forgotten before its
            // turn comes again, so each gets a fresh burst.
            assert!(l.check(now, &user(i % 1_000)).is_ok());
            assert!(l.len() <= 100);
            assert!(l.by_tat.len() <= 2 * l.len() + 65);
        }
        // Everyone idle again after a long pause: the sweep empties both.
        l.sweep(t0 + Duration::from_secs(3_600));
        assert_eq!(l.len(), 0);
        assert!(l.by_tat.is_empty());
    }

    #[test]
    fn sweep_keeps_busy_senders() {
        let t0 = Instant::now();
        let mut l = SenderLimiter::new(Some(RateLimit::per_second(1, 3)), 10);
        assert!(l.check(t0, &user(1)).is_ok());
        assert!(l.check(t0 + Duration::from_millis(900), &user(2)).is_ok());
        l.sweep(t0 + Duration::from_millis(1_500));
        assert_eq!(l.len(), 1);
        assert!(l.tat.contains_key(&user(2)));
    }
}
