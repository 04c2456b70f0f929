//! Nonce-count tracking against replayed credentials (RFC 7616 §3.4 "nc",
//! §5.5): "if the same nc value is seen twice, then the request is a replay".
//!
//! For each nonce that has been used successfully, the table keeps the
//! highest `nc` seen and a 64-bit window of the counts just below it, so a
//! count is accepted once even when requests arrive slightly out of order
//! (UDP), and refused the second time. Counts more than 64 below the
//! highest are refused outright.
//!
//! Memory is bounded: entries of expired nonces are dropped (an expired
//! nonce is answered `stale` anyway, so its counts no longer matter), and
//! when the table is still full the oldest entry is evicted. Entries are kept
//! in the order they were made, a nonce's first use, which follows the order
//! the nonces were issued in all but a few places (a client answers a
//! challenge within moments): a ring of fixed-size items, where a tree ordered
//! by issue time cost an allocation every few nonces and a third of the
//! table's time. Eviction must not reopen a nonce to replays, so the table
//! remembers the latest issue time of any evicted nonce (the "floor"): a nonce
//! issued at or before the floor that has no entry is reported
//! [`CountCheck::Forgotten`] and the client gets a fresh nonce. That holds
//! whatever the order of eviction.

use std::collections::{HashMap, VecDeque};

use ahash::RandomState;
use sha2::{Digest, Sha256};

use crate::nonce::NonceKey;

/// Default cap on the number of nonces tracked.
pub const DEFAULT_MAX_TRACKED_NONCES: usize = 65_536;

/// Width of the out-of-order window below the highest count.
const WINDOW: u32 = 64;

/// How one use of a nonce is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceUse {
    /// `qop=auth` with this `nc`.
    Count(u32),
    /// No `qop` (RFC 2617 §3.2.2 compatibility): allowed once per nonce.
    NoQop,
}

/// Outcome of [`NonceCounts::check_and_record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountCheck {
    /// First use of this count: recorded.
    Accepted,
    /// Seen before (or too far below the highest count): a replay.
    Replayed,
    /// The nonce's entry was evicted under memory pressure: its history is
    /// unknown, so it must be replaced (answer as stale).
    Forgotten,
}

#[derive(Debug, Clone)]
struct Entry {
    /// Highest `nc` accepted (0 when only a qop-less use was seen).
    highest: u32,
    /// Bit `i` set: `highest - i` was accepted.
    window: u64,
    /// A qop-less use was accepted.
    no_qop_used: bool,
}

/// A bounded table of nonce counts, keyed by nonce.
///
/// An entry is keyed by 16 bytes, not by the nonce text: the server passes the
/// nonce's MAC (unique to it, and only recorded once the HMAC and the digest
/// were verified), [`NonceCounts::check_and_record`] the first half of the
/// SHA-256 of the text. Fixed-size keys cost no allocation per nonce. The map
/// hashes with a randomly seeded `ahash`: a peer can neither choose a MAC nor
/// predict the seed, so it cannot aim keys at one bucket.
#[derive(Debug, Clone)]
pub struct NonceCounts {
    entries: HashMap<NonceKey, Entry, RandomState>,
    /// `(issued_at, key)` of every entry, in the order the entries were made:
    /// expiry and eviction take from the front.
    by_age: VecDeque<(u64, NonceKey)>,
    max_entries: usize,
    /// Issue time of the newest evicted nonce.
    floor: Option<u64>,
}

impl NonceCounts {
    /// An empty table holding at most `max_entries` nonces (at least one).
    pub fn new(max_entries: usize) -> NonceCounts {
        NonceCounts {
            entries: HashMap::with_hasher(RandomState::new()),
            by_age: VecDeque::new(),
            max_entries: max_entries.max(1),
            floor: None,
        }
    }

    /// Number of nonces tracked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// `true` when no nonce is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Checks one use of an authentic, fresh nonce and records it if new.
    /// Call only after the digest was verified, so that a wrong guess
    /// cannot burn a legitimate client's counts.
    pub fn check_and_record(
        &mut self,
        nonce: &str,
        issued_at: u64,
        use_: NonceUse,
        now_unix_secs: u64,
        lifetime_secs: u64,
    ) -> CountCheck {
        let digest = Sha256::digest(nonce.as_bytes());
        let mut key = NonceKey::default();
        for (k, d) in key.iter_mut().zip(digest) {
            *k = d;
        }
        self.check_and_record_key(key, issued_at, use_, now_unix_secs, lifetime_secs)
    }

    /// As [`NonceCounts::check_and_record`] for a nonce known by its key (its MAC).
    pub(crate) fn check_and_record_key(
        &mut self,
        key: NonceKey,
        issued_at: u64,
        use_: NonceUse,
        now_unix_secs: u64,
        lifetime_secs: u64,
    ) -> CountCheck {
        if let Some(entry) = self.entries.get_mut(&key) {
            return record(entry, use_);
        }
        if self.floor.is_some_and(|floor| issued_at <= floor) {
            return CountCheck::Forgotten;
        }
        if self.entries.len() >= self.max_entries {
            self.purge_expired(now_unix_secs, lifetime_secs);
        }
        while self.entries.len() >= self.max_entries {
            let Some((oldest_at, oldest)) = self.by_age.pop_front() else {
                break;
            };
            self.entries.remove(&oldest);
            self.floor = Some(self.floor.map_or(oldest_at, |f| f.max(oldest_at)));
        }
        if self.floor.is_some_and(|floor| issued_at <= floor) {
            // Evicting made room only by forgetting nonces at least as new
            // as this one.
            return CountCheck::Forgotten;
        }
        let mut entry = Entry {
            highest: 0,
            window: 0,
            no_qop_used: false,
        };
        let outcome = record(&mut entry, use_);
        self.by_age.push_back((issued_at, key));
        self.entries.insert(key, entry);
        outcome
    }

    /// Drops the entries of nonces older than their lifetime at `now`, from the
    /// oldest entry up to the first one still alive (an expired entry made after a
    /// live one waits for the next purge, or for eviction).
    pub fn purge_expired(&mut self, now_unix_secs: u64, lifetime_secs: u64) {
        let cutoff = now_unix_secs.saturating_sub(lifetime_secs);
        while let Some(&(issued_at, nonce)) = self.by_age.front() {
            if issued_at >= cutoff {
                break;
            }
            self.by_age.pop_front();
            self.entries.remove(&nonce);
        }
        if self.by_age.capacity() > 64 && self.by_age.len() * 4 < self.by_age.capacity() {
            self.by_age.shrink_to(self.by_age.len() * 2);
        }
    }
}

fn record(entry: &mut Entry, use_: NonceUse) -> CountCheck {
    match use_ {
        NonceUse::NoQop => {
            if entry.no_qop_used {
                return CountCheck::Replayed;
            }
            entry.no_qop_used = true;
            CountCheck::Accepted
        }
        NonceUse::Count(0) => CountCheck::Replayed,
        NonceUse::Count(nc) if nc > entry.highest => {
            let shift = nc - entry.highest;
            entry.window = if shift >= WINDOW {
                0
            } else {
                entry.window << shift
            };
            entry.window |= 1;
            entry.highest = nc;
            CountCheck::Accepted
        }
        NonceUse::Count(nc) => {
            let behind = entry.highest - nc;
            if behind >= WINDOW {
                return CountCheck::Replayed;
            }
            let bit = 1u64 << behind;
            if entry.window & bit != 0 {
                return CountCheck::Replayed;
            }
            entry.window |= bit;
            CountCheck::Accepted
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    proptest! {
        /// Whatever the order, a (nonce, nc) pair is accepted at most once
        /// and the table never exceeds its cap.
        #[test]
        fn each_count_accepted_at_most_once(
            uses in proptest::collection::vec((0u8..6, 0u32..150), 0..300),
            cap in 1usize..5,
        ) {
            let mut t = NonceCounts::new(cap);
            let mut accepted = HashSet::new();
            for (nonce, nc) in uses {
                let name = format!("n{nonce}");
                let outcome = t.check_and_record(&name, u64::from(nonce), NonceUse::Count(nc), 10, 300);
                if outcome == CountCheck::Accepted {
                    prop_assert!(accepted.insert((nonce, nc)), "accepted twice: {nonce} {nc}");
                }
                prop_assert!(t.len() <= cap);
            }
        }
    }

    const LIFE: u64 = 300;

    #[test]
    fn same_count_twice_is_a_replay() {
        let mut t = NonceCounts::new(10);
        assert_eq!(
            t.check_and_record("n", 0, NonceUse::Count(1), 0, LIFE),
            CountCheck::Accepted
        );
        assert_eq!(
            t.check_and_record("n", 0, NonceUse::Count(1), 0, LIFE),
            CountCheck::Replayed
        );
        assert_eq!(
            t.check_and_record("n", 0, NonceUse::Count(2), 0, LIFE),
            CountCheck::Accepted
        );
        assert_eq!(
            t.check_and_record("n", 0, NonceUse::Count(0), 0, LIFE),
            CountCheck::Replayed
        );
    }

    #[test]
    fn out_of_order_within_window_once() {
        let mut t = NonceCounts::new(10);
        assert_eq!(
            t.check_and_record("n", 0, NonceUse::Count(5), 0, LIFE),
            CountCheck::Accepted
        );
        assert_eq!(
            t.check_and_record("n", 0, NonceUse::Count(3), 0, LIFE),
            CountCheck::Accepted
        );
        assert_eq!(
            t.check_and_record("n", 0, NonceUse::Count(3), 0, LIFE),
            CountCheck::Replayed
        );
        assert_eq!(
            t.check_and_record("n", 0, NonceUse::Count(200), 0, LIFE),
            CountCheck::Accepted
        );
        assert_eq!(
            t.check_and_record("n", 0, NonceUse::Count(100), 0, LIFE),
            CountCheck::Replayed
        );
        assert_eq!(
            t.check_and_record("n", 0, NonceUse::Count(199), 0, LIFE),
            CountCheck::Accepted
        );
        assert_eq!(
            t.check_and_record("n", 0, NonceUse::Count(u32::MAX), 0, LIFE),
            CountCheck::Accepted
        );
        assert_eq!(
            t.check_and_record("n", 0, NonceUse::Count(u32::MAX), 0, LIFE),
            CountCheck::Replayed
        );
    }

    #[test]
    fn no_qop_once_per_nonce() {
        let mut t = NonceCounts::new(10);
        assert_eq!(
            t.check_and_record("n", 0, NonceUse::NoQop, 0, LIFE),
            CountCheck::Accepted
        );
        assert_eq!(
            t.check_and_record("n", 0, NonceUse::NoQop, 0, LIFE),
            CountCheck::Replayed
        );
    }

    #[test]
    fn expired_entries_are_purged() {
        let mut t = NonceCounts::new(10);
        t.check_and_record("old", 0, NonceUse::Count(1), 0, LIFE);
        t.check_and_record("new", 250, NonceUse::Count(1), 250, LIFE);
        t.purge_expired(400, LIFE);
        assert_eq!(t.len(), 1);
        t.purge_expired(10_000, LIFE);
        assert!(t.is_empty());
    }

    #[test]
    fn bounded_and_evicted_nonces_are_not_replayable() {
        let mut t = NonceCounts::new(3);
        for i in 0..3u64 {
            let n = format!("n{i}");
            assert_eq!(
                t.check_and_record(&n, i, NonceUse::Count(1), i, LIFE),
                CountCheck::Accepted
            );
        }
        // Full, nothing expired: the oldest (n0) is evicted.
        assert_eq!(
            t.check_and_record("n3", 3, NonceUse::Count(1), 3, LIFE),
            CountCheck::Accepted
        );
        assert_eq!(t.len(), 3);
        // n0 cannot be replayed from a clean slate.
        assert_eq!(
            t.check_and_record("n0", 0, NonceUse::Count(1), 3, LIFE),
            CountCheck::Forgotten
        );
        // A flood of new nonces never grows the table past its cap.
        for i in 4..1_000u64 {
            t.check_and_record(&format!("n{i}"), i, NonceUse::Count(1), i, LIFE);
            assert!(t.len() <= 3);
        }
    }

    #[test]
    fn eviction_in_order_of_first_use_keeps_evicted_nonces_refused() {
        let mut t = NonceCounts::new(2);
        // "late" was issued after "early" but used first.
        let ok = CountCheck::Accepted;
        assert_eq!(
            t.check_and_record("late", 5, NonceUse::Count(1), 6, LIFE),
            ok
        );
        assert_eq!(
            t.check_and_record("early", 1, NonceUse::Count(1), 6, LIFE),
            ok
        );
        assert_eq!(t.check_and_record("x", 6, NonceUse::Count(1), 6, LIFE), ok);
        // "late", the first entry made, was evicted: refused, whatever its count.
        assert_eq!(
            t.check_and_record("late", 5, NonceUse::Count(2), 6, LIFE),
            CountCheck::Forgotten
        );
        // "early" kept its entry: its counts are still checked.
        assert_eq!(
            t.check_and_record("early", 1, NonceUse::Count(1), 6, LIFE),
            CountCheck::Replayed
        );
        assert_eq!(
            t.check_and_record("early", 1, NonceUse::Count(2), 6, LIFE),
            ok
        );
    }

    #[test]
    fn purge_makes_room_before_eviction() {
        let mut t = NonceCounts::new(1);
        t.check_and_record("a", 0, NonceUse::Count(1), 0, LIFE);
        // At 1000 "a" has expired, so "b" fits without evicting anything.
        assert_eq!(
            t.check_and_record("b", 900, NonceUse::Count(1), 1_000, LIFE),
            CountCheck::Accepted
        );
        assert_eq!(
            t.check_and_record("c", 950, NonceUse::Count(1), 1_000, LIFE),
            CountCheck::Accepted
        );
        // "b" was evicted for "c": forgotten, not replayable.
        assert_eq!(
            t.check_and_record("b", 900, NonceUse::Count(1), 1_000, LIFE),
            CountCheck::Forgotten
        );
    }
}
