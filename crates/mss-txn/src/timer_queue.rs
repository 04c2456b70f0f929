//! The table's timer queue: one `BinaryHeap` of deadlines with lazy deletion.
//!
//! Machines never remove timers. When a machine disarms or re-arms a timer it just forgets
//! the old deadline; the old heap entry stays until it reaches the top, and is then dropped
//! because the slot's generation changed (transaction gone) or the machine no longer holds
//! that deadline (see `machine::take_if_due`). Each transaction arms a bounded number of
//! timers in its life (Timer E at most ~11 times in 64·T1), so the heap stays within a
//! constant factor of the number of live transactions, and no tick scans them all.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use crate::slab::SlotId;
use crate::timers::Timer;

/// One armed timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Entry {
    pub(crate) at: Instant,
    pub(crate) slot: SlotId,
    pub(crate) timer: Timer,
}

/// A heap this small keeps its capacity.
const MIN_SHRINK_CAPACITY: usize = 1024;

/// A min-heap of armed timers.
#[derive(Debug, Default)]
pub(crate) struct TimerQueue {
    heap: BinaryHeap<Reverse<Entry>>,
}

impl TimerQueue {
    /// Arms `timer` of the transaction in `slot` for `at`.
    pub(crate) fn push(&mut self, at: Instant, slot: SlotId, timer: Timer) {
        self.heap.push(Reverse(Entry { at, slot, timer }));
    }

    /// The earliest deadline (possibly of a stale entry: a spurious wake-up is harmless).
    pub(crate) fn peek(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(e)| e.at)
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Entry> {
        if self.peek()? <= now {
            let entry = self.heap.pop().map(|Reverse(e)| e);
            // After a burst the heap would keep its peak size (every REGISTER arms Timer J).
            let capacity = self.heap.capacity();
            if capacity > MIN_SHRINK_CAPACITY && self.heap.len().saturating_mul(4) < capacity {
                self.heap.shrink_to(self.heap.len().saturating_mul(2));
            }
            entry
        } else {
            None
        }
    }

    /// The number of entries, stale ones included.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn pops_in_order_only_when_due() {
        let t0 = Instant::now();
        let slot = SlotId {
            index: 0,
            generation: 0,
        };
        let mut q = TimerQueue::default();
        q.push(t0 + Duration::from_secs(2), slot, Timer::F);
        q.push(t0 + Duration::from_secs(1), slot, Timer::E);
        assert_eq!(q.peek(), Some(t0 + Duration::from_secs(1)));
        assert!(q.pop_due(t0).is_none());
        let e = q.pop_due(t0 + Duration::from_secs(5)).unwrap();
        assert_eq!(e.timer, Timer::E);
        assert_eq!(
            q.pop_due(t0 + Duration::from_secs(5)).unwrap().timer,
            Timer::F
        );
        assert!(q.pop_due(t0 + Duration::from_secs(5)).is_none());
        assert_eq!(q.len(), 0);
    }
}
