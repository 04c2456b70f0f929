//! The key index: finds a transaction by its [`TransactionKey`] without storing the key
//! a second time.
//!
//! Every transaction already owns its key (the slab's [`crate::transactions::ServerTxn`]
//! and [`crate::transactions::ClientTxn`], the compact [`crate::completed::Completed`]
//! entry). The index keeps only where the transaction is ([`KeyEntry`]) and the key's hash:
//! 24 bytes per transaction instead of the 128 of a `HashMap<TransactionKey, KeyEntry>`.
//! A lookup compares the probe with the key the entry points at, so matching stays exact
//! (§17.2.3 is a comparison of values, not of hashes). Keeping the hash means that growing
//! the table never hashes a key again: at tens of thousands of registrations per second
//! half a million REGISTER transactions wait out Timer J at once, and a rehash of all their
//! keys stalled the worker for tens of milliseconds at each doubling.
//!
//! The hasher is randomly seeded per index (aHash's `RandomState`): keys are chosen by
//! peers, and a peer cannot aim collisions at a seed it does not know.

use hashbrown::hash_table::{Entry, HashTable};

use crate::completed::KeyEntry;
use crate::TransactionKey;

/// An index this small keeps its capacity.
const MIN_SHRINK_CAPACITY: usize = 1024;

/// One indexed transaction.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// The hash of its key.
    hash: u64,
    /// Where it is.
    entry: KeyEntry,
}

/// Transactions by key; see the module docs.
#[derive(Debug)]
pub(crate) struct KeyIndex {
    table: HashTable<Slot>,
    hasher: ahash::RandomState,
}

impl Default for KeyIndex {
    fn default() -> Self {
        KeyIndex {
            table: HashTable::new(),
            hasher: ahash::RandomState::new(),
        }
    }
}

impl KeyIndex {
    /// The hash the index files `key` under.
    pub(crate) fn hash(&self, key: &TransactionKey) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The entry filed under `hash` for which `is_key` says it holds the key looked for.
    pub(crate) fn find(
        &self,
        hash: u64,
        mut is_key: impl FnMut(KeyEntry) -> bool,
    ) -> Option<KeyEntry> {
        self.table
            .find(hash, |s| s.hash == hash && is_key(s.entry))
            .map(|s| s.entry)
    }

    /// Files `entry` under `hash`, replacing the entry for which `is_key` is true (the same
    /// key: a compact Completed transaction past Timer J that the queue has not dropped
    /// yet, whose key a new transaction takes over).
    pub(crate) fn insert(
        &mut self,
        hash: u64,
        entry: KeyEntry,
        mut is_key: impl FnMut(KeyEntry) -> bool,
    ) {
        let found = self
            .table
            .entry(hash, |s| s.hash == hash && is_key(s.entry), |s| s.hash);
        match found {
            Entry::Occupied(mut o) => o.get_mut().entry = entry,
            Entry::Vacant(v) => {
                v.insert(Slot { hash, entry });
            }
        }
    }

    /// Points the entry `old` filed under `hash` at `new`; `false` when `old` is not there.
    pub(crate) fn replace(&mut self, hash: u64, old: KeyEntry, new: KeyEntry) -> bool {
        match self.table.find_mut(hash, |s| s.entry == old) {
            Some(s) => {
                s.entry = new;
                true
            }
            None => false,
        }
    }

    /// Removes the entry `entry` filed under `hash` (an entry names one transaction, so no
    /// key is compared); `false` when it is not there (another transaction took the key).
    pub(crate) fn remove(&mut self, hash: u64, entry: KeyEntry) -> bool {
        match self.table.find_entry(hash, |s| s.entry == entry) {
            Ok(o) => {
                o.remove();
                true
            }
            Err(_) => false,
        }
    }

    /// The number of indexed transactions.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// Gives back most of the memory of an index left mostly empty by a burst. Shrinking to
    /// twice the length when under a quarter full keeps the cost amortized O(1) per
    /// removal; no key is hashed again.
    pub(crate) fn shrink_if_sparse(&mut self) {
        let capacity = self.table.capacity();
        if capacity > MIN_SHRINK_CAPACITY && self.table.len().saturating_mul(4) < capacity {
            self.table
                .shrink_to(self.table.len().saturating_mul(2), |s| s.hash);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slab::SlotId;

    fn live(index: u32) -> KeyEntry {
        KeyEntry::Live(SlotId {
            index,
            generation: 0,
        })
    }

    /// An index slot is the hash and the entry, no key.
    #[test]
    fn a_slot_is_small() {
        assert!(std::mem::size_of::<Slot>() <= 24);
    }

    #[test]
    fn finds_inserts_replaces_and_removes_by_entry() {
        let mut ix = KeyIndex::default();
        // Two "keys" with the same hash: the caller's comparison tells them apart.
        let h = 42;
        ix.insert(h, live(1), |_| false);
        ix.insert(h, live(2), |e| e == live(7));
        assert_eq!(ix.len(), 2);
        assert_eq!(ix.find(h, |e| e == live(2)), Some(live(2)));
        assert_eq!(ix.find(h, |e| e == live(3)), None);
        assert_eq!(ix.find(h + 1, |_| true), None);
        // Same key again: the entry is replaced, not added.
        ix.insert(h, KeyEntry::Completed(9), |e| e == live(1));
        assert_eq!(ix.len(), 2);
        assert!(ix.replace(h, KeyEntry::Completed(9), live(5)));
        assert!(!ix.replace(h, KeyEntry::Completed(9), live(6)));
        assert!(ix.remove(h, live(5)));
        assert!(!ix.remove(h, live(5)));
        assert_eq!(ix.len(), 1);
    }

    #[test]
    fn growing_and_shrinking_keep_every_entry() {
        let mut ix = KeyIndex::default();
        let n: u32 = 10_000;
        for i in 0..n {
            ix.insert(
                u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                live(i),
                |_| false,
            );
        }
        for i in 0..n - 100 {
            assert!(ix.remove(u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15), live(i)));
            ix.shrink_if_sparse();
        }
        assert_eq!(ix.len(), 100);
        for i in n - 100..n {
            let h = u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            assert_eq!(ix.find(h, |e| e == live(i)), Some(live(i)));
        }
    }
}
