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
//! The table is direct-mapped and fixed in size (allocated at the first early end): a slot
//! holds a key's 64-bit hash (from the key index's randomly seeded hasher, so a peer cannot
//! aim at a slot or a hash) and when the remembrance ends. A newer end that maps to an
//! occupied slot overwrites it; the older key's retransmissions are then handled again, as
//! without the table, which is correct if dearer. A new request whose key hash equals a
//! remembered one (a 2^-64 chance per request) would be dropped once and retransmitted.

use std::time::Instant;

/// One slot: the key's hash, and the end of its Timer J in nanoseconds after
/// [`EndedEarly::base`] (0: empty).
type Slot = (u64, u64);

/// The transactions ended early, by key hash; see the module docs.
#[derive(Debug)]
pub(crate) struct EndedEarly {
    slots: Vec<Slot>,
    /// `slots.len() - 1`; the length is a power of two.
    mask: usize,
    /// The time the table was made: expiries are kept as nanoseconds after it.
    base: Option<Instant>,
    /// The number of slots once allocated.
    len: usize,
}

impl EndedEarly {
    /// A table of `bytes` (rounded down to a power of two of slots, at least one),
    /// allocated at the first [`EndedEarly::record`].
    pub(crate) fn new(bytes: usize) -> EndedEarly {
        let wanted = (bytes / std::mem::size_of::<Slot>()).max(1);
        // The largest power of two not above `wanted`.
        let len = 1usize << (usize::BITS - 1 - wanted.leading_zeros());
        EndedEarly {
            slots: Vec::new(),
            mask: len - 1,
            base: None,
            len,
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
        let index = self.index(hash);
        if let Some(slot) = self.slots.get_mut(index) {
            *slot = (hash, at);
        }
    }

    /// Whether the key hashed to `hash` ended early and its Timer J has not passed at `now`.
    pub(crate) fn contains(&self, hash: u64, now: Instant) -> bool {
        match self.slots.get(self.index(hash)) {
            Some(&(h, until)) => h == hash && until > self.offset(now),
            None => false,
        }
    }

    /// Whether nothing was ever recorded (lookups can be skipped).
    pub(crate) fn is_unused(&self) -> bool {
        self.slots.is_empty()
    }

    fn index(&self, hash: u64) -> usize {
        // The key index uses the hash's low bits for its buckets and top bits as tags;
        // its middle bits spread as well.
        (hash >> 20) as usize & self.mask
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

    #[test]
    fn remembers_until_timer_j_and_forgets_on_overwrite() {
        let t0 = Instant::now();
        let mut e = EndedEarly::new(16 * 4);
        assert_eq!(e.bytes(), 64);
        assert!(e.is_unused());
        assert!(!e.contains(7 << 20, t0));
        e.record(7 << 20, t0, t0 + Duration::from_secs(32));
        assert!(!e.is_unused());
        assert!(e.contains(7 << 20, t0 + Duration::from_secs(31)));
        assert!(!e.contains(7 << 20, t0 + Duration::from_secs(32)));
        assert!(!e.contains(8 << 20, t0), "another hash");
        // 11 maps to the slot of 7 in a table of 4: the newer end wins.
        e.record(11 << 20, t0, t0 + Duration::from_secs(32));
        assert!(e.contains(11 << 20, t0));
        assert!(!e.contains(7 << 20, t0));
    }

    #[test]
    fn sizes_round_down_to_a_power_of_two() {
        assert_eq!(EndedEarly::new(0).bytes(), 16);
        assert_eq!(EndedEarly::new(100).bytes(), 64);
        assert_eq!(EndedEarly::new(8 << 20).bytes(), 8 << 20);
    }
}
