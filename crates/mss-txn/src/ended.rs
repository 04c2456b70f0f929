//! Compact Completed transactions ended before Timer J, remembered by key hash until their
//! Timer J would have fired, so that a late retransmission of their request is absorbed
//! instead of handled again.
//!
//! A Completed non-INVITE server transaction only answers retransmissions (RFC 3261
//! §17.2.2). When the caps on their number or bytes end one early
//! ([`crate::completed::CompletedQueues`]), its response is gone; without this table a
//! retransmission would start a new transaction and the TU would do its work again: for a
//! REGISTER with digest credentials a second verification and a `401` (`stale=true`) for the
//! replayed nonce count, for a flood of retransmissions beyond capacity CPU taken from the
//! requests that can still succeed. Here it is dropped, as a retransmission of an answered
//! request: its client already had the final response, or times out (Timer F) and tries
//! again, as after any lost response.
//!
//! The table is set-associative and fixed in size (allocated at the first early end, at
//! least [`MIN_BYTES`]): a key's hash picks a set of [`WAYS`] slots (one 64-byte cache
//! line), a slot holds a key's 64-bit hash (from the key index's randomly seeded hasher, so
//! a peer cannot aim at a set or a hash) and when the remembrance ends. A newer end whose
//! set is full takes the slot whose remembrance ends first (every slot of a set is read in
//! one line, so the choice costs nothing); the older key's retransmissions are then handled
//! again, as without the table, which is correct if dearer. A new request whose key hash
//! equals a remembered one (a 2^-64 chance per request) would be dropped once and
//! retransmitted.

use std::time::Instant;

/// One slot: the key's hash, and the end of its Timer J in nanoseconds after
/// [`EndedEarly::base`] (0: empty).
type Slot = (u64, u64);

/// Slots per set: 4 × 16 bytes, one cache line.
pub(crate) const WAYS: usize = 4;

/// The smallest table (64 KiB, 1,024 sets), whatever the budget: a small budget ends
/// transactions early as often as a large one, and a remembrance lost to a full set costs
/// a second handling of the request.
pub(crate) const MIN_BYTES: usize = 64 << 10;

/// The transactions ended early, by key hash; see the module docs.
#[derive(Debug)]
pub(crate) struct EndedEarly {
    slots: Vec<Slot>,
    /// The number of sets − 1; the number of sets is a power of two.
    mask: usize,
    /// The time the table was made: expiries are kept as nanoseconds after it.
    base: Option<Instant>,
    /// The number of slots once allocated (a multiple of [`WAYS`]).
    len: usize,
}

impl EndedEarly {
    /// A table of `bytes` (at least [`MIN_BYTES`], rounded down to a power of two of
    /// sets), allocated at the first [`EndedEarly::record`].
    pub(crate) fn new(bytes: usize) -> EndedEarly {
        let wanted = (bytes.max(MIN_BYTES) / (WAYS * std::mem::size_of::<Slot>())).max(1);
        // The largest power of two not above `wanted`.
        let sets = 1usize << (usize::BITS - 1 - wanted.leading_zeros());
        EndedEarly {
            slots: Vec::new(),
            mask: sets - 1,
            base: None,
            len: sets * WAYS,
        }
    }

    /// The bytes the table takes once allocated.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.len * std::mem::size_of::<Slot>()
    }

    /// Remembers the key hashed to `hash` until `until`.
    pub(crate) fn record(&mut self, hash: u64, now: Instant, until: Instant) {
        if self.slots.is_empty() {
            self.slots = vec![(0, 0); self.len];
            self.base = Some(now);
        }
        let at = self.offset(until).max(1);
        let range = self.set(hash);
        let Some(set) = self.slots.get_mut(range) else {
            return;
        };
        // The key's own slot if it is there, else the slot whose remembrance ends first
        // (an empty or expired slot ends at or before now, so it goes first).
        let victim = set
            .iter()
            .position(|&(h, until)| h == hash && until != 0)
            .or_else(|| {
                set.iter()
                    .enumerate()
                    .min_by_key(|(_, &(_, until))| until)
                    .map(|(i, _)| i)
            });
        if let Some(slot) = victim.and_then(|i| set.get_mut(i)) {
            *slot = (hash, at);
        }
    }

    /// Whether the key hashed to `hash` ended early and its Timer J has not passed at `now`.
    pub(crate) fn contains(&self, hash: u64, now: Instant) -> bool {
        let now = self.offset(now);
        self.slots
            .get(self.set(hash))
            .is_some_and(|set| set.iter().any(|&(h, until)| h == hash && until > now))
    }

    /// Whether nothing was ever recorded (lookups can be skipped).
    pub(crate) fn is_unused(&self) -> bool {
        self.slots.is_empty()
    }

    /// The slots of the set of `hash`.
    fn set(&self, hash: u64) -> std::ops::Range<usize> {
        // The key index uses the hash's low bits for its buckets and top bits as tags;
        // its middle bits spread as well.
        let start = ((hash >> 20) as usize & self.mask) * WAYS;
        start..start + WAYS
    }

    fn offset(&self, t: Instant) -> u64 {
        self.base.map_or(0, |base| {
            u64::try_from(t.saturating_duration_since(base).as_nanos()).unwrap_or(u64::MAX)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The hash of the `way`-th key of set `set`.
    fn in_set(set: u64, way: u64) -> u64 {
        (way << 40) | (set << 20)
    }

    #[test]
    fn remembers_until_timer_j() {
        let t0 = Instant::now();
        let mut e = EndedEarly::new(0);
        assert!(e.is_unused());
        assert!(!e.contains(in_set(7, 0), t0));
        e.record(in_set(7, 0), t0, t0 + Duration::from_secs(32));
        assert!(!e.is_unused());
        assert!(e.contains(in_set(7, 0), t0 + Duration::from_secs(31)));
        assert!(!e.contains(in_set(7, 0), t0 + Duration::from_secs(32)));
        assert!(!e.contains(in_set(8, 0), t0), "another hash");
        assert!(
            !e.contains(in_set(7, 1), t0),
            "another hash in the same set"
        );
    }

    #[test]
    fn a_full_set_forgets_the_remembrance_that_ends_first() {
        let t0 = Instant::now();
        let j = Duration::from_secs(32);
        let mut e = EndedEarly::new(0);
        for way in 0..WAYS as u64 {
            let t = t0 + Duration::from_millis(way);
            e.record(in_set(3, way), t, t + j);
        }
        for way in 0..WAYS as u64 {
            assert!(e.contains(in_set(3, way), t0), "{way}: a set holds {WAYS}");
        }
        let t = t0 + Duration::from_millis(10);
        e.record(in_set(3, 9), t, t + j);
        assert!(e.contains(in_set(3, 9), t0));
        assert!(!e.contains(in_set(3, 0), t0), "the oldest gave way");
        for way in 1..WAYS as u64 {
            assert!(e.contains(in_set(3, way), t0), "{way}");
        }
        // Recording a key again moves its end, it takes no second slot.
        e.record(in_set(3, 1), t, t + j);
        e.record(in_set(3, 10), t, t + j);
        assert!(
            e.contains(in_set(3, 1), t0),
            "renewed: no longer the oldest"
        );
        assert!(!e.contains(in_set(3, 2), t0), "the oldest now");
        // An expired slot is free again.
        let late = t0 + j + Duration::from_secs(1);
        e.record(in_set(3, 11), late, late + j);
        assert!(e.contains(in_set(3, 11), late));
        assert!(e.contains(in_set(3, 1), t0));
    }

    #[test]
    fn sizes_have_a_floor_and_round_down_to_a_power_of_two_of_sets() {
        assert_eq!(EndedEarly::new(0).bytes(), MIN_BYTES);
        assert_eq!(EndedEarly::new(100).bytes(), MIN_BYTES);
        assert_eq!(EndedEarly::new(8 << 20).bytes(), 8 << 20);
        assert_eq!(EndedEarly::new((8 << 20) + 100).bytes(), 8 << 20);
    }
}
