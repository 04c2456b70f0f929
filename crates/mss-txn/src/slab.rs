//! Transaction ids and the generational slab that stores transactions by id.
//!
//! We choose the ids ourselves, so no hashing is needed: an id is a slot index plus the
//! slot's generation, which changes every time the slot is reused, so a stale id (or a stale
//! timer entry) never reaches the transaction that took its slot.

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

/// A vector of slots with a free list: O(1) insert, get and remove.
#[derive(Debug)]
pub(crate) struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    /// Stores `value` and returns its id.
    pub(crate) fn insert(&mut self, value: T) -> SlotId {
        self.len += 1;
        if let Some(index) = self.free.pop() {
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
            generation: 0,
            value: Some(value),
        });
        SlotId {
            index,
            generation: 0,
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
        self.free.push(id.index);
        self.len -= 1;
        Some(value)
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
}
