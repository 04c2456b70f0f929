//! The table's timer queue: deadlines in arrival order per timer kind, with lazy deletion.
//!
//! Machines never remove timers. When a machine disarms or re-arms a timer it just forgets
//! the old deadline; the old entry stays until it is the earliest, and is then dropped
//! because the slot's generation changed (transaction gone) or the machine no longer holds
//! that deadline (see `machine::take_if_due`). Each transaction arms a bounded number of
//! timers in its life (Timer E at most ~11 times in 64·T1), so the queue stays within a
//! constant factor of the number of live transactions, and no tick scans them all.
//!
//! Most timers of one kind have one duration (Timers B, F, H, J, L and M are 64·T1, I and
//! K are T4), and the clock given to the table never goes back, so a kind's deadlines
//! usually come in order. Each kind has a FIFO lane: a deadline no earlier than the last
//! one of its lane is appended there (O(1), and the oldest entries, the next to fire, stay
//! together in memory); any other goes to a binary heap. The earliest entry is the
//! earliest of the lanes' fronts and the heap's top. Under load most timers take the lane:
//! a heap of every transaction's 32-s timers (hundreds of thousands of entries) cost a
//! cache miss per level on each push and pop.

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
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

/// A heap or lane this small keeps its capacity.
const MIN_SHRINK_CAPACITY: usize = 1024;

/// The capacity to shrink a heap or lane of `len` entries to, when it uses under a
/// quarter of its `capacity` (amortized O(1)).
fn shrunk(len: usize, capacity: usize) -> Option<usize> {
    (capacity > MIN_SHRINK_CAPACITY && len.saturating_mul(4) < capacity)
        .then(|| len.saturating_mul(2))
}

/// How many timer kinds there are (one lane each).
const KINDS: usize = 13;

/// The lane of `timer`.
fn lane_of(timer: Timer) -> usize {
    match timer {
        Timer::A => 0,
        Timer::B => 1,
        Timer::D => 2,
        Timer::E => 3,
        Timer::F => 4,
        Timer::G => 5,
        Timer::H => 6,
        Timer::I => 7,
        Timer::J => 8,
        Timer::K => 9,
        Timer::L => 10,
        Timer::M => 11,
        Timer::Trying => 12,
    }
}

/// Where the earliest entry is.
#[derive(Debug, Clone, Copy)]
enum Earliest {
    Heap,
    Lane(usize),
}

/// The armed timers, earliest first.
#[derive(Debug, Default)]
pub(crate) struct TimerQueue {
    /// Per timer kind, deadlines in non-decreasing order.
    lanes: [VecDeque<Entry>; KINDS],
    /// The deadlines that came out of order for their lane.
    heap: BinaryHeap<Reverse<Entry>>,
    /// The earliest entry once looked up (`None` until then, `Some(None)` when the queue
    /// is empty): the table asks for the next deadline after every input.
    earliest: Cell<Option<Option<(Instant, Earliest)>>>,
}

impl TimerQueue {
    /// Arms `timer` of the transaction in `slot` for `at`.
    pub(crate) fn push(&mut self, at: Instant, slot: SlotId, timer: Timer) {
        let entry = Entry { at, slot, timer };
        let lane_index = lane_of(timer);
        let place = match self.lanes.get_mut(lane_index) {
            Some(lane) if lane.back().is_none_or(|last| last.at <= at) => {
                lane.push_back(entry);
                Earliest::Lane(lane_index)
            }
            _ => {
                self.heap.push(Reverse(entry));
                Earliest::Heap
            }
        };
        // The new entry is the earliest if it is before the known earliest (the first
        // of equal deadlines keeps its place).
        match self.earliest.get() {
            Some(Some((known, _))) if known <= at => {}
            Some(_) => self.earliest.set(Some(Some((at, place)))),
            None => {}
        }
    }

    /// Where the earliest entry is, and its deadline.
    fn earliest(&self) -> Option<(Instant, Earliest)> {
        if let Some(known) = self.earliest.get() {
            return known;
        }
        let found = self.find_earliest();
        self.earliest.set(Some(found));
        found
    }

    /// [`TimerQueue::earliest`], looked up among the lanes' fronts and the heap's top.
    fn find_earliest(&self) -> Option<(Instant, Earliest)> {
        let mut best = self.heap.peek().map(|Reverse(e)| (e.at, Earliest::Heap));
        for (i, lane) in self.lanes.iter().enumerate() {
            if let Some(front) = lane.front() {
                if best.is_none_or(|(at, _)| front.at < at) {
                    best = Some((front.at, Earliest::Lane(i)));
                }
            }
        }
        best
    }

    /// The earliest deadline (possibly of a stale entry: a spurious wake-up is harmless).
    pub(crate) fn peek(&self) -> Option<Instant> {
        self.earliest().map(|(at, _)| at)
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Entry> {
        let (at, place) = self.earliest()?;
        if at > now {
            return None;
        }
        self.earliest.set(None);
        // After a burst the queue would keep its peak size (every REGISTER arms Timer J).
        match place {
            Earliest::Heap => {
                let entry = self.heap.pop().map(|Reverse(e)| e);
                if let Some(to) = shrunk(self.heap.len(), self.heap.capacity()) {
                    self.heap.shrink_to(to);
                }
                entry
            }
            Earliest::Lane(i) => {
                let lane = self.lanes.get_mut(i)?;
                let entry = lane.pop_front();
                if let Some(to) = shrunk(lane.len(), lane.capacity()) {
                    lane.shrink_to(to);
                }
                entry
            }
        }
    }

    /// The number of entries, stale ones included.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len() + self.lanes.iter().map(VecDeque::len).sum::<usize>()
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

    #[test]
    fn out_of_order_deadlines_of_one_kind_still_pop_in_order() {
        let t0 = Instant::now();
        let slot = |index| SlotId {
            index,
            generation: 0,
        };
        let ms = Duration::from_millis;
        let mut q = TimerQueue::default();
        // Timer E doubles: later pushes can be earlier than a lane's last deadline.
        q.push(t0 + ms(4_000), slot(0), Timer::E);
        q.push(t0 + ms(500), slot(1), Timer::E);
        q.push(t0 + ms(32_000), slot(2), Timer::F);
        q.push(t0 + ms(1_000), slot(3), Timer::E);
        q.push(t0 + ms(32_000), slot(4), Timer::F);
        q.push(t0 + ms(200), slot(5), Timer::Trying);
        assert_eq!(q.len(), 6);
        assert_eq!(q.peek(), Some(t0 + ms(200)));
        let mut order = Vec::new();
        while let Some(e) = q.pop_due(t0 + ms(60_000)) {
            order.push((e.at.duration_since(t0).as_millis(), e.slot.index));
        }
        assert_eq!(
            order,
            [
                (200, 5),
                (500, 1),
                (1_000, 3),
                (4_000, 0),
                (32_000, 2),
                (32_000, 4)
            ]
        );
        assert_eq!(q.peek(), None);
    }

    #[test]
    fn a_random_mix_pops_as_a_heap_would() {
        let t0 = Instant::now();
        let mut q = TimerQueue::default();
        let mut model: BinaryHeap<Reverse<Instant>> = BinaryHeap::new();
        let kinds = [Timer::A, Timer::E, Timer::J, Timer::L, Timer::Trying];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut now = t0;
        for i in 0..5_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Mostly in order per kind (a fixed delay), sometimes not (a backoff).
            let delay = Duration::from_millis(x % 40_000);
            let timer = kinds[(x >> 32) as usize % kinds.len()];
            q.push(
                now + delay,
                SlotId {
                    index: i,
                    generation: 0,
                },
                timer,
            );
            model.push(Reverse(now + delay));
            if i % 7 == 0 {
                now += Duration::from_millis((x >> 40) % 3_000);
                assert_eq!(q.peek(), model.peek().map(|Reverse(at)| *at));
                while let Some(e) = q.pop_due(now) {
                    assert_eq!(model.pop().map(|Reverse(at)| at), Some(e.at));
                }
                assert!(model.peek().is_none_or(|Reverse(at)| *at > now));
            }
        }
        assert_eq!(q.len(), model.len());
    }
}
