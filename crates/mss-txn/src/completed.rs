//! Compact Completed non-INVITE server transactions over unreliable transports.
//!
//! RFC 3261 §17.2.2 keeps such a transaction in Completed for Timer J (64·T1, 32 s) only to
//! answer request retransmissions (matched by §17.2.3) with its final response. All it
//! needs then is that response, where to send it, and when it expires. Timer J is the same
//! for every one of them, so they expire in the order they completed: a FIFO of compact
//! entries replaces the slab slot and the timer-heap entry. The key index points at an entry
//! by its sequence number ([`KeyEntry::Completed`]).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use mss_sip::Flow;

use crate::output::Event;
use crate::slab::SlotId;
use crate::transactions::{server_id, Transactions, Txn};
use crate::TransactionKey;

/// What the key index holds for a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyEntry {
    /// A transaction in the slab.
    Live(SlotId),
    /// A compact Completed server transaction, by sequence number in [`CompletedQueue`].
    Completed(u64),
}

/// One compact Completed server transaction.
#[derive(Debug)]
pub(crate) struct Completed {
    /// Its key, compared by lookups and hashed to leave the key index when it expires.
    pub(crate) key: TransactionKey,
    /// The id it had while live; reported in `Event::Terminated` and on its retransmissions
    /// (the driver may route by it).
    pub(crate) id: SlotId,
    /// Where the final response went (§18.2.2).
    pub(crate) flow: Flow,
    /// The local address it left from, when the TU named one.
    pub(crate) local: Option<SocketAddr>,
    /// The final response as sent.
    pub(crate) response: Bytes,
    /// When Timer J fires.
    pub(crate) expires: Instant,
}

/// A queue this small keeps its capacity.
const MIN_SHRINK_CAPACITY: usize = 1024;

/// The FIFO of compact Completed transactions, in order of expiry.
#[derive(Debug, Default)]
pub(crate) struct CompletedQueue {
    entries: VecDeque<Completed>,
    /// The sequence number of the front entry.
    head: u64,
}

impl CompletedQueue {
    /// Appends an entry; its expiry must not be earlier than the last one's (Timer J is
    /// the same for all and time never goes backwards). Returns its sequence number.
    pub(crate) fn push(&mut self, entry: Completed) -> u64 {
        let seq = self.head.wrapping_add(self.entries.len() as u64);
        self.entries.push_back(entry);
        seq
    }

    /// The entry with sequence number `seq`, if still queued.
    pub(crate) fn get(&self, seq: u64) -> Option<&Completed> {
        let index = usize::try_from(seq.checked_sub(self.head)?).ok()?;
        self.entries.get(index)
    }

    /// The earliest expiry.
    pub(crate) fn peek(&self) -> Option<Instant> {
        self.entries.front().map(|e| e.expires)
    }

    /// Removes and returns the front entry with its sequence number if it expired by `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(u64, Completed)> {
        if self.peek()? > now {
            return None;
        }
        let entry = self.entries.pop_front()?;
        let seq = self.head;
        self.head = self.head.wrapping_add(1);
        let capacity = self.entries.capacity();
        if capacity > MIN_SHRINK_CAPACITY && self.entries.len().saturating_mul(4) < capacity {
            self.entries.shrink_to(self.entries.len().saturating_mul(2));
        }
        Some((seq, entry))
    }

    /// Removes and returns the front entry with its sequence number, due or not.
    pub(crate) fn pop_front(&mut self) -> Option<(u64, Completed)> {
        let entry = self.entries.pop_front()?;
        let seq = self.head;
        self.head = self.head.wrapping_add(1);
        Some((seq, entry))
    }

    /// The number of queued entries.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

impl Transactions {
    /// Moves the Completed non-INVITE server transaction in `slot` to the compact queue:
    /// its slot is freed, and the key index points at the queue entry until Timer J.
    pub(crate) fn compact(&mut self, now: Instant, slot: SlotId) {
        let Some(Txn::Server(s)) = self.txns.remove(slot) else {
            return;
        };
        let Some(sent) = s.last_response else {
            return;
        };
        let entry = Completed {
            key: s.key,
            id: slot,
            flow: s.flow,
            local: s.local,
            // Kept as encoded: `Response::encode` reserves the size it computes up front,
            // so the buffer has little slack, and a copy would cost more CPU than it saves.
            response: sent,
            expires: now + self.config.timers.t1x64(),
        };
        let hash = self.keys.hash(&entry.key);
        let seq = self.completed.push(entry);
        self.keys
            .replace(hash, KeyEntry::Live(slot), KeyEntry::Completed(seq));
        while self.completed.len() > self.config.max_completed {
            let Some((seq, c)) = self.completed.pop_front() else {
                break;
            };
            self.keys
                .remove(self.keys.hash(&c.key), KeyEntry::Completed(seq));
            self.evicted += 1;
            self.event(Event::Terminated {
                id: server_id(c.id),
            });
        }
    }

    /// What the key index holds for `key`, a compact entry past Timer J counting as absent
    /// (the queue drops it at the next [`Transactions::handle_timeout`]).
    pub(crate) fn lookup(&self, key: &TransactionKey, now: Instant) -> Option<KeyEntry> {
        match self.find_key(key)? {
            KeyEntry::Completed(seq) => self
                .completed
                .get(seq)
                .filter(|c| c.expires > now)
                .map(|_| KeyEntry::Completed(seq)),
            live => Some(live),
        }
    }

    /// A request retransmission that matched a compact Completed transaction: its final
    /// response again (§17.2.2).
    pub(crate) fn retransmit_completed(&mut self, seq: u64) {
        if let Some(c) = self.completed.get(seq) {
            let (flow, local, bytes, id) = (c.flow, c.local, c.response.clone(), server_id(c.id));
            self.transmit_from(flow, local, bytes, Some(id));
        }
    }

    /// Ends the compact Completed transactions whose Timer J fired by `now` (§17.2.2).
    pub(crate) fn expire_completed(&mut self, now: Instant) {
        let mut any = false;
        while let Some((seq, c)) = self.completed.pop_due(now) {
            // A key taken over by a newer transaction stays filed for it.
            self.keys
                .remove(self.keys.hash(&c.key), KeyEntry::Completed(seq));
            any = true;
            self.event(Event::Terminated {
                id: server_id(c.id),
            });
        }
        if any {
            self.keys.shrink_if_sparse();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn entry(expires: Instant, n: u32) -> Completed {
        let raw = format!(
            "REGISTER sip:a SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK{n}\r\n\
             From: <sip:a@h>;tag=1\r\nTo: <sip:a@h>\r\nCall-ID: c{n}\r\n\
             CSeq: 1 REGISTER\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        let Ok(mss_sip::Message::Request(req)) = mss_sip::parse_datagram(Bytes::from(raw)) else {
            panic!("parse");
        };
        Completed {
            key: TransactionKey::for_request(&req).unwrap(),
            id: SlotId {
                index: n,
                generation: 0,
            },
            flow: Flow {
                transport: mss_sip::Transport::Udp,
                remote: "127.0.0.1:5060".parse().unwrap(),
                connection: None,
            },
            local: None,
            response: Bytes::from_static(b"SIP/2.0 200 OK\r\n\r\n"),
            expires,
        }
    }

    /// What a Completed REGISTER costs besides its response bytes and its 24-byte slot in
    /// the key index (256 bytes: the key is 112, the local address 32; a slab slot was 360
    /// bytes plus a 32-byte timer-heap entry, and the key map held a second copy of the
    /// key, 128 bytes with its entry).
    #[test]
    fn an_entry_stays_small() {
        let size = std::mem::size_of::<Completed>();
        assert!(size <= 256, "Completed is {size} bytes");
    }

    #[test]
    fn drains_in_order_and_finds_by_sequence() {
        let t0 = Instant::now();
        let mut q = CompletedQueue::default();
        let a = q.push(entry(t0, 1));
        let b = q.push(entry(t0 + Duration::from_secs(1), 2));
        assert_eq!((a, b, q.len()), (0, 1, 2));
        assert_eq!(q.get(b).map(|e| e.id.index), Some(2));
        assert_eq!(q.pop_due(t0).map(|(s, e)| (s, e.id.index)), Some((0, 1)));
        assert!(q.get(a).is_none());
        assert!(q.pop_due(t0).is_none());
        assert_eq!(q.peek(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(
            q.pop_due(t0 + Duration::from_secs(5)).map(|(s, _)| s),
            Some(1)
        );
        assert_eq!(q.len(), 0);
        assert!(q.get(7).is_none());
    }
}
