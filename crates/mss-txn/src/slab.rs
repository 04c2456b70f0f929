//! Transaction ids and the generational slab that stores transactions by id.
//!
//! We choose the ids ourselves, so no hashing is needed: an id is a slot index plus the
//! slot's generation, which changes every time the slot is reused, so a stale id (or a stale
//! timer entry) never reaches the transaction that took its slot.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::chunks::Chunked;

/// A slot index and its generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct SlotId {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

/// Identifies a client transaction for as long as it lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientTransactionId(pub(crate) SlotId);

/// Identifies a server transaction for as long as it lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerTransactionId(pub(crate) SlotId);

/// Either kind of transaction id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransactionId {
    /// A client transaction.
    Client(ClientTransactionId),
    /// A server transaction.
    Server(ServerTransactionId),
}

#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

/// A slab this small keeps its capacity.
const MIN_SHRINK_SLOTS: usize = 1024;

/// A vector of slots with a free list: O(log n) insert and remove, O(1) get.
///
/// After a burst (every REGISTER leaves a non-INVITE server transaction for Timer J, 32 s
/// on UDP), most slots are vacant and a slot is 300+ bytes. So the lowest vacant slot is
/// reused first (live transactions stay packed at the start), vacant slots at the end are
/// dropped, and the vector gives its memory back when it is mostly empty, instead of
/// keeping the burst's size for ever.
#[derive(Debug)]
pub(crate) struct Slab<T> {
    slots: Chunked<Slot<T>>,
    /// Vacant indices, lowest first; entries at or past `slots.len()` are stale (their slot
    /// was dropped) and skipped.
    free: BinaryHeap<Reverse<u32>>,
    len: usize,
    /// Generation of a slot pushed at the end: above that of every dropped slot, so the id
    /// of a dropped slot never matches the slot that later takes its index.
    floor: u32,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            slots: Chunked::default(),
            free: BinaryHeap::new(),
            len: 0,
            floor: 0,
        }
    }
}

impl<T> Slab<T> {
    /// Stores `value` and returns its id.
    pub(crate) fn insert(&mut self, value: T) -> SlotId {
        self.len += 1;
        while let Some(Reverse(index)) = self.free.pop() {
            if let Some(slot) = self.slots.get_mut(index as usize) {
                slot.generation = slot.generation.wrapping_add(1);
                slot.value = Some(value);
                return SlotId {
                    index,
                    generation: slot.generation,
                };
            }
        }
        // More than 4 billion live transactions cannot fit in memory anyway.
        let index = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
        self.slots.push(Slot {
            generation: self.floor,
            value: Some(value),
        });
        SlotId {
            index,
            generation: self.floor,
        }
    }

    /// The value stored under `id`, if it is still there.
    pub(crate) fn get(&self, id: SlotId) -> Option<&T> {
        self.slots
            .get(id.index as usize)
            .filter(|s| s.generation == id.generation)
            .and_then(|s| s.value.as_ref())
    }

    /// The value stored under `id`, for editing.
    pub(crate) fn get_mut(&mut self, id: SlotId) -> Option<&mut T> {
        self.slots
            .get_mut(id.index as usize)
            .filter(|s| s.generation == id.generation)
            .and_then(|s| s.value.as_mut())
    }

    /// Removes and returns the value stored under `id`.
    pub(crate) fn remove(&mut self, id: SlotId) -> Option<T> {
        let slot = self
            .slots
            .get_mut(id.index as usize)
            .filter(|s| s.generation == id.generation)?;
        let value = slot.value.take()?;
        self.free.push(Reverse(id.index));
        self.len -= 1;
        self.drop_vacant_tail();
        Some(value)
    }

    /// Drops the vacant slots at the end (each slot is dropped once per push: amortized
    /// O(1)), and gives memory back when the vector or the free list is mostly unused.
    fn drop_vacant_tail(&mut self) {
        while let Some(last) = self.slots.last() {
            if last.value.is_some() {
                break;
            }
            self.floor = self.floor.max(last.generation.wrapping_add(1));
            self.slots.pop();
        }
        let slots = self.slots.len();
        if self.free.len() > slots {
            // Stale entries outnumber the slots: each was pushed by a removal, so this
            // O(n) pass is paid for.
            self.free.retain(|Reverse(i)| (*i as usize) < slots);
        }
        let capacity = self.free.capacity();
        if capacity > MIN_SHRINK_SLOTS && self.free.len().saturating_mul(4) < capacity {
            self.free.shrink_to(self.free.len().saturating_mul(2));
        }
    }

    /// The number of slots (live or vacant) and of allocated slots, for tests.
    #[cfg(test)]
    fn sizes(&self) -> (usize, usize) {
        (self.slots.len(), self.slots.capacity())
    }

    /// The number of stored values.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reused_slots_reject_stale_ids() {
        let mut s = Slab::default();
        let a = s.insert("a");
        assert_eq!(s.get(a), Some(&"a"));
        assert_eq!(s.remove(a), Some("a"));
        assert_eq!(s.remove(a), None);
        let b = s.insert("b");
        assert_eq!(b.index, a.index);
        assert_eq!(s.get(a), None, "stale id");
        assert_eq!(s.get(b), Some(&"b"));
        assert_eq!(s.len(), 1);
        *s.get_mut(b).unwrap() = "c";
        assert_eq!(s.get(b), Some(&"c"));
    }

    #[test]
    fn an_emptied_slab_gives_its_slots_back_and_stale_ids_stay_stale() {
        let mut s = Slab::default();
        let ids: Vec<SlotId> = (0..10_000).map(|i| s.insert(i)).collect();
        // One early transaction lives on (an INVITE waiting for its ACK, say).
        for id in ids.iter().skip(1) {
            assert!(s.remove(*id).is_some());
        }
        let (slots, capacity) = s.sizes();
        assert!(slots < 100, "vacant tail dropped: {slots}");
        assert!(
            capacity <= 2 * crate::chunks::CHUNK,
            "memory given back (the chunk in use and a spare): {capacity}"
        );
        assert_eq!(s.len(), 1);
        assert_eq!(s.get(ids[0]), Some(&0));
        // New values reuse low indices or new ones whose generation no old id carries.
        let fresh: Vec<SlotId> = (0..10_000).map(|i| s.insert(i + 100_000)).collect();
        for old in ids.iter().skip(1) {
            assert_eq!(s.get(*old), None, "stale id {old:?}");
        }
        for (i, id) in fresh.iter().enumerate() {
            assert_eq!(s.get(*id), Some(&(i + 100_000)));
        }
    }

    #[test]
    fn oldest_first_expiry_empties_the_slab() {
        // Timer J ends transactions in the order they began.
        let mut s = Slab::default();
        let ids: Vec<SlotId> = (0..5_000).map(|i| s.insert(i)).collect();
        for id in ids.iter().take(4_999) {
            assert!(s.remove(*id).is_some());
        }
        assert_eq!(s.sizes().0, 5_000, "the last slot is live");
        assert_eq!(s.get(ids[4_999]), Some(&4_999));
        // Freed low slots are reused first.
        let again = s.insert(7);
        assert_eq!(again.index, 0);
        assert!(s.remove(ids[4_999]).is_some());
        assert!(s.remove(again).is_some());
        assert_eq!(s.sizes().0, 0);
        assert!(s.sizes().1 <= MIN_SHRINK_SLOTS * 2);
        assert!(s.free.len() <= 1);
    }
}
